/*
 * sf_le.h — little-endian loads and stores, the one set for every format that is read or
 * written a field at a time: frames and ACKs (dataplane/proto), the daemon's log records
 * (dp_record.c), snapshot metadata (dp_snap.c), and the tests and fuzzers that build or
 * patch such bytes by hand. Every format in the project is little-endian.
 *
 * Each load and store goes through memcpy, so it works at any alignment and no pointer into
 * a buffer is ever cast to a wider type (UBSan flags that, some CPUs fault); compilers turn
 * each into one unaligned move, plus a byte swap on a big-endian host. Header only, no
 * dependencies (tests/storage/test_le pins the byte layout). None of these can fail.
 */
#ifndef SF_LE_H
#define SF_LE_H

#include <stdint.h>
#include <string.h>

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SF_LE_HOST16(v) (v)
#define SF_LE_HOST32(v) (v)
#define SF_LE_HOST64(v) (v)
#elif __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define SF_LE_HOST16(v) __builtin_bswap16(v)
#define SF_LE_HOST32(v) __builtin_bswap32(v)
#define SF_LE_HOST64(v) __builtin_bswap64(v)
#else
#error "sf_le.h: unknown byte order"
#endif

static inline void sf_le16_put(uint8_t *p, uint16_t v)
{
    v = SF_LE_HOST16(v);
    memcpy(p, &v, sizeof(v));
}

static inline uint16_t sf_le16_get(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return SF_LE_HOST16(v);
}

static inline void sf_le32_put(uint8_t *p, uint32_t v)
{
    v = SF_LE_HOST32(v);
    memcpy(p, &v, sizeof(v));
}

static inline uint32_t sf_le32_get(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return SF_LE_HOST32(v);
}

static inline void sf_le64_put(uint8_t *p, uint64_t v)
{
    v = SF_LE_HOST64(v);
    memcpy(p, &v, sizeof(v));
}

static inline uint64_t sf_le64_get(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return SF_LE_HOST64(v);
}

#endif /* SF_LE_H */
