/* SPDX-License-Identifier: Apache-2.0 */
/*
 * walstream.h -- a client of PostgreSQL's physical streaming replication
 * protocol, shared by the safekeeper (receiving WAL from a compute) and the
 * pageserver (following a safekeeper).
 *
 * One struct kc_walstream is one replication connection:
 *
 *   kc_walstream_open()      connect (replication=true), IDENTIFY_SYSTEM, check
 *                            the expected system id and timeline
 *   kc_walstream_start()     START_REPLICATION PHYSICAL X/X TIMELINE n
 *   kc_walstream_poll()      non-blocking: read what the socket has, deliver every
 *                            complete message through the callbacks, answer
 *                            keepalives, send periodic status updates
 *   kc_walstream_close()     end the copy politely, disconnect, free
 *
 * Event-loop use: watch kc_walstream_fd() for reading (and for writing while
 * kc_walstream_want_write() is true), with a timer of kc_walstream_timeout_ms();
 * call kc_walstream_poll() whenever one fires. Readiness is level-triggered:
 * poll reads only what one read returns. kc_walstream_receive_until() is the
 * blocking form for tools and tests.
 *
 * The stream checks that XLogData is contiguous: the first message starts at
 * the requested LSN and each later one where the previous ended. Feedback
 * reports the positions the caller last gave (kc_walstream_set_positions or
 * kc_walstream_send_status): the stream never claims more than the caller
 * said, so a safekeeper acks only what it has fsynced. docs/walstream.md has
 * the messages, rules and feedback semantics.
 *
 * The bytes of the messages (XLogData, keepalive, standby status update) are
 * parsed and encoded by pgwire_repl.h, the codec Kelp's servers use too: a
 * server sends 'w' and 'k' (kc_pgwire_repl_msg_parse_kinds with
 * KC_PGWIRE_REPL_FROM_SERVER), this client answers with
 * kc_pgwire_repl_encode_standby_status's payload, times from kc_pgwire_now().
 *
 * A struct kc_walstream is used by one thread at a time; the pure helpers
 * (contiguity, identity, backoff) are thread-safe.
 */
#ifndef KC_WALSTREAM_H
#define KC_WALSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/lsn.h"

/* kc_walstream_poll() / kc_walstream_receive_until(): the server ended the stream. */
#define KC_WALSTREAM_END 1

#define KC_WALSTREAM_CONNECT_TIMEOUT_MS 10000 /* default of options.connect_timeout_ms */
#define KC_WALSTREAM_STATUS_INTERVAL_MS 10000 /* default of options.status_interval_ms */
/* Largest CopyData message accepted (the walsender sends at most 128 kB of WAL). */
#define KC_WALSTREAM_MAX_MESSAGE (64u * 1024 * 1024)

/* What IDENTIFY_SYSTEM answered. */
struct kc_walstream_identity {
    uint64_t system_id; /* the cluster's database system identifier */
    uint32_t timeline;  /* the server's current timeline, >= 1 */
    kc_lsn xlogpos;     /* the server's current WAL flush position */
    char dbname[64];    /* database name, "" for a physical connection */
};

/* How to connect; zero-initialised fields take their defaults. */
struct kc_walstream_options {
    const char *conninfo;         /* libpq conninfo string or URI; required */
    const char *application_name; /* shown in pg_stat_replication; NULL: conninfo's */
    int64_t connect_timeout_ms;   /* bounds open() and start(); 0: 10 s */
    uint64_t expected_system_id;  /* 0: accept any */
    uint32_t expected_timeline;   /* 0: accept any */
    int64_t status_interval_ms;   /* periodic status update; 0: 10 s; < 0: only on request */
};

/*
 * Callbacks of kc_walstream_poll(). Each returns 0 to go on, or a negative
 * KC_E* code (having filled err) to make poll return that code at once; the
 * stream has then failed and can only be closed (the caller reconnects from
 * its flushed position). Both may call kc_walstream_set_positions() or
 * kc_walstream_send_status().
 */
