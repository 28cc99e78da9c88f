/* SPDX-License-Identifier: Apache-2.0 */
/* frame_test.c -- unit tests for frame.c: round trips, truncation, bit flips, fuzzing. */
#include "common/frame.h"

#include <stdlib.h>

#include "common/crc32c.h"
#include "unit.h"

/* Deterministic PRNG (splitmix64) so failures reproduce. */
static uint64_t kt_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static bool kt_is_frame_code(int rc)
{
    return rc == 0 || rc == KC_EAGAIN || rc == KC_EPROTO || rc == KC_EVERSION || rc == KC_ETOOBIG ||
           rc == KC_ECORRUPT;
}

/* Build a frame by hand (any flags/version), with a correct checksum. */
static void kt_raw_frame(struct kc_sbuf *s, uint8_t version, uint8_t flags, uint16_t type,
                         const void *payload, uint32_t len)
{
    uint8_t hdr[KC_FRAME_HEADER_SIZE];

    hdr[0] = KC_FRAME_MAGIC0;
    hdr[1] = KC_FRAME_MAGIC1;
    hdr[2] = version;
    hdr[3] = flags;
    kc_store_u16(hdr + 4, type);
    kc_store_u32(hdr + 6, len);
    kc_store_u32(hdr + 10, kc_crc32c(kc_crc32c(0, hdr, 10), payload, len));
    kc_sbuf_append(s, hdr, sizeof(hdr));
    kc_sbuf_append(s, payload, len);
}

KT_TEST(frame_known_bytes)
{
    static const uint8_t want_abc[] = {0x4b, 0xc1, 0x01, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00,
                                       0x03, 0x3b, 0xae, 0x97, 0x49, 0x61, 0x62, 0x63};
    static const uint8_t want_empty[] = {0x4b, 0xc1, 0x01, 0x00, 0xff, 0xfe, 0x00,
                                         0x00, 0x00, 0x00, 0x23, 0x74, 0xec, 0xd3};
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_frame f;
    size_t used;

    KT_ASSERT_EQ(kc_frame_encode(&s, 0x0102, "abc", 3, NULL), 0);
    KT_ASSERT_EQ(s.len, sizeof(want_abc));
    KT_ASSERT_MEM_EQ(s.data, want_abc, sizeof(want_abc));
    kc_sbuf_reset(&s);
    KT_ASSERT_EQ(kc_frame_encode(&s, 0xfffe, NULL, 0, NULL), 0);
    KT_ASSERT_EQ(s.len, sizeof(want_empty));
    KT_ASSERT_MEM_EQ(s.data, want_empty, sizeof(want_empty));

    KT_ASSERT_EQ(kc_frame_decode(want_abc, sizeof(want_abc), 3, &f, &used, NULL), 0);
    KT_ASSERT_EQ(used, sizeof(want_abc));
    KT_ASSERT_EQ(f.version, 1);
    KT_ASSERT_EQ(f.flags, 0);
    KT_ASSERT_EQ(f.type, 0x0102);
    KT_ASSERT_EQ(f.len, 3);
    KT_ASSERT(f.payload == want_abc + KC_FRAME_HEADER_SIZE);
    KT_ASSERT_EQ(kc_frame_decode(want_empty, sizeof(want_empty), 0, &f, &used, NULL), 0);
    KT_ASSERT_EQ(f.len, 0);
    KT_ASSERT_EQ(f.type, 0xfffe);
    kc_sbuf_fini(&s);
}

