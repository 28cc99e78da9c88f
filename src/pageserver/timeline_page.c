/* SPDX-License-Identifier: Apache-2.0 */
/* timeline_page.c -- reconstructing a page: base image, native records, WAL redo, zero pages. */
#include "pageserver/timeline.h"

#include <string.h>

#include "common/buf.h"
#include "pageserver/native_redo.h"

/* The size key that bounds a block key: 1 and *size_key, or 0 for keys without one. */
static int ps_size_key_of(const struct ps_key *key, struct ps_key *size_key, uint32_t *blkno)
{
    uint8_t f1, f5;
    uint32_t f2, f3, f4, f6;

    ps_key_fields(key, &f1, &f2, &f3, &f4, &f5, &f6);
    *blkno = f6;
    if (ps_key_is_rel_block(key)) {
        *size_key = ps_key_rel_size(f2, f3, f4, f5);
        return 1;
    }
    if (ps_key_is_slru_block(key)) {
        *size_key = ps_key_slru_size((enum ps_slru_kind)f2, f4);
        return 1;
    }
    return 0;
}

/* Copy n bytes to buf (cap bytes); *len = n; KC_ETOOBIG when they do not fit. */
static int ps_copy_out(const uint8_t *src, size_t n, uint8_t *buf, size_t cap, size_t *len,
                       struct kc_error *err)
{
    *len = n;
    if (n > cap) {
        kc_error_set(err, KC_ETOOBIG, "value of %zu bytes does not fit in a buffer of %zu bytes", n,
                     cap);
        kc_error_hint(err, "Call again with a buffer of %zu bytes.", n);
        return KC_ETOOBIG;
    }
    if (n > 0)
        memcpy(buf, src, n);
    return 0;
}

/*
 * Is the block at or past the end its size key gives at lsn? 1 yes, 0 no
 * (or the size is unknown), < 0 on error.
 */
static int ps_block_past_end(struct ps_timeline *tl, const struct ps_key *size_key, uint32_t blkno,
                             kc_lsn lsn, struct ps_values *vals, struct kc_error *err)
{
    char k[PS_KEY_STRLEN], l[KC_LSN_STRLEN];
    int rc = ps_timeline_get_values(tl, size_key, lsn, vals, err);

    if (rc != 0)
        return rc;
    if (vals->nrecords > 0 || (vals->has_base && vals->base.v.len != 4)) {
        kc_error_set(err, KC_ECORRUPT, "size key %s is malformed at LSN %s",
                     ps_key_format(size_key, k), kc_lsn_format(lsn, l));
        kc_error_detail(err, "A size is one image of 4 bytes.");
        return KC_ECORRUPT;
    }
    return vals->has_base && blkno >= kc_load_u32(vals->base.v.data) ? 1 : 0;
}

/* The record chain of vals applied in order into page (*page_len bytes, PS_CLOG_VALUE_SIZE cap). */
static int ps_apply_records(const struct ps_key *key, const struct ps_values *vals, uint8_t *page,
                            size_t *page_len, ps_timeline_redo_fn redo, void *redo_arg,
                            struct kc_error *err)
{
    uint8_t out[PS_PAGE_SIZE];
    char k[PS_KEY_STRLEN];
    bool have_page = vals->has_base;
    size_t i = 0;
    int rc;

    while (i < vals->nrecords) {
        const struct ps_found *r = &vals->records[i];
        size_t j = i + 1;

        if (r->v.kind == PS_VALUE_NATIVE_RECORD) {
            if (!have_page) { /* a will_init native record starts from zeros */
                memset(page, 0, PS_PAGE_SIZE);
                *page_len = PS_PAGE_SIZE;
                have_page = true;
            }
            if ((rc = ps_native_apply(page, page_len, r->v.data, r->v.len, err)) != 0)
                return rc;
            i++;
            continue;
        }
        while (j < vals->nrecords && vals->records[j].v.kind == PS_VALUE_PG_RECORD)
            j++;
        if (redo == NULL) {
            kc_error_set(err, KC_EINVAL, "key %s needs WAL redo, and no redo was given",
                         ps_key_format(key, k));
            return KC_EINVAL;
        }
        if ((rc = redo(redo_arg, key, have_page ? page : NULL, r, j - i, out, err)) != 0)
            return rc;
        memcpy(page, out, PS_PAGE_SIZE);
        *page_len = PS_PAGE_SIZE; /* redo returns a plain page */
        have_page = true;
        i = j;
    }
    return 0;
}

