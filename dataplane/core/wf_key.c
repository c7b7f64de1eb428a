/* wf_key.c — workflow key hashing (see wf_key.h for the definition). */
#include "wf_key.h"

/* Inline XXH3 into this file: the call into the shared library and its dispatch cost more
 * than hashing a ~20-byte key (measured on the owner's burst path). */
#define XXH_INLINE_ALL
#include <xxhash.h>

/* The node's secret (wf_key_use_secret); 64-byte aligned as XXH3 reads it in stripes. */
static _Alignas(64) unsigned char wf_key_secret[WF_KEY_SECRET_LEN];
static bool wf_key_keyed;

int wf_key_use_secret(const uint8_t *secret)
{
    if (!secret) {
        wf_key_keyed = false;
        return 0;
    }
    bool uniform = true;
    for (unsigned i = 1; i < WF_KEY_SECRET_LEN; i++)
        uniform &= secret[i] == secret[0];
    if (uniform)
        return -22; /* EINVAL */
    __builtin_memcpy(wf_key_secret, secret, WF_KEY_SECRET_LEN);
    wf_key_keyed = true;
    return 0;
}

static inline XXH128_hash_t wf_key_hash(const void *in, size_t len, size_t type_len)
{
    if (!wf_key_keyed)
        return XXH3_128bits_withSeed(in, len, (XXH64_hash_t)type_len);
    XXH128_hash_t h = XXH3_128bits_withSecret(in, len, wf_key_secret, sizeof(wf_key_secret));
    h.low64 ^= (uint64_t)type_len * 0x9e3779b97f4a7c15ull;
    h.high64 ^= (uint64_t)type_len * 0xc2b2ae3d27d4eb4full;
    return h;
}

/* Longest hashed string: type then id. */
#define WF_KEY_INPUT_LEN_MAX (2u * WF_KEY_PART_LEN_MAX)

struct wf_key wf_key_make(const char *type, size_t type_len, const char *id, size_t id_len)
{
    WF_ASSERT_HOT(type_len <= WF_KEY_PART_LEN_MAX && id_len <= WF_KEY_PART_LEN_MAX);
    WF_ASSERT_HOT((type != NULL || type_len == 0) && (id != NULL || id_len == 0));

    XXH128_hash_t h;
    if (type_len == 0 || type + type_len == id) {
        /* Contiguous, as in a binary frame: hash the caller's bytes in place. */
        const char *start = type_len ? type : id;
        h = wf_key_hash(start, type_len + id_len, type_len);
    } else {
        /* Views from different places (JSON form, control requests): one copy. Re-reading
         * just-written bytes stalls on store-to-load forwarding (~25 cycles): off the
         * binary fast path only. */
        unsigned char input[WF_KEY_INPUT_LEN_MAX];
        __builtin_memcpy(input, type, type_len);
        if (id_len)
            __builtin_memcpy(input + type_len, id, id_len);
        h = wf_key_hash(input, type_len + id_len, type_len);
    }
    return (struct wf_key){ .lo = h.low64, .hi = h.high64 };
}

uint64_t wf_key_type_seed(const char *type, size_t type_len)
{
    assert(type_len <= WF_KEY_PART_LEN_MAX);
    assert(type != NULL || type_len == 0);
    return XXH3_64bits(type, type_len);
}
