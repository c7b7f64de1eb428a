/* rt_part.c — partition regions, the core object and counters (layout in rt.h). */
#include <errno.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "rt_internal.h"

#define RT_ALIGN 64u

static uint64_t rt_align(uint64_t v)
{
    return (v + RT_ALIGN - 1) & ~(uint64_t)(RT_ALIGN - 1);
}

static const char *const rt_status_names[RT_STATUS_COUNT] = {
    "applied",   "created", "duplicate", "stale",   "unknown_type", "unknown_signal", "bad_fields",
    "completed", "full",    "not_found", "ignored", "busy",         "text_too_long",
};

const char *rt_status_name(int st)
{
    if (st < 0 || st >= RT_STATUS_COUNT)
        return "invalid";
    return rt_status_names[st];
}

enum sf_ack_status rt_status_ack(int st)
{
    switch (st) {
    case RT_APPLIED:
    case RT_CREATED:
        return SF_ACK_APPLIED;
    case RT_DUPLICATE:
    case RT_COMPLETED:
    case RT_IGNORED:
        return SF_ACK_DUPLICATE;
    case RT_STALE:
        return SF_ACK_STALE;
    case RT_BAD_FIELDS:
    case RT_TEXT_TOO_LONG:
        return SF_ACK_MALFORMED;
    case RT_FULL:
        return SF_ACK_FULL;
    case RT_BUSY:
        return SF_ACK_BUSY;
    default:
        return SF_ACK_UNKNOWN;
    }
}

/* ---- partition ------------------------------------------------------------------------- */

void rt_part_config_for(struct rt_part_config *cfg, uint32_t instances, uint32_t stride_max,
                        uint32_t defs_expected, uint32_t id_len_avg, uint32_t tasks_max)
{
    if (instances == 0)
        instances = 1;
    if (stride_max < 64)
        stride_max = 64;
    uint64_t per_chunk = RT_CHUNK_BYTES / stride_max;
    if (per_chunk == 0)
        per_chunk = 1;
    uint64_t chunks = (instances + per_chunk - 1) / per_chunk + defs_expected + 1;
    cfg->instances_max = instances;
    cfg->chunk_count = chunks > RT_CHUNKS_MAX ? RT_CHUNKS_MAX : (uint32_t)chunks;
    cfg->tasks_max = tasks_max ? tasks_max : 1;
    cfg->keystore_bytes = (uint64_t)instances * rt_key_entry_bytes(id_len_avg) + 64;
    if (cfg->keystore_bytes > UINT32_MAX)
        cfg->keystore_bytes = UINT32_MAX;
}

static bool rt_part_config_ok(const struct rt_part_config *cfg)
{
    return cfg->instances_max > 0 && cfg->instances_max <= WF_TABLE_CAPACITY_MAX &&
           cfg->chunk_count > 0 && cfg->chunk_count <= RT_CHUNKS_MAX && cfg->tasks_max > 0 &&
           cfg->tasks_max < RT_NONE && cfg->keystore_bytes > 0 && cfg->keystore_bytes <= UINT32_MAX;
}

/* Offsets of the region's parts; returns the total size. */
static uint64_t rt_part_layout(const struct rt_part_config *cfg, struct rt_part *p)
{
    uint64_t off = rt_align(sizeof(struct rt_part));
    p->table_off = off;
    off += rt_align(wf_table_mem_size(cfg->instances_max));
    p->keys_off = off;
    off += rt_align(cfg->keystore_bytes);
    p->tasks_off = off;
    off += rt_align((uint64_t)cfg->tasks_max * sizeof(struct rt_task_slot));
    p->dir_off = off;
    off += rt_align((uint64_t)cfg->chunk_count * sizeof(uint16_t));
    p->chunks_off = off;
    off += (uint64_t)cfg->chunk_count * RT_CHUNK_BYTES;
    return off;
}

size_t rt_part_mem_size(const struct rt_part_config *cfg)
{
    if (!rt_part_config_ok(cfg))
        return 0;
    struct rt_part tmp;
    return rt_part_layout(cfg, &tmp);
}

