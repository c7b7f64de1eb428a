/*
 * vm.c — the register VM that runs compiled handlers on instance records.
 *
 * Instance record (layout chosen by the compiler, sizes in the def):
 *   [0, 16)            struct vm_rec_header: state, flags (started, completed), last
 *                      activity sequence number, creation time
 *   [timers_off, +8n)  due time (ns) of each timer slot, 0 = disarmed
 *   [acts_off, +8a)    struct vm_act_slot per activity: seq of the latest run, attempts,
 *                      pending flag
 *   [data_off, size)   variables (int/float 8 bytes, bool 1, text(N) 1 + N: length byte
 *                      then bytes), then queues: u8 head, u8 count, then a ring of
 *                      cap + 1 items, so that a text popped in a handler is not overwritten
 *                      by a push later in the same handler (count never exceeds cap).
 * Records must be 8-byte aligned. The VM trusts a record that passed vm_record_check()
 * or was made by vm_record_init(); every offset and index in the code was validated when
 * the def was loaded, so the interpreter checks nothing per instruction.
 *
 * Bounded time: all jumps go forward, so a handler executes at most its code length; the
 * verifier computed the exact longest path (flow_def_handler().bound).
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "flow_internal.h"

struct vm_ctx {
    const struct flow_def *d;
    uint8_t *rec;
    struct vm_rec_header *hdr;
    const char *id;
    size_t id_len;
    uint64_t now;
    struct vm_cmd *cmd; /* next free command */
    bool moved;         /* a goto happened */
};

enum vm_end { END_HALT, END_NOMATCH, END_DONE };

static inline uint64_t *ctx_due(const struct vm_ctx *c)
{
    return (uint64_t *)(c->rec + c->d->timers_off);
}

