/* SPDX-License-Identifier: Apache-2.0 */
/* tar_test.c -- unit tests for the ustar writer and header parser. */
#include "common/tar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "unit.h"

/* Collects the archive in memory; fails once limit bytes have been taken. */
struct sink {
    struct kc_sbuf out;
    size_t limit; /* 0: no limit */
};

static int sink_write(void *arg, const void *data, size_t len, struct kc_error *err)
{
    struct sink *s = arg;

    if (s->limit != 0 && s->out.len + len > s->limit)
        return kc_error_set(err, KC_EIO, "disk full");
    kc_sbuf_append(&s->out, data, len);
    return 0;
}

KT_TEST(tar_writes_files_and_directories)
{
    struct sink s = {KC_SBUF_INIT, 0};
    struct kc_tar t;
    struct kc_tar_header h;
    struct kc_error err;
    const char *text = "15\n";

    kc_tar_init(&t, sink_write, &s, 1700000000);
    KT_ASSERT_EQ(kc_tar_add_dir(&t, "base", &err), 0);
    KT_ASSERT_EQ(kc_tar_add_file(&t, "PG_VERSION", text, 3, &err), 0);
    KT_ASSERT_EQ(kc_tar_file_begin(&t, "pg_wal/seg", 1000, &err), 0);
    KT_ASSERT_EQ(kc_tar_file_write(&t, "abc", 3, &err), 0);
    KT_ASSERT_EQ(kc_tar_file_zeros(&t, 997, &err), 0);
    KT_ASSERT_EQ(kc_tar_file_end(&t, &err), 0);
    KT_ASSERT_EQ(kc_tar_add_file(&t, "empty", NULL, 0, &err), 0);
    KT_ASSERT_EQ(kc_tar_finish(&t, &err), 0);
    /* dir 512, file 512+512, seg 512+1024, empty 512, end 1024 */
    KT_ASSERT_UEQ(s.out.len, 512 + 1024 + 1536 + 512 + 1024);
    KT_ASSERT_UEQ(t.offset, s.out.len);

    KT_ASSERT_EQ(kc_tar_parse_header(s.out.data, &h, &err), 1);
    KT_ASSERT_STR_EQ(h.path, "base");
    KT_ASSERT_EQ(h.type, '5');
    KT_ASSERT_EQ(h.mode, 0700);
    KT_ASSERT_EQ(h.mtime, 1700000000);
    KT_ASSERT_EQ(kc_tar_parse_header(s.out.data + 512, &h, &err), 1);
    KT_ASSERT_STR_EQ(h.path, "PG_VERSION");
    KT_ASSERT_EQ(h.type, '0');
    KT_ASSERT_EQ(h.mode, 0600);
    KT_ASSERT_UEQ(h.size, 3);
    KT_ASSERT_MEM_EQ(s.out.data + 1024, "15\n", 3);
    KT_ASSERT_EQ(kc_tar_parse_header(s.out.data + 1536, &h, &err), 1);
    KT_ASSERT_STR_EQ(h.path, "pg_wal/seg");
    KT_ASSERT_UEQ(h.size, 1000);
    KT_ASSERT_MEM_EQ(s.out.data + 2048, "abc", 3);
    KT_ASSERT_EQ(kc_tar_parse_header(s.out.data + 3072, &h, &err), 1);
    KT_ASSERT_STR_EQ(h.path, "empty");
    KT_ASSERT_UEQ(h.size, 0);
    KT_ASSERT_EQ(kc_tar_parse_header(s.out.data + 3584, &h, &err), 0);
    KT_ASSERT_EQ(kc_tar_parse_header(s.out.data + 4096, &h, &err), 0);
    kc_sbuf_fini(&s.out);
}

