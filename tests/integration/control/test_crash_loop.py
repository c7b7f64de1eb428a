#!/usr/bin/env python3
"""test_crash_loop.py — activities survive kill -9 of either process: sigflowd +
sigflow-control + a local receiver (control_env), activity `bulk` of ctl.flow (retry
forever, timeout 5s).

usage: test_crash_loop.py MODE WORKFLOWS KILLS [SECONDS]
  MODE control  kill -9 sigflow-control KILLS times while the runs execute, a new one each
                time
  MODE node     kill -9 sigflowd KILLS times and start it again on the same directory
                (events still being sent are resent by sigflow-send until ACKed);
                sigflow-control reconnects by itself
  MODE both     alternately one and the other

WORKFLOWS workflows get one event each (do_bulk n=i) and schedule one webhook run each;
the receiver answers 200 {"result": 3n+1} after 0..20 ms. Kill k comes once k/(KILLS+1)
of the runs reached the receiver, so the kills hit runs in flight. At the end, once nothing is in
flight (`activity list` empty, sigflow-control idle):
  - none lost, exactly once: every workflow is in state `settled` of ctl.flow (`definition
    list`): its `on bulk.done` ran once (a second time moves it to `wrong`) with result
    3n+1, however often its run was dispatched; 50 of them are also described in full
    (res == 3n+1, dones == 1, fails == 0);
  - at least once: the receiver saw every workflow's idempotency key (one key per run);
  - the node's drops activity_result_invalid == 0.
Duplicates (requests beyond the first per key: dispatched again after a kill) are counted
and printed. When the state counts are off, every workflow is read with the node's
`describe` request on DIR/sigflowd.sock (what `sigflowctl --json workflow describe`
sends) to name the lost, doubled and wrong ones.

Exit 0 pass, 1 fail, 77 skip (not root). Bounded by SECONDS (default 300).
"""
import random
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import control_env as ce  # noqa: E402
from control_env import check, wait_for  # noqa: E402

EXECUTORS = """[executor hooks]
kind = webhook
url = @HOOK_URL@
concurrency = 64
"""


def main_for(mode, workflows, kills):
    env = ce.Env("crash-%s" % mode)
    rng = random.Random(workflows * 31 + kills)
    try:
        env.receiver.behave = lambda req: (
            200, {"result": 3 * req["body"]["arguments"]["n"] + 1}, rng.random() * 0.02)
        env.write_config(EXECUTORS, "* = hooks", grace_s=2)
        env.start_control()
        ids = ["b-%05d" % i for i in range(workflows)]
        lines = ["ctl %s do_bulk 1 %d" % (wf, i) for i, wf in enumerate(ids)]
        sent = {}

        def sender():
            try:
                sent["summary"] = env.send_lines(lines, batch=16, window=8)
            except Exception as e:  # reported below
                sent["error"] = e

        t0 = time.monotonic()
        th = threading.Thread(target=sender, daemon=True)
        th.start()
        plan = ["control" if mode == "control" else "node" if mode == "node" else
                ("node" if k % 2 == 0 else "control") for k in range(kills)]
        for k, what in enumerate(plan):
            # spread over the run: kill k once k/(kills+1) of the runs reached the receiver
            goal = (k + 1) * workflows // (kills + 1)
            wait_for(lambda: len(env.receiver.keys()) >= goal, 120,
                     "%d runs at the receiver before kill %d" % (goal, k + 1), 0.01)
            time.sleep(rng.random() * 0.05)
            if what == "control":
                env.stop_control(signal.SIGKILL)
                env.start_control(wait_connected=False)
            else:
                env.node.stop(signal.SIGKILL)
                env.node.start()
            ce.say(env.tag, "kill %d/%d: %s, %d runs at the receiver so far" %
                   (k + 1, kills, what, len(env.receiver.keys())))
        th.join(180)
        check(not th.is_alive(), "sigflow-send still running")
        if "error" in sent:
            raise sent["error"]
        st = sent["summary"]["statuses"]
        check(st["applied"] + st["duplicate"] == workflows and st["stale"] == 0,
              "ACK statuses %s" % st)

        def settled():
            tasks = env.activity_list()
            if tasks:
                return False
            cs = env.control_stats()
            return cs["connected"] and cs["runs"] == 0

        wait_for(settled, 240, "every run finished", 0.5)
        took = time.monotonic() - t0

        # ctl.flow moves a bulk workflow to `settled` when its first result is 3n + 1 and to
        # `wrong` on any other result or a second one: one answer counts them all
        _, defs = env.ctl("definition", "list")
        states = [d for d in defs["definitions"] if d["type"] == "ctl"][0]["states"]
        if states.get("settled") != workflows or states.get("wrong"):
            lost, twice, wrong = [], [], []
            for i, wf in enumerate(ids):  # which ones, for the report
                d = env.node.raw_ctl({"cmd": "describe", "type": "ctl", "id": wf})
                v = d.get("vars") if d.get("ok") else None
                if v is None or v["dones"] == 0:
                    lost.append(wf)
                elif v["dones"] != 1 or v["fails"] != 0:
                    twice.append((wf, v))
                elif v["res"] != 3 * i + 1:
                    wrong.append((wf, v))
            raise ce.Fail("states %s: %d workflows without their result %s, %d applied one "
                          "more than once %s, %d with a wrong result %s" %
                          (states, len(lost), lost[:5], len(twice), twice[:5], len(wrong),
                           wrong[:5]))
        for i in range(0, workflows, max(1, workflows // 50)):  # and a sample, in full
            v = env.vars("ctl", ids[i])
            check(v == {"res": 3 * i + 1, "dones": 1, "fails": 0}, "%s vars %s" % (ids[i], v))
        keys_of = {}
        for r in list(env.receiver.requests):
            keys_of.setdefault(r["body"]["id"], set()).add(r["body"]["idempotency_key"])
        unseen = [wf for wf in ids if wf not in keys_of]
        check(not unseen, "%d workflows' runs never reached the receiver: %s" %
              (len(unseen), unseen[:10]))
        multi = [wf for wf in ids if len(keys_of[wf]) != 1]
        check(not multi, "workflows with several keys: %s" % multi[:10])
        check(env.stats()["drops"]["activity_result_invalid"] == 0, "results dropped")
        per_key = env.receiver.keys()
        dups = sum(n - 1 for n in per_key.values())
        ce.say(env.tag, "%d workflows, %d kills (%s) in %.1f s: every result applied once; "
               "%d requests, %d dispatched again after a kill" %
               (workflows, kills, ",".join(plan), took, env.receiver.count(), dups))
        check(env.stop_control() == 0, "sigflow-control exit status")
        env.ok = True
    finally:
        env.close()


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[1] not in ("control", "node", "both"):
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 64
    mode, workflows, kills = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seconds = int(sys.argv[4]) if len(sys.argv) == 5 else 300
    return ce.run_bounded(lambda: main_for(mode, workflows, kills), seconds)


if __name__ == "__main__":
    sys.exit(main())
