/* test_rt_sweep — expired tombstones leave for good (rt_sweep_tombstones): memory levels off
 * under churn, slots and key store entries are reused, tasks and cancel notices of swept
 * instances disappear, the retention boundary, budgets and cursor, and live == replay. */
#include "rt_internal.h"
#include "rt_test.h"

#define RETAIN (7 * T_DAY) /* rt_env_init's tombstone_retention_ns */
#define LOY    16u         /* def id of loyalty v1 (type 1) */

static uint64_t g_rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

/* Table slot positions of p (what a full sweep pass examines). */
static uint64_t positions(const struct rt_part *p)
{
    return (uint64_t)p->bucket_count * WF_TABLE_BUCKET_SLOTS;
}

/* Sweep p whole: budget for every position plus one re-examination per removal. */
static int sweep_all(struct rt_env *e, struct rt_part *p, uint64_t now)
{
    return rt_sweep_tombstones(e->core, p, now, (unsigned)(2 * positions(p)));
}

static void loyalty_id(char *buf, size_t cap, unsigned round, unsigned i)
{
    snprintf(buf, cap, "c%04u-%05u", round, i); /* always 11 bytes */
}

static int opt_out(struct rt_env *e, const char *id, uint64_t eid, uint64_t now)
{
    return rt_send(e, "loyalty", id, "opt_out", eid, now, NULL, 0);
}

static void check_counts_recount(struct rt_env *e)
{
    uint64_t run[RT_DEFS_MAX], done[RT_DEFS_MAX];
    for (unsigned d = 0; d < RT_DEFS_MAX; d++)
        rt_core_def_counts(e->core, d, &run[d], &done[d]);
    rt_core_recount(e->core);
    for (unsigned d = 0; d < RT_DEFS_MAX; d++) {
        uint64_t r, c;
        rt_core_def_counts(e->core, d, &r, &c);
        assert_int_equal(r, run[d]);
        assert_int_equal(c, done[d]);
    }
}

/* Rounds of N workflows that start, complete and are never signalled again: after every
 * round's sweep the table is empty and chunks and key store stay exactly at round 1's. */
static void test_sweep_churn_levels_off(void **state)
{
    (void)state;
    enum { N = 700, ROUNDS = 25 };
    struct rt_env e;
    rt_env_init(&e, 1, 1000, 64, 64);
    struct rt_part *p = e.part[0];
    uint32_t stride = e.reg->defs[LOY].stride;
    uint64_t per_chunk = RT_CHUNK_BYTES / stride;
    uint64_t want_chunk_bytes = (N + per_chunk - 1) / per_chunk * RT_CHUNK_BYTES;
    uint64_t want_key_bytes = (uint64_t)N * rt_key_entry_bytes(11);
    uint64_t t = T0;
    char id[32];
    for (unsigned r = 0; r < ROUNDS; r++) {
        for (unsigned i = 0; i < N; i++) {
            loyalty_id(id, sizeof(id), r, i);
            assert_int_equal(rt_purchase(&e, id, 1, t, 100 + i), RT_CREATED);
        }
        assert_int_equal(rt_part_count(p), N);
        for (unsigned i = 0; i < N; i++) {
            loyalty_id(id, sizeof(id), r, i);
            assert_int_equal(opt_out(&e, id, 2, t + T_SEC), RT_APPLIED);
        }
        uint64_t run, done;
        rt_core_def_counts(e.core, LOY, &run, &done);
        assert_int_equal(run, 0);
        assert_int_equal(done, N);
        /* not yet: nothing leaves */
        assert_int_equal(sweep_all(&e, p, t + RETAIN - 2 * T_SEC), 0);
        assert_int_equal(rt_part_count(p), N);
        t += RETAIN + T_DAY;
        assert_int_equal(rt_fire_due(&e, t, NULL), 0); /* completion disarmed every timer */
        assert_int_equal(sweep_all(&e, p, t), N);
        assert_int_equal(rt_part_count(p), 0);
        assert_int_equal(wf_table_verify(rt_part_table(p)), 0);
        rt_core_def_counts(e.core, LOY, &run, &done);
        assert_int_equal(run + done, 0);
        check_counts_recount(&e);
        uint64_t chunk_bytes, key_bytes, table_bytes, task_bytes, free_slots, free_keys;
        rt_part_usage(p, &chunk_bytes, &key_bytes, &table_bytes, &task_bytes);
        rt_part_reclaimable(p, &free_slots, &free_keys);
        assert_int_equal(chunk_bytes, want_chunk_bytes);
        assert_int_equal(key_bytes, want_key_bytes);
        assert_int_equal(free_slots, N);
        assert_int_equal(free_keys, want_key_bytes);
        struct rt_part_stats ps;
        rt_part_stats_get(p, &ps);
        assert_int_equal(ps.tombstones_expired, (uint64_t)(r + 1) * N);
        assert_int_equal(ps.slots_reused, (uint64_t)r * N);
        assert_int_equal(ps.keys_reused, (uint64_t)r * N);
        assert_int_equal(ps.instances, (uint64_t)(r + 1) * N);
        assert_int_equal(ps.full_arena + ps.full_keystore + ps.full_table, 0);
    }
    /* more than the partition's capacity went through it */
    assert_true((uint64_t)ROUNDS * N > 10 * 1000);
    assert_int_equal(rt_timers_armed(e.core), 0);
    rt_env_free(&e);
}

