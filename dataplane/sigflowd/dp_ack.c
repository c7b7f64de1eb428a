/*
 * dp_ack.c — replies to senders: the statuses of a frame's events, sent once their log
 * records are durable, and the bounds that keep the node from being a reflector.
 *
 * Groups (owner side). Every status of an ACK-requested event — applied, duplicate, and the
 * refusals (overloaded, unknown, malformed, ...) alike — joins its frame's group on the owner
 * that handled the event. A frame is named by (rx lcore, frame_no), the rx lcore's running
 * count of frames (struct dp_event), never by its mbuf: a freed mbuf is reused by the next
 * packet. The queue is FIFO; a group is sent when the log's durable LSN covers the highest
 * LSN of its events (a group of refusals only has LSN 0 and goes with the groups before it).
 * So one frame gets at most one reply datagram per owner core (a frame whose events reach an
 * owner in two bursts with another ring's burst between them is looked up among the last
 * DP_ACK_LOOKBACK groups and still shares its group).
 *
 * Transmit (rx side). Replies leave through the rx lcore that received the frame: the
 * owner builds the datagram into an mbuf and hands it over its SPSC ring (or sends it itself
 * when it is that lcore). The rx lcore keeps, per source address, a byte credit: every
 * event datagram received from a source adds its bytes (capped at DP_REPLY_CREDIT_MAX),
 * every reply to it costs its bytes, and a reply without the credit is suppressed and
 * counted (`reply_suppressed`). So the node never sends a source more bytes than that source
 * (or whoever spoofs it) sent — the reflection ratio is at most 1, measured on the wire.
 * Replies to frames that were not authenticated are further limited per source in count,
 * like ICMP answers: [dataplane] reply_rate per second (`reply_rate_limited`).
 * Sources live in a direct-mapped table of DP_REPLY_SOURCES entries per rx lcore, keyed by
 * the full address: a source that takes over a slot starts from zero credit.
 *
 * Failure: a reply that can't be sent (no mbuf, ring or tx queue full) is counted and
 * dropped; the sender times out and resends, and dedupe answers `duplicate`.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <rte_ethdev.h>
#include <rte_malloc.h>

#include "dp.h"
#include "dp_ack.h"

#define DP_ACK_LOOKBACK     8           /* open groups searched for an event's frame */
#define DP_ACK_OPEN_NS      200000u     /* longest wait for a frame's last event (see release) */
#define DP_REPLY_CREDIT_MAX (64u << 10) /* bytes a source may bank for replies */
#define DP_SOCKET_WIRE_HDR4 28u         /* socket source: IPv4 + UDP header bytes counted */
#define DP_SOCKET_WIRE_HDR6 48u         /* IPv6 + UDP */

/* What the rx lcore needs to account a reply, in the reply mbuf's private area. */
struct dp_reply_meta {
    uint8_t addr[16]; /* the destination (the frame's source) IP; IPv4 in the first 4 bytes */
    uint8_t family;   /* 4 or 6 */
    uint8_t authed;   /* the frame was authenticated: no per-source count limit */
    uint16_t wire_len;
    uint8_t sa[28]; /* socket source: sockaddr_in or sockaddr_in6 */
    uint8_t nack;   /* a reply to refusals only (nothing logged): counted as a nack */
    uint8_t entries;
};

/* ---- per-source reply credit (rx lcore) ---------------------------------------------- */

struct dp_reply_source {
    uint8_t addr[16];
    uint8_t family;
    uint8_t pad[3];
    uint32_t credit; /* bytes */
    struct pkt_token_bucket tb;
};

static inline uint32_t dp_reply_slot(const uint8_t *addr, uint8_t family)
{
    uint64_t a, b;
    memcpy(&a, addr, 8);
    memcpy(&b, addr + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull) ^ family) * 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> 40) & (DP_REPLY_SOURCES - 1);
}

/* The entry of addr (4 bytes for family 4, else 16), taken over (zero credit, full bucket)
 * when another source held it. */
