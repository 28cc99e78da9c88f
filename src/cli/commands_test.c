/* SPDX-License-Identifier: Apache-2.0 */
/* commands_test.c -- every command's settings table is valid and its help is complete. */
#include "cli/cli.h"

#include "unit.h"

KT_TEST(cli_every_settings_table_is_valid)
{
    struct kc_error err;

    for (size_t i = 0; cli_commands[i] != NULL; i++) {
        const struct cli_command *c = cli_commands[i];
        if (kc_config_table_check(c->options, c->noptions, &err) != 0)
            kt_fail(__FILE__, __LINE__, "kelp %s: %s", c->name, err.message);
        KT_ASSERT(c->options == NULL || c->settings_size > 0);
    }
}

KT_TEST(cli_every_command_is_described_and_unique)
{
    for (size_t i = 0; cli_commands[i] != NULL; i++) {
        const struct cli_command *c = cli_commands[i];
        KT_ASSERT(c->summary != NULL && c->summary[0] != '\0');
        KT_ASSERT(c->description != NULL && c->description[0] != '\0');
        KT_ASSERT(c->run != NULL);
        KT_ASSERT(strcmp(c->group, "roles") == 0 || strcmp(c->group, "commands") == 0);
        KT_ASSERT(cli_find(c->name) == c);
    }
    KT_ASSERT(cli_find("no-such-command") == NULL);
}
