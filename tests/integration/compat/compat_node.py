"""compat_node — what make_fixture.py and test_compat.py share: the node's configuration,
starting and stopping ONE sigflowd of a build directory (by its pid, never by name),
sigflowctl and sigflow-send of the same build, and the answers both of them record/compare.

Standard library only.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

# The fixture's node. partitions, the owner core count (one lcore: rx + owner) and
# segment_bytes are part of the data directory; the rest keeps the answers steady:
# tombstones and log segments are kept for ever (no sweep, no history retention by time),
# and no snapshot is taken by time or size unless the generator asks for one (`tune`).
CONFIG = """; tests/integration/compat: the node of the compatibility fixture
[node]
ipv4 = 127.0.0.1
udp_port = {port}

[dataplane]
source = socket
partitions = 64
table_capacity = 4096
keystore_bytes = 1048576
mempool_size = 4095
ring_size = 1024
idle_pause_polls = 256
idle_sleep_max_us = 500
reply_rate = 1000000

[wal]
enabled = true
segment_bytes = 1048576

[runtime]
tombstone_retention_s = 0

[snapshot]
interval_s = 3600
log_bytes = 0

[history]
retention_s = 0
retention_bytes = 0
"""

FLOWS = ("device.flow", "order.flow")


def log(tag, msg):
    sys.stderr.write("[%s] %s\n" % (tag, msg))
    sys.stderr.flush()


class NodeError(Exception):
    pass


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def lcore_map():
    """One lcore (rx + owner), pinned to the last CPU this process may use."""
    return "0@%d" % max(os.sched_getaffinity(0))


class Node:
    """The one sigflowd this script started on DIR (only that one, by its pid)."""

    def __init__(self, build, workdir, data_dir, tag, env_extra=None, config_extra=""):
        """config_extra: INI text appended to CONFIG (a later key wins)."""
        self.build, self.workdir, self.dir, self.tag = build, workdir, data_dir, tag
        self.sigflowd = os.path.join(build, "dataplane", "sigflowd", "sigflowd")
        self.ctl_bin = os.path.join(build, "control", "sigflowctl")
        self.send_bin = os.path.join(build, "control", "send", "sigflow-send")
        for b in (self.sigflowd, self.ctl_bin, self.send_bin):
            if not os.access(b, os.X_OK):
                raise NodeError("%s is missing: build the tree first" % b)
        self.env_extra = env_extra or {}
        self.config_extra = config_extra
        self.proc = None
        self.logf = None
        self.port = free_udp_port()
        self.log_path = os.path.join(workdir, "sigflowd-%s.log" % tag)

    def start(self, timeout=60):
        conf = os.path.join(self.workdir, "sigflowd-%s.conf" % self.tag)
        with open(conf, "w") as f:
            f.write(CONFIG.format(port=self.port) + self.config_extra)
        self.prefix = "sfcompat%d%s" % (os.getpid(), self.tag)
        cmd = [self.sigflowd, "--no-huge", "-m", "512", "--no-shconf", "--file-prefix",
               self.prefix, "--lcores", lcore_map(), "--no-pci",
               "--log-level=user1,info", "--", "--config", conf, "--dir", self.dir]
        env = dict(os.environ)
        env.update(self.env_extra)
        self.logf = open(self.log_path, "a")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NodeError("sigflowd exited (status %s) during start-up:\n%s" %
                                (self.proc.returncode, self.log_tail()))
            try:
                if self.raw_ctl({"cmd": "ping"}, timeout=1.0).get("ok"):
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise NodeError("sigflowd not ready after %d s:\n%s" % (timeout, self.log_tail()))

    def log_tail(self, n=20):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def raw_ctl(self, req, timeout=10.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(os.path.join(self.dir, "sigflowd.sock"))
            s.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        return json.loads(buf)

    def ctl(self, *argv, ok_codes=(0,), timeout=30):
        """sigflowctl --json ARGV: (exit status, parsed answer or None)."""
        r = subprocess.run([self.ctl_bin, "--dir", self.dir, "--json"] + list(argv),
                           capture_output=True, text=True, timeout=timeout)
        try:
            ans = json.loads(r.stdout) if r.stdout.strip() else None
        except ValueError:
            ans = None
        if r.returncode not in ok_codes:
            raise NodeError("sigflowctl %s: exit %d: %s %s" %
                            (" ".join(argv), r.returncode, r.stdout.strip(), r.stderr.strip()))
        return r.returncode, ans

    def send_file(self, lines, batch, window, timeout=120):
        """Send 'TYPE ID SIGNAL EVENT_ID [VALUE...]' lines with ACKs; the summary dict."""
        path = os.path.join(self.workdir, "events-%s.txt" % self.tag)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        cmd = [self.send_bin, "--host", "127.0.0.1", "--port", str(self.port), "--file", path,
               "--batch", str(batch), "--window", str(window), "--ack", "--timeout-ms", "500",
               "--retries", "50", "--sender-id", "7", "--summary-json"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        summary = None
        for line in r.stdout.splitlines():
            if line.startswith("{"):
                summary = json.loads(line)
        if r.returncode != 0 or summary is None or summary.get("unacked"):
            raise NodeError("sigflow-send: exit %d %s %s" %
                            (r.returncode, r.stdout.strip()[-400:], r.stderr.strip()[-400:]))
        return summary

    def stop(self, sig=signal.SIGTERM, wait=30):
        """Stop our daemon by its pid (sig; SIGKILL after `wait` s). Its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.logf:
            self.logf.close()
            self.logf = None
        # EAL's runtime directory of our --file-prefix (only ours)
        shutil.rmtree(os.path.join("/var/run/dpdk", self.prefix), ignore_errors=True)
        return self.proc.returncode


