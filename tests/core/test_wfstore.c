/* test_wfstore: partition store — apply counts, key store round trip, full conditions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "sf_mem.h"
#include "sf_wfstore.h"

struct part_mem {
    struct wf_part *p;
    size_t bytes;
};

static struct part_mem part_new(uint32_t capacity, size_t keystore_bytes)
{
    struct part_mem m = { NULL, wf_part_mem_size(capacity, keystore_bytes) };
    assert_true(m.bytes > 0);
    m.p = sf_mem_alloc(m.bytes, NULL);
    assert_non_null(m.p);
    assert_int_equal(wf_part_init(m.p, m.bytes, capacity, keystore_bytes), 0);
    return m;
}

static void part_free(struct part_mem *m)
{
    sf_mem_free(m->p, m->bytes);
}

static int apply_id(struct wf_part *p, const char *type, const char *id, uint64_t event_id,
                    uint64_t ts)
{
    size_t tl = strlen(type), il = strlen(id);
    struct wf_key k = wf_key_make(type, tl, id, il);
    return wf_part_apply(p, k, type, (uint8_t)tl, id, (uint8_t)il, event_id, ts);
}

static void test_part_init_validation(void **state)
{
    (void)state;
    assert_int_equal(wf_part_mem_size(0, 100), 0);
    assert_int_equal(wf_part_mem_size(10, 0), 0);
    struct part_mem m = part_new(10, 100);
    assert_int_equal(wf_part_init(m.p, m.bytes - 1, 10, 100), -EINVAL);
    assert_int_equal(wf_part_init((struct wf_part *)((char *)m.p + 4), m.bytes - 4, 10, 10),
                     -EINVAL);
    assert_int_equal(wf_part_init(m.p, m.bytes, 10, 100), 0);
    assert_int_equal(wf_part_count(m.p), 0);
    assert_int_equal(wf_part_keystore_used(m.p), 0);
    part_free(&m);
}

/* Signals are counted exactly per workflow; the last event id and time are kept. */
static void test_part_apply_counts(void **state)
{
    (void)state;
    enum { WORKFLOWS = 1000, ROUNDS = 7 };
    struct part_mem m = part_new(WORKFLOWS, WORKFLOWS * 20 + 64);
    char id[32];
    uint64_t event_id = 1;
    for (uint32_t r = 0; r < ROUNDS; r++) {
        for (uint32_t w = 0; w < WORKFLOWS; w++) {
            snprintf(id, sizeof(id), "sensor-%05u", w);
            /* workflow w gets (w % 3) + 1 signals per round */
            for (uint32_t s = 0; s <= w % 3; s++) {
                int rc = apply_id(m.p, "device", id, event_id, event_id * 10);
                assert_int_equal(rc, (r == 0 && s == 0) ? WF_CREATED : WF_APPLIED);
                event_id++;
            }
        }
    }
    assert_int_equal(wf_part_count(m.p), WORKFLOWS);
    uint64_t total = 0;
    for (uint32_t w = 0; w < WORKFLOWS; w++) {
        snprintf(id, sizeof(id), "sensor-%05u", w);
        const struct wf_count_rec *rec = wf_part_get(m.p, wf_key_make("device", 6, id, 12));
        assert_non_null(rec);
        assert_int_equal(rec->signals, ROUNDS * (w % 3 + 1));
        assert_int_equal(rec->last_ts_ns, rec->last_event_id * 10);
        assert_true(rec->flags & WF_REC_F_LIVE);
        total += rec->signals;
    }
    struct wf_part_stats st;
    wf_part_stats_get(m.p, &st);
    assert_int_equal(st.applied, total);
    assert_int_equal(st.applied, event_id - 1);
    assert_int_equal(st.created, WORKFLOWS);
    assert_null(wf_part_get(m.p, wf_key_make("device", 6, "nope", 4)));
    part_free(&m);
}

/* Strings read back from the key store equal what created the workflow; the type name is
 * stored once, each workflow costs 2 + id_len bytes. */
