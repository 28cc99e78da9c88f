/* SPDX-License-Identifier: Apache-2.0 */
/* page_service_test.c -- the page service against a fake in-memory backend on 127.0.0.1. */
#include "pageserver/page_service.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "common/pagestream_client.h"
#include "unit.h"

#define KT_TIMEOUT_MS 10000 /* client bound on every wait */
#define KT_GEN_REL    20000 /* relation whose pages are generated from the block number */
#define KT_MAX_VERS   64

/* One stored page version of the fake timeline. */
struct kt_version {
    struct kc_ps_reltag rel;
    uint32_t blkno;
    kc_lsn lsn;
    uint8_t fill; /* every byte of the page after the 12-byte stamp */
};

/* An in-memory timeline with a controllable last ingested LSN. */
struct kt_fake {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; broadcast when last moves */
    struct kc_id tenant, timeline;
    kc_lsn last;
    struct kt_version v[KT_MAX_VERS];
    size_t nv;
    int lookups, releases;
};

static struct kc_id kt_id(uint8_t seed)
{
    struct kc_id id;
    for (int i = 0; i < KC_ID_LEN; i++)
        id.b[i] = (uint8_t)(seed * 13 + i + 1);
    return id;
}

static const struct kc_ps_reltag kt_rel = {1663, 5, 16384, 0};
static const struct kc_ps_reltag kt_gen = {1663, 5, KT_GEN_REL, 0};

static void kt_fake_init(struct kt_fake *f)
{
    pthread_condattr_t a;

    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &a);
    pthread_condattr_destroy(&a);
    f->tenant = kt_id(1);
    f->timeline = kt_id(2);
    f->last = 0x300;
}

