/* SPDX-License-Identifier: Apache-2.0 */
/* frame.c -- encoding and incremental decoding of Kelp wire frames. See frame.h. */
#include "common/frame.h"

#include <stdlib.h>

#include "common/crc32c.h"

/* Header field offsets (docs/protocol-frame.md). */
#define KC_FRAME_OFF_VERSION 2
#define KC_FRAME_OFF_FLAGS   3
#define KC_FRAME_OFF_TYPE    4
#define KC_FRAME_OFF_LENGTH  6
#define KC_FRAME_OFF_CRC     10

/* Checksum: header bytes before the crc field, then the payload. */
static uint32_t kc_frame_crc(const uint8_t *hdr, const uint8_t *payload, uint32_t len)
{
    return kc_crc32c(kc_crc32c(0, hdr, KC_FRAME_OFF_CRC), payload, len);
}

static int kc_frame_too_big_to_send(struct kc_error *err, uint16_t type, uint64_t len)
{
    kc_error_set(err, KC_ETOOBIG, "frame payload of %llu bytes is too large to send",
                 (unsigned long long)len);
    kc_error_detail(err, "The payload of a frame (type %u) is at most %llu bytes.", type,
                    (unsigned long long)KC_FRAME_PAYLOAD_LIMIT);
    return KC_ETOOBIG;
}

size_t kc_frame_begin(struct kc_sbuf *out, uint16_t type)
{
    size_t start = out->len;

    kc_sbuf_put_u8(out, KC_FRAME_MAGIC0);
    kc_sbuf_put_u8(out, KC_FRAME_MAGIC1);
    kc_sbuf_put_u8(out, KC_FRAME_VERSION);
    kc_sbuf_put_u8(out, 0); /* flags: none defined in version 1 */
    kc_sbuf_put_u16(out, type);
    kc_sbuf_put_u32(out, 0); /* length, filled by kc_frame_finish */
    kc_sbuf_put_u32(out, 0); /* crc, likewise */
    return start;
}

void kc_frame_cancel(struct kc_sbuf *out, size_t start)
{
    if (start > out->len)
        abort(); /* a bug in the caller, never input-driven */
    out->len = start;
    if (out->data != NULL)
        out->data[start] = '\0'; /* keep kc_sbuf's terminator invariant */
}

int kc_frame_finish(struct kc_sbuf *out, size_t start, struct kc_error *err)
{
    uint8_t *hdr;
    uint64_t len;

    if (start > out->len || out->len - start < KC_FRAME_HEADER_SIZE)
        abort();
    hdr = out->data + start;
    if (hdr[0] != KC_FRAME_MAGIC0 || hdr[1] != KC_FRAME_MAGIC1)
        abort();
    len = out->len - start - KC_FRAME_HEADER_SIZE;
    if (len > KC_FRAME_PAYLOAD_LIMIT) {
        uint16_t type = kc_load_u16(hdr + KC_FRAME_OFF_TYPE);
        kc_frame_cancel(out, start);
        return kc_frame_too_big_to_send(err, type, len);
    }
    kc_store_u32(hdr + KC_FRAME_OFF_LENGTH, (uint32_t)len);
    kc_store_u32(hdr + KC_FRAME_OFF_CRC,
                 kc_frame_crc(hdr, hdr + KC_FRAME_HEADER_SIZE, (uint32_t)len));
    return 0;
}

int kc_frame_encode(struct kc_sbuf *out, uint16_t type, const void *payload, size_t len,
                    struct kc_error *err)
{
    size_t start;

    if ((uint64_t)len > KC_FRAME_PAYLOAD_LIMIT)
        return kc_frame_too_big_to_send(err, type, len);
    kc_sbuf_reserve(out, KC_FRAME_HEADER_SIZE + len);
    start = kc_frame_begin(out, type);
    if (len > 0)
        kc_sbuf_append(out, payload, len);
    return kc_frame_finish(out, start, err);
}

size_t kc_frame_wanted(const uint8_t *data, size_t len)
{
    if (len < KC_FRAME_OFF_LENGTH + 4)
        return KC_FRAME_HEADER_SIZE;
    return KC_FRAME_HEADER_SIZE + (size_t)kc_load_u32(data + KC_FRAME_OFF_LENGTH);
}

static int kc_frame_bad_magic(struct kc_error *err, const uint8_t *data, size_t len)
{
    if (len >= 2)
        kc_error_set(err, KC_EPROTO, "invalid frame magic 0x%02X%02X", data[0], data[1]);
    else
        kc_error_set(err, KC_EPROTO, "invalid frame magic 0x%02X", data[0]);
    kc_error_detail(err,
                    "A Kelp frame starts with the bytes 0x%02X%02X. The peer does not speak the "
                    "Kelp frame protocol, or the stream lost synchronization.",
                    KC_FRAME_MAGIC0, KC_FRAME_MAGIC1);
    return KC_EPROTO;
}

