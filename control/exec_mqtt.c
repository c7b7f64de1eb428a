/*
 * exec_mqtt.c — the "mqtt" executor (cp_exec.h): an attempt is one PUBLISH of its JSON body
 * (a->body_json) to a topic made from a template, through one libmosquitto client that
 * cp_loop drives. Nothing here blocks: the client's socket is watched, never waited on.
 *
 * CONFIGURATION (one executor section, cp_kv pairs)
 *   host          broker address (default 127.0.0.1; a name is resolved by getaddrinfo,
 *                 which blocks: give an address where that matters)
 *   port          default 1883
 *   topic         required template (cp_template_expand, no escaping), e.g.
 *                 devices/{id}/commands; its own text may not hold + or #
 *   qos           0 or 1 (default 1)
 *   reply_topic   optional subscription filter template, e.g. devices/+/replies
 *   client_id     default sigflow-control-<pid>
 *   username, password_file (the file's first line is the password)
 *   keepalive_s   5..65535 (default 30)
 *
 * SESSIONS. One MQTT 3.1.1 connection with a clean session at a time, one mosquitto handle
 * per connection, destroyed with it: nothing queued in one session (PUBLISHes not yet
 * acknowledged, subscriptions) is replayed in the next one, whose attempts are new ones.
 *     DOWN        no connection; the reconnect timer is armed (backoff, doubling from
 *                 CP_MQTT_RECONNECT_MIN_MS to CP_MQTT_RECONNECT_MAX_MS; back to the minimum
 *                 only after a session that stayed up CP_MQTT_SESSION_STABLE_MS, so a broker
 *                 that accepts and then drops us, or refuses the reply subscription, is not
 *                 hammered)
 *     CONNECTING  mosquitto_connect_async done, CONNACK awaited (≤ CP_MQTT_CONNECT_TIMEOUT_MS)
 *     UP          CONNACK accepted
 * The socket is watched through a dup of libmosquitto's descriptor: libmosquitto closes its
 * own inside its calls, on a keepalive timeout even before it reports the disconnect, and
 * cp_loop must stop watching a descriptor before it is closed. EPOLLIN is always watched,
 * EPOLLOUT while mosquitto_want_write; the misc timer runs mosquitto_loop_misc (keepalive)
 * every CP_MQTT_MISC_PERIOD_MS.
 *
 * ATTEMPTS. Each holds a slot (pooled: slabs allocated on demand, kept until fini). A slot
 * is on one list: in flight (WAITING: held until CONNACK; SENT: published) or ready (its
 * outcome decided, done not yet called). libmosquitto's callbacks only decide outcomes and
 * move slots; x->done is called by mqtt_deliver at the end of this executor's own loop
 * callbacks, or from the "soon" timer when the outcome was decided inside start. So the
 * dispatcher is never entered from inside libmosquitto or from inside start, and may call
 * start, abandon and fini from done.
 *
 * COMPLETION
 *     qos 1, no reply_topic   the PUBACK of the attempt's packet id
 *     qos 0, no reply_topic   the PUBLISH was written (libmosquitto has nothing left to write)
 *     reply_topic             a message on the reply filter whose JSON "idempotency_key" is
 *                             the attempt's: its integer "result" (optional) is the result,
 *                             "ok": false (optional "error" text) a permanent failure; a
 *                             PUBACK alone completes nothing
 *     session ends            every attempt in flight: RETRY "broker disconnected"
 *     started while DOWN      RETRY "broker disconnected" (CONNECTING: held until CONNACK)
 * At least once: the dispatcher retries, the device deduplicates on the idempotency key.
 *
 * REPLY FILTER. Without placeholders it is subscribed once per session, before anything is
 * published (a broker handles one client's packets in order, so the subscription exists
 * before a device can answer). With placeholders ({id}, ...) each attempt subscribes to its
 * expansion just before it publishes; subscriptions are counted per filter and the last
 * attempt to leave one unsubscribes.
 * A refused subscription (SUBACK 0x80): for the fixed filter the session ends (its attempts
 * RETRY; the next session subscribes again), a templated one is counted (its attempt times
 * out, the dispatcher's).
 *
 * TOPICS. Values go in unescaped, but a value that would put a wildcard (+ #) or a NUL into
 * a topic or filter fails the attempt for good, with the reason; so does a topic longer
 * than CP_MQTT_TOPIC_MAX or not UTF-8. The template's own text is checked at init.
 *
 * LIMITS AND COSTS. CP_MQTT_INFLIGHT_MAX attempts at once (MQTT packet ids are 16 bits);
 * replies larger than CP_MQTT_REPLY_BYTES_MAX are ignored (counted). This file allocates
 * only when its pools grow; libmosquitto 2.0 allocates per PUBLISH, writes each packet with
 * one write plus one to its wake-up socketpair, reads each packet with about three reads,
 * and walks its list of unacknowledged messages on each PUBACK (perf/control/bench_mqtt).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <mosquitto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cp_exec.h"
#include "exec_mqtt.h"
#include "sf_proto.h"

#define CP_MQTT_INFLIGHT_MAX       65535u /* attempts holding a slot: one packet id each */
#define CP_MQTT_MID_SLOTS          65536u /* packet ids 1..65535 index the PUBACK table */
#define CP_MQTT_SLAB_SLOTS         256u
#define CP_MQTT_SLAB_SUBS          64u
#define CP_MQTT_KEY_BUCKETS        16384u /* idempotency key hash (reply mode) */
#define CP_MQTT_SUB_BUCKETS        1024u  /* reply filters in use (templated reply_topic) */
#define CP_MQTT_TOPIC_MAX          512u   /* an expanded topic or filter, NUL included */
#define CP_MQTT_HOST_MAX           256u
#define CP_MQTT_CLIENT_ID_MAX      128u
#define CP_MQTT_USERNAME_MAX       256u
#define CP_MQTT_PASSWORD_MAX       256u
#define CP_MQTT_REPLY_BYTES_MAX    4096u
#define CP_MQTT_KEEPALIVE_MIN_S    5u /* libmosquitto's own floor */
#define CP_MQTT_KEEPALIVE_MAX_S    65535u
#define CP_MQTT_KEEPALIVE_DEF_S    30u
#define CP_MQTT_PORT_DEFAULT       1883u
#define CP_MQTT_MISC_PERIOD_MS     1000u
#define CP_MQTT_CONNECT_TIMEOUT_MS 10000u
#define CP_MQTT_RECONNECT_MIN_MS   50u
#define CP_MQTT_RECONNECT_MAX_MS   5000u
#define CP_MQTT_SESSION_STABLE_MS  10000u
#define CP_MQTT_DISCONNECTED       "broker disconnected"

_Static_assert((CP_MQTT_KEY_BUCKETS & (CP_MQTT_KEY_BUCKETS - 1)) == 0, "a power of two");
_Static_assert((CP_MQTT_SUB_BUCKETS & (CP_MQTT_SUB_BUCKETS - 1)) == 0, "a power of two");
_Static_assert(CP_MQTT_INFLIGHT_MAX < CP_MQTT_MID_SLOTS, "every packet id has an entry");

