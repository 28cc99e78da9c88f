/* SPDX-License-Identifier: Apache-2.0 */
/* config.c -- table-driven settings: file parser, flags, --help and dump. See config.h. */
#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"

#define CFG_NAME_MAX  64 /* longest setting name */
#define CFG_SHOW_MAX  64 /* longest value quoted in an error message */
#define CFG_WIDTH     80 /* --help wraps at this column */
#define CFG_LEFT_MAX  30 /* widest option column in --help before help moves down */
#define CFG_FLAGS_ALL 0xFu

/* A parsed value before it is stored; s points into the input text. */
union cfg_value {
    bool b;
    int64_t i;
    int c;
    const char *s;
};

struct cfg_unit {
    const char *name;
    int64_t mult;
};

static const struct cfg_unit cfg_duration_units[] = {
    {"ms", 1},          {"s", 1000},        {"m", 60 * 1000},
    {"min", 60 * 1000}, {"h", 3600 * 1000}, {"d", 24 * 3600 * 1000},
    {NULL, 0},
};

static const struct cfg_unit cfg_size_units[] = {
    {"b", 1},
    {"kb", 1024},
    {"mb", 1024 * 1024},
    {"gb", 1024 * 1024 * 1024},
    {"tb", (int64_t)1024 * 1024 * 1024 * 1024},
    {"kib", 1024},
    {"mib", 1024 * 1024},
    {"gib", 1024 * 1024 * 1024},
    {"tib", (int64_t)1024 * 1024 * 1024 * 1024},
    {NULL, 0},
};

/* Largest first; these are also the units kc_config_format_* writes. */
static const struct cfg_unit cfg_duration_out[] = {
    {"d", 24 * 3600 * 1000}, {"h", 3600 * 1000}, {"min", 60 * 1000}, {"s", 1000}, {NULL, 0},
};
static const struct cfg_unit cfg_size_out[] = {
    {"TB", (int64_t)1024 * 1024 * 1024 * 1024},
    {"GB", 1024 * 1024 * 1024},
    {"MB", 1024 * 1024},
    {"kB", 1024},
    {NULL, 0},
};

static bool cfg_is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static bool cfg_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char cfg_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool cfg_ieq(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++)
        if (cfg_lower(*a) != cfg_lower(*b))
            return false;
    return *a == *b;
}

static void *cfg_field(const struct kc_config_entry *e, void *settings)
{
    return (char *)settings + e->offset;
}

static const void *cfg_cfield(const struct kc_config_entry *e, const void *settings)
{
    return (const char *)settings + e->offset;
}

/*
 * Canonical form of the first len bytes of name: lower case, '_' -> '-'.
 * out has room for CFG_NAME_MAX + 1 bytes. False when empty or too long.
 */
static bool cfg_norm(const char *name, size_t len, char *out)
{
    if (len == 0 || len > CFG_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        out[i] = name[i] == '_' ? '-' : cfg_lower(name[i]);
    out[len] = '\0';
    return true;
}

/* Index of the entry called name[0..len), or -1. */
static long cfg_lookup(const struct kc_config_entry *table, size_t n, const char *name, size_t len)
{
    char key[CFG_NAME_MAX + 1];

    if (!cfg_norm(name, len, key))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (table[i].name != NULL && strcmp(table[i].name, key) == 0)
            return (long)i;
    return -1;
}

const struct kc_config_entry *kc_config_find(const struct kc_config_entry *table, size_t n,
                                             const char *name)
{
    long i = cfg_lookup(table, n, name, strlen(name));
    return i < 0 ? NULL : &table[i];
}

/* Edit distance with adjacent transpositions (optimal string alignment). */
static size_t cfg_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[3][CFG_NAME_MAX + 1];
    size_t *prev2 = d[0], *prev = d[1], *cur = d[2];

    if (la > CFG_NAME_MAX || lb > CFG_NAME_MAX)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t *t;
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

/*
 * The known name closest to name[0..len), or NULL when none is close: at most
 * a third of the typed length apart, and never more than 3 edits. extra, if
 * not NULL, is a NULL-terminated list of further candidates (built-in flags).
 */
static const char *cfg_suggest(const struct kc_config_entry *table, size_t n, const char *name,
                               size_t len, const char *const *extra)
{
    char key[CFG_NAME_MAX + 1];
    const char *best = NULL;
    size_t best_d = SIZE_MAX, limit;

    if (!cfg_norm(name, len, key))
        return NULL;
    limit = len / 3;
    limit = limit < 1 ? 1 : limit > 3 ? 3 : limit;
    for (size_t i = 0; i < n; i++) {
        size_t dist = table[i].name ? cfg_distance(key, table[i].name) : SIZE_MAX;
        if (dist < best_d) {
            best_d = dist;
            best = table[i].name;
        }
    }
    for (; extra != NULL && *extra != NULL; extra++) {
        size_t dist = cfg_distance(key, *extra);
        if (dist < best_d) {
            best_d = dist;
            best = *extra;
        }
    }
    return best_d <= limit ? best : NULL;
}

/* Copy of s fit for a message: control bytes as '?', long values cut with "...". */
static const char *cfg_show(const char *s, size_t len, char *buf, size_t size)
{
    size_t o = 0;

    for (size_t i = 0; i < len && o + 4 < size; i++) {
        if (i == CFG_SHOW_MAX) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        buf[o++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    }
    buf[o] = '\0';
    return buf;
}

/* ---- scalar parsers -------------------------------------------------------- */

static bool cfg_parse_int(const char *s, int64_t *out)
{
    const uint64_t lim = (uint64_t)INT64_MAX + 1;
    uint64_t acc = 0;
    bool neg = false;

    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (!cfg_is_digit(*s))
        return false;
    for (; cfg_is_digit(*s); s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (acc > (lim - d) / 10)
            return false;
        acc = acc * 10 + d;
    }
    if (*s != '\0' || (!neg && acc == lim))
        return false;
    *out = neg ? (acc == lim ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
    return true;
}

static bool cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "on", "yes", "1"};
    static const char *const no[] = {"false", "off", "no", "0"};

    for (size_t i = 0; i < KC_ARRAY_LEN(yes); i++) {
        if (cfg_ieq(s, yes[i])) {
            *out = true;
            return true;
        }
        if (cfg_ieq(s, no[i])) {
            *out = false;
            return true;
        }
    }
    return false;
}

/*
 * "<digits>[.<digits>][ ]<unit>" -> value in base units; bare numbers use
 * bare_mult. Up to 6 fraction digits count; the result is rounded half up.
 */
static bool cfg_parse_quantity(const char *s, const struct cfg_unit *units, int64_t bare_mult,
                               int64_t *out)
{
    int64_t whole = 0, frac = 0, scale = 1, mult = bare_mult, total, part;
    bool digits = false;
    const char *p = s, *unit;

    for (; cfg_is_digit(*p); p++) {
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, *p - '0', &whole))
            return false;
        digits = true;
    }
    if (*p == '.') {
        p++;
        if (!cfg_is_digit(*p))
            return false;
        for (; cfg_is_digit(*p); p++) {
            if (scale < 1000000) {
                frac = frac * 10 + (*p - '0');
                scale *= 10;
            }
            digits = true;
        }
    }
    if (!digits)
        return false;
    unit = p;
    while (*unit == ' ')
        unit++;
    if (*unit != '\0') {
        const struct cfg_unit *u;
        for (u = units; u->name != NULL; u++)
            if (cfg_ieq(unit, u->name))
                break;
        if (u->name == NULL)
            return false;
        mult = u->mult;
    } else if (unit != p) {
        return false; /* trailing blanks without a unit */
    }
    if (__builtin_mul_overflow(whole, mult, &total))
        return false;
    part = (frac * mult + scale / 2) / scale; /* frac < 10^6, mult < 2^41: no overflow */
    if (__builtin_add_overflow(total, part, &total))
        return false;
    *out = total;
    return true;
}

