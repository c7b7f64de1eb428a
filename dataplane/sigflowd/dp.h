/*
 * dp.h — sigflowd's shared definitions: the event record that crosses the per-core rings,
 * the per-lcore state, the node, and the counters.
 *
 * Concurrency contract (share-nothing, docs/architecture.md#processes-and-threads):
 *   - struct dp_lcore is written only by its own lcore. Other threads (the control thread)
 *     read its counters with relaxed loads; an aligned u64 never tears on x86-64.
 *   - A partition's workflow table (node.parts[p]) is touched only by its owner lcore.
 *     The control thread asks the owner through the owner's mailbox ring and waits.
 *   - Events cross from an rx lcore to an owner lcore through one single-producer /
 *     single-consumer ring per (rx lcore, owner lcore) pair, in bursts.
 *   - An event record holds one reference on the mbuf it points into; the rx lcore sets
 *     the mbuf's refcount to the number of events it routes, each owner frees its own.
 */
#ifndef DP_H
#define DP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dp_config.h"
#include "sf_key.h"
#include "sf_partmap.h"
#include "sf_pkt.h"
#include "sf_proto.h"
#include "rt.h"
#include "snap.h"
#include "wal.h"

#define DP_RXQ_PER_LCORE_MAX        (DP_PORTS_MAX * DP_RX_QUEUES_MAX)
#define DP_STAGE_EVENTS             64  /* events staged per owner before a ring enqueue */
#define DP_OWNER_BURST_MAX          256 /* events dequeued from one ring at a time */
#define DP_MAILBOX_SIZE             64
#define DP_TX_BURST_MAX             32
#define DP_MBUF_DATA_ROOM           (RTE_PKTMBUF_HEADROOM + 2048)
#define DP_LIST_LIMIT_MAX           1000
#define DP_ACK_RING_SIZE            1024 /* ACK mbufs from one owner to one rx lcore */
#define DP_IO_WAIT_SLEEP_MAX_US     20   /* idle sleep cap while log batches or ACKs are pending */
#define DP_WAL_SIGNAL_HDR           40u  /* fixed part of a DP_WAL_SIGNAL payload (dp_wal.c) */
#define DP_NOTE_TASKS_MAX           8u   /* scheduled runs one DP_WAL_NOTE lists */
#define DP_NOTE_BYTES_MAX           (24u + 8u * DP_NOTE_TASKS_MAX)
#define DP_REGISTRY_GENERATIONS_MAX (RT_DEFS_MAX + 1) /* deploys on one node, + the empty one */
#define DP_OUTBOUND_TASKS           4096 /* activity tasks queued per owner (rt outbound queue) */
#define DP_FIRINGS_MAX              64   /* timer firings taken per owner loop iteration */
#define DP_TASKS_PER_POLL           64   /* tasks dispatched per owner loop iteration */
#define DP_TASK_LIST_MAX            4096 /* dispatched tasks kept for `activity list` per owner */
#define DP_DEFS_REPORT_MAX          64
#define DP_STATES_REPORT_MAX        FLOW_STATES_MAX

/* flags of struct dp_event */
#define DP_EV_HAS_EVENT_ID 0x01
#define DP_EV_FIELDS_JSON  0x02
#define DP_EV_ACK_REQ      0x04
#define DP_EV_AUTHED       0x08 /* its frame's tag verified (dp_auth.c) */
#define DP_EV_FRAME_LAST   0x10 /* the last event of its frame routed to its owner */

#define DP_MBUF_PRIV_SIZE 48   /* socket source: the sender's sockaddr; replies: dp_ack.c meta */
#define DP_REPLY_SOURCES  4096 /* per rx lcore: sources with a reply credit (dp_ack.c) */

/**
 * One routed event: a compact view into the mbuf that carried it, one cache line.
 * Offsets are from rte_pktmbuf_mtod(m), i.e. from the start of the received bytes.
 */
struct dp_event {
    struct rte_mbuf *m;
    struct wf_key key;
    uint64_t event_id;
    uint64_t rx_ns; /* node receive time (realtime ns): the time handlers see */
    uint16_t type_off, id_off, signal_off, fields_off;
    uint16_t fields_len;
    uint16_t partition;
    uint8_t type_len, id_len, signal_len;
    uint8_t ev_index; /* position in its frame, for the ACK */
    uint8_t flags;
    uint8_t src_lcore; /* rx lcore index that received it (ACKs go back through it) */
    uint8_t port, queue;
    uint32_t frame_no; /* the rx lcore's count of frames: names the frame for its ACK */
};
_Static_assert(sizeof(struct dp_event) == 64, "dp_event is one cache line");

