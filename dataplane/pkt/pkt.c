/*
 * pkt.c — Ethernet/VLAN/ARP/IPv4/IPv6/UDP/ICMP/ICMPv6 classification and replies.
 *
 * The validity rules are listed in pkt.h. Structure: pkt_classify() does the link
 * layer and branches per ethertype; each pkt_classify_* leaf checks one header against
 * the bytes left (`len` is always the end of the valid bytes: Ethernet padding is cut at
 * the IP length) and either returns a drop or descends. Reply builders copy what they need
 * from the request into locals (or read it from info, which never aliases out) before
 * writing, so that out == frame works.
 */
#include "pkt.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#define PKT_ARP_HTYPE_ETHER       1u
#define PKT_ARP_OP_REQUEST        1u
#define PKT_ARP_OP_REPLY          2u
#define PKT_ICMP_ECHO_REPLY       0u
#define PKT_ICMP_ECHO_REQUEST     8u
#define PKT_ICMP6_ECHO_REQUEST    128u
#define PKT_ICMP6_ECHO_REPLY      129u
#define PKT_ICMP6_MLD_QUERY       130u
#define PKT_ICMP6_MLD_REPORT      131u
#define PKT_ICMP6_MLD_DONE        132u
#define PKT_ICMP6_ROUTER_SOL      133u
#define PKT_ICMP6_ROUTER_ADV      134u
#define PKT_ICMP6_NEIGH_SOL       135u
#define PKT_ICMP6_NEIGH_ADV       136u
#define PKT_ICMP6_REDIRECT        137u
#define PKT_ICMP6_MLD2_REPORT     143u
#define PKT_NDP_OPT_SRC_LLA       1u
#define PKT_NDP_OPT_TGT_LLA       2u
#define PKT_NDP_NA_FLAG_SOLICITED 0x40u
#define PKT_NDP_NA_FLAG_OVERRIDE  0x20u
#define PKT_IP4_FLAG_DF           0x4000u
#define PKT_IP4_FRAG_MASK         0x3fffu /* MF + fragment offset */
#define PKT_IP6_NH_HOP_BY_HOP     0u
#define PKT_NS_PER_S              1000000000u
#define PKT_MILLI                 1000u

_Static_assert(PKT_UDP_REPLY_HDR_LEN_MAX == 66, "Ethernet + tag + IPv6 + UDP");
_Static_assert(PKT_NDP_NA_LEN == 32, "NA with the target link-layer option");
_Static_assert(sizeof(struct pkt_info) <= 64, "pkt_info fits one cache line");

static const uint8_t pkt_ip6_all_nodes[16] = {
    0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
};
static const uint8_t pkt_mac_all_nodes[6] = { 0x33, 0x33, 0, 0, 0, 1 };

static const char *const pkt_verdict_names[PKT_VERDICT_COUNT] = {
    [PKT_EVENT] = "event",
    [PKT_ARP_REQUEST] = "arp_request",
    [PKT_ICMP_ECHO] = "icmp_echo",
    [PKT_ICMP6_ECHO] = "icmp6_echo",
    [PKT_NDP_SOLICIT] = "ndp_solicit",
    [PKT_IGNORE_ARP_OTHER] = "ignore_arp_other",
    [PKT_IGNORE_NDP_OTHER] = "ignore_ndp_other",
    [PKT_DROP_TRUNC_ETH] = "drop_trunc_eth",
    [PKT_DROP_TRUNC_VLAN] = "drop_trunc_vlan",
    [PKT_DROP_QINQ] = "drop_qinq",
    [PKT_DROP_ETHERTYPE] = "drop_ethertype",
    [PKT_DROP_TRUNC_IP4] = "drop_trunc_ip4",
    [PKT_DROP_IP4_HDR] = "drop_ip4_hdr",
    [PKT_DROP_IP4_LEN] = "drop_ip4_len",
    [PKT_DROP_IP4_CSUM] = "drop_ip4_csum",
    [PKT_DROP_FRAGMENT] = "drop_fragment",
    [PKT_DROP_TRUNC_IP6] = "drop_trunc_ip6",
    [PKT_DROP_IP6_LEN] = "drop_ip6_len",
    [PKT_DROP_IP6_EXT] = "drop_ip6_ext",
    [PKT_DROP_NOT_FOR_US] = "drop_not_for_us",
    [PKT_DROP_L4_PROTO] = "drop_l4_proto",
    [PKT_DROP_TRUNC_UDP] = "drop_trunc_udp",
    [PKT_DROP_UDP_LEN] = "drop_udp_len",
    [PKT_DROP_UDP_CSUM] = "drop_udp_csum",
    [PKT_DROP_UDP_PORT] = "drop_udp_port",
    [PKT_DROP_TRUNC_ARP] = "drop_trunc_arp",
    [PKT_DROP_BAD_ARP] = "drop_bad_arp",
    [PKT_DROP_TRUNC_ICMP] = "drop_trunc_icmp",
    [PKT_DROP_ICMP_CSUM] = "drop_icmp_csum",
    [PKT_DROP_ICMP_TYPE] = "drop_icmp_type",
    [PKT_DROP_BAD_NDP] = "drop_bad_ndp",
    [PKT_DROP_BAD_SRC] = "drop_bad_src",
    [PKT_DROP_IP6_HDR] = "drop_ip6_hdr",
};
_Static_assert(sizeof(pkt_verdict_names) / sizeof(pkt_verdict_names[0]) == PKT_VERDICT_COUNT,
               "one name per verdict");

const char *pkt_verdict_name(enum pkt_verdict v)
{
    if ((unsigned)v >= PKT_VERDICT_COUNT || pkt_verdict_names[v] == NULL)
        return "unknown";
    return pkt_verdict_names[v];
}

/* ---- byte helpers ---------------------------------------------------------------------- */

