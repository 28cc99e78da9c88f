/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pagestream.h -- messages of the page service protocol (compute <-> pageserver), version 1.
 *
 * The compute asks the pageserver for pages and relation metadata over TCP.
 * Every message is one frame (common/frame.h) whose type is one of
 * KC_PS_MSG_*; this module encodes and decodes the payloads. The protocol,
 * every byte layout and the LSN rules are in docs/protocol-pageservice.md.
 *
 *   client                               server
 *   HELLO (versions, tenant, timeline,   -> lookup, authorize, fence by term
 *          term, name, token)            <- HELLO_OK (version) or ERROR (id 0), close
 *   request id=1 ... request id=N        -> (pipelined, any number)
 *                                        <- response id=1 ... response id=N, in order
 *
 * A response is the answer type matching its request (EXISTS -> EXISTS_RESP,
 * ...) or ERROR carrying a SQLSTATE-like code and a message, detail and hint.
 * An ERROR with id 0 concerns the connection: the server closes it next.
 *
 * Decoding validates everything: exact payload length for the type, known
 * fork numbers and SLRU kinds, values inside their ranges, lengths within
 * their limits. A decoder that succeeds has produced a message whose
 * encoding is byte-for-byte the input (the encoding is canonical).
 *
 * Plain C11 on top of buf, frame and id, with no allocation except growth of
 * the caller's kc_sbuf and no logging, so the compute extension can compile
 * it. Decoded responses point into the frame they came from (no copy).
 * Everything here is thread-safe (no state).
 */
#ifndef KC_PAGESTREAM_H
#define KC_PAGESTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/frame.h"
#include "common/id.h"

/* Protocol versions this build speaks. */
#define KC_PS_PROTO_MIN 1
#define KC_PS_PROTO_MAX 1

#define KC_PS_BLCKSZ 8192 /* PostgreSQL's BLCKSZ: one page */
/* request_lsn meaning "the newest LSN the pageserver has" (primaries send it). */
#define KC_PS_LSN_LATEST UINT64_MAX

/* Limits (see docs/protocol-pageservice.md, "Limits"). */
#define KC_PS_NAME_MAX        63          /* client name bytes, printable ASCII */
#define KC_PS_TOKEN_MAX       4096        /* authentication token bytes */
#define KC_PS_MESSAGE_MAX     255         /* error message bytes (struct kc_error.message - 1) */
#define KC_PS_DETAIL_MAX      511         /* error detail bytes */
#define KC_PS_HINT_MAX        255         /* error hint bytes */
#define KC_PS_FORK_MAX        3           /* main 0, fsm 1, visibility map 2, init 3 */
#define KC_PS_SLRU_MAX_BLOCKS 32          /* SLRU_PAGES_PER_SEGMENT */
#define KC_PS_MAX_BLKNO       0xFFFFFFFEu /* MaxBlockNumber */
#define KC_PS_SQLSTATE_LEN    5

/* HELLO flags. Unknown bits are refused. */
#define KC_PS_HELLO_READ_ONLY 0x1u /* a read-only compute: not fenced; term must be 0 */
#define KC_PS_HELLO_FLAGS_ALL 0x1u

/* Frame types of the page service: 0x50xx ('P'). */
enum kc_ps_msg_type {
    KC_PS_MSG_HELLO = 0x5001,    /* client -> server, first frame */
    KC_PS_MSG_HELLO_OK = 0x5002, /* server -> client: handshake accepted */

    KC_PS_MSG_EXISTS = 0x5010, /* requests, client -> server */
    KC_PS_MSG_NBLOCKS = 0x5011,
    KC_PS_MSG_GETPAGE = 0x5012,
    KC_PS_MSG_DBSIZE = 0x5013,
    KC_PS_MSG_SLRU = 0x5014,

    KC_PS_MSG_EXISTS_RESP = 0x5090, /* answers, server -> client */
    KC_PS_MSG_NBLOCKS_RESP = 0x5091,
    KC_PS_MSG_GETPAGE_RESP = 0x5092,
    KC_PS_MSG_DBSIZE_RESP = 0x5093,
    KC_PS_MSG_SLRU_RESP = 0x5094,

    KC_PS_MSG_ERROR = 0x50FF /* server -> client: a request or the connection failed */
};

/* SLRU kinds (the pageserver's key space numbers them the same way). */
enum kc_ps_slru_kind {
    KC_PS_SLRU_CLOG = 0,
    KC_PS_SLRU_MULTIXACT_MEMBERS = 1,
    KC_PS_SLRU_MULTIXACT_OFFSETS = 2
};

