/* SPDX-License-Identifier: Apache-2.0 */
/* wal_files.c -- reading WAL by LSN from a directory of segment files (debug commands). */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/alloc.h"
#include "pageserver/wal_decoder.h"

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

long cli_decode_wal_files(const struct cli_wal_source *src, cli_wal_record_fn fn, void *arg,
                          kc_lsn *last_end, struct kc_error *err)
{
    struct ps_wal_decoder *dec = NULL;
    struct ps_wal_record rec;
    uint8_t *chunk = kc_malloc(src->chunk);
    long count = 0;
    kc_lsn pos;
    int rc;

    rc = ps_wal_decoder_create(src->start, src->seg_size, 0, &dec, err);
    pos = rc == 0 ? ps_wal_decoder_input_start(dec) : 0;
    while (rc == 0 && (src->end == 0 || pos < src->end)) {
        ssize_t got = cli_read_wal_files(src->dir, src->seg_size, pos, chunk, src->chunk, err);
        if (got <= 0) {
            rc = (int)got;
            break;
        }
        rc = ps_wal_decoder_feed(dec, pos, chunk, (size_t)got, err);
        pos += (kc_lsn)got;
        while (rc == 0 && (rc = ps_wal_decoder_next(dec, &rec, err)) == 1) {
            if (src->end != 0 && rec.end_lsn > src->end)
                goto done;
            rc = fn(arg, dec, &rec, err);
            if (rc != 0)
                goto done;
            count++;
            if (last_end != NULL)
                *last_end = rec.end_lsn;
        }
    }
done:
    if (rc == KC_ECORRUPT && src->end == 0 && src->corrupt_is_end) {
        fprintf(stderr, "stopped at the end of valid WAL: %s\n", err->message);
        rc = 0;
    }
    free(chunk);
    ps_wal_decoder_destroy(dec);
    return rc < 0 ? rc : count;
}

int cli_parse_lsn_range(const char *start, const char *end, kc_lsn *start_out, kc_lsn *end_out,
                        struct kc_error *err)
{
    int rc = kc_lsn_parse(start, start_out, err);

    *end_out = 0;
    if (rc == 0 && end != NULL)
        rc = kc_lsn_parse(end, end_out, err);
    return rc;
}
