/*
 * test_node — a real node on net_tap, driven by kernel UDP clients in a network namespace
 * of the test's own: ≥ 100,000 events over ≥ 10,000 workflows from several senders, every
 * workflow's count and last event id exact; every RX queue used; malformed datagrams and
 * malformed packets each on their own counter; ARP, ping and IPv6 ping answered.
 *
 * Needs root (namespaces, TAP). Exits 77 (skipped) without it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
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

#include "it_util.h"

#define IT_SENDERS 4
#define IT_FLEET   2500  /* workflows per sender: 10,000 in all */
#define IT_ROUNDS  10    /* events per workflow: 100,000 in all */
#define IT_RATE    20000 /* events/s per sender */
#define IT_EVENTS  (IT_SENDERS * IT_FLEET * IT_ROUNDS)
#define IT_WAIT_S  90

static char it_ns[64];
static char it_dir[80];
static const char *it_top;
static const char *it_build;

/* One request on the node's control socket. */
static json_t *it_ctl(json_t *req)
{
    json_t *out = it_ctl_at(it_dir, req);
    assert_non_null(out);
    return out;
}

static json_t *it_stats(void)
{
    json_t *st = it_ctl(json_pack("{s:s}", "cmd", "stats"));
    assert_true(json_is_true(json_object_get(st, "ok")));
    return st;
}

static long long it_total(json_t *st, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(st, "total"), key));
}

static long long it_drop(json_t *st, const char *reason)
{
    json_t *drops = json_object_get(json_object_get(st, "total"), "drops");
    json_t *v = json_object_get(drops, reason);
    if (!v)
        fail_msg("no drop counter named '%s'", reason);
    return json_integer_value(v);
}

/* inbox has a quota of 4 workflows on this node (test_quota) */
#define IT_NODE_OPTS                                \
    "--rx-queues 2 --capacity 200000 --conf-extra " \
    "'[quota];inbox = 4;[runtime];tasks_per_partition = 2'"

static int it_setup(void **state)
{
    (void)state;
    snprintf(it_ns, sizeof(it_ns), "sfit%d", (int)getpid());
    snprintf(it_dir, sizeof(it_dir), "/tmp/sigflow-it-%d", (int)getpid());
    int rc = it_node_start(it_top, it_build, it_ns, it_dir, IT_NODE_OPTS);
    if (rc != 0)
        it_sh("cat %s/sigflowd.log >&2", it_dir);
    return rc == 0 ? 0 : -1;
}

static int it_teardown(void **state)
{
    (void)state;
    it_node_stop(it_top, it_build, it_dir);
    it_sh("rm -rf %s", it_dir);
    return 0;
}

/* Wait until events_applied reaches `want` (or stops moving for 10 s). */
static long long it_wait_applied(long long want)
{
    long long last = -1, now = 0;
    int still = 0;
    for (int i = 0; i < IT_WAIT_S * 10; i++) {
        json_t *st = it_stats();
        now = it_total(st, "events_applied");
        json_decref(st);
        if (now >= want)
            return now;
        still = now == last ? still + 1 : 0;
        if (still > 100)
            break;
        last = now;
        usleep(100000);
    }
    return now;
}

/* A fleet workflow (sigflow-send --fleet numbering: event_id = r * fleet + (i - first) + 1
 * for round r) has exactly IT_ROUNDS signals and the last round's event id. */
static void it_check_fleet_workflow(void *ctx, json_t *w)
{
    unsigned char *seen = ctx;
    const char *id = json_string_value(json_object_get(w, "id"));
    int n = -1;
    assert_int_equal(sscanf(id, "sensor-%d", &n), 1);
    assert_true(n >= 0 && n < IT_SENDERS * IT_FLEET);
    assert_int_equal(seen[n], 0);
    seen[n] = 1;
    long long want_last = (long long)(IT_ROUNDS - 1) * IT_FLEET + (n % IT_FLEET) + 1;
    assert_int_equal(json_integer_value(json_object_get(w, "signals")), IT_ROUNDS);
    assert_int_equal(json_integer_value(json_object_get(w, "last_event_id")), want_last);
}

