/* test_frame — binary frames: layout, every parse error on its own, boundaries, encoder. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto_test_util.h"
#include "sf_proto.h"

#define BUF_LEN 65536

static uint8_t buf[BUF_LEN];
static struct sf_event evs[SF_FRAME_EVENTS_MAX];

static int parse(const uint8_t *b, size_t len)
{
    struct sf_frame_hdr hdr;
    return sf_datagram_parse(b, len, &hdr, evs, SF_FRAME_EVENTS_MAX);
}

/* ---- layout ------------------------------------------------------------------------- */

static void test_hand_built_frame_parses(void **state)
{
    (void)state;
    size_t len = t_frame_hdr(buf, SF_FLAG_ACK_REQ, 0xa1b2c3d4u, 0x1122334455667788ull, 1);
    len += t_event(buf + len, 0x0102030405060708ull);
    struct sf_frame_hdr hdr;
    assert_int_equal(sf_datagram_parse(buf, len, &hdr, evs, 4), 1);
    assert_int_equal(hdr.version, 1);
    assert_int_equal(hdr.flags, SF_FLAG_ACK_REQ);
    assert_int_equal(hdr.sender_id, 0xa1b2c3d4u);
    assert_true(hdr.frame_seq == 0x1122334455667788ull);
    assert_int_equal(hdr.event_count, 1);
    assert_memory_equal(evs[0].type, "device", 6);
    assert_int_equal(evs[0].type_len, 6);
    assert_memory_equal(evs[0].id, "sensor-1", 8);
    assert_int_equal(evs[0].id_len, 8);
    assert_memory_equal(evs[0].signal, "telemetry", 9);
    assert_int_equal(evs[0].signal_len, 9);
    assert_true(evs[0].event_id == 0x0102030405060708ull);
    assert_true(evs[0].ts_ns == 1000 + 0x0102030405060708ull);
    assert_int_equal(evs[0].fields_len, 2);
    assert_int_equal(evs[0].fields[0], 0x81);
    assert_int_equal(evs[0].fields[1], 0x15);
    assert_true(evs[0].has_event_id);
    assert_false(evs[0].fields_json);
    assert_int_equal(evs[0].offset, 32);
    assert_int_equal(evs[0].length, 24 + 6 + 8 + 9 + 2);
    /* The magic is the bytes 'S' 'F'. */
    assert_int_equal(buf[0], 'S');
    assert_int_equal(buf[1], 'F');
}

static void test_encoder_matches_hand_layout(void **state)
{
    (void)state;
    uint8_t enc[256];
    struct sf_frame_hdr hdr = { .flags = SF_FLAG_ACK_REQ,
                                .sender_id = 0xa1b2c3d4u,
                                .frame_seq = 0x1122334455667788ull };
    int len = sf_frame_begin(enc, sizeof(enc), &hdr);
    assert_int_equal(len, SF_FRAME_HDR_LEN);
    static const uint8_t f[] = { 0x81, 0x15 };
    struct sf_event ev = { .type = "device",
                           .type_len = 6,
                           .id = "sensor-1",
                           .id_len = 8,
                           .signal = "telemetry",
                           .signal_len = 9,
                           .fields = f,
                           .fields_len = 2,
                           .event_id = 0x0102030405060708ull,
                           .ts_ns = 1000 + 0x0102030405060708ull };
    len = sf_frame_add_event(enc, sizeof(enc), (size_t)len, &ev);
    assert_int_equal(len, 32 + 49);
    assert_int_equal(sf_frame_end(enc, sizeof(enc), (size_t)len), len);
    size_t hand = t_frame_hdr(buf, SF_FLAG_ACK_REQ, 0xa1b2c3d4u, 0x1122334455667788ull, 1);
    hand += t_event(buf + hand, 0x0102030405060708ull);
    assert_int_equal(hand, (size_t)len);
    assert_memory_equal(enc, buf, hand);
}

