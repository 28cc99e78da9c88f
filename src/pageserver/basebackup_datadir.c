/* SPDX-License-Identifier: Apache-2.0 */
/* basebackup_datadir.c -- a basebackup state reader over a stopped data directory. */
#include "pageserver/basebackup_datadir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "pageserver/ingest.h"

#define DD_SPC_GLOBAL  1664u   /* GLOBALTABLESPACE_OID */
#define DD_SPC_DEFAULT 1663u   /* DEFAULTTABLESPACE_OID */
#define DD_RELSEG_SIZE 131072u /* RELSEG_SIZE: blocks per 1 GiB segment file */
#define DD_MAX_FILE    (64u * 1024 * 1024)
#define DD_MAX_DIR     1024

static const char *const dd_fork_suffix[] = {"", "_fsm", "_vm", "_init"};

/* A relation fork or an SLRU segment: its size key and block count. */
struct dd_obj {
    struct ps_key size_key;
    uint32_t nblocks;
};

struct ps_bb_datadir {
    char *dir;
    bool has_control;                    /* pg_control was read */
    bool control_valid;                  /* ... and parsed */
    uint8_t control[PS_BB_CONTROL_SIZE]; /* its bytes */
    size_t control_len;
    struct ps_bb_control ctl; /* parsed, when control_valid */
    kc_lsn end_lsn;           /* end of the shutdown checkpoint record */
    uint32_t *dbs;            /* database oids under base/, sorted */
    size_t ndbs, dbs_cap;
    struct dd_obj *objs; /* sorted by size key */
    size_t nobjs, objs_cap;
    struct ps_key *keys; /* every key present, sorted */
    size_t nkeys, keys_cap;
    char path[4096];
};

/*
 * snprintf for paths: the data directory's path is at most DD_MAX_DIR bytes,
 * so every path built here fits its buffer.
 */
static void dd_fmt(char *out, size_t cap, const char *fmt, ...) KC_PRINTF(3, 4);
static void dd_fmt(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, cap, fmt, ap);
    va_end(ap);
}

static int dd_key_cmp(const void *a, const void *b)
{
    return ps_key_cmp(a, b);
}

static int dd_u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void dd_add_key(struct ps_bb_datadir *d, struct ps_key k)
{
    if (d->nkeys == d->keys_cap) {
        d->keys_cap = d->keys_cap ? 2 * d->keys_cap : 256;
        d->keys = kc_realloc(d->keys, d->keys_cap * sizeof(*d->keys));
    }
    d->keys[d->nkeys++] = k;
}

/* An object of nblocks blocks: its size key, its block keys, its entry. */
static void dd_add_obj(struct ps_bb_datadir *d, struct ps_key size_key, uint32_t nblocks)
{
    uint8_t f1, f5;
    uint32_t f2, f3, f4;

    if (d->nobjs == d->objs_cap) {
        d->objs_cap = d->objs_cap ? 2 * d->objs_cap : 64;
        d->objs = kc_realloc(d->objs, d->objs_cap * sizeof(*d->objs));
    }
    d->objs[d->nobjs].size_key = size_key;
    d->objs[d->nobjs++].nblocks = nblocks;
    ps_key_fields(&size_key, &f1, &f2, &f3, &f4, &f5, NULL);
    for (uint32_t b = 0; b < nblocks; b++)
        dd_add_key(d, ps_key_make(f1, f2, f3, f4, f5, b));
    dd_add_key(d, size_key);
}

