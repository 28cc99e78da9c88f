/* SPDX-License-Identifier: Apache-2.0 */
/* hex_test.c -- unit tests for hex.c. */
#include "common/hex.h"

#include "unit.h"

KT_TEST(hex_roundtrip_and_bad_digits)
{
    const uint8_t in[] = {0x00, 0x7f, 0xa5, 0xff};
    uint8_t out[4];
    char text[9];

    kc_hex_encode(in, sizeof(in), text);
    KT_ASSERT_STR_EQ(text, "007fa5ff");
    KT_ASSERT_EQ(kc_hex_decode("007FA5ff", 4, out), 0);
    KT_ASSERT_MEM_EQ(in, out, 4);
    KT_ASSERT_EQ(kc_hex_decode("0g7fa5ff", 4, out), 2);
    KT_ASSERT_EQ(kc_hex_decode("007fa5f ", 4, out), 8);
    KT_ASSERT_EQ(kc_hex_digit('F'), 15);
    KT_ASSERT_EQ(kc_hex_digit('/'), -1);
    KT_ASSERT_EQ(kc_hex_digit(0), -1);
}
