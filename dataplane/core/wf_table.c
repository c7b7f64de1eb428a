/* wf_table.c — bucketized two-choice cuckoo table (design comment in wf_table.h). */
#include "wf_table.h"

#include <errno.h>
#include <string.h>

static uint32_t wf_table_bucket_count(uint32_t capacity)
{
    /* ceil(capacity / (slots * load)), at least 2 so the two choices differ. */
    uint64_t denom = (uint64_t)WF_TABLE_BUCKET_SLOTS * WF_TABLE_LOAD_PCT;
    uint64_t nb = ((uint64_t)capacity * 100 + denom - 1) / denom;
    /* Small tables fill unevenly: add ceil(sqrt(nb)) + 2 buckets of slack (0.5 % at 37 K
     * buckets, 20 % at 45). Without it ~0.3 % of random fills of 7..100 keys failed before
     * reaching capacity; with it at most 1 in 10^5 did (3 * 10^5 fills per size). */
    uint64_t root = 1;
    while (root * root < nb)
        root++;
    nb += root + 2;
    if (nb < 2)
        nb = 2;
    assert(nb * WF_TABLE_BUCKET_SLOTS * WF_TABLE_LOAD_PCT >= (uint64_t)capacity * 100);
    assert(nb <= UINT32_MAX);
    return (uint32_t)nb;
}

size_t wf_table_mem_size(uint32_t capacity)
{
    if (capacity == 0 || capacity > WF_TABLE_CAPACITY_MAX)
        return 0;
    return sizeof(struct wf_table) +
           (size_t)wf_table_bucket_count(capacity) * sizeof(struct wf_bucket);
}

int wf_table_init(struct wf_table *t, size_t mem_bytes, uint32_t capacity)
{
    size_t need = wf_table_mem_size(capacity);
    if (t == NULL || need == 0 || mem_bytes < need || (uintptr_t)t % WF_TABLE_LINE_BYTES != 0)
        return -EINVAL;

    memset(t, 0, need);
    t->capacity = capacity;
    t->bucket_count = wf_table_bucket_count(capacity);
    t->mem_bytes = mem_bytes;
    for (uint32_t b = 0; b < t->bucket_count; b++)
        for (uint32_t s = 0; s < WF_TABLE_BUCKET_SLOTS; s++)
            t->bucket[b].rec[s] = WF_REC_NONE;
    t->magic = WF_TABLE_MAGIC;
    assert(t->count == 0 && t->bucket_count >= 2);
    return 0;
}

/* Account a key that now lives in bucket `to` (was in `from`, or new when from == NONE). */
static void wf_table_note_place(struct wf_table *t, struct wf_key k, uint32_t from, uint32_t to)
{
    uint32_t primary = wf_table_primary(t, k);
    struct wf_bucket *pb = &t->bucket[primary];
    bool was_secondary = from != WF_REC_NONE && from != primary;
    bool is_secondary = to != primary;
    assert(to == primary || to == wf_table_secondary(t, k));
    if (was_secondary == is_secondary)
        return;
    if (is_secondary) {
        t->in_secondary++;
        if (pb->overflow != UINT16_MAX)
            pb->overflow++;
    } else {
        assert(t->in_secondary > 0 && pb->overflow > 0);
        t->in_secondary--;
        if (pb->overflow != UINT16_MAX) /* saturated: stays, lookups check both lines */
            pb->overflow--;
    }
}

static void wf_table_append(struct wf_table *t, uint32_t b, struct wf_key k, uint32_t rec)
{
    struct wf_bucket *bk = &t->bucket[b];
    assert(bk->used < WF_TABLE_BUCKET_SLOTS && rec != WF_REC_NONE);
    bk->key[bk->used] = k;
    bk->rec[bk->used] = rec;
    bk->used++;
    wf_table_note_place(t, k, WF_REC_NONE, b);
}

static uint32_t wf_table_other(const struct wf_table *t, struct wf_key k, uint32_t b)
{
    uint32_t p = wf_table_primary(t, k);
    return b == p ? wf_table_secondary(t, k) : p;
}

/* One node of the eviction search: bucket, and which slot of the parent moves into it. */
struct wf_table_bfs_node {
    uint32_t bucket;
    int16_t parent; /* node index, -1 for the two roots */
    uint8_t slot;   /* slot in the parent's bucket whose key's other bucket is `bucket` */
};

static bool wf_table_bfs_seen(const struct wf_table_bfs_node *q, uint32_t n, uint32_t b)
{
    for (uint32_t i = 0; i < n; i++)
        if (q[i].bucket == b)
            return true;
    return false;
}

