/* SPDX-License-Identifier: Apache-2.0 */
/*
 * error.h -- error codes and the error report every fallible function fills.
 *
 * Contract (see src/common/README.md): a function that can fail returns 0 on
 * success or a negative KC_E* code, and fills an optional struct kc_error.
 * The texts follow PostgreSQL's message style: a lower-case primary message
 * with no final period, an optional detail in full sentences, an optional
 * hint that says what to do.
 */
#ifndef KC_ERROR_H
#define KC_ERROR_H

#include <stddef.h>

#define KC_MUSTCHECK         __attribute__((warn_unused_result))
#define KC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define KC_NORETURN          __attribute__((noreturn))
#define KC_ARRAY_LEN(a)      (sizeof(a) / sizeof((a)[0]))

enum kc_errcode {
    KC_OK = 0,
    KC_EINVAL = -1,      /* malformed or out-of-range input */
    KC_ECORRUPT = -2,    /* stored or received data fails a checksum or format check */
    KC_ENOMEM = -3,      /* an allocation sized by input failed */
    KC_EIO = -4,         /* an operating-system call failed */
    KC_ETOOBIG = -5,     /* a length exceeds its configured maximum */
    KC_EAGAIN = -6,      /* not enough bytes yet; call again with more */
    KC_ENOTFOUND = -7,   /* the named thing does not exist */
    KC_ETIMEDOUT = -8,   /* a deadline passed */
    KC_EPROTO = -9,      /* the peer broke the protocol */
    KC_EVERSION = -10,   /* an unsupported format or protocol version */
    KC_EFAILPOINT = -11, /* a failpoint injected this error */
    KC_EAUTH = -12       /* authentication failed */
};

struct kc_error {
    int code;          /* a KC_E* code, 0 when unset */
    char message[256]; /* primary message: lower case, no final period */
    char detail[512];  /* optional: full sentences, empty when unset */
    char hint[256];    /* optional: what the user should do, empty when unset */
};

/* Name of a code ("EINVAL"); never NULL. */
const char *kc_strerror(int code);

/*
 * kc_error_set -- fill err (which may be NULL) with code and a formatted
 * primary message, clearing detail and hint. Returns code, so callers can
 * write `return kc_error_set(err, KC_EINVAL, "...")`.
 */
int kc_error_set(struct kc_error *err, int code, const char *fmt, ...) KC_PRINTF(3, 4);
/* Set the detail or hint of an error already set; no-op when err is NULL. */
void kc_error_detail(struct kc_error *err, const char *fmt, ...) KC_PRINTF(2, 3);
void kc_error_hint(struct kc_error *err, const char *fmt, ...) KC_PRINTF(2, 3);
/* Put "prefix: " in front of the primary message (context as errors bubble up). */
void kc_error_prefix(struct kc_error *err, const char *fmt, ...) KC_PRINTF(2, 3);
/* Reset err to the "no error" state. */
void kc_error_clear(struct kc_error *err);
/* Render "message\nDETAIL: ...\nHINT: ..." into buf (always NUL-terminated). */
void kc_error_format(const struct kc_error *err, char *buf, size_t len);

#endif
