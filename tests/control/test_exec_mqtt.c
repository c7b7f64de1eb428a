/*
 * test_exec_mqtt — the mqtt executor against a real mosquitto broker started here:
 * configuration errors, the payload and topic a subscriber sees, PUBACK and written-qos-0
 * completion, replies from sigflow-device-sim (result, ok:false, templated filters), a
 * broker killed under attempts (RETRY, then reconnect), abandon, 1000 attempts in flight,
 * start and fini from inside done, credentials. With "long" (suite long, ~25 s): keepalive
 * and the CONNACK timeout. Exits 77 when /usr/sbin/mosquitto is not installed.
 *
 * usage: test_exec_mqtt PATH_OF_sigflow-device-sim [long]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <mosquitto.h>

#include "cp_exec.h"
#include "exec_mqtt.h"
#include "mqtt_broker.h"
#include "sf_proto.h"

#define ATT_MAX           1000u /* attempts one test holds */
#define SEEN_MAX          64u   /* messages the test's subscriber keeps */
#define WAIT_MS           10000 /* any condition a test waits for */
#define QUIET_MS          300   /* how long "nothing happens" is watched */
#define CHAIN_LENGTH      100u
#define KEEPALIVE_WAIT_MS 20000 /* keepalive 5 s: the loss shows after 5 to 10 s; CONNACK: 10 s */
#define REPLY_MAX         512u
#define FAKE_PACKET_MAX   8192u /* the fake broker's largest packet */
#define PAUSED_ROUNDS     10u   /* x ATT_MAX x ~600 bytes: more than loopback TCP buffers */

struct fx;

struct att {
    struct chan_task task;
    struct cp_attempt a;
    unsigned done_calls;
    struct cp_outcome outcome;
};

static struct att atts[ATT_MAX];
static unsigned done_total;
static bool in_start;           /* done must never be called from inside start */
static unsigned chain_next;     /* start_from_done: the next attempt done starts, 0: none */
static struct fx *fini_in_done; /* fini_from_done: done calls fini on this fixture's executor */
static const char *sim_path;

/* ---- the test's own client: a subscriber (and publisher) on libmosquitto's thread ------ */

struct seen {
    char topic[256];
    char payload[CP_BODY_MAX];
    int len;
};

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct seen seen[SEEN_MAX];
static unsigned seen_n;
static bool client_subscribed, client_connected;

static void client_on_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *m)
{
    (void)mosq, (void)arg;
    pthread_mutex_lock(&seen_lock);
    if (seen_n < SEEN_MAX && m->payloadlen < (int)CP_BODY_MAX) {
        snprintf(seen[seen_n].topic, sizeof(seen[seen_n].topic), "%s", m->topic);
        memcpy(seen[seen_n].payload, m->payload, (size_t)m->payloadlen);
        seen[seen_n].payload[m->payloadlen] = '\0';
        seen[seen_n].len = m->payloadlen;
        seen_n++;
    }
    pthread_mutex_unlock(&seen_lock);
}

static void client_on_connect(struct mosquitto *mosq, void *arg, int rc)
{
    (void)mosq, (void)arg;
    pthread_mutex_lock(&seen_lock);
    client_connected = rc == 0;
    pthread_mutex_unlock(&seen_lock);
}

static void client_on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n, const int *q)
{
    (void)mosq, (void)arg, (void)mid, (void)n, (void)q;
    pthread_mutex_lock(&seen_lock);
    client_subscribed = true;
    pthread_mutex_unlock(&seen_lock);
}

