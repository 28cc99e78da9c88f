/* SPDX-License-Identifier: Apache-2.0 */
/* log.c -- leveled log lines. See log.h for the line format. */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define KC_LOG_LINE_MAX 4096

static _Atomic int kc_log_level = KC_LOG_INFO;
static _Atomic int kc_log_fd = 2;
static char kc_log_role[32] = "kelp";

static const char *const kc_log_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "FATAL"};

void kc_log_init(const char *role)
{
    const char *env = getenv("KELP_LOG_LEVEL");
    enum kc_log_level level;

    snprintf(kc_log_role, sizeof(kc_log_role), "%s", role);
    if (env != NULL && *env != '\0') {
        if (kc_log_level_parse(env, &level) == 0)
            kc_log_set_level(level);
        else
            kc_warn("ignoring KELP_LOG_LEVEL=\"%s\": expected debug, info, warn or error", env);
    }
}

void kc_log_set_level(enum kc_log_level level)
{
    atomic_store(&kc_log_level, (int)level);
}

enum kc_log_level kc_log_get_level(void)
{
    return (enum kc_log_level)atomic_load_explicit(&kc_log_level, memory_order_relaxed);
}

int kc_log_level_parse(const char *s, enum kc_log_level *out)
{
    static const struct {
        const char *name;
        enum kc_log_level level;
    } names[] = {{"debug", KC_LOG_DEBUG},
                 {"info", KC_LOG_INFO},
                 {"warn", KC_LOG_WARN},
                 {"warning", KC_LOG_WARN},
                 {"error", KC_LOG_ERROR}};

    for (size_t i = 0; i < KC_ARRAY_LEN(names); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return KC_EINVAL;
}

const char *kc_log_level_name(enum kc_log_level level)
{
    if ((unsigned)level < KC_ARRAY_LEN(kc_log_names))
        return kc_log_names[level];
    return "?";
}

int kc_log_open(const char *path, struct kc_error *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    int old;

    if (fd < 0)
        return kc_error_set(err, KC_EIO, "could not open log file \"%s\": %s", path,
                            strerror(errno));
    old = atomic_exchange(&kc_log_fd, fd);
    if (old > 2)
        close(old);
    return 0;
}

void kc_log_set_fd(int fd)
{
    atomic_store(&kc_log_fd, fd);
}

static void kc_log_vwrite(enum kc_log_level level, const char *fmt, va_list ap)
{
    char line[KC_LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int saved_errno = errno; /* callers may log and then read errno */

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s %s[%d]: ", ts.tv_nsec / 1000000,
                          kc_log_level_name(level), kc_log_role, (int)getpid());
    if (n < sizeof(line)) {
        int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        if (m > 0)
            n += (size_t)m;
    }
    if (n > sizeof(line) - 2) {
        /* Truncated: mark it so a reader knows. */
        n = sizeof(line) - 2;
        memcpy(line + n - 3, "...", 3);
    }
    /* Control characters would let input forge log lines: escape newlines. */
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    {
        int fd = atomic_load(&kc_log_fd);
        const char *p = line;
        while (n > 0) {
            ssize_t w = write(fd, p, n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            p += w;
            n -= (size_t)w;
        }
    }
    errno = saved_errno;
}

void kc_log_write(enum kc_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kc_log_vwrite(level, fmt, ap);
    va_end(ap);
}

void kc_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kc_log_vwrite(KC_LOG_FATAL, fmt, ap);
    va_end(ap);
    exit(1);
}
