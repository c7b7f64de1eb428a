/*
 * bench_vm — VM cost per handler, no table: one record, one def, the handler run in a
 * tight loop (what an owner core pays per event once the record is in cache).
 *
 *   vm_loyalty_purchase    examples/loyalty.flow `on purchase` (guard, two sums, time,
 *                          threshold check; steady state in `silver` after 10 purchases)
 *   vm_device_telemetry    examples/device.flow `on telemetry` with status 0 (guard
 *                          miss, five updates incl. a float max, silence timer re-arm)
 *
 * usage: bench_vm [--quick] [--only loyalty|device] [EXAMPLES_DIR]
 * Cycles from the TSC; under callgrind (--collect-atstart=no) the region counts only the
 * measured loop, so instructions per event = Ir / events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "flow.h"

#ifndef SF_SOURCE_ROOT
#define SF_SOURCE_ROOT "."
#endif

#define BENCH_VM_EVENTS       20000000ull
#define BENCH_VM_EVENTS_QUICK 1000000ull
#define BENCH_VM_REPEATS      5

static struct flow_def *load(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.flow", dir, name);
    struct flow_errors *errs = malloc(sizeof(*errs));
    struct flow_def *def = NULL;
    if (!errs || flow_compile_file(path, &def, errs) != 0) {
        for (unsigned i = 0; errs && i < errs->count; i++)
            fprintf(stderr, "%s\n", errs->err[i].text);
        fprintf(stderr, "bench_vm: cannot compile %s\n", path);
        exit(1);
    }
    free(errs);
    return def;
}

/* Run `events` signals; returns TSC ticks of the best of BENCH_VM_REPEATS runs. */
static double run(const struct flow_def *def, const char *signal, struct sf_value *fields,
                  unsigned nfields, uint64_t events, bool vary_float, int *checksum)
{
    uint8_t *rec = aligned_alloc(64, (flow_def_record_size(def) + 63) & ~63u);
    unsigned cmax = flow_def_cmds_max(def);
    struct vm_cmd *cmds = calloc(cmax, sizeof(*cmds));
    int sig = flow_def_signal_index(def, signal, strlen(signal));
    if (!rec || !cmds || sig < 0)
        exit(1);
    const char *id = "bench-00000001";
    double best = 1e300;
    bool valgrind = bench_under_valgrind();
    int reps = valgrind ? 1 : BENCH_VM_REPEATS;
    for (int r = 0; r < reps; r++) {
        vm_record_init(def, rec, id, strlen(id), 1);
        uint64_t now = 1000000000ull;
        int sum = 0;
        if (valgrind)
            bench_region_begin();
        uint64_t t0 = bench_tsc();
        for (uint64_t i = 0; i < events; i++) {
            if (vary_float)
                fields[0].f = (double)(i & 63);
            int n =
                vm_run_signal(def, rec, (unsigned)sig, fields, nfields, id, 14, now, cmds, cmax);
            sum += n;
            now += 1000;
        }
        uint64_t t1 = bench_tsc();
        if (valgrind)
            bench_region_end();
        *checksum = sum;
        if ((double)(t1 - t0) < best)
            best = (double)(t1 - t0);
    }
    free(cmds);
    free(rec);
    return best;
}

static void report(const char *name, double ticks, uint64_t events, const struct flow_def *def,
                   int checksum)
{
    struct bench_result r = BENCH_RESULT_INIT(name);
    double hz = bench_tsc_hz();
    r.cycles_per_event = ticks / (double)events;
    r.events_per_s = (double)events / (ticks / hz);
    r.events = events;
    r.workflows = 1;
    r.bytes_per_workflow = flow_def_record_size(def);
    char extra[128];
    snprintf(extra, sizeof(extra), "\"cmds_total\":%d,\"goal_cycles_per_event\":60", checksum);
    r.extra_json = extra;
    bench_emit(&r);
}

int main(int argc, char **argv)
{
    bool quick = bench_has_flag(argc, argv, "--quick");
    const char *dir = SF_SOURCE_ROOT "/examples", *only = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (argv[i][0] != '-')
            dir = argv[i];
    }
    uint64_t events = quick || bench_under_valgrind() ? BENCH_VM_EVENTS_QUICK : BENCH_VM_EVENTS;
    struct flow_def *loyalty = load(dir, "loyalty"), *device = load(dir, "device");
    bench_tsc_hz();
    int checksum = 0;

    if (!*only || strcmp(only, "loyalty") == 0) {
        struct sf_value purchase[1] = { { .type = SF_VAL_INT, .i = 1250 } };
        double t = run(loyalty, "purchase", purchase, 1, events, false, &checksum);
        report("vm_loyalty_purchase", t, events, loyalty, checksum);
    }
    if (!*only || strcmp(only, "device") == 0) {
        struct sf_value telemetry[2] = { { .type = SF_VAL_FLOAT, .f = 21.5 },
                                         { .type = SF_VAL_INT, .i = 0 } };
        double t = run(device, "telemetry", telemetry, 2, events, true, &checksum);
        report("vm_device_telemetry", t, events, device, checksum);
    }

    flow_def_free(loyalty);
    flow_def_free(device);
    return 0;
}
