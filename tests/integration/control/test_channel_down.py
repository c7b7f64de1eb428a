#!/usr/bin/env python3
"""test_channel_down.py — sigflow-control away and back: sigflowd + sigflow-control + a
local receiver (control_env), activity `hook` of ctl.flow.

  1. down: sigflow-control stopped (SIGTERM, exit 0); 20 workflows schedule a run each: the
     runs stay pending on the node — `activity list` lists all 20 (attempt 1), stats
     tasks_queued counts them, tasks_dispatched does not grow, the receiver sees nothing;
  2. back: sigflow-control started again: every run executes exactly once (one request per
     idempotency key), each workflow's result (n + 1000) is applied once (dones 1), nothing
     left in `activity list`, tasks_queued 0;
  3. graceful stop with attempts in flight: 10 runs held by a slow receiver (0.8 s) when
     sigflow-control gets SIGTERM: it waits for them (grace_s), their outcomes are applied,
     and a new sigflow-control dispatches none of them again (still one request per key);
  4. kill -9 with attempts in flight: 10 runs held by the receiver when sigflow-control is
     SIGKILLed: a new one dispatches them again (same key, at least once) and each result is
     applied once.

Exit 0 pass, 1 fail, 77 skip (not root). Bounded by a 120 s alarm.
"""
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import control_env as ce  # noqa: E402
from control_env import check, wait_for  # noqa: E402

EXECUTORS = """[executor hooks]
kind = webhook
url = @HOOK_URL@
concurrency = 32
"""


def all_done(env, ids, expect):
    def done():
        for wf in ids:
            v = env.vars("ctl", wf)
            if not v or v["dones"] < 1:
                return False
        return True

    wait_for(done, 30, "every result applied", 0.2)
    for wf in ids:
        v = env.vars("ctl", wf)
        check(v == {"res": expect(wf), "dones": 1, "fails": 0}, "%s vars %s" % (wf, v))


def main():
    env = ce.Env("chandown")
    try:
        delay = {"s": 0.0}

        def behave(req):
            body = req["body"] or {}
            n = body.get("arguments", {}).get("n", 0)
            return 200, {"result": n + 1000}, delay["s"]

        env.receiver.behave = behave
        env.write_config(EXECUTORS, "* = hooks", grace_s=10)
        env.start_control()
        check(env.stop_control() == 0, "sigflow-control exit status on SIGTERM")
        check(not env.ctl("executor", "stats", ok_codes=(0, 69, 74))[1],
              "control.sock still answers after the stop")

        # ---- 1. down: the runs wait on the node
        st0 = env.stats()
        ids = ["cd-%02d" % i for i in range(20)]
        env.send_lines(["ctl %s do_hook 1 %d" % (wf, i) for i, wf in enumerate(ids)])
        time.sleep(1.0)  # a dispatch, if any, would have happened by now
        tasks = {t["id"]: t for t in env.activity_list()}
        check(sorted(tasks) == ids, "activity list while down: %s" % sorted(tasks))
        check(all(t["activity"] == "hook" and t["seq"] == 1 and t["attempt"] == 1
                  for t in tasks.values()), "tasks while down: %s" % list(tasks.values())[:2])
        st = env.stats()
        check(st["tasks_dispatched"] == st0["tasks_dispatched"],
              "tasks_dispatched grew while no control process was there: %d -> %d" %
              (st0["tasks_dispatched"], st["tasks_dispatched"]))
        check(st.get("tasks_queued") == 20, "stats tasks_queued %s, expected 20" %
              st.get("tasks_queued"))
        check(env.receiver.count() == 0, "the receiver got %d requests" % env.receiver.count())
        ce.say("chandown", "down: 20 runs pending (activity list, tasks_queued 20), none sent")

        # ---- 2. back: each run exactly once
        env.start_control()
        all_done(env, ids, lambda wf: int(wf[3:]) + 1000)
        keys = env.receiver.keys()
        check(len(keys) == 20 and set(keys.values()) == {1},
              "requests per key after the restart: %s" % sorted(keys.values()))
        check(sorted(r["body"]["id"] for r in env.receiver.requests) == ids,
              "requests for %s" % sorted(r["body"]["id"] for r in env.receiver.requests))
        st = env.stats()
        check(env.activity_list() == [] and st["tasks_queued"] == 0,
              "left: %s queued %d" % (env.activity_list(), st["tasks_queued"]))
        check(st["tasks_dispatched"] - st0["tasks_dispatched"] == 20 and st["tasks_done"] == 20,
              "stats dispatched %d done %d" % (st["tasks_dispatched"], st["tasks_done"]))
        ce.say("chandown", "back: 20 runs executed once each, results applied once")

        # ---- 3. SIGTERM with attempts in flight: they finish, their outcomes are applied
        delay["s"] = 0.8
        gs = ["gs-%02d" % i for i in range(10)]
        env.send_lines(["ctl %s do_hook 1 %d" % (wf, 100 + i) for i, wf in enumerate(gs)])
        wait_for(lambda: all(env.receiver.of(wf) for wf in gs), 10, "10 requests in flight")
        t0 = time.monotonic()
        check(env.stop_control() == 0, "sigflow-control exit status on SIGTERM")
        took = time.monotonic() - t0
        check(took < 5, "the graceful stop took %.1f s" % took)
        all_done(env, gs, lambda wf: int(wf[3:]) + 1100)
        delay["s"] = 0.0
        env.start_control()
        time.sleep(1.5)  # a re-dispatch would come at once on connect
        for wf in gs:
            n = len(env.receiver.of(wf))
            check(n == 1, "%s: %d requests (its outcome was delivered at the stop)" % (wf, n))
        check(env.activity_list() == [], "left after the graceful stop: %s" %
              env.activity_list())
        ce.say("chandown", "SIGTERM with 10 in flight: finished in %.1f s, applied, not "
               "dispatched again" % took)

        # ---- 4. kill -9 with attempts in flight: dispatched again, applied once
        delay["s"] = 0.8
        kl = ["kl-%02d" % i for i in range(10)]
        env.send_lines(["ctl %s do_hook 1 %d" % (wf, 200 + i) for i, wf in enumerate(kl)])
        wait_for(lambda: all(env.receiver.of(wf) for wf in kl), 10, "10 requests in flight")
        env.stop_control(signal.SIGKILL)
        killed = time.monotonic()
        # runs whose request was younger than the receiver's delay had no outcome yet
        open_runs = [wf for wf in kl if killed - env.receiver.of(wf)[0]["t"] < 0.7]
        delay["s"] = 0.0
        env.start_control()
        all_done(env, kl, lambda wf: int(wf[3:]) + 1200)
        for wf in kl:
            reqs = env.receiver.of(wf)
            check(len(reqs) >= 1 and len({r["body"]["idempotency_key"] for r in reqs}) == 1,
                  "%s: requests %s" % (wf, [r["body"] for r in reqs]))
        again = [wf for wf in kl if len(env.receiver.of(wf)) > 1]
        check(set(open_runs) <= set(again), "runs in flight at the kill not dispatched again: "
              "%s" % sorted(set(open_runs) - set(again)))
        ce.say("chandown", "kill -9 with 10 in flight: %d dispatched again (same key), each "
               "applied once" % len(again))
        check(env.stats()["drops"]["activity_result_invalid"] == 0, "results dropped")
        check(env.stop_control() == 0, "sigflow-control exit status")
        env.ok = True
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(ce.run_bounded(main, 120))
