/* SPDX-License-Identifier: Apache-2.0 */
/* timeline.c -- a timeline's storage: open layer, freeze and flush, restart, branches, reads. */
#include "pageserver/timeline.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "pageserver/layer_writer.h"
#include "pageserver/timeline_meta.h"

/* The open layer also freezes at this many drops (far below PS_LAYER_MAX_DROPS). */
#define PS_TIMELINE_MAX_DROPS 65536

/* A timeline; see timeline.h. Fields without a guard are set at open and never change. */
struct ps_timeline {
    char *dir;                    /* the timeline's directory */
    struct kc_id tenant, id;      /* who it is */
    struct ps_timeline *ancestor; /* parent (not owned), or NULL */
    kc_lsn ancestor_lsn;          /* branch point in the parent; 0 without one */
    kc_lsn start_lsn;             /* own history above this */
    uint64_t pg_system_id;        /* PostgreSQL system identifier */
    uint32_t wal_seg_size;        /* WAL segment size */
    struct ps_timeline_opts opts; /* with defaults filled in */
    char idhex[KC_ID_STRLEN];     /* id as text, for messages */
    pthread_mutex_t mu;           /* guards everything below but children */
    pthread_cond_t advanced;      /* last_record_lsn moved */
    pthread_cond_t token_free;    /* the flush token was released */
    struct ps_memlayer *open;     /* the open layer: values above its start LSN */
    struct ps_layer_map *map;     /* current map (frozen layers and files) */
    kc_lsn last_record_lsn;       /* end of the last record ingested */
    kc_lsn disk_consistent_lsn;   /* everything up to here is in listed layer files */
    bool freeze_requested;        /* freeze at the next advance */
    bool token;                   /* a flush or attach is running */
    uint64_t flushes;             /* frozen layers flushed */
    uint64_t layers_written;      /* layer files written by flushes */
    atomic_uint children;         /* open branches whose ancestor is this timeline */
};

static void ps_opts_fill(struct ps_timeline_opts *o, const struct ps_timeline_opts *in)
{
    if (in != NULL)
        *o = *in;
    else
        memset(o, 0, sizeof(*o));
    if (o->checkpoint_distance == 0)
        o->checkpoint_distance = PS_TIMELINE_CHECKPOINT_DISTANCE;
    if (o->ancestor_wait_ms == 0)
        o->ancestor_wait_ms = PS_TIMELINE_ANCESTOR_WAIT_MS;
}

/* ---- accessors ---- */

const struct kc_id *ps_timeline_tenant(const struct ps_timeline *tl)
{
    return &tl->tenant;
}

const struct kc_id *ps_timeline_id(const struct ps_timeline *tl)
{
    return &tl->id;
}

const char *ps_timeline_dir(const struct ps_timeline *tl)
{
    return tl->dir;
}

struct ps_timeline *ps_timeline_ancestor(const struct ps_timeline *tl)
{
    return tl->ancestor;
}

kc_lsn ps_timeline_ancestor_lsn(const struct ps_timeline *tl)
{
    return tl->ancestor_lsn;
}

kc_lsn ps_timeline_start_lsn(const struct ps_timeline *tl)
{
    return tl->start_lsn;
}

uint64_t ps_timeline_pg_system_id(const struct ps_timeline *tl)
{
    return tl->pg_system_id;
}

uint32_t ps_timeline_wal_seg_size(const struct ps_timeline *tl)
{
    return tl->wal_seg_size;
}

kc_lsn ps_timeline_last_record_lsn(struct ps_timeline *tl)
{
    kc_lsn lsn;

    pthread_mutex_lock(&tl->mu);
    lsn = tl->last_record_lsn;
    pthread_mutex_unlock(&tl->mu);
    return lsn;
}

kc_lsn ps_timeline_disk_consistent_lsn(struct ps_timeline *tl)
{
    kc_lsn lsn;

    pthread_mutex_lock(&tl->mu);
    lsn = tl->disk_consistent_lsn;
    pthread_mutex_unlock(&tl->mu);
    return lsn;
}

void ps_timeline_get_stats(struct ps_timeline *tl, struct ps_timeline_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&tl->mu);
    out->open_bytes = ps_memlayer_bytes(tl->open);
    out->frozen_layers = ps_layer_map_nmem(tl->map);
    out->layer_files = tl->map->n - out->frozen_layers;
    out->flushes = tl->flushes;
    out->layers_written = tl->layers_written;
    pthread_mutex_unlock(&tl->mu);
}

/* ---- open and close ---- */

