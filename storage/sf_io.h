/*
 * sf_io.h — the storage file I/O layer, with fault injection for tests.
 *
 * Every file operation of the write-ahead log goes through this layer: synchronous ones
 * (segment creation, recovery reads, truncation, directory fsync) and the asynchronous
 * io_uring writes and fdatasyncs of group commit (sf_io_prep_* + sf_io_complete).
 *
 * In builds with the meson option `fault_injection` (SF_IO_FAULT_INJECTION=1) a test can
 * arm faults: EIO on write, EIO on fdatasync, ENOSPC, short writes, added fdatasync
 * latency, and a POWER CUT. For the power cut the layer tracks, per file, every write not
 * yet covered by a completed fdatasync (with the bytes it overwrote); sf_io_power_cut_apply
 * then rewrites the files as a disk would look after losing power: un-synced writes are
 * undone, the last one is torn inside a sector, files whose creation was never made durable
 * by a directory fsync disappear. Nothing is armed unless a test arms it; unarmed, the
 * layer costs one predictable branch per operation.
 *
 * Thread safety: the layer may be used from the log's owner thread and its helper thread at
 * once (fault state is under a mutex when armed or tracking).
 */
#ifndef SF_IO_H
#define SF_IO_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef SF_IO_FAULT_INJECTION
#define SF_IO_FAULT_INJECTION 0
#endif

/** user_data values with this bit set belong to the layer (e.g. latency timeouts). */
#define SF_IO_USER_DATA_INTERNAL (1ull << 63)

/** An open file. Fields are the layer's; callers only read fd and path. */
struct sf_io_file {
    int fd;
    bool direct;
    bool cancel_next_fsync;     /* an injected write failure broke the link chain */
    uint64_t last_linked_clock; /* write queued with IOSQE_IO_LINK, awaiting its fsync (its
                                   prep clock; 0 = none). The file's power-cut bookkeeping is
                                   found by path, never kept here: a cut or an unlink frees it
                                   while the file may stay open (e.g. in the log's helper). */
    char path[4096];
};

/**
 * Open (and with O_CREAT create) @path. @flags are open(2) flags; O_DIRECT is honoured.
 * On success *out holds a heap object the caller frees with sf_io_close.
 * Returns 0 or -errno (open failure, -ENOMEM, -ENAMETOOLONG).
 */
int sf_io_open(const char *path, int flags, mode_t mode, struct sf_io_file **out);

/** Close @f (NULL is allowed). Can't fail (close errors are ignored: no data is pending). */
void sf_io_close(struct sf_io_file *f);

/** Read up to @len bytes at @off; loops over short reads. Returns bytes read (less than @len
 *  only at end of file) or -errno. */
ssize_t sf_io_pread(struct sf_io_file *f, void *buf, size_t len, uint64_t off);

/** Reads of the calling thread through sf_io_pread since it started (monotonic). */
struct sf_io_read_counters {
    uint64_t calls; /**< pread(2) calls */
    uint64_t bytes; /**< bytes they returned */
};

/** Copy the calling thread's read counters (tests bound the I/O of an operation by the
 *  difference before/after it). Can't fail. */
void sf_io_read_counters_get(struct sf_io_read_counters *out);

/** Write all @len bytes at @off, synchronously. Returns 0, or -errno (-EIO, -ENOSPC, or
 *  -EIO for a write that returns 0 bytes). Blocking: never call it from an owner core loop. */
int sf_io_pwrite_all(struct sf_io_file *f, const void *buf, size_t len, uint64_t off);

/** fdatasync(@f) synchronously. Returns 0 or -errno. Blocking. */
int sf_io_fdatasync(struct sf_io_file *f);

/** File size via fstat. Returns 0 or -errno. */
int sf_io_size(struct sf_io_file *f, uint64_t *size);

/** ftruncate(@f, @size). Returns 0 or -errno. */
int sf_io_truncate(struct sf_io_file *f, uint64_t size);

/** fsync the directory @dir (makes creations, renames and unlinks in it durable).
 *  Returns 0 or -errno. Blocking. */
int sf_io_fsync_dir(const char *dir);

/** unlink(@path). Returns 0 or -errno. */
int sf_io_unlink(const char *path);

/** rename(@from, @to). Returns 0 or -errno. */
int sf_io_rename(const char *from, const char *to);

/**
 * Queue an asynchronous write of @len bytes at @off to @f on @ring, with @user_data and
 * the sqe flags @sqe_flags (e.g. IOSQE_IO_LINK to order an fdatasync after it). The buffer
 * must stay valid until the completion. The completion's res must be passed through
 * sf_io_complete. Returns 0, or -EBUSY when the submission queue has no room (nothing
 * queued then).
 */
