/*
 * flow_def.c — the serialized definition ("blob"): layout, validation, lookups.
 *
 * Layout (format 1, little-endian, every section 8-byte aligned, offsets from the blob
 * start, structs in flow_internal.h):
 *
 *   struct fb_header   magic "SFDF", format, header_size, blob_len, CRC32C of the whole
 *                      blob computed with the checksum field zero, workflow version, record
 *                      size, name, initial state, timer slots, record layout offsets
 *                      (timers, activity slots, data), cmds_max, ntriggers and a table of
 *                      FB_SECT_COUNT sections {offset, count}:
 *   strings            NUL-terminated names and text constants (count = bytes; byte 0 is
 *                      the empty string)
 *   (a field's text_cap, in what was padding before, is its text(N) bound: 0 for `text`
 *   and `id` and for blobs compiled before fields carried bounds, so those still load)
 *   states, signals, fields, vars, queues, activities, params, timers (sorted by state,
 *   the `any:` row last), handlers, entries (int32 handler index or -1 per (row, trigger),
 *   rows = states then any), consts (u64), tconsts {off, len}, code (struct vm_insn).
 *
 * Triggers: signal i -> i; activity a .done -> nsignals + 2a, .failed -> nsignals + 2a + 1;
 * timer slot s -> nsignals + 2 * nacts + s. `on enter` blocks have trigger FB_ENTER.
 *
 * Validity rules (fb_load checks all of them; the VM relies on them and checks nothing
 * per instruction): sections inside the blob and aligned; counts within the FLOW_*_MAX
 * limits; names NUL-terminated inside strings and 1..FLOW_NAME_LEN_MAX long; every index
 * (field, param, state, slot, handler, const) in range; record layout consistent and every
 * variable, queue and text bound inside the record's data area; every handler's code is
 * inside the code section, made of known opcodes with zero unused operands, registers
 * < VM_REGS_MAX, jumps forward and inside the handler, ending in a terminator on every
 * path; registers are typed by a forward dataflow pass (scalar or text; every read sees a
 * value of the right kind on every path, so a text view always points at valid bytes);
 * `on enter` blocks contain no goto, complete or nomatch; each handler's stored bound
 * (longest path, including the `any:` fallback and the `on enter` blocks it can reach) and
 * command count equal the recomputed ones, and so does cmds_max. A blob that breaks any
 * rule is rejected with -EINVAL.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow_internal.h"
#include "sf_crc32c.h"

#define FB_BLOB_LEN_MAX (16u << 20)

static uint32_t blob_checksum(const uint8_t *blob, size_t len)
{
    /* the checksum field is at offset 12 */
    uint8_t head[16];
    memcpy(head, blob, 16);
    memset(head + 12, 0, 4);
    uint32_t c1 = sf_crc32c(0, head, 16);
    uint32_t c2 = sf_crc32c(0, blob + 16, len - 16);
    return c1 ^ (c2 * 0x9E3779B1u) ^ (uint32_t)len;
}

/* ---- verification ---------------------------------------------------------------------- */

enum reg_kind { K_NONE = 0, K_SCALAR = 1, K_TEXT = 2 };

enum opnd {
    O_NONE = 0, /* must be zero */
    O_WS,       /* register written, scalar */
    O_WT,       /* register written, text */
    O_WQ,       /* register written, kind of queue imm's items */
    O_WCOPY,    /* register written, kind of operand b */
    O_RS,       /* register read, scalar */
    O_RT,       /* register read, text */
    O_RQ,       /* register read, kind of queue imm's items */
    O_RANY,     /* register read, any defined kind */
    O_CAP,      /* text bound 1..255 */
    O_ARGS,     /* first argument register (RUN) */
    O_NARGS,    /* argument count (RUN) */
    O_BYTE,     /* any byte (half of a 16-bit constant) */
};

enum immk {
    I_ZERO = 0,
    I_ANY,
    I_CONST,
    I_TCONST,
    I_OFF8,
    I_OFF1,
    I_OFFTX,
    I_JUMP,
    I_QUEUE,
    I_ACT,
    I_SLOT,
    I_STATE,
};

struct op_spec {
    uint8_t a, b, c, imm;
};

