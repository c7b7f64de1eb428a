/*
 * test_exec_exec — the exec executor: exit codes to outcomes, the result from stdout,
 * arguments passed literally (no shell), a clean environment, user switching, abandon
 * killing the whole process group with nothing left behind, 200 programs at once.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <pwd.h>

#include <jansson.h>

#include "cp_exec_test.h"

#define TEST_CONCURRENT   200u
#define TEST_PID_WAIT_MS  10000u /* a script's pid file shows up within this */
#define TEST_ARGV_MAX     32u
#define TEST_SCRIPT_BYTES 2048u

/* An exec executor running argv_json; more keys after it. */
static void exec_setup(struct test_exec *h, const char *argv_json, const char *const *extra)
{
    struct cp_kv kv[CP_KV_MAX];
    unsigned n = 0;
    char err[TEST_ERR_CAP];
    test_kv(kv, &n, "argv", argv_json);
    for (unsigned i = 0; extra && extra[i]; i += 2)
        test_kv(kv, &n, extra[i], extra[i + 1]);
    int rc = test_exec_init(h, &cp_exec_exec_ops, kv, n, err);
    if (rc != 0)
        fail_msg("init: %s", err);
}

/* A JSON array of the given strings (properly escaped). */
static void json_argv(char *out, size_t cap, const char *const *elems, unsigned n)
{
    json_t *arr = json_array();
    for (unsigned i = 0; i < n; i++)
        json_array_append_new(arr, json_string(elems[i]));
    char *s = json_dumps(arr, JSON_COMPACT);
    assert_non_null(s);
    assert_true(strlen(s) < cap);
    snprintf(out, cap, "%s", s);
    free(s);
    json_decref(arr);
}

/* Write a /bin/sh script test_dir/name; body may use %1$s for test_dir. */
static void script(char *path, const char *name, const char *body)
{
    char text[TEST_SCRIPT_BYTES];
    int n = snprintf(text, sizeof(text), "#!/bin/sh\n");
    assert_true(n > 0);
    n += snprintf(text + n, sizeof(text) - (size_t)n, body, test_dir);
    assert_true(n < (int)sizeof(text));
    test_write_file(path, name, text, 0755);
}

/* Run one attempt (no arguments) of a program given as one argv element, to its outcome. */
static void run_one(const char *prog, const char *const *extra, struct test_attempt *t)
{
    struct test_exec h;
    char argv[CP_KV_VALUE_MAX];
    json_argv(argv, sizeof(argv), &prog, 1);
    exec_setup(&h, argv, extra);
    test_attempt_make(t, 1, 0, NULL, NULL);
    assert_int_equal(h.x.ops->start(&h.x, &t->a), 0);
    assert_int_equal(h.done_count, 0); /* never from inside start */
    assert_true(test_run_until(&h, 1));
    assert_int_equal(t->done_calls, 1);
    test_exec_fini(&h);
}

/* Wait (running h's loop) for test_dir/name to hold a pid. */
static pid_t wait_pid_file(struct test_exec *h, const char *name)
{
    char path[TEST_PATH_MAX], buf[TEST_FILE_MAX];
    test_path(path, name);
    uint64_t end = cp_now_ns() + (uint64_t)TEST_PID_WAIT_MS * 1000000u;
    while (cp_now_ns() < end) {
        if (test_read_file(path, buf) > 0 && strchr(buf, '\n'))
            return (pid_t)atoi(buf);
        assert_true(cp_loop_run_once(h->loop, 5) >= 0);
    }
    fail_msg("no pid in %s", path);
    return -1;
}

static void test_result_from_stdout(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX];
    struct test_attempt t;
    script(path, "result.sh", "printf '  42 \\nnot this\\n'\n");
    run_one(path, NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);
    assert_true(t.o.has_result);
    assert_int_equal(t.o.result, 42);
    assert_string_equal(t.o.reason, "");

    script(path, "negative.sh", "echo -9000000000000\n");
    run_one(path, NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);
    assert_true(t.o.has_result);
    assert_true(t.o.result == -9000000000000ll);

    script(path, "text.sh", "echo 42 apples\n");
    run_one(path, NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);
    assert_false(t.o.has_result);

    run_one("/bin/true", NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);
    assert_false(t.o.has_result);
}

