/* SPDX-License-Identifier: Apache-2.0 */
/* pgwire_test.c -- unit tests for pgwire.c: startup packets, messages, builders, the handshake. */
#include "common/pgwire.h"

#include <stdlib.h>

#include "unit.h"

/* Deterministic PRNG (splitmix64) so failures reproduce. */
static uint64_t kt_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A startup packet with protocol code and NULL-terminated name, value, ... list. */
static void kt_startup(struct kc_sbuf *s, uint32_t code, const char *const *kv)
{
    size_t start = s->len;

    kc_sbuf_put_u32(s, 0);
    kc_sbuf_put_u32(s, code);
    for (size_t i = 0; kv != NULL && kv[i] != NULL; i++)
        kc_sbuf_append(s, kv[i], strlen(kv[i]) + 1);
    if (code >> 16 == 3)
        kc_sbuf_put_u8(s, 0);
    kc_sbuf_patch_u32(s, start, (uint32_t)(s->len - start));
}

/* A typed frontend message. */
static void kt_msg(struct kc_sbuf *s, uint8_t type, const void *body, size_t len)
{
    kc_sbuf_put_u8(s, type);
    kc_sbuf_put_u32(s, (uint32_t)len + 4);
    kc_sbuf_append(s, body, len);
}

/* Decode the next message of out at *pos; fails the test when there is none. */
static struct kc_pgwire_msg kt_next(const struct kc_sbuf *out, size_t *pos)
{
    struct kc_pgwire_msg m;
    size_t size = 0;
    int rc = kc_pgwire_msg_decode(out->data + *pos, out->len - *pos, 1u << 20, &m, &size, NULL);

    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "no complete message at offset %zu (rc %d)", *pos, rc);
    *pos += size;
    return m;
}

static bool kt_is_code(int rc)
{
    return rc == 0 || rc == KC_EAGAIN || rc == KC_EPROTO || rc == KC_ETOOBIG || rc == KC_EVERSION ||
           rc == KC_EINVAL;
}

KT_TEST(pgwire_startup_decode_fields)
{
    static const char *const kv[] = {"user",
                                     "alice",
                                     "database",
                                     "db1",
                                     "replication",
                                     "true",
                                     "application_name",
                                     "walrcv",
                                     "options",
                                     "-c x=1",
                                     "client_encoding",
                                     "UTF8",
                                     "user",
                                     "bob",
                                     NULL};
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_pgwire_startup su;
    size_t size = 0;

    kt_startup(&s, KC_PGWIRE_PROTOCOL_LATEST, kv);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(s.data, s.len, KC_PGWIRE_STARTUP_MAX, &su, &size, NULL),
                 0);
    KT_ASSERT_EQ(size, s.len);
    KT_ASSERT_EQ(su.kind, KC_PGWIRE_STARTUP_MESSAGE);
    KT_ASSERT_UEQ(su.code, 0x30000);
    KT_ASSERT_EQ(su.nparams, 7);
    KT_ASSERT_STR_EQ(su.user, "bob"); /* the last one wins */
    KT_ASSERT_STR_EQ(su.database, "db1");
    KT_ASSERT_STR_EQ(su.application_name, "walrcv");
    KT_ASSERT_STR_EQ(su.options, "-c x=1");
    KT_ASSERT_STR_EQ(su.replication_value, "true");
    KT_ASSERT_STR_EQ(kc_pgwire_startup_get(&su, "client_encoding"), "UTF8");
    KT_ASSERT(kc_pgwire_startup_get(&su, "nope") == NULL);
    kc_pgwire_startup_fini(&su);
    KT_ASSERT(su.params == NULL && su.nparams == 0);
    kc_pgwire_startup_fini(&su); /* twice is fine */

    /* database defaults to the user */
    kc_sbuf_reset(&s);
    kt_startup(&s, KC_PGWIRE_PROTOCOL_LATEST, (const char *const[]){"user", "carol", NULL});
    KT_ASSERT_EQ(kc_pgwire_startup_decode(s.data, s.len, KC_PGWIRE_STARTUP_MAX, &su, &size, NULL),
                 0);
    KT_ASSERT_STR_EQ(su.database, "carol");
    KT_ASSERT(su.application_name == NULL && su.replication_value == NULL);
    kc_pgwire_startup_fini(&su);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_startup_decode_requests)
{
    uint8_t ssl[8], gss[8], cancel[16];
    struct kc_pgwire_startup su;
    struct kc_error err;
    size_t size;

    kc_store_u32(ssl, 8);
    kc_store_u32(ssl + 4, KC_PGWIRE_SSL_REQUEST_CODE);
    kc_store_u32(gss, 8);
    kc_store_u32(gss + 4, KC_PGWIRE_GSSENC_REQUEST_CODE);
    kc_store_u32(cancel, 16);
    kc_store_u32(cancel + 4, KC_PGWIRE_CANCEL_REQUEST_CODE);
    kc_store_u32(cancel + 8, 4242);
    kc_store_u32(cancel + 12, 0xdeadbeef);
    KT_ASSERT_UEQ(kc_load_u32(ssl + 4), 80877103);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(ssl, 8, KC_PGWIRE_STARTUP_MAX, &su, &size, NULL), 0);
    KT_ASSERT_EQ(su.kind, KC_PGWIRE_SSL_REQUEST);
    KT_ASSERT_EQ(size, 8);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(gss, 8, KC_PGWIRE_STARTUP_MAX, &su, &size, NULL), 0);
    KT_ASSERT_EQ(su.kind, KC_PGWIRE_GSSENC_REQUEST);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(cancel, 16, KC_PGWIRE_STARTUP_MAX, &su, &size, NULL), 0);
    KT_ASSERT_EQ(su.kind, KC_PGWIRE_CANCEL_REQUEST);
    KT_ASSERT_UEQ(su.cancel_pid, 4242);
    KT_ASSERT_UEQ(su.cancel_key, 0xdeadbeef);
    kc_pgwire_startup_fini(&su);

    /* wrong lengths */
    kc_store_u32(cancel, 12);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(cancel, 12, KC_PGWIRE_STARTUP_MAX, &su, &size, &err),
                 KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "cancel request");
    kc_store_u32(cancel, 16);
    kc_store_u32(cancel + 4, KC_PGWIRE_SSL_REQUEST_CODE);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(cancel, 16, KC_PGWIRE_STARTUP_MAX, &su, &size, &err),
                 KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "SSL request");
}

