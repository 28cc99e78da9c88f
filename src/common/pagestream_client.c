/* SPDX-License-Identifier: Apache-2.0 */
/* pagestream_client.c -- blocking page service client: connect, handshake, pipelined requests. */
#include "common/pagestream_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/frame.h"

/* A request sent or queued and not yet answered. */
struct kc_ps_pending {
    uint64_t id;   /* the request's id */
    uint16_t type; /* the request's type */
};

struct kc_ps_client {
    int fd;                     /* non-blocking TCP socket */
    int timeout_ms;             /* per-call bound on waiting */
    bool broken;                /* an error left the stream unusable */
    uint16_t version;           /* negotiated version, 0 before the handshake */
    struct kc_sbuf out;         /* encoded requests not yet sent */
    uint8_t *in;                /* received bytes */
    size_t in_cap;              /* bytes allocated at in */
    size_t in_start;            /* first byte not yet consumed */
    size_t in_len;              /* bytes received (in[in_start..in_len) are unconsumed) */
    size_t in_drop;             /* bytes of the last returned frame, dropped at the next read */
    struct kc_ps_pending *pend; /* ring of pending requests */
    size_t pend_cap;            /* ring size (a power of two, or 0) */
    size_t pend_head;           /* index of the oldest */
    size_t pend_count;          /* entries in the ring */
    char sqlstate[KC_PS_SQLSTATE_LEN + 1]; /* of the last ERROR, "" when none */
};

static int64_t kc_psc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Mark c broken and return code (err already filled by the caller). */
static int kc_psc_break(struct kc_ps_client *c, int code)
{
    c->broken = true;
    return code;
}

static int kc_psc_check_usable(struct kc_ps_client *c, struct kc_error *err)
{
    if (c->broken)
        return kc_error_set(err, KC_EIO, "page service connection is broken by an earlier error");
    return 0;
}

/* Wait until fd is ready for events or the deadline passes. */
static int kc_psc_wait(struct kc_ps_client *c, short events, int64_t deadline, const char *what,
                       struct kc_error *err)
{
    for (;;) {
        int64_t left = deadline - kc_psc_now_ms();
        struct pollfd p = {.fd = c->fd, .events = events};
        int n;

        if (left <= 0) {
            kc_error_set(err, KC_ETIMEDOUT, "timed out %s the page service after %d ms", what,
                         c->timeout_ms);
            return kc_psc_break(c, KC_ETIMEDOUT);
        }
        n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR) {
            kc_error_set(err, KC_EIO, "could not poll the page service socket: %s",
                         strerror(errno));
            return kc_psc_break(c, KC_EIO);
        }
    }
}

static int kc_psc_connect_addr(const struct addrinfo *ai, int timeout_ms, int *fd_out,
                               struct kc_error *err)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1, soerr = 0;
    socklen_t len = sizeof(soerr);
    struct pollfd p;

    if (fd < 0)
        return kc_error_set(err, KC_EIO, "could not create a socket: %s", strerror(errno));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            kc_error_set(err, KC_EIO, "could not connect to the page service: %s", strerror(errno));
            close(fd);
            return KC_EIO;
        }
        p = (struct pollfd){.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, timeout_ms) <= 0) {
            kc_error_set(err, KC_ETIMEDOUT, "timed out connecting to the page service after %d ms",
                         timeout_ms);
            close(fd);
            return KC_ETIMEDOUT;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
            kc_error_set(err, KC_EIO, "could not connect to the page service: %s",
                         strerror(soerr != 0 ? soerr : errno));
            close(fd);
            return KC_EIO;
        }
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *fd_out = fd;
    return 0;
}

int kc_ps_client_connect(const char *host, uint16_t port, int timeout_ms, struct kc_ps_client **out,
                         struct kc_error *err)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    int rc, fd = -1;
    struct kc_ps_client *c;

    *out = NULL;
    if (timeout_ms <= 0)
        return kc_error_set(err, KC_EINVAL, "page service client timeout must be positive");
    snprintf(portstr, sizeof(portstr), "%u", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        kc_error_set(err, KC_EINVAL, "could not resolve page service host \"%s\": %s", host,
                     gai_strerror(rc));
        return KC_EINVAL;
    }
    rc = KC_EIO;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        rc = kc_psc_connect_addr(ai, timeout_ms, &fd, err);
        if (rc == 0)
            break;
    }
    freeaddrinfo(res);
    if (rc != 0) {
        kc_error_prefix(err, "%s:%u", host, port);
        return rc;
    }
    c = kc_calloc(1, sizeof(*c));
    c->fd = fd;
    c->timeout_ms = timeout_ms;
    c->in_cap = 65536;
    c->in = kc_malloc(c->in_cap);
    *out = c;
    return 0;
}

