/* SPDX-License-Identifier: Apache-2.0 */
/* pagestream.c -- encoding and validating decoding of the page service messages. */
#include "common/pagestream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/lsn.h"

/* Fixed payload sizes (docs/protocol-pageservice.md). */
#define KC_PS_REQ_HEADER      24 /* id, request_lsn, not_modified_since */
#define KC_PS_RELTAG_SIZE     13 /* spc, db, rel, fork */
#define KC_PS_RESP_HEADER     16 /* id, lsn */
#define KC_PS_HELLO_FIXED     51 /* every field but the name and token bytes */
#define KC_PS_HELLO_OK_SIZE   6
#define KC_PS_MIN_MAX_PAYLOAD 1024 /* smallest max_payload a server may announce */

const char *kc_ps_msg_name(uint16_t type)
{
    switch (type) {
    case KC_PS_MSG_HELLO: return "HELLO";
    case KC_PS_MSG_HELLO_OK: return "HELLO_OK";
    case KC_PS_MSG_EXISTS: return "EXISTS";
    case KC_PS_MSG_NBLOCKS: return "NBLOCKS";
    case KC_PS_MSG_GETPAGE: return "GETPAGE";
    case KC_PS_MSG_DBSIZE: return "DBSIZE";
    case KC_PS_MSG_SLRU: return "SLRU";
    case KC_PS_MSG_EXISTS_RESP: return "EXISTS_RESP";
    case KC_PS_MSG_NBLOCKS_RESP: return "NBLOCKS_RESP";
    case KC_PS_MSG_GETPAGE_RESP: return "GETPAGE_RESP";
    case KC_PS_MSG_DBSIZE_RESP: return "DBSIZE_RESP";
    case KC_PS_MSG_SLRU_RESP: return "SLRU_RESP";
    case KC_PS_MSG_ERROR: return "ERROR";
    default: return "unknown";
    }
}

bool kc_ps_is_request(uint16_t type)
{
    return type >= KC_PS_MSG_EXISTS && type <= KC_PS_MSG_SLRU;
}

uint16_t kc_ps_response_type(uint16_t request_type)
{
    if (!kc_ps_is_request(request_type))
        return 0;
    return (uint16_t)(request_type - KC_PS_MSG_EXISTS + KC_PS_MSG_EXISTS_RESP);
}

static bool kc_ps_is_answer(uint16_t type)
{
    return type >= KC_PS_MSG_EXISTS_RESP && type <= KC_PS_MSG_SLRU_RESP;
}

uint32_t kc_ps_slru_segno_max(uint8_t kind)
{
    /* 2^32 xids or multixacts over the items per 8 kB page, 32 pages a segment. */
    switch (kind) {
    case KC_PS_SLRU_CLOG: return 0xFFF;                /* 32768 xids a page */
    case KC_PS_SLRU_MULTIXACT_OFFSETS: return 0xFFFF;  /* 2048 offsets a page */
    case KC_PS_SLRU_MULTIXACT_MEMBERS: return 0x14078; /* 1636 members a page */
    default: return 0;
    }
}

uint16_t kc_ps_negotiate(uint16_t client_min, uint16_t client_max, uint16_t server_min,
                         uint16_t server_max)
{
    uint16_t lo = client_min > server_min ? client_min : server_min;
    uint16_t hi = client_max < server_max ? client_max : server_max;

    if (lo == 0 || lo > hi)
        return 0;
    return hi;
}

int kc_ps_sqlstate_to_code(const char *sqlstate)
{
    static const struct {
        const char *state;
        int code;
    } map[] = {
        {KC_PS_SQLSTATE_PROTOCOL, KC_EPROTO},
        {KC_PS_SQLSTATE_INVALID, KC_EINVAL},
        {KC_PS_SQLSTATE_BAD_LSN, KC_EINVAL},
        {KC_PS_SQLSTATE_NOT_FOUND, KC_ENOTFOUND},
        {KC_PS_SQLSTATE_NO_TIMELINE, KC_ENOTFOUND},
        {KC_PS_SQLSTATE_WAIT_TIMEOUT, KC_ETIMEDOUT},
        {KC_PS_SQLSTATE_VERSION, KC_EVERSION},
        {KC_PS_SQLSTATE_CORRUPT, KC_ECORRUPT},
        {KC_PS_SQLSTATE_IO, KC_EIO},
    };

    for (size_t i = 0; sqlstate != NULL && i < KC_ARRAY_LEN(map); i++)
        if (strcmp(sqlstate, map[i].state) == 0)
            return map[i].code;
    return KC_EIO;
}

