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

/*
 * Dedupe of the counting records: a workflow's last event id is its high-water mark; an
 * event id at or below it is a duplicate (events without an id are never deduplicated).
 * Senders use increasing event ids per workflow (DESIGN §4). Duplicates are neither logged
 * nor applied, so replay sees exactly the applied events.
 */
bool dp_owner_is_duplicate(const struct wf_part *part, struct wf_key key, uint64_t event_id,
                           bool has_event_id)
{
    if (!has_event_id)
        return false;
    const struct wf_count_rec *rec = wf_part_get(part, key);
    return rec && event_id <= rec->last_event_id;
}

/* Apply one logged (or, without a log, volatile) event; returns its ACK status. */
uint8_t dp_owner_apply_one(struct dp_lcore *lc, struct wf_part *part, struct wf_key key,
                           const char *type, uint8_t type_len, const char *id, uint8_t id_len,
                           uint64_t event_id, uint64_t rx_ns)
{
    int r = wf_part_apply(part, key, type, type_len, id, id_len, event_id, rx_ns);
    if (likely(r == WF_APPLIED)) {
        lc->counters[DP_C_EVENTS_APPLIED]++;
        return SF_ACK_APPLIED;
    }
    if (r == WF_CREATED) {
        lc->counters[DP_C_EVENTS_APPLIED]++;
        lc->counters[DP_C_WORKFLOWS]++;
        return SF_ACK_APPLIED;
    }
    lc->drop[DP_DROP_TABLE_FULL]++;
    return SF_ACK_OVERLOADED; /* new workflow refused: nothing applied, retry later */
}

void dp_owner_apply_burst(struct dp_lcore *lc, struct dp_event *evs, unsigned n)
{
    struct wf_part **parts = dp_node.parts;
    for (unsigned i = 0; i < n; i++)
        wf_part_prefetch(parts[evs[i].partition], evs[i].key);
    for (unsigned i = 0; i < n; i++) {
        struct dp_event *ev = &evs[i];
        RTE_ASSERT(wf_partmap_owner(dp_node.partmap, ev->partition) == lc->owner_index);
        bool ack = (ev->flags & DP_EV_ACK_REQ) != 0;
        uint64_t lsn = 0;
        /* Refuse before logging when the log is behind or no ACK slot is free: nothing is
         * applied and the sender resends (NACK "overloaded"). */
        ack = ack && lc->wal;
        struct wf_part *part = parts[ev->partition];
        if (unlikely(ack && !dp_ack_room(lc))) {
            lc->drop[DP_DROP_ACK_QUEUE_FULL]++;
            dp_ack_note(lc, ev, SF_ACK_OVERLOADED, 0);
        } else if (dp_owner_is_duplicate(part, ev->key, ev->event_id,
                                         (ev->flags & DP_EV_HAS_EVENT_ID) != 0)) {
            /* Not logged, not applied. Its ACK waits for everything logged so far, which
             * covers the original's record. */
            lc->counters[DP_C_DUPLICATES]++;
            if (ack)
                dp_ack_note(lc, ev, SF_ACK_DUPLICATE, wal_next_lsn(lc->wal) - 1);
        } else if (lc->wal && unlikely(dp_wal_log_signal(lc, ev, &lsn) != 0)) {
            lc->drop[DP_DROP_OVERLOADED]++;
            if (ack && !dp_node.fatal)
                dp_ack_note(lc, ev, SF_ACK_OVERLOADED, 0);
        } else {
            const char *base = rte_pktmbuf_mtod(ev->m, const char *);
            uint8_t status = dp_owner_apply_one(lc, part, ev->key, base + ev->type_off,
                                                ev->type_len, base + ev->id_off, ev->id_len,
                                                ev->event_id, ev->rx_ns);
            if (ack)
                dp_ack_note(lc, ev, status, lsn);
        }
        rte_pktmbuf_free(ev->m);
    }
}

static void dp_owner_entry(const struct wf_part *part, uint32_t partition, uint64_t cursor,
                           struct wf_key key, const struct wf_count_rec *rec,
                           struct dp_list_entry *out)
{
    const char *type, *id;
    uint8_t type_len, id_len;
    memset(out, 0, sizeof(*out));
    (void)key;
    out->partition = partition;
    out->cursor_after = cursor;
    if (wf_part_key(part, rec->key_ref, &type, &type_len, &id, &id_len) == 0) {
        memcpy(out->type, type, type_len);
        memcpy(out->id, id, id_len);
    }
    out->signals = rec->signals;
    out->last_event_id = rec->last_event_id;
    out->last_ts_ns = rec->last_ts_ns;
}

static void dp_owner_describe(struct dp_lcore *lc, struct dp_req *req)
{
    const struct wf_part *part = dp_node.parts[req->partition];
    RTE_VERIFY(wf_partmap_owner(dp_node.partmap, req->partition) == lc->owner_index);
    const struct wf_count_rec *rec = wf_part_get(part, req->key);
    req->found = rec != NULL;
    if (rec)
        dp_owner_entry(part, req->partition, 0, req->key, rec, &req->one);
}

/* List this owner's workflows in (partition, slot) order from the request's cursor. */
static void dp_owner_list(struct dp_lcore *lc, struct dp_req *req)
{
    size_t filter_len = strlen(req->type_filter);
    req->entry_count = 0;
    req->more = false;
    for (uint32_t p = req->start_partition; p < dp_node.partmap->count; p++) {
        if (wf_partmap_owner(dp_node.partmap, p) != lc->owner_index)
            continue;
        const struct wf_part *part = dp_node.parts[p];
        uint64_t cursor = p == req->start_partition ? req->start_cursor : 0;
        struct wf_key key;
        const struct wf_count_rec *rec;
        while (wf_part_next(part, &cursor, &key, &rec)) {
            if (req->entry_count == req->limit) {
                req->more = true;
                return;
            }
            struct dp_list_entry *e = &req->entries[req->entry_count];
            dp_owner_entry(part, p, cursor, key, rec, e);
            if (filter_len && strcmp(e->type, req->type_filter) != 0)
                continue;
            req->entry_count++;
        }
    }
}

static void dp_owner_mailbox(struct dp_lcore *lc)
{
    void *msg;
    while (rte_ring_sc_dequeue(lc->mailbox, &msg) == 0) {
        struct dp_req *req = msg;
        switch (req->kind) {
        case DP_REQ_DESCRIBE:
            dp_owner_describe(lc, req);
            break;
        case DP_REQ_LIST:
            dp_owner_list(lc, req);
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
        atomic_store_explicit(&req->done, 1, memory_order_release);
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
    for (unsigned r = 0; r < lc->in_count; r++) {
        unsigned n = rte_ring_sc_dequeue_burst_elem(lc->in[r], evs, sizeof(evs[0]), burst, NULL);
        if (n == 0)
            continue;
        dp_owner_apply_burst(lc, evs, n);
        total += n;
    }
    return total;
}
