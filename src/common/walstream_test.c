/* SPDX-License-Identifier: Apache-2.0 */
/*
 * walstream_test.c -- unit tests for walstream.c: contiguity, identity
 * checks, backoff, and the client against a scripted fake walsender on
 * 127.0.0.1. The messages' codec (pgwire_repl.c) is tested in
 * pgwire_repl_test.c, with the rules this client applies.
 */
#include "common/walstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "common/pgwire_repl.h"
#include "unit.h"

/* ---- helpers ---- */

/* A reproducible generator for test data (xorshift64*). */
static uint64_t test_rand(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * UINT64_C(2685821657736338717);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- contiguity ---- */

KT_TEST(walstream_check_contiguous)
{
    struct kc_error err = {0};

    KT_ASSERT_EQ(kc_walstream_check_contiguous(0x1000, 0x1000, &err), 0);
    KT_ASSERT_EQ(kc_walstream_check_contiguous(0x1000, 0x1100, &err), KC_EPROTO);
    KT_ASSERT_STR_EQ(err.message,
                     "gap in the WAL stream: expected data at 0/1000, received data at 0/1100");
    KT_ASSERT_STR_EQ(err.detail, "256 bytes of WAL are missing.");
    KT_ASSERT_EQ(kc_walstream_check_contiguous(0x1000, 0xF00, &err), KC_EPROTO);
    KT_ASSERT_CONTAINS(err.message, "overlap in the WAL stream");
    KT_ASSERT_STR_EQ(err.detail, "The message repeats 256 bytes already received.");
    KT_ASSERT_EQ(kc_walstream_check_contiguous(0x1000, 0x1001, NULL), KC_EPROTO);
}

/* ---- identity ---- */

KT_TEST(walstream_parse_identity)
{
    struct kc_walstream_identity id;
    struct kc_error err = {0};

    KT_ASSERT_EQ(kc_walstream_parse_identity("7345678901234567890", "3", "1/2ABC", NULL, &id, &err),
                 0);
    KT_ASSERT_UEQ(id.system_id, UINT64_C(7345678901234567890));
    KT_ASSERT_EQ(id.timeline, 3);
    KT_ASSERT_UEQ(id.xlogpos, UINT64_C(0x100002ABC));
    KT_ASSERT_STR_EQ(id.dbname, "");
    KT_ASSERT_EQ(
        kc_walstream_parse_identity("18446744073709551615", "4294967295", "0/0", "db", &id, &err),
        0);
    KT_ASSERT_UEQ(id.system_id, UINT64_MAX);
    KT_ASSERT_UEQ(id.timeline, UINT32_MAX);
    KT_ASSERT_STR_EQ(id.dbname, "db");

    static const struct {
        const char *sysid, *tli, *pos, *msg;
    } bad[] = {
        {"", "1", "0/1", "invalid system id"},
        {"18446744073709551616", "1", "0/1", "invalid system id"},
        {"-1", "1", "0/1", "invalid system id"},
        {"12a", "1", "0/1", "invalid system id"},
        {" 12", "1", "0/1", "invalid system id"},
        {NULL, "1", "0/1", "invalid system id"},
        {"1", "0", "0/1", "invalid timeline"},
        {"1", "4294967296", "0/1", "invalid timeline"},
        {"1", "", "0/1", "invalid timeline"},
        {"1", "x", "0/1", "invalid timeline"},
        {"1", "1", "01", "invalid WAL position"},
        {"1", "1", "", "invalid WAL position"},
        {"1", "1", NULL, "invalid WAL position"},
    };
    for (size_t i = 0; i < KC_ARRAY_LEN(bad); i++) {
        KT_ASSERT_EQ(
            kc_walstream_parse_identity(bad[i].sysid, bad[i].tli, bad[i].pos, NULL, &id, &err),
            KC_EPROTO);
        KT_ASSERT_CONTAINS(err.message, bad[i].msg);
    }
}

KT_TEST(walstream_check_identity)
{
    struct kc_walstream_identity id = {.system_id = 42, .timeline = 2};
    struct kc_error err = {0};

    KT_ASSERT_EQ(kc_walstream_check_identity(&id, 0, 0, &err), 0);
    KT_ASSERT_EQ(kc_walstream_check_identity(&id, 42, 2, &err), 0);
    KT_ASSERT_EQ(kc_walstream_check_identity(&id, 43, 0, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "WAL source has system id 42, expected 43");
    KT_ASSERT(err.hint[0] != '\0');
    KT_ASSERT_EQ(kc_walstream_check_identity(&id, 42, 1, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "WAL source is on timeline 2, expected 1");
}

/* ---- backoff ---- */

KT_TEST(walstream_backoff_schedule)
{
    static const int64_t bases[] = {100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000};
    struct kc_walstream_backoff b;
    uint64_t seed = 7;

    kc_walstream_backoff_init(&b, 0, 0);
    KT_ASSERT_EQ(b.initial_ms, KC_WALSTREAM_BACKOFF_INITIAL_MS);
    KT_ASSERT_EQ(b.max_ms, KC_WALSTREAM_BACKOFF_MAX_MS);
    /* rnd 0 gives the low end (base / 2), rnd = base / 2 the high end (base). */
    for (size_t i = 0; i < KC_ARRAY_LEN(bases); i++) {
        struct kc_walstream_backoff lo = b, hi = b;
        KT_ASSERT_EQ(kc_walstream_backoff_next(&lo, 0), bases[i] / 2);
        KT_ASSERT_EQ(kc_walstream_backoff_next(&hi, (uint64_t)(bases[i] - bases[i] / 2)), bases[i]);
        int64_t d = kc_walstream_backoff_next(&b, test_rand(&seed));
        KT_ASSERT(d >= bases[i] / 2 && d <= bases[i]);
        KT_ASSERT_EQ(b.attempts, i + 1);
    }
    kc_walstream_backoff_reset(&b);
    KT_ASSERT_EQ(b.attempts, 0);
    KT_ASSERT_EQ(kc_walstream_backoff_next(&b, 0), 50);

    /* Bounded for any random input and any number of attempts. */
    kc_walstream_backoff_init(&b, 30, 1000);
    for (int i = 0; i < 10000; i++) {
        int64_t d = kc_walstream_backoff_next(&b, test_rand(&seed));
        KT_ASSERT(d >= 15 && d <= 1000);
    }
    KT_ASSERT_EQ(b.base_ms, 1000);
    /* max below initial is raised to initial; huge values do not overflow. */
    kc_walstream_backoff_init(&b, 500, 100);
    KT_ASSERT_EQ(b.max_ms, 500);
    kc_walstream_backoff_init(&b, 1, INT64_MAX);
    for (int i = 0; i < 100; i++)
        KT_ASSERT(kc_walstream_backoff_next(&b, UINT64_MAX) > 0);
    KT_ASSERT_EQ(b.base_ms, INT64_MAX);
}

/* ---- the client against a scripted fake walsender ---- */

enum fake_op {
    FAKE_SEND,          /* send CopyData with .payload */
    FAKE_EXPECT_STATUS, /* read until the client sends a status update */
    FAKE_COPYDONE,      /* send CopyDone, await the client's, then CommandComplete */
    FAKE_COMPLETE,      /* send CommandComplete and close (a walsender shutting down) */
    FAKE_ERROR,         /* send ErrorResponse .text and close */
    FAKE_CLOSE          /* close the socket abruptly */
};

struct fake_event {
    enum fake_op op;
    struct kc_sbuf payload; /* FAKE_SEND */
    const char *text;       /* FAKE_ERROR */
};

/* One scripted connection. The script is set before fake_start; the server
 * thread fills the observations, read after fake_join. */
struct fake {
    int listen_fd, port;
    pthread_t thread;
    const char *sysid, *tli, *xlogpos;        /* IDENTIFY_SYSTEM answer */
    const char *identify_error, *start_error; /* answer with an error instead */
    bool silent;                              /* accept, read, never answer */
    struct fake_event ev[16];
    int nev;
    bool replication_true; /* the startup packet had replication=true */
    char app_name[64];     /* its application_name */
    char start_cmd[128];   /* the START_REPLICATION command */
    uint8_t status[8][KC_PGWIRE_STANDBY_STATUS_LEN];
    int nstatus;       /* status updates received */
    bool got_copydone; /* the client sent CopyDone */
    char problem[200]; /* what went wrong on the server side, "" if nothing */
};

static bool fk_write(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        b += w, n -= (size_t)w;
    }
    return true;
}

static bool fk_read(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = recv(fd, b, n, 0);
        if (r <= 0)
            return false;
        b += r, n -= (size_t)r;
    }
    return true;
}

static bool fk_msg(int fd, char type, const void *payload, size_t len)
{
    uint8_t hdr[5];
    hdr[0] = (uint8_t)type;
    kc_store_u32(hdr + 1, (uint32_t)(len + 4));
    return fk_write(fd, hdr, 5) && fk_write(fd, payload, len);
}

/* Read one client message; the payload is NUL-terminated in out. */
static bool fk_read_msg(int fd, uint8_t *type, struct kc_sbuf *out)
{
    uint8_t hdr[5];
    uint32_t len;
    uint8_t *body;
    bool ok;

    if (!fk_read(fd, hdr, 5))
        return false;
    len = kc_load_u32(hdr + 1);
    if (len < 4 || len > 1024 * 1024)
        return false;
    body = malloc(len);
    ok = fk_read(fd, body, len - 4);
    kc_sbuf_reset(out);
    kc_sbuf_append(out, body, len - 4);
    free(body);
    *type = hdr[0];
    return ok;
}

static bool fk_error(int fd, const char *text)
{
    struct kc_sbuf p = KC_SBUF_INIT;
    bool ok;
    kc_sbuf_printf(&p, "SERROR%cVERROR%cC58P01%cM%s%c", 0, 0, 0, text, 0);
    kc_sbuf_put_u8(&p, 0);
    ok = fk_msg(fd, 'E', p.data, p.len);
    kc_sbuf_fini(&p);
    return ok;
}

static bool fk_ready(int fd)
{
    return fk_msg(fd, 'Z', "I", 1);
}

/* Read the startup packet (answering SSL and GSS requests with 'N'). */
static bool fk_startup(struct fake *f, int fd)
{
    for (int i = 0; i < 4; i++) {
        uint8_t hdr[8];
        uint32_t len, code;
        char *body;

        if (!fk_read(fd, hdr, 8))
            return false;
        len = kc_load_u32(hdr), code = kc_load_u32(hdr + 4);
        if (len < 8 || len > 10000)
            return false;
        body = calloc(1, len - 8 + 1);
        if (!fk_read(fd, body, len - 8)) {
            free(body);
            return false;
        }
        if (code == 80877103 || code == 80877104) {
            free(body);
            if (!fk_write(fd, "N", 1))
                return false;
            continue;
        }
        for (size_t pos = 0; code == 196608 && pos < len - 8 && body[pos] != '\0';) {
            const char *key = body + pos, *val;
            pos += strlen(key) + 1;
            if (pos >= len - 8)
                break;
            val = body + pos;
            pos += strlen(val) + 1;
            if (strcmp(key, "replication") == 0)
                f->replication_true = strcmp(val, "true") == 0;
            if (strcmp(key, "application_name") == 0)
                snprintf(f->app_name, sizeof(f->app_name), "%.63s", val);
        }
        free(body);
        return code == 196608;
    }
    return false;
}

static bool fk_hello(int fd)
{
    static const char *const params[][2] = {{"server_version", "15.18"},
                                            {"client_encoding", "UTF8"},
                                            {"standard_conforming_strings", "on"},
                                            {"integer_datetimes", "on"}};
    struct kc_sbuf p = KC_SBUF_INIT;
    bool ok = fk_msg(fd, 'R', "\0\0\0\0", 4);

    for (size_t i = 0; ok && i < KC_ARRAY_LEN(params); i++) {
        kc_sbuf_reset(&p);
        kc_sbuf_printf(&p, "%s%c%s%c", params[i][0], 0, params[i][1], 0);
        ok = fk_msg(fd, 'S', p.data, p.len);
    }
    kc_sbuf_fini(&p);
    return ok && fk_msg(fd, 'K', "\0\0\0\1\0\0\0\2", 8) && fk_ready(fd);
}

static bool fk_identify(struct fake *f, int fd)
{
    static const char *const names[] = {"systemid", "timeline", "xlogpos", "dbname"};
    const char *vals[] = {f->sysid, f->tli, f->xlogpos, NULL};
    struct kc_sbuf p = KC_SBUF_INIT;
    bool ok;

    if (f->identify_error != NULL)
        return fk_error(fd, f->identify_error) && fk_ready(fd);
    kc_sbuf_put_u16(&p, 4);
    for (int i = 0; i < 4; i++) {
        kc_sbuf_append(&p, names[i], strlen(names[i]) + 1);
        kc_sbuf_put_u32(&p, 0);
        kc_sbuf_put_u16(&p, 0);
        kc_sbuf_put_u32(&p, 25);
        kc_sbuf_put_u16(&p, 0xFFFF);
        kc_sbuf_put_u32(&p, 0xFFFFFFFF);
        kc_sbuf_put_u16(&p, 0);
    }
    ok = fk_msg(fd, 'T', p.data, p.len);
    kc_sbuf_reset(&p);
    kc_sbuf_put_u16(&p, 4);
    for (int i = 0; i < 4; i++) {
        kc_sbuf_put_u32(&p, vals[i] != NULL ? (uint32_t)strlen(vals[i]) : 0xFFFFFFFF);
        if (vals[i] != NULL)
            kc_sbuf_append(&p, vals[i], strlen(vals[i]));
    }
    ok = ok && fk_msg(fd, 'D', p.data, p.len) && fk_msg(fd, 'C', "IDENTIFY_SYSTEM", 16) &&
         fk_ready(fd);
    kc_sbuf_fini(&p);
    return ok;
}

/* Record a status update or CopyDone; false when msg was something else. */
static bool fk_note(struct fake *f, uint8_t type, const struct kc_sbuf *msg)
{
    if (type == 'c') {
        f->got_copydone = true;
        return true;
    }
    if (type == 'd' && msg->len == KC_PGWIRE_STANDBY_STATUS_LEN && msg->data[0] == 'r') {
        if (f->nstatus < (int)KC_ARRAY_LEN(f->status))
            memcpy(f->status[f->nstatus], msg->data, KC_PGWIRE_STANDBY_STATUS_LEN);
        f->nstatus++;
        return true;
    }
    return false;
}

/* Run the events after CopyBothResponse; true when the socket is still open. */
static bool fk_events(struct fake *f, int fd, struct kc_sbuf *msg)
{
    uint8_t type;

    for (int i = 0; i < f->nev; i++) {
        struct fake_event *e = &f->ev[i];
        int want = f->nstatus + 1;
        switch (e->op) {
        case FAKE_SEND:
            if (!fk_msg(fd, 'd', e->payload.data, e->payload.len))
                return false;
            break;
        case FAKE_EXPECT_STATUS:
            while (f->nstatus < want) {
                if (!fk_read_msg(fd, &type, msg)) {
                    snprintf(f->problem, sizeof(f->problem), "no status update arrived");
                    return false;
                }
                (void)fk_note(f, type, msg);
            }
            break;
        case FAKE_COPYDONE:
            if (!fk_msg(fd, 'c', "", 0))
                return false;
            while (!f->got_copydone) {
                if (!fk_read_msg(fd, &type, msg)) {
                    snprintf(f->problem, sizeof(f->problem), "no CopyDone arrived");
                    return false;
                }
                (void)fk_note(f, type, msg);
            }
            if (!fk_msg(fd, 'C', "START_STREAMING", 16) || !fk_ready(fd))
                return false;
            break;
        case FAKE_COMPLETE: (void)fk_msg(fd, 'C', "COPY 0", 7); return false;
        case FAKE_ERROR: (void)fk_error(fd, e->text); return false;
        case FAKE_CLOSE: return false;
        }
    }
    return true;
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    struct timeval tv = {.tv_sec = 5};
    struct kc_sbuf msg = KC_SBUF_INIT;
    uint8_t type;
    int fd = accept(f->listen_fd, NULL, NULL);

    if (fd < 0) {
        snprintf(f->problem, sizeof(f->problem), "accept failed");
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (f->silent) {
        char junk[512];
        while (recv(fd, junk, sizeof(junk), 0) > 0)
            ;
    } else if (!fk_startup(f, fd) || !fk_hello(fd)) {
        snprintf(f->problem, sizeof(f->problem), "startup failed");
    } else {
        /* Bounded: a few queries, then the copy; every read times out after 5 s. */
        for (int i = 0; i < 8 && fk_read_msg(fd, &type, &msg) && type == 'Q'; i++) {
            const char *q = (const char *)msg.data;
            if (strcmp(q, "IDENTIFY_SYSTEM") == 0) {
                if (!fk_identify(f, fd))
                    break;
                continue;
            }
            snprintf(f->start_cmd, sizeof(f->start_cmd), "%.127s", q);
            if (f->start_error != NULL) {
                if (!fk_error(fd, f->start_error) || !fk_ready(fd))
                    break;
                continue;
            }
            if (!fk_msg(fd, 'W', "\0\0\0", 3) || !fk_events(f, fd, &msg))
                break;
            for (int j = 0; j < 100 && fk_read_msg(fd, &type, &msg) && type != 'X'; j++)
                (void)fk_note(f, type, &msg);
            break;
        }
    }
    kc_sbuf_fini(&msg);
    close(fd);
    return NULL;
}

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    f->sysid = "7000000000000000001";
    f->tli = "1";
    f->xlogpos = "0/2000000";
}

static void fake_send(struct fake *f, enum fake_op op)
{
    KT_ASSERT(f->nev < (int)KC_ARRAY_LEN(f->ev));
    f->ev[f->nev++].op = op;
}

/* Queue XLogData of n bytes (byte i of the WAL at LSN x is (uint8_t)x). */
static void fake_wal(struct fake *f, kc_lsn start, size_t n)
{
    uint8_t *data = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(start + i);
    fake_send(f, FAKE_SEND);
    kc_pgwire_repl_encode_xlog_data(&f->ev[f->nev - 1].payload, start, start + n, 123456789, data,
                                    n);
    free(data);
}

static void fake_keepalive(struct fake *f, kc_lsn end, bool reply)
{
    fake_send(f, FAKE_SEND);
    kc_pgwire_repl_encode_keepalive(&f->ev[f->nev - 1].payload, end, 987654321, reply);
}

static void fake_raw(struct fake *f, const void *p, size_t n)
{
    fake_send(f, FAKE_SEND);
    kc_sbuf_append(&f->ev[f->nev - 1].payload, p, n);
}

static void fake_start(struct fake *f)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);

    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    KT_ASSERT(f->listen_fd >= 0);
    KT_ASSERT_EQ(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    KT_ASSERT_EQ(listen(f->listen_fd, 4), 0);
    KT_ASSERT_EQ(getsockname(f->listen_fd, (struct sockaddr *)&a, &alen), 0);
    f->port = ntohs(a.sin_port);
    KT_ASSERT_EQ(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_join(struct fake *f)
{
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
    for (int i = 0; i < f->nev; i++)
        kc_sbuf_fini(&f->ev[i].payload);
    if (f->problem[0] != '\0')
        kt_fail(__FILE__, __LINE__, "fake walsender: %s", f->problem);
}

static struct kc_walstream_options fake_opts(const struct fake *f, char *conninfo, size_t len)
{
    snprintf(conninfo, len, "host=127.0.0.1 port=%d user=kelp dbname=x", f->port);
    return (struct kc_walstream_options){.conninfo = conninfo,
                                         .application_name = "kelp-unit",
                                         .connect_timeout_ms = 5000,
                                         .status_interval_ms = -1};
}

/* Collects what the stream delivers; reports what it got as written and flushed. */
struct sink {
    struct kc_walstream *s;
    struct kc_sbuf wal;
    kc_lsn first;
    int nwal, nkeepalive;
    bool fail; /* on_wal fails with KC_EIO "disk full" */
};

static int sink_wal(void *arg, kc_lsn start, const uint8_t *data, size_t len, struct kc_error *err)
{
    struct sink *k = arg;
    if (k->fail)
        return kc_error_set(err, KC_EIO, "disk full");
    if (k->nwal++ == 0)
        k->first = start;
    kc_sbuf_append(&k->wal, data, len);
    return kc_walstream_set_positions(k->s, start + len, start + len, 0, err);
}

static int sink_keepalive(void *arg, kc_lsn end, bool reply, struct kc_error *err)
{
    struct sink *k = arg;
    (void)end, (void)reply, (void)err;
    k->nkeepalive++;
    return 0;
}

#define START_LSN UINT64_C(0x1000000)

/* Open and start a stream to f at START_LSN, wiring the sink. */
static struct kc_walstream *fake_stream(struct fake *f, struct sink *k,
                                        struct kc_walstream_callbacks *cb)
{
    char conninfo[128];
    struct kc_walstream_options o = fake_opts(f, conninfo, sizeof(conninfo));
    struct kc_error err = {0};
    struct kc_walstream *s = NULL;

    if (kc_walstream_open(&s, &o, &err) != 0)
        kt_fail(__FILE__, __LINE__, "open: %s (%s)", err.message, err.detail);
    if (kc_walstream_start(s, START_LSN, 0, &err) != 0)
        kt_fail(__FILE__, __LINE__, "start: %s (%s)", err.message, err.detail);
    memset(k, 0, sizeof(*k));
    k->s = s;
    *cb = (struct kc_walstream_callbacks){
        .on_wal = sink_wal, .on_keepalive = sink_keepalive, .arg = k};
    return s;
}

KT_TEST(walstream_fake_stream_keepalive_reply_and_end)
{
    struct fake f;
    struct sink k;
    struct kc_walstream_callbacks cb;
    struct kc_error err = {0};
    struct kc_walstream *s;

    fake_init(&f);
    fake_wal(&f, START_LSN, 100);
    fake_wal(&f, START_LSN + 100, 50);
    fake_keepalive(&f, START_LSN + 200, true);
    fake_send(&f, FAKE_EXPECT_STATUS);
    fake_send(&f, FAKE_COMPLETE);
    fake_start(&f);
    s = fake_stream(&f, &k, &cb);
    KT_ASSERT_UEQ(kc_walstream_identity(s)->system_id, UINT64_C(7000000000000000001));
    KT_ASSERT_EQ(kc_walstream_identity(s)->timeline, 1);
    KT_ASSERT_UEQ(kc_walstream_identity(s)->xlogpos, UINT64_C(0x2000000));
    KT_ASSERT(kc_walstream_fd(s) >= 0);
    KT_ASSERT_EQ(kc_walstream_timeout_ms(s), -1);
    KT_ASSERT_EQ(kc_walstream_receive_until(s, UINT64_MAX, 5000, &cb, &err), KC_WALSTREAM_END);
    KT_ASSERT_CONTAINS(err.message, "ended the stream at 0/1000096");
    KT_ASSERT_EQ(kc_walstream_poll(s, &cb, &err), KC_WALSTREAM_END); /* stays ended */
    KT_ASSERT_UEQ(kc_walstream_received_lsn(s), START_LSN + 150);
    KT_ASSERT_UEQ(kc_walstream_server_end_lsn(s), START_LSN + 200);
    kc_walstream_close(s);
    fake_join(&f);

    KT_ASSERT(f.replication_true);
    KT_ASSERT_STR_EQ(f.app_name, "kelp-unit");
    KT_ASSERT_STR_EQ(f.start_cmd, "START_REPLICATION PHYSICAL 0/1000000 TIMELINE 1");
    KT_ASSERT_EQ(k.nwal, 2);
    KT_ASSERT_EQ(k.nkeepalive, 1);
    KT_ASSERT_UEQ(k.first, START_LSN);
    KT_ASSERT_EQ(k.wal.len, 150);
    for (size_t i = 0; i < k.wal.len; i++)
        KT_ASSERT_EQ(k.wal.data[i], (uint8_t)(START_LSN + i));
    /* The reply to the keepalive reports what the sink had flushed. */
    KT_ASSERT_EQ(f.nstatus, 1);
    KT_ASSERT_EQ(f.status[0][0], 'r');
    KT_ASSERT_UEQ(kc_load_u64(f.status[0] + 1), START_LSN + 150);
    KT_ASSERT_UEQ(kc_load_u64(f.status[0] + 9), START_LSN + 150);
    KT_ASSERT_UEQ(kc_load_u64(f.status[0] + 17), 0);
    KT_ASSERT(kc_load_u64(f.status[0] + 25) > UINT64_C(700000000000000)); /* after 2022 */
    KT_ASSERT_EQ(f.status[0][33], 0);
    kc_sbuf_fini(&k.wal);
}

KT_TEST(walstream_fake_receive_until_stop_then_close)
{
    struct fake f;
    struct sink k;
    struct kc_walstream_callbacks cb;
    struct kc_error err = {0};
    struct kc_walstream *s;

    fake_init(&f);
    fake_wal(&f, START_LSN, 100);
    fake_wal(&f, START_LSN + 100, 100);
    fake_wal(&f, START_LSN + 200, 100);
    fake_start(&f);
    s = fake_stream(&f, &k, &cb);
    KT_ASSERT_EQ(kc_walstream_receive_until(s, START_LSN + 150, 5000, &cb, &err), 0);
    KT_ASSERT(kc_walstream_received_lsn(s) >= START_LSN + 200);
    /* Already there: returns at once. */
    KT_ASSERT_EQ(kc_walstream_receive_until(s, START_LSN + 10, 0, &cb, &err), 0);
    KT_ASSERT_EQ(kc_walstream_receive_until(s, START_LSN + 300, 5000, &cb, &err), 0);
    KT_ASSERT_EQ(k.wal.len, 300);
    /* An injected feedback failure is reported and sends nothing. */
    KT_ASSERT_EQ(kc_failpoint_set("common.walstream.before-status", "1*return", &err), 0);
    KT_ASSERT_EQ(kc_walstream_send_status(s, 1, 1, 0, false, &err), KC_EFAILPOINT);
    KT_ASSERT_CONTAINS(err.message, "common.walstream.before-status");
    kc_failpoints_reset();
    kc_walstream_close(s);
    fake_join(&f);
    KT_ASSERT(f.got_copydone); /* close ended the copy politely */
    KT_ASSERT_EQ(f.nstatus, 0);
    kc_sbuf_fini(&k.wal);
}

/* Stream the script of f and expect receive_until to fail with code and text. */
static void expect_stream_error(struct fake *f, int code, const char *text)
{
    struct sink k;
    struct kc_walstream_callbacks cb;
    struct kc_error err = {0};
    struct kc_walstream *s;

    fake_start(f);
    s = fake_stream(f, &k, &cb);
    KT_ASSERT_EQ(kc_walstream_receive_until(s, UINT64_MAX, 5000, &cb, &err), code);
    KT_ASSERT_EQ(err.code, code);
    KT_ASSERT_CONTAINS(err.message, text);
    /* A failed stream can only be closed. */
    KT_ASSERT_EQ(kc_walstream_poll(s, &cb, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "failed");
    kc_walstream_close(s);
    fake_join(f);
    kc_sbuf_fini(&k.wal);
}

KT_TEST(walstream_fake_gap_is_an_error)
{
    struct fake f;

    fake_init(&f);
    fake_wal(&f, START_LSN, 10);
    fake_wal(&f, START_LSN + 20, 10);
    expect_stream_error(&f, KC_EPROTO,
                        "gap in the WAL stream: expected data at 0/100000A, received data at "
                        "0/1000014");
}

KT_TEST(walstream_fake_overlap_is_an_error)
{
    struct fake f;

    fake_init(&f);
    fake_wal(&f, START_LSN, 10);
    fake_wal(&f, START_LSN + 5, 10);
    expect_stream_error(&f, KC_EPROTO, "overlap in the WAL stream");
}

KT_TEST(walstream_fake_first_message_must_start_at_start)
{
    struct fake f;

    fake_init(&f);
    fake_wal(&f, START_LSN + 8, 10);
    expect_stream_error(&f, KC_EPROTO, "expected data at 0/1000000, received data at 0/1000008");
}

KT_TEST(walstream_fake_malformed_messages)
{
    struct fake f;

    fake_init(&f);
    fake_raw(&f, "w0123456789", 11);
    expect_stream_error(&f, KC_EPROTO, "truncated XLogData message: 11 bytes");
    fake_init(&f);
    fake_raw(&f, "z", 1);
    expect_stream_error(&f, KC_EPROTO, "unknown replication message type 'z'");
    fake_init(&f); /* a message only a client sends */
    fake_raw(&f, "r0123456789abcdef0123456789abcdef0", KC_PGWIRE_STANDBY_STATUS_LEN);
    expect_stream_error(&f, KC_EPROTO, "unexpected replication message type 'r'");
    fake_init(&f); /* a keepalive with a trailing byte, which PostgreSQL refuses too */
    fake_raw(&f, "k0123456789abcdef\001!", KC_PGWIRE_KEEPALIVE_LEN + 1);
    expect_stream_error(&f, KC_EPROTO, "keepalive message has 1 trailing bytes");
}

KT_TEST(walstream_fake_server_error_and_lost_connection)
{
    struct fake f;

    fake_init(&f);
    fake_wal(&f, START_LSN, 10);
    fake_send(&f, FAKE_ERROR);
    f.ev[f.nev - 1].text =
        "requested WAL segment 000000010000000000000001 has already been removed";
    expect_stream_error(&f, KC_EIO, "requested WAL segment 000000010000000000000001 has already");

    fake_init(&f);
    fake_wal(&f, START_LSN, 10);
    fake_send(&f, FAKE_CLOSE);
    expect_stream_error(&f, KC_EIO, "lost the connection to the WAL source at 0/100000A");
}

KT_TEST(walstream_fake_callback_and_failpoint_errors)
{
    struct fake f;
    struct sink k;
    struct kc_walstream_callbacks cb;
    struct kc_error err = {0};
    struct kc_walstream *s;

    fake_init(&f);
    fake_wal(&f, START_LSN, 10);
    fake_start(&f);
    s = fake_stream(&f, &k, &cb);
    k.fail = true;
    KT_ASSERT_EQ(kc_walstream_receive_until(s, UINT64_MAX, 5000, &cb, &err), KC_EIO);
    KT_ASSERT_STR_EQ(err.message, "disk full");
    KT_ASSERT_UEQ(kc_walstream_received_lsn(s), START_LSN); /* not delivered */
    kc_walstream_close(s);
    fake_join(&f);

    fake_init(&f);
    fake_wal(&f, START_LSN, 10);
    KT_ASSERT_EQ(kc_failpoint_set("common.walstream.before-deliver", "return", &err), 0);
    expect_stream_error(&f, KC_EFAILPOINT, "common.walstream.before-deliver");
    kc_failpoints_reset();
}

KT_TEST(walstream_fake_copydone_ends_the_stream)
{
    struct fake f;
    struct sink k;
    struct kc_walstream_callbacks cb;
    struct kc_error err = {0};
    struct kc_walstream *s;

    fake_init(&f);
    fake_wal(&f, START_LSN, 64);
    fake_send(&f, FAKE_COPYDONE);
    fake_start(&f);
    s = fake_stream(&f, &k, &cb);
    KT_ASSERT_EQ(kc_walstream_receive_until(s, UINT64_MAX, 5000, &cb, &err), KC_WALSTREAM_END);
    KT_ASSERT_UEQ(kc_walstream_received_lsn(s), START_LSN + 64);
    kc_walstream_close(s);
    fake_join(&f);
    KT_ASSERT(f.got_copydone);
    kc_sbuf_fini(&k.wal);
}

KT_TEST(walstream_fake_periodic_and_explicit_status)
{
    struct fake f;
    struct sink k;
    struct kc_walstream_callbacks cb;
    struct kc_error err = {0};
    struct kc_walstream_options o;
    struct kc_walstream *s = NULL;
    char conninfo[128];

    fake_init(&f);
    fake_wal(&f, START_LSN, 10);
    fake_send(&f, FAKE_EXPECT_STATUS); /* explicit, with reply requested */
    fake_send(&f, FAKE_EXPECT_STATUS); /* periodic */
    fake_send(&f, FAKE_EXPECT_STATUS); /* periodic */
    fake_send(&f, FAKE_COMPLETE);
    fake_start(&f);
    o = fake_opts(&f, conninfo, sizeof(conninfo));
    o.status_interval_ms = 50;
    KT_ASSERT_EQ(kc_walstream_open(&s, &o, &err), 0);
    KT_ASSERT_EQ(kc_walstream_send_status(s, 1, 1, 0, false, &err), KC_EINVAL); /* not started */
    KT_ASSERT_EQ(kc_walstream_start(s, START_LSN, 1, &err), 0);
    KT_ASSERT_EQ(kc_walstream_start(s, START_LSN, 1, &err), KC_EINVAL); /* only once */
    KT_ASSERT(kc_walstream_timeout_ms(s) >= 0 && kc_walstream_timeout_ms(s) <= 50);
    KT_ASSERT_EQ(kc_walstream_set_positions(s, 10, 20, 0, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "inconsistent WAL positions: write 0/A, flush 0/14");
    KT_ASSERT_EQ(kc_walstream_set_positions(s, 30, 20, 21, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_walstream_send_status(s, 0x30, 0x20, 0x10, true, &err), 0);
    memset(&k, 0, sizeof(k));
    k.s = s;
    cb = (struct kc_walstream_callbacks){.on_wal = sink_wal, .arg = &k};
    KT_ASSERT_EQ(kc_walstream_receive_until(s, UINT64_MAX, 5000, &cb, &err), KC_WALSTREAM_END);
    kc_walstream_close(s);
    fake_join(&f);

    KT_ASSERT(f.nstatus >= 3);
    KT_ASSERT_UEQ(kc_load_u64(f.status[0] + 1), 0x30);
    KT_ASSERT_UEQ(kc_load_u64(f.status[0] + 9), 0x20);
    KT_ASSERT_UEQ(kc_load_u64(f.status[0] + 17), 0x10);
    KT_ASSERT_EQ(f.status[0][33], 1);
    KT_ASSERT_UEQ(kc_load_u64(f.status[2] + 9), START_LSN + 10);
    KT_ASSERT_EQ(f.status[2][33], 0);
    kc_sbuf_fini(&k.wal);
}

KT_TEST(walstream_fake_receive_until_times_out)
{
    struct fake f;
    struct sink k;
    struct kc_walstream_callbacks cb;
    struct kc_error err = {0};
    struct kc_walstream *s;
    int64_t t0;

    fake_init(&f);
    fake_wal(&f, START_LSN, 10);
    fake_start(&f);
    s = fake_stream(&f, &k, &cb);
    t0 = mono_ms();
    KT_ASSERT_EQ(kc_walstream_receive_until(s, START_LSN + 100, 200, &cb, &err), KC_ETIMEDOUT);
    KT_ASSERT(mono_ms() - t0 >= 190 && mono_ms() - t0 < 3000);
    KT_ASSERT_STR_EQ(err.message, "timed out after 200 ms waiting for WAL up to 0/1000064");
    KT_ASSERT_STR_EQ(err.detail, "WAL was received up to 0/100000A.");
    kc_walstream_close(s);
    fake_join(&f);
    kc_sbuf_fini(&k.wal);
}

/* Open a stream to f (already started) and expect it to fail with code and text. */
static void expect_open_error(struct fake *f, struct kc_walstream_options *o, int code,
                              const char *text)
{
    struct kc_error err = {0};
    struct kc_walstream *s = (struct kc_walstream *)&err; /* must be reset to NULL */

    KT_ASSERT_EQ(kc_walstream_open(&s, o, &err), code);
    KT_ASSERT(s == NULL);
    KT_ASSERT_CONTAINS(err.message, text);
    if (f != NULL)
        fake_join(f);
}

KT_TEST(walstream_fake_identity_checks)
{
    struct fake f;
    struct kc_walstream_options o;
    char conninfo[128];

    fake_init(&f);
    fake_start(&f);
    o = fake_opts(&f, conninfo, sizeof(conninfo));
    o.expected_system_id = 12;
    expect_open_error(&f, &o, KC_EINVAL,
                      "WAL source has system id 7000000000000000001, expected 12");

    fake_init(&f);
    f.tli = "3";
    fake_start(&f);
    o = fake_opts(&f, conninfo, sizeof(conninfo));
    o.expected_timeline = 2;
    expect_open_error(&f, &o, KC_EINVAL, "WAL source is on timeline 3, expected 2");

    fake_init(&f);
    f.sysid = "not-a-number";
    fake_start(&f);
    o = fake_opts(&f, conninfo, sizeof(conninfo));
    expect_open_error(&f, &o, KC_EPROTO, "invalid system id \"not-a-number\"");

    fake_init(&f);
    f.identify_error = "syntax error";
    fake_start(&f);
    o = fake_opts(&f, conninfo, sizeof(conninfo));
    expect_open_error(&f, &o, KC_EIO, "IDENTIFY_SYSTEM failed: syntax error");
}

KT_TEST(walstream_fake_start_refused_carries_server_message)
{
    struct fake f;
    struct kc_walstream_options o;
    struct kc_error err = {0};
    struct kc_walstream *s = NULL;
    char conninfo[128];

    fake_init(&f);
    f.start_error = "requested starting point 0/5000000 is ahead of the WAL flush position of "
                    "this server 0/3000000";
    fake_start(&f);
    o = fake_opts(&f, conninfo, sizeof(conninfo));
    KT_ASSERT_EQ(kc_walstream_open(&s, &o, &err), 0);
    KT_ASSERT_EQ(kc_walstream_start(s, 0, 0, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_walstream_start(s, UINT64_C(0x5000000), 0, &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, "START_REPLICATION failed: requested starting point 0/5000000 "
                                    "is ahead of the WAL flush position");
    kc_walstream_close(s);
    fake_join(&f);
    KT_ASSERT_STR_EQ(f.start_cmd, "START_REPLICATION PHYSICAL 0/5000000 TIMELINE 1");
}

KT_TEST(walstream_connect_timeout_and_refused)
{
    struct fake f;
    struct kc_walstream_options o;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    char conninfo[128], want[64];
    int64_t t0;
    int fd;

    /* A server that accepts and never answers: the deadline ends the wait. */
    fake_init(&f);
    f.silent = true;
    fake_start(&f);
    o = fake_opts(&f, conninfo, sizeof(conninfo));
    o.connect_timeout_ms = 300;
    t0 = mono_ms();
    expect_open_error(NULL, &o, KC_ETIMEDOUT, "timed out after 300 ms");
    KT_ASSERT(mono_ms() - t0 < 3000);
    fake_join(&f);

    /* A port nobody listens on: refused at once, with libpq's reason. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    KT_ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    KT_ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d", ntohs(a.sin_port));
    o = (struct kc_walstream_options){.conninfo = conninfo};
    snprintf(want, sizeof(want), "could not connect to the WAL source at 127.0.0.1:%d",
             ntohs(a.sin_port));
    t0 = mono_ms();
    expect_open_error(NULL, &o, KC_EIO, want);
    KT_ASSERT(mono_ms() - t0 < 3000);

    /* A malformed conninfo is reported, not crashed on. */
    o = (struct kc_walstream_options){.conninfo = "host=127.0.0.1 nosuchkey=1"};
    expect_open_error(NULL, &o, KC_EINVAL, "invalid connection string for the WAL source");
    o = (struct kc_walstream_options){.conninfo = NULL};
    expect_open_error(NULL, &o, KC_EINVAL, "no conninfo");
}
