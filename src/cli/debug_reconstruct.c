/* SPDX-License-Identifier: Apache-2.0 */
/*
 * debug_reconstruct.c -- `kelp debug-reconstruct`: the pageserver's storage
 * path end to end on WAL files: decode, ingest into a real timeline
 * (flushing layer files as it goes), reopen it as after a restart, then
 * rebuild every page of the relations ingest knows, with native redo and the
 * WAL-redo pool, into files that a test compares with the data directory
 * that wrote the WAL.
 *
 * Output: one file per relation fork, OUT/<spc>_<db>_<rel>_<fork>, holding
 * its blocks in order; and one line per fork on stdout.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/alloc.h"
#include "common/proc.h"
#include "common/hashmap.h"
#include "common/id.h"
#include "pageserver/ingest.h"
#include "pageserver/reconstruct.h"
#include "pageserver/timeline.h"
#include "pageserver/wal_decoder.h"
#include "pageserver/walredo.h"

struct debug_recon_settings {
    char *wal_dir;
    char *start;
    char *end;
    int64_t seg_size;
    char *timeline_dir;
    char *out;
    char *pg_bindir;
    char *scratch;
    char *os_user;
    int64_t checkpoint_distance;
};

static const struct kc_config_entry debug_recon_options[] = {
    {.name = "checkpoint-distance",
     .type = KC_CONFIG_SIZE,
     .offset = offsetof(struct debug_recon_settings, checkpoint_distance),
     .default_value = "1MB",
     .min = 8192,
     .max = (int64_t)1 << 40,
     .help = "flush the open layer to a layer file at this size"},
    {.name = "out",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_recon_settings, out),
     .default_value = NULL,
     .help = "directory for the rebuilt relation files (created)",
     .metavar = "dir",
     .flags = KC_CONFIG_REQUIRED},
    {.name = "timeline-dir",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_recon_settings, timeline_dir),
     .default_value = NULL,
     .help = "directory for the timeline (must not exist)",
     .metavar = "dir",
     .flags = KC_CONFIG_REQUIRED},
    CLI_WAL_FILE_OPTIONS(struct debug_recon_settings, KC_CONFIG_REQUIRED),
    CLI_WALREDO_POOL_OPTIONS(struct debug_recon_settings),
};

/* Ingest state: the timeline, and the relation forks ingest sized. */
struct recon {
    struct ps_timeline *tl;
    struct ps_ingest *ing;
    struct ps_ingest_ops inner; /* the timeline's own ops */
    struct kc_hmap *forks;      /* (spc, db, rel, fork) -> 1 */
};

/* Put through to the timeline, noting every relation-size key. */
static int recon_put(void *arg, const struct ps_key *key, kc_lsn lsn, const struct ps_value *v,
                     struct kc_error *err)
{
    struct recon *r = arg;
    uint8_t f1, f5;
    uint32_t f[4];

    ps_key_fields(key, &f1, &f[0], &f[1], &f[2], &f5, &f[3]);
    if (f1 == PS_KEYSPACE_REL && f[3] == PS_KEY_SIZE_BLKNO && f[2] != 0) {
        uint32_t rf[4] = {f[0], f[1], f[2], f5};
        kc_hmap_put(r->forks, rf, 1);
    }
    return r->inner.put(r->inner.arg, key, lsn, v, err);
}

static int recon_drop(void *arg, const struct ps_key *s, const struct ps_key *e, kc_lsn lsn,
                      struct kc_error *err)
{
    struct recon *r = arg;
    return r->inner.drop_range(r->inner.arg, s, e, lsn, err);
}

static int recon_get(void *arg, const struct ps_key *key, uint8_t *buf, size_t cap, size_t *len,
                     struct kc_error *err)
{
    struct recon *r = arg;
    return r->inner.get(r->inner.arg, key, buf, cap, len, err);
}

static int recon_record(void *arg, struct ps_wal_decoder *dec, const struct ps_wal_record *rec,
                        struct kc_error *err)
{
    struct recon *r = arg;
    int rc = ps_ingest_record(r->ing, dec, rec, err);

    if (rc == 0)
        rc = ps_ingest_flush(r->ing, rec->end_lsn, err);
    if (rc == 0)
        rc = ps_timeline_advance(r->tl, rec->end_lsn, err);
    return rc;
}

struct fork_list {
    uint32_t (*forks)[4];
    size_t n;
};

static bool collect_fork(void *arg, const void *key, uint64_t value)
{
    struct fork_list *l = arg;
    (void)value;
    memcpy(l->forks[l->n++], key, sizeof(l->forks[0]));
    return true;
}

