/*
 * dp_ctl.c — the control socket's commands: a unix stream socket (0600, in the 0700 runtime
 * dir), off the data path. Protocol: one JSON object per line in, one JSON object per line
 * out: {"cmd":"stats"} → {"ok":true,...}; errors are {"ok":false,"error":"..."}. The
 * connections, their threads and limits are dp_ctl_server.{c,h}; the request language and
 * its validation dp_ctl_parse.{c,h}; this file runs a validated command against the node,
 * one request at a time (the server's handler lock: the static buffers below rely on it).
 *
 * Reading counters: each lcore writes only its own; this thread sums them (relaxed).
 * Reading workflows: the owner lcore answers through its mailbox ring; this thread waits
 * for the answer with a timeout (DP_CTL_REQ_TIMEOUT_MS) and never touches a table itself.
 * A request that timed out is abandoned to its owner, which frees it (dp_ctl_req.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_ethdev.h>

#include "dp.h"
#include "dp_ctl.h"
#include "dp_fault.h"
#include "dp_record.h"
#include "dp_req.h"
#include "dp_runtime.h"
#include "dp_senders.h"
#include "dp_tune.h"
#include "dp_wal.h"
#include "dp_ctl_parse.h"
#include "dp_ctl_req.h"
#include "dp_ctl_server.h"
#include "sf_io.h"

#define DP_CTL_REQ_TIMEOUT_MS 2000
#define DP_CTL_XSTATS_MAX     512

_Static_assert(DP_CTL_TYPE_LEN_MAX == SF_TYPE_LEN_MAX, "the parser's type limit");
_Static_assert(DP_CTL_ID_LEN_MAX == SF_ID_LEN_MAX, "the parser's id limit");
_Static_assert(DP_CTL_STATE_LEN_MAX == FLOW_NAME_LEN_MAX, "the parser's state limit");
_Static_assert(DP_CTL_LIST_LIMIT_MAX == DP_LIST_LIMIT_MAX, "the parser's list limit");

static struct dp_ctl_server *dp_ctl_server;

static int dp_ctl_ask(unsigned owner, struct dp_req *req);
static struct dp_req *dp_ctl_req_new(enum dp_req_kind kind);

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
    for (unsigned a = 0; a < DP_AUTH_DROPS; a++)
        json_object_set_new(d, dp_senders_drop_name(a), json_integer((json_int_t)lc->drop_auth[a]));
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
        struct dp_req *req = dp_ctl_req_new(DP_REQ_WAL_STATS);
        if (req) {
            int rc = dp_ctl_ask(lc->owner_index, req);
            if (rc == 0 && req->result == 0) {
                const struct dp_req_wal_stats *ws = &req->u.wal_stats;
                const struct wal_stats *w = &ws->wal;
                json_object_set_new(
                    c, "wal",
                    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:I}", "durable_lsn",
                              (json_int_t)ws->durable_lsn, "next_lsn", (json_int_t)ws->next_lsn,
                              "records", (json_int_t)w->records, "batches", (json_int_t)w->batches,
                              "bytes_written", (json_int_t)w->bytes_written, "reserve_overloaded",
                              (json_int_t)w->reserve_overloaded, "segments_created",
                              (json_int_t)w->segments_created, "inflight", (int)w->inflight,
                              "inflight_peak", (int)w->inflight_peak, "acks_waiting",
                              (json_int_t)ws->acks_waiting));
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
                dp_ctl_req_free(req);
            } else if (rc != -ETIMEDOUT) {
                /* no log, or the mailbox was full; on a timeout the owner frees it */
                dp_ctl_req_free(req);
            }
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
    double uptime = (double)(dp_now_ns() - dp_clock_start_ns()) / 1e9;
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

/*
 * Post a request (a malloc'd struct dp_req, never part of a larger block; task_out and
 * entries NULL or their own malloc) to an owner's mailbox and wait for the answer, up to
 * DP_CTL_REQ_TIMEOUT_MS. 0: answered, the caller holds req again. -EAGAIN: the mailbox was
 * full, the owner never saw it, the caller holds req. -ETIMEDOUT: req is abandoned to the
 * owner, which frees it and its buffers (dp_ctl_req_free) when it gets to it: the caller must
 * not touch req, task_out or entries again.
 */
