/* rt.c — the apply functions: signal-with-start, dedupe, VM, commands (see rt.h). */
#include <errno.h>

#include "rt_internal.h"

void rt_event_from_sf(struct rt_event *out, const struct sf_event *ev, struct wf_key key,
                      uint64_t now_ns, uint64_t cause)
{
    out->key = key;
    out->type = ev->type;
    out->type_len = ev->type_len;
    out->id = ev->id;
    out->id_len = ev->id_len;
    out->signal = ev->signal;
    out->signal_len = ev->signal_len;
    out->fields = ev->fields;
    out->fields_len = ev->fields_len;
    out->fields_json = ev->fields_json;
    out->event_id = ev->event_id;
    out->has_event_id = ev->has_event_id;
    out->now_ns = now_ns;
    out->cause = cause;
}

void rt_prefetch(const struct rt_part *p, struct wf_key key)
{
    __builtin_prefetch(&rt_part_buckets(p)[wf_buckets_primary(p->bucket_count, key)], 0, 3);
}

void rt_prefetch_instance(const struct rt_part *p, struct wf_key key)
{
    (void)rt_prefetch_instance_ref(p, key);
}

/* ---- dedupe ---- */

static inline int rt_dd_check(const struct rt_inst *in, uint64_t e)
{
    if (!(in->flags & RT_INST_F_DEDUPE) || e > in->dd_hwm)
        return RT_APPLIED;
    if (e == in->dd_hwm)
        return RT_DUPLICATE;
    uint64_t back = in->dd_hwm - e; /* >= 1 */
    if (back > RT_DEDUPE_WINDOW)
        return RT_STALE;
    return (in->dd_bits >> (back - 1)) & 1u ? RT_DUPLICATE : RT_APPLIED;
}

static inline __attribute__((always_inline)) void rt_dd_mark(struct rt_inst *in, uint64_t e)
{
    if (!(in->flags & RT_INST_F_DEDUPE)) {
        in->flags |= RT_INST_F_DEDUPE;
        in->dd_hwm = e;
        in->dd_bits = 0;
        return;
    }
    if (e > in->dd_hwm) {
        uint64_t shift = e - in->dd_hwm;
        /* the old mark moves into the window at position shift - 1 */
        in->dd_bits = shift > RT_DEDUPE_WINDOW    ? 0
                      : shift == RT_DEDUPE_WINDOW ? 1ull << 63
                                                  : (in->dd_bits << shift) | 1ull << (shift - 1);
        in->dd_hwm = e;
        return;
    }
    uint64_t back = in->dd_hwm - e;
    assert(back >= 1 && back <= RT_DEDUPE_WINDOW);
    in->dd_bits |= 1ull << (back - 1);
}

/* ---- fields ---- */

static bool rt_field_fits(enum flow_type want, const struct sf_value *v)
{
    return v->type == SF_VAL_NULL || (unsigned)v->type == (unsigned)want ||
           (want == FLOW_T_FLOAT && v->type == SF_VAL_INT);
}

/* A text no longer than its field's text(N) (cap 0: no bound). Bytes as carried: UTF-8 in
 * CBOR, the written form (escapes undecoded, as the handler sees it) in JSON. */
static bool rt_field_short(unsigned cap, const struct sf_value *v)
{
    return cap == 0 || v->type != SF_VAL_TEXT || v->text.len <= cap;
}

/* Decode ev's fields for signal sig of def into vals[] in declaration order; returns the
 * number of values, -1 when they do not match the declaration, -2 when they do but a text
 * is longer than its field's text(N). */