/* Open the layer files m lists into tl->map; KC_ECORRUPT (or the reader's error) otherwise. */
static int ps_tl_load_layers(struct ps_timeline *tl, const struct ps_timeline_meta *m,
                             struct kc_error *err)
{
    for (size_t i = 0; i < m->nlayers; i++) {
        const struct ps_layer_desc *want = &m->layers[i].desc;
        char name[PS_LAYER_NAME_MAX], path[4096];
        struct ps_layer_reader *r;
        struct ps_layer *l;
        struct ps_layer_map *next;
        int rc;

        snprintf(path, sizeof(path), "%s/%s", tl->dir, ps_layer_name_format(want, name));
        if ((rc = ps_layer_open(path, &r, err)) != 0) {
            kc_error_prefix(err, "timeline %s lists a layer it cannot open", tl->idhex);
            return rc == KC_ENOTFOUND ? KC_ECORRUPT : rc;
        }
        l = ps_layer_from_file(r);
        if (!kc_id_equal(&l->desc.tenant, &tl->tenant) ||
            !kc_id_equal(&l->desc.timeline, &tl->id) || l->file_size != m->layers[i].file_size) {
            kc_error_set(err, KC_ECORRUPT, "layer file \"%s\" does not belong to timeline %s", path,
                         tl->idhex);
            kc_error_detail(err, "Its header names another tenant or timeline, or its size "
                                 "differs from the one in the metadata.");
            ps_layer_unref(l);
            return KC_ECORRUPT;
        }
        if ((rc = ps_layer_map_check_add(tl->map, &l->desc, err)) != 0) {
            ps_layer_unref(l);
            return KC_ECORRUPT;
        }
        next = ps_layer_map_edit(tl->map, l, NULL);
        ps_layer_unref(l);
        ps_layer_map_unref(tl->map);
        tl->map = next;
    }
    return 0;
}