/* ---- validation shared by encoders (KC_EINVAL) and decoders (KC_EPROTO) ---- */

/* Fill err with code and "invalid TYPE message: <fmt>"; returns code. */
static int kc_ps_invalid(struct kc_error *err, int code, uint16_t type, const char *fmt, ...)
    KC_PRINTF(4, 5);
static int kc_ps_invalid(struct kc_error *err, int code, uint16_t type, const char *fmt, ...)
{
    char what[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return kc_error_set(err, code, "invalid page service %s message: %s", kc_ps_msg_name(type),
                        what);
}

static int kc_ps_check_reltag(int code, uint16_t type, const struct kc_ps_reltag *r,
                              struct kc_error *err)
{
    if (r->spc == 0)
        return kc_ps_invalid(err, code, type, "tablespace oid is 0");
    if (r->rel == 0)
        return kc_ps_invalid(err, code, type, "relfilenode is 0");
    if (r->fork > KC_PS_FORK_MAX)
        return kc_ps_invalid(err, code, type, "unknown fork number %u", r->fork);
    return 0;
}

static int kc_ps_check_request(int code, const struct kc_ps_request *q, struct kc_error *err)
{
    if (!kc_ps_is_request(q->type))
        return kc_error_set(err, code, "message type 0x%04x (%s) is not a page service request",
                            q->type, kc_ps_msg_name(q->type));
    if (q->id == 0)
        return kc_ps_invalid(err, code, q->type, "request id is 0");
    switch (q->type) {
    case KC_PS_MSG_EXISTS:
    case KC_PS_MSG_NBLOCKS: return kc_ps_check_reltag(code, q->type, &q->rel, err);
    case KC_PS_MSG_GETPAGE:
        if (q->blkno > KC_PS_MAX_BLKNO)
            return kc_ps_invalid(err, code, q->type, "block number %u is invalid", q->blkno);
        return kc_ps_check_reltag(code, q->type, &q->rel, err);
    case KC_PS_MSG_DBSIZE:
        if (q->spc == 0 || q->db == 0)
            return kc_ps_invalid(err, code, q->type, "tablespace oid %u or database oid %u is 0",
                                 q->spc, q->db);
        return 0;
    default: /* KC_PS_MSG_SLRU */
        if (kc_ps_slru_segno_max(q->slru_kind) == 0)
            return kc_ps_invalid(err, code, q->type, "unknown SLRU kind %u", q->slru_kind);
        if (q->segno > kc_ps_slru_segno_max(q->slru_kind))
            return kc_ps_invalid(err, code, q->type,
                                 "SLRU segment %u is above the maximum %u of kind %u", q->segno,
                                 kc_ps_slru_segno_max(q->slru_kind), q->slru_kind);
        return 0;
    }
}

static int kc_ps_check_name(int code, const char *name, size_t len, struct kc_error *err)
{
    if (len > KC_PS_NAME_MAX)
        return kc_ps_invalid(err, code, KC_PS_MSG_HELLO, "client name is %zu bytes, at most %d",
                             len, KC_PS_NAME_MAX);
    for (size_t i = 0; i < len; i++)
        if (name[i] < 0x20 || name[i] > 0x7E)
            return kc_ps_invalid(err, code, KC_PS_MSG_HELLO,
                                 "client name has a non-printable byte at offset %zu", i);
    return 0;
}

static int kc_ps_check_hello(int code, const struct kc_ps_hello *h, struct kc_error *err)
{
    if (h->min_version == 0 || h->max_version < h->min_version)
        return kc_ps_invalid(err, code, KC_PS_MSG_HELLO, "version range %u to %u is empty",
                             h->min_version, h->max_version);
    if ((h->flags & ~KC_PS_HELLO_FLAGS_ALL) != 0)
        return kc_ps_invalid(err, code, KC_PS_MSG_HELLO, "unknown flags 0x%x",
                             h->flags & ~KC_PS_HELLO_FLAGS_ALL);
    if (kc_id_is_zero(&h->tenant) || kc_id_is_zero(&h->timeline))
        return kc_ps_invalid(err, code, KC_PS_MSG_HELLO, "tenant or timeline id is zero");
    if ((h->flags & KC_PS_HELLO_READ_ONLY) != 0 && h->term != 0)
        return kc_ps_invalid(err, code, KC_PS_MSG_HELLO, "read-only client with term %llu",
                             (unsigned long long)h->term);
    if (h->token_len > KC_PS_TOKEN_MAX)
        return kc_ps_invalid(err, code, KC_PS_MSG_HELLO, "token is %u bytes, at most %d",
                             h->token_len, KC_PS_TOKEN_MAX);
    if (h->token_len > 0 && h->token == NULL)
        return kc_ps_invalid(err, code, KC_PS_MSG_HELLO, "token is NULL");
    return kc_ps_check_name(code, h->name, strnlen(h->name, sizeof(h->name)), err);
}

static bool kc_ps_sqlstate_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return true;
}

