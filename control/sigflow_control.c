/*
 * sigflow_control.c — sigflow-control, the control-plane process: connects to sigflowd's
 * activity channel (DIR/activity.sock), executes the tasks the owner cores hand it through
 * the configured executors (cp_dispatch.h) and sends each run's outcome back, where the
 * owner logs it before applying it. docs/control.md is its manual.
 *
 *   sigflow-control --config FILE
 *
 * One thread, one event loop (cp_loop.h). The channel's rings are polled every loop pass
 * (a pass waits at most CP_POLL_MS when idle). When the daemon goes away every run is
 * abandoned (the daemon dispatches again all that has no logged outcome) and the process
 * reconnects every CP_RECONNECT_MS. SIGTERM/SIGINT: stop taking tasks, let attempts in
 * flight finish for up to [control] grace_s, push their results, exit; what is abandoned
 * then is dispatched again by the daemon when a control process connects next.
 *
 * DIR/control.sock (unix stream, mode 0600) answers one JSON request line per connection
 * with one JSON line: {"cmd":"stats"}, {"cmd":"executors"}, {"cmd":"failed"},
 * {"cmd":"retry","type":T,"id":I,"seq":N}, {"cmd":"tune","executor":X,"concurrency":N}
 * (sigflowctl activity failed|retry, sigflowctl executor list|tune).
 *
 * [control] http (default 127.0.0.1:7780, `off`): GET /healthz, /readyz, /metrics on the
 * same loop (cp_ops.h; libmicrohttpd in its external epoll mode, no thread).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "chan.h"
#include "cp_config.h"
#include "cp_dispatch.h"
#include "cp_loop.h"
#include "cp_ops.h"

#define CP_POLL_MS         1u  /* an idle pass waits this long for descriptors and timers */
#define CP_IDLE_POLL_MS    20u /* ... after CP_IDLE_PASSES passes without work */
#define CP_IDLE_PASSES     1000u
#define CP_RECONNECT_MS    200u
#define CP_HELLO_WAIT_MS   2000
#define CP_REQUEST_MAX     4096u /* one control request line */
#define CP_REQUEST_TIMEOUT 5000u /* ms for a client to send its line */

struct cp_client {
    int fd;
    char buf[CP_REQUEST_MAX];
    size_t len;
    struct cp_timer timer;
    struct cp_main *m;
};

struct cp_main {
    struct cp_config cfg;
    struct cp_loop *loop;
    struct cp_dispatch *d;
    struct cp_ops *ops; /* [control] http; NULL when off */
    int sock;           /* to sigflowd, -1 when not connected */
    int listen_fd;      /* control.sock */
    int signal_fd;
    struct chan chans[CHAN_OWNERS_MAX];
    unsigned owner_count;
    bool stopping;
    uint64_t stop_deadline_ns;
    uint64_t next_connect_ns;
    uint64_t connects;
    char ctl_path[CP_PATH_MAX + 32];
};

/* ---- the daemon connection ----------------------------------------------------------- */

static void cp_disconnect(struct cp_main *m, const char *why)
{
    if (m->sock < 0)
        return;
    fprintf(stderr, "sigflow-control: disconnected from sigflowd: %s\n", why);
    cp_dispatch_detach(m->d);
    cp_loop_watch(m->loop, m->sock, 0, NULL, NULL);
    close(m->sock);
    m->sock = -1;
    for (unsigned o = 0; o < m->owner_count; o++)
        chan_detach(&m->chans[o]);
    m->owner_count = 0;
    m->next_connect_ns = cp_now_ns() + CP_RECONNECT_MS * 1000000ull;
}

static void cp_on_daemon(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    (void)loop, (void)fd, (void)events;
    cp_disconnect(arg, "the daemon closed the channel");
}

