/* cp_exec_test.h — helpers shared by the executor tests (static, header only): attempts
 * built from real tasks (cp_attempt_fill), an executor on its own loop, a scratch dir. */
#ifndef CP_EXEC_TEST_H
#define CP_EXEC_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "chan.h"
#include "cp_exec.h"
#include "cp_loop.h"
#include "sf_proto.h"

#define TEST_WAIT_MS     60000u /* the longest a test waits for its attempts */
#define TEST_FILE_MAX    65536u /* a file a test reads back */
#define TEST_ERR_CAP     256u
#define TEST_PATH_MAX    256u
#define TEST_DIR_PATTERN "/tmp/sigflow-exec-test-XXXXXX"

/** One attempt; `a` first, so the done callback finds the rest. */
struct test_attempt {
    struct cp_attempt a;
    struct chan_task task;
    unsigned done_calls;
    struct cp_outcome o;
};

/** An executor on its own loop, counting done calls. */
struct test_exec {
    struct cp_loop *loop;
    struct cp_executor x;
    unsigned done_count;
};

static char test_dir[TEST_PATH_MAX]; /* the scratch directory of this test program */

/* Build t from a task of type "device", id "dev-42", activity "reprovision" with text
 * arguments names[i] = texts[i]. */
static inline void test_attempt_make(struct test_attempt *t, uint32_t seq, unsigned nargs,
                                     const char *const *names, const char *const *texts)
{
    memset(t, 0, sizeof(*t));
    struct chan_task *k = &t->task;
    k->kind = CHAN_TASK_RUN;
    memcpy(k->type, "device", 6);
    k->type_len = 6;
    memcpy(k->id, "dev-42", 6);
    k->id_len = 6;
    memcpy(k->activity, "reprovision", 11);
    k->activity_len = 11;
    k->seq = seq;
    k->attempt = 1;
    k->key_hi = 0x0123456789abcdefull;
    k->key_lo = 0xfedcba9876543210ull;
    struct sf_value v[CHAN_PARAMS_MAX];
    assert_true(nargs <= CHAN_PARAMS_MAX);
    for (unsigned i = 0; i < nargs; i++) {
        snprintf(k->param[i], sizeof(k->param[i]), "%s", names[i]);
        v[i].type = SF_VAL_TEXT;
        v[i].text.ptr = texts[i];
        v[i].text.len = (uint16_t)strlen(texts[i]);
    }
    int n = nargs ? sf_fields_encode(k->args, sizeof(k->args), v, nargs) : 0;
    assert_true(n >= 0);
    k->args_len = (uint16_t)n;
    k->nargs = (uint8_t)nargs;
    assert_true(chan_task_valid(k));
    t->a.task = k;
    t->a.attempt = k->attempt;
    assert_int_equal(cp_attempt_fill(&t->a), 0);
}

static inline void test_done(struct cp_executor *x, struct cp_attempt *a,
                             const struct cp_outcome *o)
{
    struct test_exec *h = x->done_arg;
    struct test_attempt *t = (struct test_attempt *)a;
    assert_null(a->exec_state);
    t->done_calls++;
    t->o = *o;
    h->done_count++;
}

static inline void test_kv(struct cp_kv *kv, unsigned *n, const char *key, const char *value)
{
    assert_true(*n < CP_KV_MAX);
    memset(&kv[*n], 0, sizeof(kv[*n]));
    snprintf(kv[*n].key, sizeof(kv[*n].key), "%s", key);
    snprintf(kv[*n].value, sizeof(kv[*n].value), "%s", value);
    kv[*n].line = *n + 1;
    (*n)++;
}

/* A loop and an executor of `ops` configured with kv. Returns init's answer; on error the
 * loop is freed and err holds the message. */
static inline int test_exec_init(struct test_exec *h, const struct cp_executor_ops *ops,
                                 const struct cp_kv *kv, unsigned n, char *err)
{
    memset(h, 0, sizeof(*h));
    h->loop = cp_loop_new();
    assert_non_null(h->loop);
    h->x.ops = ops;
    snprintf(h->x.name, sizeof(h->x.name), "test");
    h->x.loop = h->loop;
    h->x.done = test_done;
    h->x.done_arg = h;
    h->x.concurrency = CP_CONCURRENCY_MAX;
    err[0] = '\0';
    int rc = ops->init(&h->x, kv, n, err, TEST_ERR_CAP);
    if (rc < 0) {
        assert_null(h->x.state);
        cp_loop_free(h->loop);
        h->loop = NULL;
    }
    return rc;
}

static inline void test_exec_fini(struct test_exec *h)
{
    h->x.ops->fini(&h->x);
    assert_null(h->x.state);
    cp_loop_free(h->loop);
    h->loop = NULL;
}

/* Run the loop until `count` done calls in all, or TEST_WAIT_MS. Returns whether they came. */
static inline bool test_run_until(struct test_exec *h, unsigned count)
{
    uint64_t end = cp_now_ns() + (uint64_t)TEST_WAIT_MS * 1000000u;
    while (h->done_count < count && cp_now_ns() < end)
        assert_true(cp_loop_run_once(h->loop, 10) >= 0);
    return h->done_count >= count;
}

/* Run the loop for ms milliseconds. */
static inline void test_run_for(struct test_exec *h, unsigned ms)
{
    uint64_t end = cp_now_ns() + (uint64_t)ms * 1000000u;
    while (cp_now_ns() < end)
        assert_true(cp_loop_run_once(h->loop, 5) >= 0);
}

/* test_dir/name into path. */
static inline void test_path(char *path, const char *name)
{
    int n = snprintf(path, TEST_PATH_MAX, "%s/%s", test_dir, name);
    assert_true(n > 0 && n < (int)TEST_PATH_MAX);
}

/* Write `text` to test_dir/name with `mode`; the full path into path. */
static inline void test_write_file(char *path, const char *name, const char *text, mode_t mode)
{
    test_path(path, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* Read a whole file (up to TEST_FILE_MAX - 1 bytes) into buf; returns its length or -1. */
static inline long test_read_file(const char *path, char *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, TEST_FILE_MAX - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (long)len;
}

static inline int test_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* cmocka group setup/teardown: a scratch directory everyone may enter (0755). */
static inline int test_dir_setup(void **state)
{
    (void)state;
    snprintf(test_dir, sizeof(test_dir), "%s", TEST_DIR_PATTERN);
    if (!mkdtemp(test_dir) || chmod(test_dir, 0755) != 0)
        return -1;
    return 0;
}

static inline int test_dir_teardown(void **state)
{
    (void)state;
    return nftw(test_dir, test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