KT_TEST(tar_long_paths_use_the_prefix_field)
{
    struct sink s = {KC_SBUF_INIT, 0};
    struct kc_tar t;
    struct kc_tar_header h;
    struct kc_error err;
    char path[KC_TAR_PATH_MAX + 2];

    /* 150-byte directory part and a 90-byte name: 241 bytes. */
    memset(path, 'd', 150);
    path[150] = '/';
    memset(path + 151, 'n', 90);
    path[241] = '\0';
    kc_tar_init(&t, sink_write, &s, 0);
    KT_ASSERT_EQ(kc_tar_add_file(&t, path, "x", 1, &err), 0);
    KT_ASSERT_EQ(kc_tar_parse_header(s.out.data, &h, &err), 1);
    KT_ASSERT_STR_EQ(h.path, path);

    /* A 120-byte name cannot be split. */
    memset(path, 'a', 120);
    path[120] = '\0';
    KT_ASSERT_EQ(kc_tar_add_file(&t, path, "x", 1, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "is not usable");
    kc_sbuf_fini(&s.out);
}

KT_TEST(tar_refuses_misuse)
{
    struct sink s = {KC_SBUF_INIT, 0};
    struct kc_tar t;
    struct kc_error err;

    kc_tar_init(&t, sink_write, &s, 0);
    KT_ASSERT_EQ(kc_tar_add_file(&t, "/etc/passwd", "x", 1, &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_tar_add_dir(&t, "a", &err), KC_EINVAL); /* failed for good */
    KT_ASSERT_CONTAINS(err.message, "already failed");

    kc_tar_init(&t, sink_write, &s, 0);
    KT_ASSERT_EQ(kc_tar_file_begin(&t, "f", 4, &err), 0);
    KT_ASSERT_EQ(kc_tar_file_write(&t, "12345", 5, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "more bytes written");

    kc_tar_init(&t, sink_write, &s, 0);
    KT_ASSERT_EQ(kc_tar_file_begin(&t, "f", 4, &err), 0);
    KT_ASSERT_EQ(kc_tar_add_dir(&t, "d", &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "a file is still open");

    kc_tar_init(&t, sink_write, &s, 0);
    KT_ASSERT_EQ(kc_tar_file_begin(&t, "f", 4, &err), 0);
    KT_ASSERT_EQ(kc_tar_file_end(&t, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "ended before");

    kc_tar_init(&t, sink_write, &s, 0);
    KT_ASSERT_EQ(kc_tar_finish(&t, &err), 0);
    KT_ASSERT_EQ(kc_tar_add_dir(&t, "d", &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "finished");

    kc_tar_init(&t, sink_write, &s, 0);
    KT_ASSERT_EQ(kc_tar_file_begin(&t, "huge", KC_TAR_FILE_MAX + 1, &err), KC_ETOOBIG);
    kc_sbuf_fini(&s.out);
}

KT_TEST(tar_write_errors_propagate)
{
    struct sink s = {KC_SBUF_INIT, 700};
    struct kc_tar t;
    struct kc_error err;
    uint8_t data[300] = {0};

    kc_tar_init(&t, sink_write, &s, 0);
    KT_ASSERT_EQ(kc_tar_add_file(&t, "a", data, sizeof(data), &err), KC_EIO);
    KT_ASSERT_STR_EQ(err.message, "disk full");
    KT_ASSERT(t.failed);
    KT_ASSERT_EQ(kc_tar_finish(&t, &err), KC_EINVAL);
    kc_sbuf_fini(&s.out);
}

/* A valid header to corrupt. */
static void make_header(uint8_t block[KC_TAR_BLOCK], const char *path)
{
    struct sink s = {KC_SBUF_INIT, 0};
    struct kc_tar t;
    struct kc_error err;

    kc_tar_init(&t, sink_write, &s, 42);
    if (kc_tar_add_file(&t, path, "hello", 5, &err) != 0)
        kt_fail(__FILE__, __LINE__, "make_header: %s", err.message);
    memcpy(block, s.out.data, KC_TAR_BLOCK);
    kc_sbuf_fini(&s.out);
}

/* Recompute the checksum after a deliberate change. */
static void fix_checksum(uint8_t block[KC_TAR_BLOCK])
{
    unsigned sum = 0;

    memset(block + 148, ' ', 8);
    for (int i = 0; i < KC_TAR_BLOCK; i++)
        sum += block[i];
    snprintf((char *)block + 148, 8, "%06o", sum);
    block[155] = ' ';
}

KT_TEST(tar_parse_rejects_malformed_headers)
{
    uint8_t b[KC_TAR_BLOCK];
    struct kc_tar_header h;
    struct kc_error err;

    make_header(b, "ok");
    KT_ASSERT_EQ(kc_tar_parse_header(b, &h, &err), 1);

    make_header(b, "ok");
    b[10] ^= 1; /* a flipped bit anywhere breaks the checksum */
    KT_ASSERT_EQ(kc_tar_parse_header(b, &h, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "checksum mismatch");

    make_header(b, "ok");
    memcpy(b + 257, "xxxxx", 5);
    fix_checksum(b);
    KT_ASSERT_EQ(kc_tar_parse_header(b, &h, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "not a ustar header");

    make_header(b, "ok");
    memcpy(b, "../../etc/x", 12);
    fix_checksum(b);
    KT_ASSERT_EQ(kc_tar_parse_header(b, &h, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "unsafe path");

    make_header(b, "ok");
    memcpy(b, "/abs", 5);
    fix_checksum(b);
    KT_ASSERT_EQ(kc_tar_parse_header(b, &h, &err), KC_ECORRUPT);

    make_header(b, "ok");
    b[124] = '9'; /* not octal */
    fix_checksum(b);
    KT_ASSERT_EQ(kc_tar_parse_header(b, &h, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "bad size");

    make_header(b, "ok");
    b[124] = 0x80; /* base-256 size */
    fix_checksum(b);
    KT_ASSERT_EQ(kc_tar_parse_header(b, &h, &err), KC_ECORRUPT);

    make_header(b, "ok");
    memset(b, 'a', 100); /* a name filling its field, no terminator: still bounded */
    fix_checksum(b);
    KT_ASSERT_EQ(kc_tar_parse_header(b, &h, &err), 1);
    KT_ASSERT_EQ(strlen(h.path), 100);

    make_header(b, "ok");
    b[0] = '\0';
    fix_checksum(b);
    KT_ASSERT_EQ(kc_tar_parse_header(b, &h, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "empty name");
}

KT_TEST(tar_parse_survives_random_and_flipped_input)
{
    uint8_t good[KC_TAR_BLOCK], b[KC_TAR_BLOCK];
    struct kc_tar_header h;
    struct kc_error err;

    srand(7);
    make_header(good, "base/5/pg_filenode.map");
    for (int round = 0; round < 20000; round++) {
        int rc;
        if (round % 2 == 0) {
            for (int i = 0; i < KC_TAR_BLOCK; i++)
                b[i] = (uint8_t)rand();
        } else {
            memcpy(b, good, sizeof(b));
            b[rand() % KC_TAR_BLOCK] ^= (uint8_t)(1u << (rand() % 8));
            if (round % 4 == 1)
                fix_checksum(b); /* get past the checksum to the field checks */
        }
        rc = kc_tar_parse_header(b, &h, &err);
        KT_ASSERT(rc == 1 || rc == 0 || rc == KC_ECORRUPT);
        if (rc == 1) {
            KT_ASSERT(strlen(h.path) <= KC_TAR_PATH_MAX);
            KT_ASSERT(h.path[0] != '/');
            KT_ASSERT(strstr(h.path, "../") == NULL);
        }
    }
}
