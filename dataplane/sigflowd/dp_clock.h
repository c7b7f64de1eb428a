/*
 * dp_clock.h — the node's clock (dp_clock.c). Thread-safe once dp_clock_init ran.
 */
#ifndef DP_CLOCK_H
#define DP_CLOCK_H

#include <stdint.h>

/** Take the clock's base (TSC rate, TSC and realtime now). main(), before any lcore runs;
 *  dp_now_ns takes it itself on first use otherwise. Can't fail. */
void dp_clock_init(void);

/** Current node time in realtime nanoseconds, from the TSC. Can't fail. */
uint64_t dp_now_ns(void);

/** CLOCK_REALTIME in nanoseconds (a syscall-free vDSO read). Can't fail. */
uint64_t dp_realtime_ns(void);

/** The realtime the clock's base was taken at (the node's start). */
uint64_t dp_clock_start_ns(void);

#endif /* DP_CLOCK_H */
