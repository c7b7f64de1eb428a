/*
 * dp_senders.c — authenticated senders in the running node: where the key set comes from,
 * how a reload is published, the thread that keeps the counter lease ahead of the owners,
 * and the two per-frame hooks (rx: tag and authorization; owner: replay window). The
 * checks themselves are dp_auth.c's; docs/protocol.md §6 is the normative description.
 *
 * Keys: `[auth] keys = PATH`, else DIR/keys when that file exists, else none (frames are not
 * authenticated and AUTH frames are treated like others). With keys, every binary frame must
 * carry a valid tag of a known key, and the JSON form (which has no tag) is refused; a
 * refused frame gets no reply at all and is counted (stats: drops auth_*).
 *
 * Where (key id, counter) travel: the rx core writes them into the frame mbuf's private area
 * (bytes 32..47; a socket source's sockaddr uses bytes 0..27) before its events reach any
 * ring; the owner reads them for events flagged DP_EV_AUTHED. The mbuf is read-only then.
 *
 * Reload (`sigflowctl keys reload`, or SIGHUP): the lease thread loads the file, gives new
 * key ids a durable limit, publishes the new set with a release store, waits until every rx
 * core has passed through its loop (so none still reads the old set) and frees the old set.
 * A bad file leaves the running set in place, with the reason in the log and in stats.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_malloc.h>

#include "dp.h"
#include "dp_senders.h"
#include "dp_auth.h"

#define DP_AUTH_TICK_US  1000u
#define DP_AUTH_GRACE_MS 1000u /* longest wait for rx cores to leave an old key set */

static struct dp_auth_lease *dp_lease;
static pthread_t dp_auth_thread;
static volatile bool dp_auth_thread_quit, dp_auth_thread_running;
static volatile int dp_auth_reload_asked; /* SIGHUP or the control socket */
static char dp_auth_path[DP_PATH_MAX + 32];
static char dp_auth_last_error[512];
static volatile int dp_auth_last_result; /* of the last reload: 0, or -errno */
static volatile uint64_t dp_auth_reloads;

static uint64_t dp_auth_now_us(void)
{
    return dp_realtime_ns() / 1000u;
}

/* Wait until every rx lcore went once more through its loop (it then holds no pointer read
 * before we started). False after DP_AUTH_GRACE_MS (the caller then keeps the old set). */
static bool dp_auth_grace(struct dp_node *node)
{
    uint64_t seen[DP_LCORES_MAX];
    for (unsigned r = 0; r < node->rx_count; r++)
        seen[r] = __atomic_load_n(&node->rx_by_index[r]->counters[DP_C_POLLS], __ATOMIC_ACQUIRE);
    for (unsigned waited = 0; waited < DP_AUTH_GRACE_MS * 10; waited++) {
        bool all = true;
        for (unsigned r = 0; r < node->rx_count && all; r++)
            all = __atomic_load_n(&node->rx_by_index[r]->counters[DP_C_POLLS], __ATOMIC_ACQUIRE) >
                  seen[r] + 1;
        if (all || node->force_quit)
            return all;
        usleep(100);
    }
    return false;
}

static void dp_auth_reload_now(struct dp_node *node)
{
    struct dp_auth_keys *keys = NULL;
    char err[512];
    int rc = dp_auth_keys_load(dp_auth_path, &keys, err, sizeof(err));
    if (rc == 0) {
        rc = dp_auth_lease_add_keys(dp_lease, keys, dp_auth_now_us());
        if (rc < 0)
            snprintf(err, sizeof(err), "%s: lease: %s", dp_auth_path, strerror(-rc));
        else
            rc = 0;
    }
    if (rc != 0) {
        dp_auth_keys_free(keys);
        snprintf(dp_auth_last_error, sizeof(dp_auth_last_error), "%s", err);
        fprintf(stderr, "sigflowd: keys reload refused, the running keys stay: %s\n", err);
        dp_auth_last_result = rc;
        return;
    }
    struct dp_auth_keys *old = __atomic_exchange_n(&node->auth_keys, keys, __ATOMIC_ACQ_REL);
    if (dp_auth_grace(node))
        dp_auth_keys_free(old);
    /* else: an rx core did not come round in time (stopping?): the old set is kept (leaked)
     * rather than freed under it */
    dp_auth_last_error[0] = 0;
    dp_auth_last_result = 0;
    dp_auth_reloads++;
    fprintf(stderr, "sigflowd: keys reloaded: %u keys from %s\n", dp_auth_keys_count(keys),
            dp_auth_path);
}

static void *dp_auth_main(void *arg)
{
    struct dp_node *node = arg;
    while (!dp_auth_thread_quit) {
        if (__atomic_exchange_n(&dp_auth_reload_asked, 0, __ATOMIC_ACQ_REL))
            dp_auth_reload_now(node);
        if (dp_auth_lease_wanted(dp_lease)) {
            int rc = dp_auth_lease_extend(dp_lease);
            if (rc < 0)
                fprintf(stderr, "sigflowd: auth lease: %s (frames above the limit wait)\n",
                        strerror(-rc));
        }
        usleep(DP_AUTH_TICK_US);
    }
    return NULL;
}

