/*-------------------------------------------------------------------------
 *
 * walredo.c
 *	  The WAL-redo helper: a single-user postgres that the kelp extension
 *	  takes over before startup, which then rebuilds pages with PostgreSQL's
 *	  own redo routines for the pageserver, over stdin/stdout.
 *
 * The pageserver starts "postgres --single" on a scratch data directory
 * with shared_preload_libraries=kelp and KELP_WALREDO=1 in the environment.
 * _PG_init then installs a shmem_startup_hook. The hook runs inside
 * CreateSharedMemoryAndSemaphores(), before InitProcess(), InitPostgres()
 * and StartupXLOG(): it finishes the process set-up itself (InitProcess,
 * BaseInit, a resource owner, InRecovery = true, every rmgr's rm_startup)
 * and serves requests until stdin reaches EOF. It never returns to normal
 * startup, so no database is opened and no WAL is read from disk.
 *
 * Because StartupXLOG never ran, RecoveryInProgress() stays true: evicting
 * a dirty buffer whose LSN is "in the future" only updates the (invalid)
 * minimum recovery point instead of flushing WAL.
 *
 * A request rebuilds one page (docs/walredo.md has the byte layout):
 *	 BEGIN(tag)	   open the request; the target's relation is registered
 *	 PUSH(page)	   optional base image of the target
 *	 APPLY(lsns, record)	 decode the raw record, call its rmgr's rm_redo
 *	 GET		   reply with the target page, then forget everything
 * Every relation a request touches gets smgr_cached_nblocks =
 * MaxBlockNumber for all forks, so redo never extends a relation block by
 * block; blocks that are not in a buffer read as zeros (BLK_NOTFOUND).
 * When the request ends, those relations' buffers are dropped, their
 * scratch files unlinked and their invalid-page entries forgotten.
 *
 * Errors: each message is handled inside PG_TRY. An ERROR is sent back as
 * an ERROR reply carrying the message, then the helper exits: the state a
 * failed redo routine leaves behind is not trusted, and the pageserver
 * restarts helpers as needed. FATAL and PANIC are reported the same way
 * from emit_log_hook before the process ends. Nothing is ever read as SQL.
 *
 * SPDX-License-Identifier: Apache-2.0
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogreader.h"
#include "access/xlogrecord.h"
#include "access/xlogutils.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "port/pg_crc32c.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/smgr.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "walredo.h"

/*
 * The walredo protocol, version 1: frames as in docs/protocol-frame.md
 * (magic 4B C1, frame version 1, flags, type, length, CRC-32C), message
 * types below. Keep in sync with src/pageserver/walredo.h.
 */
#define KW_PROTO_VERSION	1
#define KW_FRAME_MAGIC0		0x4B
#define KW_FRAME_MAGIC1		0xC1
#define KW_FRAME_VERSION	1
#define KW_FRAME_HDR		14
#define KW_FRAME_CRITICAL	0xF0
#define KW_MAX_REQUEST		(64 * 1024 * 1024)	/* largest request payload */

#define KW_MSG_HELLO		0x5701
#define KW_MSG_BEGIN		0x5702
#define KW_MSG_PUSH			0x5703
#define KW_MSG_APPLY		0x5704
#define KW_MSG_GET			0x5705
#define KW_MSG_PING			0x5706
#define KW_REPLY_HELLO		0x5781
#define KW_REPLY_PAGE		0x5785
#define KW_REPLY_PONG		0x5786
#define KW_REPLY_ERROR		0x57FF

#define KW_TAG_SIZE			17	/* spc, db, rel (u32 each), fork (u8), blkno (u32) */
#define KW_APPLY_HDR		16	/* start LSN, end LSN */
#define KW_NO_RECORD		0xFFFFFFFF
#define KW_ERROR_TEXT_MAX	4000