static inline uint16_t pkt_load_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline void pkt_store_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline bool pkt_is_zero(const uint8_t *p, size_t n)
{
    uint8_t any = 0;
    for (size_t i = 0; i < n; i++)
        any |= p[i];
    return any == 0;
}

static inline bool pkt_mac_is_group(const uint8_t *mac)
{
    return (mac[0] & 0x01u) != 0; /* broadcast is a group address too */
}

static inline bool pkt_ip4_is_bad_src(const uint8_t *ip)
{
    /* 0.0.0.0, 224.0.0.0/4 (multicast), 240.0.0.0/4 (reserved, includes broadcast) */
    return pkt_is_zero(ip, 4) || ip[0] >= 224;
}

static inline bool pkt_ip6_is_multicast(const uint8_t *ip)
{
    return ip[0] == 0xff;
}

/* ff02::1:ffXX:XXXX */
static bool pkt_ip6_is_solicited_node(const uint8_t *ip)
{
    static const uint8_t prefix[13] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff };
    return memcmp(ip, prefix, sizeof prefix) == 0;
}

void pkt_ip6_link_local(const uint8_t mac[6], uint8_t out[16])
{
    assert(mac != NULL && out != NULL);
    memset(out, 0, 16);
    out[0] = 0xfe;
    out[1] = 0x80;
    out[8] = mac[0] ^ 0x02u; /* universal/local bit inverted (RFC 4291 appendix A) */
    out[9] = mac[1];
    out[10] = mac[2];
    out[11] = 0xff;
    out[12] = 0xfe;
    out[13] = mac[3];
    out[14] = mac[4];
    out[15] = mac[5];
}

/* ---- checksum -------------------------------------------------------------------------- */

/* a += w with the carry out of bit 63 added back in (end-around carry): one's-complement
 * addition on 64 bits, which is the 16-bit one since 2^64 == 1 (mod 0xffff). */
static inline uint64_t pkt_add_carry(uint64_t a, uint64_t w)
{
    a += w;
    return a + (a < w);
}

uint64_t pkt_csum_add(uint64_t acc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    assert(p != NULL || len == 0);
    /* One chain: compilers turn each step into add + adc $0 (two instructions per 8 bytes). */
    uint64_t a0 = acc;
    while (len >= 32) {
        uint64_t w0, w1, w2, w3; /* scalar loads: an array would go through the stack */
        memcpy(&w0, p, 8);
        memcpy(&w1, p + 8, 8);
        memcpy(&w2, p + 16, 8);
        memcpy(&w3, p + 24, 8);
        a0 = pkt_add_carry(a0, w0);
        a0 = pkt_add_carry(a0, w1);
        a0 = pkt_add_carry(a0, w2);
        a0 = pkt_add_carry(a0, w3);
        p += 32;
        len -= 32;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, sizeof w);
        a0 = pkt_add_carry(a0, w);
        p += 8;
        len -= 8;
    }
    /* tail < 8 bytes: a 32-bit, a 16-bit and an 8-bit piece, as native words */
    uint64_t tail = 0;
    if (len >= 4) {
        uint32_t w;
        memcpy(&w, p, sizeof w);
        tail += w;
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t w;
        memcpy(&w, p, sizeof w);
        tail += w;
        p += 2;
        len -= 2;
    }
    if (len == 1) {
        uint16_t w = 0;
        memcpy(&w, p, 1); /* the byte followed by a zero pad byte, in native order */
        tail += w;
    }
    return pkt_add_carry(a0, tail);
}

uint16_t pkt_csum_fold(uint64_t acc)
{
    acc = (acc & 0xffffffffu) + (acc >> 32); /* < 2^33 */
    acc = (acc & 0xffffffffu) + (acc >> 32); /* < 2^32 */
    acc = (acc & 0xffffu) + (acc >> 16);     /* <= 0x1fffe */
    acc = (acc & 0xffffu) + (acc >> 16);     /* <= 0xffff */
    assert(acc <= 0xffffu);
    return (uint16_t)acc;
}

uint16_t pkt_csum(const void *buf, size_t len)
{
    return (uint16_t)~pkt_csum_fold(pkt_csum_add(0, buf, len));
}

/* Pseudo-header sum (RFC 768 / RFC 8200 §8.1): addresses, protocol and upper-layer length.
 * The IPv4 and IPv6 forms add up to the same words for lengths below 2^16. */
static uint64_t pkt_pseudo_sum(uint8_t ip_version, const uint8_t *src, const uint8_t *dst,
                               uint8_t proto, size_t l4_len)
{
    assert(ip_version == 4 || ip_version == 6);
    assert(l4_len <= 0xffffu);
    size_t words = ip_version == 4 ? 1 : 4; /* 32-bit words per address */
    const uint8_t tail_bytes[4] = { 0, proto, (uint8_t)(l4_len >> 8), (uint8_t)l4_len };
    uint32_t tail;
    memcpy(&tail, tail_bytes, 4);
    uint64_t acc = tail; /* at most 9 words of 32 bits: no carry out of 64 bits */
    for (size_t i = 0; i < words; i++) {
        uint32_t s_word, d_word;
        memcpy(&s_word, src + 4 * i, 4);
        memcpy(&d_word, dst + 4 * i, 4);
        acc += (uint64_t)s_word + d_word;
    }
    return acc;
}

static bool pkt_l4_csum_ok(const struct pkt_info *info, uint8_t proto, const uint8_t *l4,
                           size_t l4_len)
{
    uint64_t acc = pkt_pseudo_sum(info->ip_version, info->src_ip, info->dst_ip, proto, l4_len);
    return pkt_csum_fold(pkt_csum_add(acc, l4, l4_len)) == 0xffffu;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), all values as stored with memcpy. */
