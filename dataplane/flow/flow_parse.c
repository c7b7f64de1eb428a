/*
 * flow_parse.c — recursive-descent parser of .flow token streams into the syntax tree.
 *
 * The grammar is in docs/flow.md. Errors are reported with the position of the offending
 * token; the parser then skips to the end of the line (and any block opened under it) and
 * carries on, so that one compile reports as many errors as it can.
 *
 * Bounded recursion: expressions nest at most FLOW_EXPR_NEST_MAX levels ('(', '-', 'not',
 * call arguments), their trees are at most FLOW_EXPR_DEPTH_MAX deep (long operator chains
 * are built in loops but the tree they make is as deep as the chain is long, and the code
 * generator walks it recursively), and blocks nest at most FLOW_BLOCK_NEST_MAX levels. An
 * `elif` chain is built in a loop. Going past a limit is an ordinary compile error.
 */
#include <errno.h>
#include <string.h>

#include "flow_internal.h"

struct parser {
    const struct tok *t;
    unsigned n, i;
    struct flow_arena *arena;
    struct flow_diag *d;
    bool oom;
    unsigned last_err_line;
    unsigned expr_nest;  /* parse_expr/unary/not frames active, <= FLOW_EXPR_NEST_MAX */
    unsigned block_nest; /* parse_block frames active, <= FLOW_BLOCK_NEST_MAX */
};

static const char *const parse_keywords[] = {
    "workflow", "version", "signal", "var",      "queue", "activity", "state", "any",  "on",
    "when",     "after",   "every",  "silence",  "as",    "enter",    "if",    "elif", "else",
    "run",      "cancel",  "goto",   "complete", "pass",  "and",      "or",    "not",  "true",
    "false",    "id",      "now",    "result",   "int",   "float",    "bool",  "text",
};

static bool parse_is_keyword(const char *s)
{
    for (unsigned i = 0; i < sizeof(parse_keywords) / sizeof(parse_keywords[0]); i++)
        if (strcmp(s, parse_keywords[i]) == 0)
            return true;
    return false;
}

static const struct tok *cur(const struct parser *p)
{
    return &p->t[p->i];
}

static const struct tok *peek(const struct parser *p, unsigned k)
{
    unsigned j = p->i + k;
    return &p->t[j < p->n ? j : p->n - 1];
}

static void advance(struct parser *p)
{
    if (p->i + 1 < p->n)
        p->i++;
}

static bool at_kw(const struct parser *p, const char *kw)
{
    const struct tok *t = cur(p);
    return t->kind == T_IDENT && strcmp(t->sval, kw) == 0;
}

static bool accept(struct parser *p, enum tok_kind k)
{
    if (cur(p)->kind != k)
        return false;
    advance(p);
    return true;
}

static bool accept_kw(struct parser *p, const char *kw)
{
    if (!at_kw(p, kw))
        return false;
    advance(p);
    return true;
}

static void describe_tok(const struct tok *t, char *buf, size_t cap)
{
    if (t->kind == T_IDENT || t->kind == T_INT || t->kind == T_FLOAT || t->kind == T_DURATION)
        snprintf(buf, cap, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->start);
    else if (t->kind == T_STRING)
        snprintf(buf, cap, "a string");
    else
        snprintf(buf, cap, "%s", flow_tok_name(t->kind));
}

/* One error per line: the first one is the useful one. */
static void perr(struct parser *p, const struct tok *t, const char *what)
{
    if (t->kind == T_ERROR || p->last_err_line == t->line)
        return;
    char got[64];
    describe_tok(t, got, sizeof(got));
    p->last_err_line = t->line;
    flow_diag_add(p->d, t->line, t->col, "expected %s, found %s", what, got);
}

static bool expect(struct parser *p, enum tok_kind k, const char *what)
{
    if (accept(p, k))
        return true;
    perr(p, cur(p), what);
    return false;
}

/* Skip to the end of the current line, and past a block that it opens. */
static void sync_line(struct parser *p)
{
    int depth = 0;
    for (;;) {
        enum tok_kind k = cur(p)->kind;
        if (k == T_EOF)
            return;
        if (k == T_INDENT)
            depth++;
        if (k == T_DEDENT) {
            if (depth == 0)
                return;
            depth--;
            advance(p);
            if (depth == 0)
                return;
            continue;
        }
        advance(p);
        if (k == T_NEWLINE && depth == 0 && cur(p)->kind != T_INDENT)
            return;
    }
}

static void *palloc(struct parser *p, size_t n)
{
    void *m = flow_arena_alloc(p->arena, n);
    if (!m)
        p->oom = true;
    return m;
}