struct rt_part *rt_part_init(void *mem, size_t mem_bytes, const struct rt_part_config *cfg,
                             uint32_t part_id)
{
    size_t need = rt_part_mem_size(cfg);
    if (mem == NULL || need == 0 || mem_bytes < need || (uintptr_t)mem % RT_ALIGN != 0)
        return NULL;
    struct rt_part *p = mem;
    memset(p, 0, sizeof(*p));
    rt_part_layout(cfg, p);
    p->part_id = part_id;
    p->core_index = RT_NONE;
    p->cfg = *cfg;
    p->mem_bytes = mem_bytes;
    p->chunk_count = cfg->chunk_count;
    p->tasks_max = cfg->tasks_max;
    p->keys_bytes = cfg->keystore_bytes;
    int rc =
        wf_table_init(rt_part_table(p), wf_table_mem_size(cfg->instances_max), cfg->instances_max);
    assert(rc == 0);
    (void)rc;
    p->bucket_count = rt_part_table(p)->bucket_count;
    p->buckets_off = p->table_off + sizeof(struct wf_table);
    memset(rt_part_keys(p), 0, cfg->keystore_bytes);
    memset(rt_part_dir(p), 0xff, (size_t)cfg->chunk_count * sizeof(uint16_t));
    /* the task pool: every slot free, linked in index order */
    struct rt_task_slot *ts = rt_part_tasks(p);
    memset(ts, 0, (size_t)cfg->tasks_max * sizeof(*ts));
    for (uint32_t i = 0; i < cfg->tasks_max; i++)
        ts[i].next = i + 1 < cfg->tasks_max ? i + 1 : RT_NONE;
    p->task_free = 0;
    p->task_free_count = cfg->tasks_max;
    p->task_head = p->task_tail = RT_NONE;
    for (unsigned i = 0; i < RT_DEFS_MAX; i++) {
        p->arena[i].chunk = RT_NONE;
        p->arena[i].free_head = RT_NONE;
    }
    for (unsigned i = 0; i < RT_KEY_FREE_LISTS; i++)
        p->key_free[i] = RT_NONE;
    p->magic = RT_PART_MAGIC;
    return p;
}

size_t rt_part_used_bytes(const struct rt_part *p)
{
    return (size_t)p->chunks_off + (size_t)p->chunks_used * RT_CHUNK_BYTES;
}

int rt_part_image_check(const void *bytes, size_t len, size_t region_bytes)
{
    struct rt_part h;
    if (len < sizeof(h) || len > region_bytes)
        return -EBADMSG;
    memcpy(&h, bytes, sizeof(h));
    if (h.magic != RT_PART_MAGIC || rt_part_mem_size(&h.cfg) != region_bytes ||
        h.chunks_used > h.chunk_count ||
        h.chunks_off + (uint64_t)h.chunks_used * RT_CHUNK_BYTES != len)
        return -EBADMSG;
    return 0;
}

uint32_t rt_part_id(const struct rt_part *p)
{
    return p->part_id;
}

uint32_t rt_part_count(const struct rt_part *p)
{
    return wf_table_count(rt_part_table(p));
}

void rt_part_stats_get(const struct rt_part *p, struct rt_part_stats *out)
{
    *out = p->stats;
}

void rt_part_usage(const struct rt_part *p, uint64_t *chunk_bytes, uint64_t *keystore_bytes,
                   uint64_t *table_bytes, uint64_t *task_bytes)
{
    *chunk_bytes = (uint64_t)p->chunks_used * RT_CHUNK_BYTES;
    *keystore_bytes = p->keys_used;
    *table_bytes = wf_table_mem_size(p->cfg.instances_max);
    *task_bytes = (uint64_t)p->tasks_max * sizeof(struct rt_task_slot);
}

void rt_part_reclaimable(const struct rt_part *p, uint64_t *free_slots, uint64_t *free_key_bytes)
{
    *free_slots = p->slots_free;
    *free_key_bytes = p->keys_free_bytes;
}

/* Instances in chunk `chunk` (full chunks hold RT_CHUNK_BYTES / stride). */
static uint32_t rt_chunk_fill(const struct rt_part *p, uint32_t chunk, uint16_t def)
{
    const struct rt_arena *a = &p->arena[def];
    if (a->chunk == chunk)
        return a->used;
    return RT_CHUNK_BYTES / a->stride;
}

uint64_t rt_part_digest(const struct rt_part *p)
{
    assert(p->magic == RT_PART_MAGIC);
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    struct rt_part h = *p;
    h.core_index = 0;
    XXH3_64bits_update(&st, &h, sizeof(h));
    const struct wf_table *t = rt_part_table(p);
    XXH3_64bits_update(&st, t, wf_table_mem_size(t->capacity));
    XXH3_64bits_update(&st, rt_part_keys(p), p->keys_used);
    XXH3_64bits_update(&st, rt_part_tasks(p), (size_t)p->tasks_max * RT_TASK_SLOT_BYTES);
    XXH3_64bits_update(&st, rt_part_dir(p), (size_t)p->chunks_used * sizeof(uint16_t));
    for (uint32_t ch = 0; ch < p->chunks_used; ch++) {
        uint16_t def = rt_part_dir(p)[ch];
        const struct rt_arena *a = &p->arena[def];
        uint32_t n = rt_chunk_fill(p, ch, def);
        for (uint32_t i = 0; i < n; i++) {
            struct rt_inst *in = rt_part_inst(p, ch << RT_CHUNK_SLOT_BITS | i);
            XXH3_64bits_update(&st, in, sizeof(*in));
            /* the timer nodes are core-side links: not part of the state */
            XXH3_64bits_update(&st, rt_inst_record(in, a->timer_slots), a->record_size);
        }
    }
    return XXH3_64bits_digest(&st);
}

/* ---- core ---------------------------------------------------------------------------------- */

struct rt_core_layout {
    uint64_t parts_off, queue_off, cmds_off, counts_off, total;
};

