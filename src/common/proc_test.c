/* SPDX-License-Identifier: Apache-2.0 */
/* proc_test.c -- unit tests for proc.c. */
#include "common/proc.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "unit.h"

KT_TEST(proc_run_exit_codes)
{
    char *ok[] = {"true", NULL};
    char *fail[] = {"sh", "-c", "exit 7", NULL};
    char *killed[] = {"sh", "-c", "kill -9 $$", NULL};
    int code = -1;

    KT_ASSERT_EQ(kc_proc_run(ok, NULL, &code, NULL), 0);
    KT_ASSERT_EQ(code, 0);
    KT_ASSERT_EQ(kc_proc_run(fail, NULL, &code, NULL), 0);
    KT_ASSERT_EQ(code, 7);
    KT_ASSERT_EQ(kc_proc_run(killed, NULL, &code, NULL), 0);
    KT_ASSERT_EQ(code, 128 + 9);
}

KT_TEST(proc_missing_program_is_an_error)
{
    char *argv[] = {"kelp-no-such-program-xyz", NULL};
    struct kc_error err;
    int code;

    KT_ASSERT_EQ(kc_proc_run(argv, NULL, &code, &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "could not execute \"kelp-no-such-program-xyz\"");
    KT_ASSERT_CONTAINS(err.message, "No such file or directory");
}

KT_TEST(proc_output_and_cwd)
{
    char path[4200], buf[256];
    char *argv[] = {"sh", "-c", "pwd; echo to-stderr >&2", NULL};
    struct kc_proc_opts opts = {.cwd = "/", .output_path = path};
    int code, fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/out", kt_tmpdir());
    KT_ASSERT_EQ(kc_proc_run(argv, &opts, &code, NULL), 0);
    KT_ASSERT_EQ(code, 0);
    fd = open(path, O_RDONLY);
    KT_ASSERT(fd >= 0);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    KT_ASSERT(n > 0);
    buf[n] = '\0';
    KT_ASSERT_STR_EQ(buf, "/\nto-stderr\n");
}

KT_TEST(proc_user_for_postgres_never_root)
{
    struct kc_user u;
    struct kc_error err;

    if (geteuid() != 0) {
        KT_ASSERT_EQ(kc_user_for_postgres(NULL, &u, &err), 0);
        KT_ASSERT(!u.switch_to);
        KT_ASSERT_EQ(u.uid, geteuid());
        return;
    }
    KT_ASSERT_EQ(kc_user_for_postgres("root", &u, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "is root");
    KT_ASSERT_EQ(kc_user_for_postgres("../x", &u, &err), KC_EINVAL);
}
