/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pgwire_server.h -- a PostgreSQL-protocol listener on libevent that hands queries to callbacks.
 *
 * The server accepts TCP connections, runs the startup handshake of
 * pgwire.h (SSL and GSS requests answered 'N', trust authentication unless
 * on_auth decides otherwise), then reads typed messages and calls:
 *
 *   on_query(conn, sql)          for each simple Query; the callback answers
 *                                with kc_pgwire_conn_send_* and returns DONE
 *                                (the server sends ReadyForQuery) or PENDING
 *                                (it calls kc_pgwire_conn_ready later)
 *   on_copy_data(conn, ...)      for each CopyData after kc_pgwire_conn_start_copy_both
 *   on_copy_done(conn, failed)   when the client ends COPY (CopyDone or CopyFail)
 *   on_drain(conn)               when the output buffer fell to the level asked
 *                                for with kc_pgwire_conn_notify_drain
 *   on_close(conn)               once, just before the connection is freed
 *
 * Streaming: a callback that sends WAL checks kc_pgwire_conn_pending() and,
 * above its budget, asks kc_pgwire_conn_notify_drain() to be called back
 * when the peer has read enough: memory stays bounded by the budget.
 *
 * Threading: a server and its connections belong to the thread running
 * their event_base; every function here must be called on that thread
 * (callbacks are). A connection is freed only from the event loop, never
 * inside a call the application makes, so a conn pointer stays valid until
 * on_close returns. Protocol errors end the connection with a FATAL
 * ErrorResponse and never affect other connections. The server ignores
 * SIGPIPE process-wide (a peer that goes away must not kill the process).
 * docs/protocol-pgwire.md describes the protocol subset and its limits.
 */
#ifndef KC_PGWIRE_SERVER_H
#define KC_PGWIRE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/lsn.h"
#include "common/pgwire.h"

struct event_base;
struct kc_pgwire_server;
struct kc_pgwire_conn;

/* Authentication decisions of on_auth and kc_pgwire_conn_auth_done. */
enum kc_pgwire_auth {
    KC_PGWIRE_AUTH_ACCEPT = 0, /* authenticated: AuthenticationOk, parameters, ReadyForQuery */
    KC_PGWIRE_AUTH_REJECT,     /* refused: FATAL (28P01 after a password, else 28000), close */
    KC_PGWIRE_AUTH_PASSWORD,   /* ask for a cleartext password; on_auth is called again with it */
    KC_PGWIRE_AUTH_DEFER       /* input pauses until kc_pgwire_conn_auth_done (or on_close,
                                  when the client leaves or the startup timeout expires) */
};

/* What on_query returns. */
enum kc_pgwire_query_status {
    KC_PGWIRE_QUERY_DONE = 0, /* the reply is complete: the server sends ReadyForQuery */
    KC_PGWIRE_QUERY_PENDING   /* more to come; the application calls kc_pgwire_conn_ready */
};

struct kc_pgwire_server_ops {
    /*
     * Decide authentication. Called with password NULL once the startup
     * packet is accepted (kc_pgwire_conn_startup has it), and again with the
     * password after KC_PGWIRE_AUTH_PASSWORD. On REJECT, a message set in
     * err is sent (a default one otherwise). NULL: trust, accept everyone.
     */
    enum kc_pgwire_auth (*on_auth)(struct kc_pgwire_conn *conn, const char *password,
                                   struct kc_error *err);
    /*
     * A simple Query (required). sql is NUL-terminated and valid during the
     * call. Empty queries (blanks and ';') are answered by the server and not
     * passed on. Input is not read while a query is pending, except COPY data.
     */
    enum kc_pgwire_query_status (*on_query)(struct kc_pgwire_conn *conn, const char *sql);
    /* A CopyData body during COPY (valid during the call). NULL: ignored. */
    void (*on_copy_data)(struct kc_pgwire_conn *conn, const uint8_t *data, size_t len);
    /*
     * The client ended COPY. failed NULL: CopyDone; end the copy with
     * kc_pgwire_conn_end_copy (now or later). failed non-NULL: CopyFail with
     * that reason; the server has already sent the ERROR and ReadyForQuery.
     * NULL callback: the copy ends at once with tag "COPY 0".
     */
    void (*on_copy_done)(struct kc_pgwire_conn *conn, const char *failed);
    /* The output fell to the level given to kc_pgwire_conn_notify_drain (one-shot). */
    void (*on_drain)(struct kc_pgwire_conn *conn);
    /* The connection is about to be freed; release what set_data holds. */
    void (*on_close)(struct kc_pgwire_conn *conn);
    /* A CancelRequest for the connection with this backend key (then closed). */
    void (*on_cancel)(struct kc_pgwire_server *srv, uint32_t pid, uint32_t key);
};

