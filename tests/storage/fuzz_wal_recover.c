/*
 * fuzz_wal_recover — libFuzzer target for WAL recovery (storage/wal_recover.c) on arbitrary
 * segment files.
 *
 * INPUT FRAMING (little-endian)
 *   byte 0  flags: bits 0-1 segments - 1 (1..4); bit 2 also recover read-write; bit 3
 *           WAL_RECOVER_SALVAGE; bit 4 repair checksums (so mutations reach the checks
 *           behind them); bits 5-6 id of the first segment - 1 (1..4)
 *   byte 1  block prefix: each 4096-byte block of a file takes the next
 *           FW_PREFIX[byte1 & 7] input bytes, the rest of the block is zero
 *   byte 2  lsn_floor (0: none)
 *   then    the blocks of segment 1, 2, ... back to back, FW_SEGMENT_BLOCKS per segment;
 *           the last file ends where the input does (a short file reads as zeros)
 * Files go to a private directory under /dev/shm (or /tmp), as DIR/wal/core-0/ID.log.
 *
 * ORACLES (a violation aborts, which libFuzzer reports as a crash)
 *   - read-only recovery changes no file; the replay sees LSNs strictly consecutive (a
 *     salvage may jump forward) and payloads within bounds; every payload byte is read;
 *   - -EBADMSG comes with a reason and a path;
 *   - read-write recovery agrees with read-only (same result, same records) unless it
 *     refuses the segment size (-EINVAL); after it, one appended record is found by a
 *     second read-only recovery right after the records it replayed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal.h"
#include "wal_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FW_SEGMENTS_MAX    4u
#define FW_SEGMENT_BLOCKS  4u /* the smallest segment wal_options allows */
#define FW_SEGMENT_BYTES   (FW_SEGMENT_BLOCKS * WAL_BLOCK_BYTES)
#define FW_FRAME_BYTES     3u
#define FW_RECORDS_PER_FIX 4096u /* records a checksum repair walks in one batch */
#define FW_PATH_BYTES      512u

static const uint32_t FW_PREFIX[8] = { 64, 128, 256, 512, 1024, 2048, 4096, 4096 };

#define FW_CHECK(cond)                                                                           \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "fuzz_wal_recover: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

static char fw_dir[FW_PATH_BYTES];
static char fw_log_dir[FW_PATH_BYTES];

struct fw_replay {
    uint64_t count, first, last;
    uint64_t sum; /* of every payload byte: makes the reads real */
    bool salvage;
};

static int fw_replay_cb(void *ctx, const struct wal_record_view *v)
{
    struct fw_replay *r = ctx;
    FW_CHECK(v->len <= WAL_PAYLOAD_BYTES_MAX && (v->len == 0 || v->payload != NULL));
    FW_CHECK(v->lsn >= 1);
    if (r->count > 0)
        FW_CHECK(r->salvage ? v->lsn > r->last : v->lsn == r->last + 1);
    else
        r->first = v->lsn;
    const uint8_t *p = v->payload;
    for (uint32_t i = 0; i < v->len; i++)
        r->sum += p[i];
    r->last = v->lsn;
    r->count++;
    return 0;
}

