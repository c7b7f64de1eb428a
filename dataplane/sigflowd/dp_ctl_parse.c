/*
 * dp_ctl_parse.c — one control request line → a command with validated arguments
 * (the language is in dp_ctl_parse.h). Each argument is checked for its JSON type, then its
 * range, then copied into a fixed buffer sized by the same limit the check used.
 */
#include "dp_ctl_parse.h"

#include <errno.h>
#include <string.h>

static const char *const dp_ctl_cmd_names[DP_CTL_CMD_COUNT] = {
    [DP_CTL_CMD_STATS] = "stats",
    [DP_CTL_CMD_DESCRIBE] = "describe",
    [DP_CTL_CMD_HISTORY] = "history",
    [DP_CTL_CMD_LIST] = "list",
    [DP_CTL_CMD_DEPLOY] = "deploy",
    [DP_CTL_CMD_DEFINITIONS] = "definitions",
    [DP_CTL_CMD_ACTIVITIES] = "activities",
    [DP_CTL_CMD_ACTIVITY] = "activity",
    [DP_CTL_CMD_FAULT] = "fault",
    [DP_CTL_CMD_TUNE] = "tune",
    [DP_CTL_CMD_PING] = "ping",
    [DP_CTL_CMD_DELETE] = "delete",
    [DP_CTL_CMD_KEYS_RELOAD] = "keys_reload",
};

const char *dp_ctl_cmd_name(enum dp_ctl_cmd_kind kind)
{
    return (unsigned)kind < DP_CTL_CMD_COUNT ? dp_ctl_cmd_names[kind] : "?";
}

/* Copy string member `key` of req into out (cap bytes, NUL-terminated): its length must be
 * min..max (max < cap) and it must hold no NUL. false when absent, not a string or refused. */
static bool dp_ctl_parse_name(json_t *req, const char *key, size_t min, size_t max, char *out,
                              size_t cap, size_t *len)
{
    json_t *v = json_object_get(req, key);
    if (!json_is_string(v))
        return false;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n < min || n > max || n >= cap || memchr(s, '\0', n) != NULL)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    if (len)
        *len = n;
    return true;
}

/* Integer member `key` in min..max, or def when absent. false when present and not an
 * integer in range. */
static bool dp_ctl_parse_int(json_t *req, const char *key, json_int_t min, json_int_t max,
                             json_int_t def, json_int_t *out)
{
    json_t *v = json_object_get(req, key);
    if (!v) {
        *out = def;
        return true;
    }
    if (!json_is_integer(v))
        return false;
    json_int_t i = json_integer_value(v);
    if (i < min || i > max)
        return false;
    *out = i;
    return true;
}

static bool dp_ctl_parse_type_id(json_t *req, struct dp_ctl_cmd *cmd)
{
    return dp_ctl_parse_name(req, "type", 1, DP_CTL_TYPE_LEN_MAX, cmd->type, sizeof(cmd->type),
                             &cmd->type_len) &&
           dp_ctl_parse_name(req, "id", 1, DP_CTL_ID_LEN_MAX, cmd->id, sizeof(cmd->id),
                             &cmd->id_len);
}

/* Cursor "P:C": decimal partition P < partitions, decimal position C < 2^64, nothing else
 * (no sign, no spaces, at most 20 digits each). */
static bool dp_ctl_parse_cursor(const char *s, size_t len, uint32_t partitions, uint32_t *p,
                                uint64_t *c)
{
    uint64_t part[2] = { 0, 0 };
    size_t i = 0;
    for (unsigned f = 0; f < 2; f++) {
        size_t digits = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            uint64_t d = (uint64_t)(s[i] - '0');
            if (part[f] > (UINT64_MAX - d) / 10)
                return false;
            part[f] = part[f] * 10 + d;
            i++;
            digits++;
        }
        if (digits == 0)
            return false;
        if (f == 0) {
            if (i >= len || s[i] != ':')
                return false;
            i++;
        }
    }
    if (i != len || part[0] >= partitions)
        return false;
    *p = (uint32_t)part[0];
    *c = part[1];
    return true;
}

static const char *dp_ctl_parse_history(json_t *req, struct dp_ctl_cmd *cmd)
{
    if (!dp_ctl_parse_type_id(req, cmd))
        return "history needs \"type\" (1..32 bytes) and \"id\" (1..64 bytes)";
    json_int_t limit;
    if (!dp_ctl_parse_int(req, "limit", 0, DP_CTL_HISTORY_LIMIT_MAX, DP_CTL_HISTORY_LIMIT_DEF,
                          &limit))
        return "limit: 0..100000 (0: everything retained)";
    cmd->limit = limit == 0 ? DP_CTL_HISTORY_LIMIT_MAX : (unsigned)limit;
    return NULL;
}

