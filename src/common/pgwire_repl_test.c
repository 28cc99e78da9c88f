/* SPDX-License-Identifier: Apache-2.0 */
/* pgwire_repl_test.c -- unit tests for pgwire_repl.c: command grammar, replies, CopyData messages
 * (encoders, builders, the parser with the client's and the server's rules), epoch time. */
#include "common/pgwire_repl.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/pgwire.h"
#include "unit.h"

static uint64_t kt_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static struct kc_pgwire_repl_cmd kt_parse_ok(const char *sql)
{
    struct kc_pgwire_repl_cmd c;
    struct kc_error err = {0};

    if (kc_pgwire_repl_parse(sql, &c, &err) != 0)
        kt_fail(__FILE__, __LINE__, "parsing \"%s\" failed: %s (%s)", sql, err.message, err.detail);
    return c;
}

static void kt_parse_bad(const char *sql, const char *msg)
{
    struct kc_pgwire_repl_cmd c;
    struct kc_error err = {0};

    if (kc_pgwire_repl_parse(sql, &c, &err) != KC_EINVAL)
        kt_fail(__FILE__, __LINE__, "\"%s\" parsed (kind %d)", sql, (int)c.kind);
    if (strstr(err.message, msg) == NULL)
        kt_fail(__FILE__, __LINE__, "\"%s\": error \"%s\" lacks \"%s\"", sql, err.message, msg);
}

KT_TEST(pgwire_repl_parse_simple_commands)
{
    struct kc_pgwire_repl_cmd c;

    c = kt_parse_ok("IDENTIFY_SYSTEM");
    KT_ASSERT_EQ(c.kind, KC_PGWIRE_CMD_IDENTIFY_SYSTEM);
    c = kt_parse_ok("  IDENTIFY_SYSTEM\n ;  ");
    KT_ASSERT_EQ(c.kind, KC_PGWIRE_CMD_IDENTIFY_SYSTEM);
    c = kt_parse_ok("TIMELINE_HISTORY 2");
    KT_ASSERT_EQ(c.kind, KC_PGWIRE_CMD_TIMELINE_HISTORY);
    KT_ASSERT_EQ(c.timeline, 2);
    c = kt_parse_ok("SHOW wal_segment_size");
    KT_ASSERT_EQ(c.kind, KC_PGWIRE_CMD_SHOW);
    KT_ASSERT_STR_EQ(c.name, "wal_segment_size");
    c = kt_parse_ok("SHOW data_directory_mode;");
    KT_ASSERT_STR_EQ(c.name, "data_directory_mode");
    c = kt_parse_ok("SHOW TimeZone");
    KT_ASSERT_STR_EQ(c.name, "timezone");
    c = kt_parse_ok("SHOW \"TimeZone\"");
    KT_ASSERT_STR_EQ(c.name, "TimeZone");
    c = kt_parse_ok("SHOW kelp.a . b");
    KT_ASSERT_STR_EQ(c.name, "kelp.a.b");
    c = kt_parse_ok("READ_REPLICATION_SLOT slot1");
    KT_ASSERT_EQ(c.kind, KC_PGWIRE_CMD_READ_REPLICATION_SLOT);
    KT_ASSERT_STR_EQ(c.slot, "slot1");
    c = kt_parse_ok("DROP_REPLICATION_SLOT \"s\"\"q\" WAIT");
    KT_ASSERT_EQ(c.kind, KC_PGWIRE_CMD_DROP_REPLICATION_SLOT);
    KT_ASSERT_STR_EQ(c.slot, "s\"q");
    KT_ASSERT(c.wait);
    c = kt_parse_ok("BASE_BACKUP");
    KT_ASSERT_EQ(c.kind, KC_PGWIRE_CMD_BASE_BACKUP);
    KT_ASSERT(!c.has_options);
    c = kt_parse_ok("BASE_BACKUP (LABEL 'it''s', PROGRESS, MAX_RATE 32)");
    KT_ASSERT(c.has_options);
    KT_ASSERT_STR_EQ(kc_pgwire_repl_kind_name(c.kind), "BASE_BACKUP");
}

