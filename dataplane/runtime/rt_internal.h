/*
 * rt_internal.h — layouts shared by the runtime's .c files (not an interface).
 *
 * Instance (in its def's arena chunk, `stride` bytes, 16-byte aligned):
 *   struct rt_inst             64 B  dedupe, counters, key store ref, task list, flags,
 *                                    history link
 *   struct rt_tnode[slots]     16 B  each: the timer wheel links of timer slot i
 *   VM record                  flow_def_record_size bytes (8-byte aligned)
 *
 * Timer links are u64 references: 0 = none; bit 63 set = a wheel list head (index in the
 * low bits); otherwise bit 62 set and (core-local part << 37 | inst ref << 5 | slot).
 *
 * Free instance slot (an expired tombstone swept, or the old record of a restart on another
 * version): the whole stride is zero except flags = RT_INST_F_FREE, def_id (the chunk's def)
 * and task_head = the next free slot of the same def (RT_NONE: last), key_ref = RT_NONE.
 * Each def's free slots form a LIFO list headed in its struct rt_arena; a new instance of
 * that def takes the head before growing the arena. Refs only, no pointers: the region is
 * copied byte for byte into snapshots.
 *
 * Key store entries: live `u8 id_len, id bytes, zero padding` of rt_key_entry_bytes(id_len)
 * = max(1 + id_len, RT_KEY_ENTRY_MIN) bytes; free `u8 size - 1, u32 next free offset of the
 * same size (RT_NONE: last; unaligned, memcpy), zeros` of `size` bytes. The minimum size
 * makes every entry able to hold its free-list link. See rt_sweep.c for the policy.
 */
#ifndef RT_INTERNAL_H
#define RT_INTERNAL_H

#include <assert.h>
#include <string.h>

#include "flow_vm.h" /* the VM's record header, signal plans and register file (fast path) */
#include "rt.h"

#define RT_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define RT_INST_F_DEDUPE    0x1u /* dd_hwm holds an event id */
#define RT_INST_F_COMPLETED 0x2u /* tombstone */
#define RT_INST_F_FREE      0x4u /* a free slot (not in the table): see the top comment */

struct rt_inst {
    uint64_t dd_hwm;        /* highest event id applied */
    uint64_t dd_bits;       /* bit i: id dd_hwm - 1 - i applied */
    uint64_t last_event_id; /* of the last signal applied (with an id) */
    uint64_t signals;       /* signals applied */
    uint32_t key_ref;       /* offset of the id in the key store */
    uint32_t task_head;     /* first in-flight task of this instance (RT_NONE) */
    uint32_t completed_s;   /* completion time >> 30 (~1.07 s units); tombstones */
    uint16_t def_id;
    uint16_t flags;        /* RT_INST_F_* */
    struct rt_hlink hlink; /* where the newest logged input of this instance is (daemon's) */
};
_Static_assert(sizeof(struct rt_inst) == RT_INST_HDR_BYTES, "instance header");

struct rt_tnode {
    uint64_t next, prev;
};
_Static_assert(sizeof(struct rt_tnode) == RT_TIMER_NODE_BYTES, "timer node");

struct rt_arena {
    uint32_t chunk;  /* chunk being filled, RT_NONE before the first */
    uint16_t used;   /* instances in that chunk */
    uint16_t stride; /* bytes per instance (0 before the first chunk) */
    uint16_t timer_slots;
    uint16_t reserved;
    uint32_t record_size;
    uint32_t free_head;  /* first free slot of this def (RT_NONE: none) */
    uint32_t free_count; /* free slots of this def */
    uint64_t reserved2;
};
_Static_assert(sizeof(struct rt_arena) == 32, "arena descriptor");

#define RT_KEY_ENTRY_MIN       5u   /* u8 + u32 free-list link */
#define RT_KEY_FREE_LISTS      256u /* free entries by size - 1 (sizes 5..256) */
#define RT_KEY_ENTRY_BYTES_MAX 256u

/** Bytes of the key store entry of an id of id_len bytes. */
static inline uint32_t rt_key_entry_bytes(unsigned id_len)
{
    return 1u + id_len < RT_KEY_ENTRY_MIN ? RT_KEY_ENTRY_MIN : 1u + id_len;
}

