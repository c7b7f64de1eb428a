/* test_pkt_misc.c — checksum against the reference, link-local derivation, verdict names,
 * the token bucket, and classify/reply invariants under random mutation of valid frames. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pkt_test_util.h"

#define T_MUTATIONS_PER_SEED 4000u

static uint64_t t_rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t t_rand(void)
{
    /* xorshift64*: deterministic, good enough to scatter mutations */
    t_rng_state ^= t_rng_state >> 12;
    t_rng_state ^= t_rng_state << 25;
    t_rng_state ^= t_rng_state >> 27;
    return t_rng_state * 0x2545f4914f6cdd1dull;
}

static void test_csum_matches_reference(void **state)
{
    (void)state;
    static uint8_t buf[1600];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)t_rand();
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; len <= 300; len++) {
            uint16_t got = pkt_csum(buf + off, len);
            uint8_t got_bytes[2];
            memcpy(got_bytes, &got, 2);
            uint16_t want = (uint16_t)~t_ref_fold(t_ref_sum(0, buf + off, len));
            assert_int_equal(t_get16(got_bytes), want);
        }
    }
    /* chained sums (even first part) equal one sum; large buffer of 0xff bytes */
    for (size_t split = 0; split <= 1500; split += 2) {
        uint64_t acc = pkt_csum_add(0, buf, split);
        acc = pkt_csum_add(acc, buf + split, 1501 - split);
        assert_int_equal(pkt_csum_fold(acc), pkt_csum_fold(pkt_csum_add(0, buf, 1501)));
    }
    memset(buf, 0xff, sizeof buf);
    assert_int_equal(pkt_csum_fold(pkt_csum_add(0, buf, sizeof buf)), 0xffff);
    assert_int_equal(pkt_csum_fold(UINT64_MAX), 0xffff);
    assert_int_equal(pkt_csum_fold(0), 0);
    /* a valid header sums to 0xffff */
    static const uint8_t hdr[20] = { 0x45, 0,    0,    0x54, 0xa6, 0xf2, 0x40, 0,    0x40, 0x01,
                                     0x0b, 0x4e, 0xc0, 0xa8, 0,    0x01, 0xc0, 0xa8, 0,    0xc7 };
    /* compute the real checksum of that header with the field zeroed, store, verify */
    uint8_t h[20];
    memcpy(h, hdr, 20);
    h[10] = h[11] = 0;
    uint16_t c = pkt_csum(h, 20);
    memcpy(h + 10, &c, 2);
    assert_int_equal(pkt_csum_fold(pkt_csum_add(0, h, 20)), 0xffff);
    assert_int_equal(t_get16(h + 10),
                     (uint16_t)~t_ref_fold(t_ref_sum(0, hdr, 10) + t_ref_sum(0, hdr + 12, 8)));
}

static void test_link_local(void **state)
{
    (void)state;
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    static const uint8_t want[16] = { 0xfe, 0x80, 0,    0,    0,    0,    0,    0,
                                      0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56 };
    uint8_t got[16];
    memset(got, 0xaa, sizeof got);
    pkt_ip6_link_local(mac, got);
    assert_memory_equal(got, want, 16);
}

