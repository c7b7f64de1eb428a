/*
 * rt_wheel.c — the per-core hierarchical timer wheel.
 *
 * Design: RT_WHEEL_LEVELS levels of 256 buckets over ticks of 2^20 ns; level l holds
 * timers whose tick agrees with the wheel position `cur` on every base-256 digit above l
 * and differs at digit l; its bucket is that digit. Six levels cover every u64 ns time, so
 * there is no overflow list. Each bucket is a doubly linked list of 16-byte nodes that live
 * inside the instances (one per timer slot), linked by u64 references (rt_internal.h):
 * arm, cancel and move are O(1) and cost no memory beyond the node. A 256-bit occupancy
 * bitmap per level lets the wheel jump over empty buckets, so catching up hours or days
 * after a restart costs the non-empty buckets, not the ticks.
 *
 * Lazy reset: a node may sit in a bucket EARLIER than its record's due time (a silence
 * timer pushed later by a signal is not moved; rt_timers_sync moves only timers that got
 * earlier). When its bucket comes up the node is checked against the record: due → ready,
 * else placed again. Invariant: a linked node's bucket time <= its record's due time, so
 * nothing fires late; the record is the truth, the wheel only an index.
 *
 * Ready list: buckets whose tick has passed are appended to a FIFO `ready` list (in tick
 * order); rt_timers_due takes firings from its front.
 */
#include "rt_internal.h"

void rt_wheel_init(struct rt_wheel *w, uint64_t start_ns)
{
    memset(w, 0, sizeof(*w));
    w->cur = start_ns >> RT_WHEEL_TICK_SHIFT;
}

/* The node a reference names (a real node, not a head). */
static struct rt_tnode *rt_tref_node(const struct rt_core *c, uint64_t ref)
{
    assert((ref & RT_TREF_NODE) && !(ref & RT_TREF_HEAD));
    uint32_t pidx = (uint32_t)((ref >> 37) & 0xffffu);
    uint32_t iref = (uint32_t)(ref >> 5);
    assert(pidx < c->part_count);
    struct rt_inst *in = rt_part_inst(c->parts[pidx].p, iref);
    return &rt_inst_nodes(in)[ref & 31u];
}

/* Due time of the node's timer slot, read from the record; fills *in_out / *d_out. */
static uint64_t rt_tref_due(const struct rt_core *c, uint64_t ref)
{
    uint32_t pidx = (uint32_t)((ref >> 37) & 0xffffu);
    struct rt_inst *in = rt_part_inst(c->parts[pidx].p, (uint32_t)(ref >> 5));
    const struct rt_def *d = rt_registry_def(c->reg, in->def_id);
    assert(d != NULL);
    if (in->flags & RT_INST_F_COMPLETED)
        return 0;
    return vm_record_timer_due(d->def, rt_inst_record(in, d->timer_slots), ref & 31u);
}

static void rt_occ_set(struct rt_wheel *w, unsigned h)
{
    if (h < RT_WHEEL_READY)
        w->occ[h / RT_WHEEL_BUCKETS][(h % RT_WHEEL_BUCKETS) / 64] |= 1ull << (h % 64);
}

static void rt_occ_clear(struct rt_wheel *w, unsigned h)
{
    if (h < RT_WHEEL_READY)
        w->occ[h / RT_WHEEL_BUCKETS][(h % RT_WHEEL_BUCKETS) / 64] &= ~(1ull << (h % 64));
}

/* Push node n (ref) at the front of list h. */
static void rt_list_push(struct rt_core *c, unsigned h, uint64_t ref, struct rt_tnode *n)
{
    struct rt_wheel *w = &c->wheel;
    uint64_t first = w->head[h];
    n->prev = RT_TREF_HEAD | h;
    n->next = first;
    if (first)
        rt_tref_node(c, first)->prev = ref;
    w->head[h] = ref;
    rt_occ_set(w, h);
}

/* Append node n at the back of the ready list. */
static void rt_ready_append(struct rt_core *c, uint64_t ref, struct rt_tnode *n)
{
    struct rt_wheel *w = &c->wheel;
    if (w->ready_tail == 0) {
        rt_list_push(c, RT_WHEEL_READY, ref, n);
        w->ready_tail = ref;
        return;
    }
    rt_tref_node(c, w->ready_tail)->next = ref;
    n->prev = w->ready_tail;
    n->next = 0;
    w->ready_tail = ref;
}

/* Place a node (unlinked, not counted) by its due time relative to cur. */
static void rt_place(struct rt_core *c, uint64_t ref, struct rt_tnode *n, uint64_t due_ns)
{
    struct rt_wheel *w = &c->wheel;
    uint64_t tick = due_ns >> RT_WHEEL_TICK_SHIFT;
    if (tick < w->cur) {
        rt_ready_append(c, ref, n);
        return;
    }
    unsigned l = 0;
    while (l + 1 < RT_WHEEL_LEVELS && (tick >> (8 * (l + 1))) != (w->cur >> (8 * (l + 1))))
        l++;
    unsigned idx = (unsigned)(tick >> (8 * l)) & (RT_WHEEL_BUCKETS - 1);
    rt_list_push(c, l * RT_WHEEL_BUCKETS + idx, ref, n);
}

