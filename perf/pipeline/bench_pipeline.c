/*
 * bench_pipeline — the dataplane's own code after receipt, fed by an in-memory generator:
 *   stage "rx_route":    parse frame + xxh3 key hash + partition/owner + ring enqueue
 *   stage "owner_apply": ring dequeue + prefetched table lookup + apply + mbuf free
 * per event for `device` workflows (examples/device.flow: the VM runs, the silence timer
 * resets), at 1 M and 10 M workflows (--quick: 100 k), 8 events per frame, tables in
 * 2 MB pages (hugetlbfs if reserved, else THP-advised). One lcore runs both stages, one
 * after the other on the same events, so each is timed alone (TSC).
 *   stage "rx_route_only": rx_route again, with the rings drained (dequeue + mbuf free,
 *                          untimed) instead of applied, so no table walk evicts the rx
 *                          side's caches between bursts: the receive core's own cost.
 * Under callgrind each result is one region (cg.PID.1, .2, .3 in the order above).
 *
 * The generator (building frames, copying them into mbufs) runs outside the timed regions.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include "bench.h"
#include "dp.h"
#include "dp_input.h"
#include "dp_owner.h"
#include "dp_recover.h"
#include "dp_req.h"
#include "dp_runtime.h"
#include "dp_rx.h"
#include "dp_wal.h"

#define BP_EVENTS_PER_FRAME 8
#define BP_FRAME_POOL       4096 /* distinct pre-built frames, cycled */
#define BP_FRAME_BYTES_MAX  1024
#define BP_CHUNK_FRAMES     16384 /* most frames per chunk: fits the ring and the mempool */
#define BP_BURST_FRAMES                                            \
    128 /* frames per chunk when timing natively: like an rx burst \
           train, the data is still in cache (as with DDIO) */

struct bp_frame {
    uint16_t len;
    uint8_t bytes[BP_FRAME_BYTES_MAX];
};

static struct bp_frame *bp_frames;
static uint64_t bp_rng = 0x9e3779b97f4a7c15ull;

static uint64_t bp_rand(void)
{
    bp_rng ^= bp_rng << 13;
    bp_rng ^= bp_rng >> 7;
    bp_rng ^= bp_rng << 17;
    return bp_rng;
}

/* One frame of `per_frame` events to workflows first.. (sequential) or random ids. */
static void bp_build_frame(struct bp_frame *f, uint64_t workflows, uint64_t *next_id,
                           bool sequential, uint64_t event_id, unsigned per_frame)
{
    struct sf_frame_hdr hdr = { .version = SF_PROTO_VERSION,
                                .sender_id = 1,
                                .frame_seq = event_id };
    int len = sf_frame_begin(f->bytes, sizeof(f->bytes), &hdr);
    for (unsigned e = 0; e < per_frame; e++) {
        char id[24];
        uint64_t n = sequential ? (*next_id)++ % workflows : bp_rand() % workflows;
        int id_len = snprintf(id, sizeof(id), "dev-%08" PRIu64, n);
        uint8_t fields[16];
        struct sf_value v = { .type = SF_VAL_INT, .i = (int64_t)(event_id + e) };
        int fl = sf_fields_encode(fields, sizeof(fields), &v, 1);
        struct sf_event ev = { .type = "device",
                               .type_len = 6,
                               .id = id,
                               .id_len = (uint8_t)id_len,
                               .signal = "telemetry",
                               .signal_len = 9,
                               .event_id = event_id + e,
                               .fields = fields,
                               .fields_len = (uint16_t)fl,
                               .has_event_id = true };
        len = sf_frame_add_event(f->bytes, sizeof(f->bytes), (size_t)len, &ev);
        if (len < 0) {
            fprintf(stderr, "bench_pipeline: frame encoding failed: %d\n", len);
            exit(1);
        }
    }
    f->len = (uint16_t)len;
}

static void bp_fill(struct rte_mbuf **mbufs, unsigned n, unsigned first_frame)
{
    if (rte_pktmbuf_alloc_bulk(dp_node.pool, mbufs, n) != 0) {
        fprintf(stderr, "bench_pipeline: mempool exhausted\n");
        exit(1);
    }
    for (unsigned i = 0; i < n; i++) {
        const struct bp_frame *f = &bp_frames[(first_frame + i) % BP_FRAME_POOL];
        memcpy(rte_pktmbuf_mtod(mbufs[i], void *), f->bytes, f->len);
        rte_pktmbuf_data_len(mbufs[i]) = f->len;
        rte_pktmbuf_pkt_len(mbufs[i]) = f->len;
    }
}

struct bp_stage {
    uint64_t cycles;
    uint64_t events;
};

