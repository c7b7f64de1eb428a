/*
 * wal.h — the per-owner-core write-ahead log: group commit on io_uring, recovery.
 *
 * One `struct wal` per owner core, used only by that core's thread (plus a private helper
 * thread that pre-creates segments). The byte layout, validity rules, sync ordering and
 * recovery algorithm are described at the top of wal.c.
 *
 * How an owner core drives it, every loop iteration:
 *
 *     n = wal_poll(w, now_ns);          // reap completions, close on deadline, submit
 *     if (n < 0) exit_for_recovery(n);  // sticky failure: never ACK more, restart recovers
 *     if (n > 0) release_waiters(wal_durable_lsn(w)); // ACKs / activity tasks with lsn <= it
 *     for each event of the burst:
 *         rc = wal_reserve(w, wal_record_bytes(len) [+ more records of this handler]);
 *         if (rc == -EAGAIN) { NACK "overloaded"; count; continue; }   // nothing applied
 *         if (rc < 0) exit_for_recovery(rc);
 *         run the handler; lsn = wal_append(w, ...) for each record; park the ACK on lsn.
 *
 * Nothing here blocks except wal_recover and wal_close (start-up and shutdown).
 */
#ifndef SF_WAL_H
#define SF_WAL_H

#include <stdbool.h>
#include <stdint.h>

#define WAL_BLOCK_BYTES         4096u      /**< batches start and end on this boundary */
#define WAL_INFLIGHT_LIMIT      16u        /**< upper bound of batches in flight */
#define WAL_BATCH_BYTES_LIMIT   (8u << 20) /**< upper bound of one batch */
#define WAL_RECORD_HEADER_BYTES 40u
#define WAL_PAYLOAD_BYTES_MAX   (1u << 20) /**< largest payload of one record */

/** A workflow's 128-bit identity. */
struct wal_key {
    uint64_t hi, lo;
};

/** Options of a log. Zero fields take the default noted. */
struct wal_options {
    const char *dir;            /**< base directory; the log lives in DIR/wal/core-N/ */
    uint32_t core;              /**< owner core number N */
    uint64_t segment_bytes;     /**< segment file size, multiple of 4096 (64 MiB) */
    uint32_t batch_bytes_max;   /**< a batch closes at this size (256 KiB) */
    uint32_t batch_bytes_cap;   /**< buffer size per batch, bound of batch_bytes_max (1 MiB) */
    uint64_t batch_deadline_ns; /**< a non-empty batch closes this long after the poll that
                                     first saw it (0 = at that poll) (default 100 us) */
    uint32_t inflight_max;      /**< batches written/synced at once, 2..16 (4) */
    uint32_t iowq_workers_max;  /**< io-wq worker cap per kind (2) */
    bool direct_io;             /**< O_DIRECT segments (default false: see wal.c) */
    bool no_recycle;            /**< delete released segments instead of recycling them */
    /** wal_recover only: the log must reach at least this LSN, else -EBADMSG. Pass the
     *  largest snapshot LSN of the core's partitions (a snapshot commits only once the log
     *  is durable up to its LSNs, so a log ending below it lost durable records). 0 = no
     *  check. */
    uint64_t lsn_floor;
};

/** One record handed to the replay callback (pointers valid during the call only). */
struct wal_record_view {
    uint64_t lsn;
    uint64_t segment; /**< id of the segment file holding the record */
    uint64_t offset;  /**< byte offset of the record (its header) in that file */
    uint16_t type;
    uint32_t partition;
    struct wal_key key;
    const void *payload;
    uint32_t len;
};

/** Replay callback: return 0 to go on, a negative errno to stop recovery with it. */
typedef int (*wal_replay_fn)(void *ctx, const struct wal_record_view *rec);

/** How the log ended (wal_recover_report.tail). */
enum wal_tail {
    WAL_TAIL_CLEAN = 0, /**< zeroed space, or the end of the last segment */
    WAL_TAIL_TORN,      /**< an incomplete/invalid tail was truncated (and zeroed) */
    WAL_TAIL_CORRUPT,   /**< invalid data followed by valid later data: recovery stopped */
    WAL_TAIL_SALVAGED,  /**< as CORRUPT, but WAL_RECOVER_SALVAGE skipped over it */
};

#define WAL_RECOVER_SALVAGE   1u /**< skip corrupt regions (loses data; report says where) */
#define WAL_RECOVER_READ_ONLY 2u /**< validate and replay only: no truncation, no reopen */