static struct dp_reply_source *dp_reply_source(struct dp_lcore *lc, const uint8_t *addr_in,
                                               uint8_t family)
{
    uint8_t addr[16] = { 0 };
    memcpy(addr, addr_in, family == 4 ? 4 : 16);
    struct dp_reply_source *s = &lc->reply_sources[dp_reply_slot(addr, family)];
    if (unlikely(s->family != family || memcmp(s->addr, addr, 16) != 0)) {
        memcpy(s->addr, addr, 16);
        s->family = family;
        s->credit = 0;
        unsigned rate = dp_node.cfg.reply_rate;
        pkt_tb_init(&s->tb, rate, rate / 10 + 1);
    }
    return s;
}

int dp_reply_sources_init(struct dp_lcore *lc)
{
    lc->reply_sources = rte_zmalloc(
        "dp_reply_sources", DP_REPLY_SOURCES * sizeof(struct dp_reply_source), RTE_CACHE_LINE_SIZE);
    return lc->reply_sources ? 0 : -ENOMEM;
}

void dp_reply_sources_free(struct dp_lcore *lc)
{
    rte_free(lc->reply_sources);
    lc->reply_sources = NULL;
}

void dp_reply_credit(struct dp_lcore *lc, const uint8_t *addr, uint8_t family, uint32_t bytes)
{
    struct dp_reply_source *s = dp_reply_source(lc, addr, family);
    uint32_t c = s->credit + bytes;
    s->credit = c > DP_REPLY_CREDIT_MAX || c < bytes ? DP_REPLY_CREDIT_MAX : c;
}

/* May this reply leave? Takes its bytes (and a token when unauthenticated) if so. */
static bool dp_reply_allowed(struct dp_lcore *lc, const struct dp_reply_meta *meta)
{
    struct dp_reply_source *s = dp_reply_source(lc, meta->addr, meta->family);
    if (s->credit < meta->wire_len) {
        lc->drop[DP_DROP_REPLY_SUPPRESSED]++;
        return false;
    }
    if (!meta->authed && !pkt_tb_take(&s->tb, dp_now_ns())) {
        lc->drop[DP_DROP_REPLY_RATE]++;
        return false;
    }
    s->credit -= meta->wire_len;
    return true;
}

static inline struct dp_reply_meta *dp_reply_meta(struct rte_mbuf *m)
{
    _Static_assert(sizeof(struct dp_reply_meta) <= DP_MBUF_PRIV_SIZE, "fits the mbuf priv area");
    return rte_mbuf_to_priv(m);
}

/* One reply left: counted by the lcore that sent it, so that a reply the socket or the
 * queue refused is counted once, as a drop, never also as sent. */
static inline void dp_reply_count_sent(struct dp_lcore *lc, struct rte_mbuf *m)
{
    const struct dp_reply_meta *meta = dp_reply_meta(m);
    lc->counters[meta->nack ? DP_C_NACKS : DP_C_ACKS_SENT]++;
    lc->counters[DP_C_ACK_ENTRIES] += meta->entries;
}

/* Send a socket source's reply: the payload is the mbuf's data, the address in its meta. */
static bool dp_reply_sendto(struct dp_lcore *lc, struct rte_mbuf *m)
{
    const struct dp_reply_meta *meta = dp_reply_meta(m);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, meta->sa, sizeof(meta->sa));
    socklen_t salen =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    size_t len = rte_pktmbuf_data_len(m);
    return sendto(lc->sock_fd, rte_pktmbuf_mtod(m, void *), len, MSG_DONTWAIT,
                  (const struct sockaddr *)&ss, salen) == (ssize_t)len;
}

/* Transmit n replies (all on this rx lcore's queues or socket): accounting first, then
 * bursts per (port, queue). Frees what does not leave. Returns the packets sent. */
