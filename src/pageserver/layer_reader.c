/* SPDX-License-Identifier: Apache-2.0 */
/* layer_reader.c -- validating reader and iterators of layer files. See layer_reader.h. */
#include "pageserver/layer_reader.h"

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

#define PS_DIR_CHUNK_ENTRIES 1024 /* directory entries read per pread at open */

struct ps_layer_reader {
    char *path;                    /* as given to ps_layer_open */
    int fd;                        /* read-only, owned */
    uint64_t size;                 /* file size at open */
    struct ps_layer_desc desc;     /* from the header */
    unsigned version;              /* format version, from the header */
    uint32_t header_len;           /* bytes of the header = offset of the data */
    struct ps_layer_footer foot;   /* from the footer */
    struct ps_layer_block *blocks; /* the directory: foot.nblocks entries, validated */
    uint32_t max_block_entries;    /* largest nentries of any block */
    struct ps_drop *drops;         /* foot.ndrops drops in LSN order, validated */
};

enum ps_iter_mode {
    PS_ITER_NONE,     /* not positioned */
    PS_ITER_VERSIONS, /* older versions of key, backwards */
    PS_ITER_SCAN      /* forwards, up to the bound */
};

struct ps_layer_iter {
    struct ps_layer_reader *r;      /* not owned */
    int64_t block;                  /* index block in entries[], or -1 */
    uint32_t n;                     /* entries in it */
    struct ps_layer_entry *entries; /* decoded block: r->max_block_entries slots */
    uint8_t *ibuf;                  /* stored bytes of an index block */
    uint8_t *raw;                   /* decompressed index block */
    ZSTD_DCtx *dctx;                /* created at first use */
    uint8_t *scratch;               /* stored bytes of a compressed value */
    size_t scratch_cap;             /* bytes allocated at scratch */
    enum ps_iter_mode mode;
    uint32_t pos;      /* current entry in entries[] while positioned */
    struct ps_key key; /* PS_ITER_VERSIONS: the key */
    bool has_to;       /* PS_ITER_SCAN: the scan stops before key 'to' */
    struct ps_key to;
    uint64_t preads; /* pread calls made */
};

/* pread exactly n bytes at off; a short read means the file is shorter than its index says. */
static int ps_pread_exact(int fd, const char *path, void *buf, size_t n, uint64_t off,
                          uint64_t *preads, struct kc_error *err)
{
    uint8_t *p = buf;

    while (n > 0) {
        ssize_t got = pread(fd, p, n, (off_t)off);
        if (preads != NULL)
            (*preads)++;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return kc_error_set(err, KC_EIO,
                                "could not read layer file \"%s\" at offset %" PRIu64 ": %s", path,
                                off, strerror(errno));
        if (got == 0)
            return ps_layer_corrupt(err, path, off,
                                    "The file ends before the %zu bytes its "
                                    "index locates here.",
                                    n);
        p += got;
        n -= (size_t)got;
        off += (uint64_t)got;
    }
    return 0;
}

