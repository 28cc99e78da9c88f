/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_gate.h -- screens HTTP/1.x request heads before libevent's parser sees them.
 *
 * Internal to the HTTP server (http.c); roles use http.h. libevent 2.1
 * answers the requests its own parser rejects (a malformed head, a body over
 * the limit) with an HTML page that no handler can replace. The gate sits in
 * front of that parser as a bufferevent filter on each connection: it frames
 * every request itself (request line, headers, Content-Length), passes
 * acceptable requests through byte for byte, and turns a rejected one into a
 * small synthetic request that the server answers with Kelp's JSON error
 * (see docs/http.md). It is stricter than libevent, never looser, so both
 * always agree on where a request ends.
 *
 * A rejected request always ends its connection. A body over the limit is
 * read and discarded first (up to KC_HTTP_GATE_DRAIN_MAX bytes, and unless
 * the client waits on "Expect: 100-continue") so that the client sees the
 * 413 answer instead of a connection reset.
 *
 * Everything here runs on the server's event loop thread.
 */
#ifndef KC_HTTP_GATE_H
#define KC_HTTP_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct bufferevent;
struct event_base;

#define KC_HTTP_GATE_HEADER    "Kelp-Gate"           /* marks the synthetic request */
#define KC_HTTP_GATE_PATH      "/.kelp/rejected"     /* its path */
#define KC_HTTP_GATE_DRAIN_MAX (64 * 1024 * 1024ULL) /* largest oversized body read and dropped */
#define KC_HTTP_METHOD_MAX     7                     /* longest method name accepted ("OPTIONS") */

/* What kc_http_head_scan() learned about a complete, acceptable head. */
struct kc_http_head {
    size_t len;                          /* bytes of the head, up to and including its blank line */
    uint64_t content_length;             /* declared body size; 0 without Content-Length */
    char method[KC_HTTP_METHOD_MAX + 1]; /* "GET", ...; set once the request line is read */
    bool expect_continue;                /* "Expect: 100-continue" in an HTTP/1.1 request */
    int status; /* on rejection: the HTTP status to answer (400, 411, 413, ...) */
};

/*
 * kc_http_head_scan -- check the request head at the start of data[0..len).
 *
 * Looks at no more than max_head bytes. Returns:
 *   0           a complete head of out->len bytes that libevent will parse
 *               the same way; the body (out->content_length bytes) follows;
 *   KC_EAGAIN   the head is incomplete and nothing seen so far is wrong;
 *   another     a rejection: err is filled and out->status holds the HTTP
 *               status to answer: 400 (KC_EPROTO, malformed), 411 (a
 *               Transfer-Encoding), 417 (an Expect other than 100-continue),
 *               431 (KC_ETOOBIG, no end of head within max_head bytes), 501
 *               (an unsupported method), 505 (KC_EVERSION), or 413
 *               (KC_ETOOBIG, Content-Length above max_body; out->len and
 *               out->content_length are then set, so the body can be skipped).
 * Never reads outside data[0..len); any bytes are safe input.
 */
int kc_http_head_scan(const uint8_t *data, size_t len, size_t max_head, uint64_t max_body,
                      struct kc_http_head *out, struct kc_error *err) KC_MUSTCHECK;

/* The gates of one server: its limits and the live connections' gates. */
struct kc_http_gates;

/*
 * kc_http_gates_create -- a gate set for one server with these limits and
 * the secret that marks its synthetic requests (copied; at most 64 bytes).
 * Free with kc_http_gates_release() (the set lives on until its last
 * connection's gate is gone too).
 */
struct kc_http_gates *kc_http_gates_create(size_t max_head, uint64_t max_body, const char *secret);

/* Change the limits for connections accepted from now on. */
void kc_http_gates_set_limits(struct kc_http_gates *gates, size_t max_head, uint64_t max_body);

/* The server lets go of the set; connections still open keep it alive. */
void kc_http_gates_release(struct kc_http_gates *gates);

/*
 * kc_http_gate_bev_new -- the bufferevent for one accepted connection: a
 * filter holding a gate over a socket bufferevent without a descriptor
 * (libevent's evhttp sets it). For evhttp_set_bevcb(). NULL when libevent
 * fails to allocate; evhttp then uses a plain bufferevent, without the gate.
 */
struct bufferevent *kc_http_gate_bev_new(struct event_base *base, struct kc_http_gates *gates);

/*
 * kc_http_gate_rejection -- when bev is a gated connection and marker (the
 * value of the request's KC_HTTP_GATE_HEADER, may be NULL) carries the set's
 * secret, copy the rejection behind the synthetic request into *status and
 * *err and return true. False for every request a client sent itself.
 */
bool kc_http_gate_rejection(struct kc_http_gates *gates, const struct bufferevent *bev,
                            const char *marker, int *status, struct kc_error *err);

#endif
