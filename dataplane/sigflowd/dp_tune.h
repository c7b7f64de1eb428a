/*
 * dp_tune.h — the node's numeric knobs in one table (dp_tune.c): for each, the name `tune`
 * takes, the configuration file's [section] and key, the accepted range and its unit, the
 * struct dp_config field it sets, and whether and how it changes while the node runs.
 *
 * Both readers of a value go through this table, so they accept exactly the same values
 * and refuse the others with the same words: the configuration file (dp_config.c: the
 * refusal is "file:line: " + the message) and the control socket's `tune` (dp_ctl_tune.c:
 * {"ok":false,"error": message}). A refusal names the range and the unit:
 *
 *   wal.batch_bytes_max: must be an integer in 4096..1048576 (bytes), not 2000000
 *
 * Live knobs are applied one of two ways: node-wide words of the running configuration
 * that the loops read at their next check (the control thread stores them), or a setting
 * each owner core applies to its own log on its own thread (through its mailbox).
 *
 * DPDK-free: the unit test (tests/sigflowd/test_tune.c) drives exactly this table.
 */
#ifndef DP_TUNE_H
#define DP_TUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_config.h"

#define DP_TUNE_ERROR_MAX 256 /* a message, with room for the longest key and value */

/* When a knob takes effect. */
enum dp_tune_live {
    DP_TUNE_START_ONLY = 0, /* read at start-up only: the configuration file sets it */
    DP_TUNE_LIVE_NODE,      /* a word of the running configuration (relaxed store) */
    DP_TUNE_LIVE_OWNER,     /* each owner core's log, applied by the owner itself */
};

struct wal;

/* What a live value is applied to: the running configuration (DP_TUNE_LIVE_NODE) or one
 * owner's log (DP_TUNE_LIVE_OWNER; NULL when the node runs without a log). */
struct dp_tune_target {
    struct dp_config *cfg;
    struct wal *wal;
};

struct dp_tunable {
    const char *key;     /* the name `tune` takes: "wal.batch_bytes_max" */
    const char *section; /* in the configuration file: [section] name = value */
    const char *name;
    uint64_t min, max; /* accepted range, both ends included, in unit */
    bool pow2;         /* the value must also be a power of 2 */
    uint32_t multiple; /* the value must also be a multiple of this (0: any) */
    const char *unit;  /* what the number counts: "bytes", "microseconds", ... */
    enum dp_tune_live live;
    size_t offset; /* the struct dp_config field the value sets ... */
    size_t size;   /* ... and its size: 2, 4 or 8 bytes */
    /* DP_TUNE_LIVE_OWNER: apply value to one owner's log (to->wal). 0, -ENOTSUP (no log)
     * or the log's refusal (-EINVAL). NULL for the other kinds. */
    int (*apply_owner)(const struct dp_tune_target *to, uint64_t value);
};

/** The table's rows, for listings and tests: *count gets their number. Can't fail. */
const struct dp_tunable *dp_tune_table(size_t *count);

/** The row `tune` names key, or NULL. */
const struct dp_tunable *dp_tune_find(const char *key);

/** The row of the configuration file's [section] name, or NULL. */
const struct dp_tunable *dp_tune_find_config(const char *section, const char *name);

/** A number as the configuration file writes it: decimal (or 0x hex, 0 octal), optionally
 *  followed by k, M or G (powers of 1000). 0 with *out, or -EINVAL (not a number, negative,
 *  trailing bytes, or over 2^64-1). Never asserts on its input. */
int dp_tune_number(const char *text, uint64_t *out);

/** Is value acceptable for t? 0, or -ERANGE with the refusal message in err[0..len). */
int dp_tune_check(const struct dp_tunable *t, uint64_t value, char *err, size_t len);

/** The configuration file's text for t: 0 with *value, -EINVAL (not a number) or -ERANGE,
 *  with the message in err[0..len) (the same words as dp_tune_check's). */
int dp_tune_parse(const struct dp_tunable *t, const char *text, uint64_t *value, char *err,
                  size_t len);

/** `tune key value`'s gate, before anything is applied: 0 with *out the row; -ENOENT (no
 *  such key), -EPERM (start-up only) or -ERANGE (dp_tune_check), with the reply's message in
 *  err[0..len). */
int dp_tune_prepare(const char *key, uint64_t value, const struct dp_tunable **out, char *err,
                    size_t len);

/** Store a checked value into t's field of cfg (a relaxed atomic store: loops of a running
 *  node read the word concurrently). Can't fail. */
void dp_tune_store(const struct dp_tunable *t, struct dp_config *cfg, uint64_t value);

/** The value of t's field in cfg. Can't fail. */
uint64_t dp_tune_load(const struct dp_tunable *t, const struct dp_config *cfg);

#endif /* DP_TUNE_H */
