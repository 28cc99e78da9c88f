/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame.h -- the framed binary message format under every Kelp wire protocol.
 *
 * A frame is a 14-byte big-endian header followed by the payload:
 *
 *   offset size field    meaning
 *   0      2    magic    0x4B 0xC1
 *   2      1    version  KC_FRAME_VERSION (1)
 *   3      1    flags    bits 0-3 optional (ignored if unknown),
 *                        bits 4-7 critical (rejected if unknown); none in v1
 *   4      2    type     message type, defined by each protocol
 *   6      4    length   payload bytes
 *   10     4    crc      CRC-32C of bytes 0..9 followed by the payload
 *   14     n    payload
 *
 * docs/protocol-frame.md is the full specification with the reasoning.
 *
 * Writing: kc_frame_encode appends a frame with a ready payload; or
 * kc_frame_begin, the kc_sbuf_put_* calls for the payload, kc_frame_finish.
 *
 * Reading: call kc_frame_decode on the bytes received so far. It returns a
 * complete frame (the payload points into the input), KC_EAGAIN to wait for
 * more bytes, or an error after which the stream cannot be trusted and the
 * connection must be closed: there is no resynchronization.
 */
#ifndef KC_FRAME_H
#define KC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"

#define KC_FRAME_MAGIC0      0x4B
#define KC_FRAME_MAGIC1      0xC1
#define KC_FRAME_VERSION     1
#define KC_FRAME_HEADER_SIZE 14
/* Flag bits a reader may ignore when it does not know them. */
#define KC_FRAME_FLAGS_OPTIONAL 0x0Fu
/* Flag bits a reader must reject (KC_EVERSION) when it does not know them. */
#define KC_FRAME_FLAGS_CRITICAL 0xF0u
/* Largest payload the length field can describe. */
#define KC_FRAME_PAYLOAD_LIMIT UINT32_MAX
/* Suggested max_payload for authenticated peers and before authentication. */
#define KC_FRAME_MAX_DEFAULT (16u * 1024 * 1024)
#define KC_FRAME_MAX_UNAUTH  (64u * 1024)

/* A decoded frame. payload points into the buffer given to kc_frame_decode
 * and is valid as long as that buffer is. */
struct kc_frame {
    uint8_t version;        /* always KC_FRAME_VERSION today */
    uint8_t flags;          /* optional bits as sent; critical bits are never set */
    uint16_t type;          /* message type */
    uint32_t len;           /* payload bytes */
    const uint8_t *payload; /* len bytes; not NUL-terminated */
};

/*
 * kc_frame_encode -- append one whole frame (type, len bytes at payload) to
 * out. payload may be NULL when len is 0. Returns 0, or KC_ETOOBIG (out
 * unchanged) when len exceeds KC_FRAME_PAYLOAD_LIMIT.
 */
int kc_frame_encode(struct kc_sbuf *out, uint16_t type, const void *payload, size_t len,
                    struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_frame_begin -- append the header of a frame of the given type, with the
 * length and checksum still blank, and return its offset in out. Append the
 * payload to out with the kc_sbuf functions, then call kc_frame_finish (or
 * kc_frame_cancel). Frames may not nest.
 */
size_t kc_frame_begin(struct kc_sbuf *out, uint16_t type);

/*
 * kc_frame_finish -- complete the frame started at offset start: everything
 * appended to out after its header is the payload. Fills in the length and
 * checksum. Returns 0, or KC_ETOOBIG when the payload exceeds
 * KC_FRAME_PAYLOAD_LIMIT, in which case the frame is removed from out as by
 * kc_frame_cancel. Aborts if start is not a frame begun in out (a bug).
 */
int kc_frame_finish(struct kc_sbuf *out, size_t start, struct kc_error *err) KC_MUSTCHECK;

/* Drop the unfinished frame begun at start: out goes back to length start. */
void kc_frame_cancel(struct kc_sbuf *out, size_t start);

/*
 * kc_frame_decode -- decode the frame at the start of data[0..len).
 *
 * Returns 0 with *out filled and *consumed set to the frame's total size
 * (header plus payload); the caller drops that many bytes and calls again
 * for the next frame. Otherwise *consumed is 0 and the return is:
 *   KC_EAGAIN    the bytes so far are a valid prefix of a frame; call again
 *                when more have arrived (kc_frame_wanted says how many)
 *   KC_EPROTO    the magic bytes are wrong
 *   KC_EVERSION  unsupported version, or unknown critical flag bits
 *   KC_ETOOBIG   the length exceeds max_payload (reported as soon as the
 *                length field has arrived, before the payload)
 *   KC_ECORRUPT  checksum mismatch
 * Header fields are checked as soon as their bytes are present, so a bad
 * stream is rejected early. Every error except KC_EAGAIN is final for the
 * stream. err (optional) is filled for every non-zero return, KC_EAGAIN
 * included, so a caller that hits end of input can report it as is.
 * data may be NULL when len is 0.
 */
int kc_frame_decode(const uint8_t *data, size_t len, size_t max_payload, struct kc_frame *out,
                    size_t *consumed, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_frame_wanted -- total bytes the frame starting at data needs:
 * KC_FRAME_HEADER_SIZE until the length field is there, then header plus
 * payload. Only meaningful after kc_frame_decode returned KC_EAGAIN (so the
 * length is known to be within max_payload); a reader sizes its buffer by it.
 */
size_t kc_frame_wanted(const uint8_t *data, size_t len);

/* A read cursor over the payload of a decoded frame. */
static inline void kc_frame_payload(const struct kc_frame *f, struct kc_buf *b)
{
    kc_buf_init(b, f->payload, f->len);
}

#endif
