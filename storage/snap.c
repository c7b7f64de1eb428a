/*
 * snap.c — snapshot files, the MANIFEST, epoch directories (interface and protocol: snap.h).
 *
 * SNAPSHOT FILE DIR/epoch-E/snap/core-N/SSSSSSSSSSSSSSSS.snap (little-endian, x86-64)
 *   offset 0, 64 B   file header: magic "SFSN", crc32c(header with crc = 0), version,
 *                    core, epoch, seq, part_count, flags (0), created_ns (CLOCK_REALTIME),
 *                    16 B zero.
 *   then for each partition i = 0 .. part_count-1, back to back:
 *                    section header, 64 B: magic "SFSP", crc32c(section with crc = 0),
 *                    part_id, index i, lsn, data_offset (file offset of the data, = the
 *                    section header's offset + 64), data_bytes, digest, data_crc =
 *                    crc32c(data), 12 B zero;
 *                    data_bytes of partition region;
 *                    zero padding to the next multiple of 64.
 *   table_offset     section table: part_count copies of the section headers, in order.
 *   end - 64, 64 B   footer: magic "SFSF", crc32c(footer with crc = 0), part_count,
 *                    table_crc = crc32c(table), table_offset, file_bytes, epoch, seq, core,
 *                    version, 8 B zero.
 *
 * VALIDITY (every rule is checked before snap_load calls back with any byte)
 *   - file_bytes >= 128; header and footer: magic, crc, version; header and footer agree
 *     on part_count, epoch, seq, core, and these match the file's directory (epoch, core)
 *     and name (seq); footer.file_bytes is the file's size;
 *   - table_offset + 64 * part_count + 64 == file_bytes; crc32c(table) == table_crc;
 *   - table entry i: magic, crc, index == i, part_id < SNAP_PARTS_MAX and unique,
 *     data_offset = (end of section i-1, or 64) + 64, its data and padding end at or before
 *     table_offset, the next section starts where it ends, the last ends at table_offset;
 *   - the section header in front of the data equals the table entry byte for byte;
 *   - crc32c(data) == data_crc, padding bytes are zero.
 *   So every byte of the file is covered: a torn file (any truncation) loses or moves the
 *   footer; a flipped bit breaks a crc, a byte comparison or the zero padding.
 *
 * WRITE AND SYNC ORDERING
 *   Data goes to SEQ.snap.tmp at offsets the owner computes from the section sizes (so
 *   the helper never waits for anything but its queue). At commit: section headers, the
 *   table, the footer and, last, the file header are written; fdatasync; close; rename to
 *   SEQ.snap; fsync the directory — only now is the snapshot the recovery base. Then every
 *   snapshot older than the newest SNAP_KEEP is unlinked and the directory fsync'ed again.
 *   A crash at any point leaves the previous snapshots intact: a .tmp file is ignored by
 *   recovery and removed by the next snap_writer_begin. A new file's SEQ is one above the
 *   largest SEQ present, so a failed or removed newest file is never reused by name
 *   while an older one survives.
 *
 * RECOVERY ALGORITHM (snap_load)
 *   List SEQ.snap files (exact names), newest first; for each: map it read-only and apply
 *   the validity rules; the first valid one is handed to the callback partition by
 *   partition (pointers into the mapping); invalid ones are listed in the report with a
 *   reason and offset. None valid: -EBADMSG. None present: -ENOENT.
 *
 * MANIFEST DIR/MANIFEST (little-endian)
 *   64 B header: magic "SFMF", crc32c(whole file with this field 0), version, cores,
 *   parts, flags (0), epoch, created_ns, file_bytes, 16 B zero;
 *   then parts x 16 B: core (u16), flags (u16, 0), 4 B zero, floor_lsn (u64).
 *   Valid when: size == file_bytes == 64 + 16 * parts, magic, version, crc, flags and
 *   zero fields, 1 <= cores <= SNAP_CORES_MAX, 1 <= parts <= SNAP_PARTS_MAX, epoch >= 1,
 *   every core < cores.
 *
 * THREAD MODE
 *   A single-producer single-consumer ring of queue_depth operations (open, data, commit,
 *   abort), each data operation owning one SNAP_SLICE_BYTES_MAX buffer. The owner fills
 *   the slot and publishes `head` (release) then posts a semaphore (never blocks); the
 *   helper consumes up to head (acquire), runs the operation and publishes `tail`
 *   (release). The owner knows the helper finished everything when tail == head; the
 *   helper's first I/O error of a snapshot is sticky in io_err until the next begin.
 */
