/*
 * dp_fault.c — fault injection for tests ([wal] fault_injection = true): storage/sf_io's
 * fault layer fails chosen operations, or keeps every un-synced write until a simulated
 * power cut rewrites the files as a disk could have kept them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dp.h"
#include "dp_fault.h"
#include "sf_io.h"

int dp_fault_arm(struct dp_node *node, const char *kind, uint32_t skip, uint64_t seed)
{
    static const struct {
        const char *name;
        enum sf_io_fault fault;
    } kinds[] = {
        { "write_eio", SF_IO_FAULT_WRITE_EIO },
        { "fsync_eio", SF_IO_FAULT_FSYNC_EIO },
        { "enospc", SF_IO_FAULT_ENOSPC },
        { "short_write", SF_IO_FAULT_SHORT_WRITE },
    };
    if (!node->cfg.wal_fault_injection)
        return -EPERM;
    if (strcmp(kind, "powercut") == 0 || strcmp(kind, "powercut_reorder") == 0) {
        /* "powercut": un-synced writes are lost in order and the last one is torn;
         * "powercut_reorder": other un-synced writes may also survive whole. */
        node->power_cut_flags = kind[8] == '_' ? SF_IO_CUT_REORDER : 0;
        int rc = sf_io_power_cut_begin();
        if (rc == 0)
            node->power_cut_seed = seed ? seed : 1;
        return rc;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kind, kinds[i].name) == 0)
            return sf_io_fault_arm(kinds[i].fault, skip,
                                   kinds[i].fault == SF_IO_FAULT_SHORT_WRITE ? UINT32_MAX : 1);
    return -ENOENT;
}

void dp_fault_power_cut_finish(struct dp_node *node)
{
    /* The logs are not closed: a machine that loses power flushes nothing. Every owner
     * reaped its operations in flight before the loop stopped (dp_wal_poll). */
    struct sf_io_cut_report rep;
    int rc = sf_io_power_cut_apply(node->power_cut_seed, node->power_cut_flags, &rep);
    fprintf(stderr,
            "sigflowd: POWER CUT (test): %u un-synced writes lost, %u kept, %u files removed, "
            "torn at %s:%" PRIu64 " (%s)\n",
            rep.writes_lost, rep.writes_kept, rep.files_removed,
            rep.torn_path[0] ? rep.torn_path : "-", rep.torn_offset,
            rc == 0 ? "applied" : strerror(-rc));
    _exit(137);
}
