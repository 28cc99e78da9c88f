/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.c -- the metrics registry and its Prometheus text rendering. See metrics.h. */
#include "common/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"

/*
 * Layout. A registry holds families sorted by name. A family (one metric
 * name: type, help, label names, histogram bounds) holds its children in a
 * hash table keyed by label values; a metric without labels has exactly one
 * child with no values. A child is a struct kc_series; the public types
 * struct kc_counter, kc_gauge and kc_histogram are never defined: their
 * pointers are series pointers, and the *_vec pointers are family pointers.
 */

enum kc_metric_type { KC_METRIC_COUNTER, KC_METRIC_GAUGE, KC_METRIC_HISTOGRAM };

static const char *const kc_metric_type_names[] = {"counter", "gauge", "histogram"};

struct kc_metric_family;

struct kc_series {
    struct kc_series *next; /* hash chain */
    struct kc_metric_family *fam;
    uint64_t hash;
    char **values;            /* fam->nlabels label values, owned */
    _Atomic uint64_t ival;    /* counter: integer increments */
    _Atomic uint64_t dbits;   /* bits of a double: counter fractions, gauge value, histogram sum */
    _Atomic uint64_t *counts; /* histogram: fam->nbounds + 1 per-bucket (not cumulative) counts */
};

struct kc_metric_family {
    enum kc_metric_type type;
    bool vec;   /* registered through a *_vec_register function */
    char *name; /* owned */
    char *help; /* owned; "" when none */
    size_t nlabels;
    char **labels; /* owned label names */
    size_t nbounds;
    double *bounds;       /* owned histogram bounds, +Inf not included */
    atomic_bool warned;   /* a misuse of kc_*_vec_with was logged */
    pthread_mutex_t lock; /* guards the child table */
    struct kc_series **table;
    size_t tablen; /* power of two */
    size_t nchildren;
};

struct kc_metrics_registry {
    pthread_mutex_t lock;           /* guards fams */
    struct kc_metric_family **fams; /* sorted by name */
    size_t nfams, cap;
};

const double kc_metrics_default_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t kc_metrics_default_nbuckets = KC_ARRAY_LEN(kc_metrics_default_buckets);

#define KC_SERIES(p) ((struct kc_series *)(void *)(p))
/* Readers take const pointers; the atomics they load are not modified. */
#define KC_CSERIES(p) ((struct kc_series *)(uintptr_t)(const void *)(p))
#define KC_FAMILY(p)  ((struct kc_metric_family *)(void *)(p))

/* ---- atomics on doubles ------------------------------------------------- */

