/* SPDX-License-Identifier: Apache-2.0 */
/*
 * basebackup_format_pg.c -- pg_control, the synthetic checkpoint record and
 * its WAL pages, built with PostgreSQL 15's own structs, macros and CRC.
 *
 * See basebackup_format.h for the contracts and docs/basebackup.md for the
 * byte layout and the placement cases.
 */
#include "postgres.h" /* with FRONTEND defined, as pg_resetwal includes it */

#include "access/heaptoast.h"
#include "access/rmgr.h"
#include "access/transam.h"
#include "access/xlog_internal.h"
#include "access/xlogrecord.h"
#include "catalog/catversion.h"
#include "catalog/pg_control.h"
#include "port/pg_crc32c.h"
#include "storage/large_object.h"

#include "pageserver/basebackup_format.h"

#include <string.h>

StaticAssertDecl(sizeof(CheckPoint) == PS_BB_CHECKPOINT_LEN, "CheckPoint size changed");
StaticAssertDecl(SizeOfXLogRecord + SizeOfXLogRecordDataHeaderShort + sizeof(CheckPoint) ==
                     PS_BB_RECORD_LEN,
                 "checkpoint record size changed");
StaticAssertDecl(sizeof(CheckPoint) <= UINT8_MAX, "checkpoint data needs a long header");
StaticAssertDecl(PG_CONTROL_FILE_SIZE == PS_BB_CONTROL_SIZE, "pg_control size changed");
StaticAssertDecl(XLOG_BLCKSZ == PS_BB_PAGE_SIZE && BLCKSZ == PS_BB_PAGE_SIZE, "block size");
StaticAssertDecl(DB_SHUTDOWNED == PS_BB_DB_SHUTDOWNED && DB_IN_PRODUCTION == PS_BB_DB_IN_PRODUCTION,
                 "DBState values changed");

/* ---- placement ------------------------------------------------------------------ */

/* Header size of the page starting at pageptr. */
static uint32 bb_header_size(XLogRecPtr pageptr, uint32_t seg_size)
{
    return XLogSegmentOffset(pageptr, seg_size) == 0 ? SizeOfXLogLongPHD : SizeOfXLogShortPHD;
}

bool ps_bb_lsn_valid(kc_lsn lsn, uint32_t seg_size)
{
    XLogRecPtr page = lsn - lsn % XLOG_BLCKSZ;

    return lsn != InvalidXLogRecPtr && lsn == MAXALIGN64(lsn) &&
           lsn - page >= bb_header_size(page, seg_size);
}

kc_lsn ps_bb_start_lsn(kc_lsn end, uint32_t seg_size)
{
    XLogRecPtr lsn = MAXALIGN64(end);

    if (lsn % XLOG_BLCKSZ == 0)
        lsn += bb_header_size(lsn, seg_size);
    return lsn;
}

kc_lsn ps_bb_record_end(kc_lsn lsn, uint32_t seg_size)
{
    XLogRecPtr next_page = lsn - lsn % XLOG_BLCKSZ + XLOG_BLCKSZ;
    uint64 first = next_page - lsn; /* room on the record's first page */

    if (first >= PS_BB_RECORD_LEN)
        return lsn + PS_BB_RECORD_LEN;
    /* At least 8 bytes fit on the first page, so the rest fits on the next. */
    return next_page + bb_header_size(next_page, seg_size) + (PS_BB_RECORD_LEN - first);
}

/* ---- the checkpoint struct ------------------------------------------------------- */

int ps_bb_checkpoint_parse(const uint8_t *img, size_t len, struct ps_bb_checkpoint *out,
                           struct kc_error *err)
{
    CheckPoint c;

    if (img == NULL || len != sizeof(CheckPoint))
        return kc_error_set(err, KC_ECORRUPT, "checkpoint image has %zu bytes, expected %zu", len,
                            sizeof(CheckPoint));
    memcpy(&c, img, sizeof(c));
    memset(out, 0, sizeof(*out));
    out->redo = c.redo;
    out->tli = c.ThisTimeLineID;
    out->prev_tli = c.PrevTimeLineID;
    out->full_page_writes = c.fullPageWrites;
    out->next_xid = U64FromFullTransactionId(c.nextXid);
    out->next_oid = c.nextOid;
    out->next_multi = c.nextMulti;
    out->next_multi_offset = c.nextMultiOffset;
    out->oldest_xid = c.oldestXid;
    out->oldest_xid_db = c.oldestXidDB;
    out->oldest_multi = c.oldestMulti;
    out->oldest_multi_db = c.oldestMultiDB;
    out->time = c.time;
    out->oldest_commit_ts_xid = c.oldestCommitTsXid;
    out->newest_commit_ts_xid = c.newestCommitTsXid;
    out->oldest_active_xid = c.oldestActiveXid;
    return 0;
}

