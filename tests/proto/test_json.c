/* test_json — the JSON convenience form: keys, field types, escapes, limits, rejects. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sf_proto.h"

static struct sf_event ev;

static int jparse(const char *s)
{
    return sf_json_parse((const uint8_t *)s, strlen(s), &ev);
}

static int dparse(const char *s)
{
    struct sf_frame_hdr hdr;
    struct sf_event evs[2];
    int rc = sf_datagram_parse((const uint8_t *)s, strlen(s), &hdr, evs, 2);
    if (rc == 1) {
        ev = evs[0];
        assert_int_equal(hdr.event_count, 1);
        assert_int_equal(hdr.version, 1);
    }
    return rc;
}

static void assert_view(const char *p, size_t n, const char *want)
{
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}

static void test_full_example(void **state)
{
    (void)state;
    const char *s = "{\"type\":\"device\",\"id\":\"sensor-1\",\"signal\":\"telemetry\","
                    "\"event_id\":17,\"ts_ns\":123,\"fields\":{\"temp_c\":21.5,\"ok\":true,"
                    "\"name\":\"x\",\"n\":-42,\"off\":false,\"none\":null}}\n";
    assert_int_equal(dparse(s), 1);
    assert_view(ev.type, ev.type_len, "device");
    assert_view(ev.id, ev.id_len, "sensor-1");
    assert_view(ev.signal, ev.signal_len, "telemetry");
    assert_true(ev.has_event_id);
    assert_int_equal(ev.event_id, 17);
    assert_int_equal(ev.ts_ns, 123);
    assert_true(ev.fields_json);
    assert_int_equal(ev.offset, 0);
    assert_int_equal(ev.length, strlen(s));
    assert_int_equal(ev.fields[0], '{');
    assert_int_equal(ev.fields[ev.fields_len - 1], '}');

    struct sf_json_field f[SF_JSON_FIELDS_MAX];
    assert_int_equal(sf_json_fields_decode(ev.fields, ev.fields_len, f, SF_JSON_FIELDS_MAX), 6);
    assert_view(f[0].name, f[0].name_len, "temp_c");
    assert_int_equal(f[0].value.type, SF_VAL_FLOAT);
    assert_true(f[0].value.f == 21.5);
    assert_view(f[1].name, f[1].name_len, "ok");
    assert_true(f[1].value.type == SF_VAL_BOOL && f[1].value.b);
    assert_view(f[2].name, f[2].name_len, "name");
    assert_int_equal(f[2].value.type, SF_VAL_TEXT);
    assert_view(f[2].value.text.ptr, f[2].value.text.len, "x");
    assert_true(f[3].value.type == SF_VAL_INT && f[3].value.i == -42);
    assert_true(f[4].value.type == SF_VAL_BOOL && !f[4].value.b);
    assert_int_equal(f[5].value.type, SF_VAL_NULL);
    /* Fewer slots than fields. */
    assert_int_equal(sf_json_fields_decode(ev.fields, ev.fields_len, f, 5), SF_ERR_TOO_MANY_FIELDS);
}

static void test_keys_reordered_and_whitespace(void **state)
{
    (void)state;
    const char *s = " \t\r\n{ \"fields\" : { \"a\" : 1 } ,\n \"signal\":\"s\" , \"ts_ns\":0,"
                    "\"id\" :\"i\",\"event_id\": 18446744073709551615 ,\"type\":\"t\" }\r\n ";
    assert_int_equal(jparse(s), SF_OK);
    assert_view(ev.type, ev.type_len, "t");
    assert_view(ev.id, ev.id_len, "i");
    assert_view(ev.signal, ev.signal_len, "s");
    assert_true(ev.event_id == UINT64_MAX);
    struct sf_json_field f[2];
    assert_int_equal(sf_json_fields_decode(ev.fields, ev.fields_len, f, 2), 1);
    assert_true(f[0].value.type == SF_VAL_INT && f[0].value.i == 1);
    /* A datagram must start with '{' to be JSON. */
    assert_int_equal(dparse(s), SF_ERR_BAD_MAGIC);
}

