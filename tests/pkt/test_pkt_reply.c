/* test_pkt_reply.c — pkt_build_reply() and pkt_build_udp_reply(): every byte of ARP replies,
 * ICMP/ICMPv6 echo replies, NDP advertisements and UDP datagrams, in place and not, with
 * checksums recomputed by the reference, never longer than the request, VLAN kept. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pkt_test_util.h"

static struct pkt_node_cfg node;
static uint8_t f[T_FRAME_MAX];
static uint8_t l4[T_FRAME_MAX];
static uint8_t out[T_FRAME_MAX];
static struct pkt_info info;

static int setup(void **state)
{
    (void)state;
    t_node_cfg(&node);
    memset(f, 0, sizeof f);
    memset(out, 0xcc, sizeof out);
    return 0;
}

/* Classify f[0..len) (expecting want), build the reply into out and again in place in a
 * copy of f; both must be identical and <= len. Returns the reply length. */
static size_t reply(size_t len, enum pkt_verdict want)
{
    assert_int_equal(pkt_classify(f, len, &node, &info), want);
    int n = pkt_build_reply(f, len, &info, want, &node, out, sizeof out);
    assert_true(n > 0);
    assert_true((size_t)n <= len);
    static uint8_t inplace[T_FRAME_MAX];
    memcpy(inplace, f, len);
    int m = pkt_build_reply(inplace, len, &info, want, &node, inplace, len);
    assert_int_equal(m, n);
    assert_memory_equal(inplace, out, (size_t)n);
    /* one byte of room short */
    assert_int_equal(pkt_build_reply(f, len, &info, want, &node, out + 1024, (size_t)n - 1),
                     -ENOSPC);
    return (size_t)n;
}

/* Ethernet header of a reply to the peer (+ tag); returns l2 length. */
static size_t check_eth(const uint8_t *r, const uint8_t *dst_mac, int vlan, unsigned ethertype)
{
    assert_memory_equal(r, dst_mac, 6);
    assert_memory_equal(r + 6, t_node_mac, 6);
    if (vlan < 0) {
        assert_int_equal(t_get16(r + 12), ethertype);
        return 14;
    }
    assert_int_equal(t_get16(r + 12), 0x8100);
    assert_int_equal(t_get16(r + 14), (unsigned)vlan);
    assert_int_equal(t_get16(r + 16), ethertype);
    return 18;
}

static void arp_reply_case(int vlan)
{
    size_t len = t_arp(f, vlan, 1, t_node_ip4);
    size_t n = reply(len, PKT_ARP_REQUEST);
    size_t l2 = check_eth(out, t_peer_mac, vlan, 0x0806);
    assert_int_equal(n, l2 + 28);
    const uint8_t *a = out + l2;
    assert_int_equal(t_get16(a), 1);
    assert_int_equal(t_get16(a + 2), 0x0800);
    assert_int_equal(a[4], 6);
    assert_int_equal(a[5], 4);
    assert_int_equal(t_get16(a + 6), 2);
    assert_memory_equal(a + 8, t_node_mac, 6);
    assert_memory_equal(a + 14, t_node_ip4, 4);
    assert_memory_equal(a + 18, t_peer_mac, 6);
    assert_memory_equal(a + 24, t_peer_ip4, 4);
    /* the reply, seen by the peer, is an ARP reply: ignored */
    struct pkt_node_cfg peer = node;
    memcpy(peer.mac, t_peer_mac, 6);
    memcpy(peer.ip4, t_peer_ip4, 4);
    struct pkt_info pinfo;
    assert_int_equal(pkt_classify(out, n, &peer, &pinfo), PKT_IGNORE_ARP_OTHER);
}

static void test_arp_reply(void **state)
{
    (void)state;
    arp_reply_case(-1);
    arp_reply_case(0x2123);
    /* padded request: reply is the 42-byte ARP, still <= 60 */
    size_t len = t_arp(f, -1, 1, t_node_ip4);
    memset(f + len, 0, 60 - len);
    assert_int_equal(reply(60, PKT_ARP_REQUEST), 42);
}

