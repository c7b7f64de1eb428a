/*
 * wf_table.h — one partition's workflow table: 128-bit key → record index (no DPDK).
 *
 * Design (docs/architecture.md#event-path): owners look up each event's workflow here; at 100 M
 * workflows the table is far larger than any cache, so the cost of an event is the number
 * of DRAM lines a lookup touches. The table is therefore laid out in cache lines:
 *
 *   struct wf_table            64-byte header (capacity, bucket count, count, stats)
 *   struct wf_bucket[nb]       one 64-byte cache line each:
 *       key[3]   3 x 16 B      the 128-bit identities (wf_key), 16-byte aligned
 *       rec[3]   3 x 4 B       record index of each slot (WF_REC_NONE when empty)
 *       used     1 B           slots 0..used-1 are filled, the rest empty
 *       spare    1 B
 *       overflow 2 B           keys whose PRIMARY bucket is this one but that live in their
 *                              secondary bucket (saturating at UINT16_MAX: then exact
 *                              knowledge is lost and lookups always look at the secondary)
 *
 * Placement: bucketized cuckoo hashing with two choices. A key's primary bucket comes from
 * the high 32 bits of k.lo, its secondary from the low 32 bits (multiply-shift range
 * reduction, so the bucket count need not be a power of two and sizing is exact). Insert
 * puts a key in its primary when there is room, else its secondary, else it moves keys to
 * their other bucket along the shortest path found by a breadth-first search of at most
 * WF_TABLE_BFS_NODES_MAX buckets. Lookup reads the primary line; only when the key is not
 * there and the primary's overflow count is non-zero does it read the secondary line. So
 * a lookup touches one line in the common case and never more than two: no probe
 * sequence, no tail.
 *
 * Delete (wf_table_delete): the key's slot is filled with the LAST filled slot of the same
 * bucket (so slots 0..used-1 stay filled), the vacated last slot is cleared (key zeroed,
 * WF_REC_NONE: the bytes of a table are a function of its insert/delete sequence), and a
 * key that lived in its secondary bucket decrements its primary's overflow count (a
 * saturated count stays saturated: lookups of that primary then keep reading both lines).
 * Nothing is moved back from secondaries: a delete touches at most two lines and never
 * moves another bucket's keys, so refs of other keys never change. The runtime deletes the
 * tombstones of completed workflows whose retention has passed (rt_sweep_tombstones).
 *
 * Sizing: nb = ceil(capacity / (3 * WF_TABLE_LOAD_PCT %)) + ceil(sqrt) + 2 slack buckets,
 * i.e. the table is at most ~90 % full, costing 64 / (3 * 0.9) = 23.7 bytes per workflow
 * when full (the slack adds 0.5 % at 100 K workflows, more for tiny tables). Full
 * condition: wf_table_insert returns -ENOSPC once count == capacity, or when the bounded
 * search finds no free slot (not observed at or below 93 % load in 16 M simulated inserts;
 * about 1 in 10^5 random fills of a 10-key table).
 *
 * Trade-off, measured (tests/core and a table benchmark since removed): with 3 slots per
 * line, at 90 % load about 71 % of keys sit in their primary line (the Poisson overflow
 * bound for 3-slot buckets at 90 % load is 81 %), so ~29 % of hits at full load read a
 * second line; tables sized with slack (the daemon's per-partition capacity) run below full
 * load and do better. A separate tag array (1-byte tags + 20-byte slots, ~23 B/workflow)
 * would make every hit touch two lines (tag line, then slot line); linear probing over the
 * same buckets keeps ~75 % in the home line but has an unbounded tail (probe lengths of
 * 300+ buckets at 90 % load). 4 slots per line would need a 12-byte identity, weaker than
 * the 128-bit key (docs/architecture.md#event-path). Keys in a secondary line cost a second,
 * dependent miss unless the caller defers them; prefetching both lines of every key instead
 * was slower (one more line of bandwidth per event).
 *
 * Iteration (wf_table_next) walks slots in bucket order; a cursor stays valid across calls
 * as long as no insert or delete happens in between (an insert may move keys between
 * buckets, a delete moves the bucket's last key into the hole). A walker that deletes the
 * key at slot position c itself re-examines position c (it now holds the moved key).
 * Single writer: the owner core. Not thread safe.
 */
