/* SPDX-License-Identifier: Apache-2.0 */
/* layer_reader_test.c -- unit tests for layer_reader.c: round trips, lookups, scans, corruption. */
#include "pageserver/layer_reader.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/crc32c.h"
#include "pageserver/layer_writer.h"
#include "unit.h"

/* Deterministic PRNG (splitmix64) so failures reproduce. */
static uint64_t kt_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* One value of the in-memory model; its bytes come from kt_fill(seed). */
struct kt_val {
    struct ps_key key;
    kc_lsn lsn;
    enum ps_value_kind kind;
    bool will_init;
    uint32_t len;
    uint64_t seed;
};

/* Value bytes: mostly zeros (compressible), random (incompressible) or a page-like mix. */
static void kt_fill(uint8_t *buf, uint32_t len, uint64_t seed)
{
    uint64_t s = seed;

    switch (seed % 3) {
    case 0:
        memset(buf, 0, len);
        for (uint32_t i = 0; i < len && i < 8; i++)
            buf[i] = (uint8_t)(seed >> (8 * i));
        break;
    case 1:
        for (uint32_t i = 0; i < len; i++)
            buf[i] = (uint8_t)kt_rng(&s);
        break;
    default:
        memset(buf, 0, len);
        for (uint32_t i = 0; i < len && i < 24; i++)
            buf[i] = (uint8_t)kt_rng(&s);
        for (uint32_t i = len > 16 ? len - 16 : 0; i < len; i++)
            buf[i] = (uint8_t)kt_rng(&s);
        break;
    }
}

static void kt_spit(const char *path, const uint8_t *data, size_t len);

static const struct kc_id kt_tenant = {{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                                        0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01}};
static const struct kc_id kt_timeline = {{0xf0, 0xe0, 0xd0, 0xc0, 0xb0, 0xa0, 0x90, 0x80, 0x70,
                                          0x60, 0x50, 0x40, 0x30, 0x20, 0x10, 0x02}};

static int kt_val_cmp(const void *a, const void *b)
{
    const struct kt_val *x = a, *y = b;
    return ps_layer_keylsn_cmp(&x->key, x->lsn, &y->key, y->lsn);
}

/* Key number i of the model: relation blocks with gaps, then SLRU and control keys. */
static struct ps_key kt_key(uint32_t i)
{
    switch (i % 10) {
    case 7: return ps_key_slru_block(PS_SLRU_CLOG, i / 1000, i);
    case 8: return ps_key_rel_size(1663, 5, 20000 + i, 0);
    case 9: return ps_key_twophase_file(i + 1);
    default: return ps_key_rel_block(1663, 5, 16384 + i / 100, 0, 2 * i); /* odd blocks absent */
    }
}

/*
 * A delta model: nkeys keys, 1..maxver versions each at LSNs in
 * [lsn0, lsn0 + 1000000), sorted. The oldest version of every key ends the chain.
 */
static struct kt_val *kt_model_delta(uint32_t nkeys, uint32_t maxver, uint64_t seed, kc_lsn lsn0,
                                     size_t *n_out)
{
    struct kt_val *v = kc_malloc((size_t)nkeys * maxver * sizeof(*v));
    uint64_t s = seed;
    size_t n = 0;

    for (uint32_t k = 0; k < nkeys; k++) {
        uint32_t nver = 1 + (uint32_t)(kt_rng(&s) % maxver);
        kc_lsn lsn = lsn0 + kt_rng(&s) % 1000;
        for (uint32_t j = 0; j < nver; j++, n++) {
            uint64_t r = kt_rng(&s);
            v[n].key = kt_key(k);
            v[n].lsn = lsn;
            lsn += 8 + 8 * (kt_rng(&s) % 100);
            v[n].seed = kt_rng(&s);
            if (j == 0 || r % 20 == 0) {
                v[n].kind = r % 2 ? PS_VALUE_IMAGE : PS_VALUE_PG_RECORD;
                v[n].will_init = true;
            } else {
                v[n].kind = r % 10 == 1 ? PS_VALUE_NATIVE_RECORD : PS_VALUE_PG_RECORD;
                v[n].will_init = false;
            }
            if (v[n].kind == PS_VALUE_IMAGE) {
                static const uint32_t sizes[] = {8192, 8192, 8192, 8200, 512, 88, 0, 4};
                v[n].len = sizes[r / 7 % KC_ARRAY_LEN(sizes)];
            } else {
                v[n].len = 16 + (uint32_t)(kt_rng(&s) % 400);
            }
        }
    }
    qsort(v, n, sizeof(*v), kt_val_cmp);
    *n_out = n;
    return v;
}

/* Write the model and drops to a layer in dir; returns the final path (free it). */
static char *kt_write_drops(const char *dir, const struct ps_layer_desc *d,
                            const struct ps_layer_writer_opts *o, const struct kt_val *v, size_t n,
                            const struct ps_drop *drops, size_t ndrops)
{
    struct ps_layer_writer *w;
    struct kc_error err;
    uint8_t *buf = kc_malloc(PS_VALUE_MAX_LEN / 1024);
    char *path;

    if (ps_layer_writer_create(dir, d, o, &w, &err) != 0)
        kt_fail(__FILE__, __LINE__, "create: %s", err.message);
    for (size_t i = 0; i < ndrops; i++)
        if (ps_layer_writer_add_drop(w, &drops[i], &err) != 0)
            kt_fail(__FILE__, __LINE__, "add drop %zu: %s (%s)", i, err.message, err.detail);
    for (size_t i = 0; i < n; i++) {
        struct ps_value val = {v[i].kind, v[i].will_init, v[i].len, buf};
        kt_fill(buf, v[i].len, v[i].seed);
        if (ps_layer_writer_add(w, &v[i].key, v[i].lsn, &val, &err) != 0)
            kt_fail(__FILE__, __LINE__, "add %zu: %s (%s)", i, err.message, err.detail);
    }
    path = kc_strdup(ps_layer_writer_path(w));
    if (ps_layer_writer_finish(w, &err) != 0)
        kt_fail(__FILE__, __LINE__, "finish: %s", err.message);
    free(buf);
    return path;
}

/* Write the model to a layer in dir, without drops; returns the final path (free it). */
static char *kt_write(const char *dir, const struct ps_layer_desc *d,
                      const struct ps_layer_writer_opts *o, const struct kt_val *v, size_t n)
{
    return kt_write_drops(dir, d, o, v, n, NULL, 0);
}

static void kt_desc_delta(struct ps_layer_desc *d, kc_lsn lsn0)
{
    struct ps_key a = ps_key_min(), b = ps_key_max();
    ps_layer_desc_delta(d, &kt_tenant, &kt_timeline, &a, &b, lsn0, lsn0 + 1000000000);
}

/* The entry and the model value agree, and so do the bytes read; returns the read's rc. */
static int kt_check_entry(struct ps_layer_iter *it, const struct kt_val *want, uint8_t *buf,
                          uint8_t *expect)
{
    const struct ps_layer_entry *e = ps_layer_iter_entry(it);
    struct ps_value v;
    struct kc_error err;
    int rc;

    KT_ASSERT(e != NULL);
    if (!ps_key_eq(&e->key, &want->key) || e->lsn != want->lsn || e->kind != want->kind ||
        e->will_init != want->will_init || e->len != want->len)
        kt_fail(__FILE__, __LINE__, "entry differs from the model (lsn %jx vs %jx)",
                (uintmax_t)e->lsn, (uintmax_t)want->lsn);
    rc = ps_layer_iter_read(it, buf, PS_VALUE_MAX_LEN / 1024, &v, &err);
    if (rc != 0)
        return rc;
    kt_fill(expect, want->len, want->seed);
    KT_ASSERT_EQ(v.len, want->len);
    KT_ASSERT_EQ(v.kind, want->kind);
    KT_ASSERT_EQ(v.will_init, want->will_init);
    KT_ASSERT(v.data == buf);
    if (want->len > 0 && memcmp(buf, expect, want->len) != 0)
        kt_fail(__FILE__, __LINE__, "value bytes differ from the model (wrong data)");
    return 0;
}

