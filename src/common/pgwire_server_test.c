/* SPDX-License-Identifier: Apache-2.0 */
/* pgwire_server_test.c -- pgwire_server.c against libpq, pg_receivewal and malformed raw sockets.
 */
#include "common/pgwire_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "common/pgwire_repl.h"
#include "unit.h"

#define KT_SYSID     7311226744839356945ULL
#define KT_START_POS 0x1000100ULL /* IDENTIFY_SYSTEM's xlogpos: 0/1000100 */

enum kt_mode {
    KT_STREAM_FEW = 0, /* 3 XLogData and a keepalive, then wait for the client */
    KT_STREAM_BIG,     /* big_total bytes under a pending-bytes budget, then end from our side */
    KT_STREAM_RECVWAL  /* 3 x 0x80 bytes for pg_receivewal */
};

/* The test application behind the server: a miniature walsender. */
struct kt_app {
    struct event_base *base;
    enum kt_mode mode;
    bool want_password;
    size_t big_total, chunk, budget;
    struct event *pending_timer, *defer_timer;
    struct kc_pgwire_conn *pending_conn, *defer_conn; /* waiting for the timers */
    /* recorded on the server thread; atomics can be polled from the test */
    atomic_int nqueries, nstatus, nfeedback, ncloses, ncancels, ncopy_done, ndrain;
    struct kc_pgwire_standby_status last_status;
    struct kc_pgwire_hs_feedback last_feedback;
    kc_lsn start_lsn;
    uint32_t start_tli;
    char copy_fail[128];
    uint32_t cancel_pid, cancel_key;
    size_t sent, max_pending;
    kc_lsn next_lsn;
};

static struct kt_app app;

struct kt_srv {
    struct event_base *base;
    struct kc_pgwire_server *srv;
    pthread_t thread;
    uint16_t port;
    bool running;
};

static uint8_t kt_wal_byte(kc_lsn lsn)
{
    return (uint8_t)(lsn * 7 + 3);
}

/* ---- the application ----------------------------------------------------- */

static void kt_send_buf(struct kc_pgwire_conn *conn, struct kc_sbuf *s)
{
    kc_pgwire_conn_send(conn, s->data, s->len);
    kc_sbuf_fini(s);
}

static void kt_xlog(struct kc_pgwire_conn *conn, size_t len, kc_lsn end)
{
    uint8_t buf[256 * 1024];
    struct kc_error err;

    KT_ASSERT(len <= sizeof(buf));
    for (size_t i = 0; i < len; i++)
        buf[i] = kt_wal_byte(app.next_lsn + i);
    KT_ASSERT_EQ(
        kc_pgwire_conn_send_xlog_data(conn, app.next_lsn, end, kc_pgwire_now(), buf, len, &err), 0);
    app.next_lsn += len;
    app.sent += len;
    if (kc_pgwire_conn_pending(conn) > app.max_pending)
        app.max_pending = kc_pgwire_conn_pending(conn);
}

/* Stream under the budget; end the copy from our side when all is sent. */
static void kt_pump(struct kc_pgwire_conn *conn)
{
    while (app.sent < app.big_total && kc_pgwire_conn_pending(conn) < app.budget) {
        size_t n = app.big_total - app.sent < app.chunk ? app.big_total - app.sent : app.chunk;
        kt_xlog(conn, n, app.start_lsn + app.big_total);
    }
    if (app.sent < app.big_total)
        kc_pgwire_conn_notify_drain(conn, app.budget / 2);
    else
        kc_pgwire_conn_end_copy(conn, "START_STREAMING");
}

static void kt_start_stream(struct kc_pgwire_conn *conn, const struct kc_pgwire_repl_cmd *cmd)
{
    struct kc_error err;

    app.start_lsn = app.next_lsn = cmd->start;
    app.start_tli = cmd->timeline;
    KT_ASSERT_EQ(kc_pgwire_conn_start_copy_both(conn, &err), 0);
    KT_ASSERT(kc_pgwire_conn_in_copy(conn));
    switch (app.mode) {
    case KT_STREAM_FEW:
        for (int i = 0; i < 3; i++)
            kt_xlog(conn, 100, cmd->start + 300);
        KT_ASSERT_EQ(
            kc_pgwire_conn_send_keepalive(conn, cmd->start + 300, kc_pgwire_now(), true, &err), 0);
        break;
    case KT_STREAM_BIG: kt_pump(conn); break;
    case KT_STREAM_RECVWAL:
        for (int i = 0; i < 3; i++)
            kt_xlog(conn, 0x80, cmd->start + 0x180);
        break;
    }
}

static void kt_show(struct kc_pgwire_conn *conn, const char *name)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_error err;

    if (strcmp(name, "wal_segment_size") == 0) {
        kc_pgwire_repl_put_show(&s, name, "16MB");
    } else if (strcmp(name, "data_directory_mode") == 0) {
        kc_pgwire_repl_put_show(&s, name, "0700");
    } else {
        kc_error_set(&err, KC_ENOTFOUND, "unrecognized configuration parameter \"%s\"", name);
        kc_pgwire_conn_send_error(conn, KC_SQLSTATE_UNDEFINED_OBJECT, &err);
    }
    kt_send_buf(conn, &s);
}

static enum kc_pgwire_query_status kt_repl_query(struct kc_pgwire_conn *conn, const char *sql)
{
    const struct kc_pgwire_startup *su = kc_pgwire_conn_startup(conn);
    struct kc_pgwire_repl_cmd cmd;
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_error err;

