/*
 * wal.c — per-owner-core write-ahead log with io_uring group commit.
 *
 * FILES
 *   DIR/wal/core-N/SSSSSSSSSSSSSSSS.log, S = segment id in 16 hex digits, ids consecutive.
 *   Every segment file has a fixed size (segment_bytes, default 64 MiB) and is fully
 *   written (zeros) before it carries data: pre-zeroed by a helper thread, or recycled from
 *   a released segment. Writing into already-written blocks is a pure overwrite, so an
 *   fdatasync flushes data and the device cache but commits no file-system journal
 *   transaction (a fresh fallocate'd extent would: unwritten->written conversion).
 *
 * BYTE LAYOUT (little-endian; see wal_format.h)
 *   block 0 (4096 B): segment header, 64 B: magic "SFWS", crc32c, version, core,
 *       segment id, generation, segment bytes; rest of the block zero.
 *   then batches, each starting on a 4096-byte boundary:
 *       batch header, 64 B: magic "SFWB", crc32c(header), segment id, generation, seq,
 *           first_lsn, last_lsn, record_count, body_bytes, batch_bytes, inflight_window
 *       records, back to back, each 8-byte aligned:
 *           crc32c, payload_len, lsn, key_hi, key_lo, type, flags, partition (40 B),
 *           payload, zero padding to 8
 *       zero padding to the next 4096 boundary (so no block holding acknowledged records
 *       is ever written again, which O_DIRECT requires and buffered I/O benefits from)
 *   then zeros (never written) or, in a recycled segment, stale batches of the file's
 *   previous life (older generation and segment id).
 *
 * VALIDITY
 *   A segment is valid if its header's magic, crc and version match and its id equals the
 *   file name. A batch at offset X of segment S is valid if: magic, header crc; segment id
 *   and generation equal S's; seq is the previous batch's + 1 and first_lsn the previous
 *   last_lsn + 1 (the first batch of the oldest segment sets the base); 1 <= record_count,
 *   64 + body_bytes <= batch_bytes = roundup(64 + body_bytes, 4096) <= room left in S; and
 *   every record inside body_bytes has a matching crc, length within the body and
 *   lsn = first_lsn + index, with the last one ending exactly at body_bytes and carrying
 *   last_lsn. A batch is accepted whole or not at all. All-zero header = zeroed space.
 *
 * SYNC ORDERING
 *   A batch is one io_uring write of batch_bytes at its offset, then an
 *   fdatasync(IORING_FSYNC_DATASYNC) linked after it (IOSQE_IO_LINK), so the fsync starts
 *   only after the write completed. Up to inflight_max (2..16) such chains run at once;
 *   their completions may arrive out of order. The durable LSN moves only over batches
 *   whose own fsync completed, oldest first: batch k is durable iff fsync k and every
 *   batch before k are. A short write breaks the link (the fsync completes -ECANCELED);
 *   the remainder and a new fsync are re-queued (bounded retries). Any error of a write or
 *   fsync makes the log fail (sticky): durable LSN frozen, nothing retried — after a failed
 *   fsync the page cache may hold "clean" pages that never reached the disk (fsyncgate), so
 *   the only safe continuation is to exit and recover from what is on disk.
 *   Segment files are created/zeroed/recycled, fdatasync'ed and their directory fsync'ed by
 *   the helper thread before the owner loop may write a batch into them; the owner loop
 *   itself only submits io_uring sqes and reaps cqes.
 *
 * RECOVERY (wal_recover.c)
 *   List the segments, sort by id (must be consecutive), read each whole, and walk batches
 *   from offset 4096, validating each completely before handing its records to the
 *   callback. The sequence base (expected seq E and first LSN L) is seq 1 / LSN 1 when the
 *   oldest file is segment 1 (a log's first segment), else the first valid batch. The walk
 *   ends at the first position P that is not the valid next batch. P is either a torn
 *   tail (cut it) or damage (fail stop): a crash can leave at P only what an un-synced
 *   write leaves. What a crash can leave: batches in flight land whole, not at all, or
 *   (the one being written) as a prefix; an old 512-byte sector is never mixed with a new
 *   one except at a tear point, after which the write's bytes are old (zeros, or a recycled
 *   segment's stale bytes of older generations, which hold only LSNs below L).
 *   P is DAMAGE (-EBADMSG, report says file, offset and why; nothing is touched;
 *   WAL_RECOVER_SALVAGE instead resumes at the next batch that proves it, or cuts at P):
 *     1. the header at P is valid on its own for this segment and generation (crc, id,
 *        generation) but out of sequence or with inconsistent sizes: this life wrote it,
 *        and this life writes a block once (a cut zeroes everything after it);
 *     2. the header at P is not valid (and not all zero) while the record right after it,
 *        at P + 64, is complete (crc) with LSN L: that record shares the header's first
 *        sector and comes after it in the write, so the header was written and is damaged
 *        (a tear would have left the record old too). This catches any damage to a batch
 *        header, of the last batch too, while its first record is intact;
 *     3. the segment header is invalid but the file holds crc-valid batches of its own id:
 *        batches are written only after the header was made durable (ids of stale batches
 *        in a recycled file are all lower than its new id);
 *     4. durability proof: each batch header stores inflight_window k = the number of
 *        batches in flight when it was submitted, itself included; durability is retired
 *        in order, so a batch X on disk proves that every batch with seq <= X.seq - k was
 *        durable. Scan from P, at every 4096 boundary, through the rest of this segment and
 *        all later ones (a later segment with a damaged header counts for batches of its
 *        own id) for batches valid on their own (crc, sizes, segment id and generation);
 *        one with X.seq >= E + k proves the batch at P was durable. (No base: E is below
 *        the smallest seq found, that bound is used.)
 *   Otherwise P is the TAIL (zeroed space, a torn write, stale data of a recycled segment,
 *   or in-flight batches that landed around a lost one: none of them was acknowledged).
 *   Cut: zero from P to the end of that segment, fdatasync, delete later segments, fsync
 *   the directory, fdatasync the kept segments (after a kill -9 they may sit in the page
 *   cache only), reopen for appending at P with the next seq and LSN after the last valid
 *   batch. Valid batches after P within their in-flight window are cut with it, by design:
 *   failing there would turn an ordinary crash with out-of-order completions into a stop.
 *   The log never restarts at LSN 1 unless its oldest file is segment 1: when no valid
 *   batch is left in a log whose older segments were released, recovery stops with
 *   -EBADMSG (its next LSN is unknown); wal_release_before always keeps the newest
 *   finished segment, so a damaged or torn first batch of the current segment still has a
 *   base. wal_options.lsn_floor (the largest snapshot LSN) makes a log that ends below it
 *   fail the same way.
 *   Known limit: damage inside the records (not the header) of one of the last batches,
 *   when no later batch proves it durable (rule 4), reads like a torn write and is cut.
 *
 * MEASUREMENTS (build-wal/perf/wal/bench_wal, /var/tmp on this VM's virtio disk, ext4,
 *   2 cores shared with other builds, 100 B payloads, 256 KiB batches, 4 in flight):
 *     raw sequential 1 MiB writes, one fdatasync at the end: 1.6-1.8 GB/s (mostly page
 *     cache); with an fdatasync per MiB: 0.40 (buffered) / 0.58 (O_DIRECT) GB/s.
 *     WAL buffered: 0.09 GB/s (0.6 M rec/s), commit p50 11 ms at 200 k rec/s offered;
 *     WAL O_DIRECT: 0.52 GB/s (3.6 M rec/s, 90% of the fsync-per-MiB raw figure, 29% of
 *     the single-fsync one), commit p50 0.75 ms at 200 k rec/s offered.
 *   Buffered writes copy into the page cache in io-wq workers and fdatasync then writes
 *   back everything; O_DIRECT overwrites of pre-zeroed blocks go straight to the device and
 *   the fdatasync only flushes its cache. => use direct_io=true on real disks (the flag
 *   stays opt-in because tmpfs and some file systems refuse O_DIRECT).
 *   Replay: 1.6-2.7 M records/s per core (page cache warm), below the 5 M goal: recovery
 *   reads whole segments with pread; see the report.
 */
