/*
 * flow_vm.h — the VM's entry for its caller on the owner core (dataplane/runtime).
 *
 * flow.h is the interface of the compiler and of the VM on `struct flow_def`. The
 * runtime's per-packet path needs a little more, and needs it without a call: it finds a
 * signal by its load-time plan, decodes the signal's fields straight into the VM's
 * registers, runs the handler on those registers, and reads the record header and the
 * timer slots' due times in place. Those pieces, and only those, are here; the blob's
 * structs, the instruction set and the compiler stay in flow_internal.h (private to
 * dataplane/flow), which includes this header.
 *
 * Record layout (docs/flow.md "Instance record", vm.c): struct vm_rec_header at offset 0,
 * then the timer slots' due times (u64 each, 0 = disarmed) at flow_def_timers_offset(),
 * the activity slots, the variables and the queues.
 *
 * Threading: as flow.h — a def and its plans are immutable and shared by all cores.
 */
#ifndef SF_FLOW_VM_H
#define SF_FLOW_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flow.h"

/* ---- the record header (read in place by the runtime) ---------------------------------- */

/* Record layout (docs/flow.md "Instance record"). */
struct vm_rec_header {
    uint16_t state;
    uint8_t flags; /* VM_REC_* */
    uint8_t reserved;
    uint32_t next_seq; /* last activity sequence number used */
    uint64_t created_ns;
};
#define VM_REC_STARTED   0x01u
#define VM_REC_COMPLETED 0x02u
_Static_assert(sizeof(struct vm_rec_header) == 16, "record header");

/**
 * Record offset of the timer slots' due times (u64 each, slot i at offset + 8 * i; 0 =
 * disarmed; the same values vm_record_timer_due returns). A multiple of 8, and
 * offset + 8 * flow_def_timer_slot_count(def) <= flow_def_record_size(def). Can't fail.
 */
uint32_t flow_def_timers_offset(const struct flow_def *def);

/* ---- signals: the load-time plan ----------------------------------------------------- */

/* Per-signal lookup plan, derived at load (two cache lines each): in the first, what the
 * lookup reads — the name zero-padded to 32 bytes so that it can be compared with word
 * loads, the field count and types; in the second, the text fields' declared bounds. */
struct fb_sig_plan {
    char name[FLOW_NAME_LEN_MAX + 1];
    uint8_t name_len;
    uint8_t nfields;
    uint8_t type[FLOW_FIELDS_MAX]; /* enum flow_type of field i (declaration order) */
    uint8_t pad[14];
    uint8_t text_cap[FLOW_FIELDS_MAX]; /* field i declared text(N): N; else 0 (no bound) */
    uint8_t pad2[48];
};
_Static_assert(sizeof(struct fb_sig_plan) == 128, "a signal plan is two cache lines");
_Static_assert(offsetof(struct fb_sig_plan, text_cap) == 64, "the lookup reads one line");

/**
 * The signal plans of def: plans[i] describes signal i, for i < *count (==
 * flow_def_signal_count). The array lives as long as the def (64-byte aligned; not NULL
 * even when *count is 0). Can't fail. Off the data path: cache the pointer and the count.
 */
const struct fb_sig_plan *flow_def_sig_plans(const struct flow_def *def, unsigned *count);

/* Equal bytes a[0..len) and b[0..len), 1 <= len <= FLOW_NAME_LEN_MAX, where a is zero-padded
 * to FLOW_NAME_LEN_MAX + 1 bytes: overlapping word loads, never outside b[0..len). */
static inline bool fb_name_eq_padded(const char *a, const char *b, size_t len)
{
    if (len >= 8) {
        uint64_t x, y;
        for (size_t k = 0; k + 8 < len; k += 8) {
            memcpy(&x, a + k, 8);
            memcpy(&y, b + k, 8);
            if (x != y)
                return false;
        }
        memcpy(&x, a + len - 8, 8);
        memcpy(&y, b + len - 8, 8);
        return x == y;
    }
    if (len >= 4) {
        uint32_t x, y, z, w;
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        memcpy(&z, a + len - 4, 4);
        memcpy(&w, b + len - 4, 4);
        return x == y && z == w;
    }
    return a[0] == b[0] && a[len / 2] == b[len / 2] && a[len - 1] == b[len - 1];
}

/**
 * Index of the signal named name[0..len) among plans[0..count) (from flow_def_sig_plans),
 * or -1 when there is none (a length of 0 or above FLOW_NAME_LEN_MAX matches nothing).
 * The same answer as flow_def_signal_index. Can't fail; reads nothing outside name[0..len).
 */
static inline int fb_sig_plan_find(const struct fb_sig_plan *plans, unsigned count,
                                   const char *name, size_t len)
{
    for (unsigned i = 0; i < count; i++) {
        const struct fb_sig_plan *sp = &plans[i];
        if (sp->name_len == len && fb_name_eq_padded(sp->name, name, len))
            return (int)i;
    }
    return -1;
}

/* ---- running a signal from registers ------------------------------------------------- */

/** One VM register: an int/float/bool (8 bytes) or a text view. */
union vm_reg {
    int64_t i;
    uint64_t u;
    double f;
    struct {
        const char *p;
        uint32_t n;
    } t;
};

/**
 * vm_run_signal with the fields already in regs[0..nfields of sig) (regs has VM_REGS_MAX
 * entries and is the VM's register file for the call: all of it may be overwritten). Each
 * register holds its field as the VM's own field loading would have made it (declared type
 * as in plans[sig].type, missing or null fields zero / "", a text no longer than a nonzero
 * plans[sig].text_cap: the compiler relies on it). Returns the number of commands
 * written to cmds[] (>= 0), or VM_ERR_COMPLETED, VM_ERR_BAD_INDEX, VM_ERR_NO_SPACE — the
 * same results, commands and errors as vm_run_signal; on error the record is unchanged.
 */
int vm_run_signal_regs(const struct flow_def *def, void *record, unsigned sig, union vm_reg *regs,
                       const char *id, size_t id_len, uint64_t now_ns, struct vm_cmd *cmds,
                       unsigned cmds_max);

#endif /* SF_FLOW_VM_H */