/* The request being served. */
typedef struct KwRequest
{
	bool		active;			/* BEGIN seen, GET not yet */
	RelFileNode rnode;			/* target page */
	ForkNumber	forknum;
	BlockNumber blkno;
	bool		pushed;			/* PUSH seen */
	uint32		napplied;		/* APPLY messages handled */
	RelFileNode *rels;			/* relations touched (TopMemoryContext) */
	int			nrels;
	int			maxrels;
} KwRequest;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static emit_log_hook_type prev_emit_log_hook = NULL;

static int	kw_in = -1;			/* requests arrive here (the original stdin) */
static int	kw_out = -1;		/* replies go here (the original stdout) */
static bool kw_hello_done = false;
static uint16 kw_cur_type = 0;	/* message being handled, for error replies */
static bool kw_error_sent = false;

static KwRequest kw_req;
static XLogReaderState *kw_reader = NULL;
static MemoryContext kw_record_cxt = NULL;	/* reset after every record */
static char *kw_inbuf = NULL;	/* payload of the current message */
static size_t kw_inbuf_cap = 0;

static void kw_shmem_startup(void);
static void kw_takeover(void) pg_attribute_noreturn();

/*
 * kelp_walredo_init -- called from _PG_init. When KELP_WALREDO=1, install
 * the hook that turns this single-user postgres into a WAL-redo helper.
 * Refuses (FATAL) to do so in a postmaster, where taking over would stop
 * a normal server.
 */
void
kelp_walredo_init(void)
{
	const char *flag = getenv(KELP_WALREDO_ENV);

	if (flag == NULL || strcmp(flag, "1") != 0)
		return;
	if (IsPostmasterEnvironment || IsUnderPostmaster)
		ereport(FATAL,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s=1 is set in a postmaster environment", KELP_WALREDO_ENV),
				 errdetail("The WAL-redo helper mode works only in single-user mode (postgres --single)."),
				 errhint("Unset %s in the server's environment.", KELP_WALREDO_ENV)));
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = kw_shmem_startup;
}

static void
kw_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	kw_takeover();
}

/* ---- frame I/O -------------------------------------------------------- */

static void
kw_put16(char *p, uint16 v)
{
	v = pg_hton16(v);
	memcpy(p, &v, 2);
}

static void
kw_put32(char *p, uint32 v)
{
	v = pg_hton32(v);
	memcpy(p, &v, 4);
}

static uint16
kw_get16(const char *p)
{
	uint16		v;

	memcpy(&v, p, 2);
	return pg_ntoh16(v);
}

static uint32
kw_get32(const char *p)
{
	uint32		v;

	memcpy(&v, p, 4);
	return pg_ntoh32(v);
}

static uint64
kw_get64(const char *p)
{
	uint64		v;

	memcpy(&v, p, 8);
	return pg_ntoh64(v);
}

/* Write all of buf to the reply pipe; false when the pipe is gone. */
static bool
kw_write_all(const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(kw_out, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		buf += n;
		len -= n;
	}
	return true;
}

/*
 * kw_send -- send one reply frame. Must not ereport: it is also used from
 * emit_log_hook. When the pageserver has gone away we simply exit.
 */
static void
kw_send(uint16 type, const char *payload, uint32 len)
{
	char		hdr[KW_FRAME_HDR];
	pg_crc32c	crc;

	hdr[0] = (char) KW_FRAME_MAGIC0;
	hdr[1] = (char) KW_FRAME_MAGIC1;
	hdr[2] = KW_FRAME_VERSION;
	hdr[3] = 0;
	kw_put16(hdr + 4, type);
	kw_put32(hdr + 6, len);
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, hdr, 10);
	if (len > 0)
		COMP_CRC32C(crc, payload, len);
	FIN_CRC32C(crc);
	kw_put32(hdr + 10, crc);
	if (!kw_write_all(hdr, sizeof(hdr)) || (len > 0 && !kw_write_all(payload, len)))
		_exit(1);				/* nobody left to tell */
}

/*
 * kw_send_error -- the ERROR reply: the message type being handled, the
 * index of the record being applied (or KW_NO_RECORD), then the text.
 */