void rt_wheel_link(struct rt_core *c, uint64_t ref, struct rt_tnode *n, uint64_t due_ns)
{
    assert(!rt_tnode_linked(n) && due_ns != 0);
    rt_place(c, ref, n, due_ns);
    c->wheel.armed++;
    c->stats.timers_armed++;
}

/* Unlink a linked node: its neighbours (or its list head) point at it. */
void rt_wheel_unlink(struct rt_core *c, struct rt_tnode *n)
{
    struct rt_wheel *w = &c->wheel;
    assert(rt_tnode_linked(n));
    uint64_t prev = n->prev, next = n->next;
    if (next == 0 && w->ready_tail != 0 && rt_tref_node(c, w->ready_tail) == n)
        w->ready_tail = (prev & RT_TREF_HEAD) ? 0 : prev;
    if (prev & RT_TREF_HEAD) {
        unsigned h = (unsigned)(prev & ~RT_TREF_HEAD);
        assert(h <= RT_WHEEL_READY);
        w->head[h] = next;
        if (next == 0)
            rt_occ_clear(w, h);
    } else {
        rt_tref_node(c, prev)->next = next;
    }
    if (next)
        rt_tref_node(c, next)->prev = prev;
    n->next = n->prev = 0;
    assert(w->armed > 0);
    w->armed--;
}

/* Next set bit >= from in a 256-bit map, or -1. */
static int rt_occ_next(const uint64_t *occ, unsigned from)
{
    if (from >= RT_WHEEL_BUCKETS)
        return -1;
    unsigned wi = from / 64;
    uint64_t m = occ[wi] & (~0ull << (from % 64));
    for (;;) {
        if (m)
            return (int)(wi * 64 + (unsigned)__builtin_ctzll(m));
        if (++wi == RT_WHEEL_BUCKETS / 64)
            return -1;
        m = occ[wi];
    }
}

/* Take list h out of the wheel and re-place each node by its record (cur already moved). */
static void rt_requeue_bucket(struct rt_core *c, unsigned h)
{
    struct rt_wheel *w = &c->wheel;
    uint64_t ref = w->head[h];
    w->head[h] = 0;
    rt_occ_clear(w, h);
    while (ref) {
        struct rt_tnode *n = rt_tref_node(c, ref);
        uint64_t next = n->next;
        n->next = n->prev = 0;
        uint64_t due = rt_tref_due(c, ref);
        if (due == 0)
            w->armed--; /* disarmed without the wheel being told: drop */
        else
            rt_place(c, ref, n, due);
        ref = next;
    }
}

/* Process every tick < target: drain due buckets into ready, cascade upper levels. */
static void rt_wheel_advance(struct rt_core *c, uint64_t target)
{
    struct rt_wheel *w = &c->wheel;
    while (w->cur < target) {
        uint64_t best = target;
        int best_level = -1;
        for (unsigned l = 0; l < RT_WHEEL_LEVELS; l++) {
            unsigned sh = 8 * l;
            unsigned digit = (unsigned)(w->cur >> sh) & (RT_WHEEL_BUCKETS - 1);
            /* inclusive: the bucket of cur's own digit may not be cascaded yet (cur entered
             * its span by a level-0 step); once cascaded it stays empty */
            int j = rt_occ_next(w->occ[l], digit);
            if (j < 0)
                continue;
            uint64_t base = (w->cur >> (sh + 8)) << (sh + 8);
            uint64_t t = base + ((uint64_t)j << sh);
            if (t < w->cur)
                t = w->cur;
            if (t < best) {
                best = t;
                best_level = (int)l;
            }
        }
        if (best_level < 0) {
            w->cur = target;
            return;
        }
        w->cur = best;
        unsigned l = (unsigned)best_level;
        unsigned idx = (unsigned)(best >> (8 * l)) & (RT_WHEEL_BUCKETS - 1);
        if (l == 0)
            w->cur = best + 1; /* tick `best` is over: its timers become ready */
        rt_requeue_bucket(c, l * RT_WHEEL_BUCKETS + idx);
    }
}

uint64_t rt_timers_armed(const struct rt_core *c)
{
    return c->wheel.armed;
}

/* Of instance in's armed slots due before the wheel position, the earliest (due, slot)
 * whose node is linked (in the ready list). */
