/* SPDX-License-Identifier: Apache-2.0 */
/* pgwire_repl.c -- replication command grammar, replies and CopyData messages of physical
 * replication. */
#include "common/pgwire_repl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pgwire.h"

int64_t kc_pgwire_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return kc_pgwire_time((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/* ---- CopyData messages: parsing ---------------------------------------- */

static int kc_repl_truncated(struct kc_error *err, const char *what, size_t len, const char *needs,
                             unsigned need)
{
    return kc_error_set(err, KC_EPROTO, "truncated %s message: %zu bytes, %s %u", what, len, needs,
                        need);
}

/* The four type bytes kc_pgwire_repl_msg_parse knows. */
#define KC_REPL_ALL_KINDS "wkrh"

/* A type byte that is not in kinds: "unexpected" when known, "unknown" otherwise. */
static int kc_repl_bad_kind(uint8_t kind, const char *kinds, struct kc_error *err)
{
    const char *word =
        kind != 0 && strchr(KC_REPL_ALL_KINDS, kind) != NULL ? "unexpected" : "unknown";
    char list[64] = "";
    size_t n = 0;

    if (isprint(kind))
        kc_error_set(err, KC_EPROTO, "%s replication message type '%c'", word, kind);
    else
        kc_error_set(err, KC_EPROTO, "%s replication message type 0x%02X", word, kind);
    for (size_t i = 0; kinds[i] != '\0' && n + 8 < sizeof(list); i++) {
        const char *sep = i == 0 ? "" : kinds[i + 1] == '\0' ? " or " : ", ";
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s'%c'", sep, kinds[i]);
    }
    kc_error_detail(err, "Expected type %s.", list);
    return KC_EPROTO;
}

static int kc_repl_parse_xlog(struct kc_buf *b, size_t len, struct kc_pgwire_xlog_data *x,
                              struct kc_error *err)
{
    char lsn[KC_LSN_STRLEN];
    uint64_t t;

    if (!kc_buf_get_u64(b, &x->start) || !kc_buf_get_u64(b, &x->end) || !kc_buf_get_u64(b, &t))
        return kc_repl_truncated(err, "XLogData", len, "the header needs",
                                 KC_PGWIRE_XLOG_DATA_HEADER);
    x->send_time = (int64_t)t;
    x->len = kc_buf_remaining(b);
    if (!kc_buf_get_ref(b, &x->data, x->len)) /* cannot fail: exactly what remains */
        return kc_repl_truncated(err, "XLogData", len, "the header needs",
                                 KC_PGWIRE_XLOG_DATA_HEADER);
    if (x->len > UINT64_MAX - x->start) {
        kc_error_set(err, KC_EPROTO,
                     "XLogData message of %zu bytes at %s runs past the end of the WAL", x->len,
                     kc_lsn_format(x->start, lsn));
        kc_error_detail(err, "Its last byte would lie beyond FFFFFFFF/FFFFFFFF, the largest WAL "
                             "position.");
        return KC_EPROTO;
    }
    return 0;
}

static int kc_repl_parse_keepalive(struct kc_buf *b, size_t len, struct kc_pgwire_keepalive *k,
                                   struct kc_error *err)
{
    uint64_t t;
    uint8_t reply;

    if (!kc_buf_get_u64(b, &k->end) || !kc_buf_get_u64(b, &t) || !kc_buf_get_u8(b, &reply))
        return kc_repl_truncated(err, "keepalive", len, "need", KC_PGWIRE_KEEPALIVE_LEN);
    if (kc_buf_remaining(b) != 0) {
        kc_error_set(err, KC_EPROTO, "keepalive message has %zu trailing bytes",
                     kc_buf_remaining(b));
        kc_error_detail(err, "A keepalive is exactly %u bytes.", KC_PGWIRE_KEEPALIVE_LEN);
        return KC_EPROTO;
    }
    if (reply > 1)
        return kc_error_set(err, KC_EPROTO,
                            "keepalive message has reply-requested byte %u, not 0 or 1", reply);
    k->send_time = (int64_t)t;
    k->reply_requested = reply == 1;
    return 0;
}

static int kc_repl_parse_status(struct kc_buf *b, size_t len, struct kc_pgwire_standby_status *s,
                                struct kc_error *err)
{
    uint64_t t;
    uint8_t reply;

    if (!kc_buf_get_u64(b, &s->write) || !kc_buf_get_u64(b, &s->flush) ||
        !kc_buf_get_u64(b, &s->apply) || !kc_buf_get_u64(b, &t) || !kc_buf_get_u8(b, &reply))
        return kc_repl_truncated(err, "standby status update", len, "need",
                                 KC_PGWIRE_STANDBY_STATUS_LEN);
    s->send_time = (int64_t)t;
    s->reply_requested = reply != 0;
    return 0;
}

static int kc_repl_parse_feedback(struct kc_buf *b, size_t len, struct kc_pgwire_hs_feedback *f,
                                  struct kc_error *err)
{
    uint64_t t;

    if (!kc_buf_get_u64(b, &t) || !kc_buf_get_u32(b, &f->xmin) ||
        !kc_buf_get_u32(b, &f->xmin_epoch) || !kc_buf_get_u32(b, &f->catalog_xmin) ||
        !kc_buf_get_u32(b, &f->catalog_xmin_epoch))
        return kc_repl_truncated(err, "hot standby feedback", len, "need",
                                 KC_PGWIRE_HS_FEEDBACK_LEN);
    f->send_time = (int64_t)t;
    return 0;
}

int kc_pgwire_repl_msg_parse_kinds(const uint8_t *data, size_t len, const char *kinds,
                                   struct kc_pgwire_repl_msg *out, struct kc_error *err)
{
    struct kc_buf b;
    uint8_t kind;

    memset(out, 0, sizeof(*out));
    kc_buf_init(&b, data, len);
    if (!kc_buf_get_u8(&b, &kind))
        return kc_error_set(err, KC_EPROTO, "empty replication message");
    if (kind == 0 || strchr(kinds, kind) == NULL)
        return kc_repl_bad_kind(kind, kinds, err);
    out->kind = kind;
    switch (kind) {
    case KC_PGWIRE_REPL_XLOG_DATA: return kc_repl_parse_xlog(&b, len, &out->u.xlog, err);
    case KC_PGWIRE_REPL_KEEPALIVE: return kc_repl_parse_keepalive(&b, len, &out->u.keepalive, err);
    case KC_PGWIRE_REPL_STANDBY_STATUS: return kc_repl_parse_status(&b, len, &out->u.status, err);
    case KC_PGWIRE_REPL_HS_FEEDBACK: return kc_repl_parse_feedback(&b, len, &out->u.feedback, err);
    default: /* kinds named a byte that is no type */
        return kc_repl_bad_kind(kind, KC_REPL_ALL_KINDS, err);
    }
}

int kc_pgwire_repl_msg_parse(const uint8_t *data, size_t len, struct kc_pgwire_repl_msg *out,
                             struct kc_error *err)
{
    return kc_pgwire_repl_msg_parse_kinds(data, len, KC_REPL_ALL_KINDS, out, err);
}

/* ---- CopyData messages: payload encoders and CopyData builders ---------- */

void kc_pgwire_repl_encode_xlog_data(struct kc_sbuf *out, kc_lsn start, kc_lsn end,
                                     int64_t send_time, const void *data, size_t len)
{
    kc_sbuf_reserve(out, KC_PGWIRE_XLOG_DATA_HEADER + len);
    kc_sbuf_put_u8(out, KC_PGWIRE_REPL_XLOG_DATA);
    kc_sbuf_put_u64(out, start);
    kc_sbuf_put_u64(out, end);
    kc_sbuf_put_u64(out, (uint64_t)send_time);
    kc_sbuf_append(out, data, len);
}

void kc_pgwire_repl_encode_keepalive(struct kc_sbuf *out, kc_lsn end, int64_t send_time,
                                     bool reply_requested)
{
    kc_sbuf_put_u8(out, KC_PGWIRE_REPL_KEEPALIVE);
    kc_sbuf_put_u64(out, end);
    kc_sbuf_put_u64(out, (uint64_t)send_time);
    kc_sbuf_put_u8(out, reply_requested ? 1 : 0);
}

void kc_pgwire_repl_encode_standby_status(struct kc_sbuf *out,
                                          const struct kc_pgwire_standby_status *s)
{
    kc_sbuf_put_u8(out, KC_PGWIRE_REPL_STANDBY_STATUS);
    kc_sbuf_put_u64(out, s->write);
    kc_sbuf_put_u64(out, s->flush);
    kc_sbuf_put_u64(out, s->apply);
    kc_sbuf_put_u64(out, (uint64_t)s->send_time);
    kc_sbuf_put_u8(out, s->reply_requested ? 1 : 0);
}

void kc_pgwire_repl_encode_hs_feedback(struct kc_sbuf *out, const struct kc_pgwire_hs_feedback *f)
{
    kc_sbuf_put_u8(out, KC_PGWIRE_REPL_HS_FEEDBACK);
    kc_sbuf_put_u64(out, (uint64_t)f->send_time);
    kc_sbuf_put_u32(out, f->xmin);
    kc_sbuf_put_u32(out, f->xmin_epoch);
    kc_sbuf_put_u32(out, f->catalog_xmin);
    kc_sbuf_put_u32(out, f->catalog_xmin_epoch);
}

int kc_pgwire_put_xlog_data(struct kc_sbuf *out, kc_lsn start, kc_lsn end, int64_t send_time,
                            const void *data, size_t len, struct kc_error *err)
{
    size_t m;

    if (len > KC_PGWIRE_SEND_MAX - KC_PGWIRE_XLOG_DATA_HEADER) {
        kc_error_set(err, KC_ETOOBIG, "XLogData of %zu bytes is too large to send", len);
        kc_error_detail(err, "A message carries at most %u bytes of WAL.",
                        KC_PGWIRE_SEND_MAX - KC_PGWIRE_XLOG_DATA_HEADER);
        return KC_ETOOBIG;
    }
    m = kc_pgwire_msg_begin(out, KC_PGWIRE_MSG_COPY_DATA);
    kc_pgwire_repl_encode_xlog_data(out, start, end, send_time, data, len);
    kc_pgwire_msg_finish(out, m);
    return 0;
}

void kc_pgwire_put_keepalive(struct kc_sbuf *out, kc_lsn end, int64_t send_time,
                             bool reply_requested)
{
    size_t m = kc_pgwire_msg_begin(out, KC_PGWIRE_MSG_COPY_DATA);

    kc_pgwire_repl_encode_keepalive(out, end, send_time, reply_requested);
    kc_pgwire_msg_finish(out, m);
}

void kc_pgwire_put_standby_status(struct kc_sbuf *out, const struct kc_pgwire_standby_status *s)
{
    size_t m = kc_pgwire_msg_begin(out, KC_PGWIRE_MSG_COPY_DATA);

    kc_pgwire_repl_encode_standby_status(out, s);
    kc_pgwire_msg_finish(out, m);
}

void kc_pgwire_put_hs_feedback(struct kc_sbuf *out, const struct kc_pgwire_hs_feedback *f)
{
    size_t m = kc_pgwire_msg_begin(out, KC_PGWIRE_MSG_COPY_DATA);

    kc_pgwire_repl_encode_hs_feedback(out, f);
    kc_pgwire_msg_finish(out, m);
}

/* ---- the command lexer (repl_scanner.l's tokens) ------------------------ */

enum kc_repl_tok {
    KC_TOK_EOF = 0,
    KC_TOK_KEYWORD, /* kw says which */
    KC_TOK_IDENT,   /* text holds the (folded or unquoted) identifier */
    KC_TOK_UCONST,  /* uval */
    KC_TOK_RECPTR,  /* lsn */
    KC_TOK_SCONST,  /* a 'string' (only in option lists, not kept) */
    KC_TOK_CHAR     /* any other single character: ch */
};

/* Keywords; the order matches kc_repl_keywords. */
enum kc_repl_kw {
    KC_KW_NONE = -1,
    KC_KW_BASE_BACKUP,
    KC_KW_IDENTIFY_SYSTEM,
    KC_KW_READ_REPLICATION_SLOT,
    KC_KW_SHOW,
    KC_KW_TIMELINE,
    KC_KW_START_REPLICATION,
    KC_KW_CREATE_REPLICATION_SLOT,
    KC_KW_DROP_REPLICATION_SLOT,
    KC_KW_TIMELINE_HISTORY,
    KC_KW_PHYSICAL,
    KC_KW_RESERVE_WAL,
    KC_KW_LOGICAL,
    KC_KW_SLOT,
    KC_KW_TEMPORARY,
    KC_KW_TWO_PHASE,
    KC_KW_EXPORT_SNAPSHOT,
    KC_KW_NOEXPORT_SNAPSHOT,
    KC_KW_USE_SNAPSHOT,
    KC_KW_WAIT
};

static const char *const kc_repl_keywords[] = {"BASE_BACKUP",
                                               "IDENTIFY_SYSTEM",
                                               "READ_REPLICATION_SLOT",
                                               "SHOW",
                                               "TIMELINE",
                                               "START_REPLICATION",
                                               "CREATE_REPLICATION_SLOT",
                                               "DROP_REPLICATION_SLOT",
                                               "TIMELINE_HISTORY",
                                               "PHYSICAL",
                                               "RESERVE_WAL",
                                               "LOGICAL",
                                               "SLOT",
                                               "TEMPORARY",
                                               "TWO_PHASE",
                                               "EXPORT_SNAPSHOT",
                                               "NOEXPORT_SNAPSHOT",
                                               "USE_SNAPSHOT",
                                               "WAIT"};

struct kc_repl_token {
    enum kc_repl_tok kind;
    enum kc_repl_kw kw;
    char text[KC_PGWIRE_NAME_MAX + 1]; /* identifier value, NUL-terminated */
    bool too_long;                     /* the identifier had more than KC_PGWIRE_NAME_MAX bytes */
    uint64_t uval;                     /* KC_TOK_UCONST */
    kc_lsn lsn;                        /* KC_TOK_RECPTR */
    char ch;                           /* KC_TOK_CHAR */
    const char *raw;                   /* where the token starts in the input (for errors) */
};

struct kc_repl_parser {
    const char *s;            /* the command */
    size_t pos;               /* next byte to scan */
    struct kc_repl_token tok; /* the current token */
    struct kc_error *err;     /* where errors go (may be NULL) */
};

static bool kc_repl_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static bool kc_repl_is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool kc_repl_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool kc_repl_ident_cont(unsigned char c)
{
    return kc_repl_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Append c to the token text, noting overflow. */
static void kc_repl_text_add(struct kc_repl_token *t, size_t *n, char c)
{
    if (*n < KC_PGWIRE_NAME_MAX) {
        t->text[(*n)++] = c;
        t->text[*n] = '\0';
    } else {
        t->too_long = true;
    }
}

static int kc_repl_syntax(struct kc_repl_parser *p, const char *detail)
{
    const char *at = p->tok.raw;
    size_t n = strcspn(at, " \t\n\r\f");

    if (n == 0)
        n = 1;
    if (n > 40)
        n = 40;
    if (p->tok.kind == KC_TOK_EOF)
        kc_error_set(p->err, KC_EINVAL, "syntax error at end of replication command");
    else
        kc_error_set(p->err, KC_EINVAL, "syntax error in replication command at or near \"%.*s\"",
                     (int)n, at);
    if (detail != NULL)
        kc_error_detail(p->err, "%s", detail);
    return KC_EINVAL;
}

/* A quoted token: 'string' or "identifier", with doubled quotes inside. */
static int kc_repl_lex_quoted(struct kc_repl_parser *p, char quote)
{
    struct kc_repl_token *t = &p->tok;
    size_t n = 0;

    p->pos++;
    for (;;) {
        char c = p->s[p->pos];

        if (c == '\0') {
            kc_error_set(p->err, KC_EINVAL, "unterminated quoted string in replication command");
            return KC_EINVAL;
        }
        p->pos++;
        if (c == quote) {
            if (p->s[p->pos] != quote)
                break;
            p->pos++;
        }
        kc_repl_text_add(t, &n, c);
    }
    t->kind = quote == '"' ? KC_TOK_IDENT : KC_TOK_SCONST;
    if (quote == '"' && n == 0 && !t->too_long) {
        kc_error_set(p->err, KC_EINVAL, "zero-length delimited identifier in replication command");
        return KC_EINVAL;
    }
    return 0;
}

/* A word: a keyword when it matches one exactly, else an identifier folded to lower case. */
static void kc_repl_lex_word(struct kc_repl_parser *p)
{
    struct kc_repl_token *t = &p->tok;
    size_t start = p->pos, n = 0;

    while (kc_repl_ident_cont((unsigned char)p->s[p->pos]))
        p->pos++;
    for (size_t i = 0; i < KC_ARRAY_LEN(kc_repl_keywords); i++) {
        if (strlen(kc_repl_keywords[i]) == p->pos - start &&
            memcmp(kc_repl_keywords[i], p->s + start, p->pos - start) == 0) {
            t->kind = KC_TOK_KEYWORD;
            t->kw = (enum kc_repl_kw)i;
            return;
        }
    }
    t->kind = KC_TOK_IDENT;
    for (size_t i = start; i < p->pos; i++) {
        char c = p->s[i];
        kc_repl_text_add(t, &n, (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c);
    }
}

/* Numbers: a WAL location "hex/hex" when one starts here (the longest match), else digits. */
static int kc_repl_lex_number(struct kc_repl_parser *p, size_t hex)
{
    struct kc_repl_token *t = &p->tok;
    const char *s = p->s + p->pos;
    size_t h2 = 0, digits = 0;

    if (s[hex] == '/')
        while (kc_repl_is_hex((unsigned char)s[hex + 1 + h2]))
            h2++;
    if (s[hex] == '/' && h2 > 0) {
        char lsn[40];

        p->pos += hex + 1 + h2;
        if (hex + 1 + h2 >= sizeof(lsn) || (memcpy(lsn, s, hex + 1 + h2), lsn[hex + 1 + h2] = '\0',
                                            kc_lsn_parse(lsn, &t->lsn, NULL) < 0)) {
            kc_error_set(p->err, KC_EINVAL, "invalid streaming start location \"%.*s\"",
                         (int)(hex + 1 + h2 > 40 ? 40 : hex + 1 + h2), s);
            kc_error_detail(p->err, "A WAL location is written X/X with 1 to 8 hex digits each.");
            return KC_EINVAL;
        }
        t->kind = KC_TOK_RECPTR;
        return 0;
    }
    if (!(s[0] >= '0' && s[0] <= '9'))
        return 1; /* not a number: a word */
    t->uval = 0;
    while (s[digits] >= '0' && s[digits] <= '9') {
        if (t->uval <= UINT32_MAX)
            t->uval = t->uval * 10 + (uint64_t)(s[digits] - '0');
        digits++;
    }
    p->pos += digits;
    t->kind = KC_TOK_UCONST;
    return 0;
}

/* Scan the next token into p->tok. */
static int kc_repl_next(struct kc_repl_parser *p)
{
    struct kc_repl_token *t = &p->tok;
    unsigned char c;
    size_t hex = 0;
    int rc;

    while (kc_repl_is_space((unsigned char)p->s[p->pos]))
        p->pos++;
    memset(t, 0, sizeof(*t));
    t->kw = KC_KW_NONE;
    t->raw = p->s + p->pos;
    c = (unsigned char)p->s[p->pos];
    if (c == '\0')
        return 0; /* KC_TOK_EOF */
    if (c == '\'' || c == '"')
        return kc_repl_lex_quoted(p, (char)c);
    while (kc_repl_is_hex((unsigned char)p->s[p->pos + hex]))
        hex++;
    if (hex > 0) {
        rc = kc_repl_lex_number(p, hex);
        if (rc <= 0)
            return rc;
    }
    if (kc_repl_ident_start(c)) {
        kc_repl_lex_word(p);
        return 0;
    }
    t->kind = KC_TOK_CHAR;
    t->ch = (char)c;
    p->pos++;
    return 0;
}

/* ---- the command grammar (repl_gram.y) ---------------------------------- */

static bool kc_repl_is_kw(const struct kc_repl_parser *p, enum kc_repl_kw kw)
{
    return p->tok.kind == KC_TOK_KEYWORD && p->tok.kw == kw;
}

static bool kc_repl_is_char(const struct kc_repl_parser *p, char ch)
{
    return p->tok.kind == KC_TOK_CHAR && p->tok.ch == ch;
}

/* The current token must be an identifier of at most max bytes: copy it to dst, advance. */
static int kc_repl_take_ident(struct kc_repl_parser *p, char *dst, size_t max, const char *what)
{
    if (p->tok.kind != KC_TOK_IDENT) {
        char detail[128];
        snprintf(detail, sizeof(detail), "Expected %s.", what);
        return kc_repl_syntax(p, detail);
    }
    if (p->tok.too_long || strlen(p->tok.text) > max) {
        kc_error_set(p->err, KC_EINVAL, "identifier \"%.40s...\" is too long", p->tok.text);
        kc_error_detail(p->err, "It stands for %s, which has at most %zu bytes.", what, max);
        return KC_EINVAL;
    }
    memcpy(dst, p->tok.text, strlen(p->tok.text) + 1);
    return kc_repl_next(p);
}

/* var_name: IDENT ('.' IDENT)*, joined with dots. */
static int kc_repl_var_name(struct kc_repl_parser *p, char *dst, size_t max, const char *what)
{
    char part[KC_PGWIRE_NAME_MAX + 1];
    size_t n = 0;
    int rc;

    for (;;) {
        rc = kc_repl_take_ident(p, part, KC_PGWIRE_NAME_MAX, what);
        if (rc < 0)
            return rc;
        if (n + strlen(part) + (n > 0 ? 1 : 0) > max) {
            kc_error_set(p->err, KC_EINVAL, "%s is too long", what);
            kc_error_detail(p->err, "It may have at most %zu bytes.", max);
            return KC_EINVAL;
        }
        n += (size_t)sprintf(dst + n, "%s%s", n > 0 ? "." : "", part);
        if (!kc_repl_is_char(p, '.'))
            return 0;
        rc = kc_repl_next(p);
        if (rc < 0)
            return rc;
    }
}

/* The current token must be an unsigned constant 1..UINT32_MAX (a timeline). */
static int kc_repl_timeline(struct kc_repl_parser *p, uint32_t *out)
{
    if (p->tok.kind != KC_TOK_UCONST)
        return kc_repl_syntax(p, "Expected a timeline number.");
    if (p->tok.uval == 0 || p->tok.uval > UINT32_MAX) {
        kc_error_set(p->err, KC_EINVAL, "invalid timeline %.20s", p->tok.raw);
        kc_error_detail(p->err, "A timeline is a number from 1 to %u.", UINT32_MAX);
        return KC_EINVAL;
    }
    *out = (uint32_t)p->tok.uval;
    return kc_repl_next(p);
}

/* '(' anything but ')' ... ')': an option list, checked for shape and skipped. */
static int kc_repl_skip_options(struct kc_repl_parser *p, struct kc_pgwire_repl_cmd *out)
{
    unsigned tokens = 0;
    int rc;

    out->has_options = true;
    for (;;) {
        rc = kc_repl_next(p);
        if (rc < 0)
            return rc;
        if (p->tok.kind == KC_TOK_EOF)
            return kc_repl_syntax(p, "The option list is not closed with ')'.");
        if (kc_repl_is_char(p, ')'))
            break;
        tokens++;
    }
    if (tokens == 0)
        return kc_repl_syntax(p, "The option list is empty.");
    return kc_repl_next(p);
}

static int kc_repl_start(struct kc_repl_parser *p, struct kc_pgwire_repl_cmd *out)
{
    int rc;

    if (kc_repl_is_kw(p, KC_KW_SLOT)) {
        rc = kc_repl_next(p);
        if (rc == 0)
            rc = kc_repl_take_ident(p, out->slot, KC_PGWIRE_IDENT_MAX, "a slot name");
        if (rc < 0)
            return rc;
    }
    if (kc_repl_is_kw(p, KC_KW_LOGICAL) && out->slot[0] != '\0')
        out->logical = true;
    if ((out->logical || kc_repl_is_kw(p, KC_KW_PHYSICAL)) && (rc = kc_repl_next(p)) < 0)
        return rc;
    if (p->tok.kind != KC_TOK_RECPTR)
        return kc_repl_syntax(p, "START_REPLICATION expects a WAL location (X/X).");
    out->start = p->tok.lsn;
    rc = kc_repl_next(p);
    if (rc < 0)
        return rc;
    if (out->logical)
        return kc_repl_is_char(p, '(') ? kc_repl_skip_options(p, out) : 0;
    if (kc_repl_is_kw(p, KC_KW_TIMELINE)) {
        rc = kc_repl_next(p);
        if (rc == 0)
            rc = kc_repl_timeline(p, &out->timeline);
    }
    return rc;
}

static bool kc_repl_is_legacy_opt(const struct kc_repl_parser *p)
{
    return kc_repl_is_kw(p, KC_KW_EXPORT_SNAPSHOT) || kc_repl_is_kw(p, KC_KW_NOEXPORT_SNAPSHOT) ||
           kc_repl_is_kw(p, KC_KW_USE_SNAPSHOT) || kc_repl_is_kw(p, KC_KW_RESERVE_WAL) ||
           kc_repl_is_kw(p, KC_KW_TWO_PHASE);
}

static int kc_repl_create_slot(struct kc_repl_parser *p, struct kc_pgwire_repl_cmd *out)
{
    int rc = kc_repl_take_ident(p, out->slot, KC_PGWIRE_IDENT_MAX, "a slot name");

    if (rc < 0)
        return rc;
    if (kc_repl_is_kw(p, KC_KW_TEMPORARY)) {
        out->temporary = true;
        if ((rc = kc_repl_next(p)) < 0)
            return rc;
    }
    if (kc_repl_is_kw(p, KC_KW_LOGICAL)) {
        out->logical = true;
        rc = kc_repl_next(p);
        if (rc == 0)
            rc = kc_repl_take_ident(p, out->plugin, KC_PGWIRE_IDENT_MAX, "an output plugin name");
    } else if (kc_repl_is_kw(p, KC_KW_PHYSICAL)) {
        rc = kc_repl_next(p);
    } else {
        return kc_repl_syntax(p, "Expected PHYSICAL or LOGICAL.");
    }
    if (rc < 0)
        return rc;
    if (kc_repl_is_char(p, '('))
        return kc_repl_skip_options(p, out);
    while (rc == 0 && kc_repl_is_legacy_opt(p)) {
        out->has_options = true;
        rc = kc_repl_next(p);
    }
    return rc;
}

/* Parse the command after its first keyword (the current token is the one after it). */
static int kc_repl_command(struct kc_repl_parser *p, struct kc_pgwire_repl_cmd *out)
{
    int rc = 0;

    switch (out->kind) {
    case KC_PGWIRE_CMD_IDENTIFY_SYSTEM: return 0;
    case KC_PGWIRE_CMD_TIMELINE_HISTORY: return kc_repl_timeline(p, &out->timeline);
    case KC_PGWIRE_CMD_SHOW:
        return kc_repl_var_name(p, out->name, KC_PGWIRE_NAME_MAX, "a setting name");
    case KC_PGWIRE_CMD_READ_REPLICATION_SLOT:
        return kc_repl_var_name(p, out->slot, KC_PGWIRE_IDENT_MAX, "a slot name");
    case KC_PGWIRE_CMD_START_REPLICATION: return kc_repl_start(p, out);
    case KC_PGWIRE_CMD_CREATE_REPLICATION_SLOT: return kc_repl_create_slot(p, out);
    case KC_PGWIRE_CMD_DROP_REPLICATION_SLOT:
        rc = kc_repl_take_ident(p, out->slot, KC_PGWIRE_IDENT_MAX, "a slot name");
        if (rc == 0 && kc_repl_is_kw(p, KC_KW_WAIT)) {
            out->wait = true;
            rc = kc_repl_next(p);
        }
        return rc;
    case KC_PGWIRE_CMD_BASE_BACKUP:
        return kc_repl_is_char(p, '(') ? kc_repl_skip_options(p, out) : 0;
    default: return 0;
    }
}

static enum kc_pgwire_repl_kind kc_repl_command_kind(enum kc_repl_kw kw)
{
    switch (kw) {
    case KC_KW_IDENTIFY_SYSTEM: return KC_PGWIRE_CMD_IDENTIFY_SYSTEM;
    case KC_KW_TIMELINE_HISTORY: return KC_PGWIRE_CMD_TIMELINE_HISTORY;
    case KC_KW_START_REPLICATION: return KC_PGWIRE_CMD_START_REPLICATION;
    case KC_KW_SHOW: return KC_PGWIRE_CMD_SHOW;
    case KC_KW_READ_REPLICATION_SLOT: return KC_PGWIRE_CMD_READ_REPLICATION_SLOT;
    case KC_KW_CREATE_REPLICATION_SLOT: return KC_PGWIRE_CMD_CREATE_REPLICATION_SLOT;
    case KC_KW_DROP_REPLICATION_SLOT: return KC_PGWIRE_CMD_DROP_REPLICATION_SLOT;
    case KC_KW_BASE_BACKUP: return KC_PGWIRE_CMD_BASE_BACKUP;
    default: return KC_PGWIRE_CMD_SQL;
    }
}

int kc_pgwire_repl_parse(const char *sql, struct kc_pgwire_repl_cmd *out, struct kc_error *err)
{
    struct kc_repl_parser p = {.s = sql, .pos = 0, .err = err};
    struct kc_pgwire_repl_cmd cmd;
    int rc;

    memset(&cmd, 0, sizeof(cmd));
    rc = kc_repl_next(&p);
    if (rc < 0 || p.tok.kind != KC_TOK_KEYWORD ||
        kc_repl_command_kind(p.tok.kw) == KC_PGWIRE_CMD_SQL) {
        /* Not a replication command: SQL, whatever its lexical shape. */
        memset(out, 0, sizeof(*out));
        out->kind = KC_PGWIRE_CMD_SQL;
        kc_error_clear(err);
        return 0;
    }
    cmd.kind = kc_repl_command_kind(p.tok.kw);
    rc = kc_repl_next(&p);
    if (rc == 0)
        rc = kc_repl_command(&p, &cmd);
    if (rc == 0 && kc_repl_is_char(&p, ';'))
        rc = kc_repl_next(&p);
    if (rc == 0 && p.tok.kind != KC_TOK_EOF)
        rc = kc_repl_syntax(&p, "Unexpected text after the end of the command.");
    if (rc < 0)
        return rc;
    *out = cmd;
    return 0;
}

const char *kc_pgwire_repl_kind_name(enum kc_pgwire_repl_kind kind)
{
    switch (kind) {
    case KC_PGWIRE_CMD_IDENTIFY_SYSTEM: return "IDENTIFY_SYSTEM";
    case KC_PGWIRE_CMD_TIMELINE_HISTORY: return "TIMELINE_HISTORY";
    case KC_PGWIRE_CMD_START_REPLICATION: return "START_REPLICATION";
    case KC_PGWIRE_CMD_SHOW: return "SHOW";
    case KC_PGWIRE_CMD_READ_REPLICATION_SLOT: return "READ_REPLICATION_SLOT";
    case KC_PGWIRE_CMD_CREATE_REPLICATION_SLOT: return "CREATE_REPLICATION_SLOT";
    case KC_PGWIRE_CMD_DROP_REPLICATION_SLOT: return "DROP_REPLICATION_SLOT";
    case KC_PGWIRE_CMD_BASE_BACKUP: return "BASE_BACKUP";
    default: return "SQL";
    }
}

int kc_pgwire_repl_unsupported(const struct kc_pgwire_repl_cmd *cmd, struct kc_error *err)
{
    switch (cmd->kind) {
    case KC_PGWIRE_CMD_SQL:
        kc_error_set(err, KC_EINVAL,
                     "cannot execute SQL commands in WAL sender for physical replication");
        kc_error_hint(err, "Send replication commands, or connect without replication=true.");
        break;
    case KC_PGWIRE_CMD_CREATE_REPLICATION_SLOT:
    case KC_PGWIRE_CMD_DROP_REPLICATION_SLOT:
    case KC_PGWIRE_CMD_READ_REPLICATION_SLOT:
        kc_error_set(err, KC_EINVAL, "replication slots are not supported");
        kc_error_detail(err, "%s was refused: Kelp keeps WAL for its learners without slots.",
                        kc_pgwire_repl_kind_name(cmd->kind));
        kc_error_hint(err, "Stream without a slot (pg_receivewal without --slot).");
        break;
    case KC_PGWIRE_CMD_BASE_BACKUP:
        kc_error_set(err, KC_EINVAL, "BASE_BACKUP is not supported");
        kc_error_hint(err, "Base backups of Kelp timelines come from the pageserver.");
        break;
    default:
        if (cmd->logical) {
            kc_error_set(err, KC_EINVAL, "logical replication is not supported");
            kc_error_hint(err, "Use physical replication (START_REPLICATION PHYSICAL).");
        } else {
            kc_error_set(err, KC_EINVAL, "replication command %s is not supported",
                         kc_pgwire_repl_kind_name(cmd->kind));
        }
        break;
    }
    return KC_EINVAL;
}

/* ---- replies ------------------------------------------------------------ */

/* Append a DataRow that cannot be too large (our own short values). */
static void kc_repl_row(struct kc_sbuf *out, const char *const *values, const size_t *lens,
                        size_t n)
{
    if (kc_pgwire_put_data_row(out, values, lens, n, NULL) < 0)
        abort();
}

void kc_pgwire_repl_put_identify_system(struct kc_sbuf *out, uint64_t sysid, uint32_t timeline,
                                        kc_lsn xlogpos, const char *dbname)
{
    static const struct kc_pgwire_column cols[] = {{"systemid", KC_PGWIRE_OID_TEXT},
                                                   {"timeline", KC_PGWIRE_OID_INT4},
                                                   {"xlogpos", KC_PGWIRE_OID_TEXT},
                                                   {"dbname", KC_PGWIRE_OID_TEXT}};
    char sys[24], tli[12], pos[KC_LSN_STRLEN];
    const char *values[4] = {sys, tli, kc_lsn_format(xlogpos, pos), dbname};

    snprintf(sys, sizeof(sys), "%llu", (unsigned long long)sysid);
    snprintf(tli, sizeof(tli), "%u", timeline);
    kc_pgwire_put_row_description(out, cols, 4);
    kc_repl_row(out, values, NULL, 4);
    kc_pgwire_put_command_complete(out, "IDENTIFY_SYSTEM");
}

int kc_pgwire_repl_put_timeline_history(struct kc_sbuf *out, uint32_t timeline, const void *content,
                                        size_t len, struct kc_error *err)
{
    static const struct kc_pgwire_column cols[] = {{"filename", KC_PGWIRE_OID_TEXT},
                                                   {"content", KC_PGWIRE_OID_TEXT}};
    char name[32];
    const char *values[2] = {name, content != NULL ? (const char *)content : ""};
    size_t lens[2];
    size_t start = out->len;
    int rc;

    lens[0] = (size_t)snprintf(name, sizeof(name), "%08X.history", timeline);
    lens[1] = len;
    kc_pgwire_put_row_description(out, cols, 2);
    rc = kc_pgwire_put_data_row(out, values, lens, 2, err);
    if (rc < 0) {
        out->len = start; /* drop the row description too */
        if (out->data != NULL)
            out->data[start] = '\0';
        return rc;
    }
    kc_pgwire_put_command_complete(out, "TIMELINE_HISTORY");
    return 0;
}

void kc_pgwire_repl_put_read_slot(struct kc_sbuf *out, const char *slot_type, kc_lsn restart_lsn,
                                  uint32_t restart_tli)
{
    static const struct kc_pgwire_column cols[] = {{"slot_type", KC_PGWIRE_OID_TEXT},
                                                   {"restart_lsn", KC_PGWIRE_OID_TEXT},
                                                   {"restart_tli", KC_PGWIRE_OID_INT8}};
    char pos[KC_LSN_STRLEN], tli[12];
    const char *values[3] = {NULL, NULL, NULL};

    if (slot_type != NULL) {
        values[0] = slot_type;
        values[1] = restart_lsn != KC_LSN_INVALID ? kc_lsn_format(restart_lsn, pos) : NULL;
        snprintf(tli, sizeof(tli), "%u", restart_tli);
        values[2] = restart_tli != 0 ? tli : NULL;
    }
    kc_pgwire_put_row_description(out, cols, 3);
    kc_repl_row(out, values, NULL, 3);
    kc_pgwire_put_command_complete(out, "READ_REPLICATION_SLOT");
}

void kc_pgwire_repl_put_show(struct kc_sbuf *out, const char *name, const char *value)
{
    struct kc_pgwire_column col = {name, KC_PGWIRE_OID_TEXT};

    kc_pgwire_put_row_description(out, &col, 1);
    kc_repl_row(out, &value, NULL, 1);
    kc_pgwire_put_command_complete(out, "SHOW");
}