static void bb_checkpoint_to_pg(const struct ps_bb_checkpoint *c, CheckPoint *out)
{
    memset(out, 0, sizeof(*out));
    out->redo = c->redo;
    out->ThisTimeLineID = c->tli;
    out->PrevTimeLineID = c->prev_tli;
    out->fullPageWrites = c->full_page_writes;
    out->nextXid = FullTransactionIdFromU64(c->next_xid);
    out->nextOid = c->next_oid;
    out->nextMulti = c->next_multi;
    out->nextMultiOffset = c->next_multi_offset;
    out->oldestXid = c->oldest_xid;
    out->oldestXidDB = c->oldest_xid_db;
    out->oldestMulti = c->oldest_multi;
    out->oldestMultiDB = c->oldest_multi_db;
    out->time = (pg_time_t)c->time;
    out->oldestCommitTsXid = c->oldest_commit_ts_xid;
    out->newestCommitTsXid = c->newest_commit_ts_xid;
    out->oldestActiveXid = c->oldest_active_xid;
}

void ps_bb_checkpoint_encode(const struct ps_bb_checkpoint *c, uint8_t out[PS_BB_CHECKPOINT_LEN])
{
    CheckPoint pg;

    bb_checkpoint_to_pg(c, &pg);
    memcpy(out, &pg, sizeof(pg));
}

/* ---- pg_control ------------------------------------------------------------------ */

static void bb_control_crc(ControlFileData *cf)
{
    INIT_CRC32C(cf->crc);
    COMP_CRC32C(cf->crc, (char *)cf, offsetof(ControlFileData, crc));
    FIN_CRC32C(cf->crc);
}

/* The compile-time constants PostgreSQL's ReadControlFile compares; NULL when all match. */
static const char *bb_control_mismatch(const ControlFileData *cf)
{
    if (cf->catalog_version_no != CATALOG_VERSION_NO)
        return "catalog version";
    if (cf->maxAlign != MAXIMUM_ALIGNOF || cf->floatFormat != FLOATFORMAT_VALUE)
        return "alignment or float format";
    if (cf->blcksz != BLCKSZ || cf->xlog_blcksz != XLOG_BLCKSZ || cf->relseg_size != RELSEG_SIZE)
        return "block or segment size";
    if (cf->nameDataLen != NAMEDATALEN || cf->indexMaxKeys != INDEX_MAX_KEYS)
        return "NAMEDATALEN or INDEX_MAX_KEYS";
    if (cf->toast_max_chunk_size != TOAST_MAX_CHUNK_SIZE || cf->loblksize != LOBLKSIZE)
        return "TOAST or large object chunk size";
    if (cf->float8ByVal != FLOAT8PASSBYVAL)
        return "float8 passing convention";
    return NULL;
}

int ps_bb_control_parse(const uint8_t *img, size_t len, struct ps_bb_control *out,
                        struct kc_error *err)
{
    ControlFileData cf;
    pg_crc32c crc;
    const char *what;
    int rc;

