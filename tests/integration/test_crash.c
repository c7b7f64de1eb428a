/*
 * test_crash — crash loops against a real node: `kill -9` or a simulated power cut (the
 * storage fault layer loses every write not covered by a completed fdatasync and tears the
 * last sector) over and over while a client sends with ACKs and resends what was not
 * acknowledged. At the end every workflow's state equals the model's exactly: every ACKed
 * event applied once, none twice (counts and last event ids), also after a final restart.
 *
 *   test_crash kill|powercut|fsync_eio|write_eio|enospc ROUNDS
 *
 * With the I/O faults the node must stop by itself (exit 70) at the failed operation.
 *
 * Snapshots are taken every second, so crashes also hit snapshots being written and
 * recovery loads a snapshot and replays the log after each partition's LSN.
 *
 * The node runs on a veth pair with net_af_packet: the client's side of the link survives
 * the daemon (a TAP would vanish with it). Needs root; exits 77 without it.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "it_util.h"

#define CR_FLEET  2000 /* workflows; > events in flight, so one per workflow at most */
#define CR_RATE   2500 /* events/s */
#define CR_WAIT_S 300

static char cr_ns[64], cr_dir[80], cr_out[128];
static const char *cr_top, *cr_build;

#define CR_CHECK(cond, ...)                                                               \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "test_crash: FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, "\n");                                                        \
            cr_cleanup();                                                                 \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

static pid_t cr_sender = -1;

static void cr_cleanup(void)
{
    if (cr_sender > 0) {
        kill(cr_sender, SIGTERM);
        waitpid(cr_sender, NULL, 0);
        cr_sender = -1;
    }
    it_node_stop(cr_top, cr_build, cr_dir);
}

static json_t *cr_ctl(json_t *req)
{
    return it_ctl_at(cr_dir, req);
}

static int cr_node_start(void)
{
    return it_node_start(cr_top, cr_build, cr_ns, cr_dir,
                         "--nic veth --rx-queues 1 --capacity 100000 "
                         "--conf-extra 'fault_injection = true;[snapshot];interval_s = 1'");
}

static bool cr_sender_running(void)
{
    return it_child_running(cr_sender);
}

static void cr_crash(const char *mode, unsigned round)
{
    pid_t pid = it_node_pid(cr_dir);
    CR_CHECK(pid > 0, "no pid file");
    if (strcmp(mode, "kill") == 0) {
        CR_CHECK(kill(pid, SIGKILL) == 0, "kill -9 %d: %s", pid, strerror(errno));
    } else {
        /* powercut: the node loses power; fsync_eio, write_eio, enospc: the next log
         * operation of that kind fails and the node must stop on its own, acknowledging
         * nothing that was not made durable */
        json_t *r = cr_ctl(
            json_pack("{s:s, s:s, s:i}", "cmd", "fault", "kind", mode, "seed", (int)round + 1));
        CR_CHECK(r && json_is_true(json_object_get(r, "ok")), "fault %s refused", mode);
        json_decref(r);
    }
    CR_CHECK(it_wait_gone(pid, 30), "sigflowd %d did not die", pid);
}

/* Every workflow: exactly `rounds` signals and the last event id of the fleet numbering. */
struct cr_model {
    unsigned rounds;
    unsigned char seen[CR_FLEET];
};

static void cr_check_workflow(void *ctx, json_t *w)
{
    struct cr_model *m = ctx;
    int n = -1;
    sscanf(json_string_value(json_object_get(w, "id")), "sensor-%d", &n);
    CR_CHECK(n >= 0 && n < CR_FLEET && !m->seen[n], "unexpected workflow id");
    m->seen[n] = 1;
    long long signals = json_integer_value(json_object_get(w, "signals"));
    long long last = json_integer_value(json_object_get(w, "last_event_id"));
    long long want_last = (long long)(m->rounds - 1) * CR_FLEET + n + 1;
    CR_CHECK(signals == m->rounds, "sensor-%06d: %lld signals, model says %u", n, signals,
             m->rounds);
    CR_CHECK(last == want_last, "sensor-%06d: last event id %lld, model says %lld", n, last,
             want_last);
}

static void cr_verify(unsigned rounds)
{
    static struct cr_model m;
    memset(&m, 0, sizeof(m));
    m.rounds = rounds;
    long total = it_list_each(cr_dir, "device", cr_check_workflow, &m);
    CR_CHECK(total == CR_FLEET, "%ld workflows, model says %d", total, CR_FLEET);
}

