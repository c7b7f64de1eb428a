/*
 * bench_chan — the activity channel between an owner core and sigflow-control, measured
 * between two processes (fork), each pinned to its own CPU when two are available:
 *
 *   ring_spin          the memfd SPSC ring (chan_push / chan_pop); the consumer busy-polls
 *   ring_sleep         the same ring; the consumer sleeps BC_SLEEP_NS after BC_IDLE_SPINS
 *                      empty polls in a row
 *   seqpacket          a unix SOCK_SEQPACKET socketpair, one message per send / recv
 *   seqpacket_mmsg32   the same socket, sendmmsg / recvmmsg batches of BC_BURST
 *
 * in four shapes: `tasks` (owner → control, CHAN_TASK_SLOT_BYTES messages, a stream),
 * `results` (control → owner, CHAN_RESULT_SLOT_BYTES, a stream), `rtt` (one task out, its
 * result back, one at a time) and `rtt_idle` (the same with BC_IDLE_GAP_NS between two, so
 * that the consumer is idle when a task comes: its wake-up is in the latency); the batched
 * socket has no round-trip shapes. Rings are set up as the daemon does: the owner's side
 * creates the file and hands it over chan_hello with SCM_RIGHTS, the control's side
 * attaches it. Then, in this process alone, the cost of looking at an empty inbound ring or
 * socket (`*_empty_poll`): what an owner core pays every loop pass for its results.
 *
 * This process is always the producer and the one measured. It never blocks (an owner core
 * may not): a full ring or EAGAIN is retried. Socket consumers block in recv (the control
 * process would sleep in epoll). Per line:
 *   events_per_s             messages/s, first send to the consumer's last receive
 *                            (CLOCK_MONOTONIC in both); rtt shapes: round trips/s
 *   ns_per_msg               its inverse (streams)
 *   producer_send_ns_p50     TSC inside one send call that moved messages, per message,
 *                            median over calls (rdtsc's own cost taken out): what the owner
 *                            core pays per message, robust to preemption on a loaded host
 *   producer_send_ns_mean    the same, mean (preemptions inside a call included)
 *   producer_cpu_ns_per_msg  the producer thread's CPU time per message (retries on a full
 *                            ring and, in rtt shapes, the wait for the reply included)
 *   producer_full_per_msg    send calls that moved nothing (ring full, EAGAIN) per message
 *   consumer_cpu_ns_per_msg, consumer_cpu_share   the consumer's CPU time per message, and
 *                            per second of the run (1.0: a whole CPU)
 *   rtt_ns_p50, rtt_ns_p99   round trips
 * Under callgrind (./sigflow bench) the waits are left out of the counted region; the count
 * is user space only, so a syscall's kernel work is not in instructions_per_event.
 *
 * usage: bench_chan [--quick] [--seconds S]     (default 0.3 s per line, --quick 0.05 s)
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "chan.h"

#define BC_BURST         32u
#define BC_SLOTS         CHAN_SLOTS_DEFAULT
#define BC_MSG_BYTES_MAX CHAN_TASK_SLOT_BYTES
#define BC_SLEEP_NS      50000u /* ring_sleep: the consumer's nap when idle */
#define BC_IDLE_SPINS    64u
#define BC_SAMPLES       (1u << 20) /* send-call and round-trip samples kept */
#define BC_IDLE_GAP_NS   200000u    /* rtt_idle: the producer's pause between round trips */
#define BC_TIME_CHECK    16u        /* producer bursts between two looks at the clock */
#define BC_SECONDS       0.3
#define BC_SECONDS_QUICK 0.05
#define BC_FLAG_LAST     1u

enum bc_transport { BC_RING_SPIN, BC_RING_SLEEP, BC_SEQPACKET, BC_SEQPACKET_MMSG };
enum bc_shape { BC_TASKS, BC_RESULTS, BC_RTT, BC_RTT_IDLE };

static const char *const bc_transport_name[] = { "ring_spin", "ring_sleep", "seqpacket",
                                                 "seqpacket_mmsg32" };