/* Check the footer's numbers against the file size and the header. */
static int ps_check_footer(const struct ps_layer_reader *r, struct kc_error *err)
{
    const struct ps_layer_footer *f = &r->foot;
    uint64_t foot_off = r->size - ps_layer_footer_size(r->version);
    const char *p = r->path;

    if (f->index_off < r->header_len || f->index_off > f->dir_off || f->dir_off > foot_off)
        return ps_layer_corrupt(err, p, foot_off,
                                "The footer places the index at %" PRIu64
                                " and the directory at %" PRIu64
                                ", which do not fit between the header (%u bytes) and the "
                                "footer at %" PRIu64 ".",
                                f->index_off, f->dir_off, r->header_len, foot_off);
    if (f->ndrops > PS_LAYER_MAX_DROPS || (f->ndrops > 0 && r->desc.kind != PS_LAYER_DELTA) ||
        (f->ndrops == 0 && f->drops_crc != 0))
        return ps_layer_corrupt(
            err, p, foot_off + 36, "The footer counts %u drops (checksum 0x%08X) in a%s layer.",
            f->ndrops, f->drops_crc, r->desc.kind == PS_LAYER_DELTA ? " delta" : "n image");
    if (f->nblocks > PS_LAYER_MAX_BLOCKS ||
        (uint64_t)f->nblocks * PS_LAYER_DIRENT_SIZE + (uint64_t)f->ndrops * PS_LAYER_DROP_SIZE !=
            foot_off - f->dir_off)
        return ps_layer_corrupt(err, p, foot_off + 24,
                                "The footer counts %u index blocks and %u drops, but the "
                                "directory and drops have %" PRIu64 " bytes.",
                                f->nblocks, f->ndrops, foot_off - f->dir_off);
    if (f->max_value_len > PS_VALUE_MAX_LEN)
        return ps_layer_corrupt(err, p, foot_off + 28,
                                "The largest value length %u exceeds the limit %u.",
                                f->max_value_len, PS_VALUE_MAX_LEN);
    if (f->nvalues < f->nblocks || f->nvalues > (uint64_t)f->nblocks * PS_LAYER_BLOCK_MAX_ENTRIES)
        return ps_layer_corrupt(err, p, foot_off + 16,
                                "The footer counts %" PRIu64 " values in %u index blocks.",
                                f->nvalues, f->nblocks);
    if (f->nblocks == 0 &&
        (f->index_off != r->header_len || f->dir_off != f->index_off || f->max_value_len != 0))
        return ps_layer_corrupt(err, p, foot_off,
                                "An empty layer has data or a largest value length.");
    return 0;
}

/* Validate directory entry i (b) given the running offsets; advances them. */
static int ps_check_dirent(const struct ps_layer_reader *r, uint32_t i,
                           const struct ps_layer_block *b, uint64_t *data_next,
                           uint64_t *index_next, uint64_t *values, struct kc_error *err)
{
    const struct ps_layer_footer *f = &r->foot;
    uint64_t off = f->dir_off + (uint64_t)i * PS_LAYER_DIRENT_SIZE;
    uint32_t raw = (uint32_t)b->nentries * PS_LAYER_ENTRY_SIZE;
    const char *p = r->path;

    if (b->nentries == 0 || b->nentries > PS_LAYER_BLOCK_MAX_ENTRIES)
        return ps_layer_corrupt(err, p, off + 54, "Index block %u has %u entries.", i, b->nentries);
    if ((b->flags & ~PS_LAYER_BLOCK_ZSTD) != 0)
        return ps_layer_corrupt(err, p, off + 56, "Index block %u has unknown flags 0x%02X.", i,
                                b->flags);
    if ((b->flags & PS_LAYER_BLOCK_ZSTD) ? (b->index_len == 0 || b->index_len >= raw)
                                         : b->index_len != raw)
        return ps_layer_corrupt(err, p, off + 50, "Index block %u stores %u bytes for %u entries.",
                                i, b->index_len, b->nentries);
    if (b->index_off != *index_next || b->index_len > f->dir_off - *index_next)
        return ps_layer_corrupt(err, p, off + 42,
                                "Index block %u is at %" PRIu64 " (%u bytes), not at %" PRIu64
                                " inside the index.",
                                i, b->index_off, b->index_len, *index_next);
    if (b->data_off != *data_next || b->data_len > f->index_off - *data_next)
        return ps_layer_corrupt(err, p, off + 26,
                                "The values of index block %u are at %" PRIu64 " (%" PRIu64
                                " bytes), not at %" PRIu64 " inside the data.",
                                i, b->data_off, b->data_len, *data_next);
    if (!ps_layer_desc_contains(&r->desc, &b->first_key, b->first_lsn))
        return ps_layer_corrupt(err, p, off,
                                "The first key or LSN of index block %u is outside the layer.", i);
    if (i > 0 &&
        ps_layer_keylsn_cmp(&b->first_key, b->first_lsn, &b[-1].first_key, b[-1].first_lsn) <= 0)
        return ps_layer_corrupt(err, p, off, "Index block %u does not start after block %u.", i,
                                i - 1);
    *index_next += b->index_len;
    *data_next += b->data_len;
    *values += b->nentries;
    return 0;
}

