"""Errors (SPEC §8): one class per code, the matching built-ins, TypeError
for wrong Python types, and a registry left unchanged and usable after
every kind of bad call."""
from __future__ import annotations

import json
from typing import Any, Callable

import pytest

import waypost

CODES = {
    waypost.InvalidArgumentError: "invalid_argument",
    waypost.NotFoundError: "not_found",
    waypost.UnknownServiceError: "unknown_service",
    waypost.NoEligibleInstanceError: "no_eligible_instance",
    waypost.ConflictError: "conflict",
    waypost.InvalidSnapshotError: "invalid_snapshot",
    waypost.CompactedError: "compacted",
}


def test_classes_and_codes() -> None:
    for cls, code in CODES.items():
        assert issubclass(cls, waypost.Error) and cls.code == code
    assert issubclass(waypost.NotFoundError, KeyError)
    assert issubclass(waypost.InvalidArgumentError, ValueError)
    assert not issubclass(waypost.UnknownServiceError, KeyError)


def registry() -> waypost.Registry:
    reg = waypost.Registry(ttl_ms=10_000, seed=1, event_retention=4)
    reg.register("a", "api", "10.0.0.1", 80, now=0)
    reg.register("b", "api", "10.0.0.2", 80, tags=["t"], now=0)
    return reg


def state(reg: waypost.Registry) -> Any:
    """Everything observable except the counters of failed picks."""
    doc = json.loads(reg.snapshot())
    doc.pop("metrics", None)
    for s in doc.get("services", []):
        if isinstance(s, dict):
            s.pop("metrics", None)
    return doc


Call = Callable[[waypost.Registry], object]

BAD_CALLS: list[tuple[str, Call, type[BaseException], str]] = [
    ("heartbeat unknown", lambda r: r.heartbeat("zz", now=0), waypost.NotFoundError, "not_found"),
    ("deregister unknown", lambda r: r.deregister("zz", now=0), waypost.NotFoundError, "not_found"),
    ("get unknown", lambda r: r.get("zz", now=0), waypost.NotFoundError, "not_found"),
    ("outcome unknown", lambda r: r.report_outcome("zz", True, now=0), waypost.NotFoundError, "not_found"),
    ("pick unknown service", lambda r: r.pick("nope", now=0), waypost.UnknownServiceError, "unknown_service"),
    ("discover unknown service", lambda r: r.discover("nope", now=0), waypost.UnknownServiceError, "unknown_service"),
    ("no eligible", lambda r: r.pick("api", tags=["x"], now=0), waypost.NoEligibleInstanceError, "no_eligible_instance"),
    ("conflict", lambda r: r.register("a", "web", "h", 1, now=0), waypost.ConflictError, "conflict"),
    ("bad snapshot", lambda r: waypost.Registry.restore("{}"), waypost.InvalidSnapshotError, "invalid_snapshot"),
    ("not json", lambda r: waypost.Registry.restore("nope"), waypost.InvalidSnapshotError, "invalid_snapshot"),
    ("bad port", lambda r: r.register("c", "api", "h", 0, now=0), waypost.InvalidArgumentError, "invalid_argument"),
    ("port too big", lambda r: r.register("c", "api", "h", 70000, now=0), waypost.InvalidArgumentError, "invalid_argument"),
    ("weight", lambda r: r.register("c", "api", "h", 1, weight=0, now=0), waypost.InvalidArgumentError, "invalid_argument"),
    ("empty id", lambda r: r.register("", "api", "h", 1, now=0), waypost.InvalidArgumentError, "invalid_argument"),
    ("control char", lambda r: r.register("a\n", "api", "h", 1, now=0), waypost.InvalidArgumentError, "invalid_argument"),
    ("negative now", lambda r: r.heartbeat("a", now=-1), waypost.InvalidArgumentError, "invalid_argument"),
    ("huge now", lambda r: r.heartbeat("a", now=2**70), waypost.InvalidArgumentError, "invalid_argument"),
    ("strategy", lambda r: r.pick("api", "fastest", now=0), waypost.InvalidArgumentError, "invalid_argument"),
    ("hash without key", lambda r: r.pick("api", "consistent_hash", now=0), waypost.InvalidArgumentError, "invalid_argument"),
    ("check status", lambda r: r.report_check("a", "maybe", now=0), waypost.InvalidArgumentError, "invalid_argument"),
    ("spec unknown field", lambda r: r.register_spec({"id": "c", "service": "api", "address": "h", "port": 1, "x": 1}, now=0),
     waypost.InvalidArgumentError, "invalid_argument"),
    ("spec wrong type", lambda r: r.register_spec({"id": "c", "service": "api", "address": "h", "port": "80"}, now=0),
     waypost.InvalidArgumentError, "invalid_argument"),
    ("spec missing", lambda r: r.register_spec({"id": "c"}, now=0), waypost.InvalidArgumentError, "invalid_argument"),
    ("compacted", lambda r: r.events_since(0), waypost.CompactedError, "compacted"),
    ("type id", lambda r: r.heartbeat(1, now=0), TypeError, ""),  # type: ignore[arg-type]
    ("type now", lambda r: r.heartbeat("a", now="0"), TypeError, ""),  # type: ignore[arg-type]
    ("type float now", lambda r: r.heartbeat("a", now=1.5), TypeError, ""),  # type: ignore[arg-type]
    ("type service", lambda r: r.pick(None, now=0), TypeError, ""),  # type: ignore[arg-type]
    ("type strategy", lambda r: r.pick("api", 3, now=0), TypeError, ""),  # type: ignore[arg-type]
    ("type tags str", lambda r: r.register("c", "api", "h", 1, tags="gpu", now=0), TypeError, ""),
    ("type tags items", lambda r: r.register("c", "api", "h", 1, tags=[1], now=0), TypeError, ""),  # type: ignore[list-item]
    ("type meta", lambda r: r.register("c", "api", "h", 1, meta={"k": 1}, now=0), TypeError, ""),  # type: ignore[dict-item]
    ("type port", lambda r: r.register("c", "api", "h", "80", now=0), TypeError, ""),  # type: ignore[arg-type]
    ("type bool port", lambda r: r.register("c", "api", "h", True, now=0), TypeError, ""),
    ("type success", lambda r: r.report_outcome("a", 1, now=0), TypeError, ""),  # type: ignore[arg-type]
    ("type drain", lambda r: r.drain("a", "yes", now=0), TypeError, ""),  # type: ignore[arg-type]
    ("type spec", lambda r: r.register_spec([1, 2], now=0), TypeError, ""),  # type: ignore[arg-type]
    ("type snapshot", lambda r: waypost.Registry.restore(b"{}"), TypeError, ""),  # type: ignore[arg-type]
    ("type config", lambda r: waypost.Registry(ttl_ms="1"), TypeError, ""),  # type: ignore[arg-type]
    ("unknown config key", lambda r: waypost.Registry(ttl=1), TypeError, ""),  # type: ignore[call-arg]
    ("config range", lambda r: waypost.Registry(ttl_ms=0), waypost.InvalidArgumentError, "invalid_argument"),
    ("config ratio", lambda r: waypost.Registry(panic_threshold=1.5), waypost.InvalidArgumentError, "invalid_argument"),
    ("config negative", lambda r: waypost.Registry(check_rise=-1), waypost.InvalidArgumentError, "invalid_argument"),
]