static void kt_fake_fini(struct kt_fake *f)
{
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

static void kt_fake_put(struct kt_fake *f, const struct kc_ps_reltag *rel, uint32_t blkno,
                        kc_lsn lsn, uint8_t fill)
{
    pthread_mutex_lock(&f->mu);
    KT_ASSERT(f->nv < KT_MAX_VERS);
    f->v[f->nv++] = (struct kt_version){*rel, blkno, lsn, fill};
    pthread_mutex_unlock(&f->mu);
}

static void kt_fake_advance(struct kt_fake *f, kc_lsn lsn)
{
    pthread_mutex_lock(&f->mu);
    f->last = lsn;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static bool kt_rel_eq(const struct kc_ps_reltag *a, const struct kc_ps_reltag *b)
{
    return a->spc == b->spc && a->db == b->db && a->rel == b->rel && a->fork == b->fork;
}

static int kt_lookup(void *arg, const struct kc_id *tenant, const struct kc_id *timeline, void **tl,
                     struct kc_error *err)
{
    struct kt_fake *f = arg;

    if (!kc_id_equal(tenant, &f->tenant) || !kc_id_equal(timeline, &f->timeline))
        return kc_error_set(err, KC_ENOTFOUND, "no such timeline");
    pthread_mutex_lock(&f->mu);
    f->lookups++;
    pthread_mutex_unlock(&f->mu);
    *tl = f;
    return 0;
}

static void kt_release(void *arg, void *tl)
{
    struct kt_fake *f = arg;

    KT_ASSERT(tl == f);
    pthread_mutex_lock(&f->mu);
    f->releases++;
    pthread_mutex_unlock(&f->mu);
}

static kc_lsn kt_last_lsn(void *arg, void *tl)
{
    struct kt_fake *f = arg;
    kc_lsn l;

    (void)tl;
    pthread_mutex_lock(&f->mu);
    l = f->last;
    pthread_mutex_unlock(&f->mu);
    return l;
}

static int kt_wait_lsn(void *arg, void *tl, kc_lsn lsn, int timeout_ms, struct kc_error *err)
{
    struct kt_fake *f = arg;
    struct timespec dl;
    int rc = 0;

    (void)tl;
    KT_ASSERT(timeout_ms > 0 && timeout_ms <= 100);
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_nsec += (long)timeout_ms * 1000000;
    dl.tv_sec += dl.tv_nsec / 1000000000;
    dl.tv_nsec %= 1000000000;
    pthread_mutex_lock(&f->mu);
    while (f->last < lsn && rc == 0)
        rc = pthread_cond_timedwait(&f->cv, &f->mu, &dl);
    rc = f->last >= lsn ? 0 : kc_error_set(err, KC_ETIMEDOUT, "not yet");
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* Page stamp: blkno (4 bytes) and version LSN (8 bytes), then fill bytes. */
static void kt_make_page(uint8_t *page, uint32_t blkno, kc_lsn lsn, uint8_t fill)
{
    memset(page, fill, KC_PS_BLCKSZ);
    kc_store_u32(page, blkno);
    kc_store_u64(page + 4, lsn);
}

static int kt_get_page(void *arg, void *tl, const struct kc_ps_reltag *rel, uint32_t blkno,
                       kc_lsn lsn, uint8_t *page, struct kc_error *err)
{
    struct kt_fake *f = arg;
    const struct kt_version *best = NULL;

    (void)tl;
    (void)err;
    KT_ASSERT(lsn > 0 && lsn <= kt_last_lsn(arg, tl));
    if (kt_rel_eq(rel, &kt_gen)) {
        kt_make_page(page, blkno, lsn, (uint8_t)blkno);
        return 0;
    }
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nv; i++)
        if (kt_rel_eq(&f->v[i].rel, rel) && f->v[i].blkno == blkno && f->v[i].lsn <= lsn &&
            (best == NULL || f->v[i].lsn > best->lsn))
            best = &f->v[i];
    if (best != NULL)
        kt_make_page(page, blkno, best->lsn, best->fill);
    else
        memset(page, 0, KC_PS_BLCKSZ); /* past the end: zeros */
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int kt_nblocks(void *arg, void *tl, const struct kc_ps_reltag *rel, kc_lsn lsn,
                      uint32_t *nblocks, struct kc_error *err)
{
    struct kt_fake *f = arg;
    bool found = false;

    (void)tl;
    *nblocks = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nv; i++)
        if (kt_rel_eq(&f->v[i].rel, rel) && f->v[i].lsn <= lsn) {
            found = true;
            if (f->v[i].blkno + 1 > *nblocks)
                *nblocks = f->v[i].blkno + 1;
        }
    pthread_mutex_unlock(&f->mu);
    if (!found)
        return kc_error_set(err, KC_ENOTFOUND, "relation %u does not exist", rel->rel);
    return 0;
}

static int kt_exists(void *arg, void *tl, const struct kc_ps_reltag *rel, kc_lsn lsn, bool *exists,
                     struct kc_error *err)
{
    uint32_t n;
    struct kc_error ignored;

    (void)err;
    *exists = kt_nblocks(arg, tl, rel, lsn, &n, &ignored) == 0;
    return 0;
}

static int kt_dbsize(void *arg, void *tl, uint32_t spc, uint32_t db, kc_lsn lsn, int64_t *bytes,
                     struct kc_error *err)
{
    struct kt_fake *f = arg;

    (void)tl;
    (void)err;
    *bytes = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nv; i++)
        if (f->v[i].rel.spc == spc && f->v[i].rel.db == db && f->v[i].lsn <= lsn)
            *bytes += KC_PS_BLCKSZ;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int kt_slru(void *arg, void *tl, uint8_t kind, uint32_t segno, kc_lsn lsn, uint8_t *pages,
                   uint32_t *nblocks, struct kc_error *err)
{
    (void)arg;
    (void)tl;
    if (segno == 77)
        return kc_error_set(err, KC_ENOTFOUND, "SLRU segment %u of kind %u not found", segno, kind);
    *nblocks = 2;
    kt_make_page(pages, segno, lsn, kind);
    kt_make_page(pages + KC_PS_BLCKSZ, segno + 1, lsn, kind);
    return 0;
}

static struct ps_page_backend kt_backend(struct kt_fake *f)
{
    struct ps_page_backend b = {
        .arg = f,
        .lookup = kt_lookup,
        .release = kt_release,
        .last_lsn = kt_last_lsn,
        .wait_lsn = kt_wait_lsn,
        .get_page = kt_get_page,
        .nblocks = kt_nblocks,
        .exists = kt_exists,
        .dbsize = kt_dbsize,
        .slru_segment = kt_slru,
    };
    return b;
}

/* A test server: the fake, its own metrics registry, the running service. */
struct kt_env {
    struct kt_fake fake;
    struct kc_metrics_registry *reg;
    struct ps_page_service *srv;
    uint16_t port;
};

static void kt_start(struct kt_env *env, const struct ps_page_service_options *custom)
{
    struct ps_page_service_options o;
    struct ps_page_backend b;
    struct kc_error e;

    kt_fake_init(&env->fake);
    env->reg = kc_metrics_registry_create();
    if (custom != NULL)
        o = *custom;
    else
        ps_page_service_options_init(&o);
    o.registry = env->reg;
    b = kt_backend(&env->fake);
    if (ps_page_service_start(&o, &b, &env->srv, &e) != 0)
        kt_fail(__FILE__, __LINE__, "start: %s", e.message);
    env->port = ps_page_service_port(env->srv);
    KT_ASSERT(env->port != 0);
}

static void kt_stop(struct kt_env *env)
{
    ps_page_service_stop(env->srv);
    kc_metrics_registry_destroy(env->reg);
    kt_fake_fini(&env->fake);
}

static struct kc_ps_hello kt_hello(const struct kt_env *env, uint64_t term)
{
    struct kc_ps_hello h;

    memset(&h, 0, sizeof(h));
    h.min_version = KC_PS_PROTO_MIN;
    h.max_version = KC_PS_PROTO_MAX;
    h.tenant = env->fake.tenant;
    h.timeline = env->fake.timeline;
    h.term = term;
    strcpy(h.name, "unit-test");
    return h;
}

/* Connect and hand-shake; fails the test on error. */
static struct kc_ps_client *kt_client(const struct kt_env *env, uint64_t term)
{
    struct kc_ps_client *c;
    struct kc_ps_hello h = kt_hello(env, term);
    struct kc_error e;

    if (kc_ps_client_connect("127.0.0.1", env->port, KT_TIMEOUT_MS, &c, &e) != 0)
        kt_fail(__FILE__, __LINE__, "connect: %s", e.message);
    if (kc_ps_client_handshake(c, &h, &e) != 0)
        kt_fail(__FILE__, __LINE__, "handshake: %s", e.message);
    KT_ASSERT_EQ(kc_ps_client_version(c), 1);
    return c;
}

static struct kc_ps_request kt_getpage(uint64_t id, const struct kc_ps_reltag *rel, uint32_t blkno,
                                       kc_lsn req_lsn, kc_lsn nms)
{
    struct kc_ps_request q;

    memset(&q, 0, sizeof(q));
    q.type = KC_PS_MSG_GETPAGE;
    q.id = id;
    q.rel = *rel;
    q.blkno = blkno;
    q.request_lsn = req_lsn;
    q.not_modified_since = nms;
    return q;
}

/* Check a GETPAGE answer carries the version stamped (blkno, lsn, fill). */
static void kt_check_page(const struct kc_ps_response *r, uint32_t blkno, kc_lsn vlsn, uint8_t fill)
{
    KT_ASSERT_UEQ(r->type, KC_PS_MSG_GETPAGE_RESP);
    KT_ASSERT_UEQ(kc_load_u32(r->data), blkno);
    KT_ASSERT_UEQ(kc_load_u64(r->data + 4), vlsn);
    KT_ASSERT_UEQ(r->data[12], fill);
    KT_ASSERT_UEQ(r->data[KC_PS_BLCKSZ - 1], fill);
}

KT_TEST(page_service_handshake_and_getpage)
{
    struct kt_env env;
    struct kc_ps_client *c;
    struct kc_ps_response r;
    struct kc_ps_request q;
    struct kc_error e;
    static const uint8_t zero[KC_PS_BLCKSZ];

    kt_start(&env, NULL);
    kt_fake_put(&env.fake, &kt_rel, 0, 0x100, 0xA1);
    kt_fake_put(&env.fake, &kt_rel, 0, 0x200, 0xA2);
    c = kt_client(&env, 1);

    q = kt_getpage(1, &kt_rel, 0, KC_PS_LSN_LATEST, 0x100); /* latest: newest version */
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    kt_check_page(&r, 0, 0x200, 0xA2);
    KT_ASSERT_UEQ(r.id, 1);
    KT_ASSERT_UEQ(r.lsn, 0x300);                 /* read at the last ingested LSN */
    q = kt_getpage(2, &kt_rel, 0, 0x150, 0x100); /* at an LSN between the versions */
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    kt_check_page(&r, 0, 0x100, 0xA1);
    KT_ASSERT_UEQ(r.lsn, 0x150);
    q = kt_getpage(3, &kt_rel, 0, 0x5000, 0x100); /* beyond ingestion, page unchanged: no wait */
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    kt_check_page(&r, 0, 0x200, 0xA2);
    KT_ASSERT_UEQ(r.lsn, 0x300);
    q = kt_getpage(4, &kt_rel, 9, KC_PS_LSN_LATEST, 0); /* past the end: zeros */
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    KT_ASSERT_MEM_EQ(r.data, zero, KC_PS_BLCKSZ);
    kc_ps_client_close(c);
    KT_ASSERT_UEQ(ps_page_service_term(env.srv, &env.fake.tenant, &env.fake.timeline), 1);
    kt_stop(&env);
    KT_ASSERT_EQ(env.fake.lookups, 1);
    KT_ASSERT_EQ(env.fake.releases, 1); /* the handle went back when the connection ended */
}

KT_TEST(page_service_handshake_refusals)
{
    struct kt_env env;
    struct kc_ps_client *c;
    struct kc_ps_hello h;
    struct kc_error e;

    kt_start(&env, NULL);
    h = kt_hello(&env, 1);
    h.min_version = 2;
    h.max_version = 3;
    KT_ASSERT_EQ(kc_ps_client_connect("127.0.0.1", env.port, KT_TIMEOUT_MS, &c, &e), 0);
    KT_ASSERT_EQ(kc_ps_client_handshake(c, &h, &e), KC_EVERSION);
    KT_ASSERT_STR_EQ(kc_ps_client_sqlstate(c), KC_PS_SQLSTATE_VERSION);
    KT_ASSERT_STR_EQ(e.message, "unsupported page service protocol versions 2 to 3");
    KT_ASSERT_CONTAINS(e.detail, "versions 1 to 1");
    KT_ASSERT(e.hint[0] != '\0');
    kc_ps_client_close(c);

    h = kt_hello(&env, 1);
    h.timeline = kt_id(9);
    KT_ASSERT_EQ(kc_ps_client_connect("127.0.0.1", env.port, KT_TIMEOUT_MS, &c, &e), 0);
    KT_ASSERT_EQ(kc_ps_client_handshake(c, &h, &e), KC_ENOTFOUND);
    KT_ASSERT_STR_EQ(kc_ps_client_sqlstate(c), KC_PS_SQLSTATE_NO_TIMELINE);
    KT_ASSERT_CONTAINS(e.message, "not found");
    KT_ASSERT_EQ(kc_ps_client_handshake(c, &h, &e), KC_EIO); /* broken after a refusal */
    kc_ps_client_close(c);

    c = kt_client(&env, 1); /* the server still serves */
    kc_ps_client_close(c);
    kt_stop(&env);
}

KT_TEST(page_service_every_request_type)
{
    struct kt_env env;
    struct kc_ps_client *c;
    struct kc_ps_response r;
    struct kc_ps_request q;
    struct kc_error e;

    kt_start(&env, NULL);
    kt_fake_put(&env.fake, &kt_rel, 0, 0x100, 1);
    kt_fake_put(&env.fake, &kt_rel, 4, 0x250, 1);
    c = kt_client(&env, 1);

    memset(&q, 0, sizeof(q));
    q.id = 10;
    q.request_lsn = KC_PS_LSN_LATEST;
    q.type = KC_PS_MSG_EXISTS;
    q.rel = kt_rel;
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    KT_ASSERT(r.exists);
    q.rel.fork = 1;
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    KT_ASSERT(!r.exists);

    q.type = KC_PS_MSG_NBLOCKS;
    q.rel = kt_rel;
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    KT_ASSERT_UEQ(r.nblocks, 5);
    q.request_lsn = 0x200;
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    KT_ASSERT_UEQ(r.nblocks, 1);
    q.rel.rel = 999; /* the backend's error reaches the client with its sqlstate */
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), KC_ENOTFOUND);
    KT_ASSERT_UEQ(r.type, KC_PS_MSG_ERROR);
    KT_ASSERT_UEQ(r.id, 10);
    KT_ASSERT_STR_EQ(r.sqlstate, KC_PS_SQLSTATE_NOT_FOUND);
    KT_ASSERT_STR_EQ(e.message, "relation 999 does not exist");

    q.type = KC_PS_MSG_DBSIZE;
    q.request_lsn = KC_PS_LSN_LATEST;
    q.spc = 1663;
    q.db = 5;
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    KT_ASSERT_EQ(r.db_size, 2 * KC_PS_BLCKSZ);

    q.type = KC_PS_MSG_SLRU;
    q.slru_kind = KC_PS_SLRU_CLOG;
    q.segno = 3;
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    KT_ASSERT_UEQ(r.nblocks, 2);
    KT_ASSERT_UEQ(kc_load_u32(r.data), 3);
    KT_ASSERT_UEQ(kc_load_u32(r.data + KC_PS_BLCKSZ), 4);
    q.segno = 77;
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), KC_ENOTFOUND);
    KT_ASSERT_CONTAINS(e.message, "SLRU segment 77");
    kc_ps_client_close(c);
    kt_stop(&env);
}

