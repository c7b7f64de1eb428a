/*
 * test_wal_read.c — records read back by location (history back-links): wal_next_location
 * and recovery report the same (segment, offset); wal_read_record returns exactly the record
 * with a bounded number of bytes read; released and bogus locations are refused; history
 * retention by size and by age picks the right segment boundary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "wal_test_util.h"

#define N_RECORDS 3000u
#define MAX_LEN   1500u

struct loc {
    uint64_t segment, offset;
};

static struct loc g_locs[N_RECORDS + 1]; /* by LSN */

/* Append N records of up to MAX_LEN payload, keeping each one's announced location. */
static void append_all(struct wal *w)
{
    uint8_t buf[4096];
    for (uint64_t lsn = 1; lsn <= N_RECORDS; lsn++) {
        uint32_t len = wt_payload_len(lsn, MAX_LEN);
        int rc;
        while ((rc = wal_reserve(w, wal_record_bytes(len))) == -EAGAIN)
            assert_true(wal_poll(w, wt_now_ns()) >= 0);
        assert_int_equal(rc, 0);
        wal_next_location(w, &g_locs[lsn].segment, &g_locs[lsn].offset);
        wt_payload(lsn, buf, len);
        assert_int_equal(
            wal_append(w, (uint16_t)(lsn % 7), (uint32_t)(lsn % 4096), wt_key(lsn), buf, len), lsn);
    }
    assert_int_equal(wt_drain(w), 0);
}

struct loc_check {
    uint64_t count, bad;
};

static int check_loc_cb(void *ctx, const struct wal_record_view *v)
{
    struct loc_check *c = ctx;
    c->count++;
    if (v->lsn > N_RECORDS || v->segment != g_locs[v->lsn].segment ||
        v->offset != g_locs[v->lsn].offset)
        c->bad++;
    return 0;
}

static void test_read_by_location(void **state)
{
    (void)state;
    char *dir = wt_mkdtemp();
    struct wal_options o = wt_opts(dir);
    o.segment_bytes = 256u << 10; /* many segments */
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    append_all(w);
    assert_true(g_locs[N_RECORDS].segment > g_locs[1].segment + 5);

    /* every record, read by its location, is itself; small ones cost one read */
    uint8_t buf[4096], want[4096];
    struct wal_read_cache cache = { 0 };
    for (uint64_t lsn = 1; lsn <= N_RECORDS; lsn++) {
        struct sf_io_read_counters before, after;
        sf_io_read_counters_get(&before);
        struct wal_record_view v;
        assert_int_equal(wal_read_record(dir, 0, g_locs[lsn].segment, g_locs[lsn].offset, buf,
                                         sizeof(buf), &v, &cache),
                         0);
        sf_io_read_counters_get(&after);
        uint32_t len = wt_payload_len(lsn, MAX_LEN);
        wt_payload(lsn, want, len);
        assert_int_equal(v.lsn, lsn);
        assert_int_equal(v.len, len);
        assert_memory_equal(v.payload, want, len);
        assert_int_equal(v.type, lsn % 7);
        assert_true(v.key.hi == wt_key(lsn).hi && v.key.lo == wt_key(lsn).lo);
        uint64_t calls = after.calls - before.calls, bytes = after.bytes - before.bytes;
        /* (a record near the end of its file sees one more pread returning 0: EOF) */
        assert_true(calls <= 2);
        if (WAL_RECORD_HEADER_BYTES + len <= 512)
            assert_true(bytes <= 512);
        else
            assert_true(bytes <= (uint64_t)WAL_RECORD_HEADER_BYTES + len);
    }
    wal_read_close(&cache);

    /* not a record's place: misaligned, inside a record, in zeroed space, a missing file */
    struct wal_record_view v;
    uint64_t s = g_locs[10].segment, off = g_locs[10].offset;
    assert_int_equal(wal_read_record(dir, 0, s, off + 4, buf, sizeof(buf), &v, NULL), -EBADMSG);
    assert_int_equal(wal_read_record(dir, 0, s, off + 8, buf, sizeof(buf), &v, NULL), -EBADMSG);
    assert_int_equal(wal_read_record(dir, 0, g_locs[N_RECORDS].segment, o.segment_bytes - 4096, buf,
                                     sizeof(buf), &v, NULL),
                     -EBADMSG);
    assert_int_equal(wal_read_record(dir, 0, 999999, 8192, buf, sizeof(buf), &v, NULL), -ENOENT);
    assert_int_equal(wal_read_record(dir, 0, s, off, buf, 100, &v, NULL),
                     wt_payload_len(10, MAX_LEN) + WAL_RECORD_HEADER_BYTES > 100 ? -ENOSPC : 0);
    assert_int_equal(wal_close(w), 0);

    /* recovery reports the same locations */
    o.no_recycle = true; /* released segments are deleted at once */
    struct loc_check c = { 0 };
    assert_int_equal(wal_recover(&o, check_loc_cb, &c, 0, NULL, &w), 0);
    assert_int_equal(c.count, N_RECORDS);
    assert_int_equal(c.bad, 0);

    /* released segments are gone: their records read as -ENOENT */
    assert_true(wal_release_before(w, 1000) > 0);
    int got = 0;
    for (int i = 0; i < 500 && got != -ENOENT; i++) { /* the helper deletes them */
        got = wal_read_record(dir, 0, g_locs[1].segment, g_locs[1].offset, buf, sizeof(buf), &v,
                              NULL);
        if (got != -ENOENT)
            usleep(10000);
    }
    assert_int_equal(got, -ENOENT);
    assert_int_equal(wal_read_record(dir, 0, g_locs[2000].segment, g_locs[2000].offset, buf,
                                     sizeof(buf), &v, NULL),
                     0); /* past the release point: kept */
    assert_int_equal(wal_close(w), 0);
    wt_rmtree(dir);
}

