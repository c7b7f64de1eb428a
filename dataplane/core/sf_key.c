/* sf_key.c — workflow key hashing (see sf_key.h for the definition). */
#include "sf_key.h"

/* Inline XXH3 into this file: the call into the shared library and its dispatch cost more
 * than hashing a ~20-byte key (measured by perf/table/bench_table). */
#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t wf_key_type_seed(const char *type, size_t type_len)
{
    assert(type_len <= WF_KEY_PART_LEN_MAX);
    assert(type != NULL || type_len == 0);
    return XXH3_64bits(type, type_len);
}

struct wf_key wf_key_make_seeded(uint64_t type_seed, const char *id, size_t id_len)
{
    assert(id_len <= WF_KEY_PART_LEN_MAX);
    assert(id != NULL || id_len == 0);
    XXH128_hash_t h = XXH3_128bits_withSeed(id, id_len, type_seed);
    return (struct wf_key){ .lo = h.low64, .hi = h.high64 };
}

struct wf_key wf_key_make(const char *type, size_t type_len, const char *id, size_t id_len)
{
    return wf_key_make_seeded(wf_key_type_seed(type, type_len), id, id_len);
}
