"""Worker-local pickers: their own sequences, changes seen at the next
pick, and many threads picking while membership changes."""
from __future__ import annotations

import threading
import time

import pytest

import waypost


def fleet(n: int) -> waypost.Registry:
    reg = waypost.Registry(ttl_ms=1_000_000, seed=7)
    for i in range(n):
        reg.register(f"p{i}", "api", "10.0.0.1", 80 + i, now=0)
    return reg


def test_a_picker_cycles_and_is_reproducible() -> None:
    reg = fleet(4)
    picker = reg.picker("api")
    assert picker.number == 1
    ids = [picker.pick(now=1).id for _ in range(8)]
    assert sorted(ids[:4]) == ["p0", "p1", "p2", "p3"]
    assert ids[:4] == ids[4:]
    again = fleet(4).picker("api")
    assert [again.pick(now=1).id for _ in range(8)] == ids
    assert reg.picker("api").number == 2
    result = picker.pick_result(waypost.Strategy.CONSISTENT_HASH, key="user-1", now=1)
    assert result.panic is False
    assert picker.pick("consistent_hash", key="user-1", now=1) == result.instance


def test_a_picker_sees_removals_and_reports() -> None:
    reg = fleet(3)
    picker = reg.picker("api")
    reg.deregister("p1", now=2)
    for _ in range(20):
        inst = picker.pick(waypost.Strategy.RANDOM, now=2)
        assert inst.id != "p1"
        picker.begin(inst)
        picker.end(inst.handle)
        picker.report_outcome(inst, True, now=2)
    with pytest.raises(waypost.InvalidArgumentError):
        picker.pick("consistent_hash", now=2)
    with pytest.raises(waypost.NotFoundError):
        picker.begin(1 << 40)
    with pytest.raises(TypeError):
        picker.begin("p0")  # type: ignore[arg-type]
    empty = waypost.Registry().picker("nothing")
    with pytest.raises(waypost.UnknownServiceError):
        empty.pick(now=0)


def test_outcomes_from_a_picker_eject() -> None:
    reg = waypost.Registry(ttl_ms=1_000_000, consecutive_failures=2, seed=1)
    for i in range(4):
        reg.register(f"p{i}", "api", "10.0.0.1", 80, now=0)
    picker = reg.picker("api")
    bad = reg.get("p2", now=0).instance
    picker.report_outcome(bad, False, now=1)
    picker.report_outcome(bad, False, now=1)
    # Held until 100 ms have passed: then the next pick folds them in.
    picker.pick(now=200)
    assert all(picker.pick(now=200).id != "p2" for _ in range(40))


def test_threads_pick_while_membership_changes() -> None:
    reg = fleet(8)
    removed: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        picker = reg.picker("api")
        strategies = ["round_robin", "random", "weighted_round_robin", "least_request"]
        i = 0
        try:
            while not stop.is_set():
                seen = len(removed)
                inst = picker.pick(strategies[i % 4], now=i // 64)
                assert inst.handle not in removed[:seen], inst.id
                picker.begin(inst)
                picker.end(inst)
                picker.report_outcome(inst, i % 7 != 0, now=i // 64)
                i += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 1.5
    k = 0
    while time.monotonic() < deadline:
        name = f"p{k % 8}"
        handle = reg.get(name, now=0).instance.handle
        reg.deregister(name, now=0)
        removed.append(handle)
        time.sleep(0.001)
        reg.register(name, "api", "10.0.0.1", 80 + k % 8, now=0)
        k += 1
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert k > 10


def rr_steps_counted(reg: waypost.Registry, service: str) -> int:
    prefix = f'waypost_picks_total{{service="{service}",strategy="round_robin"}} '
    for line in reg.render_metrics().splitlines():
        if line.startswith(prefix):
            return int(line[len(prefix):])
    return 0


def test_a_pick_is_one_step_and_its_fields_come_from_its_table() -> None:
    """While another thread removes and re-registers instances, each pick
    answered is one step of the picker (the registry counts exactly the
    picks answered) and carries the fields of the instance picked."""
    reg = waypost.Registry(ttl_ms=1_000_000, seed=3)
    for k in range(10):
        reg.register(f"d{k}", "dereg", f"10.7.0.{k}", 9000 + k, now=0)
    stop = threading.Event()

    def churn() -> None:
        k = 0
        while not stop.is_set():
            reg.deregister(f"d{k % 10}", now=0)
            reg.register(f"d{k % 10}", "dereg", f"10.7.0.{k % 10}", 9000 + k % 10, now=0)
            k += 1

    churner = threading.Thread(target=churn)
    churner.start()
    picker = reg.picker("dereg")
    answered = 0
    try:
        for _ in range(5000):
            try:
                inst = picker.pick(now=0)
            except (waypost.NoEligibleInstanceError, waypost.UnknownServiceError):
                continue
            answered += 1
            k = int(inst.id[1:])
            assert (inst.port, inst.address, inst.service) == (9000 + k, f"10.7.0.{k}", "dereg")
    finally:
        stop.set()
        churner.join()
    # A change makes the picker fold its count in at its next pick.
    reg.register("extra", "dereg", "10.7.1.1", 1, now=1)
    picker.pick("random", now=1)
    assert answered > 0
    assert rr_steps_counted(reg, "dereg") == answered


def test_a_picker_with_a_zone_and_tags_picks_as_pick_does() -> None:
    reg = waypost.Registry(ttl_ms=1_000_000, seed=5)
    for i in range(8):
        reg.register(f"z{i}", "zoned", "10.0.0.1", 80, zone="ab"[i % 2],
                     tags=["x"] if i % 3 else [], now=0)
    picker = reg.picker("zoned", zone="b", tags=["x"])
    assert {picker.pick(now=1).id for _ in range(30)} == {"z1", "z5", "z7"}
    for k in range(30):
        key = f"user-{k}"
        want = reg.pick("zoned", "consistent_hash", key=key, zone="b", tags=["x"], now=1)
        assert picker.pick("consistent_hash", key=key, now=1) == want
    # Results are cached per table position: the same object each time.
    first = picker.pick_result("first_available", now=1)
    assert picker.pick_result("first_available", now=1) is first
    assert first.panic is False and first.instance.zone == "b"
    with pytest.raises(waypost.InvalidArgumentError):
        reg.picker("zoned", tags=[""])
