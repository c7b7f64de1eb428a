/*
 * bench_auth — the cost of authenticated senders on the node: dp_auth_verify (key lookup,
 * HMAC-SHA256 with precomputed pads, constant-time compare) per datagram of 64, 512, 1024
 * and 1472 bytes, the same HMAC through OpenSSL's EVP_MAC for comparison, and the owners'
 * replay window (dp_auth_window_check) per frame and per further event of a frame.
 *
 * A result's "events" are frames (or window checks); cycles_per_event is TSC ticks per
 * frame (for verify: of the fastest of BAU_SLICES slices, since the cores are shared). Extra
 * members: frame_bytes, cycles_per_byte, sha_ni (the CPU has the SHA extensions, which OpenSSL's
 * SHA-256 uses when present). Before timing, every benchmark datagram must verify and a copy with
 * its last byte changed must not (exit 1 otherwise).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "bench.h"
#include "dp_auth.h"

#define BAU_KEYS         64u /* keys in the set (lookup depth) */
#define BAU_FRAMES       64u /* distinct datagrams per size, cycled (all in L2) */
#define BAU_SOURCES      4u  /* rx sources feeding the window bench */
#define BAU_KEY_ID       17u
#define BAU_EVENTS_FRAME 8u           /* events per frame on one owner, memo bench */
#define BAU_LEASE_EXT    (1ull << 40) /* no lease waits while timing */
#define BAU_SLICES       10u          /* timed slices of a verify run; the fastest counts */

static const unsigned bau_sizes[] = { 64, 512, 1024, 1472 };
#define BAU_SIZES (sizeof(bau_sizes) / sizeof(bau_sizes[0]))

static uint64_t bau_rng = 0x2545f4914f6cdd1dull;

static uint64_t bau_rand(void)
{
    bau_rng ^= bau_rng << 13;
    bau_rng ^= bau_rng >> 7;
    bau_rng ^= bau_rng << 17;
    return bau_rng;
}

static bool bau_sha_ni(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strncmp(line, "flags", 5) == 0 && strstr(line, " sha_ni") != NULL;
    fclose(f);
    return found;
}

static const char *bau_key_hex(unsigned i)
{
    static char hex[SF_AUTH_KEY_HEX_LEN + 1];
    for (unsigned b = 0; b < SF_AUTH_KEY_LEN; b++)
        snprintf(hex + 2 * b, 3, "%02x", (unsigned)((i * 37u + b * 11u) & 0xffu));
    return hex;
}

