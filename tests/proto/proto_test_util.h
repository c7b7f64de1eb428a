/*
 * proto_test_util.h — byte-level builders for protocol tests, written from docs/protocol.md
 * independently of the library's encoder, so that tests check the layout, not the
 * encoder against itself. Fields are stored with sf_le.h, whose byte layout
 * tests/storage/test_le pins.
 */
#ifndef PROTO_TEST_UTIL_H
#define PROTO_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sf_le.h"
#include "sf_proto.h"

/* Frame header by hand. Returns 32. */
static inline size_t t_frame_hdr(uint8_t *b, uint8_t flags, uint32_t sender, uint64_t seq,
                                 uint16_t count)
{
    b[0] = 'S';
    b[1] = 'F';
    b[2] = 1;
    b[3] = flags;
    sf_le32_put(b + 4, sender);
    sf_le64_put(b + 8, seq);
    sf_le16_put(b + 16, count);
    sf_le16_put(b + 18, 32);
    sf_le32_put(b + 20, 0);
    sf_le64_put(b + 24, 0);
    return 32;
}

/* One event by hand at b, with explicit lengths (the bytes are copied as given). */
static inline size_t t_event_raw(uint8_t *b, const char *type, size_t tl, const char *id, size_t il,
                                 const char *sig, size_t sl, const uint8_t *fields, size_t fl,
                                 uint64_t event_id, uint64_t ts_ns)
{
    size_t len = 24 + tl + il + sl + fl;
    sf_le16_put(b, (uint16_t)len);
    b[2] = (uint8_t)tl;
    b[3] = (uint8_t)il;
    b[4] = (uint8_t)sl;
    b[5] = 0;
    sf_le16_put(b + 6, (uint16_t)fl);
    sf_le64_put(b + 8, event_id);
    sf_le64_put(b + 16, ts_ns);
    uint8_t *p = b + 24;
    memcpy(p, type, tl);
    p += tl;
    memcpy(p, id, il);
    p += il;
    memcpy(p, sig, sl);
    p += sl;
    if (fl)
        memcpy(p, fields, fl);
    return len;
}

/* The usual event: device/sensor-1/telemetry with fields [21] (0x81 0x15). */
static inline size_t t_event(uint8_t *b, uint64_t event_id)
{
    static const uint8_t f[] = { 0x81, 0x15 };
    return t_event_raw(b, "device", 6, "sensor-1", 8, "telemetry", 9, f, sizeof(f), event_id,
                       1000 + event_id);
}

/* A valid frame of `count` usual events; returns its length. */
static inline size_t t_frame(uint8_t *b, uint16_t count)
{
    size_t len = t_frame_hdr(b, 0, 7, 99, count);
    for (uint16_t i = 0; i < count; i++)
        len += t_event(b + len, 100 + i);
    return len;
}

#endif /* PROTO_TEST_UTIL_H */