enum cp_mqtt_session {
    CP_MQTT_DOWN = 0,
    CP_MQTT_CONNECTING = 1,
    CP_MQTT_UP = 2,
};

enum cp_mqtt_slot_state {
    CP_MQTT_SLOT_FREE = 0,
    CP_MQTT_SLOT_WAITING = 1, /* in flight, held until CONNACK */
    CP_MQTT_SLOT_SENT = 2,    /* in flight, published */
    CP_MQTT_SLOT_READY = 3,   /* outcome decided, done not yet called */
};

struct mqtt_sub;

struct mqtt_slot {
    struct mqtt_slot *prev, *next; /* flight or ready list; next: free list */
    struct mqtt_slot *key_next;    /* key hash chain, while in flight in reply mode */
    struct cp_attempt *a;
    struct mqtt_sub *sub; /* the templated reply filter it holds */
    uint32_t key_hash;
    uint16_t mid; /* PUBACK awaited under this packet id; 0: none */
    uint8_t state;
    bool hashed;
    struct cp_outcome outcome; /* when READY */
};

struct mqtt_slab {
    struct mqtt_slab *next;
    struct mqtt_slot slot[CP_MQTT_SLAB_SLOTS];
};

struct mqtt_sub {
    struct mqtt_sub *next; /* hash chain; free list */
    uint32_t hash;
    uint32_t refs;
    char filter[CP_MQTT_TOPIC_MAX];
};

struct mqtt_sub_slab {
    struct mqtt_sub_slab *next;
    struct mqtt_sub sub[CP_MQTT_SLAB_SUBS];
};

struct mqtt_list {
    struct mqtt_slot *head, *tail;
    uint32_t len;
};

/* A template and what it inserts (for the per-attempt value checks). */
struct mqtt_template {
    bool set;
    bool placeholders;
    bool uses_type, uses_id, uses_activity;
    unsigned nargs;
    char arg[CHAN_PARAMS_MAX][CHAN_NAME_MAX];
    char text[CP_KV_VALUE_MAX];
};

struct mqtt_exec {
    struct cp_executor *x;
    struct cp_loop *loop;
    /* configuration */
    char host[CP_MQTT_HOST_MAX];
    unsigned port;
    int qos;
    unsigned keepalive_s;
    struct mqtt_template topic, reply;
    char client_id[CP_MQTT_CLIENT_ID_MAX];
    char username[CP_MQTT_USERNAME_MAX];
    char password[CP_MQTT_PASSWORD_MAX];
    bool has_username, has_password;
    /* session */
    struct mosquitto *mosq;
    enum cp_mqtt_session session;
    int watch_fd; /* dup of libmosquitto's socket; -1 */
    uint32_t watch_events;
    bool ev_connack, ev_lost;
    int connack_rc;
    uint64_t connect_started_ns, up_since_ns;
    uint32_t backoff_ms;
    struct cp_timer misc_timer, reconnect_timer, soon_timer;
    /* attempts */
    struct mqtt_list flight, ready;
    struct mqtt_slot *free_slots;
    struct mqtt_slab *slabs;
    uint32_t slots_made, slots_used;
    struct mqtt_slot **by_mid; /* [CP_MQTT_MID_SLOTS]: qos 1 without reply_topic */
    struct mqtt_slot **by_key; /* [CP_MQTT_KEY_BUCKETS]: reply_topic */
    struct mqtt_sub **subs;    /* [CP_MQTT_SUB_BUCKETS]: templated reply_topic */
    struct mqtt_sub *free_subs;
    struct mqtt_sub_slab *sub_slabs;
    /* re-entrancy: fini from inside done waits for the outermost callback to return */
    unsigned depth;
    bool closing;
    struct cp_mqtt_stats stats;
};

static unsigned mqtt_lib_users; /* executors holding mosquitto_lib_init (one thread) */

/* ---- lists, pools, hashes -------------------------------------------------------------- */

static void mqtt_list_push(struct mqtt_list *l, struct mqtt_slot *s)
{
    s->prev = l->tail;
    s->next = NULL;
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
    l->len++;
}

static void mqtt_list_remove(struct mqtt_list *l, struct mqtt_slot *s)
{
    assert(l->len > 0);
    if (s->prev)
        s->prev->next = s->next;
    else
        l->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        l->tail = s->prev;
    s->prev = s->next = NULL;
    l->len--;
}

/* FNV-1a: keys and filters are short and made by us or the broker, not chosen to collide. */
static uint32_t mqtt_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* A free slot, zeroed, or NULL when CP_MQTT_INFLIGHT_MAX are taken or memory is out. */
static struct mqtt_slot *mqtt_slot_get(struct mqtt_exec *m)
{
    if (m->slots_used >= CP_MQTT_INFLIGHT_MAX)
        return NULL;
    if (!m->free_slots) {
        struct mqtt_slab *b = calloc(1, sizeof(*b));
        if (!b)
            return NULL;
        b->next = m->slabs;
        m->slabs = b;
        for (unsigned i = CP_MQTT_SLAB_SLOTS; i-- > 0;) {
            b->slot[i].next = m->free_slots;
            m->free_slots = &b->slot[i];
        }
        m->slots_made += CP_MQTT_SLAB_SLOTS;
    }
    struct mqtt_slot *s = m->free_slots;
    m->free_slots = s->next;
    memset(s, 0, sizeof(*s));
    m->slots_used++;
    return s;
}

static void mqtt_slot_put(struct mqtt_exec *m, struct mqtt_slot *s)
{
    assert(m->slots_used > 0 && s->mid == 0 && !s->hashed && !s->sub);
    s->state = CP_MQTT_SLOT_FREE;
    s->a = NULL;
    s->next = m->free_slots;
    m->free_slots = s;
    m->slots_used--;
}

static void mqtt_key_insert(struct mqtt_exec *m, struct mqtt_slot *s)
{
    assert(m->by_key && !s->hashed);
    s->key_hash = mqtt_hash(s->a->idempotency_key);
    struct mqtt_slot **b = &m->by_key[s->key_hash & (CP_MQTT_KEY_BUCKETS - 1)];
    s->key_next = *b;
    *b = s;
    s->hashed = true;
}

static void mqtt_key_remove(struct mqtt_exec *m, struct mqtt_slot *s)
{
    if (!s->hashed)
        return;
    struct mqtt_slot **p = &m->by_key[s->key_hash & (CP_MQTT_KEY_BUCKETS - 1)];
    while (*p != s)
        p = &(*p)->key_next;
    *p = s->key_next;
    s->key_next = NULL;
    s->hashed = false;
}

/* The attempt in flight whose idempotency key is key, or NULL. */
static struct mqtt_slot *mqtt_key_find(struct mqtt_exec *m, const char *key)
{
    uint32_t h = mqtt_hash(key);
    for (struct mqtt_slot *s = m->by_key[h & (CP_MQTT_KEY_BUCKETS - 1)]; s; s = s->key_next)
        if (s->key_hash == h && strcmp(s->a->idempotency_key, key) == 0)
            return s;
    return NULL;
}

