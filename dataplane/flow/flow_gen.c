/*
 * flow_gen.c — name resolution, type checking, record layout and code generation.
 *
 * One pass over the syntax tree does all four: every declaration is entered first, then
 * each handler block (all handlers of one trigger in one state, guards in source order)
 * is checked and compiled into register code. Errors are collected and compiling carries
 * on with the next statement, so one run reports as many errors as it can; no blob is
 * built when there was any error.
 *
 * Registers: a signal handler's fields are r0..r(n-1) (the `.done` result is r0), temps
 * are allocated above them like a stack. Conditions compile to jumps (short-circuit
 * and/or, fused int compare-and-branch), all jumps forward.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flow_internal.h"

#define GEN_ROWS_MAX   (FLOW_STATES_MAX + 1)
#define GEN_TIMERS_MAX 256u

struct buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
};

static size_t buf_put(struct buf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return 0;
        }
        b->p = p;
        b->cap = cap;
    }
    size_t at = b->n;
    if (n == 0)
        return at; /* b->p may still be NULL: memcpy/memset need a valid pointer */
    if (data)
        memcpy(b->p + at, data, n);
    else
        memset(b->p + at, 0, n);
    b->n += n;
    return at;
}

enum sym_kind { SYM_SIGNAL = 1, SYM_VAR, SYM_QUEUE, SYM_ACT };

struct gen_timer {
    const struct ast_handler *h;
    unsigned row, slot;
};

/* The bound of a text no declaration limits: a signal field declared `text` or `id`. */
#define GEN_TEXT_UNBOUNDED UINT32_MAX

struct gen {
    const struct ast_workflow *wf;
    struct flow_diag *d;
    /* declarations */
    const struct ast_signal *sig[FLOW_SIGNALS_MAX];
    unsigned nsig;
    const struct ast_var *var[FLOW_VARS_MAX];
    uint32_t var_off[FLOW_VARS_MAX];
    uint64_t var_init[FLOW_VARS_MAX];
    unsigned nvar;
    const struct ast_var *queue[FLOW_QUEUES_MAX];
    uint32_t queue_off[FLOW_QUEUES_MAX];
    unsigned nqueue;
    const struct ast_activity *act[FLOW_ACTIVITIES_MAX];
    unsigned nact;
    const struct ast_state *state[FLOW_STATES_MAX]; /* real states */
    unsigned nstate;
    const struct ast_state *any[FLOW_STATES_MAX]; /* `any:` blocks (merged) */
    unsigned nany;
    struct gen_timer timer[GEN_TIMERS_MAX];
    unsigned ntimer, nslots;
    uint32_t record_size, timers_off, acts_off, data_off;
    /* output */
    struct buf code, consts, tconsts, strings, handlers;
    /* index of consts for dedupe: open addressing, const index + 1 or 0 (empty) */
    uint32_t *const_index;
    size_t const_index_cap; /* power of two, > 2 x constants */
    int32_t *entries;
    int32_t enter_handler[FLOW_STATES_MAX];
    unsigned nhandlers;
    /* current handler */
    unsigned row; /* state index, nstate = any */
    const struct ast_handler *h;
    int cur_signal;   /* signal index or -1 */
    unsigned nfields; /* registers holding fields */
    unsigned nreg;
    unsigned text_bound; /* longest text the last text expression gx compiled can be
                            (GEN_TEXT_UNBOUNDED: a field declared without text(N)) */
    bool reg_overflow;
    bool reachable[FLOW_STATES_MAX];
    bool go_edges[GEN_ROWS_MAX][FLOW_STATES_MAX];
};

