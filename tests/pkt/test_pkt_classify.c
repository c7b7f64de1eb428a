/* test_pkt_classify.c — pkt_classify(): accepted frames, every drop verdict, both sides of
 * every length boundary, VLAN, Ethernet padding, IPv4 options, NDP validity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pkt_test_util.h"

static struct pkt_node_cfg node;
static uint8_t f[T_FRAME_MAX];
static uint8_t l4[T_FRAME_MAX];
static struct pkt_info info;

static int setup(void **state)
{
    (void)state;
    t_node_cfg(&node);
    memset(f, 0, sizeof f);
    memset(l4, 0, sizeof l4);
    return 0;
}

static enum pkt_verdict classify(size_t len)
{
    return pkt_classify(f, len, &node, &info);
}

/* UDP/IPv4 event from the peer with n payload bytes; returns the frame length. */
static size_t udp4(int vlan, size_t opt_len, size_t n)
{
    uint8_t payload[256];
    for (size_t i = 0; i < n; i++)
        payload[i] = (uint8_t)(0xa0 + i);
    size_t l4_len = t_udp(l4, T_PEER_PORT, T_NODE_PORT, payload, n);
    return t_ip4(f, vlan, t_peer_ip4, t_node_ip4, 17, opt_len, l4, l4_len);
}

static size_t udp6(int vlan, const uint8_t *dst, size_t n)
{
    uint8_t payload[256];
    for (size_t i = 0; i < n; i++)
        payload[i] = (uint8_t)(0x50 + i);
    size_t l4_len = t_udp(l4, T_PEER_PORT, T_NODE_PORT, payload, n);
    return t_ip6(f, vlan, t_node_mac, t_peer_ip6, dst, 17, 64, l4, l4_len);
}

static size_t ns(const uint8_t *src, const uint8_t *target, bool sllao, uint8_t hop)
{
    uint8_t dst[16];
    t_solicited_node(target, dst);
    size_t l4_len = t_ns(l4, target, sllao);
    static const uint8_t mcast_mac[6] = { 0x33, 0x33, 0xff, 0, 0, 1 };
    return t_ip6(f, -1, mcast_mac, src, dst, 58, hop, l4, l4_len);
}

static void test_udp4_event(void **state)
{
    (void)state;
    size_t len = udp4(-1, 0, 5);
    assert_int_equal(len, 14 + 20 + 8 + 5);
    assert_int_equal(classify(len), PKT_EVENT);
    assert_int_equal(info.l2_len, 14);
    assert_int_equal(info.l3_off, 14);
    assert_int_equal(info.l4_off, 34);
    assert_int_equal(info.payload_off, 42);
    assert_int_equal(info.payload_len, 5);
    assert_int_equal(info.ip_version, 4);
    assert_false(info.has_vlan);
    assert_memory_equal(info.src_mac, t_peer_mac, 6);
    assert_memory_equal(info.dst_mac, t_node_mac, 6);
    assert_memory_equal(info.src_ip, t_peer_ip4, 4);
    assert_memory_equal(info.dst_ip, t_node_ip4, 4);
    assert_int_equal(info.src_port, T_PEER_PORT);
    assert_int_equal(info.dst_port, T_NODE_PORT);
    assert_int_equal(f[info.payload_off], 0xa0);
    /* exactly minimal: empty payload */
    len = udp4(-1, 0, 0);
    assert_int_equal(classify(len), PKT_EVENT);
    assert_int_equal(info.payload_len, 0);
    /* IPv4 checksum 0 = none: accepted */
    len = udp4(-1, 0, 3);
    f[40] = f[41] = 0;
    assert_int_equal(classify(len), PKT_EVENT);
    /* broadcast destination MAC, our IP: accepted (MAC filter lets group frames in) */
    memcpy(f, t_bcast_mac, 6);
    assert_int_equal(classify(len), PKT_EVENT);
}

static void test_udp6_event(void **state)
{
    (void)state;
    size_t len = udp6(-1, t_node_ip6, 9);
    assert_int_equal(len, 14 + 40 + 8 + 9);
    assert_int_equal(classify(len), PKT_EVENT);
    assert_int_equal(info.ip_version, 6);
    assert_int_equal(info.l4_off, 54);
    assert_int_equal(info.payload_off, 62);
    assert_int_equal(info.payload_len, 9);
    assert_memory_equal(info.src_ip, t_peer_ip6, 16);
    assert_memory_equal(info.dst_ip, t_node_ip6, 16);
    assert_int_equal(info.src_port, T_PEER_PORT);
    /* to our link-local address */
    len = udp6(-1, node.ip6_ll, 0);
    assert_int_equal(classify(len), PKT_EVENT);
    assert_int_equal(info.payload_len, 0);
    assert_memory_equal(info.dst_ip, node.ip6_ll, 16);
}

