/*
 * cp_loop.c — epoll and a timer heap (cp_loop.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "cp_loop.h"

struct cp_watch {
    cp_fd_fn *fn;
    void *arg;
    uint32_t events; /* 0: not watched */
};

struct cp_loop {
    int epfd;
    struct cp_watch *watch; /* indexed by fd, grown on demand up to CP_LOOP_FDS_MAX */
    uint32_t watch_cap;
    struct cp_timer **heap; /* min-heap on due_ns */
    uint32_t heap_len, heap_cap;
};

uint64_t cp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t cp_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct cp_loop *cp_loop_new(void)
{
    struct cp_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int e = errno;
        free(l);
        errno = e;
        return NULL;
    }
    return l;
}

void cp_loop_free(struct cp_loop *l)
{
    if (!l)
        return;
    close(l->epfd);
    for (uint32_t i = 0; i < l->heap_len; i++)
        l->heap[i]->heap_index = 0;
    free(l->heap);
    free(l->watch);
    free(l);
}

int cp_loop_watch(struct cp_loop *l, int fd, uint32_t events, cp_fd_fn *fn, void *arg)
{
    if (fd < 0 || (uint32_t)fd >= CP_LOOP_FDS_MAX)
        return -EINVAL;
    if ((uint32_t)fd >= l->watch_cap) {
        if (events == 0)
            return 0;
        uint32_t cap = l->watch_cap ? l->watch_cap : 64;
        while (cap <= (uint32_t)fd)
            cap *= 2;
        struct cp_watch *w = realloc(l->watch, (size_t)cap * sizeof(*w));
        if (!w)
            return -ENOMEM;
        memset(w + l->watch_cap, 0, (size_t)(cap - l->watch_cap) * sizeof(*w));
        l->watch = w;
        l->watch_cap = cap;
    }
    struct cp_watch *w = &l->watch[fd];
    struct epoll_event ev = { .events = events, .data.fd = fd };
    int op = events == 0 ? EPOLL_CTL_DEL : w->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (events == 0 && w->events == 0)
        return 0;
    if (epoll_ctl(l->epfd, op, fd, &ev) != 0)
        return -errno;
    w->events = events;
    w->fn = fn;
    w->arg = arg;
    return 0;
}

/* ---- timer heap ---------------------------------------------------------------------- */

static void cp_heap_set(struct cp_loop *l, uint32_t i, struct cp_timer *t)
{
    l->heap[i] = t;
    t->heap_index = i + 1;
}

static void cp_heap_up(struct cp_loop *l, uint32_t i)
{
    struct cp_timer *t = l->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (l->heap[parent]->due_ns <= t->due_ns)
            break;
        cp_heap_set(l, i, l->heap[parent]);
        i = parent;
    }
    cp_heap_set(l, i, t);
}

static void cp_heap_down(struct cp_loop *l, uint32_t i)
{
    struct cp_timer *t = l->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= l->heap_len)
            break;
        if (child + 1 < l->heap_len && l->heap[child + 1]->due_ns < l->heap[child]->due_ns)
            child++;
        if (l->heap[child]->due_ns >= t->due_ns)
            break;
        cp_heap_set(l, i, l->heap[child]);
        i = child;
    }
    cp_heap_set(l, i, t);
}

void cp_loop_timer_cancel(struct cp_loop *l, struct cp_timer *t)
{
    if (t->heap_index == 0)
        return;
    uint32_t i = t->heap_index - 1;
    t->heap_index = 0;
    l->heap_len--;
    if (i == l->heap_len)
        return;
    struct cp_timer *moved = l->heap[l->heap_len]; /* the last one fills the hole */
    cp_heap_set(l, i, moved);
    cp_heap_up(l, i);
    cp_heap_down(l, moved->heap_index - 1);
}

int cp_loop_timer_arm(struct cp_loop *l, struct cp_timer *t, uint64_t due_ns, cp_timer_fn *fn,
                      void *arg)
{
    cp_loop_timer_cancel(l, t);
    if (l->heap_len == l->heap_cap) {
        if (l->heap_cap >= CP_LOOP_TIMERS_MAX)
            return -ENOSPC;
        uint32_t cap = l->heap_cap ? l->heap_cap * 2 : 64;
        struct cp_timer **h = realloc(l->heap, (size_t)cap * sizeof(*h));
        if (!h)
            return -ENOSPC;
        l->heap = h;
        l->heap_cap = cap;
    }
    t->due_ns = due_ns;
    t->fn = fn;
    t->arg = arg;
    cp_heap_set(l, l->heap_len++, t);
    cp_heap_up(l, l->heap_len - 1);
    return 0;
}

/* Run the timers due by now; returns how many ran. Bounded: a timer re-armed for a time
 * already past runs on the next call, not in a loop here. */
static int cp_loop_timers(struct cp_loop *l, uint64_t now)
{
    uint32_t budget = l->heap_len;
    int ran = 0;
    while (budget-- > 0 && l->heap_len > 0 && l->heap[0]->due_ns <= now) {
        struct cp_timer *t = l->heap[0];
        cp_loop_timer_cancel(l, t);
        t->fn(l, t->arg);
        ran++;
    }
    return ran;
}

int cp_loop_run_once(struct cp_loop *l, int max_wait_ms)
{
    uint64_t now = cp_now_ns();
    int wait_ms = max_wait_ms;
    if (l->heap_len > 0) {
        uint64_t due = l->heap[0]->due_ns;
        uint64_t ms = due <= now ? 0 : (due - now + 999999) / 1000000;
        if (ms < (uint64_t)wait_ms || wait_ms < 0)
            wait_ms = (int)(ms > 60000 ? 60000 : ms);
    }
    struct epoll_event evs[CP_LOOP_EVENTS];
    int n = epoll_wait(l->epfd, evs, CP_LOOP_EVENTS, wait_ms);
    if (n < 0 && errno != EINTR)
        return -errno;
    int ran = cp_loop_timers(l, cp_now_ns());
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        /* an earlier callback of this batch may have stopped watching fd */
        if ((uint32_t)fd >= l->watch_cap || l->watch[fd].events == 0)
            continue;
        struct cp_watch w = l->watch[fd];
        w.fn(l, fd, evs[i].events, w.arg);
        ran++;
    }
    return ran;
}
