/*
 * bench_table — the owner core's workflow state at 1 M / 10 M workflows (perf/bench.h).
 *
 * Workflows are spread over WF_BENCH_PARTITIONS partitions by wf_key_partition, as the
 * daemon does; one core owns them all here (all partitions carved from one sf_mem_alloc
 * region). Each event is handled like the owner loop handles a ring burst of
 * WF_BENCH_BURST: hash (type, id) → key, partition, then
 *   insert:          as apply_pipelined, every event creating its workflow
 *   apply_ref:       through the owner's 16-byte partition handles (wf_part_ref): prefetch
 *                    table lines; look in primary lines, prefetch records (or secondary
 *                    lines); resolve those, prefetch their records; apply
 *   apply_overlap:   apply_ref's four stages on four consecutive bursts at once (apply
 *                    b-3, resolve b-2, find b-1, hash b), as an owner loop can do across ring
 *                    drains, so that each prefetch has a whole burst of work to arrive
 *   apply_burst_api: apply_ref's stages as the library packages them (wf_burst_apply),
 *                    keys computed first as rx does
 *   apply_pipelined: prefetch partition headers; prefetch table lines; find + prefetch
 *                    records; apply (every DRAM line of the burst is in flight together)
 *   apply_prefetch:  prefetch table lines; wf_part_apply
 *   apply_plain:     wf_part_apply per event, no prefetch
 *   floor_2lines:    no table logic: one random table line read and one random record
 *                    line written per event, prefetched a burst ahead (the memory floor of
 *                    any design that keeps slots and records apart, on this machine)
 * Events are random (uniform) over existing workflows; their ids are pre-formatted in a
 * sequential buffer, standing in for packets in an rx burst.
 * Usage: bench_table [--quick] [--n WORKFLOWS] [--burst EVENTS] [--mode apply_ref|...]
 *        (--n: one size only; --mode: insert plus that mode only, e.g. under callgrind)
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "wf_key.h"
#include "sf_mem.h"
#include "sf_wfstore.h"

#define WF_BENCH_PARTITIONS 4096u
#define WF_BENCH_BURST      32u  /* events per ring burst, default */
#define WF_BENCH_BURST_MAX  256u /* --burst limit */
#define WF_BENCH_ID_LEN     16u  /* "sensor-" + 9 digits */
#define WF_BENCH_TYPE       "device"
#define WF_BENCH_TYPE_LEN   6u

struct bench_event {
    char name[WF_BENCH_TYPE_LEN + WF_BENCH_ID_LEN + 2]; /* type then id, as in a frame */
    uint64_t event_id;
};
_Static_assert(sizeof(struct bench_event) == 32, "events are 32 bytes, like a small ring entry");

struct bench_store {
    struct wf_part *part[WF_BENCH_PARTITIONS];
    struct wf_part_ref ref[WF_BENCH_PARTITIONS]; /* the owner's handle array */
    uint64_t ref_applied;                        /* signals applied through handles */
    void *region;
    size_t region_bytes;
    bool huge;
    uint32_t capacity;     /* per partition */
    size_t keystore_bytes; /* per partition */
    size_t part_bytes;     /* per partition, 64-byte aligned */
};

enum bench_mode {
    BENCH_INSERT,
    BENCH_REF,
    BENCH_OVERLAP,
    BENCH_BURST_API,
    BENCH_PIPELINED,
    BENCH_PREFETCH,
    BENCH_PLAIN,
    BENCH_FLOOR
};
static const char *const bench_mode_name[] = { "insert",          "apply_ref",
                                               "apply_overlap",   "apply_burst_api",
                                               "apply_pipelined", "apply_prefetch",
                                               "apply_plain",     "floor_2lines" };

/* CPU time of this thread: on a shared 2-core machine the TSC also counts time the
 * benchmark was descheduled; oncpu_cycles_per_event does not. */
static uint64_t bench_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t bench_burst_len = WF_BENCH_BURST;
static const char *bench_only_mode; /* --mode NAME: run insert and this mode only */

static uint64_t bench_rng = 0x2545F4914F6CDD1Dull;

static uint64_t bench_rand(void)
{
    bench_rng ^= bench_rng << 13;
    bench_rng ^= bench_rng >> 7;
    bench_rng ^= bench_rng << 17;
    return bench_rng;
}