/* A name being declared: an identifier that is not a keyword. */
static const char *decl_name(struct parser *p, unsigned *line, unsigned *col, const char *what)
{
    const struct tok *t = cur(p);
    if (t->kind != T_IDENT) {
        perr(p, t, what);
        return NULL;
    }
    *line = t->line;
    *col = t->col;
    if (parse_is_keyword(t->sval)) {
        flow_diag_add(p->d, t->line, t->col, "'%s' is a reserved word", t->sval);
        p->last_err_line = t->line;
    } else if (t->len > FLOW_NAME_LEN_MAX) {
        flow_diag_add(p->d, t->line, t->col, "name '%s' longer than %u characters", t->sval,
                      FLOW_NAME_LEN_MAX);
        p->last_err_line = t->line;
    }
    advance(p);
    return t->sval;
}

/* A limit is reached on `line`: true when it is to be reported (one error per line, like
 * perr); the caller then reports it and parsing of the line ends. */
static bool limit_report(struct parser *p, unsigned line)
{
    if (p->last_err_line == line)
        return false;
    p->last_err_line = line;
    return true;
}

/* ---- expressions --------------------------------------------------------------------- */

static struct ast_expr *parse_expr(struct parser *p);

/* Enter one more level of expression nesting at the current token; false (reported) when
 * that would pass FLOW_EXPR_NEST_MAX. Paired with nest_leave. */
static bool nest_enter(struct parser *p)
{
    if (p->expr_nest >= FLOW_EXPR_NEST_MAX) {
        const struct tok *t = cur(p);
        if (limit_report(p, t->line))
            flow_diag_add(p->d, t->line, t->col, "expression nested more than %u levels deep",
                          FLOW_EXPR_NEST_MAX);
        return false;
    }
    p->expr_nest++;
    return true;
}

static void nest_leave(struct parser *p)
{
    assert(p->expr_nest > 0);
    p->expr_nest--;
}

/* e, whose deepest operand is `deepest` levels deep, with its depth set; NULL (reported)
 * when the tree gets deeper than FLOW_EXPR_DEPTH_MAX. */
static struct ast_expr *set_depth(struct parser *p, struct ast_expr *e, unsigned deepest)
{
    if (!e)
        return NULL;
    assert(deepest <= FLOW_EXPR_DEPTH_MAX);
    e->depth = 1 + deepest;
    if (e->depth > FLOW_EXPR_DEPTH_MAX) {
        if (limit_report(p, e->line))
            flow_diag_add(p->d, e->line, e->col,
                          "expression more than %u operators deep (split it with a variable)",
                          FLOW_EXPR_DEPTH_MAX);
        return NULL;
    }
    return e;
}

static struct ast_expr *new_expr(struct parser *p, enum ex_kind kind, const struct tok *at)
{
    struct ast_expr *e = palloc(p, sizeof(*e));
    if (!e)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->line = at->line;
    e->col = at->col;
    e->depth = 1;
    return e;
}

/* '(' [expr {',' expr}] ')' — the '(' is current. */
static bool parse_args(struct parser *p, struct ast_expr ***args, unsigned *nargs, unsigned max)
{
    struct ast_expr *tmp[16];
    unsigned n = 0;
    advance(p);
    if (!accept(p, T_RPAREN)) {
        for (;;) {
            struct ast_expr *e = parse_expr(p);
            if (!e)
                return false;
            if (n < max && n < 16)
                tmp[n] = e;
            n++;
            if (accept(p, T_RPAREN))
                break;
            if (!expect(p, T_COMMA, "',' or ')'"))
                return false;
        }
    }
    if (n > max || n > 16) {
        flow_diag_add(p->d, cur(p)->line, cur(p)->col, "too many arguments (at most %u)", max);
        return false;
    }
    *args = palloc(p, (n ? n : 1) * sizeof(**args));
    if (!*args)
        return false;
    memcpy(*args, tmp, n * sizeof(*tmp));
    *nargs = n;
    return true;
}

