/* SPDX-License-Identifier: Apache-2.0 */
/* buf.c -- bounds-checked read cursor and growable write buffer. See buf.h. */
#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

bool kc_buf_get_ref(struct kc_buf *b, const uint8_t **out, size_t n)
{
    if (kc_buf_remaining(b) < n)
        return false;
    *out = b->data + b->pos;
    b->pos += n;
    return true;
}

bool kc_buf_get_bytes(struct kc_buf *b, void *out, size_t n)
{
    const uint8_t *p;
    if (!kc_buf_get_ref(b, &p, n))
        return false;
    if (n > 0)
        memcpy(out, p, n);
    return true;
}

bool kc_buf_get_u8(struct kc_buf *b, uint8_t *out)
{
    const uint8_t *p;
    if (!kc_buf_get_ref(b, &p, 1))
        return false;
    *out = p[0];
    return true;
}

bool kc_buf_get_u16(struct kc_buf *b, uint16_t *out)
{
    const uint8_t *p;
    if (!kc_buf_get_ref(b, &p, 2))
        return false;
    *out = kc_load_u16(p);
    return true;
}

bool kc_buf_get_u32(struct kc_buf *b, uint32_t *out)
{
    const uint8_t *p;
    if (!kc_buf_get_ref(b, &p, 4))
        return false;
    *out = kc_load_u32(p);
    return true;
}

bool kc_buf_get_u64(struct kc_buf *b, uint64_t *out)
{
    const uint8_t *p;
    if (!kc_buf_get_ref(b, &p, 8))
        return false;
    *out = kc_load_u64(p);
    return true;
}

bool kc_buf_get_slice(struct kc_buf *b, struct kc_buf *out, size_t n)
{
    const uint8_t *p;
    if (!kc_buf_get_ref(b, &p, n))
        return false;
    kc_buf_init(out, p, n);
    return true;
}

bool kc_buf_skip(struct kc_buf *b, size_t n)
{
    const uint8_t *p;
    return kc_buf_get_ref(b, &p, n);
}

void kc_sbuf_fini(struct kc_sbuf *s)
{
    free(s->data);
    s->data = NULL;
    s->len = s->cap = 0;
}

void kc_sbuf_reset(struct kc_sbuf *s)
{
    s->len = 0;
    if (s->data != NULL)
        s->data[0] = '\0';
}

void kc_sbuf_reserve(struct kc_sbuf *s, size_t extra)
{
    size_t need = s->len + extra + 1; /* room for the terminator */
    size_t cap = s->cap ? s->cap : 64;

    if (need <= s->cap)
        return;
    while (cap < need)
        cap *= 2;
    s->data = kc_realloc(s->data, cap);
    s->cap = cap;
}

void kc_sbuf_append(struct kc_sbuf *s, const void *data, size_t n)
{
    kc_sbuf_reserve(s, n);
    if (n > 0)
        memcpy(s->data + s->len, data, n);
    s->len += n;
    s->data[s->len] = '\0';
}

void kc_sbuf_puts(struct kc_sbuf *s, const char *str)
{
    kc_sbuf_append(s, str, strlen(str));
}

void kc_sbuf_printf(struct kc_sbuf *s, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    kc_sbuf_reserve(s, (size_t)n);
    va_start(ap, fmt);
    vsnprintf((char *)s->data + s->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

void kc_sbuf_put_u8(struct kc_sbuf *s, uint8_t v)
{
    kc_sbuf_append(s, &v, 1);
}

void kc_sbuf_put_u16(struct kc_sbuf *s, uint16_t v)
{
    uint8_t p[2];
    kc_store_u16(p, v);
    kc_sbuf_append(s, p, sizeof(p));
}

void kc_sbuf_put_u32(struct kc_sbuf *s, uint32_t v)
{
    uint8_t p[4];
    kc_store_u32(p, v);
    kc_sbuf_append(s, p, sizeof(p));
}

void kc_sbuf_put_u64(struct kc_sbuf *s, uint64_t v)
{
    uint8_t p[8];
    kc_store_u64(p, v);
    kc_sbuf_append(s, p, sizeof(p));
}

void kc_sbuf_patch_u32(struct kc_sbuf *s, size_t offset, uint32_t v)
{
    if (offset + 4 > s->len)
        abort(); /* our own bug, never input-driven */
    kc_store_u32(s->data + offset, v);
}

const char *kc_sbuf_str(const struct kc_sbuf *s)
{
    return s->data != NULL ? (const char *)s->data : "";
}

char *kc_sbuf_steal(struct kc_sbuf *s)
{
    char *p;
    if (s->data == NULL)
        return kc_strdup("");
    p = (char *)s->data;
    s->data = NULL;
    s->len = s->cap = 0;
    return p;
}
