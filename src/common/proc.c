/* SPDX-License-Identifier: Apache-2.0 */
/* proc.c -- child processes and the unprivileged user they run as. See proc.h. */
#include "common/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

static int kc_user_lookup(const char *name, struct kc_user *out)
{
    struct passwd pw, *res = NULL;
    char buf[4096];

    if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
        return KC_ENOTFOUND;
    out->uid = pw.pw_uid;
    out->gid = pw.pw_gid;
    snprintf(out->name, sizeof(out->name), "%s", pw.pw_name);
    return 0;
}

int kc_user_for_postgres(const char *name, struct kc_user *out, struct kc_error *err)
{
    memset(out, 0, sizeof(*out));
    if (geteuid() != 0) {
        struct passwd *pw = getpwuid(geteuid());
        out->uid = geteuid();
        out->gid = getegid();
        snprintf(out->name, sizeof(out->name), "%s", pw ? pw->pw_name : "unknown");
        out->switch_to = false;
        return 0;
    }
    if (name == NULL || *name == '\0')
        name = KC_DEFAULT_OS_USER;
    if (strlen(name) >= sizeof(out->name) || strchr(name, '/') != NULL || name[0] == '-')
        return kc_error_set(err, KC_EINVAL, "invalid OS user name \"%s\"", name);
    if (kc_user_lookup(name, out) != 0) {
        char *argv[] = {"useradd", "--system",          "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", (char *)name,   NULL};
        int code, rc;

        kc_info("creating OS user \"%s\" to run PostgreSQL (it refuses to run as root)", name);
        rc = kc_proc_run(argv, &(struct kc_proc_opts){.quiet = false}, &code, err);
        if (rc != 0)
            return rc;
        if (code != 0 || kc_user_lookup(name, out) != 0) {
            kc_error_set(err, KC_EIO, "could not create OS user \"%s\" (useradd exit code %d)",
                         name, code);
            kc_error_hint(err, "Create an unprivileged user yourself and name it with --os-user.");
            return KC_EIO;
        }
    }
    if (out->uid == 0)
        return kc_error_set(err, KC_EINVAL,
                            "OS user \"%s\" is root; PostgreSQL needs an "
                            "unprivileged user",
                            name);
    out->switch_to = true;
    return 0;
}

int kc_path_give_to(const char *path, const struct kc_user *user, struct kc_error *err)
{
    if (user == NULL || !user->switch_to)
        return 0;
    if (chown(path, user->uid, user->gid) != 0)
        return kc_error_set(err, KC_EIO, "could not change owner of \"%s\" to %s: %s", path,
                            user->name, strerror(errno));
    return 0;
}

/*
 * The child's set-up, between fork and exec. Only async-signal-safe calls
 * (the parent may have other threads); each step returns 0 or an errno.
 */

/* Move *fd to a close-on-exec copy above 2, unless it is -1, above 2 or keep. */
static int kc_child_lift(int *fd, int keep)
{
    int high;

    if (*fd < 0 || *fd > 2 || *fd == keep)
        return 0;
    high = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (high < 0)
        return errno;
    *fd = high;
    return 0;
}

/* Make fd the descriptor target, kept across the exec. */
static int kc_child_dup(int fd, int target)
{
    int flags;

    if (fd != target)
        return dup2(fd, target) < 0 ? errno : 0;
    flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
        return errno;
    return 0;
}

