/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ingest_pg.c -- PostgreSQL 15 WAL records to pageserver keys and values.
 *
 * See ingest.h for the contract and docs/pageserver-ingest.md for the rules
 * per resource manager. Record structs are read with PostgreSQL's own
 * headers (and commit/abort records with its own ParseCommitRecord and
 * ParseAbortRecord, compiled from the fetched source), never by hand.
 *
 * Main data is always copied into an aligned local before it is read as a
 * struct: the decoder's main data has no alignment guarantee.
 */
#include "postgres.h" /* with FRONTEND defined, as pg_waldump includes it */

#include "access/clog.h"
#include "access/heapam_xlog.h"
#include "access/multixact.h"
#include "access/rmgr.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog_internal.h"
#include "catalog/pg_control.h"
#include "catalog/storage_xlog.h"
#include "commands/dbcommands_xlog.h"
#include "storage/bufpage.h"
#include "utils/relmapper.h"

#include "pageserver/ingest.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/hashmap.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

/* Layout constants PostgreSQL keeps private to its .c files (15.18, 8 kB blocks). */
#define PS_CLOG_XACTS_PER_PAGE    (BLCKSZ * 4)                       /* clog.c: 2 bits per xact */
#define PS_SLRU_PAGES_PER_SEG     32                                 /* slru.h */
#define PS_MXOFF_PER_PAGE         (BLCKSZ / sizeof(MultiXactOffset)) /* multixact.c */
#define PS_MXMEMBERS_PER_GROUP    4
#define PS_MXGROUP_SIZE           (sizeof(TransactionId) * 4 + 4)
#define PS_MXMEMBERS_PER_PAGE     ((BLCKSZ / PS_MXGROUP_SIZE) * PS_MXMEMBERS_PER_GROUP)
#define PS_VM_MAPSIZE             (BLCKSZ - MAXALIGN(SizeOfPageHeaderData)) /* visibilitymap.c */
#define PS_VM_HEAPBLOCKS_PER_BYTE 4
#define PS_VM_HEAPBLOCKS_PER_PAGE (PS_VM_MAPSIZE * PS_VM_HEAPBLOCKS_PER_BYTE)
#define PS_FSM_NODES_PER_PAGE \
    (BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - sizeof(int)) /* fsm_internals.h */
#define PS_FSM_NONLEAF_PER_PAGE (BLCKSZ / 2 - 1)
#define PS_FSM_SLOTS_PER_PAGE   (PS_FSM_NODES_PER_PAGE - PS_FSM_NONLEAF_PER_PAGE)
#define PS_FSM_TREE_DEPTH       ((PS_FSM_SLOTS_PER_PAGE >= 1626) ? 3 : 4)

#define PS_FORK_MAIN 0
#define PS_FORK_FSM  1
#define PS_FORK_VM   2
#define PS_NFORKS    4

/* Key of the relation-size cache: one relation fork. */
struct ps_relfork {
    uint32_t spc, db, rel;
    uint32_t fork;
};

struct ps_ingest {
    struct ps_ingest_ops ops;
    struct kc_hmap *relsize; /* ps_relfork -> nblocks; UINT64_MAX = known absent */
    CheckPoint ckpt;         /* current checkpoint struct */
    bool ckpt_loaded;        /* ckpt read from storage (or none there) */
    bool ckpt_dirty;         /* changed since the last flush */
    struct ps_ingest_stats stats;
    struct kc_sbuf scratch; /* encoding buffer for native records */
    /*
     * Forks a record's block references grew: their sizes are stored once,
     * at the end of the record (a store holds one value per key and LSN).
     */
    struct ps_relfork grown[PS_WAL_MAX_BLOCKS];
    int ngrown;
};

#define PS_SIZE_ABSENT UINT64_MAX

uint32_t ps_size_decode(const uint8_t *buf, size_t len)
{
    return len == 4 ? kc_load_u32(buf) : 0;
}

static struct ps_relfork ps_relfork(uint32_t spc, uint32_t db, uint32_t rel, uint32_t fork)
{
    struct ps_relfork rf;
    memset(&rf, 0, sizeof(rf));
    rf.spc = spc;
    rf.db = db;
    rf.rel = rel;
    rf.fork = fork;
    return rf;
}

static int ps_put(struct ps_ingest *ing, const struct ps_key *key, kc_lsn lsn,
                  const struct ps_value *v, struct kc_error *err)
{
    return ing->ops.put(ing->ops.arg, key, lsn, v, err);
}

static int ps_drop(struct ps_ingest *ing, const struct ps_key *start, const struct ps_key *end,
                   kc_lsn lsn, struct kc_error *err)
{
    ing->stats.drops++;
    return ing->ops.drop_range(ing->ops.arg, start, end, lsn, err);
}

/* The current size of a relation fork: 1 and *nblocks, or 0 when it does not exist. */
static int ps_relsize_get(struct ps_ingest *ing, struct ps_relfork rf, uint32_t *nblocks,
                          struct kc_error *err)
{
    uint64_t v;
    uint8_t buf[8];
    size_t len = 0;
    int rc;

    if (kc_hmap_get(ing->relsize, &rf, &v)) {
        if (v == PS_SIZE_ABSENT)
            return 0;
        *nblocks = (uint32_t)v;
        return 1;
    }
    {
        struct ps_key k = ps_key_rel_size(rf.spc, rf.db, rf.rel, (uint8_t)rf.fork);
        rc = ing->ops.get(ing->ops.arg, &k, buf, sizeof(buf), &len, err);
    }
    if (rc < 0)
        return rc;
    if (rc == 1 && len != 4)
        return kc_error_set(err, KC_ECORRUPT, "relation size of %u/%u/%u fork %u has %zu bytes",
                            rf.spc, rf.db, rf.rel, rf.fork, len);
    kc_hmap_put(ing->relsize, &rf, rc == 1 ? kc_load_u32(buf) : PS_SIZE_ABSENT);
    if (rc == 1)
        *nblocks = kc_load_u32(buf);
    return rc;
}

static int ps_relsize_set(struct ps_ingest *ing, struct ps_relfork rf, uint32_t nblocks, kc_lsn lsn,
                          struct kc_error *err)
{
    struct ps_key k = ps_key_rel_size(rf.spc, rf.db, rf.rel, (uint8_t)rf.fork);
    uint8_t buf[4];
    struct ps_value v;

    kc_store_u32(buf, nblocks);
    v = ps_value_image(buf, sizeof(buf));
    kc_hmap_put(ing->relsize, &rf, nblocks);
    ing->stats.size_changes++;
    return ps_put(ing, &k, lsn, &v, err);
}