void kc_ps_client_close(struct kc_ps_client *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    kc_sbuf_fini(&c->out);
    free(c->in);
    free(c->pend);
    free(c);
}

void kc_ps_client_set_timeout(struct kc_ps_client *c, int timeout_ms)
{
    if (timeout_ms > 0)
        c->timeout_ms = timeout_ms;
}

int kc_ps_client_fd(const struct kc_ps_client *c)
{
    return c->fd;
}

uint16_t kc_ps_client_version(const struct kc_ps_client *c)
{
    return c->version;
}

const char *kc_ps_client_sqlstate(const struct kc_ps_client *c)
{
    return c->sqlstate;
}

size_t kc_ps_client_pending(const struct kc_ps_client *c)
{
    return c->pend_count;
}

int kc_ps_client_flush(struct kc_ps_client *c, struct kc_error *err)
{
    size_t sent = 0;
    int64_t deadline = kc_psc_now_ms() + c->timeout_ms;
    int rc = kc_psc_check_usable(c, err);

    while (rc == 0 && sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + sent, c->out.len - sent, MSG_NOSIGNAL);

        if (n > 0) {
            sent += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = kc_psc_wait(c, POLLOUT, deadline, "sending to", err);
        } else if (n < 0 && errno != EINTR) {
            kc_error_set(err, KC_EIO, "could not send to the page service: %s", strerror(errno));
            rc = kc_psc_break(c, KC_EIO);
        }
    }
    kc_sbuf_reset(&c->out);
    return rc;
}

/* Make room for `want` unconsumed bytes in c->in (compacting first). */
static void kc_psc_reserve(struct kc_ps_client *c, size_t want)
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
 * Read the next frame, waiting for bytes as needed; *f points into c->in
 * until the next call. max_payload bounds the frame.
 */
static int kc_psc_read_frame(struct kc_ps_client *c, size_t max_payload, struct kc_frame *f,
                             struct kc_error *err)
{
    int64_t deadline = kc_psc_now_ms() + c->timeout_ms;

    c->in_start += c->in_drop;
    c->in_drop = 0;
    for (;;) {
        size_t consumed = 0, avail = c->in_len - c->in_start;
        int rc = kc_frame_decode(c->in + c->in_start, avail, max_payload, f, &consumed, err);
        ssize_t n;

        if (rc == 0) {
            c->in_drop = consumed;
            return 0;
        }
        if (rc != KC_EAGAIN) {
            kc_error_prefix(err, "page service answer");
            return kc_psc_break(c, rc);
        }
        kc_psc_reserve(c, kc_frame_wanted(c->in + c->in_start, avail));
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
        } else if (n == 0) {
            kc_error_set(err, KC_EIO, "the page service closed the connection");
            if (avail > 0)
                kc_error_detail(err, "It closed in the middle of a frame, after %zu bytes.", avail);
            return kc_psc_break(c, KC_EIO);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            rc = kc_psc_wait(c, POLLIN, deadline, "receiving from", err);
            if (rc != 0)
                return rc;
        } else if (errno != EINTR) {
            kc_error_set(err, KC_EIO, "could not receive from the page service: %s",
                         strerror(errno));
            return kc_psc_break(c, KC_EIO);
        }
    }
}

/* Copy the texts of an ERROR answer into err and return its code. */
static int kc_psc_server_error(struct kc_ps_client *c, const struct kc_ps_response *r,
                               struct kc_error *err)
{
    int code = kc_ps_sqlstate_to_code(r->sqlstate);

    memcpy(c->sqlstate, r->sqlstate, sizeof(c->sqlstate));
    kc_error_set(err, code, "%s", r->error.message);
    if (r->error.detail[0] != '\0')
        kc_error_detail(err, "%s", r->error.detail);
    if (r->error.hint[0] != '\0')
        kc_error_hint(err, "%s", r->error.hint);
    return code;
}

int kc_ps_client_handshake(struct kc_ps_client *c, const struct kc_ps_hello *hello,
                           struct kc_error *err)
{
    struct kc_frame f;
    struct kc_ps_hello_ok ok;
    struct kc_ps_response resp;
    int rc = kc_psc_check_usable(c, err);

