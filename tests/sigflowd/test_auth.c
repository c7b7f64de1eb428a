/*
 * test_auth — authenticated senders on the node (dp_auth.h): key sets from key files, the
 * per-frame check against forged, bit-flipped, truncated and wrongly keyed frames, per-event
 * authorization, the owners' replay windows and the lease across a simulated crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dp_auth.h"

#define T_KEY1_HEX  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define T_KEY2_HEX  "ffeeddccbbaa99887766554433221100FFEEDDCCBBAA99887766554433221100"
#define T_EVENTS    3
#define T_DGRAM_MAX 1472

static char t_dir[64];

static void t_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", t_dir, name);
}

static int t_setup(void **state)
{
    (void)state;
    snprintf(t_dir, sizeof(t_dir), "/tmp/sigflow-auth-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(t_dir));
    return 0;
}

static int t_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void t_write(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0); /* the umask would hide a loose mode */
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static struct dp_auth_keys *t_keys(const char *text)
{
    struct dp_auth_keys *k;
    char err[SF_AUTH_ERR_LEN] = "";
    int rc = dp_auth_keys_parse(text, strlen(text), "keys", &k, err, sizeof(err));
    if (rc != 0)
        fail_msg("keys refused: %s", err);
    return k;
}

static const char t_keys_text[] = "# two senders\n"
                                  "key 1 " T_KEY1_HEX " types=device,meter prefix=sensor-\n"
                                  "\n"
                                  "key 7 " T_KEY2_HEX " sender=42   # bound to sender 42\n";

/* A signed frame of T_EVENTS events to device sensor-N. Returns its length. */
static size_t t_frame(uint8_t *out, const uint8_t key[SF_AUTH_KEY_LEN], uint32_t key_id,
                      uint64_t counter, uint32_t sender)
{
    struct sf_frame_hdr hdr = { .flags = SF_FLAG_AUTH | SF_FLAG_ACK_REQ,
                                .sender_id = sender,
                                .frame_seq = 9,
                                .auth_key_id = key_id,
                                .auth_counter = counter };
    int len = sf_frame_begin(out, T_DGRAM_MAX, &hdr);
    static const uint8_t fields[] = { 0x82, 0x01, 0xf5 }; /* [1, true] */
    for (unsigned i = 0; i < T_EVENTS; i++) {
        char id[16];
        int id_len = snprintf(id, sizeof(id), "sensor-%u", i);
        struct sf_event ev = { .type = "device",
                               .type_len = 6,
                               .id = id,
                               .id_len = (uint8_t)id_len,
                               .signal = "telemetry",
                               .signal_len = 9,
                               .event_id = 100 + i,
                               .fields = fields,
                               .fields_len = sizeof(fields) };
        len = sf_frame_add_event(out, T_DGRAM_MAX, (size_t)len, &ev);
        assert_true(len > 0);
    }
    len = sf_frame_end(out, T_DGRAM_MAX, (size_t)len);
    assert_true(len > 0);
    struct sf_auth_mac mac;
    sf_auth_mac_init(&mac, key, SF_AUTH_KEY_LEN);
    assert_int_equal(sf_auth_frame_sign(&mac, out, (size_t)len), 0);
    sf_auth_mac_clear(&mac);
    return (size_t)len;
}

static void t_key_bytes(const char *hex, uint8_t key[SF_AUTH_KEY_LEN])
{
    for (unsigned i = 0; i < SF_AUTH_KEY_LEN; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        key[i] = (uint8_t)v;
    }
}

/* Parse, then verify: the receive path's order. Returns the verdict, or 1 for a parse error. */
static int t_receive(const struct dp_auth_keys *k, const uint8_t *dgram, size_t len,
                     const struct dp_auth_key **key)
{
    struct sf_frame_hdr hdr;
    struct sf_event_span spans[SF_FRAME_EVENTS_MAX];
    *key = NULL;
    if (sf_frame_scan(dgram, len, &hdr, spans, SF_FRAME_EVENTS_MAX) < 0)
        return 1;
    return dp_auth_verify(k, dgram, len, &hdr, key);
}

/* ---- key sets ------------------------------------------------------------------------ */

static void test_keys_valid(void **state)
{
    (void)state;
    struct dp_auth_keys *k = t_keys(t_keys_text);
    assert_int_equal(dp_auth_keys_count(k), 2);
    const struct dp_auth_key *k1 = dp_auth_keys_find(k, 1), *k7 = dp_auth_keys_find(k, 7);
    assert_non_null(k1);
    assert_non_null(k7);
    assert_null(dp_auth_keys_find(k, 0));
    assert_null(dp_auth_keys_find(k, 2));
    assert_ptr_equal(dp_auth_keys_at(k, 0), k1);
    assert_int_equal(k1->type_count, 2);
    assert_int_equal(k1->prefix_len, 7);
    assert_false(k1->sender_set);
    assert_true(k7->sender_set);
    assert_int_equal(k7->sender_id, 42);
    assert_int_equal(k7->type_count, 0);
    dp_auth_keys_free(k);

    /* CRLF, tabs, comments only, empty: valid */
    k = t_keys("key\t3 " T_KEY1_HEX "\r\n#\r\n");
    assert_int_equal(dp_auth_keys_count(k), 1);
    dp_auth_keys_free(k);
    k = t_keys("# nothing yet\n\n");
    assert_int_equal(dp_auth_keys_count(k), 0);
    dp_auth_keys_free(k);
}

