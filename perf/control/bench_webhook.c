/*
 * bench_webhook — the webhook executor's throughput: tasks per second posted through
 * libcurl multi on one cp_loop thread to a local libmicrohttpd receiver (another thread
 * of this process, 127.0.0.1, keep-alive), CONCURRENCY attempts in flight, and the
 * latency of one attempt (start to done). See perf/bench.h for the output contract.
 *
 * Usage: bench_webhook [--quick] [--n TASKS] [--concurrency C] [--server-threads T]
 * Defaults: 20000 tasks (2000 with --quick), concurrency 64, one receiver thread.
 *
 * Each done callback starts the next task, the way the dispatcher keeps its concurrency
 * bound filled: cp_attempt_fill (the body) + start are inside the measured region. A
 * warm-up of 2 x CONCURRENCY tasks opens the connections first, so the figure is the
 * steady state over reused connections. The receiver answers every POST 200
 * {"result":1} from one prepared response; on a small machine it shares the cores with
 * the executor, so the figure is a lower bound of the executor alone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "bench.h"
#include "cp_exec.h"

#define BENCH_TASKS_DEFAULT       20000u
#define BENCH_TASKS_QUICK         2000u
#define BENCH_CONCURRENCY_DEFAULT 64u
#define BENCH_CONCURRENCY_MAX     1024u
#define BENCH_SERVER_THREADS_MAX  16u
#define BENCH_URL_MAX             256u
#define BENCH_TIMEOUT_S           120u /* the whole run; a stuck run fails */
#define BENCH_RESPONSE            "{\"result\":1}"

struct slot {
    struct chan_task task;
    struct cp_attempt a;
    uint64_t task_index; /* the task this slot runs now */
};

struct bench {
    struct cp_loop *loop;
    struct cp_executor x;
    struct slot *slots;
    uint64_t next, total; /* tasks started, tasks to run */
    uint64_t done, failed;
    uint64_t *latency_ns;   /* per task, for the measured ones */
    uint64_t measured_from; /* tasks before this index are the warm-up */
};

static struct MHD_Response *g_response;
static atomic_uint_fast64_t g_connections; /* the receiver's accepted connections */

static void recv_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                            enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)c;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&g_connections, 1);
}

/* ---- the receiver ------------------------------------------------------------------------ */

static enum MHD_Result recv_handler(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    static int first_call;
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) {
        *con_cls = &first_call;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0; /* the body is read and dropped */
        return MHD_YES;
    }
    return MHD_queue_response(c, MHD_HTTP_OK, g_response);
}

static struct MHD_Daemon *recv_start(unsigned threads, uint16_t *port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = 0 };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_response = MHD_create_response_from_buffer(sizeof(BENCH_RESPONSE) - 1, (void *)BENCH_RESPONSE,
                                                 MHD_RESPMEM_PERSISTENT);
    if (!g_response)
        return NULL;
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO, 0, NULL, NULL, recv_handler,
                         NULL, MHD_OPTION_SOCK_ADDR, &sin, MHD_OPTION_THREAD_POOL_SIZE, threads,
                         MHD_OPTION_CONNECTION_LIMIT, BENCH_CONCURRENCY_MAX * 2,
                         MHD_OPTION_NOTIFY_CONNECTION, recv_connection, NULL, MHD_OPTION_END);
    if (!d)
        return NULL;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : 0;
    return d;
}

/* ---- the executor's side --------------------------------------------------------------- */

/* Put task i into slot s and start it. Returns start's value. */
static int bench_start(struct bench *b, struct slot *s, uint64_t i)
{
    struct chan_task *t = &s->task;
    t->seq = (uint32_t)i;
    t->key_lo = i;
    t->id_len = (uint8_t)snprintf(t->id, sizeof(t->id), "order-%llu", (unsigned long long)i);
    s->task_index = i;
    s->a.task = t;
    s->a.attempt = 1;
    if (cp_attempt_fill(&s->a) != 0)
        return -EINVAL;
    s->a.started_ns = cp_now_ns();
    return b->x.ops->start(&b->x, &s->a);
}

static void bench_done(struct cp_executor *x, struct cp_attempt *a, const struct cp_outcome *o)
{
    struct bench *b = x->done_arg;
    struct slot *s = (struct slot *)((char *)a - offsetof(struct slot, a));
    if (o->kind != CP_OUTCOME_DONE || !o->has_result || o->result != 1) {
        if (b->failed == 0)
            fprintf(stderr, "bench_webhook: task %llu: %d %s\n", (unsigned long long)s->task_index,
                    o->kind, o->reason);
        b->failed++;
    }
    if (s->task_index >= b->measured_from)
        b->latency_ns[s->task_index - b->measured_from] = cp_now_ns() - a->started_ns;
    b->done++;
    if (b->next < b->total && bench_start(b, s, b->next++) != 0)
        b->failed++;
}

/* Run tasks [b->next, until) with `concurrency` in flight; returns 0 or -ETIMEDOUT. */
static int bench_run(struct bench *b, uint64_t until, unsigned concurrency)
{
    b->total = until;
    for (unsigned k = 0; k < concurrency && b->next < b->total; k++)
        if (bench_start(b, &b->slots[k], b->next++) != 0)
            return -EIO;
    uint64_t end = cp_now_ns() + BENCH_TIMEOUT_S * 1000000000ull;
    while (b->done < b->total) {
        if (cp_now_ns() > end || cp_loop_run_once(b->loop, 100) < 0)
            return -ETIMEDOUT;
    }
    return 0;
}