static void test_vlan(void **state)
{
    (void)state;
    size_t len = udp4(0xa00a, 0, 4);
    assert_int_equal(classify(len), PKT_EVENT);
    assert_true(info.has_vlan);
    assert_int_equal(info.vlan_tci, 0xa00a);
    assert_int_equal(info.l2_len, 18);
    assert_int_equal(info.l4_off, 38);
    assert_int_equal(info.payload_off, 46);
    len = udp6(5, t_node_ip6, 1);
    assert_int_equal(classify(len), PKT_EVENT);
    assert_int_equal(info.vlan_tci, 5);
    assert_int_equal(info.payload_off, 18 + 48);
    /* tag present, 17 bytes: truncated tag; 18 bytes: tag complete, IPv6 truncated */
    assert_int_equal(classify(17), PKT_DROP_TRUNC_VLAN);
    assert_int_equal(classify(18), PKT_DROP_TRUNC_IP6);
    /* a second tag, or an 802.1ad / 0x9100 outer tag */
    t_be16(f + 16, 0x8100);
    assert_int_equal(classify(len), PKT_DROP_QINQ);
    t_be16(f + 16, 0x88a8);
    assert_int_equal(classify(len), PKT_DROP_QINQ);
    t_be16(f + 12, 0x88a8);
    assert_int_equal(classify(len), PKT_DROP_QINQ);
    t_be16(f + 12, 0x9100);
    assert_int_equal(classify(len), PKT_DROP_QINQ);
}

static void test_ethernet(void **state)
{
    (void)state;
    size_t len = udp4(-1, 0, 0);
    assert_int_equal(classify(0), PKT_DROP_TRUNC_ETH);
    assert_int_equal(classify(13), PKT_DROP_TRUNC_ETH);
    assert_int_equal(classify(14), PKT_DROP_TRUNC_IP4);
    t_be16(f + 12, 0x88cc); /* LLDP */
    assert_int_equal(classify(14), PKT_DROP_ETHERTYPE);
    assert_int_equal(classify(len), PKT_DROP_ETHERTYPE);
    t_be16(f + 12, 0x0800);
    /* unicast to another MAC: not for us; group source MAC: bad source */
    f[5] = 0x77;
    assert_int_equal(classify(len), PKT_DROP_NOT_FOR_US);
    memcpy(f, t_node_mac, 6);
    f[6] |= 0x01;
    assert_int_equal(classify(len), PKT_DROP_BAD_SRC);
    memcpy(f + 6, t_bcast_mac, 6);
    assert_int_equal(classify(len), PKT_DROP_BAD_SRC);
}

static void test_ethernet_padding(void **state)
{
    (void)state;
    size_t len = udp4(-1, 0, 2);
    assert_int_equal(len, 44);
    memset(f + len, 0xee, 60 - len); /* padding with junk, as some NICs deliver it */
    assert_int_equal(classify(60), PKT_EVENT);
    assert_int_equal(info.payload_len, 2);
    assert_int_equal(info.payload_off, 42);
    len = udp6(-1, t_node_ip6, 0);
    memset(f + len, 0xee, 100);
    assert_int_equal(classify(len + 100), PKT_EVENT);
    assert_int_equal(info.payload_len, 0);
    /* ICMP echo with padding: the message is cut at the IP total length */
    size_t l4_len = t_echo(l4, 8, 4);
    len = t_ip4(f, -1, t_peer_ip4, t_node_ip4, 1, 0, l4, l4_len);
    memset(f + len, 0xee, 10);
    assert_int_equal(classify(len + 10), PKT_ICMP_ECHO);
    assert_int_equal(info.payload_len, 12);
}

static void test_ip4_options(void **state)
{
    (void)state;
    for (size_t opt = 4; opt <= 40; opt += 4) {
        size_t len = udp4(-1, opt, 3);
        assert_int_equal(classify(len), PKT_EVENT);
        assert_int_equal(info.l4_off, 34 + opt);
        assert_int_equal(info.payload_off, 42 + opt);
        assert_int_equal(info.payload_len, 3);
        assert_int_equal(f[info.payload_off + 2], 0xa2);
    }
}

