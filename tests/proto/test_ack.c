/* test_ack — ACK datagrams: layout, round trip, every malformation refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proto_test_util.h"
#include "sf_proto.h"

static const struct sf_ack_hdr base_hdr = {
    .sender_id = 0xdeadbeef,
    .frame_seq = 0x0102030405060708ull,
    .entry_count = 3,
    .owner = 1,
    .durable_lsn = 0x1122334455667788ull,
};
static const struct sf_ack_entry base_entries[3] = {
    { .event_id = 100, .event_index = 0, .status = SF_ACK_APPLIED },
    { .event_id = 0xffffffffffffffffull, .event_index = 5, .status = SF_ACK_OVERLOADED },
    { .event_id = 7, .event_index = 63, .status = SF_ACK_MALFORMED },
};

static int encode_base(uint8_t *b, size_t cap)
{
    return sf_ack_encode(b, cap, &base_hdr, base_entries);
}

static void test_round_trip_and_layout(void **state)
{
    (void)state;
    uint8_t b[256];
    int len = encode_base(b, sizeof(b));
    assert_int_equal(len, SF_ACK_HDR_LEN + 3 * SF_ACK_ENTRY_LEN);
    /* Byte layout (docs/protocol.md). */
    assert_int_equal(b[0], 'S');
    assert_int_equal(b[1], 'F');
    assert_int_equal(b[2], 1);
    assert_int_equal(b[3], SF_FLAG_ACK);
    assert_int_equal(b[4], 0xef);
    assert_int_equal(b[8], 0x08);
    assert_int_equal(sf_le16_get(b + 16), 3);
    assert_int_equal(sf_le16_get(b + 18), SF_ACK_HDR_LEN);
    assert_int_equal(sf_le16_get(b + 20), 1);
    assert_int_equal(b[24], 0x88);
    assert_int_equal(b[32], 100);
    assert_int_equal(sf_le16_get(b + 32 + 12 + 8), 5);
    assert_int_equal(b[32 + 12 + 10], SF_ACK_OVERLOADED);

    struct sf_ack_hdr h;
    struct sf_ack_entry e[SF_ACK_ENTRIES_MAX];
    assert_int_equal(sf_ack_decode(b, (size_t)len, &h, e, SF_ACK_ENTRIES_MAX), 3);
    assert_int_equal(h.sender_id, base_hdr.sender_id);
    assert_true(h.frame_seq == base_hdr.frame_seq);
    assert_int_equal(h.entry_count, 3);
    assert_int_equal(h.owner, 1);
    assert_true(h.durable_lsn == base_hdr.durable_lsn);
    for (int i = 0; i < 3; i++) {
        assert_true(e[i].event_id == base_entries[i].event_id);
        assert_int_equal(e[i].event_index, base_entries[i].event_index);
        assert_int_equal(e[i].status, base_entries[i].status);
    }
    /* Valid but more entries than the caller's array. */
    assert_int_equal(sf_ack_decode(b, (size_t)len, &h, e, 2), SF_ERR_NO_SPACE);
}

static void test_max_entries(void **state)
{
    (void)state;
    struct sf_ack_entry in[SF_ACK_ENTRIES_MAX + 1], out[SF_ACK_ENTRIES_MAX];
    for (unsigned i = 0; i <= SF_ACK_ENTRIES_MAX; i++)
        in[i] = (struct sf_ack_entry){ .event_id = i * 3,
                                       .event_index = (uint16_t)(i % 64),
                                       .status = (uint8_t)(i % SF_ACK_STATUS_COUNT) };
    struct sf_ack_hdr h = base_hdr;
    h.entry_count = SF_ACK_ENTRIES_MAX;
    uint8_t b[1024];
    int len = sf_ack_encode(b, sizeof(b), &h, in);
    assert_int_equal(len, SF_ACK_HDR_LEN + SF_ACK_ENTRIES_MAX * SF_ACK_ENTRY_LEN);
    struct sf_ack_hdr back;
    assert_int_equal(sf_ack_decode(b, (size_t)len, &back, out, SF_ACK_ENTRIES_MAX),
                     SF_ACK_ENTRIES_MAX);
    for (unsigned i = 0; i < SF_ACK_ENTRIES_MAX; i++) {
        assert_true(out[i].event_id == in[i].event_id);
        assert_int_equal(out[i].event_index, in[i].event_index);
        assert_int_equal(out[i].status, in[i].status);
    }
    h.entry_count = SF_ACK_ENTRIES_MAX + 1;
    assert_int_equal(sf_ack_encode(b, sizeof(b), &h, in), SF_ERR_BAD_ACK);
    /* Patch the count to 65 on the wire (with the length to match): refused. */
    len = SF_ACK_HDR_LEN + (SF_ACK_ENTRIES_MAX + 1) * SF_ACK_ENTRY_LEN;
    memset(b + len - SF_ACK_ENTRY_LEN, 0, SF_ACK_ENTRY_LEN);
    sf_le16_put(b + 16, SF_ACK_ENTRIES_MAX + 1);
    assert_int_equal(sf_ack_decode(b, (size_t)len, &back, out, SF_ACK_ENTRIES_MAX), SF_ERR_BAD_ACK);
}

