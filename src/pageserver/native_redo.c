/* SPDX-License-Identifier: Apache-2.0 */
/*
 * native_redo.c -- applying native records to CLOG, visibility-map and
 * multixact pages. See native_redo.h.
 *
 * Page layouts follow PostgreSQL 15.18 with 8 kB blocks; the constants are
 * private to PostgreSQL's clog.c, visibilitymap.c and multixact.c, so they
 * are restated here, each with where it comes from. SLRU pages store their
 * integers in the machine's byte order, as PostgreSQL does.
 */
#include "pageserver/native_redo.h"

#include <string.h>

#include "common/buf.h"
#include "pageserver/ingest.h"

/* clog.c: 2 status bits per transaction, 4 per byte. */
#define CLOG_XACTS_PER_BYTE 4
#define CLOG_XACTS_PER_PAGE (PS_PAGE_SIZE * CLOG_XACTS_PER_BYTE)
#define CLOG_BITS_PER_XACT  2
/* visibilitymap.c: 2 bits per heap block after the (MAXALIGNed) page header. */
#define VM_PAGE_HEADER       24
#define VM_MAPSIZE           (PS_PAGE_SIZE - VM_PAGE_HEADER)
#define VM_HEAPBLKS_PER_BYTE 4
#define VM_HEAPBLKS_PER_PAGE (VM_MAPSIZE * VM_HEAPBLKS_PER_BYTE)
/* multixact.c: 4-byte offsets; members in groups of 4 flag bytes + 4 xids. */
#define MXOFF_PER_PAGE        (PS_PAGE_SIZE / 4)
#define MXMEM_PER_GROUP       4
#define MXMEM_GROUP_SIZE      (MXMEM_PER_GROUP + MXMEM_PER_GROUP * 4)
#define MXMEM_GROUPS_PER_PAGE (PS_PAGE_SIZE / MXMEM_GROUP_SIZE)
#define MXMEM_PER_PAGE        (MXMEM_GROUPS_PER_PAGE * MXMEM_PER_GROUP)

int64_t ps_clog_value_time(const uint8_t *value, size_t len)
{
    return len == PS_CLOG_VALUE_SIZE ? (int64_t)kc_load_u64(value + PS_PAGE_SIZE) : 0;
}

static int bad(struct kc_error *err, const char *what)
{
    return kc_error_set(err, KC_ECORRUPT, "malformed native record: %s", what);
}

static int apply_clog(uint8_t *page, size_t *page_len, struct kc_buf *b, struct kc_error *err)
{
    uint8_t status;
    uint64_t t;
    uint32_t n, xid, pageno = 0;
    struct kc_buf scan;

    if (!kc_buf_get_u8(b, &status) || !kc_buf_get_u64(b, &t) || !kc_buf_get_u32(b, &n) ||
        kc_buf_remaining(b) != (size_t)n * 4 || n == 0)
        return bad(err, "CLOG_SET is truncated or has trailing bytes");
    if (status != PS_CLOG_COMMITTED && status != PS_CLOG_ABORTED)
        return bad(err, "CLOG_SET has an unknown status");
    /* Check every xid first, so a bad record changes nothing. */
    scan = *b;
    for (uint32_t i = 0; i < n; i++) {
        if (!kc_buf_get_u32(&scan, &xid))
            return bad(err, "CLOG_SET is truncated");
        if (i == 0)
            pageno = xid / CLOG_XACTS_PER_PAGE;
        else if (xid / CLOG_XACTS_PER_PAGE != pageno)
            return bad(err, "CLOG_SET spans two pages");
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t slot;
        int shift;

        if (!kc_buf_get_u32(b, &xid))
            return bad(err, "CLOG_SET is truncated");
        slot = xid % CLOG_XACTS_PER_PAGE;
        shift = (int)(slot % CLOG_XACTS_PER_BYTE) * CLOG_BITS_PER_XACT;
        page[slot / CLOG_XACTS_PER_BYTE] =
            (uint8_t)((page[slot / CLOG_XACTS_PER_BYTE] & ~(3u << shift)) | (status << shift));
    }
    if (*page_len != PS_CLOG_VALUE_SIZE) {
        kc_store_u64(page + PS_PAGE_SIZE, 0);
        *page_len = PS_CLOG_VALUE_SIZE;
    }
    if (status == PS_CLOG_COMMITTED && (int64_t)t > (int64_t)kc_load_u64(page + PS_PAGE_SIZE))
        kc_store_u64(page + PS_PAGE_SIZE, t);
    return 0;
}