KT_TEST(pgwire_repl_parse_start_replication)
{
    struct kc_pgwire_repl_cmd c;

    c = kt_parse_ok("START_REPLICATION 0/1000000");
    KT_ASSERT_EQ(c.kind, KC_PGWIRE_CMD_START_REPLICATION);
    KT_ASSERT_UEQ(c.start, 0x1000000);
    KT_ASSERT_EQ(c.timeline, 0);
    KT_ASSERT(!c.logical && c.slot[0] == '\0');
    c = kt_parse_ok("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1");
    KT_ASSERT_UEQ(c.start, 0x1000000);
    KT_ASSERT_EQ(c.timeline, 1);
    /* what pg_receivewal sends with --slot */
    c = kt_parse_ok("START_REPLICATION SLOT \"My Slot\" 16/B374D848 TIMELINE 3");
    KT_ASSERT_STR_EQ(c.slot, "My Slot");
    KT_ASSERT_UEQ(c.start, 0x16B374D848ULL);
    KT_ASSERT_EQ(c.timeline, 3);
    c = kt_parse_ok("START_REPLICATION SLOT Sk1 PHYSICAL ABCDEF01/ff;");
    KT_ASSERT_STR_EQ(c.slot, "sk1");
    KT_ASSERT_UEQ(c.start, 0xABCDEF01000000FFULL);
    c = kt_parse_ok("START_REPLICATION SLOT s LOGICAL 0/0 (proto_version '1', "
                    "publication_names '\"p\"')");
    KT_ASSERT(c.logical && c.has_options);
    KT_ASSERT_STR_EQ(c.slot, "s");
    c = kt_parse_ok("CREATE_REPLICATION_SLOT \"s1\" PHYSICAL RESERVE_WAL");
    KT_ASSERT_EQ(c.kind, KC_PGWIRE_CMD_CREATE_REPLICATION_SLOT);
    KT_ASSERT_STR_EQ(c.slot, "s1");
    KT_ASSERT(c.has_options && !c.logical && !c.temporary);
    c = kt_parse_ok("CREATE_REPLICATION_SLOT s1 TEMPORARY PHYSICAL (RESERVE_WAL)");
    KT_ASSERT(c.temporary && c.has_options);
    c = kt_parse_ok("CREATE_REPLICATION_SLOT s2 LOGICAL pgoutput (SNAPSHOT 'nothing')");
    KT_ASSERT(c.logical);
    KT_ASSERT_STR_EQ(c.plugin, "pgoutput");
}

KT_TEST(pgwire_repl_parse_sql)
{
    static const char *const sql[] = {"SELECT 1",
                                      "select pg_current_wal_lsn()",
                                      "",
                                      "identify_system",
                                      "'x'",
                                      "\"IDENTIFY_SYSTEM\"",
                                      "IDENTIFY_SYSTEMS",
                                      "0/0",
                                      "(",
                                      "\"unterminated"};
    for (size_t i = 0; i < KC_ARRAY_LEN(sql); i++) {
        struct kc_pgwire_repl_cmd c;
        c.kind = KC_PGWIRE_CMD_SHOW;
        KT_ASSERT_EQ(kc_pgwire_repl_parse(sql[i], &c, NULL), 0);
        KT_ASSERT_EQ(c.kind, KC_PGWIRE_CMD_SQL);
    }
}

KT_TEST(pgwire_repl_parse_errors)
{
    char longname[128];

    kt_parse_bad("IDENTIFY_SYSTEM x", "syntax error in replication command at or near \"x\"");
    kt_parse_bad("IDENTIFY_SYSTEM;;", "syntax error");
    kt_parse_bad("TIMELINE_HISTORY", "syntax error at end of replication command");
    kt_parse_bad("TIMELINE_HISTORY 0", "invalid timeline 0");
    kt_parse_bad("TIMELINE_HISTORY 99999999999", "invalid timeline");
    kt_parse_bad("TIMELINE_HISTORY -1", "syntax error");
    kt_parse_bad("START_REPLICATION", "syntax error");
    kt_parse_bad("START_REPLICATION PHYSICAL", "syntax error");
    kt_parse_bad("START_REPLICATION 0/", "syntax error");
    kt_parse_bad("START_REPLICATION 123456789/0", "invalid streaming start location");
    kt_parse_bad("START_REPLICATION LOGICAL 0/0", "syntax error");
    kt_parse_bad("START_REPLICATION 0/0 TIMELINE 0", "invalid timeline");
    kt_parse_bad("START_REPLICATION 0/0 TIMELINE", "syntax error");
    kt_parse_bad("START_REPLICATION SLOT 0/0", "syntax error");
    kt_parse_bad("START_REPLICATION SLOT \"\" 0/0", "zero-length delimited identifier");
    kt_parse_bad("START_REPLICATION SLOT \"abc", "unterminated quoted string");
    kt_parse_bad("START_REPLICATION 0/0 junk", "syntax error");
    kt_parse_bad("SHOW", "syntax error");
    kt_parse_bad("SHOW a.", "syntax error");
    kt_parse_bad("SHOW 'x'", "syntax error");
    kt_parse_bad("CREATE_REPLICATION_SLOT s", "syntax error");
    kt_parse_bad("CREATE_REPLICATION_SLOT s PHYSICAL (", "syntax error");
    kt_parse_bad("CREATE_REPLICATION_SLOT s PHYSICAL ()", "syntax error");
    kt_parse_bad("DROP_REPLICATION_SLOT", "syntax error");
    kt_parse_bad("BASE_BACKUP (LABEL 'x'", "syntax error");
    memset(longname, 'a', 64);
    memcpy(longname, "READ_REPLICATION_SLOT ", 22);
    memset(longname + 22, 'a', 64);
    longname[86] = '\0';
    kt_parse_bad(longname, "is too long");
}

