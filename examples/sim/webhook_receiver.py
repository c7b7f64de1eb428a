#!/usr/bin/env python3
"""webhook_receiver — the example node's stand-in for business systems (a CRM, payments,
ticketing): receives sigflow-control's webhooks (docs/control.md, "webhook") on 127.0.0.1.

Each POST is logged as one JSON line (path, Idempotency-Key, body) to --log; the answer is
200 {"result": N} (N counts the requests), except that every --fail-every-th request gets a
503 (the executor retries it) and every --reject-every-th a 400 (the run fails for good), so
that `./sigflow demo` shows retries and failures. A repeated Idempotency-Key is answered
200 again without counting it as new (what a receiver that deduplicates does).

Standard library only. Stops on SIGTERM.
"""
import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY_MAX = 64 * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--reject-every", type=int, default=0)
    args = ap.parse_args()
    lock = threading.Lock()
    state = {"n": 0, "seen": set()}
    logf = open(args.log, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def answer(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0 or length > BODY_MAX:
                self.answer(413, {"error": "body too large"})
                return
            body = self.rfile.read(length)
            key = self.headers.get("Idempotency-Key", "")
            with lock:
                repeat = key in state["seen"]
                state["n"] += 0 if repeat else 1
                n = state["n"]
                code = 200
                if not repeat and args.fail_every and n % args.fail_every == 0:
                    code = 503
                elif not repeat and args.reject_every and n % args.reject_every == 0:
                    code = 400
                if code == 200:
                    state["seen"].add(key)
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            logf.write(json.dumps({"path": self.path, "key": key, "status": code,
                                   "repeat": repeat, "body": parsed}) + "\n")
            if code == 200:
                self.answer(200, {"result": n})
            else:
                self.answer(code, {"error": "simulated %d" % code})

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=srv.shutdown).start())
    sys.stderr.write("webhook_receiver: 127.0.0.1:%d\n" % args.port)
    srv.serve_forever()


if __name__ == "__main__":
    main()
