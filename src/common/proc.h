/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proc.h -- run child programs, optionally as an unprivileged OS user.
 *
 * PostgreSQL refuses to run as root, and Kelp's machines often run as root:
 * every role that starts postgres, initdb or pg_ctl does it through here, as
 * the user kc_user_ensure() found or created ("kelp" by default). When the
 * caller is not root, programs simply run as the caller.
 */
#ifndef KC_PROC_H
#define KC_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"

#define KC_DEFAULT_OS_USER "kelp"

struct kc_user {
    uid_t uid;
    gid_t gid;
    char name[64];
    bool switch_to; /* true when children must setuid to this user (we are root) */
};

/*
 * kc_user_for_postgres -- pick the OS user that runs PostgreSQL processes.
 * As root: the user `name`, created as a system user (useradd) when missing.
 * Otherwise: the calling user (name is ignored), with switch_to false.
 */
int kc_user_for_postgres(const char *name, struct kc_user *out, struct kc_error *err) KC_MUSTCHECK;

/* Stand-in for the program in tests: runs in the forked child after its set-up
 * (descriptors, user, directory) instead of the exec; its return value is the
 * exit status. Not async-signal-safe, so single-threaded programs only. */
typedef int (*kc_proc_child_fn)(void *arg);

/*
 * Options of kc_proc_run / kc_proc_spawn; zero-initialised means "inherit"
 * (stdin from /dev/null, our stdout and stderr, environment and descriptors).
 */
struct kc_proc_opts {
    const struct kc_user *user;  /* run as this user when user->switch_to */
    const char *cwd;             /* working directory, or NULL */
    const char *output_path;     /* append stdout+stderr here, or NULL to inherit */
    bool quiet;                  /* discard stdout+stderr (ignored with output_path) */
    bool use_fds;                /* take the std streams from the three fds below */
    int stdin_fd;                /* with use_fds: the child's stdin, or -1 for /dev/null */
    int stdout_fd;               /* with use_fds: the child's stdout, or -1 for the default above */
    int stderr_fd;               /* with use_fds: the child's stderr, or -1 for the default above */
    char *const *envp;           /* the child's whole environment, or NULL to inherit ours */
    bool close_fds;              /* close every other descriptor above 2 in the child */
    kc_proc_child_fn child_main; /* tests: run this in the child instead of argv */
    void *child_arg;             /* passed to child_main */
};

/*
 * kc_proc_spawn -- start argv[0] (searched in our PATH when it has no slash,
 * even with opts->envp). The child starts with no blocked signals, SIGPIPE
 * at its default action and stdin from /dev/null unless opts say otherwise.
 * Descriptors given in opts stay the caller's (they are not closed here);
 * any value is accepted, including 0-2 and close-on-exec ones; a std stream
 * we have closed and opts do not set is /dev/null in the child. Returns 0 and
 * the child's pid in *pid, or an error when the fork, the set-up in the
 * child (user switch, directory, descriptors) or the exec failed (reported
 * by the child through a close-on-exec pipe, so "no such program" is an
 * error here and not an exit status; such a child is reaped here).
 */
int kc_proc_spawn(char *const argv[], const struct kc_proc_opts *opts, pid_t *pid,
                  struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_proc_run -- kc_proc_spawn, then wait. *exit_code is the exit status, or
 * 128 + signal number when the child was killed.
 */
int kc_proc_run(char *const argv[], const struct kc_proc_opts *opts, int *exit_code,
                struct kc_error *err) KC_MUSTCHECK;

/* Change the owner of path to user when we switch to it (no-op otherwise). */
int kc_path_give_to(const char *path, const struct kc_user *user,
                    struct kc_error *err) KC_MUSTCHECK;

#endif
