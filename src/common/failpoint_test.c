/* SPDX-License-Identifier: Apache-2.0 */
/* failpoint_test.c -- unit tests for failpoint.c. */
#include "common/failpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "unit.h"

#define FP_WAIT_MS 10000 /* upper bound on every wait in these tests */

static void fp_quiet(void)
{
    kc_log_set_level(KC_LOG_WARN);
}

static double fp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void fp_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Wait (bounded) until exactly n threads wait in name. */
static void fp_await_waiters(const char *name, unsigned n)
{
    double deadline = fp_now_ms() + FP_WAIT_MS;
    while (kc_failpoint_waiters(name) != n) {
        if (fp_now_ms() > deadline)
            kt_fail(__FILE__, __LINE__, "timed out waiting for %u waiters in \"%s\" (have %u)", n,
                    name, kc_failpoint_waiters(name));
        fp_sleep_ms(1);
    }
}

/* Wait (bounded) until name has fired n times since it was set. */
static void fp_await_hits(const char *name, uint64_t n)
{
    double deadline = fp_now_ms() + FP_WAIT_MS;
    while (kc_failpoint_hits(name) != n) {
        if (fp_now_ms() > deadline)
            kt_fail(__FILE__, __LINE__, "timed out waiting for %" PRIu64 " hits of \"%s\"", n,
                    name);
        fp_sleep_ms(1);
    }
}

/* Join t, failing the test (instead of hanging) if it does not end in time. */
static void fp_join(pthread_t t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += FP_WAIT_MS / 1000;
    if (pthread_timedjoin_np(t, NULL, &ts) != 0)
        kt_fail(__FILE__, __LINE__, "thread did not finish within %d ms", FP_WAIT_MS);
}

/* Run fn in a forked grandchild (which ends with _exit(0) if fn returns); return its status. */
static int fp_run_child(void (*fn)(void))
{
    pid_t pid;
    int status;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    KT_ASSERT(pid >= 0);
    if (pid == 0) {
        alarm(60);
        fn();
        _exit(0);
    }
    while (waitpid(pid, &status, 0) < 0)
        KT_ASSERT(errno == EINTR);
    return status;
}

static void fp_must_set(const char *name, const char *spec)
{
    struct kc_error err;
    int rc = kc_failpoint_set(name, spec, &err);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "set %s=%s: %s", name, spec, err.message);
}

static void fp_must_configure(const char *specs)
{
    struct kc_error err;
    int rc = kc_failpoint_configure(specs, &err);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "configure \"%s\": %s", specs, err.message);
}

/* Render into a static buffer. */
static const char *fp_render(void)
{
    static char out[4096];
    struct kc_sbuf s = KC_SBUF_INIT;
    kc_failpoints_render(&s);
    snprintf(out, sizeof(out), "%s", kc_sbuf_str(&s));
    kc_sbuf_fini(&s);
    return out;
}

static const char *fp_get(const char *name)
{
    static char spec[256];
    kc_failpoint_get(name, spec, sizeof(spec));
    return spec;
}

KT_TEST(failpoint_unarmed_is_inert)
{
    char value[8] = "junk";

    KT_ASSERT_EQ(atomic_load(&kc_failpoints_armed_), 0);
    KT_ASSERT_EQ(KC_FAILPOINT("pageserver.ingest.before-flush"), 0);
    KT_ASSERT_EQ(kc_failpoint("x", value, sizeof(value)), 0);
    KT_ASSERT_STR_EQ(value, "junk"); /* the fast path does not touch value_out */
    KT_ASSERT_EQ(kc_failpoint_get("x", value, sizeof(value)), 0);
    KT_ASSERT_STR_EQ(value, "off");
    KT_ASSERT_EQ(kc_failpoint_hits("x"), 0);
    KT_ASSERT_STR_EQ(fp_render(), "");
}

static int fp_uses_return(void)
{
    KC_FAILPOINT_RETURN("t.ret.macro", -42);
    return 7;
}

static int fp_uses_error(struct kc_error *err)
{
    KC_FAILPOINT_ERROR("t.err.macro", err);
    return 0;
}

