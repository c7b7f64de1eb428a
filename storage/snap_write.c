/*
 * snap_write.c — the snapshot writer (snap.h, writing): the owner's side computes where each
 * slice goes, the I/O side (a helper thread, or the caller in sync mode) writes, syncs,
 * renames and prunes. The order of writes and syncs is WRITE AND SYNC ORDERING, the queue
 * between the two sides THREAD MODE, both at the top of snap_format.c.
 */
#include "snap_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sf_crc32c.h"
#include "sf_io.h"

/* ---- directories ------------------------------------------------------------------------- */

/* mkdir path; when it was created, fsync its parent so the new name is durable */
static int snap_mkdir_durable(const char *path)
{
    if (mkdir(path, 0755) != 0)
        return errno == EEXIST ? 0 : -errno;
    char parent[SNAP_PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash)
        return sf_io_fsync_dir(".");
    if (slash == parent)
        slash[1] = '\0';
    else
        *slash = '\0';
    return sf_io_fsync_dir(parent);
}

/* DIR, DIR/epoch-E, DIR/epoch-E/snap, DIR/epoch-E/snap/core-N */
static int snap_mkdirs(const char *dir, uint64_t epoch, uint32_t core)
{
    char path[SNAP_PATH_MAX];
    int rc = snap_mkdir_durable(dir);
    if (rc == 0)
        rc = snap_epoch_path(dir, epoch, path, sizeof(path));
    if (rc == 0)
        rc = snap_mkdir_durable(path);
    if (rc == 0 && strlen(path) + 6 >= sizeof(path))
        rc = -ENAMETOOLONG;
    if (rc == 0) {
        strcat(path, "/snap");
        rc = snap_mkdir_durable(path);
    }
    if (rc == 0)
        rc = snap_core_path(dir, epoch, core, path, sizeof(path));
    if (rc == 0)
        rc = snap_mkdir_durable(path);
    return rc;
}

/* ---- writer ------------------------------------------------------------------------------ */

enum snap_op_kind { SNAP_OP_OPEN = 1, SNAP_OP_DATA, SNAP_OP_COMMIT, SNAP_OP_ABORT, SNAP_OP_STOP };

struct snap_op {
    uint32_t kind;
    uint32_t section;
    uint32_t len;
    uint64_t offset;
    const void *data;
};

enum snap_state {
    SNAP_IDLE = 0, /* nothing open; the last closing op finished */
    SNAP_OPEN,     /* begun: sections being added */
    SNAP_CLOSING,  /* commit or abort handed to the helper */
};

struct snap_writer {
    /* configuration */
    char dir[SNAP_PATH_MAX];
    uint32_t core;
    enum snap_mode mode;
    uint32_t parts_max, depth;
    /* owner side */
    enum snap_state state;
    uint64_t epoch;
    uint32_t nsec;
    bool in_part;
    uint64_t part_written, cursor, lsn_max;
    uint64_t *ids;            /* bitmap of the partition ids in this snapshot */
    uint64_t head;            /* ops enqueued (thread mode) */
    int closing_rc;           /* result of the last commit/abort, once IDLE */
    struct snap_section *sec; /* parts_max; data_crc is the I/O side's */
    /* I/O side (helper thread, or the caller in sync mode) */
    struct sf_io_file *file;
    uint64_t seq;
    char cdir[SNAP_PATH_MAX];
    char tmp_path[SNAP_PATH_MAX];
    uint64_t *prev_lsn; /* SNAP_PARTS_MAX: LSN of each partition in the older snapshot */
    bool prev_found;    /* the older retained snapshot was read */
    uint64_t *seen;     /* scratch bitmap for validation */
    struct snap_commit_info last;
    bool has_last;
    int io_close_rc;
    _Atomic int io_err;
    _Atomic uint64_t tail;
    _Atomic uint64_t head_pub;
    _Atomic uint64_t slice_ns_max;
    /* thread mode */
    struct snap_op *ops;
    uint8_t *bufs;
    pthread_t thread;
    sem_t sem;
    bool thread_started;
};

