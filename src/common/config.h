/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h -- table-driven settings: config file, command-line flags, --help, dump.
 *
 * Each Kelp role describes its settings once, as an array of struct
 * kc_config_entry naming the fields of the role's own settings struct
 * (located with offsetof). That one table drives everything:
 *
 *   kc_config_load()    defaults < "--config FILE" < flags, plus positionals
 *   kc_config_usage()   the option lines of --help
 *   kc_config_dump()    the effective settings, as a config file that parses back
 *   kc_config_free()    frees the strings the module allocated
 *
 * Storage per type (the field at .offset must have exactly this C type):
 *
 *   KC_CONFIG_BOOL      bool
 *   KC_CONFIG_INT       int64_t, checked against [min, max]
 *   KC_CONFIG_STRING    char *, owned by the settings (kc_config_free frees it);
 *                       NULL when the default is NULL and nothing set it
 *   KC_CONFIG_CHOICE    int: the index of the value in .choices (so a C enum
 *                       listed in the same order can be compared directly)
 *   KC_CONFIG_DURATION  int64_t milliseconds; text "250ms", "5s", "2min", "1h", "7d";
 *                       a bare number is seconds, or milliseconds with KC_CONFIG_MS
 *   KC_CONFIG_SIZE      int64_t bytes; text "8192", "64kB", "16MB", "1GB", "2TB"
 *                       (1024-based, as in PostgreSQL)
 *
 * Defaults are text, parsed exactly like user input; kc_config_table_check()
 * (call it from each role's unit test) rejects a table whose defaults, names
 * or ranges are wrong. Names are lower case with dashes ("listen-addr"); the
 * config file and the flags accept underscores too. The file syntax, the
 * flag syntax and the error texts are described in docs/configuration.md.
 */
#ifndef KC_CONFIG_H
#define KC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"

/* Longest line accepted in a config file, in bytes, not counting the newline. */
#define KC_CONFIG_MAX_LINE 4096
/* Largest config file accepted, in bytes. */
#define KC_CONFIG_MAX_FILE (1024 * 1024)
/* kc_config_load() return value when --help or -h was given. */
#define KC_CONFIG_HELP 1

enum kc_config_type {
    KC_CONFIG_BOOL = 1,
    KC_CONFIG_INT,
    KC_CONFIG_STRING,
    KC_CONFIG_CHOICE,
    KC_CONFIG_DURATION,
    KC_CONFIG_SIZE
};

/* Bits of struct kc_config_entry.flags. */
enum {
    /* No default: kc_config_load() fails unless the file or a flag sets it. */
    KC_CONFIG_REQUIRED = 1u << 0,
    /* Never shown: kc_config_dump() writes a comment instead of the value. */
    KC_CONFIG_SECRET = 1u << 1,
    /* Left out of kc_config_usage() (internal or test-only knobs). */
    KC_CONFIG_HIDDEN = 1u << 2,
    /* KC_CONFIG_DURATION only: a number without a unit is milliseconds. */
    KC_CONFIG_MS = 1u << 3
};

struct kc_config_entry {
    const char *name;           /* lower case, dashes: "listen-addr" */
    enum kc_config_type type;   /* decides the field's C type, see above */
    size_t offset;              /* offsetof(struct role_settings, field) */
    const char *default_value;  /* text parsed like input; NULL only for a string
                                   (field stays NULL) or with KC_CONFIG_REQUIRED */
    int64_t min, max;           /* INT, DURATION (ms), SIZE (bytes); both 0 means no
                                   bound (durations and sizes are never negative) */
    const char *const *choices; /* CHOICE: NULL-terminated list of allowed values */
    const char *help;           /* one line for --help: lower case, no final period */
    const char *metavar;        /* placeholder in --help ("addr"); NULL: from the type */
    unsigned flags;             /* KC_CONFIG_* bits */
};

/*
 * kc_config_table_check -- validate a table: names well formed and unique (and
 * not "config", "help" or "no-..."), help text present, ranges ordered, choice
 * lists non-empty and unique, every default parses and lies in range. Returns
 * 0 or KC_EINVAL naming the first bad entry. Meant for unit tests.
 */
int kc_config_table_check(const struct kc_config_entry *table, size_t n,
                          struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_config_defaults -- store every entry's default into settings. settings
 * must hold no strings of ours (zero it, or kc_config_free() it first).
 * Fails only on a default that kc_config_table_check() would reject.
 */
int kc_config_defaults(const struct kc_config_entry *table, size_t n, void *settings,
                       struct kc_error *err) KC_MUSTCHECK;

/* Find an entry by name; dashes and underscores match, case is ignored. NULL if absent. */
const struct kc_config_entry *kc_config_find(const struct kc_config_entry *table, size_t n,
                                             const char *name);

/*
 * kc_config_set -- parse value (NUL-terminated) for the setting called name
 * and store it, freeing a string it replaces. KC_ENOTFOUND for an unknown
 * name, KC_EINVAL for a bad value; the setting is unchanged on failure.
 */
int kc_config_set(const struct kc_config_entry *table, size_t n, void *settings, const char *name,
                  const char *value, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_config_parse_text -- apply config-file text (len bytes, need not be
 * NUL-terminated) on top of settings. source names the text in messages
 * ("kelp.conf:12: unknown setting ..."). Stops at the first error; settings
 * set before it keep their new values (free them with kc_config_free).
 */
int kc_config_parse_text(const struct kc_config_entry *table, size_t n, void *settings,
                         const char *text, size_t len, const char *source,
                         struct kc_error *err) KC_MUSTCHECK;

/* kc_config_parse_file -- read path (at most KC_CONFIG_MAX_FILE bytes) and parse it as above. */
int kc_config_parse_file(const struct kc_config_entry *table, size_t n, void *settings,
                         const char *path, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_config_load -- the whole start-up sequence of a role: defaults, then the
 * file named by --config (if any), then every other flag, regardless of where
 * --config appears; finally every KC_CONFIG_REQUIRED entry must have been set.
 *
 * argv holds argc arguments *after* the program and verb names. Accepted:
 * --name=value, --name value, --name / --no-name for booleans, --config FILE,
 * --help / -h, "--" (everything after it is positional), and positional
 * arguments. A flag given twice keeps its last value.
 *
 * Positional arguments are moved, in order, to argv[0..*nargs) (argv is
 * permuted in place; the strings stay the caller's). With nargs NULL any
 * positional argument is an error.
 *
 * Returns 0, KC_CONFIG_HELP when --help or -h was seen (the caller prints
 * usage; settings then hold only the defaults), or a negative code with err
 * filled. On failure settings may be partly set: kc_config_free() them.
 */
int kc_config_load(const struct kc_config_entry *table, size_t n, void *settings, int argc,
                   char **argv, int *nargs, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_config_usage -- append the option lines of --help to out: one per
 * visible entry plus --config and --help, sorted by name, as
 * "  --name=<metavar>   help (default: X; range: A to B)", wrapped at 80 columns.
 */
void kc_config_usage(const struct kc_config_entry *table, size_t n, struct kc_sbuf *out);

/*
 * kc_config_dump -- append the effective settings to out as config-file text,
 * one "name = value" line per entry in table order, that parses back to the
 * same settings. Secret entries and unset strings are written as comments.
 */
void kc_config_dump(const struct kc_config_entry *table, size_t n, const void *settings,
                    struct kc_sbuf *out);

/* Append one entry's value as it would appear unquoted in a file ("5min", "16MB", "true"). */
void kc_config_format_value(const struct kc_config_entry *e, const void *settings,
                            struct kc_sbuf *out);

/* Free the strings held by settings and set those fields to NULL. Safe to call twice. */
void kc_config_free(const struct kc_config_entry *table, size_t n, void *settings);

/*
 * Unit parsers, also usable on their own. s is NUL-terminated, without
 * surrounding spaces; a decimal fraction is allowed ("1.5s", "0.5GB") and
 * rounded to the nearest millisecond or byte. A bare number is multiplied by
 * bare_unit_ms (1000 for seconds, 1 for milliseconds). KC_EINVAL on bad or
 * overflowing input (err gets a short message).
 */
int kc_config_parse_duration(const char *s, int64_t bare_unit_ms, int64_t *ms,
                             struct kc_error *err) KC_MUSTCHECK;
int kc_config_parse_size(const char *s, int64_t *bytes, struct kc_error *err) KC_MUSTCHECK;
/* Render with the largest unit that divides exactly: 3600000 -> "1h", 1536 -> "1536". */
void kc_config_format_duration(int64_t ms, struct kc_sbuf *out);
void kc_config_format_size(int64_t bytes, struct kc_sbuf *out);

#endif
