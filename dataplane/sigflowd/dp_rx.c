/*
 * dp_rx.c — the receive side of an lcore: burst receive, classify (Ethernet/VLAN/IPv4/
 * IPv6/UDP), answer ARP/ICMP/NDP, parse frames, hash each workflow key to its partition
 * and owner, stage the events per owner and enqueue them in bursts.
 *
 * Per packet: no allocation (replies reuse the request's mbuf), no lock, no syscall
 * (except the socket source's recvmmsg, which is that source's whole point).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <rte_branch_prediction.h>
#include <rte_ethdev.h>
#include <rte_prefetch.h>

#include "dp.h"

#define DP_RX_BURST_MAX 256

static inline void dp_count_proto_drop(struct dp_lcore *lc, int err)
{
    unsigned idx = (unsigned)(-err);
    RTE_ASSERT(idx < SF_ERR_COUNT);
    lc->drop_proto[idx < SF_ERR_COUNT ? idx : 0]++;
}

void dp_rx_flush(struct dp_lcore *lc)
{
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        unsigned n = lc->stage_count[o];
        if (n == 0)
            continue;
        unsigned sent =
            rte_ring_sp_enqueue_burst_elem(lc->out[o], lc->stage[o], sizeof(struct dp_event),
                                           n, NULL);
        lc->counters[DP_C_EVENTS_ROUTED] += sent;
        for (unsigned i = sent; i < n; i++) {
            lc->drop[DP_DROP_RING_FULL]++;
            rte_pktmbuf_free(lc->stage[o][i].m); /* drops this event's reference */
        }
        lc->stage_count[o] = 0;
    }
}

static inline void dp_rx_stage(struct dp_lcore *lc, const struct dp_event *ev)
{
    unsigned o = wf_partmap_owner(dp_node.partmap, ev->partition);
    RTE_ASSERT(o < dp_node.owner_count);
    if (unlikely(lc->stage_count[o] == DP_STAGE_EVENTS)) {
        dp_rx_flush(lc);
    }
    lc->stage[o][lc->stage_count[o]++] = *ev;
}

/* Fill the routing part of a dp_event from a parsed sf_event. */
static inline void dp_rx_event_init(struct dp_event *out, const struct sf_event *ev,
                                    const uint8_t *base, struct rte_mbuf *m, uint64_t rx_ns)
{
    out->m = m;
    out->key = wf_key_make(ev->type, ev->type_len, ev->id, ev->id_len);
    out->partition = (uint16_t)wf_key_partition(out->key, dp_node.partmap->count);
    out->event_id = ev->event_id;
    out->rx_ns = rx_ns;
    out->type_off = (uint16_t)((const uint8_t *)ev->type - base);
    out->id_off = (uint16_t)((const uint8_t *)ev->id - base);
    out->signal_off = (uint16_t)((const uint8_t *)ev->signal - base);
    out->fields_off = ev->fields_len ? (uint16_t)(ev->fields - base) : 0;
    out->fields_len = ev->fields_len;
    out->type_len = ev->type_len;
    out->id_len = ev->id_len;
    out->signal_len = ev->signal_len;
    out->flags = (ev->has_event_id ? DP_EV_HAS_EVENT_ID : 0) |
                 (ev->fields_json ? DP_EV_FIELDS_JSON : 0);
}

