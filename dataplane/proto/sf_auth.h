/*
 * sf_auth.h — sender authentication on plain buffers: the frame tag (HMAC-SHA256 with
 * precomputed pads) and the key file shared by the node and by senders (no DPDK).
 *
 * A frame with SF_FLAG_AUTH ends with a SF_AUTH_TAG_LEN-byte tag:
 *
 *     tag = HMAC-SHA256(key, every byte of the datagram before the tag)
 *
 * so the header (sender_id, frame_seq, auth_key_id, auth_counter, flags) and every event
 * are covered. docs/protocol.md §6 is the normative description; the node's key set, replay
 * window and lease are dataplane/sigflowd/dp_auth.h.
 *
 * Cost model: sf_auth_mac_init hashes the key's inner and outer pad blocks once; a tag then
 * costs the message's own SHA-256 blocks plus two finalisations (one block for the outer
 * hash). SHA-256 runs in OpenSSL's block function, which uses the SHA extensions (SHA-NI)
 * when the CPU has them.
 *
 * Nothing here allocates except sf_auth_keyfile_read (once, on the control path).
 * Functions return 0 / a count, or a negative errno; none reads outside the lengths given.
 */
#ifndef SF_AUTH_H
#define SF_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/sha.h>

#include "sf_proto.h"

#define SF_AUTH_KEY_LEN           32u   /* key bytes: 32 random bytes */
#define SF_AUTH_KEY_HEX_LEN       64u   /* the key in a key file: 64 hex digits */
#define SF_AUTH_HMAC_BLOCK_LEN    64u   /* SHA-256 block; longer HMAC keys are hashed first */
#define SF_AUTH_KEY_TYPES_MAX     16u   /* workflow types named by one key's types= */
#define SF_AUTH_KEYFILE_LINE_MAX  1024u /* bytes of one key file line, newline excluded */
#define SF_AUTH_KEYFILE_KEYS_MAX  1024u /* keys in one key file */
#define SF_AUTH_KEYFILE_BYTES_MAX (1024u * 1024u) /* a longer key file is refused */
#define SF_AUTH_ERR_LEN           256u            /* a good size for the err buffers below */

_Static_assert(SF_AUTH_TAG_LEN == SHA256_DIGEST_LENGTH, "the tag is a whole HMAC-SHA256");

/** One key's HMAC state: SHA-256 after the inner pad block, and after the outer one. */
struct sf_auth_mac {
    SHA256_CTX inner;
    SHA256_CTX outer;
};

/**
 * Precompute the pad states of key[0..key_len) (any length; a key longer than a SHA-256
 * block is hashed first, as HMAC says). Can't fail. sf_auth_mac_clear wipes them.
 */
void sf_auth_mac_init(struct sf_auth_mac *mac, const uint8_t *key, size_t key_len);

/** Overwrite the state with zeros in a way the compiler keeps. Can't fail. */
void sf_auth_mac_clear(struct sf_auth_mac *mac);

/** tag = HMAC-SHA256(key, msg[0..len)). Can't fail. */
void sf_auth_mac_compute(const struct sf_auth_mac *mac, const uint8_t *msg, size_t len,
                         uint8_t tag[SF_AUTH_TAG_LEN]);

/**
 * Sign a finished frame of `len` bytes (sf_frame_end's result, SF_FLAG_AUTH set): write the
 * tag of dgram[0..len - SF_AUTH_TAG_LEN) into its last SF_AUTH_TAG_LEN bytes. The header's
 * auth_key_id and auth_counter must already be set (sf_frame_begin writes them).
 * Returns 0, or -EINVAL (len shorter than a header and a tag, or no SF_FLAG_AUTH).
 */
int sf_auth_frame_sign(const struct sf_auth_mac *mac, uint8_t *dgram, size_t len);

/**
 * True when the last SF_AUTH_TAG_LEN bytes of dgram[0..len) are the tag of the bytes
 * before them (compared in constant time). False for len < SF_FRAME_HDR_LEN +
 * SF_AUTH_TAG_LEN. Does not look at the flags or parse anything. Can't fail.
 */
bool sf_auth_frame_check(const struct sf_auth_mac *mac, const uint8_t *dgram, size_t len);

/* ---- key files ------------------------------------------------------------------------ */

/** One `key` line of a key file (docs/protocol.md §6.2). */
struct sf_auth_key_spec {
    uint32_t id;        /* 1..2^32-1 */
    uint32_t sender_id; /* with sender_set: the only sender_id this key may sign for */
    bool sender_set;
    uint8_t type_count; /* 0: every workflow type */
    uint8_t prefix_len; /* 0: every id; else ids must start with prefix[0..prefix_len) */
    uint8_t type_lens[SF_AUTH_KEY_TYPES_MAX];
    char types[SF_AUTH_KEY_TYPES_MAX][SF_TYPE_LEN_MAX];
    char prefix[SF_ID_LEN_MAX];
    unsigned line; /* where it was written, for messages */
    uint8_t key[SF_AUTH_KEY_LEN];
};

/**
 * Read a key file whole into a new NUL-terminated buffer (*text_out, free() it after
 * wiping it; *len_out its length without the NUL). The file must be a regular file (a
 * symbolic link is not followed), with no permission bits for group or others (0600 or
 * stricter) and owned by root or by the effective user, at most SF_AUTH_KEYFILE_BYTES_MAX.
 * Returns 0, or -errno of open/read (-ENOENT, -EACCES, ...), -EPERM (mode or owner),
 * -EINVAL (not a regular file), -EFBIG (too long), -ENOMEM; err then says why, with the
 * path ("PATH: mode 0644 lets others read it; chmod 600").
 */
int sf_auth_keyfile_read(const char *path, char **text_out, size_t *len_out, char *err,
                         size_t err_cap);

/**
 * Parse key file text[0..len) (NUL bytes refused). `name` is used in messages. Fills
 * specs[0..n) in file order and returns n (0 for a file of comments only), or -EINVAL for
 * any bad line (err: "NAME:LINE: reason"; nothing of the file is to be used), or -E2BIG
 * for more than specs_max keys (err names the line). Duplicate key ids are an error.
 */
int sf_auth_keyfile_parse(const char *text, size_t len, const char *name,
                          struct sf_auth_key_spec *specs, unsigned specs_max, char *err,
                          size_t err_cap);

/**
 * sf_auth_keyfile_read + sf_auth_keyfile_parse; the text is wiped and freed. Returns what
 * either returns.
 */
int sf_auth_keyfile_load(const char *path, struct sf_auth_key_spec *specs, unsigned specs_max,
                         char *err, size_t err_cap);

/** Overwrite n specs (their keys) with zeros. Can't fail. */
void sf_auth_specs_clear(struct sf_auth_key_spec *specs, unsigned n);

#endif /* SF_AUTH_H */