static void test_ip4_drops(void **state)
{
    (void)state;
    uint8_t *ip = f + 14;
    size_t len = udp4(-1, 0, 0);
    /* header: 19 bytes truncated, 20 bytes (total length 20, no UDP) reaches UDP */
    t_be16(ip + 2, 20);
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(14 + 19), PKT_DROP_TRUNC_IP4);
    assert_int_equal(classify(14 + 20), PKT_DROP_TRUNC_UDP);

    len = udp4(-1, 0, 0);
    ip[0] = 0x55; /* version 5 */
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len), PKT_DROP_IP4_HDR);
    ip[0] = 0x44; /* IHL 4 */
    assert_int_equal(classify(len), PKT_DROP_IP4_HDR);

    /* IHL 6 but only 20 header bytes received */
    len = udp4(-1, 4, 0);
    assert_int_equal(classify(14 + 23), PKT_DROP_TRUNC_IP4);
    assert_int_equal(classify(14 + 24), PKT_DROP_IP4_LEN); /* total 32 > 24 bytes */

    /* total length: < IHL*4, one past the bytes, exactly the bytes */
    len = udp4(-1, 0, 4);
    t_be16(ip + 2, 19);
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len), PKT_DROP_IP4_LEN);
    t_be16(ip + 2, (unsigned)(len - 14 + 1));
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len), PKT_DROP_IP4_LEN);
    t_be16(ip + 2, (unsigned)(len - 14));
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len), PKT_EVENT);

    /* header checksum */
    ip[10] ^= 0x01;
    assert_int_equal(classify(len), PKT_DROP_IP4_CSUM);
    ip[10] ^= 0x01;
    ip[8] = 1; /* TTL changed, checksum not */
    assert_int_equal(classify(len), PKT_DROP_IP4_CSUM);

    /* fragments: MF, offset; DF alone is fine */
    len = udp4(-1, 0, 4);
    t_be16(ip + 6, 0x2000);
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len), PKT_DROP_FRAGMENT);
    t_be16(ip + 6, 0x0001);
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len), PKT_DROP_FRAGMENT);
    t_be16(ip + 6, 0x4000);
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len), PKT_EVENT);

    /* protocol */
    ip[9] = 6;
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len), PKT_DROP_L4_PROTO);
}

static void test_ip4_addresses(void **state)
{
    (void)state;
    uint8_t *ip = f + 14;
    static const uint8_t other[4] = { 198, 18, 0, 9 }, bcast[4] = { 255, 255, 255, 255 };
    static const uint8_t mcast[4] = { 224, 0, 0, 1 }, zero[4] = { 0 };
    size_t len = udp4(-1, 0, 1);
    memcpy(ip + 16, other, 4);
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len), PKT_DROP_NOT_FOR_US);
    memcpy(ip + 16, bcast, 4);
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len), PKT_DROP_NOT_FOR_US);
    const uint8_t *bad_src[] = { bcast, mcast, zero };
    for (size_t i = 0; i < 3; i++) {
        len = udp4(-1, 0, 1);
        memcpy(ip + 12, bad_src[i], 4);
        t_fix_ip4_csum(ip);
        assert_int_equal(classify(len), PKT_DROP_BAD_SRC);
    }
    /* IPv4 disabled on the node */
    len = udp4(-1, 0, 1);
    memset(node.ip4, 0, 4);
    assert_int_equal(classify(len), PKT_DROP_NOT_FOR_US);
}

