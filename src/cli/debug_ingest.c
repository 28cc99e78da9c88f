/* SPDX-License-Identifier: Apache-2.0 */
/*
 * debug_ingest.c -- `kelp debug-ingest-wal`: decode WAL files, run them
 * through the pageserver's ingest into an in-memory store, and print what
 * the store holds: relation and SLRU sizes, databases, the checkpoint.
 *
 * A debugging tool, and the driver of ingest's integration test, which
 * compares the result with the data directory that wrote the WAL. The store
 * keeps only the latest value of each key (enough for sizes and
 * directories); reconstruction is not its job.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/hashmap.h"
#include "common/lsn.h"
#include "pageserver/ingest.h"
#include "pageserver/native_redo.h"
#include "pageserver/walreceiver.h"
#include "pageserver/wal_decoder.h"

struct debug_ingest_settings {
    char *clog_base;
    char *clog_out;
    char *source;
    int64_t timeout_ms;
    char *wal_dir;
    char *start;
    char *end;
    int64_t seg_size;
};

static const struct kc_config_entry debug_ingest_options[] = {
    CLI_WAL_FILE_OPTIONS(struct debug_ingest_settings, 0),
    {.name = "clog-base",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_ingest_settings, clog_base),
     .default_value = NULL,
     .help = "CLOG segment 0000 as of --start: apply ingested CLOG changes to it",
     .metavar = "file"},
    {.name = "clog-out",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_ingest_settings, clog_out),
     .default_value = NULL,
     .help = "write the resulting CLOG segment 0000 here (with --clog-base)",
     .metavar = "file"},
    {.name = "source",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_ingest_settings, source),
     .default_value = NULL,
     .help = "stream from this primary (libpq conninfo) with the WAL receiver instead of files; "
             "needs --end",
     .metavar = "conninfo"},
    {.name = "timeout",
     .type = KC_CONFIG_DURATION,
     .offset = offsetof(struct debug_ingest_settings, timeout_ms),
     .default_value = "60s",
     .min = 1,
     .max = 3600 * 1000,
     .help = "with --source: give up when --end is not reached in this time"},
};

/* The in-memory store: key -> index of its latest value in vals[]. */
struct mem_store {
    struct kc_hmap *index;
    struct mem_value {
        struct ps_key key;
        uint8_t *image; /* latest image, or NULL when the latest value is a record */
        uint32_t len;
        bool live;
    } * vals;
    size_t nvals, cap;
    uint8_t *clog;       /* CLOG segment 0 being rebuilt, or NULL */
    size_t clog_len[32]; /* bytes valid per page: PS_PAGE_SIZE or with the trailer */
    uint8_t clog_page[PS_CLOG_VALUE_SIZE];
};

/* Apply a CLOG segment-0 value to the segment being rebuilt (--clog-base). */
static int mem_clog(struct mem_store *m, const struct ps_key *key, const struct ps_value *v,
                    struct kc_error *err)
{
    uint8_t f1;
    uint32_t kind, segno, blk, f3, f6;

    ps_key_fields(key, &f1, &kind, &f3, &segno, NULL, &f6);
    if (m->clog == NULL || !ps_key_is_slru_block(key) || kind != PS_SLRU_CLOG || segno != 0)
        return 0;
    blk = f6;
    memcpy(m->clog_page, m->clog + (size_t)blk * PS_PAGE_SIZE, PS_PAGE_SIZE);
    if (v->kind == PS_VALUE_IMAGE) {
        memcpy(m->clog + (size_t)blk * PS_PAGE_SIZE, v->data,
               v->len < PS_PAGE_SIZE ? v->len : PS_PAGE_SIZE);
        return 0;
    }
    if (v->kind != PS_VALUE_NATIVE_RECORD)
        return kc_error_set(err, KC_EINVAL, "CLOG page %u got a PostgreSQL record", blk);
    if (ps_native_apply(m->clog_page, &m->clog_len[blk], v->data, v->len, err) != 0)
        return err->code;
    memcpy(m->clog + (size_t)blk * PS_PAGE_SIZE, m->clog_page, PS_PAGE_SIZE);
    return 0;
}