static unsigned seen_count(void)
{
    pthread_mutex_lock(&seen_lock);
    unsigned n = seen_n;
    pthread_mutex_unlock(&seen_lock);
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static bool client_wait(const bool *flag)
{
    for (int w = 0; w < WAIT_MS; w += 10) {
        pthread_mutex_lock(&seen_lock);
        bool ok = *flag;
        pthread_mutex_unlock(&seen_lock);
        if (ok)
            return true;
        sleep_ms(10);
    }
    return false;
}

/* A client of b on its own thread, connected (CONNACK: what it publishes from now on goes
 * out in order) and subscribed to filter (NULL: none) before it returns. */
static struct mosquitto *client_start(const struct mqtt_broker *b, const char *filter)
{
    pthread_mutex_lock(&seen_lock);
    seen_n = 0;
    client_subscribed = client_connected = false;
    pthread_mutex_unlock(&seen_lock);
    struct mosquitto *c = mosquitto_new(NULL, true, NULL);
    assert_non_null(c);
    mosquitto_connect_callback_set(c, client_on_connect);
    mosquitto_message_callback_set(c, client_on_message);
    mosquitto_subscribe_callback_set(c, client_on_subscribe);
    assert_int_equal(mosquitto_connect(c, "127.0.0.1", b->port, 30), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_loop_start(c), MOSQ_ERR_SUCCESS);
    assert_true(client_wait(&client_connected));
    if (filter) {
        assert_int_equal(mosquitto_subscribe(c, NULL, filter, 1), MOSQ_ERR_SUCCESS);
        assert_true(client_wait(&client_subscribed));
    }
    return c;
}

static void client_stop(struct mosquitto *c)
{
    mosquitto_disconnect(c);
    mosquitto_loop_stop(c, false);
    mosquitto_destroy(c);
}

/* ---- attempts and the executor ------------------------------------------------------------ */

static void test_done(struct cp_executor *x, struct cp_attempt *a, const struct cp_outcome *o);

/* Attempt i: workflow type "device", id[0..id_len), activity reprovision(device, reason),
 * run sequence number seq. */
static struct cp_attempt *att_make(unsigned i, const char *id, size_t id_len, uint32_t seq,
                                   const char *reason)
{
    assert_true(i < ATT_MAX && id_len <= CHAN_ID_MAX);
    struct att *t = &atts[i];
    memset(t, 0, sizeof(*t));
    struct chan_task *k = &t->task;
    k->kind = CHAN_TASK_RUN;
    memcpy(k->type, "device", 6);
    k->type_len = 6;
    memcpy(k->id, id, id_len);
    k->id_len = (uint8_t)id_len;
    memcpy(k->activity, "reprovision", 11);
    k->activity_len = 11;
    k->seq = seq;
    k->attempt = 1;
    k->max_attempts = 5;
    k->key_hi = 0x1234;
    k->key_lo = 0x5678 + i;
    k->nargs = 2;
    snprintf(k->param[0], sizeof(k->param[0]), "device");
    snprintf(k->param[1], sizeof(k->param[1]), "reason");
    struct sf_value v[2] = {
        { .type = SF_VAL_TEXT, .text = { id, (uint16_t)id_len } },
        { .type = SF_VAL_TEXT, .text = { reason, (uint16_t)strlen(reason) } },
    };
    int n = sf_fields_encode(k->args, sizeof(k->args), v, 2);
    assert_true(n > 0);
    k->args_len = (uint16_t)n;
    assert_true(chan_task_valid(k));
    t->a.task = k;
    t->a.attempt = 1;
    assert_int_equal(cp_attempt_fill(&t->a), 0);
    return &t->a;
}

static struct att *att_of(struct cp_attempt *a)
{
    struct att *t = (struct att *)((char *)a - offsetof(struct att, a));
    assert_true(t >= atts && t < atts + ATT_MAX);
    return t;
}

struct fx {
    struct mqtt_broker broker;
    struct cp_loop *loop;
    struct cp_executor x;
    bool live;
    pid_t sim;
    struct mosquitto *client;
    char port[8];
};

static void test_done(struct cp_executor *x, struct cp_attempt *a, const struct cp_outcome *o)
{
    assert_false(in_start);
    struct att *t = att_of(a);
    t->done_calls++;
    t->outcome = *o;
    done_total++;
    if (fini_in_done) {
        x->ops->fini(x);
        fini_in_done->live = false;
        fini_in_done = NULL;
    }
    if (chain_next && chain_next < CHAIN_LENGTH) {
        unsigned i = chain_next++;
        struct cp_attempt *next = att_make(i, "chain", 5, i + 1, "errors");
        in_start = true;
        assert_int_equal(x->ops->start(x, next), 0);
        in_start = false;
    }
}

static int exec_start(struct fx *f, struct cp_attempt *a)
{
    in_start = true;
    int rc = f->x.ops->start(&f->x, a);
    in_start = false;
    return rc;
}

/* Init f->x from key/value pairs (NULL-terminated; "port" is added for the fixture's broker
 * unless given). Returns init's result; err holds its message. */
static int exec_init(struct fx *f, char *err, size_t cap, ...)
{
    struct cp_kv kv[CP_KV_MAX];
    unsigned n = 0;
    bool has_port = false;
    va_list ap;
    va_start(ap, cap);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL && n < CP_KV_MAX; n++) {
        memset(&kv[n], 0, sizeof(kv[n]));
        snprintf(kv[n].key, sizeof(kv[n].key), "%s", k);
        has_port |= strcmp(k, "port") == 0;
        snprintf(kv[n].value, sizeof(kv[n].value), "%s", va_arg(ap, const char *));
        kv[n].line = n + 1;
    }
    va_end(ap);
    if (!has_port) {
        memset(&kv[n], 0, sizeof(kv[n]));
        snprintf(kv[n].key, sizeof(kv[n].key), "port");
        snprintf(kv[n].value, sizeof(kv[n].value), "%s", f->port);
        kv[n].line = n + 1;
        n++;
    }
    memset(&f->x, 0, sizeof(f->x));
    f->x.ops = &cp_exec_mqtt_ops;
    snprintf(f->x.name, sizeof(f->x.name), "devices");
    f->x.loop = f->loop;
    f->x.done = test_done;
    f->x.concurrency = ATT_MAX;
    err[0] = '\0';
    int rc = cp_exec_mqtt_ops.init(&f->x, kv, n, err, cap);
    f->live = rc == 0;
    return rc;
}

static struct cp_mqtt_stats exec_stats(struct fx *f)
{
    struct cp_mqtt_stats s;
    cp_exec_mqtt_stats(&f->x, &s);
    return s;
}

static uint64_t now_ms(void)
{
    return cp_now_ns() / 1000000u;
}

/* Run the loop until done_total reaches n; false after ms. */
static bool run_until_done_ms(struct fx *f, unsigned n, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (done_total < n && now_ms() < end)
        cp_loop_run_once(f->loop, 10);
    return done_total >= n;
}

static bool run_until_done(struct fx *f, unsigned n)
{
    return run_until_done_ms(f, n, WAIT_MS);
}

static bool run_until_connected(struct fx *f, bool connected)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (exec_stats(f).connected != connected && now_ms() < end)
        cp_loop_run_once(f->loop, 10);
    return exec_stats(f).connected == connected;
}

static bool run_until_published(struct fx *f, uint64_t n)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (exec_stats(f).published < n && now_ms() < end)
        cp_loop_run_once(f->loop, 10);
    return exec_stats(f).published >= n;
}

static void run_for(struct fx *f, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (now_ms() < end)
        cp_loop_run_once(f->loop, 10);
}

