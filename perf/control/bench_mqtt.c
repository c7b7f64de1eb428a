/*
 * bench_mqtt — the mqtt executor's throughput through a local mosquitto broker (started
 * here on 127.0.0.1, a free port): tasks/s with a window of attempts in flight, refilled
 * from done as a dispatcher would, and each attempt's start-to-done latency.
 *   mqtt_puback      qos 1, done on PUBACK (the broker has the command)
 *   mqtt_device_rtt  qos 1 with reply_topic: done on sigflow-device-sim's answer (command to
 *                    the device and its reply, both through the broker)
 * Results (perf/bench.h): events_per_s = tasks/s, ack_p50/p99/p999_us = start-to-done,
 * extra cpu_us_per_task = this process's CPU time (user+system) per task; the broker's and
 * the sim's CPU are not counted. Skipped (exit 0, nothing printed) without the broker.
 *
 * usage: bench_mqtt [--quick] [--device-sim PATH]
 *        (default PATH: build/control/sigflow-device-sim, found from this program's path)
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "cp_exec.h"
#include "exec_mqtt.h"
#include "mqtt_broker.h"
#include "sf_proto.h"

#define BM_WINDOW       1000u /* attempts in flight (the dispatcher's concurrency) */
#define BM_TASKS        200000u
#define BM_TASKS_QUICK  5000u
#define BM_RTT_TASKS    100000u
#define BM_CONNECT_MS   5000u
#define BM_RUN_LIMIT_MS 120000u /* a run that takes longer failed */

struct bm_slot {
    struct chan_task task;
    struct cp_attempt a;
};

struct bm {
    struct cp_loop *loop;
    struct cp_executor x;
    struct bm_slot *slot; /* [BM_WINDOW] */
    uint64_t *latency_ns; /* [tasks] */
    uint32_t tasks, started, finished, failed;
    bool refill_failed;
};

static struct bm *bm_current; /* for done (the executor passes x only) */

static void bm_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bm_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_mqtt: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* Fill slot s with task number n (id dev-<n mod 10000>, seq n + 1) and start it. */
static void bm_start(struct bm *b, struct bm_slot *s, uint32_t n)
{
    char id[16];
    int id_len = snprintf(id, sizeof(id), "dev-%u", n % 10000u);
    memset(&s->task, 0, sizeof(s->task));
    struct chan_task *k = &s->task;
    k->kind = CHAN_TASK_RUN;
    memcpy(k->type, "device", 6);
    k->type_len = 6;
    memcpy(k->id, id, (size_t)id_len);
    k->id_len = (uint8_t)id_len;
    memcpy(k->activity, "reprovision", 11);
    k->activity_len = 11;
    k->seq = n + 1;
    k->attempt = 1;
    k->key_hi = 0xfeed;
    k->key_lo = n;
    k->nargs = 2;
    snprintf(k->param[0], sizeof(k->param[0]), "device");
    snprintf(k->param[1], sizeof(k->param[1]), "reason");
    struct sf_value v[2] = {
        { .type = SF_VAL_TEXT, .text = { id, (uint16_t)id_len } },
        { .type = SF_VAL_TEXT, .text = { "errors", 6 } },
    };
    int len = sf_fields_encode(k->args, sizeof(k->args), v, 2);
    if (len <= 0)
        bm_die("sf_fields_encode: %d", len);
    k->args_len = (uint16_t)len;
    s->a.task = k; /* cp_attempt_fill writes the rest (no 9 KiB memset per task) */
    s->a.attempt = 1;
    s->a.exec_state = NULL;
    if (cp_attempt_fill(&s->a) != 0)
        bm_die("cp_attempt_fill");
    s->a.started_ns = cp_now_ns();
    int rc = b->x.ops->start(&b->x, &s->a);
    if (rc != 0)
        bm_die("start: %s", strerror(-rc));
    b->started++;
}

static void bm_done(struct cp_executor *x, struct cp_attempt *a, const struct cp_outcome *o)
{
    struct bm *b = bm_current;
    (void)x;
    if (o->kind != CP_OUTCOME_DONE) {
        fprintf(stderr, "bench_mqtt: attempt %s: %s\n", a->seq, o->reason);
        b->failed++;
    }
    b->latency_ns[b->finished++] = cp_now_ns() - a->started_ns;
    if (b->started < b->tasks) {
        struct bm_slot *s = (struct bm_slot *)((char *)a - offsetof(struct bm_slot, a));
        bm_start(b, s, b->started);
    }
}

static double bm_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double bm_pct_us(const uint64_t *sorted, uint32_t n, double p)
{
    uint32_t i = (uint32_t)(p * (double)(n - 1));
    return (double)sorted[i] / 1000.0;
}

