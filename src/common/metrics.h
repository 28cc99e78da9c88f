/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.h -- counters, gauges and histograms rendered in the Prometheus text format 0.0.4.
 *
 * A role registers its metrics once, at start, in a registry (NULL means the
 * process-wide default one), keeps the returned pointers, and updates them on
 * hot paths without locks:
 *
 *   static struct kc_counter *flushes;
 *   static struct kc_counter_vec *ingested;
 *   if (kc_counter_register(NULL, "kelp_pageserver_flushes_total", "Layer flushes.",
 *                           &flushes, err) != 0 ||
 *       kc_counter_vec_register(NULL, "kelp_pageserver_ingested_bytes_total",
 *                               "WAL bytes ingested.", KC_LABELS("tenant"), &ingested, err) != 0)
 *       return ...;
 *   kc_counter_inc(flushes);
 *   kc_counter_add(kc_counter_vec_with(ingested, KC_LABELS(tenant_hex)), nbytes);
 *
 * kc_metrics_render() writes the registry for GET /metrics (see docs/metrics.md).
 *
 * Rules. Metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]* without a leading "__" ("le" is reserved in
 * histograms). Registering a name again with the same definition (type,
 * labels, buckets, help) returns the existing metric; any other reuse of a
 * name, including one that would collide with a histogram's _bucket, _sum or
 * _count series, is an error. Registration and label lookup lock; updates are
 * lock-free atomics. Update functions accept NULL and then do nothing, so a
 * failed registration or lookup never crashes a hot path. Metric objects live
 * as long as their registry; the registry frees everything.
 */
#ifndef KC_METRICS_H
#define KC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"

/* Content-Type of kc_metrics_render() output for the HTTP response. */
#define KC_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define KC_METRICS_NAME_MAX     200 /* longest metric or label name, in bytes */
#define KC_METRICS_MAX_LABELS   16  /* label names per metric */
#define KC_METRICS_MAX_BUCKETS  256 /* histogram bounds, not counting +Inf */

/* A NULL-terminated list of label names or values: KC_LABELS("tenant", "timeline"). */
#define KC_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Bounds used when a histogram is registered with bounds == NULL: latency in seconds. */
extern const double kc_metrics_default_buckets[];
extern const size_t kc_metrics_default_nbuckets;

struct kc_metrics_registry;
struct kc_counter; /* one series: a metric with all its label values */
struct kc_gauge;
struct kc_histogram;
struct kc_counter_vec; /* a family with label names; children by label values */
struct kc_gauge_vec;
struct kc_histogram_vec;

/* ---- registries ---------------------------------------------------------- */

/* A new empty registry (tests, per-role isolation). Free with kc_metrics_registry_destroy(). */
struct kc_metrics_registry *kc_metrics_registry_create(void);

/*
 * kc_metrics_registry_destroy -- free r and every metric registered in it (NULL
 * is a no-op). No other thread may use r or any of its metrics during or
 * after the call.
 */
void kc_metrics_registry_destroy(struct kc_metrics_registry *r);

/* The process-wide registry, created on first use. Thread-safe. */
struct kc_metrics_registry *kc_metrics_default(void);

/*
 * kc_metrics_default_destroy -- free the default registry (at process exit, for
 * leak checkers). The next kc_metrics_default() starts a new, empty one.
 * Same restrictions as kc_metrics_registry_destroy().
 */
void kc_metrics_default_destroy(void);

/* ---- registration (thread-safe; r == NULL means the default registry) ---- */

/*
 * Register a metric without labels and store it in *out (set to NULL on
 * error). help is one line or more of plain text (NULL means none). Returns
 * 0, or KC_EINVAL with err filled when a name is invalid or already used by
 * a different definition.
 */
int kc_counter_register(struct kc_metrics_registry *r, const char *name, const char *help,
                        struct kc_counter **out, struct kc_error *err) KC_MUSTCHECK;
int kc_gauge_register(struct kc_metrics_registry *r, const char *name, const char *help,
                      struct kc_gauge **out, struct kc_error *err) KC_MUSTCHECK;
/*
 * bounds: nbounds finite upper bounds in strictly increasing order (a final
 * +Inf is allowed and ignored; the +Inf bucket is always added); NULL uses
 * kc_metrics_default_buckets. The array is copied.
 */
int kc_histogram_register(struct kc_metrics_registry *r, const char *name, const char *help,
                          const double *bounds, size_t nbounds, struct kc_histogram **out,
                          struct kc_error *err) KC_MUSTCHECK;

/* The same for a family keyed by labels (a NULL-terminated list of at least one name). */
int kc_counter_vec_register(struct kc_metrics_registry *r, const char *name, const char *help,
                            const char *const *labels, struct kc_counter_vec **out,
                            struct kc_error *err) KC_MUSTCHECK;