/* Thread: advance the fake's LSN after a delay. */
struct kt_advance {
    struct kt_fake *fake;
    kc_lsn lsn;
    int delay_ms;
};

static void *kt_advance_main(void *arg)
{
    struct kt_advance *a = arg;

    usleep((useconds_t)a->delay_ms * 1000);
    kt_fake_put(a->fake, &kt_rel, 0, a->lsn - 0x10, 0xB7);
    kt_fake_advance(a->fake, a->lsn);
    return NULL;
}

KT_TEST(page_service_waits_for_not_modified_since)
{
    struct kt_env env;
    struct ps_page_service_options o;
    struct kc_ps_client *c;
    struct kc_ps_response r;
    struct kc_ps_request q;
    struct kc_error e;
    struct kt_advance adv;
    pthread_t th;
    struct timespec t0, t1;
    double waited;

    ps_page_service_options_init(&o);
    o.wait_lsn_timeout_ms = 400;
    kt_start(&env, &o);
    kt_fake_put(&env.fake, &kt_rel, 0, 0x100, 0xA1);
    c = kt_client(&env, 1);

    /* WAL up to 0x500 arrives 150 ms later, within the timeout. */
    adv = (struct kt_advance){&env.fake, 0x500, 150};
    KT_ASSERT_EQ(pthread_create(&th, NULL, kt_advance_main, &adv), 0);
    q = kt_getpage(1, &kt_rel, 0, KC_PS_LSN_LATEST, 0x500);
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    KT_ASSERT_EQ(pthread_join(th, NULL), 0);
    kt_check_page(&r, 0, 0x4F0, 0xB7);
    KT_ASSERT_UEQ(r.lsn, 0x500);

    /* WAL up to 0x900 never arrives: a clear error after the timeout, connection usable. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    q = kt_getpage(2, &kt_rel, 0, KC_PS_LSN_LATEST, 0x900);
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), KC_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    KT_ASSERT(waited >= 0.35 && waited < 5.0);
    KT_ASSERT_STR_EQ(r.sqlstate, KC_PS_SQLSTATE_WAIT_TIMEOUT);
    KT_ASSERT_STR_EQ(e.message, "timed out waiting for WAL up to 0/900");
    KT_ASSERT_CONTAINS(e.detail, "ingested WAL up to 0/500");
    KT_ASSERT(e.hint[0] != '\0');
    q = kt_getpage(3, &kt_rel, 0, KC_PS_LSN_LATEST, 0x500);
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    kc_ps_client_close(c);
    kt_stop(&env);
}

KT_TEST(page_service_lsn_rules_answer_errors_and_keep_going)
{
    struct kt_env env;
    struct kc_ps_client *c;
    struct kc_ps_response r;
    struct kc_ps_request q;
    struct kc_error e;

    kt_start(&env, NULL);
    kt_fake_put(&env.fake, &kt_rel, 0, 0x100, 0xA1);
    c = kt_client(&env, 1);
    q = kt_getpage(1, &kt_rel, 0, 0x100, 0x200);
    KT_ASSERT_EQ(kc_ps_client_queue(c, &q, &e), 0);
    q = kt_getpage(2, &kt_rel, 0, 0, 0);
    KT_ASSERT_EQ(kc_ps_client_queue(c, &q, &e), 0);
    q = kt_getpage(3, &kt_rel, 0, 0x200, 0x100);
    KT_ASSERT_EQ(kc_ps_client_queue(c, &q, &e), 0);
    KT_ASSERT_EQ(kc_ps_client_recv(c, &r, &e), 0);
    KT_ASSERT_UEQ(r.type, KC_PS_MSG_ERROR);
    KT_ASSERT_UEQ(r.id, 1);
    KT_ASSERT_STR_EQ(r.sqlstate, KC_PS_SQLSTATE_BAD_LSN);
    KT_ASSERT_STR_EQ(r.error.message,
                     "request LSN 0/100 is older than not-modified-since LSN 0/200");
    KT_ASSERT_EQ(kc_ps_client_recv(c, &r, &e), 0);
    KT_ASSERT_UEQ(r.id, 2);
    KT_ASSERT_CONTAINS(r.error.message, "invalid request LSN 0/0");
    KT_ASSERT_EQ(kc_ps_client_recv(c, &r, &e), 0);
    kt_check_page(&r, 0, 0x100, 0xA1);
    KT_ASSERT_UEQ(r.id, 3);
    kc_ps_client_close(c);
    kt_stop(&env);
}

KT_TEST(page_service_pipelining_1000_in_order)
{
    struct kt_env env;
    struct kc_ps_client *c;
    struct kc_ps_response r;
    struct kc_error e;
    struct kc_sbuf text = KC_SBUF_INIT;

    kt_start(&env, NULL);
    c = kt_client(&env, 1);
    for (uint32_t i = 0; i < 1000; i++) {
        struct kc_ps_request q = kt_getpage(1000 + i, &kt_gen, i * 7, KC_PS_LSN_LATEST, 0x200);
        if (i % 100 == 50) { /* a few other types in the stream */
            q.type = KC_PS_MSG_DBSIZE;
            q.spc = 1663;
            q.db = 5;
        }
        KT_ASSERT_EQ(kc_ps_client_queue(c, &q, &e), 0);
    }
    KT_ASSERT_EQ(kc_ps_client_flush(c, &e), 0); /* everything sent before reading */
    KT_ASSERT_UEQ(kc_ps_client_pending(c), 1000);
    for (uint32_t i = 0; i < 1000; i++) {
        if (kc_ps_client_recv(c, &r, &e) != 0)
            kt_fail(__FILE__, __LINE__, "answer %u: %s", i, e.message);
        KT_ASSERT_UEQ(r.id, 1000 + i);
        if (i % 100 == 50)
            KT_ASSERT_UEQ(r.type, KC_PS_MSG_DBSIZE_RESP);
        else
            kt_check_page(&r, i * 7, 0x300, (uint8_t)(i * 7));
    }
    KT_ASSERT_UEQ(kc_ps_client_pending(c), 0);
    kc_ps_client_close(c);
    kc_metrics_render(env.reg, &text);
    KT_ASSERT_CONTAINS(kc_sbuf_str(&text),
                       "kelp_pageserver_page_requests_total{type=\"getpage\"} 990");
    KT_ASSERT_CONTAINS(kc_sbuf_str(&text),
                       "kelp_pageserver_page_request_seconds_count{type=\"dbsize\"} 10");
    kc_sbuf_fini(&text);
    kt_stop(&env);
}