#include "snap.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sf_crc32c.h"
#include "sf_io.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "snapshot files are little-endian and written as host structs"
#endif

#define SNAP_MAGIC_FILE     0x4e534653u /* "SFSN" */
#define SNAP_MAGIC_SECTION  0x50534653u /* "SFSP" */
#define SNAP_MAGIC_FOOTER   0x46534653u /* "SFSF" */
#define SNAP_MAGIC_MANIFEST 0x464d4653u /* "SFMF" */
#define SNAP_BLOCK          64u
#define SNAP_LIST_MAX       64u /* snapshot files of a core looked at by a load */
#define SNAP_EPOCH_NAME_LEN 22u /* "epoch-" + 16 hex */
#define SNAP_FILE_NAME_LEN  21u /* 16 hex + ".snap" */
#define SNAP_MANIFEST_ENTRY 16u
#define SNAP_NO_LSN         UINT64_MAX

struct snap_file_header {
    uint32_t magic, crc, version, core;
    uint64_t epoch, seq;
    uint32_t part_count, flags;
    uint64_t created_ns;
    uint64_t reserved[2];
};

struct snap_section {
    uint32_t magic, crc, part_id, index;
    uint64_t lsn, data_offset, data_bytes, digest;
    uint32_t data_crc, reserved0;
    uint64_t reserved1;
};

struct snap_footer {
    uint32_t magic, crc, part_count, table_crc;
    uint64_t table_offset, file_bytes, epoch, seq;
    uint32_t core, version;
    uint64_t reserved;
};

struct snap_manifest_header {
    uint32_t magic, crc, version, cores, parts, flags;
    uint64_t epoch, created_ns, file_bytes;
    uint64_t reserved[2];
};

struct snap_manifest_entry {
    uint16_t core, flags;
    uint32_t reserved;
    uint64_t floor_lsn;
};

_Static_assert(sizeof(struct snap_file_header) == SNAP_BLOCK, "header is 64 B");
_Static_assert(sizeof(struct snap_section) == SNAP_BLOCK, "section is 64 B");
_Static_assert(sizeof(struct snap_footer) == SNAP_BLOCK, "footer is 64 B");
_Static_assert(sizeof(struct snap_manifest_header) == SNAP_BLOCK, "manifest header is 64 B");
_Static_assert(sizeof(struct snap_manifest_entry) == SNAP_MANIFEST_ENTRY, "entry is 16 B");
_Static_assert(SNAP_PARTS_MAX % 64 == 0, "bitmap words");

/* ---- checksums ------------------------------------------------------------------------- */

/* crc of a 64-byte structure whose crc field sits at bytes 4..7 */
static uint32_t snap_block_crc(const void *block)
{
    uint8_t tmp[SNAP_BLOCK];
    memcpy(tmp, block, SNAP_BLOCK);
    memset(tmp + 4, 0, 4);
    return sf_crc32c(0, tmp, SNAP_BLOCK);
}

uint64_t snap_log_release_lsn(const uint64_t *part_lsn, size_t n)
{
    if (n == 0)
        return 0;
    assert(part_lsn != NULL);
    uint64_t lo = UINT64_MAX;
    for (size_t i = 0; i < n; i++)
        lo = part_lsn[i] < lo ? part_lsn[i] : lo;
    assert(lo < UINT64_MAX);
    return lo + 1;
}

static uint64_t snap_round_up(uint64_t x)
{
    return (x + SNAP_BLOCK - 1) & ~(uint64_t)(SNAP_BLOCK - 1);
}

static uint64_t snap_now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- paths ------------------------------------------------------------------------------ */

