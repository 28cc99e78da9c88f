/* SPDX-License-Identifier: Apache-2.0 */
/* lsn_test.c -- unit tests for lsn.c. */
#include "common/lsn.h"

#include <stdio.h>

#include "unit.h"

KT_TEST(lsn_parse_valid)
{
    static const struct {
        const char *in;
        kc_lsn want;
    } cases[] = {
        {"0/0", 0},
        {"0/1", 1},
        {"0/16B3740", 0x16B3740},
        {"0/16b3740", 0x16B3740},
        {"1/0", UINT64_C(1) << 32},
        {"00000000/00000000", 0},
        {"00000001/00000002", UINT64_C(0x100000002)},
        {"FFFFFFFF/FFFFFFFF", UINT64_MAX},
        {"ffffffff/ffffffff", UINT64_MAX},
        {"aBcDeF01/23456789", UINT64_C(0xABCDEF0123456789)},
        {"7FFFFFFF/80000000", UINT64_C(0x7FFFFFFF80000000)},
    };

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        struct kc_error err = {0};
        kc_lsn got = 12345;
        int rc = kc_lsn_parse(cases[i].in, &got, &err);
        if (rc != 0)
            kt_fail(__FILE__, __LINE__, "\"%s\" rejected: %s", cases[i].in, err.message);
        KT_ASSERT_UEQ(got, cases[i].want);
        KT_ASSERT_EQ(err.code, 0);
    }
}

KT_TEST(lsn_parse_malformed)
{
    static const struct {
        const char *in;
        const char *detail; /* expected in the detail */
    } cases[] = {
        {"", "The input is empty."},
        {"/", "before the slash is empty"},
        {"1/", "after the slash is empty"},
        {"/1", "before the slash is empty"},
        {"123456789/0", "before the slash has 9 digits"},
        {"0/123456789", "after the slash has 9 digits"},
        {"0/FFFFFFFFF", "after the slash has 9 digits"},
        {"g/0", "\"g\" at position 1"},
        {"0/g", "\"g\" at position 3"},
        {" 0/0", "\" \" at position 1"},
        {"0/0 ", "\" \" at position 4"},
        {"0 /0", "\" \" at position 2"},
        {"0/ 0", "\" \" at position 3"},
        {"-1/0", "\"-\" at position 1"},
        {"+1/0", "\"+\" at position 1"},
        {"0/-1", "\"-\" at position 3"},
        {"0x1/0", "\"x\" at position 2"},
        {"0/0x1", "\"x\" at position 4"},
        {"0/0/0", "\"/\" at position 4"},
        {"0//0", "\"/\" at position 3"},
        {"abc", "The slash is missing."},
        {"12345678", "The slash is missing."},
        {"0\\0", "\"\\\" at position 2"},
        {"0/0\n", "byte 0x0A at position 4"},
        {"\xff/0", "byte 0xFF at position 1"},
        {"0.0", "\".\" at position 2"},
    };

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        struct kc_error err = {0};
        kc_lsn got = 777;
        char want_msg[128];

        KT_ASSERT_EQ(kc_lsn_parse(cases[i].in, &got, &err), KC_EINVAL);
        KT_ASSERT_EQ(err.code, KC_EINVAL);
        KT_ASSERT_UEQ(got, 777); /* untouched on failure */
        snprintf(want_msg, sizeof(want_msg), "invalid LSN \"%s\"", cases[i].in);
        KT_ASSERT_STR_EQ(err.message, want_msg);
        KT_ASSERT_CONTAINS(err.detail, cases[i].detail);
        KT_ASSERT_CONTAINS(err.detail, "two hexadecimal numbers of 1 to 8 digits");
        /* NULL err is allowed. */
        KT_ASSERT_EQ(kc_lsn_parse(cases[i].in, &got, NULL), KC_EINVAL);
    }
}

