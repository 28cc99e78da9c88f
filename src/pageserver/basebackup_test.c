/* SPDX-License-Identifier: Apache-2.0 */
/*
 * basebackup_test.c -- unit tests for the basebackup: contents and order of
 * the archive, pg_control, the synthetic record at every placement (decoded
 * with PostgreSQL's own WAL reader), the nextOid margin, and clear errors
 * for every malformed input. Starting PostgreSQL on the result is
 * tests/test_basebackup.py's job.
 */
#include "pageserver/basebackup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/crc32c.h"
#include "pageserver/ingest.h"
#include "pageserver/wal_decoder.h"
#include "unit.h"

#define SEG      (16u * 1024 * 1024)
#define SYSID    7300000000000000001ULL
#define CKPT_LSN 0x1492FF8ULL /* the stored shutdown checkpoint record */
#define TP_XID   900u
#define TP_LEN   64u

/* ---- an in-memory state reader --------------------------------------------------- */

struct kv {
    struct ps_key k;
    uint8_t *v;
    size_t len;
};

struct mem {
    struct kv *kv;
    size_t n;
    int get_fail;       /* fail the get of this many-th call (1-based); 0 never */
    int gets;           /* get calls so far */
    bool list_unsorted; /* list keys in reverse order */
};

static void mem_put(struct mem *m, struct ps_key k, const void *v, size_t len)
{
    size_t i = 0;

    while (i < m->n && ps_key_cmp(&m->kv[i].k, &k) < 0)
        i++;
    if (i < m->n && ps_key_eq(&m->kv[i].k, &k)) {
        free(m->kv[i].v);
    } else {
        m->kv = kc_realloc(m->kv, (m->n + 1) * sizeof(*m->kv));
        memmove(m->kv + i + 1, m->kv + i, (m->n - i) * sizeof(*m->kv));
        m->n++;
    }
    m->kv[i].k = k;
    m->kv[i].v = kc_malloc(len ? len : 1);
    if (len)
        memcpy(m->kv[i].v, v, len);
    m->kv[i].len = len;
}

static void mem_del(struct mem *m, struct ps_key k)
{
    for (size_t i = 0; i < m->n; i++) {
        if (ps_key_eq(&m->kv[i].k, &k)) {
            free(m->kv[i].v);
            memmove(m->kv + i, m->kv + i + 1, (m->n - i - 1) * sizeof(*m->kv));
            m->n--;
            return;
        }
    }
}

static struct kv *mem_find(struct mem *m, const struct ps_key *k)
{
    for (size_t i = 0; i < m->n; i++)
        if (ps_key_eq(&m->kv[i].k, k))
            return &m->kv[i];
    return NULL;
}

static void mem_free(struct mem *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->kv[i].v);
    free(m->kv);
}

static int mem_get(void *arg, const struct ps_key *key, struct kc_sbuf *out, struct kc_error *err)
{
    struct mem *m = arg;
    struct kv *e;

    if (++m->gets == m->get_fail)
        return kc_error_set(err, KC_EIO, "injected read failure");
    e = mem_find(m, key);
    if (e == NULL)
        return 0;
    kc_sbuf_append(out, e->v, e->len);
    return 1;
}

static int mem_list(void *arg, const struct ps_key *start, const struct ps_key *end,
                    ps_bb_key_fn fn, void *fnarg, struct kc_error *err)
{
    struct mem *m = arg;
    int rc = 0;

    for (size_t j = 0; rc == 0 && j < m->n; j++) {
        size_t i = m->list_unsorted ? m->n - 1 - j : j;
        if (ps_key_cmp(&m->kv[i].k, start) >= 0 && ps_key_cmp(&m->kv[i].k, end) < 0)
            rc = fn(fnarg, &m->kv[i].k, err);
    }
    return rc;
}

static int mem_page(void *arg, const struct ps_key *key, uint8_t *page, struct kc_error *err)
{
    struct kv *e = mem_find(arg, key);

    (void)err;
    if (e == NULL)
        return 0;
    memcpy(page, e->v, PS_BB_PAGE_SIZE);
    return 1;
}

/* ---- building the state ------------------------------------------------------------- */

static struct ps_bb_checkpoint base_checkpoint(void)
{
    struct ps_bb_checkpoint c;

    memset(&c, 0, sizeof(c));
    c.redo = ps_bb_record_end(CKPT_LSN, SEG); /* ingest: the end of a shutdown checkpoint */
    c.tli = c.prev_tli = 1;
    c.full_page_writes = true;
    c.next_xid = 1000;
    c.next_oid = 20000;
    c.next_multi = 1;
    c.oldest_xid = 716;
    c.oldest_xid_db = 1;
    c.oldest_multi = 1;
    c.oldest_multi_db = 1;
    c.time = 1700000000;
    return c;
}

static void put_control(struct mem *m)
{
    struct ps_bb_control c;
    uint8_t img[PS_BB_CONTROL_SIZE];

    memset(&c, 0, sizeof(c));
    c.system_id = SYSID;
    c.state = PS_BB_DB_SHUTDOWNED;
    c.checkpoint_lsn = CKPT_LSN;
    c.checkpoint = base_checkpoint();
    c.checkpoint.redo = CKPT_LSN;
    c.seg_size = SEG;
    c.wal_level = 1;
    c.settings = (struct ps_bb_settings){100, 8, 10, 0, 64};
    ps_bb_control_build(&c, img);
    mem_put(m, ps_key_control_file(), img, sizeof(img));
}

