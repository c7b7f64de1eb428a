/*
 * dp_owner.c — the owner side of an lcore's loop. Each pass: the control thread's mailbox,
 * the log (completions reaped, durable replies released), then — unless the node stopped —
 * registry adoption, due timers, durable tasks, a tombstone sweep step and a snapshot step,
 * and finally the inbound rings through dp_input_burst.
 *
 * DRAINING. An rx pass can put up to queues × burst packets × SF_FRAME_EVENTS_MAX events
 * into one ring (a 32-packet burst of 28-event frames is ~900): an owner that took one
 * prefetch batch (2 × burst) per ring and pass fell behind its receiver, and a core with
 * both roles dropped batched frames as ring_full while it had CPU to spare. So each pass
 * takes from each ring, batch after batch, until the ring is empty or as many events as
 * one rx pass of that ring's receiver can bring have been taken (bounded by the ring's
 * capacity and DP_OWNER_DRAIN_MAX, so a pass stays bounded and the mailbox, the log's
 * completions and the timers are served between drains). The batch handed to
 * dp_input_burst, whose prefetches overlap, stays 2 × burst (≤ DP_OWNER_BURST_MAX).
 */
#include <rte_branch_prediction.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "dp.h"
#include "dp_chan.h"
#include "dp_input.h"
#include "dp_owner.h"
#include "dp_req.h"
#include "dp_runtime.h"
#include "dp_snap.h"
#include "dp_wal.h"

_Static_assert(DP_OWNER_BURST_MAX <= DP_OWNER_DRAIN_MAX, "a drain holds at least one batch");
_Static_assert((uint64_t)DP_LCORES_MAX *DP_OWNER_DRAIN_MAX <= UINT32_MAX, "a pass's count fits");

/* Events one pass of ring r's receiver can enqueue: its queues (a socket: one) × burst
 * packets × SF_FRAME_EVENTS_MAX, at most the ring's capacity and DP_OWNER_DRAIN_MAX. */
static unsigned dp_owner_drain_bound(const struct dp_lcore *lc, unsigned r)
{
    const struct dp_lcore *rx = dp_node.rx_by_index[r];
    RTE_ASSERT(r < dp_node.rx_count && rx->out[lc->owner_index] == lc->in[r]);
    uint64_t packets = (uint64_t)dp_node.cfg.burst * RTE_MAX(rx->rxq_count, 1u);
    uint64_t bound = RTE_MIN(packets * SF_FRAME_EVENTS_MAX, (uint64_t)DP_OWNER_DRAIN_MAX);
    return (unsigned)RTE_MIN(bound, (uint64_t)rte_ring_get_capacity(lc->in[r]));
}

/* Take ring r's events, batch after batch, until it is empty or its bound is reached.
 * Returns events taken (≤ DP_OWNER_DRAIN_MAX). */
static unsigned dp_owner_drain(struct dp_lcore *lc, unsigned r, unsigned batch)
{
    struct dp_event evs[DP_OWNER_BURST_MAX];
    unsigned bound = dp_owner_drain_bound(lc, r);
    unsigned taken = 0;
    RTE_ASSERT(batch >= 1 && batch <= DP_OWNER_BURST_MAX);
    while (taken < bound) {
        unsigned want = RTE_MIN(batch, bound - taken);
        unsigned n = rte_ring_sc_dequeue_burst_elem(lc->in[r], evs, sizeof(evs[0]), want, NULL);
        if (n == 0)
            break;
        dp_input_burst(lc, evs, n);
        taken += n;
        if (n < want)
            break; /* the ring is empty (its producer may be adding: next pass) */
    }
    RTE_ASSERT(taken <= DP_OWNER_DRAIN_MAX);
    return taken;
}

unsigned dp_owner_poll(struct dp_lcore *lc)
{
    unsigned batch = RTE_MIN(2 * dp_node.cfg.burst, (unsigned)DP_OWNER_BURST_MAX);
    unsigned total = 0;
    lc->owner_passes++;
    if (unlikely(!rte_ring_empty(lc->mailbox)))
        dp_owner_req_serve(lc);
    total += dp_wal_poll(lc);
    if (unlikely(dp_node.fatal || dp_node.power_cut_seed))
        return 0;
    dp_input_adopt(lc);
    total += dp_chan_poll(lc);
    uint64_t now = dp_now_ns();
    total += dp_input_timers(lc, now) + dp_runtime_tasks(lc) + dp_input_sweep(lc, now);
    total += dp_input_deadlines(lc, now);
    total += dp_snap_poll(lc);
    for (unsigned r = 0; r < lc->in_count; r++)
        total += dp_owner_drain(lc, r, batch);
    return total;
}