/** What recovery found. */
struct wal_recover_report {
    uint64_t records; /**< records replayed */
    uint64_t batches;
    uint32_t segments; /**< segment files read */
    uint64_t last_lsn; /**< last valid LSN (0 = empty log) */
    enum wal_tail tail;
    const char *reason;        /**< static text: why the log ends where it does */
    char path[4096];           /**< file of the tail / corruption ("" when clean at EOF) */
    uint64_t offset;           /**< byte offset in that file */
    uint64_t truncated_bytes;  /**< bytes zeroed by truncation */
    uint32_t segments_removed; /**< later segments deleted by truncation */
    uint64_t salvage_skipped_bytes;
};

/** Counters of a live log (all monotonic). */
struct wal_stats {
    uint64_t records, batches, bytes_written, pad_bytes;
    uint64_t reserve_overloaded; /**< wal_reserve returned -EAGAIN */
    uint64_t segment_waits;      /**< of which: next segment not ready yet */
    uint64_t short_write_retries;
    uint64_t segments_created, segments_recycled;
    uint32_t inflight, inflight_peak;
};

struct wal;

/** Bytes a record with @payload_len bytes of payload occupies (what to reserve). */
static inline uint32_t wal_record_bytes(uint32_t payload_len)
{
    return (WAL_RECORD_HEADER_BYTES + payload_len + 7u) & ~7u;
}

/**
 * Recover the log of opts->core under opts->dir and open it for appending.
 * Reads every segment in order, calls @fn (may be NULL) for each valid record in LSN order,
 * classifies the end (see enum wal_tail), truncates and zeroes a torn tail, deletes
 * segments after it, creates the directory and first segment of a new log, and with @out
 * != NULL returns the open log positioned after the last valid record.
 * Blocking; call at start-up. @report may be NULL.
 * Only a true torn tail is truncated (rules: RECOVERY at the top of wal.c); the log then
 * continues after the last valid record, never again at LSN 1 once it had records.
 * Errors: -EBADMSG damage that is not a torn tail (report has reason, file and offset;
 * nothing is truncated; no log is opened): a damaged batch or segment header, damage
 * followed by batches that prove it was durable, no valid batch left in a log whose older
 * segments were released, or a log ending below opts->lsn_floor; the callback's error,
 * -ENOMEM, -EINVAL bad options, -errno of file or io_uring setup.
 */
int wal_recover(const struct wal_options *opts, wal_replay_fn fn, void *ctx, unsigned flags,
                struct wal_recover_report *report, struct wal **out);

/**
 * Make room for appends totalling @bytes (sum of wal_record_bytes of each record) before
 * the caller changes any state. The reservation holds until the next wal_reserve,
 * wal_poll or wal_flush. Returns 0 (the appends can't fail), -EAGAIN when the batches in
 * flight are at their limit and the open batch is full or the next segment is not ready
 * (refuse the work: NACK "overloaded"), -EMSGSIZE when @bytes can never fit one batch,
 * or the log's sticky error.
 */
int wal_reserve(struct wal *w, uint32_t bytes);

/**
 * Append one record inside the current reservation; returns its LSN. Can't fail: appending
 * more than reserved is a programmer error (assert). @len <= WAL_PAYLOAD_BYTES_MAX.
 */
uint64_t wal_append(struct wal *w, uint16_t type, uint32_t partition, struct wal_key key,
                    const void *payload, uint32_t len);

/**
 * Drive the log from the owner loop: reap completions, advance the durable LSN over
 * batches whose fdatasync completed (in order), close the open batch on size or deadline
 * and submit it. Never blocks. Returns the number of records that became durable in this
 * call (>= 0), or the sticky error (negative errno: -EIO, -ENOSPC, ...) once the log
 * failed; then stop accepting and exit; nothing past wal_durable_lsn is durable.
 */
int wal_poll(struct wal *w, uint64_t now_ns);

/** Close the open batch now (if any and if a slot is free). Returns 0, -EAGAIN (in-flight
 *  limit reached; it closes at a later wal_poll) or the sticky error. */
int wal_flush(struct wal *w);

/**
 * Where the next wal_append will put its record: segment id and byte offset of the record
 * header. Valid right after a successful wal_reserve (and after each wal_append inside it).
 * Locations are stable: a record stays at its location until its segment is released.
 * Can't fail (asserts a reservation is open).
 */
void wal_next_location(const struct wal *w, uint64_t *segment, uint64_t *offset);