static void put_checkpoint(struct mem *m, const struct ps_bb_checkpoint *c)
{
    uint8_t img[PS_BB_CHECKPOINT_LEN];

    ps_bb_checkpoint_encode(c, img);
    mem_put(m, ps_key_checkpoint(), img, sizeof(img));
}

/* A valid pg_filenode.map with n mappings starting at oid. */
static void relmap_image(uint8_t img[512], int32_t n, uint32_t oid)
{
    int32_t magic = 0x592717;
    uint32_t crc;

    memset(img, 0, 512);
    memcpy(img, &magic, 4);
    memcpy(img + 4, &n, 4);
    for (int32_t i = 0; i < n; i++) {
        uint32_t o = oid + (uint32_t)i;
        memcpy(img + 8 + 8 * i, &o, 4);
        memcpy(img + 12 + 8 * i, &o, 4);
    }
    crc = kc_crc32c(0, img, 504);
    memcpy(img + 504, &crc, 4);
}

static void put_dbdir(struct mem *m, const uint32_t *pairs, uint32_t n)
{
    struct kc_sbuf s = KC_SBUF_INIT;

    kc_sbuf_put_u8(&s, PS_DBDIR_VERSION);
    kc_sbuf_put_u32(&s, n);
    for (uint32_t i = 0; i < 2 * n; i++)
        kc_sbuf_put_u32(&s, pairs[i]);
    mem_put(m, ps_key_db_dir(), s.data, s.len);
    kc_sbuf_fini(&s);
}

static void put_size(struct mem *m, struct ps_key k, uint32_t n)
{
    uint8_t b[4];

    kc_store_u32(b, n);
    mem_put(m, k, b, 4);
}

/* The state of a small cluster: databases 1 and 5, CLOG, multixact offsets, a prepared xact. */
static void base_state(struct mem *m)
{
    static const uint32_t dbs[] = {1663, 1, 1663, 5};
    uint8_t map[512], clog[PS_BB_PAGE_SIZE + 8], tp[TP_LEN];
    struct ps_bb_checkpoint c = base_checkpoint();
    uint32_t magic = 0x57F94534, total = TP_LEN + 4;

    memset(m, 0, sizeof(*m));
    put_control(m);
    put_checkpoint(m, &c);
    put_dbdir(m, dbs, 2);
    relmap_image(map, 30, 1200);
    mem_put(m, ps_key_relmap(1664, 0), map, sizeof(map));
    relmap_image(map, 15, 1250);
    mem_put(m, ps_key_relmap(1663, 1), map, sizeof(map));
    relmap_image(map, 16, 1260);
    mem_put(m, ps_key_relmap(1663, 5), map, sizeof(map));
    memset(clog, 0x55, PS_BB_PAGE_SIZE);
    memset(clog + PS_BB_PAGE_SIZE, 0xEE, 8); /* the commit-time trailer: never written */
    mem_put(m, ps_key_slru_block(PS_SLRU_CLOG, 0, 0), clog, sizeof(clog));
    put_size(m, ps_key_slru_size(PS_SLRU_CLOG, 0), 1);
    put_size(m, ps_key_slru_size(PS_SLRU_MULTIXACT_OFFSETS, 0), 1); /* page absent: zeros */
    memset(tp, 0x11, sizeof(tp));
    memcpy(tp, &magic, 4);
    memcpy(tp + 4, &total, 4);
    mem_put(m, ps_key_twophase_file(TP_XID), tp, sizeof(tp));
}

static struct ps_bb_reader mem_reader(struct mem *m, bool pages)
{
    struct ps_bb_reader r = {m, mem_get, mem_list, pages ? mem_page : NULL};
    return r;
}

/* The end of the stored checkpoint record, where the tip's next record goes. */
static kc_lsn tip_lsn(void)
{
    return ps_bb_start_lsn(ps_bb_record_end(CKPT_LSN, SEG), SEG);
}

/* ---- the archive ------------------------------------------------------------------------ */

struct sink {
    struct kc_sbuf out;
    size_t limit; /* fail writes past this many bytes; 0: never */
};

static int sink_write(void *arg, const void *data, size_t len, struct kc_error *err)
{
    struct sink *s = arg;

    if (s->limit != 0 && s->out.len + len > s->limit)
        return kc_error_set(err, KC_EIO, "sink full");
    kc_sbuf_append(&s->out, data, len);
    return 0;
}

#define MAX_ENTRIES 64

struct entry {
    char path[KC_TAR_PATH_MAX + 1];
    char type;
    const uint8_t *data;
    uint64_t size;
};

struct archive {
    struct entry e[MAX_ENTRIES];
    int n;
    bool ended; /* the end-of-archive marker was found */
};

