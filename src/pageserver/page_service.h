/* SPDX-License-Identifier: Apache-2.0 */
/*
 * page_service.h -- the pageserver's page service: TCP listener of the compute's page requests.
 *
 * The server speaks the protocol of common/pagestream.h
 * (docs/protocol-pageservice.md): it accepts connections, runs the
 * handshake (version negotiation, optional token check, timeline lookup,
 * term fencing), then answers pipelined requests in order by calling a
 * backend, the timeline storage, through struct ps_page_backend.
 *
 * Threads: one accept thread, and one thread per connection that reads a
 * request, serves it (blocking in the backend if it must) and appends the
 * answer to the connection's output, which is written when no complete
 * request is left in the input, when 64 KiB have accumulated, or before the
 * connection waits for WAL. Answers are thus in request order by
 * construction; the unread part of the input is the connection's queue.
 *
 * What the server enforces, per request: the connection's term is not older
 * than the newest term any connection presented for the timeline (fencing;
 * read-only clients are exempt); request_lsn is not 0 and not below
 * not_modified_since; if not_modified_since is past the timeline's last
 * ingested LSN, the request waits (at most wait_lsn_timeout_ms) until it is
 * ingested; it then reads at min(request_lsn, last ingested LSN), "latest"
 * meaning the last ingested LSN. Malformed input closes only that
 * connection, after an ERROR with id 0 and a warning in the log.
 */
#ifndef PS_PAGE_SERVICE_H
#define PS_PAGE_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/id.h"
#include "common/lsn.h"
#include "common/metrics.h"
#include "common/pagestream.h"

/*
 * The timeline storage, as the page service needs it. Every callback may be
 * called from many connection threads at once, so each must be
 * thread-safe. `tl` is the handle lookup returned. Callbacks that fail return
 * a negative KC_E* code with err filled; the server turns it into an ERROR
 * answer (KC_ENOTFOUND -> 58P01, KC_EINVAL -> 22023, KC_ETIMEDOUT -> KP003,
 * KC_ECORRUPT -> XX001, KC_EIO -> 58030, others -> XX000) and sends err's
 * message, detail and hint to the compute.
 */
struct ps_page_backend {
    void *arg; /* passed to every callback */

    /* Find a timeline: 0 with *tl set, or KC_ENOTFOUND. Required. */
    int (*lookup)(void *arg, const struct kc_id *tenant, const struct kc_id *timeline, void **tl,
                  struct kc_error *err);
    /* Give back a handle from lookup when its connection ends. Optional. */
    void (*release)(void *arg, void *tl);
    /*
     * Check a client's token for tenant/timeline (token_len may be 0).
     * Optional: when NULL every client is trusted (no authentication yet).
     */
    int (*authorize)(void *arg, const struct kc_id *tenant, const struct kc_id *timeline,
                     const uint8_t *token, size_t token_len, struct kc_error *err);
    /* The newest LSN up to which WAL is ingested and readable (never 0). Required. */
    kc_lsn (*last_lsn)(void *arg, void *tl);
    /*
     * Block until last_lsn(tl) >= lsn or timeout_ms passes: 0 once reached,
     * KC_ETIMEDOUT after the timeout, another code if the timeline broke.
     * Required. The server calls it in slices of at most 100 ms so that it
     * can stop; a backend must not wait longer than timeout_ms.
     */
    int (*wait_lsn)(void *arg, void *tl, kc_lsn lsn, int timeout_ms, struct kc_error *err);
    /*
     * The reads, at lsn (<= last_lsn, > 0). A block at or past the end of the
     * relation, or of a relation that does not exist, reads as zeros (the
     * compute may have extended it without WAL the pageserver has seen yet);
     * the backend decides what else is an error. get_page fills page
     * (KC_PS_BLCKSZ bytes); slru_segment fills up to KC_PS_SLRU_MAX_BLOCKS
     * pages and sets *nblocks. All required.
     */
    int (*get_page)(void *arg, void *tl, const struct kc_ps_reltag *rel, uint32_t blkno, kc_lsn lsn,
                    uint8_t *page, struct kc_error *err);
    int (*nblocks)(void *arg, void *tl, const struct kc_ps_reltag *rel, kc_lsn lsn,
                   uint32_t *nblocks, struct kc_error *err);
    int (*exists)(void *arg, void *tl, const struct kc_ps_reltag *rel, kc_lsn lsn, bool *exists,
                  struct kc_error *err);
    int (*dbsize)(void *arg, void *tl, uint32_t spc, uint32_t db, kc_lsn lsn, int64_t *bytes,
                  struct kc_error *err);
    int (*slru_segment)(void *arg, void *tl, uint8_t kind, uint32_t segno, kc_lsn lsn,
                        uint8_t *pages, uint32_t *nblocks, struct kc_error *err);
};

/* Settings; ps_page_service_options_init fills the defaults. */
struct ps_page_service_options {
    const char *host;         /* listen address (copied), default "127.0.0.1" */
    uint16_t port;            /* default 0: a free port, see ps_page_service_port */
    int wait_lsn_timeout_ms;  /* longest wait for not_modified_since, default 30000 */
    int handshake_timeout_ms; /* from accept to HELLO, default 10000 */
    int write_timeout_ms;     /* longest a write may wait for the client, default 60000 */
    int idle_timeout_ms;      /* close after so long without a request; 0 (default): never */
    unsigned max_connections; /* more are refused with 53300, default 1024 */
    uint32_t max_payload;     /* request frame limit after the handshake, default
                                 KC_FRAME_MAX_DEFAULT; before it, KC_FRAME_MAX_UNAUTH */
    struct kc_metrics_registry *registry; /* NULL (default): the process-wide registry */
};

struct ps_page_service;

void ps_page_service_options_init(struct ps_page_service_options *o);

/*
 * ps_page_service_start -- listen on o->host:o->port, register the metrics
 * and start the accept thread. backend is copied; its arg must outlive the
 * server. Returns 0 with *out set, or KC_EINVAL (bad option, missing
 * required callback, metrics clash) / KC_EIO (bind, listen, thread) with err
 * filled and *out NULL.
 */
int ps_page_service_start(const struct ps_page_service_options *o,
                          const struct ps_page_backend *backend, struct ps_page_service **out,
                          struct kc_error *err) KC_MUSTCHECK;

/* The port the server listens on (useful after port 0). */
uint16_t ps_page_service_port(const struct ps_page_service *s);

/* Open connections right now (handshake done or not). Thread-safe. */
unsigned ps_page_service_connections(struct ps_page_service *s);

/*
 * ps_page_service_term -- the newest term presented for a timeline (0 when
 * none). Fencing state lives in memory: a restarted server learns the
 * newest term again from the first compute that connects. Thread-safe.
 */
uint64_t ps_page_service_term(struct ps_page_service *s, const struct kc_id *tenant,
                              const struct kc_id *timeline);

/*
 * ps_page_service_stop -- stop accepting and end every connection: input
 * is shut down, requests waiting for WAL end within 100 ms with an ERROR
 * 57P01, and each connection gets up to 1.5 s to write its last answers
 * before its socket is shut down completely. A backend call in progress is
 * waited for. Then joins all threads and frees s. NULL is a no-op. Must not
 * be called from a backend callback.
 */
void ps_page_service_stop(struct ps_page_service *s);

#endif