KT_TEST(pgwire_repl_parse_fuzz)
{
    static const char *const words[] = {"START_REPLICATION",
                                        "SLOT",
                                        "PHYSICAL",
                                        "LOGICAL",
                                        "TIMELINE",
                                        "0/1000000",
                                        "1",
                                        "0",
                                        "IDENTIFY_SYSTEM",
                                        "SHOW",
                                        "x",
                                        ".",
                                        ";",
                                        "(",
                                        ")",
                                        "'s'",
                                        "\"q\"",
                                        "\"",
                                        "'",
                                        "FFFFFFFF/FFFFFFFF",
                                        "WAIT",
                                        "CREATE_REPLICATION_SLOT",
                                        "DROP_REPLICATION_SLOT",
                                        "BASE_BACKUP",
                                        "TIMELINE_HISTORY",
                                        "READ_REPLICATION_SLOT",
                                        "RESERVE_WAL",
                                        ",",
                                        "\xc3\xa9"};
    uint64_t rng = 5;
    char sql[256];

    for (int i = 0; i < 20000; i++) {
        struct kc_pgwire_repl_cmd c;
        struct kc_error err;
        size_t n = 0;
        int rc;

        for (int w = 0; w < (int)(kt_rng(&rng) % 8); w++) {
            const char *t = words[kt_rng(&rng) % KC_ARRAY_LEN(words)];
            if (n + strlen(t) + 2 >= sizeof(sql))
                break;
            n += (size_t)sprintf(sql + n, "%s%s", t, kt_rng(&rng) % 3 ? " " : "");
        }
        if (kt_rng(&rng) % 4 == 0 && n > 0) /* and a random byte */
            sql[kt_rng(&rng) % n] = (char)(1 + kt_rng(&rng) % 255);
        sql[n] = '\0';
        rc = kc_pgwire_repl_parse(sql, &c, &err);
        KT_ASSERT(rc == 0 || rc == KC_EINVAL);
        if (rc < 0)
            KT_ASSERT(err.message[0] != '\0');
    }
}

KT_TEST(pgwire_repl_messages_roundtrip)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_pgwire_repl_msg r;
    struct kc_pgwire_msg m;
    struct kc_pgwire_standby_status st = {0x1000100, 0x1000080, 0x1000000, 123456789, true};
    struct kc_pgwire_hs_feedback fb = {42, 700, 1, 650, 2};
    size_t size;

    KT_ASSERT_EQ(kc_pgwire_put_xlog_data(&s, 0x1000000, 0x2000000, -5, "WAL!", 4, NULL), 0);
    KT_ASSERT_EQ(s.len, 5 + 25 + 4);
    KT_ASSERT_EQ(kc_pgwire_msg_decode(s.data, s.len, 100, &m, &size, NULL), 0);
    KT_ASSERT_EQ(m.type, 'd');
    KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(m.payload, m.len, &r, NULL), 0);
    KT_ASSERT_EQ(r.kind, 'w');
    KT_ASSERT_UEQ(r.u.xlog.start, 0x1000000);
    KT_ASSERT_UEQ(r.u.xlog.end, 0x2000000);
    KT_ASSERT_EQ(r.u.xlog.send_time, -5);
    KT_ASSERT_EQ(r.u.xlog.len, 4);
    KT_ASSERT_MEM_EQ(r.u.xlog.data, "WAL!", 4);

    kc_sbuf_reset(&s);
    kc_pgwire_put_keepalive(&s, 0xABCDEF, 77, true);
    KT_ASSERT_EQ(s.len, 5 + 18);
    KT_ASSERT_EQ(s.data[5], 'k');
    KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(s.data + 5, s.len - 5, &r, NULL), 0);
    KT_ASSERT_UEQ(r.u.keepalive.end, 0xABCDEF);
    KT_ASSERT_EQ(r.u.keepalive.send_time, 77);
    KT_ASSERT(r.u.keepalive.reply_requested);

    kc_sbuf_reset(&s);
    kc_pgwire_put_standby_status(&s, &st);
    KT_ASSERT_EQ(s.len, 5 + 34);
    KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(s.data + 5, s.len - 5, &r, NULL), 0);
    KT_ASSERT_EQ(r.kind, 'r');
    KT_ASSERT_UEQ(r.u.status.write, st.write);
    KT_ASSERT_UEQ(r.u.status.flush, st.flush);
    KT_ASSERT_UEQ(r.u.status.apply, st.apply);
    KT_ASSERT_EQ(r.u.status.send_time, st.send_time);
    KT_ASSERT(r.u.status.reply_requested);

    kc_sbuf_reset(&s);
    kc_pgwire_put_hs_feedback(&s, &fb);
    KT_ASSERT_EQ(s.len, 5 + 25);
    KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(s.data + 5, s.len - 5, &r, NULL), 0);
    KT_ASSERT_EQ(r.kind, 'h');
    KT_ASSERT_EQ(r.u.feedback.send_time, 42);
    KT_ASSERT_UEQ(r.u.feedback.xmin, 700);
    KT_ASSERT_UEQ(r.u.feedback.xmin_epoch, 1);
    KT_ASSERT_UEQ(r.u.feedback.catalog_xmin, 650);
    KT_ASSERT_UEQ(r.u.feedback.catalog_xmin_epoch, 2);
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_repl_messages_malformed)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_pgwire_repl_msg r;
    struct kc_pgwire_standby_status st = {1, 2, 3, 4, false};
    struct kc_error err;
    uint8_t w[25] = {'w'};
    uint64_t rng = 3;

    KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(NULL, 0, &r, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "empty");
    KT_ASSERT_EQ(kc_pgwire_repl_msg_parse((const uint8_t *)"z", 1, &r, &err), KC_EPROTO);
    KT_ASSERT_STR_EQ(err.message, "unknown replication message type 'z'");
    KT_ASSERT_STR_EQ(err.detail, "Expected type 'w', 'k', 'r' or 'h'.");
    /* every truncation of every kind fails */
    kc_pgwire_put_standby_status(&s, &st);
    kc_pgwire_put_keepalive(&s, 1, 2, false);
    {
        struct kc_pgwire_hs_feedback fb = {1, 2, 3, 4, 5};
        kc_pgwire_put_hs_feedback(&s, &fb);
    }
    for (size_t at = 0; at < s.len;) {
        uint32_t len = kc_load_u32(s.data + at + 1) - 4;
        for (uint32_t n = 1; n < len; n++)
            KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(s.data + at + 5, n, &r, NULL), KC_EPROTO);
        KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(s.data + at + 5, len, &r, NULL), 0);
        at += 5 + len;
    }
    for (size_t n = 1; n < sizeof(w); n++)
        KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(w, n, &r, &err), KC_EPROTO);
    KT_ASSERT_STR_EQ(err.message, "truncated XLogData message: 24 bytes, the header needs 25");
    /* WAL that would run past the largest position */
    {
        uint8_t big[27] = {'w'};
        kc_store_u64(big + 1, UINT64_MAX - 1);
        KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(big, 26, &r, NULL), 0);
        KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(big, 27, &r, &err), KC_EPROTO);
        KT_ASSERT_CONTAINS(err.detail, "largest WAL position");
    }
    for (int i = 0; i < 20000; i++) {
        uint8_t buf[48];
        size_t n = kt_rng(&rng) % sizeof(buf);
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)kt_rng(&rng);
        if (n > 0)
            buf[0] = "wkrhx"[kt_rng(&rng) % 5];
        int rc = kc_pgwire_repl_msg_parse(n > 0 ? buf : NULL, n, &r, NULL);
        KT_ASSERT(rc == 0 || rc == KC_EPROTO);
    }
    KT_ASSERT_EQ(kc_pgwire_put_xlog_data(&s, 0, 0, 0, "x", KC_PGWIRE_SEND_MAX, NULL), KC_ETOOBIG);
    kc_sbuf_fini(&s);
}

