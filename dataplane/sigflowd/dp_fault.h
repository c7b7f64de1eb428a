/*
 * dp_fault.h — fault injection for tests (dp_fault.c), armed only with [wal]
 * fault_injection = true: I/O errors and power cuts through storage/sf_io's fault layer.
 */
#ifndef DP_FAULT_H
#define DP_FAULT_H

#include <stdint.h>

#include "dp.h"

/** Arm a fault by name ("powercut", "powercut_reorder", "write_eio", "fsync_eio", "enospc",
 *  "short_write") after `skip` operations. 0, -EPERM (not configured), -ENOENT (no such
 *  fault), or the fault layer's -errno. */
int dp_fault_arm(struct dp_node *node, const char *kind, uint32_t skip, uint64_t seed);

/** After a power cut: every owner drained its log; rewrite the files as a disk would look
 *  after losing power, then exit 137. */
void dp_fault_power_cut_finish(struct dp_node *node) __attribute__((noreturn));

#endif /* DP_FAULT_H */
