"""The Python API surface: objects, enums, options, caching, snapshots."""
from __future__ import annotations

import json
from typing import Any

import pytest

import waypost
from waypost import CheckStatus, EventType, Health, Strategy


def fleet(n: int = 3, **config: Any) -> waypost.Registry:
    reg = waypost.Registry(ttl_ms=10_000, seed=7, **config)
    for i in range(n):
        reg.register(f"api-{i}", "api", f"10.0.0.{i}", 8080, now=0)
    return reg


def test_readme_example() -> None:
    reg = waypost.Registry(ttl_ms=10_000, seed=7)
    reg.register("api-1", "api", "10.0.0.1", 8080, now=0)
    reg.register("api-2", "api", "10.0.0.2", 8080, now=0)
    reg.heartbeat("api-1", now=9_000)
    assert reg.pick("api", now=10_001).id == "api-1"
    assert [e.type for e in reg.events_since(0)] == [
        EventType.REGISTERED,
        EventType.REGISTERED,
        EventType.HEALTH_CHANGED,
    ]


def test_instance_fields_repr_equality_and_dict() -> None:
    reg = waypost.Registry(seed=1)
    inst = reg.register(
        "a", "api", "10.0.0.1", 80, weight=3, tags=["x", "y", "x"], meta={"k": "v"},
        zone="eu", priority=2, ttl_ms=5000, check_interval_ms=1000, now=0,
    )
    assert (inst.id, inst.service, inst.address, inst.port) == ("a", "api", "10.0.0.1", 80)
    assert (inst.weight, inst.priority, inst.zone, inst.ttl_ms, inst.check_interval_ms) == (3, 2, "eu", 5000, 1000)
    assert inst.tags == ("x", "y")  # duplicates dropped, order kept
    assert inst.meta == {"k": "v"}
    inst.meta["k"] = "changed"  # a copy: the instance is immutable
    assert inst.meta == {"k": "v"}
    assert repr(inst) == "Instance(id='a', service='api', address='10.0.0.1', port=80, weight=3)"
    d = inst.to_dict()
    assert d == {
        "id": "a", "service": "api", "address": "10.0.0.1", "port": 80, "weight": 3,
        "tags": ["x", "y"], "meta": {"k": "v"}, "zone": "eu", "priority": 2,
        "ttl_ms": 5000, "check_interval_ms": 1000,
    }
    other = waypost.Registry(seed=2).register_spec(d, now=0)
    assert other == inst and hash(other) == hash(inst)
    assert other != reg.register("b", "api", "10.0.0.1", 80, now=0)
    assert inst != "a"


def test_optional_fields_absent_from_wire_form() -> None:
    inst = waypost.Registry(seed=1).register("a", "api", "h", 1, now=0)
    assert inst.zone is None and inst.ttl_ms is None
    assert "zone" not in inst.to_dict() and "ttl_ms" not in inst.to_dict()


def test_pick_returns_the_same_object_until_the_instance_changes() -> None:
    reg = fleet(2)
    first = reg.pick("api", Strategy.FIRST_AVAILABLE, now=1)
    assert reg.pick("api", "first_available", now=2) is first
    reg.register("api-9", "api", "10.0.0.9", 80, now=3)  # membership changes, api-0 does not
    assert reg.pick("api", "first_available", now=3) is first
    updated = reg.register("api-0", "api", "10.9.9.9", 80, now=4)  # fields change: new object
    again = reg.pick("api", "first_available", now=4)
    assert again is updated and again is not first and again.address == "10.9.9.9"
    reg.deregister("api-0", now=5)
    reg.register("api-0", "api", "10.0.0.0", 8080, now=5)  # a new registration: new object
    assert reg.pick("api", "first_available", now=5) is not updated


def test_round_robin_and_strategies_as_enum_or_string() -> None:
    reg = fleet(3)
    assert [reg.pick("api", now=1).id for _ in range(4)] == ["api-0", "api-1", "api-2", "api-0"]
    for s in Strategy:
        key = "user-1" if s is Strategy.CONSISTENT_HASH else None
        assert reg.pick("api", s, key=key, now=1).service == "api"
        assert reg.pick("api", s.value, key=key, now=1).service == "api"
    name: str = "round_robin"
    assert Strategy(name) is Strategy.ROUND_ROBIN and Strategy.ROUND_ROBIN == name
    assert str(Strategy.RANDOM) == "random"


def test_weighted_round_robin_is_smooth() -> None:
    reg = waypost.Registry(seed=1)
    for id, w in (("a", 5), ("b", 1), ("c", 1)):
        reg.register(id, "api", "h", 1, weight=w, now=0)
    picks = [reg.pick("api", "weighted_round_robin", now=0).id for _ in range(7)]
    assert picks == ["a", "a", "b", "a", "c", "a", "a"]


