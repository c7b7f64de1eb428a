/*
 * dp_runtime.c — workflows on the owner cores: the runtime library (dataplane/runtime/rt.h)
 * driven by the owner loop, with every input logged before it is applied.
 *
 * Inputs and their log records (payloads little-endian; partition and 128-bit key are the
 * WAL header's):
 *   DP_WAL_SIGNAL    an event as received (dp_wal.c)          → rt_apply_signal
 *   DP_WAL_TIMER     u32 slot | u64 due_ns | 16 B prev          → rt_apply_timer
 *   DP_WAL_ACTIVITY  u16 act | u8 failed | u8 0 | u32 seq | i64 result | u64 now_ns
 *                    | 16 B prev                               → rt_apply_activity_result
 *   DP_WAL_DEPLOY    u64 generation: from here on this core uses registry `generation`
 *   DP_WAL_NOTE      16 B prev | u16 def_id | u8 flags (1 created, 2 completed) | u8 n
 *                    | u32 0 | n x (u16 activity, u16 0, u32 seq)        (history only)
 *   DP_WAL_SWEEP     u64 now_ns | u32 budget                  → rt_sweep_tombstones
 *   DP_WAL_DELETE    u8 type_len | u8 id_len | type | id       → rt_delete (the key must
 *                    re-hash from type and id, as for signals)
 *
 * TOMBSTONES. Every DP_SWEEP_PERIOD_NS an owner looks at its next partition holding
 * tombstones and, when tombstone_retention_s > 0, logs and runs one bounded sweep step of
 * it: expired tombstones leave the partition (table slot, record, key store entry reused).
 * The step is a logged input like any other, so replay removes exactly the same ones.
 * Replay feeds the same records to the same functions, so state after recovery equals the
 * state before the crash for everything logged.
 *
 * HISTORY. Every input of a workflow carries `prev`, the workflow's history link before it
 * (dp.h: log, segment, offset), and once the input is applied the instance's link points at
 * it — or at the DP_WAL_NOTE appended right after it when the input created the instance,
 * scheduled activities or completed it (room for the note is reserved with the input).
 * The links form a chain through the log, newest first, that `workflow history` follows
 * without scanning. Replay sets the same links from the records' locations, so the chain
 * survives restarts and snapshots; an input that changed nothing (duplicate, stale,
 * refused) is not linked.
 *
 * Definitions: `sigflowctl definition deploy` sends the .flow text; the control thread
 * compiles it off the data path, writes the compiled blob durably to DIR/defs/GGGG.def
 * (tmp → fdatasync → rename → fsync dir; GGGG = the registry generation it creates), then
 * publishes the new registry. Each owner adopts it at the top of its loop and logs a
 * DP_WAL_DEPLOY record first, so that replay switches versions at the same point in the
 * input stream (new instances start on the newest version; running ones keep theirs).
 * Registries are immutable and never freed while the node runs (at most RT_DEFS_MAX
 * generations), so adoption needs no grace period.
 *
 * Activity tasks leave an owner only when the record that scheduled them is durable. Until
 * the control plane exists they wait in a bounded per-owner list (`sigflowctl activity
 * list`) and are completed by hand (`activity complete|fail`), which logs and applies the
 * result like any other input.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rte_malloc.h>

#include "dp.h"
#include "sf_mem.h"

#define DP_DEFS_DIR_MAX (DP_PATH_MAX + 16)

/* ---- definitions store and registry chain ----------------------------------------- */

static void dp_defs_dir(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/defs", dp_node.cfg.dir);
}

