/* test_rt_image — a partition's snapshot image is its used prefix (rt_part_used_bytes):
 * copied onto a zeroed region of the same configuration it gives the same partition (equal
 * digests, and equal again after more inputs and timer firings); rt_part_image_check refuses
 * images of another length, configuration or magic. */
#include "rt_internal.h"
#include "rt_test.h"

static unsigned g_status[RT_STATUS_COUNT];

static void feed(struct rt_env *e, unsigned first, unsigned n, uint64_t t)
{
    char id[32];
    for (unsigned i = first; i < first + n; i++) {
        snprintf(id, sizeof(id), "dev-%05u", i);
        int st = rt_telemetry(e, id, 1 + i / 7, t + i, 20.5, (i % 5) == 0 ? 3 : 0);
        assert_true(st >= 0 && st < RT_STATUS_COUNT);
        g_status[st]++;
        snprintf(id, sizeof(id), "cust-%05u", i % 900);
        st = rt_purchase(e, id, 1 + i, t + i, 100 + i);
        assert_true(st >= 0 && st < RT_STATUS_COUNT); /* (the task pool may be full) */
    }
}

static void test_image_roundtrip(void **state)
{
    (void)state;
    struct rt_env a, b;
    rt_env_init(&a, 1, 5000, 8192, 8192);
    rt_env_init(&b, 1, 5000, 8192, 8192);
    feed(&a, 0, 3000, T0);
    assert_true(g_status[RT_CREATED] >= 2500); /* the partition really holds workflows */
    size_t len = rt_part_used_bytes(a.part[0]);
    assert_true(len > sizeof(struct rt_part) && len < a.part_bytes);

    assert_int_equal(rt_part_image_check(a.part_mem[0], len, a.part_bytes), 0);
    assert_int_equal(rt_part_image_check(a.part_mem[0], len - 8, a.part_bytes), -EBADMSG);
    assert_int_equal(rt_part_image_check(a.part_mem[0], len + 8, a.part_bytes), -EBADMSG);
    assert_int_equal(rt_part_image_check(a.part_mem[0], len, a.part_bytes + 64), -EBADMSG);
    uint8_t *bad = malloc(len);
    memcpy(bad, a.part_mem[0], len);
    bad[0] ^= 1; /* magic */
    assert_int_equal(rt_part_image_check(bad, len, a.part_bytes), -EBADMSG);
    free(bad);

    /* load: a zeroed region, the prefix over it, the wheel rebuilt (links are core-side) */
    memset(b.part_mem[0], 0, b.part_bytes);
    memcpy(b.part_mem[0], a.part_mem[0], len);
    rt_timers_rebuild(b.core);
    rt_core_recount(b.core);
    b.lsn = a.lsn; /* the log position the image reflects (inputs carry it as their cause) */
    assert_int_equal(rt_part_digest(b.part[0]), rt_part_digest(a.part[0]));
    assert_int_equal(rt_part_count(b.part[0]), rt_part_count(a.part[0]));
    assert_int_equal(rt_timers_armed(b.core), rt_timers_armed(a.core));

    /* and it behaves the same from then on */
    feed(&a, 2000, 2500, T0 + 10 * T_SEC);
    feed(&b, 2000, 2500, T0 + 10 * T_SEC);
    assert_int_equal(rt_part_digest(b.part[0]), rt_part_digest(a.part[0]));
    /* timers due in the same tick fire in wheel order, which a rebuild may change (the
     * daemon logs firings, so replay follows the logged order): rebuild both */
    rt_timers_rebuild(a.core);
    rt_timers_rebuild(b.core);
    rt_tasks_reset(a.core);
    rt_tasks_reset(b.core);
    unsigned fa = rt_fire_due(&a, T0 + 2 * T_DAY, NULL);
    unsigned fb = rt_fire_due(&b, T0 + 2 * T_DAY, NULL);
    assert_true(fa > 0);
    assert_int_equal(fa, fb);
    assert_int_equal(rt_part_digest(b.part[0]), rt_part_digest(a.part[0]));
    rt_env_free(&a);
    rt_env_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
