"""A Kubernetes mirror over the API server's HTTP API, with the standard
library only.

``Mirror`` keeps a local ``waypost.Registry`` equal to the EndpointSlices
(``discovery.k8s.io/v1``) of one service: it lists them, then watches from
the list's resource version with bookmarks, feeding each line of the
stream to the core. The core decides everything: the paths, merging the
slices, and when to list again (``410 Gone``, as an answer or as an
``ERROR`` event in the stream); the mirror obeys the report.

Inside a pod everything has a default: the API server from
``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``, and the token, CA
and namespace from ``/var/run/secrets/kubernetes.io/serviceaccount`` (the
token file is read again on every request: the kubelet rotates it).
The service account needs ``list`` and ``watch`` on ``endpointslices``.
"""
from __future__ import annotations

import os
from typing import Callable, Mapping, Optional

from ._errors import Error
from ._mirror import ChangeCallback, ErrorCallback, MirrorLoop
from ._store_http import Server, StoreError
from ._waypost import Registry
from .helpers import Clock

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubernetesError(StoreError):
    """A call to the API server failed (``endpoint``, ``path``, ``status``)."""


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as e:
        raise KubernetesError(f"kubernetes: cannot read the {what} at {path}: {e.strerror or e}") from e


def in_cluster_api_server() -> str:
    """``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubernetesError("kubernetes: no api_server given and KUBERNETES_SERVICE_HOST/PORT are not set "
                              "(not running in a pod?)")
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


class Mirror(MirrorLoop):
    """Keeps ``registry`` equal to the endpoints of ``service`` in
    ``namespace``, on the port named ``port`` (``""``: each slice's first
    port), as the instances of source ``source`` (SPEC §10).

    ``api_server``, ``namespace``, ``token`` and ``ca_file`` default to the
    in-cluster values (see the module's documentation; ``service_account_dir``
    moves where they are read from). ``lock``, ``error``/``on_error``,
    ``on_change``, ``wait_synced`` and ``close`` as in
    ``waypost.etcd.Mirror``. A watch quiet for ``idle_timeout_s`` is taken
    as broken and opened again from the last resource version.
    """

    kind = "k8s"

    def __init__(
        self,
        api_server: Optional[str],
        registry: Registry,
        namespace: Optional[str],
        service: str,
        port: str = "",
        *,
        token: Optional[str] = None,
        ca_file: Optional[str] = None,
        source: str = "k8s",
        service_account_dir: str = SERVICE_ACCOUNT_DIR,
        now: Optional[Clock] = None,
        timeout_s: float = 5.0,
        idle_timeout_s: float = 600.0,
        on_error: Optional[ErrorCallback] = None,
        on_change: Optional[ChangeCallback] = None,
    ) -> None:
        api_server = api_server or in_cluster_api_server()
        if namespace is None:
            namespace = _read(os.path.join(service_account_dir, "namespace"), "namespace")
        headers: Callable[[], Mapping[str, str]]
        if token is not None:
            fixed = {"Authorization": f"Bearer {token}"} if token else {}
            headers = lambda: fixed  # noqa: E731
        else:
            token_file = os.path.join(service_account_dir, "token")
            use_file = os.path.exists(token_file)

            def headers() -> Mapping[str, str]:
                return {"Authorization": f"Bearer {_read(token_file, 'token')}"} if use_file else {}
        if ca_file is None and api_server.startswith("https://"):
            default_ca = os.path.join(service_account_dir, "ca.crt")
            ca_file = default_ca if os.path.exists(default_ca) else None
        server = Server(api_server, default_port=443, headers=headers, ca_file=ca_file, timeout_s=timeout_s,
                        what="kubernetes", error=KubernetesError)
        super().__init__(server, registry, source,
                         {"kind": "k8s", "namespace": namespace, "service": service, "port": port},
                         now=now, on_error=on_error, on_change=on_change)
        self._server = server
        self.namespace = namespace
        self.service = service
        self.port = port
        self.idle_timeout_s = idle_timeout_s
        self.lists = 0

    @property
    def resource_version(self) -> Optional[str]:
        """Where the next watch starts (``None``: the next request lists)."""
        path: str = self._request()["path"]
        marker = "&resourceVersion="
        if marker not in path:
            return None
        return path.split(marker, 1)[1].split("&", 1)[0]

    def _failed(self, path: str, status: int, data: bytes) -> Exception:
        return KubernetesError(f"kubernetes {self.endpoint}: {path} answered HTTP {status}: "
                               f"{data[:300].decode(errors='replace').strip()}",
                               endpoint=self.endpoint, path=path, status=status)

    def _step(self) -> None:
        req = self._request()
        if not req["stream"]:
            self.lists += 1
            status, _, data = self._server.request(req["method"], req["path"])
            if self._stop.is_set():
                return
            if not self._answer(req["path"], data, status)["resync"]:
                self._ok()
            return
        status, data, stream = self._server.stream(req["method"], req["path"], self.idle_timeout_s)
        if stream is None:
            # 410 Gone: the core resets and the next request lists again.
            try:
                self._feed(data, status)
            except Error as e:
                raise self._failed(req["path"], status, data) from e
            return
        path = req["path"]
        # The server ending the watch is no error: watch again from where it
        # stood; an ERROR event (410) in it makes the core list again.
        self._watch(stream, lambda detail: KubernetesError(f"kubernetes {self.endpoint}: watch {detail}",
                                                           endpoint=self.endpoint, path=path),
                    end_is_error=False, ok_on_resync=False)


__all__ = ["KubernetesError", "Mirror", "SERVICE_ACCOUNT_DIR", "in_cluster_api_server"]
