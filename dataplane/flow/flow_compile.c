/*
 * flow_compile.c — compiler driver: source -> tokens -> syntax tree -> blob -> def.
 *
 * Runs off the data path (the daemon compiles uploaded definitions on a control thread),
 * so it allocates freely: an arena for tokens and the tree, freed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flow_internal.h"

#define FLOW_SOURCE_LEN_MAX (1u << 20)
#define ARENA_CHUNK_BYTES   (64u << 10)

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) uint8_t data[];
};

struct flow_arena {
    struct arena_chunk *head;
};

void *flow_arena_alloc(struct flow_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct arena_chunk *c = a->head;
    if (!c || c->used + n > c->cap) {
        size_t cap = n > ARENA_CHUNK_BYTES ? n : ARENA_CHUNK_BYTES;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void arena_free(struct flow_arena *a)
{
    while (a->head) {
        struct arena_chunk *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

void flow_diag_add(struct flow_diag *d, unsigned line, unsigned col, const char *fmt, ...)
{
    d->count++;
    if (!d->errs)
        return;
    if (d->errs->count == FLOW_ERRORS_MAX) {
        d->errs->dropped++;
        return;
    }
    struct flow_error *e = &d->errs->err[d->errs->count++];
    char msg[FLOW_ERROR_LEN_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    e->line = line;
    e->col = col;
    int n = snprintf(e->text, sizeof(e->text), "%s:%u:%u: ", d->file, line, col);
    if (n >= 0 && (size_t)n < sizeof(e->text))
        snprintf(e->text + n, sizeof(e->text) - (size_t)n, "%s", msg);
}

/* Errors in source order (stable: passes report in order within a line). */
static void sort_errors(struct flow_errors *errs)
{
    for (unsigned i = 1; i < errs->count; i++) {
        struct flow_error e = errs->err[i];
        unsigned j = i;
        while (j > 0 && (errs->err[j - 1].line > e.line ||
                         (errs->err[j - 1].line == e.line && errs->err[j - 1].col > e.col))) {
            errs->err[j] = errs->err[j - 1];
            j--;
        }
        errs->err[j] = e;
    }
}

int flow_compile_buffer(const char *file, const char *src, size_t len, struct flow_def **out,
                        struct flow_errors *errs)
{
    struct flow_diag d = { .file = file ? file : "<input>", .errs = errs };
    struct flow_arena arena = { 0 };
    struct tok_list toks = { 0 };
    struct ast_workflow wf;
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    if (errs)
        memset(errs, 0, sizeof(*errs));
    if (len > FLOW_SOURCE_LEN_MAX) {
        flow_diag_add(&d, 1, 1, "source larger than %u bytes", FLOW_SOURCE_LEN_MAX);
        return -EINVAL;
    }
    int rc = flow_lex(src, len, &arena, &d, &toks);
    if (rc == 0)
        rc = flow_parse(&toks, &arena, &d, &wf);
    if (rc == 0 && wf.name)
        rc = flow_generate(&wf, &d, &blob, &blob_len);
    if (rc == 0 && d.count == 0 && !blob)
        rc = -EINVAL; /* no workflow header: already reported */
    if (rc == 0 && d.count == 0) {
        rc = fb_load(blob, blob_len, out);
        if (rc == -EINVAL)
            flow_diag_add(&d, 1, 1, "internal error: compiled definition failed validation");
    } else if (rc == 0) {
        rc = -EINVAL;
    }
    free(blob);
    free(toks.v);
    arena_free(&arena);
    if (errs)
        sort_errors(errs);
    return rc;
}

int flow_compile_file(const char *path, struct flow_def **out, struct flow_errors *errs)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;
    char *src = NULL;
    struct stat st;
    if (fd < 0) {
        rc = -errno;
        goto out_err;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EISDIR;
        goto out_close;
    }
    if (st.st_size > FLOW_SOURCE_LEN_MAX) {
        rc = -EFBIG;
        goto out_close;
    }
    src = malloc((size_t)st.st_size + 1);
    if (!src) {
        rc = -ENOMEM;
        goto out_close;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, src + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out_free;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    rc = flow_compile_buffer(path, src, got, out, errs);
    free(src);
    return rc;
out_free:
    free(src);
out_close:
    close(fd);
out_err:
    if (errs) {
        memset(errs, 0, sizeof(*errs));
        errs->count = 1;
        snprintf(errs->err[0].text, sizeof(errs->err[0].text), "%s: %s", path, strerror(-rc));
    }
    return rc;
}