static void test_multi_event_round_trip(void **state)
{
    (void)state;
    struct sf_frame_hdr hdr = { .sender_id = 5, .frame_seq = 77 };
    int len = sf_frame_begin(buf, BUF_LEN, &hdr);
    char ids[SF_FRAME_EVENTS_MAX][16];
    uint8_t fields[SF_FRAME_EVENTS_MAX][16];
    for (unsigned i = 0; i < SF_FRAME_EVENTS_MAX; i++) {
        snprintf(ids[i], sizeof(ids[i]), "w-%u", i);
        struct sf_value v[2] = { { .type = SF_VAL_INT, .i = (int64_t)i * 1000 - 5 },
                                 { .type = SF_VAL_BOOL, .b = i & 1 } };
        int fl = sf_fields_encode(fields[i], sizeof(fields[i]), v, 2);
        assert_true(fl > 0);
        struct sf_event ev = { .type = "t",
                               .type_len = 1,
                               .id = ids[i],
                               .id_len = (uint8_t)strlen(ids[i]),
                               .signal = "s",
                               .signal_len = 1,
                               .fields = fields[i],
                               .fields_len = (uint16_t)fl,
                               .event_id = 1000 + i,
                               .ts_ns = i };
        len = sf_frame_add_event(buf, BUF_LEN, (size_t)len, &ev);
        assert_true(len > 0);
    }
    struct sf_event extra = {
        .type = "t", .type_len = 1, .id = "x", .id_len = 1, .signal = "s", .signal_len = 1
    };
    assert_int_equal(sf_frame_add_event(buf, BUF_LEN, (size_t)len, &extra), SF_ERR_BAD_COUNT);

    struct sf_frame_hdr out;
    assert_int_equal(sf_datagram_parse(buf, (size_t)len, &out, evs, SF_FRAME_EVENTS_MAX),
                     SF_FRAME_EVENTS_MAX);
    assert_int_equal(out.sender_id, 5);
    assert_int_equal(out.frame_seq, 77);
    for (unsigned i = 0; i < SF_FRAME_EVENTS_MAX; i++) {
        assert_int_equal(evs[i].id_len, strlen(ids[i]));
        assert_memory_equal(evs[i].id, ids[i], evs[i].id_len);
        assert_int_equal(evs[i].event_id, 1000 + i);
        struct sf_value v[4];
        assert_int_equal(sf_fields_decode(evs[i].fields, evs[i].fields_len, v, 4), 2);
        assert_int_equal(v[0].type, SF_VAL_INT);
        assert_int_equal(v[0].i, (int64_t)i * 1000 - 5);
        assert_int_equal(v[1].type, SF_VAL_BOOL);
        assert_int_equal(v[1].b, i & 1);
        if (i > 0)
            assert_int_equal(evs[i].offset, evs[i - 1].offset + evs[i - 1].length);
    }
}

static void test_events_max_smaller_than_count(void **state)
{
    (void)state;
    size_t len = t_frame(buf, 5);
    struct sf_frame_hdr hdr;
    memset(evs, 0, sizeof(evs));
    assert_int_equal(sf_datagram_parse(buf, len, &hdr, evs, 2), 5);
    assert_int_equal(evs[0].event_id, 100);
    assert_int_equal(evs[1].event_id, 101);
    assert_int_equal(evs[2].event_id, 0); /* not written */
    /* ...but every event is still validated. */
    buf[len - 1] = 0x80; /* last event's field 21 becomes a nested array head: malformed */
    assert_int_equal(sf_datagram_parse(buf, len, &hdr, evs, 2), SF_ERR_BAD_FIELDS);
    assert_int_equal(sf_datagram_parse(buf, len, &hdr, NULL, 0), SF_ERR_BAD_FIELDS);
}

static void test_auth_frame(void **state)
{
    (void)state;
    struct sf_frame_hdr hdr = { .flags = SF_FLAG_AUTH, .auth_key_id = 9, .auth_counter = 1234 };
    int len = sf_frame_begin(buf, BUF_LEN, &hdr);
    struct sf_event ev = { .type = "t",
                           .type_len = 1,
                           .id = "x",
                           .id_len = 1,
                           .signal = "s",
                           .signal_len = 1,
                           .event_id = 3 };
    len = sf_frame_add_event(buf, BUF_LEN, (size_t)len, &ev);
    int end = sf_frame_end(buf, BUF_LEN, (size_t)len);
    assert_int_equal(end, len + SF_AUTH_TAG_LEN);
    struct sf_frame_hdr out;
    assert_int_equal(sf_datagram_parse(buf, (size_t)end, &out, evs, 4), 1);
    assert_int_equal(out.auth_key_id, 9);
    assert_int_equal(out.auth_counter, 1234);
    assert_int_equal(sf_frame_events_end(&out, (size_t)end), (size_t)len);
    /* Without its tag the frame is too short for an AUTH frame. */
    assert_int_equal(sf_datagram_parse(buf, (size_t)len, &out, evs, 4), SF_ERR_TRUNC_HEADER);
    /* With a short tag, the event runs into what the parser takes as the tag. */
    assert_int_equal(sf_datagram_parse(buf, (size_t)end - 1, &out, evs, 4), SF_ERR_TRUNC_EVENT);
    /* A byte after the tag is trailing (it sits before what the parser takes as the tag). */
    assert_int_equal(sf_datagram_parse(buf, (size_t)end + 1, &out, evs, 4), SF_ERR_TRAILING);
    /* sf_frame_end refuses when the tag doesn't fit, and frames without events. */
    assert_int_equal(sf_frame_end(buf, (size_t)len + 31, (size_t)len), SF_ERR_NO_SPACE);
    int empty = sf_frame_begin(buf, BUF_LEN, &hdr);
    assert_int_equal(sf_frame_end(buf, BUF_LEN, (size_t)empty), SF_ERR_BAD_COUNT);
}

