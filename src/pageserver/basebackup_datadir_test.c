/* SPDX-License-Identifier: Apache-2.0 */
/*
 * basebackup_datadir_test.c -- unit tests for the data-directory state
 * reader on a small hand-made directory. A real cluster is
 * tests/test_basebackup.py's job.
 */
#include "pageserver/basebackup_datadir.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "unit.h"

#define SEG      (16u * 1024 * 1024)
#define CKPT_LSN 0x1492FF8ULL

static void put_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
        kt_fail(__FILE__, __LINE__, "cannot write %s", path);
}

static void put_blocks(const char *dir, const char *name, int n, uint8_t fill)
{
    uint8_t page[8192];
    char path[1024];
    FILE *f;

    memset(page, fill, sizeof(page));
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    for (int i = 0; f != NULL && i < n; i++)
        if (fwrite(page, 1, sizeof(page), f) != sizeof(page))
            kt_fail(__FILE__, __LINE__, "cannot write %s", path);
    if (f == NULL || fclose(f) != 0)
        kt_fail(__FILE__, __LINE__, "cannot write %s", path);
}

static void mk(const char *dir, const char *name)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (mkdir(path, 0700) != 0)
        kt_fail(__FILE__, __LINE__, "cannot create %s", path);
}

static void put_control(const char *dir, uint32_t state)
{
    struct ps_bb_control c;
    uint8_t img[PS_BB_CONTROL_SIZE];

    memset(&c, 0, sizeof(c));
    c.system_id = 42;
    c.state = state;
    c.checkpoint_lsn = CKPT_LSN;
    c.checkpoint.redo = CKPT_LSN;
    c.checkpoint.tli = c.checkpoint.prev_tli = 1;
    c.checkpoint.next_xid = 800;
    c.checkpoint.next_oid = 17000;
    c.checkpoint.next_multi = 1;
    c.seg_size = SEG;
    c.wal_level = 1;
    c.settings = (struct ps_bb_settings){100, 8, 10, 0, 64};
    ps_bb_control_build(&c, img);
    put_file(dir, "global/pg_control", img, sizeof(img));
}

static void put_relmap(const char *dir, const char *name)
{
    uint8_t img[512];
    int32_t magic = 0x592717, n = 1;
    uint32_t crc;

    memset(img, 0, sizeof(img));
    memcpy(img, &magic, 4);
    memcpy(img + 4, &n, 4);
    crc = kc_crc32c(0, img, 504);
    memcpy(img + 504, &crc, 4);
    put_file(dir, name, img, sizeof(img));
}

/* A minimal stopped cluster: one database, a few relations, CLOG, a prepared xact. */
static const char *make_datadir(void)
{
    static char dir[900];
    uint8_t tp[68];
    uint32_t magic = 0x57F94534, total = sizeof(tp), crc;

    snprintf(dir, sizeof(dir), "%s/pgdata", kt_tmpdir());
    mkdir(dir, 0700);
    for (const char *const *d = (const char *const[]){"global", "base", "base/1", "pg_xact",
                                                      "pg_multixact", "pg_multixact/offsets",
                                                      "pg_multixact/members", "pg_twophase", NULL};
         *d != NULL; d++)
        mk(dir, *d);
    put_control(dir, PS_BB_DB_SHUTDOWNED);
    put_relmap(dir, "global/pg_filenode.map");
    put_relmap(dir, "base/1/pg_filenode.map");
    put_file(dir, "base/1/PG_VERSION", "15\n", 3);
    put_blocks(dir, "global/1262", 1, 0x12);
    put_blocks(dir, "base/1/16384", 2, 0xA1);
    put_blocks(dir, "base/1/16384_vm", 1, 0xA2);
    put_blocks(dir, "base/1/16390_init", 0, 0);
    put_blocks(dir, "base/1/t3_16400", 1, 0xFF);      /* temporary: not ours */
    put_blocks(dir, "base/1/pg_internal.init", 1, 0); /* relcache cache: not ours */
    put_blocks(dir, "pg_xact/0000", 1, 0x55);
    put_blocks(dir, "pg_multixact/offsets/0000", 1, 0);
    memset(tp, 0x33, sizeof(tp));
    memcpy(tp, &magic, 4);
    memcpy(tp + 4, &total, 4);
    crc = kc_crc32c(0, tp, 64);
    memcpy(tp + 64, &crc, 4);
    put_file(dir, "pg_twophase/00000384", tp, sizeof(tp));
    return dir;
}

