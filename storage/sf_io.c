/*
 * sf_io.c — storage file I/O with fault injection and power-cut simulation (see sf_io.h).
 *
 * Power-cut model. While tracking, every write (synchronous, or queued on io_uring) to a
 * file records an extent {offset, length, the bytes it overwrote}. An extent becomes durable
 * and is forgotten when an fdatasync of its file completes that either was linked right
 * after it (IOSQE_IO_LINK chain) or was queued after the write's completion was reaped.
 * That is a lower bound of what a real disk guarantees, so the simulation never keeps more
 * than the log may rely on. Files created since the last fsync of their directory are not
 * durable at all. At the cut, everything not durable is undone; the newest un-synced write
 * is torn: a random number of its 512-byte sectors survive plus part of the next one.
 *
 * Bookkeeping. Queued operations are keyed by (ring, user_data): each log has its own ring
 * and numbers its operations the same way, so user_data alone would let one log's
 * completions settle another's writes (durable writes then undone at the cut). A file's
 * record is looked up by path at each operation, never cached in the open file: a cut or an
 * unlink frees it while the file may still be open (the log's helper thread).
 */
#include "sf_io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SF_IO_SECTOR_BYTES 512u
#define SF_IO_OPS_MAX      512u /* ops in flight the layer can follow (all logs together) */

static int sf_io_errno(void)
{
    return errno ? -errno : -EIO;
}

#if SF_IO_FAULT_INJECTION

enum sf_io_op_kind { SF_IO_OP_WRITE = 1, SF_IO_OP_FSYNC, SF_IO_OP_TIMEOUT };

struct sf_io_extent {
    struct sf_io_extent *next; /* prep order within the file */
    uint64_t off;
    uint32_t len;
    uint8_t *old; /* bytes before the write (zeros past the old end of file) */
    uint64_t prep_clock;
    uint64_t completed_clock; /* 0 while in flight */
    uint64_t linked_fsync;    /* user_data of the fsync linked after it, 0 if none */
};

struct sf_io_tracked {
    struct sf_io_tracked *next;
    struct sf_io_extent *extents; /* not yet durable, oldest first */
    uint64_t durable_size;
    bool created_undurable; /* created after the last fsync of its directory */
    char path[PATH_MAX];
};

/* An operation queued on a ring. Keyed by (ring, user_data): every log has its own ring and
 * they all number their operations the same way (batch slot, op, attempt). */
struct sf_io_op {
    bool used;
    enum sf_io_op_kind kind;
    const struct io_uring *ring;
    uint64_t user_data;
    int32_t inject_res; /* 0: none; else the result to report */
    uint64_t prep_clock;
    struct sf_io_tracked *track;
    struct sf_io_extent *extent;
    struct __kernel_timespec ts;
};

static struct {
    pthread_mutex_t mu;
    atomic_bool active;   /* anything armed, tracking, latency or cut */
    atomic_uint ops_used; /* ops followed: their completions must be looked up */
    bool tracking;
    bool cut;
    uint64_t clock;
    uint32_t skip[SF_IO_FAULT_KIND_COUNT];
    uint32_t count[SF_IO_FAULT_KIND_COUNT];
    uint64_t injected[SF_IO_FAULT_KIND_COUNT];
    uint64_t fsync_latency_ns;
    struct sf_io_tracked *files;
    struct sf_io_op ops[SF_IO_OPS_MAX];
} sf_io_g = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void sf_io_update_active(void)
{
    bool armed = sf_io_g.tracking || sf_io_g.cut || sf_io_g.fsync_latency_ns != 0;
    for (int k = 0; k < SF_IO_FAULT_KIND_COUNT; k++)
        armed = armed || sf_io_g.count[k] != 0;
    atomic_store_explicit(&sf_io_g.active, armed, memory_order_release);
}

static bool sf_io_active(void)
{
    return atomic_load_explicit(&sf_io_g.active, memory_order_acquire);
}

/* Under mu: consume one shot of @kind if armed. */
static bool sf_io_take_fault(enum sf_io_fault kind)
{
    if (sf_io_g.count[kind] == 0)
        return false;
    if (sf_io_g.skip[kind] > 0) {
        sf_io_g.skip[kind]--;
        return false;
    }
    sf_io_g.count[kind]--;
    sf_io_g.injected[kind]++;
    sf_io_update_active();
    return true;
}

