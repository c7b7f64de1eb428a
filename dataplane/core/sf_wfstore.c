/* sf_wfstore.c — one partition's workflows (layout in sf_wfstore.h). */
#include "sf_wfstore.h"

#include <errno.h>
#include <string.h>

#define WF_PART_ALIGN 64u

static size_t wf_part_align(size_t v)
{
    return (v + WF_PART_ALIGN - 1) & ~(size_t)(WF_PART_ALIGN - 1);
}

static struct wf_table *wf_part_tab(const struct wf_part *p)
{
    return (struct wf_table *)((char *)p + p->table_off);
}

static struct wf_count_rec *wf_part_recs(const struct wf_part *p)
{
    return (struct wf_count_rec *)((char *)p + p->recs_off);
}

static uint8_t *wf_part_keys(const struct wf_part *p)
{
    return (uint8_t *)p + p->keys_off;
}

size_t wf_part_mem_size(uint32_t capacity, size_t keystore_bytes)
{
    size_t table = wf_table_mem_size(capacity);
    if (table == 0 || keystore_bytes == 0 || keystore_bytes > WF_KEYSTORE_MAX)
        return 0;
    return wf_part_align(sizeof(struct wf_part)) + wf_part_align(table) +
           wf_part_align((size_t)capacity * sizeof(struct wf_count_rec)) +
           wf_part_align(keystore_bytes);
}

int wf_part_init(struct wf_part *p, size_t mem_bytes, uint32_t capacity, size_t keystore_bytes)
{
    size_t need = wf_part_mem_size(capacity, keystore_bytes);
    if (p == NULL || need == 0 || mem_bytes < need || (uintptr_t)p % WF_PART_ALIGN != 0)
        return -EINVAL;

    memset(p, 0, sizeof(*p));
    p->capacity = capacity;
    p->mem_bytes = mem_bytes;
    p->table_off = wf_part_align(sizeof(struct wf_part));
    p->buckets_off = p->table_off + sizeof(struct wf_table);
    p->recs_off = p->table_off + wf_part_align(wf_table_mem_size(capacity));
    p->keys_off = p->recs_off + wf_part_align((size_t)capacity * sizeof(struct wf_count_rec));
    p->keys_bytes = keystore_bytes;
    assert(p->keys_off + wf_part_align(keystore_bytes) == need);

    int rc = wf_table_init(wf_part_tab(p), wf_table_mem_size(capacity), capacity);
    assert(rc == 0); /* sizes and alignment were checked above */
    (void)rc;
    p->bucket_count = wf_part_tab(p)->bucket_count;
    assert(p->recs_off == p->buckets_off + (uint64_t)p->bucket_count * sizeof(struct wf_bucket));
    assert((const void *)wf_part_buckets(p) == (const void *)wf_part_tab(p)->bucket);
    p->magic = WF_PART_MAGIC;
    return 0;
}

/* Index of type in the partition's type table, adding it when new; -1 when the table or
 * the key store is full (counted). */
static int wf_part_type_index(struct wf_part *p, const char *type, uint8_t type_len)
{
    const uint8_t *keys = wf_part_keys(p);
    for (uint32_t i = 0; i < p->type_count; i++)
        if (p->types[i].len == type_len && memcmp(keys + p->types[i].off, type, type_len) == 0)
            return (int)i;
    if (p->type_count == WF_TYPES_MAX) {
        p->stats.full_types++;
        return -1;
    }
    if (p->keys_bytes - p->keys_used < type_len) {
        p->stats.full_keystore++;
        return -1;
    }
    struct wf_part_type *t = &p->types[p->type_count];
    t->off = (uint32_t)p->keys_used;
    t->len = type_len;
    memcpy(wf_part_keys(p) + p->keys_used, type, type_len);
    p->keys_used += type_len;
    assert(p->keys_used <= p->keys_bytes);
    return (int)p->type_count++;
}

/* Create workflow k: type table, key store entry, table slot, record. Returns the new
 * record index, or WF_REC_NONE when something is full (counted). */