/* Route `frames` pre-filled mbufs, then apply them; each stage timed alone. */
static void bp_chunk(struct dp_lcore *lc, struct rte_mbuf **mbufs, unsigned frames,
                     struct bp_stage *rx, struct bp_stage *apply, bool region)
{
    uint64_t now = dp_now_ns();
    if (region)
        bench_region_begin();
    uint64_t t0 = bench_tsc();
    for (unsigned i = 0; i < frames; i++)
        dp_rx_route_payload(lc, mbufs[i], 0, (uint16_t)rte_pktmbuf_data_len(mbufs[i]), 0, 0, now,
                            NULL);
    dp_rx_flush(lc);
    uint64_t t1 = bench_tsc();
    if (region) {
        bench_region_end();
        bench_region_begin();
    }
    uint64_t applied = 0, t2 = bench_tsc();
    for (;;) {
        unsigned n = dp_owner_poll(lc);
        if (n == 0)
            break;
        applied += n;
    }
    uint64_t t3 = bench_tsc();
    if (region)
        bench_region_end();
    rx->cycles += t1 - t0;
    rx->events += (uint64_t)frames * BP_EVENTS_PER_FRAME;
    apply->cycles += t3 - t2;
    apply->events += applied;
}

static void bp_emit(const char *stage, uint64_t workflows, const struct bp_stage *s,
                    double bytes_per_wf)
{
    char name[64], extra[128];
    snprintf(name, sizeof(name), "pipeline_%s_%" PRIu64 "k", stage, workflows / 1000);
    snprintf(extra, sizeof(extra), "\"stage\":\"%s\"", stage);
    struct bench_result r = BENCH_RESULT_INIT(name);
    double hz = bench_tsc_hz();
    r.events = s->events;
    r.cycles_per_event = (double)s->cycles / (double)s->events;
    r.events_per_s = hz / r.cycles_per_event;
    r.events_per_frame = BP_EVENTS_PER_FRAME;
    r.workflows = (double)workflows;
    r.bytes_per_workflow = bytes_per_wf;
    r.extra_json = extra;
    bench_emit(&r);
}

/* Take every routed event off the rings and drop its mbuf reference (rx_route_only). */
static void bp_drain(struct dp_lcore *lc)
{
    struct dp_event evs[DP_OWNER_BURST_MAX];
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        unsigned n;
        while ((n = rte_ring_sc_dequeue_burst_elem(lc->out[o], evs, sizeof(evs[0]),
                                                   DP_OWNER_BURST_MAX, NULL)) != 0)
            for (unsigned i = 0; i < n; i++)
                rte_pktmbuf_free(evs[i].m);
    }
}

/* The rx stage alone on the random-signal frames: route + flush timed, drain untimed. */
static void bp_rx_only(struct dp_lcore *lc, struct rte_mbuf **mbufs, uint64_t workflows,
                       uint64_t events)
{
    bool one_region = bench_under_valgrind();
    unsigned chunk = one_region ? BP_CHUNK_FRAMES : BP_BURST_FRAMES;
    struct bp_stage rx = { 0 };
    uint64_t routed_before = lc->counters[DP_C_EVENTS_ROUTED];
    unsigned frame_cursor = 0;
    while (rx.events < events) {
        uint64_t left = (events - rx.events) / BP_EVENTS_PER_FRAME;
        unsigned frames = left < chunk ? (unsigned)left : chunk;
        if (frames == 0)
            break;
        bp_fill(mbufs, frames, frame_cursor);
        frame_cursor += frames;
        uint64_t now = dp_now_ns();
        if (one_region)
            bench_region_begin();
        uint64_t t0 = bench_tsc();
        for (unsigned i = 0; i < frames; i++)
            dp_rx_route_payload(lc, mbufs[i], 0, (uint16_t)rte_pktmbuf_data_len(mbufs[i]), 0, 0,
                                now, NULL);
        dp_rx_flush(lc);
        uint64_t t1 = bench_tsc();
        if (one_region)
            bench_region_end();
        bp_drain(lc);
        rx.cycles += t1 - t0;
        rx.events += (uint64_t)frames * BP_EVENTS_PER_FRAME;
        if (one_region)
            break;
    }
    if (lc->counters[DP_C_EVENTS_ROUTED] - routed_before != rx.events) {
        fprintf(stderr, "bench_pipeline: rx_route_only routed %" PRIu64 " of %" PRIu64 "\n",
                lc->counters[DP_C_EVENTS_ROUTED] - routed_before, rx.events);
        exit(1);
    }
    bp_emit("rx_route_only", workflows, &rx, NAN);
}

