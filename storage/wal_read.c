/*
 * wal_read.c — reading single records of a log by location (workflow history).
 *
 * A history walk follows back-links (segment id, byte offset) from record to record, newest
 * first, so it must never scan: one pread of WAL_READ_FIRST bytes at the record's offset
 * holds the 40-byte header and, for the usual small record, the whole payload; a longer
 * record costs one more pread of the rest. The record's own CRC (header + payload) decides
 * validity; the caller checks that it is the record it expects (LSN, key). The file is
 * opened by its segment id: a released segment is gone (-ENOENT) and a recycled one was
 * renamed to a new id, so stale bytes are only ever met inside a file that still carries
 * the expected id — and then the CRC and the caller's LSN check refuse them.
 */
#include "wal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#define WAL_READ_FIRST 512u

static int wal_read_open(const char *dir, uint32_t core, uint64_t segment,
                         struct wal_read_cache *cache, struct sf_io_file **out)
{
    if (cache && cache->file && cache->segment == segment && cache->core == core &&
        strcmp(cache->dir, dir) == 0) {
        *out = cache->file;
        return 0;
    }
    char path[PATH_MAX];
    int rc = wal_segment_path(dir, core, segment, path, sizeof(path));
    if (rc)
        return rc;
    struct sf_io_file *f = NULL;
    rc = sf_io_open(path, O_RDONLY, 0, &f);
    if (rc)
        return rc;
    if (cache) {
        wal_read_close(cache);
        if (strlen(dir) < sizeof(cache->dir)) {
            cache->file = f;
            cache->segment = segment;
            cache->core = core;
            snprintf(cache->dir, sizeof(cache->dir), "%s", dir);
        }
    }
    *out = f;
    return 0;
}

void wal_read_close(struct wal_read_cache *cache)
{
    if (cache && cache->file) {
        sf_io_close(cache->file);
        cache->file = NULL;
    }
}

int wal_read_record(const char *dir, uint32_t core, uint64_t segment, uint64_t offset, void *buf,
                    uint32_t cap, struct wal_record_view *out, struct wal_read_cache *cache)
{
    if (cap < WAL_RECORD_HEADER_BYTES)
        return -EINVAL;
    if (offset < WAL_SEGMENT_DATA_OFFSET + WAL_HEADER_BYTES || offset % 8 != 0)
        return -EBADMSG; /* never a record's place */
    struct sf_io_file *f;
    int rc = wal_read_open(dir, core, segment, cache, &f);
    if (rc)
        return rc;
    uint8_t *b = buf;
    uint32_t first = cap < WAL_READ_FIRST ? cap : WAL_READ_FIRST;
    ssize_t n = sf_io_pread(f, b, first, offset);
    if (n < 0) {
        rc = (int)n;
        goto out;
    }
    struct wal_record_header h;
    if ((size_t)n < sizeof(h)) {
        rc = -EBADMSG;
        goto out;
    }
    memcpy(&h, b, sizeof(h));
    if (h.crc == 0 && h.payload_len == 0 && h.lsn == 0) {
        rc = -EBADMSG; /* zeroed space: never written (or not yet) */
        goto out;
    }
    if (h.payload_len > WAL_PAYLOAD_BYTES_MAX) {
        rc = -EBADMSG;
        goto out;
    }
    uint32_t total = WAL_RECORD_HEADER_BYTES + h.payload_len;
    if (total > cap) {
        rc = -ENOSPC;
        goto out;
    }
    if ((uint32_t)n < total) {
        ssize_t m = sf_io_pread(f, b + n, total - (uint32_t)n, offset + (uint64_t)n);
        if (m < 0) {
            rc = (int)m;
            goto out;
        }
        if ((uint32_t)(n + m) < total) {
            rc = -EBADMSG; /* past the end of the file */
            goto out;
        }
    }
    if (h.crc != wal_record_crc(b, h.payload_len)) {
        rc = -EBADMSG;
        goto out;
    }
    *out = (struct wal_record_view){
        .lsn = h.lsn,
        .segment = segment,
        .offset = offset,
        .type = h.type,
        .partition = h.partition,
        .key = { h.key_hi, h.key_lo },
        .payload = b + WAL_RECORD_HEADER_BYTES,
        .len = h.payload_len,
    };
    rc = 0;
out:
    if (!cache || cache->file != f)
        sf_io_close(f);
    return rc;
}
