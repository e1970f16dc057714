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
  again when the agent forgot it, and deregisters on a clean stop. The core
  builds the registration (``consul_registration``: the body, the heartbeat,
  maintenance on or off and the paths that turn it, the deregister), so
  every language sends the same bytes.
  ``update(instance)`` changes it in place; its ``status`` maps the way the
  core reads it back (SPEC §10.4): ``warning`` / ``critical`` become the TTL
  check's status (every heartbeat keeps it), ``maintenance`` the agent's
  service maintenance mode.

Background failures are visible: ``.error`` (the last one, ``None`` once
healthy again), ``.status`` and an ``on_error`` callback.
"""
from __future__ import annotations

import os
import threading
import time
import urllib.parse
from types import TracebackType
from typing import Any, Mapping, Optional

from ._mirror import ChangeCallback, ErrorCallback, MirrorLoop
from ._store_http import Server, StoreError
from ._waypost import Registry, consul_registration
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

    ``update(instance)`` changes the registration in place (a drain is
    ``update({**instance, "status": "maintenance"})``); the instance's
    ``status`` (default ``passing``) maps as the core's Consul reader reads
    it back: ``warning`` and ``critical`` are the TTL check's status, which
    every later heartbeat keeps (``warn`` / ``fail`` instead of ``pass``);
    ``maintenance`` turns on the agent's maintenance mode for the service
    (reason ``waypost: maintenance``), a later other status turns it off.
    Every later registration sends the updated instance.
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
        # The core builds the registration (SPEC §10.4) and judges the
        # instance, its status and the durations.
        self._registration = consul_registration(instance, ttl_s, deregister_after_s)
        self.id: str = self._registration["id"]
        self.service: str = self._registration["service"]
        self.instance = dict(instance)
        self.ttl_s = ttl_s
        self.deregister_after_s = deregister_after_s
        self.on_error = on_error
        self.registrations = 0
        self.heartbeats = 0
        self.error: Optional[Exception] = None
        self.status = "idle"
        self._server = _server(address, token, ca_file, timeout_s)
        # Held while the registrar writes to the agent, so a registration,
        # a heartbeat and an update never cross (the last instance written
        # is the last one given).
        self._writing = threading.Lock()
        self._registered = False  # under _writing: started and not closed
        self._maintenance = False  # under _writing: maintenance turned on
        self._stale = False  # under _writing: an update not yet all sent
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

    def _must(self, path: str, body: bytes = b"") -> None:
        if self._put(path, body) != 200:
            raise ConsulError(f"consul {self.endpoint}: PUT {path} answered HTTP 404", endpoint=self.endpoint,
                              path=path, status=404)

    def _register(self) -> None:
        """Registers the instance as it is now: the registration, the
        check's status (an agent that knew the check keeps its old one),
        maintenance mode on, or off when it was on (a registration anew
        may have dropped it: turned on again). Until all of it went
        through, the next heartbeat does it again. ``_writing`` is held."""
        self._stale = True
        self._must("/v1/agent/service/register", self._registration["body"].encode())
        self.registrations += 1
        self._must(self._registration["heartbeat_path"])
        want: bool = self._registration["maintenance"]
        if want or self._maintenance:
            self._must(self._registration["maintenance_on_path" if want else "maintenance_off_path"])
            self._maintenance = want
        self._stale = False

    def _beat(self) -> None:
        with self._writing:
            if self._stop.is_set():
                return
            if self._stale or self._put(self._registration["heartbeat_path"]) == 404:
                self._register()
            self.heartbeats += 1

    def update(self, instance: Mapping[str, Any]) -> None:
        """Replaces the registration with ``instance`` (same ``id`` and
        ``service``; its ``status`` maps as the class says: ``"maintenance"``
        drains it) and keeps it: heartbeats keep its check status and a
        registration after the agent forgot it sends this instance. Before
        ``start()`` or after ``close()`` it is only kept. When the agent
        cannot be reached or refuses it raises ``ConsulError`` (the instance
        is kept and the heartbeat thread sends it once the agent answers)."""
        registration = consul_registration(instance, self.ttl_s, self.deregister_after_s)
        ident, service = registration["id"], registration["service"]
        if (ident, service) != (self.id, self.service):
            raise ValueError(f"instance: update keeps the id {self.id!r} and service {self.service!r}, "
                             f"got {ident!r} in {service!r}")
        with self._writing:
            self.instance, self._registration = dict(instance), registration
            if not self._registered or self._stop.is_set():
                return
            self._register()

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
        self._stop.clear()
        with self._writing:
            self._register()
            self._registered = True
        self.status = "registered"
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
        with self._writing:
            self._registered = False
            try:
                self._put(self._registration["deregister_path"])
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