static void parse_archive(const struct kc_sbuf *s, struct archive *a)
{
    size_t off = 0;
    struct kc_error err;

    memset(a, 0, sizeof(*a));
    while (off + KC_TAR_BLOCK <= s->len) {
        struct kc_tar_header h;
        int rc = kc_tar_parse_header(s->data + off, &h, &err);
        if (rc < 0)
            kt_fail(__FILE__, __LINE__, "archive at %zu: %s", off, err.message);
        if (rc == 0) {
            a->ended = true;
            break;
        }
        if (a->n == MAX_ENTRIES)
            kt_fail(__FILE__, __LINE__, "too many entries");
        snprintf(a->e[a->n].path, sizeof(a->e[a->n].path), "%s", h.path);
        a->e[a->n].type = h.type;
        a->e[a->n].data = s->data + off + KC_TAR_BLOCK;
        a->e[a->n].size = h.size;
        a->n++;
        off += KC_TAR_BLOCK + kc_tar_padded(h.size);
    }
}

static int find(const struct archive *a, const char *path)
{
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->e[i].path, path) == 0)
            return i;
    return -1;
}

static const struct entry *must(const struct archive *a, const char *path)
{
    int i = find(a, path);

    if (i < 0)
        kt_fail(__FILE__, __LINE__, "archive lacks %s", path);
    return &a->e[i];
}

/* Run a basebackup of m at lsn into s; returns its result code. */
static int run(struct mem *m, const struct ps_bb_options *o, struct sink *s,
               struct ps_bb_result *res, struct kc_error *err)
{
    struct ps_bb_reader r = mem_reader(m, true);

    return ps_basebackup_write(&r, o, sink_write, s, res, err);
}

static struct ps_bb_options opts_at(kc_lsn lsn, kc_lsn prev)
{
    struct ps_bb_options o;

    memset(&o, 0, sizeof(o));
    o.lsn = lsn;
    o.prev_lsn = prev;
    o.mtime = 1700000000;
    return o;
}

KT_TEST(basebackup_archive_contents_and_order)
{
    struct mem m;
    struct sink s = {KC_SBUF_INIT, 0};
    struct archive a;
    struct ps_bb_result res;
    struct kc_error err;
    struct ps_bb_options o = opts_at(tip_lsn(), CKPT_LSN);
    const struct entry *e;
    uint8_t map[512], zeros[PS_BB_PAGE_SIZE] = {0};
    uint32_t crc;

    base_state(&m);
    KT_ASSERT_EQ(run(&m, &o, &s, &res, &err), 0);
    parse_archive(&s.out, &a);
    KT_ASSERT(a.ended);
    KT_ASSERT_UEQ(res.bytes, s.out.len);
    KT_ASSERT_STR_EQ(a.e[0].path, "PG_VERSION");
    KT_ASSERT_MEM_EQ(a.e[0].data, "15\n", 3);
    /* pg_control is the last entry, the WAL segment just before it. */
    KT_ASSERT_STR_EQ(a.e[a.n - 1].path, "global/pg_control");
    KT_ASSERT_UEQ(a.e[a.n - 1].size, PS_BB_CONTROL_SIZE);
    KT_ASSERT_STR_EQ(a.e[a.n - 2].path, "pg_wal/000000010000000000000001");
    KT_ASSERT_UEQ(a.e[a.n - 2].size, SEG);
    for (const char *const *d =
             (const char *const[]){"pg_wal", "pg_wal/archive_status", "pg_xact",
                                   "pg_multixact/offsets", "pg_logical/snapshots", "pg_tblspc",
                                   "base/1", "base/5", "global", NULL};
         *d != NULL; d++)
        KT_ASSERT_EQ(must(&a, *d)->type, '5');
    KT_ASSERT(find(&a, "postgresql.conf") >= 0 && find(&a, "postgresql.auto.conf") >= 0);
    KT_ASSERT_CONTAINS((const char *)must(&a, "pg_hba.conf")->data, "local   all");
    KT_ASSERT(find(&a, "pg_ident.conf") >= 0);
    KT_ASSERT(find(&a, "standby.signal") < 0);
    /* Databases: PG_VERSION and the map exactly as stored. */
    KT_ASSERT_MEM_EQ(must(&a, "base/5/PG_VERSION")->data, "15\n", 3);
    relmap_image(map, 16, 1260);
    KT_ASSERT_MEM_EQ(must(&a, "base/5/pg_filenode.map")->data, map, 512);
    relmap_image(map, 30, 1200);
    KT_ASSERT_MEM_EQ(must(&a, "global/pg_filenode.map")->data, map, 512);
    /* SLRUs: CLOG without its trailer; an absent page as zeros. */
    e = must(&a, "pg_xact/0000");
    KT_ASSERT_UEQ(e->size, PS_BB_PAGE_SIZE);
    KT_ASSERT(e->data[0] == 0x55 && e->data[PS_BB_PAGE_SIZE - 1] == 0x55);
    e = must(&a, "pg_multixact/offsets/0000");
    KT_ASSERT_MEM_EQ(e->data, zeros, PS_BB_PAGE_SIZE);
    KT_ASSERT(find(&a, "pg_multixact/members/0000") < 0);
    /* The twophase file gets its CRC back. */
    e = must(&a, "pg_twophase/00000384");
    KT_ASSERT_UEQ(e->size, TP_LEN + 4);
    crc = kc_crc32c(0, e->data, TP_LEN);
    KT_ASSERT_MEM_EQ(e->data + TP_LEN, &crc, 4);
    /* No relation data without --full. */
    KT_ASSERT_EQ(res.rel_files, 0);
    KT_ASSERT_EQ(res.databases, 2);
    KT_ASSERT_EQ(res.slru_files, 2);
    KT_ASSERT_EQ(res.twophase, 1);
    KT_ASSERT_EQ(res.wal_files, 1);
    /* The state is a shutdown right before the start LSN: no OID margin. */
    KT_ASSERT(!res.oid_margin);
    KT_ASSERT_EQ(res.next_oid, 20000);
    KT_ASSERT_UEQ(res.next_xid, 1000);
    kc_sbuf_fini(&s.out);
    mem_free(&m);
}

