/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wal_decoder.h -- PostgreSQL WAL bytes in, decoded records out.
 *
 * A thin, PostgreSQL-header-free interface over PostgreSQL 15.18's own
 * frontend WAL reader (xlogreader.c, compiled from the fetched source, as
 * pg_waldump does). The pageserver feeds it the byte stream it receives from
 * a safekeeper and gets records back with their block references, which
 * ingest maps to keys.
 *
 * Input must be contiguous and must start at a WAL page boundary (the
 * reader validates every page header); records are returned from the first
 * record that starts at or after the requested start LSN.
 *
 * Not thread-safe: one decoder per WAL stream.
 */
#ifndef PS_WAL_DECODER_H
#define PS_WAL_DECODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/lsn.h"

#define PS_WAL_PAGE_SIZE  8192 /* XLOG_BLCKSZ and BLCKSZ of our build */
#define PS_WAL_MAX_BLOCKS 33   /* XLR_MAX_BLOCK_ID + 1 */

/* One block reference of a record (PostgreSQL's DecodedBkpBlock, flattened). */
struct ps_wal_block_ref {
    uint8_t block_id; /* the record's own id for it (0..32) */
    uint32_t spcnode; /* tablespace oid */
    uint32_t dbnode;  /* database oid (0 for shared relations) */
    uint32_t relnode; /* relfilenode */
    uint8_t forknum;  /* 0 main, 1 fsm, 2 vm, 3 init */
    uint32_t blkno;   /* block number */
    bool will_init;   /* BKPBLOCK_WILL_INIT: redo rebuilds the page from nothing */
    bool has_image;   /* carries a full-page image (maybe only for consistency checks) */
    bool apply_image; /* the image is to be restored at redo */
    bool has_data;    /* carries rmgr-specific block data */
};

/* A decoded record; pointers stay valid until the next ps_wal_decoder_next(). */
struct ps_wal_record {
    kc_lsn lsn;               /* where it starts */
    kc_lsn end_lsn;           /* where the next record starts */
    uint8_t rmid;             /* resource manager id (RM_*_ID) */
    uint8_t info;             /* xl_info */
    uint32_t xid;             /* xl_xid */
    uint32_t total_len;       /* xl_tot_len: length of raw */
    const uint8_t *raw;       /* the record exactly as written (page headers removed) */
    const uint8_t *main_data; /* rmgr main data */
    uint32_t main_data_len;   /* its length */
    int nblocks;              /* entries used in blocks[] */
    struct ps_wal_block_ref blocks[PS_WAL_MAX_BLOCKS];
};

struct ps_wal_decoder;

/*
 * ps_wal_decoder_create -- a decoder that will return records starting at
 * start_lsn (which must be the start of a record, or the first record
 * boundary at a segment/page start). seg_size is the cluster's WAL segment
 * size; system_id, when non-zero, is checked against segment headers.
 * The caller frees it with ps_wal_decoder_destroy().
 */
int ps_wal_decoder_create(kc_lsn start_lsn, uint32_t seg_size, uint64_t system_id,
                          struct ps_wal_decoder **out, struct kc_error *err) KC_MUSTCHECK;
void ps_wal_decoder_destroy(struct ps_wal_decoder *d);

/* The LSN the next fed byte must have: where input must continue. */
kc_lsn ps_wal_decoder_input_end(const struct ps_wal_decoder *d);
/* The LSN where feeding must begin: start_lsn rounded down to its page. */
kc_lsn ps_wal_decoder_input_start(const struct ps_wal_decoder *d);

/*
 * ps_wal_decoder_feed -- append len bytes of WAL that start at lsn, which
 * must equal ps_wal_decoder_input_end() (KC_EINVAL otherwise: a gap or an
 * overlap). The bytes are copied.
 */
int ps_wal_decoder_feed(struct ps_wal_decoder *d, kc_lsn lsn, const void *data, size_t len,
                        struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_wal_decoder_next -- decode the next record. Returns 1 with *rec filled,
 * 0 when more input is needed (feed more and call again), or KC_ECORRUPT
 * when the WAL is invalid (the message is PostgreSQL's, with the LSN).
 */
int ps_wal_decoder_next(struct ps_wal_decoder *d, struct ps_wal_record *rec,
                        struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_wal_decoder_block_image -- the full-page image of block index i
 * (0 <= i < rec->nblocks, has_image set) of the record last returned,
 * decompressed and with its hole refilled, into page (PS_WAL_PAGE_SIZE bytes).
 */
int ps_wal_decoder_block_image(struct ps_wal_decoder *d, int i, uint8_t *page,
                               struct kc_error *err) KC_MUSTCHECK;

/* Name of a resource manager ("Heap", "Btree", ...), or "unknown". */
const char *ps_wal_rmgr_name(uint8_t rmid);

#endif
