/*
 * dp_chan.c — the activity channel's daemon side (dp_chan.h): the thread that serves
 * sigflow-control's connection, and the owner's adoption, results and task pushes.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_malloc.h>
#include <rte_pause.h>

#include "dp.h"
#include "dp_chan.h"
#include "dp_clock.h"
#include "dp_input.h"
#include "flow.h"

static struct {
    pthread_t thread;
    bool started;
    volatile bool stop;
    int listen_fd;
    char path[DP_PATH_MAX + 32];
    struct dp_node *node;
    struct dp_chan_owner *owners; /* by owner index */
    struct chan chans[DP_LCORES_MAX];
    uint64_t gen;
    volatile bool connected;
} dp_chan;

/* ---- the thread ---------------------------------------------------------------------- */

/* Publish chans (or NULL: disconnected) to every owner as a new generation, and wait until
 * each adopted it (or the node stopped: its lcores no longer run). */
static void dp_chan_publish(bool up)
{
    struct dp_node *node = dp_chan.node;
    uint64_t gen = ++dp_chan.gen;
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_chan_owner *co = &dp_chan.owners[o];
        __atomic_store_n(&co->pub, up ? &dp_chan.chans[o] : NULL, __ATOMIC_RELAXED);
        __atomic_store_n(&co->pub_gen, gen, __ATOMIC_RELEASE);
    }
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_chan_owner *co = &dp_chan.owners[o];
        while (__atomic_load_n(&co->seen_gen, __ATOMIC_ACQUIRE) != gen && !node->force_quit &&
               !node->fatal)
            usleep(1000);
    }
    dp_chan.connected = up;
}

/* Unpublish and unmap the channels of the connection that ended. */
static void dp_chan_disconnect(void)
{
    dp_chan_publish(false);
    for (unsigned o = 0; o < dp_chan.node->owner_count; o++) {
        chan_detach(&dp_chan.chans[o]);
        __atomic_store_n(&dp_chan.owners[o].broken, false, __ATOMIC_RELAXED);
    }
}

/* Wait for the control process's hello on conn. 0, or -errno/-EBADMSG/-ETIMEDOUT. */
static int dp_chan_wait_hello(int conn, struct chan_hello *h)
{
    struct pollfd p = { .fd = conn, .events = POLLIN };
    int n = poll(&p, 1, DP_CHAN_HELLO_TIMEOUT_MS);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -ETIMEDOUT;
    int fds[1];
    int rc = chan_hello_recv(conn, h, fds, 0);
    if (rc < 0)
        return rc;
    return h->owner_count == 0 ? 0 : -EBADMSG;
}

/* Create the channel files, send them with our hello and publish them. 0 or -errno. */
static int dp_chan_accept(int conn)
{
    struct dp_node *node = dp_chan.node;
    int fds[DP_LCORES_MAX];
    unsigned made = 0;
    int rc = 0;
    uint32_t slots = node->cfg.activity_slots;
    for (; made < node->owner_count; made++) {
        rc = chan_create(made, slots, slots, &dp_chan.chans[made]);
        if (rc < 0)
            break;
        fds[made] = rc;
        rc = 0;
    }
    if (rc == 0) {
        struct chan_hello h = { .magic = CHAN_MAGIC,
                                .version = CHAN_VERSION,
                                .owner_count = node->owner_count,
                                .task_slots = slots,
                                .result_slots = slots,
                                .file_bytes = chan_file_bytes(slots, slots),
                                .pid = (int32_t)getpid() };
        rc = chan_hello_send(conn, &h, fds, made);
    }
    for (unsigned o = 0; o < made; o++)
        close(fds[o]); /* the peer has its own references; our mappings stay */
    if (rc != 0) {
        for (unsigned o = 0; o < made; o++)
            chan_detach(&dp_chan.chans[o]);
        return rc;
    }
    dp_chan_publish(true);
    return 0;
}

static bool dp_chan_any_broken(void)
{
    for (unsigned o = 0; o < dp_chan.node->owner_count; o++)
        if (__atomic_load_n(&dp_chan.owners[o].broken, __ATOMIC_RELAXED))
            return true;
    return false;
}

/* Serve one connection until it closes, breaks or the node stops. */
static void dp_chan_serve(int conn)
{
    struct chan_hello h;
    int rc = dp_chan_wait_hello(conn, &h);
    if (rc == 0)
        rc = dp_chan_accept(conn);
    if (rc != 0) {
        fprintf(stderr, "sigflowd: activity channel: control process refused: %s\n",
                rc == -EBADMSG ? "not a hello of this version" : strerror(-rc));
        return;
    }
    fprintf(stderr, "sigflowd: activity channel: control process %d connected\n", (int)h.pid);
    while (!dp_chan.stop && !dp_chan.node->force_quit) {
        struct pollfd p = { .fd = conn, .events = POLLIN };
        int n = poll(&p, 1, DP_CHAN_POLL_MS);
        if (n > 0) {
            break; /* closed (POLLHUP/POLLIN with 0 bytes), or a message it must not send */
        }
        if (dp_chan_any_broken()) {
            fprintf(stderr, "sigflowd: activity channel: the control process broke a ring; "
                            "disconnecting it\n");
            break;
        }
    }
    fprintf(stderr, "sigflowd: activity channel: control process %d disconnected\n", (int)h.pid);
    dp_chan_disconnect();
}

