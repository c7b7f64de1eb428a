/*
 * snap_format.c — the snapshot file and MANIFEST formats: names, encoding, validation
 * (interface and protocol: snap.h). The writer is snap_write.c, the loader snap_load.c, the
 * MANIFEST's file and the epoch directories snap_manifest.c; what they share is in
 * snap_internal.h.
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
#include "snap_internal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_crc32c.h"
#include "sf_io.h"

/* ---- checksums and encoding --------------------------------------------------------------- */

uint32_t snap_block_crc(const void *block)
{
    uint8_t tmp[SNAP_BLOCK];
    memcpy(tmp, block, SNAP_BLOCK);
    memset(tmp + 4, 0, 4);
    return sf_crc32c(0, tmp, SNAP_BLOCK);
}

void snap_section_seal(struct snap_section *s)
{
    assert(s->magic == SNAP_MAGIC_SECTION);
    s->crc = snap_block_crc(s);
}

struct snap_footer snap_footer_encode(const struct snap_section *table, uint32_t part_count,
                                      uint64_t table_offset, uint64_t epoch, uint64_t seq,
                                      uint32_t core)
{
    uint64_t table_bytes = (uint64_t)part_count * SNAP_BLOCK;
    assert(table_offset >= SNAP_BLOCK && table_offset % SNAP_BLOCK == 0);
    struct snap_footer f = {
        .magic = SNAP_MAGIC_FOOTER,
        .part_count = part_count,
        .table_crc = sf_crc32c(0, table, table_bytes),
        .table_offset = table_offset,
        .file_bytes = table_offset + table_bytes + SNAP_BLOCK,
        .epoch = epoch,
        .seq = seq,
        .core = core,
        .version = SNAP_FORMAT_VERSION,
    };
    f.crc = snap_block_crc(&f);
    return f;
}

struct snap_file_header snap_header_encode(uint32_t part_count, uint64_t epoch, uint64_t seq,
                                           uint32_t core, uint64_t created_ns)
{
    assert(part_count <= SNAP_PARTS_MAX);
    struct snap_file_header h = {
        .magic = SNAP_MAGIC_FILE,
        .version = SNAP_FORMAT_VERSION,
        .core = core,
        .epoch = epoch,
        .seq = seq,
        .part_count = part_count,
        .created_ns = created_ns,
    };
    h.crc = snap_block_crc(&h);
    return h;
}

/* ---- names ------------------------------------------------------------------------------ */

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

int snap_file_path(const char *cdir, uint64_t seq, const char *suffix, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/%016" PRIx64 ".snap%s", cdir, seq, suffix);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

bool snap_parse_hex16(const char *s, uint64_t *out)
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

int snap_list(const char *cdir, uint64_t *seqs, uint32_t *n, bool unlink_tmp, uint32_t *removed_tmp)
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

void snap_table_entry(const struct snap_image *im, uint32_t i, struct snap_section *e)
{
    assert(i < im->f.part_count);
    memcpy(e, im->base + im->f.table_offset + (uint64_t)i * SNAP_BLOCK, SNAP_BLOCK);
}

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

const char *snap_validate(struct snap_image *im, const struct snap_expect *x, uint64_t *seen,
                          uint64_t *bad)
{
    const char *why = snap_check_ends(im, x, bad);
    if (why)
        return why;
    memset(seen, 0, SNAP_PARTS_MAX / 8);
    uint64_t cursor = SNAP_BLOCK;
    for (uint32_t i = 0; i < im->f.part_count; i++) {
        struct snap_section e;
        snap_table_entry(im, i, &e);
        why = snap_check_section(im, &e, i, &cursor, seen, x->check_data, bad);
        if (why)
            return why;
    }
    *bad = cursor;
    if (cursor != im->f.table_offset)
        return "sections do not end at the section table";
    return NULL;
}

/* ---- MANIFEST bytes ------------------------------------------------------------------------ */

bool snap_manifest_valid(const struct snap_manifest *m)
{
    if (m->epoch == 0 || m->cores == 0 || m->cores > SNAP_CORES_MAX || m->parts == 0 ||
        m->parts > SNAP_PARTS_MAX)
        return false;
    for (uint32_t p = 0; p < m->parts; p++)
        if (m->part_core[p] >= m->cores || m->part_lsn[p] == UINT64_MAX)
            return false; /* no core of that number, or a floor no log can ever reach */
    return true;
}

size_t snap_manifest_bytes(uint32_t parts)
{
    return SNAP_BLOCK + (size_t)parts * SNAP_MANIFEST_ENTRY;
}

void snap_manifest_encode(const struct snap_manifest *m, uint8_t *buf)
{
    assert(snap_manifest_valid(m));
    size_t bytes = snap_manifest_bytes(m->parts);
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
}

int snap_manifest_decode(const uint8_t *buf, uint64_t size, struct snap_manifest *m)
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