static void sim_start(struct fx *f, const char *const *extra)
{
    f->sim = mqtt_sim_start(&f->broker, sim_path, extra);
    assert_true(f->sim > 0);
}

static int fx_setup_common(void **state, bool broker)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->loop = cp_loop_new();
    assert_non_null(f->loop);
    if (broker)
        assert_int_equal(mqtt_broker_start(&f->broker), 0);
    /* without a broker: a port nobody listens on (refused at once) */
    snprintf(f->port, sizeof(f->port), "%u", broker ? f->broker.port : 1u);
    done_total = 0;
    chain_next = 0;
    *state = f;
    return 0;
}

static int fx_setup(void **state)
{
    return fx_setup_common(state, true);
}

static int fx_setup_no_broker(void **state)
{
    return fx_setup_common(state, false);
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (f->live)
        f->x.ops->fini(&f->x);
    if (f->client)
        client_stop(f->client);
    if (f->sim > 0)
        mqtt_child_stop(f->sim);
    mqtt_broker_cleanup(&f->broker);
    cp_loop_free(f->loop);
    free(f);
    return 0;
}

/* ---- the tests --------------------------------------------------------------------------- */

static void test_config_errors(void **state)
{
    struct fx *f = *state;
    char err[256];
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "qos", "1",
                               "host", "127.0.0.1", "keepalive_s", "30", "client_id", "c",
                               "username", "u", "colour", "red", NULL),
                     -EINVAL);
    assert_string_equal(err, "line 7: unknown key colour for an mqtt executor");
    assert_int_equal(exec_init(f, err, sizeof(err), "qos", "1", NULL), -EINVAL);
    assert_string_equal(err, "an mqtt executor needs a topic");
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "a", "qos", "2", NULL), -EINVAL);
    assert_non_null(strstr(err, "line 2: qos"));
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/+/commands", NULL), -EINVAL);
    assert_non_null(strstr(err, "not an MQTT topic"));
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}#", NULL), -EINVAL);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{nope}", NULL), -EINVAL);
    assert_non_null(strstr(err, "not a template"));
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "a", "reply_topic", "r/#/x", NULL),
                     -EINVAL);
    assert_non_null(strstr(err, "not an MQTT subscription filter"));
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "a", "reply_topic", "r/{id}+", NULL),
                     -EINVAL);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "a", "keepalive_s", "2", NULL),
                     -EINVAL);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "a", "host", "", NULL), -EINVAL);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "a", "topic", "b", NULL), -EINVAL);
    assert_non_null(strstr(err, "given twice"));
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "a", "password_file",
                               "/nonexistent/pw", "username", "u", NULL),
                     -EINVAL);
    assert_non_null(strstr(err, "/nonexistent/pw"));
    char pw[] = "/tmp/sf-mqtt-pw-XXXXXX";
    int fd = mkstemp(pw);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "secret\n", 7), 7);
    close(fd);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "a", "password_file", pw, NULL),
                     -EINVAL);
    assert_non_null(strstr(err, "needs a username"));
    assert_int_equal(
        exec_init(f, err, sizeof(err), "topic", "a", "password_file", pw, "username", "u", NULL),
        0);
    f->x.ops->fini(&f->x);
    f->live = false;
    unlink(pw);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "a", "port", "x", NULL), -EINVAL);
    assert_non_null(strstr(err, "line 2: port"));
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "a", "port", "65536", NULL), -EINVAL);
}

/* No broker: an attempt gets RETRY "broker disconnected", from the loop, not from start. */
static void test_no_broker(void **state)
{
    struct fx *f = *state;
    char err[256];
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", NULL), 0);
    struct cp_attempt *a = att_make(0, "dev-1", 5, 1, "errors");
    assert_int_equal(exec_start(f, a), 0);
    assert_int_equal(done_total, 0);
    assert_true(run_until_done(f, 1));
    assert_int_equal(atts[0].outcome.kind, CP_OUTCOME_RETRY);
    assert_string_equal(atts[0].outcome.reason, "broker disconnected");
    assert_true(exec_stats(f).connect_failures >= 1);
    assert_false(exec_stats(f).connected);
}

/* Values that would make a topic a wildcard (or cut it at a NUL) fail the attempt for good. */
static void test_bad_values(void **state)
{
    struct fx *f = *state;
    char err[256];
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/{arg.reason}", NULL), 0);
    struct cp_attempt *a[4] = {
        att_make(0, "dev+1", 5, 1, "errors"),
        att_make(1, "dev#", 4, 1, "errors"),
        att_make(2, "de\0v", 4, 1, "errors"),
        att_make(3, "dev-3", 5, 1, "a+b"),
    };
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(exec_start(f, a[i]), 0);
    assert_true(run_until_done(f, 4));
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(atts[i].outcome.kind, CP_OUTCOME_FAIL);
    assert_non_null(strstr(atts[0].outcome.reason, "id contains an MQTT wildcard"));
    assert_non_null(strstr(atts[1].outcome.reason, "id contains an MQTT wildcard"));
    assert_non_null(strstr(atts[2].outcome.reason, "id contains a NUL byte"));
    assert_non_null(strstr(atts[3].outcome.reason, "argument reason contains an MQTT wildcard"));
    f->x.ops->fini(&f->x);
    /* the same for a templated reply filter, checked when the attempt starts */
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "reply_topic",
                               "replies/{arg.reason}", NULL),
                     0);
    assert_int_equal(exec_start(f, att_make(4, "dev-4", 5, 1, "a#")), 0);
    assert_int_equal(exec_start(f, att_make(5, "dev-5", 5, 1, "fine")), 0);
    assert_true(run_until_done(f, 6));
    assert_int_equal(atts[4].outcome.kind, CP_OUTCOME_FAIL);
    assert_non_null(strstr(atts[4].outcome.reason, "argument reason contains an MQTT wildcard"));
    assert_int_equal(atts[5].outcome.kind, CP_OUTCOME_RETRY); /* no broker */
}

