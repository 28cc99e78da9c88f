/* SPDX-License-Identifier: Apache-2.0 */
/* walstream.c -- a libpq client of PostgreSQL's physical streaming replication. See walstream.h. */
#include "common/walstream.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/pgwire_repl.h"

enum ws_state {
    WS_IDLE,      /* connected and identified, not streaming yet */
    WS_STREAMING, /* in COPY BOTH: XLogData and keepalives arrive */
    WS_DRAINING,  /* the copy ended: collecting the server's final results */
    WS_ENDED,     /* the server ended the stream cleanly */
    WS_FAILED     /* an error happened: close only */
};

/* One replication connection; used by one thread at a time. */
struct kc_walstream {
    PGconn *conn;                    /* owned; NULL after close */
    enum ws_state state;             /* see enum ws_state */
    struct kc_walstream_identity id; /* IDENTIFY_SYSTEM answer */
    int64_t connect_timeout_ms;      /* bounds open() and start() */
    int64_t status_interval_ms;      /* < 0: status only on request */
    kc_lsn start_lsn;                /* START_REPLICATION position */
    kc_lsn received_lsn;             /* end of the WAL delivered so far */
    kc_lsn server_end_lsn;           /* highest walEnd seen */
    kc_lsn write_lsn, flush_lsn;     /* positions the next status reports */
    kc_lsn apply_lsn;                /* 0: nothing applies WAL */
    int64_t last_status_ms;          /* monotonic time of the last status sent */
    uint64_t status_sent;            /* status updates sent, to spot callback replies */
    bool server_done;                /* the server sent CopyDone */
    bool flush_pending;              /* libpq holds output not yet sent */
    struct kc_error drain_err;       /* an error result seen while draining */
};

static int64_t ws_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Copy a libpq message into out as one line: runs of blanks become one space,
 * and a line break after a word ends a sentence (". ").
 */
static void ws_clean_message(const char *in, char *out, size_t len)
{
    size_t n = 0;
    bool space = false, stop = false;

    for (; in != NULL && *in != '\0' && n + 3 < len; in++) {
        if (*in == '\n' || *in == '\r') {
            stop = n > 0 && isalnum((unsigned char)out[n - 1]);
            space = n > 0;
            continue;
        }
        if (*in == '\t' || *in == ' ') {
            space = n > 0;
            continue;
        }
        if (stop)
            out[n++] = '.';
        if (space)
            out[n++] = ' ';
        space = stop = false;
        out[n++] = *in;
    }
    out[n] = '\0';
}

/* "host:port" of the connection for messages (never the conninfo: it may hold a password). */
static void ws_where(PGconn *conn, char *out, size_t len)
{
    const char *host = conn != NULL ? PQhost(conn) : NULL;
    const char *port = conn != NULL ? PQport(conn) : NULL;

    if (host != NULL && host[0] != '\0')
        snprintf(out, len, " at %s%s%s", host, port != NULL && port[0] != '\0' ? ":" : "",
                 port != NULL ? port : "");
    else
        out[0] = '\0';
}

/* Fill err from libpq's connection-level error: primary message plus libpq's text as detail. */
static int ws_conn_error(struct kc_walstream *s, int code, const char *what, struct kc_error *err)
{
    char text[512];

    ws_clean_message(PQerrorMessage(s->conn), text, sizeof(text));
    kc_error_set(err, code, "%s", what);
    if (text[0] != '\0')
        kc_error_detail(err, "libpq: %s", text);
    s->state = WS_FAILED;
    return code;
}

/* Fill err from a server error result: "what: <server message>", its DETAIL and HINT. */
static int ws_result_error(const PGresult *res, const char *what, struct kc_error *err)
{
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    char text[256];

    if (primary == NULL) {
        ws_clean_message(PQresultErrorMessage(res), text, sizeof(text));
        primary = text[0] != '\0' ? text : PQresStatus(PQresultStatus(res));
    }
    kc_error_set(err, KC_EIO, "%s: %s", what, primary);
    if (detail != NULL)
        kc_error_detail(err, "%s", detail);
    if (hint != NULL)
        kc_error_hint(err, "%s", hint);
    return KC_EIO;
}

