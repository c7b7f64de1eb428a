/*
 * cp_dispatch.c — runs, attempts, retries and results (cp_dispatch.h).
 *
 * A run's life: WAITING (in its executor's FIFO, for a concurrency slot) → RUNNING (the
 * executor has the attempt; the start-to-close timer is armed) → done: a result for the
 * owner, or BACKOFF (timer armed) → WAITING again with the next attempt number. A cancel
 * from the owner, a detach or shutdown abandons it wherever it is.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_dispatch.h"

#define CP_HASH_BUCKETS (1u << 16)

enum cp_run_state { CP_RUN_WAITING, CP_RUN_RUNNING, CP_RUN_BACKOFF };

struct cp_run {
    struct cp_dispatch *d;
    struct chan_task task;
    struct cp_attempt a;
    struct cp_timer timer; /* start-to-close while RUNNING, backoff while BACKOFF */
    unsigned exec;
    enum cp_run_state state;
    int dead; /* index+1 of the dead-letter entry this run retries; 0 for a live run */
    bool started_once;
    struct cp_run *wait_next; /* executor FIFO */
    struct cp_run *hash_next;
    struct cp_run *all_prev, *all_next;
};

struct cp_outbox { /* results waiting for room in one owner's ring */
    struct chan_result *r;
    uint32_t head, count, cap;
};

struct cp_dispatch {
    struct cp_loop *loop;
    struct cp_executor x[CP_EXECUTORS_MAX];
    struct cp_run *wait_head[CP_EXECUTORS_MAX], *wait_tail[CP_EXECUTORS_MAX];
    unsigned executor_count;
    const struct cp_config *cfg;
    struct chan *chans;
    unsigned owner_count;
    struct cp_outbox outbox[CHAN_OWNERS_MAX];
    struct cp_run *hash[CP_HASH_BUCKETS];
    struct cp_run *all; /* every run, for detach and shutdown */
    unsigned runs;
    bool draining;
    uint64_t rng;
    struct cp_dead *dead; /* ring of CP_DEAD_MAX, oldest at dead_head */
    unsigned dead_head, dead_count;
    FILE *dead_file;
    struct cp_dispatch_stats stats;
};

static struct cp_run *cp_run_of(struct cp_attempt *a)
{
    return (struct cp_run *)((char *)a - offsetof(struct cp_run, a));
}

static uint32_t cp_hash(uint64_t hi, uint64_t lo, uint16_t act, uint32_t seq)
{
    uint64_t h = hi * 0x9E3779B97F4A7C15ull ^ lo ^ ((uint64_t)act << 32 | seq);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return (uint32_t)(h >> 48) & (CP_HASH_BUCKETS - 1);
}

static struct cp_run **cp_find(struct cp_dispatch *d, const struct chan_task *t)
{
    struct cp_run **link = &d->hash[cp_hash(t->key_hi, t->key_lo, t->act_index, t->seq)];
    while (*link && !((*link)->task.key_hi == t->key_hi && (*link)->task.key_lo == t->key_lo &&
                      (*link)->task.act_index == t->act_index && (*link)->task.seq == t->seq &&
                      (*link)->dead == 0))
        link = &(*link)->hash_next;
    return link;
}

/* ---- results ----------------------------------------------------------------------- */

