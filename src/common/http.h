/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http.h -- the HTTP+JSON management server every Kelp role runs (docs/http.md).
 *
 * Built on libevent's evhttp: the server runs on the caller's event_base and
 * every handler runs on the thread that runs that base's loop. Nothing here
 * is thread-safe: create the server, add routes, set the token and destroy
 * it on that thread (or before the loop starts and after it stops).
 *
 *   struct kc_http_server *srv;
 *   if (kc_http_server_create(base, "127.0.0.1", 9898, NULL, &srv, err) != 0 ||
 *       kc_http_add_standard_routes(srv, NULL, err) != 0 ||
 *       kc_http_route(srv, "GET", "/v1/tenants/{tenant}", get_tenant, ctx, err) != 0)
 *       return ...;
 *
 *   static void get_tenant(struct kc_http_request *req, void *arg)
 *   {
 *       const char *id = kc_http_request_param(req, "tenant");
 *       ...
 *       kc_http_reply_json(req, 200, json_pack("{s:s}", "id", id));
 *   }
 *
 * Every error answer, whether from a handler or from the server itself
 * (unknown path, wrong method, malformed or oversized request, missing
 * token), has the one Kelp shape:
 *
 *   {"error":{"code":"EINVAL","message":"...","detail":"...","hint":"..."}}
 */
#ifndef KC_HTTP_H
#define KC_HTTP_H

#include <stddef.h>

#include <jansson.h>

#include "common/error.h"

struct event_base;
struct kc_metrics_registry;

#define KC_HTTP_DEFAULT_MAX_BODY   (1024 * 1024) /* bytes of a request body */
#define KC_HTTP_DEFAULT_MAX_HEAD   (16 * 1024)   /* bytes of request line + headers */
#define KC_HTTP_DEFAULT_TIMEOUT_MS 30000         /* idle limit while reading or writing */
#define KC_HTTP_MAX_ROUTES         256
#define KC_HTTP_MAX_PARAMS         16  /* {name} segments in a pattern */
#define KC_HTTP_MAX_QUERY          64  /* query parameters in a request */
#define KC_HTTP_TOKEN_MAX          256 /* longest bearer token */
#define KC_HTTP_JSON_TYPE          "application/json"
#define KC_HTTP_TEXT_TYPE          "text/plain; charset=utf-8"

/* Request limits; a field left 0 takes its default. */
struct kc_http_limits {
    size_t max_body_bytes; /* larger bodies get 413 */
    size_t max_head_bytes; /* larger request heads get 431 */
    unsigned timeout_ms;   /* a connection idle this long while a request is read or a
                              reply written is closed */
};

struct kc_http_server;
struct kc_http_request;

/*
 * A route handler. It answers with exactly one kc_http_reply_*() call,
 * normally before it returns; req stays valid until the handler returns
 * (even after the reply). To answer later, call kc_http_request_defer() and
 * reply afterwards on the loop thread. A handler that returns without
 * replying or deferring gets a 500 answer sent for it (and an error log).
 */
typedef void (*kc_http_handler)(struct kc_http_request *req, void *arg);

/* ---- the server ---------------------------------------------------------- */

/*
 * kc_http_server_create -- listen on addr:port (port 0: an ephemeral port,
 * see kc_http_server_port()) and serve on base's loop. limits may be NULL
 * (defaults). The server has no routes: add them, and the standard ones,
 * before the loop runs. Returns 0 with *out set, or KC_EINVAL (bad
 * arguments) / KC_EIO (the address cannot be bound) with err filled.
 * Also sends libevent's own log messages, process-wide, to the Kelp log.
 */
