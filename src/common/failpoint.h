/* SPDX-License-Identifier: Apache-2.0 */
/*
 * failpoint.h -- named fault-injection points that tests arm to crash, stall or fail a step.
 *
 * Code marks a step with a named failpoint:
 *
 *   if (KC_FAILPOINT("pageserver.ingest.before-flush"))
 *       return kc_error_set(err, KC_EFAILPOINT, "...");
 *   KC_FAILPOINT_RETURN("safekeeper.wal.before-fsync", KC_EIO);
 *   KC_FAILPOINT_ERROR("proxy.connect.after-auth", err);
 *
 * and a test (or an operator) arms it by name with an action:
 *
 *   KELP_FAILPOINTS="pageserver.ingest.before-flush=50%3*return(EIO);proxy.x=sleep(200)"
 *
 * read by kc_failpoints_init_from_env() at start, or at runtime through
 * kc_failpoint_set() / kc_failpoint_configure() (the HTTP endpoint
 * GET/PUT /v1/failpoints). The grammar and the actions are documented in
 * docs/failpoints.md:
 *
 *   off                 disarm (remove) the failpoint
 *   return, return(V)   the call site is told it fired and gets the value V ("" without)
 *   sleep(MS)           the calling thread sleeps MS milliseconds (ends early when the
 *                       failpoint is reconfigured or removed)
 *   panic               log at FATAL naming the failpoint, then abort()
 *   exit, exit(CODE)    _exit(CODE) at once (default 1), no cleanup: a simulated crash
 *   pause               block until another thread changes or removes the failpoint,
 *                       then evaluate its new action
 *   N% prefix           fire with probability N percent (0 to 100, up to 4 decimals)
 *   N* prefix           fire at most N more times, then behave as off
 *
 * Cost when nothing is armed: one relaxed atomic load and a branch, inlined
 * at the call site. Everything here is thread-safe.
 */
#ifndef KC_FAILPOINT_H
#define KC_FAILPOINT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"

#define KC_FAILPOINTS_ENV      "KELP_FAILPOINTS"      /* name=action;name2=action2 */
#define KC_FAILPOINTS_SEED_ENV "KELP_FAILPOINTS_SEED" /* decimal seed for N% */
#define KC_FAILPOINT_NAME_MAX  127                    /* longest name, in bytes */
#define KC_FAILPOINT_VALUE_MAX 63                     /* longest return(VALUE), in bytes */
#define KC_FAILPOINT_SLEEP_MAX 3600000                /* longest sleep(MS): one hour */

/*
 * Number of armed failpoints. Private to the fast path below: read it only
 * through kc_failpoint(); it is changed under the module's lock.
 */
extern atomic_uint kc_failpoints_armed_;

/*
 * kc_failpoint_eval -- the slow path of kc_failpoint(); call kc_failpoint() instead.
 */
int kc_failpoint_eval(const char *name, char *value_out, size_t value_len);

/*
 * kc_failpoint -- evaluate the failpoint called name at this call site.
 *
 * Returns 1 when a return action fired: the value of return(VALUE) is copied
 * into value_out (truncated to value_len - 1 bytes, always NUL-terminated;
 * "" for a bare return); value_out may be NULL when value_len is 0. Returns
 * 0 otherwise: the failpoint is not armed, its N%/N* prefix did not let it
 * fire, or it slept or paused (and then did not return). panic and exit do
 * not return. value_out is set to "" whenever 0 is returned and the slow
 * path runs. name is compared by content and need not outlive the call.
 * Thread-safe; may block (sleep, pause).
 */
static inline int kc_failpoint(const char *name, char *value_out, size_t value_len)
{
    if (__builtin_expect(atomic_load_explicit(&kc_failpoints_armed_, memory_order_relaxed) == 0, 1))
        return 0;
    return kc_failpoint_eval(name, value_out, value_len);
}

/* Evaluate name; an expression that is 1 when a return action fired, else 0. */
#define KC_FAILPOINT(name) kc_failpoint((name), NULL, 0)

/* Evaluate name; when a return action fires, return retval from the enclosing function. */
#define KC_FAILPOINT_RETURN(name, retval)       \
    do {                                        \
        if (kc_failpoint((name), NULL, 0) != 0) \
            return (retval);                    \
    } while (0)

