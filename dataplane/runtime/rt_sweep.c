/*
 * rt_sweep.c — reclaiming the memory of expired tombstones: instance slot free lists, key
 * store free lists, and the deterministic sweep (rt_sweep_tombstones, see rt.h).
 *
 * Instance slots. A chunk belongs to one def for good and holds instances of its stride,
 * so a freed slot can only hold another instance of the same def: each def keeps a LIFO
 * list of its free slots (head and count in its struct rt_arena, the link in the free
 * slot's header, rt_internal.h). rt_arena_peek takes the head before growing the arena.
 * Chunks are never given back to other defs (a def whose churn stops keeps its chunks;
 * giving a chunk back would need per-chunk live counts and unlinking its free slots).
 *
 * Key store. Entries are `u8 id_len, id` at byte offsets referenced by instances. Chosen:
 * free lists by exact entry size (256 heads, sizes 5..256; entries are padded to at least
 * 5 bytes so a free entry can hold its u32 link). Allocation order: a free entry of the
 * exact size, else the never-used tail, else a larger free entry split in two (taken only
 * when the rest is itself a valid entry of >= 5 bytes). All O(1) except the split search
 * (at most 256 heads, only once the tail is used up). Under steady churn with a stable id
 * length distribution every new id finds a free entry of its size, so the store levels off
 * at the peak live bytes per size; a shift of lengths is absorbed by splitting. Not done:
 * merging neighbouring free entries (fragments of mixed sizes can refuse an id although
 * enough bytes are free: RT_FULL, counted in full_keystore).
 * Rejected: compaction. Moving entries means rewriting each moved instance's key_ref,
 * which needs a back reference per entry (4 more bytes per id) and an O(store) pass that
 * is either unbounded in one call or a multi-call state machine in the snapshot state.
 *
 * Sweep. The cursor is a table slot position (bucket * 3 + slot) kept in struct rt_part,
 * so it is part of the digest and of snapshots. wf_table_delete fills a hole with the
 * bucket's last key: after removing at position c the sweep looks at c again. Keys moved
 * by an insert's cuckoo eviction between calls may be skipped once; the next pass finds
 * them. Everything it reads and writes is partition state (the core's wheel, queue and
 * counters are only kept consistent), so live and replay calls give the same partition.
 */
#include <errno.h>
#include <limits.h>

#include "rt_internal.h"

/* ---- instance slots ---- */

bool rt_arena_peek(const struct rt_part *p, const struct rt_def *d, uint32_t *ref, bool *new_chunk)
{
    const struct rt_arena *a = &p->arena[d->def_id];
    *new_chunk = false;
    if (a->free_head != RT_NONE) {
        assert(a->free_count > 0 && a->stride == d->stride);
        *ref = a->free_head;
        return true;
    }
    if (a->chunk != RT_NONE && a->used < RT_CHUNK_BYTES / d->stride) {
        *ref = a->chunk << RT_CHUNK_SLOT_BITS | a->used;
        return true;
    }
    if (p->chunks_used == p->chunk_count)
        return false;
    *ref = p->chunks_used << RT_CHUNK_SLOT_BITS;
    *new_chunk = true;
    return true;
}

void rt_arena_commit(struct rt_part *p, const struct rt_def *d, uint32_t ref, bool new_chunk)
{
    struct rt_arena *a = &p->arena[d->def_id];
    if (a->free_head != RT_NONE) {
        assert(!new_chunk && ref == a->free_head);
        struct rt_inst *in = rt_part_inst(p, ref);
        assert(in->flags == RT_INST_F_FREE && in->def_id == d->def_id);
        a->free_head = in->task_head;
        a->free_count--;
        p->slots_free--;
        p->stats.slots_reused++;
        return; /* the caller initialises the whole instance */
    }
    if (new_chunk) {
        uint32_t ch = p->chunks_used++;
        assert(ref == ch << RT_CHUNK_SLOT_BITS);
        rt_part_dir(p)[ch] = d->def_id;
        a->chunk = ch;
        a->used = 0;
        a->stride = (uint16_t)d->stride;
        a->timer_slots = d->timer_slots;
        a->record_size = d->record_size;
    }
    assert(a->stride == d->stride && ref == (a->chunk << RT_CHUNK_SLOT_BITS | a->used));
    a->used++;
}

