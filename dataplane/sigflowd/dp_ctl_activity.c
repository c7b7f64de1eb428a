/*
 * dp_ctl_activity.c — activity runs until the control-plane process executes them:
 * `activities` (the tasks each owner dispatched and has not seen finish) and `activity`
 * (an operator delivers a run's result, which the owner logs and applies like any input).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dp.h"
#include "dp_ctl_internal.h"
#include "dp_ctl_req.h"
#include "dp_req.h"

json_t *dp_ctl_activities(const struct dp_ctl_cmd *cmd)
{
    unsigned limit = cmd->limit;
    struct dp_req *req = dp_ctl_req_new(DP_REQ_TASKS);
    struct dp_task *tasks = req ? calloc(limit, sizeof(*tasks)) : NULL;
    if (!tasks) {
        dp_ctl_req_free(req);
        return dp_ctl_error("out of memory");
    }
    struct dp_req_tasks *r = &req->u.tasks;
    r->out = tasks; /* freed with req: by us, or by an owner it was abandoned to */
    json_t *arr = json_array();
    for (unsigned o = 0; o < dp_node.owner_count && json_array_size(arr) < limit; o++) {
        r->limit = limit - (unsigned)json_array_size(arr);
        r->count = 0;
        int rc = dp_ctl_ask(o, req);
        if (rc != 0) {
            if (rc != -ETIMEDOUT)
                dp_ctl_req_free(req); /* else abandoned: the owner frees req and tasks */
            json_decref(arr);
            return dp_ctl_error(rc == -EAGAIN ? "owner mailbox full, retry"
                                              : "owner core did not answer in time");
        }
        for (unsigned i = 0; i < r->count && i < r->limit; i++) {
            const struct dp_task *t = &tasks[i];
            struct sf_value vals[VM_ARGS_MAX];
            int n = sf_fields_decode(t->args, t->args_len, vals, VM_ARGS_MAX);
            json_t *args = json_array();
            for (int a = 0; a < n; a++)
                json_array_append_new(args, dp_ctl_value(&vals[a]));
            json_array_append_new(arr, json_pack("{s:s, s:o, s:s, s:I, s:I, s:o, s:o}", "type",
                                                 t->type, "id", dp_ctl_cstr(t->id), "activity",
                                                 t->activity, "seq", (json_int_t)t->seq, "attempt",
                                                 (json_int_t)t->attempt, "idempotency_key",
                                                 dp_ctl_cstr(t->idempotency_key), "args", args));
        }
    }
    dp_ctl_req_free(req);
    return json_pack("{s:b, s:o}", "ok", 1, "tasks", arr);
}

json_t *dp_ctl_activity_result(const struct dp_ctl_cmd *cmd)
{
    unsigned owner;
    struct dp_req *req = dp_ctl_req_new(DP_REQ_ACTIVITY);
    if (!req)
        return dp_ctl_error("out of memory");
    struct dp_req_activity *r = &req->u.activity;
    r->wf = dp_ctl_workflow(cmd->type, cmd->type_len, cmd->id, cmd->id_len, &owner);
    r->seq = cmd->seq;
    r->failed = cmd->failed;
    r->result = cmd->result;
    int rc = dp_ctl_ask(owner, req);
    if (rc == -ETIMEDOUT)
        return dp_ctl_error("owner core did not answer in time"); /* the owner frees req */
    json_t *out;
    if (rc != 0)
        out = dp_ctl_error("owner mailbox full, retry");
    else if (req->result == -ENOENT)
        out = dp_ctl_error("workflow not found");
    else if (req->result == -ESRCH)
        out = dp_ctl_error("no activity run with that seq is pending for this workflow");
    else if (req->result == -EAGAIN)
        out = dp_ctl_error("the log is behind (overloaded): retry");
    else
        out = json_pack("{s:b, s:s}", "ok", 1, "status", rt_status_name(r->rt_status));
    dp_ctl_req_free(req);
    return out;
}
