/*
 * dp_wal.c — durability on the owner cores: every applied signal is logged to the owner's
 * write-ahead log (storage/wal.h) before its ACK leaves the node; recovery replays the log
 * through the same apply function at start-up.
 *
 * Per event (owner loop, dp_owner.c):
 *     wal_reserve(record bytes)      -EAGAIN → refused, counted; "overloaded" in the ACK
 *     wal_append(DP_WAL_SIGNAL, ...) the event as received + its receive time → lsn
 *     apply                          the state changes only after its record is appended
 *     ACK requested?                 the status joins the frame's ACK group, which waits
 *                                    until wal_durable_lsn >= the group's lsn
 * Every loop: wal_poll() reaps fdatasyncs; groups covered by the durable LSN are sent, in
 * order (dp_ack.c: grouping, transmit and the per-source reply bounds).
 *
 * Record payload DP_WAL_SIGNAL (little-endian):
 *     u64 event_id | u64 rx_ns | u8 flags (DP_EV_HAS_EVENT_ID, DP_EV_FIELDS_JSON)
 *     | u8 type_len | u8 id_len | u8 signal_len | u16 fields_len | u16 0
 *     | 16 B prev: the workflow's previous history link (dp.h; zero for its first input)
 *     | type | id | signal | fields (CBOR array, or the JSON fields object)
 * The record's partition and 128-bit key are the WAL header's. Replay checks that the key
 * re-hashes from (type, id) and that the partition matches: a mismatch is corruption.
 *
 * Failure: a failed write or fdatasync makes the log's error sticky; the owner stops the
 * node (node.fatal), no further ACK is ever sent, and the process exits non-zero so that a
 * restart recovers (never retry an fsync).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include <rte_ethdev.h>
#include <rte_malloc.h>

#include "dp.h"
#include "sf_io.h"

/* The largest DP_WAL_SIGNAL payload: header, three names at their maxima, the fields at
 * theirs (binary and JSON forms share SF_FIELDS_LEN_MAX: the parsers refuse longer ones). */
#define DP_WAL_RECORD_MAX \
    (DP_WAL_SIGNAL_HDR + SF_TYPE_LEN_MAX + SF_ID_LEN_MAX + SF_SIGNAL_LEN_MAX + SF_FIELDS_LEN_MAX)

/* Encode the event as a DP_WAL_SIGNAL payload into out[0..cap); returns its length, or 0
 * when it does not fit (the caller refuses the event: nothing is logged or applied). The
 * receive side bounds every part (sf_proto.h limits), but this copy is bounded by the
 * buffer it writes, whatever a parser lets through. */
static uint32_t dp_wal_encode(const struct dp_event *ev, struct rt_hlink prev, uint8_t *out,
                              size_t cap)
{
    size_t need =
        (size_t)DP_WAL_SIGNAL_HDR + ev->type_len + ev->id_len + ev->signal_len + ev->fields_len;
    if (unlikely(need > cap))
        return 0;
    const uint8_t *base = rte_pktmbuf_mtod(ev->m, const uint8_t *);
    dp_put64(out, ev->event_id);
    dp_put64(out + 8, ev->rx_ns);
    out[16] = ev->flags & (DP_EV_HAS_EVENT_ID | DP_EV_FIELDS_JSON);
    out[17] = ev->type_len;
    out[18] = ev->id_len;
    out[19] = ev->signal_len;
    out[20] = (uint8_t)ev->fields_len;
    out[21] = (uint8_t)(ev->fields_len >> 8);
    out[22] = out[23] = 0;
    dp_hlink_put(out + 24, prev);
    uint8_t *p = out + DP_WAL_SIGNAL_HDR;
    memcpy(p, base + ev->type_off, ev->type_len);
    p += ev->type_len;
    memcpy(p, base + ev->id_off, ev->id_len);
    p += ev->id_len;
    memcpy(p, base + ev->signal_off, ev->signal_len);
    p += ev->signal_len;
    memcpy(p, base + ev->fields_off, ev->fields_len);
    p += ev->fields_len;
    return (uint32_t)(p - out);
}