struct rt_task_slot {
    uint64_t serial; /* partition task number; 0 = free */
    uint64_t cause;
    uint32_t inst_ref;
    uint32_t next_inst;  /* next task of the same instance */
    uint32_t next, prev; /* in-flight list in creation order; free list: next */
    uint32_t seq;
    uint16_t act;
    uint16_t args_len;
    uint8_t nargs;
    uint8_t reserved[3];
    uint32_t deadline_s; /* schedule-to-close: realtime seconds (rounded up); 0 = none.
                          * Zero in partitions written before it existed: no deadline */
    uint8_t args[RT_TASK_ARGS_BYTES];
};
_Static_assert(sizeof(struct rt_task_slot) == RT_TASK_SLOT_BYTES, "task slot");

struct rt_part {
    uint32_t magic;
    uint32_t part_id;
    uint32_t core_index; /* volatile: index in the owning core (not in the digest) */
    uint32_t bucket_count;
    uint32_t chunk_count, chunks_used;
    uint32_t tasks_max;
    uint32_t task_free, task_free_count; /* free list */
    uint32_t task_head, task_tail;       /* in-flight tasks, oldest first */
    uint64_t task_serial;
    uint64_t keys_bytes, keys_used; /* key store size, bytes handed out from its front */
    uint64_t keys_free_bytes;       /* bytes in free entries (below keys_used) */
    uint64_t sweep_cursor;          /* next table slot position rt_sweep_tombstones examines */
    uint64_t slots_free;            /* free instance slots, all defs */
    uint32_t key_free[RT_KEY_FREE_LISTS]; /* free entries of size i + 1 (RT_NONE: none) */
    uint64_t buckets_off, table_off, keys_off, tasks_off, dir_off, chunks_off, mem_bytes;
    struct rt_part_config cfg;
    struct rt_part_stats stats;
    struct rt_arena arena[RT_DEFS_MAX];
} __attribute__((aligned(64)));

struct rt_core_part {
    struct rt_part *p;
    uint32_t unqueued; /* first in-flight task not yet in the outbound queue, RT_NONE */
    uint32_t reserved;
};

#define RT_QENT_CANCEL 0x80000000u /* part_idx flag: a cancel notice */
#define RT_QENT_DEAD   UINT32_MAX  /* part_idx of a cancel notice whose instance was freed */

struct rt_qent {
    uint32_t part_idx; /* core-local partition index | RT_QENT_CANCEL */
    uint32_t ref;      /* run: task slot; cancel: instance ref */
    uint64_t serial;   /* run: task serial; cancel: act << 32 | seq */
    uint64_t cause;    /* cancel: cause of the apply that cancelled */
};

#define RT_TREF_HEAD   (1ull << 63)
#define RT_TREF_NODE   (1ull << 62)
#define RT_WHEEL_READY (RT_WHEEL_LEVELS * RT_WHEEL_BUCKETS) /* head index of the ready list */

struct rt_wheel {
    uint64_t cur;   /* every tick < cur has been processed */
    uint64_t armed; /* nodes linked (buckets + ready) */
    uint64_t ready_tail;
    uint64_t occ[RT_WHEEL_LEVELS][RT_WHEEL_BUCKETS / 64];
    uint64_t head[RT_WHEEL_LEVELS * RT_WHEEL_BUCKETS + 1]; /* + the ready list */
};

struct rt_core {
    const struct rt_registry *reg;
    struct rt_core_config cfg;
    uint32_t part_count;
    uint32_t unqueued_parts; /* partitions with unqueued != RT_NONE */
    uint32_t refill_cursor;
    uint32_t deadline_cursor; /* next partition rt_tasks_expired looks at */
    uint32_t q_mask;
    uint32_t q_cancels; /* cancel notices in the ring (rt_tasks_forget_instance) */
    uint32_t reserved;
    uint64_t q_head, q_tail; /* outbound ring: entries q_head..q_tail-1 */
    struct rt_core_stats stats;
    uint64_t running[RT_DEFS_MAX], completed[RT_DEFS_MAX];
    uint32_t *state_counts; /* [RT_DEFS_MAX][FLOW_STATES_MAX] */
    struct rt_core_part *parts;
    struct rt_qent *queue;
    struct vm_cmd *cmds; /* RT_CMDS_MAX */
    struct rt_wheel wheel;
};