static void snap_io_fail(struct snap_writer *w, int rc)
{
    assert(rc < 0);
    int zero = 0;
    atomic_compare_exchange_strong(&w->io_err, &zero, rc);
}

static void snap_io_open(struct snap_writer *w)
{
    assert(w->file == NULL);
    int rc = snap_mkdirs(w->dir, w->epoch, w->core);
    if (rc == 0)
        rc = snap_core_path(w->dir, w->epoch, w->core, w->cdir, sizeof(w->cdir));
    uint64_t seqs[SNAP_LIST_MAX];
    uint32_t n = 0, tmp = 0;
    if (rc == 0)
        rc = snap_list(w->cdir, seqs, &n, true, &tmp);
    if (rc == 0 && tmp > 0)
        rc = sf_io_fsync_dir(w->cdir);
    w->seq = n > 0 ? seqs[n - 1] + 1 : 1;
    if (rc == 0)
        rc = snap_file_path(w->cdir, w->seq, ".tmp", w->tmp_path, sizeof(w->tmp_path));
    if (rc == 0)
        rc = sf_io_open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644, &w->file);
    if (rc)
        snap_io_fail(w, rc);
}

static void snap_io_data(struct snap_writer *w, const struct snap_op *op)
{
    if (atomic_load(&w->io_err) != 0)
        return;
    assert(w->file != NULL && op->section < w->parts_max && op->len <= SNAP_SLICE_BYTES_MAX);
    struct snap_section *s = &w->sec[op->section];
    uint64_t t0 = snap_now_ns(CLOCK_MONOTONIC);
    s->data_crc = sf_crc32c(s->data_crc, op->data, op->len);
    int rc = sf_io_pwrite_all(w->file, op->data, op->len, op->offset);
    uint64_t dt = snap_now_ns(CLOCK_MONOTONIC) - t0;
    uint64_t m = atomic_load_explicit(&w->slice_ns_max, memory_order_relaxed);
    if (dt > m)
        atomic_store_explicit(&w->slice_ns_max, dt, memory_order_relaxed);
    if (rc)
        snap_io_fail(w, rc);
}

static void snap_io_discard(struct snap_writer *w)
{
    if (w->file) {
        sf_io_close(w->file);
        w->file = NULL;
        sf_io_unlink(w->tmp_path); /* a leftover is removed by the next begin anyway */
    }
}

/* section headers, table, footer, header; every one with its crc */
static int snap_io_write_index(struct snap_writer *w)
{
    for (uint32_t i = 0; i < w->nsec; i++) {
        struct snap_section *s = &w->sec[i];
        snap_section_seal(s);
        int rc = sf_io_pwrite_all(w->file, s, SNAP_BLOCK, s->data_offset - SNAP_BLOCK);
        if (rc)
            return rc;
    }
    uint64_t table_bytes = (uint64_t)w->nsec * SNAP_BLOCK;
    struct snap_footer f =
        snap_footer_encode(w->sec, w->nsec, w->cursor, w->epoch, w->seq, w->core);
    struct snap_file_header h =
        snap_header_encode(w->nsec, w->epoch, w->seq, w->core, snap_now_ns(CLOCK_REALTIME));
    int rc = table_bytes ? sf_io_pwrite_all(w->file, w->sec, table_bytes, w->cursor) : 0;
    if (rc == 0)
        rc = sf_io_pwrite_all(w->file, &f, SNAP_BLOCK, w->cursor + table_bytes);
    if (rc == 0)
        rc = sf_io_pwrite_all(w->file, &h, SNAP_BLOCK, 0);
    w->last.file_bytes = f.file_bytes;
    return rc;
}

