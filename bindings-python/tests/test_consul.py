"""waypost.consul against a loopback Consul agent that follows the documented
API: registration with a TTL check, blocking queries, an index going backwards."""
from __future__ import annotations

import threading
import time
from typing import Callable

import waypost
from consul_fake import FakeConsul
from waypost.consul import ConsulError, Mirror, Registrar


def inst(i: int) -> dict[str, object]:
    return {"id": f"redis-{i}", "service": "redis", "address": f"10.0.0.{i}", "port": 6379, "weight": i}


def eventually(cond: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def view(reg: waypost.Registry) -> dict[str, str]:
    try:
        found = reg.discover("redis", all=True)
    except waypost.UnknownServiceError:
        return {}
    return {i.id: h.value for i, h in zip(found, found.health)}


def test_registrar_and_mirror_follow_the_agent() -> None:
    reg = waypost.Registry(seed=1, self_preservation_threshold=0)
    threads = threading.active_count()
    with FakeConsul() as consul:
        with Mirror([consul.endpoint], reg, service="redis") as m, \
                Registrar([consul.endpoint], inst(1), ttl_s=1) as r1, \
                Registrar([consul.endpoint], inst(2), ttl_s=1):
            eventually(lambda: view(reg) == {"redis-1": "healthy", "redis-2": "healthy"}, 3, "both passing")
            assert reg.get("redis-2").to_dict()["weight"] == 2 and reg.get("redis-1").source == "consul"
            time.sleep(1.5)  # past the TTL: the heartbeats keep the checks passing
            assert view(reg) == {"redis-1": "healthy", "redis-2": "healthy"} and r1.error is None
            r1.close()  # a clean stop deregisters
            eventually(lambda: view(reg) == {"redis-2": "healthy"}, 3, "deregistered")
            assert m.error is None
    assert threading.active_count() == threads


def test_a_missed_ttl_turns_critical_and_the_registrar_comes_back() -> None:
    reg = waypost.Registry(seed=1)
    with FakeConsul() as consul, Mirror(consul.endpoint, reg, service="redis"):
        r = Registrar([consul.endpoint], inst(1), ttl_s=1).start()
        eventually(lambda: view(reg) == {"redis-1": "healthy"}, 3, "passing")
        r._stop.set()  # the process hangs: no more heartbeats
        assert r._thread is not None
        r._thread.join()
        eventually(lambda: view(reg) == {"redis-1": "unhealthy"}, 3, "critical after the TTL")
        consul.services.clear()  # the agent forgot it (restart)
        r._thread = None
        r.start()
        eventually(lambda: view(reg) == {"redis-1": "healthy"}, 3, "registered again")
        r.close()


def test_blocking_queries_keep_their_pace_and_survive_an_index_going_backwards() -> None:
    reg = waypost.Registry(seed=1, self_preservation_threshold=0)
    with FakeConsul(max_wait_s=0.3) as consul:
        with Registrar([consul.endpoint], inst(1), ttl_s=30), \
                Mirror([consul.endpoint], reg, service="redis", min_interval_s=0.1) as m:
            assert m.wait_synced(3)
            eventually(lambda: view(reg) == {"redis-1": "healthy"}, 3, "synced")
            before = consul.queries
            time.sleep(1.0)
            assert consul.queries - before <= 5  # no busy loop while nothing changes
            consul.reset_index(2)
            with Registrar([consul.endpoint], inst(2), ttl_s=30):
                eventually(lambda: view(reg) == {"redis-1": "healthy", "redis-2": "healthy"}, 3, "after the reset")
            assert m.error is None


def test_close_ends_a_blocking_query_at_once_and_errors_name_the_agent() -> None:
    reg = waypost.Registry(seed=1)
    with FakeConsul(max_wait_s=30) as consul:
        m = Mirror([consul.endpoint], reg, service="redis").start()
        assert m.wait_synced(3)
        time.sleep(0.3)  # now in a 30 s blocking query
        started = time.monotonic()
        m.close()
        assert time.monotonic() - started < 1.0
    dead = Mirror(["http://127.0.0.1:1"], waypost.Registry(seed=1), service="redis").start()
    eventually(lambda: dead.error is not None, 3, "error visible")
    assert isinstance(dead.error, ConsulError) and "consul unreachable" in str(dead.error)
    assert "127.0.0.1:1" in str(dead.error)
    dead.close()