static void test_verdict_names(void **state)
{
    (void)state;
    for (int v = 0; v < PKT_VERDICT_COUNT; v++) {
        const char *name = pkt_verdict_name((enum pkt_verdict)v);
        assert_non_null(name);
        assert_string_not_equal(name, "unknown");
        assert_true(strlen(name) > 0);
        for (const char *c = name; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_');
        for (int w = 0; w < v; w++)
            assert_string_not_equal(name, pkt_verdict_name((enum pkt_verdict)w));
        bool drop = strncmp(name, "drop_", 5) == 0;
        assert_int_equal(pkt_verdict_is_drop((enum pkt_verdict)v), drop);
    }
    assert_string_equal(pkt_verdict_name(PKT_VERDICT_COUNT), "unknown");
    assert_string_equal(pkt_verdict_name(PKT_DROP_IP6_EXT), "drop_ip6_ext");
    assert_false(pkt_verdict_is_drop(PKT_EVENT));
    assert_false(pkt_verdict_is_drop(PKT_IGNORE_NDP_OTHER));
    assert_true(pkt_verdict_is_reply(PKT_NDP_SOLICIT));
    assert_false(pkt_verdict_is_reply(PKT_EVENT));
}

#define T_SEC 1000000000ull

static void test_token_bucket(void **state)
{
    (void)state;
    struct pkt_token_bucket tb;
    pkt_tb_init(&tb, 10, 3);
    uint64_t t = 5 * T_SEC;
    /* starts full: burst of 3, then empty */
    assert_true(pkt_tb_take(&tb, t));
    assert_true(pkt_tb_take(&tb, t));
    assert_true(pkt_tb_take(&tb, t));
    assert_false(pkt_tb_take(&tb, t));
    /* 10/s: one token per 100 ms */
    assert_false(pkt_tb_take(&tb, t + 99999999ull));
    assert_true(pkt_tb_take(&tb, t + 100000000ull));
    assert_false(pkt_tb_take(&tb, t + 150000000ull));
    assert_true(pkt_tb_take(&tb, t + 200000000ull));
    /* a long pause refills only up to the burst */
    t += 100 * T_SEC;
    for (int i = 0; i < 3; i++)
        assert_true(pkt_tb_take(&tb, t));
    assert_false(pkt_tb_take(&tb, t));
    /* time going backwards refills nothing */
    assert_false(pkt_tb_take(&tb, t - T_SEC));
    assert_false(pkt_tb_take(&tb, t));

    /* frequent calls do not lose fractions: 100/s polled every 3 µs for 2 s grants
     * burst + 200 (+/- 1) */
    pkt_tb_init(&tb, 100, 5);
    uint64_t granted = 0;
    for (uint64_t now = T_SEC; now <= 3 * T_SEC; now += 3000)
        granted += pkt_tb_take(&tb, now);
    assert_true(granted >= 204 && granted <= 206);

    /* high rate: 1e6/s over 1 ms polled every 1 µs: about 1000 + burst */
    pkt_tb_init(&tb, 1000000, 10);
    granted = 0;
    for (uint64_t now = T_SEC; now <= T_SEC + 1000000; now += 1000)
        granted += pkt_tb_take(&tb, now);
    assert_true(granted >= 1000 && granted <= 1011);

    /* rate 0: only the burst; burst 0: nothing */
    pkt_tb_init(&tb, 0, 2);
    assert_true(pkt_tb_take(&tb, T_SEC));
    assert_true(pkt_tb_take(&tb, 2 * T_SEC));
    assert_false(pkt_tb_take(&tb, 100 * T_SEC));
    pkt_tb_init(&tb, 1000, 0);
    assert_false(pkt_tb_take(&tb, T_SEC));
    assert_false(pkt_tb_take(&tb, 100 * T_SEC));
    /* burst lowered at run time: tokens above it are dropped */
    pkt_tb_init(&tb, 1, 10);
    tb.burst = 2;
    assert_true(pkt_tb_take(&tb, T_SEC));
    assert_true(pkt_tb_take(&tb, T_SEC));
    assert_false(pkt_tb_take(&tb, T_SEC));
    /* huge elapsed times do not overflow */
    pkt_tb_init(&tb, UINT64_MAX / 2, 4);
    for (int i = 0; i < 4; i++)
        assert_true(pkt_tb_take(&tb, 1));
    assert_true(pkt_tb_take(&tb, UINT64_MAX));
}

/* Classify frame[0..len); for reply verdicts build the reply out of place and in place and
 * check they agree and are no longer than len; located payloads stay within len. */
static void t_check_invariants(const struct pkt_node_cfg *node, const uint8_t *frame, size_t len,
                               size_t *seen)
{
    static uint8_t out[T_FRAME_MAX];
    struct pkt_info info;
    /* exact-size heap copy: under ASan any read past len faults; the in-place build
     * overwrites it */
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, frame, len);
    enum pkt_verdict v = pkt_classify(copy, len, node, &info);
    assert_true((unsigned)v < PKT_VERDICT_COUNT);
    seen[v]++;
    if (v == PKT_EVENT || pkt_verdict_is_reply(v))
        assert_true((size_t)info.payload_off + info.payload_len <= len);
    if (pkt_verdict_is_reply(v)) {
        int n = pkt_build_reply(copy, len, &info, v, node, out, sizeof out);
        assert_true(n > 0 && (size_t)n <= len);
        int m = pkt_build_reply(copy, len, &info, v, node, copy, len);
        assert_int_equal(m, n);
        assert_memory_equal(copy, out, (size_t)n);
    }
    if (v == PKT_EVENT) {
        int n = pkt_build_udp_reply(&info, node, (const uint8_t *)"ack", 3, out, sizeof out);
        assert_true(n > 0);
    }
    free(copy);
}

