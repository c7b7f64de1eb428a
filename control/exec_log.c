/*
 * exec_log.c — the "log" executor (cp_exec.h), for dry runs: every attempt appends one
 * JSON line to a file and succeeds.
 *
 * CONFIGURATION
 *   path = /var/log/sigflow/activities.jsonl   required; opened at init with
 *                                              O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, 0640
 *   result = N                                 optional int64: every attempt's result
 *
 * THE LINE: {"ts_ns":N,"task":BODY}\n — N the realtime clock in nanoseconds when the line is
 * written, BODY the attempt's JSON body (cp_attempt.body_json) as it is. One write(2) per
 * line on an O_APPEND file, so lines of several processes do not interleave.
 *
 * OUTCOME (from a zero-delay timer, never inside start): DONE (with the result when one is
 * configured) once the whole line is written; RETRY with the write's error otherwise (a
 * short write, e.g. a full disk, may leave part of a line behind).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cp_exec.h"

#define EXEC_LOG_FILE_MODE  0640
#define EXEC_LOG_LINE_EXTRA 48u /* {"ts_ns":N,"task":} and the newline around a body */
#define EXEC_LOG_LINE_MAX   (CP_BODY_MAX + EXEC_LOG_LINE_EXTRA)

/** The executor's file, result and how many attempts it holds. */
struct exec_log_state {
    int fd;
    bool has_result;
    int64_t result;
    unsigned pending; /* attempts started and neither done nor abandoned */
    char path[CP_KV_VALUE_MAX];
};

/** One attempt: its timer until the line is written. */
struct exec_log_attempt {
    struct cp_timer timer;
    struct cp_executor *x;
    struct cp_attempt *a;
};

/* One key of the section (path, result). 0 or -EINVAL. */
static int exec_log_parse_key(struct exec_log_state *s, const struct cp_kv *kv, char *err,
                              size_t cap)
{
    if (strcmp(kv->key, "path") == 0) {
        if (s->path[0])
            return cp_kv_error(err, cap, kv, "path given twice");
        if (kv->value[0] == '\0')
            return cp_kv_error(err, cap, kv, "path is empty");
        snprintf(s->path, sizeof(s->path), "%s", kv->value);
        return 0;
    }
    if (strcmp(kv->key, "result") == 0) {
        char *end = NULL;
        if (s->has_result)
            return cp_kv_error(err, cap, kv, "result given twice");
        errno = 0;
        long long v = strtoll(kv->value, &end, 10);
        if (kv->value[0] == '\0' || *end != '\0' || errno != 0)
            return cp_kv_error(err, cap, kv, "result must be an integer (int64)");
        s->has_result = true;
        s->result = (int64_t)v;
        return 0;
    }
    return cp_kv_error(err, cap, kv, "unknown key %s for a log executor", kv->key);
}

/*
 * Parse the section and open the file. Returns 0 with x->state set, or -EINVAL with err
 * filled (a bad key or value, no path, the file cannot be opened) and nothing kept.
 */
static int exec_log_init(struct cp_executor *x, const struct cp_kv *kv, unsigned n, char *err,
                         size_t err_cap)
{
    struct exec_log_state *s = calloc(1, sizeof(*s));
    int rc = 0;

    if (!s) {
        snprintf(err, err_cap, "log executor: out of memory");
        return -EINVAL;
    }
    for (unsigned i = 0; i < n && rc == 0; i++)
        rc = exec_log_parse_key(s, &kv[i], err, err_cap);
    if (rc < 0)
        goto out_free;
    if (!s->path[0]) {
        snprintf(err, err_cap, "a log executor needs path");
        rc = -EINVAL;
        goto out_free;
    }
    s->fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, EXEC_LOG_FILE_MODE);
    if (s->fd < 0) {
        snprintf(err, err_cap, "log executor: %s: %s", s->path, strerror(errno));
        rc = -EINVAL;
        goto out_free;
    }
    x->state = s;
    return 0;
out_free:
    free(s);
    return rc;
}

/* Append a's line. Returns 0, -EMSGSIZE for a body past CP_BODY_MAX, or -errno of write
 * (-EIO for a short write). */
static int exec_log_write(const struct exec_log_state *s, const struct cp_attempt *a)
{
    char line[EXEC_LOG_LINE_MAX];
    if (a->body_len >= CP_BODY_MAX)
        return -EMSGSIZE; /* cp_attempt_fill never makes one */
    int n = snprintf(line, sizeof(line), "{\"ts_ns\":%" PRIu64 ",\"task\":%.*s}\n",
                     cp_realtime_ns(), (int)a->body_len, a->body_json);
    assert(n > 0 && (size_t)n < sizeof(line)); /* EXEC_LOG_LINE_EXTRA covers the rest */
    ssize_t w = write(s->fd, line, (size_t)n);
    if (w < 0)
        return -errno;
    return w == n ? 0 : -EIO;
}

/* The zero-delay timer: write the line, report. */
static void exec_log_on_timer(struct cp_loop *loop, void *arg)
{
    struct exec_log_attempt *la = arg;
    struct cp_executor *x = la->x;
    struct cp_attempt *a = la->a;
    struct exec_log_state *s = x->state;
    struct cp_outcome o;
    (void)loop;
    assert(a->exec_state == la && s->pending > 0);
    int rc = exec_log_write(s, a);
    if (rc == -EIO)
        cp_outcome_set(&o, CP_OUTCOME_RETRY, "write %s: short write", s->path);
    else if (rc < 0)
        cp_outcome_set(&o, CP_OUTCOME_RETRY, "write %s: %s", s->path, strerror(-rc));
    else {
        cp_outcome_set(&o, CP_OUTCOME_DONE, "%s", "");
        o.has_result = s->has_result;
        o.result = s->result;
    }
    s->pending--;
    a->exec_state = NULL;
    free(la);
    x->done(x, a, &o);
}

/* Schedule a's line. Returns 0, -ENOMEM, or -ENOSPC (no timer left); then nothing is held. */
static int exec_log_start(struct cp_executor *x, struct cp_attempt *a)
{
    struct exec_log_state *s = x->state;
    assert(s && a->exec_state == NULL);
    struct exec_log_attempt *la = calloc(1, sizeof(*la));
    if (!la)
        return -ENOMEM;
    la->x = x;
    la->a = a;
    int rc = cp_loop_timer_arm(x->loop, &la->timer, cp_now_ns(), exec_log_on_timer, la);
    if (rc < 0) {
        free(la);
        return rc;
    }
    a->exec_state = la;
    s->pending++;
    return 0;
}

/* Forget a before its line is written (nothing is written for it). Can't fail. */
static void exec_log_abandon(struct cp_executor *x, struct cp_attempt *a)
{
    struct exec_log_state *s = x->state;
    struct exec_log_attempt *la = a->exec_state;
    if (!la)
        return;
    assert(la->a == a && s->pending > 0);
    cp_loop_timer_cancel(x->loop, &la->timer);
    a->exec_state = NULL;
    s->pending--;
    free(la);
}

/* Close the file and free the state; every attempt was done or abandoned before. */
static void exec_log_fini(struct cp_executor *x)
{
    struct exec_log_state *s = x->state;
    if (!s)
        return;
    assert(s->pending == 0);
    close(s->fd);
    free(s);
    x->state = NULL;
}

const struct cp_executor_ops cp_exec_log_ops = {
    .kind = "log",
    .init = exec_log_init,
    .start = exec_log_start,
    .abandon = exec_log_abandon,
    .fini = exec_log_fini,
};
