/* SPDX-License-Identifier: Apache-2.0 */
/* http_gate.c -- frames and screens HTTP/1.x request heads in front of libevent's parser. */
#include "common/http_gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/alloc.h"
#include "common/buf.h"

/* Methods passed on to libevent; every other one gets 501. */
static const char *const hg_methods[] = {"GET",    "HEAD",  "POST",   "PUT",
                                         "DELETE", "PATCH", "OPTIONS"};

#define HG_TOKEN_MAX 16 /* longest method token before it is called malformed */

/* ---- the head scanner --------------------------------------------------- */

/* Record the HTTP status of a rejection; returns code (from kc_error_set). */
static int hg_fail(struct kc_http_head *out, int status, int code)
{
    out->status = status;
    return code;
}

/* A byte no request head may hold: controls other than HTAB, and DEL. */
static bool hg_is_ctl(uint8_t c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* RFC 9110 tchar: the bytes of a header name or method. */
static bool hg_is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/*
 * Take the next line from b: *line and *len get its bytes without the LF
 * and without one CR before it. False, consuming nothing, when b holds no LF.
 */
static bool hg_next_line(struct kc_buf *b, const uint8_t **line, size_t *len)
{
    const uint8_t *start = b->data + b->pos;
    const uint8_t *lf = memchr(start, '\n', kc_buf_remaining(b));
    size_t n;

    if (lf == NULL)
        return false;
    n = (size_t)(lf - start);
    if (!kc_buf_get_ref(b, line, n) || !kc_buf_skip(b, 1))
        return false;
    if (n > 0 && (*line)[n - 1] == '\r')
        n--;
    *len = n;
    return true;
}

/* 400 when line[0..len) holds a control byte (a lone CR included). */
static int hg_check_bytes(const uint8_t *line, size_t len, struct kc_http_head *out,
                          struct kc_error *err)
{
    for (size_t i = 0; i < len; i++)
        if (hg_is_ctl(line[i]))
            return hg_fail(
                out, 400,
                kc_error_set(err, KC_EPROTO, "invalid byte 0x%02x in the request head", line[i]));
    return 0;
}

static bool hg_token_eq(const uint8_t *p, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp((const char *)p, word, len) == 0;
}

/* Parse "METHOD SP /target SP HTTP/1.x" into out->method; *http11 tells the version. */
static int hg_request_line(const uint8_t *line, size_t len, struct kc_http_head *out, bool *http11,
                           struct kc_error *err)
{
    const uint8_t *sp1 = memchr(line, ' ', len), *sp2, *target, *version;
    size_t mlen, tlen, vlen;

    if (sp1 == NULL)
        return hg_fail(out, 400, kc_error_set(err, KC_EPROTO, "malformed request line"));
    mlen = (size_t)(sp1 - line);
    for (size_t i = 0; i < mlen; i++)
        if (line[i] < 'A' || line[i] > 'Z')
            return hg_fail(out, 400, kc_error_set(err, KC_EPROTO, "malformed request method"));
    if (mlen == 0 || mlen > HG_TOKEN_MAX)
        return hg_fail(out, 400, kc_error_set(err, KC_EPROTO, "malformed request method"));
    for (size_t i = 0; i < KC_ARRAY_LEN(hg_methods); i++) {
        if (strlen(hg_methods[i]) == mlen && memcmp(hg_methods[i], line, mlen) == 0) {
            memcpy(out->method, line, mlen);
            out->method[mlen] = '\0';
            break;
        }
    }
    if (out->method[0] == '\0') {
        hg_fail(out, 501,
                kc_error_set(err, KC_EPROTO, "unsupported HTTP method \"%.*s\"", (int)mlen, line));
        kc_error_hint(err, "Use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS.");
        return KC_EPROTO;
    }
    target = sp1 + 1;
    sp2 = memchr(target, ' ', len - mlen - 1);
    if (sp2 == NULL)
        return hg_fail(out, 400, kc_error_set(err, KC_EPROTO, "malformed request line"));
    tlen = (size_t)(sp2 - target);
    if (tlen == 0 || target[0] != '/')
        return hg_fail(out, 400,
                       kc_error_set(err, KC_EPROTO, "request target is not an absolute path"));
    for (size_t i = 0; i < tlen; i++)
        if (target[i] < 0x21 || target[i] > 0x7e)
            return hg_fail(out, 400,
                           kc_error_set(err, KC_EPROTO, "invalid byte 0x%02x in the request target",
                                        target[i]));
    version = sp2 + 1;
    vlen = len - (size_t)(version - line);
    if (vlen == 8 && memcmp(version, "HTTP/1.", 7) == 0 &&
        (version[7] == '0' || version[7] == '1')) {
        *http11 = version[7] == '1';
        return 0;
    }
    if (vlen == 8 && memcmp(version, "HTTP/", 5) == 0 && version[5] >= '0' && version[5] <= '9' &&
        version[6] == '.' && version[7] >= '0' && version[7] <= '9')
        return hg_fail(out, 505,
                       kc_error_set(err, KC_EVERSION, "unsupported HTTP version \"%.8s\"",
                                    (const char *)version));
    return hg_fail(out, 400, kc_error_set(err, KC_EPROTO, "malformed request line"));
}

/* Parse a decimal Content-Length of 1 to 18 digits. */
static bool hg_parse_length(const uint8_t *v, size_t len, uint64_t *out)
{
    uint64_t n = 0;

    if (len == 0 || len > 18)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    *out = n;
    return true;
}

/* Check one header line; note Content-Length and Expect in out. */
static int hg_header_line(const uint8_t *line, size_t len, bool http11, bool *have_length,
                          struct kc_http_head *out, struct kc_error *err)
{
    const uint8_t *colon = memchr(line, ':', len), *v;
    size_t nlen, vlen;

    if (line[0] == ' ' || line[0] == '\t')
        return hg_fail(out, 400,
                       kc_error_set(err, KC_EPROTO, "folded header lines are not supported"));
    if (colon == NULL)
        return hg_fail(out, 400, kc_error_set(err, KC_EPROTO, "header line without a colon"));
    nlen = (size_t)(colon - line);
    for (size_t i = 0; i < nlen; i++)
        if (!hg_is_tchar(line[i]))
            return hg_fail(out, 400, kc_error_set(err, KC_EPROTO, "malformed header name"));
    if (nlen == 0)
        return hg_fail(out, 400, kc_error_set(err, KC_EPROTO, "malformed header name"));
    v = colon + 1;
    vlen = len - nlen - 1;
    while (vlen > 0 && (v[0] == ' ' || v[0] == '\t'))
        v++, vlen--;
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;

    if (hg_token_eq(line, nlen, "Content-Length")) {
        if (*have_length)
            return hg_fail(out, 400,
                           kc_error_set(err, KC_EPROTO, "more than one Content-Length header"));
        if (!hg_parse_length(v, vlen, &out->content_length))
            return hg_fail(out, 400, kc_error_set(err, KC_EPROTO, "invalid Content-Length"));
        *have_length = true;
    } else if (hg_token_eq(line, nlen, "Transfer-Encoding")) {
        hg_fail(out, 411,
                kc_error_set(err, KC_EPROTO,
                             "request bodies with Transfer-Encoding are not supported"));
        kc_error_hint(err, "Send the body with a Content-Length header.");
        return KC_EPROTO;
    } else if (hg_token_eq(line, nlen, "Expect") && http11) {
        if (!hg_token_eq(v, vlen, "100-continue"))
            return hg_fail(out, 417, kc_error_set(err, KC_EPROTO, "unsupported Expect header"));
        out->expect_continue = true;
    }
    return 0;
}

/* The head is incomplete: reject what is already wrong, else ask for more. */
static int hg_incomplete(const uint8_t *rest, size_t rlen, size_t seen, size_t max_head,
                         struct kc_http_head *out, struct kc_error *err)
{
    if (seen >= max_head) {
        hg_fail(out, 431, kc_error_set(err, KC_ETOOBIG, "request head too large"));
        kc_error_detail(err, "The request line and headers exceed %zu bytes.", max_head);
        return KC_ETOOBIG;
    }
    /* A CR at the very end may still be followed by its LF. */
    if (rlen > 0 && rest[rlen - 1] == '\r')
        rlen--;
    if (hg_check_bytes(rest, rlen, out, err) != 0)
        return KC_EPROTO;
    return KC_EAGAIN;
}

int kc_http_head_scan(const uint8_t *data, size_t len, size_t max_head, uint64_t max_body,
                      struct kc_http_head *out, struct kc_error *err)
{
    struct kc_buf b;
    const uint8_t *line;
    size_t llen;
    bool http11 = false, have_length = false;
    int rc;

    memset(out, 0, sizeof(*out));
    kc_buf_init(&b, data, len < max_head ? len : max_head);
    if (!hg_next_line(&b, &line, &llen)) {
        /* Reject an impossible method early, so garbage is answered at once. */
        for (size_t i = 0; i < b.len && data[i] != ' '; i++)
            if (data[i] < 'A' || data[i] > 'Z' || i >= HG_TOKEN_MAX)
                return hg_fail(out, 400, kc_error_set(err, KC_EPROTO, "malformed request method"));
        return hg_incomplete(data, b.len, b.len, max_head, out, err);
    }
    if ((rc = hg_check_bytes(line, llen, out, err)) != 0 ||
        (rc = hg_request_line(line, llen, out, &http11, err)) != 0)
        return rc;
    for (;;) {
        if (!hg_next_line(&b, &line, &llen))
            return hg_incomplete(b.data + b.pos, kc_buf_remaining(&b), b.len, max_head, out, err);
        if (llen == 0)
            break;
        if ((rc = hg_check_bytes(line, llen, out, err)) != 0 ||
            (rc = hg_header_line(line, llen, http11, &have_length, out, err)) != 0)
            return rc;
    }
    out->len = b.pos;
    if (strcmp(out->method, "HEAD") == 0 && out->content_length > 0)
        return hg_fail(out, 400, kc_error_set(err, KC_EPROTO, "a HEAD request cannot have a body"));
    if (out->content_length > max_body) {
        hg_fail(out, 413, kc_error_set(err, KC_ETOOBIG, "request body too large"));
        kc_error_detail(err, "The body has %llu bytes; the limit is %llu bytes.",
                        (unsigned long long)out->content_length, (unsigned long long)max_body);
        return KC_ETOOBIG;
    }
    return 0;
}

/* ---- the connection filter ---------------------------------------------- */

enum hg_state {
    HG_HEAD,  /* waiting for (the rest of) a request head */
    HG_BODY,  /* passing `remaining` body bytes through */
    HG_DRAIN, /* dropping `remaining` bytes of an oversized body, then rejecting */
    HG_CLOSED /* rejected: the synthetic request was sent; drop everything */
};

struct kc_http_gate {
    struct kc_http_gates *set;        /* shared limits; holds a reference */
    struct kc_http_gate *prev, *next; /* in set->first */
    struct bufferevent *bev;          /* the filter bufferevent holding this gate */
    struct bufferevent *sock;         /* the socket bufferevent under it (reads only) */
    struct event *kick;               /* runs hg_kick_cb() from the loop */
    struct event *writable;           /* waits for the socket to take more reply bytes */
    enum hg_state state;
    size_t max_head; /* the set's limits when the connection was accepted */
    uint64_t max_body;
    uint64_t remaining;    /* bytes left to pass (HG_BODY) or drop (HG_DRAIN) */
    int status;            /* HTTP status of the rejection */
    struct kc_error error; /* the rejection, once state is HG_DRAIN or HG_CLOSED */
};

struct kc_http_gates {
    size_t max_head;            /* request line + headers */
    uint64_t max_body;          /* Content-Length */
    char secret[65];            /* marks the synthetic request */
    int refs;                   /* the server until released, plus one per live gate */
    struct kc_http_gate *first; /* live gates (one per open connection) */
};

struct kc_http_gates *kc_http_gates_create(size_t max_head, uint64_t max_body, const char *secret)
{
    struct kc_http_gates *set = kc_calloc(1, sizeof(*set));

    set->max_head = max_head;
    set->max_body = max_body;
    snprintf(set->secret, sizeof(set->secret), "%s", secret);
    set->refs = 1;
    return set;
}

void kc_http_gates_set_limits(struct kc_http_gates *set, size_t max_head, uint64_t max_body)
{
    set->max_head = max_head;
    set->max_body = max_body;
}

static void hg_set_unref(struct kc_http_gates *set)
{
    if (--set->refs == 0)
        free(set);
}

void kc_http_gates_release(struct kc_http_gates *set)
{
    if (set != NULL)
        hg_set_unref(set);
}

/* Queue the synthetic request that makes the server answer the rejection. */
static void hg_send_rejection(struct kc_http_gate *g, struct evbuffer *dst)
{
    evbuffer_add_printf(dst,
                        "GET %s HTTP/1.1\r\nHost: localhost\r\n%s: %s\r\nConnection: close\r\n\r\n",
                        KC_HTTP_GATE_PATH, KC_HTTP_GATE_HEADER, g->set->secret);
    g->state = HG_CLOSED;
}

/* HG_HEAD: scan what has arrived and pass, reject or wait. */
static enum bufferevent_filter_result hg_head(struct kc_http_gate *g, struct evbuffer *src,
                                              struct evbuffer *dst)
{
    size_t avail = evbuffer_get_length(src);
    size_t n = avail < g->max_head ? avail : g->max_head;
    const uint8_t *p = evbuffer_pullup(src, (ev_ssize_t)n);
    struct kc_http_head head;
    int rc;

    if (p == NULL)
        return BEV_ERROR;
    rc = kc_http_head_scan(p, n, g->max_head, g->max_body, &head, &g->error);
    if (rc == KC_EAGAIN)
        return BEV_NEED_MORE;
    if (rc == 0) {
        evbuffer_remove_buffer(src, dst, head.len);
        g->remaining = head.content_length;
        g->state = g->remaining > 0 ? HG_BODY : HG_HEAD;
        return BEV_OK;
    }
    g->status = head.status;
    if (head.status == 413 && !head.expect_continue &&
        head.content_length <= KC_HTTP_GATE_DRAIN_MAX) {
        evbuffer_drain(src, head.len);
        g->remaining = head.content_length;
        g->state = HG_DRAIN;
        return BEV_OK;
    }
    evbuffer_drain(src, avail);
    hg_send_rejection(g, dst);
    return BEV_OK;
}

/* The input filter: from the socket (src) to libevent's parser (dst). */
static enum bufferevent_filter_result hg_filter_in(struct evbuffer *src, struct evbuffer *dst,
                                                   ev_ssize_t limit,
                                                   enum bufferevent_flush_mode mode, void *ctx)
{
    struct kc_http_gate *g = ctx;
    size_t avail = evbuffer_get_length(src), n;

    (void)mode;
    if (avail == 0)
        return BEV_NEED_MORE;
    switch (g->state) {
    case HG_HEAD: return hg_head(g, src, dst);
    case HG_BODY:
        n = avail < g->remaining ? avail : (size_t)g->remaining;
        if (limit >= 0 && n > (size_t)limit)
            n = (size_t)limit;
        if (n == 0)
            return BEV_NEED_MORE;
        evbuffer_remove_buffer(src, dst, n);
        g->remaining -= n;
        if (g->remaining == 0)
            g->state = HG_HEAD;
        return BEV_OK;
    case HG_DRAIN:
        n = avail < g->remaining ? avail : (size_t)g->remaining;
        evbuffer_drain(src, n);
        g->remaining -= n;
        if (g->remaining == 0) {
            evbuffer_drain(src, evbuffer_get_length(src));
            hg_send_rejection(g, dst);
        }
        return BEV_OK;
    case HG_CLOSED:
    default: evbuffer_drain(src, avail); return BEV_OK;
    }
}

/*
 * Replies. libevent's filter passes reply bytes to the socket bufferevent
 * and reports them written at once, so evhttp would close a connection
 * with the end of its last reply still queued in user space. The gate's
 * output filter therefore writes to the socket itself, and reports bytes
 * written only once the kernel has them. It writes only from hg_kick_cb(),
 * a loop callback, never from inside the libevent calls that queue a reply.
 */
static __thread bool hg_flushing; /* inside hg_kick_cb() on this thread */

static void hg_kick_cb(evutil_socket_t fd, short what, void *arg);

/* Write the queued reply bytes (the filtered output) straight to the socket. */
static enum bufferevent_filter_result hg_filter_out(struct evbuffer *src, struct evbuffer *dst,
                                                    ev_ssize_t limit,
                                                    enum bufferevent_flush_mode mode, void *ctx)
{
    struct kc_http_gate *g = ctx;
    int fd = (int)bufferevent_getfd(g->sock);
    bool wrote = false;

    (void)dst, (void)limit, (void)mode;
    if (!hg_flushing || fd < 0) {
        event_active(g->kick, EV_TIMEOUT, 0);
        return BEV_NEED_MORE;
    }
    while (evbuffer_get_length(src) > 0) {
        struct evbuffer_iovec v[16];
        int nv = evbuffer_peek(src, -1, NULL, v, 16);
        struct msghdr m = {.msg_iov = (struct iovec *)v, .msg_iovlen = nv < 16 ? (size_t)nv : 16};
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (n > 0) {
            evbuffer_drain(src, (size_t)n);
            wrote = true;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (g->writable == NULL)
                g->writable = event_new(bufferevent_get_base(g->bev), fd, EV_WRITE, hg_kick_cb, g);
            if (g->writable != NULL)
                event_add(g->writable, NULL);
            return wrote ? BEV_OK : BEV_NEED_MORE;
        } else {
            /* The client is gone: drop the reply; the read side reports the close. */
            evbuffer_drain(src, evbuffer_get_length(src));
            return BEV_OK;
        }
    }
    return BEV_OK;
}

/* Reply bytes were queued: write them from the loop (evhttp enables writing only after queueing).
 */
static void hg_outbuf_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct kc_http_gate *g = arg;

    (void)buf;
    if (info->n_added > 0)
        event_active(g->kick, EV_TIMEOUT, 0);
}