void rt_slot_free(struct rt_core *c, uint32_t pidx, struct rt_part *p, uint32_t ref)
{
    struct rt_inst *in = rt_part_inst(p, ref);
    uint16_t def = in->def_id;
    struct rt_arena *a = &p->arena[def];
    assert(def == rt_part_dir(p)[ref >> RT_CHUNK_SLOT_BITS] && !(in->flags & RT_INST_F_FREE));
    assert(in->task_head == RT_NONE); /* tasks dropped by the caller */
    struct rt_tnode *nodes = rt_inst_nodes(in);
    for (unsigned s = 0; s < a->timer_slots; s++)
        if (rt_tnode_linked(&nodes[s]))
            rt_wheel_unlink(c, &nodes[s]); /* a completed instance has none: defensive */
    rt_tasks_forget_instance(c, pidx, ref);
    memset(in, 0, a->stride);
    in->flags = RT_INST_F_FREE;
    in->def_id = def;
    in->key_ref = RT_NONE;
    in->task_head = a->free_head;
    a->free_head = ref;
    a->free_count++;
    p->slots_free++;
}

/* ---- key store ---- */

static uint32_t rt_key_free_next(const uint8_t *e)
{
    uint32_t next;
    memcpy(&next, e + 1, sizeof(next));
    return next;
}

/* Make the `size` bytes at off a free entry at the head of its list. */
static void rt_key_push(struct rt_part *p, uint32_t off, uint32_t size)
{
    assert(size >= RT_KEY_ENTRY_MIN && size <= RT_KEY_ENTRY_BYTES_MAX);
    assert((uint64_t)off + size <= p->keys_used);
    uint8_t *e = rt_part_keys(p) + off;
    memset(e, 0, size);
    e[0] = (uint8_t)(size - 1u);
    memcpy(e + 1, &p->key_free[size - 1u], sizeof(uint32_t));
    p->key_free[size - 1u] = off;
    p->keys_free_bytes += size;
}

bool rt_key_peek(const struct rt_part *p, unsigned id_len, uint32_t *off)
{
    uint32_t need = rt_key_entry_bytes(id_len);
    assert(need <= RT_KEY_ENTRY_BYTES_MAX);
    if (p->key_free[need - 1u] != RT_NONE) {
        *off = p->key_free[need - 1u];
        return true;
    }
    if (p->keys_bytes - p->keys_used >= need) {
        *off = (uint32_t)p->keys_used;
        return true;
    }
    for (uint32_t size = need + RT_KEY_ENTRY_MIN; size <= RT_KEY_ENTRY_BYTES_MAX; size++)
        if (p->key_free[size - 1u] != RT_NONE) {
            *off = p->key_free[size - 1u];
            return true;
        }
    return false;
}

void rt_key_commit(struct rt_part *p, uint32_t off, const char *id, unsigned id_len)
{
    uint32_t need = rt_key_entry_bytes(id_len);
    uint8_t *e = rt_part_keys(p) + off;
    if (off == p->keys_used) {
        assert(p->keys_bytes - p->keys_used >= need);
        p->keys_used += need;
    } else {
        uint32_t size = e[0] + 1u; /* a free entry: the head of its list */
        assert(p->key_free[size - 1u] == off && p->keys_free_bytes >= size);
        assert(size == need || size >= need + RT_KEY_ENTRY_MIN);
        p->key_free[size - 1u] = rt_key_free_next(e);
        p->keys_free_bytes -= size;
        p->stats.keys_reused++;
        if (size != need)
            rt_key_push(p, off + need, size - need); /* the rest stays free */
    }
    memset(e, 0, need);
    e[0] = (uint8_t)id_len;
    memcpy(e + 1, id, id_len);
}