static int cp_outbox_add(struct cp_outbox *o, const struct chan_result *r)
{
    if (o->count == o->cap) {
        uint32_t cap = o->cap ? o->cap * 2 : 256;
        struct chan_result *n = malloc((size_t)cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        for (uint32_t i = 0; i < o->count; i++)
            n[i] = o->r[(o->head + i) % o->cap];
        free(o->r);
        o->r = n;
        o->head = 0;
        o->cap = cap;
    }
    o->r[(o->head + o->count) % o->cap] = *r;
    o->count++;
    return 0;
}

static unsigned cp_outbox_flush(struct cp_dispatch *d, unsigned owner)
{
    struct cp_outbox *o = &d->outbox[owner];
    unsigned n = 0;
    while (o->count > 0 && d->chans) {
        if (chan_push(&d->chans[owner].results, &o->r[o->head], sizeof(o->r[0])) != 0)
            break;
        o->head = (o->head + 1) % o->cap;
        o->count--;
        n++;
    }
    return n;
}

/* A result for the run's owner: into the ring, or the outbox behind earlier ones. */
static void cp_result(struct cp_dispatch *d, const struct cp_run *run, uint8_t kind,
                      const struct cp_outcome *o)
{
    if (run->dead || !d->chans || run->task.owner >= d->owner_count)
        return; /* a dead-letter retry reports nowhere; a detached one is dispatched again */
    struct chan_result r;
    memset(&r, 0, sizeof(r));
    r.kind = kind;
    r.act_index = run->task.act_index;
    r.part_id = run->task.part_id;
    r.seq = run->task.seq;
    r.attempt = run->a.attempt;
    r.key_hi = run->task.key_hi;
    r.key_lo = run->task.key_lo;
    r.has_result = o->has_result;
    r.result = o->result;
    size_t len = strnlen(o->reason, sizeof(o->reason));
    r.reason_len = (uint16_t)(len < CHAN_REASON_MAX ? len : CHAN_REASON_MAX);
    memcpy(r.reason, o->reason, r.reason_len);
    struct cp_outbox *ob = &d->outbox[run->task.owner];
    if (ob->count == 0 && chan_push(&d->chans[run->task.owner].results, &r, sizeof(r)) == 0)
        return;
    if (cp_outbox_add(ob, &r) != 0)
        fprintf(stderr, "sigflow-control: out of memory holding a result: the run is "
                        "dispatched again after a reconnect\n");
}

/* ---- dead letters ------------------------------------------------------------------- */

static void cp_dead_add(struct cp_dispatch *d, const struct cp_run *run, const char *reason)
{
    struct cp_dead *e;
    if (d->dead_count < CP_DEAD_MAX) {
        e = &d->dead[(d->dead_head + d->dead_count++) % CP_DEAD_MAX];
    } else {
        e = &d->dead[d->dead_head];
        d->dead_head = (d->dead_head + 1) % CP_DEAD_MAX;
    }
    memset(e, 0, sizeof(*e));
    e->task = run->task;
    e->attempts = run->a.attempt;
    e->failed_ns = cp_realtime_ns();
    snprintf(e->reason, sizeof(e->reason), "%s", reason);
    snprintf(e->executor, sizeof(e->executor), "%s", d->x[run->exec].name);
    e->state = CP_DEAD_FAILED;
    d->stats.dead++;
    if (d->dead_file) {
        /* names are the sender's bytes: body_json has them escaped already */
        fprintf(d->dead_file,
                "{\"failed_ns\":%" PRIu64 ",\"executor\":\"%s\",\"attempts\":%" PRIu32
                ",\"task\":%s}\n",
                e->failed_ns, e->executor, e->attempts, run->a.body_json);
        fflush(d->dead_file);
    }
}

/* ---- runs --------------------------------------------------------------------------- */

static void cp_run_free(struct cp_dispatch *d, struct cp_run *run)
{
    cp_loop_timer_cancel(d->loop, &run->timer);
    if (run->dead == 0) {
        struct cp_run **link = cp_find(d, &run->task);
        if (*link == run)
            *link = run->hash_next;
    }
    if (run->all_prev)
        run->all_prev->all_next = run->all_next;
    else
        d->all = run->all_next;
    if (run->all_next)
        run->all_next->all_prev = run->all_prev;
    d->runs--;
    free(run);
}

static void cp_wait_push(struct cp_dispatch *d, struct cp_run *run)
{
    run->state = CP_RUN_WAITING;
    run->wait_next = NULL;
    if (d->wait_tail[run->exec])
        d->wait_tail[run->exec]->wait_next = run;
    else
        d->wait_head[run->exec] = run;
    d->wait_tail[run->exec] = run;
}

static void cp_wait_remove(struct cp_dispatch *d, struct cp_run *run)
{
    struct cp_run **link = &d->wait_head[run->exec], *prev = NULL;
    while (*link && *link != run) {
        prev = *link;
        link = &(*link)->wait_next;
    }
    if (!*link)
        return;
    *link = run->wait_next;
    if (d->wait_tail[run->exec] == run)
        d->wait_tail[run->exec] = prev;
}

/* Stop whatever the run is doing (no result) and free it. */
static void cp_run_abandon(struct cp_dispatch *d, struct cp_run *run)
{
    struct cp_executor *x = &d->x[run->exec];
    if (run->state == CP_RUN_RUNNING) {
        x->ops->abandon(x, &run->a);
        x->inflight--;
    } else if (run->state == CP_RUN_WAITING) {
        cp_wait_remove(d, run);
    }
    if (run->dead)
        d->dead[(unsigned)(run->dead - 1)].state = CP_DEAD_FAILED;
    cp_run_free(d, run);
}

static uint64_t cp_rand(struct cp_dispatch *d)
{
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return d->rng;
}

/* The delay before attempt n+1 after attempt n failed: initial × factor^(n-1), at most max,
 * randomized by ± CP_BACKOFF_JITTER_PC percent. */
static uint64_t cp_backoff_ns(struct cp_dispatch *d, const struct chan_task *t, uint32_t n)
{
    double f = t->backoff_multiplier >= 1.0 && t->backoff_multiplier <= 100.0
                   ? t->backoff_multiplier
                   : 2.0;
    double ns = (double)t->backoff_initial_ns * pow(f, n > 0 ? (double)(n - 1) : 0.0);
    if (ns > (double)t->backoff_max_ns)
        ns = (double)t->backoff_max_ns;
    uint64_t base = (uint64_t)ns;
    uint64_t span = base / 100u * CP_BACKOFF_JITTER_PC;
    if (span == 0)
        return base;
    return base - span + cp_rand(d) % (2 * span + 1);
}

/* Past its schedule-to-close deadline? The owner core fails such a run by itself and logs
 * it (dp_input_deadlines, within 100 ms): another attempt would be a side effect nobody
 * waits for, and a `retry forever` run would go on for ever. A dead-letter retry ignores
 * the deadline (the operator asked for it). */
static bool cp_run_expired(const struct cp_run *run)
{
    return run->dead == 0 && run->task.deadline_ns != 0 &&
           cp_realtime_ns() >= run->task.deadline_ns;
}

/* End an expired run: no result (the owner has logged or will log its failure; ours would
 * be a stale record in its log), a dead letter for the operator. */
static void cp_run_expire(struct cp_dispatch *d, struct cp_run *run, const char *last_reason)
{
    char reason[CHAN_REASON_MAX];
    snprintf(reason, sizeof(reason),
             "schedule-to-close deadline passed after attempt %" PRIu32 ": %.120s", run->a.attempt,
             last_reason);
    d->stats.expired++;
    cp_dead_add(d, run, reason);
    cp_run_free(d, run);
}

/* The backoff is over: the run waits for a slot (cp_dispatch_round starts it), unless its
 * deadline passed meanwhile. */
static void cp_on_backoff(struct cp_loop *loop, void *arg)
{
    (void)loop;
    struct cp_run *run = arg;
    if (cp_run_expired(run)) {
        run->a.attempt--; /* the next one never starts */
        cp_run_expire(run->d, run, "the deadline came during the backoff");
        return;
    }
    cp_wait_push(run->d, run);
}

/* How an attempt ended (executor's done, a timeout or a failed start). */
static void cp_run_outcome(struct cp_dispatch *d, struct cp_run *run, const struct cp_outcome *o)
{
    struct cp_executor *x = &d->x[run->exec];
    cp_loop_timer_cancel(d->loop, &run->timer);
    x->inflight--;
    const struct chan_task *t = &run->task;
    if (o->kind == CP_OUTCOME_DONE) {
        d->stats.done++;
        cp_result(d, run, CHAN_RES_DONE, o);
        if (run->dead)
            d->dead[(unsigned)(run->dead - 1)].state = CP_DEAD_RETRY_DONE;
        cp_run_free(d, run);
        return;
    }
    bool exhausted = t->max_attempts != 0 && run->a.attempt >= t->max_attempts;
    if (o->kind == CP_OUTCOME_FAIL || exhausted) {
        struct cp_outcome f = *o;
        if (o->kind != CP_OUTCOME_FAIL)
            snprintf(f.reason, sizeof(f.reason), "attempts exhausted (%" PRIu32 "): %.150s",
                     run->a.attempt, o->reason);
        d->stats.failed++;
        /* the reason goes into the workflow's history as the last attempt's (an ATTEMPT
         * record: the ACTIVITY record that fails the run carries none), then the failure */
        cp_result(d, run, CHAN_RES_ATTEMPT_FAILED, &f);
        cp_result(d, run, CHAN_RES_FAILED, &f);
        if (run->dead)
            d->dead[(unsigned)(run->dead - 1)].state = CP_DEAD_RETRY_FAILED;
        else
            cp_dead_add(d, run, f.reason);
        cp_run_free(d, run);
        return;
    }
    if (cp_run_expired(run)) {
        cp_run_expire(d, run, o->reason);
        return;
    }
    d->stats.retried++;
    cp_result(d, run, CHAN_RES_ATTEMPT_FAILED, o);
    uint64_t delay = cp_backoff_ns(d, t, run->a.attempt);
    run->a.attempt++;
    run->state = CP_RUN_BACKOFF;
    if (cp_loop_timer_arm(d->loop, &run->timer, cp_now_ns() + delay, cp_on_backoff, run) != 0)
        cp_wait_push(d, run); /* no timer: retry without waiting rather than never */
}

static void cp_on_done(struct cp_executor *x, struct cp_attempt *a, const struct cp_outcome *o)
{
    struct cp_dispatch *d = x->done_arg;
    struct cp_run *run = cp_run_of(a);
    if (run->state != CP_RUN_RUNNING)
        return; /* an executor's late report: ignored (the contract says it can't happen) */
    cp_run_outcome(d, run, o);
}

/* Start-to-close passed: abandon the attempt; it failed, retryable. */
static void cp_on_timeout(struct cp_loop *loop, void *arg)
{
    (void)loop;
    struct cp_run *run = arg;
    struct cp_dispatch *d = run->d;
    struct cp_executor *x = &d->x[run->exec];
    if (run->state != CP_RUN_RUNNING)
        return;
    x->ops->abandon(x, &run->a);
    d->stats.timeouts++;
    struct cp_outcome o;
    cp_outcome_set(&o, CP_OUTCOME_RETRY, "start-to-close timeout (%" PRIu64 " ms)",
                   run->task.start_to_close_ns / 1000000u);
    cp_run_outcome(d, run, &o);
}

static void cp_run_start(struct cp_dispatch *d, struct cp_run *run)
{
    struct cp_executor *x = &d->x[run->exec];
    struct cp_outcome o;
    run->state = CP_RUN_RUNNING;
    x->inflight++;
    d->stats.attempts++;
    if (!run->started_once && run->dead == 0) {
        run->started_once = true;
        uint64_t now = cp_realtime_ns();
        if (now > run->task.dispatched_ns) {
            uint64_t ns = now - run->task.dispatched_ns;
            d->stats.latency_ns_sum += ns;
            d->stats.latency_count++;
            d->stats.latency_hist[cp_latency_bucket(ns / 1000u)]++;
            if (ns > d->stats.latency_ns_max)
                d->stats.latency_ns_max = ns;
        }
    }
    int rc = cp_attempt_fill(&run->a);
    if (rc != 0) {
        cp_outcome_set(&o, CP_OUTCOME_FAIL, "the task's arguments are malformed (%s)",
                       strerror(-rc));
        cp_run_outcome(d, run, &o);
        return;
    }
    run->a.started_ns = cp_now_ns();
    run->a.exec_state = NULL;
    if (run->task.start_to_close_ns > 0 &&
        cp_loop_timer_arm(d->loop, &run->timer, run->a.started_ns + run->task.start_to_close_ns,
                          cp_on_timeout, run) != 0) {
        cp_outcome_set(&o, CP_OUTCOME_RETRY, "no timer for the start-to-close timeout");
        cp_run_outcome(d, run, &o);
        return;
    }
    rc = x->ops->start(x, &run->a);
    if (rc != 0) {
        cp_outcome_set(&o, CP_OUTCOME_RETRY, "could not start: %s", strerror(-rc));
        cp_run_outcome(d, run, &o);
    }
}

/* ---- tasks in ---------------------------------------------------------------------- */

/* A task from owner o's ring (copied out): a new run, or a cancel. */
static void cp_task(struct cp_dispatch *d, unsigned o, const struct chan_task *t)
{
    if (!chan_task_valid(t) || t->owner != o) {
        d->stats.invalid_tasks++;
        return;
    }
    struct cp_run **link = cp_find(d, t);
    if (t->kind == CHAN_TASK_CANCEL) {
        d->stats.cancels++;
        if (*link)
            cp_run_abandon(d, *link);
        return;
    }
    d->stats.tasks++;
    if (*link)
        return; /* already running: the owner dispatched it again (a reconnect) */
    struct cp_run *run = calloc(1, sizeof(*run));
    if (!run) {
        d->stats.invalid_tasks++; /* dispatched again after a reconnect */
        return;
    }
    run->d = d;
    run->task = *t;
    run->a.task = &run->task;
    run->a.attempt = t->attempt;
    run->hash_next = *link;
    *link = run;
    run->all_next = d->all;
    if (d->all)
        d->all->all_prev = run;
    d->all = run;
    d->runs++;
    char type[CHAN_TYPE_MAX + 1], activity[CHAN_NAME_MAX + 1];
    snprintf(type, sizeof(type), "%.*s", (int)t->type_len, t->type);
    snprintf(activity, sizeof(activity), "%.*s", (int)t->activity_len, t->activity);
    int x = cp_config_route(d->cfg, type, activity);
    if (x < 0) {
        struct cp_outcome f;
        cp_outcome_set(&f, CP_OUTCOME_FAIL, "no executor routes %s.%s", type, activity);
        run->exec = 0;
        d->x[0].inflight++; /* cp_run_outcome takes one back */
        cp_attempt_fill(&run->a);
        cp_run_outcome(d, run, &f);
        return;
    }
    run->exec = (unsigned)x;
    cp_wait_push(d, run);
}

/* Start waiting runs while their executors have free slots. */
static unsigned cp_start_waiting(struct cp_dispatch *d)
{
    unsigned n = 0;
    for (unsigned i = 0; i < d->executor_count; i++) {
        struct cp_executor *x = &d->x[i];
        while (d->wait_head[i] && x->inflight < x->concurrency) {
            struct cp_run *run = d->wait_head[i];
            d->wait_head[i] = run->wait_next;
            if (!d->wait_head[i])
                d->wait_tail[i] = NULL;
            cp_run_start(d, run);
            n++;
        }
    }
    return n;
}

int cp_dispatch_round(struct cp_dispatch *d)
{
    unsigned n = 0;
    for (unsigned o = 0; o < d->owner_count && d->chans; o++) {
        n += cp_outbox_flush(d, o);
        for (unsigned k = 0; k < CP_TASKS_PER_ROUND && !d->draining && d->runs < CP_RUNS_MAX; k++) {
            struct chan_task t;
            int rc = chan_pop(&d->chans[o].tasks, &t, sizeof(t));
            if (rc == -ENOENT)
                break;
            if (rc != 0)
                return -EBADMSG;
            cp_task(d, o, &t);
            n++;
        }
    }
    n += cp_start_waiting(d);
    for (unsigned o = 0; o < d->owner_count && d->chans; o++)
        n += cp_outbox_flush(d, o);
    return (int)n;
}

/* ---- life ---------------------------------------------------------------------------- */

struct cp_dispatch *cp_dispatch_new(const struct cp_config *cfg, struct cp_loop *loop, char *err,
                                    size_t err_cap)
{
    struct cp_dispatch *d = calloc(1, sizeof(*d));
    if (!d || !(d->dead = calloc(CP_DEAD_MAX, sizeof(d->dead[0])))) {
        snprintf(err, err_cap, "out of memory");
        free(d);
        return NULL;
    }
    d->loop = loop;
    d->cfg = cfg;
    d->rng = (uint64_t)cp_realtime_ns() | 1u;
    char path[CP_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/dead-letter.jsonl", cfg->dir);
    d->dead_file = fopen(path, "ae");
    if (!d->dead_file)
        fprintf(stderr, "sigflow-control: %s: %s (dead letters kept in memory only)\n", path,
                strerror(errno));
    for (unsigned i = 0; i < cfg->executor_count; i++) {
        const struct cp_executor_config *c = &cfg->executors[i];
        struct cp_executor *x = &d->x[i];
        x->ops = c->ops;
        snprintf(x->name, sizeof(x->name), "%s", c->name);
        x->loop = loop;
        x->done = cp_on_done;
        x->done_arg = d;
        x->concurrency = c->concurrency;
        char why[512] = "";
        if (x->ops->init(x, c->kv, c->kv_count, why, sizeof(why)) != 0) {
            snprintf(err, err_cap, "executor %s (line %u): %s", c->name, c->line, why);
            d->executor_count = i;
            cp_dispatch_free(d);
            return NULL;
        }
        d->executor_count = i + 1;
    }
    return d;
}

void cp_dispatch_detach(struct cp_dispatch *d)
{
    while (d->all)
        cp_run_abandon(d, d->all);
    for (unsigned o = 0; o < CHAN_OWNERS_MAX; o++) {
        free(d->outbox[o].r);
        memset(&d->outbox[o], 0, sizeof(d->outbox[o]));
    }
    d->chans = NULL;
    d->owner_count = 0;
}

void cp_dispatch_free(struct cp_dispatch *d)
{
    if (!d)
        return;
    cp_dispatch_detach(d);
    for (unsigned i = 0; i < d->executor_count; i++)
        d->x[i].ops->fini(&d->x[i]);
    if (d->dead_file)
        fclose(d->dead_file);
    free(d->dead);
    free(d);
}

void cp_dispatch_attach(struct cp_dispatch *d, struct chan *chans, unsigned owner_count)
{
    cp_dispatch_detach(d);
    d->chans = chans;
    d->owner_count = owner_count < CHAN_OWNERS_MAX ? owner_count : CHAN_OWNERS_MAX;
}

void cp_dispatch_drain(struct cp_dispatch *d)
{
    d->draining = true;
}

unsigned cp_dispatch_runs(const struct cp_dispatch *d)
{
    return d->runs;
}

unsigned cp_dispatch_results_waiting(const struct cp_dispatch *d)
{
    unsigned n = 0;
    for (unsigned o = 0; o < d->owner_count; o++)
        n += d->outbox[o].count;
    return n;
}

void cp_dispatch_get_stats(const struct cp_dispatch *d, struct cp_dispatch_stats *out)
{
    *out = d->stats;
    out->results_waiting = cp_dispatch_results_waiting(d);
}

unsigned cp_latency_bucket(uint64_t us)
{
    if (us < CP_LATENCY_SUB)
        return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us); /* us in [2^e, 2^(e+1)), e ≥ SUB_BITS */
    unsigned sub = (unsigned)(us >> (e - CP_LATENCY_SUB_BITS)) & (CP_LATENCY_SUB - 1);
    unsigned b = (e - CP_LATENCY_SUB_BITS + 1) * CP_LATENCY_SUB + sub;
    return b < CP_LATENCY_BUCKETS ? b : CP_LATENCY_BUCKETS - 1;
}

uint64_t cp_latency_bucket_upper_us(unsigned b)
{
    assert(b < CP_LATENCY_BUCKETS);
    if (b < CP_LATENCY_SUB)
        return b + 1u;
    unsigned e = b / CP_LATENCY_SUB - 1 + CP_LATENCY_SUB_BITS, sub = b % CP_LATENCY_SUB;
    return ((uint64_t)(CP_LATENCY_SUB + sub + 1)) << (e - CP_LATENCY_SUB_BITS);
}

uint64_t cp_dispatch_latency_quantile_us(const struct cp_dispatch_stats *s, double q)
{
    assert(q > 0.0 && q <= 1.0);
    if (s->latency_count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)s->latency_count), seen = 0;
    for (unsigned b = 0; b < CP_LATENCY_BUCKETS; b++) {
        seen += s->latency_hist[b];
        if (seen >= rank)
            return cp_latency_bucket_upper_us(b);
    }
    return cp_latency_bucket_upper_us(CP_LATENCY_BUCKETS - 1);
}

