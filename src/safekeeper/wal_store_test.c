/* SPDX-License-Identifier: Apache-2.0 */
/* wal_store_test.c -- unit tests for wal_store.c, on generated PostgreSQL-format WAL. */
#include "safekeeper/wal_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "unit.h"

#define SEG    (1u << 20) /* the smallest segment size keeps the tests fast */
#define PAGE   SK_WAL_PAGE_SIZE
#define SYSID  7312345678901234567ull
#define START  ((kc_lsn)16 * SEG) /* segment 16, "000000010000000000000010" */
#define MAXREC 8192

/* ---- a generator of valid PostgreSQL 15 WAL ---- */

struct wg {
    kc_lsn start;          /* LSN of out.data[0] */
    kc_lsn pos;            /* next LSN */
    kc_lsn prev;           /* start of the last record */
    struct kc_sbuf out;    /* the WAL bytes [start, pos) */
    uint32_t rng;          /* payload generator */
    kc_lsn starts[MAXREC]; /* record starts */
    kc_lsn ends[MAXREC];   /* record ends */
    int n;                 /* records */
};

static void le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void le32(uint8_t *p, uint32_t v)
{
    le16(p, (uint16_t)v);
    le16(p + 2, (uint16_t)(v >> 16));
}

static void le64(uint8_t *p, uint64_t v)
{
    le32(p, (uint32_t)v);
    le32(p + 4, (uint32_t)(v >> 32));
}

/* start: a record boundary (mid-page) or a page boundary; prev: xl_prev of the first record. */
static void wg_init(struct wg *g, kc_lsn start, kc_lsn prev, uint32_t seed)
{
    memset(g, 0, sizeof(*g));
    g->start = g->pos = start;
    g->prev = prev;
    g->rng = seed;
}

static uint32_t wg_rand(struct wg *g)
{
    g->rng = g->rng * 1103515245u + 12345u;
    return g->rng >> 8;
}

static void wg_bytes(struct wg *g, const void *p, size_t n)
{
    kc_sbuf_append(&g->out, p, n);
    g->pos += n;
}

static void wg_page_header(struct wg *g, bool cont, uint32_t rem)
{
    uint8_t h[40] = {0};
    bool first = g->pos % SEG == 0;

    le16(h, 0xD110);
    le16(h + 2, (uint16_t)((first ? 0x0002 : 0) | (cont ? 0x0001 : 0)));
    le32(h + 4, 1);
    le64(h + 8, g->pos);
    le32(h + 16, rem);
    if (first) {
        le64(h + 24, SYSID);
        le32(h + 32, SEG);
        le32(h + 36, PAGE);
    }
    wg_bytes(g, h, first ? 40 : 24);
}

/* Append one record with len payload bytes; returns its start. */
static kc_lsn wg_record_full(struct wg *g, uint32_t len, uint8_t rmid, uint8_t info, kc_lsn prev)
{
    uint32_t tot = 24 + len, done = 0;
    uint8_t *rec = malloc(tot);
    kc_lsn start;

    KT_ASSERT(rec != NULL && g->n < MAXREC);
    while (g->pos % 8 != 0)
        wg_bytes(g, "", 1); /* MAXALIGN padding: zeros */
    if (g->pos % PAGE == 0)
        wg_page_header(g, false, 0);
    start = g->pos;
    memset(rec, 0, 24);
    le32(rec, tot);
    le32(rec + 4, 1000 + (uint32_t)g->n);
    le64(rec + 8, prev);
    rec[16] = info;
    rec[17] = rmid;
    for (uint32_t i = 0; i < len; i++)
        rec[24 + i] = (uint8_t)wg_rand(g);
    le32(rec + 20, kc_crc32c(kc_crc32c(0, rec + 24, len), rec, 20));
    while (done < tot) {
        uint32_t n;
        if (done > 0 && g->pos % PAGE == 0)
            wg_page_header(g, true, tot - done);
        n = PAGE - (uint32_t)(g->pos % PAGE);
        n = n < tot - done ? n : tot - done;
        wg_bytes(g, rec + done, n);
        done += n;
    }
    free(rec);
    g->prev = start;
    g->starts[g->n] = start;
    g->ends[g->n++] = g->pos;
    return start;
}

static kc_lsn wg_record(struct wg *g, uint32_t len)
{
    return wg_record_full(g, len, 10, 0, g->prev);
}

/* Records until pos reaches at least until, sizes mostly small, some spanning pages. */
static void wg_fill(struct wg *g, kc_lsn until)
{
    while (g->pos < until) {
        uint32_t r = wg_rand(g) % 100;
        wg_record(g, r < 80 ? 10 + wg_rand(g) % 300 : r < 98 ? wg_rand(g) % 9000 : 30000);
    }
}

/* An XLOG_SWITCH record and the empty pages that pad its segment. */
static void wg_switch(struct wg *g)
{
    kc_lsn seg_end;

    wg_record_full(g, 0, 0, 0x40, g->prev);
    seg_end = (g->pos + SEG - 1) / SEG * SEG;
    static const uint8_t zeros[PAGE];

    while (g->pos < seg_end) {
        if (g->pos % PAGE == 0)
            wg_page_header(g, false, 0);
        wg_bytes(g, zeros, PAGE - g->pos % PAGE);
    }
}

static const uint8_t *wg_at(const struct wg *g, kc_lsn lsn)
{
    return g->out.data + (lsn - g->start);
}

/* End of the last record that ends at or below lsn (the start of g when none does). */
static kc_lsn wg_end_below(const struct wg *g, kc_lsn lsn)
{
    kc_lsn best = g->start;

    for (int i = 0; i < g->n; i++)
        if (g->ends[i] <= lsn)
            best = g->ends[i];
    return best;
}