#ifndef WF_TABLE_H
#define WF_TABLE_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wf_key.h"

#define WF_REC_NONE            UINT32_MAX
#define WF_TABLE_BUCKET_SLOTS  3u
#define WF_TABLE_LOAD_PCT      90u  /* fill limit at capacity, percent of slots */
#define WF_TABLE_BFS_NODES_MAX 256u /* buckets examined by one insert's eviction search */
#define WF_TABLE_CAPACITY_MAX  (1u << 31)
#define WF_TABLE_LINE_BYTES    64u
#define WF_TABLE_MAGIC         0x57465442u /* "WFTB" */

struct wf_bucket {
    struct wf_key key[WF_TABLE_BUCKET_SLOTS];
    uint32_t rec[WF_TABLE_BUCKET_SLOTS];
    uint8_t used;
    uint8_t spare;
    uint16_t overflow;
} __attribute__((aligned(WF_TABLE_LINE_BYTES)));
_Static_assert(sizeof(struct wf_bucket) == WF_TABLE_LINE_BYTES, "a bucket is one cache line");
_Static_assert(WF_TABLE_CAPACITY_MAX < WF_REC_NONE, "record indices never look special");
_Static_assert(offsetof(struct wf_bucket, rec) == 48, "keys first, 16-byte aligned");
_Static_assert(offsetof(struct wf_bucket, overflow) == 62, "header in the last 4 bytes");

/* Fields are private to wf_table.c; they are here so the lookup can be inlined. */
struct wf_table {
    uint32_t magic;
    uint32_t capacity;     /* max keys (insert refuses beyond) */
    uint32_t bucket_count; /* >= 2 */
    uint32_t count;        /* keys stored */
    uint32_t in_secondary; /* keys stored in their secondary bucket */
    uint32_t spare;
    uint64_t evictions; /* inserts that had to move other keys */
    uint64_t mem_bytes; /* bytes given to init */
    uint8_t pad[24];
    struct wf_bucket bucket[];
} __attribute__((aligned(WF_TABLE_LINE_BYTES)));
_Static_assert(sizeof(struct wf_table) == WF_TABLE_LINE_BYTES, "header is one cache line");

/** Bytes of memory a table of capacity (1..WF_TABLE_CAPACITY_MAX) needs; 0 when capacity
 *  is out of range. Can't fail. */
size_t wf_table_mem_size(uint32_t capacity);

/**
 * Initialise an empty table of capacity in the mem_bytes at t (64-byte aligned, zeroed or
 * not). Returns 0, or -EINVAL when capacity is out of range, t is misaligned or mem_bytes
 * < wf_table_mem_size(capacity).
 */
int wf_table_init(struct wf_table *t, size_t mem_bytes, uint32_t capacity);

static inline uint32_t wf_table_reduce(uint32_t h, uint32_t n)
{
    return (uint32_t)(((uint64_t)h * n) >> 32);
}

/** Primary bucket of k among bucket_count buckets (high 32 bits of k.lo). */
static inline uint32_t wf_buckets_primary(uint32_t bucket_count, struct wf_key k)
{
    return wf_table_reduce((uint32_t)(k.lo >> 32), bucket_count);
}

/** Secondary bucket of k (low 32 bits of k.lo), never equal to the primary. */
static inline uint32_t wf_buckets_secondary(uint32_t bucket_count, struct wf_key k)
{
    uint32_t p = wf_buckets_primary(bucket_count, k);
    uint32_t s = wf_table_reduce((uint32_t)k.lo, bucket_count);
    if (s == p)
        s = p + 1 == bucket_count ? 0 : p + 1;
    return s;
}

static inline uint32_t wf_table_bucket_find(const struct wf_bucket *b, struct wf_key k)
{
    WF_ASSERT_HOT(b->used <= WF_TABLE_BUCKET_SLOTS);
    for (uint32_t i = 0; i < b->used; i++)
        if (wf_key_equal(b->key[i], k))
            return b->rec[i];
    return WF_REC_NONE;
}