unsigned cp_dispatch_executor_count(const struct cp_dispatch *d)
{
    return d->executor_count;
}

const struct cp_executor *cp_dispatch_executor(const struct cp_dispatch *d, unsigned i)
{
    return i < d->executor_count ? &d->x[i] : NULL;
}

int cp_dispatch_tune(struct cp_dispatch *d, const char *executor, unsigned concurrency)
{
    if (concurrency == 0 || concurrency > CP_CONCURRENCY_MAX)
        return -ERANGE;
    for (unsigned i = 0; i < d->executor_count; i++)
        if (strcmp(d->x[i].name, executor) == 0) {
            d->x[i].concurrency = concurrency; /* lower: in-flight ones finish first */
            return 0;
        }
    return -ENOENT;
}

unsigned cp_dispatch_dead_count(const struct cp_dispatch *d)
{
    return d->dead_count;
}

const struct cp_dead *cp_dispatch_dead(const struct cp_dispatch *d, unsigned i)
{
    return i < d->dead_count ? &d->dead[(d->dead_head + i) % CP_DEAD_MAX] : NULL;
}

int cp_dispatch_retry_dead(struct cp_dispatch *d, const char *type, const char *id, uint32_t seq)
{
    for (unsigned k = d->dead_count; k-- > 0;) {
        unsigned i = (d->dead_head + k) % CP_DEAD_MAX;
        struct cp_dead *e = &d->dead[i];
        const struct chan_task *t = &e->task;
        if (t->seq != seq || strlen(type) != t->type_len || strlen(id) != t->id_len ||
            memcmp(type, t->type, t->type_len) != 0 || memcmp(id, t->id, t->id_len) != 0)
            continue;
        if (e->state == CP_DEAD_RETRYING)
            return -EBUSY;
        struct cp_run *run = calloc(1, sizeof(*run));
        if (!run)
            return -ENOMEM;
        int x = -1;
        for (unsigned j = 0; j < d->executor_count; j++)
            if (strcmp(d->x[j].name, e->executor) == 0)
                x = (int)j;
        if (x < 0) {
            free(run);
            return -ENOENT;
        }
        run->d = d;
        run->task = *t;
        run->a.task = &run->task;
        run->a.attempt = e->attempts + 1;
        run->task.max_attempts = t->max_attempts ? e->attempts + t->max_attempts : 0;
        run->dead = (int)i + 1;
        run->exec = (unsigned)x;
        run->all_next = d->all;
        if (d->all)
            d->all->all_prev = run;
        d->all = run;
        d->runs++;
        e->state = CP_DEAD_RETRYING;
        cp_wait_push(d, run);
        return 0;
    }
    return -ENOENT;
}