static void test_udp_drops(void **state)
{
    (void)state;
    uint8_t *ip = f + 14, *udp = f + 34;
    /* 7 bytes after the IP header: truncated; 8: a valid empty datagram */
    size_t len = udp4(-1, 0, 0);
    t_be16(ip + 2, 27);
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len - 1), PKT_DROP_TRUNC_UDP);
    t_be16(ip + 2, 28);
    t_fix_ip4_csum(ip);
    assert_int_equal(classify(len), PKT_EVENT);

    /* UDP length 7, one past the IP payload, shorter than the IP payload */
    len = udp4(-1, 0, 6);
    t_be16(udp + 4, 7);
    assert_int_equal(classify(len), PKT_DROP_UDP_LEN);
    t_be16(udp + 4, 15);
    assert_int_equal(classify(len), PKT_DROP_UDP_LEN);
    t_be16(udp + 4, 10);
    t_set_csum(t_ref_pseudo(4, t_peer_ip4, t_node_ip4, 17, 10), udp, 10, 6);
    assert_int_equal(classify(len), PKT_EVENT);
    assert_int_equal(info.payload_len, 2);

    len = udp4(-1, 0, 6);
    t_be16(udp + 2, T_NODE_PORT + 1);
    assert_int_equal(classify(len), PKT_DROP_UDP_PORT);
    assert_int_equal(info.dst_port, T_NODE_PORT + 1);

    len = udp4(-1, 0, 6);
    f[len - 1] ^= 0x40;
    assert_int_equal(classify(len), PKT_DROP_UDP_CSUM);

    /* IPv6: checksum mandatory; wrong checksum */
    len = udp6(-1, t_node_ip6, 6);
    uint8_t *udp6h = f + 54;
    uint8_t saved[2] = { udp6h[6], udp6h[7] };
    udp6h[6] = udp6h[7] = 0;
    assert_int_equal(classify(len), PKT_DROP_UDP_CSUM);
    udp6h[6] = saved[0];
    udp6h[7] = saved[1] ^ 0x01;
    assert_int_equal(classify(len), PKT_DROP_UDP_CSUM);
    udp6h[7] = saved[1];
    assert_int_equal(classify(len), PKT_EVENT);
    /* IPv6 payload of 7 bytes: truncated UDP */
    len = udp6(-1, t_node_ip6, 0);
    t_be16(f + 18, 7);
    assert_int_equal(classify(len - 1), PKT_DROP_TRUNC_UDP);
}

static void test_ip6_drops(void **state)
{
    (void)state;
    uint8_t *ip = f + 14;
    size_t len = udp6(-1, t_node_ip6, 0);
    assert_int_equal(classify(14 + 39), PKT_DROP_TRUNC_IP6);
    t_be16(ip + 4, 0);
    assert_int_equal(classify(14 + 40), PKT_DROP_TRUNC_UDP); /* header alone is accepted */

    len = udp6(-1, t_node_ip6, 4);
    ip[0] = 0x40;
    assert_int_equal(classify(len), PKT_DROP_IP6_HDR);
    ip[0] = 0x60;
    t_be16(ip + 4, 13);
    assert_int_equal(classify(len), PKT_DROP_IP6_LEN);
    t_be16(ip + 4, 12);
    assert_int_equal(classify(len), PKT_EVENT);

    /* extension headers */
    static const uint8_t exts[] = { 0, 43, 44, 50, 51, 60, 135 };
    for (size_t i = 0; i < sizeof exts; i++) {
        ip[6] = exts[i];
        assert_int_equal(classify(len), PKT_DROP_IP6_EXT);
    }
    ip[6] = 6; /* TCP */
    assert_int_equal(classify(len), PKT_DROP_L4_PROTO);
    ip[6] = 59; /* no next header */
    assert_int_equal(classify(len), PKT_DROP_L4_PROTO);
    ip[6] = 17;

    /* addresses */
    memcpy(ip + 24, t_other_ip6, 16);
    assert_int_equal(classify(len), PKT_DROP_NOT_FOR_US);
    memcpy(ip + 24, t_all_nodes_ip6, 16); /* UDP to a group */
    assert_int_equal(classify(len), PKT_DROP_NOT_FOR_US);
    len = udp6(-1, t_node_ip6, 4);
    ip[8] = 0xff; /* multicast source */
    assert_int_equal(classify(len), PKT_DROP_BAD_SRC);
    len = udp6(-1, t_node_ip6, 4);
    memset(ip + 8, 0, 16);
    assert_int_equal(classify(len), PKT_DROP_BAD_SRC);
    /* IPv6 disabled */
    len = udp6(-1, t_node_ip6, 4);
    memset(node.ip6, 0, 16);
    assert_int_equal(classify(len), PKT_DROP_NOT_FOR_US);
}

