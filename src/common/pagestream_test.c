/* SPDX-License-Identifier: Apache-2.0 */
/* pagestream_test.c -- unit tests for pagestream.c: round trips, layouts, malformed input, fuzzing.
 */
#include "common/pagestream.h"

#include <stdlib.h>

#include "unit.h"

/* Deterministic PRNG (splitmix64) so failures reproduce. */
static uint64_t kt_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint8_t kt_page_a[KC_PS_BLCKSZ];
static uint8_t kt_slru[3 * KC_PS_BLCKSZ];

static struct kc_id kt_id(uint8_t seed)
{
    struct kc_id id;
    for (int i = 0; i < KC_ID_LEN; i++)
        id.b[i] = (uint8_t)(seed + i * 7 + 1);
    return id;
}

static struct kc_ps_hello kt_hello(void)
{
    struct kc_ps_hello h;
    memset(&h, 0, sizeof(h));
    h.min_version = 1;
    h.max_version = 1;
    h.tenant = kt_id(1);
    h.timeline = kt_id(2);
    h.term = 7;
    strcpy(h.name, "compute-1 (test)");
    return h;
}

static struct kc_ps_request kt_req(uint16_t type)
{
    struct kc_ps_request q;
    memset(&q, 0, sizeof(q));
    q.type = type;
    q.id = 42;
    q.request_lsn = KC_PS_LSN_LATEST;
    q.not_modified_since = 0x16B3740;
    switch (type) {
    case KC_PS_MSG_EXISTS:
    case KC_PS_MSG_NBLOCKS:
    case KC_PS_MSG_GETPAGE:
        q.rel = (struct kc_ps_reltag){1663, 5, 16384, 2};
        q.blkno = type == KC_PS_MSG_GETPAGE ? 123456 : 0;
        break;
    case KC_PS_MSG_DBSIZE:
        q.spc = 1663;
        q.db = 5;
        break;
    default:
        q.slru_kind = KC_PS_SLRU_MULTIXACT_MEMBERS;
        q.segno = 0x14078;
        break;
    }
    return q;
}

static struct kc_ps_response kt_resp(uint16_t type)
{
    struct kc_ps_response r;
    memset(&r, 0, sizeof(r));
    r.type = type;
    r.id = 99;
    r.lsn = 0x100000028ULL;
    switch (type) {
    case KC_PS_MSG_EXISTS_RESP: r.exists = true; break;
    case KC_PS_MSG_NBLOCKS_RESP: r.nblocks = 0xFFFFFFFFu; break;
    case KC_PS_MSG_GETPAGE_RESP: r.data = kt_page_a; break;
    case KC_PS_MSG_DBSIZE_RESP: r.db_size = INT64_MAX; break;
    case KC_PS_MSG_SLRU_RESP:
        r.nblocks = 3;
        r.data = kt_slru;
        break;
    default:
        r.lsn = 0;
        memcpy(r.sqlstate, "KP003", 6);
        strcpy(r.error.message, "timed out waiting for WAL up to 0/16B3740");
        strcpy(r.error.detail, "The pageserver had ingested WAL up to 0/1000000.");
        strcpy(r.error.hint, "Check the safekeepers.");
        break;
    }
    return r;
}

static void kt_fill_pages(void)
{
    for (size_t i = 0; i < sizeof(kt_page_a); i++)
        kt_page_a[i] = (uint8_t)(i * 31 + 5);
    for (size_t i = 0; i < sizeof(kt_slru); i++)
        kt_slru[i] = (uint8_t)(i * 17 + 3);
}

/* Decode the single frame in s (which must be whole and valid). */
static struct kc_frame kt_frame(const struct kc_sbuf *s)
{
    struct kc_frame f;
    size_t consumed = 0;
    struct kc_error e;
    int rc = kc_frame_decode(s->data, s->len, KC_FRAME_MAX_DEFAULT, &f, &consumed, &e);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "frame decode: %s", e.message);
    KT_ASSERT_UEQ(consumed, s->len);
    return f;
}

/*
 * Decode f with the decoder its type calls for; on success re-encode into
 * out. Returns the decoder's result.
 */
static int kt_decode_reencode(const struct kc_frame *f, struct kc_sbuf *out, struct kc_error *e)
{
    int rc;

    if (f->type == KC_PS_MSG_HELLO) {
        struct kc_ps_hello h;
        rc = kc_ps_hello_decode(f, &h, e);
        if (rc == 0)
            KT_ASSERT_EQ(kc_ps_hello_encode(out, &h, e), 0);
    } else if (f->type == KC_PS_MSG_HELLO_OK) {
        struct kc_ps_hello_ok ok;
        rc = kc_ps_hello_ok_decode(f, &ok, e);
        if (rc == 0)
            KT_ASSERT_EQ(kc_ps_hello_ok_encode(out, &ok, e), 0);
    } else if (kc_ps_is_request(f->type)) {
        struct kc_ps_request q;
        rc = kc_ps_request_decode(f, &q, e);
        if (rc == 0)
            KT_ASSERT_EQ(kc_ps_request_encode(out, &q, e), 0);
    } else {
        struct kc_ps_response r;
        rc = kc_ps_response_decode(f, &r, e);
        if (rc == 0)
            KT_ASSERT_EQ(kc_ps_response_encode(out, &r, e), 0);
    }
    if (rc != 0) {
        KT_ASSERT_EQ(rc, KC_EPROTO);
        KT_ASSERT(e->message[0] != '\0');
    }
    return rc;
}