/* Per-lcore counters. Names (dp_counter_name) are the JSON keys of `stats`. */
enum dp_counter {
    DP_C_RX_PACKETS,
    DP_C_RX_BYTES,
    DP_C_FRAMES,
    DP_C_JSON_EVENTS,
    DP_C_EVENTS_ROUTED,
    DP_C_EVENTS_APPLIED,
    DP_C_WORKFLOWS, /* created on this owner */
    DP_C_TX_PACKETS,
    DP_C_ARP_REPLIES,
    DP_C_ICMP_REPLIES,
    DP_C_ICMP6_REPLIES,
    DP_C_NDP_REPLIES,
    DP_C_IGNORED, /* ARP/NDP chatter not for us: not an error */
    DP_C_IDLE_SLEEPS,
    DP_C_POLLS,
    DP_C_BUSY_POLLS,
    DP_C_ACKS_SENT,        /* ACK datagrams sent (after durability) */
    DP_C_ACK_ENTRIES,      /* event statuses carried by them */
    DP_C_NACKS,            /* NACK datagrams sent at once (refused events: overloaded) */
    DP_C_REPLAYED,         /* records replayed from the log at start-up */
    DP_C_TIMERS_FIRED,     /* timer firings logged and applied */
    DP_C_TASKS_DISPATCHED, /* activity tasks released after their record was durable */
    DP_C_TOMBSTONES_SWEPT, /* expired tombstones removed (logged sweeps, replay included) */
    DP_C_DELETED,          /* workflows deleted by an operator (replay included) */
    DP_C_COUNT
};

/* Drops outside the packet and frame parsers, each its own counter. */
enum dp_drop {
    DP_DROP_RING_FULL,        /* owner's ring full: event dropped, never blocks */
    DP_DROP_TABLE_FULL,       /* partition table or key store full: new workflow refused */
    DP_DROP_TX_FULL,          /* reply not sent: tx queue full */
    DP_DROP_ICMP_RATE,        /* echo answer suppressed by the rate limit */
    DP_DROP_MBUF_ALLOC,       /* no mbuf for a reply */
    DP_DROP_SOCKET_ERRORS,    /* recvmmsg errors (socket source) */
    DP_DROP_OVERLOADED,       /* refused: the log is behind (batches in flight at the limit) */
    DP_DROP_ACK_QUEUE_FULL,   /* refused: too many frames already waiting for their ACK */
    DP_DROP_ACK_TX,           /* an ACK or NACK could not be sent (no mbuf, tx or ring full) */
    DP_DROP_EVENT_TOO_LARGE,  /* refused: its log record would exceed DP_WAL_RECORD_MAX */
    DP_DROP_REPLY_SUPPRESSED, /* a reply would exceed the bytes its source sent (dp_ack.c) */
    DP_DROP_REPLY_RATE,       /* a reply to unauthenticated traffic over the per-source rate */
    DP_DROP_QUOTA,            /* refused: a new workflow over its type's [quota] */
    DP_DROP_COUNT
};

/* Frames refused by authentication (dp_senders.c), per lcore: index 0 forbidden (the key
 * may not send to that type or id), 1..4 the tag check (-enum dp_auth_verdict), 5..7 the
 * owner's replay window (DP_AUTH_DROP_WINDOW - enum dp_auth_window_verdict). */
#define DP_AUTH_DROP_FORBIDDEN 0u
#define DP_AUTH_DROP_WINDOW    4u
#define DP_AUTH_DROPS          8u

struct dp_auth_keys;
struct dp_auth_window_table;

enum dp_snap_phase { DP_SNAP_IDLE, DP_SNAP_PARTS, DP_SNAP_COMMIT, DP_SNAP_WAIT, DP_SNAP_MANIFEST };