    if (kc_pgwire_repl_parse(sql, &cmd, &err) < 0) {
        kc_pgwire_conn_send_error(conn, KC_SQLSTATE_SYNTAX_ERROR, &err);
        return KC_PGWIRE_QUERY_DONE;
    }
    switch (cmd.kind) {
    case KC_PGWIRE_CMD_IDENTIFY_SYSTEM:
        kc_pgwire_repl_put_identify_system(
            &s, KT_SYSID, 1, KT_START_POS,
            su->replication == KC_PGWIRE_REPLICATION_DATABASE ? su->database : NULL);
        kt_send_buf(conn, &s);
        return KC_PGWIRE_QUERY_DONE;
    case KC_PGWIRE_CMD_SHOW: kt_show(conn, cmd.name); return KC_PGWIRE_QUERY_DONE;
    case KC_PGWIRE_CMD_TIMELINE_HISTORY:
        KT_ASSERT_EQ(
            kc_pgwire_repl_put_timeline_history(&s, cmd.timeline, "1\t0/1000000\tx\n", 14, NULL),
            0);
        kt_send_buf(conn, &s);
        return KC_PGWIRE_QUERY_DONE;
    case KC_PGWIRE_CMD_START_REPLICATION:
        if (!cmd.logical) {
            kt_start_stream(conn, &cmd);
            return KC_PGWIRE_QUERY_PENDING;
        }
        break;
    default: break;
    }
    kc_pgwire_repl_unsupported(&cmd, &err);
    kc_pgwire_conn_send_error(conn, KC_SQLSTATE_FEATURE_NOT_SUPPORTED, &err);
    return KC_PGWIRE_QUERY_DONE;
}

static void kt_select_one(struct kc_pgwire_conn *conn)
{
    static const struct kc_pgwire_column col = {"?column?", KC_PGWIRE_OID_INT4};
    static const char *const one[] = {"1"};

    KT_ASSERT_EQ(kc_pgwire_conn_send_result(conn, &col, 1, one, 1, "SELECT 1", NULL), 0);
}

static enum kc_pgwire_query_status kt_sql_query(struct kc_pgwire_conn *conn, const char *sql)
{
    static const struct kc_pgwire_column cols[] = {{"a", KC_PGWIRE_OID_TEXT},
                                                   {"b", KC_PGWIRE_OID_INT8}};
    static const char *const rows[] = {"x", NULL, NULL, "42"};
    struct kc_error err = {0};
    struct timeval tv = {0, 50 * 1000};

    if (strcmp(sql, "SELECT 1") == 0) {
        kt_select_one(conn);
    } else if (strcmp(sql, "SELECT rows") == 0) {
        KT_ASSERT_EQ(kc_pgwire_conn_send_result(conn, cols, 2, rows, 2, "SELECT 2", NULL), 0);
    } else if (strcmp(sql, "SELECT notice") == 0) {
        kc_error_set(&err, KC_EINVAL, "this is a notice");
        kc_pgwire_conn_send_notice(conn, "01000", &err);
        kt_select_one(conn);
    } else if (strcmp(sql, "SELECT pending") == 0) {
        app.pending_conn = conn;
        evtimer_add(app.pending_timer, &tv);
        return KC_PGWIRE_QUERY_PENDING;
    } else if (strcmp(sql, "SELECT close") == 0) {
        kc_error_set(&err, KC_EINVAL, "closing on request");
        kc_pgwire_conn_close(conn, KC_SQLSTATE_ADMIN_SHUTDOWN, &err);
    } else {
        kc_error_set(&err, KC_EINVAL, "cannot run \"%s\" here", sql);
        kc_error_detail(&err, "This test server knows a few queries.");
        kc_error_hint(&err, "Try SELECT 1.");
        kc_pgwire_conn_send_error(conn, KC_SQLSTATE_FEATURE_NOT_SUPPORTED, &err);
    }
    return KC_PGWIRE_QUERY_DONE;
}

static enum kc_pgwire_query_status kt_on_query(struct kc_pgwire_conn *conn, const char *sql)
{
    atomic_fetch_add(&app.nqueries, 1);
    if (kc_pgwire_conn_startup(conn)->replication != KC_PGWIRE_REPLICATION_OFF)
        return kt_repl_query(conn, sql);
    return kt_sql_query(conn, sql);
}

static void kt_pending_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (app.pending_conn == NULL)
        return;
    kt_select_one(app.pending_conn);
    kc_pgwire_conn_ready(app.pending_conn);
    app.pending_conn = NULL;
}

static void kt_defer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (app.defer_conn == NULL)
        return;
    kc_pgwire_conn_auth_done(app.defer_conn, KC_PGWIRE_AUTH_ACCEPT, NULL);
    app.defer_conn = NULL;
}

static enum kc_pgwire_auth kt_on_auth(struct kc_pgwire_conn *conn, const char *password,
                                      struct kc_error *err)
{
    const char *user = kc_pgwire_conn_startup(conn)->user;
    struct timeval tv = {0, 50 * 1000};

    if (strcmp(user, "slowpoke") == 0) {
        app.defer_conn = conn;
        evtimer_add(app.defer_timer, &tv);
        return KC_PGWIRE_AUTH_DEFER;
    }
    if (strcmp(user, "nobody") == 0) {
        kc_error_set(err, KC_EINVAL, "role \"nobody\" is not permitted to log in");
        return KC_PGWIRE_AUTH_REJECT;
    }
    if (!app.want_password)
        return KC_PGWIRE_AUTH_ACCEPT;
    if (password == NULL)
        return KC_PGWIRE_AUTH_PASSWORD;
    return strcmp(password, "secret") == 0 ? KC_PGWIRE_AUTH_ACCEPT : KC_PGWIRE_AUTH_REJECT;
}

static void kt_on_copy_data(struct kc_pgwire_conn *conn, const uint8_t *data, size_t len)
{
    struct kc_pgwire_repl_msg m;
    struct kc_error err;

    if (kc_pgwire_repl_msg_parse(data, len, &m, &err) < 0) {
        kc_pgwire_conn_close(conn, KC_SQLSTATE_PROTOCOL_VIOLATION, &err);
        return;
    }
    if (m.kind == KC_PGWIRE_REPL_STANDBY_STATUS) {
        app.last_status = m.u.status;
        atomic_fetch_add(&app.nstatus, 1);
    } else if (m.kind == KC_PGWIRE_REPL_HS_FEEDBACK) {
        app.last_feedback = m.u.feedback;
        atomic_fetch_add(&app.nfeedback, 1);
    }
}

static void kt_on_copy_done(struct kc_pgwire_conn *conn, const char *failed)
{
    if (failed != NULL)
        snprintf(app.copy_fail, sizeof(app.copy_fail), "%s", failed);
    else
        kc_pgwire_conn_end_copy(conn, "START_STREAMING");
    atomic_fetch_add(&app.ncopy_done, 1);
}