/* Read, checksum and validate the directory into r->blocks. */
static int ps_load_directory(struct ps_layer_reader *r, struct kc_error *err)
{
    const struct ps_layer_footer *f = &r->foot;
    uint64_t data_next = r->header_len, index_next = f->index_off, values = 0;
    uint8_t *chunk;
    uint32_t crc = 0;
    int rc = 0;

    if (f->nblocks == 0)
        return f->dir_crc == 0
                   ? 0
                   : ps_layer_corrupt(err, r->path, f->dir_off,
                                      "The empty directory has checksum 0x%08X.", f->dir_crc);
    r->blocks = kc_try_malloc((size_t)f->nblocks * sizeof(*r->blocks));
    if (r->blocks == NULL)
        return kc_error_set(err, KC_ENOMEM,
                            "out of memory for the directory of layer file "
                            "\"%s\" (%u blocks)",
                            r->path, f->nblocks);
    chunk = kc_malloc((size_t)PS_DIR_CHUNK_ENTRIES * PS_LAYER_DIRENT_SIZE);
    for (uint32_t i = 0; i < f->nblocks && rc == 0; i += PS_DIR_CHUNK_ENTRIES) {
        uint32_t n = f->nblocks - i < PS_DIR_CHUNK_ENTRIES ? f->nblocks - i : PS_DIR_CHUNK_ENTRIES;
        size_t len = (size_t)n * PS_LAYER_DIRENT_SIZE;
        rc = ps_pread_exact(r->fd, r->path, chunk, len,
                            f->dir_off + (uint64_t)i * PS_LAYER_DIRENT_SIZE, NULL, err);
        if (rc != 0)
            break;
        crc = kc_crc32c(crc, chunk, len);
        for (uint32_t j = 0; j < n; j++)
            ps_layer_dirent_decode(chunk + (size_t)j * PS_LAYER_DIRENT_SIZE, &r->blocks[i + j]);
    }
    free(chunk);
    if (rc != 0)
        return rc;
    if (crc != f->dir_crc)
        return ps_layer_corrupt(err, r->path, f->dir_off,
                                "The directory checksum is 0x%08X but its bytes give 0x%08X.",
                                f->dir_crc, crc);
    for (uint32_t i = 0; i < f->nblocks; i++) {
        const struct ps_layer_block *b = &r->blocks[i];
        if ((rc = ps_check_dirent(r, i, b, &data_next, &index_next, &values, err)) != 0)
            return rc;
        if (b->nentries > r->max_block_entries)
            r->max_block_entries = b->nentries;
    }
    if (data_next != f->index_off || index_next != f->dir_off || values != f->nvalues)
        return ps_layer_corrupt(
            err, r->path, f->dir_off,
            "The index blocks cover data up to %" PRIu64 ", index up to %" PRIu64 " and %" PRIu64
            " values; the footer says %" PRIu64 ", %" PRIu64 " and %" PRIu64 ".",
            data_next, index_next, values, f->index_off, f->dir_off, f->nvalues);
    return 0;
}

