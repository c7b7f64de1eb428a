/*
 * flow_scenario — runs one scenario file against one .flow definition (cmocka).
 *
 * usage: flow_scenario FILE.flow FILE.scn
 *
 * A scenario drives one workflow instance through signals, timer firings and activity
 * results and checks its state, variables, queues, timers and the commands emitted after
 * each step. Every step is applied twice: to a record run by the compiled def and to one
 * run by a def reloaded from its serialized blob; both records and command lists must stay
 * identical (the replay/recovery contract). Format (one statement per line, '#' comments):
 *
 *   id TEXT                        workflow id (default "test-1")
 *   at DURATION                    set the clock (no timers fire)
 *   signal NAME [field=VALUE ...]  VALUE: 42, -1.5, true, "text", 15m, null
 *   advance DURATION               move the clock, firing due timers in due order
 *   fire TIMER                     fire the named timer of the current state now
 *   activity NAME done [RESULT] [seq N] | activity NAME failed [seq N]
 *   expect state NAME | expect completed | expect running
 *   expect var NAME == VALUE
 *   expect queue NAME == [V, ...]
 *   expect timer NAME off | expect timer NAME due DURATION
 *   expect activity NAME pending | idle
 *   expect cmds N                  commands emitted by the last step
 *   expect cmd TEXT                one of them equals TEXT:
 *                                    arm TIMER +DUR | cancel TIMER | run ACT#SEQ(args)
 *                                    | cancel ACT#SEQ | complete
 *   expect no cmd PREFIX           none of them starts with PREFIX
 *   expect ok | expect error NAME  result of the last step (completed, bad_index,
 *                                  field_type, no_space, text_too_long)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* messages are truncated on purpose when they are long */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#include "flow.h"

#define SCN_TOKENS_MAX  40
#define SCN_LINE_MAX    1024
#define SCN_CMDS_MAX    256
#define SCN_CMD_TEXT    512
#define SCN_FIRINGS_MAX 10000

static const char *g_flow_path, *g_scn_path;

struct scn {
    struct flow_def *def, *def2;
    uint8_t *rec, *rec2;
    struct vm_cmd *cmds, *cmds2;
    char id[128];
    uint64_t now;
    int last_rc;
    unsigned ncmd_text;
    char cmd_text[SCN_CMDS_MAX][SCN_CMD_TEXT];
    unsigned line;
};

#define SCN_FAIL(s, ...)                                    \
    do {                                                    \
        char msg_[8192];                                    \
        snprintf(msg_, sizeof(msg_), __VA_ARGS__);          \
        fail_msg("%s:%u: %s", g_scn_path, (s)->line, msg_); \
    } while (0)

/* ---- tokens and values ------------------------------------------------------------------ */

static int split(char *line, char **tok, int max)
{
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        tok[n++] = p;
        bool q = false;
        while (*p && (q || (*p != ' ' && *p != '\t'))) {
            if (*p == '"')
                q = !q;
            p++;
        }
        if (*p)
            *p++ = 0;
    }
    return n;
}

static bool parse_duration(const char *s, uint64_t *ns)
{
    uint64_t total = 0;
    const char *p = s;
    if (!*p)
        return false;
    while (*p) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p)
            return false;
        p = end;
        uint64_t unit = 1;
        if (strncmp(p, "ns", 2) == 0)
            unit = 1, p += 2;
        else if (strncmp(p, "us", 2) == 0)
            unit = 1000, p += 2;
        else if (strncmp(p, "ms", 2) == 0)
            unit = 1000000, p += 2;
        else if (*p == 's')
            unit = 1000000000ull, p++;
        else if (*p == 'm')
            unit = 60000000000ull, p++;
        else if (*p == 'h')
            unit = 3600000000000ull, p++;
        else if (*p == 'd')
            unit = 86400000000000ull, p++;
        else if (*p)
            return false;
        total += v * unit;
    }
    *ns = total;
    return true;
}