/* Index of the record holding lsn (start <= lsn < end). */
static int wg_find(const struct wg *g, kc_lsn lsn)
{
    for (int i = 0; i < g->n; i++)
        if (g->starts[i] <= lsn && lsn < g->ends[i])
            return i;
    kt_fail(__FILE__, __LINE__, "no record holds 0x%llx", (unsigned long long)lsn);
}

/* ---- helpers ---- */

static const char *wt_dir(const char *name)
{
    static char path[PATH_MAX];

    kc_log_set_level(KC_LOG_WARN); /* each open logs where the WAL ends */
    snprintf(path, sizeof(path), "%s/%s", kt_tmpdir(), name);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        kt_fail(__FILE__, __LINE__, "mkdir %s: %s", path, strerror(errno));
    return path;
}

static struct sk_wal_options wt_opts(kc_lsn start, kc_lsn durable)
{
    struct sk_wal_options o = {SEG, SYSID, start, durable, 2};
    return o;
}

static struct sk_wal *wt_open(const char *dir, kc_lsn start, kc_lsn durable)
{
    struct sk_wal_options o = wt_opts(start, durable);
    struct sk_wal *w = NULL;
    struct kc_error err;

    kc_error_clear(&err);
    if (sk_wal_open(dir, &o, &w, &err) != 0)
        kt_fail(__FILE__, __LINE__, "open: %s (%s)", err.message, err.detail);
    return w;
}

static int wt_open_rc(const char *dir, kc_lsn start, kc_lsn durable, struct kc_error *err)
{
    struct sk_wal_options o = wt_opts(start, durable);
    struct sk_wal *w = NULL;
    int rc = sk_wal_open(dir, &o, &w, err);

    sk_wal_close(w);
    return rc;
}

/* Write g's bytes [from, to) in chunks of random sizes (some spanning segments). */
static void wt_write(struct sk_wal *w, const struct wg *g, kc_lsn from, kc_lsn to, unsigned seed)
{
    struct kc_error err;

    srand(seed);
    while (from < to) {
        size_t n = rand() % 10 == 0 ? (size_t)(rand() % (3 * SEG)) : (size_t)(rand() % 70000);
        n = n == 0 ? 1 : n;
        n = n < to - from ? n : (size_t)(to - from);
        if (sk_wal_write(w, from, wg_at(g, from), n, &err) != 0)
            kt_fail(__FILE__, __LINE__, "write: %s", err.message);
        from += n;
        KT_ASSERT_UEQ(sk_wal_write_lsn(w), from);
    }
}

/* Read [from, to) back in pieces and compare with g. */
static void wt_check(struct sk_wal *w, const struct wg *g, kc_lsn from, kc_lsn to)
{
    uint8_t *buf = malloc(70000);
    struct kc_error err;

    KT_ASSERT(buf != NULL);
    srand((unsigned)from);
    while (from < to) {
        size_t n = 1 + (size_t)(rand() % 70000);
        n = n < to - from ? n : (size_t)(to - from);
        if (sk_wal_read(w, from, buf, n, &err) != 0)
            kt_fail(__FILE__, __LINE__, "read: %s", err.message);
        if (memcmp(buf, wg_at(g, from), n) != 0)
            kt_fail(__FILE__, __LINE__, "WAL differs in [0x%llx, +%zu)", (unsigned long long)from,
                    n);
        from += n;
    }
    free(buf);
}

static void wt_flush(struct sk_wal *w)
{
    struct kc_error err;

    if (sk_wal_flush(w, &err) != 0)
        kt_fail(__FILE__, __LINE__, "flush: %s", err.message);
}

/* A store in dir with g's WAL (about 3.4 MiB from START) written and flushed. */
static struct sk_wal *wt_filled(const char *dir, struct wg *g, uint32_t seed)
{
    struct sk_wal *w = wt_open(dir, START, 0);

    wg_init(g, START, START - 0x100, seed);
    wg_fill(g, START + 3 * SEG + 400000);
    wt_write(w, g, START, g->pos, seed);
    wt_flush(w);
    return w;
}

static bool wt_file(const char *dir, uint64_t segno, const char *suffix, off_t *size)
{
    char name[KC_WAL_FILE_NAME_LEN], path[PATH_MAX];
    struct stat st;

    kc_wal_file_name(name, 1, segno, SEG);
    snprintf(path, sizeof(path), "%s/%s%s", dir, name, suffix);
    if (stat(path, &st) != 0)
        return false;
    if (size != NULL)
        *size = st.st_size;
    return true;
}

static void wt_path(char *out, const char *dir, uint64_t segno, const char *suffix)
{
    char name[KC_WAL_FILE_NAME_LEN];

    kc_wal_file_name(name, 1, segno, SEG);
    snprintf(out, PATH_MAX, "%s/%s%s", dir, name, suffix);
}

/* Patch len bytes at lsn of the segment file (plain or partial) in place. */
static void wt_poke(const char *dir, kc_lsn lsn, const void *data, size_t len)
{
    char path[PATH_MAX];
    int fd;

    wt_path(path, dir, lsn / SEG, "");
    fd = open(path, O_WRONLY);
    if (fd < 0) {
        wt_path(path, dir, lsn / SEG, SK_WAL_PARTIAL_SUFFIX);
        fd = open(path, O_WRONLY);
    }
    KT_ASSERT(fd >= 0);
    KT_ASSERT_EQ(pwrite(fd, data, len, (off_t)(lsn % SEG)), (ssize_t)len);
    close(fd);
}

/* Run fn(arg) in a forked child that must end by a failpoint's exit(42). */
static void wt_crash(void (*fn)(void *), void *arg)
{
    pid_t pid;
    int status;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    KT_ASSERT(pid >= 0);
    if (pid == 0) {
        kc_log_set_level(KC_LOG_ERROR);
        fn(arg);
        _exit(93); /* the failpoint did not fire */
    }
    KT_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    KT_ASSERT(WIFEXITED(status));
    KT_ASSERT_EQ(WEXITSTATUS(status), 42);
}