static int mem_put(void *arg, const struct ps_key *key, kc_lsn lsn, const struct ps_value *v,
                   struct kc_error *err)
{
    struct mem_store *m = arg;
    uint64_t i;

    (void)lsn;
    if (ps_value_check(v, err) != 0 || mem_clog(m, key, v, err) != 0)
        return err->code;
    if (!kc_hmap_get(m->index, key->b, &i)) {
        if (m->nvals == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 1024;
            m->vals = kc_realloc(m->vals, m->cap * sizeof(*m->vals));
        }
        i = m->nvals++;
        m->vals[i] = (struct mem_value){.key = *key};
        kc_hmap_put(m->index, key->b, i);
    }
    free(m->vals[i].image);
    m->vals[i].image = NULL;
    m->vals[i].live = true;
    if (v->kind == PS_VALUE_IMAGE) {
        m->vals[i].image = kc_malloc(v->len ? v->len : 1);
        if (v->len)
            memcpy(m->vals[i].image, v->data, v->len);
        m->vals[i].len = v->len;
    }
    return 0;
}

static int mem_drop(void *arg, const struct ps_key *start, const struct ps_key *end, kc_lsn lsn,
                    struct kc_error *err)
{
    struct mem_store *m = arg;

    (void)lsn, (void)err;
    for (size_t i = 0; i < m->nvals; i++) {
        struct mem_value *e = &m->vals[i];
        if (e->live && ps_key_cmp(&e->key, start) >= 0 && ps_key_cmp(&e->key, end) < 0) {
            e->live = false;
            free(e->image);
            e->image = NULL;
        }
    }
    return 0;
}

static int mem_get(void *arg, const struct ps_key *key, uint8_t *buf, size_t cap, size_t *len,
                   struct kc_error *err)
{
    struct mem_store *m = arg;
    uint64_t i;

    (void)err;
    if (!kc_hmap_get(m->index, key->b, &i) || !m->vals[i].live || m->vals[i].image == NULL)
        return 0;
    *len = m->vals[i].len;
    memcpy(buf, m->vals[i].image, m->vals[i].len < cap ? m->vals[i].len : cap);
    return 1;
}

/* Read a CLOG segment file (up to 32 pages; shorter files are zero-filled). */
static int load_clog(struct mem_store *m, const char *path, struct kc_error *err)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL)
        return kc_error_set(err, KC_EIO, "could not open \"%s\": %s", path, strerror(errno));
    m->clog = kc_calloc(32, PS_PAGE_SIZE);
    n = fread(m->clog, 1, 32 * PS_PAGE_SIZE, f);
    (void)n;
    fclose(f);
    for (int i = 0; i < 32; i++)
        m->clog_len[i] = PS_PAGE_SIZE;
    return 0;
}

static int write_file(const char *path, const uint8_t *data, size_t len, struct kc_error *err)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL || fwrite(data, 1, len, f) != len) {
        if (f != NULL)
            fclose(f);
        return kc_error_set(err, KC_EIO, "could not write \"%s\": %s", path, strerror(errno));
    }
    return fclose(f) == 0 ? 0 : kc_error_set(err, KC_EIO, "could not write \"%s\"", path);
}

static int key_order(const void *a, const void *b)
{
    const struct mem_value *x = a, *y = b;
    return ps_key_cmp(&x->key, &y->key);
}