static void kt_on_drain(struct kc_pgwire_conn *conn)
{
    atomic_fetch_add(&app.ndrain, 1);
    kt_pump(conn);
}

static void kt_on_close(struct kc_pgwire_conn *conn)
{
    if (app.pending_conn == conn)
        app.pending_conn = NULL;
    if (app.defer_conn == conn)
        app.defer_conn = NULL;
    atomic_fetch_add(&app.ncloses, 1);
}

static void kt_on_cancel(struct kc_pgwire_server *srv, uint32_t pid, uint32_t key)
{
    (void)srv;
    app.cancel_pid = pid;
    app.cancel_key = key;
    atomic_fetch_add(&app.ncancels, 1);
}

static const struct kc_pgwire_server_ops kt_ops = {
    .on_auth = kt_on_auth,
    .on_query = kt_on_query,
    .on_copy_data = kt_on_copy_data,
    .on_copy_done = kt_on_copy_done,
    .on_drain = kt_on_drain,
    .on_close = kt_on_close,
    .on_cancel = kt_on_cancel,
};

/* ---- running the server on a thread --------------------------------------- */

static void *kt_loop(void *arg)
{
    struct kt_srv *t = arg;

    event_base_loop(t->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* Start a server with the test application; cfg may be NULL for defaults. */
static void kt_srv_start(struct kt_srv *t, struct kc_pgwire_server_config *cfg)
{
    struct kc_pgwire_server_config def = {0};
    struct kc_error err = {0};

    if (cfg == NULL)
        cfg = &def;
    cfg->ops = &kt_ops;
    signal(SIGPIPE, SIG_IGN);
    KT_ASSERT_EQ(evthread_use_pthreads(), 0);
    memset(t, 0, sizeof(*t));
    t->base = event_base_new();
    KT_ASSERT(t->base != NULL);
    app.base = t->base;
    app.pending_timer = evtimer_new(t->base, kt_pending_cb, NULL);
    app.defer_timer = evtimer_new(t->base, kt_defer_cb, NULL);
    if (kc_pgwire_server_open(t->base, cfg, &t->srv, &err) != 0)
        kt_fail(__FILE__, __LINE__, "server_open: %s", err.message);
    t->port = kc_pgwire_server_port(t->srv);
    KT_ASSERT(t->port != 0);
    KT_ASSERT_EQ(pthread_create(&t->thread, NULL, kt_loop, t), 0);
    t->running = true;
}

/* Stop the loop, then close the server (every connection gets on_close). */
static void kt_srv_stop(struct kt_srv *t)
{
    if (t->running) {
        event_base_loopbreak(t->base);
        pthread_join(t->thread, NULL);
        t->running = false;
    }
    kc_pgwire_server_close(t->srv);
    event_free(app.pending_timer);
    event_free(app.defer_timer);
    event_base_free(t->base);
    libevent_global_shutdown();
}

/* Wait (at most 10 s) until *counter reaches want. */
static void kt_wait_count(atomic_int *counter, int want)
{
    for (int i = 0; i < 1000 && atomic_load(counter) < want; i++)
        usleep(10 * 1000);
    KT_ASSERT_EQ(atomic_load(counter), want);
}

static PGconn *kt_connect(uint16_t port, const char *extra)
{
    char ci[512];

    snprintf(ci, sizeof(ci),
             "host=127.0.0.1 port=%u user=kelp dbname=kelp connect_timeout=10 sslmode=disable "
             "gssencmode=disable %s",
             port, extra);
    return PQconnectdb(ci);
}

static PGconn *kt_connect_ok(uint16_t port, const char *extra)
{
    PGconn *c = kt_connect(port, extra);

    if (PQstatus(c) != CONNECTION_OK)
        kt_fail(__FILE__, __LINE__, "connect failed: %s", PQerrorMessage(c));
    return c;
}

/* A fresh session runs SELECT 1: the server still serves. */
static void kt_check_alive(uint16_t port)
{
    PGconn *c = kt_connect_ok(port, "");
    PGresult *r = PQexec(c, "SELECT 1");

    KT_ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    KT_ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    PQfinish(c);
}

/* ---- libpq clients -------------------------------------------------------- */

static void kt_notice(void *arg, const PGresult *res)
{
    snprintf(arg, 128, "%s", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
}

KT_TEST(pgwire_server_libpq_sql_session)
{
    struct kt_srv t;
    char notice[128] = "";
    PGconn *c;
    PGresult *r;

    kt_srv_start(&t, NULL);
    c = kt_connect_ok(t.port, "application_name=kt sslmode=prefer gssencmode=prefer");
    KT_ASSERT_STR_EQ(PQparameterStatus(c, "server_version"), "15.18");
    KT_ASSERT_STR_EQ(PQparameterStatus(c, "integer_datetimes"), "on");
    KT_ASSERT_STR_EQ(PQparameterStatus(c, "application_name"), "kt");
    KT_ASSERT_EQ(PQserverVersion(c), 150018);
    KT_ASSERT(PQbackendPID(c) > 0);
    r = PQexec(c, "SELECT rows");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    KT_ASSERT_EQ(PQntuples(r), 2);
    KT_ASSERT_EQ(PQnfields(r), 2);
    KT_ASSERT_STR_EQ(PQfname(r, 1), "b");
    KT_ASSERT_EQ(PQftype(r, 1), 20);
    KT_ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "x");
    KT_ASSERT(PQgetisnull(r, 0, 1) && PQgetisnull(r, 1, 0));
    KT_ASSERT_STR_EQ(PQgetvalue(r, 1, 1), "42");
    KT_ASSERT_STR_EQ(PQcmdStatus(r), "SELECT 2");
    PQclear(r);
    r = PQexec(c, "SELECT nope");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_FATAL_ERROR);
    KT_ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_SQLSTATE), "0A000");
    KT_ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED), "ERROR");
    KT_ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY),
                     "cannot run \"SELECT nope\" here");
    KT_ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL),
                     "This test server knows a few queries.");
    KT_ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_MESSAGE_HINT), "Try SELECT 1.");
    PQclear(r);
    r = PQexec(c, " ; ");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_EMPTY_QUERY);
    PQclear(r);
    PQsetNoticeReceiver(c, kt_notice, notice);
    r = PQexec(c, "SELECT notice");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    KT_ASSERT_STR_EQ(notice, "this is a notice");
    PQclear(r);
    r = PQexec(c, "SELECT pending"); /* answered 50 ms later from a timer */
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    KT_ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    r = PQexecParams(c, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0); /* extended protocol */
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_FATAL_ERROR);
    KT_ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_SQLSTATE), "0A000");
    PQclear(r);
    kt_check_alive(t.port);
    r = PQexec(c, "SELECT 1"); /* the session survived the refused extended query */
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    r = PQexec(c, "SELECT close");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_FATAL_ERROR);
    KT_ASSERT_CONTAINS(PQerrorMessage(c), "closing on request");
    PQclear(r);
    PQfinish(c);
    kt_wait_count(&app.ncloses, 2);
    KT_ASSERT_EQ(atomic_load(&app.nqueries), 7);
    kt_srv_stop(&t);
}

