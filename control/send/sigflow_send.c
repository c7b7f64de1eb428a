/*
 * sigflow-send — send sigflow events over kernel UDP: one event, a file, or a generated
 * fleet; optionally wait for ACKs and resend what is not acknowledged. `--help` is the
 * manual. docs/protocol.md describes the datagrams.
 *
 * With --ack every frame asks for ACKs (SF_FLAG_ACK_REQ) and stays in a bounded window of
 * in-flight frames (slot = frame_seq % window, so an ACK finds its frame in O(1)). An ACK
 * entry is matched by (sender_id, frame_seq, event_index) and checked against the event id.
 * A frame whose events are not all finally acknowledged when its timeout expires is
 * re-packed: its unacknowledged events (including those NACKed "overloaded") go out again
 * with the same event ids in a new frame with a new frame_seq, until --retries is reached.
 *
 * With --key-file/--key-id every frame is signed (sf_auth.h): SF_FLAG_AUTH, the key id, a
 * counter and the HMAC tag. The counter is the realtime clock in microseconds, raised to
 * last + 1 when the clock has not moved on (or stepped back), so it strictly increases in
 * this process and a restarted sender continues above its old counters. A re-packed frame
 * is a new frame: it gets a new counter and a new tag (the node's replay window would
 * refuse the old counter), while its events keep their ids (the node's dedupe).
 * --attack sends frames a node must refuse (forged, bit-flipped, replayed), for tests.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "send_source.h"
#include "sf_auth.h"
#include "sf_proto.h"

#define SEND_WINDOW_MAX       4096u /* frames in flight, upper bound of --window */
#define SEND_WINDOW_DEFAULT   256u
#define SEND_DGRAM_DEFAULT    1472u /* fits a 1500-byte MTU with IPv4 + UDP headers */
#define SEND_DGRAM_MIN        128u
#define SEND_RX_BURST         64u
#define SEND_RX_BUF_LEN       2048u
#define SEND_SEND_TRIES_MAX   1000u /* transient send errors (ENOBUFS, ...) per frame */
#define SEND_POLL_MS_MAX      50
#define SEND_JSON_LEN_MAX     SF_DATAGRAM_LEN_MAX
#define SEND_BURST_SECONDS    0.005   /* token bucket depth, in seconds of rate */
#define SEND_ATTACK_COUNT_MAX 100000u /* frames of one --attack run */

enum send_attack {
    SEND_ATTACK_NONE = 0,
    SEND_ATTACK_FORGED,  /* signed with a random key under --key-id: "bad tag" */
    SEND_ATTACK_BITFLIP, /* signed, then one bit flipped (a different bit each frame) */
    SEND_ATTACK_REPLAY,  /* one valid frame, then the same bytes again, count times */
};

struct send_opts {
    const char *host;
    const char *port;
    const char *type;
    const char *id;
    const char *signal;
    uint64_t event_id;
    struct send_value values[SEND_VALUES_MAX];
    unsigned n_values;
    bool json;
    const char *file;
    bool fleet_mode;
    struct send_fleet fleet;
    unsigned batch;
    double rate;
    uint32_t sender_id;
    bool ack;
    unsigned timeout_ms;
    unsigned retries;
    unsigned window;
    unsigned dgram_max;
    const char *malformed;
    const char *key_file;
    uint32_t key_id;
    bool sender_id_set;
    enum send_attack attack;
    unsigned attack_count;
    bool summary_json;
    bool verbose;
};

struct send_stats {
    uint64_t frames;
    uint64_t events;
    uint64_t acked;
    uint64_t statuses[SF_ACK_STATUS_COUNT];
    uint64_t resends;
    uint64_t unacked;
    uint64_t send_errors;
    uint64_t bad_acks;
    uint64_t stray_acks;
    /* ACK latency of events acknowledged on their first transmission (send → ACK) */
    uint64_t *lat_ns;
    uint64_t lat_count;
};

#define SEND_LATENCY_SAMPLES_MAX (1u << 22)

/* One frame in flight (ACK mode). */
struct send_slot {
    bool used;
    uint64_t frame_seq;
    uint64_t deadline_ns;
    uint64_t sent_ns;
    unsigned attempt; /* 0 for the first transmission */
    uint16_t count;
    uint64_t done_mask; /* events with a final status */
    uint64_t event_ids[SF_FRAME_EVENTS_MAX];
    size_t len;
    uint8_t dgram[SF_DATAGRAM_LEN_MAX];
};

struct send_ctx {
    const struct send_opts *o;
    int fd;
    struct send_stats st;
    uint64_t next_seq;
    struct send_slot *slots; /* o->window of them, ACK mode only */
    unsigned in_flight;
    /* token bucket (events) */
    double tokens;
    uint64_t tokens_ns;
    /* signing (--key-file): the key's HMAC state and the last counter used */
    bool auth;
    struct sf_auth_mac mac;
    uint64_t auth_counter;
};

static uint64_t send_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void send_sleep_ns(uint64_t ns)
{
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
                           .tv_nsec = (long)(ns % 1000000000ull) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- socket -------------------------------------------------------------------------- */

/* A UDP socket connected to host:port, so that only the node's replies are received. */
static int send_open_socket(const char *host, const char *port)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM };
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "sigflow-send: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -EINVAL;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "sigflow-send: cannot reach %s:%s: %s\n", host, port, strerror(errno));
        return -EIO;
    }
    int buf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf)); /* best effort */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    return fd;
}

/*
 * Send one datagram; transient errors (a full socket buffer, an ICMP "port unreachable"
 * reported on the connected socket) are retried after a short sleep. Returns 0 or -errno.
 */
static int send_datagram(struct send_ctx *c, const uint8_t *buf, size_t len)
{
    for (unsigned tries = 0; tries < SEND_SEND_TRIES_MAX; tries++) {
        ssize_t n = send(c->fd, buf, len, 0);
        if (n == (ssize_t)len)
            return 0;
        if (n >= 0)
            return -EMSGSIZE;
        int err = errno;
        if (err != EINTR && err != EAGAIN && err != ENOBUFS && err != ECONNREFUSED) {
            fprintf(stderr, "sigflow-send: send: %s\n", strerror(err));
            c->st.send_errors++;
            return -err;
        }
        if (err != EINTR)
            send_sleep_ns(100000);
    }
    c->st.send_errors++;
    return -EAGAIN;
}

/* ---- pacing -------------------------------------------------------------------------- */

/* Nanoseconds to wait before `events` may be sent (0: now). Refills the bucket. */
static uint64_t send_pace_wait_ns(struct send_ctx *c, unsigned events, uint64_t now)
{
    double rate = c->o->rate;
    if (rate <= 0)
        return 0;
    double burst = rate * SEND_BURST_SECONDS;
    if (burst < events)
        burst = events;
    c->tokens += (double)(now - c->tokens_ns) * rate / 1e9;
    if (c->tokens > burst)
        c->tokens = burst;
    c->tokens_ns = now;
    if (c->tokens >= events)
        return 0;
    return (uint64_t)((events - c->tokens) * 1e9 / rate) + 1;
}

