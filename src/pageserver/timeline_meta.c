/* SPDX-License-Identifier: Apache-2.0 */
/* timeline_meta.c -- the timeline metadata file: encoding, checks, atomic durable writes. */
#include "pageserver/timeline_meta.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/crc32c.h"
#include "common/failpoint.h"

#define PS_META_MAX_BYTES               \
    ((uint64_t)PS_TIMELINE_META_FIXED + \
     (uint64_t)PS_TIMELINE_META_MAX_LAYER * PS_TIMELINE_META_LAYER)

void ps_timeline_meta_fini(struct ps_timeline_meta *m)
{
    free(m->layers);
    memset(m, 0, sizeof(*m));
}

/* List order: (lsn_start, lsn_end, key_start, kind). */
static int ps_meta_layer_cmp(const struct ps_meta_layer *a, const struct ps_meta_layer *b)
{
    const struct ps_layer_desc *x = &a->desc, *y = &b->desc;
    int c;

    if (x->lsn_start != y->lsn_start)
        return x->lsn_start < y->lsn_start ? -1 : 1;
    if (x->lsn_end != y->lsn_end)
        return x->lsn_end < y->lsn_end ? -1 : 1;
    if ((c = ps_key_cmp(&x->key_start, &y->key_start)) != 0)
        return c;
    return (int)x->kind - (int)y->kind;
}

static int ps_meta_layer_qsort(const void *a, const void *b)
{
    return ps_meta_layer_cmp(a, b);
}

void ps_timeline_meta_sort(struct ps_timeline_meta *m)
{
    if (m->nlayers > 1)
        qsort(m->layers, m->nlayers, sizeof(*m->layers), ps_meta_layer_qsort);
}

/* Check layer i of m; KC_EINVAL naming it otherwise. */
static int ps_meta_check_layer(const struct ps_timeline_meta *m, size_t i, struct kc_error *err)
{
    const struct ps_layer_desc *d = &m->layers[i].desc;
    char name[PS_LAYER_NAME_MAX], a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];
    struct kc_error sub;

    if (ps_layer_desc_check(d, &sub) != 0)
        return kc_error_set(err, KC_EINVAL, "metadata layer %zu is invalid: %s", i, sub.message);
    ps_layer_name_format(d, name);
    if (d->lsn_start <= m->start_lsn || d->lsn_end - 1 > m->disk_consistent_lsn) {
        kc_error_set(err, KC_EINVAL, "metadata layer %s lies outside the timeline's history", name);
        kc_error_detail(err, "The timeline's layers hold LSNs above %s and up to %s.",
                        kc_lsn_format(m->start_lsn, a), kc_lsn_format(m->disk_consistent_lsn, b));
        return KC_EINVAL;
    }
    if (i > 0 && ps_meta_layer_cmp(&m->layers[i - 1], &m->layers[i]) >= 0)
        return kc_error_set(err, KC_EINVAL, "metadata layer %s is listed out of order", name);
    return 0;
}

int ps_timeline_meta_check(const struct ps_timeline_meta *m, struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];
    int rc;

    if (kc_id_is_zero(&m->tenant) || kc_id_is_zero(&m->timeline))
        return kc_error_set(err, KC_EINVAL, "metadata has a zero tenant or timeline id");
    if (kc_id_is_zero(&m->ancestor) ? m->ancestor_lsn != 0
                                    : m->ancestor_lsn == 0 || m->start_lsn != m->ancestor_lsn)
        return kc_error_set(err, KC_EINVAL,
                            "metadata ancestor LSN %s does not fit its ancestor and start LSN %s",
                            kc_lsn_format(m->ancestor_lsn, a), kc_lsn_format(m->start_lsn, b));
    if (kc_id_equal(&m->ancestor, &m->timeline))
        return kc_error_set(err, KC_EINVAL, "metadata names the timeline as its own ancestor");
    if (m->start_lsn > m->disk_consistent_lsn)
        return kc_error_set(
            err, KC_EINVAL, "metadata disk consistent LSN %s is below the start LSN %s",
            kc_lsn_format(m->disk_consistent_lsn, a), kc_lsn_format(m->start_lsn, b));
    if (!kc_wal_segsize_valid(m->wal_seg_size))
        return kc_error_set(err, KC_EINVAL, "metadata WAL segment size %u is invalid",
                            m->wal_seg_size);
    if (m->nlayers > PS_TIMELINE_META_MAX_LAYER)
        return kc_error_set(err, KC_EINVAL, "metadata lists %zu layers, more than %d", m->nlayers,
                            PS_TIMELINE_META_MAX_LAYER);
    for (size_t i = 0; i < m->nlayers; i++)
        if ((rc = ps_meta_check_layer(m, i, err)) != 0)
            return rc;
    return 0;
}

