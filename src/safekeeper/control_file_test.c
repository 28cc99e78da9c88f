/* SPDX-License-Identifier: Apache-2.0 */
/* control_file_test.c -- unit tests for control_file.c. */
#include "safekeeper/control_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "unit.h"

/* A fully populated, valid state; variant changes every field. */
static void ct_sample(struct sk_control *c, unsigned variant)
{
    kc_log_set_level(KC_LOG_WARN); /* loads log the removal of leftover temporary files */
    sk_control_init(c);
    for (int i = 0; i < KC_ID_LEN; i++) {
        c->tenant_id.b[i] = (uint8_t)(0x10 + i + variant);
        c->timeline_id.b[i] = (uint8_t)(0xA0 + i + variant);
    }
    c->system_id = 7312345678901234567ull + variant;
    c->wal_seg_size = variant % 2 == 0 ? KC_WAL_SEG_SIZE_DEFAULT : 1u << 20;
    c->pg_version = 150018;
    c->term = 5 + variant;
    KT_ASSERT_EQ(sk_term_history_append(&c->history, 1, 0x1000000, NULL), 0);
    KT_ASSERT_EQ(sk_term_history_append(&c->history, 3, 0x16B3740, NULL), 0);
    KT_ASSERT_EQ(sk_term_history_append(&c->history, 5 + variant, 0x2000028 + variant, NULL), 0);
    c->term_owner_node = 42 + variant;
    c->term_start_lsn = 0x2000028 + variant;
    c->timeline_start_lsn = 0x1000000;
    c->local_start_lsn = 0x1000000 + variant * 0x100;
    c->flush_lsn = 0x3000000 + variant;
    c->commit_lsn = 0x2FFFF00 + variant;
    c->peer_horizon_lsn = 0x2000000 + variant;
    c->backup_lsn = 0x1800000 + variant;
    c->remote_consistent_lsn = 0x1700000 + variant;
}

static void ct_encode(const struct sk_control *c, struct kc_sbuf *out)
{
    KT_ASSERT_EQ(sk_control_encode(c, out, NULL), 0);
}

static void ct_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    KT_ASSERT(f != NULL);
    KT_ASSERT_UEQ(fwrite(data, 1, len, f), len);
    KT_ASSERT_EQ(fclose(f), 0);
}

static bool ct_exists(const char *dir, const char *name)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

KT_TEST(control_encode_decode_roundtrip)
{
    struct sk_control c, back;
    struct kc_sbuf s = KC_SBUF_INIT;

    ct_sample(&c, 0);
    sk_control_init(&back);
    ct_encode(&c, &s);
    KT_ASSERT_UEQ(s.len, SK_CONTROL_HEADER_SIZE + SK_CONTROL_FIXED_SIZE +
                             SK_TERM_HISTORY_ENCODED_SIZE(3) + 4);
    KT_ASSERT_EQ(sk_control_decode(s.data, s.len, "mem", &back, NULL), 0);
    KT_ASSERT(sk_control_equal(&c, &back));
    back.commit_lsn++;
    KT_ASSERT(!sk_control_equal(&c, &back));
    sk_control_fini(&c);
    sk_control_fini(&back);
    kc_sbuf_fini(&s);
}