static int rt_decode_fields(const struct flow_def *def, const struct fb_sig_plan *sp, unsigned sig,
                            const struct rt_event *ev, struct sf_value *vals)
{
    int nf = flow_def_signal_field_count(def, sig);
    assert(nf >= 0 && nf <= (int)FLOW_FIELDS_MAX);
    int n;
    if (!ev->fields_json) {
        n = sf_fields_decode(ev->fields, ev->fields_len, vals, FLOW_FIELDS_MAX);
        if (n < 0)
            return -1;
    } else {
        struct sf_json_field jf[SF_JSON_FIELDS_MAX];
        int k = sf_json_fields_decode(ev->fields, ev->fields_len, jf, SF_JSON_FIELDS_MAX);
        if (k < 0)
            return -1;
        for (int i = 0; i < nf; i++)
            vals[i].type = SF_VAL_NULL;
        for (int i = 0; i < k; i++) {
            int at = flow_def_signal_field_index(def, sig, jf[i].name, jf[i].name_len);
            if (at < 0)
                return -1;
            vals[at] = jf[i].value;
        }
        n = nf;
    }
    bool too_long = false;
    for (int i = 0; i < n && i < nf; i++) {
        if (!rt_field_fits(flow_def_signal_field_type(def, sig, (unsigned)i), &vals[i]))
            return -1;
        too_long |= !rt_field_short(sp->text_cap[i], &vals[i]);
    }
    return too_long ? -2 : n;
}

/* ---- instances ---- */

/* Initialise instance `in` of def d for id (fresh header, unlinked nodes, new record). */
static void rt_inst_init(struct rt_inst *in, const struct rt_def *d, uint32_t key_ref,
                         const char *id, size_t id_len, uint64_t now_ns)
{
    memset(in, 0, sizeof(*in) + (size_t)d->timer_slots * RT_TIMER_NODE_BYTES);
    in->key_ref = key_ref;
    in->task_head = RT_NONE;
    in->def_id = d->def_id;
    vm_record_init(d->def, rt_inst_record(in, d->timer_slots), id, id_len, now_ns);
}

/* Create the instance of ev (def d). Returns its ref, or RT_NONE when full (counted). */
static uint32_t rt_inst_create(struct rt_core *c, struct rt_part *p, const struct rt_def *d,
                               const struct rt_event *ev)
{
    uint32_t ref, key_ref;
    bool new_chunk;
    if (!rt_key_peek(p, ev->id_len, &key_ref)) {
        p->stats.full_keystore++;
        return RT_NONE;
    }
    if (!rt_arena_peek(p, d, &ref, &new_chunk)) {
        p->stats.full_arena++;
        return RT_NONE;
    }
    if (wf_table_insert(rt_part_table(p), ev->key, ref) != 0) {
        p->stats.full_table++;
        return RT_NONE;
    }
    rt_arena_commit(p, d, ref, new_chunk);
    rt_key_commit(p, key_ref, ev->id, ev->id_len);
    struct rt_inst *in = rt_part_inst(p, ref);
    rt_inst_init(in, d, key_ref, ev->id, ev->id_len, ev->now_ns);
    p->stats.instances++;
    c->running[d->def_id]++;
    return ref;
}

/* Point the table slot of key at ref (the key is present). */
static void rt_table_set(struct rt_part *p, struct wf_key key, uint32_t ref)
{
    struct wf_bucket *bk = (struct wf_bucket *)rt_part_buckets(p);
    uint32_t b[2] = { wf_buckets_primary(p->bucket_count, key),
                      wf_buckets_secondary(p->bucket_count, key) };
    for (unsigned j = 0; j < 2; j++)
        for (unsigned i = 0; i < bk[b[j]].used; i++)
            if (wf_key_equal(bk[b[j]].key[i], key)) {
                bk[b[j]].rec[i] = ref;
                return;
            }
    assert(0 && "key present");
}

/* An expired tombstone gets a signal: start a new incarnation of the newest version in its
 * place (on another version: in a slot of that version, the old slot is freed). Returns the
 * new ref or RT_NONE (full). */
static uint32_t rt_inst_restart(struct rt_core *c, uint32_t pidx, struct rt_part *p, uint32_t ref,
                                const struct rt_def *nd, const struct rt_event *ev)
{
    struct rt_inst *old = rt_part_inst(p, ref);
    uint32_t key_ref = old->key_ref;
    uint16_t old_def = old->def_id;
    if (nd->def_id != old_def) {
        uint32_t nref;
        bool new_chunk;
        if (!rt_arena_peek(p, nd, &nref, &new_chunk)) {
            p->stats.full_arena++;
            return RT_NONE;
        }
        rt_inst_drop_tasks(c, pidx, p, old);
        rt_arena_commit(p, nd, nref, new_chunk);
        rt_table_set(p, ev->key, nref);
        rt_slot_free(c, pidx, p, ref);
        p->stats.records_abandoned++;
        ref = nref;
    } else {
        rt_inst_drop_tasks(c, pidx, p, old);
    }
    rt_inst_init(rt_part_inst(p, ref), nd, key_ref, ev->id, ev->id_len, ev->now_ns);
    p->stats.instances++;
    p->stats.tombstones_reused++;
    c->completed[old_def]--;
    c->running[nd->def_id]++;
    return ref;
}

