/* SPDX-License-Identifier: Apache-2.0 */
/* failpoint.c -- parsing, storing and evaluating named failpoints. See failpoint.h. */
#include "common/failpoint.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"

#define KC_FP_PPM_ALL      1000000u /* 100% in parts per million */
#define KC_FP_PCT_DIGITS   4        /* decimals allowed in N% (1 ppm resolution) */
#define KC_FP_SPEC_MAX     160      /* longest canonical spec, with its NUL */
#define KC_FP_EXIT_DEFAULT 1u       /* status of a bare "exit" */
#define KC_FP_SEED_DEFAULT 0x4b656c7046507331ULL

#define KC_FP_HINT                                                                           \
    "Write one of off, return, return(VALUE), sleep(MS), panic, exit, exit(CODE) or pause, " \
    "optionally preceded by N% and N*, as in 50%3*return(EIO)."

enum kc_fp_kind { KC_FP_OFF, KC_FP_RETURN, KC_FP_SLEEP, KC_FP_PANIC, KC_FP_EXIT, KC_FP_PAUSE };

static const char *const kc_fp_kind_names[] = {"off", "return", "sleep", "panic", "exit", "pause"};

/* A parsed specification. */
struct kc_fp_action {
    enum kc_fp_kind kind;
    bool has_pct;   /* an N% prefix was given */
    bool has_count; /* an N* prefix was given */
    bool has_arg;   /* return(VALUE) or exit(CODE) rather than the bare form */
    uint32_t ppm;   /* probability in parts per million, when has_pct */
    uint32_t count; /* fires left, when has_count */
    uint32_t arg;   /* sleep milliseconds or exit status */
    char value[KC_FAILPOINT_VALUE_MAX + 1]; /* return(VALUE), "" otherwise */
};

/* An armed failpoint; the list is sorted by name and guarded by kc_fp_lock. */
struct kc_fp_entry {
    struct kc_fp_entry *next;
    char name[KC_FAILPOINT_NAME_MAX + 1];
    struct kc_fp_action act;
    uint64_t gen;     /* changes on every set; waiters wake when it does */
    uint64_t hits;    /* fires since the last set */
    unsigned waiters; /* threads paused or sleeping on this entry */
    bool removed;     /* unlinked; the last waiter frees it */
};

/* A parsed configure() entry waiting to be applied. */
struct kc_fp_pending {
    char name[KC_FAILPOINT_NAME_MAX + 1];
    struct kc_fp_action act;
};

atomic_uint kc_failpoints_armed_;

static pthread_mutex_t kc_fp_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t kc_fp_cond; /* broadcast on every change; CLOCK_MONOTONIC */
static pthread_once_t kc_fp_once = PTHREAD_ONCE_INIT;
static struct kc_fp_entry *kc_fp_list;
static unsigned kc_fp_count;
static uint64_t kc_fp_gen;
static uint64_t kc_fp_rng = KC_FP_SEED_DEFAULT;

static void kc_fp_init_cond(void)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&kc_fp_cond, &attr);
    pthread_condattr_destroy(&attr);
}

static void kc_fp_acquire(void)
{
    pthread_once(&kc_fp_once, kc_fp_init_cond);
    pthread_mutex_lock(&kc_fp_lock);
}

static void kc_fp_release(void)
{
    pthread_mutex_unlock(&kc_fp_lock);
}

/* ---- parsing ------------------------------------------------------------ */

static bool kc_fp_is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool kc_fp_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Narrow [*s, *s + *len) to exclude leading and trailing blanks. */
static void kc_fp_trim(const char **s, size_t *len)
{
    while (*len > 0 && kc_fp_is_blank(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && kc_fp_is_blank((*s)[*len - 1]))
        (*len)--;
}

/*
 * Parse s[0..len) as a whole decimal number no larger than max. Returns 1 on
 * success, 0 when s is empty or holds a non-digit, -1 when it exceeds max.
 */
static int kc_fp_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    bool over = false;

    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!kc_fp_is_digit(s[i]))
            return 0;
        if (!over) {
            unsigned d = (unsigned)(s[i] - '0');
            if (v > (max - d) / 10)
                over = true;
            else
                v = v * 10 + d;
        }
    }
    if (over)
        return -1;
    *out = v;
    return 1;
}

