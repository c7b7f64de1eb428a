#!/usr/bin/env python3
"""Write the seed corpus of fuzz_proto (tests/proto/corpus/) from docs/protocol.md's layout.

Run from anywhere: python3 tests/proto/gen_corpus.py. Files are small and deterministic.
"""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def frame(events, flags=0, sender=7, seq=1, header_len=32, tag=False):
    hdr = struct.pack("<HBBIQHHIQ", 0x4653, 1, flags, sender, seq, len(events), header_len, 0, 0)
    body = b"".join(events)
    return hdr + b"\0" * (header_len - 32) + body + (b"\0" * 32 if tag else b"")


def event(type_, id_, signal, fields=b"", event_id=1, ts_ns=0):
    t, i, s = type_.encode(), id_.encode(), signal.encode()
    length = 24 + len(t) + len(i) + len(s) + len(fields)
    return struct.pack("<HBBBBHQQ", length, len(t), len(i), len(s), 0, len(fields),
                       event_id, ts_ns) + t + i + s + fields


def ack(entries, sender=7, seq=1, owner=0, lsn=0):
    hdr = struct.pack("<HBBIQHHHHQ", 0x4653, 1, 0x80, sender, seq, len(entries), 32, owner, 0, lsn)
    return hdr + b"".join(struct.pack("<QHBB", eid, idx, st, 0) for eid, idx, st in entries)


# CBOR: [21, -300, 1.5 (half), 2.5 (single), 0.1 (double), true, false, null, "ok", 2^40]
CBOR_ALL = (bytes([0x8a, 0x15, 0x39, 0x01, 0x2b, 0xf9, 0x3e, 0x00, 0xfa, 0x40, 0x20, 0x00, 0x00])
            + b"\xfb" + struct.pack(">d", 0.1) + bytes([0xf5, 0xf4, 0xf6, 0x62]) + b"ok"
            + b"\x1b" + struct.pack(">Q", 1 << 40))

SEEDS = {
    "frame_one": frame([event("device", "sensor-1", "telemetry", bytes([0x81, 0x15]), 17, 123)]),
    "frame_all_types": frame([event("device", "sensor-2", "telemetry", CBOR_ALL, 18)],
                             flags=1),
    "frame_multi": frame([event("loyalty", "cust-%d" % i, "purchase", bytes([0x81, 0x18, 100 + i]),
                                1000 + i) for i in range(8)]),
    "frame_no_fields": frame([event("t", "i", "s")]),
    "frame_auth": frame([event("t", "i", "s", bytes([0x80]))], flags=2, tag=True),
    "frame_ext_header": frame([event("t", "i", "s")], header_len=40),
    "json_full": b'{"type":"device","id":"sensor-1","signal":"telemetry","event_id":17,'
                 b'"ts_ns":123,"fields":{"temp_c":21.5,"ok":true,"name":"x\\u00e9\\n","n":-4,'
                 b'"z":null}}\n',
    "json_unknown": b'{"x":{"a":[1,{"b":"c"}]},"signal":"s","id":"i","type":"t"}',
    "fields_only": b'{"a":1,"b":"two","c":3.5e1,"d":false}',
    "cbor_only": CBOR_ALL,
    "ack_two": ack([(17, 0, 0), (18, 1, 4)], owner=1, lsn=99),
}

os.makedirs(HERE, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