static struct ast_expr *parse_primary(struct parser *p)
{
    const struct tok *t = cur(p);
    struct ast_expr *e;
    switch (t->kind) {
    case T_INT:
    case T_DURATION:
        if ((e = new_expr(p, EX_INT, t)))
            e->ival = t->ival;
        advance(p);
        return e;
    case T_FLOAT:
        if ((e = new_expr(p, EX_FLOAT, t)))
            e->fval = t->fval;
        advance(p);
        return e;
    case T_STRING:
        if ((e = new_expr(p, EX_TEXT, t)))
            e->sval = t->sval;
        advance(p);
        return e;
    case T_LPAREN:
        advance(p);
        e = parse_expr(p);
        if (e && !expect(p, T_RPAREN, "')'"))
            return NULL;
        return e;
    case T_IDENT:
        if (at_kw(p, "true") || at_kw(p, "false")) {
            if ((e = new_expr(p, EX_BOOL, t)))
                e->bval = at_kw(p, "true");
            advance(p);
            return e;
        }
        if (!(e = new_expr(p, EX_REF, t)))
            return NULL;
        e->ref.name = t->sval;
        advance(p);
        if (cur(p)->kind == T_DOT) {
            advance(p);
            if (cur(p)->kind != T_IDENT) {
                perr(p, cur(p), "a name after '.'");
                return NULL;
            }
            e->ref.member = cur(p)->sval;
            advance(p);
        }
        if (cur(p)->kind == T_LPAREN) {
            e->ref.call = true;
            if (!parse_args(p, &e->ref.args, &e->ref.nargs, FLOW_PARAMS_MAX))
                return NULL;
            unsigned deepest = 0;
            for (unsigned i = 0; i < e->ref.nargs; i++)
                if (e->ref.args[i]->depth > deepest)
                    deepest = e->ref.args[i]->depth;
            return set_depth(p, e, deepest);
        }
        return e;
    default:
        perr(p, t, "an expression");
        return NULL;
    }
}

static struct ast_expr *parse_unary(struct parser *p)
{
    const struct tok *t = cur(p);
    if (t->kind == T_MINUS) {
        advance(p);
        if (!nest_enter(p))
            return NULL;
        struct ast_expr *inner = parse_unary(p);
        nest_leave(p);
        if (!inner)
            return NULL;
        /* fold negative literals so that INT64_MIN and initial values work */
        if (inner->kind == EX_INT) {
            inner->ival = (int64_t)(0 - (uint64_t)inner->ival);
            return inner;
        }
        if (inner->kind == EX_FLOAT) {
            inner->fval = -inner->fval;
            return inner;
        }
        struct ast_expr *e = new_expr(p, EX_UNARY, t);
        if (e) {
            e->un.op = T_MINUS;
            e->un.e = inner;
        }
        return set_depth(p, e, inner->depth);
    }
    return parse_primary(p);
}

static struct ast_expr *binary(struct parser *p, const struct tok *at, enum tok_kind op, int logic,
                               struct ast_expr *l, struct ast_expr *r)
{
    struct ast_expr *e = new_expr(p, EX_BINARY, at);
    if (!e)
        return NULL;
    e->bin.op = op;
    e->bin.logic = logic;
    e->bin.l = l;
    e->bin.r = r;
    return set_depth(p, e, l->depth > r->depth ? l->depth : r->depth);
}

static struct ast_expr *parse_mul(struct parser *p)
{
    struct ast_expr *l = parse_unary(p);
    while (l) {
        const struct tok *t = cur(p);
        if (t->kind != T_STAR && t->kind != T_SLASH && t->kind != T_PERCENT)
            break;
        advance(p);
        struct ast_expr *r = parse_unary(p);
        if (!r)
            return NULL;
        l = binary(p, t, t->kind, 0, l, r);
    }
    return l;
}

static struct ast_expr *parse_add(struct parser *p)
{
    struct ast_expr *l = parse_mul(p);
    while (l) {
        const struct tok *t = cur(p);
        if (t->kind != T_PLUS && t->kind != T_MINUS)
            break;
        advance(p);
        struct ast_expr *r = parse_mul(p);
        if (!r)
            return NULL;
        l = binary(p, t, t->kind, 0, l, r);
    }
    return l;
}

static bool is_cmp(enum tok_kind k)
{
    return k == T_EQ || k == T_NE || k == T_LT || k == T_LE || k == T_GT || k == T_GE;
}

static struct ast_expr *parse_cmp(struct parser *p)
{
    struct ast_expr *l = parse_add(p);
    if (!l)
        return NULL;
    const struct tok *t = cur(p);
    if (!is_cmp(t->kind))
        return l;
    advance(p);
    struct ast_expr *r = parse_add(p);
    if (!r)
        return NULL;
    if (is_cmp(cur(p)->kind)) {
        flow_diag_add(p->d, cur(p)->line, cur(p)->col,
                      "comparisons do not chain: use 'and' (a < b and b < c)");
        return NULL;
    }
    return binary(p, t, t->kind, 0, l, r);
}