/* Characters allowed in return(VALUE): safe in URLs, JSON and the ';'/'=' syntax. */
static bool kc_fp_is_value_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || kc_fp_is_digit(c) || c == '_' ||
           c == '.' || c == ':' || c == '+' || c == '-' || c == '/';
}

/* Fill err for a malformed spec of failpoint name; returns KC_EINVAL. */
KC_PRINTF(4, 5)
static int kc_fp_bad_spec(struct kc_error *err, const char *name, const char *spec, const char *fmt,
                          ...)
{
    char reason[192];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    kc_error_set(err, KC_EINVAL, "invalid specification for failpoint \"%s\": %s", name, reason);
    kc_error_detail(err, "The specification was \"%s\".", spec);
    kc_error_hint(err, "%s", KC_FP_HINT);
    return KC_EINVAL;
}

/* Parse the probability in "N%" (tok is N); returns 0 or KC_EINVAL. */
static int kc_fp_parse_pct(const char *tok, size_t len, uint32_t *ppm, const char *name,
                           const char *spec, struct kc_error *err)
{
    const char *dot = memchr(tok, '.', len);
    size_t ilen = dot != NULL ? (size_t)(dot - tok) : len;
    size_t flen = dot != NULL ? len - ilen - 1 : 0;
    uint64_t ipart = 0, fpart = 0;
    int rc;

    rc = kc_fp_parse_uint(tok, ilen, 1000, &ipart);
    if (rc == 0 || (dot != NULL && flen == 0) ||
        (flen > 0 && kc_fp_parse_uint(dot + 1, flen, UINT64_MAX, &fpart) == 0))
        return kc_fp_bad_spec(err, name, spec, "invalid probability \"%.*s%%\"", (int)len, tok);
    if (flen > KC_FP_PCT_DIGITS)
        return kc_fp_bad_spec(err, name, spec,
                              "probability \"%.*s%%\" has more than %d decimal places", (int)len,
                              tok, KC_FP_PCT_DIGITS);
    for (size_t i = flen; i < KC_FP_PCT_DIGITS; i++)
        fpart *= 10;
    if (rc < 0 || ipart * 10000 + fpart > KC_FP_PPM_ALL)
        return kc_fp_bad_spec(err, name, spec, "probability \"%.*s%%\" exceeds 100%%", (int)len,
                              tok);
    *ppm = (uint32_t)(ipart * 10000 + fpart);
    return 0;
}

/* Parse the argument of return(...), sleep(...) or exit(...); returns 0 or KC_EINVAL. */
static int kc_fp_parse_arg(struct kc_fp_action *act, const char *arg, size_t len, const char *name,
                           const char *spec, struct kc_error *err)
{
    const char *word = kc_fp_kind_names[act->kind];
    uint64_t v = 0;
    int rc;

    switch (act->kind) {
    case KC_FP_RETURN:
        if (len == 0)
            return kc_fp_bad_spec(err, name, spec,
                                  "empty value in \"return()\": write \"return\" for no value");
        if (len > KC_FAILPOINT_VALUE_MAX)
            return kc_fp_bad_spec(err, name, spec,
                                  "return value \"%.*s...\" is too long (at most %d bytes)", 20,
                                  arg, KC_FAILPOINT_VALUE_MAX);
        for (size_t i = 0; i < len; i++)
            if (!kc_fp_is_value_char(arg[i]))
                return kc_fp_bad_spec(err, name, spec,
                                      "invalid character \"%c\" in return value \"%.*s\"", arg[i],
                                      (int)len, arg);
        memcpy(act->value, arg, len);
        act->value[len] = '\0';
        act->has_arg = true;
        return 0;
    case KC_FP_SLEEP:
    case KC_FP_EXIT:
        rc = kc_fp_parse_uint(arg, len,
                              act->kind == KC_FP_SLEEP ? KC_FAILPOINT_SLEEP_MAX : UINT64_MAX, &v);
        if (rc == 0)
            return kc_fp_bad_spec(
                err, name, spec, "invalid %s \"%.*s\" in %s(...): expected a whole number",
                act->kind == KC_FP_SLEEP ? "duration" : "exit code", (int)len, arg, word);
        if (rc < 0 || (act->kind == KC_FP_EXIT && v > 255))
            return kc_fp_bad_spec(err, name, spec, "%s \"%.*s\" is out of range (at most %u)",
                                  act->kind == KC_FP_SLEEP ? "sleep duration" : "exit code",
                                  (int)len, arg,
                                  act->kind == KC_FP_SLEEP ? KC_FAILPOINT_SLEEP_MAX : 255u);
        act->arg = (uint32_t)v;
        act->has_arg = true;
        return 0;
    default: return kc_fp_bad_spec(err, name, spec, "action \"%s\" takes no argument", word);
    }
}

