"""Load: 16 threads hammering one registry with mixed operations for a
bounded time; afterwards the core's invariants hold, no event index is
missing or repeated, and every registration, heartbeat, deregistration and
pick a thread saw succeed is counted once in the metrics. Memory: a
register/deregister loop returns to its footprint."""
from __future__ import annotations

import gc
import threading
import time

import waypost

THREADS = 16
SECONDS = 3.0


def test_sixteen_threads_mixed_operations_add_up() -> None:
    reg = waypost.Registry(seed=21, ttl_ms=86_400_000, event_retention=1_000_000)
    for i in range(8):
        reg.register(f"base-{i}", "api", "10.0.0.1", 80, now=0)
    ok = [[0, 0, 0, 0, 0] for _ in range(THREADS)]  # register, heartbeat, deregister, pick, discover
    bad: list[BaseException] = []
    stop = time.monotonic() + SECONDS
    barrier = threading.Barrier(THREADS)

    def work(n: int) -> None:
        counts = ok[n]
        barrier.wait()
        i = 0
        # Bounded in time and in count (so every event stays retained).
        while time.monotonic() < stop and i < 40_000:
            i += 1
            id = f"t{(n * 7 + i) % 48}"
            try:
                op = i % 8
                if op in (0, 1):
                    reg.register(id, "api", "10.0.0.2", 80 + n, weight=1 + i % 5, now=i)
                    counts[0] += 1
                elif op == 2:
                    reg.heartbeat(id, now=i)
                    counts[1] += 1
                elif op == 3:
                    reg.deregister(id, now=i)
                    counts[2] += 1
                elif op in (4, 5):
                    reg.pick("api", "round_robin" if op == 4 else "weighted_round_robin", now=i)
                    counts[3] += 1
                elif op == 6:
                    reg.discover("api", all=True, now=i)
                    counts[4] += 1
                else:
                    reg.heartbeat(f"base-{i % 8}", now=i)
                    counts[1] += 1
            except waypost.NotFoundError:
                pass
            except BaseException as e:  # noqa: BLE001 - reported below
                bad.append(e)
                return

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
    assert reg._check_invariants() is None
    total = [sum(c[k] for c in ok) for k in range(5)]
    m = reg.service_metrics()[0]
    assert m["registrations"] == 8 + total[0]
    assert m["heartbeats"] == total[1]
    assert m["deregistrations"] == total[2]
    assert m["picks"]["round_robin"] + m["picks"]["weighted_round_robin"] == total[3]
    events = reg.events_since(0)
    assert [e.index for e in events] == list(range(1, reg.last_index + 1))
    assert sum(1 for e in events if e.type == "deregistered") == total[2]
    print(f"load: {sum(total)} operations from {THREADS} threads in {SECONDS} s, "
          f"{len(events)} events, counts add up")


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_registering_and_deregistering_a_million_returns_to_its_footprint() -> None:
    reg = waypost.Registry(seed=1, ttl_ms=1_000, evict_after_ms=0, event_retention=64)
    batch = 100_000
    now = 0

    def cycle() -> None:
        nonlocal now
        for i in range(batch):
            reg.register(f"i{i}", f"s{i % 50}", "10.0.0.1", 80, now=now)
        for i in range(batch):
            reg.deregister(f"i{i}", now=now)
        now += 10_000
        reg.tick(now=now)  # leases of removed instances leave the timer heap

    cycle()
    gc.collect()
    start = rss_kib()
    for _ in range(9):
        cycle()
    gc.collect()
    grown = rss_kib() - start
    print(f"memory: 1 000 000 registrations and deregistrations, RSS {start} KiB -> {start + grown} KiB")
    assert len(reg) == 0
    assert reg._check_invariants() is None
    # A leak of even 16 bytes per instance would be 14 MiB here.
    assert grown < 4_096, f"grew by {grown} KiB"
