/* test_cbor — field values: every integer width, floats, text, rejects, libcbor agreement. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include <cbor.h>

#include "sf_proto.h"

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* Parse "81 18 64" style hex into out; returns length. */
static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        out[n++] = (uint8_t)(hexval(p[0]) << 4 | hexval(p[1]));
        p += 2;
    }
    return n;
}

/* Decode a one-element array whose element is given in hex. */
static int decode_one(const char *item_hex, struct sf_value *v)
{
    uint8_t b[64];
    b[0] = 0x81;
    size_t n = 1 + unhex(item_hex, b + 1);
    return sf_fields_decode(b, n, v, 1);
}

/* RFC 8949 Appendix A examples plus every width boundary, both ways. */
static void test_integers_all_widths(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *hex;
    } cases[] = {
        { 0, "00" },
        { 1, "01" },
        { 10, "0a" },
        { 23, "17" },
        { 24, "18 18" },
        { 100, "18 64" },
        { 255, "18 ff" },
        { 256, "19 01 00" },
        { 1000, "19 03 e8" },
        { 65535, "19 ff ff" },
        { 65536, "1a 00 01 00 00" },
        { 1000000, "1a 00 0f 42 40" },
        { 4294967295, "1a ff ff ff ff" },
        { 4294967296, "1b 00 00 00 01 00 00 00 00" },
        { 1000000000000, "1b 00 00 00 e8 d4 a5 10 00" },
        { INT64_MAX, "1b 7f ff ff ff ff ff ff ff" },
        { -1, "20" },
        { -10, "29" },
        { -24, "37" },
        { -25, "38 18" },
        { -100, "38 63" },
        { -256, "38 ff" },
        { -257, "39 01 00" },
        { -1000, "39 03 e7" },
        { -65536, "39 ff ff" },
        { -65537, "3a 00 01 00 00" },
        { -4294967296, "3a ff ff ff ff" },
        { -4294967297, "3b 00 00 00 01 00 00 00 00" },
        { INT64_MIN, "3b 7f ff ff ff ff ff ff ff" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t want[16], got[16];
        want[0] = 0x81;
        size_t wn = 1 + unhex(cases[i].hex, want + 1);
        struct sf_value v = { .type = SF_VAL_INT, .i = cases[i].v };
        int n = sf_fields_encode(got, sizeof(got), &v, 1);
        assert_int_equal(n, wn);
        assert_memory_equal(got, want, wn);
        struct sf_value back;
        assert_int_equal(sf_fields_decode(want, wn, &back, 1), 1);
        assert_int_equal(back.type, SF_VAL_INT);
        assert_true(back.i == cases[i].v);
        assert_int_equal(sf_fields_validate(want, wn), 1);
    }
}

static void test_non_shortest_and_out_of_range(void **state)
{
    (void)state;
    struct sf_value v;
    assert_int_equal(decode_one("18 05", &v), 1);
    assert_int_equal(v.i, 5);
    assert_int_equal(decode_one("19 00 05", &v), 1);
    assert_int_equal(v.i, 5);
    assert_int_equal(decode_one("1a 00 00 00 05", &v), 1);
    assert_int_equal(v.i, 5);
    assert_int_equal(decode_one("1b 00 00 00 00 00 00 00 05", &v), 1);
    assert_int_equal(v.i, 5);
    assert_int_equal(decode_one("3b 00 00 00 00 00 00 00 05", &v), 1);
    assert_int_equal(v.i, -6);
    /* 2^63 does not fit int64 either way. */
    assert_int_equal(decode_one("1b 80 00 00 00 00 00 00 00", &v), SF_ERR_BAD_FIELDS);
    assert_int_equal(decode_one("3b 80 00 00 00 00 00 00 00", &v), SF_ERR_BAD_FIELDS);
    assert_int_equal(decode_one("1b ff ff ff ff ff ff ff ff", &v), SF_ERR_BAD_FIELDS);
}