/* ---- partition helpers ---- */

static inline const struct wf_bucket *rt_part_buckets(const struct rt_part *p)
{
    return (const struct wf_bucket *)((const char *)p + p->buckets_off);
}

static inline struct wf_table *rt_part_table(const struct rt_part *p)
{
    return (struct wf_table *)((char *)p + p->table_off);
}

static inline uint16_t *rt_part_dir(const struct rt_part *p)
{
    return (uint16_t *)((char *)p + p->dir_off);
}

static inline uint8_t *rt_part_keys(const struct rt_part *p)
{
    return (uint8_t *)p + p->keys_off;
}

static inline struct rt_task_slot *rt_part_tasks(const struct rt_part *p)
{
    return (struct rt_task_slot *)((char *)p + p->tasks_off);
}

static inline struct rt_inst *rt_part_inst(const struct rt_part *p, uint32_t ref)
{
    uint32_t chunk = ref >> RT_CHUNK_SLOT_BITS;
    assert(chunk < p->chunks_used);
    uint16_t def = rt_part_dir(p)[chunk];
    assert(def < RT_DEFS_MAX);
    size_t off = p->chunks_off + (size_t)chunk * RT_CHUNK_BYTES +
                 (size_t)(ref & ((1u << RT_CHUNK_SLOT_BITS) - 1)) * p->arena[def].stride;
    return (struct rt_inst *)((char *)p + off);
}

static inline struct rt_tnode *rt_inst_nodes(struct rt_inst *in)
{
    return (struct rt_tnode *)(in + 1);
}

static inline uint8_t *rt_inst_record(struct rt_inst *in, unsigned timer_slots)
{
    return (uint8_t *)(in + 1) + (size_t)timer_slots * RT_TIMER_NODE_BYTES;
}

/** The id of an instance (key store view). */
static inline const char *rt_inst_id(const struct rt_part *p, const struct rt_inst *in,
                                     uint8_t *len)
{
    const uint8_t *e = rt_part_keys(p) + in->key_ref;
    *len = e[0];
    return (const char *)e + 1;
}

/* ---- signal fields (rt.c's fast path; tests/runtime/test_rt_fast.c checks it against
 * the general decoder) ---- */

/* Big-endian loads of the CBOR arguments (in bounds: checked by the caller). */
static inline uint64_t rt_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    if (n == 1) {
        v = p[0];
    } else if (n == 2) {
        uint16_t x;
        memcpy(&x, p, 2);
        v = __builtin_bswap16(x);
    } else if (n == 4) {
        uint32_t x;
        memcpy(&x, p, 4);
        v = __builtin_bswap32(x);
    } else {
        memcpy(&v, p, 8);
        v = __builtin_bswap64(v);
    }
    return v;
}

/* A declared field that is null or missing reads as zero / "" (vm.c load_field_slow). */
static inline void rt_reg_zero(uint8_t type, union vm_reg *r)
{
    r->t.p = "";
    r->t.n = 0;
    if (type != FLOW_T_TEXT)
        r->u = 0;
}

/*
 * rt_fields_fast: the fields of signal plan sp from the CBOR array b[0..len) straight into the VM's
 * registers, the way sf_fields_decode + rt_decode_fields + the VM's field loading would
 * leave them. Handles what senders write: an array head of up to 16 items, integers with
 * any head, float64, booleans, null, text with a head of up to 8 bytes of length. Anything
 * else, anything malformed or of the wrong type, and a text longer than its field's
 * text(N), returns 1 without deciding: the general path then accepts or refuses it.
 * Returns 0 when regs hold the fields.
 */