/* ---- tests ---- */

KT_TEST(wal_write_read_across_segments)
{
    const char *dir = wt_dir("wal");
    struct wg *g = malloc(sizeof(*g));
    struct sk_wal *w = wt_open(dir, START, 0);
    off_t size;

    KT_ASSERT_UEQ(sk_wal_write_lsn(w), START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), START);
    KT_ASSERT_UEQ(sk_wal_begin_lsn(w), START);
    wg_init(g, START, START - 0x100, 1);
    wg_fill(g, START + 3 * SEG + 400000);
    /* One write spanning three segment boundaries, then pieces. */
    KT_ASSERT_EQ(sk_wal_write(w, START, wg_at(g, START), 2 * SEG + SEG / 2, NULL), 0);
    wt_write(w, g, START + 2 * SEG + SEG / 2, g->pos, 1);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), START);
    wt_flush(w);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
    wt_check(w, g, START, g->pos);
    for (uint64_t s = 16; s <= 18; s++) /* full segments have plain names */
        KT_ASSERT(wt_file(dir, s, "", &size) && size == SEG);
    KT_ASSERT(wt_file(dir, 19, SK_WAL_PARTIAL_SUFFIX, &size) && size == SEG); /* preallocated */
    KT_ASSERT(!wt_file(dir, 19, "", NULL) && !wt_file(dir, 20, SK_WAL_PARTIAL_SUFFIX, NULL));
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}

KT_TEST(wal_reopen_recovers_the_end)
{
    const char *dir = wt_dir("wal");
    struct wg *g = malloc(sizeof(*g));
    struct sk_wal *w = wt_filled(dir, g, 2);
    kc_lsn durables[] = {0,
                         START,
                         START + 1,
                         START + SEG + 12345,
                         g->starts[g->n / 2],
                         g->ends[g->n / 3],
                         START + 3 * SEG,
                         g->ends[g->n - 2],
                         g->pos};

    sk_wal_close(w);
    for (size_t i = 0; i < KC_ARRAY_LEN(durables); i++) {
        w = wt_open(dir, START, durables[i]);
        if (sk_wal_flush_lsn(w) != g->pos)
            kt_fail(__FILE__, __LINE__, "durable 0x%llx: end 0x%llx, want 0x%llx",
                    (unsigned long long)durables[i], (unsigned long long)sk_wal_flush_lsn(w),
                    (unsigned long long)g->pos);
        KT_ASSERT_UEQ(sk_wal_write_lsn(w), g->pos);
        KT_ASSERT_UEQ(sk_wal_begin_lsn(w), START);
        wt_check(w, g, START, g->pos);
        sk_wal_close(w);
    }
    /* And writing goes on where it ended. */
    w = wt_open(dir, START, g->ends[3]);
    wg_fill(g, g->pos + 50000);
    wt_write(w, g, sk_wal_write_lsn(w), g->pos, 3);
    wt_flush(w);
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
    wt_check(w, g, START, g->pos);
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}

KT_TEST(wal_gaps_and_overlaps_are_refused)
{
    const char *dir = wt_dir("wal");
    struct sk_wal *w = wt_open(dir, START, 0);
    uint8_t b[16] = {0};
    struct kc_error err;

    KT_ASSERT_EQ(sk_wal_write(w, START + 8, b, 8, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "a gap");
    KT_ASSERT_CONTAINS(err.message, "0/1000000");
    KT_ASSERT_EQ(sk_wal_write(w, START, b, 16, NULL), 0);
    KT_ASSERT_EQ(sk_wal_write(w, START + 8, b, 8, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "an overlap");
    KT_ASSERT_CONTAINS(err.hint, "Truncate");
    KT_ASSERT_EQ(sk_wal_write(w, START + 17, b, 8, &err), KC_EINVAL);
    KT_ASSERT_UEQ(sk_wal_write_lsn(w), START + 16);
    KT_ASSERT_EQ(sk_wal_write(w, START + 16, b, 0, NULL), 0); /* empty write: fine */
    KT_ASSERT_EQ(sk_wal_write(w, START + 16, b, 16, NULL), 0);
    KT_ASSERT_EQ(sk_wal_read(w, START, b, 1, &err), KC_EINVAL); /* not flushed yet */
    KT_ASSERT_CONTAINS(err.message, "beyond the flushed end");
    sk_wal_close(w);
}

KT_TEST(wal_truncate_then_continue)
{
    const char *dir = wt_dir("wal");
    struct wg *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    struct sk_wal *w = wt_filled(dir, a, 4);
    int i = wg_find(a, START + SEG + 300000); /* D: a record start in segment 17 */
    kc_lsn d = a->starts[i];
    uint8_t byte;
    struct kc_error err;

    KT_ASSERT_EQ(sk_wal_truncate(w, d, &err), 0);
    KT_ASSERT_UEQ(sk_wal_write_lsn(w), d);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), d);
    KT_ASSERT(wt_file(dir, 17, SK_WAL_PARTIAL_SUFFIX, NULL) && !wt_file(dir, 17, "", NULL));
    KT_ASSERT(wt_file(dir, 16, "", NULL));
    KT_ASSERT(!wt_file(dir, 18, "", NULL) && !wt_file(dir, 19, SK_WAL_PARTIAL_SUFFIX, NULL));
    KT_ASSERT_EQ(sk_wal_read(w, d, &byte, 1, NULL), KC_EINVAL);
    wt_check(w, a, START, d);
    /* A different continuation, shorter than what was cut, chained to the kept WAL. */
    wg_init(b, d, a->starts[i - 1], 5);
    wg_fill(b, d + 70000);
    wt_write(w, b, d, b->pos, 5);
    wt_flush(w);
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), b->pos); /* the old WAL after it does not come back */
    wt_check(w, a, START, d);
    wt_check(w, b, d, b->pos);
    sk_wal_close(w);
    kc_sbuf_fini(&a->out);
    kc_sbuf_fini(&b->out);
    free(a);
    free(b);
}