static void pkt_csum_replace16(uint8_t *csum_field, const uint8_t old_word[2],
                               const uint8_t new_word[2])
{
    uint16_t hc, m, m_new;
    memcpy(&hc, csum_field, 2);
    memcpy(&m, old_word, 2);
    memcpy(&m_new, new_word, 2);
    uint64_t acc = (uint64_t)(uint16_t)~hc + (uint16_t)~m + m_new;
    uint16_t out = (uint16_t)~pkt_csum_fold(acc);
    memcpy(csum_field, &out, 2);
}

/* ---- classification -------------------------------------------------------------------- */

static enum pkt_verdict pkt_classify_udp(const uint8_t *frame, size_t l4_len,
                                         const struct pkt_node_cfg *node, struct pkt_info *info)
{
    const uint8_t *udp = frame + info->l4_off;
    if (l4_len < PKT_UDP_HDR_LEN)
        return PKT_DROP_TRUNC_UDP;
    size_t udp_len = pkt_load_be16(udp + 4);
    if (udp_len < PKT_UDP_HDR_LEN || udp_len > l4_len)
        return PKT_DROP_UDP_LEN;
    info->src_port = pkt_load_be16(udp);
    info->dst_port = pkt_load_be16(udp + 2);
    if (info->dst_port != node->udp_port)
        return PKT_DROP_UDP_PORT;
    bool no_csum = udp[6] == 0 && udp[7] == 0;
    if (no_csum ? info->ip_version == 6 : !pkt_l4_csum_ok(info, PKT_IP_PROTO_UDP, udp, udp_len))
        return PKT_DROP_UDP_CSUM;
    info->payload_off = (uint16_t)(info->l4_off + PKT_UDP_HDR_LEN);
    info->payload_len = (uint16_t)(udp_len - PKT_UDP_HDR_LEN);
    return PKT_EVENT;
}

static enum pkt_verdict pkt_classify_icmp4(const uint8_t *frame, size_t l4_len,
                                           struct pkt_info *info)
{
    const uint8_t *icmp = frame + info->l4_off;
    if (l4_len < PKT_ICMP_HDR_LEN)
        return PKT_DROP_TRUNC_ICMP;
    info->payload_off = info->l4_off;
    info->payload_len = (uint16_t)l4_len;
    if (icmp[0] != PKT_ICMP_ECHO_REQUEST || icmp[1] != 0)
        return PKT_DROP_ICMP_TYPE;
    if (pkt_csum_fold(pkt_csum_add(0, icmp, l4_len)) != 0xffffu)
        return PKT_DROP_ICMP_CSUM;
    return PKT_ICMP_ECHO;
}

static enum pkt_verdict pkt_classify_ip4(const uint8_t *frame, size_t len,
                                         const struct pkt_node_cfg *node, struct pkt_info *info)
{
    const uint8_t *ip = frame + info->l3_off;
    size_t avail = len - info->l3_off;
    if (avail < PKT_IP4_HDR_LEN)
        return PKT_DROP_TRUNC_IP4;
    size_t ihl = (size_t)(ip[0] & 0x0fu) * 4;
    if ((ip[0] >> 4) != 4 || ihl < PKT_IP4_HDR_LEN)
        return PKT_DROP_IP4_HDR;
    if (ihl > avail)
        return PKT_DROP_TRUNC_IP4;
    size_t total_len = pkt_load_be16(ip + 2);
    if (total_len < ihl || total_len > avail)
        return PKT_DROP_IP4_LEN;
    if (pkt_csum_fold(pkt_csum_add(0, ip, ihl)) != 0xffffu)
        return PKT_DROP_IP4_CSUM;
    if ((pkt_load_be16(ip + 6) & PKT_IP4_FRAG_MASK) != 0)
        return PKT_DROP_FRAGMENT;
    info->ip_version = 4;
    memcpy(info->src_ip, ip + 12, 4);
    memcpy(info->dst_ip, ip + 16, 4);
    if (pkt_ip4_is_bad_src(info->src_ip))
        return PKT_DROP_BAD_SRC;
    if (pkt_is_zero(node->ip4, 4) || memcmp(info->dst_ip, node->ip4, 4) != 0)
        return PKT_DROP_NOT_FOR_US;
    info->l4_off = (uint16_t)(info->l3_off + ihl);
    size_t l4_len = total_len - ihl; /* Ethernet padding after total_len is ignored */
    switch (ip[9]) {
    case PKT_IP_PROTO_UDP:
        return pkt_classify_udp(frame, l4_len, node, info);
    case PKT_IP_PROTO_ICMP:
        return pkt_classify_icmp4(frame, l4_len, info);
    default:
        return PKT_DROP_L4_PROTO;
    }
}

/* Neighbor solicitation validity, RFC 4861 §7.1.1 (the caller checked the length >= 8). */
static enum pkt_verdict pkt_classify_ns(const uint8_t *frame, size_t l4_len, uint8_t hop_limit,
                                        const struct pkt_node_cfg *node, struct pkt_info *info)
{
    const uint8_t *icmp = frame + info->l4_off;
    if (hop_limit != PKT_NDP_HOP_LIMIT || icmp[1] != 0 || l4_len < PKT_NDP_NS_LEN)
        return PKT_DROP_BAD_NDP;
    if (!pkt_l4_csum_ok(info, PKT_IP_PROTO_ICMP6, icmp, l4_len))
        return PKT_DROP_ICMP_CSUM;
    const uint8_t *target = icmp + 8;
    if (pkt_ip6_is_multicast(target))
        return PKT_DROP_BAD_NDP;
    bool src_unspecified = pkt_is_zero(info->src_ip, 16);
    if (src_unspecified && !pkt_ip6_is_solicited_node(info->dst_ip))
        return PKT_DROP_BAD_NDP;
    /* Options: each at least 8 bytes, within the message; no source LLA from "::". The loop
     * advances by >= 8 bytes each turn, so it runs at most l4_len / 8 times. */
    size_t off = PKT_NDP_NS_LEN;
    while (off < l4_len) {
        if (l4_len - off < 2)
            return PKT_DROP_BAD_NDP;
        size_t opt_len = (size_t)icmp[off + 1] * 8;
        if (opt_len == 0 || opt_len > l4_len - off)
            return PKT_DROP_BAD_NDP;
        if (icmp[off] == PKT_NDP_OPT_SRC_LLA && src_unspecified)
            return PKT_DROP_BAD_NDP;
        off += opt_len;
    }
    bool ours = memcmp(target, node->ip6, 16) == 0 ||
                (!pkt_is_zero(node->ip6_ll, 16) && memcmp(target, node->ip6_ll, 16) == 0);
    return ours ? PKT_NDP_SOLICIT : PKT_IGNORE_NDP_OTHER;
}

