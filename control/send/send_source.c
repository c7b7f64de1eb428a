/*
 * send_source.c — event sources of sigflow-send (command line, file, fleet).
 *
 * File format: one event per line, `TYPE ID SIGNAL EVENT_ID [VALUE...]`, separated by
 * spaces or tabs; '#' starts a comment (whole line or after the fields); blank lines are
 * skipped. Values are typed by send_value_parse.
 */
#include "send_source.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool send_is_name(const char *s, size_t n)
{
    if (n == 0 || n > SF_SIGNAL_LEN_MAX || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    }
    return true;
}

void send_value_parse(const char *s, bool allow_name, struct send_value *out)
{
    out->name[0] = '\0';
    const char *eq = allow_name ? strchr(s, '=') : NULL;
    if (eq != NULL && send_is_name(s, (size_t)(eq - s))) {
        memcpy(out->name, s, (size_t)(eq - s));
        out->name[eq - s] = '\0';
        s = eq + 1;
    }
    struct sf_value *v = &out->value;
    char *end;
    if (*s != '\0' && !isspace((unsigned char)*s)) {
        errno = 0;
        long long i = strtoll(s, &end, 10);
        if (*end == '\0' && errno == 0) {
            v->type = SF_VAL_INT;
            v->i = i;
            return;
        }
        bool numeric = strspn(s, "+-0123456789.eE") == strlen(s) && strpbrk(s, "0123456789");
        if (numeric) {
            double d = strtod(s, &end);
            if (*end == '\0') {
                v->type = SF_VAL_FLOAT;
                v->f = d;
                return;
            }
        }
    }
    if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
        v->type = SF_VAL_BOOL;
        v->b = s[0] == 't';
        return;
    }
    size_t n = strlen(s);
    v->type = SF_VAL_TEXT;
    v->text.ptr = s;
    v->text.len = (uint16_t)(n > UINT16_MAX ? UINT16_MAX : n);
}

/* Time-ordered default event id: nanoseconds since the epoch. */
static uint64_t send_now_event_id(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t send_now_ns(void)
{
    return send_now_event_id();
}

/* Fill ev's names; returns 0 or -EINVAL with a message. */
static int send_set_names(struct sf_event *ev, const char *type, const char *id, const char *signal,
                          const char *where)
{
    size_t tl = strlen(type), il = strlen(id), sl = strlen(signal);
    if (!sf_name_valid_type(type, tl)) {
        fprintf(stderr, "%sbad workflow type '%s' (1..%u of [A-Za-z0-9_.-])\n", where, type,
                SF_TYPE_LEN_MAX);
        return -EINVAL;
    }
    if (!sf_name_valid_id(id, il)) {
        fprintf(stderr, "%sbad workflow id '%s' (1..%u bytes, no controls, '\"' or '\\')\n", where,
                id, SF_ID_LEN_MAX);
        return -EINVAL;
    }
    if (!sf_name_valid_signal(signal, sl)) {
        fprintf(stderr, "%sbad signal '%s' (1..%u of [A-Za-z0-9_.-])\n", where, signal,
                SF_SIGNAL_LEN_MAX);
        return -EINVAL;
    }
    ev->type = type;
    ev->type_len = (uint8_t)tl;
    ev->id = id;
    ev->id_len = (uint8_t)il;
    ev->signal = signal;
    ev->signal_len = (uint8_t)sl;
    return 0;
}

/* Encode values into src->fields and point ev at them. */
static int send_set_fields(struct send_source *src, struct sf_event *ev,
                           const struct sf_value *vals, unsigned n, const char *where)
{
    int len = sf_fields_encode(src->fields, sizeof(src->fields), vals, n);
    if (len < 0) {
        fprintf(stderr, "%sfield values take more than %u bytes\n", where, SF_FIELDS_LEN_MAX);
        return -EINVAL;
    }
    ev->fields = src->fields;
    ev->fields_len = (uint16_t)len;
    return 0;
}

int send_source_one(struct send_source *src, const char *type, const char *id, const char *signal,
                    uint64_t event_id, const struct send_value *vals, unsigned n_vals)
{
    assert(n_vals <= SEND_VALUES_MAX);
    memset(src, 0, sizeof(*src));
    src->kind = SEND_SOURCE_ONE;
    struct sf_event *ev = &src->one.ev;
    if (send_set_names(ev, type, id, signal, "sigflow-send: ") < 0)
        return -EINVAL;
    struct sf_value v[SEND_VALUES_MAX];
    for (unsigned i = 0; i < n_vals; i++)
        v[i] = vals[i].value;
    if (send_set_fields(src, ev, v, n_vals, "sigflow-send: ") < 0)
        return -EINVAL;
    ev->event_id = event_id != 0 ? event_id : send_now_event_id();
    ev->has_event_id = true;
    return 0;
}

void send_source_file(struct send_source *src, FILE *f, const char *name)
{
    memset(src, 0, sizeof(*src));
    src->kind = SEND_SOURCE_FILE;
    src->file = f;
    src->file_name = name;
}

int send_source_fleet(struct send_source *src, const struct send_fleet *fleet)
{
    memset(src, 0, sizeof(*src));
    src->kind = SEND_SOURCE_FLEET;
    src->fleet = *fleet;
    char last[SF_ID_LEN_MAX * 2];
    int n = snprintf(last, sizeof(last), "%s%06" PRIu64, fleet->prefix,
                     fleet->first + (fleet->count ? fleet->count - 1 : 0));
    struct sf_event probe;
    if (n < 0 || (size_t)n >= sizeof(last) ||
        send_set_names(&probe, fleet->type, last, fleet->signal, "fleet: ") < 0)
        return -EINVAL;
    return 0;
}

/* Parse one non-empty file line into *out; returns 1, 0 (blank/comment) or -EINVAL. */
static int send_file_line(struct send_source *src, struct send_event *out)
{
    char where[256];
    snprintf(where, sizeof(where), "%s:%lu: ", src->file_name, src->line_no);
    char *hash = strchr(src->line, '#');
    if (hash != NULL)
        *hash = '\0';
    char *tok[4 + SEND_VALUES_MAX];
    unsigned n = 0;
    char *save = NULL;
    for (char *t = strtok_r(src->line, " \t\r\n", &save); t != NULL;
         t = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == sizeof(tok) / sizeof(tok[0])) {
            fprintf(stderr, "%smore than %u values\n", where, SEND_VALUES_MAX);
            return -EINVAL;
        }
        tok[n++] = t;
    }
    if (n == 0)
        return 0;
    if (n < 4) {
        fprintf(stderr, "%sexpected TYPE ID SIGNAL EVENT_ID [VALUE...]\n", where);
        return -EINVAL;
    }
    char *end;
    errno = 0;
    unsigned long long event_id = strtoull(tok[3], &end, 10);
    if (*end != '\0' || errno != 0 || tok[3][0] == '-') {
        fprintf(stderr, "%sbad EVENT_ID '%s'\n", where, tok[3]);
        return -EINVAL;
    }
    struct sf_event *ev = &out->ev;
    memset(ev, 0, sizeof(*ev));
    if (send_set_names(ev, tok[0], tok[1], tok[2], where) < 0)
        return -EINVAL;
    struct sf_value v[SEND_VALUES_MAX];
    for (unsigned i = 4; i < n; i++) {
        struct send_value sv;
        send_value_parse(tok[i], false, &sv);
        v[i - 4] = sv.value;
    }
    if (send_set_fields(src, ev, v, n - 4, where) < 0)
        return -EINVAL;
    ev->event_id = event_id;
    ev->has_event_id = true;
    ev->ts_ns = send_now_ns();
    return 1;
}

