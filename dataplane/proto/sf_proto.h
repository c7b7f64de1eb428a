/*
 * sf_proto.h — the sigflow frame protocol on plain buffers (no DPDK).
 *
 * One UDP datagram carries one frame: a fixed little-endian header, then 1..N events
 * (docs/protocol.md is the normative byte layout). A datagram whose first byte is '{' is
 * the JSON convenience form: one event, named fields. Acknowledgements travel in ACK
 * datagrams with one status per event.
 *
 * Everything here works on caller-provided buffers, allocates nothing and never reads
 * past the length it is given: every length and offset is checked against the bytes
 * actually received. Parse functions return SF_OK (0) or a negative enum sf_err; each
 * error has its own drop counter in the dataplane, so keep them distinct.
 */
#ifndef SF_PROTO_H
#define SF_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SF_PROTO_MAGIC       0x4653u /* bytes 'S' 'F' on the wire (little-endian u16) */
#define SF_PROTO_VERSION     1u
#define SF_FRAME_HDR_LEN     32u /* fixed header of version 1 */
#define SF_EVENT_HDR_LEN     24u /* fixed part of one event */
#define SF_AUTH_TAG_LEN      32u /* HMAC-SHA256 tag, at the end of the frame when FLAG_AUTH */
#define SF_TYPE_LEN_MAX      32u
#define SF_ID_LEN_MAX        64u
#define SF_SIGNAL_LEN_MAX    32u
#define SF_FIELDS_LEN_MAX    512u
#define SF_FRAME_EVENTS_MAX  64u
#define SF_DATAGRAM_LEN_MAX  9000u /* jumbo frames; ordinary senders stay below 1472 */
#define SF_ACK_HDR_LEN       32u   /* same first 20 bytes as a frame header (see protocol.md) */
#define SF_ACK_ENTRY_LEN     12u
#define SF_ACK_ENTRIES_MAX   SF_FRAME_EVENTS_MAX /* one entry per event at most */
#define SF_JSON_FIELDS_MAX   16u                 /* named fields in one JSON event */
#define SF_FRAME_HDR_LEN_MAX 256u /* largest header_len a v1 reader accepts (extensions) */
#define SF_EVENT_LEN_MAX \
    (SF_EVENT_HDR_LEN + SF_TYPE_LEN_MAX + SF_ID_LEN_MAX + SF_SIGNAL_LEN_MAX + SF_FIELDS_LEN_MAX)
#define SF_JSON_DEPTH_MAX      8u  /* nesting of skipped unknown JSON values */
#define SF_JSON_NUMBER_LEN_MAX 64u /* characters of one JSON number */

/* Frame header flags. */
#define SF_FLAG_ACK_REQ 0x01u /* sender wants an ACK datagram once events are durable */
#define SF_FLAG_AUTH    0x02u /* key id / counter are set and a tag ends the frame */
#define SF_FLAG_ACK     0x80u /* this datagram is an ACK (node → sender) */
#define SF_FLAGS_KNOWN  (SF_FLAG_ACK_REQ | SF_FLAG_AUTH | SF_FLAG_ACK)

