/* SPDX-License-Identifier: Apache-2.0 */
/* pgwire_server.c -- libevent listener and per-connection state machine for the PostgreSQL
 * protocol. */
#include "common/pgwire_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/pgwire_repl.h"
#include "common/random.h"

#define KC_PGWIRE_DEFAULT_MAX_CONNECTIONS 100
#define KC_PGWIRE_DEFAULT_STARTUP_MS      60000
#define KC_PGWIRE_CLOSE_FLUSH_SEC         5
/* Messages handled per loop callback before yielding to other connections. */
#define KC_PGWIRE_BATCH 256
/* Input read ahead of processing, beyond one largest message. */
#define KC_PGWIRE_READ_SLACK (64u * 1024)

enum kc_pgwire_phase {
    KC_PH_HANDSHAKE = 0, /* startup packet, password: hs drives */
    KC_PH_AUTH_WAIT,     /* on_auth deferred: input paused */
    KC_PH_IDLE,          /* authenticated, waiting for a query */
    KC_PH_QUERY,         /* on_query returned PENDING: input paused */
    KC_PH_COPY,          /* COPY both ways */
    KC_PH_CLOSING        /* flushing output, then freed */
};

/* One client connection. Owned by its server; touched only on the loop's thread. */
struct kc_pgwire_conn {
    struct kc_pgwire_server *srv;
    struct kc_pgwire_conn *prev, *next; /* srv->conns */
    struct bufferevent *bev;            /* the socket, owned */
    struct event *kick;                 /* deferred processing, owned */
    struct event *timer;                /* startup deadline, owned */
    struct kc_pgwire_handshake hs;      /* handshake state and startup packet */
    enum kc_pgwire_phase phase;
    bool authenticated;    /* reached KC_PH_IDLE once */
    bool counted;          /* holds one of max_connections (from its startup packet on) */
    bool skip_to_sync;     /* ignoring extended-protocol messages until Sync */
    bool client_copy_done; /* the client sent CopyDone */
    bool server_copy_done; /* we sent CopyDone */
    bool drain_armed;      /* on_drain wanted */
    size_t drain_low;      /* ... when pending <= drain_low */
    char *end_tag;         /* CommandComplete tag once the client's CopyDone arrives */
    uint32_t pid, key;     /* BackendKeyData */
    void *data;            /* the application's */
    char peer[64];         /* "addr:port" */
    struct kc_sbuf out;    /* scratch for building messages */
};

struct kc_pgwire_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *resume; /* re-enables accepting after an accept error */
    struct kc_pgwire_server_ops ops;
    struct kc_pgwire_param *params; /* ParameterStatus list, owned (with its strings) */
    size_t nparams;
    unsigned max_connections;
    size_t max_message;
    unsigned startup_timeout_ms;
    void *user;
    uint16_t port;
    struct kc_pgwire_conn *conns; /* every open connection */
    unsigned nconns;              /* length of conns */
    unsigned nsessions;           /* authenticated ones */
};

static const struct kc_pgwire_param kc_pgwire_default_params[] = {
    {"server_version", "15.18"}, {"server_encoding", "UTF8"},           {"client_encoding", "UTF8"},
    {"DateStyle", "ISO, MDY"},   {"IntervalStyle", "postgres"},         {"TimeZone", "UTC"},
    {"integer_datetimes", "on"}, {"standard_conforming_strings", "on"}, {"is_superuser", "off"},
};

static void kc_pgwire_conn_process(struct kc_pgwire_conn *conn);
static void kc_pgwire_conn_settle(struct kc_pgwire_conn *conn);

/* ---- small helpers ------------------------------------------------------ */

static void kc_pgwire_kick(struct kc_pgwire_conn *conn)
{
    event_active(conn->kick, EV_TIMEOUT, 0);
}

/* Queue conn->out on the socket and empty it. */
static void kc_pgwire_flush_out(struct kc_pgwire_conn *conn)
{
    if (conn->out.len > 0 && conn->phase != KC_PH_CLOSING)
        bufferevent_write(conn->bev, conn->out.data, conn->out.len);
    kc_sbuf_reset(&conn->out);
}

static void kc_pgwire_begin_close(struct kc_pgwire_conn *conn)
{
    struct timeval tv = {KC_PGWIRE_CLOSE_FLUSH_SEC, 0};

    if (conn->phase == KC_PH_CLOSING)
        return;
    kc_pgwire_flush_out(conn);
    conn->phase = KC_PH_CLOSING;
    conn->drain_armed = false;
    bufferevent_disable(conn->bev, EV_READ);
    bufferevent_setwatermark(conn->bev, EV_WRITE, 0, 0);
    bufferevent_set_timeouts(conn->bev, NULL, &tv);
    evtimer_del(conn->timer);
}

/* Send a FATAL and close. */
static void kc_pgwire_fatal(struct kc_pgwire_conn *conn, const char *sqlstate,
                            const struct kc_error *err)
{
    kc_debug("closing connection from %s: %s", conn->peer, err->message);
    kc_pgwire_put_error(&conn->out, KC_PGWIRE_FATAL, sqlstate, err);
    kc_pgwire_begin_close(conn);
}

