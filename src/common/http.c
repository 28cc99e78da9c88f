/* SPDX-License-Identifier: Apache-2.0 */
/* http.c -- the HTTP+JSON management server: routing, requests, replies, auth, metrics. */
#include "common/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/failpoint.h"
#include "common/hex.h"
#include "common/http_gate.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/random.h"

#define HS_MAX_SEGS     32  /* path segments a pattern or a routed path may have */
#define HS_NAME_MAX     31  /* longest {name} */
#define HS_LOG_PATH_MAX 120 /* bytes of a path shown in a log line */
#define HS_METHODS                                                                             \
    (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | \
     EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS)

/* Methods in the order an Allow header lists them. */
static const struct {
    const char *name;
    enum evhttp_cmd_type type;
} hs_methods[] = {
    {"GET", EVHTTP_REQ_GET},         {"HEAD", EVHTTP_REQ_HEAD},   {"POST", EVHTTP_REQ_POST},
    {"PUT", EVHTTP_REQ_PUT},         {"PATCH", EVHTTP_REQ_PATCH}, {"DELETE", EVHTTP_REQ_DELETE},
    {"OPTIONS", EVHTTP_REQ_OPTIONS},
};

struct hs_segment {
    char *text; /* literal text, or the parameter name */
    bool param; /* a {name} segment */
};

struct hs_route {
    int method;    /* index into hs_methods */
    char *pattern; /* as registered */
    struct hs_segment segs[HS_MAX_SEGS];
    size_t nsegs;
    kc_http_handler fn;
    void *arg;
};

struct kc_http_server {
    struct event_base *base;
    struct evhttp *http;
    struct kc_http_gates *gates; /* screens request heads (http_gate.h) */
    int port;                    /* bound port */
    struct kc_http_limits limits;
    struct hs_route **routes; /* each allocated alone: requests point at them */
    size_t nroutes, cap;
    char token[KC_HTTP_TOKEN_MAX + 1]; /* "" when auth is off */
    size_t token_len;
    struct kc_metrics_registry *reg; /* for GET /metrics; set by the standard routes */
    struct kc_counter_vec *requests; /* NULL until the standard routes are added */
    struct kc_histogram_vec *duration;
    struct kc_http_request *pending; /* deferred requests, not yet answered */
    double last_notice;              /* when a bad request was last logged */
    unsigned long suppressed;        /* bad requests not logged since */
};

struct hs_query {
    char *key, *value;
};

struct kc_http_request {
    struct kc_http_server *server;
    struct evhttp_request *ev; /* NULL once the reply is sent */
    const char *method;        /* static */
    char *path;                /* raw path, without the query */
    const struct hs_route *route;
    const char *route_label; /* metrics label: the pattern, or why none matched */
    char *segs[HS_MAX_SEGS]; /* decoded path segments */
    size_t nsegs;
    struct hs_query query[KC_HTTP_MAX_QUERY];
    size_t nquery;
    char *body; /* copy of the body, NUL-terminated; NULL when empty */
    size_t body_len;
    json_t *json;     /* parsed body, owned */
    double started;   /* monotonic seconds */
    bool dispatching; /* inside hs_dispatch(): freed when it ends */
    bool replied, deferred;
    struct kc_http_request *prev, *next; /* in server->pending while deferred */
};

