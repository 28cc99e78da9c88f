/* SPDX-License-Identifier: Apache-2.0 */
/* config_test.c -- unit tests for config.c. */
#include "common/config.h"

#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

/* A sample role covering every type and flag. */
enum kt_sync { KT_SYNC_FSYNC, KT_SYNC_FDATASYNC, KT_SYNC_NONE };

struct kt_settings {
    char *listen_addr;
    char *data_dir;
    char *auth_token;
    char *greeting;
    char *motd;
    bool fsync;
    bool verbose;
    int64_t port;
    int64_t offset;
    int sync_mode;
    int64_t timeout;
    int64_t poll;
    int64_t cache_size;
    int64_t debug_knob;
};

static const char *const kt_sync_choices[] = {"fsync", "fdatasync", "none", NULL};

#define KT_OFF(f) offsetof(struct kt_settings, f)
static const struct kc_config_entry kt_table[] = {
    {.name = "listen-addr",
     .type = KC_CONFIG_STRING,
     .offset = KT_OFF(listen_addr),
     .default_value = "127.0.0.1:6400",
     .help = "address to listen on for page requests",
     .metavar = "host:port"},
    {.name = "data-dir",
     .type = KC_CONFIG_STRING,
     .offset = KT_OFF(data_dir),
     .help = "directory holding the layer files",
     .metavar = "dir",
     .flags = KC_CONFIG_REQUIRED},
    {.name = "auth-token",
     .type = KC_CONFIG_STRING,
     .offset = KT_OFF(auth_token),
     .help = "token clients must present",
     .flags = KC_CONFIG_SECRET},
    {.name = "greeting",
     .type = KC_CONFIG_STRING,
     .offset = KT_OFF(greeting),
     .default_value = "hello world",
     .help = "greeting sent to clients"},
    {.name = "motd",
     .type = KC_CONFIG_STRING,
     .offset = KT_OFF(motd),
     .help = "message of the day; a long help text that has to be wrapped over more than one "
             "line of the help output so that the wrapping code is exercised"},
    {.name = "fsync",
     .type = KC_CONFIG_BOOL,
     .offset = KT_OFF(fsync),
     .default_value = "on",
     .help = "flush data files to disk"},
    {.name = "verbose",
     .type = KC_CONFIG_BOOL,
     .offset = KT_OFF(verbose),
     .default_value = "false",
     .help = "log more"},
    {.name = "port",
     .type = KC_CONFIG_INT,
     .offset = KT_OFF(port),
     .default_value = "6400",
     .min = 1,
     .max = 65535,
     .help = "TCP port"},
    {.name = "offset",
     .type = KC_CONFIG_INT,
     .offset = KT_OFF(offset),
     .default_value = "-5",
     .help = "a signed integer without bounds"},
    {.name = "sync-mode",
     .type = KC_CONFIG_CHOICE,
     .offset = KT_OFF(sync_mode),
     .default_value = "fsync",
     .choices = kt_sync_choices,
     .help = "how WAL is made durable"},
    {.name = "timeout",
     .type = KC_CONFIG_DURATION,
     .offset = KT_OFF(timeout),
     .default_value = "30s",
     .min = 1000,
     .max = 3600 * 1000,
     .help = "how long to wait for a peer"},
    {.name = "poll-interval",
     .type = KC_CONFIG_DURATION,
     .offset = KT_OFF(poll),
     .default_value = "250",
     .help = "pause between polls",
     .flags = KC_CONFIG_MS},
    {.name = "cache-size",
     .type = KC_CONFIG_SIZE,
     .offset = KT_OFF(cache_size),
     .default_value = "64MB",
     .min = 8192,
     .max = (int64_t)1 << 40,
     .help = "memory for cached pages"},
    {.name = "debug-knob",
     .type = KC_CONFIG_INT,
     .offset = KT_OFF(debug_knob),
     .default_value = "0",
     .help = "internal",
     .flags = KC_CONFIG_HIDDEN},
};
#define KT_N KC_ARRAY_LEN(kt_table)

/* The error rendered as "message\nDETAIL: ...\nHINT: ..." (static buffer). */
static const char *kt_err(const struct kc_error *err)
{
    static char buf[2048];
    kc_error_format(err, buf, sizeof(buf));
    return buf;
}

/* Defaults, then text; returns the parser's result; *s must be freed. */
static int kt_parse(struct kt_settings *s, const char *text, struct kc_error *err)
{
    memset(s, 0, sizeof(*s));
    KT_ASSERT_EQ(kc_config_defaults(kt_table, KT_N, s, NULL), 0);
    return kc_config_parse_text(kt_table, KT_N, s, text, strlen(text), "kelp.conf", err);
}

/* Expect text to fail; return the rendered error. */
static const char *kt_parse_fail(const char *text)
{
    struct kt_settings s;
    struct kc_error err;
    int rc = kt_parse(&s, text, &err);
    kc_config_free(kt_table, KT_N, &s);
    KT_ASSERT(rc < 0);
    return kt_err(&err);
}

static void kt_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    KT_ASSERT(f != NULL);
    KT_ASSERT_EQ(fwrite(text, 1, strlen(text), f), strlen(text));
    KT_ASSERT_EQ(fclose(f), 0);
}

KT_TEST(config_table_check_accepts_sample)
{
    struct kc_error err;
    int rc = kc_config_table_check(kt_table, KT_N, &err);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "%s", kt_err(&err));
}

/* table_check on one modified copy of kt_table[idx]; returns the error text. */
static const char *kt_check_entry(size_t idx, struct kc_config_entry e)
{
    struct kc_config_entry t[KT_N];
    struct kc_error err;
    memcpy(t, kt_table, sizeof(t));
    t[idx] = e;
    KT_ASSERT_EQ(kc_config_table_check(t, KT_N, &err), KC_EINVAL);
    return kt_err(&err);
}

