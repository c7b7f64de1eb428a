/*
 * test_flow_nesting — hostile sources: every recursive construct nested 50 000 deep and
 * 1 MB flat inputs give an ordinary `file:line:col: message` error, through the compiler
 * as the daemon deploys (flow_compile_buffer) and as `definition check` runs it
 * (flow_check_main, exit 65), in bounded time; sources at the limits compile on a small
 * stack, and a long elif chain compiles and runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "flow.h"

#define HEAD                                                                    \
    "workflow t version 1\nsignal x()\nvar a: int\nvar b: bool\nvar f: float\n" \
    "queue q: int[4]\nactivity act(n: int)\nstate s:\n  on x:\n"
#define HEAD_LINES  10u           /* the handler body starts on this line */
#define DEEP        50000u        /* nesting of the hostile inputs */
#define FLAT_BYTES  (1000u << 10) /* flat inputs: just under FLOW_SOURCE_LEN_MAX */
#define SRC_CAP     (2u << 20)
#define TIME_MAX_S  5.0        /* one compile of a hostile input, generous */
#define SMALL_STACK (1u << 20) /* sigflowd's threads have 8 MB */
#define ELIF_CHAIN  15000u     /* 4 instructions each, within FLOW_CODE_MAX */

struct src {
    char *p;
    size_t n;
};

static void put(struct src *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct src *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->p + s->n, SRC_CAP - s->n, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < SRC_CAP - s->n);
    s->n += (size_t)n;
}

static void put_rep(struct src *s, const char *piece, unsigned times)
{
    size_t k = strlen(piece);
    assert_true(s->n + (size_t)times * k < SRC_CAP);
    for (unsigned i = 0; i < times; i++, s->n += k)
        memcpy(s->p + s->n, piece, k);
    s->p[s->n] = 0;
}