static unsigned rt_first_due_slot(const struct rt_core *c, struct rt_inst *in,
                                  const struct rt_def *d, unsigned slot, uint64_t *due)
{
    const uint8_t *rec = rt_inst_record(in, d->timer_slots);
    for (unsigned s = 0; s < d->timer_slots; s++) {
        if (s == slot || !rt_tnode_linked(&rt_inst_nodes(in)[s]))
            continue;
        uint64_t ds = vm_record_timer_due(d->def, rec, s);
        if (ds == 0 || (ds >> RT_WHEEL_TICK_SHIFT) >= c->wheel.cur)
            continue;
        if (ds < *due || (ds == *due && s < slot)) {
            *due = ds;
            slot = s;
        }
    }
    return slot;
}

unsigned rt_timers_due(struct rt_core *c, uint64_t now_ns, unsigned max, struct rt_firing *out)
{
    struct rt_wheel *w = &c->wheel;
    uint64_t target = now_ns >> RT_WHEEL_TICK_SHIFT;
    if (w->cur < target)
        rt_wheel_advance(c, target);
    unsigned n = 0;
    while (n < max && w->head[RT_WHEEL_READY] != 0) {
        uint64_t ref = w->head[RT_WHEEL_READY];
        uint32_t pidx = (uint32_t)((ref >> 37) & 0xffffu);
        struct rt_part *p = c->parts[pidx].p;
        uint32_t iref = (uint32_t)(ref >> 5);
        struct rt_inst *in = rt_part_inst(p, iref);
        unsigned slot = ref & 31u;
        struct rt_tnode *node = &rt_inst_nodes(in)[slot];
        uint64_t due = rt_tref_due(c, ref);
        rt_wheel_unlink(c, node);
        if (due == 0)
            continue; /* disarmed since (a replayed firing, completion) */
        if ((due >> RT_WHEEL_TICK_SHIFT) >= w->cur) {
            rt_wheel_link(c, ref, node, due); /* pushed later since it became ready */
            c->stats.timers_armed--;
            continue;
        }
        const struct rt_def *d = rt_registry_def(c->reg, in->def_id);
        if (d->timer_slots > 1) {
            unsigned first = rt_first_due_slot(c, in, d, slot, &due);
            if (first != slot) {
                /* an earlier timer of the same instance goes first; this one waits */
                rt_ready_append(c, ref, node);
                w->armed++;
                slot = first;
                node = &rt_inst_nodes(in)[slot];
                rt_wheel_unlink(c, node);
            }
        }
        uint8_t id_len;
        const char *id = rt_inst_id(p, in, &id_len);
        out[n].part = p;
        out[n].part_id = p->part_id;
        out[n].slot = slot;
        out[n].key = wf_key_make(c->reg->types[d->type_id].name, c->reg->types[d->type_id].name_len,
                                 id, id_len);
        out[n].due_ns = due;
        n++;
    }
    c->stats.timers_fired += n;
    return n;
}

void rt_timers_rebuild(struct rt_core *c)
{
    struct rt_wheel *w = &c->wheel;
    uint64_t min_due = UINT64_MAX;
    /* pass 1: unlink everything (links may be garbage after a snapshot load), find the
     * earliest due time */
    for (uint32_t pi = 0; pi < c->part_count; pi++) {
        const struct rt_part *p = c->parts[pi].p;
        uint64_t cur = 0;
        struct wf_key k;
        uint32_t ref;
        while (wf_table_next(rt_part_table(p), &cur, &k, &ref)) {
            struct rt_inst *in = rt_part_inst(p, ref);
            const struct rt_def *d = rt_registry_def(c->reg, in->def_id);
            assert(d != NULL);
            const uint8_t *rec = rt_inst_record(in, d->timer_slots);
            for (unsigned s = 0; s < d->timer_slots; s++) {
                rt_inst_nodes(in)[s] = (struct rt_tnode){ 0, 0 };
                uint64_t due = vm_record_timer_due(d->def, rec, s);
                if (due && !(in->flags & RT_INST_F_COMPLETED) && due < min_due)
                    min_due = due;
            }
        }
    }
    uint64_t cur_tick = w->cur;
    memset(w, 0, sizeof(*w));
    w->cur = min_due == UINT64_MAX ? cur_tick : min_due >> RT_WHEEL_TICK_SHIFT;
    /* pass 2: link every armed slot relative to the earliest */
    for (uint32_t pi = 0; pi < c->part_count; pi++) {
        const struct rt_part *p = c->parts[pi].p;
        uint64_t cur = 0;
        struct wf_key k;
        uint32_t ref;
        while (wf_table_next(rt_part_table(p), &cur, &k, &ref)) {
            struct rt_inst *in = rt_part_inst(p, ref);
            if (in->flags & RT_INST_F_COMPLETED)
                continue;
            const struct rt_def *d = rt_registry_def(c->reg, in->def_id);
            const uint8_t *rec = rt_inst_record(in, d->timer_slots);
            for (unsigned s = 0; s < d->timer_slots; s++) {
                uint64_t due = vm_record_timer_due(d->def, rec, s);
                if (due)
                    rt_wheel_link(c, rt_tref(pi, ref, s), &rt_inst_nodes(in)[s], due);
            }
        }
    }
}