static struct sf_io_tracked *sf_io_find_tracked(const char *path)
{
    for (struct sf_io_tracked *t = sf_io_g.files; t; t = t->next)
        if (strcmp(t->path, path) == 0)
            return t;
    return NULL;
}

/* Under mu: free @e and forget every op's reference to it. */
static void sf_io_extent_free(struct sf_io_extent *e)
{
    for (uint32_t i = 0; i < SF_IO_OPS_MAX; i++)
        if (sf_io_g.ops[i].extent == e)
            sf_io_g.ops[i].extent = NULL;
    free(e->old);
    free(e);
}

/* Under mu: free @t (and its extents) and forget every op's reference to it. */
static void sf_io_tracked_free(struct sf_io_tracked *t)
{
    while (t->extents) {
        struct sf_io_extent *e = t->extents;
        t->extents = e->next;
        sf_io_extent_free(e);
    }
    for (uint32_t i = 0; i < SF_IO_OPS_MAX; i++)
        if (sf_io_g.ops[i].track == t)
            sf_io_g.ops[i].track = NULL;
    free(t);
}

static struct sf_io_tracked *sf_io_tracked_new(const char *path, uint64_t durable_size,
                                               bool created)
{
    struct sf_io_tracked *t = calloc(1, sizeof(*t));
    if (t) {
        snprintf(t->path, sizeof(t->path), "%s", path);
        t->durable_size = durable_size;
        t->created_undurable = created;
        t->next = sf_io_g.files;
        sf_io_g.files = t;
    }
    return t;
}

/* Under mu: the bookkeeping of @f while tracking, else NULL. A file first written after
 * tracking began (opened earlier, or across an earlier cut) is tracked from that write on,
 * its creation taken as durable. */
static struct sf_io_tracked *sf_io_file_track(struct sf_io_file *f)
{
    if (!sf_io_g.tracking)
        return NULL;
    struct sf_io_tracked *t = sf_io_find_tracked(f->path);
    uint64_t size = 0;
    if (!t && sf_io_size(f, &size) == 0)
        t = sf_io_tracked_new(f->path, size, false);
    return t;
}

/* Under mu: remember a write to @t (reads the bytes it will overwrite). */
static struct sf_io_extent *sf_io_track_write(struct sf_io_file *f, struct sf_io_tracked *t,
                                              uint64_t off, uint32_t len)
{
    struct sf_io_extent *e = calloc(1, sizeof(*e));
    void *old = NULL;
    if (!e || posix_memalign(&old, 4096, len ? len : 1) != 0) {
        free(e);
        return NULL;
    }
    memset(old, 0, len);
    ssize_t n = sf_io_pread(f, old, len, off);
    (void)n; /* bytes past the end of file stay zero */
    e->old = old;
    e->off = off;
    e->len = len;
    e->prep_clock = ++sf_io_g.clock;
    struct sf_io_extent **tail = &t->extents;
    while (*tail)
        tail = &(*tail)->next;
    *tail = e;
    return e;
}

/* Under mu: a completed fdatasync made the file's covered extents durable. */
static void sf_io_mark_durable(struct sf_io_tracked *t, uint64_t fsync_ud, uint64_t fsync_clock)
{
    struct sf_io_extent **pp = &t->extents;
    while (*pp) {
        struct sf_io_extent *e = *pp;
        bool linked = fsync_ud != 0 && e->linked_fsync == fsync_ud;
        bool before = e->completed_clock != 0 && e->completed_clock < fsync_clock;
        if (linked || before) {
            *pp = e->next;
            sf_io_extent_free(e);
        } else {
            pp = &e->next;
        }
    }
}

static struct sf_io_op *sf_io_op_find(const struct io_uring *ring, uint64_t user_data);

static struct sf_io_op *sf_io_op_alloc(const struct io_uring *ring, uint64_t user_data)
{
    struct sf_io_op *stale = sf_io_op_find(ring, user_data);
    if (stale) { /* a completion that never came back through sf_io_complete */
        stale->used = false;
        atomic_fetch_sub(&sf_io_g.ops_used, 1);
    }
    for (uint32_t i = 0; i < SF_IO_OPS_MAX; i++)
        if (!sf_io_g.ops[i].used) {
            atomic_fetch_add(&sf_io_g.ops_used, 1);
            memset(&sf_io_g.ops[i], 0, sizeof(sf_io_g.ops[i]));
            sf_io_g.ops[i].used = true;
            sf_io_g.ops[i].ring = ring;
            sf_io_g.ops[i].user_data = user_data;
            return &sf_io_g.ops[i];
        }
    return NULL;
}