static void send_pace_take(struct send_ctx *c, unsigned events)
{
    if (c->o->rate > 0)
        c->tokens -= events;
}

/* ---- ACKs ---------------------------------------------------------------------------- */

static void send_slot_release(struct send_ctx *c, struct send_slot *s)
{
    assert(s->used && c->in_flight > 0);
    s->used = false;
    c->in_flight--;
}

static void send_handle_ack(struct send_ctx *c, const uint8_t *buf, size_t len)
{
    struct sf_ack_hdr h;
    struct sf_ack_entry e[SF_ACK_ENTRIES_MAX];
    int n = sf_ack_decode(buf, len, &h, e, SF_ACK_ENTRIES_MAX);
    if (n < 0) {
        c->st.bad_acks++;
        return;
    }
    struct send_slot *s = &c->slots[h.frame_seq % c->o->window];
    if (h.sender_id != c->o->sender_id || !s->used || s->frame_seq != h.frame_seq) {
        c->st.stray_acks++; /* late ACK of a frame already re-packed or finished */
        return;
    }
    for (int i = 0; i < n; i++) {
        unsigned idx = e[i].event_index;
        if (idx >= s->count || s->event_ids[idx] != e[i].event_id) {
            c->st.stray_acks++;
            continue;
        }
        uint64_t bit = 1ull << idx;
        if (s->done_mask & bit)
            continue; /* repeated entry */
        if (e[i].status == SF_ACK_OVERLOADED) {
            c->st.statuses[SF_ACK_OVERLOADED]++; /* resent when the frame times out */
            continue;
        }
        s->done_mask |= bit;
        c->st.acked++;
        c->st.statuses[e[i].status]++;
        if (s->attempt == 0 && c->st.lat_ns && c->st.lat_count < SEND_LATENCY_SAMPLES_MAX)
            c->st.lat_ns[c->st.lat_count++] = send_mono_ns() - s->sent_ns;
    }
    uint64_t all = s->count == 64 ? ~0ull : (1ull << s->count) - 1;
    if (s->done_mask == all)
        send_slot_release(c, s);
}

/* Drain every datagram waiting on the socket. */
static void send_receive(struct send_ctx *c)
{
    static uint8_t bufs[SEND_RX_BURST][SEND_RX_BUF_LEN];
    struct mmsghdr msgs[SEND_RX_BURST];
    struct iovec iov[SEND_RX_BURST];
    for (;;) {
        for (unsigned i = 0; i < SEND_RX_BURST; i++) {
            iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = SEND_RX_BUF_LEN };
            msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
        }
        int n = recvmmsg(c->fd, msgs, SEND_RX_BURST, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return; /* EAGAIN, or ECONNREFUSED from an earlier send: nothing to read */
        for (int i = 0; i < n; i++) {
            if (c->slots != NULL)
                send_handle_ack(c, bufs[i], msgs[i].msg_len);
            else
                c->st.stray_acks++;
        }
        if ((unsigned)n < SEND_RX_BURST)
            return;
    }
}

/* ---- frames -------------------------------------------------------------------------- */

/* A free slot for a new frame: picks the next frame_seq whose slot is free. */
static struct send_slot *send_slot_take(struct send_ctx *c)
{
    assert(c->in_flight < c->o->window);
    for (;;) {
        uint64_t seq = c->next_seq++;
        struct send_slot *s = &c->slots[seq % c->o->window];
        if (s->used)
            continue; /* frame_seq values may skip; they stay increasing */
        s->used = true;
        s->frame_seq = seq;
        s->done_mask = 0;
        s->count = 0;
        s->attempt = 0;
        c->in_flight++;
        return s;
    }
}

