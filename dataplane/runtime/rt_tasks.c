/*
 * rt_tasks.c — activity tasks: the partition's in-flight task pool and the core's bounded
 * outbound queue.
 *
 * A `run` stores a task slot in the instance's partition (deterministic state: it survives
 * in snapshots and is rebuilt by replay) holding the arguments as a CBOR array; the slot
 * lives until the activity's result (or a cancel, or the instance's restart) frees it.
 * The outbound queue (core, volatile) holds references to slots. When it is full the task
 * is "flagged": the core remembers, per partition, the first in-flight task that is not
 * queued (in creation order, every later one is not queued either) and queues them as room
 * appears (rt_tasks_pop). Nothing is dropped; stale references (the activity ended before
 * the task was popped) are skipped by serial number. Cancel notices are advisory: they are
 * queued when there is room, else counted in cancels_dropped (the executor's result for a
 * cancelled run is ignored by the workflow anyway).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "rt_internal.h"

static bool rt_q_room(const struct rt_core *c)
{
    return c->q_tail - c->q_head < (uint64_t)c->q_mask + 1;
}

static void rt_q_push(struct rt_core *c, uint32_t part_idx, uint32_t ref, uint64_t serial,
                      uint64_t cause)
{
    assert(rt_q_room(c));
    struct rt_qent *e = &c->queue[c->q_tail & c->q_mask];
    e->part_idx = part_idx;
    e->ref = ref;
    e->serial = serial;
    e->cause = cause;
    c->q_tail++;
}

static void rt_task_enqueue(struct rt_core *c, uint32_t pidx, uint32_t ti, uint64_t serial)
{
    struct rt_core_part *cp = &c->parts[pidx];
    if (cp->unqueued == RT_NONE && rt_q_room(c)) {
        rt_q_push(c, pidx, ti, serial, 0);
        c->stats.tasks_queued++;
        return;
    }
    if (cp->unqueued == RT_NONE) {
        cp->unqueued = ti;
        c->unqueued_parts++;
    }
    c->stats.tasks_flagged++;
}

/* Encode the arguments; shorten texts when they do not fit (counted). */
static uint16_t rt_task_args(struct rt_part *p, const struct vm_cmd *m, uint8_t *out)
{
    static const uint16_t caps[] = { 64, 16, 0 };
    int n = sf_fields_encode(out, RT_TASK_ARGS_BYTES, m->args, m->nargs);
    if (n >= 0)
        return (uint16_t)n;
    struct sf_value a[VM_ARGS_MAX];
    for (unsigned k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        memcpy(a, m->args, sizeof(a[0]) * m->nargs);
        for (unsigned i = 0; i < m->nargs; i++)
            if (a[i].type == SF_VAL_TEXT && a[i].text.len > caps[k])
                a[i].text.len = caps[k];
        n = sf_fields_encode(out, RT_TASK_ARGS_BYTES, a, m->nargs);
        if (n >= 0) {
            p->stats.args_truncated++;
            return (uint16_t)n;
        }
    }
    assert(0 && "8 scalars always fit RT_TASK_ARGS_BYTES");
    return 0;
}

