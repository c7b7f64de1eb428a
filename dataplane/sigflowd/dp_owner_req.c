/*
 * dp_owner_req.c — an owner core answers the control thread's requests (dp_req.h) from its
 * mailbox, between bursts: reads of its workflows (describe, list, counts, history heads,
 * dispatched tasks, log stats), and the operator's inputs — an activity result delivered
 * by hand, a delete — which are logged and applied through dp_input.c like any other.
 * Texts the answer points to are copied into the request (its arena): the records they
 * come from change after the owner answers.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dp.h"
#include "dp_ack.h"
#include "dp_ctl_req.h"
#include "dp_input.h"
#include "dp_req.h"
#include "dp_wal.h"

static const char *dp_arena_put(struct dp_req *req, const char *s, size_t len)
{
    if (req->arena_used + len + 1 > sizeof(req->arena))
        return "";
    char *out = req->arena + req->arena_used;
    memcpy(out, s, len);
    out[len] = '\0';
    req->arena_used += len + 1;
    return out;
}

static void dp_copy_value(struct dp_req *req, struct sf_value *v)
{
    if (v->type == SF_VAL_TEXT) {
        v->text.ptr = dp_arena_put(req, v->text.ptr, v->text.len);
    }
}

static void dp_req_describe(struct dp_lcore *lc, struct dp_req *req)
{
    struct rt_describe *d = &req->desc;
    int rc = rt_describe(lc->rt, dp_node.parts[req->partition], req->key, d);
    req->found = rc == 0;
    if (rc != 0)
        return;
    /* views into the record and the key store are copied: they change after we answer */
    d->id = dp_arena_put(req, d->id, d->id_len);
    for (unsigned i = 0; i < d->nvars; i++)
        dp_copy_value(req, &d->vars[i].value);
    for (unsigned q = 0; q < d->nqueues; q++)
        for (unsigned i = 0; i < d->queues[q].len; i++)
            dp_copy_value(req, &d->queues[q].items[i]);
}

static void dp_req_list(struct dp_lcore *lc, struct dp_req *req)
{
    struct rt_list_filter f = { .type_id = -1,
                                .state = req->state_filter[0] ? req->state_filter : NULL };
    if (req->type_filter[0]) {
        f.type_id =
            rt_registry_type(rt_core_registry(lc->rt), req->type_filter, strlen(req->type_filter));
        if (f.type_id < 0)
            return; /* no such type: nothing to list */
    }
    req->entry_count = 0;
    req->more = false;
    for (uint32_t p = req->start_partition; p < dp_node.partmap->count; p++) {
        if (wf_partmap_owner(dp_node.partmap, p) != lc->owner_index)
            continue;
        const struct rt_part *part = dp_node.parts[p];
        uint64_t cursor = p == req->start_partition ? req->start_cursor : 0;
        while (cursor != UINT64_MAX) {
            struct rt_list_entry e;
            if (rt_list(lc->rt, part, &f, &cursor, &e, 1) == 0)
                continue;
            if (req->entry_count == req->limit) {
                req->more = true;
                return;
            }
            struct dp_list_entry *out = &req->entries[req->entry_count++];
            memset(out, 0, sizeof(*out));
            out->partition = p;
            out->cursor_after = cursor;
            snprintf(out->type, sizeof(out->type), "%s", e.type);
            memcpy(out->id, e.id, e.id_len);
            snprintf(out->state, sizeof(out->state), "%s", e.completed ? "completed" : e.state);
            struct rt_describe *d = &req->desc;
            if (rt_describe(lc->rt, part, e.key, d) == 0) {
                out->signals = d->signals;
                out->last_event_id = d->last_event_id;
                out->version = d->version;
            }
        }
    }
}

