/*
 * test_exec_webhook — the webhook executor through a real cp_loop against a real HTTP(S)
 * server in this process (libmicrohttpd, 127.0.0.1, ephemeral port): the request as sent,
 * outcomes by status, transport errors, abandon, many transfers at once, TLS verification.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "cp_exec.h"
#include "sf_proto.h"

#define SRV_URL_MAX      512u
#define SRV_BIG_BYTES    100000u /* the /big response: over the executor's 64 KiB cap */
#define SRV_SLOW_WAIT_MS 5000u   /* /slow answers after this unless released */
#define SRV_CONNS_MAX    1000u
#define RUN_TIMEOUT_MS   10000u /* a test's wait for its outcomes */
#define CONCURRENT_N     200u
#define TLS_DIR_TEMPLATE "/tmp/sigflow-webhook-tls-XXXXXX"
#define TLS_PEM_MAX      16384u

/* ---- the server ------------------------------------------------------------------------ */

struct srv_req {
    char body[CP_BODY_MAX + 1];
    size_t len;
    bool over;
};

struct srv {
    struct MHD_Daemon *d;
    uint16_t port;
    pthread_mutex_t mu; /* guards last_* */
    char last_url[SRV_URL_MAX], last_method[16], last_idem[64], last_ctype[64], last_extra[64];
    char last_body[CP_BODY_MAX + 1];
    size_t last_body_len;
    atomic_uint requests, slow_active, slow_done;
    atomic_bool release;
};

static struct srv g_srv;
static char g_big[SRV_BIG_BYTES];

static size_t srv_raw_url(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s); /* the path as sent: no percent-decoding */
}

static void srv_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static enum MHD_Result srv_reply(struct MHD_Connection *c, unsigned status, const char *body,
                                 size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (status >= 300 && status <= 399)
        MHD_add_response_header(r, "Location", "/result");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static void srv_record(struct srv *s, struct MHD_Connection *c, const char *url, const char *method,
                       const struct srv_req *q)
{
    const char *idem = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *extra = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Sigflow-Test");
    pthread_mutex_lock(&s->mu);
    snprintf(s->last_url, sizeof(s->last_url), "%s", url);
    snprintf(s->last_method, sizeof(s->last_method), "%s", method);
    snprintf(s->last_idem, sizeof(s->last_idem), "%s", idem ? idem : "");
    snprintf(s->last_ctype, sizeof(s->last_ctype), "%s", ctype ? ctype : "");
    snprintf(s->last_extra, sizeof(s->last_extra), "%s", extra ? extra : "");
    memcpy(s->last_body, q->body, q->len);
    s->last_body[q->len] = '\0';
    s->last_body_len = q->over ? SIZE_MAX : q->len;
    pthread_mutex_unlock(&s->mu);
}

/* Routes: /echo/... {"ok":true}; /result {"result":42}; /status/N; /seq/N {"result":N};
 * /slow (answers when released); /big (SRV_BIG_BYTES). */
static enum MHD_Result srv_answer(struct srv *s, struct MHD_Connection *c, const char *url)
{
    char buf[128];
    unsigned n = 0;
    if (strncmp(url, "/echo/", 6) == 0)
        return srv_reply(c, 200, "{\"ok\":true}", 11);
    if (strcmp(url, "/result") == 0)
        return srv_reply(c, 200, "{\"result\": 42, \"note\": \"x\"}", 27);
    if (sscanf(url, "/seq/%u", &n) == 1) {
        int len = snprintf(buf, sizeof(buf), "{\"result\":%u}", n);
        return srv_reply(c, 200, buf, (size_t)len);
    }
    if (sscanf(url, "/status/%u", &n) == 1) {
        static const char body[] = "{\"error\": \"bad\tfield\"}\r\n\x01\x1b[2J\xc3\xa9 end";
        return srv_reply(c, n, body, sizeof(body) - 1);
    }
    if (strcmp(url, "/big") == 0)
        return srv_reply(c, 200, g_big, sizeof(g_big));
    if (strcmp(url, "/slow") == 0) {
        atomic_fetch_add(&s->slow_active, 1);
        for (unsigned ms = 0; ms < SRV_SLOW_WAIT_MS && !atomic_load(&s->release); ms += 5)
            usleep(5000);
        atomic_fetch_add(&s->slow_done, 1);
        return srv_reply(c, 200, "{\"result\":1}", 12);
    }
    return srv_reply(c, 404, "no such route", 13);
}

static enum MHD_Result srv_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    struct srv *s = cls;
    struct srv_req *q = *con_cls;
    (void)version;
    if (!q) {
        q = calloc(1, sizeof(*q));
        *con_cls = q;
        return q ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (n > CP_BODY_MAX - q->len) {
            q->over = true;
            n = CP_BODY_MAX - q->len;
        }
        memcpy(q->body + q->len, upload_data, n);
        q->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&s->requests, 1);
    srv_record(s, c, url, method, q);
    return srv_answer(s, c, url);
}

