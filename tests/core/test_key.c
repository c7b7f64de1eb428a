/* test_key: workflow key hashing (encoding, stability, spread) and the partition map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>
#include <xxhash.h>

#include "wf_key.h"
#include "wf_partmap.h"

static struct wf_key key_of(const char *type, const char *id)
{
    return wf_key_make(type, strlen(type), id, strlen(id));
}

/* The length prefix keeps the (type, id) boundary: same concatenation, different keys. */
static void test_key_boundary_distinct(void **state)
{
    (void)state;
    assert_false(wf_key_equal(key_of("ab", "c"), key_of("a", "bc")));
    assert_false(wf_key_equal(key_of("", "abc"), key_of("abc", "")));
    assert_false(wf_key_equal(key_of("device", "1"), key_of("device1", "")));
    assert_false(wf_key_equal(key_of("device", "s-1"), key_of("device", "s-2")));
    assert_true(wf_key_equal(key_of("device", "s-1"), key_of("device", "s-1")));
}

/* Keys are stored in snapshots and the WAL: their values must never change. */
static void test_key_stable_values(void **state)
{
    (void)state;
    struct wf_key k = key_of("device", "sensor-00042");
    assert_int_equal(k.lo, 0x1f90907d36b4c40eull);
    assert_int_equal(k.hi, 0x36f0569235701d92ull);
    k = wf_key_make("", 0, "", 0);
    assert_int_equal(k.lo, 0x6001c324468d497full);
    assert_int_equal(k.hi, 0x99aa06d3014798d8ull);
}

/* Same value as the library's XXH3 over the documented definition
 * XXH3_128bits_withSeed(type | id, seed = type_len), whether the id follows the type in
 * memory (a frame: hashed in place) or lies elsewhere (copied). */
static void test_key_matches_definition(void **state)
{
    (void)state;
    static char both[2 * WF_KEY_PART_LEN_MAX];
    static char type[WF_KEY_PART_LEN_MAX], id[WF_KEY_PART_LEN_MAX];
    const size_t lens[][2] = { { 6, 12 }, { 0, 0 },     { 0, 5 },   { 3, 0 },
                               { 1, 64 }, { 255, 255 }, { 32, 200 } };
    for (size_t c = 0; c < sizeof(lens) / sizeof(lens[0]); c++) {
        size_t tl = lens[c][0], il = lens[c][1];
        for (size_t i = 0; i < tl + il; i++)
            both[i] = (char)('a' + (i * 7 + c) % 26);
        memcpy(type, both, tl);
        memcpy(id, both + tl, il);
        XXH128_hash_t h = XXH3_128bits_withSeed(both, tl + il, tl);
        struct wf_key in_place = wf_key_make(both, tl, both + tl, il);
        struct wf_key copied = wf_key_make(type, tl, id, il);
        assert_int_equal(in_place.lo, h.low64);
        assert_int_equal(in_place.hi, h.high64);
        assert_true(wf_key_equal(in_place, copied));
        assert_int_equal(wf_key_type_seed(type, tl), XXH3_64bits(type, tl));
    }
}

/* 1 M keys over 4096 partitions: chi-square within 6 standard deviations of its mean. */
static void test_key_partition_spread(void **state)
{
    (void)state;
    enum { PARTS = 4096, KEYS = 1000000 };
    static uint32_t hits[PARTS];
    memset(hits, 0, sizeof(hits));
    char id[32];
    for (uint32_t i = 0; i < KEYS; i++) {
        int n = snprintf(id, sizeof(id), "sensor-%08u", i);
        struct wf_key k = wf_key_make("device", 6, id, (size_t)n);
        uint32_t p = wf_key_partition(k, PARTS);
        assert_true(p < PARTS);
        hits[p]++;
    }
    double expect = (double)KEYS / PARTS, chi2 = 0;
    uint32_t min = UINT32_MAX, max = 0;
    for (uint32_t p = 0; p < PARTS; p++) {
        double d = hits[p] - expect;
        chi2 += d * d / expect;
        min = hits[p] < min ? hits[p] : min;
        max = hits[p] > max ? hits[p] : max;
    }
    /* dof = 4095: mean 4095, standard deviation sqrt(2 * 4095) = 90.5. */
    assert_true(chi2 < 4095 + 6 * 90.5);
    assert_true(chi2 > 4095 - 6 * 90.5);
    assert_true(min > 150 && max < 350);
}