int kc_gauge_vec_register(struct kc_metrics_registry *r, const char *name, const char *help,
                          const char *const *labels, struct kc_gauge_vec **out,
                          struct kc_error *err) KC_MUSTCHECK;
int kc_histogram_vec_register(struct kc_metrics_registry *r, const char *name, const char *help,
                              const char *const *labels, const double *bounds, size_t nbounds,
                              struct kc_histogram_vec **out, struct kc_error *err) KC_MUSTCHECK;

/* ---- children of a family (thread-safe) --------------------------------- */

/*
 * kc_*_vec_get -- the child for values (a NULL-terminated list with one value
 * per label name, in order; any bytes, UTF-8 expected), created at zero when
 * new. Returns 0, or KC_EINVAL (wrong number of values, a NULL vec) with
 * *out = NULL. Cache the result on hot paths: the lookup takes a lock.
 */
int kc_counter_vec_get(struct kc_counter_vec *vec, const char *const *values,
                       struct kc_counter **out, struct kc_error *err) KC_MUSTCHECK;
int kc_gauge_vec_get(struct kc_gauge_vec *vec, const char *const *values, struct kc_gauge **out,
                     struct kc_error *err) KC_MUSTCHECK;
int kc_histogram_vec_get(struct kc_histogram_vec *vec, const char *const *values,
                         struct kc_histogram **out, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_*_vec_with -- kc_*_vec_get for call sites that cannot handle an error:
 * returns NULL on misuse (logged once per family at error level), which the
 * update functions ignore.
 */
struct kc_counter *kc_counter_vec_with(struct kc_counter_vec *vec, const char *const *values);
struct kc_gauge *kc_gauge_vec_with(struct kc_gauge_vec *vec, const char *const *values);
struct kc_histogram *kc_histogram_vec_with(struct kc_histogram_vec *vec, const char *const *values);

/*
 * kc_*_vec_remove -- drop the child for values (e.g. a detached tenant) and
 * free it. Returns 0, or KC_ENOTFOUND. The caller guarantees that no thread
 * still uses a pointer to that child.
 */
int kc_counter_vec_remove(struct kc_counter_vec *vec, const char *const *values);
int kc_gauge_vec_remove(struct kc_gauge_vec *vec, const char *const *values);
int kc_histogram_vec_remove(struct kc_histogram_vec *vec, const char *const *values);

/* ---- updates (lock-free, thread-safe, NULL-tolerant) --------------------- */

void kc_counter_inc(struct kc_counter *c);
void kc_counter_add(struct kc_counter *c, uint64_t n);
/* Add a fraction (e.g. seconds); negative, NaN and infinite v are ignored. */
void kc_counter_add_f(struct kc_counter *c, double v);
double kc_counter_value(const struct kc_counter *c); /* 0 for NULL */

void kc_gauge_set(struct kc_gauge *g, double v);
void kc_gauge_add(struct kc_gauge *g, double v); /* v may be negative */
void kc_gauge_inc(struct kc_gauge *g);
void kc_gauge_dec(struct kc_gauge *g);
double kc_gauge_value(const struct kc_gauge *g); /* 0 for NULL */

/* Count v in the first bucket whose bound is >= v (+Inf for larger values and NaN). */
void kc_histogram_observe(struct kc_histogram *h, double v);
uint64_t kc_histogram_count(const struct kc_histogram *h); /* 0 for NULL */
double kc_histogram_sum(const struct kc_histogram *h);     /* 0 for NULL */

/* ---- exposition ---------------------------------------------------------- */

/*
 * kc_metrics_render -- append r (NULL: the default registry) to out in the
 * Prometheus text format 0.0.4: per family "# HELP" (when help is set) and
 * "# TYPE" lines, then one line per series; families sorted by name,
 * children by label values. Thread-safe; updates may run concurrently.
 */
void kc_metrics_render(struct kc_metrics_registry *r, struct kc_sbuf *out);

/*
 * kc_metrics_format_double -- v as Prometheus expects it: "NaN", "+Inf",
 * "-Inf"; integral values below 9.2e18 in magnitude without exponent or
 * fraction ("42", "-0" as "0"); others in %g form with 15 to 17 significant
 * digits, as few as read back exactly ("0.1", "1e-09"). buf gets at most len
 * bytes (32 is always enough), NUL-terminated.
 */
void kc_metrics_format_double(double v, char *buf, size_t len);

/*
 * Fill out[0..count) with start * factor^i (start > 0, factor > 1) or
 * start + width * i (width > 0). Returns 0, or KC_EINVAL for bad arguments
 * or count of 0 or more than KC_METRICS_MAX_BUCKETS.
 */
int kc_metrics_buckets_exponential(double start, double factor, size_t count, double *out,
                                   struct kc_error *err) KC_MUSTCHECK;
int kc_metrics_buckets_linear(double start, double width, size_t count, double *out,
                              struct kc_error *err) KC_MUSTCHECK;

#endif