/*
 * Found a free slot in bucket `free_b` for the key in q[node].bucket slot `slot`: shift
 * keys one step along the path towards it, leaving a hole in the root, then fill the root
 * hole with the new key.
 */
static void wf_table_shift_path(struct wf_table *t, const struct wf_table_bfs_node *q, int node,
                                uint32_t slot, uint32_t free_b, struct wf_key k, uint32_t rec)
{
    struct wf_bucket *src = &t->bucket[q[node].bucket];
    struct wf_bucket *dst = &t->bucket[free_b];
    assert(dst->used < WF_TABLE_BUCKET_SLOTS);
    dst->key[dst->used] = src->key[slot];
    dst->rec[dst->used] = src->rec[slot];
    dst->used++;
    wf_table_note_place(t, src->key[slot], q[node].bucket, free_b);

    /* Hole at (q[node].bucket, slot); pull each parent's key down into it. */
    while (q[node].parent >= 0) {
        const struct wf_table_bfs_node *child = &q[node];
        struct wf_bucket *pb = &t->bucket[q[child->parent].bucket];
        struct wf_bucket *cb = &t->bucket[child->bucket];
        cb->key[slot] = pb->key[child->slot];
        cb->rec[slot] = pb->rec[child->slot];
        wf_table_note_place(t, cb->key[slot], q[child->parent].bucket, child->bucket);
        slot = child->slot;
        node = child->parent;
    }
    struct wf_bucket *root = &t->bucket[q[node].bucket];
    root->key[slot] = k;
    root->rec[slot] = rec;
    wf_table_note_place(t, k, WF_REC_NONE, q[node].bucket);
    t->evictions++;
}

/* Both candidate buckets are full: search for a path of moves to a free slot. */
static int wf_table_insert_evict(struct wf_table *t, struct wf_key k, uint32_t rec)
{
    struct wf_table_bfs_node q[WF_TABLE_BFS_NODES_MAX];
    _Static_assert(WF_TABLE_BFS_NODES_MAX <= INT16_MAX, "parent index fits int16");
    uint32_t n = 0;
    q[n++] = (struct wf_table_bfs_node){ wf_table_primary(t, k), -1, 0 };
    q[n++] = (struct wf_table_bfs_node){ wf_table_secondary(t, k), -1, 0 };

    for (uint32_t head = 0; head < n; head++) {
        const struct wf_bucket *b = &t->bucket[q[head].bucket];
        assert(b->used == WF_TABLE_BUCKET_SLOTS); /* only full buckets are queued */
        for (uint32_t s = 0; s < WF_TABLE_BUCKET_SLOTS; s++) {
            uint32_t other = wf_table_other(t, b->key[s], q[head].bucket);
            if (t->bucket[other].used < WF_TABLE_BUCKET_SLOTS) {
                wf_table_shift_path(t, q, (int)head, s, other, k, rec);
                return 0;
            }
            if (n < WF_TABLE_BFS_NODES_MAX && !wf_table_bfs_seen(q, n, other))
                q[n++] = (struct wf_table_bfs_node){ other, (int16_t)head, (uint8_t)s };
        }
    }
    return -ENOSPC;
}

int wf_table_insert(struct wf_table *t, struct wf_key k, uint32_t rec)
{
    assert(t->magic == WF_TABLE_MAGIC && t->count <= t->capacity);
    assert(rec < WF_TABLE_CAPACITY_MAX);
    if (wf_table_find(t, k) != WF_REC_NONE)
        return -EEXIST;
    if (t->count == t->capacity)
        return -ENOSPC;

    uint32_t p = wf_table_primary(t, k);
    uint32_t s = wf_table_secondary(t, k);
    if (t->bucket[p].used < WF_TABLE_BUCKET_SLOTS) {
        wf_table_append(t, p, k, rec);
    } else if (t->bucket[s].used < WF_TABLE_BUCKET_SLOTS) {
        wf_table_append(t, s, k, rec);
    } else {
        int rc = wf_table_insert_evict(t, k, rec);
        if (rc != 0)
            return rc;
    }
    t->count++;
    assert(wf_table_find(t, k) == rec);
    return 0;
}

/* Index of k in bucket b, or WF_TABLE_BUCKET_SLOTS when absent. */
static uint32_t wf_table_slot_of(const struct wf_bucket *b, struct wf_key k)
{
    for (uint32_t i = 0; i < b->used; i++)
        if (wf_key_equal(b->key[i], k))
            return i;
    return WF_TABLE_BUCKET_SLOTS;
}