static void test_output_limit(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX];
    struct test_attempt t;
    static const char *const four[] = { "max_output_bytes", "4", NULL };
    static const char *const three[] = { "max_output_bytes", "3", NULL };

    script(path, "long.sh", "echo 123456\n");
    run_one(path, four, &t); /* "1234" is cut: not a result */
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);
    assert_false(t.o.has_result);

    script(path, "short.sh", "echo 12; echo more\n");
    run_one(path, three, &t); /* "12\n" is whole */
    assert_true(t.o.has_result);
    assert_int_equal(t.o.result, 12);

    /* far more than a pipe holds, on both streams: read and dropped, the program ends */
    script(path, "flood.sh", "head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2; echo ok\n");
    run_one(path, NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);
}

static void test_exit_75_retry(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX];
    struct test_attempt t;
    script(path, "tempfail.sh", "echo 'queue full, try later' >&2\nexit 75\n");
    run_one(path, NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_RETRY);
    assert_string_equal(t.o.reason, "exit 75: queue full, try later");
}

static void test_exit_3_fail(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX];
    struct test_attempt t;
    script(path, "fail.sh",
           "echo 'an earlier line' >&2\nprintf 'device \\033[31mgone\\t!\\n\\n' >&2\nexit 3\n");
    run_one(path, NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_FAIL);
    assert_string_equal(t.o.reason, "exit 3: device ?[31mgone?!");

    run_one("/bin/false", NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_FAIL);
    assert_string_equal(t.o.reason, "exit 1");
}

static void test_killed_by_signal(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX];
    struct test_attempt t;
    script(path, "suicide.sh", "kill -9 $$\n");
    run_one(path, NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_RETRY);
    assert_string_equal(t.o.reason, "killed by signal 9");
}

static void test_child_failures(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX];
    struct test_attempt t;
    run_one("/nonexistent/sigflow-program", NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_FAIL);
    assert_string_equal(t.o.reason, "exec /nonexistent/sigflow-program: No such file or directory");

    /* no execute bit at all: refused even to root */
    test_write_file(path, "not-executable.sh", "#!/bin/sh\nexit 0\n", 0644);
    run_one(path, NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_FAIL);
    assert_non_null(strstr(t.o.reason, "Permission denied"));

    static const char *const bad_cwd[] = { "cwd", "/nonexistent/dir", NULL };
    run_one("/bin/true", bad_cwd, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_FAIL);
    assert_string_equal(t.o.reason, "chdir /nonexistent/dir: No such file or directory");
}

/* A placeholder this activity has no argument for: FAIL, from the loop. */
static void test_argv_unknown_argument(void **state)
{
    (void)state;
    struct test_exec h;
    struct test_attempt t;
    exec_setup(&h, "[\"/bin/echo\", \"{arg.reason}\", \"{arg.nope}\"]", NULL);
    static const char *const names[] = { "reason" };
    static const char *const texts[] = { "worn out" };
    test_attempt_make(&t, 1, 1, names, texts);
    assert_int_equal(h.x.ops->start(&h.x, &t.a), 0);
    assert_int_equal(h.done_count, 0);
    assert_true(test_run_until(&h, 1));
    assert_int_equal(t.o.kind, CP_OUTCOME_FAIL);
    assert_non_null(strstr(t.o.reason, "argv[2] {arg.nope}"));

    /* abandoned before the loop ran: no done */
    test_attempt_make(&t, 2, 1, names, texts);
    assert_int_equal(h.x.ops->start(&h.x, &t.a), 0);
    h.x.ops->abandon(&h.x, &t.a);
    test_run_for(&h, 20);
    assert_int_equal(t.done_calls, 0);
    test_exec_fini(&h);
}

