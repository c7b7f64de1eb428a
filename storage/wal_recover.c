/*
 * wal_recover.c — read a log back, classify its end, reopen it (algorithm: top of wal.c).
 */
#include "wal_internal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAL_SEGMENTS_MAX (1u << 20)

enum wal_check { WAL_CHECK_OK, WAL_CHECK_ZERO, WAL_CHECK_BAD };

struct wal_segment_image {
    uint64_t id;
    bool header_ok;
    struct wal_segment_header header;
    uint64_t bytes; /* segment size (from the header when valid) */
    char path[PATH_MAX];
};

struct wal_walk {
    bool have_base;
    uint64_t next_seq;
    uint64_t next_lsn;
    uint64_t last_lsn;
};

static bool wal_all_zero(const uint8_t *p, size_t n)
{
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v)
            return false;
    }
    for (; n > 0; p++, n--)
        if (*p)
            return false;
    return true;
}

/* Header of a batch, valid on its own (magic, crc, sizes, own segment)? */
static bool wal_batch_header_ok(const struct wal_batch_header *h,
                                const struct wal_segment_header *sh, uint64_t off,
                                uint64_t seg_bytes)
{
    return h->magic == WAL_BATCH_MAGIC && h->crc == wal_header_crc(h) &&
           h->segment_id == sh->segment_id && h->generation == sh->generation &&
           h->record_count >= 1 && h->body_bytes >= WAL_RECORD_HEADER_BYTES &&
           h->batch_bytes ==
               wal_round_up(WAL_HEADER_BYTES + (uint64_t)h->body_bytes, WAL_BLOCK_BYTES) &&
           off + h->batch_bytes <= seg_bytes && h->last_lsn == h->first_lsn + h->record_count - 1;
}

/* Is the record at @p of the image a complete record of this life with LSN @lsn? (crc,
 * length inside the segment, lsn). Pure; reads only [p, seg_bytes). */
static bool wal_record_is(const uint8_t *seg, uint64_t seg_bytes, uint64_t p, uint64_t lsn)
{
    struct wal_record_header r;
    if (p + WAL_RECORD_HEADER_BYTES > seg_bytes)
        return false;
    memcpy(&r, seg + p, sizeof(r));
    return r.payload_len <= WAL_PAYLOAD_BYTES_MAX &&
           p + wal_record_bytes(r.payload_len) <= seg_bytes && r.lsn == lsn &&
           r.crc == wal_record_crc(seg + p, r.payload_len);
}

/*
 * The bytes at the first invalid position @off of a segment whose header is valid: do they
 * prove that the batch expected there was written in this life of the file (so that it is
 * damaged, not torn)? Returns why (static text), or NULL when they may be a torn write.
 * Rules (see RECOVERY in wal.c): a header valid on its own for this segment and generation
 * that is out of sequence or inconsistent; or a header that is not valid while the record
 * after it (same first sector) is the expected next record. Pure.
 */
static const char *wal_damage_proof(const uint8_t *seg, uint64_t seg_bytes, uint64_t off,
                                    const struct wal_segment_header *sh,
                                    const struct wal_walk *walk)
{
    struct wal_batch_header h;
    assert(off % WAL_BLOCK_BYTES == 0 && off + WAL_HEADER_BYTES <= seg_bytes);
    memcpy(&h, seg + off, sizeof(h));
    bool own = h.magic == WAL_BATCH_MAGIC && h.crc == wal_header_crc(&h) &&
               h.segment_id == sh->segment_id && h.generation == sh->generation;
    if (own && !wal_batch_header_ok(&h, sh, off, seg_bytes))
        return "batch header of this segment with inconsistent sizes (damaged)";
    if (own && walk->have_base && (h.seq != walk->next_seq || h.first_lsn != walk->next_lsn))
        return "batch header of this segment out of sequence (misplaced or damaged)";
    if (!own && walk->have_base &&
        wal_record_is(seg, seg_bytes, off + WAL_HEADER_BYTES, walk->next_lsn))
        return "damaged batch header (its first record is intact)";
    return NULL;
}

/* Does a segment whose header is invalid hold batches of its own id (crc-valid)? Those are
 * written only after the header was durable, so then the header is damaged. Pure. */
