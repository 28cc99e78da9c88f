/* SPDX-License-Identifier: Apache-2.0 */
/* timeline_test.c -- unit tests for timelines: search, flush, restart, crashes, branches, pages. */
#include "pageserver/timeline.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/failpoint.h"
#include "pageserver/layer_writer.h"
#include "pageserver/timeline_meta.h"
#include "unit.h"

static const struct kc_id kt_tenant = {{0x7E, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};
static const struct kc_id kt_root = {{0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};
static const struct kc_id kt_child = {{0x02, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};
static const struct kc_id kt_grand = {{0x03, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};

#define KT_SYSID  0x7300000000000042ULL
#define KT_SEGSZ  (16u * 1024 * 1024)
#define KT_ROOT   "root"
#define KT_KEYS   12 /* keys of the randomized model */
#define KT_TEXT   24 /* longest value text of the model */
#define KT_EXPECT 4096

static uint64_t kt_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* "<kt_tmpdir()>/name" in a static buffer. */
static const char *kt_dir(const char *name)
{
    static char buf[4][4096];
    static int next;
    char *b = buf[next++ % 4];

    snprintf(b, sizeof(buf[0]), "%s/%s", kt_tmpdir(), name);
    return b;
}

static struct ps_timeline *kt_create(kc_lsn start, size_t distance)
{
    struct ps_timeline_opts o = {.checkpoint_distance = distance};
    struct ps_timeline *tl;
    struct kc_error err;

    if (ps_timeline_create(kt_dir(KT_ROOT), &kt_tenant, &kt_root, start, KT_SYSID, KT_SEGSZ, &o,
                           &tl, &err) != 0)
        kt_fail(__FILE__, __LINE__, "create: %s (%s)", err.message, err.detail);
    return tl;
}

static struct ps_timeline *kt_open(const char *name, struct ps_timeline *ancestor, size_t distance)
{
    struct ps_timeline_opts o = {.checkpoint_distance = distance};
    struct ps_timeline *tl;
    struct kc_error err;

    if (ps_timeline_open(kt_dir(name), ancestor, &o, &tl, &err) != 0)
        kt_fail(__FILE__, __LINE__, "open %s: %s (%s)", name, err.message, err.detail);
    return tl;
}

static struct ps_key kt_blk(uint32_t rel, uint32_t blk)
{
    return ps_key_rel_block(1663, 5, rel, 0, blk);
}

/* Put text at (key, lsn) as a value of kind ('I' image, 'R' pg record, 'N' native). */
static void kt_put(struct ps_timeline *tl, struct ps_key key, kc_lsn lsn, char kind, bool init,
                   const char *text)
{
    struct ps_value v =
        kind == 'I' ? ps_value_image(text, (uint32_t)strlen(text))
                    : ps_value_record(kind == 'R' ? PS_VALUE_PG_RECORD : PS_VALUE_NATIVE_RECORD,
                                      init, text, (uint32_t)strlen(text));
    struct kc_error err;

    if (ps_timeline_put(tl, &key, lsn, &v, &err) != 0)
        kt_fail(__FILE__, __LINE__, "put at %jx: %s (%s)", (uintmax_t)lsn, err.message, err.detail);
}

static void kt_drop(struct ps_timeline *tl, struct ps_key a, struct ps_key b, kc_lsn lsn)
{
    struct kc_error err;

    if (ps_timeline_drop_range(tl, &a, &b, lsn, &err) != 0)
        kt_fail(__FILE__, __LINE__, "drop: %s", err.message);
}

static void kt_advance(struct ps_timeline *tl, kc_lsn lsn)
{
    struct kc_error err;

    if (ps_timeline_advance(tl, lsn, &err) != 0)
        kt_fail(__FILE__, __LINE__, "advance: %s (%s)", err.message, err.detail);
}

static void kt_checkpoint(struct ps_timeline *tl)
{
    struct kc_error err;

    if (ps_timeline_checkpoint(tl, &err) != 0)
        kt_fail(__FILE__, __LINE__, "checkpoint: %s (%s)", err.message, err.detail);
}

/* Append " <lsn>:<kind><*>:<text>" for v to out. */
static void kt_describe_one(struct kc_sbuf *out, kc_lsn lsn, char kind, bool init, const uint8_t *d,
                            size_t len)
{
    kc_sbuf_printf(out, " %jx:%c%s:%.*s", (uintmax_t)lsn, kind, init && kind != 'I' ? "*" : "",
                   (int)len, (const char *)d);
}

static char kt_kind_char(enum ps_value_kind k)
{
    return k == PS_VALUE_IMAGE ? 'I' : k == PS_VALUE_PG_RECORD ? 'R' : 'N';
}

/* get_values as text: "C" (complete) or "A", then the values oldest first. */
static const char *kt_get(struct ps_timeline *tl, struct ps_key key, kc_lsn lsn)
{
    static char text[KT_EXPECT];
    struct kc_sbuf out = KC_SBUF_INIT;
    struct ps_values v;
    struct kc_error err;

    ps_values_init(&v);
    if (ps_timeline_get_values(tl, &key, lsn, &v, &err) != 0)
        kt_fail(__FILE__, __LINE__, "get_values: %s (%s)", err.message, err.detail);
    kc_sbuf_puts(&out, v.complete ? "C" : "A");
    if (v.has_base)
        kt_describe_one(&out, v.base.lsn, 'I', true, v.base.v.data, v.base.v.len);
    for (size_t i = 0; i < v.nrecords; i++)
        kt_describe_one(&out, v.records[i].lsn, kt_kind_char(v.records[i].v.kind),
                        v.records[i].v.will_init, v.records[i].v.data, v.records[i].v.len);
    snprintf(text, sizeof(text), "%s", kc_sbuf_str(&out));
    kc_sbuf_fini(&out);
    ps_values_fini(&v);
    return text;
}

/* ---- the model: every put and drop, searched by brute force ---- */

struct kt_event {
    bool drop;
    uint32_t key;    /* put: index into kt_model_keys */
    uint32_t lo, hi; /* drop: key indexes [lo, hi) */
    kc_lsn lsn;
    char kind; /* 'I', 'R', 'N' */
    bool init; /* will_init */
    char text[KT_TEXT];
};

struct kt_model {
    struct kt_event *ev;
    size_t n, cap;
};

static struct ps_key kt_model_key(uint32_t i)
{
    return i < 10 ? kt_blk(16384, i) : kt_blk(16385, i - 10);
}

static void kt_model_add(struct kt_model *m, const struct kt_event *e)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 256;
        m->ev = kc_realloc(m->ev, m->cap * sizeof(*m->ev));
    }
    m->ev[m->n++] = *e;
}

/* The expected kt_get() text of key i at lsn, from the events with LSN <= limit. */
static void kt_model_expect(const struct kt_model *m, uint32_t key, kc_lsn lsn, kc_lsn limit,
                            char *buf, size_t len)
{
    struct kc_sbuf out = KC_SBUF_INIT;
    kc_lsn drop = 0;
    size_t idx[512], n = 0;
    bool complete = false;

    for (size_t i = 0; i < m->n; i++) {
        const struct kt_event *e = &m->ev[i];
        if (e->drop && e->lsn <= lsn && e->lsn <= limit && key >= e->lo && key < e->hi &&
            e->lsn > drop)
            drop = e->lsn;
    }
    for (size_t i = m->n; i-- > 0 && !complete;) {
        const struct kt_event *e = &m->ev[i];
        if (e->drop || e->key != key || e->lsn > lsn || e->lsn > limit)
            continue;
        if (e->lsn <= drop)
            break;
        KT_ASSERT(n < KC_ARRAY_LEN(idx));
        idx[n++] = i;
        complete = e->kind == 'I' || e->init;
    }
    kc_sbuf_puts(&out, complete ? "C" : "A");
    while (n-- > 0) {
        const struct kt_event *e = &m->ev[idx[n]];
        kt_describe_one(&out, e->lsn, e->kind, e->init, (const uint8_t *)e->text, strlen(e->text));
    }
    snprintf(buf, len, "%s", kc_sbuf_str(&out));
    kc_sbuf_fini(&out);
}

/* Apply event e to tl. */
static void kt_apply(struct ps_timeline *tl, const struct kt_event *e)
{
    if (e->drop)
        kt_drop(tl, kt_model_key(e->lo), kt_model_key(e->hi), e->lsn);
    else
        kt_put(tl, kt_model_key(e->key), e->lsn, e->kind, e->init, e->text);
}

/*
 * Generate nsteps records after *lsn into m: each puts 0-3 values on distinct
 * keys or drops a key range; returns the record end LSNs in ends (nsteps).
 */
static void kt_model_generate(struct kt_model *m, uint64_t *s, kc_lsn *lsn, size_t nsteps,
                              kc_lsn *ends)
{
    for (size_t st = 0; st < nsteps; st++) {
        struct kt_event e;
        unsigned used = 0;
        uint64_t r = kt_rng(s);

        *lsn += 8 + 8 * (kt_rng(s) % 4);
        memset(&e, 0, sizeof(e));
        e.lsn = *lsn;
        if (r % 20 == 0) {
            e.drop = true;
            e.lo = (uint32_t)(kt_rng(s) % KT_KEYS);
            e.hi = e.lo + 1 + (uint32_t)(kt_rng(s) % 4);
            if (e.hi > KT_KEYS)
                e.hi = KT_KEYS;
            kt_model_add(m, &e);
        } else {
            for (unsigned k = 0; k < r % 4; k++) {
                uint32_t key = (uint32_t)(kt_rng(s) % KT_KEYS);
                uint64_t c = kt_rng(s) % 10;
                if (used & (1u << key))
                    continue;
                used |= 1u << key;
                e.key = key;
                e.kind = c < 3 ? 'I' : c < 8 ? 'R' : 'N';
                e.init = e.kind == 'I' || kt_rng(s) % 10 == 0;
                snprintf(e.text, sizeof(e.text), "k%u@%jx", key, (uintmax_t)e.lsn);
                kt_model_add(m, &e);
            }
        }
        ends[st] = *lsn;
    }
}

/* Compare tl with the model (events up to limit) at every key for nq random LSNs and more. */
static void kt_model_verify(struct ps_timeline *tl, const struct kt_model *m, uint64_t *s,
                            kc_lsn lo, kc_lsn hi, kc_lsn limit, int nq)
{
    char want[KT_EXPECT];

    for (int q = 0; q < nq; q++) {
        kc_lsn lsn = q == 0 ? hi : q == 1 ? UINT64_MAX : lo + kt_rng(s) % (hi - lo + 1);
        for (uint32_t k = 0; k < KT_KEYS; k++) {
            const char *got = kt_get(tl, kt_model_key(k), lsn);
            kt_model_expect(m, k, lsn, limit, want, sizeof(want));
            if (strcmp(got, want) != 0)
                kt_fail(__FILE__, __LINE__, "key %u at %jx:\n  got  %s\n  want %s", k,
                        (uintmax_t)lsn, got, want);
        }
    }
}

/* Apply the events of m with LSN in (from, to] to tl, advancing after each record. */
static void kt_replay(struct ps_timeline *tl, const struct kt_model *m, kc_lsn from, kc_lsn to)
{
    for (size_t i = 0; i < m->n; i++) {
        const struct kt_event *e = &m->ev[i];
        if (e->lsn <= from || e->lsn > to)
            continue;
        kt_apply(tl, e);
        if (i + 1 == m->n || m->ev[i + 1].lsn != e->lsn)
            kt_advance(tl, e->lsn);
    }
}

KT_TEST(timeline_put_and_search_in_memory)
{
    struct ps_timeline *tl = kt_create(0x100, 0);
    struct ps_key k = kt_blk(16384, 7), other = kt_blk(16384, 8);
    struct ps_value v = ps_value_image("x", 1);
    struct kc_error err;

    KT_ASSERT_STR_EQ(kt_get(tl, k, UINT64_MAX), "A");
    kt_put(tl, k, 0x110, 'R', false, "r0");
    kt_advance(tl, 0x110);
    kt_put(tl, k, 0x120, 'I', true, "base");
    kt_put(tl, other, 0x120, 'I', true, "o");
    kt_advance(tl, 0x120);
    kt_put(tl, k, 0x130, 'R', false, "r1");
    kt_advance(tl, 0x130);
    kt_put(tl, k, 0x140, 'N', false, "n2");
    kt_advance(tl, 0x140);
    kt_put(tl, k, 0x150, 'R', true, "init");
    kt_put(tl, k, 0x158, 'R', false, "r3");
    kt_advance(tl, 0x158);
    KT_ASSERT_STR_EQ(kt_get(tl, k, 0x10F), "A");
    KT_ASSERT_STR_EQ(kt_get(tl, k, 0x110), "A 110:R:r0"); /* no base below it */
    KT_ASSERT_STR_EQ(kt_get(tl, k, 0x120), "C 120:I:base");
    KT_ASSERT_STR_EQ(kt_get(tl, k, 0x13F), "C 120:I:base 130:R:r1");
    KT_ASSERT_STR_EQ(kt_get(tl, k, 0x14F), "C 120:I:base 130:R:r1 140:N:n2");
    KT_ASSERT_STR_EQ(kt_get(tl, k, 0x150), "C 150:R*:init");
    KT_ASSERT_STR_EQ(kt_get(tl, k, UINT64_MAX), "C 150:R*:init 158:R:r3");
    KT_ASSERT_STR_EQ(kt_get(tl, other, UINT64_MAX), "C 120:I:o");
    /* The rules of writes: not below the last record, one value per key and LSN. */
    KT_ASSERT_EQ(ps_timeline_put(tl, &k, 0x150, &v, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "below the last record LSN 0/158");
    KT_ASSERT_EQ(ps_timeline_put(tl, &k, 0x158, &v, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "already has a value at LSN 0/158");
    KT_ASSERT_EQ(ps_timeline_put(tl, &other, 0x158, &v, &err), 0); /* at the last record: ok */
    KT_ASSERT_EQ(ps_timeline_drop_range(tl, &k, &other, 0x157, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_timeline_advance(tl, 0x157, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.detail, "The last record LSN 0/158 is above it.");
    kt_put(tl, k, 0x170, 'R', false, "r4");
    KT_ASSERT_EQ(ps_timeline_advance(tl, 0x160, &err), KC_EINVAL); /* a value above it */
    KT_ASSERT_CONTAINS(err.detail, "0/170");
    KT_ASSERT_UEQ(ps_timeline_last_record_lsn(tl), 0x158);
    kt_advance(tl, 0x170);
    KT_ASSERT_UEQ(ps_timeline_disk_consistent_lsn(tl), 0x100);
    ps_timeline_close(tl);
}

KT_TEST(timeline_flush_matches_the_model_randomized)
{
    struct kt_model m = {0};
    uint64_t s = 20261124, q = 77;
    kc_lsn lsn = 0x1000, flushed = 0x1000;
    kc_lsn ends[120];
    struct ps_timeline_stats st;
    struct ps_timeline *tl = kt_create(0x1000, 600); /* small: advance freezes often */

    for (int round = 0; round < 8; round++) {
        size_t first = m.n;
        kt_model_generate(&m, &s, &lsn, KC_ARRAY_LEN(ends), ends);
        for (size_t i = first, st_i = 0; st_i < KC_ARRAY_LEN(ends);) {
            /* The events of one record, then its advance. */
            while (i < m.n && m.ev[i].lsn <= ends[st_i])
                kt_apply(tl, &m.ev[i++]);
            kt_advance(tl, ends[st_i++]);
            /* Flush some frozen layers right away, leave others frozen for a while. */
            if (round % 4 < 2 && st_i % 37 == 0 && ps_timeline_flush_pending(tl)) {
                struct kc_error err;
                KT_ASSERT_EQ(ps_timeline_flush(tl, &err), 0);
            }
        }
        ps_timeline_get_stats(tl, &st);
        if (round % 4 == 2) /* searches cross several frozen layers too */
            KT_ASSERT(st.frozen_layers >= 2);
        kt_model_verify(tl, &m, &q, 0x1000, lsn, UINT64_MAX, 6);
        if (round % 2 == 1) {
            kt_checkpoint(tl);
            flushed = lsn;
            KT_ASSERT(!ps_timeline_flush_pending(tl));
            KT_ASSERT_UEQ(ps_timeline_disk_consistent_lsn(tl), lsn);
            kt_model_verify(tl, &m, &q, 0x1000, lsn, UINT64_MAX, 6);
        }
    }
    ps_timeline_get_stats(tl, &st);
    KT_ASSERT(st.layer_files >= 10);
    KT_ASSERT(st.flushes >= st.layers_written);
    /* Restart: the same answers from files alone, and the right disk consistent LSN. */
    ps_timeline_close(tl);
    tl = kt_open(KT_ROOT, NULL, 600);
    KT_ASSERT_UEQ(ps_timeline_disk_consistent_lsn(tl), flushed);
    KT_ASSERT_UEQ(ps_timeline_last_record_lsn(tl), flushed);
    kt_model_verify(tl, &m, &q, 0x1000, lsn, flushed, 8);
    ps_timeline_close(tl);
    free(m.ev);
}

KT_TEST(timeline_restart_resumes_at_disk_consistent_lsn)
{
    struct kt_model m = {0};
    uint64_t s = 99, q = 5;
    kc_lsn lsn = 0x2000, mid, ends[150];
    struct ps_value v = ps_value_image("late", 4);
    struct ps_key k0 = kt_model_key(0);
    struct kc_error err;
    struct ps_timeline *tl = kt_create(0x2000, 0);

    kt_model_generate(&m, &s, &lsn, 100, ends);
    kt_replay(tl, &m, 0, lsn);
    kt_checkpoint(tl);
    mid = lsn;
    kt_model_generate(&m, &s, &lsn, 50, ends);
    kt_replay(tl, &m, mid, lsn);
    kt_model_verify(tl, &m, &q, 0x2000, lsn, UINT64_MAX, 4);
    /* Closing without a checkpoint loses what was only in memory. */
    ps_timeline_close(tl);
    tl = kt_open(KT_ROOT, NULL, 0);
    KT_ASSERT_UEQ(ps_timeline_disk_consistent_lsn(tl), mid);
    KT_ASSERT_UEQ(ps_timeline_last_record_lsn(tl), mid);
    kt_model_verify(tl, &m, &q, 0x2000, lsn, mid, 4);
    /* WAL at or below the resume point is refused, so nothing is applied twice. */
    KT_ASSERT_EQ(ps_timeline_put(tl, &k0, mid, &v, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_timeline_put(tl, &k0, mid - 8, &v, &err), KC_EINVAL);
    /* Ingesting again from there gives back everything. */
    kt_replay(tl, &m, mid, lsn);
    kt_model_verify(tl, &m, &q, 0x2000, lsn, UINT64_MAX, 4);
    kt_checkpoint(tl);
    ps_timeline_close(tl);
    tl = kt_open(KT_ROOT, NULL, 0);
    KT_ASSERT_UEQ(ps_timeline_disk_consistent_lsn(tl), lsn);
    kt_model_verify(tl, &m, &q, 0x2000, lsn, UINT64_MAX, 4);
    ps_timeline_close(tl);
    free(m.ev);
}

KT_TEST(timeline_drops_hide_older_values_across_flushes)
{
    struct ps_timeline *tl = kt_create(0x100, 0);
    struct ps_key a = kt_blk(16384, 0), b = kt_blk(16384, 1), c = kt_blk(16384, 2);
    struct ps_key end = kt_blk(16384, 2), other = kt_blk(16385, 0);

    kt_put(tl, a, 0x110, 'I', true, "a1");
    kt_put(tl, b, 0x110, 'I', true, "b1");
    kt_put(tl, c, 0x110, 'I', true, "c1");
    kt_put(tl, other, 0x110, 'I', true, "o1");
    kt_advance(tl, 0x110);
    kt_put(tl, a, 0x118, 'R', false, "a2");
    kt_advance(tl, 0x118);
    kt_checkpoint(tl); /* file 1: the values */
    kt_drop(tl, a, end, 0x120);
    kt_advance(tl, 0x120);
    kt_checkpoint(tl);                      /* file 2: the drop alone */
    kt_put(tl, a, 0x130, 'R', false, "a3"); /* no base after the drop */
    kt_put(tl, b, 0x130, 'I', true, "b3");
    /* A drop at the LSN of a value hides it; a second value at that LSN is hidden too. */
    kt_put(tl, kt_blk(16386, 0), 0x130, 'I', true, "d1");
    kt_drop(tl, kt_blk(16386, 0), kt_blk(16386, 1), 0x130);
    kt_put(tl, kt_blk(16386, 0), 0x130, 'I', true, "d2");
    kt_advance(tl, 0x130);
    for (int pass = 0; pass < 3; pass++) {
        KT_ASSERT_STR_EQ(kt_get(tl, a, 0x11F), "C 110:I:a1 118:R:a2");
        KT_ASSERT_STR_EQ(kt_get(tl, a, 0x120), "A");
        KT_ASSERT_STR_EQ(kt_get(tl, a, 0x130), "A 130:R:a3");
        KT_ASSERT_STR_EQ(kt_get(tl, b, 0x12F), "A");
        KT_ASSERT_STR_EQ(kt_get(tl, b, 0x130), "C 130:I:b3");
        KT_ASSERT_STR_EQ(kt_get(tl, c, UINT64_MAX), "C 110:I:c1"); /* the end is exclusive */
        KT_ASSERT_STR_EQ(kt_get(tl, c, 0x110), "C 110:I:c1");
        KT_ASSERT_STR_EQ(kt_get(tl, other, UINT64_MAX), "C 110:I:o1");
        KT_ASSERT_STR_EQ(kt_get(tl, kt_blk(16386, 0), UINT64_MAX), "A");
        if (pass == 0) {
            kt_checkpoint(tl);
        } else if (pass == 1) {
            ps_timeline_close(tl);
            tl = kt_open(KT_ROOT, NULL, 0);
        }
    }
    ps_timeline_close(tl);
}

/* Write an image layer at lsn over [from, to) holding images "<text><i>" for the keys given. */
static void kt_image_layer(struct ps_timeline *tl, struct ps_key from, struct ps_key to, kc_lsn lsn,
                           const struct ps_key *keys, size_t n, char *name_out)
{
    struct ps_layer_desc d;
    struct ps_layer_writer *w;
    struct kc_error err;

    ps_layer_desc_image(&d, &kt_tenant, ps_timeline_id(tl), &from, &to, lsn);
    KT_ASSERT_EQ(ps_layer_writer_create(ps_timeline_dir(tl), &d, NULL, &w, &err), 0);
    for (size_t i = 0; i < n; i++) {
        char text[32];
        struct ps_value v;
        snprintf(text, sizeof(text), "IMG%zu", i);
        v = ps_value_image(text, (uint32_t)strlen(text));
        KT_ASSERT_EQ(ps_layer_writer_add(w, &keys[i], lsn, &v, &err), 0);
    }
    KT_ASSERT_EQ(ps_layer_writer_finish(w, &err), 0);
    ps_layer_name_format(&d, name_out);
}

KT_TEST(timeline_image_layers_end_searches)
{
    struct ps_timeline *tl = kt_create(0x100, 0);
    struct ps_key a = kt_blk(16384, 0), b = kt_blk(16384, 1), c = kt_blk(16384, 5);
    struct ps_key keys[1] = {kt_blk(16384, 0)};
    char name[PS_LAYER_NAME_MAX], late[PS_LAYER_NAME_MAX];
    struct ps_layer_desc d;
    struct kc_error err;

    for (kc_lsn lsn = 0x110; lsn <= 0x180; lsn += 0x10) {
        char t[32];
        snprintf(t, sizeof(t), "a%jx", (uintmax_t)lsn);
        kt_put(tl, a, lsn, lsn == 0x110 ? 'I' : 'R', false, t);
        snprintf(t, sizeof(t), "b%jx", (uintmax_t)lsn);
        kt_put(tl, b, lsn, lsn == 0x110 ? 'I' : 'R', false, t);
        kt_put(tl, c, lsn, lsn == 0x110 ? 'I' : 'R', false, "c");
        kt_advance(tl, lsn);
        if (lsn == 0x140)
            kt_checkpoint(tl); /* one delta layer [0x101, 0x141) */
    }
    kt_checkpoint(tl); /* and [0x141, 0x181) */
    /* An image layer at 0x148 over blocks [0, 2): a has an image, b does not exist. */
    kt_image_layer(tl, a, kt_blk(16384, 2), 0x148, keys, 1, name);
    /* Not yet attached: nothing changes. */
    KT_ASSERT_STR_EQ(kt_get(tl, a, 0x150),
                     "C 110:I:a110 120:R:a120 130:R:a130 140:R:a140 150:R:a150");
    KT_ASSERT_EQ(ps_timeline_attach_layer(tl, name, &err), 0);
    for (int pass = 0; pass < 2; pass++) {
        KT_ASSERT_STR_EQ(kt_get(tl, a, 0x147), "C 110:I:a110 120:R:a120 130:R:a130 140:R:a140");
        KT_ASSERT_STR_EQ(kt_get(tl, a, 0x148), "C 148:I:IMG0");
        KT_ASSERT_STR_EQ(kt_get(tl, a, 0x165), "C 148:I:IMG0 150:R:a150 160:R:a160");
        KT_ASSERT_STR_EQ(kt_get(tl, b, 0x147), "C 110:I:b110 120:R:b120 130:R:b130 140:R:b140");
        KT_ASSERT_STR_EQ(kt_get(tl, b, 0x148), "A"); /* inside the image layer, not in it */
        KT_ASSERT_STR_EQ(kt_get(tl, b, 0x155), "A 150:R:b150");
        KT_ASSERT(strncmp(kt_get(tl, c, 0x155), "C 110:I:c", 9) == 0); /* outside its keys */
        /* The metadata lists it: it survives a restart. */
        ps_timeline_close(tl);
        tl = kt_open(KT_ROOT, NULL, 0);
    }
    /* Attaching refuses layers above the flushed history and overlapping ones. */
    kt_put(tl, a, 0x190, 'R', false, "a190");
    kt_advance(tl, 0x190);
    kt_image_layer(tl, a, kt_blk(16384, 2), 0x188, keys, 1, late);
    KT_ASSERT_EQ(ps_timeline_attach_layer(tl, late, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "outside the flushed history");
    kt_image_layer(tl, a, kt_blk(16384, 9), 0x148, keys, 1, late);
    KT_ASSERT_EQ(ps_timeline_attach_layer(tl, late, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "overlaps");
    KT_ASSERT_EQ(ps_timeline_attach_layer(tl, "not-a-layer", &err), KC_EINVAL);
    /* A delta layer file of another timeline is refused too. */
    {
        struct ps_layer_writer *w;
        struct ps_key lo = ps_key_min(), hi = ps_key_max();
        ps_layer_desc_delta(&d, &kt_tenant, &kt_child, &lo, &hi, 0x181, 0x182);
        KT_ASSERT_EQ(ps_layer_writer_create(ps_timeline_dir(tl), &d, NULL, &w, &err), 0);
        KT_ASSERT_EQ(ps_layer_writer_finish(w, &err), 0);
        KT_ASSERT_EQ(ps_timeline_attach_layer(tl, ps_layer_name_format(&d, late), &err), KC_EINVAL);
        KT_ASSERT_CONTAINS(err.message, "another timeline");
    }
    ps_timeline_close(tl);
    /* Files the metadata does not list were removed at the next open. */
    tl = kt_open(KT_ROOT, NULL, 0);
    {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", kt_dir(KT_ROOT), late);
        KT_ASSERT(access(path, F_OK) != 0);
        snprintf(path, sizeof(path), "%s/%s", kt_dir(KT_ROOT), name);
        KT_ASSERT(access(path, F_OK) == 0);
    }
    ps_timeline_close(tl);
}

/* Count the layer files in dir. */
static int kt_count_layers(const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *de;
    struct ps_layer_desc d;
    int n = 0;

    KT_ASSERT(dh != NULL);
    while ((de = readdir(dh)) != NULL)
        n += ps_layer_name_parse(de->d_name, &d, NULL) == 0;
    closedir(dh);
    return n;
}

/* In a child: open the timeline, ingest m's events in (from, to], arm spec, checkpoint. */
static int kt_crash_child(const struct kt_model *m, kc_lsn from, kc_lsn to, const char *spec)
{
    struct ps_timeline *tl = kt_open(KT_ROOT, NULL, 0);
    struct kc_error err;

    kt_replay(tl, m, from, to);
    if (kc_failpoint_configure(spec, &err) != 0)
        return 90;
    if (ps_timeline_checkpoint(tl, &err) == 0)
        return 91;
    return 92;
}

KT_TEST(timeline_crash_between_layer_and_metadata_reopens)
{
    static const char *const specs[] = {
        "pageserver.timeline.after-layer-write=exit(7)",
        "pageserver.timeline.before-metadata-rename=exit(7)",
        "pageserver.layer.before-rename=exit(7)",
        "pageserver.timeline.before-layer-write=exit(7)",
    };
    struct kt_model m = {0};
    uint64_t s = 31337, q = 8;
    kc_lsn lsn = 0x3000, mid, ends[80];
    struct ps_timeline *tl = kt_create(0x3000, 0);

    kt_model_generate(&m, &s, &lsn, 60, ends);
    kt_replay(tl, &m, 0, lsn);
    kt_checkpoint(tl);
    mid = lsn;
    ps_timeline_close(tl);
    KT_ASSERT_EQ(kt_count_layers(kt_dir(KT_ROOT)), 1);
    kt_model_generate(&m, &s, &lsn, 60, ends);
    for (size_t i = 0; i < KC_ARRAY_LEN(specs); i++) {
        int status;
        pid_t pid = fork();

        KT_ASSERT(pid >= 0);
        if (pid == 0)
            _exit(kt_crash_child(&m, mid, lsn, specs[i]));
        KT_ASSERT(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 7)
            kt_fail(__FILE__, __LINE__, "%s: child status 0x%x", specs[i], status);
        /* The crash left the old metadata; leftovers go at open; the first flush is intact. */
        tl = kt_open(KT_ROOT, NULL, 0);
        KT_ASSERT_EQ(kt_count_layers(kt_dir(KT_ROOT)), 1);
        KT_ASSERT(access(kt_dir(KT_ROOT "/" PS_TIMELINE_META_TEMP), F_OK) != 0);
        KT_ASSERT_UEQ(ps_timeline_disk_consistent_lsn(tl), mid);
        kt_model_verify(tl, &m, &q, 0x3000, lsn, mid, 3);
        ps_timeline_close(tl);
    }
    /* An injected error keeps the layer frozen; the next flush succeeds. */
    tl = kt_open(KT_ROOT, NULL, 0);
    kt_replay(tl, &m, mid, lsn);
    {
        struct kc_error err;
        KT_ASSERT_EQ(kc_failpoint_set("pageserver.timeline.after-layer-write", "1*return", &err),
                     0);
        KT_ASSERT_EQ(ps_timeline_checkpoint(tl, &err), KC_EFAILPOINT);
        KT_ASSERT_CONTAINS(err.message, "could not flush timeline");
        KT_ASSERT(ps_timeline_flush_pending(tl));
        KT_ASSERT_UEQ(ps_timeline_disk_consistent_lsn(tl), mid);
        kt_model_verify(tl, &m, &q, 0x3000, lsn, UINT64_MAX, 2);
        KT_ASSERT_EQ(ps_timeline_flush(tl, &err), 0);
        kc_failpoints_reset();
    }
    KT_ASSERT_UEQ(ps_timeline_disk_consistent_lsn(tl), lsn);
    ps_timeline_close(tl);
    tl = kt_open(KT_ROOT, NULL, 0);
    KT_ASSERT_EQ(kt_count_layers(kt_dir(KT_ROOT)), 2);
    kt_model_verify(tl, &m, &q, 0x3000, lsn, UINT64_MAX, 4);
    ps_timeline_close(tl);
    free(m.ev);
}

static struct ps_timeline *kt_branch(struct ps_timeline *parent, const struct kc_id *id, kc_lsn lsn,
                                     const char *name)
{
    struct ps_timeline *tl;
    struct kc_error err;

    if (ps_timeline_branch(parent, id, lsn, kt_dir(name), &tl, &err) != 0)
        kt_fail(__FILE__, __LINE__, "branch: %s (%s)", err.message, err.detail);
    return tl;
}

KT_TEST(timeline_branches_read_the_parent_up_to_the_branch_point)
{
    struct ps_timeline *root = kt_create(0x100, 0), *child, *grand, *t;
    struct ps_key a = kt_blk(16384, 0), b = kt_blk(16384, 1), gone = kt_blk(16385, 0);
    struct kc_error err;

    kt_put(root, a, 0x110, 'I', true, "a110");
    kt_put(root, b, 0x110, 'I', true, "b110");
    kt_put(root, gone, 0x110, 'I', true, "g110");
    kt_advance(root, 0x110);
    kt_checkpoint(root); /* a flushed part */
    kt_put(root, a, 0x120, 'R', false, "a120");
    kt_advance(root, 0x120); /* and an in-memory part */
    /* Branch errors: past the end, before the history, existing directory, bad ids. */
    KT_ASSERT_EQ(ps_timeline_branch(root, &kt_child, 0x121, kt_dir("c"), &t, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "branch LSN 0/121 is past the end of timeline");
    KT_ASSERT_CONTAINS(err.detail, "0/120");
    KT_ASSERT_EQ(ps_timeline_branch(root, &kt_child, 0xFF, kt_dir("c"), &t, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "before the history");
    KT_ASSERT_EQ(ps_timeline_branch(root, &kt_child, 0x120, kt_dir(KT_ROOT), &t, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_timeline_branch(root, &kt_root, 0x120, kt_dir("c"), &t, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_timeline_branch(root, &KC_ID_ZERO, 0x120, kt_dir("c"), &t, &err), KC_EINVAL);
    KT_ASSERT(t == NULL);

    child = kt_branch(root, &kt_child, 0x120, "child");
    KT_ASSERT_UEQ(ps_timeline_disk_consistent_lsn(child), 0x120);
    KT_ASSERT_UEQ(ps_timeline_last_record_lsn(child), 0x120);
    KT_ASSERT(ps_timeline_ancestor(child) == root);
    KT_ASSERT_EQ(kt_count_layers(kt_dir("child")), 0); /* O(1): nothing copied */
    /* The parent goes on; the child does its own thing. */
    kt_put(root, a, 0x130, 'R', false, "root-a130");
    kt_put(root, b, 0x130, 'I', true, "root-b130");
    kt_advance(root, 0x130);
    kt_put(child, a, 0x128, 'R', false, "child-a128");
    kt_drop(child, gone, kt_blk(16385, 1), 0x128);
    kt_advance(child, 0x128);
    grand = kt_branch(child, &kt_grand, 0x128, "grand");
    kt_put(child, b, 0x140, 'R', false, "child-b140");
    kt_advance(child, 0x140);
    kt_put(grand, b, 0x150, 'R', false, "grand-b150");
    kt_advance(grand, 0x150);
    for (int pass = 0; pass < 3; pass++) {
        KT_ASSERT_STR_EQ(kt_get(root, a, UINT64_MAX), "C 110:I:a110 120:R:a120 130:R:root-a130");
        KT_ASSERT_STR_EQ(kt_get(root, gone, UINT64_MAX), "C 110:I:g110");
        KT_ASSERT_STR_EQ(kt_get(child, a, 0x120), "C 110:I:a110 120:R:a120");
        KT_ASSERT_STR_EQ(kt_get(child, a, UINT64_MAX), "C 110:I:a110 120:R:a120 128:R:child-a128");
        KT_ASSERT_STR_EQ(kt_get(child, b, UINT64_MAX), "C 110:I:b110 140:R:child-b140");
        KT_ASSERT_STR_EQ(kt_get(child, b, 0x10F), "A"); /* below the branch: the parent's past */
        KT_ASSERT_STR_EQ(kt_get(child, gone, 0x127), "C 110:I:g110");
        KT_ASSERT_STR_EQ(kt_get(child, gone, UINT64_MAX), "A"); /* dropped in the child only */
        KT_ASSERT_STR_EQ(kt_get(grand, a, UINT64_MAX), "C 110:I:a110 120:R:a120 128:R:child-a128");
        KT_ASSERT_STR_EQ(kt_get(grand, b, UINT64_MAX), "C 110:I:b110 150:R:grand-b150");
        KT_ASSERT_STR_EQ(kt_get(grand, gone, UINT64_MAX), "A");
        if (pass == 0) {
            kt_checkpoint(root);
            kt_checkpoint(child);
            kt_checkpoint(grand);
        } else if (pass == 1) {
            /* Restart: children need their parent, and only the right one. */
            ps_timeline_close(grand);
            ps_timeline_close(child);
            ps_timeline_close(root);
            root = kt_open(KT_ROOT, NULL, 0);
            KT_ASSERT_EQ(ps_timeline_open(kt_dir("child"), NULL, NULL, &t, &err), KC_EINVAL);
            KT_ASSERT_CONTAINS(err.message, "wrong ancestor");
            KT_ASSERT_EQ(ps_timeline_open(kt_dir(KT_ROOT), root, NULL, &t, &err), KC_EINVAL);
            child = kt_open("child", root, 0);
            KT_ASSERT_EQ(ps_timeline_open(kt_dir("grand"), root, NULL, &t, &err), KC_EINVAL);
            grand = kt_open("grand", child, 0);
            KT_ASSERT_UEQ(ps_timeline_ancestor_lsn(grand), 0x128);
            KT_ASSERT_UEQ(ps_timeline_disk_consistent_lsn(grand), 0x150);
        }
    }
    ps_timeline_close(grand);
    ps_timeline_close(child);
    ps_timeline_close(root);
}

/* A thread that advances tl to lsn after ms milliseconds. */
struct kt_advancer {
    struct ps_timeline *tl;
    kc_lsn lsn;
    unsigned ms;
};

static void *kt_advance_later(void *arg)
{
    struct kt_advancer *a = arg;
    struct kc_error err;

    usleep(a->ms * 1000);
    if (ps_timeline_advance(a->tl, a->lsn, &err) != 0)
        kt_fail(__FILE__, __LINE__, "advance: %s", err.message);
    return NULL;
}

static uint64_t kt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

KT_TEST(timeline_wait_lsn_wakes_on_advance_and_times_out)
{
    struct ps_timeline *tl = kt_create(0x100, 0);
    struct kt_advancer adv = {tl, 0x200, 50};
    struct kc_error err;
    pthread_t th;
    uint64_t t0;

    KT_ASSERT_EQ(ps_timeline_wait_lsn(tl, 0x100, 0, &err), 0); /* already there */
    KT_ASSERT_EQ(pthread_create(&th, NULL, kt_advance_later, &adv), 0);
    t0 = kt_now_ms();
    KT_ASSERT_EQ(ps_timeline_wait_lsn(tl, 0x1F0, 10000, &err), 0);
    KT_ASSERT(kt_now_ms() - t0 >= 40);
    KT_ASSERT(kt_now_ms() - t0 < 5000);
    pthread_join(th, NULL);
    KT_ASSERT_UEQ(ps_timeline_last_record_lsn(tl), 0x200);
    t0 = kt_now_ms();
    KT_ASSERT_EQ(ps_timeline_wait_lsn(tl, 0x300, 100, &err), KC_ETIMEDOUT);
    KT_ASSERT(kt_now_ms() - t0 >= 95);
    KT_ASSERT(kt_now_ms() - t0 < 5000);
    KT_ASSERT_CONTAINS(err.message, "timed out waiting for WAL up to LSN 0/300");
    KT_ASSERT_CONTAINS(err.detail, "0/200");
    KT_ASSERT(err.hint[0] != '\0');
    ps_timeline_close(tl);
}

KT_TEST(timeline_ingest_ops_get_the_latest_image)
{
    struct ps_timeline *tl = kt_create(0x100, 0), *child;
    struct ps_ingest_ops ops = ps_timeline_ingest_ops(tl);
    struct ps_key size = ps_key_rel_size(1663, 5, 16384, 0), blk = kt_blk(16384, 0);
    struct ps_value v = ps_value_image("\x00\x00\x00\x07", 4);
    uint8_t buf[8];
    size_t len = 0;
    struct kc_error err;

    KT_ASSERT(ops.arg == tl);
    KT_ASSERT_EQ(ops.get(ops.arg, &size, buf, sizeof(buf), &len, &err), 0);
    KT_ASSERT_EQ(ops.put(ops.arg, &size, 0x110, &v, &err), 0);
    KT_ASSERT_EQ(ops.get(ops.arg, &size, buf, sizeof(buf), &len, &err), 1); /* before advance */
    KT_ASSERT_EQ(len, 4);
    KT_ASSERT_EQ(kc_load_u32(buf), 7);
    kt_advance(tl, 0x110);
    kt_checkpoint(tl);
    kt_put(tl, blk, 0x120, 'R', false, "rec");
    kt_advance(tl, 0x120);
    child = kt_branch(tl, &kt_child, 0x120, "child");
    ops = ps_timeline_ingest_ops(child);
    len = 0;
    KT_ASSERT_EQ(ops.get(ops.arg, &size, buf, 2, &len, &err), 1); /* from the parent's file */
    KT_ASSERT_EQ(len, 4);                                         /* the full length */
    KT_ASSERT_EQ(ops.get(ops.arg, &blk, buf, sizeof(buf), &len, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "not stored as an image");
    KT_ASSERT_EQ(ops.drop_range(ops.arg, &size, &blk, 0x130, &err), KC_EINVAL); /* empty range */
    KT_ASSERT_EQ(ops.drop_range(ops.arg, &size, &(struct ps_key){{0xFF}}, 0x130, &err), 0);
    KT_ASSERT_EQ(ops.get(ops.arg, &size, buf, sizeof(buf), &len, &err), 0);
    ps_timeline_close(child);
    ps_timeline_close(tl);
}

/* ---- reconstruction ---- */

/* What the fake WAL-redo saw, call by call. */
struct kt_redo_log {
    char text[1024];
    int calls;
};

/* Fake redo: page = base (or zeros); then byte (lsn % 8000) = record's first byte, per record. */
static int kt_redo(void *arg, const struct ps_key *key, const uint8_t *base,
                   const struct ps_found *records, size_t n, uint8_t page_out[PS_PAGE_SIZE],
                   struct kc_error *err)
{
    struct kt_redo_log *log = arg;
    size_t used = strlen(log->text);

    (void)key;
    (void)err;
    if (base != NULL)
        memcpy(page_out, base, PS_PAGE_SIZE);
    else
        memset(page_out, 0, PS_PAGE_SIZE);
    snprintf(log->text + used, sizeof(log->text) - used, "[base=%c", base ? (char)base[0] : '-');
    for (size_t i = 0; i < n; i++) {
        used = strlen(log->text);
        snprintf(log->text + used, sizeof(log->text) - used, " %jx:%.*s", (uintmax_t)records[i].lsn,
                 (int)records[i].v.len, (const char *)records[i].v.data);
        page_out[records[i].lsn % 8000] = records[i].v.data[0];
    }
    used = strlen(log->text);
    snprintf(log->text + used, sizeof(log->text) - used, "]");
    log->calls++;
    return 0;
}

/* A CLOG_SET native record for xids [first, first + n) with status and time. */
static size_t kt_clog_set(uint8_t *buf, uint8_t status, int64_t t, uint32_t first, uint32_t n)
{
    buf[0] = PS_NATIVE_CLOG_SET;
    buf[1] = PS_NATIVE_VERSION;
    buf[2] = status;
    kc_store_u64(buf + 3, (uint64_t)t);
    kc_store_u32(buf + 11, n);
    for (uint32_t i = 0; i < n; i++)
        kc_store_u32(buf + 15 + 4 * i, first + i);
    return 15 + 4 * (size_t)n;
}

static void kt_put_value(struct ps_timeline *tl, struct ps_key key, kc_lsn lsn, struct ps_value v)
{
    struct kc_error err;

    if (ps_timeline_put(tl, &key, lsn, &v, &err) != 0)
        kt_fail(__FILE__, __LINE__, "put: %s", err.message);
}

KT_TEST(timeline_get_page_applies_native_records)
{
    static uint8_t zero[PS_PAGE_SIZE], page[PS_CLOG_VALUE_SIZE], want[PS_CLOG_VALUE_SIZE];
    struct ps_timeline *tl = kt_create(0x100, 0);
    struct ps_key clog = ps_key_slru_block(PS_SLRU_CLOG, 0, 0);
    struct ps_key clog1 = ps_key_slru_block(PS_SLRU_CLOG, 0, 1);
    struct ps_key seg = ps_key_slru_size(PS_SLRU_CLOG, 0);
    uint8_t rec1[64], rec2[64], one[4];
    size_t n1 = kt_clog_set(rec1, PS_CLOG_COMMITTED, 777, 3, 2);
    size_t n2 = kt_clog_set(rec2, PS_CLOG_ABORTED, 0, 5, 1), len, wlen = PS_PAGE_SIZE;
    struct kc_error err;

    kc_store_u32(one, 1);
    kt_put_value(tl, seg, 0x110, ps_value_image(one, 4));
    kt_put_value(tl, clog, 0x110, ps_value_image(zero, PS_PAGE_SIZE));
    kt_put_value(tl, clog1, 0x110, ps_value_image("stale", 5)); /* past the segment's end */
    kt_advance(tl, 0x110);
    kt_checkpoint(tl);
    kt_put_value(tl, clog, 0x120, ps_value_record(PS_VALUE_NATIVE_RECORD, false, rec1, n1));
    kt_advance(tl, 0x120);
    kt_checkpoint(tl);
    kt_put_value(tl, clog, 0x130, ps_value_record(PS_VALUE_NATIVE_RECORD, false, rec2, n2));
    kt_advance(tl, 0x130);
    memset(want, 0, sizeof(want));
    KT_ASSERT_EQ(ps_native_apply(want, &wlen, rec1, n1, &err), 0);
    KT_ASSERT_EQ(ps_native_apply(want, &wlen, rec2, n2, &err), 0);
    KT_ASSERT_EQ(wlen, PS_CLOG_VALUE_SIZE);
    KT_ASSERT_EQ(ps_timeline_get_page(tl, &clog, 0x130, page, sizeof(page), &len, NULL, NULL, &err),
                 0);
    KT_ASSERT_EQ(len, PS_CLOG_VALUE_SIZE);
    KT_ASSERT_MEM_EQ(page, want, PS_CLOG_VALUE_SIZE);
    KT_ASSERT_EQ(ps_clog_value_time(page, len), 777);
    KT_ASSERT_EQ(ps_timeline_get_page(tl, &clog, 0x11F, page, sizeof(page), &len, NULL, NULL, &err),
                 0);
    KT_ASSERT_EQ(len, PS_PAGE_SIZE);
    KT_ASSERT_MEM_EQ(page, zero, PS_PAGE_SIZE);
    /* Block 1 is past the segment's size: zeros, whatever is stored. */
    memset(page, 0xAA, sizeof(page));
    KT_ASSERT_EQ(
        ps_timeline_get_page(tl, &clog1, 0x130, page, sizeof(page), &len, NULL, NULL, &err), 0);
    KT_ASSERT_EQ(len, PS_PAGE_SIZE);
    KT_ASSERT_MEM_EQ(page, zero, PS_PAGE_SIZE);
    /* The size key reads as its image; a buffer too small says how much is needed. */
    KT_ASSERT_EQ(ps_timeline_get_page(tl, &seg, 0x130, page, sizeof(page), &len, NULL, NULL, &err),
                 0);
    KT_ASSERT_EQ(len, 4);
    KT_ASSERT_EQ(kc_load_u32(page), 1);
    KT_ASSERT_EQ(ps_timeline_get_page(tl, &clog, 0x130, page, 100, &len, NULL, NULL, &err),
                 KC_ETOOBIG);
    KT_ASSERT_EQ(len, PS_CLOG_VALUE_SIZE);
    ps_timeline_close(tl);
}

KT_TEST(timeline_get_page_calls_redo_with_base_and_order)
{
    static uint8_t base[PS_PAGE_SIZE], page[PS_CLOG_VALUE_SIZE], want[PS_CLOG_VALUE_SIZE];
    struct ps_timeline *tl = kt_create(0x100, 0);
    struct ps_key vm = ps_key_rel_block(1663, 5, 16384, 2, 0);
    struct ps_key vmsize = ps_key_rel_size(1663, 5, 16384, 2);
    struct ps_key main0 = kt_blk(16384, 3), main7 = kt_blk(16384, 7), nobase = kt_blk(16384, 5);
    struct ps_key msize = ps_key_rel_size(1663, 5, 16384, 0), dbdir = ps_key_db_dir();
    struct ps_key ckpt = ps_key_checkpoint();
    struct kt_redo_log log;
    uint8_t trunc[6] = {PS_NATIVE_VM_TRUNCATE, PS_NATIVE_VERSION}, sz[4];
    size_t len, wlen = PS_PAGE_SIZE;
    struct kc_error err;

    kc_store_u32(trunc + 2, 100);
    memset(base, 'B', sizeof(base));
    kc_store_u32(sz, 1);
    kt_put_value(tl, vmsize, 0x110, ps_value_image(sz, 4));
    kc_store_u32(sz, 10);
    kt_put_value(tl, msize, 0x110, ps_value_image(sz, 4));
    kt_put_value(tl, vm, 0x110, ps_value_image(base, PS_PAGE_SIZE));
    kt_put_value(tl, ckpt, 0x110, ps_value_image("checkpoint", 10));
    kt_advance(tl, 0x110);
    kt_put(tl, vm, 0x120, 'R', false, "r1");
    kt_put(tl, nobase, 0x120, 'R', false, "orphan");
    kt_advance(tl, 0x120);
    kt_checkpoint(tl);
    kt_put(tl, vm, 0x128, 'R', false, "s2");
    kt_advance(tl, 0x128);
    kt_put_value(tl, vm, 0x130, ps_value_record(PS_VALUE_NATIVE_RECORD, false, trunc, 6));
    kt_advance(tl, 0x130);
    kt_put(tl, vm, 0x138, 'R', false, "t3");
    kt_put(tl, main0, 0x138, 'R', true, "init");
    kt_advance(tl, 0x138);

    /* Two runs of PostgreSQL records around the native one, in order, with the right base. */
    memset(&log, 0, sizeof(log));
    KT_ASSERT_EQ(
        ps_timeline_get_page(tl, &vm, 0x138, page, sizeof(page), &len, kt_redo, &log, &err), 0);
    KT_ASSERT_STR_EQ(log.text, "[base=B 120:r1 128:s2][base=B 138:t3]");
    KT_ASSERT_EQ(len, PS_PAGE_SIZE);
    memcpy(want, base, PS_PAGE_SIZE);
    want[0x120 % 8000] = 'r';
    want[0x128 % 8000] = 's';
    KT_ASSERT_EQ(ps_native_apply(want, &wlen, trunc, 6, &err), 0);
    want[0x138 % 8000] = 't';
    KT_ASSERT_MEM_EQ(page, want, PS_PAGE_SIZE);
    /* A will_init record: redo gets no base. */
    memset(&log, 0, sizeof(log));
    KT_ASSERT_EQ(
        ps_timeline_get_page(tl, &main0, 0x138, page, sizeof(page), &len, kt_redo, &log, &err), 0);
    KT_ASSERT_STR_EQ(log.text, "[base=- 138:init]");
    /* Only an image: redo is not called. */
    memset(&log, 0, sizeof(log));
    KT_ASSERT_EQ(
        ps_timeline_get_page(tl, &vm, 0x11F, page, sizeof(page), &len, kt_redo, &log, &err), 0);
    KT_ASSERT_EQ(log.calls, 0);
    KT_ASSERT_MEM_EQ(page, base, PS_PAGE_SIZE);
    /* Records need a redo; records without a base are an error. */
    KT_ASSERT_EQ(ps_timeline_get_page(tl, &vm, 0x138, page, sizeof(page), &len, NULL, NULL, &err),
                 KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "needs WAL redo");
    KT_ASSERT_EQ(
        ps_timeline_get_page(tl, &nobase, 0x138, page, sizeof(page), &len, kt_redo, &log, &err),
        KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.detail, "1 records need an older version");
    /* Absent blocks inside the relation, blocks of relations that do not exist: zeros. */
    memset(page, 0xAA, sizeof(page));
    KT_ASSERT_EQ(
        ps_timeline_get_page(tl, &main7, 0x138, page, sizeof(page), &len, kt_redo, &log, &err), 0);
    KT_ASSERT_EQ(len, PS_PAGE_SIZE);
    KT_ASSERT(page[0] == 0 && page[PS_PAGE_SIZE - 1] == 0);
    {
        struct ps_key nowhere = kt_blk(99999, 0);
        KT_ASSERT_EQ(ps_timeline_get_page(tl, &nowhere, 0x138, page, sizeof(page), &len, kt_redo,
                                          &log, &err),
                     0);
        KT_ASSERT_EQ(len, PS_PAGE_SIZE);
    }
    /* Other keys: their image, or not found. */
    KT_ASSERT_EQ(ps_timeline_get_page(tl, &ckpt, 0x138, page, sizeof(page), &len, NULL, NULL, &err),
                 0);
    KT_ASSERT_EQ(len, 10);
    KT_ASSERT_MEM_EQ(page, "checkpoint", 10);
    KT_ASSERT_EQ(
        ps_timeline_get_page(tl, &dbdir, 0x138, page, sizeof(page), &len, NULL, NULL, &err),
        KC_ENOTFOUND);
    KT_ASSERT_CONTAINS(err.message, "does not exist at LSN 0/138");
    KT_ASSERT_EQ(ps_timeline_get_page(tl, &ckpt, 0x10F, page, sizeof(page), &len, NULL, NULL, &err),
                 KC_ENOTFOUND);
    /* A dropped relation: its blocks read as zeros, its size is gone. */
    kt_drop(tl, kt_blk(16384, 0), ps_key_rel_block(1663, 5, 16385, 0, 0), 0x140);
    kt_advance(tl, 0x140);
    KT_ASSERT_EQ(
        ps_timeline_get_page(tl, &main0, 0x140, page, sizeof(page), &len, kt_redo, &log, &err), 0);
    KT_ASSERT(page[0] == 0 && len == PS_PAGE_SIZE);
    KT_ASSERT_EQ(
        ps_timeline_get_page(tl, &msize, 0x140, page, sizeof(page), &len, NULL, NULL, &err),
        KC_ENOTFOUND);
    ps_timeline_close(tl);
}

/* ---- concurrency ---- */

struct kt_reader {
    struct ps_timeline *tl;
    const struct kt_model *m;
    atomic_int *stop;
    int reads;
};

/* Read random keys at random LSNs at or below last_record_lsn and compare with the model. */
static void *kt_reader_main(void *arg)
{
    struct kt_reader *r = arg;
    uint64_t s = (uint64_t)(uintptr_t)r;
    char want[KT_EXPECT], got[KT_EXPECT];

    while (!atomic_load(r->stop) || r->reads < 50) {
        kc_lsn last = ps_timeline_last_record_lsn(r->tl);
        kc_lsn lsn = 0x4000 + kt_rng(&s) % (last - 0x4000 + 1);
        uint32_t k = (uint32_t)(kt_rng(&s) % KT_KEYS);
        struct ps_values v;
        struct kc_error err;
        struct kc_sbuf out = KC_SBUF_INIT;
        struct ps_key key = kt_model_key(k);

        ps_values_init(&v);
        if (ps_timeline_get_values(r->tl, &key, lsn, &v, &err) != 0)
            kt_fail(__FILE__, __LINE__, "get_values: %s", err.message);
        kc_sbuf_puts(&out, v.complete ? "C" : "A");
        if (v.has_base)
            kt_describe_one(&out, v.base.lsn, 'I', true, v.base.v.data, v.base.v.len);
        for (size_t i = 0; i < v.nrecords; i++)
            kt_describe_one(&out, v.records[i].lsn, kt_kind_char(v.records[i].v.kind),
                            v.records[i].v.will_init, v.records[i].v.data, v.records[i].v.len);
        snprintf(got, sizeof(got), "%s", kc_sbuf_str(&out));
        kc_sbuf_fini(&out);
        ps_values_fini(&v);
        kt_model_expect(r->m, k, lsn, UINT64_MAX, want, sizeof(want));
        if (strcmp(got, want) != 0)
            kt_fail(__FILE__, __LINE__, "reader: key %u at %jx:\n  got  %s\n  want %s", k,
                    (uintmax_t)lsn, got, want);
        r->reads++;
    }
    return NULL;
}

KT_TEST(timeline_reads_run_while_ingest_and_flush_go_on)
{
    struct kt_model m = {0};
    uint64_t s = 4711;
    kc_lsn lsn = 0x4000, ends[400];
    struct ps_timeline *tl = kt_create(0x4000, 500);
    struct kt_reader readers[2];
    pthread_t th[2];
    atomic_int stop;
    size_t i = 0;

    /* The whole model first (readers compare with it), then ingest it while they read. */
    kt_model_generate(&m, &s, &lsn, KC_ARRAY_LEN(ends), ends);
    atomic_init(&stop, 0);
    for (int t = 0; t < 2; t++) {
        readers[t] = (struct kt_reader){tl, &m, &stop, 0};
        KT_ASSERT_EQ(pthread_create(&th[t], NULL, kt_reader_main, &readers[t]), 0);
    }
    for (size_t st = 0; st < KC_ARRAY_LEN(ends); st++) {
        while (i < m.n && m.ev[i].lsn <= ends[st])
            kt_apply(tl, &m.ev[i++]);
        kt_advance(tl, ends[st]);
        if (st % 25 == 0) {
            struct kc_error err;
            KT_ASSERT_EQ(ps_timeline_flush(tl, &err), 0);
        }
    }
    kt_checkpoint(tl);
    atomic_store(&stop, 1);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    KT_ASSERT(readers[0].reads >= 50 && readers[1].reads >= 50);
    ps_timeline_close(tl);
    free(m.ev);
}

/* The path of the only layer file of dir, in buf. */
static void kt_only_layer(const char *dir, char *buf, size_t len)
{
    DIR *dh = opendir(dir);
    struct dirent *de;
    struct ps_layer_desc d;
    int n = 0;

    KT_ASSERT(dh != NULL);
    while ((de = readdir(dh)) != NULL)
        if (ps_layer_name_parse(de->d_name, &d, NULL) == 0) {
            snprintf(buf, len, "%s/%s", dir, de->d_name);
            n++;
        }
    closedir(dh);
    KT_ASSERT_EQ(n, 1);
}

KT_TEST(timeline_open_refuses_missing_or_corrupt_files)
{
    struct ps_timeline *tl = kt_create(0x100, 0), *t;
    char layer[4096], meta[4096], saved[4096];
    struct kc_error err;
    int fd;

    kt_put(tl, kt_blk(16384, 0), 0x110, 'I', true, "a");
    kt_advance(tl, 0x110);
    kt_checkpoint(tl);
    ps_timeline_close(tl);
    kt_only_layer(kt_dir(KT_ROOT), layer, sizeof(layer));
    snprintf(saved, sizeof(saved), "%s/saved", kt_tmpdir());
    snprintf(meta, sizeof(meta), "%s/%s", kt_dir(KT_ROOT), PS_TIMELINE_META_FILE);
    /* A listed layer that is missing: the data is gone, the open fails. */
    KT_ASSERT_EQ(rename(layer, saved), 0);
    KT_ASSERT_EQ(ps_timeline_open(kt_dir(KT_ROOT), NULL, NULL, &t, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "lists a layer it cannot open");
    KT_ASSERT(t == NULL);
    /* A corrupt one: the same. */
    KT_ASSERT_EQ(rename(saved, layer), 0);
    fd = open(layer, O_WRONLY);
    KT_ASSERT(fd >= 0);
    KT_ASSERT_EQ(pwrite(fd, "X", 1, 50), 1); /* in the header */
    close(fd);
    KT_ASSERT_EQ(ps_timeline_open(kt_dir(KT_ROOT), NULL, NULL, &t, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "corrupt layer file");
    /* A truncated metadata file. */
    KT_ASSERT_EQ(truncate(meta, 50), 0);
    KT_ASSERT_EQ(ps_timeline_open(kt_dir(KT_ROOT), NULL, NULL, &t, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "corrupt timeline metadata file");
    /* No timeline at all, or an existing directory for a new one. */
    KT_ASSERT_EQ(ps_timeline_open(kt_dir("nothing"), NULL, NULL, &t, &err), KC_ENOTFOUND);
    KT_ASSERT_EQ(ps_timeline_create(kt_dir(KT_ROOT), &kt_tenant, &kt_root, 0x100, KT_SYSID,
                                    KT_SEGSZ, NULL, &t, &err),
                 KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "could not create timeline directory");
    KT_ASSERT_EQ(ps_timeline_create(kt_dir("bad"), &kt_tenant, &kt_root, 0x100, KT_SYSID, 12345,
                                    NULL, &t, &err),
                 KC_EINVAL);
    KT_ASSERT(access(kt_dir("bad"), F_OK) != 0);
}