def test_same_seed_same_random_picks() -> None:
    a, b = fleet(5), fleet(5)
    seq = [a.pick("api", "random", now=1).id for _ in range(50)]
    assert seq == [b.pick("api", "random", now=1).id for _ in range(50)]
    assert len(set(seq)) > 1


def test_unseeded_registries_draw_a_seed() -> None:
    seeds = {waypost.Registry().config["seed"] for _ in range(4)}
    assert len(seeds) == 4


def test_pick_options_filter_zone_key() -> None:
    reg = waypost.Registry(seed=1)
    reg.register("a", "api", "h", 1, tags=["gpu"], meta={"v": "2"}, zone="eu", now=0)
    reg.register("b", "api", "h", 1, zone="us", now=0)
    assert reg.pick("api", tags=["gpu"], now=0).id == "a"
    assert reg.pick("api", meta={"v": "2"}, now=0).id == "a"
    assert {reg.pick("api", zone="us", now=0).id for _ in range(4)} == {"b"}
    k = reg.pick("api", "consistent_hash", key="user-7", now=0).id
    assert all(reg.pick("api", "consistent_hash", key="user-7", now=0).id == k for _ in range(5))
    with pytest.raises(waypost.NoEligibleInstanceError):
        reg.pick("api", tags=["none"], now=0)


def test_pick_result_and_panic() -> None:
    reg = waypost.Registry(ttl_ms=1000, panic_threshold=0.5, seed=1)
    reg.register("a", "api", "h", 1, now=0)
    reg.register("b", "api", "h", 1, now=0)
    reg.heartbeat("a", now=900)
    r = reg.pick_result("api", now=1500)
    assert r.instance.id == "a" and r.panic is False and r.to_dict() == {"id": "a", "panic": False}
    r = reg.pick_result("api", now=2500)  # both expired: panic, picks ignore health
    assert r.panic is True
    assert reg.discover("api", all=True, now=2500).panic is True


def test_discover_health_cache_and_filters() -> None:
    reg = fleet(3)
    d = reg.discover("api", now=1)
    assert len(d) == 3 and d.ids == ("api-0", "api-1", "api-2") and [i.id for i in d] == list(d.ids)
    assert d[0].id == "api-0" and d[1:] == d.instances[1:]
    assert d.health == (Health.HEALTHY,) * 3 and d.panic is False
    assert reg.discover("api", now=1) is d  # unchanged: the cached answer
    reg.drain("api-1", now=2)
    d2 = reg.discover("api", now=2)
    assert d2.ids == ("api-0", "api-2") and d2 != d
    every = reg.discover("api", all=True, now=2)
    assert every.health == (Health.HEALTHY, Health.DRAINING, Health.HEALTHY)
    assert every.to_dict()["health"] == ["healthy", "draining", "healthy"]
    reg.drain("api-1", False, now=3)
    assert reg.discover("api", now=3).ids == d.ids
    reg.register("api-3", "api", "h", 1, tags=["t"], now=3)
    assert reg.discover("api", tags=["t"], now=3).ids == ("api-3",)
    # time alone changes health: the cache must notice
    reg.heartbeat("api-0", now=9_000)
    assert reg.discover("api", now=10_004).ids == ("api-0",)


def test_get_view() -> None:
    reg = fleet(1)
    reg.begin("api-0", now=5)
    v = reg.get("api-0", now=5)
    assert (v.id, v.service, v.health, v.inflight) == ("api-0", "api", Health.HEALTHY, 1)
    assert v.instance is reg.pick("api", now=5)
    assert v.lease_deadline == 10_000 and v.last_renewal == 0 and v.registered_at == 0
    assert v.effective_weight == 1.0 and v.ejected_until is None and v.last_check is None
    reg.end("api-0", now=6)
    reg.report_check("api-0", CheckStatus.WARN, now=6)
    v = reg.get("api-0", now=6)
    assert v.health is Health.DEGRADED and v.last_check is CheckStatus.WARN and v.inflight == 0
    d = v.to_dict()
    assert d["health"] == "degraded" and d["last_check"] == "warn" and d["id"] == "api-0"
    assert v == reg.get("api-0", now=6)
    assert "api-0" in reg and "nope" not in reg and 3 not in reg


