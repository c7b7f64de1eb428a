/* test_snap_roundtrip — snapshots written in slices (sync and helper-thread modes) load back
 * byte for byte; newest two kept; commit waits for log durability; abort; misuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <dirent.h>

#include "test_snap_util.h"

static uint32_t count_files(const char *dir, uint64_t epoch, uint32_t core, const char *suffix)
{
    char cdir[SNAP_PATH_MAX];
    assert_int_equal(snap_core_path(dir, epoch, core, cdir, sizeof(cdir)), 0);
    DIR *d = opendir(cdir);
    if (!d)
        return 0;
    uint32_t n = 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += l > sl && strcmp(e->d_name + l - sl, suffix) == 0;
    }
    closedir(d);
    return n;
}

/* many partitions of awkward sizes, around the 64-byte padding and the slice size */
static void make_snap(struct st_snap *s, uint32_t n, uint32_t gen, uint64_t seed)
{
    static const uint64_t edge[] = { 0,
                                     1,
                                     63,
                                     64,
                                     65,
                                     4095,
                                     4097,
                                     SNAP_SLICE_BYTES_MAX,
                                     SNAP_SLICE_BYTES_MAX + 1,
                                     3 * SNAP_SLICE_BYTES_MAX - 5 };
    s->n = n;
    s->gen = gen;
    uint64_t r = seed;
    for (uint32_t i = 0; i < n; i++) {
        r = st_mix(r);
        s->ids[i] = (uint32_t)(i * 7919u % SNAP_PARTS_MAX); /* distinct, not in order */
        s->sizes[i] = i < sizeof(edge) / sizeof(edge[0]) ? edge[i] : r % 70000;
    }
}

static void roundtrip(enum snap_mode mode)
{
    char *dir = st_mkdtemp();
    struct snap_writer *w;
    struct snap_writer_options o = { .mode = mode, .parts_max = ST_PARTS_MAX, .queue_depth = 3 };
    assert_int_equal(snap_writer_create(dir, 3, &o, &w), 0);
    static struct st_snap s;
    make_snap(&s, 200, 1, 42);
    assert_int_equal(st_write(w, 5, &s, 7), 0);
    struct snap_commit_info ci;
    assert_int_equal(snap_writer_last(w, &ci), 0);
    assert_int_equal(ci.seq, 1);
    assert_int_equal(ci.parts, 200);
    assert_int_equal(ci.release_lsn, 0); /* no older snapshot: release nothing */
    uint64_t total = 0;
    for (uint32_t i = 0; i < s.n; i++)
        total += s.sizes[i];
    assert_int_equal(ci.data_bytes, total);
    assert_true(ci.file_bytes > total + 64u * 2 * s.n);
    struct snap_load_report rep;
    bool ok = false;
    assert_int_equal(st_load_check(dir, 5, 3, &s, &rep, &ok), 0);
    assert_true(ok);
    assert_int_equal(rep.seq, 1);
    assert_false(rep.fell_back);
    assert_int_equal(rep.parts, 200);
    assert_int_equal(rep.data_bytes, total);
    assert_int_equal(rep.rejected_count, 0);
    /* another core / epoch sees nothing */
    uint32_t calls = 0;
    assert_int_equal(snap_load(dir, 5, 2, st_count_cb, &calls, NULL), -ENOENT);
    assert_int_equal(snap_load(dir, 4, 3, st_count_cb, &calls, NULL), -ENOENT);
    assert_int_equal(calls, 0);
    snap_writer_destroy(w);
    st_rmtree(dir);
}

static void test_roundtrip_sync(void **state)
{
    (void)state;
    roundtrip(SNAP_MODE_SYNC);
}

static void test_roundtrip_thread(void **state)
{
    (void)state;
    roundtrip(SNAP_MODE_THREAD);
}

