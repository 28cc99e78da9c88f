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
    CLI_WAL_FILE_OPTIONS(struct debug_wal_settings, KC_CONFIG_REQUIRED),
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

/* Print a record and restore its images (which exercises decompression and hole filling). */
static int on_record(void *arg, struct ps_wal_decoder *dec, const struct ps_wal_record *rec,
                     struct kc_error *err)
{
    uint8_t *page = arg;

    print_record(rec);
    for (int i = 0; i < rec->nblocks; i++)
        if (rec->blocks[i].has_image && ps_wal_decoder_block_image(dec, i, page, err) != 0)
            return err->code;
    return 0;
}

static int cmd_debug_decode_wal(const struct cli_command *cmd, void *settings, int argc,
                                char **argv)
{
    struct debug_wal_settings *s = settings;
    struct cli_wal_source src = {
        .dir = s->wal_dir, .seg_size = (uint32_t)s->seg_size, .chunk = (size_t)s->chunk};
    uint8_t page[PS_WAL_PAGE_SIZE];
    struct kc_error err;
    long n;

    (void)argc, (void)argv;
    if (cli_parse_lsn_range(s->start, s->end, &src.start, &src.end, &err) != 0) {
        cli_report_error(cmd, &err);
        return CLI_EXIT_USAGE;
    }
    n = cli_decode_wal_files(&src, on_record, page, NULL, &err);
    if (n < 0) {
        cli_report_error(cmd, &err);
        return CLI_EXIT_FAIL;
    }
    fprintf(stderr, "decoded %ld records\n", n);
    return CLI_EXIT_OK;
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