static const struct op_spec op_specs[OP_COUNT_] = {
    [OP_HALT] = { 0, 0, 0, I_ZERO },
    [OP_NOMATCH] = { 0, 0, 0, I_ZERO },
    [OP_LDI] = { O_WS, 0, 0, I_ANY },
    [OP_LDK] = { O_WS, 0, 0, I_CONST },
    [OP_LDT] = { O_WT, 0, 0, I_TCONST },
    [OP_LD64] = { O_WS, 0, 0, I_OFF8 },
    [OP_LD8] = { O_WS, 0, 0, I_OFF1 },
    [OP_LDTX] = { O_WT, O_CAP, 0, I_OFFTX },
    [OP_ST64] = { O_RS, 0, 0, I_OFF8 },
    [OP_ST8] = { O_RS, 0, 0, I_OFF1 },
    [OP_STTX] = { O_RT, O_CAP, 0, I_OFFTX },
    [OP_ID] = { O_WT, 0, 0, I_ZERO },
    [OP_NOW] = { O_WS, 0, 0, I_ZERO },
    [OP_MOV] = { O_WCOPY, O_RANY, 0, I_ZERO },
    [OP_ADD] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_SUB] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_MUL] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_DIV] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_MOD] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_ADDI] = { O_WS, O_RS, 0, I_ANY },
    [OP_NEG] = { O_WS, O_RS, 0, I_ZERO },
    [OP_ABS] = { O_WS, O_RS, 0, I_ZERO },
    [OP_MIN] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_MAX] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_FADD] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_FSUB] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_FMUL] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_FDIV] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_FNEG] = { O_WS, O_RS, 0, I_ZERO },
    [OP_FABS] = { O_WS, O_RS, 0, I_ZERO },
    [OP_FMIN] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_FMAX] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_I2F] = { O_WS, O_RS, 0, I_ZERO },
    [OP_F2I] = { O_WS, O_RS, 0, I_ZERO },
    [OP_EQ] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_NE] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_LT] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_LE] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_FEQ] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_FNE] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_FLT] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_FLE] = { O_WS, O_RS, O_RS, I_ZERO },
    [OP_TEQ] = { O_WS, O_RT, O_RT, I_ZERO },
    [OP_TNE] = { O_WS, O_RT, O_RT, I_ZERO },
    [OP_NOT] = { O_WS, O_RS, 0, I_ZERO },
    [OP_JMP] = { 0, 0, 0, I_JUMP },
    [OP_JZ] = { O_RS, 0, 0, I_JUMP },
    [OP_JNZ] = { O_RS, 0, 0, I_JUMP },
    [OP_JLT] = { O_RS, O_RS, 0, I_JUMP },
    [OP_JLE] = { O_RS, O_RS, 0, I_JUMP },
    [OP_JEQ] = { O_RS, O_RS, 0, I_JUMP },
    [OP_JNE] = { O_RS, O_RS, 0, I_JUMP },
    [OP_ADDM] = { O_RS, 0, 0, I_OFF8 },
    [OP_ADDMI] = { 0, O_BYTE, O_BYTE, I_OFF8 },
    [OP_STMI] = { 0, O_BYTE, O_BYTE, I_OFF8 },
    [OP_JLTI] = { O_RS, O_BYTE, O_BYTE, I_JUMP },
    [OP_JLEI] = { O_RS, O_BYTE, O_BYTE, I_JUMP },
    [OP_JGTI] = { O_RS, O_BYTE, O_BYTE, I_JUMP },
    [OP_JGEI] = { O_RS, O_BYTE, O_BYTE, I_JUMP },
    [OP_JEQI] = { O_RS, O_BYTE, O_BYTE, I_JUMP },
    [OP_JNEI] = { O_RS, O_BYTE, O_BYTE, I_JUMP },
    [OP_QPUSH] = { O_RQ, 0, 0, I_QUEUE },
    [OP_QPOP] = { O_WQ, 0, 0, I_QUEUE },
    [OP_QFRONT] = { O_WQ, 0, 0, I_QUEUE },
    [OP_QLEN] = { O_WS, 0, 0, I_QUEUE },
    [OP_QCLEAR] = { 0, 0, 0, I_QUEUE },
    [OP_APEND] = { O_WS, 0, 0, I_ACT },
    [OP_RUN] = { 0, O_ARGS, O_NARGS, I_ACT },
    [OP_ACANCEL] = { 0, 0, 0, I_ACT },
    [OP_TCANCEL] = { 0, 0, 0, I_SLOT },
    [OP_GOTO] = { 0, 0, 0, I_STATE },
    [OP_COMPLETE] = { 0, 0, 0, I_ZERO },
};

static bool is_terminator(uint8_t op)
{
    return op == OP_HALT || op == OP_NOMATCH || op == OP_GOTO || op == OP_COMPLETE;
}

static enum reg_kind kind_of_type(uint8_t t)
{
    return t == FLOW_T_TEXT ? K_TEXT : K_SCALAR;
}

/* Static checks of one instruction (operands in range). */
static bool insn_static_ok(const struct flow_def *d, const struct vm_insn *in, unsigned at,
                           unsigned end)
{
    if (in->op >= OP_COUNT_)
        return false;
    const struct op_spec *sp = &op_specs[in->op];
    const uint8_t ops[3] = { in->a, in->b, in->c };
    const uint8_t spec[3] = { sp->a, sp->b, sp->c };
    for (int i = 0; i < 3; i++) {
        switch (spec[i]) {
        case O_NONE:
            if (ops[i])
                return false;
            break;
        case O_CAP:
            if (ops[i] < 1)
                return false;
            break;
        case O_NARGS:
        case O_BYTE:
            break;
        default:
            if (ops[i] >= VM_REGS_MAX)
                return false;
        }
    }
    int64_t imm = in->imm;
    const struct fb_header *h = d->hdr;
    switch (sp->imm) {
    case I_ZERO:
        return imm == 0;
    case I_ANY:
        return true;
    case I_CONST:
        return imm >= 0 && imm < d->nconsts;
    case I_TCONST:
        return imm >= 0 && imm < d->ntconsts;
    case I_OFF8:
        return imm >= h->data_off && imm + 8 <= h->record_size;
    case I_OFF1:
        return imm >= h->data_off && imm + 1 <= h->record_size;
    case I_OFFTX:
        return imm >= h->data_off && imm + 1 + in->b <= h->record_size;
    case I_JUMP:
        return imm >= 0 && at + 1 + imm < end;
    case I_QUEUE:
        return imm >= 0 && imm < d->nqueues;
    case I_ACT: {
        if (imm < 0 || imm >= d->nacts)
            return false;
        if (in->op == OP_RUN) {
            const struct fb_act *a = &d->acts[imm];
            return in->c == a->nparams && in->b + in->c <= VM_REGS_MAX;
        }
        return true;
    }
    case I_SLOT:
        return imm >= 0 && imm < d->nslots;
    case I_STATE:
        return imm >= 0 && imm < d->nstates;
    }
    return false;
}

static bool need(const uint8_t *k, unsigned r, enum reg_kind want)
{
    return want == K_NONE ? k[r] != K_NONE : k[r] == want;
}

