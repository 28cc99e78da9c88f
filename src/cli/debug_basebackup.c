/* SPDX-License-Identifier: Apache-2.0 */
/*
 * debug_basebackup.c -- `kelp debug-basebackup`: a basebackup tar made from
 * a stopped vanilla PostgreSQL data directory instead of the pageserver.
 *
 * A debugging tool and the driver of the basebackup's integration test
 * (tests/test_basebackup.py): the state reader of basebackup_datadir.h
 * presents the directory as the pageserver's keys at its shutdown
 * checkpoint, and --lsn moves the synthetic checkpoint record to another
 * position (the end of WAL, mid-page, across a page, a fresh segment) as
 * the pageserver would place it at a timeline's tip.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/lsn.h"
#include "pageserver/basebackup.h"
#include "pageserver/basebackup_datadir.h"

struct debug_basebackup_settings {
    char *datadir;
    char *out;
    char *lsn;
    char *prev_lsn;
    bool full;
    bool read_only;
};

static const struct kc_config_entry debug_basebackup_options[] = {
    {.name = "from-datadir",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_basebackup_settings, datadir),
     .default_value = NULL,
     .help = "a stopped PostgreSQL 15 data directory to read the state from",
     .metavar = "dir",
     .flags = KC_CONFIG_REQUIRED},
    {.name = "full",
     .type = KC_CONFIG_BOOL,
     .offset = offsetof(struct debug_basebackup_settings, full),
     .default_value = "false",
     .help = "fullbackup: include every relation file (a complete data directory)"},
    {.name = "lsn",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_basebackup_settings, lsn),
     .default_value = NULL,
     .help = "start LSN of the synthetic record, or \"end\" for the end of WAL (default: the "
             "shutdown checkpoint's own LSN)",
     .metavar = "lsn"},
    {.name = "out",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_basebackup_settings, out),
     .default_value = NULL,
     .help = "write the tar archive to this file",
     .metavar = "file",
     .flags = KC_CONFIG_REQUIRED},
    {.name = "prev-lsn",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct debug_basebackup_settings, prev_lsn),
     .default_value = NULL,
     .help = "xl_prev of the synthetic record (default: the shutdown checkpoint when the "
             "record goes after it, 0 when it replaces it)",
     .metavar = "lsn"},
    {.name = "read-only",
     .type = KC_CONFIG_BOOL,
     .offset = offsetof(struct debug_basebackup_settings, read_only),
     .default_value = "false",
     .help = "add standby.signal: the cluster starts as a read-only hot standby"},
};

static int write_file(void *arg, const void *data, size_t len, struct kc_error *err)
{
    if (fwrite(data, 1, len, (FILE *)arg) != len)
        return kc_error_set(err, KC_EIO, "could not write the archive: %s", strerror(errno));
    return 0;
}

/* The start and previous LSNs from the flags and what the directory says. */
static int plan_lsns(const struct debug_basebackup_settings *s,
                     const struct ps_bb_datadir_info *info, struct ps_bb_options *o,
                     struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    if (!info->has_control && (s->lsn == NULL || strcmp(s->lsn, "end") == 0)) {
        kc_error_set(err, KC_ENOTFOUND, "no valid control file in \"%s\"", s->datadir);
        kc_error_hint(err, "Give --lsn to make the basebackup report what is wrong with it.");
        return KC_ENOTFOUND;
    }
    if (s->lsn == NULL)
        o->lsn = info->checkpoint_lsn;
    else if (strcmp(s->lsn, "end") == 0)
        o->lsn = ps_bb_start_lsn(info->end_lsn, info->seg_size);
    else if (kc_lsn_parse(s->lsn, &o->lsn, err) != 0)
        return KC_EINVAL;
    if (info->has_control && o->lsn != info->checkpoint_lsn && o->lsn < info->end_lsn) {
        kc_error_set(err, KC_EINVAL, "start LSN %s is before the end of WAL %s",
                     kc_lsn_format(o->lsn, a), kc_lsn_format(info->end_lsn, b));
        kc_error_detail(err, "The data directory's state is that of its shutdown checkpoint.");
        kc_error_hint(err, "Use the checkpoint's LSN, \"end\", or a later LSN.");
        return KC_EINVAL;
    }
    if (s->prev_lsn != NULL)
        return kc_lsn_parse(s->prev_lsn, &o->prev_lsn, err);
    o->prev_lsn = o->lsn == info->checkpoint_lsn ? 0 : info->checkpoint_lsn;
    return 0;
}