struct kc_walstream_callbacks {
    /*
     * WAL bytes [start, start + len): start is always where the previous
     * call ended (or the start LSN of kc_walstream_start). data is valid
     * only during the call. Whole messages are delivered: a receiver that
     * wants to stop at an LSN clips the last one itself. Required.
     */
    int (*on_wal)(void *arg, kc_lsn start, const uint8_t *data, size_t len, struct kc_error *err);
    /*
     * A keepalive: server_end is the server's WAL end. When reply_requested,
     * poll sends a status update after this call returns unless the callback
     * sent one itself. Optional (NULL).
     */
    int (*on_keepalive)(void *arg, kc_lsn server_end, bool reply_requested, struct kc_error *err);
    void *arg; /* passed to both */
};

struct kc_walstream;

/*
 * kc_walstream_open -- connect to opts->conninfo as a physical replication
 * client (replication=true, opts->application_name) and run IDENTIFY_SYSTEM,
 * all within opts->connect_timeout_ms. Fails with KC_EINVAL when the
 * identity differs from opts->expected_system_id / expected_timeline (when
 * non-zero), KC_ETIMEDOUT when the deadline passes, KC_EIO when libpq cannot
 * connect or the server refuses (the server's message in the detail). On
 * success *out is a new stream the caller closes with kc_walstream_close();
 * the strings in opts need not outlive the call.
 */
int kc_walstream_open(struct kc_walstream **out, const struct kc_walstream_options *opts,
                      struct kc_error *err) KC_MUSTCHECK;

/* The IDENTIFY_SYSTEM answer of an open stream; owned by s. */
const struct kc_walstream_identity *kc_walstream_identity(const struct kc_walstream *s);

/*
 * kc_walstream_start -- START_REPLICATION PHYSICAL start TIMELINE timeline
 * (0: the server's current timeline) and wait, within the connect timeout,
 * for the server to enter copy mode. start must be valid (not 0/0). Only
 * once per stream. KC_EIO with the server's message when it refuses (WAL
 * already removed, start ahead of its flush position, ...).
 */
int kc_walstream_start(struct kc_walstream *s, kc_lsn start, uint32_t timeline,
                       struct kc_error *err) KC_MUSTCHECK;

/* The socket to watch (PQsocket), -1 when not connected. */
int kc_walstream_fd(const struct kc_walstream *s);
/* True while output is queued: watch the socket for writing too. */
bool kc_walstream_want_write(const struct kc_walstream *s);
/* Milliseconds until the next periodic status update is due (0: now), -1 for never. */
int64_t kc_walstream_timeout_ms(const struct kc_walstream *s);

/*
 * kc_walstream_poll -- without blocking: read what the socket has, deliver
 * every complete message through cb, reply to keepalives that ask for it,
 * send a status update when the interval has passed, and flush output.
 * Returns 0 (streaming, call again later), KC_WALSTREAM_END when the server
 * ended the stream (CopyDone, or the command completing; the stream is then
 * finished), or a negative code: KC_EPROTO for a malformed message or a
 * gap/overlap in the WAL, KC_EIO for a lost connection or a server error
 * (its message in the detail), or a callback's code. After an error the
 * stream can only be closed.
 */
