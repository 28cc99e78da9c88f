/* SPDX-License-Identifier: Apache-2.0 */
/* timeline_meta_test.c -- unit tests for timeline_meta.c: round trip, malformed input, writes. */
#include "pageserver/timeline_meta.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "unit.h"

static const struct kc_id kt_tenant = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};
static const struct kc_id kt_tl = {{0xA0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};
static const struct kc_id kt_parent = {{0xB0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};

static uint64_t kt_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A branch's metadata with n L0 layers and one image layer (n >= 1); free with fini. */
static void kt_meta(struct ps_timeline_meta *m, size_t n)
{
    struct ps_key a = ps_key_min(), b = ps_key_max();
    struct ps_key i0 = ps_key_rel_block(1663, 5, 16384, 0, 0),
                  i1 = ps_key_rel_size(1663, 5, 16384, 0);

    memset(m, 0, sizeof(*m));
    m->tenant = kt_tenant;
    m->timeline = kt_tl;
    m->ancestor = kt_parent;
    m->ancestor_lsn = m->start_lsn = 0x1000;
    m->disk_consistent_lsn = 0x1000 + 0x100 * n;
    m->pg_system_id = 0x7300112233445566ULL;
    m->wal_seg_size = 16u * 1024 * 1024;
    m->nlayers = n + 1;
    m->layers = kc_calloc(n + 1, sizeof(*m->layers));
    for (size_t i = 0; i < n; i++) {
        ps_layer_desc_delta(&m->layers[i].desc, &kt_tenant, &kt_tl, &a, &b, 0x1001 + 0x100 * i,
                            0x1001 + 0x100 * (i + 1));
        m->layers[i].file_size = 1000 + i;
    }
    ps_layer_desc_image(&m->layers[n].desc, &kt_tenant, &kt_tl, &i0, &i1, 0x1080);
    m->layers[n].file_size = 9999;
    ps_timeline_meta_sort(m);
}

static void kt_encode(const struct ps_timeline_meta *m, struct kc_sbuf *out)
{
    kc_sbuf_reset(out);
    ps_timeline_meta_encode(m, out);
}

static void kt_same(const struct ps_timeline_meta *a, const struct ps_timeline_meta *b)
{
    KT_ASSERT(kc_id_equal(&a->tenant, &b->tenant) && kc_id_equal(&a->timeline, &b->timeline));
    KT_ASSERT(kc_id_equal(&a->ancestor, &b->ancestor));
    KT_ASSERT_UEQ(a->ancestor_lsn, b->ancestor_lsn);
    KT_ASSERT_UEQ(a->start_lsn, b->start_lsn);
    KT_ASSERT_UEQ(a->disk_consistent_lsn, b->disk_consistent_lsn);
    KT_ASSERT_UEQ(a->pg_system_id, b->pg_system_id);
    KT_ASSERT_EQ(a->wal_seg_size, b->wal_seg_size);
    KT_ASSERT_EQ(a->nlayers, b->nlayers);
    for (size_t i = 0; i < a->nlayers; i++) {
        const struct ps_layer_desc *x = &a->layers[i].desc, *y = &b->layers[i].desc;
        KT_ASSERT(x->kind == y->kind && ps_key_eq(&x->key_start, &y->key_start) &&
                  ps_key_eq(&x->key_end, &y->key_end) && x->lsn_start == y->lsn_start &&
                  x->lsn_end == y->lsn_end && kc_id_equal(&x->tenant, &y->tenant) &&
                  kc_id_equal(&x->timeline, &y->timeline));
        KT_ASSERT_UEQ(a->layers[i].file_size, b->layers[i].file_size);
    }
}

KT_TEST(timeline_meta_roundtrip_and_layout)
{
    struct ps_timeline_meta m, g;
    struct kc_sbuf b = KC_SBUF_INIT;
    struct kc_error err;

    kt_meta(&m, 3);
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), 0);
    /* The image layer at 0x1080 sorts between the first and the second delta. */
    KT_ASSERT(m.layers[1].desc.kind == PS_LAYER_IMAGE);
    kt_encode(&m, &b);
    KT_ASSERT_EQ(b.len, PS_TIMELINE_META_FIXED + 4 * PS_TIMELINE_META_LAYER);
    KT_ASSERT_MEM_EQ(b.data, "KTLM\x00\x01\x00\x00", 8);
    KT_ASSERT_EQ(kc_load_u32(b.data + 8), b.len);
    KT_ASSERT_MEM_EQ(b.data + 44, kt_parent.b, 16);
    KT_ASSERT_EQ(kc_load_u64(b.data + 76), 0x1300);
    KT_ASSERT_EQ(kc_load_u32(b.data + 96), 4);
    KT_ASSERT_EQ(ps_timeline_meta_decode(b.data, b.len, "m", &g, &err), 0);
    kt_same(&m, &g);
    ps_timeline_meta_fini(&g);
    /* A root timeline without layers. */
    ps_timeline_meta_fini(&m);
    kt_meta(&m, 1);
    m.nlayers = 0;
    m.ancestor = KC_ID_ZERO;
    m.ancestor_lsn = 0;
    m.start_lsn = 0;
    kt_encode(&m, &b);
    KT_ASSERT_EQ(b.len, PS_TIMELINE_META_FIXED);
    KT_ASSERT_EQ(ps_timeline_meta_decode(b.data, b.len, "m", &g, &err), 0);
    kt_same(&m, &g);
    ps_timeline_meta_fini(&g);
    ps_timeline_meta_fini(&m);
    kc_sbuf_fini(&b);
}

