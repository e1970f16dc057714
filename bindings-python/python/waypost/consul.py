"""Consul helpers over the agent's HTTP API, with the standard library only.

- ``Mirror`` keeps a local ``waypost.Registry`` equal to what Consul's
  health endpoint says about one service, through blocking queries. The
  core decides everything (the path, the index rules, the mapping); the
  mirror sends what ``source_request`` names and feeds each answer back with
  its ``X-Consul-Index``. Consul asks clients to rate-limit this loop (an
  answer is not proof of change, and an index that goes backwards makes the
  next query return at once): two requests start at least
  ``min_interval_s`` apart.
- ``Registrar`` registers one instance with the local agent
  (``PUT /v1/agent/service/register``) with a TTL check and
  ``DeregisterCriticalServiceAfter``, passes the check every TTL/3, registers
  again when the agent forgot it, and deregisters on a clean stop.

Background failures are visible: ``.error`` (the last one, ``None`` once
healthy again), ``.status`` and an ``on_error`` callback.
"""
from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
from types import TracebackType
from typing import Any, Mapping, Optional

from ._mirror import ChangeCallback, ErrorCallback, MirrorLoop
from ._store_http import Server, StoreError
from ._waypost import Registry
from .helpers import Clock

DEFAULT_ADDRESS = "http://127.0.0.1:8500"

#: How long past the core's ``wait=5m`` a blocking query may take: Consul
#: adds up to wait/16 of jitter, then the answer has to travel.
_BLOCKING_READ_S = 5 * 60 * (1 + 1 / 16) + 30


class ConsulError(StoreError):
    """A call to Consul failed (``endpoint``, ``path``, ``status``)."""


def _server(address: Optional[str], token: Optional[str], ca_file: Optional[str], timeout_s: float) -> Server:
    address = address or os.environ.get("CONSUL_HTTP_ADDR") or DEFAULT_ADDRESS
    token = token if token is not None else os.environ.get("CONSUL_HTTP_TOKEN")
    headers = {"X-Consul-Token": token} if token else {}
    return Server(address, default_port=8500, headers=lambda: headers, ca_file=ca_file, timeout_s=timeout_s,
                  what="consul", error=ConsulError)


class Mirror(MirrorLoop):
    """Keeps ``registry`` equal to Consul's healthy-or-not view of
    ``service``, as the instances of source ``source`` (SPEC §10).

    ``address`` is the agent's HTTP address (``None``: ``CONSUL_HTTP_ADDR``,
    else ``http://127.0.0.1:8500``); ``token`` an ACL token
    (``X-Consul-Token``; ``None``: ``CONSUL_HTTP_TOKEN``). Several mirrors
    in one registry need different ``source`` names. ``lock`` is held while
    the mirror touches the registry; ``error``/``on_error``, ``on_change``
    as in ``waypost.etcd.Mirror``. ``index`` is the blocking-query index the
    core holds.
    """

    kind = "consul"

    def __init__(
        self,
        address: Optional[str],
        registry: Registry,
        service: str,
        *,
        source: str = "consul",
        token: Optional[str] = None,
        ca_file: Optional[str] = None,
        now: Optional[Clock] = None,
        timeout_s: float = 5.0,
        min_interval_s: float = 1.0,
        on_error: Optional[ErrorCallback] = None,
        on_change: Optional[ChangeCallback] = None,
    ) -> None:
        server = _server(address, token, ca_file, timeout_s)
        super().__init__(server, registry, source,
                         {"kind": "consul", "service": service},
                         now=now, on_error=on_error, on_change=on_change)
        self._server = server
        self.service = service
        self.min_interval_s = min_interval_s
        self._last_start: Optional[float] = None

    @property
    def index(self) -> int:
        """The ``X-Consul-Index`` the next query waits on (0: none)."""
        query = urllib.parse.urlsplit(self._request()["path"]).query
        return int(urllib.parse.parse_qs(query).get("index", ["0"])[0])

    def _failed(self, path: str, status: int, data: bytes) -> Exception:
        return ConsulError(f"consul {self.endpoint}: {path} answered HTTP {status}: "
                           f"{data[:300].decode(errors='replace').strip()}",
                           endpoint=self.endpoint, path=path, status=status)

    def _pace(self) -> None:
        now = time.monotonic()
        if self._last_start is not None:
            self._stop.wait(max(0.0, self._last_start + self.min_interval_s - now))
        self._last_start = time.monotonic()

    def _step(self) -> None:
        self._pace()
        if self._stop.is_set():
            return
        req = self._request()
        blocking = "index=" in req["path"]
        status, headers, data = self._server.request(
            req["method"], req["path"], req["body"].encode(), _BLOCKING_READ_S if blocking else None)
        if self._stop.is_set():
            return
        self._answer(req["path"], data, status, headers.get("X-Consul-Index"))
        self._ok()