static void test_part_keystore_roundtrip(void **state)
{
    (void)state;
    enum { N = 300 };
    const char *types[] = { "device", "loyalty", "approval" };
    struct part_mem m = part_new(N, 32768);
    char id[80];
    size_t id_bytes = 0;
    for (uint32_t i = 0; i < N; i++) {
        int n = snprintf(id, sizeof(id), "id-%u-%.*s", i, (int)(i % 60),
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        id_bytes += (size_t)n;
        assert_int_equal(apply_id(m.p, types[i % 3], id, i, i), WF_CREATED);
    }
    assert_int_equal(wf_part_keystore_used(m.p), 6 + 7 + 8 + 2 * N + id_bytes);

    uint64_t cursor = 0;
    struct wf_key k;
    const struct wf_count_rec *rec;
    uint32_t visits = 0;
    while (wf_part_next(m.p, &cursor, &k, &rec)) {
        const char *t, *s;
        uint8_t tl, sl;
        assert_int_equal(wf_part_key(m.p, rec->key_ref, &t, &tl, &s, &sl), 0);
        struct wf_key again = wf_key_make(t, tl, s, sl);
        assert_true(wf_key_equal(again, k));
        uint32_t i = (uint32_t)rec->last_event_id;
        assert_int_equal(tl, strlen(types[i % 3]));
        assert_memory_equal(t, types[i % 3], tl);
        visits++;
    }
    assert_int_equal(visits, N);
    const char *t, *s;
    uint8_t tl, sl;
    assert_int_equal(wf_part_key(m.p, (uint32_t)wf_part_keystore_used(m.p), &t, &tl, &s, &sl),
                     -EINVAL);
    assert_int_equal(wf_part_key(m.p, UINT32_MAX, &t, &tl, &s, &sl), -EINVAL);
    part_free(&m);
}

/* Key store full: the workflow is refused and counted, nothing changes, existing ones still
 * get signals; table full likewise. */
static void test_part_full(void **state)
{
    (void)state;
    /* type "device" (6) + 3 workflows of 2 + 10 bytes = 42 bytes; room for 45 */
    struct part_mem m = part_new(100, 45);
    assert_int_equal(apply_id(m.p, "device", "sensor-000", 1, 1), WF_CREATED);
    assert_int_equal(apply_id(m.p, "device", "sensor-001", 2, 2), WF_CREATED);
    assert_int_equal(apply_id(m.p, "device", "sensor-002", 3, 3), WF_CREATED);
    assert_int_equal(apply_id(m.p, "device", "sensor-003", 4, 4), WF_FULL);
    assert_int_equal(apply_id(m.p, "device", "s", 5, 5), WF_CREATED); /* 3 bytes still fit */
    assert_int_equal(apply_id(m.p, "device", "sensor-001", 6, 6), WF_APPLIED);
    assert_int_equal(apply_id(m.p, "other", "s", 7, 7), WF_FULL); /* no room for the name */
    assert_int_equal(apply_id(m.p, "", "s", 8, 8), WF_INVALID);
    struct wf_part_stats st;
    wf_part_stats_get(m.p, &st);
    assert_int_equal(st.full_keystore, 2);
    assert_int_equal(st.invalid, 1);
    assert_int_equal(st.created, 4);
    assert_int_equal(wf_part_count(m.p), 4);
    assert_int_equal(wf_part_keystore_used(m.p), 45);
    assert_null(wf_part_get(m.p, wf_key_make("device", 6, "sensor-003", 10)));
    part_free(&m);

    m = part_new(3, 4096);
    char id[16];
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "w%d", i);
        assert_int_equal(apply_id(m.p, "device", id, 1, 1), WF_CREATED);
    }
    assert_int_equal(apply_id(m.p, "device", "w9", 1, 1), WF_FULL);
    assert_int_equal(apply_id(m.p, "device", "w1", 2, 2), WF_APPLIED);
    wf_part_stats_get(m.p, &st);
    assert_int_equal(st.full_table, 1);
    assert_int_equal(wf_part_count(m.p), 3);
    part_free(&m);
}

