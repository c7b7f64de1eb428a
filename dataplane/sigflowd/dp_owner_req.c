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
#include "dp_tune.h"

static const char *dp_arena_put(struct dp_req_describe_out *out, const char *s, size_t len)
{
    if (out->arena_used + len + 1 > sizeof(out->arena))
        return "";
    char *copy = out->arena + out->arena_used;
    memcpy(copy, s, len);
    copy[len] = '\0';
    out->arena_used += len + 1;
    return copy;
}

static void dp_copy_value(struct dp_req_describe_out *out, struct sf_value *v)
{
    if (v->type == SF_VAL_TEXT) {
        v->text.ptr = dp_arena_put(out, v->text.ptr, v->text.len);
    }
}

static void dp_req_describe(struct dp_lcore *lc, struct dp_req_describe *r)
{
    struct dp_req_describe_out *out = r->out;
    struct rt_describe *d = &out->desc;
    out->arena_used = 0;
    int rc = rt_describe(lc->rt, dp_node.parts[r->wf.partition], r->wf.key, d);
    r->found = rc == 0;
    if (rc != 0)
        return;
    /* views into the record and the key store are copied: they change after we answer */
    d->id = dp_arena_put(out, d->id, d->id_len);
    for (unsigned i = 0; i < d->nvars; i++)
        dp_copy_value(out, &d->vars[i].value);
    for (unsigned q = 0; q < d->nqueues; q++)
        for (unsigned i = 0; i < d->queues[q].len; i++)
            dp_copy_value(out, &d->queues[q].items[i]);
}

/* One listed instance into *out (its counters from a describe into scratch d). */
static void dp_req_list_entry(struct dp_lcore *lc, const struct rt_part *part, uint32_t p,
                              uint64_t cursor, const struct rt_list_entry *e, struct rt_describe *d,
                              struct dp_list_entry *out)
{
    memset(out, 0, sizeof(*out));
    out->partition = p;
    out->cursor_after = cursor;
    snprintf(out->type, sizeof(out->type), "%s", e->type);
    memcpy(out->id, e->id, e->id_len);
    snprintf(out->state, sizeof(out->state), "%s", e->completed ? "completed" : e->state);
    if (rt_describe(lc->rt, part, e->key, d) == 0) {
        out->signals = d->signals;
        out->last_event_id = d->last_event_id;
        out->version = d->version;
    }
}

static void dp_req_list(struct dp_lcore *lc, struct dp_req_list *r)
{
    struct rt_list_filter f = { .type_id = -1,
                                .state = r->state_filter[0] ? r->state_filter : NULL };
    r->entry_count = 0;
    r->more = false;
    if (r->type_filter[0]) {
        f.type_id =
            rt_registry_type(rt_core_registry(lc->rt), r->type_filter, strlen(r->type_filter));
        if (f.type_id < 0)
            return; /* no such type: nothing to list */
    }
    struct rt_describe d; /* scratch: only the counters are kept */
    for (uint32_t p = r->start_partition; p < dp_node.partmap->count; p++) {
        if (wf_partmap_owner(dp_node.partmap, p) != lc->owner_index)
            continue;
        const struct rt_part *part = dp_node.parts[p];
        uint64_t cursor = p == r->start_partition ? r->start_cursor : 0;
        while (cursor != UINT64_MAX) {
            struct rt_list_entry e;
            if (rt_list(lc->rt, part, &f, &cursor, &e, 1) == 0)
                continue;
            if (r->entry_count == r->limit) {
                r->more = true;
                return;
            }
            dp_req_list_entry(lc, part, p, cursor, &e, &d, &r->entries[r->entry_count++]);
        }
    }
}

/* The pending activity index of run seq of the instance, or -1. */
static int dp_req_pending_act(struct dp_lcore *lc, const struct dp_req_workflow *wf, uint32_t seq)
{
    struct rt_describe d;
    if (rt_describe(lc->rt, dp_node.parts[wf->partition], wf->key, &d) != 0)
        return -ENOENT;
    for (unsigned i = 0; i < d.nactivities; i++)
        if (d.activities[i].seq == seq)
            return (int)d.activities[i].index;
    return -ESRCH; /* no pending run with that sequence number */
}

static int dp_req_activity(struct dp_lcore *lc, struct dp_req_activity *r)
{
    int act = dp_req_pending_act(lc, &r->wf, r->seq);
    if (act < 0)
        return act;
    int st;
    int rc = dp_input_activity(lc, r->wf.partition, r->wf.key, (unsigned)act, r->seq, r->failed,
                               r->result, &st);
    if (rc != 0)
        return rc; /* -EAGAIN: the log is behind, nothing applied */
    r->rt_status = st;
    return 0;
}

static int dp_req_history_head(struct dp_lcore *lc, struct dp_req_history *r)
{
    const struct rt_part *part = dp_node.parts[r->wf.partition];
    uint32_t ref = rt_inst_find(part, r->wf.key);
    r->found = ref != RT_NONE;
    r->head = r->found ? rt_inst_hlink(part, ref) : (struct rt_hlink){ 0, 0 };
    r->durable_lsn = lc->wal ? wal_durable_lsn(lc->wal) : 0;
    r->next_lsn = lc->wal ? wal_next_lsn(lc->wal) : 0;
    return lc->wal ? 0 : -ENOTSUP;
}

