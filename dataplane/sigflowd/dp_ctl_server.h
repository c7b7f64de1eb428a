/*
 * dp_ctl_server.h — the control socket's server: a unix stream socket, one request line in,
 * one JSON object and a newline out, per request, any number of requests per connection.
 * DPDK-free (pthreads, jansson); the daemon plugs its command handler in (dp_ctl.c).
 *
 * Threads: one acceptor, and one thread per connection, at most DP_CTL_CLIENTS_MAX at once.
 * A connection beyond that gets {"ok":false,"error":"too many control connections ..."} and is
 * closed at once. Why threads rather than one poll() loop: a reply can be megabytes (a
 * history) and a client may read it slowly or never; a thread per client blocks only in its
 * own send (bounded by DP_CTL_SEND_TIMEOUT_MS), where a poll loop would need a write buffer
 * per client as well as a read buffer. The connections are few and long-lived threads are
 * cheap here, off the data path.
 *
 * Limits, so that no client can hold the others up:
 *  - each request line must arrive whole within line_timeout_ms (DP_CTL_LINE_TIMEOUT_MS by
 *    default) of connecting or of the previous reply; an idle or slow client then gets
 *    {"ok":false,"error":"no whole request line within ..."} and is closed;
 *  - a line longer than DP_CTL_LINE_MAX bytes gets {"ok":false,"error":"request line too
 *    long ..."} and the connection is closed (its buffer grows only as far as the line does);
 *  - the handler runs for one request at a time (one mutex), so it may use static buffers and
 *    the node's single-writer state; it must return in bounded time.
 *
 * Stop: dp_ctl_server_stop ends the connections waiting for a request at once, lets a
 * handler in progress finish and its reply be sent (up to DP_CTL_STOP_GRACE_MS: the reply to
 * a request that stops the node still arrives), shutting a connection down (which wakes a
 * blocked recv or send) past that, and joins every thread; nothing is left running or blocked.
 */
#ifndef DP_CTL_SERVER_H
#define DP_CTL_SERVER_H

#include <stddef.h>

#include <jansson.h>

#define DP_CTL_CLIENTS_MAX     16
#define DP_CTL_LINE_TIMEOUT_MS 30000 /* a whole request line, from the previous reply */
#define DP_CTL_SEND_TIMEOUT_MS 30000 /* each send of a reply (a client that does not read) */
#define DP_CTL_POLL_MS         200   /* how often a waiting thread looks at the stop flag */
#define DP_CTL_STOP_GRACE_MS   1000  /* at stop, for a reply being sent */
#define DP_CTL_STOP_POLL_MS    5
#define DP_CTL_BACKLOG         16
#define DP_CTL_BUF_START_BYTES 4096 /* a client's line buffer, doubled up to the line max */

/**
 * Answer one request line (len bytes, NUL-terminated at line[len], no newline). Returns the
 * reply (the server sends and releases it), or NULL for an out-of-memory error reply.
 * Called with the server's handler mutex held: one call at a time.
 */
typedef json_t *dp_ctl_handler_fn(const char *line, size_t len, void *arg);

struct dp_ctl_server_opts {
    const char *path; /* the socket: created with mode 0600 (replacing a stale one) */
    dp_ctl_handler_fn *handle;
    void *arg;                /* handed to handle */
    unsigned line_timeout_ms; /* 0: DP_CTL_LINE_TIMEOUT_MS */
};

struct dp_ctl_server;

/**
 * Bind and listen at opts->path and start the acceptor. Returns 0 with *out, or -errno:
 * -ENAMETOOLONG (path too long for a unix socket), -EINVAL (no handler), or what socket,
 * bind, listen or pthread_create failed with (nothing is left behind).
 */
int dp_ctl_server_start(const struct dp_ctl_server_opts *opts, struct dp_ctl_server **out);

/** Stop accepting, end every connection, join every thread, remove the socket and free the
 *  server. Returns once nothing is left running: at most DP_CTL_POLL_MS plus the handler
 *  call in progress plus DP_CTL_STOP_GRACE_MS. NULL-safe. Can't fail. */
void dp_ctl_server_stop(struct dp_ctl_server *srv);

#endif