enum sf_err {
    SF_OK = 0,
    SF_ERR_EMPTY = -1,         /* zero-length datagram */
    SF_ERR_BAD_MAGIC = -2,     /* neither frame magic nor '{' */
    SF_ERR_BAD_VERSION = -3,   /* unknown protocol version */
    SF_ERR_TRUNC_HEADER = -4,  /* fewer bytes than the frame header */
    SF_ERR_BAD_FLAGS = -5,     /* unknown flag bits, or ACK flag on a data frame */
    SF_ERR_BAD_COUNT = -6,     /* event count 0 or > SF_FRAME_EVENTS_MAX */
    SF_ERR_TRUNC_EVENT = -7,   /* an event runs past the end of the datagram */
    SF_ERR_BAD_EVENT_LEN = -8, /* event length inconsistent with its parts */
    SF_ERR_BAD_NAME = -9,      /* type/id/signal empty or over its maximum */
    SF_ERR_BAD_FIELDS = -10,   /* fields are not a well-formed CBOR array of scalars */
    SF_ERR_TRAILING = -11,     /* bytes left after the last event (and tag) */
    SF_ERR_BAD_JSON = -12,     /* JSON form malformed */
    SF_ERR_JSON_MISSING = -13, /* JSON form without type, id or signal */
    SF_ERR_TOO_MANY_FIELDS = -14,
    SF_ERR_NO_SPACE = -15,        /* encoder: output buffer too small */
    SF_ERR_BAD_ACK = -16,         /* ACK datagram malformed */
    SF_ERR_BAD_HEADER_LEN = -17,  /* header_len < SF_FRAME_HDR_LEN, > SF_FRAME_HDR_LEN_MAX or
                                   * not a multiple of 8 */
    SF_ERR_TOO_LONG = -18,        /* datagram longer than SF_DATAGRAM_LEN_MAX */
    SF_ERR_FIELDS_TOO_LONG = -19, /* JSON form: fields object longer than SF_FIELDS_LEN_MAX */
};
#define SF_ERR_COUNT 20 /* number of codes, SF_OK included; sf_err_name(-i) for i < count */

/**
 * Short stable snake_case name for an error code ("truncated_event", ...), used as a
 * counter name; "ok" for SF_OK. Out-of-range codes give "unknown". Can't fail.
 */
const char *sf_err_name(int err);

/** Parsed frame header. */
struct sf_frame_hdr {
    uint8_t version;
    uint8_t flags;
    uint16_t event_count;
    uint32_t sender_id;
    uint64_t frame_seq;
    uint32_t auth_key_id;  /* reserved for sender authentication; 0 when unused */
    uint64_t auth_counter; /* reserved; 0 when unused */
};

/** Field value types of the compact encoding (a CBOR array of scalars). */
enum sf_val_type {
    SF_VAL_NULL = 0,
    SF_VAL_INT = 1,   /* int64 */
    SF_VAL_FLOAT = 2, /* double (CBOR half/single/double accepted, widened) */
    SF_VAL_BOOL = 3,
    SF_VAL_TEXT = 4, /* UTF-8, pointer into the buffer, not NUL-terminated */
};

struct sf_value {
    enum sf_val_type type;
    union {
        int64_t i;
        double f;
        bool b;
        struct {
            const char *ptr;
            uint16_t len;
        } text;
    };
};

/**
 * One event, as views into the datagram (nothing copied, nothing NUL-terminated).
 * For the binary form `fields` is the raw CBOR array (fields_json false); for the JSON
 * form it is the raw JSON object text "{...}" (fields_json true) or empty.
 */
struct sf_event {
    const char *type;
    const char *id;
    const char *signal;
    const uint8_t *fields;
    uint64_t event_id;
    uint64_t ts_ns; /* sender's timestamp, informational; 0 when absent */
    uint16_t fields_len;
    uint8_t type_len;
    uint8_t id_len;
    uint8_t signal_len;
    bool has_event_id; /* false for JSON events without "event_id": not deduplicated */
    bool fields_json;
    uint16_t offset; /* offset of the event within the datagram */
    uint16_t length; /* bytes of the event within the datagram */
};

/* ---- frames (binary form) ------------------------------------------------------------ */

/**
 * Parse and validate the frame header of datagram buf[0..len).
 * On success fills *hdr and *events_off (offset of the first event = header_len) and
 * returns SF_OK. Checks, in this order: SF_ERR_EMPTY, SF_ERR_TOO_LONG, SF_ERR_BAD_MAGIC,
 * SF_ERR_BAD_VERSION (as soon as 3 bytes are there), SF_ERR_TRUNC_HEADER (fewer than 32
 * bytes), SF_ERR_BAD_HEADER_LEN, SF_ERR_TRUNC_HEADER (header_len, or header_len plus the
 * auth tag when SF_FLAG_AUTH, exceed len), SF_ERR_BAD_FLAGS, SF_ERR_BAD_COUNT.
 * Events are not examined; they end at sf_frame_events_end(hdr, len).
 */
