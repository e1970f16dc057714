#!/usr/bin/env python3
"""Writes tests/scenarios/146-etcd-range-grpc.json: an etcd mirror reading
its range over gRPC (SPEC §10.4), fed the answer a real etcd 3.4.23 gave
(tests/fixtures/etcd-grpc/range.grpc), then answers cut or changed by hand.
A gRPC answer is binary, so a step carries it as `body_base64`; the vector
`requires` the `etcd-grpc` reader, which the browser's module leaves out.

    python3 scripts/gen-grpc-vector.py
"""

import base64
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ANSWER = open(os.path.join(ROOT, "tests", "fixtures", "etcd-grpc", "range.grpc"), "rb").read()


def b64(data):
    return base64.b64encode(data).decode()


def field(number, data):
    """A protobuf length-delimited field (lengths below 128 here)."""
    assert len(data) < 128
    return bytes([number << 3 | 2, len(data)]) + data


def framed(message):
    return b"\0" + len(message).to_bytes(4, "big") + message


def report(added=0, updated=0, removed=0, unchanged=0, resync=False, rejected=()):
    return {"added": added, "updated": updated, "removed": removed, "unchanged": unchanged, "held": 0,
            "rejected": list(rejected), "resync": resync,
            "changed": bool(added or updated or removed or resync)}


REQUEST = framed(field(1, b"/waypost/services/") + field(2, b"/waypost/services0"))
# The same answer with `more` (field 3) set: a range cut short.
MORE = framed(ANSWER[5:] + bytes([3 << 3, 1]))
# One kv whose value is not JSON, one under another prefix, one good: both
# bad ones are rejected at their keys, and the instance of the bad value is
# kept.
HEADER = field(1, bytes([3 << 3, 40]))
ODD = framed(HEADER
             + field(2, field(1, b"/waypost/services/api/api-a") + field(5, b"not json"))
             + field(2, field(1, b"/elsewhere/api/x") + field(5, b"{}"))
             + field(2, field(1, b"/waypost/services/web/w1") + field(5, b'{"address":"10.0.2.1","port":80}')))

steps = [
    {"op": "source_add", "at": 0, "name": "etcd", "options": {"kind": "etcd", "grpc": True}},
    {"op": "source_request", "name": "etcd", "expect": {"request": {
        "method": "POST", "path": "/etcdserverpb.KV/Range", "body": b64(REQUEST), "stream": False, "grpc": True}}},
    {"op": "source_feed", "name": "etcd", "body_base64": b64(ANSWER), "expect": {"report": report(added=4)}},
    {"op": "discover", "service": "api", "all": True, "expect": {"ids": ["api-a", "api-b"], "health": ["healthy", "degraded"]}},
    {"op": "get", "id": "echo-2", "expect": {"source": "etcd"}},
    # The watch that follows is the gateway's stream, from the answer's
    # revision (6) on.
    {"op": "source_request", "name": "etcd", "expect": {"request": {"path": "/v3/watch", "stream": True}}},
    {"op": "source_feed", "name": "etcd", "at": 5,
     "body": {"result": {"header": {"revision": "20"}, "compact_revision": "15", "canceled": True}},
     "expect": {"report": report(resync=True)}},
    {"op": "source_request", "name": "etcd", "expect": {"request": {"path": "/etcdserverpb.KV/Range", "grpc": True}}},
    # Cut short, longer than its prefix, compressed, `more`: nothing changes.
    {"op": "source_feed", "name": "etcd", "body_base64": b64(ANSWER[:-3]), "expect": {"error": "invalid_argument"}},
    {"op": "source_feed", "name": "etcd", "body_base64": b64(ANSWER + b"\0"), "expect": {"error": "invalid_argument"}},
    {"op": "source_feed", "name": "etcd", "body_base64": b64(b"\1" + ANSWER[1:]), "expect": {"error": "invalid_argument"}},
    {"op": "source_feed", "name": "etcd", "body_base64": b64(MORE), "expect": {"error": "invalid_argument"}},
    {"op": "source_feed", "name": "etcd", "body_base64": b64(ANSWER), "status": 503, "expect": {"error": "invalid_argument"}},
    {"op": "source_request", "name": "etcd", "expect": {"request": {"path": "/etcdserverpb.KV/Range"}}},
    {"op": "snapshot_restore"},
    {"op": "source_request", "name": "etcd", "expect": {"request": {"path": "/etcdserverpb.KV/Range", "grpc": True}}},
    # The same answer again: everything unchanged.
    {"op": "source_feed", "name": "etcd", "at": 10, "body_base64": b64(ANSWER), "expect": {"report": report(unchanged=4)}},
    # A full state with a bad value (its instance kept) and a foreign key.
    {"op": "source_feed", "name": "etcd", "at": 15, "body_base64": b64(ODD), "expect": {"report": report(
        added=1, removed=3, rejected=[
            {"at": "/waypost/services/api/api-a", "code": "invalid_argument",
             "message": "invalid argument `value`: not valid JSON: expected value at line 1 column 1"},
            {"at": "/elsewhere/api/x", "code": "invalid_argument",
             "message": "invalid argument `key`: expected <prefix>/<service>/<id>"}])}},
    {"op": "source_request", "name": "etcd", "expect": {"request": {"path": "/v3/watch"}}},
    {"op": "services", "expect": {"services": ["api", "web"]}},
    {"op": "discover", "service": "web", "expect": {"ids": ["w1"]}},
    {"op": "discover", "service": "api", "expect": {"ids": ["api-a"]}},
]

doc = {
    "name": "an etcd mirror reads its range over gRPC: the request, a real etcd's answer, answers cut or changed, a reset and a restore",
    "requires": ["etcd-grpc"],
    "steps": steps,
}
path = os.path.join(ROOT, "tests", "scenarios", "146-etcd-range-grpc.json")
with open(path, "w") as f:
    json.dump(doc, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(path)