static void *dp_chan_main(void *arg)
{
    (void)arg;
    while (!dp_chan.stop && !dp_chan.node->force_quit) {
        struct pollfd p = { .fd = dp_chan.listen_fd, .events = POLLIN };
        if (poll(&p, 1, DP_CHAN_POLL_MS) <= 0)
            continue;
        int conn = accept4(dp_chan.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0)
            continue;
        dp_chan_serve(conn);
        close(conn);
    }
    return NULL;
}

int dp_chan_start(struct dp_node *node, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path) || strlen(path) >= sizeof(dp_chan.path))
        return -ENAMETOOLONG;
    dp_chan.owners =
        rte_zmalloc("dp_chan", sizeof(dp_chan.owners[0]) * node->owner_count, RTE_CACHE_LINE_SIZE);
    if (!dp_chan.owners)
        return -ENOMEM;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    snprintf(dp_chan.path, sizeof(dp_chan.path), "%s", path);
    int rc;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto out_free;
    }
    unlink(path);
    mode_t old = umask(0077);
    rc = bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 4) == 0 ? 0 : -errno;
    umask(old);
    if (rc != 0)
        goto out_close;
    dp_chan.node = node;
    dp_chan.listen_fd = fd;
    dp_chan.stop = false;
    for (unsigned o = 0; o < node->owner_count; o++)
        node->owner_by_index[o]->chan = &dp_chan.owners[o];
    rc = -pthread_create(&dp_chan.thread, NULL, dp_chan_main, NULL);
    if (rc != 0)
        goto out_unlink;
    pthread_setname_np(dp_chan.thread, "sf-chan");
    dp_chan.started = true;
    return 0;

out_unlink:
    for (unsigned o = 0; o < node->owner_count; o++)
        node->owner_by_index[o]->chan = NULL;
    unlink(path);
out_close:
    close(fd);
out_free:
    rte_free(dp_chan.owners);
    dp_chan.owners = NULL;
    return rc;
}

void dp_chan_stop(void)
{
    if (!dp_chan.started)
        return;
    dp_chan.stop = true;
    pthread_join(dp_chan.thread, NULL);
    close(dp_chan.listen_fd);
    unlink(dp_chan.path);
    for (unsigned o = 0; o < dp_chan.node->owner_count; o++) {
        chan_detach(&dp_chan.chans[o]);
        dp_chan.node->owner_by_index[o]->chan = NULL;
    }
    rte_free(dp_chan.owners);
    dp_chan.owners = NULL;
    dp_chan.started = false;
}

bool dp_chan_connected(void)
{
    return dp_chan.connected;
}

/* ---- the owner ------------------------------------------------------------------------ */

bool dp_chan_ready(const struct dp_lcore *lc)
{
    return lc->chan && lc->chan->cur;
}

/* Adopt generation gen. On connect every run in flight is queued again. A result held
 * (the log was behind) stays held: it is a copy, valid whatever the channel. */
static void dp_chan_adopt(struct dp_lcore *lc, struct dp_chan_owner *co, uint64_t gen)
{
    co->cur = __atomic_load_n(&co->pub, __ATOMIC_RELAXED);
    co->gen = gen;
    co->draining = false;
    if (co->cur)
        rt_tasks_reset(lc->rt);
    __atomic_store_n(&co->seen_gen, gen, __ATOMIC_RELEASE);
}

/* Log and apply one checked result. 0, or -EAGAIN (log behind: hold it), or -EINVAL
 * (not for this owner: dropped, counted). */
static int dp_chan_apply(struct dp_lcore *lc, const struct chan_result *r)
{
    struct wf_key key = { .hi = r->key_hi, .lo = r->key_lo };
    uint32_t parts = dp_node.cfg.partitions;
    if (r->part_id >= parts || wf_key_partition(key, parts) != r->part_id ||
        wf_partmap_owner(dp_node.partmap, r->part_id) != lc->owner_index)
        return -EINVAL;
    int st, rc;
    if (r->kind == CHAN_RES_ATTEMPT_FAILED) {
        rc = dp_input_attempt(lc, r->part_id, key, r->act_index, r->seq, r->attempt, r->reason,
                              r->reason_len, &st);
        if (rc == 0)
            lc->counters[DP_C_TASK_ATTEMPTS_FAILED]++;
    } else {
        bool failed = r->kind == CHAN_RES_FAILED;
        rc = dp_input_activity(lc, r->part_id, key, r->act_index, r->seq, failed,
                               r->has_result ? r->result : 0, &st);
        if (rc == 0)
            lc->counters[failed ? DP_C_TASKS_FAILED : DP_C_TASKS_DONE]++;
    }
    return rc;
}

/* Take up to max results (the held one first, then co->cur's ring): each is logged and
 * applied. Returns how many were taken (applied or dropped); *more is false when there is
 * nothing left to take now (ring empty or broken, no channel, the log behind or failed). */
