/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crc32c.h -- CRC-32C (Castagnoli), the checksum of PostgreSQL's WAL and of
 * every Kelp on-disk and on-wire format.
 *
 * Parameters: reflected polynomial 0x82F63B78 (0x1EDC6F41 normal form),
 * initial value and final XOR 0xFFFFFFFF. "123456789" checksums to 0xE3069283.
 *
 * Chaining convention (the same as zlib's crc32()): start with 0 and pass the
 * previous result back in. The pre- and post-inversion happen inside, so
 *
 *   kc_crc32c(kc_crc32c(0, a, na), b, nb) == kc_crc32c(0, a||b, na + nb)
 *
 * for any split. Note PostgreSQL's own INIT_CRC32C/FIN_CRC32C macros keep the
 * inverted register between calls instead; the final values are identical.
 *
 * On x86_64 CPUs with SSE4.2 the crc32 instruction is used (chosen once at
 * first use); elsewhere a portable slicing-by-8 table implementation runs.
 * All functions are thread-safe and never fail.
 */
#ifndef KC_CRC32C_H
#define KC_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * kc_crc32c -- extend crc (0 to start) over len bytes at data and return the
 * new value. data may be NULL when len is 0 (crc is then returned unchanged).
 */
uint32_t kc_crc32c(uint32_t crc, const void *data, size_t len);

/* The portable table implementation, whatever the CPU; same contract. For
 * tests and benchmarks that compare it with the hardware path. */
uint32_t kc_crc32c_sw(uint32_t crc, const void *data, size_t len);

/* True when kc_crc32c() uses CPU instructions rather than the tables. */
bool kc_crc32c_hw_available(void);

/* Name of the implementation kc_crc32c() uses: "sse4.2" or "slicing-by-8"
 * (static string, for a startup log line). */
const char *kc_crc32c_impl_name(void);

#endif
