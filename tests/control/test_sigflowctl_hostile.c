/*
 * test_sigflowctl_hostile — sigflowctl against a fake node whose answers carry terminal
 * escapes, C1 controls and missing members, and with a file name that is not UTF-8: no
 * crash, no raw control byte on the terminal, --json stays valid ASCII JSON.
 * Argument: the sigflowctl binary.
 */
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define OUT_MAX (64u << 10)

static const char *ctl_path;
static char dir[] = "/tmp/test_sigflowctl_XXXXXX";
static char sock_path[108];

struct fake_node {
    int listen_fd;
    const char *reply;
};

static void *fake_node_main(void *arg)
{
    struct fake_node *n = arg;
    int fd = accept(n->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char req[4096];
    ssize_t got = recv(fd, req, sizeof(req), 0); /* one request line */
    (void)got;
    ssize_t w = send(fd, n->reply, strlen(n->reply), MSG_NOSIGNAL);
    (void)w;
    close(fd);
    return NULL;
}

/* Run sigflowctl --socket S args... against a node answering `reply`; stdout+stderr into
 * out (NUL-terminated), returns the exit status (or 128 + signal). */
static int run_ctl(const char *reply, const char *const *args, char *out)
{
    struct fake_node node = { .reply = reply };
    node.listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(node.listen_fd >= 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    unlink(sock_path);
    assert_int_equal(bind(node.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(node.listen_fd, 1), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fake_node_main, &node), 0);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[16] = { ctl_path, "--socket", sock_path };
        int n = 3;
        for (int i = 0; args[i] && n < 15; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        execv(ctl_path, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t have = 0;
    ssize_t r;
    while (have < OUT_MAX - 1 && (r = read(pipefd[0], out + have, OUT_MAX - 1 - have)) > 0)
        have += (size_t)r;
    out[have] = 0;
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    shutdown(node.listen_fd, SHUT_RDWR);
    close(node.listen_fd);
    pthread_join(th, NULL);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* No C0 control but '\n', no DEL, no C1 control (U+0080..U+009F) in out. */
static void assert_terminal_safe(const char *out)
{
    for (const unsigned char *p = (const unsigned char *)out; *p; p++) {
        if ((*p < 0x20 && *p != '\n') || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0))
            fail_msg("raw byte 0x%02x at %zu in:\n%s", *p, (size_t)(p - (const unsigned char *)out),
                     out);
    }
}

#define HOSTILE "x\\u001b]0;owned\\u0007\\u001b[2J\\u009b31m\\u007f"

static void test_describe_escapes(void **state)
{
    (void)state;
    static char out[OUT_MAX];
    const char *reply = "{\"ok\":true,\"type\":\"t" HOSTILE "\",\"id\":\"" HOSTILE
                        "\",\"state\":\"" HOSTILE "\",\"vars\":{\"v" HOSTILE "\":\"" HOSTILE
                        "\"},\"queues\":{\"q\":[\"" HOSTILE "\"]},\"timers\":[{\"kind\":1}],"
                        "\"activities\":[{\"activity\":\"" HOSTILE "\"}]}\n";
    const char *args[] = { "workflow", "describe", "t", "id", NULL };
    assert_int_equal(run_ctl(reply, args, out), 0);
    assert_terminal_safe(out);
    assert_non_null(strstr(out, "x\\x1b]0;owned\\x07\\x1b[2J\\xc2\\x9b31m\\x7f"));
}

static void test_lists_and_errors_escape(void **state)
{
    (void)state;
    static char out[OUT_MAX];
    const char *list = "{\"ok\":true,\"workflows\":[{\"type\":\"" HOSTILE "\",\"id\":\"" HOSTILE
                       "\"}],\"next\":\"" HOSTILE "\"}\n";
    const char *args_list[] = { "workflow", "list", NULL };
    assert_int_equal(run_ctl(list, args_list, out), 0);
    assert_terminal_safe(out);
    const char *tasks = "{\"ok\":true,\"tasks\":[{\"type\":\"" HOSTILE "\",\"activity\":\"" HOSTILE
                        "\",\"idempotency_key\":\"" HOSTILE "\"}]}\n";
    const char *args_tasks[] = { "activity", "list", NULL };
    assert_int_equal(run_ctl(tasks, args_tasks, out), 0);
    assert_terminal_safe(out);
    const char *defs = "{\"ok\":true,\"definitions\":[{\"type\":\"" HOSTILE
                       "\",\"states\":{\"" HOSTILE "\":3}}]}\n";
    const char *args_defs[] = { "definition", "list", NULL };
    assert_int_equal(run_ctl(defs, args_defs, out), 0);
    assert_terminal_safe(out);
    const char *err = "{\"ok\":false,\"error\":\"" HOSTILE "\"}\n";
    assert_int_equal(run_ctl(err, args_list, out), 65);
    assert_terminal_safe(out);
    /* --json: valid JSON, ASCII only */
    const char *args_json[] = { "--json", "workflow", "list", NULL };
    assert_int_equal(run_ctl(list, args_json, out), 0);
    assert_terminal_safe(out);
    assert_non_null(strstr(out, "\\u001B]0;owned\\u0007\\u001B[2J\\u009B31m\\u007f"));
    for (const unsigned char *p = (const unsigned char *)out; *p; p++)
        assert_true(*p < 0x80);
}

/* A file name that is not UTF-8, and an answer without its message: no crash. */
static void test_deploy_non_utf8_name(void **state)
{
    (void)state;
    static char out[OUT_MAX];
    char path[256];
    snprintf(path, sizeof(path), "%s/\xff\x1b[2Jbad.flow", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("workflow t version 1\n", f);
    fclose(f);
    const char *args[] = { "definition", "deploy", path, NULL };
    assert_int_equal(run_ctl("{\"ok\":true}\n", args, out), 0);
    assert_terminal_safe(out);
    assert_int_equal(
        run_ctl("{\"ok\":false,\"error\":\"e.flow:1:1: " HOSTILE "\\nsecond\"}\n", args, out), 65);
    assert_terminal_safe(out);
    assert_non_null(strstr(out, "\nsecond"));
    unlink(path);
    /* a type that is not UTF-8 is refused, not sent without it */
    const char *args_type[] = { "workflow", "list", "--type", "\xff", NULL };
    assert_int_equal(run_ctl("{\"ok\":true,\"workflows\":[]}\n", args_type, out), 64);
    assert_terminal_safe(out);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SIGFLOWCTL\n", argv[0]);
        return 2;
    }
    ctl_path = argv[1];
    if (!mkdtemp(dir))
        return 1;
    snprintf(sock_path, sizeof(sock_path), "%s/node.sock", dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe_escapes),
        cmocka_unit_test(test_lists_and_errors_escape),
        cmocka_unit_test(test_deploy_non_utf8_name),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(sock_path);
    rmdir(dir);
    return rc;
}