static void dp_req_activity(struct dp_lcore *lc, struct dp_req *req)
{
    struct rt_describe *d = &req->desc;
    if (rt_describe(lc->rt, dp_node.parts[req->partition], req->key, d) != 0) {
        req->result = -ENOENT;
        return;
    }
    int act = -1;
    for (unsigned i = 0; i < d->nactivities; i++)
        if (d->activities[i].seq == req->seq)
            act = (int)d->activities[i].index;
    if (act < 0) {
        req->result = -ESRCH; /* no pending run with that sequence number */
        return;
    }
    int st;
    req->result = dp_input_activity(lc, req->partition, req->key, (unsigned)act, req->seq,
                                    req->failed, req->activity_result, &st);
    if (req->result != 0)
        return; /* -EAGAIN: the log is behind, nothing applied */
    req->rt_status = st;
    struct dp_task_list *tl = lc->tasks;
    for (unsigned i = 0; i < DP_TASK_LIST_MAX; i++)
        if (tl->task[i].seq == req->seq && wf_key_equal(tl->task[i].key, req->key))
            tl->task[i].done = true;
}

static void dp_req_history_head(struct dp_lcore *lc, struct dp_req *req)
{
    const struct rt_part *part = dp_node.parts[req->partition];
    uint32_t ref = rt_inst_find(part, req->key);
    req->found = ref != RT_NONE;
    req->head = req->found ? rt_inst_hlink(part, ref) : (struct rt_hlink){ 0, 0 };
    req->durable_lsn = lc->wal ? wal_durable_lsn(lc->wal) : 0;
    req->next_lsn = lc->wal ? wal_next_lsn(lc->wal) : 0;
    req->result = lc->wal ? 0 : -ENOTSUP;
}

static void dp_req_counts(struct dp_lcore *lc, struct dp_req *req)
{
    const struct rt_registry *reg = rt_core_registry(lc->rt);
    req->def_count = 0;
    for (unsigned id = 0; id < RT_DEFS_MAX && req->def_count < DP_DEFS_REPORT_MAX; id++) {
        const struct rt_def *def = rt_registry_def(reg, id);
        if (!def)
            continue;
        struct dp_def_counts *c = &req->defs[req->def_count++];
        c->def_id = (uint16_t)id;
        c->def = def->def;
        rt_core_def_counts(lc->rt, id, &c->running, &c->completed);
        unsigned states = flow_def_state_count(def->def);
        c->state_count = states < DP_STATES_REPORT_MAX ? states : DP_STATES_REPORT_MAX;
        for (unsigned s = 0; s < c->state_count; s++)
            c->in_state[s] = rt_core_state_count(lc->rt, id, s);
    }
    uint32_t queued;
    rt_tasks_pending(lc->rt, &queued, &req->tasks_flagged);
    req->tasks_queued = queued;
    req->timers_armed = rt_timers_armed(lc->rt);
}

static void dp_req_tasks_copy(struct dp_lcore *lc, struct dp_req *req)
{
    const struct dp_task_list *tl = lc->tasks;
    req->task_count = 0;
    for (unsigned i = 0; i < DP_TASK_LIST_MAX && req->task_count < req->limit; i++) {
        const struct dp_task *t = &tl->task[i];
        if (t->seq == 0 || t->done)
            continue;
        req->task_out[req->task_count++] = *t;
    }
}

static void dp_req_delete(struct dp_lcore *lc, struct dp_req *req)
{
    struct dp_rec_delete names = { .type_len = req->wf_type_len,
                                   .id_len = req->wf_id_len,
                                   .type = req->wf_type,
                                   .id = req->wf_id };
    if (req->wf_type_len > SF_TYPE_LEN_MAX || req->wf_id_len > SF_ID_LEN_MAX) {
        req->result = -EINVAL;
        return;
    }
    req->result =
        dp_input_delete(lc, req->partition, req->key, &names, &req->next_lsn, &req->rt_status);
}

void dp_owner_req_serve(struct dp_lcore *lc)
{
    void *msg;
    while (rte_ring_sc_dequeue(lc->mailbox, &msg) == 0) {
        struct dp_req *req = msg;
        switch (req->kind) {
        case DP_REQ_DESCRIBE:
            dp_req_describe(lc, req);
            break;
        case DP_REQ_LIST:
            dp_req_list(lc, req);
            break;
        case DP_REQ_ACTIVITY:
            dp_req_activity(lc, req);
            break;
        case DP_REQ_COUNTS:
            dp_req_counts(lc, req);
            break;
        case DP_REQ_TASKS:
            dp_req_tasks_copy(lc, req);
            break;
        case DP_REQ_HISTORY:
            dp_req_history_head(lc, req);
            break;
        case DP_REQ_DELETE:
            dp_req_delete(lc, req);
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