static void format_duration(uint64_t ns, char *buf, size_t cap)
{
    static const struct {
        const char *u;
        uint64_t ns;
    } units[] = { { "d", 86400000000000ull },
                  { "h", 3600000000000ull },
                  { "m", 60000000000ull },
                  { "s", 1000000000ull },
                  { "ms", 1000000ull },
                  { "us", 1000ull },
                  { "ns", 1ull } };
    if (ns == 0) {
        snprintf(buf, cap, "0s");
        return;
    }
    unsigned u = 0;
    while (ns % units[u].ns)
        u++;
    snprintf(buf, cap, "%llu%s", (unsigned long long)(ns / units[u].ns), units[u].u);
}

/* VALUE into v (text points into s, quotes stripped). */
static bool parse_value(char *s, struct sf_value *v)
{
    memset(v, 0, sizeof(*v));
    size_t n = strlen(s);
    uint64_t ns;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = 0;
        v->type = SF_VAL_TEXT;
        v->text.ptr = s + 1;
        v->text.len = (uint16_t)(n - 2);
        return true;
    }
    if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
        v->type = SF_VAL_BOOL;
        v->b = s[0] == 't';
        return true;
    }
    if (strcmp(s, "null") == 0) {
        v->type = SF_VAL_NULL;
        return true;
    }
    char *end;
    long long i = strtoll(s, &end, 10);
    if (*s && !*end) {
        v->type = SF_VAL_INT;
        v->i = i;
        return true;
    }
    double f = strtod(s, &end);
    if (*s && !*end) {
        v->type = SF_VAL_FLOAT;
        v->f = f;
        return true;
    }
    if (parse_duration(s, &ns)) {
        v->type = SF_VAL_INT;
        v->i = (int64_t)ns;
        return true;
    }
    return false;
}

static void format_value(const struct sf_value *v, char *buf, size_t cap)
{
    switch (v->type) {
    case SF_VAL_INT:
        snprintf(buf, cap, "%lld", (long long)v->i);
        break;
    case SF_VAL_FLOAT:
        snprintf(buf, cap, "%.17g", v->f);
        break;
    case SF_VAL_BOOL:
        snprintf(buf, cap, "%s", v->b ? "true" : "false");
        break;
    case SF_VAL_TEXT:
        snprintf(buf, cap, "\"%.*s\"", (int)v->text.len, v->text.ptr);
        break;
    default:
        snprintf(buf, cap, "null");
    }
}

static bool value_eq(const struct sf_value *a, const struct sf_value *b)
{
    if (a->type == SF_VAL_FLOAT && b->type == SF_VAL_INT)
        return a->f == (double)b->i;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case SF_VAL_INT:
        return a->i == b->i;
    case SF_VAL_FLOAT:
        return a->f == b->f;
    case SF_VAL_BOOL:
        return a->b == b->b;
    case SF_VAL_TEXT:
        return a->text.len == b->text.len && memcmp(a->text.ptr, b->text.ptr, a->text.len) == 0;
    default:
        return true;
    }
}

/* ---- commands --------------------------------------------------------------------------- */

static const char *timer_name(const struct scn *s, unsigned state, unsigned slot)
{
    struct flow_timer_info ti;
    if (flow_def_timer(s->def, state, slot, &ti) == 0)
        return ti.name;
    return "?";
}

static void format_cmd(const struct scn *s, const struct vm_cmd *c, unsigned state_before,
                       unsigned state_after, uint64_t at, char *buf, size_t cap)
{
    struct flow_activity_info ai;
    char d[32];
    switch (c->kind) {
    case VM_CMD_TIMER_ARM:
        format_duration(c->due_ns - at, d, sizeof(d));
        snprintf(buf, cap, "arm %s +%s", timer_name(s, state_after, c->index), d);
        break;
    case VM_CMD_TIMER_CANCEL:
        snprintf(buf, cap, "cancel %s", timer_name(s, state_before, c->index));
        break;
    case VM_CMD_ACTIVITY_RUN: {
        flow_def_activity(s->def, c->index, &ai);
        int n = snprintf(buf, cap, "run %s#%u(", ai.name, c->seq);
        for (unsigned i = 0; i < c->nargs && n > 0 && (size_t)n < cap; i++) {
            char v[300];
            format_value(&c->args[i], v, sizeof(v));
            n += snprintf(buf + n, cap - (size_t)n, "%s%s", i ? ", " : "", v);
        }
        if (n > 0 && (size_t)n < cap)
            snprintf(buf + n, cap - (size_t)n, ")");
        break;
    }
    case VM_CMD_ACTIVITY_CANCEL:
        flow_def_activity(s->def, c->index, &ai);
        snprintf(buf, cap, "cancel %s#%u", ai.name, c->seq);
        break;
    case VM_CMD_COMPLETE:
        snprintf(buf, cap, "complete");
        break;
    default:
        snprintf(buf, cap, "bad command kind %u", c->kind);
    }
}

