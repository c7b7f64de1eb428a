/*
 * dp_ctl.c — the control socket: a unix stream socket (0600, in the 0700 runtime dir)
 * served by one thread, off the data path. Protocol: one JSON object per line in, one
 * JSON object per line out: {"cmd":"stats"} → {"ok":true,...}; errors are
 * {"ok":false,"error":"..."}. Commands: stats, describe {type,id}, list {type?,limit?,after?}.
 *
 * Reading counters: each lcore writes only its own; this thread sums them (relaxed).
 * Reading workflows: the owner lcore answers through its mailbox ring; this thread waits
 * for the answer with a timeout and never touches a table itself.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_ethdev.h>

#include "dp.h"
#include "sf_io.h"

#define DP_CTL_LINE_MAX       (2u << 20) /* a deploy carries a whole .flow file */
#define DP_CTL_REQ_TIMEOUT_MS 2000
#define DP_CTL_XSTATS_MAX     512

static pthread_t dp_ctl_thread;
static int dp_ctl_fd = -1;
static volatile bool dp_ctl_quit;
static char dp_ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static int dp_ctl_ask(unsigned owner, struct dp_req *req);

static json_t *dp_ctl_error(const char *msg)
{
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static json_t *dp_ctl_drops(const struct dp_lcore *lc)
{
    json_t *d = json_object();
    for (unsigned i = 0; i < DP_DROP_COUNT; i++)
        json_object_set_new(d, dp_drop_name(i), json_integer((json_int_t)lc->drop[i]));
    for (unsigned v = 0; v < PKT_VERDICT_COUNT; v++)
        if (pkt_verdict_is_drop(v))
            json_object_set_new(d, pkt_verdict_name(v), json_integer((json_int_t)lc->drop_pkt[v]));
    for (unsigned e = 1; e < SF_ERR_COUNT; e++) {
        if (-(int)e == SF_ERR_NO_SPACE)
            continue; /* encoder-only code */
        json_object_set_new(d, sf_err_name(-(int)e), json_integer((json_int_t)lc->drop_proto[e]));
    }
    return d;
}

/* Add every integer member of src into dst (creating members as needed). */
static void dp_ctl_sum_into(json_t *dst, json_t *src)
{
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v)
    {
        if (!json_is_integer(v))
            continue;
        json_t *cur = json_object_get(dst, k);
        json_int_t base = cur ? json_integer_value(cur) : 0;
        json_object_set_new(dst, k, json_integer(base + json_integer_value(v)));
    }
}

static json_t *dp_ctl_core(const struct dp_lcore *lc)
{
    json_t *c =
        json_pack("{s:i, s:b, s:b}", "lcore", (int)lc->lcore_id, "rx", lc->rx, "owner", lc->owner);
    for (unsigned i = 0; i < DP_C_COUNT; i++)
        json_object_set_new(c, dp_counter_name(i), json_integer((json_int_t)lc->counters[i]));
    json_t *qs = json_array();
    for (unsigned q = 0; q < lc->rxq_count; q++)
        json_array_append_new(qs, json_pack("{s:i, s:i, s:I}", "port", lc->rxq[q].port, "queue",
                                            lc->rxq[q].queue, "packets",
                                            (json_int_t)lc->rxq[q].packets));
    json_object_set_new(c, "rx_queues", qs);
    json_object_set_new(c, "drops", dp_ctl_drops(lc));
    if (lc->owner) {
        json_t *st = json_object();
        for (unsigned i = 0; i < RT_STATUS_COUNT; i++)
            json_object_set_new(st, rt_status_name((int)i),
                                json_integer((json_int_t)lc->rt_status[i]));
        json_object_set_new(c, "signals", st);
    }
    if (lc->owner) {
        struct dp_req *req = calloc(1, sizeof(*req));
        if (req) {
            req->kind = DP_REQ_WAL_STATS;
            if (dp_ctl_ask(lc->owner_index, req) == 0 && req->result == 0) {
                const struct wal_stats *w = &req->wal_stats;
                json_object_set_new(
                    c, "wal",
                    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:I}", "durable_lsn",
                              (json_int_t)req->durable_lsn, "next_lsn", (json_int_t)req->next_lsn,
                              "records", (json_int_t)w->records, "batches", (json_int_t)w->batches,
                              "bytes_written", (json_int_t)w->bytes_written, "reserve_overloaded",
                              (json_int_t)w->reserve_overloaded, "segments_created",
                              (json_int_t)w->segments_created, "inflight", (int)w->inflight,
                              "inflight_peak", (int)w->inflight_peak, "acks_waiting",
                              (json_int_t)req->acks_waiting));
                const struct dp_snap *sn = &lc->snap;
                json_object_set_new(c, "snapshots",
                                    json_pack("{s:I, s:I, s:I, s:f, s:f, s:s}", "taken",
                                              (json_int_t)sn->count, "errors",
                                              (json_int_t)sn->errors, "segments_released",
                                              (json_int_t)sn->segments_released, "stall_us_max",
                                              (double)sn->stall_ns_max / 1e3, "last_duration_s",
                                              (double)sn->last_duration_ns / 1e9, "phase",
                                              sn->phase == DP_SNAP_IDLE ? "idle" : "writing"));
                json_object_set_new(json_object_get(c, "snapshots"), "steps",
                                    json_integer((json_int_t)sn->steps));
                json_object_set_new(json_object_get(c, "snapshots"), "steps_over_1ms",
                                    json_integer((json_int_t)sn->steps_over_1ms));
                json_object_set_new(
                    json_object_get(c, "snapshots"), "stall_us_max_by_phase",
                    json_pack("{s:f, s:f, s:f, s:f, s:f}", "begin",
                              (double)sn->stall_phase_ns[DP_SNAP_IDLE] / 1e3, "partitions",
                              (double)sn->stall_phase_ns[DP_SNAP_PARTS] / 1e3, "commit",
                              (double)sn->stall_phase_ns[DP_SNAP_COMMIT] / 1e3, "wait",
                              (double)sn->stall_phase_ns[DP_SNAP_WAIT] / 1e3, "manifest",
                              (double)sn->stall_phase_ns[DP_SNAP_MANIFEST] / 1e3));
                free(req);
            } else if (req->result == -ENOTSUP) {
                free(req);
            } /* else: timed out, the owner may still write it: leave it */
        }
    }
    return c;
}