int kc_config_parse_duration(const char *s, int64_t bare_unit_ms, int64_t *ms, struct kc_error *err)
{
    if (bare_unit_ms <= 0 || !cfg_parse_quantity(s, cfg_duration_units, bare_unit_ms, ms))
        return kc_error_set(err, KC_EINVAL, "invalid duration: \"%s\"", s);
    return 0;
}

int kc_config_parse_size(const char *s, int64_t *bytes, struct kc_error *err)
{
    if (!cfg_parse_quantity(s, cfg_size_units, 1, bytes))
        return kc_error_set(err, KC_EINVAL, "invalid size: \"%s\"", s);
    return 0;
}

static void cfg_format_units(int64_t v, const struct cfg_unit *units, const char *base,
                             struct kc_sbuf *out)
{
    if (v > 0)
        for (; units->name != NULL; units++)
            if (v % units->mult == 0) {
                kc_sbuf_printf(out, "%" PRId64 "%s", v / units->mult, units->name);
                return;
            }
    kc_sbuf_printf(out, "%" PRId64 "%s", v, base);
}

void kc_config_format_duration(int64_t ms, struct kc_sbuf *out)
{
    if (ms == 0)
        kc_sbuf_puts(out, "0s");
    else
        cfg_format_units(ms, cfg_duration_out, "ms", out);
}

void kc_config_format_size(int64_t bytes, struct kc_sbuf *out)
{
    cfg_format_units(bytes, cfg_size_out, "", out);
}

/* ---- typed values ---------------------------------------------------------- */

/* The effective bounds of a numeric entry. */
static void cfg_bounds(const struct kc_config_entry *e, int64_t *lo, int64_t *hi)
{
    if (e->min == 0 && e->max == 0) {
        *lo = e->type == KC_CONFIG_INT ? INT64_MIN : 0;
        *hi = INT64_MAX;
    } else {
        *lo = e->min;
        *hi = e->max;
    }
}

static int64_t cfg_bare_unit(const struct kc_config_entry *e)
{
    return (e->flags & KC_CONFIG_MS) ? 1 : 1000;
}

static void cfg_format_number(const struct kc_config_entry *e, int64_t v, struct kc_sbuf *out)
{
    if (e->type == KC_CONFIG_DURATION)
        kc_config_format_duration(v, out);
    else if (e->type == KC_CONFIG_SIZE)
        kc_config_format_size(v, out);
    else
        kc_sbuf_printf(out, "%" PRId64, v);
}

/*
 * Append "<from>A<to>B" ("between 1 and 9", "range: 1 to 9"), "at least A" or
 * "at most B"; nothing when unbounded.
 */
static void cfg_format_range(const struct kc_config_entry *e, const char *from, const char *to,
                             struct kc_sbuf *out)
{
    int64_t lo, hi, type_lo = e->type == KC_CONFIG_INT ? INT64_MIN : 0;

    cfg_bounds(e, &lo, &hi);
    if (lo != type_lo && hi != INT64_MAX) {
        kc_sbuf_puts(out, from);
        cfg_format_number(e, lo, out);
        kc_sbuf_puts(out, to);
        cfg_format_number(e, hi, out);
    } else if (lo != type_lo) {
        kc_sbuf_puts(out, "at least ");
        cfg_format_number(e, lo, out);
    } else if (hi != INT64_MAX) {
        kc_sbuf_puts(out, "at most ");
        cfg_format_number(e, hi, out);
    }
}

/* Append the choices joined by sep. */
static void cfg_format_choices(const struct kc_config_entry *e, const char *sep,
                               struct kc_sbuf *out)
{
    for (size_t i = 0; e->choices != NULL && e->choices[i] != NULL; i++)
        kc_sbuf_printf(out, "%s%s", i > 0 ? sep : "", e->choices[i]);
}

