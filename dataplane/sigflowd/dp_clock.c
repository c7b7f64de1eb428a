/*
 * dp_clock.c — the node's clock: realtime nanoseconds read from the TSC against one base
 * (taken at start-up), so the data path never makes a system call for the time. Handlers
 * see the receive time of their event (docs/flow.md), so this clock is what workflows see.
 */
#include <time.h>

#include <rte_cycles.h>

#include "dp_clock.h"

static struct {
    uint64_t tsc_hz, base_tsc, base_realtime_ns;
} dp_clock;

void dp_clock_init(void)
{
    dp_clock.tsc_hz = rte_get_tsc_hz();
    dp_clock.base_tsc = rte_rdtsc();
    dp_clock.base_realtime_ns = dp_realtime_ns();
}

uint64_t dp_clock_start_ns(void)
{
    return dp_clock.base_realtime_ns;
}

uint64_t dp_now_ns(void)
{
    if (unlikely(dp_clock.tsc_hz == 0))
        dp_clock_init(); /* a benchmark or test that built its node by hand */
    uint64_t dt = rte_rdtsc() - dp_clock.base_tsc;
    return dp_clock.base_realtime_ns +
           (uint64_t)(((unsigned __int128)dt * 1000000000u) / dp_clock.tsc_hz);
}

uint64_t dp_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
