/* test_wal_powercut — power-cut loop: every record reported durable survives exactly once,
 * in order, with nothing after a gap. Rounds: argv[1] (default 30; the 'long' suite 2000). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "wal_test_util.h"

#define PC_MAX_PAYLOAD 300u

static uint32_t pc_rounds = 30;

static uint64_t pc_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_power_cut_loop(void **state)
{
    (void)state;
    sf_io_fault_reset();
    char *dir = wt_mkdtemp();
    struct wal_options o = wt_opts(dir);
    o.segment_bytes = 64u << 10; /* rotations and recycling happen inside the rounds */
    o.batch_bytes_max = 8192;
    uint64_t rng = 12345;
    uint64_t model_durable = 0; /* highest LSN ever reported durable */
    uint64_t keep_from = 1;     /* records >= this must exist (older ones were released) */
    uint64_t torn_total = 0, lost_total = 0, recycled_total = 0;
    for (uint32_t round = 0; round < pc_rounds; round++) {
        assert_int_equal(sf_io_track_begin(), 0);
        struct wt_check c = { .max = PC_MAX_PAYLOAD, .any_start = true };
        struct wal_recover_report rep;
        struct wal *w = NULL;
        int rc = wal_recover(&o, wt_check_cb, &c, 0, &rep, &w);
        if (rc != 0 || c.bad != 0 || rep.last_lsn < model_durable ||
            (c.count > 0 && c.first_seen > keep_from) ||
            (c.count > 0 && c.first_seen + c.count - 1 != rep.last_lsn))
            fail_msg("round %u: rc %d bad %llu last %llu durable %llu first %llu keep %llu "
                     "reason %s at %s:%llu",
                     round, rc, (unsigned long long)c.bad, (unsigned long long)rep.last_lsn,
                     (unsigned long long)model_durable, (unsigned long long)c.first_seen,
                     (unsigned long long)keep_from, rep.reason ? rep.reason : "-", rep.path,
                     (unsigned long long)rep.offset);
        torn_total += rep.tail == WAL_TAIL_TORN;
        lost_total += rep.last_lsn - model_durable;
        model_durable = rep.last_lsn; /* recovered records are durable (recovery synced them) */
        /* vary the load: fsync latency, deadline, in-flight limit */
        sf_io_fault_set_fsync_latency_ns(pc_rand(&rng) % 3 == 0 ? 2000000 : 0);
        wal_set_batch_deadline_ns(w, pc_rand(&rng) % 200000);
        wal_set_inflight_max(w, 2 + (uint32_t)(pc_rand(&rng) % 6));
        uint64_t until = wt_now_ns() + 1000000 + pc_rand(&rng) % 30000000; /* 1..31 ms */
        while (wt_now_ns() < until) {
            uint32_t burst = 1 + (uint32_t)(pc_rand(&rng) % 8);
            for (uint32_t k = 0; k < burst; k++) {
                rc = wt_append_next(w, PC_MAX_PAYLOAD);
                assert_true(rc == 0 || rc == -EAGAIN);
            }
            assert_true(wal_poll(w, wt_now_ns()) >= 0);
            assert_true(wal_durable_lsn(w) >= model_durable);
            usleep((useconds_t)(pc_rand(&rng) % 100));
            model_durable = wal_durable_lsn(w);
            if (pc_rand(&rng) % 200 == 0 && model_durable > 300) {
                keep_from = model_durable - 200;
                wal_release_before(w, keep_from);
            }
        }
        /* the cut: from here nothing more becomes durable */
        model_durable = wal_durable_lsn(w);
        struct wal_stats st;
        wal_get_stats(w, &st);
        recycled_total += st.segments_recycled;
        assert_int_equal(sf_io_power_cut_begin(), 0);
        wal_close(w); /* drains the ring; the log may report -EIO */
        struct sf_io_cut_report cut;
        unsigned flags = round % 2 ? SF_IO_CUT_REORDER : 0;
        assert_int_equal(sf_io_power_cut_apply(pc_rand(&rng), flags, &cut), 0);
    }
    sf_io_fault_reset();
    /* final recovery */
    struct wt_check c = { .max = PC_MAX_PAYLOAD, .any_start = true };
    struct wal_recover_report rep;
    assert_int_equal(wal_recover(&o, wt_check_cb, &c, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
    assert_int_equal(c.bad, 0);
    assert_true(rep.last_lsn >= model_durable);
    assert_true(model_durable > 1000);
    print_message("%u rounds: last lsn %llu, torn tails %llu, undurable records that survived "
                  "%llu, segments recycled %llu\n",
                  pc_rounds, (unsigned long long)rep.last_lsn, (unsigned long long)torn_total,
                  (unsigned long long)lost_total, (unsigned long long)recycled_total);
    wt_rmtree(dir);
}

/* Two logs in one process (the daemon's owner cores), each with its own io_uring, driven in
 * turns like two owner loops, then one power cut for both. The fault layer must tell the
 * two rings' operations apart although both logs use the same user_data values: every
 * record either log reported durable must survive, and each log must end in a clean or torn
 * tail, never "corruption in the middle". */
#define PC_LOGS 2u

static void test_power_cut_two_logs(void **state)
{
    (void)state;
    sf_io_fault_reset();
    char *dir = wt_mkdtemp();
    struct wal_options o[PC_LOGS];
    uint64_t model_durable[PC_LOGS] = { 0 };
    for (uint32_t l = 0; l < PC_LOGS; l++) {
        o[l] = wt_opts(dir);
        o[l].core = l;
        o[l].segment_bytes = 64u << 10;
        o[l].batch_bytes_max = 8192;
    }
    uint64_t rng = 777;
    uint64_t torn_total = 0;
    uint32_t rounds = pc_rounds < 10 ? pc_rounds : pc_rounds / 3;
    for (uint32_t round = 0; round < rounds; round++) {
        assert_int_equal(sf_io_track_begin(), 0);
        struct wal *w[PC_LOGS] = { NULL };
        for (uint32_t l = 0; l < PC_LOGS; l++) {
            struct wt_check c = { .max = PC_MAX_PAYLOAD, .any_start = true };
            struct wal_recover_report rep;
            int rc = wal_recover(&o[l], wt_check_cb, &c, 0, &rep, &w[l]);
            if (rc != 0 || c.bad != 0 || rep.last_lsn < model_durable[l] ||
                (c.count > 0 && c.first_seen + c.count - 1 != rep.last_lsn))
                fail_msg("round %u log %u: rc %d bad %llu last %llu durable %llu reason %s "
                         "at %s:%llu",
                         round, l, rc, (unsigned long long)c.bad, (unsigned long long)rep.last_lsn,
                         (unsigned long long)model_durable[l], rep.reason ? rep.reason : "-",
                         rep.path, (unsigned long long)rep.offset);
            torn_total += rep.tail == WAL_TAIL_TORN;
            model_durable[l] = rep.last_lsn;
            wal_set_batch_deadline_ns(w[l], pc_rand(&rng) % 100000);
        }
        uint64_t until = wt_now_ns() + 2000000 + pc_rand(&rng) % 20000000; /* 2..22 ms */
        while (wt_now_ns() < until) {
            for (uint32_t l = 0; l < PC_LOGS; l++) {
                uint32_t burst = 1 + (uint32_t)(pc_rand(&rng) % 8);
                for (uint32_t k = 0; k < burst; k++) {
                    int rc = wt_append_next(w[l], PC_MAX_PAYLOAD);
                    assert_true(rc == 0 || rc == -EAGAIN);
                }
                assert_true(wal_poll(w[l], wt_now_ns()) >= 0);
                assert_true(wal_durable_lsn(w[l]) >= model_durable[l]);
                model_durable[l] = wal_durable_lsn(w[l]);
            }
            usleep((useconds_t)(pc_rand(&rng) % 50));
        }
        assert_int_equal(sf_io_power_cut_begin(), 0);
        for (uint32_t l = 0; l < PC_LOGS; l++) {
            model_durable[l] = wal_durable_lsn(w[l]);
            /* like an owner that has not seen the cut yet: append and submit after it */
            if (wt_append_next(w[l], PC_MAX_PAYLOAD) == 0)
                wal_flush(w[l]);
        }
        /* like the daemon: no wal_close before the cut (a machine losing power flushes
         * nothing); poll until every operation came back, then rewrite the files */
        uint64_t t0 = wt_now_ns();
        for (uint32_t l = 0; l < PC_LOGS; l++)
            while (!wal_io_idle(w[l])) {
                int rc = wal_poll(w[l], wt_now_ns());
                assert_true(rc == 0 || rc == -EIO);
                assert_true(wt_now_ns() - t0 < 5000000000ull);
            }
        struct sf_io_cut_report cut;
        unsigned flags = round % 2 ? SF_IO_CUT_REORDER : 0;
        assert_int_equal(sf_io_power_cut_apply(pc_rand(&rng), flags, &cut), 0);
        for (uint32_t l = 0; l < PC_LOGS; l++)
            wal_close(w[l]); /* writes nothing more: the log failed */
        /* un-synced at the cut: at most inflight_max (4) batches per log, plus the header of
         * a segment the helper was recycling (post-cut submissions never reach the disk) */
        if (cut.writes_lost + cut.writes_kept > PC_LOGS * (4u + 1u))
            fail_msg("round %u: %u writes lost + %u kept: more than can be in flight", round,
                     cut.writes_lost, cut.writes_kept);
    }
    sf_io_fault_reset();
    for (uint32_t l = 0; l < PC_LOGS; l++) {
        struct wt_check c = { .max = PC_MAX_PAYLOAD, .any_start = true };
        struct wal_recover_report rep;
        assert_int_equal(wal_recover(&o[l], wt_check_cb, &c, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
        assert_int_equal(c.bad, 0);
        assert_true(rep.last_lsn >= model_durable[l]);
        assert_true(model_durable[l] > 100);
    }
    print_message("%u rounds x %u logs: torn tails %llu\n", rounds, PC_LOGS,
                  (unsigned long long)torn_total);
    wt_rmtree(dir);
}

int main(int argc, char **argv)
{
    if (!sf_io_fault_supported())
        return 77;
    if (argc > 1)
        pc_rounds = (uint32_t)strtoul(argv[1], NULL, 10);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_cut_loop),
        cmocka_unit_test(test_power_cut_two_logs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
