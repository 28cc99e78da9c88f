/* SPDX-License-Identifier: Apache-2.0 */
/*
 * key.h -- the pageserver's 18-byte keys: every piece of a PostgreSQL
 * cluster's state the pageserver stores has one (docs/pageserver-keys.md).
 *
 * A key is six big-endian fields, f1:u8 f2:u32 f3:u32 f4:u32 f5:u8 f6:u32,
 * stored as 18 bytes so that memcmp() order is key order. Things changed
 * together sort together: a relation's size key follows the last block of
 * its fork. Printed as 36 lower-case hex digits.
 *
 *   object                  f1  f2        f3     f4       f5    f6
 *   database directory      00  0         0      0        0     0
 *   relmapper file          00  spcnode   dbnode 0        0     0
 *   relation directory      00  spcnode   dbnode 0        0     1
 *   relation block          00  spcnode   dbnode relnode  fork  blkno
 *   relation size           00  spcnode   dbnode relnode  fork  FFFFFFFF
 *   SLRU directory          01  kind      0      0        0     0
 *   SLRU block              01  kind      1      segno    0     blkno
 *   SLRU segment size       01  kind      1      segno    0     FFFFFFFF
 *   twophase directory      02  0         0      0        0     0
 *   twophase file           02  0         0      0        0     xid
 *   control file            03  0         0      0        0     0
 *   checkpoint              03  0         0      0        0     1
 *
 * Relation blocks have relnode != 0, which keeps them apart from the
 * relmapper and directory keys of the same database.
 */
#ifndef PS_KEY_H
#define PS_KEY_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/error.h"

#define PS_KEY_LEN    18
#define PS_KEY_STRLEN (2 * PS_KEY_LEN + 1)

/* f6 of a relation-size or SLRU-segment-size key. */
#define PS_KEY_SIZE_BLKNO 0xFFFFFFFFu

enum ps_key_space {
    PS_KEYSPACE_REL = 0x00,
    PS_KEYSPACE_SLRU = 0x01,
    PS_KEYSPACE_TWOPHASE = 0x02,
    PS_KEYSPACE_CONTROL = 0x03
};

enum ps_slru_kind {
    PS_SLRU_CLOG = 0,
    PS_SLRU_MULTIXACT_MEMBERS = 1,
    PS_SLRU_MULTIXACT_OFFSETS = 2
};

struct ps_key {
    uint8_t b[PS_KEY_LEN]; /* big-endian fields; memcmp order is key order */
};

/* Build a key from its six fields. */
struct ps_key ps_key_make(uint8_t f1, uint32_t f2, uint32_t f3, uint32_t f4, uint8_t f5,
                          uint32_t f6);
/* Read the fields back (any pointer may be NULL). */
void ps_key_fields(const struct ps_key *k, uint8_t *f1, uint32_t *f2, uint32_t *f3, uint32_t *f4,
                   uint8_t *f5, uint32_t *f6);

struct ps_key ps_key_rel_block(uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork,
                               uint32_t blkno);
struct ps_key ps_key_rel_size(uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork);
struct ps_key ps_key_relmap(uint32_t spc, uint32_t db);
struct ps_key ps_key_rel_dir(uint32_t spc, uint32_t db);
struct ps_key ps_key_db_dir(void);
struct ps_key ps_key_slru_dir(enum ps_slru_kind kind);
struct ps_key ps_key_slru_block(enum ps_slru_kind kind, uint32_t segno, uint32_t blkno);
struct ps_key ps_key_slru_size(enum ps_slru_kind kind, uint32_t segno);
struct ps_key ps_key_twophase_dir(void);
struct ps_key ps_key_twophase_file(uint32_t xid);
struct ps_key ps_key_control_file(void);
struct ps_key ps_key_checkpoint(void);

/* The smallest and largest keys (bounds of an L0 delta layer's key range). */
struct ps_key ps_key_min(void);
struct ps_key ps_key_max(void);

static inline int ps_key_cmp(const struct ps_key *a, const struct ps_key *b)
{
    return memcmp(a->b, b->b, PS_KEY_LEN);
}

static inline bool ps_key_eq(const struct ps_key *a, const struct ps_key *b)
{
    return memcmp(a->b, b->b, PS_KEY_LEN) == 0;
}

/* The next key in order (wraps to ps_key_min() after ps_key_max()). */
struct ps_key ps_key_next(const struct ps_key *k);

/* True for relation-block keys (which the WAL-redo helper reconstructs). */
bool ps_key_is_rel_block(const struct ps_key *k);
/* True for SLRU-block keys (which the pageserver applies itself). */
bool ps_key_is_slru_block(const struct ps_key *k);

/* 36 lower-case hex digits; returns buf. */
char *ps_key_format(const struct ps_key *k, char buf[PS_KEY_STRLEN]);
/* Parse exactly 36 hex digits (either case); KC_EINVAL with err filled otherwise. */
int ps_key_parse(const char *s, struct ps_key *out, struct kc_error *err) KC_MUSTCHECK;

#endif