KT_TEST(page_service_fencing_by_term)
{
    struct kt_env env;
    struct kc_ps_client *c5, *c6, *c;
    struct kc_ps_hello h;
    struct kc_ps_response r;
    struct kc_ps_request q;
    struct kc_error e;

    kt_start(&env, NULL);
    kt_fake_put(&env.fake, &kt_rel, 0, 0x100, 0xA1);
    q = kt_getpage(1, &kt_rel, 0, KC_PS_LSN_LATEST, 0x100);
    c5 = kt_client(&env, 5);
    KT_ASSERT_EQ(kc_ps_client_call(c5, &q, &r, &e), 0);

    /* Term 4 after term 5: refused at the handshake, naming both terms. */
    h = kt_hello(&env, 4);
    KT_ASSERT_EQ(kc_ps_client_connect("127.0.0.1", env.port, KT_TIMEOUT_MS, &c, &e), 0);
    KT_ASSERT(kc_ps_client_handshake(c, &h, &e) != 0);
    KT_ASSERT_STR_EQ(kc_ps_client_sqlstate(c), KC_PS_SQLSTATE_STALE_TERM);
    KT_ASSERT_CONTAINS(e.message, "compute term 4 is older than term 5 of timeline");
    kc_ps_client_close(c);
    KT_ASSERT_EQ(kc_ps_client_call(c5, &q, &r, &e), 0); /* 5 is still the newest */

    /* Term 6 is accepted; from then on term 5 is refused, on its open connection too. */
    c6 = kt_client(&env, 6);
    KT_ASSERT_EQ(kc_ps_client_call(c6, &q, &r, &e), 0);
    KT_ASSERT_EQ(kc_ps_client_call(c5, &q, &r, &e), KC_EIO);
    KT_ASSERT_STR_EQ(r.sqlstate, KC_PS_SQLSTATE_STALE_TERM);
    KT_ASSERT_CONTAINS(e.message, "compute term 5 is older than term 6 of timeline");
    h = kt_hello(&env, 5);
    KT_ASSERT_EQ(kc_ps_client_connect("127.0.0.1", env.port, KT_TIMEOUT_MS, &c, &e), 0);
    KT_ASSERT(kc_ps_client_handshake(c, &h, &e) != 0);
    KT_ASSERT_STR_EQ(kc_ps_client_sqlstate(c), KC_PS_SQLSTATE_STALE_TERM);
    kc_ps_client_close(c);

    /* Read-only clients are not fenced and do not move the term. */
    h = kt_hello(&env, 0);
    h.flags = KC_PS_HELLO_READ_ONLY;
    KT_ASSERT_EQ(kc_ps_client_connect("127.0.0.1", env.port, KT_TIMEOUT_MS, &c, &e), 0);
    KT_ASSERT_EQ(kc_ps_client_handshake(c, &h, &e), 0);
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    kc_ps_client_close(c);
    KT_ASSERT_UEQ(ps_page_service_term(env.srv, &env.fake.tenant, &env.fake.timeline), 6);
    KT_ASSERT_EQ(kc_ps_client_call(c6, &q, &r, &e), 0);
    kc_ps_client_close(c5);
    kc_ps_client_close(c6);
    kt_stop(&env);
}