/*
 * Parse a trimmed specification s[0..len) of failpoint name into act.
 * Returns 0, or KC_EINVAL with err filled.
 */
static int kc_fp_parse_spec(const char *name, const char *s, size_t len, struct kc_fp_action *act,
                            struct kc_error *err)
{
    char spec[256];
    size_t pos = 0, wstart, wlen;
    int kind = -1;

    snprintf(spec, sizeof(spec), "%.*s", (int)len, s);
    memset(act, 0, sizeof(*act));
    if (len == 0)
        return kc_fp_bad_spec(err, name, spec, "empty specification");

    /* Prefixes: N% and N*, each at most once, in either order. */
    while (pos < len && (kc_fp_is_digit(s[pos]) || s[pos] == '.' || s[pos] == '-')) {
        size_t start = pos;
        uint64_t v = 0;
        int rc;

        if (s[pos] == '-')
            return kc_fp_bad_spec(err, name, spec, "negative number in \"%s\"", spec + pos);
        while (pos < len && (kc_fp_is_digit(s[pos]) || s[pos] == '.'))
            pos++;
        if (pos == len || (s[pos] != '%' && s[pos] != '*'))
            return kc_fp_bad_spec(err, name, spec, "expected \"%%\" or \"*\" after \"%.*s\"",
                                  (int)(pos - start), s + start);
        if (s[pos] == '%') {
            if (act->has_pct)
                return kc_fp_bad_spec(err, name, spec, "duplicate probability prefix \"%.*s\"",
                                      (int)(pos + 1 - start), s + start);
            rc = kc_fp_parse_pct(s + start, pos - start, &act->ppm, name, spec, err);
            if (rc != 0)
                return rc;
            act->has_pct = true;
        } else {
            if (act->has_count)
                return kc_fp_bad_spec(err, name, spec, "duplicate count prefix \"%.*s\"",
                                      (int)(pos + 1 - start), s + start);
            rc = kc_fp_parse_uint(s + start, pos - start, UINT32_MAX, &v);
            if (rc == 0)
                return kc_fp_bad_spec(err, name, spec, "count \"%.*s*\" is not a whole number",
                                      (int)(pos - start), s + start);
            if (rc < 0)
                return kc_fp_bad_spec(err, name, spec,
                                      "count \"%.*s*\" is out of range (at most %u)",
                                      (int)(pos - start), s + start, UINT32_MAX);
            act->count = (uint32_t)v;
            act->has_count = true;
        }
        pos++;
    }

    /* The action word: everything up to '(' or the end, so a typo is shown whole. */
    wstart = pos;
    while (pos < len && s[pos] >= 'a' && s[pos] <= 'z')
        pos++;
    wlen = pos - wstart;
    if (wlen == 0) {
        if (pos == len)
            return kc_fp_bad_spec(err, name, spec, "missing action after \"%s\"", spec);
        return kc_fp_bad_spec(err, name, spec, "expected an action at \"%s\"", spec + pos);
    }
    for (size_t k = 0; k < KC_ARRAY_LEN(kc_fp_kind_names); k++)
        if (strlen(kc_fp_kind_names[k]) == wlen &&
            memcmp(kc_fp_kind_names[k], s + wstart, wlen) == 0)
            kind = (int)k;
    if (kind < 0) {
        size_t end = pos;
        while (end < len && s[end] != '(')
            end++;
        return kc_fp_bad_spec(err, name, spec, "unknown action \"%.*s\"", (int)(end - wstart),
                              s + wstart);
    }
    act->kind = (enum kc_fp_kind)kind;
    if (act->kind == KC_FP_OFF && (act->has_pct || act->has_count))
        return kc_fp_bad_spec(err, name, spec, "\"off\" cannot have an N%% or N* prefix");
    if (act->kind == KC_FP_EXIT)
        act->arg = KC_FP_EXIT_DEFAULT;

