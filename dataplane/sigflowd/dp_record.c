/*
 * dp_record.c — encode and decode the daemon's log records (layouts in dp_record.h).
 */
#include <errno.h>
#include <string.h>

#include "dp_record.h"
#include "wf_key.h"
#include "sf_le.h"

static void dp_hlink_put(uint8_t *p, struct rt_hlink l)
{
    sf_le64_put(p, l.a);
    sf_le64_put(p + 8, l.b);
}

static struct rt_hlink dp_hlink_get(const uint8_t *p)
{
    return (struct rt_hlink){ .a = sf_le64_get(p), .b = sf_le64_get(p + 8) };
}

uint32_t dp_rec_signal_encode(const struct dp_rec_signal *s, uint8_t *out, size_t cap)
{
    size_t need =
        (size_t)DP_REC_SIGNAL_HDR + s->type_len + s->id_len + s->signal_len + s->fields_len;
    if (need > cap)
        return 0;
    sf_le64_put(out, s->event_id);
    sf_le64_put(out + 8, s->rx_ns);
    out[16] = s->flags & (DP_REC_SIG_HAS_EVENT_ID | DP_REC_SIG_FIELDS_JSON);
    out[17] = s->type_len;
    out[18] = s->id_len;
    out[19] = s->signal_len;
    sf_le16_put(out + 20, s->fields_len);
    sf_le16_put(out + 22, 0);
    dp_hlink_put(out + 24, s->prev);
    uint8_t *p = out + DP_REC_SIGNAL_HDR;
    memcpy(p, s->type, s->type_len);
    p += s->type_len;
    memcpy(p, s->id, s->id_len);
    p += s->id_len;
    memcpy(p, s->signal, s->signal_len);
    p += s->signal_len;
    memcpy(p, s->fields, s->fields_len);
    return (uint32_t)need;
}

uint32_t dp_rec_timer_encode(const struct dp_rec_timer *t, uint8_t *out, size_t cap)
{
    if (cap < DP_REC_TIMER_LEN)
        return 0;
    sf_le32_put(out, t->slot);
    sf_le64_put(out + 4, t->due_ns);
    dp_hlink_put(out + 12, t->prev);
    return DP_REC_TIMER_LEN;
}

uint32_t dp_rec_activity_encode(const struct dp_rec_activity *a, uint8_t *out, size_t cap)
{
    if (cap < DP_REC_ACTIVITY_LEN)
        return 0;
    sf_le16_put(out, a->act);
    out[2] = a->failed ? 1 : 0;
    out[3] = 0;
    sf_le32_put(out + 4, a->seq);
    sf_le64_put(out + 8, (uint64_t)a->result);
    sf_le64_put(out + 16, a->now_ns);
    dp_hlink_put(out + 24, a->prev);
    return DP_REC_ACTIVITY_LEN;
}

uint32_t dp_rec_attempt_encode(const struct dp_rec_attempt *a, uint8_t *out, size_t cap)
{
    if (a->reason_len > DP_REC_REASON_MAX || cap < DP_REC_ATTEMPT_HDR + (size_t)a->reason_len)
        return 0;
    sf_le16_put(out, a->act);
    sf_le16_put(out + 2, a->reason_len);
    sf_le32_put(out + 4, a->seq);
    sf_le32_put(out + 8, a->attempt);
    sf_le32_put(out + 12, 0);
    sf_le64_put(out + 16, a->now_ns);
    dp_hlink_put(out + 24, a->prev);
    if (a->reason_len)
        memcpy(out + DP_REC_ATTEMPT_HDR, a->reason, a->reason_len);
    return DP_REC_ATTEMPT_HDR + a->reason_len;
}

uint32_t dp_rec_deploy_encode(uint64_t gen, uint8_t *out, size_t cap)
{
    if (cap < DP_REC_DEPLOY_LEN)
        return 0;
    sf_le64_put(out, gen);
    return DP_REC_DEPLOY_LEN;
}