/* Check the text fields of an ERROR; lengths are of the texts as they would be sent. */
static int kc_ps_check_text(int code, const char *what, const char *text, size_t len, size_t max,
                            struct kc_error *err)
{
    if (len > max)
        return kc_ps_invalid(err, code, KC_PS_MSG_ERROR, "%s is %zu bytes, at most %zu", what, len,
                             max);
    if (memchr(text, '\0', len) != NULL)
        return kc_ps_invalid(err, code, KC_PS_MSG_ERROR, "%s contains a NUL byte", what);
    return 0;
}

static int kc_ps_check_response(int code, const struct kc_ps_response *r, struct kc_error *err)
{
    if (r->type == KC_PS_MSG_ERROR) {
        const struct kc_error *e = &r->error;
        int rc;

        if (strlen(r->sqlstate) != KC_PS_SQLSTATE_LEN ||
            !kc_ps_sqlstate_valid(r->sqlstate, KC_PS_SQLSTATE_LEN))
            return kc_ps_invalid(err, code, r->type, "error code is not 5 characters [0-9A-Z]");
        if (e->message[0] == '\0')
            return kc_ps_invalid(err, code, r->type, "message is empty");
        rc = kc_ps_check_text(code, "message", e->message, strnlen(e->message, 256),
                              KC_PS_MESSAGE_MAX, err);
        if (rc == 0)
            rc = kc_ps_check_text(code, "detail", e->detail, strnlen(e->detail, 512),
                                  KC_PS_DETAIL_MAX, err);
        if (rc == 0)
            rc =
                kc_ps_check_text(code, "hint", e->hint, strnlen(e->hint, 256), KC_PS_HINT_MAX, err);
        return rc;
    }
    if (!kc_ps_is_answer(r->type))
        return kc_error_set(err, code, "message type 0x%04x (%s) is not a page service response",
                            r->type, kc_ps_msg_name(r->type));
    if (r->id == 0)
        return kc_ps_invalid(err, code, r->type, "request id is 0");
    if (r->lsn == 0 || r->lsn == KC_PS_LSN_LATEST)
        return kc_ps_invalid(err, code, r->type, "read LSN is 0 or \"latest\"");
    if (r->type == KC_PS_MSG_DBSIZE_RESP && r->db_size < 0)
        return kc_ps_invalid(err, code, r->type, "database size %lld is negative",
                             (long long)r->db_size);
    if (r->type == KC_PS_MSG_SLRU_RESP && r->nblocks > KC_PS_SLRU_MAX_BLOCKS)
        return kc_ps_invalid(err, code, r->type, "%u blocks, at most %d", r->nblocks,
                             KC_PS_SLRU_MAX_BLOCKS);
    if ((r->type == KC_PS_MSG_GETPAGE_RESP || (r->type == KC_PS_MSG_SLRU_RESP && r->nblocks > 0)) &&
        r->data == NULL)
        return kc_ps_invalid(err, code, r->type, "page data is NULL");
    return 0;
}

