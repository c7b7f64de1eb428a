/*
 * test_record.c — the daemon's log records (dp_record.h): every layout pinned byte for
 * byte (the on-disk format must not move), round trips, and decoding that refuses every
 * length the layout does not allow.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dp_record.h"
#include "wf_key.h"

static const struct rt_hlink link_a = { .a = 0x0102030405060708ull, .b = 0x1112131415161718ull };

static void test_signal_layout(void **state)
{
    (void)state;
    static const uint8_t fields[] = { 0x82, 0x01, 0x02 };
    struct dp_rec_signal s = { .event_id = 0x1122334455667788ull,
                               .rx_ns = 0x0a0b0c0d0e0f1011ull,
                               .flags = DP_REC_SIG_HAS_EVENT_ID,
                               .type_len = 3,
                               .id_len = 2,
                               .signal_len = 4,
                               .fields_len = sizeof(fields),
                               .prev = link_a,
                               .type = "dev",
                               .id = "d1",
                               .signal = "ping",
                               .fields = fields };
    uint8_t out[128];
    uint32_t len = dp_rec_signal_encode(&s, out, sizeof(out));
    assert_int_equal(len, 40 + 3 + 2 + 4 + 3);
    static const uint8_t want[] = {
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* event_id */
        0x11, 0x10, 0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, /* rx_ns */
        0x01, 3,    2,    4,    3,    0,    0,    0,    /* flags, lengths, 0 */
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* prev.a */
        0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, /* prev.b */
        'd',  'e',  'v',  'd',  '1',  'p',  'i',  'n',  'g', 0x82, 0x01, 0x02,
    };
    assert_memory_equal(out, want, sizeof(want));
    struct dp_rec r;
    assert_int_equal(dp_rec_decode(DP_REC_SIGNAL, out, len, &r), 0);
    assert_int_equal(r.u.signal.event_id, s.event_id);
    assert_int_equal(r.u.signal.rx_ns, s.rx_ns);
    assert_memory_equal(r.u.signal.signal, "ping", 4);
    assert_memory_equal(r.u.signal.fields, fields, sizeof(fields));
    assert_true(dp_rec_prev(&r).a == link_a.a && dp_rec_prev(&r).b == link_a.b);
    assert_true(dp_rec_key_matches(&r, wf_key_make("dev", 3, "d1", 2)));
    assert_false(dp_rec_key_matches(&r, wf_key_make("dev", 3, "d2", 2)));
    /* every other length is refused, and so is an empty name */
    for (uint32_t l = 0; l < len + 4; l++)
        if (l != len)
            assert_int_equal(dp_rec_decode(DP_REC_SIGNAL, out, l, &r), -EBADMSG);
    out[17] = 0;
    out[20] = 3 + 3;
    assert_int_equal(dp_rec_decode(DP_REC_SIGNAL, out, len, &r), -EBADMSG);
    /* the copy is bounded by the buffer, not by the struct's lengths */
    assert_int_equal(dp_rec_signal_encode(&s, out, len - 1), 0);
}