void ps_timeline_meta_encode(const struct ps_timeline_meta *m, struct kc_sbuf *out)
{
    size_t start = out->len;
    uint32_t total = (uint32_t)(PS_TIMELINE_META_FIXED + m->nlayers * PS_TIMELINE_META_LAYER);

    kc_sbuf_put_u32(out, PS_TIMELINE_META_MAGIC);
    kc_sbuf_put_u16(out, PS_TIMELINE_META_VERSION);
    kc_sbuf_put_u16(out, 0); /* reserved */
    kc_sbuf_put_u32(out, total);
    kc_sbuf_append(out, m->tenant.b, KC_ID_LEN);
    kc_sbuf_append(out, m->timeline.b, KC_ID_LEN);
    kc_sbuf_append(out, m->ancestor.b, KC_ID_LEN);
    kc_sbuf_put_u64(out, m->ancestor_lsn);
    kc_sbuf_put_u64(out, m->start_lsn);
    kc_sbuf_put_u64(out, m->disk_consistent_lsn);
    kc_sbuf_put_u64(out, m->pg_system_id);
    kc_sbuf_put_u32(out, m->wal_seg_size);
    kc_sbuf_put_u32(out, (uint32_t)m->nlayers);
    for (size_t i = 0; i < m->nlayers; i++) {
        const struct ps_meta_layer *l = &m->layers[i];
        kc_sbuf_put_u8(out, (uint8_t)l->desc.kind);
        kc_sbuf_append(out, l->desc.key_start.b, PS_KEY_LEN);
        kc_sbuf_append(out, l->desc.key_end.b, PS_KEY_LEN);
        kc_sbuf_put_u64(out, l->desc.lsn_start);
        kc_sbuf_put_u64(out, l->desc.lsn_end);
        kc_sbuf_put_u64(out, l->file_size);
    }
    kc_sbuf_put_u32(out, kc_crc32c(0, out->data + start, out->len - start));
}

static int ps_meta_corrupt(struct kc_error *err, const char *path, uint64_t off, const char *fmt,
                           const char *why)
{
    kc_error_set(err, KC_ECORRUPT, "corrupt timeline metadata file \"%s\" at offset %" PRIu64, path,
                 off);
    kc_error_detail(err, fmt, why);
    kc_error_hint(err, "Restore the timeline from object storage.");
    return KC_ECORRUPT;
}

/* Decode the fields after the header (checksum already verified) into m. */
static int ps_meta_decode_body(struct kc_buf *b, const char *path, struct ps_timeline_meta *m,
                               struct kc_error *err)
{
    uint32_t nlayers;