KT_TEST(lsn_parse_error_quotes_long_input_truncated)
{
    char in[200];
    struct kc_error err = {0};
    kc_lsn got;

    memset(in, '7', sizeof(in) - 1);
    in[sizeof(in) - 1] = '\0';
    KT_ASSERT_EQ(kc_lsn_parse(in, &got, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "invalid LSN \"7777777777");
    KT_ASSERT_CONTAINS(err.message, "...\"");
    KT_ASSERT(strlen(err.message) < 64);
    KT_ASSERT_CONTAINS(err.detail, "199 digits");
}

KT_TEST(lsn_format_like_postgres)
{
    char buf[KC_LSN_STRLEN];

    KT_ASSERT_STR_EQ(kc_lsn_format(0, buf), "0/0");
    KT_ASSERT_STR_EQ(kc_lsn_format(0x16B3740, buf), "0/16B3740");
    KT_ASSERT_STR_EQ(kc_lsn_format(UINT64_C(1) << 32, buf), "1/0");
    KT_ASSERT_STR_EQ(kc_lsn_format(UINT64_C(0xABCDEF0100000001), buf), "ABCDEF01/1");
    KT_ASSERT_STR_EQ(kc_lsn_format(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF");
    KT_ASSERT_EQ(strlen(buf), KC_LSN_STRLEN - 1);
    /* Usable inline. */
    {
        char line[64], b2[KC_LSN_STRLEN];
        snprintf(line, sizeof(line), "%s..%s", kc_lsn_format(1, buf), kc_lsn_format(2, b2));
        KT_ASSERT_STR_EQ(line, "0/1..0/2");
    }
}

KT_TEST(lsn_round_trip_edges)
{
    static const kc_lsn edges[] = {
        0,
        1,
        0xF,
        0x10,
        0xFFFFFFFF,
        UINT64_C(0x100000000),
        UINT64_C(0x100000001),
        UINT64_C(0x7FFFFFFFFFFFFFFF),
        UINT64_C(0x8000000000000000),
        UINT64_C(0xFFFFFFFF00000000),
        UINT64_MAX - 1,
        UINT64_MAX,
    };
    uint64_t x = 0x2545F4914F6CDD1DULL;

    for (size_t i = 0; i < KC_ARRAY_LEN(edges); i++) {
        char buf[KC_LSN_STRLEN];
        kc_lsn back = 0;
        KT_ASSERT_EQ(kc_lsn_parse(kc_lsn_format(edges[i], buf), &back, NULL), 0);
        KT_ASSERT_UEQ(back, edges[i]);
    }
    for (int i = 0; i < 10000; i++) {
        char buf[KC_LSN_STRLEN];
        kc_lsn back = 0, v;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        v = x >> (i % 64); /* vary the magnitude so short forms appear */
        KT_ASSERT_EQ(kc_lsn_parse(kc_lsn_format(v, buf), &back, NULL), 0);
        KT_ASSERT_UEQ(back, v);
    }
}

KT_TEST(lsn_segment_math)
{
    const uint32_t seg = KC_WAL_SEG_SIZE_DEFAULT;
    kc_lsn lsn = UINT64_C(0x100000000) + 3 * (kc_lsn)seg + 0x1234;
    char name[KC_WAL_FILE_NAME_LEN];

    KT_ASSERT_UEQ(kc_lsn_segno(0, seg), 0);
    KT_ASSERT_UEQ(kc_lsn_segno(seg - 1, seg), 0);
    KT_ASSERT_UEQ(kc_lsn_segno(seg, seg), 1);
    KT_ASSERT_UEQ(kc_lsn_segno(lsn, seg), 256 + 3);
    KT_ASSERT_UEQ(kc_lsn_segoff(lsn, seg), 0x1234);
    KT_ASSERT_UEQ(kc_lsn_seg_start(lsn, seg), lsn - 0x1234);
    KT_ASSERT_UEQ(kc_lsn_from_seg(259, 0x1234, seg), lsn);
    KT_ASSERT_UEQ(kc_lsn_segno(UINT64_MAX, seg), UINT64_MAX >> 24);
    KT_ASSERT_UEQ(kc_lsn_segoff(UINT64_MAX, seg), seg - 1);
    KT_ASSERT_UEQ(kc_lsn_from_seg(kc_lsn_segno(UINT64_MAX, seg), seg - 1, seg), UINT64_MAX);

    /* pg_walfile_name('0/16B3740') on timeline 1 is 000000010000000000000001. */
    KT_ASSERT_STR_EQ(kc_wal_file_name(name, 1, kc_lsn_segno(0x16B3740, seg), seg),
                     "000000010000000000000001");
    KT_ASSERT_STR_EQ(kc_wal_file_name(name, 1, kc_lsn_segno(lsn, seg), seg),
                     "000000010000000100000003");
    KT_ASSERT_STR_EQ(kc_wal_file_name(name, 0x2A, kc_lsn_segno(UINT64_MAX, seg), seg),
                     "0000002AFFFFFFFF000000FF");
    /* 1 GiB segments: four per 4 GiB of WAL. */
    KT_ASSERT_STR_EQ(kc_wal_file_name(name, 3, 9, 1u << 30), "000000030000000200000001");

    KT_ASSERT(kc_wal_segsize_valid(1u << 20));
    KT_ASSERT(kc_wal_segsize_valid(seg));
    KT_ASSERT(kc_wal_segsize_valid(1u << 30));
    KT_ASSERT(!kc_wal_segsize_valid(0));
    KT_ASSERT(!kc_wal_segsize_valid(1u << 19));
    KT_ASSERT(!kc_wal_segsize_valid(UINT64_C(1) << 31));
    KT_ASSERT(!kc_wal_segsize_valid(seg + 8192));
}
