/*
 * dp_ctl_server.c — the control socket's acceptor and per-connection threads (the design and
 * the limits are in dp_ctl_server.h).
 *
 * Slots: clients[] holds at most DP_CTL_CLIENTS_MAX connections. A slot is in_use from the
 * acceptor's pthread_create to its pthread_join; its thread closes its own fd and sets
 * finished under `lock`, and the acceptor joins finished slots before it looks for a free
 * one. Stop shuts the fds down under the same lock, so it never touches a closed (or reused)
 * descriptor.
 */
#include "dp_ctl_server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dp_ctl_parse.h"

_Static_assert(DP_CTL_BUF_START_BYTES <= DP_CTL_LINE_MAX + 1, "the buffer starts below its max");

/* What a connection's thread is doing, for stop (under srv->lock). */
enum dp_ctl_client_phase {
    DP_CTL_CLIENT_WAITING,  /* for (the rest of) a request line: stop ends it at once */
    DP_CTL_CLIENT_HANDLING, /* the handler runs (bounded): stop waits */
    DP_CTL_CLIENT_SENDING,  /* the reply: stop waits until send_deadline_ms */
};

struct dp_ctl_client {
    struct dp_ctl_server *srv;
    pthread_t thread;
    int fd;      /* -1 once its thread closed it (under srv->lock) */
    bool in_use; /* a thread was started for the slot and not yet joined */
    enum dp_ctl_client_phase phase;
    uint64_t send_deadline_ms; /* SENDING: a stop cuts the reply off after this */
    bool shut;                 /* stop shut its connection down */
    bool finished;             /* its thread is returning: join it */
};

struct dp_ctl_server {
    dp_ctl_handler_fn *handle;
    void *arg;
    unsigned line_timeout_ms;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int listen_fd;
    pthread_t acceptor;
    atomic_bool quit;
    pthread_mutex_t lock;         /* clients[] */
    pthread_mutex_t handler_lock; /* one request handled at a time */
    struct dp_ctl_client clients[DP_CTL_CLIENTS_MAX];
};

static uint64_t dp_ctl_server_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Send all of text; flags adds e.g. MSG_DONTWAIT. 0 or -errno (the client is gone, or did
 * not read for DP_CTL_SEND_TIMEOUT_MS). */
static int dp_ctl_server_send(int fd, const char *text, size_t len, int flags)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, text + off, len - off, MSG_NOSIGNAL | flags);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EPIPE;
        off += (size_t)w;
    }
    return 0;
}

/* Send reply (taken) and a newline. 0 or -errno. */
static int dp_ctl_server_reply(int fd, json_t *reply, int flags)
{
    char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    json_decref(reply);
    static const char oom[] = "{\"ok\":false,\"error\":\"out of memory\"}";
    int rc =
        dp_ctl_server_send(fd, text ? text : oom, text ? strlen(text) : sizeof(oom) - 1, flags);
    free(text);
    return rc == 0 ? dp_ctl_server_send(fd, "\n", 1, flags) : rc;
}

static int dp_ctl_server_error(int fd, const char *msg, int flags)
{
    return dp_ctl_server_reply(fd, json_pack("{s:b, s:s}", "ok", 0, "error", msg), flags);
}

static void dp_ctl_server_set_phase(struct dp_ctl_client *c, enum dp_ctl_client_phase phase)
{
    pthread_mutex_lock(&c->srv->lock);
    c->phase = phase;
    c->send_deadline_ms = dp_ctl_server_now_ms() + DP_CTL_STOP_GRACE_MS;
    pthread_mutex_unlock(&c->srv->lock);
}

/* One complete line (NUL-terminated at line[len]): handle it under the handler lock and send
 * the reply. A stop meanwhile waits for the handler, then DP_CTL_STOP_GRACE_MS for the reply
 * (the fault command's answer is sent after the node began to stop). */
static int dp_ctl_server_request(struct dp_ctl_client *c, const char *line, size_t len)
{
    struct dp_ctl_server *srv = c->srv;
    dp_ctl_server_set_phase(c, DP_CTL_CLIENT_HANDLING);
    pthread_mutex_lock(&srv->handler_lock);
    json_t *reply = atomic_load(&srv->quit)
                        ? json_pack("{s:b, s:s}", "ok", 0, "error", "the node is stopping")
                        : srv->handle(line, len, srv->arg);
    pthread_mutex_unlock(&srv->handler_lock);
    dp_ctl_server_set_phase(c, DP_CTL_CLIENT_SENDING);
    int rc = dp_ctl_server_reply(c->fd, reply, 0);
    dp_ctl_server_set_phase(c, DP_CTL_CLIENT_WAITING);
    return rc;
}

