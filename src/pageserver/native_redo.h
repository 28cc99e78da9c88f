/* SPDX-License-Identifier: Apache-2.0 */
/*
 * native_redo.h -- applying the pageserver's native records to a page.
 *
 * Ingest stores CLOG status changes, visibility-map truncations and
 * multixact offsets/members as native records (docs/pageserver-ingest.md):
 * the pageserver applies them itself, with no WAL-redo helper, to the
 * page's previous version.
 *
 * CLOG pages carry an 8-byte trailer after the 8192-byte page: the newest
 * commit time applied to the page (big-endian, PostgreSQL microseconds since
 * 2000-01-01), the index behind timestamp-to-LSN lookups. Other pages are
 * plain 8192-byte pages.
 */
#ifndef PS_NATIVE_REDO_H
#define PS_NATIVE_REDO_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define PS_PAGE_SIZE       8192
#define PS_CLOG_TRAILER    8
#define PS_CLOG_VALUE_SIZE (PS_PAGE_SIZE + PS_CLOG_TRAILER)

/*
 * ps_native_apply -- apply the native record rec (len bytes) to page, which
 * holds *page_len bytes (PS_PAGE_SIZE, or PS_CLOG_VALUE_SIZE for CLOG) in a
 * buffer of PS_CLOG_VALUE_SIZE bytes. A CLOG_SET on a plain page adds the
 * trailer and updates *page_len. Records that do not fit the page (an xid or
 * offset of another page, a malformed or unknown record) give KC_ECORRUPT
 * and leave the page unchanged.
 */
int ps_native_apply(uint8_t *page, size_t *page_len, const uint8_t *rec, size_t len,
                    struct kc_error *err) KC_MUSTCHECK;

/* The commit time trailer of a CLOG value, or 0 when it has none. */
int64_t ps_clog_value_time(const uint8_t *value, size_t len);

#endif