/* Four snapshots: two files remain, the newest loads, release LSN from the older kept one. */
static void test_keep_two_and_release(void **state)
{
    (void)state;
    char *dir = st_mkdtemp();
    struct snap_writer *w;
    struct snap_writer_options o = { .mode = SNAP_MODE_THREAD, .parts_max = 64 };
    assert_int_equal(snap_writer_create(dir, 0, &o, &w), 0);
    static struct st_snap s;
    for (uint32_t gen = 1; gen <= 4; gen++) {
        s.n = 16;
        s.gen = gen;
        for (uint32_t i = 0; i < s.n; i++) {
            s.ids[i] = i * 2; /* the core's partitions: even ids */
            s.sizes[i] = 1000 + gen * 100 + i;
        }
        assert_int_equal(st_write(w, 1, &s, gen), 0);
        struct snap_commit_info ci;
        assert_int_equal(snap_writer_last(w, &ci), 0);
        assert_int_equal(ci.seq, gen);
        assert_int_equal(ci.lsn_min, st_lsn(0, gen));
        assert_int_equal(ci.lsn_max, st_lsn(30, gen));
        /* fallback = generation gen-1; its smallest LSN is partition 0's */
        assert_int_equal(ci.release_lsn, gen == 1 ? 0 : st_lsn(0, gen - 1) + 1);
        assert_int_equal(ci.removed, gen >= 3 ? 1 : 0);
        assert_int_equal(count_files(dir, 1, 0, ".snap"), gen < 2 ? gen : 2);
    }
    bool ok = false;
    struct snap_load_report rep;
    assert_int_equal(st_load_check(dir, 1, 0, &s, &rep, &ok), 0);
    assert_true(ok);
    assert_int_equal(rep.seq, 4);
    assert_int_equal(rep.files, 2);
    snap_writer_destroy(w);
    st_rmtree(dir);
}

/* The commit waits until the log is durable up to the largest section LSN. */
static void test_commit_waits_for_durability(void **state)
{
    (void)state;
    char *dir = st_mkdtemp();
    struct snap_writer *w;
    struct snap_writer_options o = { .mode = SNAP_MODE_SYNC, .parts_max = 4 };
    assert_int_equal(snap_writer_create(dir, 0, &o, &w), 0);
    assert_int_equal(snap_writer_begin(w, 1), 0);
    uint8_t b[100] = { 1 };
    assert_int_equal(snap_writer_part_begin(w, 1, 500, sizeof(b)), 0);
    assert_int_equal(snap_writer_write(w, b, sizeof(b)), 0);
    assert_int_equal(snap_writer_part_end(w, 9), 0);
    assert_int_equal(snap_writer_part_begin(w, 2, 700, 0), 0); /* empty partition */
    assert_int_equal(snap_writer_part_end(w, 10), 0);
    assert_int_equal(snap_writer_commit(w, 699), -EAGAIN);
    assert_int_equal(count_files(dir, 1, 0, ".snap"), 0);
    assert_int_equal(snap_writer_commit(w, 700), 0);
    assert_int_equal(count_files(dir, 1, 0, ".snap"), 1);
    assert_int_equal(count_files(dir, 1, 0, ".tmp"), 0);
    snap_writer_destroy(w);
    st_rmtree(dir);
}

/* Abort removes the temporary file and leaves the previous snapshot the one that loads. */
static void abort_case(enum snap_mode mode)
{
    char *dir = st_mkdtemp();
    struct snap_writer *w;
    struct snap_writer_options o = { .mode = mode, .parts_max = 8 };
    assert_int_equal(snap_writer_create(dir, 1, &o, &w), 0);
    static struct st_snap s;
    s.n = 3;
    s.gen = 1;
    for (uint32_t i = 0; i < 3; i++) {
        s.ids[i] = i;
        s.sizes[i] = 5000;
    }
    assert_int_equal(st_write(w, 2, &s, 1), 0);
    assert_int_equal(snap_writer_begin(w, 2), 0);
    uint8_t b[64] = { 7 };
    assert_int_equal(snap_writer_part_begin(w, 0, 99, sizeof(b)), 0);
    assert_int_equal(snap_writer_write(w, b, sizeof(b)), 0);
    assert_int_equal(snap_writer_begin(w, 2), -EBUSY);
    int rc = snap_writer_abort(w);
    while (rc == -EINPROGRESS)
        rc = snap_writer_poll(w);
    assert_int_equal(rc, 0);
    assert_int_equal(count_files(dir, 2, 1, ".tmp"), 0);
    assert_int_equal(snap_writer_abort(w), -EINVAL);
    bool ok = false;
    struct snap_load_report rep;
    assert_int_equal(st_load_check(dir, 2, 1, &s, &rep, &ok), 0);
    assert_true(ok);
    assert_int_equal(rep.seq, 1);
    /* the next snapshot gets seq 2 and replaces nothing yet */
    s.gen = 2;
    assert_int_equal(st_write(w, 2, &s, 2), 0);
    assert_int_equal(st_load_check(dir, 2, 1, &s, &rep, &ok), 0);
    assert_true(ok);
    assert_int_equal(rep.seq, 2);
    snap_writer_destroy(w);
    st_rmtree(dir);
}

