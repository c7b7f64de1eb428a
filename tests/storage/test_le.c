/* test_le — sf_le.h: the byte layout of each width, at every alignment, touching no byte
 * outside the field, and round trips of values around every byte boundary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sf_le.h"

#define T_GUARD 0xa5u
#define T_SPAN  24u /* bytes of buffer: 8 of offset, 8 of field, guard after */

/* buf[0 .. T_SPAN) all T_GUARD but for want[0 .. n) at offset off. */
static void t_expect(const uint8_t *buf, size_t off, const uint8_t *want, size_t n)
{
    for (size_t i = 0; i < T_SPAN; i++) {
        if (i >= off && i < off + n)
            assert_int_equal(buf[i], want[i - off]);
        else
            assert_int_equal(buf[i], T_GUARD);
    }
}

static void test_layout_every_alignment(void **state)
{
    (void)state;
    static const uint8_t le16[] = { 0x02, 0x01 };
    static const uint8_t le32[] = { 0x04, 0x03, 0x02, 0x01 };
    static const uint8_t le64[] = { 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01 };
    uint8_t buf[T_SPAN];
    for (size_t off = 0; off < 8; off++) {
        memset(buf, T_GUARD, sizeof(buf));
        sf_le16_put(buf + off, 0x0102u);
        t_expect(buf, off, le16, sizeof(le16));
        assert_int_equal(sf_le16_get(buf + off), 0x0102u);

        memset(buf, T_GUARD, sizeof(buf));
        sf_le32_put(buf + off, 0x01020304u);
        t_expect(buf, off, le32, sizeof(le32));
        assert_int_equal(sf_le32_get(buf + off), 0x01020304u);

        memset(buf, T_GUARD, sizeof(buf));
        sf_le64_put(buf + off, 0x0102030405060708ull);
        t_expect(buf, off, le64, sizeof(le64));
        assert_true(sf_le64_get(buf + off) == 0x0102030405060708ull);
    }
}

/* Loads of fixed bytes: the high bit of each byte lands where it should (no sign extension,
 * no mixing of the two 32-bit halves). */
static void test_loads_of_fixed_bytes(void **state)
{
    (void)state;
    static const uint8_t b[9] = { 0xff, 0x80, 0x7f, 0x00, 0xfe, 0x01, 0x80, 0xc0, 0x11 };
    assert_int_equal(sf_le16_get(b), 0x80ffu);
    assert_int_equal(sf_le16_get(b + 1), 0x7f80u);
    assert_int_equal(sf_le32_get(b), 0x007f80ffu);
    assert_int_equal(sf_le32_get(b + 4), 0xc08001feu);
    assert_true(sf_le64_get(b) == 0xc08001fe007f80ffull);
    assert_true(sf_le64_get(b + 1) == 0x11c08001fe007f80ull);
    static const uint8_t ones[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    assert_int_equal(sf_le16_get(ones), UINT16_MAX);
    assert_int_equal(sf_le32_get(ones), UINT32_MAX);
    assert_true(sf_le64_get(ones) == UINT64_MAX);
}

/* 2^k - 1, 2^k and 2^k + 1 for every bit k, and their complements, round trip unchanged. */
static void test_round_trips(void **state)
{
    (void)state;
    uint8_t buf[T_SPAN];
    for (unsigned k = 0; k < 64; k++) {
        uint64_t base = 1ull << k;
        uint64_t vals[6] = { base - 1, base, base + 1, ~(base - 1), ~base, ~(base + 1) };
        for (unsigned i = 0; i < 6; i++) {
            uint64_t v = vals[i];
            size_t off = (k + i) % 8;
            sf_le16_put(buf + off, (uint16_t)v);
            assert_int_equal(sf_le16_get(buf + off), (uint16_t)v);
            sf_le32_put(buf + off, (uint32_t)v);
            assert_int_equal(sf_le32_get(buf + off), (uint32_t)v);
            sf_le64_put(buf + off, v);
            assert_true(sf_le64_get(buf + off) == v);
            /* the low half of a 64-bit field is its 32-bit load, the high half follows */
            assert_int_equal(sf_le32_get(buf + off), (uint32_t)v);
            assert_int_equal(sf_le32_get(buf + off + 4), (uint32_t)(v >> 32));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_every_alignment),
        cmocka_unit_test(test_loads_of_fixed_bytes),
        cmocka_unit_test(test_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
