/* SPDX-License-Identifier: Apache-2.0 */
/*
 * timeline.h -- a timeline's storage: the LSM of one (tenant, timeline).
 *
 * A timeline lives in a local directory: its metadata file
 * (timeline_meta.h) and its layer files. In memory it has
 *
 *   the open layer       a ps_memlayer taking every put and drop
 *   frozen layers        full open layers waiting to be written as L0
 *                        delta layer files
 *   layer files          delta and image layers (layer_map.h)
 *   an ancestor          for a branch: the parent timeline and the LSN it
 *                        branched at; reads fall through to it below that
 *
 * and two positions: last_record_lsn, the end of the last WAL record
 * ingested (reads up to it see complete records), and disk_consistent_lsn,
 * up to which everything is in layer files listed by the metadata. After a
 * restart WAL is ingested again from disk_consistent_lsn, exactly: layer
 * files hold nothing above it, and the open layer refuses values at or
 * below it, so nothing is applied twice (docs/pageserver-timeline.md).
 *
 * Ingest (ingest.h) writes through ps_timeline_ingest_ops(); after each
 * record (or batch) the ingest loop calls ps_timeline_advance(). When the
 * open layer holds opts.checkpoint_distance bytes, advance freezes it and a
 * new one starts at last_record_lsn; some thread (the ingest loop, or a
 * flusher) then calls ps_timeline_flush(), which writes the frozen layers,
 * oldest first, and after each moves disk_consistent_lsn and rewrites the
 * metadata. ps_ingest_flush() must run before the advance to the same LSN
 * (the open layer may start at that LSN afterwards).
 *
 * Threads and locking: every function is thread-safe. One mutex per
 * timeline guards the open layer, the current layer map pointer and the
 * positions; it is held for in-memory work only (a put, an advance, the
 * search of the open layer, swapping a map). Reads search the open layer
 * under it, then take a reference to the immutable layer map and search
 * frozen layers and files without it. A flush writes files and the
 * metadata without it, holding only the flush token (one flush or attach at
 * a time), and publishes a new map at the end; readers holding the old map
 * keep using the layers it references. The timeline itself is not
 * reference-counted: close a timeline after every thread stopped using it,
 * and branches (which point at their parent) before their parent.
 */
#ifndef PS_TIMELINE_H
#define PS_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/id.h"
#include "common/lsn.h"
#include "pageserver/ingest.h"
#include "pageserver/key.h"
#include "pageserver/layer_map.h"
#include "pageserver/native_redo.h"
#include "pageserver/value.h"

struct ps_timeline;

#define PS_TIMELINE_CHECKPOINT_DISTANCE (64u * 1024 * 1024) /* default freeze size */
#define PS_TIMELINE_ANCESTOR_WAIT_MS    60000               /* default wait for a parent */

/* Settings; zeroed fields (or a NULL pointer) take the defaults. */
struct ps_timeline_opts {
    size_t checkpoint_distance; /* freeze the open layer at this many bytes (values + drops) */
    unsigned ancestor_wait_ms;  /* how long a read waits for the parent to reach the branch LSN */
};

/*
 * ps_timeline_create -- make a new root timeline in dir (created here; its
 * parent must exist, dir must not) whose history starts after start_lsn
 * (the LSN of the imported or initdb'ed cluster), and open it. Returns 0
 * with *out set, or KC_EINVAL (bad ids, segment size; dir exists), KC_EIO.
 */