static void bp_run(uint64_t workflows, uint64_t events)
{
    struct dp_lcore *lc = dp_node.lcores[0];
    struct rte_mbuf **mbufs = calloc(BP_CHUNK_FRAMES, sizeof(*mbufs));
    struct bp_stage warm_rx = { 0 }, warm_apply = { 0 }, rx = { 0 }, apply = { 0 };
    /* Create every workflow first, through the same path (not measured). */
    uint64_t next_id = 0, event_id = 1;
    while (next_id < workflows) {
        unsigned frames = 0;
        for (; frames < BP_CHUNK_FRAMES && next_id < workflows; frames++) {
            bp_build_frame(&bp_frames[frames % BP_FRAME_POOL], workflows, &next_id, true, event_id,
                           BP_EVENTS_PER_FRAME);
            event_id += BP_EVENTS_PER_FRAME;
            bp_fill(&mbufs[frames], 1, frames);
        }
        bp_chunk(lc, mbufs, frames, &warm_rx, &warm_apply, false);
    }
    /* Signals to random existing workflows. */
    for (unsigned f = 0; f < BP_FRAME_POOL; f++) {
        bp_build_frame(&bp_frames[f], workflows, &next_id, false, event_id, BP_EVENTS_PER_FRAME);
        event_id += BP_EVENTS_PER_FRAME;
    }
    /* Under callgrind: one chunk, so one region per result; natively: short chunks. */
    bool one_region = bench_under_valgrind();
    unsigned chunk = one_region ? BP_CHUNK_FRAMES : BP_BURST_FRAMES;
    unsigned frame_cursor = 0;
    while (rx.events < events) {
        uint64_t left = (events - rx.events) / BP_EVENTS_PER_FRAME;
        unsigned frames = left < chunk ? (unsigned)left : chunk;
        if (frames == 0)
            break;
        bp_fill(mbufs, frames, frame_cursor);
        frame_cursor += frames;
        bp_chunk(lc, mbufs, frames, &rx, &apply, one_region);
        if (one_region)
            break; /* under callgrind: exactly one region per result */
    }
    uint64_t created = lc->counters[DP_C_WORKFLOWS];
    /* bytes in use (table, instance arenas, key store; not the idle task pool or the
     * headroom of partitions sized for the configured capacity) */
    uint64_t table_bytes = 0;
    for (uint32_t p = 0; p < dp_node.cfg.partitions; p++) {
        uint64_t chunks, keys, table, tasks;
        rt_part_usage(dp_node.parts[p], &chunks, &keys, &table, &tasks);
        table_bytes += chunks + keys + table;
    }
    if (created != workflows || apply.events != rx.events) {
        fprintf(stderr,
                "bench_pipeline: created %" PRIu64 " of %" PRIu64 " workflows, applied %" PRIu64
                " of %" PRIu64 " events\n",
                created, workflows, apply.events, rx.events);
        exit(1);
    }
    bp_emit("rx_route", workflows, &rx, (double)table_bytes / (double)workflows);
    bp_emit("owner_apply", workflows, &apply, (double)table_bytes / (double)workflows);
    bp_rx_only(lc, mbufs, workflows, events);
    free(mbufs);
}

int main(int argc, char **argv)
{
    bool quick = bench_has_flag(argc, argv, "--quick");
    uint64_t workflows = quick ? 100000 : 1000000;
    if (argc > 1 && strncmp(argv[argc - 1], "--workflows=", 12) == 0)
        workflows = strtoull(argv[argc - 1] + 12, NULL, 10);
    char *eal[] = { argv[0], "--no-huge",           "-m", "1024", "--no-shconf", "--no-pci", "-l",
                    "0",     "--log-level=*:error", NULL };
    if (rte_eal_init(9, eal) < 0) {
        fprintf(stderr, "bench_pipeline: EAL init failed\n");
        return 1;
    }
    bp_frames = calloc(BP_FRAME_POOL, sizeof(*bp_frames));
    dp_config_defaults(&dp_node.cfg);
    dp_node.cfg.source = DP_SOURCE_NONE;
    dp_node.cfg.wal_enabled = false; /* the volatile path alone; perf/wal measures the log */
    dp_node.cfg.partitions = 4096;
    dp_node.cfg.table_capacity = workflows;
    dp_node.cfg.keystore_bytes = workflows * 32 + (64u << 20);
    dp_node.cfg.ring_size = 1u << 18; /* a whole chunk of events fits */
    dp_node.cfg.mempool_size = BP_CHUNK_FRAMES + 4096;
    dp_node.cfg.burst = 64;
    dp_clock_init();
    char dir[] = "/tmp/sigflow-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    snprintf(dp_node.cfg.dir, sizeof(dp_node.cfg.dir), "%s", dir);
    if (dp_node_setup(&dp_node) != 0)
        return 1;
    /* The events go to `device` workflows (examples/device.flow), as in the demo. */
    char msg[4096], path[512];
    snprintf(path, sizeof(path), "%s/examples/device.flow", SF_SOURCE_ROOT);
    FILE *f = fopen(path, "r");
    static char src[1 << 16];
    size_t len = f ? fread(src, 1, sizeof(src), f) : 0;
    if (f)
        fclose(f);
    if (dp_runtime_deploy(path, src, len, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "bench_pipeline: deploy %s: %s\n", path, msg);
        return 1;
    }
    uint64_t events = quick ? 1000000 : 20000000;
    bp_run(workflows, events);
    dp_node_free(&dp_node);
    char rm[128];
    snprintf(rm, sizeof(rm), "rm -rf %s", dir);
    if (system(rm) != 0)
        fprintf(stderr, "bench_pipeline: could not remove %s\n", dir);
    if (!quick && workflows == 1000000) {
        /* The node is sized once per process: 10 M workflows in a fresh one. */
        fflush(stdout);
        execl(argv[0], argv[0], "--workflows=10000000", (char *)NULL);
        perror("bench_pipeline: exec for 10 M workflows");
        return 1;
    }
    return 0;
}