/* ---- running the VM and applying its commands ---- */

struct rt_run {
    struct rt_core *c;
    struct rt_part *p;
    uint32_t pidx;
    uint32_t ref;
    struct rt_inst *in;
    const struct rt_def *d;
    uint8_t *rec;
    uint64_t now_ns;
    uint64_t cause;
    uint32_t state_key; /* rt_rec_state_key before the handler ran */
    uint64_t old_due[FLOW_TIMER_SLOTS_MAX];
};

/* Before the handler: what rt_run_end compares against (timer slots, counted state). */
static inline void rt_run_begin(struct rt_run *r)
{
    unsigned n = r->d->timer_slots;
    if (n == 1) /* the usual case: no memcpy call for one word */
        r->old_due[0] = rt_rec_due(r->d, r->rec, 0);
    else if (n > 1)
        memcpy(r->old_due, r->rec + r->d->timers_off, 8u * n);
    r->state_key = rt_rec_state_key(r->d, r->rec);
}

/* Make the wheel agree with the record's timer slots. */
static inline void rt_timers_sync(struct rt_run *r)
{
    struct rt_tnode *nodes = rt_inst_nodes(r->in);
    for (unsigned s = 0; s < r->d->timer_slots; s++) {
        uint64_t due = rt_rec_due(r->d, r->rec, s);
        struct rt_tnode *n = &nodes[s];
        if (due == 0) {
            if (rt_tnode_linked(n))
                rt_wheel_unlink(r->c, n);
            continue;
        }
        if (rt_tnode_linked(n)) {
            if (due >= r->old_due[s] && r->old_due[s] != 0)
                continue; /* later than where it sits: found there and moved on (lazy) */
            rt_wheel_unlink(r->c, n);
        } else if (due == r->old_due[s]) {
            continue; /* yielded by rt_timers_due, its firing not applied yet */
        }
        rt_wheel_link(r->c, rt_tref(r->pidx, r->ref, s), n, due);
    }
}

/* No effects yet (runs[] is written only as runs are scheduled: not cleared). */
static inline void rt_fx_reset(struct rt_effects *fx)
{
    fx->inst_ref = RT_NONE;
    fx->def_id = RT_DEF_NONE;
    fx->tasks = 0;
    fx->cancels = 0;
    fx->completed = false;
    fx->vm_rc = 0;
}

static inline __attribute__((always_inline)) void rt_run_end(struct rt_run *r, int ncmds,
                                                             struct rt_effects *fx)
{
    struct rt_core *c = r->c;
    for (int i = 0; i < ncmds; i++) {
        const struct vm_cmd *m = &c->cmds[i];
        switch (m->kind) {
        case VM_CMD_ACTIVITY_RUN:
            rt_task_create(c, r->pidx, r->p, r->ref, r->in, m, r->cause, r->now_ns);
            if (fx) {
                if (fx->tasks < RT_EFFECT_RUNS)
                    fx->runs[fx->tasks] = (struct rt_run_id){ .act = m->index, .seq = m->seq };
                fx->tasks++;
            }
            break;
        case VM_CMD_ACTIVITY_CANCEL:
            rt_task_finish(c, r->pidx, r->p, r->in, m->index, m->seq);
            rt_task_cancel_notice(c, r->pidx, r->ref, m->index, m->seq, r->cause);
            if (fx)
                fx->cancels++;
            break;
        case VM_CMD_COMPLETE:
            r->in->flags |= RT_INST_F_COMPLETED;
            r->in->completed_s = (uint32_t)(r->now_ns >> 30);
            r->p->stats.completed++;
            c->running[r->d->def_id]--;
            c->completed[r->d->def_id]++;
            if (fx)
                fx->completed = true;
            break;
        default:
            break; /* timers: synchronised from the record below */
        }
    }
    rt_timers_sync(r);
    uint32_t key = rt_rec_state_key(r->d, r->rec);
    if (key != r->state_key) { /* the live view's per-state counts follow the record */
        if (r->state_key != UINT32_MAX)
            c->state_counts[r->state_key]--;
        if (key != UINT32_MAX)
            c->state_counts[key]++;
    }
}