static void test_fixed_layouts(void **state)
{
    (void)state;
    uint8_t out[64];
    struct dp_rec r;
    struct dp_rec_timer t = { .slot = 0x01020304, .due_ns = 0x1112131415161718ull, .prev = link_a };
    assert_int_equal(dp_rec_timer_encode(&t, out, sizeof(out)), 28);
    static const uint8_t want_t[] = { 0x04, 0x03, 0x02, 0x01, 0x18, 0x17, 0x16,
                                      0x15, 0x14, 0x13, 0x12, 0x11, 0x08 };
    assert_memory_equal(out, want_t, sizeof(want_t));
    assert_int_equal(dp_rec_decode(DP_REC_TIMER, out, 28, &r), 0);
    assert_int_equal(r.u.timer.slot, t.slot);
    assert_int_equal(r.u.timer.due_ns, t.due_ns);
    assert_int_equal(dp_rec_decode(DP_REC_TIMER, out, 27, &r), -EBADMSG);
    assert_int_equal(dp_rec_timer_encode(&t, out, 27), 0);

    struct dp_rec_activity a = {
        .act = 0x0102, .failed = 1, .seq = 0x0a0b0c0d, .result = -2, .now_ns = 77, .prev = link_a
    };
    assert_int_equal(dp_rec_activity_encode(&a, out, sizeof(out)), 40);
    static const uint8_t want_a[] = { 0x02, 0x01, 1,    0,    0x0d, 0x0c, 0x0b, 0x0a,
                                      0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      77,   0,    0,    0,    0,    0,    0,    0 };
    assert_memory_equal(out, want_a, sizeof(want_a));
    assert_int_equal(dp_rec_decode(DP_REC_ACTIVITY, out, 40, &r), 0);
    assert_int_equal(r.u.activity.result, -2);
    assert_int_equal(r.u.activity.seq, a.seq);
    assert_int_equal(r.u.activity.failed, 1);
    assert_int_equal(dp_rec_decode(DP_REC_ACTIVITY, out, 41, &r), -EBADMSG);

    assert_int_equal(dp_rec_deploy_encode(0x0102, out, sizeof(out)), 8);
    assert_int_equal(dp_rec_decode(DP_REC_DEPLOY, out, 8, &r), 0);
    assert_int_equal(r.u.deploy_gen, 0x0102);
    assert_int_equal(dp_rec_decode(DP_REC_DEPLOY, out, 7, &r), -EBADMSG);

    struct dp_rec_sweep sw = { .now_ns = 5, .budget = 1024 };
    assert_int_equal(dp_rec_sweep_encode(&sw, out, sizeof(out)), 12);
    static const uint8_t want_s[] = { 5, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0 };
    assert_memory_equal(out, want_s, sizeof(want_s));
    assert_int_equal(dp_rec_decode(DP_REC_SWEEP, out, 12, &r), 0);
    assert_int_equal(r.u.sweep.budget, 1024);

    assert_int_equal(dp_rec_decode(99, out, 12, &r), -ENOENT);
    assert_int_equal(dp_rec_decode(0, out, 12, &r), -ENOENT);
}

static void test_note(void **state)
{
    (void)state;
    uint8_t out[DP_REC_NOTE_MAX + 8];
    struct dp_rec_note n = { .prev = link_a,
                             .def_id = 0x0304,
                             .flags = DP_REC_NOTE_CREATED | DP_REC_NOTE_COMPLETED,
                             .nruns = 2,
                             .runs = { { .act = 1, .seq = 7 }, { .act = 0x0102, .seq = 8 } } };
    assert_int_equal(dp_rec_note_encode(&n, out, sizeof(out)), 24 + 16);
    static const uint8_t want[] = { 0x04, 0x03, 3, 2, 0,    0,    0, 0, 1, 0, 0, 0,
                                    7,    0,    0, 0, 0x02, 0x01, 0, 0, 8, 0, 0, 0 };
    assert_memory_equal(out + 16, want, sizeof(want));
    struct dp_rec r;
    assert_int_equal(dp_rec_decode(DP_REC_NOTE, out, 40, &r), 0);
    assert_int_equal(r.u.note.nruns, 2);
    assert_int_equal(r.u.note.runs[1].act, 0x0102);
    assert_int_equal(r.u.note.runs[1].seq, 8);
    assert_int_equal(dp_rec_decode(DP_REC_NOTE, out, 32, &r), -EBADMSG);
    n.nruns = DP_REC_NOTE_RUNS;
    assert_int_equal(dp_rec_note_encode(&n, out, sizeof(out)), DP_REC_NOTE_MAX);
    n.nruns = DP_REC_NOTE_RUNS + 1;
    assert_int_equal(dp_rec_note_encode(&n, out, sizeof(out)), 0);
    /* a count above what any writer lists is refused, whatever the length says */
    uint8_t big[24 + 8 * 9];
    memset(big, 0, sizeof(big));
    big[19] = 9;
    assert_int_equal(dp_rec_decode(DP_REC_NOTE, big, sizeof(big), &r), -EBADMSG);
}