struct kc_pgwire_server_config {
    const char *host;            /* address or name to listen on; NULL: "127.0.0.1" */
    uint16_t port;               /* TCP port; 0: an ephemeral one (kc_pgwire_server_port) */
    unsigned max_connections;    /* sessions past their startup packet; 0: 100. Beyond it
                                    FATAL 53300; sockets beyond 2x + 16 are closed at accept */
    size_t max_message;          /* largest message body after authentication; 0: 1 MiB */
    unsigned startup_timeout_ms; /* handshake and authentication deadline; 0: 60000 */
    /* ParameterStatus values sent after authentication (copied); NULL: defaults
     * that satisfy libpq, psql and pg_receivewal (server_version 15.18, UTF8, ...). */
    const struct kc_pgwire_param *params;
    size_t nparams;                         /* entries in params */
    const struct kc_pgwire_server_ops *ops; /* callbacks (copied); on_query is required */
    void *user;                             /* for the callbacks: kc_pgwire_server_user */
};

/*
 * kc_pgwire_server_open -- listen on cfg->host:cfg->port with base's loop.
 * Returns 0 with *out set (free it with kc_pgwire_server_close), or
 * KC_EINVAL (no on_query), KC_EIO (the address cannot be resolved or bound)
 * with err filled. Connections are served as base runs.
 */
int kc_pgwire_server_open(struct event_base *base, const struct kc_pgwire_server_config *cfg,
                          struct kc_pgwire_server **out, struct kc_error *err) KC_MUSTCHECK;
/*
 * kc_pgwire_server_close -- stop listening and close every connection: each
 * authenticated one gets a FATAL 57P01 if its socket takes it at once, then
 * on_close. Call on the loop's thread, or after the loop stopped. NULL is fine.
 */
void kc_pgwire_server_close(struct kc_pgwire_server *srv);
/* The port listened on (the ephemeral one chosen when cfg->port was 0). */
uint16_t kc_pgwire_server_port(const struct kc_pgwire_server *srv);
void *kc_pgwire_server_user(const struct kc_pgwire_server *srv);
/* Open connections, in any phase. */
unsigned kc_pgwire_server_connections(const struct kc_pgwire_server *srv);

/* ---- a connection -------------------------------------------------------- */

struct kc_pgwire_server *kc_pgwire_conn_server(const struct kc_pgwire_conn *conn);
/* The startup packet (user, database, replication, ...); valid from on_auth on. */
const struct kc_pgwire_startup *kc_pgwire_conn_startup(const struct kc_pgwire_conn *conn);
/* "address:port" of the client. */
const char *kc_pgwire_conn_peer(const struct kc_pgwire_conn *conn);
/* The BackendKeyData sent to this client (what a CancelRequest quotes). */
void kc_pgwire_conn_backend_key(const struct kc_pgwire_conn *conn, uint32_t *pid, uint32_t *key);
void kc_pgwire_conn_set_data(struct kc_pgwire_conn *conn, void *data);
void *kc_pgwire_conn_data(const struct kc_pgwire_conn *conn);

