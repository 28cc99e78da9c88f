/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c -- the `kelp` executable: dispatches `kelp <command>` to a role
 * (pageserver, safekeeper, control, proxy, compute) or a user verb (up, ...).
 * The command table lives in src/cli/commands.c.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/failpoint.h"
#include "common/log.h"

#ifndef KELP_VERSION
#define KELP_VERSION "0.1.0-dev"
#endif

static void print_main_help(FILE *out)
{
    static const char *const groups[] = {"commands", "roles"};

    fprintf(out, "kelp -- serverless PostgreSQL with separated storage and compute\n\n"
                 "usage: kelp <command> [flags] [args]\n"
                 "       kelp <command> --help    what a command does and its flags\n"
                 "       kelp --version\n");
    for (size_t g = 0; g < KC_ARRAY_LEN(groups); g++) {
        fprintf(out, "\n%s:\n",
                strcmp(groups[g], "roles") == 0 ? "roles (long-running processes of a Kelp cluster)"
                                                : "commands");
        for (size_t i = 0; cli_commands[i] != NULL; i++)
            if (strcmp(cli_commands[i]->group, groups[g]) == 0)
                fprintf(out, "  %-12s %s\n", cli_commands[i]->name, cli_commands[i]->summary);
    }
    fprintf(out, "\nDocumentation: docs/ in the source tree (start with docs/architecture.md).\n");
}

int main(int argc, char **argv)
{
    const struct cli_command *cmd;
    struct kc_error err;

    kc_log_init("kelp");
    if (kc_failpoints_init_from_env(&err) != 0) {
        char buf[1200];
        kc_error_format(&err, buf, sizeof(buf));
        fprintf(stderr, "kelp: %s\n", buf);
        return CLI_EXIT_USAGE;
    }
    if (argc < 2) {
        print_main_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_main_help(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "help") == 0) {
        if (argc == 2) {
            print_main_help(stdout);
            return CLI_EXIT_OK;
        }
        cmd = cli_find(argv[2]);
        if (cmd == NULL) {
            fprintf(stderr, "kelp: unknown command \"%s\"\nRun 'kelp --help' for the list.\n",
                    argv[2]);
            return CLI_EXIT_USAGE;
        }
        cli_print_command_help(cmd);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("kelp %s (PostgreSQL 15.18)\n", KELP_VERSION);
        return CLI_EXIT_OK;
    }
    if (argv[1][0] == '-') {
        fprintf(stderr, "kelp: unknown flag \"%s\"\nRun 'kelp --help' for usage.\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    cmd = cli_find(argv[1]);
    if (cmd == NULL) {
        fprintf(stderr, "kelp: unknown command \"%s\"\nRun 'kelp --help' for the list.\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    return cli_dispatch(cmd, argc - 1, argv + 1);
}
