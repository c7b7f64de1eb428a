/*
 * cp_metrics.h — the Prometheus text exposition (format 0.0.4) of GET /metrics: sigflowd's
 * `stats` answer (per core, label core="LCORE") and sigflow-control's own dispatcher figures.
 * Every family has # HELP and # TYPE; names are fixed here, label values escaped. Pure
 * rendering into a growable buffer: no I/O, so tests can feed it any JSON.
 * docs/control.md "HTTP: health and metrics" lists every metric.
 */
#ifndef CP_METRICS_H
#define CP_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "cp_dispatch.h"

#define CP_TEXT_MAX (16u << 20) /* bytes of one exposition at most */

/** A growable text buffer; `failed` once an append did not fit (out of memory or
 *  CP_TEXT_MAX): the text is then incomplete and must not be served. */
struct cp_text {
    char *buf;
    size_t len, cap;
    bool failed;
};

/** Append printf-style. Sets t->failed instead of failing. */
void cp_text_printf(struct cp_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * sigflowd's families from its `stats` answer (NULL: the node did not answer; only
 * sigflow_node_up 0 is written). Missing members are left out, never invented.
 */
void cp_metrics_node(struct cp_text *t, json_t *stats);

/** sigflow-control's families: dispatcher counters, per-executor gauges, the dispatch latency
 *  histogram, and whether the channel is connected. */
void cp_metrics_control(struct cp_text *t, const struct cp_dispatch *d, bool connected);

#endif
