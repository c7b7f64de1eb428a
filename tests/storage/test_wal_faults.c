/* test_wal_faults — EIO on write/fsync, ENOSPC, short writes, segment creation failure,
 * fsync latency (two batches in flight): sticky failure, durable LSN never covers them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "wal_test_util.h"

#define FT_MAX_PAYLOAD 200u

static int ft_setup(void **state)
{
    (void)state;
    sf_io_fault_reset();
    return sf_io_fault_supported() ? 0 : -1;
}

static struct wal_options ft_opts(const char *dir)
{
    struct wal_options o = wt_opts(dir);
    o.batch_bytes_max = 4096;
    o.batch_deadline_ns = 0;
    return o;
}

/* Last LSN of the batch with sequence number @seq in segment 1 (0 when absent); with
 * @upto, the largest last LSN of the batches numbered @seq or lower. */
static uint64_t ft_batch_last_lsn_cmp(const char *dir, uint64_t seq, bool upto)
{
    char path[4200];
    wal_segment_path(dir, 0, 1, path, sizeof(path));
    uint8_t *img;
    size_t len;
    wt_read_file(path, &img, &len);
    uint64_t offs[512];
    uint32_t n = wt_batch_offsets(img, len, offs, 512);
    uint64_t last = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct wal_batch_header h;
        memcpy(&h, img + offs[i], sizeof(h));
        if (upto ? h.seq <= seq && h.last_lsn > last : h.seq == seq)
            last = h.last_lsn;
    }
    free(img);
    return last;
}

static uint64_t ft_batch_last_lsn(const char *dir, uint64_t seq)
{
    return ft_batch_last_lsn_cmp(dir, seq, false);
}

/* Append until the log fails; check the failure is sticky and durable froze. */
static int ft_run_until_failure(struct wal *w, uint64_t *durable_at_failure)
{
    uint64_t t0 = wt_now_ns();
    int err = 0;
    uint64_t durable = 0;
    while (err == 0 && wt_now_ns() - t0 < 10000000000ull) {
        int rc = wt_append_next(w, FT_MAX_PAYLOAD);
        assert_true(rc == 0 || rc == -EAGAIN || rc < 0);
        int p = wal_poll(w, wt_now_ns());
        assert_true(wal_durable_lsn(w) >= durable); /* monotonic */
        durable = wal_durable_lsn(w);
        if (p < 0)
            err = p;
    }
    *durable_at_failure = durable;
    /* sticky: every entry point reports it, nothing advances, nothing is resubmitted */
    struct wal_stats before, after;
    wal_get_stats(w, &before);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(wal_poll(w, wt_now_ns()), err);
        assert_int_equal(wal_reserve(w, 64), err);
        assert_int_equal(wal_flush(w), err);
    }
    wal_get_stats(w, &after);
    assert_int_equal(after.batches, before.batches);
    assert_int_equal(wal_durable_lsn(w), durable);
    assert_int_equal(wal_error(w), err);
    return err;
}

/* Recover after the failure: never less than what was durable, data intact. */
static void ft_recover_check(const char *dir, uint64_t durable, uint64_t segment_bytes)
{
    sf_io_fault_reset();
    struct wal_options o = ft_opts(dir);
    o.segment_bytes = segment_bytes;
    struct wt_check c = { .max = FT_MAX_PAYLOAD };
    struct wal_recover_report rep;
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, wt_check_cb, &c, 0, &rep, &w), 0);
    assert_int_equal(c.bad, 0);
    assert_true(c.count >= durable);
    assert_true(rep.tail != WAL_TAIL_CORRUPT);
    /* and the log works again */
    for (int i = 0; i < 100; i++) {
        int rc = wt_append_next(w, FT_MAX_PAYLOAD);
        assert_true(rc == 0 || rc == -EAGAIN);
        assert_true(wal_poll(w, wt_now_ns()) >= 0);
    }
    assert_int_equal(wt_drain(w), 0);
    assert_int_equal(wal_close(w), 0);
}

static void ft_write_fault(enum sf_io_fault kind, int expect_err, bool data_may_survive)
{
    char *dir = wt_mkdtemp();
    struct wal_options o = ft_opts(dir);
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    assert_int_equal(sf_io_fault_arm(kind, 5, 1), 0); /* the 6th batch */
    uint64_t durable = 0;
    assert_int_equal(ft_run_until_failure(w, &durable), expect_err);
    assert_int_equal(sf_io_fault_injected(kind), 1);
    assert_int_equal(wal_close(w), expect_err);
    uint64_t last5 = ft_batch_last_lsn(dir, 5);
    assert_true(last5 > 0);
    assert_true(durable <= last5); /* batch 6 and everything after it never counted */
    if (!data_may_survive)
        assert_int_equal(ft_batch_last_lsn(dir, 6), 0);
    ft_recover_check(dir, durable, o.segment_bytes);
    wt_rmtree(dir);
}

static void test_write_eio(void **state)
{
    (void)state;
    ft_write_fault(SF_IO_FAULT_WRITE_EIO, -EIO, false);
}

static void test_fsync_eio(void **state)
{
    (void)state;
    ft_write_fault(SF_IO_FAULT_FSYNC_EIO, -EIO, true);
}

static void test_enospc(void **state)
{
    (void)state;
    ft_write_fault(SF_IO_FAULT_ENOSPC, -ENOSPC, false);
}

