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

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/lsn.h"
#include "common/proc.h"

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

struct ps_wal_decoder;
struct ps_wal_record;

/* WAL segment files to decode, for the debug commands. */
struct cli_wal_source {
    const char *dir;     /* segment files of timeline 1 */
    uint32_t seg_size;   /* WAL segment size */
    kc_lsn start;        /* first record */
    kc_lsn end;          /* stop before records ending past it; 0: all there is */
    size_t chunk;        /* feed the decoder this many bytes at a time */
    bool corrupt_is_end; /* without end: invalid WAL ends the input, not an error */
};

/* Called for each record; non-zero stops decoding and is returned. */
typedef int (*cli_wal_record_fn)(void *arg, struct ps_wal_decoder *dec,
                                 const struct ps_wal_record *rec, struct kc_error *err);

/*
 * cli_decode_wal_files -- decode the records of src with the pageserver's
 * decoder, calling fn for each. Returns the number of records delivered, or
 * a negative error; *last_end (may be NULL) is the end of the last one.
 */
long cli_decode_wal_files(const struct cli_wal_source *src, cli_wal_record_fn fn, void *arg,
                          kc_lsn *last_end, struct kc_error *err);

/* The settings entries the WAL-file debug commands share, for a struct with
 * fields wal_dir, start, end (char *) and seg_size (int64_t). */
#define CLI_WAL_FILE_OPTIONS(stype, dir_flags)                                            \
    {.name = "end",                                                                       \
     .type = KC_CONFIG_STRING,                                                            \
     .offset = offsetof(stype, end),                                                      \
     .default_value = NULL,                                                               \
     .help = "stop before records ending past this LSN (default: all the WAL there is)",  \
     .metavar = "lsn"},                                                                   \
        {.name = "segment-size",                                                          \
         .type = KC_CONFIG_SIZE,                                                          \
         .offset = offsetof(stype, seg_size),                                             \
         .default_value = "16MB",                                                         \
         .min = 1024 * 1024,                                                              \
         .max = 1024 * 1024 * 1024,                                                       \
         .help = "WAL segment size of the cluster"},                                      \
        {.name = "start",                                                                 \
         .type = KC_CONFIG_STRING,                                                        \
         .offset = offsetof(stype, start),                                                \
         .default_value = NULL,                                                           \
         .help = "LSN of the first record",                                               \
         .metavar = "lsn",                                                                \
         .flags = KC_CONFIG_REQUIRED},                                                    \
    {                                                                                     \
        .name = "wal-dir", .type = KC_CONFIG_STRING, .offset = offsetof(stype, wal_dir),  \
        .default_value = NULL,                                                            \
        .help = "directory with the segment files (timeline 1), e.g. a cluster's pg_wal", \
        .metavar = "dir", .flags = (dir_flags)                                            \
    }

/* The settings entries of the debug commands that run a WAL-redo pool, for a
 * struct with fields pg_bindir, scratch and os_user (char *). */
#define CLI_WALREDO_POOL_OPTIONS(stype)                                                       \
    {.name = "os-user",                                                                       \
     .type = KC_CONFIG_STRING,                                                                \
     .offset = offsetof(stype, os_user),                                                      \
     .default_value = KC_DEFAULT_OS_USER,                                                     \
     .help = "unprivileged OS user the WAL-redo helpers run as when kelp runs as root",       \
     .metavar = "name"},                                                                      \
        {.name = "pg-bindir",                                                                 \
         .type = KC_CONFIG_STRING,                                                            \
         .offset = offsetof(stype, pg_bindir),                                                \
         .default_value = NULL,                                                               \
         .help = "bin directory of the patched PostgreSQL with the kelp extension installed", \
         .metavar = "dir",                                                                    \
         .flags = KC_CONFIG_REQUIRED},                                                        \
    {                                                                                         \
        .name = "scratch", .type = KC_CONFIG_STRING, .offset = offsetof(stype, scratch),      \
        .default_value = NULL,                                                                \
        .help = "directory for the WAL-redo helpers' scratch data directories and log",       \
        .metavar = "dir", .flags = KC_CONFIG_REQUIRED                                         \
    }

/* Parse --start and --end (end may be NULL: 0). Usage errors are reported by the caller. */
int cli_parse_lsn_range(const char *start, const char *end, kc_lsn *start_out, kc_lsn *end_out,
                        struct kc_error *err);

/* Commands implemented in other files of src/cli. */
extern const struct cli_command cli_cmd_up, cli_cmd_down, cli_cmd_status;
extern const struct cli_command cli_cmd_debug_receive_wal;
extern const struct cli_command cli_cmd_debug_decode_wal;
extern const struct cli_command cli_cmd_debug_basebackup;
extern const struct cli_command cli_cmd_debug_redo;
extern const struct cli_command cli_cmd_debug_ingest_wal;
extern const struct cli_command cli_cmd_debug_reconstruct;

#endif