/* One encoded sample of every message kind; returns how many were added. */
static size_t kt_samples(struct kc_sbuf *out, size_t max)
{
    static const uint16_t req[] = {KC_PS_MSG_EXISTS, KC_PS_MSG_NBLOCKS, KC_PS_MSG_GETPAGE,
                                   KC_PS_MSG_DBSIZE, KC_PS_MSG_SLRU};
    static const uint16_t resp[] = {KC_PS_MSG_EXISTS_RESP,  KC_PS_MSG_NBLOCKS_RESP,
                                    KC_PS_MSG_GETPAGE_RESP, KC_PS_MSG_DBSIZE_RESP,
                                    KC_PS_MSG_SLRU_RESP,    KC_PS_MSG_ERROR};
    struct kc_ps_hello h = kt_hello();
    struct kc_ps_hello_ok ok = {1, KC_FRAME_MAX_DEFAULT};
    static const uint8_t token[] = "tok\0en";
    size_t n = 0;

    kt_fill_pages();
    KT_ASSERT(max >= 14);
    KT_ASSERT_EQ(kc_ps_hello_encode(&out[n++], &h, NULL), 0);
    h.token = token;
    h.token_len = sizeof(token);
    h.flags = KC_PS_HELLO_READ_ONLY;
    h.term = 0;
    KT_ASSERT_EQ(kc_ps_hello_encode(&out[n++], &h, NULL), 0);
    KT_ASSERT_EQ(kc_ps_hello_ok_encode(&out[n++], &ok, NULL), 0);
    for (size_t i = 0; i < KC_ARRAY_LEN(req); i++) {
        struct kc_ps_request q = kt_req(req[i]);
        KT_ASSERT_EQ(kc_ps_request_encode(&out[n++], &q, NULL), 0);
    }
    for (size_t i = 0; i < KC_ARRAY_LEN(resp); i++) {
        struct kc_ps_response r = kt_resp(resp[i]);
        KT_ASSERT_EQ(kc_ps_response_encode(&out[n++], &r, NULL), 0);
    }
    return n;
}

static void kt_free_samples(struct kc_sbuf *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kc_sbuf_fini(&s[i]);
}

KT_TEST(pagestream_hello_roundtrip)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_ps_hello h = kt_hello(), d;
    static const uint8_t token[] = {1, 2, 0, 4};
    struct kc_frame f;

    h.token = token;
    h.token_len = sizeof(token);
    h.min_version = 1;
    h.max_version = 9;
    KT_ASSERT_EQ(kc_ps_hello_encode(&s, &h, NULL), 0);
    f = kt_frame(&s);
    KT_ASSERT_UEQ(f.type, KC_PS_MSG_HELLO);
    KT_ASSERT_UEQ(f.len, 51 + strlen(h.name) + sizeof(token));
    KT_ASSERT_EQ(kc_ps_hello_decode(&f, &d, NULL), 0);
    KT_ASSERT_EQ(d.min_version, 1);
    KT_ASSERT_EQ(d.max_version, 9);
    KT_ASSERT_EQ(d.flags, 0);
    KT_ASSERT(kc_id_equal(&d.tenant, &h.tenant));
    KT_ASSERT(kc_id_equal(&d.timeline, &h.timeline));
    KT_ASSERT_UEQ(d.term, 7);
    KT_ASSERT_STR_EQ(d.name, "compute-1 (test)");
    KT_ASSERT_EQ(d.token_len, sizeof(token));
    KT_ASSERT_MEM_EQ(d.token, token, sizeof(token));
    kc_sbuf_fini(&s);
}

KT_TEST(pagestream_hello_ok_roundtrip)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_ps_hello_ok ok = {1, 65536}, d;
    struct kc_frame f;

    KT_ASSERT_EQ(kc_ps_hello_ok_encode(&s, &ok, NULL), 0);
    f = kt_frame(&s);
    KT_ASSERT_UEQ(f.len, 6);
    KT_ASSERT_EQ(kc_ps_hello_ok_decode(&f, &d, NULL), 0);
    KT_ASSERT_EQ(d.version, 1);
    KT_ASSERT_UEQ(d.max_payload, 65536);
    kc_sbuf_fini(&s);
}