/* Scan [from, to) and compare with model entries [lo, hi); returns 0 or the first error. */
static int kt_check_scan(struct ps_layer_iter *it, const struct ps_key *from,
                         const struct ps_key *to, const struct kt_val *v, size_t lo, size_t hi)
{
    uint8_t *buf = kc_malloc(PS_VALUE_MAX_LEN / 1024), *expect = kc_malloc(PS_VALUE_MAX_LEN / 1024);
    struct kc_error err;
    size_t i = lo;
    int rc = ps_layer_iter_scan(it, from, to, &err);

    while (rc == 1) {
        if (i >= hi)
            kt_fail(__FILE__, __LINE__, "scan returned more entries than the model (%zu)", hi);
        if ((rc = kt_check_entry(it, &v[i], buf, expect)) != 0)
            break;
        i++;
        rc = ps_layer_iter_next(it, &err);
    }
    free(buf);
    free(expect);
    if (rc < 0)
        return rc;
    KT_ASSERT_EQ(i, hi);
    return 0;
}

/* First model index with (key, lsn) >= (k, lsn). */
static size_t kt_lower(const struct kt_val *v, size_t n, const struct ps_key *k, kc_lsn lsn)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ps_layer_keylsn_cmp(&v[mid].key, v[mid].lsn, k, lsn) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Versions of k at lsn_le, newest first, against the model; returns 0 or the first error. */
static int kt_check_versions(struct ps_layer_iter *it, const struct kt_val *v, size_t n,
                             const struct ps_key *k, kc_lsn lsn_le, uint8_t *buf, uint8_t *expect)
{
    size_t first = kt_lower(v, n, k, 0), end = first;
    struct kc_error err;
    int rc;

    while (end < n && ps_key_eq(&v[end].key, k) && v[end].lsn <= lsn_le)
        end++;
    rc = ps_layer_iter_versions(it, k, lsn_le, &err);
    for (size_t i = end; i > first; i--) {
        if (rc < 0)
            return rc;
        KT_ASSERT_EQ(rc, 1);
        if ((rc = kt_check_entry(it, &v[i - 1], buf, expect)) != 0)
            return rc;
        rc = ps_layer_iter_next(it, &err);
    }
    if (rc < 0)
        return rc;
    KT_ASSERT_EQ(rc, 0);
    KT_ASSERT(ps_layer_iter_entry(it) == NULL);
    return 0;
}

KT_TEST(layer_delta_roundtrip_mixed_values)
{
    struct ps_layer_writer_opts o = {.block_entries = 7};
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct ps_layer_iter *it;
    struct kc_error err;
    size_t n;
    struct kt_val *v = kt_model_delta(80, 12, 1, 0x1000000, &n);
    char *path;
    uint32_t maxlen = 0;

    kt_desc_delta(&d, 0x1000000);
    path = kt_write(kt_tmpdir(), &d, &o, v, n);
    KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
    KT_ASSERT_EQ(ps_layer_reader_nvalues(r), n);
    for (size_t i = 0; i < n; i++)
        maxlen = v[i].len > maxlen ? v[i].len : maxlen;
    KT_ASSERT_EQ(ps_layer_reader_max_value_len(r), maxlen);
    KT_ASSERT(ps_layer_reader_desc(r)->kind == PS_LAYER_DELTA);
    KT_ASSERT(kc_id_equal(&ps_layer_reader_desc(r)->tenant, &kt_tenant));
    KT_ASSERT(kc_id_equal(&ps_layer_reader_desc(r)->timeline, &kt_timeline));
    KT_ASSERT_EQ(ps_layer_reader_desc(r)->lsn_start, 0x1000000);
    it = ps_layer_iter_create(r);
    KT_ASSERT_EQ(kt_check_scan(it, &d.key_start, NULL, v, 0, n), 0);
    /* The same file with everything stored plainly reads the same. */
    o.no_value_compression = o.no_index_compression = true;
    d.lsn_end--;
    free(path);
    path = kt_write(kt_tmpdir(), &d, &o, v, n);
    ps_layer_iter_destroy(it);
    ps_layer_close(r);
    KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
    it = ps_layer_iter_create(r);
    KT_ASSERT_EQ(kt_check_scan(it, &d.key_start, &d.key_end, v, 0, n), 0);
    ps_layer_iter_destroy(it);
    ps_layer_close(r);
    free(path);
    free(v);
}

KT_TEST(layer_compression_only_where_it_helps)
{
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct ps_layer_iter *it;
    struct kc_error err;
    struct kt_val v[3];
    char *path;

    memset(v, 0, sizeof(v));
    for (int i = 0; i < 3; i++) {
        v[i].key = ps_key_rel_block(1663, 5, 16384, 0, (uint32_t)i);
        v[i].lsn = 0x100;
        v[i].kind = PS_VALUE_IMAGE;
        v[i].will_init = true;
        v[i].len = 8192;
    }
    v[0].seed = 3; /* zeros */
    v[1].seed = 4; /* random */
    v[2].len = 20; /* too short to try */
    kt_desc_delta(&d, 0x100);
    path = kt_write(kt_tmpdir(), &d, NULL, v, 3);
    KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
    it = ps_layer_iter_create(r);
    KT_ASSERT_EQ(ps_layer_iter_scan(it, &d.key_start, NULL, &err), 1);
    KT_ASSERT(ps_layer_iter_entry(it)->compressed);
    KT_ASSERT(ps_layer_iter_entry(it)->stored_len < 100);
    KT_ASSERT_EQ(ps_layer_iter_next(it, &err), 1);
    KT_ASSERT(!ps_layer_iter_entry(it)->compressed);
    KT_ASSERT_EQ(ps_layer_iter_entry(it)->stored_len, 8192);
    KT_ASSERT_EQ(ps_layer_iter_next(it, &err), 1);
    KT_ASSERT(!ps_layer_iter_entry(it)->compressed);
    KT_ASSERT_EQ(ps_layer_iter_next(it, &err), 0);
    KT_ASSERT_EQ(kt_check_scan(it, &d.key_start, NULL, v, 0, 3), 0);
    KT_ASSERT(ps_layer_reader_file_size(r) < 8192 + 20 + 1000);
    ps_layer_iter_destroy(it);
    ps_layer_close(r);
    free(path);
}