/*
 * The cut WAL never comes back, even when the new WAL has the same record
 * boundaries (here: the same records again), so that the old records after
 * it would chain on by their prev-links.
 */
KT_TEST(wal_truncated_wal_does_not_come_back)
{
    const char *dir = wt_dir("wal");
    struct wg *a = malloc(sizeof(*a));
    struct sk_wal *w = wt_filled(dir, a, 25);
    int i = wg_find(a, START + 3 * SEG + 1000);
    kc_lsn d = a->starts[i], again = a->ends[i + 3];

    KT_ASSERT_EQ(sk_wal_truncate(w, d, NULL), 0);
    wt_write(w, a, d, again, 25);
    wt_flush(w);
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), again);
    sk_wal_close(w);
    /* Likewise when the cut is in an earlier, full segment. */
    w = wt_open(dir, START, START);
    i = wg_find(a, START + SEG + 3000);
    d = a->starts[i];
    again = a->ends[i + 2];
    KT_ASSERT_EQ(sk_wal_truncate(w, d, NULL), 0);
    wt_write(w, a, d, again, 26);
    wt_flush(w);
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), again);
    wt_check(w, a, START, again);
    sk_wal_close(w);
    kc_sbuf_fini(&a->out);
    free(a);
}

/* Random damage to the files: open answers with an end or KC_ECORRUPT, never a crash. */
KT_TEST(wal_recovery_survives_random_damage)
{
    struct wg *g = malloc(sizeof(*g));

    srand(4242);
    wg_init(g, START, START - 0x100, 27);
    wg_fill(g, START + SEG / 2);
    for (int iter = 0; iter < 16; iter++) {
        char name[32];
        const char *dir;
        struct sk_wal *w;
        kc_lsn at = START + (kc_lsn)rand() % (g->pos - START), durable;
        uint8_t junk[300];
        size_t n = iter % 3 == 0 ? 1 : iter % 3 == 1 ? 24 : sizeof(junk);
        struct kc_error err;
        struct sk_wal_options o;
        int rc;

        snprintf(name, sizeof(name), "wal%d", iter);
        dir = wt_dir(name);
        w = wt_open(dir, START, 0);
        wt_write(w, g, START, g->pos, (unsigned)iter);
        wt_flush(w);
        sk_wal_close(w);
        for (size_t k = 0; k < n; k++)
            junk[k] = (uint8_t)rand();
        if (iter % 4 == 3)
            at = SK_WAL_PAGE_SIZE * (at / SK_WAL_PAGE_SIZE); /* hit a page header */
        wt_poke(dir, at, junk, n);
        durable = iter % 2 == 0 ? START : g->ends[rand() % g->n];
        o = wt_opts(START, durable);
        rc = sk_wal_open(dir, &o, &w, &err);
        KT_ASSERT(rc == 0 || rc == KC_ECORRUPT);
        if (rc == 0) {
            KT_ASSERT(sk_wal_flush_lsn(w) >= durable && sk_wal_flush_lsn(w) <= g->pos);
            /* Everything before the damage is intact, up to the end found. */
            wt_check(w, g, START, at < sk_wal_flush_lsn(w) ? at : sk_wal_flush_lsn(w));
            sk_wal_close(w);
        }
    }
    /* Files of nothing but garbage. */
    {
        const char *dir = wt_dir("garbage");
        struct sk_wal *w;
        uint8_t *junk = malloc(SEG);
        char path[PATH_MAX];
        FILE *f;

        for (uint32_t k = 0; k < SEG; k++)
            junk[k] = (uint8_t)rand();
        wt_path(path, dir, 16, SK_WAL_PARTIAL_SUFFIX);
        f = fopen(path, "wb");
        KT_ASSERT(f != NULL && fwrite(junk, 1, SEG, f) == SEG && fclose(f) == 0);
        w = wt_open(dir, START, START);
        KT_ASSERT_UEQ(sk_wal_flush_lsn(w), START);
        sk_wal_close(w);
        KT_ASSERT_EQ(wt_open_rc(dir, START, START + 5000, NULL), KC_ECORRUPT);
        free(junk);
    }
    kc_sbuf_fini(&g->out);
    free(g);
}

KT_TEST(wal_truncate_is_durable_without_rewrite)
{
    const char *dir = wt_dir("wal");
    struct wg *a = malloc(sizeof(*a));
    struct sk_wal *w = wt_filled(dir, a, 6);
    kc_lsn cuts[] = {a->starts[wg_find(a, START + 2 * SEG + 5000)], START + SEG,
                     a->starts[wg_find(a, START + SEG / 2)]}; /* each below the last */
    struct kc_error err;

    for (size_t c = 0; c < KC_ARRAY_LEN(cuts); c++) {
        kc_lsn d = cuts[c];

        if (sk_wal_truncate(w, d, &err) != 0)
            kt_fail(__FILE__, __LINE__, "cut %zu: %s (%s)", c, err.message, err.detail);
        sk_wal_close(w);
        w = wt_open(dir, START, START);
        /* The end is that of the last complete record at or below the cut, or the cut
         * itself when it is the end of a full segment (durable by its plain name). */
        KT_ASSERT_UEQ(sk_wal_flush_lsn(w), d % SEG == 0 ? d : wg_end_below(a, d));
        wt_check(w, a, START, sk_wal_flush_lsn(w));
    }
    KT_ASSERT_EQ(sk_wal_truncate(w, sk_wal_write_lsn(w) + 1, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "cannot truncate");
    KT_ASSERT_EQ(sk_wal_truncate(w, START - 1, &err), KC_EINVAL);
    KT_ASSERT_EQ(sk_wal_truncate(w, sk_wal_write_lsn(w), &err), 0); /* no-op */
    sk_wal_close(w);
    kc_sbuf_fini(&a->out);
    free(a);
}

KT_TEST(wal_truncate_mid_record_drops_that_record_at_reopen)
{
    const char *dir = wt_dir("wal");
    struct wg *a = malloc(sizeof(*a));
    struct sk_wal *w = wt_filled(dir, a, 7);
    int i = wg_find(a, START + SEG + 777);
    kc_lsn d = a->starts[i] + 30;

    KT_ASSERT(a->ends[i] > d);
    KT_ASSERT_EQ(sk_wal_truncate(w, d, NULL), 0);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), d);
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), a->ends[i - 1]);
    sk_wal_close(w);
    w = wt_open(dir, START, d); /* unless the cut was known durable */
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), d);
    sk_wal_close(w);
    kc_sbuf_fini(&a->out);
    free(a);
}

