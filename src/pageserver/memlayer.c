/* SPDX-License-Identifier: Apache-2.0 */
/* memlayer.c -- the open in-memory layer: values by key, range drops. See memlayer.h. */
#include "pageserver/memlayer.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/hashmap.h"

/* One value of one key. */
struct ps_memval {
    kc_lsn lsn;
    uint64_t off; /* in the arena */
    uint32_t len;
    uint8_t kind; /* enum ps_value_kind */
    bool will_init;
};

/* All values of one key, in LSN order. */
struct ps_memkey {
    struct ps_key key;
    struct ps_memval *vals;
    uint32_t n, cap;
};

struct ps_memlayer {
    kc_lsn start_lsn;
    kc_lsn end_lsn;
    bool frozen;
    struct kc_hmap *index; /* key bytes -> index in keys[] */
    struct ps_memkey *keys;
    size_t nkeys, keys_cap;
    size_t nvalues;
    struct kc_sbuf arena; /* value bytes */
    struct ps_drop *drops;
    size_t ndrops, drops_cap;
};

struct ps_memlayer *ps_memlayer_create(kc_lsn start_lsn)
{
    struct ps_memlayer *m = kc_calloc(1, sizeof(*m));

    m->start_lsn = m->end_lsn = start_lsn;
    m->index = kc_hmap_create(PS_KEY_LEN);
    return m;
}

void ps_memlayer_destroy(struct ps_memlayer *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nkeys; i++)
        free(m->keys[i].vals);
    free(m->keys);
    free(m->drops);
    kc_sbuf_fini(&m->arena);
    kc_hmap_destroy(m->index);
    free(m);
}

static int ps_memlayer_check_write(struct ps_memlayer *m, kc_lsn lsn, struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    if (m->frozen)
        return kc_error_set(err, KC_EINVAL, "in-memory layer is frozen");
    if (lsn <= m->start_lsn)
        return kc_error_set(err, KC_EINVAL, "LSN %s is not above the layer's start %s",
                            kc_lsn_format(lsn, a), kc_lsn_format(m->start_lsn, b));
    return 0;
}

int ps_memlayer_put(struct ps_memlayer *m, const struct ps_key *key, kc_lsn lsn,
                    const struct ps_value *v, struct kc_error *err)
{
    struct ps_memkey *mk;
    uint64_t idx;
    int rc = ps_memlayer_check_write(m, lsn, err);

    if (rc == 0)
        rc = ps_value_check(v, err);
    if (rc != 0)
        return rc;
    if (!kc_hmap_get(m->index, key->b, &idx)) {
        if (m->nkeys == m->keys_cap) {
            m->keys_cap = m->keys_cap ? m->keys_cap * 2 : 1024;
            m->keys = kc_realloc(m->keys, m->keys_cap * sizeof(*m->keys));
        }
        idx = m->nkeys++;
        m->keys[idx] = (struct ps_memkey){.key = *key};
        kc_hmap_put(m->index, key->b, idx);
    }
    mk = &m->keys[idx];
    if (mk->n > 0 && mk->vals[mk->n - 1].lsn > lsn)
        return kc_error_set(err, KC_EINVAL, "values of a key must be put in LSN order");
    if (mk->n == mk->cap) {
        mk->cap = mk->cap ? mk->cap * 2 : 2;
        mk->vals = kc_realloc(mk->vals, mk->cap * sizeof(*mk->vals));
    }
    mk->vals[mk->n++] = (struct ps_memval){.lsn = lsn,
                                           .off = m->arena.len,
                                           .len = v->len,
                                           .kind = (uint8_t)v->kind,
                                           .will_init = v->will_init};
    kc_sbuf_append(&m->arena, v->data, v->len);
    m->nvalues++;
    if (lsn > m->end_lsn)
        m->end_lsn = lsn;
    return 0;
}

int ps_memlayer_drop(struct ps_memlayer *m, const struct ps_key *start, const struct ps_key *end,
                     kc_lsn lsn, struct kc_error *err)
{
    int rc = ps_memlayer_check_write(m, lsn, err);

    if (rc != 0)
        return rc;
    if (ps_key_cmp(start, end) >= 0)
        return kc_error_set(err, KC_EINVAL, "empty key range to drop");
    if (m->ndrops > 0 && m->drops[m->ndrops - 1].lsn > lsn)
        return kc_error_set(err, KC_EINVAL, "drops must come in LSN order");
    if (m->ndrops == m->drops_cap) {
        m->drops_cap = m->drops_cap ? m->drops_cap * 2 : 16;
        m->drops = kc_realloc(m->drops, m->drops_cap * sizeof(*m->drops));
    }
    m->drops[m->ndrops++] = (struct ps_drop){*start, *end, lsn};
    if (lsn > m->end_lsn)
        m->end_lsn = lsn;
    return 0;
}

