/* SPDX-License-Identifier: Apache-2.0 */
/* layer_writer_test.c -- unit tests for layer_writer.c: input checks, failures, crashes, memory. */
#include "pageserver/layer_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/failpoint.h"
#include "pageserver/layer_reader.h"
#include "unit.h"

static const struct kc_id kt_tenant = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};
static const struct kc_id kt_timeline = {{16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}};

static struct ps_key kt_blk(uint32_t blkno)
{
    return ps_key_rel_block(1663, 5, 16384, 0, blkno);
}

/* A delta layer over blocks [0, 1000) of one relation, LSNs [0x100, 0x10000). */
static void kt_desc(struct ps_layer_desc *d)
{
    struct ps_key a = kt_blk(0), b = kt_blk(1000);
    ps_layer_desc_delta(d, &kt_tenant, &kt_timeline, &a, &b, 0x100, 0x10000);
}

/* Number of directory entries in dir other than "." and "..". */
static int kt_count_files(const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *de;
    int n = 0;

    KT_ASSERT(dh != NULL);
    while ((de = readdir(dh)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(dh);
    return n;
}

static bool kt_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Open path and count its values (the file must be valid). */
static uint64_t kt_open_count(const char *path)
{
    struct ps_layer_reader *r;
    struct kc_error err;
    uint64_t n;

    if (ps_layer_open(path, &r, &err) != 0)
        kt_fail(__FILE__, __LINE__, "open %s: %s (%s)", path, err.message, err.detail);
    n = ps_layer_reader_nvalues(r);
    ps_layer_close(r);
    return n;
}

KT_TEST(layer_writer_refuses_out_of_order_input)
{
    struct ps_layer_desc d;
    struct ps_layer_writer *w;
    struct kc_error err;
    uint8_t rec[40] = {1, 2, 3};
    struct ps_value v = ps_value_record(PS_VALUE_PG_RECORD, false, rec, sizeof(rec));
    struct ps_key k5 = kt_blk(5), k4 = kt_blk(4), k6 = kt_blk(6);
    char path[4096];

    kt_desc(&d);
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), 0);
    snprintf(path, sizeof(path), "%s", ps_layer_writer_path(w));
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k5, 0x200, &v, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k5, 0x200, &v, &err), KC_EINVAL); /* the same pair */
    KT_ASSERT_CONTAINS(err.message, "out of order");
    KT_ASSERT_CONTAINS(err.detail, "0/200");
    KT_ASSERT(err.hint[0] != '\0');
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k5, 0x1FF, &v, &err), KC_EINVAL); /* older LSN */
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k4, 0x300, &v, &err), KC_EINVAL); /* smaller key */
    /* Refused input changes nothing: the writer goes on. */
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k5, 0x201, &v, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k6, 0x100, &v, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_nvalues(w), 3);
    KT_ASSERT_EQ(ps_layer_writer_finish(w, &err), 0);
    KT_ASSERT_EQ(kt_open_count(path), 3);
}

KT_TEST(layer_writer_refuses_values_outside_the_layer)
{
    struct ps_layer_desc d, img;
    struct ps_layer_writer *w;
    struct kc_error err;
    uint8_t page[8192] = {0};
    struct ps_value rec = ps_value_record(PS_VALUE_NATIVE_RECORD, false, page, 10);
    struct ps_value image = ps_value_image(page, sizeof(page));
    struct ps_value bad = image;
    struct ps_key k = kt_blk(7), end = kt_blk(1000), start = kt_blk(0);
    struct ps_key a = kt_blk(0), b = kt_blk(1000);

    kt_desc(&d);
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_add(w, &end, 0x200, &rec, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "outside the layer");
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0xFF, &rec, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x10000, &rec, &err), KC_EINVAL);
    bad.kind = (enum ps_value_kind)9;
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x200, &bad, &err), KC_EINVAL);
    bad = image;
    bad.will_init = false;
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x200, &bad, &err), KC_EINVAL);
    bad = image;
    bad.len = PS_VALUE_MAX_LEN + 1;
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x200, &bad, &err), KC_ETOOBIG);
    KT_ASSERT_EQ(ps_layer_writer_add(w, &start, 0x100, &image, &err), 0); /* inclusive */
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0xFFFF, &rec, &err), 0);
    ps_layer_writer_abort(w);
    KT_ASSERT_EQ(kt_count_files(kt_tmpdir()), 0);

    /* An image layer takes images at its LSN only, one per key. */
    ps_layer_desc_image(&img, &kt_tenant, &kt_timeline, &a, &b, 0x500);
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &img, NULL, &w, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x500, &rec, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "image layer");
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x4FF, &image, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x501, &image, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x500, &image, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x500, &image, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_layer_writer_finish(w, &err), 0);
    KT_ASSERT_EQ(kt_count_files(kt_tmpdir()), 1);
}

