/* test_runtime — the runtime's semantics: signal-with-start, unknown, dedupe, tombstones,
 * timers, activity tasks, versioning, determinism, describe/list. */
#include "rt_test.h"

static void test_signal_with_start(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 2, 1000, 64, 64);
    assert_int_equal(rt_telemetry(&e, "sensor-1", 1, T0, 21.5, 0), RT_CREATED);
    assert_int_equal(rt_telemetry(&e, "sensor-1", 2, T0 + T_SEC, 23.0, 0), RT_APPLIED);
    assert_int_equal(rt_telemetry(&e, "sensor-2", 1, T0, 20.0, 0), RT_CREATED);
    struct rt_describe d;
    rt_describe_of(&e, "device", "sensor-1", &d);
    assert_string_equal(d.type, "device");
    assert_int_equal(d.id_len, 8);
    assert_memory_equal(d.id, "sensor-1", 8);
    assert_string_equal(d.state, "online");
    assert_int_equal(d.version, 1);
    assert_int_equal(d.signals, 2);
    assert_int_equal(d.last_event_id, 2);
    assert_false(d.completed);
    assert_int_equal(rt_var_int(&d, "readings"), 2);
    assert_true(rt_var_float(&d, "last_temp") == 23.0);
    assert_true(rt_var_float(&d, "max_temp") == 23.0);
    assert_int_equal(rt_var_int(&d, "last_seen"), (int64_t)(T0 + T_SEC));
    assert_int_equal(d.ntimers, 1); /* the silence timer, reset by the second signal */
    assert_int_equal(d.timers[0].due_ns, T0 + T_SEC + 15 * T_MIN);
    uint64_t run, done;
    rt_core_def_counts(e.core, 0, &run, &done);
    assert_int_equal(run, 2);
    assert_int_equal(done, 0);
    assert_int_equal(rt_core_state_count(e.core, 0, 0), 2);
    /* JSON fields by name, in any order */
    assert_int_equal(rt_send_json(&e, "device", "sensor-1", "telemetry", 3, true, T0 + 2 * T_SEC,
                                  "{\"status\":0,\"temp_c\":30.25}"),
                     RT_APPLIED);
    rt_describe_of(&e, "device", "sensor-1", &d);
    assert_true(rt_var_float(&d, "last_temp") == 30.25);
    assert_int_equal(rt_var_int(&d, "readings"), 3);
    rt_env_free(&e);
}

static void test_unknown_and_bad_fields(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 100, 64, 64);
    assert_int_equal(rt_send(&e, "nope", "x", "telemetry", 1, T0, NULL, 0), RT_UNKNOWN_TYPE);
    assert_int_equal(rt_send(&e, "device", "x", "bogus", 1, T0, NULL, 0), RT_UNKNOWN_SIGNAL);
    struct sf_value bad[2] = { { .type = SF_VAL_TEXT, .text = { "hot", 3 } },
                               { .type = SF_VAL_INT, .i = 0 } };
    assert_int_equal(rt_send(&e, "device", "x", "telemetry", 1, T0, bad, 2), RT_BAD_FIELDS);
    assert_int_equal(rt_send_json(&e, "device", "x", "telemetry", 1, true, T0, "{\"nope\":1}"),
                     RT_BAD_FIELDS);
    assert_int_equal(rt_part_count(e.part[0]), 0); /* nothing was created */
    /* an existing instance: unknown signal / bad fields change nothing */
    assert_int_equal(rt_telemetry(&e, "x", 5, T0, 1.0, 0), RT_CREATED);
    uint64_t before = rt_part_digest(e.part[0]);
    assert_int_equal(rt_send(&e, "device", "x", "bogus", 6, T0, NULL, 0), RT_UNKNOWN_SIGNAL);
    assert_int_equal(rt_send(&e, "device", "x", "telemetry", 6, T0, bad, 2), RT_BAD_FIELDS);
    assert_int_equal(rt_part_digest(e.part[0]), before);
    /* an int is accepted for a float field; missing fields read as zero */
    struct sf_value ok[1] = { { .type = SF_VAL_INT, .i = 7 } };
    assert_int_equal(rt_send(&e, "device", "x", "telemetry", 6, T0, ok, 1), RT_APPLIED);
    struct rt_core_stats cs;
    rt_core_stats_get(e.core, &cs);
    assert_int_equal(cs.status[RT_UNKNOWN_TYPE], 1);
    assert_int_equal(cs.status[RT_UNKNOWN_SIGNAL], 2);
    assert_int_equal(cs.status[RT_BAD_FIELDS], 3);
    rt_env_free(&e);
}

