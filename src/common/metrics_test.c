/* SPDX-License-Identifier: Apache-2.0 */
/* metrics_test.c -- unit tests for metrics.c. */
#include "common/metrics.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"
#include "unit.h"

/* Render r into a heap string the caller frees. */
static char *mt_render(struct kc_metrics_registry *r)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    kc_metrics_render(r, &s);
    return kc_sbuf_steal(&s);
}

#define MT_OK(call)                                                                   \
    do {                                                                              \
        struct kc_error mt_err_;                                                      \
        kc_error_clear(&mt_err_);                                                     \
        if ((call) != 0)                                                              \
            kt_fail(__FILE__, __LINE__, "%s failed: %s (%s)", #call, mt_err_.message, \
                    mt_err_.detail);                                                  \
    } while (0)

/* The error argument of calls inside MT_OK. */
#define MT_ERR (&mt_err_)

KT_TEST(metrics_render_exact_text)
{
    struct kc_metrics_registry *r = kc_metrics_registry_create();
    struct kc_counter *req;
    struct kc_gauge *temp;
    struct kc_counter_vec *bytes;
    struct kc_histogram *lat;
    const double bounds[] = {0.1, 0.5, 1};
    char *text;

    MT_OK(kc_counter_register(r, "kelp_test_requests_total", "Requests handled.", &req, MT_ERR));
    MT_OK(kc_gauge_register(r, "kelp_test_temperature_celsius", "Temperature.", &temp, MT_ERR));
    MT_OK(kc_counter_vec_register(r, "kelp_test_bytes_total",
                                  "Bytes.\nSecond line with \\ backslash.",
                                  KC_LABELS("tenant", "op"), &bytes, MT_ERR));
    MT_OK(
        kc_histogram_register(r, "kelp_test_latency_seconds", "Latency.", bounds, 3, &lat, MT_ERR));
    for (int i = 0; i < 3; i++)
        kc_counter_inc(req);
    kc_gauge_set(temp, -3.5);
    kc_counter_add(kc_counter_vec_with(bytes, KC_LABELS("t2", "read")), 10);
    kc_counter_add(kc_counter_vec_with(bytes, KC_LABELS("t1", "write")), 5);
    kc_counter_add(kc_counter_vec_with(bytes, KC_LABELS("t1", "read")), 7);
    kc_histogram_observe(lat, 0.25);
    kc_histogram_observe(lat, 0.5);
    kc_histogram_observe(lat, 1);
    kc_histogram_observe(lat, 5);

    text = mt_render(r);
    KT_ASSERT_STR_EQ(text,
                     "# HELP kelp_test_bytes_total Bytes.\\nSecond line with \\\\ backslash.\n"
                     "# TYPE kelp_test_bytes_total counter\n"
                     "kelp_test_bytes_total{tenant=\"t1\",op=\"read\"} 7\n"
                     "kelp_test_bytes_total{tenant=\"t1\",op=\"write\"} 5\n"
                     "kelp_test_bytes_total{tenant=\"t2\",op=\"read\"} 10\n"
                     "# HELP kelp_test_latency_seconds Latency.\n"
                     "# TYPE kelp_test_latency_seconds histogram\n"
                     "kelp_test_latency_seconds_bucket{le=\"0.1\"} 0\n"
                     "kelp_test_latency_seconds_bucket{le=\"0.5\"} 2\n"
                     "kelp_test_latency_seconds_bucket{le=\"1\"} 3\n"
                     "kelp_test_latency_seconds_bucket{le=\"+Inf\"} 4\n"
                     "kelp_test_latency_seconds_sum 6.75\n"
                     "kelp_test_latency_seconds_count 4\n"
                     "# HELP kelp_test_requests_total Requests handled.\n"
                     "# TYPE kelp_test_requests_total counter\n"
                     "kelp_test_requests_total 3\n"
                     "# HELP kelp_test_temperature_celsius Temperature.\n"
                     "# TYPE kelp_test_temperature_celsius gauge\n"
                     "kelp_test_temperature_celsius -3.5\n");
    free(text);
    kc_metrics_registry_destroy(r);
}