static uint32_t wf_part_create(struct wf_part *p, struct wf_key k, const char *type,
                               uint8_t type_len, const char *id, uint8_t id_len)
{
    assert(wf_key_equal(k, wf_key_make(type, type_len, id, id_len)));
    struct wf_table *t = wf_part_tab(p);
    uint32_t rec = p->rec_count;
    assert(rec == wf_table_count(t));
    if (rec == p->capacity) {
        p->stats.full_table++;
        return WF_REC_NONE;
    }
    int type_index = wf_part_type_index(p, type, type_len);
    if (type_index < 0)
        return WF_REC_NONE;
    size_t entry = WF_KEY_ENTRY_HDR + (size_t)id_len;
    if (p->keys_bytes - p->keys_used < entry) {
        p->stats.full_keystore++;
        return WF_REC_NONE;
    }
    if (wf_table_insert(t, k, rec) != 0) {
        p->stats.full_table++;
        return WF_REC_NONE;
    }

    uint8_t *e = wf_part_keys(p) + p->keys_used;
    e[0] = (uint8_t)type_index;
    e[1] = id_len;
    memcpy(e + WF_KEY_ENTRY_HDR, id, id_len);
    struct wf_count_rec *r = &wf_part_recs(p)[rec];
    *r = (struct wf_count_rec){ .key_ref = (uint32_t)p->keys_used, .flags = WF_REC_F_LIVE };
    p->keys_used += entry;
    p->stats.created++;
    p->rec_count++;
    assert(p->keys_used <= p->keys_bytes && wf_table_count(t) == rec + 1);
    assert(p->rec_count == rec + 1);
    return rec;
}

int wf_part_apply_found(struct wf_part *p, uint32_t rec, struct wf_key k, const char *type,
                        uint8_t type_len, const char *id, uint8_t id_len, uint64_t event_id,
                        uint64_t ts_ns)
{
    assert(p->magic == WF_PART_MAGIC);
    int result = WF_APPLIED;
    if (rec == WF_REC_NONE) {
        rec = wf_part_find(p, k); /* an earlier event of the burst may have created it */
        if (rec == WF_REC_NONE) {
            if (type_len == 0) {
                p->stats.invalid++;
                return WF_INVALID;
            }
            rec = wf_part_create(p, k, type, type_len, id, id_len);
            if (rec == WF_REC_NONE)
                return WF_FULL;
            result = WF_CREATED;
        }
    }
    assert(rec < p->rec_count);
    struct wf_count_rec *r = &wf_part_recs(p)[rec];
    assert(r->flags & WF_REC_F_LIVE);
    r->signals++;
    r->last_event_id = event_id;
    r->last_ts_ns = ts_ns;
    p->applied++;
    return result;
}

int wf_part_apply(struct wf_part *p, struct wf_key k, const char *type, uint8_t type_len,
                  const char *id, uint8_t id_len, uint64_t event_id, uint64_t ts_ns)
{
    assert(p->magic == WF_PART_MAGIC);
    uint32_t rec = wf_part_find(p, k);
    return wf_part_apply_found(p, rec, k, type, type_len, id, id_len, event_id, ts_ns);
}

void wf_part_ref_get(struct wf_part *p, struct wf_part_ref *ref)
{
    assert(p->magic == WF_PART_MAGIC && ref != NULL);
    *ref = (struct wf_part_ref){ .buckets = (struct wf_bucket *)((char *)p + p->buckets_off),
                                 .bucket_count = p->bucket_count };
    assert((char *)wf_ref_recs(ref) == (char *)p + p->recs_off);
}

