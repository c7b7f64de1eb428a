/* wf_partmap.c — partition → owner map. */
#include "wf_partmap.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

static bool wf_partmap_is_pow2(uint32_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

int wf_partmap_init(struct wf_partmap *m, uint32_t partition_count, uint32_t owner_count)
{
    assert(m != NULL);
    if (!wf_partmap_is_pow2(partition_count) || partition_count > WF_PARTITIONS_MAX)
        return -EINVAL;
    if (owner_count == 0 || owner_count > partition_count || owner_count > WF_OWNERS_MAX)
        return -EINVAL;

    m->count = partition_count;
    for (uint32_t p = 0; p < partition_count; p++)
        m->owner[p] = (uint16_t)(p % owner_count);
    assert(m->owner[partition_count - 1] < owner_count);
    return 0;
}

uint32_t wf_partmap_owned(const struct wf_partmap *m, uint16_t owner)
{
    assert(m != NULL && m->count <= WF_PARTITIONS_MAX);
    uint32_t n = 0;
    for (uint32_t p = 0; p < m->count; p++)
        n += m->owner[p] == owner;
    assert(n <= m->count);
    return n;
}