static void test_missing_keys(void **state)
{
    (void)state;
    assert_int_equal(jparse("{\"id\":\"i\",\"signal\":\"s\"}"), SF_ERR_JSON_MISSING);
    assert_int_equal(jparse("{\"type\":\"t\",\"signal\":\"s\"}"), SF_ERR_JSON_MISSING);
    assert_int_equal(jparse("{\"type\":\"t\",\"id\":\"i\"}"), SF_ERR_JSON_MISSING);
    assert_int_equal(jparse("{}"), SF_ERR_JSON_MISSING);
    /* event_id, ts_ns and fields are optional. */
    assert_int_equal(jparse("{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"}"), SF_OK);
    assert_false(ev.has_event_id);
    assert_int_equal(ev.event_id, 0);
    assert_int_equal(ev.ts_ns, 0);
    assert_int_equal(ev.fields_len, 0);
    struct sf_json_field f[1];
    assert_int_equal(sf_json_fields_decode(ev.fields, ev.fields_len, f, 1), 0);
    assert_int_equal(jparse("{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":{}}"), SF_OK);
    assert_int_equal(sf_json_fields_decode(ev.fields, ev.fields_len, f, 1), 0);
}

static void test_escapes(void **state)
{
    (void)state;
    const char *s = "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"note\":\"x\\\"}\\\\\","
                    "\"fields\":{\"m\\u00e9sg\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u20ac\\ud83d"
                    "\\ude00\"}}";
    assert_int_equal(jparse(s), SF_OK);
    struct sf_json_field f[2];
    assert_int_equal(sf_json_fields_decode(ev.fields, ev.fields_len, f, 2), 1);
    char out[64];
    int n = sf_json_unescape(f[0].name, f[0].name_len, out, sizeof(out));
    assert_int_equal(n, 5);
    assert_memory_equal(out, "m\xc3\xa9sg", 5);
    n = sf_json_unescape(f[0].value.text.ptr, f[0].value.text.len, out, sizeof(out));
    const char want[] = "a\"b\\c/d\b\f\n\r\t\xe2\x82\xac\xf0\x9f\x98\x80";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, sizeof(want) - 1);
    assert_int_equal(sf_json_unescape(f[0].value.text.ptr, f[0].value.text.len, out, 5),
                     SF_ERR_NO_SPACE);
    /* Escapes in names are refused: names are views. */
    assert_int_equal(jparse("{\"type\":\"t\",\"id\":\"a\\u0041\",\"signal\":\"s\"}"),
                     SF_ERR_BAD_NAME);
    /* An escaped key never matches a known key: it is skipped as unknown. */
    assert_int_equal(jparse("{\"type\":\"t\",\"\\u0069d\":\"x\",\"id\":\"i\",\"signal\":\"s\"}"),
                     SF_OK);
    assert_view(ev.id, ev.id_len, "i");
    /* Bad escapes, anywhere. */
    static const char *bad[] = {
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"x\":\"\\x\"}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"x\":\"\\u12g4\"}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"x\":\"\\u12\"}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":{\"a\":\"\\\"}}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"x\":\"tab\there\"}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"x\":\"\\",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (jparse(bad[i]) != SF_ERR_BAD_JSON)
            fail_msg("accepted %s", bad[i]);
    }
    /* Unescape rejects lone surrogates and bad escapes. */
    assert_int_equal(sf_json_unescape("\\ud83d", 6, out, sizeof(out)), SF_ERR_BAD_JSON);
    assert_int_equal(sf_json_unescape("\\ude00", 6, out, sizeof(out)), SF_ERR_BAD_JSON);
    assert_int_equal(sf_json_unescape("\\ud83d\\u0041", 12, out, sizeof(out)), SF_ERR_BAD_JSON);
    assert_int_equal(sf_json_unescape("\\q", 2, out, sizeof(out)), SF_ERR_BAD_JSON);
    assert_int_equal(sf_json_unescape("ab\\", 3, out, sizeof(out)), SF_ERR_BAD_JSON);
    assert_int_equal(sf_json_unescape("\\u00", 4, out, sizeof(out)), SF_ERR_BAD_JSON);
    assert_int_equal(sf_json_unescape("plain", 5, out, sizeof(out)), 5);
    assert_int_equal(sf_json_unescape("\\u0000", 6, out, sizeof(out)), 1);
    assert_int_equal(out[0], 0);
}

static void test_unknown_keys_nested(void **state)
{
    (void)state;
    assert_int_equal(jparse("{\"x\":{\"a\":[1,2,{\"b\":null}],\"c\":\"}\"},\"type\":\"t\",\"y\":[],"
                            "\"z\":{},\"id\":\"i\",\"w\":-1.5e3,\"signal\":\"s\",\"v\":true}"),
                     SF_OK);
    assert_view(ev.signal, ev.signal_len, "s");
    /* Depth limit: SF_JSON_DEPTH_MAX levels are skipped, one more is refused. */
    char s[256];
    for (unsigned depth = SF_JSON_DEPTH_MAX; depth <= SF_JSON_DEPTH_MAX + 1; depth++) {
        int n = sprintf(s, "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"deep\":");
        for (unsigned i = 0; i < depth; i++) {
            if (i % 2 == 0)
                n += sprintf(s + n, "{\"k\":");
            else
                s[n++] = '[';
        }
        s[n++] = '1';
        for (unsigned i = depth; i-- > 0;)
            s[n++] = i % 2 == 0 ? '}' : ']';
        s[n++] = '}';
        s[n] = 0;
        assert_int_equal(jparse(s), depth <= SF_JSON_DEPTH_MAX ? SF_OK : SF_ERR_BAD_JSON);
    }
    static const char *bad[] = {
        "{\"x\":[1,],\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"}",
        "{\"x\":{\"a\"},\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"}",
        "{\"x\":{1:2},\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"}",
        "{\"x\":[1 2],\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"}",
        "{\"x\":nul,\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"}",
        "{\"x\":[},\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"}",
        "{\"x\":,\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (jparse(bad[i]) != SF_ERR_BAD_JSON)
            fail_msg("accepted %s", bad[i]);
    }
}