/*
 * Take a reference on filter, subscribing when it is the first one and the session is up.
 * Returns the entry, or NULL (memory out, or the SUBSCRIBE could not be queued: the reason
 * in why).
 */
static struct mqtt_sub *mqtt_sub_acquire(struct mqtt_exec *m, const char *filter, char *why,
                                         size_t why_cap)
{
    uint32_t h = mqtt_hash(filter);
    struct mqtt_sub **b = &m->subs[h & (CP_MQTT_SUB_BUCKETS - 1)];
    for (struct mqtt_sub *u = *b; u; u = u->next)
        if (u->hash == h && strcmp(u->filter, filter) == 0) {
            u->refs++;
            return u;
        }
    if (!m->free_subs) {
        struct mqtt_sub_slab *sl = calloc(1, sizeof(*sl));
        if (!sl) {
            snprintf(why, why_cap, "out of memory");
            return NULL;
        }
        sl->next = m->sub_slabs;
        m->sub_slabs = sl;
        for (unsigned i = CP_MQTT_SLAB_SUBS; i-- > 0;) {
            sl->sub[i].next = m->free_subs;
            m->free_subs = &sl->sub[i];
        }
    }
    assert(m->session == CP_MQTT_UP && m->mosq);
    int rc = mosquitto_subscribe(m->mosq, NULL, filter, m->qos);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(why, why_cap, "subscribe: %s", mosquitto_strerror(rc));
        return NULL;
    }
    struct mqtt_sub *u = m->free_subs;
    m->free_subs = u->next;
    u->hash = h;
    u->refs = 1;
    snprintf(u->filter, sizeof(u->filter), "%s", filter);
    u->next = *b;
    *b = u;
    return u;
}

/* Drop s's reference on its filter; the last one unsubscribes (when the session is up). */
static void mqtt_sub_release(struct mqtt_exec *m, struct mqtt_slot *s)
{
    struct mqtt_sub *u = s->sub;
    if (!u)
        return;
    s->sub = NULL;
    assert(u->refs > 0);
    if (--u->refs > 0)
        return;
    if (m->session == CP_MQTT_UP && m->mosq)
        mosquitto_unsubscribe(m->mosq, NULL, u->filter); /* best effort: the filter is ours */
    struct mqtt_sub **p = &m->subs[u->hash & (CP_MQTT_SUB_BUCKETS - 1)];
    while (*p != u)
        p = &(*p)->next;
    *p = u->next;
    u->next = m->free_subs;
    m->free_subs = u;
}

/* ---- outcomes ------------------------------------------------------------------------ */

/* Take s out of flight: its packet id, key and filter are forgotten. */
static void mqtt_detach(struct mqtt_exec *m, struct mqtt_slot *s)
{
    assert(s->state == CP_MQTT_SLOT_WAITING || s->state == CP_MQTT_SLOT_SENT);
    mqtt_list_remove(&m->flight, s);
    if (s->mid) {
        assert(m->by_mid && m->by_mid[s->mid] == s);
        m->by_mid[s->mid] = NULL;
        s->mid = 0;
    }
    mqtt_key_remove(m, s);
    mqtt_sub_release(m, s);
    s->state = CP_MQTT_SLOT_FREE;
}

/* Decide s's outcome (*o) and queue it for mqtt_deliver. s is in flight, or new (FREE). */
static void mqtt_finish(struct mqtt_exec *m, struct mqtt_slot *s, const struct cp_outcome *o)
{
    if (s->state == CP_MQTT_SLOT_WAITING || s->state == CP_MQTT_SLOT_SENT)
        mqtt_detach(m, s);
    assert(s->state == CP_MQTT_SLOT_FREE && s->a);
    s->outcome = *o;
    s->state = CP_MQTT_SLOT_READY;
    mqtt_list_push(&m->ready, s);
}

static void mqtt_finish_fmt(struct mqtt_exec *m, struct mqtt_slot *s, enum cp_outcome_kind kind,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void mqtt_finish_fmt(struct mqtt_exec *m, struct mqtt_slot *s, enum cp_outcome_kind kind,
                            const char *fmt, ...)
{
    struct cp_outcome o;
    memset(&o, 0, sizeof(o));
    o.kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o.reason, sizeof(o.reason), fmt, ap);
    va_end(ap);
    mqtt_finish(m, s, &o);
}

static void mqtt_finish_done(struct mqtt_exec *m, struct mqtt_slot *s)
{
    struct cp_outcome o;
    memset(&o, 0, sizeof(o));
    o.kind = CP_OUTCOME_DONE;
    mqtt_finish(m, s, &o);
}

static void mqtt_soon(struct cp_loop *loop, void *arg);

/* Arm the soon timer when outcomes wait and nothing else will deliver them. */
static void mqtt_soon_arm(struct mqtt_exec *m)
{
    if (m->ready.len > 0 && !m->closing && !cp_timer_armed(&m->soon_timer))
        cp_loop_timer_arm(m->loop, &m->soon_timer, 0, mqtt_soon, m); /* a past time: next pass */
}

/*
 * Call done for the outcomes queued when this started (not for those that done's own
 * starts queue: they wait for the soon timer, so one callback does bounded work). Stops
 * when fini was called from inside done.
 */
static void mqtt_deliver(struct mqtt_exec *m)
{
    uint32_t budget = m->ready.len;
    while (budget-- > 0 && m->ready.head && !m->closing) {
        struct mqtt_slot *s = m->ready.head;
        mqtt_list_remove(&m->ready, s);
        struct cp_attempt *a = s->a;
        struct cp_outcome o = s->outcome;
        assert(a->exec_state == s);
        mqtt_slot_put(m, s);
        a->exec_state = NULL;
        m->x->done(m->x, a, &o);
    }
    mqtt_soon_arm(m);
}

/* ---- templates and topics -------------------------------------------------------------- */

/*
 * Read tmpl (cp_template_check accepted it): what it inserts, and probe = its text with
 * every placeholder replaced by "x" (to check the literal text as a topic or filter).
 * Returns 0, or -EINVAL with why filled (more distinct {arg.NAME} than CHAN_PARAMS_MAX, a
 * name longer than CHAN_NAME_MAX - 1).
 */