/* Every shell metacharacter arrives literally, one argument per argv element. */
static void test_args_literal(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX], out[TEST_PATH_MAX], pwned[4][TEST_PATH_MAX];
    char semi[2 * TEST_PATH_MAX], subst[2 * TEST_PATH_MAX], tick[2 * TEST_PATH_MAX],
        lit[2 * TEST_PATH_MAX];
    for (unsigned i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "pwned%u", i);
        test_path(pwned[i], name);
    }
    snprintf(semi, sizeof(semi), "a; touch %s", pwned[0]);
    snprintf(subst, sizeof(subst), "$(touch %s)", pwned[1]);
    snprintf(tick, sizeof(tick), "`touch %s`", pwned[2]);
    snprintf(lit, sizeof(lit), "x;y $(touch %s) `id` | cat > /dev/null &", pwned[3]);
    static const char *const names[] = {
        "semi", "subst", "tick", "nl", "quotes", "spaces", "brace"
    };
    const char *texts[] = {
        semi, subst, tick, "line1\nline2", "it's \"quoted\" \\", "  two  words  ", "{id}"
    };
    script(path, "argv.sh",
           "for a in \"$0\" \"$@\"; do printf '%%s\\000' \"$a\"; done > %1$s/argv.out\n");
    test_path(out, "argv.out");

    const char *argv[] = {
        path,           "{arg.semi}",  "{arg.subst}", "{arg.tick}", "{arg.nl}", "{arg.quotes}",
        "{arg.spaces}", "{arg.brace}", lit,           "--id={id}",  "",         "*",
        "{{literal}}",  "$HOME"
    };
    const char *expect[] = { path,     semi,     subst,       tick,   "line1\nline2",
                             texts[4], texts[5], "{id}",      lit,    "--id=dev-42",
                             "",       "*",      "{literal}", "$HOME" };
    const unsigned n = sizeof(argv) / sizeof(argv[0]);
    char argv_json[CP_KV_VALUE_MAX];
    json_argv(argv_json, sizeof(argv_json), argv, n);

    struct test_exec h;
    struct test_attempt t;
    exec_setup(&h, argv_json, NULL);
    test_attempt_make(&t, 1, 7, names, texts);
    assert_int_equal(h.x.ops->start(&h.x, &t.a), 0);
    assert_true(test_run_until(&h, 1));
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);
    test_exec_fini(&h);

    char buf[TEST_FILE_MAX];
    long len = test_read_file(out, buf);
    assert_true(len > 0);
    unsigned i = 0;
    for (long off = 0; off < len; i++) {
        assert_true(i < n);
        assert_string_equal(buf + off, expect[i]);
        off += (long)strlen(buf + off) + 1;
    }
    assert_int_equal(i, n);
    for (unsigned k = 0; k < 4; k++)
        assert_int_equal(access(pwned[k], F_OK), -1);
}

/* The environment is exactly PATH, the SIGFLOW_* variables and the env lines (and PWD, which
 * /bin/sh adds itself). */
static void test_env_clean(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX], out[TEST_PATH_MAX];
    assert_int_equal(setenv("SIGFLOW_TEST_LEAK", "1", 1), 0);
    script(path, "env.sh", "exec /usr/bin/env -0 > %1$s/env.out\n");
    test_path(out, "env.out");
    struct test_exec h;
    struct test_attempt t;
    static const char *const extra[] = { "env", "GREETING=hello world", "env", "EMPTY=", NULL };
    char argv[CP_KV_VALUE_MAX];
    json_argv(argv, sizeof(argv), (const char *const[]){ path }, 1);
    exec_setup(&h, argv, extra);
    static const char *const names[] = { "reason", "old_fw" };
    static const char *const texts[] = { "worn out", "1.2" };
    test_attempt_make(&t, 17, 2, names, texts);
    t.a.attempt = 3;
    assert_int_equal(h.x.ops->start(&h.x, &t.a), 0);
    assert_true(test_run_until(&h, 1));
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);
    test_exec_fini(&h);

    char expect_args[CP_ARGS_JSON_MAX + 16], expect_key[CHAN_IDEM_KEY_MAX + 32];
    snprintf(expect_args, sizeof(expect_args), "SIGFLOW_ARGS=%s", t.a.args_json);
    snprintf(expect_key, sizeof(expect_key), "SIGFLOW_IDEMPOTENCY_KEY=%s", t.a.idempotency_key);
    const char *expect[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                             "SIGFLOW_TYPE=device",
                             "SIGFLOW_ID=dev-42",
                             "SIGFLOW_ACTIVITY=reprovision",
                             "SIGFLOW_SEQ=17",
                             "SIGFLOW_ATTEMPT=3",
                             expect_key,
                             expect_args,
                             "SIGFLOW_ARG_REASON=worn out",
                             "SIGFLOW_ARG_OLD_FW=1.2",
                             "GREETING=hello world",
                             "EMPTY=",
                             "PWD=/" };
    const unsigned n = sizeof(expect) / sizeof(expect[0]);
    bool seen[sizeof(expect) / sizeof(expect[0])] = { false };
    char buf[TEST_FILE_MAX];
    long len = test_read_file(out, buf);
    assert_true(len > 0);
    for (long off = 0; off < len; off += (long)strlen(buf + off) + 1) {
        unsigned k = 0;
        while (k < n && strcmp(buf + off, expect[k]) != 0)
            k++;
        if (k == n)
            fail_msg("unexpected variable %s", buf + off);
        assert_false(seen[k]);
        seen[k] = true;
    }
    for (unsigned k = 0; k < n; k++)
        if (!seen[k])
            fail_msg("missing variable %s", expect[k]);
    assert_string_equal(t.a.args_json, "{\"reason\":\"worn out\",\"old_fw\":\"1.2\"}");
    unsetenv("SIGFLOW_TEST_LEAK");
}