KT_TEST(basebackup_control_points_at_the_record)
{
    struct mem m;
    struct sink s = {KC_SBUF_INIT, 0};
    struct archive a;
    struct ps_bb_control c;
    struct kc_error err;
    struct ps_bb_options o = opts_at(0x1495FD0, 0);
    const struct entry *e;

    base_state(&m);
    o.settings.max_connections = 300;
    o.read_only = true;
    KT_ASSERT_EQ(run(&m, &o, &s, NULL, &err), 0);
    parse_archive(&s.out, &a);
    KT_ASSERT(find(&a, "standby.signal") >= 0);
    KT_ASSERT(find(&a, "standby.signal") < find(&a, "global/pg_control"));
    e = must(&a, "global/pg_control");
    KT_ASSERT_EQ(ps_bb_control_parse(e->data, e->size, &c, &err), 0);
    KT_ASSERT_UEQ(c.system_id, SYSID);
    KT_ASSERT_EQ(c.state, PS_BB_DB_SHUTDOWNED);
    KT_ASSERT_UEQ(c.checkpoint_lsn, 0x1495FD0);
    KT_ASSERT_UEQ(c.checkpoint.redo, 0x1495FD0);
    KT_ASSERT_EQ(c.checkpoint.oldest_active_xid, 0);
    KT_ASSERT_UEQ(c.checkpoint.next_xid, 1000);
    KT_ASSERT_EQ(c.checkpoint.next_oid, 20000 + PS_BB_OID_MARGIN);
    KT_ASSERT_UEQ(c.min_recovery_point, 0);
    KT_ASSERT_EQ(c.time, 1700000000);
    KT_ASSERT_EQ(c.settings.max_connections, 300);
    KT_ASSERT_EQ(c.settings.max_locks_per_xact, 64); /* kept */
    kc_sbuf_fini(&s.out);
    mem_free(&m);
}

/* The bytes of the WAL at lsn in the archive (which may hold two segments). */
static const uint8_t *wal_at(const struct archive *a, kc_lsn lsn)
{
    char name[KC_WAL_FILE_NAME_LEN], path[64];

    kc_wal_file_name(name, 1, kc_lsn_segno(lsn, SEG), SEG);
    snprintf(path, sizeof(path), "pg_wal/%s", name);
    return must(a, path)->data + kc_lsn_segoff(lsn, SEG);
}

static uint32_t le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Decode the record at lsn with PostgreSQL's reader and check the page headers. */
static void check_wal(const struct archive *a, kc_lsn lsn, kc_lsn prev)
{
    struct ps_wal_decoder *dec;
    struct ps_wal_record rec;
    struct ps_bb_checkpoint c;
    struct kc_error err;
    kc_lsn end = ps_bb_record_end(lsn, SEG), pos;
    kc_lsn seg0 = lsn - kc_lsn_segoff(lsn, SEG);
    int rc;

    /*
     * Fed whole: fed in small chunks, a record continued on a segment's first
     * page can trip the decoder (reported separately), which is not what
     * this test is about.
     */
    KT_ASSERT_EQ(ps_wal_decoder_create(lsn, SEG, SYSID, &dec, &err), 0);
    for (pos = ps_wal_decoder_input_end(dec); pos < end + 64; pos += 8)
        KT_ASSERT_EQ(ps_wal_decoder_feed(dec, pos, wal_at(a, pos), 8, &err), 0);
    rc = ps_wal_decoder_next(dec, &rec, &err);
    if (rc != 1)
        kt_fail(__FILE__, __LINE__, "record at %llx not decoded (%d): %s", (unsigned long long)lsn,
                rc, rc < 0 ? err.message : "short");
    KT_ASSERT_UEQ(rec.lsn, lsn);
    KT_ASSERT_UEQ(rec.end_lsn, (end + 7) & ~7ULL);
    KT_ASSERT_EQ(rec.rmid, 0); /* XLOG */
    KT_ASSERT_EQ(rec.info, 0); /* CHECKPOINT_SHUTDOWN */
    KT_ASSERT_EQ(rec.xid, 0);
    KT_ASSERT_EQ(rec.total_len, PS_BB_RECORD_LEN);
    KT_ASSERT_UEQ(le64(rec.raw + 8), prev); /* xl_prev */
    KT_ASSERT_EQ(ps_bb_checkpoint_parse(rec.main_data, rec.main_data_len, &c, &err), 0);
    KT_ASSERT_UEQ(c.redo, lsn);
    ps_wal_decoder_destroy(dec);

    /* Every page up to the record's: "continuation data up to the record". */
    for (kc_lsn p = seg0; p <= lsn; p += PS_BB_PAGE_SIZE) {
        const uint8_t *pg = wal_at(a, p);
        uint32_t hdr = p == seg0 ? 40 : 24;
        KT_ASSERT_EQ(pg[0] | pg[1] << 8, 0xD110);
        KT_ASSERT_UEQ(le64(pg + 8), p);
        KT_ASSERT_EQ(le32(pg + 4), 1); /* timeline */
        if (p == seg0) {
            KT_ASSERT_UEQ(le64(pg + 24), SYSID);
            KT_ASSERT_EQ(le32(pg + 32), SEG);
        }
        KT_ASSERT_UEQ(le32(pg + 16), lsn - p - hdr);
        KT_ASSERT_EQ((pg[2] & 1) != 0, lsn - p - hdr > 0); /* XLP_FIRST_IS_CONTRECORD */
    }
    /* After the record's last page: nothing. */
    {
        kc_lsn next = (end + PS_BB_PAGE_SIZE - 1) / PS_BB_PAGE_SIZE * PS_BB_PAGE_SIZE;
        static const uint8_t zeros[PS_BB_PAGE_SIZE];
        if (kc_lsn_segoff(next, SEG) != 0)
            KT_ASSERT_MEM_EQ(wal_at(a, next), zeros, PS_BB_PAGE_SIZE);
    }
}