/* Delete all but the newest SNAP_KEEP; note the LSNs of the older kept one in prev_lsn. */
static int snap_io_retire(struct snap_writer *w)
{
    uint64_t seqs[SNAP_LIST_MAX];
    uint32_t n = 0;
    int rc = snap_list(w->cdir, seqs, &n, false, NULL);
    if (rc)
        return rc;
    uint32_t removed = 0;
    for (uint32_t k = 0; k + SNAP_KEEP < n; k++) {
        char path[SNAP_PATH_MAX];
        rc = snap_file_path(w->cdir, seqs[k], "", path, sizeof(path));
        if (rc == 0)
            rc = sf_io_unlink(path);
        if (rc && rc != -ENOENT)
            return rc;
        removed++;
    }
    if (removed > 0 && (rc = sf_io_fsync_dir(w->cdir)) != 0)
        return rc;
    w->last.removed = removed;
    for (uint32_t i = 0; i < SNAP_PARTS_MAX; i++)
        w->prev_lsn[i] = SNAP_NO_LSN;
    w->prev_found = false;
    if (n < 2 || seqs[n - 1] != w->seq)
        return 0; /* no older snapshot (or a stranger newer one: release nothing) */
    char path[SNAP_PATH_MAX];
    struct snap_image im;
    uint64_t bad;
    struct snap_expect x = { .epoch = w->epoch, .seq = seqs[n - 2], .core = w->core };
    if (snap_file_path(w->cdir, x.seq, "", path, sizeof(path)) != 0 || snap_map(path, &im) != 0)
        return 0;
    if (snap_validate(&im, &x, w->seen, &bad) == NULL) {
        for (uint32_t i = 0; i < im.f.part_count; i++) {
            struct snap_section e;
            snap_table_entry(&im, i, &e);
            w->prev_lsn[e.part_id] = e.lsn;
        }
        w->prev_found = true;
    }
    snap_unmap(&im);
    return 0;
}

static void snap_io_commit(struct snap_writer *w)
{
    int rc = atomic_load(&w->io_err);
    char final_path[SNAP_PATH_MAX];
    if (rc == 0)
        rc = snap_io_write_index(w);
    if (rc == 0)
        rc = sf_io_fdatasync(w->file);
    if (rc == 0)
        rc = snap_file_path(w->cdir, w->seq, "", final_path, sizeof(final_path));
    if (rc) {
        snap_io_discard(w);
        w->io_close_rc = rc;
        return;
    }
    sf_io_close(w->file);
    w->file = NULL;
    rc = sf_io_rename(w->tmp_path, final_path);
    if (rc == 0)
        rc = sf_io_fsync_dir(w->cdir);
    if (rc) { /* the rename may or may not be durable: the file is complete either way */
        w->io_close_rc = rc;
        return;
    }
    struct snap_commit_info *c = &w->last;
    c->epoch = w->epoch;
    c->seq = w->seq;
    c->core = w->core;
    c->parts = w->nsec;
    snprintf(c->path, sizeof(c->path), "%s", final_path);
    rc = snap_io_retire(w);
    c->release_lsn = 0;
    if (rc == 0 && w->nsec > 0 && w->prev_found) {
        uint64_t lo = UINT64_MAX;
        for (uint32_t i = 0; i < w->nsec; i++) {
            uint64_t l = w->prev_lsn[w->sec[i].part_id];
            l = l == SNAP_NO_LSN ? 0 : l; /* absent from the fallback: replayed from 1 */
            lo = l < lo ? l : lo;
        }
        c->release_lsn = snap_log_release_lsn(&lo, 1);
    }
    w->has_last = true;
    w->io_close_rc = rc;
}

static void snap_io_run(struct snap_writer *w, const struct snap_op *op)
{
    switch (op->kind) {
    case SNAP_OP_OPEN:
        snap_io_open(w);
        break;
    case SNAP_OP_DATA:
        snap_io_data(w, op);
        break;
    case SNAP_OP_COMMIT:
        snap_io_commit(w);
        break;
    case SNAP_OP_ABORT:
        snap_io_discard(w);
        w->io_close_rc = 0;
        break;
    default:
        assert(!"unknown snapshot op");
    }
}

