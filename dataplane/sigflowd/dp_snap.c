/*
 * dp_snap.c — snapshots of an owner core's partitions (storage/snap.h), taken in bounded
 * slices between bursts, so that recovery loads the newest valid snapshot (falling back to
 * the previous one) and replays only each partition's log records after its own LSN; the
 * log is then released below what the older retained snapshot needs.
 *
 * Per snapshot, in the owner loop (dp_snap_poll, one step per iteration):
 *   begin            when snapshot_interval_s passed or the log grew by snapshot_log_bytes;
 *                    a first section (id = partitions) holds the registry generation, and
 *                    new deploys are not adopted until the snapshot is committed, so one
 *                    generation holds for every partition of it;
 *   each partition   its whole region is copied into a staging buffer in one step (the
 *                    region is self-contained: offsets, no pointers) with its LSN = the
 *                    last LSN appended, which covers every record applied to it; the copy
 *                    then goes to the writer in slices of DP_SNAP_SLICE_BYTES (256 KiB),
 *                    one per iteration;
 *   commit           refused by the writer until the log is durable past the snapshot's
 *                    LSNs; the writer's helper thread syncs, renames, keeps the newest two;
 *   manifest         the partitions' floors in the node's MANIFEST are raised to what the
 *                    older kept snapshot holds, and a MANIFEST thread writes it durably
 *                    (off the core); recovery refuses a partition whose snapshot is below
 *                    its floor instead of replaying a log whose head was released;
 *   release          once that MANIFEST is durable: wal_release_before(min of the older
 *                    snapshot's minimum LSN + 1 and the history retention's bound).
 * The longest time one step held the loop is measured (stats: snapshot_stall_us_max).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_malloc.h>

#include "dp.h"
#include "dp_recover.h"
#include "dp_runtime.h"
#include "dp_snap.h"
#include "dp_wal.h"
#include "sf_le.h"
#include "snap.h"

#define DP_SNAP_SLICE_BYTES (256u << 10) /* one slice per loop step: bounds the stall */
#define DP_SNAP_CHECK_NS    10000000ull  /* idle: is a snapshot due? every 10 ms */

int dp_snap_init(struct dp_node *node)
{
    if (node->cfg.partitions >= SNAP_PARTS_MAX) {
        fprintf(stderr, "sigflowd: snapshots need partitions < %u\n", SNAP_PARTS_MAX);
        return -EINVAL;
    }
    /* Loading is always on (a node configured without snapshots may find some). */
    node->part_lsn = calloc(node->cfg.partitions, sizeof(node->part_lsn[0]));
    if (!node->part_lsn)
        return -ENOMEM;
    if (!node->cfg.snapshot_interval_s && !node->cfg.snapshot_log_bytes)
        return 0;
    size_t part_bytes = dp_runtime_partition_bytes(node);
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_lcore *lc = node->owner_by_index[o];
        struct snap_writer_options opts = {
            .mode = SNAP_MODE_THREAD,
            .parts_max = node->cfg.partitions + 1,
        };
        int rc = snap_writer_create(node->cfg.dir, o, &opts, &lc->snap.writer);
        if (rc != 0)
            return rc;
        lc->snap.stage = rte_malloc("dp_snap_stage", part_bytes, RTE_CACHE_LINE_SIZE);
        if (!lc->snap.stage)
            return -ENOMEM;
        lc->snap.stage_bytes = part_bytes;
        lc->snap.last_ns = dp_now_ns();
        memset(lc->snap.stage, 0, part_bytes); /* fault the pages in now, not in the loop */
    }
    fprintf(stderr,
            "sigflowd: snapshots every %u s or %" PRIu64 " log bytes; %zu kB per "
            "partition\n",
            node->cfg.snapshot_interval_s, node->cfg.snapshot_log_bytes, part_bytes >> 10);
    return 0;
}

static void dp_snap_manifest_stop(void);

void dp_snap_close(struct dp_node *node)
{
    dp_snap_manifest_stop();
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_lcore *lc = node->owner_by_index[o];
        snap_writer_destroy(lc->snap.writer);
        lc->snap.writer = NULL;
        rte_free(lc->snap.stage);
        lc->snap.stage = NULL;
    }
}

