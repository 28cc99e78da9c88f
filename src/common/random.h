/* SPDX-License-Identifier: Apache-2.0 */
/*
 * random.h -- cryptographically strong random bytes from the kernel.
 *
 * For ids, passwords, keys and nonces. Not for test randomness that must be
 * reproducible: tests use their own seeded generators.
 */
#ifndef KC_RANDOM_H
#define KC_RANDOM_H

#include <stddef.h>

#include "common/error.h"

/*
 * kc_random_bytes -- fill buf with len bytes from getrandom(2), retrying
 * interrupted and short reads. Blocks only until the kernel's pool is first
 * seeded at boot. KC_EIO with err filled when the kernel refuses.
 */
int kc_random_bytes(void *buf, size_t len, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_random_hex -- nbytes random bytes as 2*nbytes lower-case hex digits in
 * out, which must hold 2*nbytes+1 chars (NUL-terminated). For passwords and
 * tokens that travel in URLs and config files.
 */
int kc_random_hex(char *out, size_t nbytes, struct kc_error *err) KC_MUSTCHECK;

#endif