/* ---- CopyData messages as a client reads them (walstream.c's rules) ---- */

/* Parse a payload from a server: only 'w' and 'k', as kc_walstream_poll does. */
static int kt_parse_server(const uint8_t *data, size_t len, struct kc_pgwire_repl_msg *r,
                           struct kc_error *err)
{
    return kc_pgwire_repl_msg_parse_kinds(data, len, KC_PGWIRE_REPL_FROM_SERVER, r, err);
}

/*
 * An encoder wrote want (n bytes) to payload and the matching builder wrote
 * framed: the same bytes behind a CopyData header. Both are emptied.
 */
static void kt_check_encoded(struct kc_sbuf *payload, struct kc_sbuf *framed, const uint8_t *want,
                             size_t n)
{
    KT_ASSERT_EQ(payload->len, n);
    KT_ASSERT_MEM_EQ(payload->data, want, n);
    KT_ASSERT_EQ(framed->len, 5 + n);
    KT_ASSERT_EQ(framed->data[0], 'd');
    KT_ASSERT_UEQ(kc_load_u32(framed->data + 1), 4 + n);
    KT_ASSERT_MEM_EQ(framed->data + 5, want, n);
    kc_sbuf_reset(payload);
    kc_sbuf_reset(framed);
}

KT_TEST(pgwire_repl_encode_exact_bytes)
{
    /* start 1/28, end 2/0, send time -2, WAL "ab" */
    static const uint8_t want_w[] = {'w',  0,    0,    0,    1,    0,    0,    0,   0x28,
                                     0,    0,    0,    2,    0,    0,    0,    0,   0xFF,
                                     0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 'a', 'b'};
    /* end 0/3000148, send time 7, reply requested */
    static const uint8_t want_k[] = {'k', 0, 0, 0, 0, 3, 0, 1, 0x48, 0, 0, 0, 0, 0, 0, 0, 7, 1};
    /* send time 42, xmin 700 of epoch 1, catalog xmin 650 of epoch 2 */
    static const uint8_t want_h[] = {'h', 0, 0, 0, 0, 0, 0, 0,    42, 0, 0, 2, 0xBC,
                                     0,   0, 0, 1, 0, 0, 2, 0x8A, 0,  0, 0, 2};
    struct kc_pgwire_hs_feedback fb = {42, 700, 1, 650, 2};
    struct kc_sbuf b = KC_SBUF_INIT, framed = KC_SBUF_INIT;

    kc_pgwire_repl_encode_xlog_data(&b, UINT64_C(0x100000028), UINT64_C(0x200000000), -2, "ab", 2);
    KT_ASSERT_EQ(kc_pgwire_put_xlog_data(&framed, UINT64_C(0x100000028), UINT64_C(0x200000000), -2,
                                         "ab", 2, NULL),
                 0);
    kt_check_encoded(&b, &framed, want_w, sizeof(want_w));
    kc_pgwire_repl_encode_keepalive(&b, 0x3000148, 7, true);
    kc_pgwire_put_keepalive(&framed, 0x3000148, 7, true);
    KT_ASSERT_EQ(sizeof(want_k), KC_PGWIRE_KEEPALIVE_LEN);
    kt_check_encoded(&b, &framed, want_k, sizeof(want_k));
    kc_pgwire_repl_encode_hs_feedback(&b, &fb);
    kc_pgwire_put_hs_feedback(&framed, &fb);
    KT_ASSERT_EQ(sizeof(want_h), KC_PGWIRE_HS_FEEDBACK_LEN);
    kt_check_encoded(&b, &framed, want_h, sizeof(want_h));
    kc_sbuf_fini(&b);
    kc_sbuf_fini(&framed);
}

