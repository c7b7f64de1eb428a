/*
 * test_snap_util.h — helpers of the snapshot tests (static, header only): temp dirs under
 * /var/tmp (real disk), deterministic partition contents, a snapshot writer loop with
 * random slice sizes, and a load checker that compares every byte.
 */
#ifndef SF_TEST_SNAP_UTIL_H
#define SF_TEST_SNAP_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snap.h"

#define ST_PARTS_MAX 512u

static inline char *st_mkdtemp(void)
{
    char *t = strdup("/var/tmp/sf-snap-test-XXXXXX");
    if (!t || !mkdtemp(t)) {
        perror("mkdtemp");
        abort();
    }
    return t;
}

static inline int st_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void st_rmtree(char *dir)
{
    nftw(dir, st_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static inline uint64_t st_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The region bytes of partition `part` in generation `gen` (deterministic). */
static inline void st_fill(uint32_t part, uint32_t gen, uint8_t *buf, uint64_t len)
{
    uint64_t s = st_mix((uint64_t)part << 32 | gen);
    for (uint64_t i = 0; i < len; i += 8) {
        s = st_mix(s);
        uint64_t n = len - i < 8 ? len - i : 8;
        memcpy(buf + i, &s, n);
    }
}

static inline uint64_t st_lsn(uint32_t part, uint32_t gen)
{
    return (uint64_t)gen * 1000000u + part * 7u + 1u;
}

static inline uint64_t st_digest(uint32_t part, uint32_t gen)
{
    return st_mix(st_mix(part) ^ gen);
}

/* One snapshot description: partition ids and sizes, contents of generation gen. */
struct st_snap {
    uint32_t n;
    uint32_t ids[ST_PARTS_MAX];
    uint64_t sizes[ST_PARTS_MAX];
    uint32_t gen;
};

/* Write s as a snapshot with random slice sizes (seeded); drives thread mode with polls.
 * Returns the commit's result (0 or -errno). */
static inline int st_write(struct snap_writer *w, uint64_t epoch, const struct st_snap *s,
                           uint64_t seed)
{
    int rc = snap_writer_begin(w, epoch);
    if (rc)
        return rc;
    uint64_t biggest = 1;
    for (uint32_t i = 0; i < s->n; i++)
        biggest = s->sizes[i] > biggest ? s->sizes[i] : biggest;
    uint8_t *buf = malloc(biggest);
    if (!buf)
        abort();
    uint64_t r = seed;
    for (uint32_t i = 0; i < s->n; i++) {
        uint32_t p = s->ids[i];
        st_fill(p, s->gen, buf, s->sizes[i]);
        rc = snap_writer_part_begin(w, p, st_lsn(p, s->gen), s->sizes[i]);
        if (rc)
            goto out;
        for (uint64_t off = 0; off < s->sizes[i];) {
            r = st_mix(r);
            uint64_t n = 1 + r % (r & 1 ? 4096 : SNAP_SLICE_BYTES_MAX);
            n = n > s->sizes[i] - off ? s->sizes[i] - off : n;
            rc = snap_writer_write(w, buf + off, n);
            if (rc == -EAGAIN) {
                sched_yield();
                continue;
            }
            if (rc)
                goto out;
            off += n;
        }
        rc = snap_writer_part_end(w, st_digest(p, s->gen));
        if (rc)
            goto out;
    }
    while ((rc = snap_writer_commit(w, UINT64_MAX)) == -EAGAIN)
        sched_yield();
    while (rc == -EINPROGRESS) {
        sched_yield();
        rc = snap_writer_poll(w);
    }
out:
    free(buf);
    return rc;
}

/* Load checker: every callback must match s byte for byte, in order. */
struct st_check {
    const struct st_snap *s;
    uint32_t calls;
    uint32_t mismatches;
    uint8_t *scratch;
};

static inline int st_check_cb(void *ctx, uint32_t part_id, uint64_t lsn, const void *bytes,
                              uint64_t len, uint64_t digest)
{
    struct st_check *c = ctx;
    uint32_t i = c->calls++;
    if (i >= c->s->n || c->s->ids[i] != part_id || c->s->sizes[i] != len ||
        lsn != st_lsn(part_id, c->s->gen) || digest != st_digest(part_id, c->s->gen)) {
        c->mismatches++;
        return 0;
    }
    c->scratch = realloc(c->scratch, len ? len : 1);
    st_fill(part_id, c->s->gen, c->scratch, len);
    if (memcmp(c->scratch, bytes, len) != 0)
        c->mismatches++;
    return 0;
}

/* Load and compare with s: returns snap_load's result; *ok = all partitions matched. */
static inline int st_load_check(const char *dir, uint64_t epoch, uint32_t core,
                                const struct st_snap *s, struct snap_load_report *rep, bool *ok)
{
    struct st_check c = { .s = s };
    int rc = snap_load(dir, epoch, core, st_check_cb, &c, rep);
    *ok = rc == 0 && c.calls == s->n && c.mismatches == 0;
    free(c.scratch);
    return rc;
}

/* Counts callbacks (for loads that must not call back). */
static inline int st_count_cb(void *ctx, uint32_t part_id, uint64_t lsn, const void *bytes,
                              uint64_t len, uint64_t digest)
{
    (void)part_id, (void)lsn, (void)bytes, (void)len, (void)digest;
    (*(uint32_t *)ctx)++;
    return 0;
}

static inline void st_path(const char *dir, uint64_t epoch, uint32_t core, uint64_t seq, char *buf,
                           size_t cap)
{
    char cdir[SNAP_PATH_MAX];
    if (snap_core_path(dir, epoch, core, cdir, sizeof(cdir)) != 0)
        abort();
    snprintf(buf, cap, "%s/%016llx.snap", cdir, (unsigned long long)seq);
}

static inline uint8_t *st_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n)
        abort();
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Overwrite in place and cut to len (no O_TRUNC: ext4 would flush a truncated-and-rewritten
 * file at close, which makes thousands of rewrites slow). */
static inline void st_write_file(const char *path, const uint8_t *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0 || pwrite(fd, b, len, 0) != (ssize_t)len || ftruncate(fd, (off_t)len) != 0)
        abort();
    close(fd);
}

#endif /* SF_TEST_SNAP_UTIL_H */
