/*
 * dp_ctl_admin.c — the operator's switches: `tune` (a knob of dp_tune.h's table, checked
 * with the configuration file's range and words, then stored node-wide or applied by each
 * owner to its log), `keys_reload` (the senders' key file) and `fault` (tests only: a
 * power cut or I/O error injected into the logs).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "dp.h"
#include "dp_ctl_internal.h"
#include "dp_ctl_req.h"
#include "dp_fault.h"
#include "dp_req.h"
#include "dp_senders.h"
#include "dp_tune.h"

/* Apply a checked owner knob t = v on every owner's log, one owner at a time through its
 * mailbox. NULL or the error reply (owners before the failing one keep the new value). */
static json_t *dp_ctl_tune_owners(const struct dp_tunable *t, uint64_t v)
{
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        struct dp_req *req = dp_ctl_req_new(DP_REQ_TUNE);
        if (!req)
            return dp_ctl_error("out of memory");
        req->u.tune.tunable = t;
        req->u.tune.value = v;
        int rc = dp_ctl_ask(o, req);
        if (rc == -ETIMEDOUT)
            return dp_ctl_error("owner core did not answer in time"); /* the owner frees */
        rc = rc != 0 ? rc : req->result;
        dp_ctl_req_free(req);
        if (rc == -EAGAIN)
            return dp_ctl_error("owner mailbox full, retry");
        if (rc == -ENOTSUP)
            return dp_ctl_error("the node runs without a log ([wal] enabled = false)");
        if (rc != 0)
            return dp_ctl_error("the log refused the value");
    }
    return NULL;
}

/* tune KEY VALUE: the key's range and unit are the configuration file's (dp_tune.c, the
 * same refusal words); node-wide words are stored here, each owner applies its log's. */
json_t *dp_ctl_tune(const struct dp_ctl_cmd *cmd)
{
    const char *key = cmd->tune_key;
    uint64_t v = cmd->tune_value;
    const struct dp_tunable *t;
    char err[DP_TUNE_ERROR_MAX];
    if (dp_tune_prepare(key, v, &t, err, sizeof(err)) != 0)
        return dp_ctl_error(err);
    if (t->live == DP_TUNE_LIVE_NODE) {
        dp_tune_store(t, &dp_node.cfg, v); /* the loops read it at their next check */
    } else {
        json_t *refused = dp_ctl_tune_owners(t, v);
        if (refused)
            return refused;
    }
    return json_pack("{s:b, s:s, s:I}", "ok", 1, "key", key, "value", (json_int_t)v);
}

json_t *dp_ctl_keys_reload(void)
{
    int rc = dp_senders_reload();
    if (rc == -ENOTSUP)
        return dp_ctl_error("no key file was configured at start ([auth] keys or DIR/keys)");
    if (rc != 0)
        return json_pack("{s:b, s:s}", "ok", 0, "error",
                         dp_senders_last_error()[0] ? dp_senders_last_error() : strerror(-rc));
    return json_pack("{s:b}", "ok", 1);
}

json_t *dp_ctl_fault(const struct dp_ctl_cmd *cmd)
{
    const char *kind = cmd->fault_kind;
    int rc = dp_fault_arm(&dp_node, kind, cmd->fault_skip, cmd->fault_seed);
    if (rc == -EPERM)
        return dp_ctl_error("fault injection is off ([wal] fault_injection = false)");
    if (rc == -ENOENT)
        return dp_ctl_error("unknown fault (powercut, powercut_reorder, write_eio, fsync_eio, "
                            "enospc, short_write)");
    if (rc != 0)
        return dp_ctl_error(strerror(-rc));
    if (strncmp(kind, "powercut", 8) == 0) {
        /* stop once every owner reaped what it had in flight (bounded wait) */
        for (int i = 0; i < 5000; i++) {
            bool drained = true;
            for (unsigned o = 0; o < dp_node.owner_count; o++)
                drained = drained && dp_node.owner_by_index[o]->power_cut_drained;
            if (drained)
                break;
            usleep(1000);
        }
        dp_node.force_quit = true;
    }
    return json_pack("{s:b, s:s}", "ok", 1, "kind", kind);
}
