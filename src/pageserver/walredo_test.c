/* SPDX-License-Identifier: Apache-2.0 */
/* walredo_test.c -- unit tests for walredo.c: the codec, and the pool against a fake helper. */
#include "pageserver/walredo.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "common/frame.h"
#include "common/metrics.h"
#include "common/random.h"
#include "unit.h"

/* ---- helpers ------------------------------------------------------------------ */

static uint8_t *make_record(uint32_t len, uint8_t fill)
{
    uint8_t *r = malloc(len);
    memset(r, fill, len);
    memcpy(r, &len, 4); /* xl_tot_len, as PostgreSQL writes it (little-endian here) */
    return r;
}

static struct ps_redo_request simple_request(uint32_t blkno, const uint8_t *base,
                                             struct ps_redo_record *recs, size_t n)
{
    struct ps_redo_request req = {
        .tag = {.spcnode = 1663, .dbnode = 5, .relnode = 16384, .forknum = 0, .blkno = blkno},
        .base_image = base,
        .records = recs,
        .nrecords = n,
    };
    return req;
}

/* Decode the frame at *pos of s, checking its type; returns a cursor over its payload. */
static struct kc_buf next_frame(const struct kc_sbuf *s, size_t *pos, uint16_t type)
{
    struct kc_frame f;
    struct kc_buf b;
    size_t used;

    KT_ASSERT_EQ(
        kc_frame_decode(s->data + *pos, s->len - *pos, PS_WALREDO_MAX_REQUEST, &f, &used, NULL), 0);
    KT_ASSERT_UEQ(f.type, type);
    *pos += used;
    kc_frame_payload(&f, &b);
    return b;
}

/* ---- codec -------------------------------------------------------------------- */

KT_TEST(walredo_encode_request_layout)
{
    uint8_t base[PS_REDO_PAGE_SIZE];
    uint8_t *r1 = make_record(30, 0xAA), *r2 = make_record(100, 0xBB);
    struct ps_redo_record recs[] = {{0x1000, 0x1020, r1, 30}, {0x1020, 0x1088, r2, 100}};
    struct ps_redo_request req = simple_request(7, base, recs, 2);
    struct kc_sbuf out = KC_SBUF_INIT;
    struct kc_buf b;
    size_t pos = 0;
    uint32_t u32;
    uint64_t u64;
    uint8_t u8;
    const uint8_t *ref;

    memset(base, 0x11, sizeof(base));
    req.tag.forknum = 2;
    KT_ASSERT_EQ(ps_walredo_encode_request(&out, &req, NULL), 0);

    b = next_frame(&out, &pos, PS_WALREDO_MSG_BEGIN);
    KT_ASSERT_EQ(kc_buf_remaining(&b), PS_WALREDO_TAG_SIZE);
    KT_ASSERT(kc_buf_get_u32(&b, &u32) && u32 == 1663);
    KT_ASSERT(kc_buf_get_u32(&b, &u32) && u32 == 5);
    KT_ASSERT(kc_buf_get_u32(&b, &u32) && u32 == 16384);
    KT_ASSERT(kc_buf_get_u8(&b, &u8) && u8 == 2);
    KT_ASSERT(kc_buf_get_u32(&b, &u32) && u32 == 7);

    b = next_frame(&out, &pos, PS_WALREDO_MSG_PUSH);
    KT_ASSERT_EQ(kc_buf_remaining(&b), PS_REDO_PAGE_SIZE);
    KT_ASSERT(kc_buf_get_ref(&b, &ref, PS_REDO_PAGE_SIZE));
    KT_ASSERT_MEM_EQ(ref, base, PS_REDO_PAGE_SIZE);

    for (int i = 0; i < 2; i++) {
        b = next_frame(&out, &pos, PS_WALREDO_MSG_APPLY);
        KT_ASSERT_EQ(kc_buf_remaining(&b), PS_WALREDO_APPLY_HDR + recs[i].len);
        KT_ASSERT(kc_buf_get_u64(&b, &u64) && u64 == recs[i].lsn);
        KT_ASSERT(kc_buf_get_u64(&b, &u64) && u64 == recs[i].end_lsn);
        KT_ASSERT(kc_buf_get_ref(&b, &ref, recs[i].len));
        KT_ASSERT_MEM_EQ(ref, recs[i].data, recs[i].len);
    }
    b = next_frame(&out, &pos, PS_WALREDO_MSG_GET);
    KT_ASSERT_EQ(kc_buf_remaining(&b), 0);
    KT_ASSERT_EQ(pos, out.len);

    /* Without a base image there is no PUSH. */
    kc_sbuf_reset(&out);
    req.base_image = NULL;
    pos = 0;
    KT_ASSERT_EQ(ps_walredo_encode_request(&out, &req, NULL), 0);
    next_frame(&out, &pos, PS_WALREDO_MSG_BEGIN);
    next_frame(&out, &pos, PS_WALREDO_MSG_APPLY);

    kc_sbuf_reset(&out);
    ps_walredo_encode_hello(&out, 1, 3);
    pos = 0;
    b = next_frame(&out, &pos, PS_WALREDO_MSG_HELLO);
    KT_ASSERT_EQ(kc_buf_remaining(&b), 4);
    kc_sbuf_reset(&out);
    ps_walredo_encode_ping(&out, 42);
    pos = 0;
    b = next_frame(&out, &pos, PS_WALREDO_MSG_PING);
    KT_ASSERT(kc_buf_get_u64(&b, &u64) && u64 == 42);
    kc_sbuf_fini(&out);
    free(r1);
    free(r2);
}