/* A key set of BAU_KEYS keys, ids 1.., BAU_KEY_ID among them. */
static struct dp_auth_keys *bau_keys(void)
{
    static char text[BAU_KEYS * 96];
    size_t len = 0;
    for (unsigned i = 1; i <= BAU_KEYS; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "key %u %s\n", i, bau_key_hex(i));
    struct dp_auth_keys *k;
    char err[SF_AUTH_ERR_LEN];
    if (dp_auth_keys_parse(text, len, "bench", &k, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_auth: %s\n", err);
        exit(1);
    }
    return k;
}

/*
 * A signed datagram of exactly `len` bytes: an AUTH header for key BAU_KEY_ID, random
 * bytes, the tag. dp_auth_verify does not parse events, so the body need not be events.
 */
static void bau_datagram(uint8_t *d, size_t len, const struct dp_auth_key *key, uint64_t counter,
                         struct sf_frame_hdr *hdr)
{
    *hdr = (struct sf_frame_hdr){ .flags = SF_FLAG_AUTH,
                                  .sender_id = 1,
                                  .frame_seq = counter,
                                  .auth_key_id = BAU_KEY_ID,
                                  .auth_counter = counter };
    int rc = sf_frame_begin(d, len, hdr);
    if (rc != (int)SF_FRAME_HDR_LEN)
        exit(1);
    for (size_t i = SF_FRAME_HDR_LEN; i < len; i++)
        d[i] = (uint8_t)bau_rand();
    if (sf_auth_frame_sign(&key->mac, d, len) != 0)
        exit(1);
}

static void bau_emit(const char *name, uint64_t frames, uint64_t cycles, unsigned bytes,
                     bool sha_ni)
{
    static char extra[160];
    struct bench_result r = BENCH_RESULT_INIT(name);
    r.events = frames;
    r.cycles_per_event = (double)cycles / (double)frames;
    r.events_per_s = bench_tsc_hz() / r.cycles_per_event;
    if (bytes > 0)
        snprintf(extra, sizeof(extra), "\"frame_bytes\":%u,\"cycles_per_byte\":%.3f,\"sha_ni\":%s",
                 bytes, r.cycles_per_event / bytes, sha_ni ? "true" : "false");
    else
        snprintf(extra, sizeof(extra), "\"sha_ni\":%s", sha_ni ? "true" : "false");
    r.extra_json = extra;
    bench_emit(&r);
}

struct bau_frame {
    struct sf_frame_hdr hdr;
    uint8_t bytes[SF_DATAGRAM_LEN_MAX];
};

/* dp_auth_verify over BAU_FRAMES datagrams of `size` bytes; exits on a wrong verdict. */
static void bau_verify(const struct dp_auth_keys *keys, unsigned size, uint64_t rounds, bool sha_ni)
{
    static struct bau_frame frames[BAU_FRAMES];
    const struct dp_auth_key *key = dp_auth_keys_find(keys, BAU_KEY_ID), *got;
    for (unsigned f = 0; f < BAU_FRAMES; f++) {
        bau_datagram(frames[f].bytes, size, key, 1000 + f, &frames[f].hdr);
        frames[f].bytes[size - 1] ^= 1;
        if (dp_auth_verify(keys, frames[f].bytes, size, &frames[f].hdr, &got) != DP_AUTH_BAD_TAG)
            exit(1);
        frames[f].bytes[size - 1] ^= 1;
    }
    /* The fastest of BAU_SLICES slices is reported: the cores are shared, and a slice that
     * another process interrupted says nothing about the code. */
    uint64_t ok = 0, best = UINT64_MAX, per_slice = rounds / BAU_SLICES + 1;
    bench_region_begin();
    for (unsigned slice = 0; slice < BAU_SLICES; slice++) {
        uint64_t t0 = bench_tsc();
        for (uint64_t r = 0; r < per_slice; r++)
            for (unsigned f = 0; f < BAU_FRAMES; f++)
                ok +=
                    dp_auth_verify(keys, frames[f].bytes, size, &frames[f].hdr, &got) == DP_AUTH_OK;
        uint64_t t1 = bench_tsc();
        best = t1 - t0 < best ? t1 - t0 : best;
    }
    bench_region_end();
    if (ok != per_slice * BAU_SLICES * BAU_FRAMES) {
        fprintf(stderr, "bench_auth: a benchmark frame did not verify\n");
        exit(1);
    }
    char name[48];
    snprintf(name, sizeof(name), "auth_verify_%u", size);
    bau_emit(name, ok, best * BAU_SLICES, size, sha_ni);
}

/* The same tag through EVP_MAC (re-initialised with its key kept: no allocation). */
static void bau_evp(unsigned size, uint64_t rounds, bool sha_ni)
{
    static uint8_t msg[SF_DATAGRAM_LEN_MAX];
    uint8_t key[SF_AUTH_KEY_LEN], tag[SF_AUTH_TAG_LEN];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)bau_rand();
    for (size_t i = 0; i < size; i++)
        msg[i] = (uint8_t)bau_rand();
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                            OSSL_PARAM_construct_end() };
    if (ctx == NULL || EVP_MAC_init(ctx, key, sizeof(key), params) != 1)
        exit(1);
    uint64_t frames = rounds * BAU_FRAMES, sink = 0;
    size_t out_len;
    bench_region_begin();
    uint64_t t0 = bench_tsc();
    for (uint64_t i = 0; i < frames; i++) {
        EVP_MAC_init(ctx, NULL, 0, NULL);
        EVP_MAC_update(ctx, msg, size - SF_AUTH_TAG_LEN);
        EVP_MAC_final(ctx, tag, &out_len, sizeof(tag));
        sink += tag[0];
    }
    uint64_t t1 = bench_tsc();
    bench_region_end();
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    char name[48];
    snprintf(name, sizeof(name), "auth_hmac_evp_%u", size);
    bau_emit(name, frames, t1 - t0, size, sha_ni);
    if (sink == UINT64_MAX)
        fprintf(stderr, "?\n");
}

