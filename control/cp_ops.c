/*
 * cp_ops.c — health, readiness and metrics over HTTP (cp_ops.h). Routing is here; the HTTP
 * server is cp_http.c, sigflowd's queries cp_node.c, the exposition cp_metrics.c.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_http.h"
#include "cp_metrics.h"
#include "cp_node.h"
#include "cp_ops.h"

#define CP_OPS_SOCK_PATH_MAX 108u /* sun_path */
#define CP_OPS_REASON_MAX    160u

struct cp_ops {
    struct cp_loop *loop;
    struct cp_http *http;
    const struct cp_dispatch *d;
    cp_ops_connected_fn *connected;
    void *arg;
    char sock_path[CP_OPS_SOCK_PATH_MAX];
    struct cp_node_query ping_q, stats_q;
    struct cp_timer ping_timer, wake_timer;
    bool ping_ok;
    uint64_t ping_ns; /* when the last ping ended (0: never) */
    char ping_reason[CP_OPS_REASON_MAX];
    json_t *stats;     /* last stats answer, NULL when it failed */
    uint64_t stats_ns; /* when it ended (0: never) */
};

static const char cp_text_plain[] = "text/plain; charset=utf-8";
static const char cp_prometheus[] = "text/plain; version=0.0.4; charset=utf-8";

/* ---- sigflowd's answers ---------------------------------------------------------------- */

/* cp_node_done_fn of ping: remember whether, when and why not. */
static void cp_ops_ping_done(void *arg, json_t *answer, const char *reason)
{
    struct cp_ops *o = arg;
    o->ping_ns = cp_now_ns();
    o->ping_ok = answer && json_is_true(json_object_get(answer, "ok"));
    snprintf(o->ping_reason, sizeof(o->ping_reason), "%s",
             o->ping_ok ? ""
             : reason   ? reason
                        : "sigflowd answered ping with an error");
}

/* cp_timer_fn, every CP_OPS_PING_PERIOD_MS: ask ping unless the last one is in flight. */
static void cp_ops_ping(struct cp_loop *loop, void *arg)
{
    struct cp_ops *o = arg;
    if (!cp_node_query_busy(&o->ping_q))
        cp_node_query_start(&o->ping_q, o->sock_path, "{\"cmd\":\"ping\"}", CP_OPS_PING_TIMEOUT_MS,
                            cp_ops_ping_done, o);
    cp_loop_timer_arm(loop, &o->ping_timer, cp_now_ns() + CP_OPS_PING_PERIOD_MS * 1000000ull,
                      cp_ops_ping, o);
}

/* cp_timer_fn: resume the scrapes that waited for stats. */
static void cp_ops_wake(struct cp_loop *loop, void *arg)
{
    (void)loop;
    struct cp_ops *o = arg;
    cp_http_wake(o->http);
}

/* The stats answer is in: keep it, and wake the waiting scrapes from a timer (this may run
 * inside cp_node_query_start, called from the HTTP handler: MHD must not be re-entered). */
static void cp_ops_stats_done(void *arg, json_t *answer, const char *reason)
{
    struct cp_ops *o = arg;
    json_decref(o->stats);
    o->stats = answer && json_is_true(json_object_get(answer, "ok")) ? json_incref(answer) : NULL;
    o->stats_ns = cp_now_ns();
    if (!o->stats)
        fprintf(stderr, "sigflow-control: metrics: sigflowd stats: %s\n",
                reason ? reason : "an error answer");
    cp_loop_timer_arm(o->loop, &o->wake_timer, cp_now_ns(), cp_ops_wake, o);
}

/* ---- the routes ------------------------------------------------------------------------- */

/* Fill r with a plain-text reply (the body copied). Returns 0 (answered); a body that
 * cannot be copied is NULL and the server closes the connection. */
static int cp_ops_text(struct cp_http_reply *r, unsigned status, const char *text)
{
    r->status = status;
    r->content_type = cp_text_plain;
    r->body = strdup(text);
    r->len = r->body ? strlen(r->body) : 0;
    return 0;
}

/* /readyz: 200 when the channel is held and the last ping (≤ CP_OPS_PING_STALE_MS old) was
 * answered; else 503 and one line with the reason. Returns 0. */