/* "device" then "sensor-" and 9 digits, NUL-terminated. */
static void bench_format_name(char *out, uint32_t n)
{
    memcpy(out, WF_BENCH_TYPE, WF_BENCH_TYPE_LEN);
    out += WF_BENCH_TYPE_LEN;
    memcpy(out, "sensor-", 7);
    for (int d = 8; d >= 0; d--) {
        out[7 + d] = (char)('0' + n % 10);
        n /= 10;
    }
    out[WF_BENCH_ID_LEN] = 0;
}

static int bench_store_init(struct bench_store *s, uint64_t workflows)
{
    s->ref_applied = 0;
    s->capacity = wf_part_capacity_for(workflows, WF_BENCH_PARTITIONS);
    s->keystore_bytes = (size_t)s->capacity * (WF_KEY_ENTRY_HDR + WF_BENCH_ID_LEN) + 64;
    s->part_bytes = (wf_part_mem_size(s->capacity, s->keystore_bytes) + 63) & ~(size_t)63;
    s->region_bytes = s->part_bytes * WF_BENCH_PARTITIONS;
    s->region = sf_mem_alloc_flags(s->region_bytes, SF_MEM_PREFAULT, &s->huge);
    if (s->region == NULL)
        return -1;
    for (uint32_t p = 0; p < WF_BENCH_PARTITIONS; p++) {
        s->part[p] = (struct wf_part *)((char *)s->region + (size_t)p * s->part_bytes);
        int rc = wf_part_init(s->part[p], s->part_bytes, s->capacity, s->keystore_bytes);
        assert(rc == 0);
        (void)rc;
        wf_part_ref_get(s->part[p], &s->ref[p]);
    }
    return 0;
}

/* One burst in flight through the partition handles (wf_part_ref). */
struct bench_stage {
    const struct bench_event *ev;
    uint32_t n;
    struct wf_key k[WF_BENCH_BURST_MAX];
    uint32_t part[WF_BENCH_BURST_MAX], rec[WF_BENCH_BURST_MAX];
};

/* Stage 1: hash, partition, prefetch the table line. */
static void bench_stage_hash(const struct bench_store *s, struct bench_stage *st)
{
    assert(st->n <= WF_BENCH_BURST_MAX);
    for (uint32_t i = 0; i < st->n; i++) {
        st->k[i] = wf_key_make(st->ev[i].name, WF_BENCH_TYPE_LEN,
                               st->ev[i].name + WF_BENCH_TYPE_LEN, WF_BENCH_ID_LEN);
        st->part[i] = wf_key_partition(st->k[i], WF_BENCH_PARTITIONS);
        wf_ref_prefetch(&s->ref[st->part[i]], st->k[i]);
    }
}

/* Stage 2: look in the primary line; prefetch the record, or the secondary line. */
static void bench_stage_find(const struct bench_store *s, struct bench_stage *st)
{
    for (uint32_t i = 0; i < st->n; i++)
        st->rec[i] = wf_ref_find_primary(&s->ref[st->part[i]], st->k[i]);
}

/* Stage 2b: resolve the keys that may live in their secondary line; prefetch records. */
static void bench_stage_resolve(const struct bench_store *s, struct bench_stage *st)
{
    for (uint32_t i = 0; i < st->n; i++)
        if (st->rec[i] == WF_REC_PENDING)
            st->rec[i] = wf_ref_find_prefetch(&s->ref[st->part[i]], st->k[i]);
}

/* Stage 3: apply (create through the partition when stage 2 found nothing). Returns events
 * refused. */
static uint32_t bench_stage_apply(struct bench_store *s, const struct bench_stage *st, uint64_t ts)
{
    uint32_t refused = 0;
    for (uint32_t i = 0; i < st->n; i++) {
        const struct bench_event *e = &st->ev[i];
        if (st->rec[i] != WF_REC_NONE) {
            wf_ref_apply(&s->ref[st->part[i]], st->rec[i], e->event_id, ts);
            s->ref_applied++;
        } else {
            refused += wf_part_apply_found(s->part[st->part[i]], WF_REC_NONE, st->k[i], e->name,
                                           WF_BENCH_TYPE_LEN, e->name + WF_BENCH_TYPE_LEN,
                                           WF_BENCH_ID_LEN, e->event_id, ts) < 0;
        }
    }
    return refused;
}