static const char *const bc_shape_name[] = { "tasks", "results", "rtt", "rtt_idle" };

/* The first bytes of every message. */
struct bc_hdr {
    uint64_t seq;
    uint32_t flags;
    uint32_t reserved;
};

/* One process's end of the link under test. */
struct bc_link {
    enum bc_transport tr;
    struct chan ch;
    struct chan_end *out, *in; /* rings: this side's producer and consumer ends */
    int sock;                  /* sockets: the data socket */
    size_t out_bytes, in_bytes;
    uint8_t out_msg[BC_BURST][BC_MSG_BYTES_MAX];
    uint8_t in_msg[BC_BURST][BC_MSG_BYTES_MAX];
    struct iovec out_iov[BC_BURST], in_iov[BC_BURST];
    struct mmsghdr out_mmsg[BC_BURST], in_mmsg[BC_BURST];
};

/* What the consumer sends back when it is done. */
struct bc_peer_stats {
    uint64_t msgs, out_of_order;
    uint64_t last_ns; /* CLOCK_MONOTONIC of the last receive */
    uint64_t cpu_ns;
};

static uint64_t bc_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void bc_die(const char *what, int err)
{
    fprintf(stderr, "bench_chan: %s: %s\n", what, strerror(err));
    exit(1);
}

/* The first two CPUs this process may run on; false when there are fewer. */
static bool bc_two_cpus(int cpu[2])
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return false;
    unsigned seen = 0;
    for (int c = 0; c < CPU_SETSIZE && seen < 2; c++)
        if (CPU_ISSET(c, &set))
            cpu[seen++] = c;
    return seen == 2;
}

static void bc_pin(int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0)
        bc_die("sched_setaffinity", errno);
}

static void bc_link_init(struct bc_link *l, enum bc_transport tr, size_t out_bytes, size_t in_bytes)
{
    memset(l, 0, sizeof(*l));
    l->tr = tr;
    l->sock = -1;
    l->out_bytes = out_bytes;
    l->in_bytes = in_bytes;
    for (unsigned i = 0; i < BC_BURST; i++) {
        l->out_iov[i] = (struct iovec){ .iov_base = l->out_msg[i], .iov_len = out_bytes };
        l->in_iov[i] = (struct iovec){ .iov_base = l->in_msg[i], .iov_len = in_bytes };
        l->out_mmsg[i].msg_hdr = (struct msghdr){ .msg_iov = &l->out_iov[i], .msg_iovlen = 1 };
        l->in_mmsg[i].msg_hdr = (struct msghdr){ .msg_iov = &l->in_iov[i], .msg_iovlen = 1 };
    }
}

/* Ring transports: the owner's side creates the file and hands it over; the control's side
 * attaches it (the handshake of chan.h, on the bench's control socket). */
static void bc_ring_open(struct bc_link *l, int ctl, bool owner_side)
{
    struct chan_hello h = { .magic = CHAN_MAGIC,
                            .version = CHAN_VERSION,
                            .task_slots = BC_SLOTS,
                            .result_slots = BC_SLOTS,
                            .file_bytes = chan_file_bytes(BC_SLOTS, BC_SLOTS),
                            .pid = (int32_t)getpid() };
    int fd, rc;
    if (owner_side) {
        fd = chan_create(0, BC_SLOTS, BC_SLOTS, &l->ch);
        if (fd < 0)
            bc_die("chan_create", -fd);
        h.owner_count = 1;
        if ((rc = chan_hello_send(ctl, &h, &fd, 1)) != 0)
            bc_die("chan_hello_send", -rc);
        close(fd);
        l->out = &l->ch.tasks;
        l->in = &l->ch.results;
        return;
    }
    if ((rc = chan_hello_recv(ctl, &h, &fd, 1)) != 1)
        bc_die("chan_hello_recv", rc < 0 ? -rc : EBADMSG);
    if ((rc = chan_attach(fd, h.file_bytes, &l->ch)) != 0)
        bc_die("chan_attach", -rc);
    close(fd);
    l->out = &l->ch.results;
    l->in = &l->ch.tasks;
}

