"""The pure-Python helpers: Registrar, Ticker, track."""
from __future__ import annotations

import threading
import time

import pytest

import waypost
from waypost import EventType, Health


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def test_registrar_registers_heartbeats_and_deregisters() -> None:
    clock = FakeClock()
    reg = waypost.Registry(ttl_ms=300, evict_after_ms=100, seed=1)
    r = waypost.Registrar(reg, "api-1", "api", "127.0.0.1", 8080, clock=clock)
    assert r.interval_ms == 100
    inst = r.register()
    assert inst.id == "api-1" and "api-1" in reg
    clock.now = 250
    r.beat()
    clock.now = 500
    assert reg.get("api-1", now=500).health is Health.HEALTHY
    clock.now = 1000  # expired at 551, evicted at 651
    reg.tick(now=1000)
    assert "api-1" not in reg
    r.beat()  # the registry lost it: registered again
    assert reg.get("api-1", now=1000).health is Health.HEALTHY
    r.stop()
    assert "api-1" not in reg
    r.stop()  # already gone: fine


def test_registrar_thread_keeps_the_lease_alive() -> None:
    reg = waypost.Registry(ttl_ms=90, seed=1)
    with waypost.Registrar(reg, "api-1", "api", "127.0.0.1", 8080) as inst:
        assert inst.id == "api-1"
        deadline = time.monotonic() + 10
        while reg.service_metrics()[0]["heartbeats"] < 3:
            assert time.monotonic() < deadline, "no heartbeats from the registrar thread"
            time.sleep(0.01)
    assert "api-1" not in reg


def test_ticker_ticks_exactly_at_deadlines_and_delivers_events() -> None:
    reg = waypost.Registry(ttl_ms=1000, evict_after_ms=500, seed=1)
    seen: list[waypost.Event] = []
    ticker = waypost.Ticker(reg, on_event=seen.append)
    reg.register("a", "api", "h", 1, now=0)
    assert ticker.step(now=0) == 1001
    assert [e.type for e in seen] == [EventType.REGISTERED]
    assert ticker.step(now=1000) == 1001 and reg.clock == 0  # not due: no tick
    assert ticker.step(now=1001) == 1501 and reg.clock == 1001
    assert seen[-1].type is EventType.HEALTH_CHANGED and seen[-1].at == 1001
    assert ticker.step(now=1501) is None
    assert [e.type for e in seen][2:] == [EventType.EVICTED]


def test_ticker_runs_due_checks() -> None:
    reg = waypost.Registry(seed=1)
    reg.register("a", "api", "h", 1, check_interval_ms=100, now=0)
    reg.register("b", "api", "h", 1, check_interval_ms=100, now=0)
    checked: list[str] = []

    def check(view: waypost.InstanceView) -> bool:
        checked.append(view.id)
        return view.id == "a"

    ticker = waypost.Ticker(reg, check=check)
    ticker.step(now=0)
    assert checked == ["a", "b"]
    assert reg.get("b", now=0).health is Health.UNHEALTHY
    ticker.step(now=50)
    assert checked == ["a", "b"]
    ticker.step(now=100)
    assert checked == ["a", "b", "a", "b"]


def test_ticker_thread_applies_expiry() -> None:
    reg = waypost.Registry(ttl_ms=50, seed=1)
    got = threading.Event()
    reg.register("a", "api", "h", 1)

    def on_event(e: waypost.Event) -> None:
        if e.type is EventType.HEALTH_CHANGED:
            got.set()

    with waypost.Ticker(reg, on_event=on_event, max_wait_ms=20):
        assert got.wait(10), "the ticker never applied the expiry"


def test_ticker_resyncs_after_compaction() -> None:
    reg = waypost.Registry(event_retention=2, seed=1)
    seen: list[waypost.Event] = []
    ticker = waypost.Ticker(reg, on_event=seen.append)
    for i in range(5):
        reg.register(f"i{i}", "api", "h", 1, now=0)
    ticker.step(now=0)
    assert seen == []
    reg.register("x", "api", "h", 1, now=0)
    ticker.step(now=0)
    assert [e.id for e in seen] == ["x"]


def test_track_reports_outcomes() -> None:
    reg = waypost.Registry(seed=1, consecutive_failures=2, max_ejection_percent=100)
    reg.register("a", "api", "h", 1, now=0)
    reg.register("b", "api", "h", 1, now=0)
    with waypost.track(reg, "a", clock=lambda: 1):
        assert reg.get("a", now=1).inflight == 1
    assert reg.get("a", now=1).inflight == 0
    for _ in range(2):
        with pytest.raises(RuntimeError):
            with waypost.track(reg, "a", clock=lambda: 2):
                raise RuntimeError("call failed")
    assert reg.get("a", now=2).health is Health.EJECTED
    with waypost.track(reg, "b", clock=lambda: 3):
        reg.deregister("b", now=3)  # gone meanwhile: ignored
