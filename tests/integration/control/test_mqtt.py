#!/usr/bin/env python3
"""test_mqtt.py — the mqtt executor end to end: sigflowd + sigflow-control + mosquitto +
sigflow-device-sim (control_env), workflow type dev (dev.flow: reprovision over MQTT, done
when the device answers with the same idempotency key).

  d-1  a subscriber (mosquitto_sub) receives the command on devices/d-1/commands with the
       documented body; the device simulator answers (result 42): the result is applied
       once and the workflow moves on (reprovisioning -> online), history activity_done 42
  d-2  no device answers: the attempt times out (`timeout 3s`) and is retried; a device
       started during the backoff (1s) answers attempt 2: done
  d-3  the device answers "ok": false: the run fails at once (offline), the device's error
       is the dead letter's reason

Exit 0 pass, 1 fail, 77 skip (not root). Bounded by a 90 s alarm.
"""
import json
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import control_env as ce  # noqa: E402
from control_env import check, entries_of, wait_for  # noqa: E402

EXECUTORS = """[executor devices]
kind = mqtt
host = 127.0.0.1
port = @MQTT_PORT@
topic = devices/{id}/commands
reply_topic = devices/+/replies
qos = 1
concurrency = 32
"""


def subscribe(env):
    """mosquitto_sub for one command (-C 1, at most 20 s), returned once subscribed (its
    debug output says SUBACK; stdbuf: line-buffered into our pipe)."""
    p = env.spawn(["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(env.broker.port), "-t",
                   "devices/+/commands", "-C", "1", "-W", "20", "-v", "-d", "-q", "1"])

    def subscribed():
        line = ce._read_line(p.stdout, 5)
        check(line != "", "mosquitto_sub ended before its SUBACK")
        return "SUBACK" in line

    wait_for(subscribed, 10, "mosquitto_sub's SUBACK", step=0)
    return p


def command_of(p):
    """The message mosquitto_sub printed (-v: 'TOPIC PAYLOAD'), skipping its debug lines."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = ce._read_line(p.stdout, 5)
        if line == "":
            break
        if line.startswith("devices/"):
            topic, payload = line.rstrip("\n").split(" ", 1)
            return topic, json.loads(payload)
    raise ce.Fail("mosquitto_sub printed no command")


def state(env, wf):
    return env.describe("dev", wf)["state"]


def main():
    env = ce.Env("mqtt", mqtt=True)
    try:
        env.write_config(EXECUTORS, "dev.reprovision = devices")
        env.start_control()

        # ---- d-1: the command as a subscriber sees it, the device's answer applied
        sub = subscribe(env)
        sim = env.start_device_sim("--result", "42")
        env.send("dev", "d-1", "broken", 1, "errors")
        topic, body = command_of(sub)
        check(topic == "devices/d-1/commands", "command topic %s" % topic)
        check(set(body) == {"type", "id", "activity", "arguments", "attempt", "idempotency_key",
                            "seq"}, "command keys %s" % sorted(body))
        check(body["type"] == "dev" and body["id"] == "d-1" and body["activity"] ==
              "reprovision" and body["arguments"] == {"device": "d-1", "reason": "errors"} and
              body["attempt"] == 1 and body["seq"] == 1, "command %s" % body)
        key = body["idempotency_key"]
        check(re.fullmatch(r"[0-9a-f]{32}-1", key), "key %r" % key)
        check(ce.stop_proc(sub, wait=5) == 0, "mosquitto_sub exit status")
        v = env.wait_vars("dev", "d-1", lambda v: v["dones"] >= 1, 15, "the device's answer")
        check(v == {"res": 42, "dones": 1, "fails": 0}, "d-1 vars %s" % v)
        check(state(env, "d-1") == "online", "d-1 state %s" % state(env, "d-1"))
        h = env.history("dev", "d-1")
        done = entries_of(h, "activity_done")
        check(len(done) == 1 and done[0]["result"] == 42 and done[0]["seq"] == 1 and
              not entries_of(h, "attempt_failed"), "d-1 history %s" % [e["kind"] for e in h])
        line = ce._read_line(sim.stdout, 5).split()
        check(line == ["d-1", key, "ok", "42"], "device sim printed %s" % line)
        ce.say("mqtt", "d-1: command received by a subscriber, answered 42, state online")

        # ---- d-2: nobody answers attempt 1 (timeout 3s), a device answers attempt 2
        ce.stop_proc(sim)
        t0 = time.monotonic()
        env.send("dev", "d-2", "broken", 1, "silent")

        def first_attempt_failed():
            af = entries_of(env.history("dev", "d-2"), "attempt_failed")
            return af or None

        af = wait_for(first_attempt_failed, 10, "d-2's attempt 1 to time out", 0.1)
        took = time.monotonic() - t0
        check(af[0]["attempt"] == 1 and "start-to-close timeout (3000 ms)" in af[0]["reason"],
              "d-2 attempt_failed %s" % af)
        check(2.5 <= took < 6, "d-2: attempt 1 timed out after %.2f s (timeout 3s)" % took)
        check(state(env, "d-2") == "reprovisioning", "d-2 state %s" % state(env, "d-2"))
        sim = env.start_device_sim("--result", "43")
        v = env.wait_vars("dev", "d-2", lambda v: v["dones"] >= 1, 15, "attempt 2 answered")
        check(v == {"res": 43, "dones": 1, "fails": 0} and state(env, "d-2") == "online",
              "d-2 vars %s state %s" % (v, state(env, "d-2")))
        check(len(entries_of(env.history("dev", "d-2"), "attempt_failed")) == 1,
              "d-2: attempt 2 was not the one answered (backoff 1s: the device was there)")
        line = ce._read_line(sim.stdout, 5).split()
        check(line[:1] == ["d-2"] and line[2:] == ["ok", "43"], "device sim printed %s" % line)
        ce.say("mqtt", "d-2: attempt 1 timed out after %.1f s, attempt 2 answered" % took)
        ce.stop_proc(sim)

        # ---- d-3: the device refuses
        sim = env.start_device_sim("--fail-every", "1")
        env.send("dev", "d-3", "broken", 1, "errors")
        v = env.wait_vars("dev", "d-3", lambda v: v["fails"] >= 1, 15, "the refusal applied")
        check(v == {"res": -1, "dones": 0, "fails": 1} and state(env, "d-3") == "offline",
              "d-3 vars %s state %s" % (v, state(env, "d-3")))
        dead = [e for e in env.failed() if e["id"] == "d-3"]
        check(len(dead) == 1 and "simulated failure" in dead[0]["reason"] and
              dead[0]["attempts"] == 1, "d-3 dead letter %s" % dead)
        af = entries_of(env.history("dev", "d-3"), "attempt_failed")
        check(len(af) == 1 and af[0]["attempt"] == 1 and "simulated failure" in af[0]["reason"],
              "d-3: one attempt (not retried), its reason in the history: %s" % af)
        ce.say("mqtt", "d-3: refused by the device: failed at once (%s)" % dead[0]["reason"])

        check(env.activity_list() == [], "runs left in flight: %s" % env.activity_list())
        check(env.stop_control() == 0, "sigflow-control exit status")
        env.ok = True
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(ce.run_bounded(main, 90))
