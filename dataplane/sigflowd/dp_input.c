/*
 * dp_input.c — every input of a workflow takes one way on its owner core: admitted, logged,
 * applied, noted. Signals (routed events), timer firings, activity results, operator
 * deletes, tombstone sweeps and registry switches all go through here, so the rule
 * "nothing is applied before its record is appended, nothing leaves before it is durable"
 * is written once (docs/architecture.md#the-path-of-one-event).
 *
 * One signal, in dp_input_burst:
 *     prefetch     the burst's table lines and instances (refs[i]: the instance or RT_NONE)
 *     admit        replay window (authenticated senders), room for the frame's reply, a
 *                  deployed type, the type's [quota]: a refusal is never logged or applied
 *     current      rt_inst_current: the prefetched instance, looked up again only when an
 *                  earlier event of the burst may have changed it — the one lookup
 *     append       DP_REC_SIGNAL (dp_record.h) with the instance's history link, and room
 *                  reserved for its NOTE; -EAGAIN: "overloaded", refused
 *     apply        rt_apply_signal_current on that instance: the runtime returns what the
 *                  handler did (created, completed, the runs it scheduled)
 *     note         from those effects, a DP_REC_NOTE and the instance's new history link
 *     reply        the status joins the frame's reply group (dp_ack.c), sent when durable
 *
 * TOMBSTONES. Every DP_SWEEP_PERIOD_NS an owner looks at its next partition holding
 * tombstones and, when tombstone_retention_s > 0, logs and runs one bounded sweep step of
 * it: expired tombstones leave the partition (table slot, record, key store entry reused).
 * The step is a logged input like any other, so replay removes exactly the same ones.
 * Replay feeds the same records to the same functions, so state after recovery equals the
 * state before the crash for everything logged.
 *
 * HISTORY. Every input of a workflow carries `prev`, the workflow's history link before it
 * (dp_record.h: log, segment, offset), and once the input is applied the instance's link points at
 * it — or at the DP_REC_NOTE appended right after it when the input created the instance,
 * scheduled activities or completed it (room for the note is reserved with the input).
 * The links form a chain through the log, newest first, that `workflow history` follows
 * without scanning. Replay sets the same links from the records' locations, so the chain
 * survives restarts and snapshots; an input that changed nothing (duplicate, stale,
 * refused) is not linked.
 *
 * Failure: an append that finds the log failed stops the node (dp_wal_fail); nothing after
 * it is applied or acknowledged.
 */
#include <errno.h>
#include <string.h>

#include <rte_branch_prediction.h>
#include <rte_mbuf.h>

#include "dp.h"
#include "dp_ack.h"
#include "dp_input.h"
#include "dp_record.h"
#include "dp_runtime.h"
#include "dp_senders.h"
#include "dp_wal.h"

_Static_assert(DP_EV_HAS_EVENT_ID == DP_REC_SIG_HAS_EVENT_ID &&
                   DP_EV_FIELDS_JSON == DP_REC_SIG_FIELDS_JSON,
               "a signal record keeps the routed event's flag bits");
_Static_assert(RT_EFFECT_RUNS >= DP_REC_NOTE_RUNS, "a note lists what the effects list");

void dp_input_count_status(struct dp_lcore *lc, int st)
{
    lc->rt_status[st < RT_STATUS_COUNT && st >= 0 ? st : RT_FULL]++;
    if (unlikely(st == RT_FULL))
        lc->drop[DP_DROP_TABLE_FULL]++; /* no room for a new workflow in its partition */
    if (st == RT_APPLIED || st == RT_CREATED)
        lc->counters[DP_C_EVENTS_APPLIED]++;
    if (st == RT_CREATED)
        lc->counters[DP_C_WORKFLOWS]++;
}

/* Append one input record with room for its NOTE (note_room) reserved. 0 with *lsn and
 * *loc (the record's history link), -EAGAIN when the log is behind (nothing appended), or
 * the log's failure (the node stops). */