KT_TEST(walredo_encode_rejects_bad_requests)
{
    uint8_t rec[64] = {0};
    struct ps_redo_record good = {0x100, 0x140, rec, 64};
    struct ps_redo_record bad;
    struct ps_redo_request req = simple_request(1, NULL, &good, 1);
    struct kc_sbuf out = KC_SBUF_INIT;
    struct kc_error err;

    req.tag.forknum = 4;
    KT_ASSERT_EQ(ps_walredo_encode_request(&out, &req, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "invalid fork number 4");
    req = simple_request(0xFFFFFFFFu, NULL, &good, 1);
    KT_ASSERT_EQ(ps_walredo_encode_request(&out, &req, &err), KC_EINVAL);
    req = simple_request(1, NULL, NULL, 0);
    KT_ASSERT_EQ(ps_walredo_encode_request(&out, &req, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "neither a base image nor records");
    bad = good;
    bad.len = 10;
    req = simple_request(1, NULL, &bad, 1);
    KT_ASSERT_EQ(ps_walredo_encode_request(&out, &req, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "shorter than a record header");
    bad = good;
    bad.end_lsn = bad.lsn;
    KT_ASSERT_EQ(ps_walredo_encode_request(&out, &req, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "not after its start");
    bad = good;
    bad.len = PS_WALREDO_MAX_REQUEST; /* never read: rejected on its length */
    KT_ASSERT_EQ(ps_walredo_encode_request(&out, &req, &err), KC_ETOOBIG);
    KT_ASSERT_EQ(out.len, 0);
    kc_sbuf_fini(&out);
}

static void encode_reply(struct kc_sbuf *out, uint16_t type, const void *payload, size_t len)
{
    KT_ASSERT_EQ(kc_frame_encode(out, type, payload, len, NULL), 0);
}

static void hello_payload(uint8_t p[16], uint16_t version, uint32_t blcksz)
{
    memset(p, 0, 16);
    p[0] = (uint8_t)(version >> 8), p[1] = (uint8_t)version;
    p[4] = 0x00, p[5] = 0x02, p[6] = 0x4A, p[7] = 0x02; /* 150018 */
    p[8] = (uint8_t)(blcksz >> 24), p[9] = (uint8_t)(blcksz >> 16);
    p[10] = (uint8_t)(blcksz >> 8), p[11] = (uint8_t)blcksz;
    p[15] = 77;
}

KT_TEST(walredo_parse_valid_replies)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct ps_walredo_reply r;
    uint8_t hello[16], page[PS_REDO_PAGE_SIZE], pong[8] = {0, 0, 0, 0, 0, 0, 1, 2};
    uint8_t error[6 + 4] = {0x57, 0x04, 0, 0, 0, 3, 'b', 'o', 'o', 'm'};
    size_t used;

    hello_payload(hello, 1, 8192);
    memset(page, 0x5A, sizeof(page));
    encode_reply(&s, PS_WALREDO_REPLY_HELLO, hello, sizeof(hello));
    KT_ASSERT_EQ(ps_walredo_parse_reply(s.data, s.len, &r, &used, NULL), 0);
    KT_ASSERT_EQ(used, s.len);
    KT_ASSERT_EQ(r.version, 1);
    KT_ASSERT_EQ(r.pg_version, 150018);
    KT_ASSERT_EQ(r.blcksz, 8192);
    KT_ASSERT_EQ(r.pid, 77);

    kc_sbuf_reset(&s);
    encode_reply(&s, PS_WALREDO_REPLY_PAGE, page, sizeof(page));
    KT_ASSERT_EQ(ps_walredo_parse_reply(s.data, s.len, &r, &used, NULL), 0);
    KT_ASSERT_MEM_EQ(r.page, page, sizeof(page));

    kc_sbuf_reset(&s);
    encode_reply(&s, PS_WALREDO_REPLY_PONG, pong, sizeof(pong));
    KT_ASSERT_EQ(ps_walredo_parse_reply(s.data, s.len, &r, &used, NULL), 0);
    KT_ASSERT_UEQ(r.token, 0x102);

    kc_sbuf_reset(&s);
    encode_reply(&s, PS_WALREDO_REPLY_ERROR, error, sizeof(error));
    KT_ASSERT_EQ(ps_walredo_parse_reply(s.data, s.len, &r, &used, NULL), 0);
    KT_ASSERT_UEQ(r.err_msg_type, PS_WALREDO_MSG_APPLY);
    KT_ASSERT_EQ(r.err_record, 3);
    KT_ASSERT_EQ(r.err_text_len, 4);
    KT_ASSERT(memcmp(r.err_text, "boom", 4) == 0);

    /* An ERROR with an empty text is fine. */
    kc_sbuf_reset(&s);
    encode_reply(&s, PS_WALREDO_REPLY_ERROR, error, 6);
    KT_ASSERT_EQ(ps_walredo_parse_reply(s.data, s.len, &r, &used, NULL), 0);
    KT_ASSERT_EQ(r.err_text_len, 0);
    kc_sbuf_fini(&s);
}

KT_TEST(walredo_parse_rejects_wrong_payloads)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct ps_walredo_reply r;
    struct kc_error err;
    uint8_t buf[PS_REDO_PAGE_SIZE + 1] = {0};
    size_t used = 99;
    const struct {
        uint16_t type;
        size_t len;
    } cases[] = {
        {PS_WALREDO_REPLY_PAGE, 100}, {PS_WALREDO_REPLY_PAGE, PS_REDO_PAGE_SIZE + 1},
        {PS_WALREDO_REPLY_PAGE, 0},   {PS_WALREDO_REPLY_HELLO, 15},
        {PS_WALREDO_REPLY_HELLO, 17}, {PS_WALREDO_REPLY_PONG, 7},
        {PS_WALREDO_REPLY_ERROR, 5},  {PS_WALREDO_REPLY_ERROR, 0},
        {PS_WALREDO_MSG_APPLY, 10},   {0x1234, 0},
    };

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        kc_sbuf_reset(&s);
        encode_reply(&s, cases[i].type, buf, cases[i].len);
        KT_ASSERT_EQ(ps_walredo_parse_reply(s.data, s.len, &r, &used, &err), KC_EPROTO);
        KT_ASSERT_EQ(used, 0);
    }
    /* A reply larger than the limit is refused from its header alone. */
    kc_sbuf_reset(&s);
    kc_frame_begin(&s, PS_WALREDO_REPLY_PAGE);
    s.data[6] = 0x01; /* length 16 MiB */
    KT_ASSERT_EQ(ps_walredo_parse_reply(s.data, 10, &r, &used, &err), KC_ETOOBIG);
    kc_sbuf_fini(&s);
}

KT_TEST(walredo_parse_malformed_never_crashes)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct ps_walredo_reply r;
    uint8_t page[PS_REDO_PAGE_SIZE], err_payload[40] = {0x57, 0x04, 0, 0, 0, 1};
    uint8_t *copy, random_bytes[256];
    size_t used;
    int rc;

    for (size_t i = 0; i < sizeof(page); i++)
        page[i] = (uint8_t)(i * 7);
    memcpy(err_payload + 6, "could not read block 3 of relation", 34);
    for (int which = 0; which < 2; which++) {
        kc_sbuf_reset(&s);
        if (which == 0)
            encode_reply(&s, PS_WALREDO_REPLY_PAGE, page, sizeof(page));
        else
            encode_reply(&s, PS_WALREDO_REPLY_ERROR, err_payload, sizeof(err_payload));
        /* Every truncation asks for more bytes, into a buffer of exactly that size. */
        for (size_t n = 0; n < s.len; n++) {
            copy = malloc(n ? n : 1);
            memcpy(copy, s.data, n);
            KT_ASSERT_EQ(ps_walredo_parse_reply(copy, n, &r, &used, NULL), KC_EAGAIN);
            free(copy);
        }
        /* Every single-bit flip is caught (magic, version, flags, length, checksum). */
        copy = malloc(s.len);
        for (size_t bit = 0; bit < s.len * 8; bit += (which == 0 ? 13 : 1)) {
            memcpy(copy, s.data, s.len);
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            rc = ps_walredo_parse_reply(copy, s.len, &r, &used, NULL);
            if (rc == 0)
                kt_fail(__FILE__, __LINE__, "flip of bit %zu accepted", bit);
        }
        free(copy);
    }
    /* Random bytes, with and without a valid magic in front. */
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round % 200) + 1;
        KT_ASSERT_EQ(kc_random_bytes(random_bytes, sizeof(random_bytes), NULL), 0);
        if (round % 2) {
            random_bytes[0] = KC_FRAME_MAGIC0, random_bytes[1] = KC_FRAME_MAGIC1;
            random_bytes[2] = KC_FRAME_VERSION;
        }
        copy = malloc(n);
        memcpy(copy, random_bytes, n);
        rc = ps_walredo_parse_reply(copy, n, &r, &used, NULL);
        KT_ASSERT(rc != 0);
        free(copy);
    }
    kc_sbuf_fini(&s);
}