static void test_dedupe_window(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 100, 64, 64);
    uint64_t t = T0;
    assert_int_equal(rt_purchase(&e, "c", 100, t, 1), RT_CREATED);
    assert_int_equal(rt_purchase(&e, "c", 100, t, 1), RT_DUPLICATE); /* the mark itself */
    assert_int_equal(rt_purchase(&e, "c", 99, t, 1), RT_APPLIED);    /* behind, unseen */
    assert_int_equal(rt_purchase(&e, "c", 99, t, 1), RT_DUPLICATE);
    assert_int_equal(rt_purchase(&e, "c", 36, t, 1), RT_APPLIED); /* 64 behind: inside */
    assert_int_equal(rt_purchase(&e, "c", 36, t, 1), RT_DUPLICATE);
    assert_int_equal(rt_purchase(&e, "c", 35, t, 1), RT_STALE);      /* 65 behind */
    assert_int_equal(rt_purchase(&e, "c", 164, t, 1), RT_APPLIED);   /* slide by 64 */
    assert_int_equal(rt_purchase(&e, "c", 100, t, 1), RT_DUPLICATE); /* last bit of window */
    assert_int_equal(rt_purchase(&e, "c", 99, t, 1), RT_STALE);
    assert_int_equal(rt_purchase(&e, "c", 163, t, 1), RT_APPLIED);
    assert_int_equal(rt_purchase(&e, "c", 1000, t, 1), RT_APPLIED); /* far jump clears */
    assert_int_equal(rt_purchase(&e, "c", 999, t, 1), RT_APPLIED);
    assert_int_equal(rt_purchase(&e, "c", 164, t, 1), RT_STALE);
    /* no event id: never deduplicated */
    assert_int_equal(
        rt_send_json(&e, "loyalty", "c", "purchase", 0, false, t, "{\"amount_cents\":1}"),
        RT_APPLIED);
    assert_int_equal(
        rt_send_json(&e, "loyalty", "c", "purchase", 0, false, t, "{\"amount_cents\":1}"),
        RT_APPLIED);
    struct rt_describe d;
    rt_describe_of(&e, "loyalty", "c", &d);
    assert_int_equal(rt_var_int(&d, "purchases"), 9);
    assert_int_equal(d.signals, 9);
    assert_int_equal(d.dedupe_hwm, 1000);
    assert_int_equal(d.last_event_id, 999);
    struct rt_core_stats cs;
    rt_core_stats_get(e.core, &cs);
    assert_int_equal(cs.status[RT_DUPLICATE], 4);
    assert_int_equal(cs.status[RT_STALE], 3);
    rt_env_free(&e);
}

static void test_tombstone(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 100, 64, 64);
    assert_int_equal(rt_purchase(&e, "c", 1, T0, 500), RT_CREATED);
    assert_int_equal(rt_send(&e, "loyalty", "c", "opt_out", 2, T0 + T_SEC, NULL, 0), RT_APPLIED);
    struct rt_describe d;
    rt_describe_of(&e, "loyalty", "c", &d);
    assert_true(d.completed);
    assert_int_equal(d.ntimers, 0);
    assert_int_equal(rt_timers_armed(e.core), 0);
    uint64_t before = rt_part_digest(e.part[0]);
    /* late resends and new ids: refused, nothing restarts */
    assert_int_equal(rt_purchase(&e, "c", 1, T0 + 2 * T_SEC, 500), RT_COMPLETED);
    assert_int_equal(rt_purchase(&e, "c", 3, T0 + T_DAY, 500), RT_COMPLETED);
    assert_int_equal(rt_part_digest(e.part[0]), before);
    uint64_t run, done;
    rt_core_def_counts(e.core, 16, &run, &done); /* loyalty is type 1: def id 16 */
    assert_int_equal(run, 0);
    assert_int_equal(done, 1);
    /* after the retention: a new incarnation in its place */
    assert_int_equal(rt_purchase(&e, "c", 4, T0 + 8 * T_DAY, 700), RT_CREATED);
    rt_describe_of(&e, "loyalty", "c", &d);
    assert_false(d.completed);
    assert_int_equal(rt_var_int(&d, "purchases"), 1);
    assert_int_equal(rt_var_int(&d, "total_cents"), 700);
    assert_int_equal(d.signals, 1);
    assert_int_equal(rt_part_count(e.part[0]), 1);
    struct rt_part_stats ps;
    rt_part_stats_get(e.part[0], &ps);
    assert_int_equal(ps.tombstones_reused, 1);
    assert_int_equal(ps.completed, 1);
    rt_core_def_counts(e.core, 16, &run, &done);
    assert_int_equal(run, 1);
    assert_int_equal(done, 0);
    rt_env_free(&e);
}