/* ---- encoders ------------------------------------------------------------ */

int kc_ps_hello_encode(struct kc_sbuf *out, const struct kc_ps_hello *h, struct kc_error *err)
{
    size_t start, namelen;
    int rc = kc_ps_check_hello(KC_EINVAL, h, err);

    if (rc != 0)
        return rc;
    namelen = strnlen(h->name, sizeof(h->name));
    start = kc_frame_begin(out, KC_PS_MSG_HELLO);
    kc_sbuf_put_u16(out, h->min_version);
    kc_sbuf_put_u16(out, h->max_version);
    kc_sbuf_put_u32(out, h->flags);
    kc_sbuf_append(out, h->tenant.b, KC_ID_LEN);
    kc_sbuf_append(out, h->timeline.b, KC_ID_LEN);
    kc_sbuf_put_u64(out, h->term);
    kc_sbuf_put_u8(out, (uint8_t)namelen);
    kc_sbuf_append(out, h->name, namelen);
    kc_sbuf_put_u16(out, (uint16_t)h->token_len);
    if (h->token_len > 0)
        kc_sbuf_append(out, h->token, h->token_len);
    return kc_frame_finish(out, start, err);
}

int kc_ps_hello_ok_encode(struct kc_sbuf *out, const struct kc_ps_hello_ok *ok,
                          struct kc_error *err)
{
    size_t start;

    if (ok->version == 0 || ok->max_payload < KC_PS_MIN_MAX_PAYLOAD)
        return kc_ps_invalid(err, KC_EINVAL, KC_PS_MSG_HELLO_OK,
                             "version %u or max payload %u is out of range", ok->version,
                             ok->max_payload);
    start = kc_frame_begin(out, KC_PS_MSG_HELLO_OK);
    kc_sbuf_put_u16(out, ok->version);
    kc_sbuf_put_u32(out, ok->max_payload);
    return kc_frame_finish(out, start, err);
}

static void kc_ps_put_reltag(struct kc_sbuf *out, const struct kc_ps_reltag *r)
{
    kc_sbuf_put_u32(out, r->spc);
    kc_sbuf_put_u32(out, r->db);
    kc_sbuf_put_u32(out, r->rel);
    kc_sbuf_put_u8(out, r->fork);
}

int kc_ps_request_encode(struct kc_sbuf *out, const struct kc_ps_request *q, struct kc_error *err)
{
    size_t start;
    int rc = kc_ps_check_request(KC_EINVAL, q, err);

    if (rc != 0)
        return rc;
    start = kc_frame_begin(out, q->type);
    kc_sbuf_put_u64(out, q->id);
    kc_sbuf_put_u64(out, q->request_lsn);
    kc_sbuf_put_u64(out, q->not_modified_since);
    switch (q->type) {
    case KC_PS_MSG_EXISTS:
    case KC_PS_MSG_NBLOCKS: kc_ps_put_reltag(out, &q->rel); break;
    case KC_PS_MSG_GETPAGE:
        kc_ps_put_reltag(out, &q->rel);
        kc_sbuf_put_u32(out, q->blkno);
        break;
    case KC_PS_MSG_DBSIZE:
        kc_sbuf_put_u32(out, q->spc);
        kc_sbuf_put_u32(out, q->db);
        break;
    default:
        kc_sbuf_put_u8(out, q->slru_kind);
        kc_sbuf_put_u32(out, q->segno);
        break;
    }
    return kc_frame_finish(out, start, err);
}

static void kc_ps_put_text(struct kc_sbuf *out, const char *text, size_t cap, size_t max)
{
    size_t len = strnlen(text, cap);

    if (len > max)
        len = max;
    kc_sbuf_put_u16(out, (uint16_t)len);
    kc_sbuf_append(out, text, len);
}

