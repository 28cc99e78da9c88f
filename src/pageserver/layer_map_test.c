/* SPDX-License-Identifier: Apache-2.0 */
/* layer_map_test.c -- unit tests for layer_map.c: collected values, maps, the search order. */
#include "pageserver/layer_map.h"

#include <stdio.h>

#include "unit.h"

static const struct kc_id kt_tenant = {{9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};
static const struct kc_id kt_tl = {{8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};

KT_TEST(layer_map_values_finish_oldest_first)
{
    struct ps_values v;
    struct ps_value rec = ps_value_record(PS_VALUE_PG_RECORD, false, "r2", 2);
    struct ps_value img = ps_value_image("base", 4);
    uint8_t *space;

    ps_values_init(&v);
    ps_values_push(&v, 0x30, &rec);
    KT_ASSERT(!ps_values_chain_ended(&v));
    /* Bytes written in place are taken without a copy. */
    space = ps_values_space(&v, 2);
    memcpy(space, "r1", 2);
    rec.data = space;
    ps_values_push(&v, 0x20, &rec);
    ps_values_push(&v, 0x10, &img);
    KT_ASSERT(ps_values_chain_ended(&v));
    ps_values_finish(&v, true);
    KT_ASSERT(v.complete && v.has_base);
    KT_ASSERT_UEQ(v.base.lsn, 0x10);
    KT_ASSERT_MEM_EQ(v.base.v.data, "base", 4);
    KT_ASSERT_EQ(v.nrecords, 2);
    KT_ASSERT_UEQ(v.records[0].lsn, 0x20);
    KT_ASSERT_MEM_EQ(v.records[0].v.data, "r1", 2);
    KT_ASSERT_UEQ(v.records[1].lsn, 0x30);
    KT_ASSERT_MEM_EQ(v.records[1].v.data, "r2", 2);
    /* Reset keeps nothing but memory; an empty result is "absent". */
    ps_values_reset(&v);
    ps_values_finish(&v, false);
    KT_ASSERT(!v.complete && !v.has_base && v.nrecords == 0);
    ps_values_fini(&v);
}

/* A frozen in-memory layer over (start, end] with "<tag>" put on key at each LSN of lsns. */
static struct ps_layer *kt_mem(kc_lsn start, kc_lsn end, const struct ps_key *key,
                               const kc_lsn *lsns, size_t n, const char *tag, bool image)
{
    struct ps_memlayer *m = ps_memlayer_create(start);

    for (size_t i = 0; i < n; i++) {
        struct ps_value v = image && i == 0 ? ps_value_image(tag, (uint32_t)strlen(tag))
                                            : ps_value_record(PS_VALUE_PG_RECORD, false, tag,
                                                              (uint32_t)strlen(tag));
        KT_ASSERT_EQ(ps_memlayer_put(m, key, lsns[i], &v, NULL), 0);
    }
    ps_memlayer_freeze(m);
    return ps_layer_from_memlayer(m, &kt_tenant, &kt_tl, end);
}

KT_TEST(layer_map_search_goes_newest_first_and_checks_overlaps)
{
    struct ps_key k = ps_key_rel_block(1663, 5, 16384, 0, 1);
    static const kc_lsn a[] = {0x110, 0x120}, b[] = {0x150}, c[] = {0x190};
    struct ps_layer *l1 = kt_mem(0x100, 0x140, &k, a, 2, "one", true);
    struct ps_layer *l2 = kt_mem(0x140, 0x180, &k, b, 1, "two", false);
    struct ps_layer *l3 = kt_mem(0x180, 0x1C0, &k, c, 1, "three", false);
    struct ps_layer_map *m0 = ps_layer_map_create(), *m1, *m2, *m3;
    enum ps_search_result r;
    struct ps_values v;
    struct kc_error err;
    kc_lsn cur;

    m1 = ps_layer_map_edit(m0, l2, NULL);
    m2 = ps_layer_map_edit(m1, l1, NULL);
    m3 = ps_layer_map_edit(m2, l3, NULL);
    KT_ASSERT_EQ(m3->n, 3);
    KT_ASSERT(m3->layers[0] == l3 && m3->layers[2] == l1); /* newest first */
    KT_ASSERT(ps_layer_map_oldest_mem(m3) == l1);
    KT_ASSERT_EQ(ps_layer_map_nmem(m3), 3);
    KT_ASSERT_UEQ(l2->desc.lsn_start, 0x141);
    KT_ASSERT_UEQ(l2->desc.lsn_end, 0x181);
    /* An overlapping delta is refused; an image inside a delta is fine. */
    KT_ASSERT_EQ(ps_layer_map_check_add(m3, &l2->desc, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "overlaps");
    {
        struct ps_layer_desc img;
        ps_layer_desc_image(&img, &kt_tenant, &kt_tl, &k, &(struct ps_key){{0xFF}}, 0x150);
        KT_ASSERT_EQ(ps_layer_map_check_add(m3, &img, &err), 0);
    }
    /* The search visits l3, l2, l1 and stops at l1's image. */
    ps_values_init(&v);
    cur = UINT64_MAX;
    KT_ASSERT_EQ(ps_layer_map_search(m3, &k, &cur, &v, &r, &err), 0);
    KT_ASSERT_EQ(r, PS_SEARCH_COMPLETE);
    ps_values_finish(&v, true);
    KT_ASSERT(v.has_base && v.base.lsn == 0x110 && v.nrecords == 3);
    KT_ASSERT_UEQ(v.records[0].lsn, 0x120);
    KT_ASSERT_UEQ(v.records[2].lsn, 0x190);
    /* Below every value: nothing, and cur says where an ancestor would go on. */
    ps_values_reset(&v);
    cur = 0x10F;
    KT_ASSERT_EQ(ps_layer_map_search(m3, &k, &cur, &v, &r, &err), 0);
    KT_ASSERT_EQ(r, PS_SEARCH_CONTINUE);
    KT_ASSERT_UEQ(cur, 0x100); /* below l1's LSN range */
    /* Without l1 the chain stays open and the search ends below l2. */
    ps_values_reset(&v);
    ps_layer_map_unref(m2);
    m2 = ps_layer_map_edit(m3, NULL, l1);
    cur = 0x1FF;
    KT_ASSERT_EQ(ps_layer_map_search(m2, &k, &cur, &v, &r, &err), 0);
    KT_ASSERT_EQ(r, PS_SEARCH_CONTINUE);
    KT_ASSERT_UEQ(cur, 0x140);
    KT_ASSERT_EQ(v.n, 2);
    ps_values_fini(&v);
    /* The maps hold references: dropping ours first frees nothing early. */
    ps_layer_unref(l1);
    ps_layer_unref(l2);
    ps_layer_unref(l3);
    ps_layer_map_unref(m0);
    ps_layer_map_unref(m1);
    ps_layer_map_unref(m2);
    ps_layer_map_unref(m3);
}
