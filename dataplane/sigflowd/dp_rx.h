/*
 * dp_rx.h — the receive side (dp_rx.c, dp_port.c): ports or the socket source, packets
 * classified, frames parsed and validated, each event hashed to its partition and staged
 * for its owner core's ring.
 */
#ifndef DP_RX_H
#define DP_RX_H

#include <stdint.h>

#include <rte_mbuf.h>

#include "dp.h"
#include "pkt.h"

/** Set up every configured port (queues, RSS, start). Returns 0 or -errno (logged). */
int dp_ports_init(struct dp_node *node);
void dp_ports_close(struct dp_node *node);

/** Open the socket source's per-lcore sockets. Returns 0 or -errno. */
int dp_socket_source_init(struct dp_node *node);

/** One rx pass over this lcore's queues or socket; returns the number of packets. */
unsigned dp_rx_poll(struct dp_lcore *lc);

/** Route one received UDP payload (a frame or JSON event) already in mbuf m, at data
 *  offset `off` with `len` bytes; req is the packet's classification (ethdev source: the
 *  replies are built from it) or NULL (socket source: the sender's sockaddr is in m's
 *  private area). Takes ownership of m; a malformed payload is counted and freed. Used by
 *  both rx sources, the pipeline benchmark and the fuzz target. */
void dp_rx_route_payload(struct dp_lcore *lc, struct rte_mbuf *m, uint16_t off, uint16_t len,
                         uint8_t port, uint8_t queue, uint64_t rx_ns, const struct pkt_info *req);

/** Push every staged event to its owner's ring (drops, counted, when a ring is full). */
void dp_rx_flush(struct dp_lcore *lc);

#endif /* DP_RX_H */
