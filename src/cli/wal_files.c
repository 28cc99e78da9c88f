/* SPDX-License-Identifier: Apache-2.0 */
/* wal_files.c -- reading WAL by LSN from a directory of segment files (debug commands). */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

ssize_t cli_read_wal_files(const char *dir, uint32_t seg_size, kc_lsn lsn, uint8_t *buf, size_t len,
                           struct kc_error *err)
{
    char name[KC_WAL_FILE_NAME_LEN], path[4200];
    uint32_t off = kc_lsn_segoff(lsn, seg_size);
    size_t n = len < seg_size - off ? len : seg_size - off;
    ssize_t got;
    static char cached_path[4200];
    static int cached_fd = -1;

    kc_wal_file_name(name, 1, kc_lsn_segno(lsn, seg_size), seg_size);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    /* Keep the last segment open: tests read WAL a few bytes at a time. */
    if (cached_fd < 0 || strcmp(path, cached_path) != 0) {
        if (cached_fd >= 0)
            close(cached_fd);
        cached_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (cached_fd < 0) {
            if (errno == ENOENT)
                return 0;
            return kc_error_set(err, KC_EIO, "could not open \"%s\": %s", path, strerror(errno));
        }
        snprintf(cached_path, sizeof(cached_path), "%s", path);
    }
    got = pread(cached_fd, buf, n, off);
    if (got < 0)
        return kc_error_set(err, KC_EIO, "could not read \"%s\": %s", path, strerror(errno));
    return got;
}
