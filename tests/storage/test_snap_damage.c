/* test_snap_damage — torn and bit-flipped snapshots are detected and loading falls back to the
 * previous one; both damaged is a clear error; I/O errors and power cuts while writing leave
 * the previous snapshot loadable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "sf_io.h"
#include "test_snap_util.h"

/* Two snapshots of core 0, epoch 1: A (gen 1, seq 1) and B (gen 2, seq 2). */
struct two {
    char *dir;
    struct st_snap a, b;
    char path_a[SNAP_PATH_MAX + 64], path_b[SNAP_PATH_MAX + 64];
    uint8_t *bytes_a, *bytes_b;
    size_t len_a, len_b;
};

static void make_two(struct two *t, enum snap_mode mode)
{
    memset(t, 0, sizeof(*t));
    t->dir = st_mkdtemp();
    struct snap_writer *w;
    struct snap_writer_options o = { .mode = mode, .parts_max = 32 };
    assert_int_equal(snap_writer_create(t->dir, 0, &o, &w), 0);
    for (uint32_t k = 0; k < 2; k++) {
        struct st_snap *s = k ? &t->b : &t->a;
        s->n = 12;
        s->gen = k + 1;
        for (uint32_t i = 0; i < s->n; i++) {
            s->ids[i] = 100 + i;
            s->sizes[i] = i == 3 ? 0 : 300 + 97 * i + k; /* one empty partition */
        }
        assert_int_equal(st_write(w, 1, s, k), 0);
    }
    snap_writer_destroy(w);
    st_path(t->dir, 1, 0, 1, t->path_a, sizeof(t->path_a));
    st_path(t->dir, 1, 0, 2, t->path_b, sizeof(t->path_b));
    t->bytes_a = st_read_file(t->path_a, &t->len_a);
    t->bytes_b = st_read_file(t->path_b, &t->len_b);
    assert_non_null(t->bytes_a);
    assert_non_null(t->bytes_b);
}

static void free_two(struct two *t)
{
    free(t->bytes_a);
    free(t->bytes_b);
    st_rmtree(t->dir);
}

/* B is damaged: the load must deliver exactly A and name B as rejected. */
static void expect_fallback(struct two *t, uint64_t at)
{
    struct snap_load_report rep;
    bool ok = false;
    int rc = st_load_check(t->dir, 1, 0, &t->a, &rep, &ok);
    if (rc != 0 || !ok)
        fail_msg("damage at %llu: rc %d ok %d", (unsigned long long)at, rc, ok);
    assert_int_equal(rep.seq, 1);
    assert_true(rep.fell_back);
    assert_int_equal(rep.rejected_count, 1);
    assert_int_equal(rep.rejected[0].seq, 2);
    assert_non_null(rep.rejected[0].reason);
}

static void test_intact_loads_newest(void **state)
{
    (void)state;
    struct two t;
    make_two(&t, SNAP_MODE_SYNC);
    struct snap_load_report rep;
    bool ok = false;
    assert_int_equal(st_load_check(t.dir, 1, 0, &t.b, &rep, &ok), 0);
    assert_true(ok);
    assert_false(rep.fell_back);
    assert_int_equal(rep.rejected_count, 0);
    free_two(&t);
}

/* Truncation at every offset near the ends and a stride through the middle; junk appended. */
static void test_torn_falls_back(void **state)
{
    (void)state;
    struct two t;
    make_two(&t, SNAP_MODE_THREAD);
    uint32_t tried = 0;
    for (size_t cut = 0; cut < t.len_b; cut++) {
        if (cut > 200 && cut + 200 < t.len_b && cut % 53 != 0)
            continue;
        st_write_file(t.path_b, t.bytes_b, cut);
        expect_fallback(&t, cut);
        tried++;
    }
    assert_true(tried > 400);
    uint8_t *longer = calloc(1, t.len_b + 64);
    memcpy(longer, t.bytes_b, t.len_b);
    st_write_file(t.path_b, longer, t.len_b + 64); /* zeros after a valid footer */
    expect_fallback(&t, t.len_b);
    free(longer);
    free_two(&t);
}