/* Start g_srv on 127.0.0.1, an ephemeral port; with key and cert (PEM), HTTPS. */
static void srv_start(const char *key_pem, const char *cert_pem)
{
    struct srv *s = &g_srv;
    memset(g_big, 'x', sizeof(g_big));
    atomic_store(&s->requests, 0);
    atomic_store(&s->slow_active, 0);
    atomic_store(&s->slow_done, 0);
    atomic_store(&s->release, false);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = 0 };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | (key_pem ? MHD_USE_TLS : 0);
    if (key_pem)
        s->d = MHD_start_daemon(
            flags, 0, NULL, NULL, srv_handler, s, MHD_OPTION_SOCK_ADDR, &sin,
            MHD_OPTION_UNESCAPE_CALLBACK, srv_raw_url, NULL, MHD_OPTION_NOTIFY_COMPLETED,
            srv_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, SRV_CONNS_MAX,
            MHD_OPTION_HTTPS_MEM_KEY, key_pem, MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_END);
    else
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, srv_handler, s, MHD_OPTION_SOCK_ADDR, &sin,
                                MHD_OPTION_UNESCAPE_CALLBACK, srv_raw_url, NULL,
                                MHD_OPTION_NOTIFY_COMPLETED, srv_completed, NULL,
                                MHD_OPTION_CONNECTION_LIMIT, SRV_CONNS_MAX, MHD_OPTION_END);
    assert_non_null(s->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    s->port = info->port;
    assert_true(s->port != 0);
}

static void srv_stop(void)
{
    atomic_store(&g_srv.release, true);
    MHD_stop_daemon(g_srv.d);
    g_srv.d = NULL;
}

/* ---- the executor's side ----------------------------------------------------------------- */

struct test_attempt {
    struct chan_task task;
    struct cp_attempt a;
    struct cp_outcome o;
    unsigned done_calls;
};

struct rig {
    struct cp_loop *loop;
    struct cp_executor x;
    unsigned done_calls;
    bool in_start;
};

static void on_done(struct cp_executor *x, struct cp_attempt *a, const struct cp_outcome *o)
{
    struct rig *r = x->done_arg;
    struct test_attempt *t = (struct test_attempt *)((char *)a - offsetof(struct test_attempt, a));
    assert_false(r->in_start); /* never from inside start */
    assert_null(a->exec_state);
    t->o = *o;
    t->done_calls++;
    r->done_calls++;
}

/* An attempt of order/ID's activity `notify` with one argument region="eu west". */
static void attempt_make(struct test_attempt *t, const char *id, uint32_t seq)
{
    memset(t, 0, sizeof(*t));
    struct chan_task *k = &t->task;
    k->kind = CHAN_TASK_RUN;
    k->type_len = 5;
    memcpy(k->type, "order", 5);
    k->id_len = (uint8_t)strlen(id);
    memcpy(k->id, id, k->id_len);
    k->activity_len = 6;
    memcpy(k->activity, "notify", 6);
    k->seq = seq;
    k->attempt = 1;
    k->key_hi = 0x0123456789abcdefull;
    k->key_lo = 0xfedcba9876543210ull ^ seq;
    k->nargs = 1;
    snprintf(k->param[0], sizeof(k->param[0]), "region");
    struct sf_value v = { .type = SF_VAL_TEXT, .text = { .ptr = "eu west", .len = 7 } };
    int len = sf_fields_encode(k->args, sizeof(k->args), &v, 1);
    assert_true(len > 0);
    k->args_len = (uint16_t)len;
    assert_true(chan_task_valid(k));
    t->a.task = k;
    t->a.attempt = 1;
    assert_int_equal(cp_attempt_fill(&t->a), 0);
}

static void kv_set(struct cp_kv *kv, const char *key, const char *value, unsigned line)
{
    memset(kv, 0, sizeof(*kv));
    snprintf(kv->key, sizeof(kv->key), "%s", key);
    snprintf(kv->value, sizeof(kv->value), "%s", value);
    kv->line = line;
}

