/* sf_key.c — workflow key hashing (see sf_key.h for the encoding). */
#include "sf_key.h"

#include <string.h>

/* Inline XXH3 into this file: the call into the shared library and its dispatch cost more
 * than hashing a ~20-byte key (measured by perf/table/bench_table). */
#define XXH_INLINE_ALL
#include <xxhash.h>

/* Longest hashed string: prefix + type + id. */
#define WF_KEY_INPUT_LEN_MAX (1u + 2u * WF_KEY_PART_LEN_MAX)

struct wf_key wf_key_make(const char *type, size_t type_len, const char *id, size_t id_len)
{
    assert(type_len <= WF_KEY_PART_LEN_MAX);
    assert(id_len <= WF_KEY_PART_LEN_MAX);
    assert((type != NULL || type_len == 0) && (id != NULL || id_len == 0));

    unsigned char input[WF_KEY_INPUT_LEN_MAX];
    input[0] = (unsigned char)type_len;
    if (type_len)
        memcpy(input + 1, type, type_len);
    if (id_len)
        memcpy(input + 1 + type_len, id, id_len);

    XXH128_hash_t h = XXH3_128bits(input, 1 + type_len + id_len);
    return (struct wf_key){ .lo = h.low64, .hi = h.high64 };
}
