/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pgwire.h -- server side of PostgreSQL's wire protocol 3.0: codec and startup handshake.
 *
 * Three layers, none of which does I/O (pgwire_server.h drives them over
 * sockets, docs/protocol-pgwire.md is the specification):
 *
 *  - Decoding what a client sends: the untyped startup packet
 *    (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) and the typed
 *    messages that follow it (1-byte type, int32 length counting itself, body).
 *    Decoders work on the bytes received so far: KC_EAGAIN asks for more and
 *    says how many, lengths are checked against a maximum before anything is
 *    used, and every malformed input is an error, never a crash.
 *  - Builders that append one backend message to a kc_sbuf.
 *  - The startup handshake as a state machine (struct kc_pgwire_handshake):
 *    feed it bytes, it answers SSL/GSS requests, decodes and checks the
 *    startup packet, and tells the caller when to decide authentication.
 *
 * The replication sub-protocol (commands, XLogData, keepalives, standby
 * replies) is in pgwire_repl.h. Everything here is thread-safe (no shared state).
 */
#ifndef KC_PGWIRE_H
#define KC_PGWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"

#define KC_PGWIRE_PROTOCOL(major, minor) (((uint32_t)(major) << 16) | (uint32_t)(minor))
#define KC_PGWIRE_PROTOCOL_MAJOR(v)      ((v) >> 16)
#define KC_PGWIRE_PROTOCOL_MINOR(v)      ((v)&0xffff)
/* The newest protocol version this code speaks: 3.0. */
#define KC_PGWIRE_PROTOCOL_LATEST KC_PGWIRE_PROTOCOL(3, 0)
/* Request codes sent in place of a protocol version. */
#define KC_PGWIRE_CANCEL_REQUEST_CODE KC_PGWIRE_PROTOCOL(1234, 5678)
#define KC_PGWIRE_SSL_REQUEST_CODE    KC_PGWIRE_PROTOCOL(1234, 5679)
#define KC_PGWIRE_GSSENC_REQUEST_CODE KC_PGWIRE_PROTOCOL(1234, 5680)

/* Largest startup packet, and largest message before authentication, in bytes. */
#define KC_PGWIRE_STARTUP_MAX 10240
/* Default largest body of a message from an authenticated client. */
#define KC_PGWIRE_MESSAGE_MAX_DEFAULT (1024u * 1024)
/* Largest body a builder produces (PostgreSQL's own limit, 1 GiB - 1). */
#define KC_PGWIRE_SEND_MAX 0x3fffffffu
/* Bytes of a message header: type and length. */
#define KC_PGWIRE_HEADER_SIZE 5

/* Severities of ErrorResponse and NoticeResponse. */
#define KC_PGWIRE_ERROR   "ERROR"
#define KC_PGWIRE_FATAL   "FATAL"
#define KC_PGWIRE_WARNING "WARNING"
#define KC_PGWIRE_NOTICE  "NOTICE"

/* The SQLSTATEs Kelp sends (docs/protocol-pgwire.md says when). */
#define KC_SQLSTATE_FEATURE_NOT_SUPPORTED "0A000"
#define KC_SQLSTATE_PROTOCOL_VIOLATION    "08P01"
#define KC_SQLSTATE_INVALID_PARAMETER     "22023"
#define KC_SQLSTATE_INVALID_AUTH_SPEC     "28000"
#define KC_SQLSTATE_INVALID_PASSWORD      "28P01"
#define KC_SQLSTATE_SYNTAX_ERROR          "42601"
#define KC_SQLSTATE_UNDEFINED_OBJECT      "42704"
#define KC_SQLSTATE_OUT_OF_MEMORY         "53200"
#define KC_SQLSTATE_TOO_MANY_CONNECTIONS  "53300"
#define KC_SQLSTATE_QUERY_CANCELED        "57014"
#define KC_SQLSTATE_ADMIN_SHUTDOWN        "57P01"
#define KC_SQLSTATE_INTERNAL_ERROR        "XX000"