/*
 * A block at blkno is being written: grow the fork to cover it. The new size
 * is stored by ps_relsize_store_grown() when the record is done.
 */
static int ps_relsize_cover(struct ps_ingest *ing, struct ps_relfork rf, uint32_t blkno,
                            struct kc_error *err)
{
    uint32_t n = 0;
    int rc = ps_relsize_get(ing, rf, &n, err);

    if (rc < 0)
        return rc;
    if (rc == 1 && blkno < n)
        return 0;
    kc_hmap_put(ing->relsize, &rf, (uint64_t)blkno + 1);
    for (int i = 0; i < ing->ngrown; i++)
        if (memcmp(&ing->grown[i], &rf, sizeof(rf)) == 0)
            return 0;
    ing->grown[ing->ngrown++] = rf;
    return 0;
}

/* Store the sizes of the forks the current record grew. */
static int ps_relsize_store_grown(struct ps_ingest *ing, kc_lsn lsn, struct kc_error *err)
{
    int rc = 0;

    for (int i = 0; i < ing->ngrown && rc == 0; i++) {
        uint64_t n;
        if (kc_hmap_get(ing->relsize, &ing->grown[i], &n) && n != PS_SIZE_ABSENT)
            rc = ps_relsize_set(ing, ing->grown[i], (uint32_t)n, lsn, err);
    }
    ing->ngrown = 0;
    return rc;
}

/* All keys of a relation (every fork, blocks and sizes), as a range. */
static void ps_rel_range(uint32_t spc, uint32_t db, uint32_t rel, struct ps_key *start,
                         struct ps_key *end)
{
    *start = ps_key_rel_block(spc, db, rel, 0, 0);
    *end = ps_key_rel_size(spc, db, rel, 0xFF);
    *end = ps_key_next(end);
}

/* Drop a whole relation (all forks) at lsn. */
static int ps_drop_relation(struct ps_ingest *ing, RelFileNode rnode, kc_lsn lsn,
                            struct kc_error *err)
{
    struct ps_key start, end;

    ps_rel_range(rnode.spcNode, rnode.dbNode, rnode.relNode, &start, &end);
    for (uint32_t f = 0; f < PS_NFORKS; f++) {
        struct ps_relfork rf = ps_relfork(rnode.spcNode, rnode.dbNode, rnode.relNode, f);
        kc_hmap_put(ing->relsize, &rf, PS_SIZE_ABSENT);
    }
    return ps_drop(ing, &start, &end, lsn, err);
}

/* Forget cached sizes of one database (after it was dropped). */
struct ps_forget_db {
    struct kc_hmap *m;
    uint32_t spc, db;
    struct ps_relfork found[256];
    int n;
};

static bool ps_forget_db_cb(void *arg, const void *key, uint64_t value)
{
    struct ps_forget_db *f = arg;
    struct ps_relfork rf;

    (void)value;
    memcpy(&rf, key, sizeof(rf));
    if (rf.spc == f->spc && rf.db == f->db)
        f->found[f->n++] = rf;
    return f->n < (int)(sizeof(f->found) / sizeof(f->found[0]));
}

static void ps_forget_db(struct ps_ingest *ing, uint32_t spc, uint32_t db)
{
    struct ps_forget_db f = {.m = ing->relsize, .spc = spc, .db = db};

    do {
        f.n = 0;
        kc_hmap_foreach(ing->relsize, ps_forget_db_cb, &f);
        for (int i = 0; i < f.n; i++)
            kc_hmap_remove(ing->relsize, &f.found[i]);
    } while (f.n == (int)(sizeof(f.found) / sizeof(f.found[0])));
}

/* ---- native records ---------------------------------------------------- */

static int ps_put_native(struct ps_ingest *ing, const struct ps_key *key, kc_lsn lsn,
                         bool will_init, struct kc_error *err)
{
    struct ps_value v = ps_value_record(PS_VALUE_NATIVE_RECORD, will_init, ing->scratch.data,
                                        (uint32_t)ing->scratch.len);
    ing->stats.native++;
    return ps_put(ing, key, lsn, &v, err);
}

static void ps_native_begin(struct ps_ingest *ing, enum ps_native_type type)
{
    kc_sbuf_reset(&ing->scratch);
    kc_sbuf_put_u8(&ing->scratch, (uint8_t)type);
    kc_sbuf_put_u8(&ing->scratch, PS_NATIVE_VERSION);
}

/* A zeroed SLRU page (CLOG or multixact): an image, and the segment grows. */
static int ps_slru_zero_page(struct ps_ingest *ing, enum ps_slru_kind kind, int64 pageno,
                             kc_lsn lsn, struct kc_error *err)
{
    static const uint8_t zeros[BLCKSZ];
    uint32_t segno = (uint32_t)(pageno / PS_SLRU_PAGES_PER_SEG);
    uint32_t blk = (uint32_t)(pageno % PS_SLRU_PAGES_PER_SEG);
    struct ps_key k = ps_key_slru_block(kind, segno, blk);
    struct ps_key sk = ps_key_slru_size(kind, segno);
    struct ps_value v = ps_value_image(zeros, BLCKSZ);
    uint8_t cur[8], nb[4];
    size_t len = 0;
    int rc;

    ing->stats.images++;
    rc = ps_put(ing, &k, lsn, &v, err);
    if (rc != 0)
        return rc;
    rc = ing->ops.get(ing->ops.arg, &sk, cur, sizeof(cur), &len, err);
    if (rc < 0)
        return rc;
    if (rc == 1 && len == 4 && kc_load_u32(cur) > blk)
        return 0;
    kc_store_u32(nb, blk + 1);
    v = ps_value_image(nb, sizeof(nb));
    ing->stats.size_changes++;
    return ps_put(ing, &sk, lsn, &v, err);
}

/* Drop SLRU segments [0, before_segno) of kind (no wraparound handling yet). */
static int ps_slru_truncate(struct ps_ingest *ing, enum ps_slru_kind kind, uint32_t before_segno,
                            kc_lsn lsn, struct kc_error *err)
{
    struct ps_key start, end;

    if (before_segno == 0)
        return 0;
    start = ps_key_slru_block(kind, 0, 0);
    end = ps_key_slru_block(kind, before_segno, 0);
    return ps_drop(ing, &start, &end, lsn, err);
}

/* CLOG status for xids (top-level plus subtransactions), one native record per page. */
static int ps_clog_set(struct ps_ingest *ing, TransactionId xid, int nsub,
                       const TransactionId *subxacts, uint8_t status, int64_t xact_time, kc_lsn lsn,
                       struct kc_error *err)
{
    int n = nsub + 1;
    TransactionId *all = kc_malloc(sizeof(TransactionId) * (size_t)n);
    bool *done = kc_calloc((size_t)n, sizeof(bool));
    int rc = 0;