static unsigned dp_reply_tx(struct dp_lcore *lc, struct rte_mbuf **ms, unsigned n)
{
    unsigned kept = 0, sent = 0;
    for (unsigned i = 0; i < n; i++) {
        if (dp_reply_allowed(lc, dp_reply_meta(ms[i])))
            ms[kept++] = ms[i];
        else
            rte_pktmbuf_free(ms[i]);
    }
    if (lc->sock_fd >= 0) {
        for (unsigned i = 0; i < kept; i++) {
            if (dp_reply_sendto(lc, ms[i])) {
                dp_reply_count_sent(lc, ms[i]);
                sent++;
            } else {
                lc->drop[DP_DROP_ACK_TX]++;
            }
            rte_pktmbuf_free(ms[i]);
        }
        lc->counters[DP_C_TX_PACKETS] += sent;
        return sent;
    }
    for (unsigned i = 0; i < kept;) {
        uint16_t port = ms[i]->port, queue = (uint16_t)ms[i]->hash.usr;
        unsigned j = i + 1;
        while (j < kept && ms[j]->port == port && (uint16_t)ms[j]->hash.usr == queue)
            j++;
        /* what each reply is, read before the burst: the driver owns (and may already
         * have freed) what it takes */
        uint8_t nack[DP_TX_BURST_MAX], entries[DP_TX_BURST_MAX];
        for (unsigned k = i; k < j; k++) {
            const struct dp_reply_meta *meta = dp_reply_meta(ms[k]);
            nack[k] = meta->nack;
            entries[k] = meta->entries;
        }
        uint16_t done = rte_eth_tx_burst(port, queue, &ms[i], (uint16_t)(j - i));
        for (unsigned k = i; k < i + done; k++) {
            lc->counters[nack[k] ? DP_C_NACKS : DP_C_ACKS_SENT]++;
            lc->counters[DP_C_ACK_ENTRIES] += entries[k];
        }
        for (unsigned k = i + done; k < j; k++) {
            lc->drop[DP_DROP_TX_FULL]++;
            rte_pktmbuf_free(ms[k]);
        }
        sent += done;
        i = j;
    }
    lc->counters[DP_C_TX_PACKETS] += sent;
    return sent;
}

unsigned dp_ack_drain(struct dp_lcore *lc)
{
    struct rte_mbuf *ms[DP_TX_BURST_MAX];
    unsigned total = 0;
    for (unsigned o = 0; o < dp_node.owner_count; o++) {
        struct rte_ring *r = lc->ack_in[o];
        if (!r || rte_ring_empty(r))
            continue;
        unsigned n = rte_ring_sc_dequeue_burst(r, (void **)ms, DP_TX_BURST_MAX, NULL);
        total += dp_reply_tx(lc, ms, n);
    }
    return total;
}

/* ---- groups (owner) ------------------------------------------------------------------ */