static void same_cmds(struct scn *s, int n)
{
    for (int i = 0; i < n; i++) {
        const struct vm_cmd *a = &s->cmds[i], *b = &s->cmds2[i];
        if (a->kind != b->kind || a->index != b->index || a->seq != b->seq ||
            a->due_ns != b->due_ns || a->nargs != b->nargs)
            SCN_FAIL(s, "replayed def emitted a different command %d", i);
        for (unsigned k = 0; k < a->nargs; k++)
            if (!value_eq(&a->args[k], &b->args[k]))
                SCN_FAIL(s, "replayed def emitted different argument %u of command %d", k, i);
    }
}

/* After both records ran a step: compare, check, and record the command texts. */
static void after_step(struct scn *s, int rc, int rc2, unsigned state_before, uint64_t at,
                       bool append)
{
    if (rc != rc2)
        SCN_FAIL(s, "replayed def returned %d, original %d", rc2, rc);
    if (memcmp(s->rec, s->rec2, flow_def_record_size(s->def)) != 0)
        SCN_FAIL(s, "record differs from the one run by the reloaded def");
    if (vm_record_check(s->def, s->rec) != 0)
        SCN_FAIL(s, "record fails vm_record_check");
    if (!append) {
        s->ncmd_text = 0;
        s->last_rc = rc;
    } else if (rc < 0) {
        s->last_rc = rc;
    }
    if (rc <= 0)
        return;
    same_cmds(s, rc);
    unsigned state_after = vm_record_state(s->def, s->rec);
    for (int i = 0; i < rc; i++) {
        if (s->ncmd_text == SCN_CMDS_MAX)
            SCN_FAIL(s, "more than %u commands in one step", SCN_CMDS_MAX);
        format_cmd(s, &s->cmds[i], state_before, state_after, at, s->cmd_text[s->ncmd_text],
                   SCN_CMD_TEXT);
        if (getenv("FLOW_SCENARIO_VERBOSE"))
            fprintf(stderr, "  %u: %s\n", s->line, s->cmd_text[s->ncmd_text]);
        s->ncmd_text++;
    }
    /* every command is consistent with the record */
    for (int i = 0; i < rc; i++) {
        const struct vm_cmd *c = &s->cmds[i];
        if (c->kind == VM_CMD_TIMER_ARM && c->due_ns <= at)
            SCN_FAIL(s, "timer armed in the past");
    }
}

/* ---- steps ------------------------------------------------------------------------------ */

static void step_signal(struct scn *s, char **tok, int n)
{
    int sig = flow_def_signal_index(s->def, tok[1], strlen(tok[1]));
    if (sig < 0)
        SCN_FAIL(s, "unknown signal '%s'", tok[1]);
    struct sf_value fields[FLOW_FIELDS_MAX];
    unsigned nf = (unsigned)flow_def_signal_field_count(s->def, (unsigned)sig);
    for (unsigned i = 0; i < nf; i++)
        fields[i].type = SF_VAL_NULL;
    for (int i = 2; i < n; i++) {
        char *eq = strchr(tok[i], '=');
        if (!eq)
            SCN_FAIL(s, "expected field=value, got '%s'", tok[i]);
        *eq = 0;
        int f = flow_def_signal_field_index(s->def, (unsigned)sig, tok[i], strlen(tok[i]));
        if (f < 0)
            SCN_FAIL(s, "signal '%s' has no field '%s'", tok[1], tok[i]);
        if (!parse_value(eq + 1, &fields[f]))
            SCN_FAIL(s, "bad value '%s'", eq + 1);
    }
    unsigned before = vm_record_state(s->def, s->rec);
    int rc = vm_run_signal(s->def, s->rec, (unsigned)sig, fields, nf, s->id, strlen(s->id), s->now,
                           s->cmds, SCN_CMDS_MAX);
    int rc2 = vm_run_signal(s->def2, s->rec2, (unsigned)sig, fields, nf, s->id, strlen(s->id),
                            s->now, s->cmds2, SCN_CMDS_MAX);
    after_step(s, rc, rc2, before, s->now, false);
}