static int kc_frame_bad_version(struct kc_error *err, unsigned version)
{
    kc_error_set(err, KC_EVERSION, "unsupported frame version %u: this build supports version %u",
                 version, KC_FRAME_VERSION);
    if (version > KC_FRAME_VERSION)
        kc_error_detail(err, "The peer runs a newer Kelp release.");
    else
        kc_error_detail(err, "The peer runs an older Kelp release, or is not a Kelp process.");
    kc_error_hint(err, "Run compatible Kelp releases on both ends of the connection.");
    return KC_EVERSION;
}

static int kc_frame_bad_flags(struct kc_error *err, unsigned flags)
{
    kc_error_set(err, KC_EVERSION, "frame uses unsupported flags 0x%02X",
                 flags & KC_FRAME_FLAGS_CRITICAL);
    kc_error_detail(err,
                    "Flag bits 0x%02X must be understood by the receiver, and this build "
                    "understands none of them. The peer runs a newer Kelp release.",
                    KC_FRAME_FLAGS_CRITICAL);
    kc_error_hint(err, "Run compatible Kelp releases on both ends of the connection.");
    return KC_EVERSION;
}

static int kc_frame_need_more(struct kc_error *err, const uint8_t *data, size_t len)
{
    if (len < KC_FRAME_OFF_LENGTH + 4) {
        kc_error_set(err, KC_EAGAIN, "incomplete frame header");
        kc_error_detail(err, "%zu of %d header bytes have arrived.", len, KC_FRAME_HEADER_SIZE);
    } else {
        kc_error_set(err, KC_EAGAIN, "incomplete frame");
        kc_error_detail(err, "%zu of %zu bytes have arrived.", len, kc_frame_wanted(data, len));
    }
    return KC_EAGAIN;
}

int kc_frame_decode(const uint8_t *data, size_t len, size_t max_payload, struct kc_frame *out,
                    size_t *consumed, struct kc_error *err)
{
    uint32_t plen, want, got;
    uint16_t type;

    *consumed = 0;

    /* Each header field is judged as soon as its bytes are present. */
    if ((len >= 1 && data[0] != KC_FRAME_MAGIC0) || (len >= 2 && data[1] != KC_FRAME_MAGIC1))
        return kc_frame_bad_magic(err, data, len);
    if (len > KC_FRAME_OFF_VERSION && data[KC_FRAME_OFF_VERSION] != KC_FRAME_VERSION)
        return kc_frame_bad_version(err, data[KC_FRAME_OFF_VERSION]);
    if (len > KC_FRAME_OFF_FLAGS && (data[KC_FRAME_OFF_FLAGS] & KC_FRAME_FLAGS_CRITICAL) != 0)
        return kc_frame_bad_flags(err, data[KC_FRAME_OFF_FLAGS]);
    if (len < KC_FRAME_OFF_LENGTH + 4)
        return kc_frame_need_more(err, data, len);

    type = kc_load_u16(data + KC_FRAME_OFF_TYPE);
    plen = kc_load_u32(data + KC_FRAME_OFF_LENGTH);
    if (plen > max_payload) {
        kc_error_set(err, KC_ETOOBIG, "frame payload of %u bytes exceeds the limit of %zu bytes",
                     (unsigned)plen, max_payload);
        kc_error_detail(err, "The frame has type %u.", (unsigned)type);
        return KC_ETOOBIG;
    }
    if (len < KC_FRAME_HEADER_SIZE || len - KC_FRAME_HEADER_SIZE < plen)
        return kc_frame_need_more(err, data, len);

    want = kc_load_u32(data + KC_FRAME_OFF_CRC);
    got = kc_frame_crc(data, data + KC_FRAME_HEADER_SIZE, plen);
    if (got != want) {
        kc_error_set(err, KC_ECORRUPT, "frame checksum mismatch");
        kc_error_detail(err,
                        "A frame of type %u with %u payload bytes carries CRC32C 0x%08X, but its "
                        "contents compute to 0x%08X.",
                        (unsigned)type, (unsigned)plen, (unsigned)want, (unsigned)got);
        return KC_ECORRUPT;
    }

    out->version = data[KC_FRAME_OFF_VERSION];
    out->flags = data[KC_FRAME_OFF_FLAGS];
    out->type = type;
    out->len = plen;
    out->payload = data + KC_FRAME_HEADER_SIZE;
    *consumed = KC_FRAME_HEADER_SIZE + (size_t)plen;
    return 0;
}
