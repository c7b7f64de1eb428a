/*
 * dp_input.h — the inputs of workflows on their owner core, each logged before it is
 * applied (dp_input.c). Owner thread only; every function acts on lc's partitions.
 */
#ifndef DP_INPUT_H
#define DP_INPUT_H

#include <stdbool.h>
#include <stdint.h>

#include "dp.h"
#include "dp_record.h"

/** Admit, log, apply and note a burst of routed events; their statuses join their frames'
 *  reply groups; frees their mbufs. A refused event is counted under its reason. Can't
 *  fail (a failed log stops the node: dp_wal_fail). */
void dp_input_burst(struct dp_lcore *lc, struct dp_event *evs, unsigned n);

/** Log and apply the timers due at `now` (up to DP_FIRINGS_MAX per call; the rest, and any
 *  the log has no room for yet, wait for the next call). Returns firings applied. */
unsigned dp_input_timers(struct dp_lcore *lc, uint64_t now);

/** Log and apply the result of activity `act` run `seq` of key's workflow (an executor or
 *  an operator delivered it): 0 with *status the enum rt_status, -EAGAIN when the log is
 *  behind (nothing logged or applied), or the log's failure. */
int dp_input_activity(struct dp_lcore *lc, uint32_t partition, struct wf_key key, unsigned act,
                      uint32_t seq, bool failed, int64_t result, int *status);

/** Log and apply a failed attempt of activity `act` run `seq` that the control plane
 *  retries (reason[0..reason_len) its executor's words, ≤ DP_REC_REASON_MAX): 0 with
 *  *status the enum rt_status, -EINVAL (reason too long), -EAGAIN when the log is behind
 *  (nothing logged or applied), or the log's failure. */
int dp_input_attempt(struct dp_lcore *lc, uint32_t partition, struct wf_key key, unsigned act,
                     uint32_t seq, uint32_t attempt, const char *reason, uint16_t reason_len,
                     int *status);

/** Every DP_DEADLINE_PERIOD_NS: runs whose schedule-to-close deadline passed are logged and
 *  applied as failed (rt_tasks_expired), a bounded number per step. Returns how many. */
unsigned dp_input_deadlines(struct dp_lcore *lc, uint64_t now);

/** Log and apply an operator's delete of key's workflow, named by *names (the record
 *  carries them; replay re-hashes them): 0 with *status RT_APPLIED or RT_NOT_FOUND and
 *  *lsn the record's LSN (0: nothing logged), -EINVAL (bad names), -EAGAIN (log behind). */
int dp_input_delete(struct dp_lcore *lc, uint32_t partition, struct wf_key key,
                    const struct dp_rec_delete *names, uint64_t *lsn, int *status);

/** One bounded, logged tombstone sweep step when one is due. Returns 1 if it ran. */
unsigned dp_input_sweep(struct dp_lcore *lc, uint64_t now);

/** Switch to the newest registry generation, logging DP_REC_DEPLOY first (not while a
 *  snapshot is in progress, nor while the log is behind: a later call does it). */
void dp_input_adopt(struct dp_lcore *lc);

/** Count an apply's enum rt_status in lc's counters (live and replay). */
void dp_input_count_status(struct dp_lcore *lc, int st);

#endif /* DP_INPUT_H */
