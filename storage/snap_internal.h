/*
 * snap_internal.h — what the snapshot files of storage/ share, not installed: the on-disk
 * structures, names and listing, encoding and validation (snap_format.c, whose top comment
 * is the byte layout), and mapping a file (snap_load.c). snap.h is the interface.
 */
#ifndef SF_SNAP_INTERNAL_H
#define SF_SNAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "snap.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "snapshot files are little-endian and written as host structs"
#endif

#define SNAP_MAGIC_FILE     0x4e534653u /* "SFSN" */
#define SNAP_MAGIC_SECTION  0x50534653u /* "SFSP" */
#define SNAP_MAGIC_FOOTER   0x46534653u /* "SFSF" */
#define SNAP_MAGIC_MANIFEST 0x464d4653u /* "SFMF" */
#define SNAP_BLOCK          64u
#define SNAP_LIST_MAX       64u /* snapshot files of a core looked at by a load */
#define SNAP_EPOCH_NAME_LEN 22u /* "epoch-" + 16 hex */
#define SNAP_FILE_NAME_LEN  21u /* 16 hex + ".snap" */
#define SNAP_MANIFEST_ENTRY 16u
#define SNAP_NO_LSN         UINT64_MAX

struct snap_file_header {
    uint32_t magic, crc, version, core;
    uint64_t epoch, seq;
    uint32_t part_count, flags;
    uint64_t created_ns;
    uint64_t reserved[2];
};

struct snap_section {
    uint32_t magic, crc, part_id, index;
    uint64_t lsn, data_offset, data_bytes, digest;
    uint32_t data_crc, reserved0;
    uint64_t reserved1;
};

struct snap_footer {
    uint32_t magic, crc, part_count, table_crc;
    uint64_t table_offset, file_bytes, epoch, seq;
    uint32_t core, version;
    uint64_t reserved;
};

struct snap_manifest_header {
    uint32_t magic, crc, version, cores, parts, flags;
    uint64_t epoch, created_ns, file_bytes;
    uint64_t reserved[2];
};

struct snap_manifest_entry {
    uint16_t core, flags;
    uint32_t reserved;
    uint64_t floor_lsn;
};

_Static_assert(sizeof(struct snap_file_header) == SNAP_BLOCK, "header is 64 B");
_Static_assert(sizeof(struct snap_section) == SNAP_BLOCK, "section is 64 B");
_Static_assert(sizeof(struct snap_footer) == SNAP_BLOCK, "footer is 64 B");
_Static_assert(sizeof(struct snap_manifest_header) == SNAP_BLOCK, "manifest header is 64 B");
_Static_assert(sizeof(struct snap_manifest_entry) == SNAP_MANIFEST_ENTRY, "entry is 16 B");
_Static_assert(SNAP_PARTS_MAX % 64 == 0, "bitmap words");

/* A snapshot file mapped read-only (snap_map), with its header and footer once
 * snap_validate has read them. */
struct snap_image {
    const uint8_t *base;
    uint64_t size;
    struct snap_file_header h;
    struct snap_footer f;
};

/* What a file's path says it is (epoch, core, seq); check_data: the data crcs too (a load),
 * not only the structure (the writer's look at the older snapshot it keeps). */
struct snap_expect {
    uint64_t epoch, seq;
    uint32_t core;
    bool check_data;
};

static inline uint64_t snap_round_up(uint64_t x)
{
    return (x + SNAP_BLOCK - 1) & ~(uint64_t)(SNAP_BLOCK - 1);
}

static inline uint64_t snap_now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- names (snap_format.c) --------------------------------------------------------------- */

/** cdir/SSSSSSSSSSSSSSSS.snap followed by suffix into buf. Returns 0 or -ENAMETOOLONG. */
int snap_file_path(const char *cdir, uint64_t seq, const char *suffix, char *buf, size_t cap);

/** The 16 lower-case hex digits at s into *out; false (and *out unchanged) when they are not. */
bool snap_parse_hex16(const char *s, uint64_t *out);

/**
 * Sequence numbers of the SEQ.snap files in cdir, ascending, into seqs[0..*n) (the newest
 * SNAP_LIST_MAX when there are more). With unlink_tmp, SEQ.snap.tmp files are removed (and
 * *removed_tmp counts them). Returns 0 or -errno (-ENOENT: no such directory).
 */
int snap_list(const char *cdir, uint64_t *seqs, uint32_t *n, bool unlink_tmp,
              uint32_t *removed_tmp);

/* ---- snapshot file: encoding and validation (snap_format.c) ------------------------------ */

/** crc of a 64-byte structure whose crc field sits at bytes 4..7. Can't fail. */
uint32_t snap_block_crc(const void *block);

/** Set a section header's crc (its other fields final). Can't fail. */
void snap_section_seal(struct snap_section *s);

/** The footer of a file whose part_count sealed section headers (the table) start at
 *  table_offset, crc included. Can't fail. */
struct snap_footer snap_footer_encode(const struct snap_section *table, uint32_t part_count,
                                      uint64_t table_offset, uint64_t epoch, uint64_t seq,
                                      uint32_t core);

/** The file header, crc included. Can't fail. */
struct snap_file_header snap_header_encode(uint32_t part_count, uint64_t epoch, uint64_t seq,
                                           uint32_t core, uint64_t created_ns);

/** Section table entry i into *e, once snap_validate has checked the table's place. */
void snap_table_entry(const struct snap_image *im, uint32_t i, struct snap_section *e);

/**
 * NULL when im is a valid snapshot per x (data crcs only with x->check_data), else why;
 * *bad is the offset of the structure found bad. seen: SNAP_PARTS_MAX bits of scratch.
 * Fills im->h and im->f.
 */
const char *snap_validate(struct snap_image *im, const struct snap_expect *x, uint64_t *seen,
                          uint64_t *bad);

/* ---- mapping (snap_load.c) --------------------------------------------------------------- */

/** Map path read-only into im. Returns 0 or -errno. */
int snap_map(const char *path, struct snap_image *im);

/** Unmap what snap_map mapped (nothing when it mapped nothing). */
void snap_unmap(struct snap_image *im);

/* ---- MANIFEST: encoding and validation (snap_format.c) ----------------------------------- */

/** The MANIFEST's validity rules on a decoded m (snap_format.c, MANIFEST). */
bool snap_manifest_valid(const struct snap_manifest *m);

/** Bytes of a MANIFEST of parts partitions. */
size_t snap_manifest_bytes(uint32_t parts);

/** m (valid) encoded into buf, snap_manifest_bytes(m->parts) bytes, crc included. */
void snap_manifest_encode(const struct snap_manifest *m, uint8_t *buf);

/** Decode and validate size bytes of a MANIFEST into *m. Returns 0 or -EBADMSG. */
int snap_manifest_decode(const uint8_t *buf, uint64_t size, struct snap_manifest *m);

#endif /* SF_SNAP_INTERNAL_H */
