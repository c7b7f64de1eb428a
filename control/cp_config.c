/*
 * cp_config.c — sigflow-control's configuration file (cp_config.h), read with inih.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "cp_config.h"

struct cp_parse {
    struct cp_config *cfg;
    const char *path;
    char *err;
    size_t err_cap;
    bool failed;
    int current;      /* executor index of the section being read, -1 otherwise */
    char section[96]; /* the section of the previous key (inih reports no section headers) */
    FILE *file;
    int line; /* lines read so far: the line of the key being handled */
};

/* inih reader that counts lines, so that the handler can name the line. */
static char *cp_read_line(char *str, int num, void *stream)
{
    struct cp_parse *p = stream;
    char *s = fgets(str, num, p->file);
    if (s)
        p->line++;
    return s;
}

static const struct {
    const char *kind;
    const struct cp_executor_ops *ops;
} cp_kinds[] = {
    { "webhook", &cp_exec_webhook_ops },
    { "mqtt", &cp_exec_mqtt_ops },
    { "exec", &cp_exec_exec_ops },
    { "log", &cp_exec_log_ops },
};

const struct cp_executor_ops *cp_config_kind(const char *kind)
{
    for (size_t i = 0; i < sizeof(cp_kinds) / sizeof(cp_kinds[0]); i++)
        if (strcmp(cp_kinds[i].kind, kind) == 0)
            return cp_kinds[i].ops;
    return NULL;
}

static int cp_fail(struct cp_parse *p, int line, const char *fmt, const char *a, const char *b)
{
    if (!p->failed) {
        int n = snprintf(p->err, p->err_cap, "%s:%d: ", p->path, line);
        if (n > 0 && (size_t)n < p->err_cap)
            snprintf(p->err + n, p->err_cap - (size_t)n, fmt, a, b);
    }
    p->failed = true;
    return 0; /* inih: stop */
}

static bool cp_uint(const char *s, unsigned long max, unsigned *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = (unsigned)v;
    return true;
}

/* [control] http: "off", "" (the default) or IPv4ADDRESS:PORT. 1 (inih: go on), or 0 with
 * the error recorded. */
static int cp_on_http(struct cp_parse *p, const char *value, int line)
{
    struct cp_config *cfg = p->cfg;
    if (strcmp(value, "off") == 0) {
        cfg->http_enabled = false;
        return 1;
    }
    cfg->http_enabled = true;
    if (value[0] == '\0') {
        snprintf(cfg->http_addr, sizeof(cfg->http_addr), "%s", CP_HTTP_ADDR_DEFAULT);
        cfg->http_port = CP_HTTP_PORT_DEFAULT;
        return 1;
    }
    const char *colon = strrchr(value, ':');
    size_t addr_len = colon ? (size_t)(colon - value) : 0;
    struct in_addr in;
    unsigned port = 0;
    if (!colon || addr_len == 0 || addr_len >= sizeof(cfg->http_addr) ||
        !cp_uint(colon + 1, 65535u, &port) || port == 0)
        return cp_fail(p, line, "http '%s' is not ADDRESS:PORT (IPv4, port 1..65535) or off%s",
                       value, "");
    memcpy(cfg->http_addr, value, addr_len); /* addr_len < sizeof(http_addr): checked */
    cfg->http_addr[addr_len] = '\0';
    if (inet_pton(AF_INET, cfg->http_addr, &in) != 1)
        return cp_fail(p, line, "http '%s': '%s' is not an IPv4 address", value, cfg->http_addr);
    cfg->http_port = port;
    return 1;
}