KT_TEST(frame_round_trip_back_to_back)
{
    enum { NFRAMES = 300 };
    struct kc_sbuf s = KC_SBUF_INIT;
    static uint8_t payloads[NFRAMES][700];
    uint16_t types[NFRAMES];
    size_t lens[NFRAMES], pos = 0;
    uint64_t seed = 11;

    kc_sbuf_puts(&s, "junk"); /* frames need not start at offset 0 of the buffer */
    pos = s.len;
    for (int i = 0; i < NFRAMES; i++) {
        types[i] = (uint16_t)kt_rng(&seed);
        lens[i] = (i % 7 == 0) ? 0 : (size_t)(kt_rng(&seed) % sizeof(payloads[i]));
        for (size_t j = 0; j < lens[i]; j++)
            payloads[i][j] = (uint8_t)kt_rng(&seed);
        if (i % 2 == 0) {
            KT_ASSERT_EQ(kc_frame_encode(&s, types[i], payloads[i], lens[i], NULL), 0);
        } else {
            size_t start = kc_frame_begin(&s, types[i]);
            for (size_t j = 0; j < lens[i]; j++)
                kc_sbuf_put_u8(&s, payloads[i][j]);
            KT_ASSERT_EQ(kc_frame_finish(&s, start, NULL), 0);
        }
    }
    for (int i = 0; i < NFRAMES; i++) {
        struct kc_frame f;
        struct kc_error err = {0};
        size_t used = 99;
        int rc = kc_frame_decode(s.data + pos, s.len - pos, 700, &f, &used, &err);
        if (rc != 0)
            kt_fail(__FILE__, __LINE__, "frame %d: %s: %s", i, kc_strerror(rc), err.message);
        KT_ASSERT_EQ(f.type, types[i]);
        KT_ASSERT_EQ(f.len, lens[i]);
        KT_ASSERT_EQ(used, KC_FRAME_HEADER_SIZE + lens[i]);
        KT_ASSERT_MEM_EQ(f.payload, payloads[i], lens[i]);
        pos += used;
    }
    KT_ASSERT_EQ(pos, s.len);
    {
        struct kc_frame f;
        size_t used = 99;
        KT_ASSERT_EQ(kc_frame_decode(s.data + pos, 0, 700, &f, &used, NULL), KC_EAGAIN);
        KT_ASSERT_EQ(used, 0);
        KT_ASSERT_EQ(kc_frame_decode(NULL, 0, 700, &f, &used, NULL), KC_EAGAIN);
    }
    kc_sbuf_fini(&s);
}

/* A stream arriving one byte at a time: EAGAIN until each frame is whole. */
KT_TEST(frame_decode_byte_by_byte)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    size_t ends[20], nends = 0, pos = 0, nframes = 0;
    uint8_t payload[100];

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < KC_ARRAY_LEN(ends); i++) {
        KT_ASSERT_EQ(kc_frame_encode(&s, (uint16_t)i, payload, i * 5, NULL), 0);
        ends[nends++] = s.len;
    }
    for (size_t have = 0; have <= s.len; have++) {
        struct kc_frame f;
        struct kc_error err = {0};
        size_t used = 99;
        int rc = kc_frame_decode(s.data + pos, have - pos, 1000, &f, &used, &err);

        if (have == ends[nframes]) {
            KT_ASSERT_EQ(rc, 0);
            KT_ASSERT_EQ(f.type, nframes);
            KT_ASSERT_EQ(f.len, nframes * 5);
            KT_ASSERT_EQ(used, ends[nframes] - pos);
            KT_ASSERT_MEM_EQ(f.payload, payload, f.len);
            pos += used;
            nframes++;
            /* Nothing left over: the next call wants a new header. */
            KT_ASSERT_EQ(kc_frame_decode(s.data + pos, have - pos, 1000, &f, &used, NULL),
                         KC_EAGAIN);
        } else {
            KT_ASSERT_EQ(rc, KC_EAGAIN);
            KT_ASSERT_EQ(used, 0);
            KT_ASSERT_EQ(err.code, KC_EAGAIN);
            KT_ASSERT_CONTAINS(err.message, "incomplete frame");
            KT_ASSERT(kc_frame_wanted(s.data + pos, have - pos) > have - pos);
            if (have - pos >= 10)
                KT_ASSERT_EQ(kc_frame_wanted(s.data + pos, have - pos), ends[nframes] - pos);
            else
                KT_ASSERT_EQ(kc_frame_wanted(s.data + pos, have - pos), KC_FRAME_HEADER_SIZE);
        }
    }
    KT_ASSERT_EQ(nframes, KC_ARRAY_LEN(ends));
    kc_sbuf_fini(&s);
}

