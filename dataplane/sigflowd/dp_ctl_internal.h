/*
 * dp_ctl_internal.h — what the control socket's command files (dp_ctl*.c) share, private to
 * them: the reply helpers, asking an owner core through its mailbox, and one function per
 * command. The public interface is dp_ctl.h.
 *
 * Threading: every function here runs on a control connection's thread, one request at a
 * time (dp_ctl_server's handler lock), so a command may use static buffers. None touches
 * a partition: an owner answers through its mailbox (dp_req.h, dp_owner_req.c), and a
 * request that timed out is abandoned to the owner, which frees it (dp_ctl_req.h).
 * Counters are read with relaxed loads: each lcore writes only its own.
 */
#ifndef DP_CTL_INTERNAL_H
#define DP_CTL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dp.h"
#include "dp_ctl_parse.h"
#include "dp_req.h"

/* An owner answers a request within this, or the request is abandoned to it. */
#define DP_CTL_REQ_TIMEOUT_MS 2000
/* The newest records may still be on their way to disk: wait this long for them. */
#define DP_CTL_DURABLE_WAIT_MS 2000

/* ---- dp_ctl.c: replies, requests to owners ---------------------------------------------- */

/** {"ok":false,"error":msg}. NULL only when out of memory. */
json_t *dp_ctl_error(const char *msg);

/** A zeroed request of kind, with the buffer its answer needs for a describe (the instance
 *  and its text arena) or counts (the definitions table); lists and tasks size theirs by
 *  their limit and hang it on themselves. NULL when out of memory. Free with
 *  dp_ctl_req_free (dp_ctl_req.h), which frees the buffers by kind. */
struct dp_req *dp_ctl_req_new(enum dp_req_kind kind);

/** Post req (from dp_ctl_req_new) to owner's mailbox and wait for the answer, up to
 *  DP_CTL_REQ_TIMEOUT_MS. 0: answered, the caller holds req again. -EAGAIN: the mailbox was
 *  full, the owner never saw it, the caller holds req. -ETIMEDOUT: req is abandoned to the
 *  owner, which frees it and its buffers when it gets to it: the caller must not touch req
 *  or anything hung on it again. */
int dp_ctl_ask(unsigned owner, struct dp_req *req);

/** Free the requests reqs[0..n) still held (NULL: abandoned or never allocated), then reqs.
 *  Can't fail. */
void dp_ctl_reqs_free(struct dp_req **reqs, unsigned n);

/** Workflow (type, id): its key and partition; *owner gets the owner index. Can't fail. */
struct dp_req_workflow dp_ctl_workflow(const char *type, size_t type_len, const char *id,
                                       size_t id_len, unsigned *owner);

/** Wait (up to DP_CTL_DURABLE_WAIT_MS) until owner's log is durable up to lsn (0: nothing
 *  to wait for). 0, or -ETIMEDOUT / -EAGAIN / -ENOMEM when that was not confirmed. */
int dp_ctl_wait_durable(unsigned owner, uint64_t lsn);

/* ---- dp_ctl_json.c: the node's data as JSON --------------------------------------------- */

/** Text from the node's data (n bytes) as a JSON string, invalid UTF-8 replaced by U+FFFD
 *  (jansson refuses it). NULL only when out of memory. */
json_t *dp_ctl_text(const char *s, size_t n);

/** A NUL-terminated text from the node's data (see dp_ctl_text). */
json_t *dp_ctl_cstr(const char *s);

/** A field or variable value: integer, real, boolean, text or null. */
json_t *dp_ctl_value(const struct sf_value *v);

/* ---- the commands: each returns its reply (never NULL but out of memory) ---------------- */

json_t *dp_ctl_stats(void);                                   /* dp_ctl_stats.c */
json_t *dp_ctl_describe(const struct dp_ctl_cmd *cmd);        /* dp_ctl_workflows.c */
json_t *dp_ctl_list(const struct dp_ctl_cmd *cmd);            /* dp_ctl_workflows.c */
json_t *dp_ctl_delete(const struct dp_ctl_cmd *cmd);          /* dp_ctl_workflows.c */
json_t *dp_ctl_history(const struct dp_ctl_cmd *cmd);         /* dp_ctl_history.c */
json_t *dp_ctl_deploy(const struct dp_ctl_cmd *cmd);          /* dp_ctl_defs.c */
json_t *dp_ctl_definitions(void);                             /* dp_ctl_defs.c */
json_t *dp_ctl_activities(const struct dp_ctl_cmd *cmd);      /* dp_ctl_activity.c */
json_t *dp_ctl_activity_result(const struct dp_ctl_cmd *cmd); /* dp_ctl_activity.c */
json_t *dp_ctl_tune(const struct dp_ctl_cmd *cmd);            /* dp_ctl_admin.c */
json_t *dp_ctl_keys_reload(void);                             /* dp_ctl_admin.c */
json_t *dp_ctl_fault(const struct dp_ctl_cmd *cmd);           /* dp_ctl_admin.c */

#endif /* DP_CTL_INTERNAL_H */