static void gerr(struct gen *g, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void gerr(struct gen *g, unsigned line, unsigned col, const char *fmt, ...)
{
    char msg[FLOW_ERROR_LEN_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    flow_diag_add(g->d, line, col, "%s", msg);
}

static const char *type_name(enum flow_type t)
{
    return t == FLOW_T_INT     ? "int"
           : t == FLOW_T_FLOAT ? "float"
           : t == FLOW_T_BOOL  ? "bool"
           : t == FLOW_T_TEXT  ? "text"
                               : "?";
}

/* ---- symbols ------------------------------------------------------------------------- */

static int find_sym(const struct gen *g, const char *name, enum sym_kind *kind)
{
    for (unsigned i = 0; i < g->nsig; i++)
        if (strcmp(g->sig[i]->name, name) == 0)
            return *kind = SYM_SIGNAL, (int)i;
    for (unsigned i = 0; i < g->nvar; i++)
        if (strcmp(g->var[i]->t.name, name) == 0)
            return *kind = SYM_VAR, (int)i;
    for (unsigned i = 0; i < g->nqueue; i++)
        if (strcmp(g->queue[i]->t.name, name) == 0)
            return *kind = SYM_QUEUE, (int)i;
    for (unsigned i = 0; i < g->nact; i++)
        if (strcmp(g->act[i]->name, name) == 0)
            return *kind = SYM_ACT, (int)i;
    return -1;
}

static int find_state(const struct gen *g, const char *name)
{
    for (unsigned i = 0; i < g->nstate; i++)
        if (strcmp(g->state[i]->name, name) == 0)
            return (int)i;
    return -1;
}

static bool declare_global(struct gen *g, const char *name, unsigned line, unsigned col)
{
    enum sym_kind k;
    if (find_sym(g, name, &k) >= 0) {
        gerr(g, line, col, "'%s' is already declared", name);
        return false;
    }
    return true;
}

static void collect_decls(struct gen *g)
{
    const struct ast_workflow *wf = g->wf;
    for (const struct ast_signal *s = wf->signals; s; s = s->next) {
        if (!declare_global(g, s->name, s->line, s->col))
            continue;
        if (g->nsig == FLOW_SIGNALS_MAX) {
            gerr(g, s->line, s->col, "more than %u signals", FLOW_SIGNALS_MAX);
            continue;
        }
        for (unsigned i = 0; i < s->nfields; i++)
            for (unsigned j = 0; j < i; j++)
                if (strcmp(s->fields[i].name, s->fields[j].name) == 0)
                    gerr(g, s->fields[i].line, s->fields[i].col, "duplicate field '%s'",
                         s->fields[i].name);
        g->sig[g->nsig++] = s;
    }
    for (const struct ast_var *v = wf->vars; v; v = v->next) {
        if (!declare_global(g, v->t.name, v->t.line, v->t.col))
            continue;
        if (v->is_queue) {
            if (g->nqueue == FLOW_QUEUES_MAX)
                gerr(g, v->t.line, v->t.col, "more than %u queues", FLOW_QUEUES_MAX);
            else
                g->queue[g->nqueue++] = v;
        } else {
            if (g->nvar == FLOW_VARS_MAX)
                gerr(g, v->t.line, v->t.col, "more than %u variables", FLOW_VARS_MAX);
            else
                g->var[g->nvar++] = v;
        }
    }
    for (const struct ast_activity *a = wf->acts; a; a = a->next) {
        if (!declare_global(g, a->name, a->line, a->col))
            continue;
        for (unsigned i = 0; i < a->nparams; i++)
            for (unsigned j = 0; j < i; j++)
                if (strcmp(a->params[i].name, a->params[j].name) == 0)
                    gerr(g, a->params[i].line, a->params[i].col, "duplicate parameter '%s'",
                         a->params[i].name);
        if (g->nact == FLOW_ACTIVITIES_MAX)
            gerr(g, a->line, a->col, "more than %u activities", FLOW_ACTIVITIES_MAX);
        else
            g->act[g->nact++] = a;
    }
    for (const struct ast_state *s = wf->states; s; s = s->next) {
        if (!s->name) {
            g->any[g->nany++] = s;
            continue;
        }
        int prev = find_state(g, s->name);
        if (prev >= 0) {
            gerr(g, s->line, s->col, "state '%s' is already declared (line %u)", s->name,
                 g->state[prev]->line);
            continue;
        }
        if (g->nstate == FLOW_STATES_MAX) {
            gerr(g, s->line, s->col, "more than %u states", FLOW_STATES_MAX);
            continue;
        }
        g->state[g->nstate++] = s;
    }
    if (g->nstate == 0 && wf->name)
        gerr(g, wf->line, wf->col, "workflow '%s' has no state", wf->name);
}

/* ---- timers and layout ----------------------------------------------------------------- */

static bool is_timer(const struct ast_handler *h)
{
    return h->kind == HD_AFTER || h->kind == HD_EVERY || h->kind == HD_SILENCE;
}

/* Timers of one row (a state, or all `any:` blocks). */
static unsigned collect_row_timers(struct gen *g, unsigned row, const struct ast_state **blocks,
                                   unsigned nblocks, unsigned first_slot)
{
    unsigned n = 0, first = g->ntimer;
    bool silence = false;
    for (unsigned b = 0; b < nblocks; b++) {
        for (const struct ast_handler *h = blocks[b]->handlers; h; h = h->next) {
            if (!is_timer(h))
                continue;
            if (h->kind == HD_SILENCE) {
                if (silence)
                    gerr(g, h->line, h->col, "more than one silence timer in %s",
                         row < g->nstate ? "a state" : "any:");
                silence = true;
            }
            bool dup = false;
            for (unsigned i = first; i < g->ntimer; i++)
                if (strcmp(g->timer[i].h->name, h->name) == 0) {
                    gerr(g, h->name_line, h->name_col,
                         "duplicate timer '%s' (line %u): name them with 'as NAME'", h->name,
                         g->timer[i].h->line);
                    dup = true;
                }
            if (row < g->nstate) /* state timers must not hide `any:` timers */
                for (unsigned i = 0; i < g->ntimer; i++)
                    if (g->timer[i].row == g->nstate && strcmp(g->timer[i].h->name, h->name) == 0) {
                        gerr(g, h->name_line, h->name_col,
                             "timer '%s' is also a timer of any: (line %u)", h->name,
                             g->timer[i].h->line);
                        dup = true;
                    }
            enum sym_kind k;
            if (find_sym(g, h->name, &k) >= 0 && k == SYM_ACT) {
                gerr(g, h->name_line, h->name_col, "timer '%s' has the name of an activity",
                     h->name);
                dup = true;
            }
            if (dup)
                continue;
            if (g->ntimer == GEN_TIMERS_MAX || first_slot + n >= FLOW_TIMER_SLOTS_MAX) {
                gerr(g, h->line, h->col, "more than %u timers", FLOW_TIMER_SLOTS_MAX);
                continue;
            }
            g->timer[g->ntimer++] =
                (struct gen_timer){ .h = h, .row = row, .slot = first_slot + n };
            n++;
        }
    }
    return n;
}

static unsigned add_tconst(struct gen *g, const char *s);

static uint64_t var_init_bits(struct gen *g, const struct ast_var *v)
{
    const struct ast_expr *e = v->init;
    enum flow_type t = v->t.type;
    if (!e)
        return t == FLOW_T_TEXT ? add_tconst(g, "") : 0;
    uint64_t bits = 0;
    if (t == FLOW_T_INT && e->kind == EX_INT)
        return (uint64_t)e->ival;
    if (t == FLOW_T_FLOAT && (e->kind == EX_FLOAT || e->kind == EX_INT)) {
        double f = e->kind == EX_FLOAT ? e->fval : (double)e->ival;
        memcpy(&bits, &f, 8);
        return bits;
    }
    if (t == FLOW_T_BOOL && e->kind == EX_BOOL)
        return e->bval;
    if (t == FLOW_T_TEXT && e->kind == EX_TEXT) {
        if (strlen(e->sval) > v->t.text_cap)
            gerr(g, e->line, e->col, "initial value is longer than text(%u)", v->t.text_cap);
        return add_tconst(g, e->sval);
    }
    gerr(g, e->line, e->col, "initial value of '%s' must be %s", v->t.name, type_name(t));
    return 0;
}

static void layout(struct gen *g)
{
    unsigned nany_slots = collect_row_timers(g, g->nstate, g->any, g->nany, 0);
    unsigned max_state = 0;
    for (unsigned s = 0; s < g->nstate; s++) {
        unsigned n = collect_row_timers(g, s, &g->state[s], 1, nany_slots);
        if (n > max_state)
            max_state = n;
    }
    g->nslots = nany_slots + max_state;
    g->timers_off = sizeof(struct vm_rec_header);
    g->acts_off = g->timers_off + 8 * g->nslots;
    g->data_off = g->acts_off + (uint32_t)sizeof(struct vm_act_slot) * g->nact;
    uint32_t off = g->data_off;
    /* 8-byte variables first (aligned), then bools, then text */
    for (int pass = 0; pass < 3; pass++)
        for (unsigned i = 0; i < g->nvar; i++) {
            enum flow_type t = g->var[i]->t.type;
            int want = t == FLOW_T_BOOL ? 1 : t == FLOW_T_TEXT ? 2 : 0;
            if (want != pass)
                continue;
            g->var_off[i] = off;
            off += t == FLOW_T_BOOL ? 1 : t == FLOW_T_TEXT ? 1 + g->var[i]->t.text_cap : 8;
        }
    for (unsigned i = 0; i < g->nqueue; i++) {
        const struct ast_var *q = g->queue[i];
        unsigned es = q->t.type == FLOW_T_BOOL   ? 1
                      : q->t.type == FLOW_T_TEXT ? 1 + q->t.text_cap
                                                 : 8;
        g->queue_off[i] = off;
        off += 2 + es * (q->queue_cap + 1); /* ring of cap + 1: see vm.c */
    }
    off = (off + 7) & ~7u;
    g->record_size = off;
    for (unsigned i = 0; i < g->nvar; i++)
        g->var_init[i] = var_init_bits(g, g->var[i]);
    if (off > FLOW_RECORD_SIZE_MAX)
        gerr(g, g->wf->line, g->wf->col,
             "instance record is %u bytes, more than %u: shrink text bounds or queues", off,
             FLOW_RECORD_SIZE_MAX);
}

/* ---- code emission --------------------------------------------------------------------- */

static unsigned emit(struct gen *g, enum vm_op op, unsigned a, unsigned b, unsigned c, int32_t imm)
{
    struct vm_insn in = {
        .op = (uint8_t)op, .a = (uint8_t)a, .b = (uint8_t)b, .c = (uint8_t)c, .imm = imm
    };
    assert(a < 256 && b < 256 && c < 256);
    return (unsigned)(buf_put(&g->code, &in, sizeof(in)) / sizeof(in));
}

static unsigned pc(const struct gen *g)
{
    return (unsigned)(g->code.n / sizeof(struct vm_insn));
}

static struct vm_insn *insn_at(struct gen *g, unsigned i)
{
    return &((struct vm_insn *)g->code.p)[i];
}

/* Forward labels: a chain of jumps through their imm fields, patched at bind. */
struct label {
    int head;
};

static void emit_jump(struct gen *g, struct label *l, enum vm_op op, unsigned a, unsigned b)
{
    unsigned at = emit(g, op, a, b, 0, l->head);
    if (!g->code.oom)
        l->head = (int)at;
}

static void bind(struct gen *g, struct label *l)
{
    int i = l->head;
    while (i >= 0 && !g->code.oom) {
        struct vm_insn *in = insn_at(g, (unsigned)i);
        int next = in->imm;
        in->imm = (int32_t)(pc(g) - (unsigned)i - 1);
        i = next;
    }
    l->head = -1;
}

static unsigned alloc_reg(struct gen *g, unsigned line, unsigned col)
{
    if (g->nreg >= VM_REGS_MAX) {
        if (!g->reg_overflow)
            gerr(g, line, col, "expression too complex (more than %u registers)", VM_REGS_MAX);
        g->reg_overflow = true;
        return VM_REGS_MAX - 1;
    }
    return g->nreg++;
}

#define GEN_CONST_INDEX_MIN 64u

static size_t const_hash(uint64_t bits, size_t cap)
{
    return (size_t)((bits * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

static uint64_t const_at(const struct gen *g, size_t i)
{
    uint64_t v;
    memcpy(&v, g->consts.p + i * 8, 8);
    return v;
}

/* Rebuild the dedupe index, at most a quarter full; false when out of memory. */
static bool const_index_grow(struct gen *g)
{
    size_t n = g->consts.n / 8, cap = g->const_index_cap ? g->const_index_cap : GEN_CONST_INDEX_MIN;
    while (cap <= 4 * n)
        cap *= 2;
    uint32_t *idx = calloc(cap, sizeof(*idx));
    if (!idx)
        return false;
    for (size_t i = 0; i < n; i++) {
        size_t h = const_hash(const_at(g, i), cap);
        while (idx[h])
            h = (h + 1) & (cap - 1);
        idx[h] = (uint32_t)(i + 1);
    }
    free(g->const_index);
    g->const_index = idx;
    g->const_index_cap = cap;
    return true;
}

/* Index of the 64-bit constant `bits`, added when new (constant time: hashed, since a long
 * source may hold a great many). Out of memory: sets consts.oom, returns 0. */
static unsigned add_const(struct gen *g, uint64_t bits)
{
    size_t n = g->consts.n / 8;
    if (2 * (n + 1) >= g->const_index_cap && !const_index_grow(g)) {
        g->consts.oom = true;
        return 0;
    }
    size_t h = const_hash(bits, g->const_index_cap);
    for (; g->const_index[h]; h = (h + 1) & (g->const_index_cap - 1))
        if (const_at(g, g->const_index[h] - 1) == bits)
            return g->const_index[h] - 1;
    buf_put(&g->consts, &bits, 8);
    if (g->consts.oom)
        return 0;
    g->const_index[h] = (uint32_t)(n + 1);
    return (unsigned)n;
}

static uint32_t add_string(struct gen *g, const char *s, size_t n)
{
    size_t at = buf_put(&g->strings, s, n);
    buf_put(&g->strings, "", 1);
    return (uint32_t)at;
}

static unsigned add_tconst(struct gen *g, const char *s)
{
    struct fb_tconst tc = { .len = (uint32_t)strlen(s) };
    tc.off = add_string(g, s, tc.len);
    return (unsigned)(buf_put(&g->tconsts, &tc, sizeof(tc)) / sizeof(tc));
}

static void emit_int(struct gen *g, unsigned dst, int64_t v)
{
    if (v >= INT32_MIN && v <= INT32_MAX)
        emit(g, OP_LDI, dst, 0, 0, (int32_t)v);
    else
        emit(g, OP_LDK, dst, 0, 0, (int32_t)add_const(g, (uint64_t)v));
}

static void emit_float(struct gen *g, unsigned dst, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    emit(g, OP_LDK, dst, 0, 0, (int32_t)add_const(g, bits));
}

/* ---- expressions --------------------------------------------------------------------- */

static enum flow_type gx(struct gen *g, const struct ast_expr *e, unsigned *reg);
static void gen_cond(struct gen *g, const struct ast_expr *e, bool jump_if, struct label *l);

static bool is_cmp_tok(enum tok_kind k)
{
    return k == T_EQ || k == T_NE || k == T_LT || k == T_LE || k == T_GT || k == T_GE;
}

static bool is_numeric(enum flow_type t)
{
    return t == FLOW_T_INT || t == FLOW_T_FLOAT;
}

/* Value in register `r` of type `t` converted to float (into a new temp if needed). */
static unsigned to_float(struct gen *g, unsigned r, enum flow_type t, unsigned line, unsigned col)
{
    if (t == FLOW_T_FLOAT)
        return r;
    unsigned d = alloc_reg(g, line, col);
    emit(g, OP_I2F, d, r, 0, 0);
    return d;
}

/* The longest value of a signal field: its text(N), or unbounded. */
static unsigned field_bound(const struct ast_typed_name *f)
{
    return f->type == FLOW_T_TEXT && f->text_cap == 0 ? GEN_TEXT_UNBOUNDED : f->text_cap;
}

/* A text is stored only where it always fits (docs/flow.md §4): the value e just compiled
 * (its bound in g->text_bound) into a text(cap) slot. False, with an error, when a value of
 * e could be longer than cap; nothing is ever cut at run time. */
static bool text_fits(struct gen *g, const struct ast_expr *e, unsigned cap, const char *what)
{
    unsigned n = g->text_bound;
    assert(cap >= 1 && cap <= FLOW_TEXT_CAP_MAX);
    if (n <= cap)
        return true;
    if (e->kind == EX_TEXT)
        gerr(g, e->line, e->col, "text of %u bytes does not fit %s, text(%u)", n, what, cap);
    else if (n == GEN_TEXT_UNBOUNDED)
        gerr(g, e->line, e->col,
             "a field declared without a bound may not fit %s, text(%u): declare it text(N), "
             "N <= %u",
             what, cap, cap);
    else
        gerr(g, e->line, e->col, "a text of up to %u bytes may not fit %s, text(%u)", n, what, cap);
    return false;
}

static enum flow_type queue_member(struct gen *g, const struct ast_expr *e, unsigned qi,
                                   unsigned *reg)
{
    const struct ast_var *q = g->queue[qi];
    const char *m = e->ref.member;
    if (e->ref.call) {
        if (strcmp(m, "pop") == 0) {
            if (e->ref.nargs) {
                gerr(g, e->line, e->col, "pop() takes no arguments");
                return 0;
            }
            *reg = alloc_reg(g, e->line, e->col);
            emit(g, OP_QPOP, *reg, 0, 0, (int32_t)qi);
            g->text_bound = q->t.text_cap;
            return q->t.type;
        }
        if (strcmp(m, "push") == 0 || strcmp(m, "clear") == 0) {
            gerr(g, e->line, e->col, "%s.%s() has no value", q->t.name, m);
            return 0;
        }
        gerr(g, e->line, e->col, "queue '%s' has no method '%s' (push, pop, clear)", q->t.name, m);
        return 0;
    }
    *reg = alloc_reg(g, e->line, e->col);
    if (strcmp(m, "front") == 0) {
        emit(g, OP_QFRONT, *reg, 0, 0, (int32_t)qi);
        g->text_bound = q->t.text_cap;
        return q->t.type;
    }
    if (strcmp(m, "length") == 0) {
        emit(g, OP_QLEN, *reg, 0, 0, (int32_t)qi);
        return FLOW_T_INT;
    }
    if (strcmp(m, "capacity") == 0) {
        emit(g, OP_LDI, *reg, 0, 0, (int32_t)q->queue_cap);
        return FLOW_T_INT;
    }
    if (strcmp(m, "empty") == 0 || strcmp(m, "full") == 0) {
        unsigned k = alloc_reg(g, e->line, e->col);
        emit(g, OP_QLEN, *reg, 0, 0, (int32_t)qi);
        emit(g, OP_LDI, k, 0, 0, strcmp(m, "empty") == 0 ? 0 : (int32_t)q->queue_cap);
        emit(g, OP_EQ, *reg, *reg, k, 0);
        g->nreg--;
        return FLOW_T_BOOL;
    }
    gerr(g, e->line, e->col,
         "queue '%s' has no member '%s' (length, empty, full, capacity, front, pop())", q->t.name,
         m);
    return 0;
}

static enum flow_type builtin_call(struct gen *g, const struct ast_expr *e, unsigned *reg)
{
    const char *f = e->ref.name;
    unsigned want = (strcmp(f, "min") == 0 || strcmp(f, "max") == 0) ? 2 : 1;
    bool known =
        want == 2 || strcmp(f, "int") == 0 || strcmp(f, "float") == 0 || strcmp(f, "abs") == 0;
    if (!known) {
        gerr(g, e->line, e->col, "unknown function '%s' (int, float, abs, min, max)", f);
        return 0;
    }
    if (e->ref.nargs != want) {
        gerr(g, e->line, e->col, "%s() takes %u argument%s", f, want, want > 1 ? "s" : "");
        return 0;
    }
    unsigned save = g->nreg;
    unsigned ra, rb = 0;
    enum flow_type ta = gx(g, e->ref.args[0], &ra), tb = FLOW_T_INT;
    if (want == 2)
        tb = gx(g, e->ref.args[1], &rb);
    if (!ta || !tb)
        return 0;
    if (!is_numeric(ta) || !is_numeric(tb)) {
        gerr(g, e->line, e->col, "%s() needs numbers, not %s", f,
             type_name(is_numeric(ta) ? tb : ta));
        return 0;
    }
    bool fl = ta == FLOW_T_FLOAT || tb == FLOW_T_FLOAT;
    if (strcmp(f, "float") == 0) {
        ra = to_float(g, ra, ta, e->line, e->col);
        g->nreg = save;
        *reg = alloc_reg(g, e->line, e->col);
        emit(g, OP_MOV, *reg, ra, 0, 0);
        return FLOW_T_FLOAT;
    }
    if (fl && want == 2) {
        ra = to_float(g, ra, ta, e->line, e->col);
        rb = to_float(g, rb, tb, e->line, e->col);
    }
    g->nreg = save;
    *reg = alloc_reg(g, e->line, e->col);
    if (strcmp(f, "int") == 0) {
        emit(g, ta == FLOW_T_FLOAT ? OP_F2I : OP_MOV, *reg, ra, 0, 0);
        return FLOW_T_INT;
    }
    if (strcmp(f, "abs") == 0) {
        emit(g, fl ? OP_FABS : OP_ABS, *reg, ra, 0, 0);
        return ta;
    }
    bool mn = strcmp(f, "min") == 0;
    emit(g, fl ? (mn ? OP_FMIN : OP_FMAX) : (mn ? OP_MIN : OP_MAX), *reg, ra, rb, 0);
    return fl ? FLOW_T_FLOAT : FLOW_T_INT;
}

static enum flow_type gx_ref(struct gen *g, const struct ast_expr *e, unsigned *reg)
{
    const char *name = e->ref.name;
    const struct ast_signal *sig = g->cur_signal >= 0 ? g->sig[g->cur_signal] : NULL;
    if (!e->ref.member && e->ref.call)
        return builtin_call(g, e, reg);
    if (!e->ref.member) {
        if (strcmp(name, "id") == 0 || strcmp(name, "now") == 0) {
            *reg = alloc_reg(g, e->line, e->col);
            emit(g, name[0] == 'i' ? OP_ID : OP_NOW, *reg, 0, 0, 0);
            g->text_bound = SF_ID_LEN_MAX;
            return name[0] == 'i' ? FLOW_T_TEXT : FLOW_T_INT;
        }
        if (strcmp(name, "result") == 0) {
            if (!g->h || g->h->kind != HD_DONE) {
                gerr(g, e->line, e->col, "'result' exists only in 'on ACTIVITY.done' handlers");
                return 0;
            }
            *reg = 0;
            return FLOW_T_INT;
        }
        int field = -1;
        if (sig)
            for (unsigned i = 0; i < sig->nfields; i++)
                if (strcmp(sig->fields[i].name, name) == 0)
                    field = (int)i;
        enum sym_kind k = 0;
        int idx = find_sym(g, name, &k);
        if (field >= 0 && idx >= 0 && k == SYM_VAR) {
            gerr(g, e->line, e->col,
                 "'%s' is both a field of '%s' and a variable: write %s.%s for the field", name,
                 sig->name, sig->name, name);
            return 0;
        }
        if (field >= 0) {
            *reg = (unsigned)field;
            g->text_bound = field_bound(&sig->fields[field]);
            return sig->fields[field].type;
        }
        if (idx < 0) {
            gerr(g, e->line, e->col, "unknown name '%s'", name);
            return 0;
        }
        if (k != SYM_VAR) {
            gerr(g, e->line, e->col, "%s '%s' is not a value%s",
                 k == SYM_SIGNAL  ? "signal"
                 : k == SYM_QUEUE ? "queue"
                                  : "activity",
                 name,
                 k == SYM_QUEUE ? " (use .front, .pop(), .length, .empty, .full)"
                 : k == SYM_ACT ? " (use .pending)"
                                : "");
            return 0;
        }
        const struct ast_var *v = g->var[idx];
        *reg = alloc_reg(g, e->line, e->col);
        g->text_bound = v->t.text_cap;
        if (v->t.type == FLOW_T_TEXT)
            emit(g, OP_LDTX, *reg, v->t.text_cap, 0, (int32_t)g->var_off[idx]);
        else
            emit(g, v->t.type == FLOW_T_BOOL ? OP_LD8 : OP_LD64, *reg, 0, 0,
                 (int32_t)g->var_off[idx]);
        return v->t.type;
    }
    /* name.member */
    if (sig && strcmp(name, sig->name) == 0 && !e->ref.call) {
        for (unsigned i = 0; i < sig->nfields; i++)
            if (strcmp(sig->fields[i].name, e->ref.member) == 0) {
                *reg = i;
                g->text_bound = field_bound(&sig->fields[i]);
                return sig->fields[i].type;
            }
        gerr(g, e->line, e->col, "signal '%s' has no field '%s'", name, e->ref.member);
        return 0;
    }
    enum sym_kind k = 0;
    int idx = find_sym(g, name, &k);
    if (idx >= 0 && k == SYM_QUEUE)
        return queue_member(g, e, (unsigned)idx, reg);
    if (idx >= 0 && k == SYM_ACT && strcmp(e->ref.member, "pending") == 0 && !e->ref.call) {
        *reg = alloc_reg(g, e->line, e->col);
        emit(g, OP_APEND, *reg, 0, 0, idx);
        return FLOW_T_BOOL;
    }
    if (idx >= 0 && k == SYM_SIGNAL)
        gerr(g, e->line, e->col, "fields of '%s' are only visible in its handlers", name);
    else if (idx >= 0 && k == SYM_ACT)
        gerr(g, e->line, e->col, "activity '%s' has no member '%s' (pending)", name, e->ref.member);
    else if (idx >= 0)
        gerr(g, e->line, e->col, "'%s' has no members", name);
    else
        gerr(g, e->line, e->col, "unknown name '%s'", name);
    return 0;
}

static enum vm_op arith_op(enum tok_kind k, bool fl)
{
    switch (k) {
    case T_PLUS:
    case T_PLUSEQ:
        return fl ? OP_FADD : OP_ADD;
    case T_MINUS:
    case T_MINUSEQ:
        return fl ? OP_FSUB : OP_SUB;
    case T_STAR:
    case T_STAREQ:
        return fl ? OP_FMUL : OP_MUL;
    case T_SLASH:
    case T_SLASHEQ:
        return fl ? OP_FDIV : OP_DIV;
    default:
        return OP_MOD;
    }
}

/* Arithmetic on two evaluated operands; result in a temp at `save`. */
static enum flow_type gen_arith(struct gen *g, const struct ast_expr *e, enum tok_kind op,
                                unsigned ra, enum flow_type ta, unsigned rb, enum flow_type tb,
                                unsigned save, unsigned *reg)
{
    if (!is_numeric(ta) || !is_numeric(tb)) {
        gerr(g, e->line, e->col, "arithmetic needs numbers, not %s",
             type_name(is_numeric(ta) ? tb : ta));
        return 0;
    }
    bool fl = ta == FLOW_T_FLOAT || tb == FLOW_T_FLOAT;
    if (fl && (op == T_PERCENT)) {
        gerr(g, e->line, e->col, "'%%' needs int operands");
        return 0;
    }
    if (fl) {
        ra = to_float(g, ra, ta, e->line, e->col);
        rb = to_float(g, rb, tb, e->line, e->col);
    }
    g->nreg = save;
    *reg = alloc_reg(g, e->line, e->col);
    emit(g, arith_op(op, fl), *reg, ra, rb, 0);
    return fl ? FLOW_T_FLOAT : FLOW_T_INT;
}

/* Comparison as a value (bool in a register). */
static enum flow_type gen_compare_value(struct gen *g, const struct ast_expr *e, unsigned ra,
                                        enum flow_type ta, unsigned rb, enum flow_type tb,
                                        unsigned save, unsigned *reg)
{
    enum tok_kind op = e->bin.op;
    bool fl = false, tx = false;
    if (is_numeric(ta) && is_numeric(tb)) {
        fl = ta == FLOW_T_FLOAT || tb == FLOW_T_FLOAT;
    } else if (ta == tb && (ta == FLOW_T_TEXT || ta == FLOW_T_BOOL)) {
        tx = ta == FLOW_T_TEXT;
        if (op != T_EQ && op != T_NE) {
            gerr(g, e->line, e->col, "%s values compare only with == and !=", type_name(ta));
            return 0;
        }
    } else {
        gerr(g, e->line, e->col, "cannot compare %s with %s", type_name(ta), type_name(tb));
        return 0;
    }
    if (fl) {
        ra = to_float(g, ra, ta, e->line, e->col);
        rb = to_float(g, rb, tb, e->line, e->col);
    }
    if (op == T_GT || op == T_GE) { /* a > b == b < a */
        unsigned t = ra;
        ra = rb;
        rb = t;
        op = op == T_GT ? T_LT : T_LE;
    }
    enum vm_op vop;
    if (tx)
        vop = op == T_EQ ? OP_TEQ : OP_TNE;
    else if (fl)
        vop = op == T_EQ ? OP_FEQ : op == T_NE ? OP_FNE : op == T_LT ? OP_FLT : OP_FLE;
    else
        vop = op == T_EQ ? OP_EQ : op == T_NE ? OP_NE : op == T_LT ? OP_LT : OP_LE;
    g->nreg = save;
    *reg = alloc_reg(g, e->line, e->col);
    emit(g, vop, *reg, ra, rb, 0);
    return FLOW_T_BOOL;
}

static enum flow_type gx(struct gen *g, const struct ast_expr *e, unsigned *reg)
{
    unsigned save = g->nreg;
    assert(e->depth >= 1 && e->depth <= FLOW_EXPR_DEPTH_MAX); /* bounds this recursion */
    switch (e->kind) {
    case EX_INT:
        *reg = alloc_reg(g, e->line, e->col);
        emit_int(g, *reg, e->ival);
        return FLOW_T_INT;
    case EX_FLOAT:
        *reg = alloc_reg(g, e->line, e->col);
        emit_float(g, *reg, e->fval);
        return FLOW_T_FLOAT;
    case EX_BOOL:
        *reg = alloc_reg(g, e->line, e->col);
        emit(g, OP_LDI, *reg, 0, 0, e->bval);
        return FLOW_T_BOOL;
    case EX_TEXT:
        *reg = alloc_reg(g, e->line, e->col);
        emit(g, OP_LDT, *reg, 0, 0, (int32_t)add_tconst(g, e->sval));
        g->text_bound = (unsigned)strlen(e->sval);
        return FLOW_T_TEXT;
    case EX_REF:
        return gx_ref(g, e, reg);
    case EX_UNARY: {
        unsigned r;
        enum flow_type t = gx(g, e->un.e, &r);
        if (!t)
            return 0;
        if (e->un.op_not) {
            if (t != FLOW_T_BOOL) {
                gerr(g, e->line, e->col, "'not' needs a bool, not %s", type_name(t));
                return 0;
            }
        } else if (!is_numeric(t)) {
            gerr(g, e->line, e->col, "'-' needs a number, not %s", type_name(t));
            return 0;
        }
        g->nreg = save;
        *reg = alloc_reg(g, e->line, e->col);
        emit(g, e->un.op_not ? OP_NOT : t == FLOW_T_FLOAT ? OP_FNEG : OP_NEG, *reg, r, 0, 0);
        return t;
    }
    case EX_BINARY: {
        if (e->bin.logic) {
            /* value of and/or: 0, then 1 unless the condition is false */
            unsigned errors = g->d->count;
            *reg = alloc_reg(g, e->line, e->col);
            struct label lf = { -1 };
            emit(g, OP_LDI, *reg, 0, 0, 0);
            gen_cond(g, e, false, &lf);
            emit(g, OP_LDI, *reg, 0, 0, 1);
            bind(g, &lf);
            g->nreg = save + 1;
            return g->d->count == errors ? FLOW_T_BOOL : 0;
        }
        unsigned ra, rb;
        enum flow_type ta = gx(g, e->bin.l, &ra);
        enum flow_type tb = gx(g, e->bin.r, &rb);
        if (!ta || !tb)
            return 0;
        /* `x + small constant` */
        if (e->bin.op == T_PLUS && ta == FLOW_T_INT && e->bin.r->kind == EX_INT &&
            e->bin.r->ival >= INT32_MIN && e->bin.r->ival <= INT32_MAX) {
            g->code.n -= sizeof(struct vm_insn); /* drop the LDI of the constant */
            g->nreg = save;
            *reg = alloc_reg(g, e->line, e->col);
            emit(g, OP_ADDI, *reg, ra, 0, (int32_t)e->bin.r->ival);
            return FLOW_T_INT;
        }
        if (is_cmp_tok(e->bin.op))
            return gen_compare_value(g, e, ra, ta, rb, tb, save, reg);
        return gen_arith(g, e, e->bin.op, ra, ta, rb, tb, save, reg);
    }
    }
    return 0;
}

/* ---- conditions ---------------------------------------------------------------------- */

static bool k16_of(const struct ast_expr *e, int64_t *k)
{
    if (e->kind != EX_INT || e->ival < INT16_MIN || e->ival > INT16_MAX)
        return false;
    *k = e->ival;
    return true;
}

static unsigned k16_lo(int64_t k)
{
    return (unsigned)((uint16_t)k & 0xffu);
}

static unsigned k16_hi(int64_t k)
{
    return (unsigned)((uint16_t)k >> 8);
}

/* Operands of a comparison, evaluated: left in (r[0], t[0]), right in (r[1], t[1]). */
struct cmp_operands {
    unsigned r[2];
    enum flow_type t[2];
};

enum cond_imm { COND_IMM_DONE, COND_IMM_NO_SHAPE, COND_IMM_EVALUATED };

/* `int_expr CMP constant` (either side a 16-bit constant): one fused compare-and-branch,
 * COND_IMM_DONE. COND_IMM_NO_SHAPE when the shape does not apply (nothing emitted). When
 * the other side turns out not to be an int, COND_IMM_EVALUATED with both operands
 * evaluated into *ops for the general path: compiling that side again there would double
 * the work at every level of a nested condition. */
static enum cond_imm gen_cond_imm(struct gen *g, const struct ast_expr *e, bool jump_if,
                                  struct label *l, struct cmp_operands *ops)
{
    int64_t k;
    enum tok_kind op = e->bin.op;
    const struct ast_expr *var;
    unsigned var_side;
    if (k16_of(e->bin.r, &k)) {
        var = e->bin.l;
        var_side = 0;
    } else if (k16_of(e->bin.l, &k)) {
        var = e->bin.r;
        var_side = 1;
        op = op == T_LT ? T_GT : op == T_LE ? T_GE : op == T_GT ? T_LT : op == T_GE ? T_LE : op;
    } else {
        return COND_IMM_NO_SHAPE;
    }
    unsigned save = g->nreg, ra = 0;
    enum flow_type t = gx(g, var, &ra);
    if (t != FLOW_T_INT) {
        /* not an int (or an error, already reported): the constant joins it in a register */
        ops->r[var_side] = ra;
        ops->t[var_side] = t;
        ops->r[1 - var_side] = alloc_reg(g, e->line, e->col);
        ops->t[1 - var_side] = FLOW_T_INT;
        emit_int(g, ops->r[1 - var_side], k);
        return COND_IMM_EVALUATED;
    }
    if (jump_if)
        op = op == T_LT   ? T_GE
             : op == T_LE ? T_GT
             : op == T_GT ? T_LE
             : op == T_GE ? T_LT
             : op == T_EQ ? T_NE
                          : T_EQ;
    enum vm_op vop = op == T_LT   ? OP_JLTI
                     : op == T_LE ? OP_JLEI
                     : op == T_GT ? OP_JGTI
                     : op == T_GE ? OP_JGEI
                     : op == T_EQ ? OP_JEQI
                                  : OP_JNEI;
    unsigned at = emit(g, vop, ra, k16_lo(k), k16_hi(k), l->head);
    if (!g->code.oom)
        l->head = (int)at;
    g->nreg = save;
    return COND_IMM_DONE;
}

/* Jump to l when e evaluates to jump_if; fall through otherwise. */
static void gen_cond(struct gen *g, const struct ast_expr *e, bool jump_if, struct label *l)
{
    unsigned save = g->nreg;
    assert(e->depth >= 1 && e->depth <= FLOW_EXPR_DEPTH_MAX); /* bounds this recursion */
    if (e->kind == EX_UNARY && e->un.op_not) {
        gen_cond(g, e->un.e, !jump_if, l);
        return;
    }
    if (e->kind == EX_BINARY && e->bin.logic) {
        bool is_and = e->bin.logic == 1;
        if (is_and != jump_if) {
            gen_cond(g, e->bin.l, jump_if, l);
            gen_cond(g, e->bin.r, jump_if, l);
        } else {
            struct label skip = { -1 };
            gen_cond(g, e->bin.l, !jump_if, &skip);
            gen_cond(g, e->bin.r, jump_if, l);
            bind(g, &skip);
        }
        return;
    }
    if (e->kind == EX_BINARY && is_cmp_tok(e->bin.op)) {
        struct cmp_operands ops;
        enum cond_imm imm = gen_cond_imm(g, e, jump_if, l, &ops);
        if (imm == COND_IMM_DONE)
            return;
        if (imm == COND_IMM_NO_SHAPE) {
            ops.t[0] = gx(g, e->bin.l, &ops.r[0]);
            ops.t[1] = gx(g, e->bin.r, &ops.r[1]);
        }
        unsigned ra = ops.r[0], rb = ops.r[1];
        enum flow_type ta = ops.t[0], tb = ops.t[1];
        if (!ta || !tb) {
            g->nreg = save;
            return;
        }
        if (ta == tb && (ta == FLOW_T_INT || ta == FLOW_T_BOOL) &&
            (ta == FLOW_T_INT || e->bin.op == T_EQ || e->bin.op == T_NE)) {
            enum tok_kind op = e->bin.op;
            if (op == T_GT || op == T_GE) {
                unsigned t = ra;
                ra = rb;
                rb = t;
                op = op == T_GT ? T_LT : T_LE;
            }
            enum vm_op vop;
            if (!jump_if) {
                vop = op == T_LT ? OP_JLT : op == T_LE ? OP_JLE : op == T_EQ ? OP_JEQ : OP_JNE;
            } else {
                vop = op == T_LT ? OP_JLE : op == T_LE ? OP_JLT : op == T_EQ ? OP_JNE : OP_JEQ;
                if (op == T_LT || op == T_LE) {
                    unsigned t = ra;
                    ra = rb;
                    rb = t;
                }
            }
            emit_jump(g, l, vop, ra, rb);
            g->nreg = save;
            return;
        }
        unsigned r;
        if (gen_compare_value(g, e, ra, ta, rb, tb, save, &r))
            emit_jump(g, l, jump_if ? OP_JNZ : OP_JZ, r, 0);
        g->nreg = save;
        return;
    }
    unsigned r;
    enum flow_type t = gx(g, e, &r);
    if (t && t != FLOW_T_BOOL)
        gerr(g, e->line, e->col, "condition must be bool, not %s", type_name(t));
    else if (t)
        emit_jump(g, l, jump_if ? OP_JNZ : OP_JZ, r, 0);
    g->nreg = save;
}

/* ---- statements ---------------------------------------------------------------------- */

static bool gen_stmts(struct gen *g, const struct ast_stmt *s);

/* Convert value (r, t) for a destination of type `want`; false (with an error) if it
 * does not fit. */
static bool coerce(struct gen *g, unsigned *r, enum flow_type t, enum flow_type want, unsigned line,
                   unsigned col, const char *what)
{
    if (t == want)
        return true;
    if (t == FLOW_T_INT && want == FLOW_T_FLOAT) {
        *r = to_float(g, *r, t, line, col);
        return true;
    }
    gerr(g, line, col, "%s is %s, not %s%s", what, type_name(want), type_name(t),
         t == FLOW_T_FLOAT && want == FLOW_T_INT ? " (use int(...))" : "");
    return false;
}

static void store_var(struct gen *g, unsigned idx, unsigned r)
{
    const struct ast_var *v = g->var[idx];
    int32_t off = (int32_t)g->var_off[idx];
    if (v->t.type == FLOW_T_TEXT)
        emit(g, OP_STTX, r, v->t.text_cap, 0, off);
    else
        emit(g, v->t.type == FLOW_T_BOOL ? OP_ST8 : OP_ST64, r, 0, 0, off);
}

static void gen_assign(struct gen *g, const struct ast_stmt *s)
{
    enum sym_kind k = 0;
    int idx = find_sym(g, s->name, &k);
    if (idx < 0 || k != SYM_VAR) {
        if (strcmp(s->name, "id") == 0 || strcmp(s->name, "now") == 0 ||
            strcmp(s->name, "result") == 0)
            gerr(g, s->name_line, s->name_col, "cannot assign to '%s'", s->name);
        else if (idx < 0)
            gerr(g, s->name_line, s->name_col, "unknown variable '%s'", s->name);
        else
            gerr(g, s->name_line, s->name_col, "cannot assign to %s '%s'",
                 k == SYM_SIGNAL  ? "signal"
                 : k == SYM_QUEUE ? "queue"
                                  : "activity",
                 s->name);
        return;
    }
    const struct ast_var *v = g->var[idx];
    unsigned save = g->nreg, r;
    char what[64];
    snprintf(what, sizeof(what), "variable '%s'", s->name);
    int64_t kc;
    int32_t off = (int32_t)g->var_off[idx];
    if (v->t.type == FLOW_T_INT && s->assign_op == T_ASSIGN && k16_of(s->expr, &kc)) {
        emit(g, OP_STMI, 0, k16_lo(kc), k16_hi(kc), off);
        return;
    }
    if (v->t.type == FLOW_T_INT && (s->assign_op == T_PLUSEQ || s->assign_op == T_MINUSEQ) &&
        k16_of(s->expr, &kc) && kc != INT16_MIN) {
        kc = s->assign_op == T_PLUSEQ ? kc : -kc;
        emit(g, OP_ADDMI, 0, k16_lo(kc), k16_hi(kc), off);
        return;
    }
    if (v->t.type == FLOW_T_INT && s->assign_op == T_PLUSEQ) {
        enum flow_type t = gx(g, s->expr, &r);
        if (t == FLOW_T_INT)
            emit(g, OP_ADDM, r, 0, 0, off);
        else if (t)
            coerce(g, &r, t, v->t.type, s->expr->line, s->expr->col, what);
        g->nreg = save;
        return;
    }
    if (s->assign_op == T_ASSIGN) {
        enum flow_type t = gx(g, s->expr, &r);
        if (t && coerce(g, &r, t, v->t.type, s->expr->line, s->expr->col, what) &&
            (t != FLOW_T_TEXT || text_fits(g, s->expr, v->t.text_cap, what)))
            store_var(g, (unsigned)idx, r);
        g->nreg = save;
        return;
    }
    if (!is_numeric(v->t.type)) {
        gerr(g, s->line, s->col, "compound assignment needs a number; '%s' is %s", s->name,
             type_name(v->t.type));
        return;
    }
    unsigned rv = alloc_reg(g, s->line, s->col);
    emit(g, OP_LD64, rv, 0, 0, (int32_t)g->var_off[idx]);
    if (v->t.type == FLOW_T_INT && s->expr->kind == EX_INT &&
        (s->assign_op == T_PLUSEQ || s->assign_op == T_MINUSEQ) && s->expr->ival > INT32_MIN &&
        s->expr->ival <= INT32_MAX) {
        int32_t k32 = (int32_t)s->expr->ival;
        emit(g, OP_ADDI, rv, rv, 0, s->assign_op == T_PLUSEQ ? k32 : -k32);
        store_var(g, (unsigned)idx, rv);
        g->nreg = save;
        return;
    }
    unsigned rx;
    enum flow_type tx = gx(g, s->expr, &rx);
    if (!tx) {
        g->nreg = save;
        return;
    }
    enum flow_type t = gen_arith(g, s->expr, s->assign_op, rv, v->t.type, rx, tx, save, &r);
    if (t && coerce(g, &r, t, v->t.type, s->expr->line, s->expr->col, what))
        store_var(g, (unsigned)idx, r);
    g->nreg = save;
}

static void gen_run(struct gen *g, const struct ast_stmt *s)
{
    enum sym_kind k = 0;
    int idx = find_sym(g, s->name, &k);
    if (idx < 0 || k != SYM_ACT) {
        gerr(g, s->name_line, s->name_col, "unknown activity '%s'", s->name);
        return;
    }
    const struct ast_activity *a = g->act[idx];
    if (s->nargs != a->nparams) {
        gerr(g, s->name_line, s->name_col, "activity '%s' takes %u argument%s, not %u", a->name,
             a->nparams, a->nparams == 1 ? "" : "s", s->nargs);
        return;
    }
    unsigned save = g->nreg;
    unsigned base = g->nreg;
    for (unsigned i = 0; i < s->nargs; i++)
        alloc_reg(g, s->line, s->col);
    for (unsigned i = 0; i < s->nargs; i++) {
        unsigned inner = g->nreg, r;
        enum flow_type t = gx(g, s->args[i], &r);
        char what[64];
        snprintf(what, sizeof(what), "parameter '%s'", a->params[i].name);
        if (t && coerce(g, &r, t, a->params[i].type, s->args[i]->line, s->args[i]->col, what))
            emit(g, OP_MOV, base + i, r, 0, 0);
        g->nreg = inner;
    }
    emit(g, OP_RUN, 0, base, s->nargs, idx);
    g->nreg = save;
}

static int find_timer(const struct gen *g, unsigned row, const char *name)
{
    for (unsigned i = 0; i < g->ntimer; i++)
        if ((g->timer[i].row == row || g->timer[i].row == g->nstate) &&
            strcmp(g->timer[i].h->name, name) == 0)
            return (int)i;
    return -1;
}

static void gen_cancel(struct gen *g, const struct ast_stmt *s)
{
    int ti = find_timer(g, g->row, s->name);
    enum sym_kind k = 0;
    int idx = find_sym(g, s->name, &k);
    if (ti >= 0) {
        emit(g, OP_TCANCEL, 0, 0, 0, (int32_t)g->timer[ti].slot);
    } else if (idx >= 0 && k == SYM_ACT) {
        emit(g, OP_ACANCEL, 0, 0, 0, idx);
    } else {
        gerr(g, s->name_line, s->name_col, "'%s' is not a timer of %s nor an activity", s->name,
             g->row < g->nstate ? "this state" : "any:");
    }
}

static void gen_call_stmt(struct gen *g, const struct ast_stmt *s)
{
    const struct ast_expr *e = s->expr;
    enum sym_kind k = 0;
    int idx = e->ref.member ? find_sym(g, e->ref.name, &k) : -1;
    if (idx < 0 || k != SYM_QUEUE) {
        if (!e->ref.member)
            gerr(g, e->line, e->col, "the value of %s() is not used", e->ref.name);
        else
            gerr(g, e->line, e->col, "'%s' is not a queue", e->ref.name);
        return;
    }
    const struct ast_var *q = g->queue[idx];
    unsigned save = g->nreg, r;
    if (strcmp(e->ref.member, "push") == 0) {
        if (e->ref.nargs != 1) {
            gerr(g, e->line, e->col, "push() takes one argument");
            return;
        }
        enum flow_type t = gx(g, e->ref.args[0], &r);
        char what[64];
        snprintf(what, sizeof(what), "an item of queue '%s'", q->t.name);
        if (t && coerce(g, &r, t, q->t.type, e->ref.args[0]->line, e->ref.args[0]->col, what) &&
            (t != FLOW_T_TEXT || text_fits(g, e->ref.args[0], q->t.text_cap, what)))
            emit(g, OP_QPUSH, r, 0, 0, idx);
    } else if (strcmp(e->ref.member, "clear") == 0 && e->ref.nargs == 0) {
        emit(g, OP_QCLEAR, 0, 0, 0, idx);
    } else {
        gx(g, e, &r); /* pop() as a statement, or an error */
    }
    g->nreg = save;
}

/* `if` and its elif chain (an else block holding just one `if`), in a loop: a chain of
 * any length uses one frame. True when every branch ends the handler. */
static bool gen_if(struct gen *g, const struct ast_stmt *s)
{
    struct label lend = { -1 };
    bool all_end = true;
    for (;;) {
        assert(s->kind == ST_IF);
        struct label lelse = { -1 };
        gen_cond(g, s->expr, false, &lelse);
        bool then_ends = gen_stmts(g, s->then_body);
        all_end = all_end && then_ends;
        if (!s->else_body) {
            bind(g, &lelse);
            all_end = false;
            break;
        }
        if (!then_ends)
            emit_jump(g, &lend, OP_JMP, 0, 0);
        bind(g, &lelse);
        if (s->else_body->kind == ST_IF && !s->else_body->next) {
            s = s->else_body; /* elif */
            g->nreg = g->nfields;
            g->reg_overflow = false;
            continue;
        }
        all_end = gen_stmts(g, s->else_body) && all_end;
        break;
    }
    bind(g, &lend);
    return all_end;
}

/* Returns true when the statement ends the handler on every path. */
static bool gen_stmt(struct gen *g, const struct ast_stmt *s)
{
    bool enter = g->h && g->h->kind == HD_ENTER;
    switch (s->kind) {
    case ST_ASSIGN:
        gen_assign(g, s);
        return false;
    case ST_IF:
        return gen_if(g, s);
    case ST_RUN:
        gen_run(g, s);
        return false;
    case ST_CANCEL:
        gen_cancel(g, s);
        return false;
    case ST_GOTO: {
        int st = find_state(g, s->name);
        if (st < 0) {
            gerr(g, s->name_line, s->name_col, "unknown state '%s'", s->name);
        } else if (enter) {
            gerr(g, s->line, s->col, "'goto' is not allowed in 'on enter'");
        } else {
            g->go_edges[g->row][st] = true;
            emit(g, OP_GOTO, 0, 0, 0, st);
        }
        return true;
    }
    case ST_COMPLETE:
        if (enter)
            gerr(g, s->line, s->col, "'complete' is not allowed in 'on enter'");
        else
            emit(g, OP_COMPLETE, 0, 0, 0, 0);
        return true;
    case ST_CALL:
        gen_call_stmt(g, s);
        return false;
    case ST_PASS:
        return false;
    }
    return false;
}

static bool gen_stmts(struct gen *g, const struct ast_stmt *s)
{
    bool term = false, reported = false;
    for (; s; s = s->next) {
        if (term && !reported) {
            gerr(g, s->line, s->col, "unreachable statement after goto or complete");
            reported = true;
        }
        g->nreg = g->nfields;
        g->reg_overflow = false;
        term |= gen_stmt(g, s);
    }
    return term;
}

/* ---- handlers ------------------------------------------------------------------------ */

#define GEN_ROW_HANDLERS_MAX 256u

struct row_handler {
    const struct ast_handler *h;
    int trigger; /* -1: error, FB_ENTER: on enter */
    int sig;     /* signal index for signal handlers */
};

static unsigned timer_slot_of(const struct gen *g, const struct ast_handler *h, bool *found)
{
    for (unsigned i = 0; i < g->ntimer; i++)
        if (g->timer[i].h == h)
            return *found = true, g->timer[i].slot;
    *found = false;
    return 0;
}

static const char *trigger_desc(const struct ast_handler *h, char *buf, size_t cap)
{
    if (h->kind == HD_DONE || h->kind == HD_FAILED)
        snprintf(buf, cap, "on %s.%s", h->name, h->kind == HD_DONE ? "done" : "failed");
    else if (h->kind == HD_SIGNAL)
        snprintf(buf, cap, "on %s", h->name);
    else if (h->kind == HD_ENTER)
        snprintf(buf, cap, "on enter");
    else
        snprintf(buf, cap, "timer '%s'", h->name);
    return buf;
}

/* Resolve each handler's trigger and check duplicates. */
static unsigned resolve_row(struct gen *g, unsigned row, struct row_handler *out)
{
    const struct ast_state *const *blocks = row < g->nstate ? &g->state[row] : g->any;
    unsigned nblocks = row < g->nstate ? 1 : g->nany, n = 0;
    for (unsigned b = 0; b < nblocks; b++) {
        for (const struct ast_handler *h = blocks[b]->handlers; h; h = h->next) {
            struct row_handler rh = { .h = h, .trigger = -1, .sig = -1 };
            enum sym_kind k = 0;
            int idx = h->name ? find_sym(g, h->name, &k) : -1;
            bool found;
            switch (h->kind) {
            case HD_SIGNAL:
                if (idx >= 0 && k == SYM_SIGNAL)
                    rh.trigger = rh.sig = idx;
                else if (idx >= 0 && k == SYM_ACT)
                    gerr(g, h->name_line, h->name_col,
                         "'%s' is an activity: use 'on %s.done' or 'on %s.failed'", h->name,
                         h->name, h->name);
                else
                    gerr(g, h->name_line, h->name_col, "unknown signal '%s'", h->name);
                break;
            case HD_DONE:
            case HD_FAILED:
                if (idx >= 0 && k == SYM_ACT)
                    rh.trigger = (int)g->nsig + 2 * idx + (h->kind == HD_FAILED);
                else
                    gerr(g, h->name_line, h->name_col, "unknown activity '%s'", h->name);
                break;
            case HD_ENTER:
                if (row == g->nstate)
                    gerr(g, h->line, h->col, "'on enter' belongs in a state, not in any:");
                else
                    rh.trigger = FB_ENTER;
                break;
            default: {
                unsigned slot = timer_slot_of(g, h, &found);
                if (found)
                    rh.trigger = (int)(g->nsig + 2 * g->nact + slot);
                break;
            }
            }
            if (h->kind != HD_SIGNAL && h->kind != HD_DONE && h->kind != HD_FAILED && h->guard)
                gerr(g, h->guard->line, h->guard->col, "'when' only applies to 'on' handlers");
            if (rh.trigger >= 0) {
                for (unsigned i = 0; i < n; i++) {
                    if (out[i].trigger != rh.trigger || out[i].h->guard)
                        continue;
                    char desc[64];
                    trigger_desc(h, desc, sizeof(desc));
                    if (h->guard)
                        gerr(g, h->line, h->col,
                             "unreachable handler: '%s' at line %u has no 'when' and takes "
                             "every one",
                             desc, out[i].h->line);
                    else
                        gerr(g, h->line, h->col, "duplicate handler '%s' (first at line %u)", desc,
                             out[i].h->line);
                    rh.trigger = -1;
                    break;
                }
            }
            if (n == GEN_ROW_HANDLERS_MAX) {
                gerr(g, h->line, h->col, "more than %u handlers in one state",
                     GEN_ROW_HANDLERS_MAX);
                return n;
            }
            out[n++] = rh;
        }
    }
    return n;
}

/* Compile all handlers of `trigger` in `row` into one block; returns its index or -1. */
static int gen_block(struct gen *g, unsigned row, int trigger, const struct row_handler *rh,
                     unsigned n)
{
    unsigned start = pc(g), first_line = 0;
    bool any = false, unguarded = false;
    for (unsigned i = 0; i < n && !unguarded; i++) {
        if (rh[i].trigger != trigger)
            continue;
        const struct ast_handler *h = rh[i].h;
        if (!any)
            first_line = h->line;
        any = true;
        g->h = h;
        g->row = row;
        g->cur_signal = rh[i].sig;
        g->nfields = rh[i].sig >= 0 ? g->sig[rh[i].sig]->nfields : h->kind == HD_DONE ? 1 : 0;
        g->nreg = g->nfields;
        g->reg_overflow = false;
        struct label next = { -1 };
        if (h->guard)
            gen_cond(g, h->guard, false, &next);
        else
            unguarded = true;
        if (!gen_stmts(g, h->body))
            emit(g, OP_HALT, 0, 0, 0, 0);
        bind(g, &next);
    }
    if (!any)
        return -1;
    if (!unguarded)
        emit(g, OP_NOMATCH, 0, 0, 0, 0);
    struct fb_handler fh = { .code_start = start,
                             .code_len = pc(g) - start,
                             .state = row < g->nstate ? (uint16_t)row : FB_NONE,
                             .trigger = (uint16_t)trigger,
                             .line = first_line };
    buf_put(&g->handlers, &fh, sizeof(fh));
    g->h = NULL;
    return (int)g->nhandlers++;
}

static int gen_handlers(struct gen *g)
{
    unsigned ntrig = g->nsig + 2 * g->nact + g->nslots;
    g->entries = malloc(sizeof(int32_t) * (g->nstate + 1) * (ntrig ? ntrig : 1));
    struct row_handler *rh = malloc(sizeof(*rh) * GEN_ROW_HANDLERS_MAX);
    if (!g->entries || !rh) {
        free(rh);
        return -ENOMEM;
    }
    for (unsigned row = 0; row <= g->nstate; row++) {
        unsigned n = resolve_row(g, row, rh);
        for (unsigned t = 0; t < ntrig; t++)
            g->entries[row * ntrig + t] = gen_block(g, row, (int)t, rh, n);
        if (row < g->nstate)
            g->enter_handler[row] = gen_block(g, row, FB_ENTER, rh, n);
    }
    free(rh);
    /* reachability over goto edges; `any:` gotos leave every state */
    if (g->nstate) {
        unsigned queue[FLOW_STATES_MAX], head = 0, tail = 0;
        g->reachable[0] = true;
        queue[tail++] = 0;
        while (head < tail) {
            unsigned s = queue[head++];
            for (unsigned t = 0; t < g->nstate; t++)
                if ((g->go_edges[s][t] || g->go_edges[g->nstate][t]) && !g->reachable[t]) {
                    g->reachable[t] = true;
                    queue[tail++] = t;
                }
        }
        for (unsigned s = 0; s < g->nstate; s++)
            if (!g->reachable[s])
                gerr(g, g->state[s]->line, g->state[s]->col,
                     "state '%s' is unreachable: no goto leads to it from '%s'", g->state[s]->name,
                     g->state[0]->name);
    }
    return 0;
}

/* ---- blob ---------------------------------------------------------------------------- */

static void put_sect(struct buf *out, struct fb_header *h, enum fb_sect_id id, const void *p,
                     size_t bytes, uint32_t count)
{
    buf_put(out, NULL, (8 - out->n % 8) % 8);
    h->sect[id].off = (uint32_t)out->n;
    h->sect[id].count = count;
    if (bytes)
        buf_put(out, p, bytes);
}

static int build_blob(struct gen *g, uint8_t **blob, size_t *len)
{
    struct buf sig = { 0 }, fld = { 0 }, var = { 0 }, que = { 0 }, act = { 0 }, par = { 0 };
    struct buf tim = { 0 }, sta = { 0 }, out = { 0 };
    struct fb_header h = { .magic = FB_MAGIC,
                           .format = FLOW_BLOB_FORMAT,
                           .header_size = sizeof(struct fb_header) };
    h.version = g->wf->version;
    h.record_size = g->record_size;
    h.name = add_string(g, g->wf->name, strlen(g->wf->name));
    h.initial_state = 0;
    h.timer_slots = (uint16_t)g->nslots;
    h.timers_off = g->timers_off;
    h.acts_off = g->acts_off;
    h.data_off = g->data_off;
    h.ntriggers = g->nsig + 2 * g->nact + g->nslots;
    for (unsigned i = 0; i < g->nstate; i++) {
        struct fb_state s = { .name = add_string(g, g->state[i]->name, strlen(g->state[i]->name)),
                              .enter = g->enter_handler[i] };
        buf_put(&sta, &s, sizeof(s));
    }
    unsigned nfields = 0, nparams = 0;
    for (unsigned i = 0; i < g->nsig; i++) {
        const struct ast_signal *s = g->sig[i];
        struct fb_signal fs = { .name = add_string(g, s->name, strlen(s->name)),
                                .first_field = (uint16_t)nfields,
                                .nfields = (uint16_t)s->nfields };
        buf_put(&sig, &fs, sizeof(fs));
        for (unsigned f = 0; f < s->nfields; f++, nfields++) {
            struct fb_field ff = { .name =
                                       add_string(g, s->fields[f].name, strlen(s->fields[f].name)),
                                   .type = (uint8_t)s->fields[f].type,
                                   .text_cap = (uint8_t)s->fields[f].text_cap };
            buf_put(&fld, &ff, sizeof(ff));
        }
    }
    for (unsigned i = 0; i < g->nvar; i++) {
        const struct ast_var *v = g->var[i];
        struct fb_var fv = { .name = add_string(g, v->t.name, strlen(v->t.name)),
                             .type = (uint8_t)v->t.type,
                             .text_cap = (uint8_t)v->t.text_cap,
                             .offset = g->var_off[i] };
        fv.init = g->var_init[i];
        buf_put(&var, &fv, sizeof(fv));
    }
    for (unsigned i = 0; i < g->nqueue; i++) {
        const struct ast_var *q = g->queue[i];
        unsigned es = q->t.type == FLOW_T_BOOL   ? 1
                      : q->t.type == FLOW_T_TEXT ? 1 + q->t.text_cap
                                                 : 8;
        struct fb_queue fq = { .name = add_string(g, q->t.name, strlen(q->t.name)),
                               .type = (uint8_t)q->t.type,
                               .text_cap = (uint8_t)q->t.text_cap,
                               .cap = (uint8_t)q->queue_cap,
                               .elem_size = (uint8_t)es,
                               .offset = g->queue_off[i] };
        buf_put(&que, &fq, sizeof(fq));
    }
    for (unsigned i = 0; i < g->nact; i++) {
        const struct ast_activity *a = g->act[i];
        struct fb_act fa = { .name = add_string(g, a->name, strlen(a->name)),
                             .first_param = (uint16_t)nparams,
                             .nparams = (uint16_t)a->nparams,
                             .max_attempts = a->max_attempts,
                             .backoff_initial_ns = a->backoff_initial_ns,
                             .backoff_max_ns = a->backoff_max_ns,
                             .backoff_multiplier = a->backoff_multiplier,
                             .start_to_close_ns = a->start_to_close_ns,
                             .schedule_to_close_ns = a->schedule_to_close_ns };
        buf_put(&act, &fa, sizeof(fa));
        for (unsigned p = 0; p < a->nparams; p++, nparams++) {
            struct fb_param fp = { .name =
                                       add_string(g, a->params[p].name, strlen(a->params[p].name)),
                                   .type = (uint8_t)a->params[p].type };
            buf_put(&par, &fp, sizeof(fp));
        }
    }
    /* timers sorted by state, `any:` last */
    for (unsigned row = 0; row <= g->nstate; row++)
        for (unsigned i = 0; i < g->ntimer; i++) {
            if (g->timer[i].row != row)
                continue;
            const struct ast_handler *th = g->timer[i].h;
            struct fb_timer ft = { .name = add_string(g, th->name, strlen(th->name)),
                                   .state = row < g->nstate ? (uint16_t)row : FB_NONE,
                                   .slot = (uint16_t)g->timer[i].slot,
                                   .kind = th->kind == HD_AFTER   ? FB_AFTER
                                           : th->kind == HD_EVERY ? FB_EVERY
                                                                  : FB_SILENCE,
                                   .period_ns = (uint64_t)th->period_ns };
            buf_put(&tim, &ft, sizeof(ft));
        }
    int rc = -ENOMEM;
    bool oom = g->strings.oom || g->consts.oom || g->tconsts.oom || g->code.oom ||
               g->handlers.oom || sig.oom || fld.oom || var.oom || que.oom || act.oom || par.oom ||
               tim.oom || sta.oom;
    if (oom || g->d->count)
        goto out_free;
    buf_put(&out, &h, sizeof(h));
    struct fb_header *hp = &h;
    put_sect(&out, hp, FB_STRINGS, g->strings.p, g->strings.n, (uint32_t)g->strings.n);
    put_sect(&out, hp, FB_STATES, sta.p, sta.n, g->nstate);
    put_sect(&out, hp, FB_SIGNALS, sig.p, sig.n, g->nsig);
    put_sect(&out, hp, FB_FIELDS, fld.p, fld.n, nfields);
    put_sect(&out, hp, FB_VARS, var.p, var.n, g->nvar);
    put_sect(&out, hp, FB_QUEUES, que.p, que.n, g->nqueue);
    put_sect(&out, hp, FB_ACTS, act.p, act.n, g->nact);
    put_sect(&out, hp, FB_PARAMS, par.p, par.n, nparams);
    put_sect(&out, hp, FB_TIMERS, tim.p, tim.n, (uint32_t)(tim.n / sizeof(struct fb_timer)));
    put_sect(&out, hp, FB_HANDLERS, g->handlers.p, g->handlers.n, g->nhandlers);
    put_sect(&out, hp, FB_ENTRIES, g->entries, sizeof(int32_t) * (g->nstate + 1) * h.ntriggers,
             (g->nstate + 1) * h.ntriggers);
    put_sect(&out, hp, FB_CONSTS, g->consts.p, g->consts.n, (uint32_t)(g->consts.n / 8));
    put_sect(&out, hp, FB_TCONSTS, g->tconsts.p, g->tconsts.n,
             (uint32_t)(g->tconsts.n / sizeof(struct fb_tconst)));
    put_sect(&out, hp, FB_CODE, g->code.p, g->code.n, pc(g));
    buf_put(&out, NULL, (8 - out.n % 8) % 8);
    if (out.oom)
        goto out_free;
    h.blob_len = (uint32_t)out.n;
    memcpy(out.p, &h, sizeof(h));
    rc = fb_finalize(out.p, out.n);
    if (rc < 0) {
        gerr(g, g->wf->line, g->wf->col, "internal error: generated code failed validation");
        goto out_free;
    }
    *blob = out.p;
    *len = out.n;
    out.p = NULL;
    rc = 0;
out_free:
    free(sig.p), free(fld.p), free(var.p), free(que.p), free(act.p), free(par.p);
    free(tim.p), free(sta.p), free(out.p);
    return rc;
}

static bool code_too_long(const struct gen *g)
{
    return pc(g) > FLOW_CODE_MAX;
}

int flow_generate(const struct ast_workflow *wf, struct flow_diag *d, uint8_t **blob, size_t *len)
{
    struct gen *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->wf = wf;
    g->d = d;
    g->cur_signal = -1;
    add_string(g, "", 0);
    collect_decls(g);
    layout(g);
    int rc = gen_handlers(g);
    if (rc == 0 && code_too_long(g))
        gerr(g, wf->line, wf->col, "more than %u instructions", FLOW_CODE_MAX);
    if (rc == 0 && wf->name && d->count == 0)
        rc = build_blob(g, blob, len);
    else if (rc == 0)
        rc = d->count ? 0 : -EINVAL;
    free(g->code.p), free(g->consts.p), free(g->tconsts.p), free(g->strings.p);
    free(g->handlers.p), free(g->entries), free(g->const_index), free(g);
    return rc;
}
