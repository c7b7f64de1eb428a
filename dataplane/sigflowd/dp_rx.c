/*
 * dp_rx.c — the receive side of an lcore: burst receive, classify (Ethernet/VLAN/IPv4/
 * IPv6/UDP), answer ARP/ICMP/NDP, parse frames, hash each workflow key to its partition
 * and owner, stage the events per owner and enqueue them in bursts.
 *
 * Per packet: no allocation (replies reuse the request's mbuf), no lock, no syscall
 * (except the socket source's recvmmsg, which is that source's whole point).
 */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <rte_branch_prediction.h>
#include <rte_ethdev.h>
#include <rte_prefetch.h>
#include <rte_ring_elem.h>

#include "dp.h"
#include "dp_ack.h"
#include "dp_rx.h"
#include "dp_senders.h"

#define DP_RX_BURST_MAX 256

static inline void dp_count_proto_drop(struct dp_lcore *lc, int err)
{
    unsigned idx = (unsigned)(-err);
    RTE_ASSERT(idx < SF_ERR_COUNT);
    lc->drop_proto[idx < SF_ERR_COUNT ? idx : 0]++;
}

/*
 * The rings to owners are single-producer (RING_F_SP_ENQ), so the zero-copy enqueue applies:
 * reserve slots, copy the staged records in one or two memcpy (the ring may wrap), publish.
 * rte_ring's own element copy moves a 64-byte record as sixteen 32-bit words.
 */
void dp_rx_flush(struct dp_lcore *lc)
{
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        unsigned n = lc->stage_count[o];
        if (n == 0)
            continue;
        RTE_ASSERT(n <= DP_STAGE_EVENTS);
        /* Zero copy needs a single-producer ring (dp_node.c: RING_F_SP_ENQ); on any other
         * it would reserve nothing and every event would count as ring_full. */
        assert(rte_ring_get_prod_sync_type(lc->out[o]) == RTE_RING_SYNC_ST);
        struct rte_ring_zc_data zcd;
        unsigned sent = rte_ring_enqueue_zc_burst_elem_start(lc->out[o], sizeof(struct dp_event), n,
                                                             &zcd, NULL);
        if (likely(sent != 0)) {
            RTE_ASSERT(zcd.n1 <= sent);
            memcpy(zcd.ptr1, lc->stage[o], zcd.n1 * sizeof(struct dp_event));
            if (unlikely(sent > zcd.n1))
                memcpy(zcd.ptr2, &lc->stage[o][zcd.n1], (sent - zcd.n1) * sizeof(struct dp_event));
            rte_ring_enqueue_zc_elem_finish(lc->out[o], sent);
        }
        lc->counters[DP_C_EVENTS_ROUTED] += sent;
        for (unsigned i = sent; i < n; i++) {
            lc->drop[DP_DROP_RING_FULL]++;
            rte_pktmbuf_free(lc->stage[o][i].m); /* drops this event's reference */
        }
        lc->stage_count[o] = 0;
    }
}

/* The next free stage slot for owner o (flushing every stage first when o's is full). */
static inline struct dp_event *dp_rx_stage_slot(struct dp_lcore *lc, unsigned o)
{
    RTE_ASSERT(o < dp_node.owner_count);
    if (unlikely(lc->stage_count[o] == DP_STAGE_EVENTS))
        dp_rx_flush(lc);
    return &lc->stage[o][lc->stage_count[o]++];
}