/* The run's schedule-to-close deadline in whole seconds (rounded up), 0 when it has none. */
static uint32_t rt_task_deadline_s(const struct rt_core *c, const struct rt_inst *in, unsigned act,
                                   uint64_t now_ns)
{
    const struct rt_def *d = rt_registry_def(c->reg, in->def_id);
    struct flow_activity_info info;
    if (!d || flow_def_activity(d->def, act, &info) != 0 || info.schedule_to_close_ns == 0)
        return 0;
    uint64_t s = (now_ns + info.schedule_to_close_ns + 999999999u) / 1000000000u;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

void rt_task_create(struct rt_core *c, uint32_t pidx, struct rt_part *p, uint32_t ref,
                    struct rt_inst *in, const struct vm_cmd *m, uint64_t cause, uint64_t now_ns)
{
    assert(p->task_free_count > 0 && p->task_free != RT_NONE);
    struct rt_task_slot *ts = rt_part_tasks(p);
    uint32_t ti = p->task_free;
    struct rt_task_slot *t = &ts[ti];
    p->task_free = t->next;
    p->task_free_count--;
    memset(t, 0, sizeof(*t));
    t->serial = ++p->task_serial;
    t->cause = cause;
    t->inst_ref = ref;
    t->seq = m->seq;
    t->act = m->index;
    t->nargs = m->nargs;
    t->args_len = rt_task_args(p, m, t->args);
    t->deadline_s = rt_task_deadline_s(c, in, m->index, now_ns);
    t->next_inst = in->task_head;
    in->task_head = ti;
    t->next = RT_NONE;
    t->prev = p->task_tail;
    if (p->task_tail != RT_NONE)
        ts[p->task_tail].next = ti;
    else
        p->task_head = ti;
    p->task_tail = ti;
    rt_task_enqueue(c, pidx, ti, t->serial);
}

void rt_task_finish(struct rt_core *c, uint32_t pidx, struct rt_part *p, struct rt_inst *in,
                    unsigned act, uint32_t seq)
{
    struct rt_task_slot *ts = rt_part_tasks(p);
    uint32_t *link = &in->task_head;
    unsigned guard = 0;
    while (*link != RT_NONE && (ts[*link].act != act || ts[*link].seq != seq)) {
        link = &ts[*link].next_inst;
        assert(++guard <= FLOW_ACTIVITIES_MAX + 1u);
    }
    (void)guard;
    uint32_t ti = *link;
    if (ti == RT_NONE)
        return;
    struct rt_task_slot *t = &ts[ti];
    *link = t->next_inst;
    if (t->prev != RT_NONE)
        ts[t->prev].next = t->next;
    else
        p->task_head = t->next;
    if (t->next != RT_NONE)
        ts[t->next].prev = t->prev;
    else
        p->task_tail = t->prev;
    struct rt_core_part *cp = &c->parts[pidx];
    if (cp->unqueued == ti) {
        cp->unqueued = t->next;
        if (cp->unqueued == RT_NONE)
            c->unqueued_parts--;
    }
    memset(t, 0, sizeof(*t));
    t->next = p->task_free;
    p->task_free = ti;
    p->task_free_count++;
}

void rt_task_cancel_notice(struct rt_core *c, uint32_t pidx, uint32_t ref, unsigned act,
                           uint32_t seq, uint64_t cause)
{
    if (!rt_q_room(c)) {
        c->stats.cancels_dropped++;
        return;
    }
    rt_q_push(c, pidx | RT_QENT_CANCEL, ref, (uint64_t)act << 32 | seq, cause);
    c->q_cancels++;
}

void rt_inst_drop_tasks(struct rt_core *c, uint32_t pidx, struct rt_part *p, struct rt_inst *in)
{
    while (in->task_head != RT_NONE) {
        const struct rt_task_slot *t = &rt_part_tasks(p)[in->task_head];
        rt_task_finish(c, pidx, p, in, t->act, t->seq);
    }
}

void rt_tasks_forget_instance(struct rt_core *c, uint32_t pidx, uint32_t ref)
{
    if (c->q_cancels == 0)
        return;
    for (uint64_t i = c->q_head; i != c->q_tail; i++) {
        struct rt_qent *e = &c->queue[i & c->q_mask];
        if (e->part_idx == (pidx | RT_QENT_CANCEL) && e->ref == ref) {
            e->part_idx = RT_QENT_DEAD;
            assert(c->q_cancels > 0);
            c->q_cancels--;
        }
    }
}

/* Move flagged tasks into the queue while there is room. */
static void rt_tasks_refill(struct rt_core *c)
{
    while (c->unqueued_parts > 0 && rt_q_room(c)) {
        uint32_t pi = c->refill_cursor;
        while (c->parts[pi].unqueued == RT_NONE)
            pi = pi + 1 == c->part_count ? 0 : pi + 1;
        struct rt_core_part *cp = &c->parts[pi];
        const struct rt_task_slot *ts = rt_part_tasks(cp->p);
        while (cp->unqueued != RT_NONE && rt_q_room(c)) {
            uint32_t ti = cp->unqueued;
            rt_q_push(c, pi, ti, ts[ti].serial, 0);
            c->stats.tasks_queued++;
            cp->unqueued = ts[ti].next;
        }
        if (cp->unqueued == RT_NONE)
            c->unqueued_parts--;
        c->refill_cursor = pi + 1 == c->part_count ? 0 : pi + 1;
    }
}

static void rt_task_fill(const struct rt_core *c, const struct rt_part *p, struct rt_inst *in,
                         unsigned act, uint32_t seq, struct rt_task *out)
{
    const struct rt_def *d = rt_registry_def(c->reg, in->def_id);
    assert(d != NULL);
    struct flow_activity_info info;
    int rc = flow_def_activity(d->def, act, &info);
    assert(rc == 0);
    (void)rc;
    const struct rt_type *ty = &c->reg->types[d->type_id];
    out->part_id = p->part_id;
    out->type = ty->name;
    out->type_len = ty->name_len;
    out->id = rt_inst_id(p, in, &out->id_len);
    out->key = wf_key_make(ty->name, ty->name_len, out->id, out->id_len);
    out->activity = info.name;
    out->act_index = (uint16_t)act;
    out->seq = seq;
    out->def = d->def;
    uint32_t pending_seq = 0, attempts = 0;
    vm_record_activity(d->def, rt_inst_record(in, d->timer_slots), act, &pending_seq, &attempts);
    out->attempt = attempts + 1;
}

/* A run of slot t, as the control plane gets it. */
static void rt_task_fill_run(const struct rt_core *c, const struct rt_part *p,
                             const struct rt_task_slot *t, struct rt_task *out)
{
    rt_task_fill(c, p, rt_part_inst(p, t->inst_ref), t->act, t->seq, out);
    out->kind = RT_TASK_RUN;
    out->deadline_ns = (uint64_t)t->deadline_s * 1000000000u;
    out->nargs = t->nargs;
    out->args = t->args;
    out->args_len = t->args_len;
    out->cause = t->cause;
    out->serial = t->serial;
}

int rt_tasks_peek(struct rt_core *c, struct rt_task *out)
{
    for (;;) {
        if (c->q_head == c->q_tail) {
            if (c->unqueued_parts == 0)
                return -ENOENT;
            rt_tasks_refill(c);
            continue;
        }
        const struct rt_qent *e = &c->queue[c->q_head & c->q_mask];
        if (e->part_idx == RT_QENT_DEAD) {
            c->q_head++; /* a cancel notice of an instance freed since: nothing to send */
            rt_tasks_refill(c);
            continue;
        }
        uint32_t pidx = e->part_idx & ~RT_QENT_CANCEL;
        const struct rt_part *p = c->parts[pidx].p;
        memset(out, 0, sizeof(*out));
        if (e->part_idx & RT_QENT_CANCEL) {
            struct rt_inst *in = rt_part_inst(p, e->ref);
            rt_task_fill(c, p, in, (unsigned)(e->serial >> 32), (uint32_t)e->serial, out);
            out->kind = RT_TASK_CANCEL;
            out->cause = e->cause;
            return 0;
        }
        const struct rt_task_slot *t = &rt_part_tasks(p)[e->ref];
        if (t->serial != e->serial) {
            c->q_head++; /* the activity ended before its task left: nothing to send */
            rt_tasks_refill(c);
            continue;
        }
        rt_task_fill_run(c, p, t, out);
        return 0;
    }
}

int rt_tasks_pop(struct rt_core *c)
{
    struct rt_task t;
    if (rt_tasks_peek(c, &t) != 0)
        return -ENOENT;
    if (t.kind == RT_TASK_CANCEL) {
        assert(c->q_cancels > 0);
        c->q_cancels--;
    }
    c->q_head++;
    c->stats.tasks_popped++;
    rt_tasks_refill(c);
    return 0;
}

void rt_tasks_pending(const struct rt_core *c, uint32_t *queued, uint64_t *flagged)
{
    *queued = (uint32_t)(c->q_tail - c->q_head);
    uint64_t n = 0;
    for (uint32_t pi = 0; pi < c->part_count; pi++) {
        const struct rt_task_slot *ts = rt_part_tasks(c->parts[pi].p);
        for (uint32_t ti = c->parts[pi].unqueued; ti != RT_NONE; ti = ts[ti].next)
            n++;
    }
    *flagged = n;
}

unsigned rt_tasks_list(const struct rt_core *c, uint64_t skip, struct rt_task *out, unsigned max)
{
    unsigned n = 0;
    for (uint32_t pi = 0; pi < c->part_count && n < max; pi++) {
        const struct rt_part *p = c->parts[pi].p;
        const struct rt_task_slot *ts = rt_part_tasks(p);
        for (uint32_t ti = p->task_head; ti != RT_NONE && n < max; ti = ts[ti].next) {
            if (skip > 0) {
                skip--;
                continue;
            }
            const struct rt_task_slot *t = &ts[ti];
            memset(&out[n], 0, sizeof(out[n]));
            rt_task_fill_run(c, p, t, &out[n++]);
        }
    }
    return n;
}

unsigned rt_tasks_expired(struct rt_core *c, uint64_t now_ns, unsigned parts_max,
                          struct rt_expired *out, unsigned max)
{
    unsigned n = 0;
    uint64_t now_s = now_ns / 1000000000u;
    for (unsigned k = 0; k < parts_max && k < c->part_count && n < max; k++) {
        uint32_t pi = c->deadline_cursor;
        const struct rt_part *p = c->parts[pi].p;
        const struct rt_task_slot *ts = rt_part_tasks(p);
        bool whole = true;
        for (uint32_t ti = p->task_head; ti != RT_NONE; ti = ts[ti].next) {
            const struct rt_task_slot *t = &ts[ti];
            if (t->deadline_s == 0 || t->deadline_s > now_s)
                continue;
            if (n == max) {
                whole = false; /* the rest of this partition on the next call */
                break;
            }
            const struct rt_inst *in = rt_part_inst(p, t->inst_ref);
            const struct rt_def *d = rt_registry_def(c->reg, in->def_id);
            uint8_t id_len;
            const char *id = rt_inst_id(p, in, &id_len);
            const struct rt_type *ty = &c->reg->types[d->type_id];
            out[n++] = (struct rt_expired){ .key = wf_key_make(ty->name, ty->name_len, id, id_len),
                                            .part_id = p->part_id,
                                            .act = t->act,
                                            .seq = t->seq };
        }
        if (whole)
            c->deadline_cursor = pi + 1 == c->part_count ? 0 : pi + 1;
    }
    return n;
}

void rt_tasks_reset(struct rt_core *c)
{
    c->q_head = c->q_tail = 0;
    c->q_cancels = 0;
    c->unqueued_parts = 0;
    c->refill_cursor = 0;
    for (uint32_t pi = 0; pi < c->part_count; pi++) {
        c->parts[pi].unqueued = c->parts[pi].p->task_head;
        if (c->parts[pi].unqueued != RT_NONE)
            c->unqueued_parts++;
    }
    rt_tasks_refill(c);
}

int rt_task_idempotency_key(const struct rt_task *t, char *buf, size_t cap)
{
    int n =
        snprintf(buf, cap, "%016" PRIx64 "%016" PRIx64 "-%" PRIu32, t->key.hi, t->key.lo, t->seq);
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}