static inline int rt_done(struct rt_core *c, int st)
{
    c->stats.status[st]++;
    return st;
}

/* Activity runs among the first n commands (a cancel frees its slot only later: ignored). */
static unsigned rt_cmds_runs(const struct vm_cmd *cmds, int n)
{
    unsigned runs = 0;
    for (int i = 0; i < n; i++)
        runs += cmds[i].kind == VM_CMD_ACTIVITY_RUN;
    return runs;
}

/*
 * The task pool is low (fewer free slots than d has activities): would this signal's
 * handler fit? A dry run on a copy of the record — of the instance (in), or a fresh one for
 * a new instance — with copies of the inputs; nothing of the partition changes. Only on
 * this rare path; the real run that may follow computes the same commands.
 */
static __attribute__((noinline)) bool
rt_signal_fits(struct rt_core *c, struct rt_part *p, const struct rt_def *d,
               const struct rt_inst *in, unsigned sig, const union vm_reg *regs,
               const struct sf_value *vals, int nvals, const struct rt_event *ev)
{
    _Alignas(16) uint8_t rec[FLOW_RECORD_SIZE_MAX];
    union vm_reg r2[VM_REGS_MAX];
    if (d->record_size > sizeof(rec))
        return false;
    if (in)
        memcpy(rec, rt_inst_record((struct rt_inst *)in, d->timer_slots), d->record_size);
    else
        vm_record_init(d->def, rec, ev->id, ev->id_len, ev->now_ns);
    int n;
    if (nvals < 0) {
        memcpy(r2, regs, sizeof(r2));
        n = vm_run_signal_regs(d->def, rec, sig, r2, ev->id, ev->id_len, ev->now_ns, c->cmds,
                               RT_CMDS_MAX);
    } else {
        n = vm_run_signal(d->def, rec, sig, vals, (unsigned)nvals, ev->id, ev->id_len, ev->now_ns,
                          c->cmds, RT_CMDS_MAX);
    }
    return n >= 0 && rt_cmds_runs(c->cmds, n) <= p->task_free_count;
}