KT_TEST(layer_versions_newest_first_with_lsn_bounds)
{
    struct ps_layer_writer_opts o = {.block_entries = 5};
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct ps_layer_iter *it;
    struct kc_error err;
    size_t n;
    struct kt_val *v = kt_model_delta(60, 25, 2, 0x5000, &n);
    uint8_t *buf = kc_malloc(65536), *expect = kc_malloc(65536);
    char *path;

    kt_desc_delta(&d, 0x5000);
    path = kt_write(kt_tmpdir(), &d, &o, v, n);
    KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
    it = ps_layer_iter_create(r);
    for (size_t i = 0; i < n; i++) {
        /* At each version's LSN, just below and just above it, and unbounded. */
        KT_ASSERT_EQ(kt_check_versions(it, v, n, &v[i].key, v[i].lsn, buf, expect), 0);
        KT_ASSERT_EQ(kt_check_versions(it, v, n, &v[i].key, v[i].lsn - 1, buf, expect), 0);
        KT_ASSERT_EQ(kt_check_versions(it, v, n, &v[i].key, v[i].lsn + 1, buf, expect), 0);
        KT_ASSERT_EQ(kt_check_versions(it, v, n, &v[i].key, UINT64_MAX, buf, expect), 0);
    }
    KT_ASSERT_EQ(kt_check_versions(it, v, n, &v[0].key, 0, buf, expect), 0);
    ps_layer_iter_destroy(it);
    ps_layer_close(r);
    free(path);
    free(v);
    free(buf);
    free(expect);
}

/* Reconstruction: collect newest first until a value needs nothing older. */
KT_TEST(layer_versions_collect_until_will_init)
{
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct ps_layer_iter *it;
    struct kc_error err;
    struct kt_val v[6];
    uint8_t buf[512];
    kc_lsn lsns[6] = {0x10, 0x20, 0x30, 0x40, 0x50, 0x60};
    bool init[6] = {true, false, false, true, false, false};
    char *path;
    int rc, count = 0;

    memset(v, 0, sizeof(v));
    for (int i = 0; i < 6; i++) {
        v[i].key = ps_key_rel_block(1663, 5, 16384, 0, 9);
        v[i].lsn = lsns[i];
        v[i].kind = i == 0 ? PS_VALUE_IMAGE : PS_VALUE_PG_RECORD;
        v[i].will_init = init[i];
        v[i].len = 100;
        v[i].seed = (uint64_t)i;
    }
    kt_desc_delta(&d, 0x10);
    path = kt_write(kt_tmpdir(), &d, &(struct ps_layer_writer_opts){.block_entries = 2}, v, 6);
    KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
    it = ps_layer_iter_create(r);
    /* At 0x55: 0x50, then 0x40 which initialises the page. */
    for (rc = ps_layer_iter_versions(it, &v[0].key, 0x55, &err); rc == 1;
         rc = ps_layer_iter_next(it, &err)) {
        struct ps_value val;
        KT_ASSERT_EQ(ps_layer_iter_read(it, buf, sizeof(buf), &val, &err), 0);
        count++;
        if (ps_value_ends_chain(&val))
            break;
    }
    KT_ASSERT_EQ(rc, 1);
    KT_ASSERT_EQ(count, 2);
    KT_ASSERT_EQ(ps_layer_iter_entry(it)->lsn, 0x40);
    /* At 0x3F: 0x30, 0x20, then the image at 0x10. */
    count = 0;
    for (rc = ps_layer_iter_versions(it, &v[0].key, 0x3F, &err); rc == 1;
         rc = ps_layer_iter_next(it, &err)) {
        count++;
        if (ps_layer_iter_entry(it)->will_init)
            break;
    }
    KT_ASSERT_EQ(count, 3);
    KT_ASSERT_EQ(ps_layer_iter_entry(it)->kind, PS_VALUE_IMAGE);
    KT_ASSERT_EQ(ps_layer_iter_versions(it, &v[0].key, 0xF, &err), 0);
    ps_layer_iter_destroy(it);
    ps_layer_close(r);
    free(path);
}

KT_TEST(layer_scan_ranges_and_absent_keys)
{
    struct ps_layer_writer_opts o = {.block_entries = 3};
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct ps_layer_iter *it;
    struct kc_error err;
    size_t n;
    struct kt_val *v = kt_model_delta(50, 4, 3, 0x9000, &n);
    uint64_t s = 5;
    char *path;

    kt_desc_delta(&d, 0x9000);
    path = kt_write(kt_tmpdir(), &d, &o, v, n);
    KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
    it = ps_layer_iter_create(r);
    for (int t = 0; t < 300; t++) {
        struct ps_key from = kt_key((uint32_t)(kt_rng(&s) % 60));
        struct ps_key to = kt_key((uint32_t)(kt_rng(&s) % 60));
        size_t lo = kt_lower(v, n, &from, 0), hi = kt_lower(v, n, &to, 0);
        if (t % 3 == 0)
            from = ps_key_next(&from); /* a key absent from the layer */
        lo = kt_lower(v, n, &from, 0);
        if (ps_key_cmp(&from, &to) >= 0)
            hi = lo;
        KT_ASSERT_EQ(kt_check_scan(it, &from, &to, v, lo, hi), 0);
        KT_ASSERT_EQ(kt_check_scan(it, &from, NULL, v, lo, n), 0);
    }
    /* Absent keys: odd blocks between present ones, before the first, after the last. */
    for (uint32_t i = 0; i < 60; i++) {
        struct ps_key k = ps_key_rel_block(1663, 5, 16384 + i / 100, 0, 2 * i + 1);
        KT_ASSERT_EQ(ps_layer_iter_versions(it, &k, UINT64_MAX, &err), 0);
    }
    KT_ASSERT_EQ(ps_layer_iter_versions(it, &(struct ps_key){{0}}, UINT64_MAX, &err), 0);
    {
        struct ps_key max = ps_key_max();
        KT_ASSERT_EQ(ps_layer_iter_versions(it, &max, UINT64_MAX, &err), 0);
        KT_ASSERT_EQ(ps_layer_iter_scan(it, &max, NULL, &err), 0);
    }
    KT_ASSERT_EQ(ps_layer_iter_next(it, &err), 0);
    ps_layer_iter_destroy(it);
    ps_layer_close(r);
    free(path);
    free(v);
}

KT_TEST(layer_image_roundtrip_and_lookups)
{
    struct ps_key a = ps_key_rel_block(1663, 5, 16384, 0, 0);
    struct ps_key b = ps_key_rel_block(1663, 5, 16385, 0, 0);
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct ps_layer_iter *it;
    struct kc_error err;
    struct kt_val v[40];
    uint8_t buf[8192], expect[8192];
    char *path;

    memset(v, 0, sizeof(v));
    for (uint32_t i = 0; i < 40; i++) {
        v[i].key = ps_key_rel_block(1663, 5, 16384, 0, 3 * i);
        v[i].lsn = 0xABC0;
        v[i].kind = PS_VALUE_IMAGE;
        v[i].will_init = true;
        v[i].len = i == 39 ? 0 : 8192;
        v[i].seed = i;
    }
    v[39].key = ps_key_rel_size(1663, 5, 16384, 0);
    ps_layer_desc_image(&d, &kt_tenant, &kt_timeline, &a, &b, 0xABC0);
    path = kt_write(kt_tmpdir(), &d, &(struct ps_layer_writer_opts){.block_entries = 6}, v, 40);
    KT_ASSERT_CONTAINS(path, "__000000000000ABC0");
    KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
    KT_ASSERT(ps_layer_reader_desc(r)->kind == PS_LAYER_IMAGE);
    KT_ASSERT_EQ(ps_layer_reader_desc(r)->lsn_start, 0xABC0);
    KT_ASSERT_EQ(ps_layer_reader_desc(r)->lsn_end, 0xABC1);
    it = ps_layer_iter_create(r);
    KT_ASSERT_EQ(kt_check_scan(it, &a, &b, v, 0, 40), 0);
    for (uint32_t i = 0; i < 40; i++) {
        struct ps_key absent = ps_key_rel_block(1663, 5, 16384, 0, 3 * i + 1);
        KT_ASSERT_EQ(kt_check_versions(it, v, 40, &v[i].key, 0xABC0, buf, expect), 0);
        KT_ASSERT_EQ(kt_check_versions(it, v, 40, &v[i].key, UINT64_MAX, buf, expect), 0);
        KT_ASSERT_EQ(ps_layer_iter_versions(it, &v[i].key, 0xABBF, &err), 0); /* before the image */
        KT_ASSERT_EQ(ps_layer_iter_versions(it, &absent, UINT64_MAX, &err), 0);
    }
    ps_layer_iter_destroy(it);
    ps_layer_close(r);
    free(path);
}

