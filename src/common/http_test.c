/* SPDX-License-Identifier: Apache-2.0 */
/* http_test.c -- unit tests for http.c: a live server on 127.0.0.1 and a raw-socket client. */
#include "common/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "common/buf.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/metrics.h"
#include "unit.h"

#define HT_WAIT_MS 10000 /* upper bound on every wait in these tests */

static double ht_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- a tiny, bounded HTTP client ---------------------------------------------- */

struct ht_conn {
    int fd;
    struct kc_sbuf in; /* received, not yet consumed */
    bool eof;
};

struct ht_resp {
    int status;
    char head[16384]; /* status line and headers, NUL-terminated */
    char *body;       /* NUL-terminated; free()d by ht_resp_fini() */
    size_t body_len;
};

static void ht_resp_fini(struct ht_resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Wait for events on fd until the deadline; fail the test on timeout. */
static void ht_poll(int fd, short events, double deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int left = (int)(deadline - ht_now_ms());
        if (left <= 0)
            kt_fail(__FILE__, __LINE__, "timed out waiting for the server");
        int n = poll(&p, 1, left);
        if (n > 0)
            return;
        if (n < 0 && errno != EINTR)
            kt_fail(__FILE__, __LINE__, "poll: %s", strerror(errno));
    }
}

static void ht_open(struct ht_conn *c, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    double deadline = ht_now_ms() + HT_WAIT_MS;
    int err = 0;
    socklen_t len = sizeof(err);

    memset(c, 0, sizeof(*c));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    KT_ASSERT(c->fd >= 0);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        KT_ASSERT_EQ(errno, EINPROGRESS);
        ht_poll(c->fd, POLLOUT, deadline);
        KT_ASSERT_EQ(getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
        KT_ASSERT_EQ(err, 0);
    }
}

static void ht_close(struct ht_conn *c)
{
    close(c->fd);
    kc_sbuf_fini(&c->in);
}

/* Send everything; false when the server closed the connection first. */
static bool ht_send(struct ht_conn *c, const void *data, size_t len)
{
    double deadline = ht_now_ms() + HT_WAIT_MS;
    const char *p = data;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            ht_poll(c->fd, POLLOUT, deadline);
        } else if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            return false;
        } else {
            kt_fail(__FILE__, __LINE__, "send: %s", strerror(errno));
        }
    }
    return true;
}

static bool ht_send_str(struct ht_conn *c, const char *s)
{
    return ht_send(c, s, strlen(s));
}

/* Read more bytes into c->in; false at EOF (or reset). */
static bool ht_fill(struct ht_conn *c, double deadline)
{
    char buf[65536];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            kc_sbuf_append(&c->in, buf, (size_t)n);
            return true;
        }
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            c->eof = true;
            return false;
        }
        if (errno != EAGAIN && errno != EINTR)
            kt_fail(__FILE__, __LINE__, "recv: %s", strerror(errno));
        ht_poll(c->fd, POLLIN, deadline);
    }
}

static void ht_consume(struct ht_conn *c, size_t n)
{
    if (n == 0)
        return;
    memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
    c->in.data[c->in.len] = '\0';
}

/* Case-insensitive header lookup in r->head; the value (copied into buf) or NULL. */
static const char *ht_header(const struct ht_resp *r, const char *name, char *buf, size_t len)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(buf, len, "%.*s", (int)(e != NULL ? e - v : (long)strlen(v)), v);
            return buf;
        }
    }
    return NULL;
}