/** An owner's snapshot state (dp_snap.c). */
struct dp_snap {
    struct snap_writer *writer; /* NULL: snapshots off */
    enum dp_snap_phase phase;
    uint32_t cursor; /* next partition to consider */
    bool part_open;
    uint8_t *stage; /* copy of the partition being written */
    size_t stage_bytes, off;
    size_t part_bytes; /* of the partition being written: its used prefix */
    uint64_t digest;
    uint64_t began_ns, last_ns, last_lsn, last_log_bytes, last_duration_ns;
    uint64_t count, errors, segments_released;
    uint64_t stall_ns_max; /* longest step of the owner loop spent here (CPU time) */
    uint64_t stall_phase_ns[DP_SNAP_MANIFEST + 1]; /* the same, by the phase it began in */
    uint64_t steps, steps_over_1ms; /* loop steps spent on snapshots, and those over 1 ms */
    uint64_t checked_ns;            /* idle: last time we looked whether one is due */
    uint64_t retention_lsn;         /* last history retention bound applied to the log */
    uint64_t manifest_ticket;       /* the MANIFEST write that must be durable before release */
};

struct dp_rxq {
    uint16_t port;
    uint16_t queue;
    uint64_t packets; /* written by the owning lcore only */
};

struct dp_lcore {
    /* identity, set before launch */
    unsigned lcore_id;
    unsigned index; /* dense index among worker lcores */
    bool rx;
    bool owner;
    unsigned owner_index; /* dense index among owners (valid when owner) */
    struct dp_rxq rxq[DP_RXQ_PER_LCORE_MAX];
    unsigned rxq_count;
    int sock_fd; /* socket source: this lcore's SO_REUSEPORT socket, or -1 */
    struct rte_ring *out[DP_LCORES_MAX]; /* rx side: ring to owner o (by owner index) */
    struct rte_ring *in[DP_LCORES_MAX];  /* owner side: ring from rx lcore r (by rx index) */
    unsigned in_count;
    struct rte_ring *mailbox;                /* control requests for this owner */
    struct rte_ring *ack_out[DP_LCORES_MAX]; /* owner side: ACK mbufs to rx lcore r */
    struct rte_ring *ack_in[DP_LCORES_MAX];  /* rx side: ACK mbufs from owner o */
    struct dp_reply_source *reply_sources;   /* rx side: per-source reply credit (dp_ack.c) */
    uint32_t frame_no;                       /* rx side: frames received (wraps) */
    struct wal *wal;           /* this owner's log (NULL when [wal] enabled = false) */
    struct dp_ack_queue *acks; /* frames waiting for durability before their ACK */
    bool io_wait;              /* batches in flight or ACKs waiting: keep back-off short */
    struct rt_core *rt;        /* this owner's workflow runtime (dp_runtime.c) */
    uint64_t reg_gen;          /* registry generation this owner uses (and has logged) */
    struct rt_firing firings[DP_FIRINGS_MAX]; /* due timers not yet logged and applied */
    unsigned firing_count;
    struct dp_task_list *tasks;          /* dispatched activity tasks, for `activity list` */
    uint32_t sweep_part;                 /* next partition the tombstone sweep looks at */
    uint64_t sweep_ns;                   /* last sweep step */
    uint64_t rt_status[RT_STATUS_COUNT]; /* apply results by status */
    uint64_t quota_max[RT_TYPES_MAX];    /* per type id: this owner's share (0: none) */
    uint64_t quota_gen;                  /* registry generation quota_max was made for */
    struct dp_snap snap;
    volatile bool power_cut_drained; /* tests: nothing of this owner's log is in flight */

    /* rx staging: events waiting for a ring enqueue, per owner */
    struct dp_event stage[DP_LCORES_MAX][DP_STAGE_EVENTS] __rte_cache_aligned;
    unsigned stage_count[DP_LCORES_MAX];

    struct pkt_token_bucket icmp_tb;
    unsigned idle_polls;
    unsigned idle_sleep_us;

    uint64_t counters[DP_C_COUNT] __rte_cache_aligned;
    uint64_t drop[DP_DROP_COUNT];
    uint64_t drop_pkt[PKT_VERDICT_COUNT];
    uint64_t drop_proto[SF_ERR_COUNT];
    uint64_t drop_auth[DP_AUTH_DROPS];
    struct dp_auth_window_table *auth_win; /* owner: replay windows (keys configured) */
} __rte_cache_aligned;

struct dp_port {
    uint16_t port_id;
    char name[DP_PORT_NAME_MAX];
    struct pkt_node_cfg addr; /* mac of this port + the node's addresses */
    unsigned rx_queues;
};