static double hs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int hs_method_index(const char *name)
{
    for (size_t i = 0; i < KC_ARRAY_LEN(hs_methods); i++)
        if (strcmp(hs_methods[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- errors ---------------------------------------------------------------- */

static const char *hs_reason(int status)
{
    switch (status) {
    case 400: return "bad request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 409: return "conflict";
    case 411: return "length required";
    case 413: return "payload too large";
    case 417: return "expectation failed";
    case 431: return "request header fields too large";
    case 500: return "internal server error";
    case 501: return "not implemented";
    case 503: return "service unavailable";
    case 504: return "gateway timeout";
    case 505: return "http version not supported";
    default: return status >= 500 ? "server error" : "request error";
    }
}

static const char *hs_code_for_status(int status)
{
    switch (status) {
    case 401:
    case 403: return "EAUTH";
    case 404: return "ENOTFOUND";
    case 413:
    case 431: return "ETOOBIG";
    case 408:
    case 504: return "ETIMEDOUT";
    default: return status >= 500 ? "EIO" : "EINVAL";
    }
}

int kc_http_status_for_error(int code)
{
    switch (code) {
    case KC_EINVAL:
    case KC_EPROTO:
    case KC_EVERSION: return 400;
    case KC_ENOTFOUND: return 404;
    case KC_ETOOBIG: return 413;
    case KC_EAGAIN: return 503;
    case KC_ETIMEDOUT: return 504;
    default: return 500;
    }
}

/* A JSON string for text, whose bytes that are not valid UTF-8 become '?'. */
static json_t *hs_json_text(const char *text)
{
    json_t *j = json_string(text);
    char *copy;

    if (j != NULL)
        return j;
    copy = kc_strdup(text);
    for (char *p = copy; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

json_t *kc_http_error_json(int status, const struct kc_error *err)
{
    json_t *e = json_object();
    const char *code = hs_code_for_status(status);
    const char *message = hs_reason(status);

    if (err != NULL && err->code < 0)
        code = kc_strerror(err->code);
    if (err != NULL && err->message[0] != '\0')
        message = err->message;
    json_object_set_new(e, "code", json_string(code));
    json_object_set_new(e, "message", hs_json_text(message));
    if (err != NULL && err->detail[0] != '\0')
        json_object_set_new(e, "detail", hs_json_text(err->detail));
    if (err != NULL && err->hint[0] != '\0')
        json_object_set_new(e, "hint", hs_json_text(err->hint));
    return json_pack("{s:o}", "error", e);
}

/* ---- logging and metrics -------------------------------------------------- */

/* path for a log line: at most HS_LOG_PATH_MAX bytes, unprintable bytes as '?', NULL as "-". */
static void hs_log_path(const char *path, char *out, size_t len)
{
    size_t i;

    if (path == NULL)
        path = "-";
    for (i = 0; path[i] != '\0' && i + 1 < len && i < HS_LOG_PATH_MAX; i++)
        out[i] = (path[i] > 0x20 && path[i] < 0x7f) ? path[i] : '?';
    out[i] = '\0';
}

/* Log a bad request (naming the client) at info, at most once a second per server. */
static void hs_notice(struct kc_http_request *req, const char *what, const struct kc_error *err)
{
    struct kc_http_server *s = req->server;
    struct evhttp_connection *conn =
        req->ev != NULL ? evhttp_request_get_connection(req->ev) : NULL;
    char *addr = NULL;
    ev_uint16_t port = 0;
    double now = hs_now();

    if (!kc_log_enabled(KC_LOG_INFO))
        return;
    if (s->last_notice != 0 && now - s->last_notice < 1.0) {
        s->suppressed++;
        return;
    }
    if (conn != NULL)
        evhttp_connection_get_peer(conn, &addr, &port);
    if (s->suppressed > 0)
        kc_info("http: %s from %s:%u: %s (%lu more bad requests not logged)", what,
                addr != NULL ? addr : "?", port, err->message, s->suppressed);
    else
        kc_info("http: %s from %s:%u: %s", what, addr != NULL ? addr : "?", port, err->message);
    s->last_notice = now;
    s->suppressed = 0;
}

/* Count the answer and log it at debug. */
static void hs_account(struct kc_http_request *req, int status)
{
    struct kc_http_server *s = req->server;
    double elapsed = hs_now() - req->started;
    char code[8], path[HS_LOG_PATH_MAX + 1];

    snprintf(code, sizeof(code), "%d", status);
    if (s->requests != NULL) {
        kc_counter_inc(
            kc_counter_vec_with(s->requests, KC_LABELS(req->route_label, req->method, code)));
        kc_histogram_observe(kc_histogram_vec_with(s->duration, KC_LABELS(req->route_label)),
                             elapsed);
    }
    if (kc_log_enabled(KC_LOG_DEBUG)) {
        hs_log_path(req->path, path, sizeof(path));
        kc_debug("http: %s %s %d %.3f ms", req->method, path, status, elapsed * 1000.0);
    }
}

/* ---- requests and replies --------------------------------------------------- */

static void hs_request_free(struct kc_http_request *req)
{
    if (req->prev != NULL)
        req->prev->next = req->next;
    else if (req->server->pending == req)
        req->server->pending = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    free(req->path);
    for (size_t i = 0; i < req->nsegs; i++)
        free(req->segs[i]);
    for (size_t i = 0; i < req->nquery; i++) {
        free(req->query[i].key);
        free(req->query[i].value);
    }
    free(req->body);
    json_decref(req->json);
    free(req);
}

/* Send status with content_type and data[0..len); the common end of every reply. */
static void hs_send(struct kc_http_request *req, int status, const char *content_type,
                    const void *data, size_t len)
{
    struct evkeyvalq *headers;

    if (req->replied) {
        kc_error("http: second reply to %s %s ignored", req->method, req->route_label);
        return;
    }
    if (status < 100 || status > 599) {
        kc_error("http: invalid status %d for %s %s, answering 500", status, req->method,
                 req->route_label);
        status = 500;
    }
    req->replied = true;
    headers = evhttp_request_get_output_headers(req->ev);
    evhttp_remove_header(headers, "Content-Type");
    evhttp_add_header(headers, "Content-Type", content_type);
    evbuffer_add(evhttp_request_get_output_buffer(req->ev), data, len);
    evhttp_send_reply(req->ev, status, NULL, NULL);
    req->ev = NULL; /* libevent may free it from now on */
    hs_account(req, status);
    if (!req->dispatching)
        hs_request_free(req);
}

void kc_http_reply_header(struct kc_http_request *req, const char *name, const char *value)
{
    if (req->replied) {
        kc_error("http: header \"%s\" added after the reply", name);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req->ev), name, value);
}

void kc_http_reply_text(struct kc_http_request *req, int status, const char *content_type,
                        const char *text)
{
    hs_send(req, status, content_type != NULL ? content_type : KC_HTTP_TEXT_TYPE, text,
            strlen(text));
}

void kc_http_reply_json(struct kc_http_request *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);

    json_decref(body);
    if (text == NULL) {
        struct kc_error err;
        kc_error_set(&err, KC_EIO, "reply could not be encoded as JSON");
        kc_error("http: %s %s: %s", req->method, req->route_label, err.message);
        kc_http_reply_error(req, 500, &err);
        return;
    }
    hs_send(req, status, KC_HTTP_JSON_TYPE, text, strlen(text));
    free(text);
}

void kc_http_reply_error(struct kc_http_request *req, int status, const struct kc_error *err)
{
    if (status == 0)
        status = kc_http_status_for_error(err != NULL ? err->code : KC_EIO);
    kc_http_reply_json(req, status, kc_http_error_json(status, err));
}

void kc_http_request_defer(struct kc_http_request *req)
{
    struct kc_http_server *s = req->server;

    if (req->deferred || req->replied)
        return;
    req->deferred = true;
    req->next = s->pending;
    if (s->pending != NULL)
        s->pending->prev = req;
    s->pending = req;
}

const char *kc_http_request_method(const struct kc_http_request *req)
{
    return req->method;
}

const char *kc_http_request_path(const struct kc_http_request *req)
{
    return req->path;
}

const char *kc_http_request_route(const struct kc_http_request *req)
{
    return req->route != NULL ? req->route->pattern : req->route_label;
}

const char *kc_http_request_param(const struct kc_http_request *req, const char *name)
{
    if (req->route == NULL)
        return NULL;
    for (size_t i = 0; i < req->route->nsegs; i++)
        if (req->route->segs[i].param && strcmp(req->route->segs[i].text, name) == 0)
            return req->segs[i];
    return NULL;
}

const char *kc_http_request_query(const struct kc_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nquery; i++)
        if (strcmp(req->query[i].key, name) == 0)
            return req->query[i].value;
    return NULL;
}

const char *kc_http_request_header(const struct kc_http_request *req, const char *name)
{
    if (req->ev == NULL)
        return NULL;
    return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

const void *kc_http_request_body(struct kc_http_request *req, size_t *len)
{
    *len = req->body_len;
    return req->body != NULL ? req->body : "";
}

json_t *kc_http_request_json(struct kc_http_request *req)
{
    json_error_t jerr;
    struct kc_error err;

    if (req->json != NULL)
        return req->json;
    if (req->body_len == 0) {
        kc_error_set(&err, KC_EINVAL, "request body is empty");
        kc_error_hint(&err, "Send a JSON document as the body.");
        kc_http_reply_error(req, 400, &err);
        return NULL;
    }
    req->json =
        json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (req->json == NULL) {
        kc_error_set(&err, KC_EINVAL, "invalid JSON in request body");
        kc_error_detail(&err, "%s at line %d, column %d.", jerr.text, jerr.line, jerr.column);
        kc_http_reply_error(req, 400, &err);
    }
    return req->json;
}

/* ---- parsing the request target --------------------------------------------- */

/* Percent-decode s[0..len) ('+' as a space when plus) into *out (caller frees). */
static int hs_decode(const char *s, size_t len, bool plus, char **out, struct kc_error *err)
{
    struct kc_buf b;
    char *r = kc_malloc(len + 1);
    size_t n = 0;
    uint8_t c, h[2];

    kc_buf_init(&b, s, len);
    while (kc_buf_get_u8(&b, &c)) {
        if (c == '%') {
            if (!kc_buf_get_bytes(&b, h, 2) || kc_hex_digit(h[0]) < 0 || kc_hex_digit(h[1]) < 0) {
                free(r);
                return kc_error_set(err, KC_EINVAL, "invalid percent-encoding in request target");
            }
            c = (uint8_t)(kc_hex_digit(h[0]) << 4 | kc_hex_digit(h[1]));
            if (c == 0) {
                free(r);
                return kc_error_set(err, KC_EINVAL, "percent-encoded NUL byte in request target");
            }
        } else if (c == '+' && plus) {
            c = ' ';
        }
        r[n++] = (char)c;
    }
    r[n] = '\0';
    *out = r;
    return 0;
}

/* Split and decode the path into req->segs; KC_ENOTFOUND when it has too many segments. */
static int hs_parse_path(struct kc_http_request *req, struct kc_error *err)
{
    const char *p = req->path + 1;
    int rc;

    if (strcmp(req->path, "/") == 0)
        return 0;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (req->nsegs == HS_MAX_SEGS)
            return KC_ENOTFOUND;
        if ((rc = hs_decode(p, len, false, &req->segs[req->nsegs], err)) != 0)
            return rc;
        req->nsegs++;
        if (slash == NULL)
            return 0;
        p = slash + 1;
    }
}

/* Parse "a=1&b=x+y&flag" into req->query. */
static int hs_parse_query(struct kc_http_request *req, const char *q, struct kc_error *err)
{
    while (q != NULL && *q != '\0') {
        const char *amp = strchr(q, '&');
        size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t klen = eq != NULL ? (size_t)(eq - q) : len;
        struct hs_query *e = &req->query[req->nquery];
        int rc;

        if (len > 0) {
            if (req->nquery == KC_HTTP_MAX_QUERY)
                return kc_error_set(err, KC_EINVAL, "more than %d query parameters",
                                    KC_HTTP_MAX_QUERY);
            if ((rc = hs_decode(q, klen, true, &e->key, err)) != 0)
                return rc;
            if ((rc = hs_decode(eq != NULL ? eq + 1 : "", eq != NULL ? len - klen - 1 : 0, true,
                                &e->value, err)) != 0) {
                free(e->key);
                return rc;
            }
            req->nquery++;
        }
        q = amp != NULL ? amp + 1 : NULL;
    }
    return 0;
}

/* ---- routing ------------------------------------------------------------------ */

static bool hs_route_matches(const struct hs_route *r, const struct kc_http_request *req)
{
    if (r->nsegs != req->nsegs)
        return false;
    for (size_t i = 0; i < r->nsegs; i++) {
        if (r->segs[i].param ? req->segs[i][0] == '\0' : strcmp(r->segs[i].text, req->segs[i]) != 0)
            return false;
    }
    return true;
}

/* True when a is preferred over b: a literal segment wins at the first position they differ. */
static bool hs_more_specific(const struct hs_route *a, const struct hs_route *b)
{
    for (size_t i = 0; i < a->nsegs && i < b->nsegs; i++)
        if (a->segs[i].param != b->segs[i].param)
            return !a->segs[i].param;
    return false;
}

/* The best route for req's path and method index m; NULL when none. */
static const struct hs_route *hs_find(const struct kc_http_server *s,
                                      const struct kc_http_request *req, int m)
{
    const struct hs_route *best = NULL;

    for (size_t i = 0; i < s->nroutes; i++) {
        const struct hs_route *r = s->routes[i];
        if (r->method == m && hs_route_matches(r, req) &&
            (best == NULL || hs_more_specific(r, best)))
            best = r;
    }
    return best;
}

/* Answer 404 or 405 (with Allow) for a request no route takes. */
static void hs_no_route(struct kc_http_request *req)
{
    struct kc_http_server *s = req->server;
    bool allowed[KC_ARRAY_LEN(hs_methods)] = {false};
    struct kc_sbuf allow = KC_SBUF_INIT;
    char path[HS_LOG_PATH_MAX + 1];
    struct kc_error err;

    for (size_t i = 0; i < s->nroutes; i++) {
        if (hs_route_matches(s->routes[i], req)) {
            allowed[s->routes[i]->method] = true;
            if (s->routes[i]->method == 0) /* GET answers HEAD */
                allowed[1] = true;
        }
    }
    for (size_t i = 0; i < KC_ARRAY_LEN(hs_methods); i++)
        if (allowed[i])
            kc_sbuf_printf(&allow, "%s%s", allow.len > 0 ? ", " : "", hs_methods[i].name);
    hs_log_path(req->path, path, sizeof(path));
    req->route_label = "unmatched";
    if (allow.len == 0) {
        kc_error_set(&err, KC_ENOTFOUND, "unknown path \"%s\"", path);
        kc_http_reply_error(req, 404, &err);
    } else {
        kc_error_set(&err, KC_EINVAL, "method %s is not allowed for path \"%s\"", req->method,
                     path);
        kc_error_detail(&err, "Allowed methods: %s.", kc_sbuf_str(&allow));
        kc_http_reply_header(req, "Allow", kc_sbuf_str(&allow));
        kc_http_reply_error(req, 405, &err);
    }
    kc_sbuf_fini(&allow);
}

/* ---- auth ------------------------------------------------------------------------ */

/* Compare in time that depends only on the expected token's length. */
static bool hs_token_equal(const char *given, size_t given_len, const char *want, size_t want_len)
{
    unsigned char diff = given_len != want_len;

    for (size_t i = 0; i < want_len; i++)
        diff |= (unsigned char)(i < given_len ? given[i] : 0) ^ (unsigned char)want[i];
    return diff == 0;
}

/* True when req may proceed; otherwise it has been answered with 401. */
static bool hs_authorized(struct kc_http_request *req)
{
    struct kc_http_server *s = req->server;
    const char *h, *tok;
    struct kc_error err;

    if (s->token_len == 0 || strcmp(req->path, "/v1/health") == 0 ||
        strcmp(req->path, "/metrics") == 0)
        return true;
    h = kc_http_request_header(req, "Authorization");
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
        for (tok = h + 7; *tok == ' '; tok++)
            ;
        if (hs_token_equal(tok, strlen(tok), s->token, s->token_len))
            return true;
    }
    if (h == NULL)
        kc_error_set(&err, 0, "authentication required");
    else
        kc_error_set(&err, 0, "invalid bearer token");
    kc_error_hint(&err, "Send the header \"Authorization: Bearer TOKEN\" with the server's token.");
    hs_notice(req, "unauthorized request", &err);
    req->route_label = "unauthorized";
    kc_http_reply_header(req, "WWW-Authenticate", "Bearer realm=\"kelp\"");
    kc_http_reply_error(req, 401, &err);
    return false;
}

/* ---- dispatch -------------------------------------------------------------------- */

/* Answer the synthetic request of a gate rejection; false for any other request. */
static bool hs_gate_answer(struct kc_http_request *req)
{
    struct kc_http_server *s = req->server;
    struct evhttp_connection *conn = evhttp_request_get_connection(req->ev);
    const char *marker = kc_http_request_header(req, KC_HTTP_GATE_HEADER);
    struct kc_error err;
    int status;

    if (marker == NULL || conn == NULL ||
        !kc_http_gate_rejection(s->gates, evhttp_connection_get_bufferevent(conn), marker, &status,
                                &err))
        return false;
    req->route_label = "rejected";
    req->method = "-";
    hs_notice(req, "rejected request", &err);
    kc_http_reply_error(req, status, &err);
    return true;
}

/* Copy the body and parse the target; false when req has been answered (400/404/503). */
static bool hs_prepare(struct kc_http_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req->ev);
    struct evbuffer *in = evhttp_request_get_input_buffer(req->ev);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    struct kc_error err;
    int rc;

    req->path = kc_strdup(path != NULL && path[0] == '/' ? path : "/");
    req->body_len = evbuffer_get_length(in);
    if (req->body_len > 0) {
        req->body = kc_try_malloc(req->body_len + 1);
        if (req->body == NULL) {
            req->body_len = 0;
            kc_error_set(&err, KC_ENOMEM, "out of memory for a request body");
            kc_http_reply_error(req, 503, &err);
            return false;
        }
        evbuffer_copyout(in, req->body, req->body_len);
        req->body[req->body_len] = '\0';
    }
    rc = hs_parse_path(req, &err);
    if (rc == 0)
        rc = hs_parse_query(req, uri != NULL ? evhttp_uri_get_query(uri) : NULL, &err);
    if (rc == KC_ENOTFOUND) {
        hs_no_route(req);
        return false;
    }
    if (rc != 0) {
        req->route_label = "rejected";
        hs_notice(req, "bad request target", &err);
        kc_http_reply_error(req, 400, &err);
        return false;
    }
    return true;
}

static const char *hs_method_name(enum evhttp_cmd_type type)
{
    for (size_t i = 0; i < KC_ARRAY_LEN(hs_methods); i++)
        if (hs_methods[i].type == type)
            return hs_methods[i].name;
    return "OTHER";
}

/* Route req and run its handler. */
static void hs_route(struct kc_http_request *req)
{
    int m = hs_method_index(req->method);
    const struct hs_route *r = m >= 0 ? hs_find(req->server, req, m) : NULL;

    if (r == NULL && m == 1) /* HEAD falls back to GET */
        r = hs_find(req->server, req, 0);
    if (r == NULL) {
        hs_no_route(req);
        return;
    }
    req->route = r;
    req->route_label = r->pattern;
    r->fn(req, r->arg);
    if (!req->replied && !req->deferred) {
        struct kc_error err;
        kc_error_set(&err, KC_EIO, "handler for %s %s did not reply", req->method, r->pattern);
        kc_error("http: %s", err.message);
        kc_http_reply_error(req, 500, &err);
    }
}

/* evhttp's callback for every request. */
static void hs_dispatch(struct evhttp_request *ev, void *arg)
{
    struct kc_http_server *s = arg;
    struct kc_http_request *req = kc_calloc(1, sizeof(*req));

    req->server = s;
    req->ev = ev;
    req->started = hs_now();
    req->method = hs_method_name(evhttp_request_get_command(ev));
    req->route_label = "unmatched";
    req->dispatching = true;
    if (!hs_gate_answer(req) && hs_prepare(req) && hs_authorized(req))
        hs_route(req);
    req->dispatching = false;
    if (req->replied)
        hs_request_free(req);
}

/* ---- the server -------------------------------------------------------------------- */

/* libevent's own warnings go to the Kelp log, at info at most (we report failures ourselves). */
static void hs_libevent_log(int severity, const char *msg)
{
    if (severity >= EVENT_LOG_ERR)
        kc_error("libevent: %s", msg);
    else if (severity == EVENT_LOG_WARN)
        kc_info("libevent: %s", msg);
    else
        kc_debug("libevent: %s", msg);
}

static struct bufferevent *hs_bevcb(struct event_base *base, void *arg)
{
    struct kc_http_server *s = arg;
    return kc_http_gate_bev_new(base, s->gates);
}

void kc_http_server_set_limits(struct kc_http_server *s, const struct kc_http_limits *limits)
{
    struct timeval tv;

    s->limits.max_body_bytes = KC_HTTP_DEFAULT_MAX_BODY;
    s->limits.max_head_bytes = KC_HTTP_DEFAULT_MAX_HEAD;
    s->limits.timeout_ms = KC_HTTP_DEFAULT_TIMEOUT_MS;
    if (limits != NULL && limits->max_body_bytes > 0)
        s->limits.max_body_bytes = limits->max_body_bytes;
    if (limits != NULL && limits->max_head_bytes > 0)
        s->limits.max_head_bytes = limits->max_head_bytes;
    if (limits != NULL && limits->timeout_ms > 0)
        s->limits.timeout_ms = limits->timeout_ms;
    /* libevent's own limits stay as a backstop behind the gate's. */
    evhttp_set_max_body_size(s->http, (ev_ssize_t)s->limits.max_body_bytes);
    evhttp_set_max_headers_size(s->http, (ev_ssize_t)s->limits.max_head_bytes + 1024);
    tv.tv_sec = s->limits.timeout_ms / 1000;
    tv.tv_usec = (s->limits.timeout_ms % 1000) * 1000;
    evhttp_set_timeout_tv(s->http, &tv);
    kc_http_gates_set_limits(s->gates, s->limits.max_head_bytes, s->limits.max_body_bytes);
}

/* Find the port the listener got. */
static int hs_bound_port(struct evhttp_bound_socket *bound)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

int kc_http_server_create(struct event_base *base, const char *addr, int port,
                          const struct kc_http_limits *limits, struct kc_http_server **out,
                          struct kc_error *err)
{
    struct kc_http_server *s;
    struct evhttp_bound_socket *bound;
    char secret[33];
    int rc;

    *out = NULL;
    if (base == NULL || addr == NULL || port < 0 || port > 65535)
        return kc_error_set(err, KC_EINVAL, "invalid HTTP listen address %s:%d",
                            addr != NULL ? addr : "(null)", port);
    if ((rc = kc_random_hex(secret, 16, err)) != 0)
        return rc;
    event_set_log_callback(hs_libevent_log);
    s = kc_calloc(1, sizeof(*s));
    s->base = base;
    s->http = evhttp_new(base);
    if (s->http == NULL) {
        free(s);
        return kc_error_set(err, KC_EIO, "could not create an HTTP server");
    }
    s->gates = kc_http_gates_create(KC_HTTP_DEFAULT_MAX_HEAD, KC_HTTP_DEFAULT_MAX_BODY, secret);
    kc_http_server_set_limits(s, limits);
    evhttp_set_allowed_methods(s->http, HS_METHODS);
    evhttp_set_bevcb(s->http, hs_bevcb, s);
    evhttp_set_gencb(s->http, hs_dispatch, s);
    errno = 0;
    bound = evhttp_bind_socket_with_handle(s->http, addr, (ev_uint16_t)port);
    if (bound == NULL || (s->port = hs_bound_port(bound)) < 0) {
        int saved = errno;
        kc_http_server_destroy(s);
        kc_error_set(err, KC_EIO, "could not listen for HTTP on %s:%d", addr, port);
        if (saved != 0)
            kc_error_detail(err, "%s.", strerror(saved));
        kc_error_hint(err, "Check the address, and that no other process uses the port.");
        return KC_EIO;
    }
    kc_info("http: listening on %s:%d", addr, s->port);
    *out = s;
    return 0;
}

void kc_http_server_destroy(struct kc_http_server *s)
{
    if (s == NULL)
        return;
    while (s->pending != NULL) {
        struct kc_http_request *req = s->pending;
        /* A request whose client left is no longer on a connection: free it here. */
        if (req->ev != NULL && evhttp_request_get_connection(req->ev) == NULL)
            evhttp_request_free(req->ev);
        hs_request_free(req);
    }
    evhttp_free(s->http);
    kc_http_gates_release(s->gates);
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i]->pattern);
        for (size_t j = 0; j < s->routes[i]->nsegs; j++)
            free(s->routes[i]->segs[j].text);
        free(s->routes[i]);
    }
    free(s->routes);
    free(s);
}