/* Type OIDs for RowDescription. */
#define KC_PGWIRE_OID_BOOL  16u
#define KC_PGWIRE_OID_BYTEA 17u
#define KC_PGWIRE_OID_INT8  20u
#define KC_PGWIRE_OID_INT4  23u
#define KC_PGWIRE_OID_TEXT  25u

/* ---- startup packet ---------------------------------------------------- */

enum kc_pgwire_startup_kind {
    KC_PGWIRE_STARTUP_MESSAGE = 0, /* protocol 3.x StartupMessage with parameters */
    KC_PGWIRE_SSL_REQUEST,         /* the client asks for TLS */
    KC_PGWIRE_GSSENC_REQUEST,      /* the client asks for GSSAPI encryption */
    KC_PGWIRE_CANCEL_REQUEST       /* the client asks to cancel a running query */
};

/* The "replication" startup parameter. */
enum kc_pgwire_replication {
    KC_PGWIRE_REPLICATION_OFF = 0,  /* absent, false, off, no, 0: an ordinary session */
    KC_PGWIRE_REPLICATION_PHYSICAL, /* true, on, yes, 1: physical walsender */
    KC_PGWIRE_REPLICATION_DATABASE  /* database: logical walsender bound to a database */
};

struct kc_pgwire_param {
    const char *name;  /* NUL-terminated */
    const char *value; /* NUL-terminated */
};

/*
 * A decoded startup packet. Every string points into memory the struct owns;
 * kc_pgwire_startup_fini frees it. Zero-initialised is a valid empty value.
 */
struct kc_pgwire_startup {
    enum kc_pgwire_startup_kind kind;
    uint32_t code;                  /* protocol version or request code as sent */
    struct kc_pgwire_param *params; /* StartupMessage: the parameters, in order */
    size_t nparams;                 /* number of params */
    const char *user;               /* "user", NULL when absent */
    const char *database;           /* "database", or user when absent or empty */
    const char *application_name;   /* NULL when absent */
    const char *options;            /* "options" (command-line switches), NULL when absent */
    const char *replication_value;  /* "replication" as sent, NULL when absent */
    enum kc_pgwire_replication replication; /* set by kc_pgwire_handshake_feed */
    uint32_t cancel_pid;                    /* CancelRequest: the backend's process id */
    uint32_t cancel_key;                    /* CancelRequest: its secret key */
    char *mem_;                             /* owned copy of the packet body */
};

/*
 * kc_pgwire_startup_decode -- decode the startup packet at the start of
 * data[0..len).
 *
 * Returns 0 with *out filled (release it with kc_pgwire_startup_fini) and
 * *size set to the packet's total length: the caller drops that many bytes.
 * Otherwise *out is untouched and the return is:
 *   KC_EAGAIN    a valid prefix: *size is the total needed (4 until the
 *                length has arrived); call again with at least that much
 *   KC_EPROTO    the length is below 8, or a request packet has the wrong length
 *   KC_ETOOBIG   the length exceeds max_len (reported as soon as it arrives)
 *   KC_EVERSION  a protocol other than 3.x, or an unknown request code
 *   KC_EINVAL    the parameter list is malformed (unterminated string, a
 *                name without value, bytes after the terminator)
 *   KC_ENOMEM    the copy could not be allocated
 * Only the layout is checked: whether "user" is present and "replication"
 * valid is for kc_pgwire_handshake_feed. err is filled for every non-zero return.
 */
int kc_pgwire_startup_decode(const uint8_t *data, size_t len, size_t max_len,
                             struct kc_pgwire_startup *out, size_t *size,
                             struct kc_error *err) KC_MUSTCHECK;

/* Release what kc_pgwire_startup_decode allocated; su becomes empty. NULL is fine. */
void kc_pgwire_startup_fini(struct kc_pgwire_startup *su);

/* Value of the last parameter called name, or NULL. */
const char *kc_pgwire_startup_get(const struct kc_pgwire_startup *su, const char *name);

/*
 * kc_pgwire_replication_parse -- the "replication" parameter as PostgreSQL
 * reads it: "database", or a boolean (true/on/yes/1, false/off/no/0, any
 * case). KC_EINVAL with err filled (and a hint listing the values) otherwise.
 */