/* Read, checksum and validate the drop entries (after the directory) into r->drops. */
static int ps_load_drops(struct ps_layer_reader *r, struct kc_error *err)
{
    const struct ps_layer_footer *f = &r->foot;
    uint64_t off = f->dir_off + (uint64_t)f->nblocks * PS_LAYER_DIRENT_SIZE;
    size_t len = (size_t)f->ndrops * PS_LAYER_DROP_SIZE;
    struct kc_error sub;
    uint8_t *raw;
    uint32_t crc;
    int rc;

    if (f->ndrops == 0)
        return 0;
    raw = kc_try_malloc(len);
    r->drops = kc_try_malloc((size_t)f->ndrops * sizeof(*r->drops));
    if (raw == NULL || r->drops == NULL) {
        free(raw);
        return kc_error_set(err, KC_ENOMEM, "out of memory for the drops of layer file \"%s\"",
                            r->path);
    }
    rc = ps_pread_exact(r->fd, r->path, raw, len, off, NULL, err);
    crc = rc == 0 ? kc_crc32c(0, raw, len) : 0;
    if (rc == 0 && crc != f->drops_crc)
        rc = ps_layer_corrupt(err, r->path, off,
                              "The drops' checksum is 0x%08X but their bytes give 0x%08X.",
                              f->drops_crc, crc);
    for (uint32_t i = 0; i < f->ndrops && rc == 0; i++) {
        struct ps_drop *d = &r->drops[i];
        uint64_t at = off + (uint64_t)i * PS_LAYER_DROP_SIZE;
        ps_layer_drop_decode(raw + (size_t)i * PS_LAYER_DROP_SIZE, d);
        if (ps_layer_drop_check(&r->desc, d, &sub) != 0)
            rc = ps_layer_corrupt(err, r->path, at, "Drop %u is invalid: %s.", i, sub.message);
        else if (i > 0 && d[-1].lsn > d->lsn)
            rc = ps_layer_corrupt(err, r->path, at, "Drop %u is older than drop %u.", i, i - 1);
    }
    free(raw);
    return rc;
}

/* When the file's base name is a layer name, it must describe the header's layer. */
static int ps_check_name(const struct ps_layer_reader *r, struct kc_error *err)
{
    const char *slash = strrchr(r->path, '/');
    const char *base = slash != NULL ? slash + 1 : r->path;
    struct ps_layer_desc n;
    char want[PS_LAYER_NAME_MAX];

    if (ps_layer_name_parse(base, &n, NULL) != 0)
        return 0;
    if (n.kind != r->desc.kind || !ps_key_eq(&n.key_start, &r->desc.key_start) ||
        !ps_key_eq(&n.key_end, &r->desc.key_end) || n.lsn_start != r->desc.lsn_start ||
        n.lsn_end != r->desc.lsn_end)
        return ps_layer_corrupt(err, r->path, 0,
                                "The header describes the layer %s, which is not the file's "
                                "name.",
                                ps_layer_name_format(&r->desc, want));
    return 0;
}

/* Header, footer, directory and name; r->fd and r->size are set. */
static int ps_open_validate(struct ps_layer_reader *r, struct kc_error *err)
{
    uint8_t head[PS_LAYER_HEADER_MAX], foot[PS_LAYER_FOOTER_MAX];
    size_t hlen = r->size < sizeof(head) ? (size_t)r->size : sizeof(head), flen;
    int rc;

    if ((rc = ps_pread_exact(r->fd, r->path, head, hlen, 0, NULL, err)) != 0 ||
        (rc = ps_layer_header_decode(head, hlen, r->path, &r->desc, &r->header_len, &r->version,
                                     err)) != 0)
        return rc;
    flen = ps_layer_footer_size(r->version);
    if (r->size < (uint64_t)r->header_len + flen)
        return ps_layer_corrupt(err, r->path, r->size,
                                "The file has %" PRIu64 " bytes, too few for a header and a "
                                "footer.",
                                r->size);
    if ((rc = ps_pread_exact(r->fd, r->path, foot, flen, r->size - flen, NULL, err)) != 0)
        return rc;
    rc = ps_layer_footer_decode(foot, r->version, r->path, r->size - flen, &r->foot, err);
    if (rc != 0 || (rc = ps_check_footer(r, err)) != 0 || (rc = ps_load_directory(r, err)) != 0 ||
        (rc = ps_load_drops(r, err)) != 0)
        return rc;
    return ps_check_name(r, err);
}

