/*
 * dp_owner.c — the owner side of an lcore: drain the inbound rings in bursts, look the
 * workflows up (a prefetch pass over the whole burst first, so the table's cache misses
 * overlap), apply each event, and serve the control thread's mailbox.
 */
#include <errno.h>
#include <string.h>

#include <rte_branch_prediction.h>
#include <rte_prefetch.h>

#include "dp.h"
#include "dp_ctl_req.h"

void dp_owner_apply_burst(struct dp_lcore *lc, struct dp_event *evs, unsigned n)
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
        int rc;
        struct rt_hlink loc = { 0, 0 };
        /* Refused before logging (nothing applied; the refusal joins the frame's reply): an
         * undeployed type, a log that is behind. Without room for the frame's reply the
         * event is refused unanswered: the sender resends after its timeout. */
        if (unlikely(ack && !dp_ack_room(lc, ev))) {
            lc->drop[DP_DROP_ACK_QUEUE_FULL]++;
        } else if (unlikely(!dp_runtime_type_known(lc, ev))) {
            lc->rt_status[RT_UNKNOWN_TYPE]++;
            if (ack)
                dp_ack_note(lc, ev, SF_ACK_UNKNOWN, 0);
        } else if (unlikely(dp_node.cfg.quota_count != 0 && refs[i] == RT_NONE) &&
                   dp_runtime_quota_refuses(lc, ev)) {
            lc->drop[DP_DROP_QUOTA]++;
            if (ack)
                dp_ack_note(lc, ev, SF_ACK_FULL, 0);
        } else if (lc->wal && unlikely((rc = dp_wal_log_signal(lc, ev, &lsn, &loc)) != 0)) {
            bool too_big = rc == -EMSGSIZE; /* a parser let through what the log can't hold */
            lc->drop[too_big ? DP_DROP_EVENT_TOO_LARGE : DP_DROP_OVERLOADED]++;
            if (ack && !dp_node.fatal)
                dp_ack_note(lc, ev, too_big ? SF_ACK_MALFORMED : SF_ACK_OVERLOADED, 0);
        } else {
            uint8_t status = dp_runtime_apply_event(lc, ev, lsn, refs[i], loc);
            if (ack)
                dp_ack_note(lc, ev, status, lsn);
        }
        rte_pktmbuf_free(ev->m);
    }
}

static void dp_owner_mailbox(struct dp_lcore *lc)
{
    void *msg;
    while (rte_ring_sc_dequeue(lc->mailbox, &msg) == 0) {
        struct dp_req *req = msg;
        switch (req->kind) {
        case DP_REQ_DESCRIBE:
            dp_runtime_describe(lc, req);
            break;
        case DP_REQ_LIST:
            dp_runtime_list(lc, req);
            break;
        case DP_REQ_ACTIVITY:
            dp_runtime_activity(lc, req);
            break;
        case DP_REQ_COUNTS:
            dp_runtime_counts(lc, req);
            break;
        case DP_REQ_TASKS:
            dp_runtime_tasks_copy(lc, req);
            break;
        case DP_REQ_HISTORY:
            dp_runtime_history_head(lc, req);
            break;
        case DP_REQ_DELETE:
            dp_runtime_delete(lc, req);
            break;
        case DP_REQ_WAL_STATS:
            if (lc->wal) {
                wal_get_stats(lc->wal, &req->wal_stats);
                req->durable_lsn = wal_durable_lsn(lc->wal);
                req->next_lsn = wal_next_lsn(lc->wal);
            }
            req->acks_waiting = lc->acks ? lc->acks->tail - lc->acks->head : 0;
            req->result = lc->wal ? 0 : -ENOTSUP;
            break;
        case DP_REQ_TUNE:
            req->result = dp_wal_tune(lc, req->tune_key, req->tune_value);
            break;
        }
        if (!dp_ctl_req_finish(&req->state))
            dp_ctl_req_free(req); /* the control thread gave up waiting: ours to free */
    }
}

unsigned dp_owner_poll(struct dp_lcore *lc)
{
    struct dp_event evs[DP_OWNER_BURST_MAX];
    unsigned burst = RTE_MIN(2 * dp_node.cfg.burst, (unsigned)DP_OWNER_BURST_MAX);
    unsigned total = 0;
    if (unlikely(!rte_ring_empty(lc->mailbox)))
        dp_owner_mailbox(lc);
    total += dp_wal_poll(lc);
    if (unlikely(dp_node.fatal || dp_node.power_cut_seed))
        return 0;
    total += dp_runtime_poll(lc);
    total += dp_snap_poll(lc);
    unsigned events = 0;
    for (unsigned r = 0; r < lc->in_count; r++) {
        unsigned n = rte_ring_sc_dequeue_burst_elem(lc->in[r], evs, sizeof(evs[0]), burst, NULL);
        if (n == 0)
            continue;
        dp_owner_apply_burst(lc, evs, n);
        events += n;
    }
    return total + events;
}