    if (rc == 0 && c->version != 0)
        return kc_error_set(err, KC_EINVAL, "page service handshake is already done");
    if (rc == 0)
        rc = kc_ps_hello_encode(&c->out, hello, err);
    if (rc == 0)
        rc = kc_ps_client_flush(c, err);
    if (rc == 0)
        rc = kc_psc_read_frame(c, KC_FRAME_MAX_UNAUTH, &f, err);
    if (rc != 0)
        return rc;
    if (f.type == KC_PS_MSG_ERROR) {
        if (kc_ps_response_decode(&f, &resp, err) != 0)
            return kc_psc_break(c, KC_EPROTO);
        return kc_psc_break(c, kc_psc_server_error(c, &resp, err));
    }
    if (kc_ps_hello_ok_decode(&f, &ok, err) != 0)
        return kc_psc_break(c, KC_EPROTO);
    if (ok.version < hello->min_version || ok.version > hello->max_version) {
        kc_error_set(err, KC_EPROTO, "the page service chose protocol version %u, outside %u to %u",
                     ok.version, hello->min_version, hello->max_version);
        return kc_psc_break(c, KC_EPROTO);
    }
    c->version = ok.version;
    return 0;
}

int kc_ps_client_queue(struct kc_ps_client *c, const struct kc_ps_request *req,
                       struct kc_error *err)
{
    int rc = kc_psc_check_usable(c, err);

    if (rc != 0)
        return rc;
    if (c->version == 0)
        return kc_error_set(err, KC_EIO, "page service request before the handshake");
    rc = kc_ps_request_encode(&c->out, req, err);
    if (rc != 0)
        return rc;
    if (c->pend_count == c->pend_cap) {
        size_t cap = c->pend_cap == 0 ? 64 : c->pend_cap * 2;
        struct kc_ps_pending *p = kc_malloc(cap * sizeof(*p));

        for (size_t i = 0; i < c->pend_count; i++)
            p[i] = c->pend[(c->pend_head + i) & (c->pend_cap - 1)];
        free(c->pend);
        c->pend = p;
        c->pend_cap = cap;
        c->pend_head = 0;
    }
    c->pend[(c->pend_head + c->pend_count) & (c->pend_cap - 1)] =
        (struct kc_ps_pending){.id = req->id, .type = req->type};
    c->pend_count++;
    return 0;
}

int kc_ps_client_recv(struct kc_ps_client *c, struct kc_ps_response *resp, struct kc_error *err)
{
    struct kc_frame f;
    struct kc_ps_pending p;
    int rc = kc_psc_check_usable(c, err);

    if (rc == 0 && c->pend_count == 0)
        rc = kc_error_set(err, KC_EIO, "no page service request is waiting for an answer");
    if (rc == 0 && c->out.len > 0)
        rc = kc_ps_client_flush(c, err);
    if (rc == 0)
        rc = kc_psc_read_frame(c, KC_FRAME_MAX_DEFAULT, &f, err);
    if (rc != 0)
        return rc;
    if (kc_ps_response_decode(&f, resp, err) != 0)
        return kc_psc_break(c, KC_EPROTO);
    p = c->pend[c->pend_head];
    if (resp->type == KC_PS_MSG_ERROR && resp->id == 0)
        return kc_psc_break(c, kc_psc_server_error(c, resp, err));
    if (resp->id != p.id ||
        (resp->type != KC_PS_MSG_ERROR && resp->type != kc_ps_response_type(p.type))) {
        kc_error_set(err, KC_EPROTO, "page service answer out of order");
        kc_error_detail(err, "Expected the answer to %s request %llu, got %s for request %llu.",
                        kc_ps_msg_name(p.type), (unsigned long long)p.id,
                        kc_ps_msg_name(resp->type), (unsigned long long)resp->id);
        return kc_psc_break(c, KC_EPROTO);
    }
    c->pend_head = (c->pend_head + 1) & (c->pend_cap - 1);
    c->pend_count--;
    if (resp->type == KC_PS_MSG_ERROR)
        memcpy(c->sqlstate, resp->sqlstate, sizeof(c->sqlstate));
    return 0;
}

int kc_ps_client_call(struct kc_ps_client *c, const struct kc_ps_request *req,
                      struct kc_ps_response *resp, struct kc_error *err)
{
    int rc = 0;

    if (c->pend_count != 0)
        return kc_error_set(err, KC_EINVAL, "page service call with %zu requests still pending",
                            c->pend_count);
    rc = kc_ps_client_queue(c, req, err);
    if (rc == 0)
        rc = kc_ps_client_recv(c, resp, err);
    if (rc == 0 && resp->type == KC_PS_MSG_ERROR)
        rc = kc_psc_server_error(c, resp, err);
    return rc;
}