struct rt_hlink dp_wal_next_link(const struct dp_lcore *lc)
{
    uint64_t seg, off;
    wal_next_location(lc->wal, &seg, &off);
    return dp_hlink_make(dp_node.epoch, lc->owner_index, seg, off, wal_next_lsn(lc->wal));
}

int dp_wal_log_signal(struct dp_lcore *lc, const struct dp_event *ev, uint64_t *lsn,
                      struct rt_hlink *loc)
{
    uint8_t rec[DP_WAL_RECORD_MAX];
    uint32_t len = dp_wal_encode(ev, dp_runtime_head_link(dp_node.parts[ev->partition], ev->key),
                                 rec, sizeof(rec));
    if (unlikely(len == 0))
        return -EMSGSIZE;
    int rc = wal_reserve(lc->wal, wal_record_bytes(len) + wal_record_bytes(DP_NOTE_BYTES_MAX));
    if (rc == -EAGAIN)
        return rc;
    if (rc < 0) {
        dp_node.fatal = rc;
        snprintf(dp_node.fatal_reason, sizeof(dp_node.fatal_reason),
                 "owner %u: write-ahead log failed: %s", lc->owner_index, strerror(-rc));
        dp_node.force_quit = true;
        return rc;
    }
    struct wal_key key = { .hi = ev->key.hi, .lo = ev->key.lo };
    *loc = dp_wal_next_link(lc);
    *lsn = wal_append(lc->wal, DP_WAL_SIGNAL, ev->partition, key, rec, len);
    return 0;
}

/* ---- replay ----------------------------------------------------------------------- */