static int dp_input_log(struct dp_lcore *lc, enum dp_rec_type type, uint32_t partition,
                        struct wf_key key, const uint8_t *rec, uint32_t len, bool note_room,
                        uint64_t *lsn, struct rt_hlink *loc)
{
    uint64_t need = wal_record_bytes(len) + (note_room ? wal_record_bytes(DP_REC_NOTE_MAX) : 0);
    int rc = wal_reserve(lc->wal, need);
    if (unlikely(rc != 0)) {
        if (rc != -EAGAIN)
            dp_wal_fail(lc, rc);
        return rc;
    }
    *loc = dp_wal_next_link(lc);
    *lsn = wal_append(lc->wal, type, partition, (struct wal_key){ .hi = key.hi, .lo = key.lo }, rec,
                      len);
    return 0;
}

/* After an input logged at `loc` was applied (status st, effects fx): append its NOTE when
 * it created the instance, scheduled runs or completed it (room was reserved with the
 * input), and point the instance's history link at the newest record. Log on only. */
static void dp_input_noted(struct dp_lcore *lc, struct rt_part *part, struct wf_key key, int st,
                           const struct rt_effects *fx, struct rt_hlink loc)
{
    if (fx->inst_ref == RT_NONE)
        return;
    if (st == RT_CREATED || fx->tasks > 0 || fx->completed) {
        struct dp_rec_note n = {
            .prev = loc,
            .def_id = fx->def_id,
            .flags = (uint8_t)((st == RT_CREATED ? DP_REC_NOTE_CREATED : 0) |
                               (fx->completed ? DP_REC_NOTE_COMPLETED : 0)),
            .nruns = (uint8_t)(fx->tasks < DP_REC_NOTE_RUNS ? fx->tasks : DP_REC_NOTE_RUNS),
        };
        memcpy(n.runs, fx->runs, n.nruns * sizeof(n.runs[0]));
        uint8_t rec[DP_REC_NOTE_MAX];
        uint32_t len = dp_rec_note_encode(&n, rec, sizeof(rec));
        RTE_ASSERT(len > 0);
        loc = dp_wal_next_link(lc);
        wal_append(lc->wal, DP_REC_NOTE, rt_part_id(part),
                   (struct wal_key){ .hi = key.hi, .lo = key.lo }, rec, len);
    }
    rt_inst_set_hlink(part, fx->inst_ref, loc);
}

static inline struct rt_hlink dp_input_head(const struct rt_part *part, uint32_t ref)
{
    return ref == RT_NONE ? (struct rt_hlink){ 0, 0 } : rt_inst_hlink(part, ref);
}

/* Log and apply one admitted signal whose prefetched instance is `ref`. Returns its ACK
 * status; *lsn is its record's LSN (0: refused, nothing logged). */
static uint8_t dp_input_signal(struct dp_lcore *lc, const struct dp_event *ev, uint32_t ref,
                               uint64_t *lsn)
{
    const char *base = rte_pktmbuf_mtod(ev->m, const char *);
    struct rt_part *part = dp_node.parts[ev->partition];
    struct rt_event rev = {
        .key = ev->key,
        .type = base + ev->type_off,
        .id = base + ev->id_off,
        .signal = base + ev->signal_off,
        .fields = (const uint8_t *)base + ev->fields_off,
        .event_id = ev->event_id,
        .now_ns = ev->rx_ns,
        .fields_len = ev->fields_len,
        .type_len = ev->type_len,
        .id_len = ev->id_len,
        .signal_len = ev->signal_len,
        .has_event_id = (ev->flags & DP_EV_HAS_EVENT_ID) != 0,
        .fields_json = (ev->flags & DP_EV_FIELDS_JSON) != 0,
    };
    ref = rt_inst_current(part, ev->key, ref);
    struct rt_hlink loc = { 0, 0 };
    *lsn = 0;
    if (lc->wal) {
        struct dp_rec_signal s = {
            .event_id = ev->event_id,
            .rx_ns = ev->rx_ns,
            .flags = ev->flags & (DP_EV_HAS_EVENT_ID | DP_EV_FIELDS_JSON),
            .type_len = ev->type_len,
            .id_len = ev->id_len,
            .signal_len = ev->signal_len,
            .fields_len = ev->fields_len,
            .prev = dp_input_head(part, ref),
            .type = rev.type,
            .id = rev.id,
            .signal = rev.signal,
            .fields = rev.fields,
        };
        uint8_t rec[DP_REC_SIGNAL_MAX];
        uint32_t len = dp_rec_signal_encode(&s, rec, sizeof(rec));
        if (unlikely(len == 0)) { /* a parser let through what the log can't hold */
            lc->drop[DP_DROP_EVENT_TOO_LARGE]++;
            return SF_ACK_MALFORMED;
        }
        int rc = dp_input_log(lc, DP_REC_SIGNAL, ev->partition, ev->key, rec, len, true, lsn, &loc);
        if (unlikely(rc != 0)) {
            lc->drop[DP_DROP_OVERLOADED]++;
            return SF_ACK_OVERLOADED;
        }
        rev.cause = *lsn;
    }
    struct rt_effects fx;
    int st = rt_apply_signal_current(lc->rt, part, &rev, ref, &fx);
    if (lc->wal)
        dp_input_noted(lc, part, ev->key, st, &fx, loc);
    dp_input_count_status(lc, st);
    return (uint8_t)rt_status_ack(st);
}