static int ps_strcmp_qsort(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Remove layer files of the directory that m does not list (left by an interrupted flush). */
static int ps_tl_remove_unlisted(struct ps_timeline *tl, const struct ps_timeline_meta *m,
                                 struct kc_error *err)
{
    char **names = kc_malloc((m->nlayers + 1) * sizeof(*names)), path[4096];
    DIR *dh = opendir(tl->dir);
    struct dirent *de;
    int rc = 0;

    for (size_t i = 0; i < m->nlayers; i++)
        names[i] = ps_layer_name_format(&m->layers[i].desc, kc_malloc(PS_LAYER_NAME_MAX));
    qsort(names, m->nlayers, sizeof(*names), ps_strcmp_qsort);
    if (dh == NULL)
        rc = kc_error_set(err, KC_EIO, "could not open directory \"%s\": %s", tl->dir,
                          strerror(errno));
    while (rc == 0 && (de = readdir(dh)) != NULL) {
        struct ps_layer_desc d;
        const char *key = de->d_name;
        if (ps_layer_name_parse(de->d_name, &d, NULL) != 0 ||
            bsearch(&key, names, m->nlayers, sizeof(*names), ps_strcmp_qsort) != NULL)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tl->dir, de->d_name);
        kc_warn("timeline %s: removing layer file %s, which the metadata does not list "
                "(left by an interrupted flush)",
                tl->idhex, de->d_name);
        if (unlink(path) != 0 && errno != ENOENT)
            rc = kc_error_set(err, KC_EIO, "could not remove \"%s\": %s", path, strerror(errno));
    }
    if (dh != NULL)
        closedir(dh);
    for (size_t i = 0; i < m->nlayers; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Fill tl's identity from m and check the ancestor; KC_EINVAL when it does not match. */
static int ps_tl_init_from_meta(struct ps_timeline *tl, const struct ps_timeline_meta *m,
                                struct ps_timeline *ancestor, struct kc_error *err)
{
    char want[KC_ID_STRLEN];

    tl->tenant = m->tenant;
    tl->id = m->timeline;
    tl->ancestor_lsn = m->ancestor_lsn;
    tl->start_lsn = m->start_lsn;
    tl->pg_system_id = m->pg_system_id;
    tl->wal_seg_size = m->wal_seg_size;
    tl->disk_consistent_lsn = tl->last_record_lsn = m->disk_consistent_lsn;
    kc_id_format(&tl->id, tl->idhex);
    if (kc_id_is_zero(&m->ancestor)
            ? ancestor != NULL
            : ancestor == NULL || !kc_id_equal(&ancestor->id, &m->ancestor) ||
                  !kc_id_equal(&ancestor->tenant, &m->tenant)) {
        kc_error_set(err, KC_EINVAL, "wrong ancestor for timeline %s", tl->idhex);
        if (kc_id_is_zero(&m->ancestor))
            kc_error_detail(err, "It is a root timeline, but an ancestor was given.");
        else
            kc_error_detail(err, "It branched from timeline %s of the same tenant.",
                            kc_id_format(&m->ancestor, want));
        kc_error_hint(err, "Open the parent timeline first and pass it.");
        return KC_EINVAL;
    }
    tl->ancestor = ancestor;
    return 0;
}

int ps_timeline_open(const char *dir, struct ps_timeline *ancestor,
                     const struct ps_timeline_opts *opts, struct ps_timeline **out,
                     struct kc_error *err)
{
    struct ps_timeline_meta m;
    struct ps_timeline *tl;
    pthread_condattr_t ca;
    char tmp[4096];
    int rc;

    *out = NULL;
    snprintf(tmp, sizeof(tmp), "%s/%s", dir, PS_TIMELINE_META_TEMP);
    if (unlink(tmp) != 0 && errno != ENOENT)
        return kc_error_set(err, KC_EIO, "could not remove \"%s\": %s", tmp, strerror(errno));
    if ((rc = ps_timeline_meta_read(dir, &m, err)) != 0)
        return rc;
    if ((rc = ps_layer_remove_temp_files(dir, NULL, err)) != 0) {
        ps_timeline_meta_fini(&m);
        return rc;
    }
    tl = kc_calloc(1, sizeof(*tl));
    tl->dir = kc_strdup(dir);
    ps_opts_fill(&tl->opts, opts);
    pthread_mutex_init(&tl->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&tl->advanced, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&tl->token_free, NULL);
    atomic_init(&tl->children, 0);
    tl->map = ps_layer_map_create();
    rc = ps_tl_init_from_meta(tl, &m, ancestor, err);
    if (rc == 0)
        rc = ps_tl_load_layers(tl, &m, err);
    if (rc == 0)
        rc = ps_tl_remove_unlisted(tl, &m, err);
    ps_timeline_meta_fini(&m);
    if (rc != 0) {
        tl->ancestor = NULL;
        ps_timeline_close(tl);
        return rc;
    }
    tl->open = ps_memlayer_create(tl->disk_consistent_lsn);
    if (ancestor != NULL)
        atomic_fetch_add(&ancestor->children, 1);
    *out = tl;
    return 0;
}

void ps_timeline_close(struct ps_timeline *tl)
{
    unsigned children;

    if (tl == NULL)
        return;
    children = atomic_load(&tl->children);
    if (children != 0)
        kc_fatal("timeline %s closed while %u branches still use it", tl->idhex, children);
    if (tl->ancestor != NULL)
        atomic_fetch_sub(&tl->ancestor->children, 1);
    ps_memlayer_destroy(tl->open);
    ps_layer_map_unref(tl->map);
    pthread_cond_destroy(&tl->advanced);
    pthread_cond_destroy(&tl->token_free);
    pthread_mutex_destroy(&tl->mu);
    free(tl->dir);
    free(tl);
}

/* mkdir dir, write m there and make the directory entry durable. */
static int ps_tl_make_dir(const char *dir, const struct ps_timeline_meta *m, struct kc_error *err)
{
    char *copy;
    int rc;

    if ((rc = ps_timeline_meta_check(m, err)) != 0)
        return rc;
    if (mkdir(dir, 0755) != 0) {
        rc = kc_error_set(err, errno == EEXIST ? KC_EINVAL : KC_EIO,
                          "could not create timeline directory \"%s\": %s", dir, strerror(errno));
        if (errno == EEXIST)
            kc_error_hint(err, "Choose a new directory; an existing timeline is opened instead.");
        return rc;
    }
    if ((rc = ps_timeline_meta_write(dir, m, err)) != 0) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, PS_TIMELINE_META_FILE);
        unlink(path); /* best effort: leave no half-made timeline behind */
        rmdir(dir);
        return rc;
    }
    copy = kc_strdup(dir);
    rc = ps_timeline_fsync_dir(dirname(copy), err);
    free(copy);
    return rc;
}

int ps_timeline_create(const char *dir, const struct kc_id *tenant, const struct kc_id *timeline,
                       kc_lsn start_lsn, uint64_t pg_system_id, uint32_t wal_seg_size,
                       const struct ps_timeline_opts *opts, struct ps_timeline **out,
                       struct kc_error *err)
{
    struct ps_timeline_meta m;
    int rc;