uint32_t dp_rec_note_encode(const struct dp_rec_note *n, uint8_t *out, size_t cap)
{
    if (n->nruns > DP_REC_NOTE_RUNS)
        return 0;
    uint32_t len = DP_REC_NOTE_HDR + DP_REC_NOTE_RUN * n->nruns;
    if (cap < len)
        return 0;
    dp_hlink_put(out, n->prev);
    sf_le16_put(out + 16, n->def_id);
    out[18] = n->flags & (DP_REC_NOTE_CREATED | DP_REC_NOTE_COMPLETED);
    out[19] = n->nruns;
    sf_le32_put(out + 20, 0);
    for (unsigned i = 0; i < n->nruns; i++) {
        uint8_t *t = out + DP_REC_NOTE_HDR + DP_REC_NOTE_RUN * i;
        sf_le16_put(t, n->runs[i].act);
        sf_le16_put(t + 2, 0);
        sf_le32_put(t + 4, n->runs[i].seq);
    }
    return len;
}

uint32_t dp_rec_sweep_encode(const struct dp_rec_sweep *s, uint8_t *out, size_t cap)
{
    if (cap < DP_REC_SWEEP_LEN)
        return 0;
    sf_le64_put(out, s->now_ns);
    sf_le32_put(out + 8, s->budget);
    return DP_REC_SWEEP_LEN;
}

uint32_t dp_rec_delete_encode(const struct dp_rec_delete *d, uint8_t *out, size_t cap)
{
    size_t need = (size_t)DP_REC_DELETE_HDR + d->type_len + d->id_len;
    if (need > cap)
        return 0;
    out[0] = d->type_len;
    out[1] = d->id_len;
    memcpy(out + 2, d->type, d->type_len);
    memcpy(out + 2 + d->type_len, d->id, d->id_len);
    return (uint32_t)need;
}

static int dp_rec_decode_signal(const uint8_t *p, uint32_t len, struct dp_rec_signal *s)
{
    if (len < DP_REC_SIGNAL_HDR)
        return -EBADMSG;
    s->event_id = sf_le64_get(p);
    s->rx_ns = sf_le64_get(p + 8);
    s->flags = p[16];
    s->type_len = p[17];
    s->id_len = p[18];
    s->signal_len = p[19];
    s->fields_len = sf_le16_get(p + 20);
    if (DP_REC_SIGNAL_HDR + (uint32_t)s->type_len + s->id_len + s->signal_len + s->fields_len !=
            len ||
        s->type_len == 0 || s->id_len == 0 || s->signal_len == 0)
        return -EBADMSG;
    s->prev = dp_hlink_get(p + 24);
    s->type = (const char *)p + DP_REC_SIGNAL_HDR;
    s->id = s->type + s->type_len;
    s->signal = s->id + s->id_len;
    s->fields = (const uint8_t *)s->signal + s->signal_len;
    return 0;
}