/* Steady churn with a small budget per step: live instances stay under a bound derived from
 * the retention and the sweep's pass length, nothing is refused, and memory follows the
 * peak of live instances exactly (a new instance grows nothing while a freed slot and key
 * entry wait), so it levels off with them. */
static void test_sweep_steady_small_budget(void **state)
{
    (void)state;
    enum { PER_STEP = 10, BUDGET = 64, STEPS = 4 * 80 }; /* a step is 6 hours */
    struct rt_env e;
    rt_env_init(&e, 1, 2000, 64, 64);
    struct rt_part *p = e.part[0];
    uint64_t per_chunk = RT_CHUNK_BYTES / e.reg->defs[LOY].stride;
    uint64_t t = T0, peak = 0, peak_mid = 0;
    char id[32];
    unsigned n = 0;
    for (unsigned step = 0; step < STEPS; step++) {
        for (unsigned i = 0; i < PER_STEP; i++, n++) {
            loyalty_id(id, sizeof(id), n / 100000, n % 100000);
            assert_int_equal(rt_purchase(&e, id, 1, t + i * T_SEC, 500), RT_CREATED);
            if (rt_part_count(p) > peak)
                peak = rt_part_count(p);
        }
        /* the customers of two steps ago opt out */
        for (unsigned i = n >= 3 * PER_STEP ? n - 3 * PER_STEP : n; i + 2 * PER_STEP < n; i++) {
            loyalty_id(id, sizeof(id), i / 100000, i % 100000);
            assert_int_equal(opt_out(&e, id, 2, t), RT_APPLIED);
        }
        t += 6 * 3600 * T_SEC;
        rt_sweep_tombstones(e.core, p, t, BUDGET);
        uint64_t chunk_bytes, key_bytes, tb, kb;
        rt_part_usage(p, &chunk_bytes, &key_bytes, &tb, &kb);
        assert_int_equal(key_bytes, peak * rt_key_entry_bytes(11));
        assert_int_equal(chunk_bytes, (peak + per_chunk - 1) / per_chunk * RT_CHUNK_BYTES);
        if (step == STEPS / 2)
            peak_mid = peak;
    }
    /* a tombstone lives at most retention (28 steps) + one sweep pass (positions plus
     * removals, BUDGET per step) + 1 step; 3 steps' worth run */
    uint64_t pass_steps = (positions(p) + 1000 + BUDGET - 1) / BUDGET;
    uint64_t bound = PER_STEP * (28 + pass_steps + 1 + 3);
    assert_true(peak <= bound && bound < 2000);
    assert_true(peak - peak_mid <= peak / 20); /* levelled off: within 5 % after day 40 */
    struct rt_part_stats ps;
    rt_part_stats_get(p, &ps);
    assert_int_equal(ps.full_table + ps.full_arena + ps.full_keystore, 0);
    assert_true(ps.tombstones_expired >= (uint64_t)PER_STEP * (STEPS - bound / PER_STEP));
    assert_int_equal(ps.sweep_slots, (uint64_t)BUDGET * STEPS);
    assert_int_equal(wf_table_verify(rt_part_table(p)), 0);
    check_counts_recount(&e);
    rt_env_free(&e);
}