KT_TEST(config_table_check_rejects_bad_tables)
{
    struct kc_config_entry e;
    static const char *const dup[] = {"a", "A", NULL};

    e = kt_table[7]; /* port */
    e.default_value = "70000";
    KT_ASSERT_STR_EQ(kt_check_entry(7, e),
                     "invalid value for the default of setting \"port\": \"70000\"\n"
                     "DETAIL: Expected an integer between 1 and 65535.");
    e = kt_table[9]; /* sync-mode */
    e.default_value = "sometimes";
    KT_ASSERT_CONTAINS(kt_check_entry(9, e), "DETAIL: Expected one of: fsync, fdatasync, none.");
    e.choices = dup;
    e.default_value = "a";
    KT_ASSERT_CONTAINS(kt_check_entry(9, e), "lists choice \"A\" twice");
    e = kt_table[10]; /* timeout */
    e.default_value = "2h";
    KT_ASSERT_CONTAINS(kt_check_entry(10, e), "DETAIL: Expected a duration such as 250ms, 5s, "
                                              "2min, 1h or 7d (a number without a unit is in "
                                              "seconds) between 1s and 1h.");
    e.min = 5000;
    e.max = 1000;
    KT_ASSERT_CONTAINS(kt_check_entry(10, e), "setting \"timeout\" has an invalid range");
    e = kt_table[7];
    e.name = "listen-addr";
    KT_ASSERT_CONTAINS(kt_check_entry(7, e), "setting \"listen-addr\" is listed twice");
    e.name = "Port";
    KT_ASSERT_CONTAINS(kt_check_entry(7, e), "invalid setting name \"Port\"");
    e.name = "listen_addr";
    KT_ASSERT_CONTAINS(kt_check_entry(7, e), "invalid setting name");
    e.name = "no-port";
    KT_ASSERT_CONTAINS(kt_check_entry(7, e), "setting name \"no-port\" is reserved");
    e.name = "config";
    KT_ASSERT_CONTAINS(kt_check_entry(7, e), "is reserved");
    e = kt_table[7];
    e.default_value = NULL;
    KT_ASSERT_CONTAINS(kt_check_entry(7, e), "setting \"port\" has no default");
    e.help = NULL;
    KT_ASSERT_CONTAINS(kt_check_entry(7, e), "has no help text");
    e = kt_table[1]; /* data-dir is required */
    e.default_value = "/x";
    KT_ASSERT_CONTAINS(kt_check_entry(1, e), "required setting \"data-dir\" has a default");
    e = kt_table[7];
    e.flags = KC_CONFIG_MS;
    KT_ASSERT_CONTAINS(kt_check_entry(7, e), "has invalid flags");
}

KT_TEST(config_defaults_applied)
{
    struct kt_settings s;

    memset(&s, 0xa5, sizeof(s)); /* defaults must not read the old contents */
    KT_ASSERT_EQ(kc_config_defaults(kt_table, KT_N, &s, NULL), 0);
    KT_ASSERT_STR_EQ(s.listen_addr, "127.0.0.1:6400");
    KT_ASSERT(s.data_dir == NULL);
    KT_ASSERT(s.auth_token == NULL);
    KT_ASSERT_STR_EQ(s.greeting, "hello world");
    KT_ASSERT(s.fsync);
    KT_ASSERT(!s.verbose);
    KT_ASSERT_EQ(s.port, 6400);
    KT_ASSERT_EQ(s.offset, -5);
    KT_ASSERT_EQ(s.sync_mode, KT_SYNC_FSYNC);
    KT_ASSERT_EQ(s.timeout, 30000);
    KT_ASSERT_EQ(s.poll, 250);
    KT_ASSERT_EQ(s.cache_size, 64 << 20);
    kc_config_free(kt_table, KT_N, &s);
    KT_ASSERT(s.listen_addr == NULL);
    kc_config_free(kt_table, KT_N, &s); /* twice is fine */
}

KT_TEST(config_file_syntax)
{
    struct kt_settings s;
    struct kc_error err;
    const char *text = "\xEF\xBB\xBF# full-line comment\n"
                       "\n"
                       "   \t\n"
                       "  listen_addr=0.0.0.0:7000   # trailing comment\r\n"
                       "data-dir = /var/lib/kelp\n"
                       "greeting = \"  spaced # not a comment \\\"quoted\\\" \\\\ \"  # c\n"
                       "auth_token = abc#def\n"
                       "motd =\n"
                       "FSYNC = off\n"
                       "verbose\t=\tYes\n"
                       "port = 7000\n"
                       "offset = -9223372036854775808\n"
                       "sync_mode = FDATASYNC\n"
                       "timeout = 1.5min\n"
                       "poll-interval = 2s\n"
                       "cache-size = 1 GB"; /* no final newline */

    if (kt_parse(&s, text, &err) != 0)
        kt_fail(__FILE__, __LINE__, "%s", kt_err(&err));
    KT_ASSERT_STR_EQ(s.listen_addr, "0.0.0.0:7000");
    KT_ASSERT_STR_EQ(s.data_dir, "/var/lib/kelp");
    KT_ASSERT_STR_EQ(s.greeting, "  spaced # not a comment \"quoted\" \\ ");
    KT_ASSERT_STR_EQ(s.auth_token, "abc#def"); /* '#' not after whitespace is text */
    KT_ASSERT_STR_EQ(s.motd, "");
    KT_ASSERT(!s.fsync);
    KT_ASSERT(s.verbose);
    KT_ASSERT_EQ(s.port, 7000);
    KT_ASSERT(s.offset == INT64_MIN);
    KT_ASSERT_EQ(s.sync_mode, KT_SYNC_FDATASYNC);
    KT_ASSERT_EQ(s.timeout, 90000);
    KT_ASSERT_EQ(s.poll, 2000);
    KT_ASSERT_EQ(s.cache_size, 1 << 30);
    kc_config_free(kt_table, KT_N, &s);

    /* An empty file and a file of comments change nothing. */
    KT_ASSERT_EQ(kt_parse(&s, "", NULL), 0);
    kc_config_free(kt_table, KT_N, &s);
    KT_ASSERT_EQ(kt_parse(&s, "# only\n#comments\n", NULL), 0);
    KT_ASSERT_EQ(s.port, 6400);
    kc_config_free(kt_table, KT_N, &s);
}

