/*
 * dp_ctl_stats.c — `stats`: the node, per core its counters, drops by reason, RX queues,
 * signal statuses, log and snapshot figures (the log's asked of its owner), totals over the
 * cores, each port's NIC counters and xstats, and what the last recovery did.
 * Counters are summed with relaxed loads: each lcore writes only its own.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <rte_ethdev.h>

#include "dp.h"
#include "dp_ctl_internal.h"
#include "dp_ctl_req.h"
#include "dp_req.h"
#include "dp_senders.h"

#define DP_CTL_XSTATS_MAX 512

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

/* An owner's outbound activity tasks and armed timers (asked of the owner): tasks_queued
 * wait for the channel (sigflow-control away, or the ring full), tasks_flagged found the
 * runtime's queue full and wait for room in it. Left out when the owner does not answer. */
static void dp_ctl_core_tasks(const struct dp_lcore *lc, json_t *c)
{
    struct dp_req *req = dp_ctl_req_new(DP_REQ_COUNTS);
    if (!req)
        return;
    int rc = dp_ctl_ask(lc->owner_index, req);
    if (rc == 0) {
        const struct dp_req_counts *r = &req->u.counts;
        json_object_set_new(c, "tasks_queued", json_integer((json_int_t)r->tasks_queued));
        json_object_set_new(c, "tasks_flagged", json_integer((json_int_t)r->tasks_flagged));
        json_object_set_new(c, "timers_armed", json_integer((json_int_t)r->timers_armed));
    }
    if (rc != -ETIMEDOUT)
        dp_ctl_req_free(req); /* on a timeout the owner frees it */
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
        dp_ctl_core_tasks(lc, c);
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

json_t *dp_ctl_stats(void)
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
