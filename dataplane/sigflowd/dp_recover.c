/*
 * dp_recover.c — start-up recovery, in phases (all blocking, before any lcore runs):
 *
 *   1. layout    DIR/MANIFEST: the epoch, the owner core count and the partition map the
 *                data was written under (a new node writes epoch 1). The partition count
 *                can't change; the owner core count can.
 *   2. load      each of that epoch's logs: its newest valid snapshot into the partitions
 *                it held, checked against the MANIFEST's floors; timer links cleared.
 *   3. replay    each log after its snapshot, record by record, through the same runtime
 *                calls as live inputs (dp_recover_record; layouts in dp_record.h). With the
 *                same layout each log is then open for appending.
 *   4. relayout  only when the owner core count changed: every partition written as a
 *                snapshot of a new epoch (LSN 0), the MANIFEST switched to it, new empty
 *                logs opened.
 *   5. finish    old epochs collected, the MANIFEST thread started, timers rebuilt and
 *                tasks re-dispatched (at least once) on every owner.
 *
 * State after recovery equals the state before the crash for every record that was
 * durable: replay applies each record once (a record at or below its partition's
 * snapshot LSN is in the snapshot already) and uses the registry generation the log was
 * written under at that point (DEPLOY records).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dp.h"
#include "dp_ack.h"
#include "dp_input.h"
#include "dp_record.h"
#include "dp_recover.h"
#include "dp_runtime.h"
#include "dp_snap.h"
#include "dp_wal.h"
#include "sf_io.h"

/* What the phases share. */
struct dp_recovery {
    struct dp_node *node;
    struct snap_manifest m;       /* the layout of the data */
    uint16_t map[SNAP_PARTS_MAX]; /* the layout wanted now: partition -> owner */
    bool same;                    /* the data's layout is the wanted one */
    struct dp_replay_src srcs[SNAP_CORES_MAX];
    uint64_t t0, t_loaded, replayed;
};