KT_TEST(layer_writer_rejects_bad_descriptions_and_options)
{
    struct ps_layer_desc d;
    struct ps_layer_writer *w = (struct ps_layer_writer *)1;
    struct kc_error err;
    struct ps_layer_writer_opts o = {.block_entries = PS_LAYER_BLOCK_MAX_ENTRIES + 1};

    kt_desc(&d);
    d.lsn_end = d.lsn_start;
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), KC_EINVAL);
    KT_ASSERT(w == NULL);
    kt_desc(&d);
    d.key_end = d.key_start;
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), KC_EINVAL);
    kt_desc(&d);
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, &o, &w, &err), KC_EINVAL);
    o.block_entries = 0;
    o.zstd_level = 1000;
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, &o, &w, &err), KC_EINVAL);
    KT_ASSERT_EQ(ps_layer_writer_create("/nonexistent/dir", &d, NULL, &w, &err), KC_EIO);
    KT_ASSERT(w == NULL);
    KT_ASSERT_EQ(kt_count_files(kt_tmpdir()), 0);
}

/* Write 30 values of blocks 0..29 with w, return finish's result. */
static int kt_write_some(struct ps_layer_writer *w, struct kc_error *err)
{
    uint8_t page[8192];
    int rc = 0;

    for (uint32_t i = 0; i < 30 && rc == 0; i++) {
        struct ps_key k = kt_blk(i);
        struct ps_value v = ps_value_image(page, sizeof(page));
        memset(page, (int)i, sizeof(page));
        rc = ps_layer_writer_add(w, &k, 0x100 + i, &v, err);
    }
    if (rc != 0) {
        ps_layer_writer_abort(w);
        return rc;
    }
    return ps_layer_writer_finish(w, err);
}

KT_TEST(layer_writer_crash_before_rename_leaves_nothing_under_the_final_name)
{
    static const char *const fps[] = {"pageserver.layer.before-fsync",
                                      "pageserver.layer.before-rename"};

    for (size_t i = 0; i < KC_ARRAY_LEN(fps); i++) {
        struct ps_layer_desc d;
        char final[4096], name[PS_LAYER_NAME_MAX];
        unsigned removed = 0;
        int status;
        pid_t pid;

        kt_desc(&d);
        snprintf(final, sizeof(final), "%s/%s", kt_tmpdir(), ps_layer_name_format(&d, name));
        pid = fork();
        KT_ASSERT(pid >= 0);
        if (pid == 0) {
            struct ps_layer_writer *w;
            struct kc_error err;
            if (kc_failpoint_set(fps[i], "exit(3)", &err) != 0 ||
                ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err) != 0)
                _exit(1);
            (void)kt_write_some(w, &err);
            _exit(0); /* not reached when the failpoint fires */
        }
        KT_ASSERT_EQ(waitpid(pid, &status, 0), pid);
        KT_ASSERT(WIFEXITED(status));
        KT_ASSERT_EQ(WEXITSTATUS(status), 3);
        KT_ASSERT(!kt_exists(final));
        KT_ASSERT_EQ(kt_count_files(kt_tmpdir()), 1); /* the temporary file */
        KT_ASSERT_EQ(ps_layer_remove_temp_files(kt_tmpdir(), &removed, NULL), 0);
        KT_ASSERT_EQ(removed, 1);
        KT_ASSERT_EQ(kt_count_files(kt_tmpdir()), 0);
    }
}

KT_TEST(layer_writer_crash_after_rename_leaves_a_complete_file)
{
    struct ps_layer_desc d;
    char final[4096], name[PS_LAYER_NAME_MAX];
    int status;
    pid_t pid;

    kt_desc(&d);
    snprintf(final, sizeof(final), "%s/%s", kt_tmpdir(), ps_layer_name_format(&d, name));
    pid = fork();
    KT_ASSERT(pid >= 0);
    if (pid == 0) {
        struct ps_layer_writer *w;
        struct kc_error err;
        if (kc_failpoint_set("pageserver.layer.after-rename", "exit(4)", &err) != 0 ||
            ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err) != 0)
            _exit(1);
        (void)kt_write_some(w, &err);
        _exit(0);
    }
    KT_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    KT_ASSERT(WIFEXITED(status));
    KT_ASSERT_EQ(WEXITSTATUS(status), 4);
    KT_ASSERT_EQ(kt_count_files(kt_tmpdir()), 1);
    KT_ASSERT_EQ(kt_open_count(final), 30);
}

