/*
 * bench.h — the shared harness of every sigflow benchmark (header only).
 *
 * Contract with `./sigflow bench` (which writes perf/results/latest.json):
 *   - a benchmark prints each result as ONE JSON object on ONE line of stdout
 *     (bench_emit); everything else goes to stderr;
 *   - `--quick` shrinks the run to seconds (smaller counts, same code paths);
 *   - the measured loop sits between bench_region_begin() and bench_region_end(), so that a
 *     run under `valgrind --tool=callgrind --collect-atstart=no` counts only those
 *     instructions; the script divides them by the result's "events" to fill
 *     instructions_per_event (this machine exposes no hardware counters to perf).
 *
 * Cycles come from the TSC (constant and non-stop on the machines we run on), calibrated
 * against CLOCK_MONOTONIC, so cycles_per_event = tsc ticks / events.
 */
#ifndef SF_BENCH_H
#define SF_BENCH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>
#include <valgrind/callgrind.h>

static inline uint64_t bench_tsc(void)
{
    return __rdtsc();
}

static inline uint64_t bench_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/** TSC ticks per second, measured once over ~50 ms. Can't fail. */
static inline double bench_tsc_hz(void)
{
    static double hz;
    if (hz > 0)
        return hz;
    uint64_t t0 = bench_mono_ns(), c0 = bench_tsc();
    while (bench_mono_ns() - t0 < 50000000ull)
        ;
    uint64_t t1 = bench_mono_ns(), c1 = bench_tsc();
    hz = (double)(c1 - c0) * 1e9 / (double)(t1 - t0);
    return hz;
}

static inline bool bench_under_valgrind(void)
{
    return RUNNING_ON_VALGRIND != 0;
}

static inline void bench_region_begin(void)
{
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
}

/* Under callgrind each region becomes its own dump (cg.PID.N), in order: one region per
 * emitted result lets ./sigflow bench pair them. Outside valgrind these are no-ops. */
static inline void bench_region_end(void)
{
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS;
}

/** One result line. Unset numeric fields are NAN (or 0 for counts) and are left out. */
struct bench_result {
    const char *name;
    double events_per_s;
    double cycles_per_event;
    double events_per_frame;
    double workflows;
    double bytes_per_workflow;
    double ack_p50_us, ack_p99_us, ack_p999_us;
    double restart_s;
    uint64_t events;        /* events in the measured region (callgrind divides by it) */
    const char *extra_json; /* optional: more members, e.g. "\"gb_per_s\":1.2" */
};

#define BENCH_RESULT_INIT(n)                                                                \
    (struct bench_result)                                                                   \
    {                                                                                       \
        .name = (n), .events_per_s = NAN, .cycles_per_event = NAN, .events_per_frame = NAN, \
        .workflows = NAN, .bytes_per_workflow = NAN, .ack_p50_us = NAN, .ack_p99_us = NAN,  \
        .ack_p999_us = NAN, .restart_s = NAN                                                \
    }

static inline void bench_emit_num(const char *key, double v)
{
    if (!isnan(v))
        printf(",\"%s\":%.6g", key, v);
}

/** Print one result as a JSON line on stdout and flush. Can't fail. */
static inline void bench_emit(const struct bench_result *r)
{
    printf("{\"name\":\"%s\"", r->name);
    bench_emit_num("events_per_s", r->events_per_s);
    bench_emit_num("cycles_per_event", r->cycles_per_event);
    bench_emit_num("events_per_frame", r->events_per_frame);
    bench_emit_num("workflows", r->workflows);
    bench_emit_num("bytes_per_workflow", r->bytes_per_workflow);
    bench_emit_num("ack_p50_us", r->ack_p50_us);
    bench_emit_num("ack_p99_us", r->ack_p99_us);
    bench_emit_num("ack_p999_us", r->ack_p999_us);
    bench_emit_num("restart_s", r->restart_s);
    if (r->events)
        printf(",\"events\":%llu", (unsigned long long)r->events);
    if (bench_under_valgrind())
        printf(",\"under_valgrind\":true");
    if (r->extra_json && r->extra_json[0])
        printf(",%s", r->extra_json);
    printf("}\n");
    fflush(stdout);
}

/** True when argv holds `flag`. */
static inline bool bench_has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return true;
    return false;
}

/** Sort helper for latency percentiles. */
static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

#endif /* SF_BENCH_H */