KT_TEST(failpoint_return_value)
{
    char value[KC_FAILPOINT_VALUE_MAX + 1];
    char small[3];
    struct kc_error err;

    fp_quiet();
    fp_must_set("t.ret", "return(EIO)");
    KT_ASSERT_EQ(atomic_load(&kc_failpoints_armed_), 1);
    KT_ASSERT_EQ(kc_failpoint("t.ret", value, sizeof(value)), 1);
    KT_ASSERT_STR_EQ(value, "EIO");
    KT_ASSERT_EQ(kc_failpoint_errno(value, 0), EIO);
    KT_ASSERT_EQ(kc_failpoint("t.ret", small, sizeof(small)), 1);
    KT_ASSERT_STR_EQ(small, "EI"); /* truncated, terminated */
    KT_ASSERT_EQ(KC_FAILPOINT("t.ret"), 1);
    KT_ASSERT_EQ(kc_failpoint("t.other", value, sizeof(value)), 0);
    KT_ASSERT_STR_EQ(value, "");
    KT_ASSERT_EQ(kc_failpoint_hits("t.ret"), 3);

    fp_must_set("t.ret", "return");
    strcpy(value, "junk");
    KT_ASSERT_EQ(kc_failpoint("t.ret", value, sizeof(value)), 1);
    KT_ASSERT_STR_EQ(value, "");
    KT_ASSERT_EQ(kc_failpoint_hits("t.ret"), 1); /* reset by set */

    KT_ASSERT_EQ(fp_uses_return(), 7);
    fp_must_set("t.ret.macro", "return");
    KT_ASSERT_EQ(fp_uses_return(), -42);

    KT_ASSERT_EQ(fp_uses_error(&err), 0);
    fp_must_set("t.err.macro", "return(ENOSPC)");
    KT_ASSERT_EQ(fp_uses_error(&err), KC_EFAILPOINT);
    KT_ASSERT_EQ(err.code, KC_EFAILPOINT);
    KT_ASSERT_STR_EQ(err.message, "failpoint \"t.err.macro\" injected an error: ENOSPC");
    fp_must_set("t.err.macro", "return");
    KT_ASSERT_EQ(fp_uses_error(&err), KC_EFAILPOINT);
    KT_ASSERT_STR_EQ(err.message, "failpoint \"t.err.macro\" injected an error");
    KT_ASSERT_EQ(fp_uses_error(NULL), KC_EFAILPOINT);
    kc_failpoints_reset();
    KT_ASSERT_EQ(atomic_load(&kc_failpoints_armed_), 0);
    KT_ASSERT_EQ(KC_FAILPOINT("t.ret"), 0);
}

KT_TEST(failpoint_errno_values)
{
    KT_ASSERT_EQ(kc_failpoint_errno("ENOSPC", -1), ENOSPC);
    KT_ASSERT_EQ(kc_failpoint_errno("ECONNRESET", -1), ECONNRESET);
    KT_ASSERT_EQ(kc_failpoint_errno("5", -1), 5);
    KT_ASSERT_EQ(kc_failpoint_errno("0", -1), -1);
    KT_ASSERT_EQ(kc_failpoint_errno("EBOGUS", -1), -1);
    KT_ASSERT_EQ(kc_failpoint_errno("", -1), -1);
    KT_ASSERT_EQ(kc_failpoint_errno(NULL, EIO), EIO);
    KT_ASSERT_EQ(kc_failpoint_errno("99999999999999999999", -1), -1);
}

KT_TEST(failpoint_count_limits_fires)
{
    char value[16];
    int fired = 0;

    fp_quiet();
    fp_must_set("t.count", "3*return(x)");
    for (int i = 0; i < 10; i++)
        fired += kc_failpoint("t.count", value, sizeof(value));
    KT_ASSERT_EQ(fired, 3);
    KT_ASSERT_EQ(kc_failpoint_hits("t.count"), 3);
    KT_ASSERT_STR_EQ(fp_get("t.count"), "0*return(x)"); /* still listed, but spent */
    KT_ASSERT_STR_EQ(fp_render(), "t.count=0*return(x)\n");

    fp_must_set("t.count", "0*return"); /* armed but never fires */
    KT_ASSERT_EQ(KC_FAILPOINT("t.count"), 0);
    KT_ASSERT_EQ(kc_failpoint_hits("t.count"), 0);

    fp_must_set("t.count", "2*sleep(1)"); /* sleeps twice, returns 0 every time */
    for (int i = 0; i < 5; i++)
        KT_ASSERT_EQ(KC_FAILPOINT("t.count"), 0);
    KT_ASSERT_EQ(kc_failpoint_hits("t.count"), 2);
    kc_failpoints_reset();
}