/* The DETAIL of a bad-value error: what the entry accepts. */
static void cfg_expected(const struct kc_config_entry *e, struct kc_sbuf *out)
{
    size_t mark;

    switch (e->type) {
    case KC_CONFIG_BOOL:
        kc_sbuf_puts(out, "Expected a boolean: true, false, on, off, yes, no, 1 or 0.");
        return;
    case KC_CONFIG_STRING: kc_sbuf_puts(out, "Expected text without control characters."); return;
    case KC_CONFIG_CHOICE:
        kc_sbuf_puts(out, "Expected one of: ");
        cfg_format_choices(e, ", ", out);
        kc_sbuf_puts(out, ".");
        return;
    case KC_CONFIG_INT: kc_sbuf_puts(out, "Expected an integer"); break;
    case KC_CONFIG_DURATION:
        kc_sbuf_printf(out,
                       "Expected a duration such as 250ms, 5s, 2min, 1h or 7d (a number "
                       "without a unit is in %s)",
                       (e->flags & KC_CONFIG_MS) ? "milliseconds" : "seconds");
        break;
    case KC_CONFIG_SIZE:
        kc_sbuf_puts(out, "Expected a size such as 8192, 64kB, 16MB or 1GB (a number without a "
                          "unit is in bytes)");
        break;
    }
    mark = out->len;
    kc_sbuf_puts(out, " ");
    cfg_format_range(e, "between ", " and ", out);
    if (out->len == mark + 1) {
        out->len = mark; /* unbounded: drop the space */
        out->data[mark] = '\0';
    }
    kc_sbuf_puts(out, ".");
}

/* Parse text as a value of e, range included. Strings point into text. */
static bool cfg_parse_value(const struct kc_config_entry *e, const char *text, union cfg_value *v)
{
    int64_t lo, hi;

    switch (e->type) {
    case KC_CONFIG_BOOL: return cfg_parse_bool(text, &v->b);
    case KC_CONFIG_STRING:
        for (const char *p = text; *p != '\0'; p++)
            if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
                return false;
        v->s = text;
        return true;
    case KC_CONFIG_CHOICE:
        for (int i = 0; e->choices != NULL && e->choices[i] != NULL; i++)
            if (cfg_ieq(text, e->choices[i])) {
                v->c = i;
                return true;
            }
        return false;
    case KC_CONFIG_INT:
        if (!cfg_parse_int(text, &v->i))
            return false;
        break;
    case KC_CONFIG_DURATION:
        if (!cfg_parse_quantity(text, cfg_duration_units, cfg_bare_unit(e), &v->i))
            return false;
        break;
    case KC_CONFIG_SIZE:
        if (!cfg_parse_quantity(text, cfg_size_units, 1, &v->i))
            return false;
        break;
    default: return false;
    }
    cfg_bounds(e, &lo, &hi);
    return v->i >= lo && v->i <= hi;
}

static void cfg_store(const struct kc_config_entry *e, void *settings, const union cfg_value *v)
{
    void *f = cfg_field(e, settings);

    switch (e->type) {
    case KC_CONFIG_BOOL: *(bool *)f = v->b; break;
    case KC_CONFIG_CHOICE: *(int *)f = v->c; break;
    case KC_CONFIG_STRING: {
        char *copy = v->s != NULL ? kc_strdup(v->s) : NULL;
        free(*(char **)f);
        *(char **)f = copy;
        break;
    }
    default: *(int64_t *)f = v->i; break;
    }
}

/* Fill err with the bad-value error for e: 'invalid value for <label>: "text"'. */
static int cfg_bad_value(const struct kc_config_entry *e, const char *label, const char *text,
                         struct kc_error *err)
{
    struct kc_sbuf detail = KC_SBUF_INIT;
    char shown[CFG_SHOW_MAX + 8];

    kc_error_set(err, KC_EINVAL, "invalid value for %s: \"%s\"", label,
                 cfg_show(text, strlen(text), shown, sizeof(shown)));
    cfg_expected(e, &detail);
    kc_error_detail(err, "%s", kc_sbuf_str(&detail));
    kc_sbuf_fini(&detail);
    return KC_EINVAL;
}

/* Parse text for e and store it; label names the source in messages. */
static int cfg_assign(const struct kc_config_entry *e, void *settings, const char *text,
                      const char *label, struct kc_error *err)
{
    union cfg_value v;

    if (!cfg_parse_value(e, text, &v))
        return cfg_bad_value(e, label, text, err);
    cfg_store(e, settings, &v);
    return 0;
}

/* ---- table ----------------------------------------------------------------- */

static int cfg_check_name(const struct kc_config_entry *table, size_t idx, struct kc_error *err)
{
    const char *name = table[idx].name;
    size_t len;

    if (name == NULL)
        return kc_error_set(err, KC_EINVAL, "configuration entry %zu has no name", idx);
    len = strlen(name);
    if (len == 0 || len > CFG_NAME_MAX || name[0] < 'a' || name[0] > 'z' || name[len - 1] == '-' ||
        strstr(name, "--") != NULL || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != len)
        return kc_error_set(err, KC_EINVAL, "invalid setting name \"%s\"", name);
    if (strcmp(name, "config") == 0 || strcmp(name, "help") == 0 || strncmp(name, "no-", 3) == 0)
        return kc_error_set(err, KC_EINVAL, "setting name \"%s\" is reserved", name);
    for (size_t j = 0; j < idx; j++)
        if (table[j].name != NULL && strcmp(table[j].name, name) == 0)
            return kc_error_set(err, KC_EINVAL, "setting \"%s\" is listed twice", name);
    return 0;
}