static const char *dp_ctl_parse_list(json_t *req, uint32_t partitions, struct dp_ctl_cmd *cmd)
{
    json_int_t limit;
    if (!dp_ctl_parse_int(req, "limit", 1, DP_CTL_LIST_LIMIT_MAX, DP_CTL_LIST_LIMIT_DEF, &limit))
        return "limit must be an integer in 1..1000";
    cmd->limit = (unsigned)limit;
    json_t *ja = json_object_get(req, "after");
    if (ja && (!json_is_string(ja) ||
               !dp_ctl_parse_cursor(json_string_value(ja), json_string_length(ja), partitions,
                                    &cmd->after_partition, &cmd->after_cursor)))
        return "after must be a cursor \"P:C\" from a previous page";
    cmd->has_type = json_object_get(req, "type") != NULL;
    if (cmd->has_type && !dp_ctl_parse_name(req, "type", 0, DP_CTL_TYPE_LEN_MAX, cmd->type,
                                            sizeof(cmd->type), &cmd->type_len))
        return "type must be a string of at most 32 bytes";
    cmd->has_state = json_object_get(req, "state") != NULL;
    if (cmd->has_state && !dp_ctl_parse_name(req, "state", 0, DP_CTL_STATE_LEN_MAX, cmd->state,
                                             sizeof(cmd->state), NULL))
        return "state must be a string of at most 31 bytes";
    return NULL;
}

static const char *dp_ctl_parse_deploy(json_t *req, struct dp_ctl_cmd *cmd)
{
    json_t *jf = json_object_get(req, "file"), *js = json_object_get(req, "source");
    if (!json_is_string(jf) || !json_is_string(js))
        return "deploy needs \"file\" and \"source\"";
    size_t flen = json_string_length(jf);
    if (flen == 0 || flen > DP_CTL_FILE_LEN_MAX || memchr(json_string_value(jf), '\0', flen))
        return "deploy: \"file\" must be 1..4096 bytes without NUL";
    cmd->source = json_string_value(js);
    cmd->source_len = json_string_length(js);
    if (memchr(cmd->source, '\0', cmd->source_len))
        return "deploy: \"source\" must be text without NUL bytes";
    cmd->file = json_string_value(jf);
    return NULL;
}

static const char *dp_ctl_parse_activity(json_t *req, struct dp_ctl_cmd *cmd)
{
    static const char *usage = "activity needs type, id, seq > 0 and outcome done|failed";
    json_int_t seq, result;
    char outcome[8];
    if (!dp_ctl_parse_type_id(req, cmd) || !json_object_get(req, "seq") ||
        !dp_ctl_parse_int(req, "seq", 1, UINT32_MAX, 0, &seq) ||
        !dp_ctl_parse_name(req, "outcome", 4, 6, outcome, sizeof(outcome), NULL) ||
        (strcmp(outcome, "done") != 0 && strcmp(outcome, "failed") != 0))
        return usage;
    if (!dp_ctl_parse_int(req, "result", INT64_MIN, INT64_MAX, 0, &result))
        return "activity: \"result\" must be an integer";
    cmd->seq = (uint32_t)seq;
    cmd->failed = outcome[0] == 'f';
    cmd->result = result;
    return NULL;
}

static const char *dp_ctl_parse_fault(json_t *req, struct dp_ctl_cmd *cmd)
{
    json_int_t skip, seed;
    if (!dp_ctl_parse_name(req, "kind", 1, DP_CTL_FAULT_LEN_MAX, cmd->fault_kind,
                           sizeof(cmd->fault_kind), NULL) ||
        !dp_ctl_parse_int(req, "skip", 0, UINT32_MAX, 0, &skip) ||
        !dp_ctl_parse_int(req, "seed", INT64_MIN, INT64_MAX, 0, &seed))
        return "fault needs \"kind\" and optional \"skip\", \"seed\"";
    cmd->fault_skip = (uint32_t)skip;
    cmd->fault_seed = (uint64_t)seed;
    return NULL;
}

/* A tune request's shape only: the key's range, unit and whether it exists are the table's
 * (dp_tune.c), so that the configuration file and `tune` answer alike. */