KT_TEST(config_file_errors)
{
    KT_ASSERT_STR_EQ(kt_parse_fail("port = 1\nlisen-addr = x\n"),
                     "kelp.conf:2: unknown setting \"lisen-addr\"\n"
                     "HINT: Did you mean \"listen-addr\"?");
    KT_ASSERT_STR_EQ(kt_parse_fail("\n\nbogus_thing = 1\n"),
                     "kelp.conf:3: unknown setting \"bogus_thing\"");
    KT_ASSERT_STR_EQ(kt_parse_fail("port 5432\n"),
                     "kelp.conf:1: missing \"=\" after \"port\"\n"
                     "DETAIL: Each line must have the form \"name = value\".");
    KT_ASSERT_STR_EQ(kt_parse_fail("# x\n = 5\n"),
                     "kelp.conf:2: missing setting name before \"=\"\n"
                     "DETAIL: Each line must have the form \"name = value\".");
    KT_ASSERT_STR_EQ(kt_parse_fail("port = 70000\n"),
                     "kelp.conf:1: invalid value for setting \"port\": \"70000\"\n"
                     "DETAIL: Expected an integer between 1 and 65535.");
    KT_ASSERT_STR_EQ(kt_parse_fail("port = 12abc\n"),
                     "kelp.conf:1: invalid value for setting \"port\": \"12abc\"\n"
                     "DETAIL: Expected an integer between 1 and 65535.");
    KT_ASSERT_STR_EQ(kt_parse_fail("offset = 9223372036854775808\n"),
                     "kelp.conf:1: invalid value for setting \"offset\": "
                     "\"9223372036854775808\"\nDETAIL: Expected an integer.");
    KT_ASSERT_STR_EQ(kt_parse_fail("offset = 92233720368547758080\n"),
                     "kelp.conf:1: invalid value for setting \"offset\": "
                     "\"92233720368547758080\"\nDETAIL: Expected an integer.");
    KT_ASSERT_STR_EQ(kt_parse_fail("offset = -9223372036854775809\n"),
                     "kelp.conf:1: invalid value for setting \"offset\": "
                     "\"-9223372036854775809\"\nDETAIL: Expected an integer.");
    KT_ASSERT_STR_EQ(kt_parse_fail("fsync = maybe\n"),
                     "kelp.conf:1: invalid value for setting \"fsync\": \"maybe\"\n"
                     "DETAIL: Expected a boolean: true, false, on, off, yes, no, 1 or 0.");
    KT_ASSERT_STR_EQ(kt_parse_fail("sync-mode = sometimes\n"),
                     "kelp.conf:1: invalid value for setting \"sync-mode\": \"sometimes\"\n"
                     "DETAIL: Expected one of: fsync, fdatasync, none.");
    KT_ASSERT_STR_EQ(kt_parse_fail("timeout = 5 parsecs\n"),
                     "kelp.conf:1: invalid value for setting \"timeout\": \"5 parsecs\"\n"
                     "DETAIL: Expected a duration such as 250ms, 5s, 2min, 1h or 7d (a number "
                     "without a unit is in seconds) between 1s and 1h.");
    KT_ASSERT_STR_EQ(kt_parse_fail("poll-interval = -1\n"),
                     "kelp.conf:1: invalid value for setting \"poll-interval\": \"-1\"\n"
                     "DETAIL: Expected a duration such as 250ms, 5s, 2min, 1h or 7d (a number "
                     "without a unit is in milliseconds).");
    KT_ASSERT_STR_EQ(kt_parse_fail("cache-size = 2TB\n"),
                     "kelp.conf:1: invalid value for setting \"cache-size\": \"2TB\"\n"
                     "DETAIL: Expected a size such as 8192, 64kB, 16MB or 1GB (a number without "
                     "a unit is in bytes) between 8kB and 1TB.");
    KT_ASSERT_STR_EQ(kt_parse_fail("port = 1\n# again\nport = 2\n"),
                     "kelp.conf:3: setting \"port\" is given more than once\n"
                     "DETAIL: It was first set on line 1.\nHINT: Remove one of the lines.");
    KT_ASSERT_STR_EQ(kt_parse_fail("listen_addr = a\nlisten-addr = b\n"),
                     "kelp.conf:2: setting \"listen-addr\" is given more than once\n"
                     "DETAIL: It was first set on line 1.\nHINT: Remove one of the lines.");
    KT_ASSERT_STR_EQ(kt_parse_fail("greeting = \"open\n"),
                     "kelp.conf:1: unterminated quoted value for setting \"greeting\"\n"
                     "HINT: Close the value with a double quote (\").");
    KT_ASSERT_STR_EQ(kt_parse_fail("greeting = \"ends in escape\\\"\n"),
                     "kelp.conf:1: unterminated quoted value for setting \"greeting\"\n"
                     "HINT: Close the value with a double quote (\").");
    KT_ASSERT_STR_EQ(kt_parse_fail("greeting = \"a\\nb\"\n"),
                     "kelp.conf:1: invalid escape \"\\n\" in quoted value for setting "
                     "\"greeting\"\nDETAIL: Inside quotes only \\\" and \\\\ are escapes.");
    KT_ASSERT_CONTAINS(kt_parse_fail("greeting = \"a\" b\n"),
                       "kelp.conf:1: unexpected text after quoted value for setting \"greeting\"");
    /* A value's control characters are not echoed raw. */
    KT_ASSERT_CONTAINS(kt_parse_fail("greeting = a\x01z\n"),
                       "invalid value for setting \"greeting\": \"a?z\"\n"
                       "DETAIL: Expected text without control characters.");
}