static void kc_pgwire_put_rfq(struct kc_pgwire_conn *conn)
{
    kc_pgwire_put_ready_for_query(&conn->out, 'I');
    kc_pgwire_flush_out(conn);
}

static void kc_pgwire_conn_destroy(struct kc_pgwire_conn *conn)
{
    struct kc_pgwire_server *srv = conn->srv;

    if (srv->ops.on_close != NULL)
        srv->ops.on_close(conn);
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    srv->nconns--;
    if (conn->counted)
        srv->nsessions--;
    kc_debug("connection from %s closed", conn->peer);
    bufferevent_free(conn->bev);
    event_free(conn->kick);
    event_free(conn->timer);
    kc_pgwire_handshake_fini(&conn->hs);
    kc_sbuf_fini(&conn->out);
    free(conn->end_tag);
    free(conn);
}

/* ---- authentication ----------------------------------------------------- */

static void kc_pgwire_accept_session(struct kc_pgwire_conn *conn)
{
    struct kc_pgwire_server *srv = conn->srv;
    const char *app = conn->hs.startup.application_name;
    struct kc_pgwire_param *params = kc_calloc(srv->nparams + 1, sizeof(*params));
    size_t n = srv->nparams;

    memcpy(params, srv->params, srv->nparams * sizeof(*params));
    if (app != NULL)
        params[n++] = (struct kc_pgwire_param){"application_name", app};
    kc_pgwire_handshake_accept(&conn->hs, params, n, conn->pid, conn->key, &conn->out);
    free(params);
    kc_pgwire_flush_out(conn);
    evtimer_del(conn->timer);
    conn->phase = KC_PH_IDLE;
    conn->authenticated = true;
    kc_debug("connection from %s authenticated as \"%s\"", conn->peer, conn->hs.startup.user);
}

/* Act on an authentication decision; err is on_auth's (message may be empty). */
static void kc_pgwire_apply_auth(struct kc_pgwire_conn *conn, enum kc_pgwire_auth decision,
                                 const struct kc_error *err)
{
    struct kc_error e = {0};
    bool had_password = conn->hs.password != NULL;

    if (decision == KC_PGWIRE_AUTH_ACCEPT) {
        kc_pgwire_accept_session(conn);
        return;
    }
    if (decision == KC_PGWIRE_AUTH_DEFER) {
        conn->phase = KC_PH_AUTH_WAIT;
        return;
    }
    if (decision == KC_PGWIRE_AUTH_PASSWORD && conn->hs.state == KC_PGWIRE_HS_AUTH) {
        kc_pgwire_handshake_ask_password(&conn->hs, &conn->out);
        kc_pgwire_flush_out(conn);
        conn->phase = KC_PH_HANDSHAKE;
        return;
    }
    if (err != NULL && err->message[0] != '\0')
        e = *err;
    else
        kc_error_set(&e, KC_EINVAL, "%s authentication failed for user \"%.64s\"",
                     had_password ? "password" : "client", conn->hs.startup.user);
    kc_pgwire_handshake_reject(
        &conn->hs, had_password ? KC_SQLSTATE_INVALID_PASSWORD : KC_SQLSTATE_INVALID_AUTH_SPEC, &e,
        &conn->out);
    kc_debug("connection from %s: %s", conn->peer, e.message);
    kc_pgwire_begin_close(conn);
}

static void kc_pgwire_authenticate(struct kc_pgwire_conn *conn, const char *password)
{
    struct kc_error err = {0};
    enum kc_pgwire_auth d = KC_PGWIRE_AUTH_ACCEPT;

    if (conn->srv->ops.on_auth != NULL)
        d = conn->srv->ops.on_auth(conn, password, &err);
    kc_pgwire_apply_auth(conn, d, &err);
}