static int cfg_check_entry(const struct kc_config_entry *table, size_t idx, struct kc_error *err)
{
    const struct kc_config_entry *e = &table[idx];
    bool numeric =
        e->type == KC_CONFIG_INT || e->type == KC_CONFIG_DURATION || e->type == KC_CONFIG_SIZE;
    union cfg_value v;
    int rc;

    if ((rc = cfg_check_name(table, idx, err)) != 0)
        return rc;
    if (e->type < KC_CONFIG_BOOL || e->type > KC_CONFIG_SIZE)
        return kc_error_set(err, KC_EINVAL, "setting \"%s\" has an invalid type", e->name);
    if (e->help == NULL || e->help[0] == '\0')
        return kc_error_set(err, KC_EINVAL, "setting \"%s\" has no help text", e->name);
    if ((e->flags & ~CFG_FLAGS_ALL) != 0 ||
        ((e->flags & KC_CONFIG_MS) && e->type != KC_CONFIG_DURATION))
        return kc_error_set(err, KC_EINVAL, "setting \"%s\" has invalid flags", e->name);
    if (numeric ? (e->min > e->max || (e->type != KC_CONFIG_INT && e->min < 0))
                : (e->min != 0 || e->max != 0))
        return kc_error_set(err, KC_EINVAL, "setting \"%s\" has an invalid range", e->name);
    if (e->type == KC_CONFIG_CHOICE) {
        if (e->choices == NULL || e->choices[0] == NULL)
            return kc_error_set(err, KC_EINVAL, "setting \"%s\" has no choices", e->name);
        for (size_t i = 0; e->choices[i] != NULL; i++) {
            if (e->choices[i][0] == '\0' || strpbrk(e->choices[i], " \t\"#") != NULL)
                return kc_error_set(err, KC_EINVAL, "setting \"%s\" has an invalid choice",
                                    e->name);
            for (size_t j = 0; j < i; j++)
                if (cfg_ieq(e->choices[i], e->choices[j]))
                    return kc_error_set(err, KC_EINVAL, "setting \"%s\" lists choice \"%s\" twice",
                                        e->name, e->choices[i]);
        }
    } else if (e->choices != NULL) {
        return kc_error_set(err, KC_EINVAL, "setting \"%s\" has choices but is no choice", e->name);
    }
    if (e->flags & KC_CONFIG_REQUIRED) {
        if (e->default_value != NULL)
            return kc_error_set(err, KC_EINVAL, "required setting \"%s\" has a default", e->name);
        return 0;
    }
    if (e->default_value == NULL) {
        if (e->type != KC_CONFIG_STRING)
            return kc_error_set(err, KC_EINVAL, "setting \"%s\" has no default", e->name);
        return 0;
    }
    if (!cfg_parse_value(e, e->default_value, &v)) {
        char label[CFG_NAME_MAX + 32];
        snprintf(label, sizeof(label), "the default of setting \"%s\"", e->name);
        return cfg_bad_value(e, label, e->default_value, err);
    }
    return 0;
}

