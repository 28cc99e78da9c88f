/* SPDX-License-Identifier: Apache-2.0 */
/*
 * term_history.h -- term histories: which term wrote which part of a WAL log.
 *
 * A term history is an ordered list of (term, start LSN) entries: entry i says
 * that the proposer (compute) elected in term entries[i].term wrote the WAL
 * from entries[i].lsn up to the start of entry i + 1, or up to the end of the
 * log for the last entry. Terms strictly increase and start LSNs never
 * decrease (an entry may be empty when the next term starts at the same LSN).
 * Term 0 means "no term" and never appears in a history.
 *
 * A log is a history plus the end of the WAL it describes (its flush LSN).
 * Entries may start beyond that end (an acceptor adopts the whole history of
 * the proposer it follows before it has all of that proposer's WAL); such
 * entries describe no WAL of this log. So:
 *
 *   last_log_term(h, end) = term of the last entry whose lsn <= end (0 if none)
 *   logs compare by (last_log_term, end), lexicographically
 *
 * The divergence point of two logs is defined in sk_term_history_divergence
 * and docs/safekeeper-storage.md.
 *
 * Encoding (version 1, big-endian, through struct kc_buf when read):
 *
 *   u8  version (SK_TERM_HISTORY_VERSION)
 *   u32 count   (at most SK_TERM_HISTORY_MAX)
 *   count * { u64 term, u64 lsn }
 *
 * Not thread-safe: a history belongs to one thread at a time.
 */
#ifndef SK_TERM_HISTORY_H
#define SK_TERM_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/lsn.h"

#define SK_TERM_HISTORY_VERSION 1
/* Most entries a history may hold: one per election, far beyond any real timeline. */
#define SK_TERM_HISTORY_MAX 65536u
/* Bytes of an encoded history with n entries. */
#define SK_TERM_HISTORY_ENCODED_SIZE(n) (5u + 16u * (uint64_t)(n))
/* The end of a log that has no end yet: a proposer's own log in a divergence query. */
#define SK_LSN_INFINITE UINT64_MAX

struct sk_term_entry {
    uint64_t term; /* the term, > 0 */
    kc_lsn lsn;    /* where the term's WAL starts */
};

/* Owns its entries; zero-initialised (SK_TERM_HISTORY_INIT) is empty and valid. */
struct sk_term_history {
    struct sk_term_entry *entries; /* count entries, ordered; owned */
    uint32_t count;                /* entries in use */
    uint32_t cap;                  /* entries allocated */
};
#define SK_TERM_HISTORY_INIT \
    {                        \
        NULL, 0, 0           \
    }

void sk_term_history_init(struct sk_term_history *h);
/* Free the entries; h becomes empty (and may be reused). */
void sk_term_history_fini(struct sk_term_history *h);
/* Make dst (initialised) an independent copy of src. */
void sk_term_history_copy(struct sk_term_history *dst, const struct sk_term_history *src);
bool sk_term_history_equal(const struct sk_term_history *a, const struct sk_term_history *b);

/* The last entry, or NULL when h is empty; valid until h changes. */
const struct sk_term_entry *sk_term_history_last(const struct sk_term_history *h);

/*
 * sk_term_history_append -- add (term, lsn) at the end of h. Returns 0, or
 * KC_EINVAL (h unchanged) when term is 0, not above the last term, or lsn is
 * below the last start LSN, or KC_ETOOBIG when h already holds
 * SK_TERM_HISTORY_MAX entries.
 */
int sk_term_history_append(struct sk_term_history *h, uint64_t term, kc_lsn lsn,
                           struct kc_error *err) KC_MUSTCHECK;

/* sk_term_history_validate -- KC_EINVAL naming the first entry that breaks the ordering rules. */
int sk_term_history_validate(const struct sk_term_history *h, struct kc_error *err) KC_MUSTCHECK;

/* Term of the last entry starting at or below end (0 when there is none). */
uint64_t sk_term_history_last_log_term(const struct sk_term_history *h, kc_lsn end);

/*
 * sk_term_history_truncate -- drop every entry that starts above lsn, so that
 * h describes only a log ending at lsn. Entries starting exactly at lsn stay.
 */
void sk_term_history_truncate(struct sk_term_history *h, kc_lsn lsn);

/*
 * sk_term_history_divergence -- the LSN up to which log A (history a ending at
 * a_end) and log B (b, b_end) hold the same WAL.
 *
 * Let T be the last common term: the highest term present in both histories
 * (with the same start LSN). T's WAL ends, on each side, at the start of that
 * side's next entry or at the side's end, whichever comes first; the result
 * is the smaller of the two ends. Below it both logs hold the same terms at
 * the same LSNs, and therefore (one proposer per term) the same bytes. With
 * no common term the logs share nothing and *out is KC_LSN_INVALID. Pass
 * SK_LSN_INFINITE as the end of a proposer's log whose last term is still
 * being written. This is the definition the protocol model checks
 * (src/safekeeper/model/history.pml); for histories the protocol produces,
 * T is also the last entry of their longest common prefix.
 *
 * Returns 0 and sets *out, or KC_EINVAL (*out untouched) when a history is
 * invalid or both hold the same term with different start LSNs (a protocol
 * violation: a term has exactly one start).
 */
int sk_term_history_divergence(const struct sk_term_history *a, kc_lsn a_end,
                               const struct sk_term_history *b, kc_lsn b_end, kc_lsn *out,
                               struct kc_error *err) KC_MUSTCHECK;

/* Compare logs by (last_log_term, end): negative, zero or positive as a < b, a == b, a > b. */
int sk_log_position_compare(uint64_t a_term, kc_lsn a_end, uint64_t b_term, kc_lsn b_end);
int sk_term_history_compare_logs(const struct sk_term_history *a, kc_lsn a_end,
                                 const struct sk_term_history *b, kc_lsn b_end);

/* Append the version-1 encoding of h (which must be valid) to out. */
void sk_term_history_encode(const struct sk_term_history *h, struct kc_sbuf *out);

/*
 * sk_term_history_decode -- read one encoded history from in (consuming it)
 * into h (initialised; its old entries are replaced). On failure h and the
 * position of in are unchanged and the result is KC_EVERSION (unknown
 * version), KC_ETOOBIG (count above SK_TERM_HISTORY_MAX), KC_ECORRUPT
 * (truncated, or entries breaking the ordering rules) or KC_ENOMEM.
 */
int sk_term_history_decode(struct kc_buf *in, struct sk_term_history *h,
                           struct kc_error *err) KC_MUSTCHECK;

/* Append "[(term, X/X), ...]" to out, for logs and error details. */
void sk_term_history_format(const struct sk_term_history *h, struct kc_sbuf *out);

#endif
