/*
 * cp_node.c — one JSON request to sigflowd's control socket on cp_loop (cp_node.h).
 * The request line is small (well under a socket buffer), so it is sent whole at once;
 * the answer is read into a buffer that doubles up to CP_NODE_ANSWER_MAX.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cp_node.h"

#define CP_NODE_LINE_MAX 256u  /* request line */
#define CP_NODE_BUF_MIN  4096u /* first answer buffer */

void cp_node_query_init(struct cp_node_query *q, struct cp_loop *loop)
{
    assert(loop);
    memset(q, 0, sizeof(*q));
    q->loop = loop;
    q->fd = -1;
}

/* Close the socket and disarm; the buffer is kept for the next query. */
static void cp_node_close(struct cp_node_query *q)
{
    assert(q->fd >= 0);
    cp_loop_timer_cancel(q->loop, &q->timer);
    cp_loop_watch(q->loop, q->fd, 0, NULL, NULL);
    close(q->fd);
    q->fd = -1;
}

/* End the query: close, then report (done may start the next query). */
static void cp_node_finish(struct cp_node_query *q, json_t *answer, const char *reason)
{
    cp_node_close(q);
    q->done(q->arg, answer, reason);
}

/* cp_timer_fn: the answer did not come within the query's timeout. */
static void cp_node_timeout(struct cp_loop *loop, void *arg)
{
    (void)loop;
    cp_node_finish(arg, NULL, "sigflowd did not answer in time");
}

/* cp_fd_fn: take what arrived (growing the buffer up to CP_NODE_ANSWER_MAX); on the
 * answer's newline parse it and finish the query. */
static void cp_node_on_readable(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    (void)loop, (void)events;
    struct cp_node_query *q = arg;
    if (q->cap - q->len < CP_NODE_BUF_MIN && q->cap < CP_NODE_ANSWER_MAX) {
        size_t cap = q->cap ? q->cap * 2 : CP_NODE_BUF_MIN * 4;
        char *b = realloc(q->buf, cap);
        if (!b) {
            cp_node_finish(q, NULL, "out of memory");
            return;
        }
        q->buf = b;
        q->cap = cap;
    }
    if (q->len + 1 >= q->cap) {
        cp_node_finish(q, NULL, "sigflowd's answer is too long");
        return;
    }
    ssize_t r = recv(fd, q->buf + q->len, q->cap - 1 - q->len, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        cp_node_finish(q, NULL, "sigflowd closed the socket without an answer");
        return;
    }
    size_t old = q->len;
    q->len += (size_t)r;
    char *nl = memchr(q->buf + old, '\n', q->len - old);
    if (!nl)
        return;
    *nl = '\0';
    json_error_t jerr;
    json_t *ans = json_loads(q->buf, 0, &jerr);
    if (!json_is_object(ans)) {
        json_decref(ans);
        cp_node_finish(q, NULL, "sigflowd's answer is not a JSON object");
        return;
    }
    cp_node_finish(q, ans, NULL);
    json_decref(ans);
}

int cp_node_query_start(struct cp_node_query *q, const char *path, const char *line,
                        unsigned timeout_ms, cp_node_done_fn *done, void *arg)
{
    assert(done && path && line);
    if (q->fd >= 0)
        return -EBUSY;
    q->done = done;
    q->arg = arg;
    q->len = 0;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char msg[CP_NODE_LINE_MAX];
    int n = snprintf(msg, sizeof(msg), "%s\n", line);
    if (strlen(path) >= sizeof(sa.sun_path) || n < 0 || (size_t)n >= sizeof(msg)) {
        done(arg, NULL, "socket path or request too long");
        return 0;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        done(arg, NULL, strerror(errno));
        return 0;
    }
    /* a unix stream connect completes at once or fails (EAGAIN: backlog full) */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        send(fd, msg, (size_t)n, MSG_NOSIGNAL) != n) {
        char reason[CP_NODE_REASON_MAX];
        snprintf(reason, sizeof(reason), "sigflowd.sock: %s", strerror(errno));
        close(fd);
        done(arg, NULL, reason);
        return 0;
    }
    int rc = cp_loop_watch(q->loop, fd, EPOLLIN, cp_node_on_readable, q);
    if (rc == 0)
        rc = cp_loop_timer_arm(q->loop, &q->timer, cp_now_ns() + timeout_ms * 1000000ull,
                               cp_node_timeout, q);
    q->fd = fd;
    if (rc != 0) {
        cp_node_finish(q, NULL, "event loop full");
        return 0;
    }
    return 0;
}

void cp_node_query_fini(struct cp_node_query *q)
{
    if (q->fd >= 0)
        cp_node_close(q);
    free(q->buf);
    q->buf = NULL;
    q->len = q->cap = 0;
}