/* The byte layout documented in docs/safekeeper-storage.md. */
KT_TEST(control_encoding_layout)
{
    struct sk_control c;
    struct kc_sbuf s = KC_SBUF_INIT;
    const uint8_t *p;

    ct_sample(&c, 1);
    ct_encode(&c, &s);
    p = s.data;
    KT_ASSERT_UEQ(kc_load_u32(p + 0), 0x4B534B43);
    KT_ASSERT_MEM_EQ(p, "KSKC", 4);
    KT_ASSERT_UEQ(kc_load_u16(p + 4), 1);
    KT_ASSERT_UEQ(kc_load_u16(p + 6), 0);
    KT_ASSERT_UEQ(kc_load_u32(p + 8), s.len - 16);
    p += SK_CONTROL_HEADER_SIZE;
    KT_ASSERT_MEM_EQ(p + 0, c.tenant_id.b, 16);
    KT_ASSERT_MEM_EQ(p + 16, c.timeline_id.b, 16);
    KT_ASSERT_UEQ(kc_load_u64(p + 32), c.system_id);
    KT_ASSERT_UEQ(kc_load_u32(p + 40), c.wal_seg_size);
    KT_ASSERT_UEQ(kc_load_u32(p + 44), c.pg_version);
    KT_ASSERT_UEQ(kc_load_u64(p + 48), c.term);
    KT_ASSERT_UEQ(kc_load_u64(p + 56), c.term_owner_node);
    KT_ASSERT_UEQ(kc_load_u64(p + 64), c.term_start_lsn);
    KT_ASSERT_UEQ(kc_load_u64(p + 72), c.timeline_start_lsn);
    KT_ASSERT_UEQ(kc_load_u64(p + 80), c.local_start_lsn);
    KT_ASSERT_UEQ(kc_load_u64(p + 88), c.flush_lsn);
    KT_ASSERT_UEQ(kc_load_u64(p + 96), c.commit_lsn);
    KT_ASSERT_UEQ(kc_load_u64(p + 104), c.peer_horizon_lsn);
    KT_ASSERT_UEQ(kc_load_u64(p + 112), c.backup_lsn);
    KT_ASSERT_UEQ(kc_load_u64(p + 120), c.remote_consistent_lsn);
    KT_ASSERT_UEQ(p[128], SK_TERM_HISTORY_VERSION);
    KT_ASSERT_UEQ(kc_load_u32(p + 129), 3);
    KT_ASSERT_UEQ(kc_load_u64(p + 133 + 32), c.term);
    KT_ASSERT_UEQ(kc_load_u32(s.data + s.len - 4), kc_crc32c(0, s.data, s.len - 4));
    sk_control_fini(&c);
    kc_sbuf_fini(&s);
}

KT_TEST(control_store_load_roundtrip_and_overwrite)
{
    const char *dir = kt_tmpdir();
    struct sk_control a, b, got;

    ct_sample(&a, 0);
    ct_sample(&b, 3);
    sk_control_init(&got);
    KT_ASSERT_EQ(sk_control_load(dir, &got, NULL), KC_ENOTFOUND);
    KT_ASSERT_EQ(sk_control_store(dir, &a, NULL), 0);
    KT_ASSERT_EQ(sk_control_load(dir, &got, NULL), 0);
    KT_ASSERT(sk_control_equal(&a, &got));
    KT_ASSERT_EQ(sk_control_store(dir, &b, NULL), 0);
    KT_ASSERT_EQ(sk_control_load(dir, &got, NULL), 0);
    KT_ASSERT(sk_control_equal(&b, &got));
    KT_ASSERT(!ct_exists(dir, SK_CONTROL_TEMP_NAME));
    sk_control_copy(&got, &a);
    KT_ASSERT(sk_control_equal(&a, &got));
    KT_ASSERT(got.history.entries != a.history.entries);
    sk_control_fini(&a);
    sk_control_fini(&b);
    sk_control_fini(&got);
}

KT_TEST(control_refuses_invalid_state)
{
    static const char *const cases[] = {"tenant",  "timeline", "segment",
                                        "history", "term",     "local start"};
    const char *dir = kt_tmpdir();

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        struct sk_control c;
        struct kc_sbuf s = KC_SBUF_INIT;
        struct kc_error err;

        ct_sample(&c, 0);
        switch (i) {
        case 0: c.tenant_id = KC_ID_ZERO; break;
        case 1: c.timeline_id = KC_ID_ZERO; break;
        case 2: c.wal_seg_size = 3u << 20; break;
        case 3: c.history.entries[1].lsn = 0; break;
        case 4: c.term = 4; break; /* below the history's last term, 5 */
        default: c.local_start_lsn = c.timeline_start_lsn - 1; break;
        }
        KT_ASSERT_EQ(sk_control_encode(&c, &s, &err), KC_EINVAL);
        KT_ASSERT_UEQ(s.len, 0);
        KT_ASSERT_EQ(sk_control_store(dir, &c, &err), KC_EINVAL);
        KT_ASSERT(!ct_exists(dir, SK_CONTROL_FILE_NAME));
        KT_ASSERT(!ct_exists(dir, SK_CONTROL_TEMP_NAME));
        sk_control_fini(&c);
        kc_sbuf_fini(&s);
    }
}