struct dp_node {
    struct dp_config cfg;
    struct dp_port ports[DP_PORTS_MAX];
    unsigned port_count;
    struct dp_lcore *lcores[DP_LCORES_MAX]; /* by dense index */
    unsigned lcore_count;
    unsigned rx_count, owner_count;
    struct dp_lcore *rx_by_index[DP_LCORES_MAX];
    struct dp_lcore *owner_by_index[DP_LCORES_MAX];
    struct wf_partmap *partmap;
    struct rt_part **parts; /* by partition; each written only by its owner */
    struct rt_registry *registries[DP_REGISTRY_GENERATIONS_MAX]; /* by generation */
    uint64_t registry_gen; /* newest published generation (atomic) */
    uint64_t *part_lsn;    /* start-up: each partition's snapshot LSN (replay skips up to it) */
    uint64_t epoch;        /* the MANIFEST's epoch: logs live in DIR/epoch-E/wal/core-N */
    char epoch_dir[DP_PATH_MAX + 40]; /* DIR/epoch-E of that epoch (the open logs keep it) */
    struct {
        uint64_t load_ns, replay_ns, checkpoint_ns, total_ns;
        uint64_t records, applied, snapshot_parts;
        uint64_t from_epoch; /* epoch recovered (the node's is newer after a layout change) */
    } recovery;              /* start-up: what recovery took */
    uint32_t part_capacity;  /* workflows per partition */
    struct rte_mempool *pool;
    uint64_t tsc_hz;
    uint64_t base_tsc;
    uint64_t base_realtime_ns;
    uint64_t start_realtime_ns;
    struct dp_auth_keys *auth_keys; /* NULL: senders not authenticated (atomic pointer) */
    volatile bool force_quit;
    volatile int fatal;               /* -errno that stopped the node (a failed log), 0 if none */
    volatile uint64_t power_cut_seed; /* tests: a power cut was started (seed, never 0) */
    unsigned power_cut_flags;         /* tests: SF_IO_CUT_* of that cut */
    char fatal_reason[256];
};

extern struct dp_node dp_node;

/* ---- durability: frames waiting for their ACK ---------------------------------------- */

/** One frame's statuses from one owner, sent once the log covers `lsn`. */
struct dp_ack_group {
    uint64_t lsn;      /* highest LSN among its events (0: nothing logged) */
    uint32_t frame_no; /* with src_lcore: which frame (struct dp_event) */
    bool authed;       /* the frame was authenticated (no per-source count limit) */
    bool complete;     /* its frame's last event for this owner was noted */
    uint64_t opened_ns;
    struct sf_ack_hdr hdr;
    struct pkt_info req; /* ethdev: where the frame came from (answer goes back there) */
    uint8_t sa[32];      /* socket source: the sender's sockaddr */
    uint16_t port, queue;
    uint8_t src_lcore;
    bool via_socket;
    struct sf_ack_entry entries[SF_FRAME_EVENTS_MAX];
};

struct dp_ack_queue {
    uint32_t size, mask; /* power of 2 */
    uint64_t head, tail; /* groups [head, tail) wait; tail - 1 may be open */
    struct dp_ack_group groups[];
};

/* ---- control requests (mailbox) ---------------------------------------------------- */

enum dp_req_kind {
    DP_REQ_DESCRIBE,
    DP_REQ_LIST,
    DP_REQ_WAL_STATS,
    DP_REQ_TUNE,
    DP_REQ_ACTIVITY, /* complete or fail an activity run by hand */
    DP_REQ_COUNTS,   /* instances by definition and state, tasks, timers */
    DP_REQ_TASKS,    /* dispatched tasks */
    DP_REQ_HISTORY,  /* the head of a workflow's history chain */
    DP_REQ_DELETE,   /* delete a workflow (logged, then rt_delete) */
};

/** A dispatched activity task (until the control plane executes them). */
struct dp_task {
    struct wf_key key;
    uint32_t part_id;
    uint16_t act_index;
    uint16_t args_len;
    uint32_t seq, attempt;
    uint64_t dispatched_ns;
    bool done; /* its result was applied */
    char type[SF_TYPE_LEN_MAX + 1];
    char id[SF_ID_LEN_MAX + 1];
    char activity[FLOW_NAME_LEN_MAX + 1];
    char idempotency_key[48];
    uint8_t args[RT_TASK_ARGS_BYTES];
};