int dp_recover_record(struct dp_replay_src *src, const struct wal_record_view *r)
{
    struct dp_rec rec;
    if (r->type == DP_REC_DEPLOY) {
        if (dp_rec_decode(r->type, r->payload, r->len, &rec) != 0)
            return -EBADMSG;
        if (r->lsn <= src->loaded_lsn)
            return 0; /* the loaded snapshot already holds a newer generation */
        uint64_t g = rec.u.deploy_gen;
        if (g >= DP_REGISTRY_GENERATIONS_MAX || !dp_node.registries[g]) {
            fprintf(stderr,
                    "sigflowd: the log uses definitions generation %" PRIu64
                    " that DIR/defs does not hold\n",
                    g);
            return -ENOENT;
        }
        src->gen = g;
        return 0;
    }
    if (r->partition >= dp_node.partmap->count)
        return -EBADMSG;
    unsigned log_owner = src->manifest ? src->manifest->part_core[r->partition]
                                       : wf_partmap_owner(dp_node.partmap, r->partition);
    if (log_owner != src->core)
        return -EBADMSG; /* a partition this log never held */
    if (dp_node.part_lsn && r->lsn <= dp_node.part_lsn[r->partition])
        return 0; /* already in the partition's snapshot: never applied twice */
    struct wf_key key = { .hi = r->key.hi, .lo = r->key.lo };
    if (dp_rec_decode(r->type, r->payload, r->len, &rec) != 0 || !dp_rec_key_matches(&rec, key))
        return -EBADMSG;
    src->applied++;
    struct dp_lcore *lc = dp_node.owner_by_index[wf_partmap_owner(dp_node.partmap, r->partition)];
    if (lc->reg_gen != src->gen) { /* the registry the log's core used at this point */
        if (src->gen >= DP_REGISTRY_GENERATIONS_MAX || !dp_node.registries[src->gen])
            return -ENOENT;
        if (src->gen < lc->reg_gen) { /* registries only grow (rt_core_set_registry) */
            fprintf(stderr,
                    "sigflowd: the log of core %u applies definitions generation %" PRIu64
                    " to an owner core already on generation %" PRIu64
                    " (logs written under different generations merged by a change of the "
                    "owner core count); restart with the previous owner core count\n",
                    src->core, src->gen, lc->reg_gen);
            return -ENOTSUP;
        }
        rt_core_set_registry(lc->rt, dp_node.registries[src->gen]);
        lc->reg_gen = src->gen;
    }
    struct rt_part *part = dp_node.parts[r->partition];
    struct rt_hlink loc = dp_hlink_make(src->epoch, src->core, r->segment, r->offset, r->lsn);
    struct rt_effects fx;
    int st;
    switch (rec.type) {
    case DP_REC_SIGNAL: {
        const struct dp_rec_signal *s = &rec.u.signal;
        if (wf_key_partition(key, dp_node.partmap->count) != r->partition)
            return -EBADMSG;
        struct rt_event ev = {
            .key = key,
            .type = s->type,
            .id = s->id,
            .signal = s->signal,
            .fields = s->fields,
            .event_id = s->event_id,
            .now_ns = s->rx_ns,
            .cause = r->lsn,
            .fields_len = s->fields_len,
            .type_len = s->type_len,
            .id_len = s->id_len,
            .signal_len = s->signal_len,
            .has_event_id = (s->flags & DP_REC_SIG_HAS_EVENT_ID) != 0,
            .fields_json = (s->flags & DP_REC_SIG_FIELDS_JSON) != 0,
        };
        st = rt_apply_signal(lc->rt, part, &ev, &fx);
        break;
    }
    case DP_REC_TIMER:
        st = rt_apply_timer(lc->rt, part, key, rec.u.timer.slot, rec.u.timer.due_ns, r->lsn, &fx);
        break;
    case DP_REC_ACTIVITY: {
        const struct dp_rec_activity *a = &rec.u.activity;
        st = rt_apply_activity_result(lc->rt, part, key, a->act, a->seq, a->failed != 0, a->result,
                                      a->now_ns, r->lsn, &fx);
        break;
    }
    case DP_REC_ATTEMPT: {
        const struct dp_rec_attempt *a = &rec.u.attempt;
        rt_note_attempt(lc->rt, part, key, a->act, a->seq, a->attempt);
        uint32_t ref = rt_inst_find(part, key);
        if (ref != RT_NONE)
            rt_inst_set_hlink(part, ref, loc);
        return 0;
    }
    case DP_REC_DELETE:
        if (rt_delete(lc->rt, part, key) == RT_APPLIED)
            lc->counters[DP_C_DELETED]++;
        return 0;
    case DP_REC_SWEEP: {
        int n = rt_sweep_tombstones(lc->rt, part, rec.u.sweep.now_ns, rec.u.sweep.budget);
        lc->counters[DP_C_TOMBSTONES_SWEPT] += n > 0 ? (uint64_t)n : 0;
        return 0;
    }
    case DP_REC_NOTE: {
        uint32_t ref = rt_inst_find(part, key);
        if (ref != RT_NONE)
            rt_inst_set_hlink(part, ref, loc);
        return 0;
    }
    default:
        return -EBADMSG;
    }
    /* as live; the note that followed the input (if any) moves the link on, above */
    if (fx.inst_ref != RT_NONE)
        rt_inst_set_hlink(part, fx.inst_ref, loc);
    dp_input_count_status(lc, st);
    return 0;
}

static int dp_recover_replay_one(void *arg, const struct wal_record_view *r)
{
    struct dp_replay_src *src = arg;
    int rc = dp_recover_record(src, r);
    if (rc != 0) {
        fprintf(stderr,
                "sigflowd: epoch %" PRIu64 " log of core %u: record lsn %" PRIu64
                " (type %u) invalid\n",
                src->epoch, src->core, r->lsn, r->type);
        return rc;
    }
    src->records++;
    return 0;
}

/* Load src's snapshot into the partitions its log holds and check them against the
 * MANIFEST's floors. */
static int dp_recover_load_one(struct dp_node *node, struct dp_replay_src *src)
{
    int rc = dp_snap_load(src);
    if (rc != 0)
        return rc;
    const struct snap_manifest *m = src->manifest;
    for (uint32_t p = 0; m && p < node->cfg.partitions; p++)
        if (m->part_core[p] == src->core &&
            (rc = snap_manifest_check_loaded(m, p, src->core, node->part_lsn[p])) != 0) {
            fprintf(stderr,
                    "sigflowd: partition %u: its snapshot is older than the MANIFEST's floor: "
                    "records it needs are gone from the log; refusing to start\n",
                    p);
            return rc;
        }
    return 0;
}

