"""waypost.consul and waypost.k8s against the loopback stand-in of Consul's
and the Kubernetes API server's HTTP APIs (tests/fakes/store_server.py):
blocking queries, an index going backwards, the rate limit, the registrar's
register/heartbeat/deregister, list + watch with bookmarks, in-stream and
HTTP 410, errors and clean shutdown."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

import waypost
from waypost import consul, k8s

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fakes"))
from store_server import StoreServer  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture
def server() -> Iterator[StoreServer]:
    with StoreServer(token="s3cret") as s:
        yield s


def call(s: StoreServer, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(s.url + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=5) as resp:
        text = resp.read()
    return json.loads(text) if text.strip() else None


def stats(s: StoreServer) -> dict[str, Any]:
    out: dict[str, Any] = call(s, "GET", "/_test/stats")
    return out


def eventually(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def registry() -> waypost.Registry:
    # Removals apply at once: these tests are about the helpers, not about
    # self-preservation (which the core's own tests cover).
    return waypost.Registry(seed=7, trust_empty_sync=True, self_preservation_threshold=0.0)


def view(reg: waypost.Registry, service: str) -> dict[str, tuple[str, str, int, Optional[str]]]:
    try:
        found = reg.discover(service, all=True)
    except waypost.UnknownServiceError:
        return {}
    return {i.id: (h.value, i.address, i.port, i.zone) for i, h in zip(found.instances, found.health)}


def health(reg: waypost.Registry, service: str, ident: str) -> Optional[str]:
    entry = view(reg, service).get(ident)
    return entry[0] if entry else None


def register(s: StoreServer, ident: str, service: str = "web", port: int = 8080, ttl: str = "30s") -> None:
    call(s, "PUT", "/v1/agent/service/register", {
        "ID": ident, "Name": service, "Address": "10.0.0.1", "Port": port,
        "Check": {"TTL": ttl, "Status": "passing", "DeregisterCriticalServiceAfter": "1m"}})


def no_leaks(s: StoreServer, threads: int) -> None:
    eventually(lambda: stats(s)["open"] == 0, 3, "the helper's connections closed")
    eventually(lambda: threading.active_count() <= threads, 3, "the helper's threads ended")


# --- Consul ------------------------------------------------------------


def test_consul_mirror_follows_register_health_and_deregister(server: StoreServer) -> None:
    reg = registry()
    threads = threading.active_count()
    with consul.Mirror(server.url, reg, "web", min_interval_s=0.02) as m:
        assert m.wait_synced(5) and m.error is None
        assert view(reg, "web") == {}
        register(server, "web-1")
        register(server, "web-2", port=8081)
        eventually(lambda: sorted(view(reg, "web")) == ["web-1", "web-2"], 5, "both registered")
        assert health(reg, "web", "web-1") == "healthy"
        call(server, "PUT", "/v1/agent/check/warn/service:web-1")
        eventually(lambda: health(reg, "web", "web-1") == "degraded", 5, "warning → degraded")
        call(server, "PUT", "/v1/agent/check/fail/service:web-1")
        eventually(lambda: health(reg, "web", "web-1") == "unhealthy", 5, "critical → unhealthy")
        call(server, "PUT", "/v1/agent/service/maintenance/web-2?enable=true&reason=deploy")
        eventually(lambda: health(reg, "web", "web-2") == "draining", 5, "maintenance → draining")
        call(server, "PUT", "/v1/agent/service/deregister/web-1")
        eventually(lambda: sorted(view(reg, "web")) == ["web-2"], 5, "web-1 deregistered")
        assert reg.get("web-2").to_dict()["status"] == "maintenance"
        # Blocking queries: a handful of requests for all of that, not a poll loop.
        assert stats(server)["requests"]["consul_health"] < 30
    assert m.status == "stopped"
    no_leaks(server, threads)


def test_consul_mirror_maps_a_fixture_as_the_core_does(server: StoreServer) -> None:
    payload = (FIXTURES / "consul" / "health-service-fleet.json").read_text()
    call(server, "POST", "/_test/consul/load", {"service": "web", "entries": json.loads(payload)})
    reg = registry()
    with consul.Mirror(server.url, reg, "web", min_interval_s=0.02) as m:
        assert m.wait_synced(5)
        direct = registry()
        direct.source_add("consul", {"kind": "consul", "service": "web"})
        direct.source_feed("consul", payload, status=200, index="7")
        eventually(lambda: view(reg, "web") == view(direct, "web"), 5, "same registry as the payload fed by hand")
        assert len(view(reg, "web")) >= 5


def test_consul_index_going_backwards_resets_and_carries_on(server: StoreServer) -> None:
    reg = registry()
    register(server, "web-1")
    with consul.Mirror(server.url, reg, "web", min_interval_s=0.02) as m:
        assert m.wait_synced(5)
        for i in range(2, 6):
            register(server, f"web-{i}")
        eventually(lambda: len(view(reg, "web")) == 5, 5, "five registered")
        high = stats(server)["consul_index"]
        eventually(lambda: m.index == high, 5, "the mirror holds the server's index")
        before = stats(server)["requests"]["consul_health"]
        call(server, "POST", "/_test/consul/index", {"index": 2})  # e.g. a snapshot restored on the servers
        eventually(lambda: m.index == 2, 5, "the index reset, then read again from the server")
        # Backwards → reset to 0 → one query without an index → blocking on 2 again.
        eventually(lambda: stats(server)["requests"]["consul_health"] >= before + 2, 3, "queried again")
        assert m.error is None
        register(server, "web-6")
        eventually(lambda: len(view(reg, "web")) == 6, 5, "changes still followed after the reset")


def test_consul_loop_is_rate_limited_when_queries_do_not_block(server: StoreServer) -> None:
    call(server, "POST", "/_test/consul/blocking", {"on": False})
    reg = registry()
    with consul.Mirror(server.url, reg, "web", min_interval_s=0.2) as m:
        assert m.wait_synced(5)
        start = stats(server)["requests"].get("consul_health", 0)
        time.sleep(1.0)
        made = stats(server)["requests"]["consul_health"] - start
    assert 2 <= made <= 7, made


def test_consul_on_change_fires_only_for_reports_the_core_marks_changed(server: StoreServer) -> None:
    call(server, "POST", "/_test/consul/blocking", {"on": False})
    register(server, "web-1")
    reg = registry()
    changes: list[dict[str, Any]] = []
    with consul.Mirror(server.url, reg, "web", min_interval_s=0.02, on_change=changes.append) as m:
        assert m.wait_synced(5)
        # The same answer again and again: the core reports it unchanged.
        eventually(lambda: m.feeds >= 5, 5, "the same answer read several times")
        assert [(c["added"], c["changed"]) for c in changes] == [(1, True)]
        call(server, "PUT", "/v1/agent/service/deregister/web-1")
        eventually(lambda: len(changes) == 2, 5, "the removal reported")
        assert (changes[1]["removed"], changes[1]["changed"]) == (1, True)


def test_consul_registrar_registers_heartbeats_and_deregisters(server: StoreServer) -> None:
    reg = registry()
    threads = threading.active_count()
    inst = {"id": "pay-1", "service": "pay", "address": "10.0.0.9", "port": 9000, "tags": ["v2"], "weight": 5,
            "zone": "eu-1a"}
    with consul.Mirror(server.url, reg, "pay", min_interval_s=0.02) as m:
        assert m.wait_synced(5)
        with consul.Registrar(server.url, inst, ttl_s=1, deregister_after_s=1) as r:
            eventually(lambda: health(reg, "pay", "pay-1") == "healthy", 5, "registered and passing")
            got = reg.get("pay-1").instance
            assert (got.address, got.port, got.weight, got.zone, list(got.tags)) == ("10.0.0.9", 9000, 5, "eu-1a", ["v2"])
            time.sleep(2.2)  # two TTLs: only the heartbeats keep it passing
            assert health(reg, "pay", "pay-1") == "healthy"
            assert r.heartbeats >= 4 and r.error is None
            # The agent forgets it (restarted, or reaped it): registered again.
            call(server, "PUT", "/v1/agent/service/deregister/pay-1")
            eventually(lambda: r.registrations == 2, 3, "registered again")
            eventually(lambda: health(reg, "pay", "pay-1") == "healthy", 5, "back in the mirror")
        assert r.status == "stopped"
        t0 = time.monotonic()
        eventually(lambda: view(reg, "pay") == {}, 2, "deregistered on close")
        assert time.monotonic() - t0 < 1.0
    no_leaks(server, threads)


def agent_calls(s: StoreServer) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = call(s, "GET", "/_test/consul/agent")
    return out


def sent(calls: list[dict[str, Any]]) -> list[str]:
    return [f"{c['method']} {c['path']}" for c in calls]


def from_update(s: StoreServer, mark: int) -> list[dict[str, Any]]:
    """The agent calls from the update's registration on (a heartbeat may
    have gone out between ``mark`` and the update)."""
    calls = agent_calls(s)[mark:]
    first = next(i for i, c in enumerate(calls) if c["path"] == "/v1/agent/service/register")
    return calls[first:]


def test_consul_registrar_update_maps_status_and_heartbeats_keep_it(server: StoreServer) -> None:
    reg = registry()
    inst = {"id": "pay-3", "service": "pay", "address": "10.0.0.9", "port": 9000}
    beat_warn = "PUT /v1/agent/check/warn/service:pay-3"
    beat_pass = "PUT /v1/agent/check/pass/service:pay-3"
    with consul.Mirror(server.url, reg, "pay", min_interval_s=0.02) as m:
        assert m.wait_synced(5)
        r = consul.Registrar(server.url, inst, ttl_s=1, deregister_after_s=5)
        r.update(dict(inst, port=9001))  # before start: only kept
        assert agent_calls(server) == []
        with r:
            eventually(lambda: view(reg, "pay").get("pay-3") == ("healthy", "10.0.0.9", 9001, None), 5, "registered")

            # warning: the new fields re-registered with the same ID and TTL check, the check warned.
            mark = len(agent_calls(server))
            r.update(dict(inst, port=9002, status="warning"))
            calls = from_update(server, mark)
            # The update's own calls: a heartbeat may follow them at once.
            assert sent(calls)[:2] == ["PUT /v1/agent/service/register", beat_warn]
            body = calls[0]["body"]
            assert (body["ID"], body["Name"], body["Port"]) == ("pay-3", "pay", 9002)
            assert body["Check"] == {"CheckID": "service:pay-3", "Name": "waypost TTL for pay-3", "TTL": "1s",
                                     "Status": "warning", "DeregisterCriticalServiceAfter": "5s"}
            eventually(lambda: view(reg, "pay").get("pay-3") == ("degraded", "10.0.0.9", 9002, None), 5, "warning → degraded")
            assert reg.get("pay-3").to_dict()["status"] == "warning"
            time.sleep(1.5)  # past the TTL: only heartbeats keep the check alive, and they keep it warning
            beats = [c for c in sent(from_update(server, mark)[2:]) if "/check/" in c]
            assert len(beats) >= 3 and set(beats) == {beat_warn}, beats
            assert health(reg, "pay", "pay-3") == "degraded"

            # maintenance: the agent's maintenance mode on a passing check.
            mark = len(agent_calls(server))
            r.update(dict(inst, status="maintenance"))
            assert sent(from_update(server, mark))[:3] == [
                "PUT /v1/agent/service/register", beat_pass,
                "PUT /v1/agent/service/maintenance/pay-3?enable=true&reason=waypost%3A%20maintenance"]
            eventually(lambda: health(reg, "pay", "pay-3") == "draining", 5, "maintenance → draining")
            assert reg.get("pay-3").to_dict()["status"] == "maintenance"
            time.sleep(1.2)
            assert health(reg, "pay", "pay-3") == "draining"
            assert set(c for c in sent(from_update(server, mark)[3:]) if "/check/" in c) == {beat_pass}
            # The agent forgets it: registered again, and maintenance turned on again.
            registrations = r.registrations
            call(server, "PUT", "/v1/agent/service/deregister/pay-3")
            eventually(lambda: r.registrations == registrations + 1, 3, "registered again")
            eventually(lambda: health(reg, "pay", "pay-3") == "draining", 5, "still draining after the re-registration")
            everything = sent(agent_calls(server))
            again = max(i for i, c in enumerate(everything) if c == "PUT /v1/agent/service/register")
            assert any(c.startswith("PUT /v1/agent/service/maintenance/pay-3?enable=true") for c in everything[again:])

            # Back to passing: maintenance off.
            mark = len(agent_calls(server))
            r.update(inst)
            assert sent(from_update(server, mark))[:3] == [
                "PUT /v1/agent/service/register", beat_pass, "PUT /v1/agent/service/maintenance/pay-3?enable=false"]
            eventually(lambda: view(reg, "pay").get("pay-3") == ("healthy", "10.0.0.9", 9000, None), 5, "passing again")
            assert reg.get("pay-3").to_dict()["status"] == "passing"

            mark = len(agent_calls(server))
            with pytest.raises(ValueError):
                r.update(dict(inst, id="pay-4"))  # another instance
            with pytest.raises(ValueError):
                r.update(dict(inst, service="web"))
            with pytest.raises(ValueError):
                r.update(dict(inst, status="draining"))
            assert "/v1/agent/service/register" not in [c["path"] for c in agent_calls(server)[mark:]]
            assert r.instance == inst and r.error is None
        eventually(lambda: view(reg, "pay") == {}, 2, "deregistered on close")
        # After close: only kept; the next start registers it critical.
        mark = len(agent_calls(server))
        r.update(dict(inst, status="critical"))
        assert agent_calls(server)[mark:] == []
        with r:
            assert r.registrations >= 5
            eventually(lambda: health(reg, "pay", "pay-3") == "unhealthy", 5, "registered critical")
            assert agent_calls(server)[mark]["body"]["Check"]["Status"] == "critical"
            assert sent(agent_calls(server)[mark + 1:mark + 2]) == ["PUT /v1/agent/check/fail/service:pay-3"]


def test_consul_registration_is_the_cores_byte_for_byte() -> None:
    """The shared cases (tests/fixtures/consul/registration.json): the same
    instance gives the same registration, body bytes included, in every
    language; and the registrar sends exactly that body."""
    cases = json.loads((FIXTURES / "consul" / "registration.json").read_text())["cases"]
    for case in cases:
        args = (case["instance"], case["ttl_s"], case["deregister_after_s"])
        if "error" in case:
            with pytest.raises(waypost.Error) as caught:
                waypost._waypost.consul_registration(*args)
            assert caught.value.code == case["error"], case["name"]
            continue
        got = waypost._waypost.consul_registration(*args)
        assert got == case["expect"], case["name"]
        assert list(got) == ["id", "service", "check_id", "body", "heartbeat_path", "maintenance",
                             "deregister_path", "maintenance_on_path", "maintenance_off_path"]
    with StoreServer() as s:
        first = cases[0]
        r = consul.Registrar(s.url, first["instance"], ttl_s=first["ttl_s"],
                             deregister_after_s=first["deregister_after_s"])
        with r:
            calls = agent_calls(s)
        assert calls[0]["path"] == "/v1/agent/service/register"
        assert calls[0]["raw"] == first["expect"]["body"]
    # The paths, escaping included: registered, drained, back to passing, closed.
    with StoreServer() as s:
        for case in cases:
            if "expect" not in case:
                continue
            e, mark = case["expect"], len(agent_calls(s))
            passing = dict(case["instance"], status="passing")
            with consul.Registrar(s.url, passing, ttl_s=10, deregister_after_s=case["deregister_after_s"]) as r:
                r.update(dict(passing, status="maintenance"))
                r.update(passing)
            beat = "/v1/agent/check/pass/" + e["heartbeat_path"].rsplit("/", 1)[1]
            assert [c["path"] for c in agent_calls(s)[mark:]] == [
                "/v1/agent/service/register", beat,
                "/v1/agent/service/register", beat, e["maintenance_on_path"],
                "/v1/agent/service/register", beat, e["maintenance_off_path"],
                e["deregister_path"]], case["name"]


def test_consul_registrant_that_dies_goes_critical_then_away(server: StoreServer) -> None:
    reg = registry()
    inst = {"id": "pay-2", "service": "pay", "address": "10.0.0.9", "port": 9000}
    with consul.Mirror(server.url, reg, "pay", min_interval_s=0.02) as m:
        assert m.wait_synced(5)
        r = consul.Registrar(server.url, inst, ttl_s=1, deregister_after_s=1).start()
        eventually(lambda: health(reg, "pay", "pay-2") == "healthy", 5, "registered")
        r._stop.set()  # the process dies: no more heartbeats, no deregister
        eventually(lambda: health(reg, "pay", "pay-2") == "unhealthy", 3, "TTL expired → critical")
        eventually(lambda: view(reg, "pay") == {}, 4, "reaped after DeregisterCriticalServiceAfter")


def test_consul_errors_are_visible_and_close_is_prompt() -> None:
    with StoreServer() as s:
        dead = s.url  # a port nobody listens on once this server is gone
    seen: list[Exception] = []
    reg = registry()
    m = consul.Mirror(dead, reg, "web", on_error=seen.append).start()
    eventually(lambda: len(seen) >= 2, 5, "failures reported")
    assert m.status == "retrying" and isinstance(m.error, consul.ConsulError)
    assert dead in str(m.error)
    t0 = time.monotonic()
    m.close()
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(consul.ConsulError):
        consul.Registrar(dead, {"id": "a", "service": "b", "address": "x", "port": 1}).start()
    with pytest.raises(ValueError):
        consul.Registrar(dead, {"id": "a"})


def test_consul_close_aborts_a_blocking_query(server: StoreServer) -> None:
    reg = registry()
    m = consul.Mirror(server.url, reg, "web", min_interval_s=0.0).start()
    assert m.wait_synced(5)
    eventually(lambda: stats(server)["open"] >= 1, 3, "a blocking query in flight")
    t0 = time.monotonic()
    m.close()
    assert time.monotonic() - t0 < 1.0
    eventually(lambda: stats(server)["open"] == 0, 3, "the query's connection closed")


# --- Kubernetes --------------------------------------------------------

SLICE_LIST = json.loads((FIXTURES / "k8s" / "endpointslice-list.json").read_text())


def slice_of(name: str, ip: str, pod: str, ready: bool = True, service: str = "api") -> dict[str, Any]:
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": "shop", "labels": {"kubernetes.io/service-name": service}},
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}, "zone": "z1",
                           "targetRef": {"kind": "Pod", "namespace": "shop", "name": pod}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def k8s_mirror(s: StoreServer, reg: waypost.Registry, **kw: Any) -> k8s.Mirror:
    return k8s.Mirror(s.url, reg, "shop", "api", "http", token="s3cret", **kw)


def test_k8s_mirror_lists_then_follows_the_watch(server: StoreServer) -> None:
    call(server, "POST", "/_test/k8s/load", {"namespace": "shop", "list": SLICE_LIST})
    reg = registry()
    threads = threading.active_count()
    with k8s_mirror(server, reg) as m:
        assert m.wait_synced(5) and m.error is None
        direct = registry()
        direct.source_add("k8s", {"kind": "k8s", "namespace": "shop", "service": "api", "port": "http"})
        direct.source_feed("k8s", json.dumps(SLICE_LIST), status=200)
        assert view(reg, "api") == view(direct, "api") and view(reg, "api")
        eventually(lambda: stats(server)["watches"] == 1, 3, "watching")
        call(server, "POST", "/_test/k8s/put", {"slice": slice_of("api-new", "10.9.0.1", "api-new-pod")})
        eventually(lambda: "api-new-pod" in view(reg, "api"), 5, "ADDED slice applied")
        assert view(reg, "api")["api-new-pod"] == ("healthy", "10.9.0.1", 8080, "z1")
        call(server, "POST", "/_test/k8s/put", {"slice": slice_of("api-new", "10.9.0.1", "api-new-pod", ready=False)})
        eventually(lambda: health(reg, "api", "api-new-pod") == "unhealthy", 5, "MODIFIED: not ready")
        call(server, "POST", "/_test/k8s/delete", {"namespace": "shop", "name": "api-new"})
        eventually(lambda: "api-new-pod" not in view(reg, "api"), 5, "DELETED slice applied")
        assert view(reg, "api") == view(direct, "api")
        assert m.lists == 1 and stats(server)["requests"]["k8s_list"] == 1
    no_leaks(server, threads)


def test_k8s_bookmark_moves_the_resume_point(server: StoreServer) -> None:
    call(server, "POST", "/_test/k8s/put", {"slice": slice_of("api-a", "10.0.0.1", "pod-a")})
    reg = registry()
    with k8s_mirror(server, reg) as m:
        assert m.wait_synced(5)
        eventually(lambda: stats(server)["watches"] == 1, 3, "watching")
        rv = call(server, "POST", "/_test/k8s/bookmark")["k8s_resource_version"]
        eventually(lambda: m.resource_version == str(rv), 5, "the bookmark's resource version taken")
        # History before the bookmark is compacted and the watch breaks: the
        # mirror resumes from the bookmark, so no 410 and no new list.
        call(server, "POST", "/_test/k8s/compact")
        call(server, "POST", "/_test/k8s/drop")
        eventually(lambda: stats(server)["requests"]["k8s_watch"] >= 2, 5, "watching again")
        call(server, "POST", "/_test/k8s/put", {"slice": slice_of("api-b", "10.0.0.2", "pod-b")})
        eventually(lambda: sorted(view(reg, "api")) == ["pod-a", "pod-b"], 5, "change after the resume")
        assert m.lists == 1 and "k8s_watch_410" not in stats(server)["requests"]


def test_k8s_in_stream_410_relists(server: StoreServer) -> None:
    call(server, "POST", "/_test/k8s/put", {"slice": slice_of("api-a", "10.0.0.1", "pod-a")})
    reg = registry()
    changes: list[dict[str, Any]] = []
    with k8s_mirror(server, reg, on_change=changes.append) as m:
        assert m.wait_synced(5)
        eventually(lambda: stats(server)["watches"] == 1, 3, "watching")
        call(server, "POST", "/_test/k8s/expire")
        eventually(lambda: m.lists == 2, 5, "listed again after the ERROR event")
        assert any(c["resync"] for c in changes)
        call(server, "POST", "/_test/k8s/put", {"slice": slice_of("api-b", "10.0.0.2", "pod-b")})
        eventually(lambda: sorted(view(reg, "api")) == ["pod-a", "pod-b"], 5, "followed after the relist")
        assert m.error is None


def test_k8s_http_410_relists(server: StoreServer) -> None:
    call(server, "POST", "/_test/k8s/put", {"slice": slice_of("api-a", "10.0.0.1", "pod-a")})
    reg = registry()
    with k8s_mirror(server, reg) as m:
        assert m.wait_synced(5)
        eventually(lambda: stats(server)["watches"] == 1, 3, "watching")
        # While the watch is down, the slice goes away and history is compacted past it.
        call(server, "POST", "/_test/k8s/compact", {"bump": 3})
        call(server, "POST", "/_test/k8s/drop")
        eventually(lambda: stats(server)["requests"].get("k8s_watch_410", 0) == 1, 5, "HTTP 410 on the re-watch")
        eventually(lambda: m.lists == 2, 5, "listed again")
        call(server, "POST", "/_test/k8s/delete", {"namespace": "shop", "name": "api-a"})
        eventually(lambda: view(reg, "api") == {}, 5, "followed after the relist")
        assert m.error is None


def test_k8s_in_cluster_defaults_and_errors(server: StoreServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    (tmp_path / "namespace").write_text("shop")
    call(server, "POST", "/_test/k8s/put", {"slice": slice_of("api-a", "10.0.0.1", "pod-a")})
    reg = registry()
    with k8s.Mirror(server.url, reg, None, "api", "http", service_account_dir=str(tmp_path)) as m:
        assert m.wait_synced(5) and m.namespace == "shop"
        assert sorted(view(reg, "api")) == ["pod-a"]
    # A wrong token: the 401 is an error a person can read, retried.
    seen: list[Exception] = []
    bad = k8s.Mirror(server.url, registry(), "shop", "api", "http", token="nope", on_error=seen.append).start()
    eventually(lambda: len(seen) >= 1, 5, "the 401 reported")
    assert isinstance(bad.error, k8s.KubernetesError) and bad.error.status == 401 and "401" in str(bad.error)
    bad.close()
    with pytest.raises(k8s.KubernetesError, match="CA file"):
        k8s.Mirror("https://127.0.0.1:1", registry(), "shop", "api", token="x", ca_file=str(tmp_path / "nope.crt"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(k8s.KubernetesError, match="KUBERNETES_SERVICE_HOST"):
        k8s.Mirror(None, registry(), "shop", "api")
    with pytest.raises(k8s.KubernetesError, match="namespace"):
        k8s.Mirror(server.url, registry(), None, "api", service_account_dir=str(tmp_path / "missing"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert k8s.in_cluster_api_server() == "https://10.96.0.1:443"
    assert os.environ["KUBERNETES_SERVICE_PORT"] == "443"
