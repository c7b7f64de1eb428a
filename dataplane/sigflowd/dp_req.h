/*
 * dp_req.h — control requests to an owner core: what the control thread asks through the
 * owner's mailbox ring (dp_owner_req.c answers), and the dispatched-task list it reads.
 * Who holds a request at any moment is dp_ctl_req.h's protocol.
 */
#ifndef DP_REQ_H
#define DP_REQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dp.h"

enum dp_req_kind {
    DP_REQ_DESCRIBE,
    DP_REQ_LIST,
    DP_REQ_WAL_STATS,
    DP_REQ_TUNE,
    DP_REQ_ACTIVITY, /* complete or fail an activity run by hand */
    DP_REQ_COUNTS,   /* instances by definition and state, tasks, timers */
    DP_REQ_TASKS,    /* dispatched tasks */
    DP_REQ_HISTORY,  /* the head of a workflow's history chain */
    DP_REQ_DELETE,   /* delete a workflow (logged, then rt_delete) */
};

/** A dispatched activity task (until the control plane executes them). */
struct dp_task {
    struct wf_key key;
    uint32_t part_id;
    uint16_t act_index;
    uint16_t args_len;
    uint32_t seq, attempt;
    uint64_t dispatched_ns;
    bool done; /* its result was applied */
    char type[SF_TYPE_LEN_MAX + 1];
    char id[SF_ID_LEN_MAX + 1];
    char activity[FLOW_NAME_LEN_MAX + 1];
    char idempotency_key[48];
    uint8_t args[RT_TASK_ARGS_BYTES];
};

struct dp_task_list {
    uint64_t next;
    unsigned count;
    struct dp_task task[DP_TASK_LIST_MAX];
};

struct dp_def_counts {
    const struct flow_def *def;
    uint16_t def_id;
    unsigned state_count;
    uint64_t running, completed;
    uint64_t in_state[DP_STATES_REPORT_MAX];
};

struct dp_list_entry {
    uint32_t partition;
    uint64_t cursor_after; /* resume point inside the partition */
    char type[SF_TYPE_LEN_MAX + 1];
    char id[SF_ID_LEN_MAX + 1];
    char state[FLOW_NAME_LEN_MAX + 1];
    uint32_t version;
    uint64_t signals;
    uint64_t last_event_id;
    uint64_t last_ts_ns;
};

struct dp_req {
    enum dp_req_kind kind;
    /* describe */
    struct wf_key key;
    uint32_t partition;
    bool found;
    struct rt_describe desc;
    char arena[65536]; /* copies of the texts desc points to */
    size_t arena_used;
    /* list */
    uint32_t start_partition;
    uint64_t start_cursor;
    unsigned limit;
    char type_filter[SF_TYPE_LEN_MAX + 1];
    char state_filter[FLOW_NAME_LEN_MAX + 1];
    /* activity */
    uint32_t seq;
    bool failed;
    int64_t activity_result;
    int rt_status;
    /* counts */
    struct dp_def_counts defs[DP_DEFS_REPORT_MAX];
    unsigned def_count;
    uint64_t tasks_queued, tasks_flagged, timers_armed;
    /* tasks */
    struct dp_task *task_out;
    unsigned task_count;
    struct dp_list_entry *entries;
    unsigned entry_count;
    bool more; /* the owner stopped at limit with partitions left */
    /* wal stats */
    struct wal_stats wal_stats;
    uint64_t durable_lsn, next_lsn, acks_waiting;
    /* history */
    struct rt_hlink head;
    /* delete: the workflow's names (logged with the record) */
    char wf_type[SF_TYPE_LEN_MAX];
    char wf_id[SF_ID_LEN_MAX];
    uint8_t wf_type_len, wf_id_len;
    /* tune */
    char tune_key[48];
    uint64_t tune_value;
    int result;       /* 0 or -errno */
    atomic_int state; /* enum dp_ctl_req_state: who holds it; the owner's finish is last */
};

/** Owner: answer every request waiting in lc's mailbox. Can't fail (each request carries
 *  its own result). */
void dp_owner_req_serve(struct dp_lcore *lc);

#endif /* DP_REQ_H */