/* Replay the log of src after the loaded snapshots. With `out` the log is then open for
 * appending; without, it is only read (an old epoch's log). */
static int dp_recover_log(struct dp_node *node, struct dp_replay_src *src, struct wal **out)
{
    /* an open log keeps its options' dir pointer: the node's own buffer for the current
     * epoch; an old epoch's log is only read here */
    static char old_dir[DP_PATH_MAX + 40];
    char *edir = out ? node->epoch_dir : old_dir;
    snap_epoch_path(node->cfg.dir, src->epoch, edir, sizeof(old_dir));
    int rc;
    if (out && mkdir(edir, 0700) == 0)
        sf_io_fsync_dir(node->cfg.dir);
    else if (out && errno != EEXIST)
        return -errno;
    struct wal_options opts = dp_wal_options(node, edir, src->core);
    /* Cross-check: this log must reach at least the newest snapshot LSN among the
     * partitions it held (a log that ends below it lost durable records, and replay would
     * silently skip what it appends next under reused LSNs). */
    const struct snap_manifest *m = src->manifest;
    for (uint32_t p = 0; node->part_lsn && p < node->cfg.partitions; p++)
        if ((m ? m->part_core[p] == src->core : wf_partmap_owner(node->partmap, p) == src->core) &&
            node->part_lsn[p] > opts.lsn_floor)
            opts.lsn_floor = node->part_lsn[p];
    static struct wal_recover_report rep;
    uint64_t t0 = dp_realtime_ns();
    rc = wal_recover(&opts, dp_recover_replay_one, src, out ? 0 : WAL_RECOVER_READ_ONLY, &rep, out);
    if (rc != 0) {
        fprintf(stderr,
                "sigflowd: epoch %" PRIu64 " core %u: log recovery failed: %s%s%s at %s:%" PRIu64
                "\n",
                src->epoch, src->core, strerror(-rc), rep.reason ? " (" : "",
                rep.reason ? rep.reason : "", rep.path[0] ? rep.path : "-", rep.offset);
        if (rc == -EBADMSG)
            fprintf(stderr,
                    "sigflowd: the log is damaged (not a torn tail: durable records "
                    "would be lost) or ends below its snapshots' lsn %" PRIu64
                    "; nothing was truncated. Inspect the file, or restore from a "
                    "replica.\n",
                    opts.lsn_floor);
        return rc;
    }
    double secs = (double)(dp_realtime_ns() - t0) / 1e9;
    fprintf(stderr,
            "sigflowd: epoch %" PRIu64 " core %u: log recovered: %" PRIu64
            " records replayed in %.3f s (%.0f/s), last lsn %" PRIu64 ", tail %s%s\n",
            src->epoch, src->core, src->records, secs, secs > 0 ? (double)src->records / secs : 0.0,
            rep.last_lsn, rep.tail == WAL_TAIL_TORN ? "torn (truncated)" : "clean",
            rep.truncated_bytes ? ", bytes zeroed" : "");
    return 0;
}

/* Old epochs stay for history (their logs hold the older links) while the history
 * retention time since the epoch change has not passed; then they are removed. */
static void dp_recover_epochs_gc(struct dp_node *node, const struct snap_manifest *m)
{
    uint64_t keep_ns = (uint64_t)node->cfg.history_retention_s * 1000000000ull;
    bool drop = keep_ns == 0 || m->created_ns + keep_ns < dp_realtime_ns();
    int n = snap_epoch_gc(node->cfg.dir, m->epoch, drop);
    if (n > 0)
        fprintf(stderr, "sigflowd: removed %d epoch director%s%s\n", n, n == 1 ? "y" : "ies",
                drop ? " (older ones past history retention)" : " (an unfinished layout change)");
}

