/* SPDX-License-Identifier: Apache-2.0 */
/* tar.c -- streaming ustar writer and validating header parser. See tar.h. */
#include "common/tar.h"

#include <stdio.h>
#include <string.h>

/* Field offsets and sizes of a ustar header block (POSIX.1-1988). */
#define TAR_NAME      0
#define TAR_NAME_LEN  100
#define TAR_MODE      100
#define TAR_UID       108
#define TAR_GID       116
#define TAR_SIZE      124
#define TAR_MTIME     136
#define TAR_CHKSUM    148
#define TAR_TYPE      156
#define TAR_MAGIC     257
#define TAR_VERSION   263
#define TAR_PREFIX    345
#define TAR_PREFIX_LN 155

static const uint8_t tar_zero_block[KC_TAR_BLOCK];
static const uint8_t tar_zeros[8192]; /* source of kc_tar_file_zeros */

static int tar_emit(struct kc_tar *t, const void *data, size_t len, struct kc_error *err)
{
    int rc;

    if (len == 0)
        return 0;
    rc = t->write(t->arg, data, len, err);
    if (rc != 0) {
        t->failed = true;
        return rc < 0 ? rc : kc_error_set(err, KC_EIO, "tar write callback failed");
    }
    t->offset += len;
    return 0;
}

static int tar_fail(struct kc_tar *t, struct kc_error *err, const char *what)
{
    t->failed = true;
    return kc_error_set(err, KC_EINVAL, "tar archive misuse: %s", what);
}

static int tar_usable(struct kc_tar *t, bool want_file, struct kc_error *err)
{
    if (t->failed)
        return kc_error_set(err, KC_EINVAL, "tar archive already failed");
    if (t->finished)
        return tar_fail(t, err, "the archive is finished");
    if (t->in_file != want_file)
        return tar_fail(t, err, want_file ? "no file is open" : "a file is still open");
    return 0;
}

/* Write v as digits-1 zero-padded octal digits and a NUL into field. */
static void tar_octal(uint8_t *field, int digits, uint64_t v)
{
    field[digits - 1] = '\0';
    for (int i = digits - 2; i >= 0; i--) {
        field[i] = (uint8_t)('0' + (v & 7));
        v >>= 3;
    }
}

/* Split path into ustar's name and prefix fields; false when it cannot be. */
static bool tar_split_path(const char *path, uint8_t *block)
{
    size_t len = strlen(path);

    if (len < TAR_NAME_LEN) {
        memcpy(block + TAR_NAME, path, len);
        return true;
    }
    /* The prefix ends at a '/' that leaves a name of at most 99 bytes. */
    for (size_t i = len - 1; i > 0; i--) {
        if (path[i] != '/')
            continue;
        if (len - i - 1 >= TAR_NAME_LEN || len - i - 1 == 0)
            return false;
        if (i > TAR_PREFIX_LN)
            continue;
        memcpy(block + TAR_PREFIX, path, i);
        memcpy(block + TAR_NAME, path + i + 1, len - i - 1);
        return true;
    }
    return false;
}

static int tar_header(struct kc_tar *t, const char *path, char type, uint32_t mode, uint64_t size,
                      struct kc_error *err)
{
    uint8_t block[KC_TAR_BLOCK];
    unsigned sum = 0;