KT_TEST(timeline_meta_check_rejects_inconsistent_metadata)
{
    struct ps_timeline_meta m;
    struct kc_error err;
    struct ps_meta_layer keep;

    kt_meta(&m, 2);
    m.tenant = KC_ID_ZERO;
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), KC_EINVAL);
    m.tenant = kt_tenant;
    m.ancestor_lsn = 0x1001; /* a branch starts at its ancestor LSN */
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), KC_EINVAL);
    m.ancestor_lsn = 0x1000;
    m.ancestor = kt_tl;
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "its own ancestor");
    m.ancestor = KC_ID_ZERO; /* a root timeline has no ancestor LSN */
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), KC_EINVAL);
    m.ancestor = kt_parent;
    m.wal_seg_size = 12345;
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), KC_EINVAL);
    m.wal_seg_size = 1u << 24;
    m.disk_consistent_lsn = 0x11FF; /* below the end of the last layer */
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "outside the timeline's history");
    m.disk_consistent_lsn = 0x0FFF; /* below the start */
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), KC_EINVAL);
    m.disk_consistent_lsn = 0x1200;
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), 0);
    keep = m.layers[0];
    m.layers[0] = m.layers[2]; /* out of order */
    m.layers[2] = keep;
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "out of order");
    m.layers[2] = m.layers[0];
    m.layers[0] = keep;
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), 0);
    keep = m.layers[2];
    m.layers[2] = m.layers[1]; /* a duplicate */
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), KC_EINVAL);
    m.layers[2] = keep;
    m.layers[2].desc.lsn_start = m.layers[2].desc.lsn_end; /* an empty range */
    KT_ASSERT_EQ(ps_timeline_meta_check(&m, &err), KC_EINVAL);
    ps_timeline_meta_fini(&m);
}