/* Read one response; false when the connection ended before any byte of it. */
static bool ht_read(struct ht_conn *c, struct ht_resp *r, bool head_request)
{
    double deadline = ht_now_ms() + HT_WAIT_MS;
    char *end, val[64];
    size_t head_len, body_len = 0;
    bool have_len;

    memset(r, 0, sizeof(*r));
    while ((end = c->in.len > 0 ? strstr((char *)c->in.data, "\r\n\r\n") : NULL) == NULL) {
        if (!ht_fill(c, deadline)) {
            if (c->in.len == 0)
                return false;
            kt_fail(__FILE__, __LINE__, "connection closed inside a response head");
        }
    }
    head_len = (size_t)(end - (char *)c->in.data) + 4;
    KT_ASSERT(head_len < sizeof(r->head));
    memcpy(r->head, c->in.data, head_len);
    r->head[head_len] = '\0';
    KT_ASSERT_EQ(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
    ht_consume(c, head_len);
    have_len = ht_header(r, "Content-Length", val, sizeof(val)) != NULL;
    if (have_len)
        body_len = strtoul(val, NULL, 10);
    if (head_request || r->status < 200 || r->status == 204)
        have_len = true, body_len = 0;
    while (have_len ? c->in.len < body_len : !c->eof)
        if (!ht_fill(c, deadline) && have_len)
            kt_fail(__FILE__, __LINE__, "connection closed inside a response body");
    if (!have_len)
        body_len = c->in.len;
    r->body = malloc(body_len + 1);
    memcpy(r->body, c->in.data != NULL ? (char *)c->in.data : "", body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    ht_consume(c, body_len);
    return true;
}

/* True when the server closes the connection (within the bound) without sending more. */
static bool ht_closed_by_server(struct ht_conn *c)
{
    double deadline = ht_now_ms() + HT_WAIT_MS;
    while (ht_fill(c, deadline))
        ;
    return c->in.len == 0;
}

/* One request on a new connection. */
static void ht_do(int port, const char *raw, struct ht_resp *r)
{
    struct ht_conn c;
    ht_open(&c, port);
    ht_send_str(&c, raw);
    if (!ht_read(&c, r, strncmp(raw, "HEAD ", 5) == 0))
        kt_fail(__FILE__, __LINE__, "no response to %.40s", raw);
    ht_close(&c);
}

/* GET path with Connection: close. */
static void ht_get(int port, const char *path, struct ht_resp *r)
{
    char raw[1024];
    snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    ht_do(port, raw, r);
}

static void ht_send_body(int port, const char *method, const char *path, const char *body,
                         struct ht_resp *r)
{
    struct kc_sbuf raw = KC_SBUF_INIT;
    kc_sbuf_printf(
        &raw, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
        method, path, strlen(body), body);
    ht_do(port, kc_sbuf_str(&raw), r);
    kc_sbuf_fini(&raw);
}

/* ---- the server under test ----------------------------------------------------- */

struct ht_server {
    struct event_base *base;
    struct kc_http_server *srv;
    struct kc_metrics_registry *reg;
    pthread_t thread;
    int port;
};

static void ht_tenant(struct kc_http_request *req, void *arg)
{
    (void)arg;
    kc_http_reply_json(req, 200,
                       json_pack("{s:s, s:s, s:s, s:s}", "tenant",
                                 kc_http_request_param(req, "tenant"), "timeline",
                                 kc_http_request_param(req, "timeline"), "route",
                                 kc_http_request_route(req), "path", kc_http_request_path(req)));
}

static void ht_count(struct kc_http_request *req, void *arg)
{
    (void)arg;
    kc_http_reply_json(req, 200, json_pack("{s:i}", "count", 3));
}

static json_t *ht_opt(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static void ht_query(struct kc_http_request *req, void *arg)
{
    (void)arg;
    kc_http_reply_json(req, 200,
                       json_pack("{s:o, s:o, s:o, s:o, s:o}", "x",
                                 ht_opt(kc_http_request_query(req, "x")), "y",
                                 ht_opt(kc_http_request_query(req, "y")), "flag",
                                 ht_opt(kc_http_request_query(req, "flag")), "z",
                                 ht_opt(kc_http_request_query(req, "z")), "missing",
                                 ht_opt(kc_http_request_query(req, "missing"))));
}

static void ht_echo(struct kc_http_request *req, void *arg)
{
    json_t *body = kc_http_request_json(req);
    (void)arg;
    if (body == NULL)
        return;
    kc_http_reply_json(req, 201, json_pack("{s:O}", "got", body));
}

static void ht_fail(struct kc_http_request *req, void *arg)
{
    struct kc_error err;
    (void)arg;
    kc_error_set(&err, KC_ENOTFOUND, "tenant \"%s\" not found", "t1");
    kc_error_detail(&err, "No tenant has that id.");
    kc_error_hint(&err, "List tenants with GET /v1/tenants.");
    kc_http_reply_error(req, 0, &err);
}

static void ht_forget(struct kc_http_request *req, void *arg)
{
    (void)req, (void)arg;
}

static void ht_null(struct kc_http_request *req, void *arg)
{
    (void)arg;
    kc_http_reply_json(req, 200, NULL);
}

static void ht_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kc_http_request *req = arg;
    (void)fd, (void)what;
    kc_http_reply_text(req, 200, NULL, "later");
}

static void ht_defer(struct kc_http_request *req, void *arg)
{
    struct ht_server *h = arg;
    struct timeval tv = {0, 50000};
    kc_http_request_defer(req);
    event_base_once(h->base, -1, EV_TIMEOUT, ht_deferred_cb, req, &tv);
}

static void ht_raw(struct kc_http_request *req, void *arg)
{
    size_t len;
    char text[64];
    (void)arg;
    (void)kc_http_request_body(req, &len);
    snprintf(text, sizeof(text), "%zu bytes", len);
    kc_http_reply_header(req, "X-Test", "yes");
    kc_http_reply_text(req, 200, NULL, text);
}

/* A text reply of ?n= bytes, for replies larger than the socket buffers. */
static void ht_big(struct kc_http_request *req, void *arg)
{
    const char *n = kc_http_request_query(req, "n");
    size_t len = n != NULL ? strtoul(n, NULL, 10) : 0;
    char *text = malloc(len + 1);
    (void)arg;
    for (size_t i = 0; i < len; i++)
        text[i] = (char)('a' + i % 26);
    text[len] = '\0';
    kc_http_reply_text(req, 200, NULL, text);
    free(text);
}

/* Defers and never replies: the server must drop it when destroyed. */
static void ht_hang(struct kc_http_request *req, void *arg)
{
    (void)arg;
    kc_http_request_defer(req);
}

static void *ht_loop(void *arg)
{
    struct ht_server *h = arg;
    event_base_loop(h->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void ht_route(struct ht_server *h, const char *method, const char *pattern,
                     kc_http_handler fn)
{
    struct kc_error err;
    if (kc_http_route(h->srv, method, pattern, fn, h, &err) != 0)
        kt_fail(__FILE__, __LINE__, "kc_http_route: %s", err.message);
}

/* Start a server with the standard and test routes on 127.0.0.1:0 in a loop thread. */
static void ht_start(struct ht_server *h, const struct kc_http_limits *limits, const char *token)
{
    struct kc_error err;

    kc_log_set_level(KC_LOG_WARN);
    KT_ASSERT_EQ(evthread_use_pthreads(), 0);
    memset(h, 0, sizeof(*h));
    h->base = event_base_new();
    h->reg = kc_metrics_registry_create();
    KT_ASSERT(h->base != NULL);
    if (kc_http_server_create(h->base, "127.0.0.1", 0, limits, &h->srv, &err) != 0)
        kt_fail(__FILE__, __LINE__, "kc_http_server_create: %s", err.message);
    KT_ASSERT_EQ(kc_http_add_standard_routes(h->srv, h->reg, &err), 0);
    ht_route(h, "GET", "/v1/tenants/{tenant}/timelines/{timeline}", ht_tenant);
    ht_route(h, "GET", "/v1/tenants/count/timelines/{timeline}", ht_count);
    ht_route(h, "GET", "/v1/echo", ht_query);
    ht_route(h, "POST", "/v1/echo", ht_echo);
    ht_route(h, "GET", "/v1/fail", ht_fail);
    ht_route(h, "GET", "/v1/forget", ht_forget);
    ht_route(h, "GET", "/v1/null", ht_null);
    ht_route(h, "GET", "/v1/defer", ht_defer);
    ht_route(h, "GET", "/v1/big", ht_big);
    ht_route(h, "GET", "/v1/hang", ht_hang);
    ht_route(h, "PUT", "/v1/raw", ht_raw);
    ht_route(h, "POST", "/v1/raw", ht_raw);
    KT_ASSERT_EQ(kc_http_server_set_token(h->srv, token, &err), 0);
    h->port = kc_http_server_port(h->srv);
    KT_ASSERT(h->port > 0);
    KT_ASSERT_EQ(pthread_create(&h->thread, NULL, ht_loop, h), 0);
}

static void ht_stop(struct ht_server *h)
{
    struct timespec ts;

    KT_ASSERT_EQ(event_base_loopbreak(h->base), 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += HT_WAIT_MS / 1000;
    if (pthread_timedjoin_np(h->thread, NULL, &ts) != 0)
        kt_fail(__FILE__, __LINE__, "event loop did not stop");
    kc_http_server_destroy(h->srv);
    event_base_free(h->base);
    kc_metrics_registry_destroy(h->reg);
    libevent_global_shutdown();
}

/* The server still answers GET /v1/health. */
static void ht_assert_alive(struct ht_server *h)
{
    struct ht_resp r;
    ht_get(h->port, "/v1/health", &r);
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_STR_EQ(r.body, "{\"status\":\"ok\"}");
    ht_resp_fini(&r);
}

/* ---- routing -------------------------------------------------------------------- */

KT_TEST(http_route_params)
{
    struct ht_server h;
    struct ht_resp r;
    char ct[64];

    ht_start(&h, NULL, NULL);
    ht_get(h.port, "/v1/tenants/t1/timelines/tl%20two", &r);
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_STR_EQ(ht_header(&r, "Content-Type", ct, sizeof(ct)), "application/json");
    KT_ASSERT_STR_EQ(r.body, "{\"tenant\":\"t1\",\"timeline\":\"tl two\",\"route\":"
                             "\"/v1/tenants/{tenant}/timelines/{timeline}\",\"path\":"
                             "\"/v1/tenants/t1/timelines/tl%20two\"}");
    ht_resp_fini(&r);
    /* An encoded slash stays inside its segment. */
    ht_get(h.port, "/v1/tenants/a%2Fb/timelines/x?ignored=1", &r);
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_CONTAINS(r.body, "\"tenant\":\"a/b\"");
    ht_resp_fini(&r);
    /* A literal segment wins over {tenant}. */
    ht_get(h.port, "/v1/tenants/count/timelines/x", &r);
    KT_ASSERT_STR_EQ(r.body, "{\"count\":3}");
    ht_resp_fini(&r);
    /* Empty segments, trailing slashes and extra segments do not match. */
    ht_get(h.port, "/v1/tenants//timelines/x", &r);
    KT_ASSERT_EQ(r.status, 404);
    ht_resp_fini(&r);
    ht_get(h.port, "/v1/tenants/a/timelines/x/", &r);
    KT_ASSERT_EQ(r.status, 404);
    ht_resp_fini(&r);
    ht_get(h.port, "/v1/tenants/a/timelines/x/y", &r);
    KT_ASSERT_EQ(r.status, 404);
    ht_resp_fini(&r);
    /* A malformed escape is a 400 in the error shape. */
    ht_get(h.port, "/v1/tenants/a%zz/timelines/x", &r);
    KT_ASSERT_EQ(r.status, 400);
    KT_ASSERT_STR_EQ(r.body, "{\"error\":{\"code\":\"EINVAL\",\"message\":\"invalid "
                             "percent-encoding in request target\"}}");
    ht_resp_fini(&r);
    ht_get(h.port, "/v1/tenants/a%00/timelines/x", &r);
    KT_ASSERT_EQ(r.status, 400);
    ht_resp_fini(&r);
    ht_stop(&h);
}

KT_TEST(http_query_params)
{
    struct ht_server h;
    struct ht_resp r;

    ht_start(&h, NULL, NULL);
    ht_get(h.port, "/v1/echo?x=1&y=hello%20world&flag&z=a+b&&x=2", &r);
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_STR_EQ(r.body, "{\"x\":\"1\",\"y\":\"hello world\",\"flag\":\"\",\"z\":\"a "
                             "b\",\"missing\":null}");
    ht_resp_fini(&r);
    ht_get(h.port, "/v1/echo?x=%4", &r);
    KT_ASSERT_EQ(r.status, 400);
    KT_ASSERT_CONTAINS(r.body, "\"code\":\"EINVAL\"");
    ht_resp_fini(&r);
    ht_stop(&h);
}

KT_TEST(http_not_found_and_method_not_allowed)
{
    struct ht_server h;
    struct ht_resp r;
    char allow[64];

    ht_start(&h, NULL, NULL);
    ht_get(h.port, "/v1/nope", &r);
    KT_ASSERT_EQ(r.status, 404);
    KT_ASSERT_STR_EQ(
        r.body,
        "{\"error\":{\"code\":\"ENOTFOUND\",\"message\":\"unknown path \\\"/v1/nope\\\"\"}}");
    ht_resp_fini(&r);
    ht_send_body(h.port, "POST", "/v1/health", "", &r);
    KT_ASSERT_EQ(r.status, 405);
    KT_ASSERT_STR_EQ(ht_header(&r, "Allow", allow, sizeof(allow)), "GET, HEAD");
    KT_ASSERT_STR_EQ(r.body, "{\"error\":{\"code\":\"EINVAL\",\"message\":\"method POST is not "
                             "allowed for path \\\"/v1/health\\\"\",\"detail\":\"Allowed methods: "
                             "GET, HEAD.\"}}");
    ht_resp_fini(&r);
    ht_send_body(h.port, "PATCH", "/v1/failpoints", "", &r);
    KT_ASSERT_EQ(r.status, 405);
    KT_ASSERT_STR_EQ(ht_header(&r, "Allow", allow, sizeof(allow)), "GET, HEAD, PUT, DELETE");
    ht_resp_fini(&r);
    /* HEAD is answered by the GET route, without a body. */
    ht_do(h.port, "HEAD /v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r);
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_EQ(r.body_len, 0);
    ht_resp_fini(&r);
    ht_stop(&h);
}

/* ---- JSON bodies and the error shape ---------------------------------------------- */

KT_TEST(http_json_bodies)
{
    struct ht_server h;
    struct ht_resp r;

    ht_start(&h, NULL, NULL);
    ht_send_body(h.port, "POST", "/v1/echo", "{\"a\": [1, 2.5, \"x\"], \"b\": null}", &r);
    KT_ASSERT_EQ(r.status, 201);
    KT_ASSERT_STR_EQ(r.body, "{\"got\":{\"a\":[1,2.5,\"x\"],\"b\":null}}");
    ht_resp_fini(&r);
    ht_send_body(h.port, "POST", "/v1/echo", "{\"a\": ", &r);
    KT_ASSERT_EQ(r.status, 400);
    KT_ASSERT_CONTAINS(r.body, "{\"error\":{\"code\":\"EINVAL\",\"message\":\"invalid JSON in "
                               "request body\",\"detail\":\"");
    KT_ASSERT_CONTAINS(r.body, "at line 1, column");
    ht_resp_fini(&r);
    ht_send_body(h.port, "POST", "/v1/echo", "{\"a\": 1, \"a\": 2}", &r);
    KT_ASSERT_EQ(r.status, 400);
    KT_ASSERT_CONTAINS(r.body, "duplicate");
    ht_resp_fini(&r);
    ht_send_body(h.port, "POST", "/v1/echo", "", &r);
    KT_ASSERT_EQ(r.status, 400);
    KT_ASSERT_STR_EQ(r.body, "{\"error\":{\"code\":\"EINVAL\",\"message\":\"request body is "
                             "empty\",\"hint\":\"Send a JSON document as the body.\"}}");
    ht_resp_fini(&r);
    ht_send_body(h.port, "POST", "/v1/echo", "[1] trailing", &r);
    KT_ASSERT_EQ(r.status, 400);
    ht_resp_fini(&r);
    ht_stop(&h);
}

KT_TEST(http_error_shape)
{
    struct ht_server h;
    struct ht_resp r;

    ht_start(&h, NULL, NULL);
    ht_get(h.port, "/v1/fail", &r);
    KT_ASSERT_EQ(r.status, 404);
    KT_ASSERT_STR_EQ(r.body, "{\"error\":{\"code\":\"ENOTFOUND\",\"message\":\"tenant \\\"t1\\\" "
                             "not found\",\"detail\":\"No tenant has that id.\",\"hint\":\"List "
                             "tenants with GET /v1/tenants.\"}}");
    ht_resp_fini(&r);
    ht_stop(&h);
}

KT_TEST(http_error_json_builder)
{
    struct kc_error err;
    json_t *j;
    char *s;

    j = kc_http_error_json(401, NULL);
    s = json_dumps(j, JSON_COMPACT);
    KT_ASSERT_STR_EQ(s, "{\"error\":{\"code\":\"EAUTH\",\"message\":\"unauthorized\"}}");
    free(s);
    json_decref(j);
    kc_error_set(&err, KC_EIO, "bad byte \xff here");
    kc_error_hint(&err, "Retry.");
    j = kc_http_error_json(500, &err);
    s = json_dumps(j, JSON_COMPACT);
    KT_ASSERT_STR_EQ(s, "{\"error\":{\"code\":\"EIO\",\"message\":\"bad byte ? "
                        "here\",\"hint\":\"Retry.\"}}");
    free(s);
    json_decref(j);
    KT_ASSERT_EQ(kc_http_status_for_error(KC_EINVAL), 400);
    KT_ASSERT_EQ(kc_http_status_for_error(KC_ENOTFOUND), 404);
    KT_ASSERT_EQ(kc_http_status_for_error(KC_ETOOBIG), 413);
    KT_ASSERT_EQ(kc_http_status_for_error(KC_ETIMEDOUT), 504);
    KT_ASSERT_EQ(kc_http_status_for_error(KC_EIO), 500);
}

/* ---- limits --------------------------------------------------------------------- */

/* Send raw on a new connection; return the status answered (0 when none). */
static int ht_raw_status(int port, const char *raw, size_t len)
{
    struct ht_conn c;
    struct ht_resp r;
    int status = 0;

    ht_open(&c, port);
    if (ht_send(&c, raw, len))
        shutdown(c.fd, SHUT_WR);
    if (ht_read(&c, &r, false)) {
        status = r.status;
        if (status >= 400)
            KT_ASSERT_CONTAINS(r.body, "{\"error\":{\"code\":\"E");
        ht_resp_fini(&r);
    }
    ht_close(&c);
    return status;
}

#define HT_RAW(port, s) ht_raw_status((port), (s), sizeof(s) - 1)

/* POST a body of n bytes declared as decl bytes; returns the status (0 when no response). */
static int ht_post_size(int port, size_t decl, size_t n)
{
    struct ht_conn c;
    struct ht_resp r;
    char head[256];
    char *body = malloc(n + 1);
    int status = 0;

    memset(body, 'x', n);
    snprintf(head, sizeof(head), "POST /v1/raw HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             decl);
    ht_open(&c, port);
    if (ht_send_str(&c, head))
        (void)ht_send(&c, body, n);
    if (ht_read(&c, &r, false)) {
        status = r.status;
        if (status == 413) {
            KT_ASSERT_CONTAINS(r.body, "{\"error\":{\"code\":\"ETOOBIG\",\"message\":\"request "
                                       "body too large\",\"detail\":\"The body has ");
            KT_ASSERT(ht_closed_by_server(&c));
        }
        ht_resp_fini(&r);
    }
    ht_close(&c);
    free(body);
    return status;
}

KT_TEST(http_body_limit)
{
    struct kc_http_limits lim = {.max_body_bytes = 1000};
    struct ht_server h;

    ht_start(&h, &lim, NULL);
    KT_ASSERT_EQ(ht_post_size(h.port, 1000, 1000), 200);
    KT_ASSERT_EQ(ht_post_size(h.port, 1001, 1001), 413);
    KT_ASSERT_EQ(ht_post_size(h.port, 4 << 20, 4 << 20), 413);     /* read and dropped */
    KT_ASSERT_EQ(ht_post_size(h.port, 1000000000000ULL, 10), 413); /* answered at once */
    /* A client waiting on 100-continue hears 413 at once, without sending the body. */
    KT_ASSERT_EQ(HT_RAW(h.port, "PUT /v1/raw HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: "
                                "5000\r\n\r\n"),
                 413);
    ht_assert_alive(&h);
    ht_stop(&h);
}

KT_TEST(http_head_limit)
{
    struct kc_http_limits lim = {.max_head_bytes = 2048};
    struct ht_server h;
    struct ht_resp r;
    struct kc_sbuf raw = KC_SBUF_INIT;

    ht_start(&h, &lim, NULL);
    kc_sbuf_printf(&raw, "GET /v1/health HTTP/1.1\r\nHost: t\r\nX-Big: ");
    for (int i = 0; i < 3000; i++)
        kc_sbuf_puts(&raw, "a");
    kc_sbuf_puts(&raw, "\r\n\r\n");
    ht_do(h.port, kc_sbuf_str(&raw), &r);
    KT_ASSERT_EQ(r.status, 431);
    KT_ASSERT_STR_EQ(r.body, "{\"error\":{\"code\":\"ETOOBIG\",\"message\":\"request head too "
                             "large\",\"detail\":\"The request line and headers exceed 2048 "
                             "bytes.\"}}");
    ht_resp_fini(&r);
    kc_sbuf_fini(&raw);
    ht_assert_alive(&h);
    ht_stop(&h);
}

KT_TEST(http_idle_timeout)
{
    struct kc_http_limits lim = {.timeout_ms = 200};
    struct ht_server h;
    struct ht_conn c;
    double start;

    ht_start(&h, &lim, NULL);
    ht_open(&c, h.port);
    start = ht_now_ms();
    ht_send_str(&c, "GET /v1/heal");
    KT_ASSERT(ht_closed_by_server(&c));
    KT_ASSERT(ht_now_ms() - start >= 150);
    ht_close(&c);
    ht_assert_alive(&h);
    ht_stop(&h);
}

/* ---- malformed HTTP -------------------------------------------------------------- */

KT_TEST(http_malformed_requests)
{
    struct ht_server h;

    ht_start(&h, NULL, NULL);
    KT_ASSERT_EQ(HT_RAW(h.port, "\x16\x03\x01\x02\x00garbage\r\n\r\n"), 400);
    KT_ASSERT_EQ(HT_RAW(h.port, "hello world\r\n\r\n"), 400);
    KT_ASSERT_EQ(HT_RAW(h.port, "GET /v1/health\r\n\r\n"), 400);
    KT_ASSERT_EQ(HT_RAW(h.port, "GET v1/health HTTP/1.1\r\n\r\n"), 400);
    KT_ASSERT_EQ(HT_RAW(h.port, "GET /v1/health HTTP/2.0\r\n\r\n"), 505);
    KT_ASSERT_EQ(HT_RAW(h.port, "TRACE / HTTP/1.1\r\n\r\n"), 501);
    KT_ASSERT_EQ(HT_RAW(h.port, "GET / HTTP/1.1\r\nNoColon\r\n\r\n"), 400);
    KT_ASSERT_EQ(HT_RAW(h.port, "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n"), 400);
    KT_ASSERT_EQ(HT_RAW(h.port, "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
    KT_ASSERT_EQ(
        HT_RAW(h.port, "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"), 400);
    KT_ASSERT_EQ(
        HT_RAW(h.port, "PUT /v1/raw HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 411);
    KT_ASSERT_EQ(HT_RAW(h.port, "PUT /v1/raw HTTP/1.1\r\nExpect: magic\r\n\r\n"), 417);
    KT_ASSERT_EQ(HT_RAW(h.port, "GET /a\x01 HTTP/1.1\r\n\r\n"), 400);
    /* Truncated requests: the client gives up; the server must not mind. */
    KT_ASSERT_EQ(HT_RAW(h.port, "GET /v1/hea"), 0);
    KT_ASSERT_EQ(HT_RAW(h.port, "PUT /v1/raw HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc"), 0);
    KT_ASSERT_EQ(HT_RAW(h.port, ""), 0);
    /* A marker header from a client is an ordinary header. */
    KT_ASSERT_EQ(HT_RAW(h.port, "GET /.kelp/rejected HTTP/1.1\r\nKelp-Gate: guess\r\n\r\n"), 404);
    ht_assert_alive(&h);
    ht_stop(&h);
}

KT_TEST(http_random_garbage)
{
    struct ht_server h;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    char buf[512];

    ht_start(&h, NULL, NULL);
    for (int i = 0; i < 60; i++) {
        size_t n = 1 + (size_t)(i * 7 % (int)sizeof(buf));
        for (size_t j = 0; j < n; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[j] = (char)x;
        }
        if (i % 3 == 1)
            memcpy(buf, "GET / HTTP/1.1\r\n", n < 16 ? n : 16); /* garbage after a good start */
        int status = ht_raw_status(h.port, buf, n);
        KT_ASSERT(status == 0 || (status >= 400 && status < 600));
    }
    ht_assert_alive(&h);
    ht_stop(&h);
}

/* ---- the standard routes -------------------------------------------------------- */

KT_TEST(http_metrics_endpoint)
{
    struct ht_server h;
    struct ht_resp r;
    char ct[128];

    ht_start(&h, NULL, NULL);
    ht_assert_alive(&h);
    ht_assert_alive(&h);
    ht_get(h.port, "/v1/nope", &r);
    ht_resp_fini(&r);
    ht_get(h.port, "/metrics", &r);
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_STR_EQ(ht_header(&r, "Content-Type", ct, sizeof(ct)), KC_METRICS_CONTENT_TYPE);
    KT_ASSERT_CONTAINS(r.body, "# TYPE kelp_http_requests_total counter\n");
    KT_ASSERT_CONTAINS(
        r.body, "kelp_http_requests_total{route=\"/v1/health\",method=\"GET\",status=\"200\"} 2\n");
    KT_ASSERT_CONTAINS(
        r.body, "kelp_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n");
    KT_ASSERT_CONTAINS(r.body,
                       "kelp_http_request_duration_seconds_count{route=\"/v1/health\"} 2\n");
    ht_resp_fini(&r);
    ht_stop(&h);
}

KT_TEST(http_failpoints_endpoint)
{
    struct ht_server h;
    struct ht_resp r;

    ht_start(&h, NULL, NULL);
    ht_send_body(h.port, "PUT", "/v1/failpoints",
                 "test.http.b=2*sleep(10)\r\n\n  test.http.a=return(EIO);\n", &r);
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_STR_EQ(r.body, "test.http.a=return(EIO)\ntest.http.b=2*sleep(10)\n");
    ht_resp_fini(&r);
    KT_ASSERT_EQ(kc_failpoint_get("test.http.a", NULL, 0), 1);
    /* A bad entry changes nothing, not even the good entries before it. */
    ht_send_body(h.port, "PUT", "/v1/failpoints", "test.http.a=off\ntest.http.c=retrun", &r);
    KT_ASSERT_EQ(r.status, 400);
    KT_ASSERT_CONTAINS(r.body, "{\"error\":{\"code\":\"EINVAL\",\"message\":\"invalid "
                               "specification for failpoint \\\"test.http.c\\\"");
    ht_resp_fini(&r);
    ht_get(h.port, "/v1/failpoints", &r);
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_STR_EQ(r.body, "test.http.a=return(EIO)\ntest.http.b=2*sleep(10)\n");
    ht_resp_fini(&r);
    /* A GET answer can be sent back as is. */
    ht_send_body(h.port, "PUT", "/v1/failpoints", "test.http.a=off\n", &r);
    KT_ASSERT_STR_EQ(r.body, "test.http.b=2*sleep(10)\n");
    ht_resp_fini(&r);
    ht_do(h.port, "DELETE /v1/failpoints HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r);
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_STR_EQ(r.body, "");
    ht_resp_fini(&r);
    ht_get(h.port, "/v1/failpoints", &r);
    KT_ASSERT_STR_EQ(r.body, "");
    ht_resp_fini(&r);
    ht_stop(&h);
}

KT_TEST(http_bearer_token)
{
    struct ht_server h;
    struct ht_resp r;
    struct kc_error err;
    char www[64];

    ht_start(&h, NULL, "s3cret-token");
    ht_get(h.port, "/v1/failpoints", &r);
    KT_ASSERT_EQ(r.status, 401);
    KT_ASSERT_STR_EQ(ht_header(&r, "WWW-Authenticate", www, sizeof(www)), "Bearer realm=\"kelp\"");
    KT_ASSERT_CONTAINS(r.body, "{\"error\":{\"code\":\"EAUTH\",\"message\":\"authentication "
                               "required\",\"hint\":");
    ht_resp_fini(&r);
    /* Unknown paths need the token too: no probing without it. */
    ht_get(h.port, "/v1/nope", &r);
    KT_ASSERT_EQ(r.status, 401);
    ht_resp_fini(&r);
    ht_do(h.port,
          "GET /v1/failpoints HTTP/1.1\r\nAuthorization: Bearer s3cret-toke\r\nConnection: "
          "close\r\n\r\n",
          &r);
    KT_ASSERT_EQ(r.status, 401);
    KT_ASSERT_CONTAINS(r.body, "invalid bearer token");
    ht_resp_fini(&r);
    ht_do(h.port,
          "GET /v1/failpoints HTTP/1.1\r\nAuthorization: Bearer s3cret-token2\r\nConnection: "
          "close\r\n\r\n",
          &r);
    KT_ASSERT_EQ(r.status, 401);
    ht_resp_fini(&r);
    ht_do(h.port,
          "GET /v1/failpoints HTTP/1.1\r\nAuthorization: Basic s3cret-token\r\nConnection: "
          "close\r\n\r\n",
          &r);
    KT_ASSERT_EQ(r.status, 401);
    ht_resp_fini(&r);
    ht_do(h.port,
          "GET /v1/failpoints HTTP/1.1\r\nAuthorization: bearer s3cret-token\r\nConnection: "
          "close\r\n\r\n",
          &r);
    KT_ASSERT_EQ(r.status, 200);
    ht_resp_fini(&r);
    /* Health and metrics stay open. */
    ht_assert_alive(&h);
    ht_get(h.port, "/metrics", &r);
    KT_ASSERT_EQ(r.status, 200);
    ht_resp_fini(&r);
    KT_ASSERT_EQ(kc_http_server_set_token(h.srv, "two words", &err), KC_EINVAL);
    ht_stop(&h);
}

/* ---- connections ------------------------------------------------------------------- */

KT_TEST(http_keepalive_and_pipelining)
{
    struct ht_server h;
    struct ht_conn c;
    struct ht_resp r;
    char xt[8];

    ht_start(&h, NULL, NULL);
    ht_open(&c, h.port);
    for (int i = 0; i < 200; i++) {
        ht_send_str(&c, i % 2 ? "GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n"
                              : "PUT /v1/raw HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        KT_ASSERT(ht_read(&c, &r, false));
        KT_ASSERT_EQ(r.status, 200);
        KT_ASSERT_STR_EQ(r.body, i % 2 ? "{\"status\":\"ok\"}" : "3 bytes");
        ht_resp_fini(&r);
    }
    /* Three requests in one write come back in order. */
    ht_send_str(&c, "PUT /v1/raw HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /v1/nope "
                    "HTTP/1.1\r\n\r\nGET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n");
    KT_ASSERT(ht_read(&c, &r, false));
    KT_ASSERT_STR_EQ(r.body, "5 bytes");
    KT_ASSERT_STR_EQ(ht_header(&r, "X-Test", xt, sizeof(xt)), "yes");
    ht_resp_fini(&r);
    KT_ASSERT(ht_read(&c, &r, false));
    KT_ASSERT_EQ(r.status, 404);
    ht_resp_fini(&r);
    KT_ASSERT(ht_read(&c, &r, false));
    KT_ASSERT_EQ(r.status, 200);
    ht_resp_fini(&r);
    KT_ASSERT(ht_closed_by_server(&c));
    ht_close(&c);
    for (int i = 0; i < 100; i++)
        ht_assert_alive(&h);
    ht_stop(&h);
}

KT_TEST(http_expect_continue)
{
    struct ht_server h;
    struct ht_conn c;
    struct ht_resp r;

    ht_start(&h, NULL, NULL);
    ht_open(&c, h.port);
    ht_send_str(&c, "PUT /v1/raw HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    KT_ASSERT(ht_read(&c, &r, false));
    KT_ASSERT_EQ(r.status, 100);
    ht_resp_fini(&r);
    ht_send_str(&c, "abcd");
    KT_ASSERT(ht_read(&c, &r, false));
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_STR_EQ(r.body, "4 bytes");
    ht_resp_fini(&r);
    ht_close(&c);
    ht_stop(&h);
}

struct ht_client_arg {
    int port, id, ok;
};

static void *ht_client(void *p)
{
    struct ht_client_arg *a = p;
    for (int i = 0; i < 40; i++) {
        struct ht_resp r;
        char path[128];
        snprintf(path, sizeof(path), "/v1/tenants/c%d/timelines/r%d", a->id, i);
        ht_get(a->port, path, &r);
        snprintf(path, sizeof(path), "\"tenant\":\"c%d\",\"timeline\":\"r%d\"", a->id, i);
        if (r.status == 200 && strstr(r.body, path) != NULL)
            a->ok++;
        ht_resp_fini(&r);
    }
    return NULL;
}

KT_TEST(http_concurrent_clients)
{
    struct ht_server h;
    struct ht_client_arg args[4];
    pthread_t t[4];

    ht_start(&h, NULL, NULL);
    for (int i = 0; i < 4; i++) {
        args[i] = (struct ht_client_arg){.port = h.port, .id = i};
        KT_ASSERT_EQ(pthread_create(&t[i], NULL, ht_client, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 30;
        KT_ASSERT_EQ(pthread_timedjoin_np(t[i], NULL, &ts), 0);
        KT_ASSERT_EQ(args[i].ok, 40);
    }
    ht_stop(&h);
}

/* ---- handlers ----------------------------------------------------------------------- */

KT_TEST(http_deferred_and_missing_replies)
{
    struct ht_server h;
    struct ht_resp r;
    struct ht_conn c;

    ht_start(&h, NULL, NULL);
    ht_get(h.port, "/v1/defer", &r);
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_STR_EQ(r.body, "later");
    ht_resp_fini(&r);
    kc_log_set_level(KC_LOG_FATAL); /* the error line is expected */
    ht_get(h.port, "/v1/forget", &r);
    KT_ASSERT_EQ(r.status, 500);
    KT_ASSERT_STR_EQ(r.body, "{\"error\":{\"code\":\"EIO\",\"message\":\"handler for GET "
                             "/v1/forget did not reply\"}}");
    ht_resp_fini(&r);
    ht_get(h.port, "/v1/null", &r);
    kc_log_set_level(KC_LOG_WARN);
    KT_ASSERT_EQ(r.status, 500);
    KT_ASSERT_STR_EQ(r.body, "{\"error\":{\"code\":\"EIO\",\"message\":\"reply could "
                             "not be encoded as JSON\"}}");
    ht_resp_fini(&r);
    /* A client that leaves before a deferred reply does no harm. */
    ht_open(&c, h.port);
    ht_send_str(&c, "GET /v1/defer HTTP/1.1\r\n\r\n");
    ht_close(&c);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    ht_assert_alive(&h);
    ht_stop(&h);
}

KT_TEST(http_large_reply_slow_reader)
{
    struct ht_server h;
    struct ht_conn c;
    struct ht_resp r;
    struct timespec pause = {0, 200 * 1000 * 1000};
    size_t n = 8u << 20;

    ht_start(&h, NULL, NULL);
    ht_open(&c, h.port);
    ht_send_str(&c, "GET /v1/big?n=8388608 HTTP/1.1\r\nConnection: close\r\n\r\n");
    nanosleep(&pause, NULL); /* the server fills the socket buffers and waits */
    KT_ASSERT(ht_read(&c, &r, false));
    KT_ASSERT_EQ(r.status, 200);
    KT_ASSERT_UEQ(r.body_len, n);
    for (size_t i = 0; i < n; i += 4099)
        KT_ASSERT_EQ(r.body[i], 'a' + (int)(i % 26));
    ht_resp_fini(&r);
    KT_ASSERT(ht_closed_by_server(&c));
    ht_close(&c);
    /* A client that leaves in the middle of a large reply does no harm. */
    ht_open(&c, h.port);
    ht_send_str(&c, "GET /v1/big?n=8388608 HTTP/1.1\r\n\r\n");
    nanosleep(&pause, NULL);
    ht_close(&c);
    ht_assert_alive(&h);
    ht_stop(&h);
}

KT_TEST(http_destroy_with_deferred_requests)
{
    struct ht_server h;
    struct ht_conn stay, leave;
    struct timespec pause = {0, 100 * 1000 * 1000};

    ht_start(&h, NULL, NULL);
    ht_open(&stay, h.port);
    ht_open(&leave, h.port);
    ht_send_str(&stay, "GET /v1/hang HTTP/1.1\r\n\r\n");
    ht_send_str(&leave, "GET /v1/hang HTTP/1.1\r\n\r\n");
    nanosleep(&pause, NULL);
    ht_close(&leave);
    nanosleep(&pause, NULL);
    ht_assert_alive(&h);
    ht_stop(&h); /* frees both deferred requests (valgrind and ASan check) */
    KT_ASSERT(ht_closed_by_server(&stay));
    ht_close(&stay);
}

static void ht_noop(struct kc_http_request *req, void *arg)
{
    (void)arg;
    kc_http_reply_text(req, 204, NULL, "");
}

KT_TEST(http_create_and_route_errors)
{
    struct event_base *base = event_base_new();
    struct kc_http_server *s, *s2;
    struct kc_error err;

    kc_log_set_level(KC_LOG_ERROR);
    KT_ASSERT_EQ(kc_http_server_create(base, "127.0.0.1", -1, NULL, &s, &err), KC_EINVAL);
    KT_ASSERT(s == NULL);
    KT_ASSERT_EQ(kc_http_server_create(base, "no.such.host.invalid", 0, NULL, &s, &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "could not listen for HTTP on no.such.host.invalid:0");
    KT_ASSERT_EQ(kc_http_server_create(base, "127.0.0.1", 0, NULL, &s, &err), 0);
    KT_ASSERT_EQ(kc_http_server_create(base, "127.0.0.1", kc_http_server_port(s), NULL, &s2, &err),
                 KC_EIO);

    KT_ASSERT_EQ(kc_http_route(s, "GET", "/v1/x/{id}", ht_noop, NULL, &err), 0);
    KT_ASSERT_EQ(kc_http_route(s, "PUT", "/v1/x/{id}", ht_noop, NULL, &err), 0);
    KT_ASSERT_EQ(kc_http_route(s, "GET", "/v1/x/all", ht_noop, NULL, &err), 0);
    KT_ASSERT_EQ(kc_http_route(s, "GET", "/", ht_noop, NULL, &err), 0);
    KT_ASSERT_EQ(kc_http_route(s, "GET", "/v1/x/{other}", ht_noop, NULL, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "invalid route GET /v1/x/{other}: overlaps route GET /v1/x/{id}");
    KT_ASSERT_EQ(kc_http_route(s, "get", "/a", ht_noop, NULL, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_http_route(s, "TRACE", "/a", ht_noop, NULL, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_http_route(s, "GET", "a", ht_noop, NULL, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_http_route(s, "GET", "/a//b", ht_noop, NULL, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_http_route(s, "GET", "/a/", ht_noop, NULL, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_http_route(s, "GET", "/a/{B}", ht_noop, NULL, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_http_route(s, "GET", "/a/{}", ht_noop, NULL, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_http_route(s, "GET", "/a/b{c}", ht_noop, NULL, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_http_route(s, "GET", "/a/{c}/{c}", ht_noop, NULL, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "invalid route GET /a/{c}/{c}: parameter {c} appears twice");
    KT_ASSERT_EQ(kc_http_route(s, "GET", "/a", NULL, NULL, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_http_add_standard_routes(s, NULL, &err), 0);
    KT_ASSERT_EQ(kc_http_add_standard_routes(s, NULL, &err), KC_EINVAL);
    kc_http_server_destroy(s);
    kc_http_server_destroy(NULL);
    event_base_free(base);
    kc_metrics_default_destroy();
    libevent_global_shutdown();
}
