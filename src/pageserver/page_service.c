/* SPDX-License-Identifier: Apache-2.0 */
/* page_service.c -- page service server: one thread per connection, answers in request order. */
#include "pageserver/page_service.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/failpoint.h"
#include "common/frame.h"
#include "common/hashmap.h"
#include "common/log.h"

#define PS_FLUSH_THRESHOLD (64u * 1024) /* write the output once this much is pending */
#define PS_WAIT_SLICE_MS   100          /* longest single wait_lsn call */
#define PS_FAIL_WRITE_MS   1000         /* longest wait to deliver a closing ERROR */
#define PS_STOP_GRACE_MS   1500         /* at stop, time given to connections to finish */
#define PS_IN_INITIAL      (64u * 1024) /* first size of a connection's input buffer */
#define PS_NTYPES          5            /* request types, KC_PS_MSG_EXISTS .. KC_PS_MSG_SLRU */

static const char *const ps_type_labels[PS_NTYPES] = {"exists", "nblocks", "getpage", "dbsize",
                                                      "slru"};

struct ps_page_service;

/*
 * One client connection. The fields above `thread_only` are guarded by
 * srv->lock; the rest belong to the connection's thread.
 */
struct ps_conn {
    struct ps_page_service *srv; /* owning server */
    struct ps_conn *next;        /* srv->conns list */
    int fd;                      /* socket, closed by whoever reaps the connection */
    pthread_t thread;            /* the connection's thread */
    bool done;                   /* the thread has finished */

    /* thread_only: */
    char peer[64];                 /* "address:port" for logs */
    char name[KC_PS_NAME_MAX + 1]; /* client name from HELLO */
    void *tl;                      /* backend handle after the handshake, or NULL */
    struct kc_id tenant;           /* from HELLO */
    struct kc_id timeline;         /* from HELLO */
    uint64_t term;                 /* the compute's term */
    bool read_only;                /* exempt from fencing */
    uint8_t *in;                   /* received bytes */
    size_t in_cap;                 /* bytes allocated at in */
    size_t in_start;               /* first unconsumed byte */
    size_t in_len;                 /* bytes received */
    struct kc_sbuf out;            /* encoded answers not yet written */
    uint8_t page[KC_PS_BLCKSZ];    /* GETPAGE scratch */
    uint8_t *slru; /* SLRU scratch (KC_PS_SLRU_MAX_BLOCKS pages), lazily allocated */
};

struct ps_page_service {
    struct ps_page_service_options opts; /* copy; opts.host points at host */
    char *host;                          /* owned copy of the listen host */
    struct ps_page_backend be;           /* copy of the backend */
    int listen_fd;                       /* listening socket */
    int wake[2];                         /* pipe that wakes the accept thread at stop */
    uint16_t port;                       /* bound port */
    pthread_t accept_thread;             /* runs ps_accept_main */
    atomic_bool stopping;                /* set once by ps_page_service_stop */

    pthread_mutex_t lock; /* guards conns, nconns */
    struct ps_conn *conns;
    unsigned nconns; /* connections whose thread has not finished */

    pthread_rwlock_t terms_lock; /* guards terms */
    struct kc_hmap *terms;       /* tenant||timeline -> newest term presented */

    struct kc_counter *m_requests[PS_NTYPES];  /* requests by type */
    struct kc_counter *m_errors[PS_NTYPES];    /* ERROR answers by type */
    struct kc_histogram *m_latency[PS_NTYPES]; /* seconds from decode to answer */
    struct kc_gauge *m_connections;            /* open connections */
    struct kc_counter *m_protocol_errors;      /* connections closed for malformed input */
    struct kc_counter *m_fenced;               /* handshakes and requests of a stale term */
};

static int64_t ps_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double ps_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Copy s into out, newlines as spaces and other bytes outside printable ASCII as '?'. */
static const char *ps_sanitize(const char *s, char *out, size_t len)
{
    size_t i = 0;

    for (; s[i] != '\0' && i + 1 < len; i++)
        out[i] = (s[i] >= 0x20 && s[i] <= 0x7E) ? s[i] : s[i] == '\n' ? ' ' : '?';
    out[i] = '\0';
    return out;
}

/* The sqlstate for a backend error code (see page_service.h). */
static const char *ps_sqlstate_of(int code)
{
    switch (code) {
    case KC_ENOTFOUND: return KC_PS_SQLSTATE_NOT_FOUND;
    case KC_EINVAL: return KC_PS_SQLSTATE_INVALID;
    case KC_ETIMEDOUT: return KC_PS_SQLSTATE_WAIT_TIMEOUT;
    case KC_ECORRUPT: return KC_PS_SQLSTATE_CORRUPT;
    case KC_EIO: return KC_PS_SQLSTATE_IO;
    default: return KC_PS_SQLSTATE_INTERNAL;
    }
}

