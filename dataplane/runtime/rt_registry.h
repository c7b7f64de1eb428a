/*
 * rt_registry.h — deployed workflow definitions, as immutable snapshots (no DPDK).
 *
 * A registry maps a workflow type name to the versions deployed for it, oldest first. New
 * instances start on the newest version; running instances keep the version they started
 * on (they name it by its def id). Deploys never change a registry: rt_registry_deploy
 * builds a NEW registry from the old one plus the new def (copy-on-write), so the daemon can
 * publish it to the owner cores with RCU while cores keep reading the old one; the old
 * registry object is freed after the grace period with rt_registry_release.
 *
 * Compact ids: every deployed def gets a def id = type_id * RT_VERSIONS_MAX + version index.
 * type_id is the type's position in deploy order, the version index the def's position among
 * its type's versions; both only ever grow, so a def id never changes meaning and the same
 * sequence of deploys (the log replays them) gives the same ids. Instances store the def id
 * in 2 bytes.
 *
 * Ownership: the defs belong to the registry chain. Every newer registry references all defs
 * of the older ones (nothing is ever undeployed), so rt_registry_release frees only the
 * registry object, rt_registry_destroy frees the newest registry and every def in it.
 * Reading is thread safe (immutable); building is done by one thread off the data path.
 */
#ifndef RT_REGISTRY_H
#define RT_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flow.h"

struct fb_sig_plan; /* flow_vm.h */

#define RT_TYPES_MAX        16u /* workflow types deployed on a node */
#define RT_VERSIONS_MAX     16u /* versions kept per type */
#define RT_DEFS_MAX         (RT_TYPES_MAX * RT_VERSIONS_MAX)
#define RT_DEF_NONE         UINT16_MAX
#define RT_TYPE_NAME_MAX    FLOW_NAME_LEN_MAX
#define RT_INST_HDR_BYTES   64u /* struct rt_inst (rt.h) */
#define RT_TIMER_NODE_BYTES 16u /* struct rt_tnode (rt_wheel.h): one per timer slot */

_Static_assert(RT_DEFS_MAX <= UINT16_MAX, "def ids fit 16 bits");

/** What the runtime caches about one deployed def (hot-path numbers precomputed). */
struct rt_def {
    const struct flow_def *def; /* NULL: id not in use */
    uint16_t def_id;            /* type_id * RT_VERSIONS_MAX + version index */
    uint16_t type_id;
    uint16_t version_index;
    uint16_t timer_slots; /* flow_def_timer_slot_count */
    uint32_t version;     /* flow_def_version */
    uint32_t record_size; /* flow_def_record_size */
    uint32_t stride;      /* bytes of one instance in its arena (runtime header + timer
                             nodes + record), multiple of 16 */
    uint32_t cmds_max;    /* flow_def_cmds_max */
    uint32_t activity_count;
    uint64_t type_seed;    /* wf_key_type_seed(type name) */
    uint32_t timers_off;   /* flow_def_timers_offset: the timer slots' due times (u64 each) */
    uint32_t signal_count; /* flow_def_signal_count: entries of sig_plan */
    const struct fb_sig_plan *sig_plan; /* flow_def_sig_plans: the signal lookup (fast path) */
};

struct rt_type {
    char name[RT_TYPE_NAME_MAX + 1];
    uint8_t name_len;
    uint16_t version_count; /* defs[type_id * RT_VERSIONS_MAX + 0 .. count) */
    uint64_t seed;
};

struct rt_registry {
    uint64_t generation; /* deploys applied so far (0 for the empty registry) */
    uint32_t type_count;
    struct rt_type types[RT_TYPES_MAX];
    struct rt_def defs[RT_DEFS_MAX];
};

/** A new empty registry (generation 0). Returns NULL when out of memory. */
struct rt_registry *rt_registry_new(void);

/**
 * Make *out = old + def (old may be NULL: the empty registry). `def` is owned by the new
 * registry chain on success. The def's version must be greater than every deployed version
 * of its type. Returns 0, or -EEXIST (this version or a newer one is deployed: nothing
 * changes, the caller still owns def), -ENOSPC (RT_TYPES_MAX types or RT_VERSIONS_MAX
 * versions reached), -EINVAL (type name too long for a key), -ENOMEM.
 * Off the data path (allocates).
 */
int rt_registry_deploy(const struct rt_registry *old, struct flow_def *def,
                       struct rt_registry **out);

/** Free a registry object but not its defs (a newer registry still uses them). NULL ok. */
void rt_registry_release(struct rt_registry *reg);

/** Free the newest registry and every def it references (shutdown). NULL ok. */
void rt_registry_destroy(struct rt_registry *reg);

/** Type id of the type named name[0..len), or -ENOENT. O(types). */
int rt_registry_type(const struct rt_registry *reg, const char *name, size_t len);

/** The newest def of type_id, or NULL when type_id is unknown. Can't fail. */
const struct rt_def *rt_registry_newest(const struct rt_registry *reg, unsigned type_id);

/** The def with def_id, or NULL when no def has that id. Can't fail. */
static inline const struct rt_def *rt_registry_def(const struct rt_registry *reg, unsigned def_id)
{
    if (def_id >= RT_DEFS_MAX || reg->defs[def_id].def == NULL)
        return NULL;
    return &reg->defs[def_id];
}

/** Type name of a def id (NULL when unknown). Can't fail. */
const char *rt_registry_type_name(const struct rt_registry *reg, unsigned def_id);

/** Bytes of one instance in its arena: RT_INST_HDR_BYTES + RT_TIMER_NODE_BYTES per timer
 *  slot + the record, rounded up to 16. Can't fail. */
uint32_t rt_registry_stride(uint32_t record_size, uint32_t timer_slots);

#endif /* RT_REGISTRY_H */