int kc_pgwire_replication_parse(const char *value, enum kc_pgwire_replication *out,
                                struct kc_error *err) KC_MUSTCHECK;

/* ---- typed messages ---------------------------------------------------- */

/* Frontend message types this code understands. */
#define KC_PGWIRE_MSG_QUERY     'Q'
#define KC_PGWIRE_MSG_TERMINATE 'X'
#define KC_PGWIRE_MSG_COPY_DATA 'd'
#define KC_PGWIRE_MSG_COPY_DONE 'c'
#define KC_PGWIRE_MSG_COPY_FAIL 'f'
#define KC_PGWIRE_MSG_PASSWORD  'p'
#define KC_PGWIRE_MSG_SYNC      'S'
#define KC_PGWIRE_MSG_FLUSH     'H'

/* A decoded message. payload points into the caller's buffer. */
struct kc_pgwire_msg {
    uint8_t type;           /* message type byte */
    uint32_t len;           /* body bytes, not counting type and length */
    const uint8_t *payload; /* len bytes, not NUL-terminated */
};

/*
 * kc_pgwire_msg_decode -- decode the typed message at the start of data[0..len).
 *
 * Returns 0 with *out filled and *size set to the message's total size
 * (header and body). Otherwise:
 *   KC_EAGAIN   a valid prefix; *size is the total needed (5 until the
 *               header has arrived); call again with at least that much
 *   KC_EPROTO   the length field is below 4 (it counts itself)
 *   KC_ETOOBIG  the body exceeds max_payload (reported from the header alone)
 * Any type byte is accepted: the caller decides what it understands. err is
 * filled for every non-zero return. Errors other than KC_EAGAIN are final:
 * the stream has no message boundary to resynchronise on.
 */
int kc_pgwire_msg_decode(const uint8_t *data, size_t len, size_t max_payload,
                         struct kc_pgwire_msg *out, size_t *size,
                         struct kc_error *err) KC_MUSTCHECK;

/*
 * Bodies that are one NUL-terminated string with nothing after it: Query
 * (the SQL), CopyFail (the reason), PasswordMessage in cleartext (the
 * password). *out points into m's payload. KC_EPROTO with err filled when
 * the terminator is missing, or another NUL or trailing bytes follow.
 */
int kc_pgwire_parse_query(const struct kc_pgwire_msg *m, const char **out,
                          struct kc_error *err) KC_MUSTCHECK;
int kc_pgwire_parse_copy_fail(const struct kc_pgwire_msg *m, const char **out,
                              struct kc_error *err) KC_MUSTCHECK;