static int mqtt_template_scan(struct mqtt_template *t, const char *tmpl, char *probe,
                              size_t probe_cap, char *why, size_t why_cap)
{
    memset(t, 0, sizeof(*t));
    t->set = true;
    snprintf(t->text, sizeof(t->text), "%s", tmpl);
    size_t len = 0;
    for (const char *p = tmpl; *p && len + 2 < probe_cap;) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            probe[len++] = p[0];
            p += 2;
            continue;
        }
        if (*p != '{') {
            probe[len++] = *p++;
            continue;
        }
        const char *end = strchr(p + 1, '}');
        assert(end); /* cp_template_check */
        const char *name = p + 1;
        size_t n = (size_t)(end - name);
        t->placeholders = true;
        if (n == 4 && memcmp(name, "type", 4) == 0) {
            t->uses_type = true;
        } else if (n == 2 && memcmp(name, "id", 2) == 0) {
            t->uses_id = true;
        } else if (n == 8 && memcmp(name, "activity", 8) == 0) {
            t->uses_activity = true;
        } else if (n > 4 && memcmp(name, "arg.", 4) == 0) {
            if (n - 4 >= CHAN_NAME_MAX) {
                snprintf(why, why_cap, "argument name longer than %u bytes", CHAN_NAME_MAX - 1);
                return -EINVAL;
            }
            bool known = false;
            for (unsigned i = 0; i < t->nargs && !known; i++)
                known = strlen(t->arg[i]) == n - 4 && memcmp(t->arg[i], name + 4, n - 4) == 0;
            if (!known) {
                if (t->nargs == CHAN_PARAMS_MAX) {
                    snprintf(why, why_cap, "more than %u arguments", CHAN_PARAMS_MAX);
                    return -EINVAL;
                }
                memcpy(t->arg[t->nargs], name + 4, n - 4);
                t->arg[t->nargs++][n - 4] = '\0';
            }
        }
        probe[len++] = 'x';
        p = end + 1;
    }
    probe[len] = '\0';
    return 0;
}

/* A value inserted into a topic: false with why filled when it holds a NUL (its text is
 * shorter than expect_len) or an MQTT wildcard. */
static bool mqtt_value_ok(const char *what, const char *value, size_t expect_len, char *why,
                          size_t why_cap)
{
    if (strlen(value) != expect_len) {
        snprintf(why, why_cap, "%s contains a NUL byte: not usable in a topic", what);
        return false;
    }
    if (strpbrk(value, "+#")) {
        snprintf(why, why_cap, "%s contains an MQTT wildcard (+ or #): not usable in a topic",
                 what);
        return false;
    }
    return true;
}

/* The arguments t inserts: each must exist, fit CP_ARG_TEXT_MAX and pass mqtt_value_ok. */
static bool mqtt_args_ok(const struct mqtt_template *t, const struct cp_attempt *a, char *why,
                         size_t why_cap)
{
    struct sf_value v[CHAN_PARAMS_MAX];
    int nv = a->nargs ? sf_fields_decode(a->task->args, a->task->args_len, v, CHAN_PARAMS_MAX) : 0;
    if (nv < 0 || (unsigned)nv != a->nargs) {
        snprintf(why, why_cap, "arguments are not readable");
        return false;
    }
    for (unsigned j = 0; j < t->nargs; j++) {
        unsigned i = 0;
        while (i < a->nargs && strcmp(a->arg_name[i], t->arg[j]) != 0)
            i++;
        if (i == a->nargs) {
            snprintf(why, why_cap, "topic template: the activity has no argument %s", t->arg[j]);
            return false;
        }
        size_t len = strlen(a->arg_text[i]);
        if (v[i].type == SF_VAL_TEXT) {
            if (v[i].text.len >= CP_ARG_TEXT_MAX) {
                snprintf(why, why_cap, "argument %s is longer than %u bytes: not usable in a topic",
                         t->arg[j], CP_ARG_TEXT_MAX - 1);
                return false;
            }
            len = v[i].text.len;
        }
        char what[CHAN_NAME_MAX + 16];
        snprintf(what, sizeof(what), "argument %s", t->arg[j]);
        if (!mqtt_value_ok(what, a->arg_text[i], len, why, why_cap))
            return false;
    }
    return true;
}

/*
 * Expand t for a into out[0..CP_MQTT_TOPIC_MAX) and check it as a topic (filter: as a
 * subscription filter). Returns 0, or -EINVAL with why filled: the same task would fail
 * again, so the attempt fails for good.
 */
static int mqtt_topic_build(const struct mqtt_template *t, const struct cp_attempt *a, bool filter,
                            char *out, char *why, size_t why_cap)
{
    const struct chan_task *k = a->task;
    if ((t->uses_type && !mqtt_value_ok("type", a->type, k->type_len, why, why_cap)) ||
        (t->uses_id && !mqtt_value_ok("id", a->id, k->id_len, why, why_cap)) ||
        (t->uses_activity &&
         !mqtt_value_ok("activity", a->activity, k->activity_len, why, why_cap)) ||
        (t->nargs && !mqtt_args_ok(t, a, why, why_cap)))
        return -EINVAL;
    int n = cp_template_expand(t->text, a, false, out, CP_MQTT_TOPIC_MAX);
    if (n == -ENOSPC) {
        snprintf(why, why_cap, "%s longer than %u bytes", filter ? "reply filter" : "topic",
                 CP_MQTT_TOPIC_MAX - 1);
        return -EINVAL;
    }
    if (n < 0) {
        snprintf(why, why_cap, "%s template does not fit the activity",
                 filter ? "reply_topic" : "topic");
        return -EINVAL;
    }
    if (mosquitto_validate_utf8(out, n) != MOSQ_ERR_SUCCESS) {
        snprintf(why, why_cap, "%s is not valid UTF-8", filter ? "reply filter" : "topic");
        return -EINVAL;
    }
    int rc = filter ? mosquitto_sub_topic_check(out) : mosquitto_pub_topic_check(out);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(why, why_cap, "%s is not a valid MQTT %s", filter ? "reply filter" : "topic",
                 filter ? "filter" : "topic");
        return -EINVAL;
    }
    return 0;
}

/* ---- the session ----------------------------------------------------------------------- */

static void mqtt_on_io(struct cp_loop *loop, int fd, uint32_t events, void *arg);
static void mqtt_callbacks_set(struct mosquitto *mosq);
static void mqtt_misc(struct cp_loop *loop, void *arg);
static void mqtt_reconnect(struct cp_loop *loop, void *arg);

static void mqtt_error_set(struct mqtt_exec *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void mqtt_error_set(struct mqtt_exec *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->stats.last_error, sizeof(m->stats.last_error), fmt, ap);
    va_end(ap);
}

/*
 * End the session: stop watching, destroy the handle, every attempt in flight RETRY
 * "broker disconnected", reconnect after the backoff. Never called from inside libmosquitto.
 */
static void mqtt_session_end(struct mqtt_exec *m)
{
    if (m->watch_fd >= 0) {
        cp_loop_watch(m->loop, m->watch_fd, 0, NULL, NULL); /* the dup is open: can't fail */
        close(m->watch_fd);
        m->watch_fd = -1;
        m->watch_events = 0;
    }
    cp_loop_timer_cancel(m->loop, &m->misc_timer);
    if (m->session == CP_MQTT_UP)
        m->stats.disconnects++;
    else
        m->stats.connect_failures++;
    if (m->session == CP_MQTT_UP &&
        cp_now_ns() - m->up_since_ns >= (uint64_t)CP_MQTT_SESSION_STABLE_MS * 1000000u)
        m->backoff_ms = CP_MQTT_RECONNECT_MIN_MS;
    m->session = CP_MQTT_DOWN;
    m->stats.connected = false;
    if (m->mosq) {
        mosquitto_destroy(m->mosq);
        m->mosq = NULL;
    }
    while (m->flight.head)
        mqtt_finish_fmt(m, m->flight.head, CP_OUTCOME_RETRY, "%s", CP_MQTT_DISCONNECTED);
    m->ev_connack = m->ev_lost = false;
    m->connack_rc = 0;
    if (!m->closing)
        cp_loop_timer_arm(m->loop, &m->reconnect_timer,
                          cp_now_ns() + (uint64_t)m->backoff_ms * 1000000u, mqtt_reconnect, m);
    m->backoff_ms =
        m->backoff_ms * 2 > CP_MQTT_RECONNECT_MAX_MS ? CP_MQTT_RECONNECT_MAX_MS : m->backoff_ms * 2;
}

