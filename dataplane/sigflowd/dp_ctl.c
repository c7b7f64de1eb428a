/*
 * dp_ctl.c — the control socket: its handler, which runs one validated command against the
 * node, and the plumbing the commands share to ask an owner core something.
 *
 * A unix stream socket (0600, in the 0700 runtime dir), off the data path. Protocol: one
 * JSON object per line in, one JSON object per line out: {"cmd":"stats"} → {"ok":true,...};
 * errors are {"ok":false,"error":"..."}. The connections, their threads and limits are
 * dp_ctl_server.{c,h}; the request language and its validation dp_ctl_parse.{c,h}; the
 * commands dp_ctl_{stats,workflows,history,defs,activity,admin}.c (dp_ctl_internal.h).
 *
 * Asking an owner: the request (dp_req.h) goes through the owner's mailbox ring; this
 * thread waits for the answer up to DP_CTL_REQ_TIMEOUT_MS and never touches a table
 * itself. A request that timed out is abandoned to its owner, which frees it
 * (dp_ctl_req.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "dp.h"
#include "dp_ctl.h"
#include "dp_ctl_internal.h"
#include "dp_ctl_parse.h"
#include "dp_ctl_req.h"
#include "dp_ctl_server.h"
#include "dp_req.h"

_Static_assert(DP_CTL_TYPE_LEN_MAX == SF_TYPE_LEN_MAX, "the parser's type limit");
_Static_assert(DP_CTL_ID_LEN_MAX == SF_ID_LEN_MAX, "the parser's id limit");
_Static_assert(DP_CTL_STATE_LEN_MAX == FLOW_NAME_LEN_MAX, "the parser's state limit");
_Static_assert(DP_CTL_LIST_LIMIT_MAX == DP_LIST_LIMIT_MAX, "the parser's list limit");

static struct dp_ctl_server *dp_ctl_server;

json_t *dp_ctl_error(const char *msg)
{
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

int dp_ctl_ask(unsigned owner, struct dp_req *req)
{
    dp_ctl_req_post(&req->state);
    if (rte_ring_mp_enqueue(dp_node.owner_by_index[owner]->mailbox, req) != 0) {
        dp_ctl_req_withdraw(&req->state);
        return -EAGAIN;
    }
    struct timespec pause = { 0, 50000 };
    for (int waited_us = 0; waited_us < DP_CTL_REQ_TIMEOUT_MS * 1000; waited_us += 50) {
        if (dp_ctl_req_answered(&req->state))
            return 0;
        nanosleep(&pause, NULL);
    }
    return dp_ctl_req_abandon(&req->state) ? -ETIMEDOUT : 0;
}

struct dp_req *dp_ctl_req_new(enum dp_req_kind kind)
{
    struct dp_req *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->kind = kind;
    if (kind == DP_REQ_DESCRIBE) {
        req->u.describe.out = malloc(sizeof(*req->u.describe.out));
        if (!req->u.describe.out)
            goto out_free_req;
    } else if (kind == DP_REQ_COUNTS) {
        req->u.counts.defs = calloc(1, sizeof(*req->u.counts.defs));
        if (!req->u.counts.defs)
            goto out_free_req;
    }
    return req;
out_free_req:
    free(req);
    return NULL;
}

void dp_ctl_req_free(struct dp_req *req)
{
    if (!req)
        return;
    switch (req->kind) {
    case DP_REQ_DESCRIBE:
        free(req->u.describe.out);
        break;
    case DP_REQ_LIST:
        free(req->u.list.entries);
        break;
    case DP_REQ_COUNTS:
        free(req->u.counts.defs);
        break;
    case DP_REQ_TASKS:
        free(req->u.tasks.out);
        break;
    default:
        break; /* no buffer of its own */
    }
    free(req);
}

void dp_ctl_reqs_free(struct dp_req **reqs, unsigned n)
{
    for (unsigned o = 0; o < n; o++)
        if (reqs[o])
            dp_ctl_req_free(reqs[o]);
    free(reqs);
}