static const struct dd_obj *dd_find_obj(const struct ps_bb_datadir *d,
                                        const struct ps_key *size_key)
{
    size_t lo = 0, hi = d->nobjs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = ps_key_cmp(&d->objs[mid].size_key, size_key);
        if (c == 0)
            return &d->objs[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int dd_errno(struct kc_error *err, const char *what, const char *path)
{
    int e = errno;
    kc_error_set(err, KC_EIO, "could not %s \"%s\": %s", what, path, strerror(e));
    return KC_EIO;
}

/* Size of path in bytes, or -1 when it does not exist (errno ENOENT) or fails. */
static off_t dd_file_size(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return -1;
    return S_ISREG(st.st_mode) ? st.st_size : -1;
}

/* Read a whole small file into out: 1, 0 when it does not exist, < 0. */
static int dd_read_file(const char *path, struct kc_sbuf *out, struct kc_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t buf[8192];
    ssize_t n;

    if (fd < 0)
        return errno == ENOENT ? 0 : dd_errno(err, "open", path);
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (out->len + (size_t)n > DD_MAX_FILE) {
            close(fd);
            return kc_error_set(err, KC_ETOOBIG, "file \"%s\" is too large", path);
        }
        kc_sbuf_append(out, buf, (size_t)n);
    }
    if (n < 0) {
        int rc = dd_errno(err, "read", path);
        close(fd);
        return rc;
    }
    close(fd);
    return 1;
}

/* Read 8192 bytes at block blkno of the file path: 1, or 0 past its end. */
static int dd_read_block(const char *path, uint32_t blkno, uint8_t *page, struct kc_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return errno == ENOENT ? 0 : dd_errno(err, "open", path);
    n = pread(fd, page, PS_BB_PAGE_SIZE, (off_t)blkno * PS_BB_PAGE_SIZE);
    if (n < 0) {
        int rc = dd_errno(err, "read", path);
        close(fd);
        return rc;
    }
    close(fd);
    return n == PS_BB_PAGE_SIZE ? 1 : 0;
}

/* ---- scanning ------------------------------------------------------------------- */

/* "123", "123_fsm", ... -> relnode and fork; false for anything else (segments too). */
static bool dd_parse_relname(const char *name, uint32_t *rel, uint8_t *fork)
{
    char *end;
    unsigned long v;

    if (name[0] < '1' || name[0] > '9')
        return false;
    errno = 0;
    v = strtoul(name, &end, 10);
    if (errno != 0 || v == 0 || v > UINT32_MAX)
        return false;
    for (uint8_t f = 0; f < KC_ARRAY_LEN(dd_fork_suffix); f++) {
        if (strcmp(end, dd_fork_suffix[f]) == 0) {
            *rel = (uint32_t)v;
            *fork = f;
            return true;
        }
    }
    return false;
}

/* The file of segment seg of a fork whose first file is base. */
static void dd_seg_path(char *out, size_t cap, const char *base, uint32_t seg)
{
    if (seg == 0)
        dd_fmt(out, cap, "%s", base);
    else
        dd_fmt(out, cap, "%s.%u", base, seg);
}

/* Relation forks in dir (base/<db> or global): blocks over all segment files. */
static int dd_scan_rels(struct ps_bb_datadir *d, const char *dir, uint32_t spc, uint32_t db,
                        struct kc_error *err)
{
    DIR *dh = opendir(dir);
    struct dirent *de;
    char base[4096], seg[4160];

    if (dh == NULL)
        return errno == ENOENT ? 0 : dd_errno(err, "open directory", dir);
    while ((de = readdir(dh)) != NULL) {
        uint32_t rel, nblocks = 0;
        uint8_t fork;
        off_t size;
        if (!dd_parse_relname(de->d_name, &rel, &fork))
            continue;
        dd_fmt(base, sizeof(base), "%s/%s", dir, de->d_name);
        for (uint32_t s = 0;; s++) {
            dd_seg_path(seg, sizeof(seg), base, s);
            size = dd_file_size(seg);
            if (size < 0)
                break;
            nblocks += (uint32_t)(size / PS_BB_PAGE_SIZE);
            if ((uint64_t)size < (uint64_t)DD_RELSEG_SIZE * PS_BB_PAGE_SIZE)
                break;
        }
        dd_add_obj(d, ps_key_rel_size(spc, db, rel, fork), nblocks);
    }
    closedir(dh);
    return 0;
}

/* SLRU segment files (4 to 6 hex digits) in dir. */
static int dd_scan_slru(struct ps_bb_datadir *d, const char *dir, enum ps_slru_kind kind,
                        struct kc_error *err)
{
    DIR *dh;
    struct dirent *de;

    dd_fmt(d->path, sizeof(d->path), "%s/%s", d->dir, dir);
    dh = opendir(d->path);
    if (dh == NULL)
        return errno == ENOENT ? 0 : dd_errno(err, "open directory", d->path);
    dd_add_key(d, ps_key_slru_dir(kind));
    while ((de = readdir(dh)) != NULL) {
        size_t len = strlen(de->d_name);
        char file[4400];
        off_t size;
        if (len < 4 || len > 6 || strspn(de->d_name, "0123456789ABCDEF") != len)
            continue;
        dd_fmt(file, sizeof(file), "%s/%s", d->path, de->d_name);
        size = dd_file_size(file);
        if (size >= 0)
            dd_add_obj(d, ps_key_slru_size(kind, (uint32_t)strtoul(de->d_name, NULL, 16)),
                       (uint32_t)(size / PS_BB_PAGE_SIZE));
    }
    closedir(dh);
    return 0;
}

/* base/<db> directories and their relations, then global's relations. */
static int dd_scan_databases(struct ps_bb_datadir *d, struct kc_error *err)
{
    DIR *dh;
    struct dirent *de;
    char dir[4400];
    int rc = 0;

    dd_fmt(d->path, sizeof(d->path), "%s/base", d->dir);
    dh = opendir(d->path);
    if (dh == NULL)
        return dd_errno(err, "open directory", d->path);
    while ((de = readdir(dh)) != NULL) {
        char *end;
        unsigned long v = strtoul(de->d_name, &end, 10);
        if (de->d_name[0] < '1' || de->d_name[0] > '9' || *end != '\0' || v > UINT32_MAX)
            continue;
        if (d->ndbs == d->dbs_cap) {
            d->dbs_cap = d->dbs_cap ? 2 * d->dbs_cap : 8;
            d->dbs = kc_realloc(d->dbs, d->dbs_cap * sizeof(*d->dbs));
        }
        d->dbs[d->ndbs++] = (uint32_t)v;
    }
    closedir(dh);
    qsort(d->dbs, d->ndbs, sizeof(*d->dbs), dd_u32_cmp);
    dd_add_key(d, ps_key_db_dir());
    for (size_t i = 0; rc == 0 && i < d->ndbs; i++) {
        dd_fmt(dir, sizeof(dir), "%s/base/%u", d->dir, d->dbs[i]);
        dd_fmt(d->path, sizeof(d->path), "%s/pg_filenode.map", dir);
        if (dd_file_size(d->path) >= 0)
            dd_add_key(d, ps_key_relmap(DD_SPC_DEFAULT, d->dbs[i]));
        rc = dd_scan_rels(d, dir, DD_SPC_DEFAULT, d->dbs[i], err);
    }
    dd_fmt(dir, sizeof(dir), "%s/global", d->dir);
    dd_fmt(d->path, sizeof(d->path), "%s/pg_filenode.map", dir);
    if (rc == 0 && dd_file_size(d->path) >= 0)
        dd_add_key(d, ps_key_relmap(DD_SPC_GLOBAL, 0));
    if (rc == 0)
        rc = dd_scan_rels(d, dir, DD_SPC_GLOBAL, 0, err);
    return rc;
}

static int dd_scan_twophase(struct ps_bb_datadir *d, struct kc_error *err)
{
    DIR *dh;
    struct dirent *de;

    dd_fmt(d->path, sizeof(d->path), "%s/pg_twophase", d->dir);
    dh = opendir(d->path);
    if (dh == NULL)
        return errno == ENOENT ? 0 : dd_errno(err, "open directory", d->path);
    dd_add_key(d, ps_key_twophase_dir());
    while ((de = readdir(dh)) != NULL) {
        uint32_t xid;
        if (strlen(de->d_name) != 8 || strspn(de->d_name, "0123456789ABCDEF") != 8)
            continue;
        xid = (uint32_t)strtoul(de->d_name, NULL, 16);
        if (xid != 0)
            dd_add_key(d, ps_key_twophase_file(xid));
    }
    closedir(dh);
    return 0;
}

/* pg_control: read it; when valid it must say "shut down". */
static int dd_load_control(struct ps_bb_datadir *d, struct kc_error *err)
{
    struct kc_sbuf buf = KC_SBUF_INIT;
    int rc;

    dd_fmt(d->path, sizeof(d->path), "%s/global/pg_control", d->dir);
    rc = dd_read_file(d->path, &buf, err);
    if (rc == 1 && buf.len <= sizeof(d->control)) {
        d->has_control = true;
        d->control_len = buf.len;
        memcpy(d->control, buf.data, buf.len);
        d->control_valid = ps_bb_control_parse(d->control, d->control_len, &d->ctl, NULL) == 0;
    }
    kc_sbuf_fini(&buf);
    if (rc < 0)
        return rc;
    if (d->control_valid && d->ctl.state != PS_BB_DB_SHUTDOWNED) {
        kc_error_set(err, KC_EINVAL, "data directory \"%s\" was not shut down cleanly", d->dir);
        kc_error_detail(err, "pg_control says the cluster is in state %u, not shut down (%u).",
                        d->ctl.state, PS_BB_DB_SHUTDOWNED);
        kc_error_hint(err, "Start the server and stop it with \"pg_ctl stop -m fast\".");
        return KC_EINVAL;
    }
    if (d->control_valid)
        d->end_lsn = ps_bb_record_end(d->ctl.checkpoint_lsn, d->ctl.seg_size);
    return 0;
}

int ps_bb_datadir_open(const char *dir, struct ps_bb_datadir **out, struct kc_error *err)
{
    struct ps_bb_datadir *d;
    int rc;

    if (strlen(dir) > DD_MAX_DIR)
        return kc_error_set(err, KC_EINVAL, "data directory path is longer than %d bytes",
                            DD_MAX_DIR);
    d = kc_calloc(1, sizeof(*d));
    d->dir = kc_strdup(dir);
    dd_fmt(d->path, sizeof(d->path), "%s/postmaster.pid", dir);
    if (dd_file_size(d->path) >= 0) {
        kc_error_set(err, KC_EINVAL, "a server may be running in data directory \"%s\"", dir);
        kc_error_detail(err, "The file \"%s\" exists.", d->path);
        kc_error_hint(err, "Stop the server with \"pg_ctl stop -m fast\" first.");
        ps_bb_datadir_close(d);
        return KC_EINVAL;
    }
    rc = dd_load_control(d, err);
    if (rc == 0)
        rc = dd_scan_databases(d, err);
    if (rc == 0)
        rc = dd_scan_slru(d, "pg_xact", PS_SLRU_CLOG, err);
    if (rc == 0)
        rc = dd_scan_slru(d, "pg_multixact/members", PS_SLRU_MULTIXACT_MEMBERS, err);
    if (rc == 0)
        rc = dd_scan_slru(d, "pg_multixact/offsets", PS_SLRU_MULTIXACT_OFFSETS, err);
    if (rc == 0)
        rc = dd_scan_twophase(d, err);
    if (rc != 0) {
        ps_bb_datadir_close(d);
        return rc;
    }
    if (d->has_control)
        dd_add_key(d, ps_key_control_file());
    if (d->control_valid)
        dd_add_key(d, ps_key_checkpoint());
    qsort(d->keys, d->nkeys, sizeof(*d->keys), dd_key_cmp);
    qsort(d->objs, d->nobjs, sizeof(*d->objs), dd_key_cmp);
    *out = d;
    return 0;
}

void ps_bb_datadir_close(struct ps_bb_datadir *d)
{
    if (d == NULL)
        return;
    free(d->dir);
    free(d->dbs);
    free(d->objs);
    free(d->keys);
    free(d);
}

void ps_bb_datadir_info(const struct ps_bb_datadir *d, struct ps_bb_datadir_info *out)
{
    memset(out, 0, sizeof(*out));
    out->has_control = d->control_valid;
    out->checkpoint_lsn = d->control_valid ? d->ctl.checkpoint_lsn : 0;
    out->end_lsn = d->end_lsn;
    out->seg_size = d->control_valid ? d->ctl.seg_size : 0;
    out->system_id = d->control_valid ? d->ctl.system_id : 0;
    out->databases = (uint32_t)d->ndbs;
    for (size_t i = 0; i < d->nobjs; i++)
        out->rel_forks += d->objs[i].size_key.b[0] == PS_KEYSPACE_REL;
}

/* ---- the reader ------------------------------------------------------------------- */

/* The file holding a relation block or SLRU page, and the block within it. */
static bool dd_block_path(struct ps_bb_datadir *d, const struct ps_key *k, uint32_t *blk_in_file)
{
    uint8_t f1, f5;
    uint32_t f2, f3, f4, f6;
    static const char *const slru_dirs[] = {"pg_xact", "pg_multixact/members",
                                            "pg_multixact/offsets"};

    ps_key_fields(k, &f1, &f2, &f3, &f4, &f5, &f6);
    if (f1 == PS_KEYSPACE_REL && f4 != 0 && f5 < KC_ARRAY_LEN(dd_fork_suffix)) {
        char base[4096];
        if (f2 == DD_SPC_GLOBAL)
            dd_fmt(base, sizeof(base), "%s/global/%u%s", d->dir, f4, dd_fork_suffix[f5]);
        else
            dd_fmt(base, sizeof(base), "%s/base/%u/%u%s", d->dir, f3, f4, dd_fork_suffix[f5]);
        dd_seg_path(d->path, sizeof(d->path), base, f6 / DD_RELSEG_SIZE);
        *blk_in_file = f6 % DD_RELSEG_SIZE;
        return true;
    }
    if (f1 == PS_KEYSPACE_SLRU && f2 < 3 && f3 == 1) {
        dd_fmt(d->path, sizeof(d->path), "%s/%s/%04X", d->dir, slru_dirs[f2], f4);
        *blk_in_file = f6;
        return true;
    }
    return false;
}

static int dd_page(void *arg, const struct ps_key *key, uint8_t *page, struct kc_error *err)
{
    struct ps_bb_datadir *d = arg;
    struct ps_key size_key = *key;
    const struct dd_obj *o;
    uint32_t blk;

    kc_store_u32(size_key.b + 14, PS_KEY_SIZE_BLKNO);
    o = dd_find_obj(d, &size_key);
    if (o == NULL || kc_load_u32(key->b + 14) >= o->nblocks || !dd_block_path(d, key, &blk))
        return 0;
    return dd_read_block(d->path, blk, page, err);
}

static void dd_encode_dbdir(const struct ps_bb_datadir *d, struct kc_sbuf *out)
{
    kc_sbuf_put_u8(out, PS_DBDIR_VERSION);
    kc_sbuf_put_u32(out, (uint32_t)d->ndbs);
    for (size_t i = 0; i < d->ndbs; i++) {
        kc_sbuf_put_u32(out, DD_SPC_DEFAULT);
        kc_sbuf_put_u32(out, d->dbs[i]);
    }
}

/* A twophase file without its trailing CRC, which is checked. */
static int dd_get_twophase(struct ps_bb_datadir *d, uint32_t xid, struct kc_sbuf *out,
                           struct kc_error *err)
{
    uint32_t crc;
    int rc;

    dd_fmt(d->path, sizeof(d->path), "%s/pg_twophase/%08X", d->dir, xid);
    rc = dd_read_file(d->path, out, err);
    if (rc <= 0)
        return rc;
    if (out->len < 4)
        return kc_error_set(err, KC_ECORRUPT, "two-phase state file \"%s\" is truncated", d->path);
    memcpy(&crc, out->data + out->len - 4, 4);
    out->len -= 4;
    if (kc_crc32c(0, out->data, out->len) != crc)
        return kc_error_set(err, KC_ECORRUPT, "two-phase state file \"%s\" fails its checksum",
                            d->path);
    return 1;
}

static int dd_get(void *arg, const struct ps_key *key, struct kc_sbuf *out, struct kc_error *err)
{
    struct ps_bb_datadir *d = arg;
    struct ps_key dbdir = ps_key_db_dir(), control = ps_key_control_file(),
                  ckpt = ps_key_checkpoint();
    uint8_t f1, f5;
    uint32_t f2, f3, f4, f6;

    ps_key_fields(key, &f1, &f2, &f3, &f4, &f5, &f6);
    if (ps_key_eq(key, &dbdir)) {
        dd_encode_dbdir(d, out);
        return 1;
    }
    if (ps_key_eq(key, &control)) {
        if (!d->has_control)
            return 0;
        kc_sbuf_append(out, d->control, d->control_len);
        return 1;
    }
    if (ps_key_eq(key, &ckpt)) {
        struct ps_bb_checkpoint c;
        uint8_t img[PS_BB_CHECKPOINT_LEN];
        if (!d->control_valid)
            return 0;
        c = d->ctl.checkpoint;
        c.redo = d->end_lsn; /* ingest's convention for a shutdown checkpoint */
        ps_bb_checkpoint_encode(&c, img);
        kc_sbuf_append(out, img, sizeof(img));
        return 1;
    }
    if (f1 == PS_KEYSPACE_REL && f4 == 0 && f5 == 0 && f6 == 0) {
        if (f2 == DD_SPC_GLOBAL && f3 == 0)
            dd_fmt(d->path, sizeof(d->path), "%s/global/pg_filenode.map", d->dir);
        else if (f2 == DD_SPC_DEFAULT)
            dd_fmt(d->path, sizeof(d->path), "%s/base/%u/pg_filenode.map", d->dir, f3);
        else
            return 0;
        return dd_read_file(d->path, out, err);
    }
    if (f1 == PS_KEYSPACE_TWOPHASE && f6 != 0)
        return dd_get_twophase(d, f6, out, err);
    if ((f1 == PS_KEYSPACE_REL || f1 == PS_KEYSPACE_SLRU) && f6 == PS_KEY_SIZE_BLKNO) {
        const struct dd_obj *o = dd_find_obj(d, key);
        if (o == NULL)
            return 0;
        kc_sbuf_put_u32(out, o->nblocks);
        return 1;
    }
    if (f1 == PS_KEYSPACE_REL || f1 == PS_KEYSPACE_SLRU) {
        uint8_t page[PS_BB_PAGE_SIZE];
        int rc = dd_page(d, key, page, err);
        if (rc == 1)
            kc_sbuf_append(out, page, sizeof(page));
        return rc;
    }
    return 0;
}

static int dd_list(void *arg, const struct ps_key *start, const struct ps_key *end, ps_bb_key_fn fn,
                   void *fnarg, struct kc_error *err)
{
    struct ps_bb_datadir *d = arg;
    size_t lo = 0, hi = d->nkeys;
    int rc = 0;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ps_key_cmp(&d->keys[mid], start) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; rc == 0 && i < d->nkeys && ps_key_cmp(&d->keys[i], end) < 0; i++)
        rc = fn(fnarg, &d->keys[i], err);
    return rc;
}

void ps_bb_datadir_reader(struct ps_bb_datadir *d, struct ps_bb_reader *out)
{
    memset(out, 0, sizeof(*out));
    out->arg = d;
    out->get = dd_get;
    out->list = dd_list;
    out->page = dd_page;
}
