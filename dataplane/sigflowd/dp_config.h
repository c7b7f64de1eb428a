/*
 * dp_config.h — sigflowd's configuration: an INI file (libinih), every key documented in
 * README.md ("Configuration"). A bad key or value refuses to start with "file:line: reason".
 * Numeric keys, their ranges and units are the rows of dp_tune.h's table, which `tune`
 * reads too: a number the file refuses, `tune` refuses with the same reason.
 */
#ifndef DP_CONFIG_H
#define DP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_PORTS_MAX        8
#define DP_LCORES_MAX       64
#define DP_RX_QUEUES_MAX    16
#define DP_PORT_NAME_MAX    64
#define DP_PATH_MAX         256
#define DP_QUOTAS_MAX       16 /* [quota] entries (one per workflow type) */
#define DP_CONFIG_ERROR_MAX 320

enum dp_source_kind {
    DP_SOURCE_ETHDEV = 0, /* DPDK ports (PCI or vdev) */
    DP_SOURCE_SOCKET = 1, /* kernel UDP sockets (recvmmsg), the baseline */
    DP_SOURCE_NONE = 2,   /* no receive source: benchmarks feed dp_rx_route_payload */
};

struct dp_config {
    /* [node] */
    uint8_t ipv4[4];
    bool has_ipv4;
    uint8_t ipv6[16];
    bool has_ipv6;
    uint16_t udp_port;
    char dir[DP_PATH_MAX]; /* runtime directory: socket, logs, data */
    /* [dataplane] */
    enum dp_source_kind source;
    char ports[DP_PORTS_MAX][DP_PORT_NAME_MAX];
    unsigned port_count;
    unsigned rx_queues; /* per port, spread over rx lcores; RSS when supported */
    unsigned rx_desc, tx_desc;
    unsigned burst;          /* packets per rx burst, events per ring burst */
    unsigned ring_size;      /* events per (source, owner) ring, power of 2 */
    unsigned mempool_size;   /* mbufs */
    uint32_t partitions;     /* power of 2 */
    uint64_t table_capacity; /* workflows on the whole node */
    uint64_t keystore_bytes; /* id key store on the whole node */
    char rx_lcores[128];     /* "all" or a list of lcore ids "0,1" */
    char owner_lcores[128];
    unsigned idle_pause_polls;   /* empty polls spent in rte_pause before sleeping */
    unsigned idle_sleep_max_us;  /* longest back-off sleep */
    unsigned icmp_rate;          /* ICMP/ICMPv6 echo answers per second per core */
    unsigned reply_rate;         /* ACK datagrams per second per source, unauthenticated */
    char auth_keys[DP_PATH_MAX]; /* [auth] keys: the key file ("" : DIR/keys if present) */
    struct {
        char type[33];
        uint64_t max;       /* workflows of the type on the node (running and tombstones) */
    } quota[DP_QUOTAS_MAX]; /* [quota] TYPE = N */
    unsigned quota_count;
    /* [wal] */
    bool wal_enabled; /* false only for benchmarks of the volatile path */
    uint64_t wal_segment_bytes;
    unsigned wal_batch_bytes_max;
    unsigned wal_batch_deadline_us;
    unsigned wal_inflight_max;
    bool wal_direct_io;
    unsigned ack_groups;      /* frames per owner waiting for durability to be ACKed */
    bool wal_fault_injection; /* tests only: the `fault` control command (power cut, EIO) */
    /* [runtime] */
    unsigned instance_bytes;        /* largest instance (header + timers + record) planned for */
    unsigned tasks_per_partition;   /* activity runs in flight per partition */
    uint32_t activity_slots;        /* per owner: tasks and results in the channel (power of 2) */
    unsigned tombstone_retention_s; /* how long a completed workflow refuses new signals */
    /* [snapshot] */
    unsigned snapshot_interval_s; /* take one this often (0: not by time) */
    uint64_t snapshot_log_bytes;  /* ... or after this much log (0: not by size) */
    /* [history] */
    unsigned history_retention_s;     /* keep log segments this long for history (0: off) */
    uint64_t history_retention_bytes; /* ... and at most this much log per core (0: off) */
};

/** Fill *cfg with the defaults documented in README.md. Can't fail. */
void dp_config_defaults(struct dp_config *cfg);

/**
 * Load `path` over the current values of *cfg. Returns 0, or -1 with a message
 * "path:line: reason" (or "path: reason") in err[0..err_len). Unknown sections or keys,
 * malformed values and out-of-range values are errors; checks across keys run at the end.
 */
int dp_config_load(struct dp_config *cfg, const char *path, char *err, size_t err_len);

/** Parse "0,1,3" / "all" into ids[] (max entries); returns the count, or -1 if malformed. */
int dp_config_lcore_list(const char *spec, unsigned *ids, unsigned max);

#endif /* DP_CONFIG_H */