int sf_frame_parse_header(const uint8_t *buf, size_t len, struct sf_frame_hdr *hdr,
                          size_t *events_off);

/**
 * Parse the event at *off. `end` is the offset where events stop (len, or len minus the
 * auth tag). On success fills *ev, advances *off past the event and returns SF_OK.
 * Checks, in this order: SF_ERR_TRUNC_EVENT (fewer than 24 bytes left),
 * SF_ERR_BAD_EVENT_LEN (event_len != 24 + the four lengths, or reserved byte non-zero),
 * SF_ERR_TRUNC_EVENT (event_len past end), SF_ERR_BAD_NAME (sf_name_valid_*),
 * SF_ERR_BAD_FIELDS (fields_len > SF_FIELDS_LEN_MAX, or not sf_fields_validate).
 * Field values are validated (well-formed CBOR array of scalars) but not decoded.
 */
int sf_frame_next_event(const uint8_t *buf, size_t end, size_t *off, struct sf_event *ev);

/** Offset where the events of a frame of `len` bytes end (before the auth tag). Can't fail
 * for a header accepted by sf_frame_parse_header. */
size_t sf_frame_events_end(const struct sf_frame_hdr *hdr, size_t len);

/**
 * Names: type and signal are 1..32 bytes of [A-Za-z0-9_.-]; id is 1..64 bytes, any byte
 * except controls (< 0x20, 0x7f), '"' and '\\' (so every id is also a valid JSON string
 * without escapes). Returns true when valid. Can't fail.
 */
bool sf_name_valid_type(const char *s, size_t len);
bool sf_name_valid_id(const char *s, size_t len);
/** Well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points above
 *  U+10FFFF, no cut sequence): the rule for ids and text values. Can't fail. */
bool sf_text_valid(const uint8_t *s, size_t len);
bool sf_name_valid_signal(const char *s, size_t len);

/**
 * Validate a whole datagram: header, every event, no trailing bytes. Fills up to
 * `events_max` entries of evs and returns the number of events (>= 1), or a negative
 * sf_err of the first problem found. All events are validated even when there are more
 * than events_max (only the first events_max are stored). A datagram starting with '{'
 * is parsed as JSON (sf_json_parse; *hdr is then zeroed except version=1, event_count=1).
 */
int sf_datagram_parse(const uint8_t *buf, size_t len, struct sf_frame_hdr *hdr,
                      struct sf_event *evs, unsigned events_max);

/**
 * Where one validated event of a binary frame lies in its datagram (sf_frame_scan): the
 * type starts at type_off, the id follows it, then the signal, then fields_len bytes of
 * fields (a CBOR array, already validated). 16 bytes, so a frame's spans stay in L1.
 */
struct sf_event_span {
    uint64_t event_id;
    uint16_t type_off;   /* offset of the type within the datagram */
    uint16_t fields_len; /* 0..SF_FIELDS_LEN_MAX */
    uint8_t type_len;    /* 1..SF_TYPE_LEN_MAX */
    uint8_t id_len;      /* 1..SF_ID_LEN_MAX */
    uint8_t signal_len;  /* 1..SF_SIGNAL_LEN_MAX */
    uint8_t reserved;    /* 0 */
};
_Static_assert(sizeof(struct sf_event_span) == 16, "a span is 16 bytes");

/**
 * The receive path's form of sf_datagram_parse for binary frames: the same checks in the
 * same order with the same error codes (header, every event, names, fields, no trailing
 * bytes), but each event is given as a compact span instead of a struct sf_event. Fills up
 * to spans_max spans (all events are validated even when there are more) and returns the
 * event count (>= 1), or a negative sf_err of the first problem (spans then unspecified). A
 * datagram starting with
 * '{' is not a frame: SF_ERR_BAD_MAGIC (the caller parses the JSON form with sf_json_parse).
 */