/* Send out_msg[first..first + n) without blocking. Returns how many went (0: full, try
 * again). */
static unsigned bc_send(struct bc_link *l, unsigned first, unsigned n)
{
    unsigned k = 0;
    switch (l->tr) {
    case BC_RING_SPIN:
    case BC_RING_SLEEP:
        while (k < n && chan_push(l->out, l->out_msg[first + k], l->out_bytes) == 0)
            k++;
        return k;
    case BC_SEQPACKET:
        while (k < n && send(l->sock, l->out_msg[first + k], l->out_bytes,
                             MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)l->out_bytes)
            k++;
        if (k < n && errno != EAGAIN)
            bc_die("send", errno);
        return k;
    case BC_SEQPACKET_MMSG: {
        int r = sendmmsg(l->sock, &l->out_mmsg[first], n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r < 0 && errno != EAGAIN)
            bc_die("sendmmsg", errno);
        return r < 0 ? 0 : (unsigned)r;
    }
    }
    return 0;
}

/* Receive into in_msg[0..max). Sockets block for the first message when `wait`; rings never
 * block. Returns how many came (0: none yet). */
static unsigned bc_recv(struct bc_link *l, unsigned max, bool wait)
{
    unsigned k = 0;
    int flags = wait ? 0 : MSG_DONTWAIT;
    switch (l->tr) {
    case BC_RING_SPIN:
    case BC_RING_SLEEP:
        for (int rc; k < max && (rc = chan_pop(l->in, l->in_msg[k], l->in_bytes)) != -ENOENT; k++)
            if (rc != 0)
                bc_die("chan_pop", -rc);
        return k;
    case BC_SEQPACKET: {
        ssize_t r = recv(l->sock, l->in_msg[0], l->in_bytes, flags);
        if (r < 0 && errno != EAGAIN)
            bc_die("recv", errno);
        return r > 0;
    }
    case BC_SEQPACKET_MMSG: {
        int r = recvmmsg(l->sock, l->in_mmsg, max, flags | MSG_WAITFORONE, NULL);
        if (r < 0 && errno != EAGAIN)
            bc_die("recvmmsg", errno);
        return r < 0 ? 0 : (unsigned)r;
    }
    }
    return 0;
}

/* Consumers only: nothing came. Rings poll again (ring_sleep naps when idle a while). */
static void bc_idle(const struct bc_link *l, unsigned *idle)
{
    if (l->tr == BC_RING_SLEEP && ++*idle >= BC_IDLE_SPINS) {
        struct timespec ts = { .tv_nsec = BC_SLEEP_NS };
        nanosleep(&ts, NULL);
        *idle = 0;
        return;
    }
    __builtin_ia32_pause();
}

static void bc_stamp(struct bc_link *l, unsigned i, uint64_t seq, uint32_t flags)
{
    struct bc_hdr h = { .seq = seq, .flags = flags };
    memcpy(l->out_msg[i], &h, sizeof(h));
}

static struct bc_hdr bc_hdr_of(const struct bc_link *l, unsigned i)
{
    struct bc_hdr h;
    memcpy(&h, l->in_msg[i], sizeof(h));
    return h;
}

/* Send out_msg[0..n) whatever it takes (outside any measured region). */
static void bc_send_all(struct bc_link *l, unsigned n)
{
    for (unsigned done = 0; done < n;) {
        unsigned k = bc_send(l, done, n - done);
        done += k;
        if (k == 0)
            sched_yield();
    }
}

/* ---- the consumer (child) ---------------------------------------------------------------- */