KT_TEST(wal_remove_recycle_and_reuse)
{
    const char *dir = wt_dir("wal");
    struct wg *g = malloc(sizeof(*g));
    struct sk_wal *w = wt_filled(dir, g, 8);
    kc_lsn horizon = START + 2 * SEG + 100, end1;
    uint8_t byte;
    struct kc_error err;

    KT_ASSERT_EQ(sk_wal_remove_before(w, sk_wal_flush_lsn(w) + 1, &err), KC_EINVAL);
    KT_ASSERT_EQ(sk_wal_remove_before(w, START + SEG - 1, NULL), 0); /* nothing entirely below */
    KT_ASSERT_UEQ(sk_wal_begin_lsn(w), START);
    KT_ASSERT_EQ(sk_wal_remove_before(w, horizon, NULL), 0);
    KT_ASSERT_UEQ(sk_wal_begin_lsn(w), START + 2 * SEG);
    KT_ASSERT_EQ(sk_wal_recycled_count(w), 2);
    KT_ASSERT(wt_file(dir, 16, SK_WAL_RECYCLE_SUFFIX, NULL));
    KT_ASSERT(wt_file(dir, 17, SK_WAL_RECYCLE_SUFFIX, NULL));
    KT_ASSERT(!wt_file(dir, 16, "", NULL) && !wt_file(dir, 17, "", NULL));
    KT_ASSERT_EQ(sk_wal_read(w, START + 2 * SEG - 1, &byte, 1, &err), KC_ENOTFOUND);
    KT_ASSERT_CONTAINS(err.message, "has been removed");
    KT_ASSERT_CONTAINS(err.detail, "0/1200000");
    wt_check(w, g, START + 2 * SEG, g->pos);
    /* New segments reuse the recycled files, whose old WAL must not be mistaken for new. */
    end1 = g->pos;
    wg_fill(g, START + 5 * SEG + 1000);
    wt_write(w, g, end1, g->pos, 8);
    wt_flush(w);
    KT_ASSERT_EQ(sk_wal_recycled_count(w), 0);
    KT_ASSERT(!wt_file(dir, 16, SK_WAL_RECYCLE_SUFFIX, NULL));
    KT_ASSERT(wt_file(dir, 20, "", NULL) && wt_file(dir, 21, SK_WAL_PARTIAL_SUFFIX, NULL));
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_begin_lsn(w), START + 2 * SEG);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
    wt_check(w, g, START + 2 * SEG, g->pos);
    /* With no room for recycling, removed segments are deleted. */
    KT_ASSERT_EQ(sk_wal_remove_before(w, START + 5 * SEG, NULL), 0);
    KT_ASSERT_EQ(sk_wal_recycled_count(w), 2);
    KT_ASSERT(!wt_file(dir, 18, "", NULL) && !wt_file(dir, 20, "", NULL));
    KT_ASSERT(!wt_file(dir, 20, SK_WAL_RECYCLE_SUFFIX, NULL));
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}

KT_TEST(wal_remove_everything_at_a_segment_boundary)
{
    const char *dir = wt_dir("wal");
    struct wg *g = malloc(sizeof(*g));
    struct sk_wal *w = wt_open(dir, START, 0);
    kc_lsn b;

    wg_init(g, START, START - 0x100, 9);
    wg_fill(g, START + 500000);
    wg_switch(g); /* the WAL now ends exactly at a segment boundary */
    b = g->pos;
    KT_ASSERT_UEQ(b, START + SEG);
    wt_write(w, g, START, b, 9);
    wt_flush(w);
    KT_ASSERT_EQ(sk_wal_remove_before(w, b, NULL), 0);
    KT_ASSERT_UEQ(sk_wal_begin_lsn(w), b);
    KT_ASSERT(!wt_file(dir, 16, "", NULL));
    sk_wal_close(w);
    w = wt_open(dir, START, b);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), b);
    wg_fill(g, b + 40000);
    wt_write(w, g, b, g->pos, 10);
    wt_flush(w);
    sk_wal_close(w);
    w = wt_open(dir, START, b);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
    wt_check(w, g, b, g->pos);
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}

KT_TEST(wal_switch_record_and_padding)
{
    const char *dir = wt_dir("wal");
    struct wg *g = malloc(sizeof(*g));
    struct sk_wal *w = wt_open(dir, START, 0);
    kc_lsn sw;

    wg_init(g, START, START - 0x100, 11);
    wg_fill(g, START + 300000);
    wg_switch(g);
    sw = g->starts[g->n - 1];
    wg_fill(g, g->pos + 200000);
    wt_write(w, g, START, g->pos, 11);
    wt_flush(w);
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
    sk_wal_close(w);
    /* Padding that never arrived (zeros where page headers belong) ends the WAL there. */
    w = wt_open(dir, START, START);
    KT_ASSERT_EQ(sk_wal_truncate(w, START + SEG - 3 * PAGE, NULL), 0);
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), START + SEG - 3 * PAGE);
    KT_ASSERT(sk_wal_flush_lsn(w) > sw);
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}

