/*
 * dp_ctl_workflows.c — the commands about workflow instances, each answered by the owner
 * core of the workflow's partition: `describe` (the whole instance), `list` (every owner's
 * instances merged in (partition, cursor) order, paged by an opaque cursor "P:C") and
 * `delete` (logged and applied by the owner; answered once the record is durable).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dp.h"
#include "dp_ctl_internal.h"
#include "dp_ctl_req.h"
#include "dp_req.h"

static json_t *dp_ctl_entry_json(const struct dp_list_entry *e)
{
    return json_pack("{s:o, s:o, s:o, s:i, s:I, s:I, s:i}", "type", dp_ctl_cstr(e->type), "id",
                     dp_ctl_cstr(e->id), "state", dp_ctl_cstr(e->state), "version", (int)e->version,
                     "signals", (json_int_t)e->signals, "last_event_id",
                     (json_int_t)e->last_event_id, "partition", (int)e->partition);
}

/* The whole instance: variables, queues, timers, activities in flight. */
static json_t *dp_ctl_describe_json(const struct rt_describe *d)
{
    json_t *vars = json_object(), *queues = json_object(), *timers = json_array(),
           *acts = json_array();
    for (unsigned i = 0; i < d->nvars; i++)
        json_object_set_new(vars, d->vars[i].name, dp_ctl_value(&d->vars[i].value));
    for (unsigned q = 0; q < d->nqueues; q++) {
        json_t *items = json_array();
        for (unsigned i = 0; i < d->queues[q].len; i++)
            json_array_append_new(items, dp_ctl_value(&d->queues[q].items[i]));
        json_object_set_new(queues, d->queues[q].name, items);
    }
    for (unsigned t = 0; t < d->ntimers; t++)
        json_array_append_new(timers,
                              json_pack("{s:s, s:s, s:i, s:I}", "name", d->timers[t].name, "kind",
                                        d->timers[t].kind, "slot", (int)d->timers[t].slot, "due_ns",
                                        (json_int_t)d->timers[t].due_ns));
    for (unsigned a = 0; a < d->nactivities; a++)
        json_array_append_new(
            acts, json_pack("{s:s, s:i, s:I, s:I}", "activity", d->activities[a].name, "index",
                            (int)d->activities[a].index, "seq", (json_int_t)d->activities[a].seq,
                            "attempts", (json_int_t)d->activities[a].attempts));
    return json_pack("{s:b, s:s, s:o, s:i, s:s, s:b, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "ok",
                     1, "type", d->type, "id", dp_ctl_text(d->id, d->id_len), "version",
                     (int)d->version, "state", d->state, "completed", d->completed, "signals",
                     (json_int_t)d->signals, "last_event_id", (json_int_t)d->last_event_id,
                     "dedupe_hwm", (json_int_t)d->dedupe_hwm, "created_ns",
                     (json_int_t)d->created_ns, "vars", vars, "queues", queues, "timers", timers,
                     "activities", acts);
}

json_t *dp_ctl_describe(const struct dp_ctl_cmd *cmd)
{
    const char *type = cmd->type, *id = cmd->id;
    unsigned owner;
    struct dp_req *req = dp_ctl_req_new(DP_REQ_DESCRIBE);
    if (!req)
        return dp_ctl_error("out of memory");
    struct dp_req_describe *r = &req->u.describe;
    r->wf = dp_ctl_workflow(type, cmd->type_len, id, cmd->id_len, &owner);
    int rc = dp_ctl_ask(owner, req);
    if (rc == -ETIMEDOUT)
        return dp_ctl_error("owner core did not answer in time"); /* the owner frees req */
    json_t *out;
    if (rc != 0)
        out = dp_ctl_error("owner mailbox full, retry");
    else if (!r->found)
        out = json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error", "workflow not found", "type",
                        type, "id", id);
    else {
        out = dp_ctl_describe_json(&r->out->desc);
        json_object_set_new(out, "partition", json_integer(r->wf.partition));
        json_object_set_new(out, "owner_lcore",
                            json_integer(dp_node.owner_by_index[owner]->lcore_id));
    }
    dp_ctl_req_free(req);
    return out;
}

static int dp_ctl_entry_cmp(const void *a, const void *b)
{
    const struct dp_list_entry *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->cursor_after < y->cursor_after ? -1 : x->cursor_after > y->cursor_after;
}

/* Ask every owner for up to limit entries from the cursor on; reqs[o] each its own request
 * and entries buffer (an owner that times out keeps and frees its pair). 0 or a reply. */
