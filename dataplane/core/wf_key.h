/*
 * wf_key.h — the identity of a workflow and how it maps to a partition (no DPDK).
 *
 * A workflow is named by (type, id). Its identity everywhere on the owner core is
 *
 *     key = XXH3_128bits_withSeed(type bytes | id bytes, type_len + id_len, seed = type_len)
 *
 * The seed carries the boundary, so the definition is unambiguous: ("ab","c") and
 * ("a","bc") hash the same bytes with different seeds. In a binary frame the id follows
 * the type (docs/protocol.md), so the common case hashes the packet's bytes in place, one
 * XXH3 call over ~20 bytes (a benchmark measured the alternatives: a length-prefixed copy
 * on the stack, 45 cycles, stalls on store-to-load forwarding; XXH3-128 of the id seeded
 * by XXH3-64 of the type, 25 cycles and 117 instructions). Strings from elsewhere (the
 * JSON form) are copied once. This public definition is stable across runs, versions and
 * machines (pinned by tests/core/test_key).
 * KEYED. A node keys the hash with a secret of its own (wf_key_use_secret, before any key is
 * made): key = XXH3_128bits_withSecret(type bytes | id bytes, secret), each half xor-ed with
 * a function of type_len (the boundary). Without the secret nobody can compute, offline,
 * ids that collide in a victim's partition or table buckets. The secret is part of the
 * node's data (its keys are in the snapshots and the log): kept across restarts, never
 * changed. Data written under the public definition keeps it.
 *
 * The two 64-bit halves are used for independent purposes, so that the partition choice and
 * the bucket choice inside a partition's table are not correlated:
 *   - k.hi, low bits:  the partition (wf_key_partition);
 *   - k.lo:            the table's primary (high 32 bits) and secondary (low 32 bits) bucket.
 */
#ifndef WF_KEY_H
#define WF_KEY_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The two assertion tiers (STYLE): assert() is always on; WF_ASSERT_HOT is for the
 * per-event inline paths (lookup, prefetch, apply, hashing) and is compiled in only with
 * SF_DEBUG_HOT, which the unit tests, debug builds and sanitizer builds define.
 */
#ifdef SF_DEBUG_HOT
#define WF_ASSERT_HOT(x) assert(x)
#else
#define WF_ASSERT_HOT(x) ((void)sizeof(x))
#endif

/* Longest type or id that can be hashed (the length prefix is one byte). */
#define WF_KEY_PART_LEN_MAX 255u

#define WF_KEY_SECRET_LEN 192u /* bytes of a node's hash secret (XXH3 needs at least 136) */

/** XXH3 128-bit hash of (type, id): the identity of one workflow. */
struct wf_key {
    uint64_t lo, hi;
};
_Static_assert(sizeof(struct wf_key) == 16, "wf_key is two 64-bit words");

/**
 * A stable 64-bit hash of a type name: XXH3_64bits(type). Kept for type registries (it was
 * the key's seed in an earlier definition); the workflow key does not use it. type_len <=
 * WF_KEY_PART_LEN_MAX (asserted). Can't fail.
 */
uint64_t wf_key_type_seed(const char *type, size_t type_len);

/**
 * Compute the key of workflow (type, id). Allocates nothing; reads exactly type_len and
 * id_len bytes; fastest when id == type + type_len (a frame's layout). Both lengths must be <=
 * WF_KEY_PART_LEN_MAX (asserted: callers pass lengths the protocol parser has validated). Can't
 * fail.
 */
struct wf_key wf_key_make(const char *type, size_t type_len, const char *id, size_t id_len);

/**
 * Key every later wf_key_make with secret[0..WF_KEY_SECRET_LEN) (copied), or go back to the
 * public definition with NULL. Process-wide: call before any thread makes keys. Returns 0,
 * or -EINVAL when the secret is too uniform to be one (all bytes equal).
 */
int wf_key_use_secret(const uint8_t *secret);

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
    WF_ASSERT_HOT(partition_count != 0 && (partition_count & (partition_count - 1)) == 0);
    return (uint32_t)(k.hi & (uint64_t)(partition_count - 1));
}

#endif /* WF_KEY_H */
