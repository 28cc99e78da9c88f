/* SPDX-License-Identifier: Apache-2.0 */
/*
 * debug_redo.c -- `kelp debug-redo`: rebuild pages from WAL files alone with
 * the pageserver's WAL-redo pool (debugging, and the driver of
 * tests/test_walredo.py).
 *
 * It decodes the WAL between --start and --end and keeps, for every block
 * the records touch, the chain needed to rebuild it: the last record that
 * restores a full-page image of the block or initializes it, and every
 * record after it that references the block. With --vm, heap records are
 * also chained to the visibility-map page that covers their heap block
 * (they clear its bits without naming it). Then it answers commands read
 * from stdin, one per line, one answer each on stdout:
 *
 *   blocks                       "block SPC DB REL FORK BLK NRECORDS" per
 *                                rebuildable block, then "end"
 *   redo SPC DB REL FORK BLK [HEX]
 *                                "page NRECORDS HEX" (the 8192-byte page) or
 *                                "error MESSAGE"; HEX is an extra raw record
 *                                applied after the chain (tests: bad records)
 *   prefix SPC DB REL FORK BLK N the same with only the chain's first N records
 *   pids                         "pids PID..." of the running helpers
 *   metrics                      the kelp_pageserver_walredo lines, then "end"
 *   quit                         exit (as does end of input)
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/hashmap.h"
#include "common/hex.h"
#include "common/lsn.h"
#include "common/metrics.h"
#include "common/proc.h"
#include "pageserver/wal_decoder.h"
#include "pageserver/walredo.h"

#define DR_RM_HEAP2          9     /* RM_HEAP2_ID */
#define DR_RM_HEAP           10    /* RM_HEAP_ID */
#define DR_HEAPBLOCKS_PER_VM 32672 /* (BLCKSZ - page header) * 4 heap blocks per VM page */
#define DR_MAX_LINE          (2 * 1024 * 1024)

struct debug_redo_settings {
    char *wal_dir;
    char *start;
    char *end;
    int64_t seg_size;
    char *pg_bindir;
    char *scratch;
    char *os_user;
    int64_t helpers;
    int64_t timeout_ms;
    bool vm;
};

static const struct kc_config_entry debug_redo_options[] = {
    CLI_WAL_FILE_OPTIONS(struct debug_redo_settings, KC_CONFIG_REQUIRED),
    CLI_WALREDO_POOL_OPTIONS(struct debug_redo_settings),
    {.name = "helpers",
     .type = KC_CONFIG_INT,
     .offset = offsetof(struct debug_redo_settings, helpers),
     .default_value = "2",
     .min = 1,
     .max = 64,
     .help = "WAL-redo helper processes in the pool"},
    {.name = "timeout",
     .type = KC_CONFIG_DURATION,
     .offset = offsetof(struct debug_redo_settings, timeout_ms),
     .default_value = "10s",
     .min = 1,
     .max = 3600 * 1000,
     .help = "how long a helper may take to answer"},
    {.name = "vm",
     .type = KC_CONFIG_BOOL,
     .offset = offsetof(struct debug_redo_settings, vm),
     .default_value = "false",
     .help = "chain heap records to the visibility-map pages of their heap blocks"},
};

/* A record kept for replay (raw bytes copied out of the decoder). */
struct dr_record {
    kc_lsn lsn, end_lsn;
    uint8_t *raw;
    uint32_t len;
};

/* A block and the records that rebuild it, as indexes into the record array. */
struct dr_block {
    struct ps_redo_tag tag;
    bool used;
    bool started; /* chain begins with an image or an init */
    size_t *chain;
    size_t n, cap;
};

struct dr_state;
struct dr_load_arg {
    struct dr_state *state;
    bool vm;
};

struct dr_state {
    struct dr_record *recs;
    size_t nrecs, cap;
    struct dr_block *blocks; /* dense; pointers into it last until the next dr_find(create) */
    size_t nblocks, bcap;
    struct kc_hmap *index; /* packed tag -> index in blocks */
};