static void bc_consumer(struct bc_link *l, int ctl, bool reply)
{
    struct bc_peer_stats st = { 0 };
    char ready = 'r';
    if (send(ctl, &ready, 1, 0) != 1)
        bc_die("send ready", errno);
    uint64_t cpu0 = bc_cpu_ns();
    unsigned idle = 0;
    bool last = false;
    while (!last) {
        unsigned k = bc_recv(l, BC_BURST, true);
        if (k == 0) {
            bc_idle(l, &idle);
            continue;
        }
        idle = 0;
        for (unsigned i = 0; i < k; i++) {
            struct bc_hdr h = bc_hdr_of(l, i);
            st.out_of_order += h.seq != st.msgs;
            st.msgs++;
            last = last || (h.flags & BC_FLAG_LAST);
            if (reply)
                bc_stamp(l, i, h.seq, h.flags);
        }
        st.last_ns = bench_mono_ns();
        if (reply)
            bc_send_all(l, k);
    }
    st.cpu_ns = bc_cpu_ns() - cpu0;
    if (send(ctl, &st, sizeof(st), 0) != (ssize_t)sizeof(st))
        bc_die("send stats", errno);
}

/* ---- the producer (this process, measured) ----------------------------------------------- */

struct bc_prod_stats {
    uint64_t msgs;        /* sent, the end marker included */
    uint64_t region_msgs; /* sent inside the measured region */
    uint64_t t0_ns, cpu_ns, tsc;
    uint64_t send_cycles, full_calls;
    uint64_t *send; /* TSC per message of each call that moved messages */
    uint64_t *rtt;  /* rtt shapes: TSC per round trip */
    uint64_t nsend; /* entries in send */
};

/* Under callgrind only the producer's own work counts: a wait for the consumer sits between
 * bc_wait_begin and bc_wait_end, out of the counted region. No-ops outside valgrind. */
static void bc_wait_begin(void)
{
    if (bench_under_valgrind())
        CALLGRIND_TOGGLE_COLLECT;
}

static void bc_wait_end(void)
{
    if (bench_under_valgrind())
        CALLGRIND_TOGGLE_COLLECT;
}

/* The ring is full or the socket's buffer: try again soon (under valgrind, let the slow
 * consumer run). */
static void bc_wait_room(void)
{
    if (!bench_under_valgrind()) {
        __builtin_ia32_pause();
        return;
    }
    bc_wait_begin();
    sched_yield();
    bc_wait_end();
}

/* One timed call of bc_send: its TSC per message is a sample, a call that moved nothing is
 * counted as full. Returns how many it moved. */
static unsigned bc_send_timed(struct bc_link *l, unsigned first, unsigned n, uint64_t tsc_overhead,
                              struct bc_prod_stats *ps)
{
    uint64_t c0 = bench_tsc();
    unsigned k = bc_send(l, first, n);
    uint64_t dt = bench_tsc() - c0;
    dt = dt > tsc_overhead ? dt - tsc_overhead : 0;
    if (k == 0) {
        ps->full_calls++;
        return 0;
    }
    ps->send_cycles += dt;
    if (ps->nsend < BC_SAMPLES)
        ps->send[ps->nsend++] = dt / k;
    return k;
}

/* A stream: bursts of BC_BURST as fast as the consumer takes them, for `seconds`. */
static void bc_produce_stream(struct bc_link *l, double seconds, uint64_t tsc_overhead,
                              struct bc_prod_stats *ps)
{
    uint64_t seq = 0;
    bench_region_begin();
    ps->t0_ns = bench_mono_ns();
    uint64_t deadline = ps->t0_ns + (uint64_t)(seconds * 1e9);
    uint64_t cpu0 = bc_cpu_ns(), tsc0 = bench_tsc();
    for (unsigned it = 0; it % BC_TIME_CHECK != 0 || bench_mono_ns() < deadline; it++) {
        for (unsigned i = 0; i < BC_BURST; i++)
            bc_stamp(l, i, seq + i, 0);
        for (unsigned done = 0; done < BC_BURST;) {
            unsigned k = bc_send_timed(l, done, BC_BURST - done, tsc_overhead, ps);
            if (k == 0)
                bc_wait_room();
            done += k;
        }
        seq += BC_BURST;
    }
    ps->tsc = bench_tsc() - tsc0;
    ps->cpu_ns = bc_cpu_ns() - cpu0;
    bench_region_end();
    ps->region_msgs = seq;
    ps->msgs = seq + 1;
    bc_stamp(l, 0, seq, BC_FLAG_LAST);
    bc_send_all(l, 1);
}

