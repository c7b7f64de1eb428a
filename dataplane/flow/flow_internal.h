/*
 * flow_internal.h — shared by the compiler (flow_lex.c, flow_parse.c, flow_gen.c), the
 * serialized form (flow_def.c) and the VM (vm.c). Not a public interface.
 *
 * The serialized definition ("blob") is described in flow_def.c; its structs are here so
 * that the code generator writes exactly what the loader validates and the VM reads. What
 * the runtime shares with the VM (record header, signal plans, register file) is in the
 * public flow_vm.h.
 */
#ifndef SF_FLOW_INTERNAL_H
#define SF_FLOW_INTERNAL_H

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "flow_vm.h" /* record header, signal plans, registers: the runtime's part */
#include "flow.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the blob is little-endian");

/* ---- instruction set ------------------------------------------------------------------
 * Fixed 8-byte instructions: op, a, b, c (registers or small operands), imm (int32: record
 * offset, constant index, forward jump distance, table index). Jumps are relative to the
 * next instruction and only forward (imm >= 0): every handler is a DAG, which bounds it. */
enum vm_op {
    OP_HALT = 0, /* end of handler */
    OP_NOMATCH,  /* no guard matched: fall back to the `any:` handler of the trigger */
    OP_LDI,      /* a = imm (int32, sign-extended) */
    OP_LDK,      /* a = consts[imm] (64-bit int or float bits) */
    OP_LDT,      /* a = text constant tconsts[imm] */
    OP_LD64,     /* a = record[imm..+8] */
    OP_LD8,      /* a = record[imm] (bool) */
    OP_LDTX,     /* a = text view of record text var at imm, capacity b */
    OP_ST64,     /* record[imm..+8] = a */
    OP_ST8,      /* record[imm] = a != 0 */
    OP_STTX,     /* record text var at imm (capacity b) = a, truncated */
    OP_ID,       /* a = workflow id (text) */
    OP_NOW,      /* a = event time ns (int) */
    OP_MOV,      /* a = b */
    OP_ADD,      /* a = b + c (int, wraps) */
    OP_SUB,
    OP_MUL,
    OP_DIV,  /* a = c == 0 ? 0 : b / c (INT64_MIN / -1 wraps) */
    OP_MOD,  /* a = c == 0 ? 0 : b % c */
    OP_ADDI, /* a = b + imm */
    OP_NEG,  /* a = -b (wraps) */
    OP_ABS,  /* a = |b| (INT64_MIN stays) */
    OP_MIN,
    OP_MAX,
    OP_FADD, /* float */
    OP_FSUB,
    OP_FMUL,
    OP_FDIV,
    OP_FNEG,
    OP_FABS,
    OP_FMIN, /* b < c ? b : c */
    OP_FMAX,
    OP_I2F, /* a = (double)b */
    OP_F2I, /* a = saturate(trunc(b)), NaN -> 0 */
    OP_EQ,  /* int/bool compare, a = bool */
    OP_NE,
    OP_LT,
    OP_LE,
    OP_FEQ,
    OP_FNE,
    OP_FLT,
    OP_FLE,
    OP_TEQ, /* text */
    OP_TNE,
    OP_NOT, /* a = !b */
    OP_JMP, /* pc += imm */
    OP_JZ,  /* if a == 0: pc += imm */
    OP_JNZ,
    OP_JLT,   /* if !(a < b): pc += imm   (fused int compare-and-branch) */
    OP_JLE,   /* if !(a <= b) */
    OP_JEQ,   /* if !(a == b) */
    OP_JNE,   /* if !(a != b) */
    OP_ADDM,  /* record int at imm += a            (fused load-add-store) */
    OP_ADDMI, /* record int at imm += k16          (k16 = int16 of b | c << 8) */
    OP_STMI,  /* record int at imm = k16 */
    OP_JLTI,  /* if !(a < k16): pc += imm          (compare with a constant) */
    OP_JLEI,
    OP_JGTI,
    OP_JGEI,
    OP_JEQI,
    OP_JNEI,
    OP_QPUSH,    /* queue imm push a (dropped when full) */
    OP_QPOP,     /* a = pop queue imm (zero value when empty) */
    OP_QFRONT,   /* a = front of queue imm (zero value when empty) */
    OP_QLEN,     /* a = length of queue imm */
    OP_QCLEAR,   /* empty queue imm */
    OP_APEND,    /* a = activity imm has a pending run */
    OP_RUN,      /* run activity imm with args in regs b .. b+c-1 */
    OP_ACANCEL,  /* cancel activity imm's pending run */
    OP_TCANCEL,  /* disarm timer slot imm */
    OP_GOTO,     /* leave the state, enter state imm, run its `on enter`; ends handler */
    OP_COMPLETE, /* disarm timers, complete; ends handler */
    OP_COUNT_
};

