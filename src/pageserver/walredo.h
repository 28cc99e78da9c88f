/* SPDX-License-Identifier: Apache-2.0 */
/*
 * walredo.h -- rebuild a page from a base image and WAL records with a pool
 * of PostgreSQL WAL-redo helper processes.
 *
 * Records of most resource managers can only be replayed by PostgreSQL's
 * own redo routines. A helper is the patched postgres 15.18 started as
 * `postgres --single` on a scratch data directory with
 * shared_preload_libraries=kelp and KELP_WALREDO=1: the kelp extension
 * takes the process over before startup (src/pgext/walredo.c) and serves
 * requests on its stdin/stdout in the walredo protocol, version 1: frames
 * of docs/protocol-frame.md with the message types below. docs/walredo.md
 * documents the protocol, the pool and what is not handled yet.
 *
 * The pool starts helpers lazily, as the unprivileged OS user when we run
 * as root, one scratch directory each (made from a pg_control that initdb
 * writes when the pool is created). A helper that crashes, answers with an
 * error, breaks the protocol or does not answer within the timeout is
 * killed, reaped and replaced at its next use, and the request is retried
 * (once by default) on a fresh helper.
 *
 * Thread-safety: ps_walredo_apply() may be called from any number of
 * threads at once; each helper serves one request at a time, and a caller
 * waits for a free helper when all are busy. create and destroy must not
 * run concurrently with anything else on the same pool.
 */
#ifndef PS_WALREDO_H
#define PS_WALREDO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/lsn.h"

#define PS_REDO_PAGE_SIZE 8192 /* BLCKSZ of our PostgreSQL build */

/* ---- the walredo protocol (version 1) ------------------------------------- */

#define PS_WALREDO_PROTO_VERSION 1
#define PS_WALREDO_MAX_REQUEST   (64u * 1024 * 1024) /* largest request frame payload */
#define PS_WALREDO_MAX_REPLY     (64u * 1024)        /* largest reply frame payload */
#define PS_WALREDO_TAG_SIZE      17                  /* spc, db, rel, fork (u8), blkno */
#define PS_WALREDO_APPLY_HDR     16                  /* start LSN, end LSN */
#define PS_WALREDO_RECORD_MIN    24                  /* SizeOfXLogRecord */
#define PS_WALREDO_NO_RECORD     0xFFFFFFFFu         /* ERROR reply: not about a record */
#define PS_WALREDO_ERROR_HDR     6                   /* message type, record index */

/* Message types (frame type field). Requests 0x57xx, replies 0x578x and up. */
enum ps_walredo_msg {
    PS_WALREDO_MSG_HELLO = 0x5701, /* u16 min version, u16 max version */
    PS_WALREDO_MSG_BEGIN = 0x5702, /* target tag (17 bytes) */
    PS_WALREDO_MSG_PUSH = 0x5703,  /* base image of the target (8192 bytes) */
    PS_WALREDO_MSG_APPLY = 0x5704, /* u64 start LSN, u64 end LSN, raw record */
    PS_WALREDO_MSG_GET = 0x5705,   /* empty: reply PAGE, then the request ends */
    PS_WALREDO_MSG_PING = 0x5706,  /* u64 token: reply PONG */
    PS_WALREDO_REPLY_HELLO =
        0x5781, /* u16 version, u16 0, u32 PG_VERSION_NUM, u32 BLCKSZ, u32 pid */
    PS_WALREDO_REPLY_PAGE = 0x5785, /* the target page (8192 bytes) */
    PS_WALREDO_REPLY_PONG = 0x5786, /* u64 token */
    PS_WALREDO_REPLY_ERROR = 0x57FF /* u16 message type, u32 record index, text */
};

/* The page a request rebuilds (PostgreSQL's BufferTag). */
struct ps_redo_tag {
    uint32_t spcnode; /* tablespace oid */
    uint32_t dbnode;  /* database oid */
    uint32_t relnode; /* relfilenode */
    uint8_t forknum;  /* 0 main, 1 fsm, 2 vm, 3 init */
    uint32_t blkno;   /* block number (not 0xFFFFFFFF) */
};

/* One WAL record to replay, exactly as written (XLogRecord header first). */
struct ps_redo_record {
    kc_lsn lsn;          /* where it starts */
    kc_lsn end_lsn;      /* where the next record starts: redo stamps it on the page */
    const uint8_t *data; /* len bytes; not owned */
    uint32_t len;        /* xl_tot_len */
};

/*
 * A reconstruction: the target, an optional base image, then records in
 * LSN order. Without a base image the first record must initialize the
 * target (a full-page image or a will-init block); otherwise redo starts
 * from a zero page. Nothing is owned: the caller keeps it all alive for the
 * duration of the call.
 */
struct ps_redo_request {
    struct ps_redo_tag tag;
    const uint8_t *base_image; /* PS_REDO_PAGE_SIZE bytes, or NULL */
    const struct ps_redo_record *records;
    size_t nrecords;
};

/* A decoded reply; pointers point into the bytes given to ps_walredo_parse_reply(). */
struct ps_walredo_reply {
    uint16_t type;         /* PS_WALREDO_REPLY_* */
    uint16_t version;      /* HELLO: protocol version chosen by the helper */
    uint32_t pg_version;   /* HELLO: PG_VERSION_NUM (150018) */
    uint32_t blcksz;       /* HELLO: BLCKSZ */
    uint32_t pid;          /* HELLO: the helper's pid */
    const uint8_t *page;   /* PAGE: PS_REDO_PAGE_SIZE bytes */
    uint64_t token;        /* PONG */
    uint16_t err_msg_type; /* ERROR: message being handled (0: none) */
    uint32_t err_record;   /* ERROR: index of the failing APPLY, or PS_WALREDO_NO_RECORD */
    const char *err_text;  /* ERROR: the message, err_text_len bytes, not NUL-terminated */
    size_t err_text_len;
};