/* ---- load at start-up ------------------------------------------------------------- */

struct dp_snap_load_ctx {
    struct dp_replay_src *src;
    unsigned parts;
};

static int dp_snap_load_one(void *arg, uint32_t part_id, uint64_t lsn, const void *bytes,
                            uint64_t len, uint64_t digest)
{
    struct dp_snap_load_ctx *ctx = arg;
    struct dp_replay_src *src = ctx->src;
    (void)digest;
    if (part_id == dp_node.cfg.partitions) { /* the registry generation of the snapshot */
        uint64_t gen = len == 8 ? sf_le64_get(bytes) : UINT64_MAX;
        if (gen >= DP_REGISTRY_GENERATIONS_MAX || !dp_node.registries[gen])
            return -ENOENT;
        src->gen = gen;
        src->loaded_lsn = lsn;
        return 0;
    }
    if (part_id >= dp_node.cfg.partitions)
        return -EBADMSG;
    unsigned holder = src->manifest ? src->manifest->part_core[part_id]
                                    : wf_partmap_owner(dp_node.partmap, part_id);
    if (holder != src->core ||
        rt_part_image_check(bytes, len, dp_runtime_partition_bytes(&dp_node)) != 0)
        return -EBADMSG; /* another layout or configuration: refuse rather than guess */
    /* the region's core-local fields are re-set when the new owner attaches it */
    struct rt_part *dst = dp_node.parts[part_id];
    uint32_t core_index;
    memcpy(&core_index, (const uint8_t *)dst + 8, sizeof(core_index));
    memcpy(dst, bytes, len);
    memcpy((uint8_t *)dst + 8, &core_index, sizeof(core_index));
    dp_node.part_lsn[part_id] = lsn;
    ctx->parts++;
    return 0;
}

int dp_snap_load(struct dp_replay_src *src)
{
    if (!dp_node.part_lsn)
        return 0;
    struct dp_snap_load_ctx ctx = { .src = src };
    static struct snap_load_report rep;
    int rc = snap_load(dp_node.cfg.dir, src->epoch, src->core, dp_snap_load_one, &ctx, &rep);
    if (rc == -ENOENT)
        return 0; /* no snapshot yet: the whole log replays */
    if (rc != 0) {
        fprintf(stderr, "sigflowd: epoch %" PRIu64 " core %u: no loadable snapshot: %s\n",
                src->epoch, src->core, strerror(-rc));
        return rc;
    }
    src->parts_loaded = ctx.parts;
    fprintf(stderr,
            "sigflowd: epoch %" PRIu64 " core %u: snapshot loaded: %u partitions, generation "
            "%" PRIu64 ", from lsn %" PRIu64 "%s\n",
            src->epoch, src->core, ctx.parts, src->gen, src->loaded_lsn,
            rep.fell_back ? " (the newest snapshot was damaged: fell back to the previous)" : "");
    return 0;
}

/* ---- the MANIFEST thread ---------------------------------------------------------- */

static struct {
    pthread_t thread;
    bool started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct snap_manifest *m, *copy; /* the node's MANIFEST; a copy being written */
    uint64_t want;                  /* tickets handed out (under mu) */
    _Atomic uint64_t written;       /* highest ticket whose MANIFEST is durable */
    uint64_t errors;
} dp_mf = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void *dp_mf_main(void *arg)
{
    const char *dir = arg;
    pthread_mutex_lock(&dp_mf.mu);
    while (!dp_mf.stop) {
        uint64_t t = dp_mf.want;
        if (t <= atomic_load(&dp_mf.written)) {
            pthread_cond_wait(&dp_mf.cv, &dp_mf.mu);
            continue;
        }
        memcpy(dp_mf.copy, dp_mf.m, sizeof(*dp_mf.copy));
        pthread_mutex_unlock(&dp_mf.mu);
        int rc = snap_manifest_write(dir, dp_mf.copy);
        if (rc == 0) {
            atomic_store(&dp_mf.written, t);
        } else {
            dp_mf.errors++;
            fprintf(stderr, "sigflowd: MANIFEST write failed: %s (log segments are kept)\n",
                    strerror(-rc));
            sleep(1);
        }
        pthread_mutex_lock(&dp_mf.mu);
    }
    pthread_mutex_unlock(&dp_mf.mu);
    return NULL;
}