/* The tag as fixed-size bytes for the hash map. */
static void dr_tag_key(const struct ps_redo_tag *t, uint8_t key[17])
{
    uint32_t v[4] = {t->spcnode, t->dbnode, t->relnode, t->blkno};
    memcpy(key, v, sizeof(v));
    key[16] = t->forknum;
}

static struct dr_block *dr_find(struct dr_state *s, const struct ps_redo_tag *t, bool create)
{
    uint8_t key[17];
    uint64_t i;

    dr_tag_key(t, key);
    if (kc_hmap_get(s->index, key, &i))
        return &s->blocks[i];
    if (!create)
        return NULL;
    if (s->nblocks == s->bcap) {
        s->bcap = s->bcap ? s->bcap * 2 : 1024;
        s->blocks = kc_realloc(s->blocks, s->bcap * sizeof(*s->blocks));
    }
    s->blocks[s->nblocks] = (struct dr_block){.tag = *t, .used = true};
    kc_hmap_put(s->index, key, s->nblocks);
    return &s->blocks[s->nblocks++];
}

static void dr_chain_add(struct dr_block *b, size_t rec, bool restart)
{
    if (restart) {
        b->n = 0;
        b->started = true;
    }
    if (!b->started || (b->n > 0 && b->chain[b->n - 1] == rec))
        return;
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->chain = kc_realloc(b->chain, b->cap * sizeof(*b->chain));
    }
    b->chain[b->n++] = rec;
}

/* Keep rec and chain it to the blocks it touches. */
static void dr_add_record(struct dr_state *s, const struct ps_wal_record *rec, bool vm)
{
    size_t idx = s->nrecs;

    if (s->nrecs == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->recs = kc_realloc(s->recs, s->cap * sizeof(*s->recs));
    }
    s->recs[idx] =
        (struct dr_record){rec->lsn, rec->end_lsn, kc_malloc(rec->total_len), rec->total_len};
    memcpy(s->recs[idx].raw, rec->raw, rec->total_len);
    s->nrecs++;
    for (int i = 0; i < rec->nblocks; i++) {
        const struct ps_wal_block_ref *r = &rec->blocks[i];
        struct ps_redo_tag t = {r->spcnode, r->dbnode, r->relnode, r->forknum, r->blkno};
        dr_chain_add(dr_find(s, &t, true), idx, r->apply_image || r->will_init);
    }
    if (!vm || (rec->rmid != DR_RM_HEAP && rec->rmid != DR_RM_HEAP2))
        return;
    for (int i = 0; i < rec->nblocks; i++) {
        const struct ps_wal_block_ref *r = &rec->blocks[i];
        struct ps_redo_tag t = {r->spcnode, r->dbnode, r->relnode, 2,
                                r->blkno / DR_HEAPBLOCKS_PER_VM};
        struct dr_block *b = r->forknum == 0 ? dr_find(s, &t, false) : NULL;
        if (b != NULL)
            dr_chain_add(b, idx, false);
    }
}

static void dr_free(struct dr_state *s)
{
    for (size_t i = 0; i < s->nrecs; i++)
        free(s->recs[i].raw);
    for (size_t i = 0; i < s->nblocks; i++)
        free(s->blocks[i].chain);
    kc_hmap_destroy(s->index);
    free(s->recs);
    free(s->blocks);
}

static int dr_one(void *arg, struct ps_wal_decoder *dec, const struct ps_wal_record *rec,
                  struct kc_error *err)
{
    struct dr_load_arg *la = arg;

    (void)dec, (void)err;
    dr_add_record(la->state, rec, la->vm);
    return 0;
}