/* Append the HELLO frame offering versions min..max. */
void ps_walredo_encode_hello(struct kc_sbuf *out, uint16_t min_version, uint16_t max_version);
/* Append a PING frame carrying token. */
void ps_walredo_encode_ping(struct kc_sbuf *out, uint64_t token);

/*
 * ps_walredo_encode_request -- append the frames of one request (BEGIN,
 * PUSH when there is a base image, one APPLY per record, GET) to out.
 * Returns 0, KC_EINVAL (bad fork or block number, no base image and no
 * records, a record shorter than a record header, a record whose end LSN is
 * not after its start) or KC_ETOOBIG (a record that does not fit a frame);
 * out is unchanged on error.
 */
int ps_walredo_encode_request(struct kc_sbuf *out, const struct ps_redo_request *req,
                              struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_walredo_parse_reply -- decode the reply frame at the start of
 * data[0..len). Returns 0 with *out filled and *consumed set, KC_EAGAIN when
 * more bytes are needed, or a final error: the frame layer's (KC_EPROTO,
 * KC_EVERSION, KC_ETOOBIG above PS_WALREDO_MAX_REPLY, KC_ECORRUPT) or
 * KC_EPROTO for an unknown type or a payload of the wrong size. Never reads
 * outside data[0..len).
 */
int ps_walredo_parse_reply(const uint8_t *data, size_t len, struct ps_walredo_reply *out,
                           size_t *consumed, struct kc_error *err) KC_MUSTCHECK;

/* ---- the pool ---------------------------------------------------------------- */

struct ps_walredo_pool;

/* Stand-in for the postgres executable in tests: runs in the forked child with
 * the request pipe on fd 0 and the reply pipe on fd 1; its return value is the
 * exit status. Not async-signal-safe, so single-threaded test programs only. */
typedef int (*ps_walredo_child_fn)(void *arg);

/* Pool settings: start from ps_walredo_opts_init(), then change what differs. */
struct ps_walredo_opts {
    unsigned timeout_ms; /* a helper must answer (start included) within this; 10000 (0: default) */
    unsigned retries;    /* attempts on a fresh helper after a failure; 1 */
    const char *shared_buffers; /* the helper's shared_buffers; "16MB" */
    const char *log_path;       /* helpers' stderr (appended); NULL: <scratch_base>/walredo.log */
    ps_walredo_child_fn child_main; /* tests: run this instead of postgres (no initdb) */
    void *child_arg;                /* passed to child_main */
};

/* Fill opts with the defaults above. */
void ps_walredo_opts_init(struct ps_walredo_opts *opts);

/*
 * ps_walredo_pool_create -- a pool of up to nprocs (1..64) helpers running
 * <pg_bindir>/postgres. scratch_base is created when missing (parents must
 * exist) and handed to the OS user os_user (see kc_user_for_postgres(); NULL
 * means "kelp") when we are root; it receives the helpers' directories
 * helper-<i>/, their log and, while the pool is created, an initdb run that
 * provides the pg_control template. No helper is started yet. opts may be
 * NULL for the defaults; it is copied. Registers the pool's metrics in the
 * default registry (docs/metrics.md). Free with ps_walredo_pool_destroy().
 */
int ps_walredo_pool_create(const char *pg_bindir, const char *scratch_base, int nprocs,
                           const char *os_user, const struct ps_walredo_opts *opts,
                           struct ps_walredo_pool **out, struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_walredo_pool_destroy -- close every helper's stdin (they exit 0), wait
 * up to 5 s for them, kill the rest, reap all, free the pool (NULL: no-op).
 * No call on the pool may be running or start.
 */
void ps_walredo_pool_destroy(struct ps_walredo_pool *pool);

/*
 * ps_walredo_apply -- rebuild req's target page into page_out.
 *
 * Takes a free helper (starting it if needed), sends the request and waits
 * for the page. A failure of the helper (crash, ERROR reply, protocol
 * violation, timeout) kills it, and the request is retried on a fresh
 * helper up to opts.retries times. Returns 0, or the last failure:
 * KC_ECORRUPT (redo refused the records: the message is PostgreSQL's, with
 * the failing record's LSN), KC_ETIMEDOUT, KC_EIO (the helper died or could
 * not start), KC_EPROTO, KC_EVERSION, or KC_EINVAL/KC_ETOOBIG for a request
 * that cannot be encoded (not retried). page_out is undefined on error.
 * Thread-safe; blocks up to about (retries + 1) * timeout_ms, plus the wait
 * for a free helper (at most timeout_ms).
 */
int ps_walredo_apply(struct ps_walredo_pool *pool, const struct ps_redo_request *req,
                     uint8_t page_out[PS_REDO_PAGE_SIZE], struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_walredo_pool_start -- start the first n helpers that are not running
 * and not in use now (warm-up, so the first requests do not pay for a
 * start, ~0.1 s each). Returns 0 or the first start failure. Thread-safe.
 */
int ps_walredo_pool_start(struct ps_walredo_pool *pool, int n, struct kc_error *err) KC_MUSTCHECK;

/*
 * ps_walredo_pool_pids -- the pids of running helpers (0 for a slot without
 * one) in out[0..n), n = min(max, nprocs); returns n. For tests and
 * diagnostics: a pid may die at any moment.
 */
int ps_walredo_pool_pids(struct ps_walredo_pool *pool, pid_t *out, int max);

#endif