def _registration(instance: Mapping[str, Any], ttl_s: int, deregister_after_s: int) -> tuple[str, bytes]:
    ident, service = instance.get("id"), instance.get("service")
    if not isinstance(ident, str) or not ident or not isinstance(service, str) or not service:
        raise ValueError("instance: needs string `id` and `service` (the instance wire form)")
    body: dict[str, Any] = {
        "ID": ident,
        "Name": service,
        "Address": instance.get("address", ""),
        "Port": instance.get("port", 0),
        "Tags": list(instance.get("tags") or []),
        "Meta": dict(instance.get("meta") or {}),
        "Weights": {"Passing": instance.get("weight", 1), "Warning": 1},
        "Check": {
            "CheckID": f"service:{ident}",
            "Name": f"waypost TTL for {ident}",
            "TTL": f"{ttl_s}s",
            "Status": "passing",
            "DeregisterCriticalServiceAfter": f"{deregister_after_s}s",
        },
    }
    if instance.get("zone"):
        body["Locality"] = {"Zone": instance["zone"]}
    return ident, json.dumps(body).encode()


class Registrar:
    """Registers ``instance`` (the wire form: ``{"id", "service",
    "address", "port", ...}``) with the Consul agent at ``address`` and
    keeps its TTL check passing until ``close()``.

    The check's TTL is ``ttl_s``; it is passed every ``ttl_s / 3`` seconds;
    Consul removes the service once the check has been critical for
    ``deregister_after_s`` (a process that died without ``close``). When the
    agent no longer knows the check (it restarted, or reaped the service),
    the instance is registered again. ``start()`` raises ``ConsulError``
    when the agent refuses or cannot be reached; later failures go to
    ``.error``/``on_error`` and are retried.
    """

    def __init__(
        self,
        address: Optional[str],
        instance: Mapping[str, Any],
        *,
        ttl_s: int = 10,
        deregister_after_s: int = 60,
        token: Optional[str] = None,
        ca_file: Optional[str] = None,
        timeout_s: float = 2.0,
        on_error: Optional[ErrorCallback] = None,
    ) -> None:
        if not isinstance(ttl_s, int) or ttl_s < 1:
            raise ValueError("ttl_s: a whole number of seconds >= 1")
        if not isinstance(deregister_after_s, int) or deregister_after_s < 1:
            raise ValueError("deregister_after_s: a whole number of seconds >= 1")
        self.id, self._body = _registration(instance, ttl_s, deregister_after_s)
        self.ttl_s = ttl_s
        self.on_error = on_error
        self.registrations = 0
        self.heartbeats = 0
        self.error: Optional[Exception] = None
        self.status = "idle"
        self._server = _server(address, token, ca_file, timeout_s)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def endpoint(self) -> str:
        return self._server.url

    def _put(self, path: str, body: bytes = b"") -> int:
        status, _, data = self._server.request("PUT", path, body)
        if status not in (200, 404):
            raise ConsulError(f"consul {self.endpoint}: PUT {path} answered HTTP {status}: "
                              f"{data[:300].decode(errors='replace').strip()}",
                              endpoint=self.endpoint, path=path, status=status)
        return status

    def _register(self) -> None:
        path = "/v1/agent/service/register"
        if self._put(path, self._body) != 200:
            raise ConsulError(f"consul {self.endpoint}: PUT {path} answered HTTP 404", endpoint=self.endpoint,
                              path=path, status=404)
        self.registrations += 1

    def _beat(self) -> None:
        path = "/v1/agent/check/pass/" + urllib.parse.quote(f"service:{self.id}", safe=":")
        if self._put(path) == 404:
            self._register()
        self.heartbeats += 1

    def _run(self) -> None:
        interval = max(0.1, self.ttl_s / 3)
        delay = interval
        while not self._stop.wait(delay):
            try:
                self._beat()
            except (StoreError, OSError) as e:
                if self._stop.is_set():
                    return
                self.error, self.status = e, "retrying"
                if self.on_error is not None:
                    try:
                        self.on_error(e)
                    except Exception:  # noqa: BLE001
                        pass
                delay = max(0.1, min(interval, delay / 2))
            else:
                self.error, self.status, delay = None, "registered", interval

    def start(self) -> "Registrar":
        """Registers now (raises ``ConsulError`` on failure) and starts the
        heartbeat thread."""
        if self._thread is not None:
            return self
        self._register()
        self.status = "registered"
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"waypost-consul-registrar {self.id}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stops the heartbeats and deregisters the instance, so it leaves
        at once. Safe to call twice; a failed deregister is in ``.error``
        (Consul then removes it after ``deregister_after_s``)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join()
        try:
            self._put("/v1/agent/service/deregister/" + urllib.parse.quote(self.id, safe=""))
        except (StoreError, OSError) as e:
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


__all__ = ["ConsulError", "DEFAULT_ADDRESS", "Mirror", "Registrar"]
