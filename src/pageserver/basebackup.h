/* SPDX-License-Identifier: Apache-2.0 */
/*
 * basebackup.h -- a PostgreSQL 15 data directory, as a tar stream, that
 * starts at any LSN without WAL replay (docs/basebackup.md).
 *
 * The basebackup is made from a state reader (struct ps_bb_reader): the
 * images of keys (docs/pageserver-keys.md) at the backup LSN, and the keys
 * present in a range. It does not know where that state lives: the timeline
 * storage, or a stopped vanilla data directory (basebackup_datadir.h).
 *
 * The archive holds the files a compute needs and no relation data:
 * PG_VERSION, the empty directories of a PostgreSQL 15 data directory,
 * placeholder configuration files, per database PG_VERSION and
 * pg_filenode.map, the global pg_filenode.map, the SLRU segments (pg_xact,
 * pg_multixact), pg_twophase state files, standby.signal for a read-only
 * compute, then the WAL segment holding a synthetic shutdown checkpoint
 * record at exactly the start LSN, and last global/pg_control pointing at
 * that record (a stream cut anywhere before it has no pg_control and cannot
 * start). A fullbackup adds every relation fork's blocks, read through the
 * reader's page callback: a complete data directory, used by tests as an
 * oracle.
 *
 * PostgreSQL 15.18 reads the checkpoint record at pg_control's checkPoint,
 * sees redo == its own position and state "shut down", and starts with no
 * redo; its next record links back to the synthetic one.
 */
#ifndef PS_BASEBACKUP_H
#define PS_BASEBACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/lsn.h"
#include "common/tar.h"
#include "pageserver/basebackup_format.h"
#include "pageserver/key.h"

/* Largest value the basebackup accepts from the reader for one key. */
#define PS_BB_VALUE_MAX (64u * 1024 * 1024)

/* Called by ps_bb_reader.list for each key; 0 to go on, < 0 to stop with that error. */
typedef int (*ps_bb_key_fn)(void *fnarg, const struct ps_key *key, struct kc_error *err);

/*
 * Where the state comes from, as of the backup LSN. Every callback may fail
 * (< 0 with err filled); the basebackup stops and returns that error.
 */
struct ps_bb_reader {
    void *arg; /* passed to every callback */
    /*
     * get -- append the image of key to out (empty on entry). Returns 1
     * when the key has a value, 0 when it has none (never written, or
     * dropped). Used for the control file, the checkpoint, the database
     * directory, relmapper files, sizes, SLRU pages and twophase files.
     */
    int (*get)(void *arg, const struct ps_key *key, struct kc_sbuf *out, struct kc_error *err);
    /*
     * list -- call fn, in key order, for each key that has a value in
     * [start, end). Used for the SLRU segments, the twophase files and
     * (fullbackup) the relation forks of a database.
     */
    int (*list)(void *arg, const struct ps_key *start, const struct ps_key *end, ps_bb_key_fn fn,
                void *fnarg, struct kc_error *err);
    /*
     * page -- fullbackup only (may be NULL otherwise): the 8192-byte page
     * of a relation-block key into page. Returns 1, or 0 when the block
     * has no value (it is then written as zeros, as PostgreSQL reads a
     * hole).
     */
    int (*page)(void *arg, const struct ps_key *key, uint8_t *page, struct kc_error *err);
};

struct ps_bb_options {
    kc_lsn lsn;      /* start LSN: where the synthetic record goes (ps_bb_lsn_valid) */
    kc_lsn prev_lsn; /* its xl_prev: the previous record's start, or 0 (fresh start) */
    bool read_only;  /* add standby.signal: a read-only hot standby that never leaves recovery */
    bool full;       /* fullbackup: every relation fork's blocks too (needs reader->page) */
    int64_t mtime;   /* time of the tar entries and of pg_control; 0: now */
    struct ps_bb_settings settings; /* pg_control's copies of settings; 0 keeps the stored */
};

/* What a basebackup wrote (for logs, metrics and tests). */
struct ps_bb_result {
    kc_lsn record_end;   /* end of the synthetic record: where the compute's WAL continues */
    uint64_t next_xid;   /* nextXid written (epoch << 32 | xid) */
    uint32_t next_oid;   /* nextOid written (after the margin, see docs/basebackup.md) */
    bool oid_margin;     /* nextOid was raised: the state was not a shutdown at the LSN */
    uint32_t databases;  /* databases written */
    uint32_t slru_files; /* SLRU segment files */
    uint32_t twophase;   /* pg_twophase files */
    uint32_t rel_files;  /* relation segment files (fullbackup) */
    uint32_t wal_files;  /* WAL segments (2 when the record crosses a segment) */
    uint64_t bytes;      /* archive bytes */
};

/*
 * ps_basebackup_write -- write the basebackup at opts->lsn as a tar stream
 * through write(warg, ...). Reads and checks the control file, the
 * checkpoint and the database directory before writing anything, so those
 * errors produce no output; a later error (a corrupt relmapper file, a
 * reader or write failure) leaves a truncated stream with no pg_control,
 * which the caller discards. res may be NULL.
 */
int ps_basebackup_write(const struct ps_bb_reader *reader, const struct ps_bb_options *opts,
                        kc_tar_write_fn write, void *warg, struct ps_bb_result *res,
                        struct kc_error *err) KC_MUSTCHECK;

#endif