KT_TEST(config_file_nul_and_long_lines)
{
    static char text[KC_CONFIG_MAX_LINE + 64];
    struct kt_settings s;
    struct kc_error err;
    const char nul[] = "port = 1\nverbose = \0yes\n";

    KT_ASSERT_EQ(kt_parse(&s, "x", NULL), KC_EINVAL); /* harness sanity */
    kc_config_free(kt_table, KT_N, &s);
    memset(&s, 0, sizeof(s));
    KT_ASSERT_EQ(kc_config_defaults(kt_table, KT_N, &s, NULL), 0);
    KT_ASSERT_EQ(kc_config_parse_text(kt_table, KT_N, &s, nul, sizeof(nul) - 1, "f", &err),
                 KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "f:2: line contains a NUL byte");

    /* Exactly the limit is fine; one byte more is not. */
    snprintf(text, sizeof(text), "motd = ");
    memset(text + 7, 'x', KC_CONFIG_MAX_LINE - 7);
    text[KC_CONFIG_MAX_LINE] = '\0';
    KT_ASSERT_EQ(kc_config_parse_text(kt_table, KT_N, &s, text, strlen(text), "f", &err), 0);
    KT_ASSERT_EQ(strlen(s.motd), KC_CONFIG_MAX_LINE - 7);
    text[KC_CONFIG_MAX_LINE] = 'x';
    text[KC_CONFIG_MAX_LINE + 1] = '\n';
    KT_ASSERT_EQ(kc_config_parse_text(kt_table, KT_N, &s, text, KC_CONFIG_MAX_LINE + 2, "f", &err),
                 KC_EINVAL);
    KT_ASSERT_STR_EQ(kt_err(&err), "f:1: line is too long\nDETAIL: Lines are limited to 4096 "
                                   "bytes.");
    kc_config_free(kt_table, KT_N, &s);
}

KT_TEST(config_parse_file_io)
{
    char path[4200], big[4400];
    struct kt_settings s;
    struct kc_error err;
    FILE *f;

    memset(&s, 0, sizeof(s));
    KT_ASSERT_EQ(kc_config_defaults(kt_table, KT_N, &s, NULL), 0);
    snprintf(path, sizeof(path), "%s/missing.conf", kt_tmpdir());
    KT_ASSERT_EQ(kc_config_parse_file(kt_table, KT_N, &s, path, &err), KC_ENOTFOUND);
    KT_ASSERT_CONTAINS(err.message, "could not open configuration file \"");
    KT_ASSERT_CONTAINS(err.message, "missing.conf\": No such file or directory");

    snprintf(path, sizeof(path), "%s/ok.conf", kt_tmpdir());
    kt_write(path, "port = 5433\nbogus = 1\n");
    KT_ASSERT_EQ(kc_config_parse_file(kt_table, KT_N, &s, path, &err), KC_EINVAL);
    snprintf(big, sizeof(big), "%s:2: unknown setting \"bogus\"", path);
    KT_ASSERT_STR_EQ(err.message, big);
    KT_ASSERT_EQ(s.port, 5433);

    snprintf(path, sizeof(path), "%s/big.conf", kt_tmpdir());
    f = fopen(path, "w");
    KT_ASSERT(f != NULL);
    for (int i = 0; i < KC_CONFIG_MAX_FILE / 64 + 1; i++)
        fprintf(f, "# %61d\n", i);
    KT_ASSERT_EQ(fclose(f), 0);
    KT_ASSERT_EQ(kc_config_parse_file(kt_table, KT_N, &s, path, &err), KC_ETOOBIG);
    KT_ASSERT_CONTAINS(err.message, "big.conf\" is too large");
    kc_config_free(kt_table, KT_N, &s);
}

/* kc_config_load over a NULL-terminated list of arguments. */
static int kt_load(struct kt_settings *s, char **argv, int *nargs, struct kc_error *err)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    memset(s, 0, sizeof(*s));
    return kc_config_load(kt_table, KT_N, s, argc, argv, nargs, err);
}

KT_TEST(config_flags_forms)
{
    struct kt_settings s;
    struct kc_error err;
    char *argv[] = {"--data-dir=/d",
                    "--no-fsync",
                    "--verbose",
                    "--port",
                    "7001",
                    "--listen_addr",
                    "[::]:1",
                    "--sync-mode=NONE",
                    "--timeout=2min",
                    "--cache-size",
                    "8kB",
                    "--greeting=",
                    "--offset",
                    "-3",
                    NULL};
    char *argv2[] = {"--data-dir",   "x",        "--fsync=no", "--verbose=true",
                     "--no-verbose", "--port=1", "--port=2",   NULL};

    KT_ASSERT_EQ(kt_load(&s, argv, NULL, &err), 0);
    KT_ASSERT_STR_EQ(s.data_dir, "/d");
    KT_ASSERT(!s.fsync);
    KT_ASSERT(s.verbose);
    KT_ASSERT_EQ(s.port, 7001);
    KT_ASSERT_STR_EQ(s.listen_addr, "[::]:1");
    KT_ASSERT_EQ(s.sync_mode, KT_SYNC_NONE);
    KT_ASSERT_EQ(s.timeout, 120000);
    KT_ASSERT_EQ(s.cache_size, 8192);
    KT_ASSERT_STR_EQ(s.greeting, "");
    KT_ASSERT_EQ(s.offset, -3); /* "-3" is a value, not a flag */
    kc_config_free(kt_table, KT_N, &s);

    KT_ASSERT_EQ(kt_load(&s, argv2, NULL, &err), 0);
    KT_ASSERT(!s.fsync);
    KT_ASSERT(!s.verbose); /* the last flag wins */
    KT_ASSERT_EQ(s.port, 2);
    kc_config_free(kt_table, KT_N, &s);
}

/* Expect kc_config_load to fail on argv; return the rendered error. */
static const char *kt_load_fail(char **argv)
{
    struct kt_settings s;
    struct kc_error err;
    int nargs, rc = kt_load(&s, argv, &nargs, &err);
    kc_config_free(kt_table, KT_N, &s);
    KT_ASSERT(rc < 0);
    return kt_err(&err);
}

