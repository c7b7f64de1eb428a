/* fuzz_pkt.c — libFuzzer target: classify any bytes; for reply verdicts build the reply out
 * of place and in place (same bytes, never longer than the input); for events build the ACK
 * datagram and check the sender would classify it as an event carrying the same payload. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
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
        return 0;
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
    return 0;
}