/* Decode [start, end) (end 0: all the valid WAL there is) into s. */
static int dr_load(struct dr_state *s, const struct debug_redo_settings *set, kc_lsn start,
                   kc_lsn end, struct kc_error *err)
{
    struct cli_wal_source src = {.dir = set->wal_dir,
                                 .seg_size = (uint32_t)set->seg_size,
                                 .start = start,
                                 .end = end,
                                 .chunk = 1024 * 1024,
                                 .corrupt_is_end = true};
    struct dr_load_arg la = {s, set->vm};
    long n = cli_decode_wal_files(&src, dr_one, &la, NULL, err);

    return n < 0 ? (int)n : 0;
}

/* Parse hex (an even number of digits) into a new buffer; NULL when malformed. */
static uint8_t *dr_unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    uint8_t *out;

    if (n % 2 != 0)
        return NULL;
    out = kc_malloc(n / 2 + 1);
    if (kc_hex_decode(hex, n / 2, out) != 0) {
        free(out);
        return NULL;
    }
    *len = n / 2;
    return out;
}

/*
 * Answer "redo SPC DB REL FORK BLK [HEX]", or with prefix "prefix SPC DB REL
 * FORK BLK N" (only the chain's first N records). args is modified.
 */
static void dr_cmd_redo(struct dr_state *s, struct ps_walredo_pool *pool, char *args, bool prefix)
{
    char *save = NULL, *tok[6] = {0};
    unsigned long v[5];
    struct ps_redo_tag t;
    struct dr_block *b;
    struct ps_redo_record *recs;
    struct ps_redo_request req;
    uint8_t page[PS_REDO_PAGE_SIZE], *extra = NULL;
    struct kc_error err;
    size_t n = 0, extra_len = 0, limit = SIZE_MAX;
    int ntok = 0;

    for (char *p = strtok_r(args, " ", &save); p != NULL && ntok < 6;
         p = strtok_r(NULL, " ", &save))
        tok[ntok++] = p;
    for (int i = 0; i < 5 && i < ntok; i++)
        v[i] = strtoul(tok[i], NULL, 10);
    if (prefix && ntok == 6)
        limit = strtoul(tok[5], NULL, 10);
    else if (ntok == 6)
        extra = dr_unhex(tok[5], &extra_len);
    if (ntok < 5 || v[3] > 3 || (ntok == 6 && !prefix && extra == NULL) || (prefix && ntok != 6)) {
        printf("error usage: redo SPC DB REL FORK BLK [HEX] | prefix SPC DB REL FORK BLK N\n");
        return;
    }
    t = (struct ps_redo_tag){(uint32_t)v[0], (uint32_t)v[1], (uint32_t)v[2], (uint8_t)v[3],
                             (uint32_t)v[4]};
    b = dr_find(s, &t, false);
    if (b == NULL || !b->started) {
        printf("error no image or init record for that block in the WAL\n");
        free(extra);
        return;
    }
    recs = kc_calloc(b->n + 1, sizeof(*recs));
    for (size_t i = 0; i < b->n && i < limit; i++) {
        const struct dr_record *r = &s->recs[b->chain[i]];
        recs[n++] = (struct ps_redo_record){r->lsn, r->end_lsn, r->raw, r->len};
    }
    if (extra != NULL) {
        kc_lsn at = n > 0 ? recs[n - 1].end_lsn : 0x1000000;
        recs[n++] = (struct ps_redo_record){at, at + 8192, extra, (uint32_t)extra_len};
    }
    req = (struct ps_redo_request){.tag = t, .records = recs, .nrecords = n};
    if (ps_walredo_apply(pool, &req, page, &err) != 0) {
        printf("error %s\n", err.message);
    } else {
        printf("page %zu ", n);
        for (size_t i = 0; i < sizeof(page); i++)
            printf("%02x", page[i]);
        putchar('\n');
    }
    free(extra);
    free(recs);
}

static void dr_cmd_metrics(void)
{
    struct kc_sbuf out = KC_SBUF_INIT;
    char *save = NULL;

    kc_metrics_render(NULL, &out);
    if (out.data != NULL)
        for (char *p = strtok_r((char *)out.data, "\n", &save); p != NULL;
             p = strtok_r(NULL, "\n", &save))
            if (strncmp(p, "kelp_pageserver_walredo_", 24) == 0)
                printf("%s\n", p);
    printf("end\n");
    kc_sbuf_fini(&out);
}