static void test_mutation_invariants(void **state)
{
    (void)state;
    struct pkt_node_cfg node;
    t_node_cfg(&node);
    static uint8_t seeds[8][T_FRAME_MAX], l4[T_FRAME_MAX], m[T_FRAME_MAX];
    size_t seed_len[8];
    uint8_t dst[16];
    seed_len[0] = t_ip4(seeds[0], -1, t_peer_ip4, t_node_ip4, 17, 8, l4,
                        t_udp(l4, T_PEER_PORT, T_NODE_PORT, (const uint8_t *)"hello", 5));
    seed_len[1] = t_ip6(seeds[1], 9, t_node_mac, t_peer_ip6, t_node_ip6, 17, 64, l4,
                        t_udp(l4, T_PEER_PORT, T_NODE_PORT, (const uint8_t *)"hello6", 6));
    seed_len[2] = t_arp(seeds[2], -1, 1, t_node_ip4);
    seed_len[3] = t_ip4(seeds[3], 3, t_peer_ip4, t_node_ip4, 1, 4, l4, t_echo(l4, 8, 24));
    seed_len[4] =
        t_ip6(seeds[4], -1, t_node_mac, t_peer_ip6, t_node_ip6, 58, 64, l4, t_echo(l4, 128, 16));
    t_solicited_node(t_node_ip6, dst);
    seed_len[5] =
        t_ip6(seeds[5], -1, t_bcast_mac, t_peer_ip6, dst, 58, 255, l4, t_ns(l4, t_node_ip6, true));
    seed_len[6] = t_ip6(seeds[6], 2, t_bcast_mac, t_unspec_ip6, dst, 58, 255, l4,
                        t_ns(l4, t_node_ip6, false));
    seed_len[7] = t_arp(seeds[7], 44, 1, t_node_ip4);
    size_t seen[PKT_VERDICT_COUNT] = { 0 };
    for (size_t s = 0; s < 8; s++) {
        t_check_invariants(&node, seeds[s], seed_len[s], seen); /* the seed itself */
        for (size_t i = 0; i < T_MUTATIONS_PER_SEED; i++) {
            size_t len = seed_len[s];
            memcpy(m, seeds[s], len);
            unsigned flips = 1 + (unsigned)(t_rand() % 3);
            for (unsigned k = 0; k < flips; k++)
                m[t_rand() % len] ^= (uint8_t)(1u << (t_rand() % 8));
            if (t_rand() % 4 == 0)
                len = (size_t)(t_rand() % (len + 1));
            else if (t_rand() % 8 == 0)
                len += t_rand() % 64; /* trailing bytes: padding */
            t_check_invariants(&node, m, len, seen);
        }
    }
    /* the seeds produce every reply verdict; mutations reach many drops */
    assert_true(seen[PKT_EVENT] > 0 && seen[PKT_ARP_REQUEST] > 0 && seen[PKT_ICMP_ECHO] > 0 &&
                seen[PKT_ICMP6_ECHO] > 0 && seen[PKT_NDP_SOLICIT] > 0);
    size_t kinds = 0;
    for (int v = 0; v < PKT_VERDICT_COUNT; v++)
        kinds += seen[v] != 0;
    assert_true(kinds >= 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csum_matches_reference), cmocka_unit_test(test_link_local),
        cmocka_unit_test(test_verdict_names),          cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_mutation_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
