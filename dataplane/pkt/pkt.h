/*
 * pkt.h — the packet layer below the frame protocol, on plain buffers (no DPDK).
 *
 * The dataplane's RX path hands every received Ethernet frame to pkt_classify(), which
 * walks Ethernet (at most one 802.1Q tag), then ARP, IPv4 or IPv6, then UDP, ICMP or
 * ICMPv6, and returns ONE verdict: an event to decode, a request to answer, something to
 * ignore, or a drop with its own counter (pkt_verdict_name() gives the counter's name).
 * pkt_build_reply() answers ARP / ICMP echo / ICMPv6 echo / NDP neighbor solicitation, and
 * pkt_build_udp_reply() builds the datagram that carries an ACK back to a sender.
 *
 * Validity (every length checked against the bytes received; docs/architecture.md#hostile-input):
 *   Ethernet  14 bytes; destination MAC must be ours or a group (broadcast/multicast)
 *             address; the source MAC must not be a group address. One 802.1Q tag
 *             (0x8100) is accepted; a second tag or an outer 0x88a8/0x9100 tag is QinQ.
 *             Bytes after the IP datagram (Ethernet padding) are ignored.
 *   ARP       Ethernet/IPv4 only (htype 1, ptype 0x0800, hlen 6, plen 4), 28 bytes,
 *             operation 1 or 2. Only requests whose target is our IPv4 are answered.
 *   IPv4      version 4; IHL >= 5 and IHL*4 within the bytes; IHL*4 <= total length <=
 *             bytes; header checksum valid; no fragment (MF or offset != 0); options are
 *             skipped; the source may not be 0.0.0.0, multicast or 255.255.255.255; the
 *             destination must be our address (broadcast is never accepted for IP).
 *   IPv6      version 6; 40 + payload length <= bytes; next header UDP or ICMPv6 directly.
 *             Extension headers are dropped, except one Hop-by-Hop header followed by
 *             ICMPv6 (that is MLD: counted as ignored, not as a drop). The source may not
 *             be multicast, nor unspecified except in a neighbor solicitation (DAD).
 *             Unicast destination must be ip6 or ip6_ll; a multicast destination is only
 *             looked at for ICMPv6 (NDP).
 *   UDP       8 <= length field <= bytes after the IP header; destination port ours;
 *             checksum verified when non-zero over IPv4, mandatory (non-zero) over IPv6.
 *   ICMP(v6)  at least 8 bytes; checksum verified (ICMPv6 over the pseudo-header); only
 *             echo requests with code 0 are answered.
 *   NDP NS    hop limit 255, code 0, ICMPv6 length >= 24, target not multicast, options
 *             well-formed (length != 0, within the message); an unspecified source needs
 *             a solicited-node multicast destination and no source link-layer option.
 *
 * Replies are never longer than the request they answer (no amplification) and keep its
 * 802.1Q tag. They are not padded to 60 bytes: the NIC pads short frames.
 *
 * Everything here is per packet: no allocation, no syscall, no global state; packet bytes
 * are read with memcpy or byte assembly, never through casts to wider types.
 */
#ifndef SF_PKT_H
#define SF_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_ETH_HDR_LEN        14u
#define PKT_VLAN_TAG_LEN       4u
#define PKT_ETHERTYPE_IPV4     0x0800u
#define PKT_ETHERTYPE_ARP      0x0806u
#define PKT_ETHERTYPE_VLAN     0x8100u
#define PKT_ETHERTYPE_IPV6     0x86ddu
#define PKT_ETHERTYPE_QINQ     0x88a8u /* 802.1ad S-tag */
#define PKT_ETHERTYPE_QINQ_OLD 0x9100u /* pre-standard S-tag */
#define PKT_ARP_LEN            28u     /* Ethernet/IPv4 ARP packet */
#define PKT_IP4_HDR_LEN        20u     /* without options */
#define PKT_IP4_HDR_LEN_MAX    60u
#define PKT_IP6_HDR_LEN        40u
#define PKT_UDP_HDR_LEN        8u
#define PKT_ICMP_HDR_LEN       8u  /* type, code, checksum, id, sequence */
#define PKT_NDP_NS_LEN         24u /* ICMPv6 header + reserved + target */
#define PKT_NDP_LLA_OPT_LEN    8u  /* link-layer address option for Ethernet */
#define PKT_NDP_NA_LEN         (PKT_NDP_NS_LEN + PKT_NDP_LLA_OPT_LEN)
#define PKT_IP_PROTO_ICMP      1u
#define PKT_IP_PROTO_UDP       17u
#define PKT_IP_PROTO_ICMP6     58u
#define PKT_REPLY_TTL          64u /* TTL / hop limit of echo replies and UDP replies */
#define PKT_NDP_HOP_LIMIT      255u
/* Largest headers in front of a UDP payload: Ethernet + 802.1Q + IPv6 + UDP. */
#define PKT_UDP_REPLY_HDR_LEN_MAX (PKT_ETH_HDR_LEN + PKT_VLAN_TAG_LEN + PKT_IP6_HDR_LEN + 8u)
/* Largest UDP payload pkt_build_udp_reply() accepts (IPv4 total length is 16 bits). */
#define PKT_UDP_PAYLOAD_LEN_MAX (65535u - PKT_IP4_HDR_LEN - PKT_UDP_HDR_LEN)

