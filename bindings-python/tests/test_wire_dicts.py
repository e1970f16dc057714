"""`to_dict()` of instances, views, events and the configuration: a wide
sample (every field set and none, source-owned instances with their status,
held removals, every event type, non-default and default configurations)
held to a checked-in expectation, value for value and type for type
(`1` and `1.0` differ, so do an absent key and `None`). The expectation
was first written by the build that went through serde_json, whose
objects kept their keys sorted: the members and values are the same, the
order is now the wire form's (checked below).

Run this file as a script to write the expectation again.
"""
from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import waypost
from waypost import EventType

EXPECTED = pathlib.Path(__file__).with_name("data") / "wire_dicts.json"


def _full(reg: waypost.Registry, i: int, now: int) -> waypost.Instance:
    return reg.register(
        f"full-{i}", "api", f"10.0.0.{i}", 8000 + i, weight=3 + i,
        tags=["blue", "x\"y\\z", "é😀", "blue"], meta={"k": "v", "q": "a\"b\\c/d"},
        zone="eu-1", priority=2, ttl_ms=5_000, check_interval_ms=1_000, now=now,
    )


def sample() -> dict[str, Any]:
    """Every `to_dict()` the sample makes, by a name saying what it shows."""
    out: dict[str, Any] = {}
    reg = waypost.Registry(
        ttl_ms=10_000, evict_after_ms=1_000, seed=3, slow_start_ms=3_000, panic_threshold=0.6,
        self_preservation_threshold=0.35, self_preservation_min_instances=3,
        consecutive_failures=2, base_ejection_ms=700, check_rise=2, check_fall=1,
    )
    out["config.set"] = reg.config
    out["config.default"] = waypost.Registry(seed=0).config
    out["config.flags"] = waypost.Registry(seed=2**64 - 1, trust_empty_sync=True, ttl_ms=86_400_000).config

    bare = reg.register("bare", "web", "h", 1, now=0)
    out["instance.bare"] = bare.to_dict()
    out["view.bare"] = reg.get("bare", now=0).to_dict()
    full = _full(reg, 1, 0)
    _full(reg, 2, 0)
    reg.register("plain", "api", "10.0.0.9", 80, weight=10_000, now=0)
    out["instance.full"] = full.to_dict()
    out["view.full.slow_start"] = reg.get("full-1", now=1_000).to_dict()

    reg.report_check("full-1", "fail", now=1_100)
    reg.report_check("full-2", "warn", now=1_100)
    out["view.check_failed"] = reg.get("full-1", now=1_100).to_dict()
    out["view.check_warned"] = reg.get("full-2", now=1_100).to_dict()
    reg.begin("plain", now=1_200)
    reg.report_outcome("plain", False, now=1_200)
    reg.report_outcome("plain", False, now=1_200)
    out["view.ejected_inflight"] = reg.get("plain", now=1_200).to_dict()
    reg.drain("bare", now=1_300)
    out["view.draining"] = reg.get("bare", now=1_300).to_dict()
    reg.register("bare", "web", "h2", 2, zone="", now=1_400)
    out["view.updated"] = reg.get("bare", now=1_400).to_dict()
    reg.deregister("bare", now=1_500)
    reg.tick(now=12_000)
    reg.tick(now=13_500)

    reg.sync("etcd", "store", [
        {"id": "s-1", "service": "store", "address": "10.1.0.1", "port": 9000, "status": "passing"},
        {"id": "s-2", "service": "store", "address": "10.1.0.2", "port": 9000, "status": "warning",
         "tags": ["t"], "meta": {"m": "1"}, "zone": "us", "priority": 1, "check_interval_ms": 50},
        {"id": "s-3", "service": "store", "address": "10.1.0.3", "port": 9000, "status": "critical"},
        {"id": "s-4", "service": "store", "address": "10.1.0.4", "port": 9000, "status": "maintenance"},
    ], now=14_000)
    for i in range(1, 5):
        out[f"view.source.s-{i}"] = reg.get(f"s-{i}", now=14_000).to_dict()
    out["instance.source"] = reg.get("s-2", now=14_000).instance.to_dict()
    reg.sync("etcd", "store", [], now=15_000)
    out["view.source.held"] = reg.get("s-1", now=15_000).to_dict()
    reg.sync("etcd", "store", [
        {"id": "s-1", "service": "store", "address": "10.1.0.1", "port": 9000},
    ], now=16_000)
    reg.tick(now=40_000)

    events = reg.events_since(0)
    out["events"] = [e.to_dict() for e in events]
    out["tick"] = [e.to_dict() for e in reg.tick(now=60_000)]
    return out


def _typed(value: Any) -> Any:
    """`value` with each scalar paired with its type, so `1 != 1.0`."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def test_dicts_match_the_expectation_value_and_type() -> None:
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    got = sample()
    assert list(got) == list(expected)
    for name in got:
        assert _typed(got[name]) == _typed(expected[name]), name


def test_the_sample_covers_every_event_type_and_optional_field() -> None:
    got = sample()
    kinds = {e["type"] for e in got["events"] + got["tick"]}
    assert kinds == {t.value for t in EventType}
    assert any("source" in e for e in got["events"]) and any("from" in e for e in got["events"])
    full, bare = got["instance.full"], got["instance.bare"]
    assert {"zone", "ttl_ms", "check_interval_ms"} <= set(full)
    assert not {"zone", "ttl_ms", "check_interval_ms"} & set(bare)
    views = [v for k, v in got.items() if k.startswith("view.")]
    assert any(v["ejected_until"] is not None for v in views) and any(v["ejected_until"] is None for v in views)
    assert any(v["last_check"] is not None for v in views) and any(v["last_check"] is None for v in views)
    assert {v.get("status") for v in views} == {None, "passing", "warning", "critical", "maintenance"}
    assert any(v.get("held") is True for v in views)
    assert any("lease_deadline" not in v for v in views) and any("lease_deadline" in v for v in views)
    assert any(isinstance(v["effective_weight"], float) and not v["effective_weight"].is_integer() for v in views)


def test_a_view_is_its_instance_then_its_status() -> None:
    # The order every binding's wire form has: the SPEC §2 fields, the
    # owning source, then the status.
    got = sample()
    for name in ("view.full.slow_start", "view.source.s-2"):
        view = got[name]
        inst = {k: v for k, v in view.items() if k in got["instance.full"] or k == "source"}
        assert list(view)[: len(inst)] == list(inst)
        assert list(view)[len(inst)] == "health"


if __name__ == "__main__":
    EXPECTED.parent.mkdir(exist_ok=True)
    EXPECTED.write_text(json.dumps(sample(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    sys.stdout.write(f"wrote {EXPECTED}\n")
