/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lsn.h -- WAL log sequence numbers: PostgreSQL's pg_lsn text form and
 * WAL segment arithmetic.
 *
 * An LSN is a byte position in the WAL stream. Its text form is the one
 * PostgreSQL prints and pg_lsn accepts: the high and low 32 bits as
 * upper-case hexadecimal without padding, separated by a slash ("0/16B3740").
 * KC_LSN_INVALID (0) means "no position", as InvalidXLogRecPtr does.
 */
#ifndef KC_LSN_H
#define KC_LSN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef uint64_t kc_lsn;

#define KC_LSN_INVALID ((kc_lsn)0)
/* Buffer size for kc_lsn_format: "FFFFFFFF/FFFFFFFF" and the terminator. */
#define KC_LSN_STRLEN 18
/* PostgreSQL's default WAL segment size (initdb --wal-segsize=16). */
#define KC_WAL_SEG_SIZE_DEFAULT (16u * 1024 * 1024)
/* Buffer size for kc_wal_file_name: 24 hex digits and the terminator. */
#define KC_WAL_FILE_NAME_LEN 25

/*
 * kc_lsn_parse -- parse s (non-NULL, NUL-terminated) exactly as pg_lsn does:
 * 1 to 8 hex digits, '/', 1 to 8 hex digits, either case, nothing else (no
 * spaces, sign, "0x" or trailing characters). Returns 0 and sets *out, or
 * KC_EINVAL with err filled (the input quoted, the problem in the detail);
 * *out is left alone on failure. "0/0" parses to KC_LSN_INVALID; whether that
 * is acceptable is the caller's decision.
 */
int kc_lsn_parse(const char *s, kc_lsn *out, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_lsn_format -- write lsn into buf as PostgreSQL prints it ("%X/%X") and
 * return buf, so it can be used directly as a printf argument.
 */
char *kc_lsn_format(kc_lsn lsn, char buf[KC_LSN_STRLEN]);

/*
 * Segment arithmetic. segsize must be a valid WAL segment size (check
 * untrusted values with kc_wal_segsize_valid first): a power of two from
 * 1 MiB to 1 GiB, as PostgreSQL's IsValidWalSegSize.
 */
bool kc_wal_segsize_valid(uint64_t segsize);

/* Number of the segment holding lsn (XLByteToSeg). */
static inline uint64_t kc_lsn_segno(kc_lsn lsn, uint32_t segsize)
{
    return lsn / segsize;
}

/* Byte offset of lsn inside its segment (XLogSegmentOffset). */
static inline uint32_t kc_lsn_segoff(kc_lsn lsn, uint32_t segsize)
{
    return (uint32_t)(lsn & ((kc_lsn)segsize - 1));
}

/* LSN of byte offset off in segment segno (XLogSegNoOffsetToRecPtr). */
static inline kc_lsn kc_lsn_from_seg(uint64_t segno, uint32_t off, uint32_t segsize)
{
    return segno * segsize + off;
}

/* LSN where the segment holding lsn begins. */
static inline kc_lsn kc_lsn_seg_start(kc_lsn lsn, uint32_t segsize)
{
    return lsn & ~((kc_lsn)segsize - 1);
}

/*
 * kc_wal_file_name -- the pg_wal file name of segment segno on timeline tli
 * (XLogFileName: 8 hex digits each of timeline, segno / segments-per-4GiB and
 * segno % segments-per-4GiB, e.g. "000000010000000000000001"). Returns buf.
 */
char *kc_wal_file_name(char buf[KC_WAL_FILE_NAME_LEN], uint32_t tli, uint64_t segno,
                       uint32_t segsize);

#endif
