/* SPDX-License-Identifier: Apache-2.0 */
/*
 * walredo.c -- the pageserver's pool of PostgreSQL WAL-redo helpers and the
 * codec of the walredo protocol. See walredo.h and docs/walredo.md.
 *
 * Layout: the codec (encode requests, parse replies); scratch directories
 * and the pg_control template; starting, talking to and killing one helper;
 * the pool (lending helpers to callers, retries, metrics).
 *
 * Talking to a helper never blocks without a deadline: both pipe ends are
 * non-blocking and one poll() loop writes the request while it reads the
 * reply, so a helper that fails half-way through a large request (and
 * stops reading) is noticed at once, and a silent one times out. SIGPIPE
 * is blocked in the calling thread while it writes, and a pending one is
 * consumed, so a dead helper shows up as EPIPE instead of killing us.
 */
#include "pageserver/walredo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/failpoint.h"
#include "common/frame.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/proc.h"

#define PS_WALREDO_MAX_PROCS      64
#define PS_WALREDO_TIMEOUT_MS     10000
#define PS_WALREDO_RETRIES        1
#define PS_WALREDO_SHARED_BUFFERS "16MB"
#define PS_WALREDO_EXIT_WAIT_MS   5000 /* destroy: how long helpers get to exit */
#define PS_WALREDO_REAP_WAIT_MS   1000 /* after EOF: how long to wait for an exit status */
#define PS_WALREDO_RM_DEPTH       16   /* deepest directory a scratch dir may hold */
#define PS_PG_CONTROL_SIZE        8192 /* PG_CONTROL_FILE_SIZE */

/* ---- the codec ---------------------------------------------------------------- */

void ps_walredo_encode_hello(struct kc_sbuf *out, uint16_t min_version, uint16_t max_version)
{
    size_t start = kc_frame_begin(out, PS_WALREDO_MSG_HELLO);

    kc_sbuf_put_u16(out, min_version);
    kc_sbuf_put_u16(out, max_version);
    if (kc_frame_finish(out, start, NULL) != 0)
        abort(); /* 4 bytes always fit */
}

void ps_walredo_encode_ping(struct kc_sbuf *out, uint64_t token)
{
    size_t start = kc_frame_begin(out, PS_WALREDO_MSG_PING);

    kc_sbuf_put_u64(out, token);
    if (kc_frame_finish(out, start, NULL) != 0)
        abort();
}

/* Check what the helper would reject anyway, so a bad request fails early and clearly. */
static int ps_request_check(const struct ps_redo_request *req, struct kc_error *err)
{
    if (req->tag.forknum > 3)
        return kc_error_set(err, KC_EINVAL, "invalid fork number %u in WAL-redo request",
                            req->tag.forknum);
    if (req->tag.blkno == 0xFFFFFFFFu)
        return kc_error_set(err, KC_EINVAL, "invalid block number %u in WAL-redo request",
                            req->tag.blkno);
    if (req->base_image == NULL && req->nrecords == 0)
        return kc_error_set(err, KC_EINVAL,
                            "WAL-redo request has neither a base image nor records");
    if (req->nrecords > 0 && req->records == NULL)
        return kc_error_set(err, KC_EINVAL, "WAL-redo request has %zu records but no array",
                            req->nrecords);
    for (size_t i = 0; i < req->nrecords; i++) {
        const struct ps_redo_record *r = &req->records[i];
        char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

        if (r->data == NULL || r->len < PS_WALREDO_RECORD_MIN)
            return kc_error_set(err, KC_EINVAL,
                                "WAL record %zu at %s is %u bytes, shorter than a record header", i,
                                kc_lsn_format(r->lsn, a), r->len);
        if (r->len > PS_WALREDO_MAX_REQUEST - PS_WALREDO_APPLY_HDR)
            return kc_error_set(err, KC_ETOOBIG,
                                "WAL record %zu at %s is %u bytes, more than the helper accepts", i,
                                kc_lsn_format(r->lsn, a), r->len);
        if (r->end_lsn <= r->lsn)
            return kc_error_set(err, KC_EINVAL, "WAL record %zu ends at %s, not after its start %s",
                                i, kc_lsn_format(r->end_lsn, a), kc_lsn_format(r->lsn, b));
    }
    return 0;
}

int ps_walredo_encode_request(struct kc_sbuf *out, const struct ps_redo_request *req,
                              struct kc_error *err)
{
    size_t start;
    int rc = ps_request_check(req, err);

    if (rc != 0)
        return rc;
    start = kc_frame_begin(out, PS_WALREDO_MSG_BEGIN);
    kc_sbuf_put_u32(out, req->tag.spcnode);
    kc_sbuf_put_u32(out, req->tag.dbnode);
    kc_sbuf_put_u32(out, req->tag.relnode);
    kc_sbuf_put_u8(out, req->tag.forknum);
    kc_sbuf_put_u32(out, req->tag.blkno);
    if (kc_frame_finish(out, start, NULL) != 0)
        abort();
    if (req->base_image != NULL &&
        kc_frame_encode(out, PS_WALREDO_MSG_PUSH, req->base_image, PS_REDO_PAGE_SIZE, NULL) != 0)
        abort();
    for (size_t i = 0; i < req->nrecords; i++) {
        const struct ps_redo_record *r = &req->records[i];

        start = kc_frame_begin(out, PS_WALREDO_MSG_APPLY);
        kc_sbuf_put_u64(out, r->lsn);
        kc_sbuf_put_u64(out, r->end_lsn);
        kc_sbuf_append(out, r->data, r->len);
        if (kc_frame_finish(out, start, NULL) != 0)
            abort(); /* sizes were checked above */
    }
    if (kc_frame_encode(out, PS_WALREDO_MSG_GET, NULL, 0, NULL) != 0)
        abort();
    return 0;
}

