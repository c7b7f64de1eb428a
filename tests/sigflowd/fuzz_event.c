/*
 * fuzz_event — libFuzzer target for the daemon's own per-event path: one input is one UDP
 * payload received by the socket source, and runs end to end through sigflowd's code —
 * dp_rx_route_payload (frame or JSON parse, key hash, partition, stage), dp_rx_flush (ring),
 * dp_owner_poll (log reserve + DP_REC_SIGNAL encode + append, apply through the runtime and
 * the VM, ACK grouping), dp_wal_poll (group commit, fdatasync, reply release) — with the
 * snapshots, timers, tasks and tombstone sweeps the owner loop drives between inputs.
 *
 * THE NODE (LLVMFuzzerInitialize, as main.c builds it, without ports):
 *   EAL: --no-huge, -m 64, --no-pci, --no-shconf, --no-telemetry, one lcore, a file prefix
 *   of its own; config defaults shrunk: FE_PARTITIONS partitions, FE_CAPACITY workflows,
 *   small rings, mempool, ACK queue and log segments; source "none" (no port, no socket is
 *   opened); the log ENABLED with snapshots every FE_SNAP_LOG_BYTES of log and a history
 *   retention of FE_HISTORY_BYTES, so the log's segments are released and recycled and the
 *   disk used stays bounded; DIR is a private directory under /dev/shm (or /tmp when there
 *   is none: every input waits for its fdatasync, which a disk makes a thousand times
 *   slower), removed at exit (or by a later run when this one crashed). The six
 *   examples/NAME.flow are deployed with dp_runtime_deploy and adopted by the owner (a
 *   logged DP_REC_DEPLOY) first.
 *   Replies: the lcore is rx and owner at once, so a reply goes straight to dp_reply_tx,
 *   which (socket source) calls sendto on lc->sock_fd. That fd is one end of an AF_UNIX
 *   datagram socketpair: sendto with the frame's sockaddr_in fails (EINVAL) before anything
 *   is queued, the reply mbuf is freed and counted (ack_tx). Nothing leaves the process.
 *
 * PER INPUT: an mbuf from the node's pool, the input copied in as the datagram (longer than
 * the mbuf's tailroom: dropped, as recvmmsg would cut it); a binary frame whose sender_id is
 * odd has its event ids renumbered in the copy as (input number << 8 | low byte of the id),
 * a sender that counts up, so that replayed and mutated inputs reach the handlers instead
 * of stopping at dedupe (an even sender_id keeps its ids: duplicates and stale ids); the
 * sender 127.0.0.1:FE_SRC_PORT in the mbuf's private area, the reply credit as
 * dp_rx_poll_socket counts it; then route,
 * flush, and owner passes until the rings are empty, the log is durable and no ACK group
 * waits (bounded by FE_SETTLE_NS). Then the oldest activity run still open is finished
 * (completed, or failed every third time) the way `sigflowctl activity` has the owner do it,
 * so workflows move past their activities, and that settles too.
 *
 * THE CONTROL PROCESS, simulated (fe_control): the owner has a real activity channel
 * (chan_create, adopted by dp_chan_poll as from the channel thread); after each input the
 * harness takes the tasks the owner pushed (each must pass chan_task_valid) and answers
 * each run done, failed or "attempt failed" by turns, and every FE_HOSTILE_EVERY inputs
 * writes the input's own bytes as a result slot: the owner must drop what is out of range
 * or not its own (activity_result_invalid) and log and apply the rest, never crash.
 *
 * ORACLES (a violation aborts, which libFuzzer reports as a crash)
 *   - the input settles: rings drained, every appended record durable, ACK queue empty,
 *     the node not stopped (node.fatal);
 *   - every mbuf is back in the pool (no reference leaked or freed twice);
 *   - at most one reply per frame per owner core (attempted replies, as counted by ack_tx,
 *     reply_suppressed, reply_rate_limited, mbuf_alloc);
 *   - nothing arrives at the socketpair's other end (nothing was sent);
 *   - the DPDK assertions of the daemon's code are on (RTE_ENABLE_ASSERT, meson.build).
 *
 * MUTATOR: libFuzzer's mutations, then (7 times in 8) a binary frame's lengths are made
 * consistent again — version, header_len, flags (ACK_REQ kept), each event's name lengths
 * clamped to their limits and event_len recomputed, event_count set, trailing bytes cut —
 * so that most mutants get past the frame scan to routing, the log and the VM (the parser
 * itself is fuzz_proto's). Names and fields stay as mutated. What is stored in the corpus
 * is the repaired input: it replays as is.
 *
 * SEEDS: FUZZ_EVENT_WRITE_SEEDS=DIR ./fuzz_event writes valid frames for the deployed
 * types (binary with ACK_REQ, multi-event, JSON) into DIR and exits (corpus_event/).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <ftw.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "dp.h"
#include "dp_ack.h"
#include "dp_chan.h"
#include "dp_input.h"
#include "dp_owner.h"
#include "dp_recover.h"
#include "dp_req.h"
#include "dp_runtime.h"
#include "dp_rx.h"
#include "dp_snap.h"
#include "dp_wal.h"
#include "sf_le.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed);

#define FE_PARTITIONS      64u
#define FE_CAPACITY        4096u /* workflows: a table that fills (then `full`) */
#define FE_KEYSTORE_BYTES  (1u << 20)
#define FE_RING_SIZE       256u
#define FE_MEMPOOL_SIZE    1023u
#define FE_ACK_GROUPS      64u          /* power of 2 */
#define FE_SEGMENT_BYTES   (256u << 10) /* log segment */
#define FE_BATCH_BYTES_MAX (64u << 10)
#define FE_SNAP_LOG_BYTES  (1u << 20) /* a snapshot per MiB of log ... */
#define FE_HISTORY_BYTES   (1u << 20) /* ... then segments beyond 1 MiB of history go */
#define FE_TOMBSTONE_S     1u         /* completed workflows are swept soon */
#define FE_SETTLE_NS       5000000000ull
#define FE_SRC_PORT        40000u
#define FE_CHECK_EVERY     65536u        /* inputs between log-size checks */
#define FE_DIR_BYTES_MAX   (64ull << 20) /* DIR may not grow beyond this */
#define FE_PATH_BYTES      256u
#define FE_FLOW_BYTES_MAX  (1u << 16)
#define FE_REPAIR_ODDS     8u /* 7 of 8 mutated frames get their lengths repaired */
#define FE_RESULT_MOD      7u /* activity results 0..6; every third run fails */