/* Round trips, one at a time: a task out, its result back. With `gap_ns`, the producer waits
 * that long between two (the consumer goes idle: a sleeping poller naps, a socket reader
 * sleeps in recv), so the latency includes its wake-up. */
static void bc_produce_rtt(struct bc_link *l, double seconds, uint64_t gap_ns,
                           uint64_t tsc_overhead, struct bc_prod_stats *ps)
{
    uint64_t seq = 0;
    bench_region_begin();
    ps->t0_ns = bench_mono_ns();
    uint64_t deadline = ps->t0_ns + (uint64_t)(seconds * 1e9);
    uint64_t cpu0 = bc_cpu_ns(), tsc0 = bench_tsc();
    for (;; seq++) {
        bool last = seq + 1 >= BC_SAMPLES || bench_mono_ns() >= deadline;
        bc_stamp(l, 0, seq, last ? BC_FLAG_LAST : 0);
        uint64_t c0 = bench_tsc();
        while (bc_send_timed(l, 0, 1, tsc_overhead, ps) == 0)
            bc_wait_room();
        bc_wait_begin(); /* the wait for the reply is not the owner's work */
        while (bc_recv(l, 1, false) == 0)
            __builtin_ia32_pause();
        ps->rtt[seq] = bench_tsc() - c0;
        if (bc_hdr_of(l, 0).seq != seq) {
            fprintf(stderr, "bench_chan: reply %llu to %llu\n",
                    (unsigned long long)bc_hdr_of(l, 0).seq, (unsigned long long)seq);
            exit(1);
        }
        for (uint64_t t = bench_mono_ns(); gap_ns && bench_mono_ns() - t < gap_ns;)
            __builtin_ia32_pause();
        bc_wait_end();
        if (last)
            break;
    }
    ps->tsc = bench_tsc() - tsc0;
    ps->cpu_ns = bc_cpu_ns() - cpu0;
    bench_region_end();
    ps->msgs = ps->region_msgs = seq + 1;
}

/* rdtsc;rdtsc: what one pair of reads adds to an interval. */
static uint64_t bc_tsc_overhead(void)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 1000; i++) {
        uint64_t a = bench_tsc(), b = bench_tsc();
        if (b - a < best)
            best = b - a;
    }
    return best;
}

struct bc_env {
    double seconds;
    bool pinned;
    int cpu_producer, cpu_consumer;
    uint64_t tsc_overhead;
    uint64_t *send, *rtt;
};

/* The q-quantile of v[0..n) (sorted in place), in ns. */
static double bc_quantile_ns(uint64_t *v, uint64_t n, double q)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof(uint64_t), bench_cmp_u64);
    uint64_t i = (uint64_t)(q * (double)n);
    return (double)v[i < n ? i : n - 1] * 1e9 / bench_tsc_hz();
}