static enum pkt_verdict pkt_classify_icmp6(const uint8_t *frame, size_t l4_len, bool dst_ours,
                                           uint8_t hop_limit, const struct pkt_node_cfg *node,
                                           struct pkt_info *info)
{
    const uint8_t *icmp = frame + info->l4_off;
    if (l4_len < PKT_ICMP_HDR_LEN)
        return PKT_DROP_TRUNC_ICMP;
    info->payload_off = info->l4_off;
    info->payload_len = (uint16_t)l4_len;
    switch (icmp[0]) {
    case PKT_ICMP6_ECHO_REQUEST:
        if (icmp[1] != 0)
            return PKT_DROP_ICMP_TYPE;
        if (!dst_ours)
            return PKT_DROP_NOT_FOR_US; /* no echo to multicast groups */
        if (pkt_is_zero(info->src_ip, 16))
            return PKT_DROP_BAD_SRC;
        if (!pkt_l4_csum_ok(info, PKT_IP_PROTO_ICMP6, icmp, l4_len))
            return PKT_DROP_ICMP_CSUM;
        return PKT_ICMP6_ECHO;
    case PKT_ICMP6_NEIGH_SOL:
        return pkt_classify_ns(frame, l4_len, hop_limit, node, info);
    case PKT_ICMP6_MLD_QUERY:
    case PKT_ICMP6_MLD_REPORT:
    case PKT_ICMP6_MLD_DONE:
    case PKT_ICMP6_ROUTER_SOL:
    case PKT_ICMP6_ROUTER_ADV:
    case PKT_ICMP6_NEIGH_ADV:
    case PKT_ICMP6_REDIRECT:
    case PKT_ICMP6_MLD2_REPORT:
        return PKT_IGNORE_NDP_OTHER; /* we act on none of them: no checksum work */
    default:
        return PKT_DROP_ICMP_TYPE;
    }
}

/* One Hop-by-Hop header followed by an MLD message is ordinary link chatter (MLD always
 * carries a Router Alert option): ignore it. Any other extension header is a drop. */
static enum pkt_verdict pkt_classify_ip6_ext(const uint8_t *frame, size_t l4_len, uint8_t next,
                                             const struct pkt_info *info)
{
    const uint8_t *ext = frame + info->l4_off;
    if (next != PKT_IP6_NH_HOP_BY_HOP || l4_len < 8)
        return PKT_DROP_IP6_EXT;
    size_t ext_len = ((size_t)ext[1] + 1) * 8;
    if (ext[0] != PKT_IP_PROTO_ICMP6 || ext_len >= l4_len)
        return PKT_DROP_IP6_EXT;
    uint8_t type = ext[ext_len];
    if (type == PKT_ICMP6_MLD_QUERY || type == PKT_ICMP6_MLD_REPORT || type == PKT_ICMP6_MLD_DONE ||
        type == PKT_ICMP6_MLD2_REPORT)
        return PKT_IGNORE_NDP_OTHER;
    return PKT_DROP_IP6_EXT;
}

static bool pkt_ip6_next_is_ext(uint8_t next)
{
    /* RFC 8200 §4 / IANA "IPv6 Extension Header Types" */
    switch (next) {
    case 0:   /* Hop-by-Hop */
    case 43:  /* Routing */
    case 44:  /* Fragment */
    case 50:  /* ESP */
    case 51:  /* AH */
    case 60:  /* Destination Options */
    case 135: /* Mobility */
    case 139: /* HIP */
    case 140: /* Shim6 */
    case 253: /* experiments */
    case 254:
        return true;
    default:
        return false;
    }
}

static enum pkt_verdict pkt_classify_ip6(const uint8_t *frame, size_t len,
                                         const struct pkt_node_cfg *node, struct pkt_info *info)
{
    const uint8_t *ip = frame + info->l3_off;
    size_t avail = len - info->l3_off;
    if (avail < PKT_IP6_HDR_LEN)
        return PKT_DROP_TRUNC_IP6;
    if ((ip[0] >> 4) != 6)
        return PKT_DROP_IP6_HDR;
    size_t l4_len = pkt_load_be16(ip + 4);
    if (l4_len > avail - PKT_IP6_HDR_LEN)
        return PKT_DROP_IP6_LEN;
    info->ip_version = 6;
    memcpy(info->src_ip, ip + 8, 16);
    memcpy(info->dst_ip, ip + 24, 16);
    info->l4_off = (uint16_t)(info->l3_off + PKT_IP6_HDR_LEN);
    if (pkt_is_zero(node->ip6, 16))
        return PKT_DROP_NOT_FOR_US; /* IPv6 disabled */
    if (pkt_ip6_is_multicast(info->src_ip))
        return PKT_DROP_BAD_SRC;
    bool dst_ours = memcmp(info->dst_ip, node->ip6, 16) == 0 ||
                    (!pkt_is_zero(node->ip6_ll, 16) && memcmp(info->dst_ip, node->ip6_ll, 16) == 0);
    if (!dst_ours && !pkt_ip6_is_multicast(info->dst_ip))
        return PKT_DROP_NOT_FOR_US;
    uint8_t next = ip[6];
    switch (next) {
    case PKT_IP_PROTO_UDP:
        if (!dst_ours)
            return PKT_DROP_NOT_FOR_US;
        if (pkt_is_zero(info->src_ip, 16))
            return PKT_DROP_BAD_SRC;
        return pkt_classify_udp(frame, l4_len, node, info);
    case PKT_IP_PROTO_ICMP6:
        return pkt_classify_icmp6(frame, l4_len, dst_ours, ip[7], node, info);
    default:
        if (pkt_ip6_next_is_ext(next))
            return pkt_classify_ip6_ext(frame, l4_len, next, info);
        return PKT_DROP_L4_PROTO;
    }
}

