/*
 * dp_auth.h — authenticated senders on the node: the key set, the per-frame tag check, the
 * per-event authorization, the owners' replay windows and the durable counter lease.
 * Plain C without DPDK, so that tests and benchmarks link it directly. docs/protocol.md §6
 * is the normative description; sf_auth.h computes the tags and parses key files.
 *
 * Who calls what (the concurrency contract):
 *
 *   control thread, at start and on reload:
 *       dp_auth_keys_load        build an immutable key set from the key file
 *       dp_auth_lease_open       (start) read DIR/auth.lease, set floors, write new limits
 *       dp_auth_lease_add_keys   (reload) give new key ids a durable limit, BEFORE the new
 *                                key set is published to the rx cores
 *       dp_auth_keys_free        an old key set, once no rx core can still be using it
 *   control thread, every few milliseconds (cheap when nothing is asked):
 *       dp_auth_lease_extend     write and fsync raised limits, then publish them
 *   rx core, per received binary frame:
 *       dp_auth_verify           tag, key id, sender; gives the key for the next call
 *       dp_auth_allows           per event: may this key send to this type / id?
 *   owner core, per (frame, owner) — it may call per event, see dp_auth_window_check:
 *       dp_auth_window_check     replay window and lease of (key id, counter)
 *
 * A struct dp_auth_keys never changes after dp_auth_keys_load, so rx cores read it without
 * locks; a reload builds a new one and publishes the pointer. The lease is shared: its
 * limits are written by the control thread (atomic stores after the fsync) and read by the
 * owners (atomic loads); owners ask for extensions through atomics. A window table belongs
 * to one owner core and is touched by no other thread.
 */
#ifndef DP_AUTH_H
#define DP_AUTH_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sf_auth.h"
#include "sf_proto.h"

#define DP_AUTH_KEYS_MAX                SF_AUTH_KEYFILE_KEYS_MAX /* keys in one key set */
#define DP_AUTH_LEASE_KEYS_MAX          4096u /* key ids the lease remembers, ever (rotation) */
#define DP_AUTH_LEASE_EXTENSION_DEFAULT (1ull << 24) /* ~16.8 s of a microsecond counter */
#define DP_AUTH_LEASE_FILE_BYTES_MAX    (64u + DP_AUTH_LEASE_KEYS_MAX * 40u)
#define DP_AUTH_WINDOW_BITS             64u   /* counters below the high-water mark remembered */
#define DP_AUTH_WINDOW_SLOTS            8192u /* per owner: open addressing, load <= 1/2 */
#define DP_AUTH_WINDOW_SOURCES_MAX      128u  /* rx cores (or rings) feeding one owner */
#define DP_AUTH_CACHE_LINE              64u

_Static_assert((DP_AUTH_WINDOW_SLOTS & (DP_AUTH_WINDOW_SLOTS - 1)) == 0, "power of 2");
_Static_assert(DP_AUTH_WINDOW_SLOTS >= 2 * DP_AUTH_LEASE_KEYS_MAX, "a window never fills");
_Static_assert(DP_AUTH_LEASE_KEYS_MAX >= DP_AUTH_KEYS_MAX, "every key of a set has a lease");

/* ---- key set ------------------------------------------------------------------------- */

/** One key of a key set: its HMAC state and what it may send to. Immutable once loaded. */
struct dp_auth_key {
    struct sf_auth_mac mac; /* precomputed pads (sf_auth_mac_init) */
    uint32_t id;
    uint32_t sender_id; /* with sender_set: frames must carry this sender_id */
    bool sender_set;
    uint8_t type_count; /* 0: every type */
    uint8_t prefix_len; /* 0: every id */
    uint8_t type_lens[SF_AUTH_KEY_TYPES_MAX];
    char types[SF_AUTH_KEY_TYPES_MAX][SF_TYPE_LEN_MAX];
    char prefix[SF_ID_LEN_MAX];
};

struct dp_auth_keys; /* immutable, sorted by key id; dp_auth_keys_load builds one */

/**
 * Build a key set from the key file at `path` (sf_auth_keyfile_read's rules: regular file,
 * mode 0600 or stricter, owned by root or us). Control thread only; allocates.
 * Returns 0 and *out, or a negative errno with *out NULL and err filled: -EINVAL for a bad
 * line ("PATH:LINE: reason"), -EPERM for mode or owner, -E2BIG for more than
 * DP_AUTH_KEYS_MAX keys, -ENOENT/-EACCES/... from the file, -ENOMEM.
 * An empty key file (comments only) is a valid set that authenticates nothing.
 */
int dp_auth_keys_load(const char *path, struct dp_auth_keys **out, char *err, size_t err_cap);

/** The same from text in memory (tests, fuzzing); `name` is used in messages. */
int dp_auth_keys_parse(const char *text, size_t len, const char *name, struct dp_auth_keys **out,
                       char *err, size_t err_cap);