static void test_timers_silence_reset(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 2, 100, 64, 64);
    assert_int_equal(rt_telemetry(&e, "d1", 1, T0, 20, 0), RT_CREATED);
    assert_int_equal(rt_timers_armed(e.core), 1);
    assert_int_equal(rt_fire_due(&e, T0 + 10 * T_MIN, NULL), 0);
    /* a signal at +10m pushes the silence timer to +25m */
    assert_int_equal(rt_telemetry(&e, "d1", 2, T0 + 10 * T_MIN, 20, 0), RT_APPLIED);
    assert_int_equal(rt_fire_due(&e, T0 + 16 * T_MIN, NULL), 0);
    struct rt_firing f[4];
    assert_int_equal(rt_timers_due(e.core, T0 + 25 * T_MIN, 4, f), 0); /* same tick: not yet */
    assert_int_equal(rt_timers_due(e.core, T0 + 25 * T_MIN + 3000000, 4, f), 1);
    assert_int_equal(f[0].due_ns, T0 + 25 * T_MIN);
    assert_int_equal(f[0].slot, 0);
    assert_true(wf_key_equal(f[0].key, rt_key("device", "d1")));
    assert_int_equal(rt_apply_timer(e.core, f[0].part, f[0].key, 0, f[0].due_ns, 99, NULL),
                     RT_APPLIED);
    struct rt_describe d;
    rt_describe_of(&e, "device", "d1", &d);
    assert_string_equal(d.state, "reprovisioning");
    assert_int_equal(d.nactivities, 1);
    assert_string_equal(d.activities[0].name, "reprovision");
    /* the give_up timer (2h) replaced the silence timer */
    assert_int_equal(d.ntimers, 1);
    assert_int_equal(d.timers[0].due_ns, T0 + 25 * T_MIN + 120 * T_MIN);
    /* a replayed (second) firing of the same due time is ignored */
    assert_int_equal(rt_apply_timer(e.core, f[0].part, f[0].key, 0, f[0].due_ns, 100, NULL),
                     RT_IGNORED);
    /* cancel: decommission completes, the wheel forgets the timer */
    assert_int_equal(rt_send(&e, "device", "d1", "decommission", 3, T0 + 30 * T_MIN, NULL, 0),
                     RT_APPLIED);
    assert_int_equal(rt_timers_armed(e.core), 0);
    assert_int_equal(rt_fire_due(&e, T0 + 3 * T_DAY, NULL), 0);
    rt_env_free(&e);
}

static void test_timers_many_in_order(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 4, 20000, 64, 8192);
    enum { N = 5000 };
    char id[32];
    uint64_t rng = 12345;
    for (unsigned i = 0; i < N; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        snprintf(id, sizeof(id), "dev-%u", i);
        /* starts spread over an hour: silence timers due from 15m to 75m */
        assert_int_equal(rt_telemetry(&e, id, 1, T0 + (rng >> 33) % (60 * T_MIN), 20, 0),
                         RT_CREATED);
    }
    assert_int_equal(rt_timers_armed(e.core), N);
    uint64_t last = 0;
    unsigned fired = 0;
    /* advance in uneven steps; every timer fires once, in order, never early */
    for (uint64_t t = T0; t < T0 + 90 * T_MIN; t += 3 * T_MIN + 12345)
        fired += rt_fire_due(&e, t, &last);
    assert_int_equal(fired, N);
    /* all devices now reprovisioning with a 2h give_up timer each */
    assert_int_equal(rt_core_state_count(e.core, 0, 1), N);
    assert_int_equal(rt_timers_armed(e.core), N);
    /* the node was down for two days: every give_up fires in order when it comes back */
    last = 0;
    assert_int_equal(rt_fire_due(&e, T0 + 2 * T_DAY, &last), N);
    assert_int_equal(rt_core_state_count(e.core, 0, 2), N); /* offline */
    assert_int_equal(rt_timers_armed(e.core), 0);
    rt_env_free(&e);
}

