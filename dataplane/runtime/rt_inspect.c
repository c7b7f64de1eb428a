/* rt_inspect.c — describe and list for the CLI (reads only; see rt.h). */
#include <errno.h>

#include "rt_internal.h"

int rt_describe(const struct rt_core *c, const struct rt_part *p, struct wf_key key,
                struct rt_describe *out)
{
    uint32_t ref = wf_buckets_find(rt_part_buckets(p), p->bucket_count, key);
    if (ref == WF_REC_NONE)
        return -ENOENT;
    struct rt_inst *in = rt_part_inst(p, ref);
    const struct rt_def *d = rt_registry_def(c->reg, in->def_id);
    if (d == NULL)
        return -EINVAL;
    const struct flow_def *def = d->def;
    const uint8_t *rec = rt_inst_record(in, d->timer_slots);
    memset(out, 0, sizeof(*out));
    out->type = c->reg->types[d->type_id].name;
    out->id = rt_inst_id(p, in, &out->id_len);
    out->def_id = d->def_id;
    out->version = d->version;
    unsigned state = vm_record_state(def, rec);
    out->state = flow_def_state_name(def, state);
    out->completed = (in->flags & RT_INST_F_COMPLETED) != 0;
    out->signals = in->signals;
    out->last_event_id = in->last_event_id;
    out->dedupe_hwm = in->dd_hwm;
    out->created_ns = vm_record_created_ns(def, rec);
    out->nvars = flow_def_var_count(def);
    for (unsigned i = 0; i < out->nvars; i++) {
        struct flow_var_info vi;
        int rc = flow_def_var(def, i, &vi);
        assert(rc == 0);
        out->vars[i].name = vi.name;
        rc = vm_record_var(def, rec, i, &out->vars[i].value);
        assert(rc == 0);
        (void)rc;
    }
    out->nqueues = flow_def_queue_count(def);
    for (unsigned q = 0; q < out->nqueues; q++) {
        struct flow_var_info qi;
        int rc = flow_def_queue(def, q, &qi);
        assert(rc == 0);
        (void)rc;
        struct rt_describe_queue *dq = &out->queues[q];
        dq->name = qi.name;
        dq->len = vm_record_queue_len(def, rec, q);
        for (unsigned i = 0; i < dq->len && i < FLOW_QUEUE_CAP_MAX; i++)
            vm_record_queue_item(def, rec, q, i, &dq->items[i]);
    }
    for (unsigned s = 0; s < d->timer_slots; s++) {
        uint64_t due = vm_record_timer_due(def, rec, s);
        if (due == 0)
            continue;
        struct rt_describe_timer *t = &out->timers[out->ntimers++];
        struct flow_timer_info ti;
        if (flow_def_timer(def, state, s, &ti) == 0) {
            t->name = ti.name;
            t->kind = ti.kind;
        } else {
            t->name = t->kind = "?";
        }
        t->slot = s;
        t->due_ns = due;
    }
    for (unsigned a = 0; a < d->activity_count; a++) {
        uint32_t seq, attempts;
        if (!vm_record_activity(def, rec, a, &seq, &attempts))
            continue;
        struct flow_activity_info ai;
        flow_def_activity(def, a, &ai);
        struct rt_describe_activity *da = &out->activities[out->nactivities++];
        da->name = ai.name;
        da->index = a;
        da->seq = seq;
        da->attempts = attempts;
    }
    return 0;
}

static bool rt_list_match(const struct rt_core *c, const struct rt_def *d, struct rt_inst *in,
                          const struct rt_list_filter *f, const char **state)
{
    const uint8_t *rec = rt_inst_record(in, d->timer_slots);
    *state = flow_def_state_name(d->def, vm_record_state(d->def, rec));
    if (f == NULL)
        return true;
    (void)c;
    if (f->type_id >= 0 && d->type_id != (unsigned)f->type_id)
        return false;
    unsigned which = f->which ? f->which : RT_LIST_RUNNING | RT_LIST_COMPLETED;
    bool done = (in->flags & RT_INST_F_COMPLETED) != 0;
    if (!(which & (done ? RT_LIST_COMPLETED : RT_LIST_RUNNING)))
        return false;
    return f->state == NULL || strcmp(f->state, *state) == 0;
}

unsigned rt_list(const struct rt_core *c, const struct rt_part *p, const struct rt_list_filter *f,
                 uint64_t *cursor, struct rt_list_entry *out, unsigned max)
{
    if (*cursor == UINT64_MAX)
        return 0;
    unsigned n = 0;
    uint64_t budget = 64ull * max + 64;
    struct wf_key k;
    uint32_t ref;
    while (n < max && budget-- > 0) {
        if (!wf_table_next(rt_part_table(p), cursor, &k, &ref)) {
            *cursor = UINT64_MAX;
            break;
        }
        struct rt_inst *in = rt_part_inst(p, ref);
        const struct rt_def *d = rt_registry_def(c->reg, in->def_id);
        const char *state;
        if (d == NULL || !rt_list_match(c, d, in, f, &state))
            continue;
        struct rt_list_entry *e = &out[n++];
        e->key = k;
        e->def_id = in->def_id;
        e->completed = (in->flags & RT_INST_F_COMPLETED) != 0;
        e->type = c->reg->types[d->type_id].name;
        e->id = rt_inst_id(p, in, &e->id_len);
        e->state = state;
    }
    return n;
}