int kc_http_server_port(const struct kc_http_server *s)
{
    return s->port;
}

int kc_http_server_set_token(struct kc_http_server *s, const char *token, struct kc_error *err)
{
    size_t len = token != NULL ? strlen(token) : 0;

    if (len > KC_HTTP_TOKEN_MAX)
        return kc_error_set(err, KC_EINVAL, "HTTP token longer than %d bytes", KC_HTTP_TOKEN_MAX);
    for (size_t i = 0; i < len; i++)
        if (token[i] < 0x21 || token[i] > 0x7e)
            return kc_error_set(err, KC_EINVAL, "HTTP token holds an invalid byte");
    memcpy(s->token, token != NULL ? token : "", len + 1);
    s->token_len = len;
    return 0;
}

/* ---- routes -------------------------------------------------------------------------- */

static bool hs_valid_name(const char *p, size_t len)
{
    if (len == 0 || len > HS_NAME_MAX || !((p[0] >= 'a' && p[0] <= 'z') || p[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
            return false;
    return true;
}

/* Parse one pattern segment p[0..len) into seg. */
static int hs_parse_segment(const char *p, size_t len, struct hs_segment *seg, struct kc_error *err)
{
    if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
        if (!hs_valid_name(p + 1, len - 2))
            return kc_error_set(err, KC_EINVAL, "invalid parameter name \"%.*s\"", (int)len, p);
        seg->param = true;
        seg->text = kc_strndup(p + 1, len - 2);
        return 0;
    }
    if (len == 0)
        return kc_error_set(err, KC_EINVAL, "empty path segment");
    for (size_t i = 0; i < len; i++)
        if (p[i] < 0x21 || p[i] > 0x7e || strchr("{}?#%", p[i]) != NULL)
            return kc_error_set(err, KC_EINVAL, "invalid character in segment \"%.*s\"", (int)len,
                                p);
    seg->param = false;
    seg->text = kc_strndup(p, len);
    return 0;
}

/* Parse pattern into r's segments (freed by the caller on error too). */
static int hs_parse_pattern(const char *pattern, struct hs_route *r, struct kc_error *err)
{
    const char *p = pattern + 1;
    const struct hs_segment *seg;
    size_t nparams = 0;
    int rc;

    if (pattern[0] != '/')
        return kc_error_set(err, KC_EINVAL, "pattern does not start with \"/\"");
    if (strcmp(pattern, "/") == 0)
        return 0;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (r->nsegs == HS_MAX_SEGS)
            return kc_error_set(err, KC_EINVAL, "more than %d segments", HS_MAX_SEGS);
        if ((rc = hs_parse_segment(p, len, &r->segs[r->nsegs], err)) != 0)
            return rc;
        seg = &r->segs[r->nsegs++];
        if (seg->param) {
            for (size_t i = 0; i + 1 < r->nsegs; i++)
                if (r->segs[i].param && strcmp(r->segs[i].text, seg->text) == 0)
                    return kc_error_set(err, KC_EINVAL, "parameter {%s} appears twice", seg->text);
            if (++nparams > KC_HTTP_MAX_PARAMS)
                return kc_error_set(err, KC_EINVAL, "more than %d parameters", KC_HTTP_MAX_PARAMS);
        }
        if (slash == NULL)
            return 0;
        p = slash + 1;
    }
}

/* True when a and b (same method) match exactly the same paths. */
static bool hs_same_shape(const struct hs_route *a, const struct hs_route *b)
{
    if (a->nsegs != b->nsegs)
        return false;
    for (size_t i = 0; i < a->nsegs; i++) {
        if (a->segs[i].param != b->segs[i].param)
            return false;
        if (!a->segs[i].param && strcmp(a->segs[i].text, b->segs[i].text) != 0)
            return false;
    }
    return true;
}

int kc_http_route(struct kc_http_server *s, const char *method, const char *pattern,
                  kc_http_handler fn, void *arg, struct kc_error *err)
{
    struct hs_route r = {0};
    int rc;

    r.method = method != NULL ? hs_method_index(method) : -1;
    if (r.method < 0 || pattern == NULL || fn == NULL)
        return kc_error_set(err, KC_EINVAL, "invalid route %s %s", method ? method : "(null)",
                            pattern ? pattern : "(null)");
    rc = hs_parse_pattern(pattern, &r, err);
    for (size_t i = 0; rc == 0 && i < s->nroutes; i++)
        if (s->routes[i]->method == r.method && hs_same_shape(s->routes[i], &r))
            rc =
                kc_error_set(err, KC_EINVAL, "overlaps route %s %s", method, s->routes[i]->pattern);
    if (rc == 0 && s->nroutes == KC_HTTP_MAX_ROUTES)
        rc = kc_error_set(err, KC_EINVAL, "more than %d routes", KC_HTTP_MAX_ROUTES);
    if (rc != 0) {
        for (size_t i = 0; i < r.nsegs; i++)
            free(r.segs[i].text);
        kc_error_prefix(err, "invalid route %s %s", method, pattern);
        return rc;
    }
    if (s->nroutes == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->routes = kc_realloc(s->routes, s->cap * sizeof(*s->routes));
    }
    r.pattern = kc_strdup(pattern);
    r.fn = fn;
    r.arg = arg;
    s->routes[s->nroutes] = kc_malloc(sizeof(r));
    *s->routes[s->nroutes++] = r;
    return 0;
}

/* ---- the standard routes ------------------------------------------------------------- */

static void hs_health(struct kc_http_request *req, void *arg)
{
    (void)arg;
    kc_http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void hs_metrics(struct kc_http_request *req, void *arg)
{
    struct kc_http_server *s = arg;
    struct kc_sbuf out = KC_SBUF_INIT;

    kc_metrics_render(s->reg, &out);
    kc_http_reply_text(req, 200, KC_METRICS_CONTENT_TYPE, kc_sbuf_str(&out));
    kc_sbuf_fini(&out);
}

static void hs_failpoints_list(struct kc_http_request *req)
{
    struct kc_sbuf out = KC_SBUF_INIT;

    kc_failpoints_render(&out);
    kc_http_reply_text(req, 200, KC_HTTP_TEXT_TYPE, kc_sbuf_str(&out));
    kc_sbuf_fini(&out);
}

static void hs_failpoints_get(struct kc_http_request *req, void *arg)
{
    (void)arg;
    hs_failpoints_list(req);
}

static void hs_failpoints_delete(struct kc_http_request *req, void *arg)
{
    (void)arg;
    kc_failpoints_reset();
    hs_failpoints_list(req);
}

/*
 * PUT /v1/failpoints: lines of "name=spec" (or ';'-separated lists) joined
 * with ';' for kc_failpoint_configure(); blank lines and a line's trailing
 * ';' are ignored, so a GET answer can be sent back as is.
 */
static void hs_failpoints_put(struct kc_http_request *req, void *arg)
{
    size_t len;
    const char *body = kc_http_request_body(req, &len), *p = body, *end = body + len;
    struct kc_sbuf spec = KC_SBUF_INIT;
    struct kc_error err;

    (void)arg;
    if (memchr(body, '\0', len) != NULL) {
        kc_error_set(&err, KC_EINVAL, "request body holds a NUL byte");
        kc_http_reply_error(req, 400, &err);
        return;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        while (p < e && (*p == ' ' || *p == '\t' || *p == '\r'))
            p++;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == ';'))
            e--;
        if (e > p) {
            if (spec.len > 0)
                kc_sbuf_puts(&spec, ";");
            kc_sbuf_append(&spec, p, (size_t)(e - p));
        }
        p = nl != NULL ? nl + 1 : end;
    }
    if (kc_failpoint_configure(kc_sbuf_str(&spec), &err) != 0)
        kc_http_reply_error(req, 400, &err);
    else
        hs_failpoints_list(req);
    kc_sbuf_fini(&spec);
}

