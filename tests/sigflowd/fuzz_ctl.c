/*
 * fuzz_ctl.c — libFuzzer target for the control socket's request parser (dp_ctl_parse.h):
 * any line is a command with arguments inside their limits, or a refusal that makes a
 * well-formed {"ok":false,"error":...} reply. Nothing crashes, leaks or reads past the line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_ctl_parse.h"

#define FUZZ_PARTITIONS 64u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) \
    do {                 \
        if (!(cond))     \
            abort();     \
    } while (0)

static void fuzz_ctl_check_refusal(const char *error)
{
    FUZZ_CHECK(error && error[0]);
    json_t *reply = json_pack("{s:b, s:s}", "ok", 0, "error", error);
    FUZZ_CHECK(reply);
    char *text = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    FUZZ_CHECK(text);
    json_t *back = json_loads(text, 0, NULL);
    FUZZ_CHECK(json_is_false(json_object_get(back, "ok")));
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(back, "error")), error) == 0);
    json_decref(back);
    free(text);
}

static void fuzz_ctl_check_cmd(const struct dp_ctl_cmd *c)
{
    FUZZ_CHECK((unsigned)c->kind < DP_CTL_CMD_COUNT && c->root);
    FUZZ_CHECK(c->type_len <= DP_CTL_TYPE_LEN_MAX && strlen(c->type) == c->type_len);
    FUZZ_CHECK(c->id_len <= DP_CTL_ID_LEN_MAX && strlen(c->id) == c->id_len);
    FUZZ_CHECK(strlen(c->state) <= DP_CTL_STATE_LEN_MAX);
    switch (c->kind) {
    case DP_CTL_CMD_DESCRIBE:
    case DP_CTL_CMD_HISTORY:
    case DP_CTL_CMD_ACTIVITY:
        FUZZ_CHECK(c->type_len > 0 && c->id_len > 0);
        FUZZ_CHECK(c->kind != DP_CTL_CMD_HISTORY ||
                   (c->limit >= 1 && c->limit <= DP_CTL_HISTORY_LIMIT_MAX));
        FUZZ_CHECK(c->kind != DP_CTL_CMD_ACTIVITY || c->seq > 0);
        break;
    case DP_CTL_CMD_LIST:
    case DP_CTL_CMD_ACTIVITIES:
        FUZZ_CHECK(c->limit >= 1 && c->limit <= DP_CTL_LIST_LIMIT_MAX);
        FUZZ_CHECK(c->after_partition < FUZZ_PARTITIONS);
        break;
    case DP_CTL_CMD_DEPLOY:
        FUZZ_CHECK(c->file && c->source);
        FUZZ_CHECK(strlen(c->file) >= 1 && strlen(c->file) <= DP_CTL_FILE_LEN_MAX);
        FUZZ_CHECK(memchr(c->source, '\0', c->source_len) == NULL);
        break;
    case DP_CTL_CMD_FAULT:
        FUZZ_CHECK(c->fault_kind[0] && strlen(c->fault_kind) <= DP_CTL_FAULT_LEN_MAX);
        break;
    case DP_CTL_CMD_TUNE:
        FUZZ_CHECK(c->tune_key[0] && strlen(c->tune_key) <= DP_CTL_TUNE_KEY_LEN_MAX);
        break;
    default:
        break;
    }
    FUZZ_CHECK(strcmp(dp_ctl_cmd_name(c->kind), "?") != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy: a read past the line is an ASan report */
    char *line = malloc(size ? size : 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    struct dp_ctl_cmd cmd;
    const char *error = NULL;
    if (dp_ctl_parse(line, size, FUZZ_PARTITIONS, &cmd, &error) == 0) {
        fuzz_ctl_check_cmd(&cmd);
        dp_ctl_cmd_release(&cmd);
        FUZZ_CHECK(cmd.root == NULL);
    } else {
        FUZZ_CHECK(cmd.root == NULL);
        fuzz_ctl_check_refusal(error);
    }
    free(line);
    return 0;
}
