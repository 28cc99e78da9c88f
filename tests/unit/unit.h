/* SPDX-License-Identifier: Apache-2.0 */
/*
 * unit.h -- the unit-test harness used by every <module>_test.c.
 *
 *   #include "unit.h"
 *   KT_TEST(lsn_parse_roundtrip) { KT_ASSERT_EQ(1 + 1, 2); }
 *
 * Tests register themselves at load time (a constructor), so adding a test
 * file to the tree is enough. The runner (runner.c, binary kelp-unit) runs
 * every test in its own forked process with a timeout, so a crash, a hang or
 * a leak (ASan/LSan or valgrind exit code) fails that test alone. A failed
 * assertion prints the expression and both values, then exits the child.
 */
#ifndef KT_UNIT_H
#define KT_UNIT_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef void (*kt_fn)(void);

void kt_register(const char *name, const char *file, kt_fn fn);
void kt_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
/* A scratch directory unique to the running test (removed afterwards). */
const char *kt_tmpdir(void);

#define KT_TEST(name)                                                 \
    static void kt_test_##name(void);                                 \
    __attribute__((constructor)) static void kt_register_##name(void) \
    {                                                                 \
        kt_register(#name, __FILE__, kt_test_##name);                 \
    }                                                                 \
    static void kt_test_##name(void)

#define KT_ASSERT(cond)                                                 \
    do {                                                                \
        if (!(cond))                                                    \
            kt_fail(__FILE__, __LINE__, "assertion failed: %s", #cond); \
    } while (0)

#define KT_ASSERT_EQ(a, b)                                                             \
    do {                                                                               \
        intmax_t kt_a_ = (intmax_t)(a), kt_b_ = (intmax_t)(b);                         \
        if (kt_a_ != kt_b_)                                                            \
            kt_fail(__FILE__, __LINE__, "%s == %s: %jd != %jd", #a, #b, kt_a_, kt_b_); \
    } while (0)

#define KT_ASSERT_UEQ(a, b)                                                                \
    do {                                                                                   \
        uintmax_t kt_a_ = (uintmax_t)(a), kt_b_ = (uintmax_t)(b);                          \
        if (kt_a_ != kt_b_)                                                                \
            kt_fail(__FILE__, __LINE__, "%s == %s: 0x%jx != 0x%jx", #a, #b, kt_a_, kt_b_); \
    } while (0)

#define KT_ASSERT_STR_EQ(a, b)                                                \
    do {                                                                      \
        const char *kt_a_ = (a), *kt_b_ = (b);                                \
        if (kt_a_ == NULL || kt_b_ == NULL || strcmp(kt_a_, kt_b_) != 0)      \
            kt_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, \
                    kt_a_ ? kt_a_ : "(null)", kt_b_ ? kt_b_ : "(null)");      \
    } while (0)

/* Assert that haystack contains needle. */
#define KT_ASSERT_CONTAINS(haystack, needle)                                                       \
    do {                                                                                           \
        const char *kt_h_ = (haystack), *kt_n_ = (needle);                                         \
        if (kt_h_ == NULL || strstr(kt_h_, kt_n_) == NULL)                                         \
            kt_fail(__FILE__, __LINE__, "%s contains %s: \"%s\" lacks \"%s\"", #haystack, #needle, \
                    kt_h_ ? kt_h_ : "(null)", kt_n_);                                              \
    } while (0)

#define KT_ASSERT_MEM_EQ(a, b, n)                                                              \
    do {                                                                                       \
        if (memcmp((a), (b), (n)) != 0)                                                        \
            kt_fail(__FILE__, __LINE__, "%s and %s differ in %zu bytes", #a, #b, (size_t)(n)); \
    } while (0)

#endif
