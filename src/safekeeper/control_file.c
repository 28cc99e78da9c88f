/* SPDX-License-Identifier: Apache-2.0 */
/* control_file.c -- encoding, checked reading and atomic writing of safekeeper control files. */
#include "safekeeper/control_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "common/log.h"

#define SK_CONTROL_CRC_SIZE 4
/* Largest file a reader accepts. */
#define SK_CONTROL_MAX_FILE (SK_CONTROL_HEADER_SIZE + SK_CONTROL_MAX_PAYLOAD + SK_CONTROL_CRC_SIZE)

void sk_control_init(struct sk_control *c)
{
    memset(c, 0, sizeof(*c));
    sk_term_history_init(&c->history);
}

void sk_control_fini(struct sk_control *c)
{
    sk_term_history_fini(&c->history);
    sk_control_init(c);
}

void sk_control_copy(struct sk_control *dst, const struct sk_control *src)
{
    struct sk_term_history h = dst->history;

    if (dst == src)
        return;
    *dst = *src;
    dst->history = h;
    sk_term_history_copy(&dst->history, &src->history);
}

bool sk_control_equal(const struct sk_control *a, const struct sk_control *b)
{
    return kc_id_equal(&a->tenant_id, &b->tenant_id) &&
           kc_id_equal(&a->timeline_id, &b->timeline_id) && a->system_id == b->system_id &&
           a->wal_seg_size == b->wal_seg_size && a->pg_version == b->pg_version &&
           a->term == b->term && sk_term_history_equal(&a->history, &b->history) &&
           a->term_owner_node == b->term_owner_node && a->term_start_lsn == b->term_start_lsn &&
           a->timeline_start_lsn == b->timeline_start_lsn &&
           a->local_start_lsn == b->local_start_lsn && a->flush_lsn == b->flush_lsn &&
           a->commit_lsn == b->commit_lsn && a->peer_horizon_lsn == b->peer_horizon_lsn &&
           a->backup_lsn == b->backup_lsn && a->remote_consistent_lsn == b->remote_consistent_lsn;
}

int sk_control_validate(const struct sk_control *c, struct kc_error *err)
{
    const struct sk_term_entry *last = sk_term_history_last(&c->history);
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    if (kc_id_is_zero(&c->tenant_id) || kc_id_is_zero(&c->timeline_id))
        return kc_error_set(err, KC_EINVAL, "safekeeper state has no %s id",
                            kc_id_is_zero(&c->tenant_id) ? "tenant" : "timeline");
    if (!kc_wal_segsize_valid(c->wal_seg_size)) {
        kc_error_set(err, KC_EINVAL, "invalid WAL segment size %u", c->wal_seg_size);
        kc_error_detail(err, "The WAL segment size must be a power of two from 1 MiB to 1 GiB.");
        return KC_EINVAL;
    }
    if (sk_term_history_validate(&c->history, err) != 0)
        return KC_EINVAL;
    if (last != NULL && last->term > c->term) {
        kc_error_set(err, KC_EINVAL, "term history reaches term %llu, above the current term %llu",
                     (unsigned long long)last->term, (unsigned long long)c->term);
        kc_error_detail(err, "A safekeeper accepts WAL only of terms it voted for.");
        return KC_EINVAL;
    }
    if (c->local_start_lsn < c->timeline_start_lsn) {
        kc_error_set(err, KC_EINVAL, "local start LSN %s is below the timeline start LSN %s",
                     kc_lsn_format(c->local_start_lsn, a), kc_lsn_format(c->timeline_start_lsn, b));
        return KC_EINVAL;
    }
    return 0;
}