static void test_timers_rebuild(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 2, 1000, 64, 1024);
    char id[32];
    for (unsigned i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "l-%u", i);
        assert_int_equal(rt_purchase(&e, id, 1, T0 + i * T_MIN, 100), RT_CREATED);
        snprintf(id, sizeof(id), "d-%u", i);
        assert_int_equal(rt_telemetry(&e, id, 1, T0 + i * T_SEC, 1, 0), RT_CREATED);
    }
    assert_int_equal(rt_timers_armed(e.core), 200);
    rt_timers_rebuild(e.core);
    assert_int_equal(rt_timers_armed(e.core), 200);
    uint64_t last = 0;
    /* 100 silence firings (+15m) ... */
    assert_int_equal(rt_fire_due(&e, T0 + 20 * T_MIN, &last), 100);
    /* ... and after 31 days of downtime: 100 loyalty status timers once each, the give_up
     * timers of the devices, and the status timers re-armed for day 60 do not fire yet */
    last = 0;
    assert_int_equal(rt_fire_due(&e, T0 + 31 * T_DAY, &last), 200);
    struct rt_describe d;
    rt_describe_of(&e, "loyalty", "l-7", &d);
    assert_int_equal(d.ntimers, 1);
    assert_int_equal(d.timers[0].due_ns, T0 + 7 * T_MIN + 60 * T_DAY);
    rt_env_free(&e);
}

static void test_activity_tasks(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 2, 100, 64, 64);
    uint64_t t = T0;
    for (int i = 1; i <= 3; i++)
        rt_telemetry(&e, "d9", (uint64_t)i, t + (uint64_t)i * T_SEC, 90.0, 7);
    uint64_t cause3 = e.lsn;
    struct rt_task task;
    assert_int_equal(rt_tasks_peek(e.core, &task), 0);
    assert_int_equal(task.kind, RT_TASK_RUN);
    assert_string_equal(task.activity, "reprovision");
    assert_int_equal(task.type_len, 6);
    assert_memory_equal(task.type, "device", 6);
    assert_memory_equal(task.id, "d9", 2);
    assert_int_equal(task.seq, 1);
    assert_int_equal(task.attempt, 1);
    assert_int_equal(task.cause, cause3);
    assert_true(wf_key_equal(task.key, rt_key("device", "d9")));
    struct sf_value args[4];
    assert_int_equal(sf_fields_decode(task.args, task.args_len, args, 4), 2);
    assert_int_equal(args[0].type, SF_VAL_TEXT);
    assert_memory_equal(args[0].text.ptr, "d9", 2);
    assert_memory_equal(args[1].text.ptr, "errors", 6);
    char ik[64];
    assert_true(rt_task_idempotency_key(&task, ik, sizeof(ik)) > 0);
    char want[64];
    struct wf_key k = rt_key("device", "d9");
    snprintf(want, sizeof(want), "%016llx%016llx-1", (unsigned long long)k.hi,
             (unsigned long long)k.lo);
    assert_string_equal(ik, want);
    assert_int_equal(rt_tasks_pop(e.core), 0);
    assert_int_equal(rt_tasks_peek(e.core, &task), -ENOENT);
    /* the control plane retries once, then succeeds */
    struct rt_part *p = rt_part_of(&e, k);
    assert_int_equal(rt_note_attempt(e.core, p, k, 0, 1, 1), RT_APPLIED);
    assert_int_equal(rt_note_attempt(e.core, p, k, 0, 1, 1), RT_IGNORED); /* repeated */
    assert_int_equal(rt_note_attempt(e.core, p, k, 0, 2, 1), RT_IGNORED); /* stale seq */
    struct rt_describe d;
    rt_describe_of(&e, "device", "d9", &d);
    assert_int_equal(d.activities[0].attempts, 1);
    assert_int_equal(rt_apply_activity_result(e.core, p, k, 0, 2, false, 0, t + T_MIN, 50, NULL),
                     RT_IGNORED);
    assert_int_equal(rt_apply_activity_result(e.core, p, k, 0, 1, false, 0, t + T_MIN, 51, NULL),
                     RT_APPLIED);
    rt_describe_of(&e, "device", "d9", &d);
    assert_string_equal(d.state, "online");
    assert_int_equal(d.nactivities, 0);
    assert_int_equal(rt_apply_activity_result(e.core, p, k, 0, 1, false, 0, t + T_MIN, 52, NULL),
                     RT_IGNORED); /* a resent result */
    /* give_up path: reprovision cancelled, alert scheduled, cancel notice queued */
    for (int i = 4; i <= 6; i++)
        rt_telemetry(&e, "d9", (uint64_t)i, t + 2 * T_MIN, 90.0, 7);
    assert_int_equal(rt_fire_due(&e, t + 3 * T_MIN + 121 * T_MIN, NULL), 1);
    /* reprovision#2 ended (cancelled) before its task was popped: only the notice goes */
    assert_int_equal(rt_tasks_peek(e.core, &task), 0);
    assert_string_equal(task.activity, "reprovision");
    assert_int_equal(task.kind, RT_TASK_CANCEL);
    assert_int_equal(task.seq, 2);
    rt_tasks_pop(e.core);
    assert_int_equal(rt_tasks_peek(e.core, &task), 0);
    assert_string_equal(task.activity, "alert");
    assert_int_equal(task.seq, 3);
    rt_tasks_pop(e.core);
    assert_int_equal(rt_tasks_peek(e.core, &task), -ENOENT);
    rt_env_free(&e);
}

