/*
 * snap.h — snapshots of an owner core's partitions, the node's MANIFEST, log retention.
 *
 * A snapshot of owner core N holds, for each of its partitions, the partition's region
 * bytes (struct rt_part and everything after it: one contiguous region, offsets only), the
 * partition's snapshot LSN and its digest (rt_part_digest). It bounds recovery time: load
 * the newest valid snapshot, then replay from the core's log only the records of partition
 * p whose LSN is greater than p's snapshot LSN. The byte layout and validity rules are at
 * the top of snap_format.c. Nothing here uses DPDK.
 *
 * FILES (DIR = the node's data directory)
 *   DIR/MANIFEST                                  the layout and retention floors (below)
 *   DIR/epoch-EEEEEEEEEEEEEEEE/                   everything of epoch E (16 hex digits):
 *       wal/core-N/...                            core N's log: open the WAL with
 *                                                 wal_options.dir = this epoch directory
 *       snap/core-N/SSSSSSSSSSSSSSSS.snap         core N's snapshots, S = sequence number
 *   A log's LSNs are only meaningful inside its (epoch, core): a new epoch starts new logs.
 *
 * SNAPSHOT LSN. `lsn` given for a partition means: every record of this partition in the
 * core's log with LSN <= lsn is reflected in the bytes, none after it. Pass the core's last
 * APPENDED LSN (wal_next_lsn(w) - 1) at the moment the partition's copy starts — not only
 * the partition's own last record — so an idle partition does not pin the log forever.
 * The copy of one partition must be consistent: apply nothing to that partition between
 * its snap_writer_part_begin and its last snap_writer_write (the caller copies it in
 * bounded slices between bursts and defers or refuses that partition's inputs meanwhile,
 * or copies it into a staging buffer).
 *
 * DRIVING A SNAPSHOT FROM THE OWNER LOOP (thread mode; see enum snap_mode)
 *     at start-up:   snap_writer_create(dir, core, &opts, &w)
 *     trigger (log growth / time): snap_writer_begin(w, epoch)
 *     per partition: snap_writer_part_begin(w, id, wal_next_lsn(log) - 1, bytes)
 *                    each loop iteration, between bursts: one slice of <= 1 MiB:
 *                        rc = snap_writer_write(w, region + off, n);
 *                        rc == -EAGAIN: queue full, retry at the next iteration;
 *                    snap_writer_part_end(w, rt_part_digest(p))
 *     then:          rc = snap_writer_commit(w, wal_durable_lsn(log))
 *                        -EAGAIN: the log is not durable up to the snapshot yet, retry;
 *                        -EINPROGRESS: the helper thread now syncs and renames;
 *     each iteration: rc = snap_writer_poll(w): -EINPROGRESS, 0 (durable) or an error
 *     on 0:          snap_writer_manifest_update(w, &manifest); have the MANIFEST written
 *                    (off the core); once it is durable:
 *                    wal_release_before(log, snap_manifest_core_release_lsn(&m, core))
 *     on error:      while open (write/poll returned it): snap_writer_abort(w); a failed
 *                    commit leaves the writer idle: begin again later. The previous
 *                    snapshots are untouched either way.
 *   A snapshot must not become the recovery base while it reflects records that are not
 *   durable in the log (recovery would then reuse their LSNs for new records and skip
 *   them): hence commit takes the log's durable LSN and refuses with -EAGAIN below it.
 *
 * RETENTION. The newest SNAP_KEEP (2) snapshots of a core are kept; older ones are deleted
 * after a commit (then the directory is fsync'ed). Recovery may fall back to the older one,
 * so the log may be released only below the OLDER retained snapshot's LSNs: the commit
 * computes them (snap_writer_manifest_update / snap_commit_info.release_lsn). History
 * retention (time, size) is a further bound the daemon applies on top (the minimum wins).
 *
 * MANIFEST (one per node, DIR/MANIFEST; written tmp → fdatasync → rename → fsync DIR)
 *   epoch E, number of owner cores C, number of partitions P, for each partition p the
 *   core whose log and snapshots hold it in epoch E, and its floor LSN: the snapshot LSN of
 *   p that log retention relies on. Records of p with LSN <= floor may be gone from the
 *   log, so recovery must load a snapshot of p with LSN >= floor (snap_manifest_check_loaded).
 *   The MANIFEST with a raised floor must be durable before wal_release_before is called.
 *
 * RECOVERY AND EPOCHS (the daemon at start-up; desired layout = C' cores, mapping map')
 *   1. snap_manifest_read(DIR, &m). -ENOENT: a new node: snap_manifest_init(&m, 1, C', P,
 *      map'), snap_manifest_write, done (empty partitions, empty logs of epoch 1).
 *      -EBADMSG: stop, report (never guess a layout).
 *   2. snap_epoch_gc(DIR, m.epoch, ...): removes directories of epochs above m.epoch (a
 *      crashed, half-built epoch change) and, when asked, those below it.
 *   3. Recover under m's layout: for each core c of m: for p in snap_manifest_core_parts:
 *      initialise p empty; snap_load(DIR, m.epoch, c, ...) restores the partitions and
 *      their LSNs (-ENOENT: no snapshot yet, all LSNs 0); snap_manifest_check_loaded for
 *      every partition of c; wal_recover of core c's log in DIR/epoch-E replays each record
 *      of partition p only if its LSN > p's snapshot LSN (handlers are not idempotent).
 *   4. snap_manifest_same_layout(&m, C', map') → run (logs stay open, epoch unchanged).
 *      Otherwise (core count changed): snap_manifest_next_epoch(&m, C', map', &n); for each
 *      new core c': snapshot its partitions (under map') into epoch n.epoch with LSN 0
 *      (its new log is empty) and commit; when every core's snapshot is durable,
 *      snap_manifest_write(DIR, &n) — THE switch point: a crash before it recovers epoch E
 *      again (step 2 removes the half-built E+1), a crash after it recovers E+1. Then
 *      close the old logs, open the new logs of DIR/epoch-(E+1), snap_epoch_gc the old
 *      epoch (or keep it for history retention), and run.
 *
 * Thread safety: a snap_writer is used by one thread (the owner core) plus, in thread
 * mode, its own helper thread. snap_load and the MANIFEST functions are blocking start-up
 * or control-thread calls. All file I/O goes through sf_io (fault injection, power cut).
 */