static void test_header_extension_skipped(void **state)
{
    (void)state;
    size_t len = t_frame_hdr(buf, 0, 1, 2, 1);
    sf_le16_put(buf + 18, 40);
    memset(buf + 32, 0xee, 8); /* extension bytes a v1 reader ignores */
    len += 8;
    len += t_event(buf + len, 42);
    assert_int_equal(parse(buf, len), 1);
    assert_int_equal(evs[0].offset, 40);
    assert_int_equal(evs[0].event_id, 42);
    sf_le16_put(buf + 18, SF_FRAME_HDR_LEN_MAX);
    assert_int_equal(parse(buf, len), SF_ERR_TRUNC_HEADER); /* header_len > len */
}

/* ---- every error code on its own ----------------------------------------------------- */

struct err_case {
    const char *what;
    size_t (*build)(uint8_t *b);
    int expect;
};

static size_t c_empty(uint8_t *b)
{
    (void)b;
    return 0;
}
static size_t c_bad_magic(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    b[1] = 'G';
    return len;
}
static size_t c_bad_magic_short(uint8_t *b)
{
    b[0] = 'x';
    return 1;
}
static size_t c_bad_version(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    b[2] = 2;
    return len;
}
static size_t c_bad_version0(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    b[2] = 0;
    return len;
}
static size_t c_bad_version_short(uint8_t *b)
{
    t_frame(b, 1);
    b[2] = 9;
    return 3; /* a future version's header may be shorter: judged by version, not length */
}
static size_t c_trunc_header(uint8_t *b)
{
    t_frame(b, 1);
    return SF_FRAME_HDR_LEN - 1;
}
static size_t c_trunc_header_1(uint8_t *b)
{
    b[0] = 'S';
    return 1;
}
static size_t c_trunc_header_auth(uint8_t *b)
{
    t_frame_hdr(b, SF_FLAG_AUTH, 1, 1, 1);
    return SF_FRAME_HDR_LEN + SF_AUTH_TAG_LEN - 1;
}
static size_t c_bad_header_len_small(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    sf_le16_put(b + 18, 24);
    return len;
}
static size_t c_bad_header_len_odd(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    sf_le16_put(b + 18, 36);
    return len;
}
static size_t c_bad_header_len_big(uint8_t *b)
{
    size_t len = t_frame(b, 10);
    sf_le16_put(b + 18, SF_FRAME_HDR_LEN_MAX + 8);
    return len;
}
static size_t c_bad_flags(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    b[3] = 0x04;
    return len;
}
static size_t c_bad_flags_ack(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    b[3] = SF_FLAG_ACK;
    return len;
}
static size_t c_bad_count0(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    sf_le16_put(b + 16, 0);
    return len;
}
static size_t c_bad_count65(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    sf_le16_put(b + 16, SF_FRAME_EVENTS_MAX + 1);
    return len;
}
static size_t c_trunc_event_missing(uint8_t *b)
{
    size_t len = t_frame(b, 2);
    sf_le16_put(b + 16, 3); /* says 3, has 2 */
    return len;
}
static size_t c_trunc_event_hdr(uint8_t *b)
{
    t_frame(b, 1);
    return SF_FRAME_HDR_LEN + SF_EVENT_HDR_LEN - 1;
}
static size_t c_trunc_event_body(uint8_t *b)
{
    size_t len = t_frame(b, 2);
    return len - 1;
}
static size_t c_bad_event_len(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    sf_le16_put(b + 32, (uint16_t)(sf_le16_get(b + 32) - 1));
    return len;
}
static size_t c_bad_event_len_small(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    sf_le16_put(b + 32, 3);
    return len;
}
static size_t c_bad_event_reserved(uint8_t *b)
{
    size_t len = t_frame(b, 1);
    b[32 + 5] = 1;
    return len;
}
static size_t c_bad_name_empty_type(uint8_t *b)
{
    size_t len = t_frame_hdr(b, 0, 1, 1, 1);
    return len + t_event_raw(b + len, "", 0, "i", 1, "s", 1, NULL, 0, 1, 0);
}
static size_t c_bad_name_char(uint8_t *b)
{
    size_t len = t_frame_hdr(b, 0, 1, 1, 1);
    return len + t_event_raw(b + len, "t", 1, "i\"d", 3, "s", 1, NULL, 0, 1, 0);
}
static size_t c_bad_name_signal(uint8_t *b)
{
    size_t len = t_frame_hdr(b, 0, 1, 1, 1);
    return len + t_event_raw(b + len, "t", 1, "i", 1, "s/x", 3, NULL, 0, 1, 0);
}
static size_t c_bad_fields(uint8_t *b)
{
    static const uint8_t f[] = { 0x81, 0x80 }; /* [[]] */
    size_t len = t_frame_hdr(b, 0, 1, 1, 1);
    return len + t_event_raw(b + len, "t", 1, "i", 1, "s", 1, f, sizeof(f), 1, 0);
}
static size_t c_trailing(uint8_t *b)
{
    size_t len = t_frame(b, 2);
    b[len] = 0;
    return len + 1;
}
static size_t c_too_long(uint8_t *b)
{
    t_frame(b, 1);
    return SF_DATAGRAM_LEN_MAX + 1;
}
static size_t c_bad_json(uint8_t *b)
{
    static const char j[] = "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"";
    memcpy(b, j, sizeof(j) - 1);
    return sizeof(j) - 1;
}
static size_t c_json_missing(uint8_t *b)
{
    static const char j[] = "{\"type\":\"t\",\"id\":\"i\"}";
    memcpy(b, j, sizeof(j) - 1);
    return sizeof(j) - 1;
}
static size_t c_too_many_fields(uint8_t *b)
{
    int n = sprintf((char *)b, "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":{");
    for (unsigned i = 0; i <= SF_JSON_FIELDS_MAX; i++)
        n += sprintf((char *)b + n, "%s\"f%u\":%u", i ? "," : "", i, i);
    n += sprintf((char *)b + n, "}}");
    return (size_t)n;
}

/* The one-datagram crash of the node: a JSON event whose fields object (1300 bytes of text)
 * is longer than a binary event's fields may be. */
static size_t c_fields_too_long(uint8_t *b)
{
    int n = sprintf((char *)b, "{\"type\":\"device\",\"id\":\"x\",\"signal\":\"telemetry\","
                               "\"fields\":{\"temp_c\":\"");
    memset(b + n, 'A', 1300);
    n += 1300;
    n += sprintf((char *)b + n, "\"}}");
    return (size_t)n;
}
static size_t c_bad_utf8_id(uint8_t *b)
{
    static const char j[] = "{\"type\":\"t\",\"id\":\"a\xc3\x28\",\"signal\":\"s\"}";
    memcpy(b, j, sizeof(j) - 1);
    return sizeof(j) - 1;
}

static const struct err_case err_cases[] = {
    { "JSON fields of 1300 bytes", c_fields_too_long, SF_ERR_FIELDS_TOO_LONG },
    { "JSON id not UTF-8 (a JSON string must be)", c_bad_utf8_id, SF_ERR_BAD_JSON },
    { "empty", c_empty, SF_ERR_EMPTY },
    { "bad magic", c_bad_magic, SF_ERR_BAD_MAGIC },
    { "bad magic, 1 byte", c_bad_magic_short, SF_ERR_BAD_MAGIC },
    { "version 2", c_bad_version, SF_ERR_BAD_VERSION },
    { "version 0", c_bad_version0, SF_ERR_BAD_VERSION },
    { "version 9, 3 bytes", c_bad_version_short, SF_ERR_BAD_VERSION },
    { "31-byte header", c_trunc_header, SF_ERR_TRUNC_HEADER },
    { "1 byte 'S'", c_trunc_header_1, SF_ERR_TRUNC_HEADER },
    { "auth without room for the tag", c_trunc_header_auth, SF_ERR_TRUNC_HEADER },
    { "header_len 24", c_bad_header_len_small, SF_ERR_BAD_HEADER_LEN },
    { "header_len 36", c_bad_header_len_odd, SF_ERR_BAD_HEADER_LEN },
    { "header_len 264", c_bad_header_len_big, SF_ERR_BAD_HEADER_LEN },
    { "flag 0x04", c_bad_flags, SF_ERR_BAD_FLAGS },
    { "ACK flag on data", c_bad_flags_ack, SF_ERR_BAD_FLAGS },
    { "count 0", c_bad_count0, SF_ERR_BAD_COUNT },
    { "count 65", c_bad_count65, SF_ERR_BAD_COUNT },
    { "count past the events", c_trunc_event_missing, SF_ERR_TRUNC_EVENT },
    { "event header cut", c_trunc_event_hdr, SF_ERR_TRUNC_EVENT },
    { "event body cut", c_trunc_event_body, SF_ERR_TRUNC_EVENT },
    { "event_len - 1", c_bad_event_len, SF_ERR_BAD_EVENT_LEN },
    { "event_len 3", c_bad_event_len_small, SF_ERR_BAD_EVENT_LEN },
    { "reserved byte set", c_bad_event_reserved, SF_ERR_BAD_EVENT_LEN },
    { "empty type", c_bad_name_empty_type, SF_ERR_BAD_NAME },
    { "quote in id", c_bad_name_char, SF_ERR_BAD_NAME },
    { "slash in signal", c_bad_name_signal, SF_ERR_BAD_NAME },
    { "nested array field", c_bad_fields, SF_ERR_BAD_FIELDS },
    { "trailing byte", c_trailing, SF_ERR_TRAILING },
    { "9001 bytes", c_too_long, SF_ERR_TOO_LONG },
    { "unterminated JSON", c_bad_json, SF_ERR_BAD_JSON },
    { "JSON without signal", c_json_missing, SF_ERR_JSON_MISSING },
    { "JSON with 17 fields", c_too_many_fields, SF_ERR_TOO_MANY_FIELDS },
};

static void test_each_error_on_its_own(void **state)
{
    (void)state;
    bool seen[SF_ERR_COUNT] = { false };
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
        memset(buf, 0, BUF_LEN);
        size_t len = err_cases[i].build(buf);
        int rc = parse(buf, len);
        if (rc != err_cases[i].expect)
            fail_msg("%s: got %d (%s), want %d (%s)", err_cases[i].what, rc, sf_err_name(rc),
                     err_cases[i].expect, sf_err_name(err_cases[i].expect));
        seen[-rc] = true;
    }
    /* Encoder-only and ACK-only codes are produced in their own tests. */
    seen[-SF_ERR_NO_SPACE] = seen[-SF_ERR_BAD_ACK] = true;
    for (int e = 1; e < SF_ERR_COUNT; e++) {
        if (!seen[e])
            fail_msg("no crafted datagram produces %s", sf_err_name(-e));
    }
}

static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(sf_err_name(SF_OK), "ok");
    assert_string_equal(sf_err_name(SF_ERR_TRUNC_EVENT), "truncated_event");
    assert_string_equal(sf_err_name(1), "unknown");
    assert_string_equal(sf_err_name(-SF_ERR_COUNT), "unknown");
    for (int a = 0; a < SF_ERR_COUNT; a++) {
        const char *na = sf_err_name(-a);
        assert_non_null(na);
        assert_true(strlen(na) > 1);
        assert_int_equal(strspn(na, "abcdefghijklmnopqrstuvwxyz_"), strlen(na));
        assert_string_not_equal(na, "unknown");
        for (int b = a + 1; b < SF_ERR_COUNT; b++)
            assert_string_not_equal(na, sf_err_name(-b));
    }
}