static void test_encode_errors(void **state)
{
    (void)state;
    uint8_t b[256];
    struct sf_ack_hdr h = base_hdr;
    struct sf_ack_entry e[3];
    memcpy(e, base_entries, sizeof(e));
    int full = encode_base(b, sizeof(b));
    assert_int_equal(encode_base(b, (size_t)full - 1), SF_ERR_NO_SPACE);
    assert_int_equal(encode_base(b, (size_t)full), full);
    h.entry_count = 0;
    assert_int_equal(sf_ack_encode(b, sizeof(b), &h, e), SF_ERR_BAD_ACK);
    h.entry_count = 3;
    e[1].status = SF_ACK_STATUS_COUNT;
    assert_int_equal(sf_ack_encode(b, sizeof(b), &h, e), SF_ERR_BAD_ACK);
    e[1].status = 0;
    e[2].event_index = SF_FRAME_EVENTS_MAX;
    assert_int_equal(sf_ack_encode(b, sizeof(b), &h, e), SF_ERR_BAD_ACK);
}

/* Each malformation of a valid ACK, on its own. */
static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        int off;     /* byte to change, or -1 */
        uint8_t val; /* its new value */
        int len_delta;
    } cases[] = {
        { "magic", 0, 'X', 0 },
        { "version 2", 2, 2, 0 },
        { "flags 0", 3, 0, 0 },
        { "flags ACK|ACK_REQ", 3, SF_FLAG_ACK | SF_FLAG_ACK_REQ, 0 },
        { "count 0", 16, 0, 0 },
        { "count 4", 16, 4, 0 },
        { "count 2", 16, 2, 0 },
        { "header_len 40", 18, 40, 0 },
        { "reserved", 22, 1, 0 },
        { "status 7", 32 + 10, SF_ACK_STATUS_COUNT, 0 },
        { "event_index 64", 32 + 8, 64, 0 },
        { "event_index high byte", 32 + 9, 1, 0 },
        { "entry reserved", 32 + 11, 1, 0 },
        { "one byte short", -1, 0, -1 },
        { "one byte long", -1, 0, 1 },
        { "header only", -1, 0, -36 },
        { "31 bytes", -1, 0, -37 },
        { "empty", -1, 0, -68 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t b[256] = { 0 };
        int len = encode_base(b, sizeof(b));
        assert_int_equal(len, 68);
        if (cases[i].off >= 0)
            b[cases[i].off] = cases[i].val;
        len += cases[i].len_delta;
        struct sf_ack_hdr h;
        struct sf_ack_entry e[SF_ACK_ENTRIES_MAX];
        int rc = sf_ack_decode(b, (size_t)len, &h, e, SF_ACK_ENTRIES_MAX);
        if (rc != SF_ERR_BAD_ACK)
            fail_msg("%s: got %d", cases[i].what, rc);
    }
}

/* An ACK is not a data frame and a data frame is not an ACK. */
static void test_ack_vs_frame(void **state)
{
    (void)state;
    uint8_t b[256];
    int len = encode_base(b, sizeof(b));
    struct sf_frame_hdr fh;
    struct sf_event evs[4];
    assert_int_equal(sf_datagram_parse(b, (size_t)len, &fh, evs, 4), SF_ERR_BAD_FLAGS);
    size_t flen = t_frame(b, 1);
    struct sf_ack_hdr h;
    struct sf_ack_entry e[4];
    assert_int_equal(sf_ack_decode(b, flen, &h, e, 4), SF_ERR_BAD_ACK);
    /* The ACK for n events is smaller than the smallest frame of n events. */
    for (unsigned n = 1; n <= SF_FRAME_EVENTS_MAX; n++)
        assert_true(SF_ACK_HDR_LEN + n * SF_ACK_ENTRY_LEN <
                    SF_FRAME_HDR_LEN + n * (SF_EVENT_HDR_LEN + 3));
}

static void test_status_names(void **state)
{
    (void)state;
    static const char *want[SF_ACK_STATUS_COUNT] = { "applied",   "duplicate",  "stale",
                                                     "unknown",   "overloaded", "unauthenticated",
                                                     "malformed", "full",       "busy" };
    for (int i = 0; i < SF_ACK_STATUS_COUNT; i++)
        assert_string_equal(sf_ack_status_name((enum sf_ack_status)i), want[i]);
    assert_string_equal(sf_ack_status_name((enum sf_ack_status)SF_ACK_STATUS_COUNT),
                        "unknown_status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_layout), cmocka_unit_test(test_max_entries),
        cmocka_unit_test(test_encode_errors),         cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_ack_vs_frame),          cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