/* ---- a fake helper ------------------------------------------------------------- */

/*
 * What the fake does is chosen by the target block number; its counters
 * live in shared memory so the test sees what every incarnation did.
 */
enum {
    FAKE_CRASH = 1001,       /* exit(3) at GET */
    FAKE_HANG = 1002,        /* sleep at GET */
    FAKE_ERROR = 1003,       /* ERROR reply naming record 1, then exit */
    FAKE_GARBAGE = 1004,     /* bytes that are not a frame */
    FAKE_CRASH_FIRST = 1005, /* exit(3) in the first incarnation only */
    FAKE_SHORT_PAGE = 1006,  /* PAGE reply of 100 bytes */
    FAKE_WRONG_TYPE = 1007,  /* PONG instead of PAGE */
};

struct fake_state {
    atomic_int starts;   /* incarnations that answered HELLO */
    atomic_int requests; /* GETs answered with a page */
    int hello_version;   /* version the fake claims (1 normally) */
    int die_at_hello;    /* exit before answering HELLO */
};

static struct fake_state *fake_state_create(void)
{
    struct fake_state *st =
        mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    KT_ASSERT(st != MAP_FAILED);
    memset(st, 0, sizeof(*st));
    st->hello_version = 1;
    return st;
}

static bool fake_read(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

static void fake_send(uint16_t type, const void *payload, size_t len)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    if (kc_frame_encode(&s, type, payload, len, NULL) != 0 || write(1, s.data, s.len) < 0)
        _exit(9);
    kc_sbuf_fini(&s);
}

