/*
 * cp_metrics.c — Prometheus text exposition 0.0.4 (cp_metrics.h).
 *
 *   # HELP NAME TEXT          (TEXT: \ and newline escaped)
 *   # TYPE NAME counter|gauge|histogram
 *   NAME{LABEL="VALUE",...} NUMBER     (VALUE: \, " and newline escaped)
 *
 * A family's samples follow its two comment lines, all together. The dispatch latency
 * histogram is the dispatcher's log-linear one (cp_dispatch.h) cut at its power-of-two
 * bounds, where the cumulative counts are exact: the bucket of a latency in [2^k, 2^(k+1))
 * µs never straddles one. Its open-ended last bucket is only in +Inf.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_metrics.h"

#define CP_LABEL_VALUE_MAX 256u /* bytes of one escaped label value */

void cp_text_printf(struct cp_text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (int pass = 0; pass < 2; pass++) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096u;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *b = cap <= CP_TEXT_MAX ? realloc(t->buf, cap) : NULL;
        if (!b) {
            t->failed = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
    t->failed = true; /* not reached: the second pass had room */
}

/* `s` as a label value (\\, \", \n escaped) in out; cut at CP_LABEL_VALUE_MAX. */
static const char *cp_label_escape(const char *s, char out[CP_LABEL_VALUE_MAX])
{
    size_t o = 0;
    for (; *s && o + 3 < CP_LABEL_VALUE_MAX; s++) {
        if (*s == '\\' || *s == '"') {
            out[o++] = '\\';
            out[o++] = *s;
        } else if (*s == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *s;
        }
    }
    assert(o < CP_LABEL_VALUE_MAX);
    out[o] = '\0';
    return out;
}

/* The # HELP and # TYPE lines of a family (help needs no escaping: asserted). */
static void cp_family(struct cp_text *t, const char *name, const char *type, const char *help)
{
    assert(strchr(help, '\n') == NULL && strchr(help, '\\') == NULL); /* no escapes needed */
    cp_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* ---- sigflowd ------------------------------------------------------------------------- */

/* One per-core family: the integer at cores[i].{group.}key. */
struct cp_node_metric {
    const char *group; /* NULL: a member of the core object; else of that sub-object */
    const char *key;
    const char *name;
    const char *type;
    const char *help;
};

static const struct cp_node_metric cp_node_metrics[] = {
    { NULL, "rx_packets", "sigflow_rx_packets_total", "counter", "Packets received" },
    { NULL, "rx_bytes", "sigflow_rx_bytes_total", "counter", "Bytes received" },
    { NULL, "events_routed", "sigflow_events_routed_total", "counter",
      "Events routed to their owner core" },
    { NULL, "events_applied", "sigflow_events_applied_total", "counter",
      "Events applied to a workflow on this owner core" },
    { NULL, "workflows", "sigflow_workflows_created_total", "counter",
      "Workflows created on this owner core" },
    { NULL, "tx_packets", "sigflow_tx_packets_total", "counter", "Packets sent" },
    { NULL, "acks_sent", "sigflow_acks_sent_total", "counter", "ACK datagrams sent" },
    { NULL, "nacks", "sigflow_nacks_total", "counter", "NACK datagrams sent (overloaded)" },
    { NULL, "timers_fired", "sigflow_timers_fired_total", "counter",
      "Workflow timers fired, logged and applied" },
    { NULL, "tasks_dispatched", "sigflow_tasks_dispatched_total", "counter",
      "Activity tasks put into the channel once durable" },
    { NULL, "tasks_done", "sigflow_tasks_done_total", "counter",
      "Activity runs done, logged and applied" },
    { NULL, "tasks_failed", "sigflow_tasks_failed_total", "counter",
      "Activity runs failed for good, logged and applied" },
    { NULL, "task_attempts_failed", "sigflow_task_attempts_failed_total", "counter",
      "Activity attempts failed and retried (ATTEMPT records)" },
    { NULL, "tasks_expired", "sigflow_tasks_expired_total", "counter",
      "Activity runs failed by their schedule-to-close deadline" },
    { NULL, "tasks_queued", "sigflow_tasks_queued", "gauge",
      "Activity tasks waiting for the channel on this owner core" },
    { "wal", "records", "sigflow_wal_records_total", "counter", "Log records written" },
    { "wal", "batches", "sigflow_wal_batches_total", "counter",
      "Log batches written, each made durable by one fdatasync" },
    { "wal", "bytes_written", "sigflow_wal_bytes_total", "counter", "Log bytes written" },
};

/* The integer at core.{group.}key, or false when it is not there. */
static bool cp_core_value(json_t *core, const struct cp_node_metric *m, json_int_t *out)
{
    json_t *o = m->group ? json_object_get(core, m->group) : core;
    json_t *v = json_object_get(o, m->key);
    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

/* sigflow_drops_total: one sample per core and reason (reason escaped). */
static void cp_metrics_drops(struct cp_text *t, json_t *cores)
{
    cp_family(t, "sigflow_drops_total", "counter", "Packets or events dropped, by reason");
    size_t i;
    json_t *core;
    json_array_foreach(cores, i, core)
    {
        json_int_t lcore = json_integer_value(json_object_get(core, "lcore"));
        const char *reason;
        json_t *v;
        json_object_foreach(json_object_get(core, "drops"), reason, v)
        {
            char esc[CP_LABEL_VALUE_MAX];
            if (json_is_integer(v))
                cp_text_printf(t, "sigflow_drops_total{core=\"%lld\",reason=\"%s\"} %lld\n",
                               (long long)lcore, cp_label_escape(reason, esc),
                               (long long)json_integer_value(v));
        }
    }
}

void cp_metrics_node(struct cp_text *t, json_t *stats)
{
    cp_family(t, "sigflow_node_up", "gauge", "1 when sigflowd answered the stats query");
    json_t *cores = json_object_get(stats, "cores");
    cp_text_printf(t, "sigflow_node_up %d\n", json_is_array(cores) ? 1 : 0);
    if (!json_is_array(cores))
        return;
    json_t *uptime = json_object_get(json_object_get(stats, "node"), "uptime_s");
    if (json_is_number(uptime)) {
        cp_family(t, "sigflow_uptime_seconds", "gauge", "Seconds since sigflowd started");
        cp_text_printf(t, "sigflow_uptime_seconds %.3f\n", json_number_value(uptime));
    }
    for (size_t m = 0; m < sizeof(cp_node_metrics) / sizeof(cp_node_metrics[0]); m++) {
        const struct cp_node_metric *nm = &cp_node_metrics[m];
        bool announced = false;
        size_t i;
        json_t *core;
        json_array_foreach(cores, i, core)
        {
            json_int_t v;
            if (!cp_core_value(core, nm, &v))
                continue;
            if (!announced)
                cp_family(t, nm->name, nm->type, nm->help);
            announced = true;
            cp_text_printf(t, "%s{core=\"%lld\"} %lld\n", nm->name,
                           (long long)json_integer_value(json_object_get(core, "lcore")),
                           (long long)v);
        }
    }
    cp_metrics_drops(t, cores);
}

/* ---- sigflow-control ----------------------------------------------------------------- */

/* A counter family of one unlabelled sample. */
static void cp_counter(struct cp_text *t, const char *name, const char *help, uint64_t v)
{
    cp_family(t, name, "counter", help);
    cp_text_printf(t, "%s %llu\n", name, (unsigned long long)v);
}

/* The dispatch latency histogram at the power-of-two bounds (see the top of the file). */
static void cp_metrics_latency(struct cp_text *t, const struct cp_dispatch_stats *s)
{
    static const char name[] = "sigflow_control_dispatch_latency_seconds";
    cp_family(t, name, "histogram",
              "A durable task's push by its owner core to its first attempt's start");
    uint64_t cumulative = 0;
    /* every CP_LATENCY_SUB-th bucket ends at a power of two; the last is open-ended */
    for (unsigned b = 0; b + 1 < CP_LATENCY_BUCKETS; b++) {
        cumulative += s->latency_hist[b];
        if (b % CP_LATENCY_SUB != CP_LATENCY_SUB - 1)
            continue;
        uint64_t upper_us = cp_latency_bucket_upper_us(b);
        assert((upper_us & (upper_us - 1)) == 0);
        cp_text_printf(t, "%s_bucket{le=\"%.6f\"} %llu\n", name, (double)upper_us / 1e6,
                       (unsigned long long)cumulative);
    }
    cp_text_printf(t, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)s->latency_count);
    cp_text_printf(t, "%s_sum %.9f\n", name, (double)s->latency_ns_sum / 1e9);
    cp_text_printf(t, "%s_count %llu\n", name, (unsigned long long)s->latency_count);
}

/* Per-executor gauges: attempts in flight and the concurrency bound (label executor). */
static void cp_metrics_executors(struct cp_text *t, const struct cp_dispatch *d)
{
    static const char *const names[2] = { "sigflow_control_executor_inflight",
                                          "sigflow_control_executor_concurrency" };
    static const char *const helps[2] = { "Attempts in flight on the executor",
                                          "Attempts in flight allowed on the executor" };
    for (unsigned k = 0; k < 2; k++) {
        cp_family(t, names[k], "gauge", helps[k]);
        for (unsigned i = 0; i < cp_dispatch_executor_count(d); i++) {
            const struct cp_executor *x = cp_dispatch_executor(d, i);
            char esc[CP_LABEL_VALUE_MAX];
            cp_text_printf(t, "%s{executor=\"%s\"} %u\n", names[k], cp_label_escape(x->name, esc),
                           k == 0 ? (unsigned)x->inflight : (unsigned)x->concurrency);
        }
    }
}

void cp_metrics_control(struct cp_text *t, const struct cp_dispatch *d, bool connected)
{
    struct cp_dispatch_stats s;
    cp_dispatch_get_stats(d, &s);
    cp_family(t, "sigflow_control_connected", "gauge",
              "1 when sigflow-control holds sigflowd's activity channel");
    cp_text_printf(t, "sigflow_control_connected %d\n", connected ? 1 : 0);
    cp_counter(t, "sigflow_control_tasks_total", "Tasks taken from the channel", s.tasks);
    cp_counter(t, "sigflow_control_cancels_total", "Task cancellations taken from the channel",
               s.cancels);
    cp_counter(t, "sigflow_control_attempts_total", "Attempts started", s.attempts);
    cp_counter(t, "sigflow_control_done_total", "Runs done", s.done);
    cp_counter(t, "sigflow_control_failed_total", "Runs failed for good", s.failed);
    cp_counter(t, "sigflow_control_retried_total", "Attempts failed retryably", s.retried);
    cp_counter(t, "sigflow_control_timeouts_total", "Attempts past their start-to-close timeout",
               s.timeouts);
    cp_counter(t, "sigflow_control_expired_total", "Runs ended at their schedule-to-close deadline",
               s.expired);
    cp_counter(t, "sigflow_control_dead_total", "Runs put in the dead-letter list", s.dead);
    cp_counter(t, "sigflow_control_invalid_tasks_total", "Malformed tasks from the channel",
               s.invalid_tasks);
    cp_family(t, "sigflow_control_runs", "gauge", "Runs in memory (attempting or waiting)");
    cp_text_printf(t, "sigflow_control_runs %u\n", cp_dispatch_runs(d));
    cp_family(t, "sigflow_control_results_waiting", "gauge",
              "Results waiting for room in the channel");
    cp_text_printf(t, "sigflow_control_results_waiting %u\n", cp_dispatch_results_waiting(d));
    cp_metrics_executors(t, d);
    cp_metrics_latency(t, &s);
}