/* One step of the handshake. Returns KC_EAGAIN when more input is needed. */
static int kc_pgwire_step_handshake(struct kc_pgwire_conn *conn, struct evbuffer *in)
{
    struct kc_error err = {0};
    size_t avail = evbuffer_get_length(in), consumed = 0;
    size_t n = avail < KC_PGWIRE_STARTUP_MAX + 16 ? avail : KC_PGWIRE_STARTUP_MAX + 16;
    enum kc_pgwire_hs_event ev = KC_PGWIRE_HS_EV_REPLIED;
    const uint8_t *data = evbuffer_pullup(in, (ssize_t)n);
    int rc = kc_pgwire_handshake_feed(&conn->hs, data, n, &consumed, &ev, &conn->out, &err);

    evbuffer_drain(in, consumed);
    if (rc == KC_EAGAIN)
        return rc;
    if (rc < 0) {
        kc_debug("closing connection from %s: %s", conn->peer, err.message);
        kc_pgwire_begin_close(conn);
        return rc;
    }
    kc_pgwire_flush_out(conn);
    switch (ev) {
    case KC_PGWIRE_HS_EV_REPLIED: break;
    case KC_PGWIRE_HS_EV_CANCEL:
        if (conn->srv->ops.on_cancel != NULL)
            conn->srv->ops.on_cancel(conn->srv, conn->hs.startup.cancel_pid,
                                     conn->hs.startup.cancel_key);
        kc_pgwire_begin_close(conn);
        break;
    case KC_PGWIRE_HS_EV_CLOSE: kc_pgwire_begin_close(conn); break;
    case KC_PGWIRE_HS_EV_STARTUP:
        if (conn->srv->nsessions >= conn->srv->max_connections) {
            kc_error_set(&err, KC_EINVAL, "sorry, too many clients already");
            kc_error_detail(&err, "This server accepts %u sessions at a time.",
                            conn->srv->max_connections);
            kc_pgwire_fatal(conn, KC_SQLSTATE_TOO_MANY_CONNECTIONS, &err);
            break;
        }
        conn->counted = true; /* the slot is held during authentication too */
        conn->srv->nsessions++;
        kc_pgwire_authenticate(conn, NULL);
        break;
    case KC_PGWIRE_HS_EV_PASSWORD: kc_pgwire_authenticate(conn, conn->hs.password); break;
    }
    return 0;
}

/* ---- messages after authentication -------------------------------------- */

static bool kc_pgwire_is_empty_query(const char *sql)
{
    for (; *sql != '\0'; sql++)
        if (*sql != ' ' && *sql != '\t' && *sql != '\n' && *sql != '\r' && *sql != '\f' &&
            *sql != ';')
            return false;
    return true;
}

static void kc_pgwire_on_query(struct kc_pgwire_conn *conn, const struct kc_pgwire_msg *m)
{
    struct kc_error err = {0};
    const char *sql;
    enum kc_pgwire_query_status st;

    if (kc_pgwire_parse_query(m, &sql, &err) < 0) {
        kc_pgwire_fatal(conn, KC_SQLSTATE_PROTOCOL_VIOLATION, &err);
        return;
    }
    if (kc_pgwire_is_empty_query(sql)) {
        kc_pgwire_put_empty_query(&conn->out);
        kc_pgwire_put_rfq(conn);
        return;
    }
    conn->phase = KC_PH_QUERY;
    st = conn->srv->ops.on_query(conn, sql);
    if (conn->phase == KC_PH_QUERY && st == KC_PGWIRE_QUERY_DONE) {
        conn->phase = KC_PH_IDLE;
        kc_pgwire_put_rfq(conn);
    }
}

static void kc_pgwire_dispatch_idle(struct kc_pgwire_conn *conn, const struct kc_pgwire_msg *m)
{
    struct kc_error err = {0};

    if (conn->skip_to_sync && m->type != KC_PGWIRE_MSG_SYNC && m->type != KC_PGWIRE_MSG_TERMINATE)
        return;
    switch (m->type) {
    case KC_PGWIRE_MSG_QUERY: kc_pgwire_on_query(conn, m); return;
    case KC_PGWIRE_MSG_TERMINATE: kc_pgwire_begin_close(conn); return;
    case KC_PGWIRE_MSG_COPY_DATA:
    case KC_PGWIRE_MSG_COPY_DONE:
    case KC_PGWIRE_MSG_COPY_FAIL:
    case KC_PGWIRE_MSG_FLUSH:
        return; /* late COPY messages and Flush: ignored, as PostgreSQL does */
    case KC_PGWIRE_MSG_SYNC:
        conn->skip_to_sync = false;
        kc_pgwire_put_rfq(conn);
        return;
    case 'P':
    case 'B':
    case 'E':
    case 'D':
    case 'C':
    case 'F':
        kc_error_set(&err, KC_EINVAL, "extended query protocol is not supported");
        kc_error_hint(&err, "Send simple queries (for psql, do not use \\bind; for libpq, "
                            "PQexec rather than PQexecParams).");
        kc_pgwire_conn_send_error(conn, KC_SQLSTATE_FEATURE_NOT_SUPPORTED, &err);
        if (m->type == 'F')
            kc_pgwire_put_rfq(conn); /* a function call is not followed by Sync */
        else
            conn->skip_to_sync = true;
        return;
    default:
        kc_error_set(&err, KC_EPROTO, "invalid frontend message type %u", m->type);
        kc_pgwire_fatal(conn, KC_SQLSTATE_PROTOCOL_VIOLATION, &err);
        return;
    }
}

/* Both sides sent CopyDone: complete the command. */
static void kc_pgwire_copy_finish(struct kc_pgwire_conn *conn)
{
    kc_pgwire_put_command_complete(&conn->out, conn->end_tag != NULL ? conn->end_tag : "COPY 0");
    free(conn->end_tag);
    conn->end_tag = NULL;
    conn->phase = KC_PH_IDLE;
    kc_pgwire_put_rfq(conn);
}