/* Print sizes, databases and the checkpoint, in key order. */
static void mem_print(struct mem_store *m)
{
    unsigned slru_keys[3] = {0, 0, 0};

    qsort(m->vals, m->nvals, sizeof(*m->vals), key_order);
    for (size_t i = 0; i < m->nvals; i++) {
        uint8_t f1;
        uint32_t f2;
        ps_key_fields(&m->vals[i].key, &f1, &f2, NULL, NULL, NULL, NULL);
        if (m->vals[i].live && f1 == PS_KEYSPACE_SLRU && f2 < 3 &&
            ps_key_is_slru_block(&m->vals[i].key))
            slru_keys[f2]++;
    }
    for (unsigned k = 0; k < 3; k++)
        printf("slrupages kind=%u n=%u\n", k, slru_keys[k]);
    for (size_t i = 0; i < m->nvals; i++) {
        const struct mem_value *e = &m->vals[i];
        uint8_t f1, f5;
        uint32_t f2, f3, f4, f6;

        if (!e->live || e->image == NULL)
            continue;
        ps_key_fields(&e->key, &f1, &f2, &f3, &f4, &f5, &f6);
        if (f1 == PS_KEYSPACE_REL && f6 == PS_KEY_SIZE_BLKNO)
            printf("relsize %u/%u/%u fork=%u nblocks=%u\n", f2, f3, f4, f5,
                   ps_size_decode(e->image, e->len));
        else if (f1 == PS_KEYSPACE_SLRU && f6 == PS_KEY_SIZE_BLKNO)
            printf("slrusize kind=%u seg=%u nblocks=%u\n", f2, f4,
                   ps_size_decode(e->image, e->len));
        else if (ps_key_eq(&e->key, &(struct ps_key){0}) && e->len >= 5)
            for (uint32_t d = 0; d < kc_load_u32(e->image + 1) && 5 + 8 * (d + 1) <= e->len; d++)
                printf("database %u/%u\n", kc_load_u32(e->image + 5 + 8 * d),
                       kc_load_u32(e->image + 9 + 8 * d));
        else if (f1 == PS_KEYSPACE_REL && f4 == 0 && f6 == 0 && (f2 || f3))
            printf("relmap %u/%u bytes=%u\n", f2, f3, e->len);
        else if (f1 == PS_KEYSPACE_TWOPHASE && f6 != 0)
            printf("twophase xid=%u bytes=%u\n", f6, e->len);
        else if (f1 == PS_KEYSPACE_CONTROL && f6 == 1)
            printf("checkpoint bytes=%u\n", e->len);
    }
}

/* Stream-mode sink: the ingested LSN, published by the receiver's thread. */
static _Atomic kc_lsn stream_ingested;

static void stream_advance(void *arg, kc_lsn lsn)
{
    (void)arg;
    atomic_store(&stream_ingested, lsn);
}

static kc_lsn stream_durable(void *arg)
{
    (void)arg;
    return atomic_load(&stream_ingested);
}

/* Ingest from a live source with the WAL receiver until end is ingested. */
static int ingest_stream(const struct debug_ingest_settings *s, struct ps_ingest_ops *ops,
                         kc_lsn start, kc_lsn end, struct kc_error *err)
{
    struct ps_walreceiver_opts o = {.conninfo = s->source,
                                    .application_name = "kelp-debug-ingest",
                                    .seg_size = (uint32_t)s->seg_size,
                                    .status_interval_ms = 200};
    struct ps_walreceiver_sink sink = {
        .arg = NULL, .ops = *ops, .advance = stream_advance, .durable_lsn = stream_durable};
    struct ps_walreceiver_status st;
    struct ps_walreceiver *wr;
    struct timespec t0, now;
    int rc;

    atomic_store(&stream_ingested, start);
    rc = ps_walreceiver_start(&o, &sink, start, &wr, err);
    if (rc != 0)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        ps_walreceiver_get_status(wr, &st);
        if (st.ingested_lsn >= end || st.failed)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > s->timeout_ms)
            break;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    ps_walreceiver_stop(wr);
    if (st.ingested_lsn >= end)
        return 0;
    return kc_error_set(err, st.failed ? KC_ECORRUPT : KC_ETIMEDOUT,
                        "WAL receiver stopped at %X/%X before %X/%X%s%s",
                        (unsigned)(st.ingested_lsn >> 32), (unsigned)st.ingested_lsn,
                        (unsigned)(end >> 32), (unsigned)end, st.error[0] ? ": " : "", st.error);
}