/* ---- boundaries ---------------------------------------------------------------------- */

static int one_event(const char *t, size_t tl, const char *id, size_t il, const char *s, size_t sl,
                     const uint8_t *f, size_t fl)
{
    size_t len = t_frame_hdr(buf, 0, 1, 1, 1);
    len += t_event_raw(buf + len, t, tl, id, il, s, sl, f, fl, 1, 0);
    return parse(buf, len);
}

static void test_name_boundaries(void **state)
{
    (void)state;
    char n[128];
    memset(n, 'a', sizeof(n));
    assert_int_equal(one_event(n, SF_TYPE_LEN_MAX, "i", 1, "s", 1, NULL, 0), 1);
    assert_int_equal(one_event(n, SF_TYPE_LEN_MAX + 1, "i", 1, "s", 1, NULL, 0), SF_ERR_BAD_NAME);
    assert_int_equal(one_event("t", 1, n, SF_ID_LEN_MAX, "s", 1, NULL, 0), 1);
    assert_int_equal(one_event("t", 1, n, SF_ID_LEN_MAX + 1, "s", 1, NULL, 0), SF_ERR_BAD_NAME);
    assert_int_equal(one_event("t", 1, "i", 1, n, SF_SIGNAL_LEN_MAX, NULL, 0), 1);
    assert_int_equal(one_event("t", 1, "i", 1, n, SF_SIGNAL_LEN_MAX + 1, NULL, 0), SF_ERR_BAD_NAME);
    assert_int_equal(one_event("t", 1, "", 0, "s", 1, NULL, 0), SF_ERR_BAD_NAME);
    assert_int_equal(one_event("t", 1, "i", 1, "", 0, NULL, 0), SF_ERR_BAD_NAME);
    /* Character classes. */
    assert_int_equal(one_event("a-b.c_D9", 8, "i", 1, "reprovision.done", 16, NULL, 0), 1);
    assert_int_equal(one_event("a b", 3, "i", 1, "s", 1, NULL, 0), SF_ERR_BAD_NAME);
    assert_int_equal(one_event("t", 1, "user 7/\xc3\xa9!", 10, "s", 1, NULL, 0), 1);
    assert_int_equal(one_event("t", 1, "a\\b", 3, "s", 1, NULL, 0), SF_ERR_BAD_NAME);
    assert_int_equal(one_event("t", 1, "a\nb", 3, "s", 1, NULL, 0), SF_ERR_BAD_NAME);
    assert_int_equal(one_event("t", 1, "a\x7f", 2, "s", 1, NULL, 0), SF_ERR_BAD_NAME);
    assert_true(sf_name_valid_id("x", 1));
    assert_false(sf_name_valid_type("x", 0));
}

