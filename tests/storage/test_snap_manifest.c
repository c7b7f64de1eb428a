/* test_snap_manifest — MANIFEST round trip and damage, the epoch protocol across 2 -> 1 -> 2
 * owner cores (mapping, and snapshots moved through checkpoints, with a crash before the
 * switch), retention LSNs and floors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <dirent.h>

#include "test_snap_util.h"

#define PARTS 16u

static struct snap_manifest *new_manifest(void)
{
    struct snap_manifest *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    return m;
}

static void map_mod(uint16_t *map, uint32_t parts, uint32_t cores)
{
    for (uint32_t p = 0; p < parts; p++)
        map[p] = (uint16_t)(p % cores);
}

static void assert_manifest_equal(const struct snap_manifest *a, const struct snap_manifest *b)
{
    assert_int_equal(a->epoch, b->epoch);
    assert_int_equal(a->created_ns, b->created_ns);
    assert_int_equal(a->cores, b->cores);
    assert_int_equal(a->parts, b->parts);
    assert_memory_equal(a->part_core, b->part_core, a->parts * sizeof(a->part_core[0]));
    assert_memory_equal(a->part_lsn, b->part_lsn, a->parts * sizeof(a->part_lsn[0]));
}

static void test_manifest_roundtrip(void **state)
{
    (void)state;
    char *dir = st_mkdtemp();
    struct snap_manifest *m = new_manifest(), *r = new_manifest();
    static uint16_t map[4096];
    map_mod(map, 4096, 3);
    assert_int_equal(snap_manifest_read(dir, r), -ENOENT);
    assert_int_equal(snap_manifest_init(m, 7, 3, 4096, map), 0);
    for (uint32_t p = 0; p < 4096; p++)
        m->part_lsn[p] = st_mix(p) >> 8;
    assert_int_equal(snap_manifest_write(dir, m), 0);
    assert_int_equal(snap_manifest_read(dir, r), 0);
    assert_manifest_equal(m, r);
    /* a second write replaces it whole; no temp file stays */
    m->epoch = 8;
    m->part_lsn[4095] = 1;
    assert_int_equal(snap_manifest_write(dir, m), 0);
    assert_int_equal(snap_manifest_read(dir, r), 0);
    assert_manifest_equal(m, r);
    char tmp[SNAP_PATH_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s/MANIFEST.tmp", dir);
    assert_int_equal(access(tmp, F_OK), -1);
    /* an invalid manifest is refused and the old one stays */
    m->part_core[5] = 3; /* core >= cores */
    assert_int_equal(snap_manifest_write(dir, m), -EINVAL);
    assert_int_equal(snap_manifest_read(dir, r), 0);
    assert_int_equal(r->part_core[5], 2);
    m->part_core[5] = 2;
    m->part_lsn[7] = UINT64_MAX; /* a floor no log reaches (fuzz_snap_load found it asserted) */
    assert_int_equal(snap_manifest_write(dir, m), -EINVAL);
    assert_int_equal(snap_manifest_read(dir, r), 0);
    assert_true(r->part_lsn[7] != UINT64_MAX);
    assert_int_equal(snap_manifest_init(m, 0, 3, 4096, map), -EINVAL); /* epoch 0 */
    assert_int_equal(snap_manifest_init(m, 1, 0, 4096, map), -EINVAL);
    assert_int_equal(snap_manifest_init(m, 1, 3, 0, map), -EINVAL);
    assert_int_equal(snap_manifest_init(m, 1, 3, SNAP_PARTS_MAX + 1, map), -EINVAL);
    free(m);
    free(r);
    st_rmtree(dir);
}