static void test_floats(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        double v;
    } cases[] = {
        { "f9 00 00", 0.0 },
        { "f9 3c 00", 1.0 },
        { "f9 3e 00", 1.5 },
        { "f9 7b ff", 65504.0 },
        { "f9 00 01", 5.960464477539063e-8 },
        { "f9 03 ff", 0.00006097555160522461 },
        { "f9 04 00", 0.00006103515625 },
        { "f9 c4 00", -4.0 },
        { "fa 47 c3 50 00", 100000.0 },
        { "fa 7f 7f ff ff", 3.4028234663852886e+38 },
        { "fa 3f 80 00 00", 1.0 },
        { "fb 3f f1 99 99 99 99 99 9a", 1.1 },
        { "fb 7e 37 e4 3c 88 00 75 9c", 1.0e+300 },
        { "fb c0 10 66 66 66 66 66 66", -4.1 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sf_value v;
        assert_int_equal(decode_one(cases[i].hex, &v), 1);
        assert_int_equal(v.type, SF_VAL_FLOAT);
        assert_true(v.f == cases[i].v);
    }
    struct sf_value v;
    assert_int_equal(decode_one("f9 80 00", &v), 1);
    assert_true(v.f == 0.0 && signbit(v.f));
    assert_int_equal(decode_one("f9 7c 00", &v), 1);
    assert_true(isinf(v.f) && v.f > 0);
    assert_int_equal(decode_one("f9 fc 00", &v), 1);
    assert_true(isinf(v.f) && v.f < 0);
    assert_int_equal(decode_one("f9 7e 00", &v), 1);
    assert_true(isnan(v.f));
    assert_int_equal(decode_one("fa 7f c0 00 00", &v), 1);
    assert_true(isnan(v.f));
    /* Encoding is always float64, bit-exact round trip. */
    double samples[] = { 0.1, -2.5e-310, 1e308, -0.0, 3.0 };
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        uint8_t b[16];
        struct sf_value in = { .type = SF_VAL_FLOAT, .f = samples[i] }, out;
        assert_int_equal(sf_fields_encode(b, sizeof(b), &in, 1), 10);
        assert_int_equal(b[1], 0xfb);
        assert_int_equal(sf_fields_decode(b, 10, &out, 1), 1);
        assert_memory_equal(&in.f, &out.f, sizeof(double));
    }
}

static void test_simple_and_text(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n = unhex("86 f4 f5 f6 60 64 49 45 54 46 78 18 61616161616161616161616161616161"
                     "6161616161616161",
                     b);
    struct sf_value v[8];
    assert_int_equal(sf_fields_decode(b, n, v, 8), 6);
    assert_int_equal(v[0].type, SF_VAL_BOOL);
    assert_false(v[0].b);
    assert_int_equal(v[1].type, SF_VAL_BOOL);
    assert_true(v[1].b);
    assert_int_equal(v[2].type, SF_VAL_NULL);
    assert_int_equal(v[3].type, SF_VAL_TEXT);
    assert_int_equal(v[3].text.len, 0);
    assert_int_equal(v[4].text.len, 4);
    assert_memory_equal(v[4].text.ptr, "IETF", 4);
    assert_int_equal(v[5].text.len, 24);
    assert_ptr_equal(v[5].text.ptr, (const char *)b + n - 24); /* a view, not a copy */
    /* Re-encoding gives the same bytes (all heads were shortest). */
    uint8_t again[64];
    assert_int_equal(sf_fields_encode(again, sizeof(again), v, 6), n);
    assert_memory_equal(again, b, n);
    /* A 300-byte text uses a two-byte length head. */
    char big[300];
    memset(big, 'b', sizeof(big));
    struct sf_value t = { .type = SF_VAL_TEXT, .text = { big, 300 } };
    uint8_t tb[400];
    assert_int_equal(sf_fields_encode(tb, sizeof(tb), &t, 1), 1 + 3 + 300);
    assert_int_equal(tb[1], 0x79);
    assert_int_equal(sf_fields_validate(tb, 304), 1);
}