static int ps_reply_size(uint16_t type, uint32_t len, uint32_t want, struct kc_error *err)
{
    if (len == want)
        return 0;
    return kc_error_set(err, KC_EPROTO,
                        "walredo reply of type 0x%04X has %u bytes of payload, expected %u", type,
                        len, want);
}

int ps_walredo_parse_reply(const uint8_t *data, size_t len, struct ps_walredo_reply *out,
                           size_t *consumed, struct kc_error *err)
{
    struct kc_frame f;
    struct kc_buf b;
    size_t used = 0;
    uint16_t reserved;
    int rc;

    *consumed = 0;
    rc = kc_frame_decode(data, len, PS_WALREDO_MAX_REPLY, &f, &used, err);
    if (rc != 0)
        return rc;
    memset(out, 0, sizeof(*out));
    out->type = f.type;
    kc_frame_payload(&f, &b);
    switch (f.type) {
    case PS_WALREDO_REPLY_HELLO:
        if ((rc = ps_reply_size(f.type, f.len, 16, err)) != 0)
            return rc;
        if (!kc_buf_get_u16(&b, &out->version) || !kc_buf_get_u16(&b, &reserved) ||
            !kc_buf_get_u32(&b, &out->pg_version) || !kc_buf_get_u32(&b, &out->blcksz) ||
            !kc_buf_get_u32(&b, &out->pid))
            return kc_error_set(err, KC_EPROTO, "truncated walredo HELLO reply");
        break;
    case PS_WALREDO_REPLY_PAGE:
        if ((rc = ps_reply_size(f.type, f.len, PS_REDO_PAGE_SIZE, err)) != 0)
            return rc;
        if (!kc_buf_get_ref(&b, &out->page, PS_REDO_PAGE_SIZE))
            return kc_error_set(err, KC_EPROTO, "truncated walredo PAGE reply");
        break;
    case PS_WALREDO_REPLY_PONG:
        if ((rc = ps_reply_size(f.type, f.len, 8, err)) != 0)
            return rc;
        if (!kc_buf_get_u64(&b, &out->token))
            return kc_error_set(err, KC_EPROTO, "truncated walredo PONG reply");
        break;
    case PS_WALREDO_REPLY_ERROR: {
        const uint8_t *text;
        if (!kc_buf_get_u16(&b, &out->err_msg_type) || !kc_buf_get_u32(&b, &out->err_record))
            return kc_error_set(err, KC_EPROTO, "walredo ERROR reply of %u bytes is truncated",
                                f.len);
        out->err_text_len = kc_buf_remaining(&b);
        if (!kc_buf_get_ref(&b, &text, out->err_text_len))
            return kc_error_set(err, KC_EPROTO, "truncated walredo ERROR reply");
        out->err_text = (const char *)text;
        break;
    }
    default: return kc_error_set(err, KC_EPROTO, "unknown walredo reply type 0x%04X", f.type);
    }
    *consumed = used;
    return 0;
}

/* ---- the pool's state ---------------------------------------------------------- */

/* Why an attempt failed: the errors_total label. */
enum ps_fail { PS_FAIL_REDO, PS_FAIL_CRASH, PS_FAIL_TIMEOUT, PS_FAIL_PROTOCOL, PS_FAIL_SPAWN };
static const char *const ps_fail_names[] = {"redo", "crash", "timeout", "protocol", "spawn"};

/* One helper slot. pid and the fds belong to the caller that holds the slot
 * (busy); pid is also read by ps_walredo_pool_pids under the pool lock. */
struct ps_helper {
    int index;
    pid_t pid;       /* 0: no process (guarded by the pool lock for writes) */
    int to_fd;       /* its stdin (non-blocking), -1 when none */
    int from_fd;     /* its stdout (non-blocking), -1 when none */
    bool busy;       /* lent to a caller (pool lock) */
    uint64_t served; /* requests this process answered */
    char *dir;       /* scratch data directory */
};

struct ps_walredo_pool {
    pthread_mutex_t lock; /* guards helpers[].busy, helpers[].pid writes */
    pthread_cond_t freed; /* signalled when a helper is handed back */
    int nprocs;
    struct ps_helper *helpers;
    struct ps_walredo_opts opts; /* copied; strings below are owned copies */
    char *postgres;              /* <pg_bindir>/postgres */
    char *scratch_base;
    char *log_path;
    char *shared_buffers;
    struct kc_user user;
    int log_fd;                          /* helpers' stderr, O_APPEND */
    uint8_t control[PS_PG_CONTROL_SIZE]; /* global/pg_control template */
    bool have_template;                  /* false in child_main tests */
    char pg_version[16];                 /* PG_VERSION contents */
    struct kc_counter *m_requests;       /* kelp_pageserver_walredo_requests_total */
    struct kc_counter *m_records;        /* ..._records_total */
    struct kc_counter *m_restarts;       /* ..._restarts_total */
    struct kc_counter *m_starts;         /* ..._helper_starts_total */
    struct kc_counter *m_errors[5];      /* ..._errors_total{reason} by enum ps_fail */
    struct kc_histogram *m_seconds;      /* ..._seconds */
};