KT_TEST(pgwire_repl_msg_xlogdata)
{
    struct kc_sbuf b = KC_SBUF_INIT;
    struct kc_pgwire_repl_msg m;
    struct kc_error err = {0};
    uint8_t wal[300];

    for (size_t i = 0; i < sizeof(wal); i++)
        wal[i] = (uint8_t)(i * 7);
    kc_pgwire_repl_encode_xlog_data(&b, UINT64_C(0x100000028), UINT64_C(0x200000000), 123456789,
                                    wal, sizeof(wal));
    KT_ASSERT_EQ(b.len, KC_PGWIRE_XLOG_DATA_HEADER + sizeof(wal));
    KT_ASSERT_EQ(kt_parse_server(b.data, b.len, &m, &err), 0);
    KT_ASSERT_EQ(m.kind, KC_PGWIRE_REPL_XLOG_DATA);
    KT_ASSERT_UEQ(m.u.xlog.start, UINT64_C(0x100000028));
    KT_ASSERT_UEQ(m.u.xlog.end, UINT64_C(0x200000000));
    KT_ASSERT_EQ(m.u.xlog.send_time, 123456789);
    KT_ASSERT_EQ(m.u.xlog.len, sizeof(wal));
    KT_ASSERT(m.u.xlog.data == b.data + KC_PGWIRE_XLOG_DATA_HEADER);
    KT_ASSERT_MEM_EQ(m.u.xlog.data, wal, sizeof(wal));
    KT_ASSERT(!m.u.keepalive.reply_requested); /* other kinds' members stay zero */

    /* A header alone is an empty (but valid) XLogData message. */
    KT_ASSERT_EQ(kt_parse_server(b.data, KC_PGWIRE_XLOG_DATA_HEADER, &m, &err), 0);
    KT_ASSERT_EQ(m.u.xlog.len, 0);
    kc_sbuf_fini(&b);
}

KT_TEST(pgwire_repl_msg_keepalive)
{
    struct kc_sbuf b = KC_SBUF_INIT;
    struct kc_pgwire_repl_msg m;
    struct kc_error err = {0};

    kc_pgwire_repl_encode_keepalive(&b, UINT64_C(0x3000148), 987654321, true);
    KT_ASSERT_EQ(b.len, KC_PGWIRE_KEEPALIVE_LEN);
    KT_ASSERT_EQ(kt_parse_server(b.data, b.len, &m, &err), 0);
    KT_ASSERT_EQ(m.kind, KC_PGWIRE_REPL_KEEPALIVE);
    KT_ASSERT_UEQ(m.u.keepalive.end, UINT64_C(0x3000148));
    KT_ASSERT_EQ(m.u.keepalive.send_time, 987654321);
    KT_ASSERT(m.u.keepalive.reply_requested);
    KT_ASSERT_EQ(m.u.xlog.len, 0); /* other kinds' members stay zero */

    kc_sbuf_reset(&b);
    kc_pgwire_repl_encode_keepalive(&b, 5, 987654321, false);
    KT_ASSERT_EQ(kt_parse_server(b.data, b.len, &m, &err), 0);
    KT_ASSERT(!m.u.keepalive.reply_requested);
    kc_sbuf_fini(&b);
}