/*
 * The fake's redo: the page starts as the base image (or zeros); each
 * APPLY stores its end LSN (big-endian) at offset 0 and adds the record's
 * length to the big-endian u32 at offset 8.
 */
static int fake_serve(struct fake_state *st, uint8_t **msgp)
{
    uint8_t hdr[KC_FRAME_HEADER_SIZE], page[PS_REDO_PAGE_SIZE], *msg = NULL;
    uint32_t blkno = 0, napplied = 0;

    for (;;) {
        struct kc_frame f;
        struct kc_buf b;
        size_t used;
        uint32_t len;

        if (!fake_read(0, hdr, sizeof(hdr)))
            return 0; /* EOF: the pool is done with us */
        len = kc_load_u32(hdr + 6);
        msg = *msgp = realloc(msg, sizeof(hdr) + len);
        memcpy(msg, hdr, sizeof(hdr));
        if (!fake_read(0, msg + sizeof(hdr), len) ||
            kc_frame_decode(msg, sizeof(hdr) + len, PS_WALREDO_MAX_REQUEST, &f, &used, NULL) != 0)
            return 8;
        kc_frame_payload(&f, &b);
        switch (f.type) {
        case PS_WALREDO_MSG_HELLO: {
            uint8_t p[16];
            if (st->die_at_hello)
                return 5;
            if (st->hello_version < 0) { /* refuse, as a helper of another version would */
                static const uint8_t e[] = {0x57, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 'n', 'o'};
                fake_send(PS_WALREDO_REPLY_ERROR, e, sizeof(e));
                return 1;
            }
            hello_payload(p, (uint16_t)st->hello_version, PS_REDO_PAGE_SIZE);
            atomic_fetch_add(&st->starts, 1);
            fake_send(PS_WALREDO_REPLY_HELLO, p, sizeof(p));
            break;
        }
        case PS_WALREDO_MSG_BEGIN:
            memset(page, 0, sizeof(page));
            blkno = kc_load_u32(f.payload + 13);
            napplied = 0;
            break;
        case PS_WALREDO_MSG_PUSH: memcpy(page, f.payload, sizeof(page)); break;
        case PS_WALREDO_MSG_APPLY:
            memcpy(page, f.payload + 8, 8);
            kc_store_u32(page + 8, kc_load_u32(page + 8) + f.len - PS_WALREDO_APPLY_HDR);
            napplied++;
            break;
        case PS_WALREDO_MSG_GET:
            if (blkno == FAKE_CRASH || (blkno == FAKE_CRASH_FIRST && atomic_load(&st->starts) == 1))
                return 3;
            if (blkno == FAKE_HANG) {
                sleep(30);
                return 4;
            }
            if (blkno == FAKE_ERROR) {
                uint8_t e[6 + 4] = {0x57, 0x04, 0, 0, 0, 1, 'b', 'o', 'o', 'm'};
                fake_send(PS_WALREDO_REPLY_ERROR, e, sizeof(e));
                return 1;
            }
            if (blkno == FAKE_GARBAGE) {
                if (write(1, "HTTP/1.1 400 Bad Request\r\n\r\n", 28) < 0)
                    return 9;
                break;
            }
            if (blkno == FAKE_SHORT_PAGE) {
                fake_send(PS_WALREDO_REPLY_PAGE, page, 100);
                break;
            }
            if (blkno == FAKE_WRONG_TYPE) {
                fake_send(PS_WALREDO_REPLY_PONG, page, 8);
                break;
            }
            atomic_fetch_add(&st->requests, 1);
            fake_send(PS_WALREDO_REPLY_PAGE, page, sizeof(page));
            break;
        default: return 7;
        }
    }
}