static enum pkt_verdict pkt_classify_arp(const uint8_t *frame, size_t len,
                                         const struct pkt_node_cfg *node, struct pkt_info *info)
{
    const uint8_t *arp = frame + info->l3_off;
    if (len - info->l3_off < PKT_ARP_LEN)
        return PKT_DROP_TRUNC_ARP;
    uint16_t op = pkt_load_be16(arp + 6);
    if (pkt_load_be16(arp) != PKT_ARP_HTYPE_ETHER || pkt_load_be16(arp + 2) != PKT_ETHERTYPE_IPV4 ||
        arp[4] != 6 || arp[5] != 4 || (op != PKT_ARP_OP_REQUEST && op != PKT_ARP_OP_REPLY) ||
        pkt_mac_is_group(arp + 8))
        return PKT_DROP_BAD_ARP;
    info->l4_off = info->l3_off;
    info->payload_off = info->l3_off;
    info->payload_len = PKT_ARP_LEN;
    memcpy(info->src_ip, arp + 14, 4);
    memcpy(info->dst_ip, arp + 24, 4);
    if (op != PKT_ARP_OP_REQUEST || pkt_is_zero(node->ip4, 4) ||
        memcmp(info->dst_ip, node->ip4, 4) != 0)
        return PKT_IGNORE_ARP_OTHER;
    return PKT_ARP_REQUEST;
}

enum pkt_verdict pkt_classify(const uint8_t *frame, size_t len, const struct pkt_node_cfg *node,
                              struct pkt_info *info)
{
    assert(frame != NULL || len == 0);
    assert(node != NULL && info != NULL);
    memset(info, 0, sizeof *info);
    if (len < PKT_ETH_HDR_LEN)
        return PKT_DROP_TRUNC_ETH;
    memcpy(info->dst_mac, frame, 6);
    memcpy(info->src_mac, frame + 6, 6);
    uint16_t ethertype = pkt_load_be16(frame + 12);
    size_t l2_len = PKT_ETH_HDR_LEN;
    if (ethertype == PKT_ETHERTYPE_VLAN) {
        if (len < PKT_ETH_HDR_LEN + PKT_VLAN_TAG_LEN)
            return PKT_DROP_TRUNC_VLAN;
        info->has_vlan = true;
        info->vlan_tci = pkt_load_be16(frame + 14);
        ethertype = pkt_load_be16(frame + 16);
        l2_len += PKT_VLAN_TAG_LEN;
    }
    if (ethertype == PKT_ETHERTYPE_VLAN || ethertype == PKT_ETHERTYPE_QINQ ||
        ethertype == PKT_ETHERTYPE_QINQ_OLD)
        return PKT_DROP_QINQ;
    info->l2_len = (uint16_t)l2_len;
    info->l3_off = (uint16_t)l2_len;
    if (!pkt_mac_is_group(info->dst_mac) && memcmp(info->dst_mac, node->mac, 6) != 0)
        return PKT_DROP_NOT_FOR_US;
    if (pkt_mac_is_group(info->src_mac))
        return PKT_DROP_BAD_SRC;
    /* IP lengths are 16-bit and headers in front of the payload short, so every offset and
     * length stored in info fits in uint16_t whatever len is. */
    switch (ethertype) {
    case PKT_ETHERTYPE_IPV4:
        return pkt_classify_ip4(frame, len, node, info);
    case PKT_ETHERTYPE_IPV6:
        return pkt_classify_ip6(frame, len, node, info);
    case PKT_ETHERTYPE_ARP:
        return pkt_classify_arp(frame, len, node, info);
    default:
        return PKT_DROP_ETHERTYPE;
    }
}

/* ---- replies --------------------------------------------------------------------------- */

/* Ethernet header (with the 802.1Q tag when has_vlan) at out; returns its length. */
static size_t pkt_write_eth(uint8_t *out, const uint8_t dst[6], const uint8_t src[6], bool has_vlan,
                            uint16_t vlan_tci, uint16_t ethertype)
{
    memcpy(out, dst, 6);
    memcpy(out + 6, src, 6);
    if (!has_vlan) {
        pkt_store_be16(out + 12, ethertype);
        return PKT_ETH_HDR_LEN;
    }
    pkt_store_be16(out + 12, PKT_ETHERTYPE_VLAN);
    pkt_store_be16(out + 14, vlan_tci);
    pkt_store_be16(out + 16, ethertype);
    return PKT_ETH_HDR_LEN + PKT_VLAN_TAG_LEN;
}