/* The parser's 16-byte-at-a-time name checks agree with the byte-wise sf_name_valid_* for
 * every length and every position of a bad byte, and for every byte value. */
static void test_name_every_position(void **state)
{
    (void)state;
    char n[SF_ID_LEN_MAX];
    for (size_t len = 1; len <= SF_ID_LEN_MAX; len++) {
        for (size_t pos = 0; pos <= len; pos++) {
            memset(n, 'a', sizeof(n));
            if (pos < len)
                n[pos] = '"';
            int want = pos < len ? SF_ERR_BAD_NAME : 1;
            assert_int_equal(one_event("t", 1, n, len, "s", 1, NULL, 0), want);
            if (len > SF_TYPE_LEN_MAX)
                continue;
            if (pos < len)
                n[pos] = ' ';
            assert_int_equal(one_event(n, len, "i", 1, "s", 1, NULL, 0), want);
            assert_int_equal(one_event("t", 1, "i", 1, n, len, NULL, 0), want);
        }
    }
    for (unsigned b = 0; b < 256; b++) {
        char ident[3] = { 'x', (char)b, 'y' };
        int want = sf_name_valid_type(ident, 3) ? 1 : SF_ERR_BAD_NAME;
        assert_int_equal(one_event(ident, 3, "i", 1, "s", 1, NULL, 0), want);
        assert_int_equal(one_event("t", 1, "i", 1, ident, 3, NULL, 0), want);
        want = sf_name_valid_id(ident, 3) ? 1 : SF_ERR_BAD_NAME;
        assert_int_equal(one_event("t", 1, ident, 3, "s", 1, NULL, 0), want);
        bool is_ident = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                        (b >= '0' && b <= '9') || b == '_' || b == '.' || b == '-';
        assert_int_equal(sf_name_valid_type(ident, 3), is_ident);
        /* one byte >= 0x80 alone is never UTF-8 */
        bool is_id = b >= 0x20 && b < 0x7f && b != '"' && b != '\\';
        assert_int_equal(sf_name_valid_id(ident, 3), is_id);
    }
}

