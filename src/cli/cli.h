/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.h -- the `kelp` command table and the conventions every command follows.
 *
 * Exit codes: 0 success, 1 the command ran and failed, 2 usage error (unknown
 * command, unknown or malformed flag). `kelp <cmd> --help` prints the
 * command's help to stdout and exits 0.
 */
#ifndef CLI_H
#define CLI_H

#include <stddef.h>

#include <sys/types.h>

#include "common/config.h"
#include "common/lsn.h"

#define CLI_EXIT_OK    0
#define CLI_EXIT_FAIL  1
#define CLI_EXIT_USAGE 2

struct cli_command {
    const char *name;        /* "pageserver" */
    const char *group;       /* heading in `kelp --help`: "roles" or "commands" */
    const char *summary;     /* one line for `kelp --help` */
    const char *args;        /* positional arguments for the usage line, or NULL */
    const char *description; /* paragraph(s) for `kelp <cmd> --help` */
    /* The command's settings table (drives flags, config file and --help), or NULL. */
    const struct kc_config_entry *options;
    size_t noptions;
    size_t settings_size; /* size of the struct the table describes */
    /*
     * Run with parsed settings and the positional arguments left after the
     * flags. Returns an exit code.
     */
    int (*run)(const struct cli_command *cmd, void *settings, int argc, char **argv);
};

/* The table of commands, terminated by NULL. */
extern const struct cli_command *const cli_commands[];

const struct cli_command *cli_find(const char *name);
/* Print `kelp <cmd> --help` to stdout. */
void cli_print_command_help(const struct cli_command *cmd);
/* Print err as "kelp <cmd>: message" with DETAIL/HINT lines to stderr. */
void cli_report_error(const struct cli_command *cmd, const struct kc_error *err);
/* Parse flags for cmd and run it (argv[0] is the command name). */
int cli_dispatch(const struct cli_command *cmd, int argc, char **argv);

/*
 * cli_read_wal_files -- read up to len bytes of WAL at lsn from the segment
 * files (timeline 1) in dir, never past the end of lsn's segment. Returns
 * the bytes read, 0 when the segment file does not exist, or < 0.
 */
ssize_t cli_read_wal_files(const char *dir, uint32_t seg_size, kc_lsn lsn, uint8_t *buf, size_t len,
                           struct kc_error *err);

/* Commands implemented in other files of src/cli. */
extern const struct cli_command cli_cmd_up, cli_cmd_down, cli_cmd_status;
extern const struct cli_command cli_cmd_debug_receive_wal;
extern const struct cli_command cli_cmd_debug_decode_wal;
extern const struct cli_command cli_cmd_debug_basebackup;
extern const struct cli_command cli_cmd_debug_redo;
extern const struct cli_command cli_cmd_debug_ingest_wal;

#endif