/* One flipped bit anywhere in the newest file (every byte of it, a different bit each). */
static void test_bit_flips_fall_back(void **state)
{
    (void)state;
    struct two t;
    make_two(&t, SNAP_MODE_SYNC);
    uint8_t *copy = malloc(t.len_b);
    for (size_t at = 0; at < t.len_b; at++) {
        memcpy(copy, t.bytes_b, t.len_b);
        copy[at] ^= (uint8_t)(1u << (at * 5 % 8));
        st_write_file(t.path_b, copy, t.len_b);
        expect_fallback(&t, at);
    }
    /* the report points at the damage: a flip in the last data byte of partition 11 */
    memcpy(copy, t.bytes_b, t.len_b);
    size_t table = t.len_b - 64 - 12 * 64;
    uint64_t off, len;
    memcpy(&off, copy + table + 11 * 64 + 24, 8);
    memcpy(&len, copy + table + 11 * 64 + 32, 8);
    copy[off + len - 1] ^= 0x10;
    st_write_file(t.path_b, copy, t.len_b);
    struct snap_load_report rep;
    bool ok = false;
    assert_int_equal(st_load_check(t.dir, 1, 0, &t.a, &rep, &ok), 0);
    assert_true(ok);
    assert_int_equal(rep.rejected[0].offset, off);
    assert_string_equal(rep.rejected[0].reason, "section data: checksum mismatch");
    free(copy);
    free_two(&t);
}

/* Both damaged: -EBADMSG, both listed, nothing delivered. Only files of the wrong name or
 * a stale .tmp: ignored. */
static void test_both_damaged(void **state)
{
    (void)state;
    struct two t;
    make_two(&t, SNAP_MODE_SYNC);
    st_write_file(t.path_b, t.bytes_b, t.len_b / 2);
    uint8_t *copy = malloc(t.len_a);
    memcpy(copy, t.bytes_a, t.len_a);
    copy[t.len_a / 2] ^= 1;
    st_write_file(t.path_a, copy, t.len_a);
    uint32_t calls = 0;
    struct snap_load_report rep;
    assert_int_equal(snap_load(t.dir, 1, 0, st_count_cb, &calls, &rep), -EBADMSG);
    assert_int_equal(calls, 0);
    assert_int_equal(rep.files, 2);
    assert_int_equal(rep.rejected_count, 2);
    assert_int_equal(rep.rejected[0].seq, 2);
    assert_int_equal(rep.rejected[1].seq, 1);
    assert_int_equal(rep.seq, 0);
    /* a valid snapshot copied under another sequence number is refused too (name check) */
    char other[SNAP_PATH_MAX + 64];
    st_path(t.dir, 1, 0, 7, other, sizeof(other));
    st_write_file(other, t.bytes_b, t.len_b);
    assert_int_equal(snap_load(t.dir, 1, 0, st_count_cb, &calls, &rep), -EBADMSG);
    assert_int_equal(rep.rejected[0].seq, 7);
    assert_int_equal(calls, 0);
    free(copy);
    free_two(&t);
}

/* An injected write error at each synchronous write of a helper-thread snapshot: the writer
 * reports -EIO, abort cleans up, the previous snapshot loads, the next snapshot succeeds. */