/* Rebuild every block of one fork into OUT/<spc>_<db>_<rel>_<fork>. */
static int rebuild_fork(struct ps_timeline *tl, struct ps_walredo_pool *pool, const char *out,
                        const uint32_t rf[4], struct kc_error *err)
{
    struct ps_key sk = ps_key_rel_size(rf[0], rf[1], rf[2], (uint8_t)rf[3]);
    kc_lsn lsn = ps_timeline_last_record_lsn(tl);
    uint8_t sbuf[8], page[PS_CLOG_VALUE_SIZE];
    size_t slen = 0, plen;
    uint32_t nblocks, missing = 0;
    char path[4200];
    FILE *f;
    int rc = ps_timeline_get_latest(tl, &sk, sbuf, sizeof(sbuf), &slen, err);

    if (rc <= 0)
        return rc; /* dropped since: nothing to rebuild */
    nblocks = ps_size_decode(sbuf, slen);
    rc = 0;
    snprintf(path, sizeof(path), "%s/%u_%u_%u_%u", out, rf[0], rf[1], rf[2], rf[3]);
    f = fopen(path, "wb");
    if (f == NULL)
        return kc_error_set(err, KC_EIO, "could not create \"%s\": %s", path, strerror(errno));
    for (uint32_t b = 0; b < nblocks; b++) {
        struct ps_key k = ps_key_rel_block(rf[0], rf[1], rf[2], (uint8_t)rf[3], b);
        rc = ps_reconstruct_page(tl, pool, &k, lsn, page, sizeof(page), &plen, err);
        if (rc == KC_ECORRUPT && strstr(err->detail, "need an older version") != NULL) {
            /* The page's history starts before the WAL we have: not rebuildable. */
            memset(page, 0, PS_PAGE_SIZE);
            missing++;
            rc = 0;
        }
        if (rc != 0)
            break;
        if (fwrite(page, 1, PS_PAGE_SIZE, f) != PS_PAGE_SIZE) {
            rc = kc_error_set(err, KC_EIO, "could not write \"%s\"", path);
            break;
        }
    }
    if (fclose(f) != 0 && rc == 0)
        rc = kc_error_set(err, KC_EIO, "could not write \"%s\"", path);
    if (rc == 0)
        printf("fork %u/%u/%u fork=%u nblocks=%u unrebuildable=%u\n", rf[0], rf[1], rf[2], rf[3],
               nblocks, missing);
    return rc;
}

static int cmd_debug_reconstruct(const struct cli_command *cmd, void *settings, int argc,
                                 char **argv)
{
    struct debug_recon_settings *s = settings;
    struct ps_timeline_opts topts = {.checkpoint_distance = (size_t)s->checkpoint_distance};
    struct recon r = {.forks = kc_hmap_create(sizeof(uint32_t[4]))};
    struct ps_ingest_ops ops = {
        .arg = &r, .put = recon_put, .drop_range = recon_drop, .get = recon_get};
    struct cli_wal_source src = {.dir = s->wal_dir,
                                 .seg_size = (uint32_t)s->seg_size,
                                 .chunk = 256 * 1024,
                                 .corrupt_is_end = true};
    struct ps_walredo_pool *pool = NULL;
    struct ps_walredo_opts wopts;
    struct fork_list forks = {0};
    struct kc_id tenant, timeline;
    struct kc_error err;
    int rc = CLI_EXIT_FAIL;

    (void)argc, (void)argv;
    if (cli_parse_lsn_range(s->start, s->end, &src.start, &src.end, &err) != 0) {
        cli_report_error(cmd, &err);
        kc_hmap_destroy(r.forks);
        return CLI_EXIT_USAGE;
    }
    if (kc_id_generate(&tenant, &err) != 0 || kc_id_generate(&timeline, &err) != 0 ||
        ps_timeline_create(s->timeline_dir, &tenant, &timeline, src.start, 0, (uint32_t)s->seg_size,
                           &topts, &r.tl, &err) != 0)
        goto out;
    r.inner = ps_timeline_ingest_ops(r.tl);
    if (ps_ingest_create(&ops, &r.ing, &err) != 0 ||
        cli_decode_wal_files(&src, recon_record, &r, NULL, &err) < 0 ||
        ps_timeline_checkpoint(r.tl, &err) != 0)
        goto out;
    /* Reopen, as after a restart: everything must come from the layer files. */
    ps_timeline_close(r.tl);
    r.tl = NULL;
    if (ps_timeline_open(s->timeline_dir, NULL, &topts, &r.tl, &err) != 0)
        goto out;
    ps_walredo_opts_init(&wopts);
    if (mkdir(s->out, 0755) != 0 && errno != EEXIST) {
        kc_error_set(&err, KC_EIO, "could not create \"%s\": %s", s->out, strerror(errno));
        goto out;
    }
    if (ps_walredo_pool_create(s->pg_bindir, s->scratch, 2, s->os_user, &wopts, &pool, &err) != 0)
        goto out;
    forks.forks = kc_malloc((kc_hmap_count(r.forks) + 1) * sizeof(forks.forks[0]));
    kc_hmap_foreach(r.forks, collect_fork, &forks);
    for (size_t i = 0; i < forks.n; i++)
        if (rebuild_fork(r.tl, pool, s->out, forks.forks[i], &err) != 0)
            goto out;
    rc = CLI_EXIT_OK;
out:
    if (rc != CLI_EXIT_OK)
        cli_report_error(cmd, &err);
    free(forks.forks);
    ps_walredo_pool_destroy(pool);
    ps_ingest_destroy(r.ing);
    ps_timeline_close(r.tl);
    kc_hmap_destroy(r.forks);
    return rc;
}

const struct cli_command cli_cmd_debug_reconstruct = {
    .name = "debug-reconstruct",
    .group = "commands",
    .summary = "ingest WAL files into a timeline and rebuild pages (debugging)",
    .description = "Decodes WAL segment files, ingests them into a new timeline (flushing\n"
                   "layer files every --checkpoint-distance), reopens it, and rebuilds\n"
                   "every block of every relation fork ingest sized, with native redo\n"
                   "and the WAL-redo pool, into one file per fork under --out.",
    .options = debug_recon_options,
    .noptions = KC_ARRAY_LEN(debug_recon_options),
    .settings_size = sizeof(struct debug_recon_settings),
    .run = cmd_debug_reconstruct,
};