int dp_snap_manifest_start(struct dp_node *node, const struct snap_manifest *m)
{
    bool any = false;
    for (unsigned o = 0; o < node->owner_count; o++)
        any = any || node->owner_by_index[o]->snap.writer != NULL;
    if (!any)
        return 0;
    dp_mf.m = malloc(sizeof(*dp_mf.m));
    dp_mf.copy = malloc(sizeof(*dp_mf.copy));
    if (!dp_mf.m || !dp_mf.copy)
        return -ENOMEM;
    memcpy(dp_mf.m, m, sizeof(*m));
    int rc = pthread_create(&dp_mf.thread, NULL, dp_mf_main, node->cfg.dir);
    if (rc != 0)
        return -rc;
    dp_mf.started = true;
    return 0;
}

static void dp_snap_manifest_stop(void)
{
    if (!dp_mf.started)
        return;
    pthread_mutex_lock(&dp_mf.mu);
    dp_mf.stop = true;
    pthread_cond_signal(&dp_mf.cv);
    pthread_mutex_unlock(&dp_mf.mu);
    pthread_join(dp_mf.thread, NULL);
    dp_mf.started = false;
    free(dp_mf.m);
    free(dp_mf.copy);
}

/* A snapshot committed: raise its partitions' floors and have the MANIFEST written. */
static int dp_snap_manifest_request(struct dp_lcore *lc)
{
    if (!dp_mf.started)
        return -ENOTSUP;
    pthread_mutex_lock(&dp_mf.mu);
    int rc = snap_writer_manifest_update(lc->snap.writer, dp_mf.m);
    if (rc == 0) {
        lc->snap.manifest_ticket = ++dp_mf.want;
        pthread_cond_signal(&dp_mf.cv);
    }
    pthread_mutex_unlock(&dp_mf.mu);
    return rc;
}

/* ---- checkpoint of a new layout (start-up) ---------------------------------------- */

