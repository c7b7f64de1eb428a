/*
 * it_util.h — helpers of the integration tests: shell commands, a node started with
 * `./sigflow node start` in a namespace of the test's own, and the node's control socket.
 * Header-only (static functions): each test is one executable.
 */
#ifndef IT_UTIL_H
#define IT_UTIL_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#define IT_REPLY_MAX (4u << 20)

/** Run a shell command; returns its exit status (128 when it did not exit). */
static inline int it_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int it_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/** One request on the control socket DIR/sigflowd.sock; the reply, or NULL. Takes req. */
static inline json_t *it_ctl_at(const char *dir, json_t *req)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sigflowd.sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        json_decref(req);
        return NULL;
    }
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    size_t len = strlen(text);
    bool sent =
        send(fd, text, len, MSG_NOSIGNAL) == (ssize_t)len && send(fd, "\n", 1, MSG_NOSIGNAL) == 1;
    free(text);
    char *buf = malloc(IT_REPLY_MAX);
    size_t have = 0;
    while (sent && buf && have < IT_REPLY_MAX - 1) {
        ssize_t r = recv(fd, buf + have, IT_REPLY_MAX - 1 - have, 0);
        if (r <= 0)
            break;
        have += (size_t)r;
        if (buf[have - 1] == '\n')
            break;
    }
    close(fd);
    json_t *out = NULL;
    if (buf && have) {
        buf[have] = '\0';
        json_error_t err;
        out = json_loads(buf, JSON_DISABLE_EOF_CHECK, &err);
    }
    free(buf);
    return out;
}

/**
 * Page through every workflow of `type` with `list` (1000 a page) and call fn for each.
 * Returns how many there were, or -1 when a page could not be had.
 */
static inline long it_list_each(const char *dir, const char *type,
                                void (*fn)(void *ctx, json_t *workflow), void *ctx)
{
    char cursor[64] = "";
    long total = 0;
    for (;;) {
        json_t *req = json_pack("{s:s, s:i, s:s}", "cmd", "list", "limit", 1000, "type", type);
        if (cursor[0])
            json_object_set_new(req, "after", json_string(cursor));
        json_t *page = it_ctl_at(dir, req);
        if (!page || !json_is_true(json_object_get(page, "ok"))) {
            json_decref(page);
            return -1;
        }
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(page, "workflows"), i, w)
        {
            fn(ctx, w);
            total++;
        }
        json_t *next = json_object_get(page, "next");
        if (next)
            snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        json_decref(page);
        if (!next)
            return total;
    }
}

/** `./sigflow node start` from the build under test; extra options appended. Without the
 *  control plane (--no-control): these tests drive activities by hand (activity complete),
 *  and several nodes run at once. tests/integration/control starts its own. */
static inline int it_node_start(const char *top, const char *build, const char *ns, const char *dir,
                                const char *extra)
{
    return it_sh("SIGFLOW_NO_BUILD=1 SIGFLOW_BUILD_DIR=%s %s/sigflow node start --no-control "
                 "--netns %s --dir %s %s >/dev/null 2>&1",
                 build, top, ns, dir, extra ? extra : "");
}

static inline void it_node_stop(const char *top, const char *build, const char *dir)
{
    it_sh("SIGFLOW_NO_BUILD=1 SIGFLOW_BUILD_DIR=%s %s/sigflow node stop --dir %s >/dev/null 2>&1",
          build, top, dir);
}

/** The node's pid from DIR/sigflowd.pid, or -1. */
static inline pid_t it_node_pid(const char *dir)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/sigflowd.pid", dir);
    FILE *f = fopen(path, "r");
    int pid = -1;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = -1;
        fclose(f);
    }
    return pid;
}

/** Wait until process pid is gone (not our child: polls kill 0). True when it is. */
static inline bool it_wait_gone(pid_t pid, int seconds)
{
    for (int i = 0; i < seconds * 20; i++) {
        if (kill(pid, 0) != 0 && errno == ESRCH)
            return true;
        usleep(50000);
    }
    return false;
}

/** Is our child pid still running? */
static inline bool it_child_running(pid_t pid)
{
    int st;
    return pid > 0 && waitpid(pid, &st, WNOHANG) == 0;
}

/**
 * Fork a fleet sender in namespace ns: `--fleet fleet --rounds rounds --rate rate` with ACKs
 * and resends until acknowledged, its summary JSON into out. Returns the child's pid.
 */
static inline pid_t it_fleet_start(const char *ns, const char *build, unsigned fleet,
                                   unsigned rounds, unsigned rate, const char *out)
{
    pid_t pid = fork();
    if (pid == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd),
                 "exec ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 "
                 "--fleet %u --rounds %u --batch 8 --rate %u --ack --timeout-ms 300 "
                 "--retries 100000 --window 128 --sender-id 7 --summary-json > %s",
                 ns, build, fleet, rounds, rate, out);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

#endif /* IT_UTIL_H */