/* Watch the socket for EPOLLOUT exactly while libmosquitto has something to write. */
static void mqtt_watch_update(struct mqtt_exec *m)
{
    if (m->watch_fd < 0 || !m->mosq)
        return;
    uint32_t want = EPOLLIN | (mosquitto_want_write(m->mosq) ? EPOLLOUT : 0);
    if (want == m->watch_events)
        return;
    int rc = cp_loop_watch(m->loop, m->watch_fd, want, mqtt_on_io, m);
    if (rc != 0) {
        mqtt_error_set(m, "event loop: %s", strerror(-rc));
        mqtt_session_end(m);
        return;
    }
    m->watch_events = want;
}

/* Publish s (WAITING; the session is UP) to topic, or to its topic built again when topic
 * is NULL. The outcome, when decided now, is queued. */
static void mqtt_publish(struct mqtt_exec *m, struct mqtt_slot *s, const char *topic)
{
    char built[CP_MQTT_TOPIC_MAX], why[CHAN_REASON_MAX];
    assert(m->session == CP_MQTT_UP && m->mosq && s->state == CP_MQTT_SLOT_WAITING);
    if (!topic) {
        if (mqtt_topic_build(&m->topic, s->a, false, built, why, sizeof(why)) != 0) {
            mqtt_finish_fmt(m, s, CP_OUTCOME_FAIL, "%s", why);
            return;
        }
        topic = built;
    }
    if (m->reply.placeholders && !s->sub) {
        char filter[CP_MQTT_TOPIC_MAX];
        if (mqtt_topic_build(&m->reply, s->a, true, filter, why, sizeof(why)) != 0) {
            mqtt_finish_fmt(m, s, CP_OUTCOME_FAIL, "%s", why);
            return;
        }
        s->sub = mqtt_sub_acquire(m, filter, why, sizeof(why));
        if (!s->sub) {
            mqtt_finish_fmt(m, s, CP_OUTCOME_RETRY, "%s", why);
            return;
        }
    }
    int mid = 0;
    int rc = mosquitto_publish(m->mosq, &mid, topic, (int)s->a->body_len, s->a->body_json, m->qos,
                               false);
    if (rc != MOSQ_ERR_SUCCESS) {
        bool gone = rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO;
        bool again = gone || rc == MOSQ_ERR_NOMEM || rc == MOSQ_ERR_OVERSIZE_PACKET;
        if (gone)
            mqtt_finish_fmt(m, s, CP_OUTCOME_RETRY, "%s", CP_MQTT_DISCONNECTED);
        else
            mqtt_finish_fmt(m, s, again ? CP_OUTCOME_RETRY : CP_OUTCOME_FAIL, "publish: %s",
                            mosquitto_strerror(rc));
        return;
    }
    m->stats.published++;
    s->state = CP_MQTT_SLOT_SENT;
    if (m->by_mid) {
        assert(mid > 0 && (unsigned)mid < CP_MQTT_MID_SLOTS);
        struct mqtt_slot *old = m->by_mid[mid];
        if (old) { /* its PUBACK is 65535 packets late: it can no longer be told apart */
            mqtt_finish_fmt(m, old, CP_OUTCOME_RETRY, "no PUBACK before its packet id came round");
        }
        m->by_mid[mid] = s;
        s->mid = (uint16_t)mid;
    }
}

/* qos 0 without reply_topic: once libmosquitto has nothing left to write, every attempt
 * published is on the wire, which is all qos 0 promises. */
static void mqtt_check_written(struct mqtt_exec *m)
{
    if (m->qos != 0 || m->reply.set || m->session != CP_MQTT_UP || mosquitto_want_write(m->mosq))
        return;
    struct mqtt_slot *s = m->flight.head;
    while (s) {
        struct mqtt_slot *next = s->next;
        if (s->state == CP_MQTT_SLOT_SENT)
            mqtt_finish_done(m, s);
        s = next;
    }
}

/* CONNACK accepted: subscribe the fixed reply filter, then publish what waited. Returns
 * false (last_error set) when the session must end. */
static bool mqtt_session_up(struct mqtt_exec *m)
{
    m->session = CP_MQTT_UP;
    m->stats.connected = true;
    m->stats.connects++;
    m->up_since_ns = cp_now_ns();
    if (m->reply.set && !m->reply.placeholders) {
        int rc = mosquitto_subscribe(m->mosq, NULL, m->reply.text, m->qos);
        if (rc != MOSQ_ERR_SUCCESS) {
            mqtt_error_set(m, "subscribe: %s", mosquitto_strerror(rc));
            return false;
        }
    }
    struct mqtt_slot *s = m->flight.head;
    while (s) {
        struct mqtt_slot *next = s->next; /* s may leave the list */
        if (s->state == CP_MQTT_SLOT_WAITING)
            mqtt_publish(m, s, NULL);
        s = next;
    }
    return true;
}

/* After libmosquitto ran (rc: what its call returned): act on what its callbacks noted. */
static void mqtt_after_io(struct mqtt_exec *m, int rc)
{
    if (rc != MOSQ_ERR_SUCCESS || m->ev_lost || mosquitto_socket(m->mosq) < 0) {
        if (m->connack_rc)
            mqtt_error_set(m, "broker refused the connection: %s",
                           mosquitto_connack_string(m->connack_rc));
        else if (!m->ev_lost)
            mqtt_error_set(m, "connection lost: %s",
                           mosquitto_strerror(rc ? rc : MOSQ_ERR_CONN_LOST));
        mqtt_session_end(m);
        return;
    }
    if (m->ev_connack) {
        m->ev_connack = false;
        if (!mqtt_session_up(m)) {
            mqtt_session_end(m);
            return;
        }
    }
    mqtt_check_written(m);
    mqtt_watch_update(m);
}

/* Open a session: a new handle, an asynchronous connect, the socket watched. On failure
 * the session is DOWN with the reconnect timer armed. */