#ifndef SF_SNAP_H
#define SF_SNAP_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAP_FORMAT_VERSION      1u
#define SNAP_MANIFEST_VERSION    1u
#define SNAP_SLICE_BYTES_MAX     (1u << 20) /**< largest snap_writer_write */
#define SNAP_PARTS_MAX           65536u     /**< partitions of a node (ids < this) */
#define SNAP_CORES_MAX           65535u     /**< owner cores (u16 in the MANIFEST) */
#define SNAP_KEEP                2u         /**< snapshots kept per core */
#define SNAP_QUEUE_DEPTH_DEFAULT 4u         /**< slices queued to the helper thread */
#define SNAP_QUEUE_DEPTH_MAX     64u
#define SNAP_REJECT_MAX          8u /**< damaged files a load report lists */
#define SNAP_PATH_MAX            512u

_Static_assert((SNAP_SLICE_BYTES_MAX & (SNAP_SLICE_BYTES_MAX - 1)) == 0, "slice pow2");
_Static_assert(SNAP_KEEP >= 2, "a fallback snapshot must be kept");

/* ---- retention (pure) ------------------------------------------------------------------- */

/**
 * The LSN below which a core's log may be released (to pass to wal_release_before), given
 * the snapshot LSNs of all the core's partitions in the snapshot recovery may fall back to:
 * min(part_lsn) + 1. Returns 0 (release nothing) when n == 0. Can't fail.
 */
uint64_t snap_log_release_lsn(const uint64_t *part_lsn, size_t n);

/* ---- writing ------------------------------------------------------------------------------ */

