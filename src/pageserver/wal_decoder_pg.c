/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wal_decoder_pg.c -- ps_wal_decoder on top of PostgreSQL's xlogreader.c.
 *
 * Compiled against PostgreSQL's headers (files named *_pg.c are; see the
 * Makefile), so this is the only place the pageserver sees PostgreSQL's WAL
 * structs. xlogreader.c itself is compiled from the fetched source with
 * -DFRONTEND, exactly as pg_waldump builds it.
 *
 * How input reaches the reader. We keep the fed bytes in one buffer that
 * covers [buf_start, buf_end). The reader asks for pages through
 * page_read(); when the bytes are not there yet we fail the read, remember
 * that it was for lack of input, and on the next attempt restart decoding at
 * the record we were on (XLogBeginRead). Restarting costs a re-read of one
 * partial record, and it also works for records larger than the reader's
 * decode buffer, which its non-blocking mode cannot decode.
 *
 * Two kinds of page the stream may not contain are synthesized:
 *  - the bytes of the start LSN's page before the start LSN (a timeline that
 *    begins mid-page, e.g. at a compute's start LSN, has no earlier bytes):
 *    a valid page header followed by zeros, never read as records;
 *  - the first page of a segment, which the reader reads only to check the
 *    segment's long header: a valid long header.
 * Both carry PostgreSQL timeline 1, the only one Kelp uses.
 */
#include "postgres_fe.h"

#include "access/rmgr.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogrecord.h"

#include "pageserver/wal_decoder.h"

#include "common/alloc.h"

#include <stdlib.h>
#include <string.h>

/* Drop input below the current record once this much could be freed. */
#define PS_WAL_TRIM_SLACK (1024 * 1024)

struct ps_wal_decoder {
    XLogReaderState *reader;
    uint32_t seg_size;
    uint64_t system_id;
    kc_lsn start_lsn;  /* first record to return */
    kc_lsn buf_start;  /* LSN of buf[0]; always a page boundary */
    kc_lsn buf_end;    /* LSN after the last byte held */
    uint8_t *buf;      /* the input */
    size_t cap;        /* bytes allocated for buf */
    kc_lsn next_lsn;   /* where the next record starts */
    bool begin_needed; /* call XLogBeginRead(next_lsn) before reading */
    bool short_input;  /* the last page_read failed for lack of input */
    kc_lsn wait_for;   /* don't retry before buf_end reaches this */
    uint8_t *raw;      /* reassembled bytes of the current record */
    size_t raw_cap;
};

/* Fill page (XLOG_BLCKSZ bytes) with a valid, empty page header for pageptr. */
static void ps_synth_page(const struct ps_wal_decoder *d, XLogRecPtr pageptr, char *page)
{
    XLogPageHeader hdr = (XLogPageHeader)page;

    memset(page, 0, XLOG_BLCKSZ);
    hdr->xlp_magic = XLOG_PAGE_MAGIC;
    hdr->xlp_tli = 1;
    hdr->xlp_pageaddr = pageptr;
    if (XLogSegmentOffset(pageptr, d->seg_size) == 0) {
        XLogLongPageHeader lhdr = (XLogLongPageHeader)page;
        hdr->xlp_info = XLP_LONG_HEADER;
        lhdr->xlp_sysid = d->system_id;
        lhdr->xlp_seg_size = d->seg_size;
        lhdr->xlp_xlog_blcksz = XLOG_BLCKSZ;
    }
}