static void mqtt_connect(struct mqtt_exec *m)
{
    assert(m->session == CP_MQTT_DOWN && !m->mosq && m->watch_fd < 0);
    m->session = CP_MQTT_CONNECTING;
    m->connect_started_ns = cp_now_ns();
    m->mosq = mosquitto_new(m->client_id, true, m);
    if (!m->mosq) {
        mqtt_error_set(m, "mosquitto_new: %s", strerror(errno));
        mqtt_session_end(m);
        return;
    }
    mosquitto_int_option(m->mosq, MOSQ_OPT_SEND_MAXIMUM, (int)CP_MQTT_INFLIGHT_MAX);
    mosquitto_int_option(m->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    if (m->has_username)
        mosquitto_username_pw_set(m->mosq, m->username, m->has_password ? m->password : NULL);
    mqtt_callbacks_set(m->mosq);
    int rc = mosquitto_connect_async(m->mosq, m->host, (int)m->port, (int)m->keepalive_s);
    int fd = rc == MOSQ_ERR_SUCCESS ? mosquitto_socket(m->mosq) : -1;
    int dup_fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (dup_fd < 0) {
        mqtt_error_set(m, "connect %s:%u: %s", m->host, m->port,
                       rc != MOSQ_ERR_SUCCESS ? mosquitto_strerror(rc) : strerror(errno));
        mqtt_session_end(m);
        return;
    }
    m->watch_fd = dup_fd;
    m->watch_events = 0;
    cp_loop_timer_arm(m->loop, &m->misc_timer,
                      cp_now_ns() + (uint64_t)CP_MQTT_MISC_PERIOD_MS * 1000000u, mqtt_misc, m);
    mqtt_watch_update(m);
}

/* ---- libmosquitto callbacks: they only note events and decide outcomes ----------------- */

static void mqtt_cb_connect(struct mosquitto *mosq, void *arg, int rc)
{
    struct mqtt_exec *m = arg;
    assert(mosq == m->mosq);
    if (rc == 0)
        m->ev_connack = true;
    else
        m->connack_rc = rc;
}

static void mqtt_cb_disconnect(struct mosquitto *mosq, void *arg, int rc)
{
    struct mqtt_exec *m = arg;
    assert(mosq == m->mosq);
    mqtt_error_set(m, "connection lost: %s", mosquitto_strerror(rc ? rc : MOSQ_ERR_CONN_LOST));
    m->ev_lost = true;
}

static void mqtt_cb_publish(struct mosquitto *mosq, void *arg, int mid)
{
    struct mqtt_exec *m = arg;
    assert(mosq == m->mosq);
    if (!m->by_mid || mid <= 0 || (unsigned)mid >= CP_MQTT_MID_SLOTS)
        return; /* qos 0, or reply mode: a PUBACK completes nothing */
    struct mqtt_slot *s = m->by_mid[mid];
    if (!s) {
        m->stats.acks_ignored++;
        return;
    }
    m->stats.acked++;
    mqtt_finish_done(m, s);
}

static void mqtt_cb_subscribe(struct mosquitto *mosq, void *arg, int mid, int n, const int *granted)
{
    struct mqtt_exec *m = arg;
    (void)mid;
    assert(mosq == m->mosq);
    if (n < 1 || granted[0] < 0x80)
        return;
    m->stats.subscribe_refused++;
    if (m->reply.placeholders)
        return; /* one attempt's filter: that attempt times out (the dispatcher's) */
    /* no reply can come: end the session (after this call) and subscribe again later */
    mqtt_error_set(m, "broker refused the subscription to %s", m->reply.text);
    m->ev_lost = true;
}

/* The outcome a reply j (a JSON object) gives. */
static void mqtt_reply_outcome(const json_t *j, struct cp_outcome *o)
{
    const json_t *ok = json_object_get(j, "ok");
    const json_t *result = json_object_get(j, "result");
    const char *error = json_string_value(json_object_get(j, "error"));
    if (ok && !json_is_boolean(ok)) {
        cp_outcome_set(o, CP_OUTCOME_FAIL, "reply: \"ok\" is not a boolean");
    } else if (ok && json_is_false(ok)) {
        cp_outcome_set(o, CP_OUTCOME_FAIL, "device: %s", error ? error : "failed");
    } else if (result && !json_is_null(result) && !json_is_integer(result)) {
        cp_outcome_set(o, CP_OUTCOME_FAIL, "reply: \"result\" is not an integer");
    } else {
        memset(o, 0, sizeof(*o));
        o->kind = CP_OUTCOME_DONE;
        if (result && json_is_integer(result)) {
            o->has_result = true;
            o->result = (int64_t)json_integer_value(result);
        }
    }
}

static void mqtt_cb_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *msg)
{
    struct mqtt_exec *m = arg;
    assert(mosq == m->mosq);
    if (!m->by_key)
        return; /* subscribed to nothing */
    if (msg->payloadlen <= 0 || (unsigned)msg->payloadlen > CP_MQTT_REPLY_BYTES_MAX) {
        m->stats.replies_malformed++;
        return;
    }
    json_error_t err;
    json_t *j = json_loadb(msg->payload, (size_t)msg->payloadlen, 0, &err);
    const char *key =
        json_is_object(j) ? json_string_value(json_object_get(j, "idempotency_key")) : NULL;
    if (!key) {
        m->stats.replies_malformed++;
    } else {
        struct mqtt_slot *s = mqtt_key_find(m, key);
        if (!s) {
            m->stats.replies_ignored++;
        } else {
            struct cp_outcome o;
            mqtt_reply_outcome(j, &o);
            m->stats.replies++;
            mqtt_finish(m, s, &o);
        }
    }
    json_decref(j);
}

static void mqtt_callbacks_set(struct mosquitto *mosq)
{
    mosquitto_connect_callback_set(mosq, mqtt_cb_connect);
    mosquitto_disconnect_callback_set(mosq, mqtt_cb_disconnect);
    mosquitto_publish_callback_set(mosq, mqtt_cb_publish);
    mosquitto_subscribe_callback_set(mosq, mqtt_cb_subscribe);
    mosquitto_message_callback_set(mosq, mqtt_cb_message);
}

/* ---- loop callbacks ---------------------------------------------------------------------- */

static void mqtt_free(struct mqtt_exec *m);

static void mqtt_callback_enter(struct mqtt_exec *m)
{
    m->depth++;
}

/* Deliver what is ready, then finish a fini that came from inside done. */
static void mqtt_callback_exit(struct mqtt_exec *m)
{
    mqtt_deliver(m);
    assert(m->depth > 0);
    if (--m->depth == 0 && m->closing)
        mqtt_free(m);
}

static void mqtt_on_io(struct cp_loop *loop, int fd, uint32_t events, void *arg)
{
    struct mqtt_exec *m = arg;
    (void)loop;
    assert(fd == m->watch_fd && m->mosq);
    mqtt_callback_enter(m);
    int rc = MOSQ_ERR_SUCCESS;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        rc = mosquitto_loop_read(m->mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS && !m->ev_lost && (events & EPOLLOUT) &&
        mosquitto_socket(m->mosq) >= 0)
        rc = mosquitto_loop_write(m->mosq, 1);
    mqtt_after_io(m, rc);
    mqtt_callback_exit(m);
}