int dp_senders_start(struct dp_node *node)
{
    const char *conf = node->cfg.auth_keys;
    if (conf[0])
        snprintf(dp_auth_path, sizeof(dp_auth_path), "%s", conf);
    else
        snprintf(dp_auth_path, sizeof(dp_auth_path), "%s/keys", node->cfg.dir);
    if (!conf[0] && access(dp_auth_path, F_OK) != 0)
        return 0; /* no keys: authentication not required */
    struct dp_auth_keys *keys = NULL;
    char err[512];
    int rc = dp_auth_keys_load(dp_auth_path, &keys, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "sigflowd: %s\n", err);
        return rc;
    }
    char lease_path[DP_PATH_MAX + 32];
    snprintf(lease_path, sizeof(lease_path), "%s/auth.lease", node->cfg.dir);
    rc = dp_auth_lease_open(lease_path, keys, dp_auth_now_us(), NULL, &dp_lease, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "sigflowd: %s\n", err);
        dp_auth_keys_free(keys);
        return rc;
    }
    for (unsigned o = 0; o < node->owner_count; o++) {
        struct dp_lcore *lc = node->owner_by_index[o];
        lc->auth_win = rte_zmalloc("dp_auth_win", sizeof(*lc->auth_win), RTE_CACHE_LINE_SIZE);
        if (!lc->auth_win)
            return -ENOMEM;
        dp_auth_window_table_init(lc->auth_win, dp_lease);
    }
    __atomic_store_n(&node->auth_keys, keys, __ATOMIC_RELEASE);
    dp_auth_thread_quit = false;
    rc = pthread_create(&dp_auth_thread, NULL, dp_auth_main, node);
    if (rc != 0)
        return -rc;
    dp_auth_thread_running = true;
    fprintf(stderr, "sigflowd: authentication required: %u keys from %s\n",
            dp_auth_keys_count(keys), dp_auth_path);
    return 0;
}

void dp_senders_stop(struct dp_node *node)
{
    if (dp_auth_thread_running) {
        dp_auth_thread_quit = true;
        pthread_join(dp_auth_thread, NULL);
        dp_auth_thread_running = false;
    }
    for (unsigned o = 0; o < node->owner_count; o++) {
        rte_free(node->owner_by_index[o]->auth_win);
        node->owner_by_index[o]->auth_win = NULL;
    }
    dp_auth_keys_free(__atomic_exchange_n(&node->auth_keys, NULL, __ATOMIC_ACQ_REL));
    dp_auth_lease_close(dp_lease);
    dp_lease = NULL;
}

int dp_senders_reload(void)
{
    if (!dp_auth_thread_running)
        return -ENOTSUP;
    uint64_t before = dp_auth_reloads;
    dp_auth_last_result = 1; /* pending */
    __atomic_store_n(&dp_auth_reload_asked, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 5000 && dp_auth_last_result == 1; i++)
        usleep(1000);
    if (dp_auth_last_result == 1)
        return -ETIMEDOUT;
    return dp_auth_reloads > before ? 0 : dp_auth_last_result;
}

void dp_senders_reload_async(void)
{
    dp_auth_reload_asked = 1;
}

const char *dp_senders_last_error(void)
{
    return dp_auth_last_error;
}

/* ---- per frame (rx) and per (frame, owner) -------------------------------------------- */

bool dp_senders_check_frame(struct dp_lcore *lc, const struct dp_auth_keys *keys,
                            struct rte_mbuf *m, const uint8_t *frame, uint16_t len,
                            const struct sf_frame_hdr *hdr, const struct sf_event_span *spans,
                            int n, const uint8_t *base, uint16_t off)
{
    const struct dp_auth_key *key = NULL;
    int v = dp_auth_verify(keys, frame, len, hdr, &key);
    if (v != DP_AUTH_OK) {
        lc->drop_auth[-v]++;
        return false;
    }
    for (int i = 0; i < n; i++) {
        const char *type = (const char *)base + off + spans[i].type_off;
        if (!dp_auth_allows(key, type, spans[i].type_len, type + spans[i].type_len,
                            spans[i].id_len)) {
            lc->drop_auth[DP_AUTH_DROP_FORBIDDEN]++;
            return false;
        }
    }
    struct dp_auth_priv *pv = &dp_mbuf_priv(m)->auth;
    pv->key_id = hdr->auth_key_id;
    pv->reserved = 0;
    pv->counter = hdr->auth_counter;
    return true;
}

bool dp_senders_check_event(struct dp_lcore *lc, const struct dp_event *ev)
{
    const struct dp_auth_priv *pv = &dp_mbuf_priv(ev->m)->auth;
    int v = dp_auth_window_check(lc->auth_win, ev->src_lcore, (uint64_t)ev->frame_no + 1,
                                 pv->key_id, pv->counter);
    if (v == DP_AUTH_WIN_FRESH)
        return true;
    lc->drop_auth[DP_AUTH_DROP_WINDOW - v]++;
    return false;
}

const char *dp_senders_drop_name(unsigned i)
{
    if (i < DP_AUTH_VERDICT_COUNT)
        return i == 0 ? "auth_forbidden" : dp_auth_verdict_name(-(int)i);
    if (i < DP_AUTH_DROPS)
        return dp_auth_window_verdict_name(-(int)(i - DP_AUTH_DROP_WINDOW));
    return "?";
}