    *out = NULL;
    memset(&m, 0, sizeof(m));
    m.tenant = *tenant;
    m.timeline = *timeline;
    m.start_lsn = m.disk_consistent_lsn = start_lsn;
    m.pg_system_id = pg_system_id;
    m.wal_seg_size = wal_seg_size;
    if ((rc = ps_tl_make_dir(dir, &m, err)) != 0)
        return rc;
    return ps_timeline_open(dir, NULL, opts, out, err);
}

int ps_timeline_branch(struct ps_timeline *parent, const struct kc_id *new_id, kc_lsn lsn,
                       const char *dir, struct ps_timeline **out, struct kc_error *err)
{
    struct ps_timeline_meta m;
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];
    kc_lsn last = ps_timeline_last_record_lsn(parent);
    int rc;

    *out = NULL;
    if (kc_id_is_zero(new_id) || kc_id_equal(new_id, &parent->id))
        return kc_error_set(err, KC_EINVAL, "invalid id for a branch of timeline %s",
                            parent->idhex);
    if (lsn > last) {
        kc_error_set(err, KC_EINVAL, "branch LSN %s is past the end of timeline %s",
                     kc_lsn_format(lsn, a), parent->idhex);
        kc_error_detail(err, "The timeline has ingested WAL up to %s.", kc_lsn_format(last, b));
        kc_error_hint(err, "Branch at or below %s, or wait until the WAL arrives.", b);
        return KC_EINVAL;
    }
    if (lsn == 0 || lsn < parent->start_lsn) {
        kc_error_set(err, KC_EINVAL, "branch LSN %s is before the history of timeline %s",
                     kc_lsn_format(lsn, a), parent->idhex);
        kc_error_detail(err, "The timeline keeps history from %s on.",
                        kc_lsn_format(parent->start_lsn, b));
        kc_error_hint(err, "Branch at or above %s, or branch from the timeline's ancestor.", b);
        return KC_EINVAL;
    }
    memset(&m, 0, sizeof(m));
    m.tenant = parent->tenant;
    m.timeline = *new_id;
    m.ancestor = parent->id;
    m.ancestor_lsn = m.start_lsn = m.disk_consistent_lsn = lsn;
    m.pg_system_id = parent->pg_system_id;
    m.wal_seg_size = parent->wal_seg_size;
    if ((rc = ps_tl_make_dir(dir, &m, err)) != 0)
        return rc;
    return ps_timeline_open(dir, parent, &parent->opts, out, err);
}

/* ---- ingest ---- */

/* Refuse a write at lsn below last_record_lsn (caller holds mu). */
static int ps_tl_check_write(struct ps_timeline *tl, kc_lsn lsn, struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    if (lsn >= tl->last_record_lsn)
        return 0;
    kc_error_set(err, KC_EINVAL, "write at LSN %s is below the last record LSN %s of timeline %s",
                 kc_lsn_format(lsn, a), kc_lsn_format(tl->last_record_lsn, b), tl->idhex);
    kc_error_hint(err, "Ingest WAL in order, resuming from the disk consistent LSN after a "
                       "restart.");
    return KC_EINVAL;
}

/* Visitor that notes the newest LSN visited and stops. */
static int ps_tl_newest_cb(void *arg, kc_lsn lsn, const struct ps_value *v)
{
    (void)v;
    *(kc_lsn *)arg = lsn;
    return 1;
}

/* Refuse a second value of key at lsn: a layer file holds one per (key, LSN) (caller holds mu). */
static int ps_tl_check_unique(struct ps_timeline *tl, const struct ps_key *key, kc_lsn lsn,
                              struct kc_error *err)
{
    enum ps_search_result r;
    kc_lsn newest = 0;
    char k[PS_KEY_STRLEN], l[KC_LSN_STRLEN];

    if (ps_memlayer_search(tl->open, key, lsn, ps_tl_newest_cb, &newest, &r, NULL) < 0 ||
        newest != lsn)
        return 0;
    return kc_error_set(err, KC_EINVAL, "key %s already has a value at LSN %s",
                        ps_key_format(key, k), kc_lsn_format(lsn, l));
}

int ps_timeline_put(struct ps_timeline *tl, const struct ps_key *key, kc_lsn lsn,
                    const struct ps_value *v, struct kc_error *err)
{
    int rc;

    pthread_mutex_lock(&tl->mu);
    rc = ps_tl_check_write(tl, lsn, err);
    if (rc == 0)
        rc = ps_tl_check_unique(tl, key, lsn, err);
    if (rc == 0)
        rc = ps_memlayer_put(tl->open, key, lsn, v, err);
    pthread_mutex_unlock(&tl->mu);
    return rc;
}