KT_TEST(frame_every_truncation_is_eagain)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    uint8_t payload[257];

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)i;
    KT_ASSERT_EQ(kc_frame_encode(&s, 42, payload, sizeof(payload), NULL), 0);
    for (size_t cut = 0; cut < s.len; cut++) {
        /* A copy of exactly cut bytes, so ASan catches any read past it. */
        uint8_t *copy = malloc(cut ? cut : 1);
        struct kc_frame f;
        size_t used = 99;
        KT_ASSERT(copy != NULL);
        memcpy(copy, s.data, cut);
        KT_ASSERT_EQ(kc_frame_decode(copy, cut, sizeof(payload), &f, &used, NULL), KC_EAGAIN);
        KT_ASSERT_EQ(used, 0);
        free(copy);
    }
    kc_sbuf_fini(&s);
}

/* The code a single-bit flip in the given header byte must produce. */
static void kt_check_flip(size_t byte, uint8_t mask, int rc)
{
    switch (byte) {
    case 0:
    case 1: KT_ASSERT_EQ(rc, KC_EPROTO); break;
    case 2: KT_ASSERT_EQ(rc, KC_EVERSION); break;
    case 3: KT_ASSERT_EQ(rc, (mask & KC_FRAME_FLAGS_CRITICAL) ? KC_EVERSION : KC_ECORRUPT); break;
    case 6:
    case 7:
    case 8:
    case 9: KT_ASSERT(rc == KC_ETOOBIG || rc == KC_EAGAIN || rc == KC_ECORRUPT); break;
    default: KT_ASSERT_EQ(rc, KC_ECORRUPT); break;
    }
}

KT_TEST(frame_every_bit_flip_is_rejected)
{
    struct kc_sbuf s = KC_SBUF_INIT, two = KC_SBUF_INIT;
    uint8_t payload[40];
    size_t flen;

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(0xA5 ^ i);
    KT_ASSERT_EQ(kc_frame_encode(&s, 0x1234, payload, sizeof(payload), NULL), 0);
    flen = s.len;
    /* The same frame followed by another one and some padding, so that a
     * length made longer by the flip reads into real bytes. */
    kc_sbuf_append(&two, s.data, s.len);
    KT_ASSERT_EQ(kc_frame_encode(&two, 7, payload, sizeof(payload), NULL), 0);
    for (int i = 0; i < 100; i++)
        kc_sbuf_put_u8(&two, (uint8_t)i);

    for (size_t bit = 0; bit < flen * 8; bit++) {
        uint8_t mask = (uint8_t)(1u << (bit % 8));
        struct kc_frame f;
        struct kc_error err = {0};
        size_t used = 99;
        int rc;

        s.data[bit / 8] ^= mask;
        rc = kc_frame_decode(s.data, flen, 1 << 20, &f, &used, &err);
        KT_ASSERT(rc != 0);
        KT_ASSERT_EQ(used, 0);
        KT_ASSERT_EQ(err.code, rc);
        if (bit / 8 >= 6 && bit / 8 < 10 && rc == KC_EAGAIN)
            KT_ASSERT(kc_frame_wanted(s.data, flen) > flen); /* a longer length */
        else
            kt_check_flip(bit / 8, mask, rc);
        s.data[bit / 8] ^= mask;

        two.data[bit / 8] ^= mask;
        rc = kc_frame_decode(two.data, two.len, 1 << 20, &f, &used, &err);
        KT_ASSERT(rc != 0);
        kt_check_flip(bit / 8, mask, rc);
        two.data[bit / 8] ^= mask;
    }
    /* Unflipped, both still decode. */
    {
        struct kc_frame f;
        size_t used;
        KT_ASSERT_EQ(kc_frame_decode(s.data, s.len, 1 << 20, &f, &used, NULL), 0);
        KT_ASSERT_EQ(kc_frame_decode(two.data, two.len, 1 << 20, &f, &used, NULL), 0);
    }
    kc_sbuf_fini(&s);
    kc_sbuf_fini(&two);
}