/** The node's own addresses. Zero-initialise, then fill. */
struct pkt_node_cfg {
    uint8_t mac[6];
    uint8_t ip4[4];     /* network byte order bytes; all zero = no IPv4 (ARP/IPv4 not for us) */
    uint8_t ip6[16];    /* global address; all zero = no IPv6 at all (ip6_ll then ignored) */
    uint8_t ip6_ll[16]; /* link-local (derive with pkt_ip6_link_local from mac) */
    uint16_t udp_port;  /* host order */
};

/** Derive the EUI-64 link-local address fe80::/64 of mac into out. Can't fail. */
void pkt_ip6_link_local(const uint8_t mac[6], uint8_t out[16]);

enum pkt_verdict {
    PKT_EVENT = 0,        /* UDP to our address and port: payload located in info */
    PKT_ARP_REQUEST,      /* ARP request for our IPv4: answer */
    PKT_ICMP_ECHO,        /* ICMPv4 echo request to us: answer (rate-limited by caller) */
    PKT_ICMP6_ECHO,       /* ICMPv6 echo request to our unicast address: answer */
    PKT_NDP_SOLICIT,      /* neighbor solicitation for our ip6 or ip6_ll: answer */
    PKT_IGNORE_ARP_OTHER, /* ARP not for us / replies: not an error, counted as ignored */
    PKT_IGNORE_NDP_OTHER, /* other NDP/MLD (router adverts, MLD, NS for others...) */
    /* drops, each its own counter */
    PKT_DROP_TRUNC_ETH,  /* fewer than 14 bytes */
    PKT_DROP_TRUNC_VLAN, /* 802.1Q ethertype but fewer than 18 bytes */
    PKT_DROP_QINQ,       /* a second VLAN tag, or an 802.1ad/0x9100 outer tag */
    PKT_DROP_ETHERTYPE,  /* not ARP, IPv4 or IPv6 */
    PKT_DROP_TRUNC_IP4,  /* fewer than 20 bytes, or fewer than IHL*4 */
    PKT_DROP_IP4_HDR,    /* version != 4 or IHL < 5 */
    PKT_DROP_IP4_LEN,    /* total length < IHL*4 or > bytes received */
    PKT_DROP_IP4_CSUM,   /* header checksum wrong */
    PKT_DROP_FRAGMENT,   /* MF set or fragment offset != 0 */
    PKT_DROP_TRUNC_IP6,  /* fewer than 40 bytes */
    PKT_DROP_IP6_LEN,    /* 40 + payload length > bytes received */
    PKT_DROP_IP6_EXT,    /* unsupported extension headers */
    PKT_DROP_NOT_FOR_US, /* destination MAC / IP not ours (or IP family disabled) */
    PKT_DROP_L4_PROTO,   /* IP protocol not UDP / ICMP / ICMPv6 */
    PKT_DROP_TRUNC_UDP,  /* fewer than 8 bytes after the IP header */
    PKT_DROP_UDP_LEN,    /* UDP length < 8 or > bytes after the IP header */
    PKT_DROP_UDP_CSUM,   /* checksum wrong, or zero over IPv6 */
    PKT_DROP_UDP_PORT,   /* destination port not ours */
    PKT_DROP_TRUNC_ARP,  /* fewer than 28 bytes of ARP */
    PKT_DROP_BAD_ARP,    /* not Ethernet/IPv4 ARP, unknown operation, group sender MAC */
    PKT_DROP_TRUNC_ICMP, /* fewer than 8 bytes of ICMP / ICMPv6 */
    PKT_DROP_ICMP_CSUM,  /* ICMP / ICMPv6 checksum wrong */
    PKT_DROP_ICMP_TYPE,  /* type/code we do not handle (echo replies, errors, ...) */
    PKT_DROP_BAD_NDP,    /* NS breaking RFC 4861 §7.1.1 validity rules */
    PKT_DROP_BAD_SRC,    /* source MAC/IP a group, broadcast or unspecified address */
    PKT_DROP_IP6_HDR,    /* IPv6 version field != 6 */
    PKT_VERDICT_COUNT
};

/** Stable snake_case counter name of v ("event", "drop_trunc_eth", ...); "unknown" when v is
 *  out of range. Can't fail. */
const char *pkt_verdict_name(enum pkt_verdict v);

/** True when v is one of the PKT_DROP_* verdicts. */
static inline bool pkt_verdict_is_drop(enum pkt_verdict v)
{
    return v >= PKT_DROP_TRUNC_ETH && v < PKT_VERDICT_COUNT;
}

/** True when v asks for pkt_build_reply() (ARP request, ICMP/ICMPv6 echo, NDP NS). */
static inline bool pkt_verdict_is_reply(enum pkt_verdict v)
{
    return v == PKT_ARP_REQUEST || v == PKT_ICMP_ECHO || v == PKT_ICMP6_ECHO ||
           v == PKT_NDP_SOLICIT;
}

