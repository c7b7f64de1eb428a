/*
 * test_defs_log — a definitions store newer than the log's DEPLOY records recovers (issue
 * #14 item 5): a node deployed with `[wal] enabled = false` restarts with the log on, adopts
 * every stored definition (logging DEPLOY), applies events, and restarts again with the
 * same workflows; a new version deployed with the log on survives a restart too (replay
 * moves each owner's registry up along the log's DEPLOY records, never down).
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

#define DL_FLEET  200 /* workflows per fleet */
#define DL_ROUNDS 3   /* events per workflow and fleet */

static char dl_ns[64], dl_dir[80];
static const char *dl_top, *dl_build;

static json_t *dl_ctl(json_t *req)
{
    json_t *r = it_ctl_at(dl_dir, req);
    assert_non_null(r);
    if (!json_is_true(json_object_get(r, "ok")))
        fail_msg("control request failed: %s", json_string_value(json_object_get(r, "error")));
    return r;
}

/* Start the node (log on unless extra says otherwise); fails the test when it does not. */
static void dl_start(const char *extra)
{
    if (it_node_start(dl_top, dl_build, dl_ns, dl_dir, extra) != 0) {
        it_sh("tail -5 %s/sigflowd.log >&2", dl_dir);
        fail_msg("sigflowd did not start (%s)", extra ? extra : "log on");
    }
}

static long long dl_stat(const char *name)
{
    json_t *r = dl_ctl(json_pack("{s:s}", "cmd", "stats"));
    long long n = json_integer_value(json_object_get(json_object_get(r, "total"), name));
    json_decref(r);
    return n;
}

/* The log off: no ACKs (an ACK means durable). Send the fleet once, slowly, and wait until
 * the node applied every event. */
static void dl_fleet_unacked(const char *prefix)
{
    int rc = it_sh("ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 --fleet %u "
                   "--rounds %u --prefix %s --batch 8 --rate 20000 --sender-id 7 >/dev/null",
                   dl_ns, dl_build, DL_FLEET, DL_ROUNDS, prefix);
    assert_int_equal(rc, 0);
    for (int i = 0; i < 100 && dl_stat("events_applied") < DL_FLEET * DL_ROUNDS; i++)
        usleep(50000);
    assert_int_equal(dl_stat("events_applied"), DL_FLEET * DL_ROUNDS);
}

/* Send DL_ROUNDS events to each of DL_FLEET `device` workflows PREFIX%06d with ACKs,
 * event ids from base + 1; every one must take effect. */
static void dl_fleet(const char *prefix, unsigned base)
{
    char out[160];
    snprintf(out, sizeof(out), "%s/fleet.summary", dl_dir);
    int rc = it_sh("ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 --fleet %u "
                   "--rounds %u --prefix %s --event-id-base %u --batch 8 --rate 20000 --ack "
                   "--timeout-ms 500 --sender-id 7 --summary-json > %s",
                   dl_ns, dl_build, DL_FLEET, DL_ROUNDS, prefix, base, out);
    assert_int_equal(rc, 0);
    json_error_t err;
    json_t *s = json_load_file(out, 0, &err);
    assert_non_null(s);
    json_t *st = json_object_get(s, "statuses");
    long long effective = json_integer_value(json_object_get(st, "applied")) +
                          json_integer_value(json_object_get(st, "duplicate"));
    assert_int_equal(effective, DL_FLEET * DL_ROUNDS);
    json_decref(s);
}

/* One workflow's state, version and counters; fails when it does not exist. */
struct dl_wf {
    char state[32];
    long long version, signals, readings, last_event_id;
};

static struct dl_wf dl_describe(const char *id)
{
    json_t *d = dl_ctl(json_pack("{s:s, s:s, s:s}", "cmd", "describe", "type", "device", "id", id));
    struct dl_wf w;
    snprintf(w.state, sizeof(w.state), "%s", json_string_value(json_object_get(d, "state")));
    w.version = json_integer_value(json_object_get(d, "version"));
    w.signals = json_integer_value(json_object_get(d, "signals"));
    w.last_event_id = json_integer_value(json_object_get(d, "last_event_id"));
    w.readings = json_integer_value(json_object_get(json_object_get(d, "vars"), "readings"));
    json_decref(d);
    return w;
}

/* Every workflow of the fleet PREFIX: online, `version`, DL_ROUNDS readings. */
static void dl_check_fleet(const char *prefix, unsigned base, long long version)
{
    for (unsigned i = 0; i < DL_FLEET; i += 7) {
        char id[48];
        snprintf(id, sizeof(id), "%s%06u", prefix, i);
        struct dl_wf w = dl_describe(id);
        assert_string_equal(w.state, "online");
        assert_int_equal(w.version, version);
        assert_int_equal(w.signals, DL_ROUNDS);
        assert_int_equal(w.readings, DL_ROUNDS);
        assert_int_equal(w.last_event_id, base + (DL_ROUNDS - 1) * DL_FLEET + i + 1);
    }
}