int ps_timeline_drop_range(struct ps_timeline *tl, const struct ps_key *start,
                           const struct ps_key *end, kc_lsn lsn, struct kc_error *err)
{
    int rc;

    pthread_mutex_lock(&tl->mu);
    rc = ps_tl_check_write(tl, lsn, err);
    if (rc == 0)
        rc = ps_memlayer_drop(tl->open, start, end, lsn, err);
    pthread_mutex_unlock(&tl->mu);
    return rc;
}

int ps_timeline_get_latest(struct ps_timeline *tl, const struct ps_key *key, uint8_t *buf,
                           size_t cap, size_t *len, struct kc_error *err)
{
    struct ps_values vals;
    char k[PS_KEY_STRLEN];
    int rc;

    ps_values_init(&vals);
    rc = ps_timeline_get_values(tl, key, UINT64_MAX, &vals, err);
    if (rc == 0 && vals.nrecords > 0) {
        rc = kc_error_set(err, KC_ECORRUPT, "key %s of timeline %s is not stored as an image",
                          ps_key_format(key, k), tl->idhex);
        kc_error_detail(err, "Its newest versions are %zu records.", vals.nrecords);
    } else if (rc == 0 && vals.has_base) {
        *len = vals.base.v.len;
        if (vals.base.v.len > 0)
            memcpy(buf, vals.base.v.data, vals.base.v.len < cap ? vals.base.v.len : cap);
        rc = 1;
    }
    ps_values_fini(&vals);
    return rc;
}

static int ps_tl_op_put(void *arg, const struct ps_key *key, kc_lsn lsn, const struct ps_value *v,
                        struct kc_error *err)
{
    return ps_timeline_put(arg, key, lsn, v, err);
}

static int ps_tl_op_drop(void *arg, const struct ps_key *start, const struct ps_key *end,
                         kc_lsn lsn, struct kc_error *err)
{
    return ps_timeline_drop_range(arg, start, end, lsn, err);
}

static int ps_tl_op_get(void *arg, const struct ps_key *key, uint8_t *buf, size_t cap, size_t *len,
                        struct kc_error *err)
{
    return ps_timeline_get_latest(arg, key, buf, cap, len, err);
}

struct ps_ingest_ops ps_timeline_ingest_ops(struct ps_timeline *tl)
{
    struct ps_ingest_ops ops = {tl, ps_tl_op_put, ps_tl_op_drop, ps_tl_op_get};
    return ops;
}

/* Freeze the open layer at last_record_lsn when it holds anything (caller holds mu). */
static void ps_tl_freeze_locked(struct ps_timeline *tl)
{
    struct ps_layer *l;
    struct ps_layer_map *next;

    tl->freeze_requested = false;
    if (tl->last_record_lsn <= ps_memlayer_start_lsn(tl->open))
        return;
    ps_memlayer_freeze(tl->open);
    l = ps_layer_from_memlayer(tl->open, &tl->tenant, &tl->id, tl->last_record_lsn);
    next = ps_layer_map_edit(tl->map, l, NULL);
    ps_layer_unref(l);
    ps_layer_map_unref(tl->map);
    tl->map = next;
    tl->open = ps_memlayer_create(tl->last_record_lsn);
}

/* The open layer is due for freezing (caller holds mu). */
static bool ps_tl_should_roll(const struct ps_timeline *tl)
{
    size_t ndrops;

    (void)ps_memlayer_drops(tl->open, &ndrops);
    return ps_memlayer_bytes(tl->open) + ndrops * sizeof(struct ps_drop) >=
               tl->opts.checkpoint_distance ||
           ndrops >= PS_TIMELINE_MAX_DROPS;
}

int ps_timeline_advance(struct ps_timeline *tl, kc_lsn lsn, struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];
    int rc = 0;

    pthread_mutex_lock(&tl->mu);
    if (lsn < tl->last_record_lsn || ps_memlayer_end_lsn(tl->open) > lsn) {
        kc_lsn above =
            lsn < tl->last_record_lsn ? tl->last_record_lsn : ps_memlayer_end_lsn(tl->open);
        rc = kc_error_set(err, KC_EINVAL, "cannot advance timeline %s to LSN %s", tl->idhex,
                          kc_lsn_format(lsn, a));
        kc_error_detail(err, "%s %s is above it.",
                        lsn < tl->last_record_lsn ? "The last record LSN" : "A value stored at",
                        kc_lsn_format(above, b));
    } else {
        tl->last_record_lsn = lsn;
        if (tl->freeze_requested || ps_tl_should_roll(tl))
            ps_tl_freeze_locked(tl);
        pthread_cond_broadcast(&tl->advanced);
    }
    pthread_mutex_unlock(&tl->mu);
    return rc;
}