static void ps_term_key(const struct kc_id *tenant, const struct kc_id *timeline,
                        uint8_t key[2 * KC_ID_LEN])
{
    memcpy(key, tenant->b, KC_ID_LEN);
    memcpy(key + KC_ID_LEN, timeline->b, KC_ID_LEN);
}

uint64_t ps_page_service_term(struct ps_page_service *s, const struct kc_id *tenant,
                              const struct kc_id *timeline)
{
    uint8_t key[2 * KC_ID_LEN];
    uint64_t term = 0;

    ps_term_key(tenant, timeline, key);
    pthread_rwlock_rdlock(&s->terms_lock);
    if (!kc_hmap_get(s->terms, key, &term))
        term = 0;
    pthread_rwlock_unlock(&s->terms_lock);
    return term;
}

/* ---- socket I/O of a connection ------------------------------------------ */

/*
 * Write everything in c->out, waiting at most timeout_ms for the client to
 * take it. Returns 0, or KC_EIO / KC_ETIMEDOUT with err filled. The output
 * is emptied either way.
 */
static int ps_conn_flush(struct ps_conn *c, int timeout_ms, struct kc_error *err)
{
    size_t sent = 0;
    int64_t deadline = ps_now_ms() + timeout_ms;
    int rc = 0;

    if (c->out.len > 0 && KC_FAILPOINT("pageserver.page_service.before-flush"))
        rc = kc_error_set(err, KC_EIO, "failpoint dropped the connection before a write");
    while (rc == 0 && sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + sent, c->out.len - sent, MSG_NOSIGNAL);
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        int64_t left;

        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            rc = kc_error_set(err, KC_EIO, "could not send: %s", strerror(errno));
            break;
        }
        left = deadline - ps_now_ms();
        if (left <= 0) {
            rc = kc_error_set(err, KC_ETIMEDOUT, "client did not read its answers for %d ms",
                              timeout_ms);
            break;
        }
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            rc = kc_error_set(err, KC_EIO, "could not poll: %s", strerror(errno));
    }
    kc_sbuf_reset(&c->out);
    return rc;
}

/* Make room for want unconsumed bytes at c->in (compacting first). */
static void ps_conn_reserve(struct ps_conn *c, size_t want)
{
    if (c->in_start > 0) {
        memmove(c->in, c->in + c->in_start, c->in_len - c->in_start);
        c->in_len -= c->in_start;
        c->in_start = 0;
    }
    if (want > c->in_cap) {
        size_t cap = c->in_cap;
        while (cap < want)
            cap *= 2;
        c->in = kc_realloc(c->in, cap);
        c->in_cap = cap;
    }
}

/*
 * Receive more bytes, waiting until deadline (ms on the monotonic clock; -1:
 * no limit). Returns 0 when bytes arrived, 1 at end of stream, or a negative
 * code with err filled.
 */
static int ps_conn_fill(struct ps_conn *c, int64_t deadline, struct kc_error *err)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int wait = -1;

        if (n > 0) {
            c->in_len += (size_t)n;
            return 0;
        }
        if (n == 0)
            return 1;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return kc_error_set(err, KC_EIO, "could not receive: %s", strerror(errno));
        if (deadline >= 0) {
            int64_t left = deadline - ps_now_ms();
            if (left <= 0)
                return kc_error_set(err, KC_ETIMEDOUT, "page service connection timed out");
            wait = (int)left;
        }
        if (poll(&p, 1, wait) < 0 && errno != EINTR)
            return kc_error_set(err, KC_EIO, "could not poll: %s", strerror(errno));
    }
}

/*
 * End the connection for a reason worth a warning: log it (sanitized),
 * send an ERROR with id 0 when the socket still takes it. Returns -1 so
 * callers can `return ps_conn_fail(...)`.
 */
static int ps_conn_fail(struct ps_conn *c, const char *sqlstate, const struct kc_error *e,
                        bool protocol_error)
{
    char msg[1024], clean[1024];
    struct kc_error ignored;

    kc_error_format(e, msg, sizeof(msg));
    kc_log(strcmp(sqlstate, KC_PS_SQLSTATE_SHUTDOWN) == 0 ? KC_LOG_INFO : KC_LOG_WARN,
           "page service: closing connection from %s (%s): %s", c->peer,
           c->name[0] != '\0' ? c->name : "before handshake",
           ps_sanitize(msg, clean, sizeof(clean)));
    if (protocol_error)
        kc_counter_inc(c->srv->m_protocol_errors);
    kc_ps_error_encode(&c->out, 0, sqlstate, e);
    (void)ps_conn_flush(c, PS_FAIL_WRITE_MS, &ignored);
    return -1;
}

