/* rt_test.h — helpers shared by the runtime tests (static, header only). */
#ifndef RT_TEST_H
#define RT_TEST_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rt.h"
#include "wf_key.h"

#define T_MIN (60ull * 1000000000ull)
#define T_SEC 1000000000ull
#define T_DAY (24ull * 60 * T_MIN)
#define T0    (1700000000ull * T_SEC) /* a realistic epoch time */

struct rt_env {
    struct rt_registry *reg;
    void *core_mem;
    size_t core_bytes;
    struct rt_core *core;
    unsigned nparts;
    void *part_mem[16];
    size_t part_bytes;
    struct rt_part *part[16];
    uint64_t lsn;
};

static struct flow_def *rt_test_compile(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.flow", SF_EXAMPLES_DIR, name);
    struct flow_def *def = NULL;
    struct flow_errors errs;
    int rc = flow_compile_file(path, &def, &errs);
    if (rc != 0)
        fail_msg("compile %s: %s", path, errs.count ? errs.err[0].text : "?");
    return def;
}

static __attribute__((unused)) struct flow_def *rt_test_compile_src(const char *src)
{
    struct flow_def *def = NULL;
    struct flow_errors errs;
    if (flow_compile_buffer("inline.flow", src, strlen(src), &def, &errs) != 0)
        fail_msg("compile: %s", errs.count ? errs.err[0].text : "?");
    return def;
}

static void rt_test_deploy(struct rt_env *e, struct flow_def *def)
{
    struct rt_registry *nreg;
    assert_int_equal(rt_registry_deploy(e->reg, def, &nreg), 0);
    rt_core_set_registry(e->core, nreg); /* publish, then free the old object */
    rt_registry_release(e->reg);
    e->reg = nreg;
}

/* A core with nparts partitions of `instances` each, outbound queue of qcap, device and
 * loyalty deployed. */
static void rt_env_init(struct rt_env *e, unsigned nparts, uint32_t instances, uint32_t qcap,
                        uint32_t tasks_max)
{
    memset(e, 0, sizeof(*e));
    struct rt_core_config cc = { .parts_max = nparts,
                                 .outbound_cap = qcap,
                                 .tombstone_retention_ns = 7 * T_DAY,
                                 .start_ns = T0 };
    e->core_bytes = rt_core_mem_size(&cc);
    assert_true(e->core_bytes > 0);
    e->core_mem = aligned_alloc(64, (e->core_bytes + 63) & ~(size_t)63);
    e->core = rt_core_init(e->core_mem, e->core_bytes, &cc);
    assert_non_null(e->core);
    struct rt_part_config pc;
    rt_part_config_for(&pc, instances, 224, 4, 16, tasks_max);
    e->part_bytes = rt_part_mem_size(&pc);
    assert_true(e->part_bytes > 0);
    e->nparts = nparts;
    for (unsigned i = 0; i < nparts; i++) {
        e->part_mem[i] = aligned_alloc(64, (e->part_bytes + 63) & ~(size_t)63);
        e->part[i] = rt_part_init(e->part_mem[i], e->part_bytes, &pc, i);
        assert_non_null(e->part[i]);
        assert_int_equal(rt_core_attach(e->core, e->part[i]), (int)i);
    }
    e->reg = rt_registry_new();
    assert_non_null(e->reg);
    rt_core_set_registry(e->core, e->reg);
    rt_test_deploy(e, rt_test_compile("device"));
    rt_test_deploy(e, rt_test_compile("loyalty"));
}

static void rt_env_free(struct rt_env *e)
{
    for (unsigned i = 0; i < e->nparts; i++)
        free(e->part_mem[i]);
    free(e->core_mem);
    rt_registry_destroy(e->reg);
}

static struct wf_key rt_key(const char *type, const char *id)
{
    return wf_key_make(type, strlen(type), id, strlen(id));
}

static struct rt_part *rt_part_of(struct rt_env *e, struct wf_key k)
{
    return e->part[k.hi % e->nparts];
}