/* The replication commands before streaming: replies and refusals. */
static void kt_check_repl_commands(PGconn *c)
{
    PGresult *r;

    r = PQexec(c, "IDENTIFY_SYSTEM");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    KT_ASSERT_EQ(PQnfields(r), 4);
    KT_ASSERT_EQ(PQntuples(r), 1);
    KT_ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "7311226744839356945");
    KT_ASSERT_STR_EQ(PQgetvalue(r, 0, 1), "1");
    KT_ASSERT_STR_EQ(PQgetvalue(r, 0, 2), "0/1000100");
    KT_ASSERT(PQgetisnull(r, 0, 3));
    KT_ASSERT_EQ(PQftype(r, 1), 23);
    PQclear(r);
    r = PQexec(c, "SHOW wal_segment_size");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    KT_ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "16MB");
    PQclear(r);
    r = PQexec(c, "TIMELINE_HISTORY 2");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    KT_ASSERT_STR_EQ(PQgetvalue(r, 0, 0), "00000002.history");
    PQclear(r);
    r = PQexec(c, "SELECT 1");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_FATAL_ERROR);
    KT_ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_SQLSTATE), "0A000");
    PQclear(r);
    r = PQexec(c, "CREATE_REPLICATION_SLOT s1 PHYSICAL");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_FATAL_ERROR);
    KT_ASSERT_CONTAINS(PQresultErrorMessage(r), "replication slots are not supported");
    PQclear(r);
    r = PQexec(c, "START_REPLICATION PHYSICAL 0/1000000 TIMELINE 0");
    KT_ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42601");
    PQclear(r);
}

KT_TEST(pgwire_server_libpq_replication_stream)
{
    struct kt_srv t;
    struct kc_pgwire_standby_status st = {0};
    struct kc_pgwire_hs_feedback fb = {0};
    struct kc_sbuf s = KC_SBUF_INIT;
    kc_lsn pos = 0x1000000;
    PGconn *c;
    PGresult *r;
    char *buf;
    int n;

    kt_srv_start(&t, NULL);
    c = kt_connect_ok(t.port, "replication=true");
    kt_check_repl_commands(c);
    r = PQexec(c, "START_REPLICATION PHYSICAL 0/1000000");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_COPY_BOTH);
    PQclear(r);
    for (int i = 0; i < 4; i++) {
        struct kc_pgwire_repl_msg m;
        n = PQgetCopyData(c, &buf, 0);
        KT_ASSERT(n > 0);
        KT_ASSERT_EQ(kc_pgwire_repl_msg_parse((const uint8_t *)buf, (size_t)n, &m, NULL), 0);
        if (i < 3) {
            KT_ASSERT_EQ(m.kind, 'w');
            KT_ASSERT_UEQ(m.u.xlog.start, pos);
            KT_ASSERT_UEQ(m.u.xlog.end, 0x1000000 + 300);
            KT_ASSERT_EQ(m.u.xlog.len, 100);
            for (size_t j = 0; j < m.u.xlog.len; j++)
                KT_ASSERT_EQ(m.u.xlog.data[j], kt_wal_byte(pos + j));
            pos += m.u.xlog.len;
        } else {
            KT_ASSERT_EQ(m.kind, 'k');
            KT_ASSERT_UEQ(m.u.keepalive.end, 0x1000000 + 300);
            KT_ASSERT(m.u.keepalive.reply_requested);
            KT_ASSERT(m.u.keepalive.send_time > 0);
        }
        PQfreemem(buf);
    }
    st = (struct kc_pgwire_standby_status){pos, pos - 100, pos - 200, kc_pgwire_now(), false};
    fb = (struct kc_pgwire_hs_feedback){kc_pgwire_now(), 731, 0, 0, 0};
    kc_pgwire_put_standby_status(&s, &st);
    kc_pgwire_put_hs_feedback(&s, &fb);
    /* the builders made whole CopyData messages: libpq wants their payloads */
    KT_ASSERT_EQ(PQputCopyData(c, (const char *)s.data + 5, 34), 1);
    KT_ASSERT_EQ(PQputCopyData(c, (const char *)s.data + 44, 25), 1);
    KT_ASSERT_EQ(PQputCopyEnd(c, NULL), 1);
    KT_ASSERT_EQ(PQflush(c), 0);
    n = PQgetCopyData(c, &buf, 0); /* the server's CopyDone */
    KT_ASSERT_EQ(n, -1);
    r = PQgetResult(c);
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_COMMAND_OK);
    KT_ASSERT_STR_EQ(PQcmdStatus(r), "START_STREAMING");
    PQclear(r);
    KT_ASSERT(PQgetResult(c) == NULL);
    r = PQexec(c, "IDENTIFY_SYSTEM"); /* back to commands */
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(c);
    kt_wait_count(&app.ncloses, 1);
    kt_srv_stop(&t);
    KT_ASSERT_EQ(atomic_load(&app.nstatus), 1);
    KT_ASSERT_EQ(atomic_load(&app.nfeedback), 1);
    KT_ASSERT_EQ(atomic_load(&app.ncopy_done), 1);
    KT_ASSERT_UEQ(app.start_lsn, 0x1000000);
    KT_ASSERT_EQ(app.start_tli, 0);
    KT_ASSERT_UEQ(app.last_status.write, 0x1000000 + 300);
    KT_ASSERT_UEQ(app.last_status.flush, 0x1000000 + 200);
    KT_ASSERT_UEQ(app.last_status.apply, 0x1000000 + 100);
    KT_ASSERT_EQ(app.last_status.send_time, st.send_time);
    KT_ASSERT_UEQ(app.last_feedback.xmin, 731);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_server_backpressure_bounds_memory)
{
    struct kt_srv t;
    kc_lsn pos = 0x2000000;
    size_t got = 0;
    PGconn *c;
    PGresult *r;
    char *buf;
    int n;

    app.mode = KT_STREAM_BIG;
    app.big_total = 24u << 20;
    app.chunk = 128u << 10;
    app.budget = 256u << 10;
    kt_srv_start(&t, NULL);
    c = kt_connect_ok(t.port, "replication=true");
    r = PQexec(c, "START_REPLICATION 0/2000000 TIMELINE 1");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_COPY_BOTH);
    PQclear(r);
    usleep(300 * 1000); /* let the server fill the socket and hit its budget */
    while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
        struct kc_pgwire_repl_msg m;
        KT_ASSERT_EQ(kc_pgwire_repl_msg_parse((const uint8_t *)buf, (size_t)n, &m, NULL), 0);
        KT_ASSERT_EQ(m.kind, 'w');
        KT_ASSERT_UEQ(m.u.xlog.start, pos);
        KT_ASSERT_EQ(m.u.xlog.data[0], kt_wal_byte(pos));
        KT_ASSERT_EQ(m.u.xlog.data[m.u.xlog.len - 1], kt_wal_byte(pos + m.u.xlog.len - 1));
        pos += m.u.xlog.len;
        got += m.u.xlog.len;
        PQfreemem(buf);
    }
    KT_ASSERT_EQ(n, -1); /* the server ended the copy */
    KT_ASSERT_EQ(got, app.big_total);
    KT_ASSERT_EQ(PQputCopyEnd(c, NULL), 1);
    r = PQgetResult(c);
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    KT_ASSERT(PQgetResult(c) == NULL);
    PQfinish(c);
    kt_wait_count(&app.ncloses, 1);
    kt_srv_stop(&t);
    KT_ASSERT(atomic_load(&app.ndrain) > 0);
    KT_ASSERT(app.max_pending <= app.budget + app.chunk + 64);
    KT_ASSERT_EQ(app.start_tli, 1);
    KT_ASSERT_EQ(atomic_load(&app.ncopy_done), 0); /* the server ended it, not the client */
}

