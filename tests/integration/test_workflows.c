/*
 * test_workflows — deployed example workflows end to end on a net_tap node, driven by
 * kernel UDP clients with ACKs: `device` and `loyalty` fleets reach exactly the states and
 * variables a model of the examples predicts; resent event ids change nothing; a resend to a
 * completed workflow does not restart it; silence timers fire for devices that stop sending;
 * `activity complete` moves a device out of `reprovisioning`; a new `loyalty` version
 * deployed under load leaves running instances on the old version.
 *
 * Needs root (namespace, TAP); exits 77 without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "it_util.h"

#define WF_DEVICES   300
#define WF_CUSTOMERS 100
#define WF_FAST      20

static char wf_ns[64], wf_dir[80];
static const char *wf_top, *wf_build;

static json_t *wf_ctl(json_t *req)
{
    json_t *r = it_ctl_at(wf_dir, req);
    assert_non_null(r);
    return r;
}

static json_t *wf_describe(const char *type, const char *id)
{
    json_t *d = wf_ctl(json_pack("{s:s, s:s, s:s}", "cmd", "describe", "type", type, "id", id));
    if (!json_is_true(json_object_get(d, "ok")))
        fail_msg("describe %s %s: %s", type, id, json_string_value(json_object_get(d, "error")));
    return d;
}

static long long wf_var_int(json_t *d, const char *name)
{
    json_t *v = json_object_get(json_object_get(d, "vars"), name);
    if (!json_is_integer(v))
        fail_msg("variable %s missing or not an int", name);
    return json_integer_value(v);
}

static double wf_var_float(json_t *d, const char *name)
{
    json_t *v = json_object_get(json_object_get(d, "vars"), name);
    if (!json_is_number(v))
        fail_msg("variable %s missing or not a number", name);
    return json_number_value(v);
}

static const char *wf_state(json_t *d)
{
    return json_string_value(json_object_get(d, "state"));
}

/* Send the events of `path` (sigflow-send --file format) with ACKs; the summary. */
static json_t *wf_send_file(const char *path)
{
    char out[160];
    snprintf(out, sizeof(out), "%s.summary", path);
    int rc = it_sh("ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 --file %s "
                   "--batch 8 --rate 20000 --ack --timeout-ms 500 --summary-json > %s",
                   wf_ns, wf_build, path, out);
    assert_int_equal(rc, 0);
    json_error_t err;
    json_t *s = json_load_file(out, 0, &err);
    assert_non_null(s);
    return s;
}

static long long wf_status(json_t *summary, const char *status)
{
    return json_integer_value(json_object_get(json_object_get(summary, "statuses"), status));
}

/* Events that took effect exactly once: applied, or applied earlier and resent because its
 * ACK was late (the client resends after its timeout; the resend is a duplicate). The
 * model checks on the workflows' state prove the "exactly once". */
static long long wf_effective(json_t *summary)
{
    return wf_status(summary, "applied") + wf_status(summary, "duplicate");
}

static FILE *wf_open(const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", wf_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    return f;
}

static int wf_deploy(const char *path)
{
    return it_sh("%s/control/sigflowctl --dir %s definition deploy %s >/dev/null", wf_build, wf_dir,
                 path);
}

static int wf_setup(void **state)
{
    (void)state;
    snprintf(wf_ns, sizeof(wf_ns), "sfwf%d", (int)getpid());
    snprintf(wf_dir, sizeof(wf_dir), "/tmp/sigflow-wf-%d", (int)getpid());
    it_sh("rm -rf %s", wf_dir);
    if (it_node_start(wf_top, wf_build, wf_ns, wf_dir, "--rx-queues 2 --capacity 100000") != 0) {
        it_sh("cat %s/sigflowd.log >&2", wf_dir);
        return -1;
    }
    /* devfast: examples/device.flow with a 2 s silence timer, so a test can wait for it */
    return it_sh("sed -e 's/^workflow device version 1/workflow devfast version 1/' "
                 "-e 's/silence 15m:/silence 2s:/' %s/examples/device.flow > %s/devfast.flow && "
                 "%s/control/sigflowctl --dir %s definition deploy %s/devfast.flow >/dev/null",
                 wf_top, wf_dir, wf_build, wf_dir, wf_dir) == 0
               ? 0
               : -1;
}

static int wf_teardown(void **state)
{
    (void)state;
    it_node_stop(wf_top, wf_build, wf_dir);
    it_sh("rm -rf %s", wf_dir);
    return 0;
}

