/*
 * dp_config.c — INI configuration of sigflowd (see dp_config.h). Numeric keys are read
 * through the table of knobs (dp_tune.c): their ranges, units and refusals are the ones
 * `tune` applies to a running node. The other keys (addresses, names, lists, booleans,
 * [quota]) are parsed here.
 */
#include "dp_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "dp_tune.h"

struct dp_config_parse {
    struct dp_config *cfg;
    FILE *file;
    int line;      /* line being parsed (the reader counts them) */
    int fail_line; /* line of the first key the handler refused */
    char reason[DP_CONFIG_ERROR_MAX];
    char tune_error[DP_TUNE_ERROR_MAX];
    bool failed;
};

static int cfg_fail(struct dp_config_parse *p, const char *fmt, const char *a, const char *b)
{
    if (!p->failed) {
        snprintf(p->reason, sizeof(p->reason), fmt, a, b);
        p->failed = true;
        p->fail_line = p->line;
    }
    return 0; /* inih: non-zero = ok, zero = error on this line */
}

int dp_config_lcore_list(const char *spec, unsigned *ids, unsigned max)
{
    if (strcmp(spec, "all") == 0)
        return 0; /* 0 = every lcore EAL gave us */
    unsigned n = 0;
    const char *s = spec;
    while (*s) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || errno != 0 || v >= DP_LCORES_MAX || n >= max)
            return -1;
        for (unsigned i = 0; i < n; i++)
            if (ids[i] == v)
                return -1;
        ids[n++] = (unsigned)v;
        s = end;
        while (*s == ' ')
            s++;
        if (*s == ',')
            s++;
        else if (*s != '\0')
            return -1;
        while (*s == ' ')
            s++;
    }
    return n == 0 ? -1 : (int)n;
}

static int cfg_ports(struct dp_config_parse *p, const char *value)
{
    struct dp_config *cfg = p->cfg;
    char buf[DP_PORTS_MAX * DP_PORT_NAME_MAX];
    if (strlen(value) >= sizeof(buf))
        return cfg_fail(p, "ports: list too long%s%s", "", "");
    strcpy(buf, value);
    cfg->port_count = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        if (cfg->port_count == DP_PORTS_MAX)
            return cfg_fail(p, "ports: at most 8 ports%s%s", "", "");
        if (strlen(tok) >= DP_PORT_NAME_MAX)
            return cfg_fail(p, "ports: device name '%s' too long%s", tok, "");
        strcpy(cfg->ports[cfg->port_count++], tok);
    }
    if (cfg->port_count == 0)
        return cfg_fail(p, "ports: empty list%s%s", "", "");
    return 1;
}

static int cfg_node(struct dp_config_parse *p, const char *name, const char *value)
{
    struct dp_config *cfg = p->cfg;
    if (strcmp(name, "ipv4") == 0) {
        if (inet_pton(AF_INET, value, cfg->ipv4) != 1)
            return cfg_fail(p, "ipv4: '%s' is not an IPv4 address%s", value, "");
        cfg->has_ipv4 = true;
    } else if (strcmp(name, "ipv6") == 0) {
        if (inet_pton(AF_INET6, value, cfg->ipv6) != 1)
            return cfg_fail(p, "ipv6: '%s' is not an IPv6 address%s", value, "");
        cfg->has_ipv6 = true;
    } else if (strcmp(name, "dir") == 0) {
        if (value[0] == '\0' || strlen(value) >= DP_PATH_MAX)
            return cfg_fail(p, "dir: empty or longer than 255 bytes%s%s", "", "");
        strcpy(cfg->dir, value);
    } else {
        return cfg_fail(p, "unknown key '%s' in section [%s]", name, "node");
    }
    return 1;
}

static int cfg_dataplane(struct dp_config_parse *p, const char *name, const char *value)
{
    struct dp_config *cfg = p->cfg;
    if (strcmp(name, "source") == 0) {
        if (strcmp(value, "ethdev") == 0)
            cfg->source = DP_SOURCE_ETHDEV;
        else if (strcmp(value, "socket") == 0)
            cfg->source = DP_SOURCE_SOCKET;
        else
            return cfg_fail(p, "source: '%s' is neither 'ethdev' nor 'socket'%s", value, "");
    } else if (strcmp(name, "ports") == 0) {
        return cfg_ports(p, value);
    } else if (strcmp(name, "rx_lcores") == 0 || strcmp(name, "owner_lcores") == 0) {
        unsigned ids[DP_LCORES_MAX];
        char *dst = name[0] == 'r' ? cfg->rx_lcores : cfg->owner_lcores;
        if (strlen(value) >= sizeof(cfg->rx_lcores) ||
            dp_config_lcore_list(value, ids, DP_LCORES_MAX) < 0)
            return cfg_fail(p, "%s: '%s' is neither 'all' nor a list of lcore ids", name, value);
        strcpy(dst, value);
    } else {
        return cfg_fail(p, "unknown key '%s' in section [%s]", name, "dataplane");
    }
    return 1;
}

