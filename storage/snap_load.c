/*
 * snap_load.c — loading a core's newest valid snapshot (snap.h, loading; the algorithm is
 * RECOVERY ALGORITHM at the top of snap_format.c) and mapping snapshot files read-only.
 */
#include "snap_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sf_io.h"

/* ---- mapping ------------------------------------------------------------------------------ */

int snap_map(const char *path, struct snap_image *im)
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

void snap_unmap(struct snap_image *im)
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
        snap_table_entry(im, i, &e);
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