void kc_ps_error_encode(struct kc_sbuf *out, uint64_t id, const char *sqlstate,
                        const struct kc_error *e)
{
    size_t start;

    if (sqlstate == NULL || strlen(sqlstate) != KC_PS_SQLSTATE_LEN ||
        !kc_ps_sqlstate_valid(sqlstate, KC_PS_SQLSTATE_LEN))
        abort(); /* our own constant: a bug */
    start = kc_frame_begin(out, KC_PS_MSG_ERROR);
    kc_sbuf_put_u64(out, id);
    kc_sbuf_append(out, sqlstate, KC_PS_SQLSTATE_LEN);
    if (e == NULL || e->message[0] == '\0')
        kc_ps_put_text(out, "unknown error", 14, KC_PS_MESSAGE_MAX);
    else
        kc_ps_put_text(out, e->message, sizeof(e->message), KC_PS_MESSAGE_MAX);
    kc_ps_put_text(out, e != NULL ? e->detail : "", e != NULL ? sizeof(e->detail) : 1,
                   KC_PS_DETAIL_MAX);
    kc_ps_put_text(out, e != NULL ? e->hint : "", e != NULL ? sizeof(e->hint) : 1, KC_PS_HINT_MAX);
    if (kc_frame_finish(out, start, NULL) != 0)
        abort(); /* at most ~1 kB: cannot exceed the frame limit */
}

int kc_ps_response_encode(struct kc_sbuf *out, const struct kc_ps_response *r, struct kc_error *err)
{
    size_t start;
    int rc = kc_ps_check_response(KC_EINVAL, r, err);

    if (rc != 0)
        return rc;
    if (r->type == KC_PS_MSG_ERROR) {
        kc_ps_error_encode(out, r->id, r->sqlstate, &r->error);
        return 0;
    }
    start = kc_frame_begin(out, r->type);
    kc_sbuf_put_u64(out, r->id);
    kc_sbuf_put_u64(out, r->lsn);
    switch (r->type) {
    case KC_PS_MSG_EXISTS_RESP: kc_sbuf_put_u8(out, r->exists ? 1 : 0); break;
    case KC_PS_MSG_NBLOCKS_RESP: kc_sbuf_put_u32(out, r->nblocks); break;
    case KC_PS_MSG_GETPAGE_RESP: kc_sbuf_append(out, r->data, KC_PS_BLCKSZ); break;
    case KC_PS_MSG_DBSIZE_RESP: kc_sbuf_put_u64(out, (uint64_t)r->db_size); break;
    default:
        kc_sbuf_put_u32(out, r->nblocks);
        if (r->nblocks > 0)
            kc_sbuf_append(out, r->data, (size_t)r->nblocks * KC_PS_BLCKSZ);
        break;
    }
    return kc_frame_finish(out, start, err);
}

/* ---- decoders ------------------------------------------------------------ */

/* The error for a payload whose size does not match its type. */
static int kc_ps_bad_length(struct kc_error *err, uint16_t type, uint32_t got, size_t want)
{
    kc_ps_invalid(err, KC_EPROTO, type, "payload is %u bytes, expected %zu", got, want);
    kc_error_detail(err, "The payload of a %s message has a fixed size in protocol version %d.",
                    kc_ps_msg_name(type), KC_PS_PROTO_MAX);
    return KC_EPROTO;
}

static int kc_ps_truncated(struct kc_error *err, uint16_t type, const char *field)
{
    return kc_ps_invalid(err, KC_EPROTO, type, "payload ends inside the %s", field);
}

static int kc_ps_wrong_type(struct kc_error *err, uint16_t type, const char *expected)
{
    kc_error_set(err, KC_EPROTO, "unexpected page service message type 0x%04x (%s), expected %s",
                 type, kc_ps_msg_name(type), expected);
    return KC_EPROTO;
}

