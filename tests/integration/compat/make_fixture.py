#!/usr/bin/env python3
"""make_fixture.py — write the data-directory fixture of test_compat.py with an OLD daemon.

Issue #13: "an old data directory either recovers or is refused with the reason". This
script makes the old data directory; test_compat.py recovers it with the daemon under test
and compares its answers with the ones the old daemon gave on the same directory.

Usage (as root; BUILD is a build directory of the OLD tree, e.g. commit 0d35ac5):

    tests/integration/compat/make_fixture.py --build /work/bbase/b [--out DIR] [--name NAME]

It writes OUT/NAME.tar.gz (the data directory) and OUT/NAME.json (the expected answers);
defaults: OUT = this directory, NAME = data-<commit of BUILD's source tree, 7 digits>.

What it does, with the binaries of BUILD only (sigflowd, sigflowctl, sigflow-send):
  1. start sigflowd on a fresh directory: the kernel-socket source on 127.0.0.1 (a free UDP
     port), ONE lcore (rx + owner), 64 partitions, 1 MiB log segments (pre-zeroed, so the
     tarball stays small), tombstones and log kept for ever, snapshots only on request
     (compat_node.CONFIG);
  2. deploy examples/device.flow and examples/order.flow (of BUILD's source tree): devices
     arm `silence 15m` timers and run `reprovision` after three errors in a row; orders
     run `charge`, then `ship` with an `after 3d` timer;
  3. phase 1, one event per frame and batch (so the log crosses into its second segment):
     5 telemetry to each of 30 devices dev-000..029 (dev-004, -009, ... two errors in a
     row), heartbeats, `placed` to 20 orders ord-000..019;
  4. a snapshot: `tune snapshot.interval_s 1` until `stats` counts one taken, then back to
     3600, so recovery needs the snapshot AND the log after it;
  5. phase 2: 4 more telemetry per device (a third error: dev-004, -009, ... go to
     `reprovisioning` and schedule `reprovision`), dev-020 decommissioned (completed, its
     tombstone stays), `quantity_changed` to orders 2, 5, 8, ... (the charge in flight is
     replaced), ord-011 cancelled (completed);
  6. by hand: `activity complete` ord-003's charge and dev-009's reprovision, `activity
     fail` dev-004's reprovision (from `activity list`), then ord-003 `quantity_changed`
     (in `preparing`), `workflow delete device dev-029` (with its task in flight), a few
     last telemetry;
  7. SIGKILL (no clean shutdown), and the directory goes into the tarball at once (without
     the dead node's sigflowd.sock and sigflowd.pid: runtime files, not data);
  8. restart the OLD daemon on that directory, record the answers (compat_node.
     record_answers: definitions, every workflow, describe of 11, full history of 6,
     activity list, the data fields of stats) with the wall clock at that restart
     (`clock_ns`: test_compat.py runs the new daemon at that time, see there), stop it.
     Steps 7 and 8 are not far apart: the first timer is due 15 minutes after the events.

Every event is acknowledged (--ack, all "applied") before the next step. Exit 0 on success,
77 when not root. Standard library only.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
import compat_node as cn  # noqa: E402

N_DEV, N_ORD = 30, 20


def tag(msg):
    cn.log("make_fixture", msg)


class Plan:
    """The events, with per-workflow increasing event ids."""

    def __init__(self):
        self.next_id = {}
        self.sent = 0

    def ev(self, wtype, wid, sig, *fields):
        k = (wtype, wid)
        self.next_id[k] = self.next_id.get(k, 0) + 1
        self.sent += 1
        return " ".join([wtype, wid, sig, str(self.next_id[k])] + [str(f) for f in fields])


def dev(i):
    return "dev-%03d" % i


def order(i):
    return "ord-%03d" % i


def phase1(p):
    lines = []
    for k in range(5):  # round-robin, so the log interleaves the workflows
        for i in range(N_DEV):
            err = i % 5 == 4 and k >= 3
            lines.append(p.ev("device", dev(i), "telemetry", "%.1f" % (20 + i % 7 + k * 0.5),
                              1 if err else 0))
            if i % 10 == 7 and k == 2:
                lines.append(p.ev("device", dev(i), "heartbeat"))
        if k == 1:
            for i in range(N_ORD):
                lines.append(p.ev("order", order(i), "placed", 1 + i % 4, 100 * (i + 1)))
    return lines


def phase2(p):
    devs, rest = [], []
    for k in range(4):
        for i in range(N_DEV):
            if i == 20 and k == 2:
                devs.append(p.ev("device", dev(i), "decommission"))
                continue
            if i == 20 and k > 2:
                continue
            err = i % 5 == 4 and k == 0
            devs.append(p.ev("device", dev(i), "telemetry", "%.1f" % (30 + i % 5 - k * 0.25),
                             1 if err else 0))
    for i in range(N_ORD):
        if i % 3 == 2:
            rest.append(p.ev("order", order(i), "quantity_changed", 1 + i % 4 + 2))
    rest.append(p.ev("order", order(11), "cancel_order"))
    return devs, rest


def task_seq(tasks, wtype, wid, activity):
    for t in tasks:
        if t["type"] == wtype and t["id"] == wid and t["activity"] == activity:
            return t["seq"]
    raise cn.NodeError("no %s task of %s %s in activity list" % (activity, wtype, wid))


def send(node, p, lines, batch, window):
    s = node.send_file(lines, batch, window)
    st = s["statuses"]
    if s["acked"] != len(lines) or st.get("applied") != len(lines):
        raise cn.NodeError("not every event applied: %s" % json.dumps(s))
    tag("%d events acknowledged applied (%d frames)" % (len(lines), s["frames"]))


def generate(node, src):
    node.start()
    for f in cn.FLOWS:
        node.ctl("definition", "deploy", os.path.join(src, "examples", f))
    p = Plan()
    send(node, p, phase1(p), 1, 1)

    node.ctl("tune", "snapshot.interval_s", "1")
    deadline = time.monotonic() + 60
    while True:
        _, st = node.ctl("stats")
        if st["cores"][0]["snapshots"]["taken"] >= 1:
            break
        if time.monotonic() > deadline:
            raise cn.NodeError("no snapshot within 60 s")
        time.sleep(0.1)
    node.ctl("tune", "snapshot.interval_s", "3600")
    _, st = node.ctl("stats")
    taken = st["cores"][0]["snapshots"]["taken"]
    tag("snapshot taken (%d), log at lsn %d" % (taken, st["cores"][0]["wal"]["durable_lsn"]))

    devs, rest = phase2(p)
    send(node, p, devs, 1, 1)
    send(node, p, rest, 8, 4)

    _, tasks = node.ctl("activity", "list", "--limit", "1000")
    tasks = tasks["tasks"]
    tag("%d activity tasks in flight" % len(tasks))
    node.ctl("activity", "complete", "order", order(3),
             str(task_seq(tasks, "order", order(3), "charge")), "0")
    node.ctl("activity", "complete", "device", dev(9),
             str(task_seq(tasks, "device", dev(9), "reprovision")), "0")
    node.ctl("activity", "fail", "device", dev(4),
             str(task_seq(tasks, "device", dev(4), "reprovision")))
    send(node, p, [p.ev("order", order(3), "quantity_changed", 9)], 1, 1)
    node.ctl("workflow", "delete", "device", dev(29))
    send(node, p, [p.ev("device", dev(i), "telemetry", "25.5", 0) for i in (0, 7, 9, 12)], 4,
         1)
    _, st = node.ctl("stats")
    snaps = st["cores"][0]["snapshots"]["taken"]
    if snaps != taken:
        raise cn.NodeError("a second snapshot was taken (%d): the fixture wants one" % snaps)
    tag("%d events in all to %d workflows; SIGKILL" % (p.sent, len(p.next_id)))
    node.stop(sig=signal.SIGKILL)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="build directory of the OLD tree")
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--name", default=None)
    ap.add_argument("--workdir", default="/var/tmp")
    args = ap.parse_args()
    if os.geteuid() != 0:
        tag("needs root")
        return 77
    build = os.path.realpath(args.build)
    with open(os.path.join(build, "meson-info", "meson-info.json")) as f:
        src = json.load(f)["directories"]["source"]
    commit = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    name = args.name or "data-%s" % commit[:7]
    work = tempfile.mkdtemp(prefix="sigflow-compat-gen-", dir=args.workdir)
    data = os.path.join(work, "node")
    os.mkdir(data, 0o700)
    node = None
    try:
        node = cn.Node(build, work, data, "gen")
        plan = generate(node, src)
        node = None

        tarball = os.path.join(args.out, name + ".tar.gz")

        def strip(ti):
            if os.path.basename(ti.name) in ("sigflowd.sock", "sigflowd.pid"):
                return None
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            return ti

        with open(tarball, "wb") as raw:
            # gzip without a name or time in its header; entries sorted by name
            import gzip
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9,
                               mtime=0) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for root, dirs, files in os.walk(data):
                        dirs.sort()
                        rel = os.path.relpath(root, data)
                        arc = "node" if rel == "." else os.path.join("node", rel)
                        tar.add(root, arcname=arc, recursive=False, filter=strip)
                        for fn in sorted(files):
                            tar.add(os.path.join(root, fn), arcname=os.path.join(arc, fn),
                                    filter=strip)
        tag("wrote %s (%d bytes)" % (tarball, os.path.getsize(tarball)))

        clock_ns = time.time_ns()
        node = cn.Node(build, work, data, "rec")
        node.start()
        answers = cn.record_answers(node)
        node.stop()
        node = None
        st = answers["stats (data fields)"]["answer"]
        if not st["recovery.snapshot_partitions"] or not st["recovery.records_applied"]:
            raise cn.NodeError("recovery did not use both a snapshot and the log: %s" % st)
        expected = {
            "about": "answers of the OLD sigflowd (%s) restarted once on %s.tar.gz; made by "
                     "tests/integration/compat/make_fixture.py, compared by test_compat.py" %
                     (commit, name),
            "commit": commit,
            "clock_ns": clock_ns,
            "events_sent": plan.sent,
            "last_event_id": {"%s %s" % k: v for k, v in sorted(plan.next_id.items())},
            "answers": answers,
        }
        path = os.path.join(args.out, name + ".json")
        with open(path, "w") as f:
            json.dump(expected, f, indent=1, sort_keys=True)
            f.write("\n")
        tag("wrote %s; recovery: %s" % (path, json.dumps(st)))
        return 0
    finally:
        if node is not None:
            node.stop(sig=signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except cn.NodeError as e:
        tag("FAILED: %s" % e)
        sys.exit(1)
