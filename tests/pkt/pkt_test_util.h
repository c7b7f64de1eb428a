/*
 * pkt_test_util.h — a small frame builder and reference checksums for the pkt tests
 * (header-only, static inline functions). The reference checksum is the plain RFC 1071
 * loop over big-endian words, written independently of pkt.c's fast one.
 */
#ifndef PKT_TEST_UTIL_H
#define PKT_TEST_UTIL_H

#include "pkt.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#define T_FRAME_MAX 2048u

static const uint8_t t_node_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t t_peer_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };
static const uint8_t t_bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t t_node_ip4[4] = { 198, 18, 0, 1 };
static const uint8_t t_peer_ip4[4] = { 198, 18, 0, 2 };
static const uint8_t t_node_ip6[16] = {
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
};
static const uint8_t t_peer_ip6[16] = {
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2
};
static const uint8_t t_other_ip6[16] = {
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9
};
static const uint8_t t_unspec_ip6[16] = { 0 };
static const uint8_t t_all_nodes_ip6[16] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
#define T_NODE_PORT 4790u
#define T_PEER_PORT 40000u

static inline void t_node_cfg(struct pkt_node_cfg *node)
{
    memset(node, 0, sizeof *node);
    memcpy(node->mac, t_node_mac, 6);
    memcpy(node->ip4, t_node_ip4, 4);
    memcpy(node->ip6, t_node_ip6, 16);
    pkt_ip6_link_local(node->mac, node->ip6_ll);
    node->udp_port = T_NODE_PORT;
}

static inline void t_be16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline unsigned t_get16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* ---- reference checksum (big-endian words, 32-bit accumulator) ---- */
static inline uint32_t t_ref_sum(uint32_t acc, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        acc += (uint32_t)p[i] << 8 | p[i + 1];
    if (n & 1)
        acc += (uint32_t)p[n - 1] << 8;
    return acc;
}

static inline uint16_t t_ref_fold(uint32_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)acc;
}

static inline uint32_t t_ref_pseudo(int ipv, const uint8_t *src, const uint8_t *dst, uint8_t proto,
                                    size_t l4_len)
{
    size_t alen = ipv == 4 ? 4 : 16;
    uint32_t acc = t_ref_sum(0, src, alen);
    acc = t_ref_sum(acc, dst, alen);
    return acc + proto + (uint32_t)(l4_len >> 16) + (uint32_t)(l4_len & 0xffff);
}

/* Store the checksum of p[0..n) (+ pseudo acc) at p + csum_off (field zeroed first). */
static inline void t_set_csum(uint32_t pseudo, uint8_t *p, size_t n, size_t csum_off)
{
    p[csum_off] = 0;
    p[csum_off + 1] = 0;
    t_be16(p + csum_off, (uint16_t)~t_ref_fold(t_ref_sum(pseudo, p, n)));
}

static inline bool t_csum_valid(uint32_t pseudo, const uint8_t *p, size_t n)
{
    return t_ref_fold(t_ref_sum(pseudo, p, n)) == 0xffff;
}

/* ---- frame builder ---- */

/* Ethernet header (+ tag when vlan >= 0); returns its length. */
static inline size_t t_eth(uint8_t *f, const uint8_t *dst, const uint8_t *src, int vlan,
                           unsigned ethertype)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    if (vlan < 0) {
        t_be16(f + 12, ethertype);
        return 14;
    }
    t_be16(f + 12, 0x8100);
    t_be16(f + 14, (unsigned)vlan);
    t_be16(f + 16, ethertype);
    return 18;
}

static inline void t_fix_ip4_csum(uint8_t *ip)
{
    t_set_csum(0, ip, (size_t)(ip[0] & 0xf) * 4, 10);
}

/* IPv4 header with opt_len bytes of NOP options then l4[0..l4_len) after an Ethernet
 * header; checksums of UDP (pseudo) and ICMP are computed. Returns the frame length. */