KT_TEST(frame_oversized_rejected_before_payload)
{
    uint8_t hdr[KC_FRAME_HEADER_SIZE] = {KC_FRAME_MAGIC0, KC_FRAME_MAGIC1, KC_FRAME_VERSION, 0};
    struct kc_frame f;
    struct kc_error err = {0};
    size_t used = 99;

    kc_store_u16(hdr + 4, 77);
    kc_store_u32(hdr + 6, 65537);
    /* Only up to the length field has arrived: already rejected. */
    KT_ASSERT_EQ(kc_frame_decode(hdr, 10, 65536, &f, &used, &err), KC_ETOOBIG);
    KT_ASSERT_EQ(used, 0);
    KT_ASSERT_STR_EQ(err.message, "frame payload of 65537 bytes exceeds the limit of 65536 bytes");
    KT_ASSERT_CONTAINS(err.detail, "type 77");
    /* One byte short of the length field: not yet known. */
    KT_ASSERT_EQ(kc_frame_decode(hdr, 9, 65536, &f, &used, NULL), KC_EAGAIN);
    /* Exactly at the limit: waits for the payload. */
    KT_ASSERT_EQ(kc_frame_decode(hdr, 10, 65537, &f, &used, NULL), KC_EAGAIN);
    KT_ASSERT_EQ(kc_frame_wanted(hdr, 10), KC_FRAME_HEADER_SIZE + 65537);
    /* The largest length field, with the limit at 0 and at its maximum. */
    kc_store_u32(hdr + 6, UINT32_MAX);
    KT_ASSERT_EQ(kc_frame_decode(hdr, sizeof(hdr), 0, &f, &used, NULL), KC_ETOOBIG);
    KT_ASSERT_EQ(kc_frame_decode(hdr, sizeof(hdr), KC_FRAME_PAYLOAD_LIMIT, &f, &used, NULL),
                 KC_EAGAIN);
    KT_ASSERT_EQ(kc_frame_decode(hdr, sizeof(hdr), SIZE_MAX, &f, &used, NULL), KC_EAGAIN);
    KT_ASSERT_EQ(kc_frame_wanted(hdr, sizeof(hdr)), KC_FRAME_HEADER_SIZE + (size_t)UINT32_MAX);
    /* An empty payload passes a limit of 0. */
    {
        struct kc_sbuf s = KC_SBUF_INIT;
        KT_ASSERT_EQ(kc_frame_encode(&s, 1, NULL, 0, NULL), 0);
        KT_ASSERT_EQ(kc_frame_decode(s.data, s.len, 0, &f, &used, NULL), 0);
        KT_ASSERT_EQ(kc_frame_encode(&s, 1, "x", 1, NULL), 0);
        KT_ASSERT_EQ(kc_frame_decode(s.data + used, s.len - used, 0, &f, &used, NULL), KC_ETOOBIG);
        kc_sbuf_fini(&s);
    }
}

KT_TEST(frame_bad_magic_and_version)
{
    static const char http[] = "GET / HTTP/1.1\r\n";
    uint8_t b[KC_FRAME_HEADER_SIZE] = {KC_FRAME_MAGIC0, KC_FRAME_MAGIC1, 2, 0};
    struct kc_frame f;
    struct kc_error err = {0};
    size_t used = 99;

    /* Rejected from the first wrong byte on. */
    KT_ASSERT_EQ(kc_frame_decode((const uint8_t *)http, 1, 100, &f, &used, &err), KC_EPROTO);
    KT_ASSERT_STR_EQ(err.message, "invalid frame magic 0x47");
    KT_ASSERT_EQ(kc_frame_decode((const uint8_t *)http, sizeof(http) - 1, 100, &f, &used, &err),
                 KC_EPROTO);
    KT_ASSERT_STR_EQ(err.message, "invalid frame magic 0x4745");
    KT_ASSERT_CONTAINS(err.detail, "0x4BC1");
    KT_ASSERT_EQ(used, 0);
    {
        const uint8_t half[2] = {KC_FRAME_MAGIC0, 0x00};
        KT_ASSERT_EQ(kc_frame_decode(half, 1, 100, &f, &used, NULL), KC_EAGAIN);
        KT_ASSERT_EQ(kc_frame_decode(half, 2, 100, &f, &used, NULL), KC_EPROTO);
    }

    /* Version 2 is reported as soon as byte 2 is there, naming both versions. */
    KT_ASSERT_EQ(kc_frame_decode(b, 3, 100, &f, &used, &err), KC_EVERSION);
    KT_ASSERT_STR_EQ(err.message, "unsupported frame version 2: this build supports version 1");
    KT_ASSERT_CONTAINS(err.detail, "newer");
    KT_ASSERT(err.hint[0] != '\0');
    b[2] = 0;
    KT_ASSERT_EQ(kc_frame_decode(b, sizeof(b), 100, &f, &used, &err), KC_EVERSION);
    KT_ASSERT_STR_EQ(err.message, "unsupported frame version 0: this build supports version 1");
    KT_ASSERT_CONTAINS(err.detail, "older");
    b[2] = 255;
    KT_ASSERT_EQ(kc_frame_decode(b, sizeof(b), 100, &f, &used, NULL), KC_EVERSION);
    /* A correctly checksummed version-2 frame is still refused. */
    {
        struct kc_sbuf s = KC_SBUF_INIT;
        kt_raw_frame(&s, 2, 0, 1, "hi", 2);
        KT_ASSERT_EQ(kc_frame_decode(s.data, s.len, 100, &f, &used, NULL), KC_EVERSION);
        kc_sbuf_fini(&s);
    }
}

