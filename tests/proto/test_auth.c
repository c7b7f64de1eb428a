/*
 * test_auth — frame tags and key files (sf_auth.h): RFC 4231 vectors and OpenSSL's own
 * HMAC as references, signing and checking frames, the key file parser, and sigflow-send's
 * signed frames, resends and attacks against a loopback receiver owned by the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sf_auth.h"
#include "sf_proto.h"

#define T_KEY_HEX     "4f6e652074776f20746872656520666f75722066697665207369782073657665"
#define T_RX_WAIT_MS  3000
#define T_CHILD_MS    20000
#define T_FRAMES_MAX  64
#define T_MSG_LEN_MAX 2100

static const char *sender_path;

static void t_hex(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* ---- HMAC ---------------------------------------------------------------------------- */

struct t_vector {
    uint8_t key_byte; /* the key is key_len bytes of this, or 0x01.. when 0 */
    size_t key_len;
    const char *key_text; /* or this text */
    const char *data;     /* text, or data_len bytes of data_byte when NULL */
    uint8_t data_byte;
    size_t data_len;
    const char *tag_hex;
};

/* RFC 4231 §4, HMAC-SHA-256 (test case 5 truncates its output: not used). */
static const struct t_vector t_vectors[] = {
    { 0x0b, 20, NULL, "Hi There", 0, 0,
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
    { 0, 0, "Jefe", "what do ya want for nothing?", 0, 0,
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
    { 0xaa, 20, NULL, NULL, 0xdd, 50,
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
    { 0, 25, NULL, NULL, 0xcd, 50,
      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
    { 0xaa, 131, NULL, "Test Using Larger Than Block-Size Key - Hash Key First", 0, 0,
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
    { 0xaa, 131, NULL,
      "This is a test using a larger than block-size key and a larger than block-size data. "
      "The key needs to be hashed before being used by the HMAC algorithm.",
      0, 0, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
};

static void test_hmac_rfc4231(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof(t_vectors) / sizeof(t_vectors[0]); v++) {
        const struct t_vector *t = &t_vectors[v];
        uint8_t key[256], data[256], want[SF_AUTH_TAG_LEN], got[SF_AUTH_TAG_LEN];
        size_t key_len = t->key_text != NULL ? strlen(t->key_text) : t->key_len;
        for (size_t i = 0; i < key_len; i++)
            key[i] = t->key_text != NULL ? (uint8_t)t->key_text[i]
                     : t->key_byte != 0  ? t->key_byte
                                         : (uint8_t)(i + 1);
        size_t data_len = t->data != NULL ? strlen(t->data) : t->data_len;
        if (t->data != NULL)
            memcpy(data, t->data, data_len);
        else
            memset(data, t->data_byte, data_len);
        t_hex(t->tag_hex, want, sizeof(want));
        struct sf_auth_mac mac;
        sf_auth_mac_init(&mac, key, key_len);
        sf_auth_mac_compute(&mac, data, data_len, got);
        assert_memory_equal(got, want, sizeof(want));
        sf_auth_mac_compute(&mac, data, data_len, got); /* the state is reusable */
        assert_memory_equal(got, want, sizeof(want));
        sf_auth_mac_clear(&mac);
    }
}

static uint64_t t_rng = 0x9e3779b97f4a7c15ull;

static uint64_t t_rand(void)
{
    t_rng ^= t_rng << 13;
    t_rng ^= t_rng >> 7;
    t_rng ^= t_rng << 17;
    return t_rng;
}

/* Against OpenSSL's one-shot HMAC: every message length up to 2100 bytes, random keys. */
static void test_hmac_vs_openssl(void **state)
{
    (void)state;
    static uint8_t msg[T_MSG_LEN_MAX];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)t_rand();
    for (size_t len = 0; len <= sizeof(msg); len++) {
        uint8_t key[100];
        size_t key_len = len % 3 == 0 ? SF_AUTH_KEY_LEN : (size_t)(t_rand() % sizeof(key));
        for (size_t i = 0; i < key_len; i++)
            key[i] = (uint8_t)t_rand();
        uint8_t want[EVP_MAX_MD_SIZE], got[SF_AUTH_TAG_LEN];
        unsigned want_len = 0;
        assert_non_null(HMAC(EVP_sha256(), key, (int)key_len, msg, len, want, &want_len));
        assert_int_equal(want_len, SF_AUTH_TAG_LEN);
        struct sf_auth_mac mac;
        sf_auth_mac_init(&mac, key, key_len);
        sf_auth_mac_compute(&mac, msg, len, got);
        assert_memory_equal(got, want, SF_AUTH_TAG_LEN);
    }
}

/* ---- frames -------------------------------------------------------------------------- */

static size_t t_frame(uint8_t *out, size_t cap, uint8_t flags)
{
    struct sf_frame_hdr hdr = {
        .flags = flags, .sender_id = 3, .frame_seq = 4, .auth_key_id = 5, .auth_counter = 6
    };
    int len = sf_frame_begin(out, cap, &hdr);
    struct sf_event ev = { .type = "device",
                           .type_len = 6,
                           .id = "sensor-1",
                           .id_len = 8,
                           .signal = "telemetry",
                           .signal_len = 9,
                           .event_id = 1 };
    len = sf_frame_add_event(out, cap, (size_t)len, &ev);
    len = sf_frame_end(out, cap, (size_t)len);
    assert_true(len > 0);
    return (size_t)len;
}

static void test_frame_sign_check(void **state)
{
    (void)state;
    uint8_t key[SF_AUTH_KEY_LEN], other[SF_AUTH_KEY_LEN], dgram[256];
    t_hex(T_KEY_HEX, key, sizeof(key));
    memcpy(other, key, sizeof(other));
    other[31] ^= 1;
    struct sf_auth_mac mac, mac_other;
    sf_auth_mac_init(&mac, key, sizeof(key));
    sf_auth_mac_init(&mac_other, other, sizeof(other));

    size_t len = t_frame(dgram, sizeof(dgram), SF_FLAG_AUTH);
    assert_false(sf_auth_frame_check(&mac, dgram, len)); /* sf_frame_end leaves zeros */
    assert_int_equal(sf_auth_frame_sign(&mac, dgram, len), 0);
    assert_true(sf_auth_frame_check(&mac, dgram, len));
    assert_false(sf_auth_frame_check(&mac_other, dgram, len));
    /* the tag is the HMAC of everything before it */
    uint8_t want[EVP_MAX_MD_SIZE];
    unsigned want_len;
    HMAC(EVP_sha256(), key, sizeof(key), dgram, len - SF_AUTH_TAG_LEN, want, &want_len);
    assert_memory_equal(dgram + len - SF_AUTH_TAG_LEN, want, SF_AUTH_TAG_LEN);
    /* any changed byte, any length change */
    for (size_t i = 0; i < len; i++) {
        dgram[i] ^= 0x40;
        assert_false(sf_auth_frame_check(&mac, dgram, len));
        dgram[i] ^= 0x40;
    }
    for (size_t cut = 1; cut < len; cut++)
        assert_false(sf_auth_frame_check(&mac, dgram, len - cut));
    assert_false(sf_auth_frame_check(&mac, dgram, 0));
    assert_true(sf_auth_frame_check(&mac, dgram, len));
    /* signing refuses frames without the flag or too short */
    size_t plain = t_frame(dgram, sizeof(dgram), 0);
    assert_int_equal(sf_auth_frame_sign(&mac, dgram, plain), -EINVAL);
    assert_int_equal(sf_auth_frame_sign(&mac, dgram, SF_FRAME_HDR_LEN + SF_AUTH_TAG_LEN - 1),
                     -EINVAL);
    sf_auth_mac_clear(&mac);
    sf_auth_mac_clear(&mac_other);
}

/* ---- key files ----------------------------------------------------------------------- */

static void test_keyfile_parse(void **state)
{
    (void)state;
    static struct sf_auth_key_spec specs[4];
    char err[SF_AUTH_ERR_LEN];
    const char *text = "# comment\n"
                       "  key 9 " T_KEY_HEX " sender=17 types=device prefix=s-  # trailing\n"
                       "key 4294967295 " T_KEY_HEX "\n";
    int n = sf_auth_keyfile_parse(text, strlen(text), "f", specs, 4, err, sizeof(err));
    assert_int_equal(n, 2);
    assert_int_equal(specs[0].id, 9);
    assert_int_equal(specs[0].line, 2);
    assert_true(specs[0].sender_set);
    assert_int_equal(specs[0].sender_id, 17);
    assert_int_equal(specs[0].type_count, 1);
    assert_int_equal(specs[0].type_lens[0], 6);
    assert_memory_equal(specs[0].types[0], "device", 6);
    assert_int_equal(specs[0].prefix_len, 2);
    uint8_t key[SF_AUTH_KEY_LEN];
    t_hex(T_KEY_HEX, key, sizeof(key));
    assert_memory_equal(specs[0].key, key, sizeof(key));
    assert_int_equal(specs[1].id, UINT32_MAX);
    assert_false(specs[1].sender_set);
    assert_int_equal(specs[1].type_count, 0);
    assert_int_equal(specs[1].prefix_len, 0);

    /* errors name the file and the line */
    text = "key 1 " T_KEY_HEX "\nkey 2 " T_KEY_HEX " types=a,b,\n";
    assert_int_equal(sf_auth_keyfile_parse(text, strlen(text), "f", specs, 4, err, sizeof(err)),
                     -EINVAL);
    assert_memory_equal(err, "f:2: types=", 11);
    text = "key 1 " T_KEY_HEX "\nkey 2 " T_KEY_HEX "\nkey 3 " T_KEY_HEX "\n";
    assert_int_equal(sf_auth_keyfile_parse(text, strlen(text), "f", specs, 2, err, sizeof(err)),
                     -E2BIG);
    assert_string_equal(err, "f:3: more than 2 keys");
    /* a comment line past the maximum is fine */
    text = "key 1 " T_KEY_HEX "\n# more\n";
    assert_int_equal(sf_auth_keyfile_parse(text, strlen(text), "f", specs, 1, err, sizeof(err)), 1);
    sf_auth_specs_clear(specs, 4);
    for (size_t i = 0; i < sizeof(specs); i++)
        assert_int_equal(((const uint8_t *)specs)[i], 0);
}

/* ---- sigflow-send -------------------------------------------------------------------- */

static char t_key_path[64];

static int t_setup(void **state)
{
    (void)state;
    snprintf(t_key_path, sizeof(t_key_path), "/tmp/sigflow-send-keys-%d", (int)getpid());
    int fd = open(t_key_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    const char *text = "key 5 " T_KEY_HEX "\nkey 6 " T_KEY_HEX " sender=77\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return 0;
}

static int t_teardown(void **state)
{
    (void)state;
    unlink(t_key_path);
    return 0;
}

struct t_rx {
    int fd;
    char port[8];
};

static void t_rx_open(struct t_rx *r)
{
    r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(r->fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&a, &len), 0);
    snprintf(r->port, sizeof(r->port), "%u", ntohs(a.sin_port));
}

/* Run sigflow-send against r with the NULL-terminated args; returns its exit status. */
static int t_send(const struct t_rx *r, const char *const *args)
{
    const char *argv[48];
    int n = 0;
    argv[n++] = sender_path;
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = r->port;
    for (int i = 0; args[i] != NULL && n < 47; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execv(sender_path, (char *const *)argv);
        _exit(127);
    }
    int status;
    for (int waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited += 10) {
        assert_true(waited < T_CHILD_MS);
        usleep(10000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct t_got {
    size_t len;
    uint8_t b[SF_DATAGRAM_LEN_MAX];
};

/* Collect datagrams until none comes for wait_ms; returns how many. */
static unsigned t_collect(struct t_rx *r, struct t_got *got, unsigned max, int wait_ms)
{
    unsigned n = 0;
    while (n < max) {
        struct pollfd p = { .fd = r->fd, .events = POLLIN };
        if (poll(&p, 1, wait_ms) <= 0)
            break;
        ssize_t len = recv(r->fd, got[n].b, sizeof(got[n].b), 0);
        assert_true(len >= 0);
        got[n++].len = (size_t)len;
    }
    return n;
}

static uint64_t t_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000u;
}

static struct sf_auth_mac t_mac;

static void t_mac_load(void)
{
    uint8_t key[SF_AUTH_KEY_LEN];
    t_hex(T_KEY_HEX, key, sizeof(key));
    sf_auth_mac_init(&t_mac, key, sizeof(key));
}

static void test_send_signed(void **state)
{
    (void)state;
    t_mac_load();
    struct t_rx r;
    t_rx_open(&r);
    static struct t_got got[T_FRAMES_MAX];
    uint64_t t0 = t_now_us();
    const char *one[] = { "-t", "device",     "-i",       "sensor-1", "-s", "telemetry", "-f",
                          "1",  "--key-file", t_key_path, "--key-id", "5",  NULL };
    assert_int_equal(t_send(&r, one), 0);
    assert_int_equal(t_collect(&r, got, T_FRAMES_MAX, 500), 1);
    struct sf_frame_hdr hdr;
    struct sf_event evs[SF_FRAME_EVENTS_MAX];
    assert_int_equal(sf_datagram_parse(got[0].b, got[0].len, &hdr, evs, SF_FRAME_EVENTS_MAX), 1);
    assert_true(hdr.flags & SF_FLAG_AUTH);
    assert_int_equal(hdr.auth_key_id, 5);
    assert_true(hdr.auth_counter >= t0 && hdr.auth_counter <= t_now_us());
    assert_true(sf_auth_frame_check(&t_mac, got[0].b, got[0].len));

    /* a key bound to a sender sets it; another --sender-id is refused */
    const char *bound[] = { "-t",         "device",   "-i",       "sensor-1", "-s", "telemetry",
                            "--key-file", t_key_path, "--key-id", "6",        NULL };
    assert_int_equal(t_send(&r, bound), 0);
    assert_int_equal(t_collect(&r, got, T_FRAMES_MAX, 500), 1);
    assert_int_equal(sf_datagram_parse(got[0].b, got[0].len, &hdr, evs, 1), 1);
    assert_int_equal(hdr.sender_id, 77);
    assert_true(sf_auth_frame_check(&t_mac, got[0].b, got[0].len));
    const char *clash[] = { "-t",        "device",      "-i", "sensor-1",   "-s",
                            "telemetry", "--sender-id", "78", "--key-file", t_key_path,
                            "--key-id",  "6",           NULL };
    assert_int_equal(t_send(&r, clash), 64);
    const char *missing[] = { "-t",         "device",   "-i",       "sensor-1", "-s", "telemetry",
                              "--key-file", t_key_path, "--key-id", "7",        NULL };
    assert_int_equal(t_send(&r, missing), 1);
    /* a key file others may read is refused */
    chmod(t_key_path, 0644);
    assert_int_equal(t_send(&r, one), 1);
    chmod(t_key_path, 0600);
    assert_int_equal(t_collect(&r, got, T_FRAMES_MAX, 200), 0);
    close(r.fd);
}

/* A fleet round of many frames, and resends without ACKs: counters strictly increase, every
 * tag is valid, a resend keeps its event ids. */
static void test_send_counters_and_resends(void **state)
{
    (void)state;
    t_mac_load();
    struct t_rx r;
    t_rx_open(&r);
    static struct t_got got[T_FRAMES_MAX];
    const char *fleet[] = { "--fleet",    "40",       "--rounds", "1", "--batch", "1",
                            "--key-file", t_key_path, "--key-id", "5", NULL };
    assert_int_equal(t_send(&r, fleet), 0);
    unsigned n = t_collect(&r, got, T_FRAMES_MAX, 500);
    assert_int_equal(n, 40);
    uint64_t last = 0;
    for (unsigned i = 0; i < n; i++) {
        struct sf_frame_hdr hdr;
        size_t off;
        assert_int_equal(sf_frame_parse_header(got[i].b, got[i].len, &hdr, &off), SF_OK);
        assert_true(hdr.auth_counter > last);
        last = hdr.auth_counter;
        assert_true(sf_auth_frame_check(&t_mac, got[i].b, got[i].len));
    }

    /* nobody answers: the frame goes out 1 + 3 times, each time signed anew */
    const char *acked[] = { "-t", "device",     "-i",       "sensor-9",     "-s", "telemetry",
                            "-e", "4242",       "--ack",    "--timeout-ms", "30", "--retries",
                            "3",  "--key-file", t_key_path, "--key-id",     "5",  NULL };
    assert_int_equal(t_send(&r, acked), 1); /* never acknowledged */
    n = t_collect(&r, got, T_FRAMES_MAX, 500);
    assert_int_equal(n, 4);
    last = 0;
    for (unsigned i = 0; i < n; i++) {
        struct sf_frame_hdr hdr;
        struct sf_event ev;
        assert_int_equal(sf_datagram_parse(got[i].b, got[i].len, &hdr, &ev, 1), 1);
        assert_true(hdr.flags & SF_FLAG_ACK_REQ);
        assert_true(hdr.auth_counter > last);
        last = hdr.auth_counter;
        assert_int_equal(ev.event_id, 4242);
        assert_true(sf_auth_frame_check(&t_mac, got[i].b, got[i].len));
    }
    close(r.fd);
}

static void test_send_attacks(void **state)
{
    (void)state;
    t_mac_load();
    struct t_rx r;
    t_rx_open(&r);
    static struct t_got got[T_FRAMES_MAX];
    const char *forged[] = { "--attack", "forged", "--attack-count", "5", "--key-id", "5", NULL };
    assert_int_equal(t_send(&r, forged), 0);
    unsigned n = t_collect(&r, got, T_FRAMES_MAX, 500);
    assert_int_equal(n, 5);
    for (unsigned i = 0; i < n; i++) {
        struct sf_frame_hdr hdr;
        size_t off;
        assert_int_equal(sf_frame_parse_header(got[i].b, got[i].len, &hdr, &off), SF_OK);
        assert_int_equal(hdr.auth_key_id, 5);
        assert_false(sf_auth_frame_check(&t_mac, got[i].b, got[i].len));
    }

    const char *flip[] = { "--attack", "bitflip",    "--attack-count",
                           "40",       "--key-file", t_key_path,
                           "--key-id", "5",          NULL };
    assert_int_equal(t_send(&r, flip), 0);
    n = t_collect(&r, got, T_FRAMES_MAX, 500);
    assert_int_equal(n, 40);
    for (unsigned i = 0; i < n; i++) {
        struct sf_frame_hdr hdr;
        struct sf_event ev;
        bool parses = sf_datagram_parse(got[i].b, got[i].len, &hdr, &ev, 1) == 1;
        assert_false(parses && (hdr.flags & SF_FLAG_AUTH) &&
                     sf_auth_frame_check(&t_mac, got[i].b, got[i].len));
    }

    const char *replay[] = { "--attack", "replay",     "--attack-count",
                             "3",        "--key-file", t_key_path,
                             "--key-id", "5",          "-e",
                             "99",       NULL };
    assert_int_equal(t_send(&r, replay), 0);
    n = t_collect(&r, got, T_FRAMES_MAX, 500);
    assert_int_equal(n, 4);
    assert_true(sf_auth_frame_check(&t_mac, got[0].b, got[0].len));
    for (unsigned i = 1; i < n; i++) {
        assert_int_equal(got[i].len, got[0].len);
        assert_memory_equal(got[i].b, got[0].b, got[0].len);
    }

    const char *no_key[] = { "--attack", "replay", NULL };
    assert_int_equal(t_send(&r, no_key), 64);
    close(r.fd);
}

int main(void)
{
    sender_path = getenv("SIGFLOW_SEND");
    const struct CMUnitTest lib_tests[] = {
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_hmac_vs_openssl),
        cmocka_unit_test(test_frame_sign_check),
        cmocka_unit_test(test_keyfile_parse),
    };
    const struct CMUnitTest send_tests[] = {
        cmocka_unit_test(test_send_signed),
        cmocka_unit_test(test_send_counters_and_resends),
        cmocka_unit_test(test_send_attacks),
    };
    int failed = cmocka_run_group_tests(lib_tests, NULL, NULL);
    if (sender_path == NULL) {
        fprintf(stderr, "test_auth: SIGFLOW_SEND not set, sigflow-send not tested\n");
        return failed;
    }
    return failed + cmocka_run_group_tests(send_tests, t_setup, t_teardown);
}