void dp_input_burst(struct dp_lcore *lc, struct dp_event *evs, unsigned n)
{
    uint32_t refs[DP_OWNER_BURST_MAX];
    RTE_ASSERT(n <= DP_OWNER_BURST_MAX);
    dp_runtime_prefetch(evs, n, refs);
    for (unsigned i = 0; i < n; i++) {
        struct dp_event *ev = &evs[i];
        RTE_ASSERT(wf_partmap_owner(dp_node.partmap, ev->partition) == lc->owner_index);
        if (unlikely(ev->flags & DP_EV_AUTHED) && !dp_senders_check_event(lc, ev)) {
            rte_pktmbuf_free(ev->m); /* a replayed frame: refused unanswered, counted */
            continue;
        }
        bool ack = (ev->flags & DP_EV_ACK_REQ) != 0 && lc->wal;
        uint64_t lsn = 0;
        uint8_t status;
        /* Refused before logging (nothing applied; the refusal joins the frame's reply): an
         * undeployed type, a type at its quota. Without room for the frame's reply the
         * event is refused unanswered: the sender resends after its timeout. */
        if (unlikely(ack && !dp_ack_room(lc, ev))) {
            lc->drop[DP_DROP_ACK_QUEUE_FULL]++;
            rte_pktmbuf_free(ev->m);
            continue;
        } else if (unlikely(!dp_runtime_type_known(lc, ev))) {
            lc->rt_status[RT_UNKNOWN_TYPE]++;
            status = SF_ACK_UNKNOWN;
        } else if (unlikely(dp_node.cfg.quota_count != 0 && refs[i] == RT_NONE) &&
                   dp_runtime_quota_refuses(lc, ev)) {
            lc->drop[DP_DROP_QUOTA]++;
            status = SF_ACK_FULL;
        } else {
            status = dp_input_signal(lc, ev, refs[i], &lsn);
        }
        if (ack && !dp_node.fatal)
            dp_ack_note(lc, ev, status, lsn);
        rte_pktmbuf_free(ev->m);
    }
}

unsigned dp_input_timers(struct dp_lcore *lc, uint64_t now)
{
    if (lc->firing_count < DP_FIRINGS_MAX)
        lc->firing_count += rt_timers_due(lc->rt, now, DP_FIRINGS_MAX - lc->firing_count,
                                          lc->firings + lc->firing_count);
    unsigned done = 0;
    while (done < lc->firing_count) {
        const struct rt_firing *f = &lc->firings[done];
        uint64_t lsn = 0;
        struct rt_hlink loc = { 0, 0 };
        if (lc->wal) {
            struct dp_rec_timer t = { .slot = f->slot,
                                      .due_ns = f->due_ns,
                                      .prev =
                                          dp_input_head(f->part, rt_inst_find(f->part, f->key)) };
            uint8_t rec[DP_REC_TIMER_LEN];
            uint32_t len = dp_rec_timer_encode(&t, rec, sizeof(rec));
            if (dp_input_log(lc, DP_REC_TIMER, f->part_id, f->key, rec, len, true, &lsn, &loc) != 0)
                break; /* the log is behind: the rest fire at a later iteration */
        }
        struct rt_effects fx;
        int st = rt_apply_timer(lc->rt, f->part, f->key, f->slot, f->due_ns, lsn, &fx);
        if (lc->wal)
            dp_input_noted(lc, f->part, f->key, st, &fx, loc);
        dp_input_count_status(lc, st);
        lc->counters[DP_C_TIMERS_FIRED]++;
        done++;
    }
    memmove(lc->firings, lc->firings + done, (lc->firing_count - done) * sizeof(lc->firings[0]));
    lc->firing_count -= done;
    return done;
}