/*
 * Read the next frame with payload at most max_payload into *f (pointing
 * into c->in; consumed by the caller advancing in_start by *consumed).
 * Writes pending output before it waits. Returns 0, 1 at a clean end of
 * stream, or -1 after the connection was failed (logged, ERROR sent).
 */
static int ps_conn_next_frame(struct ps_conn *c, size_t max_payload, int64_t deadline,
                              struct kc_frame *f, size_t *consumed)
{
    struct kc_error e;

    for (;;) {
        size_t avail = c->in_len - c->in_start;
        int rc = kc_frame_decode(c->in + c->in_start, avail, max_payload, f, consumed, &e);

        if (rc == 0)
            return 0;
        if (rc != KC_EAGAIN)
            return ps_conn_fail(c, KC_PS_SQLSTATE_PROTOCOL, &e, true);
        if (c->out.len > 0 && ps_conn_flush(c, c->srv->opts.write_timeout_ms, &e) != 0) {
            kc_info("page service: dropping connection from %s: %s", c->peer, e.message);
            return -1;
        }
        if (atomic_load(&c->srv->stopping)) {
            kc_error_set(&e, KC_EIO, "the page service is shutting down");
            return ps_conn_fail(c, KC_PS_SQLSTATE_SHUTDOWN, &e, false);
        }
        ps_conn_reserve(c, kc_frame_wanted(c->in + c->in_start, avail));
        rc = ps_conn_fill(c, deadline, &e);
        if (rc == 1) {
            if (avail > 0)
                kc_warn("page service: connection from %s ended inside a frame (%zu bytes)",
                        c->peer, avail);
            return 1;
        }
        if (rc == KC_ETIMEDOUT) {
            kc_error_detail(&e, "The client sent no %s within the time limit.",
                            avail > 0 ? "complete message" : "message");
            return ps_conn_fail(c, KC_PS_SQLSTATE_PROTOCOL, &e, false);
        }
        if (rc != 0) {
            kc_info("page service: dropping connection from %s: %s", c->peer, e.message);
            return -1;
        }
    }
}

/* ---- handshake ------------------------------------------------------------ */

/* Fencing at the handshake: record hello's term, or refuse it when older. */
static int ps_fence_handshake(struct ps_conn *c, struct kc_error *err)
{
    struct ps_page_service *s = c->srv;
    uint8_t key[2 * KC_ID_LEN];
    uint64_t newest = 0;
    char tl[KC_ID_STRLEN];

    if (c->read_only)
        return 0;
    ps_term_key(&c->tenant, &c->timeline, key);
    pthread_rwlock_wrlock(&s->terms_lock);
    if (!kc_hmap_get(s->terms, key, &newest) || newest <= c->term) {
        kc_hmap_put(s->terms, key, c->term);
        newest = c->term;
    }
    pthread_rwlock_unlock(&s->terms_lock);
    if (c->term >= newest)
        return 0;
    kc_counter_inc(s->m_fenced);
    kc_error_set(err, KC_EINVAL, "compute term %llu is older than term %llu of timeline %s",
                 (unsigned long long)c->term, (unsigned long long)newest,
                 kc_id_format(&c->timeline, tl));
    kc_error_detail(err, "A compute with a newer term has connected to this timeline, so this "
                         "one was superseded.");
    kc_error_hint(err, "Stop this compute; only the newest one may read the timeline.");
    return KC_EINVAL;
}

