#!/usr/bin/env python3
"""test_http.py — sigflow-control's HTTP surface ([control] http): sigflowd + sigflow-control
+ a local receiver (control_env), activity `hook` of ctl.flow.

  1. /healthz 200 "ok"; /readyz 200 once the channel is held; unknown path 404; POST and
     HEAD-less methods 405 (Allow: GET);
  2. 30 workflows run `hook` once each; after the load settles /metrics parses with a strict
     parser (every line a `# HELP`/`# TYPE` comment or `name{labels} value`, every sample's
     family TYPEd once, label values well escaped, histogram buckets monotone with +Inf ==
     _count) and agrees with `sigflowctl --json stats` (events applied, tasks done) and
     `executor stats` (tasks, done, dispatch latency count); promtool check metrics, when
     promtool is installed;
  3. sigflowd stopped: /readyz 503 with a one-line reason, /healthz still 200, /metrics
     still served (sigflow_node_up 0).

Exit 0 pass, 1 fail, 77 skip (not root). Bounded by a 120 s alarm.
"""
import http.client
import math
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import control_env as ce  # noqa: E402
from control_env import check, wait_for  # noqa: E402

EXECUTORS = """[executor hooks]
kind = webhook
url = @HOOK_URL@
concurrency = 8
"""
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?\})? (\S+)$" % (NAME, LABEL, LABEL))
HELP = re.compile(r"^# HELP (%s) (?:[^\\\n]|\\[\\n])*$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram)$" % NAME)