/* Error codes the server sends (SQLSTATE-like, five characters). */
#define KC_PS_SQLSTATE_PROTOCOL     "08P01" /* malformed message or protocol misuse */
#define KC_PS_SQLSTATE_INVALID      "22023" /* a request value the backend refused */
#define KC_PS_SQLSTATE_TOO_MANY     "53300" /* connection limit reached */
#define KC_PS_SQLSTATE_SHUTDOWN     "57P01" /* the server is stopping */
#define KC_PS_SQLSTATE_NOT_FOUND    "58P01" /* the backend has no such object */
#define KC_PS_SQLSTATE_IO           "58030" /* I/O error in the backend */
#define KC_PS_SQLSTATE_INTERNAL     "XX000" /* anything else */
#define KC_PS_SQLSTATE_CORRUPT      "XX001" /* stored data failed a check */
#define KC_PS_SQLSTATE_NO_TIMELINE  "KP001" /* unknown tenant or timeline */
#define KC_PS_SQLSTATE_STALE_TERM   "KP002" /* a newer compute owns the timeline */
#define KC_PS_SQLSTATE_WAIT_TIMEOUT "KP003" /* WAL up to not_modified_since did not arrive */
#define KC_PS_SQLSTATE_BAD_LSN      "KP004" /* request_lsn 0 or below not_modified_since */
#define KC_PS_SQLSTATE_VERSION      "KP005" /* no common protocol version */
#define KC_PS_SQLSTATE_AUTH         "KP006" /* the token was refused */

/* A relation fork, as PostgreSQL's RelFileNode plus ForkNumber. */
struct kc_ps_reltag {
    uint32_t spc; /* tablespace oid, non-zero */
    uint32_t db;  /* database oid, 0 for shared relations */
    uint32_t rel; /* relfilenode, non-zero */
    uint8_t fork; /* 0..KC_PS_FORK_MAX */
};

/* HELLO: the first frame of a connection. */
struct kc_ps_hello {
    uint16_t min_version;          /* lowest protocol version the client speaks, >= 1 */
    uint16_t max_version;          /* highest, >= min_version */
    uint32_t flags;                /* KC_PS_HELLO_* bits */
    struct kc_id tenant;           /* non-zero */
    struct kc_id timeline;         /* non-zero */
    uint64_t term;                 /* the compute's election term; 0 when read-only */
    char name[KC_PS_NAME_MAX + 1]; /* client name for logs, printable ASCII, NUL-terminated */
    const uint8_t *token;          /* token_len bytes (decoded: points into the frame) */
    uint32_t token_len;            /* 0..KC_PS_TOKEN_MAX */
};

/* HELLO_OK: the server accepted the handshake. */
struct kc_ps_hello_ok {
    uint16_t version;     /* the version both sides now speak */
    uint32_t max_payload; /* largest request payload the server now accepts */
};

/*
 * A request. type selects the fields that matter; the others are zero after
 * decoding and ignored by encoding.
 */
struct kc_ps_request {
    uint16_t type;               /* KC_PS_MSG_EXISTS .. KC_PS_MSG_SLRU */
    uint64_t id;                 /* non-zero, echoed in the response */
    uint64_t request_lsn;        /* LSN to read at, or KC_PS_LSN_LATEST */
    uint64_t not_modified_since; /* the object has not changed since this LSN */
    struct kc_ps_reltag rel;     /* EXISTS, NBLOCKS, GETPAGE */
    uint32_t blkno;              /* GETPAGE: 0..KC_PS_MAX_BLKNO */
    uint32_t spc;                /* DBSIZE: tablespace oid, non-zero */
    uint32_t db;                 /* DBSIZE: database oid, non-zero */
    uint8_t slru_kind;           /* SLRU: enum kc_ps_slru_kind */
    uint32_t segno;              /* SLRU: segment number, see kc_ps_slru_segno_max */
};

/* A response. type selects the fields that matter, as for requests. */
struct kc_ps_response {
    uint16_t type;       /* a KC_PS_MSG_*_RESP type or KC_PS_MSG_ERROR */
    uint64_t id;         /* the request's id; 0 only in a connection-level ERROR */
    uint64_t lsn;        /* answers: the LSN the answer was read at; ERROR: 0 */
    bool exists;         /* EXISTS_RESP */
    uint32_t nblocks;    /* NBLOCKS_RESP; SLRU_RESP: blocks in data (0..32) */
    int64_t db_size;     /* DBSIZE_RESP: bytes, >= 0 */
    const uint8_t *data; /* GETPAGE_RESP: KC_PS_BLCKSZ bytes; SLRU_RESP: nblocks pages.
                            Not owned: decoded, it points into the frame payload */
    char sqlstate[KC_PS_SQLSTATE_LEN + 1]; /* ERROR: five characters [0-9A-Z] */
    struct kc_error error; /* ERROR: message (non-empty), detail, hint; code unused */
};