KT_TEST(pgwire_server_copy_fail_and_terminate_in_copy)
{
    struct kt_srv t;
    PGconn *c;
    PGresult *r;
    char *buf;

    kt_srv_start(&t, NULL);
    c = kt_connect_ok(t.port, "replication=database");
    r = PQexec(c, "IDENTIFY_SYSTEM");
    KT_ASSERT_STR_EQ(PQgetvalue(r, 0, 3), "kelp"); /* database-bound: dbname is set */
    PQclear(r);
    r = PQexec(c, "START_REPLICATION 0/1000000");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_COPY_BOTH);
    PQclear(r);
    for (int i = 0; i < 4; i++) {
        KT_ASSERT(PQgetCopyData(c, &buf, 0) > 0);
        PQfreemem(buf);
    }
    KT_ASSERT_EQ(PQputCopyEnd(c, "standby gave up"), 1);
    KT_ASSERT_EQ(PQgetCopyData(c, &buf, 0), -1); /* the ErrorResponse ends the copy */
    r = PQgetResult(c);
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_FATAL_ERROR);
    KT_ASSERT_STR_EQ(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014");
    KT_ASSERT_CONTAINS(PQresultErrorMessage(r), "COPY from stdin failed: standby gave up");
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
    r = PQexec(c, "IDENTIFY_SYSTEM");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    /* a second stream, left by closing the connection in the middle */
    r = PQexec(c, "START_REPLICATION 0/1000000");
    KT_ASSERT_EQ(PQresultStatus(r), PGRES_COPY_BOTH);
    PQclear(r);
    PQfinish(c);
    kt_wait_count(&app.ncloses, 1);
    kt_check_alive(t.port);
    kt_srv_stop(&t);
    KT_ASSERT_STR_EQ(app.copy_fail, "standby gave up");
}

KT_TEST(pgwire_server_authentication)
{
    struct kt_srv t;
    PGconn *c;

    app.want_password = true;
    kt_srv_start(&t, NULL);
    c = kt_connect_ok(t.port, "password=secret");
    PQfinish(c);
    c = kt_connect(t.port, "password=wrong");
    KT_ASSERT_EQ(PQstatus(c), CONNECTION_BAD);
    KT_ASSERT_CONTAINS(PQerrorMessage(c), "password authentication failed for user \"kelp\"");
    PQfinish(c);
    c = kt_connect(t.port, "user=nobody password=x");
    KT_ASSERT_EQ(PQstatus(c), CONNECTION_BAD);
    KT_ASSERT_CONTAINS(PQerrorMessage(c), "role \"nobody\" is not permitted to log in");
    PQfinish(c);
    c = kt_connect_ok(t.port, "user=slowpoke"); /* decided 50 ms later from a timer */
    PQfinish(c);
    kt_wait_count(&app.ncloses, 4);
    kt_srv_stop(&t);
}

KT_TEST(pgwire_server_max_connections)
{
    struct kc_pgwire_server_config cfg = {.max_connections = 2};
    struct kt_srv t;
    PGconn *a, *b, *c;

    kt_srv_start(&t, &cfg);
    a = kt_connect_ok(t.port, "");
    b = kt_connect_ok(t.port, "");
    c = kt_connect(t.port, "");
    KT_ASSERT_EQ(PQstatus(c), CONNECTION_BAD);
    KT_ASSERT_CONTAINS(PQerrorMessage(c), "sorry, too many clients already");
    PQfinish(c);
    PQfinish(a);
    kt_wait_count(&app.ncloses, 2);
    c = kt_connect_ok(t.port, "");
    PQfinish(c);
    PQfinish(b);
    kt_wait_count(&app.ncloses, 4);
    kt_srv_stop(&t);
}