static void fire_slot(struct scn *s, unsigned slot, uint64_t due, bool append)
{
    unsigned before = vm_record_state(s->def, s->rec);
    s->now = due;
    int rc = vm_run_timer(s->def, s->rec, slot, due, s->id, strlen(s->id), s->cmds, SCN_CMDS_MAX);
    int rc2 =
        vm_run_timer(s->def2, s->rec2, slot, due, s->id, strlen(s->id), s->cmds2, SCN_CMDS_MAX);
    after_step(s, rc, rc2, before, due, append);
}

static void step_advance(struct scn *s, const char *dur)
{
    uint64_t d;
    if (!parse_duration(dur, &d))
        SCN_FAIL(s, "bad duration '%s'", dur);
    uint64_t until = s->now + d;
    s->ncmd_text = 0;
    s->last_rc = 0;
    for (unsigned k = 0; k < SCN_FIRINGS_MAX; k++) {
        unsigned nslots = flow_def_timer_slot_count(s->def), best = 0;
        uint64_t best_due = 0;
        for (unsigned i = 0; i < nslots; i++) {
            uint64_t due = vm_record_timer_due(s->def, s->rec, i);
            if (due && due <= until && (!best_due || due < best_due))
                best = i, best_due = due;
        }
        if (!best_due || vm_record_completed(s->def, s->rec))
            break;
        fire_slot(s, best, best_due, true);
    }
    s->now = until;
}

static void step_fire(struct scn *s, const char *name)
{
    unsigned st = vm_record_state(s->def, s->rec);
    for (unsigned i = 0; i < flow_def_timer_slot_count(s->def); i++) {
        struct flow_timer_info ti;
        if (flow_def_timer(s->def, st, i, &ti) == 0 && strcmp(ti.name, name) == 0) {
            uint64_t due = vm_record_timer_due(s->def, s->rec, i);
            if (!due)
                SCN_FAIL(s, "timer '%s' is not armed", name);
            fire_slot(s, i, due, false);
            return;
        }
    }
    SCN_FAIL(s, "no timer '%s' in the current state", name);
}

static void step_activity(struct scn *s, char **tok, int n)
{
    if (n < 3)
        SCN_FAIL(s, "usage: activity NAME done [RESULT] [seq N] | failed [seq N]");
    int a = flow_def_activity_index(s->def, tok[1], strlen(tok[1]));
    if (a < 0)
        SCN_FAIL(s, "unknown activity '%s'", tok[1]);
    uint32_t seq = 0;
    vm_record_activity(s->def, s->rec, (unsigned)a, &seq, NULL);
    int64_t result = 0;
    for (int i = 3; i < n; i++) {
        if (strcmp(tok[i], "seq") == 0 && i + 1 < n)
            seq = (uint32_t)strtoul(tok[++i], NULL, 10);
        else
            result = strtoll(tok[i], NULL, 10);
    }
    unsigned before = vm_record_state(s->def, s->rec);
    int rc, rc2;
    if (strcmp(tok[2], "done") == 0) {
        rc = vm_run_activity_done(s->def, s->rec, (unsigned)a, seq, result, s->id, strlen(s->id),
                                  s->now, s->cmds, SCN_CMDS_MAX);
        rc2 = vm_run_activity_done(s->def2, s->rec2, (unsigned)a, seq, result, s->id, strlen(s->id),
                                   s->now, s->cmds2, SCN_CMDS_MAX);
    } else if (strcmp(tok[2], "failed") == 0) {
        rc = vm_run_activity_failed(s->def, s->rec, (unsigned)a, seq, s->id, strlen(s->id), s->now,
                                    s->cmds, SCN_CMDS_MAX);
        rc2 = vm_run_activity_failed(s->def2, s->rec2, (unsigned)a, seq, s->id, strlen(s->id),
                                     s->now, s->cmds2, SCN_CMDS_MAX);
    } else {
        SCN_FAIL(s, "expected done or failed, got '%s'", tok[2]);
        return;
    }
    after_step(s, rc, rc2, before, s->now, false);
}

/* ---- expectations ----------------------------------------------------------------------- */

