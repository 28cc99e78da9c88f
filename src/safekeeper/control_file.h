/* SPDX-License-Identifier: Apache-2.0 */
/*
 * control_file.h -- the durable per-timeline state of a safekeeper.
 *
 * Each timeline directory holds one control file, SK_CONTROL_FILE_NAME, with
 * the acceptor's promises (the term it voted for, the history it accepted)
 * and its positions. The byte layout is in docs/safekeeper-storage.md:
 *
 *   magic u32 | version u16 | reserved u16 | payload length u32 | payload | CRC32C u32
 *
 * big-endian, the CRC covering every byte before it. The framing (magic,
 * length, CRC) is the same in every version, so a reader checks it first and
 * only then the version: a damaged file reads as KC_ECORRUPT, a file from a
 * newer release as KC_EVERSION.
 *
 * Writes are atomic: the new contents go to SK_CONTROL_TEMP_NAME, which is
 * fsynced, renamed over the control file, and the directory fsynced. A crash
 * at any point leaves either the old or the new state; a leftover temporary
 * file is ignored and removed.
 *
 * flush_lsn here is informational only (the last flush position known when
 * the file was written): the WAL files are the truth, and sk_wal_open()
 * recovers the end of WAL from them, starting at commit_lsn.
 *
 * Not thread-safe: the caller serialises access to a timeline's state.
 */
#ifndef SK_CONTROL_FILE_H
#define SK_CONTROL_FILE_H

#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/id.h"
#include "common/lsn.h"
#include "safekeeper/term_history.h"

#define SK_CONTROL_FILE_NAME   "safekeeper.control"
#define SK_CONTROL_TEMP_NAME   "safekeeper.control.tmp"
#define SK_CONTROL_MAGIC       0x4B534B43u /* "KSKC" */
#define SK_CONTROL_VERSION     1
#define SK_CONTROL_HEADER_SIZE 12  /* magic, version, reserved, payload length */
#define SK_CONTROL_FIXED_SIZE  128 /* the fixed-size part of a version 1 payload */
/* Largest payload a reader accepts: the fixed part and a full term history. */
#define SK_CONTROL_MAX_PAYLOAD \
    (SK_CONTROL_FIXED_SIZE + SK_TERM_HISTORY_ENCODED_SIZE(SK_TERM_HISTORY_MAX))

/* The state of one timeline on one safekeeper. Owns history. */
struct sk_control {
    struct kc_id tenant_id;         /* the tenant (project); never zero in a stored file */
    struct kc_id timeline_id;       /* the timeline (branch); never zero in a stored file */
    uint64_t system_id;             /* PostgreSQL database system identifier */
    uint32_t wal_seg_size;          /* WAL segment size in bytes (kc_wal_segsize_valid) */
    uint32_t pg_version;            /* PostgreSQL version number, e.g. 150018 */
    uint64_t term;                  /* highest term voted for; >= the history's last term */
    struct sk_term_history history; /* the term history of the WAL this safekeeper holds */
    uint64_t term_owner_node;       /* node id of the compute the term belongs to (0: none yet) */
    kc_lsn term_start_lsn;          /* E: where that compute's WAL starts (0: none yet) */
    kc_lsn timeline_start_lsn;      /* where the timeline's WAL begins */
    kc_lsn local_start_lsn;         /* where this safekeeper's WAL begins (>= timeline start) */
    kc_lsn flush_lsn;               /* informational: flush position when written */
    kc_lsn commit_lsn;              /* highest LSN known committed (WAL below is never truncated) */
    kc_lsn peer_horizon_lsn;        /* LSN all peers are known to hold */
    kc_lsn backup_lsn;              /* WAL below is backed up to object storage */
    kc_lsn remote_consistent_lsn;   /* the pageserver's position in object storage */
};

/* Zero everything; the history is empty. */
void sk_control_init(struct sk_control *c);
/* Free the history; c becomes as after sk_control_init. */
void sk_control_fini(struct sk_control *c);
/* Make dst (initialised) an independent copy of src. */
void sk_control_copy(struct sk_control *dst, const struct sk_control *src);
bool sk_control_equal(const struct sk_control *a, const struct sk_control *b);

/*
 * sk_control_validate -- check the invariants every stored state keeps: ids
 * set, a valid WAL segment size, a valid history whose last term is at most
 * term, local_start_lsn >= timeline_start_lsn. Returns 0 or KC_EINVAL naming
 * the first broken rule.
 */
int sk_control_validate(const struct sk_control *c, struct kc_error *err) KC_MUSTCHECK;

/*
 * sk_control_encode -- append the whole file image of c (header, payload,
 * CRC) to out. Returns 0, or KC_EINVAL (out unchanged) when c is not valid.
 */
int sk_control_encode(const struct sk_control *c, struct kc_sbuf *out,
                      struct kc_error *err) KC_MUSTCHECK;

/*
 * sk_control_decode -- parse a file image of len bytes into out
 * (initialised; replaced on success, unchanged on failure). name (e.g. the
 * path) is quoted in messages. Returns 0, KC_ECORRUPT (bad magic, length,
 * checksum, or contents), KC_EVERSION (a version this build does not read)
 * or KC_ENOMEM. Never crashes on garbage.
 */
int sk_control_decode(const void *data, size_t len, const char *name, struct sk_control *out,
                      struct kc_error *err) KC_MUSTCHECK;

/*
 * sk_control_load -- read dir/SK_CONTROL_FILE_NAME into out (initialised;
 * replaced on success). Removes a leftover dir/SK_CONTROL_TEMP_NAME (a write
 * that crashed before its rename). Returns 0, KC_ENOTFOUND when there is no
 * control file, KC_EIO when it cannot be read, or a sk_control_decode error;
 * messages name the file.
 */
int sk_control_load(const char *dir, struct sk_control *out, struct kc_error *err) KC_MUSTCHECK;

/*
 * sk_control_store -- atomically replace dir/SK_CONTROL_FILE_NAME with c:
 * write and fsync the temporary file, rename it, fsync dir. Returns 0 once
 * the new state is durable. On failure returns KC_EINVAL (c invalid; nothing
 * written), KC_EIO or KC_EFAILPOINT. A failure before the rename leaves the
 * old state and removes the temporary file; a failure of the directory fsync
 * after the rename leaves the new state in place but perhaps not durable:
 * the caller must not reply as if it were (restart to be sure).
 * Failpoints: safekeeper.control.before-write, .before-fsync,
 * .before-rename, .after-rename (docs/failpoints.md).
 */
int sk_control_store(const char *dir, const struct sk_control *c,
                     struct kc_error *err) KC_MUSTCHECK;

#endif