/* IPv4 header without options at ip, checksum included. */
static void pkt_write_ip4(uint8_t *ip, uint8_t tos, const uint8_t id[2], uint16_t frag,
                          uint8_t proto, const uint8_t src[4], const uint8_t dst[4], size_t l4_len)
{
    assert(l4_len <= 0xffffu - PKT_IP4_HDR_LEN);
    ip[0] = 0x45;
    ip[1] = tos;
    pkt_store_be16(ip + 2, (uint16_t)(PKT_IP4_HDR_LEN + l4_len));
    memcpy(ip + 4, id, 2);
    pkt_store_be16(ip + 6, frag);
    ip[8] = PKT_REPLY_TTL;
    ip[9] = proto;
    ip[10] = 0;
    ip[11] = 0;
    memcpy(ip + 12, src, 4);
    memcpy(ip + 16, dst, 4);
    uint16_t csum = pkt_csum(ip, PKT_IP4_HDR_LEN);
    memcpy(ip + 10, &csum, 2);
}

/* IPv6 header at ip; vtc_flow = the first 4 bytes (version, traffic class, flow label). */
static void pkt_write_ip6(uint8_t *ip, const uint8_t vtc_flow[4], uint8_t next, uint8_t hop_limit,
                          const uint8_t src[16], const uint8_t dst[16], size_t l4_len)
{
    assert(l4_len <= 0xffffu);
    assert((vtc_flow[0] >> 4) == 6);
    memcpy(ip, vtc_flow, 4);
    pkt_store_be16(ip + 4, (uint16_t)l4_len);
    ip[6] = next;
    ip[7] = hop_limit;
    memcpy(ip + 8, src, 16);
    memcpy(ip + 24, dst, 16);
}

static bool pkt_node_owns_ip6(const struct pkt_node_cfg *node, const uint8_t *ip)
{
    if (pkt_is_zero(node->ip6, 16))
        return false;
    return memcmp(ip, node->ip6, 16) == 0 ||
           (!pkt_is_zero(node->ip6_ll, 16) && memcmp(ip, node->ip6_ll, 16) == 0);
}

static int pkt_build_arp_reply(const uint8_t *frame, size_t len, const struct pkt_info *info,
                               const struct pkt_node_cfg *node, uint8_t *out, size_t cap)
{
    size_t l2 = info->l2_len, reply_len = l2 + PKT_ARP_LEN;
    if (info->ip_version != 0 || info->l4_off != l2 || reply_len > len)
        return -EINVAL;
    const uint8_t *arp = frame + l2;
    if (pkt_load_be16(arp + 6) != PKT_ARP_OP_REQUEST || pkt_is_zero(node->ip4, 4) ||
        memcmp(arp + 24, node->ip4, 4) != 0)
        return -EINVAL;
    if (cap < reply_len)
        return -ENOSPC;
    uint8_t fixed[6], sender_mac[6], sender_ip[4];
    memcpy(fixed, arp, 6); /* htype, ptype, hlen, plen */
    memcpy(sender_mac, arp + 8, 6);
    memcpy(sender_ip, arp + 14, 4);
    pkt_write_eth(out, sender_mac, node->mac, info->has_vlan, info->vlan_tci, PKT_ETHERTYPE_ARP);
    uint8_t *reply = out + l2;
    memcpy(reply, fixed, 6);
    pkt_store_be16(reply + 6, PKT_ARP_OP_REPLY);
    memcpy(reply + 8, node->mac, 6);
    memcpy(reply + 14, node->ip4, 4);
    memcpy(reply + 18, sender_mac, 6);
    memcpy(reply + 24, sender_ip, 4);
    return (int)reply_len;
}

/* Checks shared by the echo replies: info locates an ICMP message of the expected type in
 * frame, sent to our unicast address. */
static bool pkt_echo_request_ok(const uint8_t *frame, size_t len, const struct pkt_info *info,
                                uint8_t ip_version, size_t ip_hdr_min, uint8_t type)
{
    return info->ip_version == ip_version && info->l3_off == info->l2_len &&
           info->l4_off >= info->l3_off + ip_hdr_min && info->payload_off == info->l4_off &&
           info->payload_len >= PKT_ICMP_HDR_LEN &&
           (size_t)info->l4_off + info->payload_len <= len && frame[info->l4_off] == type;
}

static int pkt_build_icmp4_echo_reply(const uint8_t *frame, size_t len, const struct pkt_info *info,
                                      const struct pkt_node_cfg *node, uint8_t *out, size_t cap)
{
    if (!pkt_echo_request_ok(frame, len, info, 4, PKT_IP4_HDR_LEN, PKT_ICMP_ECHO_REQUEST) ||
        memcmp(info->dst_ip, node->ip4, 4) != 0)
        return -EINVAL;
    size_t l2 = info->l2_len, icmp_len = info->payload_len;
    size_t reply_len = l2 + PKT_IP4_HDR_LEN + icmp_len; /* options dropped: <= request */
    assert(reply_len <= (size_t)info->l4_off + icmp_len && reply_len <= len);
    if (cap < reply_len)
        return -ENOSPC;
    const uint8_t *ip = frame + info->l3_off;
    uint8_t tos = ip[1], id[2] = { ip[4], ip[5] };
    uint8_t *icmp = out + l2 + PKT_IP4_HDR_LEN;
    memmove(icmp, frame + info->l4_off, icmp_len);
    pkt_write_eth(out, info->src_mac, node->mac, info->has_vlan, info->vlan_tci,
                  PKT_ETHERTYPE_IPV4);
    pkt_write_ip4(out + l2, tos, id, 0, PKT_IP_PROTO_ICMP, node->ip4, info->src_ip, icmp_len);
    const uint8_t old_word[2] = { icmp[0], icmp[1] }, new_word[2] = { PKT_ICMP_ECHO_REPLY, 0 };
    icmp[0] = PKT_ICMP_ECHO_REPLY;
    pkt_csum_replace16(icmp + 2, old_word, new_word);
    return (int)reply_len;
}