static json_t *dp_ctl_port(const struct dp_port *p)
{
    struct rte_eth_stats st;
    memset(&st, 0, sizeof(st));
    rte_eth_stats_get(p->port_id, &st);
    char mac[18];
    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", p->addr.mac[0], p->addr.mac[1],
             p->addr.mac[2], p->addr.mac[3], p->addr.mac[4], p->addr.mac[5]);
    json_t *j = json_pack("{s:i, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "port", p->port_id,
                          "name", p->name, "mac", mac, "rx_queues", p->rx_queues, "ipackets",
                          (json_int_t)st.ipackets, "opackets", (json_int_t)st.opackets, "imissed",
                          (json_int_t)st.imissed, "ierrors", (json_int_t)st.ierrors, "oerrors",
                          (json_int_t)st.oerrors, "rx_nombuf", (json_int_t)st.rx_nombuf);
    static struct rte_eth_xstat_name names[DP_CTL_XSTATS_MAX];
    static struct rte_eth_xstat vals[DP_CTL_XSTATS_MAX];
    int n = rte_eth_xstats_get_names(p->port_id, names, DP_CTL_XSTATS_MAX);
    int m = n > 0 && n <= DP_CTL_XSTATS_MAX ? rte_eth_xstats_get(p->port_id, vals, (unsigned)n) : 0;
    json_t *x = json_object();
    for (int i = 0; i < m && i < n; i++)
        json_object_set_new(x, names[vals[i].id].name, json_integer((json_int_t)vals[i].value));
    json_object_set_new(j, "xstats", x);
    return j;
}

static json_t *dp_ctl_stats(void)
{
    json_t *total = json_object();
    json_t *drops = json_object();
    json_t *cores = json_array();
    for (unsigned i = 0; i < dp_node.lcore_count; i++) {
        json_t *c = dp_ctl_core(dp_node.lcores[i]);
        dp_ctl_sum_into(total, c);
        dp_ctl_sum_into(drops, json_object_get(c, "drops"));
        json_array_append_new(cores, c);
    }
    json_object_del(total, "lcore");
    json_int_t drop_sum = 0;
    const char *k;
    json_t *v;
    json_object_foreach(drops, k, v) drop_sum += json_integer_value(v);
    json_object_set_new(total, "drops", drops);
    json_t *sig = json_object();
    for (unsigned i = 0; i < dp_node.lcore_count; i++)
        dp_ctl_sum_into(sig, json_object_get(json_array_get(cores, i), "signals"));
    json_object_set_new(total, "signals", sig);
    json_object_set_new(total, "drops_total", json_integer(drop_sum));
    json_t *ports = json_array();
    for (unsigned p = 0; p < dp_node.port_count; p++)
        json_array_append_new(ports, dp_ctl_port(&dp_node.ports[p]));
    double uptime = (double)(dp_now_ns() - dp_node.start_realtime_ns) / 1e9;
    json_t *node =
        json_pack("{s:f, s:i, s:i, s:i, s:i, s:I, s:s, s:i}", "uptime_s", uptime, "lcores",
                  (int)dp_node.lcore_count, "rx_lcores", (int)dp_node.rx_count, "owner_lcores",
                  (int)dp_node.owner_count, "partitions", (int)dp_node.cfg.partitions,
                  "table_capacity", (json_int_t)dp_node.cfg.table_capacity, "source",
                  dp_node.cfg.source == DP_SOURCE_SOCKET ? "socket" : "ethdev", "udp_port",
                  dp_node.cfg.udp_port);
    json_object_set_new(node, "epoch", json_integer((json_int_t)dp_node.epoch));
    json_t *rec = json_pack("{s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I}", "snapshot_load_s",
                            (double)dp_node.recovery.load_ns / 1e9, "replay_s",
                            (double)dp_node.recovery.replay_ns / 1e9, "checkpoint_s",
                            (double)dp_node.recovery.checkpoint_ns / 1e9, "total_s",
                            (double)dp_node.recovery.total_ns / 1e9, "records_read",
                            (json_int_t)dp_node.recovery.records, "records_applied",
                            (json_int_t)dp_node.recovery.applied, "snapshot_partitions",
                            (json_int_t)dp_node.recovery.snapshot_parts, "from_epoch",
                            (json_int_t)dp_node.recovery.from_epoch);
    return json_pack("{s:b, s:o, s:o, s:o, s:o, s:o}", "ok", 1, "node", node, "total", total,
                     "cores", cores, "ports", ports, "recovery", rec);
}

/* Post a request to an owner's mailbox and wait for the answer. 0 or -ETIMEDOUT/-EAGAIN. */
static int dp_ctl_ask(unsigned owner, struct dp_req *req)
{
    atomic_store(&req->done, 0);
    if (rte_ring_mp_enqueue(dp_node.owner_by_index[owner]->mailbox, req) != 0)
        return -EAGAIN;
    struct timespec pause = { 0, 50000 };
    for (int waited_us = 0; waited_us < DP_CTL_REQ_TIMEOUT_MS * 1000; waited_us += 50) {
        if (atomic_load_explicit(&req->done, memory_order_acquire))
            return 0;
        nanosleep(&pause, NULL);
    }
    return -ETIMEDOUT;
}

static json_t *dp_ctl_entry_json(const struct dp_list_entry *e)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:i}", "type", e->type, "id", e->id, "state",
                     e->state, "version", (int)e->version, "signals", (json_int_t)e->signals,
                     "last_event_id", (json_int_t)e->last_event_id, "partition", (int)e->partition);
}