KT_TEST(pagestream_request_roundtrip_every_type)
{
    for (uint16_t t = KC_PS_MSG_EXISTS; t <= KC_PS_MSG_SLRU; t++) {
        struct kc_sbuf s = KC_SBUF_INIT;
        struct kc_ps_request q = kt_req(t), d;
        struct kc_frame f;

        q.request_lsn = 0x1234567890ULL + t;
        KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, NULL), 0);
        f = kt_frame(&s);
        KT_ASSERT_UEQ(f.type, t);
        KT_ASSERT_EQ(kc_ps_request_decode(&f, &d, NULL), 0);
        KT_ASSERT_UEQ(d.type, t);
        KT_ASSERT_UEQ(d.id, 42);
        KT_ASSERT_UEQ(d.request_lsn, q.request_lsn);
        KT_ASSERT_UEQ(d.not_modified_since, 0x16B3740);
        KT_ASSERT_UEQ(d.rel.spc, q.rel.spc);
        KT_ASSERT_UEQ(d.rel.db, q.rel.db);
        KT_ASSERT_UEQ(d.rel.rel, q.rel.rel);
        KT_ASSERT_UEQ(d.rel.fork, q.rel.fork);
        KT_ASSERT_UEQ(d.blkno, q.blkno);
        KT_ASSERT_UEQ(d.spc, q.spc);
        KT_ASSERT_UEQ(d.db, q.db);
        KT_ASSERT_UEQ(d.slru_kind, q.slru_kind);
        KT_ASSERT_UEQ(d.segno, q.segno);
        kc_sbuf_fini(&s);
    }
}

KT_TEST(pagestream_response_roundtrip_every_type)
{
    static const uint16_t types[] = {KC_PS_MSG_EXISTS_RESP,  KC_PS_MSG_NBLOCKS_RESP,
                                     KC_PS_MSG_GETPAGE_RESP, KC_PS_MSG_DBSIZE_RESP,
                                     KC_PS_MSG_SLRU_RESP,    KC_PS_MSG_ERROR};
    kt_fill_pages();
    for (size_t i = 0; i < KC_ARRAY_LEN(types); i++) {
        struct kc_sbuf s = KC_SBUF_INIT;
        struct kc_ps_response r = kt_resp(types[i]), d;
        struct kc_frame f;

        KT_ASSERT_EQ(kc_ps_response_encode(&s, &r, NULL), 0);
        f = kt_frame(&s);
        KT_ASSERT_EQ(kc_ps_response_decode(&f, &d, NULL), 0);
        KT_ASSERT_UEQ(d.type, r.type);
        KT_ASSERT_UEQ(d.id, 99);
        KT_ASSERT_UEQ(d.lsn, r.lsn);
        KT_ASSERT_EQ(d.exists, r.exists);
        KT_ASSERT_UEQ(d.nblocks, r.nblocks);
        KT_ASSERT_EQ(d.db_size, r.db_size);
        if (r.type == KC_PS_MSG_GETPAGE_RESP)
            KT_ASSERT_MEM_EQ(d.data, kt_page_a, KC_PS_BLCKSZ);
        if (r.type == KC_PS_MSG_SLRU_RESP) {
            KT_ASSERT_MEM_EQ(d.data, kt_slru, sizeof(kt_slru));
            KT_ASSERT(d.data >= f.payload && d.data < f.payload + f.len); /* no copy */
        }
        if (r.type == KC_PS_MSG_ERROR) {
            KT_ASSERT_STR_EQ(d.sqlstate, "KP003");
            KT_ASSERT_STR_EQ(d.error.message, r.error.message);
            KT_ASSERT_STR_EQ(d.error.detail, r.error.detail);
            KT_ASSERT_STR_EQ(d.error.hint, r.error.hint);
        }
        kc_sbuf_fini(&s);
    }
}

/* The documented byte layout of GETPAGE (docs/protocol-pageservice.md). */
KT_TEST(pagestream_getpage_layout)
{
    static const uint8_t want[] = {
        0x50, 0x12,                                     /* frame type */
        0,    0,    0,    0,    0,    0,    0,    42,   /* id */
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, /* request_lsn: latest */
        0,    0,    0,    0,    0x01, 0x6B, 0x37, 0x40, /* not_modified_since */
        0,    0,    0x06, 0x7F,                         /* spc 1663 */
        0,    0,    0,    5,                            /* db */
        0,    0,    0x40, 0,                            /* rel 16384 */
        2,                                              /* fork */
        0,    0x01, 0xE2, 0x40,                         /* blkno 123456 */
    };
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_ps_request q = kt_req(KC_PS_MSG_GETPAGE);

    KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, NULL), 0);
    KT_ASSERT_UEQ(s.len, KC_FRAME_HEADER_SIZE + 41);
    KT_ASSERT_MEM_EQ(s.data + 4, want, 2);
    KT_ASSERT_UEQ(kc_load_u32(s.data + 6), 41);
    KT_ASSERT_MEM_EQ(s.data + KC_FRAME_HEADER_SIZE, want + 2, 41);
    kc_sbuf_fini(&s);
}