static bool wal_segment_has_own_batches(const uint8_t *seg, uint64_t seg_bytes, uint64_t id)
{
    for (uint64_t o = WAL_SEGMENT_DATA_OFFSET; o + WAL_HEADER_BYTES <= seg_bytes;
         o += WAL_BLOCK_BYTES) {
        struct wal_batch_header h;
        memcpy(&h, seg + o, sizeof(h));
        if (h.magic == WAL_BATCH_MAGIC && h.segment_id == id && h.crc == wal_header_crc(&h))
            return true;
    }
    return false;
}

/* Validate the batch at @off completely (pure). */
static enum wal_check wal_batch_check(const uint8_t *seg, uint64_t seg_bytes, uint64_t off,
                                      const struct wal_segment_header *sh,
                                      const struct wal_walk *walk, const char **reason)
{
    struct wal_batch_header h;
    memcpy(&h, seg + off, sizeof(h));
    if (wal_all_zero(seg + off, sizeof(h))) {
        *reason = "zeroed space";
        return WAL_CHECK_ZERO;
    }
    if (h.magic != WAL_BATCH_MAGIC || h.crc != wal_header_crc(&h)) {
        *reason = "invalid batch header (torn or corrupt)";
        return WAL_CHECK_BAD;
    }
    if (h.segment_id != sh->segment_id || h.generation != sh->generation) {
        *reason = "stale batch (other segment id or older generation)";
        return WAL_CHECK_BAD;
    }
    if (!wal_batch_header_ok(&h, sh, off, seg_bytes)) {
        *reason = "batch sizes inconsistent";
        return WAL_CHECK_BAD;
    }
    if (walk->have_base && (h.seq != walk->next_seq || h.first_lsn != walk->next_lsn)) {
        *reason = "batch out of sequence (misplaced or stale)";
        return WAL_CHECK_BAD;
    }
    uint64_t p = off + WAL_HEADER_BYTES, end = p + h.body_bytes;
    for (uint32_t k = 0; k < h.record_count; k++) {
        struct wal_record_header r;
        if (p + WAL_RECORD_HEADER_BYTES > end)
            goto bad_record;
        memcpy(&r, seg + p, sizeof(r));
        uint64_t rec = wal_record_bytes(r.payload_len);
        if (r.payload_len > WAL_PAYLOAD_BYTES_MAX || p + rec > end || r.lsn != h.first_lsn + k ||
            r.crc != wal_record_crc(seg + p, r.payload_len) ||
            !wal_all_zero(seg + p + WAL_RECORD_HEADER_BYTES + r.payload_len,
                          rec - WAL_RECORD_HEADER_BYTES - r.payload_len))
            goto bad_record;
        p += rec;
    }
    if (p != end || !wal_all_zero(seg + end, off + h.batch_bytes - end))
        goto bad_record;
    return WAL_CHECK_OK;
bad_record:
    *reason = "record invalid (checksum, length or LSN)";
    return WAL_CHECK_BAD;
}

static int wal_deliver(const uint8_t *seg, uint64_t off, wal_replay_fn fn, void *ctx)
{
    struct wal_batch_header h;
    memcpy(&h, seg + off, sizeof(h));
    uint64_t p = off + WAL_HEADER_BYTES;
    for (uint32_t k = 0; k < h.record_count; k++) {
        struct wal_record_header r;
        memcpy(&r, seg + p, sizeof(r));
        assert(r.lsn == h.first_lsn + k); /* checked by wal_batch_check */
        if (fn) {
            struct wal_record_view v = {
                .lsn = r.lsn,
                .segment = h.segment_id,
                .offset = p,
                .type = r.type,
                .partition = r.partition,
                .key = { r.key_hi, r.key_lo },
                .payload = seg + p + WAL_RECORD_HEADER_BYTES,
                .len = r.payload_len,
            };
            int rc = fn(ctx, &v);
            if (rc)
                return rc;
        }
        p += wal_record_bytes(r.payload_len);
    }
    return 0;
}

static int wal_cmp_id(const void *a, const void *b)
{
    uint64_t x = ((const struct wal_segment_image *)a)->id;
    uint64_t y = ((const struct wal_segment_image *)b)->id;
    return x < y ? -1 : x > y;
}