KT_TEST(basebackup_record_at_every_placement)
{
    static const struct {
        kc_lsn lsn;
        int wal_files;
    } cases[] = {
        {0x1493070, 1}, /* mid-page: the end of the stored checkpoint record */
        {0x1495FD0, 1}, /* crosses a page: 48 bytes on the first */
        {0x1495FF8, 1}, /* crosses a page inside the record header */
        {0x1496018, 1}, /* first record position of a page */
        {0x2000028, 1}, /* first record position of a segment */
        {0x2FFFFD0, 2}, /* crosses into the next segment */
        {0x2FFFFF8, 2}, /* the same, inside the header */
    };

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        struct mem m;
        struct sink s = {KC_SBUF_INIT, 0};
        struct archive a;
        struct ps_bb_result res;
        struct kc_error err;
        kc_lsn prev = i % 2 ? CKPT_LSN : 0;
        struct ps_bb_options o = opts_at(cases[i].lsn, prev);

        base_state(&m);
        KT_ASSERT_EQ(run(&m, &o, &s, &res, &err), 0);
        parse_archive(&s.out, &a);
        KT_ASSERT_EQ(res.wal_files, cases[i].wal_files);
        KT_ASSERT_UEQ(res.record_end, ps_bb_record_end(cases[i].lsn, SEG));
        KT_ASSERT_STR_EQ(a.e[a.n - 1].path, "global/pg_control");
        check_wal(&a, cases[i].lsn, prev);
        kc_sbuf_fini(&s.out);
        mem_free(&m);
    }
}

KT_TEST(basebackup_lsn_placement_rules)
{
    KT_ASSERT(ps_bb_lsn_valid(0x1493070, SEG));
    KT_ASSERT(ps_bb_lsn_valid(0x1496018, SEG));  /* right after a short header */
    KT_ASSERT(!ps_bb_lsn_valid(0x1496010, SEG)); /* inside it */
    KT_ASSERT(!ps_bb_lsn_valid(0x1496000, SEG)); /* page start */
    KT_ASSERT(!ps_bb_lsn_valid(0x1493074, SEG)); /* unaligned */
    KT_ASSERT(ps_bb_lsn_valid(0x2000028, SEG));  /* after a long header */
    KT_ASSERT(!ps_bb_lsn_valid(0x2000018, SEG));
    KT_ASSERT(!ps_bb_lsn_valid(0, SEG));
    KT_ASSERT_UEQ(ps_bb_start_lsn(0x149306A, SEG), 0x1493070);
    KT_ASSERT_UEQ(ps_bb_start_lsn(0x1496000, SEG), 0x1496018);
    KT_ASSERT_UEQ(ps_bb_start_lsn(0x1FFFFFA, SEG), 0x2000028);
    KT_ASSERT_UEQ(ps_bb_record_end(0x1493070, SEG), 0x1493070 + 114);
    KT_ASSERT_UEQ(ps_bb_record_end(0x1495F88, SEG), 0x1495FFA); /* exactly fits */
    KT_ASSERT_UEQ(ps_bb_record_end(0x1495FD0, SEG), 0x1496018 + 114 - 48);
    KT_ASSERT_UEQ(ps_bb_record_end(0x2FFFFF8, SEG), 0x3000028 + 114 - 8);
}