static struct sf_io_op *sf_io_op_find(const struct io_uring *ring, uint64_t user_data)
{
    for (uint32_t i = 0; i < SF_IO_OPS_MAX; i++)
        if (sf_io_g.ops[i].used && sf_io_g.ops[i].ring == ring &&
            sf_io_g.ops[i].user_data == user_data)
            return &sf_io_g.ops[i];
    return NULL;
}

static void sf_io_track_open(struct sf_io_file *f, bool created)
{
    pthread_mutex_lock(&sf_io_g.mu);
    uint64_t size = 0;
    if (sf_io_g.tracking && !sf_io_find_tracked(f->path) && (created || sf_io_size(f, &size) == 0))
        sf_io_tracked_new(f->path, created ? 0 : size, created);
    pthread_mutex_unlock(&sf_io_g.mu);
}

#endif /* SF_IO_FAULT_INJECTION */

int sf_io_open(const char *path, int flags, mode_t mode, struct sf_io_file **out)
{
    *out = NULL;
    if (strlen(path) >= sizeof(((struct sf_io_file *)0)->path))
        return -ENAMETOOLONG;
    struct sf_io_file *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    bool existed = access(path, F_OK) == 0;
    f->fd = open(path, flags | O_CLOEXEC, mode);
    if (f->fd < 0) {
        int err = sf_io_errno();
        free(f);
        return err;
    }
    f->direct = (flags & O_DIRECT) != 0;
    snprintf(f->path, sizeof(f->path), "%s", path);
#if SF_IO_FAULT_INJECTION
    if (sf_io_active())
        sf_io_track_open(f, !existed && (flags & O_CREAT));
#else
    (void)existed;
#endif
    *out = f;
    return 0;
}

void sf_io_close(struct sf_io_file *f)
{
    if (!f)
        return;
    close(f->fd);
    free(f);
}

static _Thread_local struct sf_io_read_counters sf_io_reads;

void sf_io_read_counters_get(struct sf_io_read_counters *out)
{
    *out = sf_io_reads;
}

ssize_t sf_io_pread(struct sf_io_file *f, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(f->fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
        sf_io_reads.calls++;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sf_io_errno();
        }
        if (n == 0)
            break;
        done += (size_t)n;
        sf_io_reads.bytes += (uint64_t)n;
    }
    return (ssize_t)done;
}

int sf_io_pwrite_all(struct sf_io_file *f, const void *buf, size_t len, uint64_t off)
{
#if SF_IO_FAULT_INJECTION
    if (sf_io_active()) {
        pthread_mutex_lock(&sf_io_g.mu);
        bool fail = sf_io_g.cut || sf_io_take_fault(SF_IO_FAULT_SYNC_EIO);
        struct sf_io_tracked *t = fail ? NULL : sf_io_file_track(f);
        if (t)
            for (size_t at = 0; at < len;) { /* one extent per 1 MiB keeps buffers bounded */
                uint32_t part = (uint32_t)(len - at > (1u << 20) ? (1u << 20) : len - at);
                struct sf_io_extent *e = sf_io_track_write(f, t, off + at, part);
                if (e)
                    e->completed_clock = ++sf_io_g.clock;
                at += part;
            }
        pthread_mutex_unlock(&sf_io_g.mu);
        if (fail)
            return -EIO;
    }
#endif
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(f->fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sf_io_errno();
        }
        if (n == 0)
            return -EIO;
        done += (size_t)n;
    }
    return 0;
}

