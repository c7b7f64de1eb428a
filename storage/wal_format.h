/*
 * wal_format.h — on-disk structures of the write-ahead log (layout described in wal.c).
 * Internal to storage/ and its tests. All integers little-endian (x86-64 native).
 */
#ifndef SF_WAL_FORMAT_H
#define SF_WAL_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sf_crc32c.h"
#include "wal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the WAL format is little-endian");

#define WAL_SEGMENT_MAGIC       0x53574653u /* "SFWS" */
#define WAL_BATCH_MAGIC         0x42574653u /* "SFWB" */
#define WAL_FORMAT_VERSION      1u
#define WAL_HEADER_BYTES        64u /* segment and batch headers */
#define WAL_SEGMENT_DATA_OFFSET WAL_BLOCK_BYTES

/** Block 0 of a segment file (rest of the block zero). crc covers the 64 bytes with crc=0. */
struct wal_segment_header {
    uint32_t magic;
    uint32_t crc;
    uint16_t version;
    uint16_t reserved0;
    uint32_t core;
    uint64_t segment_id;
    uint64_t generation; /* 1 when created, +1 each time the file is recycled */
    uint64_t segment_bytes;
    uint8_t reserved1[24];
};

/** First 64 bytes of a batch (at a block boundary). crc covers the 64 bytes with crc=0. */
struct wal_batch_header {
    uint32_t magic;
    uint32_t crc;
    uint64_t segment_id; /* must equal the segment's */
    uint64_t generation; /* must equal the segment's */
    uint64_t seq;        /* batch number in the log, +1 per batch */
    uint64_t first_lsn;
    uint64_t last_lsn;        /* first_lsn + record_count - 1 */
    uint32_t record_count;    /* >= 1 */
    uint32_t body_bytes;      /* bytes of records after this header */
    uint32_t batch_bytes;     /* header + body rounded up to WAL_BLOCK_BYTES */
    uint16_t inflight_window; /* batches that could be in flight when it was written */
    uint16_t version;
};

/** Record header; payload follows; record padded to 8 bytes with zeros.
 *  crc covers bytes [4, WAL_RECORD_HEADER_BYTES + payload_len). */
struct wal_record_header {
    uint32_t crc;
    uint32_t payload_len;
    uint64_t lsn;
    uint64_t key_hi;
    uint64_t key_lo;
    uint16_t type;
    uint16_t flags; /* 0 */
    uint32_t partition;
};

_Static_assert(sizeof(struct wal_segment_header) == WAL_HEADER_BYTES, "segment header size");
_Static_assert(sizeof(struct wal_batch_header) == WAL_HEADER_BYTES, "batch header size");
_Static_assert(sizeof(struct wal_record_header) == WAL_RECORD_HEADER_BYTES, "record size");
_Static_assert((WAL_BLOCK_BYTES & (WAL_BLOCK_BYTES - 1)) == 0, "block is a power of two");
_Static_assert(WAL_INFLIGHT_LIMIT <= 0xffff, "inflight_window is 16 bits");

/** CRC of a 64-byte header whose crc field sits at bytes 4..7. */
static inline uint32_t wal_header_crc(const void *header)
{
    uint8_t tmp[WAL_HEADER_BYTES];
    memcpy(tmp, header, WAL_HEADER_BYTES);
    memset(tmp + 4, 0, 4);
    return sf_crc32c(0, tmp, WAL_HEADER_BYTES);
}

/** CRC of a record (header + payload) as stored in its crc field. */
static inline uint32_t wal_record_crc(const void *record, uint32_t payload_len)
{
    return sf_crc32c(0, (const uint8_t *)record + 4, WAL_RECORD_HEADER_BYTES - 4 + payload_len);
}

static inline uint64_t wal_round_up(uint64_t v, uint64_t to)
{
    return (v + to - 1) / to * to;
}

#endif /* SF_WAL_FORMAT_H */