static int dp_ctl_ask(unsigned owner, struct dp_req *req)
{
    dp_ctl_req_post(&req->state);
    if (rte_ring_mp_enqueue(dp_node.owner_by_index[owner]->mailbox, req) != 0) {
        dp_ctl_req_withdraw(&req->state);
        return -EAGAIN;
    }
    struct timespec pause = { 0, 50000 };
    for (int waited_us = 0; waited_us < DP_CTL_REQ_TIMEOUT_MS * 1000; waited_us += 50) {
        if (dp_ctl_req_answered(&req->state))
            return 0;
        nanosleep(&pause, NULL);
    }
    return dp_ctl_req_abandon(&req->state) ? -ETIMEDOUT : 0;
}

/* A request of kind, zeroed, with the buffer its answer needs for a describe or counts
 * (lists and tasks size theirs by their limit: the caller hangs them on). NULL when out of
 * memory. */
static struct dp_req *dp_ctl_req_new(enum dp_req_kind kind)
{
    struct dp_req *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->kind = kind;
    if (kind == DP_REQ_DESCRIBE) {
        req->u.describe.out = malloc(sizeof(*req->u.describe.out));
        if (!req->u.describe.out)
            goto out_free_req;
    } else if (kind == DP_REQ_COUNTS) {
        req->u.counts.defs = calloc(1, sizeof(*req->u.counts.defs));
        if (!req->u.counts.defs)
            goto out_free_req;
    }
    return req;
out_free_req:
    free(req);
    return NULL;
}

void dp_ctl_req_free(struct dp_req *req)
{
    if (!req)
        return;
    switch (req->kind) {
    case DP_REQ_DESCRIBE:
        free(req->u.describe.out);
        break;
    case DP_REQ_LIST:
        free(req->u.list.entries);
        break;
    case DP_REQ_COUNTS:
        free(req->u.counts.defs);
        break;
    case DP_REQ_TASKS:
        free(req->u.tasks.out);
        break;
    default:
        break; /* no buffer of its own */
    }
    free(req);
}

/*
 * Text from the node's data as a JSON string. The parsers admit only UTF-8 (ids, text
 * values), but a log or snapshot written before they did may hold other bytes, and jansson
 * refuses them (NULL: an entry would vanish from its list). Invalid bytes become U+FFFD.
 */
static json_t *dp_ctl_text(const char *s, size_t n)
{
    if (sf_text_valid((const uint8_t *)s, n))
        return json_stringn(s, n);
    char out[3 * 512 + 1];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 <= sizeof(out);) {
        size_t k = 1;
        while (k <= 4 && i + k <= n && !sf_text_valid((const uint8_t *)s + i, k))
            k++;
        if (k <= 4 && i + k <= n) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    return json_stringn(out, o);
}

/* A NUL-terminated text from the node's data (see dp_ctl_text). */
static json_t *dp_ctl_cstr(const char *s)
{
    return dp_ctl_text(s, strlen(s));
}

static json_t *dp_ctl_entry_json(const struct dp_list_entry *e)
{
    return json_pack("{s:o, s:o, s:o, s:i, s:I, s:I, s:i}", "type", dp_ctl_cstr(e->type), "id",
                     dp_ctl_cstr(e->id), "state", dp_ctl_cstr(e->state), "version", (int)e->version,
                     "signals", (json_int_t)e->signals, "last_event_id",
                     (json_int_t)e->last_event_id, "partition", (int)e->partition);
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
        return dp_ctl_text(v->text.ptr, v->text.len);
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
    return json_pack("{s:b, s:s, s:o, s:i, s:s, s:b, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "ok",
                     1, "type", d->type, "id", dp_ctl_text(d->id, d->id_len), "version",
                     (int)d->version, "state", d->state, "completed", d->completed, "signals",
                     (json_int_t)d->signals, "last_event_id", (json_int_t)d->last_event_id,
                     "dedupe_hwm", (json_int_t)d->dedupe_hwm, "created_ns",
                     (json_int_t)d->created_ns, "vars", vars, "queues", queues, "timers", timers,
                     "activities", acts);
}

