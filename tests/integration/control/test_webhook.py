#!/usr/bin/env python3
"""test_webhook.py — the webhook executor end to end: sigflowd + sigflow-control + a local
receiver (control_env). Five workflows of ctl.flow, started together, each a scenario:

  w-retry     500, then 200 {"result": 7}: the request carries exactly the documented body
              and headers; attempt 2 is visible in `workflow describe` (attempts 1 logged) and
              `activity list` (attempt 2) while it runs; history: attempt_failed, then
              activity_done with result 7, applied once (res 7, dones 1)
  w-400       400: failed at once, no retry (1 request; history: the one attempt's reason, then
              activity_failed)
  w-slow      the receiver sleeps past `timeout 1s`: start-to-close timeout, retried, done
  w-forever   `retry forever`: five 503s, then 200 {"result": 11} on attempt 6
  w-deadline  `schedule_to_close 2s`, the receiver always 503: the owner fails the run by
              its deadline (stats tasks_expired >= 1, the failed handler ran once), and no
              attempt starts after it (no attempt_failed logged after the failure, the
              receiver sees no more requests)

Exit 0 pass, 1 fail, 77 skip (not root). Bounded by a 120 s alarm.
"""
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import control_env as ce  # noqa: E402
from control_env import check, entries_of, wait_for  # noqa: E402

EXECUTORS = """[executor hooks]
kind = webhook
url = @HOOK_URL@
header = X-Sigflow-Test: yes
concurrency = 16
"""
BODY_KEYS = {"type", "id", "activity", "arguments", "attempt", "idempotency_key", "seq"}


def behaviour(release):
    def behave(req):
        body, k = req["body"] or {}, req["key_count"]
        wf = body.get("id")
        if wf == "w-retry":
            if k == 1:
                return 500, {"error": "boom"}, 0
            release.wait(1.5)  # the test looks at describe while attempt 2 runs
            return 200, {"result": 7}, 0
        if wf == "w-400":
            return 400, {"error": "no such customer"}, 0
        if wf == "w-slow":
            return (200, {"result": 1}, 1.5) if k == 1 else (200, {"result": 9}, 0)
        if wf == "w-forever":
            return (503, {}, 0) if k <= 5 else (200, {"result": 11}, 0)
        if wf == "w-deadline":
            return 503, {"error": "down"}, 0
        return 404, {}, 0

    return behave


def check_request(req, wf, activity, args, attempt, seq=1):
    body, h = req["body"], req["headers"]
    check(body is not None, "%s: the body is not JSON: %r" % (wf, req["raw"][:200]))
    check(set(body) == BODY_KEYS, "%s: body keys %s" % (wf, sorted(body)))
    check(body["type"] == "ctl" and body["id"] == wf and body["activity"] == activity,
          "%s: body names %s/%s %s" % (wf, body["type"], body["id"], body["activity"]))
    check(body["arguments"] == args, "%s: arguments %r, expected %r" %
          (wf, body["arguments"], args))
    check(body["attempt"] == attempt and body["seq"] == seq,
          "%s: attempt %r seq %r, expected %d %d" % (wf, body["attempt"], body["seq"], attempt,
                                                    seq))
    key = body["idempotency_key"]
    check(re.fullmatch(r"[0-9a-f]{32}-%d" % seq, key), "%s: idempotency key %r" % (wf, key))
    check(h.get("idempotency-key") == key, "%s: Idempotency-Key header %r, body %r" %
          (wf, h.get("idempotency-key"), key))
    check(h.get("content-type") == "application/json", "%s: Content-Type %r" %
          (wf, h.get("content-type")))
    check(h.get("x-sigflow-test") == "yes", "%s: the configured header is missing" % wf)
    check(req["path"] == "/hooks/ctl/%s/%s" % (activity, wf), "%s: path %s" % (wf, req["path"]))
    return key


def kinds(history):
    return [e["kind"] for e in history]