int main(int argc, char **argv)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_crash: needs root: skipped\n");
        return 77;
    }
    cr_top = getenv("SIGFLOW_TOP");
    cr_build = getenv("SIGFLOW_BUILD");
    if (argc != 3 || !cr_top || !cr_build ||
        (strcmp(argv[1], "kill") != 0 && strcmp(argv[1], "powercut") != 0 &&
         strcmp(argv[1], "fsync_eio") != 0 && strcmp(argv[1], "write_eio") != 0 &&
         strcmp(argv[1], "enospc") != 0)) {
        fprintf(stderr, "usage: test_crash kill|powercut|fsync_eio|write_eio|enospc ROUNDS "
                        "(SIGFLOW_TOP, SIGFLOW_BUILD)\n");
        return 64;
    }
    const char *mode = argv[1];
    unsigned crashes = (unsigned)atoi(argv[2]);
    snprintf(cr_ns, sizeof(cr_ns), "sfcr%d", (int)getpid());
    snprintf(cr_dir, sizeof(cr_dir), "/var/tmp/sigflow-crash-%d", (int)getpid());
    snprintf(cr_out, sizeof(cr_out), "%s/sender.json", cr_dir);
    srand((unsigned)getpid());
    it_sh("rm -rf %s", cr_dir);
    if (cr_node_start() != 0) {
        it_sh("cat %s/sigflowd.log >&2", cr_dir);
        fprintf(stderr, "test_crash: node did not start\n");
        cr_cleanup();
        return 1;
    }
    /* Enough traffic to outlast the crashes (~1.5 s each), paced. */
    unsigned rounds = (crashes * 1500u + 4000u) * CR_RATE / 1000u / CR_FLEET + 2;
    fprintf(stderr, "test_crash: %s x %u, %u workflows x %u events, %d events/s\n", mode, crashes,
            CR_FLEET, rounds, CR_RATE);
    cr_sender = it_fleet_start(cr_ns, cr_build, CR_FLEET, rounds, CR_RATE, cr_out);
    unsigned done = 0;
    for (; done < crashes && cr_sender_running(); done++) {
        usleep((useconds_t)(200000 + rand() % 800000));
        cr_crash(mode, done);
        CR_CHECK(cr_node_start() == 0, "restart %u failed (see %s/sigflowd.log)", done, cr_dir);
    }
    fprintf(stderr, "test_crash: %u crashes done; waiting for the sender\n", done);
    int st = 0;
    for (int i = 0; i < CR_WAIT_S * 10 && cr_sender_running(); i++)
        usleep(100000);
    CR_CHECK(!cr_sender_running(), "sender still running after %d s", CR_WAIT_S);
    waitpid(cr_sender, &st, 0);
    cr_sender = -1;
    it_sh("cat %s >&2", cr_out);
    CR_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sender: not every event was acknowledged");
    CR_CHECK(done >= crashes, "only %u of %u crashes happened before the traffic ended", done,
             crashes);
    cr_verify(rounds);
    /* And the same state after one more recovery. */
    cr_crash("kill", crashes);
    CR_CHECK(cr_node_start() == 0, "final restart failed");
    cr_verify(rounds);
    CR_CHECK(it_sh("grep -q 'snapshot loaded' %s/sigflowd.log", cr_dir) == 0,
             "no restart loaded a snapshot: the snapshot path was not exercised");
    /* A damaged newest snapshot: recovery falls back to the previous one (and replays more
     * of the log) and reaches the same state. First make sure two snapshots exist (a few
     * loyalty events, not part of the model, give each snapshot something new); snapshots
     * are off for the restart, so the damaged file stays the newest. */
    for (int k = 0; k < 3; k++) {
        CR_CHECK(it_sh("ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 "
                       "--fleet 50 --rounds 1 --type loyalty --signal purchase --prefix extra- "
                       "--event-id-base %d --ack >/dev/null",
                       cr_ns, cr_build, k * 1000) == 0,
                 "extra events not acknowledged");
        sleep(2);
    }
    for (int i = 0;
         i < 60 && it_sh("test $(ls %s/epoch-*/snap/core-0/*.snap | wc -l) -ge 2", cr_dir) != 0;
         i++)
        sleep(1);
    cr_crash("kill", crashes + 1);
    CR_CHECK(it_sh("f=$(ls %s/epoch-*/snap/core-0/*.snap | sort | tail -1) && "
                   "printf 'XXXXXXXX' | dd of=\"$f\" bs=1 seek=4096 conv=notrunc 2>/dev/null",
                   cr_dir) == 0,
             "could not damage the newest snapshot");
    CR_CHECK(it_node_start(cr_top, cr_build, cr_ns, cr_dir,
                           "--nic veth --rx-queues 1 --capacity 100000 "
                           "--conf-extra '[snapshot];interval_s = 0;log_bytes = 0'") == 0,
             "restart after damaging the newest snapshot failed");
    CR_CHECK(it_sh("grep -q 'fell back to the previous' %s/sigflowd.log", cr_dir) == 0,
             "recovery did not report the fallback");
    cr_verify(rounds);
    json_t *st_json = cr_ctl(json_pack("{s:s}", "cmd", "stats"));
    if (st_json) {
        json_t *t = json_object_get(st_json, "total");
        fprintf(stderr, "test_crash: ok: final recovery replayed %lld records, %lld duplicates\n",
                (long long)json_integer_value(json_object_get(t, "replayed")),
                (long long)json_integer_value(json_object_get(t, "duplicates")));
        json_decref(st_json);
    }
    cr_cleanup();
    it_sh("rm -rf %s", cr_dir);
    return 0;
}