KT_TEST(metrics_labeled_histogram_and_empty_families)
{
    struct kc_metrics_registry *r = kc_metrics_registry_create();
    struct kc_histogram_vec *hv;
    struct kc_gauge_vec *unused;
    struct kc_gauge *nohelp;
    struct kc_histogram *h;
    const double bounds[] = {1, 10, INFINITY}; /* a trailing +Inf is dropped */
    char *text;

    MT_OK(kc_histogram_vec_register(r, "op_seconds", "Ops.", KC_LABELS("op"), bounds, 3, &hv,
                                    MT_ERR));
    MT_OK(kc_gauge_vec_register(r, "idle", "Never set.", KC_LABELS("x"), &unused, MT_ERR));
    MT_OK(kc_gauge_register(r, "nohelp", NULL, &nohelp, MT_ERR));
    MT_OK(kc_histogram_vec_get(hv, KC_LABELS("put"), &h, MT_ERR));
    kc_histogram_observe(h, 2);
    kc_histogram_observe(kc_histogram_vec_with(hv, KC_LABELS("get")), 0.5);
    text = mt_render(r);
    KT_ASSERT_STR_EQ(text, "# HELP idle Never set.\n"
                           "# TYPE idle gauge\n"
                           "# TYPE nohelp gauge\n"
                           "nohelp 0\n"
                           "# HELP op_seconds Ops.\n"
                           "# TYPE op_seconds histogram\n"
                           "op_seconds_bucket{op=\"get\",le=\"1\"} 1\n"
                           "op_seconds_bucket{op=\"get\",le=\"10\"} 1\n"
                           "op_seconds_bucket{op=\"get\",le=\"+Inf\"} 1\n"
                           "op_seconds_sum{op=\"get\"} 0.5\n"
                           "op_seconds_count{op=\"get\"} 1\n"
                           "op_seconds_bucket{op=\"put\",le=\"1\"} 0\n"
                           "op_seconds_bucket{op=\"put\",le=\"10\"} 1\n"
                           "op_seconds_bucket{op=\"put\",le=\"+Inf\"} 1\n"
                           "op_seconds_sum{op=\"put\"} 2\n"
                           "op_seconds_count{op=\"put\"} 1\n");
    free(text);
    kc_metrics_registry_destroy(r);
}

KT_TEST(metrics_escaping)
{
    struct kc_metrics_registry *r = kc_metrics_registry_create();
    struct kc_counter_vec *v;
    char *text;

    MT_OK(kc_counter_vec_register(r, "esc_total", "a \\ b\nc \"quoted\"", KC_LABELS("path"), &v,
                                  MT_ERR));
    kc_counter_inc(kc_counter_vec_with(v, KC_LABELS("C:\\dir \"x\"\nnext")));
    kc_counter_inc(kc_counter_vec_with(v, KC_LABELS("")));
    kc_counter_inc(kc_counter_vec_with(v, KC_LABELS("caf\xc3\xa9")));
    text = mt_render(r);
    KT_ASSERT_STR_EQ(text, "# HELP esc_total a \\\\ b\\nc \"quoted\"\n"
                           "# TYPE esc_total counter\n"
                           "esc_total{path=\"\"} 1\n"
                           "esc_total{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1\n"
                           "esc_total{path=\"caf\xc3\xa9\"} 1\n");
    free(text);
    kc_metrics_registry_destroy(r);
}

KT_TEST(metrics_number_format)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {1, "1"},
        {-1, "-1"},
        {42, "42"},
        {1e15, "1000000000000000"},
        {9007199254740993.0, "9007199254740992"},
        {1e18, "1000000000000000000"},
        {1e20, "1e+20"},
        {0.1, "0.1"},
        {0.005, "0.005"},
        {-2.5, "-2.5"},
        {1e-9, "1e-09"},
        {1.0 / 3.0, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {123456.789, "123456.789"},
        {1e300, "1e+300"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
    };
    char buf[32];

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        kc_metrics_format_double(cases[i].v, buf, sizeof(buf));
        KT_ASSERT_STR_EQ(buf, cases[i].want);
        if (!isnan(cases[i].v))
            KT_ASSERT(strtod(buf, NULL) == cases[i].v || (cases[i].v == 9007199254740993.0));
    }
    kc_metrics_format_double(1.0 / 3.0, buf, 5); /* truncated, terminated */
    KT_ASSERT_STR_EQ(buf, "0.33");
}