static bool cfg_bool(const char *value, bool *out)
{
    if (strcmp(value, "true") == 0 || strcmp(value, "on") == 0 || strcmp(value, "yes") == 0 ||
        strcmp(value, "1") == 0)
        *out = true;
    else if (strcmp(value, "false") == 0 || strcmp(value, "off") == 0 || strcmp(value, "no") == 0 ||
             strcmp(value, "0") == 0)
        *out = false;
    else
        return false;
    return true;
}

static int cfg_wal(struct dp_config_parse *p, const char *name, const char *value)
{
    struct dp_config *cfg = p->cfg;
    if (strcmp(name, "enabled") == 0) {
        if (!cfg_bool(value, &cfg->wal_enabled))
            return cfg_fail(p, "enabled: '%s' is not true/false%s", value, "");
    } else if (strcmp(name, "fault_injection") == 0) {
        if (!cfg_bool(value, &cfg->wal_fault_injection))
            return cfg_fail(p, "fault_injection: '%s' is not true/false%s", value, "");
    } else if (strcmp(name, "direct_io") == 0) {
        if (!cfg_bool(value, &cfg->wal_direct_io))
            return cfg_fail(p, "direct_io: '%s' is not true/false%s", value, "");
    } else {
        return cfg_fail(p, "unknown key '%s' in section [%s]", name, "wal");
    }
    return 1;
}

static int cfg_auth(struct dp_config_parse *p, const char *name, const char *value)
{
    if (strcmp(name, "keys") != 0)
        return cfg_fail(p, "unknown key '%s' in section [%s]", name, "auth");
    if (value[0] != '/' || strlen(value) >= sizeof(p->cfg->auth_keys))
        return cfg_fail(p, "keys: '%s' must be an absolute path%s", value,
                        " shorter than 256 bytes");
    strcpy(p->cfg->auth_keys, value);
    return 1;
}