static void test_tasks_queue_full(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 3, 1000, 4, 64); /* the outbound queue holds 4 tasks */
    char id[32];
    enum { N = 10 };
    for (unsigned i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "d-%u", i);
        for (unsigned j = 1; j <= 3; j++)
            rt_telemetry(&e, id, j, T0 + i * T_SEC, 99, 1);
    }
    uint32_t queued;
    uint64_t flagged;
    rt_tasks_pending(e.core, &queued, &flagged);
    assert_int_equal(queued, 4);
    assert_int_equal(flagged, N - 4);
    /* the result of one flagged task arrives before it was sent: it is never sent */
    struct wf_key k = rt_key("device", "d-9");
    assert_int_equal(rt_apply_activity_result(e.core, rt_part_of(&e, k), k, 0, 1, false, 0,
                                              T0 + T_MIN, 1000, NULL),
                     RT_APPLIED);
    bool seen[N] = { false };
    struct rt_task t;
    unsigned got = 0;
    while (rt_tasks_peek(e.core, &t) == 0) {
        unsigned i;
        assert_int_equal(sscanf(t.id, "d-%u", &i), 1);
        assert_true(i < N);
        assert_false(seen[i]);
        seen[i] = true;
        got++;
        assert_int_equal(rt_tasks_pop(e.core), 0);
    }
    assert_int_equal(got, N - 1);
    assert_false(seen[9]);
    struct rt_core_stats cs;
    rt_core_stats_get(e.core, &cs);
    assert_int_equal(cs.tasks_flagged, N - 4);
    /* recovery: every in-flight task is dispatched again, in creation order */
    rt_tasks_reset(e.core);
    got = 0;
    while (rt_tasks_peek(e.core, &t) == 0) {
        got++;
        rt_tasks_pop(e.core);
    }
    assert_int_equal(got, N - 1);
    rt_env_free(&e);
}

/* The activity-slot starvation attack: slots held by slow activities must refuse only the
 * inputs that would start another activity (RT_BUSY, nothing changed); every other signal,
 * and the creation of new workflows, keeps flowing. */