static int cp_ops_readyz(struct cp_ops *o, struct cp_http_reply *r)
{
    char line[CP_OPS_REASON_MAX + 64];
    uint64_t now = cp_now_ns();
    if (!o->connected(o->arg))
        return cp_ops_text(r, 503, "not ready: not connected to sigflowd's activity channel\n");
    if (o->ping_ns == 0 || now - o->ping_ns > CP_OPS_PING_STALE_MS * 1000000ull)
        return cp_ops_text(r, 503, "not ready: no recent answer from sigflowd to ping\n");
    if (!o->ping_ok) {
        snprintf(line, sizeof(line), "not ready: sigflowd ping: %s\n", o->ping_reason);
        return cp_ops_text(r, 503, line);
    }
    return cp_ops_text(r, 200, "ready\n");
}

/* /metrics: from a stats answer at most CP_OPS_STATS_MAX_AGE_MS old, else wait for one. */
static int cp_ops_metrics(struct cp_ops *o, struct cp_http_reply *r)
{
    uint64_t now = cp_now_ns();
    if (o->stats_ns == 0 || now - o->stats_ns > CP_OPS_STATS_MAX_AGE_MS * 1000000ull) {
        if (!cp_node_query_busy(&o->stats_q))
            cp_node_query_start(&o->stats_q, o->sock_path, "{\"cmd\":\"stats\"}",
                                CP_OPS_STATS_TIMEOUT_MS, cp_ops_stats_done, o);
        return 1;
    }
    struct cp_text t = { 0 };
    cp_metrics_node(&t, o->stats);
    cp_metrics_control(&t, o->d, o->connected(o->arg));
    if (t.failed) {
        free(t.buf);
        return cp_ops_text(r, 500, "metrics: out of memory\n");
    }
    r->status = 200;
    r->content_type = cp_prometheus;
    r->body = t.buf;
    r->len = t.len;
    return 0;
}

/* cp_http_handler_fn: route the three paths, 404 for the rest. */
static int cp_ops_handle(void *arg, const char *path, struct cp_http_reply *r)
{
    struct cp_ops *o = arg;
    if (strcmp(path, "/healthz") == 0)
        return cp_ops_text(r, 200, "ok\n");
    if (strcmp(path, "/readyz") == 0)
        return cp_ops_readyz(o, r);
    if (strcmp(path, "/metrics") == 0)
        return cp_ops_metrics(o, r);
    return cp_ops_text(r, 404, "not found (/healthz, /readyz, /metrics)\n");
}

struct cp_ops *cp_ops_new(struct cp_loop *loop, const struct cp_config *cfg,
                          const struct cp_dispatch *d, cp_ops_connected_fn *connected, void *arg,
                          char *err, size_t err_cap)
{
    assert(cfg->http_enabled && connected);
    struct cp_ops *o = calloc(1, sizeof(*o));
    if (!o) {
        snprintf(err, err_cap, "http: out of memory");
        return NULL;
    }
    int n = snprintf(o->sock_path, sizeof(o->sock_path), "%s/sigflowd.sock", cfg->dir);
    if (n < 0 || (size_t)n >= sizeof(o->sock_path)) {
        snprintf(err, err_cap, "%s/sigflowd.sock: path too long", cfg->dir);
        free(o);
        return NULL;
    }
    o->loop = loop;
    o->d = d;
    o->connected = connected;
    o->arg = arg;
    cp_node_query_init(&o->ping_q, loop);
    cp_node_query_init(&o->stats_q, loop);
    o->http = cp_http_new(loop, cfg->http_addr, cfg->http_port, cp_ops_handle, o, err, err_cap);
    if (!o->http) {
        free(o);
        return NULL;
    }
    cp_ops_ping(loop, o);
    return o;
}

void cp_ops_free(struct cp_ops *o)
{
    if (!o)
        return;
    cp_http_free(o->http);
    cp_loop_timer_cancel(o->loop, &o->ping_timer);
    cp_loop_timer_cancel(o->loop, &o->wake_timer);
    cp_node_query_fini(&o->ping_q);
    cp_node_query_fini(&o->stats_q);
    json_decref(o->stats);
    free(o);
}
