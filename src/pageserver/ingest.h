/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ingest.h -- decoded WAL records in, key/value changes out.
 *
 * Ingest maps every PostgreSQL 15 WAL record to the keys it changes
 * (docs/pageserver-keys.md) and the values to store there at the record's
 * end LSN (docs/pageserver-ingest.md):
 *
 *  - every block reference: the restored full-page image when the record
 *    carries one to apply (an image, page LSN stamped), else the raw record
 *    (for the WAL-redo helper), with the block's will_init flag;
 *  - relation sizes, grown implicitly when a record touches a block past the
 *    end, set by smgr create/truncate, removed when a relation is dropped;
 *  - visibility-map pages whose bits heap records clear without
 *    referencing them;
 *  - CLOG and multixact pages (native records the pageserver applies itself),
 *    the relmapper files, the database directory, twophase state files and
 *    the checkpoint struct that basebackups start from.
 *
 * Ingest keeps small caches (relation sizes, the database directory, the
 * checkpoint) and reads what it does not know through ops->get. It is not
 * thread-safe: one ingest per timeline, fed in LSN order.
 */
#ifndef PS_INGEST_H
#define PS_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/lsn.h"
#include "pageserver/key.h"
#include "pageserver/value.h"
#include "pageserver/wal_decoder.h"

/* Where ingest reads and writes; the timeline's storage implements these. */
struct ps_ingest_ops {
    void *arg; /* passed to every callback */
    /* Store v for key at lsn (v's bytes are only borrowed for the call). */
    int (*put)(void *arg, const struct ps_key *key, kc_lsn lsn, const struct ps_value *v,
               struct kc_error *err);
    /* Remove every key in [start, end) as of lsn (reads at >= lsn find nothing). */
    int (*drop_range)(void *arg, const struct ps_key *start, const struct ps_key *end, kc_lsn lsn,
                      struct kc_error *err);
    /*
     * Copy the latest image stored for key into buf (at most cap bytes, *len
     * set to its full length). Returns 1 when found, 0 when the key has no
     * image (never written, or dropped), < 0 on error. Ingest reads only keys
     * it stores as images: sizes, the database directory, the checkpoint.
     */
    int (*get)(void *arg, const struct ps_key *key, uint8_t *buf, size_t cap, size_t *len,
               struct kc_error *err);
};

/* Native record types (the first byte of a PS_VALUE_NATIVE_RECORD value). */
enum ps_native_type {
    PS_NATIVE_CLOG_SET = 1,     /* u8 status, i64 commit time, u32 n, n x u32 xid */
    PS_NATIVE_VM_TRUNCATE = 2,  /* u32 first truncated heap block */
    PS_NATIVE_MXACT_OFFSET = 3, /* u32 multixact id, u32 its first member offset */
    PS_NATIVE_MXACT_MEMBERS = 4 /* u32 first offset, u32 n, n x (u32 xid, u8 status) */
};
#define PS_NATIVE_VERSION 1 /* the second byte of every native record */
#define PS_CLOG_COMMITTED 1
#define PS_CLOG_ABORTED   2
#define PS_DBDIR_VERSION  1 /* first byte of the database directory value */

struct ps_ingest;

/*
 * ps_ingest_create -- an ingest writing through ops (copied). seg_size is the
 * cluster's WAL segment size. The caller frees it with ps_ingest_destroy().
 */
int ps_ingest_create(const struct ps_ingest_ops *ops, struct ps_ingest **out,
                     struct kc_error *err) KC_MUSTCHECK;
void ps_ingest_destroy(struct ps_ingest *ing);

/*
 * ps_ingest_record -- apply one record, which dec returned last (its images
 * are read through dec). Records must come in LSN order.
 */
int ps_ingest_record(struct ps_ingest *ing, struct ps_wal_decoder *dec,
                     const struct ps_wal_record *rec, struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_ingest_flush -- store what ingest keeps in memory and has changed (the
 * checkpoint struct) at lsn, the end of the last record applied. Call it
 * before declaring WAL up to lsn durable.
 */
int ps_ingest_flush(struct ps_ingest *ing, kc_lsn lsn, struct kc_error *err) KC_MUSTCHECK;

/* Records applied so far, by outcome (for metrics and tests). */
struct ps_ingest_stats {
    uint64_t records;      /* records applied */
    uint64_t images;       /* page images stored */
    uint64_t pg_records;   /* raw records stored (one per block reference) */
    uint64_t native;       /* native records stored */
    uint64_t vm_routed;    /* heap records also stored on a visibility-map page */
    uint64_t size_changes; /* relation or SLRU size writes */
    uint64_t drops;        /* ranges dropped */
};
void ps_ingest_get_stats(const struct ps_ingest *ing, struct ps_ingest_stats *out);

/* Value encodings shared with readers (basebackup, reconstruction). */
uint32_t ps_size_decode(const uint8_t *buf, size_t len); /* 4-byte big-endian block count */

#endif
