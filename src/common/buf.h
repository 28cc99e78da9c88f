/* SPDX-License-Identifier: Apache-2.0 */
/*
 * buf.h -- bounds-checked byte cursor for parsing, growable buffer for encoding.
 *
 * Every byte that arrives from the network, a file or object storage is read
 * through a struct kc_buf: each getter returns false, and consumes nothing,
 * when too few bytes remain, so a parser never reads past its input. Integers
 * on the wire are big-endian (network order).
 *
 * struct kc_sbuf is the writer side: a growable buffer (text or binary) with
 * append, printf-style append and big-endian putters. It owns its memory:
 * kc_sbuf_fini() frees it, kc_sbuf_steal() hands it to the caller.
 */
#ifndef KC_BUF_H
#define KC_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Read cursor over memory it does not own. */
struct kc_buf {
    const uint8_t *data; /* start of the input */
    size_t len;          /* total bytes */
    size_t pos;          /* bytes consumed */
};

static inline void kc_buf_init(struct kc_buf *b, const void *data, size_t len)
{
    b->data = (const uint8_t *)data;
    b->len = len;
    b->pos = 0;
}

static inline size_t kc_buf_remaining(const struct kc_buf *b)
{
    return b->len - b->pos;
}

bool kc_buf_get_u8(struct kc_buf *b, uint8_t *out) KC_MUSTCHECK;
bool kc_buf_get_u16(struct kc_buf *b, uint16_t *out) KC_MUSTCHECK;
bool kc_buf_get_u32(struct kc_buf *b, uint32_t *out) KC_MUSTCHECK;
bool kc_buf_get_u64(struct kc_buf *b, uint64_t *out) KC_MUSTCHECK;
/* Copy n bytes out. */
bool kc_buf_get_bytes(struct kc_buf *b, void *out, size_t n) KC_MUSTCHECK;
/* Point *out at the next n bytes without copying (valid while the input is). */
bool kc_buf_get_ref(struct kc_buf *b, const uint8_t **out, size_t n) KC_MUSTCHECK;
/* A sub-cursor over the next n bytes, consumed from b. */
bool kc_buf_get_slice(struct kc_buf *b, struct kc_buf *out, size_t n) KC_MUSTCHECK;
bool kc_buf_skip(struct kc_buf *b, size_t n) KC_MUSTCHECK;

/* Growable output buffer; zero-initialised (KC_SBUF_INIT) is empty and valid. */
struct kc_sbuf {
    uint8_t *data; /* owned; NUL-terminated after every append when non-NULL */
    size_t len;    /* bytes used, not counting the terminator */
    size_t cap;    /* bytes allocated */
};
#define KC_SBUF_INIT \
    {                \
        NULL, 0, 0   \
    }

void kc_sbuf_fini(struct kc_sbuf *s);
void kc_sbuf_reset(struct kc_sbuf *s); /* len = 0, keeps memory */
void kc_sbuf_reserve(struct kc_sbuf *s, size_t extra);
void kc_sbuf_append(struct kc_sbuf *s, const void *data, size_t n);
void kc_sbuf_puts(struct kc_sbuf *s, const char *str);
void kc_sbuf_printf(struct kc_sbuf *s, const char *fmt, ...) KC_PRINTF(2, 3);
void kc_sbuf_put_u8(struct kc_sbuf *s, uint8_t v);
void kc_sbuf_put_u16(struct kc_sbuf *s, uint16_t v);
void kc_sbuf_put_u32(struct kc_sbuf *s, uint32_t v);
void kc_sbuf_put_u64(struct kc_sbuf *s, uint64_t v);
/* Overwrite 4 bytes at offset (length fields filled in after the payload). */
void kc_sbuf_patch_u32(struct kc_sbuf *s, size_t offset, uint32_t v);
/* Text so far ("" when empty); owned by s. */
const char *kc_sbuf_str(const struct kc_sbuf *s);
/* Hand the memory to the caller (free() it); s becomes empty. Never NULL. */
char *kc_sbuf_steal(struct kc_sbuf *s);

/* Big-endian helpers for fixed-layout headers. */
static inline uint16_t kc_load_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t kc_load_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t kc_load_u64(const uint8_t *p)
{
    return ((uint64_t)kc_load_u32(p) << 32) | kc_load_u32(p + 4);
}
static inline void kc_store_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void kc_store_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void kc_store_u64(uint8_t *p, uint64_t v)
{
    kc_store_u32(p, (uint32_t)(v >> 32));
    kc_store_u32(p + 4, (uint32_t)v);
}

#endif