KT_TEST(pgwire_startup_decode_incremental)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_pgwire_startup su;
    size_t size;

    kt_startup(&s, KC_PGWIRE_PROTOCOL_LATEST, (const char *const[]){"user", "u", NULL});
    for (size_t n = 0; n < s.len; n++) {
        struct kc_error err;
        KT_ASSERT_EQ(kc_pgwire_startup_decode(s.data, n, KC_PGWIRE_STARTUP_MAX, &su, &size, &err),
                     KC_EAGAIN);
        KT_ASSERT_EQ(size, n < 4 ? 4 : s.len);
        KT_ASSERT_CONTAINS(err.message, "incomplete startup packet");
    }
    KT_ASSERT_EQ(kc_pgwire_startup_decode(s.data, s.len, KC_PGWIRE_STARTUP_MAX, &su, &size, NULL),
                 0);
    kc_pgwire_startup_fini(&su);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_startup_decode_malformed)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_pgwire_startup su;
    struct kc_error err;
    uint8_t p[12];
    size_t size;

    /* length below 8, and huge lengths refused from the first 4 bytes */
    kc_store_u32(p, 7);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(p, 4, 10240, &su, &size, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "invalid length of startup packet");
    kc_store_u32(p, 10241);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(p, 4, 10240, &su, &size, &err), KC_ETOOBIG);
    kc_store_u32(p, 0xffffffffu);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(p, 4, 10240, &su, &size, &err), KC_ETOOBIG);

    /* protocol 2.0 and 4.0 */
    kt_startup(&s, KC_PGWIRE_PROTOCOL(2, 0), NULL);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(s.data, s.len, 10240, &su, &size, &err), KC_EVERSION);
    KT_ASSERT_CONTAINS(err.message, "unsupported frontend protocol 2.0");

    /* no terminator at all, a name without value, bytes after the terminator */
    kc_sbuf_reset(&s);
    kt_startup(&s, KC_PGWIRE_PROTOCOL(3, 0), NULL);
    s.len--; /* drop the terminator */
    kc_sbuf_patch_u32(&s, 0, (uint32_t)s.len);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(s.data, s.len, 10240, &su, &size, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "invalid startup packet layout");
    kc_sbuf_reset(&s);
    kc_sbuf_put_u32(&s, 0);
    kc_sbuf_put_u32(&s, KC_PGWIRE_PROTOCOL_LATEST);
    kc_sbuf_append(&s, "user\0", 5);
    kc_sbuf_patch_u32(&s, 0, (uint32_t)s.len);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(s.data, s.len, 10240, &su, &size, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.detail, "has no terminated value");
    kc_sbuf_reset(&s);
    kt_startup(&s, KC_PGWIRE_PROTOCOL(3, 0), (const char *const[]){"user", "u", NULL});
    kc_sbuf_put_u8(&s, 'x');
    kc_sbuf_patch_u32(&s, 0, (uint32_t)s.len);
    KT_ASSERT_EQ(kc_pgwire_startup_decode(s.data, s.len, 10240, &su, &size, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.detail, "follow the zero byte");
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_startup_decode_fuzz)
{
    uint64_t rng = 7;
    struct kc_sbuf s = KC_SBUF_INIT;
    uint8_t buf[256];

    kt_startup(&s, KC_PGWIRE_PROTOCOL_LATEST,
               (const char *const[]){"user", "u", "database", "d", "replication", "on", NULL});
    for (int i = 0; i < 20000; i++) {
        struct kc_pgwire_startup su;
        size_t size, n;
        int rc;

        if (i % 2 == 0) { /* bit flips and truncations of a valid packet */
            n = s.len;
            memcpy(buf, s.data, n);
            buf[kt_rng(&rng) % n] ^= (uint8_t)(1u << (kt_rng(&rng) % 8));
            n = kt_rng(&rng) % 4 == 0 ? kt_rng(&rng) % (n + 1) : n;
        } else { /* random bytes with a plausible length */
            n = kt_rng(&rng) % sizeof(buf);
            for (size_t j = 0; j < n; j++)
                buf[j] = (uint8_t)kt_rng(&rng);
            if (n >= 8 && kt_rng(&rng) % 2 == 0)
                kc_store_u32(buf, (uint32_t)n);
            if (n >= 8 && kt_rng(&rng) % 2 == 0)
                kc_store_u32(buf + 4, KC_PGWIRE_PROTOCOL_LATEST);
        }
        rc = kc_pgwire_startup_decode(n > 0 ? buf : NULL, n, 10240, &su, &size, NULL);
        KT_ASSERT(kt_is_code(rc));
        if (rc == 0) {
            KT_ASSERT(size <= n);
            kc_pgwire_startup_fini(&su);
        }
    }
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_replication_parameter)
{
    enum kc_pgwire_replication r;
    struct kc_error err;

    KT_ASSERT_EQ(kc_pgwire_replication_parse("true", &r, NULL), 0);
    KT_ASSERT_EQ(r, KC_PGWIRE_REPLICATION_PHYSICAL);
    KT_ASSERT_EQ(kc_pgwire_replication_parse("ON", &r, NULL), 0);
    KT_ASSERT_EQ(r, KC_PGWIRE_REPLICATION_PHYSICAL);
    KT_ASSERT_EQ(kc_pgwire_replication_parse("1", &r, NULL), 0);
    KT_ASSERT_EQ(r, KC_PGWIRE_REPLICATION_PHYSICAL);
    KT_ASSERT_EQ(kc_pgwire_replication_parse("database", &r, NULL), 0);
    KT_ASSERT_EQ(r, KC_PGWIRE_REPLICATION_DATABASE);
    KT_ASSERT_EQ(kc_pgwire_replication_parse("No", &r, NULL), 0);
    KT_ASSERT_EQ(r, KC_PGWIRE_REPLICATION_OFF);
    KT_ASSERT_EQ(kc_pgwire_replication_parse("0", &r, NULL), 0);
    KT_ASSERT_EQ(r, KC_PGWIRE_REPLICATION_OFF);
    KT_ASSERT_EQ(kc_pgwire_replication_parse("physical", &r, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "invalid value for parameter \"replication\"");
    KT_ASSERT_CONTAINS(err.hint, "database");
    KT_ASSERT_EQ(kc_pgwire_replication_parse("", &r, NULL), KC_EINVAL);
}

KT_TEST(pgwire_msg_decode)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_pgwire_msg m;
    struct kc_error err;
    uint8_t h[5];
    size_t size;

    kt_msg(&s, 'Q', "SELECT 1", 9);
    for (size_t n = 0; n < s.len; n++) {
        KT_ASSERT_EQ(kc_pgwire_msg_decode(s.data, n, 100, &m, &size, NULL), KC_EAGAIN);
        KT_ASSERT_EQ(size, n < 5 ? 5 : s.len);
    }
    KT_ASSERT_EQ(kc_pgwire_msg_decode(s.data, s.len, 100, &m, &size, NULL), 0);
    KT_ASSERT_EQ(m.type, 'Q');
    KT_ASSERT_EQ(m.len, 9);
    KT_ASSERT_EQ(size, 14);
    KT_ASSERT_MEM_EQ(m.payload, "SELECT 1", 9);
    /* the limit is on the body, inclusive */
    KT_ASSERT_EQ(kc_pgwire_msg_decode(s.data, s.len, 9, &m, &size, NULL), 0);
    KT_ASSERT_EQ(kc_pgwire_msg_decode(s.data, 5, 8, &m, &size, &err), KC_ETOOBIG);
    KT_ASSERT_CONTAINS(err.message, "too large");

    h[0] = 'X';
    kc_store_u32(h + 1, 4);
    KT_ASSERT_EQ(kc_pgwire_msg_decode(h, 5, 0, &m, &size, NULL), 0);
    KT_ASSERT_EQ(m.len, 0);
    for (uint32_t bad = 0; bad < 4; bad++) {
        kc_store_u32(h + 1, bad);
        KT_ASSERT_EQ(kc_pgwire_msg_decode(h, 5, 100, &m, &size, &err), KC_EPROTO);
        KT_ASSERT_CONTAINS(err.message, "invalid message length");
    }
    kc_store_u32(h + 1, 0x80000000u); /* negative as an int32 */
    KT_ASSERT_EQ(kc_pgwire_msg_decode(h, 5, 1u << 20, &m, &size, NULL), KC_ETOOBIG);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_msg_decode_fuzz)
{
    uint64_t rng = 11;
    uint8_t buf[64];

    for (int i = 0; i < 50000; i++) {
        struct kc_pgwire_msg m;
        size_t n = kt_rng(&rng) % sizeof(buf), size;
        int rc;

        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)kt_rng(&rng);
        if (n >= 5 && kt_rng(&rng) % 2 == 0)
            kc_store_u32(buf + 1, (uint32_t)(kt_rng(&rng) % 70));
        rc = kc_pgwire_msg_decode(n > 0 ? buf : NULL, n, 32, &m, &size, NULL);
        KT_ASSERT(rc == 0 || rc == KC_EAGAIN || rc == KC_EPROTO || rc == KC_ETOOBIG);
        if (rc == 0) {
            KT_ASSERT(size <= n && m.len <= 32 && m.payload == buf + 5);
            const char *sql;
            if (kc_pgwire_parse_query(&m, &sql, NULL) == 0)
                KT_ASSERT_EQ(strlen(sql) + 1, m.len);
        }
    }
}