    if (pos < len && s[pos] == '(') {
        const char *close = memchr(s + pos, ')', len - pos);
        int rc;

        if (close == NULL)
            return kc_fp_bad_spec(err, name, spec, "missing \")\" after \"%s\"", spec + wstart);
        rc = kc_fp_parse_arg(act, s + pos + 1, (size_t)(close - s) - pos - 1, name, spec, err);
        if (rc != 0)
            return rc;
        pos = (size_t)(close - s) + 1;
    } else if (act->kind == KC_FP_SLEEP) {
        return kc_fp_bad_spec(err, name, spec,
                              "action \"sleep\" requires a duration in milliseconds: sleep(MS)");
    }
    if (pos < len)
        return kc_fp_bad_spec(err, name, spec, "unexpected \"%.*s\" after \"%.*s\"",
                              (int)(len - pos), s + pos, (int)(pos - wstart), s + wstart);
    return 0;
}

/* Validate a trimmed name s[0..len) and copy it to out; entry is for messages. */
static int kc_fp_parse_name(const char *s, size_t len, const char *entry, char *out,
                            struct kc_error *err)
{
    if (len == 0) {
        kc_error_set(err, KC_EINVAL, "empty failpoint name in entry \"%s\"", entry);
        kc_error_hint(err, "Write entries as name=action.");
        return KC_EINVAL;
    }
    if (len > KC_FAILPOINT_NAME_MAX) {
        kc_error_set(err, KC_EINVAL, "failpoint name \"%.40s...\" is too long", s);
        kc_error_detail(err, "Names are at most %d bytes; this one has %zu.", KC_FAILPOINT_NAME_MAX,
                        len);
        return KC_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || kc_fp_is_digit(c) || c == '_' || c == '.' || c == '-')) {
            kc_error_set(err, KC_EINVAL, "invalid failpoint name \"%.*s\"", (int)len, s);
            kc_error_detail(err,
                            "Names may contain only lower-case letters, digits, \"_\", \".\" and "
                            "\"-\", as in \"pageserver.ingest.before-flush\".");
            return KC_EINVAL;
        }
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

/* Parse one "name=spec" entry s[0..len) (already trimmed, non-empty). */
static int kc_fp_parse_entry(const char *s, size_t len, struct kc_fp_pending *out,
                             struct kc_error *err)
{
    char entry[256];
    const char *eq = memchr(s, '=', len);
    const char *name, *spec;
    size_t nlen, slen;
    int rc;

    snprintf(entry, sizeof(entry), "%.*s", (int)len, s);
    if (eq == NULL) {
        kc_error_set(err, KC_EINVAL, "missing \"=\" in failpoint entry \"%s\"", entry);
        kc_error_hint(err, "Write entries as name=action, separated by \";\".");
        return KC_EINVAL;
    }
    if (memchr(eq + 1, '=', len - (size_t)(eq + 1 - s)) != NULL) {
        kc_error_set(err, KC_EINVAL, "duplicate \"=\" in failpoint entry \"%s\"", entry);
        kc_error_hint(err, "Write entries as name=action, separated by \";\".");
        return KC_EINVAL;
    }
    name = s;
    nlen = (size_t)(eq - s);
    kc_fp_trim(&name, &nlen);
    rc = kc_fp_parse_name(name, nlen, entry, out->name, err);
    if (rc != 0)
        return rc;
    spec = eq + 1;
    slen = (size_t)(s + len - spec);
    kc_fp_trim(&spec, &slen);
    return kc_fp_parse_spec(out->name, spec, slen, &out->act, err);
}

/* ---- the table ---------------------------------------------------------- */

/* Render act canonically into buf (KC_FP_SPEC_MAX bytes). */
static void kc_fp_format(const struct kc_fp_action *act, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    if (act->has_pct) {
        unsigned ip = act->ppm / 10000, fp = act->ppm % 10000;
        if (fp == 0) {
            n += (size_t)snprintf(buf + n, len - n, "%u%%", ip);
        } else {
            int digits = KC_FP_PCT_DIGITS;
            while (fp % 10 == 0) {
                fp /= 10;
                digits--;
            }
            n += (size_t)snprintf(buf + n, len - n, "%u.%0*u%%", ip, digits, fp);
        }
    }
    if (act->has_count)
        n += (size_t)snprintf(buf + n, len - n, "%u*", act->count);
    n += (size_t)snprintf(buf + n, len - n, "%s", kc_fp_kind_names[act->kind]);
    if (act->kind == KC_FP_SLEEP || (act->kind == KC_FP_EXIT && act->has_arg))
        snprintf(buf + n, len - n, "(%u)", act->arg);
    else if (act->kind == KC_FP_RETURN && act->has_arg)
        snprintf(buf + n, len - n, "(%s)", act->value);
}

