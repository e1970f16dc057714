#!/usr/bin/env python3
"""Writes the etcd payload fixtures (tests/fixtures/etcd/) and the source
scenario vectors (tests/scenarios/1xx-*.json).

The payloads follow the etcd 3.4 JSON gateway (see
tests/fixtures/etcd/README.md): byte fields base64, int64 fields as decimal
strings, zero values left out. Writing them here keeps the base64 right;
the files it writes are the contract, this script only a convenience.

    python3 scripts/gen-source-vectors.py
"""

import base64
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "etcd")
SCENARIOS = os.path.join(ROOT, "tests", "scenarios")
PREFIX = "/waypost/services"


def b64(text):
    return base64.b64encode(text.encode()).decode()


def header(revision):
    return {
        "cluster_id": "14841639068965178418",
        "member_id": "10276657743932975437",
        "revision": str(revision),
        "raft_term": "2",
    }


def kv(service, id, value, mod, create=None, version=1, lease=None, raw=None, key=None):
    """One mvccpb.KeyValue as the gateway writes it."""
    out = {
        "key": b64(key if key is not None else f"{PREFIX}/{service}/{id}"),
        "create_revision": str(create or mod),
        "mod_revision": str(mod),
        "version": str(version),
    }
    if raw is not None:
        out["value"] = b64(raw)
    elif value is not None:
        out["value"] = b64(json.dumps(value, separators=(",", ":")))
    if lease:
        out["lease"] = str(lease)
    return out


def range_response(revision, kvs):
    out = {"header": header(revision)}
    if kvs:
        out["kvs"] = kvs
        out["count"] = str(len(kvs))
    return out


def watch(revision, events=None, **extra):
    result = {"header": header(revision)}
    if events:
        result["events"] = events
    result.update(extra)
    return {"result": result}


def put(kv_):
    return {"kv": kv_}  # a PUT event has no `type` (its enum value is 0)


def delete(service, id, mod):
    return {"type": "DELETE", "kv": {"key": b64(f"{PREFIX}/{service}/{id}"), "mod_revision": str(mod)}}


def inst(id, service="api", address="10.0.0.1", port=8080, **fields):
    out = {"id": id, "service": service, "address": address, "port": port}
    out.update(fields)
    return out


# ----- fixtures -------------------------------------------------------------

API_A = inst("api-a", address="10.0.0.1", port=8080, weight=2, tags=["v1"], meta={"rack": "r1"}, zone="eu-1")
API_B = dict(inst("api-b", address="10.0.0.2", port=8080), status="warning")
GRPC = {"Op": 0, "Addr": "10.0.1.7:50051", "Metadata": {"version": "1.4"}}
GRPC6 = {"Addr": "[fd00::7]:50051", "Metadata": None}

FIXTURES_OUT = {
    "range-empty.json": range_response(1, []),
    "range.json": range_response(
        9,
        [
            kv("api", "api-a", API_A, 4, lease=7587869812316352005),
            kv("api", "api-b", API_B, 5, lease=7587869812316352005),
            kv("grpc-echo", "echo-1", GRPC, 8, create=6, version=2),
            kv("grpc-echo", "echo-2", GRPC6, 9),
        ],
    ),
    "watch-created.json": watch(9, created=True),
    "watch-put.json": watch(10, [put(kv("api", "api-c", inst("api-c", address="10.0.0.3"), 10))]),
    "watch-update.json": watch(
        11, [put(kv("api", "api-a", dict(API_A, status="maintenance"), 11, create=4, version=2))]
    ),
    "watch-delete.json": watch(12, [delete("api", "api-b", 12)]),
    "watch-batch.json": watch(
        13,
        [
            put(kv("api", "api-d", inst("api-d", address="10.0.0.4"), 13)),
            delete("api", "api-c", 13),
        ],
    ),
    "watch-progress.json": watch(20),
    "watch-compacted.json": watch(
        30, canceled=True, compact_revision="25", cancel_reason="mvcc: required revision has been compacted"
    ),
    "watch-error.json": {
        "error": {"grpc_code": 14, "http_code": 503, "message": "etcdserver: no leader", "http_status": "Service Unavailable"}
    },
    "watch-malformed-records.json": watch(
        14,
        [
            put(kv("api", "api-e", inst("api-e", address="10.0.0.5"), 14)),
            put(kv("api", "api-f", None, 14, raw="not json")),
            put(kv(None, None, inst("x"), 14, key=f"{PREFIX}/lonely")),
            put(kv("api", "api-g", inst("api-g", port=0), 14)),
            {"type": "BOGUS", "kv": {"key": b64(f"{PREFIX}/api/api-h")}},
        ],
    ),
}


def write_fixtures():
    os.makedirs(FIXTURES, exist_ok=True)
    for name, doc in FIXTURES_OUT.items():
        with open(os.path.join(FIXTURES, name), "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")


# ----- scenarios ------------------------------------------------------------


def step(op, **fields):
    out = {"op": op}
    out.update(fields)
    return out


