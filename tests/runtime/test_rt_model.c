/* test_rt_model — device and loyalty fleets (10,000 instances) driven by random signals,
 * timer firings and activity results through the runtime, checked against a plain C model
 * of examples/device.flow and examples/loyalty.flow (states, variables, timers, counts). */
#include "rt_test.h"

#define N_DEV   5000
#define N_LOY   5000
#define TICK_NS (1ull << RT_WHEEL_TICK_SHIFT)
#define RETAIN  (7 * T_DAY)

enum { D_ONLINE, D_REPROV, D_OFFLINE };
enum { L_MEMBER, L_SILVER };

struct m_dev {
    int state;
    int64_t errors, readings, last_seen, reprovisions;
    double last_temp, max_temp;
    uint64_t due; /* timer slot 0: silence (online) or give_up (reprovisioning) */
    uint32_t seq, reprov_seq;
    bool reprov_pending;
    uint64_t eid, signals;
};

struct m_loy {
    int state;
    int64_t purchases, total, tier, last_purchase;
    uint64_t due; /* every 30d status */
    bool completed, started;
    uint64_t completed_ns;
    uint64_t eid, signals;
};

static struct m_dev dev[N_DEV];
static struct m_loy loy[N_LOY];
static unsigned dev_fired, loy_fired;

/* ---- model ---- */

static void m_dev_goto_online(struct m_dev *d, uint64_t now)
{
    d->state = D_ONLINE;
    d->due = now + 15 * T_MIN;
}

static void m_dev_goto_reprov(struct m_dev *d, uint64_t now)
{
    d->reprov_seq = ++d->seq;
    d->reprov_pending = true;
    d->state = D_REPROV;
    d->reprovisions++;
    d->errors = 0;
    d->due = now + 120 * T_MIN;
}

static void m_dev_telemetry(struct m_dev *d, uint64_t now, double temp, int64_t status)
{
    d->signals++;
    if (d->state == D_ONLINE) {
        d->readings++;
        d->last_seen = (int64_t)now;
        if (status != 0) {
            if (++d->errors >= 3) {
                m_dev_goto_reprov(d, now);
                return;
            }
        } else {
            d->errors = 0;
            d->last_temp = temp;
            if (temp > d->max_temp)
                d->max_temp = temp;
        }
        d->due = now + 15 * T_MIN; /* silence reset */
    } else if (d->state == D_REPROV) {
        d->readings++;
    } else if (status == 0) {
        d->readings++;
        d->last_temp = temp;
        m_dev_goto_online(d, now);
    }
}

static void m_dev_heartbeat(struct m_dev *d, uint64_t now)
{
    d->signals++;
    if (d->state == D_OFFLINE) {
        m_dev_goto_online(d, now);
        return;
    }
    d->last_seen = (int64_t)now;
    if (d->state == D_ONLINE)
        d->due = now + 15 * T_MIN;
}

static void m_dev_timer(struct m_dev *d)
{
    uint64_t due = d->due;
    d->due = 0;
    if (d->state == D_ONLINE) {
        m_dev_goto_reprov(d, due);
    } else {
        assert_int_equal(d->state, D_REPROV);
        d->reprov_pending = false; /* cancel reprovision, run alert */
        d->seq++;
        d->state = D_OFFLINE;
    }
}

static void m_loy_purchase(struct m_loy *l, uint64_t now, int64_t amt)
{
    l->signals++;
    if (amt <= 0)
        return;
    l->purchases++;
    l->total += amt;
    l->last_purchase = (int64_t)now;
    if (l->state == L_MEMBER && l->purchases >= 10 && l->tier == 0) {
        l->tier = 1;
        l->state = L_SILVER;
        l->due = now + 30 * T_DAY;
    } else if (l->state == L_SILVER && l->total >= 100000 && l->tier == 1) {
        l->tier = 2;
    }
}

/* ---- checks ---- */

static const char *dev_states[] = { "online", "reprovisioning", "offline" };
static const char *loy_states[] = { "member", "silver" };