/* The JSON form (one event per datagram, a convenience path): parse, then stage. */
static void dp_rx_route_json(struct dp_lcore *lc, struct rte_mbuf *m, uint16_t off, uint16_t len,
                             uint8_t port, uint8_t queue, uint64_t rx_ns)
{
    struct sf_frame_hdr hdr;
    struct sf_event sev;
    const uint8_t *base = rte_pktmbuf_mtod(m, const uint8_t *);
    int n = sf_datagram_parse(base + off, len, &hdr, &sev, 1);
    if (n <= 0) {
        dp_count_proto_drop(lc, n == 0 ? SF_ERR_BAD_COUNT : n);
        rte_pktmbuf_free(m);
        return;
    }
    RTE_ASSERT(n == 1 && sev.fields_json);
    if (unlikely(__atomic_load_n(&dp_node.auth_keys, __ATOMIC_ACQUIRE) != NULL)) {
        lc->drop_auth[1]++; /* the JSON form carries no tag: unauthenticated */
        rte_pktmbuf_free(m);
        return;
    }
    lc->counters[DP_C_JSON_EVENTS]++;
    struct wf_key key = wf_key_make(sev.type, sev.type_len, sev.id, sev.id_len);
    uint32_t partition = wf_key_partition(key, dp_node.partmap->count);
    struct dp_event *ev = dp_rx_stage_slot(lc, wf_partmap_owner(dp_node.partmap, partition));
    *ev = (struct dp_event){
        .m = m,
        .key = key,
        .event_id = sev.event_id,
        .rx_ns = rx_ns,
        .type_off = (uint16_t)((const uint8_t *)sev.type - base),
        .id_off = (uint16_t)((const uint8_t *)sev.id - base),
        .signal_off = (uint16_t)((const uint8_t *)sev.signal - base),
        .fields_off = sev.fields_len ? (uint16_t)(sev.fields - base) : 0,
        .fields_len = sev.fields_len,
        .partition = (uint16_t)partition,
        .type_len = sev.type_len,
        .id_len = sev.id_len,
        .signal_len = sev.signal_len,
        .ev_index = 0,
        .flags = (uint8_t)((sev.has_event_id ? DP_EV_HAS_EVENT_ID : 0) | DP_EV_FIELDS_JSON),
        .src_lcore = (uint8_t)lc->index,
        .port = port,
        .queue = queue,
        .frame_no = lc->frame_no++,
    };
    ev->flags |= DP_EV_FRAME_LAST;
}

/*
 * A binary frame, in two passes over bytes that stay in L1: sf_frame_scan validates the
 * whole frame (a malformed frame routes nothing, its drop counted under its own name) and
 * leaves one 16-byte span per event; then each event is hashed and its record built in
 * place in its owner's stage slot (no intermediate copy).
 */
