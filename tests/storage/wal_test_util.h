/*
 * wal_test_util.h — helpers shared by the storage tests (static, header only): temp dirs,
 * a deterministic record model (payload derived from the LSN) and a replay checker.
 */
#ifndef SF_WAL_TEST_UTIL_H
#define SF_WAL_TEST_UTIL_H

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

#include "sf_io.h"
#include "wal.h"
#include "wal_format.h"

static uint64_t wt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline char *wt_mkdtemp(void)
{
    char *t = strdup("/tmp/sf-wal-test-XXXXXX");
    if (!t || !mkdtemp(t)) {
        perror("mkdtemp");
        abort();
    }
    return t;
}

static int wt_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void wt_rmtree(char *dir)
{
    nftw(dir, wt_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* The record with LSN @lsn (deterministic, so the checker can rebuild it). */
static uint32_t wt_payload_len(uint64_t lsn, uint32_t max)
{
    return (uint32_t)((lsn * 2654435761u) % (max + 1));
}

static void wt_payload(uint64_t lsn, uint8_t *buf, uint32_t len)
{
    uint64_t x = lsn * 0x9e3779b97f4a7c15ull + 1;
    for (uint32_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}

static struct wal_key wt_key(uint64_t lsn)
{
    return (struct wal_key){ lsn * 3 + 1, ~lsn };
}

/* Append the record for the next LSN (payload up to @max bytes). Returns wal_reserve's rc. */
static inline int wt_append_next(struct wal *w, uint32_t max)
{
    uint8_t buf[4096];
    uint64_t lsn = wal_next_lsn(w);
    uint32_t len = wt_payload_len(lsn, max < sizeof(buf) ? max : sizeof(buf));
    int rc = wal_reserve(w, wal_record_bytes(len));
    if (rc)
        return rc;
    wt_payload(lsn, buf, len);
    uint64_t got =
        wal_append(w, (uint16_t)(lsn % 7), (uint32_t)(lsn % 4096), wt_key(lsn), buf, len);
    if (got != lsn)
        abort();
    return 0;
}

/* Poll until everything appended is durable, or an error / timeout. */
static inline int wt_drain(struct wal *w)
{
    uint64_t t0 = wt_now_ns();
    while (wal_durable_lsn(w) + 1 < wal_next_lsn(w)) {
        int rc = wal_poll(w, wt_now_ns());
        if (rc < 0)
            return rc;
        if (wt_now_ns() - t0 > 20000000000ull)
            return -ETIMEDOUT;
    }
    return 0;
}

/* Replay checker: records must come 1, 2, 3... (or from @first) and match the model. */
struct wt_check {
    uint64_t first; /* expected first LSN (default 1) */
    uint64_t next;  /* next expected LSN */
    uint64_t count;
    uint32_t max;   /* payload max used when writing */
    uint64_t bad;   /* mismatches */
    bool any_start; /* accept any first LSN (older segments released) */
    uint64_t first_seen;
};

static inline int wt_check_cb(void *ctx, const struct wal_record_view *v)
{
    struct wt_check *c = ctx;
    uint8_t buf[4096];
    if (c->next == 0)
        c->next = c->any_start ? v->lsn : c->first ? c->first : 1;
    if (c->count == 0)
        c->first_seen = v->lsn;
    uint32_t len = wt_payload_len(v->lsn, c->max < sizeof(buf) ? c->max : sizeof(buf));
    wt_payload(v->lsn, buf, len);
    struct wal_key k = wt_key(v->lsn);
    if (v->lsn != c->next || v->len != len || memcmp(v->payload, buf, len) != 0 ||
        v->type != v->lsn % 7 || v->partition != v->lsn % 4096 || v->key.hi != k.hi ||
        v->key.lo != k.lo)
        c->bad++, fprintf(stderr, "bad lsn %llu next %llu len %u/%u type %u part %u\n",
                          (unsigned long long)v->lsn, (unsigned long long)c->next, v->len, len,
                          v->type, v->partition);
    c->next = v->lsn + 1;
    c->count++;
    return 0;
}

static inline struct wal_options wt_opts(const char *dir)
{
    return (struct wal_options){
        .dir = dir,
        .core = 0,
        .segment_bytes = 1u << 20,
        .batch_bytes_max = 16u << 10,
        .batch_bytes_cap = 64u << 10,
        .batch_deadline_ns = 20000,
        .inflight_max = 4,
    };
}

static inline void wt_read_file(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        abort();
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc(*len ? *len : 1);
    if (fread(*buf, 1, *len, f) != *len)
        abort();
    fclose(f);
}

static inline void wt_write_file(const char *path, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
        abort();
    close(fd);
}

/* Offsets of the batches of a segment image (up to @max). */
static inline uint32_t wt_batch_offsets(const uint8_t *img, size_t len, uint64_t *offs,
                                        uint32_t max)
{
    uint32_t n = 0;
    for (uint64_t off = WAL_SEGMENT_DATA_OFFSET; off + WAL_HEADER_BYTES <= len && n < max;) {
        struct wal_batch_header h;
        memcpy(&h, img + off, sizeof(h));
        if (h.magic != WAL_BATCH_MAGIC || h.batch_bytes == 0)
            break;
        offs[n++] = off;
        off += h.batch_bytes;
    }
    return n;
}

#endif /* SF_WAL_TEST_UTIL_H */