struct dp_task_list {
    uint64_t next;
    unsigned count;
    struct dp_task task[DP_TASK_LIST_MAX];
};

struct dp_def_counts {
    const struct flow_def *def;
    uint16_t def_id;
    unsigned state_count;
    uint64_t running, completed;
    uint64_t in_state[DP_STATES_REPORT_MAX];
};

struct dp_list_entry {
    uint32_t partition;
    uint64_t cursor_after; /* resume point inside the partition */
    char type[SF_TYPE_LEN_MAX + 1];
    char id[SF_ID_LEN_MAX + 1];
    char state[FLOW_NAME_LEN_MAX + 1];
    uint32_t version;
    uint64_t signals;
    uint64_t last_event_id;
    uint64_t last_ts_ns;
};

struct dp_req {
    enum dp_req_kind kind;
    /* describe */
    struct wf_key key;
    uint32_t partition;
    bool found;
    struct rt_describe desc;
    char arena[65536]; /* copies of the texts desc points to */
    size_t arena_used;
    /* list */
    uint32_t start_partition;
    uint64_t start_cursor;
    unsigned limit;
    char type_filter[SF_TYPE_LEN_MAX + 1];
    char state_filter[FLOW_NAME_LEN_MAX + 1];
    /* activity */
    uint32_t seq;
    bool failed;
    int64_t activity_result;
    int rt_status;
    /* counts */
    struct dp_def_counts defs[DP_DEFS_REPORT_MAX];
    unsigned def_count;
    uint64_t tasks_queued, tasks_flagged, timers_armed;
    /* tasks */
    struct dp_task *task_out;
    unsigned task_count;
    struct dp_list_entry *entries;
    unsigned entry_count;
    bool more; /* the owner stopped at limit with partitions left */
    /* wal stats */
    struct wal_stats wal_stats;
    uint64_t durable_lsn, next_lsn, acks_waiting;
    /* history */
    struct rt_hlink head;
    /* delete: the workflow's names (logged with the record) */
    char wf_type[SF_TYPE_LEN_MAX];
    char wf_id[SF_ID_LEN_MAX];
    uint8_t wf_type_len, wf_id_len;
    /* tune */
    char tune_key[48];
    uint64_t tune_value;
    int result;       /* 0 or -errno */
    atomic_int state; /* enum dp_ctl_req_state: who holds it; the owner's finish is last */
};

/* ---- functions across files ------------------------------------------------------- */

const char *dp_counter_name(enum dp_counter c);
const char *dp_drop_name(enum dp_drop d);

/** Current node time in realtime nanoseconds, from the TSC. Can't fail. */
uint64_t dp_now_ns(void);

/** CLOCK_REALTIME in nanoseconds (a syscall-free vDSO read). Can't fail. */
uint64_t dp_realtime_ns(void);

/**
 * Build the node from node->cfg: lcores and roles, partitions and their tables (2 MB
 * pages), the mempool, the rings, then the rx source (ports or sockets). node->tsc_hz,
 * base_tsc and base_realtime_ns must be set. Returns 0 or -errno (reason on stderr).
 */
int dp_node_setup(struct dp_node *node);

/** Free what dp_node_setup allocated for tables. */
void dp_node_free(struct dp_node *node);

/** The loop every lcore runs until node.force_quit: rx, owner, idle back-off. */
int dp_lcore_main(void *arg);

/** Set up every configured port (queues, RSS, start). Returns 0 or -errno (logged). */
int dp_ports_init(struct dp_node *node);
void dp_ports_close(struct dp_node *node);

/** Open the socket source's per-lcore sockets. Returns 0 or -errno. */
int dp_socket_source_init(struct dp_node *node);

/** One rx pass over this lcore's queues or socket; returns the number of packets. */
unsigned dp_rx_poll(struct dp_lcore *lc);

/** Route one received UDP payload (a frame or JSON event) already in mbuf m, at data
 * offset `off` with `len` bytes. Takes ownership of m. Used by both rx sources and by
 * the pipeline benchmark. */
void dp_rx_route_payload(struct dp_lcore *lc, struct rte_mbuf *m, uint16_t off, uint16_t len,
                         uint8_t port, uint8_t queue, uint64_t rx_ns);

