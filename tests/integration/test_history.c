/*
 * test_history — workflow history and log retention against a real node.
 *
 *   test_history history     A tracked workflow gets 60 signals in four phases, one
 *                            activity scheduled and completed, while a fleet sends with
 *                            ACKs and resends. Between phases the node is killed (-9) and
 *                            restarted with 2, then 1, then 2, then 2 owner cores (layout
 *                            changes: new MANIFEST epochs), with snapshots every second.
 *                            At the end: the fleet's state equals the model, `workflow
 *                            history` of the tracked workflow lists exactly its inputs and
 *                            effects, newest first, across all epochs, and `--limit 20`
 *                            reads at most 64 KiB (the node's I/O layer counts the bytes).
 *   test_history retention   Steady load for a while with 1 MiB segments, snapshots every
 *                            second and a 3 MiB history retention: the number of segment
 *                            files and the disk use level off while the log written grows
 *                            far past them; the tracked workflow's history then ends with
 *                            the retention marker.
 *
 * Needs root (namespaces, veth); exits 77 without it.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "it_util.h"

#define H_FLEET      2000
#define H_RATE       2500
#define H_TRACKED    "hist-1"
#define H_SIGNALS    60
#define H_WAIT_S     300
#define H_READ_BOUND 65536

static char h_ns[64], h_dir[80], h_out[128];
static const char *h_top, *h_build;
static pid_t h_sender = -1;

static void h_cleanup(void)
{
    if (h_sender > 0) {
        kill(h_sender, SIGTERM);
        waitpid(h_sender, NULL, 0);
        h_sender = -1;
    }
    it_node_stop(h_top, h_build, h_dir);
}

#define H_CHECK(cond, ...)                                                                  \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "test_history: FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fprintf(stderr, "\n");                                                          \
            it_sh("tail -30 %s/sigflowd.log >&2", h_dir);                                   \
            h_cleanup();                                                                    \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

static int h_start(const char *lcores, const char *conf)
{
    char extra[512];
    snprintf(extra, sizeof(extra),
             "--nic veth --rx-queues 1 --capacity 100000 %s%s --conf-extra "
             "'[wal];segment_bytes = 1048576;[snapshot];interval_s = 1%s'",
             lcores ? "--lcores " : "", lcores ? lcores : "", conf ? conf : "");
    return it_node_start(h_top, h_build, h_ns, h_dir, extra);
}

static void h_kill(void)
{
    pid_t pid = it_node_pid(h_dir);
    H_CHECK(pid > 0 && kill(pid, SIGKILL) == 0, "kill -9 %d", pid);
    H_CHECK(it_wait_gone(pid, 30), "sigflowd %d did not die", pid);
}

static bool h_sender_running(void)
{
    return it_child_running(h_sender);
}

static void h_fleet_start(unsigned rounds, unsigned rate)
{
    h_sender = it_fleet_start(h_ns, h_build, H_FLEET, rounds, rate, h_out);
}

static void h_fleet_wait(void)
{
    int st = 0;
    for (int i = 0; i < H_WAIT_S * 10 && h_sender_running(); i++)
        usleep(100000);
    H_CHECK(!h_sender_running(), "sender still running after %d s", H_WAIT_S);
    waitpid(h_sender, &st, 0);
    h_sender = -1;
    H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sender: not every event was acknowledged");
}

/* The tracked workflow's signal n: temp n + 0.5; status 9 for 21..23 (three errors in a
 * row schedule `reprovision`), else 0. Sent with ACK and resend. */
static void h_signal(unsigned n)
{
    H_CHECK(it_sh("ip netns exec %s %s/control/send/sigflow-send --host 198.18.0.2 -t device "
                  "-i %s -s telemetry -e %u -f %u.5 -f %d --ack --retries 1000 >/dev/null",
                  h_ns, h_build, H_TRACKED, n, n, n >= 21 && n <= 23 ? 9 : 0) == 0,
            "signal %u not acknowledged", n);
}

static json_t *h_history(long limit)
{
    return it_ctl_at(h_dir, json_pack("{s:s, s:s, s:s, s:I}", "cmd", "history", "type", "device",
                                      "id", H_TRACKED, "limit", (json_int_t)limit));
}

struct h_model {
    unsigned rounds;
    unsigned char seen[H_FLEET];
    long tracked;
};