/** The key with this id, or NULL (id 0 is never a key). O(log n). Can't fail. */
const struct dp_auth_key *dp_auth_keys_find(const struct dp_auth_keys *keys, uint32_t id);

/** Number of keys, and the i-th in id order (i < count). Can't fail. */
unsigned dp_auth_keys_count(const struct dp_auth_keys *keys);
const struct dp_auth_key *dp_auth_keys_at(const struct dp_auth_keys *keys, unsigned i);

/** Wipe and free a key set (NULL is fine). No rx core may still use it. Can't fail. */
void dp_auth_keys_free(struct dp_auth_keys *keys);

/* ---- per frame and per event (rx core) ---------------------------------------------- */

enum dp_auth_verdict {
    DP_AUTH_OK = 0,               /* tag valid (or no keys configured: key NULL) */
    DP_AUTH_UNAUTHENTICATED = -1, /* keys required, the frame has no AUTH flag */
    DP_AUTH_NO_KEY = -2,          /* auth_key_id is 0 or not in the key set */
    DP_AUTH_WRONG_SENDER = -3,    /* the key is bound to another sender_id */
    DP_AUTH_BAD_TAG = -4,         /* the tag is not the HMAC of the frame */
};
#define DP_AUTH_VERDICT_COUNT 5

/**
 * Counter name of a verdict: "ok", "auth_unauthenticated", "auth_no_key",
 * "auth_wrong_sender", "auth_bad_tag"; "unknown" out of range. Can't fail.
 */
const char *dp_auth_verdict_name(int verdict);

/**
 * Check the frame dgram[0..len) whose header sf_frame_scan (or sf_frame_parse_header)
 * accepted into *hdr. With keys NULL (no key file: authentication not required) every
 * frame is DP_AUTH_OK with *key_out NULL and needs no window check. Otherwise, in this
 * order: no SF_FLAG_AUTH → DP_AUTH_UNAUTHENTICATED; unknown key id → DP_AUTH_NO_KEY; key
 * bound to another sender → DP_AUTH_WRONG_SENDER; tag mismatch (constant-time compare) or a
 * datagram too short for a header and a tag → DP_AUTH_BAD_TAG. On DP_AUTH_OK, *key_out is
 * the key (valid as long as `keys`). The JSON form has no tag: with keys, refuse it as
 * DP_AUTH_UNAUTHENTICATED without calling this. Allocates nothing; costs one HMAC.
 */
int dp_auth_verify(const struct dp_auth_keys *keys, const uint8_t *dgram, size_t len,
                   const struct sf_frame_hdr *hdr, const struct dp_auth_key **key_out);

/**
 * May `key` send events to workflow (type, id)? True when key is NULL (no keys), when the
 * key has no types= or lists this type, and has no prefix= or the id starts with it.
 * Can't fail.
 */
bool dp_auth_allows(const struct dp_auth_key *key, const char *type, size_t type_len,
                    const char *id, size_t id_len);

/* ---- lease (control thread writes, owners read) -------------------------------------- */

struct dp_auth_lease_conf {
    uint64_t extension; /* new limit = highest counter asked for + extension (0: default) */
    uint64_t margin;    /* owners ask once a counter is within margin of the limit
                         * (0: extension / 2); must be < extension */
};

struct dp_auth_lease;       /* allocated by dp_auth_lease_open, shared by all owners */
struct dp_auth_lease_entry; /* one key id's limit, floor and pending request */

/**
 * Open the lease file at `path` (normally DIR/auth.lease; missing means a first start) and
 * make it cover `keys`: every key id found in the file gets floor = its limit there (no
 * counter at or below it is ever accepted again); every key of `keys` gets a new limit
 * max(floor, now_us) + extension, written (tmp file, fsync, rename, fsync of the
 * directory) before this returns. now_us is the node's realtime in microseconds (the
 * clock senders use for counters; 0 if unknown). conf NULL means defaults. Control thread.
 * Returns 0 and *out, or -EINVAL for a damaged file (err: "PATH:LINE: reason"; refuse to
 * start: a lost floor would let old frames be replayed), -E2BIG (more than
 * DP_AUTH_LEASE_KEYS_MAX key ids), -ENOMEM, or the -errno of a failed write or sync.
 */
int dp_auth_lease_open(const char *path, const struct dp_auth_keys *keys, uint64_t now_us,
                       const struct dp_auth_lease_conf *conf, struct dp_auth_lease **out, char *err,
                       size_t err_cap);

/**
 * Give every key id of a reloaded key set that the lease does not know yet a durable
 * limit (as dp_auth_lease_open does); call it before publishing the set. Key ids already
 * known keep their limits and floors (a key id removed and added again never resets).
 * Control thread. Returns how many ids were added, or -E2BIG (lease table full: refuse the
 * reload) or the -errno of the write (nothing published then).
 */