static void test_structure_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"} x",              /* trailing garbage */
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"}}",               /* trailing brace */
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",}",               /* trailing comma */
        "{\"type\":\"t\" \"id\":\"i\",\"signal\":\"s\"}",                /* missing comma */
        "{\"type\" \"t\",\"id\":\"i\",\"signal\":\"s\"}",                /* missing colon */
        "{\"type\":\"t\",\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"}", /* duplicate key */
        "{\"type\":1,\"id\":\"i\",\"signal\":\"s\"}",                    /* name not a string */
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"event_id\":-1}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"event_id\":1.0}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"event_id\":\"1\"}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"event_id\":18446744073709551616}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"ts_ns\":1e3}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":[]}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":{\"a\":[1]}}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":{\"a\":{}}}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":{\"a\":1,\"a\":2}}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":{\"\":1}}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":{\"a\":1,}}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":{\"a\"}}",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\"",
        "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s",
        "{",
        "[]",
        "{'type':'t'}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (jparse(bad[i]) != SF_ERR_BAD_JSON)
            fail_msg("accepted %s: %s", bad[i], sf_err_name(jparse(bad[i])));
    }
    assert_int_equal(sf_json_parse((const uint8_t *)"", 0, &ev), SF_ERR_EMPTY);
}

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int type;
        int64_t i;
        double f;
    } ok[] = {
        { "0", SF_VAL_INT, 0, 0 },
        { "-0", SF_VAL_INT, 0, 0 },
        { "9223372036854775807", SF_VAL_INT, INT64_MAX, 0 },
        { "-9223372036854775808", SF_VAL_INT, INT64_MIN, 0 },
        { "1.5", SF_VAL_FLOAT, 0, 1.5 },
        { "-0.25e2", SF_VAL_FLOAT, 0, -25.0 },
        { "1E3", SF_VAL_FLOAT, 0, 1000.0 },
        { "2e-1", SF_VAL_FLOAT, 0, 0.2 },
        { "1e+2", SF_VAL_FLOAT, 0, 100.0 },
        { "1e-400", SF_VAL_FLOAT, 0, 0.0 },
        { "0.1", SF_VAL_FLOAT, 0, 0.1 },
    };
    char s[256];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int n = snprintf(s, sizeof(s), "{\"fields\":{\"v\":%s}}", ok[i].text);
        struct sf_json_field f[1];
        assert_int_equal(sf_json_fields_decode((const uint8_t *)s + 10, (size_t)n - 11, f, 1), 1);
        assert_int_equal(f[0].value.type, ok[i].type);
        if (ok[i].type == SF_VAL_INT)
            assert_true(f[0].value.i == ok[i].i);
        else
            assert_true(f[0].value.f == ok[i].f);
    }
    static const char *bad[] = { "01",
                                 "1.",
                                 ".5",
                                 "-",
                                 "+1",
                                 "1e",
                                 "1e+",
                                 "0x10",
                                 "1e999",
                                 "-1e999",
                                 "9223372036854775808",
                                 "-9223372036854775809",
                                 "NaN",
                                 "Infinity",
                                 "1.5.2",
                                 ("1234567890123456789012345678901234567890123456789012345678"
                                  "901234567.0") };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int n = snprintf(s, sizeof(s), "{\"v\":%s}", bad[i]);
        struct sf_json_field f[1];
        if (sf_json_fields_decode((const uint8_t *)s, (size_t)n, f, 1) != SF_ERR_BAD_JSON)
            fail_msg("accepted %s", bad[i]);
    }
}

