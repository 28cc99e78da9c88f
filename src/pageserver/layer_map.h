/* SPDX-License-Identifier: Apache-2.0 */
/*
 * layer_map.h -- the layers of a timeline below its open in-memory layer,
 * and the newest-first search for the values of one key across them.
 *
 * A struct ps_layer is one searchable layer: a frozen in-memory layer
 * waiting to be flushed, or an open layer file (delta or image). Layers are
 * immutable and reference-counted, so a reader keeps searching a layer that
 * a flush has just replaced.
 *
 * A struct ps_layer_map is an immutable, reference-counted set of layers.
 * The timeline publishes a new map when a layer is frozen, flushed or
 * attached; a reader takes a reference to the current map under the
 * timeline's lock and searches it without the lock.
 *
 * Invariant (checked by ps_layer_map_check_add): two delta layers whose key
 * ranges intersect never share an LSN, nor do two image layers at one LSN.
 * Image layers may lie inside a delta layer's LSN range.
 *
 * Search (ps_layer_map_search), for key at LSN <= cur: among the layers
 * whose key range holds key and that start at or below cur, visit the one
 * whose highest LSN to search, min(lsn_end - 1, cur), is largest (an image
 * layer wins a tie); search it down to, not including, the next candidate's
 * highest LSN (the floor); then continue below. Each visit costs one pass
 * over the map (O(layers)); see docs/pageserver-timeline.md for when that
 * stops being enough.
 */
#ifndef PS_LAYER_MAP_H
#define PS_LAYER_MAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/lsn.h"
#include "pageserver/key.h"
#include "pageserver/layer_file.h"
#include "pageserver/layer_reader.h"
#include "pageserver/memlayer.h"
#include "pageserver/value.h"

/* ---- the values of one key ---- */

/* One value found for a key. */
struct ps_found {
    kc_lsn lsn;        /* the LSN it was stored at */
    struct ps_value v; /* v.data points into the struct ps_values that holds it */
};

/*
 * The values collected for one key at one LSN, as a search leaves them:
 *
 *   complete    the chain ends: an image (has_base), or records[0] is a
 *               will_init record and has_base is false
 *   !complete   the key does not exist below the records (a drop, an image
 *               layer without the key, or no older history); with no
 *               records the key does not exist at all
 *
 * records are oldest first, ready to apply on top of base. Everything is
 * owned by the struct; ps_values_fini frees it.
 */
struct ps_values {
    bool complete;            /* see above */
    bool has_base;            /* base holds the image the records apply to */
    struct ps_found base;     /* when has_base */
    struct ps_found *records; /* nrecords values, oldest first (inside items) */
    size_t nrecords;
    /* Private: the collection, newest first until ps_values_finish. */
    struct ps_found *items; /* n values */
    uint64_t *offs;         /* offset of each value's bytes in bytes */
    size_t n, cap;
    struct kc_sbuf bytes; /* every value's bytes */
};

/* An empty collection (also what ps_values_reset leaves). */
void ps_values_init(struct ps_values *vals);
void ps_values_fini(struct ps_values *vals);
/* Forget the values, keep the memory. */
void ps_values_reset(struct ps_values *vals);

/*
 * Room for len more bytes at the end of vals' byte arena, valid until the
 * next call on vals: a value read there is taken by ps_values_push without
 * a copy.
 */
uint8_t *ps_values_space(struct ps_values *vals, size_t len);

/* Append v (its bytes copied, unless they sit at ps_values_space) at lsn, older than everything
 * collected so far. */
void ps_values_push(struct ps_values *vals, kc_lsn lsn, const struct ps_value *v);

/* The chain is complete when the last value pushed ends it. */
bool ps_values_chain_ended(const struct ps_values *vals);

/* Turn the collection into the result described above (complete or not). */
void ps_values_finish(struct ps_values *vals, bool complete);

/* ---- layers ---- */