void dp_rx_route_payload(struct dp_lcore *lc, struct rte_mbuf *m, uint16_t off, uint16_t len,
                         uint8_t port, uint8_t queue, uint64_t rx_ns)
{
    struct sf_frame_hdr hdr;
    struct sf_event evs[SF_FRAME_EVENTS_MAX];
    const uint8_t *base = rte_pktmbuf_mtod(m, const uint8_t *);
    int n = sf_datagram_parse(base + off, len, &hdr, evs, SF_FRAME_EVENTS_MAX);
    if (unlikely(n <= 0)) {
        dp_count_proto_drop(lc, n == 0 ? SF_ERR_BAD_COUNT : n);
        rte_pktmbuf_free(m);
        return;
    }
    bool json = base[off] == '{';
    lc->counters[json ? DP_C_JSON_EVENTS : DP_C_FRAMES]++;
    /* One mbuf reference per routed event; each owner frees its own. */
    rte_mbuf_refcnt_set(m, (uint16_t)n);
    uint8_t ack = (!json && (hdr.flags & SF_FLAG_ACK_REQ)) ? DP_EV_ACK_REQ : 0;
    for (int i = 0; i < n; i++) {
        struct dp_event ev;
        dp_rx_event_init(&ev, &evs[i], base, m, rx_ns);
        ev.flags |= ack;
        ev.ev_index = (uint8_t)i;
        ev.src_lcore = (uint8_t)lc->index;
        ev.port = port;
        ev.queue = queue;
        dp_rx_stage(lc, &ev);
    }
}

/* Send one reply frame on (port, queue); frees it when the queue is full. */
static void dp_rx_tx_one(struct dp_lcore *lc, struct rte_mbuf *m, uint16_t port, uint16_t queue)
{
    if (rte_eth_tx_burst(port, queue, &m, 1) == 1) {
        lc->counters[DP_C_TX_PACKETS]++;
        return;
    }
    lc->drop[DP_DROP_TX_FULL]++;
    rte_pktmbuf_free(m);
}

/* Answer ARP / ICMP / NDP in place, in the request's own mbuf. */
static void dp_rx_answer(struct dp_lcore *lc, struct rte_mbuf *m, const struct dp_port *p,
                         const struct pkt_info *info, enum pkt_verdict v, uint16_t queue)
{
    if ((v == PKT_ICMP_ECHO || v == PKT_ICMP6_ECHO) &&
        !pkt_tb_take(&lc->icmp_tb, dp_now_ns())) {
        lc->drop[DP_DROP_ICMP_RATE]++;
        rte_pktmbuf_free(m);
        return;
    }
    uint8_t *data = rte_pktmbuf_mtod(m, uint8_t *);
    uint16_t len = rte_pktmbuf_data_len(m);
    int out_len = pkt_build_reply(data, len, info, v, &p->addr, data, len);
    if (out_len <= 0) {
        lc->drop_pkt[v]++;
        rte_pktmbuf_free(m);
        return;
    }
    RTE_VERIFY(out_len <= len); /* never answer with more bytes than we received */
    rte_pktmbuf_data_len(m) = (uint16_t)out_len;
    rte_pktmbuf_pkt_len(m) = (uint32_t)out_len;
    static const enum dp_counter reply_counter[] = {
        [PKT_ARP_REQUEST] = DP_C_ARP_REPLIES,
        [PKT_ICMP_ECHO] = DP_C_ICMP_REPLIES,
        [PKT_ICMP6_ECHO] = DP_C_ICMP6_REPLIES,
        [PKT_NDP_SOLICIT] = DP_C_NDP_REPLIES,
    };
    lc->counters[reply_counter[v]]++;
    dp_rx_tx_one(lc, m, p->port_id, queue);
}

static void dp_rx_packet(struct dp_lcore *lc, struct rte_mbuf *m, const struct dp_port *p,
                         uint16_t queue, uint64_t rx_ns)
{
    struct pkt_info info;
    if (unlikely(m->nb_segs != 1)) {
        lc->drop_pkt[PKT_DROP_TRUNC_ETH]++; /* chained mbufs: larger than our data room */
        rte_pktmbuf_free(m);
        return;
    }
    const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
    enum pkt_verdict v = pkt_classify(data, rte_pktmbuf_data_len(m), &p->addr, &info);
    switch (v) {
    case PKT_EVENT:
        dp_rx_route_payload(lc, m, info.payload_off, info.payload_len, (uint8_t)p->port_id,
                            (uint8_t)queue, rx_ns);
        return;
    case PKT_ARP_REQUEST:
    case PKT_ICMP_ECHO:
    case PKT_ICMP6_ECHO:
    case PKT_NDP_SOLICIT:
        dp_rx_answer(lc, m, p, &info, v, queue);
        return;
    case PKT_IGNORE_ARP_OTHER:
    case PKT_IGNORE_NDP_OTHER:
        lc->counters[DP_C_IGNORED]++;
        break;
    default:
        RTE_ASSERT(pkt_verdict_is_drop(v));
        lc->drop_pkt[v < PKT_VERDICT_COUNT ? v : PKT_DROP_ETHERTYPE]++;
        break;
    }
    rte_pktmbuf_free(m);
}