int kc_ps_hello_decode(const struct kc_frame *f, struct kc_ps_hello *out, struct kc_error *err)
{
    struct kc_buf b;
    uint8_t namelen;
    uint16_t toklen;

    if (f->type != KC_PS_MSG_HELLO)
        return kc_ps_wrong_type(err, f->type, "HELLO");
    memset(out, 0, sizeof(*out));
    kc_frame_payload(f, &b);
    if (!kc_buf_get_u16(&b, &out->min_version) || !kc_buf_get_u16(&b, &out->max_version) ||
        !kc_buf_get_u32(&b, &out->flags) || !kc_buf_get_bytes(&b, out->tenant.b, KC_ID_LEN) ||
        !kc_buf_get_bytes(&b, out->timeline.b, KC_ID_LEN) || !kc_buf_get_u64(&b, &out->term) ||
        !kc_buf_get_u8(&b, &namelen))
        return kc_ps_truncated(err, f->type, "fixed fields");
    if (namelen > KC_PS_NAME_MAX)
        return kc_ps_check_name(KC_EPROTO, "", namelen, err);
    if (!kc_buf_get_bytes(&b, out->name, namelen))
        return kc_ps_truncated(err, f->type, "client name");
    out->name[namelen] = '\0';
    if (kc_ps_check_name(KC_EPROTO, out->name, namelen, err) != 0)
        return KC_EPROTO;
    if (!kc_buf_get_u16(&b, &toklen))
        return kc_ps_truncated(err, f->type, "token length");
    if (toklen > KC_PS_TOKEN_MAX)
        return kc_ps_invalid(err, KC_EPROTO, f->type, "token is %u bytes, at most %d", toklen,
                             KC_PS_TOKEN_MAX);
    if (!kc_buf_get_ref(&b, &out->token, toklen))
        return kc_ps_truncated(err, f->type, "token");
    out->token_len = toklen;
    if (toklen == 0)
        out->token = NULL;
    if (kc_buf_remaining(&b) != 0)
        return kc_ps_bad_length(err, f->type, f->len, b.pos);
    return kc_ps_check_hello(KC_EPROTO, out, err);
}

int kc_ps_hello_ok_decode(const struct kc_frame *f, struct kc_ps_hello_ok *out,
                          struct kc_error *err)
{
    struct kc_buf b;

    if (f->type != KC_PS_MSG_HELLO_OK)
        return kc_ps_wrong_type(err, f->type, "HELLO_OK");
    if (f->len != KC_PS_HELLO_OK_SIZE)
        return kc_ps_bad_length(err, f->type, f->len, KC_PS_HELLO_OK_SIZE);
    kc_frame_payload(f, &b);
    if (!kc_buf_get_u16(&b, &out->version) || !kc_buf_get_u32(&b, &out->max_payload))
        return kc_ps_truncated(err, f->type, "fixed fields"); /* unreachable: length checked */
    if (out->version == 0 || out->max_payload < KC_PS_MIN_MAX_PAYLOAD)
        return kc_ps_invalid(err, KC_EPROTO, f->type,
                             "version %u or max payload %u is out of range", out->version,
                             out->max_payload);
    return 0;
}

static size_t kc_ps_request_size(uint16_t type)
{
    switch (type) {
    case KC_PS_MSG_EXISTS:
    case KC_PS_MSG_NBLOCKS: return KC_PS_REQ_HEADER + KC_PS_RELTAG_SIZE;
    case KC_PS_MSG_GETPAGE: return KC_PS_REQ_HEADER + KC_PS_RELTAG_SIZE + 4;
    case KC_PS_MSG_DBSIZE: return KC_PS_REQ_HEADER + 8;
    case KC_PS_MSG_SLRU: return KC_PS_REQ_HEADER + 5;
    default: return 0;
    }
}

static bool kc_ps_get_reltag(struct kc_buf *b, struct kc_ps_reltag *r)
{
    return kc_buf_get_u32(b, &r->spc) && kc_buf_get_u32(b, &r->db) && kc_buf_get_u32(b, &r->rel) &&
           kc_buf_get_u8(b, &r->fork);
}