int ps_timeline_wait_lsn(struct ps_timeline *tl, kc_lsn lsn, unsigned timeout_ms,
                         struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];
    struct timespec deadline;
    kc_lsn last;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&tl->mu);
    while (tl->last_record_lsn < lsn)
        if (pthread_cond_timedwait(&tl->advanced, &tl->mu, &deadline) == ETIMEDOUT)
            break;
    last = tl->last_record_lsn;
    pthread_mutex_unlock(&tl->mu);
    if (last >= lsn)
        return 0;
    kc_error_set(err, KC_ETIMEDOUT, "timed out waiting for WAL up to LSN %s on timeline %s",
                 kc_lsn_format(lsn, a), tl->idhex);
    kc_error_detail(err, "After %u ms the last record ingested ends at %s.", timeout_ms,
                    kc_lsn_format(last, b));
    kc_error_hint(err, "Check that the timeline's WAL is being streamed from the safekeepers.");
    return KC_ETIMEDOUT;
}

/* ---- freezing and flushing ---- */

bool ps_timeline_freeze(struct ps_timeline *tl)
{
    bool now;

    pthread_mutex_lock(&tl->mu);
    now = ps_memlayer_end_lsn(tl->open) <= tl->last_record_lsn;
    if (now)
        ps_tl_freeze_locked(tl);
    else
        tl->freeze_requested = true;
    pthread_mutex_unlock(&tl->mu);
    return now;
}

bool ps_timeline_flush_pending(struct ps_timeline *tl)
{
    bool pending;

    pthread_mutex_lock(&tl->mu);
    pending = ps_layer_map_nmem(tl->map) > 0;
    pthread_mutex_unlock(&tl->mu);
    return pending;
}

/* Take the flush token (caller holds mu; may wait on it). */
static void ps_tl_token_take(struct ps_timeline *tl)
{
    while (tl->token)
        pthread_cond_wait(&tl->token_free, &tl->mu);
    tl->token = true;
}

static void ps_tl_token_release(struct ps_timeline *tl)
{
    tl->token = false;
    pthread_cond_broadcast(&tl->token_free);
}

/*
 * Write the metadata: the layer files of map, plus add (may be NULL), with
 * disk_consistent_lsn dcl. Called with the token, without mu.
 */
static int ps_tl_write_meta(struct ps_timeline *tl, const struct ps_layer_map *map,
                            const struct ps_layer *add, kc_lsn dcl, struct kc_error *err)
{
    struct ps_timeline_meta m;
    int rc;

    memset(&m, 0, sizeof(m));
    m.tenant = tl->tenant;
    m.timeline = tl->id;
    if (tl->ancestor != NULL)
        m.ancestor = tl->ancestor->id;
    m.ancestor_lsn = tl->ancestor_lsn;
    m.start_lsn = tl->start_lsn;
    m.disk_consistent_lsn = dcl;
    m.pg_system_id = tl->pg_system_id;
    m.wal_seg_size = tl->wal_seg_size;
    m.layers = kc_malloc((map->n + 1) * sizeof(*m.layers));
    for (size_t i = 0; i < map->n + 1; i++) {
        const struct ps_layer *l = i < map->n ? map->layers[i] : add;
        if (l == NULL || l->file == NULL)
            continue;
        m.layers[m.nlayers].desc = l->desc;
        m.layers[m.nlayers++].file_size = l->file_size;
    }
    ps_timeline_meta_sort(&m);
    rc = ps_timeline_meta_write(tl->dir, &m, err);
    free(m.layers);
    return rc;
}

/* Context of writing a frozen layer's values to a layer writer. */
struct ps_tl_copy {
    struct ps_layer_writer *w;
    struct kc_error *err;
    bool have_last;         /* last_key and last_lsn are set */
    struct ps_key last_key; /* the pair written last */
    kc_lsn last_lsn;
};

/*
 * Write one value. A second value of a pair already written is skipped:
 * puts refuse such pairs unless a drop at that very LSN hides the first,
 * and then a drop at the same LSN hides both from every read anyway.
 */