static void test_fleet_exact(void **state)
{
    (void)state;
    json_t *st0 = it_stats();
    long long applied0 = it_total(st0, "events_applied");
    json_decref(st0);
    /* Several kernel UDP senders, each with its own socket (5-tuple) and workflows. */
    char cmd[4096];
    int off = snprintf(cmd, sizeof(cmd), "ip netns exec %s sh -c '", it_ns);
    for (int s = 0; s < IT_SENDERS; s++)
        off += snprintf(cmd + off, sizeof(cmd) - (size_t)off,
                        "%s/control/send/sigflow-send --host 198.18.0.2 --port 7700 --fleet %d "
                        "--first %d --rounds %d --batch 8 --rate %d --sender-id %d "
                        "--type device --signal telemetry --prefix sensor- & ",
                        it_build, IT_FLEET, s * IT_FLEET, IT_ROUNDS, IT_RATE, s + 1);
    snprintf(cmd + off, sizeof(cmd) - (size_t)off, "wait'");
    assert_int_equal(it_sh("%s", cmd), 0);
    long long applied = it_wait_applied(applied0 + IT_EVENTS) - applied0;
    json_t *st = it_stats();
    if (applied != IT_EVENTS) {
        char *dump = json_dumps(json_object_get(st, "total"), JSON_INDENT(1));
        fprintf(stderr, "applied %lld of %d; totals: %s\n", applied, IT_EVENTS, dump);
        free(dump);
    }
    assert_int_equal(applied, IT_EVENTS);
    assert_int_equal(it_drop(st, "ring_full"), 0);
    assert_int_equal(it_drop(st, "table_full"), 0);
    assert_true(it_total(st, "workflows") >= IT_SENDERS * IT_FLEET);
    /* With two RX queues, both received packets. */
    size_t i, j;
    json_t *core, *q;
    int queues = 0;
    json_array_foreach(json_object_get(st, "cores"), i, core)
    {
        json_array_foreach(json_object_get(core, "rx_queues"), j, q)
        {
            queues++;
            long long p = json_integer_value(json_object_get(q, "packets"));
            fprintf(stderr, "lcore %lld queue %lld: %lld packets\n",
                    (long long)json_integer_value(json_object_get(core, "lcore")),
                    (long long)json_integer_value(json_object_get(q, "queue")), p);
            assert_true(p > 0);
        }
    }
    assert_int_equal(queues, 2);
    json_decref(st);

    /* Every workflow: exact count and last event id (sigflow-send --fleet numbering:
     * event_id = r * fleet + (i - first) + 1 for round r). */
    static unsigned char seen[IT_SENDERS * IT_FLEET];
    memset(seen, 0, sizeof(seen));
    long total = it_list_each(it_dir, "device", it_check_fleet_workflow, seen);
    assert_int_equal(total, IT_SENDERS * IT_FLEET);

    /* describe agrees with list for a sample */
    json_t *d = it_ctl(
        json_pack("{s:s, s:s, s:s}", "cmd", "describe", "type", "device", "id", "sensor-007777"));
    assert_true(json_is_true(json_object_get(d, "ok")));
    assert_int_equal(json_integer_value(json_object_get(d, "signals")), IT_ROUNDS);
    json_decref(d);
}

/* Each malformed datagram kind moves its own counter by exactly one. */
static void test_malformed_datagrams(void **state)
{
    (void)state;
    static const struct {
        const char *kind, *counter;
    } cases[] = {
        { "empty", "empty" },
        { "bad_magic", "bad_magic" },
        { "bad_version", "bad_version" },
        { "trunc_header", "truncated_header" },
        { "bad_flags", "bad_flags" },
        { "bad_count", "bad_count" },
        { "trunc_event", "truncated_event" },
        { "bad_event_len", "bad_event_len" },
        { "bad_name", "bad_name" },
        { "bad_fields", "bad_fields" },
        { "trailing", "trailing_bytes" },
        { "bad_json", "bad_json" },
        /* once a remote crash: JSON fields longer than the owner's log record could hold */
        { "fields_too_long", "fields_too_long" },
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        json_t *before = it_stats();
        assert_int_equal(it_sh("ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 "
                               "--port 7700 --malformed %s",
                               it_ns, it_build, cases[c].kind),
                         0);
        json_t *after = NULL;
        long long delta = 0;
        for (int i = 0; i < 50 && delta == 0; i++) {
            usleep(20000);
            json_decref(after);
            after = it_stats();
            delta = it_drop(after, cases[c].counter) - it_drop(before, cases[c].counter);
        }
        if (delta != 1)
            fail_msg("malformed %s: counter %s moved by %lld", cases[c].kind, cases[c].counter,
                     delta);
        assert_int_equal(it_total(after, "drops_total") - it_total(before, "drops_total"), 1);
        json_decref(before);
        json_decref(after);
    }
}