    all[0] = xid;
    if (nsub > 0)
        memcpy(all + 1, subxacts, sizeof(TransactionId) * (size_t)nsub);
    for (int i = 0; i < n && rc == 0; i++) {
        uint32_t pageno;
        size_t count_at;
        uint32_t count = 0;
        struct ps_key k;

        if (done[i])
            continue;
        pageno = all[i] / PS_CLOG_XACTS_PER_PAGE;
        ps_native_begin(ing, PS_NATIVE_CLOG_SET);
        kc_sbuf_put_u8(&ing->scratch, status);
        kc_sbuf_put_u64(&ing->scratch, (uint64_t)xact_time);
        count_at = ing->scratch.len;
        kc_sbuf_put_u32(&ing->scratch, 0);
        for (int j = i; j < n; j++) {
            if (!done[j] && all[j] / PS_CLOG_XACTS_PER_PAGE == pageno) {
                kc_sbuf_put_u32(&ing->scratch, all[j]);
                done[j] = true;
                count++;
            }
        }
        kc_sbuf_patch_u32(&ing->scratch, count_at, count);
        k = ps_key_slru_block(PS_SLRU_CLOG, pageno / PS_SLRU_PAGES_PER_SEG,
                              pageno % PS_SLRU_PAGES_PER_SEG);
        rc = ps_put_native(ing, &k, lsn, false, err);
    }
    free(all);
    free(done);
    return rc;
}

/* ---- the checkpoint struct -------------------------------------------- */

static int ps_ckpt_load(struct ps_ingest *ing, struct kc_error *err)
{
    struct ps_key k = ps_key_checkpoint();
    size_t len = 0;
    int rc;

    if (ing->ckpt_loaded)
        return 0;
    rc = ing->ops.get(ing->ops.arg, &k, (uint8_t *)&ing->ckpt, sizeof(ing->ckpt), &len, err);
    if (rc < 0)
        return rc;
    if (rc == 1 && len != sizeof(CheckPoint))
        return kc_error_set(err, KC_ECORRUPT, "stored checkpoint has %zu bytes, expected %zu", len,
                            sizeof(CheckPoint));
    if (rc == 0)
        memset(&ing->ckpt, 0, sizeof(ing->ckpt));
    ing->ckpt_loaded = true;
    return 0;
}

/*
 * Modulo-2^32 comparisons, as transam.c and multixact.c define them (those
 * are backend files we do not link).
 */
static bool ps_xid_follows_or_equals(TransactionId a, TransactionId b)
{
    if (!TransactionIdIsNormal(a) || !TransactionIdIsNormal(b))
        return a >= b;
    return (int32)(a - b) >= 0;
}

static bool ps_multi_precedes(MultiXactId a, MultiXactId b)
{
    return (int32)(a - b) < 0;
}

/* Advance nextXid past xid (modulo 2^32, carrying the epoch). */
static void ps_ckpt_see_xid(struct ps_ingest *ing, TransactionId xid)
{
    TransactionId next = XidFromFullTransactionId(ing->ckpt.nextXid);
    uint32 epoch = EpochFromFullTransactionId(ing->ckpt.nextXid);

    if (!TransactionIdIsNormal(xid))
        return;
    if (!TransactionIdIsValid(next) || ps_xid_follows_or_equals(xid, next)) {
        TransactionId nxt = xid + 1;
        if (nxt < xid || nxt < FirstNormalTransactionId) { /* wrapped */
            nxt = FirstNormalTransactionId;
            epoch++;
        } else if (TransactionIdIsValid(next) && xid < next)
            epoch++; /* xid is "after" next only modulo 2^32 */
        ing->ckpt.nextXid = FullTransactionIdFromEpochAndXid(epoch, nxt);
        ing->ckpt_dirty = true;
    }
}

int ps_ingest_flush(struct ps_ingest *ing, kc_lsn lsn, struct kc_error *err)
{
    struct ps_key k = ps_key_checkpoint();
    struct ps_value v;
    int rc;

    if (!ing->ckpt_dirty)
        return 0;
    v = ps_value_image(&ing->ckpt, sizeof(ing->ckpt));
    rc = ps_put(ing, &k, lsn, &v, err);
    if (rc == 0)
        ing->ckpt_dirty = false;
    return rc;
}

/* ---- block references ---------------------------------------------------- */

/* Store what one block reference means for its page. */
static int ps_ingest_block(struct ps_ingest *ing, struct ps_wal_decoder *dec,
                           const struct ps_wal_record *rec, int i, struct kc_error *err)
{
    const struct ps_wal_block_ref *b = &rec->blocks[i];
    struct ps_key k = ps_key_rel_block(b->spcnode, b->dbnode, b->relnode, b->forknum, b->blkno);
    struct ps_value v;
    int rc;

    rc = ps_relsize_cover(ing, ps_relfork(b->spcnode, b->dbnode, b->relnode, b->forknum), b->blkno,
                          err);
    if (rc != 0)
        return rc;
    if (b->has_image && b->apply_image) {
        PGAlignedBlock page;

        rc = ps_wal_decoder_block_image(dec, i, (uint8_t *)page.data, err);
        if (rc != 0)
            return rc;
        /* Redo stamps the record's end LSN on a restored page (unless it is new). */
        if (!PageIsNew((Page)page.data))
            PageSetLSN((Page)page.data, rec->end_lsn);
        v = ps_value_image(page.data, BLCKSZ);
        ing->stats.images++;
        return ps_put(ing, &k, rec->end_lsn, &v, err);
    }
    v = ps_value_record(PS_VALUE_PG_RECORD, b->will_init, rec->raw, rec->total_len);
    ing->stats.pg_records++;
    return ps_put(ing, &k, rec->end_lsn, &v, err);
}

/*
 * Heap records that clear visibility-map bits do not reference the VM page:
 * store the record on that page too, so that redo of the page clears them.
 * Only pages that exist get it (a bit cannot be set on a page never made).
 */
