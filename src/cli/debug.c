/* SPDX-License-Identifier: Apache-2.0 */
/*
 * debug.c -- `kelp debug-receive-wal`: stream WAL from a PostgreSQL primary
 * into a file with the shared WAL streaming client (src/common/walstream.h).
 *
 * A debugging tool and the driver of the client's integration tests. The
 * file holds the raw WAL bytes from --start (file offset 0) to --stop. Each
 * batch of messages is written, fdatasync'ed, and then reported back to the
 * source as written and flushed, so pg_stat_replication shows how far the
 * file is durable. With --reconnect a lost or ended stream is resumed from
 * the flushed position after an exponential backoff, until --timeout.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "common/random.h"
#include "common/walstream.h"

struct cli_debug_settings {
    char *source;
    char *start;
    char *stop;
    char *out;
    int64_t timeout_ms;
    int64_t connect_timeout_ms;
    int64_t status_interval_ms;
    char *system_id;
    int64_t timeline;
    char *application_name;
    bool reconnect;
};

#define DBG_FIELD(f) offsetof(struct cli_debug_settings, f)

static const struct kc_config_entry debug_receive_wal_options[] = {
    {.name = "source",
     .type = KC_CONFIG_STRING,
     .offset = DBG_FIELD(source),
     .help = "libpq connection string of the primary (replication=true is added)",
     .metavar = "conninfo",
     .flags = KC_CONFIG_REQUIRED},
    {.name = "start",
     .type = KC_CONFIG_STRING,
     .offset = DBG_FIELD(start),
     .help = "LSN to stream from; byte 0 of the output file",
     .metavar = "X/X",
     .flags = KC_CONFIG_REQUIRED},
    {.name = "stop",
     .type = KC_CONFIG_STRING,
     .offset = DBG_FIELD(stop),
     .help = "LSN to stop at (exclusive); without it, stream until --timeout or a signal",
     .metavar = "X/X"},
    {.name = "out",
     .type = KC_CONFIG_STRING,
     .offset = DBG_FIELD(out),
     .help = "file to write the WAL into (created or truncated)",
     .metavar = "file",
     .flags = KC_CONFIG_REQUIRED},
    {.name = "timeout",
     .type = KC_CONFIG_DURATION,
     .offset = DBG_FIELD(timeout_ms),
     .default_value = "30s",
     .min = 1,
     .max = INT64_C(86400000),
     .help = "give up (or, without --stop, finish) after this long"},
    {.name = "connect-timeout",
     .type = KC_CONFIG_DURATION,
     .offset = DBG_FIELD(connect_timeout_ms),
     .default_value = "10s",
     .min = 1,
     .max = INT64_C(3600000),
     .help = "limit of each connection attempt"},
    {.name = "status-interval",
     .type = KC_CONFIG_DURATION,
     .offset = DBG_FIELD(status_interval_ms),
     .default_value = "10s",
     .min = 1,
     .max = INT64_C(3600000),
     .help = "send a status update at least this often"},
    {.name = "system-id",
     .type = KC_CONFIG_STRING,
     .offset = DBG_FIELD(system_id),
     .help = "refuse a source whose system identifier differs (decimal)",
     .metavar = "id"},
    {.name = "timeline",
     .type = KC_CONFIG_INT,
     .offset = DBG_FIELD(timeline),
     .default_value = "0",
     .min = 0,
     .max = UINT32_MAX,
     .help = "timeline to stream (0: the source's current timeline)"},
    {.name = "application-name",
     .type = KC_CONFIG_STRING,
     .offset = DBG_FIELD(application_name),
     .default_value = "kelp-debug-receive-wal",
     .help = "application_name the source shows in pg_stat_replication",
     .metavar = "name"},
    {.name = "reconnect",
     .type = KC_CONFIG_BOOL,
     .offset = DBG_FIELD(reconnect),
     .default_value = "false",
     .help = "resume from the flushed position when the stream breaks or ends"},
};

/* Set by SIGINT and SIGTERM. */
static volatile sig_atomic_t dbg_interrupted;

static void dbg_on_signal(int sig)
{
    (void)sig;
    dbg_interrupted = 1;
}

