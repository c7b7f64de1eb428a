/*
 * sf_crc32c.h — CRC32C (Castagnoli), the one checksum of every sigflow format: WAL segment,
 * batch and record headers (wal_format.h), snapshot files and the MANIFEST (snap_format.c),
 * definition blobs (dataplane/flow/flow_def.c).
 *
 * Polynomial 0x1EDC6F41 (0x82F63B78 reflected), initial value and final xor 0xFFFFFFFF, as
 * in iSCSI (RFC 3720) and the SSE4.2 CRC32 instruction: sf_crc32c(0, "123456789", 9) is
 * 0xE3069283. The bytes on disk depend on exactly this function: tests/storage/test_crc32c
 * pins vectors the three earlier copies produced.
 *
 * Plain C on plain buffers, no dependencies. Built with SSE4.2 (the top meson.build passes
 * -msse4.2 to the whole project) it runs on the CRC32 instruction, 8 bytes per step in one
 * dependency chain and the last 0..7 bytes in at most three steps (4, 2, 1); otherwise on a
 * 256-entry table, a byte per step.
 */
#ifndef SF_CRC32C_H
#define SF_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/**
 * CRC32C of len bytes at data (any alignment; data may be NULL when len is 0), continuing
 * from crc: 0 to start, and sf_crc32c(sf_crc32c(0, a, n), b, m) is the CRC of a followed by
 * b. Can't fail.
 */
uint32_t sf_crc32c(uint32_t crc, const void *data, size_t len);

/**
 * The same value by table lookups whatever the build (the path of a build without SSE4.2),
 * so that tests can hold the two against each other. Can't fail.
 */
uint32_t sf_crc32c_portable(uint32_t crc, const void *data, size_t len);

#endif /* SF_CRC32C_H */