/* Register kinds: check reads, apply writes. */
static bool insn_types_ok(const struct flow_def *d, const struct vm_insn *in, uint8_t *k)
{
    const struct op_spec *sp = &op_specs[in->op];
    enum reg_kind qk = K_NONE;
    if (sp->imm == I_QUEUE)
        qk = kind_of_type(d->queues[in->imm].type);
    const uint8_t ops[3] = { in->a, in->b, in->c };
    const uint8_t spec[3] = { sp->a, sp->b, sp->c };
    for (int i = 0; i < 3; i++) {
        if ((spec[i] == O_RS && !need(k, ops[i], K_SCALAR)) ||
            (spec[i] == O_RT && !need(k, ops[i], K_TEXT)) ||
            (spec[i] == O_RQ && !need(k, ops[i], qk)) ||
            (spec[i] == O_RANY && !need(k, ops[i], K_NONE)))
            return false;
    }
    if (in->op == OP_RUN) {
        const struct fb_act *a = &d->acts[in->imm];
        for (unsigned i = 0; i < a->nparams; i++)
            if (!need(k, in->b + i, kind_of_type(d->params[a->first_param + i].type)))
                return false;
    }
    switch (sp->a) {
    case O_WS:
        k[in->a] = K_SCALAR;
        break;
    case O_WT:
        k[in->a] = K_TEXT;
        break;
    case O_WQ:
        k[in->a] = (uint8_t)qk;
        break;
    case O_WCOPY:
        k[in->a] = k[in->b];
        break;
    }
    return true;
}

struct verify {
    struct flow_def *d;
    uint32_t *bound, *cmds; /* per handler, computed */
    bool *done;
    uint8_t *kinds; /* scratch: (len + 1) x VM_REGS_MAX */
    uint8_t *reached;
    uint32_t *dist, *dcmd;
    unsigned max_len;
};

static int handler_cost(struct verify *v, int hi, uint32_t *bound, uint32_t *cmds)
{
    *bound = 0;
    *cmds = 0;
    if (hi < 0)
        return 0;
    if ((unsigned)hi >= v->d->nhandlers || !v->done[hi])
        return -EINVAL; /* verified in dependency order: enter, any, states */
    *bound = v->bound[hi];
    *cmds = v->cmds[hi];
    return 0;
}

/* Type-check one handler and compute its bound and commands. The handlers it can lead to
 * (`any:` fallback, `on enter` of goto targets) must have been verified before. */
static int verify_handler(struct verify *v, unsigned hi)
{
    struct flow_def *d = v->d;
    const struct fb_handler *h = &d->handlers[hi];
    unsigned start = h->code_start, len = h->code_len, end = start + len;
    bool enter = h->trigger == FB_ENTER;
    if (len == 0 || len > v->max_len)
        return -EINVAL;
    if (!enter && h->trigger >= d->ntriggers)
        return -EINVAL;
    if (h->state != FB_NONE && h->state >= d->nstates)
        return -EINVAL;
    if (enter && (h->state == FB_NONE || d->states[h->state].enter != (int32_t)hi))
        return -EINVAL;
    if (!enter &&
        d->entries[(h->state == FB_NONE ? d->nstates : h->state) * d->ntriggers + h->trigger] !=
            (int32_t)hi)
        return -EINVAL;
    const struct vm_insn *code = d->code + start;
    uint8_t *kinds = v->kinds;
    memset(v->reached, 0, len);
    memset(kinds, 0, (size_t)len * VM_REGS_MAX);
    /* entry registers */
    if (!enter && h->trigger < d->nsignals) {
        const struct fb_signal *s = &d->signals[h->trigger];
        for (unsigned f = 0; f < s->nfields; f++)
            kinds[f] = (uint8_t)kind_of_type(d->fields[s->first_field + f].type);
    } else if (!enter && h->trigger < d->nsignals + 2 * d->nacts &&
               (h->trigger - d->nsignals) % 2 == 0) {
        kinds[0] = K_SCALAR; /* result */
    }
    v->reached[0] = 1;
    uint8_t cur[VM_REGS_MAX];
    for (unsigned i = 0; i < len; i++) {
        const struct vm_insn *in = &code[i];
        if (!insn_static_ok(d, in, start + i, end))
            return -EINVAL;
        if (enter && (in->op == OP_GOTO || in->op == OP_COMPLETE || in->op == OP_NOMATCH))
            return -EINVAL;
        if (!v->reached[i])
            continue;
        memcpy(cur, kinds + (size_t)i * VM_REGS_MAX, VM_REGS_MAX);
        if (!insn_types_ok(d, in, cur))
            return -EINVAL;
        unsigned succ[2], nsucc = 0;
        if (!is_terminator(in->op) && in->op != OP_JMP)
            succ[nsucc++] = i + 1;
        if (op_specs[in->op].imm == I_JUMP)
            succ[nsucc++] = i + 1 + (unsigned)in->imm;
        for (unsigned s = 0; s < nsucc; s++) {
            unsigned t = succ[s];
            if (t >= len)
                return -EINVAL; /* falls off the end */
            uint8_t *tk = kinds + (size_t)t * VM_REGS_MAX;
            if (!v->reached[t]) {
                memcpy(tk, cur, VM_REGS_MAX);
                v->reached[t] = 1;
            } else {
                for (unsigned r = 0; r < VM_REGS_MAX; r++)
                    if (tk[r] != cur[r])
                        tk[r] = K_NONE;
            }
        }
    }
    /* longest path and commands, backwards (all edges go forward) */
    uint32_t *dist = v->dist, *dcmd = v->dcmd;
    uint32_t any_bound = 0, any_cmds = 0;
    if (!enter && h->state != FB_NONE) {
        int rc = handler_cost(v, d->entries[d->nstates * d->ntriggers + h->trigger], &any_bound,
                              &any_cmds);
        if (rc < 0)
            return rc;
    }
    for (unsigned j = len; j-- > 0;) {
        const struct vm_insn *in = &code[j];
        uint32_t own = 0, extra_b = 0, extra_c = 0, nb = 0, nc = 0;
        switch (in->op) {
        case OP_RUN:
            own = 2;
            break;
        case OP_ACANCEL:
        case OP_TCANCEL:
            own = 1;
            break;
        case OP_COMPLETE:
            own = d->nslots + 1;
            break;
        case OP_GOTO: {
            uint32_t eb, ec;
            int rc = handler_cost(v, d->states[in->imm].enter, &eb, &ec);
            if (rc < 0)
                return rc;
            extra_b = eb;
            extra_c = ec;
            own = 2 * d->nslots;
            break;
        }
        case OP_NOMATCH:
            extra_b = any_bound;
            extra_c = any_cmds;
            break;
        default:
            break;
        }
        if (!is_terminator(in->op) && in->op != OP_JMP) {
            nb = dist[j + 1];
            nc = dcmd[j + 1];
        }
        if (op_specs[in->op].imm == I_JUMP) {
            unsigned t = j + 1 + (unsigned)in->imm;
            nb = nb > dist[t] ? nb : dist[t];
            nc = nc > dcmd[t] ? nc : dcmd[t];
        }
        dist[j] = 1 + extra_b + nb;
        dcmd[j] = own + extra_c + nc;
    }
    v->bound[hi] = dist[0];
    v->cmds[hi] = dcmd[0];
    v->done[hi] = true;
    return 0;
}

