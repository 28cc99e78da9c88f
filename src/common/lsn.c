/* SPDX-License-Identifier: Apache-2.0 */
/* lsn.c -- parsing and printing LSNs, WAL segment names. See lsn.h. */
#include "common/lsn.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/hex.h"

/* Longest input quoted verbatim in an error message. */
#define KC_LSN_QUOTE_MAX 40

/* Length of the run of hex digits at s. */
static size_t kc_hexrun(const char *s)
{
    size_t n = 0;
    while (kc_hex_digit(s[n]) >= 0)
        n++;
    return n;
}

/* Value of n (at most 8) hex digits. */
static uint32_t kc_hex32(const char *s, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 4) | (uint32_t)kc_hex_digit(s[i]);
    return v;
}

/* Fill err for input s; reason is a full sentence (or ""). */
static int kc_lsn_invalid(struct kc_error *err, const char *s, const char *reason)
{
    size_t len = strlen(s);

    kc_error_set(err, KC_EINVAL, "invalid LSN \"%.*s%s\"", KC_LSN_QUOTE_MAX, s,
                 len > KC_LSN_QUOTE_MAX ? "..." : "");
    kc_error_detail(err,
                    "%s%sAn LSN is two hexadecimal numbers of 1 to 8 digits each separated by a "
                    "slash, such as \"0/16B3740\".",
                    reason, reason[0] != '\0' ? " " : "");
    return KC_EINVAL;
}

/* Explain the character at s[pos], which is not what the grammar wants. */
static void kc_lsn_unexpected(char *buf, size_t len, const char *s, size_t pos)
{
    unsigned char c = (unsigned char)s[pos];

    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, len, "Unexpected character \"%c\" at position %zu.", c, pos + 1);
    else
        snprintf(buf, len, "Unexpected byte 0x%02X at position %zu.", c, pos + 1);
}

int kc_lsn_parse(const char *s, kc_lsn *out, struct kc_error *err)
{
    char reason[128];
    size_t n1, n2;
    const char *lo;

    if (s[0] == '\0')
        return kc_lsn_invalid(err, s, "The input is empty.");

    n1 = kc_hexrun(s);
    if (n1 == 0 && s[0] == '/')
        return kc_lsn_invalid(err, s, "The part before the slash is empty.");
    if (n1 > 8) {
        snprintf(reason, sizeof(reason),
                 "The part before the slash has %zu digits; at most 8 are allowed.", n1);
        return kc_lsn_invalid(err, s, reason);
    }
    if (n1 > 0 && s[n1] == '\0')
        return kc_lsn_invalid(err, s, "The slash is missing.");
    if (n1 == 0 || s[n1] != '/') {
        kc_lsn_unexpected(reason, sizeof(reason), s, n1);
        return kc_lsn_invalid(err, s, reason);
    }

    lo = s + n1 + 1;
    n2 = kc_hexrun(lo);
    if (n2 == 0 && lo[0] == '\0')
        return kc_lsn_invalid(err, s, "The part after the slash is empty.");
    if (n2 > 8) {
        snprintf(reason, sizeof(reason),
                 "The part after the slash has %zu digits; at most 8 are allowed.", n2);
        return kc_lsn_invalid(err, s, reason);
    }
    if (n2 == 0 || lo[n2] != '\0') {
        kc_lsn_unexpected(reason, sizeof(reason), s, n1 + 1 + n2);
        return kc_lsn_invalid(err, s, reason);
    }

    *out = ((kc_lsn)kc_hex32(s, n1) << 32) | kc_hex32(lo, n2);
    return 0;
}

char *kc_lsn_format(kc_lsn lsn, char buf[KC_LSN_STRLEN])
{
    snprintf(buf, KC_LSN_STRLEN, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
    return buf;
}

bool kc_wal_segsize_valid(uint64_t segsize)
{
    return segsize >= (1u << 20) && segsize <= (1u << 30) && (segsize & (segsize - 1)) == 0;
}

char *kc_wal_file_name(char buf[KC_WAL_FILE_NAME_LEN], uint32_t tli, uint64_t segno,
                       uint32_t segsize)
{
    uint64_t per_xlogid = (UINT64_C(1) << 32) / segsize;

    snprintf(buf, KC_WAL_FILE_NAME_LEN, "%08" PRIX32 "%08" PRIX32 "%08" PRIX32, tli,
             (uint32_t)(segno / per_xlogid), (uint32_t)(segno % per_xlogid));
    return buf;
}
