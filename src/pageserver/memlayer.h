/* SPDX-License-Identifier: Apache-2.0 */
/*
 * memlayer.h -- the open, in-memory layer of a timeline.
 *
 * Ingest writes every value and range drop into the timeline's open
 * in-memory layer; when it grows large or old it is frozen (no more writes)
 * and flushed as an L0 delta layer file, while a new one takes the writes.
 * Readers search it first, newest value first.
 *
 * A range drop ("tombstone") at LSN T hides, for every key in its range,
 * every value at an LSN <= T, in this layer and in every older layer: a
 * read at LSN >= T of a dropped key finds it absent (a relation page then
 * reads as zeros).
 *
 * Values are kept in an append-only arena; keys in a hash map from key to
 * that key's values, in LSN order. Not thread-safe: the timeline locks.
 */
#ifndef PS_MEMLAYER_H
#define PS_MEMLAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/lsn.h"
#include "pageserver/key.h"
#include "pageserver/value.h"

struct ps_memlayer;

/* A layer whose values all have LSN > start_lsn. Freed with ps_memlayer_destroy. */
struct ps_memlayer *ps_memlayer_create(kc_lsn start_lsn);
void ps_memlayer_destroy(struct ps_memlayer *m);

/* Store v (copied) for key at lsn, which must be > the layer's start LSN. */
int ps_memlayer_put(struct ps_memlayer *m, const struct ps_key *key, kc_lsn lsn,
                    const struct ps_value *v, struct kc_error *err) KC_MUSTCHECK;
/* Drop [start, end) at lsn (see the top of this file). */
int ps_memlayer_drop(struct ps_memlayer *m, const struct ps_key *start, const struct ps_key *end,
                     kc_lsn lsn, struct kc_error *err) KC_MUSTCHECK;

/* What a search of one layer concluded about a key. */
enum ps_search_result {
    PS_SEARCH_CONTINUE = 0, /* not complete here: search older layers below the bound */
    PS_SEARCH_COMPLETE = 1, /* the values collected end the chain (image or will_init) */
    PS_SEARCH_ABSENT = 2    /* a drop hides everything older: the key does not exist */
};

/*
 * ps_memlayer_search -- visit the values of key with LSN <= lsn, newest
 * first, calling visit() for each (its value's bytes are valid during the
 * call). Stops after a value that ends the chain (COMPLETE), at a drop
 * covering the key (ABSENT; values at or below the drop's LSN are not
 * visited), or when this layer has nothing older (CONTINUE). *floor is set
 * to the LSN below which older layers must be searched: the drop's LSN for
 * ABSENT, else the layer's start LSN. visit() returning non-zero stops the
 * search and is returned as an error.
 */
int ps_memlayer_search(const struct ps_memlayer *m, const struct ps_key *key, kc_lsn lsn,
                       int (*visit)(void *arg, kc_lsn lsn, const struct ps_value *v), void *arg,
                       enum ps_search_result *result, struct kc_error *err) KC_MUSTCHECK;

/* The newest drop covering key with LSN <= lsn, or 0 when none. */
kc_lsn ps_memlayer_drop_lsn(const struct ps_memlayer *m, const struct ps_key *key, kc_lsn lsn);

/*
 * ps_memlayer_iterate -- every value in (key, LSN) order, for writing the
 * layer to a file. visit() returning non-zero stops and is returned.
 */
int ps_memlayer_iterate(const struct ps_memlayer *m,
                        int (*visit)(void *arg, const struct ps_key *key, kc_lsn lsn,
                                     const struct ps_value *v),
                        void *arg) KC_MUSTCHECK;

/* A drop, as stored: [start, end) at lsn. */
struct ps_drop {
    struct ps_key start, end;
    kc_lsn lsn;
};
/* The drops, in the order they were made (LSN order); *n set to their count. */
const struct ps_drop *ps_memlayer_drops(const struct ps_memlayer *m, size_t *n);

kc_lsn ps_memlayer_start_lsn(const struct ps_memlayer *m);
/* Highest LSN written (the start LSN while empty). */
kc_lsn ps_memlayer_end_lsn(const struct ps_memlayer *m);
/* Bytes of value data held (the flush threshold looks at this). */
size_t ps_memlayer_bytes(const struct ps_memlayer *m);
size_t ps_memlayer_nvalues(const struct ps_memlayer *m);
/* After freezing, puts and drops are refused (KC_EINVAL). */
void ps_memlayer_freeze(struct ps_memlayer *m);
bool ps_memlayer_frozen(const struct ps_memlayer *m);

#endif