/* Workflow (type, id): its key and partition; *owner gets the owner index. Can't fail. */
static struct dp_req_workflow dp_ctl_workflow(const char *type, size_t type_len, const char *id,
                                              size_t id_len, unsigned *owner)
{
    struct dp_req_workflow wf;
    wf.key = wf_key_make(type, type_len, id, id_len);
    wf.partition = wf_key_partition(wf.key, dp_node.partmap->count);
    *owner = wf_partmap_owner(dp_node.partmap, wf.partition);
    return wf;
}

static json_t *dp_ctl_describe(const struct dp_ctl_cmd *cmd)
{
    const char *type = cmd->type, *id = cmd->id;
    unsigned owner;
    struct dp_req *req = dp_ctl_req_new(DP_REQ_DESCRIBE);
    if (!req)
        return dp_ctl_error("out of memory");
    struct dp_req_describe *r = &req->u.describe;
    r->wf = dp_ctl_workflow(type, cmd->type_len, id, cmd->id_len, &owner);
    int rc = dp_ctl_ask(owner, req);
    if (rc == -ETIMEDOUT)
        return dp_ctl_error("owner core did not answer in time"); /* the owner frees req */
    json_t *out;
    if (rc != 0)
        out = dp_ctl_error("owner mailbox full, retry");
    else if (!r->found)
        out = json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error", "workflow not found", "type",
                        type, "id", id);
    else {
        out = dp_ctl_describe_json(&r->out->desc);
        json_object_set_new(out, "partition", json_integer(r->wf.partition));
        json_object_set_new(out, "owner_lcore",
                            json_integer(dp_node.owner_by_index[owner]->lcore_id));
    }
    dp_ctl_req_free(req);
    return out;
}

/* ---- history: follow the workflow's back-links through the logs ----------------------- */