static const char *err_name(int rc)
{
    switch (rc) {
    case VM_ERR_COMPLETED:
        return "completed";
    case VM_ERR_BAD_INDEX:
        return "bad_index";
    case VM_ERR_FIELD_TYPE:
        return "field_type";
    case VM_ERR_NO_SPACE:
        return "no_space";
    case VM_ERR_TEXT_TOO_LONG:
        return "text_too_long";
    default:
        return rc < 0 ? "other" : "ok";
    }
}

static int find_named(const struct scn *s, const char *name, bool queue)
{
    unsigned n = queue ? flow_def_queue_count(s->def) : flow_def_var_count(s->def);
    for (unsigned i = 0; i < n; i++) {
        struct flow_var_info vi;
        if (queue)
            flow_def_queue(s->def, i, &vi);
        else
            flow_def_var(s->def, i, &vi);
        if (strcmp(vi.name, name) == 0)
            return (int)i;
    }
    return -1;
}

static void expect_queue(struct scn *s, char **tok, int n)
{
    int q = find_named(s, tok[2], true);
    if (q < 0 || n < 4 || strcmp(tok[3], "==") != 0)
        SCN_FAIL(s, "usage: expect queue NAME == [V, ...] (queue '%s')", tok[2]);
    /* re-join the list and split on commas */
    char list[SCN_LINE_MAX] = "";
    for (int i = 4; i < n; i++) {
        strncat(list, tok[i], sizeof(list) - strlen(list) - 2);
        strcat(list, " ");
    }
    char *p = strchr(list, '['), *end = strrchr(list, ']');
    if (!p || !end)
        SCN_FAIL(s, "queue list needs [ ]");
    *end = 0;
    p++;
    unsigned len = vm_record_queue_len(s->def, s->rec, (unsigned)q), k = 0;
    /* split on commas outside quotes */
    char *items[FLOW_QUEUE_CAP_MAX + 1];
    unsigned nitems = 0;
    bool quoted = false;
    items[nitems++] = p;
    for (char *c = p; *c; c++) {
        if (*c == '"')
            quoted = !quoted;
        else if (*c == ',' && !quoted && nitems <= FLOW_QUEUE_CAP_MAX) {
            *c = 0;
            items[nitems++] = c + 1;
        }
    }
    for (unsigned it = 0; it < nitems; it++) {
        char *item = items[it];
        while (*item == ' ')
            item++;
        char *e = item + strlen(item);
        while (e > item && e[-1] == ' ')
            *--e = 0;
        if (!*item)
            continue;
        struct sf_value want, got;
        if (!parse_value(item, &want))
            SCN_FAIL(s, "bad value '%s'", item);
        if (k >= len)
            SCN_FAIL(s, "queue %s has %u items, expected more", tok[2], len);
        vm_record_queue_item(s->def, s->rec, (unsigned)q, k, &got);
        if (!value_eq(&got, &want)) {
            char a[300], b[300];
            format_value(&got, a, sizeof(a));
            format_value(&want, b, sizeof(b));
            SCN_FAIL(s, "queue %s item %u is %s, expected %s", tok[2], k, a, b);
        }
        k++;
    }
    if (k != len)
        SCN_FAIL(s, "queue %s has %u items, expected %u", tok[2], len, k);
}

static void expect_timer(struct scn *s, char **tok, int n)
{
    unsigned st = vm_record_state(s->def, s->rec);
    for (unsigned i = 0; i < flow_def_timer_slot_count(s->def); i++) {
        struct flow_timer_info ti;
        if (flow_def_timer(s->def, st, i, &ti) != 0 || strcmp(ti.name, tok[2]) != 0)
            continue;
        uint64_t due = vm_record_timer_due(s->def, s->rec, i), want;
        if (n >= 4 && strcmp(tok[3], "off") == 0) {
            if (due)
                SCN_FAIL(s, "timer %s is armed", tok[2]);
        } else if (n >= 5 && strcmp(tok[3], "due") == 0 && parse_duration(tok[4], &want)) {
            char a[32];
            format_duration(due, a, sizeof(a));
            if (due != want)
                SCN_FAIL(s, "timer %s is due at %s, expected %s", tok[2], due ? a : "off", tok[4]);
        } else {
            SCN_FAIL(s, "usage: expect timer NAME off | due DURATION");
        }
        return;
    }
    SCN_FAIL(s, "no timer '%s' in the current state", tok[2]);
}