static void
kw_send_error(const char *prefix, const char *message)
{
	char		buf[6 + KW_ERROR_TEXT_MAX];
	int			n;

	kw_put16(buf, kw_cur_type);
	kw_put32(buf + 2, kw_cur_type == KW_MSG_APPLY ? kw_req.napplied : KW_NO_RECORD);
	n = snprintf(buf + 6, KW_ERROR_TEXT_MAX, "%s%s", prefix, message ? message : "(no message)");
	if (n < 0)
		n = 0;
	if (n >= KW_ERROR_TEXT_MAX)
		n = KW_ERROR_TEXT_MAX - 1;
	kw_error_sent = true;
	kw_send(KW_REPLY_ERROR, buf, 6 + n);
}

/*
 * kw_emit_log -- emit_log_hook: a FATAL or PANIC ends the process, so tell
 * the pageserver why before it does. Lower levels only go to the log.
 */
static void
kw_emit_log(ErrorData *edata)
{
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
	if (kw_out >= 0 && !kw_error_sent && edata->elevel >= FATAL)
		kw_send_error(edata->elevel == FATAL ? "FATAL: " : "PANIC: ", edata->message);
}

/* Read exactly len bytes; EOF before the first byte of a frame ends the helper. */
static void
kw_read_exact(char *buf, size_t len, bool at_frame_start)
{
	size_t		got = 0;

	while (got < len)
	{
		ssize_t		n = read(kw_in, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ereport(FATAL,
					(errcode_for_file_access(),
					 errmsg("could not read WAL-redo request: %m")));
		if (n == 0)
		{
			if (at_frame_start && got == 0)
				proc_exit(0);	/* the pageserver closed the pipe: done */
			ereport(FATAL,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("unexpected end of input in a WAL-redo request frame")));
		}
		got += n;
	}
}

/*
 * kw_read_frame -- read and check the next request frame. The payload is
 * left in kw_inbuf (MAXALIGNed). Malformed frames are FATAL: the stream
 * cannot be resynchronized.
 */
static void
kw_read_frame(uint16 *type, uint32 *len)
{
	char		hdr[KW_FRAME_HDR];
	pg_crc32c	crc;

	kw_read_exact(hdr, sizeof(hdr), true);
	if ((uint8) hdr[0] != KW_FRAME_MAGIC0 || (uint8) hdr[1] != KW_FRAME_MAGIC1)
		ereport(FATAL,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("invalid frame magic in WAL-redo request")));
	if (hdr[2] != KW_FRAME_VERSION)
		ereport(FATAL,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("unsupported frame version %d: this helper supports version %d",
						(uint8) hdr[2], KW_FRAME_VERSION)));
	if ((uint8) hdr[3] & KW_FRAME_CRITICAL)
		ereport(FATAL,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("frame uses unsupported flags 0x%02x", (uint8) hdr[3])));
	*type = kw_get16(hdr + 4);
	*len = kw_get32(hdr + 6);
	if (*len > KW_MAX_REQUEST)
		ereport(FATAL,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("WAL-redo request of %u bytes exceeds the limit of %u bytes",
						*len, (uint32) KW_MAX_REQUEST)));
	if (*len + 1 > kw_inbuf_cap)
	{
		if (kw_inbuf)
			pfree(kw_inbuf);
		kw_inbuf_cap = Max((size_t) *len + 1, 64 * 1024);
		kw_inbuf = MemoryContextAlloc(TopMemoryContext, kw_inbuf_cap);
	}
	if (*len > 0)
		kw_read_exact(kw_inbuf, *len, false);
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, hdr, 10);
	if (*len > 0)
		COMP_CRC32C(crc, kw_inbuf, *len);
	FIN_CRC32C(crc);
	if (crc != kw_get32(hdr + 10))
		ereport(FATAL,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("WAL-redo request frame checksum mismatch")));
}

/* ---- requests ---------------------------------------------------------- */