static void t_expect_refused(const char *text, unsigned line, const char *reason)
{
    struct dp_auth_keys *k = (struct dp_auth_keys *)1;
    char err[SF_AUTH_ERR_LEN] = "", want[64];
    int rc = dp_auth_keys_parse(text, strlen(text), "kf", &k, err, sizeof(err));
    assert_true(rc == -EINVAL || rc == -E2BIG);
    assert_null(k);
    snprintf(want, sizeof(want), "kf:%u: ", line);
    if (strncmp(err, want, strlen(want)) != 0 || strstr(err, reason) == NULL)
        fail_msg("'%s': want '%s...%s'", err, want, reason);
}

static void test_keys_errors(void **state)
{
    (void)state;
    const char *k1 = "key 1 " T_KEY1_HEX "\n";
    char buf[4096];
    t_expect_refused("kee 1 " T_KEY1_HEX "\n", 1, "expected 'key");
    t_expect_refused("# c\nkey 0 " T_KEY1_HEX "\n", 2, "key id");
    t_expect_refused("key 4294967296 " T_KEY1_HEX "\n", 1, "key id");
    t_expect_refused("key -1 " T_KEY1_HEX "\n", 1, "key id");
    t_expect_refused("key 1\n", 1, "64 hex digits");
    t_expect_refused("key 1 " T_KEY1_HEX "0\n", 1, "64 hex digits");
    t_expect_refused("key 1 00010203\n", 1, "64 hex digits");
    t_expect_refused("key 1 g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", 1,
                     "64 hex digits");
    snprintf(buf, sizeof(buf), "%s\n\nkey 1 " T_KEY2_HEX "\n", k1);
    t_expect_refused(buf, 4, "already on line 1");
    t_expect_refused("key 2 " T_KEY1_HEX " types=\n", 1, "types=");
    t_expect_refused("key 2 " T_KEY1_HEX " types=a,,b\n", 1, "types=");
    t_expect_refused("key 2 " T_KEY1_HEX " types=a b\n", 1, "expected an option");
    t_expect_refused("key 2 " T_KEY1_HEX " types=dev!ce\n", 1, "types=");
    t_expect_refused("key 2 " T_KEY1_HEX " types=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\n", 1,
                     "more than 16");
    t_expect_refused("key 2 " T_KEY1_HEX " prefix=\n", 1, "prefix=");
    t_expect_refused("key 2 " T_KEY1_HEX " prefix=a\"b\n", 1, "prefix=");
    t_expect_refused("key 2 " T_KEY1_HEX " sender=x\n", 1, "sender=");
    t_expect_refused("key 2 " T_KEY1_HEX " sender=4294967296\n", 1, "sender=");
    t_expect_refused("key 2 " T_KEY1_HEX " sender=1 sender=2\n", 1, "twice");
    t_expect_refused("key 2 " T_KEY1_HEX " color=red\n", 1, "unknown option");
    /* a line over the limit */
    memset(buf, ' ', sizeof(buf));
    memcpy(buf, k1, strlen(k1) - 1);
    buf[SF_AUTH_KEYFILE_LINE_MAX + 1] = '\n';
    buf[SF_AUTH_KEYFILE_LINE_MAX + 2] = '\0';
    t_expect_refused(buf, 1, "longer than");
    /* NUL bytes refuse the file */
    struct dp_auth_keys *k;
    char err[SF_AUTH_ERR_LEN];
    assert_int_equal(dp_auth_keys_parse("key 1\0x", 7, "kf", &k, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "NUL"));
}

static void test_keys_too_many(void **state)
{
    (void)state;
    size_t cap = (DP_AUTH_KEYS_MAX + 1) * 80;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = 0;
    for (unsigned i = 1; i <= DP_AUTH_KEYS_MAX + 1; i++)
        len += (size_t)snprintf(text + len, cap - len, "key %u " T_KEY1_HEX "\n", i);
    struct dp_auth_keys *k;
    char err[SF_AUTH_ERR_LEN], want[64];
    assert_int_equal(dp_auth_keys_parse(text, len, "kf", &k, err, sizeof(err)), -E2BIG);
    snprintf(want, sizeof(want), "kf:%u: more than %u keys", DP_AUTH_KEYS_MAX + 1,
             DP_AUTH_KEYS_MAX);
    assert_string_equal(err, want);
    /* exactly the maximum loads */
    len -= strlen(strrchr(text, 'k'));
    assert_int_equal(dp_auth_keys_parse(text, len, "kf", &k, err, sizeof(err)), 0);
    assert_int_equal(dp_auth_keys_count(k), DP_AUTH_KEYS_MAX);
    assert_non_null(dp_auth_keys_find(k, DP_AUTH_KEYS_MAX));
    dp_auth_keys_free(k);
    free(text);
}