static bool sect_ok(const struct fb_header *h, size_t len, enum fb_sect_id id, size_t elem,
                    unsigned max)
{
    const struct fb_sect *s = &h->sect[id];
    if (s->off % 8 || s->off < sizeof(*h) || s->count > max)
        return false;
    return (uint64_t)s->off + (uint64_t)s->count * elem <= len;
}

static bool name_ok(const struct flow_def *d, uint32_t off)
{
    if (off == 0 || off >= d->strings_len)
        return false;
    size_t n = strnlen(d->strings + off, d->strings_len - off);
    return n >= 1 && n <= FLOW_NAME_LEN_MAX && off + n < d->strings_len;
}

static bool type_ok(uint8_t t)
{
    return t >= FLOW_T_INT && t <= FLOW_T_TEXT;
}

static bool tables_ok(struct flow_def *d)
{
    const struct fb_header *h = d->hdr;
    if (!name_ok(d, h->name) || d->nstates < 1 || h->initial_state >= d->nstates)
        return false;
    if (h->timers_off != sizeof(struct vm_rec_header) ||
        h->acts_off != h->timers_off + 8u * d->nslots ||
        h->data_off != h->acts_off + (uint32_t)sizeof(struct vm_act_slot) * d->nacts ||
        h->record_size % 8 || h->record_size < h->data_off || h->record_size > FLOW_RECORD_SIZE_MAX)
        return false;
    if (d->ntriggers != d->nsignals + 2 * d->nacts + d->nslots)
        return false;
    for (unsigned i = 0; i < d->nstates; i++) {
        int32_t e = d->states[i].enter;
        if (!name_ok(d, d->states[i].name) || e < -1 || e >= (int32_t)d->nhandlers)
            return false;
    }
    for (unsigned i = 0; i < d->nsignals; i++) {
        const struct fb_signal *s = &d->signals[i];
        if (!name_ok(d, s->name) || s->nfields > FLOW_FIELDS_MAX ||
            s->first_field + s->nfields > d->nfields)
            return false;
    }
    for (unsigned i = 0; i < d->nfields; i++) {
        const struct fb_field *f = &d->fields[i];
        if (!name_ok(d, f->name) || !type_ok(f->type) || (f->type != FLOW_T_TEXT && f->text_cap))
            return false;
    }
    for (unsigned i = 0; i < d->ntconsts; i++) {
        const struct fb_tconst *t = &d->tconsts[i];
        if ((uint64_t)t->off + t->len >= d->strings_len || t->len > FLOW_TEXT_CAP_MAX)
            return false;
    }
    for (unsigned i = 0; i < d->nvars; i++) {
        const struct fb_var *v = &d->vars[i];
        uint32_t size = v->type == FLOW_T_TEXT ? 1u + v->text_cap : v->type == FLOW_T_BOOL ? 1 : 8;
        if (!name_ok(d, v->name) || !type_ok(v->type) || v->offset < h->data_off ||
            (uint64_t)v->offset + size > h->record_size)
            return false;
        if (v->type == FLOW_T_TEXT &&
            (v->text_cap < 1 || v->init >= d->ntconsts || d->tconsts[v->init].len > v->text_cap))
            return false;
        if (v->type != FLOW_T_TEXT && v->text_cap)
            return false;
        if (v->type == FLOW_T_BOOL && v->init > 1)
            return false;
    }
    for (unsigned i = 0; i < d->nqueues; i++) {
        const struct fb_queue *q = &d->queues[i];
        unsigned es = q->type == FLOW_T_TEXT ? 1u + q->text_cap : q->type == FLOW_T_BOOL ? 1 : 8;
        if (!name_ok(d, q->name) || !type_ok(q->type) || q->elem_size != es || q->cap < 1 ||
            (q->type == FLOW_T_TEXT && q->text_cap < 1) || q->offset < h->data_off ||
            (uint64_t)q->offset + 2 + (uint64_t)es * (q->cap + 1u) > h->record_size)
            return false;
    }
    for (unsigned i = 0; i < d->nacts; i++) {
        const struct fb_act *a = &d->acts[i];
        if (!name_ok(d, a->name) || a->nparams > FLOW_PARAMS_MAX ||
            a->first_param + a->nparams > d->nparams || !isfinite(a->backoff_multiplier) ||
            a->backoff_multiplier < 1.0 || a->backoff_multiplier > 100.0 ||
            a->backoff_max_ns < a->backoff_initial_ns)
            return false;
    }
    for (unsigned i = 0; i < d->nparams; i++)
        if (!name_ok(d, d->params[i].name) || !type_ok(d->params[i].type))
            return false;
    return true;
}