static void *snap_helper_main(void *arg)
{
    struct snap_writer *w = arg;
    for (;;) {
        while (sem_wait(&w->sem) != 0)
            assert(errno == EINTR);
        uint64_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
        uint64_t h = atomic_load_explicit(&w->head_pub, memory_order_acquire);
        for (; t < h; t++) {
            const struct snap_op *op = &w->ops[t % w->depth];
            if (op->kind == SNAP_OP_STOP) {
                atomic_store_explicit(&w->tail, t + 1, memory_order_release);
                return NULL;
            }
            snap_io_run(w, op);
            atomic_store_explicit(&w->tail, t + 1, memory_order_release);
        }
    }
}

/* Thread mode: a free slot, or NULL when all depth slots are in flight. */
static struct snap_op *snap_slot(struct snap_writer *w)
{
    uint64_t t = atomic_load_explicit(&w->tail, memory_order_acquire);
    assert(w->head >= t && w->head - t <= w->depth);
    if (w->head - t == w->depth)
        return NULL;
    return &w->ops[w->head % w->depth];
}

static void snap_publish(struct snap_writer *w)
{
    w->head++;
    atomic_store_explicit(&w->head_pub, w->head, memory_order_release);
    sem_post(&w->sem);
}

/* Run op now (sync mode) or queue it (thread mode). Returns 0 or -EAGAIN. */
static int snap_submit(struct snap_writer *w, const struct snap_op *op)
{
    if (w->mode == SNAP_MODE_SYNC) {
        snap_io_run(w, op);
        return 0;
    }
    struct snap_op *slot = snap_slot(w);
    if (!slot)
        return -EAGAIN;
    *slot = *op;
    if (op->kind == SNAP_OP_DATA) { /* the slice is consumed now: copy it */
        uint8_t *buf = w->bufs + (size_t)(w->head % w->depth) * SNAP_SLICE_BYTES_MAX;
        memcpy(buf, op->data, op->len);
        slot->data = buf;
    }
    snap_publish(w);
    return 0;
}

int snap_writer_create(const char *dir, uint32_t core, const struct snap_writer_options *opts,
                       struct snap_writer **out)
{
    *out = NULL;
    uint32_t depth = opts->queue_depth ? opts->queue_depth : SNAP_QUEUE_DEPTH_DEFAULT;
    if (opts->parts_max == 0 || opts->parts_max > SNAP_PARTS_MAX || depth > SNAP_QUEUE_DEPTH_MAX ||
        strlen(dir) + 80 >= SNAP_PATH_MAX ||
        (opts->mode != SNAP_MODE_SYNC && opts->mode != SNAP_MODE_THREAD))
        return -EINVAL;
    struct snap_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    snprintf(w->dir, sizeof(w->dir), "%s", dir);
    w->core = core;
    w->mode = opts->mode;
    w->parts_max = opts->parts_max;
    w->depth = depth;
    w->sec = calloc(opts->parts_max, sizeof(w->sec[0]));
    w->ids = calloc(SNAP_PARTS_MAX / 64, sizeof(uint64_t));
    w->seen = calloc(SNAP_PARTS_MAX / 64, sizeof(uint64_t));
    w->prev_lsn = calloc(SNAP_PARTS_MAX, sizeof(uint64_t));
    int rc = (w->sec && w->ids && w->seen && w->prev_lsn) ? 0 : -ENOMEM;
    if (rc == 0 && w->mode == SNAP_MODE_THREAD) {
        w->ops = calloc(depth, sizeof(w->ops[0]));
        w->bufs = aligned_alloc(4096, (size_t)depth * SNAP_SLICE_BYTES_MAX);
        rc = (w->ops && w->bufs) ? 0 : -ENOMEM;
        if (rc == 0) /* fault the buffers in now, not during the owner's first slices */
            memset(w->bufs, 0, (size_t)depth * SNAP_SLICE_BYTES_MAX);
        if (rc == 0 && sem_init(&w->sem, 0, 0) != 0)
            rc = -errno;
        if (rc == 0) {
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            if (opts->helper_cpus)
                rc = -pthread_attr_setaffinity_np(&attr, sizeof(cpu_set_t), opts->helper_cpus);
            if (rc == 0)
                rc = -pthread_create(&w->thread, &attr, snap_helper_main, w);
            pthread_attr_destroy(&attr);
            if (rc)
                sem_destroy(&w->sem);
        }
        w->thread_started = rc == 0;
    }
    if (rc) {
        snap_writer_destroy(w);
        return rc;
    }
    *out = w;
    return 0;
}