int sf_io_fdatasync(struct sf_io_file *f)
{
#if SF_IO_FAULT_INJECTION
    uint64_t clock = 0;
    if (sf_io_active()) {
        pthread_mutex_lock(&sf_io_g.mu);
        bool cut = sf_io_g.cut;
        clock = ++sf_io_g.clock;
        pthread_mutex_unlock(&sf_io_g.mu);
        if (cut)
            return -EIO;
    }
#endif
    if (fdatasync(f->fd) != 0)
        return sf_io_errno();
#if SF_IO_FAULT_INJECTION
    if (sf_io_active()) {
        pthread_mutex_lock(&sf_io_g.mu);
        struct sf_io_tracked *t = sf_io_g.cut ? NULL : sf_io_file_track(f);
        if (t) {
            sf_io_mark_durable(t, 0, clock);
            uint64_t size = 0;
            if (sf_io_size(f, &size) == 0)
                t->durable_size = size;
        }
        pthread_mutex_unlock(&sf_io_g.mu);
    }
#endif
    return 0;
}

int sf_io_size(struct sf_io_file *f, uint64_t *size)
{
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return sf_io_errno();
    *size = (uint64_t)st.st_size;
    return 0;
}

int sf_io_truncate(struct sf_io_file *f, uint64_t size)
{
    if (ftruncate(f->fd, (off_t)size) != 0)
        return sf_io_errno();
    return 0;
}

int sf_io_fsync_dir(const char *dir)
{
#if SF_IO_FAULT_INJECTION
    if (sf_io_active()) {
        pthread_mutex_lock(&sf_io_g.mu);
        bool cut = sf_io_g.cut;
        pthread_mutex_unlock(&sf_io_g.mu);
        if (cut)
            return -EIO;
    }
#endif
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sf_io_errno();
    int rc = fsync(fd) == 0 ? 0 : sf_io_errno();
    close(fd);
#if SF_IO_FAULT_INJECTION
    if (rc == 0 && sf_io_active()) {
        size_t n = strlen(dir);
        pthread_mutex_lock(&sf_io_g.mu);
        for (struct sf_io_tracked *t = sf_io_g.files; t; t = t->next)
            if (strncmp(t->path, dir, n) == 0 && t->path[n] == '/' && !strchr(t->path + n + 1, '/'))
                t->created_undurable = false;
        pthread_mutex_unlock(&sf_io_g.mu);
    }
#endif
    return rc;
}

int sf_io_unlink(const char *path)
{
#if SF_IO_FAULT_INJECTION
    if (sf_io_active()) {
        pthread_mutex_lock(&sf_io_g.mu);
        int rc = 0;
        if (sf_io_g.cut) {
            rc = -EIO;
        } else {
            for (struct sf_io_tracked **pp = &sf_io_g.files; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->path, path) == 0) { /* modelled as durable at once */
                    struct sf_io_tracked *t = *pp;
                    *pp = t->next;
                    sf_io_tracked_free(t);
                    break;
                }
        }
        pthread_mutex_unlock(&sf_io_g.mu);
        if (rc)
            return rc;
    }
#endif
    return unlink(path) == 0 ? 0 : sf_io_errno();
}

int sf_io_rename(const char *from, const char *to)
{
#if SF_IO_FAULT_INJECTION
    if (sf_io_active()) {
        pthread_mutex_lock(&sf_io_g.mu);
        int rc = sf_io_g.cut ? -EIO : 0;
        struct sf_io_tracked *t = rc ? NULL : sf_io_find_tracked(from);
        if (t) /* modelled as durable at once, like unlink */
            snprintf(t->path, sizeof(t->path), "%s", to);
        pthread_mutex_unlock(&sf_io_g.mu);
        if (rc)
            return rc;
    }
#endif
    return rename(from, to) == 0 ? 0 : sf_io_errno();
}

