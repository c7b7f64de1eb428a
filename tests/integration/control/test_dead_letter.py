#!/usr/bin/env python3
"""test_dead_letter.py — runs that failed for good, and re-driving them: sigflowd +
sigflow-control + a local receiver (control_env), activity `hook` of ctl.flow (retry 3).

  dl-1  the receiver answers 503 three times: the run is exhausted; `sigflowctl activity
        failed` lists it (type, id, activity, seq, attempts 3, executor, reason "attempts
        exhausted (3): HTTP 503...", state failed, its idempotency key) and so does
        DIR/dead-letter.jsonl; the receiver is fixed (200), `activity retry ctl dl-1 1` runs
        it again (attempt 4, same key) and the entry becomes retry_done; the workflow is not
        touched (its failed path ran once, no result applied)
  dl-2  400: failed at once (attempts 1); the retry gets 400 again: retry_failed
  a retry of a run that is not in the list is refused (exit 65, the reason)

Exit 0 pass, 1 fail, 77 skip (not root). Bounded by a 90 s alarm.
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import control_env as ce  # noqa: E402
from control_env import check, wait_for  # noqa: E402

EXECUTORS = """[executor hooks]
kind = webhook
url = @HOOK_URL@
concurrency = 8
"""


def main():
    env = ce.Env("deadletter")
    try:
        fixed = {"dl-1": False}

        def behave(req):
            wf = (req["body"] or {}).get("id")
            if wf == "dl-1":
                return (200, {"result": 5}, 0) if fixed["dl-1"] else (503, {"error": "down"}, 0)
            if wf == "dl-2":
                return 400, {"error": "bad customer"}, 0
            return 404, {}, 0

        env.receiver.behave = behave
        env.write_config(EXECUTORS, "* = hooks")
        env.start_control()
        env.send("ctl", "dl-1", "do_hook", 1, 1)
        env.send("ctl", "dl-2", "do_hook", 1, 2)
        for wf in ("dl-1", "dl-2"):
            env.wait_vars("ctl", wf, lambda v: v["fails"] >= 1, 15, "the failure applied")

        dead = {e["id"]: e for e in env.failed()}
        check(sorted(dead) == ["dl-1", "dl-2"], "activity failed lists %s" % sorted(dead))
        reqs = env.receiver.of("dl-1")
        check([r["body"]["attempt"] for r in reqs] == [1, 2, 3],
              "dl-1 attempts %s" % [r["body"]["attempt"] for r in reqs])
        key1 = reqs[0]["body"]["idempotency_key"]
        e = dead["dl-1"]
        check(e["type"] == "ctl" and e["activity"] == "hook" and e["seq"] == 1 and
              e["attempts"] == 3 and e["executor"] == "hooks" and e["state"] == "failed" and
              e["idempotency_key"] == key1 and
              e["reason"].startswith("attempts exhausted (3): HTTP 503"),
              "dl-1 dead letter %s" % e)
        e = dead["dl-2"]
        check(e["attempts"] == 1 and e["state"] == "failed" and
              e["reason"].startswith("HTTP 400"), "dl-2 dead letter %s" % e)
        with open(os.path.join(env.data, "dead-letter.jsonl")) as f:
            lines = [json.loads(x) for x in f]
        check(sorted(x["task"]["id"] for x in lines) == ["dl-1", "dl-2"] and
              all(x["executor"] == "hooks" for x in lines), "dead-letter.jsonl %s" % lines)
        ce.say("deadletter", "dl-1 exhausted after 3 attempts, dl-2 failed at once: listed")

        # ---- re-drive dl-1 once the receiver is fixed
        fixed["dl-1"] = True
        rc, ans = env.ctl("activity", "retry", "ctl", "dl-1", "1")
        check(ans.get("ok"), "activity retry: %s" % ans)

        def retried(wf, state):
            es = [e for e in env.failed() if e["id"] == wf]
            return es[0] if es and es[0]["state"] == state else None

        wait_for(lambda: retried("dl-1", "retry_done"), 10, "dl-1: retry_done")
        reqs = env.receiver.of("dl-1")
        check(len(reqs) == 4 and reqs[3]["body"]["attempt"] == 4 and
              reqs[3]["body"]["idempotency_key"] == key1 and
              reqs[3]["headers"]["idempotency-key"] == key1,
              "dl-1 retry request %s" % [r["body"] for r in reqs[3:]])
        v = env.vars("ctl", "dl-1")
        check(v == {"res": -1, "dones": 0, "fails": 1}, "dl-1 workflow touched by the retry: %s"
              % v)
        ce.say("deadletter", "dl-1 retried (attempt 4, same key): retry_done")

        # ---- dl-2 fails again: retry_failed
        rc, ans = env.ctl("activity", "retry", "ctl", "dl-2", "1")
        check(ans.get("ok"), "activity retry dl-2: %s" % ans)
        wait_for(lambda: retried("dl-2", "retry_failed"), 10, "dl-2: retry_failed")
        check(len(env.receiver.of("dl-2")) == 2, "dl-2 requests %d" %
              len(env.receiver.of("dl-2")))

        # ---- nothing to retry
        rc, ans = env.ctl("activity", "retry", "ctl", "nobody", "1", ok_codes=(65,))
        check(ans and not ans.get("ok") and "no failed run" in ans.get("error", ""),
              "retry of an unknown run: %s" % ans)
        check(len(env.failed()) == 2, "dead letters now %s" % env.failed())
        st = env.stats()
        check(st["tasks_failed"] == 2 and st["tasks_done"] == 0,
              "stats tasks_failed %d tasks_done %d" % (st["tasks_failed"], st["tasks_done"]))
        check(env.stop_control() == 0, "sigflow-control exit status")
        env.ok = True
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(ce.run_bounded(main, 90))