int dp_input_activity(struct dp_lcore *lc, uint32_t partition, struct wf_key key, unsigned act,
                      uint32_t seq, bool failed, int64_t result, int *status)
{
    struct rt_part *part = dp_node.parts[partition];
    uint64_t now = dp_now_ns(), lsn = 0;
    struct rt_hlink loc = { 0, 0 };
    if (lc->wal) {
        struct dp_rec_activity a = { .act = (uint16_t)act,
                                     .failed = failed,
                                     .seq = seq,
                                     .result = result,
                                     .now_ns = now,
                                     .prev = dp_input_head(part, rt_inst_find(part, key)) };
        uint8_t rec[DP_REC_ACTIVITY_LEN];
        uint32_t len = dp_rec_activity_encode(&a, rec, sizeof(rec));
        int rc = dp_input_log(lc, DP_REC_ACTIVITY, partition, key, rec, len, true, &lsn, &loc);
        if (rc != 0)
            return rc;
    }
    struct rt_effects fx;
    int st = rt_apply_activity_result(lc->rt, part, key, act, seq, failed, result, now, lsn, &fx);
    if (lc->wal)
        dp_input_noted(lc, part, key, st, &fx, loc);
    dp_input_count_status(lc, st);
    *status = st;
    return 0;
}

int dp_input_attempt(struct dp_lcore *lc, uint32_t partition, struct wf_key key, unsigned act,
                     uint32_t seq, uint32_t attempt, const char *reason, uint16_t reason_len,
                     int *status)
{
    struct rt_part *part = dp_node.parts[partition];
    uint32_t ref = rt_inst_find(part, key);
    struct rt_hlink loc = { 0, 0 };
    if (lc->wal) {
        struct dp_rec_attempt a = { .act = (uint16_t)act,
                                    .reason_len = reason_len,
                                    .seq = seq,
                                    .attempt = attempt,
                                    .now_ns = dp_now_ns(),
                                    .prev = dp_input_head(part, ref),
                                    .reason = reason };
        uint8_t rec[DP_REC_ATTEMPT_MAX];
        uint32_t len = dp_rec_attempt_encode(&a, rec, sizeof(rec));
        if (len == 0)
            return -EINVAL;
        uint64_t lsn;
        int rc = dp_input_log(lc, DP_REC_ATTEMPT, partition, key, rec, len, false, &lsn, &loc);
        if (rc != 0)
            return rc;
    }
    *status = rt_note_attempt(lc->rt, part, key, act, seq, attempt);
    if (lc->wal && ref != RT_NONE)
        rt_inst_set_hlink(part, ref, loc);
    return 0;
}

int dp_input_delete(struct dp_lcore *lc, uint32_t partition, struct wf_key key,
                    const struct dp_rec_delete *names, uint64_t *lsn, int *status)
{
    struct rt_part *part = dp_node.parts[partition];
    *lsn = 0;
    if (rt_inst_find(part, key) == RT_NONE) {
        *status = RT_NOT_FOUND;
        return 0;
    }
    if (lc->wal) {
        uint8_t rec[DP_REC_DELETE_MAX];
        uint32_t len = dp_rec_delete_encode(names, rec, sizeof(rec));
        if (len == 0 || names->type_len == 0 || names->id_len == 0)
            return -EINVAL;
        struct rt_hlink loc;
        int rc = dp_input_log(lc, DP_REC_DELETE, partition, key, rec, len, false, lsn, &loc);
        if (rc != 0)
            return rc;
    }
    *status = rt_delete(lc->rt, part, key);
    if (*status == RT_APPLIED)
        lc->counters[DP_C_DELETED]++;
    return 0;
}

