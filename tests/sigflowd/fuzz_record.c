/*
 * fuzz_record.c — replay's decoding of the daemon's log records (dp_record.h), as recovery
 * and the history reader call it on bytes read from disk. Input: one byte of record type,
 * then the payload. Checks: nothing is read outside the payload (ASan), a record that
 * decodes re-encodes to the same length and decodes again to the same values, and its
 * names are views inside the payload.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_record.h"

#define FR_CHECK(c)           \
    do {                      \
        if (!(c))             \
            __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fr_inside(const void *p, size_t n, const uint8_t *base, size_t len)
{
    const uint8_t *q = p;
    return n == 0 || (q >= base && q + n <= base + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 + DP_REC_READ_MAX)
        return 0;
    unsigned type = data[0] % 10; /* 0 and 9: not a type */
    uint32_t len = (uint32_t)(size - 1);
    uint8_t *p = malloc(len ? len : 1); /* its own allocation: ASan sees every overread */
    FR_CHECK(p != NULL);
    memcpy(p, data + 1, len);
    struct dp_rec r, again;
    if (dp_rec_decode(type, p, len, &r) == 0) {
        uint8_t out[DP_REC_READ_MAX];
        uint32_t n = 0;
        switch (r.type) {
        case DP_REC_SIGNAL:
            FR_CHECK(fr_inside(r.u.signal.type, r.u.signal.type_len, p, len));
            FR_CHECK(fr_inside(r.u.signal.fields, r.u.signal.fields_len, p, len));
            n = dp_rec_signal_encode(&r.u.signal, out, sizeof(out));
            break;
        case DP_REC_TIMER:
            n = dp_rec_timer_encode(&r.u.timer, out, sizeof(out));
            break;
        case DP_REC_ACTIVITY:
            n = dp_rec_activity_encode(&r.u.activity, out, sizeof(out));
            break;
        case DP_REC_DEPLOY:
            n = dp_rec_deploy_encode(r.u.deploy_gen, out, sizeof(out));
            break;
        case DP_REC_NOTE:
            n = dp_rec_note_encode(&r.u.note, out, sizeof(out));
            break;
        case DP_REC_SWEEP:
            n = dp_rec_sweep_encode(&r.u.sweep, out, sizeof(out));
            break;
        case DP_REC_DELETE:
            FR_CHECK(fr_inside(r.u.del.id, r.u.del.id_len, p, len));
            n = dp_rec_delete_encode(&r.u.del, out, sizeof(out));
            break;
        case DP_REC_ATTEMPT:
            FR_CHECK(fr_inside(r.u.attempt.reason, r.u.attempt.reason_len, p, len));
            n = dp_rec_attempt_encode(&r.u.attempt, out, sizeof(out));
            break;
        }
        FR_CHECK(n == len);
        FR_CHECK(dp_rec_decode(type, out, n, &again) == 0);
        struct rt_hlink a = dp_rec_prev(&r), b = dp_rec_prev(&again);
        FR_CHECK(a.a == b.a && a.b == b.b);
        if (r.type == DP_REC_SIGNAL) /* the same bytes as far as the record's meaning goes */
            FR_CHECK(memcmp(out + DP_REC_SIGNAL_HDR, p + DP_REC_SIGNAL_HDR,
                            len - DP_REC_SIGNAL_HDR) == 0 &&
                     again.u.signal.event_id == r.u.signal.event_id);
    }
    free(p);
    return 0;
}