/* Apply ev to instance `ref` of p (WF_REC_NONE: the key is not in the table). */
static inline __attribute__((always_inline)) int rt_signal_at(struct rt_core *c, struct rt_part *p,
                                                              const struct rt_event *ev,
                                                              uint32_t ref, struct rt_effects *fx)
{
    assert(p->magic == RT_PART_MAGIC && c->reg != NULL);
    if (fx)
        rt_fx_reset(fx);
    const struct rt_registry *reg = c->reg;
    const struct rt_def *d;
    struct rt_inst *in = NULL;
    int st = RT_APPLIED;
    if (ref != WF_REC_NONE) {
        in = rt_part_inst(p, ref);
        d = rt_registry_def(reg, in->def_id);
        if (RT_UNLIKELY(d == NULL))
            return rt_done(c, RT_UNKNOWN_TYPE);
        if (RT_UNLIKELY(in->flags & RT_INST_F_COMPLETED)) {
            if (!rt_tombstone_expired(c, in, ev->now_ns))
                return rt_done(c, RT_COMPLETED);
            d = rt_registry_newest(reg, d->type_id);
            in = NULL; /* restarted below, once the signal is known to be good */
            st = RT_CREATED;
        } else if (ev->has_event_id) {
            int dd = rt_dd_check(in, ev->event_id);
            if (RT_UNLIKELY(dd != RT_APPLIED))
                return rt_done(c, dd);
        }
    } else {
        int t = rt_registry_type(reg, ev->type, ev->type_len);
        if (t < 0)
            return rt_done(c, RT_UNKNOWN_TYPE);
        d = rt_registry_newest(reg, (unsigned)t);
        st = RT_CREATED;
    }
    const struct flow_def *def = d->def;
    int sig = fb_sig_plan_find(d->sig_plan, d->signal_count, ev->signal, ev->signal_len);
    if (RT_UNLIKELY(sig < 0))
        return rt_done(c, RT_UNKNOWN_SIGNAL);
    /* fields: straight into the VM's registers when the encoding is the usual one, else
     * through the general decoder (which also decides what is malformed) */
    union vm_reg regs[VM_REGS_MAX];
    struct sf_value vals[FLOW_FIELDS_MAX];
    int nvals = -1; /* -1: the fields are in regs */
    if (ev->fields_json ||
        rt_fields_fast(ev->fields, ev->fields_len, &d->sig_plan[sig], regs) != 0) {
        nvals = rt_decode_fields(def, &d->sig_plan[sig], (unsigned)sig, ev, vals);
        if (nvals < 0)
            return rt_done(c, nvals == -2 ? RT_TEXT_TOO_LONG : RT_BAD_FIELDS);
    }
    if (RT_UNLIKELY(p->task_free_count < d->activity_count) &&
        !rt_signal_fits(c, p, d, st == RT_CREATED ? NULL : in, (unsigned)sig, regs, vals, nvals,
                        ev)) {
        p->stats.full_tasks++;
        return rt_done(c, RT_BUSY);
    }
    uint32_t pidx = rt_core_part_index(c, p);
    if (st == RT_CREATED) {
        ref = ref == WF_REC_NONE ? rt_inst_create(c, p, d, ev)
                                 : rt_inst_restart(c, pidx, p, ref, d, ev);
        if (ref == RT_NONE)
            return rt_done(c, RT_FULL);
        in = rt_part_inst(p, ref);
    }
    struct rt_run r; /* field by field: old_due[] is filled by rt_run_begin, not zeroed */
    r.c = c;
    r.p = p;
    r.pidx = pidx;
    r.ref = ref;
    r.in = in;
    r.d = d;
    r.rec = rt_inst_record(in, d->timer_slots);
    r.now_ns = ev->now_ns;
    r.cause = ev->cause;
    rt_run_begin(&r);
    int rc = nvals < 0 ? vm_run_signal_regs(def, r.rec, (unsigned)sig, regs, ev->id, ev->id_len,
                                            ev->now_ns, c->cmds, RT_CMDS_MAX)
                       : vm_run_signal(def, r.rec, (unsigned)sig, vals, (unsigned)nvals, ev->id,
                                       ev->id_len, ev->now_ns, c->cmds, RT_CMDS_MAX);
    assert(rc >= 0); /* fields were checked, the instance is running, cmds are sized */
    if (ev->has_event_id) {
        rt_dd_mark(in, ev->event_id);
        in->last_event_id = ev->event_id;
    }
    in->signals++;
    rt_run_end(&r, rc, fx);
    if (fx) {
        fx->inst_ref = ref;
        fx->def_id = d->def_id;
        fx->vm_rc = rc;
    }
    return rt_done(c, st);
}

int rt_apply_signal(struct rt_core *c, struct rt_part *p, const struct rt_event *ev,
                    struct rt_effects *fx)
{
    return rt_signal_at(c, p, ev, wf_buckets_find(rt_part_buckets(p), p->bucket_count, ev->key),
                        fx);
}

uint32_t rt_prefetch_instance_ref(const struct rt_part *p, struct wf_key key)
{
    uint32_t ref = wf_buckets_find(rt_part_buckets(p), p->bucket_count, key);
    if (ref == WF_REC_NONE)
        return RT_NONE;
    const char *in = (const char *)rt_part_inst(p, ref);
    __builtin_prefetch(in, 1, 3);
    __builtin_prefetch(in + 64, 1, 3);
    __builtin_prefetch(in + 128, 1, 3);
    return ref;
}

static inline __attribute__((always_inline)) uint32_t
rt_current_ref(const struct rt_part *p, struct wf_key key, uint32_t ref)
{
    _Static_assert(RT_NONE == WF_REC_NONE, "one 'no instance' value");
    /* an absent key may have been created, a tombstone restarted on another record (its old
     * slot now free), by an earlier event of the burst: look again (a live instance's ref
     * never changes; a freed slot is reused only by its own def, which is not the newest,
     * so not within the burst) */
    if (ref == RT_NONE || (rt_part_inst(p, ref)->flags & (RT_INST_F_COMPLETED | RT_INST_F_FREE)))
        ref = wf_buckets_find(rt_part_buckets(p), p->bucket_count, key);
    return ref;
}