static int dp_wal_replay_one(void *arg, const struct wal_record_view *r)
{
    struct dp_replay_src *src = arg;
    int rc = dp_runtime_replay(src, r);
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

static struct wal_options dp_wal_options(const struct dp_node *node, const char *epoch_dir,
                                         unsigned core)
{
    const struct dp_config *cfg = &node->cfg;
    return (struct wal_options){
        .dir = epoch_dir,
        .core = core,
        .segment_bytes = cfg->wal_segment_bytes,
        .batch_bytes_max = cfg->wal_batch_bytes_max,
        .batch_deadline_ns = (uint64_t)cfg->wal_batch_deadline_us * 1000,
        .inflight_max = cfg->wal_inflight_max,
        .direct_io = cfg->wal_direct_io,
    };
}

/* Load src's snapshot into the partitions its log holds and check them against the
 * MANIFEST's floors. */
static int dp_wal_load_one(struct dp_node *node, struct dp_replay_src *src)
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
static int dp_wal_recover_one(struct dp_node *node, struct dp_replay_src *src, struct wal **out)
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
    rc = wal_recover(&opts, dp_wal_replay_one, src, out ? 0 : WAL_RECOVER_READ_ONLY, &rep, out);
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
static void dp_wal_epochs_gc(struct dp_node *node, const struct snap_manifest *m)
{
    uint64_t keep_ns = (uint64_t)node->cfg.history_retention_s * 1000000000ull;
    bool drop = keep_ns == 0 || m->created_ns + keep_ns < dp_realtime_ns();
    int n = snap_epoch_gc(node->cfg.dir, m->epoch, drop);
    if (n > 0)
        fprintf(stderr, "sigflowd: removed %d epoch director%s%s\n", n, n == 1 ? "y" : "ies",
                drop ? " (older ones past history retention)" : " (an unfinished layout change)");
}

int dp_wal_open_all(struct dp_node *node)
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
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_lcore *lc = node->owner_by_index[o];
        size_t qbytes =
            sizeof(struct dp_ack_queue) + (size_t)cfg->ack_groups * sizeof(struct dp_ack_group);
        lc->acks = rte_zmalloc("dp_acks", qbytes, RTE_CACHE_LINE_SIZE);
        if (!lc->acks)
            return -ENOMEM;
        lc->acks->size = cfg->ack_groups;
        lc->acks->mask = cfg->ack_groups - 1;
    }
    if (!cfg->wal_enabled)
        return 0;

    /* the layout wanted now, and the one the data has (DIR/MANIFEST) */
    static struct snap_manifest m, next;
    static uint16_t map[SNAP_PARTS_MAX];
    for (uint32_t p = 0; p < cfg->partitions; p++)
        map[p] = (uint16_t)wf_partmap_owner(node->partmap, p);
    int rc = snap_manifest_read(cfg->dir, &m);
    if (rc == -ENOENT) {
        rc = snap_manifest_init(&m, 1, node->owner_count, cfg->partitions, map);
        if (rc == 0) {
            m.created_ns = dp_realtime_ns();
            rc = snap_manifest_write(cfg->dir, &m);
        }
        if (rc == 0)
            fprintf(stderr,
                    "sigflowd: new node: MANIFEST epoch 1, %u owner cores, %u "
                    "partitions\n",
                    node->owner_count, cfg->partitions);
    } else if (rc == 0 && m.parts != cfg->partitions) {
        fprintf(stderr,
                "sigflowd: %s/MANIFEST: the data has %u partitions, the configuration %u; "
                "the partition count of a node's data can't change\n",
                cfg->dir, m.parts, cfg->partitions);
        return -EINVAL;
    }
    if (rc != 0) {
        fprintf(stderr, "sigflowd: %s/MANIFEST: %s\n", cfg->dir,
                rc == -EBADMSG ? "damaged (refusing to guess a layout)" : strerror(-rc));
        return rc;
    }
    node->epoch = m.epoch;
    bool same = snap_manifest_same_layout(&m, node->owner_count, cfg->partitions, map);
    uint64_t t0 = dp_realtime_ns();
    uint64_t replayed = 0;
    static struct dp_replay_src srcs[SNAP_CORES_MAX];
    node->recovery.from_epoch = m.epoch;
    for (unsigned c = 0; c < m.cores; c++) {
        srcs[c] = (struct dp_replay_src){ .epoch = m.epoch, .core = c, .manifest = &m };
        if (same)
            srcs[c].gen = node->owner_by_index[c]->reg_gen;
        rc = dp_wal_load_one(node, &srcs[c]);
        if (rc != 0)
            return rc;
    }
    /* A loaded region carries the timer links of the core that wrote it (meaningless
     * here): clear them before replay touches the wheel. Every def is in the newest
     * registry; replay then switches to each log's own generation record by record. */
    uint64_t t_loaded = dp_realtime_ns();
    node->recovery.load_ns = t_loaded - t0;
    for (unsigned c = 0; c < m.cores; c++)
        node->recovery.snapshot_parts += srcs[c].parts_loaded;
    uint64_t newest = __atomic_load_n(&node->registry_gen, __ATOMIC_ACQUIRE);
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_lcore *lc = node->owner_by_index[o];
        rt_core_set_registry(lc->rt, node->registries[newest]);
        lc->reg_gen = newest;
        rt_timers_rebuild(lc->rt);
    }
    for (unsigned c = 0; c < m.cores; c++) {
        struct dp_replay_src src = srcs[c];
        struct dp_lcore *lc = same ? node->owner_by_index[c] : NULL;
        rc = dp_wal_recover_one(node, &src, lc ? &lc->wal : NULL);
        if (rc != 0)
            return rc;
        replayed += src.records;
        node->recovery.records += src.records;
        node->recovery.applied += src.applied;
        if (lc && lc->reg_gen != src.gen) { /* the generation the core ended on */
            rt_core_set_registry(lc->rt, node->registries[src.gen]);
            lc->reg_gen = src.gen;
        }
        if (lc)
            lc->counters[DP_C_REPLAYED] = src.records;
    }
    node->recovery.replay_ns = dp_realtime_ns() - t_loaded;
    if (!same) {
        /* recovered under the old layout; checkpoint under the new one into a new epoch */
        rc = snap_manifest_next_epoch(&m, node->owner_count, map, &next);
        if (rc != 0)
            return rc;
        next.created_ns = dp_realtime_ns();
        uint64_t g = __atomic_load_n(&node->registry_gen, __ATOMIC_ACQUIRE);
        for (unsigned o = 0; o < node->owner_count; o++) {
            struct dp_lcore *lc = node->owner_by_index[o];
            rt_core_set_registry(lc->rt, node->registries[g]);
            lc->reg_gen = g;
            lc->counters[DP_C_REPLAYED] = replayed / node->owner_count;
        }
        snap_epoch_gc(cfg->dir, m.epoch, false); /* a half-built epoch of an earlier try */
        rc = dp_snap_checkpoint(node, next.epoch);
        if (rc == 0)
            rc = snap_manifest_write(cfg->dir, &next); /* the switch point */
        if (rc != 0)
            return rc;
        fprintf(stderr,
                "sigflowd: layout changed: epoch %" PRIu64 " (%u owner cores) -> epoch %" PRIu64
                " (%u): %u partitions checkpointed in %.3f s\n",
                m.epoch, m.cores, next.epoch, node->owner_count, cfg->partitions,
                (double)(dp_realtime_ns() - t0) / 1e9);
        m = next;
        node->epoch = m.epoch;
        memset(node->part_lsn, 0, cfg->partitions * sizeof(node->part_lsn[0]));
        snap_epoch_path(cfg->dir, m.epoch, node->epoch_dir, sizeof(node->epoch_dir));
        mkdir(node->epoch_dir, 0700); /* the checkpoint made it */
        for (unsigned o = 0; o < node->owner_count; o++) {
            struct wal_options opts = dp_wal_options(node, node->epoch_dir, o);
            rc = wal_recover(&opts, NULL, NULL, 0, NULL, &node->owner_by_index[o]->wal);
            if (rc != 0) {
                fprintf(stderr, "sigflowd: epoch %" PRIu64 " core %u: new log: %s\n", m.epoch, o,
                        strerror(-rc));
                return rc;
            }
        }
    }
    if (!same)
        node->recovery.checkpoint_ns = dp_realtime_ns() - t_loaded - node->recovery.replay_ns;
    node->recovery.total_ns = dp_realtime_ns() - t0;
    dp_wal_epochs_gc(node, &m);
    rc = dp_snap_manifest_start(node, &m);
    if (rc != 0)
        return rc;
    for (unsigned o = 0; o < node->owner_count; o++)
        dp_runtime_recovered(node->owner_by_index[o]);
    return 0;
}