/* Connect, say hello, receive and map the owners' channel files. 0 or -errno. */
static int cp_connect(struct cp_main *m)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/activity.sock", m->cfg.dir);
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 0, fds[CHAN_OWNERS_MAX];
    struct chan_hello h = { .magic = CHAN_MAGIC, .version = CHAN_VERSION, .pid = getpid() };
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        rc = -errno;
    if (rc == 0)
        rc = chan_hello_send(fd, &h, NULL, 0);
    if (rc == 0) {
        struct timeval tv = { .tv_sec = CP_HELLO_WAIT_MS / 1000 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        rc = chan_hello_recv(fd, &h, fds, CHAN_OWNERS_MAX);
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    unsigned got = (unsigned)rc;
    rc = got == h.owner_count && got > 0 ? 0 : -EBADMSG;
    unsigned mapped = 0;
    for (; rc == 0 && mapped < got; mapped++)
        rc = chan_attach(fds[mapped], h.file_bytes, &m->chans[mapped]);
    for (unsigned i = 0; i < got; i++)
        close(fds[i]);
    if (rc != 0) {
        for (unsigned i = 0; i + 1 < mapped; i++)
            chan_detach(&m->chans[i]);
        close(fd);
        return rc;
    }
    struct timeval none = { 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    m->sock = fd;
    m->owner_count = got;
    m->connects++;
    cp_dispatch_attach(m->d, m->chans, got);
    cp_loop_watch(m->loop, fd, EPOLLIN | EPOLLRDHUP, cp_on_daemon, m);
    fprintf(stderr, "sigflow-control: connected to sigflowd %d: %u owner cores\n", (int)h.pid, got);
    return 0;
}

/* ---- control requests ------------------------------------------------------------------ */

static json_t *cp_req_stats(struct cp_main *m)
{
    struct cp_dispatch_stats s;
    cp_dispatch_get_stats(m->d, &s);
    json_t *out =
        json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                  "s:I, s:I, s:f}",
                  "ok", 1, "connected", m->sock >= 0, "connects", (json_int_t)m->connects, "runs",
                  (json_int_t)cp_dispatch_runs(m->d), "tasks", (json_int_t)s.tasks, "cancels",
                  (json_int_t)s.cancels, "attempts", (json_int_t)s.attempts, "done",
                  (json_int_t)s.done, "failed", (json_int_t)s.failed, "retried",
                  (json_int_t)s.retried, "timeouts", (json_int_t)s.timeouts, "expired",
                  (json_int_t)s.expired, "dead", (json_int_t)s.dead, "invalid_tasks",
                  (json_int_t)s.invalid_tasks, "results_waiting", (json_int_t)s.results_waiting,
                  "dispatch_latency_count", (json_int_t)s.latency_count, "dispatch_latency_mean_us",
                  s.latency_count ? (double)s.latency_ns_sum / (double)s.latency_count / 1e3 : 0.0);
    /* percentiles: the upper bound of their histogram bucket (within 12.5 %) */
    json_object_set_new(out, "dispatch_latency_p50_us",
                        json_integer((json_int_t)cp_dispatch_latency_quantile_us(&s, 0.50)));
    json_object_set_new(out, "dispatch_latency_p99_us",
                        json_integer((json_int_t)cp_dispatch_latency_quantile_us(&s, 0.99)));
    json_object_set_new(out, "dispatch_latency_p999_us",
                        json_integer((json_int_t)cp_dispatch_latency_quantile_us(&s, 0.999)));
    json_object_set_new(out, "dispatch_latency_max_us",
                        json_integer((json_int_t)(s.latency_ns_max / 1000u)));
    return out;
}

static json_t *cp_req_executors(struct cp_main *m)
{
    json_t *arr = json_array();
    for (unsigned i = 0; i < cp_dispatch_executor_count(m->d); i++) {
        const struct cp_executor *x = cp_dispatch_executor(m->d, i);
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:I, s:I}", "name", x->name, "kind",
                                        x->ops->kind, "concurrency", (json_int_t)x->concurrency,
                                        "inflight", (json_int_t)x->inflight));
    }
    return json_pack("{s:b, s:o}", "ok", 1, "executors", arr);
}

static json_t *cp_req_failed(struct cp_main *m)
{
    static const char *const states[] = { "failed", "retrying", "retry_done", "retry_failed" };
    json_t *arr = json_array();
    for (unsigned i = 0; i < cp_dispatch_dead_count(m->d); i++) {
        const struct cp_dead *e = cp_dispatch_dead(m->d, i);
        const struct chan_task *t = &e->task;
        char key[CHAN_IDEM_KEY_MAX];
        chan_idempotency_key(t->key_hi, t->key_lo, t->seq, key, sizeof(key));
        json_array_append_new(
            arr,
            json_pack("{s:s%, s:s%, s:s%, s:I, s:I, s:s, s:s, s:s, s:I}", "type", t->type,
                      (size_t)t->type_len, "id", t->id, (size_t)t->id_len, "activity", t->activity,
                      (size_t)t->activity_len, "seq", (json_int_t)t->seq, "attempts",
                      (json_int_t)e->attempts, "reason", e->reason, "executor", e->executor,
                      "state", states[e->state], "failed_ns", (json_int_t)e->failed_ns));
        json_object_set_new(json_array_get(arr, json_array_size(arr) - 1), "idempotency_key",
                            json_string(key));
    }
    return json_pack("{s:b, s:o}", "ok", 1, "failed", arr);
}

