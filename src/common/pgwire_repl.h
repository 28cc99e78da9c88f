/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pgwire_repl.h -- PostgreSQL's physical streaming replication sub-protocol: commands and messages.
 *
 * A client that connects with replication=true (pg_receivewal, a standby's
 * walreceiver, Kelp's pageserver) sends replication commands as simple
 * queries and, after START_REPLICATION, exchanges CopyData messages whose
 * first byte says what they carry:
 *
 *   server -> client   'w' XLogData: WAL bytes at a position
 *                      'k' primary keepalive: end of WAL, "reply now" flag
 *   client -> server   'r' standby status update: written/flushed/applied positions
 *                      'h' hot standby feedback: the standby's xmin
 *
 * This header parses the command grammar of PostgreSQL 15 (repl_gram.y) into
 * a struct, builds the replies of the commands Kelp answers, and encodes and
 * decodes the four CopyData messages: the one codec of these messages, for
 * Kelp's servers (CopyData builders) and for its libpq client walstream.h
 * (payload encoders). No I/O; thread-safe.
 * docs/protocol-pgwire.md lists the commands, their replies and what is refused.
 */
#ifndef KC_PGWIRE_REPL_H
#define KC_PGWIRE_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/lsn.h"

/* Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC). */
#define KC_PGWIRE_EPOCH_OFFSET_US INT64_C(946684800000000)

/*
 * kc_pgwire_time -- PostgreSQL's TimestampTz (microseconds since
 * 2000-01-01 UTC) for a Unix time in microseconds: the one conversion
 * between the two epochs, for servers and clients alike.
 */
static inline int64_t kc_pgwire_time(int64_t unix_us)
{
    return unix_us - KC_PGWIRE_EPOCH_OFFSET_US;
}

/* PostgreSQL's TimestampTz for now: kc_pgwire_time() of CLOCK_REALTIME. */
int64_t kc_pgwire_now(void);

/* ---- CopyData messages of the replication stream ---------------------- */

#define KC_PGWIRE_REPL_XLOG_DATA      'w'
#define KC_PGWIRE_REPL_KEEPALIVE      'k'
#define KC_PGWIRE_REPL_STANDBY_STATUS 'r'
#define KC_PGWIRE_REPL_HS_FEEDBACK    'h'
/* The kinds each side sends, for kc_pgwire_repl_msg_parse_kinds(). */
#define KC_PGWIRE_REPL_FROM_SERVER "wk"
#define KC_PGWIRE_REPL_FROM_CLIENT "rh"

/* Payload sizes in bytes, type byte included. */
#define KC_PGWIRE_XLOG_DATA_HEADER   25 /* 'w', start, end, send time: bytes before the WAL */
#define KC_PGWIRE_KEEPALIVE_LEN      18 /* 'k', end, send time, reply-requested */
#define KC_PGWIRE_STANDBY_STATUS_LEN 34 /* 'r', write, flush, apply, send time, reply-requested */
#define KC_PGWIRE_HS_FEEDBACK_LEN    25 /* 'h', send time, xmin, its epoch, catalog xmin, epoch */

struct kc_pgwire_xlog_data {
    kc_lsn start;        /* WAL position of data[0] */
    kc_lsn end;          /* the sender's end of WAL */
    int64_t send_time;   /* TimestampTz */
    const uint8_t *data; /* the WAL bytes; points into the parsed message */
    size_t len;          /* bytes of data */
};

struct kc_pgwire_keepalive {
    kc_lsn end;           /* the sender's end of WAL */
    int64_t send_time;    /* TimestampTz */
    bool reply_requested; /* the receiver should answer with a status update now */
};

struct kc_pgwire_standby_status {
    kc_lsn write;         /* last WAL byte + 1 written by the standby */
    kc_lsn flush;         /* ... flushed to durable storage */
    kc_lsn apply;         /* ... applied (replayed) */
    int64_t send_time;    /* TimestampTz */
    bool reply_requested; /* the standby asks for a keepalive at once */
};

struct kc_pgwire_hs_feedback {
    int64_t send_time;           /* TimestampTz */
    uint32_t xmin;               /* the standby's oldest xmin, 0 when none */
    uint32_t xmin_epoch;         /* its epoch */
    uint32_t catalog_xmin;       /* oldest catalog xmin of its slots, 0 when none */
    uint32_t catalog_xmin_epoch; /* its epoch */
};

/*
 * A parsed replication CopyData payload. kind says which member of u is
 * filled; the parser zeroes the others (u is a struct, not a union, so a
 * caller that reads the wrong member sees zeros, never another kind's bytes).
 */
struct kc_pgwire_repl_msg {
    uint8_t kind; /* KC_PGWIRE_REPL_XLOG_DATA, _KEEPALIVE, _STANDBY_STATUS or _HS_FEEDBACK */
    struct {
        struct kc_pgwire_xlog_data xlog;
        struct kc_pgwire_keepalive keepalive;
        struct kc_pgwire_standby_status status;
        struct kc_pgwire_hs_feedback feedback;
    } u;
};

/*
 * kc_pgwire_repl_msg_parse -- parse the payload of one CopyData message
 * (the bytes after its header, as PQgetCopyData returns them) of any of the
 * four kinds. XLogData's data points into the input. KC_EPROTO with err
 * filled (naming the kind and the problem) for anything these rules refuse;
 * *out holds nothing useful then.
 *
 * The rules are those of PostgreSQL 15's walreceiver (XLogWalRcvProcessMsg)
 * for what a server sends and of its walsender (ProcessStandbyMessage) for
 * what a client sends, with two stricter checks of Kelp's own:
 *
 *   'w'  at least the 25-byte header; the rest is WAL, possibly none. Kelp
 *        also refuses a start + len past the largest LSN (PostgreSQL does
 *        not look).
 *   'k'  exactly 18 bytes: trailing bytes are an error, as in the
 *        walreceiver ("invalid keepalive message"). The reply-requested
 *        byte must be 0 or 1 (Kelp's check: PostgreSQL reads any non-zero
 *        byte as true, and its walsender sends only 0 or 1).
 *   'r'  at least 34 bytes, 'h' at least 25: bytes after the fields are
 *        ignored and a non-zero reply-requested byte is true, as in the
 *        walsender, which never checks for the end of these messages.
 *   an empty payload, or any other type byte: an error.
 */
int kc_pgwire_repl_msg_parse(const uint8_t *data, size_t len, struct kc_pgwire_repl_msg *out,
                             struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_pgwire_repl_msg_parse_kinds -- kc_pgwire_repl_msg_parse accepting only
 * the type bytes in kinds: KC_PGWIRE_REPL_FROM_SERVER for a client reading
 * the server's messages, KC_PGWIRE_REPL_FROM_CLIENT for a server reading the
 * client's. Any other type is KC_EPROTO ("unexpected" for a known type sent
 * by the wrong side, "unknown" otherwise) before its fields are read.
 */
int kc_pgwire_repl_msg_parse_kinds(const uint8_t *data, size_t len, const char *kinds,
                                   struct kc_pgwire_repl_msg *out,
                                   struct kc_error *err) KC_MUSTCHECK;

/*
 * Encoders: each appends the payload of one message (type byte first,
 * KC_PGWIRE_*_LEN bytes; XLogData: its header, then the WAL) to out,
 * without a CopyData header: what a libpq client hands to PQputCopyData.
 * Negative times keep their bits. The kc_pgwire_put_* builders below frame
 * the same bytes as CopyData for a server.
 */
void kc_pgwire_repl_encode_xlog_data(struct kc_sbuf *out, kc_lsn start, kc_lsn end,
                                     int64_t send_time, const void *data, size_t len);
void kc_pgwire_repl_encode_keepalive(struct kc_sbuf *out, kc_lsn end, int64_t send_time,
                                     bool reply_requested);
void kc_pgwire_repl_encode_standby_status(struct kc_sbuf *out,
                                          const struct kc_pgwire_standby_status *s);
void kc_pgwire_repl_encode_hs_feedback(struct kc_sbuf *out, const struct kc_pgwire_hs_feedback *f);

/*
 * Builders: each appends one whole CopyData message (header and the
 * encoder's payload) to out. XLogData fails with KC_ETOOBIG (out unchanged)
 * when len is above KC_PGWIRE_SEND_MAX minus its header.
 */
int kc_pgwire_put_xlog_data(struct kc_sbuf *out, kc_lsn start, kc_lsn end, int64_t send_time,
                            const void *data, size_t len, struct kc_error *err) KC_MUSTCHECK;
void kc_pgwire_put_keepalive(struct kc_sbuf *out, kc_lsn end, int64_t send_time,
                             bool reply_requested);
void kc_pgwire_put_standby_status(struct kc_sbuf *out, const struct kc_pgwire_standby_status *s);
void kc_pgwire_put_hs_feedback(struct kc_sbuf *out, const struct kc_pgwire_hs_feedback *f);

/* ---- replication commands ---------------------------------------------- */

enum kc_pgwire_repl_kind {
    KC_PGWIRE_CMD_SQL = 0,               /* not a replication command: plain SQL */
    KC_PGWIRE_CMD_IDENTIFY_SYSTEM,       /* IDENTIFY_SYSTEM */
    KC_PGWIRE_CMD_TIMELINE_HISTORY,      /* TIMELINE_HISTORY tli */
    KC_PGWIRE_CMD_START_REPLICATION,     /* START_REPLICATION [SLOT s] [PHYSICAL|LOGICAL] X/X ... */
    KC_PGWIRE_CMD_SHOW,                  /* SHOW name */
    KC_PGWIRE_CMD_READ_REPLICATION_SLOT, /* READ_REPLICATION_SLOT s */
    KC_PGWIRE_CMD_CREATE_REPLICATION_SLOT, /* CREATE_REPLICATION_SLOT s [TEMPORARY] kind ... */
    KC_PGWIRE_CMD_DROP_REPLICATION_SLOT,   /* DROP_REPLICATION_SLOT s [WAIT] */
    KC_PGWIRE_CMD_BASE_BACKUP              /* BASE_BACKUP [(options)] */
};

/* Longest identifier (PostgreSQL's NAMEDATALEN - 1) and SHOW name, in bytes. */
#define KC_PGWIRE_IDENT_MAX 63
#define KC_PGWIRE_NAME_MAX  255

/* A parsed replication command. Fields a command does not use are zero/empty. */
struct kc_pgwire_repl_cmd {
    enum kc_pgwire_repl_kind kind;
    char slot[KC_PGWIRE_IDENT_MAX + 1];   /* slot name; "" when none was given */
    char plugin[KC_PGWIRE_IDENT_MAX + 1]; /* CREATE_REPLICATION_SLOT ... LOGICAL plugin */
    char name[KC_PGWIRE_NAME_MAX + 1];    /* SHOW: the setting, dotted parts joined */
    bool logical;                         /* START_REPLICATION / CREATE_REPLICATION_SLOT LOGICAL */
    bool temporary;                       /* CREATE_REPLICATION_SLOT ... TEMPORARY */
    bool wait;                            /* DROP_REPLICATION_SLOT ... WAIT */
    bool has_options;                     /* a parenthesized option list was given (ignored) */
    kc_lsn start;                         /* START_REPLICATION: where to start */
    uint32_t timeline; /* START_REPLICATION TIMELINE (0: absent), TIMELINE_HISTORY */
};

/*
 * kc_pgwire_repl_parse -- parse sql as PostgreSQL 15's walsender does.
 *
 * Keywords are upper case and case-sensitive; unquoted identifiers are
 * folded to lower case, "double-quoted" ones are kept as written ("" is a
 * quote); a trailing ';' is allowed. When the first word is not a
 * replication keyword, returns 0 with kind KC_PGWIRE_CMD_SQL (a walsender
 * would run it as SQL, or refuse it on a physical connection). Otherwise
 * returns 0 with *out filled, or KC_EINVAL with err filled for a syntax
 * error (send it with KC_SQLSTATE_SYNTAX_ERROR): the message names the
 * token where parsing stopped. Option lists are checked for balance and
 * skipped; the caller decides what to serve.
 */
int kc_pgwire_repl_parse(const char *sql, struct kc_pgwire_repl_cmd *out,
                         struct kc_error *err) KC_MUSTCHECK;

/* The command's keyword ("IDENTIFY_SYSTEM", ...; "SQL" for KC_PGWIRE_CMD_SQL). */
const char *kc_pgwire_repl_kind_name(enum kc_pgwire_repl_kind kind);

/*
 * kc_pgwire_repl_unsupported -- fill err for a command Kelp refuses (slots,
 * logical replication, BASE_BACKUP, SQL on a physical connection): the
 * message names the command, the hint says what to use instead. Send it
 * with KC_SQLSTATE_FEATURE_NOT_SUPPORTED. Returns KC_EINVAL.
 */
int kc_pgwire_repl_unsupported(const struct kc_pgwire_repl_cmd *cmd, struct kc_error *err);

/* ---- replies ------------------------------------------------------------ */

/*
 * Each appends the whole reply of one command (RowDescription, DataRow,
 * CommandComplete) to out, in the column names and types of PostgreSQL 15;
 * the caller then sends ReadyForQuery.
 *
 * IDENTIFY_SYSTEM: systemid (text, decimal), timeline (int4), xlogpos (text
 * X/X), dbname (text; NULL on a physical connection).
 */
void kc_pgwire_repl_put_identify_system(struct kc_sbuf *out, uint64_t sysid, uint32_t timeline,
                                        kc_lsn xlogpos, const char *dbname);
/* TIMELINE_HISTORY: filename ("%08X.history") and content (text). KC_ETOOBIG above the limit. */
int kc_pgwire_repl_put_timeline_history(struct kc_sbuf *out, uint32_t timeline, const void *content,
                                        size_t len, struct kc_error *err) KC_MUSTCHECK;
/*
 * READ_REPLICATION_SLOT: slot_type, restart_lsn (text), restart_tli (int8).
 * slot_type NULL means "no such slot": all three columns are NULL.
 */
void kc_pgwire_repl_put_read_slot(struct kc_sbuf *out, const char *slot_type, kc_lsn restart_lsn,
                                  uint32_t restart_tli);
/* SHOW: one text column named after the setting. */
void kc_pgwire_repl_put_show(struct kc_sbuf *out, const char *name, const char *value);

#endif