/* Ids must be well-formed UTF-8, at every length and position (the fast path loads 16 bytes
 * at a time and only then looks at bytes >= 0x80). */
static void test_name_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *seq;
        bool ok;
    } seqs[] = {
        { "\xc3\xa9", true },          /* é */
        { "\xe2\x82\xac", true },      /* € */
        { "\xf0\x9f\x98\x80", true },  /* U+1F600 */
        { "\xef\xbf\xbf", true },      /* U+FFFF */
        { "\xf4\x8f\xbf\xbf", true },  /* U+10FFFF */
        { "\x80", false },             /* continuation first */
        { "\xc3", false },             /* cut */
        { "\xc3\x28", false },         /* bad continuation */
        { "\xc0\xaf", false },         /* overlong '/' */
        { "\xe0\x80\xaf", false },     /* overlong */
        { "\xed\xa0\x80", false },     /* surrogate U+D800 */
        { "\xf4\x90\x80\x80", false }, /* above U+10FFFF */
        { "\xf5\x80\x80\x80", false }, /* 0xf5 */
        { "\xff", false },
        { "\xe2\x82", false }, /* cut 3-byte */
    };
    char n[SF_ID_LEN_MAX + 8];
    for (size_t k = 0; k < sizeof(seqs) / sizeof(seqs[0]); k++) {
        size_t sl = strlen(seqs[k].seq);
        for (size_t len = sl; len <= SF_ID_LEN_MAX; len++) {
            for (size_t pos = 0; pos + sl <= len; pos++) {
                memset(n, 'a', sizeof(n));
                memcpy(n + pos, seqs[k].seq, sl);
                int want = seqs[k].ok ? 1 : SF_ERR_BAD_NAME;
                if (one_event("t", 1, n, len, "s", 1, NULL, 0) != want)
                    fail_msg("id of %zu bytes, sequence %zu at %zu: want %d", len, k, pos, want);
                assert_int_equal(sf_name_valid_id(n, len), seqs[k].ok);
            }
        }
    }
    /* text field values too: ["\xc3\x28"] is bad_fields, ["\xc3\xa9"] fine */
    static const uint8_t bad_text[] = { 0x81, 0x62, 0xc3, 0x28 };
    static const uint8_t good_text[] = { 0x81, 0x62, 0xc3, 0xa9 };
    assert_int_equal(one_event("t", 1, "i", 1, "s", 1, bad_text, sizeof(bad_text)),
                     SF_ERR_BAD_FIELDS);
    assert_int_equal(one_event("t", 1, "i", 1, "s", 1, good_text, sizeof(good_text)), 1);
}

