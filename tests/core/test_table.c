/* test_table: workflow table insert/find, exact capacity, many keys, iteration, layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "sf_mem.h"
#include "sf_table.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_init_validation), cmocka_unit_test(test_table_exact_capacity),
        cmocka_unit_test(test_table_half_collisions), cmocka_unit_test(test_table_many_keys),
        cmocka_unit_test(test_table_iteration),       cmocka_unit_test(test_table_verify_detects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