int sk_control_encode(const struct sk_control *c, struct kc_sbuf *out, struct kc_error *err)
{
    size_t start = out->len;
    uint32_t crc;
    int rc;

    if ((rc = sk_control_validate(c, err)) != 0) {
        kc_error_prefix(err, "cannot encode safekeeper state");
        return rc;
    }
    kc_sbuf_reserve(out, SK_CONTROL_HEADER_SIZE + SK_CONTROL_FIXED_SIZE +
                             (size_t)SK_TERM_HISTORY_ENCODED_SIZE(c->history.count) +
                             SK_CONTROL_CRC_SIZE);
    kc_sbuf_put_u32(out, SK_CONTROL_MAGIC);
    kc_sbuf_put_u16(out, SK_CONTROL_VERSION);
    kc_sbuf_put_u16(out, 0); /* reserved */
    kc_sbuf_put_u32(out, 0); /* payload length, patched below */
    kc_sbuf_append(out, c->tenant_id.b, KC_ID_LEN);
    kc_sbuf_append(out, c->timeline_id.b, KC_ID_LEN);
    kc_sbuf_put_u64(out, c->system_id);
    kc_sbuf_put_u32(out, c->wal_seg_size);
    kc_sbuf_put_u32(out, c->pg_version);
    kc_sbuf_put_u64(out, c->term);
    kc_sbuf_put_u64(out, c->term_owner_node);
    kc_sbuf_put_u64(out, c->term_start_lsn);
    kc_sbuf_put_u64(out, c->timeline_start_lsn);
    kc_sbuf_put_u64(out, c->local_start_lsn);
    kc_sbuf_put_u64(out, c->flush_lsn);
    kc_sbuf_put_u64(out, c->commit_lsn);
    kc_sbuf_put_u64(out, c->peer_horizon_lsn);
    kc_sbuf_put_u64(out, c->backup_lsn);
    kc_sbuf_put_u64(out, c->remote_consistent_lsn);
    sk_term_history_encode(&c->history, out);
    kc_sbuf_patch_u32(out, start + 8, (uint32_t)(out->len - start - SK_CONTROL_HEADER_SIZE));
    crc = kc_crc32c(0, out->data + start, out->len - start);
    kc_sbuf_put_u32(out, crc);
    return 0;
}

static int sk_ctl_corrupt(struct kc_error *err, const char *name, const char *what)
{
    kc_error_set(err, KC_ECORRUPT, "control file \"%s\" is corrupt: %s", name, what);
    return KC_ECORRUPT;
}

/* Check magic, length and CRC of a file image; on success *payload_len is set. */
static int sk_ctl_check_frame(const uint8_t *data, size_t len, const char *name,
                              uint32_t *payload_len, struct kc_error *err)
{
    uint32_t magic, plen, want, got;

    if (len < SK_CONTROL_HEADER_SIZE + SK_CONTROL_CRC_SIZE) {
        sk_ctl_corrupt(err, name, "file is too short");
        kc_error_detail(err, "The file has %zu bytes; a control file has at least %d.", len,
                        SK_CONTROL_HEADER_SIZE + SK_CONTROL_CRC_SIZE);
        return KC_ECORRUPT;
    }
    magic = kc_load_u32(data);
    if (magic != SK_CONTROL_MAGIC) {
        sk_ctl_corrupt(err, name, "invalid magic number");
        kc_error_detail(err, "The file starts with 0x%08X instead of 0x%08X.", (unsigned)magic,
                        SK_CONTROL_MAGIC);
        return KC_ECORRUPT;
    }
    plen = kc_load_u32(data + 8);
    if (plen > SK_CONTROL_MAX_PAYLOAD ||
        (size_t)plen + SK_CONTROL_HEADER_SIZE + SK_CONTROL_CRC_SIZE != len) {
        sk_ctl_corrupt(err, name, "invalid length");
        kc_error_detail(err, "The header announces %u payload bytes, but the file has %zu bytes.",
                        (unsigned)plen, len);
        return KC_ECORRUPT;
    }
    want = kc_load_u32(data + len - SK_CONTROL_CRC_SIZE);
    got = kc_crc32c(0, data, len - SK_CONTROL_CRC_SIZE);
    if (want != got) {
        sk_ctl_corrupt(err, name, "checksum mismatch");
        kc_error_detail(err, "The file carries CRC32C 0x%08X, but its contents compute to 0x%08X.",
                        (unsigned)want, (unsigned)got);
        return KC_ECORRUPT;
    }
    *payload_len = plen;
    return 0;
}

/* Parse a version 1 payload into c (initialised); 0, KC_ECORRUPT or KC_ENOMEM. */
static int sk_ctl_parse_v1(struct kc_buf *b, const char *name, struct sk_control *c,
                           struct kc_error *err)
{
    int rc;

