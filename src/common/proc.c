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

/* In the child: become the user, set up fds and directory. Returns errno on failure. */
static int kc_child_setup(const struct kc_proc_opts *opts)
{
    int fd;

    fd = open("/dev/null", O_RDONLY);
    if (fd < 0 || dup2(fd, 0) < 0)
        return errno;
    close(fd);
    if (opts->output_path != NULL || opts->quiet) {
        const char *path = opts->output_path ? opts->output_path : "/dev/null";
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0640);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            return errno;
        close(fd);
    }
    if (opts->user != NULL && opts->user->switch_to) {
        if (setgroups(0, NULL) != 0 || setgid(opts->user->gid) != 0 || setuid(opts->user->uid) != 0)
            return errno;
    }
    if (opts->cwd != NULL && chdir(opts->cwd) != 0)
        return errno;
    return 0;
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
        int e;
        close(pipefd[0]);
        signal(SIGPIPE, SIG_DFL);
        e = kc_child_setup(opts);
        if (e == 0) {
            execvp(argv[0], argv);
            e = errno;
        }
        /* Tell the parent why; the pipe closes by itself on a successful exec. */
        if (write(pipefd[1], &e, sizeof(e)) < 0) {
            /* nothing more we can do */
        }
        _exit(127);
    }
    close(pipefd[1]);
    do {
        n = read(pipefd[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n == (ssize_t)sizeof(child_errno)) {
        waitpid(child, NULL, 0);
        kc_error_set(err, KC_EIO, "could not execute \"%s\"%s%s: %s", argv[0],
                     opts->user && opts->user->switch_to ? " as user " : "",
                     opts->user && opts->user->switch_to ? opts->user->name : "",
                     strerror(child_errno));
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