/* Run tasks attempts through an executor configured by kv[0..nkv); emit result name. */
static void bm_run(const char *name, const struct mqtt_broker *br, struct cp_kv *kv, unsigned nkv,
                   uint32_t tasks)
{
    struct bm b = { .tasks = tasks };
    b.loop = cp_loop_new();
    b.slot = calloc(BM_WINDOW, sizeof(*b.slot));
    b.latency_ns = calloc(tasks, sizeof(*b.latency_ns));
    if (!b.loop || !b.slot || !b.latency_ns)
        bm_die("out of memory");
    snprintf(kv[nkv].key, sizeof(kv[nkv].key), "port");
    snprintf(kv[nkv].value, sizeof(kv[nkv].value), "%u", br->port);
    kv[nkv].line = nkv + 1;
    nkv++;
    b.x.ops = &cp_exec_mqtt_ops;
    b.x.loop = b.loop;
    b.x.done = bm_done;
    b.x.concurrency = BM_WINDOW;
    snprintf(b.x.name, sizeof(b.x.name), "bench");
    char err[256];
    if (cp_exec_mqtt_ops.init(&b.x, kv, nkv, err, sizeof(err)) != 0)
        bm_die("init: %s", err);
    bm_current = &b;
    struct cp_mqtt_stats st;
    uint64_t until = cp_now_ns() + BM_CONNECT_MS * 1000000ull;
    do {
        cp_loop_run_once(b.loop, 10);
        cp_exec_mqtt_stats(&b.x, &st);
    } while (!st.connected && cp_now_ns() < until);
    if (!st.connected)
        bm_die("no connection to the broker: %s", st.last_error);

    double cpu0 = bm_cpu_s();
    uint64_t t0 = bench_mono_ns(), c0 = bench_tsc();
    bench_region_begin();
    for (uint32_t i = 0; i < BM_WINDOW && b.started < tasks; i++)
        bm_start(&b, &b.slot[i], b.started);
    until = cp_now_ns() + BM_RUN_LIMIT_MS * 1000000ull;
    while (b.finished < tasks && cp_now_ns() < until)
        cp_loop_run_once(b.loop, 100);
    bench_region_end();
    uint64_t c1 = bench_tsc(), t1 = bench_mono_ns();
    double cpu = bm_cpu_s() - cpu0;
    if (b.finished < tasks)
        bm_die("%s: %u of %u tasks finished in %u ms", name, b.finished, tasks, BM_RUN_LIMIT_MS);
    if (b.failed)
        bm_die("%s: %u tasks did not succeed", name, b.failed);

    qsort(b.latency_ns, tasks, sizeof(uint64_t), bench_cmp_u64);
    double s = (double)(t1 - t0) / 1e9;
    struct bench_result r = BENCH_RESULT_INIT(name);
    r.events = tasks;
    r.events_per_s = (double)tasks / s;
    r.cycles_per_event = (double)(c1 - c0) / (double)tasks;
    r.ack_p50_us = bm_pct_us(b.latency_ns, tasks, 0.50);
    r.ack_p99_us = bm_pct_us(b.latency_ns, tasks, 0.99);
    r.ack_p999_us = bm_pct_us(b.latency_ns, tasks, 0.999);
    char extra[128];
    snprintf(extra, sizeof(extra), "\"cpu_us_per_task\":%.3g,\"in_flight\":%u",
             cpu * 1e6 / (double)tasks, BM_WINDOW);
    r.extra_json = extra;
    bench_emit(&r);

    b.x.ops->fini(&b.x);
    bm_current = NULL;
    cp_loop_free(b.loop);
    free(b.slot);
    free(b.latency_ns);
}

/* The device sim next to this program in the build tree, or NULL. */
static const char *bm_sim_default(char *buf, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return NULL;
    self[n] = '\0';
    snprintf(buf, cap, "%s/../../control/sigflow-device-sim", dirname(self));
    return access(buf, X_OK) == 0 ? buf : NULL;
}

int main(int argc, char **argv)
{
    bool quick = bench_has_flag(argc, argv, "--quick");
    char sim_buf[PATH_MAX + 64];
    const char *sim = bm_sim_default(sim_buf, sizeof(sim_buf));
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--device-sim") == 0)
            sim = argv[i + 1];
    if (!mqtt_broker_available()) {
        fprintf(stderr, "bench_mqtt: %s not installed: skipped\n", MQTT_BROKER_PATH);
        return 0;
    }
    struct mqtt_broker br = { 0 };
    int rc = mqtt_broker_start(&br);
    if (rc != 0)
        bm_die("broker: %s", strerror(-rc));

    struct cp_kv kv[4];
    memset(kv, 0, sizeof(kv));
    snprintf(kv[0].key, sizeof(kv[0].key), "topic");
    snprintf(kv[0].value, sizeof(kv[0].value), "devices/{id}/commands");
    kv[0].line = 1;
    bm_run("mqtt_puback", &br, kv, 1, quick ? BM_TASKS_QUICK : BM_TASKS);

    if (!sim) {
        fprintf(stderr, "bench_mqtt: sigflow-device-sim not found (--device-sim PATH): "
                        "mqtt_device_rtt skipped\n");
    } else {
        pid_t pid = mqtt_sim_start(&br, sim, NULL);
        if (pid < 0)
            bm_die("device sim: %s", strerror((int)-pid));
        memset(kv, 0, sizeof(kv));
        snprintf(kv[0].key, sizeof(kv[0].key), "topic");
        snprintf(kv[0].value, sizeof(kv[0].value), "devices/{id}/commands");
        kv[0].line = 1;
        snprintf(kv[1].key, sizeof(kv[1].key), "reply_topic");
        snprintf(kv[1].value, sizeof(kv[1].value), "devices/+/replies");
        kv[1].line = 2;
        bm_run("mqtt_device_rtt", &br, kv, 2, quick ? BM_TASKS_QUICK : BM_RTT_TASKS);
        mqtt_child_stop(pid);
    }
    mqtt_broker_cleanup(&br);
    return 0;
}
