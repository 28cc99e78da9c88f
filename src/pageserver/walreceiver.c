/* SPDX-License-Identifier: Apache-2.0 */
/* walreceiver.c -- streaming, decoding and ingesting WAL in a thread. See walreceiver.h. */
#include "pageserver/walreceiver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/random.h"
#include "common/walstream.h"
#include "pageserver/wal_decoder.h"

struct ps_walreceiver {
    struct ps_walreceiver_opts opts;
    char *conninfo;
    char *app_name;
    struct ps_walreceiver_sink sink;
    pthread_t thread;
    int stop_pipe[2];     /* written to wake the thread for stopping */
    pthread_mutex_t lock; /* guards status */
    struct ps_walreceiver_status status;
    /* Owned by the thread: */
    kc_lsn next_lsn; /* where the next record starts */
    struct ps_ingest *ingest;
    struct ps_wal_decoder *decoder;
    struct kc_walstream *stream;
    bool hard_error; /* the last error came from decoding or ingesting */
};

static void wr_set_error(struct ps_walreceiver *wr, const struct kc_error *err, bool failed)
{
    char buf[sizeof(wr->status.error)];

    kc_error_format(err, buf, sizeof(buf));
    pthread_mutex_lock(&wr->lock);
    snprintf(wr->status.error, sizeof(wr->status.error), "%s", buf);
    wr->status.connected = false;
    if (failed)
        wr->status.failed = true;
    pthread_mutex_unlock(&wr->lock);
}

/* Decode and ingest every complete record the decoder holds. */
static int wr_drain(struct ps_walreceiver *wr, struct kc_error *err)
{
    struct ps_wal_record rec;
    uint64_t n = 0;
    int rc;

    while ((rc = ps_wal_decoder_next(wr->decoder, &rec, err)) == 1) {
        rc = ps_ingest_record(wr->ingest, wr->decoder, &rec, err);
        if (rc != 0)
            return rc;
        wr->next_lsn = rec.end_lsn;
        n++;
    }
    if (rc < 0)
        return rc;
    if (n > 0) {
        rc = ps_ingest_flush(wr->ingest, wr->next_lsn, err);
        if (rc != 0)
            return rc;
        wr->sink.advance(wr->sink.arg, wr->next_lsn);
        pthread_mutex_lock(&wr->lock);
        wr->status.ingested_lsn = wr->next_lsn;
        wr->status.records += n;
        pthread_mutex_unlock(&wr->lock);
    }
    return 0;
}

static int wr_on_wal(void *arg, kc_lsn start, const uint8_t *data, size_t len, struct kc_error *err)
{
    struct ps_walreceiver *wr = arg;
    kc_lsn flush, apply, received;
    int rc;

    KC_FAILPOINT_ERROR("pageserver.walreceiver.before-ingest", err);
    rc = ps_wal_decoder_feed(wr->decoder, start, data, len, err);
    if (rc == 0)
        rc = wr_drain(wr, err);
    if (rc != 0) {
        wr->hard_error = true; /* the WAL itself is the problem: retrying cannot help */
        return rc;
    }
    pthread_mutex_lock(&wr->lock);
    wr->status.received_lsn = start + len;
    pthread_mutex_unlock(&wr->lock);
    /*
     * Report apply = ingested and flush = durable, never beyond what was
     * received: after an XLOG_SWITCH record the next record starts at the
     * next segment, before the padding up to it has arrived.
     */
    received = start + len;
    apply = wr->next_lsn < received ? wr->next_lsn : received;
    flush = wr->sink.durable_lsn(wr->sink.arg);
    if (flush > apply)
        flush = apply;
    return kc_walstream_set_positions(wr->stream, received, flush, apply, err);
}

/* One connection: stream until an error, the end of the stream or a stop request. */
static int wr_session(struct ps_walreceiver *wr, struct kc_error *err)
{
    struct kc_walstream_options so = {
        .conninfo = wr->conninfo,
        .application_name = wr->app_name,
        .connect_timeout_ms = wr->opts.connect_timeout_ms,
        .expected_system_id = wr->opts.system_id,
        .status_interval_ms = wr->opts.status_interval_ms ? wr->opts.status_interval_ms : 1000,
    };
    struct kc_walstream_callbacks cb = {.on_wal = wr_on_wal, .arg = wr};
    int rc;

    rc = ps_wal_decoder_create(wr->next_lsn, wr->opts.seg_size, wr->opts.system_id, &wr->decoder,
                               err);
    if (rc == 0)
        rc = kc_walstream_open(&wr->stream, &so, err);
    if (rc == 0)
        rc = kc_walstream_start(wr->stream, wr->next_lsn, 0, err);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&wr->lock);
    wr->status.connected = true;
    wr->status.connects++;
    wr->status.received_lsn = wr->next_lsn;
    wr->status.error[0] = '\0';
    pthread_mutex_unlock(&wr->lock);
    kc_info("streaming WAL from %s at %X/%X", wr->app_name, (unsigned)(wr->next_lsn >> 32),
            (unsigned)wr->next_lsn);
    for (;;) {
        struct pollfd fds[2] = {
            {.fd = kc_walstream_fd(wr->stream),
             .events = (short)(POLLIN | (kc_walstream_want_write(wr->stream) ? POLLOUT : 0))},
            {.fd = wr->stop_pipe[0], .events = POLLIN},
        };
        int64_t timeout = kc_walstream_timeout_ms(wr->stream);

        if (timeout < 0 || timeout > 1000)
            timeout = 1000;
        if (poll(fds, 2, (int)timeout) < 0 && errno != EINTR)
            return kc_error_set(err, KC_EIO, "poll: %s", strerror(errno));
        if (fds[1].revents != 0)
            return 0; /* asked to stop */
        rc = kc_walstream_poll(wr->stream, &cb, err);
        if (rc == KC_WALSTREAM_END)
            return kc_error_set(err, KC_EIO, "the WAL source ended the stream");
        if (rc != 0)
            return rc;
    }
}

