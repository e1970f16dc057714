"""The sources API (SPEC §10) through Python: conversions, reports, errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import waypost

REPORT_KEYS = {"added", "updated", "removed", "unchanged", "held", "rejected", "resync", "changed"}


def entry(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"api-{i}", "service": "api", "address": f"10.0.0.{i}", "port": 8080, **extra}


def test_sync_reconciles_and_reports() -> None:
    reg = waypost.Registry(seed=1)
    r = reg.sync("etcd", "api", [entry(1), entry(2, status="warning")], now=1)
    assert set(r) == REPORT_KEYS and (r["added"], r["rejected"], r["resync"], r["changed"]) == (2, [], False, True)
    assert reg.get("api-2").health is waypost.Health.DEGRADED
    r = reg.sync("etcd", "api", (entry(1), entry(2, status="warning")), now=2)
    assert (r["added"], r["updated"], r["unchanged"], r["changed"]) == (0, 0, 2, False)
    r = reg.sync("etcd", "api", [entry(1, weight=3)], now=3)
    assert (r["updated"], r["removed"]) == (1, 1)
    assert [i.id for i in reg.discover("api", now=3)] == ["api-1"]


def test_one_bad_entry_is_rejected_and_the_rest_applies() -> None:
    reg = waypost.Registry(seed=1)
    r = reg.sync("etcd", "api", [entry(1), {"id": "x", "service": "api", "port": 1}], now=1)
    assert r["added"] == 1 and len(r["rejected"]) == 1
    assert set(r["rejected"][0]) == {"at", "code", "message"}
    assert r["rejected"][0]["code"] == "invalid_argument"


def test_incremental_put_and_delete() -> None:
    reg = waypost.Registry(seed=1)
    assert reg.source_put("etcd", entry(1), now=1)["added"] == 1
    assert reg.source_put("etcd", entry(1, status="maintenance"), now=2)["updated"] == 1
    assert reg.get("api-1").health is waypost.Health.DRAINING
    assert reg.source_delete("etcd", "api-1", now=3)["removed"] == 1
    assert reg.source_delete("etcd", "api-1", now=4)["removed"] == 0  # a repeated delete is a no-op


def test_ownership_conflicts() -> None:
    reg = waypost.Registry(seed=1)
    reg.register("local-1", "api", "10.0.0.9", 80, now=0)
    reg.source_put("etcd", entry(1), now=1)
    with pytest.raises(waypost.ConflictError):
        reg.deregister("api-1", now=2)
    with pytest.raises(waypost.ConflictError):
        reg.source_put("consul", entry(1), now=2)
    r = reg.sync("consul", "api", [entry(1), entry(2)], now=3)
    assert r["added"] == 1 and [x["code"] for x in r["rejected"]] == ["conflict"]


def test_mirror_declaration_and_requests() -> None:
    reg = waypost.Registry(seed=1)
    with pytest.raises(waypost.InvalidArgumentError):
        reg.source_request("etcd")
    with pytest.raises(waypost.InvalidArgumentError):
        reg.source_add("x", {"kind": "nope"})
    with pytest.raises(waypost.InvalidArgumentError):
        reg.source_feed("etcd", "{}", now=1)


def test_a_grpc_range_answer_is_fed_as_bytes() -> None:
    fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "etcd-grpc"
    by_grpc = waypost.Registry(seed=1)
    by_grpc.source_add("etcd", {"kind": "etcd", "grpc": True})
    req = by_grpc.source_request("etcd")
    assert req["path"] == "/etcdserverpb.KV/Range" and req["grpc"] is True and req["stream"] is False
    report = by_grpc.source_feed("etcd", (fixtures / "range.grpc").read_bytes(), now=1)
    assert report["added"] == 4 and report["rejected"] == []
    by_json = waypost.Registry(seed=1)
    by_json.source_add("etcd", {"kind": "etcd"})
    assert "grpc" not in by_json.source_request("etcd")
    assert by_json.source_feed("etcd", (fixtures / "range-gateway.json").read_text(), now=1) == report
    assert by_grpc.get("api-a").instance.port == by_json.get("api-a").instance.port == 8080
    # The watch that follows is the gateway's stream.
    assert by_grpc.source_request("etcd") == by_json.source_request("etcd")
    with pytest.raises(waypost.InvalidArgumentError):
        by_grpc.source_feed("etcd", b"\x00\x00\x00\x00\x09\x0a", now=2)  # cut short


def test_wrong_types_are_type_errors() -> None:
    reg = waypost.Registry(seed=1)
    with pytest.raises(waypost.InvalidArgumentError):  # JSON, but not an array: the core says so
        reg.sync("etcd", "api", "not a list", now=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        reg.sync("etcd", "api", [object()], now=1)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        reg.source_put("etcd", ["x"], now=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        reg.source_feed("etcd", 42, now=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        reg.source_add(7, {"kind": "etcd"})  # type: ignore[arg-type]
    with pytest.raises(waypost.InvalidArgumentError):
        reg.source_feed("etcd", b"\xff", now=1)
    with pytest.raises(waypost.InvalidArgumentError):
        reg.source_feed("etcd", "{}", now=1, status=70_000)