/* The stand-in for postgres (runs in the forked child; frees what it allocated). */
static int fake_helper(void *arg)
{
    uint8_t *msg = NULL;
    int rc = fake_serve(arg, &msg);

    free(msg);
    return rc;
}

static struct ps_walredo_pool *fake_pool(struct fake_state *st, int nprocs, unsigned timeout_ms,
                                         unsigned retries)
{
    struct ps_walredo_opts opts;
    struct ps_walredo_pool *pool = NULL;
    struct kc_error err;
    char base[4200];

    ps_walredo_opts_init(&opts);
    opts.child_main = fake_helper;
    opts.child_arg = st;
    opts.timeout_ms = timeout_ms;
    opts.retries = retries;
    /* As root the helpers run as the unprivileged user: let it reach its directory. */
    KT_ASSERT_EQ(chmod(kt_tmpdir(), 0711), 0);
    snprintf(base, sizeof(base), "%s/redo", kt_tmpdir());
    if (ps_walredo_pool_create(NULL, base, nprocs, NULL, &opts, &pool, &err) != 0)
        kt_fail(__FILE__, __LINE__, "pool_create: %s", err.message);
    return pool;
}

/* Run a normal request for blkno with two records and check the fake's page. */
static int fake_apply(struct ps_walredo_pool *pool, uint32_t blkno, struct kc_error *err)
{
    uint8_t base[PS_REDO_PAGE_SIZE], page[PS_REDO_PAGE_SIZE];
    uint8_t *r1 = make_record(40, 1), *r2 = make_record(60, 2);
    struct ps_redo_record recs[] = {{0x2000, 0x2028, r1, 40}, {0x2028, 0x2068, r2, 60}};
    struct ps_redo_request req = simple_request(blkno, base, recs, 2);
    int rc;

    memset(base, 0xEE, sizeof(base));
    rc = ps_walredo_apply(pool, &req, page, err);
    if (rc == 0) {
        KT_ASSERT_UEQ(kc_load_u64(page), 0x2068);
        KT_ASSERT_EQ(kc_load_u32(page + 8), 0xEEEEEEEE + 100u);
        KT_ASSERT_EQ(page[12], 0xEE);
        KT_ASSERT_EQ(page[PS_REDO_PAGE_SIZE - 1], 0xEE);
    }
    free(r1);
    free(r2);
    return rc;
}