/* 1. The layout the data has (DIR/MANIFEST; created for a new node). */
static int dp_recover_layout(struct dp_recovery *rv)
{
    struct dp_node *node = rv->node;
    const struct dp_config *cfg = &node->cfg;
    struct snap_manifest *m = &rv->m;
    for (uint32_t p = 0; p < cfg->partitions; p++)
        rv->map[p] = (uint16_t)wf_partmap_owner(node->partmap, p);
    int rc = snap_manifest_read(cfg->dir, m);
    if (rc == -ENOENT) {
        rc = snap_manifest_init(m, 1, node->owner_count, cfg->partitions, rv->map);
        if (rc == 0) {
            m->created_ns = dp_realtime_ns();
            rc = snap_manifest_write(cfg->dir, m);
        }
        if (rc == 0)
            fprintf(stderr,
                    "sigflowd: new node: MANIFEST epoch 1, %u owner cores, %u "
                    "partitions\n",
                    node->owner_count, cfg->partitions);
    } else if (rc == 0 && m->parts != cfg->partitions) {
        fprintf(stderr,
                "sigflowd: %s/MANIFEST: the data has %u partitions, the configuration %u; "
                "the partition count of a node's data can't change\n",
                cfg->dir, m->parts, cfg->partitions);
        return -EINVAL;
    }
    if (rc != 0) {
        fprintf(stderr, "sigflowd: %s/MANIFEST: %s\n", cfg->dir,
                rc == -EBADMSG ? "damaged (refusing to guess a layout)" : strerror(-rc));
        return rc;
    }
    node->epoch = m->epoch;
    rv->same = snap_manifest_same_layout(m, node->owner_count, cfg->partitions, rv->map);
    return 0;
}

/* 2. Every log's snapshot; timer links of the loaded regions cleared. */
static int dp_recover_load(struct dp_recovery *rv)
{
    struct dp_node *node = rv->node;
    const struct snap_manifest *m = &rv->m;
    node->recovery.from_epoch = m->epoch;
    for (unsigned c = 0; c < m->cores; c++) {
        rv->srcs[c] = (struct dp_replay_src){ .epoch = m->epoch, .core = c, .manifest = m };
        if (rv->same)
            rv->srcs[c].gen = node->owner_by_index[c]->reg_gen;
        int rc = dp_recover_load_one(node, &rv->srcs[c]);
        if (rc != 0)
            return rc;
    }
    /* A loaded region carries the timer links of the core that wrote it (meaningless
     * here): clear them before replay touches the wheel. A core's registry only grows
     * (rt_core_set_registry), so with the same layout each owner starts on the generation
     * its own log starts with (its snapshot's, or 0) and replay moves it up at each DEPLOY
     * record; DIR/defs may hold newer generations than the log (deployed while the log was
     * off, or stored before the node stopped and never adopted): the owners adopt those in
     * their loop, logging DEPLOY first (dp_input_adopt), as for any deploy. After a change
     * of the owner core count, every owner holds partitions of several logs and starts on
     * the newest generation, which holds every def. */
    rv->t_loaded = dp_realtime_ns();
    node->recovery.load_ns = rv->t_loaded - rv->t0;
    for (unsigned c = 0; c < m->cores; c++)
        node->recovery.snapshot_parts += rv->srcs[c].parts_loaded;
    uint64_t newest = __atomic_load_n(&node->registry_gen, __ATOMIC_ACQUIRE);
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_lcore *lc = node->owner_by_index[o];
        uint64_t g = rv->same ? rv->srcs[o].gen : newest;
        RTE_VERIFY(g <= newest && node->registries[g] != NULL); /* dp_snap_load checked it */
        rt_core_set_registry(lc->rt, node->registries[g]);
        lc->reg_gen = g;
        rt_timers_rebuild(lc->rt);
    }
    return 0;
}

/* 3. Every log replayed; with the same layout, each then open for appending. */
static int dp_recover_replay(struct dp_recovery *rv)
{
    struct dp_node *node = rv->node;
    for (unsigned c = 0; c < rv->m.cores; c++) {
        struct dp_replay_src src = rv->srcs[c];
        struct dp_lcore *lc = rv->same ? node->owner_by_index[c] : NULL;
        int rc = dp_recover_log(node, &src, lc ? &lc->wal : NULL);
        if (rc != 0)
            return rc;
        rv->replayed += src.records;
        node->recovery.records += src.records;
        node->recovery.applied += src.applied;
        if (lc && lc->reg_gen != src.gen) {    /* the generation the core ended on */
            RTE_VERIFY(src.gen > lc->reg_gen); /* its DEPLOY records only go up */
            rt_core_set_registry(lc->rt, node->registries[src.gen]);
            lc->reg_gen = src.gen;
        }
        if (lc)
            lc->counters[DP_C_REPLAYED] = src.records;
        uint64_t newest = __atomic_load_n(&node->registry_gen, __ATOMIC_ACQUIRE);
        if (lc && lc->reg_gen < newest)
            fprintf(stderr,
                    "sigflowd: core %u: DIR/defs holds generation %" PRIu64
                    ", newer than its log's %" PRIu64
                    " (deployed while the log was off, or not adopted before the node "
                    "stopped): adopted at start, DEPLOY logged\n",
                    c, newest, lc->reg_gen);
    }
    node->recovery.replay_ns = dp_realtime_ns() - rv->t_loaded;
    return 0;
}

