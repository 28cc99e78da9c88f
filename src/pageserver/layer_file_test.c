/* SPDX-License-Identifier: Apache-2.0 */
/* layer_file_test.c -- unit tests for layer_file.c: descriptions, names, layout. */
#include "pageserver/layer_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "unit.h"

static const struct kc_id kt_tenant = {{0xAA, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};
static const struct kc_id kt_timeline = {{0xBB, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}};

static const char kt_delta_name[] = "000000067f00000005000040000000000000-"
                                    "000000067f000000050000400000000003e8"
                                    "__0000000001696B48-00000000016A0000";

KT_TEST(layer_name_format_and_parse)
{
    struct ps_key a = ps_key_rel_block(1663, 5, 16384, 0, 0);
    struct ps_key b = ps_key_rel_block(1663, 5, 16384, 0, 1000);
    struct ps_key min = ps_key_min(), max = ps_key_max();
    struct ps_layer_desc d, p;
    char buf[PS_LAYER_NAME_MAX];
    struct kc_error err;

    ps_layer_desc_delta(&d, &kt_tenant, &kt_timeline, &a, &b, 0x1696B48, 0x16A0000);
    KT_ASSERT_EQ(sizeof(kt_delta_name) - 1, 108);
    KT_ASSERT_STR_EQ(ps_layer_name_format(&d, buf),
                     "000000067f00000005000040000000000000-000000067f000000050000400000000003e8"
                     "__0000000001696B48-00000000016A0000");
    KT_ASSERT_EQ(strlen(buf), PS_LAYER_NAME_DELTA_LEN);
    KT_ASSERT_EQ(ps_layer_name_parse(buf, &p, &err), 0);
    KT_ASSERT_EQ(p.kind, PS_LAYER_DELTA);
    KT_ASSERT(ps_key_eq(&p.key_start, &a) && ps_key_eq(&p.key_end, &b));
    KT_ASSERT_EQ(p.lsn_start, 0x1696B48);
    KT_ASSERT_EQ(p.lsn_end, 0x16A0000);
    KT_ASSERT(kc_id_is_zero(&p.tenant) && kc_id_is_zero(&p.timeline));

    ps_layer_desc_image(&d, &kt_tenant, &kt_timeline, &min, &max, 0xFFFFFFFFFFFFFFFEull);
    KT_ASSERT_STR_EQ(ps_layer_name_format(&d, buf), "000000000000000000000000000000000000-"
                                                    "ffffffffffffffffffffffffffffffffffff"
                                                    "__FFFFFFFFFFFFFFFE");
    KT_ASSERT_EQ(strlen(buf), PS_LAYER_NAME_IMAGE_LEN);
    KT_ASSERT_EQ(ps_layer_name_parse(buf, &p, &err), 0);
    KT_ASSERT_EQ(p.kind, PS_LAYER_IMAGE);
    KT_ASSERT_EQ(p.lsn_start, 0xFFFFFFFFFFFFFFFEull);
    KT_ASSERT_EQ(p.lsn_end, 0xFFFFFFFFFFFFFFFFull);
    KT_ASSERT(ps_key_eq(&p.key_start, &min) && ps_key_eq(&p.key_end, &max));
}

KT_TEST(layer_name_parse_rejects_malformed_names)
{
    static const char *const bad[] = {
        "",
        "x",
        /* upper-case key, lower-case LSN */
        "000000067F00000005000040000000000000-000000067f000000050000400000000003e8__"
        "0000000001696B48",
        "000000067f00000005000040000000000000-000000067f000000050000400000000003e8__"
        "0000000001696b48",
        /* separators */
        "000000067f00000005000040000000000000_000000067f000000050000400000000003e8__"
        "0000000001696B48",
        "000000067f00000005000040000000000000-000000067f000000050000400000000003e8-_"
        "0000000001696B48",
        "000000067f00000005000040000000000000-000000067f000000050000400000000003e8__"
        "0000000001696B48_"
        "00000000016A0000",
        /* empty or reversed ranges */
        "000000067f00000005000040000000000000-000000067f00000005000040000000000000__"
        "0000000001696B48",
        "000000067f000000050000400000000003e8-000000067f00000005000040000000000000__"
        "0000000001696B48",
        "000000067f00000005000040000000000000-000000067f000000050000400000000003e8__"
        "0000000001696B48-"
        "0000000001696B48",
        "000000067f00000005000040000000000000-000000067f000000050000400000000003e8__"
        "0000000001696B48-"
        "0000000000000001",
        /* an image at the largest LSN has no end */
        "000000067f00000005000040000000000000-000000067f000000050000400000000003e8__"
        "FFFFFFFFFFFFFFFF",
        /* a temporary file, a generation suffix, a leading path */
        "000000067f00000005000040000000000000-000000067f000000050000400000000003e8__"
        "0000000001696B48."
        "0badf00d.tmp",
        "000000067f00000005000040000000000000-000000067f000000050000400000000003e8__"
        "0000000001696B48-"
        "v1-00000001",
        "/000000067f00000005000040000000000000-000000067f000000050000400000000003e8__"
        "0000000001696B4",
        " 000000067f00000005000040000000000000-000000067f000000050000400000000003e8__"
        "0000000001696B4",
    };
    struct ps_layer_desc p;
    struct kc_error err;
    char name[PS_LAYER_NAME_MAX + 2];

    memset(&p, 0x5A, sizeof(p));
    for (size_t i = 0; i < KC_ARRAY_LEN(bad); i++) {
        if (ps_layer_name_parse(bad[i], &p, &err) != KC_EINVAL)
            kt_fail(__FILE__, __LINE__, "accepted bad name %zu: %s", i, bad[i]);
        KT_ASSERT_CONTAINS(err.message, "invalid layer file name");
        KT_ASSERT(err.detail[0] != '\0');
        KT_ASSERT(err.hint[0] != '\0');
    }
    KT_ASSERT_EQ(p.lsn_start, 0x5A5A5A5A5A5A5A5Aull); /* untouched on failure */
    /* Every truncation, and every character replaced by one that is never valid there. */
    for (size_t cut = 0; cut < sizeof(kt_delta_name) - 1; cut++) {
        snprintf(name, sizeof(name), "%.*s", (int)cut, kt_delta_name);
        if (cut == PS_LAYER_NAME_IMAGE_LEN) { /* the image layer at the start LSN */
            KT_ASSERT_EQ(ps_layer_name_parse(name, &p, NULL), 0);
            KT_ASSERT_EQ(p.kind, PS_LAYER_IMAGE);
            continue;
        }
        KT_ASSERT_EQ(ps_layer_name_parse(name, &p, NULL), KC_EINVAL);
    }
    for (size_t pos = 0; pos < sizeof(kt_delta_name) - 1; pos++) {
        static const char subst[] = {'g', 'G', '.', ' ', '/', '\x01', '\xff', 'z'};
        for (size_t s = 0; s < sizeof(subst); s++) {
            snprintf(name, sizeof(name), "%s", kt_delta_name);
            name[pos] = subst[s];
            KT_ASSERT_EQ(ps_layer_name_parse(name, &p, NULL), KC_EINVAL);
        }
    }
    snprintf(name, sizeof(name), "%sA", kt_delta_name);
    KT_ASSERT_EQ(ps_layer_name_parse(name, &p, NULL), KC_EINVAL);
    KT_ASSERT_EQ(ps_layer_name_parse(kt_delta_name, &p, NULL), 0);
}

KT_TEST(layer_temp_names_and_sweep)
{
    char path[4096];
    unsigned removed = 99;
    int fd;

    KT_ASSERT(ps_layer_name_is_temp("000000067f00000005000040000000000000-000000067f000000050000400"
                                    "000000003e8__0000000001696B48.0badf00d.tmp"));
    KT_ASSERT(!ps_layer_name_is_temp(kt_delta_name));
    KT_ASSERT(!ps_layer_name_is_temp("000000067f00000005000040000000000000-000000067f00000005000040"
                                     "0000000003e8__0000000001696B48.0BADF00D.tmp"));
    KT_ASSERT(!ps_layer_name_is_temp("000000067f00000005000040000000000000-000000067f00000005000040"
                                     "0000000003e8__0000000001696B48.0badf00.tmp"));
    KT_ASSERT(!ps_layer_name_is_temp("something.0badf00d.tmp"));
    KT_ASSERT(!ps_layer_name_is_temp(".tmp"));
    KT_ASSERT(!ps_layer_name_is_temp(""));

    snprintf(path, sizeof(path), "%s/%s.12345678.tmp", kt_tmpdir(), kt_delta_name);
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    KT_ASSERT(fd >= 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/%s", kt_tmpdir(), kt_delta_name);
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    close(fd);
    snprintf(path, sizeof(path), "%s/other.tmp", kt_tmpdir());
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    close(fd);
    KT_ASSERT_EQ(ps_layer_remove_temp_files(kt_tmpdir(), &removed, NULL), 0);
    KT_ASSERT_EQ(removed, 1);
    KT_ASSERT_EQ(access(path, F_OK), 0); /* not a layer temporary file: kept */
    snprintf(path, sizeof(path), "%s/%s", kt_tmpdir(), kt_delta_name);
    KT_ASSERT_EQ(access(path, F_OK), 0); /* a layer: kept */
    KT_ASSERT_EQ(ps_layer_remove_temp_files(kt_tmpdir(), &removed, NULL), 0);
    KT_ASSERT_EQ(removed, 0);
    KT_ASSERT_EQ(ps_layer_remove_temp_files("/nonexistent/dir", &removed, NULL), KC_EIO);
}

KT_TEST(layer_desc_check_and_contains)
{
    struct ps_key a = ps_key_rel_block(1663, 5, 16384, 0, 10);
    struct ps_key b = ps_key_rel_block(1663, 5, 16384, 0, 20);
    struct ps_key k = ps_key_rel_block(1663, 5, 16384, 0, 15);
    struct ps_layer_desc d;
    struct kc_error err;

    ps_layer_desc_delta(&d, &kt_tenant, &kt_timeline, &a, &b, 100, 200);
    KT_ASSERT_EQ(ps_layer_desc_check(&d, &err), 0);
    KT_ASSERT(ps_layer_desc_contains(&d, &a, 100));
    KT_ASSERT(ps_layer_desc_contains(&d, &k, 199));
    KT_ASSERT(!ps_layer_desc_contains(&d, &k, 200));
    KT_ASSERT(!ps_layer_desc_contains(&d, &k, 99));
    KT_ASSERT(!ps_layer_desc_contains(&d, &b, 150));
    d.lsn_end = 100;
    KT_ASSERT_EQ(ps_layer_desc_check(&d, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "LSN range");
    ps_layer_desc_delta(&d, &kt_tenant, &kt_timeline, &b, &a, 100, 200);
    KT_ASSERT_EQ(ps_layer_desc_check(&d, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "key range");
    ps_layer_desc_image(&d, &kt_tenant, &kt_timeline, &a, &b, 150);
    KT_ASSERT_EQ(ps_layer_desc_check(&d, &err), 0);
    KT_ASSERT(ps_layer_desc_contains(&d, &k, 150));
    KT_ASSERT(!ps_layer_desc_contains(&d, &k, 151));
    d.lsn_end = 152;
    KT_ASSERT_EQ(ps_layer_desc_check(&d, &err), KC_EINVAL);
    d.kind = (enum ps_layer_kind)7;
    KT_ASSERT_EQ(ps_layer_desc_check(&d, &err), KC_EINVAL);
}

KT_TEST(layer_header_layout_and_checks)
{
    struct ps_key a = ps_key_rel_block(1663, 5, 16384, 0, 10);
    struct ps_key b = ps_key_rel_block(1663, 5, 16384, 0, 20);
    struct ps_layer_desc d, p;
    uint8_t h[PS_LAYER_HEADER_SIZE], c[PS_LAYER_HEADER_SIZE];
    uint32_t hlen = 0;
    unsigned version = 0;
    struct kc_error err;

    ps_layer_desc_delta(&d, &kt_tenant, &kt_timeline, &a, &b, 0x100, 0x200);
    ps_layer_header_encode(&d, PS_LAYER_VERSION, h);
    KT_ASSERT_EQ(kc_load_u32(h), PS_LAYER_MAGIC);
    KT_ASSERT_MEM_EQ(h, "KLYR\x00\x02\x00\x64\x01", 9);
    KT_ASSERT_MEM_EQ(h + 12, kt_tenant.b, 16);
    KT_ASSERT_EQ(kc_load_u64(h + 88), 0x200);
    KT_ASSERT_EQ(ps_layer_header_decode(h, sizeof(h), "f", &p, &hlen, &version, &err), 0);
    KT_ASSERT_EQ(hlen, PS_LAYER_HEADER_SIZE);
    KT_ASSERT_EQ(version, 2);
    KT_ASSERT(memcmp(&p.key_start, &a, sizeof(a)) == 0 && p.lsn_end == 0x200);
    KT_ASSERT(kc_id_equal(&p.timeline, &kt_timeline));
    /* Version 1 headers have the same layout and still decode. */
    ps_layer_header_encode(&d, 1, c);
    KT_ASSERT_MEM_EQ(c, "KLYR\x00\x01\x00\x64\x01", 9);
    KT_ASSERT_MEM_EQ(c + 8, h + 8, 88);
    KT_ASSERT_EQ(ps_layer_header_decode(c, sizeof(c), "f", &p, &hlen, &version, &err), 0);
    KT_ASSERT_EQ(version, 1);
    /* Every short prefix, every bit flip: corrupt. */
    for (size_t n = 0; n < sizeof(h); n++)
        KT_ASSERT_EQ(ps_layer_header_decode(h, n, "f", &p, &hlen, &version, NULL), KC_ECORRUPT);
    for (size_t i = 0; i < sizeof(h) * 8; i++) {
        memcpy(c, h, sizeof(h));
        c[i / 8] ^= (uint8_t)(1u << (i % 8));
        KT_ASSERT_EQ(ps_layer_header_decode(c, sizeof(c), "f", &p, &hlen, &version, NULL),
                     KC_ECORRUPT);
    }
    /* A newer version with a valid checksum, even with a longer header: EVERSION. */
    {
        uint8_t big[200];
        memset(big, 0, sizeof(big));
        memcpy(big, h, 96);
        kc_store_u16(big + 4, 3);
        kc_store_u16(big + 6, 200);
        kc_store_u32(big + 196, kc_crc32c(0, big, 196));
        KT_ASSERT_EQ(ps_layer_header_decode(big, sizeof(big), "dir/f", &p, &hlen, &version, &err),
                     KC_EVERSION);
        KT_ASSERT_CONTAINS(err.message, "unsupported format version 3");
        KT_ASSERT_CONTAINS(err.message, "dir/f");
        KT_ASSERT_CONTAINS(err.detail, "versions 1 to 2");
        /* Version 0 is not a version either. */
        kc_store_u16(big + 4, 0);
        kc_store_u32(big + 196, kc_crc32c(0, big, 196));
        KT_ASSERT_EQ(ps_layer_header_decode(big, sizeof(big), "f", &p, &hlen, &version, &err),
                     KC_EVERSION);
        /* Versions 1 and 2 must be exactly 100 bytes. */
        for (uint16_t v = 1; v <= 2; v++) {
            kc_store_u16(big + 4, v);
            kc_store_u32(big + 196, kc_crc32c(0, big, 196));
            KT_ASSERT_EQ(ps_layer_header_decode(big, sizeof(big), "f", &p, &hlen, &version, &err),
                         KC_ECORRUPT);
        }
    }
    memcpy(c, h, sizeof(h));
    c[0] = 'X';
    KT_ASSERT_EQ(ps_layer_header_decode(c, sizeof(c), "f", &p, &hlen, &version, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "corrupt layer file \"f\" at offset 0");
    KT_ASSERT_CONTAINS(err.detail, "magic");
    KT_ASSERT(err.hint[0] != '\0');
}

KT_TEST(layer_footer_layout_and_checks)
{
    struct ps_layer_footer f = {1000, 2000, 77, 3, 8192, 0xDEADBEEF, 5, 0x0BADCAFE, 2}, g;
    uint8_t b[PS_LAYER_FOOTER_MAX] = {0}, c[PS_LAYER_FOOTER_MAX] = {0};
    struct kc_error err;

    KT_ASSERT_EQ(ps_layer_footer_size(1), 48);
    KT_ASSERT_EQ(ps_layer_footer_size(2), 56);
    KT_ASSERT_EQ(ps_layer_footer_size(3), 0);
    KT_ASSERT_EQ(ps_layer_footer_size(PS_LAYER_VERSION), PS_LAYER_FOOTER_SIZE);
    for (unsigned version = 1; version <= 2; version++) {
        size_t size = ps_layer_footer_size(version);
        f.version = (uint16_t)version;
        f.ndrops = version == 1 ? 0 : 5;
        f.drops_crc = version == 1 ? 0 : 0x0BADCAFE;
        ps_layer_footer_encode(&f, b);
        KT_ASSERT_MEM_EQ(b + size - 8, "KLYF", 4);
        KT_ASSERT_EQ(kc_load_u16(b + size - 12), version);
        KT_ASSERT_EQ(ps_layer_footer_decode(b, version, "f", 5000, &g, &err), 0);
        KT_ASSERT(g.index_off == 1000 && g.dir_off == 2000 && g.nvalues == 77 && g.nblocks == 3);
        KT_ASSERT(g.max_value_len == 8192 && g.dir_crc == 0xDEADBEEF);
        KT_ASSERT_EQ(g.version, version);
        KT_ASSERT_EQ(g.ndrops, f.ndrops);
        KT_ASSERT_UEQ(g.drops_crc, f.drops_crc);
        for (size_t i = 0; i < size * 8; i++) {
            memcpy(c, b, size);
            c[i / 8] ^= (uint8_t)(1u << (i % 8));
            KT_ASSERT_EQ(ps_layer_footer_decode(c, version, "f", 5000, &g, &err), KC_ECORRUPT);
            KT_ASSERT_CONTAINS(err.message, "at offset 50");
        }
        /* Read as the other version: the magic or the version does not match. */
        KT_ASSERT_EQ(ps_layer_footer_decode(b, 3 - version, "f", 5000, &g, &err), KC_ECORRUPT);
        KT_ASSERT_EQ(ps_layer_footer_decode(b, 9, "f", 5000, &g, &err), KC_ECORRUPT);
    }
}

KT_TEST(layer_drop_entry_layout_and_checks)
{
    struct ps_key k0 = ps_key_rel_block(1663, 5, 16384, 0, 0);
    struct ps_key k1 = ps_key_rel_size(1663, 5, 16384, 0);
    struct ps_key lo = ps_key_rel_block(1663, 5, 0, 0, 0), hi = ps_key_rel_block(1663, 6, 0, 0, 0);
    struct ps_drop d = {k0, k1, 0x1234}, g;
    uint8_t buf[PS_LAYER_DROP_SIZE];
    struct ps_layer_desc delta, image;
    struct kc_error err;

    ps_layer_drop_encode(&d, buf);
    KT_ASSERT_MEM_EQ(buf, k0.b, PS_KEY_LEN);
    KT_ASSERT_MEM_EQ(buf + 18, k1.b, PS_KEY_LEN);
    KT_ASSERT_EQ(kc_load_u64(buf + 36), 0x1234);
    ps_layer_drop_decode(buf, &g);
    KT_ASSERT(ps_key_eq(&g.start, &k0) && ps_key_eq(&g.end, &k1) && g.lsn == 0x1234);

    ps_layer_desc_delta(&delta, &kt_tenant, &kt_timeline, &lo, &hi, 0x1000, 0x2000);
    ps_layer_desc_image(&image, &kt_tenant, &kt_timeline, &lo, &hi, 0x1234);
    KT_ASSERT_EQ(ps_layer_drop_check(&delta, &d, &err), 0);
    KT_ASSERT_EQ(ps_layer_drop_check(&image, &d, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "image layer");
    g = d;
    g.end = g.start; /* empty */
    KT_ASSERT_EQ(ps_layer_drop_check(&delta, &g, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "empty key range");
    g = d;
    g.end = ps_key_max(); /* past the layer's keys */
    KT_ASSERT_EQ(ps_layer_drop_check(&delta, &g, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "outside the layer");
    g = d;
    g.start = ps_key_min();
    KT_ASSERT_EQ(ps_layer_drop_check(&delta, &g, &err), KC_EINVAL);
    g = d;
    g.lsn = 0x2000; /* the end LSN is exclusive */
    KT_ASSERT_EQ(ps_layer_drop_check(&delta, &g, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "LSN 0/2000");
    g.lsn = 0xFFF;
    KT_ASSERT_EQ(ps_layer_drop_check(&delta, &g, &err), KC_EINVAL);
    g.lsn = 0x1000;
    g.start = lo;
    g.end = hi; /* the whole layer, at its first LSN */
    KT_ASSERT_EQ(ps_layer_drop_check(&delta, &g, &err), 0);
}

KT_TEST(layer_index_entry_layout_and_checks)
{
    struct ps_layer_entry e, g;
    uint8_t b[PS_LAYER_ENTRY_SIZE];
    struct kc_buf cur;
    struct kc_error err;

    memset(&e, 0, sizeof(e));
    e.key = ps_key_checkpoint();
    e.lsn = 0x1234;
    e.kind = PS_VALUE_PG_RECORD;
    e.will_init = true;
    e.compressed = true;
    e.len = 500;
    e.stored_len = 100;
    e.crc = 0xCAFEF00D;
    ps_layer_entry_encode(&e, b);
    KT_ASSERT_EQ(b[34], PS_VALUE_PG_RECORD);
    KT_ASSERT_EQ(b[35], PS_LAYER_ENTRY_WILL_INIT | PS_LAYER_ENTRY_ZSTD);
    kc_buf_init(&cur, b, sizeof(b));
    KT_ASSERT_EQ(ps_layer_entry_decode(&cur, "f", 0, &g, &err), 0);
    KT_ASSERT(ps_key_eq(&g.key, &e.key) && g.lsn == e.lsn && g.kind == e.kind);
    KT_ASSERT(g.will_init && g.compressed && g.len == 500 && g.stored_len == 100);
    KT_ASSERT_EQ(g.crc, 0xCAFEF00D);
    /* Truncated, unknown kind or flags, lengths that do not fit the compression flag. */
    kc_buf_init(&cur, b, sizeof(b) - 1);
    KT_ASSERT_EQ(ps_layer_entry_decode(&cur, "f", 0, &g, &err), KC_ECORRUPT);
    b[34] = 0;
    kc_buf_init(&cur, b, sizeof(b));
    KT_ASSERT_EQ(ps_layer_entry_decode(&cur, "f", 0, &g, &err), KC_ECORRUPT);
    b[34] = PS_VALUE_IMAGE;
    b[35] = PS_LAYER_ENTRY_ZSTD; /* an image without will_init */
    kc_buf_init(&cur, b, sizeof(b));
    KT_ASSERT_EQ(ps_layer_entry_decode(&cur, "f", 0, &g, &err), KC_ECORRUPT);
    b[35] = 0x04 | PS_LAYER_ENTRY_WILL_INIT;
    kc_buf_init(&cur, b, sizeof(b));
    KT_ASSERT_EQ(ps_layer_entry_decode(&cur, "f", 0, &g, &err), KC_ECORRUPT);
    b[35] = PS_LAYER_ENTRY_WILL_INIT; /* plain, but stored 100 of 500 */
    kc_buf_init(&cur, b, sizeof(b));
    KT_ASSERT_EQ(ps_layer_entry_decode(&cur, "f", 0, &g, &err), KC_ECORRUPT);
    b[35] = PS_LAYER_ENTRY_WILL_INIT | PS_LAYER_ENTRY_ZSTD;
    kc_store_u32(b + 26, 500); /* compressed, but no smaller */
    kc_buf_init(&cur, b, sizeof(b));
    KT_ASSERT_EQ(ps_layer_entry_decode(&cur, "f", 0, &g, &err), KC_ECORRUPT);
    kc_store_u32(b + 26, 0);
    kc_buf_init(&cur, b, sizeof(b));
    KT_ASSERT_EQ(ps_layer_entry_decode(&cur, "f", 0, &g, &err), KC_ECORRUPT);
    kc_store_u32(b + 26, 100);
    kc_store_u32(b + 30, PS_VALUE_MAX_LEN + 1); /* longer than any value */
    kc_buf_init(&cur, b, sizeof(b));
    KT_ASSERT_EQ(ps_layer_entry_decode(&cur, "f", 0, &g, &err), KC_ECORRUPT);
}

KT_TEST(layer_directory_entry_layout)
{
    struct ps_layer_block b, g;
    uint8_t buf[PS_LAYER_DIRENT_SIZE];

    memset(&b, 0, sizeof(b));
    b.first_key = ps_key_rel_size(1663, 5, 16384, 0);
    b.first_lsn = 0xAB;
    b.data_off = 100;
    b.data_len = 5000;
    b.index_off = 5100;
    b.index_len = 777;
    b.nentries = 128;
    b.flags = PS_LAYER_BLOCK_ZSTD;
    b.crc = 0x01020304;
    ps_layer_dirent_encode(&b, buf);
    ps_layer_dirent_decode(buf, &g);
    KT_ASSERT(ps_key_eq(&g.first_key, &b.first_key) && g.first_lsn == 0xAB);
    KT_ASSERT(g.data_off == 100 && g.data_len == 5000 && g.index_off == 5100);
    KT_ASSERT(g.index_len == 777 && g.nentries == 128 && g.flags == 1 && g.crc == 0x01020304);
    buf[57] = 1; /* the reserved byte shows up as an unknown flag */
    ps_layer_dirent_decode(buf, &g);
    KT_ASSERT((g.flags & ~PS_LAYER_BLOCK_ZSTD) != 0);
}