/* Everything one run needs; the stream is reopened on reconnect. */
struct dbg_run {
    const struct cli_debug_settings *set;
    struct kc_walstream *s;  /* the current stream, NULL between connections */
    int fd;                  /* the output file */
    kc_lsn start, stop;      /* requested range; stop 0: none */
    kc_lsn written, flushed; /* end of the bytes written / fdatasync'ed */
    uint64_t system_id;      /* expected; learned at the first connection */
    uint32_t timeline;       /* to stream; --timeline or the first source's */
    int64_t deadline;        /* monotonic ms when --timeout ends the run */
    struct kc_walstream_backoff backoff;
};

static int64_t dbg_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parse a decimal system identifier (1 .. 2^64-1). */
static int dbg_parse_system_id(const char *s, uint64_t *out, struct kc_error *err)
{
    uint64_t v = 0;

    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
            v = 0;
            break;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v == 0) {
        kc_error_set(err, KC_EINVAL, "invalid --system-id \"%s\"", s);
        kc_error_detail(err, "A system identifier is a positive decimal number below 2^64.");
        kc_error_hint(err, "Copy it from pg_controldata or IDENTIFY_SYSTEM.");
        return KC_EINVAL;
    }
    *out = v;
    return 0;
}

/* Check the flags and fill the range and expectations of r. */
static int dbg_prepare(struct dbg_run *r, const struct cli_debug_settings *set,
                       struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];
    int rc;

    memset(r, 0, sizeof(*r));
    r->set = set;
    r->fd = -1;
    r->timeline = (uint32_t)set->timeline;
    rc = kc_lsn_parse(set->start, &r->start, err);
    if (rc == 0 && set->stop != NULL)
        rc = kc_lsn_parse(set->stop, &r->stop, err);
    if (rc == 0 && set->system_id != NULL)
        rc = dbg_parse_system_id(set->system_id, &r->system_id, err);
    if (rc != 0)
        return rc;
    if (r->start == KC_LSN_INVALID)
        return kc_error_set(err, KC_EINVAL, "--start must not be 0/0");
    if (set->stop != NULL && r->stop <= r->start)
        return kc_error_set(err, KC_EINVAL, "--stop %s is not after --start %s",
                            kc_lsn_format(r->stop, b), kc_lsn_format(r->start, a));
    r->written = r->flushed = r->start;
    r->fd = open(set->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (r->fd < 0)
        return kc_error_set(err, KC_EIO, "could not open \"%s\": %s", set->out, strerror(errno));
    kc_walstream_backoff_init(&r->backoff, 0, 0);
    r->deadline = dbg_now_ms() + set->timeout_ms;
    return 0;
}

/* The stream's on_wal: append to the file, clipped at --stop. */
static int dbg_on_wal(void *arg, kc_lsn start, const uint8_t *data, size_t len,
                      struct kc_error *err)
{
    struct dbg_run *r = arg;