static json_t *dp_ctl_value(const struct sf_value *v)
{
    switch (v->type) {
    case SF_VAL_INT:
        return json_integer(v->i);
    case SF_VAL_FLOAT:
        return json_real(v->f);
    case SF_VAL_BOOL:
        return json_boolean(v->b);
    case SF_VAL_TEXT:
        return json_stringn(v->text.ptr, v->text.len);
    default:
        return json_null();
    }
}

/* The whole instance: variables, queues, timers, activities in flight. */
static json_t *dp_ctl_describe_json(const struct rt_describe *d)
{
    json_t *vars = json_object(), *queues = json_object(), *timers = json_array(),
           *acts = json_array();
    for (unsigned i = 0; i < d->nvars; i++)
        json_object_set_new(vars, d->vars[i].name, dp_ctl_value(&d->vars[i].value));
    for (unsigned q = 0; q < d->nqueues; q++) {
        json_t *items = json_array();
        for (unsigned i = 0; i < d->queues[q].len; i++)
            json_array_append_new(items, dp_ctl_value(&d->queues[q].items[i]));
        json_object_set_new(queues, d->queues[q].name, items);
    }
    for (unsigned t = 0; t < d->ntimers; t++)
        json_array_append_new(timers,
                              json_pack("{s:s, s:s, s:i, s:I}", "name", d->timers[t].name, "kind",
                                        d->timers[t].kind, "slot", (int)d->timers[t].slot, "due_ns",
                                        (json_int_t)d->timers[t].due_ns));
    for (unsigned a = 0; a < d->nactivities; a++)
        json_array_append_new(
            acts, json_pack("{s:s, s:i, s:I, s:I}", "activity", d->activities[a].name, "index",
                            (int)d->activities[a].index, "seq", (json_int_t)d->activities[a].seq,
                            "attempts", (json_int_t)d->activities[a].attempts));
    return json_pack("{s:b, s:s, s:s#, s:i, s:s, s:b, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}",
                     "ok", 1, "type", d->type, "id", d->id, (int)d->id_len, "version",
                     (int)d->version, "state", d->state, "completed", d->completed, "signals",
                     (json_int_t)d->signals, "last_event_id", (json_int_t)d->last_event_id,
                     "dedupe_hwm", (json_int_t)d->dedupe_hwm, "created_ns",
                     (json_int_t)d->created_ns, "vars", vars, "queues", queues, "timers", timers,
                     "activities", acts);
}

static bool dp_ctl_name(json_t *req, const char *key, size_t max, const char **out, size_t *len)
{
    json_t *v = json_object_get(req, key);
    if (!json_is_string(v))
        return false;
    *out = json_string_value(v);
    *len = json_string_length(v);
    return *len > 0 && *len <= max;
}

/* A request about workflow (type, id) for its owner: kind, key and partition filled; *owner
 * gets the owner index. NULL when out of memory. */
static struct dp_req *dp_ctl_workflow_req(enum dp_req_kind kind, const char *type, size_t type_len,
                                          const char *id, size_t id_len, unsigned *owner)
{
    struct dp_req *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->kind = kind;
    req->key = wf_key_make(type, type_len, id, id_len);
    req->partition = wf_key_partition(req->key, dp_node.partmap->count);
    *owner = wf_partmap_owner(dp_node.partmap, req->partition);
    return req;
}

static json_t *dp_ctl_describe(json_t *jreq)
{
    const char *type, *id;
    size_t type_len, id_len;
    if (!dp_ctl_name(jreq, "type", SF_TYPE_LEN_MAX, &type, &type_len) ||
        !dp_ctl_name(jreq, "id", SF_ID_LEN_MAX, &id, &id_len))
        return dp_ctl_error("describe needs \"type\" (1..32 bytes) and \"id\" (1..64 bytes)");
    unsigned owner;
    struct dp_req *req = dp_ctl_workflow_req(DP_REQ_DESCRIBE, type, type_len, id, id_len, &owner);
    if (!req)
        return dp_ctl_error("out of memory");
    int rc = dp_ctl_ask(owner, req);
    if (rc == -ETIMEDOUT)
        return dp_ctl_error("owner core did not answer in time"); /* req stays with the owner */
    json_t *out;
    if (rc != 0)
        out = dp_ctl_error("owner mailbox full, retry");
    else if (!req->found)
        out = json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error", "workflow not found", "type",
                        type, "id", id);
    else {
        out = dp_ctl_describe_json(&req->desc);
        json_object_set_new(out, "partition", json_integer(req->partition));
        json_object_set_new(out, "owner_lcore",
                            json_integer(dp_node.owner_by_index[owner]->lcore_id));
    }
    free(req);
    return out;
}

/* ---- history: follow the workflow's back-links through the logs ----------------------- */

#define DP_HISTORY_LIMIT_MAX 100000
#define DP_HISTORY_WAIT_MS   2000 /* the newest records may still be on their way to disk */

static const struct flow_def *dp_ctl_def(unsigned def_id)
{
    uint64_t g = __atomic_load_n(&dp_node.registry_gen, __ATOMIC_ACQUIRE);
    const struct rt_def *d = rt_registry_def(dp_node.registries[g], def_id);
    return d ? d->def : NULL;
}