KT_TEST(timeline_meta_malformed_files_are_errors)
{
    struct ps_timeline_meta m, g;
    struct kc_sbuf b = KC_SBUF_INIT;
    struct kc_error err;
    uint8_t *c;
    uint64_t s = 5;

    kt_meta(&m, 2);
    kt_encode(&m, &b);
    c = kc_malloc(b.len);
    /* Every truncation and every bit flip. */
    for (size_t n = 0; n < b.len; n++)
        KT_ASSERT_EQ(ps_timeline_meta_decode(b.data, n, "m", &g, &err), KC_ECORRUPT);
    for (size_t i = 0; i < b.len * 8; i++) {
        memcpy(c, b.data, b.len);
        c[i / 8] ^= (uint8_t)(1u << (i % 8));
        if (ps_timeline_meta_decode(c, b.len, "m", &g, &err) != KC_ECORRUPT)
            kt_fail(__FILE__, __LINE__, "bit flip %zu not detected", i);
    }
    KT_ASSERT_CONTAINS(err.message, "corrupt timeline metadata file \"m\"");
    KT_ASSERT(err.hint[0] != '\0');
    /* Random bytes, and random bytes behind a valid header and checksum. */
    for (int t = 0; t < 2000; t++) {
        size_t len = (size_t)(kt_rng(&s) % b.len) + 1;
        for (size_t i = 0; i < len; i++)
            c[i] = (uint8_t)kt_rng(&s);
        if (t % 2 == 1 && len >= 16) {
            memcpy(c, b.data, 8);
            kc_store_u32(c + 8, (uint32_t)len);
            kc_store_u32(c + len - 4, kc_crc32c(0, c, len - 4));
        }
        KT_ASSERT_EQ(ps_timeline_meta_decode(c, len, "m", &g, &err), KC_ECORRUPT);
    }
    /* A newer version with a valid checksum: EVERSION, not corruption. */
    memcpy(c, b.data, b.len);
    kc_store_u16(c + 4, 2);
    kc_store_u32(c + b.len - 4, kc_crc32c(0, c, b.len - 4));
    KT_ASSERT_EQ(ps_timeline_meta_decode(c, b.len, "m", &g, &err), KC_EVERSION);
    KT_ASSERT_CONTAINS(err.message, "unsupported version 2");
    /* Valid checksums around inconsistent fields: corrupt, naming the problem. */
    memcpy(c, b.data, b.len);
    kc_store_u64(c + 76, 0x1001); /* disk consistent LSN below the layers */
    kc_store_u32(c + b.len - 4, kc_crc32c(0, c, b.len - 4));
    KT_ASSERT_EQ(ps_timeline_meta_decode(c, b.len, "m", &g, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.detail, "outside the timeline's history");
    memcpy(c, b.data, b.len);
    c[PS_TIMELINE_META_FIXED - 4] = 9; /* layer kind */
    kc_store_u32(c + b.len - 4, kc_crc32c(0, c, b.len - 4));
    KT_ASSERT_EQ(ps_timeline_meta_decode(c, b.len, "m", &g, &err), KC_ECORRUPT);
    memcpy(c, b.data, b.len);
    kc_store_u32(c + 96, 2); /* layer count */
    kc_store_u32(c + b.len - 4, kc_crc32c(0, c, b.len - 4));
    KT_ASSERT_EQ(ps_timeline_meta_decode(c, b.len, "m", &g, &err), KC_ECORRUPT);
    free(c);
    ps_timeline_meta_fini(&m);
    kc_sbuf_fini(&b);
}

static bool kt_exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

KT_TEST(timeline_meta_write_is_atomic)
{
    const char *dir = kt_tmpdir();
    struct ps_timeline_meta m, g;
    struct kc_error err;
    pid_t pid;
    int status;

    KT_ASSERT_EQ(ps_timeline_meta_read(dir, &g, &err), KC_ENOTFOUND);
    kt_meta(&m, 1);
    KT_ASSERT_EQ(ps_timeline_meta_write(dir, &m, &err), 0);
    KT_ASSERT(!kt_exists(dir, PS_TIMELINE_META_TEMP));
    KT_ASSERT_EQ(ps_timeline_meta_read(dir, &g, &err), 0);
    kt_same(&m, &g);
    ps_timeline_meta_fini(&g);
    /* An error before the rename leaves the old file and no temporary file. */
    m.disk_consistent_lsn = 0x1200;
    KT_ASSERT_EQ(kc_failpoint_set("pageserver.timeline.before-metadata-rename", "return", &err), 0);
    KT_ASSERT_EQ(ps_timeline_meta_write(dir, &m, &err), KC_EFAILPOINT);
    KT_ASSERT(!kt_exists(dir, PS_TIMELINE_META_TEMP));
    KT_ASSERT_EQ(ps_timeline_meta_read(dir, &g, &err), 0);
    KT_ASSERT_UEQ(g.disk_consistent_lsn, 0x1100);
    ps_timeline_meta_fini(&g);
    /* A crash there leaves the old file and a temporary file (removed at open). */
    KT_ASSERT_EQ(kc_failpoint_set("pageserver.timeline.before-metadata-rename", "exit(9)", &err),
                 0);
    pid = fork();
    if (pid == 0)
        _exit(ps_timeline_meta_write(dir, &m, NULL) == 0 ? 0 : 1);
    KT_ASSERT(waitpid(pid, &status, 0) == pid);
    KT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 9);
    KT_ASSERT(kt_exists(dir, PS_TIMELINE_META_TEMP));
    KT_ASSERT_EQ(ps_timeline_meta_read(dir, &g, &err), 0);
    KT_ASSERT_UEQ(g.disk_consistent_lsn, 0x1100);
    ps_timeline_meta_fini(&g);
    /* After the rename the new file is in place even when the call reports an error. */
    kc_failpoints_reset();
    KT_ASSERT_EQ(kc_failpoint_set("pageserver.timeline.after-metadata-rename", "return", &err), 0);
    KT_ASSERT_EQ(ps_timeline_meta_write(dir, &m, &err), KC_EFAILPOINT);
    kc_failpoints_reset();
    KT_ASSERT_EQ(ps_timeline_meta_read(dir, &g, &err), 0);
    KT_ASSERT_UEQ(g.disk_consistent_lsn, 0x1200);
    ps_timeline_meta_fini(&g);
    /* Inconsistent metadata is never written. */
    m.disk_consistent_lsn = 0;
    KT_ASSERT_EQ(ps_timeline_meta_write(dir, &m, &err), KC_EINVAL);
    ps_timeline_meta_fini(&m);
}