static bool rt_core_layout(const struct rt_core_config *cfg, struct rt_core_layout *l)
{
    if (cfg->parts_max == 0 || cfg->parts_max > RT_CORE_PARTS_MAX || cfg->outbound_cap == 0 ||
        (cfg->outbound_cap & (cfg->outbound_cap - 1)) != 0 || cfg->outbound_cap > (1u << 28))
        return false;
    uint64_t off = rt_align(sizeof(struct rt_core));
    l->parts_off = off;
    off += rt_align((uint64_t)cfg->parts_max * sizeof(struct rt_core_part));
    l->queue_off = off;
    off += rt_align((uint64_t)cfg->outbound_cap * sizeof(struct rt_qent));
    l->cmds_off = off;
    off += rt_align((uint64_t)RT_CMDS_MAX * sizeof(struct vm_cmd));
    l->counts_off = off;
    off += rt_align((uint64_t)RT_DEFS_MAX * FLOW_STATES_MAX * sizeof(uint32_t));
    l->total = off;
    return true;
}

size_t rt_core_mem_size(const struct rt_core_config *cfg)
{
    struct rt_core_layout l;
    return rt_core_layout(cfg, &l) ? l.total : 0;
}

struct rt_core *rt_core_init(void *mem, size_t mem_bytes, const struct rt_core_config *cfg)
{
    struct rt_core_layout l;
    if (mem == NULL || !rt_core_layout(cfg, &l) || mem_bytes < l.total ||
        (uintptr_t)mem % RT_ALIGN != 0)
        return NULL;
    struct rt_core *c = mem;
    memset(c, 0, sizeof(*c));
    c->cfg = *cfg;
    c->parts = (struct rt_core_part *)((char *)mem + l.parts_off);
    c->queue = (struct rt_qent *)((char *)mem + l.queue_off);
    c->cmds = (struct vm_cmd *)((char *)mem + l.cmds_off);
    c->state_counts = (uint32_t *)((char *)mem + l.counts_off);
    c->q_mask = cfg->outbound_cap - 1;
    memset(c->state_counts, 0, (size_t)RT_DEFS_MAX * FLOW_STATES_MAX * sizeof(uint32_t));
    rt_wheel_init(&c->wheel, cfg->start_ns);
    return c;
}

int rt_core_attach(struct rt_core *c, struct rt_part *p)
{
    assert(p->magic == RT_PART_MAGIC);
    for (uint32_t i = 0; i < c->part_count; i++)
        if (c->parts[i].p == p)
            return -EEXIST;
    if (c->part_count == c->cfg.parts_max)
        return -ENOSPC;
    uint32_t idx = c->part_count++;
    c->parts[idx].p = p;
    c->parts[idx].unqueued = RT_NONE;
    p->core_index = idx;
    return (int)idx;
}

void rt_core_set_registry(struct rt_core *c, const struct rt_registry *reg)
{
    assert(reg != NULL);
    assert(c->reg == NULL || reg->generation >= c->reg->generation);
    c->reg = reg;
}

const struct rt_registry *rt_core_registry(const struct rt_core *c)
{
    return c->reg;
}

void rt_core_stats_get(const struct rt_core *c, struct rt_core_stats *out)
{
    *out = c->stats;
}

void rt_core_def_counts(const struct rt_core *c, unsigned def_id, uint64_t *running,
                        uint64_t *completed)
{
    *running = def_id < RT_DEFS_MAX ? c->running[def_id] : 0;
    *completed = def_id < RT_DEFS_MAX ? c->completed[def_id] : 0;
}

uint64_t rt_core_state_count(const struct rt_core *c, unsigned def_id, unsigned state)
{
    if (def_id >= RT_DEFS_MAX || state >= FLOW_STATES_MAX)
        return 0;
    return c->state_counts[def_id * FLOW_STATES_MAX + state];
}

void rt_core_recount(struct rt_core *c)
{
    memset(c->running, 0, sizeof(c->running));
    memset(c->completed, 0, sizeof(c->completed));
    memset(c->state_counts, 0, (size_t)RT_DEFS_MAX * FLOW_STATES_MAX * sizeof(uint32_t));
    for (uint32_t pi = 0; pi < c->part_count; pi++) {
        const struct rt_part *p = c->parts[pi].p;
        uint64_t cur = 0;
        struct wf_key k;
        uint32_t ref;
        while (wf_table_next(rt_part_table(p), &cur, &k, &ref)) {
            struct rt_inst *in = rt_part_inst(p, ref);
            const struct rt_def *d = rt_registry_def(c->reg, in->def_id);
            assert(d != NULL);
            if (in->flags & RT_INST_F_COMPLETED) {
                c->completed[in->def_id]++;
                continue;
            }
            c->running[in->def_id]++;
            const uint8_t *rec = rt_inst_record(in, d->timer_slots);
            if (vm_record_started(d->def, rec))
                c->state_counts[in->def_id * FLOW_STATES_MAX + vm_record_state(d->def, rec)]++;
        }
    }
}
