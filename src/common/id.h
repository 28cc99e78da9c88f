/* SPDX-License-Identifier: Apache-2.0 */
/*
 * id.h -- 128-bit identifiers of tenants, timelines and other named objects.
 *
 * An id is 16 random bytes. Its text form is exactly 32 lower-case hex
 * digits, most significant byte first ("3f2a...c901"); parsing also accepts
 * upper case. The all-zero id means "unset" and is never generated.
 * kc_id_compare orders ids the same way as their text forms sort.
 */
#ifndef KC_ID_H
#define KC_ID_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/error.h"

#define KC_ID_LEN    16 /* bytes */
#define KC_ID_HEXLEN 32 /* characters of the text form */
#define KC_ID_STRLEN 33 /* buffer size for kc_id_format, with the terminator */

struct kc_id {
    uint8_t b[KC_ID_LEN];
};

#define KC_ID_ZERO ((struct kc_id){{0}})

/*
 * kc_id_parse -- parse s (non-NULL, NUL-terminated): exactly 32 hex digits of
 * either case, nothing before or after. Returns 0 and sets *out, or KC_EINVAL
 * with err naming the input and what is wrong (its length, or the position
 * of the first bad character); *out is left alone on failure. The zero id
 * parses successfully; callers that need a set id check kc_id_is_zero.
 */
int kc_id_parse(const char *s, struct kc_id *out, struct kc_error *err) KC_MUSTCHECK;

/* Write id as 32 lower-case hex digits into buf and return buf. */
char *kc_id_format(const struct kc_id *id, char buf[KC_ID_STRLEN]);

/*
 * kc_id_generate -- fill *out with a new random, non-zero id from the
 * kernel's CSPRNG (getrandom(2); blocks only before the pool is first seeded
 * at boot). Returns 0, or KC_EIO with err filled when the kernel refuses.
 */
int kc_id_generate(struct kc_id *out, struct kc_error *err) KC_MUSTCHECK;

static inline bool kc_id_is_zero(const struct kc_id *id)
{
    static const struct kc_id zero;
    return memcmp(id->b, zero.b, KC_ID_LEN) == 0;
}

static inline bool kc_id_equal(const struct kc_id *a, const struct kc_id *b)
{
    return memcmp(a->b, b->b, KC_ID_LEN) == 0;
}

/* Negative, zero or positive as a sorts before, equal to or after b
 * (byte-wise, so the same order as the text forms); usable with qsort. */
static inline int kc_id_compare(const struct kc_id *a, const struct kc_id *b)
{
    return memcmp(a->b, b->b, KC_ID_LEN);
}

#endif