/* user = nobody: the program runs with nobody's uid, gid and groups, HOME, cwd as given. */
static void test_user_nobody(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    struct passwd *pw = getpwnam("nobody");
    if (!pw)
        skip();
    char dir[TEST_PATH_MAX], path[TEST_PATH_MAX], out[TEST_PATH_MAX];
    test_path(dir, "nobody");
    assert_int_equal(mkdir(dir, 0777), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    script(path, "whoami.sh",
           "{ id -u; id -g; id -G; echo \"$HOME $USER\"; pwd; } > %1$s/nobody/id.out\n");
    test_path(out, "nobody/id.out");
    const char *extra[] = { "user", "nobody", "cwd", dir, NULL };
    struct test_attempt t;
    run_one(path, extra, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);

    char buf[TEST_FILE_MAX], expect[TEST_FILE_MAX];
    assert_true(test_read_file(out, buf) > 0);
    snprintf(expect, sizeof(expect), "%u\n%u\n%u\n%s nobody\n%s\n", (unsigned)pw->pw_uid,
             (unsigned)pw->pw_gid, (unsigned)pw->pw_gid, pw->pw_dir, dir);
    assert_string_equal(buf, expect);

    /* a directory nobody may not enter: chdir runs as nobody and fails */
    char closed[TEST_PATH_MAX];
    test_path(closed, "root-only");
    assert_int_equal(mkdir(closed, 0700), 0);
    const char *extra2[] = { "user", "nobody", "cwd", closed, NULL };
    run_one("/bin/true", extra2, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_FAIL);
    assert_non_null(strstr(t.o.reason, "Permission denied"));
}

/* Abandon kills the leader and what it started in its group; the leader is reaped (no
 * zombie), the background child dies of SIGKILL; done is never called. */
static void test_abandon_kills_group(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX];
    /* orphans become ours, so the background child's end can be checked and reaped here */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    /* builtins only after the fork: the background sleep is the leader's one child */
    script(path, "group.sh",
           "sleep 1000 &\necho $! > %1$s/bg.pid\necho $$ > %1$s/leader.pid\nwait\n");
    struct test_exec h;
    struct test_attempt t;
    char argv[CP_KV_VALUE_MAX];
    json_argv(argv, sizeof(argv), (const char *const[]){ path }, 1);
    exec_setup(&h, argv, NULL);
    test_attempt_make(&t, 1, 0, NULL, NULL);
    assert_int_equal(h.x.ops->start(&h.x, &t.a), 0);
    pid_t bg = wait_pid_file(&h, "bg.pid");
    pid_t leader = wait_pid_file(&h, "leader.pid");
    assert_true(bg > 0 && leader > 0);
    assert_int_equal(getpgid(leader), leader); /* its own group and session */
    assert_int_equal(getsid(leader), leader);
    assert_int_equal(getpgid(bg), leader);

    h.x.ops->abandon(&h.x, &t.a); /* the dispatcher's start-to-close timeout */
    assert_null(t.a.exec_state);
    uint64_t end = cp_now_ns() + (uint64_t)TEST_PID_WAIT_MS * 1000000u;
    while (kill(leader, 0) == 0 && cp_now_ns() < end)
        assert_true(cp_loop_run_once(h.loop, 5) >= 0);
    assert_int_equal(kill(leader, 0), -1); /* reaped by the executor: no zombie */
    assert_int_equal(errno, ESRCH);
    /* the orphaned sleep is ours to reap (subreaper), unless the dying leader reaped it */
    while (kill(-leader, 0) == 0 && cp_now_ns() < end) {
        int status = 0;
        pid_t got = waitpid(-1, &status, WNOHANG);
        if (got == bg) {
            assert_true(WIFSIGNALED(status));
            assert_int_equal(WTERMSIG(status), SIGKILL);
        } else {
            usleep(1000);
        }
    }
    assert_int_equal(kill(bg, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(kill(-leader, 0), -1); /* the group is empty */
    assert_int_equal(errno, ESRCH);
    test_run_for(&h, 20);
    assert_int_equal(t.done_calls, 0);
    test_exec_fini(&h);
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
}

/* A program that ends leaving a background child in its group (holding stdout open): the
 * outcome comes with the leader's exit, and the leftover is killed. */
static void test_exit_kills_leftovers(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX];
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    script(path, "leftover.sh", "sleep 1000 &\necho $! > %1$s/left.pid\necho 5\n");
    struct test_attempt t;
    run_one(path, NULL, &t);
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);
    assert_true(t.o.has_result);
    assert_int_equal(t.o.result, 5);
    char pid_path[TEST_PATH_MAX], buf[TEST_FILE_MAX];
    test_path(pid_path, "left.pid");
    assert_true(test_read_file(pid_path, buf) > 0);
    pid_t left = (pid_t)atoi(buf);
    assert_true(left > 0);
    int status = 0;
    pid_t got = 0;
    uint64_t end = cp_now_ns() + (uint64_t)TEST_PID_WAIT_MS * 1000000u;
    while ((got = waitpid(left, &status, WNOHANG)) == 0 && cp_now_ns() < end)
        usleep(1000);
    assert_int_equal(got, left); /* orphaned to us, SIGKILLed by the executor */
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
}

