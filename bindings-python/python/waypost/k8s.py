"""Kubernetes helper: mirror one Service's EndpointSlices
(``discovery.k8s.io/v1``) into a ``waypost.Registry``, with the standard
library only. The core names each request — a list by the label
``kubernetes.io/service-name``, then a watch from the list's
``resourceVersion`` with bookmarks — and reads each answer (every watch line
on its own); an expired version (HTTP 410, or an ``ERROR`` 410 in the
stream) makes it list again.

In a pod, leave ``api_url`` out: the API server, bearer token, CA and
namespace come from the usual in-cluster places. Otherwise pass them.
"""
from __future__ import annotations

import os
import ssl
from typing import Any, Callable, Optional

from ._etcd_http import EtcdError, Endpoints
from ._mirror import StoreMirror, restore_cache
from ._waypost import Registry
from .helpers import Clock

#: A failed call to the API server (the same class as the etcd helpers' error).
KubernetesError = EtcdError

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as e:
        raise ValueError(f"{what}: cannot read {path}: {e.strerror}") from e


class Mirror(StoreMirror):
    """Keeps ``registry`` equal to the EndpointSlices of ``service`` in
    ``namespace``, as the instances of source ``source`` (default
    ``"k8s/<namespace>"``), using the port named ``port`` (empty: the
    first). See ``StoreMirror`` for ``lock``, ``error``, the callbacks and
    the cache."""

    def __init__(
        self,
        registry: Registry,
        *,
        service: str,
        namespace: Optional[str] = None,
        port: str = "",
        api_url: Optional[str] = None,
        token: Optional[str] = None,
        token_file: Optional[str] = None,
        ca_file: Optional[str] = None,
        source: Optional[str] = None,
        now: Optional[Clock] = None,
        timeout_s: float = 5.0,
        cache_path: Optional[str] = None,
        cache_interval_s: float = 5.0,
        on_error: Optional[Callable[[Exception], None]] = None,
        on_change: Optional[Callable[[dict[str, Any]], None]] = None,
    ) -> None:
        if api_url is None:  # in a pod
            host, port_env = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise ValueError("api_url: not given, and KUBERNETES_SERVICE_HOST is not set (not in a pod)")
            api_url = f"https://{host}:{port_env}"
            token_file = token_file or f"{SERVICE_ACCOUNT}/token"
            ca_file = ca_file or f"{SERVICE_ACCOUNT}/ca.crt"
            namespace = namespace or _read(f"{SERVICE_ACCOUNT}/namespace", "namespace")
        if not namespace:
            raise ValueError("namespace: required outside a pod")
        if token is None and token_file is not None:
            token = _read(token_file, "token_file")
        context: Optional[ssl.SSLContext] = None
        if api_url.startswith("https://"):
            if ca_file is not None and not os.path.exists(ca_file):
                raise ValueError(f"ca_file: {ca_file} does not exist")
            context = ssl.create_default_context(cafile=ca_file)
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        client = Endpoints([api_url], timeout_s, "kubernetes", headers=headers, ssl_context=context)
        super().__init__(
            [api_url], registry, source=source or f"k8s/{namespace}",
            options={"kind": "k8s", "namespace": namespace, "service": service, "port": port},
            now=now, timeout_s=timeout_s, cache_path=cache_path, cache_interval_s=cache_interval_s,
            on_error=on_error, on_change=on_change, client=client,
        )
        self.namespace, self.service = namespace, service


__all__ = ["KubernetesError", "Mirror", "restore_cache"]
