/* SPDX-License-Identifier: Apache-2.0 */
/* hashmap_test.c -- unit tests for hashmap.c, checked against a plain array. */
#include "common/hashmap.h"

#include <stdlib.h>

#include "unit.h"

static bool count_cb(void *arg, const void *key, uint64_t value)
{
    uint32_t k;
    memcpy(&k, key, sizeof(k));
    KT_ASSERT_UEQ(value, (uint64_t)k * 3);
    (*(size_t *)arg)++;
    return true;
}

KT_TEST(hmap_matches_a_model_under_random_operations)
{
    enum { N = 5000 };
    static uint64_t model[N];
    static bool present[N];
    struct kc_hmap *m = kc_hmap_create(sizeof(uint32_t));
    unsigned seed = 42;
    size_t n = 0, visited = 0;

    for (int step = 0; step < 200000; step++) {
        uint32_t k = (uint32_t)(rand_r(&seed) % N);
        int op = rand_r(&seed) % 3;
        uint64_t v;

        if (op == 0) {
            kc_hmap_put(m, &k, (uint64_t)k * 3);
            n += !present[k];
            present[k] = true;
            model[k] = (uint64_t)k * 3;
        } else if (op == 1) {
            KT_ASSERT_EQ(kc_hmap_remove(m, &k), present[k]);
            n -= present[k];
            present[k] = false;
        } else {
            KT_ASSERT_EQ(kc_hmap_get(m, &k, &v), present[k]);
            if (present[k])
                KT_ASSERT_UEQ(v, model[k]);
        }
        KT_ASSERT_EQ(kc_hmap_count(m), n);
    }
    kc_hmap_foreach(m, count_cb, &visited);
    KT_ASSERT_EQ(visited, n);
    kc_hmap_destroy(m);
}

KT_TEST(hmap_replace_and_wide_keys)
{
    struct kc_hmap *m = kc_hmap_create(18);
    uint8_t k[18] = {0};
    uint64_t v = 0;

    for (int i = 0; i < 1000; i++) {
        k[17] = (uint8_t)i;
        k[3] = (uint8_t)(i >> 8);
        kc_hmap_put(m, k, (uint64_t)i);
        kc_hmap_put(m, k, (uint64_t)i + 1);
    }
    KT_ASSERT_EQ(kc_hmap_count(m), 1000);
    k[17] = 7;
    k[3] = 0;
    KT_ASSERT(kc_hmap_get(m, k, &v));
    KT_ASSERT_UEQ(v, 8);
    kc_hmap_destroy(m);
}