/* One short write: the remainder and a new fsync are queued; all records survive. */
static void test_short_write_completes(void **state)
{
    (void)state;
    char *dir = wt_mkdtemp();
    struct wal_options o = wt_opts(dir);
    o.batch_bytes_max = 64u << 10; /* multi-block batches */
    o.batch_deadline_ns = 1000000000ull;
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    assert_int_equal(sf_io_fault_arm(SF_IO_FAULT_SHORT_WRITE, 2, 1), 0);
    for (int b = 0; b < 100; b++) { /* batches of ~20 KiB, closed explicitly */
        for (int i = 0; i < 30; i++)
            assert_int_equal(wt_append_next(w, 1000), 0);
        assert_int_equal(wal_flush(w), 0);
        assert_int_equal(wt_drain(w), 0);
    }
    assert_int_equal(wt_drain(w), 0);
    struct wal_stats st;
    wal_get_stats(w, &st);
    assert_int_equal(sf_io_fault_injected(SF_IO_FAULT_SHORT_WRITE), 1);
    assert_int_equal(st.short_write_retries, 1);
    uint64_t last = wal_durable_lsn(w);
    assert_int_equal(wal_close(w), 0);
    sf_io_fault_reset();
    struct wt_check c = { .max = 1000 };
    assert_int_equal(wal_recover(&o, wt_check_cb, &c, WAL_RECOVER_READ_ONLY, NULL, NULL), 0);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.count, last);
    wt_rmtree(dir);
}

/* Writes that keep coming back short end in a sticky -EIO. */
static void test_short_write_cannot_complete(void **state)
{
    (void)state;
    char *dir = wt_mkdtemp();
    struct wal_options o = ft_opts(dir);
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    assert_int_equal(sf_io_fault_arm(SF_IO_FAULT_SHORT_WRITE, 3, 1000), 0);
    uint64_t durable = 0;
    assert_int_equal(ft_run_until_failure(w, &durable), -EIO);
    /* Writes after the third come back short. A batch of one block makes no progress at
     * all (its header never reaches the file), so bound durable by the batches up to the
     * third that are on disk: nothing written short may ever count as durable. */
    assert_true(durable <= ft_batch_last_lsn_cmp(dir, 3, true));
    assert_int_equal(wal_close(w), -EIO);
    ft_recover_check(dir, durable, o.segment_bytes);
    wt_rmtree(dir);
}

/* The helper cannot create the next segment: the log fails instead of waiting forever. */
static void test_segment_creation_fails(void **state)
{
    (void)state;
    char *dir = wt_mkdtemp();
    struct wal_options o = ft_opts(dir);
    o.segment_bytes = 64u << 10;
    assert_int_equal(sf_io_fault_arm(SF_IO_FAULT_SYNC_EIO, 0, 1000), 0);
    struct wal *w = NULL;
    /* the first segment cannot be created either */
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), -EIO);
    sf_io_fault_reset();
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    /* wait for the helper to have pre-created segment 2, then fail segment 3 */
    char p2[4200];
    wal_segment_path(dir, 0, 2, p2, sizeof(p2));
    uint64_t t0 = wt_now_ns();
    while (access(p2, F_OK) != 0 && wt_now_ns() - t0 < 5000000000ull)
        usleep(1000);
    usleep(20000);
    assert_int_equal(sf_io_fault_arm(SF_IO_FAULT_SYNC_EIO, 0, 1000), 0);
    uint64_t durable = 0;
    assert_int_equal(ft_run_until_failure(w, &durable), -EIO);
    assert_true(durable > 0); /* segment 1 and 2 were usable */
    assert_int_equal(wal_close(w), -EIO);
    ft_recover_check(dir, durable, o.segment_bytes);
    wt_rmtree(dir);
}

/* With a slow fdatasync, batches pipeline: at least two are in flight at once, and the
 * durable LSN still advances strictly in order. */
static void test_fsync_latency_two_in_flight(void **state)
{
    (void)state;
    char *dir = wt_mkdtemp();
    struct wal_options o = ft_opts(dir);
    o.batch_deadline_ns = 100000;
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    assert_int_equal(sf_io_fault_set_fsync_latency_ns(20000000), 0); /* 20 ms */
    uint32_t peak = 0;
    uint64_t t0 = wt_now_ns(), durable = 0, overloaded = 0;
    while (wt_now_ns() - t0 < 300000000ull) {
        int rc = wt_append_next(w, FT_MAX_PAYLOAD);
        overloaded += rc == -EAGAIN;
        assert_true(rc == 0 || rc == -EAGAIN);
        assert_true(wal_poll(w, wt_now_ns()) >= 0);
        assert_true(wal_durable_lsn(w) >= durable);
        durable = wal_durable_lsn(w);
        if (wal_inflight(w) > peak)
            peak = wal_inflight(w);
        usleep(200);
    }
    assert_true(peak >= 2);
    assert_true(durable > 0);
    assert_int_equal(wt_drain(w), 0);
    assert_int_equal(wal_close(w), 0);
    sf_io_fault_reset();
    print_message("fsync latency 20 ms: in-flight peak %u, overloaded %llu\n", peak,
                  (unsigned long long)overloaded);
    wt_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_write_eio, ft_setup),
        cmocka_unit_test_setup(test_fsync_eio, ft_setup),
        cmocka_unit_test_setup(test_enospc, ft_setup),
        cmocka_unit_test_setup(test_short_write_completes, ft_setup),
        cmocka_unit_test_setup(test_short_write_cannot_complete, ft_setup),
        cmocka_unit_test_setup(test_segment_creation_fails, ft_setup),
        cmocka_unit_test_setup(test_fsync_latency_two_in_flight, ft_setup),
    };
    if (!sf_io_fault_supported())
        return 77;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
