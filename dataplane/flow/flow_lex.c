/*
 * flow_lex.c — tokenizer of .flow sources.
 *
 * Layout is significant, like Python: a line's leading spaces open (INDENT) or close
 * (DEDENT) blocks; tabs in indentation are an error; blank and comment-only lines are
 * skipped; inside ( ) or [ ] newlines are ignored. `#` starts a comment. Literals: 42,
 * 3.25, 1.5e3, "text" (escapes \" \\ \n \t), durations 250ms 30s 15m 48h 30d 1h30m
 * (units ns us ms s m h d; stored as int64 ns).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flow_internal.h"

#define LEX_INDENT_DEPTH_MAX 32u

struct lexer {
    const char *src, *end, *p;
    unsigned line;
    const char *line_start;
    struct flow_arena *arena;
    struct flow_diag *d;
    struct tok_list *toks;
    unsigned indent[LEX_INDENT_DEPTH_MAX];
    unsigned depth;
    unsigned paren;
};

const char *flow_tok_name(enum tok_kind k)
{
    static const char *const names[] = {
        [T_EOF] = "end of file", [T_NEWLINE] = "end of line",
        [T_INDENT] = "indent",   [T_DEDENT] = "dedent",
        [T_IDENT] = "name",      [T_INT] = "integer",
        [T_FLOAT] = "float",     [T_DURATION] = "duration",
        [T_STRING] = "string",   [T_LPAREN] = "'('",
        [T_RPAREN] = "')'",      [T_LBRACK] = "'['",
        [T_RBRACK] = "']'",      [T_COMMA] = "','",
        [T_COLON] = "':'",       [T_DOT] = "'.'",
        [T_DOTDOT] = "'..'",     [T_ASSIGN] = "'='",
        [T_PLUSEQ] = "'+='",     [T_MINUSEQ] = "'-='",
        [T_STAREQ] = "'*='",     [T_SLASHEQ] = "'/='",
        [T_EQ] = "'=='",         [T_NE] = "'!='",
        [T_LT] = "'<'",          [T_LE] = "'<='",
        [T_GT] = "'>'",          [T_GE] = "'>='",
        [T_PLUS] = "'+'",        [T_MINUS] = "'-'",
        [T_STAR] = "'*'",        [T_SLASH] = "'/'",
        [T_PERCENT] = "'%'",     [T_ERROR] = "error",
    };
    return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

static unsigned lex_col(const struct lexer *lx, const char *at)
{
    return (unsigned)(at - lx->line_start) + 1;
}

static struct tok *lex_push(struct lexer *lx, enum tok_kind kind, const char *start, unsigned len)
{
    struct tok_list *t = lx->toks;
    if (t->n == t->cap) {
        unsigned cap = t->cap ? t->cap * 2 : 256;
        struct tok *v = realloc(t->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        t->v = v;
        t->cap = cap;
    }
    struct tok *k = &t->v[t->n++];
    memset(k, 0, sizeof(*k));
    k->kind = kind;
    k->line = lx->line;
    k->col = lex_col(lx, start);
    k->start = start;
    k->len = len;
    return k;
}

static int64_t lex_unit_ns(const char *u, unsigned n)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {
        { "ns", 1 },
        { "us", 1000 },
        { "ms", 1000000 },
        { "s", 1000000000 },
        { "m", 60ll * 1000000000 },
        { "h", 3600ll * 1000000000 },
        { "d", 86400ll * 1000000000 },
    };
    for (unsigned i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strlen(units[i].name) == n && memcmp(units[i].name, u, n) == 0)
            return units[i].ns;
    return 0;
}

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || is_digit(c);
}

/* Number, float or duration starting at lx->p. */
static int lex_number(struct lexer *lx)
{
    const char *s = lx->p, *p = s;
    while (p < lx->end && is_digit(*p))
        p++;
    bool is_float = false;
    if (p + 1 < lx->end && *p == '.' && is_digit(p[1])) {
        is_float = true;
        p++;
        while (p < lx->end && is_digit(*p))
            p++;
    }
    if (p < lx->end && (*p == 'e' || *p == 'E') && p + 1 < lx->end &&
        (is_digit(p[1]) || ((p[1] == '-' || p[1] == '+') && p + 2 < lx->end && is_digit(p[2])))) {
        is_float = true;
        p += 2;
        while (p < lx->end && is_digit(*p))
            p++;
    }
    if (is_float) {
        char buf[64];
        unsigned n = (unsigned)(p - s);
        struct tok *t = lex_push(lx, T_FLOAT, s, n);
        if (!t)
            return -ENOMEM;
        if (n >= sizeof(buf)) {
            flow_diag_add(lx->d, t->line, t->col, "float literal too long");
            t->kind = T_ERROR;
        } else {
            memcpy(buf, s, n);
            buf[n] = 0;
            t->fval = strtod(buf, NULL);
        }
        lx->p = p;
        return 0;
    }
    /* integer, possibly followed by duration units: 1h30m */
    int64_t total = 0;
    bool duration = false, overflow = false, bad_unit = false;
    const char *q = s;
    for (;;) {
        uint64_t v = 0;
        const char *ds = q;
        while (q < lx->end && is_digit(*q)) {
            if (v > (UINT64_MAX - 9) / 10)
                overflow = true;
            v = v * 10 + (uint64_t)(*q - '0');
            q++;
        }
        if (q == ds)
            break;
        const char *us = q;
        while (q < lx->end && is_ident_start(*q))
            q++;
        unsigned ulen = (unsigned)(q - us);
        if (ulen == 0) {
            if (duration)
                bad_unit = true;
            if (v > INT64_MAX)
                overflow = true;
            total = (int64_t)v;
            break;
        }
        int64_t unit = lex_unit_ns(us, ulen);
        if (!unit) {
            bad_unit = true;
            break;
        }
        duration = true;
        if (v > (uint64_t)(INT64_MAX / unit) || total > INT64_MAX - (int64_t)v * unit)
            overflow = true;
        else
            total += (int64_t)v * unit;
        if (!(q < lx->end && is_digit(*q)))
            break;
    }
    while (q < lx->end && is_ident_char(*q))
        q++;
    struct tok *t = lex_push(lx, duration ? T_DURATION : T_INT, s, (unsigned)(q - s));
    if (!t)
        return -ENOMEM;
    t->ival = total;
    if (bad_unit) {
        flow_diag_add(lx->d, t->line, t->col,
                      "bad number or duration '%.*s' (units: ns us ms s m h d)", (int)t->len, s);
        t->kind = T_ERROR;
    } else if (overflow) {
        flow_diag_add(lx->d, t->line, t->col, "number '%.*s' out of range", (int)t->len, s);
        t->kind = T_ERROR;
    }
    lx->p = q;
    return 0;
}

