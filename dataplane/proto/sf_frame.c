/*
 * sf_frame.c — binary frames: header, events, encoder, error names.
 *
 * Layout (version 1, all integers little-endian; docs/protocol.md is normative):
 *
 *   frame header, 32 bytes
 *     0  u16 magic 0x4653 (bytes 'S' 'F')   16 u16 event_count (1..64)
 *     2  u8  version (1)                     18 u16 header_len (32..256, multiple of 8)
 *     3  u8  flags (ACK_REQ 0x01, AUTH 0x02) 20 u32 auth_key_id
 *     4  u32 sender_id                       24 u64 auth_counter
 *     8  u64 frame_seq
 *   header_len - 32 bytes of header extensions (ignored by v1 readers)
 *   event_count events, back to back
 *   [32-byte auth tag when flags & AUTH]
 *
 *   event, 24 bytes + names + fields
 *     0  u16 event_len (= 24 + type_len + id_len + signal_len + fields_len)
 *     2  u8  type_len (1..32)     3 u8 id_len (1..64)     4 u8 signal_len (1..32)
 *     5  u8  reserved (0)         6 u16 fields_len (0..512)
 *     8  u64 event_id             16 u64 ts_ns
 *     24 type, id, signal bytes, then fields: a CBOR array of scalars (sf_fields.c), or nothing.
 *
 * Validity: every length is checked against the bytes received before it is used; the
 * events must exactly fill the space between header_len and the end (or the tag). The
 * first problem found decides the error code, in the order documented in sf_proto.h.
 * Parsing never allocates, never calls a function per byte, never reads past `len`.
 */
#include "sf_proto.h"

#include <assert.h>
#include <emmintrin.h>
#include <tmmintrin.h>

#include "sf_proto_internal.h"

_Static_assert(SF_FRAME_HDR_LEN == 32, "v1 header is 32 bytes");
_Static_assert(SF_OFF_AUTH_COUNTER + 8 == SF_FRAME_HDR_LEN, "header fields fill the header");
_Static_assert(SF_EV_OFF_TS_NS + 8 == SF_EVENT_HDR_LEN, "event fields fill the event header");
_Static_assert(SF_FRAME_HDR_LEN_MAX % 8 == 0, "header_len is a multiple of 8");
_Static_assert(SF_DATAGRAM_LEN_MAX <= UINT16_MAX, "offsets fit struct sf_event's u16");
_Static_assert(SF_EVENT_LEN_MAX <= UINT16_MAX, "event_len is a u16");
_Static_assert(SF_TYPE_LEN_MAX <= UINT8_MAX && SF_ID_LEN_MAX <= UINT8_MAX &&
                   SF_SIGNAL_LEN_MAX <= UINT8_MAX,
               "name lengths are u8");

#define C_IDENT SF_CHAR_IDENT | SF_CHAR_ID

/* Which bytes may appear in names: a table lookup per byte, no branches per class. */
const uint8_t sf_char_class[256] = {
    [' '] = SF_CHAR_ID,
    ['!'] = SF_CHAR_ID,
    ['#' ... ','] = SF_CHAR_ID,
    ['-' ... '.'] = C_IDENT,
    ['/'] = SF_CHAR_ID,
    ['0' ... '9'] = C_IDENT,
    [':' ... '@'] = SF_CHAR_ID,
    ['A' ... 'Z'] = C_IDENT,
    ['['] = SF_CHAR_ID,
    [']' ... '^'] = SF_CHAR_ID,
    ['_'] = C_IDENT,
    ['`'] = SF_CHAR_ID,
    ['a' ... 'z'] = C_IDENT,
    ['{' ... '~'] = SF_CHAR_ID,
    [0x80 ... 0xff] = SF_CHAR_ID,
};

static const char *const sf_err_names[SF_ERR_COUNT] = {
    [0] = "ok",
    [-SF_ERR_EMPTY] = "empty",
    [-SF_ERR_BAD_MAGIC] = "bad_magic",
    [-SF_ERR_BAD_VERSION] = "bad_version",
    [-SF_ERR_TRUNC_HEADER] = "truncated_header",
    [-SF_ERR_BAD_FLAGS] = "bad_flags",
    [-SF_ERR_BAD_COUNT] = "bad_count",
    [-SF_ERR_TRUNC_EVENT] = "truncated_event",
    [-SF_ERR_BAD_EVENT_LEN] = "bad_event_len",
    [-SF_ERR_BAD_NAME] = "bad_name",
    [-SF_ERR_BAD_FIELDS] = "bad_fields",
    [-SF_ERR_TRAILING] = "trailing_bytes",
    [-SF_ERR_BAD_JSON] = "bad_json",
    [-SF_ERR_JSON_MISSING] = "json_missing_key",
    [-SF_ERR_TOO_MANY_FIELDS] = "too_many_fields",
    [-SF_ERR_NO_SPACE] = "no_space",
    [-SF_ERR_BAD_ACK] = "bad_ack",
    [-SF_ERR_BAD_HEADER_LEN] = "bad_header_len",
    [-SF_ERR_TOO_LONG] = "too_long",
    [-SF_ERR_FIELDS_TOO_LONG] = "fields_too_long",
};