int dp_auth_lease_add_keys(struct dp_auth_lease *lease, const struct dp_auth_keys *keys,
                           uint64_t now_us);

/** True when an owner asked for an extension since the last dp_auth_lease_extend. */
bool dp_auth_lease_wanted(const struct dp_auth_lease *lease);

/**
 * Serve the owners' requests: for each key id whose highest requested counter is within
 * `margin` of (or above) its limit, new limit = requested + extension; write the file and
 * fsync it, then publish the new limits (release stores). Returns the number of limits
 * raised (0: nothing asked, no I/O), or the -errno of the write; on error nothing is
 * published and the request stays pending (call again later). Control thread only.
 */
int dp_auth_lease_extend(struct dp_auth_lease *lease);

/** The current limit and floor of a key id (0 and 0 when unknown). For stats and tests. */
uint64_t dp_auth_lease_limit(const struct dp_auth_lease *lease, uint32_t key_id);
uint64_t dp_auth_lease_floor(const struct dp_auth_lease *lease, uint32_t key_id);

/** Tests only: the next lease write fails with -err before touching the file. */
void dp_auth_lease_fail_next_write(struct dp_auth_lease *lease, int err);

/** Free the lease (nothing is written: every published limit is already durable). NULL is
 * fine. No owner may still use it. Can't fail. */
void dp_auth_lease_close(struct dp_auth_lease *lease);

/* ---- replay window (one table per owner core) ---------------------------------------- */

enum dp_auth_window_verdict {
    DP_AUTH_WIN_FRESH = 0,       /* accept: first sight of (key id, counter) on this owner */
    DP_AUTH_WIN_REPLAYED = -1,   /* seen before (or at or below the floor of a restart) */
    DP_AUTH_WIN_TOO_OLD = -2,    /* more than 63 below the highest counter seen */
    DP_AUTH_WIN_LEASE_WAIT = -3, /* above the durable limit: dropped; an extension is asked */
};
#define DP_AUTH_WIN_VERDICT_COUNT 4

/** Counter names: "ok", "auth_replayed", "auth_too_old", "auth_lease_wait". Can't fail. */
const char *dp_auth_window_verdict_name(int verdict);

/* Per key id: the highest counter accepted and which of the 63 below it were. */
struct dp_auth_window {
    uint32_t key_id; /* 0: free slot */
    uint32_t reserved;
    uint64_t hwm;  /* highest counter accepted (the floor before the first) */
    uint64_t seen; /* bit i: counter hwm - i was accepted (bit 0 always set) */
    const struct dp_auth_lease_entry *lease; /* this key's limit and floor */
};

/* The verdict given to the last frame seen from one source (see dp_auth_window_check). */
struct dp_auth_frame_memo {
    uint64_t token; /* 0: none */
    uint64_t counter;
    uint32_t key_id;
    int32_t verdict;
};

/** One owner core's windows. Fixed size (about 300 kB); allocate it anywhere. */
struct dp_auth_window_table {
    struct dp_auth_lease *lease;
    unsigned used;
    struct dp_auth_frame_memo memo[DP_AUTH_WINDOW_SOURCES_MAX];
    struct dp_auth_window slots[DP_AUTH_WINDOW_SLOTS];
};

/** Empty the table and tie it to the node's lease. Can't fail. */
void dp_auth_window_table_init(struct dp_auth_window_table *t, struct dp_auth_lease *lease);

/**
 * Judge counter `counter` of key `key_id` for the events of one received frame on this
 * owner. `source` (< DP_AUTH_WINDOW_SOURCES_MAX) is the rx core (or inbound ring) the
 * events came through; `frame_token` is a number the rx core gives each frame it receives,
 * never 0 and never repeated by that source (a 64-bit count of its received frames; NOT
 * the mbuf's address, which a replay may arrive in again).
 *
 * All events of a frame share (key id, counter). The first event of a frame that reaches
 * this owner is judged against the window; the events after it carry the same
 * (source, token) and get the same verdict from the memo of that source, without touching
 * the window. This needs only that a source's events of one frame reach the owner without
 * events of another frame of that same source between them (one FIFO ring per source and
 * owner); events of other sources may come between. If that were ever broken, the rest of
 * the frame would be refused as replayed: a frame is never accepted twice.
 *
 * FRESH advances the window; a counter within margin of the lease limit also asks the
 * control thread for an extension; LEASE_WAIT asks for one covering this counter. Lock-free;
 * no allocation, no system call.
 */
int dp_auth_window_check(struct dp_auth_window_table *t, unsigned source, uint64_t frame_token,
                         uint32_t key_id, uint64_t counter);

#endif /* DP_AUTH_H */