static void ps_now(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

static void ps_deadline_in(struct timespec *d, unsigned ms)
{
    ps_now(d);
    d->tv_sec += ms / 1000;
    d->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (d->tv_nsec >= 1000000000L) {
        d->tv_sec++;
        d->tv_nsec -= 1000000000L;
    }
}

/* Milliseconds left until d (rounded up), 0 when passed. */
static int ps_ms_left(const struct timespec *d)
{
    struct timespec now;
    int64_t ns;

    ps_now(&now);
    ns = (int64_t)(d->tv_sec - now.tv_sec) * 1000000000LL + (d->tv_nsec - now.tv_nsec);
    if (ns <= 0)
        return 0;
    return ns / 1000000 >= INT_MAX ? INT_MAX : (int)((ns + 999999) / 1000000);
}

static double ps_seconds_since(const struct timespec *t0)
{
    struct timespec now;

    ps_now(&now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static int ps_register_metrics(struct ps_walredo_pool *p, struct kc_error *err)
{
    struct kc_counter_vec *errors = NULL;
    int rc = kc_counter_register(NULL, "kelp_pageserver_walredo_requests_total",
                                 "Page reconstructions asked of the WAL-redo pool.", &p->m_requests,
                                 err);

    if (rc == 0)
        rc = kc_counter_register(NULL, "kelp_pageserver_walredo_records_total",
                                 "WAL records sent to WAL-redo helpers.", &p->m_records, err);
    if (rc == 0)
        rc = kc_counter_register(NULL, "kelp_pageserver_walredo_restarts_total",
                                 "WAL-redo helpers killed after a failure.", &p->m_restarts, err);
    if (rc == 0)
        rc = kc_counter_register(NULL, "kelp_pageserver_walredo_helper_starts_total",
                                 "WAL-redo helper processes started.", &p->m_starts, err);
    if (rc == 0)
        rc = kc_counter_vec_register(NULL, "kelp_pageserver_walredo_errors_total",
                                     "Failed WAL-redo attempts, by reason.", KC_LABELS("reason"),
                                     &errors, err);
    for (size_t i = 0; rc == 0 && i < KC_ARRAY_LEN(ps_fail_names); i++)
        rc = kc_counter_vec_get(errors, KC_LABELS(ps_fail_names[i]), &p->m_errors[i], err);
    if (rc == 0)
        rc = kc_histogram_register(NULL, "kelp_pageserver_walredo_seconds",
                                   "Time to rebuild one page with the WAL-redo pool.", NULL, 0,
                                   &p->m_seconds, err);
    return rc;
}

/* ---- scratch directories ------------------------------------------------------- */

/* Remove everything inside the directory open at dirfd (which is closed). */
static int ps_rm_contents(int dirfd, int depth)
{
    DIR *d = fdopendir(dirfd);
    struct dirent *e;
    int rc = 0;

    if (d == NULL) {
        close(dirfd);
        return -errno;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd, e->d_name, 0) == 0)
            continue;
        if ((errno == EISDIR || errno == EPERM) && depth < PS_WALREDO_RM_DEPTH) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0 && ps_rm_contents(sub, depth + 1) == 0 &&
                unlinkat(dirfd, e->d_name, AT_REMOVEDIR) == 0)
                continue;
        }
        rc = -errno;
    }
    closedir(d);
    return rc;
}

static int ps_rm_tree(const char *path, struct kc_error *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return kc_error_set(err, KC_EIO, "could not open directory \"%s\": %s", path,
                            strerror(errno));
    }
    if (ps_rm_contents(fd, 0) != 0 || rmdir(path) != 0)
        return kc_error_set(err, KC_EIO, "could not remove directory \"%s\": %s", path,
                            strerror(errno));
    return 0;
}

/* mkdir path (0700; an existing directory is fine) and give it to the helper user. */
static int ps_mkdir_for(struct ps_walredo_pool *p, const char *path, struct kc_error *err)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return kc_error_set(err, KC_EIO, "could not create directory \"%s\": %s", path,
                            strerror(errno));
    if (chmod(path, 0700) != 0)
        return kc_error_set(err, KC_EIO, "could not set permissions of \"%s\": %s", path,
                            strerror(errno));
    return kc_path_give_to(path, &p->user, err);
}

static int ps_write_file_for(struct ps_walredo_pool *p, const char *path, const void *data,
                             size_t len, struct kc_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ssize_t n = 0;

    if (fd >= 0) {
        n = len > 0 ? write(fd, data, len) : 0;
        if (close(fd) != 0)
            n = -1;
    }
    if (fd < 0 || n != (ssize_t)len)
        return kc_error_set(err, KC_EIO, "could not write \"%s\": %s", path,
                            n >= 0 && fd >= 0 ? "short write" : strerror(errno));
    return kc_path_give_to(path, &p->user, err);
}

static int ps_read_file(const char *path, void *buf, size_t cap, size_t *len, struct kc_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return kc_error_set(err, KC_EIO, "could not open \"%s\": %s", path, strerror(errno));
    n = read(fd, buf, cap);
    close(fd);
    if (n < 0)
        return kc_error_set(err, KC_EIO, "could not read \"%s\": %s", path, strerror(errno));
    *len = (size_t)n;
    return 0;
}