int kc_config_table_check(const struct kc_config_entry *table, size_t n, struct kc_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = cfg_check_entry(table, i, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int kc_config_defaults(const struct kc_config_entry *table, size_t n, void *settings,
                       struct kc_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct kc_config_entry *e = &table[i];
        void *f = cfg_field(e, settings);
        union cfg_value v;
        char label[CFG_NAME_MAX + 32];

        /* Start from the zero value, so a failure leaves nothing to free. */
        switch (e->type) {
        case KC_CONFIG_BOOL: *(bool *)f = false; break;
        case KC_CONFIG_CHOICE: *(int *)f = -1; break; /* -1: not set */
        case KC_CONFIG_STRING: *(char **)f = NULL; break;
        default: *(int64_t *)f = 0; break;
        }
        if (e->default_value == NULL)
            continue;
        snprintf(label, sizeof(label), "the default of setting \"%s\"", e->name);
        if (!cfg_parse_value(e, e->default_value, &v))
            return cfg_bad_value(e, label, e->default_value, err);
        cfg_store(e, settings, &v);
    }
    return 0;
}

void kc_config_free(const struct kc_config_entry *table, size_t n, void *settings)
{
    for (size_t i = 0; i < n; i++)
        if (table[i].type == KC_CONFIG_STRING) {
            char **f = cfg_field(&table[i], settings);
            free(*f);
            *f = NULL;
        }
}

int kc_config_set(const struct kc_config_entry *table, size_t n, void *settings, const char *name,
                  const char *value, struct kc_error *err)
{
    long i = cfg_lookup(table, n, name, strlen(name));
    char label[CFG_NAME_MAX + 16], shown[CFG_SHOW_MAX + 8];

    if (i < 0) {
        const char *near = cfg_suggest(table, n, name, strlen(name), NULL);
        kc_error_set(err, KC_ENOTFOUND, "unknown setting \"%s\"",
                     cfg_show(name, strlen(name), shown, sizeof(shown)));
        if (near != NULL)
            kc_error_hint(err, "Did you mean \"%s\"?", near);
        return KC_ENOTFOUND;
    }
    snprintf(label, sizeof(label), "setting \"%s\"", table[i].name);
    return cfg_assign(&table[i], settings, value, label, err);
}

/* ---- config file ----------------------------------------------------------- */

/* Shared state of one text being parsed. */
struct cfg_parse {
    const struct kc_config_entry *table;
    size_t n;
    void *settings;
    size_t *lines; /* per entry: line that set it in this text, 0 if none */
    const char *source;
    size_t lineno;
    struct kc_error *err;
};

/* Prefix the error already in p->err with "source:line" and return its code. */
static int cfg_at(const struct cfg_parse *p, int rc)
{
    kc_error_prefix(p->err, "%s:%zu", p->source, p->lineno);
    return rc;
}

/* Parse a double-quoted value starting at q (just after the quote) into out. */
static int cfg_unquote(const struct cfg_parse *p, const char *key, const char *q, char *out)
{
    size_t o = 0;

    for (;;) {
        char c = *q++;
        if (c == '\0') {
            kc_error_set(p->err, KC_EINVAL, "unterminated quoted value for setting \"%s\"", key);
            kc_error_hint(p->err, "Close the value with a double quote (\").");
            return cfg_at(p, KC_EINVAL);
        }
        if (c == '"')
            break;
        if (c == '\\') {
            c = *q++;
            if (c != '"' && c != '\\') {
                char shown[8];
                kc_error_set(p->err, KC_EINVAL,
                             "invalid escape \"\\%s\" in quoted value for setting \"%s\"",
                             c == '\0' ? "" : cfg_show(q - 1, 1, shown, sizeof(shown)), key);
                kc_error_detail(p->err, "Inside quotes only \\\" and \\\\ are escapes.");
                return cfg_at(p, KC_EINVAL);
            }
        }
        out[o++] = c;
    }
    out[o] = '\0';
    while (cfg_is_ws(*q))
        q++;
    if (*q != '\0' && *q != '#') {
        kc_error_set(p->err, KC_EINVAL, "unexpected text after quoted value for setting \"%s\"",
                     key);
        kc_error_hint(p->err, "Put a comment after whitespace and \"#\", or quote the whole "
                              "value.");
        return cfg_at(p, KC_EINVAL);
    }
    return 0;
}

/* Parse one line (NUL-terminated, no newline, in a writable buffer). */
static int cfg_parse_line(struct cfg_parse *p, char *line, char *valbuf)
{
    char *s = line, *key, *value, shown[CFG_SHOW_MAX + 8], label[CFG_NAME_MAX + 16];
    const char *name;
    size_t keylen;
    long idx;
    int rc;

    while (cfg_is_ws(*s))
        s++;
    if (*s == '\0' || *s == '#')
        return 0;
    key = s;
    while (*s != '\0' && !cfg_is_ws(*s) && *s != '=')
        s++;
    keylen = (size_t)(s - key);
    if (keylen == 0) {
        kc_error_set(p->err, KC_EINVAL, "missing setting name before \"=\"");
        kc_error_detail(p->err, "Each line must have the form \"name = value\".");
        return cfg_at(p, KC_EINVAL);
    }
    while (cfg_is_ws(*s))
        s++;
    if (*s != '=') {
        kc_error_set(p->err, KC_EINVAL, "missing \"=\" after \"%s\"",
                     cfg_show(key, keylen, shown, sizeof(shown)));
        kc_error_detail(p->err, "Each line must have the form \"name = value\".");
        return cfg_at(p, KC_EINVAL);
    }
    s++;
    while (cfg_is_ws(*s))
        s++;

    idx = cfg_lookup(p->table, p->n, key, keylen);
    if (idx < 0) {
        const char *near = cfg_suggest(p->table, p->n, key, keylen, NULL);
        kc_error_set(p->err, KC_EINVAL, "unknown setting \"%s\"",
                     cfg_show(key, keylen, shown, sizeof(shown)));
        if (near != NULL)
            kc_error_hint(p->err, "Did you mean \"%s\"?", near);
        return cfg_at(p, KC_EINVAL);
    }
    name = p->table[idx].name; /* canonical from here on */

    if (*s == '"') {
        if ((rc = cfg_unquote(p, name, s + 1, valbuf)) != 0)
            return rc;
        value = valbuf;
    } else {
        char *end;
        value = s;
        for (; *s != '\0'; s++)
            if (*s == '#' && cfg_is_ws(s[-1]))
                break;
        end = s;
        while (end > value && cfg_is_ws(end[-1]))
            end--;
        *end = '\0';
    }

    if (p->lines[idx] != 0) {
        kc_error_set(p->err, KC_EINVAL, "setting \"%s\" is given more than once", name);
        kc_error_detail(p->err, "It was first set on line %zu.", p->lines[idx]);
        kc_error_hint(p->err, "Remove one of the lines.");
        return cfg_at(p, KC_EINVAL);
    }
    snprintf(label, sizeof(label), "setting \"%s\"", name);
    if ((rc = cfg_assign(&p->table[idx], p->settings, value, label, p->err)) != 0)
        return cfg_at(p, rc);
    p->lines[idx] = p->lineno;
    return 0;
}

static int cfg_parse_text(struct cfg_parse *p, const char *text, size_t len)
{
    char line[KC_CONFIG_MAX_LINE + 1], valbuf[KC_CONFIG_MAX_LINE + 1];
    size_t pos = 0;

    p->lineno = 0;
    while (pos < len) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t llen = nl != NULL ? (size_t)(nl - start) : len - pos;
        int rc;

        pos += llen + (nl != NULL ? 1 : 0);
        p->lineno++;
        if (p->lineno == 1 && llen >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0) {
            start += 3; /* UTF-8 byte order mark */
            llen -= 3;
        }
        if (llen > 0 && start[llen - 1] == '\r')
            llen--;
        if (llen > KC_CONFIG_MAX_LINE) {
            kc_error_set(p->err, KC_EINVAL, "line is too long");
            kc_error_detail(p->err, "Lines are limited to %d bytes.", KC_CONFIG_MAX_LINE);
            return cfg_at(p, KC_EINVAL);
        }
        if (memchr(start, '\0', llen) != NULL) {
            kc_error_set(p->err, KC_EINVAL, "line contains a NUL byte");
            kc_error_detail(p->err, "A configuration file must be text.");
            return cfg_at(p, KC_EINVAL);
        }
        memcpy(line, start, llen);
        line[llen] = '\0';
        if ((rc = cfg_parse_line(p, line, valbuf)) != 0)
            return rc;
    }
    return 0;
}

int kc_config_parse_text(const struct kc_config_entry *table, size_t n, void *settings,
                         const char *text, size_t len, const char *source, struct kc_error *err)
{
    struct cfg_parse p = {table, n, settings, kc_calloc(n, sizeof(size_t)), source, 0, err};
    int rc = cfg_parse_text(&p, text, len);

    free(p.lines);
    return rc;
}

