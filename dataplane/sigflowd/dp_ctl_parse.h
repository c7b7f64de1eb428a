/*
 * dp_ctl_parse.h — the control socket's request language: one line of JSON in, a command
 * with validated arguments out, before anything touches the node. DPDK-free (jansson only),
 * so the unit test and the fuzz target drive exactly what the daemon runs.
 *
 * A request is one JSON object on one line (at most DP_CTL_LINE_MAX bytes, newline not
 * counted): {"cmd": NAME, ...arguments}. Members not listed are ignored.
 *
 *   stats | definitions | ping                  no arguments
 *   describe  type, id                          type 1..32 bytes, id 1..64 bytes
 *   history   type, id, limit?                  limit 0..100000 (0: all retained), default 20
 *   list      limit?, after?, type?, state?     limit 1..1000 (default 100), after "P:C" with
 *                                               P < the node's partitions, type 0..32 bytes,
 *                                               state 0..31 bytes (empty: no filter)
 *   deploy    file, source                      file 1..4096 bytes, source: text, no NUL
 *   activities limit?                           1..1000, default 100
 *   activity  type, id, seq, outcome, result?   seq 1..2^32-1, outcome "done"|"failed",
 *                                               result an integer (default 0)
 *   fault     kind, skip?, seed?                kind 1..31 bytes, skip 0..2^32-1, seed integer
 *   tune      key, value                        value an integer >= 0 (range: dp_tune.c)
 *
 * Names (type, id, state, kind, key) must not hold NUL bytes. Anything else is refused with
 * a message for {"ok":false,"error":...}.
 */
#ifndef DP_CTL_PARSE_H
#define DP_CTL_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define DP_CTL_LINE_MAX          (2u << 20) /* a deploy carries a whole .flow file */
#define DP_CTL_TYPE_LEN_MAX      32u        /* = SF_TYPE_LEN_MAX */
#define DP_CTL_ID_LEN_MAX        64u        /* = SF_ID_LEN_MAX */
#define DP_CTL_STATE_LEN_MAX     31u        /* = FLOW_NAME_LEN_MAX */
#define DP_CTL_FILE_LEN_MAX      4096u      /* a file name, only quoted in messages */
#define DP_CTL_FAULT_LEN_MAX     31u
#define DP_CTL_TUNE_KEY_LEN_MAX  47u   /* longer than any key of dp_tune.c's table */
#define DP_CTL_LIST_LIMIT_MAX    1000u /* = DP_LIST_LIMIT_MAX */
#define DP_CTL_LIST_LIMIT_DEF    100u
#define DP_CTL_HISTORY_LIMIT_MAX 100000u
#define DP_CTL_HISTORY_LIMIT_DEF 20u
#define DP_CTL_IDLE_VALUE_MAX    1000000u

enum dp_ctl_cmd_kind {
    DP_CTL_CMD_STATS,
    DP_CTL_CMD_DESCRIBE,
    DP_CTL_CMD_HISTORY,
    DP_CTL_CMD_LIST,
    DP_CTL_CMD_DEPLOY,
    DP_CTL_CMD_DEFINITIONS,
    DP_CTL_CMD_ACTIVITIES,
    DP_CTL_CMD_ACTIVITY,
    DP_CTL_CMD_FAULT,
    DP_CTL_CMD_TUNE,
    DP_CTL_CMD_PING,
    DP_CTL_CMD_DELETE,      /* a workflow, logged (type, id) */
    DP_CTL_CMD_KEYS_RELOAD, /* the senders' key file */
    DP_CTL_CMD_COUNT
};

struct dp_ctl_cmd {
    enum dp_ctl_cmd_kind kind;
    /* describe, history, activity; list's filters (has_type, has_state) */
    char type[DP_CTL_TYPE_LEN_MAX + 1];
    size_t type_len;
    char id[DP_CTL_ID_LEN_MAX + 1];
    size_t id_len;
    bool has_type, has_state;
    char state[DP_CTL_STATE_LEN_MAX + 1];
    /* history (DP_CTL_HISTORY_LIMIT_MAX when asked 0), list, activities */
    unsigned limit;
    /* list: where to resume (0:0 when no cursor) */
    uint32_t after_partition;
    uint64_t after_cursor;
    /* activity */
    uint32_t seq;
    bool failed;
    int64_t result;
    /* fault */
    char fault_kind[DP_CTL_FAULT_LEN_MAX + 1];
    uint32_t fault_skip;
    uint64_t fault_seed;
    /* tune */
    char tune_key[DP_CTL_TUNE_KEY_LEN_MAX + 1];
    uint64_t tune_value;
    /* deploy: point into root, valid until dp_ctl_cmd_release */
    const char *file;
    const char *source;
    size_t source_len;
    json_t *root; /* the parsed request (owned), NULL when parsing failed */
};

/**
 * Parse and validate one request line (len bytes, no newline; it need not be NUL-terminated)
 * for a node of `partitions` partitions (list cursors name one). Returns 0 with *cmd filled
 * (release it with dp_ctl_cmd_release), or -EINVAL with *error set to a static message for
 * the reply ({"ok":false,"error":*error}) and nothing held. -EMSGSIZE (same *error) when len
 * exceeds DP_CTL_LINE_MAX. Never asserts on its input.
 */
int dp_ctl_parse(const char *line, size_t len, uint32_t partitions, struct dp_ctl_cmd *cmd,
                 const char **error);

/** Drop what a successful dp_ctl_parse holds (cmd->root); cmd's pointers die with it.
 *  NULL-safe and idempotent. Can't fail. */
void dp_ctl_cmd_release(struct dp_ctl_cmd *cmd);

/** The command's name ("stats", ...), for messages. Can't fail. */
const char *dp_ctl_cmd_name(enum dp_ctl_cmd_kind kind);

/** The tune keys a request may name, for the "unknown key" message. */
#define DP_CTL_TUNE_KEYS                                                                \
    "idle_sleep_max_us, idle_pause_polls, wal.batch_bytes_max, wal.batch_deadline_us, " \
    "wal.inflight_max, snapshot.interval_s, snapshot.log_bytes, history.retention_s, "  \
    "history.retention_bytes"

#endif