/* Timers: sorted by row, slots distinct per row and `any:` slots used by no state. */
static bool timers_ok(struct flow_def *d)
{
    uint32_t any_slots = 0;
    unsigned prev_row = 0;
    for (unsigned i = 0; i < d->ntimers; i++) {
        const struct fb_timer *t = &d->timers[i];
        unsigned row = t->state == FB_NONE ? d->nstates : t->state;
        if (!name_ok(d, t->name) || row > d->nstates || t->slot >= d->nslots ||
            t->kind < FB_AFTER || t->kind > FB_SILENCE || t->period_ns == 0 ||
            t->period_ns > (uint64_t)INT64_MAX || row < prev_row)
            return false;
        if (row == d->nstates)
            any_slots |= 1u << t->slot;
        prev_row = row;
    }
    for (unsigned row = 0; row <= d->nstates; row++) {
        d->tfirst[row] = 0;
        d->tcount[row] = 0;
        d->silence[row] = -1;
    }
    for (unsigned i = d->ntimers; i-- > 0;) {
        const struct fb_timer *t = &d->timers[i];
        unsigned row = t->state == FB_NONE ? d->nstates : t->state;
        d->tfirst[row] = (uint16_t)i;
        d->tcount[row]++;
        int16_t *st = &d->slot_timer[row * d->nslots + t->slot];
        if (*st >= 0)
            return false; /* slot used twice in one row */
        *st = (int16_t)i;
        if (row < d->nstates && (any_slots >> t->slot) & 1)
            return false;
        if (t->kind == FB_SILENCE) {
            if (d->silence[row] >= 0)
                return false;
            d->silence[row] = (int16_t)i;
        }
    }
    return true;
}

/* Entries point at handlers of the same row and trigger; timer triggers have a timer. */
static bool entries_ok(struct flow_def *d)
{
    for (unsigned row = 0; row <= d->nstates; row++)
        for (unsigned t = 0; t < d->ntriggers; t++) {
            int32_t e = d->entries[row * d->ntriggers + t];
            if (e == -1)
                continue;
            if (e < 0 || e >= (int32_t)d->nhandlers)
                return false;
            const struct fb_handler *h = &d->handlers[e];
            unsigned hrow = h->state == FB_NONE ? d->nstates : h->state;
            if (hrow != row || h->trigger != t)
                return false;
            unsigned first_timer = d->nsignals + 2 * d->nacts;
            if (t >= first_timer && d->slot_timer[row * d->nslots + (t - first_timer)] < 0)
                return false;
        }
    return true;
}

/* Build d from blob (pointers into it) and verify everything. With `fix`, the computed
 * bounds, command counts and cmds_max are written into the blob instead of compared. */
