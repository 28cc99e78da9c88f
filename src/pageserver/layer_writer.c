/* SPDX-License-Identifier: Apache-2.0 */
/* layer_writer.c -- streaming writer of delta and image layer files. See layer_writer.h. */
#include "pageserver/layer_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/alloc.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "common/random.h"

/* Write buffers (reserved at create, so the writer's memory never grows with the layer;
 * one less than a power of two, as kc_sbuf keeps room for a terminator). */
#define PS_FILE_BUF_SIZE  (256u * 1024 - 1) /* the layer file */
#define PS_INDEX_BUF_SIZE (64u * 1024 - 1)  /* spilled index blocks */
#define PS_DIR_BUF_SIZE   (16u * 1024 - 1)  /* spilled directory entries */
#define PS_COPY_CHUNK     (64u * 1024)      /* spill files are copied in chunks of this size */
#define PS_COMPRESS_MIN   64                /* shorter values are stored plainly */
#define PS_DEFAULT_LEVEL  1                 /* zstd level */
#define PS_DIRENT_PER_CPY 1024              /* directory entries patched per copy chunk */

/* A buffered sequential output to one file descriptor. */
struct ps_out {
    int fd;             /* owned; -1 when closed */
    uint64_t written;   /* bytes handed to fd so far */
    struct kc_sbuf buf; /* bytes not yet written */
    size_t limit;       /* buf never holds more */
};

/* A writer (see layer_writer.h); used by one thread at a time, so nothing guards it. */
struct ps_layer_writer {
    struct ps_layer_desc desc;        /* what the layer covers */
    struct ps_layer_writer_opts opts; /* with defaults filled in */
    char *dir;                        /* directory of the layer */
    char *path;                       /* final path */
    char *temp_path;                  /* temporary path while writing */
    struct ps_out file;               /* the layer file */
    struct ps_out index;              /* spill: index blocks, in order */
    struct ps_out dirents;            /* spill: directory entries (index_off relative) */
    uint8_t *block;                   /* raw entries of the open index block */
    uint32_t block_n;                 /* entries in it */
    struct ps_layer_block cur;        /* directory entry of the open block */
    uint64_t index_len;               /* bytes of index blocks spilled */
    uint32_t nblocks;                 /* index blocks spilled */
    uint64_t nvalues;                 /* values added */
    uint32_t max_len;                 /* largest value added */
    struct ps_drop *drops;            /* drops added, in LSN order */
    size_t ndrops, drops_cap;         /* count and room at drops */
    bool have_last;                   /* last_key/last_lsn are set */
    struct ps_key last_key;           /* (key, lsn) of the last value added */
    kc_lsn last_lsn;
    ZSTD_CCtx *cctx; /* compression context, created at first use */
    uint8_t *zbuf;   /* compression output */
    size_t zcap;     /* bytes allocated at zbuf */
    int broken;      /* 0, or the error that made the writer unusable */
};

static int ps_write_all(int fd, const void *p, size_t n, const char *path, struct kc_error *err)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return kc_error_set(err, KC_EIO, "could not write layer file \"%s\": %s", path,
                                w < 0 ? strerror(errno) : "short write");
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int ps_out_flush(struct ps_out *o, const char *path, struct kc_error *err)
{
    int rc;

    if (o->buf.len == 0)
        return 0;
    rc = ps_write_all(o->fd, o->buf.data, o->buf.len, path, err);
    if (rc == 0) {
        o->written += o->buf.len;
        kc_sbuf_reset(&o->buf);
    }
    return rc;
}

/* Append n bytes; large runs bypass the buffer. */
static int ps_out_write(struct ps_out *o, const void *p, size_t n, const char *path,
                        struct kc_error *err)
{
    int rc;

    if (o->buf.len + n <= o->limit) {
        kc_sbuf_append(&o->buf, p, n);
        return 0;
    }
    if ((rc = ps_out_flush(o, path, err)) != 0)
        return rc;
    if (n < o->limit) {
        kc_sbuf_append(&o->buf, p, n);
        return 0;
    }
    rc = ps_write_all(o->fd, p, n, path, err);
    if (rc == 0)
        o->written += n;
    return rc;
}

static void ps_out_init(struct ps_out *o, size_t limit)
{
    o->fd = -1;
    o->limit = limit;
    kc_sbuf_reserve(&o->buf, limit);
}

static void ps_out_close(struct ps_out *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    kc_sbuf_fini(&o->buf);
}

