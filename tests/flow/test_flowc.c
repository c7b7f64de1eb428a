/*
 * test_flowc — compiler error paths (message and position), lookups, the serialized form
 * (round trip, corruption, truncation) and the VM's defined arithmetic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flow.h"

#define HEAD "workflow t version 1\n"

struct err_case {
    const char *src;
    unsigned line, col;
    const char *msg; /* substring of the message */
};

static const struct err_case err_cases[] = {
    /* syntax */
    { "workflow 1 version 1\n", 1, 10, "expected the workflow name" },
    { "signal x()\n", 1, 1, "expected 'workflow NAME version N' first" },
    { HEAD "state s\n  on x:\n    pass\n", 2, 8, "expected ':'" },
    { HEAD "signal x(a int)\nstate s:\n  on x:\n    pass\n", 2, 12, "expected ':' and a type" },
    { HEAD "signal x()\nstate s:\n  on x:\n    y = 1 +\n", 5, 12, "expected an expression" },
    { HEAD "signal x()\nstate s:\n\ton x:\n\t\tpass\n", 4, 1, "tab in indentation" },
    { HEAD "var a: int = 1\nstate s:\n  on x:\n    a = 1 < 2 < 3\n", 5, 15, "do not chain" },
    { HEAD "var a: int = 5q\n", 2, 14, "bad number or duration" },
    { HEAD "var a: text(8) = \"abc\n", 2, 18, "unterminated string" },
    { HEAD "var if: int\n", 2, 5, "'if' is a reserved word" },
    { HEAD "signal x()\nstate s:\n  on x:\n    else:\n      pass\n", 5, 5, "'else' without" },
    { HEAD "signal x()\nstate s:\n  on x:\n    42\n", 5, 5, "expected a statement" },
    { HEAD "signal x()\nvar a: int\nstate s:\n  on x:\n    a\n", 6, 5, "not a statement" },
    { HEAD "var a: int = 99999999999999999999\n", 2, 14, "out of range" },
    /* declarations and bounds */
    { HEAD "var a: text = \"\"\n", 2, 8, "needs a bound" },
    { HEAD "var a: text(300)\n", 2, 13, "text bound must be 1..255" },
    { HEAD "queue q: int[0]\n", 2, 14, "queue capacity must be 1..255" },
    { HEAD "queue q: int[256]\n", 2, 14, "queue capacity must be 1..255" },
    { HEAD "var a: text(3) = \"abcd\"\n", 2, 18, "longer than text(3)" },
    { HEAD "var a: int = true\n", 2, 14, "must be int" },
    { HEAD "var a: int\nvar a: int\n", 3, 5, "'a' is already declared" },
    { HEAD "signal x(a: int, a: int)\n", 2, 18, "duplicate field 'a'" },
    { HEAD "activity f() backoff 5s..1s\n", 2, 14, "backoff maximum is below" },
    { HEAD "activity f() retry 0\n", 2, 20, "retry must be" },
    { HEAD "activity f() frobnicate\n", 2, 14, "expected an activity option" },
    { HEAD "queue q: text(255)[255]\nstate s:\n  on enter:\n    pass\n", 1, 10,
      "instance record is" },
    /* names */
    { HEAD "signal x()\nstate s:\n  on y:\n    pass\n", 4, 6, "unknown signal 'y'" },
    { HEAD "signal x()\nstate s:\n  on x:\n    z = 1\n", 5, 5, "unknown variable 'z'" },
    { HEAD "signal x()\nvar a: int\nstate s:\n  on x:\n    a = b\n", 6, 9, "unknown name 'b'" },
    { HEAD "signal x()\nstate s:\n  on x:\n    goto t\n", 5, 10, "unknown state 't'" },
    { HEAD "signal x()\nstate s:\n  on x:\n    run f()\n", 5, 9, "unknown activity 'f'" },
    { HEAD "signal x()\nactivity f(a: int)\nstate s:\n  on x:\n    run f()\n", 6, 9,
      "takes 1 argument, not 0" },
    { HEAD "signal x()\nstate s:\n  on x:\n    cancel nothing\n", 5, 12, "is not a timer" },
    { HEAD "signal x()\nactivity f()\nstate s:\n  on f:\n    pass\n", 5, 6, "'f' is an activity" },
    { HEAD "signal x(a: int)\nvar a: int\nstate s:\n  on x:\n    a = a + 1\n", 6, 9,
      "both a field of 'x' and a variable" },
    { HEAD "signal x()\nstate s:\n  on x:\n    result = 1\n", 5, 5, "cannot assign to 'result'" },
    { HEAD "signal x()\nvar a: int\nstate s:\n  on x:\n    a = result\n", 6, 9,
      "'result' exists only in" },
    /* types */
    { HEAD "signal x()\nvar a: int\nstate s:\n  on x:\n    a = 1.5\n", 6, 9, "(use int(...))" },
    { HEAD "signal x()\nvar a: int\nstate s:\n  on x:\n    a = \"t\"\n", 6, 9, "is int, not text" },
    { HEAD "signal x()\nvar a: int\nstate s:\n  on x:\n    if a:\n      pass\n", 6, 8,
      "condition must be bool" },
    { HEAD "signal x()\nvar a: bool\nstate s:\n  on x:\n    a = a < true\n", 6, 11,
      "compare only with == and !=" },
    { HEAD "signal x()\nvar a: int\nstate s:\n  on x:\n    a = 1 + true\n", 6, 11,
      "arithmetic needs numbers" },
    { HEAD "signal x()\nvar a: float\nstate s:\n  on x:\n    a = 1.5 % 2.0\n", 6, 13,
      "'%' needs int operands" },
    { HEAD "signal x()\nvar a: text(4)\nstate s:\n  on x:\n    a += \"x\"\n", 6, 5,
      "compound assignment needs a number" },
    /* a text is stored only where it always fits (docs/flow.md §4) */
    { HEAD "signal x()\nvar a: text(4)\nstate s:\n  on x:\n    a = \"abcde\"\n", 6, 9,
      "text of 5 bytes does not fit variable 'a', text(4)" },
    { HEAD "signal x(t: text)\nvar a: text(4)\nstate s:\n  on x:\n    a = t\n", 6, 9,
      "a field declared without a bound may not fit variable 'a', text(4)" },
    { HEAD "signal x(t: text(5))\nqueue q: text(4)[2]\nstate s:\n  on x:\n    q.push(x.t)\n", 6, 12,
      "a text of up to 5 bytes may not fit an item of queue 'q', text(4)" },
    { HEAD "signal x()\nvar a: text(8)\nvar b: text(4)\nstate s:\n  on x:\n    b = a\n", 7, 9,
      "a text of up to 8 bytes may not fit variable 'b', text(4)" },
    { HEAD "signal x()\nvar a: text(63)\nstate s:\n  on x:\n    a = id\n", 6, 9,
      "a text of up to 64 bytes may not fit variable 'a', text(63)" },
    { HEAD "signal x()\nvar a: int\nstate s:\n  on x when a:\n    pass\n", 5, 13,
      "condition must be bool" },
    { HEAD "signal x()\nvar a: bool\nstate s:\n  on x:\n    a = not 3\n", 6, 9,
      "'not' needs a bool" },
    { HEAD "signal x()\nqueue q: int[4]\nstate s:\n  on x:\n    q.push(\"a\")\n", 6, 12,
      "an item of queue 'q' is int, not text" },
    { HEAD "signal x()\nqueue q: int[4]\nvar a: int\nstate s:\n  on x:\n    a = q\n", 7, 9,
      "queue 'q' is not a value" },
    { HEAD "signal x()\nqueue q: int[4]\nvar a: int\nstate s:\n  on x:\n    a = q.size\n", 7, 9,
      "has no member 'size'" },
    { HEAD "signal x()\nvar a: int\nstate s:\n  on x:\n    a = sqrt(2)\n", 6, 9,
      "unknown function 'sqrt'" },
    { HEAD "signal x()\nvar a: int\nstate s:\n  on x:\n    a = min(1)\n", 6, 9,
      "min() takes 2 arguments" },
    /* handlers and states */
    { HEAD "signal x()\nstate s:\n  on x:\n    pass\n  on x:\n    pass\n", 6, 3,
      "duplicate handler 'on x' (first at line 4)" },
    { HEAD "signal x(a: int)\nstate s:\n  on x:\n    pass\n  on x when a > 1:\n    pass\n", 6, 3,
      "unreachable handler" },
    { HEAD "signal x()\nstate s:\n  after 1m:\n    pass\n  after 2m:\n    pass\n", 6, 3,
      "duplicate timer 'after'" },
    { HEAD "signal x()\nstate s:\n  silence 1m as a:\n    pass\n  silence 2m as b:\n    pass\n", 6,
      3, "more than one silence timer" },
    { HEAD "signal x()\nstate s:\n  on x:\n    pass\nstate lonely:\n  on x:\n    pass\n", 6, 7,
      "state 'lonely' is unreachable" },
    { HEAD "signal x()\nstate s:\n  on x:\n    complete\n    pass\n", 6, 5,
      "unreachable statement after goto or complete" },
    { HEAD "signal x()\nstate s:\n  on enter:\n    goto s\n", 5, 5, "'goto' is not allowed in" },
    { HEAD "signal x()\nstate s:\n  on enter:\n    complete\n", 5, 5, "'complete' is not allowed" },
    { HEAD "signal x()\nany:\n  on enter:\n    pass\nstate s:\n  on x:\n    pass\n", 4, 3,
      "'on enter' belongs in a state" },
    { HEAD "signal x()\n", 1, 10, "has no state" },
    { HEAD "signal x()\nstate s:\n  after 0s:\n    pass\n", 4, 9, "duration must be positive" },
};

