/*
 * sf_wfstore.h — one partition's workflows: table + record arena + key store (no DPDK).
 *
 * Layout of the one region given to wf_part_init (offsets from its start; the region holds
 * no pointers, so it can be copied or mapped elsewhere as bytes):
 *
 *   struct wf_part        header: sizes, counters, type table (64-byte aligned)
 *   struct wf_table       the workflow table, key → record index (wf_table.h)
 *   wf_count_rec[cap]     the record arena, indexed by record index; record i is the
 *                         i-th workflow created in this partition (append-only)
 *   key store             append-only byte arena of the (type, id) strings:
 *                           type name:  raw bytes, referenced from the type table
 *                           workflow:   u8 type_index | u8 id_len | id bytes
 *                         a record's key_ref is the offset of its workflow entry, so a
 *                         workflow costs 2 + id_len bytes here (type strings are stored
 *                         once per partition, at most WF_TYPES_MAX of them).
 *
 * Validity: table count == record count; every record r < count has flags & WF_REC_F_LIVE
 * and a key_ref < keystore used bytes whose entry re-hashes to the key that maps to r.
 * Nothing is ever removed. Until the workflow VM lands, a record only counts signals.
 * Single writer: the owner core. Not thread safe.
 *
 * Memory per workflow (perf/table at 100 M workflows over 4096 partitions, capacities from
 * wf_part_capacity_for): table 24.9 B + record 33.3 B + key store 18 B (16-byte ids)
 * = 77 B, 7.7 GB in all.
 *
 * The per-event path: an event touches one table line and one record line. The fast way
 * to apply a burst is wf_burst_apply (or its stages: wf_ref_prefetch,
 * wf_ref_find_primary, wf_ref_find_prefetch, wf_ref_apply), which reads only the 16-byte
 * partition handles (wf_part_ref) and keeps every DRAM line of the burst in flight; the
 * simple per-partition calls (wf_part_prefetch + wf_part_apply) also read the partition's
 * header line and stall on records, about 3-4x slower at 10 M workflows.
 */
#ifndef SF_WFSTORE_H
#define SF_WFSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wf_key.h"
#include "wf_table.h"

#define WF_TYPES_MAX     64u                  /* distinct workflow types per partition */
#define WF_KEYSTORE_MAX  ((size_t)UINT32_MAX) /* key_ref is a u32 offset */
#define WF_KEY_ENTRY_HDR 2u                   /* u8 type index + u8 id length */
#define WF_PART_MAGIC    0x57465054u          /* "WFPT" */
#define WF_REC_F_LIVE    0x1u

/** The per-workflow counting record (until the VM's typed records replace it). */
struct wf_count_rec {
    uint64_t signals;       /* signals applied */
    uint64_t last_event_id; /* event id of the last signal applied */
    uint64_t last_ts_ns;    /* receive time of the last signal applied */
    uint32_t key_ref;       /* offset of its (type, id) entry in the key store */
    uint32_t flags;         /* WF_REC_F_* */
};
_Static_assert(sizeof(struct wf_count_rec) == 32, "two records per cache line (find_prefetch)");

/** Per-partition counters (the reader sums them; only the owner core writes). */
struct wf_part_stats {
    uint64_t applied;       /* signals applied (including the creating one) */
    uint64_t created;       /* workflows created */
    uint64_t full_table;    /* refused: table at capacity or no room found */
    uint64_t full_keystore; /* refused: key store has no room for the id */
    uint64_t full_types;    /* refused: partition already has WF_TYPES_MAX types */
    uint64_t invalid;       /* refused: empty type name */
};

struct wf_part_type {
    uint32_t off; /* offset of the name in the key store */
    uint32_t len;
};

/* Fields are private to sf_wfstore.c; they are here so the per-event lookups inline. The
 * first cache line holds everything the per-event path reads (bucket count and offsets),
 * so a lookup touches this line, one table line and the record line. */