/* Find name in the list; *prevp (if not NULL) gets the link that points at it or would. */
static struct kc_fp_entry *kc_fp_find(const char *name, struct kc_fp_entry ***prevp)
{
    struct kc_fp_entry **link = &kc_fp_list;

    while (*link != NULL) {
        int c = strcmp((*link)->name, name);
        if (c == 0)
            break;
        if (c > 0) {
            if (prevp != NULL)
                *prevp = link;
            return NULL;
        }
        link = &(*link)->next;
    }
    if (prevp != NULL)
        *prevp = link;
    return *link;
}

/* Unlink-time bookkeeping: mark e removed and free it unless threads wait on it. */
static void kc_fp_retire(struct kc_fp_entry *e)
{
    e->removed = true;
    if (e->waiters == 0)
        free(e);
}

static void kc_fp_apply_locked(const char *name, const struct kc_fp_action *act)
{
    struct kc_fp_entry **link, *e = kc_fp_find(name, &link);
    char spec[KC_FP_SPEC_MAX];

    if (act->kind == KC_FP_OFF) {
        if (e != NULL) {
            *link = e->next;
            kc_fp_count--;
            kc_fp_retire(e);
            kc_info("failpoint \"%s\" disarmed", name);
        }
    } else {
        if (e == NULL) {
            e = kc_calloc(1, sizeof(*e));
            snprintf(e->name, sizeof(e->name), "%s", name);
            e->next = *link;
            *link = e;
            kc_fp_count++;
        }
        e->act = *act;
        e->gen = ++kc_fp_gen;
        e->hits = 0;
        kc_fp_format(act, spec, sizeof(spec));
        kc_info("failpoint \"%s\" armed: %s", name, spec);
    }
    atomic_store_explicit(&kc_failpoints_armed_, kc_fp_count, memory_order_relaxed);
    pthread_cond_broadcast(&kc_fp_cond);
}

int kc_failpoint_set(const char *name, const char *spec, struct kc_error *err)
{
    struct kc_fp_pending p;
    const char *n = name, *s = spec;
    size_t nlen, slen;
    int rc;

    if (name == NULL || spec == NULL)
        return kc_error_set(err, KC_EINVAL, "failpoint name and specification must not be null");
    nlen = strlen(n);
    slen = strlen(s);
    kc_fp_trim(&n, &nlen);
    kc_fp_trim(&s, &slen);
    rc = kc_fp_parse_name(n, nlen, name, p.name, err);
    if (rc == 0)
        rc = kc_fp_parse_spec(p.name, s, slen, &p.act, err);
    if (rc != 0)
        return rc;
    kc_fp_acquire();
    kc_fp_apply_locked(p.name, &p.act);
    kc_fp_release();
    return 0;
}

int kc_failpoint_configure(const char *specs, struct kc_error *err)
{
    struct kc_fp_pending *pend;
    size_t npend = 0, max = 1, total;
    const char *p;
    int rc = 0;

    if (specs == NULL)
        return kc_error_set(err, KC_EINVAL, "failpoint list must not be null");
    total = strlen(specs);
    p = specs;
    kc_fp_trim(&p, &total);
    if (total == 0)
        return 0;
    for (size_t i = 0; i < total; i++)
        if (p[i] == ';')
            max++;
    pend = kc_calloc(max, sizeof(*pend));
    for (size_t start = 0, idx = 1; start <= total; idx++) {
        const char *semi = memchr(p + start, ';', total - start);
        size_t end = semi != NULL ? (size_t)(semi - p) : total;
        const char *e = p + start;
        size_t elen = end - start;

        kc_fp_trim(&e, &elen);
        if (elen == 0) {
            if (semi == NULL && start > 0)
                break; /* a trailing ';' */
            rc = kc_error_set(err, KC_EINVAL, "empty entry %zu in failpoint list", idx);
            kc_error_detail(err, "The list was \"%.200s\".", p);
            kc_error_hint(err, "Separate entries with a single \";\".");
            break;
        }
        rc = kc_fp_parse_entry(e, elen, &pend[npend], err);
        if (rc != 0)
            break;
        npend++;
        if (semi == NULL)
            break;
        start = end + 1;
    }
    if (rc == 0) {
        kc_fp_acquire();
        for (size_t i = 0; i < npend; i++)
            kc_fp_apply_locked(pend[i].name, &pend[i].act);
        kc_fp_release();
    }
    free(pend);
    return rc;
}

