/*
 * cp_node.h — one JSON request to sigflowd's control socket (DIR/sigflowd.sock: one line in,
 * one JSON line out) driven by cp_loop: a non-blocking unix socket, the answer read as it
 * arrives, bounded in size and time. sigflow-control's HTTP side uses it for `ping`
 * (/readyz) and `stats` (/metrics) without stalling the loop.
 */
#ifndef CP_NODE_H
#define CP_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "cp_loop.h"

#define CP_NODE_ANSWER_MAX (8u << 20) /* bytes of one answer at most */
#define CP_NODE_REASON_MAX 128u

/**
 * Called once per query, from the loop: `answer` is the parsed JSON object (borrowed: incref
 * to keep it) or NULL, then `reason` says why (connect refused, timeout, bad JSON, ...).
 */
typedef void cp_node_done_fn(void *arg, json_t *answer, const char *reason);

struct cp_node_query {
    struct cp_loop *loop;
    int fd; /* -1 when idle */
    char *buf;
    size_t len, cap;
    struct cp_timer timer;
    cp_node_done_fn *done;
    void *arg;
};

/** An idle query. Can't fail. */
void cp_node_query_init(struct cp_node_query *q, struct cp_loop *loop);

static inline bool cp_node_query_busy(const struct cp_node_query *q)
{
    return q->fd >= 0;
}

/**
 * Send `line` (a JSON object, no newline) to the unix socket `path`; done(arg, ...) runs
 * when the answer line arrives, or after timeout_ms, or at once from this call when the
 * socket cannot be reached. Returns 0, or -EBUSY when q has a query in flight (nothing
 * sent, done not called).
 */
int cp_node_query_start(struct cp_node_query *q, const char *path, const char *line,
                        unsigned timeout_ms, cp_node_done_fn *done, void *arg);

/** Abandon a query in flight without calling done; free the buffer. Can't fail. */
void cp_node_query_fini(struct cp_node_query *q);

#endif