/* Build the reply datagram of group g. NULL (counted) when there is no mbuf. */
static struct rte_mbuf *dp_ack_build(struct dp_lcore *lc, const struct dp_ack_group *g)
{
    uint8_t payload[SF_ACK_HDR_LEN + SF_FRAME_EVENTS_MAX * SF_ACK_ENTRY_LEN];
    struct sf_ack_hdr hdr = g->hdr;
    hdr.owner = (uint16_t)lc->owner_index;
    hdr.durable_lsn = lc->wal ? wal_durable_lsn(lc->wal) : 0;
    int plen = sf_ack_encode(payload, sizeof(payload), &hdr, g->entries);
    RTE_VERIFY(plen > 0);
    struct rte_mbuf *m = rte_pktmbuf_alloc(dp_node.pool);
    if (!m) {
        lc->drop[DP_DROP_MBUF_ALLOC]++;
        return NULL;
    }
    struct dp_reply_meta *meta = dp_reply_meta(m);
    memset(meta, 0, sizeof(*meta));
    meta->authed = g->authed;
    meta->nack = g->lsn == 0;
    meta->entries = (uint8_t)hdr.entry_count;
    int len;
    if (g->via_socket) {
        /* g->sa has no alignment of its own: copy before reading it as a sockaddr */
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        memcpy(&ss, g->sa, sizeof(g->sa) < sizeof(ss) ? sizeof(g->sa) : sizeof(ss));
        memcpy(meta->sa, g->sa, sizeof(meta->sa));
        if (ss.ss_family == AF_INET6) {
            meta->family = 6;
            memcpy(meta->addr, &((const struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        } else {
            meta->family = 4;
            memcpy(meta->addr, &((const struct sockaddr_in *)&ss)->sin_addr, 4);
        }
        memcpy(rte_pktmbuf_mtod(m, uint8_t *), payload, (size_t)plen);
        len = plen;
        meta->wire_len =
            (uint16_t)(plen + (meta->family == 6 ? DP_SOCKET_WIRE_HDR6 : DP_SOCKET_WIRE_HDR4));
    } else {
        const struct dp_port *p = &dp_node.ports[g->port];
        len = pkt_build_udp_reply(&g->req, &p->addr, payload, (size_t)plen,
                                  rte_pktmbuf_mtod(m, uint8_t *), rte_pktmbuf_tailroom(m));
        RTE_VERIFY(len > 0);
        meta->family = g->req.ip_version;
        memcpy(meta->addr, g->req.src_ip, 16);
        meta->wire_len = (uint16_t)len;
        m->port = g->port;
        m->hash.usr = g->queue;
    }
    rte_pktmbuf_data_len(m) = (uint16_t)len;
    rte_pktmbuf_pkt_len(m) = (uint32_t)len;
    return m;
}

/* Hand the replies built for rx lcore r over to it, in one burst (or transmit them, when
 * r is this lcore). */
static void dp_ack_hand_over(struct dp_lcore *lc, unsigned r, struct rte_mbuf **ms, unsigned n)
{
    if (n == 0)
        return;
    unsigned done = n;
    if (!(lc->rx && lc->index == r))
        done = rte_ring_sp_enqueue_burst(lc->ack_out[r], (void **)ms, n, NULL);
    /* counted as sent by the rx lcore once they leave (dp_reply_tx) */
    for (unsigned k = done; k < n; k++) {
        rte_pktmbuf_free(ms[k]);
        lc->drop[DP_DROP_ACK_TX]++;
    }
    if (lc->rx && lc->index == r)
        dp_reply_tx(lc, ms, n);
}

void dp_reply_origin_set(struct rte_mbuf *m, const struct sf_frame_hdr *hdr,
                         const struct pkt_info *req)
{
    struct dp_reply_origin *o = &dp_mbuf_priv(m)->origin;
    o->sender_id = hdr->sender_id;
    o->frame_seq = hdr->frame_seq;
    o->has_req = req != NULL;
    if (req)
        o->req = *req;
}

/* Where the frame came from and who it is, as the rx core recorded it (dp_reply_origin_set).
 * False when it recorded no packet headers for a frame from a port. */
static bool dp_ack_origin(struct dp_ack_group *g, const struct dp_event *ev)
{
    const struct dp_mbuf_priv *pv = dp_mbuf_priv(ev->m);
    g->frame_no = ev->frame_no;
    g->port = ev->port;
    g->queue = ev->queue;
    g->src_lcore = ev->src_lcore;
    g->authed = (ev->flags & DP_EV_AUTHED) != 0;
    g->via_socket = ev->port == UINT8_MAX;
    if (g->via_socket)
        memcpy(g->sa, pv->sa, sizeof(g->sa));
    else if (!pv->origin.has_req)
        return false;
    else
        g->req = pv->origin.req;
    memset(&g->hdr, 0, sizeof(g->hdr));
    g->hdr.sender_id = pv->origin.sender_id;
    g->hdr.frame_seq = pv->origin.frame_seq;
    return true;
}

/* The open group of ev's frame among the last DP_ACK_LOOKBACK, or NULL. */
static struct dp_ack_group *dp_ack_find(struct dp_ack_queue *q, const struct dp_event *ev)
{
    uint64_t stop = q->tail - q->head > DP_ACK_LOOKBACK ? q->tail - DP_ACK_LOOKBACK : q->head;
    for (uint64_t i = q->tail; i > stop; i--) {
        struct dp_ack_group *g = &q->groups[(i - 1) & q->mask];
        if (g->frame_no == ev->frame_no && g->src_lcore == ev->src_lcore)
            return g->hdr.entry_count < SF_FRAME_EVENTS_MAX ? g : NULL;
    }
    return NULL;
}

bool dp_ack_room(struct dp_lcore *lc, const struct dp_event *ev)
{
    struct dp_ack_queue *q = lc->acks;
    return q->tail - q->head < q->size || dp_ack_find(q, ev) != NULL;
}

void dp_ack_note(struct dp_lcore *lc, const struct dp_event *ev, uint8_t status, uint64_t lsn)
{
    struct dp_ack_queue *q = lc->acks;
    struct sf_ack_entry e = { .event_id = ev->event_id,
                              .event_index = ev->ev_index,
                              .status = status };
    struct dp_ack_group *g = dp_ack_find(q, ev);
    if (!g) {
        if (q->tail - q->head >= q->size) { /* only refusals get here: see dp_ack_room */
            lc->drop[DP_DROP_ACK_QUEUE_FULL]++;
            return;
        }
        g = &q->groups[q->tail & q->mask];
        if (!dp_ack_origin(g, ev)) {
            lc->drop[DP_DROP_ACK_TX]++;
            return;
        }
        g->lsn = 0;
        g->complete = false;
        g->opened_ns = dp_now_ns();
        g->opened_pass = lc->owner_passes;
        q->tail++;
    }
    if (ev->flags & DP_EV_FRAME_LAST)
        g->complete = true;
    g->entries[g->hdr.entry_count++] = e;
    if (lsn > g->lsn)
        g->lsn = lsn;
}

unsigned dp_ack_release(struct dp_lcore *lc, uint64_t durable)
{
    struct dp_ack_queue *q = lc->acks;
    struct rte_mbuf *out[DP_LCORES_MAX][DP_TX_BURST_MAX];
    unsigned nout[DP_LCORES_MAX] = { 0 };
    unsigned n = 0;
    while (q->head < q->tail) {
        struct dp_ack_group *g = &q->groups[q->head & q->mask];
        if (g->lsn > durable)
            break;
        /* The newest group may still be open: a frame's events can reach this owner in two
         * ring bursts. It waits until its frame's last event for this owner was noted, or
         * a newer group follows it, or DP_ACK_OPEN_NS passed (that event was refused
         * before it could be noted, or dropped) AND the owner dequeued its rings at least
         * once since (a preempted owner finds the rest of the frame still in the ring). */
        if (q->head + 1 == q->tail && !g->complete &&
            (dp_now_ns() - g->opened_ns < DP_ACK_OPEN_NS || lc->owner_passes - g->opened_pass < 2))
            break;
        unsigned r = g->src_lcore;
        if (nout[r] == DP_TX_BURST_MAX) {
            dp_ack_hand_over(lc, r, out[r], nout[r]);
            nout[r] = 0;
        }
        struct rte_mbuf *m = dp_ack_build(lc, g);
        if (m)
            out[r][nout[r]++] = m;
        q->head++;
        n++;
    }
    for (unsigned r = 0; r < dp_node.lcore_count; r++) /* src_lcore: a dense lcore index */
        dp_ack_hand_over(lc, r, out[r], nout[r]);
    return n;
}

int dp_ack_queues_init(struct dp_node *node)
{
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_lcore *lc = node->owner_by_index[o];
        size_t qbytes = sizeof(struct dp_ack_queue) +
                        (size_t)node->cfg.ack_groups * sizeof(struct dp_ack_group);
        lc->acks = rte_zmalloc("dp_acks", qbytes, RTE_CACHE_LINE_SIZE);
        if (!lc->acks)
            return -ENOMEM;
        lc->acks->size = node->cfg.ack_groups;
        lc->acks->mask = node->cfg.ack_groups - 1;
    }
    return 0;
}

void dp_ack_queues_free(struct dp_node *node)
{
    for (unsigned o = 0; o < node->owner_count; o++) {
        rte_free(node->owner_by_index[o]->acks);
        node->owner_by_index[o]->acks = NULL;
    }
}
