/* SPDX-License-Identifier: Apache-2.0 */
/* key.c -- building, ordering and printing pageserver keys. See key.h. */
#include "pageserver/key.h"

#include "common/buf.h"
#include "common/hex.h"

struct ps_key ps_key_make(uint8_t f1, uint32_t f2, uint32_t f3, uint32_t f4, uint8_t f5,
                          uint32_t f6)
{
    struct ps_key k;

    k.b[0] = f1;
    kc_store_u32(k.b + 1, f2);
    kc_store_u32(k.b + 5, f3);
    kc_store_u32(k.b + 9, f4);
    k.b[13] = f5;
    kc_store_u32(k.b + 14, f6);
    return k;
}

void ps_key_fields(const struct ps_key *k, uint8_t *f1, uint32_t *f2, uint32_t *f3, uint32_t *f4,
                   uint8_t *f5, uint32_t *f6)
{
    if (f1 != NULL)
        *f1 = k->b[0];
    if (f2 != NULL)
        *f2 = kc_load_u32(k->b + 1);
    if (f3 != NULL)
        *f3 = kc_load_u32(k->b + 5);
    if (f4 != NULL)
        *f4 = kc_load_u32(k->b + 9);
    if (f5 != NULL)
        *f5 = k->b[13];
    if (f6 != NULL)
        *f6 = kc_load_u32(k->b + 14);
}

struct ps_key ps_key_rel_block(uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork,
                               uint32_t blkno)
{
    return ps_key_make(PS_KEYSPACE_REL, spc, db, rel, fork, blkno);
}

struct ps_key ps_key_rel_size(uint32_t spc, uint32_t db, uint32_t rel, uint8_t fork)
{
    return ps_key_make(PS_KEYSPACE_REL, spc, db, rel, fork, PS_KEY_SIZE_BLKNO);
}

struct ps_key ps_key_relmap(uint32_t spc, uint32_t db)
{
    return ps_key_make(PS_KEYSPACE_REL, spc, db, 0, 0, 0);
}

struct ps_key ps_key_rel_dir(uint32_t spc, uint32_t db)
{
    return ps_key_make(PS_KEYSPACE_REL, spc, db, 0, 0, 1);
}

struct ps_key ps_key_db_dir(void)
{
    return ps_key_make(PS_KEYSPACE_REL, 0, 0, 0, 0, 0);
}

struct ps_key ps_key_slru_dir(enum ps_slru_kind kind)
{
    return ps_key_make(PS_KEYSPACE_SLRU, (uint32_t)kind, 0, 0, 0, 0);
}

struct ps_key ps_key_slru_block(enum ps_slru_kind kind, uint32_t segno, uint32_t blkno)
{
    return ps_key_make(PS_KEYSPACE_SLRU, (uint32_t)kind, 1, segno, 0, blkno);
}

struct ps_key ps_key_slru_size(enum ps_slru_kind kind, uint32_t segno)
{
    return ps_key_make(PS_KEYSPACE_SLRU, (uint32_t)kind, 1, segno, 0, PS_KEY_SIZE_BLKNO);
}

struct ps_key ps_key_twophase_dir(void)
{
    return ps_key_make(PS_KEYSPACE_TWOPHASE, 0, 0, 0, 0, 0);
}

struct ps_key ps_key_twophase_file(uint32_t xid)
{
    /* xid 0 is never a real transaction, so it cannot collide with the directory key. */
    return ps_key_make(PS_KEYSPACE_TWOPHASE, 0, 0, 0, 0, xid);
}

struct ps_key ps_key_control_file(void)
{
    return ps_key_make(PS_KEYSPACE_CONTROL, 0, 0, 0, 0, 0);
}

struct ps_key ps_key_checkpoint(void)
{
    return ps_key_make(PS_KEYSPACE_CONTROL, 0, 0, 0, 0, 1);
}

struct ps_key ps_key_min(void)
{
    struct ps_key k;
    memset(k.b, 0x00, sizeof(k.b));
    return k;
}

struct ps_key ps_key_max(void)
{
    struct ps_key k;
    memset(k.b, 0xFF, sizeof(k.b));
    return k;
}

struct ps_key ps_key_next(const struct ps_key *k)
{
    struct ps_key n = *k;

    for (int i = PS_KEY_LEN - 1; i >= 0; i--) {
        if (++n.b[i] != 0)
            break;
    }
    return n;
}

bool ps_key_is_rel_block(const struct ps_key *k)
{
    uint8_t f1;
    uint32_t f4, f6;

    ps_key_fields(k, &f1, NULL, NULL, &f4, NULL, &f6);
    return f1 == PS_KEYSPACE_REL && f4 != 0 && f6 != PS_KEY_SIZE_BLKNO;
}

bool ps_key_is_slru_block(const struct ps_key *k)
{
    uint8_t f1;
    uint32_t f3, f6;

    ps_key_fields(k, &f1, NULL, &f3, NULL, NULL, &f6);
    return f1 == PS_KEYSPACE_SLRU && f3 == 1 && f6 != PS_KEY_SIZE_BLKNO;
}

char *ps_key_format(const struct ps_key *k, char buf[PS_KEY_STRLEN])
{
    kc_hex_encode(k->b, PS_KEY_LEN, buf);
    return buf;
}

int ps_key_parse(const char *s, struct ps_key *out, struct kc_error *err)
{
    struct ps_key k;
    size_t len = strnlen(s, 2 * PS_KEY_LEN + 1), bad;

    if (len != 2 * PS_KEY_LEN) {
        kc_error_set(err, KC_EINVAL, "invalid key \"%.40s%s\"", s, len > 40 ? "..." : "");
        kc_error_detail(err, "A key is exactly %d hexadecimal digits.", 2 * PS_KEY_LEN);
        return KC_EINVAL;
    }
    bad = kc_hex_decode(s, PS_KEY_LEN, k.b);
    if (bad != 0) {
        kc_error_set(err, KC_EINVAL, "invalid key \"%s\"", s);
        kc_error_detail(err, "Character %zu is not a hexadecimal digit.", bad);
        return KC_EINVAL;
    }
    *out = k;
    return 0;
}