KT_TEST(pgwire_server_open_errors)
{
    struct kc_pgwire_server_ops none = {0};
    struct kc_pgwire_server_config cfg = {.ops = &none};
    struct kc_pgwire_server *srv = NULL, *srv2 = NULL;
    struct event_base *base = event_base_new();
    struct kc_error err;

    KT_ASSERT_EQ(kc_pgwire_server_open(base, &cfg, &srv, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "on_query");
    cfg.ops = &kt_ops;
    cfg.host = "192.0.2.1"; /* TEST-NET-1: not an address of this machine */
    KT_ASSERT_EQ(kc_pgwire_server_open(base, &cfg, &srv, &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "192.0.2.1");
    cfg.host = NULL;
    KT_ASSERT_EQ(kc_pgwire_server_open(base, &cfg, &srv, &err), 0);
    cfg.port = kc_pgwire_server_port(srv);
    KT_ASSERT_EQ(kc_pgwire_server_open(base, &cfg, &srv2, &err), KC_EIO); /* port taken */
    KT_ASSERT_CONTAINS(err.message, "could not listen");
    KT_ASSERT_EQ(kc_pgwire_server_connections(srv), 0);
    kc_pgwire_server_close(srv);
    kc_pgwire_server_close(NULL);
    event_base_free(base);
    libevent_global_shutdown();
}

/* ---- raw sockets ------------------------------------------------------------ */

static int kt_raw_connect(uint16_t port)
{
    struct sockaddr_in sa = {0};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    KT_ASSERT(fd >= 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    KT_ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    KT_ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    return fd;
}

static void kt_raw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may already have closed: that is its right */
        b += w;
        n -= (size_t)w;
    }
}

/* Read into s until EOF (true) or the 5 s receive timeout (false). */
static bool kt_raw_read_to_eof(int fd, struct kc_sbuf *s)
{
    uint8_t buf[4096];

    for (int i = 0; i < 100000; i++) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r == 0)
            return true;
        if (r < 0)
            return errno == ECONNRESET;
        kc_sbuf_append(s, buf, (size_t)r);
    }
    return false;
}

/* Read into s until a message of type until has arrived (s holds whole messages). */
static void kt_raw_read_until(int fd, struct kc_sbuf *s, uint8_t until)
{
    uint8_t buf[4096];

    for (int i = 0; i < 1000; i++) {
        size_t pos = 0;
        struct kc_pgwire_msg m;
        size_t size;
        ssize_t r;

        while (kc_pgwire_msg_decode(s->data + pos, s->len - pos, 1 << 20, &m, &size, NULL) == 0) {
            pos += size;
            if (m.type == until)
                return;
        }
        r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0)
            kt_fail(__FILE__, __LINE__, "no message '%c' before EOF or timeout", until);
        kc_sbuf_append(s, buf, (size_t)r);
    }
    kt_fail(__FILE__, __LINE__, "no message '%c'", until);
}

static void kt_startup_packet(struct kc_sbuf *s, const char *user, const char *replication)
{
    size_t start = s->len;

    kc_sbuf_put_u32(s, 0);
    kc_sbuf_put_u32(s, KC_PGWIRE_PROTOCOL_LATEST);
    kc_sbuf_append(s, "user", 5);
    kc_sbuf_append(s, user, strlen(user) + 1);
    if (replication != NULL) {
        kc_sbuf_append(s, "replication", 12);
        kc_sbuf_append(s, replication, strlen(replication) + 1);
    }
    kc_sbuf_put_u8(s, 0);
    kc_sbuf_patch_u32(s, start, (uint32_t)(s->len - start));
}

/* A raw connection that has finished the handshake (ReadyForQuery read). */
static int kt_raw_session(uint16_t port)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    int fd = kt_raw_connect(port);

    kt_startup_packet(&s, "raw", NULL);
    kt_raw_send(fd, s.data, s.len);
    kc_sbuf_reset(&s);
    kt_raw_read_until(fd, &s, 'Z');
    kc_sbuf_fini(&s);
    return fd;
}

/* Send bytes, expect a FATAL with sqlstate (and msg) and then EOF. */
static void kt_raw_expect_fatal(int fd, const void *bytes, size_t n, const char *sqlstate,
                                const char *msg)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_pgwire_msg m;
    struct kc_error e;
    char sev[16], state[6];
    size_t size, pos = 0;

    kt_raw_send(fd, bytes, n);
    KT_ASSERT(kt_raw_read_to_eof(fd, &s));
    for (;;) { /* skip the replies that came before the error */
        KT_ASSERT_EQ(kc_pgwire_msg_decode(s.data + pos, s.len - pos, 1 << 20, &m, &size, NULL), 0);
        pos += size;
        if (m.type == 'E')
            break;
    }
    KT_ASSERT_EQ(kc_pgwire_parse_error_response(&m, sev, state, &e, NULL), 0);
    KT_ASSERT_STR_EQ(sev, "FATAL");
    KT_ASSERT_STR_EQ(state, sqlstate);
    KT_ASSERT_CONTAINS(e.message, msg);
    KT_ASSERT_EQ(pos, s.len); /* nothing after the FATAL */
    close(fd);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_server_close_notifies_sessions)
{
    struct kt_srv t;
    char notice[128] = "";
    PGconn *c;
    PGresult *r;
    int fd;

    kt_srv_start(&t, NULL);
    c = kt_connect_ok(t.port, "");
    fd = kt_raw_session(t.port);
    kt_srv_stop(&t);
    KT_ASSERT_EQ(atomic_load(&app.ncloses), 2);
    kt_raw_expect_fatal(fd, NULL, 0, "57P01",
                        "terminating connection due to administrator command");
    /* libpq reports an error that arrives between queries as a notice */
    PQsetNoticeReceiver(c, kt_notice, notice);
    r = PQexec(c, "SELECT 1");
    KT_ASSERT(PQresultStatus(r) != PGRES_TUPLES_OK);
    if (strstr(PQerrorMessage(c), "administrator command") == NULL)
        KT_ASSERT_STR_EQ(notice, "terminating connection due to administrator command");
    PQclear(r);
    PQfinish(c);
}

