/*
 * test_ctl_server.c — no control client can hold the others up: an idle or half-line client,
 * one that never reads its replies, too many clients, a line over the limit, and a stop with
 * all of those still connected (the server of dp_ctl_server.h with a stub handler).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dp_ctl_parse.h"
#include "dp_ctl_server.h"

#define REPLY_WAIT_MS    3000 /* a served client's reply comes long before this */
#define SHORT_TIMEOUT_MS 300  /* the line timeout of the timeout tests */
#define BIG_REPLY_BYTES  (1u << 20)

struct fixture {
    char path[108];
    struct dp_ctl_server *srv;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The stub: "big" answers a 1 MB string, "slow" takes longer than a stop's grace for
 * the reply, anything else
 * {"ok":true,"len":N}. */
static json_t *stub_handle(const char *line, size_t len, void *arg)
{
    (void)arg;
    assert_int_equal(line[len], '\0');
    if (len == 4 && memcmp(line, "slow", 4) == 0) {
        struct timespec slow = { (DP_CTL_STOP_GRACE_MS + 300) / 1000,
                                 (DP_CTL_STOP_GRACE_MS + 300) % 1000 * 1000000 };
        nanosleep(&slow, NULL);
    }
    if (len == 3 && memcmp(line, "big", 3) == 0) {
        char *s = malloc(BIG_REPLY_BYTES + 1);
        memset(s, 'b', BIG_REPLY_BYTES);
        s[BIG_REPLY_BYTES] = '\0';
        json_t *out = json_pack("{s:b, s:s}", "ok", 1, "big", s);
        free(s);
        return out;
    }
    return json_pack("{s:b, s:I}", "ok", 1, "len", (json_int_t)len);
}

static int start(void **state, unsigned line_timeout_ms)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->path, sizeof(f->path), "/tmp/sigflow-test-ctl-%d.sock", (int)getpid());
    struct dp_ctl_server_opts opts = { .path = f->path,
                                       .handle = stub_handle,
                                       .line_timeout_ms = line_timeout_ms };
    assert_int_equal(dp_ctl_server_start(&opts, &f->srv), 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return start(state, 0);
}

static int setup_short(void **state)
{
    return start(state, SHORT_TIMEOUT_MS);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    uint64_t t0 = now_ms();
    dp_ctl_server_stop(f->srv);
    /* every thread is joined, whatever the clients are doing */
    assert_true(now_ms() - t0 < 2000);
    assert_int_equal(access(f->path, F_OK), -1);
    free(f);
    return 0;
}

static int client(const struct fixture *f)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void send_text(int fd, const char *text, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, text + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may have closed on us: the reply says why */
        off += (size_t)w;
    }
}

/* One reply line within wait_ms, parsed; NULL on EOF or time out. Reads byte by byte, so
 * that a pipelined next reply stays in the socket. */
static json_t *reply(int fd, unsigned wait_ms)
{
    static char buf[BIG_REPLY_BYTES + 256];
    size_t have = 0;
    uint64_t end = now_ms() + wait_ms;
    while (have < sizeof(buf) - 1) {
        uint64_t now = now_ms();
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (now >= end || poll(&pfd, 1, (int)(end - now)) <= 0)
            return NULL;
        if (recv(fd, buf + have, 1, 0) != 1)
            return NULL;
        if (buf[have++] == '\n')
            return json_loadb(buf, have - 1, 0, NULL);
    }
    return NULL;
}

/* The server closed the connection (EOF) within wait_ms. */
static bool closed(int fd, unsigned wait_ms)
{
    char c;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, (int)wait_ms) == 1 && recv(fd, &c, 1, 0) <= 0;
}

static void expect_ok(int fd, size_t len)
{
    json_t *r = reply(fd, REPLY_WAIT_MS);
    assert_non_null(r);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(json_integer_value(json_object_get(r, "len")), len);
    json_decref(r);
}