static void test_names_and_limits(void **state)
{
    (void)state;
    char s[1024], name[80];
    memset(name, 'a', sizeof(name));
    for (unsigned len = SF_ID_LEN_MAX; len <= SF_ID_LEN_MAX + 1; len++) {
        snprintf(s, sizeof(s), "{\"type\":\"t\",\"id\":\"%.*s\",\"signal\":\"s\"}", len, name);
        assert_int_equal(jparse(s), len <= SF_ID_LEN_MAX ? SF_OK : SF_ERR_BAD_NAME);
    }
    for (unsigned len = SF_TYPE_LEN_MAX; len <= SF_TYPE_LEN_MAX + 1; len++) {
        snprintf(s, sizeof(s), "{\"type\":\"%.*s\",\"id\":\"i\",\"signal\":\"s\"}", len, name);
        assert_int_equal(jparse(s), len <= SF_TYPE_LEN_MAX ? SF_OK : SF_ERR_BAD_NAME);
        snprintf(s, sizeof(s), "{\"signal\":\"%.*s\",\"id\":\"i\",\"type\":\"s\"}", len, name);
        assert_int_equal(jparse(s), len <= SF_SIGNAL_LEN_MAX ? SF_OK : SF_ERR_BAD_NAME);
    }
    assert_int_equal(jparse("{\"type\":\"\",\"id\":\"i\",\"signal\":\"s\"}"), SF_ERR_BAD_NAME);
    assert_int_equal(jparse("{\"type\":\"a b\",\"id\":\"i\",\"signal\":\"s\"}"), SF_ERR_BAD_NAME);
    /* Field count: 16 accepted, 17 refused. */
    for (unsigned count = SF_JSON_FIELDS_MAX; count <= SF_JSON_FIELDS_MAX + 1; count++) {
        int n = sprintf(s, "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":{");
        for (unsigned i = 0; i < count; i++)
            n += sprintf(s + n, "%s\"f%u\":\"v%u\"", i ? "," : "", i, i);
        sprintf(s + n, "}}");
        assert_int_equal(dparse(s), count <= SF_JSON_FIELDS_MAX ? 1 : SF_ERR_TOO_MANY_FIELDS);
    }
    /* The fields object: up to SF_FIELDS_LEN_MAX bytes as received, one more refused (the
     * node logs both forms alike; a longer object once overflowed the owner's log record). */
    static char fs[2048];
    for (unsigned flen = SF_FIELDS_LEN_MAX - 1; flen <= SF_FIELDS_LEN_MAX + 1; flen++) {
        /* {"v":"AAA..."} is 8 bytes of frame around the text */
        int n = sprintf(fs, "{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\",\"fields\":{\"v\":\"");
        memset(fs + n, 'A', flen - 8);
        sprintf(fs + n + flen - 8, "\"}}");
        assert_int_equal(dparse(fs), flen <= SF_FIELDS_LEN_MAX ? 1 : SF_ERR_FIELDS_TOO_LONG);
    }
    /* Raw UTF-8 in strings: well-formed passes, broken sequences are bad_json. */
    assert_int_equal(dparse("{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\","
                            "\"fields\":{\"v\":\"caf\xc3\xa9\"}}"),
                     1);
    assert_int_equal(dparse("{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\","
                            "\"fields\":{\"v\":\"caf\xc3\"}}"),
                     SF_ERR_BAD_JSON);
    assert_int_equal(dparse("{\"type\":\"t\",\"id\":\"i\",\"signal\":\"s\","
                            "\"fields\":{\"v\":\"\xed\xa0\x80\"}}"),
                     SF_ERR_BAD_JSON);
    /* Longer than a datagram may be. */
    static char big[SF_DATAGRAM_LEN_MAX + 2];
    memset(big, ' ', sizeof(big));
    big[0] = '{';
    assert_int_equal(sf_json_parse((const uint8_t *)big, sizeof(big), &ev), SF_ERR_TOO_LONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_keys_reordered_and_whitespace),
        cmocka_unit_test(test_missing_keys),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_unknown_keys_nested),
        cmocka_unit_test(test_structure_rejects),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_names_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