/* Check a decoded HELLO: version, token, timeline, term. On failure, sqlstate is set. */
static int ps_accept_hello(struct ps_conn *c, const struct kc_ps_hello *h, uint16_t *version,
                           const char **sqlstate, struct kc_error *err)
{
    struct ps_page_service *s = c->srv;
    char ten[KC_ID_STRLEN], tl[KC_ID_STRLEN];
    int rc;

    *version = kc_ps_negotiate(h->min_version, h->max_version, KC_PS_PROTO_MIN, KC_PS_PROTO_MAX);
    if (*version == 0) {
        *sqlstate = KC_PS_SQLSTATE_VERSION;
        kc_error_set(err, KC_EVERSION, "unsupported page service protocol versions %u to %u",
                     h->min_version, h->max_version);
        kc_error_detail(err, "This pageserver speaks versions %d to %d.", KC_PS_PROTO_MIN,
                        KC_PS_PROTO_MAX);
        kc_error_hint(err, "Upgrade the compute or the pageserver so that their versions meet.");
        return KC_EVERSION;
    }
    if (s->be.authorize != NULL) {
        rc = s->be.authorize(s->be.arg, &h->tenant, &h->timeline, h->token, h->token_len, err);
        if (rc != 0) {
            *sqlstate = KC_PS_SQLSTATE_AUTH;
            return rc;
        }
    }
    rc = s->be.lookup(s->be.arg, &h->tenant, &h->timeline, &c->tl, err);
    if (rc != 0) {
        c->tl = NULL;
        *sqlstate = rc == KC_ENOTFOUND ? KC_PS_SQLSTATE_NO_TIMELINE : ps_sqlstate_of(rc);
        if (rc == KC_ENOTFOUND) {
            kc_error_set(err, rc, "timeline %s of tenant %s not found",
                         kc_id_format(&h->timeline, tl), kc_id_format(&h->tenant, ten));
            kc_error_hint(err, "Check the compute's tenant and timeline settings.");
        }
        return rc;
    }
    *sqlstate = KC_PS_SQLSTATE_STALE_TERM;
    return ps_fence_handshake(c, err);
}

/* Run the handshake. Returns 0 when the connection may serve requests. */
static int ps_conn_handshake(struct ps_conn *c)
{
    struct ps_page_service *s = c->srv;
    struct kc_frame f;
    struct kc_ps_hello h;
    struct kc_ps_hello_ok ok;
    struct kc_error e;
    const char *sqlstate = KC_PS_SQLSTATE_PROTOCOL;
    size_t consumed = 0;
    char ten[KC_ID_STRLEN], tl[KC_ID_STRLEN];
    int rc = ps_conn_next_frame(c, KC_FRAME_MAX_UNAUTH, ps_now_ms() + s->opts.handshake_timeout_ms,
                                &f, &consumed);

    if (rc != 0)
        return -1;
    if (f.type != KC_PS_MSG_HELLO) {
        kc_error_set(&e, KC_EPROTO, "expected HELLO as the first page service message, got %s",
                     kc_ps_msg_name(f.type));
        return ps_conn_fail(c, KC_PS_SQLSTATE_PROTOCOL, &e, true);
    }
    if (kc_ps_hello_decode(&f, &h, &e) != 0)
        return ps_conn_fail(c, KC_PS_SQLSTATE_PROTOCOL, &e, true);
    memcpy(c->name, h.name, sizeof(c->name));
    c->tenant = h.tenant;
    c->timeline = h.timeline;
    c->term = h.term;
    c->read_only = (h.flags & KC_PS_HELLO_READ_ONLY) != 0;
    c->in_start += consumed; /* h.token stays valid: c->in moves only at the next read */
    rc = ps_accept_hello(c, &h, &ok.version, &sqlstate, &e);
    if (rc == 0 && KC_FAILPOINT("pageserver.page_service.before-handshake-reply")) {
        sqlstate = KC_PS_SQLSTATE_INTERNAL;
        rc = kc_error_set(&e, KC_EFAILPOINT, "failpoint refused the page service handshake");
    }
    if (rc != 0)
        return ps_conn_fail(c, sqlstate, &e, false);
    ok.max_payload = s->opts.max_payload;
    if (kc_ps_hello_ok_encode(&c->out, &ok, &e) != 0)
        return ps_conn_fail(c, KC_PS_SQLSTATE_INTERNAL, &e, false);
    kc_info("page service: compute \"%s\" from %s connected to timeline %s of tenant %s, term "
            "%llu%s, protocol version %u",
            c->name, c->peer, kc_id_format(&c->timeline, tl), kc_id_format(&c->tenant, ten),
            (unsigned long long)c->term, c->read_only ? " (read-only)" : "", ok.version);
    return 0;
}

/* ---- requests ------------------------------------------------------------- */

/* Fencing per request: the connection's term must still be the newest. */
static int ps_fence_request(struct ps_conn *c, struct kc_error *err)
{
    uint64_t newest;
    char tl[KC_ID_STRLEN];

    if (c->read_only)
        return 0;
    newest = ps_page_service_term(c->srv, &c->tenant, &c->timeline);
    if (c->term >= newest)
        return 0;
    kc_counter_inc(c->srv->m_fenced);
    kc_error_set(err, KC_EINVAL, "compute term %llu is older than term %llu of timeline %s",
                 (unsigned long long)c->term, (unsigned long long)newest,
                 kc_id_format(&c->timeline, tl));
    kc_error_detail(err, "A compute with a newer term has connected to this timeline since this "
                         "connection was opened.");
    kc_error_hint(err, "Stop this compute; only the newest one may read the timeline.");
    return KC_EINVAL;
}