static void test_error_cases(void **state)
{
    (void)state;
    struct flow_errors *errs = malloc(sizeof(*errs));
    assert_non_null(errs);
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
        const struct err_case *c = &err_cases[i];
        struct flow_def *def = NULL;
        int rc = flow_compile_buffer("case.flow", c->src, strlen(c->src), &def, errs);
        if (rc != -22) {
            flow_def_free(def);
            fail_msg("case %zu compiled (rc %d): %s", i, rc, c->src);
        }
        bool found = false;
        for (unsigned k = 0; k < errs->count; k++)
            if (errs->err[k].line == c->line && errs->err[k].col == c->col &&
                strstr(errs->err[k].text, c->msg) &&
                strncmp(errs->err[k].text, "case.flow:", 10) == 0)
                found = true;
        if (!found) {
            for (unsigned k = 0; k < errs->count; k++)
                fprintf(stderr, "  got: %s\n", errs->err[k].text);
            fail_msg("case %zu: no error '%u:%u: ...%s...'", i, c->line, c->col, c->msg);
        }
    }
    free(errs);
}

/* Several independent errors are all reported in one pass, in source order. */
static void test_many_errors_one_pass(void **state)
{
    (void)state;
    const char *src = HEAD "signal x(a: int)\n"
                           "var n: int = true\n" /* 3 */
                           "state s:\n"
                           "  on x:\n"
                           "    n = zz\n"       /* 6 */
                           "    goto nowhere\n" /* 7 */
                           "  on y:\n"          /* 8 */
                           "    n = 1 +\n"      /* 9 */
                           "  after 5m:\n"
                           "    cancel nothing\n"; /* 11 */
    struct flow_errors *errs = malloc(sizeof(*errs));
    struct flow_def *def = NULL;
    assert_int_equal(flow_compile_buffer("m.flow", src, strlen(src), &def, errs), -22);
    assert_null(def);
    const unsigned want_lines[] = { 3, 6, 7, 8, 9, 11 };
    assert_int_equal(errs->count, 6);
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(errs->err[i].line, want_lines[i]);
    free(errs);
}