static int ps_tl_copy_value(void *arg, const struct ps_key *key, kc_lsn lsn,
                            const struct ps_value *v)
{
    struct ps_tl_copy *c = arg;

    if (c->have_last && c->last_lsn == lsn && ps_key_eq(&c->last_key, key))
        return 0;
    c->have_last = true;
    c->last_key = *key;
    c->last_lsn = lsn;
    return ps_layer_writer_add(c->w, key, lsn, v, c->err);
}

/* Write the frozen layer l as a layer file; *out is the new file layer, NULL when l is empty. */
static int ps_tl_write_layer(struct ps_timeline *tl, const struct ps_layer *l,
                             struct ps_layer **out, struct kc_error *err)
{
    struct ps_layer_writer *w;
    struct ps_layer_reader *r;
    struct ps_tl_copy c;
    const struct ps_drop *drops;
    char path[4096];
    size_t ndrops;
    int rc;

    *out = NULL;
    drops = ps_memlayer_drops(l->mem, &ndrops);
    if (ps_memlayer_nvalues(l->mem) == 0 && ndrops == 0)
        return 0; /* nothing to write: only disk_consistent_lsn moves */
    KC_FAILPOINT_ERROR("pageserver.timeline.before-layer-write", err);
    if ((rc = ps_layer_writer_create(tl->dir, &l->desc, NULL, &w, err)) != 0)
        return rc;
    memset(&c, 0, sizeof(c));
    c.w = w;
    c.err = err;
    rc = ps_memlayer_iterate(l->mem, ps_tl_copy_value, &c);
    for (size_t i = 0; i < ndrops && rc == 0; i++)
        rc = ps_layer_writer_add_drop(w, &drops[i], err);
    if (rc != 0) {
        ps_layer_writer_abort(w);
        return rc;
    }
    snprintf(path, sizeof(path), "%s", ps_layer_writer_path(w));
    if ((rc = ps_layer_writer_finish(w, err)) != 0 || (rc = ps_layer_open(path, &r, err)) != 0)
        return rc;
    *out = ps_layer_from_file(r);
    return 0;
}

/* Flush the frozen layer l (token held, mu not held): file, then metadata. */
static int ps_tl_flush_one(struct ps_timeline *tl, const struct ps_layer_map *map,
                           const struct ps_layer *l, struct ps_layer **out, struct kc_error *err)
{
    int rc = ps_tl_write_layer(tl, l, out, err);

    if (rc == 0 && *out != NULL) {
        char fp[KC_FAILPOINT_VALUE_MAX + 1];
        if (kc_failpoint("pageserver.timeline.after-layer-write", fp, sizeof(fp)))
            rc = kc_error_set(err, KC_EFAILPOINT,
                              "failpoint \"pageserver.timeline.after-layer-write\" injected an "
                              "error");
    }
    if (rc == 0)
        rc = ps_tl_write_meta(tl, map, *out, l->desc.lsn_end - 1, err);
    if (rc != 0) {
        ps_layer_unref(*out);
        *out = NULL;
        kc_error_prefix(err, "could not flush timeline %s", tl->idhex);
    }
    return rc;
}

int ps_timeline_flush(struct ps_timeline *tl, struct kc_error *err)
{
    char a[KC_LSN_STRLEN];
    int rc = 0;

    pthread_mutex_lock(&tl->mu);
    ps_tl_token_take(tl);
    while (rc == 0) {
        struct ps_layer *l = ps_layer_map_oldest_mem(tl->map), *file = NULL;
        struct ps_layer_map *map = ps_layer_map_ref(tl->map), *next;

        if (l == NULL) {
            ps_layer_map_unref(map);
            break;
        }
        pthread_mutex_unlock(&tl->mu);
        rc = ps_tl_flush_one(tl, map, l, &file, err);
        pthread_mutex_lock(&tl->mu);
        if (rc == 0) {
            next = ps_layer_map_edit(tl->map, file, l);
            ps_layer_map_unref(tl->map);
            tl->map = next;
            tl->disk_consistent_lsn = l->desc.lsn_end - 1;
            tl->flushes++;
            tl->layers_written += file != NULL;
            kc_debug("timeline %s: flushed %s, disk consistent LSN %s", tl->idhex,
                     file != NULL ? file->name : "an empty layer",
                     kc_lsn_format(tl->disk_consistent_lsn, a));
        }
        ps_layer_unref(file);
        ps_layer_map_unref(map); /* l lived in map: it is freed here once flushed */
    }
    ps_tl_token_release(tl);
    pthread_mutex_unlock(&tl->mu);
    return rc;
}

int ps_timeline_checkpoint(struct ps_timeline *tl, struct kc_error *err)
{
    (void)ps_timeline_freeze(tl);
    return ps_timeline_flush(tl, err);
}