    memset(block, 0, sizeof(block));
    if (path == NULL || path[0] == '\0' || path[0] == '/' || strlen(path) > KC_TAR_PATH_MAX ||
        !tar_split_path(path, block)) {
        t->failed = true;
        return kc_error_set(err, KC_EINVAL, "tar entry path \"%s\" is not usable",
                            path ? path : "(null)");
    }
    if (size > KC_TAR_FILE_MAX) {
        t->failed = true;
        return kc_error_set(err, KC_ETOOBIG, "tar entry \"%s\" is too large: %llu bytes", path,
                            (unsigned long long)size);
    }
    tar_octal(block + TAR_MODE, 8, mode);
    tar_octal(block + TAR_UID, 8, 0);
    tar_octal(block + TAR_GID, 8, 0);
    tar_octal(block + TAR_SIZE, 12, size);
    tar_octal(block + TAR_MTIME, 12, t->mtime > 0 ? (uint64_t)t->mtime : 0);
    block[TAR_TYPE] = (uint8_t)type;
    memcpy(block + TAR_MAGIC, "ustar", 6);
    memcpy(block + TAR_VERSION, "00", 2);
    memset(block + TAR_CHKSUM, ' ', 8);
    for (size_t i = 0; i < sizeof(block); i++)
        sum += block[i];
    tar_octal(block + TAR_CHKSUM, 7, sum);
    block[TAR_CHKSUM + 7] = ' ';
    return tar_emit(t, block, sizeof(block), err);
}

void kc_tar_init(struct kc_tar *t, kc_tar_write_fn write, void *arg, int64_t mtime)
{
    memset(t, 0, sizeof(*t));
    t->write = write;
    t->arg = arg;
    t->mtime = mtime;
}

int kc_tar_add_dir(struct kc_tar *t, const char *path, struct kc_error *err)
{
    int rc = tar_usable(t, false, err);

    if (rc != 0)
        return rc;
    return tar_header(t, path, '5', 0700, 0, err);
}

int kc_tar_file_begin(struct kc_tar *t, const char *path, uint64_t size, struct kc_error *err)
{
    int rc = tar_usable(t, false, err);

    if (rc == 0)
        rc = tar_header(t, path, '0', 0600, size, err);
    if (rc != 0)
        return rc;
    t->in_file = true;
    t->remaining = size;
    t->pad = (uint32_t)(kc_tar_padded(size) - size);
    return 0;
}

int kc_tar_file_write(struct kc_tar *t, const void *data, size_t len, struct kc_error *err)
{
    int rc = tar_usable(t, true, err);

    if (rc != 0)
        return rc;
    if (len > t->remaining)
        return tar_fail(t, err, "more bytes written than the file's size");
    t->remaining -= len;
    return tar_emit(t, data, len, err);
}

int kc_tar_file_zeros(struct kc_tar *t, uint64_t n, struct kc_error *err)
{
    int rc = tar_usable(t, true, err);

    if (rc != 0)
        return rc;
    if (n > t->remaining)
        return tar_fail(t, err, "more bytes written than the file's size");
    while (n > 0 && rc == 0) {
        size_t chunk = n < sizeof(tar_zeros) ? (size_t)n : sizeof(tar_zeros);
        t->remaining -= chunk;
        n -= chunk;
        rc = tar_emit(t, tar_zeros, chunk, err);
    }
    return rc;
}

int kc_tar_file_end(struct kc_tar *t, struct kc_error *err)
{
    int rc = tar_usable(t, true, err);

    if (rc != 0)
        return rc;
    if (t->remaining != 0)
        return tar_fail(t, err, "file ended before its announced size");
    t->in_file = false;
    return tar_emit(t, tar_zero_block, t->pad, err);
}

int kc_tar_add_file(struct kc_tar *t, const char *path, const void *data, size_t len,
                    struct kc_error *err)
{
    int rc = kc_tar_file_begin(t, path, len, err);

    if (rc == 0)
        rc = kc_tar_file_write(t, data, len, err);
    if (rc == 0)
        rc = kc_tar_file_end(t, err);
    return rc;
}

int kc_tar_finish(struct kc_tar *t, struct kc_error *err)
{
    int rc = tar_usable(t, false, err);

    if (rc == 0)
        rc = tar_emit(t, tar_zero_block, sizeof(tar_zero_block), err);
    if (rc == 0)
        rc = tar_emit(t, tar_zero_block, sizeof(tar_zero_block), err);
    if (rc == 0)
        t->finished = true;
    return rc;
}

/* ---- parsing -------------------------------------------------------------- */

/*
 * An octal field: optional leading spaces, octal digits, then NUL or spaces
 * to the end of the field. Base-256 (GNU) values are refused.
 */