#define FE_CHECK(cond)                                                                     \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz_event: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

static char fe_dir[FE_PATH_BYTES];
static char fe_eal_dir[FE_PATH_BYTES]; /* EAL's runtime directory (empty with --no-shconf) */
static int fe_reply_fd = -1;           /* lc->sock_fd: one end of a socketpair */
static int fe_peer_fd = -1;            /* the other end: must never have anything to read */
static struct dp_lcore *fe_lc;
static struct chan fe_chan_owner_view;   /* the owner's side of the channel */
static struct chan fe_chan_control_view; /* the simulated control process's side */
static struct dp_chan_owner fe_chan_pub; /* what dp_chan's thread would publish */
#define FE_CHAN_SLOTS    64u
#define FE_HOSTILE_EVERY 5u
static uint64_t fe_inputs;
static const uint8_t fe_secret[WF_KEY_SECRET_LEN] = { 0x5f, 0x1e, 0x77, 0x03, 0xc2, 0x9a };

/* ---- seeds --------------------------------------------------------------------------- */

struct fe_seed_event {
    const char *type, *id, *signal;
    struct sf_value vals[3];
    unsigned nvals;
};

#define FE_INT(v)                    \
    {                                \
        .type = SF_VAL_INT, .i = (v) \
    }
#define FE_FLT(v)                      \
    {                                  \
        .type = SF_VAL_FLOAT, .f = (v) \
    }
#define FE_TXT(s)                                                        \
    {                                                                    \
        .type = SF_VAL_TEXT, .text = {.ptr = (s), .len = sizeof(s) - 1 } \
    }

