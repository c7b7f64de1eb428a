/*
 * sf_proto_internal.h — helpers shared by the protocol's .c files (not installed, not part
 * of the API). Byte order is explicit: frames and ACKs are little-endian, CBOR is
 * big-endian. Loads and stores go through memcpy so that no pointer into a packet is ever
 * cast to a wider type; compilers turn them into single unaligned moves.
 */
#ifndef SF_PROTO_INTERNAL_H
#define SF_PROTO_INTERNAL_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t sf_ld_le16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return le16toh(v);
}

static inline uint32_t sf_ld_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

static inline uint64_t sf_ld_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

static inline void sf_st_le16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, sizeof(v));
}

static inline void sf_st_le32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof(v));
}

static inline void sf_st_le64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof(v));
}

static inline uint16_t sf_ld_be16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return be16toh(v);
}

static inline uint32_t sf_ld_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return be32toh(v);
}

static inline uint64_t sf_ld_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return be64toh(v);
}

/* Frame header field offsets (version 1), shared by the frame and ACK code. */
enum {
    SF_OFF_MAGIC = 0,
    SF_OFF_VERSION = 2,
    SF_OFF_FLAGS = 3,
    SF_OFF_SENDER_ID = 4,
    SF_OFF_FRAME_SEQ = 8,
    SF_OFF_COUNT = 16,
    SF_OFF_HDR_LEN = 18,
    SF_OFF_AUTH_KEY_ID = 20, /* data frames */
    SF_OFF_AUTH_COUNTER = 24,
    SF_OFF_ACK_OWNER = 20, /* ACK datagrams */
    SF_OFF_ACK_RESERVED = 22,
    SF_OFF_ACK_LSN = 24,
};

/* Event header field offsets. */
enum {
    SF_EV_OFF_LEN = 0,
    SF_EV_OFF_TYPE_LEN = 2,
    SF_EV_OFF_ID_LEN = 3,
    SF_EV_OFF_SIGNAL_LEN = 4,
    SF_EV_OFF_RESERVED = 5,
    SF_EV_OFF_FIELDS_LEN = 6,
    SF_EV_OFF_EVENT_ID = 8,
    SF_EV_OFF_TS_NS = 16,
};

/* Character classes of names (frame.c). */
#define SF_CHAR_IDENT 0x01u /* type and signal: [A-Za-z0-9_.-] */
#define SF_CHAR_ID    0x02u /* workflow id: printable, no '"' or '\\' */
extern const uint8_t sf_char_class[256];

#endif /* SF_PROTO_INTERNAL_H */
