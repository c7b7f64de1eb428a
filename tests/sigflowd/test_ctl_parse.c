/*
 * test_ctl_parse.c — the control request language: every command's arguments at their
 * limits on both sides, and malformed lines refused with a message, never a crash.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_ctl_parse.h"

#define PARTITIONS 8u

/* Parse text (copied into an exact-size buffer, so ASan sees any read past the line). */
static int parse(const char *text, struct dp_ctl_cmd *cmd, const char **error)
{
    size_t len = strlen(text);
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    int rc = dp_ctl_parse(copy, len, PARTITIONS, cmd, error);
    free(copy);
    if (rc == 0)
        assert_non_null(cmd->root);
    else
        assert_non_null(*error);
    return rc;
}

static void ok(const char *text, struct dp_ctl_cmd *cmd)
{
    const char *err = NULL;
    int rc = parse(text, cmd, &err);
    if (rc != 0)
        fail_msg("%s refused: %s", text, err);
}

/* Refused, with a message containing want. */
static void refused(const char *text, const char *want)
{
    struct dp_ctl_cmd cmd;
    const char *err = NULL;
    if (parse(text, &cmd, &err) == 0)
        fail_msg("%s accepted", text);
    assert_null(cmd.root);
    if (!strstr(err, want))
        fail_msg("%s: \"%s\" lacks \"%s\"", text, err, want);
}

/* {"cmd":cmd, key: a string of n 'x'} */
static char *with_string(const char *cmd, const char *key, size_t n, const char *rest)
{
    size_t cap = n + 256;
    char *s = malloc(cap);
    assert_non_null(s);
    int off = snprintf(s, cap, "{\"cmd\":\"%s\",\"%s\":\"", cmd, key);
    memset(s + off, 'x', n);
    snprintf(s + off + n, cap - (size_t)off - n, "\"%s}", rest);
    return s;
}

static void test_plain_commands(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum dp_ctl_cmd_kind kind;
    } cases[] = {
        { "{\"cmd\":\"stats\"}", DP_CTL_CMD_STATS },
        { "{\"cmd\":\"definitions\",\"extra\":[1,2]}", DP_CTL_CMD_DEFINITIONS },
        { " {\"cmd\" : \"ping\"} ", DP_CTL_CMD_PING },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dp_ctl_cmd cmd;
        ok(cases[i].text, &cmd);
        assert_int_equal(cmd.kind, cases[i].kind);
        dp_ctl_cmd_release(&cmd);
        dp_ctl_cmd_release(&cmd); /* idempotent */
    }
    assert_string_equal(dp_ctl_cmd_name(DP_CTL_CMD_TUNE), "tune");
}

static void test_malformed(void **state)
{
    (void)state;
    refused("", "not a JSON object");
    refused("{", "not a JSON object");
    refused("[1,2]", "not a JSON object");
    refused("\"stats\"", "not a JSON object");
    refused("{\"cmd\":\"stats\"} {}", "not a JSON object");
    refused("{\"cmd\":\"stats\",\"cmd\":\"ping\"}", "not a JSON object"); /* duplicate */
    refused("{\"cmd\":\"st\\u0000ats\"}", "not a JSON object");
    refused("{\"cmd\":\"\xff\"}", "not a JSON object");
    refused("{}", "missing \"cmd\"");
    refused("{\"cmd\":7}", "missing \"cmd\"");
    refused("{\"cmd\":null}", "missing \"cmd\"");
    refused("{\"cmd\":\"STATS\"}", "unknown command");
    refused("{\"cmd\":\"statsx\"}", "unknown command");
    refused("{\"cmd\":\"\"}", "unknown command");
    /* deep nesting: refused by the JSON parser's depth limit, not a stack overflow */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 32);
    assert_non_null(deep);
    size_t off = (size_t)sprintf(deep, "{\"cmd\":\"stats\",\"x\":");
    memset(deep + off, '[', depth);
    memset(deep + off + depth, ']', depth);
    strcpy(deep + off + 2 * depth, "}");
    refused(deep, "not a JSON object");
    free(deep);
}

static void test_nul_inside_line(void **state)
{
    (void)state;
    static const char line[] = "{\"cmd\":\"ping\"}\0garbage";
    struct dp_ctl_cmd cmd;
    const char *err;
    assert_int_equal(dp_ctl_parse(line, sizeof(line) - 1, PARTITIONS, &cmd, &err), -EINVAL);
    assert_int_equal(dp_ctl_parse(line, strlen(line), PARTITIONS, &cmd, &err), 0);
    dp_ctl_cmd_release(&cmd);
}

