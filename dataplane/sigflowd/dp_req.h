/*
 * dp_req.h — control requests to an owner core: what the control thread asks through the
 * owner's mailbox ring (dp_owner_req.c answers), and the dispatched-task list it reads.
 * A request is a tagged union: one kind, and only that kind's arguments and answers.
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
    char type[SF_TYPE_LEN_MAX + 1];
    char id[SF_ID_LEN_MAX + 1];
    char activity[FLOW_NAME_LEN_MAX + 1];
    char idempotency_key[48];
    uint8_t args[RT_TASK_ARGS_BYTES];
};

#define DP_REQ_TASKS_BATCH 64u /* runs the owner lists per rt_tasks_list call */

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

/* What a request about one workflow names: its key and the partition that holds it. */
struct dp_req_workflow {
    struct wf_key key;
    uint32_t partition;
};

/* describe: the instance, with copies of the texts it points to (they change after the
 * owner answers). The control thread allocates it for a describe request only. */
#define DP_REQ_ARENA_BYTES 65536u
struct dp_req_describe_out {
    struct rt_describe desc;
    size_t arena_used;
    char arena[DP_REQ_ARENA_BYTES];
};

struct dp_req_describe {
    struct dp_req_workflow wf;
    bool found;                      /* answer: the workflow exists */
    struct dp_req_describe_out *out; /* the control thread's malloc, freed with the request */
};

struct dp_req_list {
    uint32_t start_partition;
    uint64_t start_cursor;
    unsigned limit;                           /* entries[] holds limit entries */
    char type_filter[SF_TYPE_LEN_MAX + 1];    /* "" : any type */
    char state_filter[FLOW_NAME_LEN_MAX + 1]; /* "" : any state */
    struct dp_list_entry *entries;            /* the control thread's malloc */
    unsigned entry_count;                     /* answer */
    bool more; /* answer: the owner stopped at limit with partitions left */
};

struct dp_req_wal_stats {
    struct wal_stats wal; /* answers */
    uint64_t durable_lsn, next_lsn, acks_waiting;
};

struct dp_tunable;

/* a knob each owner applies to its own log (dp_tune.h, DP_TUNE_LIVE_OWNER) */
struct dp_req_tune {
    const struct dp_tunable *tunable; /* a row of dp_tune.c's table (never freed) */
    uint64_t value;                   /* checked against its range (dp_tune_prepare) */
};

/* complete or fail an activity run by hand */
struct dp_req_activity {
    struct dp_req_workflow wf;
    uint32_t seq;
    bool failed;
    int64_t result;
    int rt_status; /* answer: enum rt_status of the apply */
};

/* counts: instances by definition and state, tasks, timers */
struct dp_def_counts_list {
    unsigned count;
    struct dp_def_counts def[DP_DEFS_REPORT_MAX];
};

struct dp_req_counts {
    struct dp_def_counts_list *defs; /* the control thread's malloc */
    uint64_t tasks_queued, tasks_flagged, timers_armed;
};

struct dp_req_tasks {
    unsigned limit;      /* out[] holds limit tasks */
    struct dp_task *out; /* the control thread's malloc */
    unsigned count;      /* answer */
};

/* the head of a workflow's history chain, and how far the owner's log is durable */
struct dp_req_history {
    struct dp_req_workflow wf;
    bool found;
    struct rt_hlink head;
    uint64_t durable_lsn, next_lsn;
};

/* delete a workflow: its names are logged with the record */
struct dp_req_delete {
    struct dp_req_workflow wf;
    char type[SF_TYPE_LEN_MAX];
    char id[SF_ID_LEN_MAX];
    uint8_t type_len, id_len;
    uint64_t lsn;  /* answer: the record's LSN (0: nothing logged) */
    int rt_status; /* answer: RT_APPLIED or RT_NOT_FOUND */
};

/*
 * A request: its kind selects the member of u that both sides use; each kind's large
 * answers hang off it as their own allocations (dp_ctl_req_free frees them by kind).
 */
struct dp_req {
    enum dp_req_kind kind;
    atomic_int state; /* enum dp_ctl_req_state: who holds it; the owner's finish is last */
    int result;       /* 0 or -errno */
    union {
        struct dp_req_describe describe;
        struct dp_req_list list;
        struct dp_req_wal_stats wal_stats;
        struct dp_req_tune tune;
        struct dp_req_activity activity;
        struct dp_req_counts counts;
        struct dp_req_tasks tasks;
        struct dp_req_history history;
        struct dp_req_delete del;
    } u;
};

/** Owner: answer every request waiting in lc's mailbox. Can't fail (each request carries
 *  its own result). */
void dp_owner_req_serve(struct dp_lcore *lc);

#endif /* DP_REQ_H */