def scenario(number, slug, name, steps, config=None):
    doc = {"name": name}
    if config:
        doc["config"] = config
    doc["steps"] = steps
    lines = [
        "{",
        f'  "name": {json.dumps(name, ensure_ascii=False)},',
    ]
    if config:
        lines.append(f'  "config": {json.dumps(config)},')
    lines.append('  "steps": [')
    for i, s in enumerate(steps):
        comma = "," if i < len(steps) - 1 else ""
        lines.append("    " + json.dumps(s, ensure_ascii=False) + comma)
    lines.append("  ]")
    lines.append("}")
    with open(os.path.join(SCENARIOS, f"{number}-{slug}.json"), "w") as f:
        f.write("\n".join(lines) + "\n")


def report(**fields):
    """A whole report; `changed` follows SPEC §10.2 unless given."""
    base = {"added": 0, "updated": 0, "removed": 0, "unchanged": 0, "held": 0, "rejected": [], "resync": False}
    base.update(fields)
    counts = base["added"] + base["updated"] + base["removed"] + base["held"]
    base.setdefault("changed", counts > 0 or base["resync"])
    return base


ETCD = {"kind": "etcd", "prefix": PREFIX}


def write_scenarios():
    a, b, c = inst("a"), inst("b", address="10.0.0.2"), inst("c", address="10.0.0.3")

    scenario(100, "source-ownership-conflicts", "a source never touches what it does not own, and local calls never touch a source's instances", [
        step("register", at=0, instance=inst("local")),
        step("sync", source="etcd", service="api", entries=[inst("local"), a],
             expect={"report": report(added=1, rejected=[{"at": "0", "code": "conflict", "message": "conflict: instance `local` is registered locally, not by source `etcd`"}])}),
        step("sync", source="consul", service="api", entries=[a],
             expect={"report": {"added": 0, "rejected": [{"at": "0", "code": "conflict", "message": "conflict: instance `a` is owned by source `etcd`, not `consul`"}]}}),
        step("source_put", source="consul", entry=a, expect={"error": "conflict"}),
        step("source_delete", source="consul", id="a", expect={"error": "conflict"}),
        step("source_delete", source="etcd", id="local", expect={"error": "conflict"}),
        step("register", instance=a, expect={"error": "conflict"}),
        step("deregister", id="a", expect={"error": "conflict"}),
        step("heartbeat", id="a", expect={"error": "conflict"}),
        step("source_delete", source="etcd", id="never-seen", expect={"report": report()}),
        step("get", id="a", expect={"health": "healthy", "source": "etcd", "held": False}),
        step("discover", service="api", expect={"ids": ["a", "local"]}),
    ])

    scenario(101, "source-reconcile", "a full sync adds, updates and removes, and names the source on every event", [
        step("sync", at=0, source="etcd", service="api", entries=[a, b], expect={"report": report(added=2)}),
        step("sync", at=10, source="etcd", service="api", entries=[dict(a, port=9090), c], expect={"report": report(added=1, updated=1, removed=1)}),
        step("events", expect={"events": [
            {"type": "registered", "id": "a", "source": "etcd", "at": 0},
            {"type": "registered", "id": "b", "source": "etcd", "at": 0},
            {"type": "updated", "id": "a", "source": "etcd", "at": 10},
            {"type": "registered", "id": "c", "source": "etcd", "at": 10},
            {"type": "deregistered", "id": "b", "source": "etcd", "at": 10}]}),
        step("discover", service="api", expect={"ids": ["a", "c"]}),
    ])

    scenario(102, "source-reconcile-no-op", "listing the same state again changes nothing and emits nothing", [
        step("sync", at=0, source="etcd", service="api", entries=[a, b, dict(c, status="warning")]),
        step("events", expect={"events": [{"type": "registered"}, {"type": "registered"}, {"type": "registered"}]}),
        step("sync", at=5, source="etcd", service="api", entries=[b, dict(c, status="warning"), dict(a, tags=[])], expect={"report": report(unchanged=3)}),
        step("source_put", at=6, source="etcd", entry=b, expect={"report": report(unchanged=1)}),
        step("events", expect={"events": []}),
        step("get", id="c", expect={"health": "degraded"}),
    ])

    scenario(103, "source-status-health", "source status maps onto health, local drain and checks still apply on top", [
        step("source_put", at=0, source="consul", entry=dict(a, status="warning"), expect={"report": report(added=1)}),
        step("get", id="a", expect={"health": "degraded"}),
        step("source_put", source="consul", entry=dict(a, status="critical"), expect={"report": report(updated=1)}),
        step("get", id="a", expect={"health": "unhealthy"}),
        step("source_put", source="consul", entry=dict(a, status="maintenance")),
        step("get", id="a", expect={"health": "draining"}),
        step("source_put", source="consul", entry=dict(a, status="passing")),
        step("get", id="a", expect={"health": "healthy"}),
        step("drain", id="a", on=True),
        step("source_put", source="consul", entry=dict(a, status="critical")),
        step("get", id="a", expect={"health": "draining"}),
        step("drain", id="a", on=False),
        step("get", id="a", expect={"health": "unhealthy"}),
        step("source_put", source="consul", entry=a),
        step("check", id="a", status="warn"),
        step("get", id="a", expect={"health": "degraded"}),
        step("events", expect={"events": [
            {"type": "registered", "id": "a", "source": "consul"},
            {"type": "updated", "id": "a", "source": "consul"},
            {"type": "health_changed", "from": "degraded", "to": "unhealthy", "source": "consul"},
            {"type": "updated"}, {"type": "health_changed", "from": "unhealthy", "to": "draining"},
            {"type": "updated"}, {"type": "health_changed", "from": "draining", "to": "healthy"},
            {"type": "health_changed", "from": "healthy", "to": "draining"},
            {"type": "updated"},
            {"type": "health_changed", "from": "draining", "to": "unhealthy"},
            {"type": "updated"}, {"type": "health_changed", "from": "unhealthy", "to": "healthy"},
            {"type": "health_changed", "from": "healthy", "to": "degraded"}]}),
    ])

    scenario(104, "source-no-lease", "a source-owned instance never expires and has no lease to renew", [
        step("sync", at=0, source="etcd", service="api", entries=[dict(a, ttl_ms=50)]),
        step("register", instance=inst("local", ttl_ms=1000)),
        step("tick", at=100000, expect={"events": [{"type": "health_changed", "id": "local", "to": "unhealthy"}]}),
        step("get", id="a", expect={"health": "healthy"}),
        step("heartbeat", id="a", expect={"error": "conflict"}),
        step("sync", source="etcd", service="api", entries=[a], expect={"report": report(unchanged=1)}),
    ], config={"ttl_ms": 1000, "evict_after_ms": 0})

    ten = [inst(f"i{n}", address=f"10.0.0.{n}") for n in range(10)]
    more = [inst(f"j{n:02d}", address=f"10.0.1.{n}") for n in range(30)]
    scenario(105, "source-removals-held", "source removals obey self-preservation and are released in id order when the fraction recovers", [
        step("sync", at=0, source="etcd", service="api", entries=ten, expect={"report": report(added=10)}),
        step("events", expect={"events": [{"type": "registered"}] * 10}),
        step("sync", at=10, source="etcd", service="api", entries=ten[:2], expect={"report": report(removed=2, held=6, unchanged=2)}),
        step("events", expect={"events": [
            {"type": "deregistered", "id": "i2", "source": "etcd"},
            {"type": "deregistered", "id": "i3", "source": "etcd"},
            {"type": "self_preservation_entered", "at": 10},
            {"type": "removal_held", "id": "i4", "service": "api", "source": "etcd"},
            {"type": "removal_held", "id": "i5"}, {"type": "removal_held", "id": "i6"},
            {"type": "removal_held", "id": "i7"}, {"type": "removal_held", "id": "i8"},
            {"type": "removal_held", "id": "i9"}]}),
        step("get", id="i4", expect={"health": "healthy", "held": True}),
        step("discover", service="api", expect={"ids": ["i0", "i1", "i4", "i5", "i6", "i7", "i8", "i9"]}),
        step("source_delete", at=20, source="etcd", id="i5", expect={"report": report(held=1)}),
        step("sync", at=30, source="etcd", service="api", entries=ten[:2] + more[:21], expect={"report": report(added=21, unchanged=2, held=6)}),
        step("events", expect={"events": [{"type": "registered"}] * 21}),
        # The two removed at 10 still count in the population (window):
        # 38 live, 6 held as lost, (38 - 6) / (38 + 2) = 0.8.
        step("sync", at=40, source="etcd", service="api", entries=ten[:2] + more, expect={"report": report(added=9, unchanged=23, held=6)}),
        step("events", expect={"events": [
            {"type": "registered", "id": "j21"}] + [{"type": "registered"}] * 8 + [
            {"type": "removal_released", "id": "i4", "source": "etcd"}, {"type": "deregistered", "id": "i4", "source": "etcd"},
            {"type": "removal_released", "id": "i5"}, {"type": "deregistered", "id": "i5"},
            {"type": "removal_released", "id": "i6"}, {"type": "deregistered", "id": "i6"},
            {"type": "removal_released", "id": "i7"}, {"type": "deregistered", "id": "i7"},
            {"type": "removal_released", "id": "i8"}, {"type": "deregistered", "id": "i8"},
            {"type": "removal_released", "id": "i9"}, {"type": "deregistered", "id": "i9"},
            {"type": "self_preservation_exited", "at": 40}]}),
    ], config={"self_preservation_threshold": 0.8, "self_preservation_min_instances": 3})

    scenario(106, "source-held-relisted", "listing a held instance again ends its hold without removing it; held removals count as lost for lease expiries", [
        step("sync", at=0, source="etcd", service="api", entries=[a, b, c, inst("d")]),
        step("register", instance=inst("local", ttl_ms=100)),
        step("sync", at=10, source="etcd", service="api", entries=[a], expect={"report": report(removed=1, held=2, unchanged=1)}),
        step("get", id="c", expect={"held": True}),
        step("tick", at=200, expect={"events": []}),
        step("get", id="local", expect={"health": "healthy"}),
        step("sync", at=300, source="etcd", service="api", entries=[a, c, inst("d")], expect={"report": report(unchanged=3)}),
        step("events", expect={"events": [
            {"type": "registered", "id": "a"}, {"type": "registered", "id": "b"}, {"type": "registered", "id": "c"},
            {"type": "registered", "id": "d"}, {"type": "registered", "id": "local"},
            {"type": "deregistered", "id": "b", "at": 10},
            {"type": "self_preservation_entered", "at": 10},
            {"type": "removal_held", "id": "c"}, {"type": "removal_held", "id": "d"},
            {"type": "removal_released", "id": "c", "at": 300}, {"type": "removal_released", "id": "d", "at": 300}]}),
        step("get", id="c", expect={"held": False, "health": "healthy"}),
        # b's removal at 10 still counts in the population: (4 - 1) / 5 < 0.7.
        step("get", id="local", expect={"health": "healthy"}),
        step("tick", at=60010, expect={"events": []}),
        step("tick", at=60011, expect={"events": [
            {"type": "health_changed", "id": "local", "to": "unhealthy"},
            {"type": "self_preservation_exited", "at": 60011}]}),
    ], config={"self_preservation_threshold": 0.7, "self_preservation_min_instances": 3, "evict_after_ms": 0})

    scenario(107, "source-empty-sync-held", "an empty full sync is held until the source lists something again", [
        step("sync", at=0, source="etcd", service="api", entries=[a, b]),
        step("sync", at=10, source="etcd", service="api", entries=[], expect={"report": report(held=2)}),
        step("get", id="a", expect={"held": True, "health": "healthy"}),
        step("discover", service="api", expect={"ids": ["a", "b"]}),
        step("sync", at=11, source="etcd", service="api", entries=[], expect={"report": report(held=2)}),
        step("sync", at=20, source="etcd", service="api", entries=[b], expect={"report": report(unchanged=1, removed=1)}),
        step("events", expect={"events": [
            {"type": "registered", "id": "a"}, {"type": "registered", "id": "b"},
            {"type": "removal_held", "id": "a", "at": 10, "source": "etcd"}, {"type": "removal_held", "id": "b", "at": 10},
            {"type": "removal_released", "id": "b", "at": 20},
            {"type": "removal_released", "id": "a", "at": 20}, {"type": "deregistered", "id": "a", "at": 20}]}),
        step("sync", at=30, source="etcd", service="web", entries=[], expect={"report": report()}),
        step("discover", service="api", expect={"ids": ["b"]}),
    ])

    scenario(108, "source-empty-sync-trusted", "with trust_empty_sync an empty full sync removes the service's instances", [
        step("sync", at=0, source="etcd", service="api", entries=[a, b]),
        step("sync", at=10, source="etcd", service="api", entries=[], expect={"report": report(removed=2)}),
        step("discover", service="api", expect={"error": "unknown_service"}),
    ], config={"trust_empty_sync": True})

    scenario(109, "source-ejection-survives-resync", "outlier ejection of a source-owned instance survives a re-sync and an update", [
        step("sync", at=0, source="etcd", service="api", entries=[a, b, c]),
        step("outcome", id="a", success=False),
        step("outcome", id="a", success=False),
        step("get", id="a", expect={"health": "ejected"}),
        step("sync", at=10, source="etcd", service="api", entries=[a, b, c], expect={"report": report(unchanged=3)}),
        step("get", id="a", expect={"health": "ejected"}),
        step("sync", at=20, source="etcd", service="api", entries=[dict(a, weight=5), b, c], expect={"report": report(updated=1, unchanged=2)}),
        step("get", id="a", expect={"health": "ejected"}),
        step("picks", service="api", strategy="round_robin", count=4, expect={"ids": ["b", "c", "b", "c"]}),
        step("tick", at=30001, expect={"events": [{"type": "health_changed", "id": "a", "from": "ejected", "to": "healthy"}]}),
    ], config={"consecutive_failures": 2, "max_ejection_percent": 50})

    fx = FIXTURES_OUT
    scenario(110, "etcd-range-field-mapping", "an etcd range maps wire-form values and naming records, then the mirror watches from the next revision", [
        step("source_add", at=0, name="etcd", options=ETCD),
        step("source_request", name="etcd", expect={"request": {"method": "POST", "path": "/v3/kv/range", "stream": False,
             "body": json.dumps({"key": b64(PREFIX + "/"), "range_end": b64(PREFIX + "0")}, separators=(",", ":"))}}),
        step("etcd_range", payload=fx["range.json"], expect={"report": report(added=4)}),
        step("discover", service="api", all=True, expect={"ids": ["api-a", "api-b"], "health": ["healthy", "degraded"]}),
        step("get", id="api-a", expect={"source": "etcd"}),
        step("discover", service="grpc-echo", expect={"ids": ["echo-1", "echo-2"]}),
        step("pick", service="api", strategy="first_available", zone="eu-1", tags=["v1"], meta={"rack": "r1"}, expect={"id": "api-a"}),
        step("pick", service="grpc-echo", strategy="first_available", meta={"version": "1.4"}, expect={"id": "echo-1"}),
        step("source_request", name="etcd", expect={"request": {"method": "POST", "path": "/v3/watch", "stream": True,
             "body": json.dumps({"create_request": {"key": b64(PREFIX + "/"), "range_end": b64(PREFIX + "0"), "start_revision": "10", "progress_notify": True}}, separators=(",", ":"))}}),
        step("services", expect={"services": ["api", "grpc-echo"]}),
        step("events", expect={"events": [
            {"type": "registered", "id": "api-a", "source": "etcd"}, {"type": "registered", "id": "api-b", "source": "etcd"},
            {"type": "registered", "id": "echo-1", "service": "grpc-echo"}, {"type": "registered", "id": "echo-2"}]}),
    ])

    scenario(111, "etcd-watch-batches", "each watch message is one batch: PUT without type, DELETE without value", [
        step("source_add", at=0, name="etcd", options=ETCD),
        step("etcd_range", payload=fx["range.json"]),
        step("etcd_watch", at=5, payload=fx["watch-created.json"], expect={"report": report()}),
        step("etcd_watch", payload=fx["watch-put.json"], expect={"report": report(added=1)}),
        step("etcd_watch", payload=fx["watch-update.json"], expect={"report": report(updated=1)}),
        step("get", id="api-a", expect={"health": "draining"}),
        step("etcd_watch", payload=fx["watch-delete.json"], expect={"report": report(removed=1)}),
        step("etcd_watch", payload=fx["watch-delete.json"], expect={"report": report()}),
        step("etcd_watch", payload=fx["watch-batch.json"], expect={"report": report(added=1, removed=1)}),
        step("etcd_watch", payload=fx["watch-progress.json"], expect={"report": report()}),
        step("discover", service="api", all=True, expect={"ids": ["api-a", "api-d"]}),
        step("source_request", name="etcd", expect={"request": {"path": "/v3/watch",
             "body": json.dumps({"create_request": {"key": b64(PREFIX + "/"), "range_end": b64(PREFIX + "0"), "start_revision": "21", "progress_notify": True}}, separators=(",", ":"))}}),
    ])

    scenario(112, "etcd-compaction-resync", "a compacted or canceled watch resets the mirror: read again, reconcile, watch on; a failed request or stream leaves it as it was", [
        step("source_add", at=0, name="etcd", options=ETCD),
        step("etcd_range", payload=fx["range.json"]),
        step("etcd_watch", payload=fx["watch-compacted.json"], expect={"report": report(resync=True)}),
        step("source_request", name="etcd", expect={"request": {"path": "/v3/kv/range", "stream": False}}),
        step("etcd_range", at=10, payload=range_response(31, [fx["range.json"]["kvs"][0], fx["range.json"]["kvs"][2], kv("api", "api-z", inst("api-z"), 31)]),
             expect={"report": report(added=1, unchanged=2, removed=2)}),
        step("source_request", name="etcd", expect={"request": {"path": "/v3/watch",
             "body": json.dumps({"create_request": {"key": b64(PREFIX + "/"), "range_end": b64(PREFIX + "0"), "start_revision": "32", "progress_notify": True}}, separators=(",", ":"))}}),
        step("etcd_watch", payload=fx["watch-error.json"], expect={"error": "invalid_argument"}),
        step("source_feed", name="etcd", body="upstream connect error", status=503, expect={"error": "invalid_argument"}),
        step("source_request", name="etcd", expect={"request": {"path": "/v3/watch"}}),
        step("discover", service="api", expect={"ids": ["api-a", "api-z"]}),
    ])

    scenario(113, "etcd-malformed-payloads", "malformed payloads change nothing; one bad record is reported and the rest applies", [
        step("source_add", at=0, name="etcd", options=ETCD),
        step("source_add", name="etcd", options=ETCD, expect={"error": "conflict"}),
        step("source_add", name="x", options={"kind": "zookeeper"}, expect={"error": "invalid_argument"}),
        step("source_add", name="y", options={"kind": "etcd", "prefx": "/p"}, expect={"error": "invalid_argument"}),
        step("source_request", name="nope", expect={"error": "invalid_argument"}),
        step("source_feed", name="etcd", body="{\"header\":", expect={"error": "invalid_argument"}),
        step("etcd_range", payload=[1, 2], expect={"error": "invalid_argument"}),
        step("etcd_range", payload={"header": header(3), "kvs": 5}, expect={"error": "invalid_argument"}),
        step("etcd_range", payload={"kvs": []}, expect={"error": "invalid_argument"}),
        step("etcd_range", payload={"header": {"revision": "x"}}, expect={"error": "invalid_argument"}),
        step("source_request", name="etcd", expect={"request": {"path": "/v3/kv/range"}}),
        step("etcd_range", payload=range_response(5, [kv("api", "api-a", API_A, 4)])),
        step("etcd_watch", payload={"result": 7}, expect={"error": "invalid_argument"}),
        step("etcd_watch", payload={"result": {"header": header(14), "events": {}}}, expect={"error": "invalid_argument"}),
        step("etcd_watch", payload=fx["watch-malformed-records.json"], expect={"report": {"added": 1, "rejected": [
            {"at": f"{PREFIX}/api/api-f", "code": "invalid_argument", "message": "invalid argument `value`: not valid JSON: expected value at line 1 column 1"},
            {"at": f"{PREFIX}/lonely", "code": "invalid_argument", "message": "invalid argument `key`: expected <prefix>/<service>/<id>"},
            {"at": f"{PREFIX}/api/api-g", "code": "invalid_argument", "message": "invalid argument `port`: must be in 1..=65535"},
            {"at": "events[4]", "code": "invalid_argument", "message": "invalid argument `type`: `BOGUS` is not PUT or DELETE"}]}}),
        step("etcd_range", payload=range_response(15, [kv("api", "api-a", None, 15, raw="{oops"), kv("api", "api-e", inst("api-e", address="10.0.0.5"), 14)]),
             expect={"report": {"unchanged": 1, "removed": 0, "rejected": [{"at": f"{PREFIX}/api/api-a", "code": "invalid_argument",
                                                                             "message": "invalid argument `value`: not valid JSON: key must be a string at line 1 column 2"}]}}),
        step("etcd_range", payload=range_response(16, [kv("api", "api-a", inst("api-a", service="web"), 16)]),
             expect={"report": {"removed": 1, "rejected": [{"at": f"{PREFIX}/api/api-a", "code": "invalid_argument",
                                                            "message": "invalid argument `service`: differs from the key's `api`"}]}}),
        step("discover", service="api", expect={"ids": ["api-a"]}),
    ], config={"trust_empty_sync": True})

    scenario(114, "etcd-snapshot-continuation", "a restored registry resumes watching where the mirror stopped", [
        step("source_add", at=0, name="etcd", options=ETCD),
        step("etcd_range", payload=fx["range.json"]),
        step("etcd_watch", payload=fx["watch-put.json"]),
        step("snapshot_restore"),
        step("get", id="api-c", expect={"source": "etcd", "health": "healthy"}),
        step("source_request", name="etcd", expect={"request": {"path": "/v3/watch",
             "body": json.dumps({"create_request": {"key": b64(PREFIX + "/"), "range_end": b64(PREFIX + "0"), "start_revision": "11", "progress_notify": True}}, separators=(",", ":"))}}),
        step("etcd_watch", at=10, payload=fx["watch-delete.json"], expect={"report": report(removed=1)}),
        step("snapshot_restore"),
        step("heartbeat", id="api-a", expect={"error": "conflict"}),
        step("discover", service="api", expect={"ids": ["api-a", "api-c"]}),
        step("etcd_watch", payload=fx["watch-compacted.json"], expect={"report": report(resync=True)}),
        step("snapshot_restore"),
        step("source_request", name="etcd", expect={"request": {"path": "/v3/kv/range"}}),
    ])

    scenario(115, "source-incremental", "source_put and source_delete apply watch events one at a time", [
        step("source_put", at=0, source="k8s/default", entry=a, expect={"report": report(added=1)}),
        step("source_put", source="k8s/default", entry=dict(a, address="10.9.9.9"), expect={"report": report(updated=1)}),
        step("source_put", source="k8s/default", entry={"id": "b", "service": "api", "address": "h", "port": 0}, expect={"error": "invalid_argument"}),
        step("source_put", source="k8s/default", entry=dict(a, status="sleepy"), expect={"error": "invalid_argument"}),
        step("source_put", source="k8s/default", entry=dict(a, service="web"), expect={"error": "conflict"}),
        step("source_put", source="", entry=a, expect={"error": "invalid_argument"}),
        step("source_delete", source="k8s/default", id="a", expect={"report": report(removed=1)}),
        step("source_delete", source="k8s/default", id="a", expect={"report": report()}),
        step("events", expect={"events": [
            {"type": "registered", "id": "a", "source": "k8s/default"},
            {"type": "updated", "id": "a", "source": "k8s/default"},
            {"type": "deregistered", "id": "a", "source": "k8s/default"}]}),
    ])

    scenario(116, "source-sync-rejects", "bad entries of a full sync are rejected by position and the rest applies", [
        step("sync", at=0, source="etcd", service="api", entries=[a, dict(b, service="web"), a, {"id": "c", "service": "api", "address": "h"}, 7, dict(c, color="red"), inst("d")],
             expect={"report": report(added=2, rejected=[
                 {"at": "1", "code": "invalid_argument", "message": "invalid argument `service`: `web` is not `api`"},
                 {"at": "2", "code": "invalid_argument", "message": "invalid argument `id`: `a` is listed twice"},
                 {"at": "3", "code": "invalid_argument", "message": "invalid argument `port`: is required"},
                 {"at": "4", "code": "invalid_argument", "message": "invalid argument `entry`: must be a JSON object"},
                 {"at": "5", "code": "invalid_argument", "message": "invalid argument `color`: unknown instance field"}])}),
        step("sync", source="etcd", service="api", entries={"a": 1}, expect={"error": "invalid_argument"}),
        step("sync", source="etcd", service="", entries=[], expect={"error": "invalid_argument"}),
        step("discover", service="api", expect={"ids": ["a", "d"]}),
    ])

    scenario(117, "source-snapshot-holds", "snapshots keep ownership, source status and held removals", [
        step("sync", at=0, source="consul", service="api", entries=[dict(a, status="warning"), dict(b, status="maintenance")]),
        step("sync", at=1, source="consul", service="api", entries=[], expect={"report": report(held=2)}),
        step("snapshot_restore"),
        step("get", id="a", expect={"health": "degraded", "source": "consul", "held": True}),
        step("get", id="b", expect={"health": "draining", "held": True}),
        step("sync", at=2, source="consul", service="api", entries=[dict(a, status="warning")], expect={"report": report(unchanged=1, removed=1)}),
        step("snapshot_restore"),
        step("get", id="a", expect={"held": False}),
        step("discover", service="api", all=True, expect={"ids": ["a"], "health": ["degraded"]}),
    ])