/* [quota] TYPE = N: at most about N workflows of TYPE on the node (dp_runtime.c). */
static int cfg_quota(struct dp_config_parse *p, const char *name, const char *value)
{
    struct dp_config *cfg = p->cfg;
    size_t n = strlen(name);
    bool ident = n >= 1 && n <= 32;
    for (size_t i = 0; ident && i < n; i++)
        ident = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
                (name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '.' ||
                name[i] == '-';
    if (!ident)
        return cfg_fail(p, "[quota] '%s': not a workflow type name%s", name, "");
    uint64_t v;
    if (dp_tune_number(value, &v) != 0 || v < 1 || v > 4000000000ull)
        return cfg_fail(p, "[quota] %s: '%s' must be a number of workflows in 1..4G", name, value);
    for (unsigned i = 0; i < cfg->quota_count; i++)
        if (strcmp(cfg->quota[i].type, name) == 0)
            return cfg_fail(p, "[quota] %s: given twice%s", name, "");
    if (cfg->quota_count == DP_QUOTAS_MAX)
        return cfg_fail(p, "[quota] %s: more than 16 types%s", name, "");
    strcpy(cfg->quota[cfg->quota_count].type, name);
    cfg->quota[cfg->quota_count++].max = v;
    return 1;
}

/* A numeric key: range, unit and field come from the table of knobs (dp_tune.c), which
 * `tune` checks against too. 1: stored; 0: refused (reason recorded). */
static int cfg_number(struct dp_config_parse *p, const struct dp_tunable *t, const char *value)
{
    uint64_t v;
    if (dp_tune_parse(t, value, &v, p->tune_error, sizeof(p->tune_error)) != 0)
        return cfg_fail(p, "%s%s", p->tune_error, "");
    dp_tune_store(t, p->cfg, v);
    return 1;
}

static int cfg_unknown(struct dp_config_parse *p, const char *section, const char *name)
{
    return cfg_fail(p, "unknown key '%s' in section [%s]", name, section);
}

static int cfg_handler(void *user, const char *section, const char *name, const char *value)
{
    struct dp_config_parse *p = user;
    const struct dp_tunable *t = dp_tune_find_config(section, name);
    if (t)
        return cfg_number(p, t, value);
    if (strcmp(section, "history") == 0 || strcmp(section, "snapshot") == 0 ||
        strcmp(section, "runtime") == 0)
        return cfg_unknown(p, section, name); /* all their keys are numbers */
    if (strcmp(section, "wal") == 0)
        return cfg_wal(p, name, value);
    if (strcmp(section, "node") == 0)
        return cfg_node(p, name, value);
    if (strcmp(section, "dataplane") == 0)
        return cfg_dataplane(p, name, value);
    if (strcmp(section, "auth") == 0)
        return cfg_auth(p, name, value);
    if (strcmp(section, "quota") == 0)
        return cfg_quota(p, name, value);
    return cfg_fail(p, "unknown section [%s] (key '%s')", section, name);
}

void dp_config_defaults(struct dp_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->udp_port = 7700;
    strcpy(cfg->dir, "./run");
    cfg->source = DP_SOURCE_ETHDEV;
    cfg->rx_queues = 1;
    cfg->rx_desc = 1024;
    cfg->tx_desc = 1024;
    cfg->burst = 32;
    cfg->ring_size = 4096;
    cfg->mempool_size = 16383;
    cfg->partitions = 4096;
    cfg->table_capacity = 1000000;
    cfg->keystore_bytes = 64ull << 20;
    strcpy(cfg->rx_lcores, "all");
    strcpy(cfg->owner_lcores, "all");
    cfg->idle_pause_polls = 256;
    cfg->idle_sleep_max_us = 500;
    cfg->icmp_rate = 1000;
    cfg->reply_rate = 50000;
    cfg->wal_enabled = true;
    cfg->wal_segment_bytes = 64ull << 20;
    cfg->wal_batch_bytes_max = 256u << 10;
    cfg->wal_batch_deadline_us = 100;
    cfg->wal_inflight_max = 4;
    cfg->wal_direct_io = false;
    cfg->ack_groups = 8192;
    cfg->instance_bytes = 256;
    cfg->tasks_per_partition = 16;
    cfg->activity_slots = 4096;
    cfg->tombstone_retention_s = 86400;
    cfg->snapshot_interval_s = 300;
    cfg->snapshot_log_bytes = 1ull << 30;
    cfg->history_retention_s = 7u * 86400u;
    cfg->history_retention_bytes = 16ull << 30;
}

static int cfg_check(const struct dp_config *cfg, char *reason, size_t len)
{
    if (cfg->source == DP_SOURCE_ETHDEV && cfg->port_count == 0) {
        snprintf(reason, len, "[dataplane] ports: no port configured (source = ethdev)");
        return -1;
    }
    if (cfg->source == DP_SOURCE_ETHDEV && !cfg->has_ipv4 && !cfg->has_ipv6) {
        snprintf(reason, len, "[node] needs ipv4 or ipv6 (the address the node answers at)");
        return -1;
    }
    if (cfg->table_capacity < cfg->partitions) {
        snprintf(reason, len, "table_capacity (%" PRIu64 ") is below partitions (%u)",
                 cfg->table_capacity, cfg->partitions);
        return -1;
    }
    if (cfg->burst > cfg->ring_size / 2) {
        snprintf(reason, len, "burst (%u) must be at most ring_size/2 (%u)", cfg->burst,
                 cfg->ring_size / 2);
        return -1;
    }
    return 0;
}

/* inih reader that counts lines, so the handler knows where it is. */
static char *cfg_read_line(char *str, int num, void *stream)
{
    struct dp_config_parse *p = stream;
    char *s = fgets(str, num, p->file);
    if (s)
        p->line++;
    return s;
}

int dp_config_load(struct dp_config *cfg, const char *path, char *err, size_t err_len)
{
    struct dp_config_parse p = { .cfg = cfg };
    p.file = fopen(path, "r");
    if (!p.file) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    int line = ini_parse_stream(cfg_read_line, &p, cfg_handler, &p);
    fclose(p.file);
    if (line != 0) {
        bool handler_first = p.failed && p.fail_line == line;
        snprintf(err, err_len, "%s:%d: %s", path, line,
                 handler_first ? p.reason : "syntax error (expected 'key = value' or '[section]')");
        return -1;
    }
    char reason[DP_CONFIG_ERROR_MAX];
    if (cfg_check(cfg, reason, sizeof(reason)) < 0) {
        snprintf(err, err_len, "%s: %s", path, reason);
        return -1;
    }
    return 0;
}
