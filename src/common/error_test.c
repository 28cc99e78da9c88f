/* SPDX-License-Identifier: Apache-2.0 */
/* error_test.c -- unit tests for error.c. */
#include "common/error.h"

#include "unit.h"

KT_TEST(error_set_detail_hint_format)
{
    struct kc_error err;
    char buf[1024];

    KT_ASSERT_EQ(kc_error_set(&err, KC_EINVAL, "invalid LSN \"%s\"", "zz"), KC_EINVAL);
    kc_error_detail(&err, "An LSN is two hex numbers separated by a slash.");
    kc_error_hint(&err, "Write it as 0/16B3740.");
    kc_error_prefix(&err, "flag --start-lsn");
    kc_error_format(&err, buf, sizeof(buf));
    KT_ASSERT_STR_EQ(buf, "flag --start-lsn: invalid LSN \"zz\"\n"
                          "DETAIL: An LSN is two hex numbers separated by a slash.\n"
                          "HINT: Write it as 0/16B3740.");
    KT_ASSERT_STR_EQ(kc_strerror(err.code), "EINVAL");
    kc_error_clear(&err);
    KT_ASSERT_EQ(err.code, 0);
    KT_ASSERT_STR_EQ(err.message, "");
}

KT_TEST(error_null_is_allowed)
{
    KT_ASSERT_EQ(kc_error_set(NULL, KC_EIO, "x"), KC_EIO);
    kc_error_detail(NULL, "x");
    kc_error_hint(NULL, "x");
    kc_error_prefix(NULL, "x");
    kc_error_clear(NULL);
}
