/* SPDX-License-Identifier: Apache-2.0 */
/* log_test.c -- unit tests for log.c. */
#include "common/log.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "unit.h"

/* Run fn with the log sent to a file; return what was written (static buffer). */
static const char *kt_capture_log(void (*fn)(void))
{
    static char out[8192];
    char path[4200];
    int fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/log", kt_tmpdir());
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    KT_ASSERT(fd >= 0);
    kc_log_set_fd(fd);
    fn();
    kc_log_set_fd(2);
    n = pread(fd, out, sizeof(out) - 1, 0);
    KT_ASSERT(n >= 0);
    out[n] = '\0';
    close(fd);
    return out;
}

static void log_some(void)
{
    kc_log_init("pageserver");
    kc_log_set_level(KC_LOG_INFO);
    kc_debug("hidden %d", 1);
    kc_info("visible %d", 2);
    kc_error("two\nlines");
}

KT_TEST(log_levels_role_and_timestamp)
{
    const char *out = kt_capture_log(log_some);
    int y, mo, d, h, mi, s, ms;

    KT_ASSERT(strstr(out, "hidden") == NULL);
    KT_ASSERT_CONTAINS(out, "INFO  pageserver[");
    KT_ASSERT_CONTAINS(out, "]: visible 2\n");
    /* A newline in the message cannot forge a second line. */
    KT_ASSERT_CONTAINS(out, "ERROR pageserver[");
    KT_ASSERT_CONTAINS(out, "two lines\n");
    KT_ASSERT_EQ(sscanf(out, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &y, &mo, &d, &h, &mi, &s, &ms), 7);
    KT_ASSERT(y >= 2024 && mo >= 1 && mo <= 12);
}

static void log_long(void)
{
    char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    kc_log_set_level(KC_LOG_DEBUG);
    kc_warn("%s", big);
}

KT_TEST(log_truncates_long_lines)
{
    const char *out = kt_capture_log(log_long);
    size_t len = strlen(out);
    KT_ASSERT(len <= 4096);
    KT_ASSERT_EQ(out[len - 1], '\n');
    KT_ASSERT_CONTAINS(out, "...\n");
}

KT_TEST(log_level_parse)
{
    enum kc_log_level l;
    KT_ASSERT_EQ(kc_log_level_parse("debug", &l), 0);
    KT_ASSERT_EQ(l, KC_LOG_DEBUG);
    KT_ASSERT_EQ(kc_log_level_parse("WARNING", &l), 0);
    KT_ASSERT_EQ(l, KC_LOG_WARN);
    KT_ASSERT_EQ(kc_log_level_parse("loud", &l), KC_EINVAL);
    KT_ASSERT_EQ(kc_log_level_parse("", &l), KC_EINVAL);
}

KT_TEST(log_open_bad_path_reports_error)
{
    struct kc_error err;
    KT_ASSERT_EQ(kc_log_open("/nonexistent-dir/x.log", &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "could not open log file \"/nonexistent-dir/x.log\"");
}