KT_TEST(metrics_counter_and_gauge_values)
{
    struct kc_metrics_registry *r = kc_metrics_registry_create();
    struct kc_counter *c;
    struct kc_gauge *g;
    char *text;

    MT_OK(kc_counter_register(r, "c_seconds_total", "", &c, MT_ERR));
    MT_OK(kc_gauge_register(r, "g", "", &g, MT_ERR));
    kc_counter_add(c, 3);
    kc_counter_add_f(c, 0.5);
    kc_counter_add_f(c, -7);       /* ignored: counters only go up */
    kc_counter_add_f(c, NAN);      /* ignored */
    kc_counter_add_f(c, INFINITY); /* ignored */
    KT_ASSERT(kc_counter_value(c) == 3.5);
    kc_gauge_inc(g);
    kc_gauge_inc(g);
    kc_gauge_dec(g);
    kc_gauge_add(g, -0.25);
    KT_ASSERT(kc_gauge_value(g) == 0.75);
    text = mt_render(r);
    KT_ASSERT_STR_EQ(text, "# TYPE c_seconds_total counter\n"
                           "c_seconds_total 3.5\n"
                           "# TYPE g gauge\n"
                           "g 0.75\n");
    free(text);
    kc_gauge_set(g, NAN);
    kc_counter_add(c, UINT64_MAX - 3); /* integer part stays exact */
    kc_counter_add_f(c, 0.0);
    text = mt_render(r);
    KT_ASSERT_CONTAINS(text, "g NaN\n");
    free(text);
    kc_metrics_registry_destroy(r);

    r = kc_metrics_registry_create();
    MT_OK(kc_counter_register(r, "big_total", "", &c, MT_ERR));
    kc_counter_add(c, UINT64_MAX);
    text = mt_render(r);
    KT_ASSERT_CONTAINS(text, "big_total 18446744073709551615\n");
    free(text);
    kc_metrics_registry_destroy(r);
}

KT_TEST(metrics_histogram_bucket_boundaries)
{
    struct kc_metrics_registry *r = kc_metrics_registry_create();
    const double bounds[] = {1, 2, 5};
    struct kc_histogram *h, *none;
    char *text;

    MT_OK(kc_histogram_register(r, "h", "", bounds, 3, &h, MT_ERR));
    kc_histogram_observe(h, -10);       /* le=1 */
    kc_histogram_observe(h, 1);         /* le=1: equal to the bound */
    kc_histogram_observe(h, 1.0000001); /* le=2 */
    kc_histogram_observe(h, 2);         /* le=2 */
    kc_histogram_observe(h, 5);         /* le=5 */
    kc_histogram_observe(h, 5.0000001); /* +Inf */
    kc_histogram_observe(h, INFINITY);  /* +Inf */
    KT_ASSERT_EQ(kc_histogram_count(h), 7);
    text = mt_render(r);
    KT_ASSERT_STR_EQ(text, "# TYPE h histogram\n"
                           "h_bucket{le=\"1\"} 2\n"
                           "h_bucket{le=\"2\"} 4\n"
                           "h_bucket{le=\"5\"} 5\n"
                           "h_bucket{le=\"+Inf\"} 7\n"
                           "h_sum +Inf\n"
                           "h_count 7\n");
    free(text);
    kc_histogram_observe(h, NAN); /* +Inf bucket; the sum becomes NaN */
    KT_ASSERT_EQ(kc_histogram_count(h), 8);
    KT_ASSERT(isnan(kc_histogram_sum(h)));

    /* No bounds at all: only the +Inf bucket. Default bounds: NULL. */
    MT_OK(kc_histogram_register(r, "only_inf", "", bounds, 0, &none, MT_ERR));
    kc_histogram_observe(none, 3);
    MT_OK(kc_histogram_register(r, "defaults", "", NULL, 0, &h, MT_ERR));
    kc_histogram_observe(h, 0.003);
    text = mt_render(r);
    KT_ASSERT_CONTAINS(text, "# TYPE only_inf histogram\n"
                             "only_inf_bucket{le=\"+Inf\"} 1\n"
                             "only_inf_sum 3\n"
                             "only_inf_count 1\n");
    KT_ASSERT_CONTAINS(text, "defaults_bucket{le=\"0.0025\"} 0\n"
                             "defaults_bucket{le=\"0.005\"} 1\n");
    KT_ASSERT_CONTAINS(text, "defaults_bucket{le=\"10\"} 1\n"
                             "defaults_bucket{le=\"+Inf\"} 1\n");
    KT_ASSERT(kc_histogram_sum(h) == 0.003);
    free(text);
    kc_metrics_registry_destroy(r);
}