static void expect_line(struct scn *s, char **tok, int n, char *raw)
{
    const char *what = tok[1];
    if (strcmp(what, "state") == 0 && n == 3) {
        const char *st = flow_def_state_name(s->def, vm_record_state(s->def, s->rec));
        if (strcmp(st, tok[2]) != 0)
            SCN_FAIL(s, "state is %s, expected %s", st, tok[2]);
    } else if (strcmp(what, "completed") == 0 || strcmp(what, "running") == 0) {
        bool c = vm_record_completed(s->def, s->rec);
        if (c != (what[0] == 'c'))
            SCN_FAIL(s, "instance is %s", c ? "completed" : "running");
    } else if (strcmp(what, "var") == 0 && n == 5 && strcmp(tok[3], "==") == 0) {
        int v = find_named(s, tok[2], false);
        struct sf_value want, got;
        if (v < 0)
            SCN_FAIL(s, "unknown variable '%s'", tok[2]);
        if (!parse_value(tok[4], &want))
            SCN_FAIL(s, "bad value '%s'", tok[4]);
        vm_record_var(s->def, s->rec, (unsigned)v, &got);
        if (!value_eq(&got, &want)) {
            char a[300];
            format_value(&got, a, sizeof(a));
            SCN_FAIL(s, "var %s is %s, expected %s", tok[2], a, tok[4]);
        }
    } else if (strcmp(what, "queue") == 0 && n >= 4) {
        expect_queue(s, tok, n);
    } else if (strcmp(what, "timer") == 0 && n >= 4) {
        expect_timer(s, tok, n);
    } else if (strcmp(what, "activity") == 0 && n == 4) {
        int a = flow_def_activity_index(s->def, tok[2], strlen(tok[2]));
        if (a < 0)
            SCN_FAIL(s, "unknown activity '%s'", tok[2]);
        bool p = vm_record_activity(s->def, s->rec, (unsigned)a, NULL, NULL);
        if (p != (strcmp(tok[3], "pending") == 0))
            SCN_FAIL(s, "activity %s is %s", tok[2], p ? "pending" : "idle");
    } else if (strcmp(what, "cmds") == 0 && n == 3) {
        if (s->ncmd_text != (unsigned)atoi(tok[2])) {
            char all[4096] = "";
            for (unsigned i = 0; i < s->ncmd_text; i++) {
                strncat(all, s->cmd_text[i], sizeof(all) - strlen(all) - 3);
                strcat(all, "; ");
            }
            SCN_FAIL(s, "%u commands, expected %s: %s", s->ncmd_text, tok[2], all);
        }
    } else if (strcmp(what, "cmd") == 0 && n >= 3) {
        const char *text = strstr(raw, "cmd") + 3;
        while (*text == ' ')
            text++;
        for (unsigned i = 0; i < s->ncmd_text; i++)
            if (strcmp(s->cmd_text[i], text) == 0)
                return;
        char all[4096] = "";
        for (unsigned i = 0; i < s->ncmd_text; i++) {
            strncat(all, s->cmd_text[i], sizeof(all) - strlen(all) - 3);
            strcat(all, "; ");
        }
        SCN_FAIL(s, "no command '%s' among: %s", text, all);
    } else if (strcmp(what, "no") == 0 && n >= 4 && strcmp(tok[2], "cmd") == 0) {
        const char *prefix = strstr(raw, " cmd") + 4;
        while (*prefix == ' ')
            prefix++;
        for (unsigned i = 0; i < s->ncmd_text; i++)
            if (strncmp(s->cmd_text[i], prefix, strlen(prefix)) == 0)
                SCN_FAIL(s, "unexpected command '%s'", s->cmd_text[i]);
    } else if (strcmp(what, "ok") == 0) {
        if (s->last_rc < 0)
            SCN_FAIL(s, "last step failed: %s", err_name(s->last_rc));
    } else if (strcmp(what, "error") == 0 && n == 3) {
        if (strcmp(err_name(s->last_rc), tok[2]) != 0)
            SCN_FAIL(s, "last step gave %s, expected error %s", err_name(s->last_rc), tok[2]);
    } else {
        SCN_FAIL(s, "unknown expectation");
    }
}