static double metric_value(const char *series)
{
    struct kc_sbuf out = KC_SBUF_INIT;
    const char *text, *line;
    double v = -1;

    kc_metrics_render(NULL, &out);
    text = kc_sbuf_str(&out);
    for (line = text; line != NULL && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        size_t n = strlen(series);
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            v = strtod(line + n + 1, NULL);
            break;
        }
    }
    kc_sbuf_fini(&out);
    return v;
}

/* ---- the pool against the fake -------------------------------------------------- */

KT_TEST(walredo_pool_roundtrip_reuses_helper)
{
    struct fake_state *st = fake_state_create();
    struct ps_walredo_pool *pool = fake_pool(st, 2, 5000, 1);
    struct kc_error err;
    pid_t pids[4] = {0};

    KT_ASSERT_EQ(ps_walredo_pool_pids(pool, pids, 4), 2);
    KT_ASSERT_EQ(pids[0], 0); /* lazily started */
    for (int i = 0; i < 5; i++)
        KT_ASSERT_EQ(fake_apply(pool, (uint32_t)i, &err), 0);
    KT_ASSERT_EQ(atomic_load(&st->starts), 1);
    KT_ASSERT_EQ(atomic_load(&st->requests), 5);
    ps_walredo_pool_pids(pool, pids, 4);
    KT_ASSERT(pids[0] > 0);
    KT_ASSERT_EQ(pids[1], 0);
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_requests_total"), 5);
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_records_total"), 10);
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_seconds_count"), 5);
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_helper_starts_total"), 1);

    /* destroy closes stdin; the fake exits and is reaped. */
    ps_walredo_pool_destroy(pool);
    KT_ASSERT(kill(pids[0], 0) != 0 && errno == ESRCH);
    kc_metrics_default_destroy();
}

KT_TEST(walredo_pool_retries_after_crash)
{
    struct fake_state *st = fake_state_create();
    struct ps_walredo_pool *pool = fake_pool(st, 1, 5000, 1);
    struct kc_error err;

    /* The first incarnation crashes; the retry on a fresh one succeeds. */
    KT_ASSERT_EQ(fake_apply(pool, FAKE_CRASH_FIRST, &err), 0);
    KT_ASSERT_EQ(atomic_load(&st->starts), 2);
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_restarts_total"), 1);
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_errors_total{reason=\"crash\"}"), 1);
    ps_walredo_pool_destroy(pool);
    kc_metrics_default_destroy();
}