struct vm_insn {
    uint8_t op, a, b, c;
    int32_t imm;
};
_Static_assert(sizeof(struct vm_insn) == 8, "fixed-width instructions");

/* ---- serialized definition (see flow_def.c for the layout and validity rules) --------- */

#define FB_MAGIC 0x46445346u /* "SFDF" */
#define FB_NONE  0xFFFFu     /* "no state" in u16 state fields: the `any:` row */
#define FB_ENTER 0xFFFFu     /* trigger of `on enter` handler blocks */

enum fb_sect_id {
    FB_STRINGS = 0, /* NUL-terminated names and text constants (bytes) */
    FB_STATES,
    FB_SIGNALS,
    FB_FIELDS,
    FB_VARS,
    FB_QUEUES,
    FB_ACTS,
    FB_PARAMS,
    FB_TIMERS,
    FB_HANDLERS,
    FB_ENTRIES, /* int32 handler index or -1, (nstates + 1) x ntriggers, last row = any */
    FB_CONSTS,  /* uint64 */
    FB_TCONSTS,
    FB_CODE,
    FB_SECT_COUNT
};

struct fb_sect {
    uint32_t off, count;
};

struct fb_header {
    uint32_t magic;
    uint16_t format;
    uint16_t header_size;
    uint32_t blob_len;
    uint32_t checksum; /* CRC32C of the blob with this field zero */
    uint32_t version;
    uint32_t record_size;
    uint32_t name; /* string offset */
    uint16_t initial_state;
    uint16_t timer_slots;
    uint32_t timers_off; /* record layout: u64 due per slot */
    uint32_t acts_off;   /* struct vm_act_slot per activity */
    uint32_t data_off;   /* variables and queues start here */
    uint32_t cmds_max;
    uint32_t ntriggers; /* nsignals + 2 * nacts + timer_slots */
    uint32_t reserved[2];
    struct fb_sect sect[FB_SECT_COUNT];
};

struct fb_state {
    uint32_t name;
    int32_t enter; /* handler index of `on enter`, or -1 */
};

struct fb_signal {
    uint32_t name;
    uint16_t first_field, nfields;
};

struct fb_field {
    uint32_t name;
    uint8_t type;
    uint8_t text_cap; /* text(N): N; 0: declared `text` or `id`, no bound (and non-text) */
    uint8_t pad[2];
};

struct fb_var {
    uint32_t name;
    uint8_t type, text_cap;
    uint16_t pad;
    uint32_t offset;
    uint32_t pad2;
    uint64_t init; /* scalar bits; text: tconst index */
};

struct fb_queue {
    uint32_t name;
    uint8_t type, text_cap, cap, elem_size;
    uint32_t offset; /* u8 head, u8 count, then (cap + 1) * elem_size bytes (vm.c) */
    uint32_t pad;
};

struct fb_act {
    uint32_t name;
    uint16_t first_param, nparams;
    uint32_t max_attempts;
    uint32_t pad;
    uint64_t backoff_initial_ns, backoff_max_ns;
    double backoff_multiplier;
    uint64_t start_to_close_ns, schedule_to_close_ns;
};

struct fb_param {
    uint32_t name;
    uint8_t type;
    uint8_t pad[3];
};

enum fb_timer_kind { FB_AFTER = 1, FB_EVERY = 2, FB_SILENCE = 3 };

struct fb_timer {
    uint32_t name;
    uint16_t state; /* FB_NONE: `any:` */
    uint16_t slot;
    uint8_t kind;
    uint8_t pad[7];
    uint64_t period_ns;
};

struct fb_handler {
    uint32_t code_start, code_len;
    uint32_t bound, cmds;
    uint16_t state;   /* FB_NONE: `any:` */
    uint16_t trigger; /* FB_ENTER for `on enter` */
    uint32_t line;
};

struct fb_tconst {
    uint32_t off, len; /* into FB_STRINGS */
};

/* Record layout: the header is struct vm_rec_header (flow_vm.h); one of these per activity
 * at acts_off. */
struct vm_act_slot {
    uint32_t seq; /* run number of the latest run */
    uint16_t attempts;
    uint8_t pending;
    uint8_t reserved;
};
_Static_assert(sizeof(struct vm_act_slot) == 8, "activity slot");

