/*
 * bench_wal — write-ahead log: append throughput against the raw sequential write+fdatasync
 * speed of the same disk (same run), commit latency (append -> durable) under a paced load,
 * replay speed; buffered and O_DIRECT.
 *
 * usage: bench_wal [--quick] [--dir DIR]   (DIR must be on a real disk, default /var/tmp)
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "bench.h"
#include "wal.h"

#define BW_PAYLOAD     100u
#define BW_TMPFS_MAGIC 0x01021994
#define BW_CHUNK       (1u << 20)
#define BW_LAT_RING    (1u << 22)

struct bw_cfg {
    bool quick;
    bool direct;
    const char *base;
    uint64_t segment_bytes;
    uint64_t bytes; /* measured volume */
};

static int bw_rm(const char *p, const struct stat *st, int f, struct FTW *ftw)
{
    (void)st, (void)f, (void)ftw;
    return remove(p);
}

static char *bw_mkdir(const char *base, const char *tag)
{
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/sf-wal-bench-%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        exit(1);
    }
    return p;
}

/* Raw: overwrite a pre-zeroed file sequentially in 1 MiB writes; one fdatasync per
 * @sync_every bytes. Returns bytes/s. */
static double bw_raw(const struct bw_cfg *c, uint64_t sync_every)
{
    char *dir = bw_mkdir(c->base, "raw");
    char path[4200];
    snprintf(path, sizeof(path), "%s/raw", dir);
    int fd = open(path, O_RDWR | O_CREAT | (c->direct ? O_DIRECT : 0), 0644);
    void *buf;
    if (fd < 0 || posix_memalign(&buf, 4096, BW_CHUNK))
        exit(1);
    memset(buf, 0, BW_CHUNK);
    for (uint64_t off = 0; off < c->bytes; off += BW_CHUNK)
        if (pwrite(fd, buf, BW_CHUNK, (off_t)off) != BW_CHUNK)
            exit(1);
    fdatasync(fd);
    memset(buf, 0x5a, BW_CHUNK);
    uint64_t t0 = bench_mono_ns();
    for (uint64_t off = 0; off < c->bytes; off += BW_CHUNK) {
        if (pwrite(fd, buf, BW_CHUNK, (off_t)off) != BW_CHUNK)
            exit(1);
        if ((off + BW_CHUNK) % sync_every == 0)
            fdatasync(fd);
    }
    fdatasync(fd);
    double s = (double)(bench_mono_ns() - t0) / 1e9;
    close(fd);
    free(buf);
    nftw(dir, bw_rm, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
    return (double)c->bytes / s;
}

static struct wal *bw_open(const struct bw_cfg *c, const char *dir)
{
    struct wal_options o = {
        .dir = dir,
        .segment_bytes = c->segment_bytes,
        .direct_io = c->direct,
    };
    struct wal *w = NULL;
    int rc = wal_recover(&o, NULL, NULL, 0, NULL, &w);
    if (rc) {
        fprintf(stderr, "wal_recover: %s\n", strerror(-rc));
        exit(1);
    }
    return w;
}

/* Append as fast as the log takes it until @bytes of records are durable. */
static uint64_t bw_fill(struct wal *w, uint64_t bytes, bool release)
{
    static uint8_t payload[BW_PAYLOAD];
    uint64_t target = bytes / wal_record_bytes(BW_PAYLOAD), n = 0;
    uint64_t start = wal_next_lsn(w);
    while (wal_durable_lsn(w) + 1 < start + target) {
        for (int k = 0; k < 64 && n < target; k++) {
            if (wal_reserve(w, wal_record_bytes(BW_PAYLOAD)) != 0)
                break;
            wal_append(w, 1, (uint32_t)n & 4095, (struct wal_key){ n, n }, payload, BW_PAYLOAD);
            n++;
        }
        int rc = wal_poll(w, bench_mono_ns());
        if (rc < 0) {
            fprintf(stderr, "wal_poll: %s\n", strerror(-rc));
            exit(1);
        }
        if (release && rc > 0)
            wal_release_before(w, wal_durable_lsn(w) + 1);
    }
    return target;
}

static void bw_throughput(const struct bw_cfg *c, double raw_bps, double raw_chunked_bps)
{
    char *dir = bw_mkdir(c->base, c->direct ? "direct" : "buffered");
    struct wal *w = bw_open(c, dir);
    /* warm-up: fill and release a few segments, so the measured run writes into recycled
     * segments (the steady state); the pre-zeroing of fresh segments is measured apart */
    uint64_t t0 = bench_mono_ns();
    uint64_t warm = bw_fill(w, 5 * c->segment_bytes, true);
    double warm_s = (double)(bench_mono_ns() - t0) / 1e9;
    struct wal_stats s0, s1;
    wal_get_stats(w, &s0);
    bench_region_begin();
    uint64_t c0 = bench_tsc();
    t0 = bench_mono_ns();
    uint64_t n = bw_fill(w, c->bytes, true);
    double sec = (double)(bench_mono_ns() - t0) / 1e9;
    uint64_t cycles = bench_tsc() - c0;
    bench_region_end();
    wal_get_stats(w, &s1);
    wal_close(w);
    double bps = (double)(s1.bytes_written - s0.bytes_written) / sec;
    char extra[512];
    snprintf(extra, sizeof(extra),
             "\"payload_bytes\":%u,\"gb_per_s\":%.4f,\"raw_gb_per_s\":%.4f,"
             "\"ratio_to_raw\":%.3f,\"raw_sync_per_mib_gb_per_s\":%.4f,\"batches\":%llu,"
             "\"avg_batch_kib\":%.1f,\"fresh_segments_records_per_s\":%.0f,"
             "\"segments_recycled\":%llu,\"direct_io\":%s",
             BW_PAYLOAD, bps / 1e9, raw_bps / 1e9, bps / raw_bps, raw_chunked_bps / 1e9,
             (unsigned long long)(s1.batches - s0.batches),
             (double)(s1.bytes_written - s0.bytes_written) / 1024.0 /
                 (double)(s1.batches - s0.batches),
             (double)warm / warm_s, (unsigned long long)s1.segments_recycled,
             c->direct ? "true" : "false");
    struct bench_result r = BENCH_RESULT_INIT(c->direct ? "wal_append_direct" : "wal_append");
    r.events_per_s = (double)n / sec;
    r.cycles_per_event = (double)cycles / (double)n;
    r.events = n;
    r.extra_json = extra;
    bench_emit(&r);

    nftw(dir, bw_rm, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static int bw_replay_cb(void *ctx, const struct wal_record_view *v)
{
    *(uint64_t *)ctx += v->lsn ^ ((const uint8_t *)v->payload)[0];
    return 0;
}

/* Replay speed: a log of @records records, recovered read-only (page cache warm). */
static void bw_replay(const struct bw_cfg *c, uint64_t records)
{
    char *dir = bw_mkdir(c->base, "replay");
    struct wal *w = bw_open(c, dir);
    bw_fill(w, records * wal_record_bytes(BW_PAYLOAD), false);
    wal_close(w);
    struct wal_options o = { .dir = dir, .segment_bytes = c->segment_bytes };
    struct wal_recover_report rep;
    uint64_t sum = 0;
    bench_region_begin();
    uint64_t r0 = bench_tsc(), t0 = bench_mono_ns();
    int rc = wal_recover(&o, bw_replay_cb, &sum, WAL_RECOVER_READ_ONLY, &rep, NULL);
    double sec = (double)(bench_mono_ns() - t0) / 1e9;
    uint64_t cycles = bench_tsc() - r0;
    bench_region_end();
    if (rc == 0) {
        struct bench_result rr = BENCH_RESULT_INIT("wal_replay");
        rr.events_per_s = (double)rep.records / sec;
        rr.cycles_per_event = (double)cycles / (double)rep.records;
        rr.events = rep.records;
        rr.restart_s = sec;
        char ex[160];
        snprintf(ex, sizeof(ex), "\"payload_bytes\":%u,\"page_cache\":\"warm\",\"segments\":%u",
                 BW_PAYLOAD, rep.segments);
        rr.extra_json = ex;
        bench_emit(&rr);
    }
    nftw(dir, bw_rm, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* Paced load: @rate records/s for @sec; latency append -> durable per record. */
static void bw_latency(const struct bw_cfg *c, double rate, double sec, uint64_t deadline_ns)
{
    char *dir = bw_mkdir(c->base, "lat");
    struct wal *w = bw_open(c, dir);
    wal_set_batch_deadline_ns(w, deadline_ns);
    bw_fill(w, 3 * c->segment_bytes, true); /* recycled segments ready */
    static uint8_t payload[BW_PAYLOAD];
    uint64_t *sent = calloc(BW_LAT_RING, sizeof(uint64_t));
    uint64_t *lat = calloc(BW_LAT_RING, sizeof(uint64_t));
    uint64_t nlat = 0, overloaded = 0;
    uint64_t base = wal_next_lsn(w), done = wal_durable_lsn(w);
    uint64_t t0 = bench_mono_ns(), end = t0 + (uint64_t)(sec * 1e9), n = 0;
    for (uint64_t now = t0; now < end || wal_durable_lsn(w) + 1 < wal_next_lsn(w);
         now = bench_mono_ns()) {
        uint64_t due = (uint64_t)((double)(now - t0) * rate / 1e9);
        while (now < end && n < due && n < BW_LAT_RING) {
            if (wal_reserve(w, wal_record_bytes(BW_PAYLOAD)) != 0) {
                overloaded++;
                n++; /* refused: the sender would get "overloaded" */
                continue;
            }
            uint64_t lsn = wal_append(w, 1, 0, (struct wal_key){ n, n }, payload, BW_PAYLOAD);
            sent[(lsn - base) % BW_LAT_RING] = bench_mono_ns();
            n++;
        }
        if (wal_poll(w, bench_mono_ns()) < 0)
            exit(1);
        uint64_t d = wal_durable_lsn(w), t = bench_mono_ns();
        for (; done < d; done++)
            if (done + 1 >= base && nlat < BW_LAT_RING)
                lat[nlat++] = t - sent[(done + 1 - base) % BW_LAT_RING];
    }
    wal_close(w);
    qsort(lat, nlat, sizeof(uint64_t), bench_cmp_u64);
    struct bench_result r =
        BENCH_RESULT_INIT(c->direct ? "wal_commit_latency_direct" : "wal_commit_latency");
    r.events_per_s = (double)nlat / sec;
    r.events = nlat;
    r.ack_p50_us = nlat ? (double)lat[nlat / 2] / 1e3 : NAN;
    r.ack_p99_us = nlat ? (double)lat[nlat * 99 / 100] / 1e3 : NAN;
    r.ack_p999_us = nlat ? (double)lat[nlat * 999 / 1000] / 1e3 : NAN;
    char extra[256];
    snprintf(extra, sizeof(extra),
             "\"offered_records_per_s\":%.0f,\"batch_deadline_us\":%.1f,\"inflight_max\":4,"
             "\"overloaded\":%llu,\"payload_bytes\":%u,\"direct_io\":%s",
             rate, (double)deadline_ns / 1e3, (unsigned long long)overloaded, BW_PAYLOAD,
             c->direct ? "true" : "false");
    r.extra_json = extra;
    bench_emit(&r);
    free(sent);
    free(lat);
    nftw(dir, bw_rm, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* One 4 KiB write + fdatasync, repeated: the device's sync latency. */
static double bw_fsync_p50_us(const struct bw_cfg *c)
{
    char *dir = bw_mkdir(c->base, "fsync");
    char path[4200];
    snprintf(path, sizeof(path), "%s/f", dir);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    static uint8_t blk[4096];
    uint64_t lat[200];
    for (int i = 0; i < 200; i++) {
        if (pwrite(fd, blk, sizeof(blk), 0) != sizeof(blk)) /* allocate once */
            exit(1);
    }
    fdatasync(fd);
    for (int i = 0; i < 200; i++) {
        uint64_t t = bench_mono_ns();
        if (pwrite(fd, blk, sizeof(blk), 0) != sizeof(blk))
            exit(1);
        fdatasync(fd);
        lat[i] = bench_mono_ns() - t;
    }
    close(fd);
    nftw(dir, bw_rm, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
    qsort(lat, 200, sizeof(uint64_t), bench_cmp_u64);
    return (double)lat[100] / 1e3;
}

int main(int argc, char **argv)
{
    struct bw_cfg c = { .quick = bench_has_flag(argc, argv, "--quick"), .base = "/var/tmp" };
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--dir") == 0)
            c.base = argv[i + 1];
    struct statfs sf;
    if (statfs(c.base, &sf) == 0 && sf.f_type == BW_TMPFS_MAGIC)
        fprintf(stderr, "bench_wal: warning: %s is tmpfs, fdatasync is free there\n", c.base);
    c.segment_bytes = c.quick ? (8ull << 20) : (32ull << 20);
    c.bytes = c.quick ? (32ull << 20) : (256ull << 20);
    double fsync_us = bw_fsync_p50_us(&c);
    fprintf(stderr, "bench_wal: 4 KiB write+fdatasync p50 %.1f us\n", fsync_us);
    for (int d = 0; d < 2; d++) {
        c.direct = d == 1;
        double raw = bw_raw(&c, c.bytes);
        double raw_mib = bw_raw(&c, BW_CHUNK);
        bw_throughput(&c, raw, raw_mib);
        bw_latency(&c, c.quick ? 100000 : 200000, c.quick ? 0.5 : 3.0, 100000);
    }
    c.direct = false;
    bw_replay(&c, c.quick ? 300000 : 2000000);
    return 0;
}
