/* SPDX-License-Identifier: Apache-2.0 */
/* id.c -- parsing, printing and generating 128-bit ids. See id.h. */
#include "common/id.h"

#include <errno.h>
#include <stdio.h>

#include "common/hex.h"
#include "common/random.h"

/* Longest input quoted verbatim in an error message. */
#define KC_ID_QUOTE_MAX 48

static int kc_id_invalid(struct kc_error *err, const char *s, size_t len)
{
    return kc_error_set(err, KC_EINVAL, "invalid id \"%.*s%s\"", KC_ID_QUOTE_MAX, s,
                        len > KC_ID_QUOTE_MAX ? "..." : "");
}

int kc_id_parse(const char *s, struct kc_id *out, struct kc_error *err)
{
    struct kc_id id;
    size_t len = strlen(s);

    /* Report the first bad character before the length: it is usually the
     * more useful of the two ("tenant-1" has both problems). */
    for (size_t i = 0; i < len && i < KC_ID_HEXLEN; i++) {
        unsigned char c = (unsigned char)s[i];
        if (kc_hex_digit(s[i]) >= 0)
            continue;
        kc_id_invalid(err, s, len);
        if (c >= 0x20 && c < 0x7f)
            kc_error_detail(err,
                            "Character \"%c\" at position %zu is not a hexadecimal digit; an id "
                            "has exactly %d hexadecimal digits.",
                            c, i + 1, KC_ID_HEXLEN);
        else
            kc_error_detail(err,
                            "Byte 0x%02X at position %zu is not a hexadecimal digit; an id has "
                            "exactly %d hexadecimal digits.",
                            c, i + 1, KC_ID_HEXLEN);
        return KC_EINVAL;
    }
    if (len != KC_ID_HEXLEN) {
        kc_id_invalid(err, s, len);
        if (len == 0)
            kc_error_detail(err, "The input is empty; an id has exactly %d hexadecimal digits.",
                            KC_ID_HEXLEN);
        else
            kc_error_detail(err,
                            "The input has %zu character%s; an id has exactly %d hexadecimal "
                            "digits.",
                            len, len == 1 ? "" : "s", KC_ID_HEXLEN);
        return KC_EINVAL;
    }
    for (size_t i = 0; i < KC_ID_LEN; i++)
        id.b[i] = (uint8_t)((kc_hex_digit(s[2 * i]) << 4) | kc_hex_digit(s[2 * i + 1]));
    *out = id;
    return 0;
}

char *kc_id_format(const struct kc_id *id, char buf[KC_ID_STRLEN])
{
    kc_hex_encode(id->b, KC_ID_LEN, buf);
    return buf;
}

int kc_id_generate(struct kc_id *out, struct kc_error *err)
{
    struct kc_id id;
    int rc;

    do {
        rc = kc_random_bytes(id.b, sizeof(id.b), err);
        if (rc != 0)
            return rc;
    } while (kc_id_is_zero(&id)); /* reserved for "unset"; odds 2^-128 */
    *out = id;
    return 0;
}
