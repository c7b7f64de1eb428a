/*
 * dp_runtime.c — workflows on the owner cores: the runtime library (dataplane/runtime/rt.h)
 * set up for the node, its definitions, and what the input path asks of it before logging
 * (dp_input.c logs and applies; dp_recover.c replays).
 *
 * Definitions: `sigflowctl definition deploy` sends the .flow text; the control thread
 * compiles it off the data path, writes the compiled blob durably to DIR/defs/GGGG.def
 * (tmp → fdatasync → rename → fsync dir; GGGG = the registry generation it creates), then
 * publishes the new registry. Each owner adopts it at the top of its loop and logs a
 * DP_REC_DEPLOY record first (dp_input_adopt), so that replay switches versions at the same
 * point in the input stream (new instances start on the newest version; running ones keep
 * theirs). Registries are immutable and never freed while the node runs (at most
 * RT_DEFS_MAX generations), so adoption needs no grace period.
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
#include "dp_chan.h"
#include "dp_req.h"
#include "dp_runtime.h"
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
    return 0;
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

/* ---- recovery and admission ------------------------------------------------------- */

void dp_runtime_recovered(struct dp_lcore *lc)
{
    rt_timers_rebuild(lc->rt);
    rt_tasks_reset(lc->rt); /* at-least-once: every activity in flight is dispatched again */
    rt_core_recount(lc->rt);
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

/* Tasks whose scheduling record is durable leave for sigflow-control, as many as the
 * channel takes; without a channel (or with a full one) they wait in the runtime's queue,
 * nothing dropped (dp_chan.h). */
unsigned dp_runtime_tasks(struct dp_lcore *lc)
{
    if (!dp_chan_ready(lc))
        return 0;
    uint64_t durable = lc->wal ? wal_durable_lsn(lc->wal) : UINT64_MAX;
    struct rt_task t;
    unsigned n = 0;
    while (n < DP_TASKS_PER_POLL && rt_tasks_peek(lc->rt, &t) == 0 && t.cause <= durable) {
        if (dp_chan_push_task(lc, &t) != 0)
            break; /* full: the same task on a later pass */
        if (t.kind == RT_TASK_RUN)
            lc->counters[DP_C_TASKS_DISPATCHED]++;
        rt_tasks_pop(lc->rt);
        n++;
    }
    return n;
}