static void test_delete(void **state)
{
    (void)state;
    uint8_t out[DP_REC_DELETE_MAX];
    struct dp_rec_delete d = { .type_len = 5, .id_len = 2, .type = "order", .id = "o7" };
    assert_int_equal(dp_rec_delete_encode(&d, out, sizeof(out)), 9);
    assert_int_equal(out[0], 5);
    assert_int_equal(out[1], 2);
    assert_memory_equal(out + 2, "ordero7", 7);
    struct dp_rec r;
    assert_int_equal(dp_rec_decode(DP_REC_DELETE, out, 9, &r), 0);
    assert_true(dp_rec_key_matches(&r, wf_key_make("order", 5, "o7", 2)));
    assert_int_equal(dp_rec_decode(DP_REC_DELETE, out, 8, &r), -EBADMSG);
    assert_int_equal(dp_rec_decode(DP_REC_DELETE, out, 1, &r), -EBADMSG);
    out[1] = 0;
    assert_int_equal(dp_rec_decode(DP_REC_DELETE, out, 7, &r), -EBADMSG);
}

static void test_hlink(void **state)
{
    (void)state;
    struct rt_hlink l = dp_hlink_make(0x12345, 7, 0xabcdef, 0x1000, 0x123456789abcull);
    struct dp_hlink_parts p = dp_hlink_split(l);
    assert_int_equal(p.epoch, 0x2345); /* 16 bits kept */
    assert_int_equal(p.core, 7);
    assert_int_equal(p.segment, 0xabcdef);
    assert_int_equal(p.offset, 0x1000);
    assert_int_equal(p.lsn_low, 0x123456789abcull & 0xffffffffffull);
    assert_true(dp_hlink_lsn_matches(l, 0x123456789abcull));
    assert_false(dp_hlink_lsn_matches(l, 0x123456789abdull));
}

/* ATTEMPT (8): 40-byte header, then the executor's reason; lengths checked both ways. */
static void test_attempt(void **state)
{
    (void)state;
    uint8_t out[DP_REC_ATTEMPT_MAX + 8];
    struct dp_rec r;
    struct dp_rec_attempt a = { .act = 0x0102,
                                .reason_len = 8,
                                .seq = 0x0a0b0c0d,
                                .attempt = 3,
                                .now_ns = 77,
                                .prev = { 0, 0 },
                                .reason = "HTTP 503" };
    assert_int_equal(dp_rec_attempt_encode(&a, out, sizeof(out)), 48);
    static const uint8_t want[] = { 0x02, 0x01, 8, 0, 0x0d, 0x0c, 0x0b, 0x0a, 3, 0, 0, 0,
                                    0,    0,    0, 0, 77,   0,    0,    0,    0, 0, 0, 0 };
    assert_memory_equal(out, want, sizeof(want));
    assert_memory_equal(out + 40, "HTTP 503", 8);
    assert_int_equal(dp_rec_decode(DP_REC_ATTEMPT, out, 48, &r), 0);
    assert_int_equal(r.u.attempt.attempt, 3);
    assert_int_equal(r.u.attempt.seq, a.seq);
    assert_int_equal(r.u.attempt.reason_len, 8);
    assert_memory_equal(r.u.attempt.reason, "HTTP 503", 8);
    assert_int_equal(dp_rec_decode(DP_REC_ATTEMPT, out, 47, &r), -EBADMSG); /* reason cut */
    assert_int_equal(dp_rec_decode(DP_REC_ATTEMPT, out, 49, &r), -EBADMSG); /* bytes after */
    assert_int_equal(dp_rec_decode(DP_REC_ATTEMPT, out, 39, &r), -EBADMSG);
    out[12] = 1; /* reserved */
    assert_int_equal(dp_rec_decode(DP_REC_ATTEMPT, out, 48, &r), -EBADMSG);
    a.reason_len = DP_REC_REASON_MAX + 1;
    assert_int_equal(dp_rec_attempt_encode(&a, out, sizeof(out)), 0);
    a.reason_len = 8;
    assert_int_equal(dp_rec_attempt_encode(&a, out, 47), 0); /* does not fit */
    out[2] = 0xff, out[3] = 0xff; /* a reason length beyond the maximum */
    assert_int_equal(dp_rec_decode(DP_REC_ATTEMPT, out, 48, &r), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_layout), cmocka_unit_test(test_fixed_layouts),
        cmocka_unit_test(test_note),          cmocka_unit_test(test_delete),
        cmocka_unit_test(test_hlink),         cmocka_unit_test(test_attempt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