/* Make room for more bytes in *buf (cap *cap, have used): doubling, at most
 * DP_CTL_LINE_MAX + 1 (a longest line and its newline). 0 or -ENOMEM. */
static int dp_ctl_server_grow(char **buf, size_t *cap, size_t have)
{
    if (have < *cap)
        return 0;
    size_t next = *cap ? *cap * 2 : DP_CTL_BUF_START_BYTES;
    if (next > DP_CTL_LINE_MAX + 1)
        next = DP_CTL_LINE_MAX + 1;
    if (next <= have)
        return -ENOMEM; /* callers refuse a line before it gets here */
    char *b = realloc(*buf, next);
    if (!b)
        return -ENOMEM;
    *buf = b;
    *cap = next;
    return 0;
}

/* Serve one connection until the client leaves, breaks a limit, or the server stops. */
static void dp_ctl_server_serve(struct dp_ctl_client *c)
{
    struct dp_ctl_server *srv = c->srv;
    int fd = c->fd;
    char *buf = NULL;
    size_t cap = 0, have = 0, scanned = 0; /* bytes [0, scanned) hold no newline */
    uint64_t deadline_ms = dp_ctl_server_now_ms() + srv->line_timeout_ms;
    char msg[96];
    while (!atomic_load(&srv->quit)) {
        char *nl = have > scanned ? memchr(buf + scanned, '\n', have - scanned) : NULL;
        if (nl) {
            size_t len = (size_t)(nl - buf);
            *nl = '\0';
            if (dp_ctl_server_request(c, buf, len) != 0)
                break;
            memmove(buf, nl + 1, have - len - 1);
            have -= len + 1;
            scanned = 0;
            deadline_ms = dp_ctl_server_now_ms() + srv->line_timeout_ms;
            continue;
        }
        scanned = have;
        if (have > DP_CTL_LINE_MAX) {
            snprintf(msg, sizeof(msg), "request line too long (at most %u bytes)", DP_CTL_LINE_MAX);
            dp_ctl_server_error(fd, msg, MSG_DONTWAIT);
            break;
        }
        if (dp_ctl_server_grow(&buf, &cap, have) != 0) {
            dp_ctl_server_error(fd, "out of memory", MSG_DONTWAIT);
            break;
        }
        uint64_t now_ms = dp_ctl_server_now_ms();
        if (now_ms >= deadline_ms) {
            snprintf(msg, sizeof(msg), "no whole request line within %u ms: closing",
                     srv->line_timeout_ms);
            dp_ctl_server_error(fd, msg, MSG_DONTWAIT);
            break;
        }
        uint64_t wait_ms = deadline_ms - now_ms;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int n = poll(&pfd, 1, wait_ms < DP_CTL_POLL_MS ? (int)wait_ms : DP_CTL_POLL_MS);
        if (n == 0 || (n < 0 && errno == EINTR))
            continue;
        if (n < 0)
            break;
        ssize_t r = recv(fd, buf + have, cap - have, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            break; /* the client left (a half line is dropped) or the socket failed */
        have += (size_t)r;
    }
    free(buf);
}

static void *dp_ctl_server_client_main(void *arg)
{
    struct dp_ctl_client *c = arg;
    struct dp_ctl_server *srv = c->srv;
    dp_ctl_server_serve(c);
    pthread_mutex_lock(&srv->lock);
    close(c->fd);
    c->fd = -1;
    c->finished = true;
    pthread_mutex_unlock(&srv->lock);
    return NULL;
}

/* Join the slots whose thread returned. Called with srv->lock held. */
static void dp_ctl_server_reap(struct dp_ctl_server *srv)
{
    for (unsigned i = 0; i < DP_CTL_CLIENTS_MAX; i++) {
        struct dp_ctl_client *c = &srv->clients[i];
        if (c->in_use && c->finished) {
            pthread_join(c->thread, NULL);
            c->in_use = false;
            c->finished = false;
        }
    }
}

/* Give a new connection a slot and a thread, or an error line and the door. */
static void dp_ctl_server_admit(struct dp_ctl_server *srv, int fd)
{
    struct timeval snd = { DP_CTL_SEND_TIMEOUT_MS / 1000, DP_CTL_SEND_TIMEOUT_MS % 1000 * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd));
    const char *refused = NULL;
    pthread_mutex_lock(&srv->lock);
    dp_ctl_server_reap(srv);
    struct dp_ctl_client *slot = NULL;
    for (unsigned i = 0; i < DP_CTL_CLIENTS_MAX && !slot; i++)
        if (!srv->clients[i].in_use)
            slot = &srv->clients[i];
    if (!slot) {
        refused = "too many control connections (at most 16 at once): retry later";
    } else {
        slot->srv = srv;
        slot->fd = fd;
        slot->in_use = true;
        slot->phase = DP_CTL_CLIENT_WAITING;
        slot->shut = false;
        slot->finished = false;
        if (pthread_create(&slot->thread, NULL, dp_ctl_server_client_main, slot) != 0) {
            slot->in_use = false;
            slot->fd = -1;
            refused = "cannot start a thread for this connection: retry later";
        }
    }
    pthread_mutex_unlock(&srv->lock);
    if (refused) {
        dp_ctl_server_error(fd, refused, MSG_DONTWAIT);
        close(fd);
    }
}

