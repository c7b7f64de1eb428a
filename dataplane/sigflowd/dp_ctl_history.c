/*
 * dp_ctl_history.c — `history`: a workflow's inputs newest first, read by following the
 * back-links (epoch, core, segment, offset: dp_record.h) from the instance's head through
 * the logs, one record per entry (wal_read_record), decoded by dp_record.c. The owner
 * answers the head and its durable LSN; a record not yet durable is waited for (up to
 * DP_CTL_DURABLE_WAIT_MS). The listing ends at the workflow's start, at the limit, or
 * where retention has removed older records.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>

#include "dp.h"
#include "dp_ctl_internal.h"
#include "dp_ctl_req.h"
#include "dp_record.h"
#include "dp_req.h"
#include "sf_io.h"

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
    case DP_REC_ATTEMPT: {
        const struct dp_rec_attempt *a = &rec.u.attempt;
        struct flow_activity_info info = { .name = NULL };
        json_object_set_new(e, "kind", json_string("attempt_failed"));
        if (def && flow_def_activity(def, a->act, &info) == 0 && info.name)
            json_object_set_new(e, "activity", json_string(info.name));
        json_object_set_new(e, "activity_index", json_integer(a->act));
        json_object_set_new(e, "seq", json_integer(a->seq));
        json_object_set_new(e, "attempt", json_integer(a->attempt));
        json_object_set_new(e, "reason", dp_ctl_text(a->reason, a->reason_len));
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

json_t *dp_ctl_history(const struct dp_ctl_cmd *cmd)
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
            lsn_lo > (r->durable_lsn & 0xffffffffffull) && waited_ms < DP_CTL_DURABLE_WAIT_MS) {
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
