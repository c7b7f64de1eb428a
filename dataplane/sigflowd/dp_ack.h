/*
 * dp_ack.h — replies to senders (dp_ack.c): every status of a frame's ACK-requested events
 * on one owner joins the frame's reply group, sent once the log covers it, through the rx
 * core that received the frame, within the source's reply credit and rate.
 */
#ifndef DP_ACK_H
#define DP_ACK_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "dp.h"
#include "pkt.h"
#include "sf_proto.h"

/** One frame's statuses from one owner, sent once the log covers `lsn`. */
struct dp_ack_group {
    uint64_t lsn;      /* highest LSN among its events (0: nothing logged) */
    uint32_t frame_no; /* with src_lcore: which frame (struct dp_event) */
    bool authed;       /* the frame was authenticated (no per-source count limit) */
    bool complete;     /* its frame's last event for this owner was noted */
    uint64_t opened_ns;
    uint64_t opened_pass; /* the owner pass (dp_lcore.owner_passes) it was opened in */
    struct sf_ack_hdr hdr;
    struct pkt_info req; /* ethdev: where the frame came from (answer goes back there) */
    uint8_t sa[32];      /* socket source: the sender's sockaddr */
    uint16_t port, queue;
    uint8_t src_lcore;
    bool via_socket;
    struct sf_ack_entry entries[SF_FRAME_EVENTS_MAX];
};

struct dp_ack_queue {
    uint32_t size, mask; /* power of 2 */
    uint64_t head, tail; /* groups [head, tail) wait; tail - 1 may be open */
    struct dp_ack_group groups[];
};

/** Rx: record a frame's reply origin (sender id, frame sequence, and for the ethdev source
 *  the packet's headers, req; NULL for the socket source) in m's private area. */
void dp_reply_origin_set(struct rte_mbuf *m, const struct sf_frame_hdr *hdr,
                         const struct pkt_info *req);

/** Can ev's status be noted: its frame has an open group here, or a group is free? When
 *  not, the event must be refused before logging, without a reply. Can't fail. */
bool dp_ack_room(struct dp_lcore *lc, const struct dp_event *ev);

/** Note the status of an ACK-requested event in its frame's group, sent once the log covers
 *  `lsn` (0: nothing of it was logged). Without room (dp_ack_room) the status is dropped
 *  and counted (ack_queue_full). */
void dp_ack_note(struct dp_lcore *lc, const struct dp_event *ev, uint8_t status, uint64_t lsn);

/** Owner: send the groups covered by the durable LSN, in order, in bursts. Returns the
 *  groups sent. A reply that can't be built or handed over is counted and dropped. */
unsigned dp_ack_release(struct dp_lcore *lc, uint64_t durable);

/** Rx loop: transmit the replies owners handed to this lcore (per-source credit and rate
 *  checked here). Returns packets sent. */
unsigned dp_ack_drain(struct dp_lcore *lc);

/** Rx: bytes received from a source, credited for replies to it. Can't fail. */
void dp_reply_credit(struct dp_lcore *lc, const uint8_t *addr, uint8_t family, uint32_t bytes);

/** Allocate / free an rx lcore's per-source reply table. 0 or -ENOMEM. */
int dp_reply_sources_init(struct dp_lcore *lc);
void dp_reply_sources_free(struct dp_lcore *lc);

/** Allocate / free every owner's queue of reply groups ([dataplane] ack_groups). 0 or
 *  -ENOMEM. */
int dp_ack_queues_init(struct dp_node *node);
void dp_ack_queues_free(struct dp_node *node);

#endif /* DP_ACK_H */
