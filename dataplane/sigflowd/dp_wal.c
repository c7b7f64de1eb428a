/*
 * dp_wal.c — each owner core's write-ahead log as the daemon drives it. What is logged and
 * when is dp_input.c's (record layouts: dp_record.h); recovery is dp_recover.c's; this file
 * keeps the log running: its options, the per-loop poll that reaps fdatasyncs and releases
 * the replies whose records are durable (dp_ack.c), failure and shutdown. Its live tunables
 * are dp_tune.c's.
 *
 * Every loop: wal_poll() reaps completions; reply groups covered by the durable LSN leave,
 * in order. A reply is never sent before the records of its events are durable.
 *
 * Failure: a failed write or fdatasync makes the log's error sticky; the owner stops the
 * node (node.fatal), no further reply is ever sent, and the process exits non-zero so that
 * a restart recovers (never retry an fsync).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dp.h"
#include "dp_ack.h"
#include "dp_record.h"
#include "dp_wal.h"

struct wal_options dp_wal_options(const struct dp_node *node, const char *epoch_dir, unsigned core)
{
    const struct dp_config *cfg = &node->cfg;
    return (struct wal_options){
        .dir = epoch_dir,
        .core = core,
        .segment_bytes = cfg->wal_segment_bytes,
        .batch_bytes_max = cfg->wal_batch_bytes_max,
        .batch_deadline_ns = (uint64_t)cfg->wal_batch_deadline_us * 1000,
        .inflight_max = cfg->wal_inflight_max,
        .direct_io = cfg->wal_direct_io,
    };
}

struct rt_hlink dp_wal_next_link(const struct dp_lcore *lc)
{
    uint64_t seg, off;
    wal_next_location(lc->wal, &seg, &off);
    return dp_hlink_make(dp_node.epoch, lc->owner_index, seg, off, wal_next_lsn(lc->wal));
}

void dp_wal_fail(struct dp_lcore *lc, int rc)
{
    if (!dp_node.fatal) {
        dp_node.fatal = rc;
        snprintf(dp_node.fatal_reason, sizeof(dp_node.fatal_reason),
                 "owner %u: write-ahead log failed: %s (nothing after lsn %" PRIu64
                 " was acknowledged; restart to recover)",
                 lc->owner_index, strerror(-rc), wal_durable_lsn(lc->wal));
    }
    dp_node.force_quit = true;
    if (lc->acks)
        lc->acks->head = lc->acks->tail; /* never acknowledge what was not made durable */
}

unsigned dp_wal_poll(struct dp_lcore *lc)
{
    struct dp_ack_queue *q = lc->acks;
    if (!lc->wal)
        return 0; /* volatile mode (benchmarks): no ACK is ever sent */
    if (unlikely(dp_node.power_cut_seed)) {
        /* Tests: the power is gone. Nothing more is appended or acknowledged; reap what is
         * in flight (it fails), then report this owner drained. Drained means every write
         * and fdatasync came back (wal_io_idle), not wal_inflight() == 0: a failed log never
         * retires its batches, and the cut must rewrite the files only after the kernel
         * finished writing them. */
        wal_poll(lc->wal, dp_now_ns());
        q->head = q->tail;
        if (wal_io_idle(lc->wal))
            lc->power_cut_drained = true;
        return 0;
    }
    int rc = wal_poll(lc->wal, dp_now_ns());
    if (rc < 0) {
        dp_wal_fail(lc, rc);
        return 0;
    }
    unsigned sent = q->head < q->tail ? dp_ack_release(lc, wal_durable_lsn(lc->wal)) : 0;
    lc->io_wait = q->head < q->tail || wal_inflight(lc->wal) > 0 ||
                  wal_next_lsn(lc->wal) > wal_durable_lsn(lc->wal) + 1;
    return (unsigned)rc + sent;
}

void dp_wal_close_all(struct dp_node *node)
{
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_lcore *lc = node->owner_by_index[o];
        if (lc->wal) {
            int rc = wal_close(lc->wal);
            if (rc != 0)
                fprintf(stderr, "sigflowd: owner %u: log close: %s\n", o, strerror(-rc));
            lc->wal = NULL;
        }
    }
    dp_ack_queues_free(node);
}