/* More than WF_TYPES_MAX types in one partition: the extra type is refused and counted. */
static void test_part_types_full(void **state)
{
    (void)state;
    struct part_mem m = part_new(WF_TYPES_MAX + 8, 4096);
    char type[16];
    for (uint32_t i = 0; i < WF_TYPES_MAX; i++) {
        snprintf(type, sizeof(type), "type%u", i);
        assert_int_equal(apply_id(m.p, type, "x", 1, 1), WF_CREATED);
    }
    assert_int_equal(apply_id(m.p, "one-more", "x", 1, 1), WF_FULL);
    assert_int_equal(apply_id(m.p, "type7", "y", 1, 1), WF_CREATED);
    struct wf_part_stats st;
    wf_part_stats_get(m.p, &st);
    assert_int_equal(st.full_types, 1);
    part_free(&m);
}

/* The burst form: a workflow created by an earlier event of the burst is found, not
 * created twice, even though stage 2 saw it absent. */
static void test_part_burst_form(void **state)
{
    (void)state;
    struct part_mem m = part_new(16, 1024);
    struct wf_key k = wf_key_make("device", 6, "hot", 3);
    wf_part_prefetch(m.p, k);
    uint32_t r1 = wf_part_find_prefetch(m.p, k);
    uint32_t r2 = wf_part_find_prefetch(m.p, k);
    assert_int_equal(r1, WF_REC_NONE);
    assert_int_equal(wf_part_apply_found(m.p, r1, k, "device", 6, "hot", 3, 1, 1), WF_CREATED);
    assert_int_equal(wf_part_apply_found(m.p, r2, k, "device", 6, "hot", 3, 2, 2), WF_APPLIED);
    uint32_t r3 = wf_part_find_prefetch(m.p, k);
    assert_int_equal(r3, 0);
    assert_int_equal(wf_part_apply_found(m.p, r3, k, "device", 6, "hot", 3, 3, 3), WF_APPLIED);
    assert_int_equal(wf_part_count(m.p), 1);
    assert_int_equal(wf_part_rec(m.p, 0)->signals, 3);
    assert_int_equal(wf_part_rec(m.p, 0)->last_event_id, 3);
    part_free(&m);
}

/* The handle path reads and writes the same records as the partition API. */
static void test_part_ref_path(void **state)
{
    (void)state;
    struct part_mem m = part_new(100, 4096);
    struct wf_part_ref ref;
    wf_part_ref_get(m.p, &ref);
    char id[16];
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "w%d", i);
        assert_int_equal(apply_id(m.p, "device", id, 1, 1), WF_CREATED);
    }
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "w%d", i);
        struct wf_key k = wf_key_make("device", 6, id, strlen(id));
        wf_ref_prefetch(&ref, k);
        uint32_t rec = wf_ref_find_prefetch(&ref, k);
        assert_int_equal(rec, wf_part_find(m.p, k));
        for (int s = 0; s < i; s++)
            wf_ref_apply(&ref, rec, 100 + (uint64_t)s, 7);
        const struct wf_count_rec *r = wf_part_get(m.p, k);
        assert_int_equal(r->signals, 1 + (uint64_t)i);
        assert_int_equal(r->last_event_id, i ? 100 + (uint64_t)i - 1 : 1);
    }
    assert_int_equal(wf_ref_find_prefetch(&ref, wf_key_make("device", 6, "zz", 2)), WF_REC_NONE);
    part_free(&m);
}

/* The deferring stage 2: every workflow is found either in its primary line or, after
 * WF_REC_PENDING, by the full lookup; absent keys end as WF_REC_NONE. */
static void test_part_ref_find_primary(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct part_mem m = part_new(N, N * 16);
    struct wf_part_ref ref;
    wf_part_ref_get(m.p, &ref);
    char id[16];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "w%d", i);
        assert_int_equal(apply_id(m.p, "device", id, 1, 1), WF_CREATED);
    }
    uint32_t pending = 0, pending_absent = 0;
    for (int i = 0; i < 2 * N; i++) {
        snprintf(id, sizeof(id), "w%d", i);
        struct wf_key k = wf_key_make("device", 6, id, strlen(id));
        uint32_t rec = wf_ref_find_primary(&ref, k);
        if (rec == WF_REC_PENDING) {
            rec = wf_ref_find_prefetch(&ref, k);
            pending += i < N;
            pending_absent += i >= N;
        }
        assert_int_equal(rec, wf_part_find(m.p, k));
        if (i < N)
            assert_true(rec < N);
        else
            assert_int_equal(rec, WF_REC_NONE);
    }
    assert_int_equal(pending, wf_table_in_secondary(wf_part_table(m.p)));
    assert_true(pending > N / 10 && pending_absent > 0);
    part_free(&m);
}