def test_events_and_tick() -> None:
    reg = fleet(1)
    assert reg.next_deadline() == 10_001
    assert reg.tick(now=10_000) == []
    events = reg.tick(now=10_001)
    assert len(events) == 1
    e = events[0]
    assert (e.type, e.id, e.service, e.from_, e.to, e.at) == (
        EventType.HEALTH_CHANGED, "api-0", "api", Health.HEALTHY, Health.UNHEALTHY, 10_001,
    )
    assert e.to_dict() == {
        "index": 2, "type": "health_changed", "at": 10_001, "id": "api-0",
        "service": "api", "from": "healthy", "to": "unhealthy",
    }
    assert reg.events_since(1) == [e] and reg.last_index == 2
    assert repr(e) == (
        "Event(index=2, type='health_changed', at=10001, id='api-0', service='api', "
        "from_='healthy', to='unhealthy')"
    )
    assert repr(reg.get("api-0", now=10_001)) == "InstanceView(id='api-0', service='api', health='unhealthy', inflight=0)"
    assert repr(reg.discover("api", all=True, now=10_001)) == "Discovery(ids=('api-0',), panic=False)"


def test_outcomes_eject() -> None:
    reg = waypost.Registry(seed=1, consecutive_failures=2, base_ejection_ms=1000, max_ejection_percent=100)
    reg.register("a", "api", "h", 1, now=0)
    reg.register("b", "api", "h", 1, now=0)
    reg.report_outcome("a", False, now=1)
    reg.report_outcome("a", False, now=2)
    v = reg.get("a", now=2)
    assert v.health is Health.EJECTED and v.ejected_until == 1002
    assert {reg.pick("api", now=3).id for _ in range(4)} == {"b"}


def test_due_checks_and_services() -> None:
    reg = waypost.Registry(seed=1)
    reg.register("a", "api", "h", 1, check_interval_ms=100, now=0)
    reg.register("b", "web", "h", 1, now=0)
    assert reg.services(now=0) == ["api", "web"]
    assert reg.due_checks(now=0) == ["a"]
    assert reg.due_checks(now=50) == []
    assert reg.due_checks(now=100) == ["a"]
    assert reg.service_modify_index("api") == 1


def test_snapshot_restore_continues_identically() -> None:
    a = fleet(4)
    a.pick("api", "random", now=1)
    b = waypost.Registry.restore(a.snapshot())
    assert json.loads(b.snapshot()) == json.loads(a.snapshot())
    assert json.loads(a.snapshot())["format"] == waypost.SNAPSHOT_FORMAT
    for strategy in ("random", "round_robin", "weighted_random"):
        assert [a.pick("api", strategy, now=2).id for _ in range(20)] == [
            b.pick("api", strategy, now=2).id for _ in range(20)
        ]
    assert len(b) == 4 and b.clock == 2


def test_pickle_and_deepcopy_go_through_snapshots() -> None:
    import copy
    import pickle

    a = fleet(3)
    clones = [pickle.loads(pickle.dumps(a)), copy.deepcopy(a)]
    for clone in clones:
        assert clone is not a and clone.snapshot() == a.snapshot()
    expected = [a.pick("api", "random", now=5).id for _ in range(10)]
    for clone in clones:
        assert [clone.pick("api", "random", now=5).id for _ in range(10)] == expected


def test_config_keywords_and_properties() -> None:
    reg = waypost.Registry(ttl_ms=5, evict_after_ms=0, seed=3, panic_threshold=0.25, slow_start_ms=10)
    c = reg.config
    assert (c["ttl_ms"], c["evict_after_ms"], c["seed"], c["panic_threshold"], c["slow_start_ms"]) == (5, 0, 3, 0.25, 10)
    assert reg.clock == 0 and reg.last_index == 0 and reg.membership_epoch == 0 and len(reg) == 0
    assert reg.in_self_preservation is False
    reg.register("a", "api", "h", 1, now=7)
    assert reg.membership_epoch == 1 and reg.clock == 7
    assert "Registry(instances=1" in repr(reg)


def test_now_defaults_to_wall_clock() -> None:
    reg = waypost.Registry(seed=1)
    before = waypost.wall_clock_ms()
    reg.register("a", "api", "h", 1)
    assert before <= reg.clock <= waypost.wall_clock_ms()
    assert reg.get("a").registered_at == reg.clock


def test_metrics() -> None:
    reg = fleet(2)
    reg.pick("api", now=1)
    with pytest.raises(waypost.UnknownServiceError):
        reg.pick("nope", now=1)
    m = reg.service_metrics()
    assert m[0]["service"] == "api" and m[0]["picks"]["round_robin"] == 1 and m[0]["instances"]["healthy"] == 2
    text = reg.render_metrics()
    assert 'waypost_picks_total{service="api",strategy="round_robin"} 1' in text


def test_version() -> None:
    assert waypost.__version__.count(".") == 2