static void test_ip6_hop_by_hop_mld(void **state)
{
    (void)state;
    /* Hop-by-Hop (router alert) + MLDv2 report to ff02::16: ignored, not dropped */
    uint8_t msg[8 + 8];
    memset(msg, 0, sizeof msg);
    msg[0] = 58; /* next: ICMPv6 */
    msg[1] = 0;  /* 8 bytes */
    msg[2] = 5;  /* router alert */
    msg[3] = 2;
    msg[8] = 143;
    static const uint8_t mld_group[16] = {
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16
    };
    size_t len = t_ip6(f, -1, t_bcast_mac, node.ip6_ll, mld_group, 0, 1, msg, sizeof msg);
    assert_int_equal(classify(len), PKT_IGNORE_NDP_OTHER);
    f[54 + 8] = 128; /* HBH + echo request: not MLD */
    assert_int_equal(classify(len), PKT_DROP_IP6_EXT);
    f[54 + 8] = 143;
    f[54] = 17; /* HBH + UDP */
    assert_int_equal(classify(len), PKT_DROP_IP6_EXT);
    f[54] = 58;
    f[55] = 1; /* HBH claims 16 bytes: the message would start past the end */
    assert_int_equal(classify(len), PKT_DROP_IP6_EXT);
    f[55] = 0;
    t_be16(f + 18, 7); /* payload shorter than an HBH header */
    assert_int_equal(classify(len), PKT_DROP_IP6_EXT);
}

static void test_arp(void **state)
{
    (void)state;
    size_t len = t_arp(f, -1, 1, t_node_ip4);
    assert_int_equal(len, 42);
    assert_int_equal(classify(len), PKT_ARP_REQUEST);
    assert_int_equal(info.ip_version, 0);
    assert_int_equal(info.l3_off, 14);
    assert_int_equal(info.payload_len, 28);
    assert_memory_equal(info.src_ip, t_peer_ip4, 4);
    assert_memory_equal(info.dst_ip, t_node_ip4, 4);
    assert_int_equal(classify(len - 1), PKT_DROP_TRUNC_ARP);
    assert_int_equal(classify(60), PKT_ARP_REQUEST); /* padded */
    len = t_arp(f, 300, 1, t_node_ip4);
    assert_int_equal(classify(len), PKT_ARP_REQUEST);
    assert_int_equal(info.vlan_tci, 300);
    assert_int_equal(classify(len - 1), PKT_DROP_TRUNC_ARP);

    static const uint8_t other[4] = { 198, 18, 0, 77 };
    len = t_arp(f, -1, 1, other);
    assert_int_equal(classify(len), PKT_IGNORE_ARP_OTHER);
    len = t_arp(f, -1, 2, t_node_ip4); /* a reply */
    assert_int_equal(classify(len), PKT_IGNORE_ARP_OTHER);

    uint8_t *a = f + 14;
    len = t_arp(f, -1, 3, t_node_ip4);
    assert_int_equal(classify(len), PKT_DROP_BAD_ARP);
    len = t_arp(f, -1, 1, t_node_ip4);
    a[1] = 6; /* IEEE 802 htype */
    assert_int_equal(classify(len), PKT_DROP_BAD_ARP);
    len = t_arp(f, -1, 1, t_node_ip4);
    a[3] = 0xdd;
    assert_int_equal(classify(len), PKT_DROP_BAD_ARP);
    len = t_arp(f, -1, 1, t_node_ip4);
    a[4] = 8;
    assert_int_equal(classify(len), PKT_DROP_BAD_ARP);
    len = t_arp(f, -1, 1, t_node_ip4);
    a[5] = 16;
    assert_int_equal(classify(len), PKT_DROP_BAD_ARP);
    len = t_arp(f, -1, 1, t_node_ip4);
    a[8] = 0x01; /* group sender hardware address */
    assert_int_equal(classify(len), PKT_DROP_BAD_ARP);

    len = t_arp(f, -1, 1, t_node_ip4);
    memset(node.ip4, 0, 4);
    assert_int_equal(classify(len), PKT_IGNORE_ARP_OTHER);
}

