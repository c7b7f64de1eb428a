/*
 * sigflow-device-sim — simulated devices for the mqtt executor (exec_mqtt.c): subscribes to
 * a command filter and answers each command (the executor's JSON body) on the command's
 * reply topic with {"idempotency_key": <the command's>, "ok": true, "result": N}.
 *
 * usage: sigflow-device-sim [--host H] [--port P] [--topic FILTER] [--reply-topic-format F]
 *                           [--delay-ms N] [--fail-every N] [--count N] [--result N] [--qos Q]
 *   --topic               command filter (default devices/+/commands)
 *   --reply-topic-format  reply topic, {id} standing for the command's "id"
 *                         (default devices/{id}/replies)
 *   --delay-ms N          answer N ms after the command came (default 0: at once)
 *   --fail-every N        answer every Nth command {"ok": false, "error": "simulated failure"}
 *   --count N             exit 0 once N commands are answered and the answers acknowledged
 *   --result N            the result of every answer (default: the command's "seq")
 *   --qos Q               0 or 1, for the subscription and the answers (default 1)
 *
 * stdout: one line per command answered, "ID KEY ok RESULT" or "ID KEY failed"; stderr:
 * "sigflow-device-sim: subscribed to FILTER" once the broker granted the subscription (tests
 * wait for it), and errors. SIGINT/SIGTERM: exit 0. Usage errors: exit 2; a broker that
 * cannot be reached at start: exit 1 (afterwards a lost connection is reconnected).
 * A simple tool: libmosquitto's own blocking loop (mosquitto_loop).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEVSIM_TOPIC_MAX     512u
#define DEVSIM_ID_MAX        256u
#define DEVSIM_PENDING_MAX   100000u /* delayed answers held at once; more are dropped */
#define DEVSIM_LOOP_WAIT_MS  100     /* mosquitto_loop's wait when nothing is due sooner */
#define DEVSIM_RECONNECT_MS  200
#define DEVSIM_COMMAND_BYTES 65536u /* larger messages are not commands */

/* One answer waiting for its time (--delay-ms). */
struct devsim_answer {
    struct devsim_answer *next;
    uint64_t due_ns;
    char topic[DEVSIM_TOPIC_MAX];
    char *payload;
};

struct devsim {
    struct mosquitto *mosq;
    const char *host, *filter, *reply_format;
    int port, qos;
    unsigned long delay_ms, fail_every, count;
    bool fixed_result;
    long long result;
    unsigned long handled; /* commands answered or scheduled */
    unsigned long unacked; /* qos 1 answers published, PUBACK not yet seen */
    struct devsim_answer *head, *tail;
    unsigned long pending;
};

static volatile sig_atomic_t devsim_stop;

static void devsim_on_signal(int sig)
{
    (void)sig;
    devsim_stop = 1;
}

static uint64_t devsim_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* fmt with every "{id}" replaced by id, into out[0..DEVSIM_TOPIC_MAX). Returns 0, or -1 when
 * it does not fit. */
static int devsim_reply_topic(const char *fmt, const char *id, char *out)
{
    size_t len = 0, id_len = strlen(id);
    for (const char *p = fmt; *p;) {
        bool is_id = strncmp(p, "{id}", 4) == 0;
        size_t k = is_id ? id_len : 1;
        if (len + k >= DEVSIM_TOPIC_MAX)
            return -1;
        memcpy(out + len, is_id ? id : p, k);
        len += k;
        p += is_id ? 4 : 1;
    }
    out[len] = '\0';
    return 0;
}

/* Publish one answer; counts it as awaiting its PUBACK at qos 1. Errors go to stderr (the
 * device dropped its answer: the executor's attempt times out and is retried). */
static void devsim_publish(struct devsim *d, const char *topic, const char *payload)
{
    int rc = mosquitto_publish(d->mosq, NULL, topic, (int)strlen(payload), payload, d->qos, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "sigflow-device-sim: publish %s: %s\n", topic, mosquitto_strerror(rc));
        return;
    }
    if (d->qos > 0)
        d->unacked++;
}