static int apply_vm_truncate(uint8_t *page, struct kc_buf *b, struct kc_error *err)
{
    uint32_t heapblk, slot, byte;
    int shift;
    uint8_t *map = page + VM_PAGE_HEADER;

    if (!kc_buf_get_u32(b, &heapblk) || kc_buf_remaining(b) != 0)
        return bad(err, "VM_TRUNCATE must hold exactly one block number");
    slot = heapblk % VM_HEAPBLKS_PER_PAGE;
    byte = slot / VM_HEAPBLKS_PER_BYTE;
    shift = (int)(slot % VM_HEAPBLKS_PER_BYTE) * 2;
    /* Keep the bits of heap blocks below heapblk; clear everything after. */
    map[byte] &= (uint8_t)((1u << shift) - 1);
    memset(map + byte + 1, 0, VM_MAPSIZE - (byte + 1));
    return 0;
}

static int apply_mxact_offset(uint8_t *page, struct kc_buf *b, struct kc_error *err)
{
    uint32_t mid, off;

    if (!kc_buf_get_u32(b, &mid) || !kc_buf_get_u32(b, &off) || kc_buf_remaining(b) != 0)
        return bad(err, "MXACT_OFFSET must hold a multixact id and an offset");
    memcpy(page + (mid % MXOFF_PER_PAGE) * 4, &off, 4);
    return 0;
}

static int apply_mxact_members(uint8_t *page, struct kc_buf *b, struct kc_error *err)
{
    uint32_t first, n;

    if (!kc_buf_get_u32(b, &first) || !kc_buf_get_u32(b, &n) ||
        kc_buf_remaining(b) != (size_t)n * 5 || n == 0 ||
        first / MXMEM_PER_PAGE != (first + n - 1) / MXMEM_PER_PAGE)
        return bad(err, "MXACT_MEMBERS is truncated or spans two pages");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t off = first + i, xid, flags;
        uint8_t status;
        uint32_t group = (off / MXMEM_PER_GROUP) % MXMEM_GROUPS_PER_PAGE;
        uint32_t member = off % MXMEM_PER_GROUP;
        uint8_t *g = page + group * MXMEM_GROUP_SIZE;

        if (!kc_buf_get_u32(b, &xid) || !kc_buf_get_u8(b, &status))
            return bad(err, "MXACT_MEMBERS is truncated");
        memcpy(&flags, g, 4);
        flags &= ~(0xFFu << (member * 8));
        flags |= (uint32_t)status << (member * 8);
        memcpy(g, &flags, 4);
        memcpy(g + MXMEM_PER_GROUP + member * 4, &xid, 4);
    }
    return 0;
}

int ps_native_apply(uint8_t *page, size_t *page_len, const uint8_t *rec, size_t len,
                    struct kc_error *err)
{
    struct kc_buf b;
    uint8_t type, version;

    kc_buf_init(&b, rec, len);
    if (!kc_buf_get_u8(&b, &type) || !kc_buf_get_u8(&b, &version))
        return bad(err, "shorter than its header");
    if (version != PS_NATIVE_VERSION)
        return kc_error_set(err, KC_EVERSION, "unsupported native record version %u", version);
    if (*page_len != PS_PAGE_SIZE && *page_len != PS_CLOG_VALUE_SIZE)
        return kc_error_set(err, KC_ECORRUPT, "native record applied to a %zu-byte value",
                            *page_len);
    switch (type) {
    case PS_NATIVE_CLOG_SET: return apply_clog(page, page_len, &b, err);
    case PS_NATIVE_VM_TRUNCATE: return apply_vm_truncate(page, &b, err);
    case PS_NATIVE_MXACT_OFFSET: return apply_mxact_offset(page, &b, err);
    case PS_NATIVE_MXACT_MEMBERS: return apply_mxact_members(page, &b, err);
    default: return bad(err, "unknown type");
    }
}
