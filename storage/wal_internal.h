/*
 * wal_internal.h — state of a live log, shared by wal.c and wal_recover.c only.
 */
#ifndef SF_WAL_INTERNAL_H
#define SF_WAL_INTERNAL_H

#include <liburing.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "sf_io.h"
#include "wal.h"
#include "wal_format.h"

#define WAL_BATCH_SLOTS         (WAL_INFLIGHT_LIMIT + 1u) /* in flight + the open one */
#define WAL_SEGMENT_SLOTS       (WAL_INFLIGHT_LIMIT + 2u) /* open segments (current + draining) */
#define WAL_RING_ENTRIES        128u                      /* >= 3 sqes per batch in flight */
#define WAL_SHORT_WRITE_RETRIES 4u
#define WAL_DONE_MAX            4096u /* finished segments remembered for release */
#define WAL_RELEASE_QUEUE_MAX   64u
#define WAL_RECYCLE_POOL_MAX    4u /* released segments kept for reuse; more are deleted */
#define WAL_ZERO_CHUNK_BYTES    (1u << 20)

_Static_assert(WAL_RING_ENTRIES >= 3 * WAL_INFLIGHT_LIMIT, "ring holds every batch's sqes");

enum wal_batch_state { WAL_BATCH_FREE = 0, WAL_BATCH_OPEN, WAL_BATCH_INFLIGHT };
enum wal_op { WAL_OP_WRITE = 1, WAL_OP_FSYNC = 2 };

struct wal_batch {
    uint8_t *buf; /* batch_bytes_cap bytes, block aligned */
    enum wal_batch_state state;
    uint32_t used;  /* header + records */
    uint32_t limit; /* bytes this batch may grow to */
    uint32_t records;
    uint64_t first_lsn;
    uint64_t seq;
    uint64_t open_ns; /* first poll that saw it non-empty (0: not yet) */
    uint32_t seg;     /* segment slot */
    uint64_t offset;  /* in the segment file */
    uint32_t total;   /* bytes written: used rounded up to the block */
    uint32_t written;
    uint32_t attempt;
    uint32_t pending; /* completions still to come */
    bool need_retry;
    bool synced;
};

struct wal_segment_slot {
    bool used;
    bool current;
    struct sf_io_file *file;
    uint64_t id;
    uint64_t generation;
    uint32_t refs; /* batches in flight in it */
};

struct wal_helper {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool want; /* the loop wants segment want_id prepared */
    uint64_t want_id;
    atomic_int ready; /* next_* hold a prepared segment */
    atomic_int err;   /* sticky helper error (negative errno) */
    struct sf_io_file *next_file;
    uint64_t next_id;
    uint64_t next_generation;
    uint64_t release[WAL_RELEASE_QUEUE_MAX]; /* segment ids handed over for reuse */
    uint32_t release_count;
    uint64_t pool[WAL_RECYCLE_POOL_MAX]; /* released files waiting to be recycled */
    uint32_t pool_count;
    void *zero_buf; /* WAL_ZERO_CHUNK_BYTES of zeros */
    uint64_t created, recycled;
};

struct wal {
    struct wal_options opt;
    char base_dir[PATH_MAX]; /* opt.dir points here */
    char log_dir[PATH_MAX];
    struct io_uring ring;
    bool ring_ready;
    struct wal_batch batches[WAL_BATCH_SLOTS];
    uint32_t head; /* oldest batch in flight */
    uint32_t inflight;
    bool open_valid; /* batches[(head + inflight) % SLOTS] is open */
    uint32_t reserved;
    struct wal_segment_slot segs[WAL_SEGMENT_SLOTS];
    uint32_t cur;    /* current segment slot */
    uint64_t cursor; /* next batch offset in the current segment */
    uint64_t next_lsn;
    uint64_t durable_lsn;
    uint64_t next_seq;
    uint64_t cur_first_lsn; /* first LSN in the current segment */
    int err;
    struct wal_stats stats;
    struct wal_helper helper;
    struct {
        uint64_t id, last_lsn;
        uint64_t closed_ns; /* CLOCK_REALTIME when it was finished (file mtime after recovery) */
    } done[WAL_DONE_MAX];   /* finished segments, oldest first (ring) */
    uint32_t done_head, done_count;
};

/* wal.c, used by recovery */
int wal_log_dir(const char *dir, uint32_t core, char *buf, size_t len);
int wal_options_normalize(const struct wal_options *in, struct wal_options *out);
int wal_segment_create(struct wal *w, uint64_t id, struct sf_io_file **out);
int wal_open_live(struct wal *w, struct sf_io_file *seg, uint64_t seg_id, uint64_t generation,
                  uint64_t cursor, uint64_t last_lsn, uint64_t next_seq);
void wal_remember_done(struct wal *w, uint64_t id, uint64_t last_lsn, uint64_t closed_ns);
void wal_free(struct wal *w);

#endif /* SF_WAL_INTERNAL_H */