/* ---- replies bounded: no reflection ----------------------------------------------------- */

/* Run reflect.py inside the namespace: n frames of k events of an undeployed type, with
 * ACK_REQ; returns what came back (JSON from the script). */
static json_t *it_reflect(unsigned frames, unsigned events)
{
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof(cmd),
             "ip netns exec %s python3 %s/tests/integration/reflect.py "
             "198.18.0.2 7700 %u %u 1.0",
             it_ns, it_top, frames, events);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = 0;
    assert_int_equal(pclose(f), 0);
    json_t *j = json_loads(out, 0, NULL);
    if (!j)
        fail_msg("reflect.py printed: %s", out);
    return j;
}

#define IT_JI(j, k) json_integer_value(json_object_get(j, k))

/* One 1.4 KB frame of 53 events for an undeployed type once came back as 53 NACK datagrams
 * (about 3x the bytes). Now: at most one reply per frame and owner core, never more bytes
 * than the source sent, on the wire. */
static void test_reflection_bounded(void **state)
{
    (void)state;
    json_t *j = it_reflect(20, 53);
    long long sent = IT_JI(j, "sent_bytes"), recv = IT_JI(j, "recv_bytes");
    fprintf(stderr,
            "reflection, 20 frames x 53 events: sent %lld B, received %lld B in %lld "
            "datagrams, %lld entries\n",
            sent, recv, IT_JI(j, "recv_datagrams"), IT_JI(j, "entries"));
    assert_true(IT_JI(j, "sent_datagrams") == 20);
    assert_true(recv <= sent);
    assert_true(IT_JI(j, "recv_datagrams") <= 20 * 2); /* two owner cores */
    assert_true(IT_JI(j, "entries") > 0);              /* the refusals are still answered */
    json_t *st = json_object_get(j, "statuses");
    assert_int_equal(json_object_size(st), 1);
    assert_true(IT_JI(st, "3") == IT_JI(j, "entries")); /* all `unknown` */
    json_decref(j);
    /* small frames whose events split over both owners: two replies could outweigh one
     * small frame; the byte credit keeps the total at most what was sent */
    json_t *before = it_stats();
    j = it_reflect(300, 2);
    sent = IT_JI(j, "sent_bytes");
    recv = IT_JI(j, "recv_bytes");
    fprintf(stderr,
            "reflection, 300 frames x 2 events: sent %lld B, received %lld B in %lld "
            "datagrams\n",
            sent, recv, IT_JI(j, "recv_datagrams"));
    assert_true(recv <= sent);
    assert_true(IT_JI(j, "recv_datagrams") > 0);
    json_t *after = it_stats();
    fprintf(stderr, "reply_suppressed moved by %lld\n",
            it_drop(after, "reply_suppressed") - it_drop(before, "reply_suppressed"));
    json_decref(before);
    json_decref(after);
    json_decref(j);
}

/* Run sigflow-send on an event file with ACKs; returns its --summary-json line. */
static json_t *it_send_file(const char *path, unsigned batch)
{
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof(cmd),
             "ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 "
             "--port 7700 --file %s --batch %u --ack --summary-json 2>/dev/null | tail -1",
             it_ns, it_build, path, batch);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = 0;
    pclose(f);
    json_t *j = json_loads(out, 0, NULL);
    if (!j)
        fail_msg("sigflow-send printed: %s", out);
    return j;
}

/* The starvation attack (2 activity slots per partition here): 12,000 devices that each
 * send three errors start reprovisioning until every partition's slots are taken; inputs
 * that would start another activity are refused `busy`. Unrelated signals — new devices,
 * readings of the reprovisioning ones — are all applied. */