/* A blocking socket to the server with a bounded receive timeout. */
static int kt_raw_connect(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = 10};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    KT_ASSERT(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    KT_ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    KT_ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    return fd;
}

/*
 * Send bytes on fd, then read until the server closes: the answer must end
 * with one ERROR with id 0 and the given sqlstate, then end of stream.
 */
static void kt_expect_closed_with(int fd, const void *bytes, size_t len, const char *sqlstate)
{
    uint8_t buf[4096];
    size_t got = 0, consumed = 0;
    struct kc_frame f;
    struct kc_ps_response r;

    if (len > 0)
        KT_ASSERT_EQ(send(fd, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
    for (int i = 0; i < 100; i++) {
        ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);
        if (n == 0)
            break;
        if (n < 0)
            kt_fail(__FILE__, __LINE__, "recv: %s (the server did not close)", strerror(errno));
        got += (size_t)n;
        KT_ASSERT(got < sizeof(buf));
    }
    KT_ASSERT_EQ(kc_frame_decode(buf, got, KC_FRAME_MAX_DEFAULT, &f, &consumed, NULL), 0);
    KT_ASSERT_UEQ(consumed, got);
    KT_ASSERT_EQ(kc_ps_response_decode(&f, &r, NULL), 0);
    KT_ASSERT_UEQ(r.type, KC_PS_MSG_ERROR);
    KT_ASSERT_UEQ(r.id, 0);
    KT_ASSERT_STR_EQ(r.sqlstate, sqlstate);
    close(fd);
}

KT_TEST(page_service_malformed_frames_close_only_that_connection)
{
    struct kt_env env;
    struct kc_ps_client *a, *b;
    struct kc_ps_response r;
    struct kc_ps_request q = kt_getpage(1, &kt_gen, 3, KC_PS_LSN_LATEST, 0);
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_ps_hello h;
    struct kc_error e;
    static const char garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    uint8_t big[KC_FRAME_HEADER_SIZE] = {0x4B, 0xC1, 1, 0, 0x50, 0x01, 0, 0x10, 0, 0, 0, 0, 0, 0};
    struct kc_sbuf text = KC_SBUF_INIT;
    int fd;

    kt_start(&env, NULL);
    a = kt_client(&env, 1);
    KT_ASSERT_EQ(kc_ps_client_call(a, &q, &r, &e), 0);

    kt_expect_closed_with(kt_raw_connect(env.port), garbage, sizeof(garbage) - 1,
                          KC_PS_SQLSTATE_PROTOCOL);
    /* A valid HELLO with one CRC bit flipped. */
    h = kt_hello(&env, 1);
    KT_ASSERT_EQ(kc_ps_hello_encode(&s, &h, NULL), 0);
    s.data[11] ^= 0x10;
    kt_expect_closed_with(kt_raw_connect(env.port), s.data, s.len, KC_PS_SQLSTATE_PROTOCOL);
    /* A header announcing 1 MiB before the handshake: refused without waiting for it. */
    kt_expect_closed_with(kt_raw_connect(env.port), big, sizeof(big), KC_PS_SQLSTATE_PROTOCOL);
    /* A request instead of HELLO. */
    kc_sbuf_reset(&s);
    KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, NULL), 0);
    kt_expect_closed_with(kt_raw_connect(env.port), s.data, s.len, KC_PS_SQLSTATE_PROTOCOL);
    /* After a good handshake: a request with an unknown fork (payload byte 36). */
    kc_sbuf_reset(&s);
    KT_ASSERT_EQ(kc_ps_hello_encode(&s, &h, NULL), 0);
    fd = kt_raw_connect(env.port);
    KT_ASSERT_EQ(send(fd, s.data, s.len, MSG_NOSIGNAL), (ssize_t)s.len);
    {
        uint8_t ok[KC_FRAME_HEADER_SIZE + 6];
        KT_ASSERT_EQ(recv(fd, ok, sizeof(ok), MSG_WAITALL), (ssize_t)sizeof(ok));
        KT_ASSERT_UEQ(kc_load_u16(ok + 4), KC_PS_MSG_HELLO_OK);
    }
    kc_sbuf_reset(&s);
    KT_ASSERT_EQ(kc_ps_request_encode(&s, &q, NULL), 0);
    s.data[KC_FRAME_HEADER_SIZE + 36] = 9;
    kc_store_u32(s.data + 10, 0);
    {
        struct kc_sbuf fixed = KC_SBUF_INIT;
        KT_ASSERT_EQ(kc_frame_encode(&fixed, KC_PS_MSG_GETPAGE, s.data + KC_FRAME_HEADER_SIZE,
                                     s.len - KC_FRAME_HEADER_SIZE, NULL),
                     0);
        kt_expect_closed_with(fd, fixed.data, fixed.len, KC_PS_SQLSTATE_PROTOCOL);
        kc_sbuf_fini(&fixed);
    }

    /* The established connection and new ones still work. */
    KT_ASSERT_EQ(kc_ps_client_call(a, &q, &r, &e), 0);
    kt_check_page(&r, 3, 0x300, 3);
    b = kt_client(&env, 1);
    KT_ASSERT_EQ(kc_ps_client_call(b, &q, &r, &e), 0);
    kc_ps_client_close(a);
    kc_ps_client_close(b);
    kc_metrics_render(env.reg, &text);
    KT_ASSERT_CONTAINS(kc_sbuf_str(&text), "kelp_pageserver_page_protocol_errors_total 5");
    kc_sbuf_fini(&text);
    kc_sbuf_fini(&s);
    kt_stop(&env);
}