const char *sf_err_name(int err)
{
    if (err > 0 || err <= -SF_ERR_COUNT)
        return "unknown";
    assert(sf_err_names[-err] != NULL);
    return sf_err_names[-err];
}

static inline bool sf_name_valid(const char *s, size_t len, size_t len_max, uint8_t class)
{
    if (len == 0 || len > len_max)
        return false;
    uint8_t all = class;
    for (size_t i = 0; i < len; i++)
        all &= sf_char_class[(uint8_t)s[i]];
    return all != 0;
}

bool sf_name_valid_type(const char *s, size_t len)
{
    return sf_name_valid(s, len, SF_TYPE_LEN_MAX, SF_CHAR_IDENT);
}

bool sf_name_valid_id(const char *s, size_t len)
{
    return sf_name_valid(s, len, SF_ID_LEN_MAX, SF_CHAR_ID) &&
           sf_utf8_valid((const uint8_t *)s, len);
}

bool sf_text_valid(const uint8_t *s, size_t len)
{
    return sf_utf8_valid(s, len);
}

bool sf_name_valid_signal(const char *s, size_t len)
{
    return sf_name_valid(s, len, SF_SIGNAL_LEN_MAX, SF_CHAR_IDENT);
}

/*
 * Fast name checks for the per-event path: 16 bytes per step with SIMD compares instead of
 * a table lookup per byte. Each returns the lane mask of invalid bytes.
 *
 * [A-Za-z0-9_.-] by nibble lookup (SSSE3 pshufb): a byte is valid when the class bits of
 * its low nibble and of its high nibble intersect. Bits: 0x01 high 4/6 with low 1..f
 * (A-O, a-o); 0x02 high 5/7 with low 0..a (P-Z, p-z); 0x04 high 5 with low f ('_');
 * 0x08 high 3 with low 0..9 (digits); 0x10 high 2 with low d/e ('-', '.'). High nibbles
 * 8..f (bytes >= 0x80) have no bits. Checked against sf_char_class for all 256 bytes by
 * perf/proto/bench_proto's self-check and the fuzzer's accept-side checks.
 */
__attribute__((always_inline)) static inline unsigned sf_simd_ident_bad(__m128i v)
{
    const __m128i lo_class = _mm_setr_epi8(0x0a, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
                                           0x0b, 0x03, 0x01, 0x01, 0x11, 0x11, 0x05);
    const __m128i hi_class =
        _mm_setr_epi8(0, 0, 0x10, 0x08, 0x01, 0x06, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128i nibble = _mm_set1_epi8(0x0f);
    __m128i lo = _mm_shuffle_epi8(lo_class, _mm_and_si128(v, nibble));
    __m128i hi = _mm_shuffle_epi8(hi_class, _mm_and_si128(_mm_srli_epi16(v, 4), nibble));
    return (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(lo, hi), _mm_setzero_si128()));
}

/* Workflow ids: lanes of bytes that are controls (< 0x20, 0x7f), '"' or '\\'. */
__attribute__((always_inline)) static inline unsigned sf_simd_id_bad(__m128i v)
{
    __m128i ctrl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v); /* v <= 0x1f */
    __m128i bad = _mm_or_si128(_mm_or_si128(ctrl, _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f))),
                               _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                            _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
    return (unsigned)_mm_movemask_epi8(bad);
}

__attribute__((always_inline)) static inline unsigned sf_simd_bad(__m128i v, bool ident)
{
    return ident ? sf_simd_ident_bad(v) : sf_simd_id_bad(v);
}

/*
 * Non-zero unless all len (1..16) bytes at s are in the class: one load of the 16 bytes that
 * end at s + len (the caller guarantees they are readable: in a frame, the 24-byte event
 * header precedes every name), the name in its top len lanes.
 */