static void test_starvation(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/attack.events", it_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (unsigned i = 0; i < 12000; i++)
        for (unsigned e = 1; e <= 3; e++)
            fprintf(f, "device flaky-%05u telemetry %u 80.5 1\n", i, e);
    fclose(f);
    json_t *a = it_send_file(path, 16);
    long long busy = json_integer_value(json_object_get(json_object_get(a, "statuses"), "busy"));
    fprintf(stderr, "starvation: attack got %lld busy\n", busy);
    assert_true(busy > 0); /* the slots are all taken */
    json_decref(a);
    snprintf(path, sizeof(path), "%s/victims.events", it_dir);
    f = fopen(path, "w");
    assert_non_null(f);
    for (unsigned i = 0; i < 2000; i++)
        fprintf(f, "device victim-%05u telemetry 1 21.5 0\n", i);
    for (unsigned i = 0; i < 2000; i++)
        fprintf(f, "device flaky-%05u telemetry 4 22.5 0\n", i);
    fclose(f);
    json_t *v = it_send_file(path, 16);
    json_t *st = json_object_get(v, "statuses");
    /* `duplicate`: applied before, its first ACK lost (a resend answers it) */
    long long applied = json_integer_value(json_object_get(st, "applied")) +
                        json_integer_value(json_object_get(st, "duplicate"));
    fprintf(stderr, "starvation: victims applied %lld of 4000, busy %lld, overloaded %lld\n",
            applied, json_integer_value(json_object_get(st, "busy")),
            json_integer_value(json_object_get(st, "overloaded")));
    assert_int_equal(applied, 4000);
    /* and the node holds them: a sample of victims exists with one reading */
    for (unsigned i = 0; i < 2000; i += 97) {
        char id[32];
        snprintf(id, sizeof(id), "victim-%05u", i);
        json_t *d =
            it_ctl(json_pack("{s:s, s:s, s:s}", "cmd", "describe", "type", "device", "id", id));
        assert_true(json_is_true(json_object_get(d, "ok")));
        assert_int_equal(json_integer_value(json_object_get(d, "signals")), 1);
        json_decref(d);
    }
    json_decref(v);
}

/* [quota] inbox = 4: new inbox workflows beyond the quota are refused before they are
 * logged (ACK `full`, counted `quota`); the others are created. */
static void test_quota(void **state)
{
    (void)state;
    json_t *before = it_stats();
    char path[128];
    snprintf(path, sizeof(path), "%s/quota.events", it_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (unsigned i = 0; i < 20; i++)
        fprintf(f, "inbox box-%02u message 1 7 hello\n", i);
    fclose(f);
    json_t *sum = it_send_file(path, 4);
    json_t *sts = json_object_get(sum, "statuses");
    long long acked_applied = json_integer_value(json_object_get(sts, "applied"));
    long long acked_full = json_integer_value(json_object_get(sts, "full"));
    fprintf(stderr, "quota 4: ACKs applied %lld, full %lld\n", acked_applied, acked_full);
    assert_true(acked_applied <= 4);
    assert_true(acked_full >= 1);
    json_decref(sum);
    long long created = 0;
    for (unsigned i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof(id), "box-%02u", i);
        json_t *d =
            it_ctl(json_pack("{s:s, s:s, s:s}", "cmd", "describe", "type", "inbox", "id", id));
        created += json_is_true(json_object_get(d, "ok"));
        json_decref(d);
    }
    json_t *after = it_stats();
    long long refused = it_drop(after, "quota") - it_drop(before, "quota");
    fprintf(stderr, "quota 4: %lld created, %lld refused\n", created, refused);
    assert_true(created >= 1 && created <= 4); /* at most 2 per owner core */
    assert_true(refused >= acked_full);        /* each refusal counted (resends again) */
    json_decref(before);
    json_decref(after);
}

/* `workflow delete`: logged before it is answered; the id may start afresh; a restart
 * (recovery replays the deletion) does not bring it back. */
static long long it_signals_of(const char *type, const char *id)
{
    json_t *d = it_ctl(json_pack("{s:s, s:s, s:s}", "cmd", "describe", "type", type, "id", id));
    long long n = json_is_true(json_object_get(d, "ok"))
                      ? json_integer_value(json_object_get(d, "signals"))
                      : -1;
    json_decref(d);
    return n;
}