/*
 * ps_scratch_prepare -- make dir an empty data directory single-user
 * postgres starts on: PG_VERSION, empty configuration files, the
 * pg_control template and the directories startup scans. The directory
 * itself is kept (not recreated): PostgreSQL derives its SysV shared-memory
 * key from the directory's inode, so a helper that was killed leaves a
 * segment its successor in the same directory finds and removes.
 */
static int ps_scratch_prepare(struct ps_walredo_pool *p, const char *dir, struct kc_error *err)
{
    static const char *const subdirs[] = {"global", "base", "pg_notify", "pg_dynshmem",
                                          "pg_tblspc"};
    char path[PATH_MAX + 64];
    int fd, rc;

    if ((rc = ps_mkdir_for(p, dir, err)) != 0)
        return rc;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || ps_rm_contents(fd, 0) != 0)
        return kc_error_set(err, KC_EIO, "could not clean WAL-redo scratch directory \"%s\": %s",
                            dir, strerror(errno));
    if (!p->have_template)
        return 0;
    for (size_t i = 0; i < KC_ARRAY_LEN(subdirs); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, subdirs[i]);
        if ((rc = ps_mkdir_for(p, path, err)) != 0)
            return rc;
    }
    snprintf(path, sizeof(path), "%s/PG_VERSION", dir);
    rc = ps_write_file_for(p, path, p->pg_version, strlen(p->pg_version), err);
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/postgresql.conf", dir);
        rc = ps_write_file_for(p, path, "", 0, err);
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/postgresql.auto.conf", dir);
        rc = ps_write_file_for(p, path, "", 0, err);
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/global/pg_control", dir);
        rc = ps_write_file_for(p, path, p->control, sizeof(p->control), err);
    }
    return rc;
}

/*
 * ps_make_template -- run initdb once into <scratch_base>/initdb, keep its
 * pg_control and PG_VERSION in memory, remove the rest.
 */
static int ps_make_template(struct ps_walredo_pool *p, const char *pg_bindir, struct kc_error *err)
{
    char dir[PATH_MAX], initdb[PATH_MAX], path[PATH_MAX + 64];
    char *argv[] = {initdb, "-D",    dir,  "--no-sync", "-U",         "postgres",
                    "-A",   "trust", "-E", "UTF8",      "--locale=C", NULL};
    struct kc_proc_opts popts = {.user = &p->user, .output_path = p->log_path};
    size_t len;
    int code, rc;

    snprintf(dir, sizeof(dir), "%s/initdb", p->scratch_base);
    snprintf(initdb, sizeof(initdb), "%s/initdb", pg_bindir);
    if ((rc = ps_rm_tree(dir, err)) != 0 || (rc = ps_mkdir_for(p, dir, err)) != 0)
        return rc;
    rc = kc_proc_run(argv, &popts, &code, err);
    if (rc == 0 && code != 0) {
        kc_error_set(err, KC_EIO, "initdb for the WAL-redo template failed with exit code %d",
                     code);
        kc_error_detail(err, "Its output is in \"%s\".", p->log_path);
        rc = KC_EIO;
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/global/pg_control", dir);
        rc = ps_read_file(path, p->control, sizeof(p->control), &len, err);
        if (rc == 0 && len != sizeof(p->control))
            rc = kc_error_set(err, KC_ECORRUPT, "\"%s\" has %zu bytes, expected %zu", path, len,
                              sizeof(p->control));
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/PG_VERSION", dir);
        rc = ps_read_file(path, p->pg_version, sizeof(p->pg_version) - 1, &len, err);
        if (rc == 0)
            p->pg_version[len] = '\0';
    }
    if (rc == 0)
        rc = ps_rm_tree(dir, err);
    p->have_template = rc == 0;
    return rc;
}

/* ---- one helper ------------------------------------------------------------------ */

static void ps_set_pid(struct ps_walredo_pool *p, struct ps_helper *h, pid_t pid)
{
    pthread_mutex_lock(&p->lock);
    h->pid = pid;
    pthread_mutex_unlock(&p->lock);
}

static void ps_close_fds(struct ps_helper *h)
{
    if (h->to_fd >= 0)
        close(h->to_fd);
    if (h->from_fd >= 0)
        close(h->from_fd);
    h->to_fd = h->from_fd = -1;
}

/* Describe a wait status as a sentence for an error detail. */
static void ps_describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "The helper exited with status %d.", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "The helper was terminated by signal %d (%s).", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "The helper ended with wait status 0x%x.", status);
}

/*
 * ps_helper_stop -- end h's process: wait up to wait_ms for it to exit by
 * itself (0: don't), then SIGKILL it; reap it either way. Fills status_text
 * (may be NULL) with how it ended when it ended by itself. Caller holds h.
 */
static void ps_helper_stop(struct ps_walredo_pool *p, struct ps_helper *h, int wait_ms,
                           char *status_text, size_t len)
{
    struct timespec deadline;
    int status = 0;
    pid_t r;

    if (status_text != NULL && len > 0)
        status_text[0] = '\0';
    ps_close_fds(h);
    if (h->pid <= 0)
        return;
    ps_deadline_in(&deadline, (unsigned)wait_ms);
    for (;;) {
        r = waitpid(h->pid, &status, WNOHANG);
        if (r != 0 || ps_ms_left(&deadline) == 0)
            break;
        usleep(2000);
    }
    if (r == h->pid) {
        if (status_text != NULL)
            ps_describe_status(status, status_text, len);
    } else if (r == 0) {
        kill(h->pid, SIGKILL);
        while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR) {
        }
    } /* r < 0: not our child any more (SIGCHLD ignored?); nothing to reap */
    ps_set_pid(p, h, 0);
}

