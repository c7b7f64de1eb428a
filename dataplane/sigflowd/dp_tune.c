/*
 * dp_tune.c — the table of the node's numeric knobs (see dp_tune.h), read by the
 * configuration file's parser and by `tune`, and the checks both apply.
 *
 * Every range is the one the configuration file documents (README.md, "Configuration").
 * Where `tune` once accepted more (idle_sleep_max_us up to 1 s, wal.batch_deadline_us up to
 * 1 s), it now accepts what the file accepts: a running node can't be set to a value it
 * would refuse to start with. The log's own setters (storage/wal.h) check their bounds too;
 * the asserts below keep the table inside them.
 */
#include "dp_tune.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wal.h"

#define DP_TUNE_FIELD(f) offsetof(struct dp_config, f), sizeof(((struct dp_config *)0)->f)

#define DP_TUNE_WAL_BATCH_BYTES_MIN 4096u
#define DP_TUNE_WAL_BATCH_BYTES_MAX (1u << 20) /* = storage/wal.c's default batch_bytes_cap */
#define DP_TUNE_WAL_INFLIGHT_MIN    2u
#define DP_TUNE_WAL_INFLIGHT_MAX    16u
#define DP_TUNE_WAL_DEADLINE_US_MAX 100000u /* 100 ms */

_Static_assert(DP_TUNE_WAL_BATCH_BYTES_MIN == WAL_BLOCK_BYTES, "wal_set_batch_bytes_max floor");
_Static_assert(DP_TUNE_WAL_BATCH_BYTES_MAX <= WAL_BATCH_BYTES_LIMIT, "a batch's bound");
_Static_assert(DP_TUNE_WAL_INFLIGHT_MAX == WAL_INFLIGHT_LIMIT, "wal_set_inflight_max bound");

static int dp_tune_wal_batch_bytes(const struct dp_tune_target *to, uint64_t value)
{
    return to->wal ? wal_set_batch_bytes_max(to->wal, (uint32_t)value) : -ENOTSUP;
}

static int dp_tune_wal_deadline(const struct dp_tune_target *to, uint64_t value)
{
    return to->wal ? wal_set_batch_deadline_ns(to->wal, value * 1000u) : -ENOTSUP;
}

static int dp_tune_wal_inflight(const struct dp_tune_target *to, uint64_t value)
{
    return to->wal ? wal_set_inflight_max(to->wal, (uint32_t)value) : -ENOTSUP;
}

/* The table. Keys of [dataplane] are bare names (the idle back-off's `tune` names), the
 * others "section.name". Live rows come in the order the "unknown key" message lists them. */