static json_t *cp_error(const char *msg)
{
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static json_t *cp_request(struct cp_main *m, const char *line)
{
    json_error_t jerr;
    json_t *req = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    const char *cmd = req ? json_string_value(json_object_get(req, "cmd")) : NULL;
    json_t *out;
    if (!cmd) {
        out = cp_error("expected a JSON object with \"cmd\"");
    } else if (strcmp(cmd, "stats") == 0) {
        out = cp_req_stats(m);
    } else if (strcmp(cmd, "executors") == 0) {
        out = cp_req_executors(m);
    } else if (strcmp(cmd, "failed") == 0) {
        out = cp_req_failed(m);
    } else if (strcmp(cmd, "retry") == 0) {
        const char *type = json_string_value(json_object_get(req, "type"));
        const char *id = json_string_value(json_object_get(req, "id"));
        json_int_t seq = json_integer_value(json_object_get(req, "seq"));
        int rc = type && id && seq > 0 && seq <= UINT32_MAX
                     ? cp_dispatch_retry_dead(m->d, type, id, (uint32_t)seq)
                     : -EINVAL;
        out = rc == 0         ? json_pack("{s:b}", "ok", 1)
              : rc == -ENOENT ? cp_error("no failed run with that type, id and seq")
              : rc == -EBUSY  ? cp_error("that run is being retried already")
              : rc == -EINVAL ? cp_error("retry needs type, id and seq (a positive integer)")
                              : cp_error(strerror(-rc));
    } else if (strcmp(cmd, "tune") == 0) {
        const char *x = json_string_value(json_object_get(req, "executor"));
        json_int_t n = json_integer_value(json_object_get(req, "concurrency"));
        int rc = x && n > 0 && n <= CP_CONCURRENCY_MAX ? cp_dispatch_tune(m->d, x, (unsigned)n)
                                                       : -ERANGE;
        out = rc == 0         ? json_pack("{s:b}", "ok", 1)
              : rc == -ENOENT ? cp_error("no executor by that name")
                              : cp_error("concurrency must be 1..65536");
    } else {
        out = cp_error("unknown cmd (stats, executors, failed, retry, tune)");
    }
    json_decref(req);
    return out;
}

static void cp_client_close(struct cp_client *c)
{
    cp_loop_timer_cancel(c->m->loop, &c->timer);
    cp_loop_watch(c->m->loop, c->fd, 0, NULL, NULL);
    close(c->fd);
    free(c);
}

static void cp_client_timeout(struct cp_loop *loop, void *arg)
{
    (void)loop;
    cp_client_close(arg);
}

static void cp_on_client(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    (void)loop, (void)events;
    struct cp_client *c = arg;
    ssize_t r = recv(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        cp_client_close(c);
        return;
    }
    c->len += (size_t)r;
    c->buf[c->len] = '\0';
    char *nl = memchr(c->buf, '\n', c->len);
    json_t *out = NULL;
    if (nl) {
        *nl = '\0';
        out = cp_request(c->m, c->buf);
    } else if (c->len == sizeof(c->buf) - 1) {
        out = cp_error("request line too long");
    } else {
        return;
    }
    char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
    json_decref(out);
    if (text) {
        /* a reply is small (the dead-letter list is the largest); the socket buffer takes it,
         * and a client that does not read loses its reply, not our loop */
        size_t len = strlen(text);
        text[len] = '\n';
        ssize_t w = send(fd, text, len + 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w;
        free(text);
    }
    cp_client_close(c);
}

static void cp_on_accept(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    (void)events;
    struct cp_main *m = arg;
    int c_fd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c_fd < 0)
        return;
    int sndbuf = 4 << 20;
    setsockopt(c_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    struct cp_client *c = calloc(1, sizeof(*c));
    if (!c || cp_loop_watch(loop, c_fd, EPOLLIN, cp_on_client, c) != 0) {
        free(c);
        close(c_fd);
        return;
    }
    c->fd = c_fd;
    c->m = m;
    cp_loop_timer_arm(loop, &c->timer, cp_now_ns() + CP_REQUEST_TIMEOUT * 1000000ull,
                      cp_client_timeout, c);
}

static int cp_listen(struct cp_main *m)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int n = snprintf(m->ctl_path, sizeof(m->ctl_path), "%s/control.sock", m->cfg.dir);
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, m->ctl_path, (size_t)n + 1); /* n + 1 <= sizeof(sun_path): checked */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    unlink(m->ctl_path);
    mode_t old = umask(0077);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 16) == 0 ? 0 : -errno;
    umask(old);
    if (rc == 0)
        rc = cp_loop_watch(m->loop, fd, EPOLLIN, cp_on_accept, m);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    m->listen_fd = fd;
    return 0;
}

/* ---- main ----------------------------------------------------------------------------- */

