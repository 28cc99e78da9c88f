/* SPDX-License-Identifier: Apache-2.0 */
/* id_test.c -- unit tests for id.c. */
#include "common/id.h"

#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

KT_TEST(id_parse_format_round_trip)
{
    static const char *const valid[] = {
        "00000000000000000000000000000000",
        "0123456789abcdef0123456789abcdef",
        "ffffffffffffffffffffffffffffffff",
        "de0b5a3e9a6c4a8c8d3a1f0e2b7c4d59",
    };
    struct kc_id id;
    char buf[KC_ID_STRLEN];

    for (size_t i = 0; i < KC_ARRAY_LEN(valid); i++) {
        struct kc_error err = {0};
        KT_ASSERT_EQ(kc_id_parse(valid[i], &id, &err), 0);
        KT_ASSERT_EQ(err.code, 0);
        KT_ASSERT_STR_EQ(kc_id_format(&id, buf), valid[i]);
    }

    /* Upper and mixed case in, lower case out; byte order is text order. */
    KT_ASSERT_EQ(kc_id_parse("0123456789ABCDEFfEdCbA9876543210", &id, NULL), 0);
    KT_ASSERT_UEQ(id.b[0], 0x01);
    KT_ASSERT_UEQ(id.b[7], 0xEF);
    KT_ASSERT_UEQ(id.b[8], 0xFE);
    KT_ASSERT_UEQ(id.b[15], 0x10);
    KT_ASSERT_STR_EQ(kc_id_format(&id, buf), "0123456789abcdeffedcba9876543210");
    KT_ASSERT_EQ(strlen(buf), KC_ID_HEXLEN);
}

KT_TEST(id_parse_malformed)
{
    static const struct {
        const char *in;
        const char *detail;
    } cases[] = {
        {"", "The input is empty"},
        {"0", "The input has 1 character;"},
        {"0123456789abcdef0123456789abcde", "has 31 characters"},
        {"0123456789abcdef0123456789abcdef0", "has 33 characters"},
        {"0123456789abcdef0123456789abcdef ", "has 33 characters"},
        {" 0123456789abcdef0123456789abcdef", "\" \" at position 1 is not a hexadecimal digit"},
        {"0123456789abcdef0123456789abcdeg", "\"g\" at position 32"},
        {"0x23456789abcdef0123456789abcdef", "\"x\" at position 2"},
        {"01234567-89ab-cdef-0123-456789abcdef", "\"-\" at position 9"},
        {"tenant-1", "\"t\" at position 1"},
        {"0123456789abcdef\n123456789abcdef", "Byte 0x0A at position 17"},
        {"\xc3\xa9", "Byte 0xC3 at position 1"},
    };

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        struct kc_error err = {0};
        struct kc_id id = {{7}};
        char want[128];

        KT_ASSERT_EQ(kc_id_parse(cases[i].in, &id, &err), KC_EINVAL);
        KT_ASSERT_EQ(err.code, KC_EINVAL);
        snprintf(want, sizeof(want), "invalid id \"%s\"", cases[i].in);
        KT_ASSERT_STR_EQ(err.message, want);
        KT_ASSERT_CONTAINS(err.detail, cases[i].detail);
        KT_ASSERT_CONTAINS(err.detail, "exactly 32 hexadecimal digits");
        KT_ASSERT_UEQ(id.b[0], 7); /* untouched */
        KT_ASSERT_EQ(kc_id_parse(cases[i].in, &id, NULL), KC_EINVAL);
    }
}

KT_TEST(id_parse_long_input_quoted_truncated)
{
    char in[300];
    struct kc_error err = {0};
    struct kc_id id;

    memset(in, 'a', sizeof(in) - 1);
    in[sizeof(in) - 1] = '\0';
    KT_ASSERT_EQ(kc_id_parse(in, &id, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "...\"");
    KT_ASSERT(strlen(err.message) < 80);
    KT_ASSERT_CONTAINS(err.detail, "has 299 characters");
}

KT_TEST(id_compare_equal_zero)
{
    struct kc_id a = KC_ID_ZERO, b = KC_ID_ZERO;
    char sa[KC_ID_STRLEN], sb[KC_ID_STRLEN];

    KT_ASSERT(kc_id_is_zero(&a));
    KT_ASSERT(kc_id_equal(&a, &b));
    KT_ASSERT_EQ(kc_id_compare(&a, &b), 0);
    b.b[15] = 1;
    KT_ASSERT(!kc_id_is_zero(&b));
    KT_ASSERT(!kc_id_equal(&a, &b));
    KT_ASSERT(kc_id_compare(&a, &b) < 0);
    KT_ASSERT(kc_id_compare(&b, &a) > 0);
    a.b[0] = 1; /* the first byte dominates */
    KT_ASSERT(kc_id_compare(&a, &b) > 0);
    /* Same order as the text forms. */
    KT_ASSERT(strcmp(kc_id_format(&a, sa), kc_id_format(&b, sb)) > 0);
    a.b[0] = 0x80;
    b.b[0] = 0x7f;
    KT_ASSERT(kc_id_compare(&a, &b) > 0); /* unsigned bytes */
    KT_ASSERT(strcmp(kc_id_format(&a, sa), kc_id_format(&b, sb)) > 0);
}

static int kt_id_qsort_cmp(const void *a, const void *b)
{
    return kc_id_compare(a, b);
}

KT_TEST(id_generate_unique_and_random)
{
    enum { N = 20000 };
    struct kc_id *ids = calloc(N, sizeof(*ids));
    int ones[128] = {0};

    KT_ASSERT(ids != NULL);
    for (int i = 0; i < N; i++) {
        struct kc_error err = {0};
        KT_ASSERT_EQ(kc_id_generate(&ids[i], &err), 0);
        KT_ASSERT(!kc_id_is_zero(&ids[i]));
        for (int bit = 0; bit < 128; bit++)
            ones[bit] += (ids[i].b[bit / 8] >> (bit % 8)) & 1;
    }
    qsort(ids, N, sizeof(*ids), kt_id_qsort_cmp);
    for (int i = 1; i < N; i++)
        KT_ASSERT(kc_id_compare(&ids[i - 1], &ids[i]) < 0);
    /* Every bit is set about half the time (mean 10000, sd ~71; 25 sd margin). */
    for (int bit = 0; bit < 128; bit++)
        KT_ASSERT(ones[bit] > 8200 && ones[bit] < 11800);
    /* A generated id survives the text round trip. */
    {
        char s[KC_ID_STRLEN];
        struct kc_id back;
        KT_ASSERT_EQ(kc_id_parse(kc_id_format(&ids[0], s), &back, NULL), 0);
        KT_ASSERT(kc_id_equal(&back, &ids[0]));
    }
    free(ids);
}