    if (kc_buf_remaining(b) < SK_CONTROL_FIXED_SIZE)
        return sk_ctl_corrupt(err, name, "payload is too short");
    if (!kc_buf_get_bytes(b, c->tenant_id.b, KC_ID_LEN) ||
        !kc_buf_get_bytes(b, c->timeline_id.b, KC_ID_LEN) || !kc_buf_get_u64(b, &c->system_id) ||
        !kc_buf_get_u32(b, &c->wal_seg_size) || !kc_buf_get_u32(b, &c->pg_version) ||
        !kc_buf_get_u64(b, &c->term) || !kc_buf_get_u64(b, &c->term_owner_node) ||
        !kc_buf_get_u64(b, &c->term_start_lsn) || !kc_buf_get_u64(b, &c->timeline_start_lsn) ||
        !kc_buf_get_u64(b, &c->local_start_lsn) || !kc_buf_get_u64(b, &c->flush_lsn) ||
        !kc_buf_get_u64(b, &c->commit_lsn) || !kc_buf_get_u64(b, &c->peer_horizon_lsn) ||
        !kc_buf_get_u64(b, &c->backup_lsn) || !kc_buf_get_u64(b, &c->remote_consistent_lsn))
        return sk_ctl_corrupt(err, name, "payload is too short"); /* not reached */
    rc = sk_term_history_decode(b, &c->history, err);
    if (rc != 0) {
        kc_error_prefix(err, "control file \"%s\"", name);
        if (rc != KC_ENOMEM && err != NULL)
            err->code = KC_ECORRUPT; /* the CRC matched: a writer stored a bad history */
        return rc == KC_ENOMEM ? rc : KC_ECORRUPT;
    }
    if (kc_buf_remaining(b) != 0) {
        sk_ctl_corrupt(err, name, "trailing bytes after the term history");
        kc_error_detail(err, "%zu bytes follow the last field.", kc_buf_remaining(b));
        return KC_ECORRUPT;
    }
    if (sk_control_validate(c, err) != 0) {
        kc_error_prefix(err, "control file \"%s\" is corrupt", name);
        if (err != NULL)
            err->code = KC_ECORRUPT;
        return KC_ECORRUPT;
    }
    return 0;
}

int sk_control_decode(const void *data, size_t len, const char *name, struct sk_control *out,
                      struct kc_error *err)
{
    const uint8_t *p = data;
    struct sk_control c;
    struct kc_buf b;
    uint32_t plen;
    uint16_t version, reserved;
    int rc;

    if ((rc = sk_ctl_check_frame(p, len, name, &plen, err)) != 0)
        return rc;
    version = kc_load_u16(p + 4);
    reserved = kc_load_u16(p + 6);
    if (version != SK_CONTROL_VERSION) {
        kc_error_set(err, KC_EVERSION, "control file \"%s\" has unsupported version %u", name,
                     version);
        kc_error_detail(err, "This build reads version %d. %s", SK_CONTROL_VERSION,
                        version > SK_CONTROL_VERSION
                            ? "The file was written by a newer Kelp release."
                            : "The file was written by an unknown program.");
        kc_error_hint(err, "Run a Kelp release that supports version %u.", version);
        return KC_EVERSION;
    }
    if (reserved != 0)
        return sk_ctl_corrupt(err, name, "reserved header field is not zero");
    sk_control_init(&c);
    kc_buf_init(&b, p + SK_CONTROL_HEADER_SIZE, plen);
    rc = sk_ctl_parse_v1(&b, name, &c, err);
    if (rc != 0) {
        sk_control_fini(&c);
        return rc;
    }
    sk_control_fini(out);
    *out = c;
    return 0;
}

/* dir + "/" + name into buf (PATH_MAX); KC_EINVAL when too long. */
static int sk_ctl_path(char *buf, const char *dir, const char *name, struct kc_error *err)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s", dir, name);

    if (n < 0 || n >= PATH_MAX)
        return kc_error_set(err, KC_EINVAL, "path of \"%s\" in directory \"%s\" is too long", name,
                            dir);
    return 0;
}

static int sk_ctl_io_error(struct kc_error *err, const char *what, const char *path, int e)
{
    kc_error_set(err, KC_EIO, "could not %s \"%s\": %s", what, path, strerror(e));
    return KC_EIO;
}

/* Read a whole file of at most max bytes into a new buffer (*out, freed by the caller). */
static int sk_ctl_read_file(const char *path, size_t max, uint8_t **out, size_t *len,
                            struct kc_error *err)
{
    struct stat st;
    uint8_t *data;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        if (errno == ENOENT)
            return kc_error_set(err, KC_ENOTFOUND, "control file \"%s\" does not exist", path);
        return sk_ctl_io_error(err, "open control file", path, errno);
    }
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sk_ctl_io_error(err, "stat control file", path, e);
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        sk_ctl_corrupt(err, path, "file is too large");
        kc_error_detail(err, "The file has %lld bytes; a control file has at most %zu.",
                        (long long)st.st_size, max);
        return KC_ECORRUPT;
    }
    data = kc_malloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(data);
            close(fd);
            return sk_ctl_io_error(err, "read control file", path, e);
        }
        got += (size_t)n;
    }
    close(fd);
    *out = data;
    *len = got;
    return 0;
}