static void wr_session_end(struct ps_walreceiver *wr)
{
    kc_walstream_close(wr->stream);
    wr->stream = NULL;
    ps_wal_decoder_destroy(wr->decoder);
    wr->decoder = NULL;
}

static bool wr_stop_requested(struct ps_walreceiver *wr, int64_t wait_ms)
{
    struct pollfd p = {.fd = wr->stop_pipe[0], .events = POLLIN};
    return poll(&p, 1, (int)wait_ms) > 0;
}

static void *wr_main(void *arg)
{
    struct ps_walreceiver *wr = arg;
    struct kc_walstream_backoff backoff;
    struct kc_error err;

    kc_walstream_backoff_init(&backoff, 100,
                              wr->opts.backoff_max_ms ? wr->opts.backoff_max_ms : 10000);
    for (;;) {
        uint64_t rnd = 0;
        int rc;

        uint64_t connects_before = wr->status.connects;

        kc_error_clear(&err);
        wr->hard_error = false;
        rc = wr_session(wr, &err);
        wr_session_end(wr);
        if (rc == 0)
            break; /* stop requested */
        if (wr->status.connects != connects_before)
            kc_walstream_backoff_reset(&backoff);
        if (wr->hard_error) {
            kc_error("WAL receiver stopped: %s", err.message);
            wr_set_error(wr, &err, true);
            break;
        }
        wr_set_error(wr, &err, false);
        kc_warn("WAL receiver: %s; reconnecting from %X/%X", err.message,
                (unsigned)(wr->next_lsn >> 32), (unsigned)wr->next_lsn);
        if (kc_random_bytes(&rnd, sizeof(rnd), NULL) != 0)
            rnd = 0;
        if (wr_stop_requested(wr, kc_walstream_backoff_next(&backoff, rnd)))
            break;
    }
    return NULL;
}

int ps_walreceiver_start(const struct ps_walreceiver_opts *opts,
                         const struct ps_walreceiver_sink *sink, kc_lsn start_lsn,
                         struct ps_walreceiver **out, struct kc_error *err)
{
    struct ps_walreceiver *wr;
    int rc;

    if (opts->conninfo == NULL || sink->advance == NULL || sink->durable_lsn == NULL)
        return kc_error_set(err, KC_EINVAL, "WAL receiver needs a source and a sink");
    if (start_lsn == 0)
        return kc_error_set(err, KC_EINVAL, "WAL receiver needs a start LSN");
    wr = kc_calloc(1, sizeof(*wr));
    wr->opts = *opts;
    wr->conninfo = kc_strdup(opts->conninfo);
    wr->app_name = kc_strdup(opts->application_name ? opts->application_name : "kelp-pageserver");
    wr->sink = *sink;
    wr->next_lsn = start_lsn;
    wr->status.ingested_lsn = start_lsn;
    pthread_mutex_init(&wr->lock, NULL);
    rc = ps_ingest_create(&sink->ops, &wr->ingest, err);
    if (rc == 0 && pipe2(wr->stop_pipe, O_CLOEXEC) != 0)
        rc = kc_error_set(err, KC_EIO, "pipe: %s", strerror(errno));
    if (rc == 0 && pthread_create(&wr->thread, NULL, wr_main, wr) != 0)
        rc = kc_error_set(err, KC_EIO, "could not start the WAL receiver thread");
    if (rc != 0) {
        ps_ingest_destroy(wr->ingest);
        free(wr->conninfo);
        free(wr->app_name);
        free(wr);
        return rc;
    }
    *out = wr;
    return 0;
}

void ps_walreceiver_stop(struct ps_walreceiver *wr)
{
    if (wr == NULL)
        return;
    if (write(wr->stop_pipe[1], "x", 1) < 0) {
        /* the thread will still stop at its next poll of the pipe */
    }
    pthread_join(wr->thread, NULL);
    close(wr->stop_pipe[0]);
    close(wr->stop_pipe[1]);
    ps_ingest_destroy(wr->ingest);
    pthread_mutex_destroy(&wr->lock);
    free(wr->conninfo);
    free(wr->app_name);
    free(wr);
}

void ps_walreceiver_get_status(struct ps_walreceiver *wr, struct ps_walreceiver_status *out)
{
    pthread_mutex_lock(&wr->lock);
    *out = wr->status;
    pthread_mutex_unlock(&wr->lock);
}