static inline __attribute__((always_inline)) int
rt_fields_fast(const uint8_t *b, size_t len, const struct fb_sig_plan *sp, union vm_reg *regs)
{
    unsigned nf = sp->nfields, count = 0;
    size_t pos = 0;
    if (len != 0) {
        if (b[0] < 0x80 || b[0] > 0x80 + FLOW_FIELDS_MAX)
            return 1;
        count = b[0] - 0x80u;
        pos = 1;
    }
    for (unsigned i = 0; i < count; i++) {
        if (pos >= len)
            return 1;
        unsigned ib = b[pos++], ai = ib & 31u, major = ib >> 5;
        size_t avail = len - pos;
        uint8_t want = i < nf ? sp->type[i] : 0; /* 0: an extra field, checked only */
        union vm_reg *r = &regs[i];
        if (major <= 1 || major == 3) {
            uint64_t arg = ai;
            if (ai >= 24) {
                unsigned n = ai == 24 ? 1 : ai == 25 ? 2 : ai == 26 ? 4 : ai == 27 ? 8 : 0;
                if (n == 0 || avail < n)
                    return 1;
                arg = rt_be(b + pos, n);
                pos += n;
            }
            if (major == 3) {
                if (arg > len - pos || arg > UINT16_MAX)
                    return 1;
                if (arg != 0 && !sf_text_valid(b + pos, (size_t)arg))
                    return 1; /* the general path refuses it */
                if (want == FLOW_T_TEXT) {
                    if (sp->text_cap[i] != 0 && arg > sp->text_cap[i])
                        return 1; /* too long: the general path refuses it */
                    r->t.p = (const char *)b + pos;
                    r->t.n = (uint32_t)arg;
                } else if (want != 0) {
                    return 1;
                }
                pos += arg;
                continue;
            }
            if (arg > (uint64_t)INT64_MAX)
                return 1;
            int64_t v = major == 0 ? (int64_t)arg : -1 - (int64_t)arg;
            if (want == FLOW_T_INT)
                r->i = v;
            else if (want == FLOW_T_FLOAT)
                r->f = (double)v;
            else if (want != 0)
                return 1;
            continue;
        }
        if (ib == 0xfb) { /* float64 */
            if (avail < 8)
                return 1;
            if (want == FLOW_T_FLOAT)
                r->u = rt_be(b + pos, 8);
            else if (want != 0)
                return 1;
            pos += 8;
        } else if (ib == 0xf4 || ib == 0xf5) {
            if (want == FLOW_T_BOOL)
                r->i = ib == 0xf5;
            else if (want != 0)
                return 1;
        } else if (ib == 0xf6) {
            if (want != 0)
                rt_reg_zero(want, r);
        } else {
            return 1; /* half/single floats, other simple values, byte strings, nesting */
        }
    }
    if (pos != len)
        return 1;
    for (unsigned i = count; i < nf; i++)
        rt_reg_zero(sp->type[i], &regs[i]);
    return 0;
}

/* ---- wheel (rt_wheel.c) ---- */

static inline uint64_t rt_tref(uint32_t part_idx, uint32_t ref, unsigned slot)
{
    return RT_TREF_NODE | (uint64_t)part_idx << 37 | (uint64_t)ref << 5 | slot;
}

void rt_wheel_init(struct rt_wheel *w, uint64_t start_ns);
/** Link the node of (part_idx, ref, slot) for due_ns. The node must be unlinked. */
void rt_wheel_link(struct rt_core *c, uint64_t tref, struct rt_tnode *n, uint64_t due_ns);
/** Unlink a linked node. */
void rt_wheel_unlink(struct rt_core *c, struct rt_tnode *n);

static inline bool rt_tnode_linked(const struct rt_tnode *n)
{
    return n->prev != 0;
}

/* ---- tasks (rt_tasks.c) ---- */

/** Store a task for VM command m of instance `ref` and queue it. Returns 0 (the caller
 *  checked that a slot is free). */
void rt_task_create(struct rt_core *c, uint32_t part_idx, struct rt_part *p, uint32_t ref,
                    struct rt_inst *in, const struct vm_cmd *m, uint64_t cause, uint64_t now_ns);
/** Free the in-flight task of instance `in` for (act, seq), if there is one. */
void rt_task_finish(struct rt_core *c, uint32_t part_idx, struct rt_part *p, struct rt_inst *in,
                    unsigned act, uint32_t seq);