int ps_timeline_create(const char *dir, const struct kc_id *tenant, const struct kc_id *timeline,
                       kc_lsn start_lsn, uint64_t pg_system_id, uint32_t wal_seg_size,
                       const struct ps_timeline_opts *opts, struct ps_timeline **out,
                       struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_timeline_open -- open the timeline in dir: read the metadata, remove
 * temporary files a crash left and layer files the metadata does not list
 * (an interrupted flush), open every listed layer file (a missing or
 * corrupt one fails the open), start an empty open layer at
 * disk_consistent_lsn, which becomes last_record_lsn too: the caller
 * resumes WAL from ps_timeline_disk_consistent_lsn(). A branch needs its
 * open parent as ancestor (NULL for a root timeline). Returns 0 with *out
 * set, or KC_ENOTFOUND (no metadata), KC_EINVAL (wrong ancestor),
 * KC_ECORRUPT, KC_EVERSION, KC_EIO.
 */
int ps_timeline_open(const char *dir, struct ps_timeline *ancestor,
                     const struct ps_timeline_opts *opts, struct ps_timeline **out,
                     struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_timeline_branch -- create the branch new_id of parent at lsn in dir
 * (created here) and open it, in O(1): only the child's metadata is
 * written, nothing is copied. Refuses (KC_EINVAL) an lsn above parent's
 * last_record_lsn or below the start of its history, an existing dir, a
 * zero id or parent's own id.
 */
int ps_timeline_branch(struct ps_timeline *parent, const struct kc_id *new_id, kc_lsn lsn,
                       const char *dir, struct ps_timeline **out,
                       struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_timeline_close -- free tl. Values not yet flushed are dropped (their
 * WAL is ingested again after the next open); call ps_timeline_checkpoint
 * first to keep them. Aborts when open branches still use tl. NULL: no-op.
 */
void ps_timeline_close(struct ps_timeline *tl);

const struct kc_id *ps_timeline_tenant(const struct ps_timeline *tl);
const struct kc_id *ps_timeline_id(const struct ps_timeline *tl);
const char *ps_timeline_dir(const struct ps_timeline *tl);
/* The parent (NULL for a root timeline) and the branch LSN (0 then). */
struct ps_timeline *ps_timeline_ancestor(const struct ps_timeline *tl);
kc_lsn ps_timeline_ancestor_lsn(const struct ps_timeline *tl);
/* The timeline's own history holds LSNs above this. */
kc_lsn ps_timeline_start_lsn(const struct ps_timeline *tl);
uint64_t ps_timeline_pg_system_id(const struct ps_timeline *tl);
uint32_t ps_timeline_wal_seg_size(const struct ps_timeline *tl);
kc_lsn ps_timeline_last_record_lsn(struct ps_timeline *tl);
kc_lsn ps_timeline_disk_consistent_lsn(struct ps_timeline *tl);

/* Counters and sizes, for metrics and tests. */
struct ps_timeline_stats {
    size_t open_bytes;       /* value bytes in the open layer */
    size_t frozen_layers;    /* frozen layers waiting for a flush */
    size_t layer_files;      /* layer files in the map */
    uint64_t flushes;        /* frozen layers flushed since open */
    uint64_t layers_written; /* layer files written since open */
};
void ps_timeline_get_stats(struct ps_timeline *tl, struct ps_timeline_stats *out);

/* ---- ingest ---- */

/*
 * ps_timeline_put / ps_timeline_drop_range -- store v (copied) for key at
 * lsn, or drop [start, end) at lsn, in the open layer. lsn must not be below
 * last_record_lsn and must be above the open layer's start. KC_EINVAL
 * otherwise.
 */
int ps_timeline_put(struct ps_timeline *tl, const struct ps_key *key, kc_lsn lsn,
                    const struct ps_value *v, struct kc_error *err) KC_MUSTCHECK;
int ps_timeline_drop_range(struct ps_timeline *tl, const struct ps_key *start,
                           const struct ps_key *end, kc_lsn lsn, struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_timeline_get_latest -- ingest's get: the newest image of key, of all
 * that was stored (searched at LSN infinity, ancestors included), copied
 * into buf (at most cap bytes; *len set to its full length). Returns 1
 * found, 0 absent, KC_ECORRUPT when the newest version is not an image,
 * or a read error.
 */
int ps_timeline_get_latest(struct ps_timeline *tl, const struct ps_key *key, uint8_t *buf,
                           size_t cap, size_t *len, struct kc_error *err) KC_MUSTCHECK;

/* put, drop_range and get_latest as the ops ingest writes through (arg = tl). */
struct ps_ingest_ops ps_timeline_ingest_ops(struct ps_timeline *tl);

/*
 * ps_timeline_advance -- WAL up to lsn is ingested: set last_record_lsn,
 * freeze the open layer when it is due, wake waiters. KC_EINVAL (nothing
 * changed) when lsn is below last_record_lsn or below a value already put.
 */
int ps_timeline_advance(struct ps_timeline *tl, kc_lsn lsn, struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_timeline_wait_lsn -- block until last_record_lsn >= lsn, at most
 * timeout_ms. Returns 0, or KC_ETIMEDOUT naming both LSNs.
 */
int ps_timeline_wait_lsn(struct ps_timeline *tl, kc_lsn lsn, unsigned timeout_ms,
                         struct kc_error *err) KC_MUSTCHECK;

/* ---- freezing and flushing ---- */

/*
 * ps_timeline_freeze -- freeze the open layer at last_record_lsn, now when
 * no value above it was put (returns true), else at the next advance
 * (returns false). An open layer with nothing since its start stays open.
 */
bool ps_timeline_freeze(struct ps_timeline *tl);

/* True when frozen layers wait for ps_timeline_flush. */
bool ps_timeline_flush_pending(struct ps_timeline *tl);

/*
 * ps_timeline_flush -- write every frozen layer, oldest first, as an L0
 * delta layer file (all keys, LSNs [start + 1, end + 1), values and drops),
 * then rewrite the metadata with it and disk_consistent_lsn = end. Waits
 * for a flush already running in another thread. Failpoints
 * pageserver.timeline.before-layer-write and .after-layer-write. On error
 * the failed layer stays frozen (flush again to retry) and the metadata on
 * disk is the old or the new one. Returns 0, KC_EIO, KC_EFAILPOINT, ...
 */
int ps_timeline_flush(struct ps_timeline *tl, struct kc_error *err) KC_MUSTCHECK;

/* Freeze now (when possible; see ps_timeline_freeze), then flush. */
int ps_timeline_checkpoint(struct ps_timeline *tl, struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_timeline_attach_layer -- add the layer file name (no directory part),
 * already in the timeline's directory, to the timeline: for layers made
 * outside the flush path (image layer creation, tests). It must belong to
 * the timeline, lie at or below disk_consistent_lsn and above the start,
 * and not overlap a layer of its kind. The metadata is rewritten. Returns
 * 0, KC_EINVAL, or the errors of opening the file and writing metadata.
 */
int ps_timeline_attach_layer(struct ps_timeline *tl, const char *name,
                             struct kc_error *err) KC_MUSTCHECK;

/* ---- reads ---- */

/*
 * ps_timeline_get_values -- collect the values of key at LSN <= lsn into
 * out (reset first), newest first across the open layer, the frozen layers
 * and the layer files, then the ancestor at min(lsn, ancestor LSN),
 * stopping at a value that ends the chain or at a drop or an image layer
 * that hides older values; see struct ps_values for the result. Values
 * above last_record_lsn may belong to a record still being ingested:
 * readers wait_lsn first. Returns 0 or a read error (KC_ECORRUPT, KC_EIO,
 * KC_ETIMEDOUT waiting for the ancestor).
 */
int ps_timeline_get_values(struct ps_timeline *tl, const struct ps_key *key, kc_lsn lsn,
                           struct ps_values *out, struct kc_error *err) KC_MUSTCHECK;

/*
 * The WAL-redo hook of ps_timeline_get_page: apply the PostgreSQL records
 * records[0..n) (oldest first, each at its LSN) of key to base
 * (PS_PAGE_SIZE bytes, or NULL when records[0] initialises the page) and
 * write the page to page_out. Returns 0 or a KC_E* code with err filled.
 */
typedef int (*ps_timeline_redo_fn)(void *arg, const struct ps_key *key, const uint8_t *base,
                                   const struct ps_found *records, size_t n,
                                   uint8_t page_out[PS_PAGE_SIZE], struct kc_error *err);

/*
 * ps_timeline_get_page -- the contents of key at lsn into buf (cap bytes;
 * *len set to the length, or to the length needed with KC_ETOOBIG):
 *
 *   relation and SLRU blocks   reconstructed: the base image, native
 *                              records applied with ps_native_apply and runs
 *                              of PostgreSQL records through redo (arg
 *                              redo_arg); 8192 bytes, 8200 for a CLOG page
 *                              with a commit time. All zeros when the block
 *                              does not exist, or lies at or past the size
 *                              its size key gives at lsn.
 *   every other key            its image (sizes, directories, relmapper,
 *                              twophase, control, checkpoint); KC_ENOTFOUND
 *                              when it does not exist.
 *
 * A chain without a base (records above a drop or the oldest history)
 * is KC_ECORRUPT; PostgreSQL records without redo are KC_EINVAL.
 */
int ps_timeline_get_page(struct ps_timeline *tl, const struct ps_key *key, kc_lsn lsn, uint8_t *buf,
                         size_t cap, size_t *len, ps_timeline_redo_fn redo, void *redo_arg,
                         struct kc_error *err) KC_MUSTCHECK;

#endif