static void test_unreadable_file(void **state)
{
    (void)state;
    struct flow_errors errs;
    struct flow_def *def = NULL;
    assert_int_equal(flow_compile_file("/nonexistent/x.flow", &def, &errs), -2);
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.err[0].text, "/nonexistent/x.flow"));
}

static const char *const good_src =
    HEAD "signal ping(n: int, f: float, b: bool, t: text(4))\n"
         "signal other()\n"
         "var i: int = -5\n"
         "var fl: float = 2\n"
         "var ok: bool = true\n"
         "var name: text(4) = \"ab\"\n"
         "var q_out: int\n"
         "queue q: int[2]\n"
         "activity act(x: int, s: text) retry forever backoff 2s..1m x 1.5 timeout 10s "
         "schedule_to_close 1h\n"
         "state s:\n"
         "  on ping:\n"
         "    i = i / n\n"
         "    fl = fl / float(n)\n"
         "    q_out = i % n\n"
         "    name = t\n"
         "    ok = b\n"
         "    run act(i * 3037000500, name)\n"
         "    name = \"zz\"\n"
         "  on other:\n"
         "    i = int(fl)\n"
         "    q.push(1)\n"
         "    q.push(2)\n"
         "    q.push(3)\n"
         "    q_out = q.pop() + q.length * 10\n";