/* Make the helper's ERROR reply into err, naming the record it failed on. */
static int ps_error_from_reply(const struct ps_walredo_reply *r, const struct ps_redo_record *recs,
                               size_t nrecs, struct kc_error *err)
{
    char text[400], a[KC_LSN_STRLEN];
    size_t n = r->err_text_len < sizeof(text) - 1 ? r->err_text_len : sizeof(text) - 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)r->err_text[i];
        text[i] = (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
    }
    text[n] = '\0';
    if (r->err_record != PS_WALREDO_NO_RECORD && r->err_record < nrecs)
        kc_error_set(err, KC_ECORRUPT, "WAL redo failed at record %u (%s): %s", r->err_record,
                     kc_lsn_format(recs[r->err_record].lsn, a), text);
    else
        kc_error_set(err, KC_ECORRUPT, "WAL-redo helper reported an error: %s", text);
    return KC_ECORRUPT;
}

static int ps_exchange(struct ps_walredo_pool *p, struct ps_helper *h, const uint8_t *out,
                       size_t outlen, uint16_t expect, struct kc_sbuf *in,
                       struct ps_walredo_reply *reply, const struct timespec *deadline,
                       enum ps_fail *why, struct kc_error *err);

/*
 * ps_helper_fork -- start h's helper (or the test stand-in) through
 * kc_proc_spawn: the pipes on its stdin and stdout, the log on its stderr,
 * nothing else open, the helper user, the scratch directory and a fixed
 * environment. On success h has a pid and blocking fds. An exec failure
 * comes back through a close-on-exec pipe (so "no such program" is an error
 * here) and leaves nothing running.
 */
static int ps_helper_fork(struct ps_walredo_pool *p, struct ps_helper *h, struct kc_error *err)
{
    char sb[64];
    char *argv[] = {p->postgres,
                    "--single",
                    "-D",
                    h->dir,
                    "-F",
                    "-c",
                    "shared_preload_libraries=kelp",
                    "-c",
                    "dynamic_shared_memory_type=mmap",
                    "-c",
                    sb,
                    "-c",
                    "huge_pages=off",
                    "postgres",
                    NULL};
    char *envp[] = {"KELP_WALREDO=1", "LC_ALL=C", "PATH=/usr/bin:/bin", NULL};
    int to_child[2], from_child[2], rc;
    pid_t pid;

    snprintf(sb, sizeof(sb), "shared_buffers=%s", p->shared_buffers);
    if (pipe2(to_child, O_CLOEXEC) != 0)
        return kc_error_set(err, KC_EIO, "could not create pipe: %s", strerror(errno));
    if (pipe2(from_child, O_CLOEXEC) != 0) {
        int e = errno;
        close(to_child[0]), close(to_child[1]);
        return kc_error_set(err, KC_EIO, "could not create pipe: %s", strerror(e));
    }
    rc = kc_proc_spawn(argv,
                       &(struct kc_proc_opts){.user = &p->user,
                                              .cwd = h->dir,
                                              .use_fds = true,
                                              .stdin_fd = to_child[0],
                                              .stdout_fd = from_child[1],
                                              .stderr_fd = p->log_fd,
                                              .envp = envp,
                                              .close_fds = true,
                                              .child_main = p->opts.child_main,
                                              .child_arg = p->opts.child_arg},
                       &pid, err);
    close(to_child[0]), close(from_child[1]);
    if (rc != 0) {
        close(to_child[1]), close(from_child[0]);
        return rc;
    }
    h->to_fd = to_child[1];
    h->from_fd = from_child[0];
    ps_set_pid(p, h, pid);
    h->served = 0;
    return 0;
}

/*
 * ps_helper_start -- prepare h's scratch directory, start the helper and
 * exchange HELLO before the deadline. On failure nothing is left running
 * and *why says why.
 */
