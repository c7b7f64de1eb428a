/*
 * bench_runtime — the workflow runtime on one core: cost per signal (table lookup + dedupe +
 * VM + silence-timer reset + commands) for `device` telemetry and `loyalty` purchase at N
 * workflows, bytes per workflow, and the timer wheel at N armed timers (arm / eager reset /
 * fire). See perf/bench.h for the output contract.
 *
 * Usage: bench_runtime [--quick] [--n WORKFLOWS] [--type device|loyalty] [--burst EVENTS]
 *                      [--reps R]   (device: R passes over the same events, best cycles
 *                                    reported; one pass under callgrind and for loyalty)
 *                      [--ref]      (the burst API: rt_prefetch_instance_ref, then
 *                                    rt_apply_signal_ref, instead of rt_prefetch_instance +
 *                                    rt_apply_signal as the daemon does today)
 * cycles_per_event is the whole loop's TSC / events; median_burst_cycles_per_event the median
 * burst's (robust to preemption on a shared machine).
 *
 * Setup: 64 partitions on one core (a 2-core node owns ~half of 4096 partitions; fewer,
 * larger partitions give the same DRAM behaviour), each sized for N/64 workflows with the
 * daemon's slack (bench_part_capacity), regions from sf_mem_alloc (2 MB pages / THP).
 * Populate: one signal per workflow (signal-with-start; arms each device's silence timer /
 * each loyalty status timer). Measured: M events to uniformly random workflows, processed
 * in bursts: prefetch the table lines of the burst, then the instances, then apply each
 * (the owner loop's shape). Event ids increase, so every event passes dedupe and is
 * applied. Keys, ids and CBOR fields are prepared beforehand (the rx stage computes keys;
 * the daemon has the id in the packet), so the measured region holds only the runtime's own
 * work.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "rt.h"
#include "rt_internal.h"
#include "sf_mem.h"

#define PARTS 64u

/* Workflows per partition as the daemon sizes them (dp_node.c, dp_part_capacity): the mean
 * plus six standard deviations of a uniform hash, plus 16. */
static uint32_t bench_part_capacity(uint64_t workflows, uint32_t parts)
{
    double mean = (double)workflows / parts;
    return (uint32_t)(mean + 6.0 * sqrt(mean) + 16.0);
}

struct ev {
    struct wf_key key;
    struct rt_part *part;
    char id[16]; /* formatted beforehand: the daemon has the id in the packet */
};

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (uint64_t)rss * 4096u;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t g_rng = 0x243f6a8885a308d3ull;