static int ps_vm_route(struct ps_ingest *ing, const struct ps_wal_record *rec, int bi,
                       uint32_t *last_vm_blk, struct kc_error *err)
{
    const struct ps_wal_block_ref *b;
    uint32_t vm_blk, vm_size = 0;
    struct ps_key k;
    struct ps_value v;
    int rc;

    if (bi < 0 || bi >= rec->nblocks)
        return 0;
    b = &rec->blocks[bi];
    vm_blk = b->blkno / PS_VM_HEAPBLOCKS_PER_PAGE;
    if (*last_vm_blk == vm_blk)
        return 0;
    rc = ps_relsize_get(ing, ps_relfork(b->spcnode, b->dbnode, b->relnode, PS_FORK_VM), &vm_size,
                        err);
    if (rc <= 0 || vm_blk >= vm_size)
        return rc < 0 ? rc : 0;
    *last_vm_blk = vm_blk;
    k = ps_key_rel_block(b->spcnode, b->dbnode, b->relnode, PS_FORK_VM, vm_blk);
    v = ps_value_record(PS_VALUE_PG_RECORD, false, rec->raw, rec->total_len);
    ing->stats.vm_routed++;
    return ps_put(ing, &k, rec->end_lsn, &v, err);
}

/* Index in rec->blocks of the reference with block_id, or -1. */
static int ps_block_index(const struct ps_wal_record *rec, uint8_t block_id)
{
    for (int i = 0; i < rec->nblocks; i++)
        if (rec->blocks[i].block_id == block_id)
            return i;
    return -1;
}

/* Copy main data into dst (size n) when it is at least min bytes long. */
static bool ps_main(const struct ps_wal_record *rec, void *dst, size_t n, size_t min)
{
    memset(dst, 0, n);
    if (rec->main_data_len < min)
        return false;
    memcpy(dst, rec->main_data, rec->main_data_len < n ? rec->main_data_len : n);
    return true;
}

static int ps_bad_record(const struct ps_wal_record *rec, struct kc_error *err)
{
    return kc_error_set(err, KC_ECORRUPT, "%s record at %X/%X (info 0x%02X) is too short",
                        ps_wal_rmgr_name(rec->rmid), LSN_FORMAT_ARGS(rec->lsn), rec->info);
}

static int ps_ingest_heap_vm(struct ps_ingest *ing, const struct ps_wal_record *rec,
                             struct kc_error *err)
{
    uint8 op = rec->info & XLOG_HEAP_OPMASK;
    uint32_t last = UINT32_MAX;
    int rc = 0;

    if (rec->rmid == RM_HEAP_ID) {
        if (op == XLOG_HEAP_INSERT) {
            xl_heap_insert x;
            if (!ps_main(rec, &x, sizeof(x), SizeOfHeapInsert))
                return ps_bad_record(rec, err);
            if (x.flags & XLH_INSERT_ALL_VISIBLE_CLEARED)
                rc = ps_vm_route(ing, rec, ps_block_index(rec, 0), &last, err);
        } else if (op == XLOG_HEAP_DELETE) {
            xl_heap_delete x;
            if (!ps_main(rec, &x, sizeof(x), SizeOfHeapDelete))
                return ps_bad_record(rec, err);
            if (x.flags & XLH_DELETE_ALL_VISIBLE_CLEARED)
                rc = ps_vm_route(ing, rec, ps_block_index(rec, 0), &last, err);
        } else if (op == XLOG_HEAP_UPDATE || op == XLOG_HEAP_HOT_UPDATE) {
            xl_heap_update x;
            int old_bi = ps_block_index(rec, 1);
            if (!ps_main(rec, &x, sizeof(x), SizeOfHeapUpdate))
                return ps_bad_record(rec, err);
            if (x.flags & XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED)
                rc = ps_vm_route(ing, rec, ps_block_index(rec, 0), &last, err);
            if (rc == 0 && (x.flags & XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED))
                rc = ps_vm_route(ing, rec, old_bi >= 0 ? old_bi : ps_block_index(rec, 0), &last,
                                 err);
        } else if (op == XLOG_HEAP_LOCK) {
            xl_heap_lock x;
            if (!ps_main(rec, &x, sizeof(x), SizeOfHeapLock))
                return ps_bad_record(rec, err);
            if (x.flags & XLH_LOCK_ALL_FROZEN_CLEARED)
                rc = ps_vm_route(ing, rec, ps_block_index(rec, 0), &last, err);
        }
    } else if (rec->rmid == RM_HEAP2_ID) {
        if (op == XLOG_HEAP2_MULTI_INSERT) {
            xl_heap_multi_insert x;
            if (!ps_main(rec, &x, sizeof(x), SizeOfHeapMultiInsert))
                return ps_bad_record(rec, err);
            if (x.flags & XLH_INSERT_ALL_VISIBLE_CLEARED)
                rc = ps_vm_route(ing, rec, ps_block_index(rec, 0), &last, err);
        } else if (op == XLOG_HEAP2_LOCK_UPDATED) {
            xl_heap_lock_updated x;
            if (!ps_main(rec, &x, sizeof(x), SizeOfHeapLockUpdated))
                return ps_bad_record(rec, err);
            if (x.flags & XLH_LOCK_ALL_FROZEN_CLEARED)
                rc = ps_vm_route(ing, rec, ps_block_index(rec, 0), &last, err);
        }
    }
    return rc;
}

/* ---- storage manager: create and truncate ------------------------------ */

/* FSM blocks that remain when the heap keeps nheap blocks (freespace.c logic). */
static uint32_t ps_fsm_blocks_for(uint32_t nheap)
{
    uint32_t logpageno = nheap / PS_FSM_SLOTS_PER_PAGE;
    uint32_t slot = nheap % PS_FSM_SLOTS_PER_PAGE;
    uint64_t leafno = logpageno, pages = 0;

    for (int l = 0; l < PS_FSM_TREE_DEPTH; l++) {
        pages += leafno + 1;
        leafno /= PS_FSM_SLOTS_PER_PAGE;
    }
    /* fsm_logical_to_physical() of the bottom-level page, +1 if it is partly kept */
    return (uint32_t)(pages - 1) + (slot > 0 ? 1 : 0);
}

/* Truncate one fork to nblocks: drop the blocks past it, then set the size. */
static int ps_truncate_fork(struct ps_ingest *ing, struct ps_relfork rf, uint32_t nblocks,
                            kc_lsn lsn, struct kc_error *err)
{
    uint32_t cur = 0;
    struct ps_key start, end;
    int rc = ps_relsize_get(ing, rf, &cur, err);

    if (rc <= 0 || cur <= nblocks)
        return rc < 0 ? rc : 0;
    start = ps_key_rel_block(rf.spc, rf.db, rf.rel, (uint8_t)rf.fork, nblocks);
    end = ps_key_rel_size(rf.spc, rf.db, rf.rel, (uint8_t)rf.fork);
    rc = ps_drop(ing, &start, &end, lsn, err);
    return rc != 0 ? rc : ps_relsize_set(ing, rf, nblocks, lsn, err);
}

