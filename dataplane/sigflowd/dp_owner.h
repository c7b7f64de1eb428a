/*
 * dp_owner.h — the owner side of an lcore's loop (dp_owner.c): its mailbox, its log, its
 * workflows' timers, tasks, sweeps and snapshots, then its inbound rings in bursts.
 */
#ifndef DP_OWNER_H
#define DP_OWNER_H

#include "dp.h"

/** One owner pass. Returns the work done (0: idle). */
unsigned dp_owner_poll(struct dp_lcore *lc);

#endif /* DP_OWNER_H */