static void bc_emit(const struct bc_env *env, enum bc_transport tr, enum bc_shape shape,
                    struct bc_prod_stats *ps, const struct bc_peer_stats *cs, size_t msg_bytes)
{
    double hz = bench_tsc_hz();
    char name[64], extra[1024];
    snprintf(name, sizeof(name), "chan_%s_%s", bc_transport_name[tr], bc_shape_name[shape]);
    if (cs->out_of_order != 0 || cs->msgs != ps->msgs) {
        fprintf(stderr, "bench_chan: %s: the consumer saw %llu (%llu out of order), %llu sent\n",
                name, (unsigned long long)cs->msgs, (unsigned long long)cs->out_of_order,
                (unsigned long long)ps->msgs);
        exit(1);
    }
    struct bench_result r = BENCH_RESULT_INIT(name);
    double n = (double)ps->region_msgs;
    double wall_ns = (double)(cs->last_ns - ps->t0_ns);
    int len = snprintf(
        extra, sizeof(extra),
        "\"msg_bytes\":%zu,\"producer_send_ns_p50\":%.1f,\"producer_send_ns_mean\":%.1f,"
        "\"producer_cpu_ns_per_msg\":%.1f,\"producer_full_per_msg\":%.3f,"
        "\"consumer_cpu_ns_per_msg\":%.1f,\"consumer_cpu_share\":%.3f,\"pinned\":%s,"
        "\"cpus\":\"%d,%d\"",
        msg_bytes, bc_quantile_ns(ps->send, ps->nsend, 0.5), (double)ps->send_cycles / n * 1e9 / hz,
        (double)ps->cpu_ns / n, (double)ps->full_calls / n, (double)cs->cpu_ns / (double)cs->msgs,
        (double)cs->cpu_ns / wall_ns, env->pinned ? "true" : "false", env->cpu_producer,
        env->cpu_consumer);
    if (shape == BC_RTT || shape == BC_RTT_IDLE) {
        r.events_per_s = n / ((double)ps->tsc / hz); /* round trips */
        snprintf(extra + len, sizeof(extra) - (size_t)len,
                 ",\"rtt_ns_p50\":%.0f,\"rtt_ns_p99\":%.0f,\"reply_bytes\":%u",
                 bc_quantile_ns(ps->rtt, ps->region_msgs, 0.5),
                 bc_quantile_ns(ps->rtt, ps->region_msgs, 0.99), CHAN_RESULT_SLOT_BYTES);
    } else {
        r.events_per_s = (double)ps->msgs * 1e9 / wall_ns;
        snprintf(extra + len, sizeof(extra) - (size_t)len, ",\"ns_per_msg\":%.1f",
                 wall_ns / (double)ps->msgs);
    }
    r.cycles_per_event = (double)ps->tsc / n;
    r.events = ps->region_msgs;
    r.extra_json = extra;
    bench_emit(&r);
}

/* One line: fork the consumer, set the link up on both sides, produce, collect. */
static void bc_run(const struct bc_env *env, enum bc_transport tr, enum bc_shape shape)
{
    static struct bc_link link; /* big (2 x 32 KiB buffers): one, reused */
    bool ring = tr == BC_RING_SPIN || tr == BC_RING_SLEEP;
    size_t task = CHAN_TASK_SLOT_BYTES, result = CHAN_RESULT_SLOT_BYTES;
    size_t out = shape == BC_RESULTS ? result : task;
    bool rtt = shape == BC_RTT || shape == BC_RTT_IDLE;
    size_t in = rtt ? result : out;
    /* rings: who owns the file. tasks / rtt: this process is the owner's side; results:
     * this process is the control side, producing results */
    bool owner_here = shape != BC_RESULTS;
    int ctl[2], data[2] = { -1, -1 };
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) != 0)
        bc_die("socketpair", errno);
    if (!ring && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, data) != 0)
        bc_die("socketpair", errno);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        bc_die("fork", errno);
    if (pid == 0) {
        close(ctl[0]);
        if (env->pinned)
            bc_pin(env->cpu_consumer);
        /* the consumer receives what the producer sends and (rtt) sends the replies */
        bc_link_init(&link, tr, result, out);
        if (ring)
            bc_ring_open(&link, ctl[1], !owner_here);
        else {
            link.sock = data[1];
            close(data[0]);
        }
        bc_consumer(&link, ctl[1], rtt);
        _exit(0);
    }
    close(ctl[1]);
    bc_link_init(&link, tr, out, in);
    if (ring)
        bc_ring_open(&link, ctl[0], owner_here);
    else {
        link.sock = data[0];
        close(data[1]);
    }
    char ready;
    if (recv(ctl[0], &ready, 1, 0) != 1)
        bc_die("recv ready", errno);
    struct bc_prod_stats ps = { .send = env->send, .rtt = env->rtt };
    if (rtt)
        bc_produce_rtt(&link, env->seconds, shape == BC_RTT_IDLE ? BC_IDLE_GAP_NS : 0,
                       env->tsc_overhead, &ps);
    else
        bc_produce_stream(&link, env->seconds, env->tsc_overhead, &ps);
    struct bc_peer_stats cs;
    if (recv(ctl[0], &cs, sizeof(cs), 0) != (ssize_t)sizeof(cs))
        bc_die("recv stats", errno);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bc_die("consumer", ECHILD);
    bc_emit(env, tr, shape, &ps, &cs, out);
    if (ring)
        chan_detach(&link.ch);
    else
        close(link.sock);
    close(ctl[0]);
}

