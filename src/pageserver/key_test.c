/* SPDX-License-Identifier: Apache-2.0 */
/* key_test.c -- unit tests for key.c. */
#include "pageserver/key.h"

#include "unit.h"

KT_TEST(key_fields_roundtrip_and_text)
{
    struct ps_key k = ps_key_rel_block(1663, 5, 16384, 2, 77), p;
    uint8_t f1, f5;
    uint32_t f2, f3, f4, f6;
    char buf[PS_KEY_STRLEN];

    ps_key_fields(&k, &f1, &f2, &f3, &f4, &f5, &f6);
    KT_ASSERT_EQ(f1, 0);
    KT_ASSERT_EQ(f2, 1663);
    KT_ASSERT_EQ(f3, 5);
    KT_ASSERT_EQ(f4, 16384);
    KT_ASSERT_EQ(f5, 2);
    KT_ASSERT_EQ(f6, 77);
    KT_ASSERT_STR_EQ(ps_key_format(&k, buf), "000000067f000000050000400002"
                                             "0000004d");
    KT_ASSERT_EQ(ps_key_parse(buf, &p, NULL), 0);
    KT_ASSERT(ps_key_eq(&k, &p));
    KT_ASSERT_EQ(ps_key_parse("000000067F0000000500004000020000004D", &p, NULL), 0);
    KT_ASSERT(ps_key_eq(&k, &p));
}

KT_TEST(key_order_keeps_related_things_together)
{
    struct ps_key blk0 = ps_key_rel_block(1663, 5, 16384, 0, 0);
    struct ps_key blk_last = ps_key_rel_block(1663, 5, 16384, 0, 0xFFFFFFFE);
    struct ps_key size = ps_key_rel_size(1663, 5, 16384, 0);
    struct ps_key fsm0 = ps_key_rel_block(1663, 5, 16384, 1, 0);
    struct ps_key relmap = ps_key_relmap(1663, 5);
    struct ps_key reldir = ps_key_rel_dir(1663, 5);
    struct ps_key slru = ps_key_slru_block(PS_SLRU_CLOG, 0, 0);
    struct ps_key min = ps_key_min(), max = ps_key_max();

    KT_ASSERT(ps_key_cmp(&relmap, &reldir) < 0);
    KT_ASSERT(ps_key_cmp(&reldir, &blk0) < 0);
    KT_ASSERT(ps_key_cmp(&blk0, &blk_last) < 0);
    KT_ASSERT(ps_key_cmp(&blk_last, &size) < 0); /* size right after the last block */
    KT_ASSERT(ps_key_cmp(&size, &fsm0) < 0);
    KT_ASSERT(ps_key_cmp(&fsm0, &slru) < 0);
    KT_ASSERT(ps_key_cmp(&min, &relmap) < 0 && ps_key_cmp(&slru, &max) < 0);
    KT_ASSERT(ps_key_is_rel_block(&blk0) && !ps_key_is_rel_block(&size));
    KT_ASSERT(!ps_key_is_rel_block(&relmap) && !ps_key_is_rel_block(&reldir));
    KT_ASSERT(ps_key_is_slru_block(&slru) && !ps_key_is_slru_block(&blk0));
    KT_ASSERT(!ps_key_is_slru_block(&(struct ps_key){0}));
}

KT_TEST(key_next)
{
    struct ps_key k = ps_key_rel_block(1, 2, 3, 0, 0xFFFFFFFF), n = ps_key_next(&k);
    struct ps_key max = ps_key_max(), min = ps_key_min(), wrap = ps_key_next(&max);
    uint8_t f5;
    uint32_t f6;

    ps_key_fields(&n, NULL, NULL, NULL, NULL, &f5, &f6);
    KT_ASSERT_EQ(f5, 1);
    KT_ASSERT_EQ(f6, 0);
    KT_ASSERT(ps_key_cmp(&k, &n) < 0);
    KT_ASSERT(ps_key_eq(&wrap, &min));
}

KT_TEST(key_parse_rejects_malformed)
{
    static const char *const bad[] = {"",
                                      "00",
                                      "000000067f0000000500004000020000004",
                                      "000000067f0000000500004000020000004d0",
                                      "000000067f00000005000040000200000g4d",
                                      " 00000067f00000005000040000200000004d"};
    struct ps_key k;
    struct kc_error err;

    for (size_t i = 0; i < KC_ARRAY_LEN(bad); i++) {
        KT_ASSERT_EQ(ps_key_parse(bad[i], &k, &err), KC_EINVAL);
        KT_ASSERT_CONTAINS(err.message, "invalid key");
    }
}
