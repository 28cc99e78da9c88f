/* SPDX-License-Identifier: Apache-2.0 */
/* proc_test.c -- unit tests for proc.c. */
#include "common/proc.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
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

/*
 * Spawn argv with opts (its other fields kept) on two pipes, feed it input,
 * read its stdout into buf (NUL-terminated) and reap it; returns the exit code.
 */
static int spawn_piped(char *const argv[], struct kc_proc_opts *opts, const char *input, char *buf,
                       size_t cap)
{
    int in[2], out[2], status;
    size_t len = 0;
    ssize_t n;
    pid_t pid;

    KT_ASSERT_EQ(pipe2(in, O_CLOEXEC), 0);
    KT_ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
    opts->use_fds = true;
    opts->stdin_fd = in[0];
    opts->stdout_fd = out[1];
    KT_ASSERT_EQ(kc_proc_spawn(argv, opts, &pid, NULL), 0);
    close(in[0]);
    close(out[1]);
    KT_ASSERT_EQ(write(in[1], input, strlen(input)), (ssize_t)strlen(input));
    close(in[1]);
    while (len < cap - 1 && (n = read(out[0], buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(out[0]);
    KT_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    ssize_t n;

    KT_ASSERT(fd >= 0);
    n = read(fd, buf, cap - 1);
    close(fd);
    KT_ASSERT(n >= 0);
    buf[n] = '\0';
}

KT_TEST(proc_spawn_stdin_stdout_pipes)
{
    /* A descriptor left open across exec, to see close_fds at work. */
    int extra = open("/dev/null", O_RDONLY);
    char script[128], buf[256];
    char *argv[] = {"sh", "-c", script, NULL};

    KT_ASSERT(extra > 2);
    snprintf(script, sizeof(script),
             "read line; echo \"got $line\"; [ -e /proc/$$/fd/%d ] && echo open || echo closed",
             extra);
    for (int close_fds = 0; close_fds <= 1; close_fds++) {
        struct kc_proc_opts opts = {.stderr_fd = -1, .close_fds = close_fds};

        KT_ASSERT_EQ(spawn_piped(argv, &opts, "hello\n", buf, sizeof(buf)), 0);
        KT_ASSERT_STR_EQ(buf, close_fds ? "got hello\nclosed\n" : "got hello\nopen\n");
    }
    close(extra);
}

KT_TEST(proc_spawn_explicit_environment)
{
    char *env[] = {"KELP_PROC_TEST=42", "PATH=/usr/bin:/bin", NULL};
    char *argv[] = {"sh", "-c", "echo \"$KELP_PROC_TEST ${HOME-unset} $PATH\"", NULL};
    char *missing[] = {"/nonexistent-kelp/prog", NULL};
    struct kc_proc_opts opts = {.stderr_fd = -1, .envp = env};
    struct kc_error err;
    char buf[256];
    pid_t pid;

    KT_ASSERT_EQ(setenv("HOME", "/kelp-home", 1), 0);
    KT_ASSERT_EQ(spawn_piped(argv, &opts, "", buf, sizeof(buf)), 0);
    KT_ASSERT_STR_EQ(buf, "42 unset /usr/bin:/bin\n");

    /* Exec failures are still reported, not exit statuses. */
    opts.use_fds = false;
    KT_ASSERT_EQ(kc_proc_spawn(missing, &opts, &pid, &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "could not execute \"/nonexistent-kelp/prog\"");
    KT_ASSERT_CONTAINS(err.message, "No such file or directory");
}

KT_TEST(proc_spawn_stderr_to_file)
{
    char out_path[4200], err_path[4200], buf[256];
    char *argv[] = {"sh", "-c", "echo to-stdout; echo to-stderr >&2", NULL};
    struct kc_proc_opts opts = {
        .output_path = out_path, .use_fds = true, .stdin_fd = -1, .stdout_fd = -1};
    int code;

    snprintf(out_path, sizeof(out_path), "%s/out", kt_tmpdir());
    snprintf(err_path, sizeof(err_path), "%s/err", kt_tmpdir());
    opts.stderr_fd = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    KT_ASSERT(opts.stderr_fd >= 0);
    KT_ASSERT_EQ(kc_proc_run(argv, &opts, &code, NULL), 0);
    KT_ASSERT_EQ(code, 0);
    close(opts.stderr_fd);
    read_file(out_path, buf, sizeof(buf));
    KT_ASSERT_STR_EQ(buf, "to-stdout\n");
    read_file(err_path, buf, sizeof(buf));
    KT_ASSERT_STR_EQ(buf, "to-stderr\n");
}

/* Descriptors on 0-2 may be passed and may be swapped. */
KT_TEST(proc_spawn_low_fds)
{
    char *argv[] = {"sh", "-c", "read line; echo \"out $line\"; echo \"err $line\" >&2", NULL};
    char out_path[4200], err_path[4200], buf[256];
    int in[2], out_fd, err_fd, code, rc, saved[3];
    struct kc_proc_opts opts = {.use_fds = true};

    snprintf(out_path, sizeof(out_path), "%s/out", kt_tmpdir());
    snprintf(err_path, sizeof(err_path), "%s/err", kt_tmpdir());
    KT_ASSERT_EQ(pipe(in), 0);
    out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    KT_ASSERT(out_fd >= 0 && err_fd >= 0);
    KT_ASSERT_EQ(write(in[1], "x\n", 2), 2);
    close(in[1]);
    /* Our fd 2 gets the child's stdout file, fd 1 its stderr file, fd 0 the pipe. */
    for (int i = 0; i < 3; i++) {
        saved[i] = dup(i);
        KT_ASSERT(saved[i] > 2);
    }
    KT_ASSERT_EQ(dup2(in[0], 0), 0);
    KT_ASSERT_EQ(dup2(out_fd, 2), 2);
    KT_ASSERT_EQ(dup2(err_fd, 1), 1);
    opts.stdin_fd = 0;
    opts.stdout_fd = 2;
    opts.stderr_fd = 1;
    rc = kc_proc_run(argv, &opts, &code, NULL);
    for (int i = 0; i < 3; i++) {
        dup2(saved[i], i);
        close(saved[i]);
    }
    close(in[0]);
    close(out_fd);
    close(err_fd);
    KT_ASSERT_EQ(rc, 0);
    KT_ASSERT_EQ(code, 0);
    read_file(out_path, buf, sizeof(buf));
    KT_ASSERT_STR_EQ(buf, "out x\n");
    read_file(err_path, buf, sizeof(buf));
    KT_ASSERT_STR_EQ(buf, "err x\n");
}

static int child_echo_upper(void *arg)
{
    char c;

    while (read(0, &c, 1) == 1) {
        c = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        if (write(1, &c, 1) != 1)
            return 1;
    }
    return *(int *)arg;
}

KT_TEST(proc_spawn_child_main)
{
    char *argv[] = {"/nonexistent-kelp/not-run", NULL};
    int code = 23;
    struct kc_proc_opts opts = {.stderr_fd = -1,
                                .close_fds = true,
                                .cwd = "/",
                                .child_main = child_echo_upper,
                                .child_arg = &code};
    struct kc_error err;
    char buf[64];
    pid_t pid;

    KT_ASSERT_EQ(spawn_piped(argv, &opts, "abc\n", buf, sizeof(buf)), 23);
    KT_ASSERT_STR_EQ(buf, "ABC\n");

    /* A failed set-up still comes back as an error, before child_main runs. */
    opts.use_fds = false;
    opts.cwd = "/nonexistent-kelp";
    KT_ASSERT_EQ(kc_proc_spawn(argv, &opts, &pid, &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "No such file or directory");
}
