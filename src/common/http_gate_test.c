/* SPDX-License-Identifier: Apache-2.0 */
/* http_gate_test.c -- unit tests for the request-head scanner of http_gate.c. */
#include "common/http_gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#define MAX_HEAD 1024
#define MAX_BODY 4096

static int scan(const char *s, struct kc_http_head *h, struct kc_error *err)
{
    return kc_http_head_scan((const uint8_t *)s, strlen(s), MAX_HEAD, MAX_BODY, h, err);
}

static const char *const good_heads[] = {
    "GET / HTTP/1.1\r\n\r\n",
    "GET /v1/health HTTP/1.0\n\n",
    "PUT /v1/failpoints HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n",
    "POST /a?b=c%20d HTTP/1.1\r\ncontent-length:\t0 \r\nX-Empty:\r\n\r\n",
    "DELETE /x HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 4096\r\n\r\n",
    "OPTIONS /x HTTP/1.1\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
    "PATCH /x HTTP/1.1\r\nContent-Length: 000010\r\n\r\n",
    "HEAD /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
};

KT_TEST(http_head_scan_accepts)
{
    struct kc_http_head h;
    struct kc_error err;

    for (size_t i = 0; i < KC_ARRAY_LEN(good_heads); i++) {
        if (scan(good_heads[i], &h, &err) != 0)
            kt_fail(__FILE__, __LINE__, "head %zu rejected: %s", i, err.message);
        KT_ASSERT_UEQ(h.len, strlen(good_heads[i]));
    }
    KT_ASSERT_EQ(scan(good_heads[2], &h, &err), 0);
    KT_ASSERT_STR_EQ(h.method, "PUT");
    KT_ASSERT_UEQ(h.content_length, 12);
    KT_ASSERT(!h.expect_continue);
    KT_ASSERT_EQ(scan(good_heads[4], &h, &err), 0);
    KT_ASSERT(h.expect_continue);
    KT_ASSERT_UEQ(h.content_length, 4096);
    KT_ASSERT_EQ(scan(good_heads[6], &h, &err), 0);
    KT_ASSERT_UEQ(h.content_length, 10);
    /* The head ends at its blank line; what follows is the body or the next request. */
    KT_ASSERT_EQ(scan("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", &h, &err), 0);
    KT_ASSERT_UEQ(h.len, 18);
    /* Expect is ignored in HTTP/1.0, as libevent does. */
    KT_ASSERT_EQ(scan("PUT / HTTP/1.0\r\nExpect: x\r\n\r\n", &h, &err), 0);
    KT_ASSERT(!h.expect_continue);
}

KT_TEST(http_head_scan_prefixes_wait)
{
    struct kc_http_head h;
    struct kc_error err;

    /* Every proper prefix of an acceptable head asks for more bytes. */
    for (size_t i = 0; i < KC_ARRAY_LEN(good_heads); i++) {
        for (size_t n = 0; n < strlen(good_heads[i]); n++) {
            int rc =
                kc_http_head_scan((const uint8_t *)good_heads[i], n, MAX_HEAD, MAX_BODY, &h, &err);
            if (rc != KC_EAGAIN)
                kt_fail(__FILE__, __LINE__, "head %zu, prefix %zu: %d (%s)", i, n, rc, err.message);
        }
    }
}

