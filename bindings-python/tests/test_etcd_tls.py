"""The etcd helpers against a real etcd serving its clients over TLS, with a
certificate from a throwaway CA made for the test (openssl CLI)."""
from __future__ import annotations

import shutil
import ssl
import tempfile
import time
from typing import Iterator

import pytest

import waypost
from etcd_harness import Certs, EtcdServer, put_many, range_keys, range_request
from waypost._grpc import Call, GrpcError, h2_context
from waypost.etcd import EtcdError, Mirror, Registrar

API1 = {"id": "api-1", "service": "api", "address": "10.0.0.1", "port": 8080}

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make certificates")


@pytest.fixture(scope="module")
def tls_etcd() -> Iterator[EtcdServer]:
    folder = tempfile.mkdtemp(prefix="waypost-tls-")
    try:
        with EtcdServer(workdir=folder, tls=Certs(folder)) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_registrar_and_mirror_work_over_https_with_the_ca_file(tls_etcd: EtcdServer) -> None:
    assert tls_etcd.endpoint.startswith("https://") and tls_etcd.tls is not None
    ca = tls_etcd.tls.ca
    reg = waypost.Registry(seed=1)
    with Registrar([tls_etcd.endpoint], API1, prefix="/tls", ttl_s=2, ca_file=ca) as r, \
         Mirror([tls_etcd.endpoint], reg, prefix="/tls", ca_file=ca) as m:
        assert m.wait_synced(10), m.error
        deadline = time.monotonic() + 10
        while [i.id for i in reg.discover("api", all=True)] != ["api-1"]:
            assert time.monotonic() < deadline, "the mirror did not see the instance"
            time.sleep(0.05)
        r.update({**API1, "status": "maintenance"})
        while reg.get("api-1").health.value != "draining":
            assert time.monotonic() < deadline, "the mirror did not see the update"
            time.sleep(0.05)
        assert r.error is None and m.error is None
    assert tls_etcd.client.get_prefix("/tls") == {}


def test_without_the_ca_file_the_certificate_is_refused_visibly(tls_etcd: EtcdServer) -> None:
    r = Registrar([tls_etcd.endpoint], API1, prefix="/tls-no-ca")
    with pytest.raises(EtcdError) as e:
        r.start()
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value) and tls_etcd.endpoint in str(e.value)
    r.close()
    errors: list[Exception] = []
    with Mirror([tls_etcd.endpoint], waypost.Registry(), prefix="/tls-no-ca", on_error=errors.append) as m:
        assert not m.wait_synced(1.0)
        assert isinstance(m.error, EtcdError) and "CERTIFICATE_VERIFY_FAILED" in str(m.error)
        assert errors and errors[0] is not None


def test_a_missing_ca_file_is_an_etcd_error() -> None:
    with pytest.raises(EtcdError):
        Registrar(["https://127.0.0.1:1"], API1, ca_file="/nonexistent/ca.pem")


def test_grpc_over_tls_offers_h2_and_verifies_the_server(tls_etcd: EtcdServer) -> None:
    assert tls_etcd.tls is not None
    want = put_many(tls_etcd.client, "/gtls", 3, 10)

    def call(context: ssl.SSLContext | None) -> bytes:
        return Call("127.0.0.1", tls_etcd.client_port, True, "/etcdserverpb.KV/Range", range_request("/gtls"),
                    timeout=5, context=context).run()

    assert range_keys(call(h2_context(tls_etcd.tls.ca))) == want
    with pytest.raises(GrpcError, match="CERTIFICATE_VERIFY_FAILED"):
        call(None)
    with pytest.raises(GrpcError, match="ALPN"):  # a context that does not offer h2
        call(ssl.create_default_context(cafile=tls_etcd.tls.ca))