int dp_snap_checkpoint(struct dp_node *node, uint64_t epoch)
{
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_lcore *lc = node->owner_by_index[o];
        struct snap_writer_options opts = { .mode = SNAP_MODE_SYNC,
                                            .parts_max = node->cfg.partitions + 1 };
        struct snap_writer *w = NULL;
        int rc = snap_writer_create(node->cfg.dir, o, &opts, &w);
        if (rc == 0)
            rc = snap_writer_begin(w, epoch);
        uint8_t gen[8];
        sf_le64_put(gen, lc->reg_gen);
        if (rc == 0)
            rc = snap_writer_part_begin(w, node->cfg.partitions, 0, sizeof(gen));
        if (rc == 0)
            rc = snap_writer_write(w, gen, sizeof(gen));
        if (rc == 0)
            rc = snap_writer_part_end(w, 0);
        for (uint32_t p = 0; p < node->cfg.partitions && rc == 0; p++) {
            if (wf_partmap_owner(node->partmap, p) != o)
                continue;
            const uint8_t *region = (const uint8_t *)node->parts[p];
            size_t part_bytes = rt_part_used_bytes(node->parts[p]);
            rc = snap_writer_part_begin(w, p, 0, part_bytes);
            for (size_t off = 0; off < part_bytes && rc == 0; off += SNAP_SLICE_BYTES_MAX)
                rc = snap_writer_write(w, region + off,
                                       RTE_MIN(part_bytes - off, (size_t)SNAP_SLICE_BYTES_MAX));
            if (rc == 0)
                rc = snap_writer_part_end(w, 0);
        }
        if (rc == 0) {
            rc = snap_writer_commit(w, UINT64_MAX);
            while (rc == -EINPROGRESS)
                rc = snap_writer_poll(w);
        }
        snap_writer_destroy(w);
        if (rc != 0) {
            fprintf(stderr, "sigflowd: checkpoint of epoch %" PRIu64 " core %u failed: %s\n", epoch,
                    o, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

/* ---- taking snapshots ------------------------------------------------------------- */

/* Cheap pre-check for the idle loop: time to look at the log size or the clock. */
static bool dp_snap_due_soon(struct dp_lcore *lc)
{
    uint64_t now = dp_now_ns();
    if (now - lc->snap.checked_ns < DP_SNAP_CHECK_NS)
        return false;
    lc->snap.checked_ns = now;
    return true;
}

static bool dp_snap_due(struct dp_lcore *lc, uint64_t now, uint64_t next_lsn)
{
    const struct dp_config *cfg = &dp_node.cfg;
    if (next_lsn <= lc->snap.last_lsn)
        return false; /* nothing new since the last snapshot */
    if (cfg->snapshot_interval_s &&
        now - lc->snap.last_ns >= (uint64_t)cfg->snapshot_interval_s * 1000000000ull)
        return true;
    if (!cfg->snapshot_log_bytes || !lc->wal)
        return false;
    struct wal_stats st;
    wal_get_stats(lc->wal, &st);
    return st.bytes_written - lc->snap.last_log_bytes >= cfg->snapshot_log_bytes;
}

/* Start the section of the next owned partition: copy its region whole, in this step. */
static int dp_snap_next_part(struct dp_lcore *lc, uint64_t lsn)
{
    struct dp_snap *s = &lc->snap;
    while (s->cursor < dp_node.cfg.partitions &&
           wf_partmap_owner(dp_node.partmap, s->cursor) != lc->owner_index)
        s->cursor++;
    if (s->cursor == dp_node.cfg.partitions)
        return 1; /* every partition written */
    /* the used prefix only: the rest of a region is zero until chunks are taken */
    s->part_bytes = rt_part_used_bytes(dp_node.parts[s->cursor]);
    memcpy(s->stage, dp_node.parts[s->cursor], s->part_bytes);
    /* No rt_part_digest here: it walks the whole region (several times the memcpy) inside
     * this one step, and nothing checks it at load — the section's CRC32C covers the bytes. */
    s->digest = 0;
    int rc = snap_writer_part_begin(s->writer, s->cursor, lsn, s->part_bytes);
    s->off = 0;
    s->part_open = rc == 0;
    return rc;
}

static void dp_snap_done(struct dp_lcore *lc, uint64_t now)
{
    struct dp_snap *s = &lc->snap;
    struct snap_commit_info info;
    if (snap_writer_last(s->writer, &info) == 0) {
        s->count++;
        s->last_duration_ns = now - s->began_ns;
        /* a segment goes when the older retained snapshot covers it AND it is outside the
         * history retention (age and size): the lower bound wins */
        const struct dp_config *cfg = &dp_node.cfg;
        uint64_t keep = wal_retention_lsn(lc->wal, dp_realtime_ns(),
                                          (uint64_t)cfg->history_retention_s * 1000000000ull,
                                          cfg->history_retention_bytes);
        s->retention_lsn = keep;
        uint64_t release = RTE_MIN(info.release_lsn, keep);
        if (release && lc->wal) {
            int released = wal_release_before(lc->wal, release);
            if (released > 0)
                s->segments_released += (uint64_t)released;
        }
    }
    s->phase = DP_SNAP_IDLE;
    s->last_ns = now;
}

static int dp_snap_step(struct dp_lcore *lc, uint64_t now)
{
    struct dp_snap *s = &lc->snap;
    uint64_t next_lsn = lc->wal ? wal_next_lsn(lc->wal) : 1;
    int rc;
    switch (s->phase) {
    case DP_SNAP_IDLE: {
        if (!dp_snap_due(lc, now, next_lsn) || snap_writer_poll(s->writer) != 0)
            return 0;
        rc = snap_writer_begin(s->writer, dp_node.epoch);
        if (rc != 0)
            return rc == -EAGAIN || rc == -EBUSY ? 0 : rc;
        uint8_t gen[8];
        sf_le64_put(gen, lc->reg_gen);
        rc = snap_writer_part_begin(s->writer, dp_node.cfg.partitions, next_lsn - 1, 8);
        if (rc == 0)
            rc = snap_writer_write(s->writer, gen, sizeof(gen));
        if (rc == 0)
            rc = snap_writer_part_end(s->writer, 0);
        s->phase = DP_SNAP_PARTS;
        s->cursor = 0;
        s->part_open = false;
        s->began_ns = now;
        s->last_lsn = next_lsn;
        if (lc->wal) {
            struct wal_stats st;
            wal_get_stats(lc->wal, &st);
            s->last_log_bytes = st.bytes_written;
        }
        return rc;
    }
    case DP_SNAP_PARTS:
        if (!s->part_open) {
            rc = dp_snap_next_part(lc, next_lsn - 1);
            if (rc == 1) {
                s->phase = DP_SNAP_COMMIT;
                return 0;
            }
            return rc;
        }
        if (s->off < s->part_bytes) {
            size_t n = RTE_MIN(s->part_bytes - s->off, (size_t)DP_SNAP_SLICE_BYTES);
            rc = snap_writer_write(s->writer, s->stage + s->off, n);
            if (rc == -EAGAIN)
                return 0; /* the helper is behind: next iteration */
            if (rc != 0)
                return rc;
            s->off += n;
            return 0;
        }
        rc = snap_writer_part_end(s->writer, s->digest);
        s->part_open = false;
        s->cursor++;
        return rc;
    case DP_SNAP_COMMIT:
        rc = snap_writer_commit(s->writer, lc->wal ? wal_durable_lsn(lc->wal) : UINT64_MAX);
        if (rc == -EAGAIN)
            return 0;
        if (rc == 0 || rc == -EINPROGRESS)
            s->phase = DP_SNAP_WAIT;
        return rc == -EINPROGRESS ? 0 : rc;
    case DP_SNAP_WAIT:
        rc = snap_writer_poll(s->writer);
        if (rc == -EINPROGRESS)
            return 0;
        if (rc != 0)
            return rc;
        if (dp_snap_manifest_request(lc) != 0) {
            /* no floor raised: keep the log (the snapshot still counts for recovery) */
            s->errors++;
            s->count++;
            s->phase = DP_SNAP_IDLE;
            s->last_ns = now;
            return 0;
        }
        s->phase = DP_SNAP_MANIFEST;
        return 0;
    case DP_SNAP_MANIFEST:
        if (atomic_load(&dp_mf.written) >= s->manifest_ticket)
            dp_snap_done(lc, now);
        return 0;
    }
    return 0;
}

unsigned dp_snap_poll(struct dp_lcore *lc)
{
    struct dp_snap *s = &lc->snap;
    if (!s->writer)
        return 0;
    /* The stall is measured as this thread's CPU time: on a machine where two lcores share
     * a CPU, wall time would also count the other lcore's turn. */
    if (s->phase == DP_SNAP_IDLE && !dp_snap_due_soon(lc))
        return 0;
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    uint64_t now = dp_now_ns();
    enum dp_snap_phase before = s->phase;
    int rc = dp_snap_step(lc, now);
    if (rc != 0) {
        /* A failed snapshot is not a failed node: give it up, keep the older ones. */
        s->errors++;
        snap_writer_abort(s->writer);
        s->phase = DP_SNAP_IDLE;
        s->last_ns = now;
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    uint64_t dt = (uint64_t)(c1.tv_sec - c0.tv_sec) * 1000000000ull + (uint64_t)c1.tv_nsec -
                  (uint64_t)c0.tv_nsec;
    if (dt > s->stall_ns_max)
        s->stall_ns_max = dt;
    if (dt > s->stall_phase_ns[before])
        s->stall_phase_ns[before] = dt;
    s->steps++;
    s->steps_over_1ms += dt > 1000000;
    return s->phase != before || s->phase == DP_SNAP_PARTS;
}