int kc_ps_request_decode(const struct kc_frame *f, struct kc_ps_request *out, struct kc_error *err)
{
    struct kc_buf b;
    size_t want = kc_ps_request_size(f->type);
    bool ok;

    if (want == 0)
        return kc_ps_wrong_type(err, f->type, "a request");
    if (f->len != want)
        return kc_ps_bad_length(err, f->type, f->len, want);
    memset(out, 0, sizeof(*out));
    out->type = f->type;
    kc_frame_payload(f, &b);
    ok = kc_buf_get_u64(&b, &out->id) && kc_buf_get_u64(&b, &out->request_lsn) &&
         kc_buf_get_u64(&b, &out->not_modified_since);
    switch (f->type) {
    case KC_PS_MSG_EXISTS:
    case KC_PS_MSG_NBLOCKS: ok = ok && kc_ps_get_reltag(&b, &out->rel); break;
    case KC_PS_MSG_GETPAGE:
        ok = ok && kc_ps_get_reltag(&b, &out->rel) && kc_buf_get_u32(&b, &out->blkno);
        break;
    case KC_PS_MSG_DBSIZE:
        ok = ok && kc_buf_get_u32(&b, &out->spc) && kc_buf_get_u32(&b, &out->db);
        break;
    default:
        ok = ok && kc_buf_get_u8(&b, &out->slru_kind) && kc_buf_get_u32(&b, &out->segno);
        break;
    }
    if (!ok || kc_buf_remaining(&b) != 0)
        return kc_ps_bad_length(err, f->type, f->len, want); /* unreachable: length checked */
    return kc_ps_check_request(KC_EPROTO, out, err);
}

/* Read a u16-length text of at most max bytes into dst (cap bytes, NUL-terminated). */
static int kc_ps_get_text(struct kc_buf *b, const char *what, char *dst, size_t cap, size_t max,
                          struct kc_error *err)
{
    uint16_t len;
    const uint8_t *p;

    if (!kc_buf_get_u16(b, &len) || !kc_buf_get_ref(b, &p, len))
        return kc_ps_truncated(err, KC_PS_MSG_ERROR, what);
    if (kc_ps_check_text(KC_EPROTO, what, (const char *)p, len, max, err) != 0)
        return KC_EPROTO;
    if (len >= cap)
        return kc_ps_invalid(err, KC_EPROTO, KC_PS_MSG_ERROR, "%s is too long", what);
    memcpy(dst, p, len);
    dst[len] = '\0';
    return 0;
}

static int kc_ps_error_decode(const struct kc_frame *f, struct kc_ps_response *out,
                              struct kc_error *err)
{
    struct kc_buf b;
    struct kc_error *e = &out->error;
    int rc;

    kc_frame_payload(f, &b);
    if (!kc_buf_get_u64(&b, &out->id) || !kc_buf_get_bytes(&b, out->sqlstate, KC_PS_SQLSTATE_LEN))
        return kc_ps_truncated(err, f->type, "fixed fields");
    out->sqlstate[KC_PS_SQLSTATE_LEN] = '\0';
    rc = kc_ps_get_text(&b, "message", e->message, sizeof(e->message), KC_PS_MESSAGE_MAX, err);
    if (rc == 0)
        rc = kc_ps_get_text(&b, "detail", e->detail, sizeof(e->detail), KC_PS_DETAIL_MAX, err);
    if (rc == 0)
        rc = kc_ps_get_text(&b, "hint", e->hint, sizeof(e->hint), KC_PS_HINT_MAX, err);
    if (rc != 0)
        return rc;
    if (kc_buf_remaining(&b) != 0)
        return kc_ps_bad_length(err, f->type, f->len, b.pos);
    e->code = 0;
    return kc_ps_check_response(KC_EPROTO, out, err);
}

int kc_ps_response_decode(const struct kc_frame *f, struct kc_ps_response *out,
                          struct kc_error *err)
{
    struct kc_buf b;
    uint64_t size;
    size_t want;

