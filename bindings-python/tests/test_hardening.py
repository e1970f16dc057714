"""Defects found by trying the binding from outside, as a user and as an
attacker would; each test names what used to happen."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest

import waypost

LONE = "\ud800"


def registry() -> waypost.Registry:
    reg = waypost.Registry(seed=3)
    for i in range(3):
        reg.register(f"i{i}", "api", "10.0.0.1", 80, now=0)
    return reg


def test_events_since_the_largest_index_is_empty() -> None:
    # It used to raise CompactedError: `after + 1` wrapped in the core.
    reg = registry()
    for after in (reg.last_index, 2**64 - 2, 2**64 - 1):
        assert reg.events_since(after) == []
    with pytest.raises(waypost.InvalidArgumentError):
        reg.events_since(2**64)


def test_an_empty_key_or_zone_is_none() -> None:
    # It used to pass "" through as a real key, unlike Go and C++.
    reg = registry()
    with pytest.raises(waypost.InvalidArgumentError):
        reg.pick("api", "consistent_hash", key="", now=1)
    assert [reg.pick("api", zone="", now=1).id for _ in range(3)] == ["i0", "i1", "i2"]
    reg.register("z", "api", "h", 1, zone="", now=1)
    assert "zone" not in reg.get("z", now=1).to_dict()


def surrogate_calls(reg: waypost.Registry) -> list[Callable[[], Any]]:
    return [
        lambda: reg.register(LONE, "api", "h", 1, now=1),
        lambda: reg.register("x", LONE, "h", 1, now=1),
        lambda: reg.register("x", "api", LONE, 1, now=1),
        lambda: reg.register("x", "api", "h", 1, tags=[LONE], now=1),
        lambda: reg.register("x", "api", "h", 1, meta={LONE: "v"}, now=1),
        lambda: reg.register("x", "api", "h", 1, meta={"k": LONE}, now=1),
        lambda: reg.register("x", "api", "h", 1, zone=LONE, now=1),
        lambda: reg.register_spec({"id": LONE, "service": "api", "address": "h", "port": 1}, now=1),
        lambda: reg.register_spec({LONE: 1, "id": "x", "service": "api", "address": "h", "port": 1}, now=1),
        lambda: reg.deregister(LONE, now=1),
        lambda: reg.heartbeat(LONE, now=1),
        lambda: reg.drain(LONE, now=1),
        lambda: reg.report_check(LONE, "pass", now=1),
        lambda: reg.report_check("i0", LONE, now=1),
        lambda: reg.report_outcome(LONE, True, now=1),
        lambda: reg.begin(LONE, now=1),
        lambda: reg.end(LONE, now=1),
        lambda: reg.get(LONE, now=1),
        lambda: reg.discover(LONE, now=1),
        lambda: reg.discover("api", tags=[LONE], now=1),
        lambda: reg.pick(LONE, now=1),
        lambda: reg.pick("api", LONE, now=1),
        lambda: reg.pick("api", "consistent_hash", key=LONE, now=1),
        lambda: reg.pick("api", zone=LONE, now=1),
        lambda: reg.pick("api", meta={"k": LONE}, now=1),
        lambda: reg.service_modify_index(LONE),
        lambda: waypost.Registry.restore(LONE),
    ]


def test_a_lone_surrogate_is_an_invalid_argument_everywhere() -> None:
    # It used to raise UnicodeEncodeError from every method taking a str.
    reg = registry()
    for call in surrogate_calls(reg):
        with pytest.raises(waypost.Error) as caught:
            call()
        assert isinstance(caught.value, (waypost.InvalidArgumentError, waypost.InvalidSnapshotError)), caught.value
    assert (LONE in reg) is False
    assert reg.pick("api", now=1).id in {"i0", "i1", "i2"}
    assert len(reg) == 3


def test_cyclic_and_deep_structures_are_refused() -> None:
    reg = registry()
    cyclic: dict[str, Any] = {"id": "x", "service": "api", "address": "h", "port": 1}
    cyclic["meta"] = cyclic
    with pytest.raises(waypost.InvalidArgumentError):
        reg.register_spec(cyclic, now=1)
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(waypost.InvalidArgumentError):
        reg.register_spec({"id": "x", "service": "api", "address": "h", "port": 1, "tags": deep}, now=1)
    assert len(reg) == 3


def test_racing_removals_raise_not_found_never_a_bare_key_error() -> None:
    # 8 threads registering, deregistering and heartbeating 40 ids: a stale
    # cached handle used to surface as KeyError('i5'), and the heartbeat it
    # belonged to was lost instead of falling back to the id.
    reg = waypost.Registry(seed=5, ttl_ms=86_400_000, event_retention=1 << 16)
    ids = [f"i{k}" for k in range(40)]
    stop = time.monotonic() + 2.0
    bad: list[BaseException] = []
    ok_heartbeats = [0] * 8
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        barrier.wait()
        r = n
        while time.monotonic() < stop:
            r += 7
            id = ids[r % 40]
            try:
                if r % 3 == 0:
                    reg.register(id, "api", "h", 1, now=0)
                elif r % 3 == 1:
                    reg.deregister(id, now=0)
                else:
                    reg.heartbeat(id, now=0)
                    ok_heartbeats[n] += 1
            except waypost.NotFoundError:
                pass
            except BaseException as e:  # noqa: BLE001 - reported below
                bad.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
    # Every heartbeat that returned was counted once, none was lost.
    assert reg.service_metrics()[0]["heartbeats"] == sum(ok_heartbeats)


def test_more_metadata_than_an_instance_carries_is_refused_before_it_is_read() -> None:
    # Every reader used to insert each member into the sorted map before
    # counting them: 60 000 keys in descending order took seconds.
    many = {f"k{100_000 - i:06d}": "v" for i in range(100_000)}
    reg = registry()
    with pytest.raises(waypost.InvalidArgumentError, match="`meta`"):
        reg.register("big", "api", "h", 1, meta=many, now=0)
    with pytest.raises(waypost.InvalidArgumentError, match="`meta`"):
        reg.pick("api", waypost.Strategy.ROUND_ROBIN, meta=many, now=0)
    with pytest.raises(waypost.InvalidArgumentError, match="`meta`"):
        reg.discover("api", meta=many, now=0)
    sixty_four = dict(list(many.items())[:64])
    reg.register("ok", "api", "h", 1, meta=sixty_four, now=0)
    assert reg.get("ok", now=0).instance.meta == sixty_four
    assert [i.id for i in reg.discover("api", meta=sixty_four, now=0)] == ["ok"]
