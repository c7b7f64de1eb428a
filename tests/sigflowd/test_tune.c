/*
 * test_tune — the table of knobs (dp_tune.c): for every key, the configuration file and
 * `tune` accept the same boundaries and refuse the same values with the same words.
 */
#include <errno.h>
#include <inttypes.h>
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
#include "dp_ctl_parse.h"
#include "dp_tune.h"

#define TT_VALUES_MAX 6

static char tt_path[64];

/* Load "[section]\nname = text" (line 7) over a base that satisfies the checks across keys
 * for every boundary. 0, or -1 with the message after "path:line: " in reason. */
static int tt_config(const struct dp_tunable *t, const char *text, struct dp_config *cfg,
                     char *reason, size_t len)
{
    snprintf(tt_path, sizeof(tt_path), "/tmp/sigflow-tune-%d.ini", (int)getpid());
    FILE *f = fopen(tt_path, "w");
    assert_non_null(f);
    fprintf(f,
            "[node]\nipv4 = 198.18.0.2\n[dataplane]\nports = net_tap0\npartitions = 1024\n"
            "[%s]\n%s = %s\n",
            t->section, t->name, text);
    fclose(f);
    dp_config_defaults(cfg);
    char err[512];
    int rc = dp_config_load(cfg, tt_path, err, sizeof(err));
    unlink(tt_path);
    if (rc == 0)
        return 0;
    char prefix[96];
    snprintf(prefix, sizeof(prefix), "%s:7: ", tt_path);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("%s: refused elsewhere than its line: %s", t->key, err);
    snprintf(reason, len, "%s", err + strlen(prefix));
    return -1;
}

static bool tt_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

/* Values in t's range that its other rule refuses (a power of 2, a multiple), up to max. */
static unsigned tt_misfits(const struct dp_tunable *t, uint64_t *out, unsigned max)
{
    unsigned n = 0;
    for (uint64_t v = t->min + 1; v < t->max && n < max && v < t->min + 10; v++)
        if ((t->pow2 && !tt_pow2(v)) || (t->multiple && v % t->multiple != 0))
            out[n++] = v;
    return n;
}

static void test_rows(void **state)
{
    (void)state;
    size_t n;
    const struct dp_tunable *rows = dp_tune_table(&n);
    struct dp_config defaults;
    dp_config_defaults(&defaults);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        const struct dp_tunable *t = &rows[i];
        char err[DP_TUNE_ERROR_MAX];
        assert_true(t->min <= t->max);
        assert_true(t->unit[0] != '\0');
        assert_true(t->size == 2 || t->size == 4 || t->size == 8);
        assert_true(t->size == 8 || t->max < (1ull << (8 * t->size)));
        assert_true((t->live == DP_TUNE_LIVE_OWNER) == (t->apply_owner != NULL));
        assert_ptr_equal(dp_tune_find(t->key), t);
        assert_ptr_equal(dp_tune_find_config(t->section, t->name), t);
        if (t->pow2)
            assert_true(tt_pow2(t->max) && tt_pow2(t->min));
        /* every default is a value the table accepts */
        if (dp_tune_check(t, dp_tune_load(t, &defaults), err, sizeof(err)) != 0)
            fail_msg("default of %s refused: %s", t->key, err);
    }
    assert_null(dp_tune_find("bogus"));
    assert_null(dp_tune_find_config("wal", "enabled"));
}

/* One value through both readers: both accept it (and set the field to it), or both refuse
 * it with the same message. */
static void tt_agree(const struct dp_tunable *t, uint64_t v, bool want_ok)
{
    char text[32], from_config[512] = "", from_tune[DP_TUNE_ERROR_MAX] = "";
    snprintf(text, sizeof(text), "%" PRIu64, v);
    struct dp_config cfg;
    int config_rc = tt_config(t, text, &cfg, from_config, sizeof(from_config));
    if ((config_rc == 0) != want_ok)
        fail_msg("config %s = %s: %s", t->key, text, config_rc ? from_config : "accepted");
    if (config_rc == 0)
        assert_true(dp_tune_load(t, &cfg) == v);
    const struct dp_tunable *got = NULL;
    int tune_rc = dp_tune_prepare(t->key, v, &got, from_tune, sizeof(from_tune));
    if (t->live == DP_TUNE_START_ONLY) {
        /* not tunable live, whatever the value; the range check is the same function */
        assert_int_equal(tune_rc, -EPERM);
        assert_non_null(strstr(from_tune, "set at start-up only"));
        tune_rc = dp_tune_check(t, v, from_tune, sizeof(from_tune));
    }
    if ((tune_rc == 0) != want_ok)
        fail_msg("tune %s %s: %s", t->key, text, tune_rc ? from_tune : "accepted");
    if (!want_ok) {
        assert_int_equal(tune_rc, -ERANGE);
        assert_string_equal(from_config, from_tune);
        assert_non_null(strstr(from_tune, t->unit)); /* the message names the unit */
        return;
    }
    if (t->live == DP_TUNE_LIVE_NODE) {
        assert_ptr_equal(got, t);
        struct dp_config live;
        dp_config_defaults(&live);
        dp_tune_store(t, &live, v);
        assert_true(dp_tune_load(t, &live) == v);
    }
}