#define DP_HISTORY_WAIT_MS 2000 /* the newest records may still be on their way to disk */

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
    struct dp_rec rec;
    if (dp_rec_decode(v->type, v->payload, v->len, &rec) != 0)
        return -EBADMSG;
    json_t *e = json_object();
    json_object_set_new(e, "lsn", json_integer((json_int_t)v->lsn));
    switch (rec.type) {
    case DP_REC_SIGNAL: {
        const struct dp_rec_signal *s = &rec.u.signal;
        json_object_set_new(e, "kind", json_string("signal"));
        json_object_set_new(e, "signal", dp_ctl_text(s->signal, s->signal_len));
        if (s->flags & DP_REC_SIG_HAS_EVENT_ID)
            json_object_set_new(e, "event_id", json_integer((json_int_t)s->event_id));
        dp_ctl_time(e, "received", s->rx_ns);
        json_object_set_new(e, "received_ns", json_integer((json_int_t)s->rx_ns));
        json_t *fj = NULL;
        if (s->flags & DP_REC_SIG_FIELDS_JSON) {
            fj = json_loadb((const char *)s->fields, s->fields_len, 0, NULL);
        } else {
            struct sf_value vals[FLOW_FIELDS_MAX];
            int n = sf_fields_decode(s->fields, s->fields_len, vals, FLOW_FIELDS_MAX);
            int si = def ? flow_def_signal_index(def, s->signal, s->signal_len) : -1;
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
    case DP_REC_TIMER:
        json_object_set_new(e, "kind", json_string("timer"));
        json_object_set_new(e, "slot", json_integer(rec.u.timer.slot));
        dp_ctl_time(e, "due", rec.u.timer.due_ns);
        break;
    case DP_REC_ACTIVITY: {
        const struct dp_rec_activity *a = &rec.u.activity;
        struct flow_activity_info info = { .name = NULL };
        json_object_set_new(e, "kind",
                            json_string(a->failed ? "activity_failed" : "activity_done"));
        if (def && flow_def_activity(def, a->act, &info) == 0 && info.name)
            json_object_set_new(e, "activity", json_string(info.name));
        json_object_set_new(e, "activity_index", json_integer(a->act));
        json_object_set_new(e, "seq", json_integer(a->seq));
        if (!a->failed)
            json_object_set_new(e, "result", json_integer((json_int_t)a->result));
        dp_ctl_time(e, "time", a->now_ns);
        break;
    }
    case DP_REC_NOTE: {
        const struct dp_rec_note *n = &rec.u.note;
        const struct flow_def *nd = dp_ctl_def(n->def_id);
        json_object_set_new(e, "kind", json_string("effects"));
        if (n->flags & DP_REC_NOTE_CREATED) {
            json_object_set_new(e, "created", json_true());
            if (nd)
                json_object_set_new(e, "version", json_integer(flow_def_version(nd)));
        }
        if (n->flags & DP_REC_NOTE_COMPLETED)
            json_object_set_new(e, "completed", json_true());
        json_t *sched = json_array();
        for (unsigned i = 0; i < n->nruns; i++) {
            struct flow_activity_info info = { .name = NULL };
            json_t *a = json_pack("{s:i, s:I}", "activity_index", (int)n->runs[i].act, "seq",
                                  (json_int_t)n->runs[i].seq);
            if (nd && flow_def_activity(nd, n->runs[i].act, &info) == 0 && info.name)
                json_object_set_new(a, "activity", json_string(info.name));
            json_array_append_new(sched, a);
        }
        json_object_set_new(e, "scheduled", sched);
        break;
    }
    default:
        json_decref(e);
        return -EBADMSG;
    }
    *prev = dp_rec_prev(&rec);
    *out = e;
    return 0;
}

static json_t *dp_ctl_history(const struct dp_ctl_cmd *cmd)
{
    const char *type = cmd->type, *id = cmd->id;
    size_t type_len = cmd->type_len;
    json_int_t limit = cmd->limit;
    unsigned owner;
    struct dp_req *req = dp_ctl_req_new(DP_REQ_HISTORY);
    if (!req)
        return dp_ctl_error("out of memory");
    struct dp_req_history *r = &req->u.history;
    r->wf = dp_ctl_workflow(type, type_len, id, cmd->id_len, &owner);
    int rc = dp_ctl_ask(owner, req);
    if (rc == -ETIMEDOUT)
        return dp_ctl_error("owner core did not answer in time"); /* the owner frees req */
    if (rc != 0 || req->result != 0 || !r->found) {
        json_t *out = rc != 0            ? dp_ctl_error("owner mailbox full, retry")
                      : req->result != 0 ? dp_ctl_error("history needs the log ([wal])")
                                         : json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error",
                                                     "workflow not found", "type", type, "id", id);
        dp_ctl_req_free(req);
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
    static uint8_t buf[DP_REC_READ_MAX + WAL_RECORD_HEADER_BYTES + 64];
    json_t *entries = json_array();
    const char *end = "start";
    struct rt_hlink link = r->head;
    const struct wf_key key = r->wf.key;
    uint64_t waited_ms = 0;
    while (link.a != 0) {
        if ((json_int_t)json_array_size(entries) >= limit) {
            end = "limit";
            break;
        }
        struct dp_hlink_parts at = dp_hlink_split(link);
        uint64_t epoch = at.epoch, lsn_lo = at.lsn_low;
        unsigned core = at.core;
        char edir[DP_PATH_MAX + 40];
        snap_epoch_path(dp_node.cfg.dir, epoch, edir, sizeof(edir));
        struct wal_record_view v;
        rc = wal_read_record(edir, core, at.segment, at.offset, buf, sizeof(buf), &v, &cache);
        bool match = rc == 0 && (v.lsn & 0xffffffffffull) == lsn_lo && v.key.hi == key.hi &&
                     v.key.lo == key.lo;
        if (!match && epoch == (dp_node.epoch & 0xffff) && core == owner &&
            lsn_lo > (r->durable_lsn & 0xffffffffffull) && waited_ms < DP_HISTORY_WAIT_MS) {
            /* not on disk yet: wait for the owner's log to get there */
            struct timespec ms = { 0, 1000000 };
            nanosleep(&ms, NULL);
            waited_ms++;
            rc = dp_ctl_ask(owner, req); /* again: the head and the durable LSN */
            if (rc == -ETIMEDOUT)
                req = NULL; /* abandoned: the owner frees it */
            if (rc != 0) {
                end = "unreadable";
                break;
            }
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
    dp_ctl_req_free(req); /* NULL when abandoned to the owner */
    return out;
}

static int dp_ctl_entry_cmp(const void *a, const void *b)
{
    const struct dp_list_entry *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->cursor_after < y->cursor_after ? -1 : x->cursor_after > y->cursor_after;
}

/* Free the list requests reqs[0..n) still held (NULL: abandoned or never allocated). */
static void dp_ctl_reqs_free(struct dp_req **reqs, unsigned n)
{
    for (unsigned o = 0; o < n; o++)
        if (reqs[o])
            dp_ctl_req_free(reqs[o]);
    free(reqs);
}

/* Ask every owner for up to limit entries from the cursor on; reqs[o] each its own request
 * and entries buffer (an owner that times out keeps and frees its pair). 0 or a reply. */
static json_t *dp_ctl_list_ask(const struct dp_ctl_cmd *cmd, struct dp_req **reqs)
{
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        struct dp_req *req = dp_ctl_req_new(DP_REQ_LIST);
        if (!req)
            return dp_ctl_error("out of memory");
        reqs[o] = req;
        struct dp_req_list *r = &req->u.list;
        r->entries = calloc(cmd->limit, sizeof(*r->entries));
        if (!r->entries)
            return dp_ctl_error("out of memory");
        r->start_partition = cmd->after_partition;
        r->start_cursor = cmd->after_cursor;
        r->limit = cmd->limit;
        if (cmd->has_type)
            snprintf(r->type_filter, sizeof(r->type_filter), "%s", cmd->type);
        if (cmd->has_state)
            snprintf(r->state_filter, sizeof(r->state_filter), "%s", cmd->state);
        int rc = dp_ctl_ask(o, req);
        if (rc == -ETIMEDOUT)
            reqs[o] = NULL; /* abandoned: the owner frees r and its entries */
        if (rc != 0)
            return dp_ctl_error(rc == -EAGAIN ? "owner mailbox full, retry"
                                              : "owner core did not answer in time");
    }
    return NULL;
}

static json_t *dp_ctl_list(const struct dp_ctl_cmd *cmd)
{
    unsigned owners = dp_node.owner_count, limit = cmd->limit;
    struct dp_req **reqs = calloc(owners, sizeof(*reqs));
    if (!reqs)
        return dp_ctl_error("out of memory");
    json_t *err = dp_ctl_list_ask(cmd, reqs);
    struct dp_list_entry *all = err ? NULL : calloc((size_t)limit * owners, sizeof(*all));
    if (err || !all) {
        dp_ctl_reqs_free(reqs, owners);
        return err ? err : dp_ctl_error("out of memory");
    }
    unsigned total = 0;
    bool more = false;
    for (unsigned o = 0; o < owners; o++) {
        const struct dp_req_list *r = &reqs[o]->u.list;
        unsigned n = r->entry_count <= limit ? r->entry_count : limit;
        memcpy(all + total, r->entries, n * sizeof(*all));
        total += n;
        more = more || r->more;
    }
    dp_ctl_reqs_free(reqs, owners);
    qsort(all, total, sizeof(*all), dp_ctl_entry_cmp);
    if (total > limit) {
        total = limit;
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
    return out;
}

/* Apply a checked owner knob t = v on every owner's log, one owner at a time through its
 * mailbox. NULL or the error reply (owners before the failing one keep the new value). */
static json_t *dp_ctl_tune_owners(const struct dp_tunable *t, uint64_t v)
{
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        struct dp_req *req = dp_ctl_req_new(DP_REQ_TUNE);
        if (!req)
            return dp_ctl_error("out of memory");
        req->u.tune.tunable = t;
        req->u.tune.value = v;
        int rc = dp_ctl_ask(o, req);
        if (rc == -ETIMEDOUT)
            return dp_ctl_error("owner core did not answer in time"); /* the owner frees */
        rc = rc != 0 ? rc : req->result;
        dp_ctl_req_free(req);
        if (rc == -EAGAIN)
            return dp_ctl_error("owner mailbox full, retry");
        if (rc == -ENOTSUP)
            return dp_ctl_error("the node runs without a log ([wal] enabled = false)");
        if (rc != 0)
            return dp_ctl_error("the log refused the value");
    }
    return NULL;
}

/* tune KEY VALUE: the key's range and unit are the configuration file's (dp_tune.c, the
 * same refusal words); node-wide words are stored here, each owner applies its log's. */
static json_t *dp_ctl_tune(const struct dp_ctl_cmd *cmd)
{
    const char *key = cmd->tune_key;
    uint64_t v = cmd->tune_value;
    const struct dp_tunable *t;
    char err[DP_TUNE_ERROR_MAX];
    if (dp_tune_prepare(key, v, &t, err, sizeof(err)) != 0)
        return dp_ctl_error(err);
    if (t->live == DP_TUNE_LIVE_NODE) {
        dp_tune_store(t, &dp_node.cfg, v); /* the loops read it at their next check */
    } else {
        json_t *refused = dp_ctl_tune_owners(t, v);
        if (refused)
            return refused;
    }
    return json_pack("{s:b, s:s, s:I}", "ok", 1, "key", key, "value", (json_int_t)v);
}

/* Wait (up to DP_HISTORY_WAIT_MS) until owner's log is durable up to lsn (0: nothing to
 * wait for). 0, or -ETIMEDOUT / -EAGAIN / -ENOMEM when that was not confirmed. */
static int dp_ctl_wait_durable(unsigned owner, uint64_t lsn)
{
    if (lsn == 0)
        return 0;
    struct dp_req *req = dp_ctl_req_new(DP_REQ_WAL_STATS);
    if (!req)
        return -ENOMEM;
    int rc = -ETIMEDOUT;
    for (unsigned waited = 0; waited < DP_HISTORY_WAIT_MS; waited++) {
        int ask = dp_ctl_ask(owner, req);
        if (ask == -ETIMEDOUT)
            return -ETIMEDOUT; /* abandoned: the owner frees req */
        if (ask != 0) {
            rc = ask;
            break;
        }
        if (req->u.wal_stats.durable_lsn >= lsn) {
            rc = 0;
            break;
        }
        usleep(1000);
    }
    dp_ctl_req_free(req);
    return rc;
}

/* Delete a workflow: the owner logs it and applies it; the answer waits until the record
 * is durable (up to DP_HISTORY_WAIT_MS), so a deletion that was answered survives a crash. */
static json_t *dp_ctl_delete(const struct dp_ctl_cmd *cmd)
{
    unsigned owner;
    struct dp_req *req = dp_ctl_req_new(DP_REQ_DELETE);
    if (!req)
        return dp_ctl_error("out of memory");
    struct dp_req_delete *r = &req->u.del;
    r->wf = dp_ctl_workflow(cmd->type, cmd->type_len, cmd->id, cmd->id_len, &owner);
    memcpy(r->type, cmd->type, cmd->type_len);
    memcpy(r->id, cmd->id, cmd->id_len);
    r->type_len = (uint8_t)cmd->type_len;
    r->id_len = (uint8_t)cmd->id_len;
    int rc = dp_ctl_ask(owner, req);
    if (rc == -ETIMEDOUT)
        return dp_ctl_error("owner core did not answer in time"); /* the owner frees req */
    json_t *out;
    if (rc != 0 || req->result == -EAGAIN) {
        out = dp_ctl_error("owner busy (mailbox full or log behind), retry");
    } else if (req->result != 0) {
        out = dp_ctl_error(strerror(-req->result));
    } else if (r->rt_status != RT_APPLIED) {
        out = json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "error", "workflow not found", "type",
                        cmd->type, "id", cmd->id);
    } else {
        uint64_t lsn = r->lsn;
        out = dp_ctl_wait_durable(owner, lsn) == 0
                  ? json_pack("{s:b, s:s, s:s, s:b, s:I}", "ok", 1, "type", cmd->type, "id",
                              cmd->id, "deleted", 1, "lsn", (json_int_t)lsn)
                  : dp_ctl_error("deleted, but the log did not confirm it durable in time");
    }
    dp_ctl_req_free(req);
    return out;
}

static json_t *dp_ctl_keys_reload(void)
{
    int rc = dp_senders_reload();
    if (rc == -ENOTSUP)
        return dp_ctl_error("no key file was configured at start ([auth] keys or DIR/keys)");
    if (rc != 0)
        return json_pack("{s:b, s:s}", "ok", 0, "error",
                         dp_senders_last_error()[0] ? dp_senders_last_error() : strerror(-rc));
    return json_pack("{s:b}", "ok", 1);
}

static json_t *dp_ctl_fault(const struct dp_ctl_cmd *cmd)
{
    const char *kind = cmd->fault_kind;
    int rc = dp_fault_arm(&dp_node, kind, cmd->fault_skip, cmd->fault_seed);
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

static json_t *dp_ctl_deploy(const struct dp_ctl_cmd *cmd)
{
    static char msg[16384]; /* one request at a time (the server's handler lock) */
    msg[0] = '\0';
    int rc = dp_runtime_deploy(cmd->file, cmd->source, cmd->source_len, msg, sizeof(msg));
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

/* Ask every owner for its counts into reqs[o] (each its own request). NULL or the error
 * reply; an owner that timed out keeps (and frees) its request. */
static json_t *dp_ctl_counts(struct dp_req **reqs)
{
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        reqs[o] = dp_ctl_req_new(DP_REQ_COUNTS);
        if (!reqs[o])
            return dp_ctl_error("out of memory");
        int rc = dp_ctl_ask(o, reqs[o]);
        if (rc == -ETIMEDOUT)
            reqs[o] = NULL; /* abandoned: the owner frees it */
        if (rc != 0)
            return dp_ctl_error(rc == -EAGAIN ? "owner mailbox full, retry"
                                              : "owner core did not answer in time");
    }
    return NULL;
}

static json_t *dp_ctl_definitions(void)
{
    struct dp_req **reqs = calloc(dp_node.owner_count, sizeof(*reqs));
    if (!reqs)
        return dp_ctl_error("out of memory");
    json_t *err = dp_ctl_counts(reqs);
    if (err) {
        dp_ctl_reqs_free(reqs, dp_node.owner_count);
        return err;
    }
    json_t *arr = json_array();
    const struct dp_def_counts_list *defs0 = reqs[0]->u.counts.defs;
    for (unsigned i = 0; i < defs0->count; i++) {
        const struct dp_def_counts *d0 = &defs0->def[i];
        uint64_t running = 0, completed = 0;
        json_t *states = json_object();
        for (unsigned o = 0; o < dp_node.owner_count; o++) {
            const struct dp_def_counts_list *defs = reqs[o]->u.counts.defs;
            for (unsigned j = 0; j < defs->count; j++) {
                const struct dp_def_counts *d = &defs->def[j];
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
    dp_ctl_reqs_free(reqs, dp_node.owner_count);
    return json_pack("{s:b, s:o, s:I}", "ok", 1, "definitions", arr, "generation",
                     (json_int_t)__atomic_load_n(&dp_node.registry_gen, __ATOMIC_ACQUIRE));
}

static json_t *dp_ctl_activities(const struct dp_ctl_cmd *cmd)
{
    unsigned limit = cmd->limit;
    struct dp_req *req = dp_ctl_req_new(DP_REQ_TASKS);
    struct dp_task *tasks = req ? calloc(limit, sizeof(*tasks)) : NULL;
    if (!tasks) {
        dp_ctl_req_free(req);
        return dp_ctl_error("out of memory");
    }
    struct dp_req_tasks *r = &req->u.tasks;
    r->out = tasks; /* freed with req: by us, or by an owner it was abandoned to */
    json_t *arr = json_array();
    for (unsigned o = 0; o < dp_node.owner_count && json_array_size(arr) < limit; o++) {
        r->limit = limit - (unsigned)json_array_size(arr);
        r->count = 0;
        int rc = dp_ctl_ask(o, req);
        if (rc != 0) {
            if (rc != -ETIMEDOUT)
                dp_ctl_req_free(req); /* else abandoned: the owner frees req and tasks */
            json_decref(arr);
            return dp_ctl_error(rc == -EAGAIN ? "owner mailbox full, retry"
                                              : "owner core did not answer in time");
        }
        for (unsigned i = 0; i < r->count && i < r->limit; i++) {
            const struct dp_task *t = &tasks[i];
            struct sf_value vals[VM_ARGS_MAX];
            int n = sf_fields_decode(t->args, t->args_len, vals, VM_ARGS_MAX);
            json_t *args = json_array();
            for (int a = 0; a < n; a++)
                json_array_append_new(args, dp_ctl_value(&vals[a]));
            json_array_append_new(arr, json_pack("{s:s, s:o, s:s, s:I, s:I, s:o, s:I, s:o}", "type",
                                                 t->type, "id", dp_ctl_cstr(t->id), "activity",
                                                 t->activity, "seq", (json_int_t)t->seq, "attempt",
                                                 (json_int_t)t->attempt, "idempotency_key",
                                                 dp_ctl_cstr(t->idempotency_key), "dispatched_ns",
                                                 (json_int_t)t->dispatched_ns, "args", args));
        }
    }
    dp_ctl_req_free(req);
    return json_pack("{s:b, s:o}", "ok", 1, "tasks", arr);
}

static json_t *dp_ctl_activity_result(const struct dp_ctl_cmd *cmd)
{
    unsigned owner;
    struct dp_req *req = dp_ctl_req_new(DP_REQ_ACTIVITY);
    if (!req)
        return dp_ctl_error("out of memory");
    struct dp_req_activity *r = &req->u.activity;
    r->wf = dp_ctl_workflow(cmd->type, cmd->type_len, cmd->id, cmd->id_len, &owner);
    r->seq = cmd->seq;
    r->failed = cmd->failed;
    r->result = cmd->result;
    int rc = dp_ctl_ask(owner, req);
    if (rc == -ETIMEDOUT)
        return dp_ctl_error("owner core did not answer in time"); /* the owner frees req */
    json_t *out;
    if (rc != 0)
        out = dp_ctl_error("owner mailbox full, retry");
    else if (req->result == -ENOENT)
        out = dp_ctl_error("workflow not found");
    else if (req->result == -ESRCH)
        out = dp_ctl_error("no activity run with that seq is pending for this workflow");
    else if (req->result == -EAGAIN)
        out = dp_ctl_error("the log is behind (overloaded): retry");
    else
        out = json_pack("{s:b, s:s}", "ok", 1, "status", rt_status_name(r->rt_status));
    dp_ctl_req_free(req);
    return out;
}

/* The server's handler: one request line, validated, then run. Never NULL but out of memory. */
static json_t *dp_ctl_handle(const char *line, size_t len, void *arg)
{
    (void)arg;
    struct dp_ctl_cmd cmd;
    const char *refused;
    if (dp_ctl_parse(line, len, dp_node.partmap->count, &cmd, &refused) != 0)
        return dp_ctl_error(refused);
    json_t *out = NULL;
    switch (cmd.kind) {
    case DP_CTL_CMD_STATS:
        out = dp_ctl_stats();
        break;
    case DP_CTL_CMD_DESCRIBE:
        out = dp_ctl_describe(&cmd);
        break;
    case DP_CTL_CMD_HISTORY:
        out = dp_ctl_history(&cmd);
        break;
    case DP_CTL_CMD_LIST:
        out = dp_ctl_list(&cmd);
        break;
    case DP_CTL_CMD_DEPLOY:
        out = dp_ctl_deploy(&cmd);
        break;
    case DP_CTL_CMD_DEFINITIONS:
        out = dp_ctl_definitions();
        break;
    case DP_CTL_CMD_ACTIVITIES:
        out = dp_ctl_activities(&cmd);
        break;
    case DP_CTL_CMD_ACTIVITY:
        out = dp_ctl_activity_result(&cmd);
        break;
    case DP_CTL_CMD_FAULT:
        out = dp_ctl_fault(&cmd);
        break;
    case DP_CTL_CMD_DELETE:
        out = dp_ctl_delete(&cmd);
        break;
    case DP_CTL_CMD_KEYS_RELOAD:
        out = dp_ctl_keys_reload();
        break;
    case DP_CTL_CMD_TUNE:
        out = dp_ctl_tune(&cmd);
        break;
    case DP_CTL_CMD_PING:
        out = json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid());
        break;
    case DP_CTL_CMD_COUNT:
        out = dp_ctl_error("unknown command"); /* dp_ctl_parse never returns it */
        break;
    }
    dp_ctl_cmd_release(&cmd);
    return out;
}

int dp_ctl_start(struct dp_node *node, const char *path)
{
    (void)node;
    if (dp_ctl_server)
        return -EBUSY;
    struct dp_ctl_server_opts opts = { .path = path, .handle = dp_ctl_handle };
    return dp_ctl_server_start(&opts, &dp_ctl_server);
}

void dp_ctl_stop(void)
{
    dp_ctl_server_stop(dp_ctl_server);
    dp_ctl_server = NULL;
}