static void test_icmp4(void **state)
{
    (void)state;
    size_t l4_len = t_echo(l4, 8, 0);
    size_t len = t_ip4(f, -1, t_peer_ip4, t_node_ip4, 1, 0, l4, l4_len);
    assert_int_equal(classify(len), PKT_ICMP_ECHO); /* exactly 8 bytes */
    assert_int_equal(info.payload_off, 34);
    assert_int_equal(info.payload_len, 8);
    /* 7 bytes of ICMP */
    len = t_ip4(f, -1, t_peer_ip4, t_node_ip4, 1, 0, l4, 7);
    assert_int_equal(classify(len), PKT_DROP_TRUNC_ICMP);

    l4_len = t_echo(l4, 8, 32);
    len = t_ip4(f, -1, t_peer_ip4, t_node_ip4, 1, 8, l4, l4_len);
    assert_int_equal(classify(len), PKT_ICMP_ECHO);
    assert_int_equal(info.l4_off, 42);
    f[len - 3] ^= 0x10;
    assert_int_equal(classify(len), PKT_DROP_ICMP_CSUM);

    l4_len = t_echo(l4, 0, 4); /* echo reply */
    len = t_ip4(f, -1, t_peer_ip4, t_node_ip4, 1, 0, l4, l4_len);
    assert_int_equal(classify(len), PKT_DROP_ICMP_TYPE);
    l4_len = t_echo(l4, 8, 4);
    l4[1] = 1; /* code */
    len = t_ip4(f, -1, t_peer_ip4, t_node_ip4, 1, 0, l4, l4_len);
    assert_int_equal(classify(len), PKT_DROP_ICMP_TYPE);
}

static void test_icmp6(void **state)
{
    (void)state;
    size_t l4_len = t_echo(l4, 128, 0);
    size_t len = t_ip6(f, -1, t_node_mac, t_peer_ip6, t_node_ip6, 58, 64, l4, l4_len);
    assert_int_equal(classify(len), PKT_ICMP6_ECHO);
    assert_int_equal(info.payload_len, 8);
    len = t_ip6(f, -1, t_node_mac, t_peer_ip6, t_node_ip6, 58, 64, l4, 7);
    assert_int_equal(classify(len), PKT_DROP_TRUNC_ICMP);

    l4_len = t_echo(l4, 128, 20);
    len = t_ip6(f, 7, t_node_mac, t_peer_ip6, node.ip6_ll, 58, 64, l4, l4_len);
    assert_int_equal(classify(len), PKT_ICMP6_ECHO);
    /* the ICMPv6 checksum covers the pseudo-header: change the source address */
    f[18 + 8 + 15] ^= 0x04;
    assert_int_equal(classify(len), PKT_DROP_ICMP_CSUM);

    len = t_ip6(f, -1, t_node_mac, t_peer_ip6, t_all_nodes_ip6, 58, 64, l4, l4_len);
    assert_int_equal(classify(len), PKT_DROP_NOT_FOR_US); /* echo to a group */
    len = t_ip6(f, -1, t_node_mac, t_unspec_ip6, t_node_ip6, 58, 64, l4, l4_len);
    assert_int_equal(classify(len), PKT_DROP_BAD_SRC);

    l4[1] = 1;
    len = t_ip6(f, -1, t_node_mac, t_peer_ip6, t_node_ip6, 58, 64, l4, l4_len);
    assert_int_equal(classify(len), PKT_DROP_ICMP_TYPE);
    l4[0] = 1; /* destination unreachable */
    l4[1] = 0;
    len = t_ip6(f, -1, t_node_mac, t_peer_ip6, t_node_ip6, 58, 64, l4, l4_len);
    assert_int_equal(classify(len), PKT_DROP_ICMP_TYPE);
    l4[0] = 129; /* echo reply */
    len = t_ip6(f, -1, t_node_mac, t_peer_ip6, t_node_ip6, 58, 64, l4, l4_len);
    assert_int_equal(classify(len), PKT_DROP_ICMP_TYPE);
    /* router advertisement to all-nodes, neighbor advertisement: ignored */
    static const uint8_t ignored[] = { 133, 134, 136, 137, 130 };
    for (size_t i = 0; i < sizeof ignored; i++) {
        memset(l4, 0, 24);
        l4[0] = ignored[i];
        len = t_ip6(f, -1, t_bcast_mac, node.ip6_ll, t_all_nodes_ip6, 58, 255, l4, 24);
        /* source is our own LL here only to have some unicast address; fine for the test */
        assert_int_equal(classify(len), PKT_IGNORE_NDP_OTHER);
    }
}