/* Init r's executor with kv[0..n); returns init's value, err filled. */
static int rig_init(struct rig *r, const struct cp_kv *kv, unsigned n, char *err, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->loop = cp_loop_new();
    assert_non_null(r->loop);
    r->x.ops = &cp_exec_webhook_ops;
    snprintf(r->x.name, sizeof(r->x.name), "hooks");
    r->x.loop = r->loop;
    r->x.done = on_done;
    r->x.done_arg = r;
    r->x.concurrency = CONCURRENT_N;
    err[0] = '\0';
    return r->x.ops->init(&r->x, kv, n, err, cap);
}

/* Init with url (and optional ca_file) or fail the test. */
static void rig_up(struct rig *r, const char *url, const char *ca_file)
{
    struct cp_kv kv[3];
    unsigned n = 0;
    char err[256];
    kv_set(&kv[n++], "url", url, 1);
    kv_set(&kv[n++], "header", "X-Sigflow-Test: yes", 2);
    if (ca_file)
        kv_set(&kv[n++], "ca_file", ca_file, 3);
    int rc = rig_init(r, kv, n, err, sizeof(err));
    if (rc != 0)
        fail_msg("init: %s", err);
}

static void rig_down(struct rig *r)
{
    r->x.ops->fini(&r->x);
    assert_null(r->x.state);
    cp_loop_free(r->loop);
}

static void rig_start(struct rig *r, struct test_attempt *t)
{
    r->in_start = true;
    int rc = r->x.ops->start(&r->x, &t->a);
    r->in_start = false;
    assert_int_equal(rc, 0);
}

/* Run the loop until `want` done calls, or fail after RUN_TIMEOUT_MS. */
static void rig_run_until(struct rig *r, unsigned want)
{
    uint64_t end = cp_now_ns() + RUN_TIMEOUT_MS * 1000000ull;
    while (r->done_calls < want) {
        assert_true(cp_now_ns() < end);
        assert_true(cp_loop_run_once(r->loop, 50) >= 0);
    }
}

/* Run the loop for ms milliseconds. */
static void rig_run_for(struct rig *r, unsigned ms)
{
    uint64_t end = cp_now_ns() + ms * 1000000ull;
    while (cp_now_ns() < end)
        assert_true(cp_loop_run_once(r->loop, 10) >= 0);
}

static char *url_of(const char *scheme, const char *path)
{
    static char url[SRV_URL_MAX];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%u%s", scheme, g_srv.port, path);
    return url;
}

/* One attempt against path; returns its outcome. */
static struct cp_outcome one_attempt(const char *path)
{
    struct rig r;
    struct test_attempt t;
    rig_up(&r, url_of("http", path), NULL);
    attempt_make(&t, "order-1", 3);
    rig_start(&r, &t);
    rig_run_until(&r, 1);
    rig_run_for(&r, 20);
    assert_int_equal(t.done_calls, 1);
    rig_down(&r);
    return t.o;
}

/* ---- the tests --------------------------------------------------------------------------- */

static int srv_setup(void **state)
{
    (void)state;
    pthread_mutex_init(&g_srv.mu, NULL);
    srv_start(NULL, NULL);
    return 0;
}

static int srv_teardown(void **state)
{
    (void)state;
    srv_stop();
    pthread_mutex_destroy(&g_srv.mu);
    return 0;
}