KT_TEST(layer_writer_injected_errors_clean_up)
{
    static const char *const fps[] = {"pageserver.layer.before-fsync",
                                      "pageserver.layer.before-rename",
                                      "pageserver.layer.write-value"};
    struct ps_layer_desc d;
    struct ps_layer_writer *w;
    struct kc_error err;
    char final[4096], name[PS_LAYER_NAME_MAX];

    kt_desc(&d);
    snprintf(final, sizeof(final), "%s/%s", kt_tmpdir(), ps_layer_name_format(&d, name));
    for (size_t i = 0; i < KC_ARRAY_LEN(fps); i++) {
        KT_ASSERT_EQ(kc_failpoint_set(fps[i], "return(EIO)", &err), 0);
        KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), 0);
        KT_ASSERT_EQ(kt_write_some(w, &err), KC_EFAILPOINT);
        KT_ASSERT_CONTAINS(err.message, fps[i]);
        KT_ASSERT_EQ(kt_count_files(kt_tmpdir()), 0);
        kc_failpoints_reset();
    }
    /* A broken writer stays broken. */
    KT_ASSERT_EQ(kc_failpoint_set("pageserver.layer.write-value", "1*return", &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), 0);
    {
        uint8_t b[10] = {0};
        struct ps_key k = kt_blk(1);
        struct ps_value v = ps_value_record(PS_VALUE_PG_RECORD, true, b, sizeof(b));
        KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x100, &v, &err), KC_EFAILPOINT);
        KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x101, &v, &err), KC_EFAILPOINT);
        KT_ASSERT_CONTAINS(err.message, "failed earlier");
        KT_ASSERT_EQ(ps_layer_writer_finish(w, &err), KC_EFAILPOINT);
    }
    KT_ASSERT_EQ(kt_count_files(kt_tmpdir()), 0);
    /* After the rename the file is complete even when the call reports an error. */
    KT_ASSERT_EQ(kc_failpoint_set("pageserver.layer.after-rename", "return", &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), 0);
    KT_ASSERT_EQ(kt_write_some(w, &err), KC_EFAILPOINT);
    KT_ASSERT_EQ(kt_count_files(kt_tmpdir()), 1);
    KT_ASSERT_EQ(kt_open_count(final), 30);
    kc_failpoints_reset();
}

KT_TEST(layer_writer_abort_and_replace)
{
    struct ps_layer_desc d;
    struct ps_layer_writer *w;
    struct kc_error err;
    char final[4096];
    uint8_t b[100] = {0};
    struct ps_key k = kt_blk(3);
    struct ps_value v = ps_value_record(PS_VALUE_PG_RECORD, true, b, sizeof(b));

    kt_desc(&d);
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), 0);
    snprintf(final, sizeof(final), "%s", ps_layer_writer_path(w));
    KT_ASSERT(kt_exists(ps_layer_writer_temp_path(w)));
    KT_ASSERT(ps_layer_name_is_temp(strrchr(ps_layer_writer_temp_path(w), '/') + 1));
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x100, &v, &err), 0);
    ps_layer_writer_abort(w);
    ps_layer_writer_abort(NULL);
    KT_ASSERT_EQ(kt_count_files(kt_tmpdir()), 0);
    /* Writing the same layer twice replaces the first file. */
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_finish(w, &err), 0);
    KT_ASSERT_EQ(kt_open_count(final), 0);
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x100, &v, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_finish(w, &err), 0);
    KT_ASSERT_EQ(kt_open_count(final), 1);
    KT_ASSERT_EQ(kt_count_files(kt_tmpdir()), 1);
}