/* 4. The owner core count changed: checkpoint everything into a new epoch, switch the
 * MANIFEST to it, open its empty logs. */
static int dp_recover_relayout(struct dp_recovery *rv)
{
    struct dp_node *node = rv->node;
    const struct dp_config *cfg = &node->cfg;
    static struct snap_manifest next;
    int rc = snap_manifest_next_epoch(&rv->m, node->owner_count, rv->map, &next);
    if (rc != 0)
        return rc;
    next.created_ns = dp_realtime_ns();
    uint64_t g = __atomic_load_n(&node->registry_gen, __ATOMIC_ACQUIRE);
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_lcore *lc = node->owner_by_index[o];
        rt_core_set_registry(lc->rt, node->registries[g]);
        lc->reg_gen = g;
        lc->counters[DP_C_REPLAYED] = rv->replayed / node->owner_count;
    }
    snap_epoch_gc(cfg->dir, rv->m.epoch, false); /* a half-built epoch of an earlier try */
    rc = dp_snap_checkpoint(node, next.epoch);
    if (rc == 0)
        rc = snap_manifest_write(cfg->dir, &next); /* the switch point */
    if (rc != 0)
        return rc;
    fprintf(stderr,
            "sigflowd: layout changed: epoch %" PRIu64 " (%u owner cores) -> epoch %" PRIu64
            " (%u): %u partitions checkpointed in %.3f s\n",
            rv->m.epoch, rv->m.cores, next.epoch, node->owner_count, cfg->partitions,
            (double)(dp_realtime_ns() - rv->t0) / 1e9);
    rv->m = next;
    node->epoch = rv->m.epoch;
    memset(node->part_lsn, 0, cfg->partitions * sizeof(node->part_lsn[0]));
    snap_epoch_path(cfg->dir, rv->m.epoch, node->epoch_dir, sizeof(node->epoch_dir));
    mkdir(node->epoch_dir, 0700); /* the checkpoint made it */
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct wal_options opts = dp_wal_options(node, node->epoch_dir, o);
        rc = wal_recover(&opts, NULL, NULL, 0, NULL, &node->owner_by_index[o]->wal);
        if (rc != 0) {
            fprintf(stderr, "sigflowd: epoch %" PRIu64 " core %u: new log: %s\n", rv->m.epoch, o,
                    strerror(-rc));
            return rc;
        }
    }
    node->recovery.checkpoint_ns = dp_realtime_ns() - rv->t_loaded - node->recovery.replay_ns;
    return 0;
}

int dp_recover_all(struct dp_node *node)
{
    const struct dp_config *cfg = &node->cfg;
    if (cfg->wal_fault_injection) {
        int rc = sf_io_track_begin(); /* before any log file is opened */
        if (rc != 0) {
            fprintf(stderr, "sigflowd: [wal] fault_injection: this build has no fault layer\n");
            return rc;
        }
        fprintf(stderr, "sigflowd: WARNING: fault injection armed by configuration (tests)\n");
    }
    int rc = dp_ack_queues_init(node);
    if (rc != 0 || !cfg->wal_enabled)
        return rc;
    static struct dp_recovery rv; /* large (srcs, map): not on the stack */
    memset(&rv, 0, sizeof(rv));
    rv.node = node;
    rv.t0 = dp_realtime_ns();
    if ((rc = dp_recover_layout(&rv)) != 0 || (rc = dp_recover_load(&rv)) != 0 ||
        (rc = dp_recover_replay(&rv)) != 0 || (!rv.same && (rc = dp_recover_relayout(&rv)) != 0))
        return rc;
    /* 5. finish */
    node->recovery.total_ns = dp_realtime_ns() - rv.t0;
    dp_recover_epochs_gc(node, &rv.m);
    rc = dp_snap_manifest_start(node, &rv.m);
    if (rc != 0)
        return rc;
    for (unsigned o = 0; o < node->owner_count; o++)
        dp_runtime_recovered(node->owner_by_index[o]);
    return 0;
}