static uint64_t kc_dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double kc_bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static void kc_atomic_add_double(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, kc_dbits(kc_bitsd(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ---- names -------------------------------------------------------------- */

static bool kc_metric_name_char(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (c == ':')
        return colon;
    return !first && c >= '0' && c <= '9';
}

static int kc_check_metric_name(const char *name, struct kc_error *err)
{
    size_t len = name != NULL ? strlen(name) : 0;
    bool ok = len > 0;

    for (size_t i = 0; ok && i < len; i++)
        ok = kc_metric_name_char(name[i], i == 0, true);
    if (!ok) {
        kc_error_set(err, KC_EINVAL, "invalid metric name \"%s\"", name != NULL ? name : "");
        kc_error_detail(err, "Metric names must match [a-zA-Z_:][a-zA-Z0-9_:]*.");
        kc_error_hint(err, "Name metrics kelp_<role>_<what>_<unit>, see docs/metrics.md.");
        return KC_EINVAL;
    }
    if (len > KC_METRICS_NAME_MAX) {
        kc_error_set(err, KC_EINVAL, "metric name \"%.40s...\" is too long", name);
        kc_error_detail(err, "Names are at most %d bytes; this one has %zu.", KC_METRICS_NAME_MAX,
                        len);
        return KC_EINVAL;
    }
    return 0;
}

static int kc_check_labels(const char *metric, enum kc_metric_type type, const char *const *labels,
                           size_t *nlabels, struct kc_error *err)
{
    size_t n = 0;

    for (; labels != NULL && labels[n] != NULL; n++) {
        const char *l = labels[n];
        size_t len = strlen(l);
        bool ok = len > 0 && len <= KC_METRICS_NAME_MAX;

        if (n == KC_METRICS_MAX_LABELS) {
            kc_error_set(err, KC_EINVAL, "too many labels for metric \"%s\"", metric);
            kc_error_detail(err, "A metric has at most %d labels.", KC_METRICS_MAX_LABELS);
            return KC_EINVAL;
        }
        for (size_t i = 0; ok && i < len; i++)
            ok = kc_metric_name_char(l[i], i == 0, false);
        if (!ok) {
            kc_error_set(err, KC_EINVAL, "invalid label name \"%.*s\" for metric \"%s\"",
                         KC_METRICS_NAME_MAX, l, metric);
            kc_error_detail(err,
                            "Label names must match [a-zA-Z_][a-zA-Z0-9_]* and be at most "
                            "%d bytes.",
                            KC_METRICS_NAME_MAX);
            return KC_EINVAL;
        }
        if (l[0] == '_' && l[1] == '_') {
            kc_error_set(err, KC_EINVAL, "invalid label name \"%s\" for metric \"%s\"", l, metric);
            kc_error_detail(err, "Label names starting with \"__\" are reserved for Prometheus.");
            return KC_EINVAL;
        }
        if (type == KC_METRIC_HISTOGRAM && strcmp(l, "le") == 0) {
            kc_error_set(err, KC_EINVAL, "invalid label name \"le\" for histogram \"%s\"", metric);
            kc_error_detail(err, "The label \"le\" holds the bucket bounds of a histogram.");
            return KC_EINVAL;
        }
        for (size_t j = 0; j < n; j++) {
            if (strcmp(labels[j], l) == 0) {
                kc_error_set(err, KC_EINVAL, "duplicate label name \"%s\" for metric \"%s\"", l,
                             metric);
                return KC_EINVAL;
            }
        }
    }
    *nlabels = n;
    return 0;
}

/* Validate histogram bounds; *nbounds drops a trailing +Inf. */
static int kc_check_bounds(const char *metric, const double *bounds, size_t *nbounds,
                           struct kc_error *err)
{
    size_t n = *nbounds;
    char a[32], b[32];

    if (n > 0 && bounds[n - 1] == INFINITY)
        n--;
    if (n > KC_METRICS_MAX_BUCKETS) {
        kc_error_set(err, KC_EINVAL, "too many buckets for histogram \"%s\"", metric);
        kc_error_detail(err, "A histogram has at most %d buckets besides +Inf; %zu were given.",
                        KC_METRICS_MAX_BUCKETS, n);
        return KC_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(bounds[i])) {
            kc_metrics_format_double(bounds[i], a, sizeof(a));
            kc_error_set(err, KC_EINVAL, "invalid bucket bound %s for histogram \"%s\"", a, metric);
            kc_error_detail(err, "Bounds must be finite; the +Inf bucket is always added.");
            return KC_EINVAL;
        }
        if (i > 0 && !(bounds[i] > bounds[i - 1])) {
            kc_metrics_format_double(bounds[i - 1], a, sizeof(a));
            kc_metrics_format_double(bounds[i], b, sizeof(b));
            kc_error_set(err, KC_EINVAL, "bucket bounds of histogram \"%s\" are not increasing",
                         metric);
            kc_error_detail(err, "Bound %zu (%s) is not greater than bound %zu (%s).", i + 1, b, i,
                            a);
            return KC_EINVAL;
        }
    }
    *nbounds = n;
    return 0;
}

/* ---- families and children ---------------------------------------------- */

static uint64_t kc_values_hash(const char *const *values, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p != '\0'; p++)
            h = (h ^ *p) * 0x100000001b3ULL;
        h = (h ^ 0xffu) * 0x100000001b3ULL; /* separator: ("ab","c") != ("a","bc") */
    }
    return h;
}

static bool kc_values_equal(const struct kc_series *s, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->values[i], values[i]) != 0)
            return false;
    return true;
}

static void kc_series_free(struct kc_series *s, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free((void *)s->counts);
    free(s);
}

static struct kc_series *kc_series_new(struct kc_metric_family *f, const char *const *values,
                                       uint64_t hash)
{
    struct kc_series *s = kc_calloc(1, sizeof(*s));

    s->fam = f;
    s->hash = hash;
    s->values = kc_calloc(f->nlabels > 0 ? f->nlabels : 1, sizeof(char *));
    for (size_t i = 0; i < f->nlabels; i++)
        s->values[i] = kc_strdup(values[i]);
    atomic_init(&s->ival, 0);
    atomic_init(&s->dbits, kc_dbits(0.0));
    if (f->type == KC_METRIC_HISTOGRAM) {
        s->counts = kc_calloc(f->nbounds + 1, sizeof(*s->counts));
        for (size_t i = 0; i <= f->nbounds; i++)
            atomic_init(&s->counts[i], 0);
    }
    return s;
}