static void test_io_error_keeps_previous(void **state)
{
    (void)state;
    if (!sf_io_fault_supported())
        skip();
    struct two t;
    make_two(&t, SNAP_MODE_THREAD);
    struct snap_writer *w;
    struct snap_writer_options o = { .mode = SNAP_MODE_THREAD, .parts_max = 32 };
    assert_int_equal(snap_writer_create(t.dir, 0, &o, &w), 0);
    struct st_snap c = t.b;
    c.gen = 3;
    for (uint32_t skip = 0; skip < 60; skip += 3) {
        assert_int_equal(sf_io_fault_arm(SF_IO_FAULT_SYNC_EIO, skip, 1), 0);
        int rc = st_write(w, 1, &c, skip);
        bool injected = sf_io_fault_injected(SF_IO_FAULT_SYNC_EIO) > 0;
        sf_io_fault_reset();
        if (!injected) { /* more writes than skip: this one succeeded; load it */
            assert_int_equal(rc, 0);
            break;
        }
        assert_int_equal(rc, -EIO);
        rc = snap_writer_abort(w); /* open: abort; a failed commit left it idle */
        while (rc == -EINPROGRESS)
            rc = snap_writer_poll(w);
        assert_true(rc == 0 || rc == -EINVAL);
        struct snap_load_report rep;
        bool ok = false;
        assert_int_equal(st_load_check(t.dir, 1, 0, &t.b, &rep, &ok), 0);
        assert_true(ok);
        assert_int_equal(rep.rejected_count, 0);
    }
    assert_int_equal(st_write(w, 1, &c, 99), 0);
    struct snap_load_report rep;
    bool ok = false;
    assert_int_equal(st_load_check(t.dir, 1, 0, &c, &rep, &ok), 0);
    assert_true(ok);
    snap_writer_destroy(w);
    free_two(&t);
}

/* Power cut while a snapshot is half written: the temp file vanishes, B loads. Power cut right
 * after a commit returned: the new snapshot survives and loads. */
static void test_power_cut(void **state)
{
    (void)state;
    if (!sf_io_fault_supported())
        skip();
    for (int committed = 0; committed < 2; committed++) {
        struct two t;
        make_two(&t, SNAP_MODE_SYNC);
        assert_int_equal(sf_io_track_begin(), 0);
        struct snap_writer *w;
        struct snap_writer_options o = { .mode = SNAP_MODE_THREAD, .parts_max = 32 };
        assert_int_equal(snap_writer_create(t.dir, 0, &o, &w), 0);
        struct st_snap c = t.b;
        c.gen = 3;
        if (committed) {
            assert_int_equal(st_write(w, 1, &c, 5), 0);
        } else {
            c.n = 5; /* write part of it, never commit */
            assert_int_equal(snap_writer_begin(w, 1), 0);
            uint8_t buf[2000];
            for (uint32_t i = 0; i < c.n; i++) {
                st_fill(c.ids[i], c.gen, buf, c.sizes[i]);
                assert_int_equal(snap_writer_part_begin(w, c.ids[i], 1, c.sizes[i]), 0);
                int rc = c.sizes[i] ? snap_writer_write(w, buf, c.sizes[i]) : 0;
                while (rc == -EAGAIN)
                    rc = snap_writer_write(w, buf, c.sizes[i]);
                assert_int_equal(rc, 0);
                assert_int_equal(snap_writer_part_end(w, 0), 0);
            }
        }
        assert_int_equal(sf_io_power_cut_begin(), 0);
        snap_writer_destroy(w); /* the helper drains; its unlink of the tmp fails (cut) */
        struct sf_io_cut_report cut;
        assert_int_equal(sf_io_power_cut_apply(11, 0, &cut), 0);
        sf_io_fault_reset();
        struct snap_load_report rep;
        bool ok = false;
        assert_int_equal(st_load_check(t.dir, 1, 0, committed ? &c : &t.b, &rep, &ok), 0);
        assert_true(ok);
        assert_int_equal(rep.seq, committed ? 3 : 2);
        assert_int_equal(rep.rejected_count, 0);
        free_two(&t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact_loads_newest),     cmocka_unit_test(test_torn_falls_back),
        cmocka_unit_test(test_bit_flips_fall_back),     cmocka_unit_test(test_both_damaged),
        cmocka_unit_test(test_io_error_keeps_previous), cmocka_unit_test(test_power_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
