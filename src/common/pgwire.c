/* SPDX-License-Identifier: Apache-2.0 */
/* pgwire.c -- PostgreSQL wire protocol 3.0 codec and startup handshake, server side. */
#include "common/pgwire.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"

/* ---- reading helpers --------------------------------------------------- */

/* Read a NUL-terminated string at the cursor; *out points into the input. */
static bool kc_pgwire_get_cstr(struct kc_buf *b, const char **out)
{
    size_t rem = kc_buf_remaining(b);
    const uint8_t *start;
    const uint8_t *nul;

    if (rem == 0)
        return false;
    start = b->data + b->pos;
    nul = memchr(start, 0, rem);
    if (nul == NULL)
        return false;
    *out = (const char *)start;
    return kc_buf_skip(b, (size_t)(nul - start) + 1);
}

static int kc_pgwire_eagain(struct kc_error *err, const char *what, size_t have, size_t want)
{
    kc_error_set(err, KC_EAGAIN, "incomplete %s", what);
    kc_error_detail(err, "%zu of %zu bytes have arrived.", have, want);
    return KC_EAGAIN;
}

/* ---- startup packet ---------------------------------------------------- */

void kc_pgwire_startup_fini(struct kc_pgwire_startup *su)
{
    if (su == NULL)
        return;
    free(su->params);
    free(su->mem_);
    memset(su, 0, sizeof(*su));
}

const char *kc_pgwire_startup_get(const struct kc_pgwire_startup *su, const char *name)
{
    const char *found = NULL;

    for (size_t i = 0; i < su->nparams; i++)
        if (strcmp(su->params[i].name, name) == 0)
            found = su->params[i].value;
    return found;
}

static int kc_pgwire_layout_error(struct kc_error *err, const char *detail)
{
    kc_error_set(err, KC_EINVAL, "invalid startup packet layout");
    kc_error_detail(err, "%s", detail);
    return KC_EINVAL;
}

/* Count the name/value pairs of a parameter list; checks the whole layout. */
static int kc_pgwire_count_params(const uint8_t *body, size_t len, size_t *count,
                                  struct kc_error *err)
{
    struct kc_buf b;
    size_t n = 0;

    kc_buf_init(&b, body, len);
    for (;;) {
        const char *name, *value;

        if (!kc_pgwire_get_cstr(&b, &name))
            return kc_pgwire_layout_error(
                err,
                "The parameter list does not end with a zero byte, or a name is unterminated.");
        if (name[0] == '\0')
            break;
        if (!kc_pgwire_get_cstr(&b, &value)) {
            kc_error_set(err, KC_EINVAL, "invalid startup packet layout");
            kc_error_detail(err, "Parameter \"%.64s\" has no terminated value.", name);
            return KC_EINVAL;
        }
        n++;
    }
    if (kc_buf_remaining(&b) != 0)
        return kc_pgwire_layout_error(err, "Bytes follow the zero byte that ends the parameters.");
    *count = n;
    return 0;
}

/* Parse the parameters of a StartupMessage body into su (which owns a copy). */
static int kc_pgwire_parse_params(const uint8_t *body, size_t len, struct kc_pgwire_startup *su,
                                  struct kc_error *err)
{
    size_t n = 0;
    struct kc_buf b;
    int rc = kc_pgwire_count_params(body, len, &n, err);

    if (rc < 0)
        return rc;
    su->mem_ = kc_try_malloc(len);
    su->params = kc_try_malloc((n > 0 ? n : 1) * sizeof(*su->params));
    if (su->mem_ == NULL || su->params == NULL) {
        kc_pgwire_startup_fini(su);
        return kc_error_set(err, KC_ENOMEM, "out of memory reading a startup packet of %zu bytes",
                            len);
    }
    memcpy(su->mem_, body, len);
    kc_buf_init(&b, su->mem_, len);
    for (size_t i = 0; i < n; i++) {
        struct kc_pgwire_param *p = &su->params[i];

        if (!kc_pgwire_get_cstr(&b, &p->name) || !kc_pgwire_get_cstr(&b, &p->value)) {
            kc_pgwire_startup_fini(su); /* cannot happen: the layout was checked */
            return kc_pgwire_layout_error(err, "The parameter list changed while read.");
        }
        if (strcmp(p->name, "user") == 0)
            su->user = p->value;
        else if (strcmp(p->name, "database") == 0)
            su->database = p->value;
        else if (strcmp(p->name, "application_name") == 0)
            su->application_name = p->value;
        else if (strcmp(p->name, "options") == 0)
            su->options = p->value;
        else if (strcmp(p->name, "replication") == 0)
            su->replication_value = p->value;
    }
    su->nparams = n;
    if (su->database == NULL || su->database[0] == '\0')
        su->database = su->user;
    return 0;
}

