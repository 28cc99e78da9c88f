/* SPDX-License-Identifier: Apache-2.0 */
/* reconstruct.c -- the WAL-redo hook of timelines. See reconstruct.h. */
#include "pageserver/reconstruct.h"

#include <stdlib.h>

#include "common/alloc.h"

int ps_reconstruct_redo(void *arg, const struct ps_key *key, const uint8_t *base,
                        const struct ps_found *records, size_t n, uint8_t page_out[PS_PAGE_SIZE],
                        struct kc_error *err)
{
    struct ps_walredo_pool *pool = arg;
    struct ps_redo_record *recs;
    struct ps_redo_request req = {.base_image = base, .nrecords = n};
    uint8_t f5;
    int rc;

    if (!ps_key_is_rel_block(key))
        return kc_error_set(err, KC_EINVAL,
                            "WAL redo asked for a key that is not a relation block");
    ps_key_fields(key, NULL, &req.tag.spcnode, &req.tag.dbnode, &req.tag.relnode, &f5,
                  &req.tag.blkno);
    req.tag.forknum = f5;
    recs = kc_malloc((n ? n : 1) * sizeof(*recs));
    for (size_t i = 0; i < n; i++) {
        const struct ps_value *v = &records[i].v;
        kc_lsn end = records[i].lsn;

        if (v->kind != PS_VALUE_PG_RECORD) {
            free(recs);
            return kc_error_set(err, KC_EINVAL, "WAL redo got a %s value",
                                ps_value_kind_name(v->kind));
        }
        recs[i] = (struct ps_redo_record){
            .lsn = end > v->len ? end - v->len : 1, .end_lsn = end, .data = v->data, .len = v->len};
    }
    req.records = recs;
    rc = ps_walredo_apply(pool, &req, page_out, err);
    free(recs);
    return rc;
}

int ps_reconstruct_page(struct ps_timeline *tl, struct ps_walredo_pool *pool,
                        const struct ps_key *key, kc_lsn lsn, uint8_t *buf, size_t cap, size_t *len,
                        struct kc_error *err)
{
    return ps_timeline_get_page(tl, key, lsn, buf, cap, len, ps_reconstruct_redo, pool, err);
}