static void icmp4_reply_case(int vlan, size_t opt_len, size_t data_len, size_t pad)
{
    size_t l4_len = t_echo(l4, 8, data_len);
    size_t len = t_ip4(f, vlan, t_peer_ip4, t_node_ip4, 1, opt_len, l4, l4_len);
    memset(f + len, 0xee, pad);
    size_t n = reply(len + pad, PKT_ICMP_ECHO);
    size_t l2 = check_eth(out, t_peer_mac, vlan, 0x0800);
    assert_int_equal(n, l2 + 20 + l4_len); /* options and padding dropped */
    const uint8_t *ip = out + l2;
    assert_int_equal(ip[0], 0x45);
    assert_int_equal(ip[1], 0x10); /* TOS kept */
    assert_int_equal(t_get16(ip + 2), 20 + l4_len);
    assert_int_equal(t_get16(ip + 4), 0x1234); /* ID echoed */
    assert_int_equal(t_get16(ip + 6), 0);
    assert_int_equal(ip[8], PKT_REPLY_TTL);
    assert_int_equal(ip[9], 1);
    assert_memory_equal(ip + 12, t_node_ip4, 4);
    assert_memory_equal(ip + 16, t_peer_ip4, 4);
    assert_true(t_csum_valid(0, ip, 20));
    const uint8_t *icmp = ip + 20;
    assert_int_equal(icmp[0], 0);
    assert_int_equal(icmp[1], 0);
    assert_memory_equal(icmp + 4, l4 + 4, l4_len - 4); /* id, seq, data */
    assert_true(t_csum_valid(0, icmp, l4_len));
}

static void test_icmp4_echo_reply(void **state)
{
    (void)state;
    icmp4_reply_case(-1, 0, 0, 0);
    icmp4_reply_case(-1, 0, 56, 0);
    icmp4_reply_case(-1, 12, 56, 0);
    icmp4_reply_case(-1, 40, 1, 0); /* odd data length */
    icmp4_reply_case(77, 8, 100, 0);
    icmp4_reply_case(-1, 0, 2, 16);
    /* many data lengths: the incremental checksum update holds for all of them */
    for (size_t d = 0; d < 300; d += 7)
        icmp4_reply_case(d % 2 ? 9 : -1, (d % 3) * 4, d, 0);
}

static void icmp6_reply_case(int vlan, const uint8_t *dst, size_t data_len, size_t pad)
{
    size_t l4_len = t_echo(l4, 128, data_len);
    size_t len = t_ip6(f, vlan, t_node_mac, t_peer_ip6, dst, 58, 64, l4, l4_len);
    memset(f + len, 0xee, pad);
    size_t n = reply(len + pad, PKT_ICMP6_ECHO);
    size_t l2 = check_eth(out, t_peer_mac, vlan, 0x86dd);
    assert_int_equal(n, l2 + 40 + l4_len);
    const uint8_t *ip = out + l2;
    assert_int_equal(ip[0], 0x60);
    assert_int_equal(t_get16(ip + 2), 0x1234); /* flow label kept */
    assert_int_equal(t_get16(ip + 4), l4_len);
    assert_int_equal(ip[6], 58);
    assert_int_equal(ip[7], PKT_REPLY_TTL);
    assert_memory_equal(ip + 8, dst, 16);
    assert_memory_equal(ip + 24, t_peer_ip6, 16);
    const uint8_t *icmp = ip + 40;
    assert_int_equal(icmp[0], 129);
    assert_int_equal(icmp[1], 0);
    assert_memory_equal(icmp + 4, l4 + 4, l4_len - 4);
    assert_true(t_csum_valid(t_ref_pseudo(6, dst, t_peer_ip6, 58, l4_len), icmp, l4_len));
}

static void test_icmp6_echo_reply(void **state)
{
    (void)state;
    icmp6_reply_case(-1, t_node_ip6, 0, 0);
    icmp6_reply_case(-1, t_node_ip6, 56, 0);
    icmp6_reply_case(4095, node.ip6_ll, 33, 0);
    icmp6_reply_case(-1, t_node_ip6, 3, 20);
    for (size_t d = 0; d < 200; d += 9)
        icmp6_reply_case(-1, d % 2 ? t_node_ip6 : node.ip6_ll, d, 0);
}