/* Send a signal with CBOR fields vals[0..n). event_id 0 = none. Returns the status. */
static int rt_send(struct rt_env *e, const char *type, const char *id, const char *signal,
                   uint64_t event_id, uint64_t now_ns, const struct sf_value *vals, unsigned n)
{
    static uint8_t buf[512];
    int len = sf_fields_encode(buf, sizeof(buf), vals, n);
    assert_true(len >= 0);
    struct rt_event ev = {
        .key = rt_key(type, id),
        .type = type,
        .id = id,
        .signal = signal,
        .fields = buf,
        .event_id = event_id,
        .now_ns = now_ns,
        .cause = ++e->lsn,
        .fields_len = (uint16_t)len,
        .type_len = (uint8_t)strlen(type),
        .id_len = (uint8_t)strlen(id),
        .signal_len = (uint8_t)strlen(signal),
        .has_event_id = event_id != 0,
    };
    return rt_apply_signal(e->core, rt_part_of(e, ev.key), &ev, NULL);
}

static __attribute__((unused)) int rt_send_json(struct rt_env *e, const char *type, const char *id,
                                                const char *signal, uint64_t event_id, bool has_id,
                                                uint64_t now_ns, const char *fields)
{
    struct rt_event ev = {
        .key = rt_key(type, id),
        .type = type,
        .id = id,
        .signal = signal,
        .fields = (const uint8_t *)fields,
        .event_id = event_id,
        .now_ns = now_ns,
        .cause = ++e->lsn,
        .fields_len = (uint16_t)strlen(fields),
        .type_len = (uint8_t)strlen(type),
        .id_len = (uint8_t)strlen(id),
        .signal_len = (uint8_t)strlen(signal),
        .has_event_id = has_id,
        .fields_json = true,
    };
    return rt_apply_signal(e->core, rt_part_of(e, ev.key), &ev, NULL);
}

static __attribute__((unused)) int rt_telemetry(struct rt_env *e, const char *id, uint64_t eid,
                                                uint64_t now, double temp, int64_t status)
{
    struct sf_value v[2] = { { .type = SF_VAL_FLOAT, .f = temp },
                             { .type = SF_VAL_INT, .i = status } };
    return rt_send(e, "device", id, "telemetry", eid, now, v, 2);
}

static __attribute__((unused)) int rt_purchase(struct rt_env *e, const char *id, uint64_t eid,
                                               uint64_t now, int64_t cents)
{
    struct sf_value v[1] = { { .type = SF_VAL_INT, .i = cents } };
    return rt_send(e, "loyalty", id, "purchase", eid, now, v, 1);
}

static __attribute__((unused)) void rt_describe_of(struct rt_env *e, const char *type,
                                                   const char *id, struct rt_describe *d)
{
    struct wf_key k = rt_key(type, id);
    assert_int_equal(rt_describe(e->core, rt_part_of(e, k), k, d), 0);
}

static __attribute__((unused)) int64_t rt_var_int(const struct rt_describe *d, const char *name)
{
    for (unsigned i = 0; i < d->nvars; i++)
        if (strcmp(d->vars[i].name, name) == 0) {
            if (d->vars[i].value.type == SF_VAL_FLOAT)
                return (int64_t)d->vars[i].value.f;
            return d->vars[i].value.i;
        }
    fail_msg("no var %s", name);
    return 0;
}

static __attribute__((unused)) double rt_var_float(const struct rt_describe *d, const char *name)
{
    for (unsigned i = 0; i < d->nvars; i++)
        if (strcmp(d->vars[i].name, name) == 0)
            return d->vars[i].value.f;
    fail_msg("no var %s", name);
    return 0;
}

/* Fire every timer due before now (log-then-apply like the daemon). Returns firings. */
static __attribute__((unused)) unsigned rt_fire_due(struct rt_env *e, uint64_t now,
                                                    uint64_t *last_due)
{
    struct rt_firing f[64];
    unsigned total = 0, n;
    while ((n = rt_timers_due(e->core, now, 64, f)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            assert_true(f[i].due_ns <= now);
            if (last_due) {
                assert_true(f[i].due_ns + (1ull << RT_WHEEL_TICK_SHIFT) > *last_due);
                if (f[i].due_ns > *last_due)
                    *last_due = f[i].due_ns;
            }
            int st = rt_apply_timer(e->core, f[i].part, f[i].key, f[i].slot, f[i].due_ns, ++e->lsn,
                                    NULL);
            assert_true(st == RT_APPLIED || st == RT_IGNORED);
        }
        total += n;
    }
    return total;
}

#endif /* RT_TEST_H */