static int ps_helper_start(struct ps_walredo_pool *p, struct ps_helper *h,
                           const struct timespec *deadline, enum ps_fail *why, struct kc_error *err)
{
    struct kc_sbuf hello = KC_SBUF_INIT, in = KC_SBUF_INIT;
    struct ps_walredo_reply reply;
    char status[200] = "";
    int rc;

    *why = PS_FAIL_SPAWN;
    KC_FAILPOINT_ERROR("pageserver.walredo.before-spawn", err);
    if ((rc = ps_scratch_prepare(p, h->dir, err)) != 0 || (rc = ps_helper_fork(p, h, err)) != 0)
        return rc;
    fcntl(h->to_fd, F_SETFL, fcntl(h->to_fd, F_GETFL) | O_NONBLOCK);
    fcntl(h->from_fd, F_SETFL, fcntl(h->from_fd, F_GETFL) | O_NONBLOCK);
    kc_counter_inc(p->m_starts);

    ps_walredo_encode_hello(&hello, PS_WALREDO_PROTO_VERSION, PS_WALREDO_PROTO_VERSION);
    rc = ps_exchange(p, h, hello.data, hello.len, PS_WALREDO_REPLY_HELLO, &in, &reply, deadline,
                     why, err);
    if (rc == 0 &&
        (reply.version != PS_WALREDO_PROTO_VERSION || reply.blcksz != PS_REDO_PAGE_SIZE)) {
        *why = PS_FAIL_PROTOCOL;
        rc = kc_error_set(err, KC_EVERSION,
                          "WAL-redo helper speaks protocol version %u with %u-byte pages; "
                          "we need version %u with %u-byte pages",
                          reply.version, reply.blcksz, PS_WALREDO_PROTO_VERSION, PS_REDO_PAGE_SIZE);
    }
    if (rc != 0 && *why == PS_FAIL_REDO) {
        /* A helper refuses HELLO only when it speaks none of the versions offered. */
        rc = reply.err_msg_type == PS_WALREDO_MSG_HELLO ? KC_EVERSION : KC_ECORRUPT;
        ps_error_from_reply(&reply, NULL, 0, err);
        if (err != NULL)
            err->code = rc;
    }
    if (rc == 0)
        kc_info("started WAL-redo helper %d (pid %d, PostgreSQL %u)", h->index, (int)h->pid,
                reply.pg_version);
    kc_sbuf_fini(&hello);
    kc_sbuf_fini(&in);
    if (rc != 0) {
        ps_helper_stop(p, h, *why == PS_FAIL_CRASH ? PS_WALREDO_REAP_WAIT_MS : 0, status,
                       sizeof(status));
        if (*why == PS_FAIL_CRASH || *why == PS_FAIL_TIMEOUT)
            *why = PS_FAIL_SPAWN;
        kc_error_prefix(err, "could not start WAL-redo helper %d", h->index);
        kc_error_detail(err, "%s%sThe helper's messages are in \"%s\".", status,
                        status[0] ? " " : "", p->log_path);
    }
    return rc;
}

/* write() with SIGPIPE blocked in this thread; a dead reader gives EPIPE. */
static ssize_t ps_write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, old;
    ssize_t n;
    int saved;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    n = write(fd, buf, len);
    saved = errno;
    if (n < 0 && saved == EPIPE) {
        struct timespec zero = {0, 0};
        sigset_t pending;
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE))
            sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return n;
}

/*
 * ps_exchange -- write out[0..outlen) to the helper while reading its
 * reply into in, until one complete reply frame has arrived or the deadline
 * passes. Returns 0 with *reply (pointing into in) when it has type expect.
 * An ERROR reply, a reply of another type, a malformed frame, EOF or the
 * deadline are failures with *why set; ERROR replies are left to the caller
 * to word (KC_ECORRUPT with *why = PS_FAIL_REDO and *reply filled).
 */
static int ps_exchange(struct ps_walredo_pool *p, struct ps_helper *h, const uint8_t *out,
                       size_t outlen, uint16_t expect, struct kc_sbuf *in,
                       struct ps_walredo_reply *reply, const struct timespec *deadline,
                       enum ps_fail *why, struct kc_error *err)
{
    size_t sent = 0, used;
    int rc;

    (void)p;
    kc_sbuf_reset(in);
    for (;;) {
        struct pollfd fds[2];
        int nfds = 0, ms, ready;

        rc = ps_walredo_parse_reply(in->data, in->len, reply, &used, err);
        if (rc == 0) {
            if (reply->type == PS_WALREDO_REPLY_ERROR) {
                *why = PS_FAIL_REDO;
                return KC_ECORRUPT;
            }
            if (reply->type != expect || used != in->len) {
                *why = PS_FAIL_PROTOCOL;
                return kc_error_set(err, KC_EPROTO,
                                    "WAL-redo helper sent reply type 0x%04X (%zu bytes) where "
                                    "0x%04X was expected",
                                    reply->type, in->len, expect);
            }
            return 0;
        }
        if (rc != KC_EAGAIN) {
            *why = PS_FAIL_PROTOCOL;
            kc_error_prefix(err, "invalid reply from WAL-redo helper");
            return rc;
        }
        ms = ps_ms_left(deadline);
        if (ms == 0) {
            *why = PS_FAIL_TIMEOUT;
            return kc_error_set(err, KC_ETIMEDOUT,
                                "WAL-redo helper did not answer within %u ms (%zu of %zu request "
                                "bytes sent, %zu reply bytes received)",
                                p->opts.timeout_ms, sent, outlen, in->len);
        }
        fds[nfds++] = (struct pollfd){.fd = h->from_fd, .events = POLLIN};
        if (sent < outlen)
            fds[nfds++] = (struct pollfd){.fd = h->to_fd, .events = POLLOUT};
        ready = poll(fds, (nfds_t)nfds, ms);
        if (ready < 0 && errno != EINTR) {
            *why = PS_FAIL_CRASH;
            return kc_error_set(err, KC_EIO, "poll on WAL-redo helper pipes: %s", strerror(errno));
        }
        if (ready <= 0)
            continue;
        if (nfds > 1 && fds[1].revents != 0) {
            ssize_t n = ps_write_nosigpipe(h->to_fd, out + sent, outlen - sent);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                sent = outlen; /* the helper stopped reading: collect what it says, or EOF */
        }
        if (fds[0].revents != 0) {
            ssize_t n;
            kc_sbuf_reserve(in, 65536);
            n = read(h->from_fd, in->data + in->len, in->cap - in->len - 1);
            if (n > 0) {
                in->len += (size_t)n;
                in->data[in->len] = 0;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                *why = PS_FAIL_CRASH;
                return kc_error_set(err, KC_EIO,
                                    "WAL-redo helper closed its output%s (%zu reply bytes "
                                    "received)",
                                    in->len > 0 ? " in the middle of a reply" : "", in->len);
            }
        }
    }
}