/* fini reaps an abandoned program synchronously, without the loop running. */
static void test_fini_reaps(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX];
    script(path, "sleeper.sh",
           "echo $$ > %1$s/sleeper.tmp && mv %1$s/sleeper.tmp %1$s/sleeper.pid\n"
           "exec sleep 1000\n");
    struct test_exec h;
    struct test_attempt t;
    char argv[CP_KV_VALUE_MAX];
    json_argv(argv, sizeof(argv), (const char *const[]){ path }, 1);
    exec_setup(&h, argv, NULL);
    test_attempt_make(&t, 1, 0, NULL, NULL);
    assert_int_equal(h.x.ops->start(&h.x, &t.a), 0);
    pid_t pid = wait_pid_file(&h, "sleeper.pid");
    h.x.ops->abandon(&h.x, &t.a);
    test_exec_fini(&h);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(t.done_calls, 0);
}

/* TEST_CONCURRENT programs at once, each reporting its own sequence number. */
static void test_concurrent(void **state)
{
    (void)state;
    char path[TEST_PATH_MAX];
    script(path, "seq.sh", "echo \"$1\"\n");
    char argv[CP_KV_VALUE_MAX];
    snprintf(argv, sizeof(argv), "[\"%s\", \"{seq}\"]", path);
    struct test_exec h;
    exec_setup(&h, argv, NULL);
    struct test_attempt *t = calloc(TEST_CONCURRENT, sizeof(*t));
    assert_non_null(t);
    for (unsigned i = 0; i < TEST_CONCURRENT; i++) {
        test_attempt_make(&t[i], 1000 + i, 0, NULL, NULL);
        assert_int_equal(h.x.ops->start(&h.x, &t[i].a), 0);
    }
    assert_int_equal(h.done_count, 0);
    assert_true(test_run_until(&h, TEST_CONCURRENT));
    for (unsigned i = 0; i < TEST_CONCURRENT; i++) {
        assert_int_equal(t[i].done_calls, 1);
        assert_int_equal(t[i].o.kind, CP_OUTCOME_DONE);
        assert_true(t[i].o.has_result);
        assert_int_equal(t[i].o.result, 1000 + i);
    }
    test_exec_fini(&h);
    free(t);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* every child reaped */
    assert_int_equal(errno, ECHILD);
}

struct init_case {
    const char *key, *value;
    const char *err; /* a part of the message */
};