/* qos 1: the subscriber sees the exact body on the id's topic; done on PUBACK. The attempt
 * starts before the CONNACK (held, then published). */
static void test_publish_puback(void **state)
{
    struct fx *f = *state;
    char err[256];
    f->client = client_start(&f->broker, "devices/+/commands");
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", NULL), 0);
    struct cp_attempt *a = att_make(0, "dev-1", 5, 7, "errors");
    assert_int_equal(exec_start(f, a), 0);
    assert_true(run_until_done(f, 1));
    assert_int_equal(atts[0].done_calls, 1);
    assert_int_equal(atts[0].outcome.kind, CP_OUTCOME_DONE);
    assert_false(atts[0].outcome.has_result);
    struct cp_mqtt_stats s = exec_stats(f);
    assert_int_equal(s.published, 1);
    assert_int_equal(s.acked, 1);
    for (int w = 0; w < WAIT_MS && seen_count() < 1; w += 10)
        sleep_ms(10);
    assert_int_equal(seen_count(), 1);
    assert_string_equal(seen[0].topic, "devices/dev-1/commands");
    assert_int_equal(seen[0].len, (int)a->body_len);
    assert_memory_equal(seen[0].payload, a->body_json, a->body_len);
    assert_non_null(strstr(seen[0].payload, "\"idempotency_key\":\"0000000000001234"));
}

/* qos 0: done once written; the message still arrives. */
static void test_publish_qos0(void **state)
{
    struct fx *f = *state;
    char err[256];
    f->client = client_start(&f->broker, "devices/#");
    assert_int_equal(exec_init(f, err, sizeof(err), "topic",
                               "devices/{type}/{id}/{activity}/{arg.reason}", "qos", "0", NULL),
                     0);
    assert_true(run_until_connected(f, true));
    struct cp_attempt *a = att_make(0, "dev-2", 5, 1, "errors");
    assert_int_equal(exec_start(f, a), 0);
    assert_int_equal(done_total, 0);
    assert_true(run_until_done(f, 1));
    assert_int_equal(atts[0].outcome.kind, CP_OUTCOME_DONE);
    for (int w = 0; w < WAIT_MS && seen_count() < 1; w += 10)
        sleep_ms(10);
    assert_int_equal(seen_count(), 1);
    assert_string_equal(seen[0].topic, "devices/device/dev-2/reprovision/errors");
}

/* reply_topic: sigflow-device-sim answers; the result is the run's seq (the sim's default). */
static void test_reply_result(void **state)
{
    struct fx *f = *state;
    char err[256];
    sim_start(f, NULL);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "reply_topic",
                               "devices/+/replies", NULL),
                     0);
    for (unsigned i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "dev-%u", i);
        assert_int_equal(exec_start(f, att_make(i, id, strlen(id), 40 + i, "errors")), 0);
    }
    assert_true(run_until_done(f, 5));
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(atts[i].outcome.kind, CP_OUTCOME_DONE);
        assert_true(atts[i].outcome.has_result);
        assert_int_equal(atts[i].outcome.result, 40 + i);
    }
    assert_int_equal(exec_stats(f).replies, 5);
}

/* "ok": false fails the attempt for good, with the device's error. */
static void test_reply_failure(void **state)
{
    struct fx *f = *state;
    char err[256];
    const char *const extra[] = { "--fail-every", "2", NULL };
    sim_start(f, extra);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "reply_topic",
                               "devices/+/replies", NULL),
                     0);
    assert_int_equal(exec_start(f, att_make(0, "dev-a", 5, 1, "errors")), 0);
    assert_true(run_until_done(f, 1));
    assert_int_equal(exec_start(f, att_make(1, "dev-b", 5, 2, "errors")), 0);
    assert_true(run_until_done(f, 2));
    assert_int_equal(atts[0].outcome.kind, CP_OUTCOME_DONE);
    assert_int_equal(atts[1].outcome.kind, CP_OUTCOME_FAIL);
    assert_string_equal(atts[1].outcome.reason, "device: simulated failure");
}

/* A reply filter with {id}: subscribed per attempt, unsubscribed after, subscribed again. */
static void test_reply_templated(void **state)
{
    struct fx *f = *state;
    char err[256];
    const char *const extra[] = { "--result", "99", NULL };
    sim_start(f, extra);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "reply_topic",
                               "devices/{id}/replies", NULL),
                     0);
    assert_true(run_until_connected(f, true));
    assert_int_equal(exec_start(f, att_make(0, "dev-t", 5, 1, "errors")), 0);
    assert_int_equal(exec_start(f, att_make(1, "dev-t", 5, 2, "errors")), 0);
    assert_true(run_until_done(f, 2));
    assert_int_equal(exec_start(f, att_make(2, "dev-t", 5, 3, "errors")), 0);
    assert_true(run_until_done(f, 3));
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(atts[i].outcome.kind, CP_OUTCOME_DONE);
        assert_int_equal(atts[i].outcome.result, 99);
    }
}

static void client_publish(struct fx *f, const char *topic, const char *payload)
{
    assert_int_equal(
        mosquitto_publish(f->client, NULL, topic, (int)strlen(payload), payload, 1, false),
        MOSQ_ERR_SUCCESS);
}

