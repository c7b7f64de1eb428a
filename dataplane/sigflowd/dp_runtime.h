/*
 * dp_runtime.h — workflows on the owner cores (dp_runtime.c): the definitions store and
 * the registry chain, each owner's runtime region, the burst prefetch and admission checks
 * of the input path, and the dispatch of activity tasks whose cause is durable.
 */
#ifndef DP_RUNTIME_H
#define DP_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp.h"

/** Load the definitions store (DIR/defs) into the registry chain. 0 or -errno (reason
 *  printed). Start-up only. */
int dp_runtime_start(struct dp_node *node);
/** Bytes of one partition's region. */
size_t dp_runtime_partition_bytes(const struct dp_node *node);
/** Bytes of an owner's runtime region (core + its `owned` partitions). */
size_t dp_runtime_owner_bytes(const struct dp_node *node, unsigned owned);
/** Carve owner's runtime (core + partitions) from mem[0..bytes). 0 or -errno. */
int dp_runtime_init(struct dp_node *node, unsigned owner, void *mem, size_t bytes);
/** Compile and deploy .flow text (control thread). 0, -EINVAL (compile errors in msg),
 *  -EEXIST (version deployed), -errno. msg gets a one-line outcome or the errors. */
int dp_runtime_deploy(const char *file, const char *src, size_t len, char *msg, size_t msg_cap);
/** After recovery: rebuild the timer wheel, re-dispatch tasks in flight, recount. */
void dp_runtime_recovered(struct dp_lcore *lc);

/** Burst prefetch of the events' table lines and instances: refs[i] is event i's instance
 *  (RT_NONE when it does not exist yet), for rt_inst_current. Can't fail. */
void dp_runtime_prefetch(const struct dp_event *evs, unsigned n, uint32_t *refs);
/** Would the event (whose workflow does not exist yet) take its type over this owner's
 *  share of a [quota]? Checked before logging: a refusal is never replayed. */
bool dp_runtime_quota_refuses(struct dp_lcore *lc, const struct dp_event *ev);
/** Is the event's workflow type deployed (on this owner's registry)? */
bool dp_runtime_type_known(struct dp_lcore *lc, const struct dp_event *ev);

/** Owner loop: hand the tasks whose scheduling record is durable to the executor (for now
 *  the `activity list` of dispatched tasks). Returns tasks taken. */
unsigned dp_runtime_tasks(struct dp_lcore *lc);

#endif /* DP_RUNTIME_H */
