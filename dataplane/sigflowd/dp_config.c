/*
 * dp_config.c — INI configuration of sigflowd (see dp_config.h).
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

struct dp_config_parse {
    struct dp_config *cfg;
    FILE *file;
    int line;      /* line being parsed (the reader counts them) */
    int fail_line; /* line of the first key the handler refused */
    char reason[DP_CONFIG_ERROR_MAX];
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

static bool cfg_u64(const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (value[0] == '-' || value[0] == '\0')
        return false;
    unsigned long long v = strtoull(value, &end, 0);
    uint64_t mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1000ull, end++;
    else if (*end == 'M')
        mult = 1000000ull, end++;
    else if (*end == 'G')
        mult = 1000000000ull, end++;
    if (errno != 0 || *end != '\0' || end == value)
        return false;
    if (v > UINT64_MAX / mult)
        return false;
    v *= mult;
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool cfg_uint(const char *value, unsigned min, unsigned max, unsigned *out)
{
    uint64_t v;
    if (!cfg_u64(value, min, max, &v))
        return false;
    *out = (unsigned)v;
    return true;
}

static bool cfg_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
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
    unsigned u;
    if (strcmp(name, "ipv4") == 0) {
        if (inet_pton(AF_INET, value, cfg->ipv4) != 1)
            return cfg_fail(p, "ipv4: '%s' is not an IPv4 address%s", value, "");
        cfg->has_ipv4 = true;
    } else if (strcmp(name, "ipv6") == 0) {
        if (inet_pton(AF_INET6, value, cfg->ipv6) != 1)
            return cfg_fail(p, "ipv6: '%s' is not an IPv6 address%s", value, "");
        cfg->has_ipv6 = true;
    } else if (strcmp(name, "udp_port") == 0) {
        if (!cfg_uint(value, 1, 65535, &u))
            return cfg_fail(p, "udp_port: '%s' is not a port number 1..65535%s", value, "");
        cfg->udp_port = (uint16_t)u;
    } else if (strcmp(name, "dir") == 0) {
        if (value[0] == '\0' || strlen(value) >= DP_PATH_MAX)
            return cfg_fail(p, "dir: empty or longer than 255 bytes%s%s", "", "");
        strcpy(cfg->dir, value);
    } else {
        return cfg_fail(p, "unknown key '%s' in section [%s]", name, "node");
    }
    return 1;
}

struct cfg_uint_key {
    const char *name;
    size_t offset;
    unsigned min, max;
    bool pow2;
};

#define CFG_TABLE(t) (t), sizeof(t) / sizeof((t)[0])

/* Look name up in a table of integer keys and store its value. Returns 1 (stored), 0 (bad
 * value: reason recorded) or -1 (not a key of this table). */
static int cfg_uint_table(struct dp_config_parse *p, const struct cfg_uint_key *keys, size_t n,
                          const char *name, const char *value)
{
    for (size_t i = 0; i < n; i++) {
        const struct cfg_uint_key *k = &keys[i];
        if (strcmp(name, k->name) != 0)
            continue;
        unsigned v;
        char range[64];
        snprintf(range, sizeof(range), "%u..%u%s", k->min, k->max, k->pow2 ? ", a power of 2" : "");
        if (!cfg_uint(value, k->min, k->max, &v) || (k->pow2 && !cfg_pow2(v)))
            return cfg_fail(p, "%s: must be an integer in %s", k->name, range);
        memcpy((char *)p->cfg + k->offset, &v, sizeof(v));
        return 1;
    }
    return -1;
}

#define CFG_KEY(field, lo, hi, p2)                            \
    {                                                         \
#field, offsetof(struct dp_config, field), lo, hi, p2 \
    }
static const struct cfg_uint_key cfg_dataplane_keys[] = {
    CFG_KEY(rx_queues, 1, DP_RX_QUEUES_MAX, false),
    CFG_KEY(rx_desc, 64, 16384, true),
    CFG_KEY(tx_desc, 64, 16384, true),
    CFG_KEY(burst, 1, 256, false),
    CFG_KEY(ring_size, 64, 1u << 20, true),
    CFG_KEY(mempool_size, 1024, 1u << 24, false),
    CFG_KEY(idle_pause_polls, 0, 1000000, false),
    CFG_KEY(idle_sleep_max_us, 0, 100000, false),
    CFG_KEY(icmp_rate, 0, 1000000, false),
    CFG_KEY(reply_rate, 0, 10000000, false),
};