static int fp_count_fires(const char *name, int calls)
{
    int fired = 0;
    for (int i = 0; i < calls; i++)
        fired += KC_FAILPOINT(name);
    return fired;
}

KT_TEST(failpoint_percentage_statistics)
{
    int a, b, n;

    fp_quiet();
    kc_failpoint_seed(12345);
    fp_must_set("t.pct", "30%return");
    n = fp_count_fires("t.pct", 10000);
    /* Binomial(10000, 0.3): sigma ~46; +-300 is more than 6 sigma. */
    KT_ASSERT(n > 2700 && n < 3300);
    KT_ASSERT_EQ(kc_failpoint_hits("t.pct"), n);

    /* The same seed gives the same sequence. */
    kc_failpoint_seed(777);
    a = fp_count_fires("t.pct", 1000);
    kc_failpoint_seed(777);
    b = fp_count_fires("t.pct", 1000);
    KT_ASSERT_EQ(a, b);

    fp_must_set("t.pct", "0.5%return");
    n = fp_count_fires("t.pct", 100000);
    KT_ASSERT(n > 350 && n < 650); /* mean 500, sigma ~22 */

    fp_must_set("t.pct", "0%return");
    KT_ASSERT_EQ(fp_count_fires("t.pct", 1000), 0);
    fp_must_set("t.pct", "100%return");
    KT_ASSERT_EQ(fp_count_fires("t.pct", 1000), 1000);
    kc_failpoints_reset();
}

KT_TEST(failpoint_percentage_and_count_combined)
{
    fp_quiet();
    kc_failpoint_seed(1);
    fp_must_set("t.both", "50%3*return(EIO)");
    KT_ASSERT_STR_EQ(fp_get("t.both"), "50%3*return(EIO)");
    KT_ASSERT_EQ(fp_count_fires("t.both", 1000), 3);
    fp_must_set("t.both", "3*50%return(EIO)"); /* either order */
    KT_ASSERT_STR_EQ(fp_get("t.both"), "50%3*return(EIO)");
    KT_ASSERT_EQ(fp_count_fires("t.both", 1000), 3);
    /* A roll that does not fire does not use up the count. */
    fp_must_set("t.both", "1%2*return");
    KT_ASSERT_EQ(fp_count_fires("t.both", 100000), 2);
    kc_failpoints_reset();
}

KT_TEST(failpoint_canonical_specs)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"return", "return"},
        {"  return(EIO)  ", "return(EIO)"},
        {"return(-5)", "return(-5)"},
        {"return(a/b:c+d.e_f)", "return(a/b:c+d.e_f)"},
        {"sleep(0)", "sleep(0)"},
        {"sleep(3600000)", "sleep(3600000)"},
        {"panic", "panic"},
        {"exit", "exit"},
        {"exit(0)", "exit(0)"},
        {"exit(255)", "exit(255)"},
        {"pause", "pause"},
        {"50.50%return", "50.5%return"},
        {"0.0001%return", "0.0001%return"},
        {"007%return", "7%return"},
        {"100%return", "100%return"},
        {"100.0000%return", "100%return"},
        {"0*return", "0*return"},
        {"4294967295*pause", "4294967295*pause"},
        {"2*33.3%sleep(5)", "33.3%2*sleep(5)"},
    };

    fp_quiet();
    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        fp_must_set("t.canon", cases[i].in);
        KT_ASSERT_STR_EQ(fp_get("t.canon"), cases[i].out);
    }
    kc_failpoints_reset();
}

KT_TEST(failpoint_sleep_waits)
{
    double t0;

    fp_quiet();
    fp_must_set("t.sleep", "sleep(60)");
    t0 = fp_now_ms();
    KT_ASSERT_EQ(KC_FAILPOINT("t.sleep"), 0);
    KT_ASSERT(fp_now_ms() - t0 >= 59.0);
    KT_ASSERT_EQ(kc_failpoint_waiters("t.sleep"), 0);
    kc_failpoints_reset();
}

/* A thread that evaluates one failpoint and records what happened. */
struct fp_slot {
    const char *name;
    char result[KC_FAILPOINT_VALUE_MAX + 8]; /* "running", "0" or "R:<value>" */
};

