/*
 * dp_node.c — the node's start-up: lcores and their roles, partitions in 2 MB pages, the
 * mempool, the rings, the rx sources. The loop each lcore runs is dp_loop.c's; main() lives
 * in main.c, so that benchmarks and tests can build a node around the same code.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include "dp.h"
#include "dp_ack.h"
#include "dp_owner.h"
#include "dp_req.h"
#include "dp_runtime.h"
#include "dp_rx.h"
#include "sf_mem.h"

#define DP_MEMPOOL_CACHE 256

struct dp_node dp_node;
static struct dp_lcore *dp_lcore_of[RTE_MAX_LCORE];

struct dp_lcore *dp_lcore_by_id(unsigned lcore_id)
{
    return lcore_id < RTE_MAX_LCORE ? dp_lcore_of[lcore_id] : NULL;
}
static void *dp_part_mem[DP_LCORES_MAX];
static size_t dp_part_mem_bytes[DP_LCORES_MAX];

static const char *const dp_counter_names[] = {
    [DP_C_RX_PACKETS] = "rx_packets",
    [DP_C_RX_BYTES] = "rx_bytes",
    [DP_C_FRAMES] = "frames",
    [DP_C_JSON_EVENTS] = "json_events",
    [DP_C_EVENTS_ROUTED] = "events_routed",
    [DP_C_EVENTS_APPLIED] = "events_applied",
    [DP_C_WORKFLOWS] = "workflows",
    [DP_C_TX_PACKETS] = "tx_packets",
    [DP_C_ARP_REPLIES] = "arp_replies",
    [DP_C_ICMP_REPLIES] = "icmp_replies",
    [DP_C_ICMP6_REPLIES] = "icmp6_replies",
    [DP_C_NDP_REPLIES] = "ndp_replies",
    [DP_C_IGNORED] = "ignored",
    [DP_C_IDLE_SLEEPS] = "idle_sleeps",
    [DP_C_POLLS] = "polls",
    [DP_C_BUSY_POLLS] = "busy_polls",
    [DP_C_ACKS_SENT] = "acks_sent",
    [DP_C_ACK_ENTRIES] = "ack_entries",
    [DP_C_NACKS] = "nacks",
    [DP_C_REPLAYED] = "replayed",
    [DP_C_TIMERS_FIRED] = "timers_fired",
    [DP_C_TASKS_DISPATCHED] = "tasks_dispatched",
    [DP_C_TOMBSTONES_SWEPT] = "tombstones_swept",
    [DP_C_DELETED] = "workflows_deleted",
    [DP_C_TASKS_DONE] = "tasks_done",
    [DP_C_TASKS_FAILED] = "tasks_failed",
    [DP_C_TASK_ATTEMPTS_FAILED] = "task_attempts_failed",
    [DP_C_TASKS_EXPIRED] = "tasks_expired",
};

static const char *const dp_drop_names[] = {
    [DP_DROP_RING_FULL] = "ring_full",
    [DP_DROP_TABLE_FULL] = "table_full",
    [DP_DROP_TX_FULL] = "tx_full",
    [DP_DROP_ICMP_RATE] = "icmp_rate_limited",
    [DP_DROP_MBUF_ALLOC] = "mbuf_alloc",
    [DP_DROP_SOCKET_ERRORS] = "socket_errors",
    [DP_DROP_OVERLOADED] = "overloaded",
    [DP_DROP_ACK_QUEUE_FULL] = "ack_queue_full",
    [DP_DROP_ACK_TX] = "ack_tx",
    [DP_DROP_EVENT_TOO_LARGE] = "event_too_large",
    [DP_DROP_REPLY_SUPPRESSED] = "reply_suppressed",
    [DP_DROP_REPLY_RATE] = "reply_rate_limited",
    [DP_DROP_QUOTA] = "quota",
    [DP_DROP_CHAN_RESULT] = "activity_result_invalid",
};

_Static_assert(sizeof(dp_counter_names) / sizeof(dp_counter_names[0]) == DP_C_COUNT,
               "every counter has a name");
_Static_assert(sizeof(dp_drop_names) / sizeof(dp_drop_names[0]) == DP_DROP_COUNT,
               "every drop reason has a name");

const char *dp_counter_name(enum dp_counter c)
{
    return c < DP_C_COUNT ? dp_counter_names[c] : "?";
}

const char *dp_drop_name(enum dp_drop d)
{
    return d < DP_DROP_COUNT ? dp_drop_names[d] : "?";
}

static bool dp_in_list(const char *spec, unsigned lcore_id)
{
    unsigned ids[DP_LCORES_MAX];
    int n = dp_config_lcore_list(spec, ids, DP_LCORES_MAX);
    if (n == 0)
        return true; /* "all" */
    for (int i = 0; i < n; i++)
        if (ids[i] == lcore_id)
            return true;
    return false;
}