static void test_line_max(void **state)
{
    (void)state;
    /* a deploy whose line is exactly DP_CTL_LINE_MAX bytes passes; one byte more does not */
    const char *head = "{\"cmd\":\"deploy\",\"file\":\"f\",\"source\":\"";
    size_t len = DP_CTL_LINE_MAX, hl = strlen(head);
    char *line = malloc(len + 1);
    assert_non_null(line);
    memcpy(line, head, hl);
    memset(line + hl, 'a', len - hl - 2);
    memcpy(line + len - 2, "\"}", 2);
    struct dp_ctl_cmd cmd;
    const char *err;
    assert_int_equal(dp_ctl_parse(line, len, PARTITIONS, &cmd, &err), 0);
    assert_int_equal(cmd.source_len, len - hl - 2);
    dp_ctl_cmd_release(&cmd);
    line[len] = ' ';
    assert_int_equal(dp_ctl_parse(line, len + 1, PARTITIONS, &cmd, &err), -EMSGSIZE);
    assert_non_null(strstr(err, "too long"));
    assert_null(cmd.root);
    free(line);
}

static void test_names(void **state)
{
    (void)state;
    struct dp_ctl_cmd cmd;
    char *s = with_string("describe", "type", 32, ",\"id\":\"sensor-1\"");
    ok(s, &cmd);
    assert_int_equal(cmd.kind, DP_CTL_CMD_DESCRIBE);
    assert_int_equal(cmd.type_len, 32);
    assert_int_equal(strlen(cmd.type), 32);
    assert_string_equal(cmd.id, "sensor-1");
    assert_int_equal(cmd.id_len, 8);
    dp_ctl_cmd_release(&cmd);
    free(s);
    s = with_string("describe", "type", 33, ",\"id\":\"sensor-1\"");
    refused(s, "describe needs");
    free(s);
    s = with_string("history", "id", 64, ",\"type\":\"device\"");
    ok(s, &cmd);
    assert_int_equal(cmd.id_len, 64);
    assert_int_equal(cmd.limit, DP_CTL_HISTORY_LIMIT_DEF);
    dp_ctl_cmd_release(&cmd);
    free(s);
    s = with_string("history", "id", 65, ",\"type\":\"device\"");
    refused(s, "history needs");
    free(s);
    refused("{\"cmd\":\"describe\",\"type\":\"\",\"id\":\"a\"}", "describe needs");
    refused("{\"cmd\":\"describe\",\"type\":\"d\"}", "describe needs");
    refused("{\"cmd\":\"describe\",\"type\":\"d\",\"id\":5}", "describe needs");
    /* UTF-8 is fine; the limit is in bytes */
    ok("{\"cmd\":\"describe\",\"type\":\"d\",\"id\":\"caf\\u00e9\"}", &cmd);
    assert_int_equal(cmd.id_len, 5);
    dp_ctl_cmd_release(&cmd);
}

static void test_history_limit(void **state)
{
    (void)state;
    static const struct {
        const char *limit;
        long want; /* -1: refused */
    } cases[] = { { "0", DP_CTL_HISTORY_LIMIT_MAX },
                  { "1", 1 },
                  { "100000", 100000 },
                  { "100001", -1 },
                  { "-1", -1 },
                  { "\"5\"", -1 },
                  { "1.0", -1 },
                  { "null", -1 },
                  { "99999999999999999999", -1 } };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[160];
        snprintf(text, sizeof(text),
                 "{\"cmd\":\"history\",\"type\":\"device\",\"id\":\"s\",\"limit\":%s}",
                 cases[i].limit);
        if (cases[i].want < 0) {
            refused(text, cases[i].limit[0] == '9' ? "not a JSON object" : "limit: 0..100000");
            continue;
        }
        struct dp_ctl_cmd cmd;
        ok(text, &cmd);
        assert_int_equal(cmd.limit, cases[i].want);
        dp_ctl_cmd_release(&cmd);
    }
}