KT_TEST(frame_flags_optional_and_critical)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_frame f;
    struct kc_error err = {0};
    size_t used;

    /* Unknown optional bits are passed through. */
    kt_raw_frame(&s, KC_FRAME_VERSION, 0x05, 9, "data", 4);
    KT_ASSERT_EQ(kc_frame_decode(s.data, s.len, 100, &f, &used, NULL), 0);
    KT_ASSERT_EQ(f.flags, 0x05);
    KT_ASSERT_EQ(f.type, 9);
    KT_ASSERT_MEM_EQ(f.payload, "data", 4);
    /* Every critical bit is refused, as soon as the flags byte arrives. */
    for (int bit = 4; bit < 8; bit++) {
        kc_sbuf_reset(&s);
        kt_raw_frame(&s, KC_FRAME_VERSION, (uint8_t)(1u << bit | 0x01), 9, "data", 4);
        KT_ASSERT_EQ(kc_frame_decode(s.data, s.len, 100, &f, &used, &err), KC_EVERSION);
        KT_ASSERT_CONTAINS(err.message, "unsupported flags");
        KT_ASSERT_EQ(kc_frame_decode(s.data, 4, 100, &f, &used, NULL), KC_EVERSION);
        KT_ASSERT_EQ(used, 0);
    }
    kc_sbuf_fini(&s);
}

KT_TEST(frame_checksum_mismatch_message)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_frame f;
    struct kc_error err = {0};
    size_t used = 99;

    KT_ASSERT_EQ(kc_frame_encode(&s, 513, "payload", 7, NULL), 0);
    s.data[s.len - 1] ^= 0x20;
    KT_ASSERT_EQ(kc_frame_decode(s.data, s.len, 100, &f, &used, &err), KC_ECORRUPT);
    KT_ASSERT_STR_EQ(err.message, "frame checksum mismatch");
    KT_ASSERT_CONTAINS(err.detail, "type 513 with 7 payload bytes");
    KT_ASSERT_EQ(used, 0);
    kc_sbuf_fini(&s);
}