/*
 * Wait until fd is readable (or writable when want_write) or timeout_ms
 * passes (< 0: no limit). Returns 1 ready, 0 timed out, KC_EIO on failure.
 */
static int ws_wait_fd(int fd, bool want_write, int64_t timeout_ms, struct kc_error *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : ws_now_ms() + timeout_ms;
    struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (want_write ? POLLOUT : 0))};

    for (;;) {
        int64_t left = deadline < 0 ? -1 : deadline - ws_now_ms();
        int n;

        if (deadline >= 0 && left < 0)
            left = 0;
        n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n > 0)
            return 1;
        if (n == 0 && (deadline < 0 || ws_now_ms() >= deadline))
            return 0;
        if (n < 0 && errno != EINTR)
            return kc_error_set(err, KC_EIO, "could not wait for the WAL source: %s",
                                strerror(errno));
    }
}

static int ws_timed_out(struct kc_walstream *s, const char *step, int64_t ms, struct kc_error *err)
{
    char where[300];

    ws_where(s->conn, where, sizeof(where));
    s->state = WS_FAILED;
    kc_error_set(err, KC_ETIMEDOUT, "timed out after %" PRId64 " ms %s%s", ms, step, where);
    kc_error_hint(err, "Check that the WAL source is running and reachable.");
    return KC_ETIMEDOUT;
}