KT_TEST(pgwire_parse_string_bodies)
{
    struct kc_pgwire_msg m = {'Q', 9, (const uint8_t *)"SELECT 1"};
    struct kc_error err;
    const char *s;

    KT_ASSERT_EQ(kc_pgwire_parse_query(&m, &s, NULL), 0);
    KT_ASSERT_STR_EQ(s, "SELECT 1");
    m.len = 8; /* no terminator */
    KT_ASSERT_EQ(kc_pgwire_parse_query(&m, &s, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "invalid Query message");
    m = (struct kc_pgwire_msg){'Q', 5, (const uint8_t *)"a\0bc"}; /* embedded NUL */
    KT_ASSERT_EQ(kc_pgwire_parse_query(&m, &s, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.detail, "follow");
    m = (struct kc_pgwire_msg){'Q', 0, NULL};
    KT_ASSERT_EQ(kc_pgwire_parse_query(&m, &s, NULL), KC_EPROTO);
    m = (struct kc_pgwire_msg){'f', 5, (const uint8_t *)"oops"};
    KT_ASSERT_EQ(kc_pgwire_parse_copy_fail(&m, &s, NULL), 0);
    KT_ASSERT_STR_EQ(s, "oops");
    m = (struct kc_pgwire_msg){'p', 7, (const uint8_t *)"secret"};
    KT_ASSERT_EQ(kc_pgwire_parse_password(&m, &s, NULL), 0);
    KT_ASSERT_STR_EQ(s, "secret");
}

KT_TEST(pgwire_parse_sasl_initial)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_pgwire_msg m;
    const char *mech;
    const uint8_t *data;
    size_t dlen;

    kc_sbuf_append(&s, "SCRAM-SHA-256", 14);
    kc_sbuf_put_u32(&s, 3);
    kc_sbuf_append(&s, "n,,", 3);
    m = (struct kc_pgwire_msg){'p', (uint32_t)s.len, s.data};
    KT_ASSERT_EQ(kc_pgwire_parse_sasl_initial(&m, &mech, &data, &dlen, NULL), 0);
    KT_ASSERT_STR_EQ(mech, "SCRAM-SHA-256");
    KT_ASSERT_EQ(dlen, 3);
    KT_ASSERT_MEM_EQ(data, "n,,", 3);
    for (uint32_t n = 0; n < s.len; n++) { /* every truncation fails */
        m.len = n;
        KT_ASSERT_EQ(kc_pgwire_parse_sasl_initial(&m, &mech, &data, &dlen, NULL), KC_EPROTO);
    }
    kc_sbuf_reset(&s);
    kc_sbuf_append(&s, "X", 2);
    kc_sbuf_put_u32(&s, UINT32_MAX); /* -1: no data */
    m = (struct kc_pgwire_msg){'p', (uint32_t)s.len, s.data};
    KT_ASSERT_EQ(kc_pgwire_parse_sasl_initial(&m, &mech, &data, &dlen, NULL), 0);
    KT_ASSERT(data == NULL && dlen == 0);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_builders_known_bytes)
{
    static const uint8_t auth_ok[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
    static const uint8_t cleartext[] = {'R', 0, 0, 0, 8, 0, 0, 0, 3};
    static const uint8_t rfq[] = {'Z', 0, 0, 0, 5, 'I'};
    static const uint8_t key[] = {'K', 0, 0, 0, 12, 0, 0, 0x10, 0x92, 0xde, 0xad, 0xbe, 0xef};
    static const uint8_t ps[] = {'S', 0, 0, 0, 8, 'a', 0, 'b', 0};
    static const uint8_t cc[] = {'C', 0, 0, 0, 9, 'S', 'H', 'O', 'W', 0};
    static const uint8_t empty[] = {'I', 0, 0, 0, 4};
    static const uint8_t done[] = {'c', 0, 0, 0, 4};
    static const uint8_t both[] = {'W', 0, 0, 0, 7, 0, 0, 0};
    static const uint8_t out2[] = {'H', 0, 0, 0, 11, 0, 0, 2, 0, 0, 0, 0};
    static const uint8_t data[] = {'d', 0, 0, 0, 7, 'x', 'y', 'z'};
    struct kc_sbuf s = KC_SBUF_INIT;

#define KT_BYTES(call, want)                   \
    do {                                       \
        kc_sbuf_reset(&s);                     \
        call;                                  \
        KT_ASSERT_EQ(s.len, sizeof(want));     \
        KT_ASSERT_MEM_EQ(s.data, want, s.len); \
    } while (0)
    KT_BYTES(kc_pgwire_put_auth_ok(&s), auth_ok);
    KT_BYTES(kc_pgwire_put_auth_cleartext(&s), cleartext);
    KT_BYTES(kc_pgwire_put_ready_for_query(&s, 'I'), rfq);
    KT_BYTES(kc_pgwire_put_backend_key_data(&s, 4242, 0xdeadbeef), key);
    KT_BYTES(kc_pgwire_put_parameter_status(&s, "a", "b"), ps);
    KT_BYTES(kc_pgwire_put_command_complete(&s, "SHOW"), cc);
    KT_BYTES(kc_pgwire_put_empty_query(&s), empty);
    KT_BYTES(kc_pgwire_put_copy_done(&s), done);
    KT_BYTES(kc_pgwire_put_copy_both_response(&s, 0), both);
    KT_BYTES(kc_pgwire_put_copy_out_response(&s, 2), out2);
    KT_BYTES(KT_ASSERT_EQ(kc_pgwire_put_copy_data(&s, "xyz", 3, NULL), 0), data);
#undef KT_BYTES
    kc_sbuf_reset(&s);
    KT_ASSERT_EQ(kc_pgwire_put_copy_data(&s, "x", (size_t)KC_PGWIRE_SEND_MAX + 1, NULL),
                 KC_ETOOBIG);
    KT_ASSERT_EQ(s.len, 0);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_builders_sasl_and_negotiate)
{
    static const char *const mechs[] = {"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"};
    static const char *const unknown[] = {"_pq_.x"};
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_pgwire_msg m;
    size_t pos = 0;

    kc_pgwire_put_auth_sasl(&s, mechs, 2);
    kc_pgwire_put_auth_sasl_continue(&s, "r=abc", 5);
    kc_pgwire_put_auth_sasl_final(&s, "v=1", 3);
    kc_pgwire_put_negotiate_version(&s, 0, unknown, 1);
    m = kt_next(&s, &pos);
    KT_ASSERT_EQ(m.type, 'R');
    KT_ASSERT_UEQ(kc_load_u32(m.payload), 10);
    KT_ASSERT_EQ(m.len, 4 + 14 + 19 + 1);
    KT_ASSERT_STR_EQ((const char *)m.payload + 4 + 14, "SCRAM-SHA-256-PLUS");
    m = kt_next(&s, &pos);
    KT_ASSERT_UEQ(kc_load_u32(m.payload), 11);
    KT_ASSERT_MEM_EQ(m.payload + 4, "r=abc", 5);
    m = kt_next(&s, &pos);
    KT_ASSERT_UEQ(kc_load_u32(m.payload), 12);
    m = kt_next(&s, &pos);
    KT_ASSERT_EQ(m.type, 'v');
    KT_ASSERT_UEQ(kc_load_u32(m.payload), 0x30000);
    KT_ASSERT_UEQ(kc_load_u32(m.payload + 4), 1);
    KT_ASSERT_STR_EQ((const char *)m.payload + 8, "_pq_.x");
    KT_ASSERT_EQ(pos, s.len);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_row_description_and_data_row)
{
    static const struct kc_pgwire_column cols[] = {{"systemid", KC_PGWIRE_OID_TEXT},
                                                   {"timeline", KC_PGWIRE_OID_INT4}};
    const char *values[3] = {"7", NULL, "ab\0c"};
    size_t lens[3] = {1, 0, 4};
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_pgwire_msg m;
    struct kc_buf b;
    uint16_t n, typlen;
    uint32_t oid, l;
    size_t pos = 0;
    const uint8_t *p;

    kc_pgwire_put_row_description(&s, cols, 2);
    KT_ASSERT_EQ(kc_pgwire_put_data_row(&s, values, lens, 3, NULL), 0);
    m = kt_next(&s, &pos);
    KT_ASSERT_EQ(m.type, 'T');
    kc_buf_init(&b, m.payload, m.len);
    KT_ASSERT(kc_buf_get_u16(&b, &n) && n == 2);
    KT_ASSERT(kc_buf_get_ref(&b, &p, 9) && memcmp(p, "systemid", 9) == 0);
    KT_ASSERT(kc_buf_skip(&b, 6) && kc_buf_get_u32(&b, &oid) && oid == 25);
    KT_ASSERT(kc_buf_get_u16(&b, &typlen) && typlen == 0xffff);
    KT_ASSERT(kc_buf_skip(&b, 6));
    KT_ASSERT(kc_buf_get_ref(&b, &p, 9) && memcmp(p, "timeline", 9) == 0);
    KT_ASSERT(kc_buf_skip(&b, 6) && kc_buf_get_u32(&b, &oid) && oid == 23);
    KT_ASSERT(kc_buf_get_u16(&b, &typlen) && typlen == 4);
    KT_ASSERT(kc_buf_skip(&b, 6) && kc_buf_remaining(&b) == 0);
    m = kt_next(&s, &pos);
    KT_ASSERT_EQ(m.type, 'D');
    kc_buf_init(&b, m.payload, m.len);
    KT_ASSERT(kc_buf_get_u16(&b, &n) && n == 3);
    KT_ASSERT(kc_buf_get_u32(&b, &l) && l == 1 && kc_buf_get_ref(&b, &p, 1) && p[0] == '7');
    KT_ASSERT(kc_buf_get_u32(&b, &l) && l == UINT32_MAX); /* NULL */
    KT_ASSERT(kc_buf_get_u32(&b, &l) && l == 4 && kc_buf_get_ref(&b, &p, 4));
    KT_ASSERT_MEM_EQ(p, "ab\0c", 4);
    KT_ASSERT_EQ(kc_buf_remaining(&b), 0);
    /* strlen when lens is NULL */
    kc_sbuf_reset(&s);
    KT_ASSERT_EQ(kc_pgwire_put_data_row(&s, values, NULL, 2, NULL), 0);
    KT_ASSERT_EQ(s.len, 5 + 2 + 4 + 1 + 4);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_error_response_roundtrip)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_error e = {0}, got, err;
    struct kc_pgwire_msg m;
    char sev[16], state[6];
    size_t pos = 0;

    kc_error_set(&e, KC_EINVAL, "replication slots are not supported");
    kc_error_detail(&e, "Kelp keeps WAL without slots.");
    kc_error_hint(&e, "Stream without a slot.");
    kc_pgwire_put_error(&s, KC_PGWIRE_ERROR, "0A000", &e);
    kc_pgwire_put_notice(&s, KC_PGWIRE_WARNING, "01000", NULL);
    m = kt_next(&s, &pos);
    KT_ASSERT_EQ(m.type, 'E');
    KT_ASSERT_EQ(kc_pgwire_parse_error_response(&m, sev, state, &got, NULL), 0);
    KT_ASSERT_STR_EQ(sev, "ERROR");
    KT_ASSERT_STR_EQ(state, "0A000");
    KT_ASSERT_STR_EQ(got.message, e.message);
    KT_ASSERT_STR_EQ(got.detail, e.detail);
    KT_ASSERT_STR_EQ(got.hint, e.hint);
    m = kt_next(&s, &pos);
    KT_ASSERT_EQ(m.type, 'N');
    KT_ASSERT_EQ(kc_pgwire_parse_error_response(&m, sev, state, &got, NULL), 0);
    KT_ASSERT_STR_EQ(sev, "WARNING");
    KT_ASSERT_STR_EQ(got.message, "internal error");
    KT_ASSERT_STR_EQ(got.detail, "");
    /* every truncation of the body fails cleanly */
    pos = 0;
    m = kt_next(&s, &pos);
    for (uint32_t n = 0; n < m.len; n++) {
        struct kc_pgwire_msg t = m;
        t.len = n;
        KT_ASSERT_EQ(kc_pgwire_parse_error_response(&t, sev, state, &got, &err), KC_EPROTO);
    }
    KT_ASSERT_CONTAINS(err.message, "invalid ErrorResponse message");
    kc_sbuf_fini(&s);
}

/* ---- handshake ---------------------------------------------------------- */

/* Feed all of in to hs; returns the last result, with *ev and consumed bytes. */
static int kt_feed(struct kc_pgwire_handshake *hs, const struct kc_sbuf *in, size_t *off,
                   enum kc_pgwire_hs_event *ev, struct kc_sbuf *out, struct kc_error *err)
{
    size_t used = 0;
    int rc = kc_pgwire_handshake_feed(hs, in->data + *off, in->len - *off, &used, ev, out, err);

    *off += used;
    return rc;
}

/* The FATAL at the start of out: its SQLSTATE, and the message in *e. */
static void kt_expect_fatal(const struct kc_sbuf *out, const char *sqlstate, const char *msg)
{
    struct kc_error e;
    char sev[16], state[6];
    size_t pos = 0;
    struct kc_pgwire_msg m = kt_next(out, &pos);

    KT_ASSERT_EQ(m.type, 'E');
    KT_ASSERT_EQ(kc_pgwire_parse_error_response(&m, sev, state, &e, NULL), 0);
    KT_ASSERT_STR_EQ(sev, "FATAL");
    KT_ASSERT_STR_EQ(state, sqlstate);
    KT_ASSERT_CONTAINS(e.message, msg);
}

KT_TEST(pgwire_handshake_trust)
{
    static const struct kc_pgwire_param params[] = {{"server_version", "15.18"},
                                                    {"integer_datetimes", "on"}};
    struct kc_pgwire_handshake hs;
    struct kc_sbuf in = KC_SBUF_INIT, out = KC_SBUF_INIT;
    enum kc_pgwire_hs_event ev;
    struct kc_pgwire_msg m;
    size_t off = 0, pos = 0;
    uint8_t ssl[8];

    kc_pgwire_handshake_init(&hs);
    kc_store_u32(ssl, 8);
    kc_store_u32(ssl + 4, KC_PGWIRE_SSL_REQUEST_CODE);
    kc_sbuf_append(&in, ssl, 8);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0);
    KT_ASSERT_EQ(ev, KC_PGWIRE_HS_EV_REPLIED);
    KT_ASSERT(out.len == 1 && out.data[0] == 'N');
    KT_ASSERT_EQ(off, 8);
    kc_sbuf_reset(&out);
    kt_startup(&in, KC_PGWIRE_PROTOCOL_LATEST,
               (const char *const[]){"user", "pageserver", "replication", "true", NULL});
    /* byte by byte: KC_EAGAIN until the whole packet is there */
    {
        struct kc_sbuf part = KC_SBUF_INIT;
        for (size_t n = 0; n < in.len - off; n++) {
            size_t o = 0;
            kc_sbuf_reset(&part);
            kc_sbuf_append(&part, in.data + off, n);
            KT_ASSERT_EQ(kt_feed(&hs, &part, &o, &ev, &out, NULL), KC_EAGAIN);
            KT_ASSERT_EQ(o, 0);
        }
        kc_sbuf_fini(&part);
    }
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0);
    KT_ASSERT_EQ(ev, KC_PGWIRE_HS_EV_STARTUP);
    KT_ASSERT_EQ(off, in.len);
    KT_ASSERT_EQ(hs.state, KC_PGWIRE_HS_AUTH);
    KT_ASSERT_EQ(out.len, 0);
    KT_ASSERT_STR_EQ(hs.startup.user, "pageserver");
    KT_ASSERT_EQ(hs.startup.replication, KC_PGWIRE_REPLICATION_PHYSICAL);
    kc_pgwire_handshake_accept(&hs, params, 2, 77, 88, &out);
    KT_ASSERT_EQ(hs.state, KC_PGWIRE_HS_DONE);
    m = kt_next(&out, &pos);
    KT_ASSERT(m.type == 'R' && m.len == 4 && kc_load_u32(m.payload) == 0);
    m = kt_next(&out, &pos);
    KT_ASSERT(m.type == 'S' && strcmp((const char *)m.payload, "server_version") == 0);
    m = kt_next(&out, &pos);
    KT_ASSERT(m.type == 'S' && strcmp((const char *)m.payload, "integer_datetimes") == 0);
    m = kt_next(&out, &pos);
    KT_ASSERT(m.type == 'K' && kc_load_u32(m.payload) == 77 && kc_load_u32(m.payload + 4) == 88);
    m = kt_next(&out, &pos);
    KT_ASSERT(m.type == 'Z' && m.payload[0] == 'I');
    KT_ASSERT_EQ(pos, out.len);
    kc_pgwire_handshake_fini(&hs);
    kc_sbuf_fini(&in);
    kc_sbuf_fini(&out);
}

