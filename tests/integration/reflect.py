#!/usr/bin/env python3
"""reflect.py — measure what a node sends back to one source (run inside the test's
network namespace; sends only to the node's address there).

Builds binary frames by hand (docs/protocol.md §1) with ACK_REQ, for a workflow type that is
not deployed, so that every event is refused. Sends `frames` frames of `events` events each,
then listens until the node has been quiet for `quiet` seconds, and prints one JSON object:
bytes sent and received on the wire (UDP payload + 28 bytes of IPv4 and UDP headers + 14 of
Ethernet), datagrams each way, and the statuses seen.

usage: reflect.py HOST PORT FRAMES EVENTS [QUIET_S]
"""
import json
import socket
import struct
import sys
import time

WIRE = 14 + 20 + 8  # Ethernet + IPv4 + UDP header bytes around a payload
IDS = [chr(c) for c in range(ord("A"), ord("Z") + 1)] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + [
    chr(c) for c in range(ord("0"), ord("9") + 1)]


def frame(seq, events, first_id):
    body = b""
    for i in range(events):
        wid = IDS[i % len(IDS)].encode()
        typ, sig = b"z", b"s"
        ev_len = 24 + len(typ) + len(wid) + len(sig)
        body += struct.pack("<HBBBBHQQ", ev_len, len(typ), len(wid), len(sig), 0, 0,
                            first_id + i, 0) + typ + wid + sig
    hdr = struct.pack("<HBBIQHHIQ", 0x4653, 1, 0x01, 4242, seq, events, 32, 0, 0)
    return hdr + body


def main():
    host, port, frames, events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    quiet = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    s.settimeout(0.05)
    sent = recv = sent_n = recv_n = 0
    statuses = {}
    entries = 0

    def drain(deadline):
        nonlocal recv, recv_n, entries
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < quiet:
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            last = time.monotonic()
            recv += len(d) + WIRE
            recv_n += 1
            if len(d) >= 32 and d[3] == 0x80:
                n = struct.unpack_from("<H", d, 16)[0]
                for k in range(n):
                    st = d[32 + 12 * k + 10]
                    statuses[st] = statuses.get(st, 0) + 1
                    entries += 1

    for f in range(frames):
        d = frame(f + 1, events, 1 + f * events)
        s.sendto(d, (host, port))
        sent += len(d) + WIRE
        sent_n += 1
        if f % 16 == 15:
            time.sleep(0.002)
    drain(time.monotonic() + 10 + quiet)
    print(json.dumps({"sent_bytes": sent, "recv_bytes": recv, "sent_datagrams": sent_n,
                      "recv_datagrams": recv_n, "entries": entries,
                      "statuses": {str(k): v for k, v in statuses.items()}}))


if __name__ == "__main__":
    main()