    if (start != r->written) /* the stream guarantees it; never write a hole */
        return kc_error_set(err, KC_EPROTO, "WAL delivered out of order");
    if (r->stop != KC_LSN_INVALID && start + len > r->stop)
        len = start >= r->stop ? 0 : (size_t)(r->stop - start);
    while (len > 0) {
        ssize_t n = write(r->fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kc_error_set(err, KC_EIO, "could not write to \"%s\": %s", r->set->out,
                                strerror(errno));
        data += n, len -= (size_t)n, r->written += (kc_lsn)n;
    }
    return kc_walstream_set_positions(r->s, r->written, r->flushed, KC_LSN_INVALID, err);
}

/* fdatasync what was written and, while streaming, report it as flushed. */
static int dbg_flush(struct dbg_run *r, struct kc_error *err)
{
    if (r->written == r->flushed)
        return 0;
    KC_FAILPOINT_ERROR("cli.receive-wal.before-fsync", err);
    if (fdatasync(r->fd) != 0)
        return kc_error_set(err, KC_EIO, "could not fsync \"%s\": %s", r->set->out,
                            strerror(errno));
    r->flushed = r->written;
    if (r->s == NULL)
        return 0;
    return kc_walstream_send_status(r->s, r->written, r->flushed, KC_LSN_INVALID, false, err);
}

/* Connect and start streaming at the flushed position, within what is left of --timeout. */
static int dbg_connect(struct dbg_run *r, struct kc_error *err)
{
    int64_t left = r->deadline - dbg_now_ms();
    struct kc_walstream_options o = {
        .conninfo = r->set->source,
        .application_name = r->set->application_name,
        .connect_timeout_ms = left < r->set->connect_timeout_ms ? left : r->set->connect_timeout_ms,
        .expected_system_id = r->system_id,
        .status_interval_ms = r->set->status_interval_ms,
    };
    char lsn[KC_LSN_STRLEN];
    int rc;

    if (o.connect_timeout_ms <= 0)
        return kc_error_set(err, KC_ETIMEDOUT, "timed out before connecting to the WAL source");
    rc = kc_walstream_open(&r->s, &o, err);
    if (rc != 0)
        return rc;
    r->system_id = kc_walstream_identity(r->s)->system_id;
    rc = kc_walstream_start(r->s, r->flushed, r->timeline, err);
    if (rc == 0)
        rc = kc_walstream_set_positions(r->s, r->written, r->flushed, KC_LSN_INVALID, err);
    if (rc != 0) {
        kc_walstream_close(r->s);
        r->s = NULL;
        return rc;
    }
    if (r->timeline == 0)
        r->timeline = kc_walstream_identity(r->s)->timeline;
    kc_info("streaming WAL from %s on timeline %" PRIu32, kc_lsn_format(r->flushed, lsn),
            r->timeline);
    return 0;
}

/* dbg_stream(): the deadline passed or a signal came (distinct from KC_WALSTREAM_END). */
#define DBG_TIME_UP 2

/*
 * Stream on the open connection until the stop position (0), the end of the
 * stream (KC_WALSTREAM_END), the deadline or a signal (DBG_TIME_UP), or an error.
 */
static int dbg_stream(struct dbg_run *r, struct kc_error *err)
{
    struct kc_walstream_callbacks cb = {.on_wal = dbg_on_wal, .arg = r};

    for (;;) {
        int64_t wait = r->deadline - dbg_now_ms(), status = kc_walstream_timeout_ms(r->s);
        struct pollfd p = {.fd = kc_walstream_fd(r->s), .events = POLLIN};
        int rc;

        bool ended;

        rc = kc_walstream_poll(r->s, &cb, err);
        ended = rc == KC_WALSTREAM_END;
        if (rc == 0)
            rc = dbg_flush(r, err);
        if (r->stop != KC_LSN_INVALID && r->written >= r->stop)
            return 0; /* everything asked for is here, whatever came after it */
        if (rc != 0)
            return ended ? KC_WALSTREAM_END : rc;
        if (wait <= 0 || dbg_interrupted)
            return DBG_TIME_UP;
        if (status >= 0 && status < wait)
            wait = status;
        if (wait > 1000)
            wait = 1000; /* look at the signal flag now and then */
        if (kc_walstream_want_write(r->s))
            p.events |= POLLOUT;
        if (poll(&p, 1, (int)wait) < 0 && errno != EINTR)
            return kc_error_set(err, KC_EIO, "poll failed: %s", strerror(errno));
    }
}

/* Sleep for the next backoff delay, bounded by the deadline and cut short by a signal. */
static void dbg_backoff(struct dbg_run *r, const struct kc_error *why)
{
    uint64_t rnd = (uint64_t)dbg_now_ms() * UINT64_C(0x9E3779B97F4A7C15);
    int64_t delay, left;

    if (kc_random_bytes(&rnd, sizeof(rnd), NULL) != 0)
        rnd ^= (uint64_t)getpid(); /* the clock-based value is jitter enough */
    delay = kc_walstream_backoff_next(&r->backoff, rnd);
    left = r->deadline - dbg_now_ms();
    if (delay > left)
        delay = left > 0 ? left : 0;
    kc_warn("%s; reconnecting in %" PRId64 " ms", why->message, delay);
    if (delay > 0 && !dbg_interrupted)
        (void)poll(NULL, 0, (int)delay);
}

/* Whether an error may go away by reconnecting (connection trouble, not a wrong source). */
static bool dbg_retryable(int rc)
{
    return rc == KC_EIO || rc == KC_ETIMEDOUT || rc == KC_EFAILPOINT || rc == KC_WALSTREAM_END;
}

/*
 * Run connections until done. Returns 0 when the stop position was reached
 * or, without --stop, when the deadline, a signal or the end of the stream
 * finished the run; a negative code otherwise.
 */
static int dbg_receive(struct dbg_run *r, struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];
    bool open_ended = r->stop == KC_LSN_INVALID;