static struct ast_expr *parse_not(struct parser *p)
{
    const struct tok *t = cur(p);
    if (accept_kw(p, "not")) {
        if (!nest_enter(p))
            return NULL;
        struct ast_expr *inner = parse_not(p);
        nest_leave(p);
        if (!inner)
            return NULL;
        struct ast_expr *e = new_expr(p, EX_UNARY, t);
        if (e) {
            e->un.op_not = true;
            e->un.e = inner;
        }
        return set_depth(p, e, inner->depth);
    }
    return parse_cmp(p);
}

static struct ast_expr *parse_and(struct parser *p)
{
    struct ast_expr *l = parse_not(p);
    while (l && at_kw(p, "and")) {
        const struct tok *t = cur(p);
        advance(p);
        struct ast_expr *r = parse_not(p);
        if (!r)
            return NULL;
        l = binary(p, t, T_IDENT, 1, l, r);
    }
    return l;
}

static struct ast_expr *parse_or(struct parser *p)
{
    struct ast_expr *l = parse_and(p);
    while (l && at_kw(p, "or")) {
        const struct tok *t = cur(p);
        advance(p);
        struct ast_expr *r = parse_and(p);
        if (!r)
            return NULL;
        l = binary(p, t, T_IDENT, 2, l, r);
    }
    return l;
}

/* Every nested expression ('(' expr ')', call arguments) comes through here. */
static struct ast_expr *parse_expr(struct parser *p)
{
    if (!nest_enter(p))
        return NULL;
    struct ast_expr *e = parse_or(p);
    nest_leave(p);
    return e;
}

/* ---- statements ---------------------------------------------------------------------- */

static struct ast_stmt *parse_block(struct parser *p);

static struct ast_stmt *new_stmt(struct parser *p, enum st_kind kind, const struct tok *at)
{
    struct ast_stmt *s = palloc(p, sizeof(*s));
    if (!s)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->line = at->line;
    s->col = at->col;
    return s;
}

/* `if` and `elif` chains: elif becomes an if in the else branch of the one before, built
 * in a loop (a chain of any length uses one frame). The `if` is current. */
static struct ast_stmt *parse_if(struct parser *p)
{
    struct ast_stmt *first = NULL, **slot = &first;
    do {
        const struct tok *t = cur(p);
        advance(p);
        struct ast_stmt *s = new_stmt(p, ST_IF, t);
        if (!s)
            return first;
        s->expr = parse_expr(p);
        if (!s->expr || !expect(p, T_COLON, "':' after the condition")) {
            sync_line(p);
            return first;
        }
        s->then_body = parse_block(p);
        *slot = s;
        slot = &s->else_body;
    } while (at_kw(p, "elif") && !p->oom);
    if (at_kw(p, "else")) {
        advance(p);
        if (!expect(p, T_COLON, "':' after else")) {
            sync_line(p);
            return first;
        }
        *slot = parse_block(p);
    }
    return first;
}

static bool end_of_stmt(struct parser *p)
{
    if (accept(p, T_NEWLINE))
        return true;
    perr(p, cur(p), "end of line");
    sync_line(p);
    return false;
}