enum snap_mode {
    /** Every file operation runs in the calling thread (blocking): start-up checkpoints,
     *  tools, tests. snap_writer_write costs a CRC and a pwrite of the slice. */
    SNAP_MODE_SYNC = 0,
    /** For the owner core: snap_writer_write copies the slice into one of queue_depth
     *  buffers (-EAGAIN when all are in use) and a helper thread CRCs and writes it; opening,
     *  fdatasync, rename, directory fsyncs and deletions run on the helper too. No call in
     *  this mode blocks on I/O or on a lock. */
    SNAP_MODE_THREAD = 1,
};

struct snap_writer_options {
    enum snap_mode mode;
    uint32_t parts_max;   /**< partitions one snapshot may hold (1..SNAP_PARTS_MAX) */
    uint32_t queue_depth; /**< thread mode: slice buffers, 1..SNAP_QUEUE_DEPTH_MAX (4) */
    /** Thread mode: CPUs the helper may run on; NULL = inherit the creating thread's. An
     *  owner lcore is pinned to its one CPU and a thread it creates inherits that, so the
     *  helper would then take turns with the owner on its own core: pass the CPUs of the
     *  main / control lcores (NULL is right only when no CPU is free of dataplane work). */
    const cpu_set_t *helper_cpus;
};

/** What a committed snapshot is. */
struct snap_commit_info {
    uint64_t epoch, seq;
    uint32_t core, parts;
    uint64_t file_bytes, data_bytes;
    uint64_t lsn_min, lsn_max; /**< over its partitions */
    /** The log of this core may be released below this LSN: snap_log_release_lsn over the
     *  older retained snapshot (partitions missing from it count as LSN 0); 0 when there is
     *  no older snapshot. */
    uint64_t release_lsn;
    uint32_t removed; /**< older snapshot files deleted by this commit */
    char path[SNAP_PATH_MAX];
};

struct snap_writer;

/**
 * Create a writer for core `core` of the node directory `dir` (allocates the section table
 * and, in thread mode, the slice buffers and starts the helper thread). Call at start-up.
 * Returns 0 with *out set, -EINVAL (bad options, dir too long), -ENOMEM, -errno of
 * pthread_create.
 */
int snap_writer_create(const char *dir, uint32_t core, const struct snap_writer_options *opts,
                       struct snap_writer **out);

/**
 * Stop the helper (it finishes queued work first: blocking, call at shutdown), remove an
 * uncommitted temporary file, free everything. NULL is allowed. Can't fail.
 */
void snap_writer_destroy(struct snap_writer *w);

/**
 * Start a snapshot of epoch `epoch` (creates DIR/epoch-E/snap/core-N/ as needed, removes
 * stale temporary files, opens SEQ.snap.tmp with SEQ = newest existing + 1; in thread mode
 * on the helper). Returns 0, -EBUSY (a snapshot is in progress or its commit/abort is not
 * yet reported by snap_writer_poll), -EAGAIN (thread mode: queue full), -errno of the file
 * operations (sync mode; thread mode reports them at a later call).
 */
int snap_writer_begin(struct snap_writer *w, uint64_t epoch);

/**
 * Start the section of partition `part_id` (< SNAP_PARTS_MAX, once per snapshot) with
 * snapshot LSN `lsn` (see SNAP LSN above) and `total_bytes` of region to follow. Never
 * blocks. Returns 0, -EINVAL (no snapshot open, a section still open, id out of range or
 * already written, parts_max reached).
 */
int snap_writer_part_begin(struct snap_writer *w, uint32_t part_id, uint64_t lsn,
                           uint64_t total_bytes);

/**
 * Append len (1..SNAP_SLICE_BYTES_MAX) bytes of the open section. The bytes are consumed
 * when this returns (copied in thread mode). Returns 0, -EAGAIN (thread mode: every buffer
 * is in flight; nothing taken, call again later), -EINVAL (no open section, len out of
 * range or past total_bytes), or the writer's sticky I/O error (then snap_writer_abort).
 */
int snap_writer_write(struct snap_writer *w, const void *bytes, size_t len);

/**
 * Close the open section after exactly total_bytes were written, recording `digest`.
 * Never blocks. Returns 0, -EINVAL (no open section, bytes missing).
 */
int snap_writer_part_end(struct snap_writer *w, uint64_t digest);