static int get(struct ps_bb_reader *r, struct ps_key k, struct kc_sbuf *out)
{
    struct kc_error err;

    kc_sbuf_reset(out);
    return r->get(r->arg, &k, out, &err);
}

static int count_key(void *arg, const struct ps_key *key, struct kc_error *err)
{
    (void)key, (void)err;
    (*(int *)arg)++;
    return 0;
}

KT_TEST(basebackup_datadir_presents_the_keys)
{
    const char *dir = make_datadir();
    struct ps_bb_datadir *d;
    struct ps_bb_datadir_info info;
    struct ps_bb_reader r;
    struct ps_bb_checkpoint c;
    struct kc_sbuf v = KC_SBUF_INIT;
    struct kc_error err;
    struct ps_key start, end;
    int n = 0;

    KT_ASSERT_EQ(ps_bb_datadir_open(dir, &d, &err), 0);
    ps_bb_datadir_info(d, &info);
    KT_ASSERT(info.has_control);
    KT_ASSERT_UEQ(info.checkpoint_lsn, CKPT_LSN);
    KT_ASSERT_UEQ(info.end_lsn, ps_bb_record_end(CKPT_LSN, SEG));
    KT_ASSERT_EQ(info.databases, 1);
    KT_ASSERT_EQ(info.rel_forks, 4); /* 1262, 16384, 16384_vm, 16390_init */
    ps_bb_datadir_reader(d, &r);

    KT_ASSERT_EQ(get(&r, ps_key_db_dir(), &v), 1);
    KT_ASSERT_UEQ(v.len, 1 + 4 + 8);
    KT_ASSERT_EQ(get(&r, ps_key_checkpoint(), &v), 1);
    KT_ASSERT_EQ(ps_bb_checkpoint_parse(v.data, v.len, &c, &err), 0);
    KT_ASSERT_UEQ(c.redo, info.end_lsn); /* ingest's convention */
    KT_ASSERT_EQ(c.next_oid, 17000);
    KT_ASSERT_EQ(get(&r, ps_key_relmap(1663, 1), &v), 1);
    KT_ASSERT_UEQ(v.len, 512);
    KT_ASSERT_EQ(get(&r, ps_key_relmap(1663, 2), &v), 0);
    KT_ASSERT_EQ(get(&r, ps_key_rel_size(1663, 1, 16384, 0), &v), 1);
    KT_ASSERT_EQ(kc_load_u32(v.data), 2);
    KT_ASSERT_EQ(get(&r, ps_key_rel_size(1663, 1, 16390, 3), &v), 1);
    KT_ASSERT_EQ(kc_load_u32(v.data), 0);
    KT_ASSERT_EQ(get(&r, ps_key_rel_size(1663, 1, 16400, 0), &v), 0);
    KT_ASSERT_EQ(get(&r, ps_key_rel_block(1663, 1, 16384, 2, 0), &v), 1);
    KT_ASSERT_EQ(v.data[0], 0xA2);
    KT_ASSERT_EQ(get(&r, ps_key_rel_block(1663, 1, 16384, 0, 2), &v), 0); /* past the end */
    KT_ASSERT_EQ(get(&r, ps_key_slru_block(PS_SLRU_CLOG, 0, 0), &v), 1);
    KT_ASSERT_EQ(v.data[100], 0x55);
    KT_ASSERT_EQ(get(&r, ps_key_twophase_file(900), &v), 1);
    KT_ASSERT_UEQ(v.len, 64); /* the CRC is stripped */

    /* Listing: the relation keys of database 1 (3 blocks + 3 size keys + the empty fork). */
    start = ps_key_rel_block(1663, 1, 1, 0, 0);
    end = ps_key_relmap(1663, 2);
    KT_ASSERT_EQ(r.list(r.arg, &start, &end, count_key, &n, &err), 0);
    KT_ASSERT_EQ(n, 6);
    kc_sbuf_fini(&v);
    ps_bb_datadir_close(d);
}

static int discard(void *arg, const void *data, size_t len, struct kc_error *err)
{
    (void)arg, (void)data, (void)len, (void)err;
    return 0;
}