static void test_workflow_delete(void **state)
{
    (void)state;
    assert_int_equal(it_sh("ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 "
                           "--port 7700 -t device -i doomed -s telemetry --ack >/dev/null",
                           it_ns, it_build),
                     0);
    assert_int_equal(it_signals_of("device", "doomed"), 1);
    json_t *r =
        it_ctl(json_pack("{s:s, s:s, s:s}", "cmd", "delete", "type", "device", "id", "doomed"));
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    assert_int_equal(it_signals_of("device", "doomed"), -1);
    r = it_ctl(json_pack("{s:s, s:s, s:s}", "cmd", "delete", "type", "device", "id", "doomed"));
    assert_false(json_is_true(json_object_get(r, "ok"))); /* not found */
    json_decref(r);
    /* the id starts afresh (event ids from 1 again are not stale) */
    assert_int_equal(it_sh("ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 "
                           "--port 7700 -t device -i doomed -s telemetry --event-id 1 --ack "
                           ">/dev/null",
                           it_ns, it_build),
                     0);
    assert_int_equal(it_signals_of("device", "doomed"), 1);
    r = it_ctl(json_pack("{s:s, s:s, s:s}", "cmd", "delete", "type", "device", "id", "doomed"));
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    /* recovery replays the deletion */
    it_node_stop(it_top, it_build, it_dir);
    assert_int_equal(it_node_start(it_top, it_build, it_ns, it_dir, IT_NODE_OPTS), 0);
    assert_int_equal(it_signals_of("device", "doomed"), -1);
}

/* ---- raw frames from inside the namespace (AF_PACKET) --------------------------------- */

static uint16_t it_csum(const uint8_t *p, size_t len, uint32_t sum)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)(p[len - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void it_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

enum it_break { IT_OK, IT_IP_CSUM, IT_FRAGMENT, IT_UDP_CSUM, IT_UDP_LEN, IT_PORT, IT_ETHERTYPE };

/* An Ethernet/IPv4/UDP frame to the node carrying a valid JSON event, broken as asked. */
static size_t it_frame(uint8_t *f, const uint8_t dst_mac[6], enum it_break brk)
{
    static const char payload[] =
        "{\"type\":\"device\",\"id\":\"raw-1\",\"signal\":\"heartbeat\",\"event_id\":1}";
    size_t plen = sizeof(payload) - 1, ip_len = 20 + 8 + plen;
    memset(f, 0, 14 + ip_len);
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, "\x02\x00\x00\x00\x00\x01", 6);
    it_put16(f + 12, brk == IT_ETHERTYPE ? 0x88b5 : 0x0800);
    uint8_t *ip = f + 14, *udp = ip + 20;
    ip[0] = 0x45;
    it_put16(ip + 2, (uint16_t)ip_len);
    if (brk == IT_FRAGMENT)
        it_put16(ip + 6, 0x2000); /* more fragments */
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, "\xc6\x12\x00\x01", 4); /* 198.18.0.1 */
    memcpy(ip + 16, "\xc6\x12\x00\x02", 4); /* 198.18.0.2 */
    it_put16(ip + 10, it_csum(ip, 20, 0));
    if (brk == IT_IP_CSUM)
        ip[10] ^= 0x55;
    it_put16(udp, 40000);
    it_put16(udp + 2, brk == IT_PORT ? 7701 : 7700);
    it_put16(udp + 4, (uint16_t)(brk == IT_UDP_LEN ? 8 + plen + 40 : 8 + plen));
    memcpy(udp + 8, payload, plen);
    uint8_t pseudo[12];
    memcpy(pseudo, ip + 12, 8);
    pseudo[8] = 0;
    pseudo[9] = 17;
    it_put16(pseudo + 10, (uint16_t)(8 + plen));
    uint32_t sum = 0;
    for (int i = 0; i < 12; i += 2)
        sum += (uint32_t)(pseudo[i] << 8 | pseudo[i + 1]);
    uint16_t c = it_csum(udp, 8 + plen, sum);
    it_put16(udp + 6, c == 0 ? 0xffff : c);
    if (brk == IT_UDP_CSUM)
        udp[6] ^= 0x0f;
    return 14 + ip_len;
}