static struct flow_def *compile_good(void)
{
    struct flow_def *def = NULL;
    struct flow_errors *errs = malloc(sizeof(*errs));
    int rc = flow_compile_buffer("good.flow", good_src, strlen(good_src), &def, errs);
    for (unsigned k = 0; rc && k < errs->count; k++)
        fprintf(stderr, "%s\n", errs->err[k].text);
    free(errs);
    assert_int_equal(rc, 0);
    return def;
}

static void test_lookups(void **state)
{
    (void)state;
    struct flow_def *def = compile_good();
    assert_string_equal(flow_def_name(def), "t");
    assert_int_equal(flow_def_version(def), 1);
    assert_int_equal(flow_def_record_size(def) % 8, 0);
    assert_int_equal(flow_def_signal_index(def, "ping", 4), 0);
    assert_int_equal(flow_def_signal_index(def, "pin", 3), -2);
    assert_int_equal(flow_def_signal_field_count(def, 0), 4);
    assert_int_equal(flow_def_signal_field_type(def, 0, 1), FLOW_T_FLOAT);
    assert_int_equal(flow_def_signal_field_type(def, 0, 3), FLOW_T_TEXT);
    assert_int_equal(flow_def_signal_field_index(def, 0, "b", 1), 2);
    assert_string_equal(flow_def_signal_field_name(def, 0, 3), "t");
    assert_int_equal(flow_def_activity_index(def, "act", 3), 0);
    struct flow_activity_info ai;
    assert_int_equal(flow_def_activity(def, 0, &ai), 0);
    assert_int_equal(ai.max_attempts, 0);
    assert_true(ai.backoff_multiplier == 1.5);
    assert_int_equal(ai.backoff_initial_ns, 2000000000ull);
    assert_int_equal(ai.schedule_to_close_ns, 3600000000000ull);
    assert_string_equal(flow_def_activity_param_name(def, 0, 1), "s");
    assert_int_equal(flow_def_var_count(def), 5);
    struct flow_var_info vi;
    assert_int_equal(flow_def_var(def, 3, &vi), 0);
    assert_string_equal(vi.name, "name");
    assert_int_equal(vi.text_cap, 4);
    assert_int_equal(flow_def_queue(def, 0, &vi), 0);
    assert_int_equal(vi.queue_cap, 2);
    assert_string_equal(flow_def_state_name(def, 0), "s");
    assert_null(flow_def_state_name(def, 1));
    assert_true(flow_def_handler_count(def) == 2);
    flow_def_free(def);
}

static int run_sig(const struct flow_def *def, void *rec, const char *sig, struct sf_value *f,
                   unsigned nf, struct vm_cmd *cmds)
{
    int s = flow_def_signal_index(def, sig, strlen(sig));
    return vm_run_signal(def, rec, (unsigned)s, f, nf, "id-1", 4, 5000, cmds, 16);
}

/* Division by zero gives 0, overflow wraps, a text longer than its field's text(N) is
 * refused (never cut), float->int saturates. */
