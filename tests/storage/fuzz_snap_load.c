/*
 * fuzz_snap_load — libFuzzer target for the snapshot loader and the MANIFEST reader
 * (storage/snap_load.c, snap_manifest.c), the calls the daemon makes at start-up.
 *
 * INPUT FRAMING (little-endian)
 *   byte 0     flags: bit 0 repair the snapshot's checksums (so mutations reach the checks
 *              behind them); bit 1 also place a valid older snapshot (seq 1) next to it, to
 *              exercise the fall-back; bit 2 repair the MANIFEST's checksum
 *   bytes 1-2  M = length of the MANIFEST part (clamped to what is left; 0: no MANIFEST)
 *   then       M bytes: DIR/MANIFEST; the rest: DIR/epoch-1/snap/core-0/seq-2 .snap
 * Files go to a private directory under /dev/shm (or /tmp).
 *
 * ORACLES (a violation aborts, which libFuzzer reports as a crash)
 *   - snap_load returns 0, -ENOENT or -EBADMSG; every partition it hands over lies inside
 *     the file (every byte is read), ids are unique and < SNAP_PARTS_MAX; a load that falls
 *     back to the older snapshot delivers exactly its known contents;
 *   - a MANIFEST that reads back valid is written and read again to the same contents, and
 *     its per-core queries stay in range.
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

#include "sf_crc32c.h"
#include "sf_le.h"
#include "snap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FS_FRAME_BYTES  3u
#define FS_BLOCK        64u
#define FS_PATH_BYTES   512u
#define FS_OLDER_PARTS  3u
#define FS_OLDER_BYTES  100u
#define FS_PARTS_LISTED 16u

#define FS_CHECK(cond)                                                                         \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz_snap_load: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

static char fs_dir[FS_PATH_BYTES];  /* the node directory the input becomes */
static char fs_core[FS_PATH_BYTES]; /* its snap/core-0 of epoch 1 */
static char fs_tmpl[FS_PATH_BYTES]; /* a valid snapshot (seq 1) written once by the library */
static char fs_copy[FS_PATH_BYTES]; /* MANIFEST round trips */
static uint8_t *fs_older;           /* its bytes */
static size_t fs_older_len;

struct fs_seen {
    uint64_t file_bytes;
    uint64_t sum;
    uint32_t parts;
    uint64_t ids[SNAP_PARTS_MAX / 64];
};

static int fs_load_cb(void *ctx, uint32_t part_id, uint64_t lsn, const void *bytes, uint64_t len,
                      uint64_t digest)
{
    struct fs_seen *s = ctx;
    (void)lsn, (void)digest;
    FS_CHECK(part_id < SNAP_PARTS_MAX && !(s->ids[part_id / 64] & (1ull << (part_id % 64))));
    s->ids[part_id / 64] |= 1ull << (part_id % 64);
    FS_CHECK(len <= s->file_bytes && (len == 0 || bytes != NULL));
    const uint8_t *p = bytes;
    for (uint64_t i = 0; i < len; i++)
        s->sum += p[i];
    s->parts++;
    return 0;
}

static void fs_fill(uint32_t part, uint8_t *buf, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(part * 31u + i * 7u + 1u);
}

static void fs_read_all(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    FS_CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc(*len ? *len : 1);
    FS_CHECK(*buf != NULL && fread(*buf, 1, *len, f) == *len);
    fclose(f);
}

/* Write a valid snapshot of FS_OLDER_PARTS partitions with the library, keep its bytes. */
static void fs_make_template(void)
{
    struct snap_writer_options wo = { .mode = SNAP_MODE_SYNC, .parts_max = 16 };
    struct snap_writer *w = NULL;
    FS_CHECK(snap_writer_create(fs_tmpl, 0, &wo, &w) == 0);
    FS_CHECK(snap_writer_begin(w, 1) == 0);
    uint8_t buf[FS_OLDER_BYTES];
    for (uint32_t p = 0; p < FS_OLDER_PARTS; p++) {
        fs_fill(p, buf, sizeof(buf));
        FS_CHECK(snap_writer_part_begin(w, p, 10 + p, sizeof(buf)) == 0);
        FS_CHECK(snap_writer_write(w, buf, sizeof(buf)) == 0);
        FS_CHECK(snap_writer_part_end(w, p) == 0);
    }
    FS_CHECK(snap_writer_commit(w, 100) == 0);
    struct snap_commit_info info;
    FS_CHECK(snap_writer_last(w, &info) == 0 && info.seq == 1);
    fs_read_all(info.path, &fs_older, &fs_older_len);
    snap_writer_destroy(w);
}