/* Replies are matched by key alone; bad ones are counted, odd fields fail the attempt. */
static void test_reply_fields(void **state)
{
    struct fx *f = *state;
    char err[256], r[REPLY_MAX];
    f->client = client_start(&f->broker, NULL);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "reply_topic",
                               "devices/+/replies", NULL),
                     0);
    assert_true(run_until_connected(f, true));
    struct cp_attempt *a[4];
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(exec_start(f, a[i] = att_make(i, "dev-f", 5, i + 1, "errors")), 0);
    assert_true(run_until_published(f, 4));
    client_publish(f, "devices/x/replies", "not json");
    client_publish(f, "devices/x/replies", "{\"no\":\"key\"}");
    static char big[CP_BODY_MAX + 1024];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    client_publish(f, "devices/x/replies", big);
    client_publish(f, "devices/x/replies", "{\"idempotency_key\":\"nope\"}");
    const char *fmt[4] = {
        "{\"idempotency_key\":\"%s\",\"result\":\"x\"}",
        "{\"idempotency_key\":\"%s\",\"ok\":\"yes\"}",
        "{\"idempotency_key\":\"%s\",\"ok\":false}",
        "{\"idempotency_key\":\"%s\",\"ok\":true}",
    };
    for (unsigned i = 0; i < 4; i++) {
        snprintf(r, sizeof(r), fmt[i], a[i]->idempotency_key);
        client_publish(f, "devices/dev-f/replies", r);
    }
    assert_true(run_until_done(f, 4));
    snprintf(r, sizeof(r), "{\"idempotency_key\":\"%s\",\"result\":5}", a[3]->idempotency_key);
    client_publish(f, "devices/dev-f/replies", r); /* late: the attempt is over */
    uint64_t end = now_ms() + WAIT_MS;
    while (exec_stats(f).replies_ignored < 2 && now_ms() < end)
        cp_loop_run_once(f->loop, 10);
    assert_int_equal(atts[0].outcome.kind, CP_OUTCOME_FAIL);
    assert_string_equal(atts[0].outcome.reason, "reply: \"result\" is not an integer");
    assert_int_equal(atts[1].outcome.kind, CP_OUTCOME_FAIL);
    assert_string_equal(atts[1].outcome.reason, "reply: \"ok\" is not a boolean");
    assert_int_equal(atts[2].outcome.kind, CP_OUTCOME_FAIL);
    assert_string_equal(atts[2].outcome.reason, "device: failed");
    assert_int_equal(atts[3].outcome.kind, CP_OUTCOME_DONE);
    assert_false(atts[3].outcome.has_result);
    struct cp_mqtt_stats st = exec_stats(f);
    assert_int_equal(st.replies, 4);
    assert_int_equal(st.replies_malformed, 3);
    assert_int_equal(st.replies_ignored, 2);
    assert_int_equal(done_total, 4);
}

/* A broker that stops reading: publishes pile up in the socket, then in libmosquitto
 * (EPOLLOUT watched), nothing completes, abandoned attempts are started again (megabytes
 * queued); once the broker reads again the last round completes, the others' PUBACKs are
 * ignored. */
static void test_broker_paused(void **state)
{
    struct fx *f = *state;
    char err[256], reason[151], id[41]; /* with the id: what fits CHAN_ARGS_MAX */
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    memset(id, 'd', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    assert_int_equal(
        exec_init(f, err, sizeof(err), "topic", "devices/{id}/{arg.reason}/commands", NULL), 0);
    assert_true(run_until_connected(f, true));
    mqtt_broker_pause(&f->broker, true);
    for (unsigned round = 0; round < PAUSED_ROUNDS; round++) {
        for (unsigned i = 0; i < ATT_MAX; i++) {
            struct cp_attempt *a = &atts[i].a;
            if (round > 0)
                f->x.ops->abandon(&f->x, a);
            else
                a = att_make(i, id, strlen(id), i + 1, reason);
            assert_int_equal(exec_start(f, a), 0);
        }
        run_for(f, 10);
    }
    run_for(f, 1100); /* the misc timer runs once */
    assert_int_equal(done_total, 0);
    assert_int_equal(exec_stats(f).published, PAUSED_ROUNDS * ATT_MAX);
    mqtt_broker_pause(&f->broker, false);
    assert_true(run_until_done(f, ATT_MAX));
    for (unsigned i = 0; i < ATT_MAX; i++)
        assert_int_equal(atts[i].outcome.kind, CP_OUTCOME_DONE);
    uint64_t end = now_ms() + WAIT_MS;
    while (exec_stats(f).acks_ignored < (PAUSED_ROUNDS - 1) * ATT_MAX && now_ms() < end)
        cp_loop_run_once(f->loop, 10);
    struct cp_mqtt_stats st = exec_stats(f);
    assert_int_equal(st.acks_ignored, (PAUSED_ROUNDS - 1) * ATT_MAX);
    assert_int_equal(st.acked, ATT_MAX);
    assert_int_equal(st.connects, 1);
    assert_int_equal(done_total, ATT_MAX);
}

/* username + password_file: accepted with the right password; a wrong one is a CONNACK
 * refusal, and what waited for it gets RETRY "broker disconnected". */
static void test_auth(void **state)
{
    struct fx *f = *state;
    char err[256], passwd[128], conf[256];
    int rc = mqtt_broker_passwd(&f->broker, "alice", "s3cret", passwd, sizeof(passwd));
    if (rc == -ENOENT)
        skip();
    assert_int_equal(rc, 0);
    snprintf(conf, sizeof(conf), "allow_anonymous false\npassword_file %s", passwd);
    f->broker.extra_conf = conf;
    assert_int_equal(mqtt_broker_start(&f->broker), 0);
    snprintf(f->port, sizeof(f->port), "%u", f->broker.port);
    char good[128], bad[128];
    snprintf(good, sizeof(good), "%s/good", f->broker.dir);
    snprintf(bad, sizeof(bad), "%s/bad", f->broker.dir);
    FILE *g = fopen(good, "w"), *b = fopen(bad, "w");
    assert_non_null(g);
    assert_non_null(b);
    fputs("s3cret\n", g);
    fputs("wrong\n", b);
    fclose(g);
    fclose(b);

    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "username",
                               "alice", "password_file", good, NULL),
                     0);
    assert_int_equal(exec_start(f, att_make(0, "dev-a", 5, 1, "errors")), 0);
    assert_true(run_until_done(f, 1));
    assert_int_equal(atts[0].outcome.kind, CP_OUTCOME_DONE);
    f->x.ops->fini(&f->x);

    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "username",
                               "alice", "password_file", bad, NULL),
                     0);
    assert_int_equal(exec_start(f, att_make(1, "dev-a", 5, 2, "errors")), 0);
    assert_true(run_until_done(f, 2));
    assert_int_equal(atts[1].outcome.kind, CP_OUTCOME_RETRY);
    assert_string_equal(atts[1].outcome.reason, "broker disconnected");
    struct cp_mqtt_stats st = exec_stats(f);
    assert_int_equal(st.connects, 0);
    assert_non_null(strstr(st.last_error, "not authorised"));
}

