/*
 * sf_proto_internal.h — helpers shared by the protocol's .c files (not installed, not part
 * of the API). Byte order is explicit: frames and ACKs are little-endian (sf_le.h), CBOR is
 * big-endian (the loads below). Loads and stores go through memcpy so that no pointer into
 * a packet is ever cast to a wider type; compilers turn them into single unaligned moves.
 */
#ifndef SF_PROTO_INTERNAL_H
#define SF_PROTO_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sf_le.h"
#include "sf_proto.h"

#define SF_LIKELY(x)   __builtin_expect(!!(x), 1)
#define SF_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Debug-only assertions for the per-event paths (the STYLE's second tier): compiled in
 * with SF_DEBUG_HOT, as in tests, debug and sanitizer builds. */
#ifdef SF_DEBUG_HOT
#define SF_ASSERT_HOT(x) assert(x)
#else
#define SF_ASSERT_HOT(x) ((void)sizeof(x))
#endif

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

/* Character classes of names (sf_frame.c). */
#define SF_CHAR_IDENT 0x01u /* type and signal: [A-Za-z0-9_.-] */
#define SF_CHAR_ID    0x02u /* workflow id: printable, no '"' or '\\' */
extern const uint8_t sf_char_class[256];

/*
 * CBOR validation table (sf_fields.c), per initial byte: head length (1 + argument bytes) in the
 * low 4 bits, 0 for an item that is never accepted; SF_CBOR_V_TEXT: a text string whose
 * argument is its length; SF_CBOR_V_INT64: an 8-byte integer argument whose top bit must be
 * clear.
 */
#define SF_CBOR_V_TEXT  0x10u
#define SF_CBOR_V_INT64 0x20u
extern const uint8_t sf_cbor_valid[256];

/* The length argument of a CBOR text head of `head` (1, 2, 3, 5 or 9) bytes at p. */
static inline uint64_t sf_cbor_text_len(const uint8_t *p, unsigned head)
{
    switch (head) {
    case 1:
        return p[0] & 31u;
    case 2:
        return p[1];
    case 3:
        return sf_ld_be16(p + 1);
    case 5:
        return sf_ld_be32(p + 1);
    default:
        return sf_ld_be64(p + 1);
    }
}

/*
 * sf_fields_validate's body, inlined into the frame parser's per-event path: a CBOR array
 * of scalars, table-driven, nothing decoded. Accepts exactly what sf_fields.c's decoder accepts
 * (the fuzzer checks the two agree). Returns the number of values or SF_ERR_BAD_FIELDS.
 */
/*
 * Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates (U+D800..DFFF), nothing
 * above U+10FFFF, no sequence cut at the end. ASCII runs go 8 bytes per step. Text the node
 * stores and shows (ids, text fields) must be UTF-8: a terminal, a JSON encoder or a log
 * reader downstream must never meet bytes it cannot decode.
 */
static inline bool sf_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint8_t lo = 0x80, hi = 0xbf; /* bounds of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return false; /* continuation byte first, 0xc0/0xc1, or 0xf5..0xff */
        }
        if (len - i < n || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k < n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += n;
    }
    return true;
}

__attribute__((always_inline)) static inline int sf_cbor_validate(const uint8_t *buf, size_t len)
{
    if (len == 0)
        return 0;
    /* Array head: major type 4, definite length; the argument is the item count. */
    unsigned ib = buf[0];
    uint64_t count;
    size_t pos;
    if (SF_LIKELY(ib - 0x80u < 24u)) { /* up to 23 items: the count is in the first byte */
        count = ib - 0x80u;
        pos = 1;
    } else {
        unsigned head = sf_cbor_valid[ib & 0x1fu] & 0x0fu; /* an unsigned head's width */
        if ((ib >> 5) != 4u || head == 0 || head > len)
            return SF_ERR_BAD_FIELDS;
        count = sf_cbor_text_len(buf, head);
        pos = head;
    }
    if (count > len - pos) /* every item takes at least one byte */
        return SF_ERR_BAD_FIELDS;
    for (uint64_t i = 0; i < count; i++) {
        if (SF_UNLIKELY(pos >= len))
            return SF_ERR_BAD_FIELDS;
        unsigned info = sf_cbor_valid[buf[pos]];
        unsigned item = info & 0x0fu;
        if (SF_UNLIKELY(item == 0 || item > len - pos))
            return SF_ERR_BAD_FIELDS;
        if (SF_UNLIKELY((info & SF_CBOR_V_INT64) && (buf[pos + 1] & 0x80u)))
            return SF_ERR_BAD_FIELDS;
        if (info & SF_CBOR_V_TEXT) {
            uint64_t n = sf_cbor_text_len(buf + pos, item);
            if (SF_UNLIKELY(n > len - pos - item || n > UINT16_MAX))
                return SF_ERR_BAD_FIELDS;
            if (SF_UNLIKELY(!sf_utf8_valid(buf + pos + item, (size_t)n)))
                return SF_ERR_BAD_FIELDS;
            pos += n;
        }
        pos += item;
    }
    if (pos != len)
        return SF_ERR_BAD_FIELDS;
    assert(count <= len);
    return (int)count;
}

#endif /* SF_PROTO_INTERNAL_H */