/* NS from src for target (solicited-node destination) -> check the NA. */
static void na_case(int vlan, const uint8_t *src, const uint8_t *target, bool sllao)
{
    uint8_t dst[16];
    t_solicited_node(target, dst);
    static const uint8_t mcast_mac[6] = { 0x33, 0x33, 0xff, 0, 0, 1 };
    size_t l4_len = t_ns(l4, target, sllao);
    size_t len = t_ip6(f, vlan, mcast_mac, src, dst, 58, 255, l4, l4_len);
    size_t n = reply(len, PKT_NDP_SOLICIT);
    bool unspec = memcmp(src, t_unspec_ip6, 16) == 0;
    static const uint8_t all_nodes_mac[6] = { 0x33, 0x33, 0, 0, 0, 1 };
    size_t l2 = check_eth(out, unspec ? all_nodes_mac : t_peer_mac, vlan, 0x86dd);
    size_t na_len = sllao ? 32 : 24; /* no room for the TLLA option after a 24-byte NS */
    assert_int_equal(n, l2 + 40 + na_len);
    const uint8_t *ip = out + l2;
    const uint8_t *want_dst = unspec ? t_all_nodes_ip6 : src;
    assert_int_equal(ip[0], 0x60);
    assert_int_equal(t_get16(ip + 4), na_len);
    assert_int_equal(ip[6], 58);
    assert_int_equal(ip[7], 255);
    assert_memory_equal(ip + 8, target, 16);
    assert_memory_equal(ip + 24, want_dst, 16);
    const uint8_t *na = ip + 40;
    assert_int_equal(na[0], 136);
    assert_int_equal(na[1], 0);
    assert_int_equal(na[4], unspec ? 0x20 : 0x60); /* Override, Solicited unless DAD */
    assert_int_equal(na[5] | na[6] | na[7], 0);
    assert_memory_equal(na + 8, target, 16);
    if (sllao) {
        assert_int_equal(na[24], 2);
        assert_int_equal(na[25], 1);
        assert_memory_equal(na + 26, t_node_mac, 6);
    }
    assert_true(t_csum_valid(t_ref_pseudo(6, target, want_dst, 58, na_len), na, na_len));
    /* the peer sees a valid, ignorable NA */
    struct pkt_node_cfg peer = node;
    memcpy(peer.mac, t_peer_mac, 6);
    memcpy(peer.ip6, t_peer_ip6, 16);
    struct pkt_info pinfo;
    if (!unspec)
        assert_int_equal(pkt_classify(out, n, &peer, &pinfo), PKT_IGNORE_NDP_OTHER);
}

static void test_ndp_advert(void **state)
{
    (void)state;
    na_case(-1, t_peer_ip6, t_node_ip6, true);
    na_case(-1, t_peer_ip6, node.ip6_ll, true);
    na_case(12, t_peer_ip6, node.ip6_ll, true);
    na_case(-1, t_peer_ip6, t_node_ip6, false);
    na_case(-1, t_unspec_ip6, t_node_ip6, false);
    na_case(3, t_unspec_ip6, node.ip6_ll, false);
}

static void test_reply_errors(void **state)
{
    (void)state;
    size_t len = t_arp(f, -1, 1, t_node_ip4);
    assert_int_equal(pkt_classify(f, len, &node, &info), PKT_ARP_REQUEST);
    /* not a reply verdict, or the wrong one */
    assert_int_equal(pkt_build_reply(f, len, &info, PKT_EVENT, &node, out, sizeof out), -EINVAL);
    assert_int_equal(pkt_build_reply(f, len, &info, PKT_ICMP_ECHO, &node, out, sizeof out),
                     -EINVAL);
    assert_int_equal(pkt_build_reply(f, len, &info, PKT_NDP_SOLICIT, &node, out, sizeof out),
                     -EINVAL);
    assert_int_equal(pkt_build_reply(f, len, &info, PKT_DROP_QINQ, &node, out, sizeof out),
                     -EINVAL);
    /* info that does not describe this frame */
    assert_int_equal(pkt_build_reply(f, len - 1, &info, PKT_ARP_REQUEST, &node, out, sizeof out),
                     -EINVAL);
    struct pkt_info bad = info;
    bad.l2_len = 18;
    assert_int_equal(pkt_build_reply(f, len, &bad, PKT_ARP_REQUEST, &node, out, sizeof out),
                     -EINVAL);
    assert_int_equal(pkt_build_reply(f, len, &info, PKT_ARP_REQUEST, &node, out, 41), -ENOSPC);
    assert_int_equal(pkt_build_reply(f, len, &info, PKT_ARP_REQUEST, &node, out, 42), 42);

    size_t l4_len = t_echo(l4, 8, 10);
    len = t_ip4(f, -1, t_peer_ip4, t_node_ip4, 1, 0, l4, l4_len);
    assert_int_equal(pkt_classify(f, len, &node, &info), PKT_ICMP_ECHO);
    assert_int_equal(pkt_build_reply(f, len, &info, PKT_ICMP6_ECHO, &node, out, sizeof out),
                     -EINVAL);
    assert_int_equal(pkt_build_reply(f, len, &info, PKT_ARP_REQUEST, &node, out, sizeof out),
                     -EINVAL);
    bad = info;
    bad.payload_len = (uint16_t)(l4_len + 1);
    assert_int_equal(pkt_build_reply(f, len, &bad, PKT_ICMP_ECHO, &node, out, sizeof out), -EINVAL);
}