struct dp_req_workflow dp_ctl_workflow(const char *type, size_t type_len, const char *id,
                                       size_t id_len, unsigned *owner)
{
    struct dp_req_workflow wf;
    wf.key = wf_key_make(type, type_len, id, id_len);
    wf.partition = wf_key_partition(wf.key, dp_node.partmap->count);
    *owner = wf_partmap_owner(dp_node.partmap, wf.partition);
    return wf;
}

int dp_ctl_wait_durable(unsigned owner, uint64_t lsn)
{
    if (lsn == 0)
        return 0;
    struct dp_req *req = dp_ctl_req_new(DP_REQ_WAL_STATS);
    if (!req)
        return -ENOMEM;
    int rc = -ETIMEDOUT;
    for (unsigned waited = 0; waited < DP_CTL_DURABLE_WAIT_MS; waited++) {
        int ask = dp_ctl_ask(owner, req);
        if (ask == -ETIMEDOUT)
            return -ETIMEDOUT; /* abandoned: the owner frees req */
        if (ask != 0) {
            rc = ask;
            break;
        }
        if (req->u.wal_stats.durable_lsn >= lsn) {
            rc = 0;
            break;
        }
        usleep(1000);
    }
    dp_ctl_req_free(req);
    return rc;
}

/* The server's handler: one request line, validated, then run. Never NULL but out of memory. */
static json_t *dp_ctl_handle(const char *line, size_t len, void *arg)
{
    (void)arg;
    struct dp_ctl_cmd cmd;
    const char *refused;
    if (dp_ctl_parse(line, len, dp_node.partmap->count, &cmd, &refused) != 0)
        return dp_ctl_error(refused);
    json_t *out = NULL;
    switch (cmd.kind) {
    case DP_CTL_CMD_STATS:
        out = dp_ctl_stats();
        break;
    case DP_CTL_CMD_DESCRIBE:
        out = dp_ctl_describe(&cmd);
        break;
    case DP_CTL_CMD_HISTORY:
        out = dp_ctl_history(&cmd);
        break;
    case DP_CTL_CMD_LIST:
        out = dp_ctl_list(&cmd);
        break;
    case DP_CTL_CMD_DEPLOY:
        out = dp_ctl_deploy(&cmd);
        break;
    case DP_CTL_CMD_DEFINITIONS:
        out = dp_ctl_definitions();
        break;
    case DP_CTL_CMD_ACTIVITIES:
        out = dp_ctl_activities(&cmd);
        break;
    case DP_CTL_CMD_ACTIVITY:
        out = dp_ctl_activity_result(&cmd);
        break;
    case DP_CTL_CMD_FAULT:
        out = dp_ctl_fault(&cmd);
        break;
    case DP_CTL_CMD_DELETE:
        out = dp_ctl_delete(&cmd);
        break;
    case DP_CTL_CMD_KEYS_RELOAD:
        out = dp_ctl_keys_reload();
        break;
    case DP_CTL_CMD_TUNE:
        out = dp_ctl_tune(&cmd);
        break;
    case DP_CTL_CMD_PING:
        out = json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid());
        break;
    case DP_CTL_CMD_COUNT:
        out = dp_ctl_error("unknown command"); /* dp_ctl_parse never returns it */
        break;
    }
    dp_ctl_cmd_release(&cmd);
    return out;
}

int dp_ctl_start(struct dp_node *node, const char *path)
{
    (void)node;
    if (dp_ctl_server)
        return -EBUSY;
    struct dp_ctl_server_opts opts = { .path = path, .handle = dp_ctl_handle };
    return dp_ctl_server_start(&opts, &dp_ctl_server);
}

void dp_ctl_stop(void)
{
    dp_ctl_server_stop(dp_ctl_server);
    dp_ctl_server = NULL;
}