static const char *dp_ctl_parse_tune(json_t *req, struct dp_ctl_cmd *cmd)
{
    json_t *jv = json_object_get(req, "value");
    if (!json_is_string(json_object_get(req, "key")) || !json_is_integer(jv) ||
        json_integer_value(jv) < 0)
        return "tune needs \"key\" and a non-negative integer \"value\"";
    if (!dp_ctl_parse_name(req, "key", 1, DP_CTL_TUNE_KEY_LEN_MAX, cmd->tune_key,
                           sizeof(cmd->tune_key), NULL))
        return "unknown key (" DP_CTL_TUNE_KEYS ")";
    cmd->tune_value = (uint64_t)json_integer_value(jv);
    return NULL;
}

/* The arguments of cmd->kind; NULL or the refusal. */
static const char *dp_ctl_parse_args(json_t *req, uint32_t partitions, struct dp_ctl_cmd *cmd)
{
    json_int_t limit;
    switch (cmd->kind) {
    case DP_CTL_CMD_DESCRIBE:
        if (!dp_ctl_parse_type_id(req, cmd))
            return "describe needs \"type\" (1..32 bytes) and \"id\" (1..64 bytes)";
        return NULL;
    case DP_CTL_CMD_HISTORY:
        return dp_ctl_parse_history(req, cmd);
    case DP_CTL_CMD_DELETE:
        if (!dp_ctl_parse_type_id(req, cmd))
            return "delete needs \"type\" (1..32 bytes) and \"id\" (1..64 bytes)";
        return NULL;
    case DP_CTL_CMD_LIST:
        return dp_ctl_parse_list(req, partitions, cmd);
    case DP_CTL_CMD_DEPLOY:
        return dp_ctl_parse_deploy(req, cmd);
    case DP_CTL_CMD_ACTIVITIES:
        if (!dp_ctl_parse_int(req, "limit", 1, DP_CTL_LIST_LIMIT_MAX, DP_CTL_LIST_LIMIT_DEF,
                              &limit))
            return "limit must be an integer in 1..1000";
        cmd->limit = (unsigned)limit;
        return NULL;
    case DP_CTL_CMD_ACTIVITY:
        return dp_ctl_parse_activity(req, cmd);
    case DP_CTL_CMD_FAULT:
        return dp_ctl_parse_fault(req, cmd);
    case DP_CTL_CMD_TUNE:
        return dp_ctl_parse_tune(req, cmd);
    case DP_CTL_CMD_STATS:
    case DP_CTL_CMD_DEFINITIONS:
    case DP_CTL_CMD_PING:
    case DP_CTL_CMD_KEYS_RELOAD:
    case DP_CTL_CMD_COUNT:
        break;
    }
    return NULL;
}

int dp_ctl_parse(const char *line, size_t len, uint32_t partitions, struct dp_ctl_cmd *cmd,
                 const char **error)
{
    memset(cmd, 0, sizeof(*cmd));
    *error = NULL;
    if (len > DP_CTL_LINE_MAX) {
        *error = "request line too long (at most 2097152 bytes)";
        return -EMSGSIZE;
    }
    json_error_t jerr;
    json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(req)) {
        json_decref(req);
        *error = "request is not a JSON object";
        return -EINVAL;
    }
    json_t *jc = json_object_get(req, "cmd");
    const char *name = json_string_value(jc);
    if (!name) {
        json_decref(req);
        *error = "missing \"cmd\"";
        return -EINVAL;
    }
    cmd->kind = DP_CTL_CMD_COUNT;
    for (unsigned k = 0; k < DP_CTL_CMD_COUNT; k++)
        if (json_string_length(jc) == strlen(dp_ctl_cmd_names[k]) &&
            strcmp(name, dp_ctl_cmd_names[k]) == 0)
            cmd->kind = (enum dp_ctl_cmd_kind)k;
    const char *refused =
        cmd->kind == DP_CTL_CMD_COUNT ? "unknown command" : dp_ctl_parse_args(req, partitions, cmd);
    if (refused) {
        json_decref(req);
        memset(cmd, 0, sizeof(*cmd));
        *error = refused;
        return -EINVAL;
    }
    cmd->root = req;
    return 0;
}

void dp_ctl_cmd_release(struct dp_ctl_cmd *cmd)
{
    if (!cmd)
        return;
    json_decref(cmd->root);
    cmd->root = NULL;
    cmd->file = NULL;
    cmd->source = NULL;
}