int sf_frame_scan(const uint8_t *buf, size_t len, struct sf_frame_hdr *hdr,
                  struct sf_event_span *spans, unsigned spans_max);

/**
 * Encoder: start a frame in out[0..cap) from hdr's sender_id, frame_seq, flags and auth
 * fields (hdr->version 0 or 1 both mean version 1; hdr->event_count is ignored, the count
 * starts at 0). Returns SF_FRAME_HDR_LEN, or SF_ERR_NO_SPACE, SF_ERR_BAD_VERSION,
 * SF_ERR_BAD_FLAGS (unknown bits or SF_FLAG_ACK).
 */
int sf_frame_begin(uint8_t *out, size_t cap, const struct sf_frame_hdr *hdr);

/**
 * Encoder: append one event (type/id/signal from ev, fields from ev->fields which must be
 * a CBOR array) at offset `len` of a frame begun with sf_frame_begin; bumps the header's
 * event count. ev->event_id and ev->ts_ns are written as given (has_event_id is ignored).
 * The frame never grows beyond SF_DATAGRAM_LEN_MAX (minus the tag when SF_FLAG_AUTH).
 * Returns the new frame length, or SF_ERR_NO_SPACE, SF_ERR_BAD_NAME, SF_ERR_BAD_FIELDS
 * (not a valid CBOR array of scalars, or longer than SF_FIELDS_LEN_MAX), SF_ERR_BAD_COUNT
 * (the frame already holds SF_FRAME_EVENTS_MAX events). On error the frame is unchanged.
 */
int sf_frame_add_event(uint8_t *out, size_t cap, size_t len, const struct sf_event *ev);

/**
 * Encoder: finish a frame of `len` bytes. With SF_FLAG_AUTH appends the SF_AUTH_TAG_LEN
 * tag (zeros until sender authentication is implemented); otherwise changes nothing.
 * Returns the final datagram length, or SF_ERR_NO_SPACE / SF_ERR_BAD_COUNT (no events).
 */
int sf_frame_end(uint8_t *out, size_t cap, size_t len);

/* ---- field values (CBOR array of scalars) -------------------------------------------- */

/**
 * Encode `n` values as a CBOR array into out[0..cap): integers in their shortest form,
 * floats as float64. Returns bytes written, or SF_ERR_NO_SPACE, or SF_ERR_BAD_FIELDS
 * (unknown value type).
 */
int sf_fields_encode(uint8_t *out, size_t cap, const struct sf_value *vals, unsigned n);

/**
 * Validate a CBOR array of scalars without decoding it (what sf_frame_next_event does).
 * len 0 means "no fields" and is valid. Returns the number of values or SF_ERR_BAD_FIELDS.
 */
int sf_fields_validate(const uint8_t *buf, size_t len);

/**
 * Decode a CBOR array of scalars into vals[0..max). Returns the number of values, or
 * SF_ERR_BAD_FIELDS (malformed, nested, or not a scalar) / SF_ERR_TOO_MANY_FIELDS.
 * Text values point into buf. len 0 decodes to 0 values.
 */
int sf_fields_decode(const uint8_t *buf, size_t len, struct sf_value *vals, unsigned max);

/* ---- JSON convenience form ----------------------------------------------------------- */

/**
 * Parse the JSON form {"type":..,"id":..,"signal":..,"event_id":N,"ts_ns":N,"fields":{..}}.
 * Allocates nothing. Strings must not contain escapes in type/id/signal (they are views).
 * The whole text is validated, fields included (scalars only, distinct names, at most
 * SF_JSON_FIELDS_MAX); only whitespace may follow the object.
 * Returns SF_OK or SF_ERR_EMPTY / SF_ERR_TOO_LONG / SF_ERR_BAD_JSON / SF_ERR_JSON_MISSING
 * / SF_ERR_BAD_NAME / SF_ERR_TOO_MANY_FIELDS.
 */
