/*
 * cp_dispatch.h — sigflow-control's dispatcher: tasks from the channel become runs; a run
 * is a sequence of attempts on its executor, with the definition's policy (attempts or
 * forever, backoff min..max × factor with jitter, start-to-close per attempt), and ends in
 * one result back to the owner core (done, or failed with a reason). Between attempts the
 * owner logs ATTEMPT_FAILED, so the attempt counter is part of the workflow's durable state
 * and a run dispatched again after a restart continues from it.
 *
 * Bounds: at most CP_RUNS_MAX runs at once (a task beyond it stays in the channel); per
 * executor at most `concurrency` attempts in flight, the others wait in FIFO order.
 * Results that the channel cannot take yet wait in a per-owner FIFO, never dropped.
 * A run that fails for good is also kept in the dead-letter list (file and memory) for
 * `sigflowctl activity failed` / `activity retry`.
 */
#ifndef CP_DISPATCH_H
#define CP_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "chan.h"
#include "cp_config.h"
#include "cp_exec.h"
#include "cp_loop.h"

#define CP_RUNS_MAX          65536u /* runs in memory at once (~10 KiB each) */
#define CP_DEAD_MAX          10000u /* dead-letter entries kept in memory (newest) */
#define CP_TASKS_PER_ROUND   256u   /* tasks taken from one owner's ring per round */
#define CP_BACKOFF_JITTER_PC 20u    /* a backoff delay is randomized by ± this percent */
/* Dispatch latency histogram: microseconds, log-linear, CP_LATENCY_SUB buckets per power
 * of two (a value is known within 1/CP_LATENCY_SUB of itself), the last bucket open-ended. */
#define CP_LATENCY_SUB_BITS 3u
#define CP_LATENCY_SUB      (1u << CP_LATENCY_SUB_BITS)
#define CP_LATENCY_BUCKETS  256u

struct cp_dispatch;

struct cp_dispatch_stats {
    uint64_t tasks, cancels, attempts, done, failed, retried, timeouts, results_waiting;
    uint64_t dead, invalid_tasks;
    uint64_t expired; /* runs ended at their schedule-to-close deadline (no more attempts) */
    uint64_t latency_ns_sum, latency_count; /* durable (dispatched_ns) → first attempt start */
    uint64_t latency_ns_max;
    uint64_t latency_hist[CP_LATENCY_BUCKETS]; /* the same, by cp_latency_bucket */
};

/** The histogram bucket of a latency of `us` microseconds. Can't fail. */
unsigned cp_latency_bucket(uint64_t us);

/** The upper bound (µs, exclusive) of bucket b < CP_LATENCY_BUCKETS. Can't fail. */
uint64_t cp_latency_bucket_upper_us(unsigned b);

/** The q-quantile (0 < q ≤ 1) of stats' dispatch latencies in µs: the upper bound of the
 *  bucket it falls in (so it is never under-reported); 0 without samples. */
uint64_t cp_dispatch_latency_quantile_us(const struct cp_dispatch_stats *s, double q);

/** One dead-letter entry (a run that failed for good). */
struct cp_dead {
    struct chan_task task;
    uint32_t attempts;
    uint64_t failed_ns; /* realtime */
    char reason[CHAN_REASON_MAX];
    char executor[CP_EXEC_NAME_MAX];
    enum { CP_DEAD_FAILED, CP_DEAD_RETRYING, CP_DEAD_RETRY_DONE, CP_DEAD_RETRY_FAILED } state;
};

/**
 * Create the dispatcher over cfg's executors (each one's init runs here). Returns it, or
 * NULL with err filled ("executor NAME: reason").
 */
struct cp_dispatch *cp_dispatch_new(const struct cp_config *cfg, struct cp_loop *loop, char *err,
                                    size_t err_cap);

/** Abandon every attempt, run each executor's fini, free. */
void cp_dispatch_free(struct cp_dispatch *d);

/** Channels of a new connection (owner_count of them, owned by the caller until detach). */
void cp_dispatch_attach(struct cp_dispatch *d, struct chan *chans, unsigned owner_count);

/** The connection is gone: abandon every run (the daemon dispatches them again on the next
 *  connection: at least once) and forget the channels and waiting results. */
void cp_dispatch_detach(struct cp_dispatch *d);

/**
 * One round: take tasks from every owner's ring (bounded), start attempts that have a free
 * slot, push waiting results. Returns the work done (tasks + results moved); 0 when idle.
 * -EBADMSG when the daemon broke a ring (the caller disconnects).
 */
int cp_dispatch_round(struct cp_dispatch *d);

/** Stop taking tasks (SIGTERM): runs in flight continue; cp_dispatch_runs says how many. */
void cp_dispatch_drain(struct cp_dispatch *d);
unsigned cp_dispatch_runs(const struct cp_dispatch *d);
/** Results not yet in the channel. */
unsigned cp_dispatch_results_waiting(const struct cp_dispatch *d);

void cp_dispatch_get_stats(const struct cp_dispatch *d, struct cp_dispatch_stats *out);

/** Executors: count, and one's name, kind, concurrency and attempts in flight. */
unsigned cp_dispatch_executor_count(const struct cp_dispatch *d);
const struct cp_executor *cp_dispatch_executor(const struct cp_dispatch *d, unsigned i);
/** Set an executor's concurrency live (1..CP_CONCURRENCY_MAX). 0, -ENOENT, -ERANGE. */
int cp_dispatch_tune(struct cp_dispatch *d, const char *executor, unsigned concurrency);

/** Dead letters, newest last: count and entry i. */
unsigned cp_dispatch_dead_count(const struct cp_dispatch *d);
const struct cp_dead *cp_dispatch_dead(const struct cp_dispatch *d, unsigned i);
/**
 * Run a dead-lettered run again (type, id, seq): a new attempt sequence on its executor,
 * outside the workflow (its `failed` was applied already; the outcome is recorded in the
 * entry). 0, -ENOENT (no such entry), -EBUSY (already retrying).
 */
int cp_dispatch_retry_dead(struct cp_dispatch *d, const char *type, const char *id, uint32_t seq);

#endif
