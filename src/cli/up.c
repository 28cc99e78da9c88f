/* SPDX-License-Identifier: Apache-2.0 */
/*
 * up.c -- `kelp up`, `kelp down`, `kelp status`: a local Kelp under one data
 * directory.
 *
 * For now a local Kelp is one patched PostgreSQL 15.18 with the kelp
 * extension preloaded, listening on 127.0.0.1, with a generated password for
 * its superuser `kelp`. When the storage roles land, `kelp up` starts the
 * whole cluster (safekeepers, pageserver, control plane, proxy) instead; the
 * data directory layout below leaves room for them.
 *
 *   DATA/pgdata/      the PostgreSQL cluster
 *   DATA/postgres.log its server log
 *   DATA/password     the superuser password (mode 0600)
 *
 * As root, PostgreSQL runs as an unprivileged OS user (--os-user, created
 * when missing) that owns DATA.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/failpoint.h"
#include "common/proc.h"
#include "common/random.h"

struct cli_up_settings {
    char *data_dir;
    char *os_user;
    char *pg_dir;
    char *listen_addr;
    int64_t port;
};

#define UP_ENTRY_DATA_DIR                                                                   \
    {                                                                                       \
        .name = "data-dir", .type = KC_CONFIG_STRING,                                       \
        .offset = offsetof(struct cli_up_settings, data_dir), .default_value = "kelp-data", \
        .help = "directory that holds everything this local Kelp stores", .metavar = "dir"  \
    }
#define UP_ENTRY_OS_USER                                                                          \
    {                                                                                             \
        .name = "os-user", .type = KC_CONFIG_STRING,                                              \
        .offset = offsetof(struct cli_up_settings, os_user), .default_value = KC_DEFAULT_OS_USER, \
        .help = "unprivileged OS user that runs PostgreSQL when kelp runs as root",               \
        .metavar = "name"                                                                         \
    }
#define UP_ENTRY_PG_DIR                                                                  \
    {                                                                                    \
        .name = "pg-dir", .type = KC_CONFIG_STRING,                                      \
        .offset = offsetof(struct cli_up_settings, pg_dir), .default_value = NULL,       \
        .help = "PostgreSQL install to use (default: build/pg beside this kelp binary)", \
        .metavar = "dir"                                                                 \
    }

static const struct kc_config_entry up_options[] = {
    UP_ENTRY_DATA_DIR,
    {.name = "listen-addr",
     .type = KC_CONFIG_STRING,
     .offset = offsetof(struct cli_up_settings, listen_addr),
     .default_value = "127.0.0.1",
     .help = "address PostgreSQL listens on",
     .metavar = "addr"},
    UP_ENTRY_OS_USER,
    UP_ENTRY_PG_DIR,
    {.name = "port",
     .type = KC_CONFIG_INT,
     .offset = offsetof(struct cli_up_settings, port),
     .default_value = "55432",
     .min = 1,
     .max = 65535,
     .help = "TCP port for client connections"},
};

static const struct kc_config_entry down_options[] = {
    UP_ENTRY_DATA_DIR,
    UP_ENTRY_OS_USER,
    UP_ENTRY_PG_DIR,
};

/* Everything a command needs about the local install, resolved from settings. */
struct local_kelp {
    char data_dir[PATH_MAX];
    char pgdata[PATH_MAX + 16];
    char logfile[PATH_MAX + 16];
    char pwfile[PATH_MAX + 16];
    char pg_bin[PATH_MAX + 16];
    struct kc_user user;
};

static bool path_is_executable(const char *path)
{
    return access(path, X_OK) == 0;
}

/* Find the PostgreSQL install: --pg-dir, else ../../pg relative to this binary. */
static int resolve_pg_dir(const char *flag, char *out, size_t len, struct kc_error *err)
{
    char exe[PATH_MAX], probe[PATH_MAX + 32];
    ssize_t n;

    if (flag != NULL) {
        snprintf(out, len, "%s", flag);
    } else {
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n < 0)
            return kc_error_set(err, KC_EIO, "could not find the kelp executable: %s",
                                strerror(errno));
        exe[n] = '\0';
        /* build/out/bin/kelp -> build/pg */
        for (int i = 0; i < 3; i++) {
            char *slash = strrchr(exe, '/');
            if (slash != NULL)
                *slash = '\0';
        }
        if (snprintf(out, len, "%s/pg", exe) >= (int)len)
            return kc_error_set(err, KC_EINVAL, "path of the kelp executable is too long");
    }
    snprintf(probe, sizeof(probe), "%s/bin/postgres", out);
    if (!path_is_executable(probe)) {
        kc_error_set(err, KC_ENOTFOUND, "no PostgreSQL install at \"%s\"", out);
        kc_error_detail(err, "\"%s\" is missing or not executable.", probe);
        kc_error_hint(err, "Build it with 'make pg', or name an install with --pg-dir.");
        return KC_ENOTFOUND;
    }
    return 0;
}

