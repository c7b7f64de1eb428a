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

#include "dp_clock.h"
#include "dp_config.h"
#include "wf_key.h"
#include "wf_partmap.h"
#include "pkt.h"
#include "sf_proto.h"
#include "rt.h"
#include "snap.h"
#include "wal.h"

#define DP_RXQ_PER_LCORE_MAX        (DP_PORTS_MAX * DP_RX_QUEUES_MAX)
#define DP_STAGE_EVENTS             64   /* events staged per owner before a ring enqueue */
#define DP_OWNER_BURST_MAX          256  /* events dequeued from one ring at a time */
#define DP_OWNER_DRAIN_MAX          4096 /* events taken from one ring in one owner pass */
#define DP_MAILBOX_SIZE             64
#define DP_TX_BURST_MAX             32
#define DP_MBUF_DATA_ROOM           (RTE_PKTMBUF_HEADROOM + 2048)
#define DP_LIST_LIMIT_MAX           1000
#define DP_ACK_RING_SIZE            1024 /* ACK mbufs from one owner to one rx lcore */
#define DP_IO_WAIT_SLEEP_MAX_US     20   /* idle sleep cap while log batches or ACKs are pending */
#define DP_REGISTRY_GENERATIONS_MAX (RT_DEFS_MAX + 1) /* deploys on one node, + the empty one */
#define DP_OUTBOUND_TASKS           4096 /* activity tasks queued per owner (rt outbound queue) */
#define DP_FIRINGS_MAX              64   /* timer firings taken per owner loop iteration */
#define DP_TASKS_PER_POLL           64   /* tasks dispatched per owner loop iteration */
#define DP_DEFS_REPORT_MAX          64
#define DP_STATES_REPORT_MAX        FLOW_STATES_MAX

/* flags of struct dp_event */
#define DP_EV_HAS_EVENT_ID 0x01
#define DP_EV_FIELDS_JSON  0x02
#define DP_EV_ACK_REQ      0x04
#define DP_EV_AUTHED       0x08 /* its frame's tag verified (dp_auth.c) */
#define DP_EV_FRAME_LAST   0x10 /* the last event of its frame routed to its owner */

#define DP_MBUF_PRIV_SIZE 128  /* struct dp_mbuf_priv; replies: dp_ack.c's meta */
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
    DP_C_TASKS_DISPATCHED, /* activity tasks put into the channel once their record was durable */
    DP_C_TOMBSTONES_SWEPT, /* expired tombstones removed (logged sweeps, replay included) */
    DP_C_DELETED,          /* workflows deleted by an operator (replay included) */
    DP_C_TASKS_DONE,       /* results from sigflow-control: runs done, logged and applied */
    DP_C_TASKS_FAILED,     /* ... runs failed for good */
    DP_C_TASK_ATTEMPTS_FAILED, /* ... attempts failed and retried (ATTEMPT records) */
    DP_C_TASKS_EXPIRED,        /* runs failed by their schedule-to-close deadline */
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
    DP_DROP_CHAN_RESULT,      /* a result from sigflow-control out of range or not this core's */
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

struct dp_chan_owner; /* dp_chan.h */

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
    struct dp_chan_owner *chan;          /* the channel to sigflow-control (dp_chan.h) */
    uint32_t sweep_part;                 /* next partition the tombstone sweep looks at */
    uint64_t sweep_ns;                   /* last sweep step */
    uint64_t deadline_ns;                /* last schedule-to-close step (dp_input_deadlines) */
    uint64_t rt_status[RT_STATUS_COUNT]; /* apply results by status */
    uint64_t quota_max[RT_TYPES_MAX];    /* per type id: this owner's share (0: none) */
    uint64_t quota_gen;                  /* registry generation quota_max was made for */
    struct dp_snap snap;
    uint64_t owner_passes;           /* dp_owner_poll calls: reply groups wait on them (dp_ack.c) */
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
    struct dp_auth_keys *auth_keys; /* NULL: senders not authenticated (atomic pointer) */
    volatile bool force_quit;
    volatile int fatal;               /* -errno that stopped the node (a failed log), 0 if none */
    volatile uint64_t power_cut_seed; /* tests: a power cut was started (seed, never 0) */
    unsigned power_cut_flags;         /* tests: SF_IO_CUT_* of that cut */
    char fatal_reason[256];
};

extern struct dp_node dp_node;

/** Where a frame's replies go: the rx core writes it for frames that ask for ACKs, from
 *  what it parsed already, so that the owner opening the frame's reply group parses nothing
 *  again (dp_ack.c). */
struct dp_reply_origin {
    uint32_t sender_id;
    uint8_t has_req; /* req holds the received packet's headers (ethdev source) */
    uint8_t pad[3];
    uint64_t frame_seq;
    struct pkt_info req;
};

/** An authenticated frame's sender key and counter (dp_senders.c). */
struct dp_auth_priv {
    uint32_t key_id;
    uint32_t reserved;
    uint64_t counter;
};

/** The private area of a received frame's mbuf. */
struct dp_mbuf_priv {
    uint8_t sa[32];                /* socket source: the sender's sockaddr (recvmmsg) */
    struct dp_auth_priv auth;      /* dp_senders.c: the frame's key id and counter */
    struct dp_reply_origin origin; /* dp_ack.c */
};
_Static_assert(sizeof(struct dp_mbuf_priv) <= DP_MBUF_PRIV_SIZE, "fits the mbuf's private area");
_Static_assert(DP_MBUF_PRIV_SIZE % RTE_MBUF_PRIV_ALIGN == 0, "an mbuf private size DPDK takes");

static inline struct dp_mbuf_priv *dp_mbuf_priv(struct rte_mbuf *m)
{
    return (struct dp_mbuf_priv *)rte_mbuf_to_priv(m);
}

/* ---- the node ------------------------------------------------------------------------ */

const char *dp_counter_name(enum dp_counter c);
const char *dp_drop_name(enum dp_drop d);

/** The lcore of EAL lcore id (NULL: not a worker of the node). */
struct dp_lcore *dp_lcore_by_id(unsigned lcore_id);

/**
 * Build the node from node->cfg: lcores and roles, partitions and their tables (2 MB
 * pages), the mempool, the rings, then the rx source (ports or sockets). Returns 0 or
 * -errno (reason on stderr).
 */
int dp_node_setup(struct dp_node *node);

/** Free what dp_node_setup allocated for tables. */
void dp_node_free(struct dp_node *node);

/** The loop every lcore runs until node.force_quit: rx, owner, idle back-off. */
int dp_lcore_main(void *arg);

#endif /* DP_H */