/* Check that the file layer l may join tl (caller holds mu). */
static int ps_tl_check_attach(struct ps_timeline *tl, const struct ps_layer *l,
                              struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    if (!kc_id_equal(&l->desc.tenant, &tl->tenant) || !kc_id_equal(&l->desc.timeline, &tl->id))
        return kc_error_set(err, KC_EINVAL, "layer %s belongs to another timeline than %s", l->name,
                            tl->idhex);
    if (l->desc.lsn_start <= tl->start_lsn || l->desc.lsn_end - 1 > tl->disk_consistent_lsn) {
        kc_error_set(err, KC_EINVAL, "layer %s lies outside the flushed history of timeline %s",
                     l->name, tl->idhex);
        kc_error_detail(err, "Layers may hold LSNs above %s and up to the disk consistent LSN %s.",
                        kc_lsn_format(tl->start_lsn, a), kc_lsn_format(tl->disk_consistent_lsn, b));
        return KC_EINVAL;
    }
    return ps_layer_map_check_add(tl->map, &l->desc, err);
}

int ps_timeline_attach_layer(struct ps_timeline *tl, const char *name, struct kc_error *err)
{
    struct ps_layer_reader *r;
    struct ps_layer *l;
    struct ps_layer_map *map, *next;
    struct ps_layer_desc d;
    char path[4096];
    kc_lsn dcl;
    int rc;

    if ((rc = ps_layer_name_parse(name, &d, err)) != 0)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", tl->dir, name);
    if ((rc = ps_layer_open(path, &r, err)) != 0)
        return rc;
    l = ps_layer_from_file(r);
    pthread_mutex_lock(&tl->mu);
    ps_tl_token_take(tl);
    rc = ps_tl_check_attach(tl, l, err);
    map = ps_layer_map_ref(tl->map);
    dcl = tl->disk_consistent_lsn;
    pthread_mutex_unlock(&tl->mu);
    if (rc == 0)
        rc = ps_tl_write_meta(tl, map, l, dcl, err);
    ps_layer_map_unref(map);
    pthread_mutex_lock(&tl->mu);
    if (rc == 0) {
        next = ps_layer_map_edit(tl->map, l, NULL);
        ps_layer_map_unref(tl->map);
        tl->map = next;
    }
    ps_tl_token_release(tl);
    pthread_mutex_unlock(&tl->mu);
    ps_layer_unref(l);
    return rc;
}

/* ---- reads ---- */

/* Search tl alone (open layer, then its map) at LSN <= *cur; see ps_layer_map_search. */
static int ps_tl_search_own(struct ps_timeline *tl, const struct ps_key *key, kc_lsn *cur,
                            struct ps_values *out, enum ps_search_result *result,
                            struct kc_error *err)
{
    struct ps_layer_map *map;
    kc_lsn start;
    int rc = 0;

    *result = PS_SEARCH_CONTINUE;
    pthread_mutex_lock(&tl->mu);
    start = ps_memlayer_start_lsn(tl->open);
    if (*cur > start) {
        rc = ps_memlayer_search_range(tl->open, key, *cur, start, out, result, err);
        *cur = start;
    }
    map = ps_layer_map_ref(tl->map);
    pthread_mutex_unlock(&tl->mu);
    if (rc == 0 && *result == PS_SEARCH_CONTINUE)
        rc = ps_layer_map_search(map, key, cur, out, result, err);
    ps_layer_map_unref(map);
    return rc;
}

int ps_timeline_get_values(struct ps_timeline *tl, const struct ps_key *key, kc_lsn lsn,
                           struct ps_values *out, struct kc_error *err)
{
    enum ps_search_result result = PS_SEARCH_CONTINUE;
    kc_lsn cur = lsn;
    int rc;

    ps_values_reset(out);
    for (struct ps_timeline *t = tl; t != NULL; t = t->ancestor) {
        if ((rc = ps_tl_search_own(t, key, &cur, out, &result, err)) != 0)
            return rc;
        if (result != PS_SEARCH_CONTINUE || t->ancestor == NULL || cur == 0)
            break;
        /* Below the branch point the parent's history applies, once it has the WAL. */
        if (cur > t->ancestor_lsn)
            cur = t->ancestor_lsn;
        if ((rc = ps_timeline_wait_lsn(t->ancestor, t->ancestor_lsn, t->opts.ancestor_wait_ms,
                                       err)) != 0)
            return rc;
    }
    ps_values_finish(out, result == PS_SEARCH_COMPLETE);
    return 0;
}