static void dp_req_counts(struct dp_lcore *lc, struct dp_req_counts *r)
{
    const struct rt_registry *reg = rt_core_registry(lc->rt);
    struct dp_def_counts_list *out = r->defs;
    out->count = 0;
    for (unsigned id = 0; id < RT_DEFS_MAX && out->count < DP_DEFS_REPORT_MAX; id++) {
        const struct rt_def *def = rt_registry_def(reg, id);
        if (!def)
            continue;
        struct dp_def_counts *c = &out->def[out->count++];
        c->def_id = (uint16_t)id;
        c->def = def->def;
        rt_core_def_counts(lc->rt, id, &c->running, &c->completed);
        unsigned states = flow_def_state_count(def->def);
        c->state_count = states < DP_STATES_REPORT_MAX ? states : DP_STATES_REPORT_MAX;
        for (unsigned s = 0; s < c->state_count; s++)
            c->in_state[s] = rt_core_state_count(lc->rt, id, s);
    }
    uint32_t queued;
    rt_tasks_pending(lc->rt, &queued, &r->tasks_flagged);
    r->tasks_queued = queued;
    r->timers_armed = rt_timers_armed(lc->rt);
}

/* Every run in flight on this owner (not only those dispatched: a run waits in the queue
 * while sigflow-control is away), up to r->limit, oldest first per partition. */
static void dp_req_tasks_copy(struct dp_lcore *lc, struct dp_req_tasks *r)
{
    struct rt_task batch[DP_REQ_TASKS_BATCH];
    r->count = 0;
    while (r->count < r->limit) {
        unsigned want = RTE_MIN(r->limit - r->count, DP_REQ_TASKS_BATCH);
        unsigned n = rt_tasks_list(lc->rt, r->count, batch, want);
        for (unsigned i = 0; i < n; i++) {
            const struct rt_task *t = &batch[i];
            struct dp_task *d = &r->out[r->count++];
            memset(d, 0, sizeof(*d));
            d->key = t->key;
            d->part_id = t->part_id;
            d->act_index = t->act_index;
            d->seq = t->seq;
            d->attempt = t->attempt;
            memcpy(d->type, t->type, RTE_MIN((size_t)t->type_len, sizeof(d->type) - 1));
            memcpy(d->id, t->id, RTE_MIN((size_t)t->id_len, sizeof(d->id) - 1));
            snprintf(d->activity, sizeof(d->activity), "%s", t->activity);
            d->args_len = RTE_MIN(t->args_len, (uint16_t)sizeof(d->args));
            memcpy(d->args, t->args, d->args_len);
            rt_task_idempotency_key(t, d->idempotency_key, sizeof(d->idempotency_key));
        }
        if (n < want)
            break;
    }
}

static int dp_req_delete(struct dp_lcore *lc, struct dp_req_delete *r)
{
    struct dp_rec_delete names = {
        .type_len = r->type_len, .id_len = r->id_len, .type = r->type, .id = r->id
    };
    if (r->type_len > SF_TYPE_LEN_MAX || r->id_len > SF_ID_LEN_MAX)
        return -EINVAL;
    return dp_input_delete(lc, r->wf.partition, r->wf.key, &names, &r->lsn, &r->rt_status);
}

static int dp_req_wal_stats(struct dp_lcore *lc, struct dp_req_wal_stats *r)
{
    if (lc->wal) {
        wal_get_stats(lc->wal, &r->wal);
        r->durable_lsn = wal_durable_lsn(lc->wal);
        r->next_lsn = wal_next_lsn(lc->wal);
    }
    r->acks_waiting = lc->acks ? lc->acks->tail - lc->acks->head : 0;
    return lc->wal ? 0 : -ENOTSUP;
}

/* A knob of this owner's log, its value already checked by the control thread. */
static int dp_req_tune(struct dp_lcore *lc, const struct dp_req_tune *r)
{
    const struct dp_tunable *t = r->tunable;
    RTE_VERIFY(t->live == DP_TUNE_LIVE_OWNER && t->apply_owner != NULL);
    const struct dp_tune_target to = { .cfg = NULL, .wal = lc->wal };
    return t->apply_owner(&to, r->value);
}

/* Answer one request into itself: its kind's member of u, and result. */
static void dp_req_answer(struct dp_lcore *lc, struct dp_req *req)
{
    req->result = 0;
    switch (req->kind) {
    case DP_REQ_DESCRIBE:
        dp_req_describe(lc, &req->u.describe);
        break;
    case DP_REQ_LIST:
        dp_req_list(lc, &req->u.list);
        break;
    case DP_REQ_ACTIVITY:
        req->result = dp_req_activity(lc, &req->u.activity);
        break;
    case DP_REQ_COUNTS:
        dp_req_counts(lc, &req->u.counts);
        break;
    case DP_REQ_TASKS:
        dp_req_tasks_copy(lc, &req->u.tasks);
        break;
    case DP_REQ_HISTORY:
        req->result = dp_req_history_head(lc, &req->u.history);
        break;
    case DP_REQ_DELETE:
        req->result = dp_req_delete(lc, &req->u.del);
        break;
    case DP_REQ_WAL_STATS:
        req->result = dp_req_wal_stats(lc, &req->u.wal_stats);
        break;
    case DP_REQ_TUNE:
        req->result = dp_req_tune(lc, &req->u.tune);
        break;
    default:
        RTE_VERIFY(!"unknown request kind"); /* the control thread built it: a bug */
    }
}

void dp_owner_req_serve(struct dp_lcore *lc)
{
    void *msg;
    while (rte_ring_sc_dequeue(lc->mailbox, &msg) == 0) {
        struct dp_req *req = msg;
        RTE_ASSERT(atomic_load_explicit(&req->state, memory_order_relaxed) != DP_CTL_REQ_IDLE);
        dp_req_answer(lc, req);
        if (!dp_ctl_req_finish(&req->state))
            dp_ctl_req_free(req); /* the control thread gave up waiting: ours to free */
    }
}
