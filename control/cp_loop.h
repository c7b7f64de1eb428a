/*
 * cp_loop.h — sigflow-control's event loop: one thread, epoll for descriptors, a binary
 * heap of timers on CLOCK_MONOTONIC. Executors (cp_exec.h) register their sockets, pipes
 * and deadlines here; nothing in the process blocks anywhere else.
 *
 * Callbacks run from cp_loop_run_once only, one at a time; a callback may add or remove
 * descriptors and timers (its own included). Timers are caller-owned structs (embed them):
 * no allocation per timer, and cancelling is O(log n).
 */
#ifndef CP_LOOP_H
#define CP_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#define CP_LOOP_FDS_MAX    65536u /* descriptors watched at once */
#define CP_LOOP_TIMERS_MAX 1048576u
#define CP_LOOP_EVENTS     256u /* epoll events taken per wait */

struct cp_loop;

/** events: EPOLLIN / EPOLLOUT / EPOLLERR / EPOLLHUP as epoll reported them. */
typedef void cp_fd_fn(struct cp_loop *loop, int fd, uint32_t events, void *arg);
typedef void cp_timer_fn(struct cp_loop *loop, void *arg);

struct cp_timer {
    uint64_t due_ns; /* CLOCK_MONOTONIC */
    cp_timer_fn *fn;
    void *arg;
    uint32_t heap_index; /* 0: not armed; else position + 1 */
};

/** Monotonic nanoseconds (CLOCK_MONOTONIC). Can't fail. */
uint64_t cp_now_ns(void);
/** Realtime nanoseconds (CLOCK_REALTIME), for records a person reads. Can't fail. */
uint64_t cp_realtime_ns(void);

/** Create a loop. Returns it, or NULL (errno set) when epoll or memory is not available. */
struct cp_loop *cp_loop_new(void);
/** Close the epoll descriptor and free the heap. Descriptors and timers are the callers'. */
void cp_loop_free(struct cp_loop *loop);

/**
 * Watch fd for `events` (EPOLLIN and/or EPOLLOUT; level-triggered), calling fn(arg); a
 * second call for the same fd changes its events and callback. events == 0 stops watching
 * it (do that before closing the fd). Returns 0, -EINVAL for a negative fd or fd ≥
 * CP_LOOP_FDS_MAX, or -errno of epoll_ctl.
 */
int cp_loop_watch(struct cp_loop *loop, int fd, uint32_t events, cp_fd_fn *fn, void *arg);

/** Arm (or re-arm) t to call fn(arg) at due_ns. Returns 0, or -ENOSPC past
 *  CP_LOOP_TIMERS_MAX armed timers (t is then not armed). */
int cp_loop_timer_arm(struct cp_loop *loop, struct cp_timer *t, uint64_t due_ns, cp_timer_fn *fn,
                      void *arg);
/** Disarm t if armed. Can't fail. */
void cp_loop_timer_cancel(struct cp_loop *loop, struct cp_timer *t);
static inline bool cp_timer_armed(const struct cp_timer *t)
{
    return t->heap_index != 0;
}

/**
 * Wait up to max_wait_ms (or until the next timer) and run what is ready: due timers
 * first, then descriptors. Returns the number of callbacks run, or -errno of epoll_wait
 * (EINTR is reported as 0 callbacks).
 */
int cp_loop_run_once(struct cp_loop *loop, int max_wait_ms);

#endif
