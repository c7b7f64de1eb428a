/* test_table: workflow table insert/find/delete, exact capacity, many keys, iteration,
 * layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "sf_mem.h"
#include "wf_table.h"

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static struct wf_key rng_key(void)
{
    struct wf_key k = { rng_next(), rng_next() };
    return k;
}

struct table_mem {
    struct wf_table *t;
    size_t bytes;
};

static struct table_mem table_new(uint32_t capacity)
{
    struct table_mem m = { NULL, wf_table_mem_size(capacity) };
    assert_true(m.bytes > 0);
    m.t = sf_mem_alloc(m.bytes, NULL);
    assert_non_null(m.t);
    assert_int_equal(wf_table_init(m.t, m.bytes, capacity), 0);
    return m;
}

static void table_free(struct table_mem *m)
{
    sf_mem_free(m->t, m->bytes);
    m->t = NULL;
}

static void test_table_init_validation(void **state)
{
    (void)state;
    assert_int_equal(wf_table_mem_size(0), 0);
    assert_int_equal(wf_table_mem_size(WF_TABLE_CAPACITY_MAX + 1u), 0);
    struct table_mem m = table_new(100);
    assert_int_equal(wf_table_init(m.t, m.bytes - 1, 100), -EINVAL);
    assert_int_equal(wf_table_init((struct wf_table *)((char *)m.t + 8), m.bytes - 8, 10), -EINVAL);
    assert_int_equal(wf_table_init(m.t, m.bytes, 0), -EINVAL);
    assert_int_equal(wf_table_init(m.t, m.bytes, 100), 0);
    assert_int_equal(wf_table_count(m.t), 0);
    assert_int_equal(wf_table_capacity(m.t), 100);
    table_free(&m);
}

/* Exactly capacity keys fit, then -ENOSPC; a present key gives -EEXIST, even when full. */
static void test_table_exact_capacity(void **state)
{
    (void)state;
    const uint32_t caps[] = { 1, 2, 3, 7, 10, 100, 1000, 25000, 100003 };
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        uint32_t cap = caps[c];
        rng_state = 1000 + cap;
        struct table_mem m = table_new(cap);
        struct wf_key *keys = calloc(cap, sizeof(*keys));
        assert_non_null(keys);
        for (uint32_t i = 0; i < cap; i++) {
            keys[i] = rng_key();
            assert_int_equal(wf_table_insert(m.t, keys[i], i), 0);
            assert_int_equal(wf_table_insert(m.t, keys[i], 7), -EEXIST);
        }
        assert_int_equal(wf_table_count(m.t), cap);
        assert_int_equal(wf_table_insert(m.t, rng_key(), cap), -ENOSPC);
        assert_int_equal(wf_table_insert(m.t, keys[cap / 2], 1), -EEXIST);
        assert_int_equal(wf_table_count(m.t), cap);
        assert_int_equal(wf_table_verify(m.t), 0);
        for (uint32_t i = 0; i < cap; i++)
            assert_int_equal(wf_table_find(m.t, keys[i]), i);
        /* Bytes per key at full load: 64 / (3 * 0.9) plus slack, at most ~27 B when large. */
        if (cap >= 25000)
            assert_true((double)m.bytes / cap < 25.0);
        free(keys);
        table_free(&m);
    }
}

/* Keys that differ in one half only are different identities. */
static void test_table_half_collisions(void **state)
{
    (void)state;
    struct table_mem m = table_new(64);
    struct wf_key a = { 42, 1 }, b = { 42, 2 }, c = { 43, 1 };
    assert_int_equal(wf_table_insert(m.t, a, 0), 0);
    assert_int_equal(wf_table_find(m.t, b), WF_REC_NONE);
    assert_int_equal(wf_table_find(m.t, c), WF_REC_NONE);
    assert_int_equal(wf_table_insert(m.t, b, 1), 0);
    assert_int_equal(wf_table_insert(m.t, c, 2), 0);
    assert_int_equal(wf_table_find(m.t, a), 0);
    assert_int_equal(wf_table_find(m.t, b), 1);
    assert_int_equal(wf_table_find(m.t, c), 2);
    table_free(&m);
}

/* 1 M random keys in a table filled to capacity: all found with their record, absent
 * keys not found, and the share of keys outside their primary line as designed. */
static void test_table_many_keys(void **state)
{
    (void)state;
    enum { N = 1000000 };
    rng_state = 77;
    struct table_mem m = table_new(N);
    struct wf_key *keys = malloc(N * sizeof(*keys));
    assert_non_null(keys);
    for (uint32_t i = 0; i < N; i++) {
        keys[i] = rng_key();
        assert_int_equal(wf_table_insert(m.t, keys[i], i), 0);
    }
    assert_int_equal(wf_table_verify(m.t), 0);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(wf_table_find(m.t, keys[i]), i);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(wf_table_find(m.t, rng_key()), WF_REC_NONE);
    double secondary = (double)wf_table_in_secondary(m.t) / N;
    assert_true(secondary > 0.15 && secondary < 0.35);
    free(keys);
    table_free(&m);
}