/* The loaded form: the blob plus pointers into it and tables derived at load. */
struct flow_def {
    uint8_t *blob;
    size_t blob_len;
    const struct fb_header *hdr;
    const char *strings;
    uint32_t strings_len;
    const struct fb_state *states;
    const struct fb_signal *signals;
    const struct fb_field *fields;
    const struct fb_var *vars;
    const struct fb_queue *queues;
    const struct fb_act *acts;
    const struct fb_param *params;
    const struct fb_timer *timers;
    const struct fb_handler *handlers;
    const int32_t *entries;
    const uint64_t *consts;
    const struct fb_tconst *tconsts;
    const struct vm_insn *code;
    unsigned nstates, nsignals, nfields, nvars, nqueues, nacts, nparams, ntimers, nhandlers;
    unsigned nconsts, ntconsts, ncode, nslots, ntriggers;
    /* derived: timers of state s are timers[tfirst[s] .. tfirst[s] + tcount[s]), s ==
     * nstates for `any:`; silence[s]: timer index of that row's silence timer or -1;
     * slot_timer[s * nslots + slot]: timer index or -1. */
    uint16_t tfirst[FLOW_STATES_MAX + 1], tcount[FLOW_STATES_MAX + 1];
    int16_t silence[FLOW_STATES_MAX + 1];
    int16_t *slot_timer;
    /* entry_code[row * ntriggers + trigger]: first instruction of the handler block, or
     * NULL (derived from entries; rows = states then any) */
    const struct vm_insn **entry_code;
    uint8_t *init_record;         /* record image after vm_record_init (created_ns 0) */
    struct fb_sig_plan *sig_plan; /* [nsignals], 64-byte aligned */
    /* copies of header fields the VM reads on every call, and each row's silence timer as
     * (slot or -1, period) so that the re-arm after a signal needs no timer lookup */
    uint32_t timers_off, acts_off, cmds_max;
    int16_t silence_slot[FLOW_STATES_MAX + 1];
    uint64_t silence_period[FLOW_STATES_MAX + 1];
};

/** Index of the signal named name[0..len), or -1: same answer as flow_def_signal_index. */
static inline int fb_signal_find(const struct flow_def *d, const char *name, size_t len)
{
    return fb_sig_plan_find(d->sig_plan, d->nsignals, name, len);
}

/** Validate a blob and build *out (flow_def.c). */
int fb_load(const void *blob, size_t len, struct flow_def **out);
/** Recompute bounds/cmds of every handler and cmds_max of a blob in place, then its
 *  checksum (used by the code generator). Returns 0 or -EINVAL when the blob is invalid. */
int fb_finalize(uint8_t *blob, size_t len);
const char *fb_trigger_text(const struct flow_def *def, unsigned trigger, char *buf, size_t cap);

/* ---- compiler: diagnostics --------------------------------------------------------------- */

struct flow_diag {
    const char *file;
    struct flow_errors *errs; /* may be NULL */
    unsigned count;           /* all errors, stored or not */
};