static void test_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",            /* (as an item) nothing: count says 1 */
        "40",          /* byte string */
        "81 01",       /* nested array */
        "a0",          /* map */
        "c0 00",       /* tag */
        "f7",          /* undefined */
        "f8 20",       /* simple value */
        "f0",          /* simple 16 */
        "ff",          /* break */
        "9f ff",       /* indefinite array */
        "7f ff",       /* indefinite text */
        "1c",          /* reserved ai 28 */
        "3d",          /* reserved ai 29 */
        "19 00",       /* truncated argument */
        "fb 00 00 00", /* truncated double */
        "63 61 62",    /* text longer than the buffer */
        "01 01",       /* more items than the count */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sf_value v[4];
        uint8_t b[32];
        b[0] = 0x81;
        size_t n = 1 + unhex(bad[i], b + 1);
        if (sf_fields_decode(b, n, v, 4) != SF_ERR_BAD_FIELDS)
            fail_msg("accepted 81 %s", bad[i]);
        assert_int_equal(sf_fields_validate(b, n), SF_ERR_BAD_FIELDS);
    }
    uint8_t b[8];
    struct sf_value v[4];
    size_t n = unhex("01", b); /* not an array */
    assert_int_equal(sf_fields_validate(b, n), SF_ERR_BAD_FIELDS);
    n = unhex("9f 01 ff", b); /* indefinite outer array */
    assert_int_equal(sf_fields_validate(b, n), SF_ERR_BAD_FIELDS);
    n = unhex("83 01 02", b); /* count past the end */
    assert_int_equal(sf_fields_validate(b, n), SF_ERR_BAD_FIELDS);
    n = unhex("99 ff ff 01", b); /* huge count: rejected before walking */
    assert_int_equal(sf_fields_validate(b, n), SF_ERR_BAD_FIELDS);
    n = unhex("83 01 02 03", b);
    assert_int_equal(sf_fields_decode(b, n, v, 2), SF_ERR_TOO_MANY_FIELDS);
    assert_int_equal(sf_fields_decode(b, n, v, 3), 3);
    assert_int_equal(sf_fields_decode(b, 0, v, 3), 0);
}

static void test_encode_no_space_and_bad_type(void **state)
{
    (void)state;
    struct sf_value v[3] = { { .type = SF_VAL_INT, .i = 70000 },
                             { .type = SF_VAL_TEXT, .text = { "hello", 5 } },
                             { .type = SF_VAL_FLOAT, .f = 2.0 } };
    uint8_t b[64];
    int full = sf_fields_encode(b, sizeof(b), v, 3);
    assert_int_equal(full, 1 + 5 + 6 + 9);
    for (int cap = 0; cap < full; cap++)
        assert_int_equal(sf_fields_encode(b, (size_t)cap, v, 3), SF_ERR_NO_SPACE);
    v[1].type = (enum sf_val_type)9;
    assert_int_equal(sf_fields_encode(b, sizeof(b), v, 3), SF_ERR_BAD_FIELDS);
    assert_int_equal(sf_fields_encode(b, sizeof(b), NULL, 0), 1);
    assert_int_equal(b[0], 0x80);
}

/* Our encoder's output, read by libcbor (the reference decoder). */
static void test_libcbor_reads_ours(void **state)
{
    (void)state;
    struct sf_value v[] = {
        { .type = SF_VAL_INT, .i = 0 },
        { .type = SF_VAL_INT, .i = 300 },
        { .type = SF_VAL_INT, .i = INT64_MAX },
        { .type = SF_VAL_INT, .i = -70000 },
        { .type = SF_VAL_INT, .i = INT64_MIN },
        { .type = SF_VAL_FLOAT, .f = -1.25 },
        { .type = SF_VAL_BOOL, .b = true },
        { .type = SF_VAL_NULL },
        { .type = SF_VAL_TEXT, .text = { "temp", 4 } },
    };
    size_t nv = sizeof(v) / sizeof(v[0]);
    uint8_t b[128];
    int n = sf_fields_encode(b, sizeof(b), v, (unsigned)nv);
    assert_true(n > 0);
    struct cbor_load_result res;
    cbor_item_t *arr = cbor_load(b, (size_t)n, &res);
    assert_non_null(arr);
    assert_int_equal(res.read, (size_t)n);
    assert_true(cbor_isa_array(arr));
    assert_int_equal(cbor_array_size(arr), nv);
    cbor_item_t **items = cbor_array_handle(arr);
    assert_true(cbor_isa_uint(items[0]) && cbor_get_int(items[0]) == 0);
    assert_true(cbor_isa_uint(items[1]) && cbor_get_int(items[1]) == 300);
    assert_true(cbor_isa_uint(items[2]) && cbor_get_int(items[2]) == (uint64_t)INT64_MAX);
    assert_true(cbor_isa_negint(items[3]) && cbor_get_int(items[3]) == 69999);
    assert_true(cbor_isa_negint(items[4]) && cbor_get_int(items[4]) == (uint64_t)INT64_MAX);
    assert_true(cbor_isa_float_ctrl(items[5]) && cbor_float_get_float(items[5]) == -1.25);
    assert_true(cbor_is_bool(items[6]) && cbor_get_bool(items[6]));
    assert_true(cbor_is_null(items[7]));
    assert_true(cbor_isa_string(items[8]) && cbor_string_length(items[8]) == 4);
    assert_memory_equal(cbor_string_handle(items[8]), "temp", 4);
    cbor_decref(&arr);
}