static void kc_pgwire_copy_fail(struct kc_pgwire_conn *conn, const struct kc_pgwire_msg *m)
{
    struct kc_error err = {0};
    const char *reason;

    if (kc_pgwire_parse_copy_fail(m, &reason, &err) < 0) {
        kc_pgwire_fatal(conn, KC_SQLSTATE_PROTOCOL_VIOLATION, &err);
        return;
    }
    kc_error_set(&err, KC_EINVAL, "COPY from stdin failed: %.200s", reason);
    kc_pgwire_conn_send_error(conn, KC_SQLSTATE_QUERY_CANCELED, &err);
    free(conn->end_tag);
    conn->end_tag = NULL;
    conn->phase = KC_PH_IDLE;
    kc_pgwire_put_rfq(conn);
    if (conn->srv->ops.on_copy_done != NULL)
        conn->srv->ops.on_copy_done(conn, reason);
}

static void kc_pgwire_dispatch_copy(struct kc_pgwire_conn *conn, const struct kc_pgwire_msg *m)
{
    struct kc_error err = {0};

    switch (m->type) {
    case KC_PGWIRE_MSG_COPY_DATA:
        if (conn->srv->ops.on_copy_data != NULL)
            conn->srv->ops.on_copy_data(conn, m->payload, m->len);
        return;
    case KC_PGWIRE_MSG_COPY_DONE:
        if (conn->client_copy_done)
            break;
        conn->client_copy_done = true;
        if (conn->server_copy_done)
            kc_pgwire_copy_finish(conn);
        else if (conn->srv->ops.on_copy_done != NULL)
            conn->srv->ops.on_copy_done(conn, NULL);
        else
            kc_pgwire_conn_end_copy(conn, "COPY 0");
        return;
    case KC_PGWIRE_MSG_COPY_FAIL:
        if (conn->client_copy_done)
            break;
        kc_pgwire_copy_fail(conn, m);
        return;
    case KC_PGWIRE_MSG_FLUSH:
    case KC_PGWIRE_MSG_SYNC: return;
    case KC_PGWIRE_MSG_TERMINATE: kc_pgwire_begin_close(conn); return;
    default: break;
    }
    kc_error_set(&err, KC_EPROTO, "unexpected message type 0x%02x during COPY", m->type);
    if (conn->client_copy_done)
        kc_error_detail(&err, "The client already ended the COPY with CopyDone.");
    kc_pgwire_fatal(conn, KC_SQLSTATE_PROTOCOL_VIOLATION, &err);
}

/* One typed message. Returns KC_EAGAIN when it has not fully arrived. */
static int kc_pgwire_step_message(struct kc_pgwire_conn *conn, struct evbuffer *in)
{
    struct kc_error err = {0};
    struct kc_pgwire_msg m;
    size_t avail = evbuffer_get_length(in), size = 0;
    size_t n = avail < KC_PGWIRE_HEADER_SIZE ? avail : KC_PGWIRE_HEADER_SIZE;
    const uint8_t *data = evbuffer_pullup(in, (ssize_t)n);
    int rc = kc_pgwire_msg_decode(data, n, conn->srv->max_message, &m, &size, &err);

    if (rc == KC_EAGAIN) {
        if (size > avail)
            return KC_EAGAIN;
        data = evbuffer_pullup(in, (ssize_t)size);
        rc = kc_pgwire_msg_decode(data, size, conn->srv->max_message, &m, &size, &err);
    }
    if (rc < 0) {
        kc_pgwire_fatal(conn, KC_SQLSTATE_PROTOCOL_VIOLATION, &err);
        return rc;
    }
    if (conn->phase == KC_PH_COPY)
        kc_pgwire_dispatch_copy(conn, &m);
    else
        kc_pgwire_dispatch_idle(conn, &m);
    evbuffer_drain(in, size);
    return 0;
}

/* Handle whatever input can be handled now. Never frees conn. */
static void kc_pgwire_conn_process(struct kc_pgwire_conn *conn)
{
    struct evbuffer *in = bufferevent_get_input(conn->bev);

    for (int i = 0; i < KC_PGWIRE_BATCH; i++) {
        int rc;

        if (conn->phase == KC_PH_AUTH_WAIT || conn->phase == KC_PH_QUERY ||
            conn->phase == KC_PH_CLOSING || evbuffer_get_length(in) == 0)
            return;
        if (conn->phase == KC_PH_HANDSHAKE)
            rc = kc_pgwire_step_handshake(conn, in);
        else
            rc = kc_pgwire_step_message(conn, in);
        if (rc == KC_EAGAIN)
            return;
    }
    kc_pgwire_kick(conn); /* more may be buffered: go on after others had their turn */
}