#define DP_DEADLINE_PERIOD_NS 100000000ull /* schedule-to-close deadlines looked at this often */
#define DP_DEADLINE_PARTS     64u          /* partitions looked at per step */
#define DP_DEADLINE_RUNS      32u          /* expiries logged per step */

unsigned dp_input_deadlines(struct dp_lcore *lc, uint64_t now)
{
    if (now - lc->deadline_ns < DP_DEADLINE_PERIOD_NS)
        return 0;
    lc->deadline_ns = now;
    struct rt_expired ex[DP_DEADLINE_RUNS];
    unsigned n = rt_tasks_expired(lc->rt, now, DP_DEADLINE_PARTS, ex, DP_DEADLINE_RUNS);
    unsigned done = 0;
    for (unsigned i = 0; i < n; i++) {
        int st;
        /* the run fails as if its executor gave up: logged first, replayed the same */
        if (dp_input_activity(lc, ex[i].part_id, ex[i].key, ex[i].act, ex[i].seq, true, 0, &st) !=
            0)
            break; /* the log is behind: found again on a later step */
        lc->counters[DP_C_TASKS_EXPIRED]++;
        done++;
    }
    return done;
}

#define DP_SWEEP_PERIOD_NS 5000000ull /* one sweep step per owner this often */
#define DP_SWEEP_BUDGET    1024u      /* table slots one step examines */
#define DP_SWEEP_SCAN_MAX  64u        /* partitions looked at per step for tombstones */

unsigned dp_input_sweep(struct dp_lcore *lc, uint64_t now)
{
    if (now - lc->sweep_ns < DP_SWEEP_PERIOD_NS || dp_node.cfg.tombstone_retention_s == 0)
        return 0;
    lc->sweep_ns = now;
    uint32_t parts = dp_node.partmap->count;
    for (unsigned k = 0; k < DP_SWEEP_SCAN_MAX; k++) {
        uint32_t pid = lc->sweep_part;
        lc->sweep_part = (pid + 1) % parts;
        if (wf_partmap_owner(dp_node.partmap, pid) != lc->owner_index)
            continue;
        struct rt_part *part = dp_node.parts[pid];
        struct rt_part_stats st;
        rt_part_stats_get(part, &st);
        if (st.completed <= st.tombstones_reused + st.tombstones_expired)
            continue; /* no tombstone here */
        if (lc->wal) {
            struct dp_rec_sweep s = { .now_ns = now, .budget = DP_SWEEP_BUDGET };
            uint8_t rec[DP_REC_SWEEP_LEN];
            uint32_t len = dp_rec_sweep_encode(&s, rec, sizeof(rec));
            uint64_t lsn;
            struct rt_hlink loc;
            if (dp_input_log(lc, DP_REC_SWEEP, pid, (struct wf_key){ 0, 0 }, rec, len, false, &lsn,
                             &loc) != 0)
                return 0; /* the log is behind: later */
        }
        int n = rt_sweep_tombstones(lc->rt, part, now, DP_SWEEP_BUDGET);
        lc->counters[DP_C_TOMBSTONES_SWEPT] += n > 0 ? (uint64_t)n : 0;
        return 1;
    }
    return 0;
}

void dp_input_adopt(struct dp_lcore *lc)
{
    uint64_t g = __atomic_load_n(&dp_node.registry_gen, __ATOMIC_ACQUIRE);
    if (likely(g == lc->reg_gen) || lc->snap.phase != DP_SNAP_IDLE)
        return; /* (a snapshot in progress holds one generation for all its partitions) */
    if (lc->wal) {
        uint8_t rec[DP_REC_DEPLOY_LEN];
        uint32_t len = dp_rec_deploy_encode(g, rec, sizeof(rec));
        uint64_t lsn;
        struct rt_hlink loc;
        if (dp_input_log(lc, DP_REC_DEPLOY, 0, (struct wf_key){ 0, 0 }, rec, len, false, &lsn,
                         &loc) != 0)
            return; /* the log is behind: adopt at a later iteration */
    }
    rt_core_set_registry(lc->rt, dp_node.registries[g]);
    lc->reg_gen = g;
}