/*
 * What pkt_classify() learnt. Offsets are from the frame start. For PKT_EVENT, payload_off
 * and payload_len locate the UDP payload; for ICMP/ICMPv6 verdicts they locate the whole
 * ICMP message (l4_off == payload_off); for ARP the 28-byte ARP packet (l3_off == l4_off).
 * On a drop, fields of the layers not reached are zero.
 */
struct pkt_info {
    uint16_t l2_len, l3_off, l4_off, payload_off, payload_len; /* offsets from frame start */
    uint16_t vlan_tci;
    bool has_vlan;
    uint8_t ip_version; /* 4 or 6 (0 for ARP) */
    uint8_t src_mac[6], dst_mac[6];
    uint8_t src_ip[16], dst_ip[16]; /* IPv4 (and ARP sender/target) uses the first 4 bytes */
    uint16_t src_port, dst_port;    /* host order */
};

/**
 * Classify the frame[0..len) received by the node described by node, filling info.
 * Reads no byte at or beyond frame + len. Can't fail: every outcome is a verdict.
 */
enum pkt_verdict pkt_classify(const uint8_t *frame, size_t len, const struct pkt_node_cfg *node,
                              struct pkt_info *info);

/**
 * Build the answer to a PKT_ARP_REQUEST / PKT_ICMP_ECHO / PKT_ICMP6_ECHO / PKT_NDP_SOLICIT
 * frame (as classified into info with verdict v, same node) into out[0..cap).
 * out may equal frame (built in place); otherwise they must not overlap.
 * The reply goes back to the requester's MAC with the request's VLAN tag. ICMP echo replies
 * carry no IPv4 options. An NDP NA has the Override flag, Solicited unless the solicitation
 * came from the unspecified address (then it goes to all-nodes ff02::1, RFC 4861 §7.2.4),
 * and the target link-layer option when it fits within len (a DAD probe without options is
 * shorter than the NA with the option: the option is then left out, never the length rule).
 * Returns the reply length (<= len), -EINVAL if v is not a reply verdict or info does not
 * describe frame, -ENOSPC if cap is too small.
 */
int pkt_build_reply(const uint8_t *frame, size_t len, const struct pkt_info *info,
                    enum pkt_verdict v, const struct pkt_node_cfg *node, uint8_t *out, size_t cap);

/** Bytes in front of the payload in pkt_build_udp_reply()'s frame for req (42, 46, 62 or 66);
 *  0 if req->ip_version is neither 4 nor 6. Can't fail. */
size_t pkt_udp_reply_hdr_len(const struct pkt_info *req);

/**
 * Build a UDP datagram from the node (our address and udp_port) back to the sender of the
 * request described by req (its MAC, IP version, IP, port, VLAN tag) carrying payload.
 * IPv6 replies come from the address the request was sent to (ip6 or ip6_ll).
 * payload may already sit in place at out + pkt_udp_reply_hdr_len(req) (then it is not
 * copied); any other overlap with out is not allowed.
 * Returns the frame length; -ENOSPC if cap is too small; -EINVAL if req is neither IPv4
 * nor IPv6, our address of that family is not configured, or payload_len >
 * PKT_UDP_PAYLOAD_LEN_MAX. IPv4 and IPv6 with correct checksums.
 */
int pkt_build_udp_reply(const struct pkt_info *req, const struct pkt_node_cfg *node,
                        const uint8_t *payload, size_t payload_len, uint8_t *out, size_t cap);

/*
 * Internet checksum (RFC 1071). The accumulator holds a one's-complement sum of the data
 * read as native-order 16-bit words; pkt_csum_fold() folds it so that storing the result
 * with memcpy puts the right bytes on the wire (the sum is byte-order independent).
 */

/** Add buf[0..len) to acc and return the new accumulator. Only the last buffer of a sum may
 *  have an odd length (it is padded with a zero byte). Can't fail. */
uint64_t pkt_csum_add(uint64_t acc, const void *buf, size_t len);

/** Fold acc to 16 bits (not complemented): 0xffff over data with a valid checksum field. */
uint16_t pkt_csum_fold(uint64_t acc);

/** One's-complement checksum of buf[0..len) as stored with memcpy (~fold). Can't fail. */
uint16_t pkt_csum(const void *buf, size_t len);

/** Token bucket for rate-limiting ICMP answers (per core, no atomics). */
struct pkt_token_bucket {
    uint64_t tokens_milli, last_ns, rate_per_s, burst;
};

/** Start full (burst tokens). rate_per_s 0 = never refills; burst 0 = never grants.
 *  Can't fail. */
void pkt_tb_init(struct pkt_token_bucket *tb, uint64_t rate_per_s, uint64_t burst);

/** Refill for the time since the last call (now_ns from a monotonic clock; going backwards
 *  refills nothing) and take one token: true if granted. rate_per_s and burst may be
 *  rewritten between calls (tokens above a lowered burst are dropped). Can't fail. */
bool pkt_tb_take(struct pkt_token_bucket *tb, uint64_t now_ns);

#endif /* SF_PKT_H */