__attribute__((always_inline)) static inline unsigned sf_name_short_bad(const char *s, unsigned len,
                                                                        bool ident)
{
    SF_ASSERT_HOT(len >= 1 && len <= 16);
    __m128i v;
    memcpy(&v, s + len - 16, sizeof(v));
    return (sf_simd_bad(v, ident) << len) & 0xffff0000u;
}

/* Lanes of the len (1..16) bytes at s that are >= 0x80 (same load as sf_name_short_bad). */
__attribute__((always_inline)) static inline unsigned sf_name_short_high(const char *s,
                                                                         unsigned len)
{
    __m128i v;
    memcpy(&v, s + len - 16, sizeof(v));
    return ((unsigned)_mm_movemask_epi8(v) << len) & 0xffff0000u;
}

/* Any length >= 1, 16 bytes per step; loads stay inside [s + len - 16, s + len). */
__attribute__((noinline)) static bool sf_name_long_valid(const char *s, size_t len, bool ident)
{
    assert(len >= 1);
    const char *end = s + len;
    __m128i v;
    while (end - s > 16) {
        memcpy(&v, s, sizeof(v));
        if (sf_simd_bad(v, ident) != 0)
            return false;
        s += 16;
    }
    return sf_name_short_bad(s, (unsigned)(end - s), ident) == 0;
}

/* sf_frame_parse_header's body, inlined into sf_frame_scan (one call per frame fewer). */
__attribute__((always_inline)) static inline int
sf_frame_header_check(const uint8_t *buf, size_t len, struct sf_frame_hdr *hdr, size_t *events_off)
{
    assert(hdr != NULL && events_off != NULL);
    if (len == 0)
        return SF_ERR_EMPTY;
    if (len > SF_DATAGRAM_LEN_MAX)
        return SF_ERR_TOO_LONG;
    if (len < 2)
        return buf[0] == 'S' ? SF_ERR_TRUNC_HEADER : SF_ERR_BAD_MAGIC;
    if (sf_le16_get(buf + SF_OFF_MAGIC) != SF_PROTO_MAGIC)
        return SF_ERR_BAD_MAGIC;
    /* The version decides the rest of the layout, so it is judged before the length. */
    if (len < 3)
        return SF_ERR_TRUNC_HEADER;
    if (buf[SF_OFF_VERSION] != SF_PROTO_VERSION)
        return SF_ERR_BAD_VERSION;
    if (len < SF_FRAME_HDR_LEN)
        return SF_ERR_TRUNC_HEADER;

    uint8_t flags = buf[SF_OFF_FLAGS];
    uint16_t header_len = sf_le16_get(buf + SF_OFF_HDR_LEN);
    uint16_t count = sf_le16_get(buf + SF_OFF_COUNT);
    if (header_len < SF_FRAME_HDR_LEN || header_len > SF_FRAME_HDR_LEN_MAX || header_len % 8 != 0)
        return SF_ERR_BAD_HEADER_LEN;
    size_t fixed = header_len + ((flags & SF_FLAG_AUTH) ? SF_AUTH_TAG_LEN : 0);
    if (fixed > len)
        return SF_ERR_TRUNC_HEADER;
    if ((flags & ~SF_FLAGS_KNOWN) != 0 || (flags & SF_FLAG_ACK) != 0)
        return SF_ERR_BAD_FLAGS;
    if (count == 0 || count > SF_FRAME_EVENTS_MAX)
        return SF_ERR_BAD_COUNT;

    hdr->version = SF_PROTO_VERSION;
    hdr->flags = flags;
    hdr->event_count = count;
    hdr->sender_id = sf_le32_get(buf + SF_OFF_SENDER_ID);
    hdr->frame_seq = sf_le64_get(buf + SF_OFF_FRAME_SEQ);
    hdr->auth_key_id = sf_le32_get(buf + SF_OFF_AUTH_KEY_ID);
    hdr->auth_counter = sf_le64_get(buf + SF_OFF_AUTH_COUNTER);
    *events_off = header_len;
    assert(*events_off <= len);
    return SF_OK;
}

int sf_frame_parse_header(const uint8_t *buf, size_t len, struct sf_frame_hdr *hdr,
                          size_t *events_off)
{
    return sf_frame_header_check(buf, len, hdr, events_off);
}

size_t sf_frame_events_end(const struct sf_frame_hdr *hdr, size_t len)
{
    size_t tag = (hdr->flags & SF_FLAG_AUTH) ? SF_AUTH_TAG_LEN : 0;
    assert(len >= SF_FRAME_HDR_LEN + tag);
    return len - tag;
}