/*
 * Evaluate name; when a return action fires, fill err (a struct kc_error *,
 * may be NULL) with KC_EFAILPOINT and return KC_EFAILPOINT from the
 * enclosing function. The message names the failpoint and its value:
 * 'failpoint "x" injected an error: EIO'. name is evaluated twice.
 */
#define KC_FAILPOINT_ERROR(name, err)                                                           \
    do {                                                                                        \
        char kc_fp_value_[KC_FAILPOINT_VALUE_MAX + 1];                                          \
        if (kc_failpoint((name), kc_fp_value_, sizeof(kc_fp_value_)) != 0)                      \
            return kc_error_set((err), KC_EFAILPOINT, "failpoint \"%s\" injected an error%s%s", \
                                (name), kc_fp_value_[0] != '\0' ? ": " : "", kc_fp_value_);     \
    } while (0)

/*
 * kc_failpoint_set -- arm name with spec, or disarm it when spec is "off".
 *
 * name must match [a-z0-9_.-]+ and be at most KC_FAILPOINT_NAME_MAX bytes;
 * spec is one action with optional prefixes (see the top of this file).
 * Leading and trailing blanks around both are ignored. Arming a failpoint
 * that is already armed replaces its action, resets its hit count and wakes
 * the threads paused or sleeping on it; disarming one that is not armed is
 * not an error. Returns 0, or KC_EINVAL with err filled and nothing changed.
 * Logs the change at info. Thread-safe.
 */
int kc_failpoint_set(const char *name, const char *spec, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_failpoint_configure -- apply "name=spec;name2=spec2", as kc_failpoint_set
 * would for each entry in order (a later entry for the same name wins).
 *
 * Failpoints not named are left as they are. A trailing ';' and blanks around
 * entries are allowed; an empty or all-blank string configures nothing. All
 * or nothing: when any entry is malformed, returns KC_EINVAL with err naming
 * the entry and the bad part, and changes nothing. Thread-safe.
 */
int kc_failpoint_configure(const char *specs, struct kc_error *err) KC_MUSTCHECK;

/*
 * kc_failpoints_init_from_env -- configure from $KELP_FAILPOINTS (nothing when
 * unset or empty) and seed the N% generator from $KELP_FAILPOINTS_SEED (a
 * decimal integer; a seed from the clock and pid when unset). Call once at
 * start. Returns 0, or KC_EINVAL with err filled and nothing changed.
 */
int kc_failpoints_init_from_env(struct kc_error *err) KC_MUSTCHECK;

/* Disarm every failpoint (waking paused and sleeping threads). Thread-safe. */
void kc_failpoints_reset(void);

/*
 * kc_failpoints_render -- append one "name=spec\n" line per armed failpoint,
 * sorted by name, to out. spec is canonical (e.g. "50%2*return(EIO)") and
 * shows the remaining N* count, so a failpoint that used up its count shows
 * "0*...". The output can be fed back to kc_failpoint_configure() once the
 * newlines are replaced by ';'. Thread-safe.
 */
void kc_failpoints_render(struct kc_sbuf *out);

/*
 * kc_failpoint_get -- copy the canonical spec of name into spec_out (always
 * NUL-terminated when len > 0). Returns 1 when name is armed, 0 (spec_out
 * "off") when it is not. Thread-safe.
 */
int kc_failpoint_get(const char *name, char *spec_out, size_t len);

/*
 * kc_failpoint_hits -- how many times name has fired since it was last set
 * (0 when not armed). A fire is an evaluation that passed the N% and N*
 * prefixes. Thread-safe; for tests and the HTTP endpoint.
 */
uint64_t kc_failpoint_hits(const char *name);

/* kc_failpoint_waiters -- how many threads are paused or sleeping in name now. Thread-safe. */
unsigned kc_failpoint_waiters(const char *name);

/* kc_failpoint_seed -- reseed the generator behind N% (deterministic sequence). Thread-safe. */
void kc_failpoint_seed(uint64_t seed);

/*
 * kc_failpoint_errno -- interpret a return(VALUE) as an errno: a symbolic name
 * ("EIO", "ENOSPC", "ECONNRESET", ...) or a positive decimal number. Returns
 * dflt when value is NULL, empty or not recognised.
 */
int kc_failpoint_errno(const char *value, int dflt);

#endif