int sf_io_prep_write(struct sf_io_file *f, struct io_uring *ring, const void *buf, uint32_t len,
                     uint64_t off, uint64_t user_data, unsigned sqe_flags)
{
    if (io_uring_sq_space_left(ring) < 1)
        return -EBUSY;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
#if SF_IO_FAULT_INJECTION
    if (sf_io_active()) {
        pthread_mutex_lock(&sf_io_g.mu);
        struct sf_io_op *op = sf_io_op_alloc(ring, user_data);
        int32_t inject = 0;
        if (sf_io_g.cut || sf_io_take_fault(SF_IO_FAULT_WRITE_EIO))
            inject = -EIO;
        else if (sf_io_take_fault(SF_IO_FAULT_ENOSPC))
            inject = -ENOSPC;
        bool short_write = inject == 0 && sf_io_take_fault(SF_IO_FAULT_SHORT_WRITE);
        if (short_write) /* a 4 KiB-aligned prefix; 0 bytes (no progress) for small writes */
            len = len > 4096 ? (len / 2) & ~4095u : 0;
        if (op) {
            op->kind = SF_IO_OP_WRITE;
            op->user_data = user_data;
            op->inject_res = inject;
            op->prep_clock = ++sf_io_g.clock;
        }
        /* an injected failure or short write breaks the chain as the kernel would */
        if ((inject != 0 || short_write) && (sqe_flags & IOSQE_IO_LINK))
            f->cancel_next_fsync = true;
        if (inject != 0 || len == 0) {
            io_uring_prep_nop(sqe); /* completes with 0, or with the injected error */
        } else {
            io_uring_prep_write(sqe, f->fd, buf, len, off);
            struct sf_io_tracked *t = op ? sf_io_file_track(f) : NULL;
            if (t)
                op->extent = sf_io_track_write(f, t, off, len);
            if (op && op->extent && (sqe_flags & IOSQE_IO_LINK))
                f->last_linked_clock = op->extent->prep_clock;
        }
        pthread_mutex_unlock(&sf_io_g.mu);
        io_uring_sqe_set_data64(sqe, user_data);
        io_uring_sqe_set_flags(sqe, sqe_flags);
        return 0;
    }
#endif
    io_uring_prep_write(sqe, f->fd, buf, len, off);
    io_uring_sqe_set_data64(sqe, user_data);
    io_uring_sqe_set_flags(sqe, sqe_flags);
    return 0;
}

int sf_io_prep_fdatasync(struct sf_io_file *f, struct io_uring *ring, uint64_t user_data,
                         unsigned sqe_flags)
{
    if (io_uring_sq_space_left(ring) < 2)
        return -EBUSY;
#if SF_IO_FAULT_INJECTION
    if (sf_io_active()) {
        pthread_mutex_lock(&sf_io_g.mu);
        struct sf_io_op *op = sf_io_op_alloc(ring, user_data);
        int32_t inject = 0;
        if (sf_io_g.cut)
            inject = -EIO;
        else if (f->cancel_next_fsync)
            inject = -ECANCELED;
        else if (sf_io_take_fault(SF_IO_FAULT_FSYNC_EIO))
            inject = -EIO;
        f->cancel_next_fsync = false;
        if (sf_io_g.fsync_latency_ns && inject == 0) {
            struct sf_io_op *t = sf_io_op_alloc(ring, SF_IO_USER_DATA_INTERNAL | user_data);
            if (t) {
                t->kind = SF_IO_OP_TIMEOUT;
                t->user_data = SF_IO_USER_DATA_INTERNAL | user_data;
                t->ts.tv_sec = (long long)(sf_io_g.fsync_latency_ns / 1000000000ull);
                t->ts.tv_nsec = (long long)(sf_io_g.fsync_latency_ns % 1000000000ull);
                struct io_uring_sqe *tsqe = io_uring_get_sqe(ring);
                io_uring_prep_timeout(tsqe, &t->ts, 0, IORING_TIMEOUT_ETIME_SUCCESS);
                io_uring_sqe_set_data64(tsqe, t->user_data);
                io_uring_sqe_set_flags(tsqe, IOSQE_IO_LINK);
            }
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        if (inject != 0)
            io_uring_prep_nop(sqe);
        else
            io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
        if (op) {
            op->kind = SF_IO_OP_FSYNC;
            op->user_data = user_data;
            op->inject_res = inject;
            op->prep_clock = ++sf_io_g.clock;
            op->track = sf_io_file_track(f);
        }
        struct sf_io_tracked *t = f->last_linked_clock ? sf_io_file_track(f) : NULL;
        for (struct sf_io_extent *e = t ? t->extents : NULL; e; e = e->next)
            if (e->prep_clock == f->last_linked_clock)
                e->linked_fsync = user_data;
        f->last_linked_clock = 0;
        pthread_mutex_unlock(&sf_io_g.mu);
        io_uring_sqe_set_data64(sqe, user_data);
        io_uring_sqe_set_flags(sqe, sqe_flags);
        return 0;
    }
#endif
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe, user_data);
    io_uring_sqe_set_flags(sqe, sqe_flags);
    return 0;
}