/*
 * Check the event at buf + pos, with `avail` bytes left before the end of the events, in
 * the order sf_proto.h documents for sf_frame_next_event. Returns the event's length, and
 * *span describes it; or a negative sf_err, and *span is unspecified (it is filled as soon
 * as the lengths are known, which keeps them out of the stack). Shared by every frame
 * parser so that they accept exactly the same events. The first 8 bytes of the event
 * header are read as one word: event_len (bits 0-15), type_len (16-23), id_len (24-31),
 * signal_len (32-39), reserved (40-47), fields_len (48-63).
 */
__attribute__((always_inline)) static inline int
sf_event_check(const uint8_t *buf, size_t pos, size_t avail, struct sf_event_span *span)
{
    _Static_assert(SF_EV_OFF_LEN == 0 && SF_EV_OFF_TYPE_LEN == 2 && SF_EV_OFF_ID_LEN == 3 &&
                       SF_EV_OFF_SIGNAL_LEN == 4 && SF_EV_OFF_RESERVED == 5 &&
                       SF_EV_OFF_FIELDS_LEN == 6,
                   "the word layout below");
    if (SF_UNLIKELY(avail < SF_EVENT_HDR_LEN))
        return SF_ERR_TRUNC_EVENT;
    const uint8_t *p = buf + pos;
    uint64_t word = sf_le64_get(p);
    unsigned event_len = (unsigned)(word & 0xffffu);
    unsigned type_len = (unsigned)(word >> 16) & 0xffu;
    unsigned id_len = (unsigned)(word >> 24) & 0xffu;
    unsigned signal_len = (unsigned)(word >> 32) & 0xffu;
    unsigned fields_len = (unsigned)(word >> 48);
    if (SF_UNLIKELY((word & 0x0000ff0000000000ull) != 0 ||
                    event_len != SF_EVENT_HDR_LEN + type_len + id_len + signal_len + fields_len))
        return SF_ERR_BAD_EVENT_LEN;
    if (SF_UNLIKELY(event_len > avail))
        return SF_ERR_TRUNC_EVENT;
    /* Fill the span now, while the lengths are in registers (on error it is ignored). */
    span->event_id = sf_le64_get(p + SF_EV_OFF_EVENT_ID);
    span->type_off = (uint16_t)(pos + SF_EVENT_HDR_LEN);
    span->fields_len = (uint16_t)fields_len;
    span->type_len = (uint8_t)type_len;
    span->id_len = (uint8_t)id_len;
    span->signal_len = (uint8_t)signal_len;
    span->reserved = 0;

    const char *type = (const char *)p + SF_EVENT_HDR_LEN;
    const char *id = type + type_len;
    const char *signal = id + id_len;
    const uint8_t *fields = (const uint8_t *)signal + signal_len;
    _Static_assert(SF_EVENT_HDR_LEN >= 16, "16 readable bytes precede every name");
    _Static_assert(SF_TYPE_LEN_MAX >= 16 && SF_ID_LEN_MAX >= 16 && SF_SIGNAL_LEN_MAX >= 16,
                   "names of 1..16 bytes are within every maximum");
    unsigned bad;
    if (SF_LIKELY(((type_len - 1u) | (id_len - 1u) | (signal_len - 1u)) < 16u)) {
        /* Every name 1..16 bytes (so within its maximum): one load each, no branches. */
        bad = sf_name_short_bad(type, type_len, true) | sf_name_short_bad(id, id_len, false) |
              sf_name_short_bad(signal, signal_len, true);
        /* an id with bytes >= 0x80 must be UTF-8 (the slow check only for those) */
        if (SF_UNLIKELY(sf_name_short_high(id, id_len) != 0) &&
            !sf_utf8_valid((const uint8_t *)id, id_len))
            bad = 1;
    } else {
        bad = type_len - 1u >= SF_TYPE_LEN_MAX || id_len - 1u >= SF_ID_LEN_MAX ||
              signal_len - 1u >= SF_SIGNAL_LEN_MAX || !sf_name_long_valid(type, type_len, true) ||
              !sf_name_long_valid(id, id_len, false) ||
              !sf_name_long_valid(signal, signal_len, true) ||
              !sf_utf8_valid((const uint8_t *)id, id_len);
    }
    if (SF_UNLIKELY(bad != 0))
        return SF_ERR_BAD_NAME;
    if (SF_UNLIKELY(fields_len > SF_FIELDS_LEN_MAX || sf_cbor_validate(fields, fields_len) < 0))
        return SF_ERR_BAD_FIELDS;
    SF_ASSERT_HOT(event_len >= SF_EVENT_HDR_LEN && event_len <= SF_EVENT_LEN_MAX);
    return (int)event_len;
}