/* The answer to command j (a JSON object), as text; NULL when it is not a command. */
static char *devsim_answer_make(struct devsim *d, const json_t *j, char *topic)
{
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *key = json_string_value(json_object_get(j, "idempotency_key"));
    if (!id || !key || strlen(id) >= DEVSIM_ID_MAX || strpbrk(id, "+#")) {
        fprintf(stderr, "sigflow-device-sim: not a command (no usable id or idempotency_key)\n");
        return NULL;
    }
    if (devsim_reply_topic(d->reply_format, id, topic) != 0) {
        fprintf(stderr, "sigflow-device-sim: reply topic for %s too long\n", id);
        return NULL;
    }
    unsigned long n = d->handled + 1;
    bool ok = d->fail_every == 0 || n % d->fail_every != 0;
    json_int_t result = d->fixed_result ? d->result : json_integer_value(json_object_get(j, "seq"));
    json_t *a = ok ? json_pack("{s:s, s:b, s:I}", "idempotency_key", key, "ok", 1, "result", result)
                   : json_pack("{s:s, s:b, s:s}", "idempotency_key", key, "ok", 0, "error",
                               "simulated failure");
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    if (!text)
        return NULL;
    d->handled = n;
    if (ok)
        printf("%s %s ok %lld\n", id, key, (long long)result);
    else
        printf("%s %s failed\n", id, key);
    return text;
}

static void devsim_on_message(struct mosquitto *mosq, void *arg,
                              const struct mosquitto_message *msg)
{
    struct devsim *d = arg;
    (void)mosq;
    if (d->count && d->handled >= d->count)
        return; /* done: the rest is someone else's */
    if (msg->payloadlen <= 0 || (unsigned)msg->payloadlen > DEVSIM_COMMAND_BYTES)
        return;
    json_error_t err;
    json_t *j = json_loadb(msg->payload, (size_t)msg->payloadlen, 0, &err);
    char topic[DEVSIM_TOPIC_MAX];
    char *payload = json_is_object(j) ? devsim_answer_make(d, j, topic) : NULL;
    json_decref(j);
    if (!payload)
        return;
    if (d->delay_ms == 0) {
        devsim_publish(d, topic, payload);
        free(payload);
        return;
    }
    struct devsim_answer *w = d->pending < DEVSIM_PENDING_MAX ? calloc(1, sizeof(*w)) : NULL;
    if (!w) {
        fprintf(stderr, "sigflow-device-sim: %lu answers waiting: one dropped\n", d->pending);
        free(payload);
        return;
    }
    w->due_ns = devsim_now_ns() + d->delay_ms * 1000000ull;
    snprintf(w->topic, sizeof(w->topic), "%s", topic);
    w->payload = payload;
    if (d->tail)
        d->tail->next = w;
    else
        d->head = w;
    d->tail = w;
    d->pending++;
}

/* Publish the delayed answers now due (one delay for all: the list is in due order). */
static void devsim_flush_due(struct devsim *d)
{
    uint64_t now = devsim_now_ns();
    while (d->head && d->head->due_ns <= now) {
        struct devsim_answer *w = d->head;
        d->head = w->next;
        if (!d->head)
            d->tail = NULL;
        d->pending--;
        devsim_publish(d, w->topic, w->payload);
        free(w->payload);
        free(w);
    }
}

static void devsim_on_connect(struct mosquitto *mosq, void *arg, int rc)
{
    struct devsim *d = arg;
    if (rc != 0) {
        fprintf(stderr, "sigflow-device-sim: %s\n", mosquitto_connack_string(rc));
        return;
    }
    rc = mosquitto_subscribe(mosq, NULL, d->filter, d->qos);
    if (rc != MOSQ_ERR_SUCCESS)
        fprintf(stderr, "sigflow-device-sim: subscribe: %s\n", mosquitto_strerror(rc));
}

static void devsim_on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n,
                                const int *granted)
{
    struct devsim *d = arg;
    (void)mosq, (void)mid;
    if (n >= 1 && granted[0] < 0x80)
        fprintf(stderr, "sigflow-device-sim: subscribed to %s\n", d->filter);
    else
        fprintf(stderr, "sigflow-device-sim: subscription to %s refused\n", d->filter);
}

static void devsim_on_publish(struct mosquitto *mosq, void *arg, int mid)
{
    struct devsim *d = arg;
    (void)mosq, (void)mid;
    if (d->unacked > 0)
        d->unacked--;
}

/* Milliseconds mosquitto_loop may wait: until the next answer is due, at most
 * DEVSIM_LOOP_WAIT_MS (so a signal or --count is seen soon). */
static int devsim_wait_ms(const struct devsim *d)
{
    if (!d->head)
        return DEVSIM_LOOP_WAIT_MS;
    uint64_t now = devsim_now_ns();
    if (d->head->due_ns <= now)
        return 0;
    uint64_t ms = (d->head->due_ns - now + 999999) / 1000000;
    return ms < DEVSIM_LOOP_WAIT_MS ? (int)ms : DEVSIM_LOOP_WAIT_MS;
}