int ps_layer_open(const char *path, struct ps_layer_reader **out, struct kc_error *err)
{
    struct ps_layer_reader *r;
    struct stat st;
    int rc;

    *out = NULL;
    r = kc_calloc(1, sizeof(*r));
    r->path = kc_strdup(path);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        rc = kc_error_set(err, errno == ENOENT ? KC_ENOTFOUND : KC_EIO,
                          "could not open layer file \"%s\": %s", path, strerror(errno));
        ps_layer_close(r);
        return rc;
    }
    if (fstat(r->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = kc_error_set(err, KC_EIO, "layer file \"%s\" is not a readable regular file", path);
        ps_layer_close(r);
        return rc;
    }
    r->size = (uint64_t)st.st_size;
    if ((rc = ps_open_validate(r, err)) != 0) {
        ps_layer_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

void ps_layer_close(struct ps_layer_reader *r)
{
    if (r == NULL)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->blocks);
    free(r->drops);
    free(r->path);
    free(r);
}

const struct ps_layer_desc *ps_layer_reader_desc(const struct ps_layer_reader *r)
{
    return &r->desc;
}

const char *ps_layer_reader_path(const struct ps_layer_reader *r)
{
    return r->path;
}

uint64_t ps_layer_reader_nvalues(const struct ps_layer_reader *r)
{
    return r->foot.nvalues;
}

uint32_t ps_layer_reader_max_value_len(const struct ps_layer_reader *r)
{
    return r->foot.max_value_len;
}

uint64_t ps_layer_reader_file_size(const struct ps_layer_reader *r)
{
    return r->size;
}

size_t ps_layer_reader_memory(const struct ps_layer_reader *r)
{
    return sizeof(*r) + strlen(r->path) + 1 + (size_t)r->foot.nblocks * sizeof(*r->blocks) +
           (size_t)r->foot.ndrops * sizeof(*r->drops);
}

unsigned ps_layer_reader_version(const struct ps_layer_reader *r)
{
    return r->version;
}

const struct ps_drop *ps_layer_reader_drops(const struct ps_layer_reader *r, size_t *n)
{
    *n = r->foot.ndrops;
    return r->drops;
}

kc_lsn ps_layer_reader_drop_lsn(const struct ps_layer_reader *r, const struct ps_key *key,
                                kc_lsn lsn)
{
    /* Newest first; drops are few (one per dropped relation fork, database, segment). */
    for (uint32_t i = r->foot.ndrops; i-- > 0;) {
        const struct ps_drop *d = &r->drops[i];
        if (d->lsn <= lsn && ps_key_cmp(key, &d->start) >= 0 && ps_key_cmp(key, &d->end) < 0)
            return d->lsn;
    }
    return 0;
}

/* ---- iterators ---- */

struct ps_layer_iter *ps_layer_iter_create(struct ps_layer_reader *r)
{
    struct ps_layer_iter *it = kc_calloc(1, sizeof(*it));
    size_t raw = (size_t)r->max_block_entries * PS_LAYER_ENTRY_SIZE;

    it->r = r;
    it->block = -1;
    if (r->max_block_entries > 0) {
        it->entries = kc_malloc((size_t)r->max_block_entries * sizeof(*it->entries));
        it->ibuf = kc_malloc(raw);
        it->raw = kc_malloc(raw);
    }
    return it;
}

void ps_layer_iter_destroy(struct ps_layer_iter *it)
{
    if (it == NULL)
        return;
    ZSTD_freeDCtx(it->dctx);
    free(it->entries);
    free(it->ibuf);
    free(it->raw);
    free(it->scratch);
    free(it);
}

static int ps_iter_dctx(struct ps_layer_iter *it, struct kc_error *err)
{
    if (it->dctx == NULL && (it->dctx = ZSTD_createDCtx()) == NULL)
        return kc_error_set(err, KC_ENOMEM, "out of memory for a zstd decompression context");
    return 0;
}

/* Check entry j of block b (e, with prev the entry before it) and set its offset. */
static int ps_iter_check_entry(struct ps_layer_iter *it, uint32_t b, uint32_t j, uint64_t off,
                               struct ps_layer_entry *e, uint64_t *data_used, struct kc_error *err)
{
    const struct ps_layer_reader *r = it->r;
    const struct ps_layer_block *blk = &r->blocks[b];

    if (!ps_layer_desc_contains(&r->desc, &e->key, e->lsn))
        return ps_layer_corrupt(err, r->path, off,
                                "Entry %u of index block %u is outside the "
                                "layer's ranges.",
                                j, b);
    if (r->desc.kind == PS_LAYER_IMAGE && e->kind != PS_VALUE_IMAGE)
        return ps_layer_corrupt(err, r->path, off,
                                "Entry %u of index block %u is a %s in an "
                                "image layer.",
                                j, b, ps_value_kind_name(e->kind));
    if (j == 0 ? ps_layer_keylsn_cmp(&e->key, e->lsn, &blk->first_key, blk->first_lsn) != 0
               : ps_layer_keylsn_cmp(&e->key, e->lsn, &e[-1].key, e[-1].lsn) <= 0)
        return ps_layer_corrupt(err, r->path, off, "Entry %u of index block %u is out of order.", j,
                                b);
    if (j + 1 == blk->nentries && b + 1 < r->foot.nblocks &&
        ps_layer_keylsn_cmp(&e->key, e->lsn, &blk[1].first_key, blk[1].first_lsn) >= 0)
        return ps_layer_corrupt(err, r->path, off,
                                "The last entry of index block %u does not "
                                "come before block %u.",
                                b, b + 1);
    if (e->len > r->foot.max_value_len || e->stored_len > blk->data_len - *data_used)
        return ps_layer_corrupt(err, r->path, off,
                                "Entry %u of index block %u has a length "
                                "(%u, %u stored) that does not fit.",
                                j, b, e->len, e->stored_len);
    e->offset = blk->data_off + *data_used;
    *data_used += e->stored_len;
    return 0;
}

/* Make index block b the current one: read, checksum, decompress, validate. */
static int ps_iter_load(struct ps_layer_iter *it, uint32_t b, struct kc_error *err)
{
    const struct ps_layer_reader *r = it->r;
    const struct ps_layer_block *blk = &r->blocks[b];
    size_t raw_len = (size_t)blk->nentries * PS_LAYER_ENTRY_SIZE;
    const uint8_t *raw = it->ibuf;
    uint64_t used = 0;
    struct kc_buf cur;
    uint32_t crc;
    int rc;

    if (it->block == (int64_t)b)
        return 0;
    it->block = -1;
    if ((rc = ps_pread_exact(r->fd, r->path, it->ibuf, blk->index_len, blk->index_off, &it->preads,
                             err)) != 0)
        return rc;
    crc = kc_crc32c(0, it->ibuf, blk->index_len);
    if (crc != blk->crc)
        return ps_layer_corrupt(err, r->path, blk->index_off,
                                "The checksum of index block %u is 0x%08X but its bytes give "
                                "0x%08X.",
                                b, blk->crc, crc);
    if (blk->flags & PS_LAYER_BLOCK_ZSTD) {
        size_t n;
        if ((rc = ps_iter_dctx(it, err)) != 0)
            return rc;
        n = ZSTD_decompressDCtx(it->dctx, it->raw, raw_len, it->ibuf, blk->index_len);
        if (ZSTD_isError(n) || n != raw_len)
            return ps_layer_corrupt(err, r->path, blk->index_off,
                                    "Index block %u does not decompress to %zu bytes: %s.", b,
                                    raw_len, ZSTD_isError(n) ? ZSTD_getErrorName(n) : "length");
        raw = it->raw;
    }
    kc_buf_init(&cur, raw, raw_len);
    for (uint32_t j = 0; j < blk->nentries; j++) {
        uint64_t off = blk->index_off;
        if (!(blk->flags & PS_LAYER_BLOCK_ZSTD))
            off += (uint64_t)j * PS_LAYER_ENTRY_SIZE;
        if ((rc = ps_layer_entry_decode(&cur, r->path, off, &it->entries[j], err)) != 0 ||
            (rc = ps_iter_check_entry(it, b, j, off, &it->entries[j], &used, err)) != 0)
            return rc;
    }
    if (used != blk->data_len)
        return ps_layer_corrupt(err, r->path, blk->index_off,
                                "The entries of index block %u store %" PRIu64
                                " bytes, but the block's data has %" PRIu64 ".",
                                b, used, blk->data_len);
    it->block = b;
    it->n = blk->nentries;
    return 0;
}

/* The last block whose first (key, lsn) is <= (key, lsn), or -1. */
static int64_t ps_dir_find(const struct ps_layer_reader *r, const struct ps_key *key, kc_lsn lsn)
{
    int64_t lo = 0, hi = (int64_t)r->foot.nblocks - 1, found = -1;

    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const struct ps_layer_block *b = &r->blocks[mid];
        if (ps_layer_keylsn_cmp(&b->first_key, b->first_lsn, key, lsn) <= 0) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return found;
}

/* Index of the first entry of the current block >= (key, lsn); it->n when none. */
static uint32_t ps_block_lower_bound(const struct ps_layer_iter *it, const struct ps_key *key,
                                     kc_lsn lsn)
{
    uint32_t lo = 0, hi = it->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct ps_layer_entry *e = &it->entries[mid];
        if (ps_layer_keylsn_cmp(&e->key, e->lsn, key, lsn) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ps_layer_iter_versions(struct ps_layer_iter *it, const struct ps_key *key, kc_lsn lsn_le,
                           struct kc_error *err)
{
    int64_t b;
    uint32_t j;
    int rc;

    it->mode = PS_ITER_NONE;
    b = ps_dir_find(it->r, key, lsn_le);
    if (b < 0)
        return 0;
    if ((rc = ps_iter_load(it, (uint32_t)b, err)) != 0)
        return rc;
    /* The last entry <= (key, lsn_le): one before the first entry > it. */
    if (lsn_le == UINT64_MAX) {
        struct ps_key next = ps_key_next(key);
        j = ps_key_eq(&next, &(struct ps_key){{0}}) ? it->n : ps_block_lower_bound(it, &next, 0);
    } else {
        j = ps_block_lower_bound(it, key, lsn_le + 1);
    }
    if (j == 0 || !ps_key_eq(&it->entries[j - 1].key, key))
        return 0;
    it->mode = PS_ITER_VERSIONS;
    it->key = *key;
    it->pos = j - 1;
    return 1;
}

int ps_layer_iter_scan(struct ps_layer_iter *it, const struct ps_key *from, const struct ps_key *to,
                       struct kc_error *err)
{
    int64_t b;
    uint32_t j;
    int rc;

    it->mode = PS_ITER_NONE;
    if (it->r->foot.nblocks == 0 || (to != NULL && ps_key_cmp(from, to) >= 0))
        return 0;
    b = ps_dir_find(it->r, from, 0);
    if (b < 0)
        b = 0;
    if ((rc = ps_iter_load(it, (uint32_t)b, err)) != 0)
        return rc;
    j = ps_block_lower_bound(it, from, 0);
    if (j == it->n) {
        if ((uint64_t)b + 1 >= it->r->foot.nblocks)
            return 0;
        if ((rc = ps_iter_load(it, (uint32_t)b + 1, err)) != 0)
            return rc;
        j = 0;
    }
    if (to != NULL && ps_key_cmp(&it->entries[j].key, to) >= 0)
        return 0;
    it->mode = PS_ITER_SCAN;
    it->has_to = to != NULL;
    if (to != NULL)
        it->to = *to;
    it->pos = j;
    return 1;
}

static int ps_iter_next_version(struct ps_layer_iter *it, struct kc_error *err)
{
    int rc;

    if (it->pos > 0) {
        it->pos--;
    } else {
        int64_t b = it->block;
        if (b <= 0)
            return 0;
        if ((rc = ps_iter_load(it, (uint32_t)(b - 1), err)) != 0)
            return rc;
        it->pos = it->n - 1;
    }
    return ps_key_eq(&it->entries[it->pos].key, &it->key) ? 1 : 0;
}

static int ps_iter_next_scan(struct ps_layer_iter *it, struct kc_error *err)
{
    int rc;

    if (it->pos + 1 < it->n) {
        it->pos++;
    } else {
        int64_t b = it->block;
        if ((uint64_t)b + 1 >= it->r->foot.nblocks)
            return 0;
        if ((rc = ps_iter_load(it, (uint32_t)(b + 1), err)) != 0)
            return rc;
        it->pos = 0;
    }
    return !it->has_to || ps_key_cmp(&it->entries[it->pos].key, &it->to) < 0 ? 1 : 0;
}

int ps_layer_iter_next(struct ps_layer_iter *it, struct kc_error *err)
{
    int rc;

    if (it->mode == PS_ITER_NONE || it->block < 0)
        return 0;
    rc = it->mode == PS_ITER_VERSIONS ? ps_iter_next_version(it, err) : ps_iter_next_scan(it, err);
    if (rc != 1)
        it->mode = PS_ITER_NONE;
    return rc;
}

const struct ps_layer_entry *ps_layer_iter_entry(const struct ps_layer_iter *it)
{
    if (it->mode == PS_ITER_NONE || it->block < 0)
        return NULL;
    return &it->entries[it->pos];
}

/* Read and decompress the compressed value e into buf (>= e->len bytes). */
static int ps_iter_read_compressed(struct ps_layer_iter *it, const struct ps_layer_entry *e,
                                   uint8_t *buf, struct kc_error *err)
{
    const struct ps_layer_reader *r = it->r;
    uint32_t crc;
    size_t n;
    int rc;

    if (it->scratch_cap < e->stored_len) {
        free(it->scratch);
        it->scratch_cap = 0;
        it->scratch = kc_try_malloc(e->stored_len);
        if (it->scratch == NULL)
            return kc_error_set(err, KC_ENOMEM, "out of memory reading a value of %u bytes",
                                e->stored_len);
        it->scratch_cap = e->stored_len;
    }
    if ((rc = ps_pread_exact(r->fd, r->path, it->scratch, e->stored_len, e->offset, &it->preads,
                             err)) != 0)
        return rc;
    crc = kc_crc32c(0, it->scratch, e->stored_len);
    if (crc != e->crc)
        return ps_layer_corrupt(err, r->path, e->offset,
                                "The checksum of the value is 0x%08X but its bytes give 0x%08X.",
                                e->crc, crc);
    if ((rc = ps_iter_dctx(it, err)) != 0)
        return rc;
    n = ZSTD_decompressDCtx(it->dctx, buf, e->len, it->scratch, e->stored_len);
    if (ZSTD_isError(n) || n != e->len)
        return ps_layer_corrupt(err, r->path, e->offset,
                                "The value does not decompress to %u bytes: %s.", e->len,
                                ZSTD_isError(n) ? ZSTD_getErrorName(n) : "wrong length");
    return 0;
}

int ps_layer_iter_read(struct ps_layer_iter *it, uint8_t *buf, size_t cap, struct ps_value *out,
                       struct kc_error *err)
{
    const struct ps_layer_entry *e = ps_layer_iter_entry(it);
    int rc;

    if (e == NULL)
        return kc_error_set(err, KC_EINVAL, "layer iterator is not positioned on a value");
    if (e->len > cap) {
        kc_error_set(err, KC_ETOOBIG, "value of %u bytes does not fit in a buffer of %zu bytes",
                     e->len, cap);
        kc_error_hint(err, "Size the buffer with the entry's len or the layer's largest value.");
        return KC_ETOOBIG;
    }
    if (e->compressed) {
        rc = ps_iter_read_compressed(it, e, buf, err);
    } else {
        rc =
            ps_pread_exact(it->r->fd, it->r->path, buf, e->stored_len, e->offset, &it->preads, err);
        if (rc == 0 && kc_crc32c(0, buf, e->stored_len) != e->crc)
            rc = ps_layer_corrupt(err, it->r->path, e->offset,
                                  "The checksum of the value does not match its bytes.");
    }
    if (rc != 0)
        return rc;
    out->kind = e->kind;
    out->will_init = e->will_init;
    out->len = e->len;
    out->data = buf;
    return 0;
}

uint64_t ps_layer_iter_preads(const struct ps_layer_iter *it)
{
    return it->preads;
}