static void dp_ctl_time(json_t *e, const char *key, uint64_t ns)
{
    char buf[48];
    time_t secs = (time_t)(ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%06uZ", (unsigned)(ns % 1000000000ull / 1000));
    json_object_set_new(e, key, json_string(buf));
}

/* One history entry from a record of the workflow; *prev gets its back-link. -EBADMSG when
 * the record is not one of a workflow's inputs or notes. */
static int dp_ctl_history_entry(const struct wal_record_view *v, const struct flow_def *def,
                                json_t **out, struct rt_hlink *prev)
{
    const uint8_t *p = v->payload;
    json_t *e = json_object();
    json_object_set_new(e, "lsn", json_integer((json_int_t)v->lsn));
    switch (v->type) {
    case DP_WAL_SIGNAL: {
        if (v->len < DP_WAL_SIGNAL_HDR)
            goto bad;
        uint8_t flags = p[16], type_len = p[17], id_len = p[18], sig_len = p[19];
        uint16_t fields_len = (uint16_t)(p[20] | p[21] << 8);
        if (DP_WAL_SIGNAL_HDR + (uint32_t)type_len + id_len + sig_len + fields_len != v->len)
            goto bad;
        *prev = dp_hlink_get(p + 24);
        const char *sig = (const char *)p + DP_WAL_SIGNAL_HDR + type_len + id_len;
        const uint8_t *fields = (const uint8_t *)sig + sig_len;
        json_object_set_new(e, "kind", json_string("signal"));
        json_object_set_new(e, "signal", json_stringn(sig, sig_len));
        if (flags & DP_EV_HAS_EVENT_ID)
            json_object_set_new(e, "event_id", json_integer((json_int_t)dp_get64(p)));
        dp_ctl_time(e, "received", dp_get64(p + 8));
        json_object_set_new(e, "received_ns", json_integer((json_int_t)dp_get64(p + 8)));
        json_t *fj = NULL;
        if (flags & DP_EV_FIELDS_JSON) {
            fj = json_loadb((const char *)fields, fields_len, 0, NULL);
        } else {
            struct sf_value vals[FLOW_FIELDS_MAX];
            int n = sf_fields_decode(fields, fields_len, vals, FLOW_FIELDS_MAX);
            int si = def ? flow_def_signal_index(def, sig, sig_len) : -1;
            bool named = si >= 0 && flow_def_signal_field_count(def, (unsigned)si) == n;
            fj = named ? json_object() : json_array();
            for (int i = 0; i < n; i++) {
                if (named)
                    json_object_set_new(fj,
                                        flow_def_signal_field_name(def, (unsigned)si, (unsigned)i),
                                        dp_ctl_value(&vals[i]));
                else
                    json_array_append_new(fj, dp_ctl_value(&vals[i]));
            }
        }
        json_object_set_new(e, "fields", fj ? fj : json_null());
        break;
    }
    case DP_WAL_TIMER:
        if (v->len != 28)
            goto bad;
        *prev = dp_hlink_get(p + 12);
        json_object_set_new(e, "kind", json_string("timer"));
        json_object_set_new(e, "slot", json_integer(dp_get32(p)));
        dp_ctl_time(e, "due", dp_get64(p + 4));
        break;
    case DP_WAL_ACTIVITY: {
        if (v->len != 40)
            goto bad;
        *prev = dp_hlink_get(p + 24);
        unsigned act = (unsigned)(p[0] | p[1] << 8);
        struct flow_activity_info info = { .name = NULL };
        json_object_set_new(e, "kind", json_string(p[2] ? "activity_failed" : "activity_done"));
        if (def && flow_def_activity(def, act, &info) == 0 && info.name)
            json_object_set_new(e, "activity", json_string(info.name));
        json_object_set_new(e, "activity_index", json_integer(act));
        json_object_set_new(e, "seq", json_integer(dp_get32(p + 4)));
        if (!p[2])
            json_object_set_new(e, "result", json_integer((json_int_t)dp_get64(p + 8)));
        dp_ctl_time(e, "time", dp_get64(p + 16));
        break;
    }
    case DP_WAL_NOTE: {
        if (v->len < 24 || v->len != 24u + 8u * p[19])
            goto bad;
        *prev = dp_hlink_get(p);
        unsigned def_id = (unsigned)(p[16] | p[17] << 8);
        const struct flow_def *nd = dp_ctl_def(def_id);
        json_object_set_new(e, "kind", json_string("effects"));
        if (p[18] & 1) {
            json_object_set_new(e, "created", json_true());
            if (nd)
                json_object_set_new(e, "version", json_integer(flow_def_version(nd)));
        }
        if (p[18] & 2)
            json_object_set_new(e, "completed", json_true());
        json_t *sched = json_array();
        for (unsigned i = 0; i < p[19]; i++) {
            const uint8_t *t = p + 24 + 8 * i;
            unsigned act = (unsigned)(t[0] | t[1] << 8);
            struct flow_activity_info info = { .name = NULL };
            json_t *a = json_pack("{s:i, s:I}", "activity_index", (int)act, "seq",
                                  (json_int_t)dp_get32(t + 4));
            if (nd && flow_def_activity(nd, act, &info) == 0 && info.name)
                json_object_set_new(a, "activity", json_string(info.name));
            json_array_append_new(sched, a);
        }
        json_object_set_new(e, "scheduled", sched);
        break;
    }
    default:
        goto bad;
    }
    *out = e;
    return 0;
bad:
    json_decref(e);
    return -EBADMSG;
}

static json_t *dp_ctl_history(json_t *jreq)
{
    const char *type, *id;
    size_t type_len, id_len;
    if (!dp_ctl_name(jreq, "type", SF_TYPE_LEN_MAX, &type, &type_len) ||
        !dp_ctl_name(jreq, "id", SF_ID_LEN_MAX, &id, &id_len))
        return dp_ctl_error("history needs \"type\" (1..32 bytes) and \"id\" (1..64 bytes)");
    json_t *jl = json_object_get(jreq, "limit");
    json_int_t limit = jl ? json_integer_value(jl) : 20;
    if (jl && (!json_is_integer(jl) || limit < 0 || limit > DP_HISTORY_LIMIT_MAX))
        return dp_ctl_error("limit: 0..100000 (0: everything retained)");
    if (limit == 0)
        limit = DP_HISTORY_LIMIT_MAX;
    unsigned owner;
    struct dp_req *req = dp_ctl_workflow_req(DP_REQ_HISTORY, type, type_len, id, id_len, &owner);
    if (!req)
        return dp_ctl_error("out of memory");
    int rc = dp_ctl_ask(owner, req);
    if (rc == -ETIMEDOUT)
        return dp_ctl_error("owner core did not answer in time"); /* req stays with the owner */
    if (rc != 0 || req->result != 0 || !req->found) {
        json_t *out = rc != 0            ? dp_ctl_error("owner mailbox full, retry")
                      : req->result != 0 ? dp_ctl_error("history needs the log ([wal])")
                                         : json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error",
                                                     "workflow not found", "type", type, "id", id);
        free(req);
        return out;
    }
    /* the instance's definition names fields and activities (older incarnations may have
     * used another version: names are then best effort) */
    const struct flow_def *def = NULL;
    uint64_t g = __atomic_load_n(&dp_node.registry_gen, __ATOMIC_ACQUIRE);
    int tid = rt_registry_type(dp_node.registries[g], type, type_len);
    if (tid >= 0)
        def = rt_registry_newest(dp_node.registries[g], (unsigned)tid)->def;

    struct sf_io_read_counters io0, io1;
    sf_io_read_counters_get(&io0);
    struct wal_read_cache cache = { 0 };
    static uint8_t buf[DP_WAL_SIGNAL_HDR + SF_TYPE_LEN_MAX + SF_ID_LEN_MAX + SF_SIGNAL_LEN_MAX +
                       SF_EVENT_LEN_MAX + WAL_RECORD_HEADER_BYTES + 64];
    json_t *entries = json_array();
    const char *end = "start";
    struct rt_hlink link = req->head;
    uint64_t waited_ms = 0;
    while (link.a != 0) {
        if ((json_int_t)json_array_size(entries) >= limit) {
            end = "limit";
            break;
        }
        uint64_t epoch = link.b >> 48, lsn_lo = link.b & 0xffffffffffull;
        unsigned core = (unsigned)(link.b >> 40 & 0xff);
        char edir[DP_PATH_MAX + 40];
        snap_epoch_path(dp_node.cfg.dir, epoch, edir, sizeof(edir));
        struct wal_record_view v;
        rc = wal_read_record(edir, core, link.a >> 32, link.a & 0xffffffffu, buf, sizeof(buf), &v,
                             &cache);
        bool match = rc == 0 && (v.lsn & 0xffffffffffull) == lsn_lo && v.key.hi == req->key.hi &&
                     v.key.lo == req->key.lo;
        if (!match && epoch == (dp_node.epoch & 0xffff) && core == owner &&
            lsn_lo > (req->durable_lsn & 0xffffffffffull) && waited_ms < DP_HISTORY_WAIT_MS) {
            /* not on disk yet: wait for the owner's log to get there */
            struct timespec ms = { 0, 1000000 };
            nanosleep(&ms, NULL);
            waited_ms++;
            req->kind = DP_REQ_HISTORY;
            if (dp_ctl_ask(owner, req) != 0)
                break;
            continue;
        }
        if (!match) {
            end = rc == -ENOENT || rc == 0 || rc == -EBADMSG ? "retention" : "unreadable";
            break;
        }
        json_t *e;
        struct rt_hlink prev = { 0, 0 };
        if (dp_ctl_history_entry(&v, def, &e, &prev) != 0) {
            end = "unreadable";
            break;
        }
        char log[48];
        snprintf(log, sizeof(log), "epoch-%" PRIu64 "/core-%u", epoch, core);
        json_object_set_new(e, "log", json_string(log));
        json_array_append_new(entries, e);
        link = prev;
    }
    wal_read_close(&cache);
    sf_io_read_counters_get(&io1);
    json_t *out = json_pack("{s:b, s:s, s:s, s:o, s:i, s:s, s:{s:I, s:I}}", "ok", 1, "type", type,
                            "id", id, "entries", entries, "count", (int)json_array_size(entries),
                            "end", end, "io", "reads", (json_int_t)(io1.calls - io0.calls), "bytes",
                            (json_int_t)(io1.bytes - io0.bytes));
    free(req);
    return out;
}