/**
 * Read the record at (@segment, @offset) of the log in DIR/wal/core-N (@dir, @core as in
 * wal_options), without the log being open (any thread; blocking I/O through sf_io, so the
 * caller can count it): one read of up to 512 bytes, a second one only for a longer record.
 * @buf (@cap bytes, >= WAL_RECORD_HEADER_BYTES) receives header + payload; *out's payload
 * points into it. Checks the record's CRC, its length and that the location is inside the
 * data area. Returns 0, -ENOENT (no such segment file: released), -EBADMSG (no valid record
 * there: never written, overwritten by a recycled segment, or not written yet), -ENOSPC
 * (the record is longer than @cap), -errno of I/O.
 * @file_cache (may be NULL) keeps the last opened segment between calls of one walk;
 * release it with wal_read_close.
 */
struct wal_read_cache {
    void *file; /* struct sf_io_file * */
    uint64_t segment;
    uint32_t core;
    char dir[256];
};
int wal_read_record(const char *dir, uint32_t core, uint64_t segment, uint64_t offset, void *buf,
                    uint32_t cap, struct wal_record_view *out, struct wal_read_cache *file_cache);

/** Close what a walk of wal_read_record calls kept open. Can't fail. */
void wal_read_close(struct wal_read_cache *file_cache);

/**
 * History retention: the LSN below which finished segments fall outside a retention of
 * @keep_ns (a segment older than that: it was finished before now_ns - keep_ns) or of
 * @keep_bytes (the segments newer than it, the current one included, already hold that
 * many bytes). 0 = a bound that is off. Returns the LSN to pass to wal_release_before
 * (combined with the snapshot's: the minimum wins); 0 when every segment is retained.
 * Can't fail.
 */
uint64_t wal_retention_lsn(const struct wal *w, uint64_t now_ns, uint64_t keep_ns,
                           uint64_t keep_bytes);

/** Highest LSN covered by a completed fdatasync, with every LSN below it (0 = none). */
uint64_t wal_durable_lsn(const struct wal *w);

/** LSN the next wal_append returns. */
uint64_t wal_next_lsn(const struct wal *w);

/** The sticky error (negative errno) or 0. */
int wal_error(const struct wal *w);

/** Number of batches submitted and not yet durable. After a failure (wal_error != 0) it no
 *  longer drops: failed batches never become durable; use wal_io_idle to drain. */
uint32_t wal_inflight(const struct wal *w);

/**
 * True when no write or fdatasync of the log is queued or running in the kernel: every
 * completion was reaped by wal_poll. From then on the log changes no file until the next
 * wal_reserve/wal_poll submits a batch. Use it to drain a failed log (or one cut off by
 * sf_io_power_cut_begin: keep calling wal_poll, append nothing, until this is true) before
 * the process exits or sf_io_power_cut_apply rewrites the files. Can't fail.
 */
bool wal_io_idle(const struct wal *w);

/** Copy the counters. Can't fail. */
void wal_get_stats(const struct wal *w, struct wal_stats *out);

/** Tunables, effective from the next batch. Return 0 or -EINVAL (out of range:
 *  batch bytes 4096..batch_bytes_cap and <= segment_bytes - 4096, in flight 2..16). */
int wal_set_batch_bytes_max(struct wal *w, uint32_t bytes);
int wal_set_batch_deadline_ns(struct wal *w, uint64_t ns);
int wal_set_inflight_max(struct wal *w, uint32_t n);

/**
 * Declare that records below @lsn are no longer needed (a snapshot covers them): segments
 * holding only such records are recycled as future segments (renamed, generation bumped,
 * never re-zeroed; beyond a pool of 4 the oldest are deleted; with no_recycle all are deleted).
 * The newest finished segment is always kept: it tells recovery which LSN the current
 * segment continues at even when the current segment's first batch is torn or damaged.
 * Returns the number of segments released.
 */
int wal_release_before(struct wal *w, uint64_t lsn);

/**
 * Shut down: submit the open batch (unless failed), wait for everything in flight (blocking),
 * stop the helper, close files, free @w (NULL allowed). Returns 0 or the sticky error.
 */
int wal_close(struct wal *w);

/** Path of segment @id of the log (for tests and tools). Returns 0 or -ENAMETOOLONG. */
int wal_segment_path(const char *dir, uint32_t core, uint64_t id, char *buf, unsigned len);

#endif /* SF_WAL_H */
