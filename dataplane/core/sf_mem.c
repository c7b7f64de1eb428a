/* sf_mem.c — 2 MB aligned regions: hugetlb pages when reserved, else THP-advised mmap. */
#include "sf_mem.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels return EINVAL and we touch pages */
#endif

size_t sf_mem_round(size_t bytes)
{
    if (bytes > SIZE_MAX - SF_MEM_PAGE_BYTES)
        return 0;
    size_t len = (bytes + SF_MEM_PAGE_BYTES - 1) & ~(SF_MEM_PAGE_BYTES - 1);
    assert(len >= bytes && len % SF_MEM_PAGE_BYTES == 0);
    return len;
}

static void *sf_mem_map_hugetlb(size_t len, unsigned flags)
{
    int mflags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
    if (flags & SF_MEM_PREFAULT)
        mflags |= MAP_POPULATE;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, mflags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Map len + one page, keep the 2 MB aligned middle, unmap the ragged ends. */
static void *sf_mem_map_aligned(size_t len)
{
    size_t over = len + SF_MEM_PAGE_BYTES;
    if (over < len)
        return NULL;
    char *raw = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t start =
        ((uintptr_t)raw + SF_MEM_PAGE_BYTES - 1) & ~(uintptr_t)(SF_MEM_PAGE_BYTES - 1);
    size_t head = start - (uintptr_t)raw;
    size_t tail = over - head - len;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap((char *)start + len, tail);
    assert(start % SF_MEM_PAGE_BYTES == 0 && head + len + tail == over);
    return (void *)start;
}

static void sf_mem_prefault(char *p, size_t len)
{
    if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
        return;
    for (size_t off = 0; off < len; off += 4096)
        ((volatile char *)p)[off] = 0; /* zero page → private page, value unchanged */
}

void *sf_mem_alloc_flags(size_t bytes, unsigned flags, bool *huge_out)
{
    if (huge_out)
        *huge_out = false;
    if (bytes == 0 || (flags & ~SF_MEM_FLAGS_KNOWN) != 0)
        return NULL;
    size_t len = sf_mem_round(bytes);
    if (len == 0)
        return NULL;

    if (!(flags & SF_MEM_NO_HUGETLB)) {
        void *p = sf_mem_map_hugetlb(len, flags);
        if (p != NULL) {
            assert((uintptr_t)p % SF_MEM_PAGE_BYTES == 0);
            if (huge_out)
                *huge_out = true;
            return p;
        }
    }
    char *p = sf_mem_map_aligned(len);
    if (p == NULL)
        return NULL;
    (void)madvise(p, len, MADV_HUGEPAGE); /* EINVAL when THP is compiled out: still usable */
    if (flags & SF_MEM_PREFAULT)
        sf_mem_prefault(p, len);
    return p;
}

void *sf_mem_alloc(size_t bytes, bool *huge_out)
{
    return sf_mem_alloc_flags(bytes, 0, huge_out);
}

void sf_mem_free(void *p, size_t bytes)
{
    if (p == NULL)
        return;
    assert((uintptr_t)p % SF_MEM_PAGE_BYTES == 0);
    size_t len = sf_mem_round(bytes);
    assert(len != 0);
    int rc = munmap(p, len);
    assert(rc == 0);
    (void)rc;
}