static struct ast_stmt *parse_stmt(struct parser *p)
{
    const struct tok *t = cur(p);
    struct ast_stmt *s = NULL;
    if (t->kind != T_IDENT) {
        perr(p, t, "a statement");
        sync_line(p);
        return NULL;
    }
    if (at_kw(p, "if"))
        return parse_if(p);
    if (at_kw(p, "elif") || at_kw(p, "else")) {
        flow_diag_add(p->d, t->line, t->col, "'%s' without a matching 'if'", t->sval);
        p->last_err_line = t->line;
        sync_line(p);
        return NULL;
    }
    if (at_kw(p, "complete") || at_kw(p, "pass")) {
        s = new_stmt(p, at_kw(p, "pass") ? ST_PASS : ST_COMPLETE, t);
        advance(p);
    } else if (at_kw(p, "goto") || at_kw(p, "cancel")) {
        s = new_stmt(p, at_kw(p, "goto") ? ST_GOTO : ST_CANCEL, t);
        advance(p);
        if (s && cur(p)->kind == T_IDENT) {
            s->name = cur(p)->sval;
            s->name_line = cur(p)->line;
            s->name_col = cur(p)->col;
            advance(p);
        } else if (s) {
            perr(p, cur(p), s->kind == ST_GOTO ? "a state name" : "a timer or activity name");
            sync_line(p);
            return NULL;
        }
    } else if (at_kw(p, "run")) {
        s = new_stmt(p, ST_RUN, t);
        advance(p);
        if (!s)
            return NULL;
        if (cur(p)->kind != T_IDENT || peek(p, 1)->kind != T_LPAREN) {
            perr(p, cur(p), "an activity call: run NAME(args)");
            sync_line(p);
            return NULL;
        }
        s->name = cur(p)->sval;
        s->name_line = cur(p)->line;
        s->name_col = cur(p)->col;
        advance(p);
        if (!parse_args(p, &s->args, &s->nargs, FLOW_PARAMS_MAX)) {
            sync_line(p);
            return NULL;
        }
    } else {
        struct ast_expr *lhs = parse_primary(p);
        if (!lhs) {
            sync_line(p);
            return NULL;
        }
        enum tok_kind k = cur(p)->kind;
        if (k == T_ASSIGN || k == T_PLUSEQ || k == T_MINUSEQ || k == T_STAREQ || k == T_SLASHEQ) {
            if (lhs->kind != EX_REF || lhs->ref.member || lhs->ref.call) {
                flow_diag_add(p->d, lhs->line, lhs->col, "can only assign to a variable");
                p->last_err_line = lhs->line;
                sync_line(p);
                return NULL;
            }
            s = new_stmt(p, ST_ASSIGN, t);
            advance(p);
            if (!s)
                return NULL;
            s->name = lhs->ref.name;
            s->name_line = lhs->line;
            s->name_col = lhs->col;
            s->assign_op = k;
            s->expr = parse_expr(p);
            if (!s->expr) {
                sync_line(p);
                return NULL;
            }
        } else if (lhs->kind == EX_REF && lhs->ref.call) {
            s = new_stmt(p, ST_CALL, t);
            if (s)
                s->expr = lhs;
        } else {
            flow_diag_add(p->d, t->line, t->col,
                          "not a statement (assignment, call, run, if, goto, cancel, "
                          "complete or pass)");
            p->last_err_line = t->line;
            sync_line(p);
            return NULL;
        }
    }
    if (!s)
        return NULL;
    end_of_stmt(p);
    return s;
}

/* After ':' — either an indented block or one statement on the same line. */
static struct ast_stmt *parse_block_body(struct parser *p)
{
    if (!accept(p, T_NEWLINE)) {
        return parse_stmt(p);
    }
    if (!accept(p, T_INDENT)) {
        perr(p, cur(p), "an indented block");
        return NULL;
    }
    struct ast_stmt *head = NULL, **tail = &head;
    while (cur(p)->kind != T_DEDENT && cur(p)->kind != T_EOF && !p->oom) {
        struct ast_stmt *s = parse_stmt(p);
        if (s) {
            *tail = s;
            tail = &s->next;
        }
    }
    accept(p, T_DEDENT);
    return head;
}

/* A block one level deeper; past FLOW_BLOCK_NEST_MAX it is reported and skipped. */
static struct ast_stmt *parse_block(struct parser *p)
{
    if (p->block_nest >= FLOW_BLOCK_NEST_MAX) {
        const struct tok *t = cur(p);
        if (limit_report(p, t->line))
            flow_diag_add(p->d, t->line, t->col, "blocks nested more than %u levels deep",
                          FLOW_BLOCK_NEST_MAX);
        sync_line(p);
        return NULL;
    }
    p->block_nest++;
    struct ast_stmt *s = parse_block_body(p);
    p->block_nest--;
    return s;
}

/* ---- declarations -------------------------------------------------------------------- */

/* int | float | bool | text [ '(' N ')' ] | id */
static bool parse_type(struct parser *p, struct ast_typed_name *tn, bool text_needs_cap)
{
    const struct tok *t = cur(p);
    if (at_kw(p, "int"))
        tn->type = FLOW_T_INT;
    else if (at_kw(p, "float"))
        tn->type = FLOW_T_FLOAT;
    else if (at_kw(p, "bool"))
        tn->type = FLOW_T_BOOL;
    else if (at_kw(p, "text") || at_kw(p, "id"))
        tn->type = FLOW_T_TEXT;
    else {
        perr(p, t, "a type (int, float, bool, text)");
        return false;
    }
    bool is_id = at_kw(p, "id");
    advance(p);
    if (tn->type == FLOW_T_TEXT && !is_id && accept(p, T_LPAREN)) {
        const struct tok *n = cur(p);
        if (!expect(p, T_INT, "the text bound, e.g. text(32)"))
            return false;
        if (n->ival < 1 || n->ival > FLOW_TEXT_CAP_MAX) {
            flow_diag_add(p->d, n->line, n->col, "text bound must be 1..%u bytes",
                          FLOW_TEXT_CAP_MAX);
            p->last_err_line = n->line;
        } else {
            tn->text_cap = (unsigned)n->ival;
        }
        if (!expect(p, T_RPAREN, "')'"))
            return false;
    } else if (tn->type == FLOW_T_TEXT && text_needs_cap) {
        flow_diag_add(p->d, t->line, t->col,
                      "text stored in the record needs a bound: text(N), N <= %u",
                      FLOW_TEXT_CAP_MAX);
        p->last_err_line = t->line;
        tn->text_cap = 1;
    }
    return true;
}