static int cmd_debug_basebackup(const struct cli_command *cmd, void *settings, int argc,
                                char **argv)
{
    struct debug_basebackup_settings *s = settings;
    struct ps_bb_datadir *dd = NULL;
    struct ps_bb_datadir_info info;
    struct ps_bb_reader reader;
    struct ps_bb_options o;
    struct ps_bb_result res;
    struct kc_error err;
    FILE *f = NULL;
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN], c[KC_LSN_STRLEN];
    int rc = CLI_EXIT_FAIL;

    (void)argc, (void)argv;
    memset(&o, 0, sizeof(o));
    o.full = s->full;
    o.read_only = s->read_only;
    if (ps_bb_datadir_open(s->datadir, &dd, &err) != 0)
        goto out;
    ps_bb_datadir_info(dd, &info);
    if (plan_lsns(s, &info, &o, &err) != 0)
        goto out;
    ps_bb_datadir_reader(dd, &reader);
    f = fopen(s->out, "wb");
    if (f == NULL) {
        kc_error_set(&err, KC_EIO, "could not create \"%s\": %s", s->out, strerror(errno));
        goto out;
    }
    if (ps_basebackup_write(&reader, &o, write_file, f, &res, &err) != 0)
        goto out;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        kc_error_set(&err, KC_EIO, "could not write \"%s\": %s", s->out, strerror(errno));
        goto out;
    }
    printf("lsn=%s prev=%s record_end=%s next_xid=%llu next_oid=%u oid_margin=%d databases=%u "
           "slru_files=%u twophase=%u rel_files=%u wal_files=%u bytes=%llu\n",
           kc_lsn_format(o.lsn, a), kc_lsn_format(o.prev_lsn, b), kc_lsn_format(res.record_end, c),
           (unsigned long long)res.next_xid, res.next_oid, res.oid_margin, res.databases,
           res.slru_files, res.twophase, res.rel_files, res.wal_files,
           (unsigned long long)res.bytes);
    rc = CLI_EXIT_OK;
out:
    if (f != NULL && fclose(f) != 0 && rc == CLI_EXIT_OK) {
        kc_error_set(&err, KC_EIO, "could not close \"%s\": %s", s->out, strerror(errno));
        rc = CLI_EXIT_FAIL;
    }
    if (rc != CLI_EXIT_OK) {
        cli_report_error(cmd, &err);
        if (f != NULL)
            unlink(s->out); /* never leave a truncated archive behind */
    }
    ps_bb_datadir_close(dd);
    return rc;
}

const struct cli_command cli_cmd_debug_basebackup = {
    .name = "debug-basebackup",
    .group = "commands",
    .summary = "make a basebackup tar from a stopped data directory (debugging)",
    .description = "Reads a cleanly stopped PostgreSQL 15 data directory as the pageserver's\n"
                   "state at its shutdown checkpoint and writes the basebackup a compute would\n"
                   "get: configuration placeholders, relmapper files, SLRU segments, twophase\n"
                   "files, a WAL segment with a synthetic shutdown checkpoint record at --lsn,\n"
                   "and pg_control (last). With --full it also holds every relation file, so\n"
                   "vanilla PostgreSQL starts on it. Prints one summary line.",
    .options = debug_basebackup_options,
    .noptions = KC_ARRAY_LEN(debug_basebackup_options),
    .settings_size = sizeof(struct debug_basebackup_settings),
    .run = cmd_debug_basebackup,
};