    if (img == NULL || len < sizeof(ControlFileData) || len > PG_CONTROL_FILE_SIZE)
        return kc_error_set(err, KC_ECORRUPT, "control file has %zu bytes, expected %zu to %d", len,
                            sizeof(ControlFileData), PG_CONTROL_FILE_SIZE);
    memcpy(&cf, img, sizeof(cf));
    if (cf.pg_control_version != PG_CONTROL_VERSION) {
        kc_error_set(err, KC_EVERSION, "control file has format version %u, expected %u",
                     cf.pg_control_version, PG_CONTROL_VERSION);
        kc_error_detail(err, "Kelp supports PostgreSQL 15 clusters only.");
        return KC_EVERSION;
    }
    INIT_CRC32C(crc);
    COMP_CRC32C(crc, (char *)&cf, offsetof(ControlFileData, crc));
    FIN_CRC32C(crc);
    if (!EQ_CRC32C(crc, cf.crc))
        return kc_error_set(err, KC_ECORRUPT, "control file checksum does not match");
    what = bb_control_mismatch(&cf);
    if (what != NULL) {
        kc_error_set(err, KC_EVERSION, "control file was written by an incompatible build");
        kc_error_detail(err, "Its %s differs from this build's.", what);
        return KC_EVERSION;
    }
    if (!IsValidWalSegSize(cf.xlog_seg_size))
        return kc_error_set(err, KC_ECORRUPT, "control file has invalid WAL segment size %u",
                            cf.xlog_seg_size);
    memset(out, 0, sizeof(*out));
    rc = ps_bb_checkpoint_parse((const uint8_t *)&cf.checkPointCopy, sizeof(CheckPoint),
                                &out->checkpoint, err);
    if (rc != 0)
        return rc;
    out->system_id = cf.system_identifier;
    out->state = (uint32_t)cf.state;
    out->time = cf.time;
    out->checkpoint_lsn = cf.checkPoint;
    out->min_recovery_point = cf.minRecoveryPoint;
    out->backup_start = cf.backupStartPoint;
    out->backup_end = cf.backupEndPoint;
    out->seg_size = cf.xlog_seg_size;
    out->wal_level = cf.wal_level;
    out->settings.max_connections = cf.MaxConnections;
    out->settings.max_worker_processes = cf.max_worker_processes;
    out->settings.max_wal_senders = cf.max_wal_senders;
    out->settings.max_prepared_xacts = cf.max_prepared_xacts;
    out->settings.max_locks_per_xact = cf.max_locks_per_xact;
    out->data_checksum_version = cf.data_checksum_version;
    return 0;
}

void ps_bb_control_build(const struct ps_bb_control *c, uint8_t out[PS_BB_CONTROL_SIZE])
{
    ControlFileData cf;

    memset(&cf, 0, sizeof(cf));
    cf.system_identifier = c->system_id;
    cf.pg_control_version = PG_CONTROL_VERSION;
    cf.catalog_version_no = CATALOG_VERSION_NO;
    cf.state = (DBState)c->state;
    cf.time = (pg_time_t)c->time;
    cf.checkPoint = c->checkpoint_lsn;
    bb_checkpoint_to_pg(&c->checkpoint, &cf.checkPointCopy);
    cf.unloggedLSN = FirstNormalUnloggedLSN;
    cf.minRecoveryPoint = c->min_recovery_point;
    cf.backupStartPoint = c->backup_start;
    cf.backupEndPoint = c->backup_end;
    cf.wal_level = c->wal_level;
    cf.MaxConnections = c->settings.max_connections;
    cf.max_worker_processes = c->settings.max_worker_processes;
    cf.max_wal_senders = c->settings.max_wal_senders;
    cf.max_prepared_xacts = c->settings.max_prepared_xacts;
    cf.max_locks_per_xact = c->settings.max_locks_per_xact;
    cf.maxAlign = MAXIMUM_ALIGNOF;
    cf.floatFormat = FLOATFORMAT_VALUE;
    cf.blcksz = BLCKSZ;
    cf.relseg_size = RELSEG_SIZE;
    cf.xlog_blcksz = XLOG_BLCKSZ;
    cf.xlog_seg_size = c->seg_size;
    cf.nameDataLen = NAMEDATALEN;
    cf.indexMaxKeys = INDEX_MAX_KEYS;
    cf.toast_max_chunk_size = TOAST_MAX_CHUNK_SIZE;
    cf.loblksize = LOBLKSIZE;
    cf.float8ByVal = FLOAT8PASSBYVAL;
    cf.data_checksum_version = c->data_checksum_version;
    bb_control_crc(&cf);
    memset(out, 0, PS_BB_CONTROL_SIZE);
    memcpy(out, &cf, sizeof(cf));
}

void ps_bb_control_finish(uint8_t img[PS_BB_CONTROL_SIZE], const struct ps_bb_checkpoint *ckpt,
                          int64_t time, const struct ps_bb_settings *s)
{
    ControlFileData cf;

    memcpy(&cf, img, sizeof(cf));
    cf.state = DB_SHUTDOWNED;
    cf.time = (pg_time_t)time;
    cf.checkPoint = ckpt->redo;
    bb_checkpoint_to_pg(ckpt, &cf.checkPointCopy);
    cf.minRecoveryPoint = InvalidXLogRecPtr;
    cf.minRecoveryPointTLI = 0;
    cf.backupStartPoint = InvalidXLogRecPtr;
    cf.backupEndPoint = InvalidXLogRecPtr;
    cf.backupEndRequired = false;
    if (s->max_connections > 0)
        cf.MaxConnections = s->max_connections;
    if (s->max_worker_processes > 0)
        cf.max_worker_processes = s->max_worker_processes;
    if (s->max_wal_senders > 0)
        cf.max_wal_senders = s->max_wal_senders;
    if (s->max_prepared_xacts > 0)
        cf.max_prepared_xacts = s->max_prepared_xacts;
    if (s->max_locks_per_xact > 0)
        cf.max_locks_per_xact = s->max_locks_per_xact;
    bb_control_crc(&cf);
    memset(img, 0, PS_BB_CONTROL_SIZE);
    memcpy(img, &cf, sizeof(cf));
}

