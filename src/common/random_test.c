/* SPDX-License-Identifier: Apache-2.0 */
/* random_test.c -- unit tests for random.c. */
#include "common/random.h"

#include <stdint.h>

#include "unit.h"

KT_TEST(random_hex_form_and_uniqueness)
{
    char a[201], b[201];

    KT_ASSERT_EQ(kc_random_hex(a, 100, NULL), 0);
    KT_ASSERT_EQ(kc_random_hex(b, 100, NULL), 0);
    KT_ASSERT_EQ(strlen(a), 200);
    KT_ASSERT_EQ(strspn(a, "0123456789abcdef"), 200);
    KT_ASSERT(strcmp(a, b) != 0);
    KT_ASSERT_EQ(kc_random_hex(a, 0, NULL), 0);
    KT_ASSERT_STR_EQ(a, "");
}

KT_TEST(random_bytes_cover_every_bit)
{
    uint8_t buf[4096];
    unsigned ones = 0;

    KT_ASSERT_EQ(kc_random_bytes(buf, sizeof(buf), NULL), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        ones += (unsigned)__builtin_popcount(buf[i]);
    /* 32768 bits: expect 16384 ones; 6 sigma is about 543. */
    KT_ASSERT(ones > 16384 - 600 && ones < 16384 + 600);
}
