/* SPDX-License-Identifier: Apache-2.0 */
/* term_history.c -- term histories of WAL logs: ordering rules, divergence, encoding. */
#include "safekeeper/term_history.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

void sk_term_history_init(struct sk_term_history *h)
{
    h->entries = NULL;
    h->count = 0;
    h->cap = 0;
}

void sk_term_history_fini(struct sk_term_history *h)
{
    free(h->entries);
    sk_term_history_init(h);
}

/* Make room for n entries (n <= SK_TERM_HISTORY_MAX, our own size). */
static void sk_th_reserve(struct sk_term_history *h, uint32_t n)
{
    uint32_t cap = h->cap < 4 ? 4 : h->cap;

    if (n <= h->cap)
        return;
    while (cap < n)
        cap *= 2;
    h->entries = kc_realloc(h->entries, (size_t)cap * sizeof(h->entries[0]));
    h->cap = cap;
}

void sk_term_history_copy(struct sk_term_history *dst, const struct sk_term_history *src)
{
    if (dst == src)
        return;
    dst->count = 0;
    sk_th_reserve(dst, src->count);
    if (src->count > 0)
        memcpy(dst->entries, src->entries, (size_t)src->count * sizeof(src->entries[0]));
    dst->count = src->count;
}

bool sk_term_history_equal(const struct sk_term_history *a, const struct sk_term_history *b)
{
    if (a->count != b->count)
        return false;
    for (uint32_t i = 0; i < a->count; i++)
        if (a->entries[i].term != b->entries[i].term || a->entries[i].lsn != b->entries[i].lsn)
            return false;
    return true;
}

const struct sk_term_entry *sk_term_history_last(const struct sk_term_history *h)
{
    return h->count == 0 ? NULL : &h->entries[h->count - 1];
}

/*
 * Check that (term, lsn) may follow prev (NULL for a first entry). Returns 0
 * or KC_EINVAL with err explaining the rule that is broken; index names the
 * entry in messages.
 */
static int sk_th_check_next(const struct sk_term_entry *prev, uint64_t term, kc_lsn lsn,
                            uint32_t index, struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    if (term == 0) {
        kc_error_set(err, KC_EINVAL, "term history entry %u has term 0", index);
        kc_error_detail(err, "Term 0 means \"no term\" and cannot start any WAL.");
        return KC_EINVAL;
    }
    if (prev == NULL)
        return 0;
    if (term <= prev->term) {
        kc_error_set(err, KC_EINVAL,
                     "term history entry %u has term %llu, not above the previous term %llu", index,
                     (unsigned long long)term, (unsigned long long)prev->term);
        kc_error_detail(err, "Terms in a term history must strictly increase.");
        return KC_EINVAL;
    }
    if (lsn < prev->lsn) {
        kc_error_set(err, KC_EINVAL,
                     "term history entry %u starts at %s, before the previous entry at %s", index,
                     kc_lsn_format(lsn, a), kc_lsn_format(prev->lsn, b));
        kc_error_detail(err, "Start LSNs in a term history must never decrease.");
        return KC_EINVAL;
    }
    return 0;
}

int sk_term_history_append(struct sk_term_history *h, uint64_t term, kc_lsn lsn,
                           struct kc_error *err)
{
    int rc;

    if (h->count >= SK_TERM_HISTORY_MAX) {
        kc_error_set(err, KC_ETOOBIG, "term history is full");
        kc_error_detail(err, "A term history holds at most %u entries.", SK_TERM_HISTORY_MAX);
        return KC_ETOOBIG;
    }
    rc = sk_th_check_next(sk_term_history_last(h), term, lsn, h->count, err);
    if (rc != 0)
        return rc;
    sk_th_reserve(h, h->count + 1);
    h->entries[h->count].term = term;
    h->entries[h->count].lsn = lsn;
    h->count++;
    return 0;
}

