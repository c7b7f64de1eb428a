/*
 * bench_snap — snapshot write bandwidth and the owner's longest call per slice (helper-thread
 * mode and blocking mode), and load speed (validation + delivery, cold and warm cache).
 *
 * The data: 1 GiB (--quick: 64 MiB) of pseudo-random partition bytes in 16 partitions,
 * handed to the writer in slices (1 MiB by default, --slice BYTES). In thread mode a
 * -EAGAIN (every buffer in flight) is what the owner would answer by running a burst: the
 * bench waits 5 us and retries, and counts it. Wall time runs from snap_writer_begin to the
 * poll that reports the snapshot durable (fdatasync, rename, directory fsync included).
 *
 * usage: bench_snap [--quick] [--pin] [--dir DIR] [--slice BYTES]   (DIR: a real disk)
 *   --pin: this thread (the "owner") on CPU 0 and the helper on CPU 1, as in the daemon.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "snap.h"

#define BS_PARTS   16u
#define BS_WAIT_NS 5000u

struct bs_data {
    uint8_t *part[BS_PARTS];
    uint64_t part_bytes;
    uint32_t slice;
    bool pin; /* --pin: this thread on CPU 0, the helper on CPU 1 */
};

struct bs_write_result {
    double wall_s;
    uint64_t slices, eagain;
    double call_us_max, call_us_p99, call_us_p50, io_us_max;
};

static int bs_rm(const char *p, const struct stat *st, int f, struct FTW *ftw)
{
    (void)st, (void)f, (void)ftw;
    return remove(p);
}

static void bs_die(const char *what, int rc)
{
    fprintf(stderr, "bench_snap: %s: %s\n", what, strerror(-rc));
    exit(1);
}

static void bs_wait(double hz)
{
    uint64_t end = bench_tsc() + (uint64_t)(hz * BS_WAIT_NS / 1e9);
    while (bench_tsc() < end)
        _mm_pause();
}

/* One whole snapshot; the measured region covers begin..durable. */
static void bs_write(const char *dir, enum snap_mode mode, const struct bs_data *d, uint64_t epoch,
                     struct bs_write_result *out)
{
    struct snap_writer *w;
    struct snap_writer_options o = { .mode = mode, .parts_max = BS_PARTS };
    cpu_set_t helper;
    if (d->pin) { /* the daemon's layout: owner on its core, helper elsewhere */
        CPU_ZERO(&helper);
        CPU_SET(1, &helper);
        o.helper_cpus = &helper;
    }
    int rc = snap_writer_create(dir, 0, &o, &w);
    if (rc)
        bs_die("create", rc);
    double hz = bench_tsc_hz();
    uint64_t cap = BS_PARTS * (d->part_bytes / d->slice + 1);
    uint64_t *calls = malloc(cap * sizeof(uint64_t));
    uint64_t n = 0, eagain = 0, t0 = bench_mono_ns();
    bench_region_begin();
    if ((rc = snap_writer_begin(w, epoch)) != 0)
        bs_die("begin", rc);
    for (uint32_t p = 0; p < BS_PARTS; p++) {
        if ((rc = snap_writer_part_begin(w, p, 1000 + p, d->part_bytes)) != 0)
            bs_die("part_begin", rc);
        for (uint64_t off = 0; off < d->part_bytes;) {
            uint64_t len = d->part_bytes - off < d->slice ? d->part_bytes - off : d->slice;
            uint64_t c0 = bench_tsc();
            rc = snap_writer_write(w, d->part[p] + off, len);
            uint64_t c1 = bench_tsc();
            if (rc == -EAGAIN) {
                eagain++;
                bs_wait(hz); /* the owner would run a burst here */
                continue;
            }
            if (rc)
                bs_die("write", rc);
            calls[n++] = c1 - c0;
            off += len;
        }
        if ((rc = snap_writer_part_end(w, p)) != 0)
            bs_die("part_end", rc);
    }
    while ((rc = snap_writer_commit(w, UINT64_MAX)) == -EAGAIN) /* queue full */
        bs_wait(hz);
    while (rc == -EINPROGRESS) {
        bs_wait(hz);
        rc = snap_writer_poll(w);
    }
    bench_region_end();
    if (rc)
        bs_die("commit", rc);
    out->wall_s = (double)(bench_mono_ns() - t0) / 1e9;
    qsort(calls, n, sizeof(calls[0]), bench_cmp_u64);
    out->slices = n;
    out->eagain = eagain;
    out->call_us_max = (double)calls[n - 1] * 1e6 / hz;
    out->call_us_p99 = (double)calls[n * 99 / 100] * 1e6 / hz;
    out->call_us_p50 = (double)calls[n / 2] * 1e6 / hz;
    out->io_us_max = (double)snap_writer_io_slice_ns_max(w) / 1e3;
    free(calls);
    snap_writer_destroy(w);
}