/* '(' [name ':' type {',' ...}] ')' */
static bool parse_typed_list(struct parser *p, struct ast_typed_name *out, unsigned *n,
                             unsigned max, const char *what)
{
    if (!expect(p, T_LPAREN, "'('"))
        return false;
    *n = 0;
    if (accept(p, T_RPAREN))
        return true;
    for (;;) {
        struct ast_typed_name tn = { 0 };
        tn.name = decl_name(p, &tn.line, &tn.col, what);
        if (!tn.name || !expect(p, T_COLON, "':' and a type") || !parse_type(p, &tn, false))
            return false;
        if (*n == max) {
            flow_diag_add(p->d, tn.line, tn.col, "more than %u %ss", max, what);
            p->last_err_line = tn.line;
        } else {
            out[(*n)++] = tn;
        }
        if (accept(p, T_RPAREN))
            return true;
        if (!expect(p, T_COMMA, "',' or ')'"))
            return false;
    }
}

static bool parse_duration(struct parser *p, uint64_t *ns, const char *what)
{
    const struct tok *t = cur(p);
    if (t->kind != T_DURATION) {
        perr(p, t, what);
        return false;
    }
    if (t->ival <= 0) {
        flow_diag_add(p->d, t->line, t->col, "duration must be positive");
        p->last_err_line = t->line;
    }
    *ns = (uint64_t)t->ival;
    advance(p);
    return true;
}

static bool parse_activity_options(struct parser *p, struct ast_activity *a)
{
    while (cur(p)->kind != T_NEWLINE && cur(p)->kind != T_EOF) {
        const struct tok *t = cur(p);
        if (accept_kw(p, "retry")) {
            if (accept_kw(p, "forever")) {
                a->max_attempts = 0;
                continue;
            }
            const struct tok *n = cur(p);
            if (!expect(p, T_INT, "a number of attempts or 'forever'"))
                return false;
            if (n->ival < 1 || n->ival > 1000000) {
                flow_diag_add(p->d, n->line, n->col, "retry must be 1..1000000 attempts");
                p->last_err_line = n->line;
            }
            a->max_attempts = (uint32_t)n->ival;
        } else if (accept_kw(p, "backoff")) {
            if (!parse_duration(p, &a->backoff_initial_ns, "the initial backoff, e.g. 1s") ||
                !expect(p, T_DOTDOT, "'..' between initial and maximum backoff") ||
                !parse_duration(p, &a->backoff_max_ns, "the maximum backoff, e.g. 5m"))
                return false;
            if (a->backoff_max_ns < a->backoff_initial_ns) {
                flow_diag_add(p->d, t->line, t->col, "backoff maximum is below its initial");
                p->last_err_line = t->line;
            }
            const struct tok *x = cur(p);
            if (x->kind == T_IDENT && x->sval[0] == 'x') {
                double m = 0;
                if (x->len == 1) {
                    advance(p);
                    const struct tok *v = cur(p);
                    if (v->kind == T_INT)
                        m = (double)v->ival;
                    else if (v->kind == T_FLOAT)
                        m = v->fval;
                    else {
                        perr(p, v, "a multiplier after 'x'");
                        return false;
                    }
                } else {
                    for (unsigned i = 1; i < x->len; i++) {
                        if (x->start[i] < '0' || x->start[i] > '9') {
                            perr(p, x, "a multiplier like x2 or x 1.5");
                            return false;
                        }
                        m = m * 10 + (x->start[i] - '0');
                    }
                }
                advance(p);
                if (!(m >= 1.0 && m <= 100.0)) {
                    flow_diag_add(p->d, x->line, x->col, "backoff multiplier must be 1..100");
                    p->last_err_line = x->line;
                }
                a->backoff_multiplier = m;
            }
        } else if (accept_kw(p, "timeout") || accept_kw(p, "start_to_close")) {
            if (!parse_duration(p, &a->start_to_close_ns, "a duration"))
                return false;
        } else if (accept_kw(p, "schedule_to_close")) {
            if (!parse_duration(p, &a->schedule_to_close_ns, "a duration"))
                return false;
        } else {
            perr(p, t, "an activity option (retry, backoff, timeout, schedule_to_close)");
            return false;
        }
    }
    return true;
}