uint32_t wf_burst_apply(struct wf_part *const *parts, const struct wf_part_ref *refs,
                        const struct wf_burst_event *ev, uint32_t n, int8_t *result)
{
    assert(n <= WF_BURST_MAX && (n == 0 || (parts && refs && ev && result)));
    uint32_t rec[WF_BURST_MAX];
    uint32_t refused = 0;
    for (uint32_t i = 0; i < n; i++)
        wf_ref_prefetch(&refs[ev[i].partition], ev[i].key);
    for (uint32_t i = 0; i < n; i++)
        rec[i] = wf_ref_find_primary(&refs[ev[i].partition], ev[i].key);
    for (uint32_t i = 0; i < n; i++)
        if (rec[i] == WF_REC_PENDING)
            rec[i] = wf_ref_find_prefetch(&refs[ev[i].partition], ev[i].key);
    for (uint32_t i = 0; i < n; i++) {
        const struct wf_burst_event *e = &ev[i];
        if (rec[i] != WF_REC_NONE) {
            wf_ref_apply(&refs[e->partition], rec[i], e->event_id, e->ts_ns);
            result[i] = WF_APPLIED;
            continue;
        }
        int r = wf_part_apply_found(parts[e->partition], WF_REC_NONE, e->key, e->type, e->type_len,
                                    e->id, e->id_len, e->event_id, e->ts_ns);
        result[i] = (int8_t)r;
        refused += r < 0;
    }
    assert(refused <= n);
    return refused;
}

const struct wf_count_rec *wf_part_rec(const struct wf_part *p, uint32_t rec)
{
    assert(p->magic == WF_PART_MAGIC);
    assert(rec < p->rec_count && p->rec_count == wf_table_count(wf_part_tab(p)));
    return &wf_part_recs(p)[rec];
}

const struct wf_count_rec *wf_part_get(const struct wf_part *p, struct wf_key k)
{
    uint32_t rec = wf_part_find(p, k);
    return rec == WF_REC_NONE ? NULL : wf_part_rec(p, rec);
}

int wf_part_key(const struct wf_part *p, uint32_t key_ref, const char **type, uint8_t *type_len,
                const char **id, uint8_t *id_len)
{
    assert(p->magic == WF_PART_MAGIC);
    assert(type && type_len && id && id_len);
    const uint8_t *keys = wf_part_keys(p);
    if ((uint64_t)key_ref + WF_KEY_ENTRY_HDR > p->keys_used)
        return -EINVAL;
    const uint8_t *e = keys + key_ref;
    if (e[0] >= p->type_count || (uint64_t)key_ref + WF_KEY_ENTRY_HDR + e[1] > p->keys_used)
        return -EINVAL;
    const struct wf_part_type *t = &p->types[e[0]];
    *type = (const char *)keys + t->off;
    *type_len = (uint8_t)t->len;
    *id = (const char *)e + WF_KEY_ENTRY_HDR;
    *id_len = e[1];
    return 0;
}

uint32_t wf_part_count(const struct wf_part *p)
{
    assert(p->magic == WF_PART_MAGIC);
    return wf_table_count(wf_part_tab(p));
}

size_t wf_part_keystore_used(const struct wf_part *p)
{
    assert(p->magic == WF_PART_MAGIC && p->keys_used <= p->keys_bytes);
    return p->keys_used;
}

const struct wf_table *wf_part_table(const struct wf_part *p)
{
    assert(p->magic == WF_PART_MAGIC);
    return wf_part_tab(p);
}

void wf_part_stats_get(const struct wf_part *p, struct wf_part_stats *out)
{
    assert(p->magic == WF_PART_MAGIC && out != NULL);
    *out = p->stats;
    out->applied = p->applied;
}

bool wf_part_next(const struct wf_part *p, uint64_t *cursor, struct wf_key *k,
                  const struct wf_count_rec **rec)
{
    assert(p->magic == WF_PART_MAGIC && rec != NULL);
    uint32_t index;
    if (!wf_table_next(wf_part_tab(p), cursor, k, &index))
        return false;
    *rec = wf_part_rec(p, index);
    return true;
}

static uint64_t wf_part_isqrt(uint64_t v)
{
    uint64_t r = 0, bit = (uint64_t)1 << 62;
    while (bit > v)
        bit >>= 2;
    for (; bit != 0; bit >>= 2) {
        if (v >= r + bit) {
            v -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
    }
    return r;
}

uint32_t wf_part_capacity_for(uint64_t workflows_total, uint32_t partition_count)
{
    if (partition_count == 0)
        return 0;
    uint64_t mean = (workflows_total + partition_count - 1) / partition_count;
    uint64_t cap = mean + 6 * (wf_part_isqrt(mean) + 1) + 16;
    assert(cap > mean);
    return cap > WF_TABLE_CAPACITY_MAX ? 0 : (uint32_t)cap;
}