/* "GETPAGE", "ERROR", ...; "unknown" for other values. Never NULL. */
const char *kc_ps_msg_name(uint16_t type);
/* True for the five request types. */
bool kc_ps_is_request(uint16_t type);
/* The answer type of a request type, 0 for anything else. */
uint16_t kc_ps_response_type(uint16_t request_type);
/* Highest valid segment number of an SLRU kind (0 for an unknown kind). */
uint32_t kc_ps_slru_segno_max(uint8_t kind);

/*
 * Encoders: validate the message as the decoder would, then append one frame
 * to out. Return 0, or KC_EINVAL (out unchanged) with err naming the bad
 * field. A response's text fields are read as the NUL-terminated strings of
 * struct kc_error.
 */
int kc_ps_hello_encode(struct kc_sbuf *out, const struct kc_ps_hello *h,
                       struct kc_error *err) KC_MUSTCHECK;
int kc_ps_hello_ok_encode(struct kc_sbuf *out, const struct kc_ps_hello_ok *ok,
                          struct kc_error *err) KC_MUSTCHECK;
int kc_ps_request_encode(struct kc_sbuf *out, const struct kc_ps_request *req,
                         struct kc_error *err) KC_MUSTCHECK;
int kc_ps_response_encode(struct kc_sbuf *out, const struct kc_ps_response *resp,
                          struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_ps_error_encode -- append an ERROR frame for request id (0: the
 * connection) with sqlstate and the message, detail and hint of e (its code
 * is not sent; an empty message becomes "unknown error"). Texts longer than
 * the protocol's limits are cut at the limit, and NUL-free by construction.
 * Never fails for a valid sqlstate; aborts on an invalid one (a bug).
 */
void kc_ps_error_encode(struct kc_sbuf *out, uint64_t id, const char *sqlstate,
                        const struct kc_error *e);

/*
 * Decoders: parse frame f (from kc_frame_decode) into *out. Return 0, or
 * KC_EPROTO with err filled when f is not a message of this kind (its type
 * is wrong or unknown) or its payload is malformed: wrong length, a value
 * out of range, a bad text. *out is unspecified on failure. Decoded pointers
 * (token, data) point into f's payload.
 */
int kc_ps_hello_decode(const struct kc_frame *f, struct kc_ps_hello *out,
                       struct kc_error *err) KC_MUSTCHECK;
int kc_ps_hello_ok_decode(const struct kc_frame *f, struct kc_ps_hello_ok *out,
                          struct kc_error *err) KC_MUSTCHECK;
int kc_ps_request_decode(const struct kc_frame *f, struct kc_ps_request *out,
                         struct kc_error *err) KC_MUSTCHECK;
int kc_ps_response_decode(const struct kc_frame *f, struct kc_ps_response *out,
                          struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_ps_request_check_lsns -- the LSN rules every request obeys: request_lsn
 * is not 0, and request_lsn >= not_modified_since. Returns 0, or KC_EINVAL
 * with err naming both LSNs. A violation is an error answer to that request,
 * not a malformed message (the server keeps the connection).
 */
int kc_ps_request_check_lsns(const struct kc_ps_request *req, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_ps_negotiate -- the version a server speaking [server_min, server_max]
 * chooses for a client speaking [client_min, client_max]: the highest
 * version in both ranges. Returns it, or 0 when the ranges do not meet.
 */
uint16_t kc_ps_negotiate(uint16_t client_min, uint16_t client_max, uint16_t server_min,
                         uint16_t server_max);

/*
 * kc_ps_sqlstate_to_code -- the KC_E* code a client reports for an ERROR
 * with this sqlstate: 08P01 -> KC_EPROTO; 22023, KP004 -> KC_EINVAL; 58P01,
 * KP001 -> KC_ENOTFOUND; KP003 -> KC_ETIMEDOUT; KP005 -> KC_EVERSION; XX001
 * -> KC_ECORRUPT; anything else (58030, KP002, KP006, 53300, 57P01, XX000,
 * unknown codes) -> KC_EIO, "the remote operation failed".
 */
int kc_ps_sqlstate_to_code(const char *sqlstate);

#endif
