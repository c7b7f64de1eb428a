/*
 * test_exec_log — the log executor: one valid JSON line per attempt ({"ts_ns", "task"}),
 * appended, the configured result given back, done only from the loop, nothing written for
 * an abandoned attempt, a failed write a RETRY.
 */
#include <jansson.h>

#include "cp_exec_test.h"

#define TEST_ATTEMPTS  3u
#define TEST_TS_NS_MIN 1600000000000000000ll /* 2020: a realtime clock, not a monotonic one */
#define TEST_FILE_MODE 0640

/* A log executor writing to path (and `result` when not NULL). */
static void log_setup(struct test_exec *h, const char *path, const char *result)
{
    struct cp_kv kv[CP_KV_MAX];
    unsigned n = 0;
    char err[TEST_ERR_CAP];
    test_kv(kv, &n, "path", path);
    if (result)
        test_kv(kv, &n, "result", result);
    int rc = test_exec_init(h, &cp_exec_log_ops, kv, n, err);
    if (rc != 0)
        fail_msg("init: %s", err);
}

/* Check one line: {"ts_ns": realtime, "task": t's body}. */
static void check_line(const char *line, size_t len, const struct test_attempt *t)
{
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, 0, &jerr);
    if (!obj)
        fail_msg("not JSON: %.*s (%s)", (int)len, line, jerr.text);
    assert_true(json_is_object(obj));
    assert_int_equal(json_object_size(obj), 2);
    json_t *ts = json_object_get(obj, "ts_ns");
    assert_true(json_is_integer(ts));
    assert_true(json_integer_value(ts) > TEST_TS_NS_MIN);
    json_t *body = json_loads(t->a.body_json, 0, &jerr);
    assert_non_null(body);
    assert_true(json_equal(json_object_get(obj, "task"), body));
    json_decref(body);
    json_decref(obj);
}

static void test_lines(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX], buf[TEST_FILE_MAX];
    test_path(path, "dry-run.jsonl");
    unlink(path);
    mode_t old_umask = umask(022);
    struct test_exec h;
    log_setup(&h, path, "-7");
    umask(old_umask);
    struct test_attempt t[TEST_ATTEMPTS];
    static const char *const names[] = { "reason", "note" };
    static const char *const texts[][2] = {
        { "worn out", "plain" },
        { "quote \" and \\ backslash", "new\nline" },
        { "\x01\x1f control", "caf\xc3\xa9" },
    };
    for (unsigned i = 0; i < TEST_ATTEMPTS; i++) {
        test_attempt_make(&t[i], 10 + i, 2, names, texts[i]);
        assert_int_equal(h.x.ops->start(&h.x, &t[i].a), 0);
    }
    assert_int_equal(h.done_count, 0); /* never from inside start */
    assert_true(test_run_until(&h, TEST_ATTEMPTS));
    for (unsigned i = 0; i < TEST_ATTEMPTS; i++) {
        assert_int_equal(t[i].done_calls, 1);
        assert_int_equal(t[i].o.kind, CP_OUTCOME_DONE);
        assert_true(t[i].o.has_result);
        assert_int_equal(t[i].o.result, -7);
        assert_string_equal(t[i].o.reason, "");
    }
    test_exec_fini(&h);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, TEST_FILE_MODE);
    long len = test_read_file(path, buf);
    assert_true(len > 0);
    assert_int_equal(buf[len - 1], '\n');
    unsigned lines = 0;
    for (char *p = buf; *p; lines++) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(lines < TEST_ATTEMPTS);
        check_line(p, (size_t)(nl - p), &t[lines]); /* one timer each, in start order */
        p = nl + 1;
    }
    assert_int_equal(lines, TEST_ATTEMPTS);
}