static void test_config_and_tune_agree(void **state)
{
    (void)state;
    size_t n;
    const struct dp_tunable *rows = dp_tune_table(&n);
    for (size_t i = 0; i < n; i++) {
        const struct dp_tunable *t = &rows[i];
        tt_agree(t, t->min, true);
        tt_agree(t, t->max, true);
        if (t->min > 0)
            tt_agree(t, t->min - 1, false);
        tt_agree(t, t->max + 1, false);
        tt_agree(t, t->max * 2 + 1, false);
        uint64_t misfit[TT_VALUES_MAX];
        unsigned m = tt_misfits(t, misfit, TT_VALUES_MAX);
        for (unsigned k = 0; k < m; k++)
            tt_agree(t, misfit[k], false);
    }
}

static void test_config_text(void **state)
{
    (void)state;
    const struct dp_tunable *t = dp_tune_find("wal.batch_bytes_max");
    assert_non_null(t);
    struct dp_config cfg;
    char reason[512];
    assert_int_equal(tt_config(t, "256k", &cfg, reason, sizeof(reason)), 0);
    assert_int_equal(cfg.wal_batch_bytes_max, 256000);
    assert_int_equal(tt_config(t, "1M", &cfg, reason, sizeof(reason)), 0);
    assert_int_equal(cfg.wal_batch_bytes_max, 1000000);
    assert_int_equal(tt_config(t, "0x1000", &cfg, reason, sizeof(reason)), 0);
    assert_int_equal(cfg.wal_batch_bytes_max, 4096);
    assert_int_equal(tt_config(t, "2M", &cfg, reason, sizeof(reason)), -1);
    assert_string_equal(reason, "wal.batch_bytes_max: must be an integer in 4096..1048576 "
                                "(bytes), not 2000000");
    const char *bad[] = { "soon", "-1", "12x", "", "99999999999999999999", "18446744073709552G" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tt_config(t, bad[i], &cfg, reason, sizeof(reason)), -1);
        assert_non_null(strstr(reason, "must be an integer in 4096..1048576 (bytes), not '"));
    }
    uint64_t v;
    assert_int_equal(dp_tune_number("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(dp_tune_number("18446744073709552k", &v), -EINVAL);
}

static void test_tune_keys(void **state)
{
    (void)state;
    const struct dp_tunable *t = NULL;
    char err[DP_TUNE_ERROR_MAX];
    /* the live keys are the ones the request parser lets through, in its words */
    assert_int_equal(dp_tune_prepare("bogus", 1, &t, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "unknown key (" DP_CTL_TUNE_KEYS ")");
    assert_int_equal(dp_tune_prepare("wal.segment_bytes", 1u << 20, &t, err, sizeof(err)), -EPERM);
    assert_string_equal(err, "wal.segment_bytes: set at start-up only ([wal] segment_bytes in the "
                             "configuration file)");
    assert_int_equal(dp_tune_prepare("idle_sleep_max_us", 100001, &t, err, sizeof(err)), -ERANGE);
    assert_string_equal(err, "idle_sleep_max_us: must be an integer in 0..100000 (microseconds), "
                             "not 100001");
    /* an owner's knob without a log */
    assert_int_equal(dp_tune_prepare("wal.inflight_max", 8, &t, err, sizeof(err)), 0);
    assert_int_equal(t->live, DP_TUNE_LIVE_OWNER);
    const struct dp_tune_target no_log = { .cfg = NULL, .wal = NULL };
    assert_int_equal(t->apply_owner(&no_log, 8), -ENOTSUP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_config_and_tune_agree),
        cmocka_unit_test(test_config_text),
        cmocka_unit_test(test_tune_keys),
    };
    return cmocka_run_group_tests_name("sigflowd knobs: configuration and tune", tests, NULL, NULL);
}
