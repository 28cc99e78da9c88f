/* SPDX-License-Identifier: Apache-2.0 */
/* crc32c.c -- CRC-32C with SSE4.2 and slicing-by-8 implementations. See crc32c.h. */
#include "common/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KC_CRC32C_X86 1
#include <nmmintrin.h>
#endif

#define KC_CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

typedef uint32_t (*kc_crc32c_fn)(uint32_t reg, const uint8_t *p, size_t len);

/*
 * kc_crc_table[0] is the classic byte-at-a-time table: the register after
 * shifting one byte n through a zero register. kc_crc_table[k][n] is the
 * same byte followed by k zero bytes, which lets slicing-by-8 look up eight
 * input bytes independently and XOR the results.
 */
static uint32_t kc_crc_table[8][256];
static pthread_once_t kc_crc_once = PTHREAD_ONCE_INIT;
static kc_crc32c_fn kc_crc_impl;
static const char *kc_crc_impl_name;

static inline uint32_t kc_load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Slicing-by-8 over the raw (already inverted) register. */
static uint32_t kc_crc_update_sw(uint32_t reg, const uint8_t *p, size_t len)
{
    const uint32_t(*t)[256] = (const uint32_t(*)[256])kc_crc_table;

    /* Leading bytes one at a time until p is 8-byte aligned (helps the loads). */
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        reg = (reg >> 8) ^ t[0][(reg ^ *p++) & 0xff];
        len--;
    }
    while (len >= 8) {
        uint32_t lo = reg ^ kc_load_le32(p);
        uint32_t hi = kc_load_le32(p + 4);

        reg = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
              t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        reg = (reg >> 8) ^ t[0][(reg ^ *p++) & 0xff];
        len--;
    }
    return reg;
}

#ifdef KC_CRC32C_X86
/*
 * The crc32 instruction computes exactly the reflected, non-inverted register
 * update the tables do, so both paths share the same pre/post inversion.
 */
__attribute__((target("sse4.2"))) static uint32_t kc_crc_update_hw(uint32_t reg, const uint8_t *p,
                                                                   size_t len)
{
    uint64_t reg64;

    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        reg = _mm_crc32_u8(reg, *p++);
        len--;
    }
    reg64 = reg;
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, sizeof(word)); /* aligned here; memcpy keeps it well-defined */
        reg64 = _mm_crc32_u64(reg64, word);
        p += 8;
        len -= 8;
    }
    reg = (uint32_t)reg64;
    if (len >= 4) {
        uint32_t word;
        memcpy(&word, p, sizeof(word));
        reg = _mm_crc32_u32(reg, word);
        p += 4;
        len -= 4;
    }
    while (len > 0) {
        reg = _mm_crc32_u8(reg, *p++);
        len--;
    }
    return reg;
}
#endif

static void kc_crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t reg = n;
        for (int bit = 0; bit < 8; bit++)
            reg = (reg >> 1) ^ (KC_CRC32C_POLY & (0u - (reg & 1)));
        kc_crc_table[0][n] = reg;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int k = 1; k < 8; k++) {
            uint32_t prev = kc_crc_table[k - 1][n];
            kc_crc_table[k][n] = (prev >> 8) ^ kc_crc_table[0][prev & 0xff];
        }

    kc_crc_impl = kc_crc_update_sw;
    kc_crc_impl_name = "slicing-by-8";
#ifdef KC_CRC32C_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        kc_crc_impl = kc_crc_update_hw;
        kc_crc_impl_name = "sse4.2";
    }
#endif
}

uint32_t kc_crc32c(uint32_t crc, const void *data, size_t len)
{
    if (len == 0)
        return crc;
    pthread_once(&kc_crc_once, kc_crc_init);
    return ~kc_crc_impl(~crc, (const uint8_t *)data, len);
}

uint32_t kc_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    if (len == 0)
        return crc;
    pthread_once(&kc_crc_once, kc_crc_init);
    return ~kc_crc_update_sw(~crc, (const uint8_t *)data, len);
}

bool kc_crc32c_hw_available(void)
{
    pthread_once(&kc_crc_once, kc_crc_init);
    return kc_crc_impl != kc_crc_update_sw;
}

const char *kc_crc32c_impl_name(void)
{
    pthread_once(&kc_crc_once, kc_crc_init);
    return kc_crc_impl_name;
}