KT_TEST(basebackup_fullbackup_writes_relation_files)
{
    struct mem m;
    struct sink s = {KC_SBUF_INIT, 0};
    struct archive a;
    struct ps_bb_result res;
    struct kc_error err;
    struct ps_bb_options o = opts_at(tip_lsn(), CKPT_LSN);
    uint8_t page[PS_BB_PAGE_SIZE], zeros[PS_BB_PAGE_SIZE] = {0};
    const struct entry *e;

    base_state(&m);
    memset(page, 0xAB, sizeof(page));
    mem_put(&m, ps_key_rel_block(1663, 5, 16384, 0, 0), page, sizeof(page));
    put_size(&m, ps_key_rel_size(1663, 5, 16384, 0), 2); /* block 1 is a hole */
    put_size(&m, ps_key_rel_size(1663, 5, 16384, 1), 0); /* an empty fsm fork */
    memset(page, 0xCD, sizeof(page));
    mem_put(&m, ps_key_rel_block(1664, 0, 1262, 0, 0), page, sizeof(page));
    put_size(&m, ps_key_rel_size(1664, 0, 1262, 0), 1);
    o.full = true;
    KT_ASSERT_EQ(run(&m, &o, &s, &res, &err), 0);
    parse_archive(&s.out, &a);
    e = must(&a, "base/5/16384");
    KT_ASSERT_UEQ(e->size, 2 * PS_BB_PAGE_SIZE);
    KT_ASSERT(e->data[0] == 0xAB && e->data[PS_BB_PAGE_SIZE - 1] == 0xAB);
    KT_ASSERT_MEM_EQ(e->data + PS_BB_PAGE_SIZE, zeros, PS_BB_PAGE_SIZE);
    KT_ASSERT_UEQ(must(&a, "base/5/16384_fsm")->size, 0);
    KT_ASSERT_EQ(must(&a, "global/1262")->data[0], 0xCD);
    KT_ASSERT_EQ(res.rel_files, 3);
    /* Relation files come before the tail. */
    KT_ASSERT(find(&a, "base/5/16384") < find(&a, "pg_xact/0000"));
    kc_sbuf_fini(&s.out);

    /* A fullbackup needs the page callback. */
    {
        struct ps_bb_reader r = mem_reader(&m, false);
        KT_ASSERT_EQ(ps_basebackup_write(&r, &o, sink_write, &s, NULL, &err), KC_EINVAL);
        KT_ASSERT_CONTAINS(err.message, "page callback");
    }
    mem_free(&m);
}

KT_TEST(basebackup_oid_margin_and_wraparound)
{
    struct mem m;
    struct sink s = {KC_SBUF_INIT, 0};
    struct ps_bb_result res;
    struct kc_error err;
    struct ps_bb_checkpoint c = base_checkpoint();
    struct ps_bb_options o = opts_at(0x2000028, CKPT_LSN);

    /* An online checkpoint (redo 0): nextOid may be stale by a prefetch. */
    base_state(&m);
    c.redo = 0;
    c.next_oid = 0xFFFFF000;
    put_checkpoint(&m, &c);
    KT_ASSERT_EQ(run(&m, &o, &s, &res, &err), 0);
    KT_ASSERT(res.oid_margin);
    KT_ASSERT_EQ(res.next_oid, 16384); /* wrapped past 2^32: FirstNormalObjectId */
    kc_sbuf_fini(&s.out);
    mem_free(&m);
}

/* ---- errors -------------------------------------------------------------------------------- */

/* Run with m's state; expect code and a message containing text, and no pg_control. */
static void expect_error(struct mem *m, const struct ps_bb_options *o, int code, const char *text)
{
    struct sink s = {KC_SBUF_INIT, 0};
    struct archive a;
    struct kc_error err;

    memset(&err, 0, sizeof(err));
    KT_ASSERT_EQ(run(m, o, &s, NULL, &err), code);
    KT_ASSERT_CONTAINS(err.message, text);
    parse_archive(&s.out, &a);
    KT_ASSERT(find(&a, "global/pg_control") < 0);
    KT_ASSERT(!a.ended);
    kc_sbuf_fini(&s.out);
}

KT_TEST(basebackup_errors_before_any_output)
{
    struct mem m;
    struct ps_bb_options o = opts_at(tip_lsn(), CKPT_LSN);
    struct ps_bb_checkpoint c = base_checkpoint();
    static const uint32_t bad_spc[] = {1700, 5};
    static const uint32_t unsorted[] = {1663, 5, 1663, 1};

    base_state(&m);
    mem_del(&m, ps_key_control_file());
    expect_error(&m, &o, KC_ENOTFOUND, "no control file image");
    mem_free(&m);

    /* A flipped bit in the control file image. */
    base_state(&m);
    {
        struct ps_key k = ps_key_control_file();
        mem_find(&m, &k)->v[40] ^= 0x10;
        expect_error(&m, &o, KC_ECORRUPT, "checksum does not match");
    }
    mem_free(&m);

    /* A control file of another major version. */
    base_state(&m);
    {
        struct ps_key k = ps_key_control_file();
        uint32_t v = 1201;
        memcpy(mem_find(&m, &k)->v + 8, &v, 4);
        expect_error(&m, &o, KC_EVERSION, "format version 1201");
    }
    mem_free(&m);

    base_state(&m);
    mem_del(&m, ps_key_checkpoint());
    expect_error(&m, &o, KC_ENOTFOUND, "no checkpoint");
    mem_free(&m);

    base_state(&m);
    mem_put(&m, ps_key_checkpoint(), "short", 5);
    expect_error(&m, &o, KC_ECORRUPT, "checkpoint image has 5 bytes");
    mem_free(&m);

    base_state(&m);
    c.next_xid = 2;
    put_checkpoint(&m, &c);
    expect_error(&m, &o, KC_ECORRUPT, "stored checkpoint is invalid");
    mem_free(&m);

    base_state(&m);
    mem_del(&m, ps_key_db_dir());
    expect_error(&m, &o, KC_ENOTFOUND, "no database directory");
    mem_free(&m);

    base_state(&m);
    mem_put(&m, ps_key_db_dir(), "\x01\x00\x00\x00\x02\x00", 6);
    expect_error(&m, &o, KC_ECORRUPT, "announces 2 databases");
    mem_free(&m);

    base_state(&m);
    mem_put(&m, ps_key_db_dir(), "\x07\x00\x00\x00\x00", 5);
    expect_error(&m, &o, KC_EVERSION, "version 7");
    mem_free(&m);

    base_state(&m);
    put_dbdir(&m, unsorted, 2);
    expect_error(&m, &o, KC_ECORRUPT, "not sorted");
    mem_free(&m);

    base_state(&m);
    put_dbdir(&m, bad_spc, 1);
    expect_error(&m, &o, KC_EINVAL, "tablespace 1700 is not supported");
    mem_free(&m);

    /* Bad options. */
    base_state(&m);
    o = opts_at(0x1493074, 0);
    expect_error(&m, &o, KC_EINVAL, "not a valid start LSN");
    o = opts_at(0x1496000, 0);
    expect_error(&m, &o, KC_EINVAL, "not a valid start LSN");
    o = opts_at(0x1493070, 0x1493070);
    expect_error(&m, &o, KC_EINVAL, "is not before the start LSN");
    o = opts_at(0x1493070, 0);
    o.settings.max_connections = -1;
    expect_error(&m, &o, KC_EINVAL, "must not be negative");
    mem_free(&m);
}