    /* Bounded by the deadline: every round either streams or waits a backoff delay. */
    for (;;) {
        kc_lsn before = r->written;
        int rc = dbg_connect(r, err);

        if (rc == 0) {
            rc = dbg_stream(r, err);
            if (rc == 0 || rc == DBG_TIME_UP)
                (void)dbg_flush(r, NULL); /* report the final position */
            kc_walstream_close(r->s);
            r->s = NULL;
            if (rc == 0 || (rc == DBG_TIME_UP && open_ended))
                return 0;
            if (rc == DBG_TIME_UP)
                break;
            if (dbg_flush(r, err) != 0) /* resume exactly where the file is durable */
                return err != NULL ? err->code : KC_EIO;
            if (rc == KC_WALSTREAM_END && open_ended && !r->set->reconnect)
                return 0;
            if (rc == KC_WALSTREAM_END)
                kc_error_set(err, KC_EIO, "the WAL source ended the stream at %s before %s",
                             kc_lsn_format(r->written, a), kc_lsn_format(r->stop, b));
            if (r->written > before) /* it streamed: the next trouble starts afresh */
                kc_walstream_backoff_reset(&r->backoff);
        }
        if (!r->set->reconnect || !dbg_retryable(rc))
            return rc == KC_WALSTREAM_END ? KC_EIO : rc;
        if (dbg_interrupted || dbg_now_ms() >= r->deadline)
            return rc;
        dbg_backoff(r, err);
        if (dbg_interrupted || dbg_now_ms() >= r->deadline)
            return rc;
    }
    if (dbg_interrupted)
        return kc_error_set(err, KC_EIO, "interrupted at %s before the stop position %s",
                            kc_lsn_format(r->written, a), kc_lsn_format(r->stop, b));
    kc_error_set(err, KC_ETIMEDOUT, "timed out after %" PRId64 " ms waiting for WAL up to %s",
                 r->set->timeout_ms, kc_lsn_format(r->stop, b));
    kc_error_detail(err, "WAL was received from %s up to %s.", kc_lsn_format(r->start, a),
                    kc_lsn_format(r->written, b));
    return KC_ETIMEDOUT;
}

static int cmd_debug_receive_wal(const struct cli_command *cmd, void *settings, int argc,
                                 char **argv)
{
    struct sigaction sa = {.sa_handler = dbg_on_signal};
    struct dbg_run r;
    struct kc_error err = {0};
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];
    int rc;

    (void)argc, (void)argv;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = dbg_prepare(&r, settings, &err);
    if (rc == 0)
        rc = dbg_receive(&r, &err);
    if (rc == 0 && r.fd >= 0 && fsync(r.fd) != 0)
        rc = kc_error_set(&err, KC_EIO, "could not fsync \"%s\": %s", r.set->out, strerror(errno));
    if (r.fd >= 0)
        close(r.fd);
    if (rc != 0) {
        if (r.fd >= 0 && r.written > r.start)
            kc_error_hint(&err, "\"%s\" holds the WAL from %s to %s.", r.set->out,
                          kc_lsn_format(r.start, a), kc_lsn_format(r.written, b));
        cli_report_error(cmd, &err);
        return CLI_EXIT_FAIL;
    }
    printf("received WAL from %s to %s (%" PRIu64 " bytes) into %s\n", kc_lsn_format(r.start, a),
           kc_lsn_format(r.written, b), (uint64_t)(r.written - r.start), r.set->out);
    return CLI_EXIT_OK;
}

const struct cli_command cli_cmd_debug_receive_wal = {
    .name = "debug-receive-wal",
    .group = "commands",
    .summary = "stream WAL from a PostgreSQL primary into a file (debugging)",
    .description = "Connects to a primary as a physical replication client (the client the\n"
                   "safekeeper and the pageserver use), streams WAL from --start and writes the\n"
                   "raw bytes into --out (file offset 0 is --start), up to --stop when given.\n"
                   "Each batch is fsynced and reported back as written and flushed, so the\n"
                   "primary's pg_stat_replication shows the progress under --application-name.\n"
                   "Prints the range received. Without --stop it streams until --timeout,\n"
                   "SIGINT/SIGTERM or the end of the stream, and that is success. With\n"
                   "--reconnect a broken or ended stream resumes from the flushed position\n"
                   "after a backoff (100 ms doubling to 10 s) until --timeout.",
    .options = debug_receive_wal_options,
    .noptions = KC_ARRAY_LEN(debug_receive_wal_options),
    .settings_size = sizeof(struct cli_debug_settings),
    .run = cmd_debug_receive_wal,
};