static void bench_task_init(struct chan_task *t)
{
    memset(t, 0, sizeof(*t));
    t->kind = CHAN_TASK_RUN;
    t->type_len = 5;
    memcpy(t->type, "order", 5);
    t->activity_len = 6;
    memcpy(t->activity, "notify", 6);
    t->attempt = 1;
    t->key_hi = 0x5f3759df5f3759dfull;
}

/* CPU time of the calling thread (the loop's: executor, curl, kernel work of its syscalls). */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned arg_u(int argc, char **argv, const char *flag, unsigned dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return (unsigned)strtoul(argv[i + 1], NULL, 10);
    return dflt;
}

int main(int argc, char **argv)
{
    bool quick = bench_has_flag(argc, argv, "--quick");
    uint64_t n = arg_u(argc, argv, "--n", quick ? BENCH_TASKS_QUICK : BENCH_TASKS_DEFAULT);
    unsigned conc = arg_u(argc, argv, "--concurrency", BENCH_CONCURRENCY_DEFAULT);
    unsigned threads = arg_u(argc, argv, "--server-threads", 1);
    if (n == 0 || conc == 0 || conc > BENCH_CONCURRENCY_MAX || threads == 0 ||
        threads > BENCH_SERVER_THREADS_MAX) {
        fprintf(stderr, "bench_webhook: --n >= 1, --concurrency 1..%u, --server-threads 1..%u\n",
                BENCH_CONCURRENCY_MAX, BENCH_SERVER_THREADS_MAX);
        return 2;
    }
    uint16_t port = 0;
    struct MHD_Daemon *d = recv_start(threads, &port);
    if (!d || port == 0) {
        fprintf(stderr, "bench_webhook: the receiver did not start\n");
        return 1;
    }
    struct bench b = { .loop = cp_loop_new() };
    b.slots = calloc(conc, sizeof(*b.slots));
    b.latency_ns = calloc(n, sizeof(*b.latency_ns));
    if (!b.loop || !b.slots || !b.latency_ns) {
        fprintf(stderr, "bench_webhook: no memory\n");
        return 1;
    }
    for (unsigned k = 0; k < conc; k++)
        bench_task_init(&b.slots[k].task);
    b.x.ops = &cp_exec_webhook_ops;
    snprintf(b.x.name, sizeof(b.x.name), "bench");
    b.x.loop = b.loop;
    b.x.done = bench_done;
    b.x.done_arg = &b;
    b.x.concurrency = conc;
    struct cp_kv kv = { .key = "url", .line = 1 };
    snprintf(kv.value, sizeof(kv.value), "http://127.0.0.1:%u/hook/{id}", port);
    char err[256];
    if (b.x.ops->init(&b.x, &kv, 1, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_webhook: init: %s\n", err);
        return 1;
    }

    uint64_t warmup = 2ull * conc;
    b.measured_from = warmup;
    if (bench_run(&b, warmup, conc) != 0 || b.failed) {
        fprintf(stderr, "bench_webhook: warm-up failed\n");
        return 1;
    }
    double hz = bench_tsc_hz();
    bench_region_begin();
    uint64_t conns0 = atomic_load(&g_connections);
    uint64_t cpu0 = thread_cpu_ns();
    uint64_t t0 = bench_mono_ns(), c0 = bench_tsc();
    int rc = bench_run(&b, warmup + n, conc);
    uint64_t t1 = bench_mono_ns(), c1 = bench_tsc();
    uint64_t cpu1 = thread_cpu_ns();
    uint64_t conns = atomic_load(&g_connections) - conns0;
    bench_region_end();
    if (rc != 0 || b.failed) {
        fprintf(stderr, "bench_webhook: %s, %llu failed\n", rc ? "timed out" : "done",
                (unsigned long long)b.failed);
        return 1;
    }
    qsort(b.latency_ns, n, sizeof(*b.latency_ns), bench_cmp_u64);
    double secs = (double)(t1 - t0) / 1e9;
    char extra[256];
    snprintf(extra, sizeof(extra),
             "\"concurrency\":%u,\"server_threads\":%u,\"latency_p50_us\":%.1f,"
             "\"latency_p99_us\":%.1f,\"loop_cpu_us_per_task\":%.2f,\"new_connections\":%llu,\"tsc_"
             "ghz\":%.3f",
             conc, threads, (double)b.latency_ns[n / 2] / 1e3,
             (double)b.latency_ns[n * 99 / 100] / 1e3, (double)(cpu1 - cpu0) / 1e3 / (double)n,
             (unsigned long long)conns, hz / 1e9);
    struct bench_result r = BENCH_RESULT_INIT("webhook_tasks");
    r.events_per_s = (double)n / secs;
    r.cycles_per_event = (double)(c1 - c0) / (double)n;
    r.events = n;
    r.extra_json = extra;
    bench_emit(&r);

    b.x.ops->fini(&b.x);
    cp_loop_free(b.loop);
    MHD_stop_daemon(d);
    MHD_destroy_response(g_response);
    free(b.latency_ns);
    free(b.slots);
    return 0;
}