int kc_failpoints_init_from_env(struct kc_error *err)
{
    const char *list = getenv(KC_FAILPOINTS_ENV);
    const char *seedstr = getenv(KC_FAILPOINTS_SEED_ENV);
    uint64_t seed;
    int rc;

    if (seedstr != NULL && *seedstr != '\0') {
        if (kc_fp_parse_uint(seedstr, strlen(seedstr), UINT64_MAX, &seed) != 1) {
            kc_error_set(err, KC_EINVAL, "invalid %s \"%s\"", KC_FAILPOINTS_SEED_ENV, seedstr);
            kc_error_hint(err, "Set it to a decimal integer, or unset it for a random seed.");
            return KC_EINVAL;
        }
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed =
            ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
    }
    if (list != NULL) {
        rc = kc_failpoint_configure(list, err);
        if (rc != 0) {
            kc_error_prefix(err, "%s", KC_FAILPOINTS_ENV);
            return rc;
        }
    }
    kc_failpoint_seed(seed);
    return 0;
}

void kc_failpoints_reset(void)
{
    struct kc_fp_entry *e, *next;
    unsigned n;

    kc_fp_acquire();
    n = kc_fp_count;
    for (e = kc_fp_list; e != NULL; e = next) {
        next = e->next;
        kc_fp_retire(e);
    }
    kc_fp_list = NULL;
    kc_fp_count = 0;
    atomic_store_explicit(&kc_failpoints_armed_, 0, memory_order_relaxed);
    pthread_cond_broadcast(&kc_fp_cond);
    kc_fp_release();
    if (n > 0)
        kc_info("all %u failpoints disarmed", n);
}

void kc_failpoints_render(struct kc_sbuf *out)
{
    char spec[KC_FP_SPEC_MAX];

    kc_fp_acquire();
    for (struct kc_fp_entry *e = kc_fp_list; e != NULL; e = e->next) {
        kc_fp_format(&e->act, spec, sizeof(spec));
        kc_sbuf_printf(out, "%s=%s\n", e->name, spec);
    }
    kc_fp_release();
}

int kc_failpoint_get(const char *name, char *spec_out, size_t len)
{
    char spec[KC_FP_SPEC_MAX] = "off";
    struct kc_fp_entry *e;

    kc_fp_acquire();
    e = kc_fp_find(name, NULL);
    if (e != NULL)
        kc_fp_format(&e->act, spec, sizeof(spec));
    kc_fp_release();
    if (len > 0)
        snprintf(spec_out, len, "%s", spec);
    return e != NULL;
}

uint64_t kc_failpoint_hits(const char *name)
{
    struct kc_fp_entry *e;
    uint64_t hits = 0;

    kc_fp_acquire();
    e = kc_fp_find(name, NULL);
    if (e != NULL)
        hits = e->hits;
    kc_fp_release();
    return hits;
}

unsigned kc_failpoint_waiters(const char *name)
{
    struct kc_fp_entry *e;
    unsigned n = 0;

    kc_fp_acquire();
    e = kc_fp_find(name, NULL);
    if (e != NULL)
        n = e->waiters;
    kc_fp_release();
    return n;
}

void kc_failpoint_seed(uint64_t seed)
{
    kc_fp_acquire();
    kc_fp_rng = seed;
    kc_fp_release();
}

/* ---- evaluation --------------------------------------------------------- */

