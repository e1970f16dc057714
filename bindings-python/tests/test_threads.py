"""One registry shared by many threads: no lost updates, no torn state."""
from __future__ import annotations

import json
import threading
from typing import Callable

import waypost

THREADS = 8
ROUNDS = 300


def run_threads(target: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def wrapped(n: int) -> None:
        try:
            barrier.wait()
            target(n)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_threads_hammering_one_registry() -> None:
    reg = waypost.Registry(ttl_ms=1_000_000, seed=1, event_retention=100_000)
    for i in range(20):
        reg.register(f"base-{i:02}", "api", "10.0.0.1", 80, now=0)
    picks = [0] * THREADS

    def work(n: int) -> None:
        for r in range(ROUNDS):
            id = f"t{n}-{r % 5}"
            reg.register(id, "api", "10.0.0.2", 80, now=r)
            reg.heartbeat(id, now=r)
            reg.heartbeat(f"base-{r % 20:02}", now=r)
            inst = reg.pick("api", "round_robin", now=r)
            assert inst.service == "api"
            reg.pick("api", "weighted_round_robin", now=r)
            picks[n] += 2
            found = reg.discover("api", now=r)
            assert len(found) >= 20
            reg.begin(id, now=r)
            reg.end(id, now=r)
            if r % 50 == 0:
                json.loads(reg.snapshot())
                reg.tick(now=r)
            if r % 5 == 4:
                for k in range(5):
                    reg.deregister(f"t{n}-{k}", now=r)

    assert run_threads(work) == []
    # every thread deregistered its own instances at its last round
    assert sorted(reg.discover("api", now=ROUNDS).ids) == [f"base-{i:02}" for i in range(20)]
    m = reg.service_metrics()[0]
    assert m["picks"]["round_robin"] + m["picks"]["weighted_round_robin"] == sum(picks)
    assert m["registrations"] == 20 + THREADS * ROUNDS
    assert m["deregistrations"] == THREADS * ROUNDS
    assert m["heartbeats"] == 2 * THREADS * ROUNDS
    # registered + deregistered events, nothing lost or duplicated
    events = reg.events_since(0)
    assert [e.index for e in events] == list(range(1, len(events) + 1))
    assert len(events) == 20 + 2 * THREADS * ROUNDS


def test_round_robin_is_exact_across_threads() -> None:
    reg = waypost.Registry(seed=1)
    for i in range(4):
        reg.register(f"i{i}", "api", "h", 1, now=0)
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def work(n: int) -> None:
        local: dict[str, int] = {}
        for _ in range(400):
            id = reg.pick("api", now=0).id
            local[id] = local.get(id, 0) + 1
        with lock:
            for k, v in local.items():
                counts[k] = counts.get(k, 0) + v

    assert run_threads(work) == []
    # 3200 picks over 4 instances, strictly in turn: exactly 800 each
    assert counts == {f"i{i}": 800 for i in range(4)}


def test_snapshot_and_restore_in_threads_while_others_pick() -> None:
    reg = waypost.Registry(seed=1)
    for i in range(2000):
        reg.register(f"i{i:04}", "api", "h", 1, now=0)

    def work(n: int) -> None:
        for _ in range(10):
            if n % 2:
                copy = waypost.Registry.restore(reg.snapshot())
                assert len(copy) == 2000
            else:
                for _ in range(100):
                    reg.pick("api", "random", now=0)

    assert run_threads(work) == []