static void check_dev(struct rt_env *e, unsigned i)
{
    char id[32];
    snprintf(id, sizeof(id), "dev-%u", i);
    struct rt_describe d;
    rt_describe_of(e, "device", id, &d);
    const struct m_dev *m = &dev[i];
    if (strcmp(d.state, dev_states[m->state]) != 0)
        fail_msg("%s: state %s, model %s", id, d.state, dev_states[m->state]);
    assert_int_equal(rt_var_int(&d, "errors_in_row"), m->errors);
    assert_int_equal(rt_var_int(&d, "readings"), m->readings);
    assert_int_equal(rt_var_int(&d, "last_seen"), m->last_seen);
    assert_int_equal(rt_var_int(&d, "reprovisions"), m->reprovisions);
    assert_true(rt_var_float(&d, "last_temp") == m->last_temp);
    assert_true(rt_var_float(&d, "max_temp") == m->max_temp);
    assert_int_equal(d.signals, m->signals);
    assert_int_equal(d.ntimers, m->due ? 1 : 0);
    if (m->due)
        assert_int_equal(d.timers[0].due_ns, m->due);
}

static void check_loy(struct rt_env *e, unsigned i)
{
    char id[32];
    snprintf(id, sizeof(id), "loy-%u", i);
    struct wf_key k = rt_key("loyalty", id);
    struct rt_describe d;
    const struct m_loy *m = &loy[i];
    if (!m->started) {
        assert_int_equal(rt_describe(e->core, rt_part_of(e, k), k, &d), -ENOENT);
        return;
    }
    rt_describe_of(e, "loyalty", id, &d);
    assert_int_equal(d.completed, m->completed);
    if (!m->completed)
        assert_string_equal(d.state, loy_states[m->state]);
    assert_int_equal(rt_var_int(&d, "purchases"), m->purchases);
    assert_int_equal(rt_var_int(&d, "total_cents"), m->total);
    assert_int_equal(rt_var_int(&d, "tier"), m->tier);
    assert_int_equal(rt_var_int(&d, "last_purchase"), m->last_purchase);
    assert_int_equal(d.signals, m->signals);
    assert_int_equal(d.ntimers, m->due ? 1 : 0);
    if (m->due)
        assert_int_equal(d.timers[0].due_ns, m->due);
}