/* Drive PQconnectPoll to completion before deadline. */
static int ws_connect(struct kc_walstream *s, const struct kc_walstream_options *o,
                      int64_t deadline, struct kc_error *err)
{
    const char *keys[4] = {"dbname", "replication", NULL, NULL};
    const char *vals[4] = {o->conninfo, "true", NULL, NULL};
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    PQconninfoOption *parsed;
    char where[300], what[400], *msg = NULL;

    parsed = PQconninfoParse(o->conninfo, &msg);
    if (parsed == NULL) {
        ws_clean_message(msg, what, sizeof(what));
        PQfreemem(msg);
        kc_error_set(err, KC_EINVAL, "invalid connection string for the WAL source");
        kc_error_detail(err, "libpq: %s", what[0] != '\0' ? what : "out of memory");
        kc_error_hint(err, "Give key=value pairs or a postgresql:// URI.");
        return KC_EINVAL;
    }
    PQconninfoFree(parsed);
    if (o->application_name != NULL) {
        keys[2] = "application_name";
        vals[2] = o->application_name;
    }
    s->conn = PQconnectStartParams(keys, vals, 1);
    if (s->conn == NULL)
        return kc_error_set(err, KC_ENOMEM, "out of memory starting a connection");
    /* Bounded by the deadline: every round waits at most until then. */
    while (PQstatus(s->conn) != CONNECTION_BAD) {
        int64_t left = deadline - ws_now_ms();
        int rc;

        if (st == PGRES_POLLING_OK)
            return PQsetnonblocking(s->conn, 1) == 0
                       ? 0
                       : ws_conn_error(s, KC_EIO, "could not make the connection non-blocking",
                                       err);
        if (st == PGRES_POLLING_FAILED)
            break;
        if (left <= 0)
            return ws_timed_out(s, "connecting to the WAL source", s->connect_timeout_ms, err);
        rc = ws_wait_fd(PQsocket(s->conn), st == PGRES_POLLING_WRITING, left, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue;
        st = PQconnectPoll(s->conn);
    }
    ws_where(s->conn, where, sizeof(where));
    snprintf(what, sizeof(what), "could not connect to the WAL source%s", where);
    ws_conn_error(s, KC_EIO, what, err);
    kc_error_hint(err, "Check that the server is running and accepts replication connections "
                       "(max_wal_senders, pg_hba.conf).");
    return KC_EIO;
}

/* Send everything queued, waiting for the socket until deadline. */
static int ws_flush_until(struct kc_walstream *s, int64_t deadline, const char *step,
                          struct kc_error *err)
{
    for (int r; (r = PQflush(s->conn)) != 0;) {
        int64_t left = deadline - ws_now_ms();
        int rc;

        if (r < 0)
            return ws_conn_error(s, KC_EIO, "could not send to the WAL source", err);
        if (left <= 0)
            return ws_timed_out(s, step, s->connect_timeout_ms, err);
        rc = ws_wait_fd(PQsocket(s->conn), true, left, err);
        if (rc < 0)
            return rc;
        if (rc > 0 && PQconsumeInput(s->conn) == 0)
            return ws_conn_error(s, KC_EIO, "lost the connection to the WAL source", err);
    }
    return 0;
}

/* Wait until a result can be fetched without blocking, then fetch it (NULL: no more). */
static int ws_next_result(struct kc_walstream *s, int64_t deadline, const char *step,
                          PGresult **out, struct kc_error *err)
{
    while (PQisBusy(s->conn)) {
        int64_t left = deadline - ws_now_ms();
        int rc;

        if (left <= 0)
            return ws_timed_out(s, step, s->connect_timeout_ms, err);
        rc = ws_wait_fd(PQsocket(s->conn), false, left, err);
        if (rc < 0)
            return rc;
        if (rc > 0 && PQconsumeInput(s->conn) == 0)
            return ws_conn_error(s, KC_EIO, "lost the connection to the WAL source", err);
    }
    *out = PQgetResult(s->conn);
    return 0;
}

/* Run IDENTIFY_SYSTEM and fill s->id. */
static int ws_identify(struct kc_walstream *s, int64_t deadline, struct kc_error *err)
{
    const char *step = "waiting for IDENTIFY_SYSTEM";
    PGresult *res = NULL, *extra = NULL;
    int rc;

    if (PQsendQuery(s->conn, "IDENTIFY_SYSTEM") == 0)
        return ws_conn_error(s, KC_EIO, "could not send IDENTIFY_SYSTEM", err);
    rc = ws_flush_until(s, deadline, step, err);
    if (rc == 0)
        rc = ws_next_result(s, deadline, step, &res, err);
    if (rc != 0)
        return rc;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = ws_result_error(res, "IDENTIFY_SYSTEM failed", err);
        kc_error_hint(err, "Check that the source is PostgreSQL and the connection "
                           "is a replication connection.");
    } else if (PQntuples(res) != 1 || PQnfields(res) < 3) {
        rc = kc_error_set(err, KC_EPROTO, "IDENTIFY_SYSTEM returned %d rows of %d columns",
                          PQntuples(res), PQnfields(res));
        kc_error_detail(err, "Expected one row of at least 3 columns.");
    } else {
        rc = kc_walstream_parse_identity(
            PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
            PQnfields(res) > 3 && !PQgetisnull(res, 0, 3) ? PQgetvalue(res, 0, 3) : NULL, &s->id,
            err);
    }
    PQclear(res);
    /* Drain to ReadyForQuery; the extra results of a well-behaved server are none. */
    for (int i = 0; rc == 0 && i < 8; i++) {
        rc = ws_next_result(s, deadline, step, &extra, err);
        if (rc != 0 || extra == NULL)
            break;
        PQclear(extra);
    }
    if (rc != 0)
        s->state = WS_FAILED;
    return rc;
}

int kc_walstream_open(struct kc_walstream **out, const struct kc_walstream_options *opts,
                      struct kc_error *err)
{
    struct kc_walstream *s;
    int64_t deadline;
    int rc;

