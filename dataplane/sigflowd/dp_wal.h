/*
 * dp_wal.h — each owner core's write-ahead log (storage/wal.h) as the daemon drives it
 * (dp_wal.c): options from the configuration, the per-loop poll that reaps fdatasyncs and
 * releases replies, the history link of the next record, failure, shutdown (the log's
 * live tunables: dp_tune.h).
 */
#ifndef DP_WAL_H
#define DP_WAL_H

#include <stdint.h>

#include "dp.h"
#include "wal.h"

/** The options of core `core`'s log in epoch directory epoch_dir (kept by the log). */
struct wal_options dp_wal_options(const struct dp_node *node, const char *epoch_dir, unsigned core);

/** The history link of the record the next wal_append of lc's log writes (after a
 *  successful wal_reserve). Can't fail. */
struct rt_hlink dp_wal_next_link(const struct dp_lcore *lc);

/** lc's log failed with rc: stop the node (node.fatal, its reason); nothing is
 *  acknowledged from here on and the process exits non-zero so a restart recovers. */
void dp_wal_fail(struct dp_lcore *lc, int rc);

/** Owner loop: drive the log, release replies whose records are durable. Returns work
 *  done; a failed log stops the node (dp_wal_fail). */
unsigned dp_wal_poll(struct dp_lcore *lc);

/** Flush and close every owner's log (shutdown). */
void dp_wal_close_all(struct dp_node *node);

#endif /* DP_WAL_H */