/* Fire the model's timers due before the tick of now (what rt_timers_due yields). */
static void m_fire(uint64_t now)
{
    uint64_t limit = now & ~(TICK_NS - 1);
    for (unsigned i = 0; i < N_DEV; i++)
        while (dev[i].due && dev[i].due < limit) {
            m_dev_timer(&dev[i]);
            dev_fired++;
        }
    for (unsigned i = 0; i < N_LOY; i++)
        while (loy[i].due && loy[i].due < limit && !loy[i].completed) {
            loy[i].due += 30 * T_DAY;
            loy_fired++;
        }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void test_model_fleets(void **state)
{
    (void)state;
    struct rt_env e;
    rt_env_init(&e, 8, 2000, 1024, 4000);
    for (unsigned i = 0; i < N_DEV; i++) {
        dev[i] = (struct m_dev){ .max_temp = -273.15 };
    }
    memset(loy, 0, sizeof(loy));
    uint64_t t = T0;
    char id[32];
    unsigned results = 0, dups = 0, restarts = 0;
    for (unsigned step = 0; step < 120000; step++) {
        t += rnd(60) * T_SEC + rnd(1000) * 1000;
        if (step % 64 == 0) {
            m_fire(t);
            rt_fire_due(&e, t, NULL);
        }
        uint32_t r = rnd(100);
        if (r < 45) { /* device telemetry, mostly from a small active set */
            unsigned i = rnd(4) ? rnd(N_DEV / 10) : rnd(N_DEV);
            struct m_dev *m = &dev[i];
            snprintf(id, sizeof(id), "dev-%u", i);
            double temp = (double)rnd(400) / 4.0;
            int64_t status = rnd(10) < 3 ? 1 : 0;
            int st = rt_telemetry(&e, id, ++m->eid, t, temp, status);
            assert_int_equal(st, m->signals == 0 ? RT_CREATED : RT_APPLIED);
            if (m->signals == 0)
                m_dev_goto_online(m, t); /* start: enter online, arm silence */
            m_dev_telemetry(m, t, temp, status);
        } else if (r < 50) { /* heartbeat */
            unsigned i = rnd(N_DEV / 10);
            struct m_dev *m = &dev[i];
            snprintf(id, sizeof(id), "dev-%u", i);
            int st = rt_send(&e, "device", id, "heartbeat", ++m->eid, t, NULL, 0);
            assert_int_equal(st, m->signals == 0 ? RT_CREATED : RT_APPLIED);
            if (m->signals == 0)
                m_dev_goto_online(m, t);
            m_dev_heartbeat(m, t);
        } else if (r < 53) { /* a reprovision completes */
            unsigned i = rnd(N_DEV / 10);
            struct m_dev *m = &dev[i];
            if (m->state != D_REPROV || !m->reprov_pending)
                continue;
            snprintf(id, sizeof(id), "dev-%u", i);
            struct wf_key k = rt_key("device", id);
            int st = rt_apply_activity_result(e.core, rt_part_of(&e, k), k, 0, m->reprov_seq, false,
                                              0, t, ++e.lsn, NULL);
            assert_int_equal(st, RT_APPLIED);
            m->reprov_pending = false;
            m_dev_goto_online(m, t);
            results++;
        } else if (r < 95) { /* loyalty purchase */
            unsigned i = rnd(N_LOY);
            struct m_loy *m = &loy[i];
            snprintf(id, sizeof(id), "loy-%u", i);
            int64_t amt = (int64_t)rnd(30000) - 1000;
            int st = rt_purchase(&e, id, ++m->eid, t, amt);
            if (m->completed && t < m->completed_ns + RETAIN) {
                assert_int_equal(st, RT_COMPLETED);
                continue;
            }
            if (m->completed || !m->started) {
                assert_int_equal(st, RT_CREATED);
                restarts += m->completed;
                uint64_t eid = m->eid;
                *m = (struct m_loy){ .started = true, .eid = eid, .due = t + 30 * T_DAY };
            } else {
                assert_int_equal(st, RT_APPLIED);
            }
            m_loy_purchase(m, t, amt);
        } else if (r < 96) { /* opt out */
            unsigned i = rnd(N_LOY);
            struct m_loy *m = &loy[i];
            if (!m->started || m->completed)
                continue;
            snprintf(id, sizeof(id), "loy-%u", i);
            assert_int_equal(rt_send(&e, "loyalty", id, "opt_out", ++m->eid, t, NULL, 0),
                             RT_APPLIED);
            m->signals++;
            m->completed = true;
            m->completed_ns = (t >> 30) << 30;
            m->due = 0;
        } else { /* a resend of the last event id */
            unsigned i = rnd(N_LOY);
            struct m_loy *m = &loy[i];
            if (!m->started || (m->completed && t >= m->completed_ns + RETAIN))
                continue; /* (a resend to an expired tombstone would start it again) */
            snprintf(id, sizeof(id), "loy-%u", i);
            int st = rt_purchase(&e, id, m->eid, t, 100);
            assert_int_equal(st, m->completed ? RT_COMPLETED : RT_DUPLICATE);
            dups++;
        }
        /* the control plane takes the tasks */
        struct rt_task task;
        while (rt_tasks_peek(e.core, &task) == 0)
            rt_tasks_pop(e.core);
    }
    m_fire(t + 61 * T_DAY);
    rt_fire_due(&e, t + 61 * T_DAY, NULL);
    for (unsigned i = 0; i < N_DEV; i++)
        if (dev[i].signals)
            check_dev(&e, i);
    for (unsigned i = 0; i < N_LOY; i++)
        check_loy(&e, i);
    /* the live view agrees with the model */
    unsigned by_state[3] = { 0, 0, 0 };
    for (unsigned i = 0; i < N_DEV; i++)
        if (dev[i].signals)
            by_state[dev[i].state]++;
    for (unsigned s = 0; s < 3; s++)
        assert_int_equal(rt_core_state_count(e.core, 0, s), by_state[s]);
    struct rt_core_stats cs;
    rt_core_stats_get(e.core, &cs);
    assert_int_equal(cs.timers_fired, dev_fired + loy_fired);
    assert_true(dev_fired > 100 && loy_fired > 100 && results > 10 && dups > 100);
    print_message("model: %u device firings, %u loyalty firings, %u results, %u resends, "
                  "%u restarts\n",
                  dev_fired, loy_fired, results, dups, restarts);
    rt_env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_fleets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