/* ---- a fake broker that refuses every subscription (mosquitto 2.0's ACLs never do: they
 * grant the SUBACK and withhold the messages) --------------------------------------------- */

struct fake_broker {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    volatile bool stop;
    unsigned connections; /* accepted (read after join) */
};

/* Read exactly n bytes; false on EOF, error or stop. */
static bool fake_read(struct fake_broker *fb, int fd, uint8_t *buf, size_t n)
{
    for (size_t got = 0; got < n && !fb->stop;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t k = read(fd, buf + got, n - got);
        if (k <= 0)
            return false;
        got += (size_t)k;
    }
    return !fb->stop;
}

/* One connection: CONNACK accepted, SUBACK 0x80, PUBACK, PINGRESP, until EOF. */
static void fake_serve(struct fake_broker *fb, int fd)
{
    uint8_t head, body[FAKE_PACKET_MAX];
    while (fake_read(fb, fd, &head, 1)) {
        uint32_t len = 0, shift = 0;
        uint8_t b;
        do {
            if (!fake_read(fb, fd, &b, 1) || shift > 21)
                return;
            len |= (uint32_t)(b & 0x7f) << shift;
            shift += 7;
        } while (b & 0x80);
        if (len > sizeof(body) || !fake_read(fb, fd, body, len))
            return;
        uint8_t out[5];
        size_t n = 0;
        if ((head & 0xf0) == 0x10) { /* CONNECT */
            memcpy(out, "\x20\x02\x00\x00", 4);
            n = 4;
        } else if ((head & 0xf0) == 0x80 && len >= 2) { /* SUBSCRIBE: refused */
            const uint8_t suback[5] = { 0x90, 3, body[0], body[1], 0x80 };
            memcpy(out, suback, sizeof(suback));
            n = sizeof(suback);
        } else if ((head & 0xf6) == 0x32 && len >= 2) { /* PUBLISH qos 1: the id ends the topic */
            uint16_t tlen = (uint16_t)(body[0] << 8 | body[1]);
            if (len < 4u + tlen)
                return;
            const uint8_t puback[4] = { 0x40, 2, body[2 + tlen], body[3 + tlen] };
            memcpy(out, puback, sizeof(puback));
            n = sizeof(puback);
        } else if ((head & 0xf0) == 0xc0) { /* PINGREQ */
            memcpy(out, "\xd0\x00", 2);
            n = 2;
        } else if ((head & 0xf0) == 0xe0) { /* DISCONNECT */
            return;
        }
        if (n && write(fd, out, n) != (ssize_t)n)
            return;
    }
}

static void *fake_main(void *arg)
{
    struct fake_broker *fb = arg;
    while (!fb->stop) {
        struct pollfd p = { .fd = fb->listen_fd, .events = POLLIN };
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept4(fb->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        fb->connections++;
        fake_serve(fb, fd);
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake_broker *fb)
{
    memset(fb, 0, sizeof(*fb));
    fb->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fb->listen_fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fb->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fb->listen_fd, 8), 0);
    assert_int_equal(getsockname(fb->listen_fd, (struct sockaddr *)&sa, &sl), 0);
    fb->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&fb->thread, NULL, fake_main, fb), 0);
}

static void fake_stop(struct fake_broker *fb)
{
    fb->stop = true;
    pthread_join(fb->thread, NULL);
    close(fb->listen_fd);
}

/* The broker refuses the reply subscription: the session ends, what it held is retried, and
 * the executor tries again with backoff, not in a busy loop. */
static void test_subscribe_refused(void **state)
{
    struct fx *f = *state;
    struct fake_broker fb;
    char err[256];
    fake_start(&fb);
    snprintf(f->port, sizeof(f->port), "%u", fb.port);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "reply_topic",
                               "devices/+/replies", NULL),
                     0);
    assert_int_equal(exec_start(f, att_make(0, "dev-s", 5, 1, "errors")), 0);
    assert_true(run_until_done(f, 1));
    assert_int_equal(atts[0].outcome.kind, CP_OUTCOME_RETRY);
    assert_string_equal(atts[0].outcome.reason, "broker disconnected");
    run_for(f, QUIET_MS);
    struct cp_mqtt_stats st = exec_stats(f);
    f->x.ops->fini(&f->x);
    f->live = false;
    fake_stop(&fb);
    assert_true(st.subscribe_refused >= 1);
    assert_true(st.disconnects >= 1);
    assert_true(st.connects <= 4); /* after 50, 100, 200 ms: backoff, not a busy loop */
    assert_non_null(strstr(st.last_error, "refused the subscription to devices/+/replies"));
}