static int wal_list_segments(struct wal *w, struct wal_segment_image **out, uint32_t *count)
{
    DIR *d = opendir(w->log_dir);
    if (!d)
        return -errno;
    struct wal_segment_image *v = NULL;
    uint32_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        unsigned long long id;
        char tail[8];
        if (strlen(e->d_name) != 20 || sscanf(e->d_name, "%16llx%7s", &id, tail) != 2 ||
            strcmp(tail, ".log") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            void *nv = cap <= WAL_SEGMENTS_MAX ? realloc(v, cap * sizeof(*v)) : NULL;
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
        }
        memset(&v[n], 0, sizeof(v[n]));
        v[n].id = id;
        wal_segment_path(w->opt.dir, w->opt.core, id, v[n].path, sizeof(v[n].path));
        n++;
    }
    closedir(d);
    if (rc) {
        free(v);
        return rc;
    }
    if (n > 0)
        qsort(v, n, sizeof(*v), wal_cmp_id);
    *out = v;
    *count = n;
    return 0;
}

/* Read a whole segment into *buf (grown as needed); parse its header. */
static int wal_read_segment(struct wal *w, struct wal_segment_image *s, uint8_t **buf,
                            uint64_t *cap)
{
    struct sf_io_file *f = NULL;
    int rc = sf_io_open(s->path, O_RDONLY, 0, &f);
    if (rc)
        return rc;
    uint64_t size = 0;
    rc = sf_io_size(f, &size);
    uint64_t want = size > w->opt.segment_bytes ? size : w->opt.segment_bytes;
    if (rc == 0 && want > *cap) {
        void *nb = realloc(*buf, want);
        if (!nb)
            rc = -ENOMEM;
        else
            *buf = nb, *cap = want;
    }
    ssize_t got = rc == 0 ? sf_io_pread(f, *buf, size, 0) : 0;
    sf_io_close(f);
    if (rc)
        return rc;
    if (got < 0)
        return (int)got;
    memset(*buf + got, 0, want - (uint64_t)got); /* missing bytes read as zeroed space */
    memcpy(&s->header, *buf, sizeof(s->header));
    s->header_ok =
        (uint64_t)got >= WAL_BLOCK_BYTES && s->header.magic == WAL_SEGMENT_MAGIC &&
        s->header.crc == wal_header_crc(&s->header) && s->header.version == WAL_FORMAT_VERSION &&
        s->header.segment_id == s->id && s->header.segment_bytes % WAL_BLOCK_BYTES == 0 &&
        s->header.segment_bytes <= *cap && s->header.segment_bytes >= 4 * WAL_BLOCK_BYTES;
    s->bytes = s->header_ok ? s->header.segment_bytes : w->opt.segment_bytes;
    return 0;
}

/* After an invalid position (@si, @off): find a batch valid on its own with seq beyond the
 * in-flight window, in the rest of this segment or any later one. Returns 1 found (its
 * place in *fj and *foff, where a salvage can resume), 2 found only in a segment whose
 * header is damaged (no place to resume), 0 none, or -errno. */