/** Lookup on a bucket array (the table's, or one a caller keeps the address of): record
 *  index of k or WF_REC_NONE. Reads the primary line, and the secondary only when k is
 *  not in the primary and the primary has overflowed. Can't fail. */
static inline uint32_t wf_buckets_find(const struct wf_bucket *bk, uint32_t bucket_count,
                                       struct wf_key k)
{
    const struct wf_bucket *b = &bk[wf_buckets_primary(bucket_count, k)];
    uint32_t rec = wf_table_bucket_find(b, k);
    if (rec != WF_REC_NONE || b->overflow == 0)
        return rec;
    return wf_table_bucket_find(&bk[wf_buckets_secondary(bucket_count, k)], k);
}

static inline uint32_t wf_table_primary(const struct wf_table *t, struct wf_key k)
{
    return wf_buckets_primary(t->bucket_count, k);
}

static inline uint32_t wf_table_secondary(const struct wf_table *t, struct wf_key k)
{
    return wf_buckets_secondary(t->bucket_count, k);
}

/** Prefetch the primary line of k (the first line a lookup reads). Can't fail. */
static inline void wf_table_prefetch(const struct wf_table *t, struct wf_key k)
{
    __builtin_prefetch(&t->bucket[wf_table_primary(t, k)], 0, 3);
}

/** Prefetch both lines of k (for callers that prefer bandwidth to a second miss). */
static inline void wf_table_prefetch_both(const struct wf_table *t, struct wf_key k)
{
    __builtin_prefetch(&t->bucket[wf_table_primary(t, k)], 0, 3);
    __builtin_prefetch(&t->bucket[wf_table_secondary(t, k)], 0, 3);
}

/** Record index of key k, or WF_REC_NONE when absent. Reads one line, or two when k is not
 *  in its primary and that bucket has overflowed. Can't fail. */
static inline uint32_t wf_table_find(const struct wf_table *t, struct wf_key k)
{
    WF_ASSERT_HOT(t->magic == WF_TABLE_MAGIC);
    return wf_buckets_find(t->bucket, t->bucket_count, k);
}

/**
 * Insert k → rec (rec != WF_REC_NONE). Returns 0; -EEXIST when k is present (nothing
 * changes); -ENOSPC when the table holds capacity keys or the bounded eviction search
 * found no room (nothing changes). May move other keys between their two buckets.
 */
int wf_table_insert(struct wf_table *t, struct wf_key k, uint32_t rec);

/**
 * Remove k. Returns 0, or -ENOENT when k is absent (nothing changes). Fills the hole with
 * the bucket's last filled slot (see "Delete" above); moves no key to another bucket. Reads
 * one or two lines. Can't fail otherwise.
 */
int wf_table_delete(struct wf_table *t, struct wf_key k);

/** Keys stored. Can't fail. */
uint32_t wf_table_count(const struct wf_table *t);

/** Maximum keys (the capacity given to init). Can't fail. */
uint32_t wf_table_capacity(const struct wf_table *t);

/** Keys stored outside their primary line (whose hits read two lines). Can't fail. */
uint32_t wf_table_in_secondary(const struct wf_table *t);

/**
 * Check the table's invariants, O(buckets): used <= 3; filled slots hold a record, empty
 * ones WF_REC_NONE; each key sits in its primary or secondary bucket; every key in its
 * secondary has a non-zero overflow count in its primary (else lookups would miss it);
 * the overflow counts add up to the keys in secondaries; totals match count and
 * in_secondary. For tests and for checking a table loaded from a snapshot.
 * Returns 0, or -EUCLEAN at the first violation.
 */
int wf_table_verify(const struct wf_table *t);

/**
 * Iterate in slot order: start with *cursor = 0; each call that returns true stores the
 * next key and its record index and advances *cursor; returns false at the end. Visits
 * each key exactly once when no insert happens during the walk. Can't fail.
 */
bool wf_table_next(const struct wf_table *t, uint64_t *cursor, struct wf_key *k, uint32_t *rec);

#endif /* WF_TABLE_H */
