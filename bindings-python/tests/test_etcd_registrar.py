"""waypost.etcd.Registrar against a real etcd: lease, keep-alive, loss, revoke, failover."""
from __future__ import annotations

import json
import threading
import time
from typing import Callable

import pytest

from etcd_harness import EtcdServer, b64, free_port
from waypost.etcd import EtcdError, Registrar

API1 = {"id": "api-1", "service": "api", "address": "10.0.0.1", "port": 8080}


def eventually(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def test_registers_with_a_lease_keeps_it_alive_and_revokes_on_close(etcd: EtcdServer, prefix: str) -> None:
    threads = threading.active_count()
    with Registrar([etcd.endpoint], API1, prefix=prefix, ttl_s=1) as r:
        assert r.granted_ttl == 2  # etcd raises a TTL below its minimum
        assert r.key == f"{prefix}/api/api-1"
        assert json.loads(etcd.client.get_prefix(prefix)[r.key]) == API1
        ttl = etcd.client.call("/v3/lease/timetolive", {"ID": r.lease_id})
        assert int(ttl["grantedTTL"]) == 2
        time.sleep(3.0)  # past the TTL: only the keep-alives hold the key
        assert r.key in etcd.client.get_prefix(prefix)
        assert r.error is None and r.status == "registered" and r.registrations == 1
    assert etcd.client.get_prefix(prefix) == {}  # revoked: gone at once
    assert r.status == "stopped" and r.lease_id is None
    assert threading.active_count() == threads
    r.close()  # twice is fine


def test_a_lost_lease_is_noticed_and_registered_again(etcd: EtcdServer, prefix: str) -> None:
    with Registrar(etcd.endpoint, API1, prefix=prefix, ttl_s=3) as r:
        first = r.lease_id
        etcd.client.call("/v3/lease/revoke", {"ID": first})
        assert etcd.client.get_prefix(prefix) == {}
        eventually(lambda: r.registrations == 2, 3.0, "registered again")
        assert r.lease_id != first
        assert r.key in etcd.client.get_prefix(prefix)


def test_an_update_is_written_under_the_lease_and_outlives_a_lost_lease(etcd: EtcdServer, prefix: str) -> None:
    drained = dict(API1, status="maintenance")
    with Registrar(etcd.endpoint, API1, prefix=prefix, ttl_s=3) as r:
        lease = r.lease_id
        r.update(drained)
        assert json.loads(etcd.client.get_prefix(prefix)[r.key]) == drained
        assert r.lease_id == lease and r.registrations == 1
        found = etcd.client.call("/v3/kv/range", {"key": b64(r.key)})["kvs"][0]
        assert found["lease"] == lease
        # The lease is revoked from outside: the registration that follows
        # writes the updated value, not the one given at construction.
        etcd.client.call("/v3/lease/revoke", {"ID": lease})
        eventually(lambda: r.key in etcd.client.get_prefix(prefix), 5.0, "registered again")
        assert r.lease_id != lease and r.registrations == 2
        assert json.loads(etcd.client.get_prefix(prefix)[r.key]) == drained
        # An update while the lease is gone registers again at once.
        etcd.client.call("/v3/lease/revoke", {"ID": r.lease_id})
        r.update(API1)
        assert json.loads(etcd.client.get_prefix(prefix)[r.key]) == API1 and r.registrations == 3
        with pytest.raises(ValueError):
            r.update(dict(API1, id="api-2"))  # another key
        with pytest.raises(ValueError):
            r.update(dict(API1, service="web"))
    assert etcd.client.get_prefix(prefix) == {}
    r.update(drained)  # after close: kept for the next start, nothing written
    assert etcd.client.get_prefix(prefix) == {}
    with r:
        assert json.loads(etcd.client.get_prefix(prefix)[r.key]) == drained


def test_a_deleted_key_is_put_back_on_the_same_lease(etcd: EtcdServer, prefix: str) -> None:
    with Registrar(etcd.endpoint, API1, prefix=prefix, ttl_s=3) as r:
        lease = r.lease_id
        etcd.client.delete(r.key)
        eventually(lambda: r.key in etcd.client.get_prefix(prefix), 3.0, "key put back")
        assert r.lease_id == lease and r.registrations == 1


def test_a_dead_endpoint_is_skipped(etcd: EtcdServer, prefix: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with Registrar([dead, etcd.endpoint], API1, prefix=prefix, ttl_s=2) as r:
        assert r.endpoint == etcd.endpoint
        assert r.key in etcd.client.get_prefix(prefix)


def test_no_endpoint_answering_is_an_error_naming_them() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    r = Registrar([dead], API1)
    with pytest.raises(EtcdError) as e:
        r.start()
    assert dead in str(e.value) and "/v3/lease/grant" in str(e.value)
    r.close()


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError):
        Registrar(["http://127.0.0.1:1"], {"service": "api"})
    with pytest.raises(ValueError):
        Registrar(["ftp://127.0.0.1:1"], API1)
    with pytest.raises(ValueError):
        Registrar([], API1)
    with pytest.raises(ValueError):
        Registrar(["http://127.0.0.1:1"], API1, ttl_s=0)


def test_an_etcd_crash_is_visible_and_the_registrar_reattaches(prefix: str) -> None:
    errors: list[Exception] = []
    with EtcdServer() as etcd:
        with Registrar([etcd.endpoint], API1, prefix=prefix, ttl_s=2, on_error=errors.append) as r:
            lease = r.lease_id
            etcd.kill()
            eventually(lambda: r.error is not None, 3.0, "error visible")
            assert r.status == "retrying" and errors and isinstance(errors[0], EtcdError)
            assert etcd.endpoint in str(r.error)
            etcd.start()
            eventually(lambda: r.error is None, 5.0, "healthy again")
            assert r.key in etcd.client.get_prefix(prefix)
            assert r.lease_id == lease  # etcd extends live leases across a restart
        assert etcd.client.get_prefix(prefix) == {}