static void *fp_thread_eval(void *arg)
{
    struct fp_slot *slot = arg;
    char v[KC_FAILPOINT_VALUE_MAX + 1];

    if (kc_failpoint(slot->name, v, sizeof(v)) == 1)
        snprintf(slot->result, sizeof(slot->result), "R:%s", v);
    else
        snprintf(slot->result, sizeof(slot->result), "0");
    return NULL;
}

static void fp_slot_init(struct fp_slot *s, const char *name)
{
    s->name = name;
    strcpy(s->result, "running");
}

KT_TEST(failpoint_sleep_ends_early_on_change)
{
    struct fp_slot slot;
    pthread_t t;
    double t0 = fp_now_ms();

    fp_quiet();
    fp_must_set("t.longsleep", "sleep(3600000)");
    fp_slot_init(&slot, "t.longsleep");
    KT_ASSERT_EQ(pthread_create(&t, NULL, fp_thread_eval, &slot), 0);
    fp_await_waiters("t.longsleep", 1);
    fp_must_set("t.longsleep", "off");
    fp_join(t);
    KT_ASSERT_STR_EQ(slot.result, "0");
    KT_ASSERT(fp_now_ms() - t0 < FP_WAIT_MS);
}

KT_TEST(failpoint_pause_released_by_change)
{
    struct fp_slot slot;
    pthread_t t;

    fp_quiet();
    fp_must_set("t.pause", "pause");
    fp_slot_init(&slot, "t.pause");
    KT_ASSERT_EQ(pthread_create(&t, NULL, fp_thread_eval, &slot), 0);
    fp_await_waiters("t.pause", 1);
    fp_sleep_ms(20);
    KT_ASSERT_STR_EQ(slot.result, "running"); /* still blocked */
    KT_ASSERT_EQ(kc_failpoint_hits("t.pause"), 1);
    /* The paused thread evaluates the new action: it now returns. */
    fp_must_set("t.pause", "return(woke)");
    fp_join(t);
    KT_ASSERT_STR_EQ(slot.result, "R:woke");
    KT_ASSERT_EQ(kc_failpoint_waiters("t.pause"), 0);
    kc_failpoints_reset();
}

KT_TEST(failpoint_pause_released_by_removal)
{
    struct fp_slot slots[4];
    pthread_t t[4];

    fp_quiet();
    fp_must_configure("t.pause.a=pause;t.pause.b=pause");
    for (int i = 0; i < 4; i++) {
        fp_slot_init(&slots[i], i < 2 ? "t.pause.a" : "t.pause.b");
        KT_ASSERT_EQ(pthread_create(&t[i], NULL, fp_thread_eval, &slots[i]), 0);
    }
    fp_await_waiters("t.pause.a", 2);
    fp_await_waiters("t.pause.b", 2);
    /* Re-arming with the same action releases them into a new pause. */
    fp_must_set("t.pause.a", "pause");
    fp_await_hits("t.pause.a", 2); /* the hit count restarted at 0 */
    KT_ASSERT_EQ(kc_failpoint_waiters("t.pause.a"), 2);
    fp_must_set("t.pause.a", "off");
    fp_join(t[0]);
    fp_join(t[1]);
    KT_ASSERT_STR_EQ(slots[0].result, "0");
    KT_ASSERT_STR_EQ(slots[1].result, "0");
    KT_ASSERT_STR_EQ(slots[2].result, "running");
    kc_failpoints_reset(); /* releases the rest */
    fp_join(t[2]);
    fp_join(t[3]);
    KT_ASSERT_STR_EQ(slots[3].result, "0");
}

static void fp_child_panic(void)
{
    char path[4200];
    int fd;

    snprintf(path, sizeof(path), "%s/panic.log", kt_tmpdir());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        _exit(90);
    kc_log_set_fd(fd);
    if (kc_failpoint_set("t.child.panic", "panic", NULL) != 0)
        _exit(91);
    KC_FAILPOINT("t.child.panic");
    _exit(92); /* not reached */
}

