/* SPDX-License-Identifier: Apache-2.0 */
/* term_history_test.c -- unit tests for term_history.c. */
#include "safekeeper/term_history.h"

#include <stdlib.h>

#include "unit.h"

/* A history literal: up to 8 (term, lsn) pairs; a term of 0 ends the list. */
struct th_lit {
    struct sk_term_entry e[8];
};

/* Build h from lit, asserting that every entry is accepted. */
static void th_build(struct sk_term_history *h, const struct th_lit *lit)
{
    sk_term_history_init(h);
    for (int i = 0; i < 8 && lit->e[i].term != 0; i++)
        KT_ASSERT_EQ(sk_term_history_append(h, lit->e[i].term, lit->e[i].lsn, NULL), 0);
}

KT_TEST(term_history_append_rules)
{
    static const struct {
        struct th_lit start;
        uint64_t term;
        kc_lsn lsn;
        int want;
    } cases[] = {
        {{{{0, 0}}}, 1, 0, 0},                              /* first entry, at 0 */
        {{{{0, 0}}}, 7, 0x1000, 0},                         /* first entry, any term */
        {{{{0, 0}}}, 0, 0x1000, KC_EINVAL},                 /* term 0 is "no term" */
        {{{{1, 0x10}}}, 2, 0x10, 0},                        /* empty previous term */
        {{{{1, 0x10}}}, 2, 0x20, 0},                        /* ordinary */
        {{{{1, 0x10}}}, 1, 0x20, KC_EINVAL},                /* same term again */
        {{{{3, 0x10}}}, 2, 0x20, KC_EINVAL},                /* lower term */
        {{{{1, 0x10}}}, 2, 0x0F, KC_EINVAL},                /* start goes back */
        {{{{1, 0}, {5, 0x100}}}, 6, 0x100, 0},              /* after an empty term */
        {{{{1, 0}, {5, 0x100}}}, 4, 0x200, KC_EINVAL},      /* below the last term */
        {{{{1, 0}, {5, 0x100}}}, UINT64_MAX, UINT64_MAX, 0} /* extremes */
    };

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        struct sk_term_history h, before;
        struct kc_error err;

        th_build(&h, &cases[i].start);
        sk_term_history_init(&before);
        sk_term_history_copy(&before, &h);
        kc_error_clear(&err);
        KT_ASSERT_EQ(sk_term_history_append(&h, cases[i].term, cases[i].lsn, &err), cases[i].want);
        if (cases[i].want != 0) {
            KT_ASSERT(sk_term_history_equal(&h, &before)); /* unchanged on error */
            KT_ASSERT_CONTAINS(err.message, "term");
        } else {
            KT_ASSERT_UEQ(h.count, before.count + 1);
            KT_ASSERT_UEQ(sk_term_history_last(&h)->term, cases[i].term);
            KT_ASSERT_UEQ(sk_term_history_last(&h)->lsn, cases[i].lsn);
        }
        KT_ASSERT_EQ(sk_term_history_validate(&h, NULL), 0);
        sk_term_history_fini(&h);
        sk_term_history_fini(&before);
    }
}