static bool tar_parse_octal(const uint8_t *f, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    bool digits = false;

    while (i < n && f[i] == ' ')
        i++;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60)
            return false;
        v = v * 8 + (uint64_t)(f[i] - '0');
        digits = true;
    }
    for (; i < n; i++)
        if (f[i] != '\0' && f[i] != ' ')
            return false;
    *out = v;
    return digits;
}

/* Length of a NUL-padded field (the whole field when it has no NUL). */
static size_t tar_field_len(const uint8_t *f, size_t n)
{
    size_t len = 0;

    while (len < n && f[len] != '\0')
        len++;
    return len;
}

/* A relative path with no empty, "." or ".." components in the middle. */
static bool tar_path_safe(const char *p)
{
    if (p[0] == '\0' || p[0] == '/')
        return false;
    for (const char *c = p; *c != '\0';) {
        const char *slash = strchr(c, '/');
        size_t len = slash ? (size_t)(slash - c) : strlen(c);
        if (len == 2 && c[0] == '.' && c[1] == '.')
            return false;
        if (len == 0 && slash != NULL && slash[1] != '\0')
            return false;
        c += len + (slash ? 1 : 0);
    }
    return true;
}

static int tar_corrupt(struct kc_error *err, const char *what)
{
    return kc_error_set(err, KC_ECORRUPT, "invalid tar header: %s", what);
}

int kc_tar_parse_header(const uint8_t block[KC_TAR_BLOCK], struct kc_tar_header *out,
                        struct kc_error *err)
{
    uint64_t chk, v;
    unsigned usum = 0;
    int ssum = 0;
    size_t nlen, plen;

    if (memcmp(block, tar_zero_block, KC_TAR_BLOCK) == 0)
        return 0;
    for (size_t i = 0; i < KC_TAR_BLOCK; i++) {
        uint8_t c = (i >= TAR_CHKSUM && i < TAR_CHKSUM + 8) ? (uint8_t)' ' : block[i];
        usum += c;
        ssum += (int8_t)c;
    }
    if (!tar_parse_octal(block + TAR_CHKSUM, 8, &chk))
        return tar_corrupt(err, "checksum field is not octal");
    if (chk != usum && (int64_t)chk != (int64_t)ssum)
        return tar_corrupt(err, "checksum mismatch");
    if (memcmp(block + TAR_MAGIC, "ustar", 5) != 0)
        return tar_corrupt(err, "not a ustar header");
    memset(out, 0, sizeof(*out));
    plen = tar_field_len(block + TAR_PREFIX, TAR_PREFIX_LN);
    nlen = tar_field_len(block + TAR_NAME, TAR_NAME_LEN);
    if (nlen == 0)
        return tar_corrupt(err, "empty name");
    if (plen > 0) {
        memcpy(out->path, block + TAR_PREFIX, plen);
        out->path[plen] = '/';
        plen++;
    }
    memcpy(out->path + plen, block + TAR_NAME, nlen);
    out->path[plen + nlen] = '\0';
    if (plen + nlen > 1 && out->path[plen + nlen - 1] == '/')
        out->path[plen + nlen - 1] = '\0';
    if (!tar_path_safe(out->path))
        return tar_corrupt(err, "unsafe path (absolute, or with an empty or \"..\" component)");
    if (!tar_parse_octal(block + TAR_MODE, 8, &v) || v > 07777)
        return tar_corrupt(err, "bad mode field");
    out->mode = (uint32_t)v;
    if (!tar_parse_octal(block + TAR_SIZE, 12, &out->size))
        return tar_corrupt(err, "bad size field");
    if (!tar_parse_octal(block + TAR_MTIME, 12, &v))
        return tar_corrupt(err, "bad mtime field");
    out->mtime = (int64_t)v;
    out->type = block[TAR_TYPE] == '\0' ? '0' : (char)block[TAR_TYPE];
    if (out->type == '5')
        out->size = 0;
    return 1;
}