/* Baseline on this machine, same conditions: the owner's part of a slice is one memcpy into
 * one of 4 ring buffers; time that alone (p99, max in us) to tell library cost from
 * preemption by other processes. */
static void bs_memcpy_baseline(const struct bs_data *d, uint64_t n, double *p99, double *max)
{
    uint8_t *ring = aligned_alloc(4096, 4ull * SNAP_SLICE_BYTES_MAX);
    memset(ring, 0, 4ull * SNAP_SLICE_BYTES_MAX);
    uint64_t *t = malloc(n * sizeof(uint64_t));
    uint64_t per_part = d->part_bytes / d->slice;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *src = d->part[(i / per_part) % BS_PARTS] + (i % per_part) * d->slice;
        uint64_t c0 = bench_tsc();
        memcpy(ring + (i % 4) * SNAP_SLICE_BYTES_MAX, src, d->slice);
        t[i] = bench_tsc() - c0;
    }
    qsort(t, n, sizeof(t[0]), bench_cmp_u64);
    double hz = bench_tsc_hz();
    *p99 = (double)t[n * 99 / 100] * 1e6 / hz;
    *max = (double)t[n - 1] * 1e6 / hz;
    free(t);
    free(ring);
}

struct bs_load_ctx {
    const struct bs_data *d;
    uint8_t *dst;
    uint64_t bytes;
};

/* A restore copies the bytes into the partition's region: do that copy. */
static int bs_load_cb(void *ctx, uint32_t part_id, uint64_t lsn, const void *bytes, uint64_t len,
                      uint64_t digest)
{
    struct bs_load_ctx *c = ctx;
    if (part_id >= BS_PARTS || len != c->d->part_bytes || lsn != 1000 + part_id ||
        digest != part_id)
        return -EBADMSG;
    memcpy(c->dst, bytes, len);
    c->bytes += len;
    return 0;
}

static void bs_drop_cache(const char *dir, uint64_t epoch)
{
    char cdir[SNAP_PATH_MAX], path[SNAP_PATH_MAX + 64];
    if (snap_core_path(dir, epoch, 0, cdir, sizeof(cdir)) != 0)
        return;
    for (uint64_t seq = 1; seq < 8; seq++) {
        snprintf(path, sizeof(path), "%s/%016llx.snap", cdir, (unsigned long long)seq);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* clean pages: dropped */
        close(fd);
    }
}

static void bs_load(const char *dir, const struct bs_data *d, uint64_t epoch, bool cold)
{
    struct bs_load_ctx c = { .d = d, .dst = malloc(d->part_bytes) };
    memset(c.dst, 1, d->part_bytes);
    if (cold)
        bs_drop_cache(dir, epoch);
    struct snap_load_report rep;
    uint64_t t0 = bench_mono_ns(), c0 = bench_tsc();
    bench_region_begin();
    int rc = snap_load(dir, epoch, 0, bs_load_cb, &c, &rep);
    bench_region_end();
    uint64_t c1 = bench_tsc();
    double s = (double)(bench_mono_ns() - t0) / 1e9;
    if (rc)
        bs_die("load", rc);
    if (c.bytes != BS_PARTS * d->part_bytes || memcmp(c.dst, d->part[BS_PARTS - 1], d->part_bytes))
        bs_die("load delivered wrong bytes", -EBADMSG);
    struct bench_result r = BENCH_RESULT_INIT(cold ? "snap_load_cold" : "snap_load_warm");
    uint64_t slices = c.bytes / d->slice;
    r.events = slices;
    r.events_per_s = (double)slices / s;
    r.cycles_per_event = (double)(c1 - c0) / (double)slices;
    r.restart_s = s;
    char extra[256];
    snprintf(extra, sizeof(extra), "\"mb_per_s\":%.1f,\"bytes\":%llu,\"slice_bytes\":%u",
             (double)c.bytes / s / 1e6, (unsigned long long)c.bytes, d->slice);
    r.extra_json = extra;
    bench_emit(&r);
    free(c.dst);
}