static void test_tasks_pool_full(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 100, 64, 3); /* 3 task slots; device has 2 activities */
    for (unsigned j = 1; j <= 3; j++)
        assert_int_equal(rt_telemetry(&e, "a", j, T0, 99, 1), j == 1 ? RT_CREATED : RT_APPLIED);
    assert_int_equal(rt_telemetry(&e, "b", 1, T0, 99, 1), RT_CREATED);
    assert_int_equal(rt_telemetry(&e, "b", 2, T0, 99, 1), RT_APPLIED);
    assert_int_equal(rt_telemetry(&e, "b", 3, T0, 99, 1), RT_APPLIED);
    /* 1 free slot, fewer than device's 2 activities: inputs that start nothing still run,
     * new workflows are still created (the landed runtime refused all of them) */
    assert_int_equal(rt_telemetry(&e, "c", 1, T0, 20, 0), RT_CREATED);
    assert_int_equal(rt_telemetry(&e, "d", 1, T0, 20, 0), RT_CREATED);
    assert_int_equal(rt_telemetry(&e, "c", 2, T0, 20, 1), RT_APPLIED);
    assert_int_equal(rt_telemetry(&e, "c", 3, T0, 20, 1), RT_APPLIED);
    assert_int_equal(rt_telemetry(&e, "c", 4, T0, 20, 1), RT_APPLIED); /* takes the last slot */
    /* no slot left: d's third error would run reprovision: refused, nothing changed */
    assert_int_equal(rt_telemetry(&e, "d", 2, T0, 20, 1), RT_APPLIED);
    assert_int_equal(rt_telemetry(&e, "d", 3, T0, 20, 1), RT_APPLIED);
    assert_int_equal(rt_telemetry(&e, "d", 4, T0, 20, 1), RT_BUSY);
    struct rt_describe d;
    rt_describe_of(&e, "device", "d", &d);
    assert_string_equal(d.state, "online");
    assert_int_equal(rt_var_int(&d, "errors_in_row"), 2);
    assert_int_equal(d.nactivities, 0);
    assert_int_equal(d.last_event_id, 3); /* the refused id was not taken by dedupe */
    /* and everything else keeps flowing: a reading on d, new workflows, other types */
    assert_int_equal(rt_telemetry(&e, "e", 1, T0, 20, 0), RT_CREATED);
    assert_int_equal(rt_purchase(&e, "shopper", 1, T0, 100), RT_CREATED);
    assert_int_equal(rt_part_count(e.part[0]), 6);
    struct rt_part_stats ps;
    rt_part_stats_get(e.part[0], &ps);
    assert_int_equal(ps.full_tasks, 1);
    /* a's reprovision fails: its slot is freed and alert takes it (net 0 free) */
    struct wf_key k = rt_key("device", "a");
    assert_int_equal(
        rt_apply_activity_result(e.core, e.part[0], k, 0, 1, true, 0, T0 + T_SEC, 7, NULL),
        RT_APPLIED);
    rt_describe_of(&e, "device", "a", &d);
    assert_string_equal(d.state, "offline");
    assert_int_equal(d.nactivities, 1);
    assert_string_equal(d.activities[0].name, "alert");
    assert_int_equal(rt_telemetry(&e, "d", 4, T0, 20, 1), RT_BUSY);
    /* b's reprovision succeeds: one slot free, d's refused event goes through (same id) */
    k = rt_key("device", "b");
    assert_int_equal(
        rt_apply_activity_result(e.core, e.part[0], k, 0, 1, false, 0, T0 + T_SEC, 8, NULL),
        RT_APPLIED);
    assert_int_equal(rt_telemetry(&e, "d", 4, T0, 20, 1), RT_APPLIED);
    rt_describe_of(&e, "device", "d", &d);
    assert_string_equal(d.state, "reprovisioning");
    rt_env_free(&e);
}

/* `workflow delete`: a running instance with a pending activity and an armed timer, and a
 * completed one, are removed for good (slot, key, tasks, timers); the id starts afresh; the
 * same calls on a second core give the same partition (replay). */
static void run_delete_sequence(struct rt_env *e)
{
    for (unsigned j = 1; j <= 3; j++) /* three errors: reprovision runs, silence timer armed */
        assert_int_equal(rt_telemetry(e, "gone", j, T0, 99, 1), j == 1 ? RT_CREATED : RT_APPLIED);
    assert_int_equal(rt_telemetry(e, "stays", 1, T0, 20, 0), RT_CREATED);
    assert_int_equal(rt_purchase(e, "shopper", 1, T0, 5), RT_CREATED);
    struct wf_key k = rt_key("device", "gone");
    assert_int_equal(rt_delete(e->core, rt_part_of(e, k), k), RT_APPLIED);
    assert_int_equal(rt_delete(e->core, rt_part_of(e, k), k), RT_NOT_FOUND);
}

static void test_delete(void **state)
{
    (void)state;
    struct rt_env e, r;
    rt_env_init(&e, 1, 100, 64, 16);
    rt_env_init(&r, 1, 100, 64, 16);
    run_delete_sequence(&e);
    struct wf_key k = rt_key("device", "gone");
    assert_int_equal(rt_inst_find(e.part[0], k), RT_NONE);
    assert_int_equal(rt_part_count(e.part[0]), 2);
    /* its task is gone from the outbound queue (or skipped as stale), its timer never fires */
    struct rt_task task;
    unsigned tasks_for_gone = 0;
    while (rt_tasks_peek(e.core, &task) == 0) {
        tasks_for_gone += wf_key_equal(task.key, k);
        rt_tasks_pop(e.core);
    }
    assert_int_equal(tasks_for_gone, 0);
    struct rt_firing f[8];
    unsigned n, fired_gone = 0;
    while ((n = rt_timers_due(e.core, T0 + 2 * T_DAY, 8, f)) > 0)
        for (unsigned i = 0; i < n; i++)
            fired_gone += wf_key_equal(f[i].key, k);
    assert_int_equal(fired_gone, 0);
    /* the id starts afresh */
    assert_int_equal(rt_telemetry(&e, "gone", 1, T0 + T_SEC, 20, 0), RT_CREATED);
    struct rt_describe d;
    rt_describe_of(&e, "device", "gone", &d);
    assert_string_equal(d.state, "online");
    assert_int_equal(rt_var_int(&d, "errors_in_row"), 0);
    assert_int_equal(d.signals, 1);
    /* replay: the same inputs and delete on another core give the same partition */
    run_delete_sequence(&r);
    while ((n = rt_timers_due(r.core, T0 + 2 * T_DAY, 8, f)) > 0)
        ;
    assert_int_equal(rt_telemetry(&r, "gone", 1, T0 + T_SEC, 20, 0), RT_CREATED);
    assert_int_equal(rt_part_digest(r.part[0]), rt_part_digest(e.part[0]));
    rt_env_free(&e);
    rt_env_free(&r);
}

