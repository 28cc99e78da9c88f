/* SPDX-License-Identifier: Apache-2.0 */
/*
 * debug_wal.c -- `kelp debug-decode-wal`: decode WAL files with the
 * pageserver's decoder and print one line per record.
 *
 * A debugging tool, and the driver of the decoder's integration test, which
 * compares its output with pg_waldump's. Input is fed in chunks of a chosen
 * size, exactly from the start LSN, as the pageserver receives WAL from a
 * stream that may begin mid-page.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/lsn.h"
#include "pageserver/wal_decoder.h"

struct debug_wal_settings {
    char *wal_dir;
    char *start;
    char *end;
    int64_t chunk;
    int64_t seg_size;
};

static const struct kc_config_entry debug_wal_options[] = {
    {.name = "chunk",
     .type = KC_CONFIG_SIZE,
     .offset = offsetof(struct debug_wal_settings, chunk),
     .default_value = "8kB",
     .min = 1,
     .max = 64 * 1024 * 1024,
     .help = "feed the decoder this many bytes at a time"},
    {.name = "end",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_wal_settings, end),
     .default_value = NULL,
     .help = "stop at this LSN (default: the end of the last segment file)",
     .metavar = "lsn"},
    {.name = "segment-size",
     .type = KC_CONFIG_SIZE,
     .offset = offsetof(struct debug_wal_settings, seg_size),
     .default_value = "16MB",
     .min = 1024 * 1024,
     .max = 1024 * 1024 * 1024,
     .help = "WAL segment size of the cluster"},
    {.name = "start",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_wal_settings, start),
     .default_value = NULL,
     .help = "LSN of the first record to decode",
     .metavar = "lsn",
     .flags = KC_CONFIG_REQUIRED},
    {.name = "wal-dir",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_wal_settings, wal_dir),
     .default_value = NULL,
     .help = "directory with the segment files (timeline 1), e.g. a cluster's pg_wal",
     .metavar = "dir",
     .flags = KC_CONFIG_REQUIRED},
};

static void print_record(const struct ps_wal_record *rec)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    printf("lsn=%s end=%s rmgr=%s info=0x%02X xid=%u len=%u main=%u blocks=%d",
           kc_lsn_format(rec->lsn, a), kc_lsn_format(rec->end_lsn, b), ps_wal_rmgr_name(rec->rmid),
           rec->info, rec->xid, rec->total_len, rec->main_data_len, rec->nblocks);
    for (int i = 0; i < rec->nblocks; i++) {
        const struct ps_wal_block_ref *r = &rec->blocks[i];
        printf(" [#%u %u/%u/%u fork=%u blk=%u%s%s%s]", r->block_id, r->spcnode, r->dbnode,
               r->relnode, r->forknum, r->blkno, r->has_image ? " image" : "",
               r->apply_image ? " apply" : "", r->will_init ? " init" : "");
    }
    putchar('\n');
}

/* Decode everything available; returns records printed or a negative error. */
static long drain(struct ps_wal_decoder *dec, kc_lsn end, uint8_t *page, struct kc_error *err)
{
    struct ps_wal_record rec;
    long count = 0;
    int rc;

    while ((rc = ps_wal_decoder_next(dec, &rec, err)) == 1) {
        if (end != 0 && rec.end_lsn > end)
            return count;
        print_record(&rec);
        /* Restoring every image exercises decompression and hole filling. */
        for (int i = 0; i < rec.nblocks; i++)
            if (rec.blocks[i].has_image && ps_wal_decoder_block_image(dec, i, page, err) != 0)
                return err->code;
        count++;
    }
    return rc < 0 ? rc : count;
}

static int cmd_debug_decode_wal(const struct cli_command *cmd, void *settings, int argc,
                                char **argv)
{
    struct debug_wal_settings *s = settings;
    struct ps_wal_decoder *dec = NULL;
    struct kc_error err;
    kc_lsn start, end = 0, pos;
    uint8_t *chunk = NULL, page[PS_WAL_PAGE_SIZE];
    long total = 0, n;
    int rc = CLI_EXIT_FAIL;

    (void)argc, (void)argv;
    if (kc_lsn_parse(s->start, &start, &err) != 0 ||
        (s->end != NULL && kc_lsn_parse(s->end, &end, &err) != 0)) {
        cli_report_error(cmd, &err);
        return CLI_EXIT_USAGE;
    }
    if (ps_wal_decoder_create(start, (uint32_t)s->seg_size, 0, &dec, &err) != 0)
        goto out;
    chunk = kc_malloc((size_t)s->chunk);
    for (pos = start; end == 0 || pos < end;) {
        ssize_t got = cli_read_wal_files(s->wal_dir, (uint32_t)s->seg_size, pos, chunk,
                                         (size_t)s->chunk, &err);
        if (got < 0)
            goto out;
        if (got == 0)
            break;
        if (ps_wal_decoder_feed(dec, pos, chunk, (size_t)got, &err) != 0)
            goto out;
        pos += (kc_lsn)got;
        n = drain(dec, end, page, &err);
        if (n < 0)
            goto out;
        total += n;
    }
    fprintf(stderr, "decoded %ld records\n", total);
    rc = CLI_EXIT_OK;
out:
    if (rc != CLI_EXIT_OK)
        cli_report_error(cmd, &err);
    free(chunk);
    ps_wal_decoder_destroy(dec);
    return rc;
}

const struct cli_command cli_cmd_debug_decode_wal = {
    .name = "debug-decode-wal",
    .group = "commands",
    .summary = "decode WAL files with the pageserver's decoder (debugging)",
    .description = "Reads WAL segment files from a directory, feeds them to the pageserver's\n"
                   "WAL decoder from --start in chunks of --chunk bytes, and prints one\n"
                   "line per record with its block references. Stops at --end, at the\n"
                   "first missing segment file, or at invalid WAL (reported as an error\n"
                   "when it is not simply the end of the written WAL).",
    .options = debug_wal_options,
    .noptions = KC_ARRAY_LEN(debug_wal_options),
    .settings_size = sizeof(struct debug_wal_settings),
    .run = cmd_debug_decode_wal,
};
