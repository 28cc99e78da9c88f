/* SPDX-License-Identifier: Apache-2.0 */
/*
 * layer_writer.h -- writing a delta or image layer file in one streaming pass.
 *
 *   struct ps_layer_writer *w;
 *   rc = ps_layer_writer_create(dir, &desc, NULL, &w, err);
 *   for each (key, lsn, value) in (key, lsn) order:
 *       rc = ps_layer_writer_add(w, &key, lsn, &value, err);
 *   for each range drop in LSN order (delta layers; any time before finish):
 *       rc = ps_layer_writer_add_drop(w, &drop, err);
 *   rc = ps_layer_writer_finish(w, err);      (or ps_layer_writer_abort(w))
 *
 * The writer writes to "<dir>/<name>.<8 hex>.tmp" and, at finish, fsyncs it,
 * renames it to "<dir>/<name>" (ps_layer_name_format) and fsyncs dir. A crash
 * at any point leaves either nothing or the complete file under the final
 * name; a leftover temporary file is removed by ps_layer_remove_temp_files.
 * A file already under the final name is replaced (same name, same data).
 *
 * Memory is bounded whatever the number of values: one value's compression
 * buffer, one index block and fixed write buffers. Index blocks and directory
 * entries go to unnamed temporary files in dir until finish copies them after
 * the data. Drops, which are few, are kept in memory until finish.
 *
 * A writer is used by one thread at a time.
 */
#ifndef PS_LAYER_WRITER_H
#define PS_LAYER_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "pageserver/layer_file.h"

struct ps_layer_writer;

/* Tuning; a zeroed struct (or NULL) means the defaults. */
struct ps_layer_writer_opts {
    uint32_t block_entries;    /* index entries per block; 0: PS_LAYER_BLOCK_ENTRIES_DEFAULT */
    int zstd_level;            /* 0: level 1 */
    bool no_value_compression; /* store every value plainly */
    bool no_index_compression; /* store every index block plainly */
    unsigned version;          /* format version to write: 0 (= PS_LAYER_VERSION), 1 or 2;
                                  version 1 (no drops) is for compatibility tests */
};

/*
 * ps_layer_writer_create -- start writing the layer d (checked with
 * ps_layer_desc_check) in directory dir: creates the temporary file, writes
 * the header. opts may be NULL. On success *out is a writer the caller ends
 * with ps_layer_writer_finish or ps_layer_writer_abort. Returns 0, KC_EINVAL
 * (bad description or options) or KC_EIO, with err filled and nothing left
 * on disk.
 */
int ps_layer_writer_create(const char *dir, const struct ps_layer_desc *d,
                           const struct ps_layer_writer_opts *opts, struct ps_layer_writer **out,
                           struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_layer_writer_add -- append the value v of key at lsn. Calls must come in
 * strictly increasing (key, lsn) order, with (key, lsn) inside the layer's
 * ranges; an image layer takes only images, at its LSN, one per key.
 * The value's bytes are copied (compressed when that makes them smaller)
 * before the call returns.
 *
 * Returns 0, or:
 *   KC_EINVAL    input out of order, outside the ranges or of the wrong kind,
 *                or a malformed value (ps_value_check); nothing was written
 *                and the writer can go on
 *   KC_ETOOBIG   the value exceeds PS_VALUE_MAX_LEN, or the layer exceeds the
 *                format's limits; nothing written, the writer can go on
 *   KC_EIO, KC_EFAILPOINT  writing failed: the writer is broken and every
 *                later call fails; abort it
 */
int ps_layer_writer_add(struct ps_layer_writer *w, const struct ps_key *key, kc_lsn lsn,
                        const struct ps_value *v, struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_layer_writer_add_drop -- record that every key in [d->start, d->end)
 * was dropped at d->lsn (see memlayer.h for what a drop hides). Delta layers
 * of version 2 only; drops must come in non-decreasing LSN order (as
 * ps_memlayer_drops lists them), with the key range inside the layer's and
 * the LSN inside its LSN range. They may be added before, between or after
 * values. Returns 0, or KC_EINVAL (nothing recorded, the writer can go on)
 * or KC_ETOOBIG (more than PS_LAYER_MAX_DROPS), with err filled.
 */
int ps_layer_writer_add_drop(struct ps_layer_writer *w, const struct ps_drop *d,
                             struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_layer_writer_finish -- write the index, directory and footer, fsync,
 * rename into place, fsync the directory; then free w (in every case: w is
 * gone after the call). On failure the temporary file is removed and nothing
 * appears under the final name, except when only the final directory fsync
 * failed (the file is then complete under its final name, but its durability
 * is unknown). Returns 0, KC_EIO, or KC_EFAILPOINT, with err filled.
 * Layers without any value are valid (see docs/pageserver-layer-format.md).
 */
int ps_layer_writer_finish(struct ps_layer_writer *w, struct kc_error *err) KC_MUSTCHECK;

/* Remove the temporary file and free w; NULL is a no-op. */
void ps_layer_writer_abort(struct ps_layer_writer *w);

/* The final path of the file, "<dir>/<name>"; owned by w, valid until finish or abort. */
const char *ps_layer_writer_path(const struct ps_layer_writer *w);

/* The temporary path being written; owned by w, valid until finish or abort. */
const char *ps_layer_writer_temp_path(const struct ps_layer_writer *w);

/* Values added so far. */
uint64_t ps_layer_writer_nvalues(const struct ps_layer_writer *w);

/* Drops added so far. */
size_t ps_layer_writer_ndrops(const struct ps_layer_writer *w);

/*
 * Bytes of memory w holds now (its buffers, whatever their use). For tests
 * that check the bound: it does not grow with the number of values (only
 * with the number of drops).
 */
size_t ps_layer_writer_memory(const struct ps_layer_writer *w);

#endif