static int local_kelp_resolve(const struct cli_up_settings *s, struct local_kelp *lk,
                              struct kc_error *err)
{
    char pg_dir[PATH_MAX];
    int rc;

    memset(lk, 0, sizeof(*lk));
    if (s->data_dir == NULL || s->data_dir[0] == '\0')
        return kc_error_set(err, KC_EINVAL, "--data-dir must not be empty");
    if (mkdir(s->data_dir, 0700) != 0 && errno != EEXIST)
        return kc_error_set(err, KC_EIO, "could not create data directory \"%s\": %s", s->data_dir,
                            strerror(errno));
    if (realpath(s->data_dir, lk->data_dir) == NULL)
        return kc_error_set(err, KC_EIO, "could not resolve data directory \"%s\": %s", s->data_dir,
                            strerror(errno));
    /* The path goes into postgresql.conf and pg_ctl's command line. */
    if (strpbrk(lk->data_dir, "'\"\\\n\r") != NULL)
        return kc_error_set(err, KC_EINVAL,
                            "data directory \"%s\" contains a quote, backslash or newline",
                            lk->data_dir);
    snprintf(lk->pgdata, sizeof(lk->pgdata), "%s/pgdata", lk->data_dir);
    snprintf(lk->logfile, sizeof(lk->logfile), "%s/postgres.log", lk->data_dir);
    snprintf(lk->pwfile, sizeof(lk->pwfile), "%s/password", lk->data_dir);
    rc = resolve_pg_dir(s->pg_dir, pg_dir, sizeof(pg_dir), err);
    if (rc != 0)
        return rc;
    snprintf(lk->pg_bin, sizeof(lk->pg_bin), "%s/bin", pg_dir);
    rc = kc_user_for_postgres(s->os_user, &lk->user, err);
    if (rc != 0)
        return rc;
    return kc_path_give_to(lk->data_dir, &lk->user, err);
}

/*
 * Run a PostgreSQL program from the install as the OS user, its output
 * appended to output (NULL: discarded). Returns its exit code, or < 0.
 */