static const struct dp_tunable dp_tunables[] = {
    { "node.udp_port", "node", "udp_port", 1, 65535, false, 0, "UDP port number",
      DP_TUNE_START_ONLY, DP_TUNE_FIELD(udp_port), NULL },
    { "rx_queues", "dataplane", "rx_queues", 1, DP_RX_QUEUES_MAX, false, 0, "queues per port",
      DP_TUNE_START_ONLY, DP_TUNE_FIELD(rx_queues), NULL },
    { "rx_desc", "dataplane", "rx_desc", 64, 16384, true, 0, "descriptors per queue",
      DP_TUNE_START_ONLY, DP_TUNE_FIELD(rx_desc), NULL },
    { "tx_desc", "dataplane", "tx_desc", 64, 16384, true, 0, "descriptors per queue",
      DP_TUNE_START_ONLY, DP_TUNE_FIELD(tx_desc), NULL },
    { "burst", "dataplane", "burst", 1, 256, false, 0, "packets", DP_TUNE_START_ONLY,
      DP_TUNE_FIELD(burst), NULL },
    { "ring_size", "dataplane", "ring_size", 64, 1u << 20, true, 0, "events", DP_TUNE_START_ONLY,
      DP_TUNE_FIELD(ring_size), NULL },
    { "mempool_size", "dataplane", "mempool_size", 1024, 1u << 24, false, 0, "mbufs",
      DP_TUNE_START_ONLY, DP_TUNE_FIELD(mempool_size), NULL },
    { "partitions", "dataplane", "partitions", 1, 65536, true, 0, "partitions", DP_TUNE_START_ONLY,
      DP_TUNE_FIELD(partitions), NULL },
    { "table_capacity", "dataplane", "table_capacity", 1024, 4000000000ull, false, 0, "workflows",
      DP_TUNE_START_ONLY, DP_TUNE_FIELD(table_capacity), NULL },
    { "keystore_bytes", "dataplane", "keystore_bytes", 65536, 1ull << 40, false, 0, "bytes",
      DP_TUNE_START_ONLY, DP_TUNE_FIELD(keystore_bytes), NULL },
    { "idle_sleep_max_us", "dataplane", "idle_sleep_max_us", 0, 100000, false, 0, "microseconds",
      DP_TUNE_LIVE_NODE, DP_TUNE_FIELD(idle_sleep_max_us), NULL },
    { "idle_pause_polls", "dataplane", "idle_pause_polls", 0, 1000000, false, 0, "polls",
      DP_TUNE_LIVE_NODE, DP_TUNE_FIELD(idle_pause_polls), NULL },
    { "icmp_rate", "dataplane", "icmp_rate", 0, 1000000, false, 0,
      "echo answers per second per core", DP_TUNE_START_ONLY, DP_TUNE_FIELD(icmp_rate), NULL },
    { "reply_rate", "dataplane", "reply_rate", 0, 10000000, false, 0,
      "ACK datagrams per second per source", DP_TUNE_START_ONLY, DP_TUNE_FIELD(reply_rate), NULL },
    { "wal.segment_bytes", "wal", "segment_bytes", 1u << 20, 1ull << 32, false, 4096, "bytes",
      DP_TUNE_START_ONLY, DP_TUNE_FIELD(wal_segment_bytes), NULL },
    { "wal.batch_bytes_max", "wal", "batch_bytes_max", DP_TUNE_WAL_BATCH_BYTES_MIN,
      DP_TUNE_WAL_BATCH_BYTES_MAX, false, 0, "bytes", DP_TUNE_LIVE_OWNER,
      DP_TUNE_FIELD(wal_batch_bytes_max), dp_tune_wal_batch_bytes },
    { "wal.batch_deadline_us", "wal", "batch_deadline_us", 0, DP_TUNE_WAL_DEADLINE_US_MAX, false, 0,
      "microseconds", DP_TUNE_LIVE_OWNER, DP_TUNE_FIELD(wal_batch_deadline_us),
      dp_tune_wal_deadline },
    { "wal.inflight_max", "wal", "inflight_max", DP_TUNE_WAL_INFLIGHT_MIN, DP_TUNE_WAL_INFLIGHT_MAX,
      false, 0, "batches", DP_TUNE_LIVE_OWNER, DP_TUNE_FIELD(wal_inflight_max),
      dp_tune_wal_inflight },
    { "wal.ack_groups", "wal", "ack_groups", 64, 1u << 20, true, 0, "frames per owner",
      DP_TUNE_START_ONLY, DP_TUNE_FIELD(ack_groups), NULL },
    { "runtime.instance_bytes", "runtime", "instance_bytes", 64, 16384, false, 0, "bytes",
      DP_TUNE_START_ONLY, DP_TUNE_FIELD(instance_bytes), NULL },
    { "runtime.tasks_per_partition", "runtime", "tasks_per_partition", 1, 65536, false, 0,
      "activity runs", DP_TUNE_START_ONLY, DP_TUNE_FIELD(tasks_per_partition), NULL },
    { "runtime.activity_slots", "runtime", "activity_slots", 16, 65536, true, 0,
      "tasks (and results) per owner in the channel to sigflow-control", DP_TUNE_START_ONLY,
      DP_TUNE_FIELD(activity_slots), NULL },
    { "runtime.tombstone_retention_s", "runtime", "tombstone_retention_s", 0, 365u * 86400u, false,
      0, "seconds", DP_TUNE_START_ONLY, DP_TUNE_FIELD(tombstone_retention_s), NULL },
    { "snapshot.interval_s", "snapshot", "interval_s", 0, 7u * 86400u, false, 0, "seconds",
      DP_TUNE_LIVE_NODE, DP_TUNE_FIELD(snapshot_interval_s), NULL },
    { "snapshot.log_bytes", "snapshot", "log_bytes", 0, 1ull << 40, false, 0, "bytes",
      DP_TUNE_LIVE_NODE, DP_TUNE_FIELD(snapshot_log_bytes), NULL },
    { "history.retention_s", "history", "retention_s", 0, 3650u * 86400u, false, 0, "seconds",
      DP_TUNE_LIVE_NODE, DP_TUNE_FIELD(history_retention_s), NULL },
    { "history.retention_bytes", "history", "retention_bytes", 0, 1ull << 50, false, 0, "bytes",
      DP_TUNE_LIVE_NODE, DP_TUNE_FIELD(history_retention_bytes), NULL },
};

#define DP_TUNE_COUNT (sizeof(dp_tunables) / sizeof(dp_tunables[0]))

const struct dp_tunable *dp_tune_table(size_t *count)
{
    *count = DP_TUNE_COUNT;
    return dp_tunables;
}

const struct dp_tunable *dp_tune_find(const char *key)
{
    for (size_t i = 0; i < DP_TUNE_COUNT; i++)
        if (strcmp(dp_tunables[i].key, key) == 0)
            return &dp_tunables[i];
    return NULL;
}

const struct dp_tunable *dp_tune_find_config(const char *section, const char *name)
{
    for (size_t i = 0; i < DP_TUNE_COUNT; i++)
        if (strcmp(dp_tunables[i].section, section) == 0 && strcmp(dp_tunables[i].name, name) == 0)
            return &dp_tunables[i];
    return NULL;
}