int kc_walstream_poll(struct kc_walstream *s, const struct kc_walstream_callbacks *cb,
                      struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_walstream_set_positions -- record the positions the next status update
 * reports, without sending: write (received and written), flush (durable),
 * apply (0 when nothing applies WAL). Requires apply <= flush <= write
 * (apply 0 allowed); KC_EINVAL otherwise, nothing recorded.
 */
int kc_walstream_set_positions(struct kc_walstream *s, kc_lsn write_lsn, kc_lsn flush_lsn,
                               kc_lsn apply_lsn, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_walstream_send_status -- record the positions as set_positions does and
 * send a standby status update now (timestamp: now, in PostgreSQL epoch
 * microseconds), asking the server for a keepalive when reply_requested.
 * Restarts the periodic interval. Only while streaming; KC_EIO when the
 * connection fails.
 */
int kc_walstream_send_status(struct kc_walstream *s, kc_lsn write_lsn, kc_lsn flush_lsn,
                             kc_lsn apply_lsn, bool reply_requested,
                             struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_walstream_receive_until -- block, polling, until the WAL received
 * reaches stop_lsn (0 returned), the server ends the stream
 * (KC_WALSTREAM_END), timeout_ms passes (KC_ETIMEDOUT; a negative timeout
 * waits forever), or an error. Sends status updates as poll does. For tools
 * and tests; a role uses its event loop.
 */
int kc_walstream_receive_until(struct kc_walstream *s, kc_lsn stop_lsn, int64_t timeout_ms,
                               const struct kc_walstream_callbacks *cb,
                               struct kc_error *err) KC_MUSTCHECK;

/* End of the WAL received so far (the start LSN before any). */
kc_lsn kc_walstream_received_lsn(const struct kc_walstream *s);
/* Highest WAL end the server has reported (XLogData or keepalive), 0 before any. */
kc_lsn kc_walstream_server_end_lsn(const struct kc_walstream *s);

/*
 * kc_walstream_close -- send CopyDone when still streaming, disconnect and
 * free s. Does not wait for the server. NULL is a no-op.
 */
void kc_walstream_close(struct kc_walstream *s);

/* ---- pure helpers, exposed for the unit tests and for other clients ---- */

/*
 * kc_walstream_check_contiguous -- KC_EPROTO unless an XLogData message at
 * msg_start follows the WAL received so far, which ends at expected: "gap"
 * when it starts later, "overlap" when earlier.
 */
int kc_walstream_check_contiguous(kc_lsn expected, kc_lsn msg_start,
                                  struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_walstream_parse_identity -- the four IDENTIFY_SYSTEM columns as text
 * (dbname may be NULL) into *out: systemid a decimal uint64, timeline a
 * decimal 1..UINT32_MAX, xlogpos "X/X". KC_EPROTO naming the bad column.
 */
int kc_walstream_parse_identity(const char *systemid, const char *timeline, const char *xlogpos,
                                const char *dbname, struct kc_walstream_identity *out,
                                struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_walstream_check_identity -- KC_EINVAL when id differs from a non-zero
 * expected_system_id ("WAL source has system id X, expected Y") or
 * expected_timeline.
 */
int kc_walstream_check_identity(const struct kc_walstream_identity *id, uint64_t expected_system_id,
                                uint32_t expected_timeline, struct kc_error *err) KC_MUSTCHECK;

/*
 * Reconnect policy: exponential backoff with jitter. The base delay starts
 * at initial_ms and doubles after each attempt up to max_ms; each delay is
 * drawn from [base / 2, base]. The caller decides when to reconnect and from
 * which LSN (its last flushed position), and resets after a connection that
 * streamed.
 */
struct kc_walstream_backoff {
    int64_t initial_ms; /* first base delay, > 0 */
    int64_t max_ms;     /* cap of the base delay, >= initial_ms */
    int64_t base_ms;    /* base of the next delay */
    uint32_t attempts;  /* delays handed out since the last reset */
};

#define KC_WALSTREAM_BACKOFF_INITIAL_MS 100
#define KC_WALSTREAM_BACKOFF_MAX_MS     10000

/* Set up b; initial_ms <= 0 or max_ms <= 0 take the defaults (100 ms, 10 s). */
void kc_walstream_backoff_init(struct kc_walstream_backoff *b, int64_t initial_ms, int64_t max_ms);
/* The next delay in ms, jittered by rnd (any 64 random bits), and advance. */
int64_t kc_walstream_backoff_next(struct kc_walstream_backoff *b, uint64_t rnd);
/* Back to initial_ms (after a successful connection). */
void kc_walstream_backoff_reset(struct kc_walstream_backoff *b);

#endif