static int ps_page_read(XLogReaderState *state, XLogRecPtr pageptr, int req_len,
                        XLogRecPtr target_rec, char *read_buf)
{
    struct ps_wal_decoder *d = state->private_data;

    if (pageptr < d->buf_start) {
        /* Only a segment's first page, read for its long header, may be missing. */
        if (XLogSegmentOffset(pageptr, d->seg_size) == 0 &&
            pageptr / d->seg_size == d->buf_start / d->seg_size) {
            ps_synth_page(d, pageptr, read_buf);
            return XLOG_BLCKSZ;
        }
        return -1; /* below what we hold: reported as an error by the caller */
    }
    /* The reader treats a read of a bare short header or less as an error. */
    if (req_len <= (int)SizeOfXLogShortPHD)
        req_len = SizeOfXLogShortPHD + 1;
    /*
     * When the record being read starts on this page, the reader goes on to
     * read its whole header (after the page header, if the record starts at
     * the page start) having asked only for its first bytes: make sure they
     * are here, or report short input rather than let it read stale bytes.
     */
    /*
     * A record continued onto a segment's first page: the reader sizes its
     * read for a short page header, then re-reads for the long one without
     * checking the result, so ask for the long header's extra bytes too.
     */
    if (target_rec < pageptr && XLogSegmentOffset(pageptr, d->seg_size) == 0)
        req_len += (int)(SizeOfXLogLongPHD - SizeOfXLogShortPHD);
    if (req_len > XLOG_BLCKSZ)
        req_len = XLOG_BLCKSZ;
    if (target_rec >= pageptr && target_rec < pageptr + XLOG_BLCKSZ) {
        int hdr =
            XLogSegmentOffset(pageptr, d->seg_size) == 0 ? SizeOfXLogLongPHD : SizeOfXLogShortPHD;
        int off = (int)(target_rec - pageptr);
        int need = (off < hdr ? hdr : off) + (int)SizeOfXLogRecord;
        if (need > XLOG_BLCKSZ)
            need = XLOG_BLCKSZ;
        if (need > req_len)
            req_len = need;
    }
    if (pageptr + (XLogRecPtr)req_len > d->buf_end) {
        d->short_input = true;
        d->wait_for = pageptr + (XLogRecPtr)req_len;
        return -1;
    }
    {
        size_t avail = (size_t)(d->buf_end - pageptr);
        size_t n = avail < XLOG_BLCKSZ ? avail : XLOG_BLCKSZ;
        memcpy(read_buf, d->buf + (pageptr - d->buf_start), n);
        return (int)n;
    }
}

int ps_wal_decoder_create(kc_lsn start_lsn, uint32_t seg_size, uint64_t system_id,
                          struct ps_wal_decoder **out, struct kc_error *err)
{
    struct ps_wal_decoder *d;

    if (!IsValidWalSegSize(seg_size))
        return kc_error_set(err, KC_EINVAL, "invalid WAL segment size %u", seg_size);
    if (start_lsn == 0)
        return kc_error_set(err, KC_EINVAL, "invalid start LSN 0/0");
    d = kc_calloc(1, sizeof(*d));
    d->seg_size = seg_size;
    d->system_id = system_id;
    d->start_lsn = start_lsn;
    d->next_lsn = start_lsn;
    d->begin_needed = true;
    d->buf_start = start_lsn - start_lsn % XLOG_BLCKSZ;
    d->buf_end = d->buf_start;
    d->reader = XLogReaderAllocate(
        (int)seg_size, NULL,
        XL_ROUTINE(.page_read = ps_page_read, .segment_open = NULL, .segment_close = NULL), d);
    if (d->reader == NULL) {
        free(d);
        return kc_error_set(err, KC_ENOMEM, "could not allocate a WAL reader");
    }
    d->reader->system_identifier = system_id;
    if (start_lsn > d->buf_start) {
        /* The page's bytes before start_lsn: a valid header, then zeros. */
        d->cap = XLOG_BLCKSZ * 4;
        d->buf = kc_malloc(d->cap);
        ps_synth_page(d, d->buf_start, (char *)d->buf);
        d->buf_end = start_lsn;
    }
    *out = d;
    return 0;
}

void ps_wal_decoder_destroy(struct ps_wal_decoder *d)
{
    if (d == NULL)
        return;
    XLogReaderFree(d->reader);
    free(d->buf);
    free(d->raw);
    free(d);
}

kc_lsn ps_wal_decoder_input_end(const struct ps_wal_decoder *d)
{
    return d->buf_end;
}

kc_lsn ps_wal_decoder_input_start(const struct ps_wal_decoder *d)
{
    return d->start_lsn > d->buf_start ? d->start_lsn : d->buf_start;
}