static int ps_ingest_smgr(struct ps_ingest *ing, const struct ps_wal_record *rec,
                          struct kc_error *err)
{
    uint8 info = rec->info & ~XLR_INFO_MASK;
    uint32_t n = 0;
    int rc;

    if (info == XLOG_SMGR_CREATE) {
        xl_smgr_create x;
        struct ps_relfork rf;
        if (!ps_main(rec, &x, sizeof(x), sizeof(x)))
            return ps_bad_record(rec, err);
        rf = ps_relfork(x.rnode.spcNode, x.rnode.dbNode, x.rnode.relNode, (uint32_t)x.forkNum);
        rc = ps_relsize_get(ing, rf, &n, err);
        if (rc != 0)
            return rc < 0 ? rc : 0; /* exists already: keep its size, as smgrcreate does */
        return ps_relsize_set(ing, rf, 0, rec->end_lsn, err);
    }
    if (info == XLOG_SMGR_TRUNCATE) {
        xl_smgr_truncate x;
        RelFileNode r;
        if (!ps_main(rec, &x, sizeof(x), sizeof(x)))
            return ps_bad_record(rec, err);
        r = x.rnode;
        if (x.flags & SMGR_TRUNCATE_HEAP) {
            rc = ps_truncate_fork(ing, ps_relfork(r.spcNode, r.dbNode, r.relNode, PS_FORK_MAIN),
                                  x.blkno, rec->end_lsn, err);
            if (rc != 0)
                return rc;
        }
        if (x.flags & SMGR_TRUNCATE_FSM) {
            rc = ps_truncate_fork(ing, ps_relfork(r.spcNode, r.dbNode, r.relNode, PS_FORK_FSM),
                                  ps_fsm_blocks_for(x.blkno), rec->end_lsn, err);
            if (rc != 0)
                return rc;
        }
        if (x.flags & SMGR_TRUNCATE_VM) {
            struct ps_relfork rf = ps_relfork(r.spcNode, r.dbNode, r.relNode, PS_FORK_VM);
            uint32_t vm_blk = x.blkno / PS_VM_HEAPBLOCKS_PER_PAGE;
            bool partial = x.blkno % PS_VM_HEAPBLOCKS_PER_PAGE != 0;

            rc = ps_relsize_get(ing, rf, &n, err);
            if (rc < 0)
                return rc;
            if (rc == 1 && partial && vm_blk < n) {
                /* Clear the bits of the truncated heap blocks on the last kept page. */
                struct ps_key k =
                    ps_key_rel_block(r.spcNode, r.dbNode, r.relNode, PS_FORK_VM, vm_blk);
                ps_native_begin(ing, PS_NATIVE_VM_TRUNCATE);
                kc_sbuf_put_u32(&ing->scratch, x.blkno);
                rc = ps_put_native(ing, &k, rec->end_lsn, false, err);
                if (rc != 0)
                    return rc;
            }
            rc = ps_truncate_fork(ing, rf, vm_blk + (partial ? 1 : 0), rec->end_lsn, err);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* ---- transactions -------------------------------------------------------- */

static int ps_drop_rels(struct ps_ingest *ing, int n, const RelFileNode *nodes, kc_lsn lsn,
                        struct kc_error *err)
{
    for (int i = 0; i < n; i++) {
        int rc = ps_drop_relation(ing, nodes[i], lsn, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int ps_twophase_remove(struct ps_ingest *ing, TransactionId xid, kc_lsn lsn,
                              struct kc_error *err)
{
    struct ps_key k = ps_key_twophase_file(xid), end = ps_key_next(&k);
    return ps_drop(ing, &k, &end, lsn, err);
}

static int ps_ingest_xact(struct ps_ingest *ing, const struct ps_wal_record *rec,
                          struct kc_error *err)
{
    uint8 info = rec->info & XLOG_XACT_OPMASK;
    /* Parse*Record read the record in place: give them an aligned copy. */
    char *copy;
    int rc = 0;

    if (info != XLOG_XACT_COMMIT && info != XLOG_XACT_COMMIT_PREPARED && info != XLOG_XACT_ABORT &&
        info != XLOG_XACT_ABORT_PREPARED && info != XLOG_XACT_PREPARE)
        return 0; /* assignment, invalidations: nothing stored */
    if (rec->main_data_len < MinSizeOfXactCommit)
        return ps_bad_record(rec, err);
    copy = kc_malloc(MAXALIGN(rec->main_data_len) + 8);
    memcpy(copy, rec->main_data, rec->main_data_len);
    if (info == XLOG_XACT_COMMIT || info == XLOG_XACT_COMMIT_PREPARED) {
        xl_xact_parsed_commit p;
        TransactionId xid;

        ParseCommitRecord(rec->info, (xl_xact_commit *)copy, &p);
        xid = info == XLOG_XACT_COMMIT ? rec->xid : p.twophase_xid;
        for (int i = 0; i < p.nsubxacts; i++)
            ps_ckpt_see_xid(ing, p.subxacts[i]);
        rc = ps_clog_set(ing, xid, p.nsubxacts, p.subxacts, PS_CLOG_COMMITTED, p.xact_time,
                         rec->end_lsn, err);
        if (rc == 0)
            rc = ps_drop_rels(ing, p.nrels, p.xnodes, rec->end_lsn, err);
        if (rc == 0 && info == XLOG_XACT_COMMIT_PREPARED)
            rc = ps_twophase_remove(ing, xid, rec->end_lsn, err);
    } else if (info == XLOG_XACT_ABORT || info == XLOG_XACT_ABORT_PREPARED) {
        xl_xact_parsed_abort p;
        TransactionId xid;

        ParseAbortRecord(rec->info, (xl_xact_abort *)copy, &p);
        xid = info == XLOG_XACT_ABORT ? rec->xid : p.twophase_xid;
        for (int i = 0; i < p.nsubxacts; i++)
            ps_ckpt_see_xid(ing, p.subxacts[i]);
        rc = ps_clog_set(ing, xid, p.nsubxacts, p.subxacts, PS_CLOG_ABORTED, 0, rec->end_lsn, err);
        if (rc == 0)
            rc = ps_drop_rels(ing, p.nrels, p.xnodes, rec->end_lsn, err);
        if (rc == 0 && info == XLOG_XACT_ABORT_PREPARED)
            rc = ps_twophase_remove(ing, xid, rec->end_lsn, err);
    } else {
        /* PREPARE: the record's main data is the two-phase state file. */
        struct ps_key k = ps_key_twophase_file(rec->xid);
        struct ps_value v = ps_value_image(rec->main_data, rec->main_data_len);
        rc = ps_put(ing, &k, rec->end_lsn, &v, err);
    }
    free(copy);
    return rc;
}

/* ---- CLOG and multixacts ------------------------------------------------- */

static int ps_ingest_clog(struct ps_ingest *ing, const struct ps_wal_record *rec,
                          struct kc_error *err)
{
    uint8 info = rec->info & ~XLR_INFO_MASK;

    if (info == CLOG_ZEROPAGE) {
        int pageno;
        if (!ps_main(rec, &pageno, sizeof(pageno), sizeof(pageno)))
            return ps_bad_record(rec, err);
        return ps_slru_zero_page(ing, PS_SLRU_CLOG, pageno, rec->end_lsn, err);
    }
    if (info == CLOG_TRUNCATE) {
        xl_clog_truncate x;
        if (!ps_main(rec, &x, sizeof(x), sizeof(x)))
            return ps_bad_record(rec, err);
        ing->ckpt.oldestXid = x.oldestXact;
        ing->ckpt.oldestXidDB = x.oldestXactDb;
        ing->ckpt_dirty = true;
        return ps_slru_truncate(ing, PS_SLRU_CLOG, (uint32_t)x.pageno / PS_SLRU_PAGES_PER_SEG,
                                rec->end_lsn, err);
    }
    return 0;
}

static int ps_ingest_mxact_create(struct ps_ingest *ing, const struct ps_wal_record *rec,
                                  struct kc_error *err)
{
    xl_multixact_create x;
    MultiXactMember *members;
    uint32_t pageno;
    struct ps_key k;
    int rc, n;

    if (!ps_main(rec, &x, sizeof(x), SizeOfMultiXactCreate) || x.nmembers < 0 ||
        rec->main_data_len < SizeOfMultiXactCreate + (size_t)x.nmembers * sizeof(MultiXactMember))
        return ps_bad_record(rec, err);
    n = x.nmembers;
    members = kc_malloc(sizeof(MultiXactMember) * (size_t)(n > 0 ? n : 1));
    memcpy(members, rec->main_data + SizeOfMultiXactCreate, sizeof(MultiXactMember) * (size_t)n);

    pageno = x.mid / PS_MXOFF_PER_PAGE;
    k = ps_key_slru_block(PS_SLRU_MULTIXACT_OFFSETS, pageno / PS_SLRU_PAGES_PER_SEG,
                          pageno % PS_SLRU_PAGES_PER_SEG);
    ps_native_begin(ing, PS_NATIVE_MXACT_OFFSET);
    kc_sbuf_put_u32(&ing->scratch, x.mid);
    kc_sbuf_put_u32(&ing->scratch, x.moff);
    rc = ps_put_native(ing, &k, rec->end_lsn, false, err);

    /* Members, grouped by the page they land on. */
    for (int i = 0; i < n && rc == 0;) {
        MultiXactOffset off = x.moff + (MultiXactOffset)i;
        uint32_t page = off / PS_MXMEMBERS_PER_PAGE;
        size_t count_at;
        uint32_t count = 0;

        ps_native_begin(ing, PS_NATIVE_MXACT_MEMBERS);
        kc_sbuf_put_u32(&ing->scratch, off);
        count_at = ing->scratch.len;
        kc_sbuf_put_u32(&ing->scratch, 0);
        for (; i < n && (x.moff + (MultiXactOffset)i) / PS_MXMEMBERS_PER_PAGE == page; i++) {
            kc_sbuf_put_u32(&ing->scratch, members[i].xid);
            kc_sbuf_put_u8(&ing->scratch, (uint8_t)members[i].status);
            ps_ckpt_see_xid(ing, members[i].xid);
            count++;
        }
        kc_sbuf_patch_u32(&ing->scratch, count_at, count);
        k = ps_key_slru_block(PS_SLRU_MULTIXACT_MEMBERS, page / PS_SLRU_PAGES_PER_SEG,
                              page % PS_SLRU_PAGES_PER_SEG);
        rc = ps_put_native(ing, &k, rec->end_lsn, false, err);
    }
    free(members);
    if (rc != 0)
        return rc;
    /* Next multixact and member offset never go backwards (modulo 2^32). */
    if (ps_multi_precedes(ing->ckpt.nextMulti, x.mid + 1) || ing->ckpt.nextMulti == 0) {
        ing->ckpt.nextMulti = x.mid + 1 == 0 ? FirstMultiXactId : x.mid + 1;
        ing->ckpt_dirty = true;
    }
    if ((int32)(ing->ckpt.nextMultiOffset - (x.moff + (MultiXactOffset)n)) < 0) {
        ing->ckpt.nextMultiOffset = x.moff + (MultiXactOffset)n;
        ing->ckpt_dirty = true;
    }
    return 0;
}

static int ps_ingest_multixact(struct ps_ingest *ing, const struct ps_wal_record *rec,
                               struct kc_error *err)
{
    uint8 info = rec->info & ~XLR_INFO_MASK;
    int pageno;

    switch (info) {
    case XLOG_MULTIXACT_ZERO_OFF_PAGE:
    case XLOG_MULTIXACT_ZERO_MEM_PAGE:
        if (!ps_main(rec, &pageno, sizeof(pageno), sizeof(pageno)))
            return ps_bad_record(rec, err);
        return ps_slru_zero_page(ing,
                                 info == XLOG_MULTIXACT_ZERO_OFF_PAGE ? PS_SLRU_MULTIXACT_OFFSETS
                                                                      : PS_SLRU_MULTIXACT_MEMBERS,
                                 pageno, rec->end_lsn, err);
    case XLOG_MULTIXACT_CREATE_ID: return ps_ingest_mxact_create(ing, rec, err);
    case XLOG_MULTIXACT_TRUNCATE_ID: {
        xl_multixact_truncate x;
        int rc;
        if (!ps_main(rec, &x, sizeof(x), SizeOfMultiXactTruncate))
            return ps_bad_record(rec, err);
        ing->ckpt.oldestMulti = x.endTruncOff;
        ing->ckpt.oldestMultiDB = x.oldestMultiDB;
        ing->ckpt_dirty = true;
        rc = ps_slru_truncate(ing, PS_SLRU_MULTIXACT_OFFSETS,
                              (uint32_t)(x.endTruncOff / PS_MXOFF_PER_PAGE) / PS_SLRU_PAGES_PER_SEG,
                              rec->end_lsn, err);
        if (rc != 0)
            return rc;
        return ps_slru_truncate(ing, PS_SLRU_MULTIXACT_MEMBERS,
                                (uint32_t)(x.endTruncMemb / PS_MXMEMBERS_PER_PAGE) /
                                    PS_SLRU_PAGES_PER_SEG,
                                rec->end_lsn, err);
    }
    default: return 0;
    }
}

/* ---- databases and relmapper files -------------------------------------- */

/*
 * The database directory: PS_DBDIR_VERSION, u32 count, then count sorted
 * (u32 spcnode, u32 dbnode) pairs. Add (add = true) or remove one entry.
 */
static int ps_dbdir_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int ps_dbdir_update(struct ps_ingest *ing, uint32_t spc, uint32_t db, bool add, kc_lsn lsn,
                           struct kc_error *err)
{
    struct ps_key k = ps_key_db_dir();
    size_t len = 0, cap = 4096, n = 0, at = SIZE_MAX;
    uint8_t *buf = kc_malloc(cap);
    uint64_t *dbs = NULL, mine = ((uint64_t)spc << 32) | db;
    struct kc_sbuf out = KC_SBUF_INIT;
    struct ps_value v;
    int rc;

    for (;;) {
        rc = ing->ops.get(ing->ops.arg, &k, buf, cap, &len, err);
        if (rc <= 0 || len <= cap)
            break;
        cap = len;
        buf = kc_realloc(buf, cap);
    }
    if (rc < 0)
        goto out;
    if (rc == 1) {
        if (len < 5 || buf[0] != PS_DBDIR_VERSION || (len - 5) % 8 != 0 ||
            kc_load_u32(buf + 1) != (len - 5) / 8) {
            rc = kc_error_set(err, KC_ECORRUPT, "database directory value is malformed (%zu bytes)",
                              len);
            goto out;
        }
        n = kc_load_u32(buf + 1);
    }
    dbs = kc_malloc(sizeof(uint64_t) * (n + 1));
    for (size_t i = 0; i < n; i++) {
        dbs[i] = ((uint64_t)kc_load_u32(buf + 5 + 8 * i) << 32) | kc_load_u32(buf + 9 + 8 * i);
        if (dbs[i] == mine)
            at = i;
    }
    rc = 0;
    if (add == (at != SIZE_MAX))
        goto out; /* already as wanted */
    if (add) {
        dbs[n++] = mine;
        qsort(dbs, n, sizeof(uint64_t), ps_dbdir_cmp);
    } else {
        memmove(dbs + at, dbs + at + 1, sizeof(uint64_t) * (n - at - 1));
        n--;
    }
    kc_sbuf_put_u8(&out, PS_DBDIR_VERSION);
    kc_sbuf_put_u32(&out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        kc_sbuf_put_u32(&out, (uint32_t)(dbs[i] >> 32));
        kc_sbuf_put_u32(&out, (uint32_t)dbs[i]);
    }
    v = ps_value_image(out.data, (uint32_t)out.len);
    rc = ps_put(ing, &k, lsn, &v, err);
out:
    free(buf);
    free(dbs);
    kc_sbuf_fini(&out);
    return rc;
}

static int ps_ingest_dbase(struct ps_ingest *ing, const struct ps_wal_record *rec,
                           struct kc_error *err)
{
    uint8 info = rec->info & ~XLR_INFO_MASK;

    if (info == XLOG_DBASE_CREATE_WAL_LOG) {
        xl_dbase_create_wal_log_rec x;
        if (!ps_main(rec, &x, sizeof(x), sizeof(x)))
            return ps_bad_record(rec, err);
        return ps_dbdir_update(ing, x.tablespace_id, x.db_id, true, rec->end_lsn, err);
    }
    if (info == XLOG_DBASE_CREATE_FILE_COPY) {
        xl_dbase_create_file_copy_rec x;
        if (!ps_main(rec, &x, sizeof(x), sizeof(x)))
            return ps_bad_record(rec, err);
        kc_error_set(err, KC_EINVAL,
                     "CREATE DATABASE with STRATEGY FILE_COPY at %X/%X is not supported",
                     LSN_FORMAT_ARGS(rec->lsn));
        kc_error_detail(err,
                        "Database %u would be a file copy of database %u, which is not "
                        "in the WAL.",
                        x.db_id, x.src_db_id);
        kc_error_hint(err, "Create databases with STRATEGY WAL_LOG (the default).");
        return KC_EINVAL;
    }
    if (info == XLOG_DBASE_DROP) {
        xl_dbase_drop_rec x;
        Oid *spcs;
        int rc = 0;

        if (!ps_main(rec, &x, sizeof(x), MinSizeOfDbaseDropRec) || x.ntablespaces < 0 ||
            rec->main_data_len < MinSizeOfDbaseDropRec + sizeof(Oid) * (size_t)x.ntablespaces)
            return ps_bad_record(rec, err);
        spcs = kc_malloc(sizeof(Oid) * (size_t)(x.ntablespaces > 0 ? x.ntablespaces : 1));
        memcpy(spcs, rec->main_data + MinSizeOfDbaseDropRec, sizeof(Oid) * (size_t)x.ntablespaces);
        for (int i = 0; i < x.ntablespaces && rc == 0; i++) {
            struct ps_key start = ps_key_make(PS_KEYSPACE_REL, spcs[i], x.db_id, 0, 0, 0);
            struct ps_key end = ps_key_make(PS_KEYSPACE_REL, spcs[i], x.db_id + 1, 0, 0, 0);
            ps_forget_db(ing, spcs[i], x.db_id);
            rc = ps_drop(ing, &start, &end, rec->end_lsn, err);
            if (rc == 0)
                rc = ps_dbdir_update(ing, spcs[i], x.db_id, false, rec->end_lsn, err);
        }
        free(spcs);
        return rc;
    }
    return 0;
}

static int ps_ingest_relmap(struct ps_ingest *ing, const struct ps_wal_record *rec,
                            struct kc_error *err)
{
    xl_relmap_update x;
    struct ps_key k;
    struct ps_value v;
    int rc;

    if ((rec->info & ~XLR_INFO_MASK) != XLOG_RELMAP_UPDATE)
        return 0;
    if (!ps_main(rec, &x, sizeof(x), MinSizeOfRelmapUpdate) || x.nbytes < 0 ||
        rec->main_data_len < MinSizeOfRelmapUpdate + (size_t)x.nbytes)
        return ps_bad_record(rec, err);
    k = ps_key_relmap(x.tsid, x.dbid);
    v = ps_value_image(rec->main_data + MinSizeOfRelmapUpdate, (uint32_t)x.nbytes);
    ing->stats.images++;
    rc = ps_put(ing, &k, rec->end_lsn, &v, err);
    /* The shared map (dbid 0) is not a database. */
    if (rc == 0 && x.dbid != InvalidOid)
        rc = ps_dbdir_update(ing, x.tsid, x.dbid, true, rec->end_lsn, err);
    return rc;
}

/* ---- XLOG: checkpoints and OIDs ----------------------------------------- */

static int ps_ingest_xlog(struct ps_ingest *ing, const struct ps_wal_record *rec,
                          struct kc_error *err)
{
    uint8 info = rec->info & ~XLR_INFO_MASK;

    if (info == XLOG_NEXTOID) {
        Oid next;
        if (!ps_main(rec, &next, sizeof(next), sizeof(next)))
            return ps_bad_record(rec, err);
        ing->ckpt.nextOid = next;
        ing->ckpt_dirty = true;
    } else if (info == XLOG_CHECKPOINT_SHUTDOWN) {
        CheckPoint c;
        FullTransactionId mine = ing->ckpt.nextXid;
        if (!ps_main(rec, &c, sizeof(c), sizeof(c)))
            return ps_bad_record(rec, err);
        /* A shutdown checkpoint is the whole truth, as in PostgreSQL's redo... */
        ing->ckpt = c;
        /* ...except that nextXid never goes back: we may have seen later xids. */
        if (FullTransactionIdPrecedes(c.nextXid, mine))
            ing->ckpt.nextXid = mine;
        /* Basebackups tell a clean shutdown by redo = this record's end. */
        ing->ckpt.redo = rec->end_lsn;
        ing->ckpt_dirty = true;
    } else if (info == XLOG_CHECKPOINT_ONLINE) {
        CheckPoint c;
        if (!ps_main(rec, &c, sizeof(c), sizeof(c)))
            return ps_bad_record(rec, err);
        /*
         * As PostgreSQL's redo does: an online checkpoint's counters were read
         * while the system ran, so they only ever advance ours. nextOid is
         * ignored (XLOG_NEXTOID records track it), multixact counters and the
         * oldest xid/multi are minimums, nextXid is a minimum.
         */
        if (FullTransactionIdPrecedes(ing->ckpt.nextXid, c.nextXid))
            ing->ckpt.nextXid = c.nextXid;
        if (ing->ckpt.nextMulti == 0 || ps_multi_precedes(ing->ckpt.nextMulti, c.nextMulti))
            ing->ckpt.nextMulti = c.nextMulti;
        if (ing->ckpt.nextMultiOffset == 0 ||
            (int32)(ing->ckpt.nextMultiOffset - c.nextMultiOffset) < 0)
            ing->ckpt.nextMultiOffset = c.nextMultiOffset;
        if (ing->ckpt.oldestXid == 0 ||
            !ps_xid_follows_or_equals(ing->ckpt.oldestXid, c.oldestXid)) {
            ing->ckpt.oldestXid = c.oldestXid;
            ing->ckpt.oldestXidDB = c.oldestXidDB;
        }
        if (ing->ckpt.oldestMulti == 0 || ps_multi_precedes(ing->ckpt.oldestMulti, c.oldestMulti)) {
            ing->ckpt.oldestMulti = c.oldestMulti;
            ing->ckpt.oldestMultiDB = c.oldestMultiDB;
        }
        if (ing->ckpt.nextOid == 0)
            ing->ckpt.nextOid = c.nextOid; /* nothing known yet: better than none */
        ing->ckpt.ThisTimeLineID = c.ThisTimeLineID;
        ing->ckpt.PrevTimeLineID = c.PrevTimeLineID;
        ing->ckpt.fullPageWrites = c.fullPageWrites;
        ing->ckpt.time = c.time;
        ing->ckpt.oldestCommitTsXid = c.oldestCommitTsXid;
        ing->ckpt.newestCommitTsXid = c.newestCommitTsXid;
        ing->ckpt.oldestActiveXid = c.oldestActiveXid;
        ing->ckpt.redo = InvalidXLogRecPtr; /* not a clean shutdown */
        ing->ckpt_dirty = true;
    }
    return 0;
}

/* ---- the record dispatcher ----------------------------------------------- */

int ps_ingest_record(struct ps_ingest *ing, struct ps_wal_decoder *dec,
                     const struct ps_wal_record *rec, struct kc_error *err)
{
    int rc = ps_ckpt_load(ing, err);

    if (rc != 0)
        return rc;
    ps_ckpt_see_xid(ing, rec->xid);
    /* Block references first: every record that touches pages. */
    ing->ngrown = 0;
    for (int i = 0; i < rec->nblocks; i++) {
        rc = ps_ingest_block(ing, dec, rec, i, err);
        if (rc != 0)
            return rc;
    }
    rc = ps_relsize_store_grown(ing, rec->end_lsn, err);
    if (rc != 0)
        return rc;
    switch (rec->rmid) {
    case RM_HEAP_ID:
    case RM_HEAP2_ID: rc = ps_ingest_heap_vm(ing, rec, err); break;
    case RM_SMGR_ID: rc = ps_ingest_smgr(ing, rec, err); break;
    case RM_XACT_ID: rc = ps_ingest_xact(ing, rec, err); break;
    case RM_CLOG_ID: rc = ps_ingest_clog(ing, rec, err); break;
    case RM_MULTIXACT_ID: rc = ps_ingest_multixact(ing, rec, err); break;
    case RM_DBASE_ID: rc = ps_ingest_dbase(ing, rec, err); break;
    case RM_RELMAP_ID: rc = ps_ingest_relmap(ing, rec, err); break;
    case RM_XLOG_ID: rc = ps_ingest_xlog(ing, rec, err); break;
    default: break; /* everything else is fully described by its block references */
    }
    if (rc == 0)
        ing->stats.records++;
    return rc;
}

int ps_ingest_create(const struct ps_ingest_ops *ops, struct ps_ingest **out, struct kc_error *err)
{
    struct ps_ingest *ing;

    if (ops == NULL || ops->put == NULL || ops->drop_range == NULL || ops->get == NULL)
        return kc_error_set(err, KC_EINVAL, "ingest needs put, drop_range and get callbacks");
    ing = kc_calloc(1, sizeof(*ing));
    ing->ops = *ops;
    ing->relsize = kc_hmap_create(sizeof(struct ps_relfork));
    *out = ing;
    return 0;
}

void ps_ingest_destroy(struct ps_ingest *ing)
{
    if (ing == NULL)
        return;
    kc_hmap_destroy(ing->relsize);
    kc_sbuf_fini(&ing->scratch);
    free(ing);
}

void ps_ingest_get_stats(const struct ps_ingest *ing, struct ps_ingest_stats *out)
{
    *out = ing->stats;
}
