/* SPDX-License-Identifier: Apache-2.0 */
/*
 * timeline_meta.h -- the metadata file of a timeline's local directory
 * (format version 1; docs/pageserver-timeline.md has the byte layout).
 *
 * "<dir>/metadata" says what the timeline is (tenant, timeline id, its
 * ancestor and branch LSN, the PostgreSQL system id and WAL segment size)
 * and what is durable: disk_consistent_lsn and the exact list of layer
 * files that hold the timeline's data up to it. A layer file in the
 * directory that the list does not name is a leftover of an interrupted
 * flush. The file is written whole to "<dir>/metadata.tmp", fsynced and
 * renamed over the old one, then the directory is fsynced, so a crash
 * leaves the old or the new metadata, never a mix.
 */
#ifndef PS_TIMELINE_META_H
#define PS_TIMELINE_META_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/id.h"
#include "common/lsn.h"
#include "pageserver/layer_file.h"

#define PS_TIMELINE_META_FILE      "metadata"
#define PS_TIMELINE_META_TEMP      "metadata.tmp"
#define PS_TIMELINE_META_MAGIC     0x4B544C4Du /* "KTLM" */
#define PS_TIMELINE_META_VERSION   1
#define PS_TIMELINE_META_FIXED     104 /* bytes without layers: 100 of fields, 4 of CRC */
#define PS_TIMELINE_META_LAYER     61  /* bytes per listed layer */
#define PS_TIMELINE_META_MAX_LAYER 1000000

/* One layer file the metadata lists. */
struct ps_meta_layer {
    struct ps_layer_desc desc; /* kind and ranges; ids are the timeline's */
    uint64_t file_size;        /* bytes of the file, checked when it is opened */
};

/* The decoded metadata. */
struct ps_timeline_meta {
    struct kc_id tenant;          /* never zero */
    struct kc_id timeline;        /* never zero */
    struct kc_id ancestor;        /* parent timeline; zero for a root timeline */
    kc_lsn ancestor_lsn;          /* branch point in the parent; 0 for a root timeline */
    kc_lsn start_lsn;             /* the timeline's own history holds LSNs above this */
    kc_lsn disk_consistent_lsn;   /* all WAL up to here is in the listed layers */
    uint64_t pg_system_id;        /* PostgreSQL's system identifier */
    uint32_t wal_seg_size;        /* WAL segment size in bytes */
    size_t nlayers;               /* entries at layers */
    struct ps_meta_layer *layers; /* owned; sorted by (lsn_start, lsn_end, key_start, kind) */
};

/* Free m's layer list and zero m. */
void ps_timeline_meta_fini(struct ps_timeline_meta *m);

/* Sort m's layer list into the order ps_timeline_meta_check requires. */
void ps_timeline_meta_sort(struct ps_timeline_meta *m);

/*
 * ps_timeline_meta_check -- 0 when m is consistent: ids set, a root
 * timeline has no ancestor LSN and a branch starts at its ancestor LSN,
 * start_lsn <= disk_consistent_lsn, a valid WAL segment size, at most
 * PS_TIMELINE_META_MAX_LAYER layers, each a valid description holding LSNs
 * in (start_lsn, disk_consistent_lsn], in strictly increasing list order.
 * KC_EINVAL naming the problem otherwise.
 */
int ps_timeline_meta_check(const struct ps_timeline_meta *m, struct kc_error *err) KC_MUSTCHECK;

/* Encode m (which must pass ps_timeline_meta_check) as the bytes of the file, appended to out. */
void ps_timeline_meta_encode(const struct ps_timeline_meta *m, struct kc_sbuf *out);

/*
 * ps_timeline_meta_decode -- parse the whole file data[0..len) read from
 * path (named in errors). Checks, in order: magic, length, checksum,
 * version (KC_EVERSION), then every field (ps_timeline_meta_check). On
 * success *out owns a layer list (ps_timeline_meta_fini). Returns 0,
 * KC_ECORRUPT, KC_EVERSION or KC_ENOMEM with err filled; *out untouched on
 * error.
 */
int ps_timeline_meta_decode(const uint8_t *data, size_t len, const char *path,
                            struct ps_timeline_meta *out, struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_timeline_meta_read -- read and decode "<dir>/metadata". KC_ENOTFOUND
 * when it does not exist, KC_EIO, or the errors of ps_timeline_meta_decode.
 */
int ps_timeline_meta_read(const char *dir, struct ps_timeline_meta *out,
                          struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_timeline_meta_write -- replace "<dir>/metadata" atomically and durably
 * with m (see the top of this file). Failpoints
 * pageserver.timeline.before-metadata-rename (after the temporary file is
 * fsynced) and pageserver.timeline.after-metadata-rename (before the
 * directory fsync). Returns 0, KC_EINVAL (m inconsistent), KC_EIO or
 * KC_EFAILPOINT with err filled; on failure before the rename the old file
 * is intact.
 */
int ps_timeline_meta_write(const char *dir, const struct ps_timeline_meta *m,
                           struct kc_error *err) KC_MUSTCHECK;

/* fsync the directory dir (after creating, renaming or removing entries in it). */
int ps_timeline_fsync_dir(const char *dir, struct kc_error *err) KC_MUSTCHECK;

#endif