/* Build an ACK for the request now in info; check every header byte, then let the peer
 * classify it: an event whose payload is ours. */
static void udp_reply_check(int vlan, const uint8_t *want_src_ip, size_t payload_len)
{
    uint8_t payload[600];
    for (size_t i = 0; i < payload_len; i++)
        payload[i] = (uint8_t)(i * 13 + 1);
    size_t hdr = pkt_udp_reply_hdr_len(&info);
    int n = pkt_build_udp_reply(&info, &node, payload, payload_len, out, sizeof out);
    assert_int_equal(n, (int)(hdr + payload_len));
    unsigned ethertype = info.ip_version == 4 ? 0x0800 : 0x86dd;
    size_t l2 = check_eth(out, t_peer_mac, vlan, ethertype);
    const uint8_t *ip = out + l2, *udp;
    size_t udp_len = 8 + payload_len;
    uint32_t pseudo;
    if (info.ip_version == 4) {
        assert_int_equal(hdr, l2 + 28);
        assert_int_equal(ip[0], 0x45);
        assert_int_equal(ip[1], 0);
        assert_int_equal(t_get16(ip + 2), 20 + udp_len);
        assert_int_equal(t_get16(ip + 6), 0x4000);
        assert_int_equal(ip[8], PKT_REPLY_TTL);
        assert_int_equal(ip[9], 17);
        assert_memory_equal(ip + 12, t_node_ip4, 4);
        assert_memory_equal(ip + 16, t_peer_ip4, 4);
        assert_true(t_csum_valid(0, ip, 20));
        udp = ip + 20;
        pseudo = t_ref_pseudo(4, t_node_ip4, t_peer_ip4, 17, udp_len);
    } else {
        assert_int_equal(hdr, l2 + 48);
        assert_int_equal(ip[0], 0x60);
        assert_int_equal(t_get16(ip + 4), udp_len);
        assert_int_equal(ip[6], 17);
        assert_int_equal(ip[7], PKT_REPLY_TTL);
        assert_memory_equal(ip + 8, want_src_ip, 16);
        assert_memory_equal(ip + 24, t_peer_ip6, 16);
        udp = ip + 40;
        pseudo = t_ref_pseudo(6, want_src_ip, t_peer_ip6, 17, udp_len);
    }
    assert_int_equal(t_get16(udp), T_NODE_PORT);
    assert_int_equal(t_get16(udp + 2), T_PEER_PORT);
    assert_int_equal(t_get16(udp + 4), udp_len);
    assert_true(t_get16(udp + 6) != 0);
    assert_true(t_csum_valid(pseudo, udp, udp_len));
    assert_memory_equal(udp + 8, payload, payload_len);

    struct pkt_node_cfg peer;
    memset(&peer, 0, sizeof peer);
    memcpy(peer.mac, t_peer_mac, 6);
    memcpy(peer.ip4, t_peer_ip4, 4);
    memcpy(peer.ip6, t_peer_ip6, 16);
    peer.udp_port = T_PEER_PORT;
    struct pkt_info pinfo;
    assert_int_equal(pkt_classify(out, (size_t)n, &peer, &pinfo), PKT_EVENT);
    assert_int_equal(pinfo.payload_len, payload_len);
    assert_memory_equal(out + pinfo.payload_off, payload, payload_len);
    assert_int_equal(pinfo.has_vlan, vlan >= 0);

    /* payload already in place: same frame */
    static uint8_t again[T_FRAME_MAX];
    memcpy(again + hdr, payload, payload_len);
    assert_int_equal(
        pkt_build_udp_reply(&info, &node, again + hdr, payload_len, again, sizeof again), n);
    assert_memory_equal(again, out, (size_t)n);
    /* room */
    assert_int_equal(pkt_build_udp_reply(&info, &node, payload, payload_len, again, (size_t)n - 1),
                     -ENOSPC);
    assert_int_equal(pkt_build_udp_reply(&info, &node, payload, payload_len, again, (size_t)n), n);
}