static int fw_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void fw_cleanup(void)
{
    nftw(fw_dir, fw_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void fw_setup(void)
{
    if (fw_dir[0])
        return;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fw_dir, sizeof(fw_dir), "%s/fuzz-wal-XXXXXX", base);
    FW_CHECK(mkdtemp(fw_dir) != NULL);
    atexit(fw_cleanup);
    snprintf(fw_log_dir, sizeof(fw_log_dir), "%s/wal/core-0", fw_dir);
}

/* Remove every file of the log directory (the previous input's). */
static void fw_clear(void)
{
    DIR *d = opendir(fw_log_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[2 * FW_PATH_BYTES];
        snprintf(path, sizeof(path), "%s/%s", fw_log_dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* Recompute the checksums of the segment header and of every batch (and its records)
 * found at a block boundary, within the image. */
static void fw_repair(uint8_t *img, uint64_t len)
{
    if (len >= WAL_HEADER_BYTES) {
        struct wal_segment_header sh;
        memcpy(&sh, img, sizeof(sh));
        if (sh.magic == WAL_SEGMENT_MAGIC) {
            sh.crc = wal_header_crc(&sh);
            memcpy(img, &sh, sizeof(sh));
        }
    }
    for (uint64_t o = WAL_SEGMENT_DATA_OFFSET; o + WAL_HEADER_BYTES <= len; o += WAL_BLOCK_BYTES) {
        struct wal_batch_header h;
        memcpy(&h, img + o, sizeof(h));
        if (h.magic != WAL_BATCH_MAGIC)
            continue;
        uint64_t p = o + WAL_HEADER_BYTES;
        uint64_t end = p + h.body_bytes < len ? p + h.body_bytes : len;
        for (uint32_t k = 0; k < h.record_count && k < FW_RECORDS_PER_FIX; k++) {
            struct wal_record_header r;
            if (p + WAL_RECORD_HEADER_BYTES > end)
                break;
            memcpy(&r, img + p, sizeof(r));
            if (r.payload_len > WAL_PAYLOAD_BYTES_MAX || p + wal_record_bytes(r.payload_len) > end)
                break;
            r.crc = wal_record_crc(img + p, r.payload_len);
            memcpy(img + p, &r.crc, sizeof(r.crc));
            p += wal_record_bytes(r.payload_len);
        }
        h.crc = wal_header_crc(&h);
        memcpy(img + o, &h, sizeof(h));
    }
}

struct fw_files {
    uint32_t n;
    uint64_t ids[FW_SEGMENTS_MAX];
    uint8_t *img[FW_SEGMENTS_MAX];
    uint64_t len[FW_SEGMENTS_MAX];
};

static void fw_write_file(uint64_t id, const uint8_t *img, uint64_t len)
{
    char path[FW_PATH_BYTES + 32];
    FW_CHECK(wal_segment_path(fw_dir, 0, id, path, sizeof(path)) == 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FW_CHECK(fd >= 0);
    FW_CHECK(write(fd, img, len) == (ssize_t)len);
    close(fd);
}

/* The files are byte for byte what fw_write_file wrote. */
static void fw_check_untouched(const struct fw_files *f)
{
    static uint8_t buf[FW_SEGMENT_BYTES + 1];
    for (uint32_t i = 0; i < f->n; i++) {
        char path[FW_PATH_BYTES + 32];
        FW_CHECK(wal_segment_path(fw_dir, 0, f->ids[i], path, sizeof(path)) == 0);
        int fd = open(path, O_RDONLY);
        FW_CHECK(fd >= 0);
        ssize_t got = read(fd, buf, sizeof(buf));
        close(fd);
        FW_CHECK(got == (ssize_t)f->len[i] && memcmp(buf, f->img[i], f->len[i]) == 0);
    }
}

/* Build the segment images from the input. Returns the number of files. */
static uint32_t fw_build(const uint8_t *data, size_t size, struct fw_files *f)
{
    uint32_t nseg = 1 + (data[0] & 3u);
    uint64_t first_id = 1 + ((data[0] >> 5) & 3u);
    uint32_t prefix = FW_PREFIX[data[1] & 7u];
    const uint8_t *p = data + FW_FRAME_BYTES;
    size_t left = size - FW_FRAME_BYTES;
    memset(f, 0, sizeof(*f));
    for (uint32_t s = 0; s < nseg && (s == 0 || left > 0); s++) {
        uint8_t *img = calloc(1, FW_SEGMENT_BYTES);
        FW_CHECK(img != NULL);
        uint64_t len = 0;
        for (uint32_t b = 0; b < FW_SEGMENT_BLOCKS && left > 0; b++) {
            size_t n = left < prefix ? left : prefix;
            memcpy(img + (uint64_t)b * WAL_BLOCK_BYTES, p, n);
            p += n, left -= n;
            len = (uint64_t)(b + 1) * WAL_BLOCK_BYTES;
        }
        if (data[0] & 0x10u)
            fw_repair(img, len);
        f->ids[f->n] = first_id + s;
        f->img[f->n] = img;
        f->len[f->n] = len;
        f->n++;
    }
    return f->n;
}

static struct wal_options fw_opts(uint64_t lsn_floor)
{
    return (struct wal_options){
        .dir = fw_dir,
        .core = 0,
        .segment_bytes = FW_SEGMENT_BYTES,
        .batch_bytes_max = WAL_BLOCK_BYTES,
        .inflight_max = 2,
        .iowq_workers_max = 1,
        .lsn_floor = lsn_floor,
    };
}

/* Read-write recovery: agrees with the read-only one; an appended record follows. */
static void fw_read_write(const struct wal_options *o, unsigned flags, int ro_rc,
                          const struct fw_replay *ro)
{
    struct fw_replay rw = { .salvage = (flags & WAL_RECOVER_SALVAGE) != 0 };
    struct wal_recover_report rep;
    struct wal *w = NULL;
    int rc = wal_recover(o, fw_replay_cb, &rw, flags, &rep, &w);
    if (rc == -EINVAL || rc == -ENOSPC || rc == -ENOMEM) /* segment size refused, no room */
        return;
    FW_CHECK(rc == ro_rc);
    FW_CHECK(rw.count == ro->count && rw.last == ro->last && rw.sum == ro->sum);
    if (rc != 0) {
        FW_CHECK(w == NULL);
        return;
    }
    FW_CHECK(w != NULL && wal_next_lsn(w) == rep.last_lsn + 1);
    uint64_t lsn = 0;
    static const uint8_t payload[3] = { 1, 2, 3 };
    if (wal_reserve(w, wal_record_bytes(sizeof(payload))) == 0) {
        lsn = wal_append(w, 1, 0, (struct wal_key){ 1, 2 }, payload, sizeof(payload));
        FW_CHECK(lsn == rep.last_lsn + 1);
    }
    int crc = wal_close(w);
    if (crc != 0 || lsn == 0 || (flags & WAL_RECOVER_SALVAGE))
        return; /* a salvaged log keeps its damage in the middle */
    struct fw_replay again = { 0 };
    struct wal_options o2 = *o;
    o2.lsn_floor = 0;
    rc = wal_recover(&o2, fw_replay_cb, &again, WAL_RECOVER_READ_ONLY, &rep, NULL);
    FW_CHECK(rc == 0 && rep.last_lsn == lsn && again.last == lsn);
    FW_CHECK(again.count == ro->count + 1 || (ro->count == 0 && again.count == 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FW_FRAME_BYTES)
        return 0;
    fw_setup();
    fw_clear();
    mkdir(fw_dir, 0755);
    char wal_dir[FW_PATH_BYTES + 8];
    snprintf(wal_dir, sizeof(wal_dir), "%s/wal", fw_dir);
    mkdir(wal_dir, 0755);
    mkdir(fw_log_dir, 0755);
    struct fw_files f;
    fw_build(data, size, &f);
    for (uint32_t i = 0; i < f.n; i++)
        fw_write_file(f.ids[i], f.img[i], f.len[i]);

    unsigned flags = (data[0] & 0x08u) ? WAL_RECOVER_SALVAGE : 0;
    struct wal_options o = fw_opts(data[2]);
    struct fw_replay ro = { .salvage = flags != 0 };
    struct wal_recover_report rep;
    int rc = wal_recover(&o, fw_replay_cb, &ro, flags | WAL_RECOVER_READ_ONLY, &rep, NULL);
    FW_CHECK(rc == 0 || rc == -EBADMSG);
    FW_CHECK(rep.segments <= f.n);
    if (rc == -EBADMSG)
        FW_CHECK(rep.tail == WAL_TAIL_CORRUPT && rep.reason != NULL && rep.path[0] != '\0');
    else
        FW_CHECK(rep.records == ro.count && (ro.count == 0 || rep.last_lsn == ro.last));
    if (getenv("FUZZ_WAL_VERBOSE")) /* for looking at seeds and crashes */
        fprintf(stderr,
                "fuzz_wal_recover: %u files, rc %d, %llu records, last lsn %llu, tail %d (%s)\n",
                f.n, rc, (unsigned long long)ro.count, (unsigned long long)rep.last_lsn, rep.tail,
                rep.reason ? rep.reason : "-");
    fw_check_untouched(&f);
    if (data[0] & 0x04u)
        fw_read_write(&o, flags, rc, &ro);
    for (uint32_t i = 0; i < f.n; i++)
        free(f.img[i]);
    return 0;
}