static inline size_t t_ip4(uint8_t *f, int vlan, const uint8_t *src, const uint8_t *dst,
                           uint8_t proto, size_t opt_len, const uint8_t *l4, size_t l4_len)
{
    assert(opt_len % 4 == 0 && opt_len <= 40);
    size_t l2 = t_eth(f, t_node_mac, t_peer_mac, vlan, 0x0800);
    uint8_t *ip = f + l2;
    size_t ihl = 20 + opt_len;
    ip[0] = (uint8_t)(0x40 | ihl / 4);
    ip[1] = 0x10;
    t_be16(ip + 2, (unsigned)(ihl + l4_len));
    t_be16(ip + 4, 0x1234);
    t_be16(ip + 6, 0x4000); /* DF */
    ip[8] = 64;
    ip[9] = proto;
    memcpy(ip + 12, src, 4);
    memcpy(ip + 16, dst, 4);
    memset(ip + 20, 0x01, opt_len);
    t_fix_ip4_csum(ip);
    uint8_t *p = ip + ihl;
    memcpy(p, l4, l4_len);
    if (proto == 17 && l4_len >= 8)
        t_set_csum(t_ref_pseudo(4, src, dst, 17, l4_len), p, l4_len, 6);
    if (proto == 1 && l4_len >= 4)
        t_set_csum(0, p, l4_len, 2);
    return l2 + ihl + l4_len;
}

/* IPv6 header then l4 (checksums of UDP and ICMPv6 computed over the pseudo-header). */
static inline size_t t_ip6(uint8_t *f, int vlan, const uint8_t *dst_mac, const uint8_t *src,
                           const uint8_t *dst, uint8_t next, uint8_t hop, const uint8_t *l4,
                           size_t l4_len)
{
    size_t l2 = t_eth(f, dst_mac, t_peer_mac, vlan, 0x86dd);
    uint8_t *ip = f + l2;
    ip[0] = 0x60;
    ip[1] = 0x00;
    ip[2] = 0x12;
    ip[3] = 0x34;
    t_be16(ip + 4, (unsigned)l4_len);
    ip[6] = next;
    ip[7] = hop;
    memcpy(ip + 8, src, 16);
    memcpy(ip + 24, dst, 16);
    uint8_t *p = ip + 40;
    memcpy(p, l4, l4_len);
    if (next == 17 && l4_len >= 8)
        t_set_csum(t_ref_pseudo(6, src, dst, 17, l4_len), p, l4_len, 6);
    if (next == 58 && l4_len >= 4)
        t_set_csum(t_ref_pseudo(6, src, dst, 58, l4_len), p, l4_len, 2);
    return l2 + 40 + l4_len;
}

/* UDP header + payload into l4; returns its length. */
static inline size_t t_udp(uint8_t *l4, unsigned sport, unsigned dport, const uint8_t *payload,
                           size_t n)
{
    t_be16(l4, sport);
    t_be16(l4 + 2, dport);
    t_be16(l4 + 4, (unsigned)(8 + n));
    t_be16(l4 + 6, 0);
    if (n)
        memcpy(l4 + 8, payload, n);
    return 8 + n;
}

/* ICMP(v6) echo request: type, code 0, id 0x4242, seq 7, data_len bytes of pattern. */
static inline size_t t_echo(uint8_t *l4, uint8_t type, size_t data_len)
{
    l4[0] = type;
    l4[1] = 0;
    l4[2] = l4[3] = 0;
    t_be16(l4 + 4, 0x4242);
    t_be16(l4 + 6, 7);
    for (size_t i = 0; i < data_len; i++)
        l4[8 + i] = (uint8_t)(i * 7 + 3);
    return 8 + data_len;
}

/* Neighbor solicitation for target, with a source link-layer option when sllao. */
static inline size_t t_ns(uint8_t *l4, const uint8_t *target, bool sllao)
{
    memset(l4, 0, 24);
    l4[0] = 135;
    memcpy(l4 + 8, target, 16);
    if (!sllao)
        return 24;
    l4[24] = 1;
    l4[25] = 1;
    memcpy(l4 + 26, t_peer_mac, 6);
    return 32;
}

static inline void t_solicited_node(const uint8_t *target, uint8_t out[16])
{
    static const uint8_t prefix[13] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff };
    memcpy(out, prefix, 13);
    memcpy(out + 13, target + 13, 3);
}

static inline size_t t_arp(uint8_t *f, int vlan, unsigned op, const uint8_t *tpa)
{
    size_t l2 = t_eth(f, t_bcast_mac, t_peer_mac, vlan, 0x0806);
    uint8_t *a = f + l2;
    t_be16(a, 1);
    t_be16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    t_be16(a + 6, op);
    memcpy(a + 8, t_peer_mac, 6);
    memcpy(a + 14, t_peer_ip4, 4);
    memset(a + 18, 0, 6);
    memcpy(a + 24, tpa, 4);
    return l2 + 28;
}

#endif /* PKT_TEST_UTIL_H */