/* The retention boundary on both sides, and running instances are never swept. */
static void test_sweep_boundary(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 100, 64, 64);
    struct rt_part *p = e.part[0];
    uint64_t t = T0 + 123456789;
    assert_int_equal(rt_purchase(&e, "done", 1, t, 500), RT_CREATED);
    assert_int_equal(rt_purchase(&e, "live", 1, t, 500), RT_CREATED);
    assert_int_equal(opt_out(&e, "done", 2, t), RT_APPLIED);
    uint64_t expires = (t >> 30 << 30) + RETAIN; /* completion time in 2^30 ns units */
    assert_int_equal(sweep_all(&e, p, expires - 1), 0);
    assert_int_equal(rt_part_count(p), 2);
    /* the signal path agrees: one ns before, still a tombstone */
    assert_int_equal(rt_purchase(&e, "done", 3, expires - 1, 500), RT_COMPLETED);
    assert_int_equal(sweep_all(&e, p, expires), 1);
    assert_int_equal(rt_part_count(p), 1);
    assert_int_equal(rt_inst_find(p, rt_key("loyalty", "done")), RT_NONE);
    assert_int_not_equal(rt_inst_find(p, rt_key("loyalty", "live")), RT_NONE);
    assert_int_equal(sweep_all(&e, p, expires + 1000 * T_DAY), 0);
    assert_int_equal(rt_part_count(p), 1);
    struct rt_describe d;
    assert_int_equal(rt_describe(e.core, p, rt_key("loyalty", "done"), &d), -ENOENT);
    rt_describe_of(&e, "loyalty", "live", &d);
    assert_false(d.completed);
    rt_env_free(&e);
}

/* A swept id signalled again starts a fresh instance (no dedupe memory); an expired but
 * unswept tombstone is restarted in place as before. */
static void test_sweep_then_signal(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 100, 64, 64);
    struct rt_part *p = e.part[0];
    assert_int_equal(rt_purchase(&e, "a", 5, T0, 500), RT_CREATED);
    assert_int_equal(rt_purchase(&e, "b", 5, T0, 500), RT_CREATED);
    assert_int_equal(opt_out(&e, "a", 6, T0 + T_SEC), RT_APPLIED);
    assert_int_equal(opt_out(&e, "b", 6, T0 + T_SEC), RT_APPLIED);
    uint32_t ref_a = rt_inst_find(p, rt_key("loyalty", "a"));
    uint64_t t = T0 + RETAIN + T_DAY;
    /* sweep only a's slot position: find it by sweeping one position at a time */
    int removed = 0;
    while (rt_inst_find(p, rt_key("loyalty", "a")) != RT_NONE)
        removed += rt_sweep_tombstones(e.core, p, t, 1);
    assert_true(removed == 1 || removed == 2);
    if (removed == 1) {
        /* b expired but not swept: a signal restarts it in place */
        uint32_t ref_b = rt_inst_find(p, rt_key("loyalty", "b"));
        assert_int_equal(rt_purchase(&e, "b", 1, t, 700), RT_CREATED);
        assert_int_equal(rt_inst_find(p, rt_key("loyalty", "b")), ref_b);
        struct rt_part_stats ps;
        rt_part_stats_get(p, &ps);
        assert_int_equal(ps.tombstones_reused, 1);
    }
    /* the swept id: a fresh instance, even an old event id applies, the slot is reused */
    assert_int_equal(rt_purchase(&e, "a", 1, t, 900), RT_CREATED);
    assert_int_equal(rt_inst_find(p, rt_key("loyalty", "a")), ref_a);
    struct rt_describe d;
    rt_describe_of(&e, "loyalty", "a", &d);
    assert_false(d.completed);
    assert_int_equal(d.signals, 1);
    assert_int_equal(d.dedupe_hwm, 1);
    assert_int_equal(rt_var_int(&d, "purchases"), 1);
    assert_int_equal(rt_var_int(&d, "total_cents"), 900);
    assert_int_equal(d.id_len, 1);
    assert_memory_equal(d.id, "a", 1);
    assert_int_equal(rt_purchase(&e, "a", 1, t, 900), RT_DUPLICATE);
    /* a signal to a swept id that does not start anything still refuses cleanly */
    check_counts_recount(&e);
    rt_env_free(&e);
}

