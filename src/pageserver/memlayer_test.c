/* SPDX-License-Identifier: Apache-2.0 */
/* memlayer_test.c -- unit tests for memlayer.c. */
#include "pageserver/memlayer.h"

#include <stdio.h>

#include "unit.h"

struct seen {
    kc_lsn lsns[16];
    char text[16][16];
    int n;
};

static int collect(void *arg, kc_lsn lsn, const struct ps_value *v)
{
    struct seen *s = arg;
    s->lsns[s->n] = lsn;
    snprintf(s->text[s->n], sizeof(s->text[0]), "%.*s", (int)v->len, (const char *)v->data);
    s->n++;
    return 0;
}

static void put_rec(struct ps_memlayer *m, struct ps_key k, kc_lsn lsn, const char *text, bool init)
{
    struct ps_value v = ps_value_record(PS_VALUE_PG_RECORD, init, text, (uint32_t)strlen(text));
    KT_ASSERT_EQ(ps_memlayer_put(m, &k, lsn, &v, NULL), 0);
}

KT_TEST(memlayer_search_newest_first_until_chain_ends)
{
    struct ps_memlayer *m = ps_memlayer_create(100);
    struct ps_key k = ps_key_rel_block(1663, 5, 16384, 0, 7);
    struct ps_value img = ps_value_image("IMG", 3);
    enum ps_search_result r;
    struct seen s = {0};

    put_rec(m, k, 110, "r1", false);
    KT_ASSERT_EQ(ps_memlayer_put(m, &k, 120, &img, NULL), 0);
    put_rec(m, k, 130, "r2", false);
    put_rec(m, k, 140, "r3", false);

    KT_ASSERT_EQ(ps_memlayer_search(m, &k, 135, collect, &s, &r, NULL), 0);
    KT_ASSERT_EQ(r, PS_SEARCH_COMPLETE);
    KT_ASSERT_EQ(s.n, 2);
    KT_ASSERT_STR_EQ(s.text[0], "r2");
    KT_ASSERT_STR_EQ(s.text[1], "IMG");

    s.n = 0;
    KT_ASSERT_EQ(ps_memlayer_search(m, &k, 115, collect, &s, &r, NULL), 0);
    KT_ASSERT_EQ(r, PS_SEARCH_CONTINUE); /* r1 needs an older base */
    KT_ASSERT_EQ(s.n, 1);
    KT_ASSERT_UEQ(s.lsns[0], 110);
    KT_ASSERT_EQ(ps_memlayer_nvalues(m), 4);
    KT_ASSERT_UEQ(ps_memlayer_end_lsn(m), 140);
    ps_memlayer_destroy(m);
}

KT_TEST(memlayer_drop_hides_older_values_only)
{
    struct ps_memlayer *m = ps_memlayer_create(100);
    struct ps_key k = ps_key_rel_block(1663, 5, 16384, 0, 1);
    struct ps_key other = ps_key_rel_block(1663, 5, 16385, 0, 1);
    struct ps_key start = ps_key_rel_block(1663, 5, 16384, 0, 0);
    struct ps_key end = ps_key_rel_block(1663, 5, 16385, 0, 0);
    enum ps_search_result r;
    struct seen s = {0};

    put_rec(m, k, 110, "old", true);
    put_rec(m, other, 110, "keep", true);
    KT_ASSERT_EQ(ps_memlayer_drop(m, &start, &end, 120, NULL), 0);
    put_rec(m, k, 130, "new", false);

    /* Before the drop: the old value. */
    KT_ASSERT_EQ(ps_memlayer_search(m, &k, 115, collect, &s, &r, NULL), 0);
    KT_ASSERT_EQ(r, PS_SEARCH_COMPLETE);
    KT_ASSERT_STR_EQ(s.text[0], "old");
    /* At the drop: absent. */
    s.n = 0;
    KT_ASSERT_EQ(ps_memlayer_search(m, &k, 120, collect, &s, &r, NULL), 0);
    KT_ASSERT_EQ(r, PS_SEARCH_ABSENT);
    KT_ASSERT_EQ(s.n, 0);
    /* After it: the new record on an empty base, never the old value. */
    s.n = 0;
    KT_ASSERT_EQ(ps_memlayer_search(m, &k, 200, collect, &s, &r, NULL), 0);
    KT_ASSERT_EQ(r, PS_SEARCH_ABSENT);
    KT_ASSERT_EQ(s.n, 1);
    KT_ASSERT_STR_EQ(s.text[0], "new");
    /* Outside the range: untouched. */
    s.n = 0;
    KT_ASSERT_EQ(ps_memlayer_search(m, &other, 200, collect, &s, &r, NULL), 0);
    KT_ASSERT_EQ(r, PS_SEARCH_COMPLETE);
    KT_ASSERT_STR_EQ(s.text[0], "keep");
    KT_ASSERT_UEQ(ps_memlayer_drop_lsn(m, &k, 500), 120);
    KT_ASSERT_UEQ(ps_memlayer_drop_lsn(m, &k, 119), 0);
    ps_memlayer_destroy(m);
}

static int iter_cb(void *arg, const struct ps_key *key, kc_lsn lsn, const struct ps_value *v)
{
    struct seen *s = arg;
    uint32_t blk;
    (void)v;
    ps_key_fields(key, NULL, NULL, NULL, NULL, NULL, &blk);
    s->lsns[s->n++] = ((kc_lsn)blk << 32) | lsn;
    return 0;
}

KT_TEST(memlayer_iterate_in_key_lsn_order_and_rules)
{
    struct ps_memlayer *m = ps_memlayer_create(100);
    struct ps_key k1 = ps_key_rel_block(1, 1, 1, 0, 1), k2 = ps_key_rel_block(1, 1, 1, 0, 2);
    struct seen s = {0};
    struct kc_error err;
    struct ps_value v = ps_value_record(PS_VALUE_PG_RECORD, false, "x", 1);

    put_rec(m, k2, 105, "a", false);
    put_rec(m, k1, 106, "b", false);
    put_rec(m, k2, 107, "c", false);
    KT_ASSERT_EQ(ps_memlayer_iterate(m, iter_cb, &s), 0);
    KT_ASSERT_EQ(s.n, 3);
    KT_ASSERT_UEQ(s.lsns[0], (1ULL << 32) | 106);
    KT_ASSERT_UEQ(s.lsns[1], (2ULL << 32) | 105);
    KT_ASSERT_UEQ(s.lsns[2], (2ULL << 32) | 107);
    /* Writes at or below the start LSN, out of order, or after freezing are refused. */
    KT_ASSERT_EQ(ps_memlayer_put(m, &k1, 100, &v, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_memlayer_put(m, &k1, 105, &v, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_memlayer_drop(m, &k2, &k1, 200, &err), KC_EINVAL);
    ps_memlayer_freeze(m);
    KT_ASSERT_EQ(ps_memlayer_put(m, &k1, 300, &v, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "frozen");
    ps_memlayer_destroy(m);
}