/* Decode the body of a packet whose length has been checked; fills out. */
static int kc_pgwire_startup_body(uint32_t plen, uint32_t code, const uint8_t *body,
                                  struct kc_pgwire_startup *out, struct kc_error *err)
{
    struct kc_pgwire_startup su = {0};
    struct kc_buf b;
    int rc;

    su.code = code;
    kc_buf_init(&b, body, plen - 8);
    if (code == KC_PGWIRE_SSL_REQUEST_CODE || code == KC_PGWIRE_GSSENC_REQUEST_CODE) {
        if (plen != 8) {
            kc_error_set(err, KC_EPROTO, "invalid length of %s request",
                         code == KC_PGWIRE_SSL_REQUEST_CODE ? "SSL" : "GSSAPI encryption");
            kc_error_detail(err, "The packet has %u bytes; this request has exactly 8.", plen);
            return KC_EPROTO;
        }
        su.kind =
            code == KC_PGWIRE_SSL_REQUEST_CODE ? KC_PGWIRE_SSL_REQUEST : KC_PGWIRE_GSSENC_REQUEST;
    } else if (code == KC_PGWIRE_CANCEL_REQUEST_CODE) {
        if (plen != 16 || !kc_buf_get_u32(&b, &su.cancel_pid) ||
            !kc_buf_get_u32(&b, &su.cancel_key)) {
            kc_error_set(err, KC_EPROTO, "invalid length of cancel request");
            kc_error_detail(err, "The packet has %u bytes; a cancel request has exactly 16.", plen);
            return KC_EPROTO;
        }
        su.kind = KC_PGWIRE_CANCEL_REQUEST;
    } else if (KC_PGWIRE_PROTOCOL_MAJOR(code) != 3) {
        kc_error_set(err, KC_EVERSION, "unsupported frontend protocol %u.%u: server supports 3.0",
                     KC_PGWIRE_PROTOCOL_MAJOR(code), KC_PGWIRE_PROTOCOL_MINOR(code));
        kc_error_hint(err,
                      "Use a client that speaks protocol version 3 (PostgreSQL 7.4 or later).");
        return KC_EVERSION;
    } else {
        su.kind = KC_PGWIRE_STARTUP_MESSAGE;
        rc = kc_pgwire_parse_params(body, plen - 8, &su, err);
        if (rc < 0)
            return rc;
    }
    *out = su;
    return 0;
}

int kc_pgwire_startup_decode(const uint8_t *data, size_t len, size_t max_len,
                             struct kc_pgwire_startup *out, size_t *size, struct kc_error *err)
{
    struct kc_buf b;
    uint32_t plen, code;

    *size = 4;
    kc_buf_init(&b, data, len);
    if (!kc_buf_get_u32(&b, &plen))
        return kc_pgwire_eagain(err, "startup packet", len, 4);
    if (plen < 8) {
        *size = 0;
        kc_error_set(err, KC_EPROTO, "invalid length of startup packet");
        kc_error_detail(err, "The length field says %u bytes; a startup packet has at least 8.",
                        plen);
        return KC_EPROTO;
    }
    if (plen > max_len) {
        *size = 0;
        kc_error_set(err, KC_ETOOBIG, "startup packet of %u bytes is too large", plen);
        kc_error_detail(err, "A startup packet may have at most %zu bytes.", max_len);
        return KC_ETOOBIG;
    }
    *size = plen;
    if (len < plen)
        return kc_pgwire_eagain(err, "startup packet", len, plen);
    if (!kc_buf_get_u32(&b, &code)) /* cannot fail: plen >= 8 bytes are present */
        return kc_pgwire_eagain(err, "startup packet", len, plen);
    return kc_pgwire_startup_body(plen, code, data + 8, out, err);
}

int kc_pgwire_replication_parse(const char *value, enum kc_pgwire_replication *out,
                                struct kc_error *err)
{
    static const char *const on[] = {"true", "on", "yes", "1"};
    static const char *const off[] = {"false", "off", "no", "0"};