static unsigned dp_chan_take(struct dp_lcore *lc, struct dp_chan_owner *co, unsigned max,
                             bool *more)
{
    unsigned n = 0;
    *more = false;
    while (n < max) {
        if (!co->holding) {
            if (!co->cur)
                return n;
            int rc = chan_pop(&co->cur->results, &co->held, sizeof(co->held));
            if (rc == -ENOENT)
                return n;
            if (rc != 0) {
                __atomic_store_n(&co->broken, true, __ATOMIC_RELAXED);
                return n;
            }
            if (!chan_result_valid(&co->held)) {
                lc->drop[DP_DROP_CHAN_RESULT]++;
                n++;
                continue;
            }
            co->holding = true;
        }
        int rc = dp_chan_apply(lc, &co->held);
        if (rc == -EAGAIN)
            return n; /* the log is behind: the same result on the next pass */
        co->holding = false;
        if (rc == -EINVAL)
            lc->drop[DP_DROP_CHAN_RESULT]++;
        else if (rc != 0)
            return n; /* the log failed: the node stops */
        n++;
    }
    *more = true;
    return n;
}

unsigned dp_chan_poll(struct dp_lcore *lc)
{
    struct dp_chan_owner *co = lc->chan;
    if (!co)
        return 0;
    bool more;
    uint64_t gen = __atomic_load_n(&co->pub_gen, __ATOMIC_ACQUIRE);
    if (likely(gen == co->gen))
        return dp_chan_take(lc, co, DP_CHAN_RESULTS_PER_POLL, &more);
    /* The connection ended (or was replaced). What its control process wrote before it went
     * are outcomes like any other: dropping them would run those activities again. Take
     * them first — at most one ring's worth, so that a peer still writing cannot hold the
     * channel thread, which waits for this adoption — then let go of the channel. */
    if (co->cur && !co->draining) {
        co->draining = true;
        co->drain_left = co->cur->results.mask + 1;
    }
    unsigned n = 0;
    if (co->cur && co->drain_left > 0) {
        n = dp_chan_take(lc, co, RTE_MIN(DP_CHAN_RESULTS_PER_POLL, co->drain_left), &more);
        co->drain_left -= n;
        if (more || (co->holding && co->drain_left > 0))
            return n; /* more to take, or the log is behind: on the next pass */
    }
    dp_chan_adopt(lc, co, gen);
    return n;
}

int dp_chan_push_task(struct dp_lcore *lc, const struct rt_task *t)
{
    struct dp_chan_owner *co = lc->chan;
    if (!co || !co->cur)
        return -ENOTCONN;
    struct chan_task m;
    memset(&m, 0, sizeof(m));
    struct flow_activity_info info;
    RTE_VERIFY(flow_def_activity(t->def, t->act_index, &info) == 0); /* the runtime's def */
    m.kind = t->kind == RT_TASK_CANCEL ? CHAN_TASK_CANCEL : CHAN_TASK_RUN;
    m.type_len = t->type_len;
    m.id_len = t->id_len;
    size_t alen = strnlen(t->activity, CHAN_NAME_MAX - 1);
    m.activity_len = (uint8_t)alen;
    m.nargs = t->nargs <= CHAN_PARAMS_MAX ? t->nargs : CHAN_PARAMS_MAX;
    m.args_len = t->args_len <= CHAN_ARGS_MAX ? t->args_len : CHAN_ARGS_MAX;
    m.part_id = t->part_id;
    m.act_index = t->act_index;
    m.owner = (uint16_t)lc->owner_index;
    m.seq = t->seq;
    m.attempt = t->attempt;
    m.max_attempts = info.max_attempts;
    m.key_hi = t->key.hi;
    m.key_lo = t->key.lo;
    m.backoff_initial_ns = info.backoff_initial_ns;
    m.backoff_max_ns = info.backoff_max_ns;
    m.backoff_multiplier = info.backoff_multiplier;
    m.start_to_close_ns = info.start_to_close_ns;
    m.deadline_ns = t->deadline_ns;
    m.dispatched_ns = dp_realtime_ns(); /* realtime (chan.h), which dp_now_ns drifts from */
    memcpy(m.type, t->type, RTE_MIN((size_t)t->type_len, sizeof(m.type)));
    memcpy(m.id, t->id, RTE_MIN((size_t)t->id_len, sizeof(m.id)));
    memcpy(m.activity, t->activity, alen);
    for (unsigned i = 0; i < m.nargs; i++) {
        const char *name = flow_def_activity_param_name(t->def, t->act_index, i);
        snprintf(m.param[i], sizeof(m.param[i]), "%s", name ? name : "");
    }
    if (m.kind == CHAN_TASK_RUN)
        memcpy(m.args, t->args, m.args_len);
    int rc = chan_push(&co->cur->tasks, &m, sizeof(m));
    if (rc == -EBADMSG) {
        __atomic_store_n(&co->broken, true, __ATOMIC_RELAXED);
        return -ENOSPC;
    }
    return rc;
}