/* ---- the pool -------------------------------------------------------------------- */

void ps_walredo_opts_init(struct ps_walredo_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->timeout_ms = PS_WALREDO_TIMEOUT_MS;
    opts->retries = PS_WALREDO_RETRIES;
    opts->shared_buffers = PS_WALREDO_SHARED_BUFFERS;
}

int ps_walredo_pool_create(const char *pg_bindir, const char *scratch_base, int nprocs,
                           const char *os_user, const struct ps_walredo_opts *opts,
                           struct ps_walredo_pool **out, struct kc_error *err)
{
    struct ps_walredo_pool *p;
    char path[PATH_MAX];
    int rc;

    *out = NULL;
    if (nprocs < 1 || nprocs > PS_WALREDO_MAX_PROCS)
        return kc_error_set(err, KC_EINVAL, "WAL-redo pool size %d is out of range (1 to %d)",
                            nprocs, PS_WALREDO_MAX_PROCS);
    if (scratch_base == NULL || strlen(scratch_base) > PATH_MAX - 64 ||
        (opts == NULL || opts->child_main == NULL ? pg_bindir == NULL : false))
        return kc_error_set(err, KC_EINVAL,
                            "WAL-redo pool needs a scratch directory and the "
                            "PostgreSQL bin directory");
    p = kc_calloc(1, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
    p->log_fd = -1;
    if (opts != NULL)
        p->opts = *opts;
    else
        ps_walredo_opts_init(&p->opts);
    if (p->opts.timeout_ms == 0)
        p->opts.timeout_ms = PS_WALREDO_TIMEOUT_MS;
    p->shared_buffers =
        kc_strdup(p->opts.shared_buffers ? p->opts.shared_buffers : PS_WALREDO_SHARED_BUFFERS);
    p->scratch_base = kc_strdup(scratch_base);
    if (p->opts.log_path != NULL)
        p->log_path = kc_strdup(p->opts.log_path);
    else {
        snprintf(path, sizeof(path), "%s/walredo.log", scratch_base);
        p->log_path = kc_strdup(path);
    }
    snprintf(path, sizeof(path), "%s/postgres", pg_bindir ? pg_bindir : "/nonexistent");
    p->postgres = kc_strdup(path);
    p->nprocs = nprocs;
    p->helpers = kc_calloc((size_t)nprocs, sizeof(*p->helpers));
    for (int i = 0; i < nprocs; i++) {
        p->helpers[i].index = i;
        p->helpers[i].to_fd = p->helpers[i].from_fd = -1;
        snprintf(path, sizeof(path), "%s/helper-%d", scratch_base, i);
        p->helpers[i].dir = kc_strdup(path);
    }
    rc = ps_register_metrics(p, err);
    if (rc == 0)
        rc = kc_user_for_postgres(os_user, &p->user, err);
    if (rc == 0)
        rc = ps_mkdir_for(p, scratch_base, err);
    if (rc == 0) {
        p->log_fd = open(p->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (p->log_fd < 0)
            rc = kc_error_set(err, KC_EIO, "could not open WAL-redo log \"%s\": %s", p->log_path,
                              strerror(errno));
    }
    if (rc == 0 && p->opts.child_main == NULL)
        rc = ps_make_template(p, pg_bindir, err);
    if (rc != 0) {
        ps_walredo_pool_destroy(p);
        return rc;
    }
    *out = p;
    return 0;
}

void ps_walredo_pool_destroy(struct ps_walredo_pool *p)
{
    struct timespec deadline;

    if (p == NULL)
        return;
    /* EOF on every stdin first, so the helpers exit in parallel. */
    for (int i = 0; i < p->nprocs; i++)
        if (p->helpers[i].to_fd >= 0) {
            close(p->helpers[i].to_fd);
            p->helpers[i].to_fd = -1;
        }
    ps_deadline_in(&deadline, PS_WALREDO_EXIT_WAIT_MS);
    for (int i = 0; i < p->nprocs; i++)
        ps_helper_stop(p, &p->helpers[i], ps_ms_left(&deadline), NULL, 0);
    for (int i = 0; i < p->nprocs; i++)
        free(p->helpers[i].dir);
    if (p->log_fd >= 0)
        close(p->log_fd);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->freed);
    free(p->helpers);
    free(p->postgres);
    free(p->scratch_base);
    free(p->log_path);
    free(p->shared_buffers);
    free(p);
}

int ps_walredo_pool_pids(struct ps_walredo_pool *p, pid_t *out, int max)
{
    int n = max < p->nprocs ? max : p->nprocs;

    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < n; i++)
        out[i] = p->helpers[i].pid;
    pthread_mutex_unlock(&p->lock);
    return n < 0 ? 0 : n;
}

/*
 * ps_acquire -- lend a free helper to the caller, preferring one that is
 * running. Waits up to timeout_ms when all are busy.
 */
