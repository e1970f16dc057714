"""waypost.k8s.Mirror against a loopback API server that follows the
documented list + watch protocol: bookmarks, an in-stream 410, a 410 answer."""
from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

import waypost
from k8s_fake import FakeKubernetes, slice_
from waypost.k8s import KubernetesError, Mirror


def eventually(cond: Callable[[], bool], timeout: float, what: str) -> None:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def view(reg: waypost.Registry) -> dict[str, str]:
    try:
        found = reg.discover("api", all=True)
    except waypost.UnknownServiceError:
        return {}
    return {f"{i.address}:{i.port}": h.value for i, h in zip(found, found.health)}


def test_list_watch_bookmark_and_410_both_ways() -> None:
    reg = waypost.Registry(seed=1, self_preservation_threshold=0)
    threads = threading.active_count()
    with FakeKubernetes() as kube:
        kube.put("ADDED", slice_("api-a", 0, [("10.1.0.1", True), ("10.1.0.2", False)]))
        with Mirror(reg, service="api", namespace="shop", port="http", api_url=kube.url, token="secret") as m:
            assert m.wait_synced(3) and m.source == "k8s/shop"
            assert view(reg) == {"10.1.0.1:8080": "healthy", "10.1.0.2:8080": "unhealthy"}
            eventually(lambda: kube.watches == 1, 3, "watching")
            kube.put("ADDED", slice_("api-b", 0, [("10.1.0.3", True)]))
            eventually(lambda: "10.1.0.3:8080" in view(reg), 3, "an added slice")
            kube.emit({"type": "BOOKMARK", "object": {"kind": "EndpointSlice", "metadata": {"resourceVersion": "150"}}})
            kube.put("DELETED", slice_("api-a", 0, []))
            eventually(lambda: view(reg) == {"10.1.0.3:8080": "healthy"}, 3, "a deleted slice")
            lists = kube.lists
            kube.emit({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}})
            eventually(lambda: kube.lists == lists + 1, 3, "listed again after an in-stream 410")
            kube.oldest = kube.rv + 1000  # every version expired: the watch answers 410
            kube.put("ADDED", slice_("api-c", 0, [("10.1.0.4", True)]))
            kube.emit(None)  # the stream ends; the next watch gets HTTP 410
            eventually(lambda: "10.1.0.4:8080" in view(reg), 5, "listed again after a 410 answer")
            kube.oldest = 0
    assert threading.active_count() == threads


def test_a_wrong_token_and_a_missing_ca_file_are_clear_errors() -> None:
    with FakeKubernetes() as kube:
        m = Mirror(waypost.Registry(seed=1), service="api", namespace="shop", api_url=kube.url, token="wrong").start()
        eventually(lambda: m.error is not None, 3, "error visible")
        assert isinstance(m.error, KubernetesError) and "401" in str(m.error)
        m.close()
    with pytest.raises(ValueError, match="ca_file"):
        Mirror(waypost.Registry(seed=1), service="api", namespace="shop", api_url="https://127.0.0.1:1",
               ca_file="/nonexistent/ca.crt")
    with pytest.raises(ValueError, match="KUBERNETES_SERVICE_HOST"):
        Mirror(waypost.Registry(seed=1), service="api")