/* After processing: fire on_drain, and free the connection once it is closed and flushed. */
static void kc_pgwire_conn_settle(struct kc_pgwire_conn *conn)
{
    for (int i = 0; i < 4 && conn->drain_armed && conn->phase != KC_PH_CLOSING; i++) {
        if (kc_pgwire_conn_pending(conn) > conn->drain_low)
            break;
        conn->drain_armed = false;
        bufferevent_setwatermark(conn->bev, EV_WRITE, 0, 0);
        if (conn->srv->ops.on_drain != NULL)
            conn->srv->ops.on_drain(conn);
    }
    if (conn->phase == KC_PH_CLOSING && kc_pgwire_conn_pending(conn) == 0)
        kc_pgwire_conn_destroy(conn);
}

/* ---- libevent callbacks -------------------------------------------------- */

static void kc_pgwire_read_cb(struct bufferevent *bev, void *arg)
{
    struct kc_pgwire_conn *conn = arg;

    (void)bev;
    kc_pgwire_conn_process(conn);
    kc_pgwire_conn_settle(conn);
}

static void kc_pgwire_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    kc_pgwire_conn_settle(arg);
}

static void kc_pgwire_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct kc_pgwire_conn *conn = arg;

    if (what & BEV_EVENT_EOF) {
        size_t left = evbuffer_get_length(bufferevent_get_input(bev));
        if (left > 0 && conn->phase != KC_PH_CLOSING)
            kc_debug("connection from %s ended inside a message (%zu bytes unread)", conn->peer,
                     left);
    } else if (what & BEV_EVENT_ERROR) {
        kc_debug("connection from %s failed: %s", conn->peer, strerror(errno));
    } else if (what & BEV_EVENT_TIMEOUT) {
        kc_debug("connection from %s did not take its last bytes in time", conn->peer);
    }
    kc_pgwire_conn_destroy(conn);
}

static void kc_pgwire_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kc_pgwire_conn *conn = arg;

    (void)fd, (void)what;
    kc_pgwire_conn_process(conn);
    kc_pgwire_conn_settle(conn);
}

static void kc_pgwire_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kc_pgwire_conn *conn = arg;
    struct kc_error err = {0};

    (void)fd, (void)what;
    if (conn->phase != KC_PH_HANDSHAKE && conn->phase != KC_PH_AUTH_WAIT)
        return;
    kc_error_set(&err, KC_ETIMEDOUT, "canceling authentication due to timeout");
    kc_error_detail(&err, "The startup handshake must end within %u ms.",
                    conn->srv->startup_timeout_ms);
    kc_pgwire_fatal(conn, KC_SQLSTATE_QUERY_CANCELED, &err);
    kc_pgwire_conn_settle(conn);
}

static void kc_pgwire_format_peer(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(buf, len, "%s:%u", host, port);
}

/* A backend key: pid in 1..2^31-1, key any 32 bits. */
static void kc_pgwire_new_key(struct kc_pgwire_conn *conn)
{
    static uint32_t fallback;
    uint32_t r[2];

    if (kc_random_bytes(r, sizeof(r), NULL) < 0) {
        r[0] = ++fallback;
        r[1] = (uint32_t)(uintptr_t)conn;
    }
    conn->pid = (r[0] & 0x7fffffffu) != 0 ? (r[0] & 0x7fffffffu) : 1;
    conn->key = r[1];
}

static void kc_pgwire_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                                int salen, void *arg)
{
    struct kc_pgwire_server *srv = arg;
    struct kc_pgwire_conn *conn;
    struct timeval tv;
    size_t high =
        (srv->max_message > KC_PGWIRE_STARTUP_MAX ? srv->max_message : KC_PGWIRE_STARTUP_MAX) +
        KC_PGWIRE_HEADER_SIZE + KC_PGWIRE_READ_SLACK;
    int one = 1;

    (void)l, (void)salen;
    if (srv->nconns >= 2 * srv->max_connections + 16) {
        kc_warn("refusing a connection: %u connections are open", srv->nconns);
        close(fd);
        return;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn = kc_calloc(1, sizeof(*conn));
    conn->srv = srv;
    conn->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (conn->bev == NULL) {
        kc_warn("could not set up a connection: bufferevent_socket_new failed");
        close(fd);
        free(conn);
        return;
    }
    conn->kick = event_new(srv->base, -1, 0, kc_pgwire_kick_cb, conn);
    conn->timer = evtimer_new(srv->base, kc_pgwire_timeout_cb, conn);
    if (conn->kick == NULL || conn->timer == NULL)
        kc_fatal("out of memory creating libevent events");
    kc_pgwire_handshake_init(&conn->hs);
    kc_pgwire_format_peer(sa, conn->peer, sizeof(conn->peer));
    kc_pgwire_new_key(conn);
    bufferevent_setcb(conn->bev, kc_pgwire_read_cb, kc_pgwire_write_cb, kc_pgwire_event_cb, conn);
    bufferevent_setwatermark(conn->bev, EV_READ, 0, high);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    tv.tv_sec = srv->startup_timeout_ms / 1000;
    tv.tv_usec = (srv->startup_timeout_ms % 1000) * 1000;
    evtimer_add(conn->timer, &tv);
    conn->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = conn;
    srv->conns = conn;
    srv->nconns++;
    kc_debug("connection from %s accepted", conn->peer);
}

static void kc_pgwire_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kc_pgwire_server *srv = arg;

    (void)fd, (void)what;
    evconnlistener_enable(srv->listener);
}