static void h_check_workflow(void *ctx, json_t *w)
{
    struct h_model *m = ctx;
    const char *id = json_string_value(json_object_get(w, "id"));
    if (strcmp(id, H_TRACKED) == 0) {
        m->tracked++;
        return;
    }
    int n = -1;
    sscanf(id, "sensor-%d", &n);
    H_CHECK(n >= 0 && n < H_FLEET && !m->seen[n], "unexpected workflow %s", id);
    m->seen[n] = 1;
    long long signals = json_integer_value(json_object_get(w, "signals"));
    long long last = json_integer_value(json_object_get(w, "last_event_id"));
    H_CHECK(signals == m->rounds, "%s: %lld signals, model says %u", id, signals, m->rounds);
    H_CHECK(last == (long long)(m->rounds - 1) * H_FLEET + n + 1, "%s: last event id %lld", id,
            last);
}

/* Expected history, oldest first: S1, created, S2..S23, scheduled reprovision 1, S24..S30,
 * reprovision done seq 1, S31..S60. Entry kinds: 's' signal, 'c' created, 'r' scheduled,
 * 'a' activity done. */
struct h_expect {
    char kind;
    unsigned n;
};

static unsigned h_expected(struct h_expect *e)
{
    unsigned k = 0;
    for (unsigned n = 1; n <= H_SIGNALS; n++) {
        e[k++] = (struct h_expect){ 's', n };
        if (n == 1)
            e[k++] = (struct h_expect){ 'c', 0 };
        if (n == 23)
            e[k++] = (struct h_expect){ 'r', 1 };
        if (n == 30)
            e[k++] = (struct h_expect){ 'a', 1 };
    }
    return k;
}

static void h_check_entry(json_t *e, const struct h_expect *x, unsigned pos)
{
    const char *kind = json_string_value(json_object_get(e, "kind"));
    H_CHECK(kind != NULL, "entry %u has no kind", pos);
    switch (x->kind) {
    case 's': {
        H_CHECK(strcmp(kind, "signal") == 0, "entry %u: %s, want signal %u", pos, kind, x->n);
        H_CHECK(json_integer_value(json_object_get(e, "event_id")) == x->n,
                "entry %u: event id %lld, want %u", pos,
                (long long)json_integer_value(json_object_get(e, "event_id")), x->n);
        json_t *f = json_object_get(e, "fields");
        H_CHECK(json_real_value(json_object_get(f, "temp_c")) == x->n + 0.5 &&
                    json_integer_value(json_object_get(f, "status")) ==
                        (x->n >= 21 && x->n <= 23 ? 9 : 0),
                "entry %u: fields of signal %u wrong", pos, x->n);
        break;
    }
    case 'c':
        H_CHECK(strcmp(kind, "effects") == 0 && json_is_true(json_object_get(e, "created")),
                "entry %u: %s, want the creation", pos, kind);
        break;
    case 'r': {
        json_t *s = json_array_get(json_object_get(e, "scheduled"), 0);
        H_CHECK(strcmp(kind, "effects") == 0 && s &&
                    strcmp(json_string_value(json_object_get(s, "activity")), "reprovision") == 0 &&
                    json_integer_value(json_object_get(s, "seq")) == x->n,
                "entry %u: %s, want reprovision scheduled", pos, kind);
        break;
    }
    case 'a':
        H_CHECK(strcmp(kind, "activity_done") == 0 &&
                    json_integer_value(json_object_get(e, "seq")) == x->n,
                "entry %u: %s, want reprovision done", pos, kind);
        break;
    }
}

static void h_verify(unsigned rounds)
{
    static struct h_model m;
    memset(&m, 0, sizeof(m));
    m.rounds = rounds;
    long total = it_list_each(h_dir, "device", h_check_workflow, &m);
    H_CHECK(total == H_FLEET + 1 && m.tracked == 1, "%ld workflows, model says %d", total,
            H_FLEET + 1);

    static struct h_expect want[H_SIGNALS + 8];
    unsigned nwant = h_expected(want);
    json_t *h = h_history(0);
    H_CHECK(h && json_is_true(json_object_get(h, "ok")), "history refused");
    json_t *entries = json_object_get(h, "entries");
    H_CHECK(json_array_size(entries) == nwant, "history has %zu entries, want %u (end: %s)",
            json_array_size(entries), nwant, json_string_value(json_object_get(h, "end")));
    H_CHECK(strcmp(json_string_value(json_object_get(h, "end")), "start") == 0,
            "history does not reach the workflow's start");
    for (unsigned i = 0; i < nwant; i++) /* newest first */
        h_check_entry(json_array_get(entries, i), &want[nwant - 1 - i], i);
    unsigned epochs = 0;
    char seen[8][32];
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        const char *log = json_string_value(json_object_get(e, "log"));
        bool known = false;
        for (unsigned k = 0; k < epochs; k++)
            known = known || strncmp(seen[k], log, 22) == 0;
        if (!known && epochs < 8)
            snprintf(seen[epochs++], sizeof(seen[0]), "%.22s", log);
    }
    H_CHECK(epochs >= 3, "the history spans %u epochs, want >= 3 (layout changes)", epochs);

    /* the read bound: --limit 20 reads at most 64 KiB, whatever the log's size */
    json_t *h20 = h_history(20);
    H_CHECK(h20 && json_array_size(json_object_get(h20, "entries")) == 20, "--limit 20");
    long long bytes = json_integer_value(json_object_get(json_object_get(h20, "io"), "bytes"));
    H_CHECK(bytes > 0 && bytes <= H_READ_BOUND, "--limit 20 read %lld bytes (bound %d)", bytes,
            H_READ_BOUND);
    for (unsigned k = 0; k < 20; k++)
        H_CHECK(json_equal(json_array_get(json_object_get(h20, "entries"), k),
                           json_array_get(entries, k)),
                "--limit 20 entry %u differs from the full history", k);
    fprintf(stderr, "test_history: %u history entries over %u epochs; --limit 20 read %lld B\n",
            nwant, epochs, bytes);
    json_decref(h20);
    json_decref(h);
}