KT_TEST(layer_writer_memory_does_not_grow_with_the_layer)
{
    struct ps_key a = ps_key_min(), b = ps_key_max();
    struct ps_layer_desc d;
    struct ps_layer_writer *w;
    struct kc_error err;
    uint8_t page[8192];
    size_t after_first = 0;
    char path[4096];

    ps_layer_desc_delta(&d, &kt_tenant, &kt_timeline, &a, &b, 0, 1000000);
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), 0);
    snprintf(path, sizeof(path), "%s", ps_layer_writer_path(w));
    for (uint32_t i = 0; i < 40000; i++) {
        struct ps_key k = ps_key_rel_block(1663, 5, 16384, 0, i / 4);
        uint32_t len = i % 50 == 0 ? 8192 : 100;
        struct ps_value v = ps_value_record(PS_VALUE_PG_RECORD, i % 4 == 0, page, len);
        for (uint32_t j = 0; j < len; j += 4)
            memcpy(page + j, &i, 4);
        KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 100 + i % 4, &v, &err), 0);
        if (i == 2000)
            after_first = ps_layer_writer_memory(w);
    }
    /* 20 times more values, the same buffers: well under a megabyte. */
    KT_ASSERT_EQ(ps_layer_writer_memory(w), after_first);
    KT_ASSERT(after_first < 1024 * 1024);
    KT_ASSERT_EQ(ps_layer_writer_finish(w, &err), 0);
    KT_ASSERT_EQ(kt_open_count(path), 40000);
}

KT_TEST(layer_writer_drops_checks_and_order)
{
    struct ps_layer_desc d, img;
    struct ps_layer_writer *w;
    struct ps_layer_reader *r;
    struct kc_error err;
    uint8_t rec[20] = {7};
    struct ps_value v = ps_value_record(PS_VALUE_PG_RECORD, true, rec, sizeof(rec));
    struct ps_drop ok1 = {kt_blk(10), kt_blk(20), 0x300}, ok2 = {kt_blk(0), kt_blk(1000), 0x300};
    struct ps_drop ok3 = {kt_blk(5), kt_blk(6), 0xFFFF}, bad;
    struct ps_key k = kt_blk(15);
    const struct ps_drop *got;
    size_t nd;
    char path[4096];

    kt_desc(&d);
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &d, NULL, &w, &err), 0);
    snprintf(path, sizeof(path), "%s", ps_layer_writer_path(w));
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x200, &v, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_add_drop(w, &ok1, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_add_drop(w, &ok2, &err), 0); /* the same LSN is fine */
    bad = ok1;
    bad.lsn = 0x2FF; /* older than the last drop */
    KT_ASSERT_EQ(ps_layer_writer_add_drop(w, &bad, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "out of order");
    KT_ASSERT_CONTAINS(err.detail, "0/2FF");
    bad.lsn = 0x10000; /* past the layer's LSNs */
    KT_ASSERT_EQ(ps_layer_writer_add_drop(w, &bad, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "outside the layer");
    bad = ok1;
    bad.end = kt_blk(1001); /* past the layer's keys */
    KT_ASSERT_EQ(ps_layer_writer_add_drop(w, &bad, &err), KC_EINVAL);
    bad = ok1;
    bad.end = bad.start;
    KT_ASSERT_EQ(ps_layer_writer_add_drop(w, &bad, &err), KC_EINVAL);
    /* Refused drops change nothing; values may follow drops. */
    KT_ASSERT_EQ(ps_layer_writer_ndrops(w), 2);
    KT_ASSERT_EQ(ps_layer_writer_add(w, &k, 0x400, &v, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_add_drop(w, &ok3, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_finish(w, &err), 0);
    KT_ASSERT_EQ(ps_layer_open(path, &r, &err), 0);
    got = ps_layer_reader_drops(r, &nd);
    KT_ASSERT_EQ(nd, 3);
    KT_ASSERT(got[0].lsn == 0x300 && ps_key_eq(&got[0].start, &ok1.start));
    KT_ASSERT(got[1].lsn == 0x300 && ps_key_eq(&got[1].end, &ok2.end));
    KT_ASSERT(got[2].lsn == 0xFFFF && ps_key_eq(&got[2].end, &ok3.end));
    KT_ASSERT_UEQ(ps_layer_reader_drop_lsn(r, &k, 0x2FF), 0);
    KT_ASSERT_UEQ(ps_layer_reader_drop_lsn(r, &k, 0x300), 0x300);
    KT_ASSERT_UEQ(ps_layer_reader_drop_lsn(r, &k, UINT64_MAX), 0x300);
    KT_ASSERT_EQ(ps_layer_reader_nvalues(r), 2);
    ps_layer_close(r);

    /* Image layers hold no drops. */
    ps_layer_desc_image(&img, &kt_tenant, &kt_timeline, &ok2.start, &ok2.end, 0x300);
    KT_ASSERT_EQ(ps_layer_writer_create(kt_tmpdir(), &img, NULL, &w, &err), 0);
    KT_ASSERT_EQ(ps_layer_writer_add_drop(w, &ok1, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "image layer");
    ps_layer_writer_abort(w);
}
