/*
 * cp_ops.h — sigflow-control's operator surface over HTTP ([control] http): GET /healthz
 * (the process is up), /readyz (the activity channel is held and sigflowd answers ping),
 * /metrics (Prometheus text: sigflowd's stats and the dispatcher's own, cp_metrics.h).
 * Everything runs on the loop: sigflowd is asked through cp_node queries, never blocking.
 *
 * ping: every CP_OPS_PING_PERIOD_MS, timeout CP_OPS_PING_TIMEOUT_MS; /readyz answers from
 * the last one. stats: asked when a scrape finds the cached answer older than
 * CP_OPS_STATS_MAX_AGE_MS; the scrape waits for it (its connection is suspended).
 */
#ifndef CP_OPS_H
#define CP_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "cp_config.h"
#include "cp_dispatch.h"
#include "cp_loop.h"

#define CP_OPS_PING_PERIOD_MS   1000u
#define CP_OPS_PING_TIMEOUT_MS  200u
#define CP_OPS_PING_STALE_MS    3000u /* a ping answer older than this is not readiness */
#define CP_OPS_STATS_MAX_AGE_MS 1000u
#define CP_OPS_STATS_TIMEOUT_MS 5000u /* sigflowd gives each owner 2 s */

struct cp_ops;

/** Whether sigflow-control holds sigflowd's activity channel now. */
typedef bool cp_ops_connected_fn(void *arg);

/**
 * Serve cfg's http address (cfg->http_enabled must be true) for dispatcher d. Returns it,
 * or NULL with err filled (the address cannot be bound, no memory).
 */
struct cp_ops *cp_ops_new(struct cp_loop *loop, const struct cp_config *cfg,
                          const struct cp_dispatch *d, cp_ops_connected_fn *connected, void *arg,
                          char *err, size_t err_cap);

/** Stop serving, abandon queries in flight, free. NULL is a no-op. */
void cp_ops_free(struct cp_ops *o);

#endif