static void dr_serve(struct dr_state *s, struct ps_walredo_pool *pool, int nprocs)
{
    char *line = kc_malloc(DR_MAX_LINE);

    while (fgets(line, DR_MAX_LINE, stdin) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strcmp(line, "quit") == 0)
            break;
        if (strcmp(line, "blocks") == 0) {
            for (size_t i = 0; i < s->nblocks; i++) {
                const struct dr_block *b = &s->blocks[i];
                if (b->used && b->started)
                    printf("block %u %u %u %u %u %zu\n", b->tag.spcnode, b->tag.dbnode,
                           b->tag.relnode, b->tag.forknum, b->tag.blkno, b->n);
            }
            printf("end\n");
        } else if (strncmp(line, "redo ", 5) == 0) {
            dr_cmd_redo(s, pool, line + 5, false);
        } else if (strncmp(line, "prefix ", 7) == 0) {
            dr_cmd_redo(s, pool, line + 7, true);
        } else if (strcmp(line, "pids") == 0) {
            pid_t pids[64];
            int n = ps_walredo_pool_pids(pool, pids, 64);
            printf("pids");
            for (int i = 0; i < n && i < nprocs; i++)
                printf(" %d", (int)pids[i]);
            putchar('\n');
        } else if (strcmp(line, "metrics") == 0) {
            dr_cmd_metrics();
        } else {
            printf("error unknown command\n");
        }
        fflush(stdout);
    }
    free(line);
}

static int cmd_debug_redo(const struct cli_command *cmd, void *settings, int argc, char **argv)
{
    struct debug_redo_settings *set = settings;
    struct dr_state state = {.index = kc_hmap_create(17)};
    struct ps_walredo_pool *pool = NULL;
    struct ps_walredo_opts opts;
    struct kc_error err;
    kc_lsn start, end = 0;
    int rc = CLI_EXIT_FAIL;

    (void)argc, (void)argv;
    if (cli_parse_lsn_range(set->start, set->end, &start, &end, &err) != 0) {
        cli_report_error(cmd, &err);
        dr_free(&state);
        return CLI_EXIT_USAGE;
    }
    if (dr_load(&state, set, start, end, &err) != 0)
        goto out;
    fprintf(stderr, "loaded %zu records touching %zu blocks\n", state.nrecs, state.nblocks);
    ps_walredo_opts_init(&opts);
    opts.timeout_ms = (unsigned)set->timeout_ms;
    if (ps_walredo_pool_create(set->pg_bindir, set->scratch, (int)set->helpers, set->os_user, &opts,
                               &pool, &err) != 0)
        goto out;
    printf("ready\n");
    fflush(stdout);
    dr_serve(&state, pool, (int)set->helpers);
    rc = CLI_EXIT_OK;
out:
    if (rc != CLI_EXIT_OK)
        cli_report_error(cmd, &err);
    ps_walredo_pool_destroy(pool);
    dr_free(&state);
    return rc;
}

const struct cli_command cli_cmd_debug_redo = {
    .name = "debug-redo",
    .group = "commands",
    .summary = "rebuild pages from WAL with the WAL-redo helpers (debugging)",
    .description =
        "Decodes WAL segment files from --start to --end, keeps for every block the\n"
        "records that rebuild it (from its last full-page image or init record),\n"
        "starts a pool of PostgreSQL WAL-redo helpers, then answers commands on\n"
        "stdin, one per line: blocks, redo SPC DB REL FORK BLK [HEX], prefix\n"
        "SPC DB REL FORK BLK N, pids, metrics, quit. See the top of src/cli/debug_redo.c.",
    .options = debug_redo_options,
    .noptions = KC_ARRAY_LEN(debug_redo_options),
    .settings_size = sizeof(struct debug_redo_settings),
    .run = cmd_debug_redo,
};
