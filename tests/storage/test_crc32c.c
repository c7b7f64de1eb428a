/* test_crc32c — sf_crc32c: published check values, the vectors the three copies it replaced
 * produced (so existing files keep their checksums), any split and alignment, and the table
 * path equal to the instruction path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sf_crc32c.h"

#define T_BUF_BYTES 4099u

/* The bytes the pinned vectors were computed over: xorshift64, high half of each step. */
static void t_fill(uint8_t *buf, size_t len)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)(x >> 32);
    }
}

static void test_check_values(void **state)
{
    (void)state;
    assert_int_equal(sf_crc32c(0, "123456789", 9), 0xe3069283u); /* RFC 3720 check value */
    assert_int_equal(sf_crc32c(0, NULL, 0), 0);
    assert_int_equal(sf_crc32c(0, "", 0), 0);
    assert_int_equal(sf_crc32c(0x12345678u, NULL, 0), 0x12345678u); /* nothing to add */
    /* RFC 3720 B.4: 32 bytes of zeros, of ones, ascending, descending */
    uint8_t b[32];
    memset(b, 0, sizeof(b));
    assert_int_equal(sf_crc32c(0, b, sizeof(b)), 0x8a9136aau);
    memset(b, 0xff, sizeof(b));
    assert_int_equal(sf_crc32c(0, b, sizeof(b)), 0x62a8ab43u);
    for (unsigned i = 0; i < sizeof(b); i++)
        b[i] = (uint8_t)i;
    assert_int_equal(sf_crc32c(0, b, sizeof(b)), 0x46dd794eu);
    for (unsigned i = 0; i < sizeof(b); i++)
        b[i] = (uint8_t)(31 - i);
    assert_int_equal(sf_crc32c(0, b, sizeof(b)), 0x113fdb5cu);
}

/* Computed by snap_crc32c (snap.c), wal_crc32c (wal_format.h) and fb_crc32c (flow_def.c) at
 * commit bdd197e, which agreed on every one: the checksums in existing WAL segments,
 * snapshots, MANIFESTs and definition blobs are these functions' values. */
static void test_old_copies_vectors(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        uint32_t crc;        /* of buf[0 .. len) */
        uint32_t crc_skip_1; /* of buf[1 .. len): a start off every alignment */
    } v[] = {
        { 0, 0x00000000u, 0x00000000u },    { 1, 0x5c4e59d0u, 0x00000000u },
        { 7, 0x1119c539u, 0x0ef33f85u },    { 8, 0x96f8e910u, 0x69b1bef3u },
        { 9, 0xf5b243b3u, 0x052d510au },    { 31, 0xe11d10a8u, 0x60d307b9u },
        { 32, 0xa8d8aef5u, 0x4a6c248eu },   { 33, 0x8e308ca3u, 0x66c3c71fu },
        { 63, 0x6e661f1du, 0x89f4f47eu },   { 64, 0xa46f0796u, 0xd61ef5ebu },
        { 65, 0xd02f072eu, 0x1eed6e02u },   { 100, 0x4647151du, 0x3fbef1e1u },
        { 255, 0x92cb214bu, 0x0029bdbdu },  { 1000, 0x2f9986dfu, 0xf2f6091cu },
        { 4096, 0x07c55ccdu, 0x809c4235u }, { 4099, 0x956f171bu, 0x92133a49u },
    };
    static uint8_t buf[T_BUF_BYTES];
    t_fill(buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_true(v[i].len <= sizeof(buf));
        size_t skip_len = v[i].len > 0 ? v[i].len - 1 : 0;
        assert_int_equal(sf_crc32c(0, buf, v[i].len), v[i].crc);
        assert_int_equal(sf_crc32c(0, buf + 1, skip_len), v[i].crc_skip_1);
        assert_int_equal(sf_crc32c_portable(0, buf, v[i].len), v[i].crc);
        assert_int_equal(sf_crc32c_portable(0, buf + 1, skip_len), v[i].crc_skip_1);
    }
}

/* Incremental equals one-shot at every split point, from every alignment. */
static void test_incremental(void **state)
{
    (void)state;
    static uint8_t buf[300];
    t_fill(buf, sizeof(buf));
    for (size_t start = 0; start < 8; start++) {
        size_t len = sizeof(buf) - start;
        uint32_t whole = sf_crc32c(0, buf + start, len);
        for (size_t cut = 0; cut <= len; cut++) {
            uint32_t a = sf_crc32c(0, buf + start, cut);
            assert_int_equal(sf_crc32c(a, buf + start + cut, len - cut), whole);
        }
        /* three pieces, the table path on the middle one */
        uint32_t c = sf_crc32c(0, buf + start, 5);
        c = sf_crc32c_portable(c, buf + start + 5, 100);
        assert_int_equal(sf_crc32c(c, buf + start + 105, len - 105), whole);
    }
}

/* The table path and the instruction path agree on every length and alignment around the
 * 8- and 32-byte steps, and a single flipped bit always changes the value. */
static void test_paths_agree(void **state)
{
    (void)state;
    static uint8_t buf[T_BUF_BYTES];
    t_fill(buf, sizeof(buf));
    for (size_t start = 0; start < 16; start++)
        for (size_t len = 0; len <= 200; len++)
            assert_int_equal(sf_crc32c(0, buf + start, len),
                             sf_crc32c_portable(0, buf + start, len));
    assert_int_equal(sf_crc32c(7, buf, sizeof(buf)), sf_crc32c_portable(7, buf, sizeof(buf)));
    uint32_t base = sf_crc32c(0, buf, 256);
    for (unsigned bit = 0; bit < 256 * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_not_equal(sf_crc32c(0, buf, 256), base);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    assert_int_equal(sf_crc32c(0, buf, 256), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_values),
        cmocka_unit_test(test_old_copies_vectors),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_paths_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
