/*
 * wf_partmap.h — which owner core owns which partition (no DPDK).
 *
 * Ownership is by partition (docs/architecture.md#event-path): a fixed power-of-two number of them,
 * each owned by exactly one owner core. The map is built once at start-up and read on the
 * per-event path; it is never written after init.
 */
#ifndef WF_PARTMAP_H
#define WF_PARTMAP_H

#include <assert.h>
#include <stdint.h>

#include "wf_key.h" /* WF_ASSERT_HOT */

#define WF_PARTITIONS_MAX 65536u
#define WF_OWNERS_MAX     65535u /* owner ids are u16 */

struct wf_partmap {
    uint32_t count;                    /* partitions, a power of two <= WF_PARTITIONS_MAX */
    uint16_t owner[WF_PARTITIONS_MAX]; /* owner index of each partition, < owner_count */
};

/**
 * Build the map: partition_count partitions (a power of two in 1..WF_PARTITIONS_MAX) over
 * owner_count owners (1..min(partition_count, WF_OWNERS_MAX)). Partitions are spread
 * evenly, round robin: partition p goes to owner p % owner_count, so owners differ by at
 * most one partition. Returns 0, or -EINVAL (m untouched) when a count is out of range.
 */
int wf_partmap_init(struct wf_partmap *m, uint32_t partition_count, uint32_t owner_count);

/** Owner of partition (which must be < m->count, asserted). Can't fail. */
static inline uint16_t wf_partmap_owner(const struct wf_partmap *m, uint32_t partition)
{
    WF_ASSERT_HOT(partition < m->count);
    return m->owner[partition];
}

/** Number of partitions that owner owns. Can't fail. */
uint32_t wf_partmap_owned(const struct wf_partmap *m, uint16_t owner);

#endif /* WF_PARTMAP_H */