/* Every single-bit flip, every truncation and an appended byte are -EBADMSG. */
static void test_manifest_damage(void **state)
{
    (void)state;
    char *dir = st_mkdtemp();
    struct snap_manifest *m = new_manifest(), *r = new_manifest();
    uint16_t map[64];
    map_mod(map, 64, 2);
    assert_int_equal(snap_manifest_init(m, 3, 2, 64, map), 0);
    for (uint32_t p = 0; p < 64; p++)
        m->part_lsn[p] = 1000 + p;
    assert_int_equal(snap_manifest_write(dir, m), 0);
    char path[SNAP_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/MANIFEST", dir);
    size_t len = 0;
    uint8_t *good = st_read_file(path, &len);
    assert_int_equal(len, 64 + 64 * 16);
    uint8_t *copy = malloc(len + 1);
    for (size_t at = 0; at < len; at++) {
        memcpy(copy, good, len);
        copy[at] ^= (uint8_t)(1u << (at % 8));
        st_write_file(path, copy, len);
        if (snap_manifest_read(dir, r) != -EBADMSG)
            fail_msg("flip at %zu accepted", at);
    }
    for (size_t cut = 0; cut < len; cut++) {
        st_write_file(path, good, cut);
        if (snap_manifest_read(dir, r) != -EBADMSG)
            fail_msg("truncation at %zu accepted", cut);
    }
    memcpy(copy, good, len);
    copy[len] = 0;
    st_write_file(path, copy, len + 1);
    assert_int_equal(snap_manifest_read(dir, r), -EBADMSG);
    st_write_file(path, good, len);
    assert_int_equal(snap_manifest_read(dir, r), 0);
    assert_manifest_equal(m, r);
    free(copy);
    free(good);
    free(m);
    free(r);
    st_rmtree(dir);
}

/* Pure data: which core's log holds partition p in each epoch of 2 -> 1 -> 2 cores. */
static void test_epoch_mapping(void **state)
{
    (void)state;
    struct snap_manifest *e1 = new_manifest(), *e2 = new_manifest(), *e3 = new_manifest();
    uint16_t two[PARTS], one[PARTS];
    map_mod(two, PARTS, 2);
    map_mod(one, PARTS, 1);
    assert_int_equal(snap_manifest_init(e1, 1, 2, PARTS, two), 0);
    e1->part_lsn[3] = 55;
    assert_true(snap_manifest_same_layout(e1, 2, PARTS, two));
    assert_false(snap_manifest_same_layout(e1, 1, PARTS, one));
    assert_int_equal(snap_manifest_next_epoch(e1, 1, one, e2), 0);
    assert_int_equal(e2->epoch, 2);
    assert_int_equal(e2->cores, 1);
    assert_int_equal(snap_manifest_next_epoch(e2, 2, two, e3), 0);
    assert_int_equal(e3->epoch, 3);
    uint32_t out[PARTS];
    assert_int_equal(snap_manifest_core_parts(e1, 1, out, PARTS), PARTS / 2);
    for (uint32_t i = 0; i < PARTS / 2; i++)
        assert_int_equal(out[i], 2 * i + 1); /* ascending odd ids */
    assert_int_equal(snap_manifest_core_parts(e2, 0, out, PARTS), PARTS);
    assert_int_equal(snap_manifest_core_parts(e2, 1, out, PARTS), 0);
    assert_int_equal(snap_manifest_core_parts(e1, 0, out, 3), PARTS / 2); /* cap respected */
    for (uint32_t p = 0; p < PARTS; p++) {
        assert_int_equal(e1->part_core[p], p % 2);
        assert_int_equal(e2->part_core[p], 0);
        assert_int_equal(e3->part_core[p], p % 2);
        assert_int_equal(e2->part_lsn[p], 0); /* new logs: floors start at 0 */
        assert_int_equal(e3->part_lsn[p], 0);
    }
    uint16_t bad[PARTS];
    map_mod(bad, PARTS, 3);
    assert_int_equal(snap_manifest_next_epoch(e2, 2, bad, e3), -EINVAL); /* core 2 of 2 */
    free(e1);
    free(e2);
    free(e3);
}

/* ---- the epoch protocol with files --------------------------------------------------------- */

struct model {
    uint8_t *bytes[PARTS];
    uint64_t len[PARTS];
    uint64_t lsn[PARTS];
    uint32_t loaded;
    bool seen[PARTS];
};

static int model_load_cb(void *ctx, uint32_t part_id, uint64_t lsn, const void *bytes, uint64_t len,
                         uint64_t digest)
{
    struct model *m = ctx;
    if (part_id >= PARTS || m->seen[part_id] || digest != st_mix(len))
        return -EBADMSG;
    free(m->bytes[part_id]);
    m->bytes[part_id] = malloc(len + 1);
    memcpy(m->bytes[part_id], bytes, len);
    m->len[part_id] = len;
    m->lsn[part_id] = lsn;
    m->seen[part_id] = true;
    m->loaded++;
    return 0;
}

/* Snapshot the model's partitions of `core` under `man` (LSN given) into epoch man->epoch. */
static void checkpoint(const char *dir, const struct snap_manifest *man, uint32_t core,
                       struct model *mo, uint64_t lsn)
{
    struct snap_writer *w;
    struct snap_writer_options o = { .mode = SNAP_MODE_SYNC, .parts_max = PARTS };
    assert_int_equal(snap_writer_create(dir, core, &o, &w), 0);
    assert_int_equal(snap_writer_begin(w, man->epoch), 0);
    uint32_t ids[PARTS];
    uint32_t n = snap_manifest_core_parts(man, core, ids, PARTS);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t p = ids[i];
        assert_int_equal(snap_writer_part_begin(w, p, lsn, mo->len[p]), 0);
        for (uint64_t off = 0; off < mo->len[p]; off += 700) {
            uint64_t k = mo->len[p] - off < 700 ? mo->len[p] - off : 700;
            assert_int_equal(snap_writer_write(w, mo->bytes[p] + off, k), 0);
        }
        assert_int_equal(snap_writer_part_end(w, st_mix(mo->len[p])), 0);
    }
    assert_int_equal(snap_writer_commit(w, lsn), 0);
    snap_writer_destroy(w);
}