/* Reconstruct the block key (vals already collected and complete) into buf. */
static int ps_reconstruct(const struct ps_key *key, const struct ps_values *vals, uint8_t *buf,
                          size_t cap, size_t *len, ps_timeline_redo_fn redo, void *redo_arg,
                          struct kc_error *err)
{
    uint8_t page[PS_CLOG_VALUE_SIZE];
    size_t page_len = PS_PAGE_SIZE;
    char k[PS_KEY_STRLEN];
    int rc;

    if (vals->has_base) {
        if (vals->base.v.len > PS_CLOG_VALUE_SIZE)
            return kc_error_set(err, KC_ECORRUPT, "page image of key %s has %u bytes",
                                ps_key_format(key, k), vals->base.v.len);
        memcpy(page, vals->base.v.data, vals->base.v.len);
        page_len = vals->base.v.len;
        if (vals->nrecords > 0 && page_len != PS_PAGE_SIZE && page_len != PS_CLOG_VALUE_SIZE)
            return kc_error_set(err, KC_ECORRUPT,
                                "page image of key %s has %zu bytes, too few to apply records to",
                                ps_key_format(key, k), page_len);
    }
    if ((rc = ps_apply_records(key, vals, page, &page_len, redo, redo_arg, err)) != 0)
        return rc;
    return ps_copy_out(page, page_len, buf, cap, len, err);
}

int ps_timeline_get_page(struct ps_timeline *tl, const struct ps_key *key, kc_lsn lsn, uint8_t *buf,
                         size_t cap, size_t *len, ps_timeline_redo_fn redo, void *redo_arg,
                         struct kc_error *err)
{
    static const uint8_t zeros[PS_PAGE_SIZE];
    char k[PS_KEY_STRLEN], l[KC_LSN_STRLEN];
    struct ps_values vals;
    struct ps_key size_key;
    uint32_t blkno;
    int block = ps_size_key_of(key, &size_key, &blkno), rc = 0;

    *len = 0;
    ps_values_init(&vals);
    if (block) {
        rc = ps_block_past_end(tl, &size_key, blkno, lsn, &vals, err);
        if (rc == 1) {
            rc = ps_copy_out(zeros, sizeof(zeros), buf, cap, len, err);
            goto out;
        }
        if (rc != 0)
            goto out;
    }
    if ((rc = ps_timeline_get_values(tl, key, lsn, &vals, err)) != 0)
        goto out;
    if (!vals.complete && vals.nrecords == 0) {
        if (block)
            rc = ps_copy_out(zeros, sizeof(zeros), buf, cap, len, err);
        else
            rc = kc_error_set(err, KC_ENOTFOUND, "key %s does not exist at LSN %s",
                              ps_key_format(key, k), kc_lsn_format(lsn, l));
    } else if (!vals.complete) {
        rc = kc_error_set(err, KC_ECORRUPT, "could not reconstruct key %s at LSN %s",
                          ps_key_format(key, k), kc_lsn_format(lsn, l));
        kc_error_detail(err, "Its %zu records need an older version, and none is stored.",
                        vals.nrecords);
    } else if (!block) {
        if (vals.nrecords > 0) {
            rc = kc_error_set(err, KC_ECORRUPT, "key %s is not stored as an image",
                              ps_key_format(key, k));
            kc_error_detail(err, "At LSN %s its newest versions are %zu records.",
                            kc_lsn_format(lsn, l), vals.nrecords);
        } else {
            rc = ps_copy_out(vals.base.v.data, vals.base.v.len, buf, cap, len, err);
        }
    } else {
        rc = ps_reconstruct(key, &vals, buf, cap, len, redo, redo_arg, err);
    }
out:
    ps_values_fini(&vals);
    return rc;
}