/* accept(2) failed (EMFILE, ENFILE, ...): pause accepting for 100 ms instead of spinning. */
static void kc_pgwire_accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct kc_pgwire_server *srv = arg;
    struct timeval tv = {0, 100 * 1000};

    kc_warn("accepting a connection failed: %s", strerror(errno));
    evconnlistener_disable(l);
    evtimer_add(srv->resume, &tv);
}

/* ---- server ------------------------------------------------------------- */

static void kc_pgwire_copy_params(struct kc_pgwire_server *srv,
                                  const struct kc_pgwire_server_config *cfg)
{
    const struct kc_pgwire_param *src =
        cfg->params != NULL ? cfg->params : kc_pgwire_default_params;
    size_t n = cfg->params != NULL ? cfg->nparams : KC_ARRAY_LEN(kc_pgwire_default_params);

    srv->params = kc_calloc(n > 0 ? n : 1, sizeof(*srv->params));
    for (size_t i = 0; i < n; i++) {
        srv->params[i].name = kc_strdup(src[i].name);
        srv->params[i].value = kc_strdup(src[i].value);
    }
    srv->nparams = n;
}

static int kc_pgwire_listen(struct kc_pgwire_server *srv, const char *host, uint16_t port,
                            struct kc_error *err)
{
    struct addrinfo hints = {0}, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char portstr[8];
    int rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%u", port);
    rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        kc_error_set(err, KC_EIO, "could not resolve listen address \"%s\": %s", host,
                     gai_strerror(rc));
        return KC_EIO;
    }
    srv->listener =
        evconnlistener_new_bind(srv->base, kc_pgwire_accept_cb, srv,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                128, ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (srv->listener == NULL) {
        kc_error_set(err, KC_EIO, "could not listen on %s port %u: %s", host, port,
                     strerror(errno));
        kc_error_hint(err, "Check that no other process uses the port and the address is local.");
        return KC_EIO;
    }
    evconnlistener_set_error_cb(srv->listener, kc_pgwire_accept_error_cb);
    if (getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&ss, &sslen) == 0)
        srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int kc_pgwire_server_open(struct event_base *base, const struct kc_pgwire_server_config *cfg,
                          struct kc_pgwire_server **out, struct kc_error *err)
{
    struct kc_pgwire_server *srv;
    const char *host = cfg->host != NULL ? cfg->host : "127.0.0.1";
    struct sigaction sa;
    int rc;

    if (cfg->ops == NULL || cfg->ops->on_query == NULL)
        return kc_error_set(err, KC_EINVAL,
                            "a PostgreSQL protocol server needs an on_query "
                            "callback");
    srv = kc_calloc(1, sizeof(*srv));
    srv->base = base;
    srv->ops = *cfg->ops;
    srv->user = cfg->user;
    srv->max_connections =
        cfg->max_connections > 0 ? cfg->max_connections : KC_PGWIRE_DEFAULT_MAX_CONNECTIONS;
    srv->max_message = cfg->max_message > 0 ? cfg->max_message : KC_PGWIRE_MESSAGE_MAX_DEFAULT;
    srv->startup_timeout_ms =
        cfg->startup_timeout_ms > 0 ? cfg->startup_timeout_ms : KC_PGWIRE_DEFAULT_STARTUP_MS;
    srv->resume = evtimer_new(base, kc_pgwire_resume_cb, srv);
    if (srv->resume == NULL)
        kc_fatal("out of memory creating a libevent timer");
    kc_pgwire_copy_params(srv, cfg);
    rc = kc_pgwire_listen(srv, host, cfg->port, err);
    if (rc < 0) {
        kc_pgwire_server_close(srv);
        return rc;
    }
    /* A client that disconnects must not kill us with SIGPIPE on the next write. */
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    kc_info("PostgreSQL protocol server listening on %s port %u", host, srv->port);
    *out = srv;
    return 0;
}

/*
 * Best effort, without waiting: write what is queued and then a FATAL straight
 * to the socket (the loop may not run again). When the socket takes only part,
 * the client sees the stream end early, as after a crash.
 */
static void kc_pgwire_goodbye(struct kc_pgwire_conn *conn, const struct kc_error *err)
{
    struct evbuffer *o = bufferevent_get_output(conn->bev);
    struct evbuffer_iovec v[64];
    struct iovec iov[65];
    struct msghdr mh = {0};
    int n = evbuffer_peek(o, -1, NULL, v, 64);

    if (n < 0 || n > 64)
        return;
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len;
    }
    kc_sbuf_reset(&conn->out);
    kc_pgwire_put_error(&conn->out, KC_PGWIRE_FATAL, KC_SQLSTATE_ADMIN_SHUTDOWN, err);
    iov[n].iov_base = conn->out.data;
    iov[n].iov_len = conn->out.len;
    mh.msg_iov = iov;
    mh.msg_iovlen = (size_t)n + 1;
    (void)sendmsg(bufferevent_getfd(conn->bev), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    kc_sbuf_reset(&conn->out);
}