static void cp_on_signal(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    (void)loop, (void)events;
    struct cp_main *m = arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (m->stopping)
            continue;
        m->stopping = true;
        m->stop_deadline_ns = cp_now_ns() + (uint64_t)m->cfg.grace_s * 1000000000ull;
        cp_dispatch_drain(m->d);
        fprintf(stderr, "sigflow-control: %s: finishing %u runs (up to %u s)\n",
                strsignal((int)si.ssi_signo), cp_dispatch_runs(m->d), m->cfg.grace_s);
    }
}

static int cp_signals(struct cp_main *m)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    m->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (m->signal_fd < 0)
        return -errno;
    return cp_loop_watch(m->loop, m->signal_fd, EPOLLIN, cp_on_signal, m);
}

/* cp_ops_connected_fn: the channel is held. */
static bool cp_is_connected(void *arg)
{
    const struct cp_main *m = arg;
    return m->sock >= 0;
}

static void cp_usage(FILE *f)
{
    fprintf(f, "usage: sigflow-control --config FILE\n"
               "  Executes the activities of the sigflowd node whose directory the file's\n"
               "  [control] dir names (docs/control.md).\n");
}

static int cp_run(struct cp_main *m)
{
    unsigned idle = 0;
    for (;;) {
        uint64_t now = cp_now_ns();
        if (m->sock < 0 && now >= m->next_connect_ns && !m->stopping) {
            int rc = cp_connect(m);
            if (rc != 0)
                m->next_connect_ns = now + CP_RECONNECT_MS * 1000000ull;
        }
        int work = 0;
        if (m->sock >= 0) {
            work = cp_dispatch_round(m->d);
            if (work < 0) {
                cp_disconnect(m, "the daemon's ring is inconsistent");
                work = 0;
            }
        }
        if (m->stopping) {
            bool flushed = cp_dispatch_results_waiting(m->d) == 0 || m->sock < 0;
            if ((cp_dispatch_runs(m->d) == 0 && flushed) || now >= m->stop_deadline_ns)
                return 0;
        }
        idle = work > 0 ? 0 : idle + 1;
        int wait = idle > CP_IDLE_PASSES ? CP_IDLE_POLL_MS : work > 0 ? 0 : CP_POLL_MS;
        if (cp_loop_run_once(m->loop, wait) > 0)
            idle = 0;
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
                                          { "help", no_argument, NULL, 'h' },
                                          { NULL, 0, NULL, 0 } };
    const char *config = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'c') {
            config = optarg;
        } else if (c == 'h') {
            cp_usage(stdout);
            return 0;
        } else {
            cp_usage(stderr);
            return 64;
        }
    }
    if (!config || optind != argc) {
        cp_usage(stderr);
        return 64;
    }
    static struct cp_main m;
    char err[1024];
    if (cp_config_load(config, &m.cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "sigflow-control: %s\n", err);
        return 78; /* EX_CONFIG */
    }
    m.sock = m.listen_fd = m.signal_fd = -1;
    m.loop = cp_loop_new();
    if (!m.loop) {
        fprintf(stderr, "sigflow-control: event loop: %s\n", strerror(errno));
        return 1;
    }
    m.d = cp_dispatch_new(&m.cfg, m.loop, err, sizeof(err));
    if (!m.d) {
        fprintf(stderr, "sigflow-control: %s\n", err);
        return 78;
    }
    int rc = cp_signals(&m);
    if (rc == 0)
        rc = cp_listen(&m);
    if (rc != 0) {
        fprintf(stderr, "sigflow-control: %s/control.sock: %s\n", m.cfg.dir, strerror(-rc));
        return 1;
    }
    if (m.cfg.http_enabled) {
        m.ops = cp_ops_new(m.loop, &m.cfg, m.d, cp_is_connected, &m, err, sizeof(err));
        if (!m.ops) {
            fprintf(stderr, "sigflow-control: %s\n", err);
            return 1;
        }
    }
    char http[sizeof(m.cfg.http_addr) + 8] = "off";
    if (m.cfg.http_enabled)
        snprintf(http, sizeof(http), "%s:%u", m.cfg.http_addr, m.cfg.http_port);
    fprintf(stderr, "sigflow-control: ready: %u executors, node directory %s, http %s\n",
            cp_dispatch_executor_count(m.d), m.cfg.dir, http);
    rc = cp_run(&m);
    unsigned left = cp_dispatch_runs(m.d);
    if (left)
        fprintf(stderr,
                "sigflow-control: %u runs abandoned at stop: sigflowd dispatches them "
                "again to the next control process\n",
                left);
    cp_ops_free(m.ops);
    cp_disconnect(&m, "stopping");
    cp_dispatch_free(m.d);
    cp_loop_watch(m.loop, m.listen_fd, 0, NULL, NULL);
    close(m.listen_fd);
    unlink(m.ctl_path);
    cp_loop_free(m.loop);
    fprintf(stderr, "sigflow-control: stopped\n");
    return rc;
}