/* Every truncation of a valid file is rejected, through the file system as well. */
KT_TEST(control_rejects_every_truncation)
{
    const char *dir = kt_tmpdir();
    char path[PATH_MAX];
    struct sk_control c, got;
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_error err;

    snprintf(path, sizeof(path), "%s/%s", dir, SK_CONTROL_FILE_NAME);
    ct_sample(&c, 0);
    sk_control_init(&got);
    ct_encode(&c, &s);
    for (size_t n = 0; n < s.len; n++) {
        KT_ASSERT_EQ(sk_control_decode(s.data, n, "mem", &got, NULL), KC_ECORRUPT);
        ct_write_file(path, s.data, n);
        kc_error_clear(&err);
        KT_ASSERT_EQ(sk_control_load(dir, &got, &err), KC_ECORRUPT);
        KT_ASSERT_CONTAINS(err.message, path);
    }
    KT_ASSERT_UEQ(got.term, 0); /* never filled by a failed read */
    ct_write_file(path, s.data, s.len);
    KT_ASSERT_EQ(sk_control_load(dir, &got, NULL), 0);
    KT_ASSERT(sk_control_equal(&c, &got));
    sk_control_fini(&c);
    sk_control_fini(&got);
    kc_sbuf_fini(&s);
}

/* Every single-bit flip of a valid file is rejected as corrupt. */
KT_TEST(control_rejects_every_bit_flip)
{
    struct sk_control c, got;
    struct kc_sbuf s = KC_SBUF_INIT;
    uint8_t *copy;

    ct_sample(&c, 2);
    sk_control_init(&got);
    ct_encode(&c, &s);
    copy = malloc(s.len);
    KT_ASSERT(copy != NULL);
    for (size_t bit = 0; bit < s.len * 8; bit++) {
        struct kc_error err;

        memcpy(copy, s.data, s.len);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        kc_error_clear(&err);
        if (sk_control_decode(copy, s.len, "flipped", &got, &err) != KC_ECORRUPT)
            kt_fail(__FILE__, __LINE__, "bit %zu: not rejected as corrupt (%s)", bit, err.message);
        KT_ASSERT_CONTAINS(err.message, "\"flipped\"");
    }
    KT_ASSERT_UEQ(got.term, 0);
    free(copy);
    sk_control_fini(&c);
    sk_control_fini(&got);
    kc_sbuf_fini(&s);
}

/* Recompute the CRC of a file image after editing it. */
static void ct_reseal(uint8_t *p, size_t len)
{
    kc_store_u32(p + len - 4, kc_crc32c(0, p, len - 4));
}