/*
 * Loop callback: push queued reply bytes out. Once evhttp has freed the
 * connection (bufferevent_free() clears the callbacks), the filter only
 * waits for libevent to finalize it, which frees the gate and these events:
 * do nothing then. The gate may be freed after the flush.
 */
static void hg_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kc_http_gate *g = arg;
    bufferevent_event_cb eventcb = NULL;

    (void)fd, (void)what;
    bufferevent_getcb(g->bev, NULL, NULL, &eventcb, NULL);
    if (eventcb == NULL)
        return;
    hg_flushing = true;
    bufferevent_flush(g->bev, EV_WRITE, BEV_NORMAL);
    hg_flushing = false;
}

/* free_context of the filter: unlink the gate (possibly after the server is gone). */
static void hg_gate_free(void *ctx)
{
    struct kc_http_gate *g = ctx;

    if (g->kick != NULL)
        event_free(g->kick);
    if (g->writable != NULL)
        event_free(g->writable);

    if (g->prev != NULL)
        g->prev->next = g->next;
    else
        g->set->first = g->next;
    if (g->next != NULL)
        g->next->prev = g->prev;
    hg_set_unref(g->set);
    free(g);
}

struct bufferevent *kc_http_gate_bev_new(struct event_base *base, struct kc_http_gates *set)
{
    struct bufferevent *sock, *filter;
    struct kc_http_gate *g;

