/* fuzz_pkt.c — libFuzzer target: classify any bytes; for reply verdicts build the reply out
 * of place and in place (same bytes, never longer than the input); for events build the ACK
 * datagram and check the sender would classify it as an event carrying the same payload.
 * Each input is tried twice: as given, then with its IPv4/UDP/ICMP/ICMPv6 checksums repaired
 * where the headers allow, so that mutations reach the layers behind the checksums. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pkt_test_util.h"

#define FUZZ_ACK_LEN_MAX 64u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_ack(const struct pkt_info *info, const struct pkt_node_cfg *node,
                           const uint8_t *data)
{
    static uint8_t out[PKT_UDP_REPLY_HDR_LEN_MAX + FUZZ_ACK_LEN_MAX];
    size_t ack_len = info->payload_len < FUZZ_ACK_LEN_MAX ? info->payload_len : FUZZ_ACK_LEN_MAX;
    int n = pkt_build_udp_reply(info, node, data + info->payload_off, ack_len, out, sizeof out);
    assert(n == (int)(pkt_udp_reply_hdr_len(info) + ack_len));
    struct pkt_node_cfg sender;
    memset(&sender, 0, sizeof sender);
    memcpy(sender.mac, info->src_mac, 6);
    if (info->ip_version == 4)
        memcpy(sender.ip4, info->src_ip, 4);
    else
        memcpy(sender.ip6, info->src_ip, 16);
    sender.udp_port = info->src_port;
    struct pkt_info back;
    enum pkt_verdict v = pkt_classify(out, (size_t)n, &sender, &back);
    assert(v == PKT_EVENT);
    assert(back.payload_len == ack_len);
    assert(memcmp(out + back.payload_off, data + info->payload_off, ack_len) == 0);
    assert(back.has_vlan == info->has_vlan && back.vlan_tci == info->vlan_tci);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    struct pkt_node_cfg node;
    t_node_cfg(&node);
    struct pkt_info info;
    enum pkt_verdict v = pkt_classify(data, size, &node, &info);
    assert((unsigned)v < PKT_VERDICT_COUNT);
    assert(pkt_verdict_name(v) != NULL);
    if (v == PKT_EVENT || pkt_verdict_is_reply(v))
        assert((size_t)info.payload_off + info.payload_len <= size);
    if (v == PKT_EVENT)
        fuzz_check_ack(&info, &node, data);
    if (!pkt_verdict_is_reply(v))
        return;
    uint8_t *out = malloc(size), *inplace = malloc(size); /* exact sizes: ASan sees overruns */
    assert(out != NULL && inplace != NULL);
    int n = pkt_build_reply(data, size, &info, v, &node, out, size);
    assert(n > 0 && (size_t)n <= size);
    memcpy(inplace, data, size);
    int m = pkt_build_reply(inplace, size, &info, v, &node, inplace, size);
    assert(m == n);
    assert(memcmp(out, inplace, (size_t)n) == 0);
    free(out);
    free(inplace);
}

/* Recompute the checksums the headers of f[0..len) locate, staying within len. */
static void fuzz_repair_checksums(uint8_t *f, size_t len)
{
    if (len < 14)
        return;
    size_t l3 = 14;
    unsigned ethertype = t_get16(f + 12);
    if (ethertype == 0x8100) {
        if (len < 18)
            return;
        ethertype = t_get16(f + 16);
        l3 = 18;
    }
    uint8_t *ip = f + l3, *l4;
    size_t l4_len;
    uint32_t pseudo_udp, pseudo_icmp;
    uint8_t proto;
    if (ethertype == 0x0800) {
        if (len < l3 + 20)
            return;
        size_t ihl = (size_t)(ip[0] & 0xf) * 4;
        if (ihl < 20 || l3 + ihl > len)
            return;
        t_fix_ip4_csum(ip);
        size_t total = t_get16(ip + 2);
        if (total < ihl || l3 + total > len)
            return;
        l4 = ip + ihl;
        l4_len = total - ihl;
        proto = ip[9];
        pseudo_udp = t_ref_pseudo(4, ip + 12, ip + 16, 17, 0);
        pseudo_icmp = 0;
    } else if (ethertype == 0x86dd) {
        if (len < l3 + 40 || l3 + 40 + t_get16(ip + 4) > len)
            return;
        l4 = ip + 40;
        l4_len = t_get16(ip + 4);
        proto = ip[6] == 17 ? 17 : ip[6] == 58 ? 1 : 0;
        pseudo_udp = t_ref_pseudo(6, ip + 8, ip + 24, 17, 0);
        pseudo_icmp = t_ref_pseudo(6, ip + 8, ip + 24, 58, l4_len);
    } else {
        return;
    }
    if (proto == 17 && l4_len >= 8) {
        size_t udp_len = t_get16(l4 + 4);
        if (udp_len >= 8 && udp_len <= l4_len)
            t_set_csum(pseudo_udp + (uint32_t)udp_len, l4, udp_len, 6);
    } else if (proto == 1 && l4_len >= 4) {
        t_set_csum(pseudo_icmp, l4, l4_len, 2);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_one(data, size);
    uint8_t *repaired = malloc(size ? size : 1);
    assert(repaired != NULL);
    if (size)
        memcpy(repaired, data, size);
    fuzz_repair_checksums(repaired, size);
    fuzz_one(repaired, size);
    free(repaired);
    return 0;
}
