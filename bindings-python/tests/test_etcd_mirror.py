"""waypost.etcd.Mirror against a real etcd: follow, expire, restart, compaction,
a cluster losing its leader, the failover cache."""
from __future__ import annotations

import http.server
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

import waypost
from etcd_harness import EtcdCluster, EtcdServer, put_all
from waypost.etcd import EtcdError, Mirror, Registrar, restore_cache


def inst(i: int, service: str = "api") -> dict[str, object]:
    return {"id": f"{service}-{i}", "service": service, "address": f"10.0.0.{i}", "port": 8080}


def ids(reg: waypost.Registry, service: str = "api") -> list[str]:
    try:
        return [i.id for i in reg.discover(service, all=True)]
    except waypost.UnknownServiceError:
        return []


def eventually(cond: Callable[[], bool], timeout: float, what: str) -> float:
    """Waits for cond; answers the seconds it took."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def registered_counts(reg: waypost.Registry) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in reg.events_since(0):
        if e.type.value == "registered" and e.id is not None:
            counts[e.id] = counts.get(e.id, 0) + 1
    return counts


def store_ids(etcd: EtcdServer, prefix: str, service: str = "api") -> list[str]:
    return sorted(json.loads(v)["id"] for k, v in etcd.client.get_prefix(f"{prefix}/{service}/").items())


def test_mirror_follows_puts_deletes_and_status(etcd: EtcdServer, prefix: str) -> None:
    etcd.client.put(f"{prefix}/api/api-1", json.dumps(inst(1)))
    reg = waypost.Registry(seed=7)
    threads = threading.active_count()
    with Mirror([etcd.endpoint], reg, prefix=prefix) as m:
        assert m.wait_synced(5) and m.error is None
        assert ids(reg) == ["api-1"]
        assert reg.get("api-1").to_dict().get("source") == "etcd"
        etcd.client.put(f"{prefix}/api/api-2", json.dumps({**inst(2), "status": "warning"}))
        eventually(lambda: ids(reg) == ["api-1", "api-2"], 3, "put seen")
        assert reg.get("api-2").health.value == "degraded"
        rev = etcd.client.delete(f"{prefix}/api/api-1")
        eventually(lambda: ids(reg) == ["api-2"], 3, "delete seen")
        assert m.revision == rev
    assert threading.active_count() == threads
    assert ids(reg) == ["api-2"]  # the registry keeps what it holds


def test_registrant_sigkilled_leaves_within_ttl_plus_1s_and_clean_stop_at_once(etcd: EtcdServer, prefix: str) -> None:
    reg = waypost.Registry(seed=7)
    code = (
        "import sys, time\n"
        "from waypost.etcd import Registrar\n"
        f"r = Registrar([{etcd.endpoint!r}], {inst(9)!r}, prefix={prefix!r}, ttl_s=2).start()\n"
        "print(r.granted_ttl, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        granted = int(child.stdout.readline())
        with Mirror([etcd.endpoint], reg, prefix=prefix) as m, \
                Registrar([etcd.endpoint], inst(1), prefix=prefix, ttl_s=2) as mine:
            m.wait_synced(5)
            eventually(lambda: ids(reg) == ["api-1", "api-9"], 3, "both registered")
            time.sleep(2.5)  # keep-alives hold both past the TTL
            assert ids(reg) == ["api-1", "api-9"]
            child.send_signal(signal.SIGKILL)
            took = eventually(lambda: ids(reg) == ["api-1"], granted + 1, "the killed registrant gone")
            assert took <= granted + 1
            with pytest.raises(waypost.UnknownServiceError):
                for _ in range(10):
                    assert reg.pick("api").id == "api-1"
                reg.pick("gone")
            mine.close()
            took = eventually(lambda: ids(reg) == [], 1.0, "a clean stop removes at once")
            assert took < 0.5
    finally:
        child.kill()
        child.wait()


def test_etcd_sigkill_and_restart_loses_and_repeats_nothing(prefix: str) -> None:
    reg = waypost.Registry(seed=7)
    with EtcdServer() as etcd:
        etcd.client.put(f"{prefix}/api/api-1", json.dumps(inst(1)))
        with Mirror([etcd.endpoint], reg, prefix=prefix) as m, \
                Registrar([etcd.endpoint], inst(2), prefix=prefix, ttl_s=3) as r:
            assert m.wait_synced(5)
            eventually(lambda: ids(reg) == ["api-1", "api-2"], 3, "synced")
            lease = r.lease_id
            etcd.kill()
            eventually(lambda: m.error is not None, 5, "the mirror notices")
            etcd.start()
            etcd.client.put(f"{prefix}/api/api-3", json.dumps(inst(3)))
            etcd.client.delete(f"{prefix}/api/api-1")
            eventually(lambda: ids(reg) == ["api-2", "api-3"], 10, "resumed")
            eventually(lambda: m.error is None and r.error is None, 10, "both healthy")
            assert r.lease_id == lease  # re-attached to its lease
            assert ids(reg) == store_ids(etcd, prefix)
            assert registered_counts(reg) == {"api-1": 1, "api-2": 1, "api-3": 1}


def test_compaction_while_disconnected_resyncs_to_the_store(etcd: EtcdServer, prefix: str) -> None:
    reg = waypost.Registry(seed=7)
    for i in (1, 2, 3):
        etcd.client.put(f"{prefix}/api/api-{i}", json.dumps(inst(i)))
    with Mirror([etcd.endpoint], reg, prefix=prefix) as m:
        assert m.wait_synced(5) and ids(reg) == ["api-1", "api-2", "api-3"]
        seen = m.revision
    # disconnected: the store moves on and forgets its history
    etcd.client.delete(f"{prefix}/api/api-2")
    etcd.client.put(f"{prefix}/api/api-4", json.dumps(inst(4)))
    etcd.client.put(f"{prefix}/api/api-3", json.dumps({**inst(3), "weight": 5}))
    etcd.client.compact(etcd.client.revision())
    reports: list[dict[str, object]] = []
    with Mirror([etcd.endpoint], reg, prefix=prefix, on_change=reports.append) as m:
        eventually(lambda: ids(reg) == ["api-1", "api-3", "api-4"], 5, "resynced")
        assert m.revision > seen
    assert any(r["resync"] for r in reports)
    assert ids(reg) == store_ids(etcd, prefix)
    assert reg.get("api-3").to_dict()["weight"] == 5


def test_cluster_leader_killed_registrars_and_mirrors_carry_on(prefix: str) -> None:
    reg = waypost.Registry(seed=7)
    with EtcdCluster() as cluster:
        eps = cluster.endpoints
        with Mirror(eps, reg, prefix=prefix) as m, \
                Registrar(list(reversed(eps)), inst(1), prefix=prefix, ttl_s=3) as r:
            assert m.wait_synced(5)
            eventually(lambda: ids(reg) == ["api-1"], 3, "registered")
            leader = cluster.wait_leader()
            leader.kill()
            alive = cluster.wait_leader()
            alive.client.put(f"{prefix}/api/api-2", json.dumps(inst(2)))
            eventually(lambda: ids(reg) == ["api-1", "api-2"], 10, "the mirror carries on")
            time.sleep(3.5)  # past the TTL: the registrar kept its key through the others
            assert store_ids(alive, prefix) == ["api-1", "api-2"]
            assert ids(reg) == ["api-1", "api-2"]
            assert r.error is None


def test_failover_cache_serves_the_last_fleet_while_etcd_is_down(prefix: str, tmp_path: Path) -> None:
    cache = str(tmp_path / "fleet.json")
    with EtcdServer() as etcd:
        for i in (1, 2):
            etcd.client.put(f"{prefix}/api/api-{i}", json.dumps(inst(i)))
        reg = waypost.Registry(seed=7)
        with Mirror([etcd.endpoint], reg, prefix=prefix, cache_path=cache, cache_interval_s=0.2) as m:
            assert m.wait_synced(5)
            etcd.client.put(f"{prefix}/api/api-3", json.dumps(inst(3)))
            eventually(lambda: ids(reg) == ["api-1", "api-2", "api-3"], 3, "followed")
            eventually(lambda: os.path.exists(cache) and "api-3" in Path(cache).read_text(), 3, "cached")
        assert [p.name for p in tmp_path.iterdir()] == ["fleet.json"]  # no temporary left
        etcd.stop()
        restored = restore_cache(cache)
        assert restored is not None and ids(restored) == ["api-1", "api-2", "api-3"]
        with Mirror([etcd.endpoint], restored, prefix=prefix, cache_path=cache) as m:
            time.sleep(0.5)
            assert m.error is not None and not m.synced
            assert restored.pick("api").id in ("api-1", "api-2", "api-3")  # the last known fleet
            etcd.start()
            etcd.client.delete(f"{prefix}/api/api-1")
            eventually(lambda: ids(restored) == ["api-2", "api-3"], 10, "reconciled")
            assert registered_counts(restored) == {"api-1": 1, "api-2": 1, "api-3": 1}
    assert restore_cache(str(tmp_path / "none.json")) is None


def fleet_value(ident: str, i: int) -> str:
    """The wire form of instance ``ident``, ``i`` giving it an address of its own."""
    return json.dumps({"id": ident, "service": "api", "address": f"10.{i // 256}.{i % 256}.1", "port": 8080})


@pytest.mark.parametrize("grpc", [True, False], ids=["grpc", "gateway"])
def test_mirror_reads_the_range_over_grpc_by_default(etcd: EtcdServer, prefix: str, grpc: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    n = 2000
    put_all(etcd.client, [(f"{prefix}/api/api-{i}", fleet_value(f"api-{i}", i)) for i in range(n)])
    reg = waypost.Registry(seed=7)
    m = Mirror([etcd.endpoint], reg, prefix=prefix, grpc=grpc)
    sent: list[str] = []
    transport = m._etcd  # noqa: SLF001 - which of its calls carried the range
    real_grpc, real_request = transport.grpc, transport.request

    def grpc_call(path: str, message: bytes, context: Optional[ssl.SSLContext] = None) -> bytes:
        sent.append("grpc " + path)
        return real_grpc(path, message, context)

    def gateway_call(method: str, path: str, body: str, timeout: Optional[float] = None) -> tuple[int, bytes]:
        sent.append("gateway " + path)
        return real_request(method, path, body, timeout)

    monkeypatch.setattr(transport, "grpc", grpc_call)
    monkeypatch.setattr(transport, "request", gateway_call)
    with m:
        assert m.wait_synced(10), m.error
        assert len(ids(reg)) == n
        etcd.client.put(f"{prefix}/api/api-new", fleet_value("api-new", n))
        eventually(lambda: len(ids(reg)) == n + 1, 5, "the watch follows")
    assert sent == (["grpc /etcdserverpb.KV/Range"] if grpc else ["gateway /v3/kv/range"])


def test_an_endpoint_without_grpc_is_reported_and_failed_over(etcd: EtcdServer, prefix: str) -> None:
    """An endpoint that answers HTTP/1.1 only: the gRPC range fails there, is
    reported, and the mirror moves on to a member that answers."""
    etcd.client.put(f"{prefix}/api/api-1", json.dumps(inst(1)))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    http1 = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        errors: list[Exception] = []
        with Mirror([http1], waypost.Registry(), prefix=prefix, on_error=errors.append) as m:
            eventually(lambda: m.error is not None, 5, "an error reported")
            assert isinstance(m.error, EtcdError) and http1 in str(m.error) and "does not speak HTTP/2" in str(m.error)
            assert not m.synced and errors
        reg = waypost.Registry(seed=7)
        with Mirror([http1, etcd.endpoint], reg, prefix=prefix) as m:
            assert m.wait_synced(5), m.error
            assert ids(reg) == ["api-1"] and m.endpoint == etcd.endpoint
    finally:
        server.shutdown()
        server.server_close()
