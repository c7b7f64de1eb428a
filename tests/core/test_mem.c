/* test_mem: 2 MB aligned regions — fallback path, alignment, zero fill, prefault, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sf_mem.h"

static void check_region(char *p, size_t bytes)
{
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % SF_MEM_PAGE_BYTES, 0);
    for (size_t off = 0; off < bytes; off += 4096)
        assert_int_equal(p[off], 0);
    assert_int_equal(p[bytes - 1], 0);
    memset(p, 0xA5, bytes); /* the whole length is writable */
    assert_int_equal((unsigned char)p[bytes - 1], 0xA5);
}

/* Without MAP_HUGETLB the region is an aligned anonymous mapping, reported as not huge. */
static void test_mem_fallback(void **state)
{
    (void)state;
    const size_t sizes[] = { 1, 4096, SF_MEM_PAGE_BYTES, SF_MEM_PAGE_BYTES + 1, 37u << 20 };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        bool huge = true;
        char *p = sf_mem_alloc_flags(sizes[i], SF_MEM_NO_HUGETLB, &huge);
        assert_false(huge);
        check_region(p, sizes[i]);
        sf_mem_free(p, sizes[i]);
    }
}

/* Default path: hugetlb pages when reserved, else the fallback; usable either way. */
static void test_mem_default_and_prefault(void **state)
{
    (void)state;
    bool huge = false;
    size_t bytes = 5u << 20;
    char *p = sf_mem_alloc(bytes, &huge);
    check_region(p, bytes);
    sf_mem_free(p, bytes);
    p = sf_mem_alloc_flags(bytes, SF_MEM_PREFAULT, &huge);
    check_region(p, bytes);
    sf_mem_free(p, bytes);
    p = sf_mem_alloc_flags(bytes, SF_MEM_PREFAULT | SF_MEM_NO_HUGETLB, NULL);
    check_region(p, bytes);
    sf_mem_free(p, bytes);
}

static void test_mem_errors(void **state)
{
    (void)state;
    bool huge = true;
    assert_null(sf_mem_alloc(0, &huge));
    assert_false(huge);
    assert_null(sf_mem_alloc(SIZE_MAX, NULL));
    assert_null(sf_mem_alloc_flags(4096, 0x80u, NULL));
    assert_int_equal(sf_mem_round(1), SF_MEM_PAGE_BYTES);
    assert_int_equal(sf_mem_round(SF_MEM_PAGE_BYTES), SF_MEM_PAGE_BYTES);
    assert_int_equal(sf_mem_round(SIZE_MAX), 0);
    sf_mem_free(NULL, 123); /* no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mem_fallback),
        cmocka_unit_test(test_mem_default_and_prefault),
        cmocka_unit_test(test_mem_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