static void test_vm_arithmetic(void **state)
{
    (void)state;
    struct flow_def *def = compile_good();
    _Alignas(8) uint8_t rec[512];
    struct vm_cmd *cmds = calloc(16, sizeof(*cmds));
    vm_record_init(def, rec, "id-1", 4, 1);
    struct sf_value f[4] = {
        { .type = SF_VAL_INT, .i = 0 },
        { .type = SF_VAL_NULL },
        { .type = SF_VAL_BOOL, .b = true },
        { .type = SF_VAL_TEXT, .text = { "abc\xc3\xa9", 5 } },
    };
    /* t: text(4) counts bytes: "abcé" is 5, refused whole, the record unchanged */
    _Alignas(8) uint8_t before[512];
    memcpy(before, rec, sizeof(rec));
    assert_int_equal(run_sig(def, rec, "ping", f, 4, cmds), VM_ERR_TEXT_TOO_LONG);
    assert_memory_equal(before, rec, sizeof(rec));
    f[3].text.ptr = "ab\xc3\xa9"; /* "abé": 4 bytes, fits */
    f[3].text.len = 4;
    int n = run_sig(def, rec, "ping", f, 4, cmds);
    assert_int_equal(n, 1);
    struct sf_value v;
    vm_record_var(def, rec, 0, &v); /* i = -5 / 0 */
    assert_int_equal(v.i, 0);
    vm_record_var(def, rec, 4, &v); /* q_out = 0 % 0 */
    assert_int_equal(v.i, 0);
    vm_record_var(def, rec, 1, &v); /* fl = 2.0 / 0.0 */
    assert_true(v.f > 1e308);
    /* the run argument is `name` as it was at `run`, "abé" whole; `name = "zz"` afterwards
     * does not change it */
    assert_int_equal(cmds[0].kind, VM_CMD_ACTIVITY_RUN);
    assert_int_equal(cmds[0].args[1].text.len, 4);
    assert_memory_equal(cmds[0].args[1].text.ptr, "ab\xc3\xa9", 4);
    assert_int_equal(cmds[0].args[0].i, 0);
    vm_record_var(def, rec, 3, &v);
    assert_memory_equal(v.text.ptr, "zz", 2);
    /* i * 3037000500 overflows and wraps */
    vm_record_init(def, rec, "id-1", 4, 1);
    f[0].i = -1;
    n = run_sig(def, rec, "ping", f, 4, cmds);
    vm_record_var(def, rec, 0, &v); /* -5 / -1 */
    assert_int_equal(v.i, 5);
    assert_int_equal(cmds[0].args[0].i, (int64_t)((uint64_t)5 * 3037000500ull));
    f[0].i = 3;
    n = run_sig(def, rec, "ping", f, 4, cmds); /* 5 / 3 = 1, * 3037000500 */
    assert_int_equal(cmds[1].args[0].i, 3037000500ll);
    assert_int_equal(cmds[0].kind, VM_CMD_ACTIVITY_CANCEL); /* replaced the pending run */
    /* float -> int saturates: fl = 2/0 = inf after the first message */
    vm_record_init(def, rec, "id-1", 4, 1);
    f[0].i = 0;
    run_sig(def, rec, "ping", f, 4, cmds);
    n = run_sig(def, rec, "other", NULL, 0, cmds);
    assert_int_equal(n, 0);
    vm_record_var(def, rec, 0, &v);
    assert_int_equal(v.i, INT64_MAX);
    /* queue of 2: the third push is dropped; pop gives 1, then 1 left */
    vm_record_var(def, rec, 4, &v);
    assert_int_equal(v.i, 1 + 1 * 10);
    assert_int_equal(vm_record_queue_len(def, rec, 0), 1);
    free(cmds);
    flow_def_free(def);
}