void snap_writer_destroy(struct snap_writer *w)
{
    if (!w)
        return;
    if (w->thread_started) {
        /* wait for a free slot (blocking is fine at shutdown), then stop the helper */
        while (snap_slot(w) == NULL)
            sched_yield();
        w->ops[w->head % w->depth] = (struct snap_op){ .kind = SNAP_OP_STOP };
        snap_publish(w);
        pthread_join(w->thread, NULL);
        sem_destroy(&w->sem);
    }
    snap_io_discard(w);
    free(w->sec);
    free(w->ids);
    free(w->seen);
    free(w->prev_lsn);
    free(w->ops);
    free(w->bufs);
    free(w);
}

int snap_writer_poll(struct snap_writer *w)
{
    if (w->state == SNAP_OPEN) {
        int err = atomic_load(&w->io_err);
        return err ? err : -EINPROGRESS;
    }
    if (w->state == SNAP_CLOSING) {
        if (atomic_load_explicit(&w->tail, memory_order_acquire) != w->head)
            return -EINPROGRESS;
        w->state = SNAP_IDLE;
        w->closing_rc = w->io_close_rc;
    }
    return w->closing_rc;
}

int snap_writer_begin(struct snap_writer *w, uint64_t epoch)
{
    if (snap_writer_poll(w) == -EINPROGRESS || w->state != SNAP_IDLE)
        return -EBUSY;
    assert(atomic_load(&w->tail) == w->head && w->file == NULL);
    if (w->mode == SNAP_MODE_THREAD && snap_slot(w) == NULL)
        return -EAGAIN;
    memset(w->ids, 0, SNAP_PARTS_MAX / 8);
    atomic_store(&w->io_err, 0);
    w->epoch = epoch;
    w->nsec = 0;
    w->in_part = false;
    w->cursor = SNAP_BLOCK;
    w->lsn_max = 0;
    w->closing_rc = 0;
    w->io_close_rc = 0;
    w->state = SNAP_OPEN;
    int rc = snap_submit(w, &(struct snap_op){ .kind = SNAP_OP_OPEN });
    assert(rc == 0); /* a slot was checked free */
    if (w->mode == SNAP_MODE_SYNC && (rc = atomic_load(&w->io_err)) != 0)
        w->state = SNAP_IDLE;
    return rc;
}

int snap_writer_part_begin(struct snap_writer *w, uint32_t part_id, uint64_t lsn,
                           uint64_t total_bytes)
{
    if (w->state != SNAP_OPEN || w->in_part || part_id >= SNAP_PARTS_MAX ||
        w->nsec == w->parts_max || (w->ids[part_id / 64] & (1ull << (part_id % 64))) ||
        total_bytes > UINT64_MAX / 2 - w->cursor)
        return -EINVAL;
    w->ids[part_id / 64] |= 1ull << (part_id % 64);
    struct snap_section *s = &w->sec[w->nsec];
    *s = (struct snap_section){
        .magic = SNAP_MAGIC_SECTION,
        .part_id = part_id,
        .index = w->nsec,
        .lsn = lsn,
        .data_offset = w->cursor + SNAP_BLOCK,
        .data_bytes = total_bytes,
    };
    w->in_part = true;
    w->part_written = 0;
    w->lsn_max = lsn > w->lsn_max ? lsn : w->lsn_max;
    return 0;
}

int snap_writer_write(struct snap_writer *w, const void *bytes, size_t len)
{
    if (w->state != SNAP_OPEN || !w->in_part || len == 0 || len > SNAP_SLICE_BYTES_MAX)
        return -EINVAL;
    int err = atomic_load(&w->io_err);
    if (err)
        return err;
    struct snap_section *s = &w->sec[w->nsec];
    if (len > s->data_bytes - w->part_written)
        return -EINVAL;
    struct snap_op op = { .kind = SNAP_OP_DATA,
                          .section = w->nsec,
                          .len = (uint32_t)len,
                          .offset = s->data_offset + w->part_written,
                          .data = bytes };
    int rc = snap_submit(w, &op);
    if (rc)
        return rc;
    w->part_written += len;
    assert(w->part_written <= s->data_bytes);
    return w->mode == SNAP_MODE_SYNC ? atomic_load(&w->io_err) : 0;
}

