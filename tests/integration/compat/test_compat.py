#!/usr/bin/env python3
"""test_compat.py — a data directory written by an OLD sigflowd recovers under this one with
the same state (issue #13: "an old data directory either recovers or is refused with the
reason"; this one must recover).

Usage: test_compat.py CLOCK_SHIFT_SO   (env SIGFLOW_BUILD: the build under test; run as root)

For each fixture NAME.tar.gz + NAME.json in this directory (made by make_fixture.py with
the old binaries: one snapshot and log after it, timers armed, activity tasks in flight,
activities completed and failed by hand, a deleted and two completed workflows, the node
killed with SIGKILL; see there):
  1. extract the tarball into a fresh directory under /var/tmp;
  2. start this build's sigflowd on it (compat_node.CONFIG, the fixture's own settings),
     with the clock_shift.c shim preloaded so that its wall clock starts at NAME.json's
     `clock_ns`, the time the old daemon recovered the same directory and gave the expected
     answers: workflow timers fall due by the wall clock (`silence 15m`), and without the
     shift a node started later than 15 minutes after the fixture was made would fire them
     on recovery and legitimately answer something else;
  3. ask this build's sigflowctl the same questions (compat_node.record_answers: definition
     list, workflow list of all, describe of 11 workflows including a deleted one, full
     history of 6, activity list, data fields of stats) and compare with NAME.json. Equal
     in every field except (compat_node.IGNORED):
       - activity list: each task's `dispatched_ns` (the wall time of the re-dispatch after
         the restart), and the tasks are compared sorted by (type, id, seq), not in the
         order the restarted node happened to queue them;
       - workflow history: `io` (reads and bytes that request cost);
       - stats: everything but compat_node.STATS_KEYS (partitions, owner cores, epoch, and
         recovery's snapshot_partitions, records_read, records_applied, from_epoch; the
         rest are counters of the process: packets, polls, uptime, durations...);
     recovery must have loaded a snapshot AND applied log records;
  4. send more events on top (sigflow-send --ack): telemetry to three online devices, a
     heartbeat to the offline one, quantity_changed to an order in charging, a resend of
     an acknowledged event id (must be answered duplicate: dedupe state recovered) and
     event id 1 to the deleted workflow (applied: the deletion was recovered, the id
     starts afresh); then check each workflow's signals / last_event_id / vars / state
     moved by exactly those events, stats events_applied and signals.duplicate, and that
     the new events' receive time is the shifted clock;
  5. stop the daemon (SIGTERM, by its pid; exit status 0) and remove the directory.

Bounded: everything under a 240 s alarm; only the daemon this script started is stopped.
Exit 0 pass, 1 fail, 77 skip (not root). Standard library only.
"""
import glob
import json
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
import compat_node as cn  # noqa: E402

HARD_TIMEOUT_S = 240


class Fail(Exception):
    pass


class Timeout(Exception):
    pass


def say(msg):
    cn.log("compat", msg)


def normalize(name, recorded):
    """{"rc", "answer"} without the IGNORED fields; activity tasks sorted."""
    out = dict(recorded)
    answer = out["answer"] = cn.strip_ignored(name, recorded.get("answer"))
    if name == "activity list" and isinstance(answer, dict) and "tasks" in answer:
        answer["tasks"].sort(key=lambda t: (t.get("type"), t.get("id"), t.get("seq")))
    return out


def compare(expected, got):
    bad = []
    for name in expected:
        if name not in got:
            bad.append("%s: not asked" % name)
            continue
        e = normalize(name, expected[name])
        g = normalize(name, got[name])
        for line in cn.diff(e, g, name):
            bad.append(line)
    return bad


