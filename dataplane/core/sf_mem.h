/*
 * sf_mem.h — large, 2 MB aligned memory regions for the owner core's tables (no DPDK).
 *
 * Every table, record arena and key store of an owner core is carved from regions
 * allocated here at start-up (docs/architecture.md#event-path: 2 MB pages, or TLB misses would
 * double the cost of a lookup). Order of preference:
 *   1. MAP_HUGETLB 2 MB pages, when the administrator reserved them (vm.nr_hugepages);
 *   2. an ordinary anonymous mapping aligned to 2 MB with madvise(MADV_HUGEPAGE), so that
 *      transparent huge pages back it whenever the kernel can (THP "madvise" or "always").
 * Regions are zero-filled. Lengths are rounded up to a multiple of SF_MEM_PAGE_BYTES.
 */
#ifndef SF_MEM_H
#define SF_MEM_H

#include <stdbool.h>
#include <stddef.h>

#define SF_MEM_PAGE_BYTES ((size_t)2 << 20) /* 2 MB: alignment and length granule */

#define SF_MEM_PREFAULT    0x1u /* fault every page in now, not on the first event */
#define SF_MEM_NO_HUGETLB  0x2u /* skip MAP_HUGETLB (tests of the fallback path) */
#define SF_MEM_FLAGS_KNOWN (SF_MEM_PREFAULT | SF_MEM_NO_HUGETLB)

/**
 * Allocate a zeroed region of at least bytes (> 0), 2 MB aligned. *huge_out (may be NULL)
 * is set to true when the region is backed by reserved MAP_HUGETLB pages, false when it is
 * the THP-advised fallback. Same as sf_mem_alloc_flags(bytes, 0, huge_out).
 * Returns NULL on failure (bytes == 0, overflow, or out of memory).
 */
void *sf_mem_alloc(size_t bytes, bool *huge_out);

/**
 * sf_mem_alloc with flags (SF_MEM_*; unknown bits fail). With SF_MEM_PREFAULT every page
 * is faulted in before return (MAP_POPULATE / MADV_POPULATE_WRITE / touching each page).
 * Returns NULL on failure.
 */
void *sf_mem_alloc_flags(size_t bytes, unsigned flags, bool *huge_out);

/** Length actually mapped for a request of bytes: rounded up to SF_MEM_PAGE_BYTES; 0 on
 *  overflow. Can't fail. */
size_t sf_mem_round(size_t bytes);

/** Release a region from sf_mem_alloc*; bytes is the length that was requested. p NULL:
 *  no-op. Can't fail (a munmap error is a programmer error and asserts). */
void sf_mem_free(void *p, size_t bytes);

#endif /* SF_MEM_H */