/* The three stages on one burst, one after the other. Returns events refused. */
static uint32_t bench_burst_ref(struct bench_store *s, const struct bench_event *ev, uint32_t n,
                                uint64_t ts)
{
    static struct bench_stage st;
    st.ev = ev;
    st.n = n;
    bench_stage_hash(s, &st);
    bench_stage_find(s, &st);
    bench_stage_resolve(s, &st);
    return bench_stage_apply(s, &st, ts);
}

/* The stages of four consecutive bursts overlapped: apply burst b-3, resolve b-2, find
 * b-1, hash b, so every prefetch has a whole burst of work to arrive. Returns events
 * refused. */
static uint64_t bench_run_overlap(struct bench_store *s, const struct bench_event *ev,
                                  uint64_t events, uint64_t ts)
{
    static struct bench_stage st[4];
    uint64_t bursts = (events + bench_burst_len - 1) / bench_burst_len, refused = 0;
    for (uint64_t b = 0; b < bursts + 3; b++) {
        if (b >= 3)
            refused += bench_stage_apply(s, &st[(b - 3) % 4], ts);
        if (b >= 2 && b - 2 < bursts)
            bench_stage_resolve(s, &st[(b - 2) % 4]);
        if (b >= 1 && b - 1 < bursts)
            bench_stage_find(s, &st[(b - 1) % 4]);
        if (b < bursts) {
            struct bench_stage *cur = &st[b % 4];
            uint64_t base = b * bench_burst_len;
            cur->ev = ev + base;
            cur->n = events - base < bench_burst_len ? (uint32_t)(events - base) : bench_burst_len;
            bench_stage_hash(s, cur);
        }
    }
    return refused;
}

/* A burst through wf_burst_apply, as the owner core calls it with keys computed by rx.
 * Returns events refused. */
static uint32_t bench_burst_api(struct bench_store *s, const struct bench_event *ev, uint32_t n,
                                uint64_t ts)
{
    struct wf_burst_event be[WF_BURST_MAX];
    int8_t result[WF_BURST_MAX];
    assert(n <= WF_BURST_MAX);
    for (uint32_t i = 0; i < n; i++) {
        const char *name = ev[i].name;
        struct wf_key k =
            wf_key_make(name, WF_BENCH_TYPE_LEN, name + WF_BENCH_TYPE_LEN, WF_BENCH_ID_LEN);
        be[i] = (struct wf_burst_event){ .key = k,
                                         .partition = wf_key_partition(k, WF_BENCH_PARTITIONS),
                                         .type_len = WF_BENCH_TYPE_LEN,
                                         .id_len = WF_BENCH_ID_LEN,
                                         .type = name,
                                         .id = name + WF_BENCH_TYPE_LEN,
                                         .event_id = ev[i].event_id,
                                         .ts_ns = ts };
    }
    uint32_t refused = wf_burst_apply(s->part, s->ref, be, n, result);
    for (uint32_t i = 0; i < n; i++)
        s->ref_applied += result[i] == WF_APPLIED;
    return refused;
}

/* The platform's floor for this design: per event, one random table line read and one
 * random record line written, both prefetched a burst ahead; no hashing, no compare. */
static uint32_t bench_burst_floor(struct bench_store *s, uint32_t n)
{
    struct wf_bucket *b[WF_BENCH_BURST_MAX];
    struct wf_count_rec *r[WF_BENCH_BURST_MAX];
    assert(n <= WF_BENCH_BURST_MAX);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t x = bench_rand();
        const struct wf_part_ref *ref = &s->ref[x % WF_BENCH_PARTITIONS];
        b[i] = &ref->buckets[wf_table_reduce((uint32_t)(x >> 32), ref->bucket_count)];
        r[i] = &wf_ref_recs(ref)[wf_table_reduce((uint32_t)(x >> 12), s->capacity)];
        __builtin_prefetch(b[i], 0, 3);
        __builtin_prefetch(r[i], 1, 3);
    }
    uint32_t odd = 0;
    for (uint32_t i = 0; i < n; i++) {
        odd += b[i]->used & 1;
        r[i]->last_ts_ns++;
    }
    return odd > n; /* never: keeps the reads */
}

/* One burst of events, handled as the owner loop will. Returns events refused. */
static uint32_t bench_burst(struct bench_store *s, const struct bench_event *ev, uint32_t n,
                            enum bench_mode mode, uint64_t ts)
{
    struct wf_key k[WF_BENCH_BURST_MAX];
    struct wf_part *part[WF_BENCH_BURST_MAX];
    uint32_t rec[WF_BENCH_BURST_MAX];
    uint32_t refused = 0;
    assert(n <= WF_BENCH_BURST_MAX);