    sock = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (sock == NULL)
        return NULL;
    g = kc_calloc(1, sizeof(*g));
    g->kick = event_new(base, -1, 0, hg_kick_cb, g);
    filter = g->kick == NULL ? NULL
                             : bufferevent_filter_new(sock, hg_filter_in, hg_filter_out,
                                                      BEV_OPT_CLOSE_ON_FREE, hg_gate_free, g);
    if (filter == NULL) {
        if (g->kick != NULL)
            event_free(g->kick);
        bufferevent_free(sock);
        free(g);
        return NULL;
    }
    g->set = set;
    g->max_head = set->max_head;
    g->max_body = set->max_body;
    g->bev = filter;
    g->sock = sock;
    g->state = HG_HEAD;
    g->next = set->first;
    if (set->first != NULL)
        set->first->prev = g;
    set->first = g;
    set->refs++;
    if (evbuffer_add_cb(bufferevent_get_output(filter), hg_outbuf_cb, g) == NULL) {
        bufferevent_free(filter); /* frees g too, through hg_gate_free() */
        return NULL;
    }
    return filter;
}

bool kc_http_gate_rejection(struct kc_http_gates *set, const struct bufferevent *bev,
                            const char *marker, int *status, struct kc_error *err)
{
    if (set == NULL || bev == NULL || marker == NULL || strcmp(marker, set->secret) != 0)
        return false;
    for (struct kc_http_gate *g = set->first; g != NULL; g = g->next) {
        if (g->bev == bev && g->state == HG_CLOSED) {
            *status = g->status;
            if (err != NULL)
                *err = g->error;
            return true;
        }
    }
    return false;
}