/** Push every staged event to its owner's ring (drops, counted, when a ring is full). */
void dp_rx_flush(struct dp_lcore *lc);

/** One owner pass: mailbox, then drain every inbound ring. Returns events applied. */
unsigned dp_owner_poll(struct dp_lcore *lc);

/** Apply a burst of events (prefetch pass, then apply pass) and free their mbufs. */
void dp_owner_apply_burst(struct dp_lcore *lc, struct dp_event *evs, unsigned n);

/* ---- little-endian fields of log records ---- */

static inline void dp_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t dp_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline void dp_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t dp_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void dp_hlink_put(uint8_t *p, struct rt_hlink l)
{
    dp_put64(p, l.a);
    dp_put64(p + 8, l.b);
}

static inline struct rt_hlink dp_hlink_get(const uint8_t *p)
{
    return (struct rt_hlink){ .a = dp_get64(p), .b = dp_get64(p + 8) };
}

/* ---- durability (dp_wal.c) ---- */

/** Log record types of the dataplane (layouts in dp_wal.c and dp_runtime.c). */
enum dp_wal_type {
    DP_WAL_SIGNAL = 1,   /* a signal: the event as received, with its receive time */
    DP_WAL_TIMER = 2,    /* a timer firing */
    DP_WAL_ACTIVITY = 3, /* an activity result */
    DP_WAL_DEPLOY = 4,   /* this core switched to a registry generation */
    DP_WAL_NOTE = 5,     /* what the input before it did (history only; replay skips it) */
    DP_WAL_SWEEP = 6,    /* expired tombstones of a partition removed (rt_sweep_tombstones) */
    DP_WAL_DELETE = 7,   /* an operator deleted a workflow (rt_delete) */
};

/*
 * History links (struct rt_hlink, stored per instance and in front of each logged input):
 *   a = segment id << 32 | byte offset of the record in its segment file
 *   b = epoch << 48 | owner core << 40 | the record's LSN mod 2^40 (a check when reading)
 * a == 0 means no link (a record never sits at offset 0). The log is DIR/epoch-E/wal/core-N.
 */
static inline struct rt_hlink dp_hlink_make(uint64_t epoch, unsigned core, uint64_t segment,
                                            uint64_t offset, uint64_t lsn)
{
    return (struct rt_hlink){ .a = segment << 32 | (offset & 0xffffffffu),
                              .b = (epoch & 0xffff) << 48 | (uint64_t)(core & 0xff) << 40 |
                                   (lsn & 0xffffffffffull) };
}

/* ---- workflows (dp_runtime.c) ---- */

/** Load the definitions store (DIR/defs) into the registry chain. 0 or -errno. */
int dp_runtime_start(struct dp_node *node);
/** Bytes of an owner's runtime region (core + its partitions). */
size_t dp_runtime_owner_bytes(const struct dp_node *node, unsigned owned);
/** Carve owner's runtime (core + partitions) from mem[0..bytes). 0 or -errno. */
int dp_runtime_init(struct dp_node *node, unsigned owner, void *mem, size_t bytes);
/** Compile and deploy .flow text (control thread). 0, -EINVAL (compile errors in msg),
 *  -EEXIST (version deployed), -errno. msg gets a one-line outcome or the errors. */
int dp_runtime_deploy(const char *file, const char *src, size_t len, char *msg, size_t msg_cap);
/** The log being replayed at start-up, and where in it replay is. */
struct dp_replay_src {
    uint64_t epoch;                       /* the log: DIR/epoch-E/wal/core-N */
    unsigned core;                        /* N */
    uint64_t gen;                         /* registry generation in force at this point */
    uint64_t loaded_lsn;                  /* LSN of the loaded snapshot's generation record */
    const struct snap_manifest *manifest; /* the log's layout when it is not the node's */
    uint64_t records;                     /* replayed (applied or skipped as in snapshot) */
    uint64_t applied;                     /* of which applied (not already in a snapshot) */
    unsigned parts_loaded;                /* partitions its snapshot held */
};
/** Replay one log record of src (start-up) on the owner of its partition in the current
 *  layout. 0 or -EBADMSG/-ENOENT. */