/* An unnamed read-write file in dir for spilled data; -1 with err filled on failure. */
static int ps_spill_open(const char *dir, struct kc_error *err)
{
    char path[4096];
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd >= 0)
        return fd;
    /* Filesystems without O_TMPFILE: a named file removed at once. */
    snprintf(path, sizeof(path), "%s/.layer-spill-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        kc_error_set(err, KC_EIO, "could not create a temporary file in \"%s\": %s", dir,
                     strerror(errno));
        return -1;
    }
    unlink(path);
    return fd;
}

static int ps_opts_fill(struct ps_layer_writer_opts *o, const struct ps_layer_writer_opts *in,
                        struct kc_error *err)
{
    if (in != NULL)
        *o = *in;
    else
        memset(o, 0, sizeof(*o));
    if (o->block_entries == 0)
        o->block_entries = PS_LAYER_BLOCK_ENTRIES_DEFAULT;
    if (o->zstd_level == 0)
        o->zstd_level = PS_DEFAULT_LEVEL;
    if (o->block_entries > PS_LAYER_BLOCK_MAX_ENTRIES) {
        kc_error_set(err, KC_EINVAL, "invalid layer writer block size %u", o->block_entries);
        kc_error_detail(err, "An index block holds 1 to %d entries.", PS_LAYER_BLOCK_MAX_ENTRIES);
        return KC_EINVAL;
    }
    if (o->zstd_level < ZSTD_minCLevel() || o->zstd_level > ZSTD_maxCLevel())
        return kc_error_set(err, KC_EINVAL, "invalid zstd level %d", o->zstd_level);
    if (o->version == 0)
        o->version = PS_LAYER_VERSION;
    if (o->version < PS_LAYER_VERSION_MIN || o->version > PS_LAYER_VERSION) {
        kc_error_set(err, KC_EINVAL, "invalid layer format version %u", o->version);
        kc_error_detail(err, "This build writes versions %d to %d.", PS_LAYER_VERSION_MIN,
                        PS_LAYER_VERSION);
        return KC_EINVAL;
    }
    return 0;
}

/* Open the temporary file under a fresh random name and write the header. */
static int ps_writer_open_temp(struct ps_layer_writer *w, const char *name, struct kc_error *err)
{
    uint8_t hdr[PS_LAYER_HEADER_SIZE];

    for (int attempt = 0; attempt < 8; attempt++) {
        char rnd[9], tmp[4096];
        int rc = kc_random_hex(rnd, 4, err);
        if (rc != 0)
            return rc;
        snprintf(tmp, sizeof(tmp), "%s/%s.%s%s", w->dir, name, rnd, PS_LAYER_TEMP_SUFFIX);
        w->file.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (w->file.fd >= 0) {
            w->temp_path = kc_strdup(tmp);
            break;
        }
        if (errno != EEXIST)
            return kc_error_set(err, KC_EIO, "could not create layer file \"%s\": %s", tmp,
                                strerror(errno));
    }
    if (w->file.fd < 0)
        return kc_error_set(err, KC_EIO, "could not create a temporary layer file in \"%s\"",
                            w->dir);
    ps_layer_header_encode(&w->desc, w->opts.version, hdr);
    return ps_out_write(&w->file, hdr, sizeof(hdr), w->temp_path, err);
}

int ps_layer_writer_create(const char *dir, const struct ps_layer_desc *d,
                           const struct ps_layer_writer_opts *opts, struct ps_layer_writer **out,
                           struct kc_error *err)
{
    struct ps_layer_writer *w;
    char name[PS_LAYER_NAME_MAX];
    size_t plen;
    int rc;