    if (!kc_buf_get_bytes(b, m->tenant.b, KC_ID_LEN) ||
        !kc_buf_get_bytes(b, m->timeline.b, KC_ID_LEN) ||
        !kc_buf_get_bytes(b, m->ancestor.b, KC_ID_LEN) || !kc_buf_get_u64(b, &m->ancestor_lsn) ||
        !kc_buf_get_u64(b, &m->start_lsn) || !kc_buf_get_u64(b, &m->disk_consistent_lsn) ||
        !kc_buf_get_u64(b, &m->pg_system_id) || !kc_buf_get_u32(b, &m->wal_seg_size) ||
        !kc_buf_get_u32(b, &nlayers))
        return ps_meta_corrupt(err, path, b->pos, "%s", "The fields are truncated.");
    if ((uint64_t)nlayers * PS_TIMELINE_META_LAYER != kc_buf_remaining(b) - 4)
        return ps_meta_corrupt(err, path, 96, "%s",
                               "The layer count does not match the file's length.");
    m->layers = kc_try_malloc((nlayers ? nlayers : 1) * sizeof(*m->layers));
    if (m->layers == NULL)
        return kc_error_set(err, KC_ENOMEM, "out of memory for %u layers of \"%s\"", nlayers, path);
    m->nlayers = nlayers;
    for (uint32_t i = 0; i < nlayers; i++) {
        struct ps_meta_layer *l = &m->layers[i];
        uint8_t kind = 0;
        memset(l, 0, sizeof(*l));
        if (!kc_buf_get_u8(b, &kind) || !kc_buf_get_bytes(b, l->desc.key_start.b, PS_KEY_LEN) ||
            !kc_buf_get_bytes(b, l->desc.key_end.b, PS_KEY_LEN) ||
            !kc_buf_get_u64(b, &l->desc.lsn_start) || !kc_buf_get_u64(b, &l->desc.lsn_end) ||
            !kc_buf_get_u64(b, &l->file_size))
            return ps_meta_corrupt(err, path, b->pos, "%s", "A layer entry is truncated.");
        l->desc.kind = (enum ps_layer_kind)kind;
        l->desc.tenant = m->tenant;
        l->desc.timeline = m->timeline;
    }
    return 0;
}

int ps_timeline_meta_decode(const uint8_t *data, size_t len, const char *path,
                            struct ps_timeline_meta *out, struct kc_error *err)
{
    struct ps_timeline_meta m;
    struct kc_buf b;
    struct kc_error sub;
    uint32_t magic, total, crc, want;
    uint16_t version, reserved;
    int rc;

    memset(&m, 0, sizeof(m));
    kc_buf_init(&b, data, len);
    if (!kc_buf_get_u32(&b, &magic) || !kc_buf_get_u16(&b, &version) ||
        !kc_buf_get_u16(&b, &reserved) || !kc_buf_get_u32(&b, &total))
        return ps_meta_corrupt(err, path, 0, "%s", "The file is too short for a header.");
    if (magic != PS_TIMELINE_META_MAGIC)
        return ps_meta_corrupt(err, path, 0, "%s", "The magic number is wrong.");
    if (total != len || len < PS_TIMELINE_META_FIXED || len > PS_META_MAX_BYTES)
        return ps_meta_corrupt(err, path, 8, "%s",
                               "The length field does not match the file's length.");
    crc = kc_load_u32(data + len - 4);
    want = kc_crc32c(0, data, len - 4);
    if (crc != want)
        return ps_meta_corrupt(err, path, len - 4, "%s",
                               "The checksum does not match the file's bytes.");
    if (version != PS_TIMELINE_META_VERSION) {
        kc_error_set(err, KC_EVERSION, "timeline metadata file \"%s\" has unsupported version %u",
                     path, version);
        kc_error_detail(err, "This build reads metadata version %d.", PS_TIMELINE_META_VERSION);
        kc_error_hint(err, "Run a pageserver built for metadata version %u.", version);
        return KC_EVERSION;
    }
    if (reserved != 0)
        return ps_meta_corrupt(err, path, 6, "%s", "The reserved bytes are not zero.");
    if ((rc = ps_meta_decode_body(&b, path, &m, err)) != 0) {
        ps_timeline_meta_fini(&m);
        return rc;
    }
    if (ps_timeline_meta_check(&m, &sub) != 0) {
        ps_timeline_meta_fini(&m);
        return ps_meta_corrupt(err, path, 12, "The metadata is inconsistent: %s.", sub.message);
    }
    *out = m;
    return 0;
}