/* Tasks of a swept tombstone are gone from the pool and the queue; a cancel notice queued
 * for it is not sent with the data of the instance that reuses its slot. */
static void test_sweep_drops_tasks(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 100, 64, 16);
    rt_test_deploy(&e, rt_test_compile("approval")); /* type 2 */
    rt_test_deploy(&e, rt_test_compile("order"));    /* type 3 */
    struct rt_part *p = e.part[0];
    /* approval: the first signal creates it (create_task runs), withdraw completes it with
     * create_task still in flight */
    assert_int_equal(rt_send(&e, "approval", "r1", "withdraw", 1, T0, NULL, 0), RT_CREATED);
    struct rt_describe d;
    rt_describe_of(&e, "approval", "r1", &d);
    assert_true(d.completed);
    assert_int_equal(p->task_free_count, 15);
    /* order: placed runs charge, cancel_order cancels it (a cancel notice) and completes */
    struct sf_value placed[2] = { { .type = SF_VAL_INT, .i = 2 },
                                  { .type = SF_VAL_INT, .i = 300 } };
    assert_int_equal(rt_send(&e, "order", "o1", "placed", 1, T0, placed, 2), RT_CREATED);
    assert_int_equal(rt_send(&e, "order", "o1", "cancel_order", 2, T0, NULL, 0), RT_APPLIED);
    rt_describe_of(&e, "order", "o1", &d);
    assert_true(d.completed);
    assert_int_equal(p->task_free_count, 15); /* the charge task was freed by the cancel */
    uint32_t qn;
    uint64_t flagged;
    rt_tasks_pending(e.core, &qn, &flagged);
    assert_int_equal(qn, 3); /* create_task run, charge run (stale), charge cancel */
    uint64_t t = T0 + RETAIN + T_DAY;
    assert_int_equal(sweep_all(&e, p, t), 2);
    assert_int_equal(p->task_free_count, 16);
    assert_int_equal(p->task_head, RT_NONE);
    assert_int_equal(rt_part_count(p), 0);
    /* a new order takes o1's slot and key entry: the queue yields only its own task */
    assert_int_equal(rt_send(&e, "order", "o2", "placed", 1, t, placed, 2), RT_CREATED);
    struct rt_task task;
    assert_int_equal(rt_tasks_peek(e.core, &task), 0);
    assert_int_equal(task.kind, RT_TASK_RUN);
    assert_int_equal(task.id_len, 2);
    assert_memory_equal(task.id, "o2", 2);
    assert_memory_equal(task.activity, "charge", 6);
    assert_int_equal(rt_tasks_pop(e.core), 0);
    assert_int_equal(rt_tasks_peek(e.core, &task), -ENOENT);
    struct rt_part_stats ps;
    rt_part_stats_get(p, &ps);
    assert_int_equal(ps.slots_reused, 1);
    assert_int_equal(ps.keys_reused, 1);
    /* a result for the swept approval's task: nothing to apply it to */
    assert_int_equal(rt_apply_activity_result(e.core, p, rt_key("approval", "r1"), 0, 1, false, 7,
                                              t, ++e.lsn, NULL),
                     RT_NOT_FOUND);
    check_counts_recount(&e);
    rt_env_free(&e);
}

/* A budget bounds the positions examined per call; the cursor resumes where it stopped and
 * wraps; a whole pass removes everything expired. */
