/* SPDX-License-Identifier: Apache-2.0 */
/* value_test.c -- unit tests for value.c. */
#include "pageserver/value.h"

#include "unit.h"

KT_TEST(value_kinds_and_chain_end)
{
    uint8_t page[8192] = {0};
    struct ps_value img = ps_value_image(page, sizeof(page));
    struct ps_value rec = ps_value_record(PS_VALUE_PG_RECORD, false, page, 100);
    struct ps_value init = ps_value_record(PS_VALUE_PG_RECORD, true, page, 100);
    struct ps_value native = ps_value_record(PS_VALUE_NATIVE_RECORD, false, page, 12);

    KT_ASSERT(img.will_init && ps_value_ends_chain(&img));
    KT_ASSERT(!ps_value_ends_chain(&rec));
    KT_ASSERT(ps_value_ends_chain(&init));
    KT_ASSERT(!ps_value_ends_chain(&native));
    KT_ASSERT_STR_EQ(ps_value_kind_name(PS_VALUE_IMAGE), "image");
    KT_ASSERT_STR_EQ(ps_value_kind_name(PS_VALUE_PG_RECORD), "pg-record");
    KT_ASSERT_STR_EQ(ps_value_kind_name(PS_VALUE_NATIVE_RECORD), "native-record");
    KT_ASSERT_STR_EQ(ps_value_kind_name(0), "unknown");
    KT_ASSERT(!ps_value_kind_valid(0) && !ps_value_kind_valid(4) && ps_value_kind_valid(3));
    /* The numbers are stored in layer files: they never change. */
    KT_ASSERT_EQ(PS_VALUE_IMAGE, 1);
    KT_ASSERT_EQ(PS_VALUE_PG_RECORD, 2);
    KT_ASSERT_EQ(PS_VALUE_NATIVE_RECORD, 3);
}

KT_TEST(value_check_rejects_malformed_values)
{
    uint8_t b[4] = {0};
    struct ps_value v = ps_value_image(b, sizeof(b));
    struct kc_error err;

    KT_ASSERT_EQ(ps_value_check(&v, &err), 0);
    v = ps_value_image(NULL, 0); /* empty values exist (an empty directory) */
    KT_ASSERT_EQ(ps_value_check(&v, &err), 0);
    v = ps_value_image(NULL, 5);
    KT_ASSERT_EQ(ps_value_check(&v, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "no data");
    v = ps_value_image(b, sizeof(b));
    v.will_init = false;
    KT_ASSERT_EQ(ps_value_check(&v, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "will_init");
    v = ps_value_record((enum ps_value_kind)0, false, b, sizeof(b));
    KT_ASSERT_EQ(ps_value_check(&v, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "kind 0");
    v = ps_value_record(PS_VALUE_NATIVE_RECORD, false, b, PS_VALUE_MAX_LEN + 1);
    KT_ASSERT_EQ(ps_value_check(&v, &err), KC_ETOOBIG);
    KT_ASSERT(err.detail[0] != '\0');
    v.len = PS_VALUE_MAX_LEN;
    KT_ASSERT_EQ(ps_value_check(&v, NULL), 0);
}