/* Device i sends 3 telemetry events; every third device reports errors (status 1). */
static void test_device_fleet(void **state)
{
    (void)state;
    char path[160];
    FILE *f = wf_open("devices.txt", path, sizeof(path));
    for (int i = 0; i < WF_DEVICES; i++)
        for (int e = 1; e <= 3; e++)
            fprintf(f, "device dev-%03d telemetry %d %d.5 %d\n", i, e, 20 + i % 10,
                    i % 3 == 0 ? 1 : 0);
    fclose(f);
    json_t *s = wf_send_file(path);
    assert_int_equal(wf_effective(s), WF_DEVICES * 3);
    json_decref(s);
    for (int i = 0; i < WF_DEVICES; i++) {
        char id[16];
        snprintf(id, sizeof(id), "dev-%03d", i);
        json_t *d = wf_describe("device", id);
        bool errors = i % 3 == 0;
        assert_string_equal(wf_state(d), errors ? "reprovisioning" : "online");
        assert_int_equal(wf_var_int(d, "readings"), 3);
        assert_int_equal(wf_var_int(d, "errors_in_row"), 0);
        assert_int_equal(wf_var_int(d, "reprovisions"), errors ? 1 : 0);
        assert_int_equal(json_integer_value(json_object_get(d, "signals")), 3);
        assert_int_equal(json_integer_value(json_object_get(d, "last_event_id")), 3);
        if (!errors)
            assert_true(wf_var_float(d, "last_temp") == 20.5 + i % 10);
        assert_int_equal(json_array_size(json_object_get(d, "activities")), errors ? 1 : 0);
        json_decref(d);
    }
    /* Resending every event id changes nothing: all duplicates. */
    s = wf_send_file(path);
    assert_int_equal(wf_status(s, "duplicate"), WF_DEVICES * 3);
    assert_int_equal(wf_status(s, "applied"), 0);
    json_decref(s);
    json_t *d = wf_describe("device", "dev-003");
    assert_int_equal(wf_var_int(d, "readings"), 3);
    json_decref(d);

    /* The reprovision activity, completed by hand, moves the device back online. */
    d = wf_describe("device", "dev-000");
    json_t *act = json_array_get(json_object_get(d, "activities"), 0);
    assert_string_equal(json_string_value(json_object_get(act, "activity")), "reprovision");
    long long seq = json_integer_value(json_object_get(act, "seq"));
    json_decref(d);
    assert_int_equal(it_sh("%s/control/sigflowctl --dir %s activity complete device dev-000 %lld 0"
                           " >/dev/null",
                           wf_build, wf_dir, seq),
                     0);
    d = wf_describe("device", "dev-000");
    assert_string_equal(wf_state(d), "online");
    assert_int_equal(json_array_size(json_object_get(d, "activities")), 0);
    json_decref(d);
}

/* Customer j makes j % 13 purchases of 1000: tier 1 (silver) from the 10th purchase. */
static void test_loyalty_and_new_version(void **state)
{
    (void)state;
    char path[160];
    FILE *f = wf_open("customers.txt", path, sizeof(path));
    long long events = 0;
    for (int j = 0; j < WF_CUSTOMERS; j++)
        for (int k = 1; k <= j % 13 + 1; k++, events++)
            fprintf(f, "loyalty cust-%03d purchase %d %d\n", j, k, k <= j % 13 ? 1000 : 0);
    fclose(f);
    json_t *s = wf_send_file(path);
    assert_int_equal(wf_effective(s), events);
    json_decref(s);
    for (int j = 0; j < WF_CUSTOMERS; j++) {
        char id[16];
        snprintf(id, sizeof(id), "cust-%03d", j);
        json_t *d = wf_describe("loyalty", id);
        int k = j % 13;
        assert_int_equal(wf_var_int(d, "purchases"), k);
        assert_int_equal(wf_var_int(d, "total_cents"), 1000LL * k);
        assert_int_equal(wf_var_int(d, "tier"), k >= 10 ? 1 : 0);
        assert_string_equal(wf_state(d), k >= 10 ? "silver" : "member");
        assert_int_equal(json_integer_value(json_object_get(d, "version")), 1);
        json_decref(d);
    }
    /* Version 2 deployed while a client keeps sending to old and new customers. */
    FILE *g = wf_open("more.txt", path, sizeof(path));
    for (int j = 0; j < WF_CUSTOMERS; j++) {
        fprintf(g, "loyalty cust-%03d purchase %d 500\n", j, 100);
        fprintf(g, "loyalty late-%03d purchase 1 500\n", j);
    }
    fclose(g);
    char v2[160];
    snprintf(v2, sizeof(v2), "%s/loyalty_v2.flow", wf_dir);
    assert_int_equal(it_sh("sed 's/^workflow loyalty version 1/workflow loyalty version 2/' "
                           "%s/examples/loyalty.flow > %s",
                           wf_top, v2),
                     0);
    assert_int_equal(it_sh("(ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 "
                           "--file %s --batch 1 --rate 200 --ack >/dev/null 2>&1 &) ; sleep 0.2",
                           wf_ns, wf_build, path),
                     0);
    assert_int_equal(wf_deploy(v2), 0);
    sleep(2);               /* the paced sender finishes in 1 s */
    s = wf_send_file(path); /* make sure every event of it is in: resends are duplicates */
    assert_int_equal(wf_effective(s), 2 * WF_CUSTOMERS);
    json_decref(s);
    for (int j = 0; j < WF_CUSTOMERS; j++) {
        char id[16];
        snprintf(id, sizeof(id), "cust-%03d", j);
        json_t *d = wf_describe("loyalty", id);
        assert_int_equal(json_integer_value(json_object_get(d, "version")), 1);
        assert_int_equal(wf_var_int(d, "purchases"), j % 13 + 1);
        json_decref(d);
    }
    /* The late customers started after the deploy, so on version 2. */
    json_t *d = wf_describe("loyalty", "late-099");
    assert_int_equal(json_integer_value(json_object_get(d, "version")), 2);
    json_decref(d);
    json_t *defs = wf_ctl(json_pack("{s:s}", "cmd", "definitions"));
    size_t i;
    json_t *def;
    long long running[3] = { 0, 0, 0 };
    json_array_foreach(json_object_get(defs, "definitions"), i, def)
    {
        long long v = json_integer_value(json_object_get(def, "version"));
        if (strcmp(json_string_value(json_object_get(def, "type")), "loyalty") == 0 && v >= 1 &&
            v <= 2)
            running[v] = json_integer_value(json_object_get(def, "running"));
    }
    /* the old customers, plus the late ones that arrived before the deploy, run version 1 */
    assert_true(running[1] >= WF_CUSTOMERS && running[2] >= 1);
    assert_int_equal(running[1] + running[2], 2 * WF_CUSTOMERS);
    json_decref(defs);
}