static void test_table_full(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 50, 64, 64);
    char id[32];
    unsigned created = 0, full = 0;
    for (unsigned i = 0; i < 80; i++) {
        snprintf(id, sizeof(id), "x-%u", i);
        int st = rt_purchase(&e, id, 1, T0, 1);
        created += st == RT_CREATED;
        full += st == RT_FULL;
    }
    assert_int_equal(created, 50);
    assert_int_equal(full, 30);
    struct rt_part_stats ps;
    rt_part_stats_get(e.part[0], &ps);
    assert_int_equal(ps.full_table + ps.full_arena + ps.full_keystore, 30);
    assert_int_equal(rt_purchase(&e, "x-1", 2, T0, 1), RT_APPLIED); /* existing ones run */
    rt_env_free(&e);
}

static const char *loyalty_v2 = "workflow loyalty version 2\n"
                                "signal purchase(amount_cents: int)\n"
                                "signal opt_out()\n"
                                "var purchases: int = 0\n"
                                "var bonus: int = 0\n"
                                "state member:\n"
                                "    on purchase:\n"
                                "        purchases += 1\n"
                                "        bonus += 2\n"
                                "    on opt_out:\n"
                                "        complete\n";

static void test_versioning(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 2, 100, 64, 64);
    assert_int_equal(rt_purchase(&e, "old", 1, T0, 100), RT_CREATED);
    const struct rt_registry *before = e.reg;
    uint64_t gen = before->generation;
    rt_test_deploy(&e, rt_test_compile_src(loyalty_v2));
    assert_int_equal(e.reg->generation, gen + 1);
    /* an equal or older version is refused */
    struct flow_def *again = rt_test_compile_src(loyalty_v2);
    struct rt_registry *nreg = NULL;
    assert_int_equal(rt_registry_deploy(e.reg, again, &nreg), -EEXIST);
    flow_def_free(again);
    assert_int_equal(rt_purchase(&e, "old", 2, T0 + T_SEC, 100), RT_APPLIED);
    assert_int_equal(rt_purchase(&e, "new", 1, T0 + T_SEC, 100), RT_CREATED);
    struct rt_describe d;
    rt_describe_of(&e, "loyalty", "old", &d);
    assert_int_equal(d.version, 1);
    assert_int_equal(rt_var_int(&d, "total_cents"), 200);
    rt_describe_of(&e, "loyalty", "new", &d);
    assert_int_equal(d.version, 2);
    assert_int_equal(rt_var_int(&d, "bonus"), 2);
    uint64_t run, done;
    rt_core_def_counts(e.core, 16, &run, &done);
    assert_int_equal(run, 1);
    rt_core_def_counts(e.core, 17, &run, &done);
    assert_int_equal(run, 1);
    /* a v1-only signal still works on the v1 instance, not on v2 */
    struct sf_value v[1] = { { .type = SF_VAL_INT, .i = 50 } };
    assert_int_equal(rt_send(&e, "loyalty", "old", "refund", 3, T0 + 2 * T_SEC, v, 1), RT_APPLIED);
    assert_int_equal(rt_send(&e, "loyalty", "new", "refund", 3, T0 + 2 * T_SEC, v, 1),
                     RT_UNKNOWN_SIGNAL);
    rt_env_free(&e);
}

