/*
 * fuzz_seeds — writes the seed inputs of fuzz_wal_recover and fuzz_snap_load (framings at
 * the top of each target) from real files written by the library. Run by hand when a
 * format or a framing changes:
 *     fuzz_seeds tests/storage/corpus/fuzz_wal_recover tests/storage/corpus/fuzz_snap_load
 * Exit status 0, or 1 with a message on the first failure.
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
#include <time.h>
#include <unistd.h>

#include "sf_le.h"
#include "snap.h"
#include "wal.h"
#include "wal_format.h"

#define SEED_SEGMENT_BYTES  (4u * WAL_BLOCK_BYTES) /* as fuzz_wal_recover */
#define SEED_PREFIX_INDEX   3u                     /* 512 bytes of each block */
#define SEED_PREFIX_BYTES   512u
#define SEED_SEGMENTS_MAX   4u
#define SEED_RECORDS_BATCH  3u
#define SEED_PAYLOAD_MAX    40u
#define SEED_PATH_BYTES     512u
#define SEED_INPUT_BYTES    (3u + SEED_SEGMENTS_MAX * 4u * SEED_PREFIX_BYTES)
#define SEED_SNAP_PARTS     4u
#define SEED_MANIFEST_PARTS 8u

#define SEED_CHECK(cond)                                                             \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "fuzz_seeds: failed at line %d: %s\n", __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static int seed_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void seed_write(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
    char path[2 * SEED_PATH_BYTES];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    SEED_CHECK(f != NULL && fwrite(buf, 1, len, f) == len);
    fclose(f);
}

/* A log of @batches batches of SEED_RECORDS_BATCH small records in 16 KiB segments;
 * with @release, the finished segments the log lets go of are deleted. */
static void seed_wal_log(const char *dir, uint32_t batches, bool release)
{
    struct wal_options o = {
        .dir = dir,
        .segment_bytes = SEED_SEGMENT_BYTES,
        .batch_bytes_max = WAL_BLOCK_BYTES,
        .inflight_max = 2,
        .no_recycle = true,
    };
    struct wal *w = NULL;
    SEED_CHECK(wal_recover(&o, NULL, NULL, 0, NULL, &w) == 0);
    uint8_t payload[SEED_PAYLOAD_MAX];
    for (uint32_t b = 0; b < batches; b++) {
        for (uint32_t k = 0; k < SEED_RECORDS_BATCH; k++) {
            uint64_t lsn = wal_next_lsn(w);
            uint32_t len = (uint32_t)(lsn * 7 % (SEED_PAYLOAD_MAX + 1));
            for (uint32_t i = 0; i < len; i++)
                payload[i] = (uint8_t)(lsn + i);
            int rc;
            while ((rc = wal_reserve(w, wal_record_bytes(len))) == -EAGAIN)
                SEED_CHECK(wal_poll(w, 0) >= 0); /* the next segment is being prepared */
            SEED_CHECK(rc == 0);
            wal_append(w, (uint16_t)(lsn % 5), (uint32_t)lsn % 16, (struct wal_key){ lsn, ~lsn },
                       payload, len);
        }
        SEED_CHECK(wal_flush(w) == 0);
        while (wal_durable_lsn(w) + 1 < wal_next_lsn(w))
            SEED_CHECK(wal_poll(w, 0) >= 0);
    }
    if (release) {
        wal_release_before(w, wal_durable_lsn(w) + 1);
        usleep(100000); /* the helper deletes them */
    }
    SEED_CHECK(wal_close(w) == 0);
}

/* Frame the segment files of @dir as one fuzz_wal_recover input with @flags. */
static void seed_wal_frame(const char *dir, uint8_t flags, const char *out, const char *name)
{
    char log[SEED_PATH_BYTES];
    snprintf(log, sizeof(log), "%s/wal/core-0", dir);
    uint64_t ids[64];
    uint32_t n = 0;
    DIR *d = opendir(log);
    SEED_CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        unsigned long long id;
        if (strlen(e->d_name) == 20 && sscanf(e->d_name, "%16llx.log", &id) == 1)
            ids[n++] = id;
    }
    closedir(d);
    uint64_t first = UINT64_MAX;
    for (uint32_t i = 0; i < n; i++)
        first = ids[i] < first ? ids[i] : first;
    SEED_CHECK(n >= 1 && first <= 4);
    if (n > SEED_SEGMENTS_MAX)
        n = SEED_SEGMENTS_MAX;
    static uint8_t in[SEED_INPUT_BYTES];
    size_t len = 3;
    in[0] = (uint8_t)((n - 1) | flags | (first - 1) << 5);
    in[1] = SEED_PREFIX_INDEX;
    in[2] = 0;
    for (uint32_t s = 0; s < n; s++) {
        char path[SEED_PATH_BYTES + 32];
        SEED_CHECK(wal_segment_path(dir, 0, first + s, path, sizeof(path)) == 0);
        int fd = open(path, O_RDONLY);
        SEED_CHECK(fd >= 0);
        for (uint32_t b = 0; b < SEED_SEGMENT_BYTES / WAL_BLOCK_BYTES; b++) {
            uint8_t block[WAL_BLOCK_BYTES];
            SEED_CHECK(pread(fd, block, sizeof(block), (off_t)b * WAL_BLOCK_BYTES) ==
                       (ssize_t)sizeof(block));
            memcpy(in + len, block, SEED_PREFIX_BYTES);
            len += SEED_PREFIX_BYTES;
        }
        close(fd);
    }
    while (len > 3 && in[len - 1] == 0) /* the fuzz target reads a short input as zeros */
        len--;
    seed_write(out, name, in, len);
}

