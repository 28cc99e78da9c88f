/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wal_decoder_test.c -- unit tests for the decoder's own rules. Decoding real
 * WAL is tested against pg_waldump in tests/test_wal_decoder.py.
 */
#include "pageserver/wal_decoder.h"

#include "unit.h"

KT_TEST(wal_decoder_rejects_bad_parameters)
{
    struct ps_wal_decoder *d = NULL;
    struct kc_error err;

    KT_ASSERT_EQ(ps_wal_decoder_create(0x1000000, 12345, 0, &d, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "invalid WAL segment size");
    KT_ASSERT_EQ(ps_wal_decoder_create(0, 16 * 1024 * 1024, 0, &d, &err), KC_EINVAL);
    KT_ASSERT(d == NULL);
}

KT_TEST(wal_decoder_input_must_be_contiguous)
{
    struct ps_wal_decoder *d;
    struct ps_wal_record rec;
    struct kc_error err;
    uint8_t zeros[100] = {0};

    /* Mid-page start: input continues exactly at the start LSN. */
    KT_ASSERT_EQ(ps_wal_decoder_create(0x1493070, 16 * 1024 * 1024, 0, &d, &err), 0);
    KT_ASSERT_UEQ(ps_wal_decoder_input_start(d), 0x1493070);
    KT_ASSERT_UEQ(ps_wal_decoder_input_end(d), 0x1493070);
    KT_ASSERT_EQ(ps_wal_decoder_feed(d, 0x1493000, zeros, sizeof(zeros), &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "does not continue the stream at 0/1493070");
    /* Not enough bytes for a record header yet: asks for more, no error. */
    KT_ASSERT_EQ(ps_wal_decoder_feed(d, 0x1493070, zeros, 10, &err), 0);
    KT_ASSERT_EQ(ps_wal_decoder_next(d, &rec, &err), 0);
    /* A zero-length record header is invalid WAL, reported as corruption. */
    KT_ASSERT_EQ(ps_wal_decoder_feed(d, 0x149307A, zeros, sizeof(zeros), &err), 0);
    KT_ASSERT_EQ(ps_wal_decoder_next(d, &rec, &err), KC_ECORRUPT);
    KT_ASSERT_CONTAINS(err.message, "invalid WAL at 0/1493070");
    ps_wal_decoder_destroy(d);
}

KT_TEST(wal_decoder_rmgr_names)
{
    KT_ASSERT_STR_EQ(ps_wal_rmgr_name(0), "XLOG");
    KT_ASSERT_STR_EQ(ps_wal_rmgr_name(10), "Heap");
    KT_ASSERT_STR_EQ(ps_wal_rmgr_name(250), "unknown");
}