static void test_config_errors(void **state)
{
    (void)state;
    static const struct {
        const char *key, *value, *err;
    } cases[] = {
        { "insecure", "1", "line 9: unknown key insecure for a webhook executor" },
        { "url", "ftp://127.0.0.1/x", "line 9: url must start with http:// or https://" },
        { "url", "http://h/{nope}", "line 9: url: unknown placeholder" },
        { "url", "http://h/{id", "line 9: url: unknown placeholder" },
        { "header", "X-A: b\r\nX-Injected: c", "line 9: header contains CR or LF" },
        { "header", "X-A: b\nX-Injected: c", "line 9: header contains CR or LF" },
        { "header", "no colon", "line 9: header is not \"Name: value\"" },
        { "header", "X-Empty:  ", "line 9: header has an empty value" },
        { "header", "idempotency-key: x", "line 9: header names one the executor sets" },
        { "connect_timeout_ms", "0", "line 9: connect_timeout_ms must be 1.." },
        { "connect_timeout_ms", "12ms", "line 9: connect_timeout_ms must be 1.." },
        { "connect_timeout_ms", "-5", "line 9: connect_timeout_ms must be 1.." },
        { "ca_file", "/nonexistent/ca.pem", "line 9: ca_file /nonexistent/ca.pem: No such file" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cp_kv kv[2];
        struct rig r;
        char err[256];
        kv_set(&kv[0], cases[i].key, cases[i].value, 9);
        kv_set(&kv[1], "url", "http://127.0.0.1/{id}", 10);
        /* the url case stands alone (a second url would be "given twice") */
        unsigned n = strcmp(cases[i].key, "url") == 0 ? 1 : 2;
        assert_int_equal(rig_init(&r, kv, n, err, sizeof(err)), -EINVAL);
        if (strncmp(err, cases[i].err, strlen(cases[i].err)) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].err);
        assert_null(r.x.state);
        cp_loop_free(r.loop);
    }
    struct cp_kv kv[2];
    struct rig r;
    char err[256];
    kv_set(&kv[0], "connect_timeout_ms", "250", 4);
    assert_int_equal(rig_init(&r, kv, 1, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "a webhook executor needs a url");
    cp_loop_free(r.loop);
    kv_set(&kv[1], "url", "https://example.invalid/{{literal}}/{arg.x}", 5);
    assert_int_equal(rig_init(&r, kv, 2, err, sizeof(err)), 0);
    rig_down(&r);
}

/* The body, the key, the content type and the escaped URL arrive exactly as built. */
static void test_request_exact(void **state)
{
    (void)state;
    struct rig r;
    struct test_attempt t;
    rig_up(&r, url_of("http", "/echo/{id}/{arg.region}/{seq}/{key}"), NULL);
    attempt_make(&t, "a b/c?d&e%f#g\xc3\xa9", 7);
    setenv("http_proxy", "http://127.0.0.1:1", 1); /* ignored: the configuration decides */
    rig_start(&r, &t);
    assert_int_equal(r.done_calls, 0);
    rig_run_until(&r, 1);
    unsetenv("http_proxy");
    assert_int_equal(t.o.kind, CP_OUTCOME_DONE);
    assert_false(t.o.has_result);
    assert_string_equal(t.o.reason, "");
    char want_url[SRV_URL_MAX];
    snprintf(want_url, sizeof(want_url),
             "/echo/a%%20b%%2Fc%%3Fd%%26e%%25f%%23g%%C3%%A9/eu%%20west/7/%s", t.a.idempotency_key);
    struct srv seen; /* copied out: a failed assertion must not leave the lock held */
    pthread_mutex_lock(&g_srv.mu);
    memcpy(seen.last_method, g_srv.last_method, sizeof(seen.last_method));
    memcpy(seen.last_url, g_srv.last_url, sizeof(seen.last_url));
    memcpy(seen.last_body, g_srv.last_body, sizeof(seen.last_body));
    seen.last_body_len = g_srv.last_body_len;
    memcpy(seen.last_idem, g_srv.last_idem, sizeof(seen.last_idem));
    memcpy(seen.last_ctype, g_srv.last_ctype, sizeof(seen.last_ctype));
    memcpy(seen.last_extra, g_srv.last_extra, sizeof(seen.last_extra));
    pthread_mutex_unlock(&g_srv.mu);
    assert_string_equal(seen.last_method, "POST");
    assert_string_equal(seen.last_url, want_url);
    assert_int_equal(seen.last_body_len, t.a.body_len);
    assert_memory_equal(seen.last_body, t.a.body_json, t.a.body_len);
    assert_string_equal(seen.last_idem, t.a.idempotency_key);
    assert_string_equal(seen.last_ctype, "application/json");
    assert_string_equal(seen.last_extra, "yes");
    rig_down(&r);
}

static void test_result_42(void **state)
{
    (void)state;
    struct cp_outcome o = one_attempt("/result");
    assert_int_equal(o.kind, CP_OUTCOME_DONE);
    assert_true(o.has_result);
    assert_int_equal(o.result, 42);
}

static void test_status_outcomes(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        enum cp_outcome_kind kind;
        const char *reason;
    } cases[] = {
        { "/status/500", CP_OUTCOME_RETRY, "HTTP 500" },
        { "/status/503", CP_OUTCOME_RETRY, "HTTP 503" },
        { "/status/429", CP_OUTCOME_RETRY, "HTTP 429" },
        { "/status/408", CP_OUTCOME_RETRY, "HTTP 408" },
        { "/status/400", CP_OUTCOME_FAIL, "HTTP 400" },
        { "/status/404", CP_OUTCOME_FAIL, "HTTP 404" },
        { "/status/302", CP_OUTCOME_RETRY, "HTTP 302 (redirects are not followed)" },
        { "/status/204", CP_OUTCOME_DONE, "" },
        { "/status/200", CP_OUTCOME_DONE, "" }, /* a body that is not JSON: no result */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned before = atomic_load(&g_srv.requests);
        struct cp_outcome o = one_attempt(cases[i].path);
        assert_int_equal(o.kind, cases[i].kind);
        if (strncmp(o.reason, cases[i].reason, strlen(cases[i].reason)) != 0)
            fail_msg("%s: reason \"%s\"", cases[i].path, o.reason);
        assert_int_equal(atomic_load(&g_srv.requests), before + 1); /* no redirect, no retry */
        assert_false(o.has_result);
        for (const char *p = o.reason; *p; p++) /* sanitized: printable ASCII only */
            assert_true(*p >= 0x20 && *p < 0x7f);
    }
    struct cp_outcome o = one_attempt("/status/400");
    assert_string_equal(o.reason, "HTTP 400: {\"error\": \"bad field\"} [2J?? end");
}