int sf_io_prep_write(struct sf_io_file *f, struct io_uring *ring, const void *buf, uint32_t len,
                     uint64_t off, uint64_t user_data, unsigned sqe_flags);

/**
 * Queue an asynchronous fdatasync (IORING_FSYNC_DATASYNC) of @f. May queue one extra
 * internal sqe before it (injected latency), whose completion carries
 * SF_IO_USER_DATA_INTERNAL. Returns 0 or -EBUSY (needs up to 2 free sqes).
 */
int sf_io_prep_fdatasync(struct sf_io_file *f, struct io_uring *ring, uint64_t user_data,
                         unsigned sqe_flags);

/** True when @user_data is the layer's own (ignore that completion after sf_io_complete). */
static inline bool sf_io_is_internal(uint64_t user_data)
{
    return (user_data & SF_IO_USER_DATA_INTERNAL) != 0;
}

/**
 * Filter a completion reaped from @ring: returns the result the caller must act on (an
 * injected error, or @res unchanged). Must be called exactly once for each completion of an
 * op queued with sf_io_prep_* on @ring, including internal ones. Operations are identified
 * by (@ring, @user_data): several rings (one per log) may use the same user_data values at
 * once, but one ring must not have two operations with the same user_data in flight.
 * Can't fail.
 */
int32_t sf_io_complete(const struct io_uring *ring, uint64_t user_data, int32_t res);

/* ---- fault injection (tests only; every function is a no-op returning -ENOTSUP when the
 *      build has fault_injection=false) ---- */

enum sf_io_fault {
    SF_IO_FAULT_WRITE_EIO,   /**< an asynchronous write fails with -EIO */
    SF_IO_FAULT_FSYNC_EIO,   /**< an asynchronous fdatasync fails with -EIO */
    SF_IO_FAULT_ENOSPC,      /**< an asynchronous write fails with -ENOSPC */
    SF_IO_FAULT_SHORT_WRITE, /**< an asynchronous write writes only a 4 KiB-aligned prefix */
    SF_IO_FAULT_SYNC_EIO,    /**< a synchronous write (segment creation) fails with -EIO */
    SF_IO_FAULT_KIND_COUNT
};

/** True when the build carries the fault-injection layer. */
bool sf_io_fault_supported(void);

/** Arm @kind: skip the next @skip matching operations, then inject into @count of them.
 *  Returns 0 or -ENOTSUP / -EINVAL. */
int sf_io_fault_arm(enum sf_io_fault kind, uint32_t skip, uint32_t count);

/** Delay every later asynchronous fdatasync by @ns (0 = off). Returns 0 or -ENOTSUP. */
int sf_io_fault_set_fsync_latency_ns(uint64_t ns);

/** How many faults of @kind were injected since the last reset. */
uint64_t sf_io_fault_injected(enum sf_io_fault kind);

/** Disarm everything, stop tracking, forget tracked files. Can't fail. */
void sf_io_fault_reset(void);

/** Start tracking un-synced writes of every file opened from now on (needed before a power
 *  cut); a file opened earlier is tracked from its first write (its creation taken as
 *  durable). Returns 0 or -ENOTSUP. */
int sf_io_track_begin(void);

/**
 * Power cut, step 1: the machine "loses power" now. Every later operation fails with -EIO
 * (queued ones complete with -EIO, fdatasyncs completing later make nothing durable).
 * The caller then shuts the log down (draining its ring), and calls step 2.
 * Returns 0 or -ENOTSUP (or -EINVAL without sf_io_track_begin).
 */
int sf_io_power_cut_begin(void);

/** Options of sf_io_power_cut_apply. */
#define SF_IO_CUT_REORDER 1u /**< un-synced writes other than the torn one may survive whole */

/** What sf_io_power_cut_apply did. */
struct sf_io_cut_report {
    uint32_t writes_lost;   /**< un-synced writes undone */
    uint32_t writes_kept;   /**< un-synced writes that survived (SF_IO_CUT_REORDER) */
    uint32_t files_removed; /**< files whose creation was not durable */
    uint64_t torn_offset;   /**< file offset where the torn write's surviving bytes end */
    char torn_path[4096];   /**< file of the torn write ("" when none) */
};

/**
 * Power cut, step 2: rewrite every tracked file to what survives: durable data stays, every
 * un-synced write is undone (its old bytes put back) except that the last one keeps a
 * random number of whole 512-byte sectors and part of the next (a torn sector); with
 * SF_IO_CUT_REORDER other un-synced writes may survive whole. Ends the cut and the
 * tracking. @seed makes the choice reproducible. Returns 0 or -errno of the rewrite.
 */
int sf_io_power_cut_apply(uint64_t seed, unsigned flags, struct sf_io_cut_report *report);

#endif /* SF_IO_H */