static json_t *dp_ctl_list_ask(const struct dp_ctl_cmd *cmd, struct dp_req **reqs)
{
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        struct dp_req *req = dp_ctl_req_new(DP_REQ_LIST);
        if (!req)
            return dp_ctl_error("out of memory");
        reqs[o] = req;
        struct dp_req_list *r = &req->u.list;
        r->entries = calloc(cmd->limit, sizeof(*r->entries));
        if (!r->entries)
            return dp_ctl_error("out of memory");
        r->start_partition = cmd->after_partition;
        r->start_cursor = cmd->after_cursor;
        r->limit = cmd->limit;
        if (cmd->has_type)
            snprintf(r->type_filter, sizeof(r->type_filter), "%s", cmd->type);
        if (cmd->has_state)
            snprintf(r->state_filter, sizeof(r->state_filter), "%s", cmd->state);
        int rc = dp_ctl_ask(o, req);
        if (rc == -ETIMEDOUT)
            reqs[o] = NULL; /* abandoned: the owner frees r and its entries */
        if (rc != 0)
            return dp_ctl_error(rc == -EAGAIN ? "owner mailbox full, retry"
                                              : "owner core did not answer in time");
    }
    return NULL;
}

json_t *dp_ctl_list(const struct dp_ctl_cmd *cmd)
{
    unsigned owners = dp_node.owner_count, limit = cmd->limit;
    struct dp_req **reqs = calloc(owners, sizeof(*reqs));
    if (!reqs)
        return dp_ctl_error("out of memory");
    json_t *err = dp_ctl_list_ask(cmd, reqs);
    struct dp_list_entry *all = err ? NULL : calloc((size_t)limit * owners, sizeof(*all));
    if (err || !all) {
        dp_ctl_reqs_free(reqs, owners);
        return err ? err : dp_ctl_error("out of memory");
    }
    unsigned total = 0;
    bool more = false;
    for (unsigned o = 0; o < owners; o++) {
        const struct dp_req_list *r = &reqs[o]->u.list;
        unsigned n = r->entry_count <= limit ? r->entry_count : limit;
        memcpy(all + total, r->entries, n * sizeof(*all));
        total += n;
        more = more || r->more;
    }
    dp_ctl_reqs_free(reqs, owners);
    qsort(all, total, sizeof(*all), dp_ctl_entry_cmp);
    if (total > limit) {
        total = limit;
        more = true;
    }
    json_t *arr = json_array();
    for (unsigned i = 0; i < total; i++)
        json_array_append_new(arr, dp_ctl_entry_json(&all[i]));
    json_t *out = json_pack("{s:b, s:o, s:i}", "ok", 1, "workflows", arr, "count", (int)total);
    if (more && total > 0) {
        char cur[48];
        uint32_t np = all[total - 1].partition;
        uint64_t nc = all[total - 1].cursor_after;
        if (nc == UINT64_MAX) { /* that partition is done: resume at the next one */
            np++;
            nc = 0;
        }
        if (np < dp_node.partmap->count) {
            snprintf(cur, sizeof(cur), "%u:%" PRIu64, np, nc);
            json_object_set_new(out, "next", json_string(cur));
        }
    }
    free(all);
    return out;
}

/* Delete a workflow: the owner logs it and applies it; the answer waits until the record
 * is durable (up to DP_CTL_DURABLE_WAIT_MS), so a deletion that was answered survives a crash. */
json_t *dp_ctl_delete(const struct dp_ctl_cmd *cmd)
{
    unsigned owner;
    struct dp_req *req = dp_ctl_req_new(DP_REQ_DELETE);
    if (!req)
        return dp_ctl_error("out of memory");
    struct dp_req_delete *r = &req->u.del;
    r->wf = dp_ctl_workflow(cmd->type, cmd->type_len, cmd->id, cmd->id_len, &owner);
    memcpy(r->type, cmd->type, cmd->type_len);
    memcpy(r->id, cmd->id, cmd->id_len);
    r->type_len = (uint8_t)cmd->type_len;
    r->id_len = (uint8_t)cmd->id_len;
    int rc = dp_ctl_ask(owner, req);
    if (rc == -ETIMEDOUT)
        return dp_ctl_error("owner core did not answer in time"); /* the owner frees req */
    json_t *out;
    if (rc != 0 || req->result == -EAGAIN) {
        out = dp_ctl_error("owner busy (mailbox full or log behind), retry");
    } else if (req->result != 0) {
        out = dp_ctl_error(strerror(-req->result));
    } else if (r->rt_status != RT_APPLIED) {
        out = json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error", "workflow not found", "type",
                        cmd->type, "id", cmd->id);
    } else {
        uint64_t lsn = r->lsn;
        out = dp_ctl_wait_durable(owner, lsn) == 0
                  ? json_pack("{s:b, s:s, s:s, s:b, s:I}", "ok", 1, "type", cmd->type, "id",
                              cmd->id, "deleted", 1, "lsn", (json_int_t)lsn)
                  : dp_ctl_error("deleted, but the log did not confirm it durable in time");
    }
    dp_ctl_req_free(req);
    return out;
}
