/* SPDX-License-Identifier: Apache-2.0 */
/* buf_test.c -- unit tests for buf.c. */
#include "common/buf.h"

#include <stdlib.h>

#include "unit.h"

KT_TEST(buf_roundtrip_big_endian)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_buf b;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    char tail[4];

    kc_sbuf_put_u8(&s, 0xab);
    kc_sbuf_put_u16(&s, 0x1234);
    kc_sbuf_put_u32(&s, 0xdeadbeef);
    kc_sbuf_put_u64(&s, 0x0102030405060708ULL);
    kc_sbuf_append(&s, "tail", 4);
    KT_ASSERT_EQ(s.len, 1 + 2 + 4 + 8 + 4);
    KT_ASSERT_EQ(s.data[1], 0x12); /* big-endian on the wire */

    kc_buf_init(&b, s.data, s.len);
    KT_ASSERT(kc_buf_get_u8(&b, &u8) && u8 == 0xab);
    KT_ASSERT(kc_buf_get_u16(&b, &u16) && u16 == 0x1234);
    KT_ASSERT(kc_buf_get_u32(&b, &u32) && u32 == 0xdeadbeef);
    KT_ASSERT(kc_buf_get_u64(&b, &u64) && u64 == 0x0102030405060708ULL);
    KT_ASSERT(kc_buf_get_bytes(&b, tail, 4));
    KT_ASSERT_MEM_EQ(tail, "tail", 4);
    KT_ASSERT_EQ(kc_buf_remaining(&b), 0);
    kc_sbuf_fini(&s);
}

KT_TEST(buf_underrun_consumes_nothing)
{
    const uint8_t in[3] = {1, 2, 3};
    struct kc_buf b, sub;
    uint32_t u32;
    uint16_t u16;

    kc_buf_init(&b, in, sizeof(in));
    KT_ASSERT(!kc_buf_get_u32(&b, &u32));
    KT_ASSERT_EQ(b.pos, 0);
    KT_ASSERT(kc_buf_get_u16(&b, &u16) && u16 == 0x0102);
    KT_ASSERT(!kc_buf_get_u16(&b, &u16));
    KT_ASSERT(!kc_buf_get_slice(&b, &sub, 2));
    KT_ASSERT(!kc_buf_skip(&b, SIZE_MAX)); /* no overflow on huge lengths */
    KT_ASSERT(kc_buf_get_slice(&b, &sub, 1));
    KT_ASSERT_EQ(kc_buf_remaining(&sub), 1);
    KT_ASSERT_EQ(kc_buf_remaining(&b), 0);
}

KT_TEST(sbuf_printf_patch_steal)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    char *p;

    KT_ASSERT_STR_EQ(kc_sbuf_str(&s), "");
    kc_sbuf_put_u32(&s, 0);
    for (int i = 0; i < 1000; i++)
        kc_sbuf_printf(&s, "%d,", i);
    kc_sbuf_patch_u32(&s, 0, (uint32_t)s.len);
    KT_ASSERT_EQ(kc_load_u32(s.data), s.len);
    KT_ASSERT_CONTAINS((const char *)s.data + 4, "998,999,");
    kc_sbuf_reset(&s);
    kc_sbuf_puts(&s, "abc");
    p = kc_sbuf_steal(&s);
    KT_ASSERT_STR_EQ(p, "abc");
    KT_ASSERT(s.data == NULL);
    free(p);
    p = kc_sbuf_steal(&s);
    KT_ASSERT_STR_EQ(p, "");
    free(p);
}