KT_TEST(pgwire_server_malformed_startup)
{
    struct kc_pgwire_server_config cfg = {.max_message = 1024};
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kt_srv t;
    uint8_t p[16] = {0};
    int fd, conns = 0;

    kt_srv_start(&t, &cfg);
    /* truncated startup packet, then the client goes away: closed without a word */
    fd = kt_raw_connect(t.port);
    conns++;
    kt_startup_packet(&s, "u", NULL);
    kt_raw_send(fd, s.data, 6);
    shutdown(fd, SHUT_WR);
    kc_sbuf_reset(&s);
    KT_ASSERT(kt_raw_read_to_eof(fd, &s));
    KT_ASSERT_EQ(s.len, 0);
    close(fd);
    /* oversized, undersized, HTTP */
    kc_store_u32(p, 100000);
    kt_raw_expect_fatal(kt_raw_connect(t.port), p, 8, "08P01", "too large");
    kc_store_u32(p, 3);
    kt_raw_expect_fatal(kt_raw_connect(t.port), p, 4, "08P01", "invalid length of startup packet");
    kt_raw_expect_fatal(kt_raw_connect(t.port), "GET / HTTP/1.1\r\n\r\n", 18, "08P01", "too large");
    conns += 3;
    /* SSL request answered 'N', startup pipelined behind a GSS request refused */
    fd = kt_raw_connect(t.port);
    conns++;
    kc_store_u32(p, 8);
    kc_store_u32(p + 4, KC_PGWIRE_SSL_REQUEST_CODE);
    kt_raw_send(fd, p, 8);
    KT_ASSERT_EQ(recv(fd, p + 8, 1, 0), 1);
    KT_ASSERT_EQ(p[8], 'N');
    kc_sbuf_reset(&s);
    kc_store_u32(p + 4, KC_PGWIRE_GSSENC_REQUEST_CODE);
    kc_sbuf_append(&s, p, 8);
    kt_startup_packet(&s, "u", NULL);
    kt_raw_expect_fatal(fd, s.data, s.len, "08P01", "unencrypted data after GSSAPI");
    /* CancelRequest: on_cancel, then closed without a reply */
    fd = kt_raw_connect(t.port);
    conns++;
    kc_store_u32(p, 16);
    kc_store_u32(p + 4, KC_PGWIRE_CANCEL_REQUEST_CODE);
    kc_store_u32(p + 8, 321);
    kc_store_u32(p + 12, 654);
    kt_raw_send(fd, p, 16);
    kc_sbuf_reset(&s);
    KT_ASSERT(kt_raw_read_to_eof(fd, &s));
    KT_ASSERT_EQ(s.len, 0);
    close(fd);
    kc_sbuf_reset(&s); /* no user, bad replication value */
    kt_startup_packet(&s, "", NULL);
    kt_raw_expect_fatal(kt_raw_connect(t.port), s.data, s.len, "28000", "no PostgreSQL user");
    kc_sbuf_reset(&s);
    kt_startup_packet(&s, "u", "sometimes");
    kt_raw_expect_fatal(kt_raw_connect(t.port), s.data, s.len, "22023", "replication");
    conns += 2;
    kt_check_alive(t.port);
    conns++;
    kt_wait_count(&app.ncloses, conns);
    kt_srv_stop(&t);
    KT_ASSERT_EQ(atomic_load(&app.ncancels), 1);
    KT_ASSERT_UEQ(app.cancel_pid, 321);
    KT_ASSERT_UEQ(app.cancel_key, 654);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_server_malformed_messages)
{
    struct kc_pgwire_server_config cfg = {.max_message = 1024};
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kt_srv t;
    uint8_t p[16] = {0};
    int fd, conns = 0;

    kt_srv_start(&t, &cfg);
    p[0] = 'z';
    kc_store_u32(p + 1, 4);
    kt_raw_expect_fatal(kt_raw_session(t.port), p, 5, "08P01", "invalid frontend message type 122");
    p[0] = 'Q';
    kc_store_u32(p + 1, 3);
    kt_raw_expect_fatal(kt_raw_session(t.port), p, 5, "08P01", "invalid message length 3");
    kc_store_u32(p + 1, 5000);
    kt_raw_expect_fatal(kt_raw_session(t.port), p, 5, "08P01", "too large");
    memcpy(p + 5, "SELE", 4); /* a Query without its terminator */
    kc_store_u32(p + 1, 8);
    kt_raw_expect_fatal(kt_raw_session(t.port), p, 9, "08P01", "invalid Query message");
    p[0] = 'p';
    kc_store_u32(p + 1, 4);
    kt_raw_expect_fatal(kt_raw_session(t.port), p, 5, "08P01", "invalid frontend message type 112");
    conns += 5;
    /* extended protocol: ERROR, skipped until Sync, then the session goes on */
    fd = kt_raw_session(t.port);
    conns++;
    kc_sbuf_reset(&s);
    kc_sbuf_put_u8(&s, 'P');
    kc_sbuf_put_u32(&s, 4 + 12);
    kc_sbuf_append(&s, "\0SELECT 1\0\0\0", 12);
    kc_sbuf_put_u8(&s, 'E');
    kc_sbuf_put_u32(&s, 9);
    kc_sbuf_append(&s, "\0\0\0\0", 5);
    kc_sbuf_put_u8(&s, 'S');
    kc_sbuf_put_u32(&s, 4);
    kc_sbuf_put_u8(&s, 'Q');
    kc_sbuf_put_u32(&s, 4 + 9);
    kc_sbuf_append(&s, "SELECT 1", 9);
    kc_sbuf_put_u8(&s, 'Q');
    kc_sbuf_put_u32(&s, 4 + 2);
    kc_sbuf_append(&s, " ", 2);
    kc_sbuf_put_u8(&s, 'X');
    kc_sbuf_put_u32(&s, 4);
    kt_raw_send(fd, s.data, s.len);
    kc_sbuf_reset(&s);
    KT_ASSERT(kt_raw_read_to_eof(fd, &s)); /* Terminate: closed after the replies */
    {
        /* error, Sync's ReadyForQuery, SELECT 1, the empty query */
        static const char want[] = "EZTDCZIZ";
        size_t pos = 0, size;
        struct kc_pgwire_msg m;
        for (size_t i = 0; i < strlen(want); i++) {
            KT_ASSERT_EQ(kc_pgwire_msg_decode(s.data + pos, s.len - pos, 1 << 20, &m, &size, NULL),
                         0);
            KT_ASSERT_EQ(m.type, want[i]);
            pos += size;
        }
        KT_ASSERT_EQ(pos, s.len);
    }
    close(fd);
    kt_check_alive(t.port);
    conns++;
    kt_wait_count(&app.ncloses, conns);
    kt_srv_stop(&t);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_server_startup_timeout)
{
    struct kc_pgwire_server_config cfg = {.startup_timeout_ms = 200};
    struct kt_srv t;
    int fd;

    kt_srv_start(&t, &cfg);
    fd = kt_raw_connect(t.port);
    kt_raw_expect_fatal(fd, NULL, 0, "57014", "canceling authentication due to timeout");
    kt_wait_count(&app.ncloses, 1);
    kt_srv_stop(&t);
}

