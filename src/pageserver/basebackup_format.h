/* SPDX-License-Identifier: Apache-2.0 */
/*
 * basebackup_format.h -- the PostgreSQL 15 files a basebackup generates:
 * pg_control, the synthetic shutdown checkpoint record and the WAL pages
 * around it (docs/basebackup.md), behind an interface free of PostgreSQL's
 * headers. Implemented with PostgreSQL's own structs, macros and CRC in
 * basebackup_format_pg.c.
 *
 * Everything here is pure computation on caller memory: thread-safe.
 */
#ifndef PS_BASEBACKUP_FORMAT_H
#define PS_BASEBACKUP_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/lsn.h"

#define PS_BB_PAGE_SIZE      8192 /* BLCKSZ and XLOG_BLCKSZ of our build */
#define PS_BB_CONTROL_SIZE   8192 /* PG_CONTROL_FILE_SIZE: bytes of global/pg_control */
#define PS_BB_CHECKPOINT_LEN 88   /* sizeof(CheckPoint) in PostgreSQL 15 */
/* Bytes of the synthetic record: 24 header + 2 short data header + CheckPoint. */
#define PS_BB_RECORD_LEN 114
/* OIDs added to nextOid when the state is not a shutdown at the start LSN (VAR_OID_PREFETCH). */
#define PS_BB_OID_MARGIN 8192

/* PostgreSQL's DBState values used here. */
#define PS_BB_DB_SHUTDOWNED    1
#define PS_BB_DB_IN_PRODUCTION 6

/*
 * LSN placement. A record starts MAXALIGNed (8 bytes), after its page's
 * header (24 bytes, 40 on a segment's first page). seg_size must be valid
 * (kc_wal_segsize_valid).
 */
bool ps_bb_lsn_valid(kc_lsn lsn, uint32_t seg_size);
/* Where a record written at end of WAL `end` starts: aligned up, past a page header. */
kc_lsn ps_bb_start_lsn(kc_lsn end, uint32_t seg_size);
/* The end of the synthetic record placed at lsn (continuation header included). */
kc_lsn ps_bb_record_end(kc_lsn lsn, uint32_t seg_size);

/* PostgreSQL's CheckPoint struct, without PostgreSQL's headers. */
struct ps_bb_checkpoint {
    kc_lsn redo;                /* REDO start point */
    uint32_t tli, prev_tli;     /* ThisTimeLineID, PrevTimeLineID */
    bool full_page_writes;      /* fullPageWrites */
    uint64_t next_xid;          /* nextXid: epoch << 32 | xid */
    uint32_t next_oid;          /* nextOid */
    uint32_t next_multi;        /* nextMulti */
    uint32_t next_multi_offset; /* nextMultiOffset */
    uint32_t oldest_xid, oldest_xid_db;
    uint32_t oldest_multi, oldest_multi_db;
    int64_t time; /* Unix seconds */
    uint32_t oldest_commit_ts_xid, newest_commit_ts_xid;
    uint32_t oldest_active_xid; /* 0 in shutdown checkpoints */
};

/* Parse a CheckPoint image (exactly PS_BB_CHECKPOINT_LEN bytes; KC_ECORRUPT otherwise). */
int ps_bb_checkpoint_parse(const uint8_t *img, size_t len, struct ps_bb_checkpoint *out,
                           struct kc_error *err) KC_MUSTCHECK;
/* The CheckPoint image of c (padding zeroed). */
void ps_bb_checkpoint_encode(const struct ps_bb_checkpoint *c, uint8_t out[PS_BB_CHECKPOINT_LEN]);

/* pg_control's copies of the settings a hot standby compares with its own. */
struct ps_bb_settings {
    int max_connections, max_worker_processes, max_wal_senders, max_prepared_xacts,
        max_locks_per_xact;
};

/* The fields of pg_control the basebackup reads or sets. */
struct ps_bb_control {
    uint64_t system_id;                 /* system_identifier */
    uint32_t state;                     /* DBState (PS_BB_DB_*) */
    int64_t time;                       /* last update, Unix seconds */
    kc_lsn checkpoint_lsn;              /* checkPoint */
    struct ps_bb_checkpoint checkpoint; /* checkPointCopy */
    kc_lsn min_recovery_point;          /* minRecoveryPoint */
    kc_lsn backup_start, backup_end;    /* backupStartPoint, backupEndPoint */
    uint32_t seg_size;                  /* xlog_seg_size */
    int wal_level;                      /* 1 replica, 2 logical */
    struct ps_bb_settings settings;
    uint32_t data_checksum_version; /* 0: no data checksums */
};

/*
 * ps_bb_control_parse -- check a pg_control image (sizeof(ControlFileData)
 * to PS_BB_CONTROL_SIZE bytes) as PostgreSQL 15.18 does when it starts:
 * format version, CRC, catalog version, the compile-time constants, the WAL
 * segment size. Returns 0 with *out filled, or KC_ECORRUPT / KC_EVERSION
 * naming the problem.
 */
int ps_bb_control_parse(const uint8_t *img, size_t len, struct ps_bb_control *out,
                        struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_bb_control_build -- a pg_control image with c's fields, this build's
 * compile-time constants and a correct CRC (the rest zero), padded to
 * PS_BB_CONTROL_SIZE bytes as PostgreSQL writes it. For tools and tests that
 * need a control file without a cluster.
 */
void ps_bb_control_build(const struct ps_bb_control *c, uint8_t out[PS_BB_CONTROL_SIZE]);

/*
 * ps_bb_control_finish -- turn a stored pg_control image (already checked
 * by ps_bb_control_parse, in a PS_BB_CONTROL_SIZE buffer) into the one a
 * compute starts from: checkPoint = ckpt->redo (the start LSN),
 * checkPointCopy = *ckpt, state shut down, no minimum recovery point or
 * backup in progress, time, the non-zero settings of s; CRC recomputed.
 */
void ps_bb_control_finish(uint8_t img[PS_BB_CONTROL_SIZE], const struct ps_bb_checkpoint *ckpt,
                          int64_t time, const struct ps_bb_settings *s);

/*
 * ps_bb_record_build -- the synthetic record: XLOG CHECKPOINT_SHUTDOWN with
 * ckpt as its data, xl_prev = prev, xl_xid 0, CRC set.
 */
void ps_bb_record_build(const struct ps_bb_checkpoint *ckpt, kc_lsn prev,
                        uint8_t out[PS_BB_RECORD_LEN]);

/*
 * ps_bb_wal_page -- the WAL page starting at pageptr (a page boundary at or
 * before the record's last byte, in the segment of lsn or the next one)
 * for a segment whose only record is `record` at lsn: a valid page header
 * (long on a segment's first page) on timeline tli; before lsn the pages
 * say "continuation data up to lsn" (XLP_FIRST_IS_CONTRECORD with
 * xlp_rem_len) so a sequential reader skips straight to the record; the
 * record's bytes, continued after the next page's header when they cross;
 * zeros elsewhere. page is PS_BB_PAGE_SIZE bytes, 8-byte aligned.
 */
void ps_bb_wal_page(kc_lsn pageptr, kc_lsn lsn, const uint8_t record[PS_BB_RECORD_LEN],
                    uint32_t tli, uint64_t system_id, uint32_t seg_size, uint8_t *page);

#endif
