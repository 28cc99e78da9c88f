/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runner.c -- kelp-unit: runs every registered unit test in its own process.
 *
 *   kelp-unit [--list] [--no-fork] [--timeout SECONDS] [NAME-SUBSTRING...]
 *
 * Each test runs in a forked child with an alarm; the child's exit status
 * decides the verdict, so a crash, a timeout or a sanitizer/valgrind error
 * report (non-zero exit) fails the test. Ends with "N passed, N failed".
 */
#include "unit.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KT_MAX_TESTS 4096

struct kt_case {
    const char *name;
    const char *file;
    kt_fn fn;
};

static struct kt_case kt_cases[KT_MAX_TESTS];
static int kt_ncases;
static char kt_dir[4096];

void kt_register(const char *name, const char *file, kt_fn fn)
{
    if (kt_ncases >= KT_MAX_TESTS) {
        fprintf(stderr, "kelp-unit: too many tests (max %d)\n", KT_MAX_TESTS);
        exit(2);
    }
    kt_cases[kt_ncases++] = (struct kt_case){name, file, fn};
}

void kt_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    exit(1);
}

const char *kt_tmpdir(void)
{
    if (kt_dir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(kt_dir, sizeof(kt_dir), "%s/kelp-unit-XXXXXX", base ? base : "/tmp");
        if (mkdtemp(kt_dir) == NULL)
            kt_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    }
    return kt_dir;
}

static int kt_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void kt_cleanup_tmpdir(void)
{
    if (kt_dir[0] != '\0')
        nftw(kt_dir, kt_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static double kt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int kt_cmp(const void *a, const void *b)
{
    const struct kt_case *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c != 0 ? c : strcmp(x->name, y->name);
}

static bool kt_selected(const struct kt_case *c, int nfilters, char **filters)
{
    if (nfilters == 0)
        return true;
    for (int i = 0; i < nfilters; i++)
        if (strstr(c->name, filters[i]) != NULL || strstr(c->file, filters[i]) != NULL)
            return true;
    return false;
}

/* Run one test in a child; returns true when it passed. */
static bool kt_run_forked(const struct kt_case *c, unsigned timeout)
{
    pid_t pid;
    int status;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "kelp-unit: fork: %s\n", strerror(errno));
        return false;
    }
    if (pid == 0) {
        atexit(kt_cleanup_tmpdir); /* also after kt_fail() */
        alarm(timeout);
        c->fn();
        exit(0);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "kelp-unit: waitpid: %s\n", strerror(errno));
            return false;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    if (WIFSIGNALED(status))
        fprintf(stderr, "    killed by signal %d%s\n", WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    else
        fprintf(stderr, "    exit status %d\n", WEXITSTATUS(status));
    return false;
}

int main(int argc, char **argv)
{
    bool list = false, nofork = false;
    unsigned timeout = 60;
    int npassed = 0, nfailed = 0, nfilters = 0;
    char **filters = argv; /* filters are packed into argv's own slots */

    if (getenv("KELP_UNIT_TIMEOUT") != NULL)
        timeout = (unsigned)atoi(getenv("KELP_UNIT_TIMEOUT"));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0)
            list = true;
        else if (strcmp(argv[i], "--no-fork") == 0)
            nofork = true;
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            timeout = (unsigned)atoi(argv[++i]);
        else if (argv[i][0] == '-') {
            fprintf(stderr,
                    "kelp-unit: unknown option '%s'\n"
                    "usage: kelp-unit [--list] [--no-fork] [--timeout S] [FILTER...]\n",
                    argv[i]);
            return 2;
        } else
            filters[nfilters++] = argv[i];
    }
    qsort(kt_cases, (size_t)kt_ncases, sizeof(kt_cases[0]), kt_cmp);
    for (int i = 0; i < kt_ncases; i++) {
        const struct kt_case *c = &kt_cases[i];
        double t0;
        bool ok;

        if (!kt_selected(c, nfilters, filters))
            continue;
        if (list) {
            printf("%s (%s)\n", c->name, c->file);
            continue;
        }
        t0 = kt_now();
        if (nofork) {
            c->fn();
            kt_cleanup_tmpdir();
            kt_dir[0] = '\0';
            ok = true;
        } else
            ok = kt_run_forked(c, timeout);
        printf("%s %s (%.0f ms)\n", ok ? "ok  " : "FAIL", c->name, (kt_now() - t0) * 1000);
        fflush(stdout);
        if (ok)
            npassed++;
        else
            nfailed++;
    }
    if (!list)
        printf("%d passed, %d failed\n", npassed, nfailed);
    return nfailed == 0 ? 0 : 1;
}