/* Cursor "P:C": partition P, position C inside it; empty = from the start. */
static bool dp_ctl_parse_cursor(const char *s, uint32_t *p, uint64_t *c)
{
    unsigned long long pp, cc;
    int used = 0;
    if (sscanf(s, "%llu:%llu%n", &pp, &cc, &used) != 2 || s[used] != '\0' ||
        pp >= dp_node.partmap->count)
        return false;
    *p = (uint32_t)pp;
    *c = cc;
    return true;
}

static int dp_ctl_entry_cmp(const void *a, const void *b)
{
    const struct dp_list_entry *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->cursor_after < y->cursor_after ? -1 : x->cursor_after > y->cursor_after;
}

static json_t *dp_ctl_list(json_t *jreq)
{
    json_int_t limit = 100;
    json_t *jl = json_object_get(jreq, "limit");
    if (jl &&
        (!json_is_integer(jl) || (limit = json_integer_value(jl)) < 1 || limit > DP_LIST_LIMIT_MAX))
        return dp_ctl_error("limit must be an integer in 1..1000");
    uint32_t start_p = 0;
    uint64_t start_c = 0;
    json_t *ja = json_object_get(jreq, "after");
    if (ja &&
        (!json_is_string(ja) || !dp_ctl_parse_cursor(json_string_value(ja), &start_p, &start_c)))
        return dp_ctl_error("after must be a cursor \"P:C\" from a previous page");
    json_t *jt = json_object_get(jreq, "type");
    if (jt && (!json_is_string(jt) || json_string_length(jt) > SF_TYPE_LEN_MAX))
        return dp_ctl_error("type must be a string of at most 32 bytes");
    json_t *js = json_object_get(jreq, "state");
    if (js && (!json_is_string(js) || json_string_length(js) > FLOW_NAME_LEN_MAX))
        return dp_ctl_error("state must be a string of at most 31 bytes");

    unsigned owners = dp_node.owner_count;
    struct dp_list_entry *all = calloc((size_t)limit * owners, sizeof(*all));
    struct dp_req *reqs = calloc(owners, sizeof(*reqs)); /* large: heap, off the data path */
    if (!all || !reqs) {
        free(all);
        free(reqs);
        return dp_ctl_error("out of memory");
    }
    unsigned total = 0;
    for (unsigned o = 0; o < owners; o++) {
        struct dp_req *r = &reqs[o];
        r->kind = DP_REQ_LIST;
        r->start_partition = start_p;
        r->start_cursor = start_c;
        r->limit = (unsigned)limit;
        r->entries = all + (size_t)o * (size_t)limit;
        if (jt)
            snprintf(r->type_filter, sizeof(r->type_filter), "%s", json_string_value(jt));
        if (js)
            snprintf(r->state_filter, sizeof(r->state_filter), "%s", json_string_value(js));
        if (dp_ctl_ask(o, r) != 0)
            return dp_ctl_error("owner core did not answer in time"); /* leaks on purpose */
        memmove(all + total, r->entries, r->entry_count * sizeof(*all));
        total += r->entry_count;
    }
    bool more = false;
    for (unsigned o = 0; o < owners; o++)
        more = more || reqs[o].more;
    qsort(all, total, sizeof(*all), dp_ctl_entry_cmp);
    if (total > (unsigned)limit) {
        total = (unsigned)limit;
        more = true;
    }
    json_t *arr = json_array();
    for (unsigned i = 0; i < total; i++)
        json_array_append_new(arr, dp_ctl_entry_json(&all[i]));
    json_t *out = json_pack("{s:b, s:o, s:i}", "ok", 1, "workflows", arr, "count", (int)total);
    if (more && total > 0) {
        char cur[48];
        uint32_t np = all[total - 1].partition;
        uint64_t nc = all[total - 1].cursor_after;
        if (nc == UINT64_MAX) { /* that partition is done: resume at the next one */
            np++;
            nc = 0;
        }
        if (np < dp_node.partmap->count) {
            snprintf(cur, sizeof(cur), "%u:%" PRIu64, np, nc);
            json_object_set_new(out, "next", json_string(cur));
        }
    }
    free(all);
    free(reqs);
    return out;
}

