/* rt_registry.c — deployed definitions as copy-on-write snapshots (see rt_registry.h). */
#include "rt_registry.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flow_vm.h"
#include "wf_key.h"

struct rt_registry *rt_registry_new(void)
{
    struct rt_registry *reg = calloc(1, sizeof(*reg));
    return reg;
}

uint32_t rt_registry_stride(uint32_t record_size, uint32_t timer_slots)
{
    uint32_t s = RT_INST_HDR_BYTES + RT_TIMER_NODE_BYTES * timer_slots + record_size;
    return (s + 15u) & ~15u;
}

int rt_registry_type(const struct rt_registry *reg, const char *name, size_t len)
{
    /* names are zero-padded to RT_TYPE_NAME_MAX + 1 bytes (the registry is zeroed when
     * made and names are copied in whole): compared with word loads, no memcmp call */
    _Static_assert(RT_TYPE_NAME_MAX == FLOW_NAME_LEN_MAX, "padded like signal names");
    for (uint32_t t = 0; t < reg->type_count; t++)
        if (reg->types[t].name_len == len && fb_name_eq_padded(reg->types[t].name, name, len))
            return (int)t;
    return -ENOENT;
}

const struct rt_def *rt_registry_newest(const struct rt_registry *reg, unsigned type_id)
{
    if (type_id >= reg->type_count)
        return NULL;
    const struct rt_type *t = &reg->types[type_id];
    assert(t->version_count > 0);
    return &reg->defs[type_id * RT_VERSIONS_MAX + t->version_count - 1u];
}

const char *rt_registry_type_name(const struct rt_registry *reg, unsigned def_id)
{
    const struct rt_def *d = rt_registry_def(reg, def_id);
    return d ? reg->types[d->type_id].name : NULL;
}

int rt_registry_deploy(const struct rt_registry *old, struct flow_def *def,
                       struct rt_registry **out)
{
    const char *name = flow_def_name(def);
    size_t len = strlen(name);
    if (len == 0 || len > RT_TYPE_NAME_MAX || len > WF_KEY_PART_LEN_MAX)
        return -EINVAL;
    int type_id = old ? rt_registry_type(old, name, len) : -ENOENT;
    if (type_id >= 0) {
        const struct rt_def *newest = rt_registry_newest(old, (unsigned)type_id);
        if (flow_def_version(def) <= newest->version)
            return -EEXIST;
        if (old->types[type_id].version_count == RT_VERSIONS_MAX)
            return -ENOSPC;
    } else if (old && old->type_count == RT_TYPES_MAX) {
        return -ENOSPC;
    }
    struct rt_registry *reg = malloc(sizeof(*reg));
    if (reg == NULL)
        return -ENOMEM;
    if (old)
        memcpy(reg, old, sizeof(*reg));
    else
        memset(reg, 0, sizeof(*reg));
    if (type_id < 0) {
        type_id = (int)reg->type_count++;
        struct rt_type *t = &reg->types[type_id];
        memcpy(t->name, name, len);
        t->name[len] = '\0';
        t->name_len = (uint8_t)len;
        t->seed = wf_key_type_seed(name, len);
    }
    struct rt_type *t = &reg->types[type_id];
    unsigned vi = t->version_count++;
    unsigned id = (unsigned)type_id * RT_VERSIONS_MAX + vi;
    struct rt_def *d = &reg->defs[id];
    d->def = def;
    d->def_id = (uint16_t)id;
    d->type_id = (uint16_t)type_id;
    d->version_index = (uint16_t)vi;
    d->timer_slots = (uint16_t)flow_def_timer_slot_count(def);
    d->version = flow_def_version(def);
    d->record_size = flow_def_record_size(def);
    d->stride = rt_registry_stride(d->record_size, d->timer_slots);
    d->cmds_max = flow_def_cmds_max(def);
    d->activity_count = flow_def_activity_count(def);
    d->type_seed = t->seed;
    d->timers_off = flow_def_timers_offset(def);
    d->sig_plan = flow_def_sig_plans(def, &d->signal_count);
    assert(d->timers_off % 8 == 0 && d->timers_off + 8u * d->timer_slots <= d->record_size);
    assert(d->timer_slots <= FLOW_TIMER_SLOTS_MAX && d->record_size % 8 == 0);
    reg->generation++;
    *out = reg;
    return 0;
}

void rt_registry_release(struct rt_registry *reg)
{
    free(reg);
}

void rt_registry_destroy(struct rt_registry *reg)
{
    if (reg == NULL)
        return;
    for (unsigned i = 0; i < RT_DEFS_MAX; i++)
        if (reg->defs[i].def)
            flow_def_free((struct flow_def *)reg->defs[i].def);
    free(reg);
}
