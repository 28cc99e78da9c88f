/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reconstruct.h -- rebuilding pages of a timeline with the WAL-redo pool.
 *
 * ps_timeline_get_page() collects a key's values and applies native
 * records itself; the PostgreSQL records go to a redo hook. This is that
 * hook, backed by a struct ps_walredo_pool.
 *
 * Values are stored at their record's end LSN only; the start LSN the
 * helper wants (it names the record in messages and in the decoded record)
 * is taken as end - xl_tot_len, exact unless the record crossed a page
 * boundary. Redo stamps pages with the end LSN, which is exact.
 */
#ifndef PS_RECONSTRUCT_H
#define PS_RECONSTRUCT_H

#include "pageserver/timeline.h"
#include "pageserver/walredo.h"

/* A ps_timeline_redo_fn; arg is the struct ps_walredo_pool *. */
int ps_reconstruct_redo(void *arg, const struct ps_key *key, const uint8_t *base,
                        const struct ps_found *records, size_t n, uint8_t page_out[PS_PAGE_SIZE],
                        struct kc_error *err) KC_MUSTCHECK;

/* Rebuild key at lsn on tl into buf (see ps_timeline_get_page) with pool. */
int ps_reconstruct_page(struct ps_timeline *tl, struct ps_walredo_pool *pool,
                        const struct ps_key *key, kc_lsn lsn, uint8_t *buf, size_t cap, size_t *len,
                        struct kc_error *err) KC_MUSTCHECK;

#endif