KT_TEST(pagestream_encoders_refuse_invalid_values)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_error e;
    struct kc_ps_request q;
    struct kc_ps_hello h;
    struct kc_ps_response r;
    struct kc_ps_hello_ok ok = {0, 65536};

    q = kt_req(KC_PS_MSG_GETPAGE), q.rel.fork = 4;
    KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, &e), KC_EINVAL);
    KT_ASSERT_CONTAINS(e.message, "unknown fork number 4");
    q = kt_req(KC_PS_MSG_GETPAGE), q.blkno = 0xFFFFFFFFu;
    KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, &e), KC_EINVAL);
    q = kt_req(KC_PS_MSG_EXISTS), q.rel.rel = 0;
    KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, &e), KC_EINVAL);
    q = kt_req(KC_PS_MSG_NBLOCKS), q.id = 0;
    KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, &e), KC_EINVAL);
    q = kt_req(KC_PS_MSG_DBSIZE), q.db = 0;
    KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, &e), KC_EINVAL);
    q = kt_req(KC_PS_MSG_SLRU), q.slru_kind = 3;
    KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, &e), KC_EINVAL);
    KT_ASSERT_CONTAINS(e.message, "unknown SLRU kind 3");
    q = kt_req(KC_PS_MSG_SLRU), q.slru_kind = KC_PS_SLRU_CLOG, q.segno = 0x1000;
    KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, &e), KC_EINVAL);
    q = kt_req(KC_PS_MSG_SLRU), q.type = KC_PS_MSG_HELLO;
    KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, &e), KC_EINVAL);

    h = kt_hello(), h.name[3] = '\n';
    KT_ASSERT_EQ(kc_ps_hello_encode(&s, &h, &e), KC_EINVAL);
    KT_ASSERT_CONTAINS(e.message, "non-printable");
    h = kt_hello(), h.flags = KC_PS_HELLO_READ_ONLY;
    KT_ASSERT_EQ(kc_ps_hello_encode(&s, &h, &e), KC_EINVAL); /* read-only with a term */
    h = kt_hello(), h.flags = 0x80;
    KT_ASSERT_EQ(kc_ps_hello_encode(&s, &h, &e), KC_EINVAL);
    h = kt_hello(), h.min_version = 2, h.max_version = 1;
    KT_ASSERT_EQ(kc_ps_hello_encode(&s, &h, &e), KC_EINVAL);
    h = kt_hello(), h.tenant = KC_ID_ZERO;
    KT_ASSERT_EQ(kc_ps_hello_encode(&s, &h, &e), KC_EINVAL);
    h = kt_hello(), h.token_len = KC_PS_TOKEN_MAX + 1, h.token = kt_page_a;
    KT_ASSERT_EQ(kc_ps_hello_encode(&s, &h, &e), KC_EINVAL);
    KT_ASSERT_EQ(kc_ps_hello_ok_encode(&s, &ok, &e), KC_EINVAL);

    r = kt_resp(KC_PS_MSG_SLRU_RESP), r.nblocks = 33;
    KT_ASSERT_EQ(kc_ps_response_encode(&s, &r, &e), KC_EINVAL);
    r = kt_resp(KC_PS_MSG_DBSIZE_RESP), r.db_size = -1;
    KT_ASSERT_EQ(kc_ps_response_encode(&s, &r, &e), KC_EINVAL);
    r = kt_resp(KC_PS_MSG_GETPAGE_RESP), r.data = NULL;
    KT_ASSERT_EQ(kc_ps_response_encode(&s, &r, &e), KC_EINVAL);
    r = kt_resp(KC_PS_MSG_NBLOCKS_RESP), r.lsn = 0;
    KT_ASSERT_EQ(kc_ps_response_encode(&s, &r, &e), KC_EINVAL);
    r = kt_resp(KC_PS_MSG_ERROR), memcpy(r.sqlstate, "kp003", 6);
    KT_ASSERT_EQ(kc_ps_response_encode(&s, &r, &e), KC_EINVAL);
    r = kt_resp(KC_PS_MSG_ERROR), r.error.message[0] = '\0';
    KT_ASSERT_EQ(kc_ps_response_encode(&s, &r, &e), KC_EINVAL);
    r = kt_resp(KC_PS_MSG_HELLO_OK);
    KT_ASSERT_EQ(kc_ps_response_encode(&s, &r, &e), KC_EINVAL);
    KT_ASSERT_UEQ(s.len, 0); /* nothing was appended by any refused message */
    kc_sbuf_fini(&s);
}