KT_TEST(pgwire_handshake_password)
{
    struct kc_pgwire_handshake hs;
    struct kc_sbuf in = KC_SBUF_INIT, out = KC_SBUF_INIT;
    struct kc_error e = {0};
    enum kc_pgwire_hs_event ev;
    size_t off = 0;

    kc_pgwire_handshake_init(&hs);
    kt_startup(&in, KC_PGWIRE_PROTOCOL_LATEST, (const char *const[]){"user", "u", NULL});
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0);
    KT_ASSERT_EQ(ev, KC_PGWIRE_HS_EV_STARTUP);
    kc_pgwire_handshake_ask_password(&hs, &out);
    KT_ASSERT_EQ(hs.state, KC_PGWIRE_HS_PASSWORD);
    KT_ASSERT(out.len == 9 && out.data[0] == 'R' && kc_load_u32(out.data + 5) == 3);
    kc_sbuf_reset(&out);
    kt_msg(&in, 'p', "hunter2", 8);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0);
    KT_ASSERT_EQ(ev, KC_PGWIRE_HS_EV_PASSWORD);
    KT_ASSERT_STR_EQ(hs.password, "hunter2");
    kc_error_set(&e, KC_EINVAL, "password authentication failed for user \"u\"");
    kc_pgwire_handshake_reject(&hs, KC_SQLSTATE_INVALID_PASSWORD, &e, &out);
    KT_ASSERT_EQ(hs.state, KC_PGWIRE_HS_FAILED);
    KT_ASSERT(hs.password == NULL);
    kt_expect_fatal(&out, "28P01", "password authentication failed");
    kc_pgwire_handshake_fini(&hs);

    /* Terminate instead of a password: close quietly; another type: FATAL */
    kc_pgwire_handshake_init(&hs);
    kc_sbuf_reset(&in);
    kc_sbuf_reset(&out);
    off = 0;
    kt_startup(&in, KC_PGWIRE_PROTOCOL_LATEST, (const char *const[]){"user", "u", NULL});
    kt_msg(&in, 'X', NULL, 0);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0);
    kc_pgwire_handshake_ask_password(&hs, &out);
    kc_sbuf_reset(&out);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0);
    KT_ASSERT_EQ(ev, KC_PGWIRE_HS_EV_CLOSE);
    KT_ASSERT_EQ(out.len, 0);
    kc_pgwire_handshake_fini(&hs);
    kc_pgwire_handshake_init(&hs);
    kc_sbuf_reset(&in);
    off = 0;
    kt_startup(&in, KC_PGWIRE_PROTOCOL_LATEST, (const char *const[]){"user", "u", NULL});
    kt_msg(&in, 'Q', "SELECT 1", 9);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0);
    kc_pgwire_handshake_ask_password(&hs, &out);
    kc_sbuf_reset(&out);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, &e), KC_EPROTO);
    kt_expect_fatal(&out, "08P01", "expected password response");
    kc_pgwire_handshake_fini(&hs);
    kc_sbuf_fini(&in);
    kc_sbuf_fini(&out);
}