int32_t sf_io_complete(const struct io_uring *ring, uint64_t user_data, int32_t res)
{
#if SF_IO_FAULT_INJECTION
    if (!sf_io_active() && atomic_load(&sf_io_g.ops_used) == 0)
        return res;
    pthread_mutex_lock(&sf_io_g.mu);
    struct sf_io_op *op = sf_io_op_find(ring, user_data);
    if (op) {
        if (op->inject_res != 0)
            res = op->inject_res;
        else if (sf_io_g.cut && op->kind != SF_IO_OP_TIMEOUT)
            res = -EIO;
        if (op->kind == SF_IO_OP_WRITE && op->extent)
            op->extent->completed_clock = ++sf_io_g.clock;
        if (op->kind == SF_IO_OP_FSYNC && res >= 0 && op->track && !sf_io_g.cut)
            sf_io_mark_durable(op->track, op->user_data, op->prep_clock);
        op->used = false;
        atomic_fetch_sub(&sf_io_g.ops_used, 1);
    }
    pthread_mutex_unlock(&sf_io_g.mu);
    return res;
#else
    (void)ring, (void)user_data;
    return res;
#endif
}

#if SF_IO_FAULT_INJECTION

bool sf_io_fault_supported(void)
{
    return true;
}

int sf_io_fault_arm(enum sf_io_fault kind, uint32_t skip, uint32_t count)
{
    if ((unsigned)kind >= SF_IO_FAULT_KIND_COUNT)
        return -EINVAL;
    pthread_mutex_lock(&sf_io_g.mu);
    sf_io_g.skip[kind] = skip;
    sf_io_g.count[kind] = count;
    sf_io_update_active();
    pthread_mutex_unlock(&sf_io_g.mu);
    return 0;
}

int sf_io_fault_set_fsync_latency_ns(uint64_t ns)
{
    pthread_mutex_lock(&sf_io_g.mu);
    sf_io_g.fsync_latency_ns = ns;
    sf_io_update_active();
    pthread_mutex_unlock(&sf_io_g.mu);
    return 0;
}

uint64_t sf_io_fault_injected(enum sf_io_fault kind)
{
    if ((unsigned)kind >= SF_IO_FAULT_KIND_COUNT)
        return 0;
    pthread_mutex_lock(&sf_io_g.mu);
    uint64_t n = sf_io_g.injected[kind];
    pthread_mutex_unlock(&sf_io_g.mu);
    return n;
}

static void sf_io_forget_files(void)
{
    while (sf_io_g.files) {
        struct sf_io_tracked *t = sf_io_g.files;
        sf_io_g.files = t->next;
        sf_io_tracked_free(t);
    }
    for (uint32_t i = 0; i < SF_IO_OPS_MAX; i++) {
        sf_io_g.ops[i].extent = NULL;
        sf_io_g.ops[i].track = NULL;
    }
}

static void sf_io_forget_ops(void)
{
    memset(sf_io_g.ops, 0, sizeof(sf_io_g.ops));
    atomic_store(&sf_io_g.ops_used, 0);
}

void sf_io_fault_reset(void)
{
    pthread_mutex_lock(&sf_io_g.mu);
    memset(sf_io_g.skip, 0, sizeof(sf_io_g.skip));
    memset(sf_io_g.count, 0, sizeof(sf_io_g.count));
    memset(sf_io_g.injected, 0, sizeof(sf_io_g.injected));
    sf_io_g.fsync_latency_ns = 0;
    sf_io_g.tracking = false;
    sf_io_g.cut = false;
    sf_io_forget_files();
    sf_io_forget_ops();
    sf_io_update_active();
    pthread_mutex_unlock(&sf_io_g.mu);
}

int sf_io_track_begin(void)
{
    pthread_mutex_lock(&sf_io_g.mu);
    sf_io_g.tracking = true;
    sf_io_update_active();
    pthread_mutex_unlock(&sf_io_g.mu);
    return 0;
}

int sf_io_power_cut_begin(void)
{
    pthread_mutex_lock(&sf_io_g.mu);
    int rc = sf_io_g.tracking ? 0 : -EINVAL;
    if (rc == 0)
        sf_io_g.cut = true;
    sf_io_update_active();
    pthread_mutex_unlock(&sf_io_g.mu);
    return rc;
}