void flow_diag_add(struct flow_diag *d, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- compiler: tokens ---------------------------------------------------------------------- */

enum tok_kind {
    T_EOF = 0,
    T_NEWLINE,
    T_INDENT,
    T_DEDENT,
    T_IDENT,
    T_INT,
    T_FLOAT,
    T_DURATION,
    T_STRING,
    T_LPAREN,
    T_RPAREN,
    T_LBRACK,
    T_RBRACK,
    T_COMMA,
    T_COLON,
    T_DOT,
    T_DOTDOT,
    T_ASSIGN,
    T_PLUSEQ,
    T_MINUSEQ,
    T_STAREQ,
    T_SLASHEQ,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_PERCENT,
    T_ERROR, /* already reported */
};

struct tok {
    enum tok_kind kind;
    unsigned line, col;
    const char *start; /* source text of the token */
    unsigned len;
    int64_t ival; /* T_INT, T_DURATION (ns) */
    double fval;  /* T_FLOAT */
    char *sval;   /* T_STRING decoded (arena), T_IDENT copy */
};

struct flow_arena;
void *flow_arena_alloc(struct flow_arena *a, size_t n);

struct tok_list {
    struct tok *v;
    unsigned n, cap;
};

/** Tokenize src into toks (arena-backed strings). Errors go to d. Returns 0 or -ENOMEM. */
int flow_lex(const char *src, size_t len, struct flow_arena *arena, struct flow_diag *d,
             struct tok_list *toks);
const char *flow_tok_name(enum tok_kind k);

/* ---- compiler: syntax tree ------------------------------------------------------------------ */

enum ex_kind { EX_INT, EX_FLOAT, EX_BOOL, EX_TEXT, EX_REF, EX_UNARY, EX_BINARY };

struct ast_expr {
    enum ex_kind kind;
    unsigned line, col;
    enum flow_type type; /* set by the checker; 0 when it has an error */
    unsigned depth;      /* 1 + the deepest operand's; <= FLOW_EXPR_DEPTH_MAX (parser) */
    union {
        int64_t ival;
        double fval;
        bool bval;
        const char *sval;
        struct { /* name, name.member, name(args), name.member(args) */
            const char *name;
            const char *member;
            bool call;
            unsigned nargs;
            struct ast_expr **args;
        } ref;
        struct {
            enum tok_kind op; /* T_MINUS, T_IDENT("not") as T_ERROR placeholder: see op_not */
            bool op_not;
            struct ast_expr *e;
        } un;
        struct {
            enum tok_kind op; /* arithmetic/comparison token; and/or in logic */
            int logic;        /* 0, 1 = and, 2 = or */
            struct ast_expr *l, *r;
        } bin;
    };
};

enum st_kind { ST_ASSIGN, ST_IF, ST_RUN, ST_CANCEL, ST_GOTO, ST_COMPLETE, ST_CALL, ST_PASS };

struct ast_block;

struct ast_stmt {
    enum st_kind kind;
    unsigned line, col;
    struct ast_stmt *next;
    const char *name; /* assign target, run/cancel/goto target */
    unsigned name_line, name_col;
    enum tok_kind assign_op; /* T_ASSIGN, T_PLUSEQ, ... */
    struct ast_expr *expr;   /* assign value, if condition, call (ST_CALL) */
    unsigned nargs;          /* run */
    struct ast_expr **args;
    struct ast_stmt *then_body, *else_body;
};

enum hd_kind { HD_SIGNAL, HD_DONE, HD_FAILED, HD_AFTER, HD_EVERY, HD_SILENCE, HD_ENTER };

struct ast_handler {
    enum hd_kind kind;
    unsigned line, col;
    const char *name; /* signal or activity; timer name (`as`) */
    unsigned name_line, name_col;
    struct ast_expr *guard; /* `when` */
    int64_t period_ns;      /* timers */
    struct ast_stmt *body;
    struct ast_handler *next;
};

struct ast_state {
    const char *name; /* NULL for `any:` */
    unsigned line, col;
    struct ast_handler *handlers;
    struct ast_state *next;
};

struct ast_typed_name {
    const char *name;
    unsigned line, col;
    enum flow_type type;
    unsigned text_cap; /* text(N) */
};

struct ast_signal {
    const char *name;
    unsigned line, col;
    unsigned nfields;
    struct ast_typed_name fields[FLOW_FIELDS_MAX];
    struct ast_signal *next;
};

struct ast_var {
    struct ast_typed_name t;
    bool is_queue;
    unsigned queue_cap;
    struct ast_expr *init; /* literal or NULL */
    struct ast_var *next;
};

struct ast_activity {
    const char *name;
    unsigned line, col;
    unsigned nparams;
    struct ast_typed_name params[FLOW_PARAMS_MAX];
    uint32_t max_attempts;
    uint64_t backoff_initial_ns, backoff_max_ns;
    double backoff_multiplier;
    uint64_t start_to_close_ns, schedule_to_close_ns;
    struct ast_activity *next;
};

struct ast_workflow {
    const char *name;
    unsigned line, col;
    uint32_t version;
    struct ast_signal *signals;
    struct ast_var *vars; /* variables and queues in declaration order */
    struct ast_activity *acts;
    struct ast_state *states; /* states and `any:` blocks in order */
};

/** Parse tokens into *wf (arena). Syntax errors go to d; parsing recovers at the next
 *  line so that later errors are found too. Returns 0 or -ENOMEM. */
int flow_parse(const struct tok_list *toks, struct flow_arena *arena, struct flow_diag *d,
               struct ast_workflow *wf);

/** Check types and names, lay out the record, generate code and build the blob
 *  (malloc-ed, blob and len). Errors go to d; on errors no blob. Returns 0 or -ENOMEM. */
int flow_generate(const struct ast_workflow *wf, struct flow_diag *d, uint8_t **blob, size_t *len);

#endif /* SF_FLOW_INTERNAL_H */