int kc_pgwire_parse_password(const struct kc_pgwire_msg *m, const char **out,
                             struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_pgwire_parse_sasl_initial -- a SASLInitialResponse ('p' after
 * AuthenticationSASL): mechanism name, then int32 length (-1: no data) and
 * the data. Pointers go into m's payload; *data is NULL when absent.
 * KC_EPROTO with err filled on any inconsistency. For SCRAM, later.
 */
int kc_pgwire_parse_sasl_initial(const struct kc_pgwire_msg *m, const char **mechanism,
                                 const uint8_t **data, size_t *data_len,
                                 struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_pgwire_parse_error_response -- an ErrorResponse or NoticeResponse body
 * (for clients of Kelp's servers and for tests). Fills severity (the
 * non-localized 'V' field, else 'S'; at most 15 bytes), sqlstate (5 bytes
 * and NUL) and fields->message/detail/hint (truncated to their size);
 * fields->code is set to KC_EPROTO. Unknown fields are skipped. KC_EPROTO
 * with err filled when the body is malformed or has no message.
 */
int kc_pgwire_parse_error_response(const struct kc_pgwire_msg *m, char severity[16],
                                   char sqlstate[6], struct kc_error *fields,
                                   struct kc_error *err) KC_MUSTCHECK;

/* ---- builders: each appends one complete backend message to out ----------- */

/*
 * kc_pgwire_msg_begin -- start a message of the given type (type byte and a
 * blank length) and return its offset; append the body with kc_sbuf, then
 * kc_pgwire_msg_finish fills in the length. For messages without a builder.
 */
size_t kc_pgwire_msg_begin(struct kc_sbuf *out, uint8_t type);
/* Fill in the length of the message begun at start. Aborts when start is not
 * a message begun in out or its body exceeds KC_PGWIRE_SEND_MAX (a bug). */
void kc_pgwire_msg_finish(struct kc_sbuf *out, size_t start);

void kc_pgwire_put_auth_ok(struct kc_sbuf *out);
void kc_pgwire_put_auth_cleartext(struct kc_sbuf *out);
/* AuthenticationSASL listing n mechanism names; SASLContinue and SASLFinal. */
void kc_pgwire_put_auth_sasl(struct kc_sbuf *out, const char *const *mechanisms, size_t n);
void kc_pgwire_put_auth_sasl_continue(struct kc_sbuf *out, const void *data, size_t len);
void kc_pgwire_put_auth_sasl_final(struct kc_sbuf *out, const void *data, size_t len);
/* NegotiateProtocolVersion: the newest minor version and the options not understood. */
void kc_pgwire_put_negotiate_version(struct kc_sbuf *out, uint32_t newest_minor,
                                     const char *const *unknown, size_t n);
void kc_pgwire_put_parameter_status(struct kc_sbuf *out, const char *name, const char *value);
void kc_pgwire_put_backend_key_data(struct kc_sbuf *out, uint32_t pid, uint32_t key);
/* ReadyForQuery; status is 'I' (idle), 'T' (in a transaction) or 'E' (failed transaction). */
void kc_pgwire_put_ready_for_query(struct kc_sbuf *out, char status);

/* A result column: text format; typlen is derived from the type OID. */
struct kc_pgwire_column {
    const char *name;  /* column name */
    uint32_t type_oid; /* KC_PGWIRE_OID_* */
};
void kc_pgwire_put_row_description(struct kc_sbuf *out, const struct kc_pgwire_column *cols,
                                   size_t n);
/*
 * kc_pgwire_put_data_row -- one row of n text values; values[i] NULL is SQL
 * NULL. lens gives each value's length (values may then hold any bytes), or
 * is NULL to use strlen. KC_ETOOBIG (out unchanged) when the row would
 * exceed KC_PGWIRE_SEND_MAX.
 */
int kc_pgwire_put_data_row(struct kc_sbuf *out, const char *const *values, const size_t *lens,
                           size_t n, struct kc_error *err) KC_MUSTCHECK;
void kc_pgwire_put_command_complete(struct kc_sbuf *out, const char *tag);
void kc_pgwire_put_empty_query(struct kc_sbuf *out);

/*
 * ErrorResponse / NoticeResponse from a kc_error: severity (KC_PGWIRE_ERROR,
 * KC_PGWIRE_FATAL, KC_PGWIRE_NOTICE, ...), a 5-character SQLSTATE, the
 * message ("internal error" when err is NULL or its message empty), the
 * detail and hint when set.
 */
void kc_pgwire_put_error(struct kc_sbuf *out, const char *severity, const char *sqlstate,
                         const struct kc_error *err);
void kc_pgwire_put_notice(struct kc_sbuf *out, const char *severity, const char *sqlstate,
                          const struct kc_error *err);

/* CopyBothResponse / CopyOutResponse: text format, ncols columns (0 for replication). */
void kc_pgwire_put_copy_both_response(struct kc_sbuf *out, uint16_t ncols);
void kc_pgwire_put_copy_out_response(struct kc_sbuf *out, uint16_t ncols);
/* CopyData carrying len bytes; KC_ETOOBIG (out unchanged) above KC_PGWIRE_SEND_MAX. */
int kc_pgwire_put_copy_data(struct kc_sbuf *out, const void *data, size_t len,
                            struct kc_error *err) KC_MUSTCHECK;
void kc_pgwire_put_copy_done(struct kc_sbuf *out);

/* ---- the startup handshake --------------------------------------------- */

enum kc_pgwire_hs_state {
    KC_PGWIRE_HS_STARTUP = 0, /* reading the startup packet (or an SSL/GSS request) */
    KC_PGWIRE_HS_AUTH,        /* startup accepted: the caller decides authentication */
    KC_PGWIRE_HS_PASSWORD,    /* AuthenticationCleartextPassword sent: reading the answer */
    KC_PGWIRE_HS_DONE,        /* authenticated: typed messages follow */
    KC_PGWIRE_HS_FAILED       /* over: flush what was written to out, then close */
};

/* What kc_pgwire_handshake_feed asks of the caller when it returns 0. */
enum kc_pgwire_hs_event {
    KC_PGWIRE_HS_EV_REPLIED = 0, /* an SSL/GSS request was answered 'N' in out: feed the rest */
    KC_PGWIRE_HS_EV_STARTUP,     /* hs->startup is valid: accept, ask_password or reject */
    KC_PGWIRE_HS_EV_PASSWORD,    /* hs->password arrived: accept or reject */
    KC_PGWIRE_HS_EV_CANCEL,      /* a CancelRequest (hs->startup.cancel_*): close, no reply */
    KC_PGWIRE_HS_EV_CLOSE        /* the client said Terminate: close, no reply */
};

/* One connection's handshake. Not thread-safe; owned by one connection. */
struct kc_pgwire_handshake {
    enum kc_pgwire_hs_state state;
    bool ssl_answered;                /* an SSLRequest was answered 'N' */
    bool gss_answered;                /* a GSSENCRequest was answered 'N' */
    struct kc_pgwire_startup startup; /* the StartupMessage, valid from HS_AUTH on */
    char *password;                   /* the cleartext password, owned, NULL until sent */
};

void kc_pgwire_handshake_init(struct kc_pgwire_handshake *hs);
/* Free what the handshake owns (the startup packet, the password, wiped). */
void kc_pgwire_handshake_fini(struct kc_pgwire_handshake *hs);

/*
 * kc_pgwire_handshake_feed -- advance the handshake with the bytes received
 * so far, data[0..len), in state HS_STARTUP or HS_PASSWORD.
 *
 * Sets *consumed to the bytes used (drop them) and appends any reply to out.
 * Returns 0 with *ev saying what happened (see enum kc_pgwire_hs_event),
 * KC_EAGAIN when a whole packet has not arrived yet (nothing consumed), or
 * a negative error when the client broke the protocol or sent unacceptable
 * parameters: a FATAL ErrorResponse with the SQLSTATE is then in out, err
 * holds the same text, and the state is HS_FAILED. The checks: the packet
 * layout (kc_pgwire_startup_decode), protocol 3.x (NegotiateProtocolVersion
 * is sent for 3.1+ or "_pq_." options), a "user" parameter, a valid
 * "replication" value, at most one SSL and one GSS request, and no bytes
 * pipelined behind an SSL or GSS request (they would bypass encryption once
 * TLS exists). Before authentication every message is limited to
 * KC_PGWIRE_STARTUP_MAX bytes.
 */
int kc_pgwire_handshake_feed(struct kc_pgwire_handshake *hs, const uint8_t *data, size_t len,
                             size_t *consumed, enum kc_pgwire_hs_event *ev, struct kc_sbuf *out,
                             struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_pgwire_handshake_accept -- authentication succeeded (state HS_AUTH or
 * HS_PASSWORD): append AuthenticationOk, a ParameterStatus per params[i],
 * BackendKeyData(pid, key) and ReadyForQuery('I'); the state becomes HS_DONE.
 */
void kc_pgwire_handshake_accept(struct kc_pgwire_handshake *hs,
                                const struct kc_pgwire_param *params, size_t nparams, uint32_t pid,
                                uint32_t key, struct kc_sbuf *out);
/* In HS_AUTH: append AuthenticationCleartextPassword; the state becomes HS_PASSWORD. */
void kc_pgwire_handshake_ask_password(struct kc_pgwire_handshake *hs, struct kc_sbuf *out);
/* Refuse: append a FATAL ErrorResponse (sqlstate, err); the state becomes HS_FAILED. */
void kc_pgwire_handshake_reject(struct kc_pgwire_handshake *hs, const char *sqlstate,
                                const struct kc_error *err, struct kc_sbuf *out);

#endif