void dp_rx_route_payload(struct dp_lcore *lc, struct rte_mbuf *m, uint16_t off, uint16_t len,
                         uint8_t port, uint8_t queue, uint64_t rx_ns, const struct pkt_info *req)
{
    const uint8_t *base = rte_pktmbuf_mtod(m, const uint8_t *);
    if (unlikely(len > 0 && base[off] == '{')) {
        dp_rx_route_json(lc, m, off, len, port, queue, rx_ns);
        return;
    }
    struct sf_frame_hdr hdr;
    struct sf_event_span spans[SF_FRAME_EVENTS_MAX];
    int n = sf_frame_scan(base + off, len, &hdr, spans, SF_FRAME_EVENTS_MAX);
    if (unlikely(n <= 0)) {
        dp_count_proto_drop(lc, n == 0 ? SF_ERR_BAD_COUNT : n);
        rte_pktmbuf_free(m);
        return;
    }
    RTE_ASSERT(n <= (int)SF_FRAME_EVENTS_MAX);
    uint8_t authed = 0;
    const struct dp_auth_keys *keys = __atomic_load_n(&dp_node.auth_keys, __ATOMIC_ACQUIRE);
    if (unlikely(keys != NULL)) {
        /* before any event is routed: a frame that fails touches no workflow, gets no reply */
        if (!dp_senders_check_frame(lc, keys, m, base + off, len, &hdr, spans, n, base, off)) {
            rte_pktmbuf_free(m);
            return;
        }
        authed = DP_EV_AUTHED;
    }
    lc->counters[DP_C_FRAMES]++;
    /* One mbuf reference per routed event; each owner frees its own. Set before any event
     * can reach a ring (a full stage flushes inside the loop). */
    rte_mbuf_refcnt_set(m, (uint16_t)n);
    const uint8_t flags =
        DP_EV_HAS_EVENT_ID | authed | ((hdr.flags & SF_FLAG_ACK_REQ) ? DP_EV_ACK_REQ : 0);
    if (flags & DP_EV_ACK_REQ)
        dp_reply_origin_set(m, &hdr, req);
    const uint8_t src_lcore = (uint8_t)lc->index;
    const uint32_t frame_no = lc->frame_no++;
    const struct wf_partmap *partmap = dp_node.partmap;
    const uint32_t partitions = partmap->count;
    /* A frame's events for one owner go to its ring in one enqueue (never a flush in the
     * middle of the frame), and the last of them is flagged: the owner then knows when the
     * frame's reply group is complete (dp_ack.c). */
    const unsigned owners = dp_node.owner_count;
    uint8_t first[DP_LCORES_MAX];
    for (unsigned o = 0; o < owners; o++)
        if (lc->stage_count[o] + (unsigned)n > DP_STAGE_EVENTS) {
            dp_rx_flush(lc);
            break;
        }
    for (unsigned o = 0; o < owners; o++)
        first[o] = (uint8_t)lc->stage_count[o];
    for (int i = 0; i < n; i++) {
        const struct sf_event_span *sp = &spans[i];
        uint16_t type_off = (uint16_t)(off + sp->type_off);
        uint16_t id_off = (uint16_t)(type_off + sp->type_len);
        uint16_t signal_off = (uint16_t)(id_off + sp->id_len);
        uint16_t fields_off = (uint16_t)(signal_off + sp->signal_len);
        /* The id follows the type in a frame: one hash over the packet's bytes in place. */
        struct wf_key key = wf_key_make((const char *)base + type_off, sp->type_len,
                                        (const char *)base + id_off, sp->id_len);
        uint32_t partition = wf_key_partition(key, partitions);
        struct dp_event *ev = dp_rx_stage_slot(lc, wf_partmap_owner(partmap, partition));
        ev->m = m;
        ev->key = key;
        ev->event_id = sp->event_id;
        ev->rx_ns = rx_ns;
        ev->type_off = type_off;
        ev->id_off = id_off;
        ev->signal_off = signal_off;
        ev->fields_off = sp->fields_len ? fields_off : 0;
        ev->fields_len = sp->fields_len;
        ev->partition = (uint16_t)partition;
        ev->type_len = sp->type_len;
        ev->id_len = sp->id_len;
        ev->signal_len = sp->signal_len;
        ev->ev_index = (uint8_t)i;
        ev->flags = flags;
        ev->src_lcore = src_lcore;
        ev->port = port;
        ev->queue = queue;
        ev->frame_no = frame_no;
    }
    for (unsigned o = 0; o < owners; o++)
        if (lc->stage_count[o] > first[o])
            lc->stage[o][lc->stage_count[o] - 1].flags |= DP_EV_FRAME_LAST;
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
    if ((v == PKT_ICMP_ECHO || v == PKT_ICMP6_ECHO) && !pkt_tb_take(&lc->icmp_tb, dp_now_ns())) {
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
        /* what this source sent: the bound of what the node may send back (dp_ack.c) */
        dp_reply_credit(lc, info.src_ip, info.ip_version, rte_pktmbuf_data_len(m));
        dp_rx_route_payload(lc, m, info.payload_off, info.payload_len, (uint8_t)p->port_id,
                            (uint8_t)queue, rx_ns, &info);
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
        msgs[i].msg_hdr.msg_name = dp_mbuf_priv(pkts[i])->sa;
        msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
        _Static_assert(sizeof(struct sockaddr_in6) <= sizeof(dp_mbuf_priv(pkts[i])->sa),
                       "the sender's address fits its place");
    }
    int n = recvmmsg(lc->sock_fd, msgs, burst, MSG_DONTWAIT, NULL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            lc->drop[DP_DROP_SOCKET_ERRORS]++;
        n = 0;
    }
    uint64_t rx_ns = n ? dp_now_ns() : 0;
    for (int i = 0; i < n; i++) {
        lc->counters[DP_C_RX_BYTES] += msgs[i].msg_len;
        if (unlikely((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 ||
                     msgs[i].msg_len > iov[i].iov_len)) {
            /* longer than the mbuf's room: the kernel cut it; never parse a cut datagram */
            dp_count_proto_drop(lc, SF_ERR_TOO_LONG);
            rte_pktmbuf_free(pkts[i]);
            continue;
        }
        uint16_t len = (uint16_t)msgs[i].msg_len;
        rte_pktmbuf_data_len(pkts[i]) = len;
        rte_pktmbuf_pkt_len(pkts[i]) = len;
        const struct sockaddr *sa = msgs[i].msg_hdr.msg_name;
        if (sa->sa_family == AF_INET6)
            dp_reply_credit(lc, (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr, 6,
                            len + 48u); /* as dp_ack.c counts a reply */
        else
            dp_reply_credit(lc, (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr, 4,
                            len + 28u);
        dp_rx_route_payload(lc, pkts[i], 0, len, UINT8_MAX, (uint8_t)lc->index, rx_ns, NULL);
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
        return dp_rx_poll_socket(lc) + dp_ack_drain(lc);
    return dp_rx_poll_ethdev(lc) + dp_ack_drain(lc);
}