static uint64_t sf_io_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Undo the writes of one file (newest first); keep part of @torn and maybe others whole. */
static int sf_io_cut_file(struct sf_io_tracked *t, const struct sf_io_extent *torn, uint64_t *rng,
                          unsigned flags, struct sf_io_cut_report *rep)
{
    int fd = open(t->path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    int rc = 0;
    uint32_t n = 0;
    for (struct sf_io_extent *e = t->extents; e; e = e->next)
        n++;
    for (uint32_t i = n; i-- > 0 && rc == 0;) { /* newest first */
        struct sf_io_extent *e = t->extents;
        for (uint32_t j = 0; j < i; j++)
            e = e->next;
        uint32_t keep = 0;
        if (e == torn) {
            uint32_t sectors = e->len / SF_IO_SECTOR_BYTES;
            keep = (uint32_t)(sf_io_rand(rng) % (sectors ? sectors : 1)) * SF_IO_SECTOR_BYTES;
            keep += 1 + (uint32_t)(sf_io_rand(rng) % (SF_IO_SECTOR_BYTES - 1));
            if (keep > e->len)
                keep = e->len;
            snprintf(rep->torn_path, sizeof(rep->torn_path), "%s", t->path);
            rep->torn_offset = e->off + keep;
        } else if ((flags & SF_IO_CUT_REORDER) && (sf_io_rand(rng) & 1)) {
            keep = e->len;
            rep->writes_kept++;
            continue;
        }
        rep->writes_lost++;
        if (pwrite(fd, e->old + keep, e->len - keep, (off_t)(e->off + keep)) !=
            (ssize_t)(e->len - keep))
            rc = -EIO;
    }
    struct stat st;
    if (rc == 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size > t->durable_size &&
        t->durable_size > 0 && ftruncate(fd, (off_t)t->durable_size) != 0)
        rc = -errno;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

int sf_io_power_cut_apply(uint64_t seed, unsigned flags, struct sf_io_cut_report *report)
{
    struct sf_io_cut_report local;
    struct sf_io_cut_report *rep = report ? report : &local;
    memset(rep, 0, sizeof(*rep));
    uint64_t rng = seed;
    pthread_mutex_lock(&sf_io_g.mu);
    if (!sf_io_g.tracking) {
        pthread_mutex_unlock(&sf_io_g.mu);
        return -EINVAL;
    }
    const struct sf_io_extent *torn = NULL;
    for (struct sf_io_tracked *t = sf_io_g.files; t; t = t->next)
        for (struct sf_io_extent *e = t->extents; e; e = e->next)
            if (!t->created_undurable && (!torn || e->prep_clock > torn->prep_clock))
                torn = e;
    int rc = 0;
    for (struct sf_io_tracked *t = sf_io_g.files; t && rc == 0; t = t->next) {
        if (t->created_undurable) {
            if (unlink(t->path) == 0)
                rep->files_removed++;
            continue;
        }
        rc = sf_io_cut_file(t, torn, &rng, flags, rep);
    }
    sf_io_g.cut = false;
    sf_io_g.tracking = false;
    sf_io_forget_files();
    sf_io_update_active();
    pthread_mutex_unlock(&sf_io_g.mu);
    return rc;
}

#else /* !SF_IO_FAULT_INJECTION */

bool sf_io_fault_supported(void)
{
    return false;
}

int sf_io_fault_arm(enum sf_io_fault kind, uint32_t skip, uint32_t count)
{
    (void)kind, (void)skip, (void)count;
    return -ENOTSUP;
}

int sf_io_fault_set_fsync_latency_ns(uint64_t ns)
{
    (void)ns;
    return -ENOTSUP;
}

uint64_t sf_io_fault_injected(enum sf_io_fault kind)
{
    (void)kind;
    return 0;
}

void sf_io_fault_reset(void)
{
}

int sf_io_track_begin(void)
{
    return -ENOTSUP;
}

int sf_io_power_cut_begin(void)
{
    return -ENOTSUP;
}

int sf_io_power_cut_apply(uint64_t seed, unsigned flags, struct sf_io_cut_report *report)
{
    (void)seed, (void)flags, (void)report;
    return -ENOTSUP;
}

#endif /* SF_IO_FAULT_INJECTION */