static int lex_string(struct lexer *lx)
{
    const char *s = lx->p;
    const char *p = s + 1;
    /* the decoded text is never longer than the string's source: find its end first and
     * allocate that much (not the rest of the file: many strings would need quadratic
     * memory, nor the rest of the line: many strings on one line, quadratic time) */
    const char *q = p;
    while (q < lx->end && *q != '\n') { /* the same walk as the decoding loop below */
        char c = *q++;
        if (c == '"')
            break;
        if (c == '\\' && q < lx->end)
            q++;
    }
    char *buf = flow_arena_alloc(lx->arena, (size_t)(q - s) + 1);
    if (!buf)
        return -ENOMEM;
    unsigned n = 0;
    bool closed = false, bad_escape = false;
    while (p < lx->end && *p != '\n') {
        char c = *p++;
        if (c == '"') {
            closed = true;
            break;
        }
        if (c == '\\' && p < lx->end) {
            char e = *p++;
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == '\\' ? '\\' : e == '"' ? '"' : 0;
            if (!c)
                bad_escape = true;
        }
        buf[n++] = c;
    }
    assert(p == q && n < (size_t)(q - s) + 1);
    buf[n] = 0;
    struct tok *t = lex_push(lx, T_STRING, s, (unsigned)(p - s));
    if (!t)
        return -ENOMEM;
    t->sval = buf;
    t->ival = n;
    if (!closed) {
        flow_diag_add(lx->d, t->line, t->col, "unterminated string");
        t->kind = T_ERROR;
    } else if (bad_escape) {
        flow_diag_add(lx->d, t->line, t->col, "unknown escape in string (use \\\" \\\\ \\n \\t)");
        t->kind = T_ERROR;
    } else if (n > FLOW_TEXT_CAP_MAX) {
        flow_diag_add(lx->d, t->line, t->col, "string longer than %u bytes", FLOW_TEXT_CAP_MAX);
        t->kind = T_ERROR;
    }
    lx->p = p;
    return 0;
}

static int lex_punct(struct lexer *lx)
{
    static const struct {
        const char *s;
        enum tok_kind k;
    } ops[] = {
        { "..", T_DOTDOT },  { "+=", T_PLUSEQ }, { "-=", T_MINUSEQ }, { "*=", T_STAREQ },
        { "/=", T_SLASHEQ }, { "==", T_EQ },     { "!=", T_NE },      { "<=", T_LE },
        { ">=", T_GE },      { "(", T_LPAREN },  { ")", T_RPAREN },   { "[", T_LBRACK },
        { "]", T_RBRACK },   { ",", T_COMMA },   { ":", T_COLON },    { ".", T_DOT },
        { "=", T_ASSIGN },   { "<", T_LT },      { ">", T_GT },       { "+", T_PLUS },
        { "-", T_MINUS },    { "*", T_STAR },    { "/", T_SLASH },    { "%", T_PERCENT },
    };
    for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t n = strlen(ops[i].s);
        if ((size_t)(lx->end - lx->p) >= n && memcmp(lx->p, ops[i].s, n) == 0) {
            if (!lex_push(lx, ops[i].k, lx->p, (unsigned)n))
                return -ENOMEM;
            if (ops[i].k == T_LPAREN || ops[i].k == T_LBRACK)
                lx->paren++;
            if ((ops[i].k == T_RPAREN || ops[i].k == T_RBRACK) && lx->paren)
                lx->paren--;
            lx->p += n;
            return 0;
        }
    }
    unsigned char c = (unsigned char)*lx->p;
    if (c >= 0x20 && c < 0x7f)
        flow_diag_add(lx->d, lx->line, lex_col(lx, lx->p), "unexpected character '%c'", c);
    else
        flow_diag_add(lx->d, lx->line, lex_col(lx, lx->p), "unexpected byte 0x%02x", c);
    lx->p++;
    return 0;
}