/* Tunables: the idle back-off (read by every lcore, a plain store suffices) and the log's
 * group commit (applied by each owner on its own thread, through its mailbox). */
static json_t *dp_ctl_tune(json_t *jreq)
{
    const char *key = json_string_value(json_object_get(jreq, "key"));
    json_t *jv = json_object_get(jreq, "value");
    if (!key || !json_is_integer(jv) || json_integer_value(jv) < 0)
        return dp_ctl_error("tune needs \"key\" and a non-negative integer \"value\"");
    uint64_t v = (uint64_t)json_integer_value(jv);
    if (strcmp(key, "idle_sleep_max_us") == 0 || strcmp(key, "idle_pause_polls") == 0) {
        if (v > 1000000)
            return dp_ctl_error("value out of range (0..1000000)");
        if (key[5] == 's')
            dp_node.cfg.idle_sleep_max_us = (unsigned)v;
        else
            dp_node.cfg.idle_pause_polls = (unsigned)v;
        return json_pack("{s:b, s:s, s:I}", "ok", 1, "key", key, "value", (json_int_t)v);
    }
    /* snapshot and retention policy: plain words the owners read at their next check */
    static const struct {
        const char *key;
        uint64_t max;
    } policy[] = { { "snapshot.interval_s", 7u * 86400u },
                   { "snapshot.log_bytes", 1ull << 40 },
                   { "history.retention_s", 3650u * 86400u },
                   { "history.retention_bytes", 1ull << 50 } };
    for (unsigned i = 0; i < sizeof(policy) / sizeof(policy[0]); i++) {
        if (strcmp(key, policy[i].key) != 0)
            continue;
        if (v > policy[i].max)
            return dp_ctl_error("value out of range for this key");
        struct dp_config *c = &dp_node.cfg;
        if (i == 0)
            __atomic_store_n(&c->snapshot_interval_s, (unsigned)v, __ATOMIC_RELAXED);
        else if (i == 1)
            __atomic_store_n(&c->snapshot_log_bytes, v, __ATOMIC_RELAXED);
        else if (i == 2)
            __atomic_store_n(&c->history_retention_s, (unsigned)v, __ATOMIC_RELAXED);
        else
            __atomic_store_n(&c->history_retention_bytes, v, __ATOMIC_RELAXED);
        return json_pack("{s:b, s:s, s:I}", "ok", 1, "key", key, "value", (json_int_t)v);
    }
    if (strncmp(key, "wal.", 4) != 0 || strlen(key) >= sizeof(((struct dp_req *)0)->tune_key))
        return dp_ctl_error("unknown key (idle_sleep_max_us, idle_pause_polls, "
                            "wal.batch_bytes_max, wal.batch_deadline_us, wal.inflight_max, "
                            "snapshot.interval_s, snapshot.log_bytes, history.retention_s, "
                            "history.retention_bytes)");
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        struct dp_req *req = calloc(1, sizeof(*req));
        if (!req)
            return dp_ctl_error("out of memory");
        req->kind = DP_REQ_TUNE;
        strcpy(req->tune_key, key);
        req->tune_value = v;
        if (dp_ctl_ask(o, req) != 0)
            return dp_ctl_error("owner core did not answer in time");
        int rc = req->result;
        free(req);
        if (rc == -ENOENT)
            return dp_ctl_error("unknown key (wal.batch_bytes_max, wal.batch_deadline_us, "
                                "wal.inflight_max)");
        if (rc == -ENOTSUP)
            return dp_ctl_error("the node runs without a log ([wal] enabled = false)");
        if (rc != 0)
            return dp_ctl_error("value out of range for this key");
    }
    return json_pack("{s:b, s:s, s:I}", "ok", 1, "key", key, "value", (json_int_t)v);
}

