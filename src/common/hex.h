/* SPDX-License-Identifier: Apache-2.0 */
/* hex.h -- hexadecimal digits: the one place ids, keys, LSNs and tokens turn into text and back. */
#ifndef KC_HEX_H
#define KC_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The value of hex digit c (either case), or -1 when c is not one. */
static inline int kc_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Write n bytes as 2n lower-case hex digits and a NUL into out (2n+1 chars). */
void kc_hex_encode(const uint8_t *in, size_t n, char *out);

/*
 * Read 2n hex digits from s into n bytes. Returns 0, or the 1-based position
 * of the first character that is not a hex digit (out is then unspecified).
 * s must hold at least 2n characters.
 */
size_t kc_hex_decode(const char *s, size_t n, uint8_t *out);

#endif
