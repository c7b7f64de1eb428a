/*
 * dp_loop.c — the loop every lcore runs until the node stops: an rx pass (its queues or
 * socket, then the replies owners handed it), an owner pass (dp_owner.c), and, when both
 * found nothing to do, the idle back-off. The back-off follows DPDK's l3fwd-power: spin
 * with pause for idle_pause_polls passes, then sleep, doubling from 1 µs up to
 * idle_sleep_max_us (DP_IO_WAIT_SLEEP_MAX_US while the log has batches in flight or replies
 * wait, so an fdatasync's completion is not left lying). Any work resets it.
 */
#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_pause.h>

#include "dp.h"
#include "dp_clock.h"
#include "dp_owner.h"
#include "dp_rx.h"

/* Idle back-off (as l3fwd-power): pause for a while, then sleep, doubling up to the max. */
static void dp_idle(struct dp_lcore *lc)
{
    if (lc->idle_polls < dp_node.cfg.idle_pause_polls) {
        lc->idle_polls++;
        rte_pause();
        return;
    }
    if (dp_node.cfg.idle_sleep_max_us == 0)
        return;
    unsigned max_us = dp_node.cfg.idle_sleep_max_us;
    if (lc->io_wait && max_us > DP_IO_WAIT_SLEEP_MAX_US)
        max_us = DP_IO_WAIT_SLEEP_MAX_US; /* an fdatasync or an ACK is due soon */
    lc->idle_sleep_us = lc->idle_sleep_us ? lc->idle_sleep_us * 2 : 1;
    if (lc->idle_sleep_us > max_us)
        lc->idle_sleep_us = max_us;
    lc->counters[DP_C_IDLE_SLEEPS]++;
    rte_delay_us_sleep(lc->idle_sleep_us);
}

int dp_lcore_main(void *arg)
{
    (void)arg;
    struct dp_lcore *lc = dp_lcore_by_id(rte_lcore_id());
    if (!lc)
        return 0;
    while (!dp_node.force_quit) {
        unsigned work = 0;
        if (lc->rx)
            work += dp_rx_poll(lc);
        if (lc->owner)
            work += dp_owner_poll(lc);
        lc->counters[DP_C_POLLS]++;
        if (work) {
            lc->counters[DP_C_BUSY_POLLS]++;
            lc->idle_polls = 0;
            lc->idle_sleep_us = 0;
            continue;
        }
        dp_idle(lc);
    }
    return 0;
}