def main():
    env = ce.Env("webhook")
    try:
        release = threading.Event()
        env.receiver.behave = behaviour(release)
        env.write_config(EXECUTORS, "* = hooks")
        env.start_control()
        rc, ex = env.ctl("executor", "list")
        check([(x["name"], x["kind"], x["concurrency"]) for x in ex["executors"]] ==
              [("hooks", "webhook", 16)], "executor list: %s" % ex)
        t0 = time.monotonic()
        env.send("ctl", "w-deadline", "do_deadline", 1, 5)
        env.send("ctl", "w-retry", "do_hook", 1, 41)
        env.send("ctl", "w-400", "do_hook", 1, 42)
        env.send("ctl", "w-slow", "do_slow", 1, 43)
        env.send("ctl", "w-forever", "do_forever", 1, 44)

        # ---- w-retry: attempt 2 in flight, held until describe showed it
        wait_for(lambda: len(env.receiver.of("w-retry")) >= 2, 10, "w-retry's second request")

        def attempts_logged():
            acts = env.describe("ctl", "w-retry")["activities"]
            return acts if acts and acts[0].get("attempts") == 1 else None

        acts = wait_for(attempts_logged, 5, "describe w-retry: attempts 1")
        check(len(acts) == 1 and acts[0]["activity"] == "hook" and acts[0]["seq"] == 1,
              "describe w-retry activities: %s" % acts)
        tasks = [t for t in env.activity_list() if t["id"] == "w-retry"]
        check(len(tasks) == 1 and tasks[0]["attempt"] == 2 and tasks[0]["args"] == ["w-retry", 41],
              "activity list w-retry: %s" % tasks)
        release.set()
        env.wait_vars("ctl", "w-retry", lambda v: v["dones"] >= 1, 10, "the result applied")
        reqs = env.receiver.of("w-retry")
        check(len(reqs) == 2, "w-retry: %d requests, expected 2" % len(reqs))
        key = check_request(reqs[0], "w-retry", "hook", {"customer": "w-retry", "n": 41}, 1)
        check(check_request(reqs[1], "w-retry", "hook", {"customer": "w-retry", "n": 41}, 2) ==
              key, "w-retry: the key changed between attempts")
        check(tasks[0]["idempotency_key"] == key, "activity list key %s != request key %s" %
              (tasks[0]["idempotency_key"], key))
        d = env.describe("ctl", "w-retry")
        check(env.vars("ctl", "w-retry") == {"res": 7, "dones": 1, "fails": 0} and
              d["activities"] == [], "w-retry after: %s %s" % (d["vars"], d["activities"]))
        h = env.history("ctl", "w-retry")
        check(kinds(h) == ["signal", "effects", "attempt_failed", "activity_done"],
              "w-retry history: %s" % kinds(h))
        check(h[2]["activity"] == "hook" and h[2]["seq"] == 1 and h[2]["attempt"] == 1 and
              h[2]["reason"].startswith("HTTP 500"), "w-retry attempt_failed: %s" % h[2])
        check(h[3]["seq"] == 1 and h[3]["result"] == 7, "w-retry activity_done: %s" % h[3])
        ce.say("webhook", "w-retry: 500 then 200 {result: 7}: attempt 2 seen, applied once")

        # ---- w-400: failed for good at once
        env.wait_vars("ctl", "w-400", lambda v: v["fails"] >= 1, 10, "the failure applied")
        time.sleep(0.6)  # three backoffs' worth: a retry would have come
        reqs = env.receiver.of("w-400")
        check(len(reqs) == 1, "w-400: %d requests, expected 1 (no retry)" % len(reqs))
        check_request(reqs[0], "w-400", "hook", {"customer": "w-400", "n": 42}, 1)
        h = env.history("ctl", "w-400")
        check(kinds(h) == ["signal", "effects", "attempt_failed", "activity_failed"],
              "w-400 history: %s" % kinds(h))
        check(h[2]["attempt"] == 1 and h[2]["reason"].startswith("HTTP 400"),
              "w-400 attempt_failed (the reason of the failure): %s" % h[2])
        check(env.vars("ctl", "w-400") == {"res": -1, "dones": 0, "fails": 1},
              "w-400 vars: %s" % env.vars("ctl", "w-400"))
        ce.say("webhook", "w-400: failed without retry")

        # ---- w-slow: start-to-close timeout, then done
        env.wait_vars("ctl", "w-slow", lambda v: v["dones"] >= 1, 15, "the result applied")
        reqs = env.receiver.of("w-slow")
        check(len(reqs) == 2, "w-slow: %d requests, expected 2" % len(reqs))
        check_request(reqs[1], "w-slow", "slow", {"customer": "w-slow", "n": 43}, 2)
        gap = reqs[1]["t"] - reqs[0]["t"]
        check(1.0 <= gap < 3.0, "w-slow: attempt 2 came %.2f s after attempt 1" % gap)
        h = env.history("ctl", "w-slow")
        check(kinds(h) == ["signal", "effects", "attempt_failed", "activity_done"],
              "w-slow history: %s" % kinds(h))
        check(h[2]["attempt"] == 1 and "start-to-close timeout (1000 ms)" in h[2]["reason"],
              "w-slow attempt_failed: %s" % h[2])
        check(h[3]["result"] == 9 and env.vars("ctl", "w-slow") == {"res": 9, "dones": 1,
                                                                     "fails": 0},
              "w-slow: %s vars %s" % (h[3], env.vars("ctl", "w-slow")))
        ce.say("webhook", "w-slow: timed out after %.2f s, retried, result 9" % gap)

        # ---- w-forever: more attempts than the default 3
        env.wait_vars("ctl", "w-forever", lambda v: v["dones"] >= 1, 15, "the result applied")
        reqs = env.receiver.of("w-forever")
        check([r["body"]["attempt"] for r in reqs] == [1, 2, 3, 4, 5, 6],
              "w-forever attempts %s" % [r["body"]["attempt"] for r in reqs])
        h = env.history("ctl", "w-forever")
        check([e["attempt"] for e in entries_of(h, "attempt_failed")] == [1, 2, 3, 4, 5] and
              kinds(h)[-1] == "activity_done" and h[-1]["result"] == 11,
              "w-forever history: %s" % kinds(h))
        check(env.vars("ctl", "w-forever") == {"res": 11, "dones": 1, "fails": 0},
              "w-forever vars %s" % env.vars("ctl", "w-forever"))
        ce.say("webhook", "w-forever: five 503s, done on attempt 6")

        # ---- w-deadline: failed by the owner at schedule_to_close, and nothing after it
        env.wait_vars("ctl", "w-deadline", lambda v: v["fails"] >= 1, 15, "the deadline")
        h = env.history("ctl", "w-deadline")
        fail = entries_of(h, "activity_failed", seq=1)
        check(len(fail) == 1, "w-deadline history: %s" % kinds(h))
        sent_ns = h[0]["received_ns"]
        took = (int(time_ns_of(fail[0])) - sent_ns) / 1e9
        check(2.0 <= took < 3.6, "w-deadline failed %.2f s after its signal (deadline 2 s)" % took)
        st = env.stats()
        check(st["tasks_expired"] >= 1, "stats tasks_expired %s" % st["tasks_expired"])
        n_at_fail = len(env.receiver.of("w-deadline"))
        check(n_at_fail >= 3, "w-deadline: only %d attempts before its deadline" % n_at_fail)
        time.sleep(1.5)  # an attempt in flight at the deadline ends within timeout 1s
        n1 = len(env.receiver.of("w-deadline"))
        time.sleep(1.0)
        n2 = len(env.receiver.of("w-deadline"))
        check(n2 == n1, "w-deadline: %d more requests after the run had failed by its deadline"
              % (n2 - n1))
        h = env.history("ctl", "w-deadline")
        after = [e for e in h if e["lsn"] > fail[0]["lsn"]]
        check(after == [], "w-deadline: logged after the failure: %s" % kinds(after))
        check(env.vars("ctl", "w-deadline") == {"res": -1, "dones": 0, "fails": 1},
              "w-deadline vars %s" % env.vars("ctl", "w-deadline"))
        ce.say("webhook", "w-deadline: failed %.2f s after its signal (%d attempts), "
               "tasks_expired %d, nothing after it" % (took, n1, st["tasks_expired"]))

        cs = env.control_stats()
        check(cs["invalid_tasks"] == 0 and cs["done"] >= 3, "executor stats %s" % cs)
        check(env.stats()["drops"]["activity_result_invalid"] == 0, "results dropped")
        check(env.stop_control() == 0, "sigflow-control exit status")
        ce.say("webhook", "all scenarios passed in %.1f s" % (time.monotonic() - t0))
        env.ok = True
    finally:
        env.close()


def time_ns_of(entry):
    """An entry's "time" (ISO, UTC, microseconds) as ns since the epoch."""
    import calendar
    t = entry["time"]
    secs = calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S"))
    frac = t[20:-1] if len(t) > 20 else "0"
    return secs * 10**9 + int((frac + "000000000")[:9])


if __name__ == "__main__":
    sys.exit(ce.run_bounded(main, 120))