/* Run one startup packet through a fresh handshake, expecting a FATAL. */
static void kt_expect_startup_fatal(const struct kc_sbuf *in, const char *sqlstate, const char *msg)
{
    struct kc_pgwire_handshake hs;
    struct kc_sbuf out = KC_SBUF_INIT;
    struct kc_error err;
    enum kc_pgwire_hs_event ev;
    size_t off = 0;
    int rc = 0;

    kc_pgwire_handshake_init(&hs);
    for (int i = 0; i < 4 && rc == 0; i++)
        rc = kt_feed(&hs, in, &off, &ev, &out, &err);
    KT_ASSERT(rc < 0 && rc != KC_EAGAIN);
    KT_ASSERT_EQ(hs.state, KC_PGWIRE_HS_FAILED);
    KT_ASSERT_CONTAINS(err.message, msg);
    while (out.len > 0 && out.data[0] == 'N') { /* skip 'N' answers before the error */
        memmove(out.data, out.data + 1, out.len - 1);
        out.len--;
    }
    kt_expect_fatal(&out, sqlstate, msg);
    kc_pgwire_handshake_fini(&hs);
    kc_sbuf_fini(&out);
}

KT_TEST(pgwire_handshake_refusals)
{
    struct kc_sbuf in = KC_SBUF_INIT;
    uint8_t ssl[8];

    kc_store_u32(ssl, 8);
    kc_store_u32(ssl + 4, KC_PGWIRE_SSL_REQUEST_CODE);
    kt_startup(&in, KC_PGWIRE_PROTOCOL_LATEST, (const char *const[]){"database", "d", NULL});
    kt_expect_startup_fatal(&in, "28000", "no PostgreSQL user name");
    kc_sbuf_reset(&in);
    kt_startup(&in, KC_PGWIRE_PROTOCOL_LATEST,
               (const char *const[]){"user", "u", "replication", "maybe", NULL});
    kt_expect_startup_fatal(&in, "22023", "invalid value for parameter \"replication\"");
    kc_sbuf_reset(&in);
    kt_startup(&in, KC_PGWIRE_PROTOCOL(4, 0), NULL);
    kt_expect_startup_fatal(&in, "0A000", "unsupported frontend protocol 4.0");
    kc_sbuf_reset(&in); /* data pipelined behind the SSL request */
    kc_sbuf_append(&in, ssl, 8);
    kt_startup(&in, KC_PGWIRE_PROTOCOL_LATEST, (const char *const[]){"user", "u", NULL});
    kt_expect_startup_fatal(&in, "08P01", "received unencrypted data after SSL request");
    kc_sbuf_reset(&in); /* a packet above 10 KiB */
    kc_sbuf_put_u32(&in, KC_PGWIRE_STARTUP_MAX + 1);
    kt_expect_startup_fatal(&in, "08P01", "too large");
    kc_sbuf_reset(&in);
    kc_sbuf_put_u32(&in, 3);
    kt_expect_startup_fatal(&in, "08P01", "invalid length of startup packet");
    kc_sbuf_fini(&in);
}