/* Set up the std streams; *report (the exec-error pipe) may move above 2. */
static int kc_child_streams(const struct kc_proc_opts *opts, int *report)
{
    int in = opts->use_fds ? opts->stdin_fd : -1;
    int out = opts->use_fds ? opts->stdout_fd : -1;
    int errfd = opts->use_fds ? opts->stderr_fd : -1;
    int fd = -1, e;

    /* Nothing we need may sit on 0-2 while they are replaced... */
    if ((e = kc_child_lift(report, -1)) != 0 || (e = kc_child_lift(&in, 0)) != 0 ||
        (e = kc_child_lift(&out, 1)) != 0 || (e = kc_child_lift(&errfd, 2)) != 0)
        return e;
    /* ...and with 0-2 all open, every open() below lands above 2. */
    do {
        fd = open("/dev/null", O_RDWR);
        if (fd < 0)
            return errno;
    } while (fd <= 2);
    close(fd);

    if (in < 0) {
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || dup2(fd, 0) < 0)
            return errno;
        close(fd);
    } else if ((e = kc_child_dup(in, 0)) != 0) {
        return e;
    }
    fd = -1;
    if ((out < 0 || errfd < 0) && (opts->output_path != NULL || opts->quiet)) {
        const char *path = opts->output_path ? opts->output_path : "/dev/null";
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return errno;
        out = out < 0 ? fd : out;
        errfd = errfd < 0 ? fd : errfd;
    }
    if ((out >= 0 && (e = kc_child_dup(out, 1)) != 0) ||
        (errfd >= 0 && (e = kc_child_dup(errfd, 2)) != 0))
        return e;
    if (fd >= 0)
        close(fd);
    return 0;
}

/* In the child: signals, std streams, descriptors, user and directory. */
static int kc_child_setup(const struct kc_proc_opts *opts, int *report)
{
    sigset_t none;
    int e;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if ((e = kc_child_streams(opts, report)) != 0)
        return e;
    if (opts->close_fds) {
        /* *report is above 2 now, and close-on-exec. */
        if (*report > 3)
            close_range(3, (unsigned)*report - 1, 0);
        close_range((unsigned)*report + 1, ~0U, 0);
    }
    if (opts->user != NULL && opts->user->switch_to) {
        if (setgroups(0, NULL) != 0 || setgid(opts->user->gid) != 0 || setuid(opts->user->uid) != 0)
            return errno;
    }
    if (opts->cwd != NULL && chdir(opts->cwd) != 0)
        return errno;
    return 0;
}

/* The forked child: set up, then exec (or run child_main). Never returns. */
static void __attribute__((noreturn))
kc_child(char *const argv[], const struct kc_proc_opts *opts, int report)
{
    int e = kc_child_setup(opts, &report);

    if (e == 0 && opts->child_main != NULL) {
        close(report); /* "started", as a successful exec would say */
        _exit(opts->child_main(opts->child_arg));
    }
    if (e == 0) {
        if (opts->envp != NULL)
            execvpe(argv[0], argv, opts->envp);
        else
            execvp(argv[0], argv);
        e = errno;
    }
    /* Tell the parent why; the pipe closes by itself on a successful exec. */
    if (write(report, &e, sizeof(e)) < 0) {
        /* the parent sees a closed pipe and reports an unknown failure */
    }
    _exit(127);
}

int kc_proc_spawn(char *const argv[], const struct kc_proc_opts *opts, pid_t *pid,
                  struct kc_error *err)
{
    static const struct kc_proc_opts none;
    int pipefd[2];
    int child_errno = 0;
    ssize_t n;
    pid_t child;

    if (opts == NULL)
        opts = &none;
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return kc_error_set(err, KC_EIO, "could not create pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    child = fork();
    if (child < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return kc_error_set(err, KC_EIO, "could not fork: %s", strerror(errno));
    }
    if (child == 0) {
        close(pipefd[0]);
        kc_child(argv, opts, pipefd[1]);
    }
    close(pipefd[1]);
    do {
        n = read(pipefd[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n != 0) {
        /* A full errno means the child is exiting; otherwise make sure it is. */
        if (n != (ssize_t)sizeof(child_errno))
            kill(child, SIGKILL);
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
        }
        kc_error_set(err, KC_EIO, "could not execute \"%s\"%s%s: %s", argv[0],
                     opts->user && opts->user->switch_to ? " as user " : "",
                     opts->user && opts->user->switch_to ? opts->user->name : "",
                     n == (ssize_t)sizeof(child_errno) ? strerror(child_errno) : "unknown error");
        return KC_EIO;
    }
    *pid = child;
    return 0;
}

int kc_proc_run(char *const argv[], const struct kc_proc_opts *opts, int *exit_code,
                struct kc_error *err)
{
    pid_t pid;
    int status, rc;

    rc = kc_proc_spawn(argv, opts, &pid, err);
    if (rc != 0)
        return rc;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return kc_error_set(err, KC_EIO, "waitpid: %s", strerror(errno));
    }
    *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return 0;
}