int sk_term_history_validate(const struct sk_term_history *h, struct kc_error *err)
{
    if (h->count > SK_TERM_HISTORY_MAX) {
        kc_error_set(err, KC_ETOOBIG, "term history has %u entries, more than the limit of %u",
                     h->count, SK_TERM_HISTORY_MAX);
        return KC_ETOOBIG;
    }
    for (uint32_t i = 0; i < h->count; i++) {
        int rc = sk_th_check_next(i == 0 ? NULL : &h->entries[i - 1], h->entries[i].term,
                                  h->entries[i].lsn, i, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

uint64_t sk_term_history_last_log_term(const struct sk_term_history *h, kc_lsn end)
{
    /* Start LSNs are sorted: walk back from the end to the first entry at or below end. */
    for (uint32_t i = h->count; i > 0; i--)
        if (h->entries[i - 1].lsn <= end)
            return h->entries[i - 1].term;
    return 0;
}

void sk_term_history_truncate(struct sk_term_history *h, kc_lsn lsn)
{
    while (h->count > 0 && h->entries[h->count - 1].lsn > lsn)
        h->count--;
}

/* Where the WAL of entry i of h ends, for a log ending at end. */
static kc_lsn sk_th_entry_end(const struct sk_term_history *h, uint32_t i, kc_lsn end)
{
    if (i + 1 < h->count && h->entries[i + 1].lsn < end)
        return h->entries[i + 1].lsn;
    return end;
}

int sk_term_history_divergence(const struct sk_term_history *a, kc_lsn a_end,
                               const struct sk_term_history *b, kc_lsn b_end, kc_lsn *out,
                               struct kc_error *err)
{
    uint32_t i = 0, j = 0, ci = 0, cj = 0;
    bool found = false;
    kc_lsn ea, eb;
    int rc;

    if ((rc = sk_term_history_validate(a, err)) != 0 ||
        (rc = sk_term_history_validate(b, err)) != 0) {
        kc_error_prefix(err, "cannot compare term histories");
        return KC_EINVAL;
    }
    /* Both are sorted by term: merge them to find the last term they share. */
    while (i < a->count && j < b->count) {
        const struct sk_term_entry *x = &a->entries[i], *y = &b->entries[j];
        if (x->term < y->term) {
            i++;
        } else if (x->term > y->term) {
            j++;
        } else if (x->lsn != y->lsn) {
            char l1[KC_LSN_STRLEN], l2[KC_LSN_STRLEN];
            kc_error_set(err, KC_EINVAL, "term histories disagree on where term %llu starts",
                         (unsigned long long)x->term);
            kc_error_detail(err,
                            "One history starts it at %s, the other at %s; a term has "
                            "exactly one start.",
                            kc_lsn_format(x->lsn, l1), kc_lsn_format(y->lsn, l2));
            return KC_EINVAL;
        } else {
            found = true;
            ci = i++;
            cj = j++;
        }
    }
    if (!found) {
        *out = KC_LSN_INVALID;
        return 0;
    }
    ea = sk_th_entry_end(a, ci, a_end);
    eb = sk_th_entry_end(b, cj, b_end);
    *out = ea < eb ? ea : eb;
    return 0;
}

int sk_log_position_compare(uint64_t a_term, kc_lsn a_end, uint64_t b_term, kc_lsn b_end)
{
    if (a_term != b_term)
        return a_term < b_term ? -1 : 1;
    if (a_end != b_end)
        return a_end < b_end ? -1 : 1;
    return 0;
}

int sk_term_history_compare_logs(const struct sk_term_history *a, kc_lsn a_end,
                                 const struct sk_term_history *b, kc_lsn b_end)
{
    return sk_log_position_compare(sk_term_history_last_log_term(a, a_end), a_end,
                                   sk_term_history_last_log_term(b, b_end), b_end);
}

void sk_term_history_encode(const struct sk_term_history *h, struct kc_sbuf *out)
{
    kc_sbuf_reserve(out, (size_t)SK_TERM_HISTORY_ENCODED_SIZE(h->count));
    kc_sbuf_put_u8(out, SK_TERM_HISTORY_VERSION);
    kc_sbuf_put_u32(out, h->count);
    for (uint32_t i = 0; i < h->count; i++) {
        kc_sbuf_put_u64(out, h->entries[i].term);
        kc_sbuf_put_u64(out, h->entries[i].lsn);
    }
}

static int sk_th_truncated(struct kc_error *err, const char *what, size_t remaining)
{
    kc_error_set(err, KC_ECORRUPT, "truncated term history: %s is missing", what);
    kc_error_detail(err, "Only %zu bytes remain.", remaining);
    return KC_ECORRUPT;
}

int sk_term_history_decode(struct kc_buf *in, struct sk_term_history *h, struct kc_error *err)
{
    struct kc_buf b = *in; /* work on a copy: in moves only on success */
    struct sk_term_history tmp = SK_TERM_HISTORY_INIT;
    uint8_t version;
    uint32_t count;

    if (!kc_buf_get_u8(&b, &version))
        return sk_th_truncated(err, "the version", kc_buf_remaining(&b));
    if (version != SK_TERM_HISTORY_VERSION) {
        kc_error_set(err, KC_EVERSION, "unsupported term history version %u", version);
        kc_error_detail(err, "This build reads version %d.", SK_TERM_HISTORY_VERSION);
        return KC_EVERSION;
    }
    if (!kc_buf_get_u32(&b, &count))
        return sk_th_truncated(err, "the entry count", kc_buf_remaining(&b));
    if (count > SK_TERM_HISTORY_MAX) {
        kc_error_set(err, KC_ETOOBIG, "term history claims %u entries, more than the limit of %u",
                     count, SK_TERM_HISTORY_MAX);
        return KC_ETOOBIG;
    }
    if (kc_buf_remaining(&b) / 16 < count) {
        kc_error_set(err, KC_ECORRUPT, "truncated term history: %u entries need %u bytes", count,
                     16 * count);
        kc_error_detail(err, "Only %zu bytes remain.", kc_buf_remaining(&b));
        return KC_ECORRUPT;
    }
    if (count > 0) {
        tmp.entries = kc_try_malloc((size_t)count * sizeof(tmp.entries[0]));
        if (tmp.entries == NULL)
            return kc_error_set(err, KC_ENOMEM, "out of memory for a term history of %u entries",
                                count);
        tmp.cap = count;
    }
    for (uint32_t i = 0; i < count; i++) {
        struct sk_term_entry e;
        int rc;

        if (!kc_buf_get_u64(&b, &e.term) || !kc_buf_get_u64(&b, &e.lsn)) {
            sk_term_history_fini(&tmp); /* not reached: the length was checked above */
            return sk_th_truncated(err, "an entry", kc_buf_remaining(&b));
        }
        rc = sk_th_check_next(i == 0 ? NULL : &tmp.entries[i - 1], e.term, e.lsn, i, err);
        if (rc != 0) {
            sk_term_history_fini(&tmp);
            if (err != NULL)
                err->code = KC_ECORRUPT; /* stored data, not a caller's mistake */
            kc_error_prefix(err, "corrupt term history");
            return KC_ECORRUPT;
        }
        tmp.entries[tmp.count++] = e;
    }
    sk_term_history_fini(h);
    *h = tmp;
    *in = b;
    return 0;
}

void sk_term_history_format(const struct sk_term_history *h, struct kc_sbuf *out)
{
    char lsn[KC_LSN_STRLEN];

    kc_sbuf_puts(out, "[");
    for (uint32_t i = 0; i < h->count; i++)
        kc_sbuf_printf(out, "%s(%llu, %s)", i == 0 ? "" : ", ",
                       (unsigned long long)h->entries[i].term,
                       kc_lsn_format(h->entries[i].lsn, lsn));
    kc_sbuf_puts(out, "]");
}