static uint64_t kt_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

KT_TEST(pgwire_server_fuzz_connections)
{
    struct kc_pgwire_server_config cfg = {.max_message = 4096};
    struct kc_sbuf s = KC_SBUF_INIT, in = KC_SBUF_INIT;
    static const char *const queries[] = {
        "IDENTIFY_SYSTEM",   "START_REPLICATION 0/1000000", "SHOW x", "SELECT 1", "",
        "TIMELINE_HISTORY 1"};
    struct kt_srv t;
    uint64_t rng = 2024;
    int conns = 0;

    kt_srv_start(&t, &cfg);
    for (int i = 0; i < 150; i++) {
        int fd = kt_raw_connect(t.port), kind = (int)(kt_rng(&rng) % 4);
        size_t n = kt_rng(&rng) % 300;

        conns++;
        kc_sbuf_reset(&s);
        if (kind >= 1)
            kt_startup_packet(&s, "fuzz", kt_rng(&rng) % 2 ? "true" : NULL);
        if (kind >= 2) { /* plausible messages with random types and bodies */
            for (int m = 0; m < 4; m++) {
                const char *q = queries[kt_rng(&rng) % KC_ARRAY_LEN(queries)];
                uint8_t type = kind == 3 ? "QdcfXSHPp"[kt_rng(&rng) % 9] : 'Q';
                kc_sbuf_put_u8(&s, type);
                kc_sbuf_put_u32(&s, (uint32_t)(strlen(q) + 5));
                kc_sbuf_append(&s, q, strlen(q) + 1);
            }
        }
        for (size_t j = 0; j < n; j++)
            kc_sbuf_put_u8(&s, (uint8_t)kt_rng(&rng));
        if (kind >= 1 && s.len > 0 && kt_rng(&rng) % 2) /* and a bit flip */
            s.data[kt_rng(&rng) % s.len] ^= (uint8_t)(1u << (kt_rng(&rng) % 8));
        kt_raw_send(fd, s.data, s.len);
        shutdown(fd, SHUT_WR);
        kc_sbuf_reset(&in);
        KT_ASSERT(kt_raw_read_to_eof(fd, &in));
        close(fd);
    }
    kt_check_alive(t.port);
    conns++;
    kt_wait_count(&app.ncloses, conns);
    kt_srv_stop(&t);
    kc_sbuf_fini(&s);
    kc_sbuf_fini(&in);
}

/* ---- pg_receivewal ------------------------------------------------------------ */

KT_TEST(pgwire_server_pg_receivewal)
{
    const char *prefix = getenv("KELP_PG_PREFIX") != NULL ? getenv("KELP_PG_PREFIX") : "build/pg";
    char bin[512], dir[512], logpath[512], conninfo[128], wal[600];
    uint8_t got[0x180];
    struct kt_srv t;
    pid_t pid;
    int status = -1, fd;

    snprintf(bin, sizeof(bin), "%s/bin/pg_receivewal", prefix);
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "    (skipped: %s not built; run make pg)\n", bin);
        return;
    }
    app.mode = KT_STREAM_RECVWAL;
    kt_srv_start(&t, NULL);
    snprintf(dir, sizeof(dir), "%s/wal", kt_tmpdir());
    snprintf(logpath, sizeof(logpath), "%s/pg_receivewal.log", kt_tmpdir());
    KT_ASSERT_EQ(mkdir(dir, 0700), 0);
    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%u user=kelp connect_timeout=10",
             t.port);
    {
        char *argv[] = {bin,         "-d", conninfo,    "-D", dir,  "-E",
                        "0/1000100", "-n", "--no-sync", "-v", "-w", NULL};
        int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        KT_ASSERT(logfd >= 0);
        pid = fork();
        KT_ASSERT(pid >= 0);
        if (pid == 0) {
            dup2(logfd, 1);
            dup2(logfd, 2);
            execv(bin, argv);
            _exit(127);
        }
        close(logfd);
    }
    for (int i = 0; i < 3000; i++) { /* at most 30 s */
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        usleep(10 * 1000);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char log[4096] = "";
        FILE *f = fopen(logpath, "r");
        if (f != NULL) {
            log[fread(log, 1, sizeof(log) - 1, f)] = '\0';
            fclose(f);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        kt_fail(__FILE__, __LINE__, "pg_receivewal failed (status 0x%x):\n%s", status, log);
    }
    kt_wait_count(&app.ncloses, 1);
    kt_srv_stop(&t);
    /* it streamed from the segment start, reported its position, stopped at --endpos */
    KT_ASSERT_UEQ(app.start_lsn, 0x1000000);
    KT_ASSERT_EQ(app.start_tli, 1);
    KT_ASSERT(atomic_load(&app.nstatus) >= 1);
    KT_ASSERT_EQ(atomic_load(&app.ncopy_done), 1);
    snprintf(wal, sizeof(wal), "%s/000000010000000000000001.partial", dir);
    fd = open(wal, O_RDONLY);
    KT_ASSERT(fd >= 0);
    KT_ASSERT_EQ(read(fd, got, sizeof(got)), (ssize_t)sizeof(got));
    close(fd);
    for (size_t i = 0; i < sizeof(got); i++)
        KT_ASSERT_EQ(got[i], kt_wal_byte(0x1000000 + i));
}