KT_TEST(wal_start_in_the_middle_of_a_page)
{
    const char *dir = wt_dir("wal");
    struct wg *g = malloc(sizeof(*g));
    kc_lsn start = START + 5 * PAGE + 0x740;
    struct sk_wal *w = wt_open(dir, start, 0);
    uint8_t zeros[64] = {0}, got[64];
    int fd;
    char path[PATH_MAX];

    KT_ASSERT_UEQ(sk_wal_begin_lsn(w), start);
    wg_init(g, start, start - 0x58, 12);
    wg_fill(g, start + SEG + 9999);
    wt_write(w, g, start, g->pos, 12);
    wt_flush(w);
    sk_wal_close(w);
    for (int k = 0; k < 3; k++) {
        kc_lsn durable = k == 0 ? 0 : k == 1 ? start + 100 : g->ends[g->n / 2];
        w = wt_open(dir, start, durable);
        KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
        KT_ASSERT_UEQ(sk_wal_begin_lsn(w), start);
        wt_check(w, g, start, g->pos);
        KT_ASSERT_EQ(sk_wal_read(w, start - 1, got, 1, NULL), KC_ENOTFOUND);
        sk_wal_close(w);
    }
    wt_path(path, dir, 16, "");
    fd = open(path, O_RDONLY);
    KT_ASSERT(fd >= 0);
    KT_ASSERT_EQ(pread(fd, got, sizeof(got), (off_t)(start % SEG - sizeof(got))), sizeof(got));
    KT_ASSERT_MEM_EQ(got, zeros, sizeof(got)); /* nothing before the start */
    close(fd);
    kc_sbuf_fini(&g->out);
    free(g);
}

KT_TEST(wal_incomplete_last_record_is_dropped)
{
    const char *dir = wt_dir("wal");
    struct wg *g = malloc(sizeof(*g));
    struct sk_wal *w = wt_open(dir, START, 0);
    kc_lsn complete;

    wg_init(g, START, START - 0x100, 13);
    wg_fill(g, START + SEG / 2);
    complete = g->pos;
    wg_record(g, 20000); /* spans pages */
    wt_write(w, g, START, g->pos - 3000, 13);
    wt_flush(w);
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), complete);
    /* The tail arrives again and completes it. */
    wt_write(w, g, complete, g->pos, 14);
    wt_flush(w);
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
    wt_check(w, g, START, g->pos);
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}

/* A full segment with its plain name was durable before the rename: its end is kept
 * even when a record continues past it unfinished. */
KT_TEST(wal_full_segment_end_is_durable)
{
    const char *dir = wt_dir("wal");
    struct wg *g = malloc(sizeof(*g));
    struct sk_wal *w = wt_open(dir, START, 0);

    kc_lsn end;

    wg_init(g, START, START - 0x100, 23);
    do
        wg_record(g, 100);
    while (g->pos < START + SEG - 5000);
    wg_record(g, 20000); /* crosses into the next segment */
    wt_write(w, g, START, g->pos - 3000, 23);
    wt_flush(w);
    KT_ASSERT(wt_file(dir, 16, "", NULL));
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    end = sk_wal_flush_lsn(w);
    KT_ASSERT_UEQ(end, START + SEG);
    wt_write(w, g, end, g->pos, 24);
    wt_flush(w);
    sk_wal_close(w);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
    wt_check(w, g, START, g->pos);
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}

KT_TEST(wal_invalid_records_end_the_wal)
{
    const char *dir = wt_dir("wal");
    struct wg *g = malloc(sizeof(*g));
    struct sk_wal *w = wt_filled(dir, g, 15);
    /* In the last segment: the full ones below it are durable by their names. */
    int i = wg_find(g, START + 3 * SEG + 200000), j = wg_find(g, START + 3 * SEG + 50000);
    kc_lsn bad_page = START + 3 * SEG + 3 * PAGE; /* in the last, partial, segment */
    uint8_t flip, rec[24], zero2[2] = {0, 0};
    struct kc_error err;

    sk_wal_close(w);
    /* WAL below the durable LSN must be intact: a bad page header there is an error. */
    wt_poke(dir, bad_page, zero2, 2);
    KT_ASSERT_EQ(wt_open_rc(dir, START, bad_page + 100, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "invalid WAL page at 0/1306000");
    KT_ASSERT_CONTAINS(err.detail, "durable");
    wt_poke(dir, bad_page, wg_at(g, bad_page), 2);
    /* A flipped byte in a record: the WAL ends before that record. */
    flip = (uint8_t)(wg_at(g, g->ends[i] - 1)[0] ^ 0x20);
    wt_poke(dir, g->ends[i] - 1, &flip, 1);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->ends[i - 1]);
    sk_wal_close(w);
    /* A record with a valid CRC but a wrong prev-link: likewise. */
    while (g->starts[j] / PAGE != (g->ends[j] - 1) / PAGE) /* one that fits in its page */
        j++;
    memcpy(rec, wg_at(g, g->starts[j]), 24);
    le64(rec + 8, g->starts[j - 2]);
    le32(rec + 20,
         kc_crc32c(kc_crc32c(0, wg_at(g, g->starts[j] + 24), g->ends[j] - g->starts[j] - 24), rec,
                   20));
    wt_poke(dir, g->starts[j], rec, 24);
    w = wt_open(dir, START, START);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->ends[j - 1]);
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}