/* Read all of path into *out (caller frees); at most KC_CONFIG_MAX_FILE bytes. */
static int cfg_read_file(const char *path, char **out, size_t *len, struct kc_error *err)
{
    struct kc_sbuf sb = KC_SBUF_INIT;
    char chunk[8192];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        int code = errno == ENOENT ? KC_ENOTFOUND : KC_EIO;
        return kc_error_set(err, code, "could not open configuration file \"%s\": %s", path,
                            strerror(errno));
    }
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            kc_error_set(err, KC_EIO, "could not read configuration file \"%s\": %s", path,
                         strerror(errno));
            break;
        }
        if (got == 0) {
            close(fd);
            *len = sb.len;
            *out = kc_sbuf_steal(&sb);
            return 0;
        }
        if (sb.len + (size_t)got > KC_CONFIG_MAX_FILE) {
            kc_error_set(err, KC_ETOOBIG, "configuration file \"%s\" is too large", path);
            kc_error_detail(err, "The limit is %d bytes.", KC_CONFIG_MAX_FILE);
            break;
        }
        kc_sbuf_append(&sb, chunk, (size_t)got);
    }
    close(fd);
    kc_sbuf_fini(&sb);
    return err != NULL ? err->code : KC_EIO;
}

static int cfg_parse_file(struct cfg_parse *p, const char *path)
{
    char *text;
    size_t len;
    int rc = cfg_read_file(path, &text, &len, p->err);

    if (rc != 0)
        return rc;
    p->source = path;
    rc = cfg_parse_text(p, text, len);
    free(text);
    return rc;
}

int kc_config_parse_file(const struct kc_config_entry *table, size_t n, void *settings,
                         const char *path, struct kc_error *err)
{
    struct cfg_parse p = {table, n, settings, kc_calloc(n, sizeof(size_t)), path, 0, err};
    int rc = cfg_parse_file(&p, path);

    free(p.lines);
    return rc;
}

/* ---- command line ---------------------------------------------------------- */

/* One flag seen on the command line, applied after the config file. */
struct cfg_flag {
    long idx;          /* entry */
    const char *value; /* text to parse */
};

static const char *const cfg_builtin_flags[] = {"config", "help", NULL};

/* Is name[0..len) the built-in flag want (dashes/underscores and case ignored)? */
static bool cfg_is_name(const char *name, size_t len, const char *want)
{
    char key[CFG_NAME_MAX + 1];
    return cfg_norm(name, len, key) && strcmp(key, want) == 0;
}

/* Does name[0..len) start with "no-" (or "no_", any case) followed by more? */
static bool cfg_is_no_prefix(const char *name, size_t len)
{
    return len > 3 && cfg_lower(name[0]) == 'n' && cfg_lower(name[1]) == 'o' &&
           (name[2] == '-' || name[2] == '_');
}

static int cfg_unknown_flag(const struct kc_config_entry *table, size_t n, const char *arg,
                            struct kc_error *err)
{
    const char *name = arg[1] == '-' ? arg + 2 : arg + 1;
    size_t len = strcspn(name, "=");
    const char *near;
    char shown[CFG_SHOW_MAX + 8];
    long idx;

    kc_error_set(err, KC_EINVAL, "unknown option \"%s\"",
                 cfg_show(arg, strlen(arg), shown, sizeof(shown)));
    if (cfg_is_no_prefix(name, len) && (idx = cfg_lookup(table, n, name + 3, len - 3)) >= 0) {
        kc_error_hint(err, "Only boolean options have a \"--no-\" form; use --%s=<value>.",
                      table[idx].name);
        return KC_EINVAL;
    }
    if (arg[1] != '-' && cfg_lookup(table, n, name, len) >= 0) {
        kc_error_hint(err, "Did you mean \"-%s\"?", arg);
        return KC_EINVAL;
    }
    near = cfg_suggest(table, n, name, len, cfg_builtin_flags);
    if (near != NULL)
        kc_error_hint(err, "Did you mean \"--%s\"?", near);
    else
        kc_error_hint(err, "Run with --help to list the options.");
    return KC_EINVAL;
}

static int cfg_missing_value(const char *name, struct kc_error *err)
{
    kc_error_set(err, KC_EINVAL, "option \"--%s\" requires a value", name);
    kc_error_hint(err, "Give it as --%s=<value> or --%s <value>.", name, name);
    return KC_EINVAL;
}

/*
 * First pass over argv: check every flag, collect the config path, the flags
 * to apply and the positionals (compacted to the front of argv).
 * Returns 0, KC_CONFIG_HELP or an error.
 */
static int cfg_scan_args(const struct kc_config_entry *table, size_t n, int argc, char **argv,
                         struct cfg_flag *flags, size_t *nflags, const char **config, int *npos,
                         struct kc_error *err)
{
    bool only_positional = false;

    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *name, *eq, *value;
        size_t len;
        long idx;
        bool negated = false;

        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            argv[(*npos)++] = argv[i]; /* *npos <= i: never overwrites what is unread */
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return KC_CONFIG_HELP;
        if (arg[1] != '-')
            return cfg_unknown_flag(table, n, arg, err);
        name = arg + 2;
        eq = strchr(name, '=');
        len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        idx = cfg_lookup(table, n, name, len);
        if (idx < 0 && cfg_is_no_prefix(name, len)) {
            idx = cfg_lookup(table, n, name + 3, len - 3);
            if (idx >= 0 && table[idx].type != KC_CONFIG_BOOL)
                idx = -1;
            negated = idx >= 0;
        }
        if (idx < 0 && cfg_is_name(name, len, "config")) {
            if (eq != NULL)
                value = eq + 1;
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                value = argv[++i];
            else
                return cfg_missing_value("config", err);
            if (*config != NULL) {
                kc_error_set(err, KC_EINVAL, "option \"--config\" is given more than once");
                kc_error_hint(err, "Give a single configuration file.");
                return KC_EINVAL;
            }
            *config = value;
            continue;
        }
        if (idx < 0)
            return cfg_unknown_flag(table, n, arg, err);
        if (table[idx].type == KC_CONFIG_BOOL) {
            if (negated && eq != NULL) {
                kc_error_set(err, KC_EINVAL, "option \"--no-%s\" does not take a value",
                             table[idx].name);
                kc_error_hint(err, "Use --no-%s alone, or --%s=<true|false>.", table[idx].name,
                              table[idx].name);
                return KC_EINVAL;
            }
            value = eq != NULL ? eq + 1 : negated ? "false" : "true";
        } else if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i];
        } else {
            return cfg_missing_value(table[idx].name, err);
        }
        flags[*nflags].idx = idx;
        flags[*nflags].value = value;
        (*nflags)++;
    }
    return 0;
}

