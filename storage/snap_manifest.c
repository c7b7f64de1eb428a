/*
 * snap_manifest.c — the MANIFEST file (written tmp -> fdatasync -> rename -> fsync DIR, read
 * whole), its layout and retention floors, the epoch directories and log release (snap.h,
 * MANIFEST, RECOVERY AND EPOCHS). Its bytes are encoded and checked in snap_format.c.
 */
#include "snap_internal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sf_io.h"

/* ---- retention ---------------------------------------------------------------------------- */

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
    snap_manifest_encode(m, buf);
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
        rc = snap_manifest_decode(buf, size, m);
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