static void test_fields_boundaries(void **state)
{
    (void)state;
    uint8_t f[SF_FIELDS_LEN_MAX + 8];
    /* [text of n bytes] = 0x81 0x79 len16 bytes: 4 + n bytes. */
    for (size_t total = SF_FIELDS_LEN_MAX - 1; total <= SF_FIELDS_LEN_MAX + 1; total++) {
        size_t n = total - 4;
        f[0] = 0x81;
        f[1] = 0x79;
        f[2] = (uint8_t)(n >> 8);
        f[3] = (uint8_t)n;
        memset(f + 4, 'x', n);
        int rc = one_event("t", 1, "i", 1, "s", 1, f, total);
        assert_int_equal(rc, total <= SF_FIELDS_LEN_MAX ? 1 : SF_ERR_BAD_FIELDS);
    }
    /* 0-length fields and the empty array are both "no fields". */
    assert_int_equal(one_event("t", 1, "i", 1, "s", 1, NULL, 0), 1);
    assert_int_equal(evs[0].fields_len, 0);
    static const uint8_t empty[] = { 0x80 };
    assert_int_equal(one_event("t", 1, "i", 1, "s", 1, empty, 1), 1);
    struct sf_value v[1];
    assert_int_equal(sf_fields_decode(evs[0].fields, evs[0].fields_len, v, 1), 0);
}

static void test_count_and_length_boundaries(void **state)
{
    (void)state;
    /* 64 small events fit a 9000-byte datagram. */
    size_t len = t_frame(buf, SF_FRAME_EVENTS_MAX);
    assert_true(len <= SF_DATAGRAM_LEN_MAX);
    assert_int_equal(parse(buf, len), SF_FRAME_EVENTS_MAX);
    /* Exactly SF_DATAGRAM_LEN_MAX bytes is accepted: 32 + 17 * (27 + 471) + (27 + 475). */
    _Static_assert(32 + 17 * (27 + 471) + (27 + 475) == SF_DATAGRAM_LEN_MAX, "sizes add up");
    unsigned n = 0;
    len = t_frame_hdr(buf, 0, 1, 1, 1);
    for (n = 0; n < 18; n++) {
        size_t fl = n < 17 ? 471 : 475;
        uint8_t f[512];
        f[0] = 0x81;
        f[1] = 0x79; /* non-shortest text head: accepted */
        f[2] = (uint8_t)((fl - 4) >> 8);
        f[3] = (uint8_t)(fl - 4);
        memset(f + 4, 'y', fl - 4);
        len += t_event_raw(buf + len, "t", 1, "i", 1, "s", 1, f, fl, n, 0);
    }
    sf_le16_put(buf + 16, (uint16_t)n);
    assert_int_equal(len, SF_DATAGRAM_LEN_MAX);
    assert_int_equal(parse(buf, len), (int)n);
    buf[len] = 0;
    assert_int_equal(parse(buf, len + 1), SF_ERR_TOO_LONG);
}

/* ---- encoder ------------------------------------------------------------------------- */

