#!/usr/bin/env python3
"""Live view of a sigflow node for `./sigflow demo`: once a second, what the node does —
event and packet rates, workflows, drops by reason, per-core work — from the control
socket (`stats` and, when the runtime reports them, workflows by type and state), and the
activities sigflow-control executed, retried and failed (its DIR/control.sock, when it runs).

usage: demo_view.py SOCKET DURATION_S   (DURATION_S 0 = until interrupted)"""
import os
import json
import socket
import sys
import time


def ask(path, req):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall((json.dumps(req) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def states(path):
    """Running workflows by type and state, e.g. "device online=4812 reprovisioning=188"."""
    try:
        defs = ask(path, {"cmd": "definitions"})
    except (OSError, ValueError):
        return ""
    by_type = {}
    for d in defs.get("definitions", []):
        if d["running"] == 0 and d["completed"] == 0:
            continue
        t = by_type.setdefault(d["type"], {})
        for name, n in d["states"].items():
            t[name] = t.get(name, 0) + n
        if d["completed"]:
            t["completed"] = t.get("completed", 0) + d["completed"]
    return "  |  ".join("%s %s" % (t, " ".join("%s=%d" % kv for kv in s.items() if kv[1]))
                        for t, s in sorted(by_type.items()))


def line(prev, cur, dt):
    t, p = cur["total"], prev["total"]
    rate = lambda k: (t.get(k, 0) - p.get(k, 0)) / dt
    drops = {k: v - p["drops"].get(k, 0) for k, v in t["drops"].items() if v - p["drops"].get(k, 0)}
    cores = " ".join("lcore%d:%d%%busy" % (c["lcore"], 100 * (c["busy_polls"] - q["busy_polls"]) //
                                           max(1, c["polls"] - q["polls"]))
                     for c, q in zip(cur["cores"], prev["cores"]))
    acks = t.get("acks_sent", 0) - p.get("acks_sent", 0)
    cores += "  acks/s %.0f" % (acks / dt)
    return ("%8.0f events/s %8.0f pkts/s  workflows %-8d applied %-10d drops/s %s  %s"
            % (rate("events_applied"), rate("rx_packets"), t["workflows"], t["events_applied"],
               json.dumps(drops) if drops else "0", cores))


def activities(path, prev, cur, dt):
    """Tasks the owners dispatched and the outcomes they logged (per second), what
    sigflow-control has in flight, and its newest dead letter."""
    t, p = cur["total"], prev["total"]
    rate = lambda k: (t.get(k, 0) - p.get(k, 0)) / dt
    out = ("dispatched %.0f/s  done %.0f/s  attempts retried %.0f/s  failed %.0f/s  "
           "(total: done %d, retried %d, failed %d, expired %d)"
           % (rate("tasks_dispatched"), rate("tasks_done"), rate("task_attempts_failed"),
              rate("tasks_failed"), t.get("tasks_done", 0), t.get("task_attempts_failed", 0),
              t.get("tasks_failed", 0), t.get("tasks_expired", 0)))
    ctl = os.path.join(os.path.dirname(path), "control.sock")
    try:
        ex = ask(ctl, {"cmd": "executors"}).get("executors", [])
        dead = ask(ctl, {"cmd": "failed"}).get("failed", [])
    except (OSError, ValueError):
        return out + "  [sigflow-control not running]"
    out += "  in flight: " + " ".join("%s=%d" % (x["name"], x["inflight"]) for x in ex)
    if dead:
        d = dead[-1]
        out += "\n         last failed: %s %s %s seq %d after %d attempts: %s" % (
            d["type"], d["id"], d["activity"], d["seq"], d["attempts"], d["reason"][:80])
    return out


def main():
    path, duration = sys.argv[1], float(sys.argv[2])
    start = time.time()
    prev = ask(path, {"cmd": "stats"})
    last = time.time()
    try:
        while duration == 0 or time.time() - start < duration:
            time.sleep(1)
            cur = ask(path, {"cmd": "stats"})
            now = time.time()
            print(time.strftime("%H:%M:%S"), line(prev, cur, now - last), flush=True)
            print("         workflows by state: " + states(path), flush=True)
            print("         activities: " + activities(path, prev, cur, now - last), flush=True)
            prev, last = cur, now
    except KeyboardInterrupt:
        pass
    t = prev["total"]
    print("workflows by state: " + states(path))
    print("\nsummary: %d events applied to %d workflows in %.0f s (%.0f events/s), "
          "%d packets received, %d dropped %s"
          % (t["events_applied"], t["workflows"], time.time() - start,
             t["events_applied"] / max(1e-9, time.time() - start), t["rx_packets"],
             t["drops_total"], json.dumps({k: v for k, v in t["drops"].items() if v})))


if __name__ == "__main__":
    main()
