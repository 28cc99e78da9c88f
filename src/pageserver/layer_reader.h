/* SPDX-License-Identifier: Apache-2.0 */
/*
 * layer_reader.h -- opening a layer file and finding values in it.
 *
 * Opening reads the header, the footer, the directory (62 bytes per index
 * block of up to 1024 values) and the range drops (format version 2; they
 * are few) and validates them all; nothing else is read and nothing else
 * stays in memory. Files of format versions 1 and 2 are read alike (a
 * version-1 file has no drops). Lookups go through an iterator, which
 * reads one index block at a time (validating it when it arrives) and one
 * value at a time, always with pread:
 *
 *   reconstruction    ps_layer_iter_versions(it, key, lsn_le) then
 *                     ps_layer_iter_next(): the values of key with LSN <=
 *                     lsn_le, newest first; stop at an entry whose will_init
 *                     is set (images always have it)
 *   range scan        ps_layer_iter_scan(it, from, to) then ps_layer_iter_next():
 *                     every value with from <= key < to in (key, lsn) order
 *
 * Finding the first value of a key costs one index-block read and one value
 * read, whatever the layer size. Every problem in the file -- a bad checksum,
 * an offset or count that does not add up, entries out of order -- is
 * reported as KC_ECORRUPT (KC_EVERSION for a newer format) naming the file
 * and the offset, by the call that reads the affected bytes. Corrupt input
 * never crashes the reader and never yields wrong data.
 *
 * Threads: after ps_layer_open a reader is immutable and may be shared by
 * threads, each using its own iterators. An iterator is used by one thread
 * at a time.
 */
#ifndef PS_LAYER_READER_H
#define PS_LAYER_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "pageserver/layer_file.h"

struct ps_layer_reader;
struct ps_layer_iter;

/*
 * ps_layer_open -- open and validate the layer file at path. When the file's
 * base name parses as a layer name (ps_layer_name_parse), it must match the
 * header's kind and ranges. On success *out is a reader to close with
 * ps_layer_close. Returns 0, or KC_EIO (cannot open or read), KC_ECORRUPT,
 * KC_EVERSION or KC_ENOMEM, with err filled; *out is then NULL.
 */
int ps_layer_open(const char *path, struct ps_layer_reader **out,
                  struct kc_error *err) KC_MUSTCHECK;

/* Close the file and free r; NULL is a no-op. Its iterators must be destroyed first. */
void ps_layer_close(struct ps_layer_reader *r);

/* What the layer covers (from its header); owned by r. */
const struct ps_layer_desc *ps_layer_reader_desc(const struct ps_layer_reader *r);

/* The path given to ps_layer_open; owned by r. */
const char *ps_layer_reader_path(const struct ps_layer_reader *r);

/* Number of values in the layer. */
uint64_t ps_layer_reader_nvalues(const struct ps_layer_reader *r);

/* Length of the largest value: a buffer this big can hold any value of r. */
uint32_t ps_layer_reader_max_value_len(const struct ps_layer_reader *r);

/* Size of the file in bytes. */
uint64_t ps_layer_reader_file_size(const struct ps_layer_reader *r);

/* Bytes of memory r holds (its directory, drops and bookkeeping): about 0.6 bytes per value. */
size_t ps_layer_reader_memory(const struct ps_layer_reader *r);

/* The file's format version (1 or 2). */
unsigned ps_layer_reader_version(const struct ps_layer_reader *r);

/* The layer's range drops in LSN order (none in image layers and version-1 files); *n set
 * to their count. Owned by r. */
const struct ps_drop *ps_layer_reader_drops(const struct ps_layer_reader *r, size_t *n);

/*
 * ps_layer_reader_drop_lsn -- the LSN of the newest drop of r covering key
 * with LSN <= lsn, or 0 when there is none. A drop at LSN T hides every value
 * of the key at LSN <= T, in this layer and every older one (memlayer.h).
 * No I/O: drops are read at open. Costs O(number of drops).
 */
kc_lsn ps_layer_reader_drop_lsn(const struct ps_layer_reader *r, const struct ps_key *key,
                                kc_lsn lsn);

/*
 * ps_layer_iter_create -- a new, unpositioned iterator over r (which must
 * outlive it). Never fails; free it with ps_layer_iter_destroy.
 */
struct ps_layer_iter *ps_layer_iter_create(struct ps_layer_reader *r);

/* Free it; NULL is a no-op. */
void ps_layer_iter_destroy(struct ps_layer_iter *it);

/*
 * ps_layer_iter_versions -- position it on the newest value of key with
 * LSN <= lsn_le; ps_layer_iter_next() then moves to the next older value of
 * the same key. Returns 1 when positioned (ps_layer_iter_entry describes the
 * value), 0 when the layer has no such value, or a negative KC_E* code
 * (KC_ECORRUPT, KC_EIO) with err filled. After 0 or an error the iterator is
 * unpositioned.
 */
int ps_layer_iter_versions(struct ps_layer_iter *it, const struct ps_key *key, kc_lsn lsn_le,
                           struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_layer_iter_scan -- position it on the first value with from <= key <
 * to, in (key, lsn) order; to may be NULL for "to the end of the layer".
 * ps_layer_iter_next() then moves forward. Returns as ps_layer_iter_versions.
 */
int ps_layer_iter_scan(struct ps_layer_iter *it, const struct ps_key *from, const struct ps_key *to,
                       struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_layer_iter_next -- move to the next value of the current lookup (older
 * version, or next in the scan). Returns 1 when positioned, 0 at the end (or
 * when it is not positioned), negative with err filled on error.
 */
int ps_layer_iter_next(struct ps_layer_iter *it, struct kc_error *err) KC_MUSTCHECK;

/* The value it is positioned on, as the index describes it; NULL when unpositioned.
 * Owned by it, valid until its next call. */
const struct ps_layer_entry *ps_layer_iter_entry(const struct ps_layer_iter *it);

/*
 * ps_layer_iter_read -- read the value it is positioned on into buf
 * (cap bytes) and describe it in *out (out->data == buf). The stored bytes'
 * checksum is verified and compressed values are decompressed to exactly
 * their indexed length. Returns 0, or KC_ETOOBIG when the value is longer
 * than cap (nothing read: size buf by entry->len or the layer's max value
 * length), KC_EINVAL when not positioned, KC_ECORRUPT, KC_EIO or KC_ENOMEM,
 * with err filled. The iterator stays positioned.
 */
int ps_layer_iter_read(struct ps_layer_iter *it, uint8_t *buf, size_t cap, struct ps_value *out,
                       struct kc_error *err) KC_MUSTCHECK;

/* Number of pread calls it has made (index blocks and values); for tests and metrics. */
uint64_t ps_layer_iter_preads(const struct ps_layer_iter *it);

#endif
