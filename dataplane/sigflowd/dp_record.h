/*
 * dp_record.h — the daemon's own log records: what an owner core appends to its write-ahead
 * log (storage/wal.h) for every input, and the history link stored with them. No DPDK: the
 * logging path, replay at start-up and the `workflow history` reader all encode and decode
 * through here, and the unit tests and fuzz target call it directly.
 *
 * Every payload is little-endian (storage/sf_le.h). The WAL record header carries the
 * partition and the workflow's 128-bit key (zero for DEPLOY); the type is enum dp_rec_type.
 * "prev" is the workflow's history link before this input (zero for its first one).
 *
 *   SIGNAL (1)   an event as received                                 40 B + names + fields
 *       0  u64 event_id          8  u64 rx_ns (realtime: the time handlers see)
 *      16  u8 flags (DP_REC_SIG_*)  17 u8 type_len  18 u8 id_len  19 u8 signal_len
 *      20  u16 fields_len        22  u16 0
 *      24  16 B prev
 *      40  type | id | signal | fields (CBOR array, or the JSON fields object)
 *   TIMER (2)    a timer firing                                                     28 B
 *       0  u32 slot              4  u64 due_ns          12  16 B prev
 *   ACTIVITY (3) an activity's result                                               40 B
 *       0  u16 activity index    2  u8 failed           3  u8 0
 *       4  u32 seq               8  i64 result          16 u64 now_ns     24 16 B prev
 *   DEPLOY (4)   this core switched to registry generation g                         8 B
 *       0  u64 g
 *   NOTE (5)     what the input just before it did (history only; replay moves the link)
 *       0  16 B prev (the input's own link)   16 u16 def_id
 *      18  u8 flags (DP_REC_NOTE_CREATED, _COMPLETED)  19 u8 n   20 u32 0
 *      24  n x (u16 activity index, u16 0, u32 seq): the runs it scheduled     24 + 8n B
 *   SWEEP (6)    one bounded tombstone sweep step of the record's partition          12 B
 *       0  u64 now_ns            8  u32 budget
 *   DELETE (7)   an operator deleted the workflow                      2 B + type + id
 *       0  u8 type_len           1  u8 id_len           2  type | id
 *   ATTEMPT (8)  attempt `attempt` of a run failed; the control plane retries it
 *                                                                        40 B + reason
 *       0  u16 activity index    2  u16 reason_len      4  u32 seq
 *       8  u32 attempt          12  u32 0              16  u64 now_ns     24 16 B prev
 *      40  reason (UTF-8 as the executor wrote it, ≤ DP_REC_REASON_MAX bytes)
 *
 * SIGNAL and DELETE carry the workflow's names: replay checks that they re-hash to the
 * header's key (and, for signals, partition); a mismatch is corruption.
 *
 * History link (struct rt_hlink, kept per instance and in front of each logged input):
 *   a = segment id << 32 | byte offset of the record in its segment file
 *   b = epoch (16 bits) << 48 | owner core (8 bits) << 40 | LSN mod 2^40 (checked on read)
 * a == 0 means no link (a record never sits at offset 0). The log is DIR/epoch-E/wal/core-N.
 */
#ifndef DP_RECORD_H
#define DP_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "rt.h"
#include "sf_proto.h"

enum dp_rec_type {
    DP_REC_SIGNAL = 1,
    DP_REC_TIMER = 2,
    DP_REC_ACTIVITY = 3,
    DP_REC_DEPLOY = 4,
    DP_REC_NOTE = 5,
    DP_REC_SWEEP = 6,
    DP_REC_DELETE = 7,
    DP_REC_ATTEMPT = 8,
};

#define DP_REC_SIGNAL_HDR   40u
#define DP_REC_TIMER_LEN    28u
#define DP_REC_ACTIVITY_LEN 40u
#define DP_REC_DEPLOY_LEN   8u
#define DP_REC_NOTE_HDR     24u
#define DP_REC_NOTE_RUN     8u
#define DP_REC_NOTE_RUNS    8u /* scheduled runs one note lists (more are not listed) */
#define DP_REC_NOTE_MAX     (DP_REC_NOTE_HDR + DP_REC_NOTE_RUN * DP_REC_NOTE_RUNS)
#define DP_REC_SWEEP_LEN    12u
#define DP_REC_DELETE_HDR   2u
#define DP_REC_ATTEMPT_HDR  40u
#define DP_REC_REASON_MAX   192u /* == CHAN_REASON_MAX */
#define DP_REC_ATTEMPT_MAX  (DP_REC_ATTEMPT_HDR + DP_REC_REASON_MAX)

/* The largest SIGNAL payload: header, three names at their maxima, the fields at theirs
 * (binary and JSON forms share SF_FIELDS_LEN_MAX: the parsers refuse longer ones). */
#define DP_REC_SIGNAL_MAX \
    (DP_REC_SIGNAL_HDR + SF_TYPE_LEN_MAX + SF_ID_LEN_MAX + SF_SIGNAL_LEN_MAX + SF_FIELDS_LEN_MAX)
#define DP_REC_DELETE_MAX (DP_REC_DELETE_HDR + SF_TYPE_LEN_MAX + SF_ID_LEN_MAX)
/* Every record any version of the daemon wrote fits this (the history reader's buffer):
 * JSON fields were once bounded only by the event's length. */
#define DP_REC_READ_MAX \
    (DP_REC_SIGNAL_HDR + SF_TYPE_LEN_MAX + SF_ID_LEN_MAX + SF_SIGNAL_LEN_MAX + SF_EVENT_LEN_MAX)