    for (uint32_t i = 0; i < n; i++) {
        k[i] = wf_key_make(ev[i].name, WF_BENCH_TYPE_LEN, ev[i].name + WF_BENCH_TYPE_LEN,
                           WF_BENCH_ID_LEN);
        part[i] = s->part[wf_key_partition(k[i], WF_BENCH_PARTITIONS)];
        if (mode == BENCH_PIPELINED || mode == BENCH_INSERT)
            wf_part_prefetch_header(part[i]);
        else if (mode != BENCH_PLAIN)
            wf_part_prefetch(part[i], k[i]);
    }
    if (mode == BENCH_PIPELINED || mode == BENCH_INSERT)
        for (uint32_t i = 0; i < n; i++)
            wf_part_prefetch(part[i], k[i]);
    if (mode == BENCH_PIPELINED || mode == BENCH_INSERT) {
        for (uint32_t i = 0; i < n; i++)
            rec[i] = wf_part_find_prefetch(part[i], k[i]);
        for (uint32_t i = 0; i < n; i++)
            refused += wf_part_apply_found(part[i], rec[i], k[i], ev[i].name, WF_BENCH_TYPE_LEN,
                                           ev[i].name + WF_BENCH_TYPE_LEN, WF_BENCH_ID_LEN,
                                           ev[i].event_id, ts) < 0;
        return refused;
    }
    for (uint32_t i = 0; i < n; i++)
        refused +=
            wf_part_apply(part[i], k[i], ev[i].name, WF_BENCH_TYPE_LEN,
                          ev[i].name + WF_BENCH_TYPE_LEN, WF_BENCH_ID_LEN, ev[i].event_id, ts) < 0;
    return refused;
}

struct bench_sums {
    uint64_t workflows, signals, table_bytes, rec_bytes, keystore_used, in_secondary;
};

static struct bench_sums bench_store_sums(const struct bench_store *s)
{
    struct bench_sums t = { 0 };
    for (uint32_t p = 0; p < WF_BENCH_PARTITIONS; p++) {
        const struct wf_part *part = s->part[p];
        struct wf_part_stats st;
        wf_part_stats_get(part, &st);
        t.workflows += wf_part_count(part);
        t.signals += st.applied;
        t.table_bytes += wf_table_mem_size(s->capacity);
        t.rec_bytes += (uint64_t)s->capacity * sizeof(struct wf_count_rec);
        t.keystore_used += wf_part_keystore_used(part);
        t.in_secondary += wf_table_in_secondary(wf_part_table(part));
    }
    return t;
}

static void bench_run(struct bench_store *s, const struct bench_event *ev, uint64_t events,
                      enum bench_mode mode, uint64_t workflows)
{
    uint64_t refused = 0;
    double hz = bench_tsc_hz();
    bench_region_begin();
    uint64_t cpu0 = bench_thread_cpu_ns();
    uint64_t t0 = bench_tsc();
    if (mode == BENCH_OVERLAP)
        refused += bench_run_overlap(s, ev, events, t0);
    for (uint64_t base = 0; mode != BENCH_OVERLAP && base < events; base += bench_burst_len) {
        uint32_t n = events - base < bench_burst_len ? (uint32_t)(events - base) : bench_burst_len;
        if (mode == BENCH_REF)
            refused += bench_burst_ref(s, ev + base, n, t0);
        else if (mode == BENCH_BURST_API)
            refused += bench_burst_api(s, ev + base, n, t0);
        else if (mode == BENCH_FLOOR)
            refused += bench_burst_floor(s, n);
        else
            refused += bench_burst(s, ev + base, n, mode, t0);
    }
    uint64_t t1 = bench_tsc();
    uint64_t cpu1 = bench_thread_cpu_ns();
    bench_region_end();
    if (refused != 0) {
        fprintf(stderr, "bench_table: %" PRIu64 " events refused\n", refused);
        exit(1);
    }