static int wal_scan_later(struct wal *w, struct wal_segment_image *segs, uint32_t nseg, uint32_t si,
                          uint64_t off, const struct wal_walk *walk, uint8_t **buf, uint64_t *cap,
                          uint32_t *fj, uint64_t *foff, bool *any_current)
{
    /* A batch X written with k = inflight_window batches in flight (itself included) proves
     * that every batch with seq <= X.seq - k was durable when X was submitted. */
    uint64_t min_seq = UINT64_MAX;
    struct {
        uint64_t seq, k;
        uint32_t j;
        uint64_t o;
    } best = { 0, 0, 0, 0 };
    bool have_best = false, proof_only = false;
    *any_current = false;
    for (uint32_t j = si; j < nseg; j++) {
        int rc = wal_read_segment(w, &segs[j], buf, cap);
        if (rc)
            return rc;
        /* strictly after the damaged block: it proves nothing about itself, and a salvage
         * that resumes at what this returns always moves forward */
        uint64_t o =
            j == si && off > 0 ? wal_round_up(off + 1, WAL_BLOCK_BYTES) : WAL_SEGMENT_DATA_OFFSET;
        for (; o + WAL_HEADER_BYTES <= segs[j].bytes; o += WAL_BLOCK_BYTES) {
            struct wal_batch_header h;
            memcpy(&h, *buf + o, sizeof(h));
            /* a segment with a damaged header still vouches for batches of its own id */
            struct wal_segment_header sh = segs[j].header;
            if (!segs[j].header_ok)
                sh.segment_id = segs[j].id, sh.generation = h.generation;
            if (h.magic != WAL_BATCH_MAGIC || !wal_batch_header_ok(&h, &sh, o, segs[j].bytes))
                continue;
            *any_current = true;
            uint64_t k = h.inflight_window ? h.inflight_window : 1;
            if (walk->have_base && h.seq >= walk->next_seq + k) { /* the missing one was durable */
                if (!segs[j].header_ok) {
                    proof_only = true;
                    continue;
                }
                *fj = j;
                *foff = o;
                return 1;
            }
            if (!segs[j].header_ok)
                continue;
            min_seq = h.seq < min_seq ? h.seq : min_seq;
            if (h.seq >= k && (!have_best || h.seq - k > best.seq - best.k)) {
                best.seq = h.seq, best.k = k, best.j = j, best.o = o;
                have_best = true;
            }
        }
    }
    /* no base (the oldest batch itself is bad): the bad one's seq is below min_seq */
    if (!walk->have_base && have_best && min_seq >= 1 && best.seq - best.k >= min_seq - 1) {
        *fj = best.j;
        *foff = best.o;
        return 1;
    }
    return proof_only ? 2 : 0;
}

static void wal_report_at(struct wal_recover_report *r, enum wal_tail tail, const char *reason,
                          const char *path, uint64_t off)
{
    r->tail = tail;
    r->reason = reason;
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->offset = off;
}

/* Zero [off, bytes) of segment @s if anything there is non-zero (@img holds its image). */
static int wal_zero_rest(struct wal *w, const struct wal_segment_image *s, const uint8_t *img,
                         uint64_t off, struct wal_recover_report *r)
{
    if (off >= s->bytes || wal_all_zero(img + off, s->bytes - off))
        return 0;
    struct sf_io_file *f = NULL;
    int rc = sf_io_open(s->path, O_RDWR, 0, &f);
    if (rc)
        return rc;
    for (uint64_t o = off; o < s->bytes && rc == 0;) {
        uint64_t n = s->bytes - o;
        if (n > WAL_ZERO_CHUNK_BYTES)
            n = WAL_ZERO_CHUNK_BYTES;
        rc = sf_io_pwrite_all(f, w->helper.zero_buf, n, o);
        o += n;
    }
    if (rc == 0)
        rc = sf_io_fdatasync(f);
    sf_io_close(f);
    r->truncated_bytes += s->bytes - off;
    return rc;
}

static struct wal *wal_alloc(const struct wal_options *opts, bool writable, int *err)
{
    struct wal *w = calloc(1, sizeof(*w));
    if (!w) {
        *err = -ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&w->helper.mu, NULL);
    pthread_cond_init(&w->helper.cv, NULL);
    *err = wal_options_normalize(opts, &w->opt);
    if (*err == 0 &&
        snprintf(w->base_dir, sizeof(w->base_dir), "%s", w->opt.dir) >= (int)sizeof(w->base_dir))
        *err = -ENAMETOOLONG;
    w->opt.dir = w->base_dir; /* the log keeps its own copy: the caller's may go away */
    if (*err == 0)
        *err = wal_log_dir(w->opt.dir, w->opt.core, w->log_dir, sizeof(w->log_dir));
    if (*err == 0 && writable &&
        posix_memalign(&w->helper.zero_buf, WAL_BLOCK_BYTES, WAL_ZERO_CHUNK_BYTES))
        *err = -ENOMEM;
    if (*err) {
        wal_free(w);
        return NULL;
    }
    if (writable)
        memset(w->helper.zero_buf, 0, WAL_ZERO_CHUNK_BYTES);
    return w;
}