void dp_wal_close_all(struct dp_node *node)
{
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_lcore *lc = node->owner_by_index[o];
        if (lc->wal) {
            int rc = wal_close(lc->wal);
            if (rc != 0)
                fprintf(stderr, "sigflowd: owner %u: log close: %s\n", o, strerror(-rc));
            lc->wal = NULL;
        }
        rte_free(lc->acks);
        lc->acks = NULL;
    }
}

unsigned dp_wal_poll(struct dp_lcore *lc)
{
    struct dp_ack_queue *q = lc->acks;
    if (!lc->wal)
        return 0; /* volatile mode (benchmarks): no ACK is ever sent */
    if (unlikely(dp_node.power_cut_seed)) {
        /* Tests: the power is gone. Nothing more is appended or acknowledged; reap what is
         * in flight (it fails), then report this owner drained. Drained means every write
         * and fdatasync came back (wal_io_idle), not wal_inflight() == 0: a failed log never
         * retires its batches, and the cut must rewrite the files only after the kernel
         * finished writing them. */
        wal_poll(lc->wal, dp_now_ns());
        q->head = q->tail;
        if (wal_io_idle(lc->wal))
            lc->power_cut_drained = true;
        return 0;
    }
    int rc = wal_poll(lc->wal, dp_now_ns());
    if (rc < 0) {
        dp_node.fatal = rc;
        snprintf(dp_node.fatal_reason, sizeof(dp_node.fatal_reason),
                 "owner %u: write-ahead log failed: %s (nothing after lsn %" PRIu64
                 " was acknowledged; restart to recover)",
                 lc->owner_index, strerror(-rc), wal_durable_lsn(lc->wal));
        dp_node.force_quit = true;
        q->head = q->tail; /* never acknowledge what was not made durable */
        return 0;
    }
    unsigned sent = q->head < q->tail ? dp_ack_release(lc, wal_durable_lsn(lc->wal)) : 0;
    lc->io_wait = q->head < q->tail || wal_inflight(lc->wal) > 0 ||
                  wal_next_lsn(lc->wal) > wal_durable_lsn(lc->wal) + 1;
    return (unsigned)rc + sent;
}