static int dp_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* Write blob as DIR/defs/GGGG.def durably. Returns 0 or -errno. */
static int dp_defs_store(uint64_t generation, const void *blob, size_t len)
{
    char dir[DP_DEFS_DIR_MAX], path[DP_DEFS_DIR_MAX + 32], tmp[DP_DEFS_DIR_MAX + 40];
    dp_defs_dir(dir, sizeof(dir));
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    snprintf(path, sizeof(path), "%s/%04" PRIu64 ".def", dir, generation);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (write(fd, blob, len) != (ssize_t)len || fdatasync(fd) != 0)
        rc = errno ? -errno : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = dp_fsync_dir(dir);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

/* Publish registry `reg` as the next generation (control thread or start-up only). */
static void dp_registry_publish(struct rt_registry *reg)
{
    uint64_t g = reg->generation;
    RTE_VERIFY(g < DP_REGISTRY_GENERATIONS_MAX && dp_node.registries[g] == NULL);
    dp_node.registries[g] = reg;
    __atomic_store_n(&dp_node.registry_gen, g, __ATOMIC_RELEASE);
}

/* Load DIR/defs/0001.def, 0002.def, ... in order into the registry chain. */
static int dp_defs_load(void)
{
    char dir[DP_DEFS_DIR_MAX], path[DP_DEFS_DIR_MAX + 32];
    dp_defs_dir(dir, sizeof(dir));
    struct rt_registry *reg = rt_registry_new();
    if (!reg)
        return -ENOMEM;
    dp_registry_publish(reg);
    for (uint64_t g = 1; g < DP_REGISTRY_GENERATIONS_MAX; g++) {
        snprintf(path, sizeof(path), "%s/%04" PRIu64 ".def", dir, g);
        FILE *f = fopen(path, "rb");
        if (!f)
            break;
        static uint8_t blob[1 << 20];
        size_t len = fread(blob, 1, sizeof(blob), f);
        fclose(f);
        struct flow_def *def;
        int rc = flow_def_load(blob, len, &def);
        struct rt_registry *next = NULL;
        if (rc == 0)
            rc = rt_registry_deploy(reg, def, &next);
        if (rc != 0) {
            fprintf(stderr, "sigflowd: %s: not a loadable definition (%s)\n", path, strerror(-rc));
            return -EBADMSG;
        }
        if (next->generation != g) {
            fprintf(stderr, "sigflowd: %s: generation %" PRIu64 " out of order\n", path,
                    next->generation);
            return -EBADMSG;
        }
        dp_registry_publish(next);
        reg = next;
        fprintf(stderr, "sigflowd: definition %s version %u loaded (generation %" PRIu64 ")\n",
                flow_def_name(def), flow_def_version(def), g);
    }
    return 0;
}

int dp_runtime_deploy(const char *file, const char *src, size_t len, char *msg, size_t msg_cap)
{
    struct flow_errors *errs = calloc(1, sizeof(*errs));
    struct flow_def *def = NULL;
    if (!errs)
        return -ENOMEM;
    int rc = flow_compile_buffer(file, src, len, &def, errs);
    if (rc != 0) {
        size_t off = 0;
        for (unsigned i = 0; i < errs->count && off < msg_cap; i++)
            off += (size_t)snprintf(msg + off, msg_cap - off, "%s\n", errs->err[i].text);
        free(errs);
        return -EINVAL;
    }
    free(errs);
    uint64_t g = __atomic_load_n(&dp_node.registry_gen, __ATOMIC_ACQUIRE);
    struct rt_registry *next = NULL;
    rc = rt_registry_deploy(dp_node.registries[g], def, &next);
    if (rc != 0) {
        snprintf(msg, msg_cap, "%s version %u: %s", flow_def_name(def), flow_def_version(def),
                 rc == -EEXIST ? "this version (or a newer one) is already deployed"
                               : strerror(-rc));
        flow_def_free(def);
        return rc;
    }
    const void *blob;
    size_t blob_len;
    flow_def_serialize(def, &blob, &blob_len);
    rc = dp_defs_store(next->generation, blob, blob_len);
    if (rc != 0) {
        snprintf(msg, msg_cap, "storing the definition: %s", strerror(-rc));
        rt_registry_release(next);
        flow_def_free(def);
        return rc;
    }
    dp_registry_publish(next);
    snprintf(msg, msg_cap, "%s version %u deployed (generation %" PRIu64 ", record %u bytes)",
             flow_def_name(def), flow_def_version(def), next->generation,
             flow_def_record_size(def));
    return 0;
}

/* ---- partitions ------------------------------------------------------------------- */

static void dp_part_config(const struct dp_node *node, struct rt_part_config *pc)
{
    rt_part_config_for(pc, node->part_capacity, node->cfg.instance_bytes, 4, 24,
                       node->cfg.tasks_per_partition);
}

size_t dp_runtime_partition_bytes(const struct dp_node *node)
{
    struct rt_part_config pc;
    dp_part_config(node, &pc);
    return RTE_ALIGN_CEIL(rt_part_mem_size(&pc), 64);
}

int dp_runtime_init(struct dp_node *node, unsigned owner, void *mem, size_t bytes)
{
    struct dp_lcore *lc = node->owner_by_index[owner];
    struct rt_part_config pc;
    dp_part_config(node, &pc);
    size_t one = dp_runtime_partition_bytes(node);
    unsigned owned = 0;
    for (uint32_t p = 0; p < node->cfg.partitions; p++)
        owned += wf_partmap_owner(node->partmap, p) == owner;
    struct rt_core_config cc = {
        .parts_max = owned,
        .outbound_cap = DP_OUTBOUND_TASKS,
        .tombstone_retention_ns = (uint64_t)node->cfg.tombstone_retention_s * 1000000000ull,
        .start_ns = dp_realtime_ns(),
    };
    size_t core_bytes = RTE_ALIGN_CEIL(rt_core_mem_size(&cc), 64);
    if (core_bytes == 0 || (size_t)owned * one + core_bytes > bytes)
        return -ENOMEM;
    char *at = mem;
    lc->rt = rt_core_init(at, core_bytes, &cc);
    if (!lc->rt)
        return -EINVAL;
    at += core_bytes;
    for (uint32_t p = 0; p < node->cfg.partitions; p++) {
        if (wf_partmap_owner(node->partmap, p) != owner)
            continue;
        node->parts[p] = rt_part_init(at, one, &pc, p);
        if (!node->parts[p] || rt_core_attach(lc->rt, node->parts[p]) < 0)
            return -EINVAL;
        at += one;
    }
    rt_core_set_registry(lc->rt, node->registries[0]);
    lc->tasks = rte_zmalloc("dp_tasks", sizeof(*lc->tasks), RTE_CACHE_LINE_SIZE);
    return lc->tasks ? 0 : -ENOMEM;
}

size_t dp_runtime_owner_bytes(const struct dp_node *node, unsigned owned)
{
    struct rt_core_config cc = { .parts_max = owned, .outbound_cap = DP_OUTBOUND_TASKS };
    return RTE_ALIGN_CEIL(rt_core_mem_size(&cc), 64) +
           (size_t)owned * dp_runtime_partition_bytes(node);
}

int dp_runtime_start(struct dp_node *node)
{
    (void)node;
    return dp_defs_load() == 0 ? 0 : -EBADMSG;
}

/* ---- applying inputs (live and replay) -------------------------------------------- */

static void dp_count_status(struct dp_lcore *lc, int st)
{
    lc->rt_status[st < RT_STATUS_COUNT && st >= 0 ? st : RT_FULL]++;
    if (unlikely(st == RT_FULL))
        lc->drop[DP_DROP_TABLE_FULL]++; /* no room for a new workflow in its partition */
    if (st == RT_APPLIED || st == RT_CREATED)
        lc->counters[DP_C_EVENTS_APPLIED]++;
    if (st == RT_CREATED)
        lc->counters[DP_C_WORKFLOWS]++;
}

/* Decode a DP_WAL_SIGNAL payload into an rt_event (views into the payload). */
static int dp_signal_decode(const struct wal_record_view *r, struct rt_event *ev)
{
    const uint8_t *p = r->payload;
    if (r->len < DP_WAL_SIGNAL_HDR)
        return -EBADMSG;
    uint8_t flags = p[16], type_len = p[17], id_len = p[18], signal_len = p[19];
    uint16_t fields_len = (uint16_t)(p[20] | p[21] << 8);
    if (DP_WAL_SIGNAL_HDR + (uint32_t)type_len + id_len + signal_len + fields_len != r->len)
        return -EBADMSG;
    memset(ev, 0, sizeof(*ev));
    ev->event_id = dp_get64(p);
    ev->now_ns = dp_get64(p + 8);
    ev->has_event_id = (flags & DP_EV_HAS_EVENT_ID) != 0;
    ev->fields_json = (flags & DP_EV_FIELDS_JSON) != 0;
    ev->type = (const char *)p + DP_WAL_SIGNAL_HDR;
    ev->type_len = type_len;
    ev->id = ev->type + type_len;
    ev->id_len = id_len;
    ev->signal = ev->id + id_len;
    ev->signal_len = signal_len;
    ev->fields = (const uint8_t *)ev->signal + signal_len;
    ev->fields_len = fields_len;
    ev->key = wf_key_make(ev->type, type_len, ev->id, id_len);
    ev->cause = r->lsn;
    if (ev->key.hi != r->key.hi || ev->key.lo != r->key.lo)
        return -EBADMSG;
    return 0;
}

/* After an input applied to instance fx->inst_ref: append its note (live only: lc's log
 * has the room reserved) and point the instance's history link at the newest record. */
static void dp_runtime_linked(struct dp_lcore *lc, struct rt_part *part, struct wf_key key, int st,
                              const struct rt_effects *fx, struct rt_hlink loc)
{
    if (fx->inst_ref == RT_NONE)
        return;
    if (lc->wal && (st == RT_CREATED || fx->tasks > 0 || fx->completed)) {
        uint8_t rec[DP_NOTE_BYTES_MAX];
        memset(rec, 0, sizeof(rec));
        dp_hlink_put(rec, loc);
        rec[16] = (uint8_t)fx->def_id;
        rec[17] = (uint8_t)(fx->def_id >> 8);
        rec[18] = (uint8_t)((st == RT_CREATED ? 1 : 0) | (fx->completed ? 2 : 0));
        unsigned n = 0;
        if (fx->tasks > 0) {
            /* the runs this input scheduled: the instance's newest fx->tasks pending ones
             * (sequence numbers grow per instance) */
            static _Thread_local struct rt_describe d; /* one per owner thread */
            if (rt_describe(lc->rt, part, key, &d) == 0) {
                bool used[FLOW_ACTIVITIES_MAX] = { false };
                while (n < fx->tasks && n < DP_NOTE_TASKS_MAX) {
                    int best = -1;
                    for (unsigned a = 0; a < d.nactivities; a++)
                        if (!used[a] && (best < 0 || d.activities[a].seq > d.activities[best].seq))
                            best = (int)a;
                    if (best < 0)
                        break;
                    used[best] = true;
                    uint8_t *t = rec + 24 + 8 * n++;
                    t[0] = (uint8_t)d.activities[best].index;
                    t[1] = (uint8_t)(d.activities[best].index >> 8);
                    dp_put32(t + 4, d.activities[best].seq);
                }
            }
        }
        rec[19] = (uint8_t)n;
        loc = dp_wal_next_link(lc);
        struct wal_key k = { .hi = key.hi, .lo = key.lo };
        wal_append(lc->wal, DP_WAL_NOTE, rt_part_id(part), k, rec, 24 + 8 * n);
    }
    rt_inst_set_hlink(part, fx->inst_ref, loc);
}

struct rt_hlink dp_runtime_head_link(const struct rt_part *part, struct wf_key key)
{
    uint32_t ref = rt_inst_find(part, key);
    return ref == RT_NONE ? (struct rt_hlink){ 0, 0 } : rt_inst_hlink(part, ref);
}

int dp_runtime_replay(struct dp_replay_src *src, const struct wal_record_view *r)
{
    if (r->type == DP_WAL_DEPLOY) {
        if (r->len != 8)
            return -EBADMSG;
        if (r->lsn <= src->loaded_lsn)
            return 0; /* the loaded snapshot already holds a newer generation */
        uint64_t g = dp_get64(r->payload);
        if (g >= DP_REGISTRY_GENERATIONS_MAX || !dp_node.registries[g]) {
            fprintf(stderr,
                    "sigflowd: the log uses definitions generation %" PRIu64
                    " that DIR/defs does not hold\n",
                    g);
            return -ENOENT;
        }
        src->gen = g;
        return 0;
    }
    if (r->partition >= dp_node.partmap->count)
        return -EBADMSG;
    unsigned log_owner = src->manifest ? src->manifest->part_core[r->partition]
                                       : wf_partmap_owner(dp_node.partmap, r->partition);
    if (log_owner != src->core)
        return -EBADMSG; /* a partition this log never held */
    if (dp_node.part_lsn && r->lsn <= dp_node.part_lsn[r->partition])
        return 0; /* already in the partition's snapshot: never applied twice */
    src->applied++;
    struct dp_lcore *lc = dp_node.owner_by_index[wf_partmap_owner(dp_node.partmap, r->partition)];
    if (lc->reg_gen != src->gen) { /* the registry the log's core used at this point */
        if (src->gen >= DP_REGISTRY_GENERATIONS_MAX || !dp_node.registries[src->gen])
            return -ENOENT;
        rt_core_set_registry(lc->rt, dp_node.registries[src->gen]);
        lc->reg_gen = src->gen;
    }
    struct rt_part *part = dp_node.parts[r->partition];
    struct wf_key key = { .hi = r->key.hi, .lo = r->key.lo };
    struct rt_hlink loc = dp_hlink_make(src->epoch, src->core, r->segment, r->offset, r->lsn);
    const uint8_t *p = r->payload;
    struct rt_effects fx;
    int st;
    switch (r->type) {
    case DP_WAL_SIGNAL: {
        struct rt_event ev;
        if (dp_signal_decode(r, &ev) != 0 ||
            wf_key_partition(ev.key, dp_node.partmap->count) != r->partition)
            return -EBADMSG;
        st = rt_apply_signal(lc->rt, part, &ev, &fx);
        break;
    }
    case DP_WAL_TIMER:
        if (r->len != 28)
            return -EBADMSG;
        st = rt_apply_timer(lc->rt, part, key, dp_get32(p), dp_get64(p + 4), r->lsn, &fx);
        break;
    case DP_WAL_ACTIVITY:
        if (r->len != 40)
            return -EBADMSG;
        st = rt_apply_activity_result(lc->rt, part, key, (unsigned)(p[0] | p[1] << 8),
                                      dp_get32(p + 4), p[2] != 0, (int64_t)dp_get64(p + 8),
                                      dp_get64(p + 16), r->lsn, &fx);
        break;
    case DP_WAL_DELETE: {
        const uint8_t *q = r->payload;
        if (r->len < 2 || r->len != 2u + q[0] + q[1] || q[0] == 0 || q[1] == 0)
            return -EBADMSG;
        struct wf_key k = wf_key_make((const char *)q + 2, q[0], (const char *)q + 2 + q[0], q[1]);
        if (!wf_key_equal(k, key))
            return -EBADMSG;
        if (rt_delete(lc->rt, part, key) == RT_APPLIED)
            lc->counters[DP_C_DELETED]++;
        return 0;
    }
    case DP_WAL_SWEEP: {
        if (r->len != 12)
            return -EBADMSG;
        int n = rt_sweep_tombstones(lc->rt, part, dp_get64(p), dp_get32(p + 8));
        lc->counters[DP_C_TOMBSTONES_SWEPT] += n > 0 ? (uint64_t)n : 0;
        return 0;
    }
    case DP_WAL_NOTE: {
        if (r->len < 24 || r->len != 24u + 8u * ((const uint8_t *)r->payload)[19])
            return -EBADMSG;
        uint32_t ref = rt_inst_find(part, key);
        if (ref != RT_NONE)
            rt_inst_set_hlink(part, ref, loc);
        return 0;
    }
    default:
        return -EBADMSG;
    }
    /* as live; the note that followed the input (if any) moves the link on, above */
    if (fx.inst_ref != RT_NONE)
        rt_inst_set_hlink(part, fx.inst_ref, loc);
    dp_count_status(lc, st);
    return 0;
}

void dp_runtime_recovered(struct dp_lcore *lc)
{
    rt_timers_rebuild(lc->rt);
    rt_tasks_reset(lc->rt); /* at-least-once: every activity in flight is dispatched again */
    rt_core_recount(lc->rt);
}

/* Log and adopt a newer registry (top of the owner loop). */
static void dp_runtime_adopt(struct dp_lcore *lc)
{
    uint64_t g = __atomic_load_n(&dp_node.registry_gen, __ATOMIC_ACQUIRE);
    if (likely(g == lc->reg_gen) || lc->snap.phase != DP_SNAP_IDLE)
        return; /* (a snapshot in progress holds one generation for all its partitions) */
    if (lc->wal) {
        uint8_t rec[8];
        dp_put64(rec, g);
        if (wal_reserve(lc->wal, wal_record_bytes(sizeof(rec))) != 0)
            return; /* the log is behind: adopt at a later iteration */
        struct wal_key none = { 0, 0 };
        wal_append(lc->wal, DP_WAL_DEPLOY, 0, none, rec, sizeof(rec));
    }
    rt_core_set_registry(lc->rt, dp_node.registries[g]);
    lc->reg_gen = g;
}

uint8_t dp_runtime_apply_event(struct dp_lcore *lc, const struct dp_event *ev, uint64_t lsn,
                               uint32_t ref, struct rt_hlink loc)
{
    const char *base = rte_pktmbuf_mtod(ev->m, const char *);
    struct rt_event rev = {
        .key = ev->key,
        .type = base + ev->type_off,
        .id = base + ev->id_off,
        .signal = base + ev->signal_off,
        .fields = (const uint8_t *)base + ev->fields_off,
        .event_id = ev->event_id,
        .now_ns = ev->rx_ns,
        .cause = lsn,
        .fields_len = ev->fields_len,
        .type_len = ev->type_len,
        .id_len = ev->id_len,
        .signal_len = ev->signal_len,
        .has_event_id = (ev->flags & DP_EV_HAS_EVENT_ID) != 0,
        .fields_json = (ev->flags & DP_EV_FIELDS_JSON) != 0,
    };
    struct rt_part *part = dp_node.parts[ev->partition];
    struct rt_effects fx;
    int st = rt_apply_signal_ref(lc->rt, part, &rev, ref, &fx);
    if (lc->wal)
        dp_runtime_linked(lc, part, ev->key, st, &fx, loc);
    dp_count_status(lc, st);
    return (uint8_t)rt_status_ack(st);
}

/*
 * QUOTAS ([quota] TYPE = N). Checked live, before an event that would create a workflow is
 * logged: a refusal is never in the log, so replay needs no quota (and a changed quota
 * can't change what replay does). Keys spread evenly over the owners, so each owner allows
 * ceil(N / owners) workflows of the type: its running ones and its completed ones not yet
 * swept, of every version.
 */
bool dp_runtime_quota_refuses(struct dp_lcore *lc, const struct dp_event *ev)
{
    const struct rt_registry *reg = rt_core_registry(lc->rt);
    if (lc->quota_gen != lc->reg_gen) {
        memset(lc->quota_max, 0, sizeof(lc->quota_max));
        for (unsigned q = 0; q < dp_node.cfg.quota_count; q++) {
            int t =
                rt_registry_type(reg, dp_node.cfg.quota[q].type, strlen(dp_node.cfg.quota[q].type));
            if (t >= 0 && (unsigned)t < RT_TYPES_MAX)
                lc->quota_max[t] =
                    (dp_node.cfg.quota[q].max + dp_node.owner_count - 1) / dp_node.owner_count;
        }
        lc->quota_gen = lc->reg_gen;
    }
    const char *type = rte_pktmbuf_mtod(ev->m, const char *) + ev->type_off;
    int t = rt_registry_type(reg, type, ev->type_len);
    if (t < 0 || (unsigned)t >= RT_TYPES_MAX || lc->quota_max[t] == 0)
        return false;
    uint64_t live = 0;
    for (unsigned v = 0; v < RT_VERSIONS_MAX; v++) {
        uint64_t running, completed;
        rt_core_def_counts(lc->rt, (unsigned)t * RT_VERSIONS_MAX + v, &running, &completed);
        live += running + completed;
    }
    return live >= lc->quota_max[t];
}

bool dp_runtime_type_known(struct dp_lcore *lc, const struct dp_event *ev)
{
    const char *type = rte_pktmbuf_mtod(ev->m, const char *) + ev->type_off;
    return rt_registry_type(rt_core_registry(lc->rt), type, ev->type_len) >= 0;
}

void dp_runtime_prefetch(const struct dp_event *evs, unsigned n, uint32_t *refs)
{
    for (unsigned i = 0; i < n; i++)
        rt_prefetch(dp_node.parts[evs[i].partition], evs[i].key);
    for (unsigned i = 0; i < n; i++)
        refs[i] = rt_prefetch_instance_ref(dp_node.parts[evs[i].partition], evs[i].key);
}

/* ---- timers and tasks ------------------------------------------------------------- */

static unsigned dp_runtime_timers(struct dp_lcore *lc, uint64_t now)
{
    if (lc->firing_count < DP_FIRINGS_MAX)
        lc->firing_count += rt_timers_due(lc->rt, now, DP_FIRINGS_MAX - lc->firing_count,
                                          lc->firings + lc->firing_count);
    unsigned done = 0;
    while (done < lc->firing_count) {
        const struct rt_firing *f = &lc->firings[done];
        uint64_t lsn = 0;
        struct rt_hlink loc = { 0, 0 };
        if (lc->wal) {
            uint8_t rec[28];
            dp_put32(rec, f->slot);
            dp_put64(rec + 4, f->due_ns);
            dp_hlink_put(rec + 12, dp_runtime_head_link(f->part, f->key));
            if (wal_reserve(lc->wal, wal_record_bytes(sizeof(rec)) +
                                         wal_record_bytes(DP_NOTE_BYTES_MAX)) != 0)
                break; /* the log is behind: the rest fire at a later iteration */
            struct wal_key k = { .hi = f->key.hi, .lo = f->key.lo };
            loc = dp_wal_next_link(lc);
            lsn = wal_append(lc->wal, DP_WAL_TIMER, f->part_id, k, rec, sizeof(rec));
        }
        struct rt_effects fx;
        int st = rt_apply_timer(lc->rt, f->part, f->key, f->slot, f->due_ns, lsn, &fx);
        if (lc->wal)
            dp_runtime_linked(lc, f->part, f->key, st, &fx, loc);
        dp_count_status(lc, st);
        lc->counters[DP_C_TIMERS_FIRED]++;
        done++;
    }
    memmove(lc->firings, lc->firings + done, (lc->firing_count - done) * sizeof(lc->firings[0]));
    lc->firing_count -= done;
    return done;
}

/* Tasks whose scheduling record is durable leave for the (manual, for now) executor. */
static unsigned dp_runtime_tasks(struct dp_lcore *lc)
{
    uint64_t durable = lc->wal ? wal_durable_lsn(lc->wal) : UINT64_MAX;
    struct dp_task_list *tl = lc->tasks;
    struct rt_task t;
    unsigned n = 0;
    while (n < DP_TASKS_PER_POLL && rt_tasks_peek(lc->rt, &t) == 0 && t.cause <= durable) {
        if (t.kind == RT_TASK_RUN) {
            struct dp_task *d = &tl->task[tl->next++ % DP_TASK_LIST_MAX];
            if (tl->count < DP_TASK_LIST_MAX)
                tl->count++;
            memset(d, 0, sizeof(*d));
            d->key = t.key;
            d->part_id = t.part_id;
            d->act_index = t.act_index;
            d->seq = t.seq;
            d->attempt = t.attempt;
            d->dispatched_ns = dp_now_ns();
            memcpy(d->type, t.type, t.type_len);
            memcpy(d->id, t.id, t.id_len);
            snprintf(d->activity, sizeof(d->activity), "%s", t.activity);
            d->args_len = t.args_len < sizeof(d->args) ? t.args_len : (uint16_t)sizeof(d->args);
            memcpy(d->args, t.args, d->args_len);
            rt_task_idempotency_key(&t, d->idempotency_key, sizeof(d->idempotency_key));
            lc->counters[DP_C_TASKS_DISPATCHED]++;
        }
        rt_tasks_pop(lc->rt);
        n++;
    }
    return n;
}

#define DP_SWEEP_PERIOD_NS 5000000ull /* one sweep step per owner this often */
#define DP_SWEEP_BUDGET    1024u      /* table slots one step examines */
#define DP_SWEEP_SCAN_MAX  64u        /* partitions looked at per step for tombstones */

/* One bounded step of the tombstone sweep, logged before it is applied. */
static unsigned dp_runtime_sweep(struct dp_lcore *lc, uint64_t now)
{
    if (now - lc->sweep_ns < DP_SWEEP_PERIOD_NS || dp_node.cfg.tombstone_retention_s == 0)
        return 0;
    lc->sweep_ns = now;
    uint32_t parts = dp_node.partmap->count;
    for (unsigned k = 0; k < DP_SWEEP_SCAN_MAX; k++) {
        uint32_t pid = lc->sweep_part;
        lc->sweep_part = (pid + 1) % parts;
        if (wf_partmap_owner(dp_node.partmap, pid) != lc->owner_index)
            continue;
        struct rt_part *part = dp_node.parts[pid];
        struct rt_part_stats st;
        rt_part_stats_get(part, &st);
        if (st.completed <= st.tombstones_reused + st.tombstones_expired)
            continue; /* no tombstone here */
        if (lc->wal) {
            uint8_t rec[12];
            dp_put64(rec, now);
            dp_put32(rec + 8, DP_SWEEP_BUDGET);
            if (wal_reserve(lc->wal, wal_record_bytes(sizeof(rec))) != 0)
                return 0; /* the log is behind: later */
            struct wal_key none = { 0, 0 };
            wal_append(lc->wal, DP_WAL_SWEEP, pid, none, rec, sizeof(rec));
        }
        int n = rt_sweep_tombstones(lc->rt, part, now, DP_SWEEP_BUDGET);
        lc->counters[DP_C_TOMBSTONES_SWEPT] += n > 0 ? (uint64_t)n : 0;
        return 1;
    }
    return 0;
}

void dp_runtime_delete(struct dp_lcore *lc, struct dp_req *req)
{
    struct rt_part *part = dp_node.parts[req->partition];
    req->next_lsn = 0;
    req->result = 0;
    if (rt_inst_find(part, req->key) == RT_NONE) {
        req->rt_status = RT_NOT_FOUND;
        return;
    }
    if (lc->wal) {
        uint8_t rec[2 + SF_TYPE_LEN_MAX + SF_ID_LEN_MAX];
        uint32_t len = 2u + req->wf_type_len + req->wf_id_len;
        if (req->wf_type_len == 0 || req->wf_type_len > SF_TYPE_LEN_MAX || req->wf_id_len == 0 ||
            req->wf_id_len > SF_ID_LEN_MAX) {
            req->result = -EINVAL;
            return;
        }
        rec[0] = req->wf_type_len;
        rec[1] = req->wf_id_len;
        memcpy(rec + 2, req->wf_type, req->wf_type_len);
        memcpy(rec + 2 + req->wf_type_len, req->wf_id, req->wf_id_len);
        int rc = wal_reserve(lc->wal, wal_record_bytes(len));
        if (rc != 0) {
            req->result = rc == -EAGAIN ? -EAGAIN : rc;
            return;
        }
        struct wal_key k = { .hi = req->key.hi, .lo = req->key.lo };
        req->next_lsn = wal_append(lc->wal, DP_WAL_DELETE, req->partition, k, rec, len);
    }
    req->rt_status = rt_delete(lc->rt, part, req->key);
    if (req->rt_status == RT_APPLIED)
        lc->counters[DP_C_DELETED]++;
}

unsigned dp_runtime_poll(struct dp_lcore *lc)
{
    dp_runtime_adopt(lc);
    uint64_t now = dp_now_ns();
    return dp_runtime_timers(lc, now) + dp_runtime_tasks(lc) + dp_runtime_sweep(lc, now);
}

/* ---- control requests (owner thread) ---------------------------------------------- */

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

void dp_runtime_describe(struct dp_lcore *lc, struct dp_req *req)
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

void dp_runtime_list(struct dp_lcore *lc, struct dp_req *req)
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

void dp_runtime_activity(struct dp_lcore *lc, struct dp_req *req)
{
    struct rt_part *part = dp_node.parts[req->partition];
    struct rt_describe *d = &req->desc;
    if (rt_describe(lc->rt, part, req->key, d) != 0) {
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
    uint64_t now = dp_now_ns(), lsn = 0;
    struct rt_hlink loc = { 0, 0 };
    if (lc->wal) {
        uint8_t rec[40];
        rec[0] = (uint8_t)act;
        rec[1] = (uint8_t)(act >> 8);
        rec[2] = req->failed;
        rec[3] = 0;
        dp_put32(rec + 4, req->seq);
        dp_put64(rec + 8, (uint64_t)req->activity_result);
        dp_put64(rec + 16, now);
        dp_hlink_put(rec + 24, dp_runtime_head_link(part, req->key));
        if (wal_reserve(lc->wal,
                        wal_record_bytes(sizeof(rec)) + wal_record_bytes(DP_NOTE_BYTES_MAX)) != 0) {
            req->result = -EAGAIN;
            return;
        }
        struct wal_key k = { .hi = req->key.hi, .lo = req->key.lo };
        loc = dp_wal_next_link(lc);
        lsn = wal_append(lc->wal, DP_WAL_ACTIVITY, req->partition, k, rec, sizeof(rec));
    }
    struct rt_effects fx;
    int st = rt_apply_activity_result(lc->rt, part, req->key, (unsigned)act, req->seq, req->failed,
                                      req->activity_result, now, lsn, &fx);
    if (lc->wal)
        dp_runtime_linked(lc, part, req->key, st, &fx, loc);
    dp_count_status(lc, st);
    req->rt_status = st;
    req->result = 0;
    struct dp_task_list *tl = lc->tasks;
    for (unsigned i = 0; i < DP_TASK_LIST_MAX; i++)
        if (tl->task[i].seq == req->seq && wf_key_equal(tl->task[i].key, req->key))
            tl->task[i].done = true;
}

void dp_runtime_history_head(struct dp_lcore *lc, struct dp_req *req)
{
    const struct rt_part *part = dp_node.parts[req->partition];
    uint32_t ref = rt_inst_find(part, req->key);
    req->found = ref != RT_NONE;
    req->head = req->found ? rt_inst_hlink(part, ref) : (struct rt_hlink){ 0, 0 };
    req->durable_lsn = lc->wal ? wal_durable_lsn(lc->wal) : 0;
    req->next_lsn = lc->wal ? wal_next_lsn(lc->wal) : 0;
    req->result = lc->wal ? 0 : -ENOTSUP;
}

void dp_runtime_counts(struct dp_lcore *lc, struct dp_req *req)
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

void dp_runtime_tasks_copy(struct dp_lcore *lc, struct dp_req *req)
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