KT_TEST(basebackup_corrupt_values_are_named)
{
    struct mem m;
    struct ps_bb_options o = opts_at(tip_lsn(), CKPT_LSN);
    struct sink s = {KC_SBUF_INIT, 0};
    struct kc_error err;
    uint8_t map[512];

    /* A relmapper value with a flipped bit: its database is named. */
    base_state(&m);
    {
        struct ps_key k = ps_key_relmap(1663, 5);
        mem_find(&m, &k)->v[100] ^= 1;
        KT_ASSERT_EQ(run(&m, &o, &s, NULL, &err), KC_ECORRUPT);
        KT_ASSERT_STR_EQ(err.message,
                         "relation mapping file of database 5 (tablespace 1663) is corrupt");
        KT_ASSERT_CONTAINS(err.detail, "checksum does not match");
        kc_sbuf_fini(&s.out);
        s.out = (struct kc_sbuf)KC_SBUF_INIT;
    }
    mem_free(&m);

    base_state(&m);
    mem_put(&m, ps_key_relmap(1663, 1), map, 100);
    expect_error(&m, &o, KC_ECORRUPT, "database 1 (tablespace 1663) is corrupt");
    mem_free(&m);

    base_state(&m);
    relmap_image(map, 63, 1); /* more mappings than fit */
    mem_put(&m, ps_key_relmap(1663, 1), map, 512);
    expect_error(&m, &o, KC_ECORRUPT, "is corrupt");
    mem_free(&m);

    base_state(&m);
    mem_del(&m, ps_key_relmap(1664, 0));
    expect_error(&m, &o, KC_ENOTFOUND, "no shared relation mapping file");
    mem_free(&m);

    /* A database without a map (created, map not written yet): PG_VERSION only. */
    base_state(&m);
    mem_del(&m, ps_key_relmap(1663, 5));
    KT_ASSERT_EQ(run(&m, &o, &s, NULL, &err), 0);
    kc_sbuf_fini(&s.out);
    s.out = (struct kc_sbuf)KC_SBUF_INIT;
    mem_free(&m);

    base_state(&m);
    put_size(&m, ps_key_slru_size(PS_SLRU_CLOG, 0), 33);
    expect_error(&m, &o, KC_ECORRUPT, "has an invalid value");
    mem_free(&m);

    base_state(&m);
    mem_put(&m, ps_key_slru_block(PS_SLRU_CLOG, 0, 0), map, 512);
    expect_error(&m, &o, KC_ECORRUPT, "has 512 bytes");
    mem_free(&m);

    base_state(&m);
    memset(map, 0, sizeof(map));
    mem_put(&m, ps_key_twophase_file(TP_XID), map, 64);
    expect_error(&m, &o, KC_ECORRUPT, "two-phase state of transaction 900 is corrupt");
    mem_free(&m);
}