static void h_complete_activity(void)
{
    json_t *r = NULL;
    for (int i = 0; i < 100; i++) { /* the task leaves once its record is durable */
        json_decref(r);
        r = it_ctl_at(h_dir, json_pack("{s:s, s:s, s:s, s:i, s:s, s:i}", "cmd", "activity", "type",
                                       "device", "id", H_TRACKED, "seq", 1, "outcome", "done",
                                       "result", 0));
        if (r && json_is_true(json_object_get(r, "ok")))
            break;
        usleep(50000);
    }
    H_CHECK(r && json_is_true(json_object_get(r, "ok")), "activity complete refused");
    json_decref(r);
}

static int h_mode_history(void)
{
    /* phases: lcores of the node that runs them (2 owners, 1, 2, 2) */
    static const char *layouts[4] = { NULL, "0@1", NULL, NULL };
    H_CHECK(h_start(layouts[0], NULL) == 0, "node did not start");
    unsigned rounds = 30 * H_RATE / H_FLEET + 2; /* ~30 s of paced traffic */
    h_fleet_start(rounds, H_RATE);
    unsigned n = 1;
    for (unsigned phase = 0; phase < 4; phase++) {
        for (unsigned k = 0; k < H_SIGNALS / 4; k++, n++) {
            h_signal(n);
            if (n == 30)
                h_complete_activity();
            usleep(50000);
        }
        sleep(1); /* a snapshot may land */
        h_kill();
        const char *next = phase + 1 < 4 ? layouts[phase + 1] : NULL;
        H_CHECK(h_start(next, NULL) == 0, "restart after phase %u failed", phase);
    }
    h_fleet_wait();
    h_verify(rounds);
    H_CHECK(it_sh("grep -q 'layout changed' %s/sigflowd.log", h_dir) == 0,
            "no restart changed the layout");
    H_CHECK(it_sh("grep -q 'snapshot loaded' %s/sigflowd.log", h_dir) == 0,
            "no restart loaded a snapshot");
    /* and once more after a final recovery */
    h_kill();
    H_CHECK(h_start(NULL, NULL) == 0, "final restart failed");
    h_verify(rounds);
    return 0;
}

/* Segment files of the logs, bytes of the logs and bytes under the node directory. */
static void h_disk(unsigned *segments, unsigned long long *log_bytes, unsigned long long *bytes)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "ls %s/epoch-*/wal/core-*/*.log 2>/dev/null | wc -l; "
             "cat %s/epoch-*/wal/core-*/*.log 2>/dev/null | wc -c; du -sb %s | cut -f1",
             h_dir, h_dir, h_dir);
    FILE *p = popen(cmd, "r");
    *segments = 0;
    *bytes = *log_bytes = 0;
    if (p) {
        if (fscanf(p, "%u %llu %llu", segments, log_bytes, bytes) != 3)
            *segments = 0;
        pclose(p);
    }
}

static unsigned long long h_log_written(void)
{
    json_t *s = it_ctl_at(h_dir, json_pack("{s:s}", "cmd", "stats"));
    unsigned long long sum = 0;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(s, "cores"), i, c)
    {
        json_t *w = json_object_get(c, "wal");
        sum += (unsigned long long)json_integer_value(json_object_get(w, "bytes_written"));
    }
    json_decref(s);
    return sum;
}