static void test_sweep_budget_cursor(void **state)
{
    (void)state;
    enum { N = 300, B = 37 };
    struct rt_env e;
    rt_env_init(&e, 1, 1000, 64, 64);
    struct rt_part *p = e.part[0];
    char id[32];
    for (unsigned i = 0; i < N; i++) {
        loyalty_id(id, sizeof(id), 0, i);
        assert_int_equal(rt_purchase(&e, id, 1, T0, 100), RT_CREATED);
        if (i % 3 != 0)
            assert_int_equal(opt_out(&e, id, 2, T0), RT_APPLIED);
    }
    unsigned done = N - (N + 2) / 3; /* i % 3 != 0 completed */
    uint64_t t = T0 + RETAIN + T_DAY, examined = 0, removed = 0;
    uint64_t pos = positions(p);
    assert_int_equal(rt_sweep_tombstones(e.core, p, t, 0), 0);
    assert_int_equal(p->sweep_cursor, 0);
    unsigned calls = 0;
    while (examined < pos + done) {
        uint64_t before = p->sweep_cursor;
        int n = rt_sweep_tombstones(e.core, p, t, B);
        assert_true(n >= 0 && n <= B);
        removed += (uint64_t)n;
        examined += B;
        calls++;
        /* the cursor moved by the positions examined minus the removals (each removal looks
         * at the same position again) */
        assert_int_equal(p->sweep_cursor, (before + B - (uint64_t)n) % pos);
        assert_int_equal(rt_part_count(p), N - removed);
    }
    assert_int_equal(removed, done);
    assert_true(calls > 10);
    struct rt_part_stats ps;
    rt_part_stats_get(p, &ps);
    assert_int_equal(ps.sweep_slots, examined);
    assert_int_equal(ps.tombstones_expired, done);
    /* the running ones remain; another pass finds nothing */
    assert_int_equal(sweep_all(&e, p, t), 0);
    assert_int_equal(rt_part_count(p), (N + 2) / 3);
    rt_env_free(&e);
}

/* Key store policy: exact-size reuse, then the tail, then splitting a larger free entry;
 * the split rests are reused by ids of their size. */
static void test_sweep_keystore_split(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 100, 64, 64); /* key store: 100 x 17 + 64 = 1764 bytes */
    struct rt_part *p = e.part[0];
    assert_int_equal(p->keys_bytes, 1764);
    char id[32];
    for (unsigned i = 0; i < 80; i++) {
        snprintf(id, sizeof(id), "long-%015u", i); /* 20 bytes: 21-byte entries */
        assert_int_equal(rt_purchase(&e, id, 1, T0, 100), RT_CREATED);
        assert_int_equal(opt_out(&e, id, 2, T0), RT_APPLIED);
    }
    assert_int_equal(p->keys_used, 80 * 21);
    uint64_t t = T0 + RETAIN + T_DAY;
    assert_int_equal(sweep_all(&e, p, t), 80);
    /* 8-byte ids (9-byte entries): 9 from the 84-byte tail, then 80 by splitting 21-byte
     * entries into 9 + 12; the 12-byte rests cannot hold a 9-byte entry and a 5-byte rest */
    unsigned made = 0;
    for (unsigned i = 0; i < 95; i++) {
        snprintf(id, sizeof(id), "s-%06u", i);
        int st = rt_purchase(&e, id, 1, t, 100);
        if (st == RT_FULL)
            break;
        assert_int_equal(st, RT_CREATED);
        made++;
    }
    assert_int_equal(made, 89);
    struct rt_part_stats ps;
    rt_part_stats_get(p, &ps);
    assert_int_equal(ps.full_keystore, 1);
    assert_int_equal(ps.keys_reused, 80);
    assert_int_equal(p->keys_used, 80 * 21 + 81);
    uint64_t free_slots, free_keys;
    rt_part_reclaimable(p, &free_slots, &free_keys);
    assert_int_equal(free_keys, 80 * 12);
    /* 11-byte ids use the 12-byte rests exactly */
    for (unsigned i = 0; i < 11; i++) {
        snprintf(id, sizeof(id), "m-%09u", i);
        assert_int_equal(rt_purchase(&e, id, 1, t, 100), RT_CREATED);
    }
    rt_part_reclaimable(p, &free_slots, &free_keys);
    assert_int_equal(free_keys, 69 * 12);
    assert_int_equal(p->keys_used, 80 * 21 + 81);
    /* and every id still reads back right */
    struct rt_describe d;
    rt_describe_of(&e, "loyalty", "s-000042", &d);
    assert_int_equal(d.id_len, 8);
    assert_memory_equal(d.id, "s-000042", 8);
    rt_describe_of(&e, "loyalty", "m-000000010", &d);
    assert_memory_equal(d.id, "m-000000010", 11);
    rt_env_free(&e);
}