/* SplitMix64 step; caller holds kc_fp_lock. */
static uint64_t kc_fp_random_locked(void)
{
    uint64_t z = (kc_fp_rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Decide whether e fires now, consuming one of its N* count when it does. */
static bool kc_fp_fires_locked(struct kc_fp_entry *e)
{
    if (e->act.has_count && e->act.count == 0)
        return false;
    if (e->act.has_pct && e->act.ppm < KC_FP_PPM_ALL &&
        kc_fp_random_locked() % KC_FP_PPM_ALL >= e->act.ppm)
        return false;
    if (e->act.has_count)
        e->act.count--;
    e->hits++;
    return true;
}

/*
 * Block until e is set again or removed, or until deadline passes (NULL: no
 * deadline). Called and returns with kc_fp_lock held; e may be freed on
 * return and must not be used afterwards.
 */
static void kc_fp_wait_locked(struct kc_fp_entry *e, const struct timespec *deadline)
{
    uint64_t gen = e->gen;

    e->waiters++;
    while (!e->removed && e->gen == gen) {
        if (deadline == NULL)
            pthread_cond_wait(&kc_fp_cond, &kc_fp_lock);
        else if (pthread_cond_timedwait(&kc_fp_cond, &kc_fp_lock, deadline) == ETIMEDOUT)
            break;
    }
    e->waiters--;
    if (e->removed && e->waiters == 0)
        free(e);
}

int kc_failpoint_eval(const char *name, char *value_out, size_t value_len)
{
    if (value_out != NULL && value_len > 0)
        value_out[0] = '\0';
    kc_fp_acquire();
    for (;;) {
        struct kc_fp_entry *e = kc_fp_find(name, NULL);
        struct timespec deadline;

        if (e == NULL || !kc_fp_fires_locked(e))
            break;
        kc_log(e->hits == 1 ? KC_LOG_INFO : KC_LOG_DEBUG, "failpoint \"%s\" fired: %s%s%s%s",
               e->name, kc_fp_kind_names[e->act.kind], e->act.value[0] != '\0' ? "(" : "",
               e->act.value, e->act.value[0] != '\0' ? ")" : "");
        switch (e->act.kind) {
        case KC_FP_RETURN:
            if (value_out != NULL && value_len > 0)
                snprintf(value_out, value_len, "%s", e->act.value);
            kc_fp_release();
            return 1;
        case KC_FP_SLEEP:
            clock_gettime(CLOCK_MONOTONIC, &deadline);
            deadline.tv_sec += (time_t)(e->act.arg / 1000);
            deadline.tv_nsec += (long)(e->act.arg % 1000) * 1000000L;
            if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
            }
            kc_fp_wait_locked(e, &deadline);
            kc_fp_release();
            return 0;
        case KC_FP_PAUSE:
            kc_fp_wait_locked(e, NULL);
            continue; /* evaluate whatever the failpoint is now */
        case KC_FP_PANIC:
            kc_log_write(KC_LOG_FATAL, "failpoint \"%s\" fired: panic, aborting", e->name);
            abort();
        case KC_FP_EXIT:
            kc_warn("failpoint \"%s\" fired: exiting with status %u", e->name, e->act.arg);
            _exit((int)e->act.arg);
        case KC_FP_OFF: break;
        }
        break;
    }
    kc_fp_release();
    return 0;
}

int kc_failpoint_errno(const char *value, int dflt)
{
    static const struct {
        const char *name;
        int code;
    } names[] = {
        {"EIO", EIO},
        {"ENOSPC", ENOSPC},
        {"EAGAIN", EAGAIN},
        {"EINTR", EINTR},
        {"ENOENT", ENOENT},
        {"EEXIST", EEXIST},
        {"EACCES", EACCES},
        {"EPERM", EPERM},
        {"ENOMEM", ENOMEM},
        {"EBADF", EBADF},
        {"EINVAL", EINVAL},
        {"EPIPE", EPIPE},
        {"EROFS", EROFS},
        {"EDQUOT", EDQUOT},
        {"EMFILE", EMFILE},
        {"ETIMEDOUT", ETIMEDOUT},
        {"ECONNRESET", ECONNRESET},
        {"ECONNREFUSED", ECONNREFUSED},
        {"ECONNABORTED", ECONNABORTED},
        {"EHOSTUNREACH", EHOSTUNREACH},
        {"ENETUNREACH", ENETUNREACH},
        {"EADDRINUSE", EADDRINUSE},
    };
    uint64_t v;

    if (value == NULL || *value == '\0')
        return dflt;
    for (size_t i = 0; i < KC_ARRAY_LEN(names); i++)
        if (strcmp(value, names[i].name) == 0)
            return names[i].code;
    if (kc_fp_parse_uint(value, strlen(value), 4095, &v) == 1 && v > 0)
        return (int)v;
    return dflt;
}