static int send_file_next(struct send_source *src, struct send_event *out)
{
    for (;;) {
        if (fgets(src->line, sizeof(src->line), src->file) == NULL)
            return ferror(src->file) ? -EIO : 0;
        src->line_no++;
        size_t len = strlen(src->line);
        if (len == sizeof(src->line) - 1 && src->line[len - 1] != '\n') {
            fprintf(stderr, "%s:%lu: line longer than %u bytes\n", src->file_name, src->line_no,
                    SEND_LINE_LEN_MAX - 2);
            return -EINVAL;
        }
        int rc = send_file_line(src, out);
        if (rc != 0)
            return rc;
    }
}

static int send_fleet_next(struct send_source *src, struct send_event *out)
{
    const struct send_fleet *f = &src->fleet;
    if (f->count == 0 || src->round >= f->rounds)
        return 0;
    uint64_t i = f->first + src->index;
    snprintf(src->id, sizeof(src->id), "%s%06" PRIu64, f->prefix, i);
    struct sf_event *ev = &out->ev;
    memset(ev, 0, sizeof(*ev));
    int rc = send_set_names(ev, f->type, src->id, f->signal, "fleet: ");
    assert(rc == 0); /* checked by send_source_fleet for the longest id */
    (void)rc;
    struct sf_value v = { .type = SF_VAL_INT, .i = (int64_t)src->round };
    rc = send_set_fields(src, ev, &v, 1, "fleet: ");
    assert(rc == 0);
    ev->event_id = f->event_id_base + src->round * f->count + src->index + 1;
    ev->has_event_id = true;
    ev->ts_ns = send_now_ns();
    if (++src->index == f->count) {
        src->index = 0;
        src->round++;
    }
    return 1;
}

int send_source_next(struct send_source *src, struct send_event *out)
{
    switch (src->kind) {
    case SEND_SOURCE_ONE:
        if (src->one_done)
            return 0;
        src->one_done = true;
        *out = src->one;
        out->ev.ts_ns = send_now_ns();
        return 1;
    case SEND_SOURCE_FILE:
        return send_file_next(src, out);
    case SEND_SOURCE_FLEET:
        return send_fleet_next(src, out);
    }
    assert(!"unknown source kind");
    return -EINVAL;
}
