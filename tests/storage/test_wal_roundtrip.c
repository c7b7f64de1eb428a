/* test_wal_roundtrip — append/recover byte for byte, segment rotation, reopen, zeroed tail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <dirent.h>

#include "wal_test_util.h"

static uint32_t count_segments(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/wal/core-0", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    uint32_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".log") != NULL;
    closedir(d);
    return n;
}

static void write_records(const char *dir, uint64_t n, uint32_t max)
{
    struct wal_options o = wt_opts(dir);
    struct wal *w = NULL;
    struct wal_recover_report rep;
    struct wt_check c = { .max = max };
    assert_int_equal(wal_recover(&o, wt_check_cb, &c, 0, &rep, &w), 0);
    assert_int_equal(c.bad, 0);
    uint64_t target = wal_next_lsn(w) + n;
    while (wal_next_lsn(w) < target) {
        int rc = wt_append_next(w, max);
        assert_true(rc == 0 || rc == -EAGAIN);
        assert_true(wal_poll(w, wt_now_ns()) >= 0);
    }
    assert_int_equal(wt_drain(w), 0);
    assert_int_equal(wal_durable_lsn(w), target - 1);
    assert_int_equal(wal_close(w), 0);
}

static void test_roundtrip_many_segments(void **state)
{
    (void)state;
    char *dir = wt_mkdtemp();
    write_records(dir, 20000, 300);
    uint32_t nseg = count_segments(dir);
    assert_true(nseg >= 4); /* 1 MiB segments: the log rotated several times */

    struct wal_options o = wt_opts(dir);
    struct wt_check c = { .max = 300 };
    struct wal_recover_report rep;
    assert_int_equal(wal_recover(&o, wt_check_cb, &c, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
    assert_int_equal(c.count, 20000);
    assert_int_equal(c.bad, 0);
    assert_int_equal(rep.last_lsn, 20000);
    assert_int_equal(rep.tail, WAL_TAIL_CLEAN);

    /* reopen, append more, recover across the old and new segments */
    write_records(dir, 3000, 300);
    struct wt_check c2 = { .max = 300 };
    assert_int_equal(wal_recover(&o, wt_check_cb, &c2, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
    assert_int_equal(c2.count, 23000);
    assert_int_equal(c2.bad, 0);
    wt_rmtree(dir);
}

static void test_empty_log_and_large_records(void **state)
{
    (void)state;
    char *dir = wt_mkdtemp();
    struct wal_options o = wt_opts(dir);
    struct wal *w = NULL;
    struct wal_recover_report rep;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, &rep, &w), 0);
    assert_int_equal(rep.records, 0);
    assert_int_equal(wal_next_lsn(w), 1);
    assert_int_equal(wal_reserve(w, 70000), -EMSGSIZE); /* more than a batch buffer */
    /* a record bigger than batch_bytes_max but within the buffer gets a batch of its own */
    static uint8_t big[40000];
    memset(big, 0xab, sizeof(big));
    assert_int_equal(wal_reserve(w, wal_record_bytes(sizeof(big))), 0);
    assert_int_equal(wal_append(w, 1, 2, (struct wal_key){ 3, 4 }, big, sizeof(big)), 1);
    assert_int_equal(wal_reserve(w, wal_record_bytes(0)), 0);
    assert_int_equal(wal_append(w, 5, 6, (struct wal_key){ 7, 8 }, NULL, 0), 2);
    assert_int_equal(wt_drain(w), 0);
    assert_int_equal(wal_close(w), 0);
    assert_int_equal(wal_recover(&o, NULL, NULL, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
    assert_int_equal(rep.records, 2);
    assert_int_equal(rep.last_lsn, 2);
    wt_rmtree(dir);
}

/* Zeroed space reads as end of log: zero the last batches, recovery ends before them. */
static void test_zeroed_space_is_end(void **state)
{
    (void)state;
    char *dir = wt_mkdtemp();
    write_records(dir, 300, 200);
    char path[4200];
    wal_segment_path(dir, 0, 1, path, sizeof(path));
    uint8_t *img;
    size_t len;
    wt_read_file(path, &img, &len);
    uint64_t offs[256];
    uint32_t n = wt_batch_offsets(img, len, offs, 256);
    assert_true(n >= 4);
    struct wal_batch_header h;
    memcpy(&h, img + offs[n - 3], sizeof(h));
    uint64_t expect_last = h.first_lsn - 1;
    memset(img + offs[n - 3], 0, len - offs[n - 3]);
    wt_write_file(path, img, len);
    struct wal_options o = wt_opts(dir);
    struct wt_check c = { .max = 200 };
    struct wal_recover_report rep;
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, wt_check_cb, &c, 0, &rep, &w), 0);
    assert_int_equal(rep.tail, WAL_TAIL_CLEAN);
    assert_int_equal(rep.offset, offs[n - 3]);
    assert_int_equal(c.count, expect_last);
    assert_int_equal(c.bad, 0);
    assert_int_equal(wal_next_lsn(w), expect_last + 1);
    assert_int_equal(wal_close(w), 0);
    free(img);
    wt_rmtree(dir);
}

/* Tunables change batching at run time; the log stays valid. */
static void test_tunables(void **state)
{
    (void)state;
    char *dir = wt_mkdtemp();
    struct wal_options o = wt_opts(dir);
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    assert_int_equal(wal_set_inflight_max(w, 1), -EINVAL);
    assert_int_equal(wal_set_inflight_max(w, 17), -EINVAL);
    assert_int_equal(wal_set_batch_bytes_max(w, 100), -EINVAL);
    assert_int_equal(wal_set_inflight_max(w, 2), 0);
    assert_int_equal(wal_set_batch_bytes_max(w, 4096), 0);
    assert_int_equal(wal_set_batch_deadline_ns(w, 0), 0);
    for (int i = 0; i < 2000; i++) {
        int rc = wt_append_next(w, 100);
        assert_true(rc == 0 || rc == -EAGAIN);
        assert_true(wal_poll(w, wt_now_ns()) >= 0);
    }
    assert_int_equal(wt_drain(w), 0);
    struct wal_stats st;
    wal_get_stats(w, &st);
    assert_true(st.inflight_peak <= 2);
    assert_true(st.batches >= st.bytes_written / 4096 / 2); /* small batches */
    assert_int_equal(wal_close(w), 0);
    struct wt_check c = { .max = 100 };
    assert_int_equal(wal_recover(&o, wt_check_cb, &c, WAL_RECOVER_READ_ONLY, NULL, NULL), 0);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.count, st.records);
    wt_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_many_segments),
        cmocka_unit_test(test_empty_log_and_large_records),
        cmocka_unit_test(test_zeroed_space_is_end),
        cmocka_unit_test(test_tunables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