/* Frame type and payload by hand, with a valid checksum. */
static struct kc_frame kt_raw(struct kc_sbuf *s, uint16_t type, const void *payload, size_t len)
{
    kc_sbuf_reset(s);
    KT_ASSERT_EQ(kc_frame_encode(s, type, payload, len, NULL), 0);
    return kt_frame(s);
}

KT_TEST(pagestream_decoders_reject_malformed_payloads)
{
    struct kc_sbuf s = KC_SBUF_INIT, enc = KC_SBUF_INIT;
    struct kc_error e;
    struct kc_ps_request q = kt_req(KC_PS_MSG_GETPAGE), dq;
    struct kc_ps_response dr;
    struct kc_ps_hello dh;
    struct kc_frame f;
    uint8_t buf[64 + KC_PS_BLCKSZ];

    /* Wrong length for the type: one byte more and one less. */
    KT_ASSERT_EQ(kc_ps_request_encode(&enc, &q, NULL), 0);
    memset(buf, 0, sizeof(buf));
    memcpy(buf, enc.data + KC_FRAME_HEADER_SIZE, 41);
    f = kt_raw(&s, KC_PS_MSG_GETPAGE, buf, 42);
    KT_ASSERT_EQ(kc_ps_request_decode(&f, &dq, &e), KC_EPROTO);
    KT_ASSERT_CONTAINS(e.message, "payload is 42 bytes, expected 41");
    f = kt_raw(&s, KC_PS_MSG_GETPAGE, buf, 40);
    KT_ASSERT_EQ(kc_ps_request_decode(&f, &dq, &e), KC_EPROTO);
    /* The same bytes under another request type have the wrong length. */
    f = kt_raw(&s, KC_PS_MSG_EXISTS, buf, 41);
    KT_ASSERT_EQ(kc_ps_request_decode(&f, &dq, &e), KC_EPROTO);
    /* Unknown type, and a response type given to the request decoder. */
    f = kt_raw(&s, 0x5015, buf, 41);
    KT_ASSERT_EQ(kc_ps_request_decode(&f, &dq, &e), KC_EPROTO);
    KT_ASSERT_CONTAINS(e.message, "0x5015");
    f = kt_raw(&s, KC_PS_MSG_GETPAGE_RESP, buf, 41);
    KT_ASSERT_EQ(kc_ps_request_decode(&f, &dq, &e), KC_EPROTO);
    f = kt_raw(&s, 0x0102, buf, 41);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), KC_EPROTO);
    KT_ASSERT_EQ(kc_ps_hello_decode(&f, &dh, &e), KC_EPROTO);
    /* Unknown fork number (byte 36 of the payload). */
    buf[36] = 9;
    f = kt_raw(&s, KC_PS_MSG_GETPAGE, buf, 41);
    KT_ASSERT_EQ(kc_ps_request_decode(&f, &dq, &e), KC_EPROTO);
    KT_ASSERT_CONTAINS(e.message, "unknown fork number 9");

    /* EXISTS_RESP with a boolean of 2, DBSIZE_RESP negative. */
    memset(buf, 0, sizeof(buf));
    buf[7] = 1;  /* id 1 */
    buf[15] = 8; /* lsn 8 */
    buf[16] = 2;
    f = kt_raw(&s, KC_PS_MSG_EXISTS_RESP, buf, 17);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), KC_EPROTO);
    KT_ASSERT_CONTAINS(e.message, "boolean is 2");
    buf[16] = 1;
    f = kt_raw(&s, KC_PS_MSG_EXISTS_RESP, buf, 17);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), 0);
    buf[16] = 0x80;
    f = kt_raw(&s, KC_PS_MSG_DBSIZE_RESP, buf, 24);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), KC_EPROTO);
    KT_ASSERT_CONTAINS(e.message, "negative");
    /* SLRU_RESP: 33 blocks, and a count that disagrees with the data. */
    memset(buf + 16, 0, 4);
    buf[19] = 33;
    f = kt_raw(&s, KC_PS_MSG_SLRU_RESP, buf, 20);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), KC_EPROTO);
    buf[19] = 1;
    f = kt_raw(&s, KC_PS_MSG_SLRU_RESP, buf, 20 + KC_PS_BLCKSZ - 1);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), KC_EPROTO);
    f = kt_raw(&s, KC_PS_MSG_SLRU_RESP, buf, 20 + KC_PS_BLCKSZ);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), 0);
    /* An answer with id 0, or read LSN 0. */
    buf[7] = 0;
    f = kt_raw(&s, KC_PS_MSG_NBLOCKS_RESP, buf, 20);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), KC_EPROTO);
    buf[7] = 1, buf[15] = 0;
    f = kt_raw(&s, KC_PS_MSG_NBLOCKS_RESP, buf, 20);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), KC_EPROTO);

    kc_sbuf_fini(&s);
    kc_sbuf_fini(&enc);
}

