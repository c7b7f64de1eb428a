/*
 * clock_shift.c — an LD_PRELOAD shim of the compat test (test_compat.py): the process sees
 * CLOCK_REALTIME (and CLOCK_REALTIME_COARSE, gettimeofday, time) moved by
 * SIGFLOW_CLOCK_SHIFT_NS nanoseconds (signed decimal; unset or 0: no change). Monotonic
 * clocks and the TSC are untouched.
 *
 * Why: workflow timers are due at wall-clock times (a device's `silence 15m`), and a node
 * fires every timer that fell due while it was down. A fixture written months ago would
 * then recover and at once fire its timers, and its answers would no longer be the ones
 * recorded. Run at the time the fixture's answers were recorded, the node under test sees
 * what the old node saw. sigflowd reads realtime only through clock_gettime (dp_clock.c,
 * storage/), which this shim replaces.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static int64_t shift_ns;
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

static void shift_init(void)
{
    real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    const char *s = getenv("SIGFLOW_CLOCK_SHIFT_NS");
    shift_ns = s ? strtoll(s, NULL, 10) : 0;
}

static void shift_ts(struct timespec *ts)
{
    int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + shift_ns;
    ts->tv_sec = (time_t)(ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000;
        ts->tv_sec -= 1;
    }
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    pthread_once(&shift_once, shift_init);
    int r = real_clock_gettime(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        shift_ts(ts);
    return r;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    (void)tz;
    struct timespec ts;
    int r = clock_gettime(CLOCK_REALTIME, &ts);
    if (r == 0) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return r;
}

time_t time(time_t *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
