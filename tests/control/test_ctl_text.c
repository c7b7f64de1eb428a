/*
 * test_ctl_text — outside text rendered for a terminal: printable UTF-8 kept, controls,
 * C1 controls and invalid UTF-8 escaped as \xNN, bounded output never cut inside a unit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_text.h"

#define OUT_CAP      256u
#define RANDOM_RUNS  20000u
#define RANDOM_BYTES 24u

struct render_case {
    const char *in;
    size_t len;
    unsigned flags;
    const char *out;
};

#define CASE(lit, fl, o)            \
    {                               \
        lit, sizeof(lit) - 1, fl, o \
    }

static const struct render_case cases[] = {
    CASE("order-42", 0, "order-42"),
    CASE("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80", 0,
         "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"),
    CASE("\x1b[2J\x1b]0;pwned\x07", 0, "\\x1b[2J\\x1b]0;pwned\\x07"),
    CASE("a\nb\tc\rd", 0, "a\\x0ab\\x09c\\x0dd"),
    CASE("a\nb\tc", CTL_TEXT_NEWLINES, "a\nb\\x09c"),
    CASE("del\x7f", 0, "del\\x7f"),
    CASE("c1 \xc2\x9b"
         "31m \xc2\x85 \xc2\xa0",
         0,
         "c1 \\xc2\\x9b"
         "31m \\xc2\\x85 \xc2\xa0"),
    CASE("bad \xff \xfe", 0, "bad \\xff \\xfe"),
    CASE("overlong \xc0\xaf \xe0\x80\xaf", 0, "overlong \\xc0\\xaf \\xe0\\x80\\xaf"),
    CASE("surrogate \xed\xa0\x80", 0, "surrogate \\xed\\xa0\\x80"),
    CASE("big \xf4\x90\x80\x80", 0, "big \\xf4\\x90\\x80\\x80"),
    CASE("cut \xe6\x97", 0, "cut \\xe6\\x97"),
    CASE("lone \x80 cont", 0, "lone \\x80 cont"),
    CASE("nul\0byte", 0, "nul\\x00byte"),
    CASE("back\\slash", 0, "back\\\\slash"),
};

static void test_render_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct render_case *c = &cases[i];
        char out[OUT_CAP];
        ctl_text_format(out, sizeof(out), c->in, c->len, c->flags);
        if (strcmp(out, c->out) != 0)
            fail_msg("case %zu: got '%s', want '%s'", i, out, c->out);
        /* the stream form writes the same */
        char *buf = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&buf, &n);
        assert_non_null(f);
        ctl_text_write(f, c->in, c->len, c->flags);
        fclose(f);
        assert_string_equal(buf, c->out);
        free(buf);
    }
}

static void test_missing(void **state)
{
    (void)state;
    char out[8];
    assert_string_equal(ctl_text_format(out, sizeof(out), NULL, 0, 0), CTL_TEXT_MISSING);
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ctl_text_write(f, NULL, 5, 0);
    fclose(f);
    assert_string_equal(buf, CTL_TEXT_MISSING);
    free(buf);
}

/* Bounded output stops before the first unit that does not fit, with its NUL. */
static void test_truncation(void **state)
{
    (void)state;
    char out[8];
    assert_string_equal(ctl_text_format(out, 1, "abc", 3, 0), "");
    assert_string_equal(ctl_text_format(out, 3, "abc", 3, 0), "ab");
    assert_string_equal(ctl_text_format(out, 6, "ab\x1b", 3, 0), "ab"); /* \x1b needs 4 */
    assert_string_equal(ctl_text_format(out, 7, "ab\x1b", 3, 0), "ab\\x1b");
    assert_string_equal(ctl_text_format(out, 3, "a\xc3\xa9", 3, 0), "a"); /* never half é */
    assert_string_equal(ctl_text_format(out, 4, "a\xc3\xa9", 3, 0), "a\xc3\xa9");
    assert_string_equal(ctl_text_format(out, 8, "\xc2\x9b", 2, 0), ""); /* one 8-byte unit */
    memset(out, 'z', sizeof(out));
    ctl_text_format(out, 5, "\\\\\\", 3, 0);
    assert_string_equal(out, "\\\\\\\\");
}

static void test_is_utf8(void **state)
{
    (void)state;
    assert_true(ctl_text_is_utf8("", 0));
    assert_true(ctl_text_is_utf8(NULL, 0));
    assert_true(ctl_text_is_utf8("caf\xc3\xa9\0x", 6));
    assert_true(ctl_text_is_utf8("\xf4\x8f\xbf\xbf", 4));
    assert_false(ctl_text_is_utf8("\xff", 1));
    assert_false(ctl_text_is_utf8("\xc3", 1));
    assert_false(ctl_text_is_utf8("\xed\xa0\x80", 3));
    assert_false(ctl_text_is_utf8("\xc1\xbf", 2));
    assert_false(ctl_text_is_utf8("\xf4\x90\x80\x80", 4));
}

/* Any bytes: the rendering is valid UTF-8 with no C0/C1 control and no DEL. */
static void test_random_bytes(void **state)
{
    (void)state;
    uint32_t x = 12345;
    for (unsigned run = 0; run < RANDOM_RUNS; run++) {
        char in[RANDOM_BYTES];
        for (unsigned i = 0; i < sizeof(in); i++) {
            x = x * 1103515245u + 12345u;
            unsigned r = x >> 16;
            in[i] = (char)((r & 3) == 0 ? (r >> 2) % 0x20 : (r >> 2) & 0xff);
        }
        char out[OUT_CAP];
        ctl_text_format(out, sizeof(out), in, sizeof(in), 0);
        size_t n = strlen(out);
        assert_true(ctl_text_is_utf8(out, n));
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)out[i];
            assert_true(c >= 0x20 && c != 0x7f);
            if (c == 0xc2 && i + 1 < n)
                assert_true((unsigned char)out[i + 1] >= 0xa0);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_cases), cmocka_unit_test(test_missing),
        cmocka_unit_test(test_truncation),   cmocka_unit_test(test_is_utf8),
        cmocka_unit_test(test_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