/* wf_burst_apply equals applying one event at a time: creates, repeats within a burst,
 * refusals, counts. Two partitions, bursts mixing both. */
static void test_burst_apply_matches_serial(void **state)
{
    (void)state;
    enum { PARTS = 2, WORKFLOWS = 300, EVENTS = 2000 };
    struct part_mem a[PARTS], b[PARTS];
    struct wf_part *pa[PARTS];
    struct wf_part_ref ra[PARTS];
    for (int p = 0; p < PARTS; p++) {
        a[p] = part_new(WORKFLOWS / 2 - 20, 8192); /* burst side; too small: refusals */
        b[p] = part_new(WORKFLOWS / 2 - 20, 8192); /* serial side */
        pa[p] = a[p].p;
        wf_part_ref_get(pa[p], &ra[p]);
    }
    static char ids[EVENTS][16];
    static struct wf_burst_event ev[EVENTS];
    uint64_t rng = 12345;
    for (int i = 0; i < EVENTS; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int n = snprintf(ids[i], sizeof(ids[i]), "w%u", (unsigned)((rng >> 33) % WORKFLOWS));
        struct wf_key k = wf_key_make("device", 6, ids[i], (size_t)n);
        ev[i] = (struct wf_burst_event){ .key = k,
                                         .partition = wf_key_partition(k, PARTS),
                                         .type = "device",
                                         .type_len = 6,
                                         .id = ids[i],
                                         .id_len = (uint8_t)n,
                                         .event_id = (uint64_t)i + 1,
                                         .ts_ns = (uint64_t)i * 3 };
    }
    int8_t result[WF_BURST_MAX];
    uint32_t refused_burst = 0, refused_serial = 0, handled = 0;
    for (uint32_t base = 0; base < EVENTS; base += handled) {
        handled = EVENTS - base < 37 ? EVENTS - base : 37; /* odd burst size on purpose */
        refused_burst += wf_burst_apply(pa, ra, &ev[base], handled, result);
        for (uint32_t i = 0; i < handled; i++) {
            const struct wf_burst_event *e = &ev[base + i];
            int r = wf_part_apply(b[e->partition].p, e->key, e->type, e->type_len, e->id, e->id_len,
                                  e->event_id, e->ts_ns);
            assert_int_equal(result[i], r);
            refused_serial += r < 0;
        }
    }
    assert_int_equal(refused_burst, refused_serial);
    assert_true(refused_burst > 0);
    for (int p = 0; p < PARTS; p++) {
        assert_int_equal(wf_part_count(a[p].p), wf_part_count(b[p].p));
        uint64_t cursor = 0;
        struct wf_key k;
        const struct wf_count_rec *rec;
        while (wf_part_next(b[p].p, &cursor, &k, &rec)) {
            const struct wf_count_rec *other = wf_part_get(a[p].p, k);
            assert_non_null(other);
            assert_int_equal(other->signals, rec->signals);
            assert_int_equal(other->last_event_id, rec->last_event_id);
            assert_int_equal(other->last_ts_ns, rec->last_ts_ns);
        }
        part_free(&a[p]);
        part_free(&b[p]);
    }
}

static void test_part_capacity_for(void **state)
{
    (void)state;
    assert_int_equal(wf_part_capacity_for(1000, 0), 0);
    uint32_t c = wf_part_capacity_for(100000000ull, 4096);
    assert_true(c > 100000000ull / 4096 && c < 100000000ull / 4096 * 1.05);
    assert_true(wf_part_capacity_for(0, 4096) >= 16);
    assert_int_equal(wf_part_capacity_for(UINT64_MAX / 2, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_part_init_validation),
        cmocka_unit_test(test_part_apply_counts),
        cmocka_unit_test(test_part_keystore_roundtrip),
        cmocka_unit_test(test_part_full),
        cmocka_unit_test(test_part_types_full),
        cmocka_unit_test(test_part_burst_form),
        cmocka_unit_test(test_part_capacity_for),
        cmocka_unit_test(test_part_ref_path),
        cmocka_unit_test(test_part_ref_find_primary),
        cmocka_unit_test(test_burst_apply_matches_serial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