int kc_http_server_create(struct event_base *base, const char *addr, int port,
                          const struct kc_http_limits *limits, struct kc_http_server **out,
                          struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_http_server_destroy -- stop listening, close every connection and free
 * the server (NULL is a no-op). Requests a handler deferred are dropped
 * without an answer; their req pointers become invalid. Loop thread only.
 */
void kc_http_server_destroy(struct kc_http_server *s);

/* The port the server listens on (the one chosen for port 0). */
int kc_http_server_port(const struct kc_http_server *s);

/* Change the limits for connections accepted from now on (fields 0: defaults). */
void kc_http_server_set_limits(struct kc_http_server *s, const struct kc_http_limits *limits);

/*
 * kc_http_server_set_token -- require "Authorization: Bearer <token>" on
 * every route except GET /v1/health and GET /metrics; NULL or "" turns the
 * check off. Requests without the right token get 401. The comparison takes
 * the same time wherever the tokens differ. Returns 0, or KC_EINVAL when
 * token is longer than KC_HTTP_TOKEN_MAX or holds a byte outside 0x21-0x7e.
 */
int kc_http_server_set_token(struct kc_http_server *s, const char *token,
                             struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_http_route -- serve method (GET, HEAD, POST, PUT, PATCH, DELETE,
 * OPTIONS) on pattern with fn(req, arg).
 *
 * pattern is an absolute path whose segments are literal text or {name}
 * (name: [a-z_][a-z0-9_]*, at most 31 bytes), which matches any one
 * non-empty segment: "/v1/tenants/{tenant}/timelines/{timeline}". A literal
 * segment wins over {name} at the same position; matching is exact
 * otherwise (no trailing slash). A GET route also answers HEAD. A path that
 * matches no route gets 404; one that matches only other methods gets 405
 * with an Allow header. Returns 0, or KC_EINVAL for a bad method or
 * pattern, a pattern that repeats a {name}, or one that overlaps an
 * existing route for the same method exactly. The strings are copied.
 */
int kc_http_route(struct kc_http_server *s, const char *method, const char *pattern,
                  kc_http_handler fn, void *arg, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_http_add_standard_routes -- the routes every role serves:
 *   GET /v1/health                      {"status":"ok"}
 *   GET /metrics                        kc_metrics_render(reg)
 *   GET, PUT, DELETE /v1/failpoints     docs/failpoints.md
 * and the request metrics kelp_http_requests_total{route,method,status}
 * and kelp_http_request_duration_seconds{route}, registered in reg (NULL:
 * the default registry), which must outlive the server. Returns 0, or
 * KC_EINVAL when a route or metric clashes with one already registered.
 */
int kc_http_add_standard_routes(struct kc_http_server *s, struct kc_metrics_registry *reg,
                                struct kc_error *err) KC_MUSTCHECK;

/* ---- the request (valid until the handler returns, or the deferred reply) ---- */

const char *kc_http_request_method(const struct kc_http_request *req); /* "GET" */
/* The path as received (percent-encoded), without the query. */
const char *kc_http_request_path(const struct kc_http_request *req);
/* The pattern of the route that matched ("/v1/tenants/{tenant}"). */
const char *kc_http_request_route(const struct kc_http_request *req);
/* The decoded value of the {name} segment; NULL when the pattern has none. */
const char *kc_http_request_param(const struct kc_http_request *req, const char *name);
/*
 * The decoded value of query parameter name ("+" is a space; "?flag" gives
 * ""); the first one when repeated; NULL when absent.
 */
const char *kc_http_request_query(const struct kc_http_request *req, const char *name);
/* A request header (name case-insensitive), NULL when absent. */
const char *kc_http_request_header(const struct kc_http_request *req, const char *name);
/* The body: *len bytes (0 when there is none), owned by req, not NUL-terminated. */
const void *kc_http_request_body(struct kc_http_request *req, size_t *len);

/*
 * kc_http_request_json -- the body parsed as one JSON value (duplicate
 * object keys rejected). On an empty or invalid body, replies 400 with the
 * parse error and returns NULL: the handler then just returns. The value is
 * borrowed from req (json_incref() to keep it longer).
 */
json_t *kc_http_request_json(struct kc_http_request *req);

/* kc_http_request_defer -- the handler will reply after it returns (see kc_http_handler). */
void kc_http_request_defer(struct kc_http_request *req);

/* ---- replies: exactly one per request, on the loop thread ------------------ */

/* Add a header to the coming reply ("Location", ...). Before the reply only. */
void kc_http_reply_header(struct kc_http_request *req, const char *name, const char *value);

/*
 * Reply with status and body serialised compactly; takes the reference to
 * body. A body that cannot be serialised (NULL, as from a failed
 * json_pack()) is answered with 500 instead, and logged.
 */
void kc_http_reply_json(struct kc_http_request *req, int status, json_t *body);

/* Reply with status and text (copied) as content_type (NULL: KC_HTTP_TEXT_TYPE). */
void kc_http_reply_text(struct kc_http_request *req, int status, const char *content_type,
                        const char *text);

/*
 * kc_http_reply_error -- reply with status (0: kc_http_status_for_error())
 * and the Kelp error shape built from err (see kc_http_error_json()).
 */
void kc_http_reply_error(struct kc_http_request *req, int status, const struct kc_error *err);

/*
 * kc_http_error_json -- {"error":{"code","message","detail","hint"}} for err,
 * without detail and hint when they are empty. code is kc_strerror(err->code),
 * or when err is NULL or has no code, the one status implies (401: EAUTH,
 * 404: ENOTFOUND, 413 and 431: ETOOBIG, 504: ETIMEDOUT, other 4xx: EINVAL,
 * 5xx: EIO). An empty message becomes the status's reason phrase in lower
 * case. The caller owns the result.
 */
json_t *kc_http_error_json(int status, const struct kc_error *err);

/*
 * kc_http_status_for_error -- the HTTP status for a KC_E* code: EINVAL,
 * EPROTO, EVERSION 400; ENOTFOUND 404; ETOOBIG 413; EAGAIN 503; ETIMEDOUT
 * 504; anything else 500.
 */
int kc_http_status_for_error(int code);

#endif