uint32_t rt_inst_current(const struct rt_part *p, struct wf_key key, uint32_t ref)
{
    return rt_current_ref(p, key, ref);
}

int rt_apply_signal_ref(struct rt_core *c, struct rt_part *p, const struct rt_event *ev,
                        uint32_t ref, struct rt_effects *fx)
{
    return rt_signal_at(c, p, ev, rt_current_ref(p, ev->key, ref), fx);
}

int rt_apply_signal_current(struct rt_core *c, struct rt_part *p, const struct rt_event *ev,
                            uint32_t ref, struct rt_effects *fx)
{
    return rt_signal_at(c, p, ev, ref, fx);
}

uint32_t rt_inst_find(const struct rt_part *p, struct wf_key key)
{
    _Static_assert(RT_NONE == WF_REC_NONE, "one 'no instance' value");
    return wf_buckets_find(rt_part_buckets(p), p->bucket_count, key);
}

struct rt_hlink rt_inst_hlink(const struct rt_part *p, uint32_t ref)
{
    return rt_part_inst(p, ref)->hlink;
}

void rt_inst_set_hlink(struct rt_part *p, uint32_t ref, struct rt_hlink link)
{
    rt_part_inst(p, ref)->hlink = link;
}

/* Find the running instance of key for a timer / activity input. */
static int rt_input_instance(struct rt_core *c, struct rt_part *p, struct wf_key key,
                             struct rt_run *r)
{
    uint32_t ref = wf_buckets_find(rt_part_buckets(p), p->bucket_count, key);
    if (ref == WF_REC_NONE)
        return RT_NOT_FOUND;
    r->c = c;
    r->p = p;
    r->pidx = rt_core_part_index(c, p);
    r->ref = ref;
    r->in = rt_part_inst(p, ref);
    r->d = rt_registry_def(c->reg, r->in->def_id);
    if (r->d == NULL)
        return RT_UNKNOWN_TYPE;
    r->rec = rt_inst_record(r->in, r->d->timer_slots);
    return RT_APPLIED;
}

int rt_apply_timer(struct rt_core *c, struct rt_part *p, struct wf_key key, unsigned slot,
                   uint64_t due_ns, uint64_t cause, struct rt_effects *fx)
{
    if (fx)
        rt_fx_reset(fx);
    struct rt_run r;
    int st = rt_input_instance(c, p, key, &r);
    if (st != RT_APPLIED)
        return rt_done(c, st);
    if (r.in->flags & RT_INST_F_COMPLETED)
        return rt_done(c, RT_COMPLETED);
    if (slot >= r.d->timer_slots || vm_record_timer_due(r.d->def, r.rec, slot) != due_ns ||
        due_ns == 0) {
        /* stale firing: make sure a yielded node whose slot was re-armed is linked again */
        if (slot < r.d->timer_slots) {
            for (unsigned s = 0; s < r.d->timer_slots; s++)
                r.old_due[s] = 0;
            rt_timers_sync(&r);
        }
        return rt_done(c, RT_IGNORED);
    }
    uint8_t id_len;
    const char *id = rt_inst_id(p, r.in, &id_len);
    if (p->task_free_count < r.d->activity_count) {
        /* the pool is low: a dry run on a copy decides (see rt_signal_fits) */
        _Alignas(16) uint8_t rec[FLOW_RECORD_SIZE_MAX];
        int n = -1;
        if (r.d->record_size <= sizeof(rec)) {
            memcpy(rec, r.rec, r.d->record_size);
            n = vm_run_timer(r.d->def, rec, slot, due_ns, id, id_len, c->cmds, RT_CMDS_MAX);
        }
        if (n < 0 || rt_cmds_runs(c->cmds, n) > p->task_free_count) {
            p->stats.full_tasks++;
            return rt_done(c, RT_BUSY);
        }
    }
    r.now_ns = due_ns;
    r.cause = cause;
    rt_run_begin(&r);
    struct rt_tnode *n = &rt_inst_nodes(r.in)[slot];
    if (rt_tnode_linked(n))
        rt_wheel_unlink(c, n); /* replay, or a firing applied before it was yielded */
    r.old_due[slot] = 0;       /* the node is out of the wheel: relink whatever is armed */
    int rc = vm_run_timer(r.d->def, r.rec, slot, due_ns, id, id_len, c->cmds, RT_CMDS_MAX);
    assert(rc >= 0);
    rt_run_end(&r, rc, fx);
    if (fx) {
        fx->inst_ref = r.ref;
        fx->def_id = r.d->def_id;
        fx->vm_rc = rc;
    }
    return rt_done(c, RT_APPLIED);
}