/* Append the placeholder of e's value in --help; true when it lists the choices. */
static bool cfg_metavar(const struct kc_config_entry *e, struct kc_sbuf *out)
{
    size_t width = 0;

    if (e->metavar != NULL) {
        kc_sbuf_puts(out, e->metavar);
        return false;
    }
    switch (e->type) {
    case KC_CONFIG_INT: kc_sbuf_puts(out, "int"); return false;
    case KC_CONFIG_STRING: kc_sbuf_puts(out, "string"); return false;
    case KC_CONFIG_DURATION: kc_sbuf_puts(out, "duration"); return false;
    case KC_CONFIG_SIZE: kc_sbuf_puts(out, "size"); return false;
    case KC_CONFIG_CHOICE:
        for (size_t i = 0; e->choices != NULL && e->choices[i] != NULL; i++)
            width += strlen(e->choices[i]) + 1;
        if (width > 0 && width <= 25) {
            cfg_format_choices(e, "|", out);
            return true;
        }
        kc_sbuf_puts(out, "choice");
        return false;
    default: kc_sbuf_puts(out, "bool"); return false;
    }
}

static int cfg_required_missing(const struct kc_config_entry *e, struct kc_error *err)
{
    struct kc_sbuf mv = KC_SBUF_INIT;

    cfg_metavar(e, &mv);
    kc_error_set(err, KC_EINVAL, "required setting \"%s\" is not set", e->name);
    kc_error_hint(err, "Give --%s=<%s>, or set \"%s\" in the file named by --config.", e->name,
                  kc_sbuf_str(&mv), e->name);
    kc_sbuf_fini(&mv);
    return KC_EINVAL;
}

int kc_config_load(const struct kc_config_entry *table, size_t n, void *settings, int argc,
                   char **argv, int *nargs, struct kc_error *err)
{
    struct cfg_parse p = {table, n, settings, NULL, "", 0, err};
    struct cfg_flag *flags;
    const char *config = NULL;
    size_t nflags = 0;
    int npos = 0, rc;

    if (nargs != NULL)
        *nargs = 0;
    if ((rc = kc_config_defaults(table, n, settings, err)) != 0)
        return rc;
    if (argc < 0)
        argc = 0;
    flags = kc_calloc((size_t)argc, sizeof(*flags));
    p.lines = kc_calloc(n, sizeof(size_t));
    rc = cfg_scan_args(table, n, argc, argv, flags, &nflags, &config, &npos, err);
    if (rc == 0 && npos > 0 && nargs == NULL) {
        char shown[CFG_SHOW_MAX + 8];
        rc = kc_error_set(err, KC_EINVAL, "unexpected argument \"%s\"",
                          cfg_show(argv[0], strlen(argv[0]), shown, sizeof(shown)));
        kc_error_hint(err, "This command takes no arguments; options start with \"--\".");
    }
    if (rc == 0 && config != NULL)
        rc = cfg_parse_file(&p, config);
    for (size_t i = 0; rc == 0 && i < nflags; i++) {
        const struct kc_config_entry *e = &table[flags[i].idx];
        char label[CFG_NAME_MAX + 16];

        snprintf(label, sizeof(label), "option \"--%s\"", e->name);
        rc = cfg_assign(e, settings, flags[i].value, label, err);
        p.lines[flags[i].idx] = SIZE_MAX; /* set by a flag */
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((table[i].flags & KC_CONFIG_REQUIRED) && p.lines[i] == 0)
            rc = cfg_required_missing(&table[i], err);
    if (rc == 0 && nargs != NULL)
        *nargs = npos;
    free(flags);
    free(p.lines);
    return rc;
}

/* ---- --help and dump ------------------------------------------------------- */

struct cfg_row {
    const char *name; /* sort key */
    char *left;       /* "--name=<metavar>" */
    char *right;      /* help text with defaults */
};

static int cfg_row_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cfg_row *)a)->name, ((const struct cfg_row *)b)->name);
}

/* Append "(required; default: X; range: A to B; one of: ...)" parts to the help text. */
static void cfg_usage_notes(const struct kc_config_entry *e, bool listed, struct kc_sbuf *out)
{
    const char *sep = " (";
    size_t mark;

    if (e->flags & KC_CONFIG_REQUIRED) {
        kc_sbuf_printf(out, "%srequired", sep);
        sep = "; ";
    }
    if (e->default_value != NULL && !(e->flags & KC_CONFIG_SECRET)) {
        union cfg_value v;
        kc_sbuf_printf(out, "%sdefault: ", sep);
        sep = "; ";
        if (!cfg_parse_value(e, e->default_value, &v))
            kc_sbuf_puts(out, e->default_value);
        else if (e->type == KC_CONFIG_STRING)
            kc_sbuf_printf(out, v.s[0] == '\0' || strpbrk(v.s, " \t") ? "\"%s\"" : "%s", v.s);
        else if (e->type == KC_CONFIG_BOOL)
            kc_sbuf_puts(out, v.b ? "true" : "false");
        else if (e->type == KC_CONFIG_CHOICE)
            kc_sbuf_puts(out, e->choices[v.c]);
        else
            cfg_format_number(e, v.i, out);
    }
    if (e->type == KC_CONFIG_INT || e->type == KC_CONFIG_DURATION || e->type == KC_CONFIG_SIZE) {
        mark = out->len;
        kc_sbuf_puts(out, sep);
        cfg_format_range(e, "range: ", " to ", out);
        if (out->len == mark + strlen(sep)) {
            out->len = mark;
            out->data[mark] = '\0';
        } else {
            sep = "; ";
        }
    }
    if (e->type == KC_CONFIG_CHOICE && !listed) {
        kc_sbuf_printf(out, "%sone of: ", sep);
        cfg_format_choices(e, ", ", out);
        sep = "; ";
    }
    if (sep[0] == ';')
        kc_sbuf_puts(out, ")");
}