kc_lsn ps_memlayer_drop_lsn(const struct ps_memlayer *m, const struct ps_key *key, kc_lsn lsn)
{
    /* Newest first; drops are few (one per dropped relation or database). */
    for (size_t i = m->ndrops; i-- > 0;) {
        const struct ps_drop *d = &m->drops[i];
        if (d->lsn <= lsn && ps_key_cmp(key, &d->start) >= 0 && ps_key_cmp(key, &d->end) < 0)
            return d->lsn;
    }
    return 0;
}

int ps_memlayer_search(const struct ps_memlayer *m, const struct ps_key *key, kc_lsn lsn,
                       int (*visit)(void *arg, kc_lsn lsn, const struct ps_value *v), void *arg,
                       enum ps_search_result *result, struct kc_error *err)
{
    kc_lsn drop = ps_memlayer_drop_lsn(m, key, lsn);
    uint64_t idx;

    *result = drop != 0 ? PS_SEARCH_ABSENT : PS_SEARCH_CONTINUE;
    if (!kc_hmap_get(m->index, key->b, &idx))
        return 0;
    {
        const struct ps_memkey *mk = &m->keys[idx];
        for (uint32_t i = mk->n; i-- > 0;) {
            const struct ps_memval *mv = &mk->vals[i];
            struct ps_value v;
            int rc;

            if (mv->lsn > lsn)
                continue;
            if (mv->lsn <= drop)
                break; /* hidden by the drop: *result stays ABSENT */
            v = ps_value_record((enum ps_value_kind)mv->kind, mv->will_init,
                                m->arena.data + mv->off, mv->len);
            rc = visit(arg, mv->lsn, &v);
            if (rc != 0)
                return kc_error_set(err, rc, "search of the in-memory layer stopped");
            if (ps_value_ends_chain(&v)) {
                *result = PS_SEARCH_COMPLETE;
                return 0;
            }
        }
    }
    return 0;
}

static int ps_memkey_cmp(const void *a, const void *b)
{
    const struct ps_memkey *const *x = a, *const *y = b;
    return ps_key_cmp(&(*x)->key, &(*y)->key);
}

int ps_memlayer_iterate(const struct ps_memlayer *m,
                        int (*visit)(void *arg, const struct ps_key *key, kc_lsn lsn,
                                     const struct ps_value *v),
                        void *arg)
{
    const struct ps_memkey **order = kc_malloc((m->nkeys ? m->nkeys : 1) * sizeof(*order));
    int rc = 0;

    for (size_t i = 0; i < m->nkeys; i++)
        order[i] = &m->keys[i];
    qsort(order, m->nkeys, sizeof(*order), ps_memkey_cmp);
    for (size_t i = 0; i < m->nkeys && rc == 0; i++) {
        for (uint32_t j = 0; j < order[i]->n && rc == 0; j++) {
            const struct ps_memval *mv = &order[i]->vals[j];
            struct ps_value v = ps_value_record((enum ps_value_kind)mv->kind, mv->will_init,
                                                m->arena.data + mv->off, mv->len);
            rc = visit(arg, &order[i]->key, mv->lsn, &v);
        }
    }
    free(order);
    return rc;
}

const struct ps_drop *ps_memlayer_drops(const struct ps_memlayer *m, size_t *n)
{
    *n = m->ndrops;
    return m->drops;
}

kc_lsn ps_memlayer_start_lsn(const struct ps_memlayer *m)
{
    return m->start_lsn;
}

kc_lsn ps_memlayer_end_lsn(const struct ps_memlayer *m)
{
    return m->end_lsn;
}

size_t ps_memlayer_bytes(const struct ps_memlayer *m)
{
    return m->arena.len;
}

size_t ps_memlayer_nvalues(const struct ps_memlayer *m)
{
    return m->nvalues;
}

void ps_memlayer_freeze(struct ps_memlayer *m)
{
    m->frozen = true;
}

bool ps_memlayer_frozen(const struct ps_memlayer *m)
{
    return m->frozen;
}
