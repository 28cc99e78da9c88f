/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hashmap.h -- a hash map from fixed-size byte keys to 64-bit values.
 *
 * Open addressing with linear probing; grows at 3/4 load and never shrinks.
 * Keys are copied in; every key of one map has the same length (set at
 * creation, at most KC_HMAP_MAX_KEY bytes). Not thread-safe: callers lock.
 */
#ifndef KC_HASHMAP_H
#define KC_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KC_HMAP_MAX_KEY 64

struct kc_hmap;

/* A map for keys of key_len bytes; freed with kc_hmap_destroy(). */
struct kc_hmap *kc_hmap_create(size_t key_len);
void kc_hmap_destroy(struct kc_hmap *m);

/* Insert or replace. */
void kc_hmap_put(struct kc_hmap *m, const void *key, uint64_t value);
/* True and *value set when key is present. value may be NULL. */
bool kc_hmap_get(const struct kc_hmap *m, const void *key, uint64_t *value);
/* Remove key; true when it was present. */
bool kc_hmap_remove(struct kc_hmap *m, const void *key);
size_t kc_hmap_count(const struct kc_hmap *m);

/*
 * Visit every entry (in no particular order). The callback may not modify
 * the map; it returns false to stop early.
 */
void kc_hmap_foreach(const struct kc_hmap *m,
                     bool (*fn)(void *arg, const void *key, uint64_t value), void *arg);

#endif
