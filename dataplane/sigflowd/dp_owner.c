/*
 * dp_owner.c — the owner side of an lcore: drain the inbound rings in bursts, look the
 * workflows up (a prefetch pass over the whole burst first, so the table's cache misses
 * overlap), apply each event, and serve the control thread's mailbox.
 */
#include <string.h>

#include <rte_branch_prediction.h>
#include <rte_prefetch.h>

#include "dp.h"

void dp_owner_apply_burst(struct dp_lcore *lc, struct dp_event *evs, unsigned n)
{
    struct wf_part **parts = dp_node.parts;
    for (unsigned i = 0; i < n; i++)
        wf_part_prefetch(parts[evs[i].partition], evs[i].key);
    for (unsigned i = 0; i < n; i++) {
        struct dp_event *ev = &evs[i];
        RTE_ASSERT(wf_partmap_owner(dp_node.partmap, ev->partition) == lc->owner_index);
        const char *base = rte_pktmbuf_mtod(ev->m, const char *);
        int r = wf_part_apply(parts[ev->partition], ev->key, base + ev->type_off, ev->type_len,
                              base + ev->id_off, ev->id_len, ev->event_id, ev->rx_ns);
        if (likely(r == WF_APPLIED)) {
            lc->counters[DP_C_EVENTS_APPLIED]++;
        } else if (r == WF_CREATED) {
            lc->counters[DP_C_EVENTS_APPLIED]++;
            lc->counters[DP_C_WORKFLOWS]++;
        } else {
            lc->drop[DP_DROP_TABLE_FULL]++;
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
        if (req->kind == DP_REQ_DESCRIBE)
            dp_owner_describe(lc, req);
        else
            dp_owner_list(lc, req);
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
    for (unsigned r = 0; r < lc->in_count; r++) {
        unsigned n = rte_ring_sc_dequeue_burst_elem(lc->in[r], evs, sizeof(evs[0]), burst, NULL);
        if (n == 0)
            continue;
        dp_owner_apply_burst(lc, evs, n);
        total += n;
    }
    return total;
}