int sf_frame_next_event(const uint8_t *buf, size_t end, size_t *off, struct sf_event *ev)
{
    size_t pos = *off;
    assert(pos <= end && ev != NULL);
    struct sf_event_span span;
    int event_len = sf_event_check(buf, pos, end - pos, &span);
    if (event_len < 0)
        return event_len;

    ev->type = (const char *)buf + span.type_off;
    ev->id = ev->type + span.type_len;
    ev->signal = ev->id + span.id_len;
    ev->fields = (const uint8_t *)ev->signal + span.signal_len;
    ev->event_id = span.event_id;
    ev->ts_ns = sf_le64_get(buf + pos + SF_EV_OFF_TS_NS);
    ev->fields_len = span.fields_len;
    ev->type_len = span.type_len;
    ev->id_len = span.id_len;
    ev->signal_len = span.signal_len;
    ev->has_event_id = true;
    ev->fields_json = false;
    ev->offset = (uint16_t)pos;
    ev->length = (uint16_t)event_len;
    *off = pos + (size_t)event_len;
    assert(*off <= end);
    return SF_OK;
}

int sf_frame_scan(const uint8_t *buf, size_t len, struct sf_frame_hdr *hdr,
                  struct sf_event_span *spans, unsigned spans_max)
{
    assert(hdr != NULL && (spans != NULL || spans_max == 0));
    size_t off;
    int rc = sf_frame_header_check(buf, len, hdr, &off);
    if (SF_UNLIKELY(rc < 0))
        return rc;
    size_t end = len - ((hdr->flags & SF_FLAG_AUTH) ? SF_AUTH_TAG_LEN : 0); /* events_end */
    unsigned count = hdr->event_count;
    struct sf_event_span scratch;
    for (unsigned i = 0; i < count; i++) {
        struct sf_event_span *span = SF_LIKELY(i < spans_max) ? &spans[i] : &scratch;
        int event_len = sf_event_check(buf, off, end - off, span);
        if (SF_UNLIKELY(event_len < 0))
            return event_len;
        off += (size_t)event_len;
    }
    if (SF_UNLIKELY(off != end))
        return SF_ERR_TRAILING;
    assert(count >= 1 && count <= SF_FRAME_EVENTS_MAX && off <= len);
    return (int)count;
}

int sf_datagram_parse(const uint8_t *buf, size_t len, struct sf_frame_hdr *hdr,
                      struct sf_event *evs, unsigned events_max)
{
    assert(hdr != NULL && (evs != NULL || events_max == 0));
    if (len > 0 && buf[0] == '{') {
        struct sf_event json_ev;
        int rc = sf_json_parse(buf, len, &json_ev);
        if (rc < 0)
            return rc;
        *hdr = (struct sf_frame_hdr){ .version = SF_PROTO_VERSION, .event_count = 1 };
        if (events_max > 0)
            evs[0] = json_ev;
        return 1;
    }

    size_t off;
    int rc = sf_frame_parse_header(buf, len, hdr, &off);
    if (rc < 0)
        return rc;
    size_t end = sf_frame_events_end(hdr, len);
    struct sf_event scratch;
    for (unsigned i = 0; i < hdr->event_count; i++) {
        rc = sf_frame_next_event(buf, end, &off, i < events_max ? &evs[i] : &scratch);
        if (rc < 0)
            return rc;
    }
    if (off != end)
        return SF_ERR_TRAILING;
    assert(hdr->event_count >= 1 && hdr->event_count <= SF_FRAME_EVENTS_MAX);
    return hdr->event_count;
}

/* ---- encoder ------------------------------------------------------------------------- */