    *out = NULL;
    if (opts == NULL || opts->conninfo == NULL)
        return kc_error_set(err, KC_EINVAL, "no conninfo given for the WAL source");
    s = kc_calloc(1, sizeof(*s));
    s->connect_timeout_ms =
        opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : KC_WALSTREAM_CONNECT_TIMEOUT_MS;
    s->status_interval_ms =
        opts->status_interval_ms != 0 ? opts->status_interval_ms : KC_WALSTREAM_STATUS_INTERVAL_MS;
    s->state = WS_IDLE;
    deadline = ws_now_ms() + s->connect_timeout_ms;
    rc = ws_connect(s, opts, deadline, err);
    if (rc == 0)
        rc = ws_identify(s, deadline, err);
    if (rc == 0)
        rc = kc_walstream_check_identity(&s->id, opts->expected_system_id, opts->expected_timeline,
                                         err);
    if (rc != 0) {
        kc_walstream_close(s);
        return rc;
    }
    kc_debug("WAL source identified: system id %" PRIu64 ", timeline %" PRIu32, s->id.system_id,
             s->id.timeline);
    *out = s;
    return 0;
}

const struct kc_walstream_identity *kc_walstream_identity(const struct kc_walstream *s)
{
    return &s->id;
}

int kc_walstream_start(struct kc_walstream *s, kc_lsn start, uint32_t timeline,
                       struct kc_error *err)
{
    const char *step = "waiting for START_REPLICATION";
    int64_t deadline = ws_now_ms() + s->connect_timeout_ms;
    char cmd[96], lsn[KC_LSN_STRLEN];
    PGresult *res = NULL;
    int rc;

    if (s->state != WS_IDLE)
        return kc_error_set(err, KC_EINVAL, "the WAL stream was already started");
    if (start == KC_LSN_INVALID)
        return kc_error_set(err, KC_EINVAL, "cannot start streaming WAL at 0/0");
    snprintf(cmd, sizeof(cmd), "START_REPLICATION PHYSICAL %s TIMELINE %" PRIu32,
             kc_lsn_format(start, lsn), timeline != 0 ? timeline : s->id.timeline);
    if (PQsendQuery(s->conn, cmd) == 0)
        return ws_conn_error(s, KC_EIO, "could not send START_REPLICATION", err);
    rc = ws_flush_until(s, deadline, step, err);
    if (rc == 0)
        rc = ws_next_result(s, deadline, step, &res, err);
    if (rc != 0)
        return rc;
    if (res == NULL || PQresultStatus(res) != PGRES_COPY_BOTH) {
        ws_result_error(res, "START_REPLICATION failed", err);
        PQclear(res);
        s->state = WS_FAILED;
        return KC_EIO;
    }
    PQclear(res);
    s->state = WS_STREAMING;
    s->start_lsn = s->received_lsn = start;
    s->last_status_ms = ws_now_ms();
    kc_debug("streaming WAL from %s", lsn);
    return 0;
}

int kc_walstream_fd(const struct kc_walstream *s)
{
    return s->conn != NULL ? PQsocket(s->conn) : -1;
}

bool kc_walstream_want_write(const struct kc_walstream *s)
{
    return s->flush_pending;
}

int64_t kc_walstream_timeout_ms(const struct kc_walstream *s)
{
    int64_t left;

    if (s->status_interval_ms < 0 || s->state != WS_STREAMING)
        return -1;
    left = s->last_status_ms + s->status_interval_ms - ws_now_ms();
    return left > 0 ? left : 0;
}

kc_lsn kc_walstream_received_lsn(const struct kc_walstream *s)
{
    return s->received_lsn;
}

kc_lsn kc_walstream_server_end_lsn(const struct kc_walstream *s)
{
    return s->server_end_lsn;
}

static int ws_flush(struct kc_walstream *s, struct kc_error *err)
{
    int r = PQflush(s->conn);

    if (r < 0)
        return ws_conn_error(s, KC_EIO, "could not send to the WAL source", err);
    s->flush_pending = r > 0;
    return 0;
}

