/*
 * fuzz_proto — libFuzzer target for every parser of the protocol library.
 *
 * Each input goes through sf_datagram_parse, sf_fields_decode, sf_json_fields_decode and
 * sf_ack_decode. Whatever a parser accepts must survive a round trip: frames re-encode to
 * the same bytes (header extensions and the auth tag aside), field values re-encode and
 * decode to the same values, ACKs re-encode to the same bytes, JSON views stay inside the
 * input and their fields decode. A mismatch aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_le.h"
#include "sf_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz_proto: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

static bool same_value(const struct sf_value *a, const struct sf_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case SF_VAL_NULL:
        return true;
    case SF_VAL_INT:
        return a->i == b->i;
    case SF_VAL_FLOAT:
        return memcmp(&a->f, &b->f, sizeof(double)) == 0;
    case SF_VAL_BOOL:
        return a->b == b->b;
    case SF_VAL_TEXT:
        return a->text.len == b->text.len && memcmp(a->text.ptr, b->text.ptr, a->text.len) == 0;
    }
    return false;
}

/* Values decoded from CBOR re-encode and decode to the same values. */
static void check_fields_round_trip(const uint8_t *buf, size_t len)
{
    static struct sf_value vals[SF_DATAGRAM_LEN_MAX], again[SF_DATAGRAM_LEN_MAX];
    static uint8_t enc[SF_DATAGRAM_LEN_MAX * 9 + 16];
    int n = sf_fields_decode(buf, len, vals, SF_DATAGRAM_LEN_MAX);
    FUZZ_CHECK(n == sf_fields_validate(buf, len) || n == SF_ERR_TOO_MANY_FIELDS);
    if (n < 0)
        return;
    int elen = sf_fields_encode(enc, sizeof(enc), vals, (unsigned)n);
    FUZZ_CHECK(elen > 0);
    FUZZ_CHECK(sf_fields_decode(enc, (size_t)elen, again, SF_DATAGRAM_LEN_MAX) == n);
    for (int i = 0; i < n; i++)
        FUZZ_CHECK(same_value(&vals[i], &again[i]));
}

static bool inside(const void *p, size_t n, const uint8_t *buf, size_t len)
{
    const uint8_t *q = p;
    return q >= buf && q + n <= buf + len;
}

static void check_json_event(const uint8_t *buf, size_t len, const struct sf_event *ev)
{
    FUZZ_CHECK(ev->fields_json);
    FUZZ_CHECK(inside(ev->type, ev->type_len, buf, len) && ev->type_len > 0);
    FUZZ_CHECK(inside(ev->id, ev->id_len, buf, len) && ev->id_len > 0);
    FUZZ_CHECK(inside(ev->signal, ev->signal_len, buf, len) && ev->signal_len > 0);
    FUZZ_CHECK(sf_name_valid_type(ev->type, ev->type_len));
    FUZZ_CHECK(sf_name_valid_id(ev->id, ev->id_len));
    FUZZ_CHECK(sf_name_valid_signal(ev->signal, ev->signal_len));
    struct sf_json_field f[SF_JSON_FIELDS_MAX];
    int n = sf_json_fields_decode(ev->fields, ev->fields_len, f, SF_JSON_FIELDS_MAX);
    FUZZ_CHECK(n >= 0);
    FUZZ_CHECK(ev->fields_len == 0 || inside(ev->fields, ev->fields_len, buf, len));
    for (int i = 0; i < n; i++) {
        char out[SF_DATAGRAM_LEN_MAX];
        FUZZ_CHECK(inside(f[i].name, f[i].name_len, buf, len));
        int u = sf_json_unescape(f[i].name, f[i].name_len, out, sizeof(out));
        FUZZ_CHECK(u >= 0 || u == SF_ERR_BAD_JSON); /* lone surrogates are only found here */
        if (f[i].value.type == SF_VAL_TEXT) {
            FUZZ_CHECK(inside(f[i].value.text.ptr, f[i].value.text.len, buf, len));
            u = sf_json_unescape(f[i].value.text.ptr, f[i].value.text.len, out, sizeof(out));
            FUZZ_CHECK(u >= 0 || u == SF_ERR_BAD_JSON);
            FUZZ_CHECK(u <= (int)f[i].value.text.len);
        }
    }
}