KT_TEST(pagestream_decoders_reject_malformed_texts)
{
    struct kc_sbuf s = KC_SBUF_INIT, enc = KC_SBUF_INIT;
    struct kc_error e;
    struct kc_ps_response dr;
    struct kc_ps_hello dh;
    struct kc_frame f;
    uint8_t buf[256];

    /* ERROR: a NUL in the message, a lower-case code, an empty message, a long hint. */
    {
        static const uint8_t nul[] = {0,   0,   0, 0, 0,   0, 0,   3, 'X', 'X', '0',
                                      '0', '0', 0, 3, 'a', 0, 'b', 0, 0,   0,   0};
        static const uint8_t lower[] = {0,   0,   0,   0, 0, 0,   0, 3, 'x', 'X',
                                        '0', '0', '0', 0, 1, 'a', 0, 0, 0,   0};
        static const uint8_t empty[] = {0,   0,   0,   0, 0, 0, 0, 3, 'X', 'X',
                                        '0', '0', '0', 0, 0, 0, 0, 0, 0};
        uint8_t longhint[13 + 2 + 1 + 2 + 2 + 300];

        f = kt_raw(&s, KC_PS_MSG_ERROR, nul, sizeof(nul));
        KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), KC_EPROTO);
        KT_ASSERT_CONTAINS(e.message, "NUL");
        f = kt_raw(&s, KC_PS_MSG_ERROR, lower, sizeof(lower));
        KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), KC_EPROTO);
        f = kt_raw(&s, KC_PS_MSG_ERROR, empty, sizeof(empty));
        KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), KC_EPROTO);
        memcpy(longhint, lower, 13);
        longhint[8] = 'X';
        longhint[13] = 0, longhint[14] = 1, longhint[15] = 'm';
        longhint[16] = 0, longhint[17] = 0;
        longhint[18] = 300 >> 8, longhint[19] = 300 & 0xFF;
        memset(longhint + 20, 'h', 300);
        f = kt_raw(&s, KC_PS_MSG_ERROR, longhint, sizeof(longhint));
        KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), KC_EPROTO);
        KT_ASSERT_CONTAINS(e.message, "hint is 300 bytes");
        longhint[18] = 0, longhint[19] = 255;
        f = kt_raw(&s, KC_PS_MSG_ERROR, longhint, sizeof(longhint) - 45);
        KT_ASSERT_EQ(kc_ps_response_decode(&f, &dr, &e), 0);
        KT_ASSERT_UEQ(strlen(dr.error.hint), 255);
    }

    /* HELLO: name longer than 63 bytes, trailing bytes after the token. */
    {
        struct kc_ps_hello h = kt_hello();
        kc_sbuf_reset(&enc);
        KT_ASSERT_EQ(kc_ps_hello_encode(&enc, &h, NULL), 0);
        memcpy(buf, enc.data + KC_FRAME_HEADER_SIZE, enc.len - KC_FRAME_HEADER_SIZE);
        buf[48] = 64;
        f = kt_raw(&s, KC_PS_MSG_HELLO, buf, enc.len - KC_FRAME_HEADER_SIZE);
        KT_ASSERT_EQ(kc_ps_hello_decode(&f, &dh, &e), KC_EPROTO);
        KT_ASSERT_CONTAINS(e.message, "client name is 64 bytes");
        buf[48] = (uint8_t)strlen(h.name);
        f = kt_raw(&s, KC_PS_MSG_HELLO, buf, enc.len - KC_FRAME_HEADER_SIZE + 1);
        KT_ASSERT_EQ(kc_ps_hello_decode(&f, &dh, &e), KC_EPROTO);
    }
    kc_sbuf_fini(&s);
    kc_sbuf_fini(&enc);
}

/* Every prefix of every sample: the frame layer waits; re-framed payload prefixes fail. */
KT_TEST(pagestream_truncations_rejected)
{
    struct kc_sbuf samples[16];
    struct kc_sbuf s = KC_SBUF_INIT, out = KC_SBUF_INIT;
    size_t n;

    memset(samples, 0, sizeof(samples));
    n = kt_samples(samples, KC_ARRAY_LEN(samples));
    for (size_t i = 0; i < n; i++) {
        struct kc_frame whole = kt_frame(&samples[i]);
        size_t step = whole.len > 1000 ? 97 : 1; /* large pages: a sample of prefixes */

        for (size_t len = 0; len < samples[i].len; len += (len < 64 ? 1 : step)) {
            struct kc_frame f;
            size_t consumed = 1;
            KT_ASSERT_EQ(
                kc_frame_decode(samples[i].data, len, KC_FRAME_MAX_DEFAULT, &f, &consumed, NULL),
                KC_EAGAIN);
        }
        for (size_t len = 0; len < whole.len; len += (len < 64 ? 1 : step)) {
            struct kc_frame f = kt_raw(&s, whole.type, whole.payload, len);
            struct kc_error e;
            kc_sbuf_reset(&out);
            KT_ASSERT_EQ(kt_decode_reencode(&f, &out, &e), KC_EPROTO);
        }
    }
    kt_free_samples(samples, n);
    kc_sbuf_fini(&s);
    kc_sbuf_fini(&out);
}

