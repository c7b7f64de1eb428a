/*
 * dp_chan.h — sigflowd's side of the activity channel (dataplane/chan/chan.h) to
 * sigflow-control.
 *
 * A thread (not an lcore) listens on DIR/activity.sock (unix SEQPACKET, mode 0600) and
 * serves one control process at a time: on its hello it creates one channel file per owner
 * core, sends them (SCM_RIGHTS) and publishes them to the owners; when the connection
 * closes, or an owner finds the peer broken, it unpublishes them, waits until every owner
 * has let go, and unmaps them. Each publication is a new generation.
 *
 * Owner side, every loop pass (dp_chan_poll): take results: each is checked
 * (chan_result_valid, the partition is this owner's and the key's) and logged and applied
 * like any input (dp_input_activity, dp_input_attempt); a result the log cannot take yet
 * (-EAGAIN) is held and retried on the next pass, never dropped. When a new generation is
 * published, the results the old connection's control process wrote are taken first (up
 * to one ring's worth: a control process that stops pushes its last outcomes and closes
 * at once), then the owner adopts it — on connect, every run in flight is queued again
 * (rt_tasks_reset), so that a restarted control process gets every task without a logged
 * outcome (at least once). dp_chan_push_task puts one task into the ring. Without a connection,
 * tasks stay queued in the runtime (counted by `stats` as tasks_queued/flagged; `activity list`
 * lists every run in flight).
 */
#ifndef DP_CHAN_H
#define DP_CHAN_H

#include <stdbool.h>
#include <stdint.h>

#include "chan.h"
#include "rt.h"

#define DP_CHAN_RESULTS_PER_POLL 256u  /* results an owner logs and applies per pass */
#define DP_CHAN_HELLO_TIMEOUT_MS 2000u /* a connecting control process says hello within */
#define DP_CHAN_POLL_MS          100u  /* the thread looks at the stop flag this often */

struct dp_node;
struct dp_lcore;

/** Per owner: what the channel thread publishes and the owner adopts. */
struct dp_chan_owner {
    struct chan *pub;  /* published channel (atomic pointer), NULL when disconnected */
    uint64_t pub_gen;  /* generation of pub (atomic, written by the thread) */
    uint64_t seen_gen; /* generation the owner adopted (atomic, written by the owner) */
    bool broken;       /* the owner found the peer broken (atomic): the thread disconnects */
    /* owner-private */
    struct chan *cur;
    uint64_t gen;
    struct chan_result held; /* a result the log could not take yet */
    bool holding;
    bool draining;       /* a new generation is published: the old results ring first */
    uint32_t drain_left; /* results still taken from the old ring before adopting */
};

/**
 * Start the channel thread on `path` (replacing a stale socket). Returns 0, or -errno of
 * socket/bind/listen/pthread_create (nothing left open then).
 */
int dp_chan_start(struct dp_node *node, const char *path);

/** Stop the thread, close the connection and the socket, unmap the channels. Call after
 *  the lcores stopped. Safe when not started. */
void dp_chan_stop(void);

/** Whether a control process is connected (for `stats`). */
bool dp_chan_connected(void);

/**
 * Owner, each loop pass: log and apply up to DP_CHAN_RESULTS_PER_POLL results; on a new
 * generation, those left in the old ring first, then adopt it. Returns the results taken
 * (applied, or dropped as invalid). Can't fail: a broken peer is flagged for the thread,
 * the log's failure stops the node as any input's does.
 */
unsigned dp_chan_poll(struct dp_lcore *lc);

/** Owner: is a channel adopted (tasks can go out)? Can't fail. */
bool dp_chan_ready(const struct dp_lcore *lc);

/**
 * Owner: put task t into the channel. Returns 0, -ENOSPC when the ring is full (t stays
 * queued in the runtime), -ENOTCONN without a channel.
 */
int dp_chan_push_task(struct dp_lcore *lc, const struct rt_task *t);

#endif