/* A completed workflow is a tombstone: a late resend neither restarts nor changes it. */
static void test_completed_stays_completed(void **state)
{
    (void)state;
    char path[160];
    FILE *f = wf_open("gone.txt", path, sizeof(path));
    fprintf(f, "device gone-1 telemetry 1 21.0 0\ndevice gone-1 decommission 2\n");
    fclose(f);
    json_t *s = wf_send_file(path);
    assert_int_equal(wf_effective(s), 2);
    json_decref(s);
    f = wf_open("late.txt", path, sizeof(path));
    fprintf(f, "device gone-1 telemetry 3 22.0 0\n");
    fclose(f);
    s = wf_send_file(path);
    assert_int_equal(wf_status(s, "applied"), 0);
    assert_int_equal(wf_status(s, "duplicate"), 1); /* "completed" is reported as duplicate */
    json_decref(s);
    json_t *d = wf_describe("device", "gone-1");
    assert_true(json_is_true(json_object_get(d, "completed")));
    assert_int_equal(json_integer_value(json_object_get(d, "signals")), 2);
    assert_int_equal(wf_var_int(d, "readings"), 1);
    json_decref(d);
}

/* Devices that stop sending: their silence timer fires and schedules `reprovision`. */
static void test_silence_timer_fires(void **state)
{
    (void)state;
    char path[160];
    FILE *f = wf_open("fast.txt", path, sizeof(path));
    for (int i = 0; i < WF_FAST; i++)
        fprintf(f, "devfast quiet-%02d telemetry 1 20.0 0\n", i);
    fclose(f);
    json_t *s = wf_send_file(path);
    assert_int_equal(wf_effective(s), WF_FAST);
    json_decref(s);
    json_t *d = wf_describe("devfast", "quiet-00");
    assert_string_equal(wf_state(d), "online");
    assert_int_equal(json_array_size(json_object_get(d, "timers")), 1);
    json_decref(d);
    sleep(4); /* silence 2s, fired within one ~1 ms tick */
    for (int i = 0; i < WF_FAST; i++) {
        char id[16];
        snprintf(id, sizeof(id), "quiet-%02d", i);
        d = wf_describe("devfast", id);
        assert_string_equal(wf_state(d), "reprovisioning");
        assert_int_equal(wf_var_int(d, "reprovisions"), 1);
        json_decref(d);
    }
    json_t *tasks = wf_ctl(json_pack("{s:s, s:i}", "cmd", "activities", "limit", 1000));
    size_t i;
    json_t *t;
    int fast = 0;
    json_array_foreach(json_object_get(tasks, "tasks"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "type")), "devfast") == 0) {
            assert_string_equal(json_string_value(json_object_get(t, "activity")), "reprovision");
            json_t *reason = json_array_get(json_object_get(t, "args"), 1);
            assert_string_equal(json_string_value(reason), "silent");
            fast++;
        }
    }
    assert_int_equal(fast, WF_FAST);
    json_decref(tasks);
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_workflows: needs root: skipped\n");
        return 77;
    }
    wf_top = getenv("SIGFLOW_TOP");
    wf_build = getenv("SIGFLOW_BUILD");
    if (!wf_top || !wf_build) {
        fprintf(stderr, "test_workflows: SIGFLOW_TOP and SIGFLOW_BUILD must be set\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_fleet),
        cmocka_unit_test(test_loyalty_and_new_version),
        cmocka_unit_test(test_completed_stays_completed),
        cmocka_unit_test(test_silence_timer_fires),
    };
    return cmocka_run_group_tests_name("deployed workflows", tests, wf_setup, wf_teardown);
}