static int cfg_dataplane(struct dp_config_parse *p, const char *name, const char *value)
{
    struct dp_config *cfg = p->cfg;
    int found = cfg_uint_table(p, CFG_TABLE(cfg_dataplane_keys), name, value);
    if (found >= 0)
        return found;
    uint64_t v;
    if (strcmp(name, "source") == 0) {
        if (strcmp(value, "ethdev") == 0)
            cfg->source = DP_SOURCE_ETHDEV;
        else if (strcmp(value, "socket") == 0)
            cfg->source = DP_SOURCE_SOCKET;
        else
            return cfg_fail(p, "source: '%s' is neither 'ethdev' nor 'socket'%s", value, "");
    } else if (strcmp(name, "ports") == 0) {
        return cfg_ports(p, value);
    } else if (strcmp(name, "partitions") == 0) {
        if (!cfg_u64(value, 1, 65536, &v) || !cfg_pow2(v))
            return cfg_fail(p, "partitions: '%s' must be a power of 2 in 1..65536%s", value, "");
        cfg->partitions = (uint32_t)v;
    } else if (strcmp(name, "table_capacity") == 0) {
        if (!cfg_u64(value, 1024, 4000000000ull, &v))
            return cfg_fail(p, "table_capacity: '%s' must be in 1024..4G workflows%s", value, "");
        cfg->table_capacity = v;
    } else if (strcmp(name, "keystore_bytes") == 0) {
        if (!cfg_u64(value, 65536, 1ull << 40, &v))
            return cfg_fail(p, "keystore_bytes: '%s' must be in 64k..1T%s", value, "");
        cfg->keystore_bytes = v;
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

static const struct cfg_uint_key cfg_wal_keys[] = {
    { "batch_bytes_max", offsetof(struct dp_config, wal_batch_bytes_max), 4096, 1u << 20, false },
    { "batch_deadline_us", offsetof(struct dp_config, wal_batch_deadline_us), 0, 100000, false },
    { "inflight_max", offsetof(struct dp_config, wal_inflight_max), 2, 16, false },
    { "ack_groups", offsetof(struct dp_config, ack_groups), 64, 1u << 20, true },
};

static int cfg_wal(struct dp_config_parse *p, const char *name, const char *value)
{
    struct dp_config *cfg = p->cfg;
    int found = cfg_uint_table(p, CFG_TABLE(cfg_wal_keys), name, value);
    if (found >= 0)
        return found;
    uint64_t v;
    if (strcmp(name, "enabled") == 0) {
        if (!cfg_bool(value, &cfg->wal_enabled))
            return cfg_fail(p, "enabled: '%s' is not true/false%s", value, "");
    } else if (strcmp(name, "fault_injection") == 0) {
        if (!cfg_bool(value, &cfg->wal_fault_injection))
            return cfg_fail(p, "fault_injection: '%s' is not true/false%s", value, "");
    } else if (strcmp(name, "direct_io") == 0) {
        if (!cfg_bool(value, &cfg->wal_direct_io))
            return cfg_fail(p, "direct_io: '%s' is not true/false%s", value, "");
    } else if (strcmp(name, "segment_bytes") == 0) {
        if (!cfg_u64(value, 1u << 20, 1ull << 32, &v) || v % 4096 != 0)
            return cfg_fail(p, "segment_bytes: '%s' must be 1M..4G, a multiple of 4096%s", value,
                            "");
        cfg->wal_segment_bytes = v;
    } else {
        return cfg_fail(p, "unknown key '%s' in section [%s]", name, "wal");
    }
    return 1;
}

static const struct cfg_uint_key cfg_runtime_keys[] = {
    { "instance_bytes", offsetof(struct dp_config, instance_bytes), 64, 16384, false },
    { "tasks_per_partition", offsetof(struct dp_config, tasks_per_partition), 1, 65536, false },
    { "tombstone_retention_s", offsetof(struct dp_config, tombstone_retention_s), 0, 365u * 86400u,
      false },
};

static int cfg_runtime(struct dp_config_parse *p, const char *name, const char *value)
{
    int found = cfg_uint_table(p, CFG_TABLE(cfg_runtime_keys), name, value);
    if (found >= 0)
        return found;
    return cfg_fail(p, "unknown key '%s' in section [%s]", name, "runtime");
}

static int cfg_snapshot(struct dp_config_parse *p, const char *name, const char *value)
{
    uint64_t v;
    if (strcmp(name, "interval_s") == 0) {
        if (!cfg_u64(value, 0, 7u * 86400u, &v))
            return cfg_fail(p, "interval_s: '%s' must be 0..604800 seconds%s", value, "");
        p->cfg->snapshot_interval_s = (unsigned)v;
    } else if (strcmp(name, "log_bytes") == 0) {
        if (!cfg_u64(value, 0, 1ull << 40, &v))
            return cfg_fail(p, "log_bytes: '%s' must be 0..1T%s", value, "");
        p->cfg->snapshot_log_bytes = v;
    } else {
        return cfg_fail(p, "unknown key '%s' in section [%s]", name, "snapshot");
    }
    return 1;
}

static int cfg_history(struct dp_config_parse *p, const char *name, const char *value)
{
    uint64_t v;
    if (strcmp(name, "retention_s") == 0) {
        if (!cfg_u64(value, 0, 3650u * 86400u, &v))
            return cfg_fail(p, "retention_s: '%s' must be 0..315360000 seconds%s", value, "");
        p->cfg->history_retention_s = (unsigned)v;
    } else if (strcmp(name, "retention_bytes") == 0) {
        if (!cfg_u64(value, 0, 1ull << 50, &v))
            return cfg_fail(p, "retention_bytes: '%s' must be 0..1P%s", value, "");
        p->cfg->history_retention_bytes = v;
    } else {
        return cfg_fail(p, "unknown key '%s' in section [%s]", name, "history");
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
    if (!cfg_u64(value, 1, 4000000000ull, &v))
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

static int cfg_handler(void *user, const char *section, const char *name, const char *value)
{
    struct dp_config_parse *p = user;
    if (strcmp(section, "history") == 0)
        return cfg_history(p, name, value);
    if (strcmp(section, "snapshot") == 0)
        return cfg_snapshot(p, name, value);
    if (strcmp(section, "runtime") == 0)
        return cfg_runtime(p, name, value);
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