    struct bench_sums sum = bench_store_sums(s);
    double n = (double)workflows;
    char name[64], extra[512];
    snprintf(name, sizeof(name), "table_%s_%" PRIu64 "k", bench_mode_name[mode], workflows / 1000);
    snprintf(extra, sizeof(extra),
             "\"partitions\":%u,\"burst\":%u,\"hugetlb\":%s,\"keystore_bytes_per_workflow\":%.2f,"
             "\"table_bytes_per_workflow\":%.2f,\"record_bytes_per_workflow\":%.2f,"
             "\"region_bytes_per_workflow\":%.2f,\"in_secondary_frac\":%.4f,"
             "\"capacity_per_partition\":%u,\"oncpu_cycles_per_event\":%.1f",
             WF_BENCH_PARTITIONS, bench_burst_len, s->huge ? "true" : "false",
             (double)sum.keystore_used / n, (double)sum.table_bytes / n, (double)sum.rec_bytes / n,
             (double)s->region_bytes / n, (double)sum.in_secondary / n, s->capacity,
             (double)(cpu1 - cpu0) * hz / 1e9 / (double)events);
    struct bench_result r = BENCH_RESULT_INIT(name);
    r.events = events;
    r.events_per_s = (double)events * hz / (double)(t1 - t0);
    r.cycles_per_event = (double)(t1 - t0) / (double)events;
    r.events_per_frame = bench_burst_len;
    r.workflows = (double)sum.workflows;
    r.bytes_per_workflow = (double)(sum.table_bytes + sum.rec_bytes) / n;
    r.extra_json = extra;
    if (sum.workflows != workflows) {
        fprintf(stderr, "bench_table: %" PRIu64 " workflows, expected %" PRIu64 "\n", sum.workflows,
                workflows);
        exit(1);
    }
    bench_emit(&r);
}

static void bench_size(uint64_t workflows, uint64_t events)
{
    static struct bench_store s;
    if (bench_store_init(&s, workflows) != 0) {
        fprintf(stderr, "bench_table: cannot allocate %zu bytes\n", s.region_bytes);
        exit(1);
    }
    uint64_t slots = workflows > events ? workflows : events;
    struct bench_event *ev = sf_mem_alloc(slots * sizeof(*ev), NULL);
    if (ev == NULL) {
        fprintf(stderr, "bench_table: cannot allocate the event buffer\n");
        exit(1);
    }
    for (uint64_t i = 0; i < workflows; i++) {
        bench_format_name(ev[i].name, (uint32_t)i);
        ev[i].event_id = i + 1;
    }
    bench_run(&s, ev, workflows, BENCH_INSERT, workflows);

    for (uint64_t i = 0; i < events; i++) {
        bench_format_name(ev[i].name, (uint32_t)(bench_rand() % workflows));
        ev[i].event_id = workflows + i + 1;
    }
    uint64_t applied = workflows;
    const enum bench_mode modes[] = { BENCH_REF,       BENCH_OVERLAP,  BENCH_BURST_API,
                                      BENCH_PIPELINED, BENCH_PREFETCH, BENCH_PLAIN,
                                      BENCH_FLOOR };
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        if (bench_only_mode && strcmp(bench_only_mode, bench_mode_name[modes[m]]) != 0)
            continue;
        bench_run(&s, ev, events, modes[m], workflows);
        applied += modes[m] == BENCH_FLOOR ? 0 : events;
    }
    struct bench_sums sum = bench_store_sums(&s);
    if (sum.signals + s.ref_applied != applied) { /* every signal counted exactly once */
        fprintf(stderr, "bench_table: %" PRIu64 " signals counted, %" PRIu64 " applied\n",
                sum.signals + s.ref_applied, applied);
        exit(1);
    }
    sf_mem_free(ev, slots * sizeof(*ev));
    sf_mem_free(s.region, s.region_bytes);
}

int main(int argc, char **argv)
{
    bool quick = bench_has_flag(argc, argv, "--quick");
    uint64_t only = 0;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--n") == 0)
            only = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--mode") == 0)
            bench_only_mode = argv[i + 1];
        else if (strcmp(argv[i], "--burst") == 0)
            bench_burst_len = (uint32_t)strtoul(argv[i + 1], NULL, 10);
    if (bench_burst_len == 0 || bench_burst_len > WF_BURST_MAX) {
        fprintf(stderr, "bench_table: --burst 1..%u\n", WF_BURST_MAX);
        return 2;
    }
    if (only > 999999999ull) { /* ids have 9 digits */
        fprintf(stderr, "bench_table: --n at most 999999999\n");
        return 2;
    }
    if (only) {
        bench_size(only, quick ? 1000000 : 10000000);
    } else if (quick) {
        bench_size(1000000, 1000000);
    } else {
        bench_size(1000000, 10000000);
        bench_size(10000000, 10000000);
    }
    return 0;
}