KT_TEST(walredo_pool_crash_reports_exit_status)
{
    struct fake_state *st = fake_state_create();
    struct ps_walredo_pool *pool = fake_pool(st, 1, 5000, 0);
    struct kc_error err;

    KT_ASSERT_EQ(fake_apply(pool, FAKE_CRASH, &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "closed its output");
    KT_ASSERT_CONTAINS(err.detail, "exited with status 3");
    /* One bad request does not break the pool. */
    KT_ASSERT_EQ(fake_apply(pool, 1, &err), 0);
    KT_ASSERT_EQ(atomic_load(&st->starts), 2);
    ps_walredo_pool_destroy(pool);
}

KT_TEST(walredo_pool_times_out_a_silent_helper)
{
    struct fake_state *st = fake_state_create();
    struct ps_walredo_pool *pool = fake_pool(st, 1, 300, 0);
    struct timespec t0, t1;
    struct kc_error err;
    double secs;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    KT_ASSERT_EQ(fake_apply(pool, FAKE_HANG, &err), KC_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    KT_ASSERT(secs >= 0.25 && secs < 3.0);
    KT_ASSERT_CONTAINS(err.message, "did not answer within 300 ms");
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_errors_total{reason=\"timeout\"}"), 1);
    KT_ASSERT_EQ(fake_apply(pool, 2, &err), 0);
    ps_walredo_pool_destroy(pool);
}

KT_TEST(walredo_pool_error_reply_names_the_record)
{
    struct fake_state *st = fake_state_create();
    struct ps_walredo_pool *pool = fake_pool(st, 1, 5000, 1);
    struct kc_error err;

    KT_ASSERT_EQ(fake_apply(pool, FAKE_ERROR, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "WAL redo failed at record 1 (0/2028): boom");
    /* Tried twice (retries = 1), each on its own helper. */
    KT_ASSERT_EQ(atomic_load(&st->starts), 2);
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_errors_total{reason=\"redo\"}"), 2);
    KT_ASSERT_EQ(fake_apply(pool, 3, &err), 0);
    ps_walredo_pool_destroy(pool);
}

KT_TEST(walredo_pool_protocol_violations)
{
    struct fake_state *st = fake_state_create();
    struct ps_walredo_pool *pool = fake_pool(st, 1, 2000, 0);
    struct kc_error err;

    KT_ASSERT_EQ(fake_apply(pool, FAKE_GARBAGE, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "invalid reply from WAL-redo helper");
    KT_ASSERT_EQ(fake_apply(pool, FAKE_SHORT_PAGE, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "100 bytes of payload");
    KT_ASSERT_EQ(fake_apply(pool, FAKE_WRONG_TYPE, &err), KC_EPROTO);
    KT_ASSERT_EQ(fake_apply(pool, 4, &err), 0);
    KT_ASSERT_EQ(atomic_load(&st->starts), 4);
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_errors_total{reason=\"protocol\"}"), 3);
    ps_walredo_pool_destroy(pool);
}

KT_TEST(walredo_pool_bad_hello)
{
    struct fake_state *st = fake_state_create();
    struct ps_walredo_pool *pool = fake_pool(st, 1, 2000, 0);
    struct kc_error err;

    st->hello_version = 2;
    KT_ASSERT_EQ(fake_apply(pool, 1, &err), KC_EVERSION);
    KT_ASSERT_CONTAINS(err.message, "could not start WAL-redo helper 0");
    KT_ASSERT_CONTAINS(err.message, "protocol version 2");
    st->hello_version = -1;
    KT_ASSERT_EQ(fake_apply(pool, 1, &err), KC_EVERSION);
    KT_ASSERT_CONTAINS(err.message, "WAL-redo helper reported an error: no");
    st->hello_version = 1;
    st->die_at_hello = 1;
    KT_ASSERT_EQ(fake_apply(pool, 1, &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "could not start WAL-redo helper 0");
    KT_ASSERT_CONTAINS(err.detail, "exited with status 5");
    KT_ASSERT_CONTAINS(err.detail, "walredo.log");
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_errors_total{reason=\"spawn\"}"), 1);
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_errors_total{reason=\"redo\"}"), 1);
    st->die_at_hello = 0;
    KT_ASSERT_EQ(fake_apply(pool, 1, &err), 0);
    ps_walredo_pool_destroy(pool);
}

KT_TEST(walredo_pool_survives_killed_helper)
{
    struct fake_state *st = fake_state_create();
    struct ps_walredo_pool *pool = fake_pool(st, 1, 5000, 1);
    struct kc_error err;
    pid_t pid = 0;

    KT_ASSERT_EQ(fake_apply(pool, 1, &err), 0);
    ps_walredo_pool_pids(pool, &pid, 1);
    KT_ASSERT(pid > 0);
    KT_ASSERT_EQ(kill(pid, SIGKILL), 0);
    /* The next request finds it dead, restarts it and succeeds. */
    KT_ASSERT_EQ(fake_apply(pool, 2, &err), 0);
    KT_ASSERT_EQ(atomic_load(&st->starts), 2);
    KT_ASSERT_EQ(metric_value("kelp_pageserver_walredo_restarts_total"), 1);
    ps_walredo_pool_destroy(pool);
}

KT_TEST(walredo_pool_failpoints)
{
    struct fake_state *st = fake_state_create();
    struct ps_walredo_pool *pool = fake_pool(st, 1, 5000, 1);
    struct kc_error err;

    KT_ASSERT_EQ(kc_failpoint_set("pageserver.walredo.before-spawn", "1*return", &err), 0);
    KT_ASSERT_EQ(fake_apply(pool, 1, &err), 0); /* the retry starts it */
    KT_ASSERT_EQ(kc_failpoint_hits("pageserver.walredo.before-spawn"), 1);
    KT_ASSERT_EQ(kc_failpoint_set("pageserver.walredo.before-send", "return", &err), 0);
    KT_ASSERT_EQ(fake_apply(pool, 1, &err), KC_EFAILPOINT);
    KT_ASSERT_CONTAINS(err.message, "before-send");
    kc_failpoints_reset();
    KT_ASSERT_EQ(fake_apply(pool, 1, &err), 0);
    ps_walredo_pool_destroy(pool);
}

struct thread_arg {
    struct ps_walredo_pool *pool;
    int base;
    int ok;
};

static void *apply_thread(void *arg)
{
    struct thread_arg *t = arg;
    for (int i = 0; i < 25; i++)
        if (fake_apply(t->pool, (uint32_t)(t->base + i), NULL) == 0)
            t->ok++;
    return NULL;
}

KT_TEST(walredo_pool_concurrent_callers)
{
    struct fake_state *st = fake_state_create();
    struct ps_walredo_pool *pool = fake_pool(st, 2, 5000, 1);
    pthread_t th[4];
    struct thread_arg args[4];

    for (int i = 0; i < 4; i++)
        args[i] = (struct thread_arg){.pool = pool, .base = i * 100};
    /* Fork both helpers before any thread runs (the fake runs in a forked copy of us). */
    KT_ASSERT_EQ(ps_walredo_pool_start(pool, 2, NULL), 0);
    KT_ASSERT_EQ(atomic_load(&st->starts), 2);
    KT_ASSERT_EQ(ps_walredo_pool_start(pool, 2, NULL), 0); /* already running: no-op */
    KT_ASSERT_EQ(fake_apply(pool, 1, NULL), 0);
    for (int i = 0; i < 4; i++)
        KT_ASSERT_EQ(pthread_create(&th[i], NULL, apply_thread, &args[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        KT_ASSERT_EQ(args[i].ok, 25);
    }
    KT_ASSERT_EQ(atomic_load(&st->starts), 2);
    KT_ASSERT_EQ(atomic_load(&st->requests), 101);
    ps_walredo_pool_destroy(pool);
}

KT_TEST(walredo_pool_create_errors)
{
    struct ps_walredo_pool *pool = (void *)1;
    struct kc_error err;
    char base[4200];

    snprintf(base, sizeof(base), "%s/redo", kt_tmpdir());
    KT_ASSERT_EQ(ps_walredo_pool_create("/bin", base, 0, NULL, NULL, &pool, &err), KC_EINVAL);
    KT_ASSERT(pool == NULL);
    KT_ASSERT_EQ(ps_walredo_pool_create(NULL, base, 1, NULL, NULL, &pool, &err), KC_EINVAL);
    /* initdb runs at create: a wrong bin directory fails there, clearly. */
    KT_ASSERT_EQ(ps_walredo_pool_create("/nonexistent-kelp", base, 1, NULL, NULL, &pool, &err),
                 KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "could not execute \"/nonexistent-kelp/initdb\"");
    KT_ASSERT(pool == NULL);
}