/* Drive a runtime with a fixed pseudo-random input sequence. */
static void drive(struct rt_env *e, unsigned steps, uint64_t seed)
{
    char id[32];
    uint64_t t = T0;
    for (unsigned s = 0; s < steps; s++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(seed >> 33);
        t += (r % 97) * T_SEC * 7;
        snprintf(id, sizeof(id), "w-%u", r % 300);
        if (r % 2)
            rt_telemetry(e, id, s + 1, t, (double)(r % 50), (r / 7) % 3 == 0 ? 1 : 0);
        else
            rt_purchase(e, id, s + 1, t, (int64_t)(r % 5000));
        if (s % 50 == 0)
            rt_fire_due(e, t, NULL);
        struct rt_task task;
        if (s % 13 == 0 && rt_tasks_peek(e->core, &task) == 0) {
            struct rt_part *p = rt_part_of(e, task.key);
            rt_apply_activity_result(e->core, p, task.key, task.act_index, task.seq, r % 3 == 0, 1,
                                     t, ++e->lsn, NULL);
            rt_tasks_pop(e->core);
        }
    }
}

static void test_determinism(void **state)
{
    (void)state;
    struct rt_env a, b;
    rt_env_init(&a, 3, 2000, 8, 256);
    rt_env_init(&b, 3, 2000, 8, 256);
    drive(&a, 5000, 42);
    drive(&b, 5000, 42);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(rt_part_digest(a.part[i]), rt_part_digest(b.part[i]));
        assert_true(rt_part_count(a.part[i]) > 0);
    }
    /* and the digest sees a difference */
    rt_telemetry(&a, "w-1", 999999, T0 + 400 * T_DAY, 1, 0);
    struct wf_key k = rt_key("device", "w-1");
    unsigned pi = (unsigned)(k.hi % 3);
    assert_int_not_equal(rt_part_digest(a.part[pi]), rt_part_digest(b.part[pi]));
    rt_env_free(&a);
    rt_env_free(&b);
}

static void test_list_and_counts(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 1, 1000, 64, 64);
    char id[32];
    for (unsigned i = 0; i < 30; i++) {
        snprintf(id, sizeof(id), "d-%u", i);
        rt_telemetry(&e, id, 1, T0, 1, 0);
        if (i % 3 == 0) /* 10 of them go to reprovisioning */
            for (unsigned j = 2; j <= 4; j++)
                rt_telemetry(&e, id, j, T0, 1, 1);
    }
    for (unsigned i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "c-%u", i);
        rt_purchase(&e, id, 1, T0, 1);
    }
    assert_int_equal(rt_core_state_count(e.core, 0, 0), 20);
    assert_int_equal(rt_core_state_count(e.core, 0, 1), 10);
    struct rt_list_filter f = { .type_id = 0, .state = "reprovisioning" };
    struct rt_list_entry out[4];
    uint64_t cursor = 0;
    unsigned total = 0, calls = 0;
    while (cursor != UINT64_MAX) {
        unsigned n = rt_list(e.core, e.part[0], &f, &cursor, out, 4);
        for (unsigned i = 0; i < n; i++) {
            assert_string_equal(out[i].state, "reprovisioning");
            assert_string_equal(out[i].type, "device");
            unsigned num;
            assert_int_equal(sscanf(out[i].id, "d-%u", &num), 1);
            assert_int_equal(num % 3, 0);
        }
        total += n;
        calls++;
    }
    assert_int_equal(total, 10);
    assert_true(calls >= 3);
    cursor = 0;
    struct rt_list_entry all[64];
    assert_int_equal(rt_list(e.core, e.part[0], NULL, &cursor, all, 64), 35);
    /* recount from the partitions gives the same live view */
    rt_core_recount(e.core);
    assert_int_equal(rt_core_state_count(e.core, 0, 0), 20);
    assert_int_equal(rt_core_state_count(e.core, 0, 1), 10);
    assert_int_equal(rt_core_state_count(e.core, 16, 0), 5);
    rt_env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_with_start),    cmocka_unit_test(test_unknown_and_bad_fields),
        cmocka_unit_test(test_dedupe_window),        cmocka_unit_test(test_tombstone),
        cmocka_unit_test(test_timers_silence_reset), cmocka_unit_test(test_timers_many_in_order),
        cmocka_unit_test(test_timers_rebuild),       cmocka_unit_test(test_activity_tasks),
        cmocka_unit_test(test_tasks_queue_full),     cmocka_unit_test(test_tasks_pool_full),
        cmocka_unit_test(test_table_full),           cmocka_unit_test(test_delete),
        cmocka_unit_test(test_versioning),           cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_list_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