int snap_epoch_path(const char *dir, uint64_t epoch, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/epoch-%016" PRIx64, dir, epoch);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int snap_core_path(const char *dir, uint64_t epoch, uint32_t core, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/epoch-%016" PRIx64 "/snap/core-%" PRIu32, dir, epoch, core);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int snap_file_path(const char *cdir, uint64_t seq, const char *suffix, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/%016" PRIx64 ".snap%s", cdir, seq, suffix);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

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

static bool snap_parse_hex16(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 16; i++) {
        char ch = s[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else
            return false;
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

static int snap_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Sequence numbers of the SEQ.snap files in cdir, ascending, into seqs[0..*n) (the newest
 * SNAP_LIST_MAX when there are more). With unlink_tmp, SEQ.snap.tmp files are removed (and
 * *removed_tmp counts them). Returns 0 or -errno (-ENOENT: no such directory).
 */
static int snap_list(const char *cdir, uint64_t *seqs, uint32_t *n, bool unlink_tmp,
                     uint32_t *removed_tmp)
{
    DIR *d = opendir(cdir);
    if (!d)
        return -errno;
    uint64_t all[SNAP_LIST_MAX * 2];
    uint32_t count = 0, tmp = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        uint64_t seq;
        if (len < SNAP_FILE_NAME_LEN || !snap_parse_hex16(e->d_name, &seq) ||
            memcmp(e->d_name + 16, ".snap", 5) != 0)
            continue;
        if (len == SNAP_FILE_NAME_LEN) {
            if (count == SNAP_LIST_MAX * 2) { /* keep the newest: compact to the top half */
                qsort(all, count, sizeof(all[0]), snap_cmp_u64);
                memmove(all, all + SNAP_LIST_MAX, SNAP_LIST_MAX * sizeof(all[0]));
                count = SNAP_LIST_MAX;
            }
            all[count++] = seq;
        } else if (unlink_tmp && strcmp(e->d_name + 16, ".snap.tmp") == 0) {
            char path[SNAP_PATH_MAX + 32];
            snprintf(path, sizeof(path), "%s/%s", cdir, e->d_name);
            int urc = sf_io_unlink(path);
            if (urc != 0 && urc != -ENOENT)
                rc = urc;
            tmp++;
        }
    }
    closedir(d);
    qsort(all, count, sizeof(all[0]), snap_cmp_u64);
    uint32_t skip = count > SNAP_LIST_MAX ? count - SNAP_LIST_MAX : 0;
    memcpy(seqs, all + skip, (count - skip) * sizeof(seqs[0]));
    *n = count - skip;
    if (removed_tmp)
        *removed_tmp = tmp;
    return rc;
}

/* ---- validation --------------------------------------------------------------------------- */

struct snap_image {
    const uint8_t *base;
    uint64_t size;
    struct snap_file_header h;
    struct snap_footer f;
};

struct snap_expect {
    uint64_t epoch, seq;
    uint32_t core;
    bool check_data;
};

static const char *snap_check_ends(struct snap_image *im, const struct snap_expect *x,
                                   uint64_t *bad)
{
    *bad = 0;
    if (im->size < 2 * SNAP_BLOCK)
        return "file shorter than header and footer";
    memcpy(&im->h, im->base, SNAP_BLOCK);
    if (im->h.magic != SNAP_MAGIC_FILE || im->h.crc != snap_block_crc(&im->h))
        return "file header: bad magic or checksum";
    if (im->h.version != SNAP_FORMAT_VERSION || im->h.flags != 0)
        return "file header: unknown version or flags";
    if (im->h.epoch != x->epoch || im->h.core != x->core || im->h.seq != x->seq)
        return "file header: epoch, core or seq differs from its path";
    *bad = im->size - SNAP_BLOCK;
    memcpy(&im->f, im->base + *bad, SNAP_BLOCK);
    if (im->f.magic != SNAP_MAGIC_FOOTER || im->f.crc != snap_block_crc(&im->f))
        return "footer: bad magic or checksum (torn or damaged file)";
    if (im->f.file_bytes != im->size)
        return "footer: file size differs (torn file)";
    if (im->f.version != im->h.version || im->f.part_count != im->h.part_count ||
        im->f.epoch != im->h.epoch || im->f.seq != im->h.seq || im->f.core != im->h.core)
        return "footer disagrees with the header";
    if (im->f.part_count > SNAP_PARTS_MAX)
        return "footer: too many partitions";
    uint64_t table_bytes = (uint64_t)im->f.part_count * SNAP_BLOCK;
    if (im->f.table_offset < SNAP_BLOCK || im->f.table_offset > im->size ||
        im->size - im->f.table_offset != table_bytes + SNAP_BLOCK)
        return "footer: section table out of place";
    *bad = im->f.table_offset;
    if (sf_crc32c(0, im->base + im->f.table_offset, table_bytes) != im->f.table_crc)
        return "section table: checksum mismatch";
    return NULL;
}

static bool snap_all_zero(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* Checks one table entry (section e, at position i, expected to start at *cursor). */
static const char *snap_check_section(const struct snap_image *im, const struct snap_section *e,
                                      uint32_t i, uint64_t *cursor, uint64_t *seen, bool data,
                                      uint64_t *bad)
{
    *bad = *cursor;
    if (e->magic != SNAP_MAGIC_SECTION || e->crc != snap_block_crc(e))
        return "section table entry: bad magic or checksum";
    if (e->index != i || e->part_id >= SNAP_PARTS_MAX || e->reserved0 || e->reserved1)
        return "section table entry: bad index, partition id or reserved field";
    if (seen[e->part_id / 64] & (1ull << (e->part_id % 64)))
        return "section table: partition listed twice";
    seen[e->part_id / 64] |= 1ull << (e->part_id % 64);
    uint64_t room = im->f.table_offset - *cursor;
    if (room < SNAP_BLOCK || e->data_offset != *cursor + SNAP_BLOCK ||
        e->data_bytes > room - SNAP_BLOCK || snap_round_up(e->data_bytes) > room - SNAP_BLOCK)
        return "section: offset or length out of place";
    if (memcmp(im->base + *cursor, e, SNAP_BLOCK) != 0)
        return "section header differs from its table entry";
    *cursor = e->data_offset + snap_round_up(e->data_bytes);
    if (!data)
        return NULL;
    *bad = e->data_offset;
    if (sf_crc32c(0, im->base + e->data_offset, e->data_bytes) != e->data_crc)
        return "section data: checksum mismatch";
    *bad = e->data_offset + e->data_bytes;
    if (!snap_all_zero(im->base + *bad, snap_round_up(e->data_bytes) - e->data_bytes))
        return "section padding is not zero";
    return NULL;
}

/* NULL when im is a valid snapshot per x (data crcs only with x->check_data), else why;
 * *bad is the offset of the structure found bad. */
static const char *snap_validate(struct snap_image *im, const struct snap_expect *x, uint64_t *seen,
                                 uint64_t *bad)
{
    const char *why = snap_check_ends(im, x, bad);
    if (why)
        return why;
    memset(seen, 0, SNAP_PARTS_MAX / 8);
    uint64_t cursor = SNAP_BLOCK;
    for (uint32_t i = 0; i < im->f.part_count; i++) {
        struct snap_section e;
        memcpy(&e, im->base + im->f.table_offset + (uint64_t)i * SNAP_BLOCK, SNAP_BLOCK);
        why = snap_check_section(im, &e, i, &cursor, seen, x->check_data, bad);
        if (why)
            return why;
    }
    *bad = cursor;
    if (cursor != im->f.table_offset)
        return "sections do not end at the section table";
    return NULL;
}

/* Map path read-only into im. Returns 0 or -errno. */
static int snap_map(const char *path, struct snap_image *im)
{
    memset(im, 0, sizeof(*im));
    struct sf_io_file *f;
    int rc = sf_io_open(path, O_RDONLY, 0, &f);
    if (rc)
        return rc;
    rc = sf_io_size(f, &im->size);
    if (rc == 0 && im->size > 0) {
        void *p = mmap(NULL, im->size, PROT_READ, MAP_PRIVATE, f->fd, 0);
        if (p == MAP_FAILED) {
            rc = -errno;
        } else {
            madvise(p, im->size, MADV_SEQUENTIAL);
            im->base = p;
        }
    }
    sf_io_close(f);
    return rc;
}

static void snap_unmap(struct snap_image *im)
{
    if (im->base)
        munmap((void *)im->base, im->size);
    im->base = NULL;
}

/* ---- loading ---------------------------------------------------------------------------- */

static void snap_report_reject(struct snap_load_report *r, uint64_t seq, const char *why,
                               uint64_t off)
{
    if (r->rejected_count < SNAP_REJECT_MAX)
        r->rejected[r->rejected_count] =
            (struct snap_reject){ .seq = seq, .reason = why, .offset = off };
    r->rejected_count++;
}

static int snap_deliver(const struct snap_image *im, snap_load_fn fn, void *ctx,
                        struct snap_load_report *r)
{
    for (uint32_t i = 0; i < im->f.part_count; i++) {
        struct snap_section e;
        memcpy(&e, im->base + im->f.table_offset + (uint64_t)i * SNAP_BLOCK, SNAP_BLOCK);
        assert(e.magic == SNAP_MAGIC_SECTION && e.index == i); /* validated before */
        int rc = fn(ctx, e.part_id, e.lsn, im->base + e.data_offset, e.data_bytes, e.digest);
        if (rc)
            return rc;
        r->parts++;
        r->data_bytes += e.data_bytes;
    }
    return 0;
}

int snap_load(const char *dir, uint64_t epoch, uint32_t core, snap_load_fn fn, void *ctx,
              struct snap_load_report *report)
{
    struct snap_load_report local;
    struct snap_load_report *r = report ? report : &local;
    memset(r, 0, sizeof(*r));
    assert(fn != NULL);
    char cdir[SNAP_PATH_MAX];
    int rc = snap_core_path(dir, epoch, core, cdir, sizeof(cdir));
    if (rc)
        return rc;
    uint64_t seqs[SNAP_LIST_MAX];
    uint32_t n = 0;
    rc = snap_list(cdir, seqs, &n, false, NULL);
    if (rc)
        return rc; /* -ENOENT: no snapshot directory */
    r->files = n;
    if (n == 0)
        return -ENOENT;
    uint64_t *seen = malloc(SNAP_PARTS_MAX / 8);
    if (!seen)
        return -ENOMEM;
    rc = -EBADMSG;
    for (uint32_t k = n; k-- > 0;) {
        char path[SNAP_PATH_MAX];
        struct snap_image im;
        uint64_t bad = 0;
        if (snap_file_path(cdir, seqs[k], "", path, sizeof(path)) != 0)
            continue;
        int mrc = snap_map(path, &im);
        if (mrc) {
            snap_report_reject(r, seqs[k], "cannot open or map the file", 0);
            continue;
        }
        struct snap_expect x = { .epoch = epoch, .seq = seqs[k], .core = core, .check_data = true };
        const char *why = snap_validate(&im, &x, seen, &bad);
        if (why) {
            snap_report_reject(r, seqs[k], why, bad);
            snap_unmap(&im);
            continue;
        }
        r->seq = seqs[k];
        r->fell_back = k + 1 < n;
        r->created_ns = im.h.created_ns;
        snprintf(r->path, sizeof(r->path), "%s", path);
        rc = snap_deliver(&im, fn, ctx, r);
        snap_unmap(&im);
        break;
    }
    free(seen);
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
        s->crc = snap_block_crc(s);
        int rc = sf_io_pwrite_all(w->file, s, SNAP_BLOCK, s->data_offset - SNAP_BLOCK);
        if (rc)
            return rc;
    }
    uint64_t table_bytes = (uint64_t)w->nsec * SNAP_BLOCK;
    struct snap_footer f = {
        .magic = SNAP_MAGIC_FOOTER,
        .part_count = w->nsec,
        .table_crc = sf_crc32c(0, w->sec, table_bytes),
        .table_offset = w->cursor,
        .file_bytes = w->cursor + table_bytes + SNAP_BLOCK,
        .epoch = w->epoch,
        .seq = w->seq,
        .core = w->core,
        .version = SNAP_FORMAT_VERSION,
    };
    f.crc = snap_block_crc(&f);
    struct snap_file_header h = {
        .magic = SNAP_MAGIC_FILE,
        .version = SNAP_FORMAT_VERSION,
        .core = w->core,
        .epoch = w->epoch,
        .seq = w->seq,
        .part_count = w->nsec,
        .created_ns = snap_now_ns(CLOCK_REALTIME),
    };
    h.crc = snap_block_crc(&h);
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
            memcpy(&e, im.base + im.f.table_offset + (uint64_t)i * SNAP_BLOCK, SNAP_BLOCK);
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

/* ---- epochs -------------------------------------------------------------------------------- */

static __thread int snap_rm_err; /* first error of a snap_rm_one walk */

static int snap_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    int rc = flag == FTW_DP ? (rmdir(path) == 0 ? 0 : -errno) : sf_io_unlink(path);
    if (rc == 0 || rc == -ENOENT)
        return 0;
    snap_rm_err = rc;
    return 1; /* stop the walk */
}

int snap_epoch_gc(const char *dir, uint64_t epoch, bool drop_older)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int removed = 0, rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        uint64_t ep;
        if (strlen(e->d_name) != SNAP_EPOCH_NAME_LEN || memcmp(e->d_name, "epoch-", 6) != 0 ||
            !snap_parse_hex16(e->d_name + 6, &ep) || ep == epoch || (ep < epoch && !drop_older))
            continue;
        char path[SNAP_PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        snap_rm_err = 0;
        int walk = nftw(path, snap_rm_one, 16, FTW_DEPTH | FTW_PHYS);
        if (walk == 1)
            rc = snap_rm_err;
        else if (walk != 0)
            rc = errno == ENOENT ? 0 : -errno;
        removed += rc == 0;
    }
    closedir(d);
    if (rc == 0 && removed > 0)
        rc = sf_io_fsync_dir(dir);
    return rc ? rc : removed;
}

/* ---- MANIFEST ------------------------------------------------------------------------------ */

static bool snap_manifest_valid(const struct snap_manifest *m)
{
    if (m->epoch == 0 || m->cores == 0 || m->cores > SNAP_CORES_MAX || m->parts == 0 ||
        m->parts > SNAP_PARTS_MAX)
        return false;
    for (uint32_t p = 0; p < m->parts; p++)
        if (m->part_core[p] >= m->cores || m->part_lsn[p] == UINT64_MAX)
            return false; /* no core of that number, or a floor no log can ever reach */
    return true;
}

int snap_manifest_init(struct snap_manifest *m, uint64_t epoch, uint32_t cores, uint32_t parts,
                       const uint16_t *part_core)
{
    if (parts == 0 || parts > SNAP_PARTS_MAX || part_core == NULL)
        return -EINVAL;
    m->epoch = epoch;
    m->cores = cores;
    m->parts = parts;
    m->created_ns = snap_now_ns(CLOCK_REALTIME);
    memcpy(m->part_core, part_core, parts * sizeof(part_core[0]));
    memset(m->part_lsn, 0, sizeof(m->part_lsn));
    memset(m->part_core + parts, 0, (SNAP_PARTS_MAX - parts) * sizeof(m->part_core[0]));
    return snap_manifest_valid(m) ? 0 : -EINVAL;
}

static size_t snap_manifest_bytes(uint32_t parts)
{
    return SNAP_BLOCK + (size_t)parts * SNAP_MANIFEST_ENTRY;
}

int snap_manifest_write(const char *dir, const struct snap_manifest *m)
{
    if (!snap_manifest_valid(m))
        return -EINVAL;
    char tmp[SNAP_PATH_MAX], final[SNAP_PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s/MANIFEST.tmp", dir) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    snprintf(final, sizeof(final), "%s/MANIFEST", dir);
    size_t bytes = snap_manifest_bytes(m->parts);
    uint8_t *buf = calloc(1, bytes);
    if (!buf)
        return -ENOMEM;
    struct snap_manifest_header h = {
        .magic = SNAP_MAGIC_MANIFEST,
        .version = SNAP_MANIFEST_VERSION,
        .cores = m->cores,
        .parts = m->parts,
        .epoch = m->epoch,
        .created_ns = m->created_ns,
        .file_bytes = bytes,
    };
    for (uint32_t p = 0; p < m->parts; p++) {
        struct snap_manifest_entry e = { .core = m->part_core[p], .floor_lsn = m->part_lsn[p] };
        memcpy(buf + SNAP_BLOCK + (size_t)p * SNAP_MANIFEST_ENTRY, &e, sizeof(e));
    }
    memcpy(buf, &h, sizeof(h));
    h.crc = sf_crc32c(0, buf, bytes);
    memcpy(buf, &h, sizeof(h));
    struct sf_io_file *f;
    int rc = sf_io_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &f);
    if (rc == 0) {
        rc = sf_io_pwrite_all(f, buf, bytes, 0);
        if (rc == 0)
            rc = sf_io_fdatasync(f);
        sf_io_close(f);
        if (rc == 0)
            rc = sf_io_rename(tmp, final);
        else
            sf_io_unlink(tmp);
    }
    if (rc == 0)
        rc = sf_io_fsync_dir(dir);
    free(buf);
    return rc;
}

static int snap_manifest_parse(const uint8_t *buf, uint64_t size, struct snap_manifest *m)
{
    struct snap_manifest_header h;
    if (size < SNAP_BLOCK)
        return -EBADMSG;
    memcpy(&h, buf, sizeof(h));
    if (h.magic != SNAP_MAGIC_MANIFEST || h.version != SNAP_MANIFEST_VERSION || h.flags != 0 ||
        h.reserved[0] || h.reserved[1] || h.parts == 0 || h.parts > SNAP_PARTS_MAX ||
        h.file_bytes != size || size != snap_manifest_bytes(h.parts))
        return -EBADMSG;
    uint32_t crc = h.crc;
    uint32_t c = sf_crc32c(0, buf, 4);
    c = sf_crc32c(c, "\0\0\0\0", 4);
    c = sf_crc32c(c, buf + 8, size - 8);
    if (c != crc)
        return -EBADMSG;
    m->epoch = h.epoch;
    m->created_ns = h.created_ns;
    m->cores = h.cores;
    m->parts = h.parts;
    memset(m->part_core, 0, sizeof(m->part_core));
    memset(m->part_lsn, 0, sizeof(m->part_lsn));
    for (uint32_t p = 0; p < h.parts; p++) {
        struct snap_manifest_entry e;
        memcpy(&e, buf + SNAP_BLOCK + (size_t)p * SNAP_MANIFEST_ENTRY, sizeof(e));
        if (e.flags || e.reserved)
            return -EBADMSG;
        m->part_core[p] = e.core;
        m->part_lsn[p] = e.floor_lsn;
    }
    return snap_manifest_valid(m) ? 0 : -EBADMSG;
}

int snap_manifest_read(const char *dir, struct snap_manifest *m)
{
    char path[SNAP_PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/MANIFEST", dir) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    struct sf_io_file *f;
    int rc = sf_io_open(path, O_RDONLY, 0, &f);
    if (rc)
        return rc;
    uint64_t size = 0;
    rc = sf_io_size(f, &size);
    if (rc == 0 && (size < SNAP_BLOCK || size > snap_manifest_bytes(SNAP_PARTS_MAX)))
        rc = -EBADMSG;
    uint8_t *buf = rc == 0 ? malloc(size) : NULL;
    if (rc == 0 && !buf)
        rc = -ENOMEM;
    if (rc == 0) {
        ssize_t n = sf_io_pread(f, buf, size, 0);
        rc = n < 0 ? (int)n : ((uint64_t)n != size ? -EBADMSG : 0);
    }
    if (rc == 0)
        rc = snap_manifest_parse(buf, size, m);
    free(buf);
    sf_io_close(f);
    return rc;
}

bool snap_manifest_same_layout(const struct snap_manifest *m, uint32_t cores, uint32_t parts,
                               const uint16_t *part_core)
{
    return m->cores == cores && m->parts == parts &&
           memcmp(m->part_core, part_core, (size_t)parts * sizeof(part_core[0])) == 0;
}

int snap_manifest_next_epoch(const struct snap_manifest *cur, uint32_t cores,
                             const uint16_t *part_core, struct snap_manifest *next)
{
    if (!snap_manifest_valid(cur) || cur->epoch == UINT64_MAX)
        return -EINVAL;
    return snap_manifest_init(next, cur->epoch + 1, cores, cur->parts, part_core);
}

uint32_t snap_manifest_core_parts(const struct snap_manifest *m, uint32_t core, uint32_t *out,
                                  uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t p = 0; p < m->parts && p < SNAP_PARTS_MAX; p++) {
        if (m->part_core[p] != core)
            continue;
        if (n < cap)
            out[n] = p;
        n++;
    }
    return n;
}

uint64_t snap_manifest_core_release_lsn(const struct snap_manifest *m, uint32_t core)
{
    uint64_t lo = UINT64_MAX;
    bool any = false;
    for (uint32_t p = 0; p < m->parts && p < SNAP_PARTS_MAX; p++) {
        if (m->part_core[p] != core)
            continue;
        any = true;
        lo = m->part_lsn[p] < lo ? m->part_lsn[p] : lo;
    }
    return any ? snap_log_release_lsn(&lo, 1) : 0;
}

int snap_manifest_check_loaded(const struct snap_manifest *m, uint32_t part, uint32_t core,
                               uint64_t loaded_lsn)
{
    if (part >= m->parts || part >= SNAP_PARTS_MAX || m->part_core[part] != core)
        return -EINVAL;
    return loaded_lsn >= m->part_lsn[part] ? 0 : -ESTALE;
}
