/*
 * sf_ack.c — ACK datagrams (node -> sender), little-endian like frames.
 *
 *   header, 32 bytes (the first 20 bytes have the frame header's layout)
 *     0  u16 magic 0x4653          16 u16 entry_count (1..64)
 *     2  u8  version (1)           18 u16 header_len (32)
 *     3  u8  flags (= ACK 0x80)    20 u16 owner (the owner core answering)
 *     4  u32 sender_id             22 u16 reserved (0)
 *     8  u64 frame_seq             24 u64 durable_lsn
 *   entry_count entries of 12 bytes
 *     0  u64 event_id   8 u16 event_index (< 64)   10 u8 status (< 7)   11 u8 reserved (0)
 *
 * Validity: exact length header_len + entry_count * 12, every rule above, nothing else.
 * An ACK is never longer than the frame it answers: a frame of n events takes at least
 * 32 + 27 n bytes, its ACKs together 32 + 12 n per owner core.
 */
#include "sf_proto.h"

#include <assert.h>

#include "sf_proto_internal.h"

_Static_assert(SF_ACK_HDR_LEN == SF_OFF_ACK_LSN + 8, "ACK header fields fill the header");
_Static_assert(SF_ACK_ENTRY_LEN == 12, "ACK entry is 12 bytes");
_Static_assert(SF_ACK_BUSY + 1 == SF_ACK_STATUS_COUNT, "status names cover all");
_Static_assert(SF_ACK_HDR_LEN + SF_ACK_ENTRY_LEN < SF_FRAME_HDR_LEN + SF_EVENT_HDR_LEN + 3,
               "an ACK is smaller than the smallest frame");

enum {
    SF_ACK_OFF_EVENT_ID = 0,
    SF_ACK_OFF_INDEX = 8,
    SF_ACK_OFF_STATUS = 10,
    SF_ACK_OFF_RESERVED = 11,
};

static const char *const sf_ack_status_names[SF_ACK_STATUS_COUNT] = {
    [SF_ACK_APPLIED] = "applied",
    [SF_ACK_DUPLICATE] = "duplicate",
    [SF_ACK_STALE] = "stale",
    [SF_ACK_UNKNOWN] = "unknown",
    [SF_ACK_OVERLOADED] = "overloaded",
    [SF_ACK_UNAUTHENTICATED] = "unauthenticated",
    [SF_ACK_MALFORMED] = "malformed",
    [SF_ACK_FULL] = "full",
    [SF_ACK_BUSY] = "busy",
};

const char *sf_ack_status_name(enum sf_ack_status st)
{
    if ((unsigned)st >= SF_ACK_STATUS_COUNT)
        return "unknown_status";
    return sf_ack_status_names[st];
}

int sf_ack_encode(uint8_t *out, size_t cap, const struct sf_ack_hdr *hdr,
                  const struct sf_ack_entry *entries)
{
    assert(out != NULL && hdr != NULL);
    unsigned n = hdr->entry_count;
    if (n == 0 || n > SF_ACK_ENTRIES_MAX)
        return SF_ERR_BAD_ACK;
    assert(entries != NULL);
    for (unsigned i = 0; i < n; i++) {
        if (entries[i].event_index >= SF_FRAME_EVENTS_MAX ||
            entries[i].status >= SF_ACK_STATUS_COUNT)
            return SF_ERR_BAD_ACK;
    }
    size_t total = SF_ACK_HDR_LEN + (size_t)n * SF_ACK_ENTRY_LEN;
    if (total > cap)
        return SF_ERR_NO_SPACE;

    sf_le16_put(out + SF_OFF_MAGIC, SF_PROTO_MAGIC);
    out[SF_OFF_VERSION] = SF_PROTO_VERSION;
    out[SF_OFF_FLAGS] = SF_FLAG_ACK;
    sf_le32_put(out + SF_OFF_SENDER_ID, hdr->sender_id);
    sf_le64_put(out + SF_OFF_FRAME_SEQ, hdr->frame_seq);
    sf_le16_put(out + SF_OFF_COUNT, (uint16_t)n);
    sf_le16_put(out + SF_OFF_HDR_LEN, SF_ACK_HDR_LEN);
    sf_le16_put(out + SF_OFF_ACK_OWNER, hdr->owner);
    sf_le16_put(out + SF_OFF_ACK_RESERVED, 0);
    sf_le64_put(out + SF_OFF_ACK_LSN, hdr->durable_lsn);
    uint8_t *p = out + SF_ACK_HDR_LEN;
    for (unsigned i = 0; i < n; i++, p += SF_ACK_ENTRY_LEN) {
        sf_le64_put(p + SF_ACK_OFF_EVENT_ID, entries[i].event_id);
        sf_le16_put(p + SF_ACK_OFF_INDEX, entries[i].event_index);
        p[SF_ACK_OFF_STATUS] = entries[i].status;
        p[SF_ACK_OFF_RESERVED] = 0;
    }
    assert((size_t)(p - out) == total);
    return (int)total;
}

int sf_ack_decode(const uint8_t *buf, size_t len, struct sf_ack_hdr *hdr,
                  struct sf_ack_entry *entries, unsigned max)
{
    assert(hdr != NULL && (entries != NULL || max == 0));
    if (len < SF_ACK_HDR_LEN || sf_le16_get(buf + SF_OFF_MAGIC) != SF_PROTO_MAGIC ||
        buf[SF_OFF_VERSION] != SF_PROTO_VERSION || buf[SF_OFF_FLAGS] != SF_FLAG_ACK ||
        sf_le16_get(buf + SF_OFF_HDR_LEN) != SF_ACK_HDR_LEN ||
        sf_le16_get(buf + SF_OFF_ACK_RESERVED) != 0)
        return SF_ERR_BAD_ACK;
    unsigned n = sf_le16_get(buf + SF_OFF_COUNT);
    if (n == 0 || n > SF_ACK_ENTRIES_MAX || len != SF_ACK_HDR_LEN + (size_t)n * SF_ACK_ENTRY_LEN)
        return SF_ERR_BAD_ACK;
    const uint8_t *p = buf + SF_ACK_HDR_LEN;
    for (unsigned i = 0; i < n; i++, p += SF_ACK_ENTRY_LEN) {
        if (sf_le16_get(p + SF_ACK_OFF_INDEX) >= SF_FRAME_EVENTS_MAX ||
            p[SF_ACK_OFF_STATUS] >= SF_ACK_STATUS_COUNT || p[SF_ACK_OFF_RESERVED] != 0)
            return SF_ERR_BAD_ACK;
    }
    if (n > max)
        return SF_ERR_NO_SPACE;

    hdr->sender_id = sf_le32_get(buf + SF_OFF_SENDER_ID);
    hdr->frame_seq = sf_le64_get(buf + SF_OFF_FRAME_SEQ);
    hdr->entry_count = (uint16_t)n;
    hdr->owner = sf_le16_get(buf + SF_OFF_ACK_OWNER);
    hdr->durable_lsn = sf_le64_get(buf + SF_OFF_ACK_LSN);
    p = buf + SF_ACK_HDR_LEN;
    for (unsigned i = 0; i < n; i++, p += SF_ACK_ENTRY_LEN) {
        entries[i].event_id = sf_le64_get(p + SF_ACK_OFF_EVENT_ID);
        entries[i].event_index = sf_le16_get(p + SF_ACK_OFF_INDEX);
        entries[i].status = p[SF_ACK_OFF_STATUS];
    }
    assert(p == buf + len);
    return (int)n;
}
