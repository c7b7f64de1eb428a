/*
 * test_config — sigflowd's INI configuration: defaults, every section, and a bad key or
 * value refusing with "file:line: reason" (the line of the first problem).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dp_config.h"

static char cfg_path[64];

/* Write text to a temporary file and load it over the defaults. */
static int cfg_load_text(const char *text, struct dp_config *cfg, char *err, size_t cap)
{
    snprintf(cfg_path, sizeof(cfg_path), "/tmp/sigflow-cfg-%d.ini", (int)getpid());
    FILE *f = fopen(cfg_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    dp_config_defaults(cfg);
    err[0] = '\0';
    int rc = dp_config_load(cfg, cfg_path, err, cap);
    unlink(cfg_path);
    return rc;
}

static void expect_error(const char *text, int line, const char *reason)
{
    struct dp_config cfg;
    char err[512], want[128];
    assert_int_equal(cfg_load_text(text, &cfg, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:%d: ", cfg_path, line);
    if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, reason))
        fail_msg("got '%s', want prefix '%s' and '%s'", err, want, reason);
}

static void test_valid_and_defaults(void **state)
{
    (void)state;
    struct dp_config cfg;
    char err[512];
    assert_int_equal(
        cfg_load_text("; comment\n[node]\nipv4 = 198.18.0.2\nipv6 = 2001:2::2\n"
                      "udp_port = 7701\n[dataplane]\nports = net_tap0, net_tap1\n"
                      "rx_queues = 4\npartitions = 1024\ntable_capacity = 2M\n"
                      "[wal]\nbatch_deadline_us = 50\ndirect_io = true\n"
                      "[runtime]\ntasks_per_partition = 8\n[snapshot]\ninterval_s = 0\n",
                      &cfg, err, sizeof(err)),
        0);
    assert_int_equal(cfg.udp_port, 7701);
    assert_int_equal(cfg.port_count, 2);
    assert_string_equal(cfg.ports[1], "net_tap1");
    assert_int_equal(cfg.rx_queues, 4);
    assert_int_equal(cfg.partitions, 1024);
    assert_int_equal(cfg.table_capacity, 2000000);
    assert_int_equal(cfg.wal_batch_deadline_us, 50);
    assert_true(cfg.wal_direct_io);
    assert_int_equal(cfg.tasks_per_partition, 8);
    assert_int_equal(cfg.snapshot_interval_s, 0);
    /* untouched keys keep their defaults */
    assert_int_equal(cfg.ring_size, 4096);
    assert_int_equal(cfg.wal_inflight_max, 4);
    assert_true(cfg.wal_enabled);
}

static void test_bad_lines(void **state)
{
    (void)state;
    const char *base = "[node]\nipv4 = 198.18.0.2\n[dataplane]\nports = net_tap0\n";
    char text[512];
    snprintf(text, sizeof(text), "%sring_size = 1000\n", base);
    expect_error(text, 5, "ring_size: must be an integer in 64..1048576, a power of 2");
    snprintf(text, sizeof(text), "%snonsense = 1\n", base);
    expect_error(text, 5, "unknown key 'nonsense' in section [dataplane]");
    snprintf(text, sizeof(text), "%s[bogus]\nx = 1\n", base);
    expect_error(text, 6, "unknown section [bogus]");
    snprintf(text, sizeof(text), "%sthis line has no equals sign\n", base);
    expect_error(text, 5, "syntax error");
    expect_error("[node]\nipv4 = 300.1.1.1\n", 2, "is not an IPv4 address");
    expect_error("[node]\nudp_port = 70000\n", 2, "udp_port");
    expect_error("[dataplane]\npartitions = 3000\n", 2, "power of 2");
    expect_error("[wal]\nenabled = maybe\n", 2, "not true/false");
    expect_error("[wal]\ninflight_max = 1\n", 2, "inflight_max: must be an integer in 2..16");
    expect_error("[runtime]\ninstance_bytes = -5\n", 2, "instance_bytes");
    expect_error("[snapshot]\ninterval_s = soon\n", 2, "interval_s");
    expect_error("[quota]\ndevice = 0\n", 2, "must be a number of workflows");
    expect_error("[quota]\nde vice = 5\n", 2, "not a workflow type name");
    expect_error("[quota]\ndevice = 5\ndevice = 6\n", 3, "given twice");
    expect_error("[auth]\nkeys = relative/path\n", 2, "absolute path");
    expect_error("[dataplane]\nreply_rate = -1\n", 2, "reply_rate");
    struct dp_config q;
    char qerr[256];
    if (cfg_load_text("[node]\nipv4 = 198.18.0.2\n[dataplane]\nports = net_tap0\n"
                      "[quota]\ndevice = 1000\nloyalty = 5\n[auth]\nkeys = /etc/k\n",
                      &q, qerr, sizeof(qerr)) != 0)
        fail_msg("%s", qerr);
    assert_int_equal(q.quota_count, 2);
    assert_string_equal(q.quota[1].type, "loyalty");
    assert_int_equal(q.quota[1].max, 5);
    assert_string_equal(q.auth_keys, "/etc/k");
    assert_int_equal(q.reply_rate, 50000);
    /* the first problem is the one reported */
    expect_error("[node]\nudp_port = 0\nipv4 = nope\n", 2, "udp_port");
}

static void test_checks_across_keys(void **state)
{
    (void)state;
    struct dp_config cfg;
    char err[512];
    assert_int_equal(cfg_load_text("[node]\nipv4 = 198.18.0.2\n", &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no port configured"));
    assert_int_equal(cfg_load_text("[dataplane]\nports = net_tap0\n", &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "needs ipv4 or ipv6"));
    assert_int_equal(dp_config_load(&cfg, "/nonexistent/sigflow.conf", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "No such file"));
}

static void test_lcore_lists(void **state)
{
    (void)state;
    unsigned ids[8];
    assert_int_equal(dp_config_lcore_list("all", ids, 8), 0);
    assert_int_equal(dp_config_lcore_list("0, 2,3", ids, 8), 3);
    assert_int_equal(ids[1], 2);
    assert_int_equal(dp_config_lcore_list("1,1", ids, 8), -1);
    assert_int_equal(dp_config_lcore_list("1;2", ids, 8), -1);
    assert_int_equal(dp_config_lcore_list("", ids, 8), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_and_defaults),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_checks_across_keys),
        cmocka_unit_test(test_lcore_lists),
    };
    return cmocka_run_group_tests_name("sigflowd configuration", tests, NULL, NULL);
}
