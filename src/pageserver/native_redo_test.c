/* SPDX-License-Identifier: Apache-2.0 */
/* native_redo_test.c -- unit tests for native_redo.c. */
#include "pageserver/native_redo.h"

#include <stdlib.h>

#include "common/buf.h"
#include "pageserver/ingest.h"
#include "unit.h"

static uint8_t page[PS_CLOG_VALUE_SIZE];

static void clog_rec(struct kc_sbuf *s, uint8_t status, int64_t t, const uint32_t *xids, int n)
{
    kc_sbuf_reset(s);
    kc_sbuf_put_u8(s, PS_NATIVE_CLOG_SET);
    kc_sbuf_put_u8(s, PS_NATIVE_VERSION);
    kc_sbuf_put_u8(s, status);
    kc_sbuf_put_u64(s, (uint64_t)t);
    kc_sbuf_put_u32(s, (uint32_t)n);
    for (int i = 0; i < n; i++)
        kc_sbuf_put_u32(s, xids[i]);
}

static int clog_status(uint32_t xid)
{
    uint32_t slot = xid % (PS_PAGE_SIZE * 4);
    return (page[slot / 4] >> ((slot % 4) * 2)) & 3;
}

KT_TEST(native_clog_set_bits_and_time)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    const uint32_t committed[] = {0, 3, 4, 32767}, aborted[] = {5};
    size_t len = PS_PAGE_SIZE;

    memset(page, 0, sizeof(page));
    clog_rec(&s, PS_CLOG_COMMITTED, 1000, committed, 4);
    KT_ASSERT_EQ(ps_native_apply(page, &len, s.data, s.len, NULL), 0);
    KT_ASSERT_EQ(len, PS_CLOG_VALUE_SIZE);
    clog_rec(&s, PS_CLOG_ABORTED, 0, aborted, 1);
    KT_ASSERT_EQ(ps_native_apply(page, &len, s.data, s.len, NULL), 0);
    KT_ASSERT_EQ(clog_status(0), 1);
    KT_ASSERT_EQ(clog_status(3), 1);
    KT_ASSERT_EQ(clog_status(4), 1);
    KT_ASSERT_EQ(clog_status(5), 2);
    KT_ASSERT_EQ(clog_status(6), 0);
    KT_ASSERT_EQ(clog_status(32767), 1);
    KT_ASSERT_EQ(page[0], 0x01 | 0x40); /* xids 0 (low bits) and 3 (high bits) */
    KT_ASSERT_EQ(page[1], 0x01 | 0x08); /* xids 4 (committed) and 5 (aborted) */
    KT_ASSERT_EQ(ps_clog_value_time(page, len), 1000);
    /* An older commit does not move the time back. */
    clog_rec(&s, PS_CLOG_COMMITTED, 500, (const uint32_t[]){7}, 1);
    KT_ASSERT_EQ(ps_native_apply(page, &len, s.data, s.len, NULL), 0);
    KT_ASSERT_EQ(ps_clog_value_time(page, len), 1000);
    /* Xids of page 1 land at the same slots of their own page. */
    clog_rec(&s, PS_CLOG_COMMITTED, 2000, (const uint32_t[]){32768 + 6}, 1);
    KT_ASSERT_EQ(ps_native_apply(page, &len, s.data, s.len, NULL), 0);
    KT_ASSERT_EQ(clog_status(6), 1);
    kc_sbuf_fini(&s);
}