static void test_abort_sync(void **state)
{
    (void)state;
    abort_case(SNAP_MODE_SYNC);
}

static void test_abort_thread(void **state)
{
    (void)state;
    abort_case(SNAP_MODE_THREAD);
}

/* Misuse is refused with -EINVAL and leaves the snapshot usable. */
static void test_misuse(void **state)
{
    (void)state;
    char *dir = st_mkdtemp();
    struct snap_writer *w;
    struct snap_writer_options bad = { .mode = SNAP_MODE_SYNC, .parts_max = 0 };
    assert_int_equal(snap_writer_create(dir, 0, &bad, &w), -EINVAL);
    struct snap_writer_options o = { .mode = SNAP_MODE_SYNC, .parts_max = 2 };
    assert_int_equal(snap_writer_create(dir, 0, &o, &w), 0);
    uint8_t b[16] = { 0 };
    assert_int_equal(snap_writer_part_begin(w, 0, 1, 1), -EINVAL); /* not begun */
    assert_int_equal(snap_writer_commit(w, 0), -EINVAL);
    assert_int_equal(snap_writer_begin(w, 1), 0);
    assert_int_equal(snap_writer_write(w, b, 1), -EINVAL); /* no section */
    assert_int_equal(snap_writer_part_begin(w, SNAP_PARTS_MAX, 1, 1), -EINVAL);
    assert_int_equal(snap_writer_part_begin(w, 4, 1, 8), 0);
    assert_int_equal(snap_writer_part_begin(w, 5, 1, 8), -EINVAL); /* one open */
    assert_int_equal(snap_writer_write(w, b, 9), -EINVAL);         /* past total */
    assert_int_equal(snap_writer_write(w, b, 0), -EINVAL);
    assert_int_equal(snap_writer_write(w, b, 4), 0);
    assert_int_equal(snap_writer_part_end(w, 1), -EINVAL); /* 4 bytes missing */
    assert_int_equal(snap_writer_commit(w, 10), -EINVAL);  /* section open */
    assert_int_equal(snap_writer_write(w, b, 4), 0);
    assert_int_equal(snap_writer_part_end(w, 1), 0);
    assert_int_equal(snap_writer_part_begin(w, 4, 1, 8), -EINVAL); /* id again */
    assert_int_equal(snap_writer_part_begin(w, 6, 1, 0), 0);
    assert_int_equal(snap_writer_part_end(w, 2), 0);
    assert_int_equal(snap_writer_part_begin(w, 7, 1, 0), -EINVAL); /* parts_max */
    assert_int_equal(snap_writer_commit(w, 1), 0);
    uint32_t calls = 0;
    assert_int_equal(snap_load(dir, 1, 0, st_count_cb, &calls, NULL), 0);
    assert_int_equal(calls, 2);
    snap_writer_destroy(w);
    st_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_sync),
        cmocka_unit_test(test_roundtrip_thread),
        cmocka_unit_test(test_keep_two_and_release),
        cmocka_unit_test(test_commit_waits_for_durability),
        cmocka_unit_test(test_abort_sync),
        cmocka_unit_test(test_abort_thread),
        cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