static void test_connection_refused(void **state)
{
    (void)state;
    /* a port nobody listens on: bound, then closed */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = 0 };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sin);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    close(fd);
    char url[SRV_URL_MAX];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/x", ntohs(sin.sin_port));
    struct rig r;
    struct test_attempt t;
    rig_up(&r, url, NULL);
    attempt_make(&t, "order-1", 1);
    rig_start(&r, &t);
    rig_run_until(&r, 1);
    assert_int_equal(t.o.kind, CP_OUTCOME_RETRY);
    assert_string_equal(t.o.reason, "connect: Connection refused");
    rig_down(&r);
}

/* A URL the template cannot build fails for good, from the loop and not from start. */
static void test_url_unknown_argument(void **state)
{
    (void)state;
    struct rig r;
    struct test_attempt t;
    rig_up(&r, url_of("http", "/echo/{arg.missing}"), NULL);
    attempt_make(&t, "order-1", 1);
    unsigned before = atomic_load(&g_srv.requests);
    rig_start(&r, &t);
    assert_int_equal(r.done_calls, 0);
    rig_run_until(&r, 1);
    assert_int_equal(t.o.kind, CP_OUTCOME_FAIL);
    assert_string_equal(t.o.reason, "url: a placeholder names no argument of notify");
    assert_int_equal(atomic_load(&g_srv.requests), before);
    rig_down(&r);
}

/* The dispatcher's start-to-close timeout: abandon mid-request, no done afterwards. */
static void test_abandon_slow(void **state)
{
    (void)state;
    struct rig r;
    struct test_attempt t[2];
    rig_up(&r, url_of("http", "/slow"), NULL);
    attempt_make(&t[0], "order-1", 1);
    attempt_make(&t[1], "order-2", 2);
    atomic_store(&g_srv.release, false);
    unsigned active = atomic_load(&g_srv.slow_active), done = atomic_load(&g_srv.slow_done);
    rig_start(&r, &t[0]);
    rig_start(&r, &t[1]);
    uint64_t end = cp_now_ns() + RUN_TIMEOUT_MS * 1000000ull;
    while (atomic_load(&g_srv.slow_active) < active + 2) {
        assert_true(cp_now_ns() < end);
        cp_loop_run_once(r.loop, 10);
    }
    r.x.ops->abandon(&r.x, &t[0].a);
    assert_null(t[0].a.exec_state);
    atomic_store(&g_srv.release, true);
    rig_run_until(&r, 1); /* the other one still completes */
    assert_int_equal(t[1].done_calls, 1);
    assert_int_equal(t[1].o.kind, CP_OUTCOME_DONE);
    while (atomic_load(&g_srv.slow_done) < done + 2) {
        assert_true(cp_now_ns() < end);
        cp_loop_run_once(r.loop, 10);
    }
    rig_run_for(&r, 100);
    assert_int_equal(t[0].done_calls, 0);
    assert_int_equal(r.done_calls, 1);
    rig_down(&r);
}

/* fini with an attempt still in flight (the contract says there is none) frees it. */
static void test_fini_in_flight(void **state)
{
    (void)state;
    struct rig r;
    struct test_attempt t;
    rig_up(&r, url_of("http", "/slow"), NULL);
    attempt_make(&t, "order-1", 1);
    atomic_store(&g_srv.release, false);
    rig_start(&r, &t);
    rig_run_for(&r, 50);
    rig_down(&r);
    assert_int_equal(t.done_calls, 0);
    atomic_store(&g_srv.release, true);
}