KT_TEST(page_service_handshake_timeout_and_connection_limit)
{
    struct kt_env env;
    struct ps_page_service_options o;
    struct kc_ps_client *a, *b, *c;
    struct kc_ps_hello h;
    struct kc_error e;
    int fd;

    ps_page_service_options_init(&o);
    o.handshake_timeout_ms = 200;
    o.max_connections = 3;
    kt_start(&env, &o);
    fd = kt_raw_connect(env.port); /* says nothing: closed after 200 ms */
    kt_expect_closed_with(fd, NULL, 0, KC_PS_SQLSTATE_PROTOCOL);
    for (int i = 0; i < 500 && ps_page_service_connections(env.srv) > 0; i++)
        usleep(10000);
    KT_ASSERT_EQ(ps_page_service_connections(env.srv), 0);

    a = kt_client(&env, 1);
    b = kt_client(&env, 1);
    c = kt_client(&env, 1);
    h = kt_hello(&env, 1);
    {
        struct kc_ps_client *d;
        KT_ASSERT_EQ(kc_ps_client_connect("127.0.0.1", env.port, KT_TIMEOUT_MS, &d, &e), 0);
        KT_ASSERT(kc_ps_client_handshake(d, &h, &e) != 0);
        KT_ASSERT_STR_EQ(kc_ps_client_sqlstate(d), KC_PS_SQLSTATE_TOO_MANY);
        KT_ASSERT_CONTAINS(e.message, "too many page service connections");
        kc_ps_client_close(d);
    }
    kc_ps_client_close(c);
    for (int i = 0; i < 500 && ps_page_service_connections(env.srv) > 2; i++)
        usleep(10000);
    KT_ASSERT_EQ(ps_page_service_connections(env.srv), 2);
    c = kt_client(&env, 1); /* room again */
    kc_ps_client_close(a);
    kc_ps_client_close(b);
    kc_ps_client_close(c);
    kt_stop(&env);
}