static int wal_mkdirs(const struct wal *w)
{
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof(a), "%s/wal", w->opt.dir);
    snprintf(b, sizeof(b), "%s", w->log_dir);
    const char *dirs[2] = { a, b };
    const char *parents[2] = { w->opt.dir, a };
    for (int i = 0; i < 2; i++) {
        if (mkdir(dirs[i], 0755) == 0) {
            int rc = sf_io_fsync_dir(parents[i]);
            if (rc)
                return rc;
        } else if (errno != EEXIST) {
            return -errno;
        }
    }
    return 0;
}

/* The walk over all segments; fills @r and the append position. */
struct wal_position {
    int32_t seg; /* index of the segment to append to (-1: none) */
    uint64_t offset;
    int32_t tail_seg; /* first index to cut from (-1: nothing to cut) */
    uint64_t tail_offset;
};

static int wal_walk_all(struct wal *w, struct wal_segment_image *segs, uint32_t nseg,
                        wal_replay_fn fn, void *ctx, unsigned flags, struct wal_recover_report *r,
                        struct wal_position *pos, struct wal_walk *walk, uint8_t **buf,
                        uint64_t *cap, uint64_t *seg_last_lsn)
{
    pos->seg = -1;
    pos->tail_seg = -1;
    uint64_t resume = 0;               /* salvage: start offset in segment i */
    if (nseg > 0 && segs[0].id == 1) { /* the first segment of a log starts the sequence */
        walk->have_base = true;
        walk->next_seq = 1;
        walk->next_lsn = 1;
    }
    for (uint32_t i = 0; i < nseg; i++) {
        int rc = wal_read_segment(w, &segs[i], buf, cap);
        if (rc)
            return rc;
        r->segments++;
        const char *reason = "invalid segment header";
        uint64_t off = 0;
        enum wal_check c = WAL_CHECK_BAD;
        if (segs[i].header_ok) {
            off = resume ? resume : WAL_SEGMENT_DATA_OFFSET;
            c = WAL_CHECK_OK;
            if (i > 0 && segs[i].id != segs[i - 1].id + 1 && !resume)
                reason = "segment missing before this one", c = WAL_CHECK_BAD, off = 0;
            resume = 0;
            while (c == WAL_CHECK_OK && off + WAL_HEADER_BYTES <= segs[i].bytes) {
                c = wal_batch_check(*buf, segs[i].bytes, off, &segs[i].header, walk, &reason);
                if (c != WAL_CHECK_OK)
                    break;
                struct wal_batch_header h;
                memcpy(&h, *buf + off, sizeof(h));
                rc = wal_deliver(*buf, off, fn, ctx);
                if (rc)
                    return rc;
                walk->have_base = true;
                walk->next_seq = h.seq + 1;
                walk->next_lsn = h.last_lsn + 1;
                walk->last_lsn = h.last_lsn;
                r->batches++;
                r->records += h.record_count;
                off += h.batch_bytes;
            }
            seg_last_lsn[i] = walk->last_lsn;
            if (c == WAL_CHECK_OK) { /* reached the end of the segment */
                pos->seg = (int32_t)i;
                pos->offset = off;
                continue;
            }
        }
        /* (i, off) is the first invalid position: damaged, or a torn tail? (before the scan
         * below reuses the image buffer) */
        const char *proof = NULL;
        if (segs[i].header_ok && c != WAL_CHECK_OK && off > 0)
            proof = wal_damage_proof(*buf, segs[i].bytes, off, &segs[i].header, walk);
        else if (!segs[i].header_ok && wal_segment_has_own_batches(*buf, segs[i].bytes, segs[i].id))
            proof = "damaged segment header (the file holds batches of its own id)";
        if (proof && !(flags & WAL_RECOVER_SALVAGE)) {
            wal_report_at(r, WAL_TAIL_CORRUPT, proof, segs[i].path, off);
            return -EBADMSG;
        }
        uint32_t fj = 0;
        uint64_t foff = 0;
        bool any_current = false;
        rc = wal_scan_later(w, segs, nseg, i, off, walk, buf, cap, &fj, &foff, &any_current);
        if (rc < 0)
            return rc;
        if (rc >= 1 && !(flags & WAL_RECOVER_SALVAGE)) {
            wal_report_at(r, WAL_TAIL_CORRUPT, reason, segs[i].path, off);
            return -EBADMSG;
        }
        if (rc == 2 || (rc == 0 && proof)) /* salvage, nowhere to resume: cut at the damage */
            wal_report_at(r, WAL_TAIL_SALVAGED, proof ? proof : reason, segs[i].path, off);
        if (rc == 1) { /* salvage: skip to the later valid batch, take it as a new base */
            wal_report_at(r, WAL_TAIL_SALVAGED, reason, segs[i].path, off);
            r->salvage_skipped_bytes += fj == i ? foff - off : segs[i].bytes - off + foff;
            walk->have_base = false;
            resume = foff;
            if (fj == i)
                r->segments--; /* read again below */
            i = fj - 1;
            continue;
        }
        if (segs[i].header_ok && off > 0) {
            pos->seg = (int32_t)i;
            pos->offset = off;
        }
        pos->tail_seg = (int32_t)i;
        pos->tail_offset = off;
        if (r->tail != WAL_TAIL_SALVAGED) {
            /* clean: zeros or stale recycled data, and no current batch anywhere after */
            bool stale = reason && strncmp(reason, "stale", 5) == 0;
            bool clean = (c == WAL_CHECK_ZERO || stale) && !any_current;
            wal_report_at(r, clean ? WAL_TAIL_CLEAN : WAL_TAIL_TORN, reason, segs[i].path, off);
        }
        return 0;
    }
    if (r->tail != WAL_TAIL_SALVAGED) {
        r->tail = WAL_TAIL_CLEAN;
        r->reason = nseg ? "end of the last segment" : "empty log";
    }
    return 0;
}