/*
 * Resolve the LSN to read at (the rules in page_service.h), waiting for WAL
 * when not_modified_since is ahead of ingestion. Returns 0 with *read_lsn
 * set; a negative code with err and *sqlstate set (an ERROR answer); or 1
 * when writing earlier answers failed (the connection is lost, err says why).
 */
static int ps_resolve_lsn(struct ps_conn *c, const struct kc_ps_request *q, kc_lsn *read_lsn,
                          const char **sqlstate, struct kc_error *err)
{
    struct ps_page_service *s = c->srv;
    kc_lsn last = s->be.last_lsn(s->be.arg, c->tl);
    int64_t start = ps_now_ms(), deadline = start + s->opts.wait_lsn_timeout_ms;
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    if (q->not_modified_since > last) {
        /* Do not hold back answers already computed while this one waits. */
        if (c->out.len > 0 && ps_conn_flush(c, s->opts.write_timeout_ms, err) != 0)
            return 1;
    }
    while (q->not_modified_since > last) {
        int64_t left = deadline - ps_now_ms();
        int rc = 0;

        if (atomic_load(&s->stopping)) {
            *sqlstate = KC_PS_SQLSTATE_SHUTDOWN;
            return kc_error_set(err, KC_EIO, "the page service is shutting down");
        }
        if (left <= 0 || KC_FAILPOINT("pageserver.page_service.wait-lsn")) {
            *sqlstate = KC_PS_SQLSTATE_WAIT_TIMEOUT;
            kc_error_set(err, KC_ETIMEDOUT, "timed out waiting for WAL up to %s",
                         kc_lsn_format(q->not_modified_since, a));
            kc_error_detail(err, "The pageserver had ingested WAL up to %s after %lld ms.",
                            kc_lsn_format(last, b), (long long)(ps_now_ms() - start));
            kc_error_hint(err, "Check that the safekeepers and the pageserver's WAL receiver "
                               "are running.");
            return KC_ETIMEDOUT;
        }
        rc = s->be.wait_lsn(s->be.arg, c->tl, q->not_modified_since,
                            left < PS_WAIT_SLICE_MS ? (int)left : PS_WAIT_SLICE_MS, err);
        last = s->be.last_lsn(s->be.arg, c->tl);
        if (rc == 0 && last < q->not_modified_since)
            last = q->not_modified_since; /* the backend said it is there */
        if (rc != 0 && rc != KC_ETIMEDOUT) {
            *sqlstate = ps_sqlstate_of(rc);
            return rc;
        }
    }
    *read_lsn = q->request_lsn < last ? q->request_lsn : last;
    return 0;
}

/* Call the backend for q at lsn and fill the answer r. */
static int ps_read(struct ps_conn *c, const struct kc_ps_request *q, kc_lsn lsn,
                   struct kc_ps_response *r, struct kc_error *err)
{
    struct ps_page_backend *be = &c->srv->be;

    r->type = kc_ps_response_type(q->type);
    switch (q->type) {
    case KC_PS_MSG_EXISTS: return be->exists(be->arg, c->tl, &q->rel, lsn, &r->exists, err);
    case KC_PS_MSG_NBLOCKS: return be->nblocks(be->arg, c->tl, &q->rel, lsn, &r->nblocks, err);
    case KC_PS_MSG_GETPAGE:
        r->data = c->page;
        return be->get_page(be->arg, c->tl, &q->rel, q->blkno, lsn, c->page, err);
    case KC_PS_MSG_DBSIZE: return be->dbsize(be->arg, c->tl, q->spc, q->db, lsn, &r->db_size, err);
    default:
        if (c->slru == NULL)
            c->slru = kc_malloc((size_t)KC_PS_SLRU_MAX_BLOCKS * KC_PS_BLCKSZ);
        r->data = c->slru;
        r->nblocks = 0;
        return be->slru_segment(be->arg, c->tl, q->slru_kind, q->segno, lsn, c->slru, &r->nblocks,
                                err);
    }
}

/*
 * Serve one request: append its answer or its ERROR to c->out. Returns 0,
 * or -1 when the connection broke while waiting (it is then closed).
 */