static void test_ndp_solicit(void **state)
{
    (void)state;
    size_t len = ns(t_peer_ip6, t_node_ip6, true, 255);
    assert_int_equal(classify(len), PKT_NDP_SOLICIT);
    assert_int_equal(info.payload_len, 32);
    len = ns(t_peer_ip6, node.ip6_ll, true, 255);
    assert_int_equal(classify(len), PKT_NDP_SOLICIT);
    len = ns(t_peer_ip6, node.ip6_ll, false, 255); /* exactly 24 bytes */
    assert_int_equal(classify(len), PKT_NDP_SOLICIT);
    len = ns(t_unspec_ip6, t_node_ip6, false, 255); /* DAD probe */
    assert_int_equal(classify(len), PKT_NDP_SOLICIT);
    /* unicast NS to our address */
    size_t l4_len = t_ns(l4, t_node_ip6, true);
    len = t_ip6(f, -1, t_node_mac, t_peer_ip6, t_node_ip6, 58, 255, l4, l4_len);
    assert_int_equal(classify(len), PKT_NDP_SOLICIT);
    /* for someone else */
    len = ns(t_peer_ip6, t_other_ip6, true, 255);
    assert_int_equal(classify(len), PKT_IGNORE_NDP_OTHER);

    /* validity: hop limit, code, length 23, multicast target, checksum */
    len = ns(t_peer_ip6, t_node_ip6, true, 64);
    assert_int_equal(classify(len), PKT_DROP_BAD_NDP);
    l4_len = t_ns(l4, t_node_ip6, false);
    l4[1] = 1;
    uint8_t dst[16];
    t_solicited_node(t_node_ip6, dst);
    len = t_ip6(f, -1, t_bcast_mac, t_peer_ip6, dst, 58, 255, l4, l4_len);
    assert_int_equal(classify(len), PKT_DROP_BAD_NDP);
    l4[1] = 0;
    len = t_ip6(f, -1, t_bcast_mac, t_peer_ip6, dst, 58, 255, l4, 23);
    assert_int_equal(classify(len), PKT_DROP_BAD_NDP);
    len = ns(t_peer_ip6, t_all_nodes_ip6, true, 255);
    assert_int_equal(classify(len), PKT_DROP_BAD_NDP);
    len = ns(t_peer_ip6, t_node_ip6, true, 255);
    f[len - 1] ^= 0x01;
    assert_int_equal(classify(len), PKT_DROP_ICMP_CSUM);

    /* options: zero length, running past the end, a lone trailing byte */
    l4_len = t_ns(l4, t_node_ip6, true);
    l4[25] = 0;
    len = t_ip6(f, -1, t_bcast_mac, t_peer_ip6, dst, 58, 255, l4, l4_len);
    assert_int_equal(classify(len), PKT_DROP_BAD_NDP);
    l4[25] = 2;
    len = t_ip6(f, -1, t_bcast_mac, t_peer_ip6, dst, 58, 255, l4, l4_len);
    assert_int_equal(classify(len), PKT_DROP_BAD_NDP);
    l4[25] = 1;
    len = t_ip6(f, -1, t_bcast_mac, t_peer_ip6, dst, 58, 255, l4, 25);
    assert_int_equal(classify(len), PKT_DROP_BAD_NDP);

    /* from the unspecified address: no source LLA, solicited-node destination */
    len = ns(t_unspec_ip6, t_node_ip6, true, 255);
    assert_int_equal(classify(len), PKT_DROP_BAD_NDP);
    l4_len = t_ns(l4, t_node_ip6, false);
    len = t_ip6(f, -1, t_node_mac, t_unspec_ip6, t_node_ip6, 58, 255, l4, l4_len);
    assert_int_equal(classify(len), PKT_DROP_BAD_NDP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_udp4_event, setup),
        cmocka_unit_test_setup(test_udp6_event, setup),
        cmocka_unit_test_setup(test_vlan, setup),
        cmocka_unit_test_setup(test_ethernet, setup),
        cmocka_unit_test_setup(test_ethernet_padding, setup),
        cmocka_unit_test_setup(test_ip4_options, setup),
        cmocka_unit_test_setup(test_ip4_drops, setup),
        cmocka_unit_test_setup(test_ip4_addresses, setup),
        cmocka_unit_test_setup(test_udp_drops, setup),
        cmocka_unit_test_setup(test_ip6_drops, setup),
        cmocka_unit_test_setup(test_ip6_hop_by_hop_mld, setup),
        cmocka_unit_test_setup(test_arp, setup),
        cmocka_unit_test_setup(test_icmp4, setup),
        cmocka_unit_test_setup(test_icmp6, setup),
        cmocka_unit_test_setup(test_ndp_solicit, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