KT_TEST(metrics_invalid_names_rejected)
{
    static const char *const bad_metric[] = {"", "1abc", "a-b", "a b", "caf\xc3\xa9", "a.b", "a{"};
    static const struct {
        const char *label;
        const char *want;
    } bad_label[] = {
        {"__name", "reserved for Prometheus"},
        {"__", "reserved for Prometheus"},
        {"1a", "must match [a-zA-Z_][a-zA-Z0-9_]*"},
        {"a:b", "must match"},
        {"", "must match"},
        {"a-b", "must match"},
    };
    struct kc_metrics_registry *r = kc_metrics_registry_create();
    char longname[KC_METRICS_NAME_MAX + 2];
    const double decreasing[] = {1, 3, 2}, dup[] = {1, 1}, nan_b[] = {1, NAN},
                 ninf[] = {-INFINITY, 1}, midinf[] = {1, INFINITY, 5};
    double many[KC_METRICS_MAX_BUCKETS + 1];
    struct kc_counter_vec *cv = (struct kc_counter_vec *)1;
    struct kc_counter *c = (struct kc_counter *)1;
    struct kc_histogram *h;
    struct kc_histogram_vec *hv;
    struct kc_error err;
    char *text;

    for (size_t i = 0; i < KC_ARRAY_LEN(bad_metric); i++) {
        KT_ASSERT_EQ(kc_counter_register(r, bad_metric[i], "", &c, &err), KC_EINVAL);
        KT_ASSERT(c == NULL); /* *out is cleared on error */
        KT_ASSERT_CONTAINS(err.message, "invalid metric name");
        KT_ASSERT_CONTAINS(err.detail, "[a-zA-Z_:][a-zA-Z0-9_:]*");
    }
    KT_ASSERT_EQ(kc_counter_register(r, NULL, "", &c, &err), KC_EINVAL);
    memset(longname, 'm', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    KT_ASSERT_EQ(kc_counter_register(r, longname, "", &c, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "is too long");
    longname[sizeof(longname) - 2] = '\0';
    MT_OK(kc_counter_register(r, longname, "", &c, MT_ERR)); /* exactly the maximum */
    MT_OK(kc_counter_register(r, "ok:with_colon_total", "", &c, MT_ERR));

    for (size_t i = 0; i < KC_ARRAY_LEN(bad_label); i++) {
        KT_ASSERT_EQ(kc_counter_vec_register(r, "m_total", "", KC_LABELS("ok", bad_label[i].label),
                                             &cv, &err),
                     KC_EINVAL);
        KT_ASSERT(cv == NULL);
        KT_ASSERT_CONTAINS(err.message, "invalid label name");
        KT_ASSERT_CONTAINS(err.message, "for metric \"m_total\"");
        KT_ASSERT_CONTAINS(err.detail, bad_label[i].want);
    }
    KT_ASSERT_EQ(kc_counter_vec_register(r, "m_total", "", KC_LABELS("a", "b", "a"), &cv, &err),
                 KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "duplicate label name \"a\" for metric \"m_total\"");
    KT_ASSERT_EQ(kc_counter_vec_register(r, "m_total", "", KC_LABELS(NULL), &cv, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "has no label names");
    KT_ASSERT_EQ(kc_counter_vec_register(r, "m_total", "", NULL, &cv, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_counter_vec_register(r, "m_total", "",
                                         KC_LABELS("a", "b", "c", "d", "e", "f", "g", "h", "i", "j",
                                                   "k", "l", "m", "n", "o", "p", "q"),
                                         &cv, &err),
                 KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "too many labels");
    MT_OK(kc_counter_vec_register(r, "le_ok_total", "", KC_LABELS("le"), &cv, MT_ERR));
    KT_ASSERT_EQ(
        kc_histogram_vec_register(r, "hist", "", KC_LABELS("op", "le"), NULL, 0, &hv, &err),
        KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "invalid label name \"le\" for histogram \"hist\"");

    KT_ASSERT_EQ(kc_histogram_register(r, "hist", "", decreasing, 3, &h, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "bucket bounds of histogram \"hist\" are not increasing");
    KT_ASSERT_STR_EQ(err.detail, "Bound 3 (2) is not greater than bound 2 (3).");
    KT_ASSERT_EQ(kc_histogram_register(r, "hist", "", dup, 2, &h, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_histogram_register(r, "hist", "", nan_b, 2, &h, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "invalid bucket bound NaN for histogram \"hist\"");
    KT_ASSERT_EQ(kc_histogram_register(r, "hist", "", ninf, 2, &h, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_histogram_register(r, "hist", "", midinf, 3, &h, &err), KC_EINVAL);
    for (size_t i = 0; i < KC_ARRAY_LEN(many); i++)
        many[i] = (double)i;
    KT_ASSERT_EQ(kc_histogram_register(r, "hist", "", many, KC_ARRAY_LEN(many), &h, &err),
                 KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "too many buckets");
    MT_OK(kc_histogram_register(r, "hist", "", many, KC_METRICS_MAX_BUCKETS, &h, MT_ERR));

    /* Nothing half-registered by the failures. */
    text = mt_render(r);
    KT_ASSERT(strstr(text, "m_total") == NULL);
    KT_ASSERT_CONTAINS(text, "# TYPE hist histogram\n");
    free(text);
    kc_metrics_registry_destroy(r);
}

KT_TEST(metrics_duplicate_registration)
{
    struct kc_metrics_registry *r = kc_metrics_registry_create();
    const double b1[] = {1, 2}, b2[] = {1, 3};
    struct kc_counter *c1, *c2;
    struct kc_gauge *g;
    struct kc_counter_vec *v1, *v2;
    struct kc_histogram *h1, *h2;
    struct kc_error err;

    MT_OK(kc_counter_register(r, "dup_total", "Help.", &c1, MT_ERR));
    MT_OK(kc_counter_register(r, "dup_total", "Help.", &c2, MT_ERR));
    KT_ASSERT(c1 == c2); /* same definition: the same metric */
    KT_ASSERT_EQ(kc_gauge_register(r, "dup_total", "Help.", &g, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "metric \"dup_total\" is already registered as a counter");
    KT_ASSERT_STR_EQ(err.detail, "It cannot also be registered as a gauge.");
    KT_ASSERT(g == NULL);
    KT_ASSERT_EQ(kc_counter_register(r, "dup_total", "Other help.", &c2, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "metric \"dup_total\" is already registered with different "
                                  "help text");
    KT_ASSERT_EQ(kc_counter_vec_register(r, "dup_total", "Help.", KC_LABELS("a"), &v1, &err),
                 KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "with different labels");

    MT_OK(kc_counter_vec_register(r, "vec_total", "", KC_LABELS("a", "b"), &v1, MT_ERR));
    MT_OK(kc_counter_vec_register(r, "vec_total", "", KC_LABELS("a", "b"), &v2, MT_ERR));
    KT_ASSERT(v1 == v2);
    KT_ASSERT_EQ(kc_counter_vec_register(r, "vec_total", "", KC_LABELS("b", "a"), &v2, &err),
                 KC_EINVAL);
    KT_ASSERT_EQ(kc_counter_vec_register(r, "vec_total", "", KC_LABELS("a"), &v2, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_counter_register(r, "vec_total", "", &c2, &err), KC_EINVAL);

    MT_OK(kc_histogram_register(r, "lat", "", b1, 2, &h1, MT_ERR));
    MT_OK(kc_histogram_register(r, "lat", "", b1, 2, &h2, MT_ERR));
    KT_ASSERT(h1 == h2);
    KT_ASSERT_EQ(kc_histogram_register(r, "lat", "", b2, 2, &h2, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "with different buckets");

    /* A histogram owns NAME_bucket, NAME_sum and NAME_count, both ways round. */
    KT_ASSERT_EQ(kc_counter_register(r, "lat_count", "", &c2, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "metric name \"lat_count\" conflicts with metric \"lat\"");
    KT_ASSERT_EQ(kc_gauge_register(r, "lat_sum", "", &g, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_gauge_register(r, "lat_bucket", "", &g, &err), KC_EINVAL);
    MT_OK(kc_gauge_register(r, "lat_total", "", &g, MT_ERR));
    MT_OK(kc_gauge_register(r, "x_sum", "", &g, MT_ERR));
    KT_ASSERT_EQ(kc_histogram_register(r, "x", "", b1, 2, &h2, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "metric name \"x\" conflicts with metric \"x_sum\"");
    MT_OK(kc_counter_register(r, "dup_count", "", &c2, MT_ERR)); /* "dup" is no histogram */
    kc_metrics_registry_destroy(r);
}

static void mt_misuse_with_twice(void)
{
    struct kc_metrics_registry *r = kc_metrics_registry_create();
    struct kc_counter_vec *v;

    if (kc_counter_vec_register(r, "v_total", "", KC_LABELS("a", "b"), &v, NULL) != 0)
        abort();
    kc_counter_inc(kc_counter_vec_with(v, KC_LABELS("only-one")));
    kc_counter_inc(kc_counter_vec_with(v, KC_LABELS("only-one")));
    kc_counter_inc(kc_counter_vec_with(NULL, KC_LABELS("x")));
    kc_metrics_registry_destroy(r);
}

KT_TEST(metrics_vec_children)
{
    struct kc_metrics_registry *r = kc_metrics_registry_create();
    struct kc_counter_vec *v;
    struct kc_gauge_vec *gv;
    struct kc_histogram_vec *hv;
    struct kc_counter *a, *b;
    struct kc_gauge *g;
    struct kc_histogram *h;
    struct kc_error err;
    char path[4200], logtext[4096], *text;
    int fd;
    ssize_t n;

    MT_OK(kc_counter_vec_register(r, "v_total", "", KC_LABELS("a", "b"), &v, MT_ERR));
    MT_OK(kc_counter_vec_get(v, KC_LABELS("x", "y"), &a, MT_ERR));
    MT_OK(kc_counter_vec_get(v, KC_LABELS("x", "y"), &b, MT_ERR));
    KT_ASSERT(a == b);
    b = kc_counter_vec_with(v, KC_LABELS("xy", ""));
    KT_ASSERT(a != b); /* ("x","y") and ("xy","") are different children */

    KT_ASSERT_EQ(kc_counter_vec_get(v, KC_LABELS("x"), &a, &err), KC_EINVAL);
    KT_ASSERT(a == NULL);
    KT_ASSERT_STR_EQ(err.message, "wrong number of label values for metric \"v_total\"");
    KT_ASSERT_STR_EQ(err.detail, "The metric has 2 labels but 1 value was given.");
    KT_ASSERT_EQ(kc_counter_vec_get(v, KC_LABELS("x", "y", "z"), &a, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.detail, "The metric has 2 labels but more values were given.");
    KT_ASSERT_EQ(kc_counter_vec_get(v, NULL, &a, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_counter_vec_get(NULL, KC_LABELS("x"), &a, &err), KC_EINVAL);

    /* Misuse through _with yields NULL (ignored by updates), logged once per family. */
    snprintf(path, sizeof(path), "%s/log", kt_tmpdir());
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    KT_ASSERT(fd >= 0);
    kc_log_set_fd(fd);
    mt_misuse_with_twice();
    kc_log_set_fd(2);
    n = pread(fd, logtext, sizeof(logtext) - 1, 0);
    close(fd);
    KT_ASSERT(n > 0);
    logtext[n] = '\0';
    KT_ASSERT_CONTAINS(logtext, "ERROR kelp[");
    KT_ASSERT_CONTAINS(logtext, "wrong number of label values for metric \"v_total\": The "
                                "metric has 2 labels but 1 value was given.");
    KT_ASSERT(strstr(strstr(logtext, "v_total") + 1, "v_total") == NULL);
    KT_ASSERT_CONTAINS(logtext, "metric vector is null");

    /* Updates and reads on NULL are no-ops. */
    kc_counter_inc(NULL);
    kc_counter_add(NULL, 5);
    kc_counter_add_f(NULL, 1.5);
    kc_gauge_set(NULL, 1);
    kc_gauge_inc(NULL);
    kc_histogram_observe(NULL, 1);
    KT_ASSERT(kc_counter_value(NULL) == 0 && kc_gauge_value(NULL) == 0);
    KT_ASSERT(kc_histogram_count(NULL) == 0 && kc_histogram_sum(NULL) == 0);

    /* Removal (a detached tenant). */
    MT_OK(kc_gauge_vec_register(r, "gv", "", KC_LABELS("tenant"), &gv, MT_ERR));
    MT_OK(kc_histogram_vec_register(r, "hv", "", KC_LABELS("tenant"), NULL, 0, &hv, MT_ERR));
    g = kc_gauge_vec_with(gv, KC_LABELS("t1"));
    kc_gauge_set(g, 5);
    kc_gauge_set(kc_gauge_vec_with(gv, KC_LABELS("t2")), 6);
    h = kc_histogram_vec_with(hv, KC_LABELS("t1"));
    kc_histogram_observe(h, 1);
    KT_ASSERT_EQ(kc_gauge_vec_remove(gv, KC_LABELS("t1")), 0);
    KT_ASSERT_EQ(kc_gauge_vec_remove(gv, KC_LABELS("t1")), KC_ENOTFOUND);
    KT_ASSERT_EQ(kc_gauge_vec_remove(gv, KC_LABELS("t1", "x")), KC_EINVAL);
    KT_ASSERT_EQ(kc_histogram_vec_remove(hv, KC_LABELS("t1")), 0);
    KT_ASSERT_EQ(kc_counter_vec_remove(v, KC_LABELS("x", "y")), 0);
    text = mt_render(r);
    KT_ASSERT(strstr(text, "t1") == NULL);
    KT_ASSERT_CONTAINS(text, "gv{tenant=\"t2\"} 6\n");
    KT_ASSERT_CONTAINS(text, "v_total{a=\"xy\",b=\"\"} 0\n");
    KT_ASSERT(strstr(text, "a=\"x\",") == NULL);
    free(text);
    /* A removed child comes back at zero. */
    KT_ASSERT(kc_gauge_value(kc_gauge_vec_with(gv, KC_LABELS("t1"))) == 0);
    kc_metrics_registry_destroy(r);
}

KT_TEST(metrics_many_children_sorted)
{
    struct kc_metrics_registry *r = kc_metrics_registry_create();
    struct kc_counter_vec *v;
    char label[16], *text, *p;
    int lines = 0, prev = -1;

    MT_OK(kc_counter_vec_register(r, "many_total", "", KC_LABELS("tenant"), &v, MT_ERR));
    for (int i = 0; i < 3000; i++) {
        int k = (i * 7919) % 3000; /* a permutation of 0..2999 */
        snprintf(label, sizeof(label), "t%05d", k);
        kc_counter_add(kc_counter_vec_with(v, KC_LABELS(label)), (uint64_t)k);
    }
    text = mt_render(r);
    for (p = strstr(text, "many_total{"); p != NULL; p = strstr(p + 1, "many_total{")) {
        int k;
        unsigned long long val;
        KT_ASSERT_EQ(sscanf(p, "many_total{tenant=\"t%d\"} %llu", &k, &val), 2);
        KT_ASSERT(k > prev);
        KT_ASSERT_EQ(val, k);
        prev = k;
        lines++;
    }
    KT_ASSERT_EQ(lines, 3000);
    free(text);
    kc_metrics_registry_destroy(r);
}

struct mt_work {
    struct kc_counter *c;
    struct kc_counter_vec *cv;
    struct kc_gauge *g;
    struct kc_histogram *h;
    struct kc_metrics_registry *r;
    int iters;
};

static void *mt_worker(void *arg)
{
    struct mt_work *w = arg;
    struct kc_counter *mine = kc_counter_vec_with(w->cv, KC_LABELS("shared"));

    for (int i = 0; i < w->iters; i++) {
        kc_counter_inc(w->c);
        kc_counter_add_f(w->c, 0.5);
        kc_counter_inc(mine);
        kc_gauge_add(w->g, 1.0);
        kc_gauge_dec(w->g);
        kc_gauge_inc(w->g);
        kc_histogram_observe(w->h, (double)(i % 4));
        if (i % 1000 == 0) {
            struct kc_sbuf s = KC_SBUF_INIT; /* rendering races with updates */
            kc_metrics_render(w->r, &s);
            kc_sbuf_fini(&s);
            kc_counter_inc(kc_counter_vec_with(w->cv, KC_LABELS("shared")));
        }
    }
    return NULL;
}

KT_TEST(metrics_concurrent_updates_are_exact)
{
    enum { THREADS = 8, ITERS = 50000 };
    struct kc_metrics_registry *r = kc_metrics_registry_create();
    const double bounds[] = {0, 1, 2};
    struct mt_work w;
    pthread_t t[THREADS];
    char *text, want[256];

    w.r = r;
    w.iters = ITERS;
    MT_OK(kc_counter_register(r, "c_total", "", &w.c, MT_ERR));
    MT_OK(kc_counter_vec_register(r, "cv_total", "", KC_LABELS("k"), &w.cv, MT_ERR));
    MT_OK(kc_gauge_register(r, "g", "", &w.g, MT_ERR));
    MT_OK(kc_histogram_register(r, "h", "", bounds, 3, &w.h, MT_ERR));
    for (int i = 0; i < THREADS; i++)
        KT_ASSERT_EQ(pthread_create(&t[i], NULL, mt_worker, &w), 0);
    for (int i = 0; i < THREADS; i++)
        KT_ASSERT_EQ(pthread_join(t[i], NULL), 0);

    KT_ASSERT(kc_counter_value(w.c) == THREADS * ITERS * 1.5);
    KT_ASSERT(kc_gauge_value(w.g) == THREADS * ITERS);
    KT_ASSERT_EQ(kc_histogram_count(w.h), THREADS * ITERS);
    KT_ASSERT(kc_histogram_sum(w.h) == THREADS * (ITERS / 4) * (0 + 1 + 2 + 3));
    text = mt_render(r);
    snprintf(want, sizeof(want), "cv_total{k=\"shared\"} %d\n", THREADS * (ITERS + ITERS / 1000));
    KT_ASSERT_CONTAINS(text, want);
    snprintf(want, sizeof(want),
             "h_bucket{le=\"0\"} %d\nh_bucket{le=\"1\"} %d\nh_bucket{le=\"2\"} %d\n"
             "h_bucket{le=\"+Inf\"} %d\n",
             THREADS * ITERS / 4, THREADS * ITERS / 2, THREADS * ITERS * 3 / 4, THREADS * ITERS);
    KT_ASSERT_CONTAINS(text, want);
    snprintf(want, sizeof(want), "c_total %d\n", THREADS * ITERS * 3 / 2);
    KT_ASSERT_CONTAINS(text, want);
    free(text);
    kc_metrics_registry_destroy(r);
}

static void *mt_register_worker(void *arg)
{
    struct kc_counter **out = arg;
    if (kc_counter_register(NULL, "kelp_test_race_total", "Race.", out, NULL) != 0)
        *out = NULL;
    kc_counter_inc(*out);
    return NULL;
}

KT_TEST(metrics_default_registry)
{
    struct kc_counter *got[4];
    pthread_t t[4];
    struct kc_gauge *g;
    struct kc_metrics_registry *other = kc_metrics_registry_create();
    char *text;

    KT_ASSERT(kc_metrics_default() == kc_metrics_default());
    for (int i = 0; i < 4; i++)
        KT_ASSERT_EQ(pthread_create(&t[i], NULL, mt_register_worker, &got[i]), 0);
    for (int i = 0; i < 4; i++)
        KT_ASSERT_EQ(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 4; i++)
        KT_ASSERT(got[i] != NULL && got[i] == got[0]);
    /* The same name in another registry is a separate metric. */
    MT_OK(kc_gauge_register(other, "kelp_test_race_total", "", &g, MT_ERR));
    text = mt_render(NULL);
    KT_ASSERT_STR_EQ(text, "# HELP kelp_test_race_total Race.\n"
                           "# TYPE kelp_test_race_total counter\n"
                           "kelp_test_race_total 4\n");
    free(text);
    text = mt_render(other);
    KT_ASSERT_STR_EQ(text, "# TYPE kelp_test_race_total gauge\nkelp_test_race_total 0\n");
    free(text);
    kc_metrics_registry_destroy(other);
    kc_metrics_default_destroy();
    text = mt_render(NULL); /* a fresh, empty default registry */
    KT_ASSERT_STR_EQ(text, "");
    free(text);
    kc_metrics_default_destroy();
    kc_metrics_default_destroy(); /* none: no-op */
    kc_metrics_registry_destroy(NULL);
}

KT_TEST(metrics_bucket_helpers)
{
    double b[KC_METRICS_MAX_BUCKETS + 1];
    struct kc_error err;

    MT_OK(kc_metrics_buckets_exponential(0.001, 2, 4, b, MT_ERR));
    KT_ASSERT(b[0] == 0.001 && b[1] == 0.002 && b[2] == 0.004 && b[3] == 0.008);
    MT_OK(kc_metrics_buckets_linear(-5, 5, 3, b, MT_ERR));
    KT_ASSERT(b[0] == -5 && b[1] == 0 && b[2] == 5);
    KT_ASSERT_EQ(kc_metrics_buckets_exponential(0, 2, 4, b, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_metrics_buckets_exponential(1, 1, 4, b, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_metrics_buckets_exponential(1, NAN, 4, b, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_metrics_buckets_exponential(1e300, 1e10, 3, b, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "overflow");
    KT_ASSERT_EQ(kc_metrics_buckets_linear(0, 0, 4, b, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_metrics_buckets_linear(INFINITY, 1, 4, b, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_metrics_buckets_linear(0, 1, 0, b, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "invalid bucket count 0");
    KT_ASSERT_EQ(kc_metrics_buckets_linear(0, 1, KC_METRICS_MAX_BUCKETS + 1, b, &err), KC_EINVAL);
    MT_OK(kc_metrics_buckets_linear(0, 1, KC_METRICS_MAX_BUCKETS, b, MT_ERR));
    KT_ASSERT_EQ(kc_metrics_default_nbuckets, 14);
    for (size_t i = 1; i < kc_metrics_default_nbuckets; i++)
        KT_ASSERT(kc_metrics_default_buckets[i] > kc_metrics_default_buckets[i - 1]);
}