KT_TEST(basebackup_reader_and_writer_failures)
{
    struct mem m;
    struct ps_bb_options o = opts_at(tip_lsn(), CKPT_LSN);
    struct sink s = {KC_SBUF_INIT, 0};
    struct archive a;
    struct kc_error err;

    /* Every get of a full run, failed in turn, stops the backup with no pg_control. */
    base_state(&m);
    KT_ASSERT_EQ(run(&m, &o, &s, NULL, &err), 0);
    kc_sbuf_fini(&s.out);
    s.out = (struct kc_sbuf)KC_SBUF_INIT;
    KT_ASSERT_EQ(m.gets, 11);
    mem_free(&m);
    for (int i = 1; i <= 11; i++) {
        base_state(&m);
        m.get_fail = i;
        expect_error(&m, &o, KC_EIO, "injected read failure");
        mem_free(&m);
    }
    base_state(&m);
    m.list_unsorted = true;
    expect_error(&m, &o, KC_ECORRUPT, "out of order or range");
    mem_free(&m);

    /* A write failure in the WAL segment: the archive has no pg_control. */
    base_state(&m);
    s.limit = 5u * 1024 * 1024;
    KT_ASSERT_EQ(run(&m, &o, &s, NULL, &err), KC_EIO);
    KT_ASSERT_STR_EQ(err.message, "sink full");
    s.limit = 0;
    kc_sbuf_append(&s.out, (uint8_t[KC_TAR_BLOCK]){0}, KC_TAR_BLOCK); /* stop the parser */
    parse_archive(&s.out, &a);
    KT_ASSERT(find(&a, "global/pg_control") < 0);
    KT_ASSERT(find(&a, "pg_xact/0000") >= 0);
    kc_sbuf_fini(&s.out);
    mem_free(&m);

    /* Missing callbacks. */
    {
        struct ps_bb_reader r = {NULL, NULL, NULL, NULL};
        KT_ASSERT_EQ(ps_basebackup_write(&r, &o, sink_write, &s, NULL, &err), KC_EINVAL);
    }
}

/* Counts bytes only: fuzzing writes many archives. */
static int count_write(void *arg, const void *data, size_t len, struct kc_error *err)
{
    (void)data, (void)err;
    *(size_t *)arg += len;
    return 0;
}

KT_TEST(basebackup_survives_random_values)
{
    const struct ps_key keys[] = {
        ps_key_control_file(),
        ps_key_checkpoint(),
        ps_key_db_dir(),
        ps_key_relmap(1663, 5),
        ps_key_relmap(1664, 0),
        ps_key_slru_size(PS_SLRU_CLOG, 0),
        ps_key_slru_block(PS_SLRU_CLOG, 0, 0),
        ps_key_twophase_file(TP_XID),
    };
    uint8_t buf[PS_BB_CONTROL_SIZE + 16];
    struct ps_bb_options o = opts_at(0x1000028, 0);

    srand(11);
    for (size_t k = 0; k < KC_ARRAY_LEN(keys); k++) {
        for (int round = 0; round < 24; round++) {
            struct mem m;
            struct ps_bb_reader r = mem_reader(&m, true);
            struct kc_error err;
            size_t bytes = 0, len;
            struct kv *e;
            int rc;

            base_state(&m);
            e = mem_find(&m, &keys[k]);
            if (round % 2 == 0) { /* random bytes of a random length */
                len = (size_t)rand() % sizeof(buf);
                for (size_t i = 0; i < len; i++)
                    buf[i] = (uint8_t)rand();
            } else { /* the real value, truncated or with a flipped bit */
                len = e->len;
                memcpy(buf, e->v, len);
                if (round % 4 == 1 && len > 0)
                    len = (size_t)rand() % len;
                else if (len > 0)
                    buf[(size_t)rand() % len] ^= (uint8_t)(1u << (rand() % 8));
            }
            mem_put(&m, keys[k], buf, len);
            rc = ps_basebackup_write(&r, &o, count_write, &bytes, NULL, &err);
            KT_ASSERT(rc == 0 || rc == KC_ECORRUPT || rc == KC_EVERSION || rc == KC_EINVAL ||
                      rc == KC_ENOTFOUND);
            mem_free(&m);
        }
    }
}

KT_TEST(basebackup_control_and_checkpoint_round_trip)
{
    struct ps_bb_checkpoint c = base_checkpoint(), back;
    struct ps_bb_control ctl;
    uint8_t img[PS_BB_CHECKPOINT_LEN], control[PS_BB_CONTROL_SIZE];
    struct kc_error err;
    struct mem m;

    c.next_xid = (3ULL << 32) | 12345;
    ps_bb_checkpoint_encode(&c, img);
    KT_ASSERT_EQ(ps_bb_checkpoint_parse(img, sizeof(img), &back, &err), 0);
    KT_ASSERT_MEM_EQ(&c, &back, sizeof(c));
    KT_ASSERT_EQ(ps_bb_checkpoint_parse(img, sizeof(img) - 1, &back, &err), KC_ECORRUPT);

    base_state(&m);
    {
        struct ps_key k = ps_key_control_file();
        memcpy(control, mem_find(&m, &k)->v, sizeof(control));
    }
    KT_ASSERT_EQ(ps_bb_control_parse(control, sizeof(control), &ctl, &err), 0);
    KT_ASSERT_UEQ(ctl.system_id, SYSID);
    KT_ASSERT_EQ(ctl.seg_size, SEG);
    KT_ASSERT_EQ(ps_bb_control_parse(control, 100, &ctl, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "control file has 100 bytes");
    /* Random bytes and bit flips: an error, never a crash. */
    srand(5);
    for (int i = 0; i < 2000; i++) {
        uint8_t x[PS_BB_CONTROL_SIZE];
        int rc;
        memcpy(x, control, sizeof(x));
        if (i % 2)
            x[rand() % 300] ^= (uint8_t)(1u << (rand() % 8));
        else
            for (int j = 0; j < 300; j++)
                x[j] = (uint8_t)rand();
        rc = ps_bb_control_parse(x, sizeof(x), &ctl, &err);
        KT_ASSERT(rc == 0 || rc == KC_ECORRUPT || rc == KC_EVERSION);
    }
    mem_free(&m);
}