static int h_mode_retention(void)
{
    H_CHECK(h_start(NULL, ";[history];retention_s = 3600;retention_bytes = 3145728") == 0,
            "node did not start");
    for (unsigned n = 1; n <= 5; n++)
        h_signal(n);
    const unsigned secs = 36, rate = 20000;
    unsigned rounds = secs * rate / H_FLEET;
    h_fleet_start(rounds, rate);
    unsigned segs[64] = { 0 };
    unsigned long long disk[64] = { 0 }, logb[64] = { 0 };
    unsigned t = 0;
    for (; t < 64 && h_sender_running(); t++) {
        sleep(1);
        h_disk(&segs[t], &logb[t], &disk[t]);
        fprintf(stderr, "test_history: t=%2us %3u segment files (%6.1f MiB), %6.1f MiB on disk\n",
                t + 1, segs[t], (double)logb[t] / (1 << 20), (double)disk[t] / (1 << 20));
    }
    h_fleet_wait();
    sleep(2); /* one more snapshot releases what the last one allowed */
    unsigned long long written = h_log_written();
    unsigned fs;
    unsigned long long fl, fb;
    h_disk(&fs, &fl, &fb);
    H_CHECK(t >= 20, "the load ran only %u s", t);
    /* Level: per core the retention (3 segments) + the recycle pool (4) + the segment
     * prepared ahead (+2 the older kept snapshot may still need), plus what is written while
     * a snapshot cycle completes (releases happen when one commits): bounded, and not growing
     * from the middle third to the last. */
    unsigned max_late = 0, max_mid = 0;
    unsigned long long disk_late = 0, disk_mid = 0;
    for (unsigned k = t / 3; k < 2 * t / 3; k++) {
        max_mid = segs[k] > max_mid ? segs[k] : max_mid;
        disk_mid = disk[k] > disk_mid ? disk[k] : disk_mid;
    }
    for (unsigned k = 2 * t / 3; k < t; k++) {
        max_late = segs[k] > max_late ? segs[k] : max_late;
        disk_late = disk[k] > disk_late ? disk[k] : disk_late;
    }
    fprintf(stderr,
            "test_history: log written %.1f MiB; segment files: max %u (middle third), %u "
            "(last third), %u (%.1f MiB) at the end; disk max %.1f / %.1f MiB, %.1f at the end\n",
            (double)written / (1 << 20), max_mid, max_late, fs, (double)fl / (1 << 20),
            (double)disk_mid / (1 << 20), (double)disk_late / (1 << 20), (double)fb / (1 << 20));
    H_CHECK(written > 8ull * fl, "log written (%llu B) not well past the log kept (%llu B)",
            written, fl);
    H_CHECK(max_late <= 2 * 32, "%u segment files: retention does not bound the log", max_late);
    H_CHECK(max_late <= max_mid + 8, "segment files still growing: %u then %u", max_mid, max_late);
    H_CHECK(disk_late <= disk_mid + disk_mid / 4 + (8ull << 20), "disk use still growing");
    json_t *h = h_history(0);
    H_CHECK(h && json_is_true(json_object_get(h, "ok")), "history refused");
    const char *end = json_string_value(json_object_get(h, "end"));
    H_CHECK(strcmp(end, "retention") == 0, "history of an old workflow ends with '%s'", end);
    fprintf(stderr, "test_history: old workflow's history: %zu entries, then past retention\n",
            json_array_size(json_object_get(h, "entries")));
    json_decref(h);
    return 0;
}

int main(int argc, char **argv)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_history: needs root: skipped\n");
        return 77;
    }
    h_top = getenv("SIGFLOW_TOP");
    h_build = getenv("SIGFLOW_BUILD");
    if (argc != 2 || !h_top || !h_build ||
        (strcmp(argv[1], "history") != 0 && strcmp(argv[1], "retention") != 0)) {
        fprintf(stderr, "usage: test_history history|retention (SIGFLOW_TOP, SIGFLOW_BUILD)\n");
        return 64;
    }
    snprintf(h_ns, sizeof(h_ns), "sfhi%d", (int)getpid());
    snprintf(h_dir, sizeof(h_dir), "/var/tmp/sigflow-history-%d", (int)getpid());
    snprintf(h_out, sizeof(h_out), "%s/sender.json", h_dir);
    it_sh("rm -rf %s", h_dir);
    int rc = strcmp(argv[1], "history") == 0 ? h_mode_history() : h_mode_retention();
    h_cleanup();
    if (rc == 0)
        it_sh("rm -rf %s", h_dir);
    fprintf(stderr, "test_history: %s: ok\n", argv[1]);
    return rc;
}