/* libcbor's encodings (half/single floats, every int width) read by our decoder. */
static void test_we_read_libcbor(void **state)
{
    (void)state;
    cbor_item_t *arr = cbor_new_definite_array(12);
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_uint8(7))));
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_uint16(7))));
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_uint32(7))));
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_uint64(7))));
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_negint8(7))));
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_negint64(1ull << 40))));
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_float2(-0.5f))));
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_float4(0.1f))));
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_float8(0.1))));
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_bool(false))));
    assert_true(cbor_array_push(arr, cbor_move(cbor_new_null())));
    assert_true(cbor_array_push(arr, cbor_move(cbor_build_string("élan"))));
    uint8_t b[128];
    size_t n = cbor_serialize(arr, b, sizeof(b));
    cbor_decref(&arr);
    assert_true(n > 0);
    struct sf_value v[12];
    assert_int_equal(sf_fields_decode(b, n, v, 12), 12);
    for (int i = 0; i < 4; i++)
        assert_true(v[i].type == SF_VAL_INT && v[i].i == 7);
    assert_true(v[4].type == SF_VAL_INT && v[4].i == -8);
    assert_true(v[5].type == SF_VAL_INT && v[5].i == -1 - (int64_t)(1ull << 40));
    assert_true(v[6].type == SF_VAL_FLOAT && v[6].f == -0.5);
    assert_true(v[7].type == SF_VAL_FLOAT && v[7].f == (double)0.1f);
    assert_true(v[8].type == SF_VAL_FLOAT && v[8].f == 0.1);
    assert_true(v[9].type == SF_VAL_BOOL && !v[9].b);
    assert_true(v[10].type == SF_VAL_NULL);
    assert_true(v[11].type == SF_VAL_TEXT && v[11].text.len == 5);
    assert_memory_equal(v[11].text.ptr, "élan", 5);
}

/* Every half-precision bit pattern decodes to what libcbor decodes. */
static void test_all_halves_match_libcbor(void **state)
{
    (void)state;
    for (uint32_t h = 0; h <= 0xffff; h++) {
        uint8_t b[4] = { 0x81, 0xf9, (uint8_t)(h >> 8), (uint8_t)h };
        struct sf_value v;
        assert_int_equal(sf_fields_decode(b, 4, &v, 1), 1);
        struct cbor_load_result res;
        cbor_item_t *item = cbor_load(b + 1, 3, &res);
        assert_non_null(item);
        double ref = cbor_float_get_float(item);
        cbor_decref(&item);
        if (isnan(ref)) {
            assert_true(isnan(v.f));
            continue;
        }
        if (!(v.f == ref && signbit(v.f) == signbit(ref)))
            fail_msg("half 0x%04x: got %a, libcbor %a", h, v.f, ref);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers_all_widths),
        cmocka_unit_test(test_non_shortest_and_out_of_range),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_simple_and_text),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_encode_no_space_and_bad_type),
        cmocka_unit_test(test_libcbor_reads_ours),
        cmocka_unit_test(test_we_read_libcbor),
        cmocka_unit_test(test_all_halves_match_libcbor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