    if (strcmp(value, "database") == 0) {
        *out = KC_PGWIRE_REPLICATION_DATABASE;
        return 0;
    }
    for (size_t i = 0; i < KC_ARRAY_LEN(on); i++) {
        if (strcasecmp(value, on[i]) == 0) {
            *out = KC_PGWIRE_REPLICATION_PHYSICAL;
            return 0;
        }
        if (strcasecmp(value, off[i]) == 0) {
            *out = KC_PGWIRE_REPLICATION_OFF;
            return 0;
        }
    }
    kc_error_set(err, KC_EINVAL, "invalid value for parameter \"replication\": \"%.64s\"", value);
    kc_error_hint(err, "Valid values are: \"false\", 0, \"true\", 1, \"database\".");
    return KC_EINVAL;
}

/* ---- typed messages ---------------------------------------------------- */

int kc_pgwire_msg_decode(const uint8_t *data, size_t len, size_t max_payload,
                         struct kc_pgwire_msg *out, size_t *size, struct kc_error *err)
{
    struct kc_buf b;
    uint8_t type;
    uint32_t mlen;

    *size = KC_PGWIRE_HEADER_SIZE;
    kc_buf_init(&b, data, len);
    if (!kc_buf_get_u8(&b, &type) || !kc_buf_get_u32(&b, &mlen))
        return kc_pgwire_eagain(err, "message header", len, KC_PGWIRE_HEADER_SIZE);
    if (mlen < 4) {
        *size = 0;
        kc_error_set(err, KC_EPROTO, "invalid message length %u", mlen);
        kc_error_detail(err,
                        "The length of a message of type 0x%02x counts itself and is at "
                        "least 4.",
                        type);
        return KC_EPROTO;
    }
    if (mlen - 4 > max_payload) {
        *size = 0;
        kc_error_set(err, KC_ETOOBIG, "message of %u bytes is too large", mlen - 4);
        kc_error_detail(err, "A message (type 0x%02x) may carry at most %zu bytes here.", type,
                        max_payload);
        return KC_ETOOBIG;
    }
    *size = (size_t)mlen + 1;
    if (len < *size)
        return kc_pgwire_eagain(err, "message", len, *size);
    out->type = type;
    out->len = mlen - 4;
    out->payload = data + KC_PGWIRE_HEADER_SIZE;
    return 0;
}

/* A body that is exactly one NUL-terminated string. */
static int kc_pgwire_parse_cstr_body(const struct kc_pgwire_msg *m, const char *what,
                                     const char **out, struct kc_error *err)
{
    struct kc_buf b;
    const char *s;

    kc_buf_init(&b, m->payload, m->len);
    if (!kc_pgwire_get_cstr(&b, &s)) {
        kc_error_set(err, KC_EPROTO, "invalid %s message", what);
        kc_error_detail(err, "The %u-byte body is not a zero-terminated string.", m->len);
        return KC_EPROTO;
    }
    if (kc_buf_remaining(&b) != 0) {
        kc_error_set(err, KC_EPROTO, "invalid %s message", what);
        kc_error_detail(err, "%zu bytes follow the string's terminator.", kc_buf_remaining(&b));
        return KC_EPROTO;
    }
    *out = s;
    return 0;
}

int kc_pgwire_parse_query(const struct kc_pgwire_msg *m, const char **out, struct kc_error *err)
{
    return kc_pgwire_parse_cstr_body(m, "Query", out, err);
}

int kc_pgwire_parse_copy_fail(const struct kc_pgwire_msg *m, const char **out, struct kc_error *err)
{
    return kc_pgwire_parse_cstr_body(m, "CopyFail", out, err);
}

int kc_pgwire_parse_password(const struct kc_pgwire_msg *m, const char **out, struct kc_error *err)
{
    return kc_pgwire_parse_cstr_body(m, "password", out, err);
}

int kc_pgwire_parse_sasl_initial(const struct kc_pgwire_msg *m, const char **mechanism,
                                 const uint8_t **data, size_t *data_len, struct kc_error *err)
{
    struct kc_buf b;
    uint32_t dlen;
    const char *mech;

    kc_buf_init(&b, m->payload, m->len);
    if (!kc_pgwire_get_cstr(&b, &mech) || !kc_buf_get_u32(&b, &dlen))
        goto bad;
    *data = NULL;
    *data_len = 0;
    if (dlen != UINT32_MAX) { /* -1: no initial response */
        if (!kc_buf_get_ref(&b, data, dlen))
            goto bad;
        *data_len = dlen;
    }
    if (kc_buf_remaining(&b) != 0)
        goto bad;
    *mechanism = mech;
    return 0;
bad:
    kc_error_set(err, KC_EPROTO, "invalid SASLInitialResponse message");
    kc_error_detail(err,
                    "The %u-byte body does not hold a mechanism name and a response of the "
                    "announced length.",
                    m->len);
    return KC_EPROTO;
}

