/* SPDX-License-Identifier: Apache-2.0 */
/* crc32c_test.c -- unit tests for crc32c.c. */
#include "common/crc32c.h"

#include <pthread.h>
#include <stdlib.h>

#include "unit.h"

/* Deterministic PRNG (splitmix64) so failures reproduce. */
static uint64_t kt_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void kt_fill_random(uint8_t *p, size_t n, uint64_t *state)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)kt_rng_next(state);
}

/* Bit-at-a-time reference, independent of both real implementations. */
static uint32_t kt_crc_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

/* Check a vector through the dispatching, software and reference paths. */
static void kt_check_vector(const void *data, size_t len, uint32_t want)
{
    KT_ASSERT_UEQ(kc_crc32c(0, data, len), want);
    KT_ASSERT_UEQ(kc_crc32c_sw(0, data, len), want);
    KT_ASSERT_UEQ(kt_crc_bitwise(0, data, len), want);
}

KT_TEST(crc32c_known_vectors)
{
    kt_check_vector("123456789", 9, 0xE3069283u);
    kt_check_vector("a", 1, 0xC1D04330u);
    kt_check_vector("The quick brown fox jumps over the lazy dog", 43, 0x22620404u);
    kt_check_vector("", 0, 0);
    KT_ASSERT_UEQ(kc_crc32c(0, NULL, 0), 0);
    KT_ASSERT_UEQ(kc_crc32c(0x12345678u, NULL, 0), 0x12345678u);
    KT_ASSERT_UEQ(kc_crc32c_sw(0x12345678u, NULL, 0), 0x12345678u);
}

/* RFC 3720 (iSCSI) appendix B.4. */
KT_TEST(crc32c_rfc3720_vectors)
{
    static const uint8_t read10_pdu[48] = {
        0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    uint8_t buf[32];

    memset(buf, 0, sizeof(buf));
    kt_check_vector(buf, sizeof(buf), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    kt_check_vector(buf, sizeof(buf), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    kt_check_vector(buf, sizeof(buf), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    kt_check_vector(buf, sizeof(buf), 0x113FDB5Cu);
    kt_check_vector(read10_pdu, sizeof(read10_pdu), 0xD9963A56u);
}

KT_TEST(crc32c_incremental_every_split)
{
    uint8_t buf[300];
    uint64_t seed = 1;
    uint32_t whole, whole_sw;

    kt_fill_random(buf, sizeof(buf), &seed);
    whole = kc_crc32c(0, buf, sizeof(buf));
    whole_sw = kc_crc32c_sw(0, buf, sizeof(buf));
    KT_ASSERT_UEQ(whole, whole_sw);
    KT_ASSERT_UEQ(whole, kt_crc_bitwise(0, buf, sizeof(buf)));
    for (size_t cut = 0; cut <= sizeof(buf); cut++) {
        uint32_t c = kc_crc32c(0, buf, cut);
        KT_ASSERT_UEQ(kc_crc32c(c, buf + cut, sizeof(buf) - cut), whole);
        c = kc_crc32c_sw(0, buf, cut);
        KT_ASSERT_UEQ(kc_crc32c_sw(c, buf + cut, sizeof(buf) - cut), whole);
        /* Mixing implementations mid-stream is fine: same register convention. */
        KT_ASSERT_UEQ(kc_crc32c_sw(kc_crc32c(0, buf, cut), buf + cut, sizeof(buf) - cut), whole);
    }
    /* Three-way splits, and byte-at-a-time. */
    for (size_t a = 0; a <= 40; a++)
        for (size_t b = a; b <= 40; b++) {
            uint32_t c = kc_crc32c(0, buf, a);
            c = kc_crc32c(c, buf + a, b - a);
            KT_ASSERT_UEQ(kc_crc32c(c, buf + b, sizeof(buf) - b), whole);
        }
    {
        uint32_t c = 0;
        for (size_t i = 0; i < sizeof(buf); i++)
            c = kc_crc32c(c, buf + i, 1);
        KT_ASSERT_UEQ(c, whole);
    }
}

KT_TEST(crc32c_hw_matches_sw_random)
{
    enum { MAXLEN = 4096 + 64 };
    uint8_t *buf = malloc(MAXLEN + 16);
    uint64_t seed = 42;

    KT_ASSERT(buf != NULL);
    /* Both names are stable and the choice is consistent. */
    KT_ASSERT_STR_EQ(kc_crc32c_impl_name(), kc_crc32c_hw_available() ? "sse4.2" : "slicing-by-8");
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        KT_ASSERT(kc_crc32c_hw_available());
#endif
    kt_fill_random(buf, MAXLEN + 16, &seed);
    for (int iter = 0; iter < 2000; iter++) {
        size_t off = (size_t)(kt_rng_next(&seed) % 16); /* misaligned starts */
        uint64_t r = kt_rng_next(&seed);
        /* Mostly short lengths (the edge cases), sometimes long ones. */
        size_t len = (size_t)((r & 3) == 0 ? (r >> 8) % MAXLEN : (r >> 8) % 64);
        uint32_t init = (iter & 1) ? (uint32_t)kt_rng_next(&seed) : 0;
        uint32_t hw = kc_crc32c(init, buf + off, len);

        KT_ASSERT_UEQ(hw, kc_crc32c_sw(init, buf + off, len));
        if (len < 512)
            KT_ASSERT_UEQ(hw, kt_crc_bitwise(init, buf + off, len));
    }
    free(buf);
}

KT_TEST(crc32c_detects_single_bit_flips)
{
    uint8_t buf[64];
    uint64_t seed = 7;
    uint32_t good;

    kt_fill_random(buf, sizeof(buf), &seed);
    good = kc_crc32c(0, buf, sizeof(buf));
    for (size_t bit = 0; bit < sizeof(buf) * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        KT_ASSERT(kc_crc32c(0, buf, sizeof(buf)) != good);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    KT_ASSERT_UEQ(kc_crc32c(0, buf, sizeof(buf)), good);
}

static void *kt_crc_thread(void *arg)
{
    const uint8_t *buf = arg;
    uintptr_t bad = 0;
    for (int i = 0; i < 200; i++)
        if (kc_crc32c(0, buf, 1000) != kc_crc32c_sw(0, buf, 1000))
            bad++;
    return (void *)bad;
}

/* First use from many threads at once: the lazy table setup runs exactly once. */
KT_TEST(crc32c_concurrent_first_use)
{
    uint8_t buf[1000];
    pthread_t th[8];
    uint64_t seed = 9;

    kt_fill_random(buf, sizeof(buf), &seed);
    for (int i = 0; i < 8; i++)
        KT_ASSERT_EQ(pthread_create(&th[i], NULL, kt_crc_thread, buf), 0);
    for (int i = 0; i < 8; i++) {
        void *bad;
        KT_ASSERT_EQ(pthread_join(th[i], &bad), 0);
        KT_ASSERT_EQ((uintptr_t)bad, 0);
    }
    KT_ASSERT_UEQ(kc_crc32c(0, "123456789", 9), 0xE3069283u);
}