/* Restart of an expired tombstone on a newer version gives the old slot back. */
static void test_sweep_restart_new_version_frees_slot(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 100, 64, 64);
    struct rt_part *p = e.part[0];
    assert_int_equal(rt_purchase(&e, "v", 1, T0, 100), RT_CREATED);
    assert_int_equal(opt_out(&e, "v", 2, T0), RT_APPLIED);
    uint32_t old_ref = rt_inst_find(p, rt_key("loyalty", "v"));
    char path[512];
    snprintf(path, sizeof(path), "%s/loyalty.flow", SF_EXAMPLES_DIR);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char src[8192];
    size_t n = fread(src, 1, sizeof(src) - 1, f);
    fclose(f);
    src[n] = 0;
    char *v = strstr(src, "version 1");
    assert_non_null(v);
    v[8] = '2';
    rt_test_deploy(&e, rt_test_compile_src(src));
    uint64_t t = T0 + RETAIN + T_DAY;
    assert_int_equal(rt_purchase(&e, "v", 3, t, 100), RT_CREATED);
    uint32_t new_ref = rt_inst_find(p, rt_key("loyalty", "v"));
    assert_int_not_equal(new_ref, old_ref);
    uint64_t free_slots, free_keys;
    rt_part_reclaimable(p, &free_slots, &free_keys);
    assert_int_equal(free_slots, 1);
    assert_int_equal(free_keys, 0);
    assert_int_equal(p->arena[LOY].free_head, old_ref);
    struct rt_describe d;
    rt_describe_of(&e, "loyalty", "v", &d);
    assert_int_equal(d.version, 2);
    assert_int_equal(rt_var_int(&d, "purchases"), 1);
    check_counts_recount(&e);
    rt_env_free(&e);
}

/* ---- live == replay ---------------------------------------------------------------------- */

enum { IN_SIGNAL, IN_TIMER, IN_RESULT, IN_SWEEP };

/* One logged input, as the daemon would log it. */
struct in_rec {
    uint8_t kind, part;
    char type[16], id[24], sig[16];
    struct sf_value v[2];
    unsigned nv, slot, budget;
    uint32_t seq;
    bool failed;
    struct wf_key key;
    uint64_t eid, t, cause;
};

struct in_log {
    struct in_rec *r;
    size_t n, cap;
};

static int apply_rec(struct rt_env *e, const struct in_rec *r)
{
    struct rt_part *p = e->part[r->part];
    switch (r->kind) {
    case IN_SIGNAL: {
        uint8_t buf[64];
        int len = sf_fields_encode(buf, sizeof(buf), r->v, r->nv);
        assert_true(len >= 0);
        struct rt_event ev = {
            .key = r->key,
            .type = r->type,
            .id = r->id,
            .signal = r->sig,
            .fields = buf,
            .event_id = r->eid,
            .now_ns = r->t,
            .cause = r->cause,
            .fields_len = (uint16_t)len,
            .type_len = (uint8_t)strlen(r->type),
            .id_len = (uint8_t)strlen(r->id),
            .signal_len = (uint8_t)strlen(r->sig),
            .has_event_id = true,
        };
        return rt_apply_signal(e->core, p, &ev, NULL);
    }
    case IN_TIMER:
        return rt_apply_timer(e->core, p, r->key, r->slot, r->t, r->cause, NULL);
    case IN_RESULT:
        return rt_apply_activity_result(e->core, p, r->key, r->slot, r->seq, r->failed, 1, r->t,
                                        r->cause, NULL);
    default:
        return rt_sweep_tombstones(e->core, p, r->t, r->budget);
    }
}