static void test_init_errors(void **state)
{
    (void)state;
    static const struct init_case cases[] = {
        { "bogus", "1", "line 2: unknown key bogus for an exec executor" },
        { "argv", "[\"/bin/true\"]", "line 2: argv given twice" },
        { "user", "root", "line 2: user root has uid or gid 0: refused" },
        { "user", "no-such-user-sigflow", "line 2: no user no-such-user-sigflow" },
        { "env", "NOEQUALS", "line 2: env must be NAME=value" },
        { "env", "1X=2", "line 2: env must be NAME=value" },
        { "env", "SIGFLOW_ID=x", "line 2: env: SIGFLOW_* variables are sigflow's" },
        { "cwd", "relative/dir", "line 2: cwd must be an absolute path" },
        { "max_output_bytes", "-1", "line 2: max_output_bytes must be 0 to 1048576" },
        { "max_output_bytes", "1048577", "line 2: max_output_bytes must be 0 to 1048576" },
        { "max_output_bytes", "12k", "line 2: max_output_bytes must be 0 to 1048576" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cp_kv kv[CP_KV_MAX];
        unsigned n = 0;
        char err[TEST_ERR_CAP];
        struct test_exec h;
        test_kv(kv, &n, "argv", "[\"/bin/true\"]");
        test_kv(kv, &n, cases[i].key, cases[i].value);
        assert_int_equal(test_exec_init(&h, &cp_exec_exec_ops, kv, n, err), -EINVAL);
        if (!strstr(err, cases[i].err))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].err);
    }
    static const struct init_case argv_cases[] = {
        { "argv", "\"/bin/true\"", "line 1: argv must be a JSON array of strings" },
        { "argv", "[", "line 1: argv must be a JSON array of strings: " },
        { "argv", "[]", "line 1: argv must hold 1 to 64 strings" },
        { "argv", "[1]", "line 1: argv[0] must be a string" },
        { "argv", "[\"true\"]", "line 1: argv[0] must be an absolute path without placeholders" },
        { "argv", "[\"/bin/{id}\"]", "line 1: argv[0] must be an absolute path" },
        { "argv", "[\"/bin/echo\", \"{nope}\"]", "line 1: argv[1] has an unknown" },
        { "argv", "[\"/bin/echo\", \"{id\"]", "line 1: argv[1] has an unknown" },
        { "argv", "[\"/bin/echo\", \"a\\u0000b\"]",
          "line 1: argv must be a JSON array of strings: " },
        { "cwd", "/", "an exec executor needs argv" },
    };
    for (size_t i = 0; i < sizeof(argv_cases) / sizeof(argv_cases[0]); i++) {
        struct cp_kv kv[CP_KV_MAX];
        unsigned n = 0;
        char err[TEST_ERR_CAP];
        struct test_exec h;
        test_kv(kv, &n, argv_cases[i].key, argv_cases[i].value);
        assert_int_equal(test_exec_init(&h, &cp_exec_exec_ops, kv, n, err), -EINVAL);
        if (!strstr(err, argv_cases[i].err))
            fail_msg("argv case %zu: \"%s\" lacks \"%s\"", i, err, argv_cases[i].err);
    }
    /* the same env name twice */
    struct cp_kv kv[CP_KV_MAX];
    unsigned n = 0;
    char err[TEST_ERR_CAP];
    struct test_exec h;
    test_kv(kv, &n, "argv", "[\"/bin/true\"]");
    test_kv(kv, &n, "env", "A=1");
    test_kv(kv, &n, "env", "A=2");
    assert_int_equal(test_exec_init(&h, &cp_exec_exec_ops, kv, n, err), -EINVAL);
    assert_string_equal(err, "line 3: env A given twice");
}

int main(void)
{
    /* 4 descriptors per program in flight: lift the soft limit to the hard one */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_from_stdout),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_exit_75_retry),
        cmocka_unit_test(test_exit_3_fail),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_child_failures),
        cmocka_unit_test(test_argv_unknown_argument),
        cmocka_unit_test(test_args_literal),
        cmocka_unit_test(test_env_clean),
        cmocka_unit_test(test_user_nobody),
        cmocka_unit_test(test_abandon_kills_group),
        cmocka_unit_test(test_exit_kills_leftovers),
        cmocka_unit_test(test_fini_reaps),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_init_errors),
    };
    return cmocka_run_group_tests(tests, test_dir_setup, test_dir_teardown);
}