static int dp_lcores_init(struct dp_node *node)
{
    unsigned lcore_id;
    RTE_LCORE_FOREACH(lcore_id)
    {
        if (node->lcore_count == DP_LCORES_MAX)
            break;
        bool rx = dp_in_list(node->cfg.rx_lcores, lcore_id);
        bool owner = dp_in_list(node->cfg.owner_lcores, lcore_id);
        if (!rx && !owner)
            continue;
        struct dp_lcore *lc = rte_zmalloc_socket("dp_lcore", sizeof(*lc), RTE_CACHE_LINE_SIZE,
                                                 (int)rte_lcore_to_socket_id(lcore_id));
        if (!lc)
            return -ENOMEM;
        lc->lcore_id = lcore_id;
        lc->index = node->lcore_count;
        lc->rx = rx;
        lc->owner = owner;
        lc->sock_fd = -1;
        lc->quota_gen = UINT64_MAX;
        pkt_tb_init(&lc->icmp_tb, node->cfg.icmp_rate, node->cfg.icmp_rate / 10 + 1);
        if (rx && dp_reply_sources_init(lc) != 0)
            return -ENOMEM;
        if (rx)
            node->rx_by_index[node->rx_count++] = lc;
        if (owner) {
            lc->owner_index = node->owner_count;
            node->owner_by_index[node->owner_count++] = lc;
        }
        node->lcores[node->lcore_count++] = lc;
        dp_lcore_of[lcore_id] = lc;
    }
    if (node->rx_count == 0 || node->owner_count == 0) {
        fprintf(stderr, "sigflowd: need at least one rx and one owner lcore (EAL -l, config "
                        "rx_lcores/owner_lcores)\n");
        return -EINVAL;
    }
    return 0;
}