struct wf_part {
    uint32_t magic;
    uint32_t capacity;
    uint32_t bucket_count; /* copy of the table's, so lookups skip the table header */
    uint32_t rec_count;    /* records created == table count (next record index) */
    uint64_t buckets_off, recs_off, keys_off; /* from the start of this struct */
    uint64_t keys_bytes, keys_used;
    uint64_t applied; /* signals applied (struct wf_part_stats.applied) */
    /* second line onwards: touched only when a workflow is created */
    uint64_t table_off;
    uint64_t mem_bytes;
    uint32_t type_count;
    uint32_t spare;
    struct wf_part_stats stats;
    struct wf_part_type types[WF_TYPES_MAX];
} __attribute__((aligned(64)));
_Static_assert(offsetof(struct wf_part, table_off) == 64, "hot fields fill the first line");

enum wf_apply_result {
    WF_APPLIED = 0,  /* applied to an existing workflow */
    WF_CREATED = 1,  /* first signal: workflow created, then applied */
    WF_FULL = -1,    /* table, key store or type table full: refused, counted */
    WF_INVALID = -2, /* empty type name: refused, counted */
};

/** Bytes a partition of capacity workflows (1..WF_TABLE_CAPACITY_MAX) with keystore_bytes
 *  (1..WF_KEYSTORE_MAX) of key store needs; 0 when an argument is out of range. */
size_t wf_part_mem_size(uint32_t capacity, size_t keystore_bytes);

/**
 * Initialise an empty partition in the mem_bytes at p (64-byte aligned; normally a slice
 * of an sf_mem_alloc region). Returns 0, or -EINVAL when an argument is out of range, p is
 * misaligned or mem_bytes < wf_part_mem_size(capacity, keystore_bytes).
 */
int wf_part_init(struct wf_part *p, size_t mem_bytes, uint32_t capacity, size_t keystore_bytes);

/**
 * Find-or-create workflow k = wf_key_make(type, id) and apply one signal to it:
 * signals++, last_event_id = event_id, last_ts_ns = ts_ns. Returns WF_APPLIED,
 * WF_CREATED, or (nothing changed, the matching counter incremented) WF_FULL / WF_INVALID.
 * The strings are read only when the workflow is created.
 */
int wf_part_apply(struct wf_part *p, struct wf_key k, const char *type, uint8_t type_len,
                  const char *id, uint8_t id_len, uint64_t event_id, uint64_t ts_ns);

/**
 * Burst form, stage 3: same as wf_part_apply with rec = wf_part_find(p, k) computed
 * earlier in the burst (the find may be stale only by being WF_REC_NONE for a workflow an
 * earlier event of the same burst created; that case is handled). Same returns.
 */
int wf_part_apply_found(struct wf_part *p, uint32_t rec, struct wf_key k, const char *type,
                        uint8_t type_len, const char *id, uint8_t id_len, uint64_t event_id,
                        uint64_t ts_ns);

static inline const struct wf_bucket *wf_part_buckets(const struct wf_part *p)
{
    return (const struct wf_bucket *)((const char *)p + p->buckets_off);
}

/** Burst form, stage 0 (optional, for owners of many partitions): prefetch the
 *  partition's first line, which stage 1 reads. Can't fail. */
static inline void wf_part_prefetch_header(const struct wf_part *p)
{
    __builtin_prefetch(p, 0, 3);
}

/** Burst form, stage 1: prefetch the table line of k. Can't fail. */
static inline void wf_part_prefetch(const struct wf_part *p, struct wf_key k)
{
    WF_ASSERT_HOT(p->magic == WF_PART_MAGIC);
    __builtin_prefetch(&wf_part_buckets(p)[wf_buckets_primary(p->bucket_count, k)], 0, 3);
}

/** Record index of k, or WF_REC_NONE. Can't fail. */
static inline uint32_t wf_part_find(const struct wf_part *p, struct wf_key k)
{
    WF_ASSERT_HOT(p->magic == WF_PART_MAGIC);
    return wf_buckets_find(wf_part_buckets(p), p->bucket_count, k);
}