/* Append text word by word, wrapping at CFG_WIDTH and indenting continuations to col. */
static void cfg_wrap(struct kc_sbuf *out, const char *text, size_t col, size_t cur)
{
    bool first = true;

    while (*text != '\0') {
        size_t wlen = strcspn(text, " ");
        if (wlen > 0) {
            if (!first && cur + 1 + wlen > CFG_WIDTH) {
                kc_sbuf_printf(out, "\n%*s", (int)col, "");
                cur = col;
            } else if (!first) {
                kc_sbuf_puts(out, " ");
                cur++;
            }
            kc_sbuf_append(out, text, wlen);
            cur += wlen;
            first = false;
        }
        text += wlen;
        while (*text == ' ')
            text++;
    }
    kc_sbuf_puts(out, "\n");
}

void kc_config_usage(const struct kc_config_entry *table, size_t n, struct kc_sbuf *out)
{
    struct cfg_row *rows = kc_calloc(n + 2, sizeof(*rows));
    size_t nrows = 0, width = 0, col;

    for (size_t i = 0; i < n; i++) {
        const struct kc_config_entry *e = &table[i];
        struct kc_sbuf left = KC_SBUF_INIT, right = KC_SBUF_INIT;
        bool listed = false;

        if (e->flags & KC_CONFIG_HIDDEN)
            continue;
        if (e->type == KC_CONFIG_BOOL) {
            kc_sbuf_printf(&left, "--[no-]%s", e->name);
        } else {
            kc_sbuf_printf(&left, "--%s=<", e->name);
            listed = cfg_metavar(e, &left);
            kc_sbuf_puts(&left, ">");
        }
        kc_sbuf_puts(&right, e->help);
        cfg_usage_notes(e, listed, &right);
        rows[nrows++] = (struct cfg_row){e->name, kc_sbuf_steal(&left), kc_sbuf_steal(&right)};
    }
    rows[nrows++] = (struct cfg_row){"config", kc_strdup("--config=<file>"),
                                     kc_strdup("read settings from this configuration file")};
    rows[nrows++] =
        (struct cfg_row){"help", kc_strdup("--help, -h"), kc_strdup("show this help and exit")};
    qsort(rows, nrows, sizeof(*rows), cfg_row_cmp);
    for (size_t i = 0; i < nrows; i++) {
        size_t len = strlen(rows[i].left);
        if (len <= CFG_LEFT_MAX && len > width)
            width = len;
    }
    col = 2 + width + 2;
    for (size_t i = 0; i < nrows; i++) {
        size_t len = strlen(rows[i].left);
        if (len > width)
            kc_sbuf_printf(out, "  %s\n%*s", rows[i].left, (int)col, "");
        else
            kc_sbuf_printf(out, "  %-*s  ", (int)width, rows[i].left);
        cfg_wrap(out, rows[i].right, col, col);
        free(rows[i].left);
        free(rows[i].right);
    }
    free(rows);
}

static int cfg_choice_count(const struct kc_config_entry *e)
{
    int count = 0;
    while (e->choices != NULL && e->choices[count] != NULL)
        count++;
    return count;
}

void kc_config_format_value(const struct kc_config_entry *e, const void *settings,
                            struct kc_sbuf *out)
{
    const void *f = cfg_cfield(e, settings);

    switch (e->type) {
    case KC_CONFIG_BOOL: kc_sbuf_puts(out, *(const bool *)f ? "true" : "false"); break;
    case KC_CONFIG_STRING:
        if (*(char *const *)f != NULL)
            kc_sbuf_puts(out, *(char *const *)f);
        break;
    case KC_CONFIG_CHOICE: {
        int c = *(const int *)f;
        if (c >= 0 && c < cfg_choice_count(e))
            kc_sbuf_puts(out, e->choices[c]);
        break;
    }
    default: cfg_format_number(e, *(const int64_t *)f, out); break;
    }
}

void kc_config_dump(const struct kc_config_entry *table, size_t n, const void *settings,
                    struct kc_sbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        const struct kc_config_entry *e = &table[i];
        const void *f = cfg_cfield(e, settings);

        if (e->flags & KC_CONFIG_SECRET) {
            kc_sbuf_printf(out, "# %s = (secret, not shown)\n", e->name);
        } else if (e->type == KC_CONFIG_STRING) {
            const char *s = *(char *const *)f;
            union cfg_value v;
            if (s == NULL) {
                kc_sbuf_printf(out, "# %s is not set\n", e->name);
                continue;
            }
            if (!cfg_parse_value(e, s, &v)) {
                kc_sbuf_printf(out, "# %s is not shown: it contains control characters\n", e->name);
                continue;
            }
            kc_sbuf_printf(out, "%s = \"", e->name);
            for (; *s != '\0'; s++) {
                if (*s == '"' || *s == '\\')
                    kc_sbuf_puts(out, "\\");
                kc_sbuf_append(out, s, 1);
            }
            kc_sbuf_puts(out, "\"\n");
        } else if (e->type == KC_CONFIG_CHOICE &&
                   (*(const int *)f < 0 || *(const int *)f >= cfg_choice_count(e))) {
            kc_sbuf_printf(out, "# %s is not set\n", e->name);
        } else {
            kc_sbuf_printf(out, "%s = ", e->name);
            kc_config_format_value(e, settings, out);
            kc_sbuf_puts(out, "\n");
        }
    }
}