static int run_pg(const struct local_kelp *lk, const char *prog, char *const args[],
                  const char *output, struct kc_error *err)
{
    char path[PATH_MAX + 64];
    char *argv[16];
    int n = 0, code, rc;

    snprintf(path, sizeof(path), "%s/%s", lk->pg_bin, prog);
    argv[n++] = path;
    for (int i = 0; args[i] != NULL && n < (int)KC_ARRAY_LEN(argv) - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    rc = kc_proc_run(
        argv,
        &(struct kc_proc_opts){.user = &lk->user, .output_path = output, .quiet = output == NULL},
        &code, err);
    return rc != 0 ? rc : code;
}

static bool pg_is_running(const struct local_kelp *lk)
{
    char *args[] = {"-D", (char *)lk->pgdata, "status", NULL};
    return run_pg(lk, "pg_ctl", args, NULL, NULL) == 0;
}

/* The superuser password: read it, or make and store a new one. */
static int load_password(const struct local_kelp *lk, bool create, char *pw, size_t len,
                         struct kc_error *err)
{
    FILE *f = fopen(lk->pwfile, "r");
    int fd, rc;

    if (f != NULL) {
        bool ok = fgets(pw, (int)len, f) != NULL;
        fclose(f);
        pw[strcspn(pw, "\r\n")] = '\0';
        if (ok && pw[0] != '\0')
            return 0;
        return kc_error_set(err, KC_ECORRUPT, "password file \"%s\" is empty", lk->pwfile);
    }
    if (!create)
        return kc_error_set(err, KC_ENOTFOUND, "no password file \"%s\"", lk->pwfile);
    if (len < 33)
        return kc_error_set(err, KC_EINVAL, "password buffer too small");
    rc = kc_random_hex(pw, 16, err);
    if (rc != 0)
        return rc;
    fd = open(lk->pwfile, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || dprintf(fd, "%s\n", pw) < 0 || fsync(fd) != 0) {
        kc_error_set(err, KC_EIO, "could not write \"%s\": %s", lk->pwfile, strerror(errno));
        if (fd >= 0)
            close(fd);
        return KC_EIO;
    }
    close(fd);
    return kc_path_give_to(lk->pwfile, &lk->user, err);
}

static int append_conf(const struct local_kelp *lk, const struct cli_up_settings *s,
                       struct kc_error *err)
{
    char path[PATH_MAX + 64];
    FILE *f;

    snprintf(path, sizeof(path), "%s/postgresql.conf", lk->pgdata);
    f = fopen(path, "a");
    if (f == NULL)
        return kc_error_set(err, KC_EIO, "could not open \"%s\": %s", path, strerror(errno));
    fprintf(f,
            "\n# Added by kelp up\n"
            "shared_preload_libraries = 'kelp'\n"
            "listen_addresses = '%s'\n"
            "port = %lld\n"
            "unix_socket_directories = '%s'\n",
            s->listen_addr, (long long)s->port, lk->data_dir);
    if (fclose(f) != 0)
        return kc_error_set(err, KC_EIO, "could not write \"%s\": %s", path, strerror(errno));
    return 0;
}

static int init_cluster(const struct local_kelp *lk, const struct cli_up_settings *s,
                        const char *password, struct kc_error *err)
{
    char tmp_pw[PATH_MAX + 32], pwflag[PATH_MAX + 48], initdb_log[PATH_MAX + 32];
    char *args[] = {"-D",   (char *)lk->pgdata, "-U", "kelp", "--auth=scram-sha-256", pwflag, "-E",
                    "UTF8", "--locale=C",       NULL};
    int fd, code, rc;

    /* initdb reads the password from a file the OS user can read; removed afterwards. */
    snprintf(tmp_pw, sizeof(tmp_pw), "%s/initdb-pw.tmp", lk->data_dir);
    snprintf(pwflag, sizeof(pwflag), "--pwfile=%s", tmp_pw);
    unlink(tmp_pw);
    fd = open(tmp_pw, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || dprintf(fd, "%s\n", password) < 0) {
        if (fd >= 0)
            close(fd);
        return kc_error_set(err, KC_EIO, "could not write \"%s\": %s", tmp_pw, strerror(errno));
    }
    close(fd);
    rc = kc_path_give_to(tmp_pw, &lk->user, err);
    if (rc == 0) {
        printf("initializing a new cluster in %s ...\n", lk->pgdata);
        fflush(stdout);
        snprintf(initdb_log, sizeof(initdb_log), "%s/initdb.log", lk->data_dir);
        code = run_pg(lk, "initdb", args, initdb_log, err);
        if (code > 0) {
            rc = kc_error_set(err, KC_EIO, "initdb failed with exit code %d", code);
            kc_error_hint(err, "See \"%s\".", initdb_log);
        } else
            rc = code;
    }
    unlink(tmp_pw);
    if (rc != 0)
        return rc;
    return append_conf(lk, s, err);
}

/* pg_ctl start, waiting until the server accepts connections (at most 60 s). */
static int start_server(struct local_kelp *lk, const struct cli_up_settings *s,
                        struct kc_error *err)
{
    char server_opts[512];
    char *args[] = {"-D", lk->pgdata, "-l", lk->logfile, "-o", server_opts,
                    "-w", "-t",       "60", "start",     NULL};
    int code;

    KC_FAILPOINT_ERROR("cli.up.before-start", err);
    /* Flags win over what the first `up` wrote into postgresql.conf. */
    snprintf(server_opts, sizeof(server_opts), "-p %lld -c listen_addresses=%s", (long long)s->port,
             s->listen_addr);
    code = run_pg(lk, "pg_ctl", args, NULL, err);
    if (code > 0) {
        kc_error_set(err, KC_EIO, "PostgreSQL did not start (pg_ctl exit code %d)", code);
        kc_error_hint(err, "See the server log \"%s\".", lk->logfile);
        return KC_EIO;
    }
    return code;
}

static void print_connect(const struct local_kelp *lk, const char *password, const char *addr,
                          int64_t port)
{
    printf("  data dir: %s\n"
           "  connect:  psql 'postgresql://kelp:%s@%s:%lld/postgres'\n"
           "  log:      %s\n",
           lk->data_dir, password, addr, (long long)port, lk->logfile);
}

static int cmd_up(const struct cli_command *cmd, void *settings, int argc, char **argv)
{
    struct cli_up_settings *s = settings;
    struct local_kelp lk;
    struct kc_error err;
    char password[64], pgver[PATH_MAX + 32];

    (void)argc, (void)argv;
    /* It reaches pg_ctl's shell command line: allow address characters only. */
    if (s->listen_addr[0] == '\0' ||
        strspn(s->listen_addr, "0123456789abcdefABCDEF.:,*-_") != strlen(s->listen_addr)) {
        kc_error_set(&err, KC_EINVAL, "invalid --listen-addr \"%s\"", s->listen_addr);
        kc_error_hint(&err, "Give host names or IP addresses separated by commas, or *.");
        goto fail;
    }
    if (local_kelp_resolve(s, &lk, &err) != 0)
        goto fail;
    snprintf(pgver, sizeof(pgver), "%s/PG_VERSION", lk.pgdata);
    if (access(pgver, F_OK) != 0) {
        if (load_password(&lk, true, password, sizeof(password), &err) != 0 ||
            init_cluster(&lk, s, password, &err) != 0)
            goto fail;
    } else if (load_password(&lk, false, password, sizeof(password), &err) != 0) {
        goto fail;
    }
    if (pg_is_running(&lk)) {
        printf("Kelp is already running.\n");
        print_connect(&lk, password, s->listen_addr, s->port);
        return CLI_EXIT_OK;
    }
    if (start_server(&lk, s, &err) != 0)
        goto fail;
    printf("Kelp is up: PostgreSQL 15.18 with the kelp extension.\n");
    print_connect(&lk, password, s->listen_addr, s->port);
    printf("  stop:     kelp down --data-dir %s\n", lk.data_dir);
    return CLI_EXIT_OK;
fail:
    cli_report_error(cmd, &err);
    return CLI_EXIT_FAIL;
}

static int cmd_down(const struct cli_command *cmd, void *settings, int argc, char **argv)
{
    struct local_kelp lk;
    struct kc_error err;
    char *stop_args[] = {"-D", lk.pgdata, "-m", "fast", "-w", "-t", "60", "stop", NULL};
    int code;

    (void)argc, (void)argv;
    if (local_kelp_resolve(settings, &lk, &err) != 0)
        goto fail;
    if (!pg_is_running(&lk)) {
        printf("Kelp is not running in %s.\n", lk.data_dir);
        return CLI_EXIT_OK;
    }
    code = run_pg(&lk, "pg_ctl", stop_args, NULL, &err);
    if (code != 0) {
        if (code > 0)
            kc_error_set(&err, KC_EIO, "PostgreSQL did not stop (pg_ctl exit code %d)", code);
        goto fail;
    }
    printf("Kelp stopped (%s).\n", lk.data_dir);
    return CLI_EXIT_OK;
fail:
    cli_report_error(cmd, &err);
    return CLI_EXIT_FAIL;
}

/* Exit codes of status: 0 running, 3 not running (as pg_ctl and LSB do). */
static int cmd_status(const struct cli_command *cmd, void *settings, int argc, char **argv)
{
    struct local_kelp lk;
    struct kc_error err;

    (void)argc, (void)argv;
    if (local_kelp_resolve(settings, &lk, &err) != 0) {
        cli_report_error(cmd, &err);
        return CLI_EXIT_FAIL;
    }
    if (pg_is_running(&lk)) {
        printf("running: PostgreSQL 15.18 with the kelp extension (%s)\n", lk.data_dir);
        return CLI_EXIT_OK;
    }
    printf("stopped (%s)\n", lk.data_dir);
    return 3;
}

const struct cli_command cli_cmd_up = {
    .name = "up",
    .group = "commands",
    .summary = "start a local Kelp under a data directory",
    .description = "Starts a local Kelp in the background and prints how to connect. For now\n"
                   "that is one patched PostgreSQL 15.18 with the kelp extension preloaded,\n"
                   "listening on 127.0.0.1 with a generated password for the superuser kelp\n"
                   "(kept in DATA/password). Running it again on a running data directory\n"
                   "only prints the connection details.",
    .options = up_options,
    .noptions = KC_ARRAY_LEN(up_options),
    .settings_size = sizeof(struct cli_up_settings),
    .run = cmd_up,
};

const struct cli_command cli_cmd_down = {
    .name = "down",
    .group = "commands",
    .summary = "stop what 'kelp up' started",
    .description = "Stops the local Kelp of a data directory (a fast shutdown: open\n"
                   "transactions are rolled back). Nothing stored is removed.",
    .options = down_options,
    .noptions = KC_ARRAY_LEN(down_options),
    .settings_size = sizeof(struct cli_up_settings),
    .run = cmd_down,
};

const struct cli_command cli_cmd_status = {
    .name = "status",
    .group = "commands",
    .summary = "say whether the local Kelp of a data directory runs",
    .description = "Prints whether the local Kelp of a data directory is running.\n"
                   "Exit code 0 when running, 3 when stopped.",
    .options = down_options,
    .noptions = KC_ARRAY_LEN(down_options),
    .settings_size = sizeof(struct cli_up_settings),
    .run = cmd_status,
};
