/*
 * test_auth_node — authenticated senders through a real node (net_tap in a namespace of the
 * test's own): with DIR/keys present every frame must carry a valid tag; forged, bit-flipped,
 * replayed, unauthenticated and unauthorized frames are all refused before any workflow
 * state is touched (the workflows' signal counts prove it), each on its own counter; a node
 * with keys restarts with its key file and lease.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "it_util.h"

static char it_ns[32];
static char it_dir[80];
static char it_keys[120];
static const char *it_top;
static const char *it_build;

static json_t *it_stats(void)
{
    json_t *st = it_ctl_at(it_dir, json_pack("{s:s}", "cmd", "stats"));
    assert_non_null(st);
    assert_true(json_is_true(json_object_get(st, "ok")));
    return st;
}

static long long it_drop(const char *reason)
{
    json_t *st = it_stats();
    json_t *v = json_object_get(json_object_get(json_object_get(st, "total"), "drops"), reason);
    if (!v)
        fail_msg("no drop counter named '%s'", reason);
    long long n = json_integer_value(v);
    json_decref(st);
    return n;
}

/* Signals applied to device ID (0 when it does not exist). */
static long long it_signals(const char *id)
{
    json_t *d = it_ctl_at(
        it_dir, json_pack("{s:s, s:s, s:s}", "cmd", "describe", "type", "device", "id", id));
    assert_non_null(d);
    long long n = json_is_true(json_object_get(d, "ok"))
                      ? json_integer_value(json_object_get(d, "signals"))
                      : 0;
    json_decref(d);
    return n;
}

static int it_send(const char *args)
{
    return it_sh("ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 %s >/dev/null "
                 "2>&1",
                 it_ns, it_build, args);
}

static int it_setup(void **state)
{
    (void)state;
    snprintf(it_ns, sizeof(it_ns), "sfau%d", (int)getpid());
    snprintf(it_dir, sizeof(it_dir), "/tmp/sigflow-auth-%d", (int)getpid());
    snprintf(it_keys, sizeof(it_keys), "%s.sender-keys", it_dir);
    it_sh("rm -rf %s && mkdir -p %s", it_dir, it_dir);
    /* key 7 may send to device workflows only */
    if (it_sh("k=$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \\n') && "
              "printf 'key 7 %%s types=device\\n' $k >%s/keys && chmod 600 %s/keys && "
              "cp %s/keys %s && chmod 600 %s",
              it_dir, it_dir, it_dir, it_keys, it_keys) != 0)
        return -1;
    int rc = it_node_start(it_top, it_build, it_ns, it_dir, "--rx-queues 2 --capacity 100000");
    if (rc != 0)
        it_sh("cat %s/sigflowd.log >&2", it_dir);
    return rc == 0 ? 0 : -1;
}

static int it_teardown(void **state)
{
    (void)state;
    it_node_stop(it_top, it_build, it_dir);
    it_sh("rm -rf %s %s", it_dir, it_keys);
    return 0;
}

static void it_settle(void)
{
    usleep(300000);
}

static void test_signed_and_refused(void **state)
{
    (void)state;
    char a[512];
    /* a signed frame is applied */
    snprintf(a, sizeof(a), "-t device -i good -s telemetry --key-file %s --key-id 7 --ack",
             it_keys);
    assert_int_equal(it_send(a), 0);
    it_settle();
    assert_int_equal(it_signals("good"), 1);
    /* forged: a random key under id 7 */
    long long before = it_drop("auth_bad_tag");
    assert_int_equal(it_send("-t device -i forged -s telemetry --key-id 7 --attack forged "
                             "--attack-count 100"),
                     0);
    it_settle();
    assert_int_equal(it_drop("auth_bad_tag") - before, 100);
    assert_int_equal(it_signals("forged"), 0);
    /* every frame with one bit flipped: refused (by the tag check or the parser) */
    snprintf(a, sizeof(a),
             "-t device -i flipped -s telemetry --key-file %s --key-id 7 "
             "--attack bitflip --attack-count 300",
             it_keys);
    assert_int_equal(it_send(a), 0);
    it_settle();
    assert_int_equal(it_signals("flipped"), 0);
    /* replay: one valid frame, then 50 copies of its bytes: applied once */
    before = it_drop("auth_replayed");
    snprintf(a, sizeof(a),
             "-t device -i replayed -s telemetry --key-file %s --key-id 7 "
             "--attack replay --attack-count 50",
             it_keys);
    assert_int_equal(it_send(a), 0);
    it_settle();
    assert_int_equal(it_signals("replayed"), 1);
    assert_int_equal(it_drop("auth_replayed") - before, 50);
    /* unauthenticated: a plain frame and the JSON form */
    before = it_drop("auth_unauthenticated");
    assert_int_equal(it_send("-t device -i plain -s telemetry"), 0);
    assert_int_equal(it_send("--json -t device -i plainjson -s telemetry"), 0);
    it_settle();
    assert_int_equal(it_drop("auth_unauthenticated") - before, 2);
    assert_int_equal(it_signals("plain") + it_signals("plainjson"), 0);
    /* unauthorized: key 7 may not send to loyalty */
    before = it_drop("auth_forbidden");
    snprintf(a, sizeof(a), "-t loyalty -i c1 -s purchase --key-file %s --key-id 7", it_keys);
    assert_int_equal(it_send(a), 0);
    it_settle();
    assert_int_equal(it_drop("auth_forbidden") - before, 1);
}

/* A node with keys restarts (key file and counter lease read back) and keeps what signed
 * senders sent; the lease's floor across a restart is checked in tests/sigflowd/test_auth. */
static void test_restart_with_keys(void **state)
{
    (void)state;
    char a[512];
    snprintf(a, sizeof(a),
             "-t device -i again -s telemetry --key-file %s --key-id 7 "
             "--attack replay --attack-count 1",
             it_keys);
    assert_int_equal(it_send(a), 0);
    it_settle();
    assert_int_equal(it_signals("again"), 1);
    it_node_stop(it_top, it_build, it_dir);
    assert_int_equal(
        it_node_start(it_top, it_build, it_ns, it_dir, "--rx-queues 2 --capacity 100000"), 0);
    assert_int_equal(it_signals("again"), 1);
    assert_int_equal(it_signals("good"), 1); /* recovered from the log */
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_auth_node: needs root (network namespaces, TAP): skipped\n");
        return 77;
    }
    it_top = getenv("SIGFLOW_TOP");
    it_build = getenv("SIGFLOW_BUILD");
    if (!it_top || !it_build) {
        fprintf(stderr, "test_auth_node: SIGFLOW_TOP and SIGFLOW_BUILD must be set\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_and_refused),
        cmocka_unit_test(test_restart_with_keys),
    };
    return cmocka_run_group_tests_name("authenticated senders", tests, it_setup, it_teardown);
}