KT_TEST(wal_open_rejects_bad_layouts)
{
    const char *dir = wt_dir("wal");
    struct wg *g = malloc(sizeof(*g));
    struct sk_wal *w = wt_filled(dir, g, 16);
    char a[PATH_MAX], b[PATH_MAX];
    struct sk_wal_options o = wt_opts(START, 0);
    struct kc_error err;

    sk_wal_close(w);
    /* Missing in the middle. */
    wt_path(a, dir, 17, "");
    wt_path(b, dir, 17, ".moved");
    KT_ASSERT_EQ(rename(a, b), 0);
    KT_ASSERT_EQ(wt_open_rc(dir, START, 0, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "000000010000000000000011");
    KT_ASSERT_CONTAINS(err.message, "is missing");
    KT_ASSERT_EQ(rename(b, a), 0);
    /* Both names for one segment. */
    wt_path(b, dir, 17, SK_WAL_PARTIAL_SUFFIX);
    KT_ASSERT_EQ(link(a, b), 0);
    KT_ASSERT_EQ(wt_open_rc(dir, START, 0, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "both");
    KT_ASSERT_EQ(unlink(b), 0);
    /* A complete segment after a partial one. */
    wt_path(a, dir, 19, SK_WAL_PARTIAL_SUFFIX);
    wt_path(b, dir, 19, "");
    KT_ASSERT_EQ(rename(a, b), 0);
    wt_path(a, dir, 18, "");
    wt_path(b, dir, 18, SK_WAL_PARTIAL_SUFFIX);
    KT_ASSERT_EQ(rename(a, b), 0);
    KT_ASSERT_EQ(wt_open_rc(dir, START, 0, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "complete after a partial");
    KT_ASSERT_EQ(rename(b, a), 0);
    wt_path(a, dir, 19, SK_WAL_PARTIAL_SUFFIX);
    wt_path(b, dir, 19, "");
    KT_ASSERT_EQ(rename(b, a), 0);
    /* A wrong size. */
    KT_ASSERT_EQ(truncate(a, SEG / 2), 0);
    KT_ASSERT_EQ(wt_open_rc(dir, START, 0, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "000000010000000000000013.partial");
    KT_ASSERT_CONTAINS(err.message, "524288 bytes");
    KT_ASSERT(err.hint[0] != '\0');
    KT_ASSERT_EQ(truncate(a, SEG), 0);
    /* A segment before the start. */
    wt_path(a, dir, 15, "");
    KT_ASSERT_EQ(close(open(a, O_CREAT | O_WRONLY, 0600)), 0);
    KT_ASSERT_EQ(truncate(a, SEG), 0);
    KT_ASSERT_EQ(wt_open_rc(dir, START, 0, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "before the start");
    KT_ASSERT_EQ(unlink(a), 0);
    /* A durable LSN beyond the files. */
    KT_ASSERT_EQ(wt_open_rc(dir, START, START + 6 * SEG + 5, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "is missing");
    /* Bad options, missing directory. */
    o.seg_size = 3u << 20;
    KT_ASSERT_EQ(sk_wal_open(dir, &o, &w, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "segment size");
    o = wt_opts(START, 0);
    snprintf(a, sizeof(a), "%s/nope", dir);
    KT_ASSERT_EQ(sk_wal_open(a, &o, &w, &err), KC_ENOTFOUND);
    KT_ASSERT_CONTAINS(err.message, a);
    /* After all that, the store opens as it was. */
    w = wt_open(dir, START, 0);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}

KT_TEST(wal_open_ignores_and_cleans_other_files)
{
    const char *dir = wt_dir("wal");
    struct wg *g = malloc(sizeof(*g));
    struct sk_wal *w = wt_filled(dir, g, 17);
    static const char *const others[] = {
        "safekeeper.control",       "README",
        "00000001000000000000001",  "000000020000000000000010",
        "00000001000000000000001G", "000000010000000000000013.partial.old"};
    char path[PATH_MAX];

    sk_wal_close(w);
    for (size_t i = 0; i < KC_ARRAY_LEN(others); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, others[i]);
        KT_ASSERT_EQ(close(open(path, O_CREAT | O_WRONLY, 0600)), 0);
    }
    snprintf(path, sizeof(path), "%s/%s", dir, SK_WAL_PREALLOC_NAME);
    KT_ASSERT_EQ(close(open(path, O_CREAT | O_WRONLY, 0600)), 0);
    w = wt_open(dir, START, 0);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
    KT_ASSERT(access(path, F_OK) != 0); /* the leftover preallocation is gone */
    for (size_t i = 0; i < KC_ARRAY_LEN(others); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, others[i]);
        KT_ASSERT(access(path, F_OK) == 0); /* the rest is untouched */
    }
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}

/* Data for the crash children. */
struct wt_crash_arg {
    const char *dir;
    struct wg *g;
    const char *failpoint; /* NULL: just exit after writing */
    kc_lsn cut;            /* for truncation children */
};

static void wt_child_write(void *p)
{
    struct wt_crash_arg *c = p;
    struct sk_wal_options o = wt_opts(START, 0);
    struct sk_wal *w;

    if (sk_wal_open(c->dir, &o, &w, NULL) != 0)
        _exit(90);
    if (c->failpoint != NULL && kc_failpoint_set(c->failpoint, "exit(42)", NULL) != 0)
        _exit(91);
    wt_write(w, c->g, START, c->g->pos, 18);
    if (c->failpoint == NULL)
        _exit(42); /* crash between write and flush */
    if (sk_wal_flush(w, NULL) != 0)
        _exit(94);
}

KT_TEST(wal_crash_between_write_and_flush)
{
    static const char *const fps[] = {NULL, "safekeeper.wal.before-fsync",
                                      "safekeeper.wal.before-segment-rename",
                                      "safekeeper.wal.before-segment-create"};
    struct wg *g = malloc(sizeof(*g));

    wg_init(g, START, START - 0x100, 18);
    wg_fill(g, START + 3 * SEG + 400000);
    for (size_t i = 0; i < KC_ARRAY_LEN(fps); i++) {
        char name[32];
        struct wt_crash_arg c = {NULL, g, fps[i], 0};
        struct sk_wal *w;

        snprintf(name, sizeof(name), "wal%zu", i);
        c.dir = wt_dir(name);
        wt_crash(wt_child_write, &c);
        w = wt_open(c.dir, START, START);
        if (i < 3) { /* all written: the page cache kept it, and open made it durable */
            KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
            KT_ASSERT(wt_file(c.dir, 18, "", NULL)); /* full segments renamed by open */
        } else { /* the crash came when the first segment was about to appear */
            KT_ASSERT_UEQ(sk_wal_flush_lsn(w), START);
        }
        wt_check(w, g, START, sk_wal_flush_lsn(w));
        sk_wal_close(w);
    }
    kc_sbuf_fini(&g->out);
    free(g);
}

static void wt_child_truncate(void *p)
{
    struct wt_crash_arg *c = p;
    struct sk_wal_options o = wt_opts(START, START);
    struct sk_wal *w;

    if (sk_wal_open(c->dir, &o, &w, NULL) != 0)
        _exit(90);
    if (kc_failpoint_set(c->failpoint, "exit(42)", NULL) != 0)
        _exit(91);
    if (sk_wal_truncate(w, c->cut, NULL) != 0)
        _exit(94);
}

/* A crash at any step of a truncation leaves a prefix of the old WAL at least as long as the cut.
 */
KT_TEST(wal_crash_during_truncate)
{
    static const char *const fps[] = {
        "safekeeper.wal.before-truncate-unlink", "safekeeper.wal.before-truncate-rename",
        "safekeeper.wal.before-truncate-zero", "safekeeper.wal.before-fsync"};

    for (size_t i = 0; i < KC_ARRAY_LEN(fps); i++) {
        char name[32];
        struct wg *g = malloc(sizeof(*g));
        struct wt_crash_arg c = {NULL, g, fps[i], 0};
        struct sk_wal *w;

        snprintf(name, sizeof(name), "wal%zu", i);
        c.dir = wt_dir(name);
        w = wt_filled(c.dir, g, 19);
        sk_wal_close(w);
        c.cut = g->starts[wg_find(g, START + SEG + 54321)];
        wt_crash(wt_child_truncate, &c);
        w = wt_open(c.dir, START, START);
        KT_ASSERT(sk_wal_flush_lsn(w) >= wg_end_below(g, c.cut));
        KT_ASSERT(sk_wal_flush_lsn(w) <= g->pos);
        wt_check(w, g, START, sk_wal_flush_lsn(w));
        sk_wal_close(w);
        kc_sbuf_fini(&g->out);
        free(g);
    }
}

KT_TEST(wal_failed_fsync_makes_the_store_unusable)
{
    const char *dir = wt_dir("wal");
    struct sk_wal *w = wt_open(dir, START, 0);
    struct wg *g = malloc(sizeof(*g));
    struct kc_error err;
    uint8_t byte;

    wg_init(g, START, START - 0x100, 20);
    wg_fill(g, START + 100000);
    wt_write(w, g, START, START + 50000, 20);
    wt_flush(w);
    wt_write(w, g, START + 50000, g->pos, 21);
    kc_log_set_level(KC_LOG_ERROR);
    KT_ASSERT_EQ(kc_failpoint_set("safekeeper.wal.before-fsync", "return(ENOSPC)", NULL), 0);
    KT_ASSERT_EQ(sk_wal_flush(w, &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "No space left on device");
    kc_failpoints_reset();
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), START + 50000);
    KT_ASSERT_EQ(sk_wal_flush(w, &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "unusable");
    KT_ASSERT_CONTAINS(err.hint, "Restart");
    KT_ASSERT_EQ(sk_wal_write(w, g->pos, "x", 1, NULL), KC_EIO);
    KT_ASSERT_EQ(sk_wal_truncate(w, START, NULL), KC_EIO);
    KT_ASSERT_EQ(sk_wal_read(w, START, &byte, 1, NULL), 0); /* durable WAL stays readable */
    sk_wal_close(w);
    w = wt_open(dir, START, START); /* a restart recovers from the files */
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos);
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}

KT_TEST(wal_injected_errors_leave_a_usable_store)
{
    const char *dir = wt_dir("wal");
    struct sk_wal *w = wt_open(dir, START, 0);
    struct wg *g = malloc(sizeof(*g));
    struct kc_error err;

    wg_init(g, START, START - 0x100, 22);
    wg_fill(g, START + SEG + 1000);
    kc_log_set_level(KC_LOG_ERROR);
    KT_ASSERT_EQ(kc_failpoint_set("safekeeper.wal.before-segment-create", "1*return", NULL), 0);
    KT_ASSERT_EQ(sk_wal_write(w, START, wg_at(g, START), 100, &err), KC_EFAILPOINT);
    KT_ASSERT_UEQ(sk_wal_write_lsn(w), START);
    wt_write(w, g, START, g->pos, 22);
    KT_ASSERT_EQ(kc_failpoint_set("safekeeper.wal.before-segment-rename", "1*return", NULL), 0);
    KT_ASSERT_EQ(sk_wal_flush(w, &err), KC_EFAILPOINT);
    KT_ASSERT_UEQ(sk_wal_flush_lsn(w), g->pos); /* durable; only the name lags */
    KT_ASSERT(wt_file(dir, 16, SK_WAL_PARTIAL_SUFFIX, NULL));
    wt_flush(w);
    KT_ASSERT(wt_file(dir, 16, "", NULL));
    KT_ASSERT_EQ(kc_failpoint_set("safekeeper.wal.before-remove", "1*return", NULL), 0);
    KT_ASSERT_EQ(sk_wal_remove_before(w, START + SEG, &err), KC_EFAILPOINT);
    KT_ASSERT_UEQ(sk_wal_begin_lsn(w), START);
    KT_ASSERT_EQ(sk_wal_remove_before(w, START + SEG, &err), 0);
    KT_ASSERT_UEQ(sk_wal_begin_lsn(w), START + SEG);
    kc_failpoints_reset();
    sk_wal_close(w);
    kc_sbuf_fini(&g->out);
    free(g);
}
