/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tar.h -- a streaming writer and a header parser for POSIX ustar archives.
 *
 * The writer produces a plain ustar stream (the format pg_basebackup, GNU
 * tar and Python's tarfile read) through a write callback, so an archive can
 * go to a file, a socket or a buffer without being held in memory: a file is
 * announced with its size, its bytes are streamed, and kc_tar_file_end()
 * pads it to the next 512-byte block. kc_tar_finish() writes the two zero
 * blocks that end an archive. Entries are regular files (mode 0600) and
 * directories (mode 0700), owner 0, the archive's one mtime. Paths are
 * relative, at most 255 bytes, split into ustar's prefix and name fields.
 *
 * The parser reads one 512-byte header block: it checks the checksum, the
 * magic, the numeric fields and the path (relative, no ".." component), so
 * an extractor built on it cannot be made to write outside its directory.
 *
 * Not thread-safe: one writer per stream. After any error the writer is
 * failed and every later call returns KC_EINVAL; the stream written so far
 * is a truncated archive that the caller must discard.
 */
#ifndef KC_TAR_H
#define KC_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define KC_TAR_BLOCK    512
#define KC_TAR_PATH_MAX 255 /* longest path: 155-byte prefix + '/' + 99-byte name */
/* Largest file: what 11 octal digits hold (8 GiB - 1). */
#define KC_TAR_FILE_MAX 077777777777ULL

/*
 * Consume all len bytes (the writer never passes len 0) or fail with err
 * filled. The writer makes no assumption about what happens to them.
 */
typedef int (*kc_tar_write_fn)(void *arg, const void *data, size_t len, struct kc_error *err);

struct kc_tar {
    kc_tar_write_fn write; /* where bytes go */
    void *arg;             /* passed to write */
    int64_t mtime;         /* every entry's modification time (Unix seconds) */
    uint64_t offset;       /* bytes written so far */
    uint64_t remaining;    /* bytes the open file still expects */
    uint32_t pad;          /* zero bytes after the open file's data */
    bool in_file;          /* between kc_tar_file_begin and kc_tar_file_end */
    bool failed;           /* an error happened: the stream is unusable */
    bool finished;         /* kc_tar_finish ran */
};

/* kc_tar_init -- start an archive written through write(arg, ...). Cannot fail. */
void kc_tar_init(struct kc_tar *t, kc_tar_write_fn write, void *arg, int64_t mtime);

/* kc_tar_add_dir -- a directory entry (path without a trailing slash). */
int kc_tar_add_dir(struct kc_tar *t, const char *path, struct kc_error *err) KC_MUSTCHECK;

/* kc_tar_add_file -- a whole file of len bytes at data (borrowed). */
int kc_tar_add_file(struct kc_tar *t, const char *path, const void *data, size_t len,
                    struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_tar_file_begin -- announce a file of exactly size bytes; stream them
 * with kc_tar_file_write/kc_tar_file_zeros, then call kc_tar_file_end.
 * Writing more than size bytes, or ending early, is KC_EINVAL.
 */
int kc_tar_file_begin(struct kc_tar *t, const char *path, uint64_t size,
                      struct kc_error *err) KC_MUSTCHECK;
int kc_tar_file_write(struct kc_tar *t, const void *data, size_t len,
                      struct kc_error *err) KC_MUSTCHECK;
/* Append n zero bytes to the open file. */
int kc_tar_file_zeros(struct kc_tar *t, uint64_t n, struct kc_error *err) KC_MUSTCHECK;
int kc_tar_file_end(struct kc_tar *t, struct kc_error *err) KC_MUSTCHECK;

/* kc_tar_finish -- the end-of-archive marker (two zero blocks). No file may be open. */
int kc_tar_finish(struct kc_tar *t, struct kc_error *err) KC_MUSTCHECK;

/* One parsed header. */
struct kc_tar_header {
    char path[KC_TAR_PATH_MAX + 1]; /* prefix/name, NUL-terminated, trailing '/' removed */
    char type;                      /* '0' regular file, '5' directory, other ustar types */
    uint32_t mode;                  /* permission bits */
    uint64_t size;                  /* data bytes that follow (0 for directories) */
    int64_t mtime;                  /* modification time */
};

/*
 * kc_tar_parse_header -- parse the 512-byte block at block. Returns 1 with
 * *out filled, 0 for an all-zero block (the end-of-archive marker), or
 * KC_ECORRUPT naming the problem (checksum, magic, a numeric field, an
 * unsafe or unterminated path). The data follows in
 * ceil(size / 512) blocks.
 */
int kc_tar_parse_header(const uint8_t block[KC_TAR_BLOCK], struct kc_tar_header *out,
                        struct kc_error *err) KC_MUSTCHECK;

/* Bytes of data blocks (padded) that follow a header announcing size bytes. */
static inline uint64_t kc_tar_padded(uint64_t size)
{
    return (size + KC_TAR_BLOCK - 1) / KC_TAR_BLOCK * KC_TAR_BLOCK;
}

#endif