int main(int argc, char **argv)
{
    bool quick = bench_has_flag(argc, argv, "--quick");
    const char *base = "/var/tmp";
    struct bs_data d = { .slice = SNAP_SLICE_BYTES_MAX };
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0)
            base = argv[i + 1];
        if (strcmp(argv[i], "--slice") == 0)
            d.slice = (uint32_t)strtoul(argv[i + 1], NULL, 0);
    }
    d.pin = bench_has_flag(argc, argv, "--pin");
    if (d.pin) {
        cpu_set_t owner;
        CPU_ZERO(&owner);
        CPU_SET(0, &owner);
        if (pthread_setaffinity_np(pthread_self(), sizeof(owner), &owner) != 0)
            bs_die("pin", -EINVAL);
    }
    if (d.slice == 0 || d.slice > SNAP_SLICE_BYTES_MAX)
        bs_die("--slice out of range", -EINVAL);
    d.part_bytes = (quick ? (64ull << 20) : (1ull << 30)) / BS_PARTS;
    for (uint32_t p = 0; p < BS_PARTS; p++) {
        d.part[p] = malloc(d.part_bytes);
        uint64_t x = p + 1;
        for (uint64_t i = 0; i < d.part_bytes; i += 8) { /* incompressible, cheap */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            memcpy(d.part[p] + i, &x, 8);
        }
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/sf-snap-bench-XXXXXX", base);
    if (!mkdtemp(dir))
        bs_die("mkdtemp", -errno);
    static const struct {
        enum snap_mode mode;
        const char *name;
    } modes[] = { { SNAP_MODE_THREAD, "snap_write_thread" },
                  { SNAP_MODE_SYNC, "snap_write_sync" } };
    for (unsigned m = 0; m < 2; m++) {
        struct bs_write_result wr;
        double base_p99, base_max;
        bs_memcpy_baseline(&d, BS_PARTS * (d.part_bytes / d.slice), &base_p99, &base_max);
        bs_write(dir, modes[m].mode, &d, 1, &wr);
        uint64_t bytes = BS_PARTS * d.part_bytes;
        struct bench_result r = BENCH_RESULT_INIT(modes[m].name);
        r.events = wr.slices;
        r.events_per_s = (double)wr.slices / wr.wall_s;
        char extra[640];
        snprintf(extra, sizeof(extra),
                 "\"mb_per_s\":%.1f,\"bytes\":%llu,\"slice_bytes\":%u,"
                 "\"slice_call_us_max\":%.1f,\"slice_call_us_p99\":%.1f,\"slice_call_us_p50\":%.1f,"
                 "\"io_slice_us_max\":%.1f,\"queue_full_retries\":%llu,\"wall_s\":%.3f,"
                 "\"baseline_memcpy_us_p99\":%.1f,\"baseline_memcpy_us_max\":%.1f",
                 (double)bytes / wr.wall_s / 1e6, (unsigned long long)bytes, d.slice,
                 wr.call_us_max, wr.call_us_p99, wr.call_us_p50, wr.io_us_max,
                 (unsigned long long)wr.eagain, wr.wall_s, base_p99, base_max);
        r.extra_json = extra;
        bench_emit(&r);
    }
    bs_load(dir, &d, 1, true);
    bs_load(dir, &d, 1, false);
    nftw(dir, bs_rm, 16, FTW_DEPTH | FTW_PHYS);
    for (uint32_t p = 0; p < BS_PARTS; p++)
        free(d.part[p]);
    return 0;
}