int sk_control_load(const char *dir, struct sk_control *out, struct kc_error *err)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    uint8_t *data = NULL;
    size_t len = 0;
    int rc;

    if ((rc = sk_ctl_path(path, dir, SK_CONTROL_FILE_NAME, err)) != 0 ||
        (rc = sk_ctl_path(tmp, dir, SK_CONTROL_TEMP_NAME, err)) != 0)
        return rc;
    if (unlink(tmp) == 0)
        kc_info("removed \"%s\" left by an interrupted control file write", tmp);
    else if (errno != ENOENT)
        kc_warn("could not remove \"%s\": %s", tmp, strerror(errno));
    rc = sk_ctl_read_file(path, SK_CONTROL_MAX_FILE, &data, &len, err);
    if (rc != 0)
        return rc;
    rc = sk_control_decode(data, len, path, out, err);
    free(data);
    return rc;
}

/* Evaluate failpoint name: KC_EFAILPOINT with err filled when a return action fires. */
static int sk_ctl_failpoint(const char *name, struct kc_error *err)
{
    char v[KC_FAILPOINT_VALUE_MAX + 1];

    if (kc_failpoint(name, v, sizeof(v)) == 0)
        return 0;
    return kc_error_set(err, KC_EFAILPOINT, "failpoint \"%s\" injected an error%s%s", name,
                        v[0] != '\0' ? ": " : "", v);
}

/* fsync a directory so that a rename or creation in it is durable. */
static int sk_ctl_fsync_dir(const char *dir, struct kc_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), e;

    if (fd < 0)
        return sk_ctl_io_error(err, "open directory", dir, errno);
    if (fsync(fd) != 0) {
        e = errno;
        close(fd);
        return sk_ctl_io_error(err, "fsync directory", dir, e);
    }
    close(fd);
    return 0;
}

/* Create tmp with data and fsync it; on failure the caller removes tmp. */
static int sk_ctl_write_temp(const char *tmp, const uint8_t *data, size_t len, struct kc_error *err)
{
    size_t done = 0;
    int fd, rc, e;

    if ((rc = sk_ctl_failpoint("safekeeper.control.before-write", err)) != 0)
        return rc;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return sk_ctl_io_error(err, "create file", tmp, errno);
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            e = n < 0 ? errno : EIO;
            close(fd);
            return sk_ctl_io_error(err, "write file", tmp, e);
        }
        done += (size_t)n;
    }
    if ((rc = sk_ctl_failpoint("safekeeper.control.before-fsync", err)) != 0) {
        close(fd);
        return rc;
    }
    if (fsync(fd) != 0) {
        e = errno;
        close(fd);
        return sk_ctl_io_error(err, "fsync file", tmp, e);
    }
    if (close(fd) != 0)
        return sk_ctl_io_error(err, "close file", tmp, errno);
    return 0;
}

int sk_control_store(const char *dir, const struct sk_control *c, struct kc_error *err)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    struct kc_sbuf image = KC_SBUF_INIT;
    int rc;

    if ((rc = sk_ctl_path(path, dir, SK_CONTROL_FILE_NAME, err)) != 0 ||
        (rc = sk_ctl_path(tmp, dir, SK_CONTROL_TEMP_NAME, err)) != 0)
        return rc;
    if ((rc = sk_control_encode(c, &image, err)) != 0)
        return rc;
    rc = sk_ctl_write_temp(tmp, image.data, image.len, err);
    kc_sbuf_fini(&image);
    if (rc == 0)
        rc = sk_ctl_failpoint("safekeeper.control.before-rename", err);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = sk_ctl_io_error(err, "rename file", tmp, errno);
    if (rc != 0) {
        (void)unlink(tmp); /* the old state stays; nothing else to undo */
        kc_error_prefix(err, "could not store safekeeper state");
        return rc;
    }
    if ((rc = sk_ctl_failpoint("safekeeper.control.after-rename", err)) != 0 ||
        (rc = sk_ctl_fsync_dir(dir, err)) != 0) {
        kc_error_prefix(err, "safekeeper state written but maybe not durable");
        kc_error_hint(err, "Restart the safekeeper before acting on this state.");
        return rc;
    }
    return 0;
}