static const struct tok *handler_head(struct parser *p, struct ast_handler *h)
{
    const struct tok *t = cur(p);
    h->line = t->line;
    h->col = t->col;
    if (accept_kw(p, "on")) {
        if (accept_kw(p, "enter")) {
            h->kind = HD_ENTER;
            return t;
        }
        const struct tok *n = cur(p);
        if (n->kind != T_IDENT) {
            perr(p, n, "a signal or activity name after 'on'");
            return NULL;
        }
        h->name = n->sval;
        h->name_line = n->line;
        h->name_col = n->col;
        h->kind = HD_SIGNAL;
        advance(p);
        if (accept(p, T_DOT)) {
            if (accept_kw(p, "done"))
                h->kind = HD_DONE;
            else if (accept_kw(p, "failed"))
                h->kind = HD_FAILED;
            else {
                perr(p, cur(p), "'done' or 'failed'");
                return NULL;
            }
        }
        if (accept_kw(p, "when")) {
            h->guard = parse_expr(p);
            if (!h->guard)
                return NULL;
        }
        return t;
    }
    if (at_kw(p, "after") || at_kw(p, "every") || at_kw(p, "silence")) {
        h->kind = at_kw(p, "after") ? HD_AFTER : at_kw(p, "every") ? HD_EVERY : HD_SILENCE;
        h->name = t->sval; /* default timer name: its kind */
        h->name_line = t->line;
        h->name_col = t->col;
        advance(p);
        uint64_t ns = 0;
        if (!parse_duration(p, &ns, "a duration, e.g. 15m"))
            return NULL;
        h->period_ns = (int64_t)ns;
        if (accept_kw(p, "as")) {
            h->name = decl_name(p, &h->name_line, &h->name_col, "a timer name");
            if (!h->name)
                return NULL;
        }
        return t;
    }
    perr(p, t, "a handler (on SIGNAL, on ACTIVITY.done, after, every, silence, on enter)");
    return NULL;
}

static struct ast_state *parse_state(struct parser *p, bool any)
{
    const struct tok *t = cur(p);
    advance(p);
    struct ast_state *st = palloc(p, sizeof(*st));
    if (!st)
        return NULL;
    memset(st, 0, sizeof(*st));
    st->line = t->line;
    st->col = t->col;
    if (!any && !(st->name = decl_name(p, &st->line, &st->col, "a state name"))) {
        sync_line(p);
        return NULL;
    }
    if (!expect(p, T_COLON, "':'") || !expect(p, T_NEWLINE, "end of line") ||
        !expect(p, T_INDENT, "an indented list of handlers")) {
        sync_line(p);
        return st;
    }
    struct ast_handler **tail = &st->handlers;
    while (cur(p)->kind != T_DEDENT && cur(p)->kind != T_EOF && !p->oom) {
        struct ast_handler *h = palloc(p, sizeof(*h));
        if (!h)
            return NULL;
        memset(h, 0, sizeof(*h));
        if (!handler_head(p, h) || !expect(p, T_COLON, "':' after the handler")) {
            sync_line(p);
            continue;
        }
        h->body = parse_block(p);
        *tail = h;
        tail = &h->next;
    }
    accept(p, T_DEDENT);
    return st;
}

static bool parse_literal_init(struct parser *p, struct ast_var *v)
{
    v->init = parse_unary(p);
    if (!v->init)
        return false;
    if (v->init->kind != EX_INT && v->init->kind != EX_FLOAT && v->init->kind != EX_BOOL &&
        v->init->kind != EX_TEXT) {
        flow_diag_add(p->d, v->init->line, v->init->col,
                      "initial value must be a literal (number, duration, true/false, string)");
        p->last_err_line = v->init->line;
        v->init = NULL;
    }
    return true;
}