/* An existing file is appended to; without `result` there is none. */
static void test_append_no_result(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX], buf[TEST_FILE_MAX];
    test_write_file(path, "existing.jsonl", "{\"earlier\":1}\n", 0640);
    struct test_exec h;
    struct test_attempt t;
    log_setup(&h, path, NULL);
    test_attempt_make(&t, 1, 0, NULL, NULL);
    assert_int_equal(h.x.ops->start(&h.x, &t.a), 0);
    assert_true(test_run_until(&h, 1));
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);
    assert_false(t.o.has_result);
    test_exec_fini(&h);
    long len = test_read_file(path, buf);
    assert_true(len > 0);
    const char *first = "{\"earlier\":1}\n";
    assert_memory_equal(buf, first, strlen(first));
    char *second = buf + strlen(first);
    char *nl = strchr(second, '\n');
    assert_non_null(nl);
    assert_string_equal(nl + 1, "");
    check_line(second, (size_t)(nl - second), &t);
}

/* Abandoned before its timer ran: no line, no done. */
static void test_abandon(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX], buf[TEST_FILE_MAX];
    test_path(path, "abandoned.jsonl");
    unlink(path);
    struct test_exec h;
    struct test_attempt t[2];
    log_setup(&h, path, "1");
    test_attempt_make(&t[0], 1, 0, NULL, NULL);
    test_attempt_make(&t[1], 2, 0, NULL, NULL);
    assert_int_equal(h.x.ops->start(&h.x, &t[0].a), 0);
    assert_int_equal(h.x.ops->start(&h.x, &t[1].a), 0);
    h.x.ops->abandon(&h.x, &t[0].a);
    assert_null(t[0].a.exec_state);
    assert_true(test_run_until(&h, 1));
    test_run_for(&h, 20);
    assert_int_equal(t[0].done_calls, 0);
    assert_int_equal(t[1].done_calls, 1);
    test_exec_fini(&h);
    assert_true(test_read_file(path, buf) > 0);
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    assert_string_equal(nl + 1, ""); /* one line: the second attempt's */
    check_line(buf, (size_t)(nl - buf), &t[1]);
}

/* A write that fails is a RETRY with its error. */
static void test_write_fails(void **state)
{
    (void)state;
    struct test_exec h;
    struct test_attempt t;
    log_setup(&h, "/dev/full", NULL);
    test_attempt_make(&t, 1, 0, NULL, NULL);
    assert_int_equal(h.x.ops->start(&h.x, &t.a), 0);
    assert_true(test_run_until(&h, 1));
    assert_int_equal(t.o.kind, CP_OUTCOME_RETRY);
    assert_string_equal(t.o.reason, "write /dev/full: No space left on device");
    test_exec_fini(&h);
}

struct init_case {
    const char *key, *value;
    const char *err;
};

static void test_init_errors(void **state)
{
    (void)state;
    static const struct init_case cases[] = {
        { "bogus", "1", "line 1: unknown key bogus for a log executor" },
        { "result", "12x", "line 1: result must be an integer (int64)" },
        { "result", "99999999999999999999", "line 1: result must be an integer (int64)" },
        { "result", "", "line 1: result must be an integer (int64)" },
        { "path", "", "line 1: path is empty" },
        { "path", "/nonexistent/dir/log.jsonl",
          "log executor: /nonexistent/dir/log.jsonl: No such file or directory" },
        { "result", "5", "a log executor needs path" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cp_kv kv[CP_KV_MAX];
        unsigned n = 0;
        char err[TEST_ERR_CAP];
        struct test_exec h;
        test_kv(kv, &n, cases[i].key, cases[i].value);
        assert_int_equal(test_exec_init(&h, &cp_exec_log_ops, kv, n, err), -EINVAL);
        if (!strstr(err, cases[i].err))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].err);
    }
    struct cp_kv kv[CP_KV_MAX];
    unsigned n = 0;
    char err[TEST_ERR_CAP];
    struct test_exec h;
    test_kv(kv, &n, "path", "/dev/null");
    test_kv(kv, &n, "path", "/dev/null");
    assert_int_equal(test_exec_init(&h, &cp_exec_log_ops, kv, n, err), -EINVAL);
    assert_string_equal(err, "line 2: path given twice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines),       cmocka_unit_test(test_append_no_result),
        cmocka_unit_test(test_abandon),     cmocka_unit_test(test_write_fails),
        cmocka_unit_test(test_init_errors),
    };
    return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