void rt_key_free(struct rt_part *p, uint32_t key_ref)
{
    assert((uint64_t)key_ref < p->keys_used);
    rt_key_push(p, key_ref, rt_key_entry_bytes(rt_part_keys(p)[key_ref]));
}

/* ---- sweep ---- */

/* Remove the expired tombstone `ref` of key k (at table slot position cursor). */
static void rt_tombstone_remove(struct rt_core *c, uint32_t pidx, struct rt_part *p,
                                struct wf_key k, uint32_t ref)
{
    struct rt_inst *in = rt_part_inst(p, ref);
    uint16_t def = in->def_id;
    uint32_t key_ref = in->key_ref;
    assert(in->flags & RT_INST_F_COMPLETED);
    rt_inst_drop_tasks(c, pidx, p, in);
    int rc = wf_table_delete(rt_part_table(p), k);
    assert(rc == 0);
    (void)rc;
    rt_slot_free(c, pidx, p, ref);
    rt_key_free(p, key_ref);
    p->stats.tombstones_expired++;
    assert(c->completed[def] > 0);
    c->completed[def]--;
}

int rt_delete(struct rt_core *c, struct rt_part *p, struct wf_key key)
{
    assert(p->magic == RT_PART_MAGIC);
    uint32_t ref = rt_inst_find(p, key);
    if (ref == RT_NONE)
        return RT_NOT_FOUND;
    uint32_t pidx = rt_core_part_index(c, p);
    struct rt_inst *in = rt_part_inst(p, ref);
    if (in->flags & RT_INST_F_COMPLETED) {
        rt_tombstone_remove(c, pidx, p, key, ref);
    } else {
        uint16_t def = in->def_id;
        const struct rt_def *d = rt_registry_def(c->reg, def);
        if (d) {
            uint32_t sk = rt_rec_state_key(d, rt_inst_record(in, d->timer_slots));
            if (sk != UINT32_MAX && c->state_counts[sk] > 0)
                c->state_counts[sk]--;
        }
        uint32_t key_ref = in->key_ref;
        rt_inst_drop_tasks(c, pidx, p, in);
        int rc = wf_table_delete(rt_part_table(p), key);
        assert(rc == 0);
        (void)rc;
        rt_slot_free(c, pidx, p, ref); /* unlinks its timers */
        rt_key_free(p, key_ref);
        if (c->running[def] > 0)
            c->running[def]--;
    }
    return RT_APPLIED; /* the daemon counts deletions (partition stats are snapshot state) */
}

int rt_sweep_tombstones(struct rt_core *c, struct rt_part *p, uint64_t now_ns, unsigned budget)
{
    assert(p->magic == RT_PART_MAGIC);
    uint32_t pidx = rt_core_part_index(c, p);
    const struct wf_bucket *bk = rt_part_buckets(p);
    uint64_t end = (uint64_t)p->bucket_count * WF_TABLE_BUCKET_SLOTS;
    assert(p->sweep_cursor < end);
    if (budget > INT_MAX)
        budget = INT_MAX;
    int removed = 0;
    for (unsigned i = 0; i < budget; i++) {
        uint64_t pos = p->sweep_cursor;
        const struct wf_bucket *b = &bk[pos / WF_TABLE_BUCKET_SLOTS];
        unsigned s = (unsigned)(pos % WF_TABLE_BUCKET_SLOTS);
        if (s < b->used) {
            uint32_t ref = b->rec[s];
            const struct rt_inst *in = rt_part_inst(p, ref);
            assert(!(in->flags & RT_INST_F_FREE));
            if ((in->flags & RT_INST_F_COMPLETED) && rt_tombstone_expired(c, in, now_ns)) {
                rt_tombstone_remove(c, pidx, p, b->key[s], ref);
                removed++;
                continue; /* pos now holds the bucket's former last key (or nothing) */
            }
        }
        p->sweep_cursor = pos + 1 == end ? 0 : pos + 1;
    }
    p->stats.sweep_slots += budget;
    return removed;
}