    memset(out, 0, sizeof(*out));
    out->type = f->type;
    if (f->type == KC_PS_MSG_ERROR)
        return kc_ps_error_decode(f, out, err);
    switch (f->type) {
    case KC_PS_MSG_EXISTS_RESP: want = KC_PS_RESP_HEADER + 1; break;
    case KC_PS_MSG_NBLOCKS_RESP: want = KC_PS_RESP_HEADER + 4; break;
    case KC_PS_MSG_GETPAGE_RESP: want = KC_PS_RESP_HEADER + KC_PS_BLCKSZ; break;
    case KC_PS_MSG_DBSIZE_RESP: want = KC_PS_RESP_HEADER + 8; break;
    case KC_PS_MSG_SLRU_RESP: want = KC_PS_RESP_HEADER + 4; break; /* plus the pages */
    default: return kc_ps_wrong_type(err, f->type, "a response");
    }
    if (f->len < want || (f->type != KC_PS_MSG_SLRU_RESP && f->len != want))
        return kc_ps_bad_length(err, f->type, f->len, want);
    kc_frame_payload(f, &b);
    if (!kc_buf_get_u64(&b, &out->id) || !kc_buf_get_u64(&b, &out->lsn))
        return kc_ps_truncated(err, f->type, "header"); /* unreachable: length checked */
    switch (f->type) {
    case KC_PS_MSG_EXISTS_RESP: {
        uint8_t v = 0;
        if (!kc_buf_get_u8(&b, &v) || v > 1)
            return kc_ps_invalid(err, KC_EPROTO, f->type, "boolean is %u, not 0 or 1", v);
        out->exists = v == 1;
        break;
    }
    case KC_PS_MSG_NBLOCKS_RESP:
        if (!kc_buf_get_u32(&b, &out->nblocks))
            return kc_ps_truncated(err, f->type, "block count");
        break;
    case KC_PS_MSG_GETPAGE_RESP:
        if (!kc_buf_get_ref(&b, &out->data, KC_PS_BLCKSZ))
            return kc_ps_truncated(err, f->type, "page");
        break;
    case KC_PS_MSG_DBSIZE_RESP:
        if (!kc_buf_get_u64(&b, &size))
            return kc_ps_truncated(err, f->type, "size");
        out->db_size = (int64_t)size;
        break;
    default:
        if (!kc_buf_get_u32(&b, &out->nblocks))
            return kc_ps_truncated(err, f->type, "block count");
        if (out->nblocks > KC_PS_SLRU_MAX_BLOCKS)
            return kc_ps_invalid(err, KC_EPROTO, f->type, "%u blocks, at most %d", out->nblocks,
                                 KC_PS_SLRU_MAX_BLOCKS);
        if (kc_buf_remaining(&b) != (size_t)out->nblocks * KC_PS_BLCKSZ)
            return kc_ps_bad_length(err, f->type, f->len,
                                    want + (size_t)out->nblocks * KC_PS_BLCKSZ);
        if (out->nblocks > 0 &&
            !kc_buf_get_ref(&b, &out->data, (size_t)out->nblocks * KC_PS_BLCKSZ))
            return kc_ps_truncated(err, f->type, "pages");
        break;
    }
    if (kc_buf_remaining(&b) != 0)
        return kc_ps_bad_length(err, f->type, f->len, want);
    return kc_ps_check_response(KC_EPROTO, out, err);
}

int kc_ps_request_check_lsns(const struct kc_ps_request *req, struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    if (req->request_lsn == 0) {
        kc_error_set(err, KC_EINVAL, "invalid request LSN 0/0");
        kc_error_hint(err, "Send the LSN to read at, or \"latest\" (all ones).");
        return KC_EINVAL;
    }
    if (req->request_lsn < req->not_modified_since) {
        kc_error_set(err, KC_EINVAL, "request LSN %s is older than not-modified-since LSN %s",
                     kc_lsn_format(req->request_lsn, a), kc_lsn_format(req->not_modified_since, b));
        kc_error_detail(err, "A request reads at or after the LSN since which the object is "
                             "known to be unchanged.");
        return KC_EINVAL;
    }
    return 0;
}
