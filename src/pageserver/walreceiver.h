/* SPDX-License-Identifier: Apache-2.0 */
/*
 * walreceiver.h -- the pageserver's WAL receiver: one thread per timeline
 * that streams committed WAL from a source (a safekeeper; in tests a
 * PostgreSQL primary), decodes it and ingests every record.
 *
 *   source --walstream--> decoder --records--> ingest --puts--> sink
 *
 * It starts at the sink's resume LSN (the end of the last record the
 * timeline holds durably, a record boundary), reports positions back to the
 * source (write = received, flush = the sink's durable LSN, apply = ingested)
 * and on any failure reconnects with backoff from the last record it
 * ingested: a new decoder restarts there, so a torn connection never leaves a
 * half record behind. WAL that does not decode is a hard error: the receiver
 * stops and reports it (it never skips WAL).
 */
#ifndef PS_WALRECEIVER_H
#define PS_WALRECEIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/lsn.h"
#include "pageserver/ingest.h"

struct ps_walreceiver_opts {
    const char *conninfo;         /* the WAL source (libpq conninfo); copied */
    const char *application_name; /* shown by the source; NULL: "kelp-pageserver" */
    uint32_t seg_size;            /* the cluster's WAL segment size */
    uint64_t system_id;           /* expected system id; 0: accept any */
    int64_t status_interval_ms;   /* feedback interval; 0: 1 s */
    int64_t connect_timeout_ms;   /* 0: 10 s */
    int64_t backoff_max_ms;       /* 0: 10 s */
};

/* Where the receiver's records go. Called from the receiver's thread. */
struct ps_walreceiver_sink {
    void *arg;
    struct ps_ingest_ops ops; /* what ingest writes through */
    /* Every record up to lsn is ingested (called after each batch of records). */
    void (*advance)(void *arg, kc_lsn lsn);
    /* The LSN up to which ingested WAL is durable (reported as flush). */
    kc_lsn (*durable_lsn)(void *arg);
};

/* A snapshot of the receiver's state (for status APIs and tests). */
struct ps_walreceiver_status {
    bool connected;      /* streaming right now */
    bool failed;         /* stopped for good: invalid WAL (see error) */
    kc_lsn received_lsn; /* end of WAL received on the current connection */
    kc_lsn ingested_lsn; /* end of the last record ingested */
    uint64_t records;    /* records ingested since start */
    uint64_t connects;   /* successful connections since start */
    char error[256];     /* the last error, "" if none */
};

struct ps_walreceiver;

/*
 * ps_walreceiver_start -- start the thread, streaming from start_lsn (the end
 * of a record). The caller stops it with ps_walreceiver_stop().
 */
int ps_walreceiver_start(const struct ps_walreceiver_opts *opts,
                         const struct ps_walreceiver_sink *sink, kc_lsn start_lsn,
                         struct ps_walreceiver **out, struct kc_error *err) KC_MUSTCHECK;

/* Ask the thread to stop, wait for it (bounded by one poll interval) and free. */
void ps_walreceiver_stop(struct ps_walreceiver *wr);

void ps_walreceiver_get_status(struct ps_walreceiver *wr, struct ps_walreceiver_status *out);

#endif