static unsigned dp_rx_poll_ethdev(struct dp_lcore *lc)
{
    struct rte_mbuf *pkts[DP_RX_BURST_MAX];
    unsigned burst = RTE_MIN(dp_node.cfg.burst, (unsigned)DP_RX_BURST_MAX);
    unsigned total = 0;
    for (unsigned q = 0; q < lc->rxq_count; q++) {
        struct dp_rxq *rxq = &lc->rxq[q];
        uint16_t n = rte_eth_rx_burst(rxq->port, rxq->queue, pkts, (uint16_t)burst);
        if (n == 0)
            continue;
        uint64_t rx_ns = dp_now_ns();
        const struct dp_port *p = &dp_node.ports[rxq->port];
        rxq->packets += n;
        lc->counters[DP_C_RX_PACKETS] += n;
        for (uint16_t i = 0; i < n; i++) {
            if (i + 1 < n)
                rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
            lc->counters[DP_C_RX_BYTES] += rte_pktmbuf_pkt_len(pkts[i]);
            dp_rx_packet(lc, pkts[i], p, rxq->queue, rx_ns);
        }
        total += n;
    }
    if (total)
        dp_rx_flush(lc);
    return total;
}

/* Kernel-socket source: the same routing after receipt, for the kernel baseline. */
static unsigned dp_rx_poll_socket(struct dp_lcore *lc)
{
    struct rte_mbuf *pkts[DP_RX_BURST_MAX];
    struct mmsghdr msgs[DP_RX_BURST_MAX];
    struct iovec iov[DP_RX_BURST_MAX];
    unsigned burst = RTE_MIN(dp_node.cfg.burst, (unsigned)DP_RX_BURST_MAX);
    if (rte_pktmbuf_alloc_bulk(dp_node.pool, pkts, burst) != 0) {
        lc->drop[DP_DROP_MBUF_ALLOC]++;
        return 0;
    }
    for (unsigned i = 0; i < burst; i++) {
        iov[i].iov_base = rte_pktmbuf_mtod(pkts[i], void *);
        iov[i].iov_len = rte_pktmbuf_tailroom(pkts[i]);
        memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = rte_mbuf_to_priv(pkts[i]);
        msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
    }
    int n = recvmmsg(lc->sock_fd, msgs, burst, MSG_DONTWAIT, NULL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            lc->drop[DP_DROP_SOCKET_ERRORS]++;
        n = 0;
    }
    uint64_t rx_ns = n ? dp_now_ns() : 0;
    for (int i = 0; i < n; i++) {
        uint16_t len = (uint16_t)RTE_MIN(msgs[i].msg_len, (unsigned)UINT16_MAX);
        rte_pktmbuf_data_len(pkts[i]) = len;
        rte_pktmbuf_pkt_len(pkts[i]) = len;
        lc->counters[DP_C_RX_BYTES] += len;
        dp_rx_route_payload(lc, pkts[i], 0, len, UINT8_MAX, (uint8_t)lc->index, rx_ns);
    }
    for (unsigned i = (unsigned)n; i < burst; i++)
        rte_pktmbuf_free(pkts[i]);
    lc->counters[DP_C_RX_PACKETS] += (unsigned)n;
    if (n)
        dp_rx_flush(lc);
    return (unsigned)n;
}

unsigned dp_rx_poll(struct dp_lcore *lc)
{
    if (lc->sock_fd >= 0)
        return dp_rx_poll_socket(lc);
    return dp_rx_poll_ethdev(lc) + dp_ack_drain(lc);
}