/* ---- the record and its pages ---------------------------------------------------- */

void ps_bb_record_build(const struct ps_bb_checkpoint *ckpt, kc_lsn prev,
                        uint8_t out[PS_BB_RECORD_LEN])
{
    XLogRecord rec;
    CheckPoint c;
    pg_crc32c crc;
    uint8_t *data = out + SizeOfXLogRecord;

    memset(&rec, 0, sizeof(rec));
    rec.xl_tot_len = PS_BB_RECORD_LEN;
    rec.xl_xid = InvalidTransactionId;
    rec.xl_prev = prev;
    rec.xl_info = XLOG_CHECKPOINT_SHUTDOWN;
    rec.xl_rmid = RM_XLOG_ID;
    bb_checkpoint_to_pg(ckpt, &c);
    memcpy(out, &rec, SizeOfXLogRecord);
    data[0] = (uint8_t)XLR_BLOCK_ID_DATA_SHORT;
    data[1] = (uint8_t)sizeof(CheckPoint);
    memcpy(data + SizeOfXLogRecordDataHeaderShort, &c, sizeof(c));
    /* As XLogRecordAssemble and XLogInsertRecord: the data first, then the header. */
    INIT_CRC32C(crc);
    COMP_CRC32C(crc, data, PS_BB_RECORD_LEN - SizeOfXLogRecord);
    COMP_CRC32C(crc, out, offsetof(XLogRecord, xl_crc));
    FIN_CRC32C(crc);
    memcpy(out + offsetof(XLogRecord, xl_crc), &crc, sizeof(crc));
}

void ps_bb_wal_page(kc_lsn pageptr, kc_lsn lsn, const uint8_t record[PS_BB_RECORD_LEN],
                    uint32_t tli, uint64_t system_id, uint32_t seg_size, uint8_t *page)
{
    XLogPageHeader hdr = (XLogPageHeader)page;
    XLogRecPtr lsn_page = lsn - lsn % XLOG_BLCKSZ;
    uint32 hsize = bb_header_size(pageptr, seg_size);

    memset(page, 0, XLOG_BLCKSZ);
    hdr->xlp_magic = XLOG_PAGE_MAGIC;
    hdr->xlp_tli = tli;
    hdr->xlp_pageaddr = pageptr;
    if (hsize == SizeOfXLogLongPHD) {
        XLogLongPageHeader lhdr = (XLogLongPageHeader)page;
        hdr->xlp_info |= XLP_LONG_HEADER;
        lhdr->xlp_sysid = system_id;
        lhdr->xlp_seg_size = seg_size;
        lhdr->xlp_xlog_blcksz = XLOG_BLCKSZ;
    }
    if (pageptr <= lsn_page) {
        /* Up to the record: the bytes before it read as the tail of an earlier record. */
        uint32 rem = (uint32)(lsn - (pageptr + hsize));
        if (rem > 0) {
            hdr->xlp_info |= XLP_FIRST_IS_CONTRECORD;
            hdr->xlp_rem_len = rem;
        }
        if (pageptr == lsn_page) {
            uint64 n = Min((uint64)PS_BB_RECORD_LEN, pageptr + XLOG_BLCKSZ - lsn);
            memcpy(page + (lsn - pageptr), record, n);
        }
    } else if (pageptr == lsn_page + XLOG_BLCKSZ) {
        /* The record's continuation, if it crosses into this page. */
        uint64 done = pageptr - lsn;
        if (done < PS_BB_RECORD_LEN) {
            hdr->xlp_info |= XLP_FIRST_IS_CONTRECORD;
            hdr->xlp_rem_len = (uint32)(PS_BB_RECORD_LEN - done);
            memcpy(page + hsize, record + done, PS_BB_RECORD_LEN - done);
        }
    }
}
