/* SPDX-License-Identifier: Apache-2.0 */
/* error.c -- filling and rendering struct kc_error. See error.h. */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *kc_strerror(int code)
{
    switch (code) {
    case KC_OK: return "OK";
    case KC_EINVAL: return "EINVAL";
    case KC_ECORRUPT: return "ECORRUPT";
    case KC_ENOMEM: return "ENOMEM";
    case KC_EIO: return "EIO";
    case KC_ETOOBIG: return "ETOOBIG";
    case KC_EAGAIN: return "EAGAIN";
    case KC_ENOTFOUND: return "ENOTFOUND";
    case KC_ETIMEDOUT: return "ETIMEDOUT";
    case KC_EPROTO: return "EPROTO";
    case KC_EVERSION: return "EVERSION";
    case KC_EFAILPOINT: return "EFAILPOINT";
    case KC_EAUTH: return "EAUTH";
    default: return "EUNKNOWN";
    }
}

int kc_error_set(struct kc_error *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        err->detail[0] = '\0';
        err->hint[0] = '\0';
    }
    return code;
}

void kc_error_detail(struct kc_error *err, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
        va_end(ap);
    }
}

void kc_error_hint(struct kc_error *err, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
        va_end(ap);
    }
}

void kc_error_prefix(struct kc_error *err, const char *fmt, ...)
{
    char prefix[sizeof(err->message)];
    size_t plen, mlen, cap = sizeof(err->message) - 1;
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix) - 2, fmt, ap);
    va_end(ap);
    strcat(prefix, ": ");
    plen = strlen(prefix);
    mlen = strlen(err->message);
    if (plen + mlen > cap)
        mlen = cap - plen; /* keep the prefix, cut the tail of the message */
    memmove(err->message + plen, err->message, mlen);
    memcpy(err->message, prefix, plen);
    err->message[plen + mlen] = '\0';
}

void kc_error_clear(struct kc_error *err)
{
    if (err != NULL) {
        err->code = 0;
        err->message[0] = err->detail[0] = err->hint[0] = '\0';
    }
}

void kc_error_format(const struct kc_error *err, char *buf, size_t len)
{
    int n;

    if (len == 0)
        return;
    n = snprintf(buf, len, "%s", err->message);
    if (err->detail[0] != '\0' && n >= 0 && (size_t)n < len)
        n += snprintf(buf + n, len - (size_t)n, "\nDETAIL: %s", err->detail);
    if (err->hint[0] != '\0' && n >= 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, "\nHINT: %s", err->hint);
}