# ---- the answers recorded by make_fixture.py (old daemon) and compared by test_compat.py

# Workflows whose describe and full history are recorded (chosen by make_fixture.py's plan:
# see there what happened to each).
DESCRIBE = [("device", "dev-000"), ("device", "dev-004"), ("device", "dev-007"),
            ("device", "dev-009"),
            ("device", "dev-012"), ("device", "dev-020"), ("device", "dev-029"),
            ("order", "ord-000"), ("order", "ord-003"), ("order", "ord-005"),
            ("order", "ord-011")]
HISTORY = [("device", "dev-004"), ("device", "dev-007"), ("device", "dev-012"),
           ("device", "dev-020"), ("order", "ord-003"), ("order", "ord-005")]

# From `stats --json` only what the recovered DATA determines (the rest are counters of the
# process, uptime and the like, which legitimately differ between two runs).
STATS_KEYS = [("node", "partitions"), ("node", "owner_lcores"), ("node", "epoch"),
              ("recovery", "snapshot_partitions"),
              ("recovery", "records_read"), ("recovery", "records_applied"),
              ("recovery", "from_epoch")]


def record_answers(node):
    """Every answer compared, as one JSON-able dict: {name: {"rc": exit, "answer": ...}}."""
    out = {}

    def put(name, *argv):
        rc, ans = node.ctl(*argv, ok_codes=(0, 65))
        out[name] = {"rc": rc, "answer": ans}

    put("definition list", "definition", "list")
    put("workflow list", "workflow", "list", "--limit", "1000")
    for t, i in DESCRIBE:
        put("workflow describe %s %s" % (t, i), "workflow", "describe", t, i)
    for t, i in HISTORY:
        put("workflow history %s %s" % (t, i), "workflow", "history", t, i, "--limit", "0")
    put("activity list", "activity", "list", "--limit", "1000")
    _, st = node.ctl("stats")
    out["stats (data fields)"] = {
        "rc": 0,
        "answer": {"%s.%s" % k: st.get(k[0], {}).get(k[1]) for k in STATS_KEYS}
    }
    return out


# Fields ignored in the comparison, and why (everything else must be equal):
#   activity list: tasks[].dispatched_ns   the wall time the restarted node dispatched the
#                                          task again (at least once after a restart)
#   workflow history: io                   bytes/reads this request took (the reader's own
#                                          work, not the workflow's state)
#   stats: all but STATS_KEYS              counters of the process (packets, polls, sleeps,
#                                          uptime, recovery durations, ...)
IGNORED = {"activity list": [("tasks", "*", "dispatched_ns")],
           "workflow history": [("io", )]}


def strip_ignored(name, answer):
    """A copy of answer without the fields IGNORED for this kind of answer."""
    answer = json.loads(json.dumps(answer))
    for prefix, paths in IGNORED.items():
        if not name.startswith(prefix) or not isinstance(answer, dict):
            continue
        for path in paths:
            _drop(answer, path)
    return answer


def _drop(obj, path):
    if not path:
        return
    head, rest = path[0], path[1:]
    if head == "*":
        for item in obj if isinstance(obj, list) else []:
            _drop(item, rest)
    elif isinstance(obj, dict) and head in obj:
        if rest:
            _drop(obj[head], rest)
        else:
            del obj[head]


def diff(a, b, path="", out=None, limit=20):
    """Differences between a and b as 'path: a != b' lines (at most limit)."""
    if out is None:
        out = []
    if len(out) >= limit:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append("%s.%s: missing in expected, got %s" % (path, k, json.dumps(b[k])))
            elif k not in b:
                out.append("%s.%s: expected %s, missing" % (path, k, json.dumps(a[k])))
            else:
                diff(a[k], b[k], "%s.%s" % (path, k), out, limit)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append("%s: expected %d items, got %d" % (path, len(a), len(b)))
        for n, (x, y) in enumerate(zip(a, b)):
            diff(x, y, "%s[%d]" % (path, n), out, limit)
    elif a != b or type(a) is not type(b):
        out.append("%s: expected %s, got %s" % (path, json.dumps(a), json.dumps(b)))
    return out[:limit]