void kc_pgwire_server_close(struct kc_pgwire_server *srv)
{
    struct kc_error err = {0};

    if (srv == NULL)
        return;
    if (srv->listener != NULL)
        evconnlistener_free(srv->listener);
    kc_error_set(&err, KC_EIO, "terminating connection due to administrator command");
    while (srv->conns != NULL) {
        struct kc_pgwire_conn *conn = srv->conns;

        if (conn->phase != KC_PH_CLOSING && conn->authenticated)
            kc_pgwire_goodbye(conn, &err);
        kc_pgwire_conn_destroy(conn);
    }
    event_free(srv->resume);
    for (size_t i = 0; i < srv->nparams; i++) {
        free((char *)srv->params[i].name);
        free((char *)srv->params[i].value);
    }
    free(srv->params);
    free(srv);
}

uint16_t kc_pgwire_server_port(const struct kc_pgwire_server *srv)
{
    return srv->port;
}

void *kc_pgwire_server_user(const struct kc_pgwire_server *srv)
{
    return srv->user;
}

unsigned kc_pgwire_server_connections(const struct kc_pgwire_server *srv)
{
    return srv->nconns;
}

/* ---- connection API ------------------------------------------------------ */

struct kc_pgwire_server *kc_pgwire_conn_server(const struct kc_pgwire_conn *conn)
{
    return conn->srv;
}

const struct kc_pgwire_startup *kc_pgwire_conn_startup(const struct kc_pgwire_conn *conn)
{
    return &conn->hs.startup;
}

const char *kc_pgwire_conn_peer(const struct kc_pgwire_conn *conn)
{
    return conn->peer;
}

void kc_pgwire_conn_backend_key(const struct kc_pgwire_conn *conn, uint32_t *pid, uint32_t *key)
{
    *pid = conn->pid;
    *key = conn->key;
}

void kc_pgwire_conn_set_data(struct kc_pgwire_conn *conn, void *data)
{
    conn->data = data;
}

void *kc_pgwire_conn_data(const struct kc_pgwire_conn *conn)
{
    return conn->data;
}

void kc_pgwire_conn_auth_done(struct kc_pgwire_conn *conn, enum kc_pgwire_auth decision,
                              const struct kc_error *err)
{
    if (conn->phase != KC_PH_AUTH_WAIT)
        return;
    conn->phase = KC_PH_HANDSHAKE;
    if (decision == KC_PGWIRE_AUTH_DEFER)
        decision = KC_PGWIRE_AUTH_REJECT;
    kc_pgwire_apply_auth(conn, decision, err);
    kc_pgwire_kick(conn);
}

void kc_pgwire_conn_send(struct kc_pgwire_conn *conn, const void *msgs, size_t len)
{
    if (conn->phase != KC_PH_CLOSING && len > 0)
        bufferevent_write(conn->bev, msgs, len);
}

void kc_pgwire_conn_send_error(struct kc_pgwire_conn *conn, const char *sqlstate,
                               const struct kc_error *err)
{
    kc_pgwire_put_error(&conn->out, KC_PGWIRE_ERROR, sqlstate, err);
    kc_pgwire_flush_out(conn);
}

void kc_pgwire_conn_send_notice(struct kc_pgwire_conn *conn, const char *sqlstate,
                                const struct kc_error *err)
{
    kc_pgwire_put_notice(&conn->out, KC_PGWIRE_NOTICE, sqlstate, err);
    kc_pgwire_flush_out(conn);
}

int kc_pgwire_conn_send_result(struct kc_pgwire_conn *conn, const struct kc_pgwire_column *cols,
                               size_t ncols, const char *const *values, size_t nrows,
                               const char *tag, struct kc_error *err)
{
    kc_pgwire_put_row_description(&conn->out, cols, ncols);
    for (size_t r = 0; r < nrows; r++) {
        int rc = kc_pgwire_put_data_row(&conn->out, values + r * ncols, NULL, ncols, err);
        if (rc < 0) {
            kc_sbuf_reset(&conn->out);
            return rc;
        }
    }
    kc_pgwire_put_command_complete(&conn->out, tag);
    kc_pgwire_flush_out(conn);
    return 0;
}

void kc_pgwire_conn_ready(struct kc_pgwire_conn *conn)
{
    if (conn->phase != KC_PH_QUERY)
        return;
    conn->phase = KC_PH_IDLE;
    kc_pgwire_put_rfq(conn);
    kc_pgwire_kick(conn);
}

