/*
 * cp_attempt.c — what every executor shares: an attempt's names, arguments and JSON body
 * built once from its task, URL/topic templates, outcomes (cp_exec.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cp_exec.h"
#include "sf_proto.h"

/* Append s[0..n) to out as the inside of a JSON string. Returns the new length or -ENOSPC. */
static int cp_json_str(char *out, size_t cap, size_t len, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t k;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            k = 2;
        } else if (c < 0x20 || c == 0x7f) {
            k = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
        } else {
            esc[0] = (char)c;
            k = 1;
        }
        if (len + k >= cap)
            return -ENOSPC;
        memcpy(out + len, esc, k);
        len += k;
    }
    out[len] = '\0';
    return (int)len;
}

static int cp_append(char *out, size_t cap, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cp_append(char *out, size_t cap, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + len, cap - len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - len)
        return -ENOSPC;
    return (int)(len + (size_t)n);
}

/* One argument: its text (for templates and environment) and its JSON value. */
static int cp_arg_render(const struct sf_value *v, char *text, size_t text_cap, char *json,
                         size_t json_cap, size_t json_len)
{
    int n;
    switch (v->type) {
    case SF_VAL_INT:
        snprintf(text, text_cap, "%" PRId64, v->i);
        return cp_append(json, json_cap, json_len, "%s", text);
    case SF_VAL_FLOAT:
        snprintf(text, text_cap, "%.17g", v->f);
        return cp_append(json, json_cap, json_len, "%s", text);
    case SF_VAL_BOOL:
        snprintf(text, text_cap, "%s", v->b ? "true" : "false");
        return cp_append(json, json_cap, json_len, "%s", text);
    case SF_VAL_TEXT: {
        size_t k = v->text.len < text_cap - 1 ? v->text.len : text_cap - 1;
        memcpy(text, v->text.ptr, k);
        text[k] = '\0';
        n = cp_append(json, json_cap, json_len, "\"");
        if (n >= 0)
            n = cp_json_str(json, json_cap, (size_t)n, v->text.ptr, v->text.len);
        return n < 0 ? n : cp_append(json, json_cap, (size_t)n, "\"");
    }
    case SF_VAL_NULL:
    default:
        text[0] = '\0';
        return cp_append(json, json_cap, json_len, "null");
    }
}

static void cp_copy_name(char *dst, size_t cap, const char *src, size_t len)
{
    size_t k = len < cap - 1 ? len : cap - 1;
    memcpy(dst, src, k);
    dst[k] = '\0';
}

int cp_attempt_fill(struct cp_attempt *a)
{
    const struct chan_task *t = a->task;
    cp_copy_name(a->type, sizeof(a->type), t->type, t->type_len);
    cp_copy_name(a->id, sizeof(a->id), t->id, t->id_len);
    cp_copy_name(a->activity, sizeof(a->activity), t->activity, t->activity_len);
    snprintf(a->seq, sizeof(a->seq), "%" PRIu32, t->seq);
    if (chan_idempotency_key(t->key_hi, t->key_lo, t->seq, a->idempotency_key,
                             sizeof(a->idempotency_key)) < 0)
        return -ENOSPC;
    struct sf_value v[CHAN_PARAMS_MAX];
    int nv = t->nargs ? sf_fields_decode(t->args, t->args_len, v, CHAN_PARAMS_MAX) : 0;
    if (nv < 0 || (unsigned)nv != t->nargs)
        return -EBADMSG;
    a->nargs = t->nargs;
    int n = cp_append(a->args_json, sizeof(a->args_json), 0, "{");
    for (unsigned i = 0; i < a->nargs && n >= 0; i++) {
        snprintf(a->arg_name[i], sizeof(a->arg_name[i]), "%s", t->param[i]);
        n = cp_append(a->args_json, sizeof(a->args_json), (size_t)n, "%s\"%s\":", i ? "," : "",
                      a->arg_name[i]);
        if (n >= 0)
            n = cp_arg_render(&v[i], a->arg_text[i], sizeof(a->arg_text[i]), a->args_json,
                              sizeof(a->args_json), (size_t)n);
    }
    if (n >= 0)
        n = cp_append(a->args_json, sizeof(a->args_json), (size_t)n, "}");
    if (n < 0)
        return -ENOSPC;
    /* the body: names escaped (a workflow id is the sender's bytes) */
    char *b = a->body_json;
    size_t cap = sizeof(a->body_json);
    n = cp_append(b, cap, 0, "{\"type\":\"");
    if (n >= 0)
        n = cp_json_str(b, cap, (size_t)n, a->type, strlen(a->type));
    if (n >= 0)
        n = cp_append(b, cap, (size_t)n, "\",\"id\":\"");
    if (n >= 0)
        n = cp_json_str(b, cap, (size_t)n, a->id, strlen(a->id));
    if (n >= 0)
        n = cp_append(b, cap, (size_t)n,
                      "\",\"activity\":\"%s\",\"arguments\":%s,\"attempt\":%" PRIu32
                      ",\"idempotency_key\":\"%s\",\"seq\":%" PRIu32 "}",
                      a->activity, a->args_json, a->attempt, a->idempotency_key, t->seq);
    if (n < 0)
        return -ENOSPC;
    a->body_len = (size_t)n;
    return 0;
}