/*
 * kw_touch_rel -- remember that the request uses rnode: make every fork
 * look MaxBlockNumber long (so redo never extends it) and create the main,
 * FSM and VM files redo may read (visibilitymap_clear reads the VM fork
 * without creating it). Files and buffers go away in kw_end_request().
 */
static void
kw_touch_rel(RelFileNode rnode)
{
	SMgrRelation reln;

	for (int i = 0; i < kw_req.nrels; i++)
		if (RelFileNodeEquals(kw_req.rels[i], rnode))
			return;
	if (kw_req.nrels == kw_req.maxrels)
	{
		kw_req.maxrels = kw_req.maxrels ? kw_req.maxrels * 2 : 16;
		kw_req.rels = kw_req.rels
			? repalloc(kw_req.rels, sizeof(RelFileNode) * kw_req.maxrels)
			: MemoryContextAlloc(TopMemoryContext, sizeof(RelFileNode) * kw_req.maxrels);
	}
	kw_req.rels[kw_req.nrels++] = rnode;

	reln = smgropen(rnode, InvalidBackendId);
	for (int f = 0; f <= MAX_FORKNUM; f++)
		reln->smgr_cached_nblocks[f] = MaxBlockNumber;
	smgrcreate(reln, MAIN_FORKNUM, true);
	smgrcreate(reln, FSM_FORKNUM, true);
	smgrcreate(reln, VISIBILITYMAP_FORKNUM, true);
}

/*
 * kw_end_request -- drop the buffers, scratch files and invalid-page
 * entries of every relation the request touched.
 */
static void
kw_end_request(void)
{
	SMgrRelation *srels;

	if (kw_req.nrels > 0)
	{
		srels = palloc(sizeof(SMgrRelation) * kw_req.nrels);
		for (int i = 0; i < kw_req.nrels; i++)
			srels[i] = smgropen(kw_req.rels[i], InvalidBackendId);
		smgrdounlinkall(srels, kw_req.nrels, true);
		for (int i = 0; i < kw_req.nrels; i++)
		{
			for (int f = 0; f <= MAX_FORKNUM; f++)
				XLogDropRelation(kw_req.rels[i], f);
			smgrclose(srels[i]);
		}
		pfree(srels);
	}
	kw_req.nrels = 0;
	kw_req.active = false;
	kw_req.pushed = false;
	kw_req.napplied = 0;
}

static void
kw_require_request(const char *what)
{
	if (!kw_req.active)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("%s without BEGIN", what)));
}

static void
kw_check_len(const char *what, uint32 len, uint32 want)
{
	if (len != want)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("%s message has %u bytes, expected %u", what, len, want)));
}

static void
kw_handle_hello(const char *p, uint32 len)
{
	uint16		min_version,
				max_version;
	char		reply[16];

	kw_check_len("HELLO", len, 4);
	min_version = kw_get16(p);
	max_version = kw_get16(p + 2);
	if (min_version > KW_PROTO_VERSION || max_version < KW_PROTO_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("unsupported walredo protocol versions %u to %u: this helper speaks version %u",
						min_version, max_version, KW_PROTO_VERSION)));
	kw_put16(reply, KW_PROTO_VERSION);
	kw_put16(reply + 2, 0);
	kw_put32(reply + 4, PG_VERSION_NUM);
	kw_put32(reply + 8, BLCKSZ);
	kw_put32(reply + 12, (uint32) MyProcPid);
	kw_hello_done = true;
	kw_send(KW_REPLY_HELLO, reply, sizeof(reply));
}

static void
kw_handle_begin(const char *p, uint32 len)
{
	uint8		fork;

	kw_check_len("BEGIN", len, KW_TAG_SIZE);
	if (kw_req.active)
		kw_end_request();		/* the previous request was abandoned */
	kw_req.rnode.spcNode = kw_get32(p);
	kw_req.rnode.dbNode = kw_get32(p + 4);
	kw_req.rnode.relNode = kw_get32(p + 8);
	fork = (uint8) p[12];
	kw_req.blkno = kw_get32(p + 13);
	if (fork > MAX_FORKNUM)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("invalid fork number %u in BEGIN", fork)));
	if (kw_req.blkno == InvalidBlockNumber)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("invalid block number %u in BEGIN", kw_req.blkno)));
	kw_req.forknum = (ForkNumber) fork;
	kw_req.active = true;
	kw_touch_rel(kw_req.rnode);
	if (kw_req.forknum > VISIBILITYMAP_FORKNUM)
		smgrcreate(smgropen(kw_req.rnode, InvalidBackendId), kw_req.forknum, true);
}