int kc_pgwire_conn_start_copy_both(struct kc_pgwire_conn *conn, struct kc_error *err)
{
    if (conn->phase != KC_PH_QUERY)
        return kc_error_set(err, KC_EPROTO, "COPY can only start while a query is being handled");
    kc_pgwire_put_copy_both_response(&conn->out, 0);
    kc_pgwire_flush_out(conn);
    conn->phase = KC_PH_COPY;
    conn->client_copy_done = conn->server_copy_done = false;
    kc_pgwire_kick(conn); /* CopyData may already be buffered */
    return 0;
}

bool kc_pgwire_conn_in_copy(const struct kc_pgwire_conn *conn)
{
    return conn->phase == KC_PH_COPY;
}

static int kc_pgwire_check_copy_out(const struct kc_pgwire_conn *conn, struct kc_error *err)
{
    if (conn->phase != KC_PH_COPY || conn->server_copy_done)
        return kc_error_set(err, KC_EPROTO, "connection from %s is not sending COPY data",
                            conn->peer);
    return 0;
}

int kc_pgwire_conn_send_copy_data(struct kc_pgwire_conn *conn, const void *data, size_t len,
                                  struct kc_error *err)
{
    uint8_t hdr[KC_PGWIRE_HEADER_SIZE];
    int rc = kc_pgwire_check_copy_out(conn, err);

    if (rc < 0)
        return rc;
    if (len > KC_PGWIRE_SEND_MAX)
        return kc_error_set(err, KC_ETOOBIG, "CopyData of %zu bytes is too large to send", len);
    hdr[0] = KC_PGWIRE_MSG_COPY_DATA;
    kc_store_u32(hdr + 1, (uint32_t)len + 4);
    bufferevent_write(conn->bev, hdr, sizeof(hdr));
    bufferevent_write(conn->bev, data, len);
    return 0;
}

int kc_pgwire_conn_send_xlog_data(struct kc_pgwire_conn *conn, kc_lsn start, kc_lsn end,
                                  int64_t send_time, const void *data, size_t len,
                                  struct kc_error *err)
{
    uint8_t hdr[KC_PGWIRE_HEADER_SIZE + KC_PGWIRE_XLOG_DATA_HEADER];
    int rc = kc_pgwire_check_copy_out(conn, err);

    if (rc < 0)
        return rc;
    if (len > KC_PGWIRE_SEND_MAX - KC_PGWIRE_XLOG_DATA_HEADER)
        return kc_error_set(err, KC_ETOOBIG, "XLogData of %zu bytes is too large to send", len);
    hdr[0] = KC_PGWIRE_MSG_COPY_DATA;
    kc_store_u32(hdr + 1, (uint32_t)(len + KC_PGWIRE_XLOG_DATA_HEADER + 4));
    hdr[5] = KC_PGWIRE_REPL_XLOG_DATA;
    kc_store_u64(hdr + 6, start);
    kc_store_u64(hdr + 14, end);
    kc_store_u64(hdr + 22, (uint64_t)send_time);
    bufferevent_write(conn->bev, hdr, sizeof(hdr));
    bufferevent_write(conn->bev, data, len);
    return 0;
}

int kc_pgwire_conn_send_keepalive(struct kc_pgwire_conn *conn, kc_lsn end, int64_t send_time,
                                  bool reply_requested, struct kc_error *err)
{
    int rc = kc_pgwire_check_copy_out(conn, err);

    if (rc < 0)
        return rc;
    kc_pgwire_put_keepalive(&conn->out, end, send_time, reply_requested);
    kc_pgwire_flush_out(conn);
    return 0;
}

void kc_pgwire_conn_end_copy(struct kc_pgwire_conn *conn, const char *tag)
{
    if (conn->phase != KC_PH_COPY)
        return;
    free(conn->end_tag);
    conn->end_tag = kc_strdup(tag);
    if (!conn->server_copy_done) {
        kc_pgwire_put_copy_done(&conn->out);
        kc_pgwire_flush_out(conn);
        conn->server_copy_done = true;
    }
    if (conn->client_copy_done)
        kc_pgwire_copy_finish(conn);
    kc_pgwire_kick(conn);
}

size_t kc_pgwire_conn_pending(const struct kc_pgwire_conn *conn)
{
    return evbuffer_get_length(bufferevent_get_output(conn->bev));
}

void kc_pgwire_conn_notify_drain(struct kc_pgwire_conn *conn, size_t low_water)
{
    if (conn->phase == KC_PH_CLOSING)
        return;
    conn->drain_armed = true;
    conn->drain_low = low_water;
    bufferevent_setwatermark(conn->bev, EV_WRITE, low_water, 0);
    kc_pgwire_kick(conn);
}

void kc_pgwire_conn_close(struct kc_pgwire_conn *conn, const char *sqlstate,
                          const struct kc_error *err)
{
    if (conn->phase == KC_PH_CLOSING)
        return;
    if (err != NULL)
        kc_pgwire_put_error(&conn->out, KC_PGWIRE_FATAL, sqlstate, err);
    kc_pgwire_begin_close(conn);
    kc_pgwire_kick(conn);
}