static void *dp_ctl_server_accept_main(void *arg)
{
    struct dp_ctl_server *srv = arg;
    while (!atomic_load(&srv->quit)) {
        struct pollfd pfd = { .fd = srv->listen_fd, .events = POLLIN };
        if (poll(&pfd, 1, DP_CTL_POLL_MS) <= 0)
            continue;
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            /* out of descriptors or memory: the connection waits in the backlog */
            struct timespec pause = { 0, 10 * 1000000 };
            nanosleep(&pause, NULL);
            continue;
        }
        dp_ctl_server_admit(srv, fd);
    }
    return NULL;
}

static int dp_ctl_server_listen(struct dp_ctl_server *srv, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, path, strlen(path) + 1);
    srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->listen_fd < 0)
        return -errno;
    unlink(path);
    mode_t old = umask(0177);
    int rc = bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc != 0 || chmod(path, 0600) != 0 || listen(srv->listen_fd, DP_CTL_BACKLOG) != 0) {
        rc = -errno;
        close(srv->listen_fd);
        srv->listen_fd = -1;
        return rc;
    }
    return 0;
}

int dp_ctl_server_start(const struct dp_ctl_server_opts *opts, struct dp_ctl_server **out)
{
    if (!opts->handle || !opts->path)
        return -EINVAL;
    struct dp_ctl_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    size_t plen = strlen(opts->path);
    if (plen >= sizeof(srv->path)) {
        free(srv);
        return -ENAMETOOLONG;
    }
    memcpy(srv->path, opts->path, plen + 1);
    srv->handle = opts->handle;
    srv->arg = opts->arg;
    srv->line_timeout_ms = opts->line_timeout_ms ? opts->line_timeout_ms : DP_CTL_LINE_TIMEOUT_MS;
    for (unsigned i = 0; i < DP_CTL_CLIENTS_MAX; i++)
        srv->clients[i].fd = -1;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_mutex_init(&srv->handler_lock, NULL);
    int rc = dp_ctl_server_listen(srv, srv->path);
    if (rc != 0)
        goto out_free;
    rc = -pthread_create(&srv->acceptor, NULL, dp_ctl_server_accept_main, srv);
    if (rc != 0)
        goto out_close;
    pthread_setname_np(srv->acceptor, "sigflow-ctl");
    *out = srv;
    return 0;
out_close:
    close(srv->listen_fd);
    unlink(srv->path);
out_free:
    pthread_mutex_destroy(&srv->handler_lock);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
    return rc;
}

/* Shut down the connections waiting for a request, and those sending a reply past their
 * send deadline (waking a blocked recv or send). true when every client thread is returning. */
static bool dp_ctl_server_shut(struct dp_ctl_server *srv)
{
    uint64_t now_ms = dp_ctl_server_now_ms();
    bool all_finished = true;
    pthread_mutex_lock(&srv->lock);
    for (unsigned i = 0; i < DP_CTL_CLIENTS_MAX; i++) {
        struct dp_ctl_client *c = &srv->clients[i];
        if (!c->in_use || c->finished)
            continue;
        all_finished = false;
        bool cut = c->phase == DP_CTL_CLIENT_WAITING ||
                   (c->phase == DP_CTL_CLIENT_SENDING && now_ms >= c->send_deadline_ms);
        if (!c->shut && c->fd >= 0 && cut) {
            shutdown(c->fd, SHUT_RDWR);
            c->shut = true;
        }
    }
    pthread_mutex_unlock(&srv->lock);
    return all_finished;
}

void dp_ctl_server_stop(struct dp_ctl_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->quit, true);
    pthread_join(srv->acceptor, NULL); /* no new slot after this */
    /* a connection waiting for a request ends at once; a handler in progress finishes and its
     * reply gets DP_CTL_STOP_GRACE_MS to reach the client */
    while (!dp_ctl_server_shut(srv)) {
        struct timespec pause = { 0, DP_CTL_STOP_POLL_MS * 1000000 };
        nanosleep(&pause, NULL);
    }
    for (unsigned i = 0; i < DP_CTL_CLIENTS_MAX; i++)
        if (srv->clients[i].in_use)
            pthread_join(srv->clients[i].thread, NULL);
    close(srv->listen_fd);
    unlink(srv->path);
    pthread_mutex_destroy(&srv->handler_lock);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