static const struct fe_seed_event fe_seed_events[] = {
    { "device", "sensor-1", "telemetry", { FE_FLT(21.5), FE_INT(0) }, 2 },
    { "device", "sensor-1", "telemetry", { FE_FLT(90.0), FE_INT(1) }, 2 },
    { "device", "sensor-1", "heartbeat", { { .type = SF_VAL_NULL } }, 0 },
    { "device", "sensor-1", "decommission", { { .type = SF_VAL_NULL } }, 0 },
    { "loyalty", "customer-7", "purchase", { FE_INT(12500) }, 1 },
    { "loyalty", "customer-7", "refund", { FE_INT(500) }, 1 },
    { "loyalty", "customer-7", "opt_out", { { .type = SF_VAL_NULL } }, 0 },
    { "order", "order-42", "placed", { FE_INT(3), FE_INT(1999) }, 2 },
    { "order", "order-42", "quantity_changed", { FE_INT(5) }, 1 },
    { "order", "order-42", "cancel_order", { { .type = SF_VAL_NULL } }, 0 },
    { "order", "order-42", "delivered", { { .type = SF_VAL_NULL } }, 0 },
    { "approval", "req-9", "claim", { FE_TXT("alice") }, 1 },
    { "approval", "req-9", "release", { FE_TXT("alice") }, 1 },
    { "approval", "req-9", "approve", { FE_TXT("alice") }, 1 },
    { "approval", "req-9", "reject", { FE_TXT("bob"), FE_TXT("too costly") }, 2 },
    { "approval", "req-9", "withdraw", { { .type = SF_VAL_NULL } }, 0 },
    { "inbox", "user-3", "message", { FE_INT(1), FE_TXT("hello") }, 2 },
    { "rollout", "fw-2", "start", { FE_INT(4), FE_INT(100) }, 2 },
    { "rollout", "fw-2", "pause", { { .type = SF_VAL_NULL } }, 0 },
    { "rollout", "fw-2", "resume", { { .type = SF_VAL_NULL } }, 0 },
    { "rollout", "fw-2", "rollback", { FE_TXT("errors") }, 1 },
};
#define FE_SEED_EVENTS (sizeof(fe_seed_events) / sizeof(fe_seed_events[0]))

static const char *const fe_seed_json[] = {
    "{\"type\":\"device\",\"id\":\"sensor-2\",\"signal\":\"telemetry\",\"event_id\":1,"
    "\"fields\":{\"temp_c\":20.5,\"status\":0}}",
    "{\"type\":\"device\",\"id\":\"sensor-2\",\"signal\":\"heartbeat\"}",
    "{\"type\":\"loyalty\",\"id\":\"customer-8\",\"signal\":\"purchase\",\"event_id\":2,"
    "\"ts_ns\":123,\"fields\":{\"amount_cents\":4200}}",
    "{\"type\":\"order\",\"id\":\"order-43\",\"signal\":\"placed\",\"event_id\":3,"
    "\"fields\":{\"quantity\":2,\"unit_cents\":350}}",
    "{\"type\":\"approval\",\"id\":\"req-10\",\"signal\":\"reject\",\"event_id\":4,"
    "\"fields\":{\"user\":\"bob\",\"reason\":\"no \\u00e9 budget\"}}",
    "{\"type\":\"inbox\",\"id\":\"user-4\",\"signal\":\"message\",\"event_id\":5,"
    "\"fields\":{\"msg_id\":7,\"body\":\"hi\"}}\n",
    "{\"type\":\"rollout\",\"id\":\"fw-3\",\"signal\":\"start\",\"event_id\":6,"
    "\"fields\":{\"batches\":2,\"batch_size\":10}}",
};

/* One frame of events [first, first + n) of fe_seed_events (cycled), ids suffixed by
 * `variant`, event ids from `event_id`. Returns its length (0 on an encoding error). */
static size_t fe_seed_frame(uint8_t *out, size_t cap, unsigned first, unsigned n, bool ack,
                            unsigned variant, uint64_t event_id)
{
    struct sf_frame_hdr hdr = { .version = SF_PROTO_VERSION,
                                .flags = ack ? SF_FLAG_ACK_REQ : 0,
                                .sender_id = 7,
                                .frame_seq = event_id };
    int len = sf_frame_begin(out, cap, &hdr);
    for (unsigned k = 0; k < n && len > 0; k++) {
        const struct fe_seed_event *s = &fe_seed_events[(first + k) % FE_SEED_EVENTS];
        uint8_t fields[128];
        int fl = sf_fields_encode(fields, sizeof(fields), s->vals, s->nvals);
        char id[48];
        int id_len = variant ? snprintf(id, sizeof(id), "%s-%u", s->id, variant)
                             : snprintf(id, sizeof(id), "%s", s->id);
        struct sf_event ev = { .type = s->type,
                               .type_len = (uint8_t)strlen(s->type),
                               .id = id,
                               .id_len = (uint8_t)id_len,
                               .signal = s->signal,
                               .signal_len = (uint8_t)strlen(s->signal),
                               .event_id = event_id + k,
                               .fields = fields,
                               .fields_len = (uint16_t)(fl > 0 ? fl : 0) };
        len = fl < 0 ? fl : sf_frame_add_event(out, cap, (size_t)len, &ev);
    }
    if (len > 0)
        len = sf_frame_end(out, cap, (size_t)len);
    return len > 0 ? (size_t)len : 0;
}

