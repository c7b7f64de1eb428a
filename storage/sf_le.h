/*
 * sf_le.h — little-endian loads and stores for on-disk and on-wire fields. Every format
 * in the project is little-endian; these work at any alignment and on any host. Can't fail.
 */
#ifndef SF_LE_H
#define SF_LE_H

#include <stdint.h>

static inline void sf_le16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline uint16_t sf_le16_get(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline void sf_le32_put(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t sf_le32_get(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void sf_le64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t sf_le64_get(const uint8_t *p)
{
    return (uint64_t)sf_le32_get(p) | (uint64_t)sf_le32_get(p + 4) << 32;
}

#endif /* SF_LE_H */