/* At the start of a line: measure indentation, emit INDENT/DEDENT, skip blank lines.
 * Returns 1 when the line has content, 0 at end of input. */
static int lex_line_start(struct lexer *lx)
{
    for (;;) {
        lx->line_start = lx->p;
        const char *p = lx->p;
        unsigned width = 0;
        bool tab = false;
        while (p < lx->end && (*p == ' ' || *p == '\t' || *p == '\r')) {
            if (*p == '\t')
                tab = true;
            width += *p == ' ' || *p == '\t';
            p++;
        }
        if (p >= lx->end) {
            lx->p = p;
            return 0;
        }
        if (*p == '\n' || *p == '#') {
            while (p < lx->end && *p != '\n')
                p++;
            if (p < lx->end)
                p++;
            lx->p = p;
            lx->line++;
            continue;
        }
        lx->p = p;
        if (tab)
            flow_diag_add(lx->d, lx->line, 1, "tab in indentation (indent with spaces)");
        unsigned cur = lx->indent[lx->depth];
        if (width > cur) {
            if (lx->depth + 1 >= LEX_INDENT_DEPTH_MAX) {
                flow_diag_add(lx->d, lx->line, 1, "blocks nested too deeply");
            } else {
                lx->indent[++lx->depth] = width;
                if (!lex_push(lx, T_INDENT, p, 0))
                    return -ENOMEM;
            }
        } else {
            while (width < lx->indent[lx->depth]) {
                lx->depth--;
                if (!lex_push(lx, T_DEDENT, p, 0))
                    return -ENOMEM;
            }
            if (width != lx->indent[lx->depth])
                flow_diag_add(lx->d, lx->line, lex_col(lx, p),
                              "indentation does not match any outer block");
        }
        return 1;
    }
}

int flow_lex(const char *src, size_t len, struct flow_arena *arena, struct flow_diag *d,
             struct tok_list *toks)
{
    struct lexer lx = { .src = src,
                        .end = src + len,
                        .p = src,
                        .line = 1,
                        .line_start = src,
                        .arena = arena,
                        .d = d,
                        .toks = toks };
    int rc;
    for (;;) {
        rc = lex_line_start(&lx);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
        /* tokens of one logical line */
        bool ended = false;
        while (lx.p < lx.end) {
            char c = *lx.p;
            if (c == ' ' || c == '\t' || c == '\r') {
                lx.p++;
            } else if (c == '#') {
                while (lx.p < lx.end && *lx.p != '\n')
                    lx.p++;
            } else if (c == '\n') {
                if (lx.paren == 0) {
                    if (!lex_push(&lx, T_NEWLINE, lx.p, 0))
                        return -ENOMEM;
                    ended = true;
                }
                lx.p++;
                lx.line++;
                lx.line_start = lx.p;
                if (ended)
                    break;
            } else if (is_ident_start(c)) {
                const char *s = lx.p;
                while (lx.p < lx.end && is_ident_char(*lx.p))
                    lx.p++;
                struct tok *t = lex_push(&lx, T_IDENT, s, (unsigned)(lx.p - s));
                if (!t)
                    return -ENOMEM;
                t->sval = flow_arena_alloc(arena, t->len + 1);
                if (!t->sval)
                    return -ENOMEM;
                memcpy(t->sval, s, t->len);
                t->sval[t->len] = 0;
            } else if (is_digit(c)) {
                if ((rc = lex_number(&lx)) < 0)
                    return rc;
            } else if (c == '"') {
                if ((rc = lex_string(&lx)) < 0)
                    return rc;
            } else if ((rc = lex_punct(&lx)) < 0) {
                return rc;
            }
        }
        if (!ended && !lex_push(&lx, T_NEWLINE, lx.p, 0))
            return -ENOMEM;
        lx.paren = 0;
    }
    while (lx.depth > 0) {
        lx.depth--;
        if (!lex_push(&lx, T_DEDENT, lx.p, 0))
            return -ENOMEM;
    }
    if (!lex_push(&lx, T_EOF, lx.p, 0))
        return -ENOMEM;
    return 0;
}