static void seed_wal(const char *out)
{
    char dir[] = "/tmp/fuzz-seeds-wal-XXXXXX";
    SEED_CHECK(mkdtemp(dir) != NULL);
    seed_wal_log(dir, 5, false); /* segments 1 and 2, and the prepared 3 */
    seed_wal_frame(dir, 0x00, out, "two_segments");
    seed_wal_frame(dir, 0x04, out, "two_segments_rw");
    seed_wal_frame(dir, 0x14, out, "two_segments_rw_repair");
    seed_wal_frame(dir, 0x08, out, "two_segments_salvage");
    nftw(dir, seed_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    SEED_CHECK(mkdtemp(strcpy(dir, "/tmp/fuzz-seeds-wal-XXXXXX")) != NULL);
    seed_wal_log(dir, 8, true); /* segments 1..3 released but the newest finished one */
    seed_wal_frame(dir, 0x04, out, "released_rw");
    nftw(dir, seed_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void seed_read(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    SEED_CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc(*len + 1);
    SEED_CHECK(*buf && fread(*buf, 1, *len, f) == *len);
    fclose(f);
}

/* Frame a MANIFEST and a snapshot (either may be absent) as one fuzz_snap_load input. */
static void seed_snap_frame(uint8_t flags, const uint8_t *man, size_t mlen, const uint8_t *snap,
                            size_t slen, const char *out, const char *name)
{
    uint8_t *in = malloc(3 + mlen + slen);
    SEED_CHECK(in != NULL && mlen <= 0xffff);
    in[0] = flags;
    sf_le16_put(in + 1, (uint16_t)mlen);
    if (mlen > 0)
        memcpy(in + 3, man, mlen);
    if (slen > 0)
        memcpy(in + 3 + mlen, snap, slen);
    seed_write(out, name, in, 3 + mlen + slen);
    free(in);
}

static void seed_snap(const char *out)
{
    char dir[] = "/tmp/fuzz-seeds-snap-XXXXXX";
    SEED_CHECK(mkdtemp(dir) != NULL);
    struct snap_writer_options wo = { .mode = SNAP_MODE_SYNC, .parts_max = 16 };
    struct snap_writer *w = NULL;
    SEED_CHECK(snap_writer_create(dir, 0, &wo, &w) == 0);
    struct snap_commit_info info;
    for (uint32_t seq = 1; seq <= 2; seq++) { /* the seed is seq 2, as the target names it */
        SEED_CHECK(snap_writer_begin(w, 1) == 0);
        for (uint32_t p = 0; p < SEED_SNAP_PARTS; p++) {
            uint8_t buf[48];
            uint32_t len = 8 + p * 13;
            for (uint32_t i = 0; i < len; i++)
                buf[i] = (uint8_t)(p + i * 3);
            SEED_CHECK(snap_writer_part_begin(w, p * 2, 100 + p, len) == 0);
            SEED_CHECK(snap_writer_write(w, buf, len) == 0);
            SEED_CHECK(snap_writer_part_end(w, 0x1234 + p) == 0);
        }
        SEED_CHECK(snap_writer_commit(w, 1000) == 0);
    }
    SEED_CHECK(snap_writer_last(w, &info) == 0 && info.seq == 2);
    uint8_t *snap;
    size_t slen;
    seed_read(info.path, &snap, &slen);
    snap_writer_destroy(w);

    static struct snap_manifest m;
    uint16_t map[SEED_MANIFEST_PARTS];
    for (uint32_t p = 0; p < SEED_MANIFEST_PARTS; p++)
        map[p] = (uint16_t)(p % 2);
    SEED_CHECK(snap_manifest_init(&m, 1, 2, SEED_MANIFEST_PARTS, map) == 0);
    m.part_lsn[3] = 77;
    SEED_CHECK(snap_manifest_write(dir, &m) == 0);
    char mpath[SEED_PATH_BYTES];
    snprintf(mpath, sizeof(mpath), "%s/MANIFEST", dir);
    uint8_t *man;
    size_t mlen;
    seed_read(mpath, &man, &mlen);

    seed_snap_frame(0, man, mlen, snap, slen, out, "manifest_and_snapshot");
    seed_snap_frame(2, man, mlen, snap, slen, out, "with_older_snapshot");
    seed_snap_frame(1, NULL, 0, snap, slen, out, "snapshot_repair");
    seed_snap_frame(4, man, mlen, NULL, 0, out, "manifest_repair");
    free(snap);
    free(man);
    nftw(dir, seed_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_seeds WAL_CORPUS_DIR SNAP_CORPUS_DIR\n");
        return 2;
    }
    seed_wal(argv[1]);
    seed_snap(argv[2]);
    return 0;
}