KT_TEST(config_flags_errors)
{
    char *a1[] = {"--data-dir=x", "--prot=1", NULL};
    char *a2[] = {"--data-dir=x", "--frobnicate", NULL};
    char *a3[] = {"--data-dir=x", "--port", NULL};
    char *a4[] = {"--port", "--verbose", "--data-dir=x", NULL};
    char *a5[] = {"--no-port", NULL};
    char *a6[] = {"--no-fsync=1", NULL};
    char *a7[] = {"-p", NULL};
    char *a8[] = {"-port=1", NULL};
    char *a9[] = {"--data-dir=x", "--port=0", NULL};
    char *a10[] = {"--port=5", NULL};
    char *a11[] = {"--confg=x", NULL};
    char *a12[] = {"--config", NULL};

    KT_ASSERT_STR_EQ(kt_load_fail(a1),
                     "unknown option \"--prot=1\"\nHINT: Did you mean \"--port\"?");
    KT_ASSERT_STR_EQ(kt_load_fail(a2), "unknown option \"--frobnicate\"\n"
                                       "HINT: Run with --help to list the options.");
    KT_ASSERT_STR_EQ(kt_load_fail(a3), "option \"--port\" requires a value\n"
                                       "HINT: Give it as --port=<value> or --port <value>.");
    KT_ASSERT_CONTAINS(kt_load_fail(a4), "option \"--port\" requires a value");
    KT_ASSERT_STR_EQ(kt_load_fail(a5),
                     "unknown option \"--no-port\"\n"
                     "HINT: Only boolean options have a \"--no-\" form; use --port=<value>.");
    KT_ASSERT_STR_EQ(kt_load_fail(a6), "option \"--no-fsync\" does not take a value\n"
                                       "HINT: Use --no-fsync alone, or --fsync=<true|false>.");
    KT_ASSERT_STR_EQ(kt_load_fail(a7), "unknown option \"-p\"\n"
                                       "HINT: Run with --help to list the options.");
    KT_ASSERT_STR_EQ(kt_load_fail(a8),
                     "unknown option \"-port=1\"\nHINT: Did you mean \"--port=1\"?");
    KT_ASSERT_STR_EQ(kt_load_fail(a9), "invalid value for option \"--port\": \"0\"\n"
                                       "DETAIL: Expected an integer between 1 and 65535.");
    KT_ASSERT_STR_EQ(kt_load_fail(a10),
                     "required setting \"data-dir\" is not set\n"
                     "HINT: Give --data-dir=<dir>, or set \"data-dir\" in the file named by "
                     "--config.");
    KT_ASSERT_STR_EQ(kt_load_fail(a11),
                     "unknown option \"--confg=x\"\nHINT: Did you mean \"--config\"?");
    KT_ASSERT_CONTAINS(kt_load_fail(a12), "option \"--config\" requires a value");
}

KT_TEST(config_precedence_file_then_flags)
{
    char path[4200], other[4200];
    struct kt_settings s;
    struct kc_error err;

    snprintf(path, sizeof(path), "%s/role.conf", kt_tmpdir());
    kt_write(path, "data-dir = /from/file\nport = 1111\ntimeout = 10s\nverbose = yes\n");
    {
        /* The flag wins although --config comes after it. */
        char *argv[] = {"--port=2222", "--config", path, "--no-verbose", NULL};
        KT_ASSERT_EQ(kt_load(&s, argv, NULL, &err), 0);
        KT_ASSERT_EQ(s.port, 2222);
        KT_ASSERT_STR_EQ(s.data_dir, "/from/file");
        KT_ASSERT_EQ(s.timeout, 10000);
        KT_ASSERT(!s.verbose);
        KT_ASSERT_EQ(s.cache_size, 64 << 20); /* default */
        kc_config_free(kt_table, KT_N, &s);
    }
    {
        char arg[4300];
        char *argv[] = {arg, "--data-dir=/from/flag", NULL};
        snprintf(arg, sizeof(arg), "--config=%s", path);
        KT_ASSERT_EQ(kt_load(&s, argv, NULL, &err), 0);
        KT_ASSERT_STR_EQ(s.data_dir, "/from/flag");
        KT_ASSERT_EQ(s.port, 1111);
        kc_config_free(kt_table, KT_N, &s);
    }
    {
        char *argv[] = {"--config", path, "--config", path, NULL};
        KT_ASSERT_STR_EQ(kt_load_fail(argv), "option \"--config\" is given more than once\n"
                                             "HINT: Give a single configuration file.");
    }
    snprintf(other, sizeof(other), "%s/bad.conf", kt_tmpdir());
    kt_write(other, "data-dir = /x\n\nport = many\n");
    {
        char *argv[] = {"--config", other, NULL};
        char want[4400];
        snprintf(want, sizeof(want), "%s:3: invalid value for setting \"port\": \"many\"", other);
        KT_ASSERT_CONTAINS(kt_load_fail(argv), want);
    }
}