/* flags of a SIGNAL (the same bits as the routed event's, dp_event.h) */
#define DP_REC_SIG_HAS_EVENT_ID 0x01
#define DP_REC_SIG_FIELDS_JSON  0x02
/* flags of a NOTE */
#define DP_REC_NOTE_CREATED   0x01
#define DP_REC_NOTE_COMPLETED 0x02

/** A SIGNAL; names and fields are views (into the packet, or the decoded payload). */
struct dp_rec_signal {
    uint64_t event_id, rx_ns;
    uint8_t flags; /* DP_REC_SIG_* */
    uint8_t type_len, id_len, signal_len;
    uint16_t fields_len;
    struct rt_hlink prev;
    const char *type, *id, *signal;
    const uint8_t *fields;
};

struct dp_rec_timer {
    uint32_t slot;
    uint64_t due_ns;
    struct rt_hlink prev;
};

struct dp_rec_activity {
    uint16_t act;
    uint8_t failed;
    uint32_t seq;
    int64_t result;
    uint64_t now_ns;
    struct rt_hlink prev;
};

struct dp_rec_attempt {
    uint16_t act;
    uint16_t reason_len;
    uint32_t seq, attempt;
    uint64_t now_ns;
    struct rt_hlink prev;
    const char *reason; /* view */
};

struct dp_rec_note {
    struct rt_hlink prev;
    uint16_t def_id;
    uint8_t flags; /* DP_REC_NOTE_* */
    uint8_t nruns;
    struct rt_run_id runs[DP_REC_NOTE_RUNS];
};

struct dp_rec_sweep {
    uint64_t now_ns;
    uint32_t budget;
};

struct dp_rec_delete {
    uint8_t type_len, id_len;
    const char *type, *id;
};

/** One decoded record (views point into the payload it was decoded from). */
struct dp_rec {
    enum dp_rec_type type;
    union {
        struct dp_rec_signal signal;
        struct dp_rec_timer timer;
        struct dp_rec_activity activity;
        uint64_t deploy_gen;
        struct dp_rec_note note;
        struct dp_rec_sweep sweep;
        struct dp_rec_delete del;
        struct dp_rec_attempt attempt;
    } u;
};

/*
 * Encoders write the payload into out[0..cap) and return its length, or 0 when it does not
 * fit (nothing meaningful is written then). They copy no more than cap bytes whatever the
 * lengths in the struct say; they check nothing else (the caller built the struct).
 */
uint32_t dp_rec_signal_encode(const struct dp_rec_signal *s, uint8_t *out, size_t cap);
uint32_t dp_rec_timer_encode(const struct dp_rec_timer *t, uint8_t *out, size_t cap);
uint32_t dp_rec_activity_encode(const struct dp_rec_activity *a, uint8_t *out, size_t cap);
uint32_t dp_rec_deploy_encode(uint64_t gen, uint8_t *out, size_t cap);
/** A NOTE lists at most DP_REC_NOTE_RUNS runs (n->nruns above it is refused: 0). */
uint32_t dp_rec_note_encode(const struct dp_rec_note *n, uint8_t *out, size_t cap);
uint32_t dp_rec_sweep_encode(const struct dp_rec_sweep *s, uint8_t *out, size_t cap);
uint32_t dp_rec_delete_encode(const struct dp_rec_delete *d, uint8_t *out, size_t cap);
/** reason_len above DP_REC_REASON_MAX is refused (0). */
uint32_t dp_rec_attempt_encode(const struct dp_rec_attempt *a, uint8_t *out, size_t cap);

/**
 * Decode payload p[0..len) of a record of `type` into *out; views point into p. Reads no
 * byte outside p[0..len). Returns 0, or -EBADMSG when the length does not match the type's
 * layout, a name is empty or a reserved field is not zero where the layout says so, or
 * -ENOENT for a type that is not one of enum dp_rec_type. Checks no key: the caller
 * compares names with the WAL header's key (dp_rec_key_matches).
 */
int dp_rec_decode(unsigned type, const uint8_t *p, uint32_t len, struct dp_rec *out);

/** Does the record's (type, id) hash to key (SIGNAL and DELETE; others: true)? */
int dp_rec_key_matches(const struct dp_rec *r, struct wf_key key);

/** The history link a decoded input or note carries (zero for DEPLOY, SWEEP, DELETE). */
struct rt_hlink dp_rec_prev(const struct dp_rec *r);

/** A history link's parts. */
struct dp_hlink_parts {
    uint64_t epoch; /* low 16 bits of the epoch */
    unsigned core;
    uint64_t segment, offset;
    uint64_t lsn_low; /* LSN mod 2^40 */
};

static inline struct rt_hlink dp_hlink_make(uint64_t epoch, unsigned core, uint64_t segment,
                                            uint64_t offset, uint64_t lsn)
{
    return (struct rt_hlink){ .a = segment << 32 | (offset & 0xffffffffu),
                              .b = (epoch & 0xffff) << 48 | (uint64_t)(core & 0xff) << 40 |
                                   (lsn & 0xffffffffffull) };
}

static inline struct dp_hlink_parts dp_hlink_split(struct rt_hlink l)
{
    return (struct dp_hlink_parts){ .epoch = l.b >> 48,
                                    .core = (unsigned)(l.b >> 40 & 0xff),
                                    .segment = l.a >> 32,
                                    .offset = l.a & 0xffffffffu,
                                    .lsn_low = l.b & 0xffffffffffull };
}

/** Does lsn match a link's LSN check bits? */
static inline int dp_hlink_lsn_matches(struct rt_hlink l, uint64_t lsn)
{
    return (lsn & 0xffffffffffull) == (l.b & 0xffffffffffull);
}

#endif /* DP_RECORD_H */
