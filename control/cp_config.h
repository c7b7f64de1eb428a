/*
 * cp_config.h — sigflow-control's configuration file (INI, like sigflowd's; docs/control.md
 * has every key):
 *
 *   [control]
 *   dir = /var/lib/sigflow          the node's directory: DIR/activity.sock is sigflowd's end
 *                                   of the channel, DIR/control.sock ours, DIR/dead-letter.jsonl
 *   grace_s = 10                    at SIGTERM: how long attempts in flight may finish
 *   http = 127.0.0.1:7780           health and metrics over HTTP (IPv4 ADDRESS:PORT, bound
 *                                   to that address only); empty: this default; off: none
 *
 *   [executor NAME]                 one per executor: kind and its own keys (cp_exec.h)
 *   kind = webhook | mqtt | exec | log
 *   concurrency = 64                attempts in flight at most (live: sigflowctl executor tune)
 *   ...
 *
 *   [route]                         which executor runs which activity
 *   loyalty.notify_tier = crm       TYPE.ACTIVITY = NAME (first match wins: exact, then
 *   reprovision = devices           ACTIVITY alone, then *)
 *   * = dry
 *
 * Errors name the file, the line and the reason; a bad file refuses to start.
 */
#ifndef CP_CONFIG_H
#define CP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "cp_exec.h"

#define CP_EXECUTORS_MAX     64u
#define CP_ROUTES_MAX        256u
#define CP_PATH_MAX          512u
#define CP_GRACE_S_DEFAULT   10u
#define CP_GRACE_S_MAX       3600u
#define CP_HTTP_ADDR_DEFAULT "127.0.0.1"
#define CP_HTTP_PORT_DEFAULT 7780u

struct cp_executor_config {
    char name[CP_EXEC_NAME_MAX];
    const struct cp_executor_ops *ops;
    unsigned concurrency;
    unsigned line;
    struct cp_kv kv[CP_KV_MAX]; /* the keys other than kind and concurrency */
    unsigned kv_count;
};

struct cp_route {
    char pattern[CHAN_TYPE_MAX + CHAN_NAME_MAX + 2]; /* TYPE.ACTIVITY, ACTIVITY or * */
    char executor_name[CP_EXEC_NAME_MAX];
    unsigned executor; /* index into executors (resolved after the file is read) */
    unsigned line;
};

struct cp_config {
    char dir[CP_PATH_MAX];
    unsigned grace_s;
    bool http_enabled;  /* [control] http is not off */
    char http_addr[16]; /* IPv4 dotted quad */
    unsigned http_port; /* 1..65535 */
    struct cp_executor_config executors[CP_EXECUTORS_MAX];
    unsigned executor_count;
    struct cp_route routes[CP_ROUTES_MAX];
    unsigned route_count;
};

/**
 * Parse `path` into *cfg. Returns 0, or -EINVAL with err holding "path:line: reason"
 * (unknown section or key, bad number, unknown executor kind, a route to an executor that is
 * not defined, duplicate names, no [control] dir), or -errno when the file cannot be read.
 * Executors' own keys are checked later, by their init (cp_executor_ops).
 */
int cp_config_load(const char *path, struct cp_config *cfg, char *err, size_t err_cap);

/** The executor index for type.activity (names NUL-terminated), or -ENOENT. */
int cp_config_route(const struct cp_config *cfg, const char *type, const char *activity);

/** The executor kind named `kind`, or NULL. */
const struct cp_executor_ops *cp_config_kind(const char *kind);

#endif