/* The recovery steps of snap.h: read, gc, load every core of the manifest's layout. */
static void recover(const char *dir, struct snap_manifest *man, struct model *got)
{
    assert_int_equal(snap_manifest_read(dir, man), 0);
    assert_true(snap_epoch_gc(dir, man->epoch, false) >= 0);
    memset(got->seen, 0, sizeof(got->seen));
    got->loaded = 0;
    for (uint32_t c = 0; c < man->cores; c++) {
        struct snap_load_report rep;
        assert_int_equal(snap_load(dir, man->epoch, c, model_load_cb, got, &rep), 0);
        assert_false(rep.fell_back);
        uint32_t ids[PARTS];
        uint32_t n = snap_manifest_core_parts(man, c, ids, PARTS);
        assert_int_equal(rep.parts, n);
        for (uint32_t i = 0; i < n; i++) {
            assert_true(got->seen[ids[i]]);
            assert_int_equal(snap_manifest_check_loaded(man, ids[i], c, got->lsn[ids[i]]), 0);
        }
    }
    assert_int_equal(got->loaded, PARTS);
}

static void assert_model_equal(const struct model *a, const struct model *b)
{
    for (uint32_t p = 0; p < PARTS; p++) {
        assert_int_equal(a->len[p], b->len[p]);
        assert_memory_equal(a->bytes[p], b->bytes[p], a->len[p]);
    }
}

static bool epoch_dir_exists(const char *dir, uint64_t epoch)
{
    char path[SNAP_PATH_MAX];
    assert_int_equal(snap_epoch_path(dir, epoch, path, sizeof(path)), 0);
    return access(path, F_OK) == 0;
}

static void free_model(struct model *m)
{
    for (uint32_t p = 0; p < PARTS; p++)
        free(m->bytes[p]);
}

static void test_epochs_two_one_two(void **state)
{
    (void)state;
    char *dir = st_mkdtemp();
    struct snap_manifest *man = new_manifest(), *next = new_manifest();
    uint16_t two[PARTS], one[PARTS];
    map_mod(two, PARTS, 2);
    map_mod(one, PARTS, 1);
    static struct model truth, got;
    for (uint32_t p = 0; p < PARTS; p++) {
        truth.len[p] = 1000 + 333 * p;
        truth.bytes[p] = malloc(truth.len[p]);
        st_fill(p, 1, truth.bytes[p], truth.len[p]);
    }
    /* epoch 1 on 2 cores: each core snapshots its partitions at its own log position */
    assert_int_equal(snap_manifest_init(man, 1, 2, PARTS, two), 0);
    assert_int_equal(snap_manifest_write(dir, man), 0);
    checkpoint(dir, man, 0, &truth, 500);
    checkpoint(dir, man, 1, &truth, 800);
    /* restart with 1 core: recover under the old layout, checkpoint under the new one */
    recover(dir, man, &got);
    assert_model_equal(&truth, &got);
    assert_int_equal(got.lsn[1], 800); /* odd partitions came from core 1's log position */
    assert_false(snap_manifest_same_layout(man, 1, PARTS, one));
    assert_int_equal(snap_manifest_next_epoch(man, 1, one, next), 0);
    checkpoint(dir, next, 0, &got, 0);
    assert_int_equal(snap_manifest_write(dir, next), 0); /* the switch point */
    assert_int_equal(snap_epoch_gc(dir, next->epoch, true), 1);
    assert_false(epoch_dir_exists(dir, 1));
    /* restart with 1 core: same layout, nothing to change */
    recover(dir, man, &got);
    assert_int_equal(man->epoch, 2);
    assert_true(snap_manifest_same_layout(man, 1, PARTS, one));
    assert_model_equal(&truth, &got);
    /* restart with 2 cores; crash after the new checkpoints, before the MANIFEST */
    assert_int_equal(snap_manifest_next_epoch(man, 2, two, next), 0);
    checkpoint(dir, next, 0, &got, 0);
    checkpoint(dir, next, 1, &got, 0);
    assert_true(epoch_dir_exists(dir, 3));
    recover(dir, man, &got); /* still epoch 2: gc removed the half-built epoch 3 */
    assert_int_equal(man->epoch, 2);
    assert_false(epoch_dir_exists(dir, 3));
    assert_model_equal(&truth, &got);
    assert_int_equal(snap_manifest_next_epoch(man, 2, two, next), 0);
    checkpoint(dir, next, 0, &got, 0);
    checkpoint(dir, next, 1, &got, 0);
    assert_int_equal(snap_manifest_write(dir, next), 0);
    assert_int_equal(snap_epoch_gc(dir, next->epoch, true), 1);
    recover(dir, man, &got);
    assert_int_equal(man->epoch, 3);
    assert_int_equal(man->cores, 2);
    assert_model_equal(&truth, &got);
    free_model(&truth);
    free_model(&got);
    free(man);
    free(next);
    st_rmtree(dir);
}