/* Iteration visits every key exactly once with its record, then reports the end. */
static void test_table_iteration(void **state)
{
    (void)state;
    enum { N = 50000 };
    rng_state = 5;
    struct table_mem m = table_new(N);
    uint8_t *seen = calloc(N, 1);
    assert_non_null(seen);
    uint64_t cursor = 0;
    struct wf_key k;
    uint32_t rec;
    assert_false(wf_table_next(m.t, &cursor, &k, &rec)); /* empty */
    struct wf_key *keys = malloc(N * sizeof(*keys));
    assert_non_null(keys);
    for (uint32_t i = 0; i < N; i++) {
        keys[i] = rng_key();
        assert_int_equal(wf_table_insert(m.t, keys[i], i), 0);
    }
    cursor = 0;
    uint32_t visits = 0;
    while (wf_table_next(m.t, &cursor, &k, &rec)) {
        assert_true(rec < N);
        assert_int_equal(seen[rec], 0);
        assert_true(wf_key_equal(k, keys[rec]));
        seen[rec] = 1;
        visits++;
    }
    assert_int_equal(visits, N);
    assert_false(wf_table_next(m.t, &cursor, &k, &rec)); /* stays at the end */
    free(keys);
    free(seen);
    table_free(&m);
}

/* verify catches what would make lookups wrong: a lost overflow count, a key moved to a
 * bucket that is neither of its two, a wrong total. */
static void test_table_verify_detects(void **state)
{
    (void)state;
    enum { N = 2000 };
    rng_state = 9;
    struct table_mem m = table_new(N);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(wf_table_insert(m.t, rng_key(), i), 0);
    assert_int_equal(wf_table_verify(m.t), 0);
    assert_true(wf_table_in_secondary(m.t) > 0);

    uint32_t b = 0;
    while (m.t->bucket[b].overflow == 0)
        b++;
    m.t->bucket[b].overflow = 0;
    assert_int_equal(wf_table_verify(m.t), -EUCLEAN);

    assert_int_equal(wf_table_init(m.t, m.bytes, N), 0);
    rng_state = 9;
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(wf_table_insert(m.t, rng_key(), i), 0);
    m.t->count--;
    assert_int_equal(wf_table_verify(m.t), -EUCLEAN);
    m.t->count++;
    assert_int_equal(wf_table_verify(m.t), 0);
    struct wf_key k = m.t->bucket[0].key[0];
    m.t->bucket[0].key[0].lo ^= 0x8000000000000000ull; /* another primary, same record */
    bool still_home = wf_table_primary(m.t, m.t->bucket[0].key[0]) == 0 ||
                      wf_table_secondary(m.t, m.t->bucket[0].key[0]) == 0;
    assert_int_equal(wf_table_verify(m.t), still_home ? 0 : -EUCLEAN);
    m.t->bucket[0].key[0] = k;
    m.t->bucket[1].rec[2] = m.t->bucket[1].used > 2 ? WF_REC_NONE : 5;
    assert_int_equal(wf_table_verify(m.t), -EUCLEAN);
    table_free(&m);
}

/* Delete against a plain model: random inserts and deletes at ~90 % load keep every present
 * key found with its record, every deleted key gone, the invariants (verify) and the
 * secondary/overflow accounting exact; deleting an absent key changes nothing. */