/** Queue a cancel notice (best effort). */
void rt_task_cancel_notice(struct rt_core *c, uint32_t part_idx, uint32_t ref, unsigned act,
                           uint32_t seq, uint64_t cause);
/** Free every in-flight task of in (its incarnation ended for good). */
void rt_inst_drop_tasks(struct rt_core *c, uint32_t pidx, struct rt_part *p, struct rt_inst *in);
/** Mark the queued cancel notices of instance (pidx, ref) dead: the slot is being freed and
 *  may hold another instance by the time they are peeked. O(queue) when any cancel notice
 *  is queued, else O(1). */
void rt_tasks_forget_instance(struct rt_core *c, uint32_t pidx, uint32_t ref);

/* ---- instance slots and key store (rt_sweep.c) ---- */

/** Where the next instance of d goes: its def's first free slot, else the next slot of the
 *  chunk being filled, else a new chunk (*new_chunk). Changes nothing. Returns false when
 *  no chunk is left. */
bool rt_arena_peek(const struct rt_part *p, const struct rt_def *d, uint32_t *ref, bool *new_chunk);
/** Take the slot rt_arena_peek(p, d, ...) just returned (nothing changed in between). */
void rt_arena_commit(struct rt_part *p, const struct rt_def *d, uint32_t ref, bool new_chunk);
/** Give instance `ref` back to its def's free list: its tasks must be dropped already;
 *  linked timer nodes are unlinked from c's wheel, queued cancel notices forgotten. The
 *  instance must not be in the table (any more). */
void rt_slot_free(struct rt_core *c, uint32_t pidx, struct rt_part *p, uint32_t ref);

/** Where an entry for an id of id_len bytes would go (*off) without taking it. Returns
 *  false when the key store has no room. */
bool rt_key_peek(const struct rt_part *p, unsigned id_len, uint32_t *off);
/** Take the entry rt_key_peek(p, id_len, off) returned and store the id in it. */
void rt_key_commit(struct rt_part *p, uint32_t off, const char *id, unsigned id_len);
/** Give the entry at key_ref back to the free list of its size. */
void rt_key_free(struct rt_part *p, uint32_t key_ref);

/** Has the tombstone `in` (completed) outlived the retention at now_ns? A signal at now_ns
 *  restarts exactly those; rt_sweep_tombstones removes them. */
static inline bool rt_tombstone_expired(const struct rt_core *c, const struct rt_inst *in,
                                        uint64_t now_ns)
{
    uint64_t done_ns = (uint64_t)in->completed_s << 30;
    uint64_t keep = c->cfg.tombstone_retention_ns;
    return keep <= UINT64_MAX - done_ns && now_ns >= done_ns + keep;
}

/** Core-local index of p (asserted attached). */
static inline uint32_t rt_core_part_index(const struct rt_core *c, const struct rt_part *p)
{
    uint32_t idx = p->core_index;
    assert(idx < c->part_count && c->parts[idx].p == p);
    (void)c;
    return idx;
}

/* ---- records (the VM's layout, flow_vm.h / vm.c: read without a call) ---- */

static inline const struct vm_rec_header *rt_rec_header(const uint8_t *rec)
{
    return (const struct vm_rec_header *)(const void *)rec;
}

/** Due time of timer slot (< d->timer_slots) in rec, 0 when disarmed (vm_record_timer_due). */
static inline uint64_t rt_rec_due(const struct rt_def *d, const uint8_t *rec, unsigned slot)
{
    assert(slot < d->timer_slots);
    uint64_t due;
    memcpy(&due, rec + d->timers_off + 8u * slot, 8);
    return due;
}

/** Index into the core's state counts of a record, or UINT32_MAX when it is not counted
 *  (not started yet, or completed). */
static inline uint32_t rt_rec_state_key(const struct rt_def *d, const uint8_t *rec)
{
    const struct vm_rec_header *h = rt_rec_header(rec);
    if ((h->flags & (VM_REC_STARTED | VM_REC_COMPLETED)) != VM_REC_STARTED)
        return UINT32_MAX;
    assert(h->state < FLOW_STATES_MAX);
    return (uint32_t)d->def_id * FLOW_STATES_MAX + h->state;
}

#endif /* RT_INTERNAL_H */