static void mqtt_misc(struct cp_loop *loop, void *arg)
{
    struct mqtt_exec *m = arg;
    mqtt_callback_enter(m);
    if (m->session == CP_MQTT_CONNECTING &&
        cp_now_ns() - m->connect_started_ns > (uint64_t)CP_MQTT_CONNECT_TIMEOUT_MS * 1000000u) {
        mqtt_error_set(m, "no CONNACK within %u ms", CP_MQTT_CONNECT_TIMEOUT_MS);
        mqtt_session_end(m);
    } else if (m->mosq) {
        mqtt_after_io(m, mosquitto_loop_misc(m->mosq));
        if (m->mosq)
            cp_loop_timer_arm(loop, &m->misc_timer,
                              cp_now_ns() + (uint64_t)CP_MQTT_MISC_PERIOD_MS * 1000000u, mqtt_misc,
                              m);
    }
    mqtt_callback_exit(m);
}

static void mqtt_reconnect(struct cp_loop *loop, void *arg)
{
    struct mqtt_exec *m = arg;
    (void)loop;
    mqtt_callback_enter(m);
    if (m->session == CP_MQTT_DOWN)
        mqtt_connect(m);
    mqtt_callback_exit(m);
}

static void mqtt_soon(struct cp_loop *loop, void *arg)
{
    struct mqtt_exec *m = arg;
    (void)loop;
    mqtt_callback_enter(m);
    mqtt_callback_exit(m);
}

/* ---- configuration ---------------------------------------------------------------------- */

