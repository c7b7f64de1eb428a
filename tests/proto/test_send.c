/* test_send — sigflow-send against a loopback UDP receiver owned by the test (127.0.0.1). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "sf_proto.h"

#define RX_WAIT_MS    3000 /* longest wait for one datagram */
#define CHILD_WAIT_MS 20000
#define SEEN_MAX      256

static const char *sender_path;

struct rx {
    int fd;
    char port[8];
};

static void rx_open(struct rx *r)
{
    r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(r->fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&a, &len), 0);
    snprintf(r->port, sizeof(r->port), "%u", ntohs(a.sin_port));
    int buf = 4 << 20;
    setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

/* Receive one datagram within ms; returns its length, or -1 on timeout. */
static ssize_t rx_recv(struct rx *r, uint8_t *buf, size_t cap, int ms, struct sockaddr_in *from)
{
    struct pollfd p = { .fd = r->fd, .events = POLLIN };
    if (poll(&p, 1, ms) <= 0)
        return -1;
    socklen_t fl = sizeof(*from);
    return recvfrom(r->fd, buf, cap, 0, (struct sockaddr *)from, &fl);
}

struct child {
    pid_t pid;
    int out_fd;
};

/* Start sigflow-send with "--host 127.0.0.1 --port P" and the NULL-terminated args. */
static void child_start(struct child *c, const struct rx *r, const char *const *args)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = sender_path;
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = r->port;
    for (int i = 0; args[i] != NULL; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int p[2];
    assert_int_equal(pipe(p), 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(sender_path, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    c->out_fd = p[0];
}

/* Wait for the child; returns its exit status and its stdout in out. */
static int child_finish(struct child *c, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        struct pollfd p = { .fd = c->out_fd, .events = POLLIN };
        if (poll(&p, 1, CHILD_WAIT_MS) <= 0)
            break;
        ssize_t got = read(c->out_fd, out + n, cap - 1 - n);
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    out[n] = '\0';
    close(c->out_fd);
    int status;
    assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Whether the child has exited (without reaping it). */
static bool child_exited(struct child *c)
{
    siginfo_t si = { 0 };
    return waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid != 0;
}

static uint64_t summary_u64(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (p == NULL)
        fail_msg("no %s in summary: %s", key, json);
    return strtoull(p + strlen(pat), NULL, 10);
}

static int run_simple(const char *const *args, char *out, size_t cap)
{
    struct rx r;
    rx_open(&r);
    struct child c;
    child_start(&c, &r, args);
    int rc = child_finish(&c, out, cap);
    close(r.fd);
    return rc;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_fleet_delivers_all(void **state)
{
    (void)state;
    struct rx r;
    rx_open(&r);
    const char *args[] = { "--fleet",         "10",   "--rounds", "3",     "--batch",        "4",
                           "--first",         "5",    "--prefix", "dev-",  "--sender-id",    "42",
                           "--event-id-base", "1000", "--rate",   "20000", "--summary-json", NULL };
    struct child c;
    child_start(&c, &r, args);
    int seen[3][10] = { { 0 } };
    unsigned events = 0, frames = 0;
    uint64_t last_seq = 0;
    uint8_t buf[SF_DATAGRAM_LEN_MAX];
    struct sockaddr_in from;
    while (events < 30) {
        ssize_t n = rx_recv(&r, buf, sizeof(buf), RX_WAIT_MS, &from);
        assert_true(n > 0);
        struct sf_frame_hdr hdr;
        struct sf_event evs[SF_FRAME_EVENTS_MAX];
        int ne = sf_datagram_parse(buf, (size_t)n, &hdr, evs, SF_FRAME_EVENTS_MAX);
        assert_true(ne >= 1 && ne <= 4);
        assert_int_equal(hdr.sender_id, 42);
        assert_int_equal(hdr.flags, 0);
        assert_true(hdr.frame_seq > last_seq);
        last_seq = hdr.frame_seq;
        for (int i = 0; i < ne; i++) {
            char id[65];
            snprintf(id, sizeof(id), "%.*s", evs[i].id_len, evs[i].id);
            unsigned idx;
            assert_int_equal(sscanf(id, "dev-%06u", &idx), 1);
            assert_true(idx >= 5 && idx < 15);
            assert_memory_equal(evs[i].type, "device", 6);
            assert_memory_equal(evs[i].signal, "telemetry", 9);
            struct sf_value v[2];
            assert_int_equal(sf_fields_decode(evs[i].fields, evs[i].fields_len, v, 2), 1);
            assert_int_equal(v[0].type, SF_VAL_INT);
            int64_t round = v[0].i;
            assert_true(round >= 0 && round < 3);
            assert_int_equal(evs[i].event_id, 1000 + (uint64_t)round * 10 + (idx - 5) + 1);
            seen[round][idx - 5]++;
        }
        events += (unsigned)ne;
        frames++;
    }
    char out[4096];
    assert_int_equal(child_finish(&c, out, sizeof(out)), 0);
    for (int rd = 0; rd < 3; rd++)
        for (int i = 0; i < 10; i++)
            assert_int_equal(seen[rd][i], 1);
    assert_int_equal(frames, 8); /* 30 events in frames of 4 */
    assert_int_equal(summary_u64(out, "frames"), 8);
    assert_int_equal(summary_u64(out, "events"), 30);
    close(r.fd);
}

static void test_one_event_typed_fields(void **state)
{
    (void)state;
    struct rx r;
    rx_open(&r);
    const char *args[] = { "-t",     "device", "-i",  "sensor-7", "-s", "telemetry",   "-e",
                           "77",     "-f",     "12",  "-f",       "-3", "-f",          "1.5",
                           "-f",     "true",   "-f",  "false",    "-f", "hello world", "-f",
                           "name=x", "-f",     "1e3", NULL };
    struct child c;
    child_start(&c, &r, args);
    uint8_t buf[SF_DATAGRAM_LEN_MAX];
    struct sockaddr_in from;
    ssize_t n = rx_recv(&r, buf, sizeof(buf), RX_WAIT_MS, &from);
    char out[1024];
    assert_int_equal(child_finish(&c, out, sizeof(out)), 0);
    struct sf_frame_hdr hdr;
    struct sf_event ev;
    assert_int_equal(sf_datagram_parse(buf, (size_t)n, &hdr, &ev, 1), 1);
    assert_int_equal(ev.event_id, 77);
    assert_memory_equal(ev.id, "sensor-7", 8);
    struct sf_value v[16];
    assert_int_equal(sf_fields_decode(ev.fields, ev.fields_len, v, 16), 8);
    assert_true(v[0].type == SF_VAL_INT && v[0].i == 12);
    assert_true(v[1].type == SF_VAL_INT && v[1].i == -3);
    assert_true(v[2].type == SF_VAL_FLOAT && v[2].f == 1.5);
    assert_true(v[3].type == SF_VAL_BOOL && v[3].b);
    assert_true(v[4].type == SF_VAL_BOOL && !v[4].b);
    assert_int_equal(v[5].type, SF_VAL_TEXT);
    assert_int_equal(v[5].text.len, 11);
    assert_memory_equal(v[5].text.ptr, "hello world", 11);
    assert_true(v[6].type == SF_VAL_TEXT && v[6].text.len == 1 && v[6].text.ptr[0] == 'x');
    assert_true(v[7].type == SF_VAL_FLOAT && v[7].f == 1000.0);
    close(r.fd);
}

static void test_json_form(void **state)
{
    (void)state;
    struct rx r;
    rx_open(&r);
    const char *args[] = { "-t",          "device", "-i",      "sensor-1", "-s",
                           "telemetry",   "-e",     "17",      "--json",   "-f",
                           "temp_c=21.5", "-f",     "ok=true", "-f",       "note=say \"hi\"\\",
                           "-f",          "5",      NULL };
    struct child c;
    child_start(&c, &r, args);
    uint8_t buf[SF_DATAGRAM_LEN_MAX];
    struct sockaddr_in from;
    ssize_t n = rx_recv(&r, buf, sizeof(buf), RX_WAIT_MS, &from);
    char out[1024];
    assert_int_equal(child_finish(&c, out, sizeof(out)), 0);
    assert_true(n > 0);
    assert_int_equal(buf[0], '{');
    struct sf_frame_hdr hdr;
    struct sf_event ev;
    assert_int_equal(sf_datagram_parse(buf, (size_t)n, &hdr, &ev, 1), 1);
    assert_true(ev.fields_json && ev.has_event_id && ev.event_id == 17);
    struct sf_json_field f[SF_JSON_FIELDS_MAX];
    assert_int_equal(sf_json_fields_decode(ev.fields, ev.fields_len, f, SF_JSON_FIELDS_MAX), 4);
    assert_memory_equal(f[0].name, "temp_c", 6);
    assert_true(f[0].value.type == SF_VAL_FLOAT && f[0].value.f == 21.5);
    assert_true(f[1].value.type == SF_VAL_BOOL && f[1].value.b);
    char text[64];
    int tl = sf_json_unescape(f[2].value.text.ptr, f[2].value.text.len, text, sizeof(text));
    assert_int_equal(tl, 9);
    assert_memory_equal(text, "say \"hi\"\\", 9);
    assert_memory_equal(f[3].name, "f3", 2); /* unnamed: positional name */
    assert_true(f[3].value.type == SF_VAL_INT && f[3].value.i == 5);
    close(r.fd);
}

static void test_file_mode(void **state)
{
    (void)state;
    char path[] = "/tmp/test_send_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "# type id signal event_id values...\n"
                        "device a telemetry 1 10 x\n"
                        "\n"
                        "device b telemetry 2 2.5   # comment\n"
                        "loyalty c purchase 3\n"
                        "  device d telemetry 4 true false\n"
                        "device e telemetry 5 -7\n";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
    close(fd);
    struct rx r;
    rx_open(&r);
    const char *args[] = { "--file", path, "--batch", "2", "--summary-json", NULL };
    struct child c;
    child_start(&c, &r, args);
    uint64_t want_id = 1;
    uint8_t buf[SF_DATAGRAM_LEN_MAX];
    struct sockaddr_in from;
    for (int frame = 0; frame < 3; frame++) {
        ssize_t n = rx_recv(&r, buf, sizeof(buf), RX_WAIT_MS, &from);
        struct sf_frame_hdr hdr;
        struct sf_event evs[4];
        int ne = sf_datagram_parse(buf, (size_t)n, &hdr, evs, 4);
        assert_int_equal(ne, frame < 2 ? 2 : 1);
        for (int i = 0; i < ne; i++, want_id++) {
            assert_int_equal(evs[i].event_id, want_id);
            assert_int_equal(evs[i].id[0], 'a' + (int)want_id - 1);
            struct sf_value v[4];
            int nv = sf_fields_decode(evs[i].fields, evs[i].fields_len, v, 4);
            static const int want_nv[] = { 2, 1, 0, 2, 1 };
            assert_int_equal(nv, want_nv[want_id - 1]);
            if (want_id == 1)
                assert_true(v[0].i == 10 && v[1].type == SF_VAL_TEXT);
            if (want_id == 2)
                assert_true(v[0].type == SF_VAL_FLOAT && v[0].f == 2.5);
            if (want_id == 5)
                assert_true(v[0].type == SF_VAL_INT && v[0].i == -7);
        }
    }
    char out[1024];
    assert_int_equal(child_finish(&c, out, sizeof(out)), 0);
    assert_int_equal(summary_u64(out, "events"), 5);
    close(r.fd);

    /* A bad line stops the run with status 1. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("device a telemetry 1\ndevice b telemetry notanumber\n", f);
    fclose(f);
    const char *bad_args[] = { "--file", path, NULL };
    assert_int_equal(run_simple(bad_args, out, sizeof(out)), 1);
    unlink(path);
}

static void test_malformed_kinds(void **state)
{
    (void)state;
    static const struct {
        const char *kind;
        int expect;
    } kinds[] = {
        { "empty", SF_ERR_EMPTY },
        { "bad_magic", SF_ERR_BAD_MAGIC },
        { "bad_version", SF_ERR_BAD_VERSION },
        { "trunc_header", SF_ERR_TRUNC_HEADER },
        { "truncated_header", SF_ERR_TRUNC_HEADER },
        { "bad_header_len", SF_ERR_BAD_HEADER_LEN },
        { "bad_flags", SF_ERR_BAD_FLAGS },
        { "bad_count", SF_ERR_BAD_COUNT },
        { "trunc_event", SF_ERR_TRUNC_EVENT },
        { "bad_event_len", SF_ERR_BAD_EVENT_LEN },
        { "bad_name", SF_ERR_BAD_NAME },
        { "bad_fields", SF_ERR_BAD_FIELDS },
        { "trailing", SF_ERR_TRAILING },
        { "too_long", SF_ERR_TOO_LONG },
        { "bad_json", SF_ERR_BAD_JSON },
        { "json_missing", SF_ERR_JSON_MISSING },
        { "too_many_fields", SF_ERR_TOO_MANY_FIELDS },
    };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        struct rx r;
        rx_open(&r);
        const char *args[] = { "--malformed", kinds[k].kind, NULL };
        struct child c;
        child_start(&c, &r, args);
        static uint8_t buf[SF_DATAGRAM_LEN_MAX + 100];
        struct sockaddr_in from;
        ssize_t n = rx_recv(&r, buf, sizeof(buf), RX_WAIT_MS, &from);
        char out[256];
        assert_int_equal(child_finish(&c, out, sizeof(out)), 0);
        assert_true(n >= 0);
        struct sf_frame_hdr hdr;
        struct sf_event ev;
        int rc = sf_datagram_parse(buf, (size_t)n, &hdr, &ev, 1);
        if (rc != kinds[k].expect)
            fail_msg("%s parsed as %s", kinds[k].kind, sf_err_name(rc));
        close(r.fd);
    }
}

static void test_usage_errors(void **state)
{
    (void)state;
    char out[256];
    static const char *const cases[][10] = {
        { NULL },
        { "--batch", "0", "--fleet", "1", "--rounds", "1", NULL },
        { "--fleet", "3", NULL },
        { "-t", "a", "-i", "b", "-s", "c", "--json", "--ack" },
        { "--malformed", "no_such_kind", NULL },
        { "-t", "a b", "-i", "b", "-s", "c", NULL },
        { "--fleet", "2", "--rounds", "1", "--file", "x", NULL },
        { "--port", "0", "-t", "a", "-i", "b", "-s", "c", NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *args[12] = { 0 };
        for (int j = 0; j < 10 && cases[i][j] != NULL; j++)
            args[j] = cases[i][j];
        int rc = run_simple(args, out, sizeof(out));
        if (rc != 64)
            fail_msg("case %zu: exit %d, want 64", i, rc);
    }
    static char help_out[16384];
    const char *help[] = { "--help", NULL };
    assert_int_equal(run_simple(help, help_out, sizeof(help_out)), 0);
    assert_non_null(strstr(help_out, "--malformed"));
    assert_non_null(strstr(help_out, "Exit status"));
}

/* Answer one frame as two owner cores would: even indexes from owner 0, odd from owner 1. */
static void send_acks(struct rx *r, const struct sockaddr_in *to, const struct sf_frame_hdr *h,
                      const struct sf_ack_entry *e, unsigned n)
{
    for (uint16_t owner = 0; owner < 2; owner++) {
        struct sf_ack_entry part[SF_ACK_ENTRIES_MAX];
        unsigned k = 0;
        for (unsigned i = 0; i < n; i++) {
            if (e[i].event_index % 2 == owner)
                part[k++] = e[i];
        }
        if (k == 0)
            continue;
        struct sf_ack_hdr ah = { .sender_id = h->sender_id,
                                 .frame_seq = h->frame_seq,
                                 .entry_count = (uint16_t)k,
                                 .owner = owner,
                                 .durable_lsn = 1 };
        uint8_t buf[1024];
        int len = sf_ack_encode(buf, sizeof(buf), &ah, part);
        assert_true(len > 0);
        assert_int_equal(
            sendto(r->fd, buf, (size_t)len, 0, (const struct sockaddr *)to, sizeof(*to)), len);
    }
}

/*
 * First transmission: event ids = 0 mod 2 are applied, = 1 mod 4 are NACKed "overloaded",
 * = 3 mod 4 get no answer. Resends are all acknowledged. The sender must resend exactly
 * the odd ones once, with the same ids, in new frames.
 */
static void test_ack_partial_and_resend(void **state)
{
    (void)state;
    struct rx r;
    rx_open(&r);
    const char *args[] = {
        "--fleet",   "8", "--rounds",    "2", "--batch",        "4", "--ack", "--timeout-ms", "100",
        "--retries", "5", "--sender-id", "9", "--summary-json", NULL
    };
    struct child c;
    child_start(&c, &r, args);
    unsigned seen[17] = { 0 };
    uint64_t first_seq[17] = { 0 };
    uint8_t buf[SF_DATAGRAM_LEN_MAX];
    struct sockaddr_in from;
    while (!child_exited(&c)) {
        ssize_t n = rx_recv(&r, buf, sizeof(buf), 50, &from);
        if (n < 0)
            continue;
        struct sf_frame_hdr hdr;
        struct sf_event evs[SF_FRAME_EVENTS_MAX];
        int ne = sf_datagram_parse(buf, (size_t)n, &hdr, evs, SF_FRAME_EVENTS_MAX);
        assert_true(ne > 0);
        assert_int_equal(hdr.flags, SF_FLAG_ACK_REQ);
        struct sf_ack_entry e[SF_FRAME_EVENTS_MAX];
        unsigned k = 0;
        for (int i = 0; i < ne; i++) {
            uint64_t id = evs[i].event_id;
            assert_true(id >= 1 && id <= 16);
            seen[id]++;
            struct sf_ack_entry a = { .event_id = id, .event_index = (uint16_t)i };
            if (seen[id] == 1) {
                first_seq[id] = hdr.frame_seq;
                if (id % 4 == 3)
                    continue; /* lost ACK */
                a.status = id % 2 == 0 ? SF_ACK_APPLIED : SF_ACK_OVERLOADED;
            } else {
                assert_true(hdr.frame_seq > first_seq[id]); /* a new frame */
                a.status = id % 4 == 3 ? SF_ACK_DUPLICATE : SF_ACK_APPLIED;
            }
            e[k++] = a;
        }
        if (k > 0)
            send_acks(&r, &from, &hdr, e, k);
    }
    char out[4096];
    assert_int_equal(child_finish(&c, out, sizeof(out)), 0);
    for (unsigned id = 1; id <= 16; id++) {
        if (seen[id] != (id % 2 == 0 ? 1u : 2u))
            fail_msg("event %u sent %u times", id, seen[id]);
    }
    assert_int_equal(summary_u64(out, "events"), 16);
    assert_int_equal(summary_u64(out, "acked"), 16);
    assert_int_equal(summary_u64(out, "resends"), 8);
    assert_int_equal(summary_u64(out, "unacked"), 0);
    assert_int_equal(summary_u64(out, "applied"), 12);
    assert_int_equal(summary_u64(out, "duplicate"), 4);
    assert_int_equal(summary_u64(out, "overloaded"), 4);
    close(r.fd);
}

/* Nobody answers: each event goes out 1 + retries times, then the sender gives up (exit 1). */
static void test_ack_none_gives_up(void **state)
{
    (void)state;
    struct rx r;
    rx_open(&r);
    const char *args[] = { "--fleet",      "3",  "--rounds",  "1", "--batch",        "2", "--ack",
                           "--timeout-ms", "30", "--retries", "2", "--summary-json", NULL };
    struct child c;
    child_start(&c, &r, args);
    unsigned seen[4] = { 0 };
    uint8_t buf[SF_DATAGRAM_LEN_MAX];
    struct sockaddr_in from;
    for (;;) {
        ssize_t n = rx_recv(&r, buf, sizeof(buf), 50, &from);
        if (n < 0) {
            if (child_exited(&c))
                break;
            continue;
        }
        struct sf_frame_hdr hdr;
        struct sf_event evs[4];
        int ne = sf_datagram_parse(buf, (size_t)n, &hdr, evs, 4);
        assert_true(ne > 0 && ne <= 2);
        for (int i = 0; i < ne; i++) {
            assert_true(evs[i].event_id >= 1 && evs[i].event_id <= 3);
            seen[evs[i].event_id]++;
        }
    }
    char out[4096];
    assert_int_equal(child_finish(&c, out, sizeof(out)), 1);
    for (int id = 1; id <= 3; id++)
        assert_int_equal(seen[id], 3);
    assert_int_equal(summary_u64(out, "unacked"), 3);
    assert_int_equal(summary_u64(out, "resends"), 6);
    assert_int_equal(summary_u64(out, "acked"), 0);
    close(r.fd);
}

int main(void)
{
    sender_path = getenv("SIGFLOW_SEND");
    if (sender_path == NULL) {
        fprintf(stderr, "test_send: SIGFLOW_SEND (path of sigflow-send) not set; skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fleet_delivers_all),
        cmocka_unit_test(test_one_event_typed_fields),
        cmocka_unit_test(test_json_form),
        cmocka_unit_test(test_file_mode),
        cmocka_unit_test(test_malformed_kinds),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_ack_partial_and_resend),
        cmocka_unit_test(test_ack_none_gives_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