static int cp_find_executor(const struct cp_config *cfg, const char *name)
{
    for (unsigned i = 0; i < cfg->executor_count; i++)
        if (strcmp(cfg->executors[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int cp_on_section(struct cp_parse *p, const char *section, int line)
{
    struct cp_config *cfg = p->cfg;
    p->current = -1;
    if (strcmp(section, "control") == 0 || strcmp(section, "route") == 0)
        return 1;
    if (strncmp(section, "executor ", 9) != 0)
        return cp_fail(p, line, "unknown section [%s]%s", section, "");
    const char *name = section + 9;
    while (*name == ' ')
        name++;
    size_t len = strlen(name);
    if (len == 0 || len >= CP_EXEC_NAME_MAX ||
        strspn(name, "abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789_-") != len)
        return cp_fail(p, line, "executor name '%s' must be 1..31 letters, digits, _ or -%s", name,
                       "");
    if (cp_find_executor(cfg, name) >= 0)
        return cp_fail(p, line, "executor %s defined twice%s", name, "");
    if (cfg->executor_count == CP_EXECUTORS_MAX)
        return cp_fail(p, line, "more than 64 executors%s%s", "", "");
    struct cp_executor_config *x = &cfg->executors[cfg->executor_count];
    memset(x, 0, sizeof(*x));
    snprintf(x->name, sizeof(x->name), "%s", name);
    x->concurrency = 16;
    x->line = (unsigned)line;
    p->current = (int)cfg->executor_count++;
    return 1;
}

static int cp_on_route(struct cp_parse *p, const char *name, const char *value, int line)
{
    struct cp_config *cfg = p->cfg;
    if (cfg->route_count == CP_ROUTES_MAX)
        return cp_fail(p, line, "more than 256 routes%s%s", "", "");
    struct cp_route *r = &cfg->routes[cfg->route_count];
    if (strlen(name) >= sizeof(r->pattern) || strlen(value) >= sizeof(r->executor_name))
        return cp_fail(p, line, "route %s = %s is too long", name, value);
    /* the executor may be defined further down: resolved once the file is read */
    snprintf(r->pattern, sizeof(r->pattern), "%s", name);
    snprintf(r->executor_name, sizeof(r->executor_name), "%s", value);
    r->line = (unsigned)line;
    cfg->route_count++;
    return 1;
}

static int cp_on_key(void *user, const char *section, const char *name, const char *value)
{
    struct cp_parse *p = user;
    int line = p->line;
    if (p->failed)
        return 0;
    if (strcmp(section, p->section) != 0) { /* the first key of a new section */
        snprintf(p->section, sizeof(p->section), "%s", section);
        if (!cp_on_section(p, section, line))
            return 0;
    }
    struct cp_config *cfg = p->cfg;
    if (strcmp(section, "control") == 0) {
        if (strcmp(name, "dir") == 0) {
            if (strlen(value) >= sizeof(cfg->dir) || value[0] != '/')
                return cp_fail(p, line, "dir '%s' must be an absolute path under 512 bytes%s",
                               value, "");
            snprintf(cfg->dir, sizeof(cfg->dir), "%s", value);
            return 1;
        }
        if (strcmp(name, "grace_s") == 0) {
            if (!cp_uint(value, CP_GRACE_S_MAX, &cfg->grace_s))
                return cp_fail(p, line, "grace_s '%s' is not 0..3600%s", value, "");
            return 1;
        }
        if (strcmp(name, "http") == 0)
            return cp_on_http(p, value, line);
        return cp_fail(p, line, "unknown key %s in [control]%s", name, "");
    }
    if (strcmp(section, "route") == 0)
        return cp_on_route(p, name, value, line);
    if (p->current < 0)
        return cp_fail(p, line, "key %s outside a known section%s", name, "");
    struct cp_executor_config *x = &cfg->executors[p->current];
    if (strcmp(name, "kind") == 0) {
        x->ops = cp_config_kind(value);
        if (!x->ops)
            return cp_fail(p, line, "unknown executor kind '%s' (webhook, mqtt, exec, log)%s",
                           value, "");
        return 1;
    }
    if (strcmp(name, "concurrency") == 0) {
        if (!cp_uint(value, CP_CONCURRENCY_MAX, &x->concurrency) || x->concurrency == 0)
            return cp_fail(p, line, "concurrency '%s' is not 1..65536%s", value, "");
        return 1;
    }
    if (x->kv_count == CP_KV_MAX)
        return cp_fail(p, line, "more than 32 keys for executor %s%s", x->name, "");
    struct cp_kv *kv = &x->kv[x->kv_count];
    if (strlen(name) >= sizeof(kv->key) || strlen(value) >= sizeof(kv->value))
        return cp_fail(p, line, "key or value too long for %s%s", name, "");
    snprintf(kv->key, sizeof(kv->key), "%s", name);
    snprintf(kv->value, sizeof(kv->value), "%s", value);
    kv->line = (unsigned)line;
    x->kv_count++;
    return 1;
}

int cp_config_load(const char *path, struct cp_config *cfg, char *err, size_t err_cap)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->grace_s = CP_GRACE_S_DEFAULT;
    cfg->http_enabled = true;
    snprintf(cfg->http_addr, sizeof(cfg->http_addr), "%s", CP_HTTP_ADDR_DEFAULT);
    cfg->http_port = CP_HTTP_PORT_DEFAULT;
    struct cp_parse p = { .cfg = cfg, .path = path, .err = err, .err_cap = err_cap, .current = -1 };
    p.file = fopen(path, "re");
    if (!p.file) {
        int e = errno;
        snprintf(err, err_cap, "%s: %s", path, strerror(e));
        return -e;
    }
    /* route values name executors; they are resolved after the whole file is read */
    int rc = ini_parse_stream(cp_read_line, &p, cp_on_key, &p);
    fclose(p.file);
    if (rc > 0 && !p.failed) {
        snprintf(err, err_cap, "%s:%d: not a key = value line", path, rc);
        return -EINVAL;
    }
    if (p.failed)
        return -EINVAL;
    if (cfg->dir[0] == '\0') {
        snprintf(err, err_cap, "%s: [control] dir is required", path);
        return -EINVAL;
    }
    for (unsigned i = 0; i < cfg->route_count; i++) {
        struct cp_route *r = &cfg->routes[i];
        int x = cp_find_executor(cfg, r->executor_name);
        if (x < 0) {
            snprintf(err, err_cap, "%s:%u: route %s names executor %s, which is not defined", path,
                     r->line, r->pattern, r->executor_name);
            return -EINVAL;
        }
        r->executor = (unsigned)x;
    }
    for (unsigned i = 0; i < cfg->executor_count; i++)
        if (!cfg->executors[i].ops) {
            snprintf(err, err_cap, "%s:%u: executor %s has no kind", path, cfg->executors[i].line,
                     cfg->executors[i].name);
            return -EINVAL;
        }
    return 0;
}

int cp_config_route(const struct cp_config *cfg, const char *type, const char *activity)
{
    char full[sizeof(cfg->routes[0].pattern)];
    snprintf(full, sizeof(full), "%s.%s", type, activity);
    const char *tries[] = { full, activity, "*" };
    for (size_t t = 0; t < 3; t++)
        for (unsigned i = 0; i < cfg->route_count; i++)
            if (strcmp(cfg->routes[i].pattern, tries[t]) == 0)
                return (int)cfg->routes[i].executor;
    return -ENOENT;
}
