/* SPDX-License-Identifier: Apache-2.0 */
/* hashmap.c -- open-addressing hash map with fixed-size keys. See hashmap.h. */
#include "common/hashmap.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

enum { SLOT_EMPTY = 0, SLOT_FULL = 1, SLOT_DELETED = 2 };

struct kc_hmap {
    size_t key_len;   /* bytes per key */
    size_t cap;       /* slots; a power of two */
    size_t count;     /* full slots */
    size_t used;      /* full + deleted slots (probe chains) */
    uint8_t *state;   /* per slot: SLOT_* */
    uint8_t *keys;    /* cap * key_len bytes */
    uint64_t *values; /* cap values */
};

/* FNV-1a, then a final mix so low bits depend on every byte. */
static uint64_t kc_hmap_hash(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static void kc_hmap_alloc(struct kc_hmap *m, size_t cap)
{
    m->cap = cap;
    m->count = m->used = 0;
    m->state = kc_calloc(cap, 1);
    m->keys = kc_malloc(cap * m->key_len);
    m->values = kc_malloc(cap * sizeof(uint64_t));
}

struct kc_hmap *kc_hmap_create(size_t key_len)
{
    struct kc_hmap *m = kc_calloc(1, sizeof(*m));

    if (key_len == 0 || key_len > KC_HMAP_MAX_KEY)
        abort(); /* caller bug: a constant of our own */
    m->key_len = key_len;
    kc_hmap_alloc(m, 16);
    return m;
}

void kc_hmap_destroy(struct kc_hmap *m)
{
    if (m == NULL)
        return;
    free(m->state);
    free(m->keys);
    free(m->values);
    free(m);
}

/* Slot holding key, or SIZE_MAX. */
static size_t kc_hmap_find(const struct kc_hmap *m, const void *key)
{
    size_t mask = m->cap - 1, i = (size_t)kc_hmap_hash(key, m->key_len) & mask;

    for (size_t n = 0; n < m->cap; n++, i = (i + 1) & mask) {
        if (m->state[i] == SLOT_EMPTY)
            return SIZE_MAX;
        if (m->state[i] == SLOT_FULL && memcmp(m->keys + i * m->key_len, key, m->key_len) == 0)
            return i;
    }
    return SIZE_MAX;
}

static void kc_hmap_grow(struct kc_hmap *m)
{
    struct kc_hmap old = *m;
    size_t cap = m->count * 4 >= m->cap ? m->cap * 2 : m->cap; /* else just drop tombstones */

    kc_hmap_alloc(m, cap);
    for (size_t i = 0; i < old.cap; i++)
        if (old.state[i] == SLOT_FULL)
            kc_hmap_put(m, old.keys + i * old.key_len, old.values[i]);
    free(old.state);
    free(old.keys);
    free(old.values);
}

void kc_hmap_put(struct kc_hmap *m, const void *key, uint64_t value)
{
    size_t mask, i, slot = SIZE_MAX;

    i = kc_hmap_find(m, key);
    if (i != SIZE_MAX) {
        m->values[i] = value;
        return;
    }
    if ((m->used + 1) * 4 > m->cap * 3)
        kc_hmap_grow(m);
    mask = m->cap - 1;
    i = (size_t)kc_hmap_hash(key, m->key_len) & mask;
    while (slot == SIZE_MAX) {
        if (m->state[i] != SLOT_FULL)
            slot = i;
        i = (i + 1) & mask;
    }
    if (m->state[slot] == SLOT_EMPTY)
        m->used++;
    m->state[slot] = SLOT_FULL;
    memcpy(m->keys + slot * m->key_len, key, m->key_len);
    m->values[slot] = value;
    m->count++;
}

bool kc_hmap_get(const struct kc_hmap *m, const void *key, uint64_t *value)
{
    size_t i = kc_hmap_find(m, key);

    if (i == SIZE_MAX)
        return false;
    if (value != NULL)
        *value = m->values[i];
    return true;
}

bool kc_hmap_remove(struct kc_hmap *m, const void *key)
{
    size_t i = kc_hmap_find(m, key);

    if (i == SIZE_MAX)
        return false;
    m->state[i] = SLOT_DELETED;
    m->count--;
    return true;
}

size_t kc_hmap_count(const struct kc_hmap *m)
{
    return m->count;
}

void kc_hmap_foreach(const struct kc_hmap *m,
                     bool (*fn)(void *arg, const void *key, uint64_t value), void *arg)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->state[i] == SLOT_FULL && !fn(arg, m->keys + i * m->key_len, m->values[i]))
            return;
}