static int fb_verify(uint8_t *blob, size_t len, struct flow_def *d, bool fix)
{
    if (len < sizeof(struct fb_header) || len > FB_BLOB_LEN_MAX || len % 8)
        return -EINVAL;
    struct fb_header *h = (struct fb_header *)blob;
    if (h->magic != FB_MAGIC || h->format != FLOW_BLOB_FORMAT || h->header_size != sizeof(*h) ||
        h->blob_len != len)
        return -EINVAL;
    if (!fix && h->checksum != blob_checksum(blob, len))
        return -EINVAL;
    static const struct {
        size_t elem;
        unsigned max;
    } sects[FB_SECT_COUNT] = {
        [FB_STRINGS] = { 1, FB_BLOB_LEN_MAX },
        [FB_STATES] = { sizeof(struct fb_state), FLOW_STATES_MAX },
        [FB_SIGNALS] = { sizeof(struct fb_signal), FLOW_SIGNALS_MAX },
        [FB_FIELDS] = { sizeof(struct fb_field), FLOW_SIGNALS_MAX * FLOW_FIELDS_MAX },
        [FB_VARS] = { sizeof(struct fb_var), FLOW_VARS_MAX },
        [FB_QUEUES] = { sizeof(struct fb_queue), FLOW_QUEUES_MAX },
        [FB_ACTS] = { sizeof(struct fb_act), FLOW_ACTIVITIES_MAX },
        [FB_PARAMS] = { sizeof(struct fb_param), FLOW_ACTIVITIES_MAX * FLOW_PARAMS_MAX },
        [FB_TIMERS] = { sizeof(struct fb_timer), (FLOW_STATES_MAX + 1) * FLOW_TIMER_SLOTS_MAX },
        [FB_HANDLERS] = { sizeof(struct fb_handler), FLOW_CODE_MAX },
        [FB_ENTRIES] = { sizeof(int32_t), FB_BLOB_LEN_MAX / 4 },
        [FB_CONSTS] = { 8, FLOW_CODE_MAX },
        [FB_TCONSTS] = { sizeof(struct fb_tconst), FLOW_CODE_MAX },
        [FB_CODE] = { sizeof(struct vm_insn), FLOW_CODE_MAX },
    };
    for (unsigned i = 0; i < FB_SECT_COUNT; i++)
        if (!sect_ok(h, len, i, sects[i].elem, sects[i].max))
            return -EINVAL;
    d->blob = blob;
    d->blob_len = len;
    d->hdr = h;
#define SECT(id) ((const void *)(blob + h->sect[id].off))
    d->strings = SECT(FB_STRINGS);
    d->strings_len = h->sect[FB_STRINGS].count;
    d->states = SECT(FB_STATES);
    d->signals = SECT(FB_SIGNALS);
    d->fields = SECT(FB_FIELDS);
    d->vars = SECT(FB_VARS);
    d->queues = SECT(FB_QUEUES);
    d->acts = SECT(FB_ACTS);
    d->params = SECT(FB_PARAMS);
    d->timers = SECT(FB_TIMERS);
    d->handlers = SECT(FB_HANDLERS);
    d->entries = SECT(FB_ENTRIES);
    d->consts = SECT(FB_CONSTS);
    d->tconsts = SECT(FB_TCONSTS);
    d->code = SECT(FB_CODE);
#undef SECT
    d->nstates = h->sect[FB_STATES].count;
    d->nsignals = h->sect[FB_SIGNALS].count;
    d->nfields = h->sect[FB_FIELDS].count;
    d->nvars = h->sect[FB_VARS].count;
    d->nqueues = h->sect[FB_QUEUES].count;
    d->nacts = h->sect[FB_ACTS].count;
    d->nparams = h->sect[FB_PARAMS].count;
    d->ntimers = h->sect[FB_TIMERS].count;
    d->nhandlers = h->sect[FB_HANDLERS].count;
    d->nconsts = h->sect[FB_CONSTS].count;
    d->ntconsts = h->sect[FB_TCONSTS].count;
    d->ncode = h->sect[FB_CODE].count;
    d->nslots = h->timer_slots;
    d->ntriggers = h->ntriggers;
    if (d->strings_len == 0 || d->strings[d->strings_len - 1] != 0 || d->strings[0] != 0 ||
        d->nslots > FLOW_TIMER_SLOTS_MAX ||
        h->sect[FB_ENTRIES].count != (d->nstates + 1) * h->ntriggers)
        return -EINVAL;
    if (!tables_ok(d))
        return -EINVAL;
    d->slot_timer = malloc(sizeof(int16_t) * (d->nstates + 1) * (d->nslots ? d->nslots : 1));
    if (!d->slot_timer)
        return -ENOMEM;
    for (unsigned i = 0; i < (d->nstates + 1) * d->nslots; i++)
        d->slot_timer[i] = -1;
    if (!timers_ok(d) || !entries_ok(d))
        return -EINVAL;
    for (unsigned i = 0; i < d->nhandlers; i++) {
        const struct fb_handler *hd = &d->handlers[i];
        if ((uint64_t)hd->code_start + hd->code_len > d->ncode)
            return -EINVAL;
    }
    struct verify v = { .d = d, .max_len = d->ncode };
    size_t n = d->nhandlers ? d->nhandlers : 1, cl = d->ncode + 1;
    v.bound = calloc(n, 4);
    v.cmds = calloc(n, 4);
    v.done = calloc(n, 1);
    v.kinds = malloc(cl * VM_REGS_MAX);
    v.reached = malloc(cl);
    v.dist = malloc(cl * 4);
    v.dcmd = malloc(cl * 4);
    int rc = -ENOMEM;
    if (!v.bound || !v.cmds || !v.done || !v.kinds || !v.reached || !v.dist || !v.dcmd)
        goto out_free;
    rc = -EINVAL;
    /* dependency order: `on enter`, then `any:`, then state handlers */
    for (int pass = 0; pass < 3; pass++)
        for (unsigned i = 0; i < d->nhandlers; i++) {
            const struct fb_handler *hd = &d->handlers[i];
            int want = hd->trigger == FB_ENTER ? 0 : hd->state == FB_NONE ? 1 : 2;
            if (want != pass)
                continue;
            if (verify_handler(&v, i) < 0)
                goto out_free;
        }
    uint32_t max_cmds = 0;
    for (unsigned i = 0; i < d->nhandlers; i++) {
        if (!v.done[i])
            goto out_free; /* unreferenced handler */
        if (v.cmds[i] > max_cmds)
            max_cmds = v.cmds[i];
    }
    uint32_t init_enter_cmds = 0;
    int32_t ie = d->states[h->initial_state].enter;
    if (ie >= 0)
        init_enter_cmds = v.cmds[ie];
    uint32_t cmds_max = d->nslots + init_enter_cmds + max_cmds + 3;
    struct fb_handler *hw = (struct fb_handler *)(blob + h->sect[FB_HANDLERS].off);
    for (unsigned i = 0; i < d->nhandlers; i++) {
        if (fix) {
            hw[i].bound = v.bound[i];
            hw[i].cmds = v.cmds[i];
        } else if (hw[i].bound != v.bound[i] || hw[i].cmds != v.cmds[i]) {
            goto out_free;
        }
    }
    if (fix) {
        h->cmds_max = cmds_max;
        h->checksum = blob_checksum(blob, len);
    } else if (h->cmds_max != cmds_max) {
        goto out_free;
    }
    rc = 0;
out_free:
    free(v.bound), free(v.cmds), free(v.done), free(v.kinds), free(v.reached), free(v.dist);
    free(v.dcmd);
    return rc;
}

int fb_finalize(uint8_t *blob, size_t len)
{
    struct flow_def d = { 0 };
    int rc = fb_verify(blob, len, &d, true);
    free(d.slot_timer);
    return rc;
}

/* Initial record image: variables at their initial values, queues empty. */
static int build_init_record(struct flow_def *d)
{
    d->init_record = calloc(1, d->hdr->record_size);
    if (!d->init_record)
        return -ENOMEM;
    struct vm_rec_header rh = { .state = d->hdr->initial_state };
    memcpy(d->init_record, &rh, sizeof(rh));
    for (unsigned i = 0; i < d->nvars; i++) {
        const struct fb_var *v = &d->vars[i];
        uint8_t *p = d->init_record + v->offset;
        if (v->type == FLOW_T_TEXT) {
            const struct fb_tconst *t = &d->tconsts[v->init];
            p[0] = (uint8_t)t->len;
            memcpy(p + 1, d->strings + t->off, t->len);
        } else if (v->type == FLOW_T_BOOL) {
            p[0] = (uint8_t)v->init;
        } else {
            memcpy(p, &v->init, 8);
        }
    }
    return 0;
}

/* Signal plans: names padded for word compares, field types in one line (fb_signal_find,
 * the runtime's field decoding); the VM's per-call numbers. */
static int build_sig_plan(struct flow_def *d)
{
    size_t n = d->nsignals ? d->nsignals : 1;
    d->sig_plan = aligned_alloc(64, n * sizeof(*d->sig_plan));
    if (!d->sig_plan)
        return -ENOMEM;
    memset(d->sig_plan, 0, n * sizeof(*d->sig_plan));
    for (unsigned i = 0; i < d->nsignals; i++) {
        const struct fb_signal *sg = &d->signals[i];
        struct fb_sig_plan *sp = &d->sig_plan[i];
        size_t len = strlen(d->strings + sg->name);
        assert(len >= 1 && len <= FLOW_NAME_LEN_MAX && sg->nfields <= FLOW_FIELDS_MAX);
        memcpy(sp->name, d->strings + sg->name, len);
        sp->name_len = (uint8_t)len;
        sp->nfields = (uint8_t)sg->nfields;
        for (unsigned f = 0; f < sg->nfields; f++) {
            sp->type[f] = d->fields[sg->first_field + f].type;
            sp->text_cap[f] = d->fields[sg->first_field + f].text_cap;
        }
    }
    d->timers_off = d->hdr->timers_off;
    d->acts_off = d->hdr->acts_off;
    d->cmds_max = d->hdr->cmds_max;
    for (unsigned row = 0; row <= d->nstates; row++) {
        int t = d->silence[row];
        d->silence_slot[row] = (int16_t)(t >= 0 ? d->timers[t].slot : -1);
        d->silence_period[row] = t >= 0 ? d->timers[t].period_ns : 0;
    }
    return 0;
}