static void expect_error(int fd, const char *want)
{
    json_t *r = reply(fd, REPLY_WAIT_MS);
    assert_non_null(r);
    assert_true(json_is_false(json_object_get(r, "ok")));
    const char *err = json_string_value(json_object_get(r, "error"));
    assert_non_null(err);
    if (!strstr(err, want))
        fail_msg("\"%s\" lacks \"%s\"", err, want);
    json_decref(r);
}

/* The bug: one thread served one connection at a time, so a client that sent nothing or
 * half a line kept everyone else waiting. */
static void test_idle_client_blocks_nobody(void **state)
{
    struct fixture *f = *state;
    int idle = client(f), half = client(f);
    send_text(half, "{\"cmd\":", 7);
    int c = client(f);
    send_text(c, "{\"cmd\":\"ping\"}\n", 15);
    expect_ok(c, 14);
    /* the half line, completed later, is still served */
    send_text(half, "\"ping\"}\n", 8);
    expect_ok(half, 14);
    close(c);
    close(half);
    close(idle);
}

static void test_pipelined_requests(void **state)
{
    struct fixture *f = *state;
    int c = client(f);
    send_text(c, "a\nbb\n\nccc\n", 10);
    expect_ok(c, 1);
    expect_ok(c, 2);
    expect_ok(c, 0);
    expect_ok(c, 3);
    close(c);
}

static void test_client_not_reading_blocks_nobody(void **state)
{
    struct fixture *f = *state;
    int hog = client(f);
    for (int i = 0; i < 8; i++)
        send_text(hog, "big\n", 4); /* megabytes of replies it never reads */
    struct timespec ms = { 0, 100 * 1000000 };
    nanosleep(&ms, NULL);
    int c = client(f);
    send_text(c, "x\n", 2);
    expect_ok(c, 1);
    close(c);
    close(hog);
}

static void test_too_many_clients(void **state)
{
    struct fixture *f = *state;
    int fds[DP_CTL_CLIENTS_MAX];
    for (unsigned i = 0; i < DP_CTL_CLIENTS_MAX; i++)
        fds[i] = client(f);
    /* each slot is taken (served) before the next */
    for (unsigned i = 0; i < DP_CTL_CLIENTS_MAX; i++) {
        send_text(fds[i], "p\n", 2);
        expect_ok(fds[i], 1);
    }
    int extra = client(f);
    expect_error(extra, "too many control connections");
    assert_true(closed(extra, REPLY_WAIT_MS));
    close(extra);
    /* a slot freed is a slot again */
    close(fds[0]);
    bool served = false;
    for (int attempt = 0; attempt < 50 && !served; attempt++) {
        int again = client(f);
        send_text(again, "pp\n", 3);
        json_t *r = reply(again, REPLY_WAIT_MS);
        served = r && json_is_true(json_object_get(r, "ok"));
        json_decref(r);
        close(again);
        struct timespec ms = { 0, 20 * 1000000 };
        nanosleep(&ms, NULL);
    }
    assert_true(served);
    for (unsigned i = 1; i < DP_CTL_CLIENTS_MAX; i++)
        close(fds[i]);
}

static void test_line_too_long(void **state)
{
    struct fixture *f = *state;
    char *line = malloc(DP_CTL_LINE_MAX + 2);
    assert_non_null(line);
    memset(line, 'l', DP_CTL_LINE_MAX + 1);
    line[DP_CTL_LINE_MAX] = '\n';
    /* exactly the limit: served */
    int c = client(f);
    send_text(c, line, DP_CTL_LINE_MAX + 1);
    expect_ok(c, DP_CTL_LINE_MAX);
    close(c);
    /* one byte more: an error, then the door; others are still served */
    line[DP_CTL_LINE_MAX] = 'l';
    line[DP_CTL_LINE_MAX + 1] = '\n';
    c = client(f);
    send_text(c, line, DP_CTL_LINE_MAX + 2);
    expect_error(c, "request line too long");
    assert_true(closed(c, REPLY_WAIT_MS));
    close(c);
    free(line);
    c = client(f);
    send_text(c, "ok\n", 3);
    expect_ok(c, 2);
    close(c);
}