/* Double the table; caller holds f->lock. */
static void kc_family_grow(struct kc_metric_family *f)
{
    size_t n = f->tablen * 2;
    struct kc_series **t = kc_calloc(n, sizeof(*t));

    for (size_t i = 0; i < f->tablen; i++) {
        struct kc_series *s = f->table[i], *next;
        for (; s != NULL; s = next) {
            next = s->next;
            s->next = t[s->hash & (n - 1)];
            t[s->hash & (n - 1)] = s;
        }
    }
    free(f->table);
    f->table = t;
    f->tablen = n;
}

/* Check that values has exactly f->nlabels entries. */
static int kc_family_check_values(const struct kc_metric_family *f, const char *const *values,
                                  struct kc_error *err)
{
    size_t n = 0;

    while (values != NULL && n <= f->nlabels && values[n] != NULL)
        n++;
    if (n != f->nlabels || (values == NULL && f->nlabels > 0)) {
        kc_error_set(err, KC_EINVAL, "wrong number of label values for metric \"%s\"", f->name);
        if (n > f->nlabels)
            kc_error_detail(err, "The metric has %zu label%s but more values were given.",
                            f->nlabels, f->nlabels == 1 ? "" : "s");
        else
            kc_error_detail(err, "The metric has %zu label%s but %zu value%s given.", f->nlabels,
                            f->nlabels == 1 ? "" : "s", n, n == 1 ? " was" : "s were");
        return KC_EINVAL;
    }
    return 0;
}

/* Find or make the child for values. Returns it, or NULL with err set. */
static struct kc_series *kc_family_child(struct kc_metric_family *f, const char *const *values,
                                         struct kc_error *err)
{
    struct kc_series *s;
    uint64_t h;

    if (f == NULL) {
        kc_error_set(err, KC_EINVAL, "metric vector is null");
        kc_error_hint(err, "Check the result of its registration.");
        return NULL;
    }
    if (kc_family_check_values(f, values, err) != 0)
        return NULL;
    h = kc_values_hash(values, f->nlabels);
    pthread_mutex_lock(&f->lock);
    for (s = f->table[h & (f->tablen - 1)]; s != NULL; s = s->next)
        if (s->hash == h && kc_values_equal(s, values, f->nlabels))
            break;
    if (s == NULL) {
        if (f->nchildren >= f->tablen)
            kc_family_grow(f);
        s = kc_series_new(f, values, h);
        s->next = f->table[h & (f->tablen - 1)];
        f->table[h & (f->tablen - 1)] = s;
        f->nchildren++;
    }
    pthread_mutex_unlock(&f->lock);
    return s;
}