static void test_table_delete_model(void **state)
{
    (void)state;
    enum { CAP = 20000, OPS = 400000 };
    rng_state = 4242;
    struct table_mem m = table_new(CAP);
    struct wf_key *present = malloc(CAP * sizeof(*present));
    uint32_t *rec = malloc(CAP * sizeof(*rec));
    assert_non_null(present);
    assert_non_null(rec);
    uint32_t n = 0, next_rec = 0;
    uint64_t deletes = 0, inserts = 0;
    for (uint32_t op = 0; op < OPS; op++) {
        uint64_t r = rng_next();
        /* aim at ~90 % of capacity: insert below, delete above */
        bool del = n > 0 && (n >= CAP || (r % 100) < (n * 100u / CAP > 90 ? 70u : 35u));
        if (del) {
            uint32_t i = (uint32_t)((r >> 8) % n);
            assert_int_equal(wf_table_delete(m.t, present[i]), 0);
            assert_int_equal(wf_table_find(m.t, present[i]), WF_REC_NONE);
            assert_int_equal(wf_table_delete(m.t, present[i]), -ENOENT);
            present[i] = present[n - 1];
            rec[i] = rec[n - 1];
            n--;
            deletes++;
        } else {
            struct wf_key k = rng_key();
            uint32_t v = next_rec++ % WF_TABLE_CAPACITY_MAX;
            int rc = wf_table_insert(m.t, k, v);
            assert_true(rc == 0 || rc == -ENOSPC);
            if (rc == 0) {
                present[n] = k;
                rec[n++] = v;
                inserts++;
            }
        }
        assert_int_equal(wf_table_count(m.t), n);
        if (op % 20000 == 0) {
            assert_int_equal(wf_table_verify(m.t), 0);
            for (uint32_t i = 0; i < n; i++)
                assert_int_equal(wf_table_find(m.t, present[i]), rec[i]);
        }
    }
    assert_true(deletes > OPS / 4 && inserts > OPS / 4);
    assert_int_equal(wf_table_verify(m.t), 0);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(wf_table_find(m.t, present[i]), rec[i]);
    assert_int_equal(wf_table_delete(m.t, rng_key()), -ENOENT);
    /* empty it: no key left in a secondary, every overflow count back to zero, every slot
     * cleared, so the bytes equal a freshly initialised table's */
    while (n > 0)
        assert_int_equal(wf_table_delete(m.t, present[--n]), 0);
    assert_int_equal(wf_table_count(m.t), 0);
    assert_int_equal(wf_table_in_secondary(m.t), 0);
    assert_int_equal(wf_table_verify(m.t), 0);
    struct table_mem fresh = table_new(CAP);
    m.t->evictions = fresh.t->evictions;
    assert_memory_equal(m.t->bucket, fresh.t->bucket, m.t->bucket_count * sizeof(m.t->bucket[0]));
    /* and it fills to capacity again */
    for (uint32_t i = 0; i < CAP; i++)
        assert_int_equal(wf_table_insert(m.t, rng_key(), i), 0);
    assert_int_equal(wf_table_insert(m.t, rng_key(), 1), -ENOSPC);
    assert_int_equal(wf_table_verify(m.t), 0);
    table_free(&fresh);
    free(present);
    free(rec);
    table_free(&m);
}

/* Delete inside one bucket: the last key fills the hole, the freed slot is cleared, and a
 * walker deleting at its cursor position sees the moved key at the same position. */
static void test_table_delete_in_bucket(void **state)
{
    (void)state;
    struct table_mem m = table_new(64);
    /* three keys with the same primary and secondary bucket */
    struct wf_key k[5];
    for (unsigned i = 0; i < 5; i++)
        k[i] = (struct wf_key){ 0x1234567800000000ull | 7u, 100 + i };
    uint32_t p = wf_table_primary(m.t, k[0]), s = wf_table_secondary(m.t, k[0]);
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(wf_table_insert(m.t, k[i], i), 0);
    assert_int_equal(m.t->bucket[p].used, 3);
    assert_int_equal(m.t->bucket[s].used, 2);
    assert_int_equal(wf_table_in_secondary(m.t), 2);
    assert_int_equal(m.t->bucket[p].overflow, 2);
    /* delete the first slot of the primary: its last key moves into slot 0 */
    assert_int_equal(wf_table_delete(m.t, k[0]), 0);
    assert_int_equal(m.t->bucket[p].used, 2);
    assert_true(wf_key_equal(m.t->bucket[p].key[0], k[2]));
    assert_int_equal(m.t->bucket[p].rec[0], 2);
    assert_int_equal(m.t->bucket[p].rec[2], WF_REC_NONE);
    assert_int_equal(m.t->bucket[p].key[2].lo | m.t->bucket[p].key[2].hi, 0);
    /* a key in its secondary: the overflow count of its primary goes down */
    assert_int_equal(wf_table_delete(m.t, k[3]), 0);
    assert_int_equal(m.t->bucket[p].overflow, 1);
    assert_int_equal(wf_table_in_secondary(m.t), 1);
    assert_int_equal(wf_table_find(m.t, k[4]), 4);
    assert_int_equal(wf_table_delete(m.t, k[4]), 0);
    assert_int_equal(m.t->bucket[p].overflow, 0);
    assert_int_equal(wf_table_find(m.t, k[1]), 1);
    assert_int_equal(wf_table_find(m.t, k[2]), 2);
    assert_int_equal(wf_table_verify(m.t), 0);
    /* a new key goes back into the primary's free slot */
    assert_int_equal(wf_table_insert(m.t, k[0], 9), 0);
    assert_int_equal(m.t->bucket[p].used, 3);
    assert_int_equal(wf_table_in_secondary(m.t), 0);
    assert_int_equal(wf_table_count(m.t), 3);
    assert_int_equal(wf_table_verify(m.t), 0);
    table_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_init_validation), cmocka_unit_test(test_table_exact_capacity),
        cmocka_unit_test(test_table_half_collisions), cmocka_unit_test(test_table_many_keys),
        cmocka_unit_test(test_table_iteration),       cmocka_unit_test(test_table_verify_detects),
        cmocka_unit_test(test_table_delete_model),    cmocka_unit_test(test_table_delete_in_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