/** Burst form, stage 2: record index of k (WF_REC_NONE if absent), and prefetch that
 *  record for writing; when absent, prefetch what creating it writes instead (the next
 *  record, the key store tail, k's secondary bucket). Can't fail. */
static inline uint32_t wf_part_find_prefetch(const struct wf_part *p, struct wf_key k)
{
    uint32_t rec = wf_part_find(p, k);
    const char *base = (const char *)p;
    if (rec != WF_REC_NONE) {
        __builtin_prefetch(base + p->recs_off + (size_t)rec * 32u, 1, 3);
    } else if (p->rec_count < p->capacity) {
        __builtin_prefetch(base + p->recs_off + (size_t)p->rec_count * 32u, 1, 3);
        __builtin_prefetch(base + p->keys_off + p->keys_used, 1, 3);
        __builtin_prefetch(&wf_part_buckets(p)[wf_buckets_secondary(p->bucket_count, k)], 1, 3);
    }
    return rec;
}

/**
 * A partition's lookup handle: all the per-event path needs, in 16 bytes, so that an owner
 * core keeps the handles of all its partitions in one array that stays in L1/L2 (4096 x
 * 16 B = 64 KB) instead of reading each partition's header line, which at millions of
 * workflows is evicted between two events of the same partition (perf/table measures
 * both). The records follow the buckets in the region: recs = buckets + bucket_count.
 * Valid as long as the partition; built once by wf_part_ref_get.
 */
struct wf_part_ref {
    struct wf_bucket *buckets;
    uint32_t bucket_count;
    uint32_t spare;
};
_Static_assert(sizeof(struct wf_part_ref) == 16, "four handles per cache line");

/** Fill *ref for partition p (initialised). Can't fail. */
void wf_part_ref_get(struct wf_part *p, struct wf_part_ref *ref);

static inline struct wf_count_rec *wf_ref_recs(const struct wf_part_ref *r)
{
    return (struct wf_count_rec *)(void *)(r->buckets + r->bucket_count);
}

/** Stage 1 with a handle: prefetch the table line of k. Can't fail. */
static inline void wf_ref_prefetch(const struct wf_part_ref *r, struct wf_key k)
{
    __builtin_prefetch(&r->buckets[wf_buckets_primary(r->bucket_count, k)], 0, 3);
}

/** Stage 2 with a handle: record index of k or WF_REC_NONE; prefetches the record when
 *  found. Can't fail. */
static inline uint32_t wf_ref_find_prefetch(const struct wf_part_ref *r, struct wf_key k)
{
    uint32_t rec = wf_buckets_find(r->buckets, r->bucket_count, k);
    if (rec != WF_REC_NONE)
        __builtin_prefetch(&wf_ref_recs(r)[rec], 1, 3);
    return rec;
}

/**
 * Stage 2 with a handle, deferring second lines: look in k's primary line only. Found:
 * prefetch the record, return its index. Surely absent (not there, no overflow):
 * WF_REC_NONE. Possibly in its secondary line: prefetch that line and return
 * WF_REC_PENDING; resolve it later in the burst with wf_ref_find_prefetch (which then
 * finds both lines in cache). This keeps the ~20-29 % of keys that live in their secondary
 * from stalling on a dependent DRAM miss. Can't fail.
 */
static inline uint32_t wf_ref_find_primary(const struct wf_part_ref *r, struct wf_key k)
{
    const struct wf_bucket *b = &r->buckets[wf_buckets_primary(r->bucket_count, k)];
    uint32_t rec = wf_table_bucket_find(b, k);
    if (rec != WF_REC_NONE) {
        __builtin_prefetch(&wf_ref_recs(r)[rec], 1, 3);
        return rec;
    }
    if (b->overflow == 0)
        return WF_REC_NONE;
    __builtin_prefetch(&r->buckets[wf_buckets_secondary(r->bucket_count, k)], 0, 3);
    return WF_REC_PENDING;
}