static void kc_pgwire_copy_field(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int kc_pgwire_parse_error_response(const struct kc_pgwire_msg *m, char severity[16],
                                   char sqlstate[6], struct kc_error *fields, struct kc_error *err)
{
    struct kc_buf b;
    bool have_v = false;

    severity[0] = sqlstate[0] = '\0';
    kc_error_clear(fields);
    kc_buf_init(&b, m->payload, m->len);
    for (;;) {
        uint8_t code;
        const char *val;

        if (!kc_buf_get_u8(&b, &code))
            goto bad;
        if (code == 0)
            break;
        if (!kc_pgwire_get_cstr(&b, &val))
            goto bad;
        switch (code) {
        case 'S':
            if (!have_v)
                kc_pgwire_copy_field(severity, 16, val);
            break;
        case 'V':
            have_v = true;
            kc_pgwire_copy_field(severity, 16, val);
            break;
        case 'C': kc_pgwire_copy_field(sqlstate, 6, val); break;
        case 'M': kc_pgwire_copy_field(fields->message, sizeof(fields->message), val); break;
        case 'D': kc_pgwire_copy_field(fields->detail, sizeof(fields->detail), val); break;
        case 'H': kc_pgwire_copy_field(fields->hint, sizeof(fields->hint), val); break;
        default: break;
        }
    }
    if (kc_buf_remaining(&b) != 0 || fields->message[0] == '\0')
        goto bad;
    fields->code = KC_EPROTO;
    return 0;
bad:
    kc_error_set(err, KC_EPROTO, "invalid %s message",
                 m->type == 'N' ? "NoticeResponse" : "ErrorResponse");
    kc_error_detail(err,
                    "The %u-byte body is not a list of terminated fields with a message, "
                    "ended by a zero byte.",
                    m->len);
    return KC_EPROTO;
}

/* ---- builders ---------------------------------------------------------- */

size_t kc_pgwire_msg_begin(struct kc_sbuf *out, uint8_t type)
{
    size_t start = out->len;

    kc_sbuf_put_u8(out, type);
    kc_sbuf_put_u32(out, 0); /* length, filled by kc_pgwire_msg_finish */
    return start;
}

void kc_pgwire_msg_finish(struct kc_sbuf *out, size_t start)
{
    size_t body;

    if (start > out->len || out->len - start < KC_PGWIRE_HEADER_SIZE)
        abort();
    body = out->len - start - KC_PGWIRE_HEADER_SIZE;
    if (body > KC_PGWIRE_SEND_MAX)
        abort();
    kc_store_u32(out->data + start + 1, (uint32_t)body + 4);
}

static void kc_pgwire_put_cstr(struct kc_sbuf *out, const char *s)
{
    kc_sbuf_append(out, s, strlen(s) + 1);
}

static void kc_pgwire_put_auth(struct kc_sbuf *out, uint32_t code, const void *data, size_t len)
{
    size_t m = kc_pgwire_msg_begin(out, 'R');

    kc_sbuf_put_u32(out, code);
    kc_sbuf_append(out, data, len);
    kc_pgwire_msg_finish(out, m);
}

void kc_pgwire_put_auth_ok(struct kc_sbuf *out)
{
    kc_pgwire_put_auth(out, 0, NULL, 0);
}

void kc_pgwire_put_auth_cleartext(struct kc_sbuf *out)
{
    kc_pgwire_put_auth(out, 3, NULL, 0);
}

void kc_pgwire_put_auth_sasl(struct kc_sbuf *out, const char *const *mechanisms, size_t n)
{
    size_t m = kc_pgwire_msg_begin(out, 'R');

    kc_sbuf_put_u32(out, 10);
    for (size_t i = 0; i < n; i++)
        kc_pgwire_put_cstr(out, mechanisms[i]);
    kc_sbuf_put_u8(out, 0);
    kc_pgwire_msg_finish(out, m);
}

void kc_pgwire_put_auth_sasl_continue(struct kc_sbuf *out, const void *data, size_t len)
{
    kc_pgwire_put_auth(out, 11, data, len);
}

void kc_pgwire_put_auth_sasl_final(struct kc_sbuf *out, const void *data, size_t len)
{
    kc_pgwire_put_auth(out, 12, data, len);
}

void kc_pgwire_put_negotiate_version(struct kc_sbuf *out, uint32_t newest_minor,
                                     const char *const *unknown, size_t n)
{
    size_t m = kc_pgwire_msg_begin(out, 'v');

    kc_sbuf_put_u32(out, KC_PGWIRE_PROTOCOL(3, newest_minor));
    kc_sbuf_put_u32(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        kc_pgwire_put_cstr(out, unknown[i]);
    kc_pgwire_msg_finish(out, m);
}

void kc_pgwire_put_parameter_status(struct kc_sbuf *out, const char *name, const char *value)
{
    size_t m = kc_pgwire_msg_begin(out, 'S');

    kc_pgwire_put_cstr(out, name);
    kc_pgwire_put_cstr(out, value);
    kc_pgwire_msg_finish(out, m);
}

void kc_pgwire_put_backend_key_data(struct kc_sbuf *out, uint32_t pid, uint32_t key)
{
    size_t m = kc_pgwire_msg_begin(out, 'K');

    kc_sbuf_put_u32(out, pid);
    kc_sbuf_put_u32(out, key);
    kc_pgwire_msg_finish(out, m);
}

void kc_pgwire_put_ready_for_query(struct kc_sbuf *out, char status)
{
    size_t m = kc_pgwire_msg_begin(out, 'Z');

    kc_sbuf_put_u8(out, (uint8_t)status);
    kc_pgwire_msg_finish(out, m);
}

static uint16_t kc_pgwire_typlen(uint32_t oid)
{
    switch (oid) {
    case KC_PGWIRE_OID_BOOL: return 1;
    case KC_PGWIRE_OID_INT4: return 4;
    case KC_PGWIRE_OID_INT8: return 8;
    default: return 0xffff; /* -1: variable length */
    }
}

void kc_pgwire_put_row_description(struct kc_sbuf *out, const struct kc_pgwire_column *cols,
                                   size_t n)
{
    size_t m;

    if (n > INT16_MAX)
        abort();
    m = kc_pgwire_msg_begin(out, 'T');
    kc_sbuf_put_u16(out, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        kc_pgwire_put_cstr(out, cols[i].name);
        kc_sbuf_put_u32(out, 0); /* table OID: not a table column */
        kc_sbuf_put_u16(out, 0); /* attribute number */
        kc_sbuf_put_u32(out, cols[i].type_oid);
        kc_sbuf_put_u16(out, kc_pgwire_typlen(cols[i].type_oid));
        kc_sbuf_put_u32(out, UINT32_MAX); /* typmod -1 */
        kc_sbuf_put_u16(out, 0);          /* text format */
    }
    kc_pgwire_msg_finish(out, m);
}

static int kc_pgwire_too_big(struct kc_error *err, const char *what, size_t len)
{
    kc_error_set(err, KC_ETOOBIG, "%s of %zu bytes is too large to send", what, len);
    kc_error_detail(err, "A message body is at most %u bytes.", KC_PGWIRE_SEND_MAX);
    return KC_ETOOBIG;
}

int kc_pgwire_put_data_row(struct kc_sbuf *out, const char *const *values, const size_t *lens,
                           size_t n, struct kc_error *err)
{
    size_t total = 2;
    size_t m;

    if (n > INT16_MAX)
        return kc_error_set(err, KC_ETOOBIG, "a row of %zu columns is too wide", n);
    for (size_t i = 0; i < n; i++) {
        size_t l = values[i] == NULL ? 0 : (lens != NULL ? lens[i] : strlen(values[i]));
        if (l > KC_PGWIRE_SEND_MAX || total + 4 + l > KC_PGWIRE_SEND_MAX)
            return kc_pgwire_too_big(err, "data row", total + 4 + l);
        total += 4 + l;
    }
    m = kc_pgwire_msg_begin(out, 'D');
    kc_sbuf_reserve(out, total);
    kc_sbuf_put_u16(out, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        size_t l;

        if (values[i] == NULL) {
            kc_sbuf_put_u32(out, UINT32_MAX); /* -1: NULL */
            continue;
        }
        l = lens != NULL ? lens[i] : strlen(values[i]);
        kc_sbuf_put_u32(out, (uint32_t)l);
        kc_sbuf_append(out, values[i], l);
    }
    kc_pgwire_msg_finish(out, m);
    return 0;
}

void kc_pgwire_put_command_complete(struct kc_sbuf *out, const char *tag)
{
    size_t m = kc_pgwire_msg_begin(out, 'C');

    kc_pgwire_put_cstr(out, tag);
    kc_pgwire_msg_finish(out, m);
}

void kc_pgwire_put_empty_query(struct kc_sbuf *out)
{
    kc_pgwire_msg_finish(out, kc_pgwire_msg_begin(out, 'I'));
}

static void kc_pgwire_put_fields(struct kc_sbuf *out, uint8_t type, const char *severity,
                                 const char *sqlstate, const struct kc_error *err)
{
    size_t m = kc_pgwire_msg_begin(out, type);
    const char *msg = err != NULL && err->message[0] != '\0' ? err->message : "internal error";

    if (sqlstate == NULL || strlen(sqlstate) != 5)
        sqlstate = KC_SQLSTATE_INTERNAL_ERROR;

    kc_sbuf_put_u8(out, 'S');
    kc_pgwire_put_cstr(out, severity);
    kc_sbuf_put_u8(out, 'V');
    kc_pgwire_put_cstr(out, severity);
    kc_sbuf_put_u8(out, 'C');
    kc_pgwire_put_cstr(out, sqlstate);
    kc_sbuf_put_u8(out, 'M');
    kc_pgwire_put_cstr(out, msg);
    if (err != NULL && err->detail[0] != '\0') {
        kc_sbuf_put_u8(out, 'D');
        kc_pgwire_put_cstr(out, err->detail);
    }
    if (err != NULL && err->hint[0] != '\0') {
        kc_sbuf_put_u8(out, 'H');
        kc_pgwire_put_cstr(out, err->hint);
    }
    kc_sbuf_put_u8(out, 0);
    kc_pgwire_msg_finish(out, m);
}

void kc_pgwire_put_error(struct kc_sbuf *out, const char *severity, const char *sqlstate,
                         const struct kc_error *err)
{
    kc_pgwire_put_fields(out, 'E', severity, sqlstate, err);
}

void kc_pgwire_put_notice(struct kc_sbuf *out, const char *severity, const char *sqlstate,
                          const struct kc_error *err)
{
    kc_pgwire_put_fields(out, 'N', severity, sqlstate, err);
}

static void kc_pgwire_put_copy_response(struct kc_sbuf *out, uint8_t type, uint16_t ncols)
{
    size_t m = kc_pgwire_msg_begin(out, type);

    kc_sbuf_put_u8(out, 0); /* overall format: text */
    kc_sbuf_put_u16(out, ncols);
    for (uint16_t i = 0; i < ncols; i++)
        kc_sbuf_put_u16(out, 0);
    kc_pgwire_msg_finish(out, m);
}

void kc_pgwire_put_copy_both_response(struct kc_sbuf *out, uint16_t ncols)
{
    kc_pgwire_put_copy_response(out, 'W', ncols);
}

void kc_pgwire_put_copy_out_response(struct kc_sbuf *out, uint16_t ncols)
{
    kc_pgwire_put_copy_response(out, 'H', ncols);
}

int kc_pgwire_put_copy_data(struct kc_sbuf *out, const void *data, size_t len, struct kc_error *err)
{
    size_t m;

    if (len > KC_PGWIRE_SEND_MAX)
        return kc_pgwire_too_big(err, "CopyData message", len);
    m = kc_pgwire_msg_begin(out, 'd');
    kc_sbuf_append(out, data, len);
    kc_pgwire_msg_finish(out, m);
    return 0;
}

void kc_pgwire_put_copy_done(struct kc_sbuf *out)
{
    kc_pgwire_msg_finish(out, kc_pgwire_msg_begin(out, 'c'));
}

/* ---- handshake --------------------------------------------------------- */

void kc_pgwire_handshake_init(struct kc_pgwire_handshake *hs)
{
    memset(hs, 0, sizeof(*hs));
}

static void kc_pgwire_wipe_password(struct kc_pgwire_handshake *hs)
{
    if (hs->password != NULL) {
        explicit_bzero(hs->password, strlen(hs->password));
        free(hs->password);
        hs->password = NULL;
    }
}

void kc_pgwire_handshake_fini(struct kc_pgwire_handshake *hs)
{
    kc_pgwire_startup_fini(&hs->startup);
    kc_pgwire_wipe_password(hs);
}

/* Write a FATAL for e into out, copy e to err, and fail the handshake. */
static int kc_pgwire_hs_fail(struct kc_pgwire_handshake *hs, const char *sqlstate,
                             const struct kc_error *e, struct kc_sbuf *out, struct kc_error *err)
{
    kc_pgwire_put_error(out, KC_PGWIRE_FATAL, sqlstate, e);
    if (err != NULL)
        *err = *e;
    hs->state = KC_PGWIRE_HS_FAILED;
    return e->code < 0 ? e->code : KC_EPROTO;
}

static const char *kc_pgwire_sqlstate_of(int rc)
{
    switch (rc) {
    case KC_EVERSION: return KC_SQLSTATE_FEATURE_NOT_SUPPORTED;
    case KC_ENOMEM: return KC_SQLSTATE_OUT_OF_MEMORY;
    default: return KC_SQLSTATE_PROTOCOL_VIOLATION;
    }
}

/* Send NegotiateProtocolVersion when the client asked for 3.1+ or sent _pq_ options. */
static void kc_pgwire_hs_negotiate(const struct kc_pgwire_startup *su, struct kc_sbuf *out)
{
    const char *unknown[64];
    size_t n = 0;

    for (size_t i = 0; i < su->nparams && n < KC_ARRAY_LEN(unknown); i++)
        if (strncmp(su->params[i].name, "_pq_.", 5) == 0)
            unknown[n++] = su->params[i].name;
    if (n > 0 || KC_PGWIRE_PROTOCOL_MINOR(su->code) > 0)
        kc_pgwire_put_negotiate_version(out, 0, unknown, n);
}

/* An SSLRequest or GSSENCRequest: answer 'N' once, and only when nothing follows it. */
static int kc_pgwire_hs_encryption(struct kc_pgwire_handshake *hs, bool ssl, size_t size,
                                   size_t len, size_t *consumed, struct kc_sbuf *out,
                                   struct kc_error *err)
{
    struct kc_error e = {0};
    bool *answered = ssl ? &hs->ssl_answered : &hs->gss_answered;
    const char *what = ssl ? "SSL" : "GSSAPI encryption";

    if (*answered) {
        kc_error_set(&e, KC_EPROTO, "duplicate %s request", what);
        kc_error_detail(&e, "The server already declined %s on this connection.", what);
        return kc_pgwire_hs_fail(hs, KC_SQLSTATE_PROTOCOL_VIOLATION, &e, out, err);
    }
    if (len > size) {
        kc_error_set(&e, KC_EPROTO, "received unencrypted data after %s request", what);
        kc_error_detail(&e, "The client sent %zu bytes before reading the server's answer.",
                        len - size);
        return kc_pgwire_hs_fail(hs, KC_SQLSTATE_PROTOCOL_VIOLATION, &e, out, err);
    }
    *answered = true;
    kc_sbuf_put_u8(out, 'N'); /* not supported: the client goes on in plain text or gives up */
    *consumed = size;
    return 0;
}

static int kc_pgwire_hs_startup(struct kc_pgwire_handshake *hs, const uint8_t *data, size_t len,
                                size_t *consumed, enum kc_pgwire_hs_event *ev, struct kc_sbuf *out,
                                struct kc_error *err)
{
    struct kc_error e = {0};
    struct kc_pgwire_startup su = {0};
    size_t size = 0;
    int rc = kc_pgwire_startup_decode(data, len, KC_PGWIRE_STARTUP_MAX, &su, &size, &e);

    if (rc == KC_EAGAIN) {
        if (err != NULL)
            *err = e;
        return rc;
    }
    if (rc < 0)
        return kc_pgwire_hs_fail(hs, kc_pgwire_sqlstate_of(rc), &e, out, err);
    if (su.kind == KC_PGWIRE_SSL_REQUEST || su.kind == KC_PGWIRE_GSSENC_REQUEST) {
        *ev = KC_PGWIRE_HS_EV_REPLIED;
        return kc_pgwire_hs_encryption(hs, su.kind == KC_PGWIRE_SSL_REQUEST, size, len, consumed,
                                       out, err);
    }
    *consumed = size;
    if (su.kind == KC_PGWIRE_CANCEL_REQUEST) {
        hs->startup = su;
        hs->state = KC_PGWIRE_HS_FAILED;
        *ev = KC_PGWIRE_HS_EV_CANCEL;
        return 0;
    }
    if (su.user == NULL || su.user[0] == '\0') {
        kc_pgwire_startup_fini(&su);
        kc_error_set(&e, KC_EINVAL, "no PostgreSQL user name specified in startup packet");
        kc_error_hint(&e, "Give a user name in the connection string (user=...).");
        return kc_pgwire_hs_fail(hs, KC_SQLSTATE_INVALID_AUTH_SPEC, &e, out, err);
    }
    if (su.replication_value != NULL &&
        kc_pgwire_replication_parse(su.replication_value, &su.replication, &e) < 0) {
        kc_pgwire_startup_fini(&su);
        return kc_pgwire_hs_fail(hs, KC_SQLSTATE_INVALID_PARAMETER, &e, out, err);
    }
    kc_pgwire_hs_negotiate(&su, out);
    hs->startup = su;
    hs->state = KC_PGWIRE_HS_AUTH;
    *ev = KC_PGWIRE_HS_EV_STARTUP;
    return 0;
}

static int kc_pgwire_hs_password(struct kc_pgwire_handshake *hs, const uint8_t *data, size_t len,
                                 size_t *consumed, enum kc_pgwire_hs_event *ev, struct kc_sbuf *out,
                                 struct kc_error *err)
{
    struct kc_error e = {0};
    struct kc_pgwire_msg m;
    size_t size = 0;
    const char *pw;
    int rc = kc_pgwire_msg_decode(data, len, KC_PGWIRE_STARTUP_MAX, &m, &size, &e);

    if (rc == KC_EAGAIN) {
        if (err != NULL)
            *err = e;
        return rc;
    }
    if (rc < 0)
        return kc_pgwire_hs_fail(hs, KC_SQLSTATE_PROTOCOL_VIOLATION, &e, out, err);
    if (m.type == KC_PGWIRE_MSG_TERMINATE) {
        *consumed = size;
        hs->state = KC_PGWIRE_HS_FAILED;
        *ev = KC_PGWIRE_HS_EV_CLOSE;
        return 0;
    }
    if (m.type != KC_PGWIRE_MSG_PASSWORD) {
        kc_error_set(&e, KC_EPROTO, "expected password response, got message type %u", m.type);
        return kc_pgwire_hs_fail(hs, KC_SQLSTATE_PROTOCOL_VIOLATION, &e, out, err);
    }
    if (hs->password != NULL) {
        kc_error_set(&e, KC_EPROTO, "unexpected second password message");
        kc_error_detail(&e, "The client must wait for the answer to its password.");
        return kc_pgwire_hs_fail(hs, KC_SQLSTATE_PROTOCOL_VIOLATION, &e, out, err);
    }
    rc = kc_pgwire_parse_password(&m, &pw, &e);
    if (rc < 0)
        return kc_pgwire_hs_fail(hs, KC_SQLSTATE_PROTOCOL_VIOLATION, &e, out, err);
    hs->password = kc_strdup(pw);
    *consumed = size;
    *ev = KC_PGWIRE_HS_EV_PASSWORD;
    return 0;
}

int kc_pgwire_handshake_feed(struct kc_pgwire_handshake *hs, const uint8_t *data, size_t len,
                             size_t *consumed, enum kc_pgwire_hs_event *ev, struct kc_sbuf *out,
                             struct kc_error *err)
{
    *consumed = 0;
    switch (hs->state) {
    case KC_PGWIRE_HS_STARTUP: return kc_pgwire_hs_startup(hs, data, len, consumed, ev, out, err);
    case KC_PGWIRE_HS_PASSWORD: return kc_pgwire_hs_password(hs, data, len, consumed, ev, out, err);
    default:
        return kc_error_set(err, KC_EINVAL, "the handshake does not read input in state %d",
                            (int)hs->state);
    }
}

void kc_pgwire_handshake_accept(struct kc_pgwire_handshake *hs,
                                const struct kc_pgwire_param *params, size_t nparams, uint32_t pid,
                                uint32_t key, struct kc_sbuf *out)
{
    kc_pgwire_wipe_password(hs);
    kc_pgwire_put_auth_ok(out);
    for (size_t i = 0; i < nparams; i++)
        kc_pgwire_put_parameter_status(out, params[i].name, params[i].value);
    kc_pgwire_put_backend_key_data(out, pid, key);
    kc_pgwire_put_ready_for_query(out, 'I');
    hs->state = KC_PGWIRE_HS_DONE;
}

void kc_pgwire_handshake_ask_password(struct kc_pgwire_handshake *hs, struct kc_sbuf *out)
{
    kc_pgwire_wipe_password(hs);
    kc_pgwire_put_auth_cleartext(out);
    hs->state = KC_PGWIRE_HS_PASSWORD;
}

void kc_pgwire_handshake_reject(struct kc_pgwire_handshake *hs, const char *sqlstate,
                                const struct kc_error *err, struct kc_sbuf *out)
{
    kc_pgwire_wipe_password(hs);
    kc_pgwire_put_error(out, KC_PGWIRE_FATAL, sqlstate, err);
    hs->state = KC_PGWIRE_HS_FAILED;
}