/* Log r, then apply it to the live env (the daemon's order). */
static int log_apply(struct in_log *log, struct rt_env *live, struct in_rec *r)
{
    r->cause = ++live->lsn;
    if (log->n == log->cap) {
        log->cap = log->cap ? 2 * log->cap : 4096;
        log->r = realloc(log->r, log->cap * sizeof(*log->r));
        assert_non_null(log->r);
    }
    log->r[log->n++] = *r;
    return apply_rec(live, r);
}

static void log_signal(struct in_log *log, struct rt_env *live, const char *type, const char *id,
                       const char *sig, uint64_t eid, uint64_t t, const struct sf_value *v,
                       unsigned nv)
{
    struct in_rec r = { .kind = IN_SIGNAL, .eid = eid, .t = t, .nv = nv };
    snprintf(r.type, sizeof(r.type), "%s", type);
    snprintf(r.id, sizeof(r.id), "%s", id);
    snprintf(r.sig, sizeof(r.sig), "%s", sig);
    if (nv)
        memcpy(r.v, v, nv * sizeof(*v));
    r.key = rt_key(type, id);
    r.part = (uint8_t)(r.key.hi % live->nparts);
    log_apply(log, live, &r);
}

/* One step of a random workload on the live env: creates, signals, opt-outs, timers,
 * activity results and sweeps with random budgets, all logged. Returns the next time. */
static uint64_t workload_step(struct in_log *log, struct rt_env *e, uint64_t t, uint64_t r)
{
    char id[32];
    unsigned which = (unsigned)(r % 100);
    unsigned who = (unsigned)((r >> 8) % 3000);
    uint64_t eid = (t - T0) / T_SEC + 1;
    struct sf_value v[2] = { { .type = SF_VAL_INT, .i = (int64_t)((r >> 20) % 5000) + 1 },
                             { .type = SF_VAL_INT, .i = (r >> 30) % 4 == 0 } };
    if (which < 45) {
        snprintf(id, sizeof(id), "cust-%u", who);
        log_signal(log, e, "loyalty", id, "purchase", eid, t, v, 1);
    } else if (which < 65) {
        snprintf(id, sizeof(id), "cust-%u", who);
        log_signal(log, e, "loyalty", id, "opt_out", eid, t, NULL, 0);
    } else if (which < 85) {
        snprintf(id, sizeof(id), "dev-%u", who % 500);
        v[0] = (struct sf_value){ .type = SF_VAL_FLOAT, .f = 20.5 };
        log_signal(log, e, "device", id, "telemetry", eid, t, v, 2);
    } else if (which < 86) {
        snprintf(id, sizeof(id), "dev-%u", who % 500);
        log_signal(log, e, "device", id, "decommission", eid, t, NULL, 0);
    } else if (which < 95) {
        struct rt_task task;
        for (unsigned k = 0; k < 64 && rt_tasks_peek(e->core, &task) == 0; k++) {
            if (task.kind == RT_TASK_RUN) {
                struct in_rec in = { .kind = IN_RESULT,
                                     .part = (uint8_t)(task.key.hi % e->nparts),
                                     .key = task.key,
                                     .slot = task.act_index,
                                     .seq = task.seq,
                                     .failed = (r >> 12) % 3 == 0,
                                     .t = t };
                log_apply(log, e, &in);
            }
            rt_tasks_pop(e->core);
        }
    } else {
        struct in_rec in = { .kind = IN_SWEEP,
                             .part = (uint8_t)((r >> 40) % e->nparts),
                             .budget = (unsigned)((r >> 16) % 700),
                             .t = t };
        log_apply(log, e, &in);
    }
    struct rt_firing f[16];
    unsigned n;
    while ((n = rt_timers_due(e->core, t, 16, f)) > 0)
        for (unsigned i = 0; i < n; i++) {
            struct in_rec in = { .kind = IN_TIMER,
                                 .part = (uint8_t)(f[i].key.hi % e->nparts),
                                 .key = f[i].key,
                                 .slot = f[i].slot,
                                 .t = f[i].due_ns };
            int st = log_apply(log, e, &in);
            assert_true(st == RT_APPLIED || st == RT_IGNORED || st == RT_FULL || st == RT_BUSY);
        }
    return t + ((r >> 44) % 7200) * T_SEC + (r & 0xfffff); /* about an hour on average */
}