/* Realtime in microseconds, but strictly above the last counter this process used. */
static uint64_t send_auth_next_counter(struct send_ctx *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_us = (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000u;
    c->auth_counter = now_us > c->auth_counter ? now_us : c->auth_counter + 1;
    assert(c->auth_counter != 0);
    return c->auth_counter;
}

static int send_frame_start(struct send_ctx *c, uint8_t *buf, uint64_t seq)
{
    struct sf_frame_hdr hdr = { .flags = (uint8_t)((c->o->ack ? SF_FLAG_ACK_REQ : 0) |
                                                   (c->auth ? SF_FLAG_AUTH : 0)),
                                .sender_id = c->o->sender_id,
                                .frame_seq = seq };
    if (c->auth) {
        hdr.auth_key_id = c->o->key_id;
        hdr.auth_counter = send_auth_next_counter(c);
    }
    int len = sf_frame_begin(buf, c->o->dgram_max, &hdr);
    assert(len == SF_FRAME_HDR_LEN);
    return len;
}

/* Transmit a finished frame (and arm its timeout in ACK mode). */
static int send_frame_out(struct send_ctx *c, uint8_t *buf, size_t len, unsigned events,
                          struct send_slot *s)
{
    int total = sf_frame_end(buf, c->o->dgram_max, len);
    assert(total > 0);
    if (c->auth) {
        int rc = sf_auth_frame_sign(&c->mac, buf, (size_t)total);
        assert(rc == 0); /* send_frame_start set the flag; a frame has a header and a tag */
        (void)rc;
    }
    if (c->o->verbose)
        fprintf(stderr, "sigflow-send: frame of %u events, %d bytes\n", events, total);
    int rc = send_datagram(c, buf, (size_t)total);
    if (rc < 0)
        return rc;
    c->st.frames++;
    if (s != NULL) {
        s->len = (size_t)total;
        s->sent_ns = send_mono_ns();
        s->deadline_ns = s->sent_ns + (uint64_t)c->o->timeout_ms * 1000000ull;
    }
    return 0;
}

/*
 * Re-pack the unacknowledged events of slot `old` into a new frame (same event ids), or
 * give up on them after --retries. Returns 0 or a send error.
 */
static int send_resend(struct send_ctx *c, struct send_slot *old)
{
    uint64_t all = old->count == 64 ? ~0ull : (1ull << old->count) - 1;
    unsigned missing = (unsigned)__builtin_popcountll(all & ~old->done_mask);
    assert(missing > 0);
    if (old->attempt >= c->o->retries) {
        c->st.unacked += missing;
        send_slot_release(c, old);
        return 0;
    }
    static struct sf_event evs[SF_FRAME_EVENTS_MAX];
    static uint8_t copy[SF_DATAGRAM_LEN_MAX];
    struct sf_frame_hdr hdr;
    memcpy(copy, old->dgram, old->len); /* the slot may be reused for the new frame */
    int n = sf_datagram_parse(copy, old->len, &hdr, evs, SF_FRAME_EVENTS_MAX);
    assert(n == old->count);
    uint64_t done = old->done_mask;
    unsigned attempt = old->attempt + 1;
    send_slot_release(c, old);

    struct send_slot *s = send_slot_take(c);
    s->attempt = attempt;
    int len = send_frame_start(c, s->dgram, s->frame_seq);
    for (int i = 0; i < n; i++) {
        if (done & (1ull << i))
            continue;
        len = sf_frame_add_event(s->dgram, c->o->dgram_max, (size_t)len, &evs[i]);
        assert(len > 0); /* a subset of a frame that fitted */
        s->event_ids[s->count++] = evs[i].event_id;
    }
    assert(s->count == missing);
    c->st.resends += missing;
    return send_frame_out(c, s->dgram, (size_t)len, missing, s);
}

/* Resend (or give up on) every frame past its deadline. Returns 0 or a send error. */
static int send_check_timeouts(struct send_ctx *c, uint64_t now, uint64_t *next_deadline)
{
    *next_deadline = UINT64_MAX;
    for (unsigned i = 0; i < c->o->window; i++) {
        struct send_slot *s = &c->slots[i];
        if (!s->used)
            continue;
        if (s->deadline_ns <= now) {
            int rc = send_resend(c, s);
            if (rc < 0)
                return rc;
        }
    }
    for (unsigned i = 0; i < c->o->window; i++) {
        if (c->slots[i].used && c->slots[i].deadline_ns < *next_deadline)
            *next_deadline = c->slots[i].deadline_ns;
    }
    return 0;
}

/* ---- the main loop ------------------------------------------------------------------- */

/*
 * Fill one frame from the source: up to --batch events and as many as fit the datagram.
 * *carry holds an event that did not fit the previous frame. Returns the event count
 * (0: source exhausted) or a negative error from the source.
 */
static int send_fill_frame(struct send_ctx *c, struct send_source *src, uint8_t *buf, int *len,
                           struct send_event *carry, bool *have_carry, uint64_t *ids)
{
    unsigned n = 0;
    while (n < c->o->batch) {
        if (!*have_carry) {
            int rc = send_source_next(src, carry);
            if (rc < 0)
                return rc;
            if (rc == 0)
                break;
            *have_carry = true;
        }
        int nl = sf_frame_add_event(buf, c->o->dgram_max, (size_t)*len, &carry->ev);
        if (nl == SF_ERR_NO_SPACE && n > 0)
            break; /* goes into the next frame */
        if (nl < 0) {
            fprintf(stderr, "sigflow-send: event does not fit a %u-byte datagram: %s\n",
                    c->o->dgram_max, sf_err_name(nl));
            return -EMSGSIZE;
        }
        *len = nl;
        *have_carry = false;
        if (ids != NULL)
            ids[n] = carry->ev.event_id;
        n++;
    }
    return (int)n;
}

/* Wait for ACKs, a deadline or the pacer, at most wait_ns. */
static void send_wait(struct send_ctx *c, uint64_t wait_ns)
{
    if (c->slots == NULL) {
        send_sleep_ns(wait_ns);
        return;
    }
    int ms = (int)((wait_ns + 999999) / 1000000);
    if (ms > SEND_POLL_MS_MAX)
        ms = SEND_POLL_MS_MAX;
    if (wait_ns < 1000000) { /* below poll's resolution: sleep, then look for ACKs */
        send_sleep_ns(wait_ns);
        ms = 0;
    }
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    poll(&p, 1, ms);
}

static int send_run(struct send_ctx *c, struct send_source *src)
{
    static uint8_t plain[SF_DATAGRAM_LEN_MAX];
    static struct send_event carry;
    bool have_carry = false;
    bool source_done = false;
    c->tokens_ns = send_mono_ns();
    while (!source_done || c->in_flight > 0) {
        uint64_t now = send_mono_ns();
        uint64_t next_deadline = UINT64_MAX;
        if (c->slots != NULL) {
            send_receive(c);
            int rc = send_check_timeouts(c, now, &next_deadline);
            if (rc < 0)
                return rc;
        }
        if (source_done || (c->slots != NULL && c->in_flight >= c->o->window)) {
            if (c->in_flight > 0)
                send_wait(c, next_deadline > now ? next_deadline - now : 0);
            continue;
        }
        uint64_t pace = send_pace_wait_ns(c, c->o->batch, now);
        if (pace > 0) {
            uint64_t until_deadline = next_deadline > now ? next_deadline - now : 0;
            send_wait(c, pace < until_deadline ? pace : until_deadline);
            continue;
        }
        struct send_slot *s = c->slots != NULL ? send_slot_take(c) : NULL;
        uint8_t *buf = s != NULL ? s->dgram : plain;
        int len = send_frame_start(c, buf, s != NULL ? s->frame_seq : c->next_seq++);
        int n = send_fill_frame(c, src, buf, &len, &carry, &have_carry,
                                s != NULL ? s->event_ids : NULL);
        if (n <= 0) {
            if (s != NULL)
                send_slot_release(c, s);
            if (n < 0)
                return n;
            source_done = true;
            continue;
        }
        if (s != NULL)
            s->count = (uint16_t)n;
        send_pace_take(c, (unsigned)n);
        c->st.events += (uint64_t)n;
        int rc = send_frame_out(c, buf, (size_t)len, (unsigned)n, s);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- JSON form and malformed datagrams ----------------------------------------------- */

/* Append s as a JSON string body (escaped) to out; returns the new length or -1. */
static int send_json_str(char *out, size_t cap, size_t len, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        int w;
        if (ch == '"' || ch == '\\')
            w = snprintf(out + len, cap - len, "\\%c", ch);
        else if (ch < 0x20)
            w = snprintf(out + len, cap - len, "\\u%04x", ch);
        else
            w = snprintf(out + len, cap - len, "%c", ch);
        if (w < 0 || (size_t)w >= cap - len)
            return -1;
        len += (size_t)w;
    }
    return (int)len;
}

/* Build the JSON convenience form of one event. Returns its length or -1 (too long). */
static int send_build_json(char *out, size_t cap, const struct send_opts *o, uint64_t event_id)
{
    int len = snprintf(out, cap,
                       "{\"type\":\"%s\",\"id\":\"%s\",\"signal\":\"%s\",\"event_id\":%" PRIu64
                       ",\"fields\":{",
                       o->type, o->id, o->signal, event_id);
    for (unsigned i = 0; i < o->n_values && len > 0 && (size_t)len < cap; i++) {
        const struct send_value *v = &o->values[i];
        char name[16];
        const char *nm = v->name;
        if (nm[0] == '\0') {
            snprintf(name, sizeof(name), "f%u", i);
            nm = name;
        }
        len += snprintf(out + len, cap - (size_t)len, "%s\"%s\":", i ? "," : "", nm);
        if ((size_t)len >= cap)
            return -1;
        switch (v->value.type) {
        case SF_VAL_INT:
            len += snprintf(out + len, cap - (size_t)len, "%" PRId64, v->value.i);
            break;
        case SF_VAL_FLOAT:
            len += snprintf(out + len, cap - (size_t)len, "%.17g", v->value.f);
            break;
        case SF_VAL_BOOL:
            len += snprintf(out + len, cap - (size_t)len, "%s", v->value.b ? "true" : "false");
            break;
        case SF_VAL_NULL:
            len += snprintf(out + len, cap - (size_t)len, "null");
            break;
        case SF_VAL_TEXT:
            len += snprintf(out + len, cap - (size_t)len, "\"");
            if ((size_t)len >= cap)
                return -1;
            len = send_json_str(out, cap, (size_t)len, v->value.text.ptr, v->value.text.len);
            if (len < 0)
                return -1;
            len += snprintf(out + len, cap - (size_t)len, "\"");
            break;
        }
    }
    if (len < 0 || (size_t)len >= cap)
        return -1;
    len += snprintf(out + len, cap - (size_t)len, "}}");
    return (size_t)len < cap ? len : -1;
}

struct send_malformed_kind {
    const char *name;
    const char *alias; /* the sf_err_name of the counter it increments */
    int expect;
};

static const struct send_malformed_kind send_malformed_kinds[] = {
    { "empty", "empty", SF_ERR_EMPTY },
    { "bad_magic", "bad_magic", SF_ERR_BAD_MAGIC },
    { "bad_version", "bad_version", SF_ERR_BAD_VERSION },
    { "trunc_header", "truncated_header", SF_ERR_TRUNC_HEADER },
    { "bad_header_len", "bad_header_len", SF_ERR_BAD_HEADER_LEN },
    { "bad_flags", "bad_flags", SF_ERR_BAD_FLAGS },
    { "bad_count", "bad_count", SF_ERR_BAD_COUNT },
    { "trunc_event", "truncated_event", SF_ERR_TRUNC_EVENT },
    { "bad_event_len", "bad_event_len", SF_ERR_BAD_EVENT_LEN },
    { "bad_name", "bad_name", SF_ERR_BAD_NAME },
    { "bad_fields", "bad_fields", SF_ERR_BAD_FIELDS },
    { "trailing", "trailing_bytes", SF_ERR_TRAILING },
    { "too_long", "too_long", SF_ERR_TOO_LONG },
    { "bad_json", "bad_json", SF_ERR_BAD_JSON },
    { "json_missing", "json_missing_key", SF_ERR_JSON_MISSING },
    { "too_many_fields", "too_many_fields", SF_ERR_TOO_MANY_FIELDS },
    { "fields_too_long", "fields_too_long", SF_ERR_FIELDS_TOO_LONG },
};

/*
 * Build the malformed datagram `kind` from a valid one-event frame (or JSON text). Returns
 * its length, or -1 for an unknown kind. The result is checked against the parser.
 */
static int send_build_malformed(uint8_t *b, size_t cap, const struct send_opts *o, const char *kind)
{
    const struct send_malformed_kind *k = NULL;
    for (size_t i = 0; i < sizeof(send_malformed_kinds) / sizeof(send_malformed_kinds[0]); i++) {
        if (strcmp(kind, send_malformed_kinds[i].name) == 0 ||
            strcmp(kind, send_malformed_kinds[i].alias) == 0)
            k = &send_malformed_kinds[i];
    }
    if (k == NULL)
        return -1;
    assert(cap > SF_DATAGRAM_LEN_MAX);
    int len;
    if (k->expect == SF_ERR_BAD_JSON || k->expect == SF_ERR_JSON_MISSING ||
        k->expect == SF_ERR_TOO_MANY_FIELDS || k->expect == SF_ERR_FIELDS_TOO_LONG) {
        char *t = (char *)b;
        if (k->expect == SF_ERR_FIELDS_TOO_LONG) {
            /* one text field of 1300 bytes: more than a binary event's fields may hold */
            len = snprintf(t, cap,
                           "{\"type\":\"%s\",\"id\":\"%s\",\"signal\":\"%s\","
                           "\"fields\":{\"v\":\"%01300d\"}}",
                           o->type, o->id, o->signal, 0);
        } else if (k->expect == SF_ERR_BAD_JSON)
            len = snprintf(t, cap, "{\"type\":\"%s\",\"id\":\"%s\",", o->type, o->id);
        else if (k->expect == SF_ERR_JSON_MISSING)
            len = snprintf(t, cap, "{\"type\":\"%s\",\"id\":\"%s\"}", o->type, o->id);
        else {
            len = snprintf(t, cap, "{\"type\":\"%s\",\"id\":\"%s\",\"signal\":\"%s\",\"fields\":{",
                           o->type, o->id, o->signal);
            for (unsigned i = 0; i <= SF_JSON_FIELDS_MAX; i++)
                len += snprintf(t + len, cap - (size_t)len, "%s\"f%u\":%u", i ? "," : "", i, i);
            len += snprintf(t + len, cap - (size_t)len, "}}");
        }
    } else {
        struct sf_frame_hdr hdr = { .sender_id = o->sender_id, .frame_seq = 1 };
        static const uint8_t fields[] = { 0x81, 0x01 }; /* [1] */
        struct sf_event ev = { .type = o->type,
                               .type_len = (uint8_t)strlen(o->type),
                               .id = o->id,
                               .id_len = (uint8_t)strlen(o->id),
                               .signal = o->signal,
                               .signal_len = (uint8_t)strlen(o->signal),
                               .fields = fields,
                               .fields_len = sizeof(fields),
                               .event_id = o->event_id ? o->event_id : 1 };
        len = sf_frame_begin(b, cap, &hdr);
        len = sf_frame_add_event(b, cap, (size_t)len, &ev);
        assert(len > 0);
        size_t ev0 = SF_FRAME_HDR_LEN;
        switch (k->expect) {
        case SF_ERR_EMPTY:
            len = 0;
            break;
        case SF_ERR_BAD_MAGIC:
            b[0] = 'X';
            break;
        case SF_ERR_BAD_VERSION:
            b[2] = SF_PROTO_VERSION + 1;
            break;
        case SF_ERR_TRUNC_HEADER:
            len = 20;
            break;
        case SF_ERR_BAD_HEADER_LEN:
            b[18] = 24;
            break;
        case SF_ERR_BAD_FLAGS:
            b[3] = 0x40;
            break;
        case SF_ERR_BAD_COUNT:
            b[16] = 0;
            break;
        case SF_ERR_TRUNC_EVENT:
            len -= 1;
            break;
        case SF_ERR_BAD_EVENT_LEN:
            b[ev0] = (uint8_t)(b[ev0] + 1); /* event_len > its parts (short events) */
            break;
        case SF_ERR_BAD_NAME:
            b[ev0 + SF_EVENT_HDR_LEN] = ' '; /* first byte of the type */
            break;
        case SF_ERR_BAD_FIELDS:
            b[len - 1] = 0x80; /* [1] becomes [[]] */
            break;
        case SF_ERR_TRAILING:
            b[len++] = 0;
            break;
        case SF_ERR_TOO_LONG:
            memset(b + len, 0, SF_DATAGRAM_LEN_MAX + 1 - (size_t)len);
            len = SF_DATAGRAM_LEN_MAX + 1;
            break;
        }
    }
    struct sf_frame_hdr hdr;
    struct sf_event evs[1];
    int got = sf_datagram_parse(b, (size_t)len, &hdr, evs, 1);
    if (got != k->expect) {
        fprintf(stderr, "sigflow-send: malformed %s parses as %s (names too long?)\n", kind,
                sf_err_name(got));
        return -2;
    }
    return len;
}

/* ---- authentication: keys and attacks ------------------------------------------------ */

/*
 * Load key --key-id from --key-file into c->mac (the file's rules: sf_auth_keyfile_read). A
 * key bound to a sender gives its sender_id unless --sender-id named another (refused).
 * Returns 0, or 1 (reason printed) / EX_USAGE.
 */
static int send_auth_load(struct send_ctx *c, struct send_opts *o)
{
    char err[SF_AUTH_ERR_LEN];
    struct sf_auth_key_spec *specs = calloc(SF_AUTH_KEYFILE_KEYS_MAX, sizeof(*specs));
    if (specs == NULL) {
        fprintf(stderr, "sigflow-send: out of memory\n");
        return 1;
    }
    int n = sf_auth_keyfile_load(o->key_file, specs, SF_AUTH_KEYFILE_KEYS_MAX, err, sizeof(err));
    int status = 1;
    if (n < 0) {
        fprintf(stderr, "sigflow-send: %s\n", err);
        goto out_free;
    }
    const struct sf_auth_key_spec *spec = NULL;
    for (int i = 0; i < n; i++)
        if (specs[i].id == o->key_id)
            spec = &specs[i];
    if (spec == NULL) {
        fprintf(stderr, "sigflow-send: %s: no key %u\n", o->key_file, o->key_id);
        goto out_free;
    }
    if (spec->sender_set && o->sender_id_set && spec->sender_id != o->sender_id) {
        fprintf(stderr, "sigflow-send: key %u is bound to sender %u, not --sender-id %u\n",
                o->key_id, spec->sender_id, o->sender_id);
        status = EX_USAGE;
        goto out_free;
    }
    if (spec->sender_set)
        o->sender_id = spec->sender_id;
    sf_auth_mac_init(&c->mac, spec->key, sizeof(spec->key));
    c->auth = true;
    status = 0;
out_free:
    sf_auth_specs_clear(specs, SF_AUTH_KEYFILE_KEYS_MAX);
    free(specs);
    return status;
}

/* One signed (or, for forged, mis-signed) frame of the one event, event id `event_id`. */
static int send_attack_frame(struct send_ctx *c, uint8_t *buf, uint64_t event_id,
                             const struct sf_auth_mac *mac)
{
    const struct send_opts *o = c->o;
    static const uint8_t no_fields[] = { 0x80 }; /* [] */
    uint8_t fields[SF_FIELDS_LEN_MAX];
    struct sf_value vals[SEND_VALUES_MAX];
    for (unsigned i = 0; i < o->n_values; i++)
        vals[i] = o->values[i].value;
    int flen = o->n_values > 0 ? sf_fields_encode(fields, sizeof(fields), vals, o->n_values) : 0;
    if (flen < 0)
        return flen;
    struct sf_event ev = { .type = o->type,
                           .type_len = (uint8_t)strlen(o->type),
                           .id = o->id,
                           .id_len = (uint8_t)strlen(o->id),
                           .signal = o->signal,
                           .signal_len = (uint8_t)strlen(o->signal),
                           .event_id = event_id,
                           .fields = flen > 0 ? fields : no_fields,
                           .fields_len = (uint16_t)(flen > 0 ? (size_t)flen : sizeof(no_fields)) };
    int len = send_frame_start(c, buf, c->next_seq++);
    len = sf_frame_add_event(buf, o->dgram_max, (size_t)len, &ev);
    if (len < 0)
        return len;
    len = sf_frame_end(buf, o->dgram_max, (size_t)len);
    if (len < 0)
        return len;
    int rc = sf_auth_frame_sign(mac, buf, (size_t)len);
    assert(rc == 0);
    (void)rc;
    return len;
}

/*
 * --attack: forged and bitflip send attack_count frames, each with its own event id (so a
 * frame wrongly accepted shows as an applied event); replay sends one valid frame and then
 * the same bytes attack_count times. Returns the exit status.
 */
static int send_attack_run(struct send_ctx *c)
{
    const struct send_opts *o = c->o;
    static uint8_t buf[SF_DATAGRAM_LEN_MAX];
    struct sf_auth_mac forger;
    uint8_t random_key[SF_AUTH_KEY_LEN];
    if (RAND_bytes(random_key, sizeof(random_key)) != 1) {
        fprintf(stderr, "sigflow-send: no random bytes for a forged key\n");
        return 1;
    }
    sf_auth_mac_init(&forger, random_key, sizeof(random_key));
    OPENSSL_cleanse(random_key, sizeof(random_key));
    uint64_t event_id = o->event_id;
    if (event_id == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        event_id = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
    int len = 0;
    unsigned frames = o->attack == SEND_ATTACK_REPLAY ? o->attack_count + 1 : o->attack_count;
    for (unsigned i = 0; i < frames; i++) {
        if (o->attack != SEND_ATTACK_REPLAY || i == 0) {
            len = send_attack_frame(c, buf, event_id + i,
                                    o->attack == SEND_ATTACK_FORGED ? &forger : &c->mac);
            if (len < 0) {
                fprintf(stderr, "sigflow-send: event does not fit: %s\n", sf_err_name(len));
                return EX_USAGE;
            }
        }
        if (o->attack == SEND_ATTACK_BITFLIP) {
            size_t bit = ((size_t)i * 7919u) % ((size_t)len * 8); /* spread over the frame */
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        if (send_datagram(c, buf, (size_t)len) < 0)
            return 1;
        c->st.frames++;
        c->st.events++;
        if (o->verbose)
            fprintf(stderr, "sigflow-send: attack frame %u, %d bytes\n", i, len);
    }
    sf_auth_mac_clear(&forger);
    return 0;
}

/* ---- command line -------------------------------------------------------------------- */

static void send_usage(FILE *f)
{
    fprintf(
        f,
        "usage: sigflow-send [--host H] [--port P] MODE [OPTIONS]\n"
        "\n"
        "Send sigflow events over UDP (docs/protocol.md). Modes:\n"
        "  one event   -t TYPE -i ID -s SIGNAL [-e EVENT_ID] [-f VALUE]... [--json]\n"
        "  file        --file F      one event per line: TYPE ID SIGNAL EVENT_ID [VALUE...],\n"
        "                            '#' starts a comment; '-' reads stdin\n"
        "  fleet       --fleet N --rounds R   workflows PREFIX%%06d, i in [first, first+N); round "
        "r\n"
        "                            sends one event to each, event_id = B + r*N + (i-first) + 1,\n"
        "                            one int field r\n"
        "  malformed   --malformed KIND   one deliberately malformed datagram (below)\n"
        "  attack      --attack KIND [--attack-count N]   frames a node with keys must refuse\n"
        "\n"
        "Target:\n"
        "  --host H             node address or name (default 198.18.0.2)\n"
        "  --port P             UDP port (default 7700)\n"
        "One event:\n"
        "  -t, --type TYPE      workflow type ([A-Za-z0-9_.-], <= 32 bytes)\n"
        "  -i, --id ID          workflow id (<= 64 bytes)\n"
        "  -s, --signal SIGNAL  signal name ([A-Za-z0-9_.-], <= 32 bytes)\n"
        "  -e, --event-id N     event id (default: nanoseconds since the epoch, i.e. increasing)\n"
        "  -f, --field VALUE    a field value, in declaration order, typed by syntax: 12 int,\n"
        "                       1.5 / 1e3 float, true/false bool, anything else text;\n"
        "                       NAME=VALUE names it (names are used only by --json; unnamed\n"
        "                       fields are called f0, f1, ...). Up to %u.\n"
        "  --json               send the JSON convenience form instead of a binary frame\n"
        "Fleet:\n"
        "  --type T (device)  --signal S (telemetry)  --prefix P (sensor-)  --first N (0)\n"
        "  --event-id-base B (0)\n"
        "Framing and pacing (file, fleet):\n"
        "  --batch K            events per frame, 1..%u (default 16; 1 for one event)\n"
        "  --max-datagram N     bytes per datagram, %u..%u (default %u); a frame ends early when "
        "full\n"
        "  --rate R             events per second (token bucket, sleeps when ahead; default:\n"
        "                       unlimited)\n"
        "  --sender-id S        sender id in every frame header (default: the process id)\n"
        "Authentication (docs/protocol.md section 6):\n"
        "  --key-file F         key file: 'key ID HEX64 [types=..] [prefix=..] [sender=..]'\n"
        "                       lines; mode 0600 or stricter, owned by root or the user\n"
        "  --key-id N           sign every frame with key N (a key bound to a sender sets\n"
        "                       --sender-id); counters are realtime microseconds, strictly\n"
        "                       increasing; a resend is signed anew with a new counter\n"
        "  --attack KIND        forged: signed with a random key under --key-id (default 1);\n"
        "                       bitflip: signed, then one bit flipped, another bit each frame;\n"
        "                       replay: one valid frame, then the same bytes --attack-count\n"
        "                       times (bitflip and replay need --key-file); the event is -t/-i/-s\n"
        "                       (default device sensor-1 telemetry), event ids from -e up\n"
        "  --attack-count N     frames (forged, bitflip) or replays, 1..%u (default 1)\n"
        "Acknowledgements:\n"
        "  --ack                ask for ACKs and resend unacknowledged events (same event ids,\n"
        "                       new frame) after the timeout; events NACKed 'overloaded' too\n"
        "  --timeout-ms MS      per frame (default 200)\n"
        "  --retries N          resends per event before giving up (default 10)\n"
        "  --window N           frames in flight, 1..%u (default %u)\n"
        "Output:\n"
        "  --summary-json       print one JSON line at the end: {\"frames\":..,\"events\":..,\n"
        "                       \"acked\":..,\"statuses\":{\"applied\":..,...},\"resends\":..,\n"
        "                       "
        "\"unacked\":..,\"send_errors\":..,\"bad_acks\":..,\"stray_acks\":..}\n"
        "  -v, --verbose        one line per frame on stderr\n"
        "  -h, --help           this text\n"
        "\n"
        "Malformed kinds (each increments the node's drop counter of the same name; the\n"
        "counter names of sf_err_name are accepted too): empty, bad_magic, bad_version,\n"
        "trunc_header, bad_header_len, bad_flags, bad_count, trunc_event, bad_event_len,\n"
        "bad_name, bad_fields, trailing, too_long (9001 bytes: fragmented on a 1500-byte MTU),\n"
        "bad_json, json_missing, too_many_fields, fields_too_long.\n"
        "\n"
        "Exit status: 0 when every event was sent (and, with --ack, acknowledged with any\n"
        "status: see the summary's statuses), 1 otherwise, 64 for usage errors.\n",
        SEND_VALUES_MAX, SF_FRAME_EVENTS_MAX, SEND_DGRAM_MIN, SF_DATAGRAM_LEN_MAX,
        SEND_DGRAM_DEFAULT, SEND_ATTACK_COUNT_MAX, SEND_WINDOW_MAX, SEND_WINDOW_DEFAULT);
}

static bool send_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (*s == '\0' || *s == '-')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end != '\0' || errno != 0 || v > max)
        return false;
    *out = v;
    return true;
}

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_JSON,
    OPT_FILE,
    OPT_FLEET,
    OPT_ROUNDS,
    OPT_PREFIX,
    OPT_FIRST,
    OPT_BATCH,
    OPT_RATE,
    OPT_SENDER_ID,
    OPT_EVENT_ID_BASE,
    OPT_ACK,
    OPT_TIMEOUT_MS,
    OPT_RETRIES,
    OPT_WINDOW,
    OPT_MAX_DGRAM,
    OPT_MALFORMED,
    OPT_SUMMARY,
    OPT_KEY_FILE,
    OPT_KEY_ID,
    OPT_ATTACK,
    OPT_ATTACK_COUNT,
};

static const struct option send_long_opts[] = {
    { "host", required_argument, NULL, OPT_HOST },
    { "port", required_argument, NULL, OPT_PORT },
    { "type", required_argument, NULL, 't' },
    { "id", required_argument, NULL, 'i' },
    { "signal", required_argument, NULL, 's' },
    { "event-id", required_argument, NULL, 'e' },
    { "field", required_argument, NULL, 'f' },
    { "json", no_argument, NULL, OPT_JSON },
    { "file", required_argument, NULL, OPT_FILE },
    { "fleet", required_argument, NULL, OPT_FLEET },
    { "rounds", required_argument, NULL, OPT_ROUNDS },
    { "prefix", required_argument, NULL, OPT_PREFIX },
    { "first", required_argument, NULL, OPT_FIRST },
    { "batch", required_argument, NULL, OPT_BATCH },
    { "rate", required_argument, NULL, OPT_RATE },
    { "sender-id", required_argument, NULL, OPT_SENDER_ID },
    { "event-id-base", required_argument, NULL, OPT_EVENT_ID_BASE },
    { "ack", no_argument, NULL, OPT_ACK },
    { "timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS },
    { "retries", required_argument, NULL, OPT_RETRIES },
    { "window", required_argument, NULL, OPT_WINDOW },
    { "max-datagram", required_argument, NULL, OPT_MAX_DGRAM },
    { "malformed", required_argument, NULL, OPT_MALFORMED },
    { "summary-json", no_argument, NULL, OPT_SUMMARY },
    { "key-file", required_argument, NULL, OPT_KEY_FILE },
    { "key-id", required_argument, NULL, OPT_KEY_ID },
    { "attack", required_argument, NULL, OPT_ATTACK },
    { "attack-count", required_argument, NULL, OPT_ATTACK_COUNT },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* Print a usage error; returns EX_USAGE for the caller to return. */
__attribute__((format(printf, 1, 2))) static int send_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sigflow-send: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(see sigflow-send --help)\n", stderr);
    return EX_USAGE;
}

/* Parse argv into *o. Returns 0, EX_USAGE, or -1 for --help (exit 0). */
static int send_parse_args(int argc, char **argv, struct send_opts *o)
{
    *o = (struct send_opts){ .host = "198.18.0.2",
                             .port = "7700",
                             .timeout_ms = 200,
                             .retries = 10,
                             .window = SEND_WINDOW_DEFAULT,
                             .dgram_max = SEND_DGRAM_DEFAULT,
                             .sender_id = (uint32_t)getpid(),
                             .fleet = {
                                 .type = "device", .signal = "telemetry", .prefix = "sensor-" } };
    bool have_rounds = false;
    int opt;
    uint64_t v;
    while ((opt = getopt_long(argc, argv, "t:i:s:e:f:vh", send_long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_HOST:
            o->host = optarg;
            break;
        case OPT_PORT:
            if (!send_parse_u64(optarg, 65535, &v) || v == 0)
                return send_usage_error("bad --port '%s'", optarg);
            o->port = optarg;
            break;
        case 't':
            o->type = optarg;
            o->fleet.type = optarg;
            break;
        case 'i':
            o->id = optarg;
            break;
        case 's':
            o->signal = optarg;
            o->fleet.signal = optarg;
            break;
        case 'e':
            if (!send_parse_u64(optarg, UINT64_MAX, &o->event_id))
                return send_usage_error("bad --event-id '%s'", optarg);
            break;
        case 'f':
            if (o->n_values == SEND_VALUES_MAX)
                return send_usage_error("more than %u fields", SEND_VALUES_MAX);
            send_value_parse(optarg, true, &o->values[o->n_values++]);
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_FILE:
            o->file = optarg;
            break;
        case OPT_FLEET:
            if (!send_parse_u64(optarg, 100000000, &o->fleet.count) || o->fleet.count == 0)
                return send_usage_error("bad --fleet '%s' (1..100000000)", optarg);
            o->fleet_mode = true;
            break;
        case OPT_ROUNDS:
            if (!send_parse_u64(optarg, 1000000000, &o->fleet.rounds))
                return send_usage_error("bad --rounds '%s'", optarg);
            have_rounds = true;
            break;
        case OPT_PREFIX:
            o->fleet.prefix = optarg;
            break;
        case OPT_FIRST:
            if (!send_parse_u64(optarg, UINT32_MAX, &o->fleet.first))
                return send_usage_error("bad --first '%s'", optarg);
            break;
        case OPT_BATCH:
            if (!send_parse_u64(optarg, SF_FRAME_EVENTS_MAX, &v) || v == 0)
                return send_usage_error("bad --batch '%s' (1..%u)", optarg, SF_FRAME_EVENTS_MAX);
            o->batch = (unsigned)v;
            break;
        case OPT_RATE: {
            char *end;
            o->rate = strtod(optarg, &end);
            if (*end != '\0' || !(o->rate > 0) || o->rate > 1e9)
                return send_usage_error("bad --rate '%s' (events per second)", optarg);
            break;
        }
        case OPT_SENDER_ID:
            if (!send_parse_u64(optarg, UINT32_MAX, &v))
                return send_usage_error("bad --sender-id '%s'", optarg);
            o->sender_id = (uint32_t)v;
            o->sender_id_set = true;
            break;
        case OPT_EVENT_ID_BASE:
            if (!send_parse_u64(optarg, UINT64_MAX / 2, &o->fleet.event_id_base))
                return send_usage_error("bad --event-id-base '%s'", optarg);
            break;
        case OPT_ACK:
            o->ack = true;
            break;
        case OPT_TIMEOUT_MS:
            if (!send_parse_u64(optarg, 3600000, &v) || v == 0)
                return send_usage_error("bad --timeout-ms '%s'", optarg);
            o->timeout_ms = (unsigned)v;
            break;
        case OPT_RETRIES:
            if (!send_parse_u64(optarg, 1000000, &v))
                return send_usage_error("bad --retries '%s'", optarg);
            o->retries = (unsigned)v;
            break;
        case OPT_WINDOW:
            if (!send_parse_u64(optarg, SEND_WINDOW_MAX, &v) || v == 0)
                return send_usage_error("bad --window '%s' (1..%u)", optarg, SEND_WINDOW_MAX);
            o->window = (unsigned)v;
            break;
        case OPT_MAX_DGRAM:
            if (!send_parse_u64(optarg, SF_DATAGRAM_LEN_MAX, &v) || v < SEND_DGRAM_MIN)
                return send_usage_error("bad --max-datagram '%s' (%u..%u)", optarg, SEND_DGRAM_MIN,
                                        SF_DATAGRAM_LEN_MAX);
            o->dgram_max = (unsigned)v;
            break;
        case OPT_MALFORMED:
            o->malformed = optarg;
            break;
        case OPT_SUMMARY:
            o->summary_json = true;
            break;
        case OPT_KEY_FILE:
            o->key_file = optarg;
            break;
        case OPT_KEY_ID:
            if (!send_parse_u64(optarg, UINT32_MAX, &v) || v == 0)
                return send_usage_error("bad --key-id '%s' (1..4294967295)", optarg);
            o->key_id = (uint32_t)v;
            break;
        case OPT_ATTACK:
            if (strcmp(optarg, "forged") == 0)
                o->attack = SEND_ATTACK_FORGED;
            else if (strcmp(optarg, "bitflip") == 0)
                o->attack = SEND_ATTACK_BITFLIP;
            else if (strcmp(optarg, "replay") == 0)
                o->attack = SEND_ATTACK_REPLAY;
            else
                return send_usage_error("bad --attack '%s' (forged, bitflip, replay)", optarg);
            break;
        case OPT_ATTACK_COUNT:
            if (!send_parse_u64(optarg, SEND_ATTACK_COUNT_MAX, &v) || v == 0)
                return send_usage_error("bad --attack-count '%s' (1..%u)", optarg,
                                        SEND_ATTACK_COUNT_MAX);
            o->attack_count = (unsigned)v;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'h':
            send_usage(stdout);
            return -1;
        default:
            return send_usage_error("unknown option");
        }
    }
    if (optind < argc)
        return send_usage_error("unexpected argument '%s'", argv[optind]);
    int modes = (o->file != NULL) + o->fleet_mode + (o->malformed != NULL) +
                (o->attack != SEND_ATTACK_NONE);
    if (modes > 1)
        return send_usage_error("--file, --fleet, --malformed and --attack exclude each other");
    if ((o->key_file != NULL) != (o->key_id != 0) &&
        !(o->attack == SEND_ATTACK_FORGED && o->key_file == NULL))
        return send_usage_error("--key-file and --key-id go together");
    if ((o->attack == SEND_ATTACK_BITFLIP || o->attack == SEND_ATTACK_REPLAY) &&
        o->key_file == NULL)
        return send_usage_error("--attack bitflip and replay need --key-file and --key-id");
    if (o->key_file != NULL && (o->json || o->malformed != NULL))
        return send_usage_error("--json and --malformed datagrams are not signed");
    if (o->attack != SEND_ATTACK_NONE) {
        o->key_id = o->key_id != 0 ? o->key_id : 1;
        o->attack_count = o->attack_count != 0 ? o->attack_count : 1;
    }
    if (o->fleet_mode && !have_rounds)
        return send_usage_error("--fleet needs --rounds");
    if (modes == 0 && (o->type == NULL || o->id == NULL || o->signal == NULL))
        return send_usage_error("one event needs -t TYPE -i ID -s SIGNAL (or --file/--fleet)");
    if (o->json && (modes > 0 || o->ack))
        return send_usage_error("--json sends one event without ACK (the JSON form has no flags)");
    if (o->malformed != NULL || o->attack != SEND_ATTACK_NONE) {
        o->type = o->type ? o->type : "device";
        o->id = o->id ? o->id : "sensor-1";
        o->signal = o->signal ? o->signal : "telemetry";
    }
    if (o->batch == 0)
        o->batch = modes == 0 ? 1 : 16;
    return 0;
}

static int send_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double send_pct_us(const struct send_stats *st, double q)
{
    uint64_t i = (uint64_t)(q * (double)(st->lat_count - 1));
    return (double)st->lat_ns[i] / 1000.0;
}

static void send_print_summary(struct send_stats *st)
{
    printf("{\"frames\":%" PRIu64 ",\"events\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"statuses\":{",
           st->frames, st->events, st->acked);
    for (int i = 0; i < SF_ACK_STATUS_COUNT; i++)
        printf("%s\"%s\":%" PRIu64, i ? "," : "", sf_ack_status_name((enum sf_ack_status)i),
               st->statuses[i]);
    printf("},\"resends\":%" PRIu64 ",\"unacked\":%" PRIu64 ",\"send_errors\":%" PRIu64
           ",\"bad_acks\":%" PRIu64 ",\"stray_acks\":%" PRIu64,
           st->resends, st->unacked, st->send_errors, st->bad_acks, st->stray_acks);
    if (st->lat_count > 0) {
        /* ACK latency of events acknowledged on their first transmission, send to ACK */
        qsort(st->lat_ns, st->lat_count, sizeof(st->lat_ns[0]), send_cmp_u64);
        printf(",\"ack_samples\":%" PRIu64 ",\"ack_p50_us\":%.1f,\"ack_p99_us\":%.1f,"
               "\"ack_p999_us\":%.1f,\"ack_max_us\":%.1f",
               st->lat_count, send_pct_us(st, 0.5), send_pct_us(st, 0.99), send_pct_us(st, 0.999),
               send_pct_us(st, 1.0));
    }
    printf("}\n");
    fflush(stdout);
}

/* Send one prepared datagram (JSON or malformed) and finish. */
static int send_single_datagram(struct send_ctx *c, const uint8_t *buf, size_t len, unsigned events)
{
    if (send_datagram(c, buf, len) < 0)
        return 1;
    c->st.frames = 1;
    c->st.events = events;
    return 0;
}

static int send_open_source(const struct send_opts *o, struct send_source *src, FILE **f)
{
    if (o->fleet_mode)
        return send_source_fleet(src, &o->fleet);
    if (o->file != NULL) {
        *f = strcmp(o->file, "-") == 0 ? stdin : fopen(o->file, "r");
        if (*f == NULL) {
            fprintf(stderr, "sigflow-send: %s: %s\n", o->file, strerror(errno));
            return -errno;
        }
        send_source_file(src, *f, o->file);
        return 0;
    }
    return send_source_one(src, o->type, o->id, o->signal, o->event_id, o->values, o->n_values);
}

int main(int argc, char **argv)
{
    static struct send_opts o;
    int rc = send_parse_args(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    static struct send_ctx c;
    c.st.lat_ns = malloc(SEND_LATENCY_SAMPLES_MAX * sizeof(uint64_t)); /* NULL: no latencies */
    c.o = &o;
    c.next_seq = 1;
    if (o.key_file != NULL) {
        rc = send_auth_load(&c, &o);
        if (rc != 0)
            return rc;
    }
    c.fd = send_open_socket(o.host, o.port);
    if (c.fd < 0)
        return 1;

    int status = 1;
    static uint8_t dgram[SF_DATAGRAM_LEN_MAX + 64];
    static struct send_source src;
    FILE *f = NULL;
    if (o.attack != SEND_ATTACK_NONE) {
        c.auth = true; /* every attack frame carries the AUTH flag, key id and a counter */
        status = send_attack_run(&c);
    } else if (o.malformed != NULL) {
        int len = send_build_malformed(dgram, sizeof(dgram), &o, o.malformed);
        if (len == -1) {
            fprintf(stderr, "sigflow-send: unknown --malformed kind '%s' (see --help)\n",
                    o.malformed);
            status = EX_USAGE;
        } else if (len >= 0) {
            status = send_single_datagram(&c, dgram, (size_t)len, 0);
        }
    } else if (o.json) {
        uint64_t id = o.event_id;
        if (id == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            id = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        }
        int len = send_build_json((char *)dgram, SEND_JSON_LEN_MAX, &o, id);
        struct sf_event ev;
        if (len < 0 || sf_json_parse(dgram, (size_t)len, &ev) != SF_OK) {
            fprintf(stderr, "sigflow-send: event not valid in the JSON form: %s\n",
                    len < 0 ? "too long" : sf_err_name(sf_json_parse(dgram, (size_t)len, &ev)));
            status = EX_USAGE;
        } else {
            status = send_single_datagram(&c, dgram, (size_t)len, 1);
        }
    } else if (send_open_source(&o, &src, &f) < 0) {
        status = o.file != NULL ? 1 : EX_USAGE;
    } else {
        if (o.ack) {
            c.slots = calloc(o.window, sizeof(*c.slots));
            if (c.slots == NULL) {
                fprintf(stderr, "sigflow-send: out of memory\n");
                goto out_close;
            }
        }
        rc = send_run(&c, &src);
        status = (rc == 0 && c.st.unacked == 0 && c.st.send_errors == 0) ? 0 : 1;
        if (rc < 0 && c.slots != NULL)
            c.st.unacked += c.st.events - c.st.acked; /* what we stopped waiting for */
        free(c.slots);
    }
    if (o.summary_json && status != EX_USAGE)
        send_print_summary(&c.st);
out_close:
    if (f != NULL && f != stdin)
        fclose(f);
    close(c.fd);
    sf_auth_mac_clear(&c.mac);
    return status;
}
