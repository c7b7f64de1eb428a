/* test_wal_header_flips — a damaged batch header is never silent loss: for every byte of
 * every batch header of the newest segment (and a sample of an older one), xor with a few
 * patterns; recovery must either stop with -EBADMSG naming the file and offset, or replay
 * exactly every record written, and never reopen the log below its last record.
 * SF_TEST_FLIP_PATTERNS=1 runs one pattern instead of three (slow sanitizer builds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <dirent.h>

#include "wal_test_util.h"

#define HF_MAX_PAYLOAD   200u
#define HF_SEGMENT_BYTES (64u << 10)
#define HF_SEGMENTS_MAX  16u
#define HF_BATCHES_MAX   64u
#define HF_PATH_BYTES    4200u

static const uint8_t hf_patterns[] = { 0x01, 0x80, 0xff };

struct hf_segment {
    uint64_t id;
    char path[HF_PATH_BYTES];
    uint8_t *img; /* pristine bytes */
    size_t len;
    uint64_t offs[HF_BATCHES_MAX];
    uint32_t n; /* batches */
};

/* A written log: its directory (never touched again) and a work copy that flips go to. */
struct hf_log {
    char *dir;
    char *work;
    struct hf_segment segs[HF_SEGMENTS_MAX];
    uint32_t nseg;
    uint64_t first_lsn, last_lsn; /* what a recovery of the pristine log replays */
    uint32_t patterns;
};

static struct wal_options hf_opts(const char *dir)
{
    struct wal_options o = wt_opts(dir);
    o.segment_bytes = HF_SEGMENT_BYTES;
    o.batch_bytes_max = 4096;
    o.batch_deadline_ns = 0; /* every poll closes a batch: many batches, up to 4 in flight */
    return o;
}

/* Append (polling, up to 4 batches in flight) until the next record would go to segment
 * @seg at or past @offset; then drain and close. */
static void hf_write(const char *dir, bool no_recycle, uint64_t seg, uint64_t offset,
                     uint64_t release_below)
{
    struct wal_options o = hf_opts(dir);
    o.no_recycle = no_recycle;
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &w), 0);
    for (;;) {
        int rc = wt_append_next(w, HF_MAX_PAYLOAD);
        assert_true(rc == 0 || rc == -EAGAIN);
        if (rc == 0) {
            uint64_t s, off;
            wal_next_location(w, &s, &off);
            if (s > seg || (s == seg && off >= offset))
                break;
        }
        assert_true(wal_poll(w, wt_now_ns()) >= 0);
    }
    assert_int_equal(wt_drain(w), 0);
    if (release_below) {
        assert_true(wal_release_before(w, release_below) > 0);
        usleep(200000); /* the helper deletes them */
    }
    assert_int_equal(wal_close(w), 0);
}

static int hf_cmp_seg(const void *a, const void *b)
{
    uint64_t x = ((const struct hf_segment *)a)->id, y = ((const struct hf_segment *)b)->id;
    return x < y ? -1 : x > y;
}

/* Load the segment files of @l->dir (pristine images and batch offsets). */
static void hf_load(struct hf_log *l)
{
    char wdir[HF_PATH_BYTES];
    snprintf(wdir, sizeof(wdir), "%s/wal/core-0", l->dir);
    DIR *d = opendir(wdir);
    assert_non_null(d);
    struct dirent *e;
    l->nseg = 0;
    while ((e = readdir(d))) {
        unsigned long long id;
        if (strlen(e->d_name) != 20 || sscanf(e->d_name, "%16llx.log", &id) != 1)
            continue;
        assert_true(l->nseg < HF_SEGMENTS_MAX);
        struct hf_segment *s = &l->segs[l->nseg++];
        s->id = id;
        wal_segment_path(l->dir, 0, id, s->path, sizeof(s->path));
        wt_read_file(s->path, &s->img, &s->len);
        s->n = wt_batch_offsets(s->img, s->len, s->offs, HF_BATCHES_MAX);
    }
    closedir(d);
    qsort(l->segs, l->nseg, sizeof(l->segs[0]), hf_cmp_seg);
}