static int pkt_build_icmp6_echo_reply(const uint8_t *frame, size_t len, const struct pkt_info *info,
                                      const struct pkt_node_cfg *node, uint8_t *out, size_t cap)
{
    if (!pkt_echo_request_ok(frame, len, info, 6, PKT_IP6_HDR_LEN, PKT_ICMP6_ECHO_REQUEST) ||
        !pkt_node_owns_ip6(node, info->dst_ip))
        return -EINVAL;
    size_t l2 = info->l2_len, icmp_len = info->payload_len;
    size_t reply_len = l2 + PKT_IP6_HDR_LEN + icmp_len;
    assert(reply_len <= len);
    if (cap < reply_len)
        return -ENOSPC;
    uint8_t vtc_flow[4];
    memcpy(vtc_flow, frame + info->l3_off, 4);
    uint8_t *icmp = out + l2 + PKT_IP6_HDR_LEN;
    memmove(icmp, frame + info->l4_off, icmp_len);
    pkt_write_eth(out, info->src_mac, node->mac, info->has_vlan, info->vlan_tci,
                  PKT_ETHERTYPE_IPV6);
    pkt_write_ip6(out + l2, vtc_flow, PKT_IP_PROTO_ICMP6, PKT_REPLY_TTL, info->dst_ip, info->src_ip,
                  icmp_len);
    /* Same pseudo-header sum (addresses swapped, same length): only the type word changes. */
    const uint8_t old_word[2] = { icmp[0], icmp[1] }, new_word[2] = { PKT_ICMP6_ECHO_REPLY, 0 };
    icmp[0] = PKT_ICMP6_ECHO_REPLY;
    pkt_csum_replace16(icmp + 2, old_word, new_word);
    return (int)reply_len;
}

static int pkt_build_ndp_advert(const uint8_t *frame, size_t len, const struct pkt_info *info,
                                const struct pkt_node_cfg *node, uint8_t *out, size_t cap)
{
    if (!pkt_echo_request_ok(frame, len, info, 6, PKT_IP6_HDR_LEN, PKT_ICMP6_NEIGH_SOL) ||
        info->payload_len < PKT_NDP_NS_LEN)
        return -EINVAL;
    uint8_t target[16];
    memcpy(target, frame + info->l4_off + 8, 16);
    if (!pkt_node_owns_ip6(node, target))
        return -EINVAL;
    size_t l2 = info->l2_len;
    size_t na_len = l2 + PKT_IP6_HDR_LEN + PKT_NDP_NA_LEN <= len ? PKT_NDP_NA_LEN : PKT_NDP_NS_LEN;
    size_t reply_len = l2 + PKT_IP6_HDR_LEN + na_len;
    assert(reply_len <= len);
    if (cap < reply_len)
        return -ENOSPC;
    bool from_unspecified = pkt_is_zero(info->src_ip, 16);
    const uint8_t *dst_mac = from_unspecified ? pkt_mac_all_nodes : info->src_mac;
    const uint8_t *dst_ip = from_unspecified ? pkt_ip6_all_nodes : info->src_ip;
    static const uint8_t vtc_flow[4] = { 0x60, 0, 0, 0 };
    pkt_write_eth(out, dst_mac, node->mac, info->has_vlan, info->vlan_tci, PKT_ETHERTYPE_IPV6);
    pkt_write_ip6(out + l2, vtc_flow, PKT_IP_PROTO_ICMP6, PKT_NDP_HOP_LIMIT, target, dst_ip,
                  na_len);
    uint8_t *na = out + l2 + PKT_IP6_HDR_LEN;
    memset(na, 0, PKT_NDP_NS_LEN);
    na[0] = PKT_ICMP6_NEIGH_ADV;
    na[4] = PKT_NDP_NA_FLAG_OVERRIDE | (from_unspecified ? 0 : PKT_NDP_NA_FLAG_SOLICITED);
    memcpy(na + 8, target, 16);
    if (na_len == PKT_NDP_NA_LEN) {
        na[24] = PKT_NDP_OPT_TGT_LLA;
        na[25] = PKT_NDP_LLA_OPT_LEN / 8;
        memcpy(na + 26, node->mac, 6);
    }
    uint64_t acc = pkt_pseudo_sum(6, target, dst_ip, PKT_IP_PROTO_ICMP6, na_len);
    uint16_t csum = (uint16_t)~pkt_csum_fold(pkt_csum_add(acc, na, na_len));
    memcpy(na + 2, &csum, 2);
    return (int)reply_len;
}

int pkt_build_reply(const uint8_t *frame, size_t len, const struct pkt_info *info,
                    enum pkt_verdict v, const struct pkt_node_cfg *node, uint8_t *out, size_t cap)
{
    assert(frame != NULL && info != NULL && node != NULL && out != NULL);
    assert(out == frame || (uintptr_t)out + cap <= (uintptr_t)frame ||
           (uintptr_t)frame + len <= (uintptr_t)out); /* in place, or no overlap */
    size_t l2_expected = PKT_ETH_HDR_LEN + (info->has_vlan ? PKT_VLAN_TAG_LEN : 0);
    if (info->l2_len != l2_expected || info->l3_off != info->l2_len || len < l2_expected)
        return -EINVAL;
    switch (v) {
    case PKT_ARP_REQUEST:
        return pkt_build_arp_reply(frame, len, info, node, out, cap);
    case PKT_ICMP_ECHO:
        return pkt_build_icmp4_echo_reply(frame, len, info, node, out, cap);
    case PKT_ICMP6_ECHO:
        return pkt_build_icmp6_echo_reply(frame, len, info, node, out, cap);
    case PKT_NDP_SOLICIT:
        return pkt_build_ndp_advert(frame, len, info, node, out, cap);
    default:
        return -EINVAL;
    }
}