int sf_frame_begin(uint8_t *out, size_t cap, const struct sf_frame_hdr *hdr)
{
    assert(out != NULL && hdr != NULL);
    if (hdr->version != 0 && hdr->version != SF_PROTO_VERSION)
        return SF_ERR_BAD_VERSION;
    if ((hdr->flags & ~SF_FLAGS_KNOWN) != 0 || (hdr->flags & SF_FLAG_ACK) != 0)
        return SF_ERR_BAD_FLAGS;
    if (cap < SF_FRAME_HDR_LEN)
        return SF_ERR_NO_SPACE;
    sf_le16_put(out + SF_OFF_MAGIC, SF_PROTO_MAGIC);
    out[SF_OFF_VERSION] = SF_PROTO_VERSION;
    out[SF_OFF_FLAGS] = hdr->flags;
    sf_le32_put(out + SF_OFF_SENDER_ID, hdr->sender_id);
    sf_le64_put(out + SF_OFF_FRAME_SEQ, hdr->frame_seq);
    sf_le16_put(out + SF_OFF_COUNT, 0);
    sf_le16_put(out + SF_OFF_HDR_LEN, SF_FRAME_HDR_LEN);
    sf_le32_put(out + SF_OFF_AUTH_KEY_ID, hdr->auth_key_id);
    sf_le64_put(out + SF_OFF_AUTH_COUNTER, hdr->auth_counter);
    return SF_FRAME_HDR_LEN;
}

/* Room an encoder may fill with events: the buffer, the datagram limit, minus the tag. */
static size_t sf_frame_room(const uint8_t *out, size_t cap)
{
    size_t room = cap < SF_DATAGRAM_LEN_MAX ? cap : SF_DATAGRAM_LEN_MAX;
    size_t tag = (out[SF_OFF_FLAGS] & SF_FLAG_AUTH) ? SF_AUTH_TAG_LEN : 0;
    return room > tag ? room - tag : 0;
}

int sf_frame_add_event(uint8_t *out, size_t cap, size_t len, const struct sf_event *ev)
{
    assert(out != NULL && ev != NULL);
    assert(len >= SF_FRAME_HDR_LEN && len <= cap);
    assert(sf_le16_get(out + SF_OFF_MAGIC) == SF_PROTO_MAGIC);
    uint16_t count = sf_le16_get(out + SF_OFF_COUNT);
    if (count >= SF_FRAME_EVENTS_MAX)
        return SF_ERR_BAD_COUNT;
    if (!sf_name_valid_type(ev->type, ev->type_len) || !sf_name_valid_id(ev->id, ev->id_len) ||
        !sf_name_valid_signal(ev->signal, ev->signal_len))
        return SF_ERR_BAD_NAME;
    if (ev->fields_len > SF_FIELDS_LEN_MAX || ev->fields_json ||
        sf_fields_validate(ev->fields, ev->fields_len) < 0)
        return SF_ERR_BAD_FIELDS;

    size_t event_len =
        SF_EVENT_HDR_LEN + ev->type_len + ev->id_len + ev->signal_len + ev->fields_len;
    if (event_len > sf_frame_room(out, cap) || len > sf_frame_room(out, cap) - event_len)
        return SF_ERR_NO_SPACE;

    uint8_t *p = out + len;
    sf_le16_put(p + SF_EV_OFF_LEN, (uint16_t)event_len);
    p[SF_EV_OFF_TYPE_LEN] = ev->type_len;
    p[SF_EV_OFF_ID_LEN] = ev->id_len;
    p[SF_EV_OFF_SIGNAL_LEN] = ev->signal_len;
    p[SF_EV_OFF_RESERVED] = 0;
    sf_le16_put(p + SF_EV_OFF_FIELDS_LEN, ev->fields_len);
    sf_le64_put(p + SF_EV_OFF_EVENT_ID, ev->event_id);
    sf_le64_put(p + SF_EV_OFF_TS_NS, ev->ts_ns);
    p += SF_EVENT_HDR_LEN;
    memcpy(p, ev->type, ev->type_len);
    p += ev->type_len;
    memcpy(p, ev->id, ev->id_len);
    p += ev->id_len;
    memcpy(p, ev->signal, ev->signal_len);
    p += ev->signal_len;
    if (ev->fields_len > 0)
        memcpy(p, ev->fields, ev->fields_len);
    sf_le16_put(out + SF_OFF_COUNT, (uint16_t)(count + 1));
    assert((size_t)(p + ev->fields_len - out) == len + event_len);
    return (int)(len + event_len);
}

int sf_frame_end(uint8_t *out, size_t cap, size_t len)
{
    assert(out != NULL && len >= SF_FRAME_HDR_LEN && len <= cap);
    if (sf_le16_get(out + SF_OFF_COUNT) == 0)
        return SF_ERR_BAD_COUNT;
    if ((out[SF_OFF_FLAGS] & SF_FLAG_AUTH) == 0)
        return (int)len;
    if (cap - len < SF_AUTH_TAG_LEN)
        return SF_ERR_NO_SPACE;
    memset(out + len, 0, SF_AUTH_TAG_LEN);
    return (int)(len + SF_AUTH_TAG_LEN);
}