KT_TEST(basebackup_datadir_fullbackup_runs)
{
    const char *dir = make_datadir();
    struct ps_bb_datadir *d;
    struct ps_bb_reader r;
    struct ps_bb_options o;
    struct ps_bb_result res;
    struct kc_error err;

    KT_ASSERT_EQ(ps_bb_datadir_open(dir, &d, &err), 0);
    ps_bb_datadir_reader(d, &r);
    memset(&o, 0, sizeof(o));
    o.lsn = CKPT_LSN;
    o.full = true;
    KT_ASSERT_EQ(ps_basebackup_write(&r, &o, discard, NULL, &res, &err), 0);
    KT_ASSERT_EQ(res.databases, 1);
    KT_ASSERT_EQ(res.rel_files, 4);
    KT_ASSERT_EQ(res.slru_files, 2);
    KT_ASSERT_EQ(res.twophase, 1);
    KT_ASSERT(res.oid_margin); /* the record replaces the checkpoint: not "right after" */
    ps_bb_datadir_close(d);
}

KT_TEST(basebackup_datadir_large_relations_span_segment_files)
{
    const char *dir = make_datadir();
    char path[1024];
    struct ps_bb_datadir *d;
    struct ps_bb_reader r;
    struct kc_sbuf v = KC_SBUF_INIT;
    struct kc_error err;
    int fd;

    /* A sparse 1 GiB first segment and one block in the second. */
    snprintf(path, sizeof(path), "%s/base/1/16500", dir);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    KT_ASSERT(fd >= 0);
    KT_ASSERT_EQ(ftruncate(fd, 131072LL * 8192), 0);
    close(fd);
    put_blocks(dir, "base/1/16500.1", 1, 0x77);
    KT_ASSERT_EQ(ps_bb_datadir_open(dir, &d, &err), 0);
    ps_bb_datadir_reader(d, &r);
    KT_ASSERT_EQ(get(&r, ps_key_rel_size(1663, 1, 16500, 0), &v), 1);
    KT_ASSERT_EQ(kc_load_u32(v.data), 131073);
    KT_ASSERT_EQ(get(&r, ps_key_rel_block(1663, 1, 16500, 0, 131072), &v), 1);
    KT_ASSERT_EQ(v.data[0], 0x77);
    kc_sbuf_fini(&v);
    ps_bb_datadir_close(d);
}

KT_TEST(basebackup_datadir_refuses_running_or_crashed_clusters)
{
    const char *dir = make_datadir();
    struct ps_bb_datadir *d = NULL;
    struct ps_bb_datadir_info info;
    struct ps_bb_reader r;
    struct ps_bb_options o;
    struct kc_error err;
    char path[1024];

    put_file(dir, "postmaster.pid", "123\n", 4);
    KT_ASSERT_EQ(ps_bb_datadir_open(dir, &d, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "a server may be running");
    snprintf(path, sizeof(path), "%s/postmaster.pid", dir);
    KT_ASSERT_EQ(unlink(path), 0);

    put_control(dir, PS_BB_DB_IN_PRODUCTION);
    KT_ASSERT_EQ(ps_bb_datadir_open(dir, &d, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "was not shut down cleanly");
    KT_ASSERT_CONTAINS(err.hint, "pg_ctl stop");

    /* No pg_control: the reader opens, the basebackup says what is missing. */
    snprintf(path, sizeof(path), "%s/global/pg_control", dir);
    KT_ASSERT_EQ(unlink(path), 0);
    KT_ASSERT_EQ(ps_bb_datadir_open(dir, &d, &err), 0);
    ps_bb_datadir_info(d, &info);
    KT_ASSERT(!info.has_control);
    ps_bb_datadir_reader(d, &r);
    memset(&o, 0, sizeof(o));
    o.lsn = CKPT_LSN;
    KT_ASSERT_EQ(ps_basebackup_write(&r, &o, discard, NULL, NULL, &err), KC_ENOTFOUND);
    KT_ASSERT_CONTAINS(err.message, "no control file image");
    ps_bb_datadir_close(d);
}

KT_TEST(basebackup_datadir_corrupt_twophase_file)
{
    const char *dir = make_datadir();
    struct ps_bb_datadir *d;
    struct ps_bb_reader r;
    struct ps_bb_options o;
    struct kc_error err;

    put_file(dir, "pg_twophase/00000385", "garbage-garbage", 15);
    KT_ASSERT_EQ(ps_bb_datadir_open(dir, &d, &err), 0);
    ps_bb_datadir_reader(d, &r);
    memset(&o, 0, sizeof(o));
    o.lsn = CKPT_LSN;
    KT_ASSERT_EQ(ps_basebackup_write(&r, &o, discard, NULL, NULL, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "fails its checksum");
    KT_ASSERT_CONTAINS(err.message, "00000385");
    ps_bb_datadir_close(d);
}