int wf_table_delete(struct wf_table *t, struct wf_key k)
{
    assert(t->magic == WF_TABLE_MAGIC && t->count <= t->capacity);
    uint32_t primary = wf_table_primary(t, k);
    uint32_t b = primary;
    uint32_t s = wf_table_slot_of(&t->bucket[b], k);
    if (s == WF_TABLE_BUCKET_SLOTS) {
        /* also when the overflow count is 0: a key is never absent from a line it lives in */
        b = wf_table_secondary(t, k);
        s = wf_table_slot_of(&t->bucket[b], k);
        if (s == WF_TABLE_BUCKET_SLOTS)
            return -ENOENT;
    }
    struct wf_bucket *bk = &t->bucket[b];
    assert(bk->used > 0 && s < bk->used && t->count > 0);
    uint32_t last = bk->used - 1u;
    bk->key[s] = bk->key[last];
    bk->rec[s] = bk->rec[last];
    bk->key[last] = (struct wf_key){ 0, 0 };
    bk->rec[last] = WF_REC_NONE;
    bk->used = (uint8_t)last;
    if (b != primary) {
        struct wf_bucket *pb = &t->bucket[primary];
        assert(t->in_secondary > 0 && pb->overflow > 0);
        t->in_secondary--;
        if (pb->overflow != UINT16_MAX) /* saturated: stays, lookups check both lines */
            pb->overflow--;
    }
    t->count--;
    assert(wf_table_find(t, k) == WF_REC_NONE);
    return 0;
}

uint32_t wf_table_count(const struct wf_table *t)
{
    assert(t->magic == WF_TABLE_MAGIC && t->count <= t->capacity);
    return t->count;
}

uint32_t wf_table_capacity(const struct wf_table *t)
{
    assert(t->magic == WF_TABLE_MAGIC);
    return t->capacity;
}

uint32_t wf_table_in_secondary(const struct wf_table *t)
{
    assert(t->magic == WF_TABLE_MAGIC && t->in_secondary <= t->count);
    return t->in_secondary;
}

bool wf_table_next(const struct wf_table *t, uint64_t *cursor, struct wf_key *k, uint32_t *rec)
{
    assert(t->magic == WF_TABLE_MAGIC && cursor != NULL);
    uint64_t end = (uint64_t)t->bucket_count * WF_TABLE_BUCKET_SLOTS;
    for (uint64_t c = *cursor; c < end; c++) {
        const struct wf_bucket *b = &t->bucket[c / WF_TABLE_BUCKET_SLOTS];
        uint32_t s = (uint32_t)(c % WF_TABLE_BUCKET_SLOTS);
        if (s >= b->used) {
            c += WF_TABLE_BUCKET_SLOTS - 1 - s; /* rest of this bucket is empty */
            continue;
        }
        assert(b->rec[s] != WF_REC_NONE);
        *k = b->key[s];
        *rec = b->rec[s];
        *cursor = c + 1;
        return true;
    }
    *cursor = end;
    return false;
}

int wf_table_verify(const struct wf_table *t)
{
    if (t == NULL || t->magic != WF_TABLE_MAGIC || t->bucket_count < 2 || t->count > t->capacity)
        return -EUCLEAN;
    uint64_t count = 0, secondary = 0;
    for (uint32_t b = 0; b < t->bucket_count; b++) {
        const struct wf_bucket *bk = &t->bucket[b];
        if (bk->used > WF_TABLE_BUCKET_SLOTS)
            return -EUCLEAN;
        for (uint32_t s = 0; s < WF_TABLE_BUCKET_SLOTS; s++) {
            bool filled = s < bk->used;
            if (filled != (bk->rec[s] != WF_REC_NONE))
                return -EUCLEAN;
            if (!filled)
                continue;
            uint32_t p = wf_table_primary(t, bk->key[s]);
            if (b != p && b != wf_table_secondary(t, bk->key[s]))
                return -EUCLEAN;
            if (b != p) {
                secondary++;
                if (t->bucket[p].overflow == 0)
                    return -EUCLEAN; /* lookup would miss this key */
            }
            count++;
        }
    }
    if (count != t->count || secondary != t->in_secondary)
        return -EUCLEAN;
    /* The counts add up to the keys in secondaries (saturated counts are left out, then
     * the rest add up to at most that). */
    uint64_t overflow_sum = 0;
    bool saturated = false;
    for (uint32_t b = 0; b < t->bucket_count; b++) {
        if (t->bucket[b].overflow == UINT16_MAX)
            saturated = true;
        else
            overflow_sum += t->bucket[b].overflow;
    }
    return (saturated ? overflow_sum <= secondary : overflow_sum == secondary) ? 0 : -EUCLEAN;
}