/* Cut at (tail_seg, tail_offset): zero the rest of that segment, delete later ones. */
static int wal_truncate(struct wal *w, struct wal_segment_image *segs, uint32_t nseg,
                        const struct wal_position *pos, uint8_t **buf, uint64_t *cap,
                        struct wal_recover_report *r)
{
    uint32_t first_delete = (uint32_t)pos->tail_seg + 1;
    if (pos->tail_offset == 0 || !segs[pos->tail_seg].header_ok) {
        first_delete = (uint32_t)pos->tail_seg; /* bad header: the whole file goes */
    } else {
        int rc = wal_read_segment(w, &segs[pos->tail_seg], buf, cap);
        if (rc == 0)
            rc = wal_zero_rest(w, &segs[pos->tail_seg], *buf, pos->tail_offset, r);
        if (rc)
            return rc;
    }
    bool deleted = false;
    for (uint32_t j = first_delete; j < nseg; j++) {
        int rc = sf_io_unlink(segs[j].path);
        if (rc && rc != -ENOENT)
            return rc;
        r->segments_removed++;
        deleted = true;
    }
    return deleted ? sf_io_fsync_dir(w->log_dir) : 0;
}

/*
 * After the walk: can the log continue after what it kept? Not when no valid batch is left
 * of a log whose older segments were released (its next LSN is unknown: restarting at 1
 * would put new records below every snapshot LSN), nor when it ends below the caller's
 * lsn_floor (records a snapshot reflects, so once durable, are missing). Returns 0, or
 * -EBADMSG with the report saying where (nothing is truncated then).
 */
static int wal_check_continuation(const struct wal *w, const struct wal_segment_image *segs,
                                  uint32_t nseg, const struct wal_walk *walk,
                                  struct wal_recover_report *r)
{
    bool unknown_start = !walk->have_base && nseg > 0 && segs[0].id > 1;
    bool below_floor = w->opt.lsn_floor > 0 && walk->last_lsn < w->opt.lsn_floor;
    if (!unknown_start && !below_floor)
        return 0;
    const char *path = r->path[0] ? r->path : nseg > 0 ? segs[nseg - 1].path : w->log_dir;
    uint64_t off = r->path[0] ? r->offset : 0;
    char where[sizeof(r->path)];
    snprintf(where, sizeof(where), "%s", path);
    wal_report_at(r, WAL_TAIL_CORRUPT,
                  unknown_start ? "no valid batch left in a log whose older segments were "
                                  "released: the LSN it continues at is unknown"
                                : "the log ends below lsn_floor: records a snapshot reflects "
                                  "are missing",
                  where, off);
    return -EBADMSG;
}