static char fs_root[FS_PATH_BYTES]; /* removed at exit */

static int fs_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void fs_cleanup(void)
{
    nftw(fs_root, fs_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void fs_setup(void)
{
    if (fs_dir[0])
        return;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fs_dir, sizeof(fs_dir), "%s/fuzz-snap-XXXXXX", base);
    FS_CHECK(mkdtemp(fs_dir) != NULL);
    snprintf(fs_root, sizeof(fs_root), "%s", fs_dir);
    atexit(fs_cleanup);
    snprintf(fs_tmpl, sizeof(fs_tmpl), "%s/template", fs_dir);
    snprintf(fs_copy, sizeof(fs_copy), "%s/copy", fs_dir);
    FS_CHECK(mkdir(fs_tmpl, 0755) == 0 && mkdir(fs_copy, 0755) == 0);
    snprintf(fs_dir + strlen(fs_dir), sizeof(fs_dir) - strlen(fs_dir), "/node");
    FS_CHECK(mkdir(fs_dir, 0755) == 0);
    FS_CHECK(snap_core_path(fs_dir, 1, 0, fs_core, sizeof(fs_core)) == 0);
    char p[FS_PATH_BYTES + 16];
    snprintf(p, sizeof(p), "%s/epoch-%016x", fs_dir, 1);
    FS_CHECK(mkdir(p, 0755) == 0);
    snprintf(p + strlen(p), sizeof(p) - strlen(p), "/snap");
    FS_CHECK(mkdir(p, 0755) == 0 && mkdir(fs_core, 0755) == 0);
    fs_make_template();
}

static void fs_write(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
    char path[2 * FS_PATH_BYTES];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FS_CHECK(fd >= 0);
    FS_CHECK(write(fd, buf, len) == (ssize_t)len);
    close(fd);
}

static void fs_unlink(const char *dir, const char *name)
{
    char path[2 * FS_PATH_BYTES];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

static uint32_t fs_block_crc(const uint8_t *block)
{
    uint8_t tmp[FS_BLOCK];
    memcpy(tmp, block, FS_BLOCK);
    memset(tmp + 4, 0, 4);
    return sf_crc32c(0, tmp, FS_BLOCK);
}

/* Recompute every checksum of a snapshot image that its footer makes findable: data and
 * section crcs (table entry and in-place copy), table crc, footer, header. */
static void fs_repair_snapshot(uint8_t *img, size_t len)
{
    if (len < 2 * FS_BLOCK)
        return;
    uint8_t *foot = img + len - FS_BLOCK;
    uint32_t parts = sf_le32_get(foot + 8);
    uint64_t table = sf_le64_get(foot + 16);
    if (table <= len - FS_BLOCK && parts <= (len - FS_BLOCK - table) / FS_BLOCK) {
        for (uint32_t i = 0; i < parts; i++) {
            uint8_t *e = img + table + (uint64_t)i * FS_BLOCK;
            uint64_t off = sf_le64_get(e + 24), bytes = sf_le64_get(e + 32);
            if (off <= len && bytes <= len - off)
                sf_le32_put(e + 48, sf_crc32c(0, img + off, bytes));
            sf_le32_put(e + 4, fs_block_crc(e));
            if (off >= FS_BLOCK && off <= table)
                memcpy(img + off - FS_BLOCK, e, FS_BLOCK);
        }
        sf_le32_put(foot + 12, sf_crc32c(0, img + table, (uint64_t)parts * FS_BLOCK));
    }
    sf_le32_put(foot + 4, fs_block_crc(foot));
    sf_le32_put(img + 4, fs_block_crc(img));
}

static void fs_repair_manifest(uint8_t *img, size_t len)
{
    if (len < FS_BLOCK)
        return;
    sf_le32_put(img + 4, 0);
    sf_le32_put(img + 4, sf_crc32c(0, img, len));
}

static void fs_manifest(void)
{
    static struct snap_manifest m, again;
    int rc = snap_manifest_read(fs_dir, &m);
    FS_CHECK(rc == 0 || rc == -ENOENT || rc == -EBADMSG);
    if (rc != 0)
        return;
    FS_CHECK(m.epoch >= 1 && m.cores >= 1 && m.cores <= SNAP_CORES_MAX && m.parts >= 1 &&
             m.parts <= SNAP_PARTS_MAX);
    uint32_t listed[FS_PARTS_LISTED];
    uint64_t total = 0;
    for (uint32_t c = 0; c < m.cores && c < 4; c++) {
        uint32_t n = snap_manifest_core_parts(&m, c, listed, FS_PARTS_LISTED);
        for (uint32_t i = 0; i < n && i < FS_PARTS_LISTED; i++) {
            FS_CHECK(listed[i] < m.parts && m.part_core[listed[i]] == c);
            FS_CHECK(snap_manifest_check_loaded(&m, listed[i], c, m.part_lsn[listed[i]]) == 0);
        }
        total += n;
        (void)snap_manifest_core_release_lsn(&m, c);
    }
    FS_CHECK(total <= m.parts);
    FS_CHECK(snap_manifest_write(fs_copy, &m) == 0);
    FS_CHECK(snap_manifest_read(fs_copy, &again) == 0);
    FS_CHECK(again.epoch == m.epoch && again.cores == m.cores && again.parts == m.parts &&
             again.created_ns == m.created_ns);
    FS_CHECK(memcmp(again.part_core, m.part_core, m.parts * sizeof(m.part_core[0])) == 0);
    FS_CHECK(memcmp(again.part_lsn, m.part_lsn, m.parts * sizeof(m.part_lsn[0])) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FS_FRAME_BYTES)
        return 0;
    fs_setup();
    uint8_t flags = data[0];
    size_t mlen = sf_le16_get(data + 1);
    size_t left = size - FS_FRAME_BYTES;
    if (mlen > left)
        mlen = left;
    const uint8_t *man = data + FS_FRAME_BYTES, *snap = man + mlen;
    size_t slen = left - mlen;

    uint8_t *img = malloc(mlen + slen + 1);
    FS_CHECK(img != NULL);
    memcpy(img, man, mlen);
    if (flags & 4u)
        fs_repair_manifest(img, mlen);
    if (mlen > 0)
        fs_write(fs_dir, "MANIFEST", img, mlen);
    else
        fs_unlink(fs_dir, "MANIFEST");
    memcpy(img, snap, slen);
    if (flags & 1u)
        fs_repair_snapshot(img, slen);
    fs_write(fs_core, "0000000000000002.snap", img, slen);
    if (flags & 2u)
        fs_write(fs_core, "0000000000000001.snap", fs_older, fs_older_len);
    else
        fs_unlink(fs_core, "0000000000000001.snap");
    free(img);

    uint64_t biggest = slen > fs_older_len ? slen : fs_older_len;
    struct fs_seen *seen = calloc(1, sizeof(*seen));
    FS_CHECK(seen != NULL);
    seen->file_bytes = biggest;
    struct snap_load_report rep;
    int rc = snap_load(fs_dir, 1, 0, fs_load_cb, seen, &rep);
    FS_CHECK(rc == 0 || rc == -EBADMSG || rc == -ENOENT);
    if (rc == 0 && rep.seq == 1) { /* fell back: the template, exactly */
        FS_CHECK((flags & 2u) && rep.fell_back && seen->parts == FS_OLDER_PARTS);
        uint64_t want = 0;
        uint8_t buf[FS_OLDER_BYTES];
        for (uint32_t p = 0; p < FS_OLDER_PARTS; p++) {
            fs_fill(p, buf, sizeof(buf));
            for (uint32_t i = 0; i < sizeof(buf); i++)
                want += buf[i];
        }
        FS_CHECK(seen->sum == want);
    }
    if (rc == 0)
        FS_CHECK(rep.parts == seen->parts && (rep.seq == 1 || rep.seq == 2));
    if (rc == -EBADMSG)
        FS_CHECK(rep.rejected_count >= 1);
    free(seen);
    fs_manifest();
    return 0;
}