/* Tests only: needs [wal] fault_injection = true in the configuration. */
static json_t *dp_ctl_fault(json_t *jreq)
{
    const char *kind = json_string_value(json_object_get(jreq, "kind"));
    json_int_t skip = json_integer_value(json_object_get(jreq, "skip"));
    json_int_t seed = json_integer_value(json_object_get(jreq, "seed"));
    if (!kind || skip < 0 || skip > UINT32_MAX)
        return dp_ctl_error("fault needs \"kind\" and optional \"skip\", \"seed\"");
    int rc = dp_wal_fault(&dp_node, kind, (uint32_t)skip, (uint64_t)seed);
    if (rc == -EPERM)
        return dp_ctl_error("fault injection is off ([wal] fault_injection = false)");
    if (rc == -ENOENT)
        return dp_ctl_error("unknown fault (powercut, powercut_reorder, write_eio, fsync_eio, "
                            "enospc, short_write)");
    if (rc != 0)
        return dp_ctl_error(strerror(-rc));
    if (strncmp(kind, "powercut", 8) == 0) {
        /* stop once every owner reaped what it had in flight (bounded wait) */
        for (int i = 0; i < 5000; i++) {
            bool drained = true;
            for (unsigned o = 0; o < dp_node.owner_count; o++)
                drained = drained && dp_node.owner_by_index[o]->power_cut_drained;
            if (drained)
                break;
            usleep(1000);
        }
        dp_node.force_quit = true;
    }
    return json_pack("{s:b, s:s}", "ok", 1, "kind", kind);
}

static json_t *dp_ctl_deploy(json_t *jreq)
{
    const char *file = json_string_value(json_object_get(jreq, "file"));
    json_t *src = json_object_get(jreq, "source");
    if (!file || !json_is_string(src))
        return dp_ctl_error("deploy needs \"file\" and \"source\"");
    static char msg[16384];
    int rc =
        dp_runtime_deploy(file, json_string_value(src), json_string_length(src), msg, sizeof(msg));
    if (rc == 0) {
        /* wait (bounded) until every owner uses it, so the caller's next signals see it */
        uint64_t g = __atomic_load_n(&dp_node.registry_gen, __ATOMIC_ACQUIRE);
        for (int i = 0; i < 2000; i++) {
            bool all = true;
            for (unsigned o = 0; o < dp_node.owner_count; o++)
                all = all &&
                      __atomic_load_n(&dp_node.owner_by_index[o]->reg_gen, __ATOMIC_RELAXED) >= g;
            if (all)
                break;
            usleep(1000);
        }
        return json_pack("{s:b, s:s, s:I}", "ok", 1, "message", msg, "generation", (json_int_t)g);
    }
    return json_pack("{s:b, s:s, s:b}", "ok", 0, "error", msg, "exists", rc == -EEXIST);
}

/* Ask every owner for its counts; the caller frees the array. NULL on timeout. */
static struct dp_req *dp_ctl_counts(void)
{
    struct dp_req *reqs = calloc(dp_node.owner_count, sizeof(*reqs));
    if (!reqs)
        return NULL;
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        reqs[o].kind = DP_REQ_COUNTS;
        if (dp_ctl_ask(o, &reqs[o]) != 0)
            return NULL; /* the owner may still write it: leave it */
    }
    return reqs;
}

static json_t *dp_ctl_definitions(void)
{
    struct dp_req *reqs = dp_ctl_counts();
    if (!reqs)
        return dp_ctl_error("owner core did not answer in time");
    json_t *arr = json_array();
    for (unsigned i = 0; i < reqs[0].def_count; i++) {
        const struct dp_def_counts *d0 = &reqs[0].defs[i];
        uint64_t running = 0, completed = 0;
        json_t *states = json_object();
        for (unsigned o = 0; o < dp_node.owner_count; o++) {
            for (unsigned j = 0; j < reqs[o].def_count; j++) {
                const struct dp_def_counts *d = &reqs[o].defs[j];
                if (d->def_id != d0->def_id)
                    continue;
                running += d->running;
                completed += d->completed;
                for (unsigned s = 0; s < d->state_count; s++) {
                    const char *name = flow_def_state_name(d->def, s);
                    json_t *cur = json_object_get(states, name);
                    json_object_set_new(states, name,
                                        json_integer((cur ? json_integer_value(cur) : 0) +
                                                     (json_int_t)d->in_state[s]));
                }
            }
        }
        json_array_append_new(
            arr, json_pack("{s:s, s:i, s:i, s:I, s:I, s:i, s:o}", "type", flow_def_name(d0->def),
                           "version", (int)flow_def_version(d0->def), "def_id", (int)d0->def_id,
                           "running", (json_int_t)running, "completed", (json_int_t)completed,
                           "record_bytes", (int)flow_def_record_size(d0->def), "states", states));
    }
    free(reqs);
    return json_pack("{s:b, s:o, s:I}", "ok", 1, "definitions", arr, "generation",
                     (json_int_t)__atomic_load_n(&dp_node.registry_gen, __ATOMIC_ACQUIRE));
}

static json_t *dp_ctl_activities(json_t *jreq)
{
    json_int_t limit = json_integer_value(json_object_get(jreq, "limit"));
    if (limit <= 0 || limit > DP_LIST_LIMIT_MAX)
        limit = 100;
    json_t *arr = json_array();
    struct dp_task *tasks = calloc((size_t)limit, sizeof(*tasks));
    struct dp_req *req = calloc(1, sizeof(*req));
    if (!tasks || !req) {
        free(tasks);
        free(req);
        return dp_ctl_error("out of memory");
    }
    for (unsigned o = 0; o < dp_node.owner_count && json_array_size(arr) < (size_t)limit; o++) {
        memset(req, 0, sizeof(*req));
        req->kind = DP_REQ_TASKS;
        req->limit = (unsigned)limit - (unsigned)json_array_size(arr);
        req->task_out = tasks;
        if (dp_ctl_ask(o, req) != 0)
            return dp_ctl_error("owner core did not answer in time");
        for (unsigned i = 0; i < req->task_count; i++) {
            const struct dp_task *t = &tasks[i];
            struct sf_value vals[VM_ARGS_MAX];
            int n = sf_fields_decode(t->args, t->args_len, vals, VM_ARGS_MAX);
            json_t *args = json_array();
            for (int a = 0; a < n; a++)
                json_array_append_new(args, dp_ctl_value(&vals[a]));
            json_array_append_new(
                arr, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:o}", "type", t->type, "id",
                               t->id, "activity", t->activity, "seq", (json_int_t)t->seq, "attempt",
                               (json_int_t)t->attempt, "idempotency_key", t->idempotency_key,
                               "dispatched_ns", (json_int_t)t->dispatched_ns, "args", args));
        }
    }
    free(tasks);
    free(req);
    return json_pack("{s:b, s:o}", "ok", 1, "tasks", arr);
}

