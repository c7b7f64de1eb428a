/*
 * dp_ctl_defs.c — workflow definitions: `deploy` (compiled and published by
 * dp_runtime_deploy; answered once every owner adopted it) and `definitions` (each deployed
 * version with its instances by state, summed over the owners' counts).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "dp.h"
#include "dp_ctl_internal.h"
#include "dp_req.h"
#include "dp_runtime.h"

json_t *dp_ctl_deploy(const struct dp_ctl_cmd *cmd)
{
    static char msg[16384]; /* one request at a time (the server's handler lock) */
    msg[0] = '\0';
    int rc = dp_runtime_deploy(cmd->file, cmd->source, cmd->source_len, msg, sizeof(msg));
    if (rc == 0) {
        /* wait (bounded) until every owner uses it, so the caller's next signals see it */
        uint64_t g = __atomic_load_n(&dp_node.registry_gen, __ATOMIC_ACQUIRE);
        for (int i = 0; i < 2000; i++) {
            bool all = true;
            for (unsigned o = 0; o < dp_node.owner_count; o++)
                all = all &&
                      __atomic_load_n(&dp_node.owner_by_index[o]->reg_gen, __ATOMIC_RELAXED) >= g;
            if (all)
                break;
            usleep(1000);
        }
        return json_pack("{s:b, s:s, s:I}", "ok", 1, "message", msg, "generation", (json_int_t)g);
    }
    return json_pack("{s:b, s:s, s:b}", "ok", 0, "error", msg, "exists", rc == -EEXIST);
}

/* Ask every owner for its counts into reqs[o] (each its own request). NULL or the error
 * reply; an owner that timed out keeps (and frees) its request. */
static json_t *dp_ctl_counts(struct dp_req **reqs)
{
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        reqs[o] = dp_ctl_req_new(DP_REQ_COUNTS);
        if (!reqs[o])
            return dp_ctl_error("out of memory");
        int rc = dp_ctl_ask(o, reqs[o]);
        if (rc == -ETIMEDOUT)
            reqs[o] = NULL; /* abandoned: the owner frees it */
        if (rc != 0)
            return dp_ctl_error(rc == -EAGAIN ? "owner mailbox full, retry"
                                              : "owner core did not answer in time");
    }
    return NULL;
}

json_t *dp_ctl_definitions(void)
{
    struct dp_req **reqs = calloc(dp_node.owner_count, sizeof(*reqs));
    if (!reqs)
        return dp_ctl_error("out of memory");
    json_t *err = dp_ctl_counts(reqs);
    if (err) {
        dp_ctl_reqs_free(reqs, dp_node.owner_count);
        return err;
    }
    json_t *arr = json_array();
    const struct dp_def_counts_list *defs0 = reqs[0]->u.counts.defs;
    for (unsigned i = 0; i < defs0->count; i++) {
        const struct dp_def_counts *d0 = &defs0->def[i];
        uint64_t running = 0, completed = 0;
        json_t *states = json_object();
        for (unsigned o = 0; o < dp_node.owner_count; o++) {
            const struct dp_def_counts_list *defs = reqs[o]->u.counts.defs;
            for (unsigned j = 0; j < defs->count; j++) {
                const struct dp_def_counts *d = &defs->def[j];
                if (d->def_id != d0->def_id)
                    continue;
                running += d->running;
                completed += d->completed;
                for (unsigned s = 0; s < d->state_count; s++) {
                    const char *name = flow_def_state_name(d->def, s);
                    json_t *cur = json_object_get(states, name);
                    json_object_set_new(states, name,
                                        json_integer((cur ? json_integer_value(cur) : 0) +
                                                     (json_int_t)d->in_state[s]));
                }
            }
        }
        json_array_append_new(
            arr, json_pack("{s:s, s:i, s:i, s:I, s:I, s:i, s:o}", "type", flow_def_name(d0->def),
                           "version", (int)flow_def_version(d0->def), "def_id", (int)d0->def_id,
                           "running", (json_int_t)running, "completed", (json_int_t)completed,
                           "record_bytes", (int)flow_def_record_size(d0->def), "states", states));
    }
    dp_ctl_reqs_free(reqs, dp_node.owner_count);
    return json_pack("{s:b, s:o, s:I}", "ok", 1, "definitions", arr, "generation",
                     (json_int_t)__atomic_load_n(&dp_node.registry_gen, __ATOMIC_ACQUIRE));
}
