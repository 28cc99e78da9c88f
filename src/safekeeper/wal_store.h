/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wal_store.h -- a safekeeper's WAL for one timeline, in preallocated segment files.
 *
 * The WAL lives in a timeline directory as PostgreSQL-format segment files
 * named like pg_wal's (timeline 1, kc_wal_file_name). The segment being
 * written, and any later one, carries the suffix ".partial" until all of its
 * bytes are durable; then it is renamed to its plain name. Segments are
 * preallocated to full size (zeros written once, fsynced) because
 * overwriting allocated blocks costs half of appending to a growing file;
 * segments that WAL removal gives up may be kept as "<name>.recycled" and
 * renamed into place later instead of allocating anew.
 *
 * The end of WAL (flush LSN) is not stored anywhere: a preallocated file is
 * full of zeros or of old WAL, so its size says nothing. sk_wal_open()
 * recovers it by reading the WAL itself, as PostgreSQL does: starting at an
 * LSN the caller knows is durable and never truncated (the control file's
 * commit_lsn), it follows page headers (magic, page address, segment
 * header) and records (length, CRC-32C, prev-link) and stops at the first
 * thing that is not valid WAL. Only complete records count, so the bytes of
 * a record whose tail never arrived are dropped at restart. Whatever lies
 * beyond the recovered end in the last segment is invalidated so that it can
 * never be mistaken for WAL later. docs/safekeeper-storage.md has the rules.
 *
 * Writes must continue exactly at the current end (sk_wal_write_lsn);
 * rewriting goes through sk_wal_truncate. sk_wal_flush makes everything
 * written durable; only then may the caller acknowledge it.
 *
 * Not thread-safe: one thread (or the caller's lock) per store. Not for
 * concurrent use by two processes on the same directory either.
 */
#ifndef SK_WAL_STORE_H
#define SK_WAL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/lsn.h"

#define SK_WAL_PAGE_SIZE      8192 /* XLOG_BLCKSZ */
#define SK_WAL_TIMELINE       1    /* PostgreSQL timeline of every file name */
#define SK_WAL_PARTIAL_SUFFIX ".partial"
#define SK_WAL_RECYCLE_SUFFIX ".recycled"
#define SK_WAL_PREALLOC_NAME  "wal-prealloc.tmp" /* a segment being zero-filled */
/* Recycled segments kept by default (options.max_recycled). */
#define SK_WAL_RECYCLE_DEFAULT 4

struct sk_wal_options {
    uint32_t seg_size;     /* WAL segment size: a power of two, 1 MiB .. 1 GiB */
    uint64_t system_id;    /* checked against segment headers; 0: not checked */
    kc_lsn start_lsn;      /* where this store's WAL begins (local_start_lsn): a record
                              boundary, or a page boundary */
    kc_lsn durable_lsn;    /* WAL below it is durable and will never be truncated (the
                              control file's commit_lsn); below start_lsn means start_lsn */
    unsigned max_recycled; /* removed segments to keep for reuse; 0: delete them */
};

struct sk_wal;

/*
 * sk_wal_open -- open the WAL in dir (which must exist), recover its end and
 * make it durable.
 *
 * The segment files must be contiguous, of size opts->seg_size, none below
 * the segment of opts->start_lsn, and reach durable_lsn; plain-named ones
 * come before ".partial" ones. Segments below the first one present count
 * as removed. The end of WAL is the end of the last valid record found from
 * the durable LSN on, and at least the durable LSN, which is the highest of
 * durable_lsn, the end of the last plain-named segment (its bytes were
 * durable before the rename) and the start of the first segment present
 * (only durable WAL is removed). Then: bytes past the end in its segment are invalidated,
 * later ".partial" segments deleted, full ".partial" segments renamed, a
 * leftover SK_WAL_PREALLOC_NAME removed, and everything fsynced.
 *
 * Returns 0 with *out (closed by sk_wal_close), or: KC_EINVAL (bad
 * options), KC_ENOTFOUND (no such directory), KC_ECORRUPT (missing,
 * misnamed or mis-sized segments, invalid WAL below durable_lsn; the
 * message names the file), KC_EIO.
 */
int sk_wal_open(const char *dir, const struct sk_wal_options *opts, struct sk_wal **out,
                struct kc_error *err) KC_MUSTCHECK;

/*
 * sk_wal_close -- close the files and free w (NULL is a no-op). Does not
 * flush: WAL written since the last sk_wal_flush may or may not survive,
 * and the next open recovers whatever valid WAL is there.
 */
void sk_wal_close(struct sk_wal *w);

/* Oldest LSN that can be read (rises with sk_wal_remove_before). */
kc_lsn sk_wal_begin_lsn(const struct sk_wal *w);
/* End of the WAL written so far: where the next write must start. */
kc_lsn sk_wal_write_lsn(const struct sk_wal *w);
/* End of the durable WAL (<= write LSN): what may be acknowledged. */
kc_lsn sk_wal_flush_lsn(const struct sk_wal *w);
/* Number of recycled segments waiting for reuse. */
unsigned sk_wal_recycled_count(const struct sk_wal *w);

/*
 * sk_wal_write -- write len bytes of WAL at lsn, which must equal the write
 * LSN: KC_EINVAL for a gap (lsn beyond it) or an overlap (lsn below it;
 * truncate first to rewrite). May span segments; a new segment is taken
 * from the recycled ones or preallocated (zero-filled and fsynced) first.
 * The bytes are not durable until sk_wal_flush. KC_EIO on a failed write,
 * after which the write LSN may have advanced over part of the data.
 */
int sk_wal_write(struct sk_wal *w, kc_lsn lsn, const void *data, size_t len,
                 struct kc_error *err) KC_MUSTCHECK;

/*
 * sk_wal_flush -- fdatasync every segment written since the last flush,
 * rename the segments that are now full to their plain names, fsync the
 * directory; then flush LSN = write LSN. If an fdatasync fails (KC_EIO) the
 * kernel may have dropped the data, so the store refuses all further
 * writes, flushes and truncations: restart to recover from the files. If
 * only a rename fails, the data is durable (the flush LSN has advanced) and
 * the next flush retries the rename.
 * Failpoints: safekeeper.wal.before-fsync (return(ERRNO) simulates a failed
 * fdatasync), safekeeper.wal.before-segment-rename.
 */
int sk_wal_flush(struct sk_wal *w, struct kc_error *err) KC_MUSTCHECK;

/*
 * sk_wal_read -- copy the WAL [lsn, lsn + len) into buf. The range must lie
 * within [begin LSN, flush LSN]: KC_ENOTFOUND when part of it was removed,
 * KC_EINVAL when it extends past the durable end (only durable WAL is
 * served). The caller serving learners bounds len by commit_lsn itself.
 */
int sk_wal_read(struct sk_wal *w, kc_lsn lsn, void *buf, size_t len,
                struct kc_error *err) KC_MUSTCHECK;

/*
 * sk_wal_truncate -- discard all WAL at and after lsn (begin <= lsn <=
 * write LSN), durably, before returning: written data below lsn is
 * fdatasynced, later segments deleted, lsn's segment renamed back to
 * ".partial", the bytes from lsn invalidated and fdatasynced. Then write
 * LSN = flush LSN = lsn. A crash midway leaves a prefix of the old WAL at
 * least lsn long. The caller must never truncate below the commit LSN it
 * has stored (the next open's durable_lsn). Failpoints:
 * safekeeper.wal.before-truncate-unlink, .before-truncate-rename,
 * .before-truncate-zero.
 */
int sk_wal_truncate(struct sk_wal *w, kc_lsn lsn, struct kc_error *err) KC_MUSTCHECK;

/*
 * sk_wal_remove_before -- give up every segment that lies entirely below
 * lsn (lsn <= flush LSN; KC_EINVAL otherwise), lowest first: kept as
 * "<name>.recycled" while fewer than max_recycled are waiting, deleted
 * otherwise; then the directory is fsynced and the begin LSN moves up.
 * Failpoint: safekeeper.wal.before-remove.
 */
int sk_wal_remove_before(struct sk_wal *w, kc_lsn lsn, struct kc_error *err) KC_MUSTCHECK;

#endif