KT_TEST(layer_empty_layers_are_valid)
{
    struct ps_key a = ps_key_rel_block(1663, 5, 16384, 0, 0), b = ps_key_max();
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct ps_layer_iter *it;
    struct kc_error err;
    char *path;

    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0)
            ps_layer_desc_delta(&d, &kt_tenant, &kt_timeline, &a, &b, 0x10, 0x20);
        else
            ps_layer_desc_image(&d, &kt_tenant, &kt_timeline, &a, &b, 0x20);
        path = kt_write(kt_tmpdir(), &d, NULL, NULL, 0);
        KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
        KT_ASSERT_EQ(ps_layer_reader_nvalues(r), 0);
        KT_ASSERT_EQ(ps_layer_reader_max_value_len(r), 0);
        KT_ASSERT_EQ(ps_layer_reader_file_size(r), PS_LAYER_HEADER_SIZE + PS_LAYER_FOOTER_SIZE);
        it = ps_layer_iter_create(r);
        KT_ASSERT_EQ(ps_layer_iter_versions(it, &a, UINT64_MAX, &err), 0);
        KT_ASSERT_EQ(ps_layer_iter_scan(it, &a, NULL, &err), 0);
        KT_ASSERT_EQ(ps_layer_iter_next(it, &err), 0);
        KT_ASSERT_EQ(ps_layer_iter_preads(it), 0);
        ps_layer_iter_destroy(it);
        ps_layer_close(r);
        free(path);
    }
    /* An empty layer with bytes no checksum covers, between the header and the footer. */
    for (int t = 0; t < 2; t++) {
        struct ps_layer_footer f = {100, 150, 0, 0, 0, 0, 0, 0, PS_LAYER_VERSION};
        uint8_t file[PS_LAYER_HEADER_SIZE + 50 + PS_LAYER_FOOTER_SIZE];
        char other[4096];

        memset(file, 0xEE, sizeof(file));
        ps_layer_header_encode(&d, PS_LAYER_VERSION, file);
        if (t == 1)
            f.index_off = 150;
        ps_layer_footer_encode(&f, file + PS_LAYER_HEADER_SIZE + 50);
        snprintf(other, sizeof(other), "%s/padded", kt_tmpdir());
        kt_spit(other, file, sizeof(file));
        KT_ASSERT_EQ(ps_layer_open(other, &r, &err), KC_ECORRUPT);
        KT_ASSERT_CONTAINS(err.detail, "empty layer");
    }
}