/* fini from inside done (the dispatcher shutting down on its last outcome). */
static void test_fini_from_done(void **state)
{
    struct fx *f = *state;
    char err[256];
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", NULL), 0);
    assert_int_equal(exec_start(f, att_make(0, "dev-z", 5, 1, "errors")), 0);
    fini_in_done = f;
    assert_true(run_until_done(f, 1));
    assert_false(f->live);
    run_for(f, 50);
    assert_int_equal(done_total, 1);
}

/* Broker killed: attempts in flight RETRY "broker disconnected", so does one started while
 * it is down; restarted: the executor reconnects and new attempts succeed. */
static void test_broker_killed(void **state)
{
    struct fx *f = *state;
    char err[256];
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "reply_topic",
                               "devices/+/replies", NULL),
                     0);
    assert_true(run_until_connected(f, true));
    for (unsigned i = 0; i < 10; i++)
        assert_int_equal(exec_start(f, att_make(i, "dev-k", 5, i + 1, "errors")), 0);
    assert_true(run_until_published(f, 10)); /* no device: they wait for replies */
    run_for(f, 50);
    assert_int_equal(done_total, 0);
    mqtt_broker_kill(&f->broker);
    assert_true(run_until_done(f, 10));
    for (unsigned i = 0; i < 10; i++) {
        assert_int_equal(atts[i].outcome.kind, CP_OUTCOME_RETRY);
        assert_string_equal(atts[i].outcome.reason, "broker disconnected");
    }
    assert_false(exec_stats(f).connected);
    assert_int_equal(exec_start(f, att_make(10, "dev-k", 5, 11, "errors")), 0);
    assert_true(run_until_done(f, 11));
    assert_int_equal(atts[10].outcome.kind, CP_OUTCOME_RETRY);
    run_for(f, 200); /* a few reconnects refused */

    assert_int_equal(mqtt_broker_start(&f->broker), 0);
    sim_start(f, NULL);
    assert_true(run_until_connected(f, true));
    struct cp_mqtt_stats s = exec_stats(f);
    assert_int_equal(s.connects, 2);
    assert_int_equal(s.disconnects, 1);
    assert_true(s.connect_failures >= 1);
    for (unsigned i = 11; i < 16; i++)
        assert_int_equal(exec_start(f, att_make(i, "dev-k", 5, i + 1, "errors")), 0);
    assert_true(run_until_done(f, 16));
    for (unsigned i = 11; i < 16; i++) {
        assert_int_equal(atts[i].outcome.kind, CP_OUTCOME_DONE);
        assert_int_equal(atts[i].outcome.result, i + 1);
    }
}

/* Abandoned: neither a later PUBACK nor a later reply calls done. */
static void test_abandon(void **state)
{
    struct fx *f = *state;
    char err[256];
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", NULL), 0);
    assert_true(run_until_connected(f, true));
    struct cp_attempt *a = att_make(0, "dev-x", 5, 1, "errors");
    assert_int_equal(exec_start(f, a), 0);
    f->x.ops->abandon(&f->x, a);
    assert_null(a->exec_state);
    run_for(f, QUIET_MS);
    assert_int_equal(done_total, 0);
    assert_int_equal(exec_stats(f).acks_ignored, 1);
    f->x.ops->fini(&f->x);

    f->client = client_start(&f->broker, NULL);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "reply_topic",
                               "devices/+/replies", NULL),
                     0);
    assert_true(run_until_connected(f, true));
    a = att_make(1, "dev-y", 5, 1, "errors");
    assert_int_equal(exec_start(f, a), 0);
    assert_true(run_until_published(f, 1));
    run_for(f, 50);
    f->x.ops->abandon(&f->x, a);
    char reply[256];
    int n = snprintf(reply, sizeof(reply), "{\"idempotency_key\":\"%s\",\"ok\":true,\"result\":1}",
                     a->idempotency_key);
    assert_int_equal(
        mosquitto_publish(f->client, NULL, "devices/dev-y/replies", n, reply, 1, false),
        MOSQ_ERR_SUCCESS);
    uint64_t end = now_ms() + WAIT_MS;
    while (exec_stats(f).replies_ignored < 1 && now_ms() < end)
        cp_loop_run_once(f->loop, 10);
    run_for(f, QUIET_MS / 3);
    assert_int_equal(done_total, 0);
    assert_int_equal(exec_stats(f).replies_ignored, 1);
    assert_int_equal(exec_stats(f).abandoned, 1);
}