/* One searchable layer; immutable but for refs. */
struct ps_layer {
    atomic_uint refs;             /* references; freed at zero */
    struct ps_layer_desc desc;    /* kind, ids, ranges */
    struct ps_memlayer *mem;      /* a frozen in-memory layer (owned), or NULL */
    struct ps_layer_reader *file; /* an open layer file (owned), or NULL */
    uint64_t file_size;           /* bytes of the file (0 for an in-memory layer) */
    char name[PS_LAYER_NAME_MAX]; /* the file name (empty for an in-memory layer) */
};

/*
 * ps_layer_from_memlayer -- a layer (one reference) over the frozen
 * in-memory layer m, which it takes over: a delta layer over all keys and
 * the LSNs [start + 1, end + 1), m's values being above its start LSN and at
 * or below end.
 */
struct ps_layer *ps_layer_from_memlayer(struct ps_memlayer *m, const struct kc_id *tenant,
                                        const struct kc_id *timeline, kc_lsn end);

/* A layer (one reference) over the open layer file r, which it takes over. */
struct ps_layer *ps_layer_from_file(struct ps_layer_reader *r);

/* Take a reference; returns l. Thread-safe. */
struct ps_layer *ps_layer_ref(struct ps_layer *l);
/* Drop a reference; the last one frees the layer (closing its file). NULL is a no-op. */
void ps_layer_unref(struct ps_layer *l);

/* ---- maps ---- */

struct ps_layer_map {
    atomic_uint refs;         /* references; freed at zero */
    size_t n;                 /* layers */
    struct ps_layer **layers; /* one reference each; by LSN end, newest first */
};

/* An empty map (one reference). */
struct ps_layer_map *ps_layer_map_create(void);

/*
 * ps_layer_map_edit -- a new map (one reference): m's layers without
 * remove (when not NULL; compared by pointer), with add (when not NULL; a
 * new reference is taken). m is not changed.
 */
struct ps_layer_map *ps_layer_map_edit(const struct ps_layer_map *m, struct ps_layer *add,
                                       const struct ps_layer *remove);

struct ps_layer_map *ps_layer_map_ref(struct ps_layer_map *m);
void ps_layer_map_unref(struct ps_layer_map *m);

/*
 * ps_layer_map_check_add -- 0 when a layer d may join m without breaking the
 * invariant at the top of this file; KC_EINVAL naming the layer it overlaps
 * otherwise.
 */
int ps_layer_map_check_add(const struct ps_layer_map *m, const struct ps_layer_desc *d,
                           struct kc_error *err) KC_MUSTCHECK;

/* The in-memory layer of m with the lowest LSNs (the next to flush), or NULL. */
struct ps_layer *ps_layer_map_oldest_mem(const struct ps_layer_map *m);

/* Number of in-memory layers in m. */
size_t ps_layer_map_nmem(const struct ps_layer_map *m);

/*
 * ps_layer_search -- search the single layer l for key in the LSNs
 * (floor, top], newest first, appending to vals: stops at a value that ends
 * the chain (COMPLETE) or at a drop in that range covering key (ABSENT),
 * else CONTINUE. top must lie in l's LSN range. Reads files with pread; no
 * lock needed (l is immutable). Returns 0 or an error from the file.
 */
int ps_layer_search(const struct ps_layer *l, const struct ps_key *key, kc_lsn top, kc_lsn floor,
                    struct ps_values *vals, enum ps_search_result *result,
                    struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_memlayer_search_range -- the same for a bare in-memory layer m (the
 * timeline's open layer, searched under its lock).
 */
int ps_memlayer_search_range(const struct ps_memlayer *m, const struct ps_key *key, kc_lsn top,
                             kc_lsn floor, struct ps_values *vals, enum ps_search_result *result,
                             struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_layer_map_search -- search m for key at LSN <= *cur as described at the
 * top of this file, appending to vals. On return *result is COMPLETE,
 * ABSENT, or CONTINUE (nothing more in m), and *cur is the LSN at or below
 * which an older source (the ancestor) must continue. LSN 0 holds nothing.
 */
int ps_layer_map_search(const struct ps_layer_map *m, const struct ps_key *key, kc_lsn *cur,
                        struct ps_values *vals, enum ps_search_result *result,
                        struct kc_error *err) KC_MUSTCHECK;

#endif