/* Queue a status update with the recorded positions and try to send it. */
static int ws_send_status(struct kc_walstream *s, bool reply_requested, struct kc_error *err)
{
    struct kc_pgwire_standby_status st = {.write = s->write_lsn,
                                          .flush = s->flush_lsn,
                                          .apply = s->apply_lsn,
                                          .send_time = kc_pgwire_now(),
                                          .reply_requested = reply_requested};
    struct kc_sbuf msg = KC_SBUF_INIT;
    int r;

    KC_FAILPOINT_ERROR("common.walstream.before-status", err);
    kc_pgwire_repl_encode_standby_status(&msg, &st);
    r = PQputCopyData(s->conn, (const char *)msg.data, (int)msg.len);
    kc_sbuf_fini(&msg);
    if (r < 0)
        return ws_conn_error(s, KC_EIO, "could not send a status update to the WAL source", err);
    if (r == 0) /* libpq's buffer is full: the update stays due */
        return ws_flush(s, err);
    s->last_status_ms = ws_now_ms();
    s->status_sent++;
    return ws_flush(s, err);
}

int kc_walstream_set_positions(struct kc_walstream *s, kc_lsn write_lsn, kc_lsn flush_lsn,
                               kc_lsn apply_lsn, struct kc_error *err)
{
    char w[KC_LSN_STRLEN], f[KC_LSN_STRLEN], a[KC_LSN_STRLEN];

    if (flush_lsn > write_lsn || (apply_lsn != KC_LSN_INVALID && apply_lsn > flush_lsn)) {
        kc_error_set(err, KC_EINVAL, "inconsistent WAL positions: write %s, flush %s, apply %s",
                     kc_lsn_format(write_lsn, w), kc_lsn_format(flush_lsn, f),
                     kc_lsn_format(apply_lsn, a));
        kc_error_detail(err, "A status update needs apply <= flush <= write (apply may be 0/0).");
        return KC_EINVAL;
    }
    s->write_lsn = write_lsn;
    s->flush_lsn = flush_lsn;
    s->apply_lsn = apply_lsn;
    return 0;
}

int kc_walstream_send_status(struct kc_walstream *s, kc_lsn write_lsn, kc_lsn flush_lsn,
                             kc_lsn apply_lsn, bool reply_requested, struct kc_error *err)
{
    int rc = kc_walstream_set_positions(s, write_lsn, flush_lsn, apply_lsn, err);

    if (rc != 0)
        return rc;
    if (s->state != WS_STREAMING)
        return kc_error_set(err, KC_EINVAL,
                            "cannot send a status update: the WAL stream is not "
                            "streaming");
    return ws_send_status(s, reply_requested, err);
}

/* Check and deliver one XLogData or keepalive payload. */
static int ws_handle(struct kc_walstream *s, const struct kc_walstream_callbacks *cb,
                     const uint8_t *data, size_t len, struct kc_error *err)
{
    struct kc_pgwire_repl_msg m;
    const struct kc_pgwire_xlog_data *x = &m.u.xlog;
    const struct kc_pgwire_keepalive *k = &m.u.keepalive;
    uint64_t sent_before;
    kc_lsn end;
    int rc;

    rc = kc_pgwire_repl_msg_parse_kinds(data, len, KC_PGWIRE_REPL_FROM_SERVER, &m, err);
    if (rc != 0)
        return rc;
    end = m.kind == KC_PGWIRE_REPL_XLOG_DATA ? x->end : k->end;
    if (end > s->server_end_lsn)
        s->server_end_lsn = end;
    if (m.kind == KC_PGWIRE_REPL_XLOG_DATA) {
        rc = kc_walstream_check_contiguous(s->received_lsn, x->start, err);
        if (rc != 0)
            return rc;
        KC_FAILPOINT_ERROR("common.walstream.before-deliver", err);
        rc = cb->on_wal(cb->arg, x->start, x->data, x->len, err);
        if (rc != 0)
            return rc;
        s->received_lsn = x->start + x->len;
        return 0;
    }
    sent_before = s->status_sent;
    if (cb->on_keepalive != NULL) {
        rc = cb->on_keepalive(cb->arg, k->end, k->reply_requested, err);
        if (rc != 0)
            return rc;
    }
    if (k->reply_requested && s->status_sent == sent_before && s->state == WS_STREAMING)
        return ws_send_status(s, false, err);
    return 0;
}