static int kc_family_remove(struct kc_metric_family *f, const char *const *values)
{
    struct kc_series **link, *s;
    uint64_t h;

    if (f == NULL || !f->vec || kc_family_check_values(f, values, NULL) != 0)
        return KC_EINVAL;
    h = kc_values_hash(values, f->nlabels);
    pthread_mutex_lock(&f->lock);
    for (link = &f->table[h & (f->tablen - 1)]; (s = *link) != NULL; link = &s->next) {
        if (s->hash == h && kc_values_equal(s, values, f->nlabels)) {
            *link = s->next;
            f->nchildren--;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    if (s == NULL)
        return KC_ENOTFOUND;
    kc_series_free(s, f->nlabels);
    return 0;
}

static atomic_bool kc_metrics_null_warned;

/* The kc_*_vec_with policy: NULL on misuse, logged once per family. */
static struct kc_series *kc_family_with(struct kc_metric_family *f, const char *const *values)
{
    struct kc_error err;
    struct kc_series *s = kc_family_child(f, values, &err);

    if (s == NULL && !atomic_exchange(f != NULL ? &f->warned : &kc_metrics_null_warned, true))
        kc_error("%s%s%s", err.message, err.detail[0] != '\0' ? ": " : "", err.detail);
    return s;
}

static void kc_family_free(struct kc_metric_family *f)
{
    for (size_t i = 0; i < f->tablen; i++) {
        struct kc_series *s = f->table[i], *next;
        for (; s != NULL; s = next) {
            next = s->next;
            kc_series_free(s, f->nlabels);
        }
    }
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->labels);
    free(f->bounds);
    free(f->table);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* ---- registries --------------------------------------------------------- */

static pthread_mutex_t kc_metrics_default_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kc_metrics_registry *_Atomic kc_metrics_default_reg;

struct kc_metrics_registry *kc_metrics_registry_create(void)
{
    struct kc_metrics_registry *r = kc_calloc(1, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void kc_metrics_registry_destroy(struct kc_metrics_registry *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nfams; i++)
        kc_family_free(r->fams[i]);
    free(r->fams);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

struct kc_metrics_registry *kc_metrics_default(void)
{
    struct kc_metrics_registry *r =
        atomic_load_explicit(&kc_metrics_default_reg, memory_order_acquire);
    if (r != NULL)
        return r;
    pthread_mutex_lock(&kc_metrics_default_lock);
    r = atomic_load_explicit(&kc_metrics_default_reg, memory_order_relaxed);
    if (r == NULL) {
        r = kc_metrics_registry_create();
        atomic_store_explicit(&kc_metrics_default_reg, r, memory_order_release);
    }
    pthread_mutex_unlock(&kc_metrics_default_lock);
    return r;
}

void kc_metrics_default_destroy(void)
{
    struct kc_metrics_registry *r;

    pthread_mutex_lock(&kc_metrics_default_lock);
    r = atomic_exchange(&kc_metrics_default_reg, NULL);
    pthread_mutex_unlock(&kc_metrics_default_lock);
    kc_metrics_registry_destroy(r);
}

/* Binary search; returns the index of name or where it would go (*found says which). */
static size_t kc_registry_find(const struct kc_metrics_registry *r, const char *name, bool *found)
{
    size_t lo = 0, hi = r->nfams;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->fams[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static const char *const kc_histogram_suffixes[] = {"_bucket", "_sum", "_count"};

/* Is name (about to be registered as type) in conflict with a histogram's series? */
static int kc_registry_check_suffixes(const struct kc_metrics_registry *r, const char *name,
                                      enum kc_metric_type type, struct kc_error *err)
{
    char other[KC_METRICS_NAME_MAX + 16];
    size_t len = strlen(name);
    bool found;

    for (size_t i = 0; i < KC_ARRAY_LEN(kc_histogram_suffixes); i++) {
        const char *suf = kc_histogram_suffixes[i];
        size_t slen = strlen(suf);
        size_t idx;

        /* name = <histogram>_suffix */
        if (len > slen && strcmp(name + len - slen, suf) == 0) {
            snprintf(other, sizeof(other), "%.*s", (int)(len - slen), name);
            idx = kc_registry_find(r, other, &found);
            if (found && r->fams[idx]->type == KC_METRIC_HISTOGRAM)
                goto conflict;
        }
        /* name is a histogram and <name>_suffix exists */
        if (type == KC_METRIC_HISTOGRAM) {
            snprintf(other, sizeof(other), "%s%s", name, suf);
            kc_registry_find(r, other, &found);
            if (found)
                goto conflict;
        }
    }
    return 0;
conflict:
    kc_error_set(err, KC_EINVAL, "metric name \"%s\" conflicts with metric \"%s\"", name, other);
    kc_error_detail(err, "A histogram NAME is exposed as NAME_bucket, NAME_sum and NAME_count.");
    return KC_EINVAL;
}

/* Does the existing family f have exactly this definition? Fills err when not. */
static int kc_family_same(const struct kc_metric_family *f, enum kc_metric_type type, bool vec,
                          const char *help, const char *const *labels, size_t nlabels,
                          const double *bounds, size_t nbounds, struct kc_error *err)
{
    const char *what = NULL;

    if (f->type != type) {
        kc_error_set(err, KC_EINVAL, "metric \"%s\" is already registered as a %s", f->name,
                     kc_metric_type_names[f->type]);
        kc_error_detail(err, "It cannot also be registered as a %s.", kc_metric_type_names[type]);
        return KC_EINVAL;
    }
    if (f->vec != vec || f->nlabels != nlabels)
        what = "labels";
    for (size_t i = 0; what == NULL && i < nlabels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            what = "labels";
    if (what == NULL && type == KC_METRIC_HISTOGRAM &&
        (f->nbounds != nbounds || memcmp(f->bounds, bounds, nbounds * sizeof(double)) != 0))
        what = "buckets";
    if (what == NULL && strcmp(f->help, help) != 0)
        what = "help text";
    if (what != NULL) {
        kc_error_set(err, KC_EINVAL, "metric \"%s\" is already registered with different %s",
                     f->name, what);
        kc_error_hint(err, "Register each metric once with one definition, or pick another "
                           "name.");
        return KC_EINVAL;
    }
    return 0;
}

static int kc_register(struct kc_metrics_registry *r, enum kc_metric_type type, bool vec,
                       const char *name, const char *help, const char *const *labels,
                       const double *bounds, size_t nbounds, void **out, struct kc_error *err)
{
    struct kc_metric_family *f;
    size_t nlabels = 0, idx;
    bool found;
    int rc;

    *out = NULL;
    if (r == NULL)
        r = kc_metrics_default();
    if (help == NULL)
        help = "";
    rc = kc_check_metric_name(name, err);
    if (rc == 0)
        rc = kc_check_labels(name, type, labels, &nlabels, err);
    if (rc != 0)
        return rc;
    if (vec && nlabels == 0) {
        kc_error_set(err, KC_EINVAL, "metric vector \"%s\" has no label names", name);
        kc_error_hint(err, "Pass at least one label name, or register a metric without labels.");
        return KC_EINVAL;
    }
    if (type == KC_METRIC_HISTOGRAM) {
        if (bounds == NULL) {
            bounds = kc_metrics_default_buckets;
            nbounds = kc_metrics_default_nbuckets;
        }
        rc = kc_check_bounds(name, bounds, &nbounds, err);
        if (rc != 0)
            return rc;
    } else {
        nbounds = 0;
    }

    pthread_mutex_lock(&r->lock);
    idx = kc_registry_find(r, name, &found);
    if (found) {
        f = r->fams[idx];
        rc = kc_family_same(f, type, vec, help, labels, nlabels, bounds, nbounds, err);
        if (rc == 0)
            *out = vec ? (void *)f : (void *)f->table[0];
        pthread_mutex_unlock(&r->lock);
        return rc;
    }
    rc = kc_registry_check_suffixes(r, name, type, err);
    if (rc != 0) {
        pthread_mutex_unlock(&r->lock);
        return rc;
    }

    f = kc_calloc(1, sizeof(*f));
    f->type = type;
    f->vec = vec;
    f->name = kc_strdup(name);
    f->help = kc_strdup(help);
    f->nlabels = nlabels;
    f->labels = kc_calloc(nlabels > 0 ? nlabels : 1, sizeof(char *));
    for (size_t i = 0; i < nlabels; i++)
        f->labels[i] = kc_strdup(labels[i]);
    f->nbounds = nbounds;
    f->bounds = kc_calloc(nbounds > 0 ? nbounds : 1, sizeof(double));
    if (nbounds > 0)
        memcpy(f->bounds, bounds, nbounds * sizeof(double));
    atomic_init(&f->warned, false);
    pthread_mutex_init(&f->lock, NULL);
    f->tablen = vec ? 16 : 1;
    f->table = kc_calloc(f->tablen, sizeof(*f->table));
    if (!vec) {
        f->table[0] = kc_series_new(f, NULL, 0);
        f->nchildren = 1;
    }

    if (r->nfams == r->cap) {
        r->cap = r->cap > 0 ? r->cap * 2 : 16;
        r->fams = kc_realloc(r->fams, r->cap * sizeof(*r->fams));
    }
    memmove(&r->fams[idx + 1], &r->fams[idx], (r->nfams - idx) * sizeof(*r->fams));
    r->fams[idx] = f;
    r->nfams++;
    *out = vec ? (void *)f : (void *)f->table[0];
    pthread_mutex_unlock(&r->lock);
    return 0;
}

int kc_counter_register(struct kc_metrics_registry *r, const char *name, const char *help,
                        struct kc_counter **out, struct kc_error *err)
{
    return kc_register(r, KC_METRIC_COUNTER, false, name, help, NULL, NULL, 0, (void **)out, err);
}

int kc_gauge_register(struct kc_metrics_registry *r, const char *name, const char *help,
                      struct kc_gauge **out, struct kc_error *err)
{
    return kc_register(r, KC_METRIC_GAUGE, false, name, help, NULL, NULL, 0, (void **)out, err);
}

int kc_histogram_register(struct kc_metrics_registry *r, const char *name, const char *help,
                          const double *bounds, size_t nbounds, struct kc_histogram **out,
                          struct kc_error *err)
{
    return kc_register(r, KC_METRIC_HISTOGRAM, false, name, help, NULL, bounds, nbounds,
                       (void **)out, err);
}

int kc_counter_vec_register(struct kc_metrics_registry *r, const char *name, const char *help,
                            const char *const *labels, struct kc_counter_vec **out,
                            struct kc_error *err)
{
    return kc_register(r, KC_METRIC_COUNTER, true, name, help, labels, NULL, 0, (void **)out, err);
}

int kc_gauge_vec_register(struct kc_metrics_registry *r, const char *name, const char *help,
                          const char *const *labels, struct kc_gauge_vec **out,
                          struct kc_error *err)
{
    return kc_register(r, KC_METRIC_GAUGE, true, name, help, labels, NULL, 0, (void **)out, err);
}

int kc_histogram_vec_register(struct kc_metrics_registry *r, const char *name, const char *help,
                              const char *const *labels, const double *bounds, size_t nbounds,
                              struct kc_histogram_vec **out, struct kc_error *err)
{
    return kc_register(r, KC_METRIC_HISTOGRAM, true, name, help, labels, bounds, nbounds,
                       (void **)out, err);
}

/* ---- children ----------------------------------------------------------- */

int kc_counter_vec_get(struct kc_counter_vec *vec, const char *const *values,
                       struct kc_counter **out, struct kc_error *err)
{
    *out = (struct kc_counter *)(void *)kc_family_child(KC_FAMILY(vec), values, err);
    return *out != NULL ? 0 : KC_EINVAL;
}

int kc_gauge_vec_get(struct kc_gauge_vec *vec, const char *const *values, struct kc_gauge **out,
                     struct kc_error *err)
{
    *out = (struct kc_gauge *)(void *)kc_family_child(KC_FAMILY(vec), values, err);
    return *out != NULL ? 0 : KC_EINVAL;
}

int kc_histogram_vec_get(struct kc_histogram_vec *vec, const char *const *values,
                         struct kc_histogram **out, struct kc_error *err)
{
    *out = (struct kc_histogram *)(void *)kc_family_child(KC_FAMILY(vec), values, err);
    return *out != NULL ? 0 : KC_EINVAL;
}

struct kc_counter *kc_counter_vec_with(struct kc_counter_vec *vec, const char *const *values)
{
    return (struct kc_counter *)(void *)kc_family_with(KC_FAMILY(vec), values);
}

struct kc_gauge *kc_gauge_vec_with(struct kc_gauge_vec *vec, const char *const *values)
{
    return (struct kc_gauge *)(void *)kc_family_with(KC_FAMILY(vec), values);
}

struct kc_histogram *kc_histogram_vec_with(struct kc_histogram_vec *vec, const char *const *values)
{
    return (struct kc_histogram *)(void *)kc_family_with(KC_FAMILY(vec), values);
}

int kc_counter_vec_remove(struct kc_counter_vec *vec, const char *const *values)
{
    return kc_family_remove(KC_FAMILY(vec), values);
}

int kc_gauge_vec_remove(struct kc_gauge_vec *vec, const char *const *values)
{
    return kc_family_remove(KC_FAMILY(vec), values);
}

int kc_histogram_vec_remove(struct kc_histogram_vec *vec, const char *const *values)
{
    return kc_family_remove(KC_FAMILY(vec), values);
}

/* ---- updates ------------------------------------------------------------ */

void kc_counter_inc(struct kc_counter *c)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&KC_SERIES(c)->ival, 1, memory_order_relaxed);
}

void kc_counter_add(struct kc_counter *c, uint64_t n)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&KC_SERIES(c)->ival, n, memory_order_relaxed);
}

void kc_counter_add_f(struct kc_counter *c, double v)
{
    if (c != NULL && isfinite(v) && v > 0)
        kc_atomic_add_double(&KC_SERIES(c)->dbits, v);
}

double kc_counter_value(const struct kc_counter *c)
{
    struct kc_series *s = KC_CSERIES(c);

    if (s == NULL)
        return 0;
    return (double)atomic_load_explicit(&s->ival, memory_order_relaxed) +
           kc_bitsd(atomic_load_explicit(&s->dbits, memory_order_relaxed));
}

void kc_gauge_set(struct kc_gauge *g, double v)
{
    if (g != NULL)
        atomic_store_explicit(&KC_SERIES(g)->dbits, kc_dbits(v), memory_order_relaxed);
}

void kc_gauge_add(struct kc_gauge *g, double v)
{
    if (g != NULL)
        kc_atomic_add_double(&KC_SERIES(g)->dbits, v);
}

void kc_gauge_inc(struct kc_gauge *g)
{
    kc_gauge_add(g, 1.0);
}

void kc_gauge_dec(struct kc_gauge *g)
{
    kc_gauge_add(g, -1.0);
}

double kc_gauge_value(const struct kc_gauge *g)
{
    if (g == NULL)
        return 0;
    return kc_bitsd(atomic_load_explicit(&KC_CSERIES(g)->dbits, memory_order_relaxed));
}

void kc_histogram_observe(struct kc_histogram *h, double v)
{
    struct kc_series *s = KC_SERIES(h);
    const double *b;
    size_t lo = 0, hi;

    if (s == NULL)
        return;
    b = s->fam->bounds;
    hi = s->fam->nbounds;
    while (lo < hi) { /* first bound >= v; NaN compares false and lands in +Inf */
        size_t mid = lo + (hi - lo) / 2;
        if (v <= b[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&s->counts[lo], 1, memory_order_relaxed);
    kc_atomic_add_double(&s->dbits, v);
}

uint64_t kc_histogram_count(const struct kc_histogram *h)
{
    struct kc_series *s = KC_CSERIES(h);
    uint64_t n = 0;

    if (s == NULL)
        return 0;
    for (size_t i = 0; i <= s->fam->nbounds; i++)
        n += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
    return n;
}

double kc_histogram_sum(const struct kc_histogram *h)
{
    if (h == NULL)
        return 0;
    return kc_bitsd(atomic_load_explicit(&KC_CSERIES(h)->dbits, memory_order_relaxed));
}

/* ---- rendering ---------------------------------------------------------- */

void kc_metrics_format_double(double v, char *buf, size_t len)
{
    if (isnan(v)) {
        snprintf(buf, len, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        snprintf(buf, len, "0"); /* also -0 */
    } else if (v > -9.2e18 && v < 9.2e18 && v == (double)(int64_t)v) {
        snprintf(buf, len, "%" PRId64, (int64_t)v);
    } else {
        char tmp[40];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
        snprintf(buf, len, "%s", tmp);
    }
}

/* Append s, escaping '\\' and newline (and '"' when quoted) as the format requires. */
static void kc_metrics_escape(struct kc_sbuf *out, const char *s, bool quoted)
{
    const char *run = s;

    for (; *s != '\0'; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (*s == '"' && quoted)
            rep = "\\\"";
        if (rep != NULL) {
            kc_sbuf_append(out, run, (size_t)(s - run));
            kc_sbuf_puts(out, rep);
            run = s + 1;
        }
    }
    kc_sbuf_append(out, run, (size_t)(s - run));
}

/*
 * Append "name{labels}" (with le="bound" last when le is not NULL; no braces
 * when there are no labels at all), then " value\n".
 */
static void kc_metrics_line(struct kc_sbuf *out, const struct kc_series *s, const char *suffix,
                            const char *le, const char *value)
{
    const struct kc_metric_family *f = s->fam;
    bool braces = f->nlabels > 0 || le != NULL;

    kc_sbuf_puts(out, f->name);
    kc_sbuf_puts(out, suffix);
    if (braces)
        kc_sbuf_puts(out, "{");
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i > 0)
            kc_sbuf_puts(out, ",");
        kc_sbuf_puts(out, f->labels[i]);
        kc_sbuf_puts(out, "=\"");
        kc_metrics_escape(out, s->values[i], true);
        kc_sbuf_puts(out, "\"");
    }
    if (le != NULL)
        kc_sbuf_printf(out, "%sle=\"%s\"", f->nlabels > 0 ? "," : "", le);
    if (braces)
        kc_sbuf_puts(out, "}");
    kc_sbuf_printf(out, " %s\n", value);
}

static void kc_metrics_render_series(struct kc_sbuf *out, struct kc_series *s)
{
    const struct kc_metric_family *f = s->fam;
    char num[48], le[48];
    uint64_t cum = 0, ival;
    double d;

    switch (f->type) {
    case KC_METRIC_COUNTER:
        ival = atomic_load_explicit(&s->ival, memory_order_relaxed);
        d = kc_bitsd(atomic_load_explicit(&s->dbits, memory_order_relaxed));
        if (d == 0)
            snprintf(num, sizeof(num), "%" PRIu64, ival);
        else
            kc_metrics_format_double((double)ival + d, num, sizeof(num));
        kc_metrics_line(out, s, "", NULL, num);
        break;
    case KC_METRIC_GAUGE:
        kc_metrics_format_double(kc_bitsd(atomic_load_explicit(&s->dbits, memory_order_relaxed)),
                                 num, sizeof(num));
        kc_metrics_line(out, s, "", NULL, num);
        break;
    case KC_METRIC_HISTOGRAM:
        for (size_t i = 0; i <= f->nbounds; i++) {
            cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
            if (i < f->nbounds)
                kc_metrics_format_double(f->bounds[i], le, sizeof(le));
            else
                snprintf(le, sizeof(le), "+Inf");
            snprintf(num, sizeof(num), "%" PRIu64, cum);
            kc_metrics_line(out, s, "_bucket", le, num);
        }
        kc_metrics_format_double(kc_bitsd(atomic_load_explicit(&s->dbits, memory_order_relaxed)),
                                 num, sizeof(num));
        kc_metrics_line(out, s, "_sum", NULL, num);
        snprintf(num, sizeof(num), "%" PRIu64, cum); /* equal to the +Inf bucket */
        kc_metrics_line(out, s, "_count", NULL, num);
        break;
    }
}

static int kc_series_cmp(const void *a, const void *b)
{
    const struct kc_series *x = *(const struct kc_series *const *)a;
    const struct kc_series *y = *(const struct kc_series *const *)b;

    for (size_t i = 0; i < x->fam->nlabels; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

void kc_metrics_render(struct kc_metrics_registry *r, struct kc_sbuf *out)
{
    struct kc_series **kids = NULL;
    size_t kcap = 0;

    if (r == NULL)
        r = kc_metrics_default();
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->nfams; i++) {
        struct kc_metric_family *f = r->fams[i];
        size_t n = 0;

        if (f->help[0] != '\0') {
            kc_sbuf_printf(out, "# HELP %s ", f->name);
            kc_metrics_escape(out, f->help, false);
            kc_sbuf_puts(out, "\n");
        }
        kc_sbuf_printf(out, "# TYPE %s %s\n", f->name, kc_metric_type_names[f->type]);
        pthread_mutex_lock(&f->lock);
        if (f->nchildren > kcap) {
            kcap = f->nchildren;
            kids = kc_realloc(kids, kcap * sizeof(*kids));
        }
        for (size_t b = 0; b < f->tablen; b++)
            for (struct kc_series *s = f->table[b]; s != NULL; s = s->next)
                kids[n++] = s;
        if (n > 1)
            qsort(kids, n, sizeof(*kids), kc_series_cmp);
        for (size_t k = 0; k < n; k++)
            kc_metrics_render_series(out, kids[k]);
        pthread_mutex_unlock(&f->lock);
    }
    pthread_mutex_unlock(&r->lock);
    free(kids);
}

/* ---- bucket helpers ----------------------------------------------------- */

static int kc_check_bucket_count(size_t count, struct kc_error *err)
{
    if (count == 0 || count > KC_METRICS_MAX_BUCKETS) {
        kc_error_set(err, KC_EINVAL, "invalid bucket count %zu", count);
        kc_error_detail(err, "A histogram has 1 to %d buckets besides +Inf.",
                        KC_METRICS_MAX_BUCKETS);
        return KC_EINVAL;
    }
    return 0;
}

int kc_metrics_buckets_exponential(double start, double factor, size_t count, double *out,
                                   struct kc_error *err)
{
    int rc = kc_check_bucket_count(count, err);

    if (rc != 0)
        return rc;
    if (!(start > 0) || !isfinite(start) || !(factor > 1) || !isfinite(factor))
        return kc_error_set(err, KC_EINVAL,
                            "exponential buckets need a finite start > 0 and factor > 1");
    for (size_t i = 0; i < count; i++) {
        out[i] = start;
        start *= factor;
    }
    if (!isfinite(out[count - 1]))
        return kc_error_set(err, KC_EINVAL, "exponential buckets overflow to infinity");
    return 0;
}

int kc_metrics_buckets_linear(double start, double width, size_t count, double *out,
                              struct kc_error *err)
{
    int rc = kc_check_bucket_count(count, err);

    if (rc != 0)
        return rc;
    if (!isfinite(start) || !(width > 0) || !isfinite(width))
        return kc_error_set(err, KC_EINVAL, "linear buckets need a finite start and width > 0");
    for (size_t i = 0; i < count; i++)
        out[i] = start + width * (double)i;
    if (!isfinite(out[count - 1]))
        return kc_error_set(err, KC_EINVAL, "linear buckets overflow to infinity");
    return 0;
}