/*
 * Every bit flip: in the frame, the checksum catches it; in a re-framed
 * payload, decoding fails or re-encodes to exactly the flipped bytes.
 */
KT_TEST(pagestream_bit_flips_rejected_or_canonical)
{
    struct kc_sbuf samples[16];
    struct kc_sbuf s = KC_SBUF_INIT, out = KC_SBUF_INIT;
    uint8_t *copy = malloc(KC_FRAME_HEADER_SIZE + 4 * KC_PS_BLCKSZ);
    size_t n, accepted = 0;

    KT_ASSERT(copy != NULL);
    memset(samples, 0, sizeof(samples));
    n = kt_samples(samples, KC_ARRAY_LEN(samples));
    for (size_t i = 0; i < n; i++) {
        struct kc_frame whole = kt_frame(&samples[i]);
        size_t limit = whole.len > 200 ? 200 : whole.len; /* header fields and texts */

        for (size_t bit = 0; bit < samples[i].len * 8; bit += (bit < 8 * 300 ? 1 : 61)) {
            struct kc_frame f;
            size_t consumed = 0;
            memcpy(copy, samples[i].data, samples[i].len);
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            KT_ASSERT(kc_frame_decode(copy, samples[i].len, KC_FRAME_MAX_DEFAULT, &f, &consumed,
                                      NULL) != 0);
        }
        for (size_t bit = 0; bit < limit * 8; bit++) {
            struct kc_frame f;
            struct kc_error e;
            memcpy(copy, whole.payload, whole.len);
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            f = kt_raw(&s, whole.type, copy, whole.len);
            kc_sbuf_reset(&out);
            if (kt_decode_reencode(&f, &out, &e) == 0) {
                KT_ASSERT_UEQ(out.len, s.len);
                KT_ASSERT_MEM_EQ(out.data, s.data, s.len);
                accepted++;
            }
        }
    }
    KT_ASSERT(accepted > 0); /* e.g. LSN bits: still valid messages */
    free(copy);
    kt_free_samples(samples, n);
    kc_sbuf_fini(&s);
    kc_sbuf_fini(&out);
}

/* Random payloads and random mutations of samples: never a crash, canonical when accepted. */
KT_TEST(pagestream_fuzz)
{
    static const uint16_t types[] = {KC_PS_MSG_HELLO,
                                     KC_PS_MSG_HELLO_OK,
                                     KC_PS_MSG_EXISTS,
                                     KC_PS_MSG_NBLOCKS,
                                     KC_PS_MSG_GETPAGE,
                                     KC_PS_MSG_DBSIZE,
                                     KC_PS_MSG_SLRU,
                                     KC_PS_MSG_EXISTS_RESP,
                                     KC_PS_MSG_NBLOCKS_RESP,
                                     KC_PS_MSG_GETPAGE_RESP,
                                     KC_PS_MSG_DBSIZE_RESP,
                                     KC_PS_MSG_SLRU_RESP,
                                     KC_PS_MSG_ERROR,
                                     0x5003,
                                     0x0000,
                                     0xFFFF};
    struct kc_sbuf samples[16];
    struct kc_sbuf s = KC_SBUF_INIT, out = KC_SBUF_INIT;
    uint8_t *buf = malloc(2 * KC_PS_BLCKSZ + 64);
    uint64_t st = 0x5EED;
    size_t n, accepted = 0;

    KT_ASSERT(buf != NULL);
    memset(samples, 0, sizeof(samples));
    n = kt_samples(samples, KC_ARRAY_LEN(samples));
    for (int iter = 0; iter < 20000; iter++) {
        uint64_t r = kt_rng(&st);
        uint16_t type;
        size_t len;
        struct kc_frame f;
        struct kc_error e;

        if (r % 2 == 0) { /* mutate a sample that fits the buffer */
            struct kc_frame whole = kt_frame(&samples[(r >> 8) % n]);
            int flips = 1 + (int)((r >> 16) % 4);
            len = whole.len > 2 * KC_PS_BLCKSZ ? 64 : whole.len;
            type = whole.type;
            memcpy(buf, whole.payload, len);
            for (int k = 0; k < flips && len > 0; k++) {
                uint64_t x = kt_rng(&st);
                buf[x % len] = (uint8_t)(x >> 32);
            }
            if ((r >> 24) % 8 == 0 && len > 0)
                len = (size_t)((r >> 32) % len); /* and truncate */
        } else {                                 /* random bytes under a random type */
            type = types[(r >> 8) % KC_ARRAY_LEN(types)];
            len = (size_t)((r >> 16) % 120);
            if ((r >> 32) % 4 == 0)
                len = 16 + KC_PS_BLCKSZ + (size_t)((r >> 40) % 3) - 1;
            for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t)kt_rng(&st);
        }
        f = kt_raw(&s, type, buf, len);
        kc_sbuf_reset(&out);
        if (kt_decode_reencode(&f, &out, &e) == 0) {
            KT_ASSERT_UEQ(out.len, s.len);
            KT_ASSERT_MEM_EQ(out.data, s.data, s.len);
            accepted++;
        }
    }
    KT_ASSERT(accepted > 100);
    free(buf);
    kt_free_samples(samples, n);
    kc_sbuf_fini(&s);
    kc_sbuf_fini(&out);
}