static struct src src_new(void)
{
    struct src s = { .p = malloc(SRC_CAP), .n = 0 };
    assert_non_null(s.p);
    put(&s, "%s", HEAD);
    return s;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The source fails to compile with an error containing `msg` on `line`, both through
 * flow_compile_buffer and through flow_check_main on a file (exit 65). */
static void expect_error(const struct src *s, unsigned line, const char *msg)
{
    static struct flow_errors errs;
    struct flow_def *def = NULL;
    double t0 = now_s();
    int rc = flow_compile_buffer("deep.flow", s->p, s->n, &def, &errs);
    double took = now_s() - t0;
    if (rc != -EINVAL || errs.count == 0)
        fail_msg("rc %d, %u errors (want -EINVAL and '%s')", rc, errs.count, msg);
    bool found = false;
    for (unsigned i = 0; i < errs.count && !found; i++)
        found = errs.err[i].line == line && strstr(errs.err[i].text, msg) &&
                strncmp(errs.err[i].text, "deep.flow:", 10) == 0;
    if (!found)
        fail_msg("no '%s' on line %u; first error: %s", msg, line, errs.err[0].text);
    if (took > TIME_MAX_S)
        fail_msg("compile took %.1f s", took);

    char path[] = "/tmp/test_flow_nesting_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, s->p, s->n), (ssize_t)s->n);
    close(fd);
    char prog[] = "flowc", *argv[] = { prog, path, NULL };
    fflush(stderr);
    int saved = dup(2);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull >= 0)
        dup2(devnull, 2); /* the errors are checked above */
    int status = flow_check_main(2, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    if (devnull >= 0)
        close(devnull);
    unlink(path);
    assert_int_equal(status, 65);
}

#define BODY (HEAD_LINES) /* line of the first body statement */

static void test_deep_parentheses(void **state)
{
    (void)state;
    struct src s = src_new();
    put(&s, "    a = ");
    put_rep(&s, "(", DEEP);
    put(&s, "1");
    put_rep(&s, ")", DEEP);
    put(&s, "\n");
    expect_error(&s, BODY, "expression nested more than 64 levels deep");
    free(s.p);
}

static void test_deep_parentheses_over_lines(void **state)
{
    (void)state;
    struct src s = src_new(); /* inside ( ) lines continue: still one statement */
    put(&s, "    a = ");
    put_rep(&s, "(\n", DEEP / 2);
    put(&s, "1");
    put_rep(&s, ")\n", DEEP / 2);
    put(&s, "\n    b = true\n");
    expect_error(&s, BODY + 64, "expression nested more than 64 levels deep");
    free(s.p);
}

static void test_deep_unary(void **state)
{
    (void)state;
    struct src s = src_new();
    put(&s, "    a = ");
    put_rep(&s, "- ", DEEP);
    put(&s, "a\n    b = ");
    put_rep(&s, "not ", DEEP);
    put(&s, "b\n    a = ");
    put_rep(&s, "-(", DEEP);
    put(&s, "a");
    put_rep(&s, ")", DEEP);
    put(&s, "\n");
    expect_error(&s, BODY, "expression nested more than 64 levels deep");
    expect_error(&s, BODY + 1, "expression nested more than 64 levels deep");
    expect_error(&s, BODY + 2, "expression nested more than 64 levels deep");
    free(s.p);
}

static void test_deep_calls(void **state)
{
    (void)state;
    const char *opens[] = { "abs(", "min(1, ", "int(", "float(" };
    for (unsigned k = 0; k < sizeof(opens) / sizeof(opens[0]); k++) {
        struct src s = src_new();
        put(&s, "    a = ");
        put_rep(&s, opens[k], DEEP / 2);
        put(&s, "1");
        put_rep(&s, ")", DEEP / 2);
        put(&s, "\n    q.push(");
        put_rep(&s, "abs(", DEEP / 2);
        put(&s, "1");
        put_rep(&s, ")", DEEP / 2);
        put(&s, ")\n    run act(");
        put_rep(&s, "max(0, ", DEEP / 2);
        put(&s, "1");
        put_rep(&s, ")", DEEP / 2);
        put(&s, ")\n");
        expect_error(&s, BODY, "expression nested more than 64 levels deep");
        expect_error(&s, BODY + 1, "expression nested more than 64 levels deep");
        expect_error(&s, BODY + 2, "expression nested more than 64 levels deep");
        free(s.p);
    }
}

static void test_deep_guard_and_init(void **state)
{
    (void)state;
    struct src s = { .p = malloc(SRC_CAP), .n = 0 };
    assert_non_null(s.p);
    put(&s, "workflow t version 1\nsignal x()\nvar a: int = ");
    put_rep(&s, "-", DEEP); /* "--" is two '-' tokens */
    put(&s, "1\nstate s:\n  on x when ");
    put_rep(&s, "(", DEEP);
    put(&s, "true");
    put_rep(&s, ")", DEEP);
    put(&s, ":\n    pass\n");
    expect_error(&s, 3, "expression nested more than 64 levels deep");
    expect_error(&s, 5, "expression nested more than 64 levels deep");
    free(s.p);
}

static void test_deep_blocks(void **state)
{
    (void)state;
    struct src s = src_new(); /* one-line blocks need no indentation */
    put(&s, "    ");
    put_rep(&s, "if b: ", DEEP);
    put(&s, "pass\n");
    expect_error(&s, BODY, "blocks nested more than 32 levels deep");
    free(s.p);

    s = src_new(); /* else: if ... on following lines */
    put(&s, "    if b: pass\n");
    put_rep(&s, "    else: if b: pass\n", DEEP / 2);
    expect_error(&s, BODY + 32, "blocks nested more than 32 levels deep");
    free(s.p);

    s = src_new(); /* indentation: the lexer's bound */
    for (unsigned i = 0; i < 40; i++) {
        put_rep(&s, "  ", i + 2);
        put(&s, "if b:\n");
    }
    put_rep(&s, "  ", 42);
    put(&s, "pass\n");
    expect_error(&s, BODY + 30, "blocks nested too deeply");
    free(s.p);
}

static void test_flat_chains(void **state)
{
    (void)state;
    const char *lines[] = { "    a = a", "    b = b", "    b = b", "    a = a", "    f = f" };
    const char *pieces[] = { " + a", " and b", " or b", " * a - a", " / 2.0" };
    for (unsigned k = 0; k < sizeof(lines) / sizeof(lines[0]); k++) {
        struct src s = src_new();
        put(&s, "%s", lines[k]);
        put_rep(&s, pieces[k], (unsigned)((FLAT_BYTES - s.n) / strlen(pieces[k])) - 4);
        put(&s, "\n");
        assert_true(s.n <= FLAT_BYTES);
        expect_error(&s, BODY, "expression more than 256 operators deep");
        free(s.p);
    }
}

/* Many statements, constants and strings: linear in the source. */
static void test_flat_many(void **state)
{
    (void)state;
    struct src s = src_new();
    for (unsigned i = 0; s.n + 64 < FLAT_BYTES; i++)
        put(&s, "    a = %u + %u\n", 100000000u + 2 * i, 100000001u + 2 * i);
    expect_error(&s, 1, "more than 65536 instructions");
    free(s.p);

    s = src_new();
    while (s.n + 64 < FLAT_BYTES)
        put(&s, "    b = \"x\" == \"y\" and \"\" != \"z\"\n");
    expect_error(&s, 1, "more than 65536 instructions");
    free(s.p);
}

/* A condition compared with a constant at every level: compiled once per level, not
 * twice (which would take 2^levels). */
static void test_nested_compare_linear(void **state)
{
    (void)state;
    struct src s = src_new();
    put(&s, "    if ");
    put_rep(&s, "(", 30);
    put(&s, "b");
    put_rep(&s, ") == 1 and b", 30);
    put(&s, ":\n      pass\n");
    expect_error(&s, BODY, "cannot compare bool with int");
    free(s.p);
}

/* ---- at the limits: compiles, on a small stack ------------------------------------------- */

struct compile_job {
    const struct src *s;
    int rc;
    struct flow_def *def;
    struct flow_errors errs;
};

static void *compile_thread(void *arg)
{
    struct compile_job *j = arg;
    j->rc = flow_compile_buffer("limits.flow", j->s->p, j->s->n, &j->def, &j->errs);
    return NULL;
}

/* Compile s on a thread with a SMALL_STACK stack; the caller frees the job and its def. */
static struct compile_job *compile_small_stack(const struct src *s)
{
    struct compile_job *job = calloc(1, sizeof(*job));
    assert_non_null(job);
    job->s = s;
    pthread_attr_t attr;
    pthread_t th;
    assert_int_equal(pthread_attr_init(&attr), 0);
    assert_int_equal(pthread_attr_setstacksize(&attr, SMALL_STACK), 0);
    assert_int_equal(pthread_create(&th, &attr, compile_thread, job), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_attr_destroy(&attr);
    if (job->rc != 0)
        fail_msg("rc %d: %s", job->rc, job->errs.count ? job->errs.err[0].text : "");
    return job;
}

static void test_limits_small_stack(void **state)
{
    (void)state;
    struct src s = src_new();
    /* FLOW_EXPR_NEST_MAX - 1 parentheses (the statement's expression is the first level) */
    put(&s, "    a = ");
    put_rep(&s, "(", FLOW_EXPR_NEST_MAX - 1);
    put(&s, "a");
    put_rep(&s, ")", FLOW_EXPR_NEST_MAX - 1);
    /* a chain FLOW_EXPR_DEPTH_MAX deep, and one whose operands nest too */
    put(&s, "\n    a = a");
    put_rep(&s, " + a", FLOW_EXPR_DEPTH_MAX - 1);
    put(&s, "\n    a = a");
    for (unsigned i = 1; i < FLOW_EXPR_DEPTH_MAX - 16; i++) {
        put(&s, " + ");
        put_rep(&s, "abs(", 8);
        put(&s, "a");
        put_rep(&s, ")", 8);
    }
    /* conditions: not/and/or nested under parentheses */
    put(&s, "\n    b = ");
    put_rep(&s, "not (b or ", FLOW_EXPR_NEST_MAX / 2 - 1);
    put(&s, "b");
    put_rep(&s, ")", FLOW_EXPR_NEST_MAX / 2 - 1);
    /* FLOW_BLOCK_NEST_MAX - 1 ifs in the handler's block */
    put(&s, "\n    ");
    put_rep(&s, "if b: ", FLOW_BLOCK_NEST_MAX - 1);
    put(&s, "a += 1\n");

    struct compile_job *job = compile_small_stack(&s);
    flow_def_free(job->def);

    /* one more level of each fails */
    struct src t = src_new();
    put(&t, "    a = ");
    put_rep(&t, "(", FLOW_EXPR_NEST_MAX);
    put(&t, "a");
    put_rep(&t, ")", FLOW_EXPR_NEST_MAX);
    put(&t, "\n    a = a");
    put_rep(&t, " + a", FLOW_EXPR_DEPTH_MAX);
    put(&t, "\n    ");
    put_rep(&t, "if b: ", FLOW_BLOCK_NEST_MAX);
    put(&t, "pass\n");
    expect_error(&t, BODY, "expression nested more than 64 levels deep");
    expect_error(&t, BODY + 1, "expression more than 256 operators deep");
    expect_error(&t, BODY + 2, "blocks nested more than 32 levels deep");
    free(t.p);
    free(job);
    free(s.p);
}

/* A long elif chain compiles on a small stack (one frame per chain, not per elif) and
 * picks its branch. */
static void test_elif_chain_runs(void **state)
{
    (void)state;
    struct src s = src_new();
    put(&s, "    if a < 0:\n      a = 0\n");
    for (unsigned i = 0; i < ELIF_CHAIN; i++)
        put(&s, "    elif a == %u:\n      a = %u\n", i, i + 1);
    put(&s, "    else:\n      a = -1\n");
    struct compile_job *job = compile_small_stack(&s);
    struct flow_def *def = job->def;
    size_t rs = flow_def_record_size(def);
    uint8_t *rec = aligned_alloc(8, (rs + 7) & ~(size_t)7);
    unsigned cmax = flow_def_cmds_max(def);
    struct vm_cmd *cmds = calloc(cmax ? cmax : 1, sizeof(*cmds));
    assert_non_null(rec);
    assert_non_null(cmds);
    vm_record_init(def, rec, "e", 1, 1);
    for (unsigned i = 0; i < ELIF_CHAIN + 1; i++)
        assert_true(vm_run_signal(def, rec, 0, NULL, 0, "e", 1, 2 + i, cmds, cmax) >= 0);
    struct sf_value v;
    assert_int_equal(vm_record_var(def, rec, 0, &v), 0);
    assert_int_equal(v.i, -1); /* 0 .. ELIF_CHAIN by the elifs, then the else */
    free(cmds);
    free(rec);
    flow_def_free(def);
    free(job);
    free(s.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deep_parentheses),
        cmocka_unit_test(test_deep_parentheses_over_lines),
        cmocka_unit_test(test_deep_unary),
        cmocka_unit_test(test_deep_calls),
        cmocka_unit_test(test_deep_guard_and_init),
        cmocka_unit_test(test_deep_blocks),
        cmocka_unit_test(test_flat_chains),
        cmocka_unit_test(test_flat_many),
        cmocka_unit_test(test_nested_compare_linear),
        cmocka_unit_test(test_limits_small_stack),
        cmocka_unit_test(test_elif_chain_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
