/* SPDX-License-Identifier: Apache-2.0 */
/*
 * commands.c -- the table of `kelp` commands, their help, and flag parsing
 * shared by all of them (through the settings table of src/common/config.h).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

/* Roles whose code has not landed yet: --help works, running says so. */
static int cli_role_not_built(const struct cli_command *cmd, void *settings, int argc, char **argv)
{
    (void)settings, (void)argc, (void)argv;
    fprintf(stderr, "kelp %s: this role is not part of this version of Kelp yet\n", cmd->name);
    return CLI_EXIT_FAIL;
}

#define CLI_ROLE(n, grp, sum, desc)                                                             \
    {                                                                                           \
        .name = n, .group = grp, .summary = sum, .description = desc, .run = cli_role_not_built \
    }

static const struct cli_command cli_roles[] = {
    CLI_ROLE("pageserver", "roles", "turn WAL into versioned pages; serve any page at any LSN",
             "Runs the pageserver: receives committed WAL from the safekeepers, stores it\n"
             "as layers of page images and WAL deltas (object storage is the source of\n"
             "truth, local disk a cache), reconstructs any page at any LSN with a\n"
             "PostgreSQL WAL-redo helper, and serves pages, relation sizes and\n"
             "basebackups to computes. Branches are timelines with a parent and an LSN."),
    CLI_ROLE("safekeeper", "roles", "store WAL durably under a 2-of-3 quorum",
             "Runs one safekeeper: an acceptor of a Paxos-style protocol with terms.\n"
             "It streams WAL from the elected compute, fsyncs before acknowledging,\n"
             "fences computes of older terms, and serves committed WAL to the pageserver."),
    CLI_ROLE("control", "roles", "the control plane: HTTP API for projects, branches, endpoints",
             "Runs the control plane: an HTTP+JSON API over SQLite metadata (projects,\n"
             "branches, endpoints, roles, databases, operations) and the supervisor that\n"
             "starts, suspends and wakes computes."),
    CLI_ROLE("proxy", "roles", "the Postgres front door that wakes sleeping endpoints",
             "Runs the proxy: accepts Postgres connections on one port, routes them to\n"
             "an endpoint (startup option endpoint=<id> or TLS SNI), authenticates with\n"
             "SCRAM, wakes a suspended endpoint and relays bytes both ways."),
    CLI_ROLE("compute", "roles", "start one stateless PostgreSQL compute at a branch's LSN",
             "Runs one compute: election on the safekeepers, basebackup from the\n"
             "pageserver at the elected LSN, then PostgreSQL 15.18 with the kelp\n"
             "extension in a scratch directory, reading pages from the pageserver."),
    CLI_ROLE("branch", "commands", "create, list and delete branches (O(1), no copy)",
             "Manages branches through the control plane: create from a parent at its\n"
             "head, an LSN or a timestamp (with a TTL or no_expiry), list, delete."),
};

const struct cli_command *const cli_commands[] = {
    &cli_cmd_up,
    &cli_cmd_down,
    &cli_cmd_status,
    &cli_roles[5],
    &cli_roles[0],
    &cli_roles[1],
    &cli_roles[2],
    &cli_roles[3],
    &cli_roles[4],
    &cli_cmd_debug_basebackup,
    &cli_cmd_debug_decode_wal,
    &cli_cmd_debug_ingest_wal,
    &cli_cmd_debug_receive_wal,
    &cli_cmd_debug_redo,
    &cli_cmd_debug_reconstruct,
    NULL,
};

const struct cli_command *cli_find(const char *name)
{
    for (size_t i = 0; cli_commands[i] != NULL; i++)
        if (strcmp(cli_commands[i]->name, name) == 0)
            return cli_commands[i];
    return NULL;
}

void cli_print_command_help(const struct cli_command *cmd)
{
    struct kc_sbuf out = KC_SBUF_INIT;

    kc_sbuf_printf(&out, "kelp %s -- %s\n\nusage: kelp %s [flags]%s%s\n\n%s\n\nflags:\n", cmd->name,
                   cmd->summary, cmd->name, cmd->args ? " " : "", cmd->args ? cmd->args : "",
                   cmd->description);
    kc_config_usage(cmd->options, cmd->noptions, &out);
    fputs(kc_sbuf_str(&out), stdout);
    kc_sbuf_fini(&out);
}

/* Print an error in the message/DETAIL/HINT shape, prefixed with the command. */
void cli_report_error(const struct cli_command *cmd, const struct kc_error *err)
{
    char buf[1200];

    kc_error_format(err, buf, sizeof(buf));
    fprintf(stderr, "kelp %s: %s\n", cmd->name, buf);
}

int cli_dispatch(const struct cli_command *cmd, int argc, char **argv)
{
    struct kc_error err;
    void *settings = kc_calloc(1, cmd->settings_size ? cmd->settings_size : 1);
    int nargs = 0, rc;

    rc = kc_config_load(cmd->options, cmd->noptions, settings, argc - 1, argv + 1,
                        cmd->args != NULL ? &nargs : NULL, &err);
    if (rc == KC_CONFIG_HELP) {
        cli_print_command_help(cmd);
        rc = CLI_EXIT_OK;
    } else if (rc != 0) {
        cli_report_error(cmd, &err);
        fprintf(stderr, "Run 'kelp %s --help' for usage.\n", cmd->name);
        rc = CLI_EXIT_USAGE;
    } else {
        rc = cmd->run(cmd, settings, nargs, argv + 1);
    }
    kc_config_free(cmd->options, cmd->noptions, settings);
    free(settings);
    return rc;
}