static int ps_serve(struct ps_conn *c, const struct kc_ps_request *q)
{
    struct ps_page_service *s = c->srv;
    unsigned t = (unsigned)(q->type - KC_PS_MSG_EXISTS);
    struct kc_ps_response r;
    struct kc_error e;
    const char *sqlstate = KC_PS_SQLSTATE_INVALID;
    double t0 = ps_now_s();
    kc_lsn lsn = 0;
    int rc;

    kc_error_clear(&e);
    memset(&r, 0, sizeof(r));
    kc_counter_inc(s->m_requests[t]);
    rc = ps_fence_request(c, &e);
    if (rc != 0)
        sqlstate = KC_PS_SQLSTATE_STALE_TERM;
    if (rc == 0) {
        rc = kc_ps_request_check_lsns(q, &e);
        sqlstate = KC_PS_SQLSTATE_BAD_LSN;
    }
    if (rc == 0) {
        rc = ps_resolve_lsn(c, q, &lsn, &sqlstate, &e);
        if (rc == 1) {
            kc_info("page service: dropping connection from %s: %s", c->peer, e.message);
            return -1;
        }
    }
    if (rc == 0) {
        rc = ps_read(c, q, lsn, &r, &e);
        sqlstate = ps_sqlstate_of(rc);
    }
    if (rc == 0 && KC_FAILPOINT("pageserver.page_service.before-reply")) {
        rc = kc_error_set(&e, KC_EFAILPOINT, "failpoint failed the page service request");
        sqlstate = KC_PS_SQLSTATE_INTERNAL;
    }
    if (rc == 0) {
        r.id = q->id;
        r.lsn = lsn;
        rc = kc_ps_response_encode(&c->out, &r, &e);
        if (rc != 0) { /* the backend's answer is out of range (e.g. > 32 SLRU pages) */
            kc_error_prefix(&e, "backend answer");
            sqlstate = KC_PS_SQLSTATE_INTERNAL;
        }
    }
    if (rc != 0) {
        kc_counter_inc(s->m_errors[t]);
        kc_ps_error_encode(&c->out, q->id, sqlstate, &e);
    }
    kc_histogram_observe(s->m_latency[t], ps_now_s() - t0);
    return 0;
}

/* Serve requests until the client leaves or the connection fails. */
static void ps_conn_serve(struct ps_conn *c)
{
    struct ps_page_service *s = c->srv;
    struct kc_frame f;
    struct kc_ps_request q;
    struct kc_error e;
    size_t consumed = 0;

    for (;;) {
        int64_t deadline = s->opts.idle_timeout_ms > 0 ? ps_now_ms() + s->opts.idle_timeout_ms : -1;
        int rc = ps_conn_next_frame(c, s->opts.max_payload, deadline, &f, &consumed);

        if (rc != 0)
            return;
        if (kc_ps_request_decode(&f, &q, &e) != 0) {
            ps_conn_fail(c, KC_PS_SQLSTATE_PROTOCOL, &e, true);
            return;
        }
        if (ps_serve(c, &q) != 0)
            return;
        c->in_start += consumed;
        if (c->out.len >= PS_FLUSH_THRESHOLD &&
            ps_conn_flush(c, s->opts.write_timeout_ms, &e) != 0) {
            kc_info("page service: dropping connection from %s: %s", c->peer, e.message);
            return;
        }
    }
}