KT_TEST(failpoint_panic_aborts)
{
    char path[4200], text[4096];
    int status, fd;
    ssize_t n;

    (void)kt_tmpdir(); /* created here, so the grandchild writes where we read */
    status = fp_run_child(fp_child_panic);
    KT_ASSERT(WIFSIGNALED(status));
    KT_ASSERT_EQ(WTERMSIG(status), SIGABRT);
    snprintf(path, sizeof(path), "%s/panic.log", kt_tmpdir());
    fd = open(path, O_RDONLY);
    KT_ASSERT(fd >= 0);
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    KT_ASSERT(n > 0);
    text[n] = '\0';
    KT_ASSERT_CONTAINS(text, "FATAL");
    KT_ASSERT_CONTAINS(text, "failpoint \"t.child.panic\" fired: panic");
}

static void fp_child_exit42(void)
{
    kc_log_set_level(KC_LOG_ERROR);
    if (kc_failpoint_set("t.child.exit", "exit(42)", NULL) != 0)
        _exit(91);
    KC_FAILPOINT("t.child.exit");
    _exit(92);
}

static void fp_child_exit_bare(void)
{
    kc_log_set_level(KC_LOG_ERROR);
    if (kc_failpoint_set("t.child.exit", "2*exit", NULL) != 0)
        _exit(91);
    KC_FAILPOINT("t.child.exit");
    _exit(92);
}

/* exit must skip atexit handlers and stdio flushing: a crash, not a shutdown. */
static void fp_child_atexit_marker(void)
{
    _exit(93);
}

static void fp_child_exit_no_cleanup(void)
{
    kc_log_set_level(KC_LOG_ERROR);
    atexit(fp_child_atexit_marker);
    if (kc_failpoint_set("t.child.exit", "exit(0)", NULL) != 0)
        _exit(91);
    KC_FAILPOINT("t.child.exit");
    exit(94);
}

static void fp_child_exit_from_env(void)
{
    kc_log_set_level(KC_LOG_ERROR);
    setenv(KC_FAILPOINTS_ENV, "t.child.env=exit(7)", 1);
    if (kc_failpoints_init_from_env(NULL) != 0)
        _exit(91);
    KC_FAILPOINT("t.child.env");
    _exit(92);
}

KT_TEST(failpoint_exit_status)
{
    int status = fp_run_child(fp_child_exit42);
    KT_ASSERT(WIFEXITED(status));
    KT_ASSERT_EQ(WEXITSTATUS(status), 42);

    status = fp_run_child(fp_child_exit_bare);
    KT_ASSERT(WIFEXITED(status));
    KT_ASSERT_EQ(WEXITSTATUS(status), 1);

    status = fp_run_child(fp_child_exit_no_cleanup);
    KT_ASSERT(WIFEXITED(status));
    KT_ASSERT_EQ(WEXITSTATUS(status), 0); /* neither 93 (atexit) nor 94 */

    status = fp_run_child(fp_child_exit_from_env);
    KT_ASSERT(WIFEXITED(status));
    KT_ASSERT_EQ(WEXITSTATUS(status), 7);
}