int dp_runtime_replay(struct dp_replay_src *src, const struct wal_record_view *r);
/** After replay: rebuild the timer wheel, re-dispatch tasks, recount. */
void dp_runtime_recovered(struct dp_lcore *lc);
/** Owner loop: adopt new deploys, fire due timers, dispatch durable tasks. */
unsigned dp_runtime_poll(struct dp_lcore *lc);
/** Bytes of one partition's region. */
size_t dp_runtime_partition_bytes(const struct dp_node *node);
/** Burst prefetch of the events' table lines and instances; refs[i] is event i's instance
 *  (RT_NONE when it does not exist yet) for dp_runtime_apply_event. */
void dp_runtime_prefetch(const struct dp_event *evs, unsigned n, uint32_t *refs);
/** Would the event (whose workflow does not exist yet) take its type over this owner's
 *  share of a [quota]? Checked before logging: a refusal is never replayed. */
bool dp_runtime_quota_refuses(struct dp_lcore *lc, const struct dp_event *ev);
/** Is the event's workflow type deployed (on this owner's registry)? */
bool dp_runtime_type_known(struct dp_lcore *lc, const struct dp_event *ev);
/** Apply a logged event (ref: from dp_runtime_prefetch in the same burst); returns its
 *  ACK status. */
uint8_t dp_runtime_apply_event(struct dp_lcore *lc, const struct dp_event *ev, uint64_t lsn,
                               uint32_t ref, struct rt_hlink loc);
/** The history link of the instance of key in part (zero when there is none). */
struct rt_hlink dp_runtime_head_link(const struct rt_part *part, struct wf_key key);
void dp_runtime_history_head(struct dp_lcore *lc, struct dp_req *req);
void dp_runtime_describe(struct dp_lcore *lc, struct dp_req *req);
void dp_runtime_list(struct dp_lcore *lc, struct dp_req *req);
void dp_runtime_activity(struct dp_lcore *lc, struct dp_req *req);
void dp_runtime_counts(struct dp_lcore *lc, struct dp_req *req);
void dp_runtime_tasks_copy(struct dp_lcore *lc, struct dp_req *req);
/** Owner: log and apply the deletion of req's workflow (req->key, req->partition,
 *  req->wf_type/wf_id): req->rt_status is RT_APPLIED or RT_NOT_FOUND, req->next_lsn the
 *  record's LSN to wait for (0: nothing logged); result -EAGAIN when the log is behind. */
void dp_runtime_delete(struct dp_lcore *lc, struct dp_req *req);

/** Recover every owner's log (replaying it into the tables) and open it for appending.
 *  Blocking; start-up only. Returns 0 or -errno (reason printed). */
int dp_wal_open_all(struct dp_node *node);
/** Log one event before applying it, with room reserved for its DP_WAL_NOTE: 0 with *lsn and
 *  *loc (the record's history link), -EAGAIN when the log is behind or -EMSGSIZE when its
 *  record would not fit DP_WAL_RECORD_MAX (refuse the event: nothing logged or applied), or
 *  a fatal -errno (the node stops). */
int dp_wal_log_signal(struct dp_lcore *lc, const struct dp_event *ev, uint64_t *lsn,
                      struct rt_hlink *loc);
/** The history link of the record the next wal_append of lc's log writes (after a
 *  successful wal_reserve). */
struct rt_hlink dp_wal_next_link(const struct dp_lcore *lc);
/* ---- replies (dp_ack.c) ---- */

/** Can ev's status be noted: its frame has an open group here, or a group is free? When
 *  not, the event must be refused before logging, without a reply. Can't fail. */
bool dp_ack_room(struct dp_lcore *lc, const struct dp_event *ev);
/** Note the status of an ACK-requested event in its frame's group, sent once the log covers
 *  `lsn` (0: nothing of it was logged). Without room (dp_ack_room) the status is dropped
 *  and counted (ack_queue_full). */
void dp_ack_note(struct dp_lcore *lc, const struct dp_event *ev, uint8_t status, uint64_t lsn);
/** Send the groups covered by the durable LSN, in order. Returns the groups sent. */
unsigned dp_ack_release(struct dp_lcore *lc, uint64_t durable);
/** Rx lcore: bytes received from a source, credited for replies to it (dp_ack.c). */
void dp_reply_credit(struct dp_lcore *lc, const uint8_t *addr, uint8_t family, uint32_t bytes);
/** Allocate / free an rx lcore's per-source reply table. 0 or -ENOMEM. */
int dp_reply_sources_init(struct dp_lcore *lc);
void dp_reply_sources_free(struct dp_lcore *lc);
/** Tests ([wal] fault_injection): arm a fault by name ("powercut", "powercut_reorder",
 *  "write_eio", "fsync_eio", "enospc", "short_write") after `skip` operations. */
