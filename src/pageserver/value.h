/* SPDX-License-Identifier: Apache-2.0 */
/*
 * value.h -- what the pageserver stores for one key at one LSN.
 *
 * A value is one of three kinds:
 *
 *   image           the complete contents of the key at that LSN: usually an
 *                   8192-byte page, but relmapper files, directories, SLRU
 *                   pages with a commit timestamp, the checkpoint struct and
 *                   twophase files have other sizes (0 bytes included)
 *   pg record       the raw bytes of a PostgreSQL WAL record that touches the
 *                   key; the WAL-redo helper applies it to the older version
 *   native record   a record in a pageserver-native encoding (CLOG bits,
 *                   visibility-map bits, multixact updates) that the
 *                   pageserver applies itself
 *
 * will_init says that the value needs nothing older: reconstructing a key at
 * an LSN collects values newest first and stops at the first one for which
 * ps_value_ends_chain() is true. Images always end the chain, so their
 * will_init is always true; a record ends it when it initialises the page by
 * itself (BKPBLOCK_WILL_INIT, a zeroed SLRU page, ...).
 *
 * struct ps_value is a view: it never owns its bytes. Layer readers fill it
 * with a pointer into the caller's buffer; writers copy what they need.
 */
#ifndef PS_VALUE_H
#define PS_VALUE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

/* The kinds; the numbers are stored in layer files and never change. */
enum ps_value_kind {
    PS_VALUE_IMAGE = 1,        /* full contents of the key */
    PS_VALUE_PG_RECORD = 2,    /* raw PostgreSQL WAL record, applied by WAL redo */
    PS_VALUE_NATIVE_RECORD = 3 /* pageserver-native record, applied in-process */
};

/*
 * The largest value, in bytes. Far above any single-key value PostgreSQL 15
 * produces (a WAL record with block references is bounded by its pages, a
 * directory of 1M relations is a few MB); it bounds the buffers a layer
 * writer and reader may need for one value.
 */
#define PS_VALUE_MAX_LEN (64u * 1024 * 1024)

/* A value; see the top of this file. Borrowed bytes, never owned. */
struct ps_value {
    enum ps_value_kind kind; /* what the bytes are */
    bool will_init;          /* needs nothing older; always true for images */
    uint32_t len;            /* bytes at data, at most PS_VALUE_MAX_LEN */
    const uint8_t *data;     /* len bytes (may be NULL when len is 0); not owned */
};

/* An image of len bytes at data (borrowed). */
static inline struct ps_value ps_value_image(const void *data, uint32_t len)
{
    struct ps_value v = {PS_VALUE_IMAGE, true, len, (const uint8_t *)data};
    return v;
}

/* A record (PS_VALUE_PG_RECORD or PS_VALUE_NATIVE_RECORD) of len bytes at data (borrowed). */
static inline struct ps_value ps_value_record(enum ps_value_kind kind, bool will_init,
                                              const void *data, uint32_t len)
{
    struct ps_value v = {kind, will_init, len, (const uint8_t *)data};
    return v;
}

/* True when reconstruction needs nothing older than v (an image or a will_init record). */
static inline bool ps_value_ends_chain(const struct ps_value *v)
{
    return v->kind == PS_VALUE_IMAGE || v->will_init;
}

/* True when kind is one of enum ps_value_kind (for numbers read from input). */
bool ps_value_kind_valid(unsigned kind);

/* "image", "pg-record", "native-record", or "unknown"; a static string. */
const char *ps_value_kind_name(unsigned kind);

/*
 * ps_value_check -- verify that v is well formed: a known kind, len at most
 * PS_VALUE_MAX_LEN (KC_ETOOBIG otherwise), data non-NULL when len > 0, and
 * will_init true for an image. Returns 0, or KC_EINVAL / KC_ETOOBIG with err
 * filled. Does not look at the bytes themselves.
 */
int ps_value_check(const struct ps_value *v, struct kc_error *err) KC_MUSTCHECK;

#endif