/* Take one final result after the copy; returns 1 when there are no more. */
static int ws_drain_one(struct kc_walstream *s, struct kc_error *err)
{
    PGresult *res = PQgetResult(s->conn);
    ExecStatusType st;

    if (res == NULL)
        return 1;
    st = PQresultStatus(res);
    kc_debug("WAL stream: result %s after the copy", PQresStatus(st));
    if (st == PGRES_COPY_IN || st == PGRES_COPY_BOTH) {
        /* The server sent CopyDone; ours ends the copy (a clean walsender shutdown). */
        s->server_done = true;
        if (PQputCopyEnd(s->conn, NULL) < 0 || ws_flush(s, err) != 0) {
            PQclear(res);
            return 1; /* the server may already be gone: the stream ended anyway */
        }
    } else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        /* CommandComplete ends the stream too (a walsender that is shutting down). */
        s->server_done = true;
    } else if (st == PGRES_FATAL_ERROR && !s->server_done && s->drain_err.code == 0) {
        ws_result_error(res, "the WAL source ended the stream with an error", &s->drain_err);
    }
    PQclear(res);
    return 0;
}

/* The copy ended (PQgetCopyData returned -1): collect results until none are left. */
static int ws_drain(struct kc_walstream *s, struct kc_error *err)
{
    char lsn[KC_LSN_STRLEN];

    s->state = WS_DRAINING;
    /* Bounded: a server sends at most a few results after the copy. */
    for (int i = 0; i < 16; i++) {
        if (PQisBusy(s->conn)) {
            if (PQstatus(s->conn) != CONNECTION_BAD)
                return 0; /* wait for more input */
            break;
        }
        if (ws_drain_one(s, err) != 0)
            break;
    }
    if (s->drain_err.code != 0) {
        s->state = WS_FAILED;
        if (err != NULL)
            *err = s->drain_err;
        return s->drain_err.code;
    }
    s->state = WS_ENDED;
    kc_debug("the WAL source ended the stream at %s", kc_lsn_format(s->received_lsn, lsn));
    return KC_WALSTREAM_END;
}

static int ws_lost(struct kc_walstream *s, struct kc_error *err)
{
    char what[128], lsn[KC_LSN_STRLEN];

    if (s->server_done) {
        s->state = WS_ENDED;
        return KC_WALSTREAM_END;
    }
    snprintf(what, sizeof(what), "lost the connection to the WAL source at %s",
             kc_lsn_format(s->received_lsn, lsn));
    return ws_conn_error(s, KC_EIO, what, err);
}

/* Deliver every complete message libpq holds. */
static int ws_deliver(struct kc_walstream *s, const struct kc_walstream_callbacks *cb,
                      bool input_ok, struct kc_error *err)
{
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(s->conn, &buf, 1);
        int rc;

        if (n == 0)
            return input_ok ? 0 : ws_lost(s, err);
        if (n == -1) {
            kc_debug("WAL stream: the server ended the copy");
            return ws_drain(s, err);
        }
        if (n < 0)
            return ws_lost(s, err);
        if ((size_t)n > KC_WALSTREAM_MAX_MESSAGE)
            rc = kc_error_set(err, KC_EPROTO,
                              "replication message of %d bytes exceeds the limit "
                              "of %u",
                              n, KC_WALSTREAM_MAX_MESSAGE);
        else
            rc = ws_handle(s, cb, (const uint8_t *)buf, (size_t)n, err);
        PQfreemem(buf);
        if (rc != 0) {
            s->state = WS_FAILED;
            return rc;
        }
    }
}

int kc_walstream_poll(struct kc_walstream *s, const struct kc_walstream_callbacks *cb,
                      struct kc_error *err)
{
    bool input_ok;
    int rc;