KT_TEST(frame_begin_finish_cancel_and_payload_cursor)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_frame f;
    struct kc_buf b;
    size_t start, used;
    uint64_t lsn;
    uint32_t n;
    uint8_t tag;

    kc_sbuf_puts(&s, "prefix");
    start = kc_frame_begin(&s, 3);
    KT_ASSERT_EQ(start, 6);
    kc_sbuf_put_u64(&s, 0x16B3740);
    kc_sbuf_put_u32(&s, 8192);
    kc_sbuf_put_u8(&s, 'P');
    KT_ASSERT_EQ(kc_frame_finish(&s, start, NULL), 0);

    /* A frame begun and cancelled leaves no trace. */
    start = kc_frame_begin(&s, 4);
    kc_sbuf_puts(&s, "abandoned");
    kc_frame_cancel(&s, start);
    KT_ASSERT_EQ(s.len, start);
    KT_ASSERT_EQ(s.data[s.len], '\0');

    KT_ASSERT_EQ(kc_frame_decode(s.data + 6, s.len - 6, 100, &f, &used, NULL), 0);
    KT_ASSERT_EQ(used, s.len - 6);
    KT_ASSERT_EQ(f.type, 3);
    KT_ASSERT_EQ(f.len, 13);
    kc_frame_payload(&f, &b);
    KT_ASSERT(kc_buf_get_u64(&b, &lsn) && lsn == 0x16B3740);
    KT_ASSERT(kc_buf_get_u32(&b, &n) && n == 8192);
    KT_ASSERT(kc_buf_get_u8(&b, &tag) && tag == 'P');
    KT_ASSERT_EQ(kc_buf_remaining(&b), 0);
    kc_sbuf_fini(&s);

    /* begin on an empty (never allocated) buffer; an empty payload. */
    start = kc_frame_begin(&s, 0);
    KT_ASSERT_EQ(start, 0);
    KT_ASSERT_EQ(kc_frame_finish(&s, start, NULL), 0);
    KT_ASSERT_EQ(kc_frame_decode(s.data, s.len, 0, &f, &used, NULL), 0);
    KT_ASSERT_EQ(f.len, 0);
    kc_sbuf_fini(&s);
}

KT_TEST(frame_encode_too_big)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_error err = {0};

    kc_sbuf_puts(&s, "keep");
    /* Checked before the payload is touched, so no 4 GiB buffer is needed. */
    KT_ASSERT_EQ(kc_frame_encode(&s, 5, NULL, (size_t)KC_FRAME_PAYLOAD_LIMIT + 1, &err),
                 KC_ETOOBIG);
    KT_ASSERT_EQ(err.code, KC_ETOOBIG);
    KT_ASSERT_CONTAINS(err.message, "4294967296 bytes is too large");
    KT_ASSERT_EQ(s.len, 4);
    KT_ASSERT_STR_EQ(kc_sbuf_str(&s), "keep");
    kc_sbuf_fini(&s);
}

/* Check the invariants of one decode call on arbitrary input. */
static int kt_decode_checked(const uint8_t *data, size_t len, size_t max, bool with_err)
{
    struct kc_frame f;
    struct kc_error err = {0};
    size_t used = 12345;
    int rc = kc_frame_decode(data, len, max, &f, &used, with_err ? &err : NULL);

    KT_ASSERT(kt_is_frame_code(rc));
    if (rc == 0) {
        KT_ASSERT(f.len <= max);
        KT_ASSERT_EQ(used, KC_FRAME_HEADER_SIZE + (size_t)f.len);
        KT_ASSERT(used <= len);
        KT_ASSERT(f.payload == data + KC_FRAME_HEADER_SIZE);
        KT_ASSERT_EQ(f.version, KC_FRAME_VERSION);
        KT_ASSERT_EQ(f.flags & KC_FRAME_FLAGS_CRITICAL, 0);
        /* Independently re-check what was accepted. */
        KT_ASSERT_EQ(data[0], KC_FRAME_MAGIC0);
        KT_ASSERT_EQ(data[1], KC_FRAME_MAGIC1);
        KT_ASSERT_UEQ(kc_load_u32(data + 10),
                      kc_crc32c_sw(kc_crc32c_sw(0, data, 10), f.payload, f.len));
    } else {
        KT_ASSERT_EQ(used, 0);
        if (with_err) {
            KT_ASSERT_EQ(err.code, rc);
            KT_ASSERT(err.message[0] != '\0');
        }
        if (rc == KC_EAGAIN)
            KT_ASSERT(kc_frame_wanted(data, len) > len);
    }
    return rc;
}

/*
 * Bounded deterministic fuzzing: random bytes, and valid frames with random
 * mutations, truncations and length rewrites. Asserts no crash (ASan/valgrind
 * watch the reads), consistent codes, and that no altered frame decodes.
 */