KT_TEST(pgwire_handshake_duplicate_ssl_and_cancel)
{
    struct kc_pgwire_handshake hs;
    struct kc_sbuf in = KC_SBUF_INIT, out = KC_SBUF_INIT;
    enum kc_pgwire_hs_event ev;
    struct kc_error err;
    uint8_t req[16];
    size_t off = 0;

    kc_pgwire_handshake_init(&hs);
    kc_store_u32(req, 8);
    kc_store_u32(req + 4, KC_PGWIRE_GSSENC_REQUEST_CODE);
    kc_sbuf_append(&in, req, 8);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0); /* GSS: 'N' */
    kc_store_u32(req + 4, KC_PGWIRE_SSL_REQUEST_CODE);
    kc_sbuf_append(&in, req, 8);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0); /* then SSL: 'N' */
    KT_ASSERT(out.len == 2 && out.data[0] == 'N' && out.data[1] == 'N');
    kc_sbuf_append(&in, req, 8);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, &err), KC_EPROTO); /* SSL again */
    KT_ASSERT_CONTAINS(err.message, "duplicate SSL request");
    kc_pgwire_handshake_fini(&hs);

    kc_pgwire_handshake_init(&hs);
    kc_sbuf_reset(&in);
    kc_sbuf_reset(&out);
    off = 0;
    kc_store_u32(req, 16);
    kc_store_u32(req + 4, KC_PGWIRE_CANCEL_REQUEST_CODE);
    kc_store_u32(req + 8, 1234);
    kc_store_u32(req + 12, 5678);
    kc_sbuf_append(&in, req, 16);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0);
    KT_ASSERT_EQ(ev, KC_PGWIRE_HS_EV_CANCEL);
    KT_ASSERT_EQ(hs.state, KC_PGWIRE_HS_FAILED);
    KT_ASSERT_UEQ(hs.startup.cancel_pid, 1234);
    KT_ASSERT_UEQ(hs.startup.cancel_key, 5678);
    KT_ASSERT_EQ(out.len, 0);
    /* a handshake that is over reads nothing more */
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), KC_EINVAL);
    kc_pgwire_handshake_fini(&hs);
    kc_sbuf_fini(&in);
    kc_sbuf_fini(&out);
}

