/*
 * dp_recover.h — start-up recovery (dp_recover.c): the MANIFEST's layout, every log's
 * snapshot loaded, every log replayed through the same apply functions as live inputs, a
 * checkpoint into a new epoch when the owner core count changed, then the logs open for
 * appending. Blocking; start-up only, before any lcore runs.
 */
#ifndef DP_RECOVER_H
#define DP_RECOVER_H

#include <stdint.h>

#include "dp.h"
#include "snap.h"
#include "wal.h"

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

/** Recover every owner's log into the tables and open it for appending; allocates the
 *  reply queues. 0 or -errno (the reason printed: a damaged log or MANIFEST, a partition
 *  count that changed, a snapshot older than its floor, definitions missing). */
int dp_recover_all(struct dp_node *node);

/** Replay one log record of src on the owner of its partition in the current layout.
 *  0, -EBADMSG (not a valid record of that log), -ENOENT (definitions it needs are not in
 *  DIR/defs). */
int dp_recover_record(struct dp_replay_src *src, const struct wal_record_view *r);

#endif /* DP_RECOVER_H */