int sf_json_parse(const uint8_t *buf, size_t len, struct sf_event *ev);

/** One named field of a JSON event's "fields" object. */
struct sf_json_field {
    const char *name;
    uint16_t name_len;
    struct sf_value value; /* text values are views (escapes not decoded: raw bytes) */
};

/**
 * Decode the "fields" object of a JSON event (ev->fields, ev->fields_len) into
 * out[0..max). len 0 decodes to 0 fields. Returns the number of fields, or SF_ERR_BAD_JSON
 * (malformed, a non-scalar value, an empty or duplicate name, an integer outside int64)
 * / SF_ERR_TOO_MANY_FIELDS.
 */
int sf_json_fields_decode(const uint8_t *obj, size_t len, struct sf_json_field *out, unsigned max);

/**
 * Decode the escapes of a raw JSON string view (a text value or field name from the JSON
 * form, without its quotes) into out[0..cap), UTF-8 (\uXXXX, surrogate pairs joined).
 * Returns the decoded length, or SF_ERR_BAD_JSON (bad escape, lone surrogate, control
 * character) / SF_ERR_NO_SPACE. Does not NUL-terminate.
 */
int sf_json_unescape(const char *in, size_t len, char *out, size_t cap);

/* ---- ACK datagrams ------------------------------------------------------------------- */

enum sf_ack_status {
    SF_ACK_APPLIED = 0,
    SF_ACK_DUPLICATE = 1,
    SF_ACK_STALE = 2,
    SF_ACK_UNKNOWN = 3,    /* unknown workflow type or signal */
    SF_ACK_OVERLOADED = 4, /* refused, nothing applied: resend later */
    SF_ACK_UNAUTHENTICATED = 5,
    SF_ACK_MALFORMED = 6, /* the event's fields do not match its signal's declaration
                           * (the frame itself parsed; its other events are processed) */
    SF_ACK_FULL = 7,      /* refused: no room for a new workflow (table, key store, arena) */
    SF_ACK_BUSY = 8,      /* refused: it would start an activity and the workflow's
                           * partition has no free activity slot; resend later */
};

#define SF_ACK_STATUS_COUNT 9

/** Stable snake_case name of a status ("applied", ...); "unknown_status" if out of range. */
const char *sf_ack_status_name(enum sf_ack_status st);

struct sf_ack_entry {
    uint64_t event_id;
    uint16_t event_index; /* position of the event in its frame */
    uint8_t status;       /* enum sf_ack_status */
};

struct sf_ack_hdr {
    uint32_t sender_id;
    uint64_t frame_seq;
    uint16_t entry_count;
    uint16_t owner;       /* the owner core that sends this ACK */
    uint64_t durable_lsn; /* informational: the owner's durable LSN when sent */
};

/**
 * Encode an ACK datagram of hdr->entry_count entries. Returns bytes written
 * (SF_ACK_HDR_LEN + entry_count * SF_ACK_ENTRY_LEN), or SF_ERR_NO_SPACE, or SF_ERR_BAD_ACK
 * (entry_count 0 or > SF_ACK_ENTRIES_MAX, an event_index >= SF_FRAME_EVENTS_MAX, a status
 * out of range).
 */
int sf_ack_encode(uint8_t *out, size_t cap, const struct sf_ack_hdr *hdr,
                  const struct sf_ack_entry *entries);

/**
 * Decode an ACK datagram. Returns the entry count, or SF_ERR_BAD_ACK (any layout rule of
 * docs/protocol.md broken), or SF_ERR_NO_SPACE (valid, but more entries than max).
 */
int sf_ack_decode(const uint8_t *buf, size_t len, struct sf_ack_hdr *hdr,
                  struct sf_ack_entry *entries, unsigned max);

#endif /* SF_PROTO_H */