def check_on_top(node, exp, clock_ns, t_start):
    """Events on top of the recovered state; raises Fail."""
    def describe(wid, wtype="device"):
        rc, a = node.ctl("workflow", "describe", wtype, wid, ok_codes=(0, 65))
        return a

    before = {w: describe(w) for w in ("dev-000", "dev-004", "dev-007", "dev-012")}
    before["ord-005"] = describe("ord-005", "order")
    _, stats0 = node.ctl("stats")  # counters include what recovery replayed: deltas below
    old_id = exp["last_event_id"]
    lines = []
    for w in ("dev-000", "dev-007", "dev-012"):
        lines.append("device %s telemetry %d 41.5 0" % (w, old_id["device " + w] + 1))
    lines.append("device dev-004 heartbeat %d" % (old_id["device dev-004"] + 1))
    lines.append("order ord-005 quantity_changed %d 7" % (old_id["order ord-005"] + 1))
    lines.append("device dev-000 telemetry %d 99 1" % old_id["device dev-000"])  # a resend
    lines.append("device dev-029 telemetry 1 12.5 0")  # the deleted id starts afresh
    s = node.send_file(lines, 1, 1)
    st = s["statuses"]
    if st.get("applied") != len(lines) - 1 or st.get("duplicate") != 1:
        raise Fail("events on top: expected %d applied and 1 duplicate, got %s" %
                   (len(lines) - 1, json.dumps(st)))

    bad = []

    def want(what, got, expect):
        if got != expect:
            bad.append("%s: expected %s, got %s" % (what, json.dumps(expect), json.dumps(got)))

    for w in ("dev-000", "dev-007", "dev-012"):
        b, a = before[w], describe(w)
        want(w + " signals", a["signals"], b["signals"] + 1)
        want(w + " last_event_id", a["last_event_id"], old_id["device " + w] + 1)
        want(w + " readings", a["vars"]["readings"], b["vars"]["readings"] + 1)
        want(w + " last_temp", a["vars"]["last_temp"], 41.5)
        want(w + " max_temp", a["vars"]["max_temp"], max(41.5, b["vars"]["max_temp"]))
        want(w + " state", a["state"], "online")
    a = describe("dev-004")
    want("dev-004 state (offline + heartbeat)", a["state"], "online")
    want("dev-004 signals", a["signals"], before["dev-004"]["signals"] + 1)
    a = describe("ord-005", "order")
    b = before["ord-005"]
    want("ord-005 ordered", a["vars"]["ordered"], 7)
    want("ord-005 changes", a["vars"]["changes"], b["vars"]["changes"] + 1)
    want("ord-005 amount_cents", a["vars"]["amount_cents"], 7 * b["vars"]["price_cents"])
    want("ord-005 charge seq", [x["seq"] for x in a["activities"] if x["activity"] == "charge"],
         [max(x["seq"] for x in b["activities"]) + 1])
    a = describe("dev-029")
    want("dev-029 (deleted, started afresh) signals", a.get("signals"), 1)
    want("dev-029 state", a.get("state"), "online")

    _, hist = node.ctl("workflow", "history", "device", "dev-000", "--limit", "1")
    recv = hist["entries"][0].get("received_ns", 0)
    elapsed = time.time_ns() - t_start
    if not clock_ns <= recv <= clock_ns + elapsed + 5 * 10**9:
        bad.append("dev-000's new event received at %d, not on the shifted clock [%d, %d]: "
                   "the clock shim did not take" % (recv, clock_ns, clock_ns + elapsed))

    _, stats = node.ctl("stats")
    want("stats total.events_applied (delta)",
         stats["total"]["events_applied"] - stats0["total"]["events_applied"],
         len(lines) - 1)  # all but the duplicate
    want("stats signals.duplicate (delta)",
         stats["total"]["signals"]["duplicate"] - stats0["total"]["signals"]["duplicate"], 1)
    want("stats total.timers_fired", stats["total"]["timers_fired"], 0)
    if bad:
        raise Fail("events on top of the recovered state:\n  " + "\n  ".join(bad))
    say("%d events on top applied as expected (1 duplicate)" % len(lines))


def run_fixture(build, shim, name, workroot):
    with open(os.path.join(HERE, name + ".json")) as f:
        exp = json.load(f)
    work = tempfile.mkdtemp(prefix="sigflow-compat-", dir=workroot)
    node = None
    try:
        with tarfile.open(os.path.join(HERE, name + ".tar.gz")) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(work, filter="data")
            else:
                tar.extractall(work)
        data = os.path.join(work, "node")
        os.chmod(data, 0o700)
        t_start = time.time_ns()
        shift = exp["clock_ns"] - t_start
        node = cn.Node(build, work, data, "new", env_extra={
            "LD_PRELOAD": shim, "SIGFLOW_CLOCK_SHIFT_NS": str(shift)})
        say("%s: old daemon %s; this sigflowd on a copy, clock shifted by %.0f s" %
            (name, exp["commit"][:7], shift / 1e9))
        node.start()
        got = cn.record_answers(node)
        bad = compare(exp["answers"], got)
        if bad:
            raise Fail("%s: %d answers differ from the old daemon's (first %d):\n  %s" %
                       (name, len(bad), min(len(bad), 40), "\n  ".join(bad[:40])))
        st = got["stats (data fields)"]["answer"]
        if not st["recovery.snapshot_partitions"] or not st["recovery.records_applied"]:
            raise Fail("%s: recovery did not use a snapshot and the log: %s" % (name, st))
        say("%s: %d answers equal (recovery: %d partitions from the snapshot, %d log records "
            "applied)" % (name, len(got), st["recovery.snapshot_partitions"],
                          st["recovery.records_applied"]))
        check_on_top(node, exp, exp["clock_ns"], t_start)
        rc = node.stop()
        node = None
        if rc != 0:
            raise Fail("%s: sigflowd exited %s on SIGTERM" % (name, rc))
    except cn.NodeError as e:
        raise Fail("%s: %s" % (name, e))
    finally:
        if node is not None:
            if not node.alive() and node.proc is not None:
                say("sigflowd died (status %s):\n%s" % (node.proc.returncode, node.log_tail()))
            node.stop(wait=10)
        shutil.rmtree(work, ignore_errors=True)


def main():
    if os.geteuid() != 0:
        say("SKIP: needs root")
        return 77
    if len(sys.argv) != 2:
        say("usage: test_compat.py CLOCK_SHIFT_SO")
        return 1
    shim = os.path.realpath(sys.argv[1])
    build = os.environ.get("SIGFLOW_BUILD") or os.path.join(HERE, "..", "..", "..", "build")
    fixtures = sorted(os.path.basename(p)[:-len(".json")]
                      for p in glob.glob(os.path.join(HERE, "*.json")))
    if not fixtures:
        say("FAIL: no fixture in %s" % HERE)
        return 1

    def on_alarm(_sig, _frame):
        raise Timeout("hard timeout (%d s)" % HARD_TIMEOUT_S)

    def on_term(_sig, _frame):
        raise Timeout("terminated")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(HARD_TIMEOUT_S)
    t0 = time.monotonic()
    try:
        for name in fixtures:
            run_fixture(build, shim, name, "/var/tmp")
    except (Fail, Timeout) as e:
        say("FAIL: %s" % e)
        return 1
    finally:
        signal.alarm(0)
    say("PASS: %d fixture(s) in %.1f s" % (len(fixtures), time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