size_t pkt_udp_reply_hdr_len(const struct pkt_info *req)
{
    assert(req != NULL);
    size_t l2 = PKT_ETH_HDR_LEN + (req->has_vlan ? PKT_VLAN_TAG_LEN : 0);
    if (req->ip_version == 4)
        return l2 + PKT_IP4_HDR_LEN + PKT_UDP_HDR_LEN;
    if (req->ip_version == 6)
        return l2 + PKT_IP6_HDR_LEN + PKT_UDP_HDR_LEN;
    return 0;
}

int pkt_build_udp_reply(const struct pkt_info *req, const struct pkt_node_cfg *node,
                        const uint8_t *payload, size_t payload_len, uint8_t *out, size_t cap)
{
    assert(req != NULL && node != NULL && out != NULL);
    assert(payload != NULL || payload_len == 0);
    size_t hdr_len = pkt_udp_reply_hdr_len(req);
    if (hdr_len == 0 || payload_len > PKT_UDP_PAYLOAD_LEN_MAX)
        return -EINVAL;
    const uint8_t *src_ip;
    if (req->ip_version == 4) {
        if (pkt_is_zero(node->ip4, 4))
            return -EINVAL;
        src_ip = node->ip4;
    } else if (pkt_node_owns_ip6(node, req->dst_ip)) {
        src_ip = req->dst_ip; /* answer from the address the sender used (global or LL) */
    } else if (!pkt_is_zero(node->ip6, 16)) {
        src_ip = node->ip6;
    } else {
        return -EINVAL;
    }
    if (cap < hdr_len + payload_len)
        return -ENOSPC;
    if (payload_len != 0 && payload != out + hdr_len)
        memmove(out + hdr_len, payload, payload_len);
    size_t udp_len = PKT_UDP_HDR_LEN + payload_len;
    uint16_t ethertype = req->ip_version == 4 ? PKT_ETHERTYPE_IPV4 : PKT_ETHERTYPE_IPV6;
    size_t l2 =
        pkt_write_eth(out, req->src_mac, node->mac, req->has_vlan, req->vlan_tci, ethertype);
    uint8_t *udp;
    if (req->ip_version == 4) {
        static const uint8_t id_zero[2] = { 0, 0 }; /* atomic datagram, RFC 6864 */
        pkt_write_ip4(out + l2, 0, id_zero, PKT_IP4_FLAG_DF, PKT_IP_PROTO_UDP, src_ip, req->src_ip,
                      udp_len);
        udp = out + l2 + PKT_IP4_HDR_LEN;
    } else {
        static const uint8_t vtc_flow[4] = { 0x60, 0, 0, 0 };
        pkt_write_ip6(out + l2, vtc_flow, PKT_IP_PROTO_UDP, PKT_REPLY_TTL, src_ip, req->src_ip,
                      udp_len);
        udp = out + l2 + PKT_IP6_HDR_LEN;
    }
    assert(udp + PKT_UDP_HDR_LEN == out + hdr_len);
    pkt_store_be16(udp, node->udp_port);
    pkt_store_be16(udp + 2, req->src_port);
    pkt_store_be16(udp + 4, (uint16_t)udp_len);
    udp[6] = 0;
    udp[7] = 0;
    uint64_t acc = pkt_pseudo_sum(req->ip_version, src_ip, req->src_ip, PKT_IP_PROTO_UDP, udp_len);
    uint16_t csum = (uint16_t)~pkt_csum_fold(pkt_csum_add(acc, udp, udp_len));
    if (csum == 0)
        csum = 0xffffu; /* 0 means "no checksum" (RFC 768) */
    memcpy(udp + 6, &csum, 2);
    return (int)(hdr_len + payload_len);
}

/* ---- token bucket ---------------------------------------------------------------------- */

void pkt_tb_init(struct pkt_token_bucket *tb, uint64_t rate_per_s, uint64_t burst)
{
    assert(tb != NULL);
    assert(burst <= UINT64_MAX / PKT_MILLI);
    tb->rate_per_s = rate_per_s;
    tb->burst = burst;
    tb->tokens_milli = burst * PKT_MILLI;
    tb->last_ns = 0;
}

bool pkt_tb_take(struct pkt_token_bucket *tb, uint64_t now_ns)
{
    assert(tb != NULL);
    assert(tb->burst <= UINT64_MAX / PKT_MILLI);
    uint64_t cap_milli = tb->burst * PKT_MILLI;
    if (tb->tokens_milli > cap_milli)
        tb->tokens_milli = cap_milli; /* burst lowered at run time */
    if (now_ns > tb->last_ns && tb->rate_per_s != 0) {
        uint64_t elapsed_ns = now_ns - tb->last_ns;
        /* rate tokens/s = rate milli-tokens per 10^6 ns */
        unsigned __int128 gain =
            (unsigned __int128)elapsed_ns * tb->rate_per_s / (PKT_NS_PER_S / PKT_MILLI);
        if (gain >= cap_milli - tb->tokens_milli) {
            tb->tokens_milli = cap_milli;
            tb->last_ns = now_ns;
        } else if (gain != 0) {
            tb->tokens_milli += (uint64_t)gain;
            /* Advance only by the time those milli-tokens took (rounded up, <= elapsed),
             * so frequent calls do not lose the fractions. */
            uint64_t used_ns = (uint64_t)(((unsigned __int128)gain * (PKT_NS_PER_S / PKT_MILLI) +
                                           tb->rate_per_s - 1) /
                                          tb->rate_per_s);
            assert(used_ns <= elapsed_ns);
            tb->last_ns += used_ns;
        }
    } else if (now_ns > tb->last_ns) {
        tb->last_ns = now_ns;
    }
    if (tb->tokens_milli < PKT_MILLI)
        return false;
    tb->tokens_milli -= PKT_MILLI;
    return true;
}