static void test_concurrent(void **state)
{
    (void)state;
    struct rig r;
    struct test_attempt *t = calloc(CONCURRENT_N, sizeof(*t));
    assert_non_null(t);
    rig_up(&r, url_of("http", "/seq/{seq}"), NULL);
    for (unsigned i = 0; i < CONCURRENT_N; i++) {
        char id[32];
        snprintf(id, sizeof(id), "order-%u", i);
        attempt_make(&t[i], id, 1000 + i);
        rig_start(&r, &t[i]);
    }
    rig_run_until(&r, CONCURRENT_N);
    for (unsigned i = 0; i < CONCURRENT_N; i++) {
        assert_int_equal(t[i].done_calls, 1);
        assert_int_equal(t[i].o.kind, CP_OUTCOME_DONE);
        assert_true(t[i].o.has_result);
        assert_int_equal(t[i].o.result, 1000 + i);
    }
    /* the connections are reused: a second round on the same executor */
    r.done_calls = 0;
    for (unsigned i = 0; i < CONCURRENT_N; i++) {
        t[i].done_calls = 0;
        rig_start(&r, &t[i]);
    }
    rig_run_until(&r, CONCURRENT_N);
    rig_down(&r);
    free(t);
}

static void test_oversized_response(void **state)
{
    (void)state;
    struct cp_outcome o = one_attempt("/big");
    assert_int_equal(o.kind, CP_OUTCOME_RETRY);
    assert_string_equal(o.reason, "response body over 65536 bytes");
}

/* ---- TLS: a throwaway CA and server certificate made with openssl ----------------------- */

static int run_quiet(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_quiet(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static bool read_pem(const char *dir, const char *name, char *out, size_t cap)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = '\0';
    return n > 0 && n < cap - 1;
}

static void test_tls(void **state)
{
    (void)state;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        skip();
    if (run_quiet("openssl version >/dev/null 2>&1") != 0)
        skip();
    char dir[] = TLS_DIR_TEMPLATE;
    assert_non_null(mkdtemp(dir));
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    int rc = run_quiet("cd %s && exec >/dev/null 2>&1 && "
                       "openssl req -x509 %s -keyout ca.key -out ca.pem -days 1 "
                       "-subj /CN=sigflow-test-ca && "
                       "openssl req %s -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 && "
                       "printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf && "
                       "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
                       "-CAcreateserial -out srv.pem -days 1 -extfile ext.cnf",
                       dir, ec, ec);
    assert_int_equal(rc, 0);
    static char key[TLS_PEM_MAX], cert[TLS_PEM_MAX];
    assert_true(read_pem(dir, "srv.key", key, sizeof(key)));
    assert_true(read_pem(dir, "srv.pem", cert, sizeof(cert)));
    char ca[256];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);

    srv_stop(); /* the plain server makes way for an HTTPS one */
    srv_start(key, cert);
    struct rig r;
    struct test_attempt t;
    rig_up(&r, url_of("https", "/result"), ca);
    attempt_make(&t, "order-1", 1);
    rig_start(&r, &t);
    rig_run_until(&r, 1);
    if (t.o.kind != CP_OUTCOME_DONE)
        fail_msg("with ca_file: %d %s", t.o.kind, t.o.reason);
    assert_true(t.o.has_result);
    assert_int_equal(t.o.result, 42);
    rig_down(&r);

    rig_up(&r, url_of("https", "/result"), NULL); /* the system's CAs do not know ours */
    attempt_make(&t, "order-1", 1);
    rig_start(&r, &t);
    rig_run_until(&r, 1);
    assert_int_equal(t.o.kind, CP_OUTCOME_RETRY);
    if (strncmp(t.o.reason, "TLS: ", 5) != 0 || !strstr(t.o.reason, "certificate"))
        fail_msg("without ca_file: %s", t.o.reason);
    rig_down(&r);

    srv_stop();
    srv_start(NULL, NULL);
    run_quiet("rm -rf %s", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_request_exact),
        cmocka_unit_test(test_result_42),
        cmocka_unit_test(test_status_outcomes),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_url_unknown_argument),
        cmocka_unit_test(test_abandon_slow),
        cmocka_unit_test(test_fini_in_flight),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_oversized_response),
        cmocka_unit_test(test_tls),
    };
    return cmocka_run_group_tests(tests, srv_setup, srv_teardown);
}