KT_TEST(term_history_validate_names_bad_entry)
{
    struct sk_term_entry bad[] = {{1, 0}, {3, 0x50}, {2, 0x60}};
    struct sk_term_history h = {bad, 3, 3};
    struct kc_error err;

    KT_ASSERT_EQ(sk_term_history_validate(&h, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "entry 2");
    bad[2].term = 4;
    bad[2].lsn = 0x40;
    KT_ASSERT_EQ(sk_term_history_validate(&h, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "0/40");
    bad[2].lsn = 0x50;
    KT_ASSERT_EQ(sk_term_history_validate(&h, &err), 0);
    bad[0].term = 0;
    KT_ASSERT_EQ(sk_term_history_validate(&h, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "term 0");
}

KT_TEST(term_history_append_limit)
{
    struct sk_term_history h = SK_TERM_HISTORY_INIT;
    struct kc_error err;

    for (uint32_t i = 0; i < SK_TERM_HISTORY_MAX; i++)
        KT_ASSERT_EQ(sk_term_history_append(&h, i + 1, (kc_lsn)i * 8, NULL), 0);
    KT_ASSERT_EQ(sk_term_history_append(&h, UINT64_MAX, UINT64_MAX, &err), KC_ETOOBIG);
    KT_ASSERT_UEQ(h.count, SK_TERM_HISTORY_MAX);
    sk_term_history_fini(&h);
    KT_ASSERT(h.entries == NULL && h.count == 0);
}

KT_TEST(term_history_last_log_term_table)
{
    static const struct {
        struct th_lit h;
        kc_lsn end;
        uint64_t want;
    } cases[] = {
        {{{{0, 0}}}, 0, 0},                             /* empty history */
        {{{{0, 0}}}, UINT64_MAX, 0},                    /* empty history */
        {{{{1, 0}}}, 0, 1},                             /* entry starts at the end */
        {{{{2, 0x100}}}, 0xFF, 0},                      /* entry beyond the end */
        {{{{2, 0x100}}}, 0x100, 2},                     /* start == end counts */
        {{{{1, 0}, {2, 0x100}, {4, 0x200}}}, 0x1FF, 2}, /* middle */
        {{{{1, 0}, {2, 0x100}, {4, 0x200}}}, 0x200, 4}, /* exactly at the last start */
        {{{{1, 0}, {2, 0x100}, {4, 0x200}}}, 0x50, 1},  /* first */
        {{{{1, 0}, {2, 0x100}, {3, 0x100}}}, 0x100, 3}, /* empty term 2 is skipped */
        {{{{1, 0}, {2, 0x100}, {3, 0x100}}}, 0xFF, 1},  /* just before both */
        {{{{1, 0}, {9, 0x100}}}, UINT64_MAX, 9}         /* infinite end */
    };

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        struct sk_term_history h;

        th_build(&h, &cases[i].h);
        if (sk_term_history_last_log_term(&h, cases[i].end) != cases[i].want)
            kt_fail(__FILE__, __LINE__, "case %zu: last_log_term %llu, want %llu", i,
                    (unsigned long long)sk_term_history_last_log_term(&h, cases[i].end),
                    (unsigned long long)cases[i].want);
        sk_term_history_fini(&h);
    }
}

KT_TEST(term_history_truncate_table)
{
    static const struct {
        struct th_lit h;
        kc_lsn at;
        struct th_lit want;
    } cases[] = {{{{{0, 0}}}, 0x100, {{{0, 0}}}},
                 {{{{1, 0}, {2, 0x100}, {4, 0x200}}}, 0x200, {{{1, 0}, {2, 0x100}, {4, 0x200}}}},
                 {{{{1, 0}, {2, 0x100}, {4, 0x200}}}, 0x1FF, {{{1, 0}, {2, 0x100}}}},
                 {{{{1, 0}, {2, 0x100}, {4, 0x200}}}, 0x100, {{{1, 0}, {2, 0x100}}}},
                 {{{{1, 0}, {2, 0x100}, {4, 0x200}}}, 0, {{{1, 0}}}},
                 {{{{1, 0x10}, {2, 0x100}}}, 0x0F, {{{0, 0}}}},
                 {{{{1, 0}, {2, 0x100}, {3, 0x100}}}, 0x100, {{{1, 0}, {2, 0x100}, {3, 0x100}}}},
                 {{{{1, 0}, {2, 0x100}, {3, 0x100}}}, 0xFF, {{{1, 0}}}},
                 {{{{1, 0}, {2, 0x100}}}, UINT64_MAX, {{{1, 0}, {2, 0x100}}}}};

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        struct sk_term_history h, want;

        th_build(&h, &cases[i].h);
        th_build(&want, &cases[i].want);
        sk_term_history_truncate(&h, cases[i].at);
        if (!sk_term_history_equal(&h, &want))
            kt_fail(__FILE__, __LINE__, "case %zu: %u entries left, want %u", i, h.count,
                    want.count);
        /* Truncating at an LSN keeps exactly the entries whose WAL may lie at or below it. */
        KT_ASSERT_UEQ(sk_term_history_last_log_term(&h, cases[i].at),
                      sk_term_history_last_log_term(&want, cases[i].at));
        sk_term_history_fini(&h);
        sk_term_history_fini(&want);
    }
}

#define INF SK_LSN_INFINITE

KT_TEST(term_history_divergence_table)
{
    static const struct {
        const char *name;
        struct th_lit a;
        kc_lsn a_end;
        struct th_lit b;
        kc_lsn b_end;
        kc_lsn want;
    } cases[] = {
        {"both empty", {{{0, 0}}}, 0, {{{0, 0}}}, 0, 0},
        {"one empty", {{{1, 0}}}, 0x500, {{{0, 0}}}, 0, 0},
        {"other empty", {{{0, 0}}}, 0x500, {{{1, 0}}}, 0x400, 0},
        {"first terms differ", {{{1, 0}}}, 0x500, {{{2, 0}}}, 0x500, 0},
        {"identical, same end",
         {{{1, 0}, {2, 0x100}}},
         0x300,
         {{{1, 0}, {2, 0x100}}},
         0x300,
         0x300},
        {"identical, a shorter",
         {{{1, 0}, {2, 0x100}}},
         0x180,
         {{{1, 0}, {2, 0x100}}},
         0x300,
         0x180},
        {"identical, b shorter",
         {{{1, 0}, {2, 0x100}}},
         0x300,
         {{{1, 0}, {2, 0x100}}},
         0x120,
         0x120},
        {"identical, proposer", {{{1, 0}, {2, 0x100}}}, 0x300, {{{1, 0}, {2, 0x100}}}, INF, 0x300},
        {"a prefix of b",
         {{{1, 0}, {2, 0x100}}},
         0x250,
         {{{1, 0}, {2, 0x100}, {3, 0x200}}},
         INF,
         0x200},
        {"a prefix of b, a behind",
         {{{1, 0}, {2, 0x100}}},
         0x150,
         {{{1, 0}, {2, 0x100}, {3, 0x200}}},
         INF,
         0x150},
        {"b prefix of a",
         {{{1, 0}, {2, 0x100}, {3, 0x200}}},
         0x400,
         {{{1, 0}, {2, 0x100}}},
         0x300,
         0x200},
        {"diverge in the middle",
         {{{1, 0}, {2, 0x100}, {3, 0x200}, {5, 0x300}}},
         0x400,
         {{{1, 0}, {2, 0x100}, {4, 0x180}}},
         INF,
         0x180},
        {"diverge at the same lsn",
         {{{1, 0}, {2, 0x100}, {3, 0x200}}},
         0x400,
         {{{1, 0}, {2, 0x100}, {4, 0x200}}},
         0x300,
         0x200},
        {"a's next term beyond its end",
         {{{1, 0}, {3, 0x200}}},
         0x150,
         {{{1, 0}, {2, 0x100}}},
         0x300,
         0x100},
        {"both next terms beyond ends",
         {{{1, 0}, {3, 0x200}}},
         0x50,
         {{{1, 0}, {2, 0x100}}},
         0x80,
         0x50},
        {"common entry beyond a's end",
         {{{1, 0}, {2, 0x100}}},
         0x80,
         {{{1, 0}, {2, 0x100}, {3, 0x200}}},
         INF,
         0x80},
        {"empty common term",
         {{{1, 0}, {2, 0x100}, {3, 0x100}}},
         0x300,
         {{{1, 0}, {2, 0x100}, {4, 0x100}}},
         INF,
         0x100},
        {"ends at zero", {{{1, 0}}}, 0, {{{1, 0}}}, INF, 0},
        {"common term after a gap",
         {{{1, 0}, {2, 0x100}, {3, 0x200}}},
         0x300,
         {{{1, 0}, {3, 0x200}}},
         INF,
         0x300},
        {"no common term after a gap", {{{1, 0x10}, {3, 0x200}}}, 0x300, {{{2, 0x10}}}, INF, 0},
        {"late first term", {{{4, 0x1000}, {5, 0x2000}}}, 0x3000, {{{4, 0x1000}}}, INF, 0x2000},
    };

    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        struct sk_term_history a, b;
        kc_lsn got = 12345, rev = 54321;
        struct kc_error err;

        th_build(&a, &cases[i].a);
        th_build(&b, &cases[i].b);
        if (sk_term_history_divergence(&a, cases[i].a_end, &b, cases[i].b_end, &got, &err) != 0)
            kt_fail(__FILE__, __LINE__, "%s: %s", cases[i].name, err.message);
        if (got != cases[i].want)
            kt_fail(__FILE__, __LINE__, "%s: divergence 0x%llx, want 0x%llx", cases[i].name,
                    (unsigned long long)got, (unsigned long long)cases[i].want);
        /* The definition is symmetric. */
        KT_ASSERT_EQ(sk_term_history_divergence(&b, cases[i].b_end, &a, cases[i].a_end, &rev, NULL),
                     0);
        KT_ASSERT_UEQ(rev, got);
        sk_term_history_fini(&a);
        sk_term_history_fini(&b);
    }
}