static inline struct vm_act_slot *ctx_acts(const struct vm_ctx *c)
{
    return (struct vm_act_slot *)(c->rec + c->d->acts_off);
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

static void emit_timer(struct vm_ctx *c, uint8_t kind, unsigned slot, uint64_t due)
{
    struct vm_cmd *m = c->cmd++;
    m->kind = kind;
    m->nargs = 0;
    m->index = (uint16_t)slot;
    m->seq = 0;
    m->due_ns = due;
}

static inline void slot_arm(struct vm_ctx *c, unsigned slot, uint64_t due)
{
    ctx_due(c)[slot] = due;
    emit_timer(c, VM_CMD_TIMER_ARM, slot, due);
}

static void timer_arm(struct vm_ctx *c, const struct fb_timer *t, uint64_t due)
{
    slot_arm(c, t->slot, due);
}

static void timer_cancel(struct vm_ctx *c, unsigned slot)
{
    if (ctx_due(c)[slot] == 0)
        return;
    ctx_due(c)[slot] = 0;
    emit_timer(c, VM_CMD_TIMER_CANCEL, slot, 0);
}

static void row_arm(struct vm_ctx *c, unsigned row)
{
    const struct flow_def *d = c->d;
    for (unsigned i = 0; i < d->tcount[row]; i++) {
        const struct fb_timer *t = &d->timers[d->tfirst[row] + i];
        timer_arm(c, t, add_sat(c->now, t->period_ns));
    }
}

static void act_cancel(struct vm_ctx *c, unsigned a)
{
    struct vm_act_slot *s = &ctx_acts(c)[a];
    if (!s->pending)
        return;
    s->pending = 0;
    struct vm_cmd *m = c->cmd++;
    m->kind = VM_CMD_ACTIVITY_CANCEL;
    m->nargs = 0;
    m->index = (uint16_t)a;
    m->seq = s->seq;
    m->due_ns = 0;
}

static void act_run(struct vm_ctx *c, unsigned a, const union vm_reg *args)
{
    const struct flow_def *d = c->d;
    const struct fb_act *fa = &d->acts[a];
    act_cancel(c, a); /* a new run replaces a pending one */
    uint32_t seq = c->hdr->next_seq + 1;
    if (seq == 0)
        seq = 1;
    c->hdr->next_seq = seq;
    struct vm_act_slot *s = &ctx_acts(c)[a];
    s->seq = seq;
    s->pending = 1;
    s->attempts = 0;
    struct vm_cmd *m = c->cmd++;
    m->kind = VM_CMD_ACTIVITY_RUN;
    m->nargs = (uint8_t)fa->nparams;
    m->index = (uint16_t)a;
    m->seq = seq;
    m->due_ns = 0;
    size_t text_used = 0;
    for (unsigned i = 0; i < fa->nparams; i++) {
        struct sf_value *v = &m->args[i];
        switch (d->params[fa->first_param + i].type) {
        case FLOW_T_INT:
            v->type = SF_VAL_INT;
            v->i = args[i].i;
            break;
        case FLOW_T_FLOAT:
            v->type = SF_VAL_FLOAT;
            v->f = args[i].f;
            break;
        case FLOW_T_BOOL:
            v->type = SF_VAL_BOOL;
            v->b = args[i].i != 0;
            break;
        default: {
            const char *p = args[i].t.p;
            uint32_t n = args[i].t.n > UINT16_MAX ? UINT16_MAX : args[i].t.n;
            v->type = SF_VAL_TEXT;
            if ((const uint8_t *)p >= c->rec && (const uint8_t *)p < c->rec + d->hdr->record_size) {
                /* record text (<= FLOW_TEXT_CAP_MAX): snapshot it, the handler may change it */
                assert(n <= FLOW_TEXT_CAP_MAX && text_used + n <= VM_CMD_TEXT_MAX);
                memcpy(m->text + text_used, p, n);
                p = m->text + text_used;
                text_used += n;
            }
            v->text.ptr = p;
            v->text.len = (uint16_t)n;
        }
        }
    }
}

static void complete(struct vm_ctx *c)
{
    const struct flow_def *d = c->d;
    /* timers die with the instance; activities already scheduled still run (a `run` just
     * before `complete` is the usual way to send a last notification), their results are
     * refused with VM_ERR_COMPLETED */
    for (unsigned s = 0; s < d->nslots; s++)
        timer_cancel(c, s);
    c->hdr->flags |= VM_REC_COMPLETED;
    struct vm_cmd *m = c->cmd++;
    memset(m, 0, offsetof(struct vm_cmd, args));
    m->kind = VM_CMD_COMPLETE;
}

/* ---- queues -------------------------------------------------------------------------- */

static void queue_read(const struct fb_queue *q, const uint8_t *item, union vm_reg *r)
{
    if (q->type == FLOW_T_TEXT) {
        unsigned n = item[0] > q->text_cap ? q->text_cap : item[0];
        r->t.p = (const char *)item + 1;
        r->t.n = n;
    } else if (q->type == FLOW_T_BOOL) {
        r->i = item[0] != 0;
    } else {
        memcpy(&r->u, item, 8);
    }
}

static void queue_zero(const struct fb_queue *q, union vm_reg *r)
{
    if (q->type == FLOW_T_TEXT) {
        r->t.p = "";
        r->t.n = 0;
    } else {
        r->u = 0;
    }
}

/* Text stored into a text(cap) slot. The compiler proves that it fits (docs/flow.md §4:
 * a field's text(N) is checked when its fields are loaded); only a definition compiled
 * before sizes were enforced can store a longer one, and for it the old behaviour stays,
 * so that its logs replay alike: truncated to cap bytes, not inside a UTF-8 sequence. */
static void text_store(uint8_t *slot, unsigned cap, const char *p, uint32_t n)
{
    uint32_t k = n > cap ? cap : n;
    if (k < n)
        while (k > 0 && ((uint8_t)p[k] & 0xC0) == 0x80)
            k--;
    memmove(slot + 1, p, k);
    slot[0] = (uint8_t)k;
}

static void queue_op(struct vm_ctx *c, const struct vm_insn *in, union vm_reg *regs)
{
    const struct fb_queue *q = &c->d->queues[in->imm];
    uint8_t *base = c->rec + q->offset;
    uint8_t *items = base + 2;
    unsigned ring = q->cap + 1u, head = base[0] % ring, count = base[1];
    if (count > q->cap)
        count = q->cap;
    switch (in->op) {
    case OP_QPUSH: {
        if (count == q->cap)
            return; /* full: the item is dropped (check q.full first) */
        uint8_t *it = items + ((head + count) % ring) * q->elem_size;
        const union vm_reg *r = &regs[in->a];
        if (q->type == FLOW_T_TEXT)
            text_store(it, q->text_cap, r->t.p, r->t.n);
        else if (q->type == FLOW_T_BOOL)
            it[0] = r->i != 0;
        else
            memcpy(it, &r->u, 8);
        base[1] = (uint8_t)(count + 1);
        return;
    }
    case OP_QPOP:
    case OP_QFRONT:
        if (count == 0) {
            queue_zero(q, &regs[in->a]);
            return;
        }
        queue_read(q, items + head * q->elem_size, &regs[in->a]);
        if (in->op == OP_QPOP) {
            base[0] = (uint8_t)((head + 1) % ring);
            base[1] = (uint8_t)(count - 1);
        }
        return;
    case OP_QLEN:
        regs[in->a].i = count;
        return;
    default: /* OP_QCLEAR */
        base[0] = 0;
        base[1] = 0;
        return;
    }
}

/* ---- interpreter --------------------------------------------------------------------- */

static int64_t f2i(double f)
{
    if (isnan(f))
        return 0;
    if (f >= 9223372036854775807.0)
        return INT64_MAX;
    if (f <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)f;
}

static enum vm_end exec(struct vm_ctx *c, const struct vm_insn *pc, union vm_reg *r);

static void transition(struct vm_ctx *c, unsigned target, union vm_reg *regs)
{
    const struct flow_def *d = c->d;
    unsigned from = c->hdr->state;
    for (unsigned i = 0; i < d->tcount[from]; i++)
        timer_cancel(c, d->timers[d->tfirst[from] + i].slot);
    c->hdr->state = (uint16_t)target;
    c->moved = true;
    row_arm(c, target);
    if (d->states[target].enter >= 0)
        exec(c, d->code + d->handlers[d->states[target].enter].code_start, regs);
}

static enum vm_end exec(struct vm_ctx *c, const struct vm_insn *pc, union vm_reg *r)
{
    const struct flow_def *d = c->d;
    uint8_t *rec = c->rec;
    /* direct threading: one indirect jump per instruction, at the end of each one */
    static const void *const labels[OP_COUNT_] = {
#define LABEL(op) [op] = &&L_##op
        LABEL(OP_HALT),   LABEL(OP_NOMATCH),  LABEL(OP_LDI),  LABEL(OP_LDK),     LABEL(OP_LDT),
        LABEL(OP_LD64),   LABEL(OP_LD8),      LABEL(OP_LDTX), LABEL(OP_ST64),    LABEL(OP_ST8),
        LABEL(OP_STTX),   LABEL(OP_ID),       LABEL(OP_NOW),  LABEL(OP_MOV),     LABEL(OP_ADD),
        LABEL(OP_SUB),    LABEL(OP_MUL),      LABEL(OP_DIV),  LABEL(OP_MOD),     LABEL(OP_ADDI),
        LABEL(OP_NEG),    LABEL(OP_ABS),      LABEL(OP_MIN),  LABEL(OP_MAX),     LABEL(OP_FADD),
        LABEL(OP_FSUB),   LABEL(OP_FMUL),     LABEL(OP_FDIV), LABEL(OP_FNEG),    LABEL(OP_FABS),
        LABEL(OP_FMIN),   LABEL(OP_FMAX),     LABEL(OP_I2F),  LABEL(OP_F2I),     LABEL(OP_EQ),
        LABEL(OP_NE),     LABEL(OP_LT),       LABEL(OP_LE),   LABEL(OP_FEQ),     LABEL(OP_FNE),
        LABEL(OP_FLT),    LABEL(OP_FLE),      LABEL(OP_TEQ),  LABEL(OP_TNE),     LABEL(OP_NOT),
        LABEL(OP_JMP),    LABEL(OP_JZ),       LABEL(OP_JNZ),  LABEL(OP_JLT),     LABEL(OP_JLE),
        LABEL(OP_JEQ),    LABEL(OP_JNE),      LABEL(OP_ADDM), LABEL(OP_ADDMI),   LABEL(OP_STMI),
        LABEL(OP_JLTI),   LABEL(OP_JLEI),     LABEL(OP_JGTI), LABEL(OP_JGEI),    LABEL(OP_JEQI),
        LABEL(OP_JNEI),   LABEL(OP_QPUSH),    LABEL(OP_QPOP), LABEL(OP_QFRONT),  LABEL(OP_QLEN),
        LABEL(OP_QCLEAR), LABEL(OP_APEND),    LABEL(OP_RUN),  LABEL(OP_ACANCEL), LABEL(OP_TCANCEL),
        LABEL(OP_GOTO),   LABEL(OP_COMPLETE),
#undef LABEL
    };
#define CASE(op) L_##op:
#define NEXT     goto *labels[(in = pc++)->op]
#define K16(in)  ((int64_t)(int16_t)((uint16_t)(in)->b | (uint16_t)((in)->c << 8)))
    const struct vm_insn *in;
    NEXT;
    {
        {
            CASE(OP_HALT)
            return END_HALT;
            CASE(OP_NOMATCH)
            return END_NOMATCH;
            CASE(OP_LDI)
            r[in->a].i = in->imm;
            NEXT;
            CASE(OP_LDK)
            r[in->a].u = d->consts[in->imm];
            NEXT;
            CASE(OP_LDT)
            r[in->a].t.p = d->strings + d->tconsts[in->imm].off;
            r[in->a].t.n = d->tconsts[in->imm].len;
            NEXT;
            CASE(OP_LD64)
            memcpy(&r[in->a].u, rec + in->imm, 8);
            NEXT;
            CASE(OP_LD8)
            r[in->a].i = rec[in->imm] != 0;
            NEXT;
            CASE(OP_LDTX)
            {
                unsigned n = rec[in->imm];
                r[in->a].t.p = (const char *)rec + in->imm + 1;
                r[in->a].t.n = n > in->b ? in->b : n;
                NEXT;
            }
            CASE(OP_ST64)
            memcpy(rec + in->imm, &r[in->a].u, 8);
            NEXT;
            CASE(OP_ST8)
            rec[in->imm] = r[in->a].i != 0;
            NEXT;
            CASE(OP_STTX)
            text_store(rec + in->imm, in->b, r[in->a].t.p, r[in->a].t.n);
            NEXT;
            CASE(OP_ID)
            r[in->a].t.p = c->id ? c->id : "";
            r[in->a].t.n = c->id_len > UINT16_MAX ? UINT16_MAX : (uint32_t)c->id_len;
            NEXT;
            CASE(OP_NOW)
            r[in->a].u = c->now;
            NEXT;
            CASE(OP_MOV)
            r[in->a] = r[in->b];
            NEXT;
            CASE(OP_ADD)
            r[in->a].u = r[in->b].u + r[in->c].u;
            NEXT;
            CASE(OP_SUB)
            r[in->a].u = r[in->b].u - r[in->c].u;
            NEXT;
            CASE(OP_MUL)
            r[in->a].u = r[in->b].u * r[in->c].u;
            NEXT;
            CASE(OP_DIV)
            {
                int64_t x = r[in->b].i, y = r[in->c].i;
                r[in->a].i = y == 0 ? 0 : (y == -1 ? (int64_t)(0 - (uint64_t)x) : x / y);
                NEXT;
            }
            CASE(OP_MOD)
            {
                int64_t x = r[in->b].i, y = r[in->c].i;
                r[in->a].i = (y == 0 || y == -1) ? 0 : x % y;
                NEXT;
            }
            CASE(OP_ADDI)
            r[in->a].u = r[in->b].u + (uint64_t)(int64_t)in->imm;
            NEXT;
            CASE(OP_NEG)
            r[in->a].u = 0 - r[in->b].u;
            NEXT;
            CASE(OP_ABS)
            r[in->a].u = r[in->b].i < 0 ? 0 - r[in->b].u : r[in->b].u;
            NEXT;
            CASE(OP_MIN)
            r[in->a].i = r[in->b].i < r[in->c].i ? r[in->b].i : r[in->c].i;
            NEXT;
            CASE(OP_MAX)
            r[in->a].i = r[in->b].i > r[in->c].i ? r[in->b].i : r[in->c].i;
            NEXT;
            CASE(OP_FADD)
            r[in->a].f = r[in->b].f + r[in->c].f;
            NEXT;
            CASE(OP_FSUB)
            r[in->a].f = r[in->b].f - r[in->c].f;
            NEXT;
            CASE(OP_FMUL)
            r[in->a].f = r[in->b].f * r[in->c].f;
            NEXT;
            CASE(OP_FDIV)
            r[in->a].f = r[in->b].f / r[in->c].f;
            NEXT;
            CASE(OP_FNEG)
            r[in->a].f = -r[in->b].f;
            NEXT;
            CASE(OP_FABS)
            r[in->a].f = fabs(r[in->b].f);
            NEXT;
            CASE(OP_FMIN)
            r[in->a].f = r[in->b].f < r[in->c].f ? r[in->b].f : r[in->c].f;
            NEXT;
            CASE(OP_FMAX)
            r[in->a].f = r[in->b].f > r[in->c].f ? r[in->b].f : r[in->c].f;
            NEXT;
            CASE(OP_I2F)
            r[in->a].f = (double)r[in->b].i;
            NEXT;
            CASE(OP_F2I)
            r[in->a].i = f2i(r[in->b].f);
            NEXT;
            CASE(OP_EQ)
            r[in->a].i = r[in->b].i == r[in->c].i;
            NEXT;
            CASE(OP_NE)
            r[in->a].i = r[in->b].i != r[in->c].i;
            NEXT;
            CASE(OP_LT)
            r[in->a].i = r[in->b].i < r[in->c].i;
            NEXT;
            CASE(OP_LE)
            r[in->a].i = r[in->b].i <= r[in->c].i;
            NEXT;
            CASE(OP_FEQ)
            r[in->a].i = r[in->b].f == r[in->c].f;
            NEXT;
            CASE(OP_FNE)
            r[in->a].i = r[in->b].f != r[in->c].f;
            NEXT;
            CASE(OP_FLT)
            r[in->a].i = r[in->b].f < r[in->c].f;
            NEXT;
            CASE(OP_FLE)
            r[in->a].i = r[in->b].f <= r[in->c].f;
            NEXT;
            CASE(OP_TEQ)
            CASE(OP_TNE)
            {
                bool eq = r[in->b].t.n == r[in->c].t.n &&
                          memcmp(r[in->b].t.p, r[in->c].t.p, r[in->b].t.n) == 0;
                r[in->a].i = (in->op == OP_TEQ) == eq;
                NEXT;
            }
            CASE(OP_NOT)
            r[in->a].i = r[in->b].i == 0;
            NEXT;
            CASE(OP_JMP)
            pc += in->imm;
            NEXT;
            CASE(OP_JZ)
            if (r[in->a].i == 0)
                pc += in->imm;
            NEXT;
            CASE(OP_JNZ)
            if (r[in->a].i != 0)
                pc += in->imm;
            NEXT;
            CASE(OP_JLT)
            if (!(r[in->a].i < r[in->b].i))
                pc += in->imm;
            NEXT;
            CASE(OP_JLE)
            if (!(r[in->a].i <= r[in->b].i))
                pc += in->imm;
            NEXT;
            CASE(OP_JEQ)
            if (r[in->a].i != r[in->b].i)
                pc += in->imm;
            NEXT;
            CASE(OP_JNE)
            if (r[in->a].i == r[in->b].i)
                pc += in->imm;
            NEXT;
            CASE(OP_ADDM)
            {
                uint64_t v;
                memcpy(&v, rec + in->imm, 8);
                v += r[in->a].u;
                memcpy(rec + in->imm, &v, 8);
                NEXT;
            }
            CASE(OP_ADDMI)
            {
                uint64_t v;
                memcpy(&v, rec + in->imm, 8);
                v += (uint64_t)(int64_t)K16(in);
                memcpy(rec + in->imm, &v, 8);
                NEXT;
            }
            CASE(OP_STMI)
            {
                int64_t v = K16(in);
                memcpy(rec + in->imm, &v, 8);
                NEXT;
            }
            CASE(OP_JLTI)
            if (!(r[in->a].i < K16(in)))
                pc += in->imm;
            NEXT;
            CASE(OP_JLEI)
            if (!(r[in->a].i <= K16(in)))
                pc += in->imm;
            NEXT;
            CASE(OP_JGTI)
            if (!(r[in->a].i > K16(in)))
                pc += in->imm;
            NEXT;
            CASE(OP_JGEI)
            if (!(r[in->a].i >= K16(in)))
                pc += in->imm;
            NEXT;
            CASE(OP_JEQI)
            if (r[in->a].i != K16(in))
                pc += in->imm;
            NEXT;
            CASE(OP_JNEI)
            if (r[in->a].i == K16(in))
                pc += in->imm;
            NEXT;
            CASE(OP_QPUSH)
            CASE(OP_QPOP)
            CASE(OP_QFRONT)
            CASE(OP_QLEN)
            CASE(OP_QCLEAR)
            queue_op(c, in, r);
            NEXT;
            CASE(OP_APEND)
            r[in->a].i = ctx_acts(c)[in->imm].pending != 0;
            NEXT;
            CASE(OP_RUN)
            act_run(c, (unsigned)in->imm, &r[in->b]);
            NEXT;
            CASE(OP_ACANCEL)
            act_cancel(c, (unsigned)in->imm);
            NEXT;
            CASE(OP_TCANCEL)
            timer_cancel(c, (unsigned)in->imm);
            NEXT;
            CASE(OP_GOTO)
            transition(c, (unsigned)in->imm, r);
            return END_DONE;
            CASE(OP_COMPLETE)
            complete(c);
            return END_DONE;
        }
    }
}
#undef CASE
#undef NEXT
#undef K16

/* Run the state's handler block for `trig`, falling back to the `any:` one. */
static inline __attribute__((always_inline)) void run_trigger(struct vm_ctx *c, unsigned trig,
                                                              union vm_reg *regs)
{
    const struct flow_def *d = c->d;
    const struct vm_insn *code = d->entry_code[c->hdr->state * d->ntriggers + trig];
    if (code && exec(c, code, regs) != END_NOMATCH)
        return;
    code = d->entry_code[d->nstates * d->ntriggers + trig];
    if (code)
        exec(c, code, regs);
}

/* Common entry checks; on success fills the context. */
static inline __attribute__((always_inline)) int
enter_vm(struct vm_ctx *c, const struct flow_def *d, void *record, const char *id, size_t id_len,
         uint64_t now, struct vm_cmd *cmds, unsigned cmds_max)
{
    assert(((uintptr_t)record & 7) == 0);
    uint8_t *rec = record;
    c->d = d;
    c->rec = rec;
    c->hdr = (struct vm_rec_header *)record;
    if (c->hdr->flags & VM_REC_COMPLETED)
        return VM_ERR_COMPLETED;
    if (cmds_max < d->cmds_max)
        return VM_ERR_NO_SPACE;
    assert(id || id_len == 0);
    c->id = id;
    c->id_len = id_len;
    c->now = now;
    c->cmd = cmds;
    c->moved = false;
    return 0;
}

static int leave_vm(const struct vm_ctx *c, const struct vm_cmd *cmds)
{
    int n = (int)(c->cmd - cmds);
    assert(n >= 0 && (unsigned)n <= c->d->cmds_max);
    return n;
}

void vm_record_init(const struct flow_def *def, void *record, const char *id, size_t id_len,
                    uint64_t now_ns)
{
    assert(((uintptr_t)record & 7) == 0);
    assert(id || id_len == 0);
    (void)id;
    (void)id_len;
    memcpy(record, def->init_record, def->hdr->record_size);
    ((struct vm_rec_header *)record)->created_ns = now_ns;
}

_Static_assert((int)FLOW_T_INT == (int)SF_VAL_INT && (int)FLOW_T_FLOAT == (int)SF_VAL_FLOAT &&
                   (int)FLOW_T_BOOL == (int)SF_VAL_BOOL && (int)FLOW_T_TEXT == (int)SF_VAL_TEXT,
               "flow types and wire value types share their numbers");

/* A field whose wire type is not its declared type: NULL reads as zero, an int is taken
 * for a float, anything else is refused. */
static int load_field_slow(uint8_t want, const struct sf_value *v, union vm_reg *r)
{
    enum sf_val_type got = v ? v->type : SF_VAL_NULL;
    if (got == SF_VAL_NULL) {
        r->t.p = "";
        r->t.n = 0;
        if (want != FLOW_T_TEXT)
            r->u = 0;
        return 0;
    }
    if (want == FLOW_T_FLOAT && got == SF_VAL_INT) {
        r->f = (double)v->i;
        return 0;
    }
    return VM_ERR_FIELD_TYPE;
}

/* Convert fields into registers per the signal's declared types. */
static inline __attribute__((always_inline)) int load_fields(const struct flow_def *d,
                                                             const struct fb_signal *s,
                                                             const struct sf_value *fields,
                                                             unsigned nfields, union vm_reg *regs)
{
    const struct fb_field *ff = d->fields + s->first_field;
    for (unsigned i = 0; i < s->nfields; i++) {
        uint8_t want = ff[i].type;
        union vm_reg *r = &regs[i];
        if (i < nfields && fields[i].type == (enum sf_val_type)want) {
            const struct sf_value *v = &fields[i];
            if (want == FLOW_T_TEXT) {
                if (!v->text.ptr && v->text.len)
                    return VM_ERR_FIELD_TYPE;
                /* text(N): the compiler stored it only where N bytes fit; never cut */
                if (ff[i].text_cap != 0 && v->text.len > ff[i].text_cap)
                    return VM_ERR_TEXT_TOO_LONG;
                r->t.p = v->text.ptr ? v->text.ptr : "";
                r->t.n = v->text.len;
            } else if (want == FLOW_T_BOOL) {
                r->i = v->b;
            } else {
                memcpy(&r->u, &v->i, 8); /* int64 or double bits */
            }
            continue;
        }
        int rc = load_field_slow(want, i < nfields ? &fields[i] : NULL, r);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* First call on a record: enter the initial state (arm its and `any:` timers, run its
 * `on enter`). */
static __attribute__((noinline, cold)) void vm_start(struct vm_ctx *c)
{
    const struct flow_def *d = c->d;
    c->hdr->flags |= VM_REC_STARTED;
    row_arm(c, d->nstates);
    row_arm(c, c->hdr->state);
    int32_t e = d->states[c->hdr->state].enter;
    if (e >= 0) {
        union vm_reg scratch[VM_REGS_MAX];
        exec(c, d->code + d->handlers[e].code_start, scratch);
    }
}

/* The signal handler with its fields in regs (after enter_vm). */
static inline __attribute__((always_inline)) int run_signal(struct vm_ctx *c, unsigned sig,
                                                            union vm_reg *regs, struct vm_cmd *cmds)
{
    const struct flow_def *def = c->d;
    uint64_t now_ns = c->now;
    bool fresh = !(c->hdr->flags & VM_REC_STARTED);
    if (fresh)
        vm_start(c);
    run_trigger(c, sig, regs);
    if (!(c->hdr->flags & VM_REC_COMPLETED) && !fresh) {
        /* every signal resets the silence timers (a start or a new state armed them) */
        int slot = def->silence_slot[def->nstates];
        if (slot >= 0)
            slot_arm(c, (unsigned)slot, add_sat(now_ns, def->silence_period[def->nstates]));
        unsigned row = c->hdr->state;
        slot = def->silence_slot[row];
        if (slot >= 0 && !c->moved)
            slot_arm(c, (unsigned)slot, add_sat(now_ns, def->silence_period[row]));
    }
    return leave_vm(c, cmds);
}

int vm_run_signal_regs(const struct flow_def *def, void *record, unsigned sig, union vm_reg *regs,
                       const char *id, size_t id_len, uint64_t now_ns, struct vm_cmd *cmds,
                       unsigned cmds_max)
{
    struct vm_ctx c;
    int rc = enter_vm(&c, def, record, id, id_len, now_ns, cmds, cmds_max);
    if (rc < 0)
        return rc;
    if (sig >= def->nsignals)
        return VM_ERR_BAD_INDEX;
    return run_signal(&c, sig, regs, cmds);
}

int vm_run_signal(const struct flow_def *def, void *record, unsigned sig,
                  const struct sf_value *fields, unsigned nfields, const char *id, size_t id_len,
                  uint64_t now_ns, struct vm_cmd *cmds, unsigned cmds_max)
{
    struct vm_ctx c;
    union vm_reg regs[VM_REGS_MAX];
    int rc = enter_vm(&c, def, record, id, id_len, now_ns, cmds, cmds_max);
    if (rc < 0)
        return rc;
    if (sig >= def->nsignals)
        return VM_ERR_BAD_INDEX;
    if ((rc = load_fields(def, &def->signals[sig], fields, nfields, regs)) < 0)
        return rc;
    return run_signal(&c, sig, regs, cmds);
}

int vm_run_timer(const struct flow_def *def, void *record, unsigned slot, uint64_t due_ns,
                 const char *id, size_t id_len, struct vm_cmd *cmds, unsigned cmds_max)
{
    struct vm_ctx c;
    union vm_reg regs[VM_REGS_MAX];
    int rc = enter_vm(&c, def, record, id, id_len, due_ns, cmds, cmds_max);
    if (rc < 0)
        return rc;
    if (slot >= def->nslots)
        return VM_ERR_BAD_INDEX;
    if (due_ns == 0 || ctx_due(&c)[slot] != due_ns)
        return 0; /* stale: cancelled or re-armed since */
    int t = def->slot_timer[c.hdr->state * def->nslots + slot];
    if (t < 0)
        t = def->slot_timer[def->nstates * def->nslots + slot];
    ctx_due(&c)[slot] = 0;
    if (t < 0)
        return 0;
    const struct fb_timer *ft = &def->timers[t];
    if (ft->kind == FB_EVERY)
        timer_arm(&c, ft, add_sat(due_ns, ft->period_ns));
    run_trigger(&c, def->nsignals + 2 * def->nacts + slot, regs);
    return leave_vm(&c, cmds);
}

static int run_result(const struct flow_def *def, void *record, unsigned act, uint32_t seq,
                      bool failed, int64_t result, const char *id, size_t id_len, uint64_t now_ns,
                      struct vm_cmd *cmds, unsigned cmds_max)
{
    struct vm_ctx c;
    union vm_reg regs[VM_REGS_MAX];
    int rc = enter_vm(&c, def, record, id, id_len, now_ns, cmds, cmds_max);
    if (rc < 0)
        return rc;
    if (act >= def->nacts)
        return VM_ERR_BAD_INDEX;
    struct vm_act_slot *s = &ctx_acts(&c)[act];
    if (!s->pending || s->seq != seq)
        return 0; /* stale: cancelled or replaced */
    s->pending = 0;
    regs[0].i = result;
    run_trigger(&c, def->nsignals + 2 * act + failed, regs);
    return leave_vm(&c, cmds);
}

int vm_run_activity_done(const struct flow_def *def, void *record, unsigned act, uint32_t seq,
                         int64_t result, const char *id, size_t id_len, uint64_t now_ns,
                         struct vm_cmd *cmds, unsigned cmds_max)
{
    return run_result(def, record, act, seq, false, result, id, id_len, now_ns, cmds, cmds_max);
}

int vm_run_activity_failed(const struct flow_def *def, void *record, unsigned act, uint32_t seq,
                           const char *id, size_t id_len, uint64_t now_ns, struct vm_cmd *cmds,
                           unsigned cmds_max)
{
    return run_result(def, record, act, seq, true, 0, id, id_len, now_ns, cmds, cmds_max);
}

int vm_note_attempt(const struct flow_def *def, void *record, unsigned act, uint32_t seq,
                    uint32_t attempt)
{
    if (act >= def->nacts)
        return VM_ERR_BAD_INDEX;
    struct vm_act_slot *s = (struct vm_act_slot *)((uint8_t *)record + def->hdr->acts_off) + act;
    uint16_t count = attempt < UINT16_MAX ? (uint16_t)attempt : UINT16_MAX;
    if (!s->pending || s->seq != seq || count <= s->attempts)
        return 0;
    s->attempts = count;
    return 1;
}

/* ---- inspection ---------------------------------------------------------------------- */

int vm_record_check(const struct flow_def *def, const void *record)
{
    const uint8_t *rec = record;
    const struct vm_rec_header *h = record;
    if (((uintptr_t)record & 7) || h->state >= def->nstates ||
        (h->flags & ~(VM_REC_STARTED | VM_REC_COMPLETED)))
        return VM_ERR_BAD_RECORD;
    const struct vm_act_slot *acts = (const void *)(rec + def->hdr->acts_off);
    for (unsigned a = 0; a < def->nacts; a++)
        if (acts[a].pending > 1)
            return VM_ERR_BAD_RECORD;
    for (unsigned i = 0; i < def->nvars; i++) {
        const struct fb_var *v = &def->vars[i];
        if ((v->type == FLOW_T_TEXT && rec[v->offset] > v->text_cap) ||
            (v->type == FLOW_T_BOOL && rec[v->offset] > 1))
            return VM_ERR_BAD_RECORD;
    }
    for (unsigned i = 0; i < def->nqueues; i++) {
        const struct fb_queue *q = &def->queues[i];
        const uint8_t *b = rec + q->offset;
        if (b[0] > q->cap || b[1] > q->cap)
            return VM_ERR_BAD_RECORD;
        for (unsigned k = 0; q->type == FLOW_T_TEXT && k <= q->cap; k++)
            if (b[2 + k * q->elem_size] > q->text_cap)
                return VM_ERR_BAD_RECORD;
    }
    return 0;
}

unsigned vm_record_state(const struct flow_def *def, const void *record)
{
    (void)def;
    return ((const struct vm_rec_header *)record)->state;
}

bool vm_record_completed(const struct flow_def *def, const void *record)
{
    (void)def;
    return ((const struct vm_rec_header *)record)->flags & VM_REC_COMPLETED;
}

bool vm_record_started(const struct flow_def *def, const void *record)
{
    (void)def;
    return ((const struct vm_rec_header *)record)->flags & VM_REC_STARTED;
}

uint64_t vm_record_created_ns(const struct flow_def *def, const void *record)
{
    (void)def;
    return ((const struct vm_rec_header *)record)->created_ns;
}

uint64_t vm_record_timer_due(const struct flow_def *def, const void *record, unsigned slot)
{
    if (slot >= def->nslots)
        return 0;
    uint64_t due;
    memcpy(&due, (const uint8_t *)record + def->hdr->timers_off + 8 * slot, 8);
    return due;
}

bool vm_record_activity(const struct flow_def *def, const void *record, unsigned act, uint32_t *seq,
                        uint32_t *attempts)
{
    if (act >= def->nacts)
        return false;
    struct vm_act_slot s;
    memcpy(&s, (const uint8_t *)record + def->hdr->acts_off + 8 * act, sizeof(s));
    if (seq)
        *seq = s.seq;
    if (attempts)
        *attempts = s.attempts;
    return s.pending != 0;
}

static void value_of(uint8_t type, unsigned cap, const uint8_t *p, struct sf_value *out)
{
    memset(out, 0, sizeof(*out));
    switch (type) {
    case FLOW_T_INT:
        out->type = SF_VAL_INT;
        memcpy(&out->i, p, 8);
        break;
    case FLOW_T_FLOAT:
        out->type = SF_VAL_FLOAT;
        memcpy(&out->f, p, 8);
        break;
    case FLOW_T_BOOL:
        out->type = SF_VAL_BOOL;
        out->b = p[0] != 0;
        break;
    default:
        out->type = SF_VAL_TEXT;
        out->text.ptr = (const char *)p + 1;
        out->text.len = p[0] > cap ? (uint16_t)cap : p[0];
    }
}

int vm_record_var(const struct flow_def *def, const void *record, unsigned i, struct sf_value *out)
{
    if (i >= def->nvars)
        return -EINVAL;
    const struct fb_var *v = &def->vars[i];
    value_of(v->type, v->text_cap, (const uint8_t *)record + v->offset, out);
    return 0;
}

unsigned vm_record_queue_len(const struct flow_def *def, const void *record, unsigned q)
{
    if (q >= def->nqueues)
        return 0;
    unsigned n = ((const uint8_t *)record)[def->queues[q].offset + 1];
    return n > def->queues[q].cap ? def->queues[q].cap : n;
}

int vm_record_queue_item(const struct flow_def *def, const void *record, unsigned q, unsigned i,
                         struct sf_value *out)
{
    if (q >= def->nqueues || i >= vm_record_queue_len(def, record, q))
        return -EINVAL;
    const struct fb_queue *fq = &def->queues[q];
    const uint8_t *base = (const uint8_t *)record + fq->offset;
    unsigned ring = fq->cap + 1u;
    unsigned at = (base[0] % ring + i) % ring;
    value_of(fq->type, fq->text_cap, base + 2 + at * fq->elem_size, out);
    return 0;
}