KT_TEST(control_version_and_framing_errors)
{
    struct sk_control c, got;
    struct kc_sbuf s = KC_SBUF_INIT;
    struct kc_error err;
    uint8_t *p;

    ct_sample(&c, 0);
    sk_control_init(&got);
    ct_encode(&c, &s);
    p = s.data;
    kc_store_u16(p + 4, 2); /* a newer release, correctly sealed */
    ct_reseal(p, s.len);
    KT_ASSERT_EQ(sk_control_decode(p, s.len, "f", &got, &err), KC_EVERSION);
    KT_ASSERT_CONTAINS(err.message, "version 2");
    KT_ASSERT_CONTAINS(err.detail, "newer");
    kc_store_u16(p + 4, 0);
    ct_reseal(p, s.len);
    KT_ASSERT_EQ(sk_control_decode(p, s.len, "f", &got, &err), KC_EVERSION);
    kc_store_u16(p + 4, 1);
    kc_store_u16(p + 6, 1); /* reserved must be zero */
    ct_reseal(p, s.len);
    KT_ASSERT_EQ(sk_control_decode(p, s.len, "f", &got, &err), KC_ECORRUPT);
    kc_store_u16(p + 6, 0);
    kc_store_u32(p, 0x4B534B44);
    ct_reseal(p, s.len);
    KT_ASSERT_EQ(sk_control_decode(p, s.len, "f", &got, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "magic");
    kc_store_u32(p, SK_CONTROL_MAGIC);
    kc_store_u32(p + 8, 0xFFFFFFFF);
    KT_ASSERT_EQ(sk_control_decode(p, s.len, "f", &got, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "length");
    kc_store_u32(p + 8, (uint32_t)(s.len - 16));
    p[SK_CONTROL_HEADER_SIZE + 40] ^= 0x01; /* segment size, correctly sealed: invalid state */
    ct_reseal(p, s.len);
    KT_ASSERT_EQ(sk_control_decode(p, s.len, "f", &got, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "segment size");
    p[SK_CONTROL_HEADER_SIZE + 40] ^= 0x01;
    p[SK_CONTROL_HEADER_SIZE + 128] = 9; /* term history version, sealed */
    ct_reseal(p, s.len);
    KT_ASSERT_EQ(sk_control_decode(p, s.len, "f", &got, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "term history");
    KT_ASSERT_UEQ(got.term, 0);
    sk_control_fini(&c);
    sk_control_fini(&got);
    kc_sbuf_fini(&s);
}

KT_TEST(control_rejects_random_garbage)
{
    struct sk_control got;
    uint8_t buf[600];

    sk_control_init(&got);
    srand(99);
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(rand() % (int)sizeof(buf));
        int rc;

        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand();
        if (iter % 2 == 0 && len >= 16) { /* a valid frame around random contents */
            kc_store_u32(buf, SK_CONTROL_MAGIC);
            kc_store_u16(buf + 4, SK_CONTROL_VERSION);
            kc_store_u16(buf + 6, 0);
            kc_store_u32(buf + 8, (uint32_t)(len - 16));
            if (iter % 4 == 0 && len >= 12 + 128 + 5 + 4) {
                buf[12 + 128] = SK_TERM_HISTORY_VERSION;
                kc_store_u32(buf + 12 + 129, (uint32_t)((len - 12 - 128 - 5 - 4) / 16));
            }
            ct_reseal(buf, len);
        }
        rc = sk_control_decode(buf, len, "garbage", &got, NULL);
        KT_ASSERT(rc == KC_ECORRUPT || rc == KC_EVERSION);
    }
    sk_control_fini(&got);
}

KT_TEST(control_rejects_oversized_file)
{
    const char *dir = kt_tmpdir();
    char path[PATH_MAX];
    struct sk_control got;
    struct kc_error err;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, SK_CONTROL_FILE_NAME);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    KT_ASSERT(fd >= 0);
    KT_ASSERT_EQ(ftruncate(fd, 64 << 20), 0); /* sparse: no real space used */
    close(fd);
    sk_control_init(&got);
    KT_ASSERT_EQ(sk_control_load(dir, &got, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "too large");
    sk_control_fini(&got);
}

KT_TEST(control_leftover_temp_file_is_ignored_and_removed)
{
    const char *dir = kt_tmpdir();
    char tmp[PATH_MAX];
    struct sk_control a, got;

    snprintf(tmp, sizeof(tmp), "%s/%s", dir, SK_CONTROL_TEMP_NAME);
    ct_sample(&a, 0);
    sk_control_init(&got);
    KT_ASSERT_EQ(sk_control_store(dir, &a, NULL), 0);
    ct_write_file(tmp, "half a control fi", 17);
    KT_ASSERT_EQ(sk_control_load(dir, &got, NULL), 0);
    KT_ASSERT(sk_control_equal(&a, &got));
    KT_ASSERT(!ct_exists(dir, SK_CONTROL_TEMP_NAME));
    ct_write_file(tmp, "junk", 4); /* a store overwrites a leftover as well */
    a.term++;
    KT_ASSERT_EQ(sk_control_store(dir, &a, NULL), 0);
    KT_ASSERT_EQ(sk_control_load(dir, &got, NULL), 0);
    KT_ASSERT(sk_control_equal(&a, &got));
    KT_ASSERT(!ct_exists(dir, SK_CONTROL_TEMP_NAME));
    sk_control_fini(&a);
    sk_control_fini(&got);
}

static const char *const ct_failpoints[] = {
    "safekeeper.control.before-write", "safekeeper.control.before-fsync",
    "safekeeper.control.before-rename", "safekeeper.control.after-rename"};

/*
 * Store new in a forked child that crashes (_exit through the failpoint's
 * exit action) at fp; return the child's exit status.
 */
static int ct_crash_store(const char *dir, const struct sk_control *next, const char *fp)
{
    pid_t pid;
    int status;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    KT_ASSERT(pid >= 0);
    if (pid == 0) {
        kc_log_set_level(KC_LOG_ERROR);
        if (kc_failpoint_set(fp, "exit(42)", NULL) != 0)
            _exit(91);
        if (sk_control_store(dir, next, NULL) != 0)
            _exit(92);
        _exit(93); /* the failpoint did not fire */
    }
    KT_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    KT_ASSERT(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* A crash at each step leaves the old state or the new one, never a mix or an error. */
KT_TEST(control_crash_at_each_step_leaves_old_or_new)
{
    const char *dir = kt_tmpdir();

    for (size_t i = 0; i < KC_ARRAY_LEN(ct_failpoints); i++) {
        struct sk_control old, next, got;
        bool after_rename = i == KC_ARRAY_LEN(ct_failpoints) - 1;
        struct kc_error err;

        ct_sample(&old, (unsigned)i);
        ct_sample(&next, (unsigned)i + 10);
        sk_control_init(&got);
        KT_ASSERT_EQ(sk_control_store(dir, &old, NULL), 0);
        KT_ASSERT_EQ(ct_crash_store(dir, &next, ct_failpoints[i]), 42);
        if (sk_control_load(dir, &got, &err) != 0)
            kt_fail(__FILE__, __LINE__, "%s: %s", ct_failpoints[i], err.message);
        KT_ASSERT(sk_control_equal(after_rename ? &next : &old, &got));
        KT_ASSERT(!ct_exists(dir, SK_CONTROL_TEMP_NAME));
        sk_control_fini(&old);
        sk_control_fini(&next);
        sk_control_fini(&got);
    }
}

/* The same for the very first write: no file, or the new one. */
KT_TEST(control_crash_on_first_write)
{
    for (size_t i = 0; i < KC_ARRAY_LEN(ct_failpoints); i++) {
        char dir[PATH_MAX];
        struct sk_control next, got;
        int rc;

        snprintf(dir, sizeof(dir), "%s/d%zu", kt_tmpdir(), i);
        KT_ASSERT_EQ(mkdir(dir, 0700), 0);
        ct_sample(&next, 1);
        sk_control_init(&got);
        KT_ASSERT_EQ(ct_crash_store(dir, &next, ct_failpoints[i]), 42);
        rc = sk_control_load(dir, &got, NULL);
        if (i == KC_ARRAY_LEN(ct_failpoints) - 1) {
            KT_ASSERT_EQ(rc, 0);
            KT_ASSERT(sk_control_equal(&next, &got));
        } else {
            KT_ASSERT_EQ(rc, KC_ENOTFOUND);
        }
        sk_control_fini(&next);
        sk_control_fini(&got);
    }
}

/* An injected error before the rename keeps the old state and leaves no temporary file. */
KT_TEST(control_injected_errors)
{
    const char *dir = kt_tmpdir();
    struct sk_control old, next, got;

    ct_sample(&old, 0);
    ct_sample(&next, 1);
    sk_control_init(&got);
    KT_ASSERT_EQ(sk_control_store(dir, &old, NULL), 0);
    kc_log_set_level(KC_LOG_ERROR);
    for (size_t i = 0; i < KC_ARRAY_LEN(ct_failpoints); i++) {
        struct kc_error err;
        bool after_rename = i == KC_ARRAY_LEN(ct_failpoints) - 1;

        KT_ASSERT_EQ(kc_failpoint_set(ct_failpoints[i], "return(EIO)", NULL), 0);
        KT_ASSERT_EQ(sk_control_store(dir, &next, &err), KC_EFAILPOINT);
        KT_ASSERT_CONTAINS(err.message, ct_failpoints[i]);
        KT_ASSERT_EQ(kc_failpoint_set(ct_failpoints[i], "off", NULL), 0);
        KT_ASSERT(!ct_exists(dir, SK_CONTROL_TEMP_NAME));
        KT_ASSERT_EQ(sk_control_load(dir, &got, NULL), 0);
        KT_ASSERT(sk_control_equal(after_rename ? &next : &old, &got));
        if (after_rename)
            KT_ASSERT_CONTAINS(err.hint, "Restart");
    }
    kc_failpoints_reset();
    sk_control_fini(&old);
    sk_control_fini(&next);
    sk_control_fini(&got);
}

KT_TEST(control_io_errors_name_the_path)
{
    char dir[PATH_MAX];
    struct sk_control c, got;
    struct kc_error err;

    snprintf(dir, sizeof(dir), "%s/missing", kt_tmpdir());
    ct_sample(&c, 0);
    sk_control_init(&got);
    KT_ASSERT_EQ(sk_control_store(dir, &c, &err), KC_EIO);
    KT_ASSERT_CONTAINS(err.message, dir);
    KT_ASSERT_EQ(sk_control_load(dir, &got, &err), KC_ENOTFOUND);
    KT_ASSERT_CONTAINS(err.message, dir);
    sk_control_fini(&c);
    sk_control_fini(&got);
}