def write_window_scenarios():
    """Self-preservation over separate removals: the window (SPEC §10.3)."""
    ten = [inst(f"i{n}", address=f"10.0.0.{n}") for n in range(10)]
    half = {"self_preservation_threshold": 0.5, "self_preservation_min_instances": 3}
    deletes = [step("source_delete", at=1 + n, source="etcd", id=f"i{n}", expect={"report": report(removed=1)}) for n in range(5)]

    scenario(139, "source-deletes-one-by-one-held", "removals arriving one call at a time are judged together: the sixth of ten is held, the same call does not release it, and it goes when the window passes", [
        step("sync", at=0, source="etcd", service="api", entries=ten, expect={"report": report(added=10)}),
        step("events", expect={"events": [{"type": "registered"}] * 10}),
        *deletes,
        # Population 10 (five removals in the window), live 5: (5 - 1) / 10 < 0.5.
        step("source_delete", at=6, source="etcd", id="i5", expect={"report": report(held=1)}),
        step("get", id="i5", expect={"health": "healthy", "held": True}),
        step("events", expect={"events": [
            {"type": "deregistered", "id": "i0", "at": 1}, {"type": "deregistered", "id": "i1", "at": 2},
            {"type": "deregistered", "id": "i2", "at": 3}, {"type": "deregistered", "id": "i3", "at": 4},
            {"type": "deregistered", "id": "i4", "at": 5},
            {"type": "self_preservation_entered", "at": 6},
            {"type": "removal_held", "id": "i5", "at": 6, "source": "etcd"}]}),
        step("source_delete", at=7, source="etcd", id="i6", expect={"report": report(held=1)}),
        step("snapshot_restore"),
        step("discover", service="api", expect={"ids": ["i5", "i6", "i7", "i8", "i9"]}),
        # Two held, counted as lost: live - held = 3 of population 5 + 5.
        # The removal at 1 still counts at 60001 and leaves after it.
        step("tick", at=60001, expect={"events": []}),
        # At 60004 the removals at 1, 2 and 3 have left: 3 / 7 < 0.5.
        step("tick", at=60004, expect={"events": []}),
        # At 60005 the one at 4 too: 3 / 6 = 0.5, both go in id order.
        step("tick", at=60005, expect={"events": [
            {"type": "removal_released", "id": "i5", "at": 60005, "source": "etcd"},
            {"type": "deregistered", "id": "i5", "at": 60005, "source": "etcd"},
            {"type": "removal_released", "id": "i6"}, {"type": "deregistered", "id": "i6"},
            {"type": "self_preservation_exited", "at": 60005}]}),
        step("discover", service="api", expect={"ids": ["i7", "i8", "i9"]}),
    ], config=half)

    scenario(140, "etcd-deletes-one-message-each-held", "leases expiring together reach an etcd mirror as separate watch messages, one delete each: the sixth of ten is held", [
        step("source_add", at=0, name="etcd", options=ETCD),
        step("etcd_range", payload=range_response(10, [kv("api", f"i{n}", ten[n], n + 1) for n in range(10)]), expect={"report": report(added=10)}),
        step("etcd_watch", payload=watch(10, created=True), expect={"report": report()}),
        *[step("etcd_watch", at=1000 + n, payload=watch(11 + n, [delete("api", f"i{n}", 11 + n)]), expect={"report": report(removed=1)}) for n in range(5)],
        step("etcd_watch", at=1005, payload=watch(16, [delete("api", "i5", 16)]), expect={"report": report(held=1)}),
        step("get", id="i5", expect={"health": "healthy", "held": True}),
        step("discover", service="api", expect={"ids": ["i5", "i6", "i7", "i8", "i9"]}),
        step("events", expect={"events": [{"type": "registered"}] * 10 + [{"type": "deregistered", "source": "etcd"}] * 5 + [
            {"type": "self_preservation_entered", "at": 1005},
            {"type": "removal_held", "id": "i5", "source": "etcd"}]}),
    ], config=half)

    scenario(141, "source-deletes-held-until-instances-return", "a hold over separate removals is released once enough removed instances come back", [
        step("sync", at=0, source="etcd", service="api", entries=ten, expect={"report": report(added=10)}),
        *deletes,
        step("source_delete", at=6, source="etcd", id="i5", expect={"report": report(held=1)}),
        # Back: population 6 + 5, (6 - 1) / 11 < 0.5.
        step("source_put", at=10, source="etcd", entry=ten[0], expect={"report": report(added=1)}),
        step("get", id="i5", expect={"held": True}),
        # Population 7 + 5, (7 - 1) / 12 = 0.5.
        step("source_put", at=11, source="etcd", entry=ten[1], expect={"report": report(added=1)}),
        step("events", expect={"events": [{"type": "registered"}] * 10 + [{"type": "deregistered"}] * 5 + [
            {"type": "self_preservation_entered", "at": 6},
            {"type": "removal_held", "id": "i5"},
            {"type": "registered", "id": "i0", "at": 10},
            {"type": "registered", "id": "i1", "at": 11},
            {"type": "removal_released", "id": "i5", "at": 11, "source": "etcd"},
            {"type": "deregistered", "id": "i5", "at": 11, "source": "etcd"},
            {"type": "self_preservation_exited", "at": 11}]}),
        step("discover", service="api", expect={"ids": ["i0", "i1", "i6", "i7", "i8", "i9"]}),
    ], config=half)

    scenario(142, "source-window-zero", "with self_preservation_window_ms 0 only removals at the same clock count together", [
        step("sync", at=0, source="etcd", service="api", entries=ten, expect={"report": report(added=10)}),
        *[step("source_delete", at=1 + n, source="etcd", id=f"i{n}", expect={"report": report(removed=1)}) for n in range(8)],
        step("sync", at=20, source="etcd", service="api", entries=ten[8:] + ten[:6], expect={"report": report(added=6, unchanged=2)}),
        # Calls at the same clock count together: population 8, the fifth
        # would leave (4 - 1) / 8.
        *[step("source_delete", at=30, source="etcd", id=f"i{n}", expect={"report": report(removed=1)}) for n in range(3)],
        step("source_delete", at=30, source="etcd", id="i3", expect={"report": report(removed=1)}),
        step("source_delete", at=30, source="etcd", id="i4", expect={"report": report(held=1)}),
        step("tick", at=31, expect={"events": [
            {"type": "removal_released", "id": "i4", "at": 31}, {"type": "deregistered", "id": "i4", "at": 31},
            {"type": "self_preservation_exited", "at": 31}]}),
    ], config=dict(half, self_preservation_window_ms=0))