KT_TEST(http_head_scan_rejects)
{
    static const struct {
        const char *head;
        int status;
        int code;
        const char *message;
    } cases[] = {
        {"\r\n\r\n", 400, KC_EPROTO, "malformed request line"},
        {"get / HTTP/1.1\r\n\r\n", 400, KC_EPROTO, "malformed request method"},
        {"\x16\x03\x01", 400, KC_EPROTO, "malformed request method"},
        {"GETGETGETGETGETGETGET", 400, KC_EPROTO, "malformed request method"},
        {"BREW / HTTP/1.1\r\n\r\n", 501, KC_EPROTO, "unsupported HTTP method \"BREW\""},
        {"TRACE / HTTP/1.1\r\n\r\n", 501, KC_EPROTO, "unsupported HTTP method \"TRACE\""},
        {"GET / HTTP/1.1 \r\n\r\n", 400, KC_EPROTO, "malformed request line"},
        {"GET  / HTTP/1.1\r\n\r\n", 400, KC_EPROTO, "request target is not an absolute path"},
        {"GET /a b HTTP/1.1\r\n\r\n", 400, KC_EPROTO, "malformed request line"},
        {"GET http://x/ HTTP/1.1\r\n\r\n", 400, KC_EPROTO,
         "request target is not an absolute path"},
        {"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400, KC_EPROTO,
         "invalid byte 0xc3 in the request target"},
        {"GET /\x7f HTTP/1.1\r\n\r\n", 400, KC_EPROTO, "invalid byte 0x7f in the request head"},
        {"GET / HTTP/1.1\r\r\n\r\n", 400, KC_EPROTO, "invalid byte 0x0d in the request head"},
        {"GET / HTTP/2.0\r\n\r\n", 505, KC_EVERSION, "unsupported HTTP version \"HTTP/2.0\""},
        {"GET / HTTP/1.10\r\n\r\n", 400, KC_EPROTO, "malformed request line"},
        {"GET / http/1.1\r\n\r\n", 400, KC_EPROTO, "malformed request line"},
        {"GET /\r\n\r\n", 400, KC_EPROTO, "malformed request line"},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, KC_EPROTO, "header line without a colon"},
        {"GET / HTTP/1.1\r\n: empty\r\n\r\n", 400, KC_EPROTO, "malformed header name"},
        {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, KC_EPROTO, "malformed header name"},
        {"GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", 400, KC_EPROTO, "malformed header name"},
        {"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, KC_EPROTO,
         "folded header lines are not supported"},
        {"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 400, KC_EPROTO,
         "invalid byte 0x01 in the request head"},
        {"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, KC_EPROTO, "invalid Content-Length"},
        {"PUT / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400, KC_EPROTO, "invalid Content-Length"},
        {"PUT / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400, KC_EPROTO, "invalid Content-Length"},
        {"PUT / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, KC_EPROTO, "invalid Content-Length"},
        {"PUT / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n", 400, KC_EPROTO,
         "invalid Content-Length"},
        {"PUT / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n", 400, KC_EPROTO,
         "more than one Content-Length header"},
        {"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411, KC_EPROTO,
         "request bodies with Transfer-Encoding are not supported"},
        {"PUT / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 417, KC_EPROTO, "unsupported Expect header"},
        {"HEAD / HTTP/1.1\r\nContent-Length: 1\r\n\r\n", 400, KC_EPROTO,
         "a HEAD request cannot have a body"},
        {"PUT / HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", 413, KC_ETOOBIG,
         "request body too large"},
    };
    struct kc_http_head h;
    struct kc_error err;

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        int rc = scan(cases[i].head, &h, &err);
        if (rc != cases[i].code || h.status != cases[i].status ||
            strcmp(err.message, cases[i].message) != 0)
            kt_fail(__FILE__, __LINE__, "case %zu: rc %d status %d \"%s\"", i, rc, h.status,
                    rc != 0 && rc != KC_EAGAIN ? err.message : "");
    }
    /* A NUL byte anywhere in the head. */
    KT_ASSERT_EQ(kc_http_head_scan((const uint8_t *)"GET / HTTP/1.1\r\nA: \0\r\n\r\n", 24, MAX_HEAD,
                                   MAX_BODY, &h, &err),
                 KC_EPROTO);
    KT_ASSERT_STR_EQ(err.message, "invalid byte 0x00 in the request head");
    KT_ASSERT_EQ(kc_http_head_scan((const uint8_t *)"GE\0", 3, MAX_HEAD, MAX_BODY, &h, &err),
                 KC_EPROTO);
    /* 413 still reports where the head ends and how long the body is, to skip it. */
    KT_ASSERT_EQ(scan("PUT / HTTP/1.1\r\nContent-Length: 5000\r\n\r\nxx", &h, &err), KC_ETOOBIG);
    KT_ASSERT_UEQ(h.len, 40);
    KT_ASSERT_UEQ(h.content_length, 5000);
    KT_ASSERT_STR_EQ(err.detail, "The body has 5000 bytes; the limit is 4096 bytes.");
}

KT_TEST(http_head_scan_size_limit)
{
    char head[MAX_HEAD + 64];
    struct kc_http_head h;
    struct kc_error err;
    size_t fixed = strlen("GET / HTTP/1.1\r\nX: \r\n\r\n");

    /* A head of exactly MAX_HEAD bytes passes; one byte more is 431. */
    snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nX: %0*d\r\n\r\n", (int)(MAX_HEAD - fixed), 0);
    KT_ASSERT_UEQ(strlen(head), MAX_HEAD);
    KT_ASSERT_EQ(scan(head, &h, &err), 0);
    snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nX: %0*d\r\n\r\n", (int)(MAX_HEAD - fixed + 1),
             0);
    KT_ASSERT_EQ(scan(head, &h, &err), KC_ETOOBIG);
    KT_ASSERT_EQ(h.status, 431);
    KT_ASSERT_STR_EQ(err.message, "request head too large");
    /* Incomplete but already at the limit: 431 without waiting for more. */
    head[MAX_HEAD] = '\0';
    KT_ASSERT_EQ(scan(head, &h, &err), KC_ETOOBIG);
    KT_ASSERT_EQ(
        kc_http_head_scan((const uint8_t *)head, MAX_HEAD - 1, MAX_HEAD, MAX_BODY, &h, &err),
        KC_EAGAIN);
}

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Any result is fine as long as it is consistent: never a crash or an overrun. */
static void check_any(const uint8_t *data, size_t len)
{
    struct kc_http_head h;
    struct kc_error err;
    int rc = kc_http_head_scan(data, len, MAX_HEAD, MAX_BODY, &h, &err);

    if (rc == 0) {
        KT_ASSERT(h.len > 0 && h.len <= len);
        KT_ASSERT(h.content_length <= MAX_BODY);
        KT_ASSERT(h.method[0] != '\0');
    } else if (rc != KC_EAGAIN) {
        KT_ASSERT(h.status >= 400 && h.status <= 505);
        KT_ASSERT(err.message[0] != '\0');
    }
}

KT_TEST(http_head_scan_bit_flips)
{
    for (size_t i = 0; i < KC_ARRAY_LEN(good_heads); i++) {
        size_t len = strlen(good_heads[i]);
        uint8_t *copy = malloc(len);
        for (size_t bit = 0; bit < len * 8; bit++) {
            memcpy(copy, good_heads[i], len);
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            check_any(copy, len);
        }
        free(copy);
    }
}

KT_TEST(http_head_scan_random_bytes)
{
    static const char alphabet[] = "GETPOS /HTP1.0\r\n:-Content-Length 0123456789\x00\x7f\xff";
    uint8_t buf[600];
    uint64_t x = 0x2545f4914f6cdd1dULL;

    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(rng_next(&x) % sizeof(buf));
        bool text = i % 2 == 0;
        for (size_t j = 0; j < len; j++) {
            uint64_t r = rng_next(&x);
            buf[j] = text ? (uint8_t)alphabet[r % (sizeof(alphabet) - 1)] : (uint8_t)r;
        }
        if (i % 4 == 0 && len >= 16)
            memcpy(buf, "PUT /x HTTP/1.1\n", 16);
        check_any(buf, len);
    }
}