    switch (s->state) {
    case WS_ENDED: return KC_WALSTREAM_END;
    case WS_IDLE: return kc_error_set(err, KC_EINVAL, "the WAL stream was not started");
    case WS_FAILED: return kc_error_set(err, KC_EINVAL, "the WAL stream failed; close it");
    default: break;
    }
    if (cb == NULL || cb->on_wal == NULL)
        return kc_error_set(err, KC_EINVAL, "no on_wal callback given");
    input_ok = PQconsumeInput(s->conn) != 0;
    if (s->state == WS_DRAINING)
        return input_ok ? ws_drain(s, err) : ws_lost(s, err);
    rc = ws_deliver(s, cb, input_ok, err);
    if (rc != 0 || s->state != WS_STREAMING)
        return rc;
    if (kc_walstream_timeout_ms(s) == 0) {
        rc = ws_send_status(s, false, err);
        if (rc != 0)
            return rc;
    }
    return ws_flush(s, err);
}

int kc_walstream_receive_until(struct kc_walstream *s, kc_lsn stop_lsn, int64_t timeout_ms,
                               const struct kc_walstream_callbacks *cb, struct kc_error *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : ws_now_ms() + timeout_ms;
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    for (;;) {
        int64_t wait, status;
        int rc;

        if (s->received_lsn >= stop_lsn)
            return 0;
        rc = kc_walstream_poll(s, cb, err);
        if (rc < 0)
            return rc;
        if (s->received_lsn >= stop_lsn)
            return 0;
        if (rc == KC_WALSTREAM_END) {
            kc_error_set(err, KC_EIO, "the WAL source ended the stream at %s before %s",
                         kc_lsn_format(s->received_lsn, a), kc_lsn_format(stop_lsn, b));
            return KC_WALSTREAM_END;
        }
        wait = deadline < 0 ? -1 : deadline - ws_now_ms();
        if (deadline >= 0 && wait <= 0) {
            kc_error_set(err, KC_ETIMEDOUT,
                         "timed out after %" PRId64 " ms waiting for WAL up to %s", timeout_ms,
                         kc_lsn_format(stop_lsn, b));
            kc_error_detail(err, "WAL was received up to %s.", kc_lsn_format(s->received_lsn, a));
            return KC_ETIMEDOUT;
        }
        status = kc_walstream_timeout_ms(s);
        if (status >= 0 && (wait < 0 || status < wait))
            wait = status;
        if (s->state == WS_DRAINING && (wait < 0 || wait > 100))
            wait = 100; /* the connection may be gone: look again soon */
        rc = ws_wait_fd(kc_walstream_fd(s), s->flush_pending, wait, err);
        if (rc < 0)
            return rc;
    }
}

void kc_walstream_close(struct kc_walstream *s)
{
    if (s == NULL)
        return;
    if (s->conn != NULL) {
        if (s->state == WS_STREAMING && PQstatus(s->conn) == CONNECTION_OK &&
            PQputCopyEnd(s->conn, NULL) > 0)
            (void)PQflush(s->conn);
        PQfinish(s->conn);
    }
    free(s);
}

/* ---- pure helpers ---- */

int kc_walstream_check_contiguous(kc_lsn expected, kc_lsn msg_start, struct kc_error *err)
{
    char e[KC_LSN_STRLEN], m[KC_LSN_STRLEN];

    if (msg_start == expected)
        return 0;
    kc_error_set(err, KC_EPROTO, "%s in the WAL stream: expected data at %s, received data at %s",
                 msg_start > expected ? "gap" : "overlap", kc_lsn_format(expected, e),
                 kc_lsn_format(msg_start, m));
    if (msg_start > expected)
        kc_error_detail(err, "%" PRIu64 " bytes of WAL are missing.", msg_start - expected);
    else
        kc_error_detail(err, "The message repeats %" PRIu64 " bytes already received.",
                        expected - msg_start);
    return KC_EPROTO;
}