KT_TEST(pgwire_handshake_negotiates_version)
{
    struct kc_pgwire_handshake hs;
    struct kc_sbuf in = KC_SBUF_INIT, out = KC_SBUF_INIT;
    enum kc_pgwire_hs_event ev;
    struct kc_pgwire_msg m;
    size_t off = 0, pos = 0;

    kc_pgwire_handshake_init(&hs);
    kt_startup(&in, KC_PGWIRE_PROTOCOL(3, 2),
               (const char *const[]){"user", "u", "_pq_.compression", "on", NULL});
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0);
    KT_ASSERT_EQ(ev, KC_PGWIRE_HS_EV_STARTUP);
    m = kt_next(&out, &pos);
    KT_ASSERT_EQ(m.type, 'v');
    KT_ASSERT_UEQ(kc_load_u32(m.payload), KC_PGWIRE_PROTOCOL(3, 0));
    KT_ASSERT_UEQ(kc_load_u32(m.payload + 4), 1);
    KT_ASSERT_STR_EQ((const char *)m.payload + 8, "_pq_.compression");
    kc_pgwire_handshake_fini(&hs);
    kc_sbuf_fini(&in);
    kc_sbuf_fini(&out);
}

KT_TEST(pgwire_handshake_fuzz)
{
    uint64_t rng = 99;
    struct kc_sbuf good = KC_SBUF_INIT, in = KC_SBUF_INIT, out = KC_SBUF_INIT;

    kt_startup(&good, KC_PGWIRE_PROTOCOL_LATEST,
               (const char *const[]){"user", "u", "replication", "true", NULL});
    for (int i = 0; i < 5000; i++) {
        struct kc_pgwire_handshake hs;
        enum kc_pgwire_hs_event ev;
        size_t off = 0;
        int rc = 0;

        kc_sbuf_reset(&in);
        kc_sbuf_reset(&out);
        if (i % 2 == 0) {
            kc_sbuf_append(&in, good.data, good.len);
            in.data[kt_rng(&rng) % in.len] ^= (uint8_t)(1u << (kt_rng(&rng) % 8));
        } else {
            size_t n = kt_rng(&rng) % 64;
            for (size_t j = 0; j < n; j++)
                kc_sbuf_put_u8(&in, (uint8_t)kt_rng(&rng));
        }
        kc_pgwire_handshake_init(&hs);
        for (int step = 0; step < 8 && rc == 0 && off < in.len; step++) {
            rc = kt_feed(&hs, &in, &off, &ev, &out, NULL);
            if (rc == 0 && ev == KC_PGWIRE_HS_EV_STARTUP)
                kc_pgwire_handshake_ask_password(&hs, &out);
            else if (rc == 0 && ev != KC_PGWIRE_HS_EV_REPLIED)
                break;
        }
        KT_ASSERT(kt_is_code(rc) || rc == KC_ENOMEM);
        KT_ASSERT(off <= in.len);
        kc_pgwire_handshake_fini(&hs);
    }
    kc_sbuf_fini(&good);
    kc_sbuf_fini(&in);
    kc_sbuf_fini(&out);
}

KT_TEST(pgwire_handshake_second_password)
{
    struct kc_pgwire_handshake hs;
    struct kc_sbuf in = KC_SBUF_INIT, out = KC_SBUF_INIT;
    enum kc_pgwire_hs_event ev;
    struct kc_error err;
    size_t off = 0;

    kc_pgwire_handshake_init(&hs);
    kt_startup(&in, KC_PGWIRE_PROTOCOL_LATEST, (const char *const[]){"user", "u", NULL});
    kt_msg(&in, 'p', "one", 4);
    kt_msg(&in, 'p', "two", 4);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0);
    kc_pgwire_handshake_ask_password(&hs, &out);
    kc_sbuf_reset(&out);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, NULL), 0);
    KT_ASSERT_EQ(ev, KC_PGWIRE_HS_EV_PASSWORD);
    KT_ASSERT_EQ(kt_feed(&hs, &in, &off, &ev, &out, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "unexpected second password message");
    kt_expect_fatal(&out, "08P01", "second password");
    KT_ASSERT(hs.password == NULL || strcmp(hs.password, "one") == 0);
    kc_pgwire_handshake_fini(&hs);
    kc_sbuf_fini(&in);
    kc_sbuf_fini(&out);
}