static int fe_write_file(const char *dir, const char *name, const void *bytes, size_t len)
{
    char path[FE_PATH_BYTES + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -errno;
    size_t put = fwrite(bytes, 1, len, f);
    return fclose(f) == 0 && put == len ? 0 : -EIO;
}

/* FUZZ_EVENT_WRITE_SEEDS=DIR: write the seed corpus into DIR. 0 or -errno. */
static int fe_write_seeds(const char *dir)
{
    uint8_t frame[SF_DATAGRAM_LEN_MAX];
    char name[64];
    int rc = 0;
    /* one event each, with ACK_REQ: every type and signal */
    for (unsigned i = 0; i < FE_SEED_EVENTS && rc == 0; i++) {
        size_t len = fe_seed_frame(frame, sizeof(frame), i, 1, true, 0, 100 + i);
        snprintf(name, sizeof(name), "one_%s_%s", fe_seed_events[i].type, fe_seed_events[i].signal);
        rc = len ? fe_write_file(dir, name, frame, len) : -EINVAL;
    }
    /* a workflow's life in one frame per type, with and without ACK_REQ */
    static const struct {
        unsigned first, n;
        const char *name;
    } lives[] = { { 0, 4, "life_device" },    { 4, 3, "life_loyalty" }, { 7, 4, "life_order" },
                  { 11, 5, "life_approval" }, { 16, 1, "life_inbox" },  { 17, 4, "life_rollout" } };
    for (unsigned i = 0; i < sizeof(lives) / sizeof(lives[0]) && rc == 0; i++) {
        for (unsigned ack = 0; ack < 2 && rc == 0; ack++) {
            size_t len = fe_seed_frame(frame, sizeof(frame), lives[i].first, lives[i].n, ack, 1,
                                       1000 + 10 * i);
            snprintf(name, sizeof(name), "%s%s", lives[i].name, ack ? "_ack" : "");
            rc = len ? fe_write_file(dir, name, frame, len) : -EINVAL;
        }
    }
    /* every event once in one frame, then 64 events (a full frame), both with ACK_REQ */
    size_t len = fe_seed_frame(frame, sizeof(frame), 0, FE_SEED_EVENTS, true, 2, 5000);
    rc = rc ? rc : len ? fe_write_file(dir, "mixed_all_ack", frame, len) : -EINVAL;
    len = fe_seed_frame(frame, sizeof(frame), 0, SF_FRAME_EVENTS_MAX, true, 3, 6000);
    rc = rc ? rc : len ? fe_write_file(dir, "mixed_64_ack", frame, len) : -EINVAL;
    for (unsigned i = 0; i < sizeof(fe_seed_json) / sizeof(fe_seed_json[0]) && rc == 0; i++) {
        snprintf(name, sizeof(name), "json_%u", i);
        rc = fe_write_file(dir, name, fe_seed_json[i], strlen(fe_seed_json[i]));
    }
    return rc;
}

/* ---- mutator ------------------------------------------------------------------------ */

static uint8_t fe_clamp_len(uint8_t len, uint8_t max)
{
    return len == 0 ? 1 : len > max ? max : len;
}

/* Make a mutated binary frame's lengths consistent (see MUTATOR). Returns the new size. */
static size_t fe_repair_frame(uint8_t *d, size_t size)
{
    if (size < SF_FRAME_HDR_LEN + SF_EVENT_HDR_LEN || d[0] != 'S' || d[1] != 'F')
        return size;
    d[2] = SF_PROTO_VERSION;
    d[3] &= SF_FLAG_ACK_REQ;
    sf_le16_put(d + 18, SF_FRAME_HDR_LEN);
    memset(d + 20, 0, 12); /* auth key id and counter */
    size_t off = SF_FRAME_HDR_LEN;
    unsigned n = 0;
    while (n < SF_FRAME_EVENTS_MAX && off + SF_EVENT_HDR_LEN <= size) {
        uint8_t *e = d + off;
        size_t avail = size - off - SF_EVENT_HDR_LEN;
        e[2] = fe_clamp_len(e[2], SF_TYPE_LEN_MAX);
        e[3] = fe_clamp_len(e[3], SF_ID_LEN_MAX);
        e[4] = fe_clamp_len(e[4], SF_SIGNAL_LEN_MAX);
        e[5] = 0;
        size_t names = (size_t)e[2] + e[3] + e[4];
        size_t fields = sf_le16_get(e + 6);
        if (names > avail)
            break;
        if (fields > SF_FIELDS_LEN_MAX)
            fields = SF_FIELDS_LEN_MAX;
        if (names + fields > avail)
            fields = avail - names;
        sf_le16_put(e + 6, (uint16_t)fields);
        sf_le16_put(e, (uint16_t)(SF_EVENT_HDR_LEN + names + fields));
        off += SF_EVENT_HDR_LEN + names + fields;
        n++;
    }
    if (n == 0)
        return size;
    sf_le16_put(d + 16, (uint16_t)n);
    return off;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % FE_REPAIR_ODDS != 0)
        size = fe_repair_frame(data, size);
    return size;
}