/* Parse a decimal unsigned integer no larger than max: digits only, no sign or spaces. */
static bool ws_parse_decimal(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (v > (max - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

int kc_walstream_parse_identity(const char *systemid, const char *timeline, const char *xlogpos,
                                const char *dbname, struct kc_walstream_identity *out,
                                struct kc_error *err)
{
    uint64_t sysid, tli;
    kc_lsn pos;

    if (!ws_parse_decimal(systemid, UINT64_MAX, &sysid)) {
        kc_error_set(err, KC_EPROTO, "IDENTIFY_SYSTEM returned an invalid system id \"%.40s\"",
                     systemid != NULL ? systemid : "");
        kc_error_detail(err, "A system id is a decimal number below 2^64.");
        return KC_EPROTO;
    }
    if (!ws_parse_decimal(timeline, UINT32_MAX, &tli) || tli == 0) {
        kc_error_set(err, KC_EPROTO, "IDENTIFY_SYSTEM returned an invalid timeline \"%.40s\"",
                     timeline != NULL ? timeline : "");
        kc_error_detail(err, "A timeline is a decimal number from 1 to 4294967295.");
        return KC_EPROTO;
    }
    if (xlogpos == NULL || kc_lsn_parse(xlogpos, &pos, NULL) != 0) {
        kc_error_set(err, KC_EPROTO, "IDENTIFY_SYSTEM returned an invalid WAL position \"%.40s\"",
                     xlogpos != NULL ? xlogpos : "");
        kc_error_detail(err, "A WAL position looks like 0/16B3740.");
        return KC_EPROTO;
    }
    memset(out, 0, sizeof(*out));
    out->system_id = sysid;
    out->timeline = (uint32_t)tli;
    out->xlogpos = pos;
    if (dbname != NULL)
        snprintf(out->dbname, sizeof(out->dbname), "%s", dbname);
    return 0;
}

int kc_walstream_check_identity(const struct kc_walstream_identity *id, uint64_t expected_system_id,
                                uint32_t expected_timeline, struct kc_error *err)
{
    if (expected_system_id != 0 && id->system_id != expected_system_id) {
        kc_error_set(err, KC_EINVAL, "WAL source has system id %" PRIu64 ", expected %" PRIu64,
                     id->system_id, expected_system_id);
        kc_error_detail(err, "The source belongs to a different database cluster.");
        kc_error_hint(err, "Check the connection string of the WAL source.");
        return KC_EINVAL;
    }
    if (expected_timeline != 0 && id->timeline != expected_timeline) {
        kc_error_set(err, KC_EINVAL, "WAL source is on timeline %" PRIu32 ", expected %" PRIu32,
                     id->timeline, expected_timeline);
        kc_error_detail(err, "The source was promoted or restored since this timeline began.");
        return KC_EINVAL;
    }
    return 0;
}

void kc_walstream_backoff_init(struct kc_walstream_backoff *b, int64_t initial_ms, int64_t max_ms)
{
    b->initial_ms = initial_ms > 0 ? initial_ms : KC_WALSTREAM_BACKOFF_INITIAL_MS;
    b->max_ms = max_ms > 0 ? max_ms : KC_WALSTREAM_BACKOFF_MAX_MS;
    if (b->max_ms < b->initial_ms)
        b->max_ms = b->initial_ms;
    kc_walstream_backoff_reset(b);
}

int64_t kc_walstream_backoff_next(struct kc_walstream_backoff *b, uint64_t rnd)
{
    int64_t base = b->base_ms, half = base / 2;
    int64_t delay = half + (int64_t)(rnd % (uint64_t)(base - half + 1));

    b->base_ms = base > b->max_ms / 2 ? b->max_ms : base * 2;
    if (b->attempts < UINT32_MAX)
        b->attempts++;
    return delay;
}

void kc_walstream_backoff_reset(struct kc_walstream_backoff *b)
{
    b->base_ms = b->initial_ms;
    b->attempts = 0;
}