static void test_list(void **state)
{
    (void)state;
    struct dp_ctl_cmd cmd;
    ok("{\"cmd\":\"list\"}", &cmd);
    assert_int_equal(cmd.limit, DP_CTL_LIST_LIMIT_DEF);
    assert_false(cmd.has_type);
    assert_false(cmd.has_state);
    assert_int_equal(cmd.after_partition, 0);
    dp_ctl_cmd_release(&cmd);
    ok("{\"cmd\":\"list\",\"limit\":1000,\"after\":\"7:18446744073709551615\",\"type\":\"\","
       "\"state\":\"online\"}",
       &cmd);
    assert_int_equal(cmd.limit, 1000);
    assert_int_equal(cmd.after_partition, 7);
    assert_true(cmd.after_cursor == UINT64_MAX);
    assert_true(cmd.has_type);
    assert_int_equal(cmd.type_len, 0);
    assert_string_equal(cmd.state, "online");
    dp_ctl_cmd_release(&cmd);
    refused("{\"cmd\":\"list\",\"limit\":0}", "limit must be");
    refused("{\"cmd\":\"list\",\"limit\":1001}", "limit must be");
    refused("{\"cmd\":\"list\",\"limit\":\"10\"}", "limit must be");
    static const char *bad_cursors[] = { "8:0",
                                         "3",
                                         "3:",
                                         ":5",
                                         "-1:2",
                                         "+3:4",
                                         " 3:4",
                                         "3:4x",
                                         "3:4:5",
                                         "3:18446744073709551616",
                                         "",
                                         "0x1:2",
                                         "99999999999999999999999:1" };
    for (size_t i = 0; i < sizeof(bad_cursors) / sizeof(bad_cursors[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"cmd\":\"list\",\"after\":\"%s\"}", bad_cursors[i]);
        refused(text, "after must be a cursor");
    }
    refused("{\"cmd\":\"list\",\"after\":12}", "after must be a cursor");
    char *s = with_string("list", "type", 33, "");
    refused(s, "type must be");
    free(s);
    s = with_string("list", "state", 31, "");
    ok(s, &cmd);
    assert_int_equal(strlen(cmd.state), 31);
    dp_ctl_cmd_release(&cmd);
    free(s);
    s = with_string("list", "state", 32, "");
    refused(s, "state must be");
    free(s);
}

static void test_deploy(void **state)
{
    (void)state;
    struct dp_ctl_cmd cmd;
    ok("{\"cmd\":\"deploy\",\"file\":\"a.flow\",\"source\":\"workflow w\\n\"}", &cmd);
    assert_string_equal(cmd.file, "a.flow");
    assert_int_equal(cmd.source_len, 11);
    assert_memory_equal(cmd.source, "workflow w\n", 11);
    dp_ctl_cmd_release(&cmd);
    assert_null(cmd.source);
    refused("{\"cmd\":\"deploy\",\"file\":\"a.flow\"}", "deploy needs");
    refused("{\"cmd\":\"deploy\",\"source\":\"x\"}", "deploy needs");
    refused("{\"cmd\":\"deploy\",\"file\":\"\",\"source\":\"x\"}", "\"file\" must be");
    char *s = with_string("deploy", "file", 4096, ",\"source\":\"\"");
    ok(s, &cmd);
    dp_ctl_cmd_release(&cmd);
    free(s);
    s = with_string("deploy", "file", 4097, ",\"source\":\"\"");
    refused(s, "\"file\" must be");
    free(s);
}

static void test_activities_and_activity(void **state)
{
    (void)state;
    struct dp_ctl_cmd cmd;
    ok("{\"cmd\":\"activities\"}", &cmd);
    assert_int_equal(cmd.limit, 100);
    dp_ctl_cmd_release(&cmd);
    ok("{\"cmd\":\"activities\",\"limit\":1000}", &cmd);
    assert_int_equal(cmd.limit, 1000);
    dp_ctl_cmd_release(&cmd);
    refused("{\"cmd\":\"activities\",\"limit\":0}", "limit must be");
    refused("{\"cmd\":\"activities\",\"limit\":1001}", "limit must be");

    ok("{\"cmd\":\"activity\",\"type\":\"device\",\"id\":\"s\",\"seq\":4294967295,"
       "\"outcome\":\"failed\",\"result\":-9223372036854775808}",
       &cmd);
    assert_true(cmd.seq == UINT32_MAX);
    assert_true(cmd.failed);
    assert_true(cmd.result == INT64_MIN);
    dp_ctl_cmd_release(&cmd);
    ok("{\"cmd\":\"activity\",\"type\":\"device\",\"id\":\"s\",\"seq\":1,\"outcome\":\"done\"}",
       &cmd);
    assert_false(cmd.failed);
    assert_int_equal(cmd.result, 0);
    dp_ctl_cmd_release(&cmd);
    static const char *bad[] = {
        "\"seq\":0,\"outcome\":\"done\"",
        "\"seq\":4294967296,\"outcome\":\"done\"",
        "\"seq\":-1,\"outcome\":\"done\"",
        "\"outcome\":\"done\"",
        "\"seq\":1,\"outcome\":\"faile\"",
        "\"seq\":1,\"outcome\":\"done \"",
        "\"seq\":1",
        "\"seq\":1,\"outcome\":1",
        "\"seq\":1.5,\"outcome\":\"done\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[160];
        snprintf(text, sizeof(text), "{\"cmd\":\"activity\",\"type\":\"device\",\"id\":\"s\",%s}",
                 bad[i]);
        refused(text, "activity needs");
    }
    refused("{\"cmd\":\"activity\",\"type\":\"device\",\"id\":\"s\",\"seq\":1,\"outcome\":\"done\","
            "\"result\":\"7\"}",
            "\"result\" must be");
}

static void test_fault(void **state)
{
    (void)state;
    struct dp_ctl_cmd cmd;
    ok("{\"cmd\":\"fault\",\"kind\":\"powercut\",\"seed\":-1,\"skip\":4294967295}", &cmd);
    assert_string_equal(cmd.fault_kind, "powercut");
    assert_true(cmd.fault_seed == UINT64_MAX);
    assert_true(cmd.fault_skip == UINT32_MAX);
    dp_ctl_cmd_release(&cmd);
    refused("{\"cmd\":\"fault\"}", "fault needs");
    refused("{\"cmd\":\"fault\",\"kind\":\"x\",\"skip\":-1}", "fault needs");
    refused("{\"cmd\":\"fault\",\"kind\":\"x\",\"skip\":4294967296}", "fault needs");
    refused("{\"cmd\":\"fault\",\"kind\":\"x\",\"seed\":\"1\"}", "fault needs");
    char *s = with_string("fault", "kind", 32, "");
    refused(s, "fault needs");
    free(s);
}

static void test_tune(void **state)
{
    (void)state;
    /* the parser checks the shape; the key's existence and range are dp_tune's (test_tune.c) */
    static const char *const keys[] = { "idle_sleep_max_us",    "idle_pause_polls",
                                        "snapshot.interval_s",  "snapshot.log_bytes",
                                        "history.retention_s",  "history.retention_bytes",
                                        "wal.batch_deadline_us" };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char text[160];
        struct dp_ctl_cmd cmd;
        snprintf(text, sizeof(text), "{\"cmd\":\"tune\",\"key\":\"%s\",\"value\":%llu}", keys[i],
                 1ull << 62);
        ok(text, &cmd);
        assert_string_equal(cmd.tune_key, keys[i]);
        assert_true(cmd.tune_value == 1ull << 62);
        dp_ctl_cmd_release(&cmd);
    }
    struct dp_ctl_cmd cmd;
    ok("{\"cmd\":\"tune\",\"key\":\"wal.inflight_max\",\"value\":9223372036854775807}", &cmd);
    assert_string_equal(cmd.tune_key, "wal.inflight_max");
    dp_ctl_cmd_release(&cmd);
    /* a wal.* key up to 47 bytes goes to the owners (they know their keys) */
    char *s = with_string("tune", "key", 43, ",\"value\":1");
    memcpy(strstr(s, "xxxx"), "wal.", 4);
    ok(s, &cmd);
    assert_int_equal(strlen(cmd.tune_key), 43);
    dp_ctl_cmd_release(&cmd);
    free(s);
    s = with_string("tune", "key", 48, ",\"value\":1");
    memcpy(strstr(s, "xxxx"), "wal.", 4);
    refused(s, "unknown key");
    free(s);
    refused("{\"cmd\":\"tune\",\"key\":\"\",\"value\":1}", "unknown key");
    refused("{\"cmd\":\"tune\",\"key\":\"wal.inflight_max\",\"value\":-1}", "non-negative");
    refused("{\"cmd\":\"tune\",\"key\":\"wal.inflight_max\",\"value\":\"1\"}", "non-negative");
    refused("{\"cmd\":\"tune\",\"value\":1}", "non-negative");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_commands),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_nul_inside_line),
        cmocka_unit_test(test_line_max),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_history_limit),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_deploy),
        cmocka_unit_test(test_activities_and_activity),
        cmocka_unit_test(test_fault),
        cmocka_unit_test(test_tune),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