/* ---- templates ----------------------------------------------------------------------- */

static int cp_emit(char *out, size_t cap, size_t len, const char *s, bool url_escape)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = !url_escape || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
        size_t k = plain ? 1 : 3;
        if (len + k >= cap)
            return -ENOSPC;
        if (plain) {
            out[len++] = (char)c;
        } else {
            out[len++] = '%';
            out[len++] = hex[c >> 4];
            out[len++] = hex[c & 15];
        }
    }
    out[len] = '\0';
    return (int)len;
}

/* The value of placeholder name[0..n) for a (NULL: only check that it exists). */
static int cp_placeholder(const struct cp_attempt *a, const char *name, size_t n,
                          const char **value, char *tmp, size_t tmp_cap)
{
#define CP_IS(lit) (n == sizeof(lit) - 1 && memcmp(name, lit, n) == 0)
    if (CP_IS("type") || CP_IS("id") || CP_IS("activity") || CP_IS("seq") || CP_IS("key") ||
        CP_IS("attempt")) {
        if (!a)
            return 0;
        if (CP_IS("type"))
            *value = a->type;
        else if (CP_IS("id"))
            *value = a->id;
        else if (CP_IS("activity"))
            *value = a->activity;
        else if (CP_IS("seq"))
            *value = a->seq;
        else if (CP_IS("key"))
            *value = a->idempotency_key;
        else {
            snprintf(tmp, tmp_cap, "%" PRIu32, a->attempt);
            *value = tmp;
        }
        return 0;
    }
    if (n > 4 && memcmp(name, "arg.", 4) == 0) {
        if (!a)
            return 0; /* which parameters exist is the definition's: checked per attempt */
        for (unsigned i = 0; i < a->nargs; i++)
            if (strlen(a->arg_name[i]) == n - 4 && memcmp(a->arg_name[i], name + 4, n - 4) == 0) {
                *value = a->arg_text[i];
                return 0;
            }
    }
#undef CP_IS
    return -EINVAL;
}

static int cp_template_run(const char *tmpl, const struct cp_attempt *a, bool url_escape, char *out,
                           size_t cap)
{
    size_t len = 0;
    char tmp[16];
    if (cap == 0)
        return -ENOSPC;
    out[0] = '\0';
    for (const char *p = tmpl; *p;) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            if (len + 1 >= cap)
                return -ENOSPC;
            out[len++] = p[0];
            p += 2;
            continue;
        }
        if (*p == '}')
            return -EINVAL;
        if (*p != '{') {
            if (len + 1 >= cap)
                return -ENOSPC;
            out[len++] = *p++;
            continue;
        }
        const char *end = strchr(p + 1, '}');
        if (!end)
            return -EINVAL;
        const char *value = NULL;
        if (cp_placeholder(a, p + 1, (size_t)(end - p - 1), &value, tmp, sizeof(tmp)) != 0)
            return -EINVAL;
        if (a) {
            int n = cp_emit(out, cap, len, value, url_escape);
            if (n < 0)
                return n;
            len = (size_t)n;
        }
        p = end + 1;
    }
    out[len] = '\0';
    return (int)len;
}

int cp_template_expand(const char *tmpl, const struct cp_attempt *a, bool url_escape, char *out,
                       size_t cap)
{
    return cp_template_run(tmpl, a, url_escape, out, cap);
}

int cp_template_check(const char *tmpl)
{
    char scratch[CP_KV_VALUE_MAX + 1];
    int n = cp_template_run(tmpl, NULL, false, scratch, sizeof(scratch));
    return n < 0 && n != -ENOSPC ? n : 0;
}

int cp_kv_error(char *err, size_t err_cap, const struct cp_kv *kv, const char *fmt, ...)
{
    if (err_cap == 0)
        return -EINVAL;
    int n = kv ? snprintf(err, err_cap, "line %u: ", kv->line) : 0;
    if (n < 0 || (size_t)n >= err_cap)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, err_cap - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

void cp_outcome_set(struct cp_outcome *o, enum cp_outcome_kind kind, const char *fmt, ...)
{
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->reason, sizeof(o->reason), fmt, ap);
    va_end(ap);
}