/* 1000 attempts in flight at once complete: PUBACK mode, then through the device sim. */
static void test_thousand_in_flight(void **state)
{
    struct fx *f = *state;
    char err[256];
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", NULL), 0);
    assert_true(run_until_connected(f, true));
    for (unsigned i = 0; i < ATT_MAX; i++) {
        char id[16];
        snprintf(id, sizeof(id), "dev-%u", i);
        assert_int_equal(exec_start(f, att_make(i, id, strlen(id), i + 1, "errors")), 0);
    }
    assert_true(run_until_done(f, ATT_MAX));
    for (unsigned i = 0; i < ATT_MAX; i++) {
        assert_int_equal(atts[i].done_calls, 1);
        assert_int_equal(atts[i].outcome.kind, CP_OUTCOME_DONE);
    }
    assert_int_equal(exec_stats(f).acked, ATT_MAX);
    f->x.ops->fini(&f->x);

    done_total = 0;
    sim_start(f, NULL);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "reply_topic",
                               "devices/+/replies", NULL),
                     0);
    assert_true(run_until_connected(f, true));
    for (unsigned i = 0; i < ATT_MAX; i++) {
        char id[16];
        snprintf(id, sizeof(id), "dev-%u", i);
        assert_int_equal(exec_start(f, att_make(i, id, strlen(id), i + 1, "errors")), 0);
    }
    assert_true(run_until_done(f, ATT_MAX));
    for (unsigned i = 0; i < ATT_MAX; i++) {
        assert_int_equal(atts[i].done_calls, 1);
        assert_int_equal(atts[i].outcome.kind, CP_OUTCOME_DONE);
        assert_int_equal(atts[i].outcome.result, i + 1);
    }
}

/* done may start the next attempt (a dispatcher refilling its window). */
static void test_start_from_done(void **state)
{
    struct fx *f = *state;
    char err[256];
    assert_int_equal(
        exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "qos", "0", NULL), 0);
    assert_true(run_until_connected(f, true));
    chain_next = 1;
    assert_int_equal(exec_start(f, att_make(0, "chain", 5, 1, "errors")), 0);
    assert_true(run_until_done(f, CHAIN_LENGTH));
    for (unsigned i = 0; i < CHAIN_LENGTH; i++) {
        assert_int_equal(atts[i].done_calls, 1);
        assert_int_equal(atts[i].outcome.kind, CP_OUTCOME_DONE);
    }
}

/* ---- the long suite: keepalive and connect timeouts take seconds ---------------------- */

/* An idle session outlives its keepalive (PINGREQ from the misc timer); a broker that stops
 * answering is dropped after it, and the attempt waiting on it is retried. */
static void test_keepalive(void **state)
{
    struct fx *f = *state;
    char err[256];
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", "reply_topic",
                               "devices/+/replies", "keepalive_s", "5", NULL),
                     0);
    assert_true(run_until_connected(f, true));
    run_for(f, 7000);
    struct cp_mqtt_stats st = exec_stats(f);
    assert_true(st.connected);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.disconnects, 0);

    assert_int_equal(exec_start(f, att_make(0, "dev-k", 5, 1, "errors")), 0);
    assert_true(run_until_published(f, 1));
    mqtt_broker_pause(&f->broker, true);
    assert_true(run_until_done_ms(f, 1, KEEPALIVE_WAIT_MS));
    assert_int_equal(atts[0].outcome.kind, CP_OUTCOME_RETRY);
    assert_string_equal(atts[0].outcome.reason, "broker disconnected");
    assert_int_equal(exec_stats(f).disconnects, 1);
    mqtt_broker_pause(&f->broker, false);
    assert_true(run_until_connected(f, true));
    assert_int_equal(exec_stats(f).connects, 2);
}

/* A broker that accepts the TCP connection but never sends CONNACK: what waits for it is
 * retried after CP_MQTT_CONNECT_TIMEOUT_MS. */
static void test_connect_timeout(void **state)
{
    struct fx *f = *state;
    char err[256];
    mqtt_broker_pause(&f->broker, true);
    assert_int_equal(exec_init(f, err, sizeof(err), "topic", "devices/{id}/commands", NULL), 0);
    assert_int_equal(exec_start(f, att_make(0, "dev-c", 5, 1, "errors")), 0);
    assert_true(run_until_done_ms(f, 1, KEEPALIVE_WAIT_MS));
    assert_int_equal(atts[0].outcome.kind, CP_OUTCOME_RETRY);
    struct cp_mqtt_stats st = exec_stats(f);
    assert_non_null(strstr(st.last_error, "no CONNACK"));
    assert_int_equal(st.connect_failures, 1);
    mqtt_broker_pause(&f->broker, false);
    assert_true(run_until_connected(f, true));
}

int main(int argc, char **argv)
{
    if (!mqtt_broker_available()) {
        fprintf(stderr, "test_exec_mqtt: %s not installed: skipped\n", MQTT_BROKER_PATH);
        return 77;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: test_exec_mqtt PATH_OF_sigflow-device-sim [long]\n");
        return 2;
    }
    sim_path = argv[1];
    mosquitto_lib_init();
    if (argc > 2 && strcmp(argv[2], "long") == 0) {
        const struct CMUnitTest long_tests[] = {
            cmocka_unit_test_setup_teardown(test_keepalive, fx_setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_connect_timeout, fx_setup, fx_teardown),
        };
        int rc = cmocka_run_group_tests(long_tests, NULL, NULL);
        mosquitto_lib_cleanup();
        return rc;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_errors, fx_setup_no_broker, fx_teardown),
        cmocka_unit_test_setup_teardown(test_no_broker, fx_setup_no_broker, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, fx_setup_no_broker, fx_teardown),
        cmocka_unit_test_setup_teardown(test_publish_puback, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_publish_qos0, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reply_result, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reply_failure, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reply_templated, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reply_fields, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_broker_paused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_auth, fx_setup_no_broker, fx_teardown),
        cmocka_unit_test_setup_teardown(test_fini_from_done, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_refused, fx_setup_no_broker, fx_teardown),
        cmocka_unit_test_setup_teardown(test_broker_killed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_abandon, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_thousand_in_flight, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_start_from_done, fx_setup, fx_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mosquitto_lib_cleanup();
    return rc;
}