static uint64_t rnd64(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static void id_of(uint32_t i, char *buf)
{
    snprintf(buf, 16, "w-%09u", i); /* 11 bytes */
}

static int run(const char *type, uint64_t n, unsigned burst, unsigned reps, bool use_ref,
               bool quick)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.flow", SF_EXAMPLES_DIR, type);
    struct flow_def *def;
    struct flow_errors errs;
    if (flow_compile_file(path, &def, &errs) != 0) {
        fprintf(stderr, "compile %s failed\n", path);
        return 1;
    }
    struct rt_registry *reg = NULL;
    if (rt_registry_deploy(NULL, def, &reg) != 0)
        return 1;
    const struct rt_def *d = rt_registry_newest(reg, 0);
    bool device = strcmp(type, "device") == 0;

    uint64_t rss0 = rss_bytes();
    struct rt_core_config cc = { .parts_max = PARTS,
                                 .outbound_cap = 1u << 16,
                                 .tombstone_retention_ns = 86400ull * 1000000000ull,
                                 .start_ns = 1700000000ull * 1000000000ull };
    size_t core_bytes = rt_core_mem_size(&cc);
    void *core_mem = sf_mem_alloc(core_bytes, NULL);
    struct rt_core *core = rt_core_init(core_mem, core_bytes, &cc);
    rt_core_set_registry(core, reg);
    struct rt_part_config pc;
    uint32_t cap = bench_part_capacity(n, PARTS);
    rt_part_config_for(&pc, cap, d->stride, 1, 11, 4096);
    size_t part_bytes = (rt_part_mem_size(&pc) + 63) & ~(size_t)63;
    size_t region_bytes = part_bytes * PARTS;
    bool huge = false;
    char *region = sf_mem_alloc(region_bytes, &huge);
    if (!region) {
        fprintf(stderr, "out of memory for %zu bytes\n", region_bytes);
        return 1;
    }
    struct rt_part *parts[PARTS];
    for (unsigned p = 0; p < PARTS; p++) {
        parts[p] = rt_part_init(region + (size_t)p * part_bytes, part_bytes, &pc, p);
        rt_core_attach(core, parts[p]);
    }
    uint64_t rss1 = rss_bytes();

    /* populate */
    uint8_t fields[32];
    struct sf_value vals[2];
    int flen;
    if (device) {
        vals[0] = (struct sf_value){ .type = SF_VAL_FLOAT, .f = 21.5 };
        vals[1] = (struct sf_value){ .type = SF_VAL_INT, .i = 0 };
        flen = sf_fields_encode(fields, sizeof(fields), vals, 2);
    } else {
        vals[0] = (struct sf_value){ .type = SF_VAL_INT, .i = 1250 };
        flen = sf_fields_encode(fields, sizeof(fields), vals, 1);
    }
    const char *sig = device ? "telemetry" : "purchase";
    struct rt_event e = { .type = type,
                          .type_len = (uint8_t)strlen(type),
                          .signal = sig,
                          .signal_len = (uint8_t)strlen(sig),
                          .fields = fields,
                          .fields_len = (uint16_t)flen,
                          .has_event_id = true,
                          .id_len = 11 };
    uint64_t now = cc.start_ns;
    uint64_t eid = 1;
    char id[16];
    uint64_t t0 = bench_mono_ns();
    for (uint64_t i = 0; i < n; i++) {
        id_of((uint32_t)i, id);
        e.id = id;
        e.key = wf_key_make(type, e.type_len, id, 11);
        e.event_id = eid++;
        e.now_ns = now;
        e.cause = i;
        now += 1000; /* 1 us apart: all created within the first seconds */
        int st = rt_apply_signal(core, parts[wf_key_partition(e.key, PARTS)], &e, NULL);
        if (st != RT_CREATED) {
            fprintf(stderr, "populate: %s at %llu\n", rt_status_name(st), (unsigned long long)i);
            return 1;
        }
    }
    double pop_s = (double)(bench_mono_ns() - t0) / 1e9;
    uint64_t rss2 = rss_bytes();
    uint64_t chunks = 0, keys = 0, table = 0, tasks = 0;
    for (unsigned p = 0; p < PARTS; p++) {
        uint64_t a, b, c, t;
        rt_part_usage(parts[p], &a, &b, &c, &t);
        chunks += a;
        keys += b;
        table += c;
        tasks += t;
    }
    fprintf(stderr,
            "%s n=%llu populate %.2fs (%.0f ns/create) huge=%d stride=%u record=%u: table %.1f "
            "B/wf, arena %.1f B/wf, keystore %.1f B/wf, task pool %.1f B/wf, rss growth %.1f "
            "B/wf (init %.1f)\n",
            type, (unsigned long long)n, pop_s, pop_s * 1e9 / (double)n, huge, d->stride,
            d->record_size, (double)table / (double)n, (double)chunks / (double)n,
            (double)keys / (double)n, (double)tasks / (double)n, (double)(rss2 - rss0) / (double)n,
            (double)(rss1 - rss0) / (double)n);
    char extra[512];
    snprintf(extra, sizeof(extra),
             "\"type\":\"%s\",\"table_bytes_per_workflow\":%.1f,\"arena_bytes_per_workflow\":"
             "%.1f,\"keystore_bytes_per_workflow\":%.1f,\"rss_bytes_per_workflow\":%.1f,"
             "\"record_bytes\":%u,\"instance_stride\":%u,\"hugetlb\":%s",
             type, (double)table / (double)n, (double)chunks / (double)n, (double)keys / (double)n,
             (double)(rss2 - rss0) / (double)n, d->record_size, d->stride, huge ? "true" : "false");
    char name[64];
    snprintf(name, sizeof(name), "runtime_bytes_per_workflow_%s", type);
    struct bench_result r = BENCH_RESULT_INIT(name);
    r.workflows = (double)n;
    r.bytes_per_workflow = (double)(table + chunks) / (double)n; /* hot state, incl. timer */
    r.extra_json = extra;
    bench_region_begin();
    bench_region_end();
    bench_emit(&r);

    /* signals: M random workflows in bursts */
    uint64_t m = quick ? 200000 : 2000000;
    if (bench_under_valgrind())
        m = 100000;
    struct ev *evs = malloc(m * sizeof(*evs));
    for (uint64_t i = 0; i < m; i++) {
        uint32_t w = (uint32_t)(rnd64() % n);
        id_of(w, id);
        evs[i].key = wf_key_make(type, e.type_len, id, 11);
        evs[i].part = parts[wf_key_partition(evs[i].key, PARTS)];
        memcpy(evs[i].id, id, sizeof(evs[i].id));
    }
    uint64_t bad = 0;
    double hz = bench_tsc_hz();
    double cyc = 0;
    if (bench_under_valgrind() || !device)
        reps = 1; /* loyalty: more purchases per customer would change the workload (tiers,
                     tasks that fill the pool) */
    /* per-burst TSC deltas: their median is robust to the preemptions of a shared machine */
    uint64_t nbursts = (m + burst - 1) / burst;
    uint32_t *burst_cyc = malloc(nbursts * sizeof(*burst_cyc));
    double med = 0;
    bench_region_begin();
    for (unsigned rep = 0; rep < reps; rep++) {
        uint64_t c0 = bench_tsc(), cb = c0;
        for (uint64_t i = 0; i < m; i += burst) {
            unsigned b = (unsigned)(m - i < burst ? m - i : burst);
            uint32_t refs[64];
            for (unsigned j = 0; j < b; j++)
                rt_prefetch(evs[i + j].part, evs[i + j].key);
            if (use_ref) {
                for (unsigned j = 0; j < b; j++)
                    refs[j] = rt_prefetch_instance_ref(evs[i + j].part, evs[i + j].key);
            } else {
                for (unsigned j = 0; j < b; j++)
                    rt_prefetch_instance(evs[i + j].part, evs[i + j].key);
            }
            for (unsigned j = 0; j < b; j++) {
                const struct ev *x = &evs[i + j];
                e.id = x->id;
                e.key = x->key;
                e.event_id = eid++;
                e.now_ns = now;
                now += 100;
                int st = use_ref ? rt_apply_signal_ref(core, x->part, &e, refs[j], NULL)
                                 : rt_apply_signal(core, x->part, &e, NULL);
                bad += st != RT_APPLIED;
            }
            uint64_t ce = bench_tsc();
            burst_cyc[i / burst] = (uint32_t)(ce - cb > UINT32_MAX ? UINT32_MAX : ce - cb);
            cb = ce;
        }
        uint64_t c1 = bench_tsc();
        double rep_cyc = (double)(c1 - c0) / (double)m;
        qsort(burst_cyc, nbursts, sizeof(*burst_cyc), cmp_u32);
        double rep_med = (double)burst_cyc[nbursts / 2] / burst;
        if (rep == 0 || rep_cyc < cyc)
            cyc = rep_cyc; /* best of the repetitions: the machine is shared */
        if (rep == 0 || rep_med < med)
            med = rep_med;
    }
    bench_region_end();
    free(burst_cyc);
    if (bad) {
        fprintf(stderr, "%llu events not applied\n", (unsigned long long)bad);
        return 1;
    }
    snprintf(name, sizeof(name), "runtime_signal_%s", type);
    r = BENCH_RESULT_INIT(name);
    r.workflows = (double)n;
    r.cycles_per_event = cyc;
    r.events_per_s = hz / cyc;
    r.events = m;
    snprintf(
        extra, sizeof(extra),
        "\"burst\":%u,\"repetitions\":%u,\"api\":\"%s\",\"median_burst_cycles_per_event\":%.1f",
        burst, reps, use_ref ? "prefetch_instance_ref+apply_signal_ref" : "apply_signal", med);
    r.extra_json = extra;
    bench_emit(&r);

    /* timer wheel at n armed timers: eager reset (unlink + link), fire (yield), arm (link) */
    if (device) {
        uint64_t k = m < n ? m : n;
        struct rt_tnode **nodes = malloc(k * sizeof(*nodes));
        uint64_t *refs = malloc(k * sizeof(*refs));
        uint64_t *dues = malloc(k * sizeof(*dues));
        for (uint64_t i = 0; i < k; i++) {
            const struct ev *x = &evs[i];
            uint32_t ref = wf_buckets_find(rt_part_buckets(x->part), x->part->bucket_count, x->key);
            struct rt_inst *in = rt_part_inst(x->part, ref);
            nodes[i] = &rt_inst_nodes(in)[0];
            refs[i] = rt_tref(x->part->core_index, ref, 0);
            dues[i] = vm_record_timer_due(d->def, rt_inst_record(in, d->timer_slots), 0);
        }
        uint64_t armed = rt_timers_armed(core);
        bench_region_begin();
        uint64_t a0 = bench_tsc();
        uint64_t moved = 0;
        for (uint64_t i = 0; i < k; i++) {
            if (!rt_tnode_linked(nodes[i]))
                continue; /* a duplicate pick moved already */
            rt_wheel_unlink(core, nodes[i]);
            rt_wheel_link(core, refs[i], nodes[i], dues[i]);
            moved++;
        }
        uint64_t a1 = bench_tsc();
        bench_region_end();
        snprintf(name, sizeof(name), "runtime_timer_reset_eager");
        r = BENCH_RESULT_INIT(name);
        r.workflows = (double)armed;
        r.cycles_per_event = (double)(a1 - a0) / (double)moved;
        r.events = moved;
        bench_emit(&r);

        /* fire: every timer comes due 16 minutes after the last signal; yield them all */
        struct rt_firing *f = malloc(4096 * sizeof(*f));
        uint64_t fired = 0;
        uint64_t target = now + 16ull * 60 * 1000000000ull;
        bench_region_begin();
        a0 = bench_tsc();
        unsigned got;
        while ((got = rt_timers_due(core, target, 4096, f)) > 0)
            fired += got;
        a1 = bench_tsc();
        bench_region_end();
        r = BENCH_RESULT_INIT("runtime_timer_fire");
        r.workflows = (double)armed;
        r.cycles_per_event = (double)(a1 - a0) / (double)(fired ? fired : 1);
        r.events = fired;
        r.extra_json = "\"note\":\"yield only (cascades + key hash), apply not included\"";
        bench_emit(&r);

        /* arm: link the k nodes again (they are out of the wheel now) at random dues */
        bench_region_begin();
        a0 = bench_tsc();
        uint64_t linked = 0;
        for (uint64_t i = 0; i < k; i++) {
            if (rt_tnode_linked(nodes[i]))
                continue;
            rt_wheel_link(core, refs[i], nodes[i], target + (rnd64() % (3600ull * 1000000000ull)));
            linked++;
        }
        a1 = bench_tsc();
        bench_region_end();
        r = BENCH_RESULT_INIT("runtime_timer_arm");
        r.workflows = (double)armed;
        r.cycles_per_event = (double)(a1 - a0) / (double)(linked ? linked : 1);
        r.events = linked;
        bench_emit(&r);
        free(f);
        free(nodes);
        free(refs);
        free(dues);
    }
    free(evs);
    sf_mem_free(region, region_bytes);
    sf_mem_free(core_mem, core_bytes);
    rt_registry_destroy(reg);
    return 0;
}

int main(int argc, char **argv)
{
    bool quick = bench_has_flag(argc, argv, "--quick");
    bool use_ref = bench_has_flag(argc, argv, "--ref");
    uint64_t n = 0;
    unsigned burst = 32, reps = 1;
    const char *only = NULL;
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--n") == 0)
            n = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--burst") == 0)
            burst = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--type") == 0)
            only = argv[i + 1];
    }
    if (burst == 0 || burst > 64)
        burst = 32;
    if (reps == 0 || reps > 100)
        reps = 1;
    uint64_t sizes[2] = { quick ? 100000 : 1000000, quick ? 1000000 : 10000000 };
    unsigned nsizes = 2;
    if (n) {
        sizes[0] = n;
        nsizes = 1;
    }
    const char *types[2] = { "device", "loyalty" };
    for (unsigned s = 0; s < nsizes; s++)
        for (unsigned t = 0; t < 2; t++) {
            if (only && strcmp(only, types[t]) != 0)
                continue;
            if (run(types[t], sizes[s], burst, reps, use_ref, quick) != 0)
                return 1;
        }
    return 0;
}