/* Send one frame from inside the namespace on its only non-loopback interface. */
static int it_inject(const uint8_t *frame, size_t len)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char path[128];
        snprintf(path, sizeof(path), "/var/run/netns/%s", it_ns);
        int nsfd = open(path, O_RDONLY);
        if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0)
            _exit(2);
        struct if_nameindex *ifs = if_nameindex(), *it;
        unsigned ifindex = 0;
        for (it = ifs; it && it->if_index; it++)
            if (strcmp(it->if_name, "lo") != 0)
                ifindex = it->if_index;
        int fd = socket(AF_PACKET, SOCK_RAW, 0);
        struct sockaddr_ll sll = { .sll_family = AF_PACKET,
                                   .sll_ifindex = (int)ifindex,
                                   .sll_halen = 6 };
        memcpy(sll.sll_addr, frame, 6);
        ssize_t w = sendto(fd, frame, len, 0, (struct sockaddr *)&sll, sizeof(sll));
        _exit(fd >= 0 && ifindex && w == (ssize_t)len ? 0 : 3);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void it_parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    assert_int_equal(sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]), 6);
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)v[i];
}

static void test_malformed_packets(void **state)
{
    (void)state;
    json_t *st = it_stats();
    uint8_t mac[6];
    it_parse_mac(
        json_string_value(json_object_get(json_array_get(json_object_get(st, "ports"), 0), "mac")),
        mac);
    json_decref(st);
    static const struct {
        enum it_break brk;
        const char *counter;
    } cases[] = {
        { IT_IP_CSUM, "drop_ip4_csum" },  { IT_FRAGMENT, "drop_fragment" },
        { IT_UDP_CSUM, "drop_udp_csum" }, { IT_UDP_LEN, "drop_udp_len" },
        { IT_PORT, "drop_udp_port" },     { IT_ETHERTYPE, "drop_ethertype" },
    };
    uint8_t frame[256];
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        json_t *before = it_stats();
        size_t len = it_frame(frame, mac, cases[c].brk);
        assert_int_equal(it_inject(frame, len), 0);
        long long delta = 0;
        json_t *after = NULL;
        for (int i = 0; i < 50 && delta == 0; i++) {
            usleep(20000);
            json_decref(after);
            after = it_stats();
            delta = it_drop(after, cases[c].counter) - it_drop(before, cases[c].counter);
        }
        if (delta != 1)
            fail_msg("case %zu: counter %s moved by %lld", c, cases[c].counter, delta);
        json_decref(before);
        json_decref(after);
    }
    /* and the same frame unbroken is applied */
    json_t *before = it_stats();
    size_t len = it_frame(frame, mac, IT_OK);
    assert_int_equal(it_inject(frame, len), 0);
    assert_true(it_wait_applied(it_total(before, "events_applied") + 1) ==
                it_total(before, "events_applied") + 1);
    json_decref(before);
}

static void test_arp_ping(void **state)
{
    (void)state;
    json_t *before = it_stats();
    it_sh("ip netns exec %s ip neigh flush all", it_ns);
    assert_int_equal(
        it_sh("ip netns exec %s ping -q -c 3 -i 0.2 -W 2 198.18.0.2 >/dev/null", it_ns), 0);
    assert_int_equal(
        it_sh("ip netns exec %s ping -6 -q -c 3 -i 0.2 -W 2 2001:2::2 >/dev/null", it_ns), 0);
    json_t *after = it_stats();
    assert_true(it_total(after, "arp_replies") > it_total(before, "arp_replies"));
    assert_true(it_total(after, "icmp_replies") >= it_total(before, "icmp_replies") + 3);
    assert_true(it_total(after, "icmp6_replies") >= it_total(before, "icmp6_replies") + 3);
    assert_true(it_total(after, "ndp_replies") >= 1);
    json_decref(before);
    json_decref(after);
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_node: needs root (network namespaces, TAP): skipped\n");
        return 77;
    }
    it_top = getenv("SIGFLOW_TOP");
    it_build = getenv("SIGFLOW_BUILD");
    if (!it_top || !it_build) {
        fprintf(stderr, "test_node: SIGFLOW_TOP and SIGFLOW_BUILD must be set (meson does)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arp_ping),
        cmocka_unit_test(test_fleet_exact),
        cmocka_unit_test(test_malformed_datagrams),
        cmocka_unit_test(test_malformed_packets),
        cmocka_unit_test(test_reflection_bounded),
        cmocka_unit_test(test_quota), /* before test_starvation: it leaves no activity slot
                                         free, and an inbox message would then be `busy` */
        cmocka_unit_test(test_starvation),
        cmocka_unit_test(test_workflow_delete),
    };
    return cmocka_run_group_tests_name("node on net_tap", tests, it_setup, it_teardown);
}