static void test_idle_and_slow_clients_time_out(void **state)
{
    struct fixture *f = *state;
    int idle = client(f), slow = client(f);
    uint64_t t0 = now_ms();
    /* the slow one sends a byte every 100 ms: a line never completes */
    for (int i = 0; i < 4; i++) {
        send_text(slow, "{", 1);
        struct timespec ms = { 0, 100 * 1000000 };
        nanosleep(&ms, NULL);
    }
    expect_error(idle, "no whole request line within 300 ms");
    assert_true(closed(idle, REPLY_WAIT_MS));
    expect_error(slow, "no whole request line within 300 ms");
    assert_true(closed(slow, REPLY_WAIT_MS));
    assert_true(now_ms() - t0 < 2000);
    close(idle);
    close(slow);
    /* a client that keeps asking is never timed out */
    int busy = client(f);
    for (int i = 0; i < 6; i++) {
        send_text(busy, "k\n", 2);
        expect_ok(busy, 1);
        struct timespec ms = { 0, 100 * 1000000 };
        nanosleep(&ms, NULL);
    }
    close(busy);
}

/* Stop with an idle client, a half line and a client that never reads: every thread ends
 * (teardown checks the time), and each client sees its connection end. */
static void test_stop_with_clients_connected(void **state)
{
    struct fixture *f = *state;
    int idle = client(f), half = client(f), hog = client(f);
    send_text(half, "{\"cm", 4);
    for (int i = 0; i < 8; i++)
        send_text(hog, "big\n", 4);
    struct timespec ms = { 0, 100 * 1000000 };
    nanosleep(&ms, NULL);
    uint64_t t0 = now_ms();
    dp_ctl_server_stop(f->srv);
    assert_true(now_ms() - t0 < 2000);
    f->srv = NULL;
    assert_true(closed(idle, REPLY_WAIT_MS));
    assert_true(closed(half, REPLY_WAIT_MS));
    close(idle);
    close(half);
    close(hog);
}

/* The reply to a request in progress when the server stops still arrives, however long the
 * handler takes (the fault command stops the node it answers from, then waits up to 5 s for
 * the owners: its client must still see "ok"). */
static void test_stop_delivers_reply_in_progress(void **state)
{
    struct fixture *f = *state;
    int c = client(f), idle = client(f);
    send_text(c, "slow\n", 5);
    struct timespec ms = { 0, 100 * 1000000 };
    nanosleep(&ms, NULL);
    dp_ctl_server_stop(f->srv);
    f->srv = NULL;
    expect_ok(c, 4);
    assert_true(closed(c, REPLY_WAIT_MS));
    assert_true(closed(idle, REPLY_WAIT_MS));
    close(c);
    close(idle);
}

static void test_start_errors(void **state)
{
    (void)state;
    struct dp_ctl_server *srv = NULL;
    char path[200];
    memset(path, 'p', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    struct dp_ctl_server_opts opts = { .path = path, .handle = stub_handle };
    assert_int_equal(dp_ctl_server_start(&opts, &srv), -ENAMETOOLONG);
    opts.path = "/nonexistent-dir/x.sock";
    assert_int_equal(dp_ctl_server_start(&opts, &srv), -ENOENT);
    opts.handle = NULL;
    assert_int_equal(dp_ctl_server_start(&opts, &srv), -EINVAL);
    assert_null(srv);
    dp_ctl_server_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle_client_blocks_nobody, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_not_reading_blocks_nobody, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_and_slow_clients_time_out, setup_short, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_clients_connected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_delivers_reply_in_progress, setup, teardown),
        cmocka_unit_test(test_start_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
