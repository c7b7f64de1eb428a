/* test_wal_corruption — torn tails at every byte, bit flips, misplaced and stale data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "wal_test_util.h"

#define CT_MAX_PAYLOAD 200u

struct ct_log {
    char *dir;
    char path[4200]; /* segment 1 */
    uint8_t *img;    /* its original bytes */
    size_t len;
    uint64_t offs[128]; /* batch offsets */
    uint32_t n;
};

static struct wal_options ct_opts(const char *dir)
{
    struct wal_options o = wt_opts(dir);
    o.segment_bytes = 256u << 10;
    o.batch_bytes_max = 4096;
    o.batch_deadline_ns = 0;
    return o;
}

/* A log whose segment 1 holds ~40 small batches. */
static void ct_make(struct ct_log *l, uint32_t records)
{
    memset(l, 0, sizeof(*l));
    l->dir = wt_mkdtemp();
    struct wal_options o = ct_opts(l->dir);
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    while (wal_next_lsn(w) <= records) {
        int rc = wt_append_next(w, CT_MAX_PAYLOAD);
        assert_true(rc == 0 || rc == -EAGAIN);
        assert_true(wal_poll(w, wt_now_ns()) >= 0);
    }
    assert_int_equal(wt_drain(w), 0);
    assert_int_equal(wal_close(w), 0);
    wal_segment_path(l->dir, 0, 1, l->path, sizeof(l->path));
    wt_read_file(l->path, &l->img, &l->len);
    l->n = wt_batch_offsets(l->img, l->len, l->offs, 128);
    assert_true(l->n >= 24);
}

static void ct_free(struct ct_log *l)
{
    free(l->img);
    wt_rmtree(l->dir);
}

static struct wal_batch_header ct_header(const struct ct_log *l, uint32_t i)
{
    struct wal_batch_header h;
    memcpy(&h, l->img + l->offs[i], sizeof(h));
    return h;
}

static void ct_pwrite(const char *path, const void *buf, size_t len, uint64_t off)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static int ct_count_cb(void *ctx, const struct wal_record_view *v)
{
    (void)v;
    (*(uint64_t *)ctx)++;
    return 0;
}

/* Expect recovery to stop with corruption reported at (segment 1, @off). */
static void ct_expect_corrupt(const struct ct_log *l, uint64_t off, uint64_t records_before)
{
    struct wal_options o = ct_opts(l->dir);
    struct wal_recover_report rep;
    uint64_t count = 0;
    int rc = wal_recover(&o, ct_count_cb, &count, WAL_RECOVER_READ_ONLY, &rep, NULL);
    if (rc != -EBADMSG || rep.tail != WAL_TAIL_CORRUPT || rep.offset != off ||
        strcmp(rep.path, l->path) != 0 || count != records_before)
        fail_msg("rc %d tail %d offset %llu (want %llu) count %llu (want %llu) reason %s", rc,
                 rep.tail, (unsigned long long)rep.offset, (unsigned long long)off,
                 (unsigned long long)count, (unsigned long long)records_before,
                 rep.reason ? rep.reason : "-");
}

/* Torn tail at every byte offset of the last two batches: exactly the complete batches
 * survive (a batch is complete once all bytes up to the end of its records landed). */