static json_t *dp_ctl_activity_result(json_t *jreq)
{
    const char *type, *id;
    size_t type_len, id_len;
    json_t *jseq = json_object_get(jreq, "seq");
    const char *outcome = json_string_value(json_object_get(jreq, "outcome"));
    if (!dp_ctl_name(jreq, "type", SF_TYPE_LEN_MAX, &type, &type_len) ||
        !dp_ctl_name(jreq, "id", SF_ID_LEN_MAX, &id, &id_len) || !json_is_integer(jseq) ||
        json_integer_value(jseq) <= 0 || !outcome ||
        (strcmp(outcome, "done") != 0 && strcmp(outcome, "failed") != 0))
        return dp_ctl_error("activity needs type, id, seq > 0 and outcome done|failed");
    unsigned owner;
    struct dp_req *req = dp_ctl_workflow_req(DP_REQ_ACTIVITY, type, type_len, id, id_len, &owner);
    if (!req)
        return dp_ctl_error("out of memory");
    req->seq = (uint32_t)json_integer_value(jseq);
    req->failed = outcome[0] == 'f';
    req->activity_result = json_integer_value(json_object_get(jreq, "result"));
    if (dp_ctl_ask(owner, req) != 0)
        return dp_ctl_error("owner core did not answer in time");
    json_t *out;
    if (req->result == -ENOENT)
        out = dp_ctl_error("workflow not found");
    else if (req->result == -ESRCH)
        out = dp_ctl_error("no activity run with that seq is pending for this workflow");
    else if (req->result == -EAGAIN)
        out = dp_ctl_error("the log is behind (overloaded): retry");
    else
        out = json_pack("{s:b, s:s}", "ok", 1, "status", rt_status_name(req->rt_status));
    free(req);
    return out;
}

static json_t *dp_ctl_dispatch(const char *line)
{
    json_error_t jerr;
    json_t *req = json_loads(line, 0, &jerr);
    if (!req || !json_is_object(req)) {
        json_decref(req);
        return dp_ctl_error("request is not a JSON object");
    }
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    json_t *out;
    if (!cmd)
        out = dp_ctl_error("missing \"cmd\"");
    else if (strcmp(cmd, "stats") == 0)
        out = dp_ctl_stats();
    else if (strcmp(cmd, "describe") == 0)
        out = dp_ctl_describe(req);
    else if (strcmp(cmd, "history") == 0)
        out = dp_ctl_history(req);
    else if (strcmp(cmd, "list") == 0)
        out = dp_ctl_list(req);
    else if (strcmp(cmd, "deploy") == 0)
        out = dp_ctl_deploy(req);
    else if (strcmp(cmd, "definitions") == 0)
        out = dp_ctl_definitions();
    else if (strcmp(cmd, "activities") == 0)
        out = dp_ctl_activities(req);
    else if (strcmp(cmd, "activity") == 0)
        out = dp_ctl_activity_result(req);
    else if (strcmp(cmd, "fault") == 0)
        out = dp_ctl_fault(req);
    else if (strcmp(cmd, "tune") == 0)
        out = dp_ctl_tune(req);
    else if (strcmp(cmd, "ping") == 0)
        out = json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid());
    else
        out = dp_ctl_error("unknown command");
    json_decref(req);
    return out;
}

static void dp_ctl_reply(int fd, json_t *out)
{
    char *text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    if (!text)
        return;
    size_t len = strlen(text), off = 0;
    text[len] = '\0';
    while (off < len) {
        ssize_t w = send(fd, text + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    send(fd, "\n", 1, MSG_NOSIGNAL);
    free(text);
}

static void dp_ctl_serve(int fd)
{
    static char buf[DP_CTL_LINE_MAX + 1];
    size_t have = 0;
    while (!dp_ctl_quit) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r <= 0)
            return;
        have += (size_t)r;
        buf[have] = '\0';
        char *nl;
        while ((nl = memchr(buf, '\n', have)) != NULL) {
            *nl = '\0';
            dp_ctl_reply(fd, dp_ctl_dispatch(buf));
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, nl + 1, have - used);
            have -= used;
        }
        if (have == sizeof(buf) - 1) {
            dp_ctl_reply(fd, dp_ctl_error("request line too long"));
            return;
        }
    }
}

static void *dp_ctl_main(void *arg)
{
    (void)arg;
    while (!dp_ctl_quit) {
        struct pollfd pfd = { .fd = dp_ctl_fd, .events = POLLIN };
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        int c = accept4(dp_ctl_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        dp_ctl_serve(c);
        close(c);
    }
    return NULL;
}

int dp_ctl_start(struct dp_node *node, const char *path)
{
    (void)node;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    strcpy(dp_ctl_path, path);
    dp_ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (dp_ctl_fd < 0)
        return -errno;
    unlink(path);
    mode_t old = umask(0177);
    int rc = bind(dp_ctl_fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc != 0 || chmod(path, 0600) != 0 || listen(dp_ctl_fd, 16) != 0) {
        rc = -errno;
        close(dp_ctl_fd);
        dp_ctl_fd = -1;
        return rc;
    }
    rc = pthread_create(&dp_ctl_thread, NULL, dp_ctl_main, NULL);
    if (rc != 0)
        return -rc;
    pthread_setname_np(dp_ctl_thread, "sigflow-ctl");
    return 0;
}

void dp_ctl_stop(void)
{
    if (dp_ctl_fd < 0)
        return;
    dp_ctl_quit = true;
    pthread_join(dp_ctl_thread, NULL);
    close(dp_ctl_fd);
    unlink(dp_ctl_path);
    dp_ctl_fd = -1;
}