    *out = NULL;
    if ((rc = ps_layer_desc_check(d, err)) != 0)
        return rc;
    w = kc_calloc(1, sizeof(*w));
    ps_out_init(&w->file, PS_FILE_BUF_SIZE);
    ps_out_init(&w->index, PS_INDEX_BUF_SIZE);
    ps_out_init(&w->dirents, PS_DIR_BUF_SIZE);
    w->desc = *d;
    if ((rc = ps_opts_fill(&w->opts, opts, err)) != 0) {
        ps_layer_writer_abort(w);
        return rc;
    }
    ps_layer_name_format(d, name);
    w->dir = kc_strdup(dir);
    plen = strlen(dir) + 1 + strlen(name) + 1;
    w->path = kc_malloc(plen);
    snprintf(w->path, plen, "%s/%s", dir, name);
    w->block = kc_malloc((size_t)w->opts.block_entries * PS_LAYER_ENTRY_SIZE);
    if ((w->index.fd = ps_spill_open(dir, err)) < 0 ||
        (w->dirents.fd = ps_spill_open(dir, err)) < 0) {
        ps_layer_writer_abort(w);
        return KC_EIO;
    }
    if ((rc = ps_writer_open_temp(w, name, err)) != 0) {
        ps_layer_writer_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

/* Make sure zbuf holds at least n bytes. */
static void ps_zbuf_reserve(struct ps_layer_writer *w, size_t n)
{
    if (w->zcap >= n)
        return;
    free(w->zbuf);
    w->zbuf = kc_malloc(n);
    w->zcap = n;
}

/*
 * Compress len bytes at src into zbuf when that helps. Returns the bytes to
 * store: zbuf (with *stored_len < len) or src itself (*stored_len == len).
 */
static const uint8_t *ps_maybe_compress(struct ps_layer_writer *w, const uint8_t *src, size_t len,
                                        size_t *stored_len)
{
    size_t bound, n;

    *stored_len = len;
    if (len < PS_COMPRESS_MIN)
        return src;
    if (w->cctx == NULL) {
        w->cctx = ZSTD_createCCtx();
        if (w->cctx == NULL)
            return src; /* out of memory: plain storage is always valid */
    }
    bound = ZSTD_compressBound(len);
    ps_zbuf_reserve(w, bound);
    n = ZSTD_compressCCtx(w->cctx, w->zbuf, w->zcap, src, len, w->opts.zstd_level);
    if (ZSTD_isError(n) || n >= len)
        return src;
    *stored_len = n;
    return w->zbuf;
}

/* Write the open index block to the spill files. */
static int ps_writer_flush_block(struct ps_layer_writer *w, struct kc_error *err)
{
    size_t raw_len = (size_t)w->block_n * PS_LAYER_ENTRY_SIZE, stored_len = raw_len;
    const uint8_t *stored = w->block;
    uint8_t dirent[PS_LAYER_DIRENT_SIZE];
    int rc;

    if (w->block_n == 0)
        return 0;
    if (!w->opts.no_index_compression)
        stored = ps_maybe_compress(w, w->block, raw_len, &stored_len);
    w->cur.index_off = w->index_len; /* relative until finish adds the index start */
    w->cur.index_len = (uint32_t)stored_len;
    w->cur.nentries = (uint16_t)w->block_n;
    w->cur.flags = stored_len < raw_len ? PS_LAYER_BLOCK_ZSTD : 0;
    w->cur.crc = kc_crc32c(0, stored, stored_len);
    ps_layer_dirent_encode(&w->cur, dirent);
    if ((rc = ps_out_write(&w->index, stored, stored_len, w->temp_path, err)) != 0 ||
        (rc = ps_out_write(&w->dirents, dirent, sizeof(dirent), w->temp_path, err)) != 0)
        return rc;
    w->index_len += stored_len;
    w->nblocks++;
    w->block_n = 0;
    return 0;
}

/* Check that (key, lsn, v) may come next; KC_EINVAL / KC_ETOOBIG otherwise. */
static int ps_writer_check_input(struct ps_layer_writer *w, const struct ps_key *key, kc_lsn lsn,
                                 const struct ps_value *v, struct kc_error *err)
{
    char k1[PS_KEY_STRLEN], k2[PS_KEY_STRLEN], l1[KC_LSN_STRLEN], l2[KC_LSN_STRLEN];
    int rc;

    if ((rc = ps_value_check(v, err)) != 0)
        return rc;
    if (!ps_layer_desc_contains(&w->desc, key, lsn)) {
        kc_error_set(err, KC_EINVAL, "value at key %s, LSN %s is outside the layer",
                     ps_key_format(key, k1), kc_lsn_format(lsn, l1));
        kc_error_detail(err,
                        "The layer covers keys %s to %s (exclusive) at LSNs %016" PRIX64
                        " to %016" PRIX64 " (exclusive).",
                        ps_key_format(&w->desc.key_start, k1), ps_key_format(&w->desc.key_end, k2),
                        w->desc.lsn_start, w->desc.lsn_end);
        return KC_EINVAL;
    }
    if (w->desc.kind == PS_LAYER_IMAGE && v->kind != PS_VALUE_IMAGE)
        return kc_error_set(err, KC_EINVAL, "an image layer cannot hold a %s value",
                            ps_value_kind_name(v->kind));
    if (w->have_last && ps_layer_keylsn_cmp(key, lsn, &w->last_key, w->last_lsn) <= 0) {
        kc_error_set(err, KC_EINVAL, "layer writer input out of order");
        kc_error_detail(err, "Key %s at LSN %s does not come after key %s at LSN %s.",
                        ps_key_format(key, k1), kc_lsn_format(lsn, l1),
                        ps_key_format(&w->last_key, k2), kc_lsn_format(w->last_lsn, l2));
        kc_error_hint(err, "Add values in increasing (key, LSN) order, each pair once.");
        return KC_EINVAL;
    }
    if (w->block_n == 0 && w->nblocks >= PS_LAYER_MAX_BLOCKS) {
        kc_error_set(err, KC_ETOOBIG, "layer has too many values");
        kc_error_detail(err, "A layer holds at most %d index blocks of %u values.",
                        PS_LAYER_MAX_BLOCKS, w->opts.block_entries);
        kc_error_hint(err, "Split the layer's key or LSN range.");
        return KC_ETOOBIG;
    }
    return 0;
}

static int ps_writer_broken(struct ps_layer_writer *w, struct kc_error *err)
{
    kc_error_set(err, w->broken, "layer writer for \"%s\" failed earlier", w->path);
    kc_error_hint(err, "Abort the writer and write the layer again.");
    return w->broken;
}

int ps_layer_writer_add(struct ps_layer_writer *w, const struct ps_key *key, kc_lsn lsn,
                        const struct ps_value *v, struct kc_error *err)
{
    struct ps_layer_entry e;
    const uint8_t *stored = v->data;
    size_t stored_len = v->len;
    int rc;

    if (w->broken != 0)
        return ps_writer_broken(w, err);
    if ((rc = ps_writer_check_input(w, key, lsn, v, err)) != 0)
        return rc;
    if (kc_failpoint("pageserver.layer.write-value", NULL, 0)) {
        w->broken = KC_EFAILPOINT;
        return kc_error_set(err, KC_EFAILPOINT,
                            "failpoint \"pageserver.layer.write-value\" injected an error");
    }
    if (!w->opts.no_value_compression && v->len > 0)
        stored = ps_maybe_compress(w, v->data, v->len, &stored_len);
    memset(&e, 0, sizeof(e));
    e.key = *key;
    e.lsn = lsn;
    e.kind = v->kind;
    e.will_init = ps_value_ends_chain(v);
    e.compressed = stored_len < v->len;
    e.len = v->len;
    e.stored_len = (uint32_t)stored_len;
    e.crc = kc_crc32c(0, stored, stored_len);
    if (w->block_n == 0) {
        memset(&w->cur, 0, sizeof(w->cur));
        w->cur.first_key = *key;
        w->cur.first_lsn = lsn;
        w->cur.data_off = w->file.written + w->file.buf.len;
    }
    if (stored_len > 0 && (rc = ps_out_write(&w->file, stored, stored_len, w->temp_path, err)) != 0)
        return w->broken = rc;
    ps_layer_entry_encode(&e, w->block + (size_t)w->block_n * PS_LAYER_ENTRY_SIZE);
    w->block_n++;
    w->cur.data_len += stored_len;
    w->have_last = true;
    w->last_key = *key;
    w->last_lsn = lsn;
    w->nvalues++;
    if (v->len > w->max_len)
        w->max_len = v->len;
    if (w->block_n == w->opts.block_entries && (rc = ps_writer_flush_block(w, err)) != 0)
        return w->broken = rc;
    return 0;
}

int ps_layer_writer_add_drop(struct ps_layer_writer *w, const struct ps_drop *d,
                             struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];
    int rc;

    if (w->broken != 0)
        return ps_writer_broken(w, err);
    if (w->opts.version < 2)
        return kc_error_set(err, KC_EINVAL, "layer format version %u cannot hold range drops",
                            w->opts.version);
    if ((rc = ps_layer_drop_check(&w->desc, d, err)) != 0)
        return rc;
    if (w->ndrops > 0 && w->drops[w->ndrops - 1].lsn > d->lsn) {
        kc_error_set(err, KC_EINVAL, "layer writer drops out of order");
        kc_error_detail(err, "The drop at LSN %s comes after one at LSN %s.",
                        kc_lsn_format(d->lsn, a), kc_lsn_format(w->drops[w->ndrops - 1].lsn, b));
        kc_error_hint(err, "Add drops in LSN order.");
        return KC_EINVAL;
    }
    if (w->ndrops >= PS_LAYER_MAX_DROPS) {
        kc_error_set(err, KC_ETOOBIG, "layer has too many range drops");
        kc_error_detail(err, "A layer holds at most %d drops.", PS_LAYER_MAX_DROPS);
        kc_error_hint(err, "Flush the in-memory layer earlier.");
        return KC_ETOOBIG;
    }
    if (w->ndrops == w->drops_cap) {
        w->drops_cap = w->drops_cap ? 2 * w->drops_cap : 16;
        w->drops = kc_realloc(w->drops, w->drops_cap * sizeof(*w->drops));
    }
    w->drops[w->ndrops++] = *d;
    return 0;
}

/* Append the drop entries; returns their CRC in *crc (0 when there are none). */
static int ps_writer_write_drops(struct ps_layer_writer *w, uint32_t *crc, struct kc_error *err)
{
    uint8_t ent[PS_LAYER_DROP_SIZE];
    int rc;

    *crc = 0;
    for (size_t i = 0; i < w->ndrops; i++) {
        ps_layer_drop_encode(&w->drops[i], ent);
        *crc = kc_crc32c(*crc, ent, sizeof(ent));
        if ((rc = ps_out_write(&w->file, ent, sizeof(ent), w->temp_path, err)) != 0)
            return rc;
    }
    return 0;
}

/* Append the spilled index blocks to the layer file. */
static int ps_writer_copy_index(struct ps_layer_writer *w, uint8_t *chunk, struct kc_error *err)
{
    uint64_t off = 0;
    int rc;

    while (off < w->index.written) {
        size_t want = (size_t)(w->index.written - off < PS_COPY_CHUNK ? w->index.written - off
                                                                      : PS_COPY_CHUNK);
        ssize_t n = pread(w->index.fd, chunk, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return kc_error_set(err, KC_EIO, "could not read back layer index spill: %s",
                                n < 0 ? strerror(errno) : "unexpected end of file");
        if ((rc = ps_out_write(&w->file, chunk, (size_t)n, w->temp_path, err)) != 0)
            return rc;
        off += (uint64_t)n;
    }
    return 0;
}

/* Append the directory, with index offsets made absolute; returns its CRC in *crc. */
static int ps_writer_copy_dir(struct ps_layer_writer *w, uint64_t index_start, uint8_t *chunk,
                              uint32_t *crc, struct kc_error *err)
{
    uint64_t off = 0;
    int rc;

    *crc = 0;
    while (off < w->dirents.written) {
        uint64_t left = w->dirents.written - off;
        size_t want = left < PS_DIRENT_PER_CPY * PS_LAYER_DIRENT_SIZE
                          ? (size_t)left
                          : PS_DIRENT_PER_CPY * PS_LAYER_DIRENT_SIZE;
        ssize_t n = pread(w->dirents.fd, chunk, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)want)
            return kc_error_set(err, KC_EIO, "could not read back layer directory spill: %s",
                                n < 0 ? strerror(errno) : "short read");
        for (size_t i = 0; i < want; i += PS_LAYER_DIRENT_SIZE) {
            struct ps_layer_block b;
            ps_layer_dirent_decode(chunk + i, &b);
            b.index_off += index_start;
            ps_layer_dirent_encode(&b, chunk + i);
        }
        *crc = kc_crc32c(*crc, chunk, want);
        if ((rc = ps_out_write(&w->file, chunk, want, w->temp_path, err)) != 0)
            return rc;
        off += want;
    }
    return 0;
}

/* Everything after the data: index, directory, footer; then fsync and close. */
static int ps_writer_write_tail(struct ps_layer_writer *w, struct kc_error *err)
{
    struct ps_layer_footer f;
    uint8_t foot[PS_LAYER_FOOTER_MAX];
    uint8_t *chunk;
    size_t flen;
    int rc;

    if ((rc = ps_writer_flush_block(w, err)) != 0 ||
        (rc = ps_out_flush(&w->index, w->temp_path, err)) != 0 ||
        (rc = ps_out_flush(&w->dirents, w->temp_path, err)) != 0)
        return rc;
    memset(&f, 0, sizeof(f));
    f.index_off = w->file.written + w->file.buf.len;
    f.dir_off = f.index_off + w->index_len;
    f.nvalues = w->nvalues;
    f.nblocks = w->nblocks;
    f.max_value_len = w->max_len;
    f.version = (uint16_t)w->opts.version;
    f.ndrops = (uint32_t)w->ndrops;
    chunk = kc_malloc(PS_COPY_CHUNK > PS_DIRENT_PER_CPY * PS_LAYER_DIRENT_SIZE
                          ? PS_COPY_CHUNK
                          : PS_DIRENT_PER_CPY * PS_LAYER_DIRENT_SIZE);
    rc = ps_writer_copy_index(w, chunk, err);
    if (rc == 0)
        rc = ps_writer_copy_dir(w, f.index_off, chunk, &f.dir_crc, err);
    free(chunk);
    if (rc == 0)
        rc = ps_writer_write_drops(w, &f.drops_crc, err);
    if (rc != 0)
        return rc;
    ps_layer_footer_encode(&f, foot);
    flen = ps_layer_footer_size(f.version);
    if ((rc = ps_out_write(&w->file, foot, flen, w->temp_path, err)) != 0 ||
        (rc = ps_out_flush(&w->file, w->temp_path, err)) != 0)
        return rc;
    KC_FAILPOINT_ERROR("pageserver.layer.before-fsync", err);
    if (fsync(w->file.fd) != 0)
        return kc_error_set(err, KC_EIO, "could not fsync layer file \"%s\": %s", w->temp_path,
                            strerror(errno));
    rc = close(w->file.fd);
    w->file.fd = -1;
    if (rc != 0)
        return kc_error_set(err, KC_EIO, "could not close layer file \"%s\": %s", w->temp_path,
                            strerror(errno));
    return 0;
}

static int ps_fsync_dir(const char *dir, struct kc_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

    if (fd < 0)
        return kc_error_set(err, KC_EIO, "could not open directory \"%s\": %s", dir,
                            strerror(errno));
    if (fsync(fd) != 0)
        rc =
            kc_error_set(err, KC_EIO, "could not fsync directory \"%s\": %s", dir, strerror(errno));
    close(fd);
    return rc;
}

/* Steps up to the rename; on failure the caller removes the temporary file. */
static int ps_writer_publish(struct ps_layer_writer *w, struct kc_error *err)
{
    int rc;

    if (w->broken != 0)
        return ps_writer_broken(w, err);
    if ((rc = ps_writer_write_tail(w, err)) != 0)
        return rc;
    KC_FAILPOINT_ERROR("pageserver.layer.before-rename", err);
    if (rename(w->temp_path, w->path) != 0)
        return kc_error_set(err, KC_EIO, "could not rename \"%s\" to \"%s\": %s", w->temp_path,
                            w->path, strerror(errno));
    return 0;
}

int ps_layer_writer_finish(struct ps_layer_writer *w, struct kc_error *err)
{
    int rc = ps_writer_publish(w, err);
    char fp_value[KC_FAILPOINT_VALUE_MAX + 1];

    if (rc != 0) {
        ps_layer_writer_abort(w); /* removes the temporary file */
        return rc;
    }
    /* The file is complete under its final name from here on. */
    if (kc_failpoint("pageserver.layer.after-rename", fp_value, sizeof(fp_value)))
        rc = kc_error_set(err, KC_EFAILPOINT,
                          "failpoint \"pageserver.layer.after-rename\" injected an error");
    else
        rc = ps_fsync_dir(w->dir, err);
    free(w->temp_path);
    w->temp_path = NULL; /* nothing left to remove */
    ps_layer_writer_abort(w);
    return rc;
}

void ps_layer_writer_abort(struct ps_layer_writer *w)
{
    if (w == NULL)
        return;
    ps_out_close(&w->file);
    ps_out_close(&w->index);
    ps_out_close(&w->dirents);
    if (w->temp_path != NULL)
        unlink(w->temp_path);
    ZSTD_freeCCtx(w->cctx);
    free(w->drops);
    free(w->zbuf);
    free(w->block);
    free(w->temp_path);
    free(w->path);
    free(w->dir);
    free(w);
}

const char *ps_layer_writer_path(const struct ps_layer_writer *w)
{
    return w->path;
}

const char *ps_layer_writer_temp_path(const struct ps_layer_writer *w)
{
    return w->temp_path;
}

uint64_t ps_layer_writer_nvalues(const struct ps_layer_writer *w)
{
    return w->nvalues;
}

size_t ps_layer_writer_ndrops(const struct ps_layer_writer *w)
{
    return w->ndrops;
}

size_t ps_layer_writer_memory(const struct ps_layer_writer *w)
{
    return sizeof(*w) + w->file.buf.cap + w->index.buf.cap + w->dirents.buf.cap + w->zcap +
           (size_t)w->opts.block_entries * PS_LAYER_ENTRY_SIZE + w->drops_cap * sizeof(*w->drops);
}
