/*
 * dp_snap.h — snapshots on the owner cores (dp_snap.c): each owner writes its partitions in
 * bounded steps of its loop; the MANIFEST thread raises partition floors; recovery loads
 * the newest valid snapshot of each log before replaying it.
 */
#ifndef DP_SNAP_H
#define DP_SNAP_H

#include <stdint.h>

#include "dp.h"
#include "snap.h"

struct dp_replay_src; /* dp_recover.h */

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

#endif /* DP_SNAP_H */
