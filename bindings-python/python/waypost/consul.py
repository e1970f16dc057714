"""Consul helpers over its HTTP API, with the standard library only.

- ``Mirror`` keeps a local ``waypost.Registry`` equal to Consul's health
  answer for one service (``/v1/health/service/<name>``): the core names
  each blocking query (``?index=N&wait=5m``) and reads each answer with its
  ``X-Consul-Index``; the loop keeps a minimum pace between queries, as
  Consul's documentation asks, since an answer is not proof of a change.
- ``Registrar`` registers an instance with the local agent
  (``PUT /v1/agent/service/register`` with a TTL check and
  ``DeregisterCriticalServiceAfter``), passes the check every TTL/3 and
  deregisters on a clean stop.

Both take several agent URLs, move to the next when one fails, and make
background failures visible (``.error``, ``.status``, ``on_error``).
"""
from __future__ import annotations

import json
import threading
import urllib.parse
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Sequence

from ._etcd_http import EtcdError, Endpoints
from ._mirror import StoreMirror, restore_cache
from ._waypost import Registry
from .helpers import Clock

ErrorCallback = Callable[[Exception], None]

#: A failed call to Consul (the same class as the etcd helpers' error).
ConsulError = EtcdError


class Mirror(StoreMirror):
    """Keeps ``registry`` equal to Consul's health answer for ``service``,
    as the instances of source ``source`` (default ``"consul"``). See
    ``StoreMirror`` for ``lock``, ``error``, the callbacks and the cache."""

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        registry: Registry,
        *,
        service: str,
        source: str = "consul",
        now: Optional[Clock] = None,
        timeout_s: float = 2.0,
        wait_timeout_s: float = 6 * 60.0,
        min_interval_s: float = 0.1,
        cache_path: Optional[str] = None,
        cache_interval_s: float = 5.0,
        on_error: Optional[ErrorCallback] = None,
        on_change: Optional[Callable[[dict[str, Any]], None]] = None,
    ) -> None:
        super().__init__(
            endpoints, registry, source=source, options={"kind": "consul", "service": service}, now=now,
            timeout_s=timeout_s, request_timeout_s=wait_timeout_s, index_header="X-Consul-Index",
            min_interval_s=min_interval_s, cache_path=cache_path, cache_interval_s=cache_interval_s,
            on_error=on_error, on_change=on_change,
        )
        self.service = service


class Registrar:
    """Registers ``instance`` (the waypost wire form) with a Consul agent
    under a TTL check, passes the check every ``ttl_s / 3`` seconds,
    registers again when the agent no longer knows it, and deregisters on
    ``close()``. Consul deregisters it by itself ``deregister_after``
    (a Consul duration) after the check turns critical."""

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        instance: Mapping[str, Any],
        *,
        ttl_s: int = 15,
        deregister_after: str = "1m",
        timeout_s: float = 2.0,
        on_error: Optional[ErrorCallback] = None,
    ) -> None:
        ident, service = instance.get("id"), instance.get("service")
        if not isinstance(ident, str) or not ident or not isinstance(service, str) or not service:
            raise ValueError("instance: needs string `id` and `service` (the instance wire form)")
        if not isinstance(ttl_s, int) or ttl_s < 1:
            raise ValueError("ttl_s: a whole number of seconds >= 1")
        self.id = ident
        self.ttl_s = ttl_s
        self.on_error = on_error
        self.body = json.dumps({
            "ID": ident,
            "Name": service,
            "Address": instance.get("address", ""),
            "Port": instance.get("port", 0),
            "Tags": list(instance.get("tags", [])),
            "Meta": dict(instance.get("meta", {})),
            "Weights": {"Passing": instance.get("weight", 1), "Warning": 1},
            "Check": {"TTL": f"{ttl_s}s", "DeregisterCriticalServiceAfter": deregister_after},
        })
        self._consul = Endpoints(endpoints, timeout_s, "consul")
        self.registrations = 0
        self.error: Optional[Exception] = None
        self.status = "idle"
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _put(self, path: str, body: str = "") -> int:
        status, data = self._consul.request("PUT", path, body)
        if status != 200 and status != 404:
            raise ConsulError(f"consul {self._consul.current}: {path} answered HTTP {status}: {data[:300].decode(errors='replace')}",
                              endpoint=self._consul.current, path=path, status=status)
        return status

    def _register(self) -> None:
        self._put("/v1/agent/service/register", self.body)
        self._put(f"/v1/agent/check/pass/service:{urllib.parse.quote(self.id, safe='')}")
        self.registrations += 1

    def _beat(self) -> None:
        if self._put(f"/v1/agent/check/pass/service:{urllib.parse.quote(self.id, safe='')}") == 404:
            self._register()  # the agent lost it (restarted, or deregistered it)

    def _run(self) -> None:
        delay = max(0.2, self.ttl_s / 3)
        while not self._stop.wait(delay):
            try:
                self._beat()
            except Exception as e:  # noqa: BLE001 - recorded, reported and retried
                self.error, self.status = e, "retrying"
                if self.on_error is not None:
                    try:
                        self.on_error(e)
                    except Exception:  # noqa: BLE001
                        pass
                delay = max(0.1, delay / 2)
            else:
                self.error, self.status = None, "registered"
                delay = max(0.2, self.ttl_s / 3)

    def start(self) -> "Registrar":
        """Registers now (raises ``ConsulError`` when no agent answers) and
        starts the heartbeat thread."""
        if self._thread is None:
            self._register()
            self.status = "registered"
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"waypost-consul-registrar {self.id}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stops the heartbeats and deregisters at once. Safe to call twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
            try:
                self._put(f"/v1/agent/service/deregister/{urllib.parse.quote(self.id, safe='')}")
            except ConsulError as e:
                self.error = e
        self.status = "stopped"

    def __enter__(self) -> "Registrar":
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


__all__ = ["ConsulError", "Mirror", "Registrar", "restore_cache"]