static void
kw_handle_push(const char *p, uint32 len)
{
	Buffer		buf;

	kw_require_request("PUSH");
	kw_check_len("PUSH", len, BLCKSZ);
	if (kw_req.pushed || kw_req.napplied > 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("PUSH must come once, before any APPLY")));
	buf = ReadBufferWithoutRelcache(kw_req.rnode, kw_req.forknum, kw_req.blkno,
									RBM_ZERO_AND_LOCK, NULL, true);
	memcpy(BufferGetPage(buf), p, BLCKSZ);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
	kw_req.pushed = true;
}

/* True when the record's CRC (as XLogReadRecord checks it) is right. */
static bool
kw_record_crc_ok(const XLogRecord *rec)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, ((const char *) rec) + SizeOfXLogRecord, rec->xl_tot_len - SizeOfXLogRecord);
	COMP_CRC32C(crc, (const char *) rec, offsetof(XLogRecord, xl_crc));
	FIN_CRC32C(crc);
	return EQ_CRC32C(crc, rec->xl_crc);
}

/*
 * kw_handle_apply -- decode one raw record and replay it with its rmgr's
 * rm_redo. The record sits at offset 16 of the MAXALIGNed input buffer, so
 * it is suitably aligned. ReadRecPtr/EndRecPtr are the record's start and
 * end: redo stamps the end LSN on the pages it changes.
 */
static void
kw_handle_apply(const char *p, uint32 len)
{
	XLogRecPtr	start,
				end;
	XLogRecord *rec;
	uint32		reclen;
	DecodedXLogRecord *decoded;
	char	   *errormsg = NULL;
	MemoryContext oldcxt;

	kw_require_request("APPLY");
	if (len < KW_APPLY_HDR + SizeOfXLogRecord)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("APPLY message of %u bytes is too short for a WAL record", len)));
	start = kw_get64(p);
	end = kw_get64(p + 8);
	rec = (XLogRecord *) (p + KW_APPLY_HDR);
	reclen = len - KW_APPLY_HDR;
	if (rec->xl_tot_len != reclen)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("WAL record at %X/%X has length %u but %u bytes were sent",
						LSN_FORMAT_ARGS(start), rec->xl_tot_len, reclen)));
	if (end <= start)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("WAL record end %X/%X is not after its start %X/%X",
						LSN_FORMAT_ARGS(end), LSN_FORMAT_ARGS(start))));
	if (!kw_record_crc_ok(rec))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("incorrect checksum in WAL record at %X/%X", LSN_FORMAT_ARGS(start))));

	/* Set first: DecodeXLogRecord's messages name ReadRecPtr. */
	kw_reader->ReadRecPtr = start;
	kw_reader->EndRecPtr = end;
	oldcxt = MemoryContextSwitchTo(kw_record_cxt);
	decoded = palloc(DecodeXLogRecordRequiredSpace(reclen));
	if (!DecodeXLogRecord(kw_reader, decoded, rec, start, &errormsg))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not decode WAL record at %X/%X: %s",
						LSN_FORMAT_ARGS(start), errormsg ? errormsg : "unknown error")));
	for (int i = 0; i <= decoded->max_block_id; i++)
		if (decoded->blocks[i].in_use)
			kw_touch_rel(decoded->blocks[i].rnode);

	kw_reader->record = decoded;
	GetRmgr(rec->xl_rmid).rm_redo(kw_reader);
	kw_reader->record = NULL;

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(kw_record_cxt);
	kw_req.napplied++;
}