int dp_tune_number(const char *text, uint64_t *out)
{
    if (text[0] == '-' || text[0] == ' ' || text[0] == '\t' || text[0] == '\0')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 0);
    if (errno != 0 || end == text)
        return -EINVAL;
    uint64_t mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1000ull, end++;
    else if (*end == 'M')
        mult = 1000000ull, end++;
    else if (*end == 'G')
        mult = 1000000000ull, end++;
    if (*end != '\0' || v > UINT64_MAX / mult)
        return -EINVAL;
    *out = (uint64_t)v * mult;
    return 0;
}

/* "t: must be an integer in MIN..MAX[, a power of 2][, a multiple of N] (unit), not GOT" */
static void dp_tune_refusal(const struct dp_tunable *t, const char *got, char *err, size_t len)
{
    char extra[48] = "";
    if (t->pow2)
        snprintf(extra, sizeof(extra), ", a power of 2");
    else if (t->multiple)
        snprintf(extra, sizeof(extra), ", a multiple of %" PRIu32, t->multiple);
    snprintf(err, len, "%s: must be an integer in %" PRIu64 "..%" PRIu64 "%s (%s), not %s", t->key,
             t->min, t->max, extra, t->unit, got);
}

int dp_tune_check(const struct dp_tunable *t, uint64_t value, char *err, size_t len)
{
    bool ok = value >= t->min && value <= t->max;
    ok = ok && (!t->pow2 || (value != 0 && (value & (value - 1)) == 0));
    ok = ok && (t->multiple == 0 || value % t->multiple == 0);
    if (ok)
        return 0;
    char got[24];
    snprintf(got, sizeof(got), "%" PRIu64, value);
    dp_tune_refusal(t, got, err, len);
    return -ERANGE;
}

int dp_tune_parse(const struct dp_tunable *t, const char *text, uint64_t *value, char *err,
                  size_t len)
{
    uint64_t v;
    if (dp_tune_number(text, &v) != 0) {
        char got[48];
        snprintf(got, sizeof(got), "'%.40s'", text); /* a long value is cut in the message */
        dp_tune_refusal(t, got, err, len);
        return -EINVAL;
    }
    int rc = dp_tune_check(t, v, err, len);
    if (rc == 0)
        *value = v;
    return rc;
}

/* "unknown key (k1, k2, ...)": the live keys, in table order. */
static void dp_tune_unknown(char *err, size_t len)
{
    size_t used = (size_t)snprintf(err, len, "unknown key (");
    const char *sep = "";
    for (size_t i = 0; i < DP_TUNE_COUNT && used < len; i++) {
        if (dp_tunables[i].live == DP_TUNE_START_ONLY)
            continue;
        used += (size_t)snprintf(err + used, len - used, "%s%s", sep, dp_tunables[i].key);
        sep = ", ";
    }
    if (used < len)
        snprintf(err + used, len - used, ")");
}

int dp_tune_prepare(const char *key, uint64_t value, const struct dp_tunable **out, char *err,
                    size_t len)
{
    const struct dp_tunable *t = dp_tune_find(key);
    if (!t) {
        dp_tune_unknown(err, len);
        return -ENOENT;
    }
    if (t->live == DP_TUNE_START_ONLY) {
        snprintf(err, len, "%s: set at start-up only ([%s] %s in the configuration file)", t->key,
                 t->section, t->name);
        return -EPERM;
    }
    int rc = dp_tune_check(t, value, err, len);
    if (rc != 0)
        return rc;
    *out = t;
    return 0;
}

void dp_tune_store(const struct dp_tunable *t, struct dp_config *cfg, uint64_t value)
{
    char *field = (char *)cfg + t->offset;
    switch (t->size) {
    case sizeof(uint16_t):
        __atomic_store_n((uint16_t *)(void *)field, (uint16_t)value, __ATOMIC_RELAXED);
        break;
    case sizeof(uint32_t):
        __atomic_store_n((uint32_t *)(void *)field, (uint32_t)value, __ATOMIC_RELAXED);
        break;
    case sizeof(uint64_t):
        __atomic_store_n((uint64_t *)(void *)field, value, __ATOMIC_RELAXED);
        break;
    default:
        abort(); /* a row naming a field of another size: a programmer error */
    }
}

uint64_t dp_tune_load(const struct dp_tunable *t, const struct dp_config *cfg)
{
    const char *field = (const char *)cfg + t->offset;
    switch (t->size) {
    case sizeof(uint16_t):
        return __atomic_load_n((const uint16_t *)(const void *)field, __ATOMIC_RELAXED);
    case sizeof(uint32_t):
        return __atomic_load_n((const uint32_t *)(const void *)field, __ATOMIC_RELAXED);
    case sizeof(uint64_t):
        return __atomic_load_n((const uint64_t *)(const void *)field, __ATOMIC_RELAXED);
    default:
        abort(); /* a row naming a field of another size: a programmer error */
    }
}