/* Finish a deferred authentication (after KC_PGWIRE_AUTH_DEFER); err as for on_auth. */
void kc_pgwire_conn_auth_done(struct kc_pgwire_conn *conn, enum kc_pgwire_auth decision,
                              const struct kc_error *err);

/*
 * Replies. Each queues messages for the client; nothing blocks, and the
 * bytes leave as the loop runs. Ignored once the connection is closing.
 */
/* Already encoded backend messages (kc_pgwire_put_*). */
void kc_pgwire_conn_send(struct kc_pgwire_conn *conn, const void *msgs, size_t len);
/* ErrorResponse with severity ERROR: the query failed, the session goes on. */
void kc_pgwire_conn_send_error(struct kc_pgwire_conn *conn, const char *sqlstate,
                               const struct kc_error *err);
void kc_pgwire_conn_send_notice(struct kc_pgwire_conn *conn, const char *sqlstate,
                                const struct kc_error *err);
/*
 * A whole result: RowDescription(cols), nrows DataRows (values holds
 * nrows * ncols entries row by row, NULL for SQL NULL), CommandComplete(tag).
 * KC_ETOOBIG with err filled (nothing sent) when a row is too large.
 */
int kc_pgwire_conn_send_result(struct kc_pgwire_conn *conn, const struct kc_pgwire_column *cols,
                               size_t ncols, const char *const *values, size_t nrows,
                               const char *tag, struct kc_error *err) KC_MUSTCHECK;
/* End a PENDING query: ReadyForQuery, and input is read again. No-op otherwise. */
void kc_pgwire_conn_ready(struct kc_pgwire_conn *conn);

/*
 * COPY both ways (START_REPLICATION). Start it while handling a query:
 * CopyBothResponse is sent, on_copy_data gets the client's CopyData. End it
 * with kc_pgwire_conn_end_copy(tag): CopyDone is sent, and CommandComplete
 * (tag) and ReadyForQuery follow once the client's CopyDone has arrived
 * (at once when it already has). KC_EPROTO with err filled when the
 * connection is not handling a query, or for sends outside COPY.
 */
int kc_pgwire_conn_start_copy_both(struct kc_pgwire_conn *conn, struct kc_error *err) KC_MUSTCHECK;
int kc_pgwire_conn_send_copy_data(struct kc_pgwire_conn *conn, const void *data, size_t len,
                                  struct kc_error *err) KC_MUSTCHECK;
/* XLogData ('w') and primary keepalive ('k') in CopyData, as pgwire_repl.h builds them. */
int kc_pgwire_conn_send_xlog_data(struct kc_pgwire_conn *conn, kc_lsn start, kc_lsn end,
                                  int64_t send_time, const void *data, size_t len,
                                  struct kc_error *err) KC_MUSTCHECK;
int kc_pgwire_conn_send_keepalive(struct kc_pgwire_conn *conn, kc_lsn end, int64_t send_time,
                                  bool reply_requested, struct kc_error *err) KC_MUSTCHECK;
void kc_pgwire_conn_end_copy(struct kc_pgwire_conn *conn, const char *tag);
/* True between kc_pgwire_conn_start_copy_both and the end of the copy. */
bool kc_pgwire_conn_in_copy(const struct kc_pgwire_conn *conn);

/* Backpressure: bytes queued for the client and not yet taken by its socket. */
size_t kc_pgwire_conn_pending(const struct kc_pgwire_conn *conn);
/*
 * Call on_drain once, from the loop, as soon as pending <= low_water (on the
 * next loop iteration when that is already true). A new call replaces the
 * previous request.
 */
void kc_pgwire_conn_notify_drain(struct kc_pgwire_conn *conn, size_t low_water);

/*
 * Close: with err non-NULL, a FATAL ErrorResponse (sqlstate, err) goes first.
 * Queued output is flushed (for at most 5 seconds), then on_close runs and
 * the connection is freed, from the loop.
 */
void kc_pgwire_conn_close(struct kc_pgwire_conn *conn, const char *sqlstate,
                          const struct kc_error *err);

#endif