def store_fixture(path):
    with open(os.path.join(ROOT, "tests", "fixtures", path)) as f:
        text = f.read()
    return text if path.endswith(".jsonl") else json.loads(text)


def write_store_scenarios():
    consul = {"kind": "consul", "service": "redis"}
    scenario(118, "consul-mirror", "a Consul mirror reads the health answer, then blocks on its index; an empty answer is held", [
        step("source_add", at=0, name="consul", options=consul),
        step("source_request", name="consul", expect={"request": {"method": "GET", "path": "/v1/health/service/redis", "stream": False}}),
        step("consul_health", payload=store_fixture("consul/health-service-single.json"), index="42", expect={"report": report(added=1)}),
        step("source_request", name="consul", expect={"request": {"path": "/v1/health/service/redis?index=42&wait=5m"}}),
        step("consul_health", at=10, payload=store_fixture("consul/health-service-single.json"), index="43", expect={"report": report(unchanged=1)}),
        step("consul_health", payload=[], index="44", expect={"report": report(held=1)}),
        step("snapshot_restore"),
        step("source_request", name="consul", expect={"request": {"path": "/v1/health/service/redis?index=44&wait=5m"}}),
        step("consul_health", payload=store_fixture("consul/health-service-single.json"), index="45", status=500, expect={"error": "invalid_argument"}),
        step("services", expect={"services": ["redis"]}),
    ])
    k8s = {"kind": "k8s", "namespace": "default", "service": "api", "port": "http"}
    scenario(119, "k8s-mirror", "a Kubernetes mirror lists the slices, watches on, and lists again after 410", [
        step("source_add", at=0, name="k8s", options=k8s),
        step("source_request", name="k8s", expect={"request": {"method": "GET", "stream": False}}),
        step("k8s_slices", payload=store_fixture("k8s/endpointslice-list.json")),
        step("source_request", name="k8s", expect={"request": {"stream": True}}),
        step("k8s_slices", at=10, payload=store_fixture("k8s/watch-events.jsonl")),
        step("snapshot_restore"),
        step("k8s_slices", payload=store_fixture("k8s/watch-error-410.json"), expect={"report": {"resync": True}}),
        step("source_request", name="k8s", expect={"request": {"stream": False}}),
    ])