static void test_encoder_errors(void **state)
{
    (void)state;
    uint8_t out[128];
    struct sf_frame_hdr hdr = { 0 };
    assert_int_equal(sf_frame_begin(out, SF_FRAME_HDR_LEN - 1, &hdr), SF_ERR_NO_SPACE);
    hdr.version = 2;
    assert_int_equal(sf_frame_begin(out, sizeof(out), &hdr), SF_ERR_BAD_VERSION);
    hdr.version = 1;
    hdr.flags = SF_FLAG_ACK;
    assert_int_equal(sf_frame_begin(out, sizeof(out), &hdr), SF_ERR_BAD_FLAGS);
    hdr.flags = 0x40;
    assert_int_equal(sf_frame_begin(out, sizeof(out), &hdr), SF_ERR_BAD_FLAGS);
    hdr.flags = 0;
    int len = sf_frame_begin(out, sizeof(out), &hdr);
    assert_int_equal(len, SF_FRAME_HDR_LEN);

    struct sf_event ev = {
        .type = "t", .type_len = 1, .id = "i", .id_len = 1, .signal = "s", .signal_len = 1
    };
    struct sf_event bad = ev;
    bad.id = "a\"";
    bad.id_len = 2;
    assert_int_equal(sf_frame_add_event(out, sizeof(out), (size_t)len, &bad), SF_ERR_BAD_NAME);
    static const uint8_t nested[] = { 0x81, 0x81, 0x01 };
    bad = ev;
    bad.fields = nested;
    bad.fields_len = sizeof(nested);
    assert_int_equal(sf_frame_add_event(out, sizeof(out), (size_t)len, &bad), SF_ERR_BAD_FIELDS);
    bad.fields_json = true;
    bad.fields = (const uint8_t *)"{}";
    bad.fields_len = 2;
    assert_int_equal(sf_frame_add_event(out, sizeof(out), (size_t)len, &bad), SF_ERR_BAD_FIELDS);
    /* Exactly enough room, then one byte short; the frame is unchanged on error. */
    assert_int_equal(sf_frame_add_event(out, SF_FRAME_HDR_LEN + 26, (size_t)len, &ev),
                     SF_ERR_NO_SPACE);
    assert_int_equal(sf_le16_get(out + 16), 0);
    assert_int_equal(sf_frame_add_event(out, SF_FRAME_HDR_LEN + 27, (size_t)len, &ev),
                     SF_FRAME_HDR_LEN + 27);
    assert_int_equal(sf_le16_get(out + 16), 1);
}

static void test_encoder_stays_below_datagram_max(void **state)
{
    (void)state;
    struct sf_frame_hdr hdr = { .flags = SF_FLAG_AUTH };
    int len = sf_frame_begin(buf, BUF_LEN, &hdr);
    uint8_t f[SF_FIELDS_LEN_MAX];
    f[0] = 0x81;
    f[1] = 0x79;
    f[2] = (SF_FIELDS_LEN_MAX - 4) >> 8;
    f[3] = (SF_FIELDS_LEN_MAX - 4) & 0xff;
    memset(f + 4, 'z', SF_FIELDS_LEN_MAX - 4);
    char id[SF_ID_LEN_MAX];
    memset(id, 'q', sizeof(id));
    struct sf_event ev = { .type = "t",
                           .type_len = 1,
                           .id = id,
                           .id_len = SF_ID_LEN_MAX,
                           .signal = "s",
                           .signal_len = 1,
                           .fields = f,
                           .fields_len = SF_FIELDS_LEN_MAX };
    int n = 0;
    for (;;) {
        int rc = sf_frame_add_event(buf, BUF_LEN, (size_t)len, &ev);
        if (rc < 0) {
            assert_int_equal(rc, SF_ERR_NO_SPACE);
            break;
        }
        len = rc;
        n++;
    }
    len = sf_frame_end(buf, BUF_LEN, (size_t)len);
    assert_true(len <= (int)SF_DATAGRAM_LEN_MAX);
    assert_true(len + 24 + 1 + 64 + 1 + 512 > (int)SF_DATAGRAM_LEN_MAX);
    assert_int_equal(parse(buf, (size_t)len), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_built_frame_parses),
        cmocka_unit_test(test_encoder_matches_hand_layout),
        cmocka_unit_test(test_multi_event_round_trip),
        cmocka_unit_test(test_events_max_smaller_than_count),
        cmocka_unit_test(test_auth_frame),
        cmocka_unit_test(test_header_extension_skipped),
        cmocka_unit_test(test_each_error_on_its_own),
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_name_boundaries),
        cmocka_unit_test(test_name_every_position),
        cmocka_unit_test(test_name_utf8),
        cmocka_unit_test(test_fields_boundaries),
        cmocka_unit_test(test_count_and_length_boundaries),
        cmocka_unit_test(test_encoder_errors),
        cmocka_unit_test(test_encoder_stays_below_datagram_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