/* The owner's check: one call per (frame, owner), then BAU_EVENTS_FRAME-1 memo hits. */
static int bau_window(const struct dp_auth_keys *keys, uint64_t frames, bool sha_ni)
{
    char dir[] = "/tmp/sigflow-bench-auth-XXXXXX", path[64], err[SF_AUTH_ERR_LEN];
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(path, sizeof(path), "%s/auth.lease", dir);
    struct dp_auth_lease_conf conf = { .extension = BAU_LEASE_EXT };
    struct dp_auth_lease *lease;
    if (dp_auth_lease_open(path, keys, 1, &conf, &lease, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_auth: %s\n", err);
        return 1;
    }
    static struct dp_auth_window_table table;
    dp_auth_window_table_init(&table, lease);
    uint64_t tokens[BAU_SOURCES] = { 0 }, fresh = 0;
    /* counters of BAU_KEYS senders, each key's frames swapped in pairs (out of order) */
    bench_region_begin();
    uint64_t t0 = bench_tsc();
    for (uint64_t i = 0; i < frames; i++) {
        uint32_t key_id = 1 + (uint32_t)(i % BAU_KEYS);
        uint64_t counter = 100 + 2 * ((i / BAU_KEYS) ^ 1);
        unsigned source = (unsigned)(i % BAU_SOURCES);
        fresh += dp_auth_window_check(&table, source, ++tokens[source], key_id, counter) ==
                 DP_AUTH_WIN_FRESH;
    }
    uint64_t t1 = bench_tsc();
    bench_region_end();
    bau_emit("auth_window_frame", frames, t1 - t0, 0, sha_ni);

    bench_region_begin();
    t0 = bench_tsc();
    uint64_t base = 100 + frames * 4;
    for (uint64_t i = 0; i < frames / BAU_EVENTS_FRAME; i++) {
        uint64_t token = ++tokens[0];
        for (unsigned e = 0; e < BAU_EVENTS_FRAME; e++)
            fresh +=
                dp_auth_window_check(&table, 0, token, BAU_KEY_ID, base + i) == DP_AUTH_WIN_FRESH;
    }
    t1 = bench_tsc();
    bench_region_end();
    uint64_t events = frames / BAU_EVENTS_FRAME * BAU_EVENTS_FRAME;
    bau_emit("auth_window_event", events, t1 - t0, 0, sha_ni);

    dp_auth_lease_close(lease);
    unlink(path);
    rmdir(dir);
    if (fresh != frames + events) {
        fprintf(stderr, "bench_auth: window refused %" PRIu64 " benchmark checks\n",
                frames + events - fresh);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bool quick = bench_has_flag(argc, argv, "--quick");
    bool sha_ni = bau_sha_ni();
    fprintf(stderr, "bench_auth: SHA extensions (sha_ni) %s\n", sha_ni ? "present" : "absent");
    struct dp_auth_keys *keys = bau_keys();
    uint64_t rounds = bench_under_valgrind() ? 16 : quick ? 500 : 5000;
    for (unsigned s = 0; s < BAU_SIZES; s++)
        bau_verify(keys, bau_sizes[s], rounds, sha_ni);
    bau_evp(1024, rounds, sha_ni);
    int rc = bau_window(keys, rounds * BAU_FRAMES * 8, sha_ni);
    dp_auth_keys_free(keys);
    return rc;
}