def write_report_scenarios():
    a, b = inst("a"), inst("b", address="10.0.0.2")
    k8s = {"kind": "k8s", "namespace": "default", "service": "api", "port": "http"}
    listed = store_fixture("k8s/endpointslice-list.json")
    scenario(143, "source-report-changed", "a report says whether anything changed: a held-only or resync-only report did, re-listing the same state did not", [
        step("sync", at=0, source="etcd", service="api", entries=[a, b], expect={"report": report(added=2, changed=True)}),
        step("sync", at=1, source="etcd", service="api", entries=[b, a], expect={"report": report(unchanged=2, changed=False)}),
        step("source_put", at=2, source="etcd", entry=a, expect={"report": report(unchanged=1, changed=False)}),
        step("source_delete", at=3, source="etcd", id="never-seen", expect={"report": report(changed=False)}),
        step("sync", at=4, source="etcd", service="api", entries=[a, b, inst("c", service="web")], expect={"report": report(
            unchanged=2, rejected=[{"at": "2", "code": "invalid_argument", "message": "invalid argument `service`: `web` is not `api`"}], changed=False)}),
        step("sync", at=5, source="etcd", service="api", entries=[], expect={"report": report(held=2, changed=True)}),
        step("sync", at=6, source="etcd", service="api", entries=[], expect={"report": report(held=2, changed=True)}),
        step("source_add", name="k8s", options=k8s),
        step("k8s_slices", at=7, payload=listed),
        step("k8s_slices", at=8, payload=store_fixture("k8s/watch-error-410.json"), expect={"report": report(
            resync=True, rejected=[{"at": "status", "code": "invalid_argument", "message": "Kubernetes Status 410 Expired: too old resource version: 10245 (12000)"}], changed=True)}),
        step("k8s_slices", at=9, payload=listed, expect={"report": report(unchanged=5, changed=False)}),
    ])


if __name__ == "__main__":
    write_fixtures()
    write_scenarios()
    write_store_scenarios()
    write_window_scenarios()
    write_report_scenarios()