/* Thread: one client doing many GETPAGEs. */
struct kt_worker {
    struct kt_env *env;
    int index;
    int failures;
};

static void *kt_worker_main(void *arg)
{
    struct kt_worker *w = arg;
    struct kc_ps_client *c = kt_client(w->env, 1);
    struct kc_ps_response r;
    struct kc_error e;

    for (uint32_t i = 0; i < 200; i++) {
        uint32_t blk = (uint32_t)w->index * 1000 + i;
        struct kc_ps_request q = kt_getpage(i + 1, &kt_gen, blk, KC_PS_LSN_LATEST, 0x100);
        if (kc_ps_client_call(c, &q, &r, &e) != 0 || kc_load_u32(r.data) != blk ||
            r.data[100] != (uint8_t)blk)
            w->failures++;
    }
    kc_ps_client_close(c);
    return NULL;
}

KT_TEST(page_service_concurrent_clients)
{
    struct kt_env env;
    struct kt_worker w[8];
    pthread_t th[8];

    kt_start(&env, NULL);
    for (int i = 0; i < 8; i++) {
        w[i] = (struct kt_worker){&env, i, 0};
        KT_ASSERT_EQ(pthread_create(&th[i], NULL, kt_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        KT_ASSERT_EQ(pthread_join(th[i], NULL), 0);
        KT_ASSERT_EQ(w[i].failures, 0);
    }
    kt_stop(&env);
    KT_ASSERT_EQ(env.fake.lookups, 8);
    KT_ASSERT_EQ(env.fake.releases, 8);
}

KT_TEST(page_service_failpoint_before_reply)
{
    struct kt_env env;
    struct kc_ps_client *c;
    struct kc_ps_response r;
    struct kc_ps_request q = kt_getpage(1, &kt_gen, 1, KC_PS_LSN_LATEST, 0);
    struct kc_sbuf text = KC_SBUF_INIT;
    struct kc_error e;

    kt_start(&env, NULL);
    c = kt_client(&env, 1);
    KT_ASSERT_EQ(kc_failpoint_set("pageserver.page_service.before-reply", "1*return", &e), 0);
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), KC_EIO);
    KT_ASSERT_STR_EQ(r.sqlstate, KC_PS_SQLSTATE_INTERNAL);
    KT_ASSERT_CONTAINS(e.message, "failpoint");
    KT_ASSERT_EQ(kc_ps_client_call(c, &q, &r, &e), 0);
    kc_failpoints_reset();
    kc_metrics_render(env.reg, &text);
    KT_ASSERT_CONTAINS(kc_sbuf_str(&text),
                       "kelp_pageserver_page_request_errors_total{type=\"getpage\"} 1");
    KT_ASSERT_CONTAINS(kc_sbuf_str(&text), "kelp_pageserver_page_connections 1");
    kc_sbuf_fini(&text);
    kc_ps_client_close(c);
    kt_stop(&env);
}