/* ---- retention ------------------------------------------------------------------------------ */

static void test_release_lsn(void **state)
{
    (void)state;
    assert_int_equal(snap_log_release_lsn(NULL, 0), 0);
    uint64_t a[] = { 5, 3, 9 };
    assert_int_equal(snap_log_release_lsn(a, 3), 4); /* records 1..3 are in every snapshot */
    uint64_t z[] = { 7, 0 };
    assert_int_equal(snap_log_release_lsn(z, 2), 1); /* an unsnapshotted partition pins all */
    struct snap_manifest *m = new_manifest();
    uint16_t two[PARTS];
    map_mod(two, PARTS, 2);
    assert_int_equal(snap_manifest_init(m, 1, 2, PARTS, two), 0);
    for (uint32_t p = 0; p < PARTS; p++)
        m->part_lsn[p] = 100 + p;
    assert_int_equal(snap_manifest_core_release_lsn(m, 0), 101);
    assert_int_equal(snap_manifest_core_release_lsn(m, 1), 102);
    assert_int_equal(snap_manifest_core_release_lsn(m, 2), 0); /* owns nothing */
    assert_int_equal(snap_manifest_check_loaded(m, 4, 0, 104), 0);
    assert_int_equal(snap_manifest_check_loaded(m, 4, 0, 103), -ESTALE);
    assert_int_equal(snap_manifest_check_loaded(m, 4, 1, 200), -EINVAL);
    assert_int_equal(snap_manifest_check_loaded(m, PARTS, 0, 200), -EINVAL);
    free(m);
}

/* Floors follow the older retained snapshot, never go down, refuse foreign partitions. */
static void test_manifest_update_floors(void **state)
{
    (void)state;
    char *dir = st_mkdtemp();
    struct snap_manifest *m = new_manifest();
    uint16_t two[PARTS];
    map_mod(two, PARTS, 2);
    assert_int_equal(snap_manifest_init(m, 4, 2, PARTS, two), 0);
    struct snap_writer *w;
    struct snap_writer_options o = { .mode = SNAP_MODE_THREAD, .parts_max = PARTS };
    assert_int_equal(snap_writer_create(dir, 1, &o, &w), 0);
    assert_int_equal(snap_writer_manifest_update(w, m), -ENOENT);
    static struct st_snap s;
    s.n = PARTS / 2;
    for (uint32_t i = 0; i < s.n; i++) {
        s.ids[i] = 2 * i + 1;
        s.sizes[i] = 100;
    }
    for (uint32_t gen = 1; gen <= 3; gen++) {
        s.gen = gen;
        assert_int_equal(st_write(w, 4, &s, gen), 0);
        assert_int_equal(snap_writer_manifest_update(w, m), 0);
        for (uint32_t i = 0; i < s.n; i++) /* older kept snapshot: gen-1 (none for gen 1) */
            assert_int_equal(m->part_lsn[s.ids[i]], gen == 1 ? 0 : st_lsn(s.ids[i], gen - 1));
        struct snap_commit_info ci;
        assert_int_equal(snap_writer_last(w, &ci), 0);
        assert_int_equal(snap_manifest_core_release_lsn(m, 1), gen == 1 ? 1 : ci.release_lsn);
    }
    for (uint32_t p = 0; p < PARTS; p += 2)
        assert_int_equal(m->part_lsn[p], 0); /* core 0's floors untouched */
    m->part_lsn[1] = UINT64_MAX - 1;
    assert_int_equal(snap_writer_manifest_update(w, m), 0);
    assert_int_equal(m->part_lsn[1], UINT64_MAX - 1); /* never lowered */
    m->epoch = 5;
    assert_int_equal(snap_writer_manifest_update(w, m), -EINVAL);
    uint16_t one[PARTS];
    map_mod(one, PARTS, 1);
    assert_int_equal(snap_manifest_init(m, 4, 1, PARTS, one), 0);
    assert_int_equal(snap_writer_manifest_update(w, m), -EINVAL); /* core 0's partitions */
    snap_writer_destroy(w);
    free(m);
    st_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_roundtrip), cmocka_unit_test(test_manifest_damage),
        cmocka_unit_test(test_epoch_mapping),      cmocka_unit_test(test_epochs_two_one_two),
        cmocka_unit_test(test_release_lsn),        cmocka_unit_test(test_manifest_update_floors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