@pytest.mark.parametrize("name,call,exc,code", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_call_is_typed_and_leaves_registry_unchanged(
    name: str, call: Call, exc: type[BaseException], code: str
) -> None:
    reg = registry()
    for i in range(6):  # push the first events out of retention (for `compacted`)
        reg.heartbeat("a", now=0)
        reg.drain("b", i % 2 == 0, now=0)
    reg.drain("b", False, now=0)
    reg.discover("api", now=0)  # builds the candidate cache a snapshot records
    before = state(reg)
    with pytest.raises(exc) as info:
        call(reg)
    if code:
        assert isinstance(info.value, waypost.Error)
        assert info.value.code == code
        assert str(info.value)  # a human message
    assert state(reg) == before, name
    # still fully usable
    reg.heartbeat("a", now=1)
    assert reg.pick("api", "first_available", now=1).id == "a"
    assert reg.discover("api", now=1).ids == ("a", "b")


def test_messages_name_the_field_or_id() -> None:
    reg = registry()
    with pytest.raises(waypost.InvalidArgumentError, match="weight"):
        reg.register("c", "api", "h", 1, weight=20_000, now=0)
    with pytest.raises(waypost.NotFoundError, match="`zz`") as info:
        reg.heartbeat("zz", now=0)
    assert str(info.value) == "instance `zz` not found"  # not KeyError's quoted form
    with pytest.raises(TypeError, match="id must be str, not int"):
        reg.deregister(5, now=0)  # type: ignore[arg-type]


def test_catching_by_builtin() -> None:
    reg = registry()
    try:
        reg.get("zz", now=0)
    except KeyError as e:
        assert isinstance(e, waypost.NotFoundError)
    else:
        raise AssertionError("no KeyError")
    try:
        reg.register("c", "api", "h", 0, now=0)
    except ValueError as e:
        assert isinstance(e, waypost.InvalidArgumentError)
    else:
        raise AssertionError("no ValueError")


def test_unknown_service_after_service_empties() -> None:
    reg = registry()
    assert reg.pick("api", now=0).service == "api"  # caches the service reference
    reg.deregister("a", now=0)
    reg.deregister("b", now=0)
    with pytest.raises(waypost.UnknownServiceError):
        reg.pick("api", now=0)
    reg.register("a", "api", "h", 1, now=0)
    assert reg.pick("api", now=0).id == "a"
    assert "unknown_service" in reg.render_metrics()