/* ---- the node ------------------------------------------------------------------------ */

static int fe_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static uint64_t fe_dir_bytes;

static int fe_du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path, (void)ftw;
    if (flag == FTW_F)
        fe_dir_bytes += (uint64_t)st->st_blocks * 512u;
    return 0;
}

/* A run that crashed never reached its atexit: remove the directories under `base` named
 * `prefix`PID... of runs whose process is gone (fuzz-event-PID-XXXXXX, fuzz_event_PID). */
static void fe_remove_stale_dirs(const char *base, const char *prefix)
{
    DIR *d = opendir(base);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid;
        size_t plen = strlen(prefix);
        if (strncmp(e->d_name, prefix, plen) != 0 || sscanf(e->d_name + plen, "%d", &pid) != 1 ||
            pid <= 0 || pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[FE_PATH_BYTES + 64];
        snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
        nftw(path, fe_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    closedir(d);
}

static void fe_config(struct dp_config *cfg)
{
    dp_config_defaults(cfg);
    cfg->source = DP_SOURCE_NONE; /* no port, no socket: the harness is the source */
    cfg->partitions = FE_PARTITIONS;
    cfg->table_capacity = FE_CAPACITY;
    cfg->keystore_bytes = FE_KEYSTORE_BYTES;
    cfg->ring_size = FE_RING_SIZE;
    cfg->mempool_size = FE_MEMPOOL_SIZE;
    cfg->ack_groups = FE_ACK_GROUPS;
    cfg->wal_segment_bytes = FE_SEGMENT_BYTES;
    cfg->wal_batch_bytes_max = FE_BATCH_BYTES_MAX;
    cfg->wal_batch_deadline_us = 1; /* each input's batch closes at once */
    cfg->snapshot_interval_s = 0;
    cfg->snapshot_log_bytes = FE_SNAP_LOG_BYTES;
    cfg->history_retention_s = 0;
    cfg->history_retention_bytes = FE_HISTORY_BYTES;
    cfg->tombstone_retention_s = FE_TOMBSTONE_S;
    snprintf(cfg->dir, sizeof(cfg->dir), "%s", fe_dir);
}

/* Owner passes until this input is done: rings empty, log durable, no ACK group waiting. */
static void fe_settle(struct dp_lcore *lc)
{
    uint64_t deadline = dp_now_ns() + FE_SETTLE_NS;
    for (;;) {
        dp_owner_poll(lc);
        if (dp_node.fatal) {
            fprintf(stderr, "fuzz_event: the node stopped: %s\n", dp_node.fatal_reason);
            abort();
        }
        bool rings_empty = true;
        for (unsigned r = 0; r < lc->in_count; r++)
            rings_empty = rings_empty && rte_ring_empty(lc->in[r]);
        if (rings_empty && lc->acks->head == lc->acks->tail &&
            wal_durable_lsn(lc->wal) + 1 >= wal_next_lsn(lc->wal))
            return;
        if (dp_now_ns() > deadline) {
            fprintf(stderr,
                    "fuzz_event: input did not settle in %llu s: rings %s, acks waiting %" PRIu64
                    ", durable %" PRIu64 " next %" PRIu64 "\n",
                    FE_SETTLE_NS / 1000000000ull, rings_empty ? "empty" : "not empty",
                    lc->acks->tail - lc->acks->head, wal_durable_lsn(lc->wal),
                    wal_next_lsn(lc->wal));
            abort();
        }
    }
}

static void fe_deploy_examples(void)
{
    static const char *const flows[] = { "device",   "loyalty", "order",
                                         "approval", "inbox",   "rollout" };
    static char src[FE_FLOW_BYTES_MAX];
    for (size_t i = 0; i < sizeof(flows) / sizeof(flows[0]); i++) {
        char path[FE_PATH_BYTES + 64], msg[4096];
        snprintf(path, sizeof(path), "%s/examples/%s.flow", SF_SOURCE_ROOT, flows[i]);
        FILE *f = fopen(path, "r");
        FE_CHECK(f != NULL);
        size_t len = fread(src, 1, sizeof(src), f);
        fclose(f);
        FE_CHECK(len > 0 && len < sizeof(src));
        if (dp_runtime_deploy(path, src, len, msg, sizeof(msg)) != 0) {
            fprintf(stderr, "fuzz_event: deploy %s: %s\n", path, msg);
            abort();
        }
    }
    /* the owner adopts the newest generation at the top of its loop (a logged record) */
    uint64_t want = __atomic_load_n(&dp_node.registry_gen, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < 1000000 && fe_lc->reg_gen != want; i++)
        dp_owner_poll(fe_lc);
    FE_CHECK(fe_lc->reg_gen == want);
    fe_settle(fe_lc);
}

static void fe_shutdown(void)
{
    if (fe_lc) {
        fe_settle(fe_lc);
        fprintf(stderr,
                "fuzz_event: %" PRIu64 " inputs: %" PRIu64 " frames, %" PRIu64
                " json events, %" PRIu64 " events applied, %" PRIu64 " workflows, %" PRIu64
                " table_full, %" PRIu64 " replies refused by sendto, %" PRIu64
                " tasks dispatched, %" PRIu64 " timers fired, %" PRIu64
                " tombstones swept, %" PRIu64 " snapshots, %" PRIu64 " log segments released\n",
                fe_inputs, fe_lc->counters[DP_C_FRAMES], fe_lc->counters[DP_C_JSON_EVENTS],
                fe_lc->counters[DP_C_EVENTS_APPLIED], fe_lc->counters[DP_C_WORKFLOWS],
                fe_lc->drop[DP_DROP_TABLE_FULL], fe_lc->drop[DP_DROP_ACK_TX],
                fe_lc->counters[DP_C_TASKS_DISPATCHED], fe_lc->counters[DP_C_TIMERS_FIRED],
                fe_lc->counters[DP_C_TOMBSTONES_SWEPT], fe_lc->snap.count,
                fe_lc->snap.segments_released);
        fprintf(stderr, "fuzz_event: dropped by the parsers:");
        for (unsigned i = 1; i < SF_ERR_COUNT; i++)
            if (fe_lc->drop_proto[i])
                fprintf(stderr, " %s %" PRIu64, sf_err_name(-(int)i), fe_lc->drop_proto[i]);
        fprintf(stderr, "; runtime statuses:");
        for (unsigned i = 0; i < RT_STATUS_COUNT; i++)
            if (fe_lc->rt_status[i])
                fprintf(stderr, " %u:%" PRIu64, i, fe_lc->rt_status[i]);
        fprintf(stderr, "\n");
        dp_snap_close(&dp_node);
        dp_wal_close_all(&dp_node);
        dp_node_free(&dp_node);
        rte_mempool_free(dp_node.pool);
        fe_lc = NULL;
        rte_eal_cleanup();
        rmdir(fe_eal_dir);
    }
    if (fe_peer_fd >= 0) {
        close(fe_reply_fd);
        close(fe_peer_fd);
        fe_reply_fd = fe_peer_fd = -1;
    }
    if (fe_dir[0])
        nftw(fe_dir, fe_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The reply socket: one end of an AF_UNIX datagram pair. sendto with an AF_INET address
 * fails with EINVAL on it: checked here once, so that a kernel that behaved otherwise
 * stops the harness instead of letting it send. */
static int fe_reply_socket(void)
{
    int sv[2];
    FE_CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(FE_SRC_PORT) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    uint8_t probe = 0;
    FE_CHECK(sendto(sv[0], &probe, 1, MSG_DONTWAIT, (const struct sockaddr *)&sin, sizeof(sin)) <
                 0 &&
             errno == EINVAL);
    fe_reply_fd = sv[0];
    fe_peer_fd = sv[1];
    return sv[0];
}

/* A channel for the owner, published as the channel thread does (generation 1). */
static void fe_control_setup(struct dp_lcore *lc)
{
    int fd = chan_create(0, FE_CHAN_SLOTS, FE_CHAN_SLOTS, &fe_chan_owner_view);
    FE_CHECK(fd >= 0);
    FE_CHECK(
        chan_attach(fd, chan_file_bytes(FE_CHAN_SLOTS, FE_CHAN_SLOTS), &fe_chan_control_view) == 0);
    close(fd); /* both mappings stay */
    fe_chan_pub.pub = &fe_chan_owner_view;
    fe_chan_pub.pub_gen = 1;
    lc->chan = &fe_chan_pub;
    dp_owner_poll(lc); /* adopts it: every run in flight queued again */
    FE_CHECK(fe_chan_pub.seen_gen == 1 && dp_chan_ready(lc));
}

/* The control process's turn: answer every task waiting; now and then a hostile slot. */
static void fe_control(const uint8_t *data, size_t size)
{
    struct chan_task t;
    unsigned answered = 0;
    while (chan_pop(&fe_chan_control_view.tasks, &t, sizeof(t)) == 0) {
        FE_CHECK(chan_task_valid(&t)); /* the owner writes only what the contract allows */
        FE_CHECK(t.owner == 0 && t.part_id < FE_PARTITIONS);
        if (t.kind != CHAN_TASK_RUN)
            continue;
        struct chan_result r = { .act_index = t.act_index,
                                 .part_id = t.part_id,
                                 .seq = t.seq,
                                 .attempt = t.attempt,
                                 .key_hi = t.key_hi,
                                 .key_lo = t.key_lo };
        switch ((fe_inputs + answered++) % 3) {
        case 0:
            r.kind = CHAN_RES_DONE;
            r.has_result = 1;
            r.result = (int64_t)(fe_inputs % FE_RESULT_MOD);
            break;
        case 1:
            r.kind = CHAN_RES_ATTEMPT_FAILED;
            r.reason_len = 8;
            memcpy(r.reason, "HTTP 503", 8);
            break;
        default:
            r.kind = CHAN_RES_FAILED;
            r.reason_len = 8;
            memcpy(r.reason, "HTTP 400", 8);
            break;
        }
        if (chan_push(&fe_chan_control_view.results, &r, sizeof(r)) != 0)
            break; /* full: the owner takes them first */
    }
    if (fe_inputs % FE_HOSTILE_EVERY == 0 && size > 0) {
        struct chan_result r;
        memset(&r, 0, sizeof(r));
        memcpy(&r, data, size < sizeof(r) ? size : sizeof(r));
        chan_push(&fe_chan_control_view.results, &r, sizeof(r));
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *seeds = getenv("FUZZ_EVENT_WRITE_SEEDS");
    if (seeds) {
        int rc = fe_write_seeds(seeds);
        fprintf(stderr, "fuzz_event: seeds into %s: %s\n", seeds, rc ? strerror(-rc) : "ok");
        exit(rc ? 1 : 0);
    }
    /* EAL pins the main thread to its lcore's CPU: keep the affinity we were given, so
     * that parallel runs do not share one CPU. */
    cpu_set_t cpus;
    FE_CHECK(sched_getaffinity(0, sizeof(cpus), &cpus) == 0);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "--file-prefix=fuzz_event_%d", (int)getpid());
    char *eal[] = { "fuzz_event",
                    "--no-huge",
                    "-m",
                    "64",
                    "--no-pci",
                    "--no-shconf",
                    "--no-telemetry",
                    prefix,
                    "-l",
                    "0",
                    "--log-level=*:error",
                    NULL };
    FE_CHECK(rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) >= 0);
    FE_CHECK(sched_setaffinity(0, sizeof(cpus), &cpus) == 0);
    snprintf(fe_eal_dir, sizeof(fe_eal_dir), "%s", rte_eal_get_runtime_dir());
    char *slash = strrchr(fe_eal_dir, '/');
    if (slash && slash != fe_eal_dir) {
        *slash = '\0';
        fe_remove_stale_dirs(fe_eal_dir, "fuzz_event_");
        *slash = '/';
    }

    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    fe_remove_stale_dirs(base, "fuzz-event-");
    snprintf(fe_dir, sizeof(fe_dir), "%s/fuzz-event-%d-XXXXXX", base, (int)getpid());
    FE_CHECK(mkdtemp(fe_dir) != NULL);
    atexit(fe_shutdown);
    FE_CHECK(wf_key_use_secret(fe_secret) == 0);

    fe_config(&dp_node.cfg);
    dp_clock_init();
    FE_CHECK(dp_node_setup(&dp_node) == 0);
    FE_CHECK(dp_node.lcore_count == 1 && dp_node.owner_count == 1 && dp_node.rx_count == 1);
    FE_CHECK(dp_snap_init(&dp_node) == 0);
    FE_CHECK(dp_recover_all(&dp_node) == 0);
    fe_lc = dp_node.lcores[0];
    FE_CHECK(fe_lc->rx && fe_lc->owner && fe_lc->wal != NULL);
    fe_lc->sock_fd = fe_reply_socket();
    fe_deploy_examples();
    fe_control_setup(fe_lc);
    return 0;
}

/* Every LSN durable is checked by fe_settle; the rest of the per-input oracles here. */
static void fe_check_after(const struct dp_lcore *lc, uint64_t replies_before)
{
    FE_CHECK(rte_mempool_avail_count(dp_node.pool) == dp_node.pool->size);
    uint64_t replies = lc->drop[DP_DROP_ACK_TX] + lc->drop[DP_DROP_REPLY_SUPPRESSED] +
                       lc->drop[DP_DROP_REPLY_RATE] + lc->drop[DP_DROP_MBUF_ALLOC] +
                       lc->counters[DP_C_ACKS_SENT] + lc->counters[DP_C_NACKS];
    FE_CHECK(replies - replies_before <= dp_node.owner_count);
    uint8_t byte;
    FE_CHECK(recv(fe_peer_fd, &byte, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN);
}

static void fe_check_dir_size(void)
{
    fe_dir_bytes = 0;
    nftw(fe_dir, fe_du_one, 16, FTW_PHYS);
    if (fe_dir_bytes > FE_DIR_BYTES_MAX) {
        fprintf(stderr,
                "fuzz_event: %s holds %" PRIu64 " MiB after %" PRIu64
                " inputs: the log is not released (snapshots %" PRIu64 ", segments released "
                "%" PRIu64 ")\n",
                fe_dir, fe_dir_bytes >> 20, fe_inputs, fe_lc->snap.count,
                fe_lc->snap.segments_released);
        abort();
    }
}

/* A sender that counts: the event ids of a binary frame with an odd sender_id become
 * (input number << 8 | their low byte), above every id an earlier input used. */
static void fe_renumber(uint8_t *d, size_t size)
{
    if (size < SF_FRAME_HDR_LEN || d[0] != 'S' || d[1] != 'F' || (d[4] & 1) == 0)
        return;
    uint64_t base = fe_inputs << 8;
    size_t off = SF_FRAME_HDR_LEN;
    while (off + SF_EVENT_HDR_LEN <= size) {
        size_t len = sf_le16_get(d + off);
        if (len < SF_EVENT_HDR_LEN)
            return;
        uint8_t *id = d + off + 8;
        sf_le64_put(id, base | id[0]);
        off += len;
    }
}

/* Finish the oldest activity run in flight (complete or fail it), as the
 * owner does for `sigflowctl activity complete|fail`: a logged DP_REC_ACTIVITY applied
 * through the runtime. Without it every workflow would wait on its first activity. */
static void fe_finish_one_task(struct dp_lcore *lc)
{
    struct rt_task t;
    if (rt_tasks_list(lc->rt, 0, &t, 1) == 0)
        return;
    int st;
    int rc = dp_input_activity(lc, t.part_id, t.key, t.act_index, t.seq, fe_inputs % 3 == 0,
                               (int64_t)(fe_inputs % FE_RESULT_MOD), &st);
    FE_CHECK(rc == 0 || rc == -EAGAIN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dp_lcore *lc = fe_lc;
    struct rte_mbuf *m = rte_pktmbuf_alloc(dp_node.pool);
    FE_CHECK(m != NULL); /* every mbuf comes back after each input */
    if (size > rte_pktmbuf_tailroom(m) || size > UINT16_MAX) {
        rte_pktmbuf_free(m); /* recvmmsg would cut it: the socket source drops it */
        return 0;
    }
    fe_inputs++;
    memcpy(rte_pktmbuf_mtod(m, void *), data, size);
    fe_renumber(rte_pktmbuf_mtod(m, uint8_t *), size);
    rte_pktmbuf_data_len(m) = (uint16_t)size;
    rte_pktmbuf_pkt_len(m) = (uint32_t)size;
    /* the sender's address, where recvmmsg puts it (dp_rx_poll_socket) */
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(FE_SRC_PORT) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(rte_mbuf_to_priv(m), 0, DP_MBUF_PRIV_SIZE);
    memcpy(rte_mbuf_to_priv(m), &sin, sizeof(sin));
    uint64_t replies_before = lc->drop[DP_DROP_ACK_TX] + lc->drop[DP_DROP_REPLY_SUPPRESSED] +
                              lc->drop[DP_DROP_REPLY_RATE] + lc->drop[DP_DROP_MBUF_ALLOC] +
                              lc->counters[DP_C_ACKS_SENT] + lc->counters[DP_C_NACKS];
    lc->counters[DP_C_RX_PACKETS]++;
    lc->counters[DP_C_RX_BYTES] += size;
    dp_reply_credit(lc, (const uint8_t *)&sin.sin_addr, 4, (uint32_t)size + 28u);
    dp_rx_route_payload(lc, m, 0, (uint16_t)size, UINT8_MAX, (uint8_t)lc->index, dp_now_ns(), NULL);
    dp_rx_flush(lc);
    fe_settle(lc);
    fe_check_after(lc, replies_before);
    fe_finish_one_task(lc);
    fe_settle(lc);
    fe_control(data, size);
    fe_settle(lc);
    if (fe_inputs % FE_CHECK_EVERY == 0)
        fe_check_dir_size();
    return 0;
}