int dp_rec_decode(unsigned type, const uint8_t *p, uint32_t len, struct dp_rec *out)
{
    memset(out, 0, sizeof(*out));
    out->type = (enum dp_rec_type)type;
    switch (type) {
    case DP_REC_SIGNAL:
        return dp_rec_decode_signal(p, len, &out->u.signal);
    case DP_REC_TIMER:
        if (len != DP_REC_TIMER_LEN)
            return -EBADMSG;
        out->u.timer.slot = sf_le32_get(p);
        out->u.timer.due_ns = sf_le64_get(p + 4);
        out->u.timer.prev = dp_hlink_get(p + 12);
        return 0;
    case DP_REC_ACTIVITY:
        if (len != DP_REC_ACTIVITY_LEN)
            return -EBADMSG;
        out->u.activity.act = sf_le16_get(p);
        out->u.activity.failed = p[2] != 0;
        out->u.activity.seq = sf_le32_get(p + 4);
        out->u.activity.result = (int64_t)sf_le64_get(p + 8);
        out->u.activity.now_ns = sf_le64_get(p + 16);
        out->u.activity.prev = dp_hlink_get(p + 24);
        return 0;
    case DP_REC_ATTEMPT: {
        struct dp_rec_attempt *a = &out->u.attempt;
        if (len < DP_REC_ATTEMPT_HDR || sf_le16_get(p + 2) > DP_REC_REASON_MAX ||
            len != DP_REC_ATTEMPT_HDR + (uint32_t)sf_le16_get(p + 2) || sf_le32_get(p + 12) != 0)
            return -EBADMSG;
        a->act = sf_le16_get(p);
        a->reason_len = sf_le16_get(p + 2);
        a->seq = sf_le32_get(p + 4);
        a->attempt = sf_le32_get(p + 8);
        a->now_ns = sf_le64_get(p + 16);
        a->prev = dp_hlink_get(p + 24);
        a->reason = (const char *)p + DP_REC_ATTEMPT_HDR;
        return 0;
    }
    case DP_REC_DEPLOY:
        if (len != DP_REC_DEPLOY_LEN)
            return -EBADMSG;
        out->u.deploy_gen = sf_le64_get(p);
        return 0;
    case DP_REC_NOTE: {
        struct dp_rec_note *n = &out->u.note;
        if (len < DP_REC_NOTE_HDR || p[19] > DP_REC_NOTE_RUNS ||
            len != DP_REC_NOTE_HDR + DP_REC_NOTE_RUN * (uint32_t)p[19])
            return -EBADMSG;
        n->prev = dp_hlink_get(p);
        n->def_id = sf_le16_get(p + 16);
        n->flags = p[18];
        n->nruns = p[19];
        for (unsigned i = 0; i < n->nruns; i++) {
            const uint8_t *t = p + DP_REC_NOTE_HDR + DP_REC_NOTE_RUN * i;
            n->runs[i].act = sf_le16_get(t);
            n->runs[i].seq = sf_le32_get(t + 4);
        }
        return 0;
    }
    case DP_REC_SWEEP:
        if (len != DP_REC_SWEEP_LEN)
            return -EBADMSG;
        out->u.sweep.now_ns = sf_le64_get(p);
        out->u.sweep.budget = sf_le32_get(p + 8);
        return 0;
    case DP_REC_DELETE: {
        struct dp_rec_delete *d = &out->u.del;
        if (len < DP_REC_DELETE_HDR || len != DP_REC_DELETE_HDR + (uint32_t)p[0] + p[1] ||
            p[0] == 0 || p[1] == 0)
            return -EBADMSG;
        d->type_len = p[0];
        d->id_len = p[1];
        d->type = (const char *)p + 2;
        d->id = d->type + d->type_len;
        return 0;
    }
    default:
        return -ENOENT;
    }
}

int dp_rec_key_matches(const struct dp_rec *r, struct wf_key key)
{
    struct wf_key k;
    if (r->type == DP_REC_SIGNAL)
        k = wf_key_make(r->u.signal.type, r->u.signal.type_len, r->u.signal.id, r->u.signal.id_len);
    else if (r->type == DP_REC_DELETE)
        k = wf_key_make(r->u.del.type, r->u.del.type_len, r->u.del.id, r->u.del.id_len);
    else
        return 1;
    return wf_key_equal(k, key);
}

struct rt_hlink dp_rec_prev(const struct dp_rec *r)
{
    switch (r->type) {
    case DP_REC_SIGNAL:
        return r->u.signal.prev;
    case DP_REC_TIMER:
        return r->u.timer.prev;
    case DP_REC_ACTIVITY:
        return r->u.activity.prev;
    case DP_REC_NOTE:
        return r->u.note.prev;
    case DP_REC_ATTEMPT:
        return r->u.attempt.prev;
    default:
        return (struct rt_hlink){ 0, 0 };
    }
}