static int ingest_one(void *arg, struct ps_wal_decoder *dec, const struct ps_wal_record *rec,
                      struct kc_error *err)
{
    return ps_ingest_record(arg, dec, rec, err);
}

static int cmd_debug_ingest_wal(const struct cli_command *cmd, void *settings, int argc,
                                char **argv)
{
    struct debug_ingest_settings *s = settings;
    struct mem_store store = {.index = kc_hmap_create(PS_KEY_LEN)};
    struct ps_ingest_ops ops = {
        .arg = &store, .put = mem_put, .drop_range = mem_drop, .get = mem_get};
    struct ps_ingest *ing = NULL;
    struct ps_ingest_stats st;
    struct kc_error err;
    kc_lsn start, end = 0, last_end = 0;
    int rc = CLI_EXIT_FAIL;

    (void)argc, (void)argv;
    if (cli_parse_lsn_range(s->start, s->end, &start, &end, &err) != 0) {
        cli_report_error(cmd, &err);
        kc_hmap_destroy(store.index);
        return CLI_EXIT_USAGE;
    }
    if (s->clog_base != NULL && load_clog(&store, s->clog_base, &err) != 0)
        goto out;
    if (s->source != NULL) {
        /* The receiver ingests through its own ingest; print what it stored. */
        if (end == 0) {
            kc_error_set(&err, KC_EINVAL, "--source needs --end");
            goto out;
        }
        if (ingest_stream(s, &ops, start, end, &err) != 0)
            goto out;
        goto print;
    }
    if (s->wal_dir == NULL) {
        kc_error_set(&err, KC_EINVAL, "give --wal-dir or --source");
        goto out;
    }
    {
        struct cli_wal_source src = {.dir = s->wal_dir,
                                     .seg_size = (uint32_t)s->seg_size,
                                     .start = start,
                                     .end = end,
                                     .chunk = 64 * 1024};
        if (ps_ingest_create(&ops, &ing, &err) != 0 ||
            cli_decode_wal_files(&src, ingest_one, ing, &last_end, &err) < 0)
            goto out;
    }
    if (last_end != 0 && ps_ingest_flush(ing, last_end, &err) != 0)
        goto out;
print:
    if (store.clog != NULL && s->clog_out != NULL &&
        write_file(s->clog_out, store.clog, 32 * PS_PAGE_SIZE, &err) != 0)
        goto out;
    mem_print(&store);
    if (ing == NULL) { /* streamed: the receiver's ingest kept the statistics */
        rc = CLI_EXIT_OK;
        goto out;
    }
    ps_ingest_get_stats(ing, &st);
    printf("stats records=%llu images=%llu pg_records=%llu native=%llu vm_routed=%llu "
           "size_changes=%llu drops=%llu\n",
           (unsigned long long)st.records, (unsigned long long)st.images,
           (unsigned long long)st.pg_records, (unsigned long long)st.native,
           (unsigned long long)st.vm_routed, (unsigned long long)st.size_changes,
           (unsigned long long)st.drops);
    rc = CLI_EXIT_OK;
out:
    if (rc != CLI_EXIT_OK)
        cli_report_error(cmd, &err);
    ps_ingest_destroy(ing);
    for (size_t i = 0; i < store.nvals; i++)
        free(store.vals[i].image);
    free(store.vals);
    free(store.clog);
    kc_hmap_destroy(store.index);
    return rc;
}

const struct cli_command cli_cmd_debug_ingest_wal = {
    .name = "debug-ingest-wal",
    .group = "commands",
    .summary = "ingest WAL files into an in-memory store and print it (debugging)",
    .description = "Decodes WAL segment files from --start and runs every record through\n"
                   "the pageserver's ingest into an in-memory store that keeps the latest\n"
                   "value of each key, then prints relation and SLRU sizes, databases,\n"
                   "relmapper files, prepared transactions and ingest statistics.",
    .options = debug_ingest_options,
    .noptions = KC_ARRAY_LEN(debug_ingest_options),
    .settings_size = sizeof(struct debug_ingest_settings),
    .run = cmd_debug_ingest_wal,
};