KT_TEST(term_history_divergence_rejects_inconsistent)
{
    struct th_lit la = {{{1, 0}, {2, 0x100}}}, lb = {{{1, 0}, {2, 0x180}}};
    struct sk_term_entry bad[] = {{2, 0}, {1, 0x10}};
    struct sk_term_history a, b, invalid = {bad, 2, 2};
    kc_lsn out = 77;
    struct kc_error err;

    th_build(&a, &la);
    th_build(&b, &lb);
    KT_ASSERT_EQ(sk_term_history_divergence(&a, INF, &b, INF, &out, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "term 2");
    KT_ASSERT_CONTAINS(err.detail, "0/180");
    KT_ASSERT_UEQ(out, 77);
    KT_ASSERT_EQ(sk_term_history_divergence(&a, INF, &invalid, INF, &out, &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "cannot compare term histories");
    KT_ASSERT_UEQ(out, 77);
    sk_term_history_fini(&a);
    sk_term_history_fini(&b);
}

/* Term of position x in a log (0: no WAL there), the brute-force model of a log. */
static uint64_t th_term_at(const struct sk_term_history *h, kc_lsn end, kc_lsn x)
{
    return x < end ? sk_term_history_last_log_term(h, x) : 0;
}

/*
 * Property: for histories that share a prefix and then continue with terms
 * of their own (as the protocol produces: a term's history is fixed by its
 * proposer), the divergence point is exactly where the positional terms of
 * the two logs first differ.
 */
KT_TEST(term_history_divergence_matches_positional_model)
{
    srand(20240611);
    for (int iter = 0; iter < 3000; iter++) {
        struct sk_term_history a = SK_TERM_HISTORY_INIT, b = SK_TERM_HISTORY_INIT;
        int nbase = 1 + rand() % 3, na = rand() % 3, nb = rand() % 3;
        uint64_t term = 1;
        kc_lsn lsn = 0, la, lb, a_end, b_end, got, want = 0;

        for (int i = 0; i < nbase; i++) {
            KT_ASSERT_EQ(sk_term_history_append(&a, term, lsn, NULL), 0);
            term += 1 + (uint64_t)(rand() % 2);
            lsn += (kc_lsn)(rand() % 4) * 8;
        }
        sk_term_history_copy(&b, &a);
        la = lb = lsn;
        for (int i = 0; i < na || i < nb; i++) { /* a takes odd terms, b even ones */
            uint64_t t = term + 2 * (uint64_t)i;
            if (i < na && sk_term_history_append(&a, t | 1, la, NULL) == 0)
                la += (kc_lsn)(rand() % 3) * 8;
            if (i < nb && sk_term_history_append(&b, (t + 1) & ~1ull, lb, NULL) == 0)
                lb += (kc_lsn)(rand() % 3) * 8;
        }
        a_end = (kc_lsn)(rand() % 20) * 4;
        b_end = rand() % 4 == 0 ? INF : (kc_lsn)(rand() % 20) * 4;
        KT_ASSERT_EQ(sk_term_history_divergence(&a, a_end, &b, b_end, &got, NULL), 0);
        while (want < 200 && th_term_at(&a, a_end, want) != 0 &&
               th_term_at(&a, a_end, want) == th_term_at(&b, b_end, want))
            want++;
        if (got != want)
            kt_fail(__FILE__, __LINE__, "iteration %d: divergence %llu, positional %llu", iter,
                    (unsigned long long)got, (unsigned long long)want);
        sk_term_history_fini(&a);
        sk_term_history_fini(&b);
    }
}

KT_TEST(term_history_compare_logs)
{
    struct th_lit l1 = {{{1, 0}, {2, 0x100}}}, l2 = {{{1, 0}, {3, 0x200}}};
    struct sk_term_history a, b;

    KT_ASSERT(sk_log_position_compare(2, 0x100, 1, 0x900) > 0); /* term wins */
    KT_ASSERT(sk_log_position_compare(1, 0x900, 2, 0x100) < 0);
    KT_ASSERT(sk_log_position_compare(2, 0x100, 2, 0x200) < 0); /* then the end */
    KT_ASSERT(sk_log_position_compare(2, 0x300, 2, 0x200) > 0);
    KT_ASSERT_EQ(sk_log_position_compare(2, 0x200, 2, 0x200), 0);
    KT_ASSERT_EQ(sk_log_position_compare(0, 0, 0, 0), 0);
    th_build(&a, &l1);
    th_build(&b, &l2);
    KT_ASSERT(sk_term_history_compare_logs(&a, 0x500, &b, 0x200) < 0); /* 2 < 3 */
    KT_ASSERT(sk_term_history_compare_logs(&a, 0x500, &b, 0x1FF) > 0); /* b's term 3 unused */
    KT_ASSERT(sk_term_history_compare_logs(&a, 0x150, &b, 0x150) > 0); /* 2 vs 1 */
    KT_ASSERT_EQ(sk_term_history_compare_logs(&a, 0x50, &b, 0x50), 0); /* both term 1 */
    KT_ASSERT(sk_term_history_compare_logs(&a, 0x50, &b, 0x60) < 0);
    sk_term_history_fini(&a);
    sk_term_history_fini(&b);
}

KT_TEST(term_history_encode_decode_roundtrip)
{
    struct th_lit lits[] = {{{{0, 0}}},
                            {{{1, 0}}},
                            {{{1, 0}, {2, 0x16B3740}, {3, 0x16B3740}, {UINT64_MAX, UINT64_MAX}}}};

    for (size_t i = 0; i < KC_ARRAY_LEN(lits); i++) {
        struct sk_term_history h, back = SK_TERM_HISTORY_INIT;
        struct kc_sbuf s = KC_SBUF_INIT;
        struct kc_buf in;

        th_build(&h, &lits[i]);
        kc_sbuf_put_u8(&s, 0xAA); /* encoding appends */
        sk_term_history_encode(&h, &s);
        kc_sbuf_put_u8(&s, 0xBB); /* decoding stops at the end of the history */
        KT_ASSERT_UEQ(s.len, 2 + SK_TERM_HISTORY_ENCODED_SIZE(h.count));
        kc_buf_init(&in, s.data + 1, s.len - 1);
        KT_ASSERT_EQ(sk_term_history_decode(&in, &back, NULL), 0);
        KT_ASSERT(sk_term_history_equal(&h, &back));
        KT_ASSERT_UEQ(kc_buf_remaining(&in), 1);
        sk_term_history_fini(&h);
        sk_term_history_fini(&back);
        kc_sbuf_fini(&s);
    }
}

KT_TEST(term_history_encoding_layout)
{
    struct th_lit lit = {{{2, 0x0102030405060708ull}}};
    static const uint8_t want[] = {1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8};
    struct sk_term_history h;
    struct kc_sbuf s = KC_SBUF_INIT;

    th_build(&h, &lit);
    sk_term_history_encode(&h, &s);
    KT_ASSERT_UEQ(s.len, sizeof(want));
    KT_ASSERT_MEM_EQ(s.data, want, sizeof(want));
    sk_term_history_fini(&h);
    kc_sbuf_fini(&s);
}

/* Decode data; on success the result must be a valid history. Returns the code. */
static int th_try_decode(const uint8_t *data, size_t len)
{
    struct sk_term_history h = SK_TERM_HISTORY_INIT;
    struct kc_buf in;
    struct kc_error err;
    int rc;

    kc_buf_init(&in, data, len);
    kc_error_clear(&err);
    rc = sk_term_history_decode(&in, &h, &err);
    if (rc == 0) {
        KT_ASSERT_EQ(sk_term_history_validate(&h, NULL), 0);
        KT_ASSERT_UEQ(in.pos, SK_TERM_HISTORY_ENCODED_SIZE(h.count));
    } else {
        KT_ASSERT_EQ(err.code, rc);
        KT_ASSERT(err.message[0] != '\0');
        KT_ASSERT_UEQ(in.pos, 0); /* nothing consumed on failure */
        KT_ASSERT(h.count == 0 && h.entries == NULL);
    }
    sk_term_history_fini(&h);
    return rc;
}

KT_TEST(term_history_decode_malformed)
{
    struct th_lit lit = {{{1, 0}, {2, 0x100}, {5, 0x300}}};
    struct sk_term_history h;
    struct kc_sbuf s = KC_SBUF_INIT;
    uint8_t copy[64];

    th_build(&h, &lit);
    sk_term_history_encode(&h, &s);
    KT_ASSERT(s.len <= sizeof(copy));
    for (size_t n = 0; n < s.len; n++) /* every truncation */
        KT_ASSERT(th_try_decode(s.data, n) != 0);
    for (size_t bit = 0; bit < s.len * 8; bit++) { /* every bit flip: error or valid */
        memcpy(copy, s.data, s.len);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        (void)th_try_decode(copy, s.len);
    }
    memcpy(copy, s.data, s.len);
    copy[0] = 2;
    KT_ASSERT_EQ(th_try_decode(copy, s.len), KC_EVERSION);
    copy[0] = 1;
    kc_store_u32(copy + 1, SK_TERM_HISTORY_MAX + 1);
    KT_ASSERT_EQ(th_try_decode(copy, s.len), KC_ETOOBIG);
    kc_store_u32(copy + 1, 4); /* one entry more than the bytes hold */
    KT_ASSERT_EQ(th_try_decode(copy, s.len), KC_ECORRUPT);
    memcpy(copy, s.data, s.len);
    kc_store_u64(copy + 5 + 16 * 2, 2); /* third term equal to the second */
    KT_ASSERT_EQ(th_try_decode(copy, s.len), KC_ECORRUPT);
    memcpy(copy, s.data, s.len);
    kc_store_u64(copy + 5 + 16 * 1 + 8, 0); /* second start equal to the first: valid */
    KT_ASSERT_EQ(th_try_decode(copy, s.len), 0);
    kc_store_u64(copy + 5 + 8, 0x200); /* first start now above the second */
    KT_ASSERT_EQ(th_try_decode(copy, s.len), KC_ECORRUPT);
    memcpy(copy, s.data, s.len);
    kc_store_u64(copy + 5, 0); /* term 0 */
    KT_ASSERT_EQ(th_try_decode(copy, s.len), KC_ECORRUPT);
    sk_term_history_fini(&h);
    kc_sbuf_fini(&s);
}

KT_TEST(term_history_decode_random_bytes)
{
    uint8_t buf[300];

    srand(7);
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(rand() % (int)sizeof(buf));
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand();
        if (len > 0 && iter % 2 == 0)
            buf[0] = SK_TERM_HISTORY_VERSION; /* get past the version check */
        if (len > 4 && iter % 4 == 0)
            kc_store_u32(buf + 1, (uint32_t)(rand() % 20));
        (void)th_try_decode(buf, len);
    }
}

KT_TEST(term_history_decode_keeps_old_on_failure)
{
    struct th_lit lit = {{{3, 0x30}}};
    struct sk_term_history h;
    uint8_t junk[] = {1, 0, 0, 0, 1, 0, 0};
    struct kc_buf in;

    th_build(&h, &lit);
    kc_buf_init(&in, junk, sizeof(junk));
    KT_ASSERT_EQ(sk_term_history_decode(&in, &h, NULL), KC_ECORRUPT);
    KT_ASSERT_UEQ(h.count, 1);
    KT_ASSERT_UEQ(h.entries[0].term, 3);
    sk_term_history_fini(&h);
}

KT_TEST(term_history_copy_and_format)
{
    struct th_lit lit = {{{1, 0}, {4, 0x16B3740}}};
    struct sk_term_history h, c = SK_TERM_HISTORY_INIT, empty = SK_TERM_HISTORY_INIT;
    struct kc_sbuf s = KC_SBUF_INIT;

    th_build(&h, &lit);
    sk_term_history_copy(&c, &h);
    KT_ASSERT(sk_term_history_equal(&c, &h));
    KT_ASSERT(c.entries != h.entries);
    sk_term_history_copy(&c, &empty);
    KT_ASSERT_UEQ(c.count, 0);
    KT_ASSERT(sk_term_history_last(&c) == NULL);
    sk_term_history_copy(&c, &c);
    sk_term_history_format(&h, &s);
    KT_ASSERT_STR_EQ(kc_sbuf_str(&s), "[(1, 0/0), (4, 0/16B3740)]");
    kc_sbuf_reset(&s);
    sk_term_history_format(&empty, &s);
    KT_ASSERT_STR_EQ(kc_sbuf_str(&s), "[]");
    sk_term_history_fini(&h);
    sk_term_history_fini(&c);
    kc_sbuf_fini(&s);
}
