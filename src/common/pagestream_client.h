/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pagestream_client.h -- a blocking page service client over one TCP socket, with timeouts.
 *
 * For tests and debugging tools (the compute extension has its own,
 * non-blocking client built on the same codec, common/pagestream.h):
 *
 *   struct kc_ps_client *c;
 *   kc_ps_client_connect("127.0.0.1", port, 5000, &c, err);
 *   kc_ps_client_handshake(c, &hello, err);          HELLO -> HELLO_OK
 *   kc_ps_client_call(c, &req, &resp, err);          one request, its answer
 *   kc_ps_client_queue(c, &req1, err); ... kc_ps_client_flush(c, err);
 *   kc_ps_client_recv(c, &resp, err); ...            pipelined, answers in order
 *   kc_ps_client_close(c);
 *
 * Every call that waits is bounded by the client's timeout (set at connect,
 * changed with kc_ps_client_set_timeout), counted per call. A client checks
 * that answers arrive in request order with matching ids and types. After
 * any error except a per-request ERROR answer, the client is broken: later
 * calls fail at once with KC_EIO and it can only be closed.
 *
 * Pipelining is bounded by the socket buffers: a caller that queues many
 * requests without reading answers should flush and read in batches (a few
 * thousand requests of ~60 bytes are safe).
 *
 * A client belongs to one thread at a time. SIGPIPE is never raised
 * (MSG_NOSIGNAL).
 */
#ifndef KC_PAGESTREAM_CLIENT_H
#define KC_PAGESTREAM_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/pagestream.h"

struct kc_ps_client;

/*
 * kc_ps_client_connect -- open a TCP connection to host:port (a name or a
 * numeric address), waiting at most timeout_ms (> 0) for it; timeout_ms is
 * also the client's timeout for later calls. Returns 0 with *out set (free
 * with kc_ps_client_close), or KC_EIO / KC_ETIMEDOUT / KC_EINVAL (bad host)
 * with err filled and *out NULL.
 */
int kc_ps_client_connect(const char *host, uint16_t port, int timeout_ms, struct kc_ps_client **out,
                         struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_ps_client_handshake -- send hello and wait for the server's answer.
 * Returns 0 on HELLO_OK (kc_ps_client_version tells the version). When the
 * server refuses, returns kc_ps_sqlstate_to_code(sqlstate) with err holding
 * the server's message, detail and hint, and kc_ps_client_sqlstate(c)
 * returning the sqlstate; the client is then broken. Other failures: KC_EIO,
 * KC_ETIMEDOUT, KC_EPROTO (an unexpected or malformed answer).
 */
int kc_ps_client_handshake(struct kc_ps_client *c, const struct kc_ps_hello *hello,
                           struct kc_error *err) KC_MUSTCHECK;

/* The negotiated protocol version, 0 before a successful handshake. */
uint16_t kc_ps_client_version(const struct kc_ps_client *c);

/* The sqlstate of the last ERROR received ("" when none). Owned by c. */
const char *kc_ps_client_sqlstate(const struct kc_ps_client *c);

/*
 * kc_ps_client_queue -- encode req into the output buffer without sending
 * it, and remember it as pending. Returns 0, KC_EINVAL (a request the codec
 * refuses; nothing queued) or KC_EIO (broken client, or before a handshake).
 */
int kc_ps_client_queue(struct kc_ps_client *c, const struct kc_ps_request *req,
                       struct kc_error *err) KC_MUSTCHECK;

/* kc_ps_client_flush -- send everything queued. Returns 0, KC_EIO or KC_ETIMEDOUT. */
int kc_ps_client_flush(struct kc_ps_client *c, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_ps_client_recv -- read the answer to the oldest pending request into
 * *resp (flushing queued requests first). Returns 0 when it arrived: an
 * answer, or an ERROR for that request (resp->type tells; the client stays
 * usable). resp->data points into the client's buffer and stays valid until
 * the next call on c. A connection-level ERROR (id 0) returns
 * kc_ps_sqlstate_to_code of its sqlstate with err holding the server's texts
 * (and *resp filled). Also KC_EIO (I/O failure, server closed, nothing
 * pending), KC_ETIMEDOUT, KC_EPROTO (malformed frame, answer out of order).
 */
int kc_ps_client_recv(struct kc_ps_client *c, struct kc_ps_response *resp,
                      struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_ps_client_call -- queue req, flush and receive its answer. Returns 0
 * with *resp an answer. When the server answers with ERROR, returns
 * kc_ps_sqlstate_to_code(resp->sqlstate) with err holding the server's
 * message, detail and hint (the client stays usable). KC_EINVAL when other
 * requests are pending (use kc_ps_client_recv for those). Other failures as
 * kc_ps_client_recv.
 */
int kc_ps_client_call(struct kc_ps_client *c, const struct kc_ps_request *req,
                      struct kc_ps_response *resp, struct kc_error *err) KC_MUSTCHECK;

/* Requests sent or queued whose answer has not been received. */
size_t kc_ps_client_pending(const struct kc_ps_client *c);

/* Change the per-call timeout (milliseconds, > 0). */
void kc_ps_client_set_timeout(struct kc_ps_client *c, int timeout_ms);

/* The socket (for tests that write raw bytes); owned by c. */
int kc_ps_client_fd(const struct kc_ps_client *c);

/* Close the socket and free c (NULL is a no-op). */
void kc_ps_client_close(struct kc_ps_client *c);

#endif