KT_TEST(config_positionals_and_double_dash)
{
    struct kt_settings s;
    struct kc_error err;
    int nargs = -1;
    char *argv[] = {"create", "--data-dir=/d", "main", "-", "--", "--port=9", "-x", NULL};
    char *argv2[] = {"--data-dir=/d", "stray", NULL};

    KT_ASSERT_EQ(kt_load(&s, argv, &nargs, &err), 0);
    KT_ASSERT_EQ(nargs, 5);
    KT_ASSERT_STR_EQ(argv[0], "create");
    KT_ASSERT_STR_EQ(argv[1], "main");
    KT_ASSERT_STR_EQ(argv[2], "-");
    KT_ASSERT_STR_EQ(argv[3], "--port=9");
    KT_ASSERT_STR_EQ(argv[4], "-x");
    KT_ASSERT_EQ(s.port, 6400); /* after "--" it was not a flag */
    kc_config_free(kt_table, KT_N, &s);

    KT_ASSERT_EQ(kt_load(&s, argv2, NULL, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(kt_err(&err), "unexpected argument \"stray\"\n"
                                   "HINT: This command takes no arguments; options start with "
                                   "\"--\".");
    kc_config_free(kt_table, KT_N, &s);

    /* No arguments at all: defaults, but the required setting is missing. */
    KT_ASSERT_EQ(kc_config_load(kt_table, KT_N, &s, 0, NULL, &nargs, &err), KC_EINVAL);
    KT_ASSERT_EQ(nargs, 0);
    kc_config_free(kt_table, KT_N, &s);
}

KT_TEST(config_help_reported)
{
    struct kt_settings s;
    struct kc_error err;
    char *a1[] = {"--port=1", "--help", "--bogus", NULL};
    char *a2[] = {"pos", "-h", NULL};
    char *a3[] = {"--", "--help", NULL};
    int nargs;

    KT_ASSERT_EQ(kt_load(&s, a1, NULL, &err), KC_CONFIG_HELP);
    KT_ASSERT_EQ(s.port, 6400); /* only defaults */
    kc_config_free(kt_table, KT_N, &s);
    KT_ASSERT_EQ(kt_load(&s, a2, &nargs, &err), KC_CONFIG_HELP);
    kc_config_free(kt_table, KT_N, &s);
    /* After "--", "--help" is an argument; data-dir is then missing. */
    KT_ASSERT_EQ(kt_load(&s, a3, &nargs, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "required setting \"data-dir\"");
    kc_config_free(kt_table, KT_N, &s);
}

KT_TEST(config_set_by_name)
{
    struct kt_settings s;
    struct kc_error err;

    memset(&s, 0, sizeof(s));
    KT_ASSERT_EQ(kc_config_defaults(kt_table, KT_N, &s, NULL), 0);
    KT_ASSERT_EQ(kc_config_set(kt_table, KT_N, &s, "Listen_Addr", "x:1", &err), 0);
    KT_ASSERT_STR_EQ(s.listen_addr, "x:1");
    KT_ASSERT_EQ(kc_config_set(kt_table, KT_N, &s, "cache-sise", "1MB", &err), KC_ENOTFOUND);
    KT_ASSERT_STR_EQ(kt_err(&err), "unknown setting \"cache-sise\"\n"
                                   "HINT: Did you mean \"cache-size\"?");
    KT_ASSERT_EQ(kc_config_set(kt_table, KT_N, &s, "port", "x", &err), KC_EINVAL);
    KT_ASSERT_EQ(s.port, 6400); /* unchanged on failure */
    KT_ASSERT(kc_config_find(kt_table, KT_N, "sync_mode") == &kt_table[9]);
    KT_ASSERT(kc_config_find(kt_table, KT_N, "nope") == NULL);
    kc_config_free(kt_table, KT_N, &s);
}

KT_TEST(config_units)
{
    static const struct {
        const char *in;
        int64_t ms;
    } durs[] = {
        {"250ms", 250},    {"5s", 5000},   {"2m", 120000},   {"2min", 120000}, {"1h", 3600000},
        {"7d", 604800000}, {"10", 10000},  {"1.5s", 1500},   {"0.5", 500},     {"5 S", 5000},
        {"0.0004s", 0},    {"0.0005s", 1}, {".5h", 1800000}, {"0", 0},         {"1.1234567s", 1123},
    };
    static const char *const bad_durs[] = {"",   "s",  "5 ",   " 5",  "-5s",
                                           "5x", "5.", "1e3s", "5s5", "106751991167301d"};
    static const struct {
        const char *in;
        int64_t bytes;
    } sizes[] = {
        {"8192", 8192},
        {"64kB", 65536},
        {"16MB", 16 << 20},
        {"1GB", 1 << 30},
        {"2TB", (int64_t)2 << 40},
        {"1.5kB", 1536},
        {"3 mib", 3 << 20},
        {"10b", 10},
        {"0.5GB", 1 << 29},
        {"8388607TB", (int64_t)8388607 << 40},
    };
    static const char *const bad_sizes[] = {
        "", "kB", "1PB", "-1", "1 k", "8388608TB", "9223372036854775808"};
    struct kc_sbuf sb = KC_SBUF_INIT;
    int64_t v;

    for (size_t i = 0; i < KC_ARRAY_LEN(durs); i++) {
        if (kc_config_parse_duration(durs[i].in, 1000, &v, NULL) != 0)
            kt_fail(__FILE__, __LINE__, "duration \"%s\" rejected", durs[i].in);
        KT_ASSERT_EQ(v, durs[i].ms);
    }
    for (size_t i = 0; i < KC_ARRAY_LEN(bad_durs); i++)
        if (kc_config_parse_duration(bad_durs[i], 1000, &v, NULL) == 0)
            kt_fail(__FILE__, __LINE__, "duration \"%s\" accepted", bad_durs[i]);
    KT_ASSERT_EQ(kc_config_parse_duration("10", 1, &v, NULL), 0);
    KT_ASSERT_EQ(v, 10);
    for (size_t i = 0; i < KC_ARRAY_LEN(sizes); i++) {
        if (kc_config_parse_size(sizes[i].in, &v, NULL) != 0)
            kt_fail(__FILE__, __LINE__, "size \"%s\" rejected", sizes[i].in);
        KT_ASSERT_EQ(v, sizes[i].bytes);
    }
    for (size_t i = 0; i < KC_ARRAY_LEN(bad_sizes); i++)
        if (kc_config_parse_size(bad_sizes[i], &v, NULL) == 0)
            kt_fail(__FILE__, __LINE__, "size \"%s\" accepted", bad_sizes[i]);

    kc_config_format_duration(0, &sb);
    kc_sbuf_puts(&sb, ",");
    kc_config_format_duration(1500, &sb);
    kc_sbuf_puts(&sb, ",");
    kc_config_format_duration(120000, &sb);
    kc_sbuf_puts(&sb, ",");
    kc_config_format_duration(3 * 86400000LL, &sb);
    kc_sbuf_puts(&sb, ",");
    kc_config_format_size(1536, &sb);
    kc_sbuf_puts(&sb, ",");
    kc_config_format_size(64 << 20, &sb);
    kc_sbuf_puts(&sb, ",");
    kc_config_format_size(0, &sb);
    KT_ASSERT_STR_EQ(kc_sbuf_str(&sb), "0s,1500ms,2min,3d,1536,64MB,0");
    kc_sbuf_fini(&sb);
}

KT_TEST(config_usage_rendering)
{
    struct kc_sbuf sb = KC_SBUF_INIT;
    const char *u;
    char prev[64] = "", name[64];
    size_t count = 0;

    kc_config_usage(kt_table, KT_N, &sb);
    u = kc_sbuf_str(&sb);
    KT_ASSERT_STR_EQ(
        u, "  --auth-token=<string>       token clients must present\n"
           "  --cache-size=<size>         memory for cached pages (default: 64MB; range: 8kB\n"
           "                              to 1TB)\n"
           "  --config=<file>             read settings from this configuration file\n"
           "  --data-dir=<dir>            directory holding the layer files (required)\n"
           "  --[no-]fsync                flush data files to disk (default: true)\n"
           "  --greeting=<string>         greeting sent to clients (default: \"hello world\")\n"
           "  --help, -h                  show this help and exit\n"
           "  --listen-addr=<host:port>   address to listen on for page requests (default:\n"
           "                              127.0.0.1:6400)\n"
           "  --motd=<string>             message of the day; a long help text that has to\n"
           "                              be wrapped over more than one line of the help\n"
           "                              output so that the wrapping code is exercised\n"
           "  --offset=<int>              a signed integer without bounds (default: -5)\n"
           "  --poll-interval=<duration>  pause between polls (default: 250ms)\n"
           "  --port=<int>                TCP port (default: 6400; range: 1 to 65535)\n"
           "  --sync-mode=<fsync|fdatasync|none>\n"
           "                              how WAL is made durable (default: fsync)\n"
           "  --timeout=<duration>        how long to wait for a peer (default: 30s; range:\n"
           "                              1s to 1h)\n"
           "  --[no-]verbose              log more (default: false)\n");
    KT_ASSERT(strstr(u, "debug-knob") == NULL);
    /* Wrapped at 80 columns. */
    for (const char *line = u; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        KT_ASSERT(nl != NULL);
        KT_ASSERT((size_t)(nl - line) <= 80);
        line = nl + 1;
    }
    /* Sorted by name: each option line starts with "  --". */
    for (const char *line = u; *line != '\0'; line = strchr(line, '\n') + 1) {
        const char *p = line + 4;
        if (strncmp(line, "  --", 4) != 0)
            continue;
        if (strncmp(p, "[no-]", 5) == 0)
            p += 5;
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(p, "=, \n"), p);
        KT_ASSERT(strcmp(prev, name) < 0);
        memcpy(prev, name, sizeof(prev));
        count++;
    }
    KT_ASSERT_EQ(count, KT_N - 1 + 2); /* debug-knob hidden; config and help added */
    kc_sbuf_fini(&sb);
}

KT_TEST(config_dump_roundtrip)
{
    struct kt_settings a, b;
    struct kc_sbuf d1 = KC_SBUF_INIT, d2 = KC_SBUF_INIT;
    struct kc_error err;
    const char *text = "data-dir = \"/tmp/with space/#x\"\n"
                       "auth-token = s3cret\n"
                       "greeting = \"say \\\"hi\\\" \\\\ bye\"\n"
                       "fsync = off\n"
                       "offset = -42\n"
                       "sync-mode = none\n"
                       "timeout = 1500ms\n"
                       "poll-interval = 3s\n"
                       "cache-size = 9000\n"
                       "debug-knob = 7\n";

    KT_ASSERT_EQ(kt_parse(&a, text, &err), 0);
    kc_config_dump(kt_table, KT_N, &a, &d1);
    KT_ASSERT_STR_EQ(kc_sbuf_str(&d1), "listen-addr = \"127.0.0.1:6400\"\n"
                                       "data-dir = \"/tmp/with space/#x\"\n"
                                       "# auth-token = (secret, not shown)\n"
                                       "greeting = \"say \\\"hi\\\" \\\\ bye\"\n"
                                       "# motd is not set\n"
                                       "fsync = false\n"
                                       "verbose = false\n"
                                       "port = 6400\n"
                                       "offset = -42\n"
                                       "sync-mode = none\n"
                                       "timeout = 1500ms\n"
                                       "poll-interval = 3s\n"
                                       "cache-size = 9000\n"
                                       "debug-knob = 7\n");
    KT_ASSERT_EQ(kt_parse(&b, kc_sbuf_str(&d1), &err), 0);
    kc_config_dump(kt_table, KT_N, &b, &d2);
    KT_ASSERT_STR_EQ(kc_sbuf_str(&d1), kc_sbuf_str(&d2));
    KT_ASSERT_STR_EQ(a.data_dir, b.data_dir);
    KT_ASSERT_STR_EQ(a.greeting, b.greeting);
    KT_ASSERT(b.auth_token == NULL); /* secrets are not dumped */
    KT_ASSERT_EQ(a.timeout, b.timeout);
    KT_ASSERT_EQ(a.poll, b.poll);
    KT_ASSERT_EQ(a.cache_size, b.cache_size);
    KT_ASSERT_EQ(a.sync_mode, b.sync_mode);
    KT_ASSERT_EQ(a.offset, b.offset);
    kc_sbuf_reset(&d1);
    kc_config_format_value(&kt_table[12], &a, &d1);
    KT_ASSERT_STR_EQ(kc_sbuf_str(&d1), "9000");
    kc_sbuf_fini(&d1);
    kc_sbuf_fini(&d2);
    kc_config_free(kt_table, KT_N, &a);
    kc_config_free(kt_table, KT_N, &b);
}

/* xorshift64*: a fixed-seed generator, so a failure reproduces. */
static uint64_t kt_rand(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1DULL;
}

KT_TEST(config_parser_random_input)
{
    static const char *const pieces[] = {
        "port",         "listen_addr", "greeting", "=",          " ",
        "\t",           "\"",          "\\",       "#",          "\n",
        "\r\n",         "1",           "-",        "kB",         "ms",
        "on",           "x",           "\0",       "fsync",      "timeout",
        "1.5",          "sync-mode",   "none",     "cache-size", "9999999999999999999",
        "\xEF\xBB\xBF", "\xff"};
    static const char *const seeds[] = {
        "port = 5\ngreeting = \"a # b\" # c\ntimeout = 1.5min\n",
        "cache-size=16MB\nsync_mode = fdatasync\nfsync = off\n",
    };
    static char text[KC_CONFIG_MAX_LINE * 2 + 512];
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    int ok = 0, failed = 0;

    for (int iter = 0; iter < 4000; iter++) {
        struct kt_settings s;
        struct kc_error err;
        size_t len = 0;
        int rc;

        if (iter % 2 == 0) {
            /* Random pieces of config syntax. */
            int count = (int)(kt_rand(&state) % 40);
            for (int i = 0; i < count; i++) {
                size_t p = kt_rand(&state) % KC_ARRAY_LEN(pieces);
                size_t plen = pieces[p][0] == '\0' ? 1 : strlen(pieces[p]);
                memcpy(text + len, pieces[p], plen);
                len += plen;
            }
        } else {
            /* A valid file with a few bytes flipped, inserted or cut. */
            const char *seed = seeds[kt_rand(&state) % KC_ARRAY_LEN(seeds)];
            len = strlen(seed);
            memcpy(text, seed, len);
            for (int m = (int)(kt_rand(&state) % 4); m >= 0; m--) {
                size_t at = kt_rand(&state) % len;
                switch (kt_rand(&state) % 3) {
                case 0: text[at] = (char)kt_rand(&state); break;
                case 1: len = at + 1; break;
                default:
                    memmove(text + at + 1, text + at, len - at);
                    text[at] = (char)kt_rand(&state);
                    len++;
                }
            }
        }
        if (iter % 500 == 0) {
            /* Now and then an overlong line. */
            memset(text + len, 'y', KC_CONFIG_MAX_LINE + 1);
            len += KC_CONFIG_MAX_LINE + 1;
        }
        memset(&s, 0, sizeof(s));
        KT_ASSERT_EQ(kc_config_defaults(kt_table, KT_N, &s, NULL), 0);
        rc = kc_config_parse_text(kt_table, KT_N, &s, text, len, "fuzz", &err);
        if (rc == 0) {
            ok++;
        } else {
            KT_ASSERT_EQ(rc, KC_EINVAL);
            KT_ASSERT(err.message[0] != '\0');
            failed++;
        }
        kc_config_free(kt_table, KT_N, &s);
    }
    KT_ASSERT(ok > 0 && failed > 0);
}

struct kt_small {
    int level;
    char *prefix;
    int64_t delay;
    int64_t retries;
};

static const char *const kt_levels[] = {"debug", "info", "warning", "error", "fatal", NULL};

static const struct kc_config_entry kt_small_table[] = {
    {.name = "level",
     .type = KC_CONFIG_CHOICE,
     .offset = offsetof(struct kt_small, level),
     .default_value = "info",
     .choices = kt_levels,
     .help = "log level"},
    {.name = "prefix",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct kt_small, prefix),
     .default_value = "",
     .help = "text put before every line"},
    {.name = "delay",
     .type = KC_CONFIG_DURATION,
     .offset = offsetof(struct kt_small, delay),
     .default_value = "0.1s",
     .min = 10,
     .max = INT64_MAX,
     .help = "pause",
     .flags = KC_CONFIG_MS},
    {.name = "retries",
     .type = KC_CONFIG_INT,
     .offset = offsetof(struct kt_small, retries),
     .default_value = "3",
     .min = INT64_MIN,
     .max = 10,
     .help = "attempts"},
};

KT_TEST(config_usage_choices_and_one_sided_ranges)
{
    struct kc_sbuf sb = KC_SBUF_INIT;
    struct kc_config_entry bad[KC_ARRAY_LEN(kt_small_table)];
    struct kt_small s;
    struct kc_error err;

    KT_ASSERT_EQ(kc_config_table_check(kt_small_table, KC_ARRAY_LEN(kt_small_table), &err), 0);
    kc_config_usage(kt_small_table, KC_ARRAY_LEN(kt_small_table), &sb);
    KT_ASSERT_STR_EQ(kc_sbuf_str(&sb),
                     "  --config=<file>     read settings from this configuration file\n"
                     "  --delay=<duration>  pause (default: 100ms; at least 10ms)\n"
                     "  --help, -h          show this help and exit\n"
                     "  --level=<choice>    log level (default: info; one of: debug, info, "
                     "warning,\n"
                     "                      error, fatal)\n"
                     "  --prefix=<string>   text put before every line (default: \"\")\n"
                     "  --retries=<int>     attempts (default: 3; at most 10)\n");
    kc_sbuf_fini(&sb);

    /* kc_config_defaults reports a bad default too, leaving nothing to free. */
    memcpy(bad, kt_small_table, sizeof(bad));
    bad[3].default_value = "11";
    KT_ASSERT_EQ(kc_config_defaults(bad, KC_ARRAY_LEN(bad), &s, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(kt_err(&err), "invalid value for the default of setting \"retries\": \"11\"\n"
                                   "DETAIL: Expected an integer at most 10.");
    kc_config_free(bad, KC_ARRAY_LEN(bad), &s);
}