static void parse_decl(struct parser *p, struct ast_workflow *wf, struct ast_signal ***sig_tail,
                       struct ast_var ***var_tail, struct ast_activity ***act_tail,
                       struct ast_state ***state_tail)
{
    const struct tok *t = cur(p);
    if (accept_kw(p, "signal")) {
        struct ast_signal *s = palloc(p, sizeof(*s));
        if (!s)
            return;
        memset(s, 0, sizeof(*s));
        if (!(s->name = decl_name(p, &s->line, &s->col, "a signal name")) ||
            !parse_typed_list(p, s->fields, &s->nfields, FLOW_FIELDS_MAX, "field")) {
            sync_line(p);
            return;
        }
        **sig_tail = s;
        *sig_tail = &s->next;
    } else if (at_kw(p, "var") || at_kw(p, "queue")) {
        bool queue = at_kw(p, "queue");
        advance(p);
        struct ast_var *v = palloc(p, sizeof(*v));
        if (!v)
            return;
        memset(v, 0, sizeof(*v));
        v->is_queue = queue;
        if (!(v->t.name = decl_name(p, &v->t.line, &v->t.col, "a name")) ||
            !expect(p, T_COLON, "':' and a type") || !parse_type(p, &v->t, true)) {
            sync_line(p);
            return;
        }
        if (queue) {
            const struct tok *n;
            if (!expect(p, T_LBRACK, "'[' and the queue capacity, e.g. int[16]") || !(n = cur(p)) ||
                !expect(p, T_INT, "the queue capacity") || !expect(p, T_RBRACK, "']'")) {
                sync_line(p);
                return;
            }
            if (n->ival < 1 || n->ival > FLOW_QUEUE_CAP_MAX) {
                flow_diag_add(p->d, n->line, n->col, "queue capacity must be 1..%u",
                              FLOW_QUEUE_CAP_MAX);
                p->last_err_line = n->line;
            }
            v->queue_cap = n->ival >= 1 && n->ival <= FLOW_QUEUE_CAP_MAX ? (unsigned)n->ival : 1;
        } else if (accept(p, T_ASSIGN) && !parse_literal_init(p, v)) {
            sync_line(p);
            return;
        }
        **var_tail = v;
        *var_tail = &v->next;
    } else if (accept_kw(p, "activity")) {
        struct ast_activity *a = palloc(p, sizeof(*a));
        if (!a)
            return;
        memset(a, 0, sizeof(*a));
        a->max_attempts = 3;
        a->backoff_initial_ns = 1000000000ull;
        a->backoff_max_ns = 60000000000ull;
        a->backoff_multiplier = 2.0;
        a->start_to_close_ns = 30000000000ull;
        if (!(a->name = decl_name(p, &a->line, &a->col, "an activity name")) ||
            !parse_typed_list(p, a->params, &a->nparams, FLOW_PARAMS_MAX, "parameter") ||
            !parse_activity_options(p, a)) {
            sync_line(p);
            return;
        }
        **act_tail = a;
        *act_tail = &a->next;
    } else if (at_kw(p, "state") || at_kw(p, "any")) {
        struct ast_state *st = parse_state(p, at_kw(p, "any"));
        if (st) {
            **state_tail = st;
            *state_tail = &st->next;
        }
        return;
    } else {
        perr(p, t, "a declaration (signal, var, queue, activity, state, any)");
        sync_line(p);
        return;
    }
    end_of_stmt(p);
    (void)wf;
}

int flow_parse(const struct tok_list *toks, struct flow_arena *arena, struct flow_diag *d,
               struct ast_workflow *wf)
{
    struct parser p = { .t = toks->v, .n = toks->n, .arena = arena, .d = d };
    memset(wf, 0, sizeof(*wf));
    assert(toks->n > 0 && toks->v[toks->n - 1].kind == T_EOF);
    const struct tok *t = cur(&p);
    wf->line = t->line;
    wf->col = t->col;
    if (!accept_kw(&p, "workflow")) {
        perr(&p, t, "'workflow NAME version N' first");
        sync_line(&p);
    } else {
        wf->name = decl_name(&p, &wf->line, &wf->col, "the workflow name");
        const struct tok *v;
        if (wf->name && accept_kw(&p, "version") && (v = cur(&p)) &&
            expect(&p, T_INT, "a version number")) {
            if (v->ival < 1 || v->ival > UINT32_MAX) {
                flow_diag_add(d, v->line, v->col, "version must be 1..%u", UINT32_MAX);
                p.last_err_line = v->line;
            }
            wf->version = (uint32_t)v->ival;
            end_of_stmt(&p);
        } else {
            if (wf->name)
                perr(&p, cur(&p), "'version N'");
            sync_line(&p);
        }
    }
    struct ast_signal **sig_tail = &wf->signals;
    struct ast_var **var_tail = &wf->vars;
    struct ast_activity **act_tail = &wf->acts;
    struct ast_state **state_tail = &wf->states;
    while (cur(&p)->kind != T_EOF && !p.oom) {
        if (cur(&p)->kind == T_INDENT || cur(&p)->kind == T_DEDENT || cur(&p)->kind == T_NEWLINE) {
            if (cur(&p)->kind == T_INDENT)
                perr(&p, cur(&p), "a declaration at the start of the line (unexpected indent)");
            advance(&p);
            continue;
        }
        parse_decl(&p, wf, &sig_tail, &var_tail, &act_tail, &state_tail);
    }
    return p.oom ? -ENOMEM : 0;
}