KT_TEST(page_service_stop_ends_waiting_requests)
{
    struct kt_env env;
    struct kc_ps_client *c;
    struct kc_ps_response r;
    struct kc_ps_request q;
    struct kc_error e;
    struct timespec t0, t1;
    double took;

    kt_start(&env, NULL); /* default 30 s wait timeout */
    c = kt_client(&env, 1);
    q = kt_getpage(1, &kt_gen, 1, KC_PS_LSN_LATEST, 0x100000);
    KT_ASSERT_EQ(kc_ps_client_queue(c, &q, &e), 0);
    KT_ASSERT_EQ(kc_ps_client_flush(c, &e), 0);
    usleep(200000); /* the request is waiting for WAL */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kt_stop(&env);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    KT_ASSERT(took < 3.0);
    KT_ASSERT_EQ(kc_ps_client_recv(c, &r, &e), 0);
    KT_ASSERT_UEQ(r.type, KC_PS_MSG_ERROR);
    KT_ASSERT_STR_EQ(r.sqlstate, KC_PS_SQLSTATE_SHUTDOWN);
    kc_ps_client_close(c);
}

/* A request that waits for WAL does not hold back the answers before it; order is kept. */
KT_TEST(page_service_wait_mid_pipeline_keeps_order)
{
    struct kt_env env;
    struct kc_ps_client *c;
    struct kc_ps_response r;
    struct kc_ps_request q;
    struct kc_error e;
    struct kt_advance adv;
    pthread_t th;

    kt_start(&env, NULL);
    kt_fake_put(&env.fake, &kt_rel, 0, 0x100, 0xA1);
    c = kt_client(&env, 1);
    q = kt_getpage(1, &kt_gen, 1, KC_PS_LSN_LATEST, 0x100);
    KT_ASSERT_EQ(kc_ps_client_queue(c, &q, &e), 0);
    q = kt_getpage(2, &kt_rel, 0, KC_PS_LSN_LATEST, 0x800); /* waits for WAL */
    KT_ASSERT_EQ(kc_ps_client_queue(c, &q, &e), 0);
    q = kt_getpage(3, &kt_gen, 3, KC_PS_LSN_LATEST, 0x100);
    KT_ASSERT_EQ(kc_ps_client_queue(c, &q, &e), 0);
    KT_ASSERT_EQ(kc_ps_client_flush(c, &e), 0);
    adv = (struct kt_advance){&env.fake, 0x800, 1000};
    KT_ASSERT_EQ(pthread_create(&th, NULL, kt_advance_main, &adv), 0);

    KT_ASSERT_EQ(kc_ps_client_recv(c, &r, &e), 0);
    KT_ASSERT_UEQ(r.id, 1);
    KT_ASSERT_UEQ(kt_last_lsn(&env.fake, NULL), 0x300); /* answered before the WAL came */
    KT_ASSERT_EQ(kc_ps_client_recv(c, &r, &e), 0);
    KT_ASSERT_UEQ(r.id, 2);
    kt_check_page(&r, 0, 0x7F0, 0xB7);
    KT_ASSERT_EQ(kc_ps_client_recv(c, &r, &e), 0);
    KT_ASSERT_UEQ(r.id, 3);
    KT_ASSERT_UEQ(r.lsn, 0x800);
    KT_ASSERT_EQ(pthread_join(th, NULL), 0);
    kc_ps_client_close(c);
    kt_stop(&env);
}