/* Forget input wholly below the page of the record we decode next. */
static void ps_trim(struct ps_wal_decoder *d)
{
    kc_lsn keep = d->next_lsn - d->next_lsn % XLOG_BLCKSZ;
    size_t drop;

    /* After an XLOG_SWITCH record the next one starts past what we hold. */
    if (keep > d->buf_end)
        keep = d->buf_end - d->buf_end % XLOG_BLCKSZ;

    if (keep <= d->buf_start || keep - d->buf_start < PS_WAL_TRIM_SLACK)
        return;
    drop = (size_t)(keep - d->buf_start);
    memmove(d->buf, d->buf + drop, (size_t)(d->buf_end - keep));
    d->buf_start = keep;
}

int ps_wal_decoder_feed(struct ps_wal_decoder *d, kc_lsn lsn, const void *data, size_t len,
                        struct kc_error *err)
{
    size_t used;
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    if (lsn != d->buf_end) {
        kc_error_set(err, KC_EINVAL, "WAL input at %s does not continue the stream at %s",
                     kc_lsn_format(lsn, a), kc_lsn_format(d->buf_end, b));
        kc_error_detail(err, "WAL must be fed contiguously, without gaps or overlaps.");
        return KC_EINVAL;
    }
    if (len == 0)
        return 0;
    ps_trim(d);
    used = (size_t)(d->buf_end - d->buf_start);
    if (used + len > d->cap) {
        size_t cap = d->cap ? d->cap : 64 * 1024;
        while (cap < used + len)
            cap *= 2;
        d->buf = kc_realloc(d->buf, cap);
        d->cap = cap;
    }
    memcpy(d->buf + used, data, len);
    d->buf_end += len;
    return 0;
}

/*
 * Copy the current record's bytes out of the input, skipping page headers,
 * into d->raw. The reader has validated every page the record spans.
 */
static int ps_reassemble(struct ps_wal_decoder *d, kc_lsn lsn, uint32_t total, struct kc_error *err)
{
    kc_lsn pos = lsn;
    uint32_t done = 0;

    if (total > d->raw_cap) {
        free(d->raw);
        d->raw = kc_try_malloc(total);
        d->raw_cap = d->raw != NULL ? total : 0;
        if (d->raw == NULL)
            return kc_error_set(err, KC_ENOMEM, "out of memory for a WAL record of %u bytes",
                                total);
    }
    while (done < total) {
        uint32_t page_off = (uint32_t)(pos % XLOG_BLCKSZ);
        uint32_t n;

        if (page_off == 0) {
            XLogPageHeader hdr = (XLogPageHeader)(d->buf + (pos - d->buf_start));
            pos += XLogPageHeaderSize(hdr);
            page_off = (uint32_t)(pos % XLOG_BLCKSZ);
        }
        n = XLOG_BLCKSZ - page_off;
        if (n > total - done)
            n = total - done;
        if (pos < d->buf_start || pos + n > d->buf_end)
            return kc_error_set(err, KC_ECORRUPT, "WAL record at %X/%X is not in the input",
                                LSN_FORMAT_ARGS(lsn));
        memcpy(d->raw + done, d->buf + (pos - d->buf_start), n);
        done += n;
        pos += n;
    }
    return 0;
}

static void ps_fill_record(struct ps_wal_decoder *d, struct ps_wal_record *rec)
{
    XLogReaderState *r = d->reader;

    memset(rec, 0, sizeof(*rec));
    rec->lsn = r->ReadRecPtr;
    rec->end_lsn = r->EndRecPtr;
    rec->rmid = XLogRecGetRmid(r);
    rec->info = XLogRecGetInfo(r);
    rec->xid = XLogRecGetXid(r);
    rec->total_len = XLogRecGetTotalLen(r);
    rec->raw = d->raw;
    rec->main_data = (const uint8_t *)XLogRecGetData(r);
    rec->main_data_len = XLogRecGetDataLen(r);
    for (int id = 0; id <= XLogRecMaxBlockId(r); id++) {
        DecodedBkpBlock *blk;
        struct ps_wal_block_ref *ref;

        if (!XLogRecHasBlockRef(r, id))
            continue;
        blk = XLogRecGetBlock(r, id);
        ref = &rec->blocks[rec->nblocks++];
        ref->block_id = (uint8_t)id;
        ref->spcnode = blk->rnode.spcNode;
        ref->dbnode = blk->rnode.dbNode;
        ref->relnode = blk->rnode.relNode;
        ref->forknum = (uint8_t)blk->forknum;
        ref->blkno = blk->blkno;
        ref->will_init = (blk->flags & BKPBLOCK_WILL_INIT) != 0;
        ref->has_image = blk->has_image;
        ref->apply_image = blk->apply_image;
        ref->has_data = blk->has_data;
    }
}