int kc_http_add_standard_routes(struct kc_http_server *s, struct kc_metrics_registry *reg,
                                struct kc_error *err)
{
    int rc;

    if ((rc = kc_counter_vec_register(reg, "kelp_http_requests_total",
                                      "HTTP requests answered, by route, method and status.",
                                      KC_LABELS("route", "method", "status"), &s->requests, err)) !=
            0 ||
        (rc = kc_histogram_vec_register(reg, "kelp_http_request_duration_seconds",
                                        "Time from reading an HTTP request to answering it.",
                                        KC_LABELS("route"), NULL, 0, &s->duration, err)) != 0) {
        s->requests = NULL;
        s->duration = NULL;
        return rc;
    }
    s->reg = reg;
    if ((rc = kc_http_route(s, "GET", "/v1/health", hs_health, s, err)) != 0 ||
        (rc = kc_http_route(s, "GET", "/metrics", hs_metrics, s, err)) != 0 ||
        (rc = kc_http_route(s, "GET", "/v1/failpoints", hs_failpoints_get, s, err)) != 0 ||
        (rc = kc_http_route(s, "PUT", "/v1/failpoints", hs_failpoints_put, s, err)) != 0 ||
        (rc = kc_http_route(s, "DELETE", "/v1/failpoints", hs_failpoints_delete, s, err)) != 0)
        return rc;
    return 0;
}