int ps_timeline_meta_read(const char *dir, struct ps_timeline_meta *out, struct kc_error *err)
{
    char path[4096];
    struct stat st;
    uint8_t *data;
    ssize_t got = 0;
    int fd, rc;

    snprintf(path, sizeof(path), "%s/%s", dir, PS_TIMELINE_META_FILE);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kc_error_set(err, errno == ENOENT ? KC_ENOTFOUND : KC_EIO,
                            "could not open timeline metadata \"%s\": %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > PS_META_MAX_BYTES) {
        close(fd);
        return kc_error_set(err, KC_ECORRUPT,
                            "timeline metadata \"%s\" is not a regular file of at most %" PRIu64
                            " bytes",
                            path, (uint64_t)PS_META_MAX_BYTES);
    }
    data = kc_try_malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        close(fd);
        return kc_error_set(err, KC_ENOMEM, "out of memory reading \"%s\"", path);
    }
    for (size_t off = 0; off < (size_t)st.st_size; off += (size_t)got) {
        got = pread(fd, data + off, (size_t)st.st_size - off, (off_t)off);
        if (got < 0 && errno == EINTR) {
            got = 0;
            continue;
        }
        if (got <= 0) {
            rc = kc_error_set(err, KC_EIO, "could not read timeline metadata \"%s\": %s", path,
                              got < 0 ? strerror(errno) : "unexpected end of file");
            free(data);
            close(fd);
            return rc;
        }
    }
    close(fd);
    rc = ps_timeline_meta_decode(data, (size_t)st.st_size, path, out, err);
    free(data);
    return rc;
}

int ps_timeline_fsync_dir(const char *dir, struct kc_error *err)
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

/* Write, fsync and close the temporary file. */
static int ps_meta_write_temp(const char *tmp, const struct kc_sbuf *bytes, struct kc_error *err)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t off = 0;

    if (fd < 0)
        return kc_error_set(err, KC_EIO, "could not create \"%s\": %s", tmp, strerror(errno));
    while (off < bytes->len) {
        ssize_t w = write(fd, bytes->data + off, bytes->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            kc_error_set(err, KC_EIO, "could not write \"%s\": %s", tmp,
                         w < 0 ? strerror(errno) : "short write");
            close(fd);
            return KC_EIO;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        kc_error_set(err, KC_EIO, "could not fsync \"%s\": %s", tmp, strerror(errno));
        close(fd);
        return KC_EIO;
    }
    if (close(fd) != 0)
        return kc_error_set(err, KC_EIO, "could not close \"%s\": %s", tmp, strerror(errno));
    return 0;
}

/* Temporary file complete and durable: the rename, then the directory fsync. */
static int ps_meta_publish(const char *dir, const char *tmp, const char *path, struct kc_error *err)
{
    KC_FAILPOINT_ERROR("pageserver.timeline.before-metadata-rename", err);
    if (rename(tmp, path) != 0)
        return kc_error_set(err, KC_EIO, "could not rename \"%s\" to \"%s\": %s", tmp, path,
                            strerror(errno));
    KC_FAILPOINT_ERROR("pageserver.timeline.after-metadata-rename", err);
    return ps_timeline_fsync_dir(dir, err);
}

int ps_timeline_meta_write(const char *dir, const struct ps_timeline_meta *m, struct kc_error *err)
{
    char path[4096], tmp[4096];
    struct kc_sbuf bytes = KC_SBUF_INIT;
    int rc;

    if ((rc = ps_timeline_meta_check(m, err)) != 0)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", dir, PS_TIMELINE_META_FILE);
    snprintf(tmp, sizeof(tmp), "%s/%s", dir, PS_TIMELINE_META_TEMP);
    ps_timeline_meta_encode(m, &bytes);
    rc = ps_meta_write_temp(tmp, &bytes, err);
    kc_sbuf_fini(&bytes);
    if (rc == 0)
        rc = ps_meta_publish(dir, tmp, path, err);
    if (rc != 0)
        unlink(tmp); /* before the rename: the old file stays; after it: already gone */
    return rc;
}
