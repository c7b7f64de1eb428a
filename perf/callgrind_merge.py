#!/usr/bin/env python3
"""Turn one callgrind run of a benchmark into instructions-per-event lines.
The benchmark ran under `valgrind --tool=callgrind --collect-atstart=no`, toggled
collection around each measured region and dumped at its end (perf/bench.h), and printed
its result lines with "events". With one measured region per result, the dumps pair with
the results in order; otherwise no instruction figures are reported."""
import glob
import json
import os
import re
import sys


def totals(dumpdir):
    out = []
    parts = []
    for path in glob.glob(os.path.join(dumpdir, "cg.*")):
        m = re.match(r"^cg\.\d+\.(\d+)$", os.path.basename(path))
        if m:  # cg.PID.N: the N-th region; cg.PID alone is the empty rest at exit
            parts.append((int(m.group(1)), path))
    for _, path in sorted(parts):
        with open(path) as f:
            for line in f:
                m = re.match(r"^(?:totals|summary):\s+(\d+)", line)
                if m:
                    out.append(int(m.group(1)))
                    break
    return out


def main(dumpdir):
    results = []
    with open(os.path.join(dumpdir, "out")) as f:
        for line in f:
            if line.startswith("{"):
                try:
                    results.append(json.loads(line))
                except ValueError:
                    pass
    tot = totals(dumpdir)
    if len(tot) == len(results):
        for r, t in zip(results, tot):
            if r.get("events"):
                print(json.dumps({"callgrind_for": r["name"],
                                  "instructions_per_event": round(t / r["events"], 2)}))
    else:
        sys.stderr.write("callgrind: %d regions for %d results: not paired\n"
                         % (len(tot), len(results)))


if __name__ == "__main__":
    main(sys.argv[1])