static void test_partmap_validation(void **state)
{
    (void)state;
    static struct wf_partmap m;
    assert_int_equal(wf_partmap_init(&m, 0, 1), -EINVAL);
    assert_int_equal(wf_partmap_init(&m, 3, 1), -EINVAL);
    assert_int_equal(wf_partmap_init(&m, 4096, 0), -EINVAL);
    assert_int_equal(wf_partmap_init(&m, 4, 5), -EINVAL);
    assert_int_equal(wf_partmap_init(&m, 2 * WF_PARTITIONS_MAX, 2), -EINVAL);
    assert_int_equal(wf_partmap_init(&m, 1, 1), 0);
    assert_int_equal(wf_partmap_owner(&m, 0), 0);
    assert_int_equal(wf_partmap_init(&m, WF_PARTITIONS_MAX, 7), 0);
    assert_int_equal(m.count, WF_PARTITIONS_MAX);
}

/* Owners get partition counts that differ by at most one; every owner < owner_count. */
static void test_partmap_even(void **state)
{
    (void)state;
    static struct wf_partmap m;
    const uint32_t owners[] = { 1, 2, 3, 5, 64, 4096 };
    for (size_t c = 0; c < sizeof(owners) / sizeof(owners[0]); c++) {
        assert_int_equal(wf_partmap_init(&m, 4096, owners[c]), 0);
        uint32_t lo = UINT32_MAX, hi = 0, total = 0;
        for (uint32_t o = 0; o < owners[c]; o++) {
            uint32_t n = wf_partmap_owned(&m, (uint16_t)o);
            lo = n < lo ? n : lo;
            hi = n > hi ? n : hi;
            total += n;
        }
        assert_int_equal(total, 4096);
        assert_true(hi - lo <= 1);
        for (uint32_t p = 0; p < 4096; p++)
            assert_true(wf_partmap_owner(&m, p) < owners[c]);
    }
}

/* Keyed: another secret gives other keys (so collisions computed with the public hash or
 * another node's secret do not carry over), the boundary still counts, in place equals
 * copied, and NULL goes back to the public definition. */
static void test_keyed(void **state)
{
    (void)state;
    struct wf_key pub = key_of("device", "sensor-1");
    uint8_t s1[WF_KEY_SECRET_LEN], s2[WF_KEY_SECRET_LEN];
    for (unsigned i = 0; i < WF_KEY_SECRET_LEN; i++) {
        s1[i] = (uint8_t)(i * 7 + 1);
        s2[i] = (uint8_t)(i * 13 + 5);
    }
    uint8_t flat[WF_KEY_SECRET_LEN];
    memset(flat, 0x42, sizeof(flat));
    assert_int_equal(wf_key_use_secret(flat), -22);
    assert_int_equal(wf_key_use_secret(s1), 0);
    struct wf_key k1 = key_of("device", "sensor-1");
    assert_false(wf_key_equal(k1, pub));
    assert_false(wf_key_equal(key_of("ab", "c"), key_of("a", "bc")));
    char both[64] = "devicesensor-1";
    assert_true(wf_key_equal(wf_key_make(both, 6, both + 6, 8), k1));
    /* a public collision set of one partition spreads under a secret */
    unsigned same_pub = 0, same_keyed = 0;
    char id[32];
    uint32_t target = wf_key_partition(k1, 4096);
    wf_key_use_secret(NULL);
    uint32_t pub_target = wf_key_partition(pub, 4096);
    static char found[64][32];
    unsigned nfound = 0;
    for (unsigned i = 0; nfound < 64 && i < 2000000; i++) {
        snprintf(id, sizeof(id), "x%u", i);
        if (wf_key_partition(key_of("device", id), 4096) == pub_target)
            snprintf(found[nfound++], sizeof(found[0]), "%s", id);
    }
    assert_int_equal(nfound, 64);
    same_pub = nfound;
    assert_int_equal(wf_key_use_secret(s1), 0);
    for (unsigned i = 0; i < nfound; i++)
        same_keyed += wf_key_partition(key_of("device", found[i]), 4096) == target;
    assert_true(same_keyed <= 3); /* 64 ids chosen offline: about 64/4096 expected */
    (void)same_pub;
    assert_int_equal(wf_key_use_secret(s2), 0);
    assert_false(wf_key_equal(key_of("device", "sensor-1"), k1));
    assert_int_equal(wf_key_use_secret(NULL), 0);
    assert_true(wf_key_equal(key_of("device", "sensor-1"), pub));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_boundary_distinct),
        cmocka_unit_test(test_key_stable_values),
        cmocka_unit_test(test_key_matches_definition),
        cmocka_unit_test(test_key_partition_spread),
        cmocka_unit_test(test_partmap_validation),
        cmocka_unit_test(test_partmap_even),
        cmocka_unit_test(test_keyed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