/**
 * Finish the snapshot: write the section table, footer and header, fdatasync, rename to
 * SEQ.snap, fsync the directory, then delete snapshots older than the newest SNAP_KEEP
 * and fsync the directory again. `durable_lsn` is the core's wal_durable_lsn: the commit
 * is refused while it is below the largest section LSN. Returns 0 (sync mode: durable),
 * -EINPROGRESS (thread mode: queued; poll), -EAGAIN (durable_lsn too low, or thread mode
 * queue full: call again), -EINVAL (no snapshot open, a section open), -errno of I/O
 * (sync mode; the temporary file is removed, older snapshots are untouched).
 */
int snap_writer_commit(struct snap_writer *w, uint64_t durable_lsn);

/**
 * Give up the open snapshot: its temporary file is removed (in thread mode, on the
 * helper: poll until it returns 0). Older snapshots are untouched. Returns 0, -EINPROGRESS
 * (thread mode), -EAGAIN (thread mode, queue full: call again), -EINVAL (nothing to abort).
 */
int snap_writer_abort(struct snap_writer *w);

/**
 * Non-blocking state of the writer: 0 idle (the last commit is durable, or the last abort
 * done, or nothing began yet), -EINPROGRESS (a snapshot is open or the helper works on its
 * commit/abort), or an I/O error (-EIO, -ENOSPC, ...): while the snapshot is open the
 * helper's sticky error (call snap_writer_abort), once idle the error that failed the
 * commit (the writer may begin again). Can't fail.
 */
int snap_writer_poll(struct snap_writer *w);

/** The last committed snapshot (after poll returned 0). Returns 0 or -ENOENT (none). */
int snap_writer_last(const struct snap_writer *w, struct snap_commit_info *out);

/** The longest single write of a slice to the file (ns), measured on whichever thread did
 *  it, since create. Can't fail. */
uint64_t snap_writer_io_slice_ns_max(const struct snap_writer *w);

struct snap_manifest;

/**
 * Raise the MANIFEST floors of the partitions of the last committed snapshot to their
 * LSN in the older retained snapshot (0 when absent). Sections with ids >= m->parts hold
 * the caller's metadata and have no floor. Returns 0, -ENOENT (no commit yet), -EINVAL
 * (epoch differs, or a partition belongs to another core in m).
 */
int snap_writer_manifest_update(const struct snap_writer *w, struct snap_manifest *m);

/* ---- loading ------------------------------------------------------------------------------ */

/** Callback of snap_load, once per partition in file order, only after every checksum of
 *  the file was verified. bytes stay valid during the call. Return 0 or a negative errno
 *  to stop loading (returned by snap_load). */
typedef int (*snap_load_fn)(void *ctx, uint32_t part_id, uint64_t lsn, const void *bytes,
                            uint64_t len, uint64_t digest);

struct snap_reject {
    uint64_t seq;
    const char *reason; /**< static text */
    uint64_t offset;    /**< byte offset of the damage (or of the structure found bad) */
};

struct snap_load_report {
    uint64_t seq;   /**< the snapshot loaded (0: none) */
    bool fell_back; /**< a newer snapshot was damaged and skipped */
    uint32_t files; /**< snapshot files found */
    uint32_t parts; /**< partitions loaded */
    uint64_t data_bytes;
    uint64_t created_ns;
    uint32_t rejected_count; /**< damaged files (only SNAP_REJECT_MAX are listed) */
    struct snap_reject rejected[SNAP_REJECT_MAX];
    char path[SNAP_PATH_MAX]; /**< file loaded */
};

/**
 * Load the newest valid snapshot of core `core` in epoch `epoch` of node directory `dir`:
 * validate every structure and checksum of the file, then call fn per partition. A damaged
 * newer file is skipped for the next older one (report says which and why). Blocking.
 * Returns 0, -ENOENT (no snapshot file: start from empty partitions and the whole log),
 * -EBADMSG (snapshot files exist but none is valid: report lists why; do NOT start empty),
 * fn's error, -ENOMEM, -errno of directory listing / open / mmap. report may be NULL.
 */
int snap_load(const char *dir, uint64_t epoch, uint32_t core, snap_load_fn fn, void *ctx,
              struct snap_load_report *report);

