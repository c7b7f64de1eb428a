/*
 * dp_senders.h — authenticated senders (dp_senders.c): the key set, the rx core's tag
 * check, the owner's replay window, and the counter lease thread.
 */
#ifndef DP_SENDERS_H
#define DP_SENDERS_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "dp.h"
#include "sf_proto.h"

/** Load the key set ([auth] keys, else DIR/keys if present), open the counter lease and
 *  start its thread; nothing when there are no keys. 0 or -errno (reason printed). */
int dp_senders_start(struct dp_node *node);
void dp_senders_stop(struct dp_node *node);
/** Reload the key file now (control thread; waits for the result): 0, -ENOTSUP (no keys
 *  configured at start), -ETIMEDOUT or the load's -errno (dp_senders_last_error says why;
 *  the running keys stay). */
int dp_senders_reload(void);
/** Ask for a reload from a signal handler (async-signal-safe). */
void dp_senders_reload_async(void);
const char *dp_senders_last_error(void);
/** Rx: may this frame's events go on? Checks its tag and every event's authorization and
 *  stores (key id, counter) in m's private area. False: dropped (counted), no reply. */
bool dp_senders_check_frame(struct dp_lcore *lc, const struct dp_auth_keys *keys,
                            struct rte_mbuf *m, const uint8_t *frame, uint16_t len,
                            const struct sf_frame_hdr *hdr, const struct sf_event_span *spans,
                            int n, const uint8_t *base, uint16_t off);
/** Owner: the replay window for an authenticated event. False: refused (counted). */
bool dp_senders_check_event(struct dp_lcore *lc, const struct dp_event *ev);
/** Name of drop_auth[i] ("auth_bad_tag", ...). */
const char *dp_senders_drop_name(unsigned i);

#endif /* DP_SENDERS_H */