/* `definitions`: the running and completed instances of device version `version`, or -1
 * when the owners do not have that version; *generation gets the node's newest. */
static long long dl_def_running(long long version, long long *generation)
{
    json_t *r = dl_ctl(json_pack("{s:s}", "cmd", "definitions"));
    *generation = json_integer_value(json_object_get(r, "generation"));
    long long running = -1;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(r, "definitions"), i, d)
    {
        if (strcmp(json_string_value(json_object_get(d, "type")), "device") == 0 &&
            json_integer_value(json_object_get(d, "version")) == version)
            running = json_integer_value(json_object_get(d, "running"));
    }
    json_decref(r);
    return running;
}

static long long dl_workflows(void)
{
    return dl_stat("workflows");
}

static void dl_restart(void)
{
    pid_t pid = it_node_pid(dl_dir);
    it_node_stop(dl_top, dl_build, dl_dir);
    assert_true(pid < 0 || it_wait_gone(pid, 30));
    dl_start(NULL);
}

/* Deployed with the log off, restarted with it on: the store's generations are adopted. */
static void test_defs_newer_than_log(void **state)
{
    (void)state;
    dl_start("--conf-extra '[wal];enabled = false'"); /* deploys every example */
    long long gen_off;
    assert_int_equal(dl_def_running(1, &gen_off), 0);
    assert_true(gen_off >= 1);
    dl_fleet_unacked("off-"); /* volatile: gone at the restart */
    assert_int_equal(dl_workflows(), DL_FLEET);
    dl_check_fleet("off-", 0, 1);

    dl_restart(); /* log on: DIR/defs holds generations, the log none (aborted before) */
    long long gen;
    assert_int_equal(dl_def_running(1, &gen), 0);
    assert_int_equal(gen, gen_off);
    assert_int_equal(dl_workflows(), 0);
    assert_int_equal(it_sh("grep -q 'newer than its log' %s/sigflowd.log", dl_dir), 0);
    dl_fleet("on-", 0);
    dl_check_fleet("on-", 0, 1);

    dl_restart(); /* the DEPLOY logged at adoption leads the replay */
    assert_int_equal(dl_def_running(1, &gen), DL_FLEET);
    assert_int_equal(gen, gen_off);
    assert_int_equal(dl_workflows(), DL_FLEET);
    dl_check_fleet("on-", 0, 1);
}

/* A new version deployed with the log on, then a restart: the log switches generations
 * mid-way (aborted before: replay switched the owners down from the newest). */
static void test_new_version_restart(void **state)
{
    (void)state;
    assert_int_equal(it_sh("sed -e 's/^workflow device version 1/workflow device version 2/' "
                           "%s/examples/device.flow > %s/device2.flow && %s/control/sigflowctl "
                           "--dir %s definition deploy %s/device2.flow >/dev/null",
                           dl_top, dl_dir, dl_build, dl_dir, dl_dir),
                     0);
    dl_fleet("v2-", 1000000);
    dl_check_fleet("v2-", 1000000, 2);

    dl_restart();
    long long gen;
    assert_int_equal(dl_def_running(1, &gen), DL_FLEET);
    assert_int_equal(dl_def_running(2, &gen), DL_FLEET);
    assert_int_equal(dl_workflows(), 2 * DL_FLEET);
    dl_check_fleet("on-", 0, 1);
    dl_check_fleet("v2-", 1000000, 2);
    /* and new instances after the restart start on the newest version */
    dl_fleet("v2b-", 2000000);
    dl_check_fleet("v2b-", 2000000, 2);
}

static int dl_setup(void **state)
{
    (void)state;
    snprintf(dl_ns, sizeof(dl_ns), "sfdl%d", (int)getpid());
    snprintf(dl_dir, sizeof(dl_dir), "/tmp/sigflow-dl-%d", (int)getpid());
    it_sh("rm -rf %s", dl_dir);
    return 0;
}

static int dl_teardown(void **state)
{
    (void)state;
    it_node_stop(dl_top, dl_build, dl_dir);
    it_sh("rm -rf %s", dl_dir);
    return 0;
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_defs_log: needs root: skipped\n");
        return 77;
    }
    dl_top = getenv("SIGFLOW_TOP");
    dl_build = getenv("SIGFLOW_BUILD");
    if (!dl_top || !dl_build) {
        fprintf(stderr, "test_defs_log: SIGFLOW_TOP and SIGFLOW_BUILD must be set\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defs_newer_than_log),
        cmocka_unit_test(test_new_version_restart),
    };
    return cmocka_run_group_tests_name("definitions newer than the log", tests, dl_setup,
                                       dl_teardown);
}