/* ---- paths and epochs ------------------------------------------------------------------------ */

/** DIR/epoch-E (the WAL base directory of epoch E) into buf. Returns 0 or -ENAMETOOLONG. */
int snap_epoch_path(const char *dir, uint64_t epoch, char *buf, size_t cap);

/** DIR/epoch-E/snap/core-N into buf. Returns 0 or -ENAMETOOLONG. */
int snap_core_path(const char *dir, uint64_t epoch, uint32_t core, char *buf, size_t cap);

/**
 * Remove epoch directories of dir other than `epoch`: always those above it (an epoch
 * change that crashed before its MANIFEST), those below it only with drop_older. Every
 * file and directory is removed, then dir is fsync'ed. Blocking. Returns the number of
 * epoch directories removed (>= 0) or -errno.
 */
int snap_epoch_gc(const char *dir, uint64_t epoch, bool drop_older);

/* ---- MANIFEST ------------------------------------------------------------------------------ */

/** The MANIFEST in memory (~640 KiB: allocate it, don't put it on a stack). */
struct snap_manifest {
    uint64_t epoch;                     /**< >= 1 */
    uint64_t created_ns;                /**< CLOCK_REALTIME when the epoch started */
    uint32_t cores;                     /**< owner cores of the epoch, 1..SNAP_CORES_MAX */
    uint32_t parts;                     /**< partitions, 1..SNAP_PARTS_MAX */
    uint16_t part_core[SNAP_PARTS_MAX]; /**< [p]: the core whose log holds p */
    uint64_t part_lsn[SNAP_PARTS_MAX];  /**< [p]: floor snapshot LSN of p (see above) */
};

/**
 * Fill m for epoch `epoch` with `cores` cores, `parts` partitions and part_core[p] the core
 * of partition p (every value < cores); floors 0. Returns 0 or -EINVAL (out of range).
 */
int snap_manifest_init(struct snap_manifest *m, uint64_t epoch, uint32_t cores, uint32_t parts,
                       const uint16_t *part_core);

/** Write DIR/MANIFEST (tmp → fdatasync → rename → fsync DIR). Blocking. Returns 0,
 *  -EINVAL (m invalid), -errno of I/O (the old MANIFEST is then untouched). */
int snap_manifest_write(const char *dir, const struct snap_manifest *m);

/** Read and validate DIR/MANIFEST into m. Blocking. Returns 0, -ENOENT (no MANIFEST),
 *  -EBADMSG (damaged: size, magic, version, checksum or contents), -errno of I/O. */
int snap_manifest_read(const char *dir, struct snap_manifest *m);

/** True when m's layout is `cores` cores with this partition count and mapping. */
bool snap_manifest_same_layout(const struct snap_manifest *m, uint32_t cores, uint32_t parts,
                               const uint16_t *part_core);

/**
 * The MANIFEST of the epoch after cur with the new layout (same partition count), floors
 * 0 (new logs). Returns 0 or -EINVAL (out of range, or part count differs).
 */
int snap_manifest_next_epoch(const struct snap_manifest *cur, uint32_t cores,
                             const uint16_t *part_core, struct snap_manifest *next);

/** The partitions of core `core` in m, ascending, into out[0..cap). Returns how many the
 *  core owns (may exceed cap; only cap are stored). Can't fail. */
uint32_t snap_manifest_core_parts(const struct snap_manifest *m, uint32_t core, uint32_t *out,
                                  uint32_t cap);

/** snap_log_release_lsn over the floors of core's partitions (0 when it owns none).
 *  Can't fail. */
uint64_t snap_manifest_core_release_lsn(const struct snap_manifest *m, uint32_t core);

/**
 * Check a partition restored by recovery: part < parts, it belongs to `core` in m and
 * its loaded snapshot LSN (0 when no snapshot held it) is >= its floor. Returns 0, -EINVAL
 * (out of range or another core's partition), -ESTALE (below the floor: records it needs
 * may have been released from the log; stop, never replay).
 */
int snap_manifest_check_loaded(const struct snap_manifest *m, uint32_t part, uint32_t core,
                               uint64_t loaded_lsn);

#endif /* SF_SNAP_H */
