"""Hostile input through every entry point: always a typed error or a
correct answer, never a crash, and the registry works afterwards. Snapshots
mutated leaf by leaf either restore into a consistent registry or are
InvalidSnapshotError."""
from __future__ import annotations

import json
import math
from functools import partial
from typing import Any, Callable, Iterator

import pytest

import waypost
from waypost._waypost import GrpcCall

NUMBERS: list[Any] = [0, -1, 1, 2**31, 2**32, 2**53 + 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1,
                      math.nan, math.inf, -math.inf, 1.5, -0.0, 1e308, True, False]
WRONG: list[Any] = [None, "", "1", b"bytes", [], {}, (1,), object(), 1j, "\ud800", "x" * 1_000_000]
ALLOWED: tuple[type[BaseException], ...] = (waypost.Error, TypeError, OverflowError)


def registry() -> waypost.Registry:
    reg = waypost.Registry(seed=9, ttl_ms=1_000, evict_after_ms=2_000, panic_threshold=0.5,
                           consecutive_failures=2, slow_start_ms=500, self_preservation_threshold=0.6)
    for i in range(6):
        reg.register(f"i{i}", "api" if i % 2 else "web", "10.0.0.1", 80 + i, weight=i + 1,
                     tags=["t"], meta={"k": str(i)}, zone="z1" if i < 3 else None,
                     check_interval_ms=200 if i % 3 == 0 else None, now=0)
    return reg


def works(reg: waypost.Registry, now: int = 10) -> None:
    assert reg._check_invariants() is None
    reg.register("ok", "api", "h", 1, now=now)
    assert reg.pick("api", "first_available", now=now).service == "api"
    reg.heartbeat("ok", now=now)
    reg.deregister("ok", now=now)
    assert reg._check_invariants() is None


def calls(reg: waypost.Registry, v: Any) -> Iterator[Callable[[], Any]]:
    """Every entry point with `v` in each argument position in turn."""
    yield lambda: reg.register(v, "api", "h", 1, now=1)
    yield lambda: reg.register("x", v, "h", 1, now=1)
    yield lambda: reg.register("x", "api", v, 1, now=1)
    yield lambda: reg.register("x", "api", "h", v, now=1)
    for key in ("weight", "tags", "meta", "zone", "priority", "ttl_ms", "check_interval_ms", "now"):
        yield partial(reg.register, "x", "api", "h", 1, **{key: v})
    for key in ("id", "service", "address", "port", "weight", "tags", "meta", "zone", "priority", "ttl_ms"):
        spec: dict[str, Any] = {"id": "x", "service": "api", "address": "h", "port": 1}
        yield partial(reg.register_spec, {**spec, key: v}, now=1)
    yield lambda: reg.register_spec(v, now=1)
    yield lambda: reg.deregister(v, now=1)
    yield lambda: reg.heartbeat(v, now=1)
    yield lambda: reg.heartbeat("i0", now=v)
    yield lambda: reg.drain(v, now=1)
    yield lambda: reg.drain("i0", v, now=1)
    yield lambda: reg.report_check("i0", v, now=1)
    yield lambda: reg.report_outcome("i0", v, now=1)
    yield lambda: reg.begin(v, now=1)
    yield lambda: reg.end("i0", now=v)
    yield lambda: reg.get(v, now=1)
    yield lambda: reg.discover(v, now=1)
    yield lambda: reg.discover("api", all=v, now=1)
    yield lambda: reg.discover("api", tags=v, now=1)
    yield lambda: reg.discover("api", meta=v, now=1)
    yield lambda: reg.pick(v, now=1)
    yield lambda: reg.pick("api", v, now=1)
    for key in ("key", "zone", "tags", "meta", "now"):
        yield partial(reg.pick, "api", "consistent_hash", **{"key": "k", key: v})
    yield lambda: reg.tick(now=v)
    yield lambda: reg.due_checks(now=v)
    yield lambda: reg.events_since(v)
    yield lambda: reg.services(now=v)
    yield lambda: reg.service_modify_index(v)
    yield lambda: waypost.Registry.restore(v)
    yield lambda: v in reg
    # The gRPC call's HTTP/2, without a registry: each argument, then bytes received.
    grpc_args: list[Any] = ["http", "h:1", "/p", b"\0\0\0\0\0", 0]
    new_call: Callable[..., GrpcCall] = GrpcCall
    for i in range(len(grpc_args)):
        yield partial(new_call, *grpc_args[:i], v, *grpc_args[i + 1:])
    yield lambda: new_call(*grpc_args).receive(v)
    for key in ("ttl_ms", "evict_after_ms", "seed", "check_rise", "panic_threshold", "event_retention",
                "self_preservation_threshold", "max_ejection_percent"):
        yield partial(waypost.Registry, **{key: v})


@pytest.mark.parametrize("v", NUMBERS + WRONG, ids=lambda v: repr(v)[:24])
def test_hostile_values_in_every_position(v: Any) -> None:
    reg = registry()
    for call in calls(reg, v):
        try:
            call()
        except ALLOWED:
            pass
        # Whatever happened, nothing inside broke.
        assert reg._check_invariants() is None
    works(reg, now=2**40)


def leaves(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from leaves(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from leaves(v, path + (i,))
    else:
        yield path


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = json.loads(json.dumps(doc))
    at = out
    for p in path[:-1]:
        at = at[p]
    at[path[-1]] = value
    return out


def variants(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value, 0, None]
    if isinstance(value, int):
        return [0, value + 1, value - 1, 2**53 - 1, 2**64 - 1, -1, 1.5, "1", None]
    if isinstance(value, float):
        return [0.0, 1.0, 2.0, -0.5, 1e308, None]
    if isinstance(value, str):
        return ["", value + "x", "i1", "api", "healthy", "unhealthy", "\u0001", 0, None]
    return [0, "", None]


def test_every_leaf_of_a_real_snapshot_mutated() -> None:
    reg = registry()
    reg.report_outcome("i1", False, now=100)
    reg.report_outcome("i1", False, now=100)
    reg.report_check("i0", "warn", now=150)
    reg.drain("i2", now=160)
    reg.begin("i4", now=170)
    for strategy in ("round_robin", "weighted_round_robin", "random"):
        reg.pick("api", strategy, now=180)
    reg.heartbeat("i3", now=900)
    reg.tick(now=1_100)
    doc = json.loads(reg.snapshot())
    tried = restored = 0
    for path in leaves(doc):
        at = doc
        for p in path:
            at = at[p]
        for value in variants(at):
            tried += 1
            text = json.dumps(replaced(doc, path, value))
            try:
                copy = waypost.Registry.restore(text)
            except waypost.InvalidSnapshotError:
                continue
            restored += 1
            assert copy._check_invariants() is None, (path, value)
            # It restores as written, and carries on.
            assert waypost.Registry.restore(copy.snapshot()).snapshot() == copy.snapshot()
            works(copy, now=2_000)
    print(f"leaf mutations: {tried} tried, {restored} restored cleanly, {tried - restored} invalid_snapshot")
    assert tried > 1_500 and 0 < restored < tried