/* An owner core's look at its inbound results when there are none, in this process alone:
 * chan_pop on an empty ring, or recv(MSG_DONTWAIT) on an empty socket. */
static void bc_empty_poll(const struct bc_env *env, enum bc_transport tr)
{
    static struct bc_link link;
    bc_link_init(&link, tr, CHAN_TASK_SLOT_BYTES, CHAN_RESULT_SLOT_BYTES);
    int fd = -1, sv[2] = { -1, -1 };
    if (tr == BC_RING_SPIN) {
        fd = chan_create(0, BC_SLOTS, BC_SLOTS, &link.ch);
        if (fd < 0)
            bc_die("chan_create", -fd);
        link.in = &link.ch.results;
    } else {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
            bc_die("socketpair", errno);
        link.sock = sv[0];
    }
    uint64_t polls = (uint64_t)(env->seconds * (tr == BC_RING_SPIN ? 2e8 : 2e6));
    bench_region_begin();
    uint64_t t0 = bench_mono_ns(), c0 = bench_tsc(), cpu0 = bc_cpu_ns();
    unsigned got = 0;
    for (uint64_t i = 0; i < polls; i++)
        got += bc_recv(&link, 1, false);
    uint64_t tsc = bench_tsc() - c0, cpu = bc_cpu_ns() - cpu0;
    double ns = (double)(bench_mono_ns() - t0);
    bench_region_end();
    if (got != 0)
        bc_die("empty poll", EBADMSG);
    char name[64], extra[128];
    snprintf(name, sizeof(name), "chan_%s_empty_poll", tr == BC_RING_SPIN ? "ring" : "seqpacket");
    snprintf(extra, sizeof(extra), "\"ns_per_poll\":%.2f,\"cpu_ns_per_poll\":%.2f",
             ns / (double)polls, (double)cpu / (double)polls);
    struct bench_result r = BENCH_RESULT_INIT(name);
    r.events_per_s = (double)polls * 1e9 / ns;
    r.cycles_per_event = (double)tsc / (double)polls;
    r.events = polls;
    r.extra_json = extra;
    bench_emit(&r);
    if (fd >= 0) {
        chan_detach(&link.ch);
        close(fd);
    } else {
        close(sv[0]);
        close(sv[1]);
    }
}

int main(int argc, char **argv)
{
    struct bc_env env = { .seconds = bench_has_flag(argc, argv, "--quick") ? BC_SECONDS_QUICK
                                                                           : BC_SECONDS };
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--seconds") == 0)
            env.seconds = atof(argv[i + 1]);
    env.send = malloc(BC_SAMPLES * sizeof(uint64_t));
    env.rtt = malloc(BC_SAMPLES * sizeof(uint64_t));
    if (!env.send || !env.rtt)
        bc_die("malloc", ENOMEM);
    bench_tsc_hz();
    env.tsc_overhead = bc_tsc_overhead();
    /* the producer on the first CPU we may use, the consumer on the second */
    int cpu[2] = { -1, -1 };
    env.pinned = bc_two_cpus(cpu);
    env.cpu_producer = cpu[0];
    env.cpu_consumer = cpu[1];
    if (env.pinned)
        bc_pin(env.cpu_producer);
    fprintf(stderr, "bench_chan: %.2f s per line, tsc overhead %llu cycles\n", env.seconds,
            (unsigned long long)env.tsc_overhead);
    for (enum bc_shape s = BC_TASKS; s <= BC_RTT_IDLE; s++)
        for (enum bc_transport t = BC_RING_SPIN; t <= BC_SEQPACKET_MMSG; t++)
            if (s < BC_RTT || t != BC_SEQPACKET_MMSG) /* one at a time: no batch */
                bc_run(&env, t, s);
    bc_empty_poll(&env, BC_RING_SPIN);
    bc_empty_poll(&env, BC_SEQPACKET);
    free(env.rtt);
    free(env.send);
    return 0;
}
