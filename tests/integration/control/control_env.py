"""control_env — what the tests of tests/integration/control share: a real sigflowd
(compat_node.Node: ONE daemon, kernel-socket source on 127.0.0.1, started and stopped by its
pid), the definitions of this directory deployed on it, a local webhook receiver (a
http.server in a thread, programmable per request, recording every request), a mosquitto
broker on a free port with sigflow-device-sim, and sigflow-control itself — each started by
the test and stopped by its pid, nothing else touched. Checks go through `sigflowctl
--json` (workflow describe|history, stats, activity list|failed, executor list|stats).

Standard library only. Every wait is bounded; Env.close() stops what was started.
"""
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "compat"))
import compat_node as cn  # noqa: E402

FLOWS = ("ctl.flow", "dev.flow")
# On top of compat_node.CONFIG: room for the crash loops' workflows and their runs in
# flight (the default 16 runs per partition x 64 partitions would answer "busy").
NODE_EXTRA = """
; tests/integration/control
[dataplane]
table_capacity = 65536
keystore_bytes = 8388608
[runtime]
tasks_per_partition = 512
"""
PROG = os.path.join(HERE, "prog.py")  # the exec executor's program


class Fail(Exception):
    pass


class Timeout(Exception):
    pass


def say(tag, msg):
    cn.log(tag, msg)


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def wait_for(pred, timeout, what, step=0.05):
    """Poll pred() until it returns a true value (returned) or timeout s pass (Fail)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Fail("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(step)


def free_tcp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def run_bounded(main, seconds):
    """Run main() under a SIGALRM of `seconds`: exit 0 pass, 1 fail, 77 skip (not root)."""
    if os.geteuid() != 0:
        sys.stderr.write("needs root (DPDK EAL): skipped\n")
        return 77

    def on_alarm(_sig, _frame):
        raise Timeout("hard timeout (%d s)" % seconds)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        main()
    except (Fail, Timeout, cn.NodeError) as e:
        sys.stderr.write("FAIL: %s\n" % e)
        return 1
    finally:
        signal.alarm(0)
    sys.stderr.write("PASS\n")
    return 0


# ---- the webhook receiver -------------------------------------------------------------


class Receiver:
    """A local HTTP server in a thread. Every POST is recorded ({"n", "path", "headers",
    "body" (parsed JSON or None), "raw", "t"}) and answered by behave(req) -> (status,
    answer object or None, delay_s): the default answers 200 {}. Each record also has
    "key_count": how many requests had its Idempotency-Key so far (this one included)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.per_key = {}
        self.behave = lambda req: (200, {}, 0)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: curl reuses its connections

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                key = self.headers.get("Idempotency-Key")
                with outer.lock:
                    outer.per_key[key] = outer.per_key.get(key, 0) + 1
                    req = {"n": len(outer.requests), "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()},
                           "body": body, "raw": raw, "t": time.monotonic(),
                           "key_count": outer.per_key[key]}
                    outer.requests.append(req)
                    behave = outer.behave
                try:
                    status, answer, delay = behave(req)
                except Exception as e:  # a test's bug: answer 500 and say why
                    sys.stderr.write("receiver behaviour raised %r\n" % e)
                    status, answer, delay = 500, {"error": str(e)}, 0
                if delay:
                    time.sleep(delay)
                out = json.dumps(answer if answer is not None else {}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the client gave up (a start-to-close timeout)

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 1024  # listen backlog: 5 drops SYNs of a burst (1 s retry)

            def handle_error(self, request, client_address):
                pass  # a client killed mid-request (kill -9 of sigflow-control)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def of(self, wf_id):
        """The requests whose body names workflow id wf_id, in arrival order."""
        with self.lock:
            return [r for r in self.requests if r["body"] and r["body"].get("id") == wf_id]

    def keys(self):
        with self.lock:
            return dict(self.per_key)

    def count(self):
        with self.lock:
            return len(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- the broker -----------------------------------------------------------------------


class Broker:
    """mosquitto on 127.0.0.1:PORT (no persistence, anonymous), our child, by its pid."""

    def __init__(self, workdir):
        self.port = free_tcp_port()
        self.conf = os.path.join(workdir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\n" % self.port)
        self.logf = open(os.path.join(workdir, "mosquitto.log"), "w")
        self.proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise Fail("mosquitto exited with %s" % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        wait_for(up, 10, "mosquitto on port %d" % self.port)

    def close(self):
        stop_proc(self.proc)
        self.logf.close()


def stop_proc(proc, sig=signal.SIGTERM, wait=10):
    """Stop one child of ours by its pid; SIGKILL after `wait` s. Its exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


# ---- the environment ------------------------------------------------------------------


class Env:
    """A node with this directory's definitions (compat_node.CONFIG + node_extra), a
    receiver, optionally a broker, and
    sigflow-control with `executors` (INI text of [executor ...] sections; @HOOK_URL@,
    @MQTT_PORT@, @PROG@ and @WORK@ are filled in) and `routes` ([route] lines)."""

    def __init__(self, tag, mqtt=False, node_extra=NODE_EXTRA, workdir="/var/tmp"):
        self.tag = tag
        self.build = os.environ.get("SIGFLOW_BUILD") or os.path.join(
            os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "build")
        self.work = tempfile.mkdtemp(prefix="sigflow-ctl-%s-" % tag, dir=workdir)
        self.data = os.path.join(self.work, "data")
        os.makedirs(self.data)
        # SIGFLOW_CONTROL_BIN: another sigflow-control (e.g. of an ASan build) on this node
        self.control_bin = os.environ.get("SIGFLOW_CONTROL_BIN") or os.path.join(
            self.build, "control", "sigflow-control")
        self.devsim_bin = os.path.join(self.build, "control", "sigflow-device-sim")
        self.node = cn.Node(self.build, self.work, self.data, tag, config_extra=node_extra)
        self.receiver = None
        self.broker = None
        self.control = None
        self.control_log = os.path.join(self.work, "control.log")
        self.children = []  # other processes of ours (device sim, mosquitto_sub)
        self.ok = False
        try:
            self.node.start()
            for f in FLOWS:
                self.ctl("definition", "deploy", os.path.join(HERE, f))
            self.receiver = Receiver()
            if mqtt:
                self.broker = Broker(self.work)
        except BaseException:
            self.close()
            raise
        say(tag, "node pid %d on udp %d, receiver on %d%s, dir %s" %
            (self.node.proc.pid, self.node.port, self.receiver.port,
             ", broker on %d" % self.broker.port if self.broker else "", self.work))

    # -- sigflow-control

    def write_config(self, executors, routes, grace_s=10):
        hook_url = "http://127.0.0.1:%d/hooks/{type}/{activity}/{id}" % self.receiver.port
        # the HTTP surface on a free port of ours (the default 7780 may be taken)
        self.http_port = free_tcp_port()
        text = "[control]\ndir = %s\ngrace_s = %d\nhttp = 127.0.0.1:%d\n\n" % (
            self.data, grace_s, self.http_port)
        for k, v in (("@HOOK_URL@", hook_url), ("@WORK@", self.work), ("@PROG@", PROG),
                     ("@MQTT_PORT@", str(self.broker.port if self.broker else 0))):
            executors = executors.replace(k, v)
        text += executors
        text += "\n[route]\n" + routes + "\n"
        self.config = os.path.join(self.work, "control.conf")
        with open(self.config, "w") as f:
            f.write(text)

    def start_control(self, wait_connected=True):
        check(self.control is None or self.control.poll() is not None,
              "sigflow-control is running already")
        logf = open(self.control_log, "a")
        self.control = subprocess.Popen([self.control_bin, "--config", self.config],
                                        stdin=subprocess.DEVNULL, stdout=logf,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        if wait_connected:
            def connected():
                if self.control.poll() is not None:
                    raise Fail("sigflow-control exited with %s:\n%s" %
                               (self.control.returncode, self.control_tail()))
                rc, ans = self.ctl("executor", "stats", ok_codes=(0, 65, 69, 74))
                return rc == 0 and ans and ans.get("connected")

            wait_for(connected, 15, "sigflow-control to connect")

    def stop_control(self, sig=signal.SIGTERM, wait=30):
        status = stop_proc(self.control, sig, wait)
        return status

    def control_tail(self, n=15):
        try:
            with open(self.control_log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    # -- the node

    def ctl(self, *argv, ok_codes=(0,), timeout=30):
        return self.node.ctl(*argv, ok_codes=ok_codes, timeout=timeout)

    def send(self, wf_type, wf_id, sig, event_id, *values):
        """One event with an ACK (sigflow-send -f VALUE...: values reach the node as given,
        spaces and newlines included); its ACK status."""
        cmd = [self.node.send_bin, "--host", "127.0.0.1", "--port", str(self.node.port),
               "-t", wf_type, "-i", wf_id, "-s", sig, "-e", str(event_id), "--ack",
               "--timeout-ms", "500", "--retries", "20", "--summary-json"]
        for v in values:
            cmd += ["-f", str(v)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        summary = None
        for line in r.stdout.splitlines():
            if line.startswith("{"):
                summary = json.loads(line)
        if r.returncode != 0 or not summary or summary.get("acked") != 1:
            raise Fail("sigflow-send %s %s %s: exit %d %s %s" %
                       (wf_type, wf_id, sig, r.returncode, r.stdout[-300:], r.stderr[-300:]))
        st = [k for k, v in summary["statuses"].items() if v]
        check(st == ["applied"], "event %s/%s %s answered %s" % (wf_type, wf_id, sig, st))

    def send_lines(self, lines, batch=16, window=8):
        return self.node.send_file(lines, batch=batch, window=window)

    def describe(self, wf_type, wf_id):
        _, d = self.ctl("workflow", "describe", wf_type, wf_id)
        return d

    def vars(self, wf_type, wf_id):
        """The workflow's res, dones and fails (None when it does not exist)."""
        rc, d = self.ctl("workflow", "describe", wf_type, wf_id, ok_codes=(0, 65))
        if rc != 0 or not d:
            return None
        return {k: v for k, v in d["vars"].items() if k in ("res", "dones", "fails")}

    def history(self, wf_type, wf_id):
        """Every retained entry, oldest first."""
        _, h = self.ctl("workflow", "history", wf_type, wf_id, "--limit", "0")
        return list(reversed(h["entries"]))

    def stats(self):
        _, st = self.ctl("stats")
        return st["total"]

    def control_stats(self):
        _, st = self.ctl("executor", "stats")
        return st

    def failed(self):
        _, ans = self.ctl("activity", "failed")
        return ans["failed"]

    def activity_list(self):
        _, ans = self.ctl("activity", "list", "--limit", "1000")
        return ans["tasks"]

    def wait_vars(self, wf_type, wf_id, pred, timeout, what):
        return wait_for(lambda: (lambda v: v if v is not None and pred(v) else None)(
            self.vars(wf_type, wf_id)), timeout, "%s/%s: %s" % (wf_type, wf_id, what), 0.1)

    # -- the broker's side

    def spawn(self, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                             text=True, start_new_session=True)
        self.children.append(p)
        return p

    def start_device_sim(self, *extra):
        """sigflow-device-sim on our broker; returns once it is subscribed."""
        p = self.spawn([self.devsim_bin, "--host", "127.0.0.1", "--port",
                        str(self.broker.port)] + list(extra))
        line = _read_line(p.stderr, 10)
        check("subscribed to" in line, "sigflow-device-sim did not subscribe: %r" % line)
        return p

    # -- teardown

    def close(self):
        for p in self.children:
            stop_proc(p, wait=5)
        if self.control is not None:
            stop_proc(self.control, wait=30)
        status = self.node.stop() if self.node.proc is not None else None
        if self.broker:
            self.broker.close()
        if self.receiver:
            self.receiver.close()
        if self.ok and not os.environ.get("SIGFLOW_KEEP"):
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            say(self.tag, "kept %s (logs: sigflowd-%s.log, control.log)" % (self.work, self.tag))
        return status


def _read_line(stream, timeout):
    """One line from a child's pipe within timeout s ('' at EOF or timeout)."""
    out = []

    def reader():
        out.append(stream.readline())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else ""


def entries_of(history, kind, **match):
    """The history entries of `kind` whose fields equal match."""
    return [e for e in history if e.get("kind") == kind and
            all(e.get(k) == v for k, v in match.items())]
