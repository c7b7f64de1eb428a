/*
 * sf_crc32c.h — CRC32C (Castagnoli), the one checksum of every sigflow format: WAL segment,
 * batch and record headers (wal_format.h), snapshot files and the MANIFEST (snap_format.c),
 * definition blobs (dataplane/flow/flow_def.c).
 *
 * Polynomial 0x1EDC6F41 (0x82F63B78 reflected), initial value and final xor 0xFFFFFFFF, as
 * in iSCSI (RFC 3720) and the SSE4.2 CRC32 instruction: sf_crc32c(0, "123456789", 9) is
 * 0xE3069283. The bytes on disk depend on exactly this function: tests/storage/test_crc32c
 * pins vectors the three earlier copies produced.
 *
 * Plain C on plain buffers, no dependencies. Built with SSE4.2 (the top meson.build passes
 * -msse4.2 to the whole project) it runs on the CRC32 instruction, 8 bytes per step in one
 * dependency chain and the last 0..7 bytes in at most three steps (4, 2, 1); otherwise on a
 * 256-entry table, a byte per step.
 */
#ifndef SF_CRC32C_H
#define SF_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE4_2__
#include <nmmintrin.h>
#endif

/**
 * The same value as sf_crc32c by table lookups whatever the build (the path of a build
 * without SSE4.2), so that tests can hold the two against each other. Can't fail.
 */
uint32_t sf_crc32c_portable(uint32_t crc, const void *data, size_t len);

/**
 * CRC32C of len bytes at data (any alignment; data may be NULL when len is 0), continuing
 * from crc: 0 to start, and sf_crc32c(sf_crc32c(0, a, n), b, m) is the CRC of a followed by
 * b. Can't fail. Inline, as the WAL's own copy was: a record's CRC covers ~140 bytes, and a
 * call made wal_append 2 % longer in instructions.
 */
static inline uint32_t sf_crc32c(uint32_t crc, const void *data, size_t len)
{
#ifdef __SSE4_2__
    const uint8_t *p = data;
    uint64_t c = (uint32_t)~crc;
    while (len >= 32) { /* one dependency chain; 4 loads per trip keep the loop short */
        uint64_t v[4];
        memcpy(v, p, sizeof(v));
        c = _mm_crc32_u64(c, v[0]);
        c = _mm_crc32_u64(c, v[1]);
        c = _mm_crc32_u64(c, v[2]);
        c = _mm_crc32_u64(c, v[3]);
        p += 32;
        len -= 32;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    if (len & 4) { /* the last 0..7 bytes in at most three steps, not one per byte */
        uint32_t v;
        memcpy(&v, p, 4);
        c32 = _mm_crc32_u32(c32, v);
        p += 4;
    }
    if (len & 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        c32 = _mm_crc32_u16(c32, v);
        p += 2;
    }
    if (len & 1)
        c32 = _mm_crc32_u8(c32, *p);
    return ~c32;
#else
    return sf_crc32c_portable(crc, data, len);
#endif
}

#endif /* SF_CRC32C_H */