static int mqtt_err(char *err, size_t cap, const struct cp_kv *kv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int mqtt_err(char *err, size_t cap, const struct cp_kv *kv, const char *fmt, ...)
{
    int n = kv ? snprintf(err, cap, "line %u: %s: ", kv->line, kv->key) : 0;
    if (n < 0 || (size_t)n >= cap)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* value as an unsigned integer in [lo, hi]: 0, or -EINVAL. */
static int mqtt_uint(const char *value, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (errno || end == value || *end || value[0] == '-' || v < lo || v > hi)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* The first line of path (the password): 0, or -EINVAL with err filled. */
static int mqtt_password_read(struct mqtt_exec *m, const struct cp_kv *kv, char *err, size_t cap)
{
    int fd = open(kv->value, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mqtt_err(err, cap, kv, "%s: %s", kv->value, strerror(errno));
    char buf[CP_MQTT_PASSWORD_MAX + 2];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return mqtt_err(err, cap, kv, "%s: %s", kv->value, strerror(e));
    buf[n] = '\0';
    size_t len = strcspn(buf, "\r\n");
    if (len >= CP_MQTT_PASSWORD_MAX || memchr(buf, '\0', (size_t)n))
        return mqtt_err(err, cap, kv,
                        "%s: the password (first line) must be text shorter than "
                        "%u bytes",
                        kv->value, CP_MQTT_PASSWORD_MAX);
    memcpy(m->password, buf, len);
    m->password[len] = '\0';
    m->has_password = true;
    return 0;
}

static int mqtt_template_parse(struct mqtt_template *t, const struct cp_kv *kv, bool filter,
                               char *err, size_t cap)
{
    char probe[CP_KV_VALUE_MAX + 1], why[128];
    if (kv->value[0] == '\0' || cp_template_check(kv->value) != 0)
        return mqtt_err(err, cap, kv,
                        "not a template (placeholders: {id} {type} {activity} "
                        "{seq} {attempt} {key} {arg.NAME})");
    if (mqtt_template_scan(t, kv->value, probe, sizeof(probe), why, sizeof(why)) != 0)
        return mqtt_err(err, cap, kv, "%s", why);
    int rc = filter ? mosquitto_sub_topic_check(probe) : mosquitto_pub_topic_check(probe);
    if (rc != MOSQ_ERR_SUCCESS)
        return mqtt_err(err, cap, kv,
                        filter ? "not an MQTT subscription filter"
                               : "not an MQTT topic (no + or #)");
    if (strlen(probe) >= CP_MQTT_TOPIC_MAX)
        return mqtt_err(err, cap, kv, "longer than %u bytes", CP_MQTT_TOPIC_MAX - 1);
    return 0;
}

/* Copy src, whose length the caller checked against cap. Can't fail. */
static void mqtt_text_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    assert(n < cap);
    memcpy(dst, src, n + 1);
}

/* One key of the section. 0, or -EINVAL with err filled. */
static int mqtt_key(struct mqtt_exec *m, const struct cp_kv *kv, char *err, size_t cap)
{
    const char *k = kv->key, *v = kv->value;
    unsigned u;
    if (strcmp(k, "host") == 0) {
        if (v[0] == '\0' || strlen(v) >= sizeof(m->host))
            return mqtt_err(err, cap, kv, "1 to %zu bytes", sizeof(m->host) - 1);
        mqtt_text_copy(m->host, sizeof(m->host), v);
    } else if (strcmp(k, "port") == 0) {
        if (mqtt_uint(v, 1, 65535, &m->port) != 0)
            return mqtt_err(err, cap, kv, "a port number, 1 to 65535");
    } else if (strcmp(k, "topic") == 0) {
        return mqtt_template_parse(&m->topic, kv, false, err, cap);
    } else if (strcmp(k, "reply_topic") == 0) {
        return mqtt_template_parse(&m->reply, kv, true, err, cap);
    } else if (strcmp(k, "qos") == 0) {
        if (mqtt_uint(v, 0, 1, &u) != 0)
            return mqtt_err(err, cap, kv, "0 or 1");
        m->qos = (int)u;
    } else if (strcmp(k, "client_id") == 0) {
        if (v[0] == '\0' || strlen(v) >= sizeof(m->client_id) ||
            mosquitto_validate_utf8(v, (int)strlen(v)) != MOSQ_ERR_SUCCESS)
            return mqtt_err(err, cap, kv, "UTF-8 text, 1 to %zu bytes", sizeof(m->client_id) - 1);
        mqtt_text_copy(m->client_id, sizeof(m->client_id), v);
    } else if (strcmp(k, "username") == 0) {
        if (v[0] == '\0' || strlen(v) >= sizeof(m->username))
            return mqtt_err(err, cap, kv, "1 to %zu bytes", sizeof(m->username) - 1);
        mqtt_text_copy(m->username, sizeof(m->username), v);
        m->has_username = true;
    } else if (strcmp(k, "password_file") == 0) {
        return mqtt_password_read(m, kv, err, cap);
    } else if (strcmp(k, "keepalive_s") == 0) {
        if (mqtt_uint(v, CP_MQTT_KEEPALIVE_MIN_S, CP_MQTT_KEEPALIVE_MAX_S, &m->keepalive_s) != 0)
            return mqtt_err(err, cap, kv, "seconds, %u to %u", CP_MQTT_KEEPALIVE_MIN_S,
                            CP_MQTT_KEEPALIVE_MAX_S);
    } else {
        return mqtt_err(err, cap, NULL, "line %u: unknown key %s for an mqtt executor", kv->line,
                        k);
    }
    return 0;
}

/* Every key once, the required ones present, values consistent: 0 or -EINVAL. */
static int mqtt_config(struct mqtt_exec *m, const struct cp_kv *kv, unsigned n, char *err,
                       size_t cap)
{
    snprintf(m->host, sizeof(m->host), "127.0.0.1");
    m->port = CP_MQTT_PORT_DEFAULT;
    m->qos = 1;
    m->keepalive_s = CP_MQTT_KEEPALIVE_DEF_S;
    snprintf(m->client_id, sizeof(m->client_id), "sigflow-control-%ld", (long)getpid());
    if (n > CP_KV_MAX)
        return mqtt_err(err, cap, NULL, "more than %u keys", CP_KV_MAX);
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = 0; j < i; j++)
            if (strcmp(kv[i].key, kv[j].key) == 0)
                return mqtt_err(err, cap, &kv[i], "given twice (first on line %u)", kv[j].line);
        int rc = mqtt_key(m, &kv[i], err, cap);
        if (rc != 0)
            return rc;
    }
    if (!m->topic.set)
        return mqtt_err(err, cap, NULL, "an mqtt executor needs a topic");
    if (m->has_password && !m->has_username)
        return mqtt_err(err, cap, NULL, "password_file needs a username");
    return 0;
}

/* ---- the operations ---------------------------------------------------------------------- */

static void mqtt_free(struct mqtt_exec *m)
{
    cp_loop_timer_cancel(m->loop, &m->misc_timer);
    cp_loop_timer_cancel(m->loop, &m->reconnect_timer);
    cp_loop_timer_cancel(m->loop, &m->soon_timer);
    if (m->watch_fd >= 0) {
        cp_loop_watch(m->loop, m->watch_fd, 0, NULL, NULL);
        close(m->watch_fd);
    }
    if (m->mosq) {
        if (m->session == CP_MQTT_UP)
            mosquitto_disconnect(m->mosq); /* best effort, non-blocking */
        mosquitto_destroy(m->mosq);
    }
    while (m->slabs) {
        struct mqtt_slab *b = m->slabs;
        m->slabs = b->next;
        free(b);
    }
    while (m->sub_slabs) {
        struct mqtt_sub_slab *b = m->sub_slabs;
        m->sub_slabs = b->next;
        free(b);
    }
    free(m->by_mid);
    free(m->by_key);
    free(m->subs);
    explicit_bzero(m->password, sizeof(m->password));
    free(m);
    assert(mqtt_lib_users > 0);
    if (--mqtt_lib_users == 0)
        mosquitto_lib_cleanup();
}

static int mqtt_init(struct cp_executor *x, const struct cp_kv *kv, unsigned n, char *err,
                     size_t err_cap)
{
    struct mqtt_exec *m = calloc(1, sizeof(*m));
    if (!m) {
        mqtt_err(err, err_cap, NULL, "out of memory");
        return -ENOMEM;
    }
    if (mqtt_lib_users++ == 0)
        mosquitto_lib_init();
    m->x = x;
    m->loop = x->loop;
    m->watch_fd = -1;
    m->backoff_ms = CP_MQTT_RECONNECT_MIN_MS;
    int rc = mqtt_config(m, kv, n, err, err_cap);
    if (rc == 0) {
        if (m->reply.set) {
            m->by_key = calloc(CP_MQTT_KEY_BUCKETS, sizeof(*m->by_key));
            m->subs = calloc(CP_MQTT_SUB_BUCKETS, sizeof(*m->subs));
        } else if (m->qos == 1) {
            m->by_mid = calloc(CP_MQTT_MID_SLOTS, sizeof(*m->by_mid));
        }
        if ((m->reply.set && (!m->by_key || !m->subs)) ||
            (!m->reply.set && m->qos == 1 && !m->by_mid)) {
            mqtt_err(err, err_cap, NULL, "out of memory");
            rc = -ENOMEM;
        }
    }
    if (rc != 0) {
        mqtt_free(m);
        return rc;
    }
    x->state = m;
    mqtt_connect(m); /* a broker not there yet is retried: init does not depend on it */
    return 0;
}

static int mqtt_start(struct cp_executor *x, struct cp_attempt *a)
{
    struct mqtt_exec *m = x->state;
    assert(m && !m->closing && a->task && a->body_len > 0);
    struct mqtt_slot *s = mqtt_slot_get(m);
    if (!s)
        return m->slots_used >= CP_MQTT_INFLIGHT_MAX ? -EBUSY : -ENOMEM;
    s->a = a;
    a->exec_state = s;
    char topic[CP_MQTT_TOPIC_MAX], filter[CP_MQTT_TOPIC_MAX], why[CHAN_REASON_MAX];
    if (mqtt_topic_build(&m->topic, a, false, topic, why, sizeof(why)) != 0 ||
        (m->reply.placeholders &&
         mqtt_topic_build(&m->reply, a, true, filter, why, sizeof(why)) != 0)) {
        mqtt_finish_fmt(m, s, CP_OUTCOME_FAIL, "%s", why); /* whatever the session's state */
    } else if (m->session == CP_MQTT_DOWN) {
        mqtt_finish_fmt(m, s, CP_OUTCOME_RETRY, "%s", CP_MQTT_DISCONNECTED);
    } else {
        s->state = CP_MQTT_SLOT_WAITING; /* CONNECTING: until the CONNACK */
        mqtt_list_push(&m->flight, s);
        if (m->by_key)
            mqtt_key_insert(m, s); /* before publishing: a reply may come before the PUBACK */
        if (m->session == CP_MQTT_UP) {
            mqtt_publish(m, s, topic);
            mqtt_check_written(m);
            mqtt_watch_update(m);
        }
    }
    mqtt_soon_arm(m); /* outcomes decided here are delivered from the loop, not from start */
    return 0;
}

static void mqtt_abandon(struct cp_executor *x, struct cp_attempt *a)
{
    struct mqtt_exec *m = x->state;
    struct mqtt_slot *s = a->exec_state;
    if (!s)
        return;
    assert(s->a == a);
    if (s->state == CP_MQTT_SLOT_READY) {
        mqtt_list_remove(&m->ready, s);
        s->state = CP_MQTT_SLOT_FREE;
    } else {
        mqtt_detach(m, s); /* a late PUBACK or reply then matches nothing */
    }
    mqtt_slot_put(m, s);
    a->exec_state = NULL;
    m->stats.abandoned++;
    mqtt_watch_update(m); /* an UNSUBSCRIBE may wait to be written */
    mqtt_soon_arm(m);     /* (a failed watch ended the session: its outcomes) */
}

static void mqtt_fini(struct cp_executor *x)
{
    struct mqtt_exec *m = x->state;
    if (!m)
        return;
    x->state = NULL;
    m->closing = true;
    if (m->depth == 0)
        mqtt_free(m);
}

void cp_exec_mqtt_stats(const struct cp_executor *x, struct cp_mqtt_stats *out)
{
    const struct mqtt_exec *m = x->state;
    assert(m);
    *out = m->stats;
}

const struct cp_executor_ops cp_exec_mqtt_ops = {
    .kind = "mqtt",
    .init = mqtt_init,
    .start = mqtt_start,
    .abandon = mqtt_abandon,
    .fini = mqtt_fini,
};