int snap_writer_part_end(struct snap_writer *w, uint64_t digest)
{
    if (w->state != SNAP_OPEN || !w->in_part)
        return -EINVAL;
    struct snap_section *s = &w->sec[w->nsec];
    if (w->part_written != s->data_bytes)
        return -EINVAL;
    s->digest = digest;
    w->cursor = s->data_offset + snap_round_up(s->data_bytes);
    w->in_part = false;
    w->nsec++;
    assert(w->nsec <= w->parts_max && w->cursor % SNAP_BLOCK == 0);
    return 0;
}

int snap_writer_commit(struct snap_writer *w, uint64_t durable_lsn)
{
    if (w->state != SNAP_OPEN || w->in_part)
        return -EINVAL;
    int err = atomic_load(&w->io_err);
    if (err)
        return err;
    if (durable_lsn < w->lsn_max)
        return -EAGAIN;
    memset(&w->last, 0, sizeof(w->last));
    w->has_last = false;
    w->last.data_bytes = 0;
    w->last.lsn_min = w->nsec ? UINT64_MAX : 0;
    for (uint32_t i = 0; i < w->nsec; i++) {
        w->last.data_bytes += w->sec[i].data_bytes;
        w->last.lsn_min = w->sec[i].lsn < w->last.lsn_min ? w->sec[i].lsn : w->last.lsn_min;
    }
    w->last.lsn_max = w->lsn_max;
    int rc = snap_submit(w, &(struct snap_op){ .kind = SNAP_OP_COMMIT });
    if (rc)
        return rc; /* -EAGAIN: queue full */
    w->state = SNAP_CLOSING;
    if (w->mode == SNAP_MODE_THREAD)
        return -EINPROGRESS;
    return snap_writer_poll(w);
}

int snap_writer_abort(struct snap_writer *w)
{
    if (w->state == SNAP_CLOSING)
        return -EINPROGRESS;
    if (w->state != SNAP_OPEN)
        return -EINVAL;
    int rc = snap_submit(w, &(struct snap_op){ .kind = SNAP_OP_ABORT });
    if (rc)
        return rc;
    w->state = SNAP_CLOSING;
    if (w->mode == SNAP_MODE_THREAD)
        return -EINPROGRESS;
    return snap_writer_poll(w);
}

int snap_writer_last(const struct snap_writer *w, struct snap_commit_info *out)
{
    if (w->state != SNAP_IDLE || !w->has_last)
        return -ENOENT;
    *out = w->last;
    return 0;
}

uint64_t snap_writer_io_slice_ns_max(const struct snap_writer *w)
{
    return atomic_load_explicit(&w->slice_ns_max, memory_order_relaxed);
}

int snap_writer_manifest_update(const struct snap_writer *w, struct snap_manifest *m)
{
    if (w->state != SNAP_IDLE || !w->has_last)
        return -ENOENT;
    if (m->epoch != w->last.epoch)
        return -EINVAL;
    /* sections with ids >= m->parts carry the caller's metadata: no floor */
    for (uint32_t i = 0; i < w->last.parts; i++)
        if (w->sec[i].part_id < m->parts && m->part_core[w->sec[i].part_id] != w->core)
            return -EINVAL;
    for (uint32_t i = 0; i < w->last.parts; i++) {
        uint32_t p = w->sec[i].part_id;
        if (p >= m->parts)
            continue;
        uint64_t l = w->prev_lsn[p] == SNAP_NO_LSN ? 0 : w->prev_lsn[p];
        m->part_lsn[p] = l > m->part_lsn[p] ? l : m->part_lsn[p]; /* floors never go down */
    }
    return 0;
}