static void test_retention_lsn(void **state)
{
    (void)state;
    char *dir = wt_mkdtemp();
    struct wal_options o = wt_opts(dir);
    o.segment_bytes = 256u << 10;
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    append_all(w);
    uint64_t cur = g_locs[N_RECORDS].segment, first = g_locs[1].segment;
    /* last LSN of segment id s */
    uint64_t last_of[64] = { 0 };
    for (uint64_t lsn = 1; lsn <= N_RECORDS; lsn++)
        last_of[g_locs[lsn].segment - first] = lsn;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;

    assert_int_equal(wal_retention_lsn(w, now, 0, 0), 0);               /* both off */
    assert_int_equal(wal_retention_lsn(w, now, 3600e9, 1ull << 40), 0); /* all inside */
    /* keep 3 segments' bytes: the current + 2 finished; the 3rd newest finished goes */
    uint64_t r = wal_retention_lsn(w, now, 0, 3 * o.segment_bytes);
    assert_int_equal(r, last_of[cur - 3 - first] + 1);
    /* keep 1 segment: every finished one goes */
    assert_int_equal(wal_retention_lsn(w, now, 0, o.segment_bytes), last_of[cur - 1 - first] + 1);
    /* by age: everything finished a moment ago is older than 1 ns from an hour later */
    assert_int_equal(wal_retention_lsn(w, now + 3600e9, 1, 0), last_of[cur - 1 - first] + 1);
    assert_int_equal(wal_retention_lsn(w, now - 60e9, 3600e9, 0), 0);

    /* after recovery the ages come from the files' modification times */
    assert_int_equal(wal_close(w), 0);
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    assert_int_equal(wal_retention_lsn(w, now + 3600e9, 60e9, 0), last_of[cur - 1 - first] + 1);
    assert_int_equal(wal_retention_lsn(w, now, 3600e9, 0), 0);
    assert_int_equal(wal_close(w), 0);
    wt_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_by_location),
        cmocka_unit_test(test_retention_lsn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