/* Make the work directory an exact copy of the pristine log. */
static void hf_reset_work(struct hf_log *l)
{
    char cmd[3 * HF_PATH_BYTES];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", l->work, l->dir, l->work);
    assert_int_equal(system(cmd), 0);
}

static void hf_work_path(const struct hf_log *l, const struct hf_segment *s, char *buf, size_t len)
{
    wal_segment_path(l->work, 0, s->id, buf, (unsigned)len);
}

static void hf_pwrite(const char *path, const void *buf, size_t len, uint64_t off)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static void hf_make(struct hf_log *l, bool no_recycle, uint64_t seg, uint64_t offset, bool release)
{
    memset(l, 0, sizeof(*l));
    l->dir = wt_mkdtemp();
    char *w = wt_mkdtemp();
    l->work = w;
    const char *env = getenv("SF_TEST_FLIP_PATTERNS");
    l->patterns = env && atoi(env) >= 1 && atoi(env) <= 3 ? (uint32_t)atoi(env) : 3;
    hf_write(l->dir, no_recycle, seg, offset, 0);
    if (release) { /* release everything the log lets go of */
        struct wal_options o = hf_opts(l->dir);
        o.no_recycle = no_recycle;
        struct wal *wl = NULL;
        assert_int_equal(wal_recover(&o, NULL, NULL, 0, NULL, &wl), 0);
        uint64_t last = wal_next_lsn(wl) - 1;
        wal_release_before(wl, last + 1);
        usleep(200000);
        assert_int_equal(wal_close(wl), 0);
    }
    hf_load(l);
    struct wal_options o = hf_opts(l->dir);
    struct wt_check c = { .max = HF_MAX_PAYLOAD, .any_start = true };
    struct wal_recover_report rep;
    assert_int_equal(wal_recover(&o, wt_check_cb, &c, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
    assert_int_equal(c.bad, 0);
    assert_true(c.count > 0);
    l->first_lsn = c.first_seen;
    l->last_lsn = rep.last_lsn;
    assert_int_equal(c.first_seen + c.count - 1, rep.last_lsn);
    hf_reset_work(l);
}

static void hf_free(struct hf_log *l)
{
    for (uint32_t i = 0; i < l->nseg; i++)
        free(l->segs[i].img);
    wt_rmtree(l->dir);
    wt_rmtree(l->work);
}

/* The newest segment holding batches. */
static struct hf_segment *hf_newest(struct hf_log *l)
{
    for (uint32_t i = l->nseg; i-- > 0;)
        if (l->segs[i].n > 0)
            return &l->segs[i];
    fail_msg("no segment with batches");
    return NULL;
}

/* Read-only recovery of the work copy: -EBADMSG naming a file of the log and an offset in
 * it, or every record exactly. */
static void hf_check_ro(const struct hf_log *l, const char *what, uint64_t pos)
{
    struct wal_options o = hf_opts(l->work);
    struct wt_check c = { .max = HF_MAX_PAYLOAD, .any_start = true };
    struct wal_recover_report rep;
    int rc = wal_recover(&o, wt_check_cb, &c, WAL_RECOVER_READ_ONLY, &rep, NULL);
    if (rc == -EBADMSG) {
        struct stat st;
        if (rep.tail != WAL_TAIL_CORRUPT || !rep.reason || stat(rep.path, &st) != 0 ||
            rep.offset >= (uint64_t)st.st_size || strncmp(rep.path, l->work, strlen(l->work)))
            fail_msg("%s byte %llu: -EBADMSG without a place: tail %d path '%s' offset %llu", what,
                     (unsigned long long)pos, rep.tail, rep.path, (unsigned long long)rep.offset);
        return;
    }
    if (rc != 0 || c.bad != 0 || c.count != l->last_lsn - l->first_lsn + 1 ||
        (c.count > 0 && c.first_seen != l->first_lsn) || rep.last_lsn != l->last_lsn)
        fail_msg("%s byte %llu: rc %d, replayed %llu records from lsn %llu to %llu (want "
                 "%llu..%llu), bad %llu, tail %d (%s at %s:%llu)",
                 what, (unsigned long long)pos, rc, (unsigned long long)c.count,
                 (unsigned long long)c.first_seen, (unsigned long long)rep.last_lsn,
                 (unsigned long long)l->first_lsn, (unsigned long long)l->last_lsn,
                 (unsigned long long)c.bad, rep.tail, rep.reason ? rep.reason : "-", rep.path,
                 (unsigned long long)rep.offset);
}

/* Flip every byte of the header of batch @b of segment @s with each pattern. */
static uint32_t hf_flip_header(const struct hf_log *l, const struct hf_segment *s, uint32_t b,
                               uint32_t stride)
{
    char path[HF_PATH_BYTES], what[64];
    hf_work_path(l, s, path, sizeof(path));
    uint32_t runs = 0;
    for (uint64_t p = s->offs[b]; p < s->offs[b] + WAL_HEADER_BYTES; p += stride) {
        for (uint32_t k = 0; k < l->patterns; k++) {
            uint8_t v = s->img[p] ^ hf_patterns[k];
            hf_pwrite(path, &v, 1, p);
            snprintf(what, sizeof(what), "segment %llu batch %u xor 0x%02x",
                     (unsigned long long)s->id, b, hf_patterns[k]);
            hf_check_ro(l, what, p);
            runs++;
        }
        hf_pwrite(path, &s->img[p], 1, p);
    }
    return runs;
}

/* Read-write recovery after one flip at @pos of segment @s (fresh work copy): either
 * -EBADMSG with every file untouched, or every record and a log that continues after the
 * last one (appends, then a read-only recovery sees them all). */
static void hf_check_rw(struct hf_log *l, const struct hf_segment *s, uint64_t pos)
{
    hf_reset_work(l);
    char path[HF_PATH_BYTES];
    hf_work_path(l, s, path, sizeof(path));
    uint8_t v = s->img[pos] ^ 0x01;
    hf_pwrite(path, &v, 1, pos);
    uint8_t *before = NULL;
    size_t before_len = 0;
    wt_read_file(path, &before, &before_len);
    struct wal_options o = hf_opts(l->work);
    struct wt_check c = { .max = HF_MAX_PAYLOAD, .any_start = true };
    struct wal_recover_report rep;
    struct wal *w = NULL;
    int rc = wal_recover(&o, wt_check_cb, &c, 0, &rep, &w);
    if (rc == -EBADMSG) {
        assert_null(w);
        uint8_t *after = NULL;
        size_t after_len = 0;
        wt_read_file(path, &after, &after_len);
        if (after_len != before_len || memcmp(after, before, before_len) != 0)
            fail_msg("segment %llu byte %llu: -EBADMSG but the file changed",
                     (unsigned long long)s->id, (unsigned long long)pos);
        free(after);
    } else {
        if (rc != 0 || c.bad || c.count != l->last_lsn - l->first_lsn + 1 ||
            wal_next_lsn(w) != l->last_lsn + 1)
            fail_msg("segment %llu byte %llu: rw recovery rc %d, %llu records, next lsn %llu "
                     "(want %llu)",
                     (unsigned long long)s->id, (unsigned long long)pos, rc,
                     (unsigned long long)c.count, (unsigned long long)(w ? wal_next_lsn(w) : 0),
                     (unsigned long long)l->last_lsn + 1);
        for (int i = 0; i < 50; i++) {
            int r = wt_append_next(w, HF_MAX_PAYLOAD);
            assert_true(r == 0 || r == -EAGAIN);
            assert_true(wal_poll(w, wt_now_ns()) >= 0);
        }
        assert_int_equal(wt_drain(w), 0);
        uint64_t last = wal_durable_lsn(w);
        assert_int_equal(wal_close(w), 0);
        struct wt_check c2 = { .max = HF_MAX_PAYLOAD, .any_start = true };
        assert_int_equal(wal_recover(&o, wt_check_cb, &c2, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
        assert_int_equal(c2.bad, 0);
        assert_int_equal(rep.last_lsn, last);
        assert_int_equal(c2.first_seen, l->first_lsn);
    }
    free(before);
    hf_reset_work(l);
}

/* Several segments, the newest partly filled: every byte of every batch header of the
 * newest segment, every 5th byte of three batch headers of an older one. */
static void test_flip_newest_segment_headers(void **state)
{
    (void)state;
    struct hf_log l;
    hf_make(&l, false, 5, 10 * WAL_BLOCK_BYTES, false);
    struct hf_segment *s = hf_newest(&l);
    assert_true(s->id >= 4 && s->n >= 8);
    uint32_t runs = 0;
    for (uint32_t b = 0; b < s->n; b++)
        runs += hf_flip_header(&l, s, b, 1);
    const struct hf_segment *old = &l.segs[1];
    assert_true(old->n >= 10);
    uint32_t sample[3] = { 0, old->n / 2, old->n - 1 };
    for (uint32_t i = 0; i < 3; i++)
        runs += hf_flip_header(&l, old, sample[i], 5);
    /* read-write: the first, a middle and the last batch of the newest segment */
    uint32_t rw[3] = { 0, s->n / 2, s->n - 1 };
    for (uint32_t i = 0; i < 3; i++)
        for (uint64_t p = 0; p < WAL_HEADER_BYTES; p += 13)
            hf_check_rw(&l, s, s->offs[rw[i]] + p);
    print_message("%u read-only recoveries of flipped headers\n", runs);
    hf_free(&l);
}

/* Older segments released (deleted at once): the newest segment holds only a few
 * batches; a damaged first batch must not make the log restart at LSN 1. */
static void test_flip_after_release(void **state)
{
    (void)state;
    struct hf_log l;
    hf_make(&l, true, 4, 3 * WAL_BLOCK_BYTES, true);
    struct hf_segment *s = hf_newest(&l);
    assert_true(l.first_lsn > 1);
    uint32_t runs = 0;
    for (uint32_t b = 0; b < s->n; b++)
        runs += hf_flip_header(&l, s, b, 1);
    for (uint32_t i = 0; i < l.nseg; i++)
        if (&l.segs[i] != s && l.segs[i].n > 0)
            runs += hf_flip_header(&l, &l.segs[i], 0, 1);
    for (uint64_t p = 0; p < WAL_HEADER_BYTES; p += 7)
        hf_check_rw(&l, s, s->offs[0] + p);
    print_message("%u read-only recoveries of flipped headers\n", runs);
    hf_free(&l);
}

/* Only the newest segment is left (a log released by a version that let every finished
 * segment go): damage to its first batch must not restart the log at LSN 1 either. */
static void test_flip_only_segment_left(void **state)
{
    (void)state;
    struct hf_log l;
    hf_make(&l, false, 4, 3 * WAL_BLOCK_BYTES, false);
    struct hf_segment *s = hf_newest(&l);
    for (uint32_t i = 0; i < l.nseg; i++)
        if (l.segs[i].id < s->id)
            assert_int_equal(unlink(l.segs[i].path), 0);
    uint64_t keep_id = s->id;
    for (uint32_t i = 0; i < l.nseg; i++)
        free(l.segs[i].img);
    hf_load(&l);
    s = hf_newest(&l);
    assert_int_equal(s->id, keep_id);
    struct wal_options o = hf_opts(l.dir);
    struct wt_check c = { .max = HF_MAX_PAYLOAD, .any_start = true };
    struct wal_recover_report rep;
    assert_int_equal(wal_recover(&o, wt_check_cb, &c, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
    l.first_lsn = c.first_seen;
    l.last_lsn = rep.last_lsn;
    assert_true(l.first_lsn > 1 && c.bad == 0);
    hf_reset_work(&l);
    uint32_t runs = 0;
    for (uint32_t b = 0; b < s->n; b++)
        runs += hf_flip_header(&l, s, b, 1);
    for (uint64_t p = 0; p < WAL_HEADER_BYTES; p += 7)
        hf_check_rw(&l, s, s->offs[0] + p);
    print_message("%u read-only recoveries of flipped headers\n", runs);
    hf_free(&l);
}

/* The segment header (block 0) of the newest segment: every byte, one pattern. */
static void test_flip_segment_header(void **state)
{
    (void)state;
    struct hf_log l;
    hf_make(&l, false, 3, 6 * WAL_BLOCK_BYTES, false);
    struct hf_segment *s = hf_newest(&l);
    char path[HF_PATH_BYTES];
    hf_work_path(&l, s, path, sizeof(path));
    for (uint64_t p = 0; p < WAL_HEADER_BYTES; p++) {
        uint8_t v = s->img[p] ^ 0x01;
        hf_pwrite(path, &v, 1, p);
        hf_check_ro(&l, "segment header", p);
        hf_pwrite(path, &s->img[p], 1, p);
    }
    hf_check_rw(&l, s, 8);
    hf_free(&l);
}

/* Release keeps the newest finished segment; lsn_floor stops a log that ends below it. */
static void test_release_keeps_base_and_floor(void **state)
{
    (void)state;
    struct hf_log l;
    hf_make(&l, true, 4, 3 * WAL_BLOCK_BYTES, true);
    struct hf_segment *s = hf_newest(&l);
    bool prev = false;
    for (uint32_t i = 0; i < l.nseg; i++)
        prev = prev || (l.segs[i].id + 1 == s->id && l.segs[i].n > 0);
    assert_true(prev);
    struct wal_options o = hf_opts(l.work);
    struct wal_recover_report rep;
    o.lsn_floor = l.last_lsn;
    assert_int_equal(wal_recover(&o, NULL, NULL, WAL_RECOVER_READ_ONLY, &rep, NULL), 0);
    o.lsn_floor = l.last_lsn + 1;
    assert_int_equal(wal_recover(&o, NULL, NULL, WAL_RECOVER_READ_ONLY, &rep, NULL), -EBADMSG);
    assert_int_equal(rep.tail, WAL_TAIL_CORRUPT);
    struct wal *w = NULL;
    assert_int_equal(wal_recover(&o, NULL, NULL, 0, &rep, &w), -EBADMSG);
    assert_null(w);
    hf_free(&l);
}

/* Salvage over a damaged batch and a damaged segment header after it: it ends (every
 * resume is past the damage), says where, and counts each file once. */
static void test_salvage_ends(void **state)
{
    (void)state;
    struct hf_log l;
    hf_make(&l, false, 4, 6 * WAL_BLOCK_BYTES, false);
    struct hf_segment *s = hf_newest(&l), *mid = &l.segs[1];
    char path[HF_PATH_BYTES];
    hf_work_path(&l, mid, path, sizeof(path));
    uint8_t v = mid->img[mid->offs[2] + 100] ^ 0x01; /* a record of a middle batch */
    hf_pwrite(path, &v, 1, mid->offs[2] + 100);
    hf_work_path(&l, s, path, sizeof(path));
    v = s->img[20] ^ 0x01; /* the newest segment's header */
    hf_pwrite(path, &v, 1, 20);
    struct wal_options o = hf_opts(l.work);
    struct wt_check c = { .max = HF_MAX_PAYLOAD, .any_start = true };
    struct wal_recover_report rep;
    assert_int_equal(wal_recover(&o, NULL, NULL, WAL_RECOVER_READ_ONLY, &rep, NULL), -EBADMSG);
    assert_int_equal(
        wal_recover(&o, wt_check_cb, &c, WAL_RECOVER_SALVAGE | WAL_RECOVER_READ_ONLY, &rep, NULL),
        0);
    assert_int_equal(rep.tail, WAL_TAIL_SALVAGED);
    assert_true(rep.segments <= l.nseg);
    assert_true(c.count > 0 && c.count < l.last_lsn - l.first_lsn + 1);
    hf_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flip_newest_segment_headers),
        cmocka_unit_test(test_flip_after_release),
        cmocka_unit_test(test_flip_only_segment_left),
        cmocka_unit_test(test_flip_segment_header),
        cmocka_unit_test(test_release_keeps_base_and_floor),
        cmocka_unit_test(test_salvage_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
