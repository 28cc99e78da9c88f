/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h -- leveled, timestamped log lines tagged with the role name.
 *
 * One line per call, written with a single write(2) so lines from threads
 * and processes sharing a file do not interleave:
 *
 *   2026-11-24T02:10:55.123Z INFO  pageserver[4242]: ingest resumed at 0/16B3740
 *
 * The level is checked before any argument is formatted. Output goes to
 * stderr unless kc_log_open() names a file. The level comes from
 * kc_log_set_level() or the environment variable KELP_LOG_LEVEL
 * (debug, info, warn, error), read by kc_log_init().
 */
#ifndef KC_LOG_H
#define KC_LOG_H

#include <stdbool.h>

#include "common/error.h"

enum kc_log_level {
    KC_LOG_DEBUG = 0,
    KC_LOG_INFO = 1,
    KC_LOG_WARN = 2,
    KC_LOG_ERROR = 3,
    KC_LOG_FATAL = 4 /* logged, then the process exits with status 1 */
};

/* Set the role name shown on every line and read KELP_LOG_LEVEL. */
void kc_log_init(const char *role);
void kc_log_set_level(enum kc_log_level level);
enum kc_log_level kc_log_get_level(void);
/* Parse "debug", "info", "warn"/"warning", "error"; KC_EINVAL otherwise. */
int kc_log_level_parse(const char *s, enum kc_log_level *out) KC_MUSTCHECK;
const char *kc_log_level_name(enum kc_log_level level);
/* Send output to path (appended, created 0640); KC_EIO with err filled on failure. */
int kc_log_open(const char *path, struct kc_error *err) KC_MUSTCHECK;
/* Send output to an already open descriptor (tests use a pipe or a file). */
void kc_log_set_fd(int fd);

static inline bool kc_log_enabled(enum kc_log_level level)
{
    return level >= kc_log_get_level();
}

void kc_log_write(enum kc_log_level level, const char *fmt, ...) KC_PRINTF(2, 3);

#define kc_log(level, ...)                    \
    do {                                      \
        if (kc_log_enabled(level))            \
            kc_log_write(level, __VA_ARGS__); \
    } while (0)
#define kc_debug(...) kc_log(KC_LOG_DEBUG, __VA_ARGS__)
#define kc_info(...)  kc_log(KC_LOG_INFO, __VA_ARGS__)
#define kc_warn(...)  kc_log(KC_LOG_WARN, __VA_ARGS__)
#define kc_error(...) kc_log(KC_LOG_ERROR, __VA_ARGS__)
/* Log at FATAL and exit(1). */
void kc_fatal(const char *fmt, ...) KC_PRINTF(1, 2) KC_NORETURN;

#endif