static void *ps_conn_main(void *arg)
{
    struct ps_conn *c = arg;
    struct ps_page_service *s = c->srv;

    if (ps_conn_handshake(c) == 0)
        ps_conn_serve(c);
    kc_debug("page service: connection from %s closed", c->peer);
    shutdown(c->fd, SHUT_RDWR);
    if (c->tl != NULL && s->be.release != NULL)
        s->be.release(s->be.arg, c->tl);
    c->tl = NULL;
    free(c->in);
    c->in = NULL;
    free(c->slru);
    c->slru = NULL;
    kc_sbuf_fini(&c->out);
    pthread_mutex_lock(&s->lock);
    kc_gauge_dec(s->m_connections);
    c->done = true;
    s->nconns--;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- accepting ------------------------------------------------------------ */

/* Join and free the connections whose thread has finished (all when `all`). */
static void ps_reap(struct ps_page_service *s, bool all)
{
    struct ps_conn *dead = NULL, **pp;

    pthread_mutex_lock(&s->lock);
    pp = &s->conns;
    while (*pp != NULL) {
        struct ps_conn *c = *pp;
        if (all || c->done) {
            *pp = c->next;
            c->next = dead;
            dead = c;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&s->lock);
    while (dead != NULL) {
        struct ps_conn *c = dead;
        dead = c->next;
        pthread_join(c->thread, NULL);
        close(c->fd);
        free(c);
    }
}

static void ps_peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";

    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        (void)getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
                          NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(buf, len, "%s:%s", host, port);
}

/* Refuse fd at once: the server is full. */
static void ps_refuse(struct ps_page_service *s, int fd)
{
    struct kc_sbuf out = KC_SBUF_INIT;
    struct kc_error e;

    kc_error_set(&e, KC_EIO, "too many page service connections");
    kc_error_detail(&e, "The pageserver serves at most %u connections.", s->opts.max_connections);
    kc_ps_error_encode(&out, 0, KC_PS_SQLSTATE_TOO_MANY, &e);
    (void)!send(fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    kc_sbuf_fini(&out);
    close(fd);
}

static void ps_accept_one(struct ps_page_service *s)
{
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int one = 1;
    struct ps_conn *c;

    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            kc_warn("page service: cannot accept: %s", strerror(errno));
            usleep(10000); /* do not spin while out of descriptors */
        }
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (s->nconns >= s->opts.max_connections) {
        pthread_mutex_unlock(&s->lock);
        ps_refuse(s, fd);
        return;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = kc_calloc(1, sizeof(*c));
    c->srv = s;
    c->fd = fd;
    c->in_cap = PS_IN_INITIAL;
    c->in = kc_malloc(c->in_cap);
    ps_peer_name(fd, c->peer, sizeof(c->peer));
    if (pthread_create(&c->thread, NULL, ps_conn_main, c) != 0) {
        pthread_mutex_unlock(&s->lock);
        kc_warn("page service: cannot start a thread for %s", c->peer);
        free(c->in);
        free(c);
        close(fd);
        return;
    }
    c->next = s->conns;
    s->conns = c;
    s->nconns++;
    kc_gauge_inc(s->m_connections);
    pthread_mutex_unlock(&s->lock);
}

static void *ps_accept_main(void *arg)
{
    struct ps_page_service *s = arg;

    while (!atomic_load(&s->stopping)) {
        struct pollfd p[2] = {{.fd = s->listen_fd, .events = POLLIN},
                              {.fd = s->wake[0], .events = POLLIN}};

        if (poll(p, 2, 1000) > 0 && (p[0].revents & POLLIN) != 0 && !atomic_load(&s->stopping))
            ps_accept_one(s);
        ps_reap(s, false);
    }
    return NULL;
}

/* ---- start and stop ------------------------------------------------------- */

static int ps_register_metrics(struct ps_page_service *s, struct kc_error *err)
{
    struct kc_metrics_registry *r = s->opts.registry;
    struct kc_counter_vec *req = NULL, *errs = NULL;
    struct kc_histogram_vec *lat = NULL;
    int rc = kc_counter_vec_register(r, "kelp_pageserver_page_requests_total",
                                     "Page service requests received, by type.", KC_LABELS("type"),
                                     &req, err);

    if (rc == 0)
        rc = kc_counter_vec_register(r, "kelp_pageserver_page_request_errors_total",
                                     "Page service requests answered with an error, by type.",
                                     KC_LABELS("type"), &errs, err);
    if (rc == 0)
        rc = kc_histogram_vec_register(
            r, "kelp_pageserver_page_request_seconds",
            "Time from receiving a page service request to its answer, waits included.",
            KC_LABELS("type"), NULL, 0, &lat, err);
    if (rc == 0)
        rc = kc_gauge_register(r, "kelp_pageserver_page_connections",
                               "Open page service connections.", &s->m_connections, err);
    if (rc == 0)
        rc = kc_counter_register(r, "kelp_pageserver_page_protocol_errors_total",
                                 "Page service connections closed for malformed input.",
                                 &s->m_protocol_errors, err);
    if (rc == 0)
        rc = kc_counter_register(r, "kelp_pageserver_page_fenced_total",
                                 "Page service handshakes and requests refused for a stale term.",
                                 &s->m_fenced, err);
    for (unsigned i = 0; rc == 0 && i < PS_NTYPES; i++) {
        rc = kc_counter_vec_get(req, KC_LABELS(ps_type_labels[i]), &s->m_requests[i], err);
        if (rc == 0)
            rc = kc_counter_vec_get(errs, KC_LABELS(ps_type_labels[i]), &s->m_errors[i], err);
        if (rc == 0)
            rc = kc_histogram_vec_get(lat, KC_LABELS(ps_type_labels[i]), &s->m_latency[i], err);
    }
    return rc;
}

void ps_page_service_options_init(struct ps_page_service_options *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->wait_lsn_timeout_ms = 30000;
    o->handshake_timeout_ms = 10000;
    o->write_timeout_ms = 60000;
    o->max_connections = 1024;
    o->max_payload = KC_FRAME_MAX_DEFAULT;
}

static int ps_check_config(const struct ps_page_service_options *o,
                           const struct ps_page_backend *be, struct kc_error *err)
{
    if (be->lookup == NULL || be->last_lsn == NULL || be->wait_lsn == NULL ||
        be->get_page == NULL || be->nblocks == NULL || be->exists == NULL || be->dbsize == NULL ||
        be->slru_segment == NULL)
        return kc_error_set(err, KC_EINVAL, "page service backend lacks a required callback");
    if (o->host == NULL || o->wait_lsn_timeout_ms <= 0 || o->handshake_timeout_ms <= 0 ||
        o->write_timeout_ms <= 0 || o->idle_timeout_ms < 0 || o->max_connections == 0 ||
        o->max_payload < 1024) {
        kc_error_set(err, KC_EINVAL, "invalid page service options");
        kc_error_detail(err, "Timeouts must be positive (the idle timeout may be 0), "
                             "max_connections at least 1 and max_payload at least 1024.");
        return KC_EINVAL;
    }
    return 0;
}

static int ps_listen(struct ps_page_service *s, struct kc_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char port[8];
    int one = 1, rc;

    snprintf(port, sizeof(port), "%u", s->opts.port);
    rc = getaddrinfo(s->host, port, &hints, &res);
    if (rc != 0)
        return kc_error_set(err, KC_EINVAL,
                            "could not resolve page service listen address "
                            "\"%s\": %s",
                            s->host, gai_strerror(rc));
    s->listen_fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0 ||
        setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(s->listen_fd, res->ai_addr, res->ai_addrlen) != 0 || listen(s->listen_fd, 128) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) != 0) {
        kc_error_set(err, KC_EIO, "could not listen on %s:%u for the page service: %s", s->host,
                     s->opts.port, strerror(errno));
        freeaddrinfo(res);
        return KC_EIO;
    }
    freeaddrinfo(res);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

/* Free what start created (threads are not running). */
static void ps_free(struct ps_page_service *s)
{
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    kc_hmap_destroy(s->terms);
    pthread_rwlock_destroy(&s->terms_lock);
    pthread_mutex_destroy(&s->lock);
    free(s->host);
    free(s);
}

int ps_page_service_start(const struct ps_page_service_options *o,
                          const struct ps_page_backend *backend, struct ps_page_service **out,
                          struct kc_error *err)
{
    struct ps_page_service *s;
    int rc = ps_check_config(o, backend, err);

    *out = NULL;
    if (rc != 0)
        return rc;
    s = kc_calloc(1, sizeof(*s));
    s->opts = *o;
    s->host = kc_strdup(o->host);
    s->opts.host = s->host;
    s->be = *backend;
    s->listen_fd = s->wake[0] = s->wake[1] = -1;
    atomic_init(&s->stopping, false);
    pthread_mutex_init(&s->lock, NULL);
    pthread_rwlock_init(&s->terms_lock, NULL);
    s->terms = kc_hmap_create(2 * KC_ID_LEN);
    rc = ps_register_metrics(s, err);
    if (rc == 0)
        rc = ps_listen(s, err);
    if (rc == 0 && pipe2(s->wake, O_CLOEXEC) != 0)
        rc = kc_error_set(err, KC_EIO, "could not create a pipe: %s", strerror(errno));
    if (rc == 0 && pthread_create(&s->accept_thread, NULL, ps_accept_main, s) != 0)
        rc = kc_error_set(err, KC_EIO, "could not start the page service accept thread");
    if (rc != 0) {
        ps_free(s);
        return rc;
    }
    kc_info("page service listening on %s:%u", s->host, s->port);
    *out = s;
    return 0;
}

uint16_t ps_page_service_port(const struct ps_page_service *s)
{
    return s->port;
}

unsigned ps_page_service_connections(struct ps_page_service *s)
{
    unsigned n;

    pthread_mutex_lock(&s->lock);
    n = s->nconns;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* shutdown(2) every connection's socket, waking the threads blocked on it. */
static void ps_shutdown_all(struct ps_page_service *s, int how)
{
    pthread_mutex_lock(&s->lock);
    for (struct ps_conn *c = s->conns; c != NULL; c = c->next)
        if (!c->done)
            shutdown(c->fd, how);
    pthread_mutex_unlock(&s->lock);
}

void ps_page_service_stop(struct ps_page_service *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stopping, true);
    (void)!write(s->wake[1], "x", 1);
    pthread_join(s->accept_thread, NULL);
    /* Wake readers and let every connection deliver its last answers (57P01 for waits)... */
    ps_shutdown_all(s, SHUT_RD);
    for (int64_t deadline = ps_now_ms() + PS_STOP_GRACE_MS;
         ps_page_service_connections(s) > 0 && ps_now_ms() < deadline;)
        usleep(5000);
    /* ...then cut off writers still blocked on clients that do not read. */
    ps_shutdown_all(s, SHUT_RDWR);
    ps_reap(s, true);
    kc_info("page service on %s:%u stopped", s->host, s->port);
    ps_free(s);
}
