/* SPDX-License-Identifier: Apache-2.0 */
/* hex.c -- hexadecimal encoding and decoding. See hex.h. */
#include "common/hex.h"

void kc_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

size_t kc_hex_decode(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = kc_hex_digit((unsigned char)s[2 * i]);
        int lo = kc_hex_digit((unsigned char)s[2 * i + 1]);

        if (hi < 0)
            return 2 * i + 1;
        if (lo < 0)
            return 2 * i + 2;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
