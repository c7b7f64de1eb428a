/*
 * dp_owner.c — the owner side of an lcore's loop. Each pass: the control thread's mailbox,
 * the log (completions reaped, durable replies released), then — unless the node stopped —
 * registry adoption, due timers, durable tasks, a tombstone sweep step and a snapshot step,
 * and finally the inbound rings, one burst per ring, through dp_input_burst.
 */
#include <rte_branch_prediction.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "dp.h"
#include "dp_input.h"
#include "dp_owner.h"
#include "dp_req.h"
#include "dp_runtime.h"
#include "dp_snap.h"
#include "dp_wal.h"

unsigned dp_owner_poll(struct dp_lcore *lc)
{
    struct dp_event evs[DP_OWNER_BURST_MAX];
    unsigned burst = RTE_MIN(2 * dp_node.cfg.burst, (unsigned)DP_OWNER_BURST_MAX);
    unsigned total = 0;
    lc->owner_passes++;
    if (unlikely(!rte_ring_empty(lc->mailbox)))
        dp_owner_req_serve(lc);
    total += dp_wal_poll(lc);
    if (unlikely(dp_node.fatal || dp_node.power_cut_seed))
        return 0;
    dp_input_adopt(lc);
    uint64_t now = dp_now_ns();
    total += dp_input_timers(lc, now) + dp_runtime_tasks(lc) + dp_input_sweep(lc, now);
    total += dp_snap_poll(lc);
    for (unsigned r = 0; r < lc->in_count; r++) {
        unsigned n = rte_ring_sc_dequeue_burst_elem(lc->in[r], evs, sizeof(evs[0]), burst, NULL);
        if (n == 0)
            continue;
        dp_input_burst(lc, evs, n);
        total += n;
    }
    return total;
}