static void run_line(struct scn *s, char *line)
{
    char raw[SCN_LINE_MAX];
    snprintf(raw, sizeof(raw), "%s", line);
    char *hash = NULL;
    /* strip a comment: '#' outside quotes at the start or after a blank (not "run a#1") */
    bool q = false;
    for (char *p = raw; *p; p++) {
        if (*p == '"')
            q = !q;
        if (*p == '#' && !q && (p == raw || p[-1] == ' ' || p[-1] == '\t')) {
            hash = p;
            break;
        }
    }
    if (hash)
        *hash = 0;
    for (size_t n = strlen(raw); n && (raw[n - 1] == ' ' || raw[n - 1] == '\n'); n--)
        raw[n - 1] = 0;
    char copy[SCN_LINE_MAX];
    snprintf(copy, sizeof(copy), "%s", raw);
    char *tok[SCN_TOKENS_MAX];
    int n = split(copy, tok, SCN_TOKENS_MAX);
    if (n == 0)
        return;
    uint64_t d;
    if (strcmp(tok[0], "id") == 0 && n == 2) {
        snprintf(s->id, sizeof(s->id), "%s", tok[1]);
    } else if (strcmp(tok[0], "at") == 0 && n == 2 && parse_duration(tok[1], &d)) {
        s->now = d;
    } else if (strcmp(tok[0], "signal") == 0 && n >= 2) {
        step_signal(s, tok, n);
    } else if (strcmp(tok[0], "advance") == 0 && n == 2) {
        step_advance(s, tok[1]);
    } else if (strcmp(tok[0], "fire") == 0 && n == 2) {
        step_fire(s, tok[1]);
    } else if (strcmp(tok[0], "activity") == 0) {
        step_activity(s, tok, n);
    } else if (strcmp(tok[0], "expect") == 0 && n >= 2) {
        expect_line(s, tok, n, raw);
    } else {
        SCN_FAIL(s, "unknown statement '%s'", tok[0]);
    }
}

static void test_scenario(void **state)
{
    (void)state;
    struct scn *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    struct flow_errors *errs = calloc(1, sizeof(*errs));
    assert_non_null(errs);
    int rc = flow_compile_file(g_flow_path, &s->def, errs);
    for (unsigned i = 0; rc != 0 && i < errs->count; i++)
        fprintf(stderr, "%s\n", errs->err[i].text);
    assert_int_equal(rc, 0);
    const void *blob;
    size_t len;
    flow_def_serialize(s->def, &blob, &len);
    assert_int_equal(flow_def_load(blob, len, &s->def2), 0);
    size_t rs = flow_def_record_size(s->def);
    s->rec = aligned_alloc(8, rs);
    s->rec2 = aligned_alloc(8, rs);
    s->cmds = calloc(SCN_CMDS_MAX, sizeof(struct vm_cmd));
    s->cmds2 = calloc(SCN_CMDS_MAX, sizeof(struct vm_cmd));
    assert_true(s->rec && s->rec2 && s->cmds && s->cmds2);
    assert_true(flow_def_cmds_max(s->def) <= SCN_CMDS_MAX);
    snprintf(s->id, sizeof(s->id), "test-1");
    s->now = 1000000000ull; /* 1s */
    vm_record_init(s->def, s->rec, s->id, strlen(s->id), s->now);
    vm_record_init(s->def2, s->rec2, s->id, strlen(s->id), s->now);
    FILE *f = fopen(g_scn_path, "r");
    if (!f)
        fail_msg("cannot open %s", g_scn_path);
    char line[SCN_LINE_MAX];
    unsigned steps = 0;
    while (fgets(line, sizeof(line), f)) {
        s->line++;
        run_line(s, line);
        steps++;
    }
    fclose(f);
    assert_true(steps > 0);
    free(s->rec), free(s->rec2), free(s->cmds), free(s->cmds2);
    flow_def_free(s->def), flow_def_free(s->def2);
    free(errs), free(s);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s FILE.flow FILE.scn\n", argv[0]);
        return 64;
    }
    g_flow_path = argv[1];
    g_scn_path = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenario),
    };
    return cmocka_run_group_tests_name(g_scn_path, tests, NULL, NULL);
}
