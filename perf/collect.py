#!/usr/bin/env python3
"""Collect benchmark result lines (one JSON object per line, perf/bench.h) into the
results document perf/results/latest.json: {"results": [...], "machine": {...}, ...}.
Lines from callgrind runs ({"callgrind_for": name, "instructions_per_event": x}) are
merged into the result of the same name."""
import json
import os
import platform
import sys
import time


def main(path):
    results, instr = [], {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "callgrind_for" in obj:
                instr[obj["callgrind_for"]] = obj["instructions_per_event"]
            elif not obj.get("under_valgrind"):
                results.append(obj)
    for r in results:
        if r["name"] in instr:
            r["instructions_per_event"] = instr[r["name"]]
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    doc = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release()},
        "results": results,
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