int dp_wal_tune(struct dp_lcore *lc, const char *key, uint64_t value)
{
    if (!lc->wal)
        return -ENOTSUP;
    if (strcmp(key, "wal.batch_bytes_max") == 0)
        return value > UINT32_MAX ? -EINVAL : wal_set_batch_bytes_max(lc->wal, (uint32_t)value);
    if (strcmp(key, "wal.batch_deadline_us") == 0)
        return value > 1000000 ? -EINVAL : wal_set_batch_deadline_ns(lc->wal, value * 1000);
    if (strcmp(key, "wal.inflight_max") == 0)
        return value > 16 ? -EINVAL : wal_set_inflight_max(lc->wal, (uint32_t)value);
    return -ENOENT;
}

/* ---- fault injection (tests) ------------------------------------------------------ */

int dp_wal_fault(struct dp_node *node, const char *kind, uint32_t skip, uint64_t seed)
{
    static const struct {
        const char *name;
        enum sf_io_fault fault;
    } kinds[] = {
        { "write_eio", SF_IO_FAULT_WRITE_EIO },
        { "fsync_eio", SF_IO_FAULT_FSYNC_EIO },
        { "enospc", SF_IO_FAULT_ENOSPC },
        { "short_write", SF_IO_FAULT_SHORT_WRITE },
    };
    if (!node->cfg.wal_fault_injection)
        return -EPERM;
    if (strcmp(kind, "powercut") == 0 || strcmp(kind, "powercut_reorder") == 0) {
        /* "powercut": un-synced writes are lost in order and the last one is torn;
         * "powercut_reorder": other un-synced writes may also survive whole. */
        node->power_cut_flags = kind[8] == '_' ? SF_IO_CUT_REORDER : 0;
        int rc = sf_io_power_cut_begin();
        if (rc == 0)
            node->power_cut_seed = seed ? seed : 1;
        return rc;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kind, kinds[i].name) == 0)
            return sf_io_fault_arm(kinds[i].fault, skip,
                                   kinds[i].fault == SF_IO_FAULT_SHORT_WRITE ? UINT32_MAX : 1);
    return -ENOENT;
}

void dp_wal_power_cut_finish(struct dp_node *node)
{
    /* The logs are not closed: a machine that loses power flushes nothing. Every owner
     * reaped its operations in flight before the loop stopped (dp_wal_poll). */
    struct sf_io_cut_report rep;
    int rc = sf_io_power_cut_apply(node->power_cut_seed, node->power_cut_flags, &rep);
    fprintf(stderr,
            "sigflowd: POWER CUT (test): %u un-synced writes lost, %u kept, %u files removed, "
            "torn at %s:%" PRIu64 " (%s)\n",
            rep.writes_lost, rep.writes_kept, rep.files_removed,
            rep.torn_path[0] ? rep.torn_path : "-", rep.torn_offset,
            rc == 0 ? "applied" : strerror(-rc));
    _exit(137);
}