/**
 * Stage 3 with a handle, for an EXISTING workflow (rec from wf_ref_find_prefetch, not
 * WF_REC_NONE: for that, call wf_part_apply_found, which creates). Applies one signal
 * without touching the partition header, so the partition's `applied` counter does not
 * count it: the caller counts these (per core). Can't fail.
 */
static inline void wf_ref_apply(const struct wf_part_ref *r, uint32_t rec, uint64_t event_id,
                                uint64_t ts_ns)
{
    WF_ASSERT_HOT(rec != WF_REC_NONE);
    struct wf_count_rec *c = &wf_ref_recs(r)[rec];
    WF_ASSERT_HOT(c->flags & WF_REC_F_LIVE);
    c->signals++;
    c->last_event_id = event_id;
    c->last_ts_ns = ts_ns;
}

#define WF_BURST_MAX 64u /* events per wf_burst_apply call */

/** One signal of a burst, as the owner core gets it from its rings (key computed by rx). */
struct wf_burst_event {
    struct wf_key key;
    uint32_t partition; /* wf_key_partition(key, ...): index into parts[] and refs[] */
    uint8_t type_len, id_len;
    const char *type, *id; /* read only when the workflow is created */
    uint64_t event_id, ts_ns;
};

/**
 * Apply a burst of n (<= WF_BURST_MAX) signals to the owner core's partitions, the fast
 * way: prefetch every table line, look in primary lines (prefetching records or
 * secondary lines), resolve the secondaries, then apply in order. Same effect as calling
 * wf_part_apply for each event in order (an event may create a workflow a later event of
 * the same burst uses). parts[p] and refs[p] (from wf_part_ref_get) must be valid for
 * every event's partition. result[i] gets event i's enum wf_apply_result. Signals applied
 * to existing workflows through the handles are not counted in the partitions' `applied`
 * counters (the caller counts per core). Returns the number of events refused (WF_FULL
 * or WF_INVALID).
 */
uint32_t wf_burst_apply(struct wf_part *const *parts, const struct wf_part_ref *refs,
                        const struct wf_burst_event *ev, uint32_t n, int8_t *result);

/** The record of k, or NULL when absent. Valid until the region is freed. */
const struct wf_count_rec *wf_part_get(const struct wf_part *p, struct wf_key k);

/** The record at index rec (< wf_part_count, asserted). Can't fail. */
const struct wf_count_rec *wf_part_rec(const struct wf_part *p, uint32_t rec);

/**
 * Read back the strings of the key store entry at key_ref (a record's key_ref). Pointers
 * stay valid until the region is freed; strings are not NUL-terminated. Returns 0, or
 * -EINVAL when key_ref does not lie inside a stored entry.
 */
int wf_part_key(const struct wf_part *p, uint32_t key_ref, const char **type, uint8_t *type_len,
                const char **id, uint8_t *id_len);

/** Workflows in the partition. Can't fail. */
uint32_t wf_part_count(const struct wf_part *p);

/** Key store bytes used (type names + workflow entries). Can't fail. */
size_t wf_part_keystore_used(const struct wf_part *p);

/** The partition's table (for statistics such as wf_table_in_secondary). Can't fail. */
const struct wf_table *wf_part_table(const struct wf_part *p);

/** Copy the partition's counters to *out. Can't fail. */
void wf_part_stats_get(const struct wf_part *p, struct wf_part_stats *out);

/**
 * Iterate the partition's workflows in table slot order (see wf_table_next): start with
 * *cursor = 0; returns false at the end. Can't fail.
 */
bool wf_part_next(const struct wf_part *p, uint64_t *cursor, struct wf_key *k,
                  const struct wf_count_rec **rec);

/**
 * Per-partition capacity so that workflows_total workflows spread by hash over
 * partition_count partitions fit with overwhelming probability: the mean plus 6 standard
 * deviations of the binomial count, plus 16. 0 when partition_count is 0 or the result
 * exceeds WF_TABLE_CAPACITY_MAX. Can't fail.
 */
uint32_t wf_part_capacity_for(uint64_t workflows_total, uint32_t partition_count);

#endif /* SF_WFSTORE_H */