/* INT64_MIN - 1 wraps, INT64_MIN / -1 wraps, % -1 is 0, abs(INT64_MIN) stays. */
static void test_vm_wrap(void **state)
{
    (void)state;
    const char *src = HEAD "signal x()\n"
                           "var m: int = -9223372036854775807\n"
                           "var d: int\nvar r: int\nvar a: int\nvar w: int\n"
                           "state s:\n"
                           "  on x:\n"
                           "    m = m - 1\n"
                           "    d = m / -1\n"
                           "    r = m % -1\n"
                           "    a = abs(m)\n"
                           "    w = m - 1\n";
    struct flow_def *def = NULL;
    assert_int_equal(flow_compile_buffer("w.flow", src, strlen(src), &def, NULL), 0);
    _Alignas(8) uint8_t rec[256];
    struct vm_cmd *cmds = calloc(16, sizeof(*cmds));
    vm_record_init(def, rec, "i", 1, 1);
    assert_int_equal(vm_run_signal(def, rec, 0, NULL, 0, "i", 1, 2, cmds, 16), 0);
    const int64_t want[] = { INT64_MIN, INT64_MIN, 0, INT64_MIN, INT64_MAX };
    for (unsigned i = 0; i < 5; i++) {
        struct sf_value v;
        assert_int_equal(vm_record_var(def, rec, i, &v), 0);
        assert_int_equal(v.i, want[i]);
    }
    free(cmds);
    flow_def_free(def);
}

static void test_vm_errors(void **state)
{
    (void)state;
    struct flow_def *def = compile_good();
    _Alignas(8) uint8_t rec[512], before[512];
    struct vm_cmd *cmds = calloc(16, sizeof(*cmds));
    vm_record_init(def, rec, "id-1", 4, 1);
    memcpy(before, rec, sizeof(rec));
    struct sf_value bad[1] = { { .type = SF_VAL_TEXT, .text = { "x", 1 } } };
    assert_int_equal(run_sig(def, rec, "ping", bad, 1, cmds), VM_ERR_FIELD_TYPE);
    assert_memory_equal(rec, before, flow_def_record_size(def));
    assert_int_equal(vm_run_signal(def, rec, 9, NULL, 0, "i", 1, 1, cmds, 16), VM_ERR_BAD_INDEX);
    assert_int_equal(vm_run_signal(def, rec, 0, NULL, 0, "i", 1, 1, cmds, 0), VM_ERR_NO_SPACE);
    assert_memory_equal(rec, before, flow_def_record_size(def));
    assert_int_equal(vm_run_timer(def, rec, 0, 5, "i", 1, cmds, 16), VM_ERR_BAD_INDEX);
    assert_int_equal(vm_run_activity_done(def, rec, 0, 77, 0, "i", 1, 1, cmds, 16), 0);
    assert_int_equal(vm_run_activity_done(def, rec, 5, 1, 0, "i", 1, 1, cmds, 16),
                     VM_ERR_BAD_INDEX);
    assert_int_equal(vm_record_check(def, rec), 0);
    rec[0] = 99; /* state out of range */
    assert_int_equal(vm_record_check(def, rec), VM_ERR_BAD_RECORD);
    free(cmds);
    flow_def_free(def);
}

static void test_blob_roundtrip_and_corruption(void **state)
{
    (void)state;
    struct flow_def *def = compile_good(), *d2 = NULL;
    const void *blob;
    size_t len;
    flow_def_serialize(def, &blob, &len);
    assert_true(len > 64 && len % 8 == 0);
    assert_int_equal(flow_def_load(blob, len, &d2), 0);
    const void *blob2;
    size_t len2;
    flow_def_serialize(d2, &blob2, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(blob, blob2, len);
    flow_def_free(d2);
    /* same source, same bytes */
    struct flow_def *d3 = compile_good();
    flow_def_serialize(d3, &blob2, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(blob, blob2, len);
    flow_def_free(d3);
    /* every single-bit flip is rejected; every truncation too */
    uint8_t *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, blob, len);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        d2 = NULL;
        assert_int_equal(flow_def_load(copy, len, &d2), -22);
    }
    for (size_t n = 0; n < len; n += 7)
        assert_int_equal(flow_def_load(blob, n, &d2), -22);
    free(copy);
    flow_def_free(def);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_cases),
        cmocka_unit_test(test_many_errors_one_pass),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_vm_arithmetic),
        cmocka_unit_test(test_vm_wrap),
        cmocka_unit_test(test_vm_errors),
        cmocka_unit_test(test_blob_roundtrip_and_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