KT_TEST(failpoint_malformed_specs_rejected)
{
    static const struct {
        const char *in;   /* passed to kc_failpoint_configure */
        const char *want; /* expected in the primary message */
    } cases[] = {
        {"a=retrun", "failpoint \"a\": unknown action \"retrun\""},
        {"a=50%retrun(EIO)", "unknown action \"retrun\""},
        {"a=Return", "expected an action at \"Return\""},
        {"a=", "failpoint \"a\": empty specification"},
        {"a=   ", "empty specification"},
        {"a=sleep", "action \"sleep\" requires a duration"},
        {"a=sleep(", "missing \")\" after \"sleep(\""},
        {"a=sleep(100", "missing \")\" after \"sleep(100\""},
        {"a=sleep(100))", "unexpected \")\" after \"sleep(100)\""},
        {"a=return(EIO))", "unexpected \")\" after \"return(EIO)\""},
        {"a=return(EIO)x", "unexpected \"x\" after \"return(EIO)\""},
        {"a=return x", "unexpected \" x\" after \"return\""},
        {"a=return()", "empty value in \"return()\""},
        {"a=return((x))", "invalid character \"(\" in return value"},
        {"a=return(a b)", "invalid character \" \" in return value"},
        {"a=return(xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx)",
         "is too long (at most 63 bytes)"},
        {"a=sleep(abc)", "invalid duration \"abc\" in sleep(...)"},
        {"a=sleep(-1)", "invalid duration \"-1\""},
        {"a=sleep(1.5)", "invalid duration \"1.5\""},
        {"a=sleep()", "invalid duration \"\""},
        {"a=sleep(3600001)", "sleep duration \"3600001\" is out of range"},
        {"a=sleep(99999999999999999999999)", "is out of range"},
        {"a=exit(256)", "exit code \"256\" is out of range (at most 255)"},
        {"a=exit(x)", "invalid exit code \"x\""},
        {"a=panic(1)", "action \"panic\" takes no argument"},
        {"a=pause()", "action \"pause\" takes no argument"},
        {"a=off(1)", "action \"off\" takes no argument"},
        {"a=150%return", "probability \"150%\" exceeds 100%"},
        {"a=100.0001%return", "probability \"100.0001%\" exceeds 100%"},
        {"a=99999999999999999999%return", "exceeds 100%"},
        {"a=1.2.3%return", "invalid probability \"1.2.3%\""},
        {"a=.5%return", "invalid probability \".5%\""},
        {"a=5.%return", "invalid probability \"5.%\""},
        {"a=0.12345%return", "has more than 4 decimal places"},
        {"a=-5%return", "negative number in \"-5%return\""},
        {"a=-1*return", "negative number"},
        {"a=1.5*return", "count \"1.5*\" is not a whole number"},
        {"a=4294967296*return", "count \"4294967296*\" is out of range"},
        {"a=3*4*return", "duplicate count prefix \"4*\""},
        {"a=3%4%return", "duplicate probability prefix \"4%\""},
        {"a=5return", "expected \"%\" or \"*\" after \"5\""},
        {"a=5", "expected \"%\" or \"*\" after \"5\""},
        {"a=50%", "missing action after \"50%\""},
        {"a=3*off", "\"off\" cannot have an N% or N* prefix"},
        {"a==return", "duplicate \"=\" in failpoint entry \"a==return\""},
        {"a=return=5", "duplicate \"=\""},
        {"a", "missing \"=\" in failpoint entry \"a\""},
        {"=return", "empty failpoint name in entry \"=return\""},
        {"A=return", "invalid failpoint name \"A\""},
        {"a b=return", "invalid failpoint name \"a b\""},
        {"a/b=return", "invalid failpoint name \"a/b\""},
        {"a=return;;b=return", "empty entry 2 in failpoint list"},
        {";a=return", "empty entry 1 in failpoint list"},
        {";", "empty entry 1 in failpoint list"},
        {"a=return; ;", "empty entry 2 in failpoint list"},
        {"a=return;b", "missing \"=\" in failpoint entry \"b\""},
    };
    struct kc_error err;

    fp_quiet();
    for (size_t i = 0; i < KC_ARRAY_LEN(cases); i++) {
        kc_error_clear(&err);
        if (kc_failpoint_configure(cases[i].in, &err) != KC_EINVAL)
            kt_fail(__FILE__, __LINE__, "\"%s\" was accepted", cases[i].in);
        KT_ASSERT_EQ(err.code, KC_EINVAL);
        if (strstr(err.message, cases[i].want) == NULL)
            kt_fail(__FILE__, __LINE__, "\"%s\": message \"%s\" lacks \"%s\"", cases[i].in,
                    err.message, cases[i].want);
        KT_ASSERT(err.message[strlen(err.message) - 1] != '.');
        KT_ASSERT_EQ(atomic_load(&kc_failpoints_armed_), 0);
    }
    /* Specification errors carry the spec as detail and the grammar as hint. */
    KT_ASSERT_EQ(kc_failpoint_set("x.y", "sleep(abc)", &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.detail, "The specification was \"sleep(abc)\".");
    KT_ASSERT_CONTAINS(err.hint, "50%3*return(EIO)");
    /* set() rejects what configure() would split. */
    KT_ASSERT_EQ(kc_failpoint_set("x.y", "return;b=off", &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "unexpected \";b=off\"");
    KT_ASSERT_EQ(kc_failpoint_set("x.y", "off;", &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_failpoint_set("", "return", &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_failpoint_set(NULL, "return", &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_failpoint_set("x", NULL, NULL), KC_EINVAL);
    KT_ASSERT_EQ(kc_failpoint_configure(NULL, &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(fp_render(), "");
}

KT_TEST(failpoint_name_rules)
{
    char name[KC_FAILPOINT_NAME_MAX + 2];
    struct kc_error err;

    fp_quiet();
    fp_must_set("  pageserver.ingest.before-flush_2  ", "return");
    KT_ASSERT_EQ(KC_FAILPOINT("pageserver.ingest.before-flush_2"), 1);
    memset(name, 'n', sizeof(name) - 2);
    name[sizeof(name) - 2] = '\0'; /* exactly the maximum */
    fp_must_set(name, "return");
    KT_ASSERT_EQ(KC_FAILPOINT(name), 1);
    strcat(name, "n");
    KT_ASSERT_EQ(kc_failpoint_set(name, "return", &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "is too long");
    KT_ASSERT_CONTAINS(err.detail, "at most 127 bytes");
    KT_ASSERT_EQ(kc_failpoint_set("caf\xc3\xa9", "return", &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.detail, "lower-case letters, digits");
    kc_failpoints_reset();
}

KT_TEST(failpoint_configure_is_all_or_nothing)
{
    struct kc_error err;

    fp_quiet();
    fp_must_set("keep", "return(1)");
    KT_ASSERT_EQ(kc_failpoint_configure("a=return;b=bogus;c=pause", &err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "failpoint \"b\": unknown action \"bogus\"");
    KT_ASSERT_EQ(kc_failpoint_configure("keep=off;a=return;b=sleep(", &err), KC_EINVAL);
    KT_ASSERT_EQ(kc_failpoint_configure("keep=off;a=return;;", &err), KC_EINVAL);
    KT_ASSERT_STR_EQ(fp_render(), "keep=return(1)\n");
    KT_ASSERT_EQ(atomic_load(&kc_failpoints_armed_), 1);
    kc_failpoints_reset();
}

KT_TEST(failpoint_runtime_reconfiguration)
{
    struct kc_sbuf s = KC_SBUF_INIT;
    char *list;

    fp_quiet();
    fp_must_configure(" z.last = return(9) ; a.first=2*sleep(1);m.mid=30%pause;");
    KT_ASSERT_EQ(atomic_load(&kc_failpoints_armed_), 3);
    KT_ASSERT_STR_EQ(fp_render(), "a.first=2*sleep(1)\nm.mid=30%pause\nz.last=return(9)\n");

    /* A later entry for the same name wins; unnamed failpoints are untouched. */
    fp_must_configure("a.first=return;a.first=exit(3);z.last=off");
    KT_ASSERT_STR_EQ(fp_render(), "a.first=exit(3)\nm.mid=30%pause\n");
    KT_ASSERT_EQ(KC_FAILPOINT("z.last"), 0);

    /* Disarming what is not armed is fine; empty lists change nothing. */
    fp_must_set("never.armed", "off");
    fp_must_configure("");
    fp_must_configure("  ");
    fp_must_configure("never.armed=off;");
    KT_ASSERT_EQ(atomic_load(&kc_failpoints_armed_), 2);

    /* The rendering feeds back into configure once newlines become ';'. */
    kc_failpoints_render(&s);
    list = kc_sbuf_steal(&s);
    for (char *p = list; *p != '\0'; p++)
        if (*p == '\n')
            *p = ';';
    kc_failpoints_reset();
    KT_ASSERT_STR_EQ(fp_render(), "");
    fp_must_configure(list);
    KT_ASSERT_STR_EQ(fp_render(), "a.first=exit(3)\nm.mid=30%pause\n");
    free(list);
    kc_failpoints_reset();
    KT_ASSERT_EQ(atomic_load(&kc_failpoints_armed_), 0);
}

KT_TEST(failpoint_env_configuration)
{
    struct kc_error err;
    int a, b;

    fp_quiet();
    unsetenv(KC_FAILPOINTS_ENV);
    unsetenv(KC_FAILPOINTS_SEED_ENV);
    KT_ASSERT_EQ(kc_failpoints_init_from_env(&err), 0);
    KT_ASSERT_STR_EQ(fp_render(), "");

    setenv(KC_FAILPOINTS_ENV, "env.a=return(1); env.b=2*return ;", 1);
    setenv(KC_FAILPOINTS_SEED_ENV, "99", 1);
    KT_ASSERT_EQ(kc_failpoints_init_from_env(&err), 0);
    KT_ASSERT_STR_EQ(fp_render(), "env.a=return(1)\nenv.b=2*return\n");

    /* The seed is applied: the same N% sequence as an explicit seed. */
    fp_must_set("env.p", "50%return");
    a = fp_count_fires("env.p", 200);
    kc_failpoint_seed(99);
    b = fp_count_fires("env.p", 200);
    KT_ASSERT_EQ(a, b);
    kc_failpoints_reset();

    setenv(KC_FAILPOINTS_ENV, "env.a=return;env.b=explode", 1);
    KT_ASSERT_EQ(kc_failpoints_init_from_env(&err), KC_EINVAL);
    KT_ASSERT_CONTAINS(err.message, "KELP_FAILPOINTS: invalid specification for failpoint "
                                    "\"env.b\": unknown action \"explode\"");
    KT_ASSERT_STR_EQ(fp_render(), "");

    setenv(KC_FAILPOINTS_ENV, "env.a=return", 1);
    setenv(KC_FAILPOINTS_SEED_ENV, "12x", 1);
    KT_ASSERT_EQ(kc_failpoints_init_from_env(&err), KC_EINVAL);
    KT_ASSERT_STR_EQ(err.message, "invalid KELP_FAILPOINTS_SEED \"12x\"");
    KT_ASSERT_STR_EQ(fp_render(), ""); /* nothing applied */
    unsetenv(KC_FAILPOINTS_ENV);
    unsetenv(KC_FAILPOINTS_SEED_ENV);
}

struct fp_race {
    const char *name;
    int calls;
    int fired;
};

static void *fp_race_thread(void *arg)
{
    struct fp_race *r = arg;
    for (int i = 0; i < r->calls; i++)
        r->fired += KC_FAILPOINT(r->name);
    return NULL;
}

static void *fp_reconfigure_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        if (kc_failpoint_set("t.race.other", i % 2 ? "return" : "off", NULL) != 0)
            return (void *)1;
    }
    return NULL;
}

KT_TEST(failpoint_concurrent_count_is_exact)
{
    struct fp_race r[8];
    pthread_t t[8], cfg;
    int total = 0;

    fp_quiet();
    fp_must_set("t.race", "1000*return");
    KT_ASSERT_EQ(pthread_create(&cfg, NULL, fp_reconfigure_thread, NULL), 0);
    for (int i = 0; i < 8; i++) {
        r[i] = (struct fp_race){"t.race", 2000, 0};
        KT_ASSERT_EQ(pthread_create(&t[i], NULL, fp_race_thread, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        fp_join(t[i]);
        total += r[i].fired;
    }
    fp_join(cfg);
    KT_ASSERT_EQ(total, 1000);
    KT_ASSERT_EQ(kc_failpoint_hits("t.race"), 1000);
    kc_failpoints_reset();
}

/* Run fn with the log (at level) sent to a file; return what was written. */
static const char *fp_capture_log(enum kc_log_level level, void (*fn)(void))
{
    static char out[8192];
    char path[4200];
    int fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/log", kt_tmpdir());
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    KT_ASSERT(fd >= 0);
    kc_log_set_fd(fd);
    kc_log_set_level(level);
    fn();
    kc_log_set_fd(2);
    n = pread(fd, out, sizeof(out) - 1, 0);
    KT_ASSERT(n >= 0);
    out[n] = '\0';
    close(fd);
    return out;
}

static void fp_fire_three_times(void)
{
    fp_must_set("t.log", "return(EIO)");
    for (int i = 0; i < 3; i++)
        KC_FAILPOINT("t.log");
    fp_must_set("t.log", "off");
}

static int fp_count_substr(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

KT_TEST(failpoint_logging_is_modest)
{
    const char *out = fp_capture_log(KC_LOG_INFO, fp_fire_three_times);

    KT_ASSERT_CONTAINS(out, "INFO  kelp[");
    KT_ASSERT_CONTAINS(out, "failpoint \"t.log\" armed: return(EIO)");
    KT_ASSERT_CONTAINS(out, "failpoint \"t.log\" disarmed");
    KT_ASSERT_EQ(fp_count_substr(out, "failpoint \"t.log\" fired: return(EIO)"), 1);
    out = fp_capture_log(KC_LOG_DEBUG, fp_fire_three_times);
    KT_ASSERT_EQ(fp_count_substr(out, "failpoint \"t.log\" fired: return(EIO)"), 3);
}
