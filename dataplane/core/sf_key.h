/*
 * sf_key.h — the identity of a workflow and how it maps to a partition (no DPDK).
 *
 * A workflow is named by (type, id). Its identity everywhere on the owner core is
 *
 *     key = XXH3_128bits_withSeed(id, id_len, seed = XXH3_64bits(type, type_len))
 *
 * i.e. the 128-bit XXH3 of the id, seeded by the 64-bit XXH3 of the type. This is
 * unambiguous like hashing a length-prefixed "type | id" string — ("ab","c") and
 * ("a","bc") have different seeds — but hashes the caller's bytes in place: building the
 * prefixed string on the stack and re-reading it stalls on store-to-load forwarding and
 * cost 45 cycles per key against 20 for this form (14 when the caller caches the type's
 * seed, wf_key_make_seeded). The hash is unseeded by anything secret, so a key is stable
 * across runs, versions and machines (snapshots and the WAL store keys; changing this
 * definition is a format change, pinned by tests/core/test_key).
 *
 * The two 64-bit halves are used for independent purposes, so that the partition choice and
 * the bucket choice inside a partition's table are not correlated:
 *   - k.hi, low bits:  the partition (wf_key_partition);
 *   - k.lo:            the table's primary (high 32 bits) and secondary (low 32 bits) bucket.
 */
#ifndef SF_KEY_H
#define SF_KEY_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest type or id that can be hashed (the length prefix is one byte). */
#define WF_KEY_PART_LEN_MAX 255u

/** XXH3 128-bit hash of (type, id): the identity of one workflow. */
struct wf_key {
    uint64_t lo, hi;
};
_Static_assert(sizeof(struct wf_key) == 16, "wf_key is two 64-bit words");

/** The seed of a workflow type: XXH3_64bits(type). Callers may cache it per type.
 *  type_len <= WF_KEY_PART_LEN_MAX (asserted). Can't fail. */
uint64_t wf_key_type_seed(const char *type, size_t type_len);

/** The key of workflow (type, id) given type_seed = wf_key_type_seed(type). id_len <=
 *  WF_KEY_PART_LEN_MAX (asserted). Allocates nothing. Can't fail. */
struct wf_key wf_key_make_seeded(uint64_t type_seed, const char *id, size_t id_len);

/**
 * Compute the key of workflow (type, id). Allocates nothing; reads exactly type_len and
 * id_len bytes. Both lengths must be <= WF_KEY_PART_LEN_MAX (asserted: callers pass
 * lengths the protocol parser has validated). Can't fail.
 */
struct wf_key wf_key_make(const char *type, size_t type_len, const char *id, size_t id_len);

/** True when both keys are the same identity. */
static inline bool wf_key_equal(struct wf_key a, struct wf_key b)
{
    return ((a.lo ^ b.lo) | (a.hi ^ b.hi)) == 0;
}

/**
 * The partition of key k among partition_count partitions (a power of two, asserted).
 * Uses the low bits of k.hi; the table inside a partition uses k.lo. Can't fail.
 */
static inline uint32_t wf_key_partition(struct wf_key k, uint32_t partition_count)
{
    assert(partition_count != 0 && (partition_count & (partition_count - 1)) == 0);
    return (uint32_t)(k.hi & (uint64_t)(partition_count - 1));
}

#endif /* SF_KEY_H */