static void test_udp_reply(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 1, 2, 3, 24, 36, 255, 512 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int vlan = -1; vlan <= 100; vlan += 101) {
            size_t l4_len = t_udp(l4, T_PEER_PORT, T_NODE_PORT, (const uint8_t *)"ev", 2);
            size_t len = t_ip4(f, vlan, t_peer_ip4, t_node_ip4, 17, 0, l4, l4_len);
            assert_int_equal(pkt_classify(f, len, &node, &info), PKT_EVENT);
            udp_reply_check(vlan, NULL, lens[i]);
            len = t_ip6(f, vlan, t_node_mac, t_peer_ip6, t_node_ip6, 17, 64, l4, l4_len);
            assert_int_equal(pkt_classify(f, len, &node, &info), PKT_EVENT);
            udp_reply_check(vlan, t_node_ip6, lens[i]);
            len = t_ip6(f, vlan, t_node_mac, t_peer_ip6, node.ip6_ll, 17, 64, l4, l4_len);
            assert_int_equal(pkt_classify(f, len, &node, &info), PKT_EVENT);
            udp_reply_check(vlan, node.ip6_ll, lens[i]); /* answered from the LL address */
        }
    }
}

static void test_udp_reply_errors(void **state)
{
    (void)state;
    struct pkt_info req;
    memset(&req, 0, sizeof req);
    uint8_t payload[4] = { 1, 2, 3, 4 };
    assert_int_equal(pkt_udp_reply_hdr_len(&req), 0);
    assert_int_equal(pkt_build_udp_reply(&req, &node, payload, 4, out, sizeof out), -EINVAL);
    req.ip_version = 4;
    assert_int_equal(pkt_udp_reply_hdr_len(&req), 42);
    req.has_vlan = true;
    assert_int_equal(pkt_udp_reply_hdr_len(&req), 46);
    assert_int_equal(
        pkt_build_udp_reply(&req, &node, payload, PKT_UDP_PAYLOAD_LEN_MAX + 1, out, sizeof out),
        -EINVAL);
    struct pkt_node_cfg no_v4 = node;
    memset(no_v4.ip4, 0, 4);
    assert_int_equal(pkt_build_udp_reply(&req, &no_v4, payload, 4, out, sizeof out), -EINVAL);
    req.ip_version = 6;
    assert_int_equal(pkt_udp_reply_hdr_len(&req), 66);
    struct pkt_node_cfg no_v6 = node;
    memset(no_v6.ip6, 0, 16);
    assert_int_equal(pkt_build_udp_reply(&req, &no_v6, payload, 4, out, sizeof out), -EINVAL);
    /* req.dst_ip is not ours (zero): falls back to the global address */
    memcpy(req.src_ip, t_peer_ip6, 16);
    assert_int_equal(pkt_build_udp_reply(&req, &node, payload, 4, out, sizeof out), 70);
    assert_memory_equal(out + 18 + 8, t_node_ip6, 16);
    assert_int_equal(pkt_build_udp_reply(&req, &node, payload, 4, out, 69), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_arp_reply, setup),
        cmocka_unit_test_setup(test_icmp4_echo_reply, setup),
        cmocka_unit_test_setup(test_icmp6_echo_reply, setup),
        cmocka_unit_test_setup(test_ndp_advert, setup),
        cmocka_unit_test_setup(test_reply_errors, setup),
        cmocka_unit_test_setup(test_udp_reply, setup),
        cmocka_unit_test_setup(test_udp_reply_errors, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