static struct ps_helper *ps_acquire(struct ps_walredo_pool *p, struct kc_error *err)
{
    struct ps_helper *h = NULL;
    struct timespec deadline;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += p->opts.timeout_ms / 1000;
    deadline.tv_nsec += (long)(p->opts.timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    for (;;) {
        for (int i = 0; i < p->nprocs; i++) {
            struct ps_helper *c = &p->helpers[i];
            if (!c->busy && (h == NULL || (h->pid == 0 && c->pid != 0)))
                h = c;
        }
        if (h != NULL) {
            h->busy = true;
            break;
        }
        if (pthread_cond_timedwait(&p->freed, &p->lock, &deadline) == ETIMEDOUT) {
            kc_error_set(err, KC_ETIMEDOUT, "all %d WAL-redo helpers stayed busy for %u ms",
                         p->nprocs, p->opts.timeout_ms);
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return h;
}

static void ps_release(struct ps_walredo_pool *p, struct ps_helper *h)
{
    pthread_mutex_lock(&p->lock);
    h->busy = false;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

/* One attempt on helper h: start it when needed, send the frames, take the page. */
static int ps_attempt(struct ps_walredo_pool *p, struct ps_helper *h, const struct kc_sbuf *frames,
                      const struct ps_redo_request *req, uint8_t *page_out, enum ps_fail *why,
                      struct kc_error *err)
{
    struct kc_sbuf in = KC_SBUF_INIT;
    struct ps_walredo_reply reply;
    struct timespec deadline;
    int rc = 0;

    ps_deadline_in(&deadline, p->opts.timeout_ms);
    if (h->pid == 0)
        rc = ps_helper_start(p, h, &deadline, why, err);
    if (rc == 0 && kc_failpoint("pageserver.walredo.before-send", NULL, 0)) {
        *why = PS_FAIL_CRASH;
        rc = kc_error_set(err, KC_EFAILPOINT,
                          "failpoint \"pageserver.walredo.before-send\" injected a helper failure");
    }
    if (rc == 0) {
        rc = ps_exchange(p, h, frames->data, frames->len, PS_WALREDO_REPLY_PAGE, &in, &reply,
                         &deadline, why, err);
        if (rc == 0)
            memcpy(page_out, reply.page, PS_REDO_PAGE_SIZE);
        else if (*why == PS_FAIL_REDO)
            ps_error_from_reply(&reply, req->records, req->nrecords, err);
        h->served++;
    }
    kc_sbuf_fini(&in);
    return rc;
}

int ps_walredo_pool_start(struct ps_walredo_pool *p, int n, struct kc_error *err)
{
    for (int i = 0; i < p->nprocs && i < n; i++) {
        struct ps_helper *h = &p->helpers[i];
        struct timespec deadline;
        enum ps_fail why;
        bool mine;
        int rc;

        pthread_mutex_lock(&p->lock);
        mine = !h->busy && h->pid == 0;
        h->busy = h->busy || mine;
        pthread_mutex_unlock(&p->lock);
        if (!mine)
            continue;
        ps_deadline_in(&deadline, p->opts.timeout_ms);
        rc = ps_helper_start(p, h, &deadline, &why, err);
        if (rc != 0)
            kc_counter_inc(p->m_errors[why]);
        ps_release(p, h);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void ps_format_tag(const struct ps_redo_tag *t, char *buf, size_t len)
{
    snprintf(buf, len, "%u/%u/%u fork %u block %u", t->spcnode, t->dbnode, t->relnode, t->forknum,
             t->blkno);
}

int ps_walredo_apply(struct ps_walredo_pool *p, const struct ps_redo_request *req,
                     uint8_t page_out[PS_REDO_PAGE_SIZE], struct kc_error *err)
{
    struct kc_sbuf frames = KC_SBUF_INIT;
    struct kc_error local;
    struct timespec t0;
    char tag[128];
    int rc;

    if (err == NULL)
        err = &local; /* the failures are logged, so keep their text */

    rc = ps_walredo_encode_request(&frames, req, err);
    if (rc != 0)
        return rc;
    ps_now(&t0);
    kc_counter_inc(p->m_requests);
    kc_counter_add(p->m_records, req->nrecords);
    for (unsigned attempt = 0;; attempt++) {
        enum ps_fail why = PS_FAIL_CRASH;
        struct ps_helper *h = ps_acquire(p, err);
        bool was_running;
        char status[200];

        if (h == NULL) {
            rc = KC_ETIMEDOUT;
            break;
        }
        was_running = h->pid != 0;
        rc = ps_attempt(p, h, &frames, req, page_out, &why, err);
        if (rc == 0) {
            ps_release(p, h);
            break;
        }
        kc_counter_inc(p->m_errors[why]);
        if (h->pid != 0 || was_running) {
            /* After an ERROR reply or EOF the helper is exiting: give it a moment to say how. */
            ps_helper_stop(
                p, h, why == PS_FAIL_CRASH || why == PS_FAIL_REDO ? PS_WALREDO_REAP_WAIT_MS : 0,
                status, sizeof(status));
            kc_counter_inc(p->m_restarts);
            if (why == PS_FAIL_CRASH && status[0] != '\0')
                kc_error_detail(err, "%s The helper's messages are in \"%s\".", status,
                                p->log_path);
        }
        ps_release(p, h);
        ps_format_tag(&req->tag, tag, sizeof(tag));
        if (attempt >= p->opts.retries) {
            kc_warn("WAL redo of %s failed (%s): %s", tag, ps_fail_names[why], err->message);
            break;
        }
        kc_warn("WAL redo of %s failed (%s), retrying on a fresh helper: %s", tag,
                ps_fail_names[why], err->message);
    }
    kc_histogram_observe(p->m_seconds, ps_seconds_since(&t0));
    kc_sbuf_fini(&frames);
    return rc;
}