KT_TEST(frame_fuzz_random_and_mutated)
{
    enum { ITERS = 200000, MAXBUF = 160 };
    uint64_t seed = 0x6b656c70; /* fixed: failures reproduce */
    struct kc_sbuf s = KC_SBUF_INIT;
    uint8_t orig[MAXBUF + 64];
    int counts[16] = {0};

    for (int iter = 0; iter < ITERS; iter++) {
        uint64_t r = kt_rng(&seed);
        size_t max = (r & 1) ? 64 : (size_t)(kt_rng(&seed) % 200);
        size_t len, flen = 0;
        uint8_t *buf;
        int rc;

        kc_sbuf_reset(&s);
        if ((r >> 1) % 4 == 0) {
            /* Pure noise, sometimes starting with the right magic. */
            len = (size_t)(kt_rng(&seed) % MAXBUF);
            for (size_t i = 0; i < len; i++)
                kc_sbuf_put_u8(&s, (uint8_t)kt_rng(&seed));
            if (len >= 3 && (r & 0x100)) {
                s.data[0] = KC_FRAME_MAGIC0;
                s.data[1] = KC_FRAME_MAGIC1;
                s.data[2] = KC_FRAME_VERSION;
            }
        } else {
            /* A valid frame, then mutations. */
            size_t plen = (size_t)(kt_rng(&seed) % 100);
            uint8_t p[100];
            int nmut = (int)(kt_rng(&seed) % 4);

            for (size_t i = 0; i < plen; i++)
                p[i] = (uint8_t)kt_rng(&seed);
            KT_ASSERT_EQ(kc_frame_encode(&s, (uint16_t)kt_rng(&seed), p, plen, NULL), 0);
            flen = s.len;
            if (kt_rng(&seed) % 4 == 0) /* trailing bytes of a next frame */
                for (size_t i = 0, n = (size_t)(kt_rng(&seed) % 50); i < n; i++)
                    kc_sbuf_put_u8(&s, (uint8_t)kt_rng(&seed));
            memcpy(orig, s.data, s.len);
            for (int m = 0; m < nmut; m++) {
                uint64_t what = kt_rng(&seed);
                size_t at = (size_t)(kt_rng(&seed) % flen);
                switch (what % 4) {
                case 0: s.data[at] ^= (uint8_t)(1u << (what >> 8) % 8); break;
                case 1: s.data[at] = (uint8_t)(what >> 8); break;
                case 2: kc_store_u32(s.data + 6, (uint32_t)(what >> 16) % 300); break;
                default: s.len = at; break; /* truncate */
                }
            }
            len = s.len;
        }
        /* An exact-size copy so that any overread is caught by the checkers. */
        buf = malloc(len ? len : 1);
        KT_ASSERT(buf != NULL);
        memcpy(buf, s.data, len);
        rc = kt_decode_checked(buf, len, max, (iter & 3) != 0);
        counts[-rc]++;
        if (rc == 0 && flen > 0) {
            /* An accepted mutated frame must be the original one, unchanged. */
            size_t used = KC_FRAME_HEADER_SIZE + kc_load_u32(buf + 6);
            KT_ASSERT(used <= flen);
            KT_ASSERT_MEM_EQ(buf, orig, used);
        }
        /* Prefixes of anything accepted are EAGAIN (spot-checked). */
        if (rc == 0 && iter % 64 == 0)
            for (size_t cut = 0; cut < KC_FRAME_HEADER_SIZE + kc_load_u32(buf + 6); cut++)
                KT_ASSERT_EQ(kt_decode_checked(buf, cut, max, true), KC_EAGAIN);
        free(buf);
    }
    /* The generator reaches every outcome. */
    KT_ASSERT(counts[0] > 1000);
    KT_ASSERT(counts[-KC_EAGAIN] > 1000);
    KT_ASSERT(counts[-KC_EPROTO] > 1000);
    KT_ASSERT(counts[-KC_EVERSION] > 100);
    KT_ASSERT(counts[-KC_ETOOBIG] > 1000);
    KT_ASSERT(counts[-KC_ECORRUPT] > 1000);
    kc_sbuf_fini(&s);
}