int dp_wal_fault(struct dp_node *node, const char *kind, uint32_t skip, uint64_t seed);
/** After a power cut: drain the logs, rewrite the files as a disk would look, exit 137. */
void dp_wal_power_cut_finish(struct dp_node *node) __attribute__((noreturn));
/** Flush and close every owner's log (shutdown). */
void dp_wal_close_all(struct dp_node *node);
/** Owner loop: drive the log, release ACKs whose records are durable. Returns work done;
 *  a failed log stops the node (node.fatal). */
unsigned dp_wal_poll(struct dp_lcore *lc);
/** Rx loop: transmit the replies owners handed to this lcore (per-source credit and rate
 *  checked here). Returns packets sent. */
unsigned dp_ack_drain(struct dp_lcore *lc);
/** Apply a tunable on this owner ("wal.batch_bytes_max", ...). 0 or -EINVAL. */
int dp_wal_tune(struct dp_lcore *lc, const char *key, uint64_t value);

/* ---- authenticated senders (dp_senders.c) ---- */

/** Load the key set ([auth] keys, else DIR/keys if present), open the counter lease and
 *  start its thread; nothing when there are no keys. 0 or -errno (reason printed). */
int dp_senders_start(struct dp_node *node);
void dp_senders_stop(struct dp_node *node);
/** Reload the key file now (control thread; waits for the result): 0, -ENOTSUP (no keys
 *  configured at start), -ETIMEDOUT or the load's -errno (dp_senders_last_error says why;
 *  the running keys stay). */
int dp_senders_reload(void);
/** Ask for a reload from a signal handler (async-signal-safe). */
void dp_senders_reload_async(void);
const char *dp_senders_last_error(void);
/** Rx: may this frame's events go on? Checks its tag and every event's authorization and
 *  stores (key id, counter) in m's private area. False: dropped (counted), no reply. */
bool dp_senders_check_frame(struct dp_lcore *lc, const struct dp_auth_keys *keys,
                            struct rte_mbuf *m, const uint8_t *frame, uint16_t len,
                            const struct sf_frame_hdr *hdr, const struct sf_event_span *spans,
                            int n, const uint8_t *base, uint16_t off);
/** Owner: the replay window for an authenticated event. False: refused (counted). */
bool dp_senders_check_event(struct dp_lcore *lc, const struct dp_event *ev);
/** Name of drop_auth[i] ("auth_bad_tag", ...). */
const char *dp_senders_drop_name(unsigned i);

/* ---- snapshots (dp_snap.c) ---- */

/** Create each owner's snapshot writer ([snapshot] config). 0 or -errno. */
int dp_snap_init(struct dp_node *node);
/** Load the newest valid snapshot of src's (epoch, core) into the partitions it holds and
 *  their snapshot LSNs (start-up, before replaying that log); sets src->gen and
 *  src->loaded_lsn. 0 (also when there is none) or -errno (snapshots exist but none is
 *  valid, or one holds a partition that core never held). */
int dp_snap_load(struct dp_replay_src *src);
/** Start-up after a change of the owner core count: write every owner's partitions as a
 *  snapshot of epoch `epoch` with LSN 0 (its new logs are empty), synchronously. 0/-errno. */
int dp_snap_checkpoint(struct dp_node *node, uint64_t epoch);
/** Keep m (the node's MANIFEST, as written) and start the thread that rewrites it when a
 *  snapshot raises partition floors. 0 or -errno. */
int dp_snap_manifest_start(struct dp_node *node, const struct snap_manifest *m);
/** Owner loop: one bounded step of the snapshot in progress (or start one when due). */
unsigned dp_snap_poll(struct dp_lcore *lc);
void dp_snap_close(struct dp_node *node);

/** Start / stop the control socket thread (unix socket at path). Returns 0 or -errno. */
int dp_ctl_start(struct dp_node *node, const char *path);
void dp_ctl_stop(void);

#endif /* DP_H */