int fb_load(const void *blob, size_t len, struct flow_def **out)
{
    if (!blob || len < sizeof(struct fb_header) || len > FB_BLOB_LEN_MAX)
        return -EINVAL;
    struct flow_def *d = calloc(1, sizeof(*d));
    uint8_t *copy = aligned_alloc(64, (len + 63) & ~(size_t)63);
    if (!d || !copy) {
        free(d);
        free(copy);
        return -ENOMEM;
    }
    memcpy(copy, blob, len);
    int rc = fb_verify(copy, len, d, false);
    if (rc == 0)
        rc = build_init_record(d);
    if (rc == 0)
        rc = build_sig_plan(d);
    if (rc == 0) {
        size_t n = (size_t)(d->nstates + 1) * (d->ntriggers ? d->ntriggers : 1);
        d->entry_code = calloc(n, sizeof(*d->entry_code));
        if (!d->entry_code)
            rc = -ENOMEM;
        for (size_t i = 0; rc == 0 && i < (size_t)(d->nstates + 1) * d->ntriggers; i++)
            if (d->entries[i] >= 0)
                d->entry_code[i] = d->code + d->handlers[d->entries[i]].code_start;
    }
    if (rc < 0) {
        free(copy);
        free(d->slot_timer);
        free(d->init_record);
        free(d->entry_code);
        free(d->sig_plan);
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

int flow_def_load(const void *blob, size_t len, struct flow_def **out)
{
    return fb_load(blob, len, out);
}

void flow_def_free(struct flow_def *def)
{
    if (!def)
        return;
    free(def->blob);
    free(def->slot_timer);
    free(def->init_record);
    free(def->entry_code);
    free(def->sig_plan);
    free(def);
}

void flow_def_serialize(const struct flow_def *def, const void **blob, size_t *len)
{
    *blob = def->blob;
    *len = def->blob_len;
}

/* ---- lookups --------------------------------------------------------------------------- */

static const char *str(const struct flow_def *d, uint32_t off)
{
    return d->strings + off;
}

static bool name_eq(const struct flow_def *d, uint32_t off, const char *name, size_t len)
{
    const char *s = str(d, off);
    return strncmp(s, name, len) == 0 && s[len] == 0 && memchr(name, 0, len) == NULL;
}

const char *flow_def_name(const struct flow_def *def)
{
    return str(def, def->hdr->name);
}

uint32_t flow_def_version(const struct flow_def *def)
{
    return def->hdr->version;
}

uint32_t flow_def_record_size(const struct flow_def *def)
{
    return def->hdr->record_size;
}

unsigned flow_def_cmds_max(const struct flow_def *def)
{
    return def->hdr->cmds_max;
}

unsigned flow_def_timer_slot_count(const struct flow_def *def)
{
    return def->nslots;
}

unsigned flow_def_state_count(const struct flow_def *def)
{
    return def->nstates;
}

const char *flow_def_state_name(const struct flow_def *def, unsigned i)
{
    return i < def->nstates ? str(def, def->states[i].name) : NULL;
}

unsigned flow_def_signal_count(const struct flow_def *def)
{
    return def->nsignals;
}

const struct fb_sig_plan *flow_def_sig_plans(const struct flow_def *def, unsigned *count)
{
    assert(def->sig_plan != NULL);
    *count = def->nsignals;
    return def->sig_plan;
}

uint32_t flow_def_timers_offset(const struct flow_def *def)
{
    assert(def->timers_off % 8 == 0);
    return def->timers_off;
}

int flow_def_signal_index(const struct flow_def *def, const char *name, size_t len)
{
    if (len == 0 || len > FLOW_NAME_LEN_MAX)
        return -ENOENT;
    int i = fb_signal_find(def, name, len);
    return i >= 0 ? i : -ENOENT;
}

const char *flow_def_signal_name(const struct flow_def *def, unsigned sig)
{
    return sig < def->nsignals ? str(def, def->signals[sig].name) : NULL;
}

int flow_def_signal_field_count(const struct flow_def *def, unsigned sig)
{
    return sig < def->nsignals ? def->signals[sig].nfields : -EINVAL;
}

enum flow_type flow_def_signal_field_type(const struct flow_def *def, unsigned sig, unsigned i)
{
    if (sig >= def->nsignals || i >= def->signals[sig].nfields)
        return 0;
    return def->fields[def->signals[sig].first_field + i].type;
}

const char *flow_def_signal_field_name(const struct flow_def *def, unsigned sig, unsigned i)
{
    if (sig >= def->nsignals || i >= def->signals[sig].nfields)
        return NULL;
    return str(def, def->fields[def->signals[sig].first_field + i].name);
}

int flow_def_signal_field_index(const struct flow_def *def, unsigned sig, const char *name,
                                size_t len)
{
    if (sig >= def->nsignals)
        return -ENOENT;
    const struct fb_signal *s = &def->signals[sig];
    for (unsigned i = 0; i < s->nfields; i++)
        if (name_eq(def, def->fields[s->first_field + i].name, name, len))
            return (int)i;
    return -ENOENT;
}

unsigned flow_def_activity_count(const struct flow_def *def)
{
    return def->nacts;
}

int flow_def_activity_index(const struct flow_def *def, const char *name, size_t len)
{
    for (unsigned i = 0; i < def->nacts; i++)
        if (name_eq(def, def->acts[i].name, name, len))
            return (int)i;
    return -ENOENT;
}

int flow_def_activity(const struct flow_def *def, unsigned i, struct flow_activity_info *info)
{
    if (i >= def->nacts)
        return -EINVAL;
    const struct fb_act *a = &def->acts[i];
    *info = (struct flow_activity_info){
        .name = str(def, a->name),
        .nparams = a->nparams,
        .max_attempts = a->max_attempts,
        .backoff_initial_ns = a->backoff_initial_ns,
        .backoff_max_ns = a->backoff_max_ns,
        .backoff_multiplier = a->backoff_multiplier,
        .start_to_close_ns = a->start_to_close_ns,
        .schedule_to_close_ns = a->schedule_to_close_ns,
    };
    return 0;
}

const char *flow_def_activity_param_name(const struct flow_def *def, unsigned act, unsigned i)
{
    if (act >= def->nacts || i >= def->acts[act].nparams)
        return NULL;
    return str(def, def->params[def->acts[act].first_param + i].name);
}

unsigned flow_def_var_count(const struct flow_def *def)
{
    return def->nvars;
}

int flow_def_var(const struct flow_def *def, unsigned i, struct flow_var_info *info)
{
    if (i >= def->nvars)
        return -EINVAL;
    const struct fb_var *v = &def->vars[i];
    *info = (struct flow_var_info){
        .name = str(def, v->name),
        .type = v->type,
        .text_cap = v->text_cap,
        .offset = v->offset,
        .size = v->type == FLOW_T_TEXT   ? 1u + v->text_cap
                : v->type == FLOW_T_BOOL ? 1
                                         : 8,
    };
    return 0;
}

unsigned flow_def_queue_count(const struct flow_def *def)
{
    return def->nqueues;
}

int flow_def_queue(const struct flow_def *def, unsigned i, struct flow_var_info *info)
{
    if (i >= def->nqueues)
        return -EINVAL;
    const struct fb_queue *q = &def->queues[i];
    *info = (struct flow_var_info){
        .name = str(def, q->name),
        .type = q->type,
        .text_cap = q->text_cap,
        .offset = q->offset,
        .size = 2u + (uint32_t)q->elem_size * (q->cap + 1u),
        .queue_cap = q->cap,
    };
    return 0;
}

static const char *timer_kind_name(uint8_t k)
{
    return k == FB_AFTER ? "after" : k == FB_EVERY ? "every" : "silence";
}

int flow_def_timer(const struct flow_def *def, unsigned state, unsigned slot,
                   struct flow_timer_info *info)
{
    if (state >= def->nstates || slot >= def->nslots)
        return -ENOENT;
    int t = def->slot_timer[state * def->nslots + slot];
    if (t < 0)
        t = def->slot_timer[def->nstates * def->nslots + slot];
    if (t < 0)
        return -ENOENT;
    const struct fb_timer *ft = &def->timers[t];
    *info = (struct flow_timer_info){ .name = str(def, ft->name),
                                      .kind = timer_kind_name(ft->kind),
                                      .period_ns = ft->period_ns,
                                      .slot = ft->slot };
    return 0;
}

const char *fb_trigger_text(const struct flow_def *def, unsigned trigger, char *buf, size_t cap)
{
    unsigned first_timer = def->nsignals + 2 * def->nacts;
    if (trigger == FB_ENTER)
        snprintf(buf, cap, "on enter");
    else if (trigger < def->nsignals)
        snprintf(buf, cap, "on %s", str(def, def->signals[trigger].name));
    else if (trigger < first_timer)
        snprintf(buf, cap, "on %s.%s", str(def, def->acts[(trigger - def->nsignals) / 2].name),
                 (trigger - def->nsignals) % 2 ? "failed" : "done");
    else
        snprintf(buf, cap, "timer slot %u", trigger - first_timer);
    return buf;
}

unsigned flow_def_handler_count(const struct flow_def *def)
{
    return def->nhandlers;
}

int flow_def_handler(const struct flow_def *def, unsigned i, struct flow_handler_info *info)
{
    if (i >= def->nhandlers)
        return -EINVAL;
    const struct fb_handler *h = &def->handlers[i];
    memset(info, 0, sizeof(*info));
    info->state = h->state == FB_NONE ? "any" : str(def, def->states[h->state].name);
    unsigned first_timer = def->nsignals + 2 * def->nacts;
    if (h->trigger != FB_ENTER && h->trigger >= first_timer) {
        unsigned row = h->state == FB_NONE ? def->nstates : h->state;
        int t = def->slot_timer[row * def->nslots + (h->trigger - first_timer)];
        const struct fb_timer *ft = &def->timers[t];
        const char *kind = timer_kind_name(ft->kind);
        const char *name = str(def, ft->name);
        uint64_t ns = ft->period_ns;
        static const struct {
            const char *u;
            uint64_t ns;
        } units[] = { { "d", 86400000000000ull },
                      { "h", 3600000000000ull },
                      { "m", 60000000000ull },
                      { "s", 1000000000ull },
                      { "ms", 1000000ull },
                      { "us", 1000ull },
                      { "ns", 1ull } };
        unsigned u = 0;
        while (ns % units[u].ns)
            u++;
        if (strcmp(kind, name) == 0)
            snprintf(info->trigger, sizeof(info->trigger), "%s %llu%s", kind,
                     (unsigned long long)(ns / units[u].ns), units[u].u);
        else
            snprintf(info->trigger, sizeof(info->trigger), "%s %llu%s as %s", kind,
                     (unsigned long long)(ns / units[u].ns), units[u].u, name);
    } else {
        fb_trigger_text(def, h->trigger, info->trigger, sizeof(info->trigger));
    }
    info->line = h->line;
    info->bound = h->bound;
    info->cmds = h->cmds;
    return 0;
}