static void test_torn_tail_every_offset(void **state)
{
    (void)state;
    struct ct_log l;
    ct_make(&l, 1200);
    uint32_t first = l.n - 2;
    uint64_t from = l.offs[first], to = l.offs[l.n - 1] + ct_header(&l, l.n - 1).batch_bytes;
    struct wal_options o = ct_opts(l.dir);
    uint8_t *zero = calloc(1, to - from);
    for (uint64_t t = from; t < to; t++) {
        ct_pwrite(l.path, l.img + from, to - from, from); /* original */
        ct_pwrite(l.path, zero, to - t, t);               /* bytes from t on never landed */
        uint64_t expect = ct_header(&l, first).first_lsn - 1;
        for (uint32_t b = first; b < l.n; b++) {
            struct wal_batch_header h = ct_header(&l, b);
            uint64_t body_end = l.offs[b] + WAL_HEADER_BYTES + h.body_bytes;
            bool lost = false; /* bytes lost that were not zero anyway */
            for (uint64_t p = t; p < body_end && !lost; p++)
                lost = l.img[p] != 0;
            if (lost)
                break;
            expect = h.last_lsn;
        }
        struct wal_recover_report rep;
        uint64_t count = 0;
        int rc = wal_recover(&o, ct_count_cb, &count, WAL_RECOVER_READ_ONLY, &rep, NULL);
        if (rc != 0 || rep.last_lsn != expect || count != expect || rep.tail == WAL_TAIL_CORRUPT)
            fail_msg("tear at %llu: rc %d last %llu want %llu", (unsigned long long)t, rc,
                     (unsigned long long)rep.last_lsn, (unsigned long long)expect);
    }
    free(zero);

    /* one real truncation: tear inside the last batch, reopen, append, recover */
    uint64_t t = l.offs[l.n - 1] + 100;
    ct_pwrite(l.path, l.img + from, to - from, from);
    uint8_t junk[64];
    memset(junk, 0x5a, sizeof(junk));
    ct_pwrite(l.path, junk, sizeof(junk), t); /* garbage where the tear happened */
    struct wal *w = NULL;
    struct wal_recover_report rep;
    struct wt_check c = { .max = CT_MAX_PAYLOAD };
    assert_int_equal(wal_recover(&o, wt_check_cb, &c, 0, &rep, &w), 0);
    assert_int_equal(rep.tail, WAL_TAIL_TORN);
    assert_int_equal(rep.offset, l.offs[l.n - 1]);
    assert_true(rep.truncated_bytes > 0);
    assert_int_equal(c.bad, 0);
    uint64_t kept = ct_header(&l, l.n - 2).last_lsn;
    assert_int_equal(c.count, kept);
    for (int i = 0; i < 500; i++) {
        int r = wt_append_next(w, CT_MAX_PAYLOAD);
        assert_true(r == 0 || r == -EAGAIN);
        assert_true(wal_poll(w, wt_now_ns()) >= 0);
    }
    assert_int_equal(wt_drain(w), 0);
    uint64_t last = wal_durable_lsn(w);
    assert_int_equal(wal_close(w), 0);
    struct wt_check c2 = { .max = CT_MAX_PAYLOAD };
    assert_int_equal(wal_recover(&o, wt_check_cb, &c2, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
    assert_int_equal(c2.bad, 0);
    assert_int_equal(c2.count, last);
    ct_free(&l);
}

/* Bit flips at every byte of a middle batch (header, records, record padding; all 8 bits
 * of the header bytes): 100% detected and reported with file and offset. */
static void test_bit_flips_middle_batch(void **state)
{
    (void)state;
    struct ct_log l;
    ct_make(&l, 1200);
    uint32_t m = l.n / 2;
    struct wal_batch_header h = ct_header(&l, m);
    uint64_t off = l.offs[m];
    uint64_t end = off + WAL_HEADER_BYTES + h.body_bytes;
    for (uint64_t p = off; p < end; p++) {
        /* every bit of the header; one bit per byte (rotating) of the records */
        for (int bit = 0; bit < 8; bit++) {
            if (p >= off + WAL_HEADER_BYTES && bit != (int)(p % 8))
                continue;
            uint8_t v = l.img[p] ^ (uint8_t)(1u << bit);
            ct_pwrite(l.path, &v, 1, p);
            ct_expect_corrupt(&l, off, h.first_lsn - 1);
        }
        ct_pwrite(l.path, &l.img[p], 1, p);
    }
    ct_free(&l);
}

/* A whole batch copied over a middle one (misplaced), a record copied over another
 * (misplaced record), and a batch of the segment's older generation (stale). */
static void test_misplaced_and_stale(void **state)
{
    (void)state;
    struct ct_log l;
    ct_make(&l, 1200);
    uint32_t m = l.n / 2;
    struct wal_batch_header hm = ct_header(&l, m);
    /* batch 3's block over batch m */
    ct_pwrite(l.path, l.img + l.offs[3], WAL_BLOCK_BYTES, l.offs[m]);
    ct_expect_corrupt(&l, l.offs[m], hm.first_lsn - 1);
    ct_pwrite(l.path, l.img + l.offs[m], WAL_BLOCK_BYTES, l.offs[m]);

    /* a record of batch m-1 over a same-size record of batch m (valid crc, wrong place) */
    struct wal_batch_header hp = ct_header(&l, m - 1);
    bool done = false;
    uint64_t pa = l.offs[m - 1] + WAL_HEADER_BYTES;
    for (uint32_t a = 0; a < hp.record_count && !done; a++) {
        struct wal_record_header ra;
        memcpy(&ra, l.img + pa, sizeof(ra));
        uint64_t pb = l.offs[m] + WAL_HEADER_BYTES;
        for (uint32_t b = 0; b < hm.record_count && !done; b++) {
            struct wal_record_header rb;
            memcpy(&rb, l.img + pb, sizeof(rb));
            if (wal_record_bytes(rb.payload_len) == wal_record_bytes(ra.payload_len)) {
                ct_pwrite(l.path, l.img + pa, wal_record_bytes(ra.payload_len), pb);
                ct_expect_corrupt(&l, l.offs[m], hm.first_lsn - 1);
                ct_pwrite(l.path, l.img + pb, wal_record_bytes(ra.payload_len), pb);
                done = true;
            }
            pb += wal_record_bytes(rb.payload_len);
        }
        pa += wal_record_bytes(ra.payload_len);
    }
    assert_true(done);

    /* a batch from an older generation of this segment: same id, generation - 1 */
    uint8_t blk[WAL_BLOCK_BYTES];
    memcpy(blk, l.img + l.offs[m], sizeof(blk));
    struct wal_batch_header hs;
    memcpy(&hs, blk, sizeof(hs));
    hs.generation = 0;
    hs.crc = wal_header_crc(&hs);
    memcpy(blk, &hs, sizeof(hs));
    ct_pwrite(l.path, blk, sizeof(blk), l.offs[m]);
    ct_expect_corrupt(&l, l.offs[m], hm.first_lsn - 1);
    ct_free(&l);
}

/* Salvage skips the corrupt batch and reports it; read-only keeps the files untouched. */
static void test_salvage(void **state)
{
    (void)state;
    struct ct_log l;
    ct_make(&l, 1200);
    uint32_t m = l.n / 2;
    struct wal_batch_header hm = ct_header(&l, m);
    uint8_t v = l.img[l.offs[m] + 100] ^ 1;
    ct_pwrite(l.path, &v, 1, l.offs[m] + 100);
    struct wal_options o = ct_opts(l.dir);
    struct wal_recover_report rep;
    uint64_t count = 0;
    assert_int_equal(wal_recover(&o, ct_count_cb, &count,
                                 WAL_RECOVER_SALVAGE | WAL_RECOVER_READ_ONLY, &rep, NULL),
                     0);
    assert_int_equal(rep.tail, WAL_TAIL_SALVAGED);
    assert_int_equal(rep.offset, l.offs[m]);
    assert_true(rep.salvage_skipped_bytes >= WAL_BLOCK_BYTES);
    assert_int_equal(count, rep.records);
    assert_true(count < 1200 && count >= 1200 - hm.record_count - 4 * 40);
    ct_free(&l);
}

/* Recycled segments: renamed, generation bumped, old batches stay beyond the tail and read
 * as end of log; an old-generation batch in the middle is detected. */
static void test_recycled_segments(void **state)
{
    (void)state;
    char *dir = wt_mkdtemp();
    struct wal_options o = ct_opts(dir);
    o.segment_bytes = 64u << 10;
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    uint64_t released_at = 0;
    struct wal_stats st = { 0 };
    uint64_t t0 = wt_now_ns();
    while (st.segments_recycled < 3 && wt_now_ns() - t0 < 20000000000ull) {
        int rc = wt_append_next(w, CT_MAX_PAYLOAD);
        assert_true(rc == 0 || rc == -EAGAIN);
        assert_true(wal_poll(w, wt_now_ns()) >= 0);
        if (wal_durable_lsn(w) > released_at + 400) {
            released_at = wal_durable_lsn(w);
            wal_release_before(w, released_at - 200);
        }
        wal_get_stats(w, &st);
    }
    assert_true(st.segments_recycled >= 3);
    assert_int_equal(wt_drain(w), 0);
    uint64_t last = wal_durable_lsn(w);
    assert_int_equal(wal_close(w), 0);
    struct wal_recover_report rep;
    struct wt_check c = { .max = CT_MAX_PAYLOAD };
    c.first = 0;
    /* the oldest records are gone: start checking from whatever comes first */
    uint64_t count = 0;
    assert_int_equal(wal_recover(&o, ct_count_cb, &count, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
    assert_int_equal(rep.last_lsn, last);
    assert_true(count > 0 && count < last);
    c.first = last - count + 1;
    assert_int_equal(wal_recover(&o, wt_check_cb, &c, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.count, count);
    wt_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torn_tail_every_offset),
        cmocka_unit_test(test_bit_flips_middle_batch),
        cmocka_unit_test(test_misplaced_and_stale),
        cmocka_unit_test(test_salvage),
        cmocka_unit_test(test_recycled_segments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