static int devsim_run(struct devsim *d)
{
    while (!devsim_stop) {
        int rc = mosquitto_loop(d->mosq, devsim_wait_ms(d), 1);
        if (rc != MOSQ_ERR_SUCCESS && !devsim_stop) {
            fprintf(stderr, "sigflow-device-sim: %s: reconnecting\n", mosquitto_strerror(rc));
            struct timespec ts = { 0, DEVSIM_RECONNECT_MS * 1000000L };
            nanosleep(&ts, NULL);
            mosquitto_reconnect(d->mosq);
            continue;
        }
        devsim_flush_due(d);
        fflush(stdout);
        if (d->count && d->handled >= d->count && !d->head && d->unacked == 0)
            break;
    }
    return 0;
}

static void devsim_usage(void)
{
    fprintf(stderr, "usage: sigflow-device-sim [--host H] [--port P] [--topic FILTER]\n"
                    "         [--reply-topic-format F] [--delay-ms N] [--fail-every N]\n"
                    "         [--count N] [--result N] [--qos 0|1]\n");
}

/* A non-negative integer option; exits 2 on anything else. */
static unsigned long devsim_number(const char *opt, const char *v, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n > max) {
        fprintf(stderr, "sigflow-device-sim: --%s: a number from 0 to %lu\n", opt, max);
        exit(2);
    }
    return n;
}

static void devsim_args(struct devsim *d, int argc, char **argv)
{
    static const struct option opts[] = {
        { "host", required_argument, NULL, 'h' },
        { "port", required_argument, NULL, 'p' },
        { "topic", required_argument, NULL, 't' },
        { "reply-topic-format", required_argument, NULL, 'r' },
        { "delay-ms", required_argument, NULL, 'd' },
        { "fail-every", required_argument, NULL, 'f' },
        { "count", required_argument, NULL, 'c' },
        { "result", required_argument, NULL, 'R' },
        { "qos", required_argument, NULL, 'q' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            d->host = optarg;
            break;
        case 'p':
            d->port = (int)devsim_number("port", optarg, 65535);
            break;
        case 't':
            d->filter = optarg;
            break;
        case 'r':
            d->reply_format = optarg;
            break;
        case 'd':
            d->delay_ms = devsim_number("delay-ms", optarg, 3600000);
            break;
        case 'f':
            d->fail_every = devsim_number("fail-every", optarg, 1000000000);
            break;
        case 'c':
            d->count = devsim_number("count", optarg, 1000000000000ul);
            break;
        case 'R':
            d->fixed_result = true;
            d->result = (long long)devsim_number("result", optarg, (unsigned long)INT64_MAX);
            break;
        case 'q':
            d->qos = (int)devsim_number("qos", optarg, 1);
            break;
        default:
            devsim_usage();
            exit(2);
        }
    }
    if (optind != argc || d->port == 0 || mosquitto_sub_topic_check(d->filter) != 0) {
        devsim_usage();
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct devsim d = {
        .host = "127.0.0.1",
        .port = 1883,
        .filter = "devices/+/commands",
        .reply_format = "devices/{id}/replies",
        .qos = 1,
    };
    devsim_args(&d, argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = { .sa_handler = devsim_on_signal }; /* no SA_RESTART: wake the loop */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    mosquitto_lib_init();
    char id[64];
    snprintf(id, sizeof(id), "sigflow-device-sim-%ld", (long)getpid());
    d.mosq = mosquitto_new(id, true, &d);
    if (!d.mosq) {
        fprintf(stderr, "sigflow-device-sim: mosquitto_new: %s\n", strerror(errno));
        return 1;
    }
    mosquitto_connect_callback_set(d.mosq, devsim_on_connect);
    mosquitto_subscribe_callback_set(d.mosq, devsim_on_subscribe);
    mosquitto_message_callback_set(d.mosq, devsim_on_message);
    mosquitto_publish_callback_set(d.mosq, devsim_on_publish);
    mosquitto_int_option(d.mosq, MOSQ_OPT_SEND_MAXIMUM, 65535);
    int rc = mosquitto_connect(d.mosq, d.host, d.port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "sigflow-device-sim: connect %s:%d: %s\n", d.host, d.port,
                mosquitto_strerror(rc));
        return 1;
    }
    rc = devsim_run(&d);
    mosquitto_disconnect(d.mosq);
    mosquitto_destroy(d.mosq);
    mosquitto_lib_cleanup();
    while (d.head) {
        struct devsim_answer *w = d.head;
        d.head = w->next;
        free(w->payload);
        free(w);
    }
    return rc;
}