#include "wal_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAL_DEFAULT_SEGMENT_BYTES (64ull << 20)
#define WAL_DEFAULT_BATCH_BYTES   (256u << 10)
#define WAL_DEFAULT_BATCH_CAP     (1u << 20)
#define WAL_DEFAULT_DEADLINE_NS   100000ull
#define WAL_DEFAULT_INFLIGHT      4u
#define WAL_DEFAULT_IOWQ_WORKERS  2u

int wal_log_dir(const char *dir, uint32_t core, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/wal/core-%u", dir, core);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int wal_segment_path(const char *dir, uint32_t core, uint64_t id, char *buf, unsigned len)
{
    int n = snprintf(buf, len, "%s/wal/core-%u/%016llx.log", dir, core, (unsigned long long)id);
    return n < 0 || (unsigned)n >= len ? -ENAMETOOLONG : 0;
}

int wal_options_normalize(const struct wal_options *in, struct wal_options *out)
{
    *out = *in;
    if (!out->dir || !out->dir[0])
        return -EINVAL;
    if (!out->segment_bytes)
        out->segment_bytes = WAL_DEFAULT_SEGMENT_BYTES;
    if (!out->batch_bytes_cap)
        out->batch_bytes_cap = WAL_DEFAULT_BATCH_CAP;
    if (!out->batch_bytes_max)
        out->batch_bytes_max = WAL_DEFAULT_BATCH_BYTES;
    if (out->batch_bytes_max > out->batch_bytes_cap)
        out->batch_bytes_max = out->batch_bytes_cap;
    if (!out->batch_deadline_ns)
        out->batch_deadline_ns = WAL_DEFAULT_DEADLINE_NS;
    if (!out->inflight_max)
        out->inflight_max = WAL_DEFAULT_INFLIGHT;
    if (!out->iowq_workers_max)
        out->iowq_workers_max = WAL_DEFAULT_IOWQ_WORKERS;
    if (out->segment_bytes % WAL_BLOCK_BYTES || out->segment_bytes < 4 * WAL_BLOCK_BYTES ||
        out->batch_bytes_cap % WAL_BLOCK_BYTES || out->batch_bytes_cap > WAL_BATCH_BYTES_LIMIT ||
        out->batch_bytes_cap < WAL_BLOCK_BYTES || out->batch_bytes_max < WAL_BLOCK_BYTES ||
        out->inflight_max < 2 || out->inflight_max > WAL_INFLIGHT_LIMIT)
        return -EINVAL;
    if (out->batch_bytes_cap > out->segment_bytes - WAL_BLOCK_BYTES)
        out->batch_bytes_cap = (uint32_t)(out->segment_bytes - WAL_BLOCK_BYTES);
    if (out->batch_bytes_max > out->batch_bytes_cap)
        out->batch_bytes_max = out->batch_bytes_cap;
    return 0;
}

static void wal_fail(struct wal *w, int err)
{
    assert(err < 0);
    if (w->err == 0)
        w->err = err;
}

/* ---------------------------------------------------------------- segment files (helper) */

static void wal_segment_header_fill(struct wal_segment_header *h, uint32_t core, uint64_t id,
                                    uint64_t generation, uint64_t segment_bytes)
{
    memset(h, 0, sizeof(*h));
    h->magic = WAL_SEGMENT_MAGIC;
    h->version = WAL_FORMAT_VERSION;
    h->core = core;
    h->segment_id = id;
    h->generation = generation;
    h->segment_bytes = segment_bytes;
    h->crc = wal_header_crc(h);
}

static int wal_open_flags(const struct wal *w)
{
    return O_RDWR | (w->opt.direct_io ? O_DIRECT : 0);
}

/* Write block 0 (header + zeros) of segment @f, fdatasync it, fsync the directory. */
static int wal_segment_seal(struct wal *w, struct sf_io_file *f, uint64_t id, uint64_t gen)
{
    uint8_t *block = w->helper.zero_buf; /* first block reused as header block, then zeroed */
    wal_segment_header_fill((struct wal_segment_header *)block, w->opt.core, id, gen,
                            w->opt.segment_bytes);
    int rc = sf_io_pwrite_all(f, block, WAL_BLOCK_BYTES, 0);
    memset(block, 0, WAL_HEADER_BYTES);
    if (rc == 0)
        rc = sf_io_fdatasync(f);
    if (rc == 0)
        rc = sf_io_fsync_dir(w->log_dir);
    return rc;
}

/* Create segment @id: new file, every byte written with zeros, header, synced. Blocking. */
int wal_segment_create(struct wal *w, uint64_t id, struct sf_io_file **out)
{
    char path[PATH_MAX];
    int rc = wal_segment_path(w->opt.dir, w->opt.core, id, path, sizeof(path));
    if (rc)
        return rc;
    struct sf_io_file *f = NULL;
    rc = sf_io_open(path, wal_open_flags(w) | O_CREAT | O_EXCL, 0644, &f);
    if (rc == -EEXIST) { /* a leftover that recovery did not claim: never holds live data */
        sf_io_unlink(path);
        rc = sf_io_open(path, wal_open_flags(w) | O_CREAT | O_EXCL, 0644, &f);
    }
    if (rc)
        return rc;
    for (uint64_t off = WAL_BLOCK_BYTES; off < w->opt.segment_bytes && rc == 0;) {
        uint64_t n = w->opt.segment_bytes - off;
        if (n > WAL_ZERO_CHUNK_BYTES)
            n = WAL_ZERO_CHUNK_BYTES;
        rc = sf_io_pwrite_all(f, w->helper.zero_buf, n, off);
        off += n;
    }
    if (rc == 0)
        rc = wal_segment_seal(w, f, id, 1);
    if (rc) {
        sf_io_close(f);
        sf_io_unlink(path);
        return rc;
    }
    w->helper.created++;
    *out = f;
    return 0;
}

/* Reuse released segment @old_id as segment @id: rename, bump generation, new header. */
static int wal_segment_recycle(struct wal *w, uint64_t old_id, uint64_t id, struct sf_io_file **out,
                               uint64_t *gen_out)
{
    char from[PATH_MAX], to[PATH_MAX];
    int rc = wal_segment_path(w->opt.dir, w->opt.core, old_id, from, sizeof(from));
    if (rc == 0)
        rc = wal_segment_path(w->opt.dir, w->opt.core, id, to, sizeof(to));
    if (rc)
        return rc;
    struct sf_io_file *f = NULL;
    rc = sf_io_open(from, wal_open_flags(w), 0, &f);
    if (rc)
        return rc;
    uint8_t *block = w->helper.zero_buf;
    struct wal_segment_header h;
    ssize_t n = sf_io_pread(f, block, WAL_BLOCK_BYTES, 0);
    memcpy(&h, block, sizeof(h));
    memset(block, 0, WAL_BLOCK_BYTES);
    if (n != WAL_BLOCK_BYTES || h.magic != WAL_SEGMENT_MAGIC || wal_header_crc(&h) != h.crc ||
        h.segment_bytes != w->opt.segment_bytes) {
        sf_io_close(f);
        return -EBADMSG;
    }
    rc = sf_io_rename(from, to);
    if (rc == 0)
        snprintf(f->path, sizeof(f->path), "%s", to);
    if (rc == 0)
        rc = wal_segment_seal(w, f, id, h.generation + 1);
    if (rc) {
        sf_io_close(f);
        return rc;
    }
    w->helper.recycled++;
    *gen_out = h.generation + 1;
    *out = f;
    return 0;
}

/* A released segment joins the recycle pool; when the pool is full (or with no_recycle),
 * the OLDEST file is deleted, so the files left on disk stay consecutive. */
static void wal_helper_release(struct wal *w, uint64_t id)
{
    struct wal_helper *h = &w->helper;
    uint64_t victim = id;
    if (!w->opt.no_recycle) {
        if (h->pool_count < WAL_RECYCLE_POOL_MAX) {
            h->pool[h->pool_count++] = id;
            return;
        }
        victim = h->pool[0];
        memmove(h->pool, h->pool + 1, (h->pool_count - 1) * sizeof(h->pool[0]));
        h->pool[h->pool_count - 1] = id;
    }
    char path[PATH_MAX];
    if (wal_segment_path(w->opt.dir, w->opt.core, victim, path, sizeof(path)) == 0 &&
        sf_io_unlink(path) == 0)
        sf_io_fsync_dir(w->log_dir);
}

static void *wal_helper_main(void *arg)
{
    struct wal *w = arg;
    struct wal_helper *h = &w->helper;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        if (h->release_count > 0) {
            uint64_t id = h->release[0]; /* oldest first */
            memmove(h->release, h->release + 1, --h->release_count * sizeof(h->release[0]));
            pthread_mutex_unlock(&h->mu);
            wal_helper_release(w, id); /* pool is touched by this thread only */
            pthread_mutex_lock(&h->mu);
            continue;
        }
        if (!h->want || atomic_load(&h->ready) || atomic_load(&h->err)) {
            pthread_cond_wait(&h->cv, &h->mu);
            continue;
        }
        uint64_t id = h->want_id;
        h->want = false;
        pthread_mutex_unlock(&h->mu);
        struct sf_io_file *f = NULL;
        uint64_t gen = 1;
        int rc = -ENOENT;
        if (h->pool_count > 0) {
            rc = wal_segment_recycle(w, h->pool[0], id, &f, &gen);
            memmove(h->pool, h->pool + 1, --h->pool_count * sizeof(h->pool[0]));
        }
        if (rc)
            rc = wal_segment_create(w, id, &f);
        pthread_mutex_lock(&h->mu);
        if (rc) {
            atomic_store(&h->err, rc);
        } else {
            h->next_file = f;
            h->next_id = id;
            h->next_generation = gen;
            atomic_store_explicit(&h->ready, 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void wal_helper_request(struct wal *w, uint64_t id)
{
    pthread_mutex_lock(&w->helper.mu);
    w->helper.want = true;
    w->helper.want_id = id;
    pthread_cond_signal(&w->helper.cv);
    pthread_mutex_unlock(&w->helper.mu);
}

/* ---------------------------------------------------------------- open / close */

static void wal_segment_unref(struct wal *w, uint32_t slot)
{
    struct wal_segment_slot *s = &w->segs[slot];
    assert(s->used && s->refs > 0);
    s->refs--;
    if (s->refs == 0 && !s->current) {
        sf_io_close(s->file);
        memset(s, 0, sizeof(*s));
    }
}

static uint32_t wal_segment_slot_alloc(struct wal *w)
{
    for (uint32_t i = 0; i < WAL_SEGMENT_SLOTS; i++)
        if (!w->segs[i].used)
            return i;
    return UINT32_MAX;
}

void wal_remember_done(struct wal *w, uint64_t id, uint64_t last_lsn, uint64_t closed_ns)
{
    if (w->done_count == WAL_DONE_MAX) { /* forget the oldest: it stays on disk */
        w->done_head = (w->done_head + 1) % WAL_DONE_MAX;
        w->done_count--;
    }
    uint32_t i = (w->done_head + w->done_count) % WAL_DONE_MAX;
    w->done[i].id = id;
    w->done[i].last_lsn = last_lsn;
    w->done[i].closed_ns = closed_ns;
    w->done_count++;
}

int wal_open_live(struct wal *w, struct sf_io_file *seg, uint64_t seg_id, uint64_t generation,
                  uint64_t cursor, uint64_t last_lsn, uint64_t next_seq)
{
    assert(cursor % WAL_BLOCK_BYTES == 0 && cursor <= w->opt.segment_bytes);
    int rc = io_uring_queue_init(WAL_RING_ENTRIES, &w->ring, 0);
    if (rc < 0)
        return rc;
    w->ring_ready = true;
    unsigned workers[2] = { w->opt.iowq_workers_max, w->opt.iowq_workers_max };
    rc = io_uring_register_iowq_max_workers(&w->ring, workers);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < WAL_BATCH_SLOTS; i++) {
        void *p = NULL;
        if (posix_memalign(&p, WAL_BLOCK_BYTES, w->opt.batch_bytes_cap) != 0)
            return -ENOMEM;
        memset(p, 0, w->opt.batch_bytes_cap);
        w->batches[i].buf = p;
    }
    w->segs[0] = (struct wal_segment_slot){
        .used = true, .current = true, .file = seg, .id = seg_id, .generation = generation
    };
    w->cur = 0;
    w->cursor = cursor;
    w->next_lsn = last_lsn + 1;
    w->durable_lsn = last_lsn;
    w->cur_first_lsn = last_lsn + 1;
    w->next_seq = next_seq;
    rc = pthread_create(&w->helper.thread, NULL, wal_helper_main, w);
    if (rc)
        return -rc;
    w->helper.started = true;
    wal_helper_request(w, seg_id + 1);
    return 0;
}

void wal_free(struct wal *w)
{
    if (!w)
        return;
    if (w->helper.started) {
        pthread_mutex_lock(&w->helper.mu);
        w->helper.stop = true;
        pthread_cond_signal(&w->helper.cv);
        pthread_mutex_unlock(&w->helper.mu);
        pthread_join(w->helper.thread, NULL);
    }
    if (atomic_load(&w->helper.ready))
        sf_io_close(w->helper.next_file); /* stays on disk: a valid, empty segment */
    for (uint32_t i = 0; i < WAL_SEGMENT_SLOTS; i++)
        if (w->segs[i].used)
            sf_io_close(w->segs[i].file);
    if (w->ring_ready)
        io_uring_queue_exit(&w->ring);
    for (uint32_t i = 0; i < WAL_BATCH_SLOTS; i++)
        free(w->batches[i].buf);
    free(w->helper.zero_buf);
    pthread_mutex_destroy(&w->helper.mu);
    pthread_cond_destroy(&w->helper.cv);
    free(w);
}

/* ---------------------------------------------------------------- batches */

static struct wal_batch *wal_open_batch_ptr(struct wal *w)
{
    if (!w->open_valid)
        return NULL;
    return &w->batches[(w->head + w->inflight) % WAL_BATCH_SLOTS];
}

static uint64_t wal_user_data(uint32_t slot, enum wal_op op, uint32_t attempt)
{
    return (uint64_t)slot | (uint64_t)op << 8 | (uint64_t)attempt << 16;
}

/* Queue write(remainder) -> fdatasync for batch @slot and submit. */
static int wal_batch_queue(struct wal *w, uint32_t slot)
{
    struct wal_batch *b = &w->batches[slot];
    struct sf_io_file *f = w->segs[b->seg].file;
    uint32_t left = b->total - b->written;
    assert(left > 0 && b->pending == 0);
    int rc = sf_io_prep_write(f, &w->ring, b->buf + b->written, left, b->offset + b->written,
                              wal_user_data(slot, WAL_OP_WRITE, b->attempt), IOSQE_IO_LINK);
    assert(rc == 0); /* the ring is sized for every batch in flight */
    rc = sf_io_prep_fdatasync(f, &w->ring, wal_user_data(slot, WAL_OP_FSYNC, b->attempt), 0);
    assert(rc == 0);
    b->pending = 2;
    b->need_retry = false;
    rc = io_uring_submit(&w->ring);
    if (rc < 0) {
        wal_fail(w, rc);
        return rc;
    }
    return 0;
}

/* Close the open batch: header, padding, submit. Caller checked the in-flight limit. */
static int wal_batch_submit(struct wal *w)
{
    uint32_t slot = (w->head + w->inflight) % WAL_BATCH_SLOTS;
    struct wal_batch *b = &w->batches[slot];
    assert(w->open_valid && b->state == WAL_BATCH_OPEN && b->records > 0);
    assert(w->inflight < w->opt.inflight_max);
    b->total = (uint32_t)wal_round_up(b->used, WAL_BLOCK_BYTES);
    memset(b->buf + b->used, 0, b->total - b->used);
    struct wal_batch_header h = {
        .magic = WAL_BATCH_MAGIC,
        .segment_id = w->segs[b->seg].id,
        .generation = w->segs[b->seg].generation,
        .seq = w->next_seq++,
        .first_lsn = b->first_lsn,
        .last_lsn = b->first_lsn + b->records - 1,
        .record_count = b->records,
        .body_bytes = b->used - WAL_HEADER_BYTES,
        .batch_bytes = b->total,
        .inflight_window = (uint16_t)(w->inflight + 1), /* in flight with it */
        .version = WAL_FORMAT_VERSION,
    };
    h.crc = wal_header_crc(&h);
    memcpy(b->buf, &h, sizeof(h));
    assert(b->offset + b->total <= w->opt.segment_bytes);
    b->seq = h.seq;
    b->state = WAL_BATCH_INFLIGHT;
    b->written = 0;
    b->attempt = 0;
    b->synced = false;
    w->cursor = b->offset + b->total;
    w->segs[b->seg].refs++;
    w->open_valid = false;
    w->inflight++;
    w->stats.batches++;
    w->stats.bytes_written += b->total;
    w->stats.pad_bytes += b->total - b->used;
    if (w->inflight > w->stats.inflight_peak)
        w->stats.inflight_peak = w->inflight;
    return wal_batch_queue(w, slot);
}

/* Switch to the segment the helper prepared. -EAGAIN when it is not ready yet. */
static int wal_rotate(struct wal *w)
{
    int herr = atomic_load(&w->helper.err);
    if (herr) {
        wal_fail(w, herr);
        return herr;
    }
    if (!atomic_load_explicit(&w->helper.ready, memory_order_acquire)) {
        w->stats.segment_waits++;
        return -EAGAIN;
    }
    uint32_t slot = wal_segment_slot_alloc(w);
    if (slot == UINT32_MAX) {
        w->stats.segment_waits++;
        return -EAGAIN;
    }
    struct wal_segment_slot *old = &w->segs[w->cur];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    wal_remember_done(w, old->id, w->next_lsn - 1,
                      (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
    old->current = false;
    if (old->refs == 0) {
        sf_io_close(old->file);
        memset(old, 0, sizeof(*old));
    }
    w->segs[slot] = (struct wal_segment_slot){ .used = true,
                                               .current = true,
                                               .file = w->helper.next_file,
                                               .id = w->helper.next_id,
                                               .generation = w->helper.next_generation };
    w->cur = slot;
    w->cursor = WAL_SEGMENT_DATA_OFFSET;
    w->cur_first_lsn = w->next_lsn;
    atomic_store_explicit(&w->helper.ready, 0, memory_order_release);
    wal_helper_request(w, w->segs[slot].id + 1);
    return 0;
}

/* Open a new batch able to hold @bytes more (rotating the segment if needed). */
static int wal_batch_open(struct wal *w, uint32_t bytes)
{
    assert(!w->open_valid && w->inflight < WAL_BATCH_SLOTS);
    uint64_t need = wal_round_up(WAL_HEADER_BYTES + (uint64_t)bytes, WAL_BLOCK_BYTES);
    if (w->cursor + need > w->opt.segment_bytes) {
        int rc = wal_rotate(w);
        if (rc)
            return rc;
    }
    uint32_t slot = (w->head + w->inflight) % WAL_BATCH_SLOTS;
    struct wal_batch *b = &w->batches[slot];
    assert(b->state == WAL_BATCH_FREE);
    uint64_t limit = w->opt.batch_bytes_max;
    if (limit < WAL_HEADER_BYTES + (uint64_t)bytes)
        limit = WAL_HEADER_BYTES + (uint64_t)bytes;
    if (limit > w->opt.batch_bytes_cap)
        limit = w->opt.batch_bytes_cap;
    if (limit > w->opt.segment_bytes - w->cursor)
        limit = w->opt.segment_bytes - w->cursor;
    *b = (struct wal_batch){ .buf = b->buf,
                             .state = WAL_BATCH_OPEN,
                             .used = WAL_HEADER_BYTES,
                             .limit = (uint32_t)limit,
                             .first_lsn = w->next_lsn,
                             .seg = w->cur,
                             .offset = w->cursor };
    w->open_valid = true;
    return 0;
}

int wal_reserve(struct wal *w, uint32_t bytes)
{
    if (w->err)
        return w->err;
    if ((uint64_t)bytes + WAL_HEADER_BYTES > w->opt.batch_bytes_cap)
        return -EMSGSIZE;
    struct wal_batch *b = wal_open_batch_ptr(w);
    if (b && b->used + (uint64_t)bytes <= b->limit) {
        w->reserved = bytes;
        return 0;
    }
    w->reserved = 0;
    if (b && b->records > 0) {
        if (w->inflight >= w->opt.inflight_max) {
            w->stats.reserve_overloaded++;
            return -EAGAIN;
        }
        int rc = wal_batch_submit(w);
        if (rc)
            return rc;
    } else if (b) { /* empty but too small (segment end): give it up */
        b->state = WAL_BATCH_FREE;
        w->open_valid = false;
    }
    int rc = wal_batch_open(w, bytes);
    if (rc == -EAGAIN)
        w->stats.reserve_overloaded++;
    if (rc)
        return rc;
    w->reserved = bytes;
    return 0;
}

uint64_t wal_append(struct wal *w, uint16_t type, uint32_t partition, struct wal_key key,
                    const void *payload, uint32_t len)
{
    struct wal_batch *b = wal_open_batch_ptr(w);
    uint32_t rec_bytes = wal_record_bytes(len);
    assert(w->err == 0 && b && len <= WAL_PAYLOAD_BYTES_MAX);
    assert(rec_bytes <= w->reserved && b->used + rec_bytes <= b->limit);
    uint8_t *p = b->buf + b->used;
    struct wal_record_header h = {
        .payload_len = len,
        .lsn = w->next_lsn,
        .key_hi = key.hi,
        .key_lo = key.lo,
        .type = type,
        .partition = partition,
    };
    memcpy(p, &h, sizeof(h));
    if (len > 0)
        memcpy(p + sizeof(h), payload, len);
    memset(p + sizeof(h) + len, 0, rec_bytes - sizeof(h) - len);
    h.crc = wal_record_crc(p, len);
    memcpy(p, &h.crc, sizeof(h.crc));
    b->used += rec_bytes;
    b->records++;
    w->reserved -= rec_bytes;
    w->stats.records++;
    return w->next_lsn++;
}

/* One completion of a batch op. */
static void wal_on_completion(struct wal *w, uint64_t user_data, int32_t res)
{
    uint32_t slot = (uint32_t)(user_data & 0xff);
    enum wal_op op = (enum wal_op)((user_data >> 8) & 0xff);
    uint32_t attempt = (uint32_t)(user_data >> 16);
    assert(slot < WAL_BATCH_SLOTS);
    struct wal_batch *b = &w->batches[slot];
    assert(b->state == WAL_BATCH_INFLIGHT && b->pending > 0 && attempt == b->attempt);
    b->pending--;
    if (op == WAL_OP_WRITE) {
        if (res < 0)
            wal_fail(w, res);
        else if (res == 0)
            wal_fail(w, -EIO); /* no progress: the write cannot complete */
        else if ((b->written += (uint32_t)res) < b->total)
            b->need_retry = true;
    } else {
        assert(op == WAL_OP_FSYNC);
        if (res == -ECANCELED && b->need_retry)
            ; /* the short write broke the chain; re-queued below */
        else if (res < 0)
            wal_fail(w, res); /* never retried */
        else if (b->written == b->total)
            b->synced = true;
        else
            b->need_retry = true;
    }
    if (b->pending == 0 && b->need_retry && w->err == 0) {
        if (++b->attempt > WAL_SHORT_WRITE_RETRIES) {
            wal_fail(w, -EIO);
            return;
        }
        w->stats.short_write_retries++;
        wal_batch_queue(w, slot);
    }
}

static unsigned wal_reap(struct wal *w)
{
    struct io_uring_cqe *cqes[32];
    unsigned total = 0, n;
    while ((n = io_uring_peek_batch_cqe(&w->ring, cqes, 32)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            uint64_t ud = io_uring_cqe_get_data64(cqes[i]);
            int32_t res = sf_io_complete(&w->ring, ud, cqes[i]->res);
            if (!sf_io_is_internal(ud))
                wal_on_completion(w, ud, res);
        }
        io_uring_cq_advance(&w->ring, n);
        total += n;
    }
    return total;
}

/* Advance the durable LSN over the oldest batches whose fsync completed. */
static uint64_t wal_retire(struct wal *w)
{
    uint64_t newly = 0;
    while (w->inflight > 0 && w->err == 0) {
        struct wal_batch *b = &w->batches[w->head];
        assert(b->state == WAL_BATCH_INFLIGHT);
        if (!b->synced || b->pending)
            break;
        assert(b->first_lsn == w->durable_lsn + 1);
        w->durable_lsn = b->first_lsn + b->records - 1;
        newly += b->records;
        wal_segment_unref(w, b->seg);
        b->state = WAL_BATCH_FREE;
        w->head = (w->head + 1) % WAL_BATCH_SLOTS;
        w->inflight--;
    }
    return newly;
}

int wal_poll(struct wal *w, uint64_t now_ns)
{
    w->reserved = 0;
    wal_reap(w);
    int herr = atomic_load(&w->helper.err);
    if (herr)
        wal_fail(w, herr);
    if (w->err)
        return w->err;
    uint64_t newly = wal_retire(w);
    struct wal_batch *b = wal_open_batch_ptr(w);
    if (b && b->records > 0) {
        if (b->open_ns == 0)
            b->open_ns = now_ns ? now_ns : 1;
        bool due =
            now_ns - b->open_ns >= w->opt.batch_deadline_ns || b->used >= w->opt.batch_bytes_max;
        if (due && w->inflight < w->opt.inflight_max) {
            int rc = wal_batch_submit(w);
            if (rc)
                return rc;
        }
    }
    return newly > INT32_MAX ? INT32_MAX : (int)newly;
}

int wal_flush(struct wal *w)
{
    if (w->err)
        return w->err;
    struct wal_batch *b = wal_open_batch_ptr(w);
    if (!b || b->records == 0)
        return 0;
    if (w->inflight >= w->opt.inflight_max)
        return -EAGAIN;
    return wal_batch_submit(w);
}

uint64_t wal_durable_lsn(const struct wal *w)
{
    return w->durable_lsn;
}

uint64_t wal_next_lsn(const struct wal *w)
{
    return w->next_lsn;
}

int wal_error(const struct wal *w)
{
    return w->err;
}

uint32_t wal_inflight(const struct wal *w)
{
    return w->inflight;
}

bool wal_io_idle(const struct wal *w)
{
    for (uint32_t i = 0; i < WAL_BATCH_SLOTS; i++)
        if (w->batches[i].state == WAL_BATCH_INFLIGHT && w->batches[i].pending > 0)
            return false;
    return true;
}

void wal_get_stats(const struct wal *w, struct wal_stats *out)
{
    *out = w->stats;
    out->inflight = w->inflight;
    out->segments_created = w->helper.created;
    out->segments_recycled = w->helper.recycled;
}

int wal_set_batch_bytes_max(struct wal *w, uint32_t bytes)
{
    if (bytes < WAL_BLOCK_BYTES || bytes > w->opt.batch_bytes_cap)
        return -EINVAL;
    w->opt.batch_bytes_max = bytes;
    return 0;
}

int wal_set_batch_deadline_ns(struct wal *w, uint64_t ns)
{
    w->opt.batch_deadline_ns = ns;
    return 0;
}

int wal_set_inflight_max(struct wal *w, uint32_t n)
{
    if (n < 2 || n > WAL_INFLIGHT_LIMIT)
        return -EINVAL;
    w->opt.inflight_max = n;
    return 0;
}

void wal_next_location(const struct wal *w, uint64_t *segment, uint64_t *offset)
{
    const struct wal_batch *b = &w->batches[(w->head + w->inflight) % WAL_BATCH_SLOTS];
    assert(w->open_valid && b->state == WAL_BATCH_OPEN);
    *segment = w->segs[b->seg].id;
    *offset = b->offset + b->used;
}

uint64_t wal_retention_lsn(const struct wal *w, uint64_t now_ns, uint64_t keep_ns,
                           uint64_t keep_bytes)
{
    /* walk the finished segments newest first; the current one counts as one segment */
    uint64_t bytes = w->opt.segment_bytes;
    for (uint32_t k = w->done_count; k-- > 0;) {
        uint32_t i = (w->done_head + k) % WAL_DONE_MAX;
        bool old = keep_ns && w->done[i].closed_ns + keep_ns < now_ns;
        bool over = keep_bytes && bytes >= keep_bytes;
        if (old || over)
            return w->done[i].last_lsn + 1; /* this one and every older one may go */
        bytes += w->opt.segment_bytes;
    }
    return 0;
}

int wal_release_before(struct wal *w, uint64_t lsn)
{
    int released = 0;
    pthread_mutex_lock(&w->helper.mu);
    /* done_count > 1: the newest finished segment stays (wal.h, RECOVERY in this file) */
    while (w->done_count > 1 && w->helper.release_count < WAL_RELEASE_QUEUE_MAX) {
        uint64_t id = w->done[w->done_head].id, last = w->done[w->done_head].last_lsn;
        bool open = false;
        for (uint32_t i = 0; i < WAL_SEGMENT_SLOTS; i++)
            open = open || (w->segs[i].used && w->segs[i].id == id);
        if (last >= lsn || last > w->durable_lsn || open)
            break;
        w->helper.release[w->helper.release_count++] = id;
        w->done_head = (w->done_head + 1) % WAL_DONE_MAX;
        w->done_count--;
        released++;
    }
    if (released)
        pthread_cond_signal(&w->helper.cv);
    pthread_mutex_unlock(&w->helper.mu);
    return released;
}

int wal_close(struct wal *w)
{
    if (!w)
        return 0;
    if (w->ring_ready) {
        if (w->err == 0 && wal_flush(w) == -EAGAIN) {
            while (w->inflight >= w->opt.inflight_max && w->err == 0) {
                struct io_uring_cqe *cqe;
                if (io_uring_wait_cqe(&w->ring, &cqe) == 0)
                    wal_reap(w);
                wal_retire(w);
            }
            if (w->err == 0)
                wal_flush(w);
        }
        for (;;) { /* drain: every queued op must complete before buffers are freed */
            uint32_t pending = 0;
            for (uint32_t i = 0; i < WAL_BATCH_SLOTS; i++)
                if (w->batches[i].state == WAL_BATCH_INFLIGHT)
                    pending += w->batches[i].pending;
            if (pending == 0)
                break;
            struct io_uring_cqe *cqe;
            int rc = io_uring_wait_cqe(&w->ring, &cqe);
            if (rc < 0 && rc != -EINTR)
                break;
            wal_reap(w);
            wal_retire(w);
        }
        wal_retire(w);
    }
    int err = w->err;
    wal_free(w);
    return err;
}