static void assert_same_parts(struct rt_env *a, struct rt_env *b)
{
    for (unsigned i = 0; i < a->nparts; i++)
        assert_int_equal(rt_part_digest(a->part[i]), rt_part_digest(b->part[i]));
}

/* The live core runs a random workload (sweeps included) and logs every input; a replay
 * core applies the log from the start, a third core loads a copy of the live regions
 * taken mid-way (a snapshot) and applies the rest of the log: all three have byte-identical
 * partitions (digest), and every input gave the same status. */
static void test_sweep_live_equals_replay(void **state)
{
    (void)state;
    enum { STEPS = 30000, SNAP_AT = 12000 };
    struct rt_env live, replay, snap;
    rt_env_init(&live, 2, 2500, 256, 512);
    rt_env_init(&replay, 2, 2500, 256, 512);
    rt_env_init(&snap, 2, 2500, 256, 512);
    struct in_log log = { 0 };
    uint64_t t = T0;
    size_t replayed = 0, snap_from = 0;
    for (unsigned s = 0; s < STEPS; s++) {
        t = workload_step(&log, &live, t, rnd());
        if (s == SNAP_AT) {
            /* the snapshot: region bytes copied, then the volatile core state rebuilt */
            for (unsigned i = 0; i < live.nparts; i++)
                memcpy(snap.part_mem[i], live.part_mem[i], live.part_bytes);
            rt_timers_rebuild(snap.core);
            rt_tasks_reset(snap.core);
            rt_core_recount(snap.core);
            snap_from = log.n;
            assert_same_parts(&live, &snap);
        }
        if (s % 1000 == 999) {
            for (; replayed < log.n; replayed++)
                apply_rec(&replay, &log.r[replayed]);
            assert_same_parts(&live, &replay);
        }
    }
    for (; replayed < log.n; replayed++)
        apply_rec(&replay, &log.r[replayed]);
    for (size_t i = snap_from; i < log.n; i++)
        apply_rec(&snap, &log.r[i]);
    assert_same_parts(&live, &replay);
    assert_same_parts(&live, &snap);
    uint64_t expired = 0, reused = 0, slots_reused = 0, sweeps = 0;
    for (size_t i = 0; i < log.n; i++)
        sweeps += log.r[i].kind == IN_SWEEP;
    for (unsigned i = 0; i < live.nparts; i++) {
        struct rt_part_stats ps;
        rt_part_stats_get(live.part[i], &ps);
        expired += ps.tombstones_expired;
        reused += ps.tombstones_reused;
        slots_reused += ps.slots_reused;
        assert_int_equal(wf_table_verify(rt_part_table(live.part[i])), 0);
    }
    /* every path was exercised */
    assert_true(expired > 100 && reused > 10 && slots_reused > 100 && sweeps > 1000);
    check_counts_recount(&live);
    check_counts_recount(&snap);
    free(log.r);
    rt_env_free(&live);
    rt_env_free(&replay);
    rt_env_free(&snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_churn_levels_off),
        cmocka_unit_test(test_sweep_steady_small_budget),
        cmocka_unit_test(test_sweep_boundary),
        cmocka_unit_test(test_sweep_then_signal),
        cmocka_unit_test(test_sweep_drops_tasks),
        cmocka_unit_test(test_sweep_budget_cursor),
        cmocka_unit_test(test_sweep_keystore_split),
        cmocka_unit_test(test_sweep_restart_new_version_frees_slot),
        cmocka_unit_test(test_sweep_live_equals_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