KT_TEST(native_records_malformed_change_nothing)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    uint8_t before[PS_CLOG_VALUE_SIZE];
    struct kc_error err;
    size_t len = PS_PAGE_SIZE;
    unsigned seed = 7;

    memset(page, 0, sizeof(page));
    /* Two pages in one record: refused whole. */
    clog_rec(&s, PS_CLOG_COMMITTED, 1, (const uint32_t[]){1, 40000}, 2);
    KT_ASSERT_EQ(ps_native_apply(page, &len, s.data, s.len, &err), KC_ECORRUPT);
    KT_ASSERT_EQ(clog_status(1), 0);
    KT_ASSERT_CONTAINS(err.message, "spans two pages");
    /* Every truncation of a valid record is refused. */
    clog_rec(&s, PS_CLOG_COMMITTED, 1, (const uint32_t[]){1, 2}, 2);
    for (size_t cut = 0; cut < s.len; cut++)
        KT_ASSERT(ps_native_apply(page, &len, s.data, cut, &err) < 0);
    KT_ASSERT_EQ(clog_status(1), 0);
    /* Unknown version. */
    s.data[1] = 9;
    KT_ASSERT_EQ(ps_native_apply(page, &len, s.data, s.len, &err), KC_EVERSION);
    /* Random bytes: an error or a change, never a crash or an overrun. */
    for (int i = 0; i < 20000; i++) {
        uint8_t rec[64];
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof(rec));
        for (size_t j = 0; j < n; j++)
            rec[j] = (uint8_t)rand_r(&seed);
        if (n > 2) {
            rec[0] = (uint8_t)(1 + rand_r(&seed) % 5);
            rec[1] = PS_NATIVE_VERSION;
        }
        memcpy(before, page, sizeof(page));
        len = PS_PAGE_SIZE;
        if (ps_native_apply(page, &len, rec, n, &err) < 0)
            KT_ASSERT_MEM_EQ(before, page, PS_PAGE_SIZE);
    }
    kc_sbuf_fini(&s);
}

KT_TEST(native_vm_truncate_keeps_lower_bits)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    size_t len = PS_PAGE_SIZE;
    const uint32_t per_page = (PS_PAGE_SIZE - 24) * 4;

    memset(page, 0xFF, PS_PAGE_SIZE);
    kc_sbuf_put_u8(&s, PS_NATIVE_VM_TRUNCATE);
    kc_sbuf_put_u8(&s, PS_NATIVE_VERSION);
    kc_sbuf_put_u32(&s, per_page * 3 + 9); /* heap block 9 of this VM page */
    KT_ASSERT_EQ(ps_native_apply(page, &len, s.data, s.len, NULL), 0);
    KT_ASSERT_EQ(page[0], 0xFF);  /* the page header is untouched */
    KT_ASSERT_EQ(page[24], 0xFF); /* heap blocks 0-3 */
    KT_ASSERT_EQ(page[25], 0xFF); /* 4-7 */
    KT_ASSERT_EQ(page[26], 0x03); /* 8 kept, 9-11 cleared */
    KT_ASSERT_EQ(page[27], 0x00);
    KT_ASSERT_EQ(page[PS_PAGE_SIZE - 1], 0x00);
    kc_sbuf_fini(&s);
}

KT_TEST(native_multixact_layout)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    size_t len = PS_PAGE_SIZE;
    uint32_t v;

    memset(page, 0, PS_PAGE_SIZE);
    kc_sbuf_put_u8(&s, PS_NATIVE_MXACT_OFFSET);
    kc_sbuf_put_u8(&s, PS_NATIVE_VERSION);
    kc_sbuf_put_u32(&s, 2048 + 3); /* multixact 3 of its page */
    kc_sbuf_put_u32(&s, 777);
    KT_ASSERT_EQ(ps_native_apply(page, &len, s.data, s.len, NULL), 0);
    memcpy(&v, page + 12, 4);
    KT_ASSERT_EQ(v, 777);

    memset(page, 0, PS_PAGE_SIZE);
    kc_sbuf_reset(&s);
    kc_sbuf_put_u8(&s, PS_NATIVE_MXACT_MEMBERS);
    kc_sbuf_put_u8(&s, PS_NATIVE_VERSION);
    kc_sbuf_put_u32(&s, 5); /* offsets 5 and 6: group 1, members 1 and 2 */
    kc_sbuf_put_u32(&s, 2);
    kc_sbuf_put_u32(&s, 1001);
    kc_sbuf_put_u8(&s, 1);
    kc_sbuf_put_u32(&s, 1002);
    kc_sbuf_put_u8(&s, 5);
    KT_ASSERT_EQ(ps_native_apply(page, &len, s.data, s.len, NULL), 0);
    /* group 1 starts at byte 20: 4 flag bytes, then 4 xids */
    KT_ASSERT_EQ(page[21], 1);
    KT_ASSERT_EQ(page[22], 5);
    memcpy(&v, page + 20 + 4 + 4, 4);
    KT_ASSERT_EQ(v, 1001);
    memcpy(&v, page + 20 + 4 + 8, 4);
    KT_ASSERT_EQ(v, 1002);
    kc_sbuf_fini(&s);
}