int rt_apply_activity_result(struct rt_core *c, struct rt_part *p, struct wf_key key, unsigned act,
                             uint32_t seq, bool failed, int64_t result, uint64_t now_ns,
                             uint64_t cause, struct rt_effects *fx)
{
    if (fx)
        rt_fx_reset(fx);
    struct rt_run r;
    int st = rt_input_instance(c, p, key, &r);
    if (st != RT_APPLIED)
        return rt_done(c, st);
    if (act >= r.d->activity_count)
        return rt_done(c, RT_IGNORED);
    uint32_t pending_seq;
    if (!vm_record_activity(r.d->def, r.rec, act, &pending_seq, NULL) || pending_seq != seq)
        return rt_done(c, RT_IGNORED);
    if (r.in->flags & RT_INST_F_COMPLETED) {
        rt_task_finish(c, r.pidx, p, r.in, act, seq); /* the activity is over all the same */
        return rt_done(c, RT_COMPLETED);
    }
    /* the result's own task is freed before the handler runs; when the pool is low, a dry
     * run on a copy decides (see rt_signal_fits) */
    uint8_t id_len;
    const char *id = rt_inst_id(p, r.in, &id_len);
    if (p->task_free_count + 1 < r.d->activity_count) {
        _Alignas(16) uint8_t rec[FLOW_RECORD_SIZE_MAX];
        int n = -1;
        if (r.d->record_size <= sizeof(rec)) {
            memcpy(rec, r.rec, r.d->record_size);
            n = failed ? vm_run_activity_failed(r.d->def, rec, act, seq, id, id_len, now_ns,
                                                c->cmds, RT_CMDS_MAX)
                       : vm_run_activity_done(r.d->def, rec, act, seq, result, id, id_len, now_ns,
                                              c->cmds, RT_CMDS_MAX);
        }
        if (n < 0 || rt_cmds_runs(c->cmds, n) > p->task_free_count + 1) {
            p->stats.full_tasks++;
            return rt_done(c, RT_BUSY);
        }
    }
    r.now_ns = now_ns;
    r.cause = cause;
    rt_task_finish(c, r.pidx, p, r.in, act, seq);
    rt_run_begin(&r);
    int rc = failed ? vm_run_activity_failed(r.d->def, r.rec, act, seq, id, id_len, now_ns, c->cmds,
                                             RT_CMDS_MAX)
                    : vm_run_activity_done(r.d->def, r.rec, act, seq, result, id, id_len, now_ns,
                                           c->cmds, RT_CMDS_MAX);
    assert(rc >= 0);
    rt_run_end(&r, rc, fx);
    if (fx) {
        fx->inst_ref = r.ref;
        fx->def_id = r.d->def_id;
        fx->vm_rc = rc;
    }
    return rt_done(c, RT_APPLIED);
}

int rt_note_attempt(struct rt_core *c, struct rt_part *p, struct wf_key key, unsigned act,
                    uint32_t seq, uint32_t attempt)
{
    struct rt_run r;
    int st = rt_input_instance(c, p, key, &r);
    if (st != RT_APPLIED)
        return rt_done(c, st);
    if (act >= r.d->activity_count)
        return rt_done(c, RT_IGNORED);
    int rc = vm_note_attempt(r.d->def, r.rec, act, seq, attempt);
    return rt_done(c, rc == 1 ? RT_APPLIED : RT_IGNORED);
}
