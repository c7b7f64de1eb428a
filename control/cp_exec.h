/*
 * cp_exec.h — what sigflow-control's dispatcher asks of an executor (webhook, mqtt, exec,
 * log) and what it gives it. One attempt at a time per call; the dispatcher owns retries,
 * backoff, the start-to-close timeout (it calls abandon when the attempt's time is up) and
 * the concurrency bound; an executor only starts an attempt and reports how it ended.
 *
 * Contract:
 *  - init parses the executor's configuration section (cp_kv pairs, keys it does not know
 *    are an error: "file:line: unknown key K for executor kind X") and may open sockets
 *    (registered with x->loop). On error it returns -EINVAL with err filled and frees what
 *    it took.
 *  - start begins one attempt and returns 0; from then on the executor calls
 *    x->done(x, a, &outcome) exactly once, from a loop callback (never from inside start),
 *    unless the dispatcher calls abandon first. start returns -errno when it could not
 *    begin (the dispatcher then treats the attempt as failed-retryable with that reason).
 *  - abandon stops an attempt (timeout, cancel, shutdown): after it returns, done is not
 *    called for a; the executor releases what the attempt held (kills a process group,
 *    removes a transfer) without blocking.
 *  - fini releases everything; no attempt is in flight then (the dispatcher abandoned them).
 */
#ifndef CP_EXEC_H
#define CP_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "cp_loop.h"

#define CP_KV_MAX          32u /* keys in one executor section */
#define CP_KV_VALUE_MAX    1024u
#define CP_EXEC_NAME_MAX   32u
#define CP_BODY_MAX        4096u /* a task's JSON body */
#define CP_ARGS_JSON_MAX   2048u /* the arguments by name as a JSON object */
#define CP_CONCURRENCY_MAX 65536u
#define CP_ARG_TEXT_MAX    256u /* one argument's value as text */

struct cp_kv {
    char key[64];
    char value[CP_KV_VALUE_MAX];
    unsigned line; /* in the configuration file, for errors */
};

enum cp_outcome_kind {
    CP_OUTCOME_DONE = 1,  /* success; result if has_result */
    CP_OUTCOME_RETRY = 2, /* this attempt failed, another may succeed */
    CP_OUTCOME_FAIL = 3,  /* failed for good: no retry (e.g. HTTP 400, exit code 1) */
};

struct cp_outcome {
    enum cp_outcome_kind kind;
    bool has_result;
    int64_t result;
    char reason[CHAN_REASON_MAX]; /* NUL-terminated; "" when done */
};

/**
 * One attempt of one task. The dispatcher fills everything above exec_state before start
 * and keeps the struct alive and unchanged until done or abandon.
 */
struct cp_attempt {
    const struct chan_task *task; /* validated (chan_task_valid) */
    uint32_t attempt;             /* 1, 2, ... */
    char type[CHAN_TYPE_MAX + 1], id[CHAN_ID_MAX + 1], activity[CHAN_NAME_MAX + 1];
    char idempotency_key[CHAN_IDEM_KEY_MAX];
    char seq[16]; /* the run's sequence number, decimal */
    unsigned nargs;
    char arg_name[CHAN_PARAMS_MAX][CHAN_NAME_MAX];
    char arg_text[CHAN_PARAMS_MAX][CP_ARG_TEXT_MAX]; /* each value as text (templates, env) */
    char args_json[CP_ARGS_JSON_MAX];                /* {"name": value, ...} in parameter order */
    /* {"type":..,"id":..,"activity":..,"arguments":{..},"attempt":N,"idempotency_key":..,
     *  "seq":N} — the webhook's POST body, the MQTT payload, the log line */
    char body_json[CP_BODY_MAX];
    size_t body_len;
    uint64_t started_ns; /* cp_now_ns at start */
    void *exec_state;    /* the executor's, per attempt */
};

struct cp_executor;

typedef void cp_done_fn(struct cp_executor *x, struct cp_attempt *a, const struct cp_outcome *o);

struct cp_executor_ops {
    const char *kind; /* "webhook", "mqtt", "exec", "log" */
    int (*init)(struct cp_executor *x, const struct cp_kv *kv, unsigned n, char *err,
                size_t err_cap);
    int (*start)(struct cp_executor *x, struct cp_attempt *a);
    void (*abandon)(struct cp_executor *x, struct cp_attempt *a);
    void (*fini)(struct cp_executor *x);
};

struct cp_executor {
    const struct cp_executor_ops *ops;
    char name[CP_EXEC_NAME_MAX];
    struct cp_loop *loop;
    cp_done_fn *done;     /* the dispatcher's */
    void *done_arg;       /* the dispatcher's */
    unsigned concurrency; /* attempts in flight at most (the dispatcher enforces it) */
    unsigned inflight;    /* the dispatcher's count */
    void *state;          /* the executor's */
};

extern const struct cp_executor_ops cp_exec_log_ops;
extern const struct cp_executor_ops cp_exec_exec_ops;
extern const struct cp_executor_ops cp_exec_webhook_ops;
extern const struct cp_executor_ops cp_exec_mqtt_ops;

/**
 * Expand a template: {type} {id} {activity} {seq} {attempt} {key} (the idempotency key) and
 * {arg.NAME} (an argument's value as text) are replaced, {{ and }} are literal braces.
 * With url_escape, replacements are percent-encoded (RFC 3986 unreserved kept). Writes a
 * NUL-terminated string into out[0..cap). Returns its length, -ENOSPC when it does not fit,
 * -EINVAL for an unknown or unterminated placeholder.
 */
int cp_template_expand(const char *tmpl, const struct cp_attempt *a, bool url_escape, char *out,
                       size_t cap);

/** Check a template's placeholders without an attempt (configuration time): 0 or -EINVAL. */
int cp_template_check(const char *tmpl);

/**
 * Fill a's names, key, argument texts and JSON from its task (a->task, validated) and
 * a->attempt. Returns 0, or -EBADMSG when the task's arguments are not a CBOR array of
 * nargs scalars (sf_fields_decode), -ENOSPC when the JSON does not fit (cannot happen for
 * arguments within CHAN_ARGS_MAX; checked anyway).
 */
int cp_attempt_fill(struct cp_attempt *a);

/**
 * An executor's configuration error: err gets "line N: " (kv's line; nothing when kv is
 * NULL) and the formatted message, cut to err_cap. Returns -EINVAL, for `return
 * cp_kv_error(...)` in init.
 */
int cp_kv_error(char *err, size_t err_cap, const struct cp_kv *kv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Fill o: kind and reason (printf-style, truncated to fit). */
void cp_outcome_set(struct cp_outcome *o, enum cp_outcome_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