int wal_recover(const struct wal_options *opts, wal_replay_fn fn, void *ctx, unsigned flags,
                struct wal_recover_report *report, struct wal **out)
{
    struct wal_recover_report local;
    struct wal_recover_report *r = report ? report : &local;
    memset(r, 0, sizeof(*r));
    if (out)
        *out = NULL;
    int rc;
    struct wal *w = wal_alloc(opts, !(flags & WAL_RECOVER_READ_ONLY), &rc);
    if (!w)
        return rc;
    struct wal_segment_image *segs = NULL;
    uint32_t nseg = 0;
    uint8_t *buf = NULL;
    uint64_t cap = 0, *seg_last = NULL;
    struct wal_walk walk = { 0 };
    struct wal_position pos = { .seg = -1, .tail_seg = -1 };
    rc = (flags & WAL_RECOVER_READ_ONLY) ? 0 : wal_mkdirs(w);
    if (rc == 0)
        rc = wal_list_segments(w, &segs, &nseg);
    if (rc == -ENOENT && (flags & WAL_RECOVER_READ_ONLY))
        rc = 0, nseg = 0;
    if (rc)
        goto out_free;
    seg_last = calloc(nseg + 1, sizeof(*seg_last));
    if (!seg_last) {
        rc = -ENOMEM;
        goto out_free;
    }
    rc = wal_walk_all(w, segs, nseg, fn, ctx, flags, r, &pos, &walk, &buf, &cap, seg_last);
    r->last_lsn = walk.last_lsn;
    if (rc == 0)
        rc = wal_check_continuation(w, segs, nseg, &walk, r);
    if (rc || (flags & WAL_RECOVER_READ_ONLY))
        goto out_free;
    if (pos.tail_seg >= 0) {
        rc = wal_truncate(w, segs, nseg, &pos, &buf, &cap, r);
        if (rc)
            goto out_free;
    }
    /* what recovery replayed must be on disk before anything is appended after it (after a
     * kill -9 it may still sit in the page cache only) */
    for (uint32_t i = 0; i < nseg && pos.seg >= 0 && i <= (uint32_t)pos.seg && rc == 0; i++) {
        struct sf_io_file *sf = NULL;
        rc = sf_io_open(segs[i].path, O_RDWR, 0, &sf);
        if (rc == 0)
            rc = sf_io_fdatasync(sf);
        sf_io_close(sf);
    }
    if (rc || !out)
        goto out_free;
    struct sf_io_file *f = NULL;
    uint64_t seg_id = 1, gen = 1, cursor = WAL_SEGMENT_DATA_OFFSET;
    if (pos.seg >= 0) {
        seg_id = segs[pos.seg].id;
        gen = segs[pos.seg].header.generation;
        cursor = pos.offset;
        if (segs[pos.seg].header.segment_bytes != w->opt.segment_bytes) {
            rc = -EINVAL; /* a log keeps its segment size */
            goto out_free;
        }
        rc = sf_io_open(segs[pos.seg].path, O_RDWR | (w->opt.direct_io ? O_DIRECT : 0), 0, &f);
        for (int32_t i = 0; i < pos.seg && rc == 0; i++) {
            struct stat st;
            uint64_t mtime =
                stat(segs[i].path, &st) == 0
                    ? (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec
                    : 0;
            wal_remember_done(w, segs[i].id, seg_last[i], mtime);
        }
    } else {
        if (nseg > 0 && pos.tail_seg == 0 && walk.last_lsn == 0)
            seg_id = segs[0].id; /* its file was removed above */
        rc = wal_segment_create(w, seg_id, &f);
    }
    if (rc)
        goto out_free;
    rc =
        wal_open_live(w, f, seg_id, gen, cursor, walk.last_lsn, walk.have_base ? walk.next_seq : 1);
    if (rc)
        goto out_free;
    *out = w;
    w = NULL;
out_free:
    free(seg_last);
    free(segs);
    free(buf);
    wal_free(w);
    return rc;
}