static void
kw_handle_get(uint32 len)
{
	Buffer		buf;
	char	   *page = palloc(BLCKSZ);

	kw_require_request("GET");
	kw_check_len("GET", len, 0);
	buf = ReadBufferWithoutRelcache(kw_req.rnode, kw_req.forknum, kw_req.blkno,
									RBM_NORMAL, NULL, true);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	memcpy(page, BufferGetPage(buf), BLCKSZ);
	UnlockReleaseBuffer(buf);
	kw_end_request();
	kw_send(KW_REPLY_PAGE, page, BLCKSZ);
	pfree(page);
}

static void
kw_dispatch(uint16 type, const char *p, uint32 len)
{
	if (!kw_hello_done && type != KW_MSG_HELLO)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("expected HELLO, got message type 0x%04x", type)));
	switch (type)
	{
		case KW_MSG_HELLO:
			kw_handle_hello(p, len);
			break;
		case KW_MSG_BEGIN:
			kw_handle_begin(p, len);
			break;
		case KW_MSG_PUSH:
			kw_handle_push(p, len);
			break;
		case KW_MSG_APPLY:
			kw_handle_apply(p, len);
			break;
		case KW_MSG_GET:
			kw_handle_get(len);
			break;
		case KW_MSG_PING:
			kw_check_len("PING", len, 8);
			kw_send(KW_REPLY_PONG, p, 8);
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("unknown WAL-redo message type 0x%04x", type)));
	}
}

/*
 * kw_fail -- in PG_CATCH: log the error, send it as an ERROR reply and
 * exit. Never returns.
 */
static void
kw_fail(void)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(TopMemoryContext);
	edata = CopyErrorData();
	EmitErrorReport();
	FlushErrorState();
	kw_send_error("", edata->message);
	proc_exit(1);
}

static void
kw_loop(void)
{
	for (;;)
	{
		uint16		type;
		uint32		len;

		kw_cur_type = 0;
		kw_read_frame(&type, &len);
		kw_cur_type = type;
		PG_TRY();
		{
			kw_dispatch(type, kw_inbuf, len);
		}
		PG_CATCH();
		{
			kw_fail();
		}
		PG_END_TRY();
		if (kw_inbuf_cap > 4 * 1024 * 1024)
		{
			pfree(kw_inbuf);
			kw_inbuf = NULL;
			kw_inbuf_cap = 0;
		}
	}
}

/*
 * kw_takeover -- finish what single-user startup would have done up to the
 * point redo needs, then serve requests. Never returns: stdin EOF exits 0.
 */
static void
kw_takeover(void)
{
	int			devnull;

	/*
	 * Keep the protocol on private descriptors: a stray printf must not
	 * corrupt the replies, and nothing else may read the requests.
	 */
	kw_in = dup(STDIN_FILENO);
	kw_out = dup(STDOUT_FILENO);
	devnull = open("/dev/null", O_RDONLY);
	if (kw_in < 0 || kw_out < 0 || devnull < 0 ||
		dup2(devnull, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		ereport(FATAL,
				(errcode_for_file_access(),
				 errmsg("could not set up the WAL-redo pipes: %m")));
	close(devnull);
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = kw_emit_log;

	InitProcess();
	BaseInit();
	SetProcessingMode(NormalProcessing);
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "kelp wal redo");
	InRecovery = true;

	kw_reader = XLogReaderAllocate(wal_segment_size, NULL, XL_ROUTINE(), NULL);
	if (kw_reader == NULL)
		ereport(FATAL,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed while allocating a WAL reading processor.")));
	kw_record_cxt = AllocSetContextCreate(TopMemoryContext, "kelp wal redo record",
										  ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(TopMemoryContext);

	/* btree, GIN, GiST and SP-GiST create their redo memory contexts here. */
	RmgrStartup();

	ereport(DEBUG1, (errmsg("kelp WAL-redo helper ready")));
	kw_loop();
	proc_exit(0);
}