/*
 * After a short read, don't retry before the whole record can be there:
 * every retry re-reads the record from its start, so without this a record
 * of N pages arriving page by page costs N^2 page copies. The record's
 * length is its first 4 bytes; it is only a lower bound (page headers come
 * on top), and a bound of our own caps what a corrupt length can make us
 * wait for (the reader rejects such a record once it has enough bytes).
 */
static void ps_wait_for_record(struct ps_wal_decoder *d)
{
    kc_lsn pos = d->next_lsn;
    uint32 tot_len;

    if (pos % XLOG_BLCKSZ == 0)
        pos += XLogSegmentOffset(pos, d->seg_size) == 0 ? SizeOfXLogLongPHD : SizeOfXLogShortPHD;
    if (pos < d->buf_start || pos + sizeof(tot_len) > d->buf_end)
        return;
    memcpy(&tot_len, d->buf + (pos - d->buf_start), sizeof(tot_len));
    if (tot_len > 64 * 1024 * 1024)
        tot_len = 64 * 1024 * 1024;
    if (pos + tot_len > d->wait_for)
        d->wait_for = pos + tot_len;
}

int ps_wal_decoder_next(struct ps_wal_decoder *d, struct ps_wal_record *rec, struct kc_error *err)
{
    XLogRecord *hdr;
    char *msg = NULL;
    int rc;

    if (d->begin_needed) {
        if (d->short_input && d->buf_end < d->wait_for)
            return 0; /* nothing new that could complete the record */
        XLogBeginRead(d->reader, d->next_lsn);
        d->begin_needed = false;
    }
    d->short_input = false;
    hdr = XLogReadRecord(d->reader, &msg);
    if (hdr == NULL) {
        if (d->short_input) {
            ps_wait_for_record(d);
            d->begin_needed = true;
            return 0;
        }
        kc_error_set(err, KC_ECORRUPT, "invalid WAL at %X/%X: %s", LSN_FORMAT_ARGS(d->next_lsn),
                     msg != NULL ? msg : "the reader could not read the WAL page");
        return KC_ECORRUPT;
    }
    rc = ps_reassemble(d, d->reader->ReadRecPtr, hdr->xl_tot_len, err);
    if (rc != 0)
        return rc;
    ps_fill_record(d, rec);
    d->next_lsn = d->reader->EndRecPtr;
    return 1;
}

int ps_wal_decoder_block_image(struct ps_wal_decoder *d, int i, uint8_t *page, struct kc_error *err)
{
    XLogReaderState *r = d->reader;
    int seen = -1;

    if (r->record == NULL)
        return kc_error_set(err, KC_EINVAL, "no current WAL record");
    for (int id = 0; id <= XLogRecMaxBlockId(r); id++) {
        if (!XLogRecHasBlockRef(r, id) || ++seen != i)
            continue;
        if (!XLogRecHasBlockImage(r, id))
            return kc_error_set(err, KC_EINVAL, "block %d of the WAL record at %X/%X has no image",
                                id, LSN_FORMAT_ARGS(r->ReadRecPtr));
        if (!RestoreBlockImage(r, (uint8)id, (char *)page))
            return kc_error_set(err, KC_ECORRUPT,
                                "could not restore image of block %d at %X/%X: %s", id,
                                LSN_FORMAT_ARGS(r->ReadRecPtr), r->errormsg_buf);
        return 0;
    }
    return kc_error_set(err, KC_EINVAL, "WAL record has no block reference %d", i);
}

const char *ps_wal_rmgr_name(uint8_t rmid)
{
    static const char *const names[] = {
#define PG_RMGR(symname, name, redo, desc, identify, startup, cleanup, mask, decode) name,
#include "access/rmgrlist.h"
#undef PG_RMGR
    };

    if (rmid < sizeof(names) / sizeof(names[0]))
        return names[rmid];
    return "unknown";
}
