/*
 * fuzz_flowc — libFuzzer target for the .flow compiler and the definition loader.
 *
 * Input is .flow source (seed corpus: examples/ and tests/flow/fuzz_seeds/, which nest
 * every recursive construct past its limit). Each input goes the whole way the daemon
 * takes it (flow_compile_buffer: lex, parse, check, generate, serialize, validate); a
 * failed compile must say why, every error as `fuzz.flow:LINE:COL: message`. A definition
 * that compiles is serialized, reloaded with the daemon's loader, flow_def_load (must give
 * the same bytes), its tables read back through the accessors, and every signal, timer slot
 * and activity result is run once on a fresh record (the VM must stay within its command
 * bound and keep the record valid). The raw input is also offered to flow_def_load, and so
 * is the compiled blob with one byte flipped: both must be rejected or accepted without a
 * crash, never read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_run_def(const struct flow_def *def)
{
    size_t rs = flow_def_record_size(def);
    uint8_t *rec = aligned_alloc(8, (rs + 7) & ~(size_t)7);
    unsigned cmax = flow_def_cmds_max(def);
    struct vm_cmd *cmds = calloc(cmax, sizeof(*cmds));
    if (!rec || !cmds)
        abort();
    vm_record_init(def, rec, "fz", 2, 1);
    uint64_t now = 1000;
    for (unsigned s = 0; s < flow_def_signal_count(def); s++) {
        int n = vm_run_signal(def, rec, s, NULL, 0, "fz", 2, now++, cmds, cmax);
        if (n > (int)cmax || vm_record_check(def, rec) != 0)
            abort();
    }
    for (unsigned t = 0; t < flow_def_timer_slot_count(def); t++) {
        uint64_t due = vm_record_timer_due(def, rec, t);
        if (due) {
            int n = vm_run_timer(def, rec, t, due, "fz", 2, cmds, cmax);
            if (n > (int)cmax || vm_record_check(def, rec) != 0)
                abort();
        }
    }
    for (unsigned a = 0; a < flow_def_activity_count(def); a++) {
        uint32_t seq = 0;
        if (vm_record_activity(def, rec, a, &seq, NULL)) {
            int n = (a & 1) ? vm_run_activity_failed(def, rec, a, seq, "fz", 2, now, cmds, cmax)
                            : vm_run_activity_done(def, rec, a, seq, 7, "fz", 2, now, cmds, cmax);
            if (n > (int)cmax || vm_record_check(def, rec) != 0)
                abort();
        }
    }
    free(cmds);
    free(rec);
}

/* Every stored error is "fuzz.flow:LINE:COL: message" with LINE, COL >= 1. */
static void fuzz_check_errors(const struct flow_errors *errs)
{
    if (errs->count == 0 || errs->count > FLOW_ERRORS_MAX)
        abort(); /* a failed compile always says why */
    for (unsigned i = 0; i < errs->count; i++) {
        const struct flow_error *e = &errs->err[i];
        char head[64];
        snprintf(head, sizeof(head), "fuzz.flow:%u:%u: ", e->line, e->col);
        if (e->line == 0 || e->col == 0 || strncmp(e->text, head, strlen(head)) != 0 ||
            memchr(e->text, 0, sizeof(e->text)) == NULL)
            abort();
    }
}

/* Read every table of a loaded definition back (names are NUL-terminated strings). */
static void fuzz_read_tables(const struct flow_def *def)
{
    size_t sum = strlen(flow_def_name(def));
    for (unsigned i = 0; i < flow_def_state_count(def); i++)
        sum += strlen(flow_def_state_name(def, i));
    for (unsigned i = 0; i < flow_def_signal_count(def); i++) {
        const char *n = flow_def_signal_name(def, i);
        if (flow_def_signal_index(def, n, strlen(n)) != (int)i)
            abort();
        for (int f = 0; f < flow_def_signal_field_count(def, i); f++)
            sum += strlen(flow_def_signal_field_name(def, i, (unsigned)f));
    }
    for (unsigned i = 0; i < flow_def_handler_count(def); i++) {
        struct flow_handler_info h;
        if (flow_def_handler(def, i, &h) != 0 || h.bound == 0)
            abort();
        sum += strlen(h.state) + strlen(h.trigger);
    }
    if (sum == (size_t)-1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct flow_errors errs;
    struct flow_def *def = NULL, *d2 = NULL;
    if (flow_def_load(data, size, &d2) == 0) {
        fuzz_run_def(d2);
        flow_def_free(d2);
        d2 = NULL;
    }
    if (flow_compile_buffer("fuzz.flow", (const char *)data, size, &def, &errs) != 0) {
        fuzz_check_errors(&errs);
        return 0;
    }
    fuzz_read_tables(def);
    const void *blob;
    size_t len;
    flow_def_serialize(def, &blob, &len);
    if (flow_def_load(blob, len, &d2) != 0)
        abort();
    const void *blob2;
    size_t len2;
    flow_def_serialize(d2, &blob2, &len2);
    if (len != len2 || memcmp(blob, blob2, len) != 0)
        abort();
    flow_def_free(d2);
    uint8_t *copy = malloc(len);
    if (!copy)
        abort();
    memcpy(copy, blob, len);
    copy[size % len] ^= (uint8_t)(1u + size % 255);
    if (flow_def_load(copy, len, &d2) == 0)
        abort(); /* the checksum covers every byte */
    free(copy);
    fuzz_run_def(def);
    flow_def_free(def);
    return 0;
}