KT_TEST(layer_read_checks_buffer_and_position)
{
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct ps_layer_iter *it;
    struct kc_error err;
    struct kt_val v = {ps_key_checkpoint(), 0x77, PS_VALUE_NATIVE_RECORD, false, 300, 2};
    struct ps_value val;
    uint8_t buf[300];
    char *path;

    kt_desc_delta(&d, 0x70);
    path = kt_write(kt_tmpdir(), &d, NULL, &v, 1);
    KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
    it = ps_layer_iter_create(r);
    KT_ASSERT_EQ(ps_layer_iter_read(it, buf, sizeof(buf), &val, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_layer_iter_versions(it, &v.key, 0x77, &err), 1);
    KT_ASSERT_EQ(ps_layer_iter_read(it, buf, 299, &val, &err), KC_ETOOBIG);
    KT_ASSERT_CONTAINS(err.message, "300 bytes");
    KT_ASSERT_EQ(ps_layer_iter_read(it, buf, 300, &val, &err), 0);
    KT_ASSERT_EQ(val.len, 300);
    KT_ASSERT_EQ(val.kind, PS_VALUE_NATIVE_RECORD);
    KT_ASSERT(!ps_value_ends_chain(&val));
    ps_layer_iter_destroy(it);
    ps_layer_close(r);
    KT_ASSERT_EQ(ps_layer_open("/nonexistent/layer", &r, &err), KC_ENOTFOUND);
    KT_ASSERT(r == NULL);
    KT_ASSERT_EQ(ps_layer_open(kt_tmpdir(), &r, &err), KC_EIO); /* a directory */
    free(path);
}

/* A bigger layer: spot-checked lookups against the model, O(1) reads each, small open. */
KT_TEST(layer_big_layer_spot_checks_and_bounded_memory)
{
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct ps_layer_iter *it;
    struct kc_error err;
    size_t n;
    struct kt_val *v = kt_model_delta(2500, 15, 7, 0x40000000, &n);
    uint8_t *buf = kc_malloc(65536), *expect = kc_malloc(65536);
    uint64_t s = 99;
    char *path;

    KT_ASSERT(n >= 15000);
    kt_desc_delta(&d, 0x40000000);
    path = kt_write(kt_tmpdir(), &d, NULL, v, n);
    KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
    KT_ASSERT_EQ(ps_layer_reader_nvalues(r), n);
    /* Open keeps the directory only: far less than the index (40 bytes a value). */
    KT_ASSERT(ps_layer_reader_memory(r) < n * PS_LAYER_ENTRY_SIZE / 20);
    KT_ASSERT(ps_layer_reader_memory(r) < ps_layer_reader_file_size(r) / 100);
    it = ps_layer_iter_create(r);
    for (int t = 0; t < 2000; t++) {
        size_t i = (size_t)(kt_rng(&s) % n);
        kc_lsn lsn = v[i].lsn + (t % 2 ? 0 : kt_rng(&s) % 16);
        struct ps_layer_iter *fresh = ps_layer_iter_create(r);
        struct ps_value val;

        KT_ASSERT_EQ(kt_check_versions(it, v, n, &v[i].key, lsn, buf, expect), 0);
        /* The first value of a key: one index block read and one value read. */
        KT_ASSERT_EQ(ps_layer_iter_versions(fresh, &v[i].key, lsn, &err), 1);
        KT_ASSERT_EQ(ps_layer_iter_read(fresh, buf, 65536, &val, &err), 0);
        KT_ASSERT(ps_layer_iter_preads(fresh) == 2 ||
                  (ps_layer_iter_preads(fresh) == 1 && val.len == 0));
        ps_layer_iter_destroy(fresh);
    }
    KT_ASSERT_EQ(kt_check_scan(it, &d.key_start, NULL, v, 0, n), 0);
    ps_layer_iter_destroy(it);
    ps_layer_close(r);
    free(path);
    free(v);
    free(buf);
    free(expect);
}

/* ---- corruption ---- */

static uint8_t *kt_slurp(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    uint8_t *data;

    KT_ASSERT(fd >= 0);
    KT_ASSERT_EQ(fstat(fd, &st), 0);
    data = kc_malloc((size_t)st.st_size + 1);
    KT_ASSERT_EQ(pread(fd, data, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return data;
}

static void kt_spit(const char *path, const uint8_t *data, size_t len)
{
    int fd;

    /* A new file each time: truncating one makes ext4 flush it (auto_da_alloc), slowly. */
    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    KT_ASSERT(fd >= 0);
    KT_ASSERT_EQ(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* The drops kt_read_everything expects (those of kt_small_layer). */
static const struct ps_drop kt_small_drops[] = {
    {{{0}}, {{0}}, 0x100}, /* keys filled in by kt_small_layer */
    {{{0}}, {{0}}, 0x118},
    {{{0}}, {{0}}, 0x118},
};
static struct ps_drop kt_want_drops[3];

/* The reader's drops are exactly kt_want_drops. */
static void kt_check_drops(const struct ps_layer_reader *r)
{
    size_t nd;
    const struct ps_drop *d = ps_layer_reader_drops(r, &nd);

    KT_ASSERT_EQ(nd, KC_ARRAY_LEN(kt_want_drops));
    for (size_t i = 0; i < nd; i++)
        if (!ps_key_eq(&d[i].start, &kt_want_drops[i].start) ||
            !ps_key_eq(&d[i].end, &kt_want_drops[i].end) || d[i].lsn != kt_want_drops[i].lsn)
            kt_fail(__FILE__, __LINE__, "drop %zu differs from the model (wrong data)", i);
}

/*
 * Open path and read everything through every lookup path (the drops must be
 * kt_want_drops). Fails the test on wrong data or a crash-worthy result;
 * returns 0 when the layer read cleanly and matched the model, else the
 * first error (KC_ECORRUPT, ...).
 */
static int kt_read_everything(const char *path, const struct kt_val *v, size_t n)
{
    struct ps_layer_reader *r;
    struct ps_layer_iter *it;
    struct kc_error err;
    uint8_t *buf = kc_malloc(65536), *expect = kc_malloc(65536);
    int rc = ps_layer_open(path, &r, &err);

    if (rc != 0) {
        KT_ASSERT(r == NULL);
        KT_ASSERT(err.code == rc);
        free(buf);
        free(expect);
        return rc;
    }
    kt_check_drops(r);
    it = ps_layer_iter_create(r);
    rc = kt_check_scan(it, &v[0].key, NULL, v, 0, n);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = kt_check_versions(it, v, n, &v[i].key, v[i].lsn, buf, expect);
    ps_layer_iter_destroy(it);
    ps_layer_close(r);
    free(buf);
    free(expect);
    return rc;
}

/*
 * A small layer with several index blocks, compressed and plain values, an
 * empty value, and three drops (kt_want_drops).
 */
static char *kt_small_layer(struct kt_val *v, size_t *n, bool compress_index)
{
    struct ps_layer_writer_opts o = {.block_entries = 3, .no_index_compression = !compress_index};
    struct ps_layer_desc d;
    static const uint32_t lens[] = {100, 70, 0, 300, 90, 16, 200, 80, 120, 65};

    for (size_t i = 0; i < KC_ARRAY_LEN(lens); i++) {
        v[i].key = ps_key_rel_block(1663, 5, 16384, 0, (uint32_t)(i / 2));
        v[i].lsn = 0x100 + 8 * i;
        v[i].kind = i % 2 == 0 ? PS_VALUE_IMAGE : PS_VALUE_PG_RECORD;
        v[i].will_init = i % 2 == 0;
        v[i].len = lens[i];
        v[i].seed = i;
    }
    *n = KC_ARRAY_LEN(lens);
    memcpy(kt_want_drops, kt_small_drops, sizeof(kt_want_drops));
    kt_want_drops[0].start = ps_key_rel_block(1663, 5, 16385, 0, 0);
    kt_want_drops[0].end = ps_key_rel_block(1663, 5, 16386, 0, 0);
    kt_want_drops[1].start = ps_key_rel_block(1663, 5, 16384, 0, 3);
    kt_want_drops[1].end = ps_key_rel_size(1663, 5, 16384, 0);
    kt_want_drops[2].start = ps_key_slru_block(PS_SLRU_CLOG, 0, 0);
    kt_want_drops[2].end = ps_key_slru_block(PS_SLRU_CLOG, 1, 0);
    kt_desc_delta(&d, 0x100);
    return kt_write_drops(kt_tmpdir(), &d, &o, v, *n, kt_want_drops, KC_ARRAY_LEN(kt_want_drops));
}

KT_TEST(layer_every_bit_flip_is_detected)
{
    for (int pass = 0; pass < 2; pass++) {
        struct kt_val v[10];
        size_t n, len;
        char *path = kt_small_layer(v, &n, pass == 0);
        uint8_t *data = kt_slurp(path, &len);
        int fd;

        fprintf(stderr, "    small layer: %zu bytes\n", len);
        KT_ASSERT_EQ(kt_read_everything(path, v, n), 0);
        fd = open(path, O_WRONLY);
        KT_ASSERT(fd >= 0);
        for (size_t byte = 0; byte < len; byte++) {
            for (int bit = 0; bit < 8; bit++) {
                uint8_t flipped = (uint8_t)(data[byte] ^ (1u << bit));
                int rc;
                KT_ASSERT_EQ(pwrite(fd, &flipped, 1, (off_t)byte), 1);
                rc = kt_read_everything(path, v, n);
                if (rc != KC_ECORRUPT)
                    kt_fail(__FILE__, __LINE__, "flip of bit %d at offset %zu of %zu: rc %d", bit,
                            byte, len, rc);
            }
            KT_ASSERT_EQ(pwrite(fd, &data[byte], 1, (off_t)byte), 1);
        }
        close(fd);
        KT_ASSERT_EQ(kt_read_everything(path, v, n), 0);
        free(data);
        free(path);
    }
}

KT_TEST(layer_every_truncation_is_rejected)
{
    struct kt_val v[10];
    size_t n, len;
    char *path = kt_small_layer(v, &n, true);
    uint8_t *data = kt_slurp(path, &len);
    struct kc_error err;

    for (size_t cut = 0; cut < len; cut++) {
        struct ps_layer_reader *r;
        int rc;
        kt_spit(path, data, cut);
        rc = ps_layer_open(path, &r, &err);
        if (rc != KC_ECORRUPT)
            kt_fail(__FILE__, __LINE__, "truncation to %zu of %zu bytes: rc %d", cut, len, rc);
        KT_ASSERT_CONTAINS(err.message, "corrupt layer file");
        KT_ASSERT_CONTAINS(err.message, path);
    }
    /* Appended bytes move the footer: rejected as well. */
    kt_spit(path, data, len);
    {
        int fd = open(path, O_WRONLY | O_APPEND);
        KT_ASSERT_EQ(write(fd, "x", 1), 1);
        close(fd);
    }
    KT_ASSERT_EQ(kt_read_everything(path, v, n), KC_ECORRUPT);
    free(data);
    free(path);
}

KT_TEST(layer_random_garbage_is_rejected)
{
    char path[4096];
    uint64_t s = 1234;
    uint8_t *data = kc_malloc(8192);
    struct kc_error err;
    uint8_t hdr[PS_LAYER_HEADER_SIZE];
    struct ps_layer_desc d;

    snprintf(path, sizeof(path), "%s/garbage", kt_tmpdir());
    kt_desc_delta(&d, 0x10);
    ps_layer_header_encode(&d, PS_LAYER_VERSION, hdr);
    for (int t = 0; t < 600; t++) {
        struct ps_layer_reader *r;
        size_t len = (size_t)(kt_rng(&s) % 8192);
        int rc;
        for (size_t i = 0; i < len; i++)
            data[i] = (uint8_t)kt_rng(&s);
        if (t % 2 == 1 && len >= sizeof(hdr)) /* a valid header, garbage after it */
            memcpy(data, hdr, sizeof(hdr));
        kt_spit(path, data, len);
        rc = ps_layer_open(path, &r, &err);
        if (rc != KC_ECORRUPT)
            kt_fail(__FILE__, __LINE__, "garbage of %zu bytes: rc %d", len, rc);
    }
    free(data);
}

/* Recompute every checksum of a version-2 file whose index blocks are stored plainly. */
static void kt_reseal(uint8_t *f, size_t len)
{
    uint8_t *foot = f + len - PS_LAYER_FOOTER_SIZE;
    uint64_t dir_off = kc_load_u64(foot + 8);
    uint32_t nblocks = kc_load_u32(foot + 24), ndrops = kc_load_u32(foot + 36);
    size_t dir_len = (size_t)nblocks * PS_LAYER_DIRENT_SIZE;
    size_t drops_len = (size_t)ndrops * PS_LAYER_DROP_SIZE;

    kc_store_u32(f + 96, kc_crc32c(0, f, 96));
    if (dir_off <= len - PS_LAYER_FOOTER_SIZE && nblocks <= len && ndrops <= len &&
        dir_len + drops_len == len - PS_LAYER_FOOTER_SIZE - dir_off) {
        for (uint32_t i = 0; i < nblocks; i++) {
            uint8_t *de = f + dir_off + (size_t)i * PS_LAYER_DIRENT_SIZE;
            uint64_t ioff = kc_load_u64(de + 42);
            uint32_t ilen = kc_load_u32(de + 50);
            if (ioff <= len && ilen <= len - ioff)
                kc_store_u32(de + 58, kc_crc32c(0, f + ioff, ilen));
        }
        kc_store_u32(foot + 32, kc_crc32c(0, f + dir_off, dir_len));
        kc_store_u32(foot + 40, ndrops == 0 ? 0 : kc_crc32c(0, f + dir_off + dir_len, drops_len));
    }
    kc_store_u32(foot + 52, kc_crc32c(0, foot, 52));
}

/*
 * Open path and read every value, then look up every key found, without a
 * model to compare with (the data may legitimately differ). Returns 0 or the
 * first error; any crash fails the test.
 */
static int kt_read_blind(const char *path)
{
    struct ps_layer_reader *r;
    struct ps_layer_iter *it, *it2;
    struct kc_error err;
    uint8_t *buf;
    int rc = ps_layer_open(path, &r, &err), rc2 = 0;

    if (rc != 0)
        return rc;
    buf = kc_malloc(ps_layer_reader_max_value_len(r) + 1);
    it = ps_layer_iter_create(r);
    it2 = ps_layer_iter_create(r);
    for (rc = ps_layer_iter_scan(it, &ps_layer_reader_desc(r)->key_start, NULL, &err);
         rc == 1 && rc2 >= 0; rc = ps_layer_iter_next(it, &err)) {
        const struct ps_layer_entry *e = ps_layer_iter_entry(it);
        struct ps_value val;
        if ((rc = ps_layer_iter_read(it, buf, ps_layer_reader_max_value_len(r), &val, &err)) != 0)
            break;
        for (rc2 = ps_layer_iter_versions(it2, &e->key, e->lsn, &err); rc2 == 1;
             rc2 = ps_layer_iter_next(it2, &err))
            KT_ASSERT(ps_key_eq(&ps_layer_iter_entry(it2)->key, &e->key));
    }
    ps_layer_iter_destroy(it);
    ps_layer_iter_destroy(it2);
    ps_layer_close(r);
    free(buf);
    return rc < 0 ? rc : rc2;
}

/* Change byte off of a copy of the good file (^= or =), reseal, read it (blind when v is NULL). */
static int kt_mutate(const char *path, const uint8_t *good, size_t len, size_t off, uint8_t value,
                     bool xor_it, const struct kt_val *v, size_t n)
{
    uint8_t *f = kc_malloc(len);
    int rc;

    memcpy(f, good, len);
    f[off] = xor_it ? (uint8_t)(f[off] ^ value) : value;
    kt_reseal(f, len);
    kt_spit(path, f, len);
    free(f);
    rc = v != NULL ? kt_read_everything(path, v, n) : kt_read_blind(path);
    return rc;
}

KT_TEST(layer_structural_corruption_with_valid_checksums)
{
    struct kt_val v[10];
    size_t n, len;
    char *path = kt_small_layer(v, &n, false);
    uint8_t *good = kt_slurp(path, &len);
    const uint8_t *foot = good + len - PS_LAYER_FOOTER_SIZE;
    size_t foot_off = len - PS_LAYER_FOOTER_SIZE;
    size_t dir_off = (size_t)kc_load_u64(foot + 8), idx_off = (size_t)kc_load_u64(foot + 0);
    size_t e1 = idx_off + PS_LAYER_ENTRY_SIZE; /* entry 1 of block 0 */
    size_t drops_off = dir_off + (size_t)kc_load_u32(foot + 24) * PS_LAYER_DIRENT_SIZE;
    uint64_t s = 77;

    /* Header: bad kind, reversed key range, flags set, image LSN range; version 2. */
    KT_ASSERT_EQ(kt_mutate(path, good, len, 8, 3, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, 44, 0xFF, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, 9, 1, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, 8, 2, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, 5, 3, false, v, n), KC_EVERSION);
    /* A version-2 file relabelled version 1: the footer is not where version 1 has it. */
    KT_ASSERT_EQ(kt_mutate(path, good, len, 5, 1, false, v, n), KC_ECORRUPT);
    /* Footer: counts and offsets that do not add up. */
    KT_ASSERT_EQ(kt_mutate(path, good, len, foot_off + 27, 1, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, foot_off + 23, 1, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, foot_off + 7, 1, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, foot_off + 30, 0, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, foot_off + 28, 0x40, false, v, n), KC_ECORRUPT);
    /* Directory: entry counts, flags, offsets, lengths, order. */
    KT_ASSERT_EQ(kt_mutate(path, good, len, dir_off + 55, 0, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, dir_off + 55, 4, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, dir_off + 56, 2, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, dir_off + 57, 1, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, dir_off + 33, 1, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, dir_off + 41, 1, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, dir_off + 49, 1, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, dir_off + PS_LAYER_DIRENT_SIZE + 17, 0, false, v, n),
                 KC_ECORRUPT);
    /* Drops: counts, key ranges, LSNs outside the layer, order. */
    KT_ASSERT_EQ(kt_mutate(path, good, len, foot_off + 39, 1, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, drops_off + 9, 0xFF, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, drops_off + 18 + 12, 0x00, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, drops_off + 36, 0x01, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, drops_off + 43, 0xFF, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(
        kt_mutate(path, good, len, drops_off + 2 * PS_LAYER_DROP_SIZE + 43, 0x00, false, v, n),
        KC_ECORRUPT); /* the third drop now older than the second */
    /* Index entries: order, ranges, kind, flags, lengths. */
    KT_ASSERT_EQ(kt_mutate(path, good, len, e1 + 25, 0, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, e1 + 18, 0x80, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, e1 + 34, 9, false, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, e1 + 35, 0x80, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, e1 + 35, PS_LAYER_ENTRY_ZSTD, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, e1 + 29, 1, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, e1 + 33, 1, true, v, n), KC_ECORRUPT);
    KT_ASSERT_EQ(kt_mutate(path, good, len, idx_off + 35, PS_LAYER_ENTRY_WILL_INIT, true, v, n),
                 KC_ECORRUPT); /* an image without will_init */
    /* Anything else, resealed: an error or a clean read, never a crash. */
    for (int t = 0; t < 3000; t++) {
        size_t off = t % 3 == 0 ? idx_off + (size_t)(kt_rng(&s) % (len - idx_off))
                                : (size_t)(kt_rng(&s) % len);
        int rc = kt_mutate(path, good, len, off, (uint8_t)kt_rng(&s), false, NULL, 0);
        KT_ASSERT(rc == 0 || rc == KC_ECORRUPT || rc == KC_EVERSION);
    }
    free(good);
    free(path);
}

KT_TEST(layer_name_must_match_header)
{
    struct kt_val v[10];
    size_t n, len;
    char *path = kt_small_layer(v, &n, true), other[4096], name[PS_LAYER_NAME_MAX];
    uint8_t *data = kt_slurp(path, &len);
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct kc_error err;

    kt_desc_delta(&d, 0x101);
    snprintf(other, sizeof(other), "%s/%s", kt_tmpdir(), ps_layer_name_format(&d, name));
    kt_spit(other, data, len);
    KT_ASSERT_EQ(ps_layer_open(other, &r, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.detail, "not the file's name");
    snprintf(other, sizeof(other), "%s/copy-with-another-name", kt_tmpdir());
    kt_spit(other, data, len);
    KT_ASSERT_EQ(ps_layer_open(other, &r, &err), 0);
    ps_layer_close(r);
    free(data);
    free(path);
}

/* ---- drops (format version 2) ---- */

/* The newest drop of d[0..n) covering key at or below lsn, by brute force; 0 when none. */
static kc_lsn kt_model_drop_lsn(const struct ps_drop *d, size_t n, const struct ps_key *key,
                                kc_lsn lsn)
{
    kc_lsn best = 0;

    for (size_t i = 0; i < n; i++)
        if (d[i].lsn <= lsn && d[i].lsn > best && ps_key_cmp(key, &d[i].start) >= 0 &&
            ps_key_cmp(key, &d[i].end) < 0)
            best = d[i].lsn;
    return best;
}

KT_TEST(layer_drops_roundtrip_and_lookup)
{
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct kc_error err;
    struct ps_drop drops[300];
    const struct ps_drop *got;
    size_t n, nd;
    struct kt_val *v = kt_model_delta(200, 4, 5, 0x5000, &n);
    uint64_t s = 4242;
    kc_lsn lsn = 0x5000;
    char *path;

    /* Drops of random relation ranges (some empty of values, some overlapping), LSN order,
     * several at the same LSN (one commit dropping several relations). */
    for (size_t i = 0; i < KC_ARRAY_LEN(drops); i++) {
        uint32_t rel = 16384 + (uint32_t)(kt_rng(&s) % 4), blk = (uint32_t)(kt_rng(&s) % 400);
        drops[i].start = ps_key_rel_block(1663, 5, rel, 0, blk);
        drops[i].end = kt_rng(&s) % 3 == 0 ? ps_key_rel_size(1663, 5, rel, 0)
                                           : ps_key_rel_block(1663, 5, rel, 0, blk + 1 + 7 * i);
        if (kt_rng(&s) % 4 != 0)
            lsn += 1 + kt_rng(&s) % 3000;
        drops[i].lsn = lsn;
    }
    kt_desc_delta(&d, 0x5000);
    path = kt_write_drops(kt_tmpdir(), &d, NULL, v, n, drops, KC_ARRAY_LEN(drops));
    KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
    KT_ASSERT_EQ(ps_layer_reader_version(r), PS_LAYER_VERSION);
    KT_ASSERT_EQ(ps_layer_reader_nvalues(r), n);
    got = ps_layer_reader_drops(r, &nd);
    KT_ASSERT_EQ(nd, KC_ARRAY_LEN(drops));
    for (size_t i = 0; i < nd; i++)
        KT_ASSERT(ps_key_eq(&got[i].start, &drops[i].start) &&
                  ps_key_eq(&got[i].end, &drops[i].end) && got[i].lsn == drops[i].lsn);
    KT_ASSERT(ps_layer_reader_memory(r) >= sizeof(drops));
    for (int t = 0; t < 20000; t++) {
        struct ps_key k = t % 2 == 0 ? v[kt_rng(&s) % n].key
                                     : ps_key_rel_block(1663, 5, 16384 + (uint32_t)(kt_rng(&s) % 5),
                                                        0, (uint32_t)(kt_rng(&s) % 3000));
        kc_lsn at = 0x4000 + kt_rng(&s) % (lsn - 0x4000 + 0x1000);
        KT_ASSERT_UEQ(ps_layer_reader_drop_lsn(r, &k, at),
                      kt_model_drop_lsn(drops, KC_ARRAY_LEN(drops), &k, at));
    }
    {
        struct ps_key k = ps_key_rel_size(1663, 5, 16384, 0); /* end keys are exclusive */
        struct ps_key cp = ps_key_checkpoint();
        KT_ASSERT_UEQ(ps_layer_reader_drop_lsn(r, &cp, UINT64_MAX), 0);
        KT_ASSERT_UEQ(ps_layer_reader_drop_lsn(r, &k, UINT64_MAX),
                      kt_model_drop_lsn(drops, KC_ARRAY_LEN(drops), &k, UINT64_MAX));
    }
    /* The values read as without drops. */
    {
        struct ps_layer_iter *it = ps_layer_iter_create(r);
        KT_ASSERT_EQ(kt_check_scan(it, &d.key_start, NULL, v, 0, n), 0);
        ps_layer_iter_destroy(it);
    }
    ps_layer_close(r);
    free(path);
    free(v);
}

/*
 * A layer written by the format-1 writer (commit c75fb62, before drops
 * existed): block_entries 2, nothing compressed, tenant 0102..10, timeline
 * a1a2..b0, keys [min, max), LSNs [0x1000, 0x2000). Values: block 0 of
 * 1663/5/16384 image "page-zero-image" at 0x1100 and pg record "rec-a" at
 * 0x1200; block 1 native will_init "nat" at 0x1180; the checkpoint key
 * image "ckpt" at 0x1300.
 */
static const char kt_v1_file_hex[] = "4b4c595200010064010000000102030405060708090a0b0c0d0e0f10a1a2a"
                                     "3a4a5a6a7a8a9aaabacadaeafb000000000"
                                     "0000000000000000000000000000fffffffffffffffffffffffffffffffff"
                                     "fff00000000000010000000000000002000"
                                     "8cb085d7706167652d7a65726f2d696d6167657265632d616e6174636b707"
                                     "4000000067f000000050000400000000000"
                                     "0000000000000011000000000f0000000f01012f03d9b9000000067f00000"
                                     "00500004000000000000000000000000012"
                                     "0000000005000000050200ac7ab5ae000000067f000000050000400000000"
                                     "00001000000000000118000000003000000"
                                     "0303018a996e0603000000000000000000000000000000000100000000000"
                                     "0130000000004000000040101abc31b7c00"
                                     "0000067f00000005000040000000000000000000000000110000000000000"
                                     "00064000000000000001400000000000000"
                                     "7f000000500002000062d88973000000067f0000000500004000000000000"
                                     "10000000000001180000000000000007800"
                                     "0000000000000700000000000000cf0000005000020000b76e5f6c0000000"
                                     "00000007f000000000000011f0000000000"
                                     "000004000000020000000fd9a4ad71000100004b4c5946f4d6db15";

/* Decode kt_v1_file_hex into a new buffer; *len set. */
static uint8_t *kt_v1_file(size_t *len)
{
    size_t n = strlen(kt_v1_file_hex) / 2;
    uint8_t *b = kc_malloc(n);

    for (size_t i = 0; i < n; i++) {
        unsigned x;
        KT_ASSERT_EQ(sscanf(kt_v1_file_hex + 2 * i, "%2x", &x), 1);
        b[i] = (uint8_t)x;
    }
    *len = n;
    return b;
}

/* The values of kt_v1_file_hex as a model, their bytes in bytes[]. */
static size_t kt_v1_model(struct kt_val *v, uint8_t bytes[4][16])
{
    static const char *const text[4] = {"page-zero-image", "rec-a", "nat", "ckpt"};
    struct kt_val m[4] = {
        {ps_key_rel_block(1663, 5, 16384, 0, 0), 0x1100, PS_VALUE_IMAGE, true, 15, 0},
        {ps_key_rel_block(1663, 5, 16384, 0, 0), 0x1200, PS_VALUE_PG_RECORD, false, 5, 0},
        {ps_key_rel_block(1663, 5, 16384, 0, 1), 0x1180, PS_VALUE_NATIVE_RECORD, true, 3, 0},
        {ps_key_checkpoint(), 0x1300, PS_VALUE_IMAGE, true, 4, 0},
    };
    for (int i = 0; i < 4; i++) {
        v[i] = m[i];
        memcpy(bytes[i], text[i], strlen(text[i]));
    }
    return 4;
}

/* Open the golden version-1 file at path; 0 when every value reads as the model says. */
static int kt_read_v1(const char *path)
{
    static const struct kc_id tl = {{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa,
                                     0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0}};
    struct kt_val v[4];
    uint8_t bytes[4][16], buf[64];
    size_t n = kt_v1_model(v, bytes), nd = 99;
    struct ps_layer_reader *r;
    struct ps_layer_iter *it;
    struct kc_error err;
    int rc = ps_layer_open(path, &r, &err);

    if (rc != 0)
        return rc;
    KT_ASSERT_EQ(ps_layer_reader_version(r), 1);
    KT_ASSERT(ps_layer_reader_drops(r, &nd) == NULL && nd == 0);
    KT_ASSERT_UEQ(ps_layer_reader_drop_lsn(r, &v[0].key, UINT64_MAX), 0);
    KT_ASSERT(kc_id_equal(&ps_layer_reader_desc(r)->timeline, &tl));
    it = ps_layer_iter_create(r);
    rc = ps_layer_iter_scan(it, &v[0].key, NULL, &err);
    for (size_t i = 0; i < n && rc == 1; i++) {
        const struct ps_layer_entry *e = ps_layer_iter_entry(it);
        struct ps_value val;
        if (!ps_key_eq(&e->key, &v[i].key) || e->lsn != v[i].lsn)
            kt_fail(__FILE__, __LINE__, "entry %zu differs from the model (wrong data)", i);
        if ((rc = ps_layer_iter_read(it, buf, sizeof(buf), &val, &err)) != 0)
            break;
        KT_ASSERT(val.kind == v[i].kind && val.will_init == v[i].will_init);
        KT_ASSERT_EQ(val.len, v[i].len);
        KT_ASSERT_MEM_EQ(buf, bytes[i], v[i].len);
        rc = ps_layer_iter_next(it, &err);
    }
    if (rc == 0) { /* the image of block 0 under its record, through the version lookup */
        rc = ps_layer_iter_versions(it, &v[0].key, 0x11FF, &err);
        if (rc == 1) {
            KT_ASSERT_UEQ(ps_layer_iter_entry(it)->lsn, 0x1100);
            rc = 0;
        }
    }
    ps_layer_iter_destroy(it);
    ps_layer_close(r);
    return rc;
}

KT_TEST(layer_version1_files_are_still_read)
{
    static const struct kc_id t = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};
    struct ps_layer_desc d;
    struct ps_key a = ps_key_min(), b = ps_key_max();
    char name[PS_LAYER_NAME_MAX], path[4096];
    size_t len;
    uint8_t *data = kt_v1_file(&len);

    ps_layer_desc_delta(&d, &t, &t, &a, &b, 0x1000, 0x2000);
    snprintf(path, sizeof(path), "%s/%s", kt_tmpdir(), ps_layer_name_format(&d, name));
    KT_ASSERT_EQ(len, 459);
    kt_spit(path, data, len);
    KT_ASSERT_EQ(kt_read_v1(path), 0);
    /* Version 1 files keep their checks: every bit flip is caught. */
    for (size_t byte = 0; byte < len; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            int rc;
            data[byte] ^= (uint8_t)(1u << bit);
            kt_spit(path, data, len);
            rc = kt_read_v1(path);
            if (rc != KC_ECORRUPT)
                kt_fail(__FILE__, __LINE__, "flip of bit %d at offset %zu: rc %d", bit, byte, rc);
            data[byte] ^= (uint8_t)(1u << bit);
        }
    }
    free(data);
}

KT_TEST(layer_writer_can_still_write_version1)
{
    struct ps_layer_writer_opts o = {.version = 1, .block_entries = 3};
    struct ps_layer_desc d;
    struct ps_layer_reader *r;
    struct ps_layer_writer *w;
    struct kc_error err;
    struct kt_val v[10];
    struct ps_drop drop = {ps_key_min(), ps_key_max(), 0x100};
    size_t n;
    char *path = kt_small_layer(v, &n, true), *path1;
    size_t len2, len1;
    uint8_t *f2 = kt_slurp(path, &len2), *f1;

    /* The same values as version 1: no drops, a shorter footer, read the same. */
    kt_desc_delta(&d, 0x100);
    d.lsn_end++; /* another name */
    path1 = kt_write(kt_tmpdir(), &d, &o, v, n);
    f1 = kt_slurp(path1, &len1);
    KT_ASSERT_EQ(kc_load_u16(f1 + 4), 1);
    KT_ASSERT_EQ(kc_load_u16(f1 + len1 - 12), 1);
    KT_ASSERT_EQ(len1 + 8 + 3 * PS_LAYER_DROP_SIZE, len2);
    KT_ASSERT_EQ(ps_layer_open(path1, &r, &err), 0);
    KT_ASSERT_EQ(ps_layer_reader_version(r), 1);
    {
        struct ps_layer_iter *it = ps_layer_iter_create(r);
        KT_ASSERT_EQ(kt_check_scan(it, &v[0].key, NULL, v, 0, n), 0);
        ps_layer_iter_destroy(it);
    }
    ps_layer_close(r);
    /* A version-1 writer refuses drops; unknown versions are refused. */
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, &o, &w, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_add_drop(w, &drop, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "version 1 cannot hold range drops");
    ps_layer_writer_abort(w);
    o.version = 3;
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, &o, &w, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "version 3");
    free(f1);
    free(f2);
    free(path1);
    free(path);
}