static int dp_rings_init(struct dp_node *node)
{
    char name[RTE_RING_NAMESIZE];
    for (unsigned r = 0; r < node->rx_count; r++) {
        for (unsigned o = 0; o < node->owner_count; o++) {
            struct dp_lcore *owner = node->owner_by_index[o];
            snprintf(name, sizeof(name), "ev_%u_%u", r, o);
            struct rte_ring *ring = rte_ring_create_elem(
                name, sizeof(struct dp_event), node->cfg.ring_size,
                (int)rte_lcore_to_socket_id(owner->lcore_id), RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (!ring)
                return -rte_errno;
            node->rx_by_index[r]->out[o] = ring;
            owner->in[owner->in_count++] = ring;
        }
    }
    /* ACK datagrams from owner o to rx lcore r, which owns the TX queue they leave by. */
    for (unsigned o = 0; o < node->owner_count; o++) {
        for (unsigned r = 0; r < node->rx_count; r++) {
            snprintf(name, sizeof(name), "ack_%u_%u", o, r);
            struct rte_ring *ring = rte_ring_create(name, DP_ACK_RING_SIZE, SOCKET_ID_ANY,
                                                    RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (!ring)
                return -rte_errno;
            node->owner_by_index[o]->ack_out[r] = ring;
            node->rx_by_index[r]->ack_in[o] = ring;
        }
    }
    for (unsigned o = 0; o < node->owner_count; o++) {
        snprintf(name, sizeof(name), "mailbox_%u", o);
        node->owner_by_index[o]->mailbox =
            rte_ring_create(name, DP_MAILBOX_SIZE, SOCKET_ID_ANY, RING_F_SC_DEQ);
        if (!node->owner_by_index[o]->mailbox)
            return -rte_errno;
    }
    return 0;
}

/* Per-partition capacity: the mean plus six standard deviations of a uniform hash. */
static uint32_t dp_part_capacity(const struct dp_config *cfg)
{
    double mean = (double)cfg->table_capacity / cfg->partitions;
    return (uint32_t)(mean + 6.0 * sqrt(mean) + 16.0);
}

static int dp_partitions_init(struct dp_node *node)
{
    const struct dp_config *cfg = &node->cfg;
    node->partmap = calloc(1, sizeof(*node->partmap));
    node->parts = calloc(cfg->partitions, sizeof(node->parts[0]));
    if (!node->partmap || !node->parts)
        return -ENOMEM;
    int rc = wf_partmap_init(node->partmap, cfg->partitions, node->owner_count);
    if (rc != 0)
        return rc;
    node->part_capacity = dp_part_capacity(cfg);
    for (unsigned o = 0; o < node->owner_count; o++) {
        unsigned owned = 0;
        for (uint32_t p = 0; p < cfg->partitions; p++)
            owned += wf_partmap_owner(node->partmap, p) == o;
        bool huge;
        size_t bytes = dp_runtime_owner_bytes(node, owned);
        void *mem = sf_mem_alloc(bytes, &huge);
        if (!mem) {
            fprintf(stderr, "sigflowd: cannot allocate %zu MB for owner %u's workflows\n",
                    bytes >> 20, o);
            return -ENOMEM;
        }
        dp_part_mem[o] = mem;
        dp_part_mem_bytes[o] = bytes;
        rc = dp_runtime_init(node, o, mem, bytes);
        if (rc != 0)
            return rc;
        fprintf(stderr, "sigflowd: owner %u: %u partitions, %zu MB for workflows (%s)\n", o, owned,
                bytes >> 20, huge ? "hugetlbfs 2 MB pages" : "transparent huge pages advised");
    }
    return 0;
}

static void dp_assign_queues(struct dp_node *node)
{
    unsigned next = 0;
    for (unsigned p = 0; p < node->port_count; p++) {
        for (unsigned q = 0; q < node->ports[p].rx_queues; q++) {
            struct dp_lcore *lc = node->rx_by_index[next++ % node->rx_count];
            lc->rxq[lc->rxq_count++] = (struct dp_rxq){ .port = (uint16_t)p, .queue = (uint16_t)q };
        }
    }
}

void dp_node_free(struct dp_node *node)
{
    for (unsigned o = 0; o < node->owner_count; o++)
        sf_mem_free(dp_part_mem[o], dp_part_mem_bytes[o]);
    for (unsigned r = 0; r < node->rx_count; r++)
        dp_reply_sources_free(node->rx_by_index[r]);
}

int dp_node_setup(struct dp_node *node)
{
    for (unsigned i = 0; i < DP_C_COUNT; i++)
        RTE_VERIFY(dp_counter_names[i] != NULL);
    for (unsigned i = 0; i < DP_DROP_COUNT; i++)
        RTE_VERIFY(dp_drop_names[i] != NULL);
    int rc = dp_lcores_init(node);
    if (rc == 0)
        rc = dp_runtime_start(node);
    if (rc == 0)
        rc = dp_partitions_init(node);
    if (rc != 0)
        return rc;
    node->pool =
        rte_pktmbuf_pool_create("sf_mbufs", node->cfg.mempool_size, DP_MEMPOOL_CACHE,
                                DP_MBUF_PRIV_SIZE, DP_MBUF_DATA_ROOM, (int)rte_socket_id());
    if (!node->pool) {
        fprintf(stderr, "sigflowd: mempool of %u mbufs: %s\n", node->cfg.mempool_size,
                rte_strerror(rte_errno));
        return -ENOMEM;
    }
    rc = dp_rings_init(node);
    if (rc != 0) {
        fprintf(stderr, "sigflowd: rings: %s\n", rte_strerror(-rc));
        return rc;
    }
    if (node->cfg.source == DP_SOURCE_NONE)
        return 0;
    if (node->cfg.source == DP_SOURCE_SOCKET)
        return dp_socket_source_init(node);
    rc = dp_ports_init(node);
    if (rc == 0)
        dp_assign_queues(node);
    return rc;
}