static void test_keys_file_rules(void **state)
{
    (void)state;
    char path[128], link[128], err[SF_AUTH_ERR_LEN];
    struct dp_auth_keys *k;
    t_path(path, sizeof(path), "keys");
    t_write(path, t_keys_text, 0600);
    assert_int_equal(dp_auth_keys_load(path, &k, err, sizeof(err)), 0);
    assert_int_equal(dp_auth_keys_count(k), 2);
    dp_auth_keys_free(k);
    t_write(path, t_keys_text, 0400);
    assert_int_equal(dp_auth_keys_load(path, &k, err, sizeof(err)), 0);
    dp_auth_keys_free(k);

    t_write(path, t_keys_text, 0640);
    assert_int_equal(dp_auth_keys_load(path, &k, err, sizeof(err)), -EPERM);
    assert_null(k);
    assert_non_null(strstr(err, "mode 0640"));
    assert_non_null(strstr(err, path));
    t_write(path, t_keys_text, 0604);
    assert_int_equal(dp_auth_keys_load(path, &k, err, sizeof(err)), -EPERM);

    /* a bad line names the file and the line */
    t_write(path, "key 1 " T_KEY1_HEX "\nkey 2 nothex\n", 0600);
    assert_int_equal(dp_auth_keys_load(path, &k, err, sizeof(err)), -EINVAL);
    char want[160];
    snprintf(want, sizeof(want), "%s:2: ", path);
    assert_memory_equal(err, want, strlen(want));

    t_path(link, sizeof(link), "keys.link");
    t_write(path, t_keys_text, 0600);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(dp_auth_keys_load(link, &k, err, sizeof(err)), -ELOOP);
    assert_non_null(strstr(err, "symbolic link"));
    assert_int_equal(dp_auth_keys_load(t_dir, &k, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
    t_path(path, sizeof(path), "missing");
    assert_int_equal(dp_auth_keys_load(path, &k, err, sizeof(err)), -ENOENT);

    if (geteuid() == 0) { /* root may chown: a file of another user is refused */
        t_path(path, sizeof(path), "keys.other");
        t_write(path, t_keys_text, 0600);
        assert_int_equal(chown(path, 1234, 1234), 0);
        assert_int_equal(dp_auth_keys_load(path, &k, err, sizeof(err)), -EPERM);
        assert_non_null(strstr(err, "uid 1234"));
    }
}

/* ---- per frame ----------------------------------------------------------------------- */

static void test_verify_valid(void **state)
{
    (void)state;
    struct dp_auth_keys *k = t_keys(t_keys_text);
    uint8_t key1[SF_AUTH_KEY_LEN], key2[SF_AUTH_KEY_LEN], dgram[T_DGRAM_MAX];
    t_key_bytes(T_KEY1_HEX, key1);
    t_key_bytes(T_KEY2_HEX, key2);
    const struct dp_auth_key *key;
    size_t len = t_frame(dgram, key1, 1, 1000, 5);
    assert_int_equal(t_receive(k, dgram, len, &key), DP_AUTH_OK);
    assert_non_null(key);
    assert_int_equal(key->id, 1);
    len = t_frame(dgram, key2, 7, 1000, 42);
    assert_int_equal(t_receive(k, dgram, len, &key), DP_AUTH_OK);
    assert_int_equal(key->id, 7);
    /* no key file: everything passes, no key */
    assert_int_equal(t_receive(NULL, dgram, len, &key), DP_AUTH_OK);
    assert_null(key);
    dp_auth_keys_free(k);
}

static void test_verify_refusals(void **state)
{
    (void)state;
    struct dp_auth_keys *k = t_keys(t_keys_text);
    uint8_t key1[SF_AUTH_KEY_LEN], key2[SF_AUTH_KEY_LEN], dgram[T_DGRAM_MAX];
    t_key_bytes(T_KEY1_HEX, key1);
    t_key_bytes(T_KEY2_HEX, key2);
    const struct dp_auth_key *key;

    /* forged: key id 1, signed with another key */
    size_t len = t_frame(dgram, key2, 1, 1000, 5);
    assert_int_equal(t_receive(k, dgram, len, &key), DP_AUTH_BAD_TAG);
    assert_null(key);
    /* wrong key id: unknown, and 0 */
    len = t_frame(dgram, key1, 2, 1000, 5);
    assert_int_equal(t_receive(k, dgram, len, &key), DP_AUTH_NO_KEY);
    len = t_frame(dgram, key1, 0, 1000, 5);
    assert_int_equal(t_receive(k, dgram, len, &key), DP_AUTH_NO_KEY);
    /* the right key under the other key's id */
    len = t_frame(dgram, key1, 7, 1000, 42);
    assert_int_equal(t_receive(k, dgram, len, &key), DP_AUTH_BAD_TAG);
    /* key 7 is bound to sender 42 */
    len = t_frame(dgram, key2, 7, 1000, 43);
    assert_int_equal(t_receive(k, dgram, len, &key), DP_AUTH_WRONG_SENDER);
    /* no AUTH flag while keys are required */
    struct sf_frame_hdr hdr = { .sender_id = 5, .frame_seq = 1 };
    int plain = sf_frame_begin(dgram, sizeof(dgram), &hdr);
    struct sf_event ev = { .type = "device",
                           .type_len = 6,
                           .id = "sensor-1",
                           .id_len = 8,
                           .signal = "telemetry",
                           .signal_len = 9,
                           .event_id = 1 };
    plain = sf_frame_add_event(dgram, sizeof(dgram), (size_t)plain, &ev);
    plain = sf_frame_end(dgram, sizeof(dgram), (size_t)plain);
    assert_int_equal(t_receive(k, dgram, (size_t)plain, &key), DP_AUTH_UNAUTHENTICATED);
    assert_int_equal(t_receive(NULL, dgram, (size_t)plain, &key), DP_AUTH_OK);
    /* a header too short for a tag never passes */
    assert_int_equal(
        dp_auth_verify(k, dgram, SF_FRAME_HDR_LEN + SF_AUTH_TAG_LEN - 1,
                       &(struct sf_frame_hdr){ .flags = SF_FLAG_AUTH, .auth_key_id = 1 }, &key),
        DP_AUTH_BAD_TAG);
    /* names */
    assert_string_equal(dp_auth_verdict_name(DP_AUTH_BAD_TAG), "auth_bad_tag");
    assert_string_equal(dp_auth_verdict_name(DP_AUTH_UNAUTHENTICATED), "auth_unauthenticated");
    assert_string_equal(dp_auth_verdict_name(-9), "unknown");
    dp_auth_keys_free(k);
}

/* Every single-bit change of a signed frame, header, events and tag alike, is refused. */
static void test_verify_bitflips(void **state)
{
    (void)state;
    /* key 2 under id 3 too, so that flips of the key id can land on another valid key */
    struct dp_auth_keys *k = t_keys("key 1 " T_KEY1_HEX "\nkey 3 " T_KEY2_HEX "\n"
                                    "key 5 " T_KEY2_HEX "\n");
    uint8_t key1[SF_AUTH_KEY_LEN], dgram[T_DGRAM_MAX];
    t_key_bytes(T_KEY1_HEX, key1);
    size_t len = t_frame(dgram, key1, 1, 0x123456789abcull, 5);
    const struct dp_auth_key *key;
    assert_int_equal(t_receive(k, dgram, len, &key), DP_AUTH_OK);
    unsigned refused = 0, by_parser = 0, by_tag = 0;
    for (size_t bit = 0; bit < len * 8; bit++) {
        dgram[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rc = t_receive(k, dgram, len, &key);
        dgram[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (rc == DP_AUTH_OK)
            fail_msg("bit %zu (byte %zu) flipped and accepted", bit, bit / 8);
        refused++;
        by_parser += rc == 1;
        by_tag += rc == DP_AUTH_BAD_TAG;
    }
    assert_int_equal(refused, len * 8);
    assert_true(by_tag > len * 4); /* most flips reach the tag check */
    print_message("bit flips: %u refused (%u by the parser, %u by the tag)\n", refused, by_parser,
                  by_tag);
    assert_int_equal(t_receive(k, dgram, len, &key), DP_AUTH_OK);
    dp_auth_keys_free(k);
}

static void test_verify_truncated(void **state)
{
    (void)state;
    struct dp_auth_keys *k = t_keys(t_keys_text);
    uint8_t key1[SF_AUTH_KEY_LEN], dgram[T_DGRAM_MAX];
    t_key_bytes(T_KEY1_HEX, key1);
    size_t len = t_frame(dgram, key1, 1, 77, 5);
    const struct dp_auth_key *key;
    for (size_t cut = 1; cut <= SF_AUTH_TAG_LEN + 8; cut++)
        assert_int_not_equal(t_receive(k, dgram, len - cut, &key), DP_AUTH_OK);
    /* the tag checked alone (as if the parser had let it through) */
    struct sf_frame_hdr hdr;
    size_t off;
    assert_int_equal(sf_frame_parse_header(dgram, len, &hdr, &off), SF_OK);
    for (size_t cut = 1; cut <= SF_AUTH_TAG_LEN; cut++)
        assert_int_equal(dp_auth_verify(k, dgram, len - cut, &hdr, &key), DP_AUTH_BAD_TAG);
    dgram[len] = 0; /* one byte more */
    assert_int_not_equal(t_receive(k, dgram, len + 1, &key), DP_AUTH_OK);
    assert_int_equal(dp_auth_verify(k, dgram, len + 1, &hdr, &key), DP_AUTH_BAD_TAG);
    dp_auth_keys_free(k);
}

static void test_allows(void **state)
{
    (void)state;
    struct dp_auth_keys *k = t_keys(t_keys_text);
    const struct dp_auth_key *k1 = dp_auth_keys_find(k, 1), *k7 = dp_auth_keys_find(k, 7);
    assert_true(dp_auth_allows(k1, "device", 6, "sensor-1", 8));
    assert_true(dp_auth_allows(k1, "meter", 5, "sensor-", 7));
    assert_false(dp_auth_allows(k1, "devic", 5, "sensor-1", 8));    /* type prefix only */
    assert_false(dp_auth_allows(k1, "devices", 7, "sensor-1", 8));  /* longer type */
    assert_false(dp_auth_allows(k1, "customer", 8, "sensor-1", 8)); /* type not listed */
    assert_false(dp_auth_allows(k1, "device", 6, "sensor", 6));     /* shorter than prefix */
    assert_false(dp_auth_allows(k1, "device", 6, "Sensor-1", 8));   /* other id */
    assert_true(dp_auth_allows(k7, "anything", 8, "at-all", 6));
    assert_true(dp_auth_allows(NULL, "device", 6, "x", 1));
    dp_auth_keys_free(k);
}

/* ---- windows and the lease ----------------------------------------------------------- */

struct t_node {
    char path[128];
    struct dp_auth_keys *keys;
    struct dp_auth_lease *lease;
    struct dp_auth_window_table *owner[2];
    uint64_t token;
};

/* Start a node; `fresh` removes the lease file first (a first start), else it restarts. */
static void t_node_start(struct t_node *n, bool fresh, const char *keys_text, uint64_t now_us,
                         uint64_t extension)
{
    char err[SF_AUTH_ERR_LEN] = "";
    t_path(n->path, sizeof(n->path), "auth.lease");
    if (fresh)
        unlink(n->path);
    n->keys = t_keys(keys_text);
    struct dp_auth_lease_conf conf = { .extension = extension };
    int rc = dp_auth_lease_open(n->path, n->keys, now_us, &conf, &n->lease, err, sizeof(err));
    if (rc != 0)
        fail_msg("lease refused: %s", err);
    for (unsigned i = 0; i < 2; i++) {
        n->owner[i] = malloc(sizeof(*n->owner[i]));
        assert_non_null(n->owner[i]);
        dp_auth_window_table_init(n->owner[i], n->lease);
    }
}

/* The node stops without any goodbye: what is not in the lease file is lost. */
static void t_node_crash(struct t_node *n)
{
    for (unsigned i = 0; i < 2; i++)
        free(n->owner[i]);
    dp_auth_lease_close(n->lease);
    dp_auth_keys_free(n->keys);
    memset(n, 0, sizeof(*n));
}

/* One frame of (key, counter) with events on owner o, from source 0. */
static int t_check(struct t_node *n, unsigned o, uint32_t key, uint64_t counter)
{
    return dp_auth_window_check(n->owner[o], 0, ++n->token, key, counter);
}

static void test_window(void **state)
{
    (void)state;
    struct t_node n = { 0 };
    t_node_start(&n, true, "key 1 " T_KEY1_HEX "\n", 1000000, 1u << 20);
    assert_int_equal(dp_auth_lease_limit(n.lease, 1), 1000000 + (1u << 20));
    assert_int_equal(t_check(&n, 0, 1, 1000100), DP_AUTH_WIN_FRESH);
    assert_int_equal(t_check(&n, 0, 1, 1000100), DP_AUTH_WIN_REPLAYED); /* exact replay */
    assert_int_equal(t_check(&n, 1, 1, 1000100), DP_AUTH_WIN_FRESH);    /* other owner */
    assert_int_equal(t_check(&n, 1, 1, 1000100), DP_AUTH_WIN_REPLAYED);
    assert_int_equal(t_check(&n, 0, 1, 1000200), DP_AUTH_WIN_FRESH);
    /* reordered: 63 below the high-water mark is accepted once, 64 below is too old */
    assert_int_equal(t_check(&n, 0, 1, 1000200 - 63), DP_AUTH_WIN_FRESH);
    assert_int_equal(t_check(&n, 0, 1, 1000200 - 63), DP_AUTH_WIN_REPLAYED);
    assert_int_equal(t_check(&n, 0, 1, 1000200 - 64), DP_AUTH_WIN_TOO_OLD);
    assert_int_equal(t_check(&n, 0, 1, 1000100), DP_AUTH_WIN_TOO_OLD);
    for (uint64_t c = 1000150; c < 1000200; c += 7)
        assert_int_equal(t_check(&n, 0, 1, c), DP_AUTH_WIN_FRESH);
    for (uint64_t c = 1000150; c < 1000200; c += 7)
        assert_int_equal(t_check(&n, 0, 1, c), DP_AUTH_WIN_REPLAYED);
    assert_int_equal(t_check(&n, 0, 1, 1000200), DP_AUTH_WIN_REPLAYED);
    /* the counters of one window step by one */
    for (uint64_t c = 1000201; c < 1000400; c++)
        assert_int_equal(t_check(&n, 0, 1, c), DP_AUTH_WIN_FRESH);
    for (uint64_t c = 1000400 - 64; c < 1000400; c++)
        assert_int_equal(t_check(&n, 0, 1, c), DP_AUTH_WIN_REPLAYED);
    /* a key the lease does not know (not published) waits */
    assert_int_equal(t_check(&n, 0, 9, 1000400), DP_AUTH_WIN_LEASE_WAIT);
    assert_string_equal(dp_auth_window_verdict_name(DP_AUTH_WIN_TOO_OLD), "auth_too_old");
    assert_string_equal(dp_auth_window_verdict_name(DP_AUTH_WIN_LEASE_WAIT), "auth_lease_wait");
    t_node_crash(&n);
}

/* Several events of one frame on one owner: one verdict; a replay of it: refused whole. */
static void test_window_same_frame(void **state)
{
    (void)state;
    struct t_node n = { 0 };
    t_node_start(&n, true, "key 1 " T_KEY1_HEX "\nkey 2 " T_KEY2_HEX "\n", 5000, 1u << 20);
    struct dp_auth_window_table *t = n.owner[0];
    /* frame A (source 0, token 10) has 3 events here; frame B (source 1) comes between */
    assert_int_equal(dp_auth_window_check(t, 0, 10, 1, 6000), DP_AUTH_WIN_FRESH);
    assert_int_equal(dp_auth_window_check(t, 0, 10, 1, 6000), DP_AUTH_WIN_FRESH);
    assert_int_equal(dp_auth_window_check(t, 1, 10, 1, 6001), DP_AUTH_WIN_FRESH);
    assert_int_equal(dp_auth_window_check(t, 1, 10, 1, 6001), DP_AUTH_WIN_FRESH);
    assert_int_equal(dp_auth_window_check(t, 0, 10, 1, 6000), DP_AUTH_WIN_FRESH);
    /* the replay of A arrives as a new frame (new token): every event refused */
    for (unsigned e = 0; e < 3; e++)
        assert_int_equal(dp_auth_window_check(t, 0, 11, 1, 6000), DP_AUTH_WIN_REPLAYED);
    /* ... also through the other source, also with B's old token there */
    assert_int_equal(dp_auth_window_check(t, 1, 12, 1, 6000), DP_AUTH_WIN_REPLAYED);
    assert_int_equal(dp_auth_window_check(t, 1, 10, 1, 6000), DP_AUTH_WIN_REPLAYED);
    /* a token reused with another counter or key is judged again, never trusted */
    assert_int_equal(dp_auth_window_check(t, 0, 11, 2, 6000), DP_AUTH_WIN_FRESH);
    assert_int_equal(dp_auth_window_check(t, 0, 11, 1, 6001), DP_AUTH_WIN_REPLAYED);
    /* a refused frame stays refused for its remaining events */
    assert_int_equal(dp_auth_window_check(t, 0, 13, 1, 1), DP_AUTH_WIN_TOO_OLD);
    assert_int_equal(dp_auth_window_check(t, 0, 13, 1, 1), DP_AUTH_WIN_TOO_OLD);
    /* keys have separate windows */
    assert_int_equal(dp_auth_window_check(t, 0, 14, 2, 5999), DP_AUTH_WIN_FRESH);
    assert_int_equal(dp_auth_window_check(t, 0, 15, 1, 5999), DP_AUTH_WIN_FRESH);
    t_node_crash(&n);
}

static void test_lease_wait_and_extend(void **state)
{
    (void)state;
    struct t_node n = { 0 };
    const uint64_t ext = 1000;
    t_node_start(&n, true, "key 1 " T_KEY1_HEX "\n", 10000, ext); /* limit 11000, margin 500 */
    assert_int_equal(dp_auth_lease_limit(n.lease, 1), 11000);
    assert_false(dp_auth_lease_wanted(n.lease));
    assert_int_equal(dp_auth_lease_extend(n.lease), 0); /* nothing asked: no I/O */
    assert_int_equal(t_check(&n, 0, 1, 10400), DP_AUTH_WIN_FRESH);
    assert_false(dp_auth_lease_wanted(n.lease));
    assert_int_equal(t_check(&n, 0, 1, 10600), DP_AUTH_WIN_FRESH); /* within the margin */
    assert_true(dp_auth_lease_wanted(n.lease));
    assert_int_equal(t_check(&n, 0, 1, 11000), DP_AUTH_WIN_FRESH); /* at the limit */
    assert_int_equal(t_check(&n, 0, 1, 11001), DP_AUTH_WIN_LEASE_WAIT);
    assert_int_equal(t_check(&n, 1, 1, 11500), DP_AUTH_WIN_LEASE_WAIT);
    assert_int_equal(dp_auth_lease_extend(n.lease), 1);
    assert_false(dp_auth_lease_wanted(n.lease));
    assert_int_equal(dp_auth_lease_limit(n.lease, 1), 11500 + ext);
    /* the dropped frame's resend carries a new counter and passes */
    assert_int_equal(t_check(&n, 0, 1, 11002), DP_AUTH_WIN_FRESH);
    assert_int_equal(t_check(&n, 1, 1, 11501), DP_AUTH_WIN_FRESH);
    /* a failed write publishes nothing and keeps the request */
    assert_int_equal(t_check(&n, 0, 1, 12400), DP_AUTH_WIN_FRESH);
    assert_true(dp_auth_lease_wanted(n.lease));
    dp_auth_lease_fail_next_write(n.lease, EIO);
    assert_int_equal(dp_auth_lease_extend(n.lease), -EIO);
    assert_int_equal(dp_auth_lease_limit(n.lease, 1), 12500);
    assert_int_equal(t_check(&n, 0, 1, 12501), DP_AUTH_WIN_LEASE_WAIT);
    assert_true(dp_auth_lease_wanted(n.lease));
    assert_int_equal(dp_auth_lease_extend(n.lease), 1);
    assert_int_equal(dp_auth_lease_limit(n.lease, 1), 12501 + ext);
    assert_int_equal(t_check(&n, 0, 1, 12502), DP_AUTH_WIN_FRESH);
    /* a counter at the top of the range saturates */
    assert_int_equal(t_check(&n, 0, 1, UINT64_MAX), DP_AUTH_WIN_LEASE_WAIT);
    assert_int_equal(dp_auth_lease_extend(n.lease), 1);
    assert_int_equal(dp_auth_lease_limit(n.lease, 1), UINT64_MAX);
    assert_int_equal(t_check(&n, 0, 1, UINT64_MAX), DP_AUTH_WIN_FRESH);
    assert_int_equal(t_check(&n, 0, 1, UINT64_MAX), DP_AUTH_WIN_REPLAYED);
    t_node_crash(&n);
}

/* Accept, crash, restart from the lease file: nothing accepted before is accepted again. */
static void test_lease_restart(void **state)
{
    (void)state;
    struct t_node n = { 0 };
    const uint64_t ext = 1u << 16;
    const char *keys = "key 1 " T_KEY1_HEX "\nkey 2 " T_KEY2_HEX "\n";
    t_node_start(&n, true, keys, 1000000, ext);
    uint64_t accepted_max = 0;
    for (uint64_t c = 1000001; c < 1000000 + 3 * ext; c += 97) {
        int v = t_check(&n, (unsigned)(c & 1), 1, c);
        if (v == DP_AUTH_WIN_LEASE_WAIT) {
            assert_true(dp_auth_lease_extend(n.lease) >= 1); /* the control thread's tick */
            v = t_check(&n, (unsigned)(c & 1), 1, c);
        }
        assert_int_equal(v, DP_AUTH_WIN_FRESH);
        accepted_max = c;
        if (c % 5 == 0)
            dp_auth_lease_extend(n.lease);
    }
    uint64_t limit = dp_auth_lease_limit(n.lease, 1);
    assert_true(limit >= accepted_max);
    t_node_crash(&n);

    /* restart with the clock far behind: the floor still holds */
    t_node_start(&n, false, keys, 0, ext);
    assert_int_equal(dp_auth_lease_floor(n.lease, 1), limit);
    assert_int_equal(dp_auth_lease_limit(n.lease, 1), limit + ext);
    assert_int_equal(dp_auth_lease_floor(n.lease, 2), 1000000 + ext);
    for (uint64_t c = 1000001; c <= accepted_max; c += 97) {
        int v = t_check(&n, (unsigned)(c & 1), 1, c);
        assert_true(v == DP_AUTH_WIN_REPLAYED || v == DP_AUTH_WIN_TOO_OLD);
    }
    for (uint64_t c = limit - 63; c <= limit; c++)
        assert_int_equal(t_check(&n, 0, 1, c), DP_AUTH_WIN_REPLAYED);
    assert_int_equal(t_check(&n, 0, 1, limit - 64), DP_AUTH_WIN_TOO_OLD);
    assert_int_equal(t_check(&n, 0, 1, limit + 1), DP_AUTH_WIN_FRESH);
    assert_int_equal(t_check(&n, 1, 1, limit + 1), DP_AUTH_WIN_FRESH);
    assert_int_equal(t_check(&n, 1, 1, limit + 1), DP_AUTH_WIN_REPLAYED);
    t_node_crash(&n);

    /* a second restart without key 2 in the key set keeps key 2's floor in the file */
    t_node_start(&n, false, "key 1 " T_KEY1_HEX "\n", 0, ext);
    t_node_crash(&n);
    t_node_start(&n, false, keys, 0, ext);
    assert_int_equal(dp_auth_lease_floor(n.lease, 2), 1000000 + 2 * ext);
    t_node_crash(&n);
}

static void test_lease_reload(void **state)
{
    (void)state;
    struct t_node n = { 0 };
    t_node_start(&n, true, "key 1 " T_KEY1_HEX "\n", 5000, 1000);
    assert_int_equal(t_check(&n, 0, 3, 5500), DP_AUTH_WIN_LEASE_WAIT); /* not yet known */
    assert_false(dp_auth_lease_wanted(n.lease));
    struct dp_auth_keys *next = t_keys("key 1 " T_KEY1_HEX "\nkey 3 " T_KEY2_HEX "\n");
    dp_auth_lease_fail_next_write(n.lease, ENOSPC);
    assert_int_equal(dp_auth_lease_add_keys(n.lease, next, 5000), -ENOSPC);
    assert_int_equal(dp_auth_lease_limit(n.lease, 3), 0);
    assert_int_equal(dp_auth_lease_add_keys(n.lease, next, 5000), 1);
    assert_int_equal(dp_auth_lease_add_keys(n.lease, next, 5000), 0);
    assert_int_equal(dp_auth_lease_limit(n.lease, 3), 6000);
    assert_int_equal(dp_auth_lease_floor(n.lease, 3), 0);
    assert_int_equal(t_check(&n, 0, 3, 5501), DP_AUTH_WIN_FRESH);
    dp_auth_keys_free(next);
    t_node_crash(&n);
}

static void t_expect_damaged(const char *text, unsigned line, const char *reason)
{
    char path[128], err[SF_AUTH_ERR_LEN] = "", want[192];
    t_path(path, sizeof(path), "auth.lease");
    t_write(path, text, 0600);
    struct dp_auth_lease *l = (struct dp_auth_lease *)1;
    assert_int_equal(dp_auth_lease_open(path, NULL, 0, NULL, &l, err, sizeof(err)), -EINVAL);
    assert_null(l);
    snprintf(want, sizeof(want), "%s:%u: ", path, line);
    if (strncmp(err, want, strlen(want)) != 0 || strstr(err, reason) == NULL)
        fail_msg("'%s': want '%s...%s'", err, want, reason);
}

static void test_lease_damaged(void **state)
{
    (void)state;
    struct t_node n = { 0 };
    t_node_start(&n, true, "key 1 " T_KEY1_HEX "\nkey 2 " T_KEY2_HEX "\n", 123456, 1000);
    char text[512];
    FILE *f = fopen(n.path, "r");
    assert_non_null(f);
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = '\0';
    assert_non_null(strstr(text, "key 1 124456\n"));
    t_node_crash(&n);

    char bad[1024];
    /* a digit changed: the checksum catches it */
    snprintf(bad, sizeof(bad), "%s", text);
    *strstr(bad, "124456") = '0';
    t_expect_damaged(bad, 4, "checksum");
    /* torn: cut anywhere before the end of the last line */
    for (size_t cut = 0; cut < len; cut++) {
        char err[SF_AUTH_ERR_LEN];
        struct dp_auth_lease *l;
        char path[128];
        t_path(path, sizeof(path), "auth.lease");
        memcpy(bad, text, cut);
        bad[cut] = '\0';
        t_write(path, bad, 0600);
        assert_int_equal(dp_auth_lease_open(path, NULL, 0, NULL, &l, err, sizeof(err)), -EINVAL);
    }
    snprintf(bad, sizeof(bad), "%sx\n", text);
    t_expect_damaged(bad, 4, "after the 'end' line");
    t_expect_damaged("sigflow-lease 0\n", 1, "not a sigflow lease");
    t_expect_damaged("sigflow-auth-lease 1\nkey 1 5\nkey 1 6\n", 3, "twice");
    t_expect_damaged("sigflow-auth-lease 1\nkey 0 5\n", 2, "expected 'key ID LIMIT'");
    t_expect_damaged("sigflow-auth-lease 1\nkey 1 5 6\n", 2, "expected 'key ID LIMIT'");
    t_expect_damaged("sigflow-auth-lease 1\nend 1 0\n", 2, "count");
    /* a missing file is a first start */
    char path[128], err[SF_AUTH_ERR_LEN];
    t_path(path, sizeof(path), "auth.lease");
    unlink(path);
    struct dp_auth_lease *l;
    assert_int_equal(dp_auth_lease_open(path, NULL, 0, NULL, &l, err, sizeof(err)), 0);
    dp_auth_lease_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_valid),
        cmocka_unit_test(test_keys_errors),
        cmocka_unit_test(test_keys_too_many),
        cmocka_unit_test(test_keys_file_rules),
        cmocka_unit_test(test_verify_valid),
        cmocka_unit_test(test_verify_refusals),
        cmocka_unit_test(test_verify_bitflips),
        cmocka_unit_test(test_verify_truncated),
        cmocka_unit_test(test_allows),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_window_same_frame),
        cmocka_unit_test(test_lease_wait_and_extend),
        cmocka_unit_test(test_lease_restart),
        cmocka_unit_test(test_lease_reload),
        cmocka_unit_test(test_lease_damaged),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
