#!/usr/bin/env python3
"""prog.py — the program the exec executor runs in tests/integration/control (test_exec.py).

argv: OUTDIR ID ATTEMPT MODE NOTE... (sigflow-control's argv template). It writes its whole
argv and the SIGFLOW_* environment as JSON to OUTDIR/ID-ATTEMPT.json, then by MODE:
  0   prints "MODE+NOTE-length" as the result (first stdout line), exit 0
  75  exit 75 (retry) on attempt 1 with "busy" on stderr, then like 0
  3   "cannot do it" on stderr, exit 3 (fails the run)
"""
import json
import os
import sys

out, wf_id, attempt, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
env = {k: v for k, v in os.environ.items() if k.startswith("SIGFLOW_") or k in ("PATH", "TEST_EXTRA")}
path = os.path.join(out, "%s-%d.json" % (wf_id, attempt))
with open(path + ".tmp", "w") as f:
    json.dump({"argv": sys.argv, "env": env}, f)
os.rename(path + ".tmp", path)
if mode == 75 and attempt == 1:
    sys.stderr.write("warming up\nbusy\n")
    sys.exit(75)
if mode == 3:
    sys.stderr.write("checking\ncannot do it\n")
    sys.exit(3)
print(100 + len(sys.argv[5]) if len(sys.argv) > 5 else 100)
print("more output that is not the result")