KT_TEST(pgwire_repl_msg_truncated)
{
    struct kc_sbuf w = KC_SBUF_INIT, k = KC_SBUF_INIT;
    struct kc_pgwire_repl_msg m;
    struct kc_error err = {0};

    kc_pgwire_repl_encode_xlog_data(&w, 0x1000, 0x2000, 123456789, "abc", 3);
    kc_pgwire_repl_encode_keepalive(&k, 0x2000, 987654321, true);
    /* Every prefix shorter than the header is an error, never a crash. */
    for (size_t n = 0; n < KC_PGWIRE_XLOG_DATA_HEADER; n++) {
        uint8_t *copy = malloc(n + 1); /* exact size, so ASan sees any overread */
        memcpy(copy, w.data, n);
        KT_ASSERT_EQ(kt_parse_server(copy, n, &m, &err), KC_EPROTO);
        KT_ASSERT_EQ(err.code, KC_EPROTO);
        free(copy);
    }
    KT_ASSERT_CONTAINS(err.message, "truncated XLogData");
    for (size_t n = 1; n < KC_PGWIRE_KEEPALIVE_LEN; n++) {
        KT_ASSERT_EQ(kt_parse_server(k.data, n, &m, &err), KC_EPROTO);
        KT_ASSERT_CONTAINS(err.message, "truncated keepalive");
    }
    KT_ASSERT_EQ(kt_parse_server(k.data, 0, &m, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "empty replication message");
    kc_sbuf_fini(&w);
    kc_sbuf_fini(&k);
}

KT_TEST(pgwire_repl_msg_rejects_bad_fields)
{
    struct kc_sbuf b = KC_SBUF_INIT;
    struct kc_pgwire_repl_msg m;
    struct kc_error err = {0};

    kc_pgwire_repl_encode_keepalive(&b, 1, 987654321, true);
    kc_sbuf_put_u8(&b, 0);
    KT_ASSERT_EQ(kt_parse_server(b.data, b.len, &m, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "1 trailing bytes");
    /* the same rule whoever parses: a keepalive is exactly 18 bytes */
    KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(b.data, b.len, &m, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "1 trailing bytes");

    kc_sbuf_reset(&b);
    kc_pgwire_repl_encode_keepalive(&b, 1, 987654321, true);
    b.data[KC_PGWIRE_KEEPALIVE_LEN - 1] = 2;
    KT_ASSERT_EQ(kt_parse_server(b.data, b.len, &m, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "reply-requested byte 2");

    kc_sbuf_reset(&b);
    kc_pgwire_repl_encode_xlog_data(&b, UINT64_MAX - 2, UINT64_MAX, 123456789, "abcd", 4);
    KT_ASSERT_EQ(kt_parse_server(b.data, b.len, &m, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "runs past the end of the WAL");
    /* Ending at the highest representable LSN is fine. */
    KT_ASSERT_EQ(kt_parse_server(b.data, b.len - 2, &m, &err), 0);

    KT_ASSERT_EQ(kt_parse_server((const uint8_t *)"x", 1, &m, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "unknown replication message type 'x'");
    KT_ASSERT_EQ(kt_parse_server((const uint8_t *)"\x01", 1, &m, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "type 0x01");
    kc_sbuf_fini(&b);
}

KT_TEST(pgwire_repl_msg_bit_flips_and_random_bytes)
{
    struct kc_sbuf b = KC_SBUF_INIT;
    struct kc_pgwire_repl_msg m;
    struct kc_error err;
    uint64_t seed = 42;
    uint8_t buf[64];

    kc_pgwire_repl_encode_keepalive(&b, 0x1234, 987654321, true);
    for (size_t bit = 0; bit < b.len * 8; bit++) {
        uint8_t copy[KC_PGWIRE_KEEPALIVE_LEN];
        int rc;
        memcpy(copy, b.data, sizeof(copy));
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        rc = kt_parse_server(copy, sizeof(copy), &m, &err);
        if (bit == (b.len - 1) * 8) /* reply byte 1 -> 0: valid, no reply asked */
            KT_ASSERT(rc == 0 && !m.u.keepalive.reply_requested);
        else if (bit < 8 || bit > (b.len - 1) * 8) /* type or reply byte: rejected */
            KT_ASSERT_EQ(rc, KC_EPROTO);
        else
            KT_ASSERT_EQ(rc, 0); /* an LSN or a time: any value parses */
    }
    /* Random input: a clean answer every time, never a crash or overread. */
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)(kt_rng(&seed) % sizeof(buf));
        uint8_t *copy;
        int rc;
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)kt_rng(&seed);
        if (n > 0 && i % 2 == 0)
            buf[0] = i % 4 == 0 ? 'w' : 'k';
        copy = malloc(n + 1);
        memcpy(copy, buf, n);
        rc = kt_parse_server(copy, n, &m, &err);
        KT_ASSERT(rc == 0 || rc == KC_EPROTO);
        if (rc == 0 && m.kind == KC_PGWIRE_REPL_XLOG_DATA)
            KT_ASSERT(m.u.xlog.data + m.u.xlog.len == copy + n);
        free(copy);
    }
    kc_sbuf_fini(&b);
}

KT_TEST(pgwire_repl_msg_kinds_by_side)
{
    struct kc_sbuf b = KC_SBUF_INIT;
    struct kc_pgwire_repl_msg m;
    struct kc_pgwire_standby_status st = {3, 2, 1, 4, false};
    struct kc_pgwire_hs_feedback fb = {1, 2, 3, 4, 5};
    struct kc_error err = {0};

    /* a client refuses what only a client sends, and the other way round */
    kc_pgwire_repl_encode_standby_status(&b, &st);
    KT_ASSERT_EQ(kt_parse_server(b.data, b.len, &m, &err), KC_EPROTO);
    KT_ASSERT_STR_EQ(err.message, "unexpected replication message type 'r'");
    KT_ASSERT_STR_EQ(err.detail, "Expected type 'w' or 'k'.");
    KT_ASSERT_EQ(
        kc_pgwire_repl_msg_parse_kinds(b.data, b.len, KC_PGWIRE_REPL_FROM_CLIENT, &m, &err), 0);
    KT_ASSERT_EQ(m.kind, 'r');
    kc_sbuf_reset(&b);
    kc_pgwire_repl_encode_keepalive(&b, 1, 2, false);
    KT_ASSERT_EQ(
        kc_pgwire_repl_msg_parse_kinds(b.data, b.len, KC_PGWIRE_REPL_FROM_CLIENT, &m, &err),
        KC_EPROTO);
    KT_ASSERT_STR_EQ(err.message, "unexpected replication message type 'k'");
    KT_ASSERT_EQ(kc_pgwire_repl_msg_parse_kinds((const uint8_t *)"\0", 1, "wk", &m, &err),
                 KC_EPROTO);
    KT_ASSERT_STR_EQ(err.message, "unknown replication message type 0x00");

    /* 'r' and 'h' as PostgreSQL's walsender reads them: later bytes ignored, any non-zero
     * reply byte asks for a reply */
    kc_sbuf_reset(&b);
    kc_pgwire_repl_encode_standby_status(&b, &st);
    KT_ASSERT_EQ(b.len, KC_PGWIRE_STANDBY_STATUS_LEN);
    b.data[KC_PGWIRE_STANDBY_STATUS_LEN - 1] = 2;
    kc_sbuf_append(&b, "xyz", 3);
    KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(b.data, b.len, &m, &err), 0);
    KT_ASSERT_UEQ(m.u.status.write, 3);
    KT_ASSERT_UEQ(m.u.status.apply, 1);
    KT_ASSERT(m.u.status.reply_requested);
    kc_sbuf_reset(&b);
    kc_pgwire_repl_encode_hs_feedback(&b, &fb);
    kc_sbuf_put_u8(&b, 9);
    KT_ASSERT_EQ(kc_pgwire_repl_msg_parse(b.data, b.len, &m, &err), 0);
    KT_ASSERT_UEQ(m.u.feedback.catalog_xmin_epoch, 5);
    kc_sbuf_fini(&b);
}

/* ---- standby status updates and times ---- */

KT_TEST(pgwire_repl_encode_standby_status)
{
    static const uint8_t want[KC_PGWIRE_STANDBY_STATUS_LEN] = {
        'r', 0, 0, 0, 1, 0, 0,    0,    0x30, /* write 1/30 */
        0,   0, 0, 1, 0, 0, 0,    0x20,       /* flush 1/20 */
        0,   0, 0, 0, 0, 0, 0,    0,          /* apply 0/0 */
        0,   0, 0, 0, 0, 0, 0x30, 0x39,       /* time 12345 */
        1};
    struct kc_pgwire_standby_status st = {UINT64_C(0x100000030), UINT64_C(0x100000020), 0, 12345,
                                          true};
    struct kc_sbuf b = KC_SBUF_INIT, framed = KC_SBUF_INIT;

    kc_sbuf_put_u8(&b, 0xEE); /* appends after what is there */
    kc_pgwire_repl_encode_standby_status(&b, &st);
    KT_ASSERT_EQ(b.len, 1 + KC_PGWIRE_STANDBY_STATUS_LEN);
    KT_ASSERT_EQ(b.data[0], 0xEE);
    KT_ASSERT_MEM_EQ(b.data + 1, want, sizeof(want));
    kc_sbuf_reset(&b);
    st = (struct kc_pgwire_standby_status){5, 4, 3, -1, false};
    kc_pgwire_repl_encode_standby_status(&b, &st);
    KT_ASSERT_UEQ(kc_load_u64(b.data + 25), UINT64_MAX); /* negative times keep their bits */
    KT_ASSERT_EQ(b.data[33], 0);
    /* the builder frames the very same payload as CopyData */
    kc_sbuf_reset(&b);
    st = (struct kc_pgwire_standby_status){UINT64_C(0x100000030), UINT64_C(0x100000020), 0, 12345,
                                           true};
    kc_pgwire_repl_encode_standby_status(&b, &st);
    kc_pgwire_put_standby_status(&framed, &st);
    kt_check_encoded(&b, &framed, want, sizeof(want));
    kc_sbuf_fini(&b);
    kc_sbuf_fini(&framed);
}

KT_TEST(pgwire_repl_time)
{
    KT_ASSERT_EQ(kc_pgwire_time(INT64_C(946684800) * 1000000), 0);
    KT_ASSERT_EQ(kc_pgwire_time(INT64_C(946684801) * 1000000 + 5), 1000005);
    KT_ASSERT_EQ(kc_pgwire_time(0), -INT64_C(946684800) * 1000000);
}

/* Decode a T, D, C reply; returns the column count and the first row's values. */
static int kt_reply(const struct kc_sbuf *s, char cols[][32], char vals[][64], bool nulls[],
                    const char *tag)
{
    struct kc_pgwire_msg m;
    struct kc_buf b;
    size_t pos = 0, size;
    uint16_t n, nd;

    KT_ASSERT_EQ(kc_pgwire_msg_decode(s->data, s->len, 1 << 20, &m, &size, NULL), 0);
    KT_ASSERT_EQ(m.type, 'T');
    kc_buf_init(&b, m.payload, m.len);
    KT_ASSERT(kc_buf_get_u16(&b, &n));
    for (uint16_t i = 0; i < n; i++) {
        const char *name = (const char *)b.data + b.pos;
        snprintf(cols[i], 32, "%s", name);
        KT_ASSERT(kc_buf_skip(&b, strlen(name) + 1 + 18));
    }
    pos += size;
    KT_ASSERT_EQ(kc_pgwire_msg_decode(s->data + pos, s->len - pos, 1 << 20, &m, &size, NULL), 0);
    KT_ASSERT_EQ(m.type, 'D');
    kc_buf_init(&b, m.payload, m.len);
    KT_ASSERT(kc_buf_get_u16(&b, &nd) && nd == n);
    for (uint16_t i = 0; i < n; i++) {
        uint32_t l;
        const uint8_t *p;
        KT_ASSERT(kc_buf_get_u32(&b, &l));
        nulls[i] = l == UINT32_MAX;
        vals[i][0] = '\0';
        if (!nulls[i]) {
            KT_ASSERT(l < 64 && kc_buf_get_ref(&b, &p, l));
            memcpy(vals[i], p, l);
            vals[i][l] = '\0';
        }
    }
    pos += size;
    KT_ASSERT_EQ(kc_pgwire_msg_decode(s->data + pos, s->len - pos, 1 << 20, &m, &size, NULL), 0);
    KT_ASSERT_EQ(m.type, 'C');
    KT_ASSERT_STR_EQ((const char *)m.payload, tag);
    KT_ASSERT_EQ(pos + size, s->len);
    return n;
}

KT_TEST(pgwire_repl_replies)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    char cols[4][32], vals[4][64];
    bool nulls[4];

    kc_pgwire_repl_put_identify_system(&s, 7311226744839356945ULL, 1, 0x1000000, NULL);
    KT_ASSERT_EQ(kt_reply(&s, cols, vals, nulls, "IDENTIFY_SYSTEM"), 4);
    KT_ASSERT_STR_EQ(cols[0], "systemid");
    KT_ASSERT_STR_EQ(cols[3], "dbname");
    KT_ASSERT_STR_EQ(vals[0], "7311226744839356945");
    KT_ASSERT_STR_EQ(vals[1], "1");
    KT_ASSERT_STR_EQ(vals[2], "0/1000000");
    KT_ASSERT(nulls[3]);
    kc_sbuf_reset(&s);
    KT_ASSERT_EQ(
        kc_pgwire_repl_put_timeline_history(&s, 2, "1\t0/3000000\tno recovery\n", 25, NULL), 0);
    KT_ASSERT_EQ(kt_reply(&s, cols, vals, nulls, "TIMELINE_HISTORY"), 2);
    KT_ASSERT_STR_EQ(vals[0], "00000002.history");
    KT_ASSERT_STR_EQ(vals[1], "1\t0/3000000\tno recovery\n");
    kc_sbuf_reset(&s);
    KT_ASSERT_EQ(kc_pgwire_repl_put_timeline_history(&s, 2, "x", KC_PGWIRE_SEND_MAX, NULL),
                 KC_ETOOBIG);
    KT_ASSERT_EQ(s.len, 0);
    kc_pgwire_repl_put_read_slot(&s, "physical", 0x16B374D848ULL, 3);
    KT_ASSERT_EQ(kt_reply(&s, cols, vals, nulls, "READ_REPLICATION_SLOT"), 3);
    KT_ASSERT_STR_EQ(vals[0], "physical");
    KT_ASSERT_STR_EQ(vals[1], "16/B374D848");
    KT_ASSERT_STR_EQ(vals[2], "3");
    kc_sbuf_reset(&s);
    kc_pgwire_repl_put_read_slot(&s, NULL, 0, 0);
    KT_ASSERT_EQ(kt_reply(&s, cols, vals, nulls, "READ_REPLICATION_SLOT"), 3);
    KT_ASSERT(nulls[0] && nulls[1] && nulls[2]);
    kc_sbuf_reset(&s);
    kc_pgwire_repl_put_show(&s, "wal_segment_size", "16MB");
    KT_ASSERT_EQ(kt_reply(&s, cols, vals, nulls, "SHOW"), 1);
    KT_ASSERT_STR_EQ(cols[0], "wal_segment_size");
    KT_ASSERT_STR_EQ(vals[0], "16MB");
    kc_sbuf_fini(&s);
}

KT_TEST(pgwire_repl_unsupported_and_now)
{
    struct kc_pgwire_repl_cmd c = {0};
    struct kc_error err;
    int64_t now = kc_pgwire_now();

    c.kind = KC_PGWIRE_CMD_CREATE_REPLICATION_SLOT;
    KT_ASSERT_EQ(kc_pgwire_repl_unsupported(&c, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "replication slots are not supported");
    KT_ASSERT_CONTAINS(err.detail, "CREATE_REPLICATION_SLOT");
    KT_ASSERT(err.hint[0] != '\0');
    c.kind = KC_PGWIRE_CMD_SQL;
    KT_ASSERT_EQ(kc_pgwire_repl_unsupported(&c, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "cannot execute SQL commands");
    c.kind = KC_PGWIRE_CMD_START_REPLICATION;
    c.logical = true;
    KT_ASSERT_EQ(kc_pgwire_repl_unsupported(&c, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "logical replication");
    c.kind = KC_PGWIRE_CMD_BASE_BACKUP;
    KT_ASSERT_EQ(kc_pgwire_repl_unsupported(&c, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "BASE_BACKUP");
    /* 2024-01-01 is 24 years after PostgreSQL's epoch */
    KT_ASSERT(now > 24LL * 365 * 86400 * 1000000);
    KT_ASSERT(now < 200LL * 365 * 86400 * 1000000);
}
