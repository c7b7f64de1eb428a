#!/usr/bin/env python3
"""test_exec.py — the exec executor end to end: sigflowd + sigflow-control running prog.py
(control_env). Four workflows of ctl.flow (activity `prog`, retry 3), started together:

  e-ok     exit 0, first stdout line 105: done, result applied (res 105, dones 1), 1 run
  e-retry  exit 75 on attempt 1 ("busy" on stderr): attempt_failed "exit 75: busy" logged,
           attempt 2 exits 0: done
  e-fail   exit 3 ("cannot do it"): failed at once, one run only, the reason in `activity
           failed`
  e-evil   an argument holding ; $(...) backticks quotes | && > { } \\ * and a newline
           reaches the program byte for byte (its argv and SIGFLOW_ARG_NOTE, SIGFLOW_ARGS),
           and nothing in it was run by a shell (the marker files do not exist)

Exit 0 pass, 1 fail, 77 skip (not root). Bounded by a 90 s alarm.
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import control_env as ce  # noqa: E402
from control_env import check, entries_of  # noqa: E402

EXECUTORS = """[executor progs]
kind = exec
argv = ["/usr/bin/python3", "@PROG@", "@WORK@/out", "{id}", "{attempt}", "{arg.mode}", "{arg.note}"]
env = TEST_EXTRA=1
cwd = @WORK@
concurrency = 4
"""


def runs_of(out, wf):
    """{attempt: what prog.py recorded} for workflow wf."""
    got = {}
    for name in os.listdir(out):
        if name.startswith(wf + "-") and name.endswith(".json"):
            with open(os.path.join(out, name)) as f:
                got[int(name[len(wf) + 1:-5])] = json.load(f)
    return got


def main():
    env = ce.Env("exec")
    try:
        out = os.path.join(env.work, "out")
        os.makedirs(out)
        marker = os.path.join(env.work, "pwned")
        # relative marker names: the program runs in cwd = WORK
        evil = ("a; touch pwned-1 $(touch pwned-2) `touch pwned-3` 'single' \"double\" | && "
                "> {id} \\ *\nsecond line\t$HOME")
        check(len(evil.encode()) < 180, "the evil note must fit the task's argument bytes")
        env.write_config(EXECUTORS, "ctl.prog = progs")
        env.start_control()
        cases = {"e-ok": (0, "plain"), "e-retry": (75, "again"), "e-fail": (3, "nope"),
                 "e-evil": (0, evil)}
        for wf, (mode, note) in cases.items():
            env.send("ctl", wf, "do_prog", 1, mode, note)

        for wf, (mode, note) in cases.items():
            field = "fails" if mode == 3 else "dones"
            v = env.wait_vars("ctl", wf, lambda v: v[field] >= 1, 20, "the outcome applied")
            want = {"res": -1, "dones": 0, "fails": 1} if mode == 3 else \
                {"res": 100 + len(note), "dones": 1, "fails": 0}
            check(v == want, "%s vars %s, expected %s" % (wf, v, want))
            runs = runs_of(out, wf)
            check(sorted(runs) == ([1, 2] if mode == 75 else [1]),
                  "%s: attempts run %s" % (wf, sorted(runs)))
            last = runs[max(runs)]
            argv, penv = last["argv"], last["env"]
            check(argv[0] == ce.PROG and argv[1:] == [out, wf, str(max(runs)), str(mode), note],
                  "%s argv %r" % (wf, argv))
            check(penv.get("SIGFLOW_ARG_NOTE") == note and penv.get("SIGFLOW_ID") == wf and
                  penv.get("SIGFLOW_ACTIVITY") == "prog" and penv.get("SIGFLOW_SEQ") == "1" and
                  penv.get("SIGFLOW_ATTEMPT") == str(max(runs)) and
                  penv.get("TEST_EXTRA") == "1",
                  "%s environment %r" % (wf, penv))
            check(json.loads(penv["SIGFLOW_ARGS"]) == {"customer": wf, "mode": mode,
                                                       "note": note},
                  "%s SIGFLOW_ARGS %r" % (wf, penv["SIGFLOW_ARGS"]))
            key = penv.get("SIGFLOW_IDEMPOTENCY_KEY", "")
            check(key.endswith("-1") and len(key) == 34, "%s key %r" % (wf, key))
            h = env.history("ctl", wf)
            kinds = [e["kind"] for e in h]
            if mode == 75:
                af = entries_of(h, "attempt_failed")
                check(kinds == ["signal", "effects", "attempt_failed", "activity_done"] and
                      af[0]["attempt"] == 1 and af[0]["reason"] == "exit 75: busy",
                      "%s history %s %s" % (wf, kinds, af))
            elif mode == 3:
                af = entries_of(h, "attempt_failed")
                check(kinds == ["signal", "effects", "attempt_failed", "activity_failed"] and
                      af[0]["attempt"] == 1 and af[0]["reason"].startswith("exit 3"),
                      "%s history %s %s" % (wf, kinds, af))
            else:
                check(kinds == ["signal", "effects", "activity_done"] and
                      h[-1]["result"] == 100 + len(note), "%s history %s" % (wf, kinds))
            ce.say("exec", "%s: %d run(s), %s" % (wf, len(runs), v))

        for i in (1, 2, 3):
            check(not os.path.exists("%s-%d" % (marker, i)),
                  "a shell ran part of the argument (%s-%d exists)" % (marker, i))
        dead = [e for e in env.failed() if e["id"] == "e-fail"]
        check(len(dead) == 1 and dead[0]["reason"] == "exit 3: cannot do it" and
              dead[0]["attempts"] == 1 and dead[0]["executor"] == "progs" and
              dead[0]["state"] == "failed", "activity failed: %s" % dead)
        check(len(env.failed()) == 1, "dead letters: %s" % env.failed())
        check(env.activity_list() == [], "runs left in flight: %s" % env.activity_list())
        check(env.stop_control() == 0, "sigflow-control exit status")
        env.ok = True
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(ce.run_bounded(main, 90))