def get(port, path, method="GET"):
    """(status, headers dict lower-cased, body text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        c.close()


def parse_metrics(text):
    """Strict parse of a 0.0.4 exposition: {family: {"type": t, "samples": [(name,
    labels dict, value)]}}. Fail on any line that does not fit."""
    fams, order = {}, []
    check(text.endswith("\n"), "exposition does not end with a newline")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("#"):
            m = HELP.match(line) or TYPE.match(line)
            check(m, "line %d: bad comment %r" % (n, line))
            if line.startswith("# TYPE"):
                check(m.group(1) not in fams, "line %d: %s TYPEd twice" % (n, m.group(1)))
                fams[m.group(1)] = {"type": m.group(2), "samples": []}
                order.append(m.group(1))
            continue
        m = SAMPLE.match(line)
        check(m, "line %d: bad sample %r" % (n, line))
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[:-len(suffix)] in fams and \
                    fams[name[:-len(suffix)]]["type"] == "histogram":
                fam = name[:-len(suffix)]
        check(fam in fams, "line %d: sample of %s without a TYPE" % (n, name))
        check(order[-1] == fam, "line %d: %s not next to its family" % (n, name))
        lab = {}
        for lm in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels):
            check(lm.group(1) not in lab, "line %d: label %s twice" % (n, lm.group(1)))
            lab[lm.group(1)] = lm.group(2).replace("\\n", "\n").replace('\\"', '"').replace(
                "\\\\", "\\")
        v = float(value)
        check(not math.isnan(v), "line %d: NaN" % n)
        fams[fam]["samples"].append((name, lab, v))
    for fam, f in fams.items():
        if f["type"] == "counter":
            check(fam.endswith("_total"), "counter %s does not end in _total" % fam)
        if f["type"] != "histogram":
            continue
        buckets = [(s[1]["le"], s[2]) for s in f["samples"] if s[0] == fam + "_bucket"]
        count = [s[2] for s in f["samples"] if s[0] == fam + "_count"]
        check(len(count) == 1 and buckets and buckets[-1][0] == "+Inf",
              "histogram %s: no _count or no +Inf bucket" % fam)
        les = [float(b[0]) for b in buckets]
        check(les == sorted(les) and len(set(les)) == len(les), "%s: le not increasing" % fam)
        vals = [b[1] for b in buckets]
        check(vals == sorted(vals), "%s: buckets not monotone %s" % (fam, vals))
        check(vals[-1] == count[0], "%s: +Inf %s != _count %s" % (fam, vals[-1], count[0]))
    return fams


def total(fams, name, **labels):
    """The sum of name's samples with these labels (name: a sample's, e.g. X_count)."""
    f = fams.get(name) or fams.get(re.sub(r"_(bucket|sum|count)$", "", name))
    check(f is not None, "metric %s missing" % name)
    return sum(s[2] for s in f["samples"] if s[0] == name and
               all(s[1].get(k) == v for k, v in labels.items()))


def check_sections(port):
    """1: health, readiness, 404, 405."""
    st, _, body = get(port, "/healthz")
    check((st, body) == (200, "ok\n"), "/healthz %s %r" % (st, body))
    st, _, body = get(port, "/readyz")
    check(st == 200, "/readyz while connected: %s %r" % (st, body))
    st, _, _ = get(port, "/nope")
    check(st == 404, "unknown path answered %s" % st)
    for method in ("POST", "PUT", "DELETE"):
        st, h, _ = get(port, "/metrics", method)
        check(st == 405 and h.get("allow") == "GET", "%s /metrics: %s %s" % (method, st, h))


def main():
    env = ce.Env("http")
    try:
        env.receiver.behave = lambda req: (200, {"result": 7}, 0.0)
        env.write_config(EXECUTORS, "* = hooks")
        env.start_control()
        port = env.http_port
        wait_for(lambda: get(port, "/readyz")[0] == 200, 10, "/readyz 200")
        check_sections(port)

        # ---- 2. load, then metrics against the node's and the dispatcher's stats
        ids = ["h-%02d" % i for i in range(30)]
        env.send_lines(["ctl %s do_hook 1 %d" % (wf, i) for i, wf in enumerate(ids)])
        wait_for(lambda: env.stats()["tasks_done"] >= 30, 30, "30 runs done", 0.2)
        time.sleep(1.2)  # the cached stats are at most 1 s old
        st, h, text = get(port, "/metrics")
        check(st == 200, "/metrics %s" % st)
        check(h.get("content-type", "").startswith("text/plain; version=0.0.4"),
              "Content-Type %r" % h.get("content-type"))
        fams = parse_metrics(text)
        node = env.stats()
        cs = env.control_stats()
        for key in ("events_applied", "tasks_done", "tasks_dispatched", "rx_packets"):
            got = total(fams, "sigflow_%s_total" % key)
            check(got == node[key], "%s: metrics %s, stats %s" % (key, got, node[key]))
        check(total(fams, "sigflow_drops_total") == node["drops_total"],
              "drops: %s vs %s" % (total(fams, "sigflow_drops_total"), node["drops_total"]))
        check(total(fams, "sigflow_node_up") == 1, "sigflow_node_up not 1")
        check(total(fams, "sigflow_control_connected") == 1, "not connected in metrics")
        for key in ("tasks", "done", "attempts", "failed", "retried", "timeouts", "dead"):
            got = total(fams, "sigflow_control_%s_total" % key)
            check(got == cs[key], "control %s: metrics %s, stats %s" % (key, got, cs[key]))
        check(total(fams, "sigflow_control_executor_concurrency", executor="hooks") == 8,
              "executor concurrency")
        check(total(fams, "sigflow_control_executor_inflight", executor="hooks") == 0,
              "executor inflight after the load")
        lat = "sigflow_control_dispatch_latency_seconds"
        check(total(fams, lat + "_count") == cs["dispatch_latency_count"] >= 30,
              "latency count %s vs %s" % (total(fams, lat + "_count"),
                                          cs["dispatch_latency_count"]))
        for f in fams:
            check(("# HELP %s " % f) in text, "%s has no HELP" % f)
        promtool = shutil.which("promtool")
        if promtool:
            r = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                               capture_output=True, timeout=30)
            check(r.returncode == 0, "promtool check metrics: %s %s" % (r.stdout, r.stderr))
        ce.say("http", "/metrics: %d families, %d bytes, agrees with stats%s" %
               (len(fams), len(text), ", promtool ok" if promtool else ""))

        # ---- 3. sigflowd gone: not ready, still healthy
        env.node.stop()
        wait_for(lambda: get(port, "/readyz")[0] == 503, 10, "/readyz 503 without sigflowd")
        st, _, body = get(port, "/readyz")
        check(st == 503 and body.count("\n") == 1 and body.startswith("not ready: "),
              "/readyz without sigflowd: %s %r" % (st, body))
        check(get(port, "/healthz")[0] == 200, "/healthz without sigflowd")

        def node_down():
            st, _, text = get(port, "/metrics")
            check(st == 200, "/metrics without sigflowd: %s" % st)
            fams = parse_metrics(text)
            return total(fams, "sigflow_node_up") == 0 and "sigflow_events_applied_total" \
                not in fams and total(fams, "sigflow_control_done_total") == cs["done"]

        # the cached stats answer is at most 1 s old
        wait_for(node_down, 5, "/metrics: sigflow_node_up 0 without sigflowd", 0.2)
        env.ok = True
        return 0
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(ce.run_bounded(main, 120))