KT_TEST(pagestream_error_encode_cuts_and_defaults)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_error e;
    struct kc_ps_response d;
    struct kc_frame f;

    kc_error_clear(&e);
    kc_ps_error_encode(&s, 0, KC_PS_SQLSTATE_PROTOCOL, &e);
    f = kt_frame(&s);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &d, NULL), 0);
    KT_ASSERT_STR_EQ(d.error.message, "unknown error");
    KT_ASSERT_UEQ(d.id, 0);

    kc_sbuf_reset(&s);
    kc_error_set(&e, KC_EIO, "%s", "m");
    memset(e.detail, 'd', sizeof(e.detail) - 1);
    e.detail[sizeof(e.detail) - 1] = '\0';
    kc_ps_error_encode(&s, 5, KC_PS_SQLSTATE_IO, &e);
    f = kt_frame(&s);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &d, NULL), 0);
    KT_ASSERT_UEQ(strlen(d.error.detail), KC_PS_DETAIL_MAX);
    KT_ASSERT_STR_EQ(d.sqlstate, "58030");
    KT_ASSERT_UEQ(d.id, 5);
    kc_sbuf_fini(&s);
}

KT_TEST(pagestream_lsn_rules)
{
    struct kc_ps_request q = kt_req(KC_PS_MSG_GETPAGE);
    struct kc_error e;

    KT_ASSERT_EQ(kc_ps_request_check_lsns(&q, &e), 0); /* latest */
    q.request_lsn = q.not_modified_since;
    KT_ASSERT_EQ(kc_ps_request_check_lsns(&q, &e), 0);
    q.request_lsn = 0x16B373F;
    KT_ASSERT_EQ(kc_ps_request_check_lsns(&q, &e), KC_EINVAL);
    KT_ASSERT_STR_EQ(e.message,
                     "request LSN 0/16B373F is older than not-modified-since LSN 0/16B3740");
    q.request_lsn = 0;
    q.not_modified_since = 0;
    KT_ASSERT_EQ(kc_ps_request_check_lsns(&q, &e), KC_EINVAL);
    KT_ASSERT_CONTAINS(e.message, "invalid request LSN 0/0");
}

KT_TEST(pagestream_negotiate_and_names)
{
    KT_ASSERT_EQ(kc_ps_negotiate(1, 1, 1, 1), 1);
    KT_ASSERT_EQ(kc_ps_negotiate(1, 5, 1, 3), 3);
    KT_ASSERT_EQ(kc_ps_negotiate(2, 3, 1, 1), 0);
    KT_ASSERT_EQ(kc_ps_negotiate(0, 0, 1, 1), 0);
    KT_ASSERT_EQ(kc_ps_negotiate(3, 4, 1, 9), 4);
    KT_ASSERT_STR_EQ(kc_ps_msg_name(KC_PS_MSG_GETPAGE), "GETPAGE");
    KT_ASSERT_STR_EQ(kc_ps_msg_name(0x1234), "unknown");
    KT_ASSERT_UEQ(kc_ps_response_type(KC_PS_MSG_SLRU), KC_PS_MSG_SLRU_RESP);
    KT_ASSERT_UEQ(kc_ps_response_type(KC_PS_MSG_HELLO), 0);
    KT_ASSERT_EQ(kc_ps_sqlstate_to_code("KP001"), KC_ENOTFOUND);
    KT_ASSERT_EQ(kc_ps_sqlstate_to_code("KP003"), KC_ETIMEDOUT);
    KT_ASSERT_EQ(kc_ps_sqlstate_to_code("KP005"), KC_EVERSION);
    KT_ASSERT_EQ(kc_ps_sqlstate_to_code("08P01"), KC_EPROTO);
    KT_ASSERT_EQ(kc_ps_sqlstate_to_code("KP002"), KC_EIO);
    KT_ASSERT_EQ(kc_ps_sqlstate_to_code(NULL), KC_EIO);
    KT_ASSERT_UEQ(kc_ps_slru_segno_max(KC_PS_SLRU_CLOG), 0xFFF);
    KT_ASSERT_UEQ(kc_ps_slru_segno_max(7), 0);
}