/* An accepted binary frame re-encodes to the same bytes. */
static void check_frame_round_trip(const uint8_t *buf, size_t len, const struct sf_frame_hdr *hdr,
                                   const struct sf_event *evs, int n)
{
    static uint8_t out[SF_DATAGRAM_LEN_MAX];
    size_t header_len = sf_le16_get(buf + 18);
    size_t end = sf_frame_events_end(hdr, len);
    int olen = sf_frame_begin(out, sizeof(out), hdr);
    FUZZ_CHECK(olen == SF_FRAME_HDR_LEN);
    for (int i = 0; i < n; i++) {
        FUZZ_CHECK(inside(evs[i].type, evs[i].type_len, buf, end));
        FUZZ_CHECK(sf_name_valid_type(evs[i].type, evs[i].type_len)); /* SIMD == bytewise */
        FUZZ_CHECK(sf_name_valid_id(evs[i].id, evs[i].id_len));
        FUZZ_CHECK(sf_name_valid_signal(evs[i].signal, evs[i].signal_len));
        FUZZ_CHECK(inside(evs[i].fields, evs[i].fields_len, buf, end) || evs[i].fields_len == 0);
        FUZZ_CHECK(evs[i].offset + evs[i].length <= end);
        check_fields_round_trip(evs[i].fields, evs[i].fields_len);
        olen = sf_frame_add_event(out, sizeof(out), (size_t)olen, &evs[i]);
        FUZZ_CHECK(olen > 0);
    }
    int final_len = sf_frame_end(out, sizeof(out), (size_t)olen);
    FUZZ_CHECK(final_len > 0);
    if (header_len != SF_FRAME_HDR_LEN)
        return; /* extensions are not re-encoded */
    FUZZ_CHECK((size_t)final_len == len);
    FUZZ_CHECK(memcmp(out, buf, end) == 0);
}

static void check_ack_round_trip(const uint8_t *buf, size_t len)
{
    struct sf_ack_hdr h;
    struct sf_ack_entry e[SF_ACK_ENTRIES_MAX];
    int n = sf_ack_decode(buf, len, &h, e, SF_ACK_ENTRIES_MAX);
    if (n < 0) {
        FUZZ_CHECK(n == SF_ERR_BAD_ACK);
        return;
    }
    uint8_t out[SF_ACK_HDR_LEN + SF_ACK_ENTRIES_MAX * SF_ACK_ENTRY_LEN];
    int olen = sf_ack_encode(out, sizeof(out), &h, e);
    FUZZ_CHECK(olen > 0 && (size_t)olen == len && memcmp(out, buf, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sf_event evs[SF_FRAME_EVENTS_MAX];
    struct sf_frame_hdr hdr;
    int n = sf_datagram_parse(data, size, &hdr, evs, SF_FRAME_EVENTS_MAX);
    FUZZ_CHECK(n != 0 && n > -SF_ERR_COUNT && n <= (int)SF_FRAME_EVENTS_MAX);
    if (n > 0 && data[0] == '{')
        check_json_event(data, size, &evs[0]);
    else if (n > 0)
        check_frame_round_trip(data, size, &hdr, evs, n);

    check_fields_round_trip(data, size);

    struct sf_json_field f[SF_JSON_FIELDS_MAX];
    int nf = sf_json_fields_decode(data, size, f, SF_JSON_FIELDS_MAX);
    FUZZ_CHECK(nf <= (int)SF_JSON_FIELDS_MAX);
    for (int i = 0; i < nf; i++)
        FUZZ_CHECK(inside(f[i].name, f[i].name_len, data, size) && f[i].name_len > 0);

    check_ack_round_trip(data, size);
    return 0;
}
