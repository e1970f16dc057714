"""etcd helpers over the v3 JSON gateway, with the standard library only.

- ``Registrar`` keeps one instance registered in etcd under
  ``<prefix>/<service>/<id>`` with a lease: kept alive every TTL/3, registered
  again with a new lease when the lease is lost (or the key is gone), revoked
  on a clean stop so the instance disappears at once.
- ``Mirror`` keeps a local ``waypost.Registry`` equal to what etcd holds
  under a prefix. The core decides everything (what to read, where to watch
  from, when to resync); the mirror sends what ``source_request`` names and
  feeds the answer back with ``source_feed``.

Both take several client URLs and move to the next when one fails, and both
make background failures visible: ``.error`` (the last one, ``None`` once
healthy again), ``.status`` and an ``on_error`` callback.
"""
from __future__ import annotations

import base64
import json
import threading
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Sequence

from ._etcd_http import EtcdError, Endpoints, Stream, b64, tls_context
from ._grpc import h2_context
from ._mirror import ChangeCallback, MirrorLoop, restore_cache
from ._waypost import Registry
from .helpers import Clock

DEFAULT_PREFIX = "/waypost/services"

ErrorCallback = Callable[[Exception], None]


def _value(instance: Mapping[str, Any]) -> str:
    return json.dumps(dict(instance), separators=(",", ":"), sort_keys=True)


def _key(prefix: str, instance: Mapping[str, Any]) -> str:
    ident, service = instance.get("id"), instance.get("service")
    if not isinstance(ident, str) or not ident or not isinstance(service, str) or not service:
        raise ValueError("instance: needs string `id` and `service` (the instance wire form)")
    if "/" in service:
        raise ValueError(f"instance: service {service!r} must not contain '/' (it is a key segment)")
    return f"{prefix.rstrip('/')}/{service}/{ident}"


class Registrar:
    """Registers ``instance`` (the wire form: ``{"id", "service", "address",
    "port", ...}``) in etcd and keeps it registered until ``close()``.

    ``start()`` registers at once and raises ``EtcdError`` when no endpoint
    answers; after that a daemon thread keeps the lease alive every
    ``granted_ttl / 3`` seconds, and any failure there is recorded in
    ``.error``, passed to ``on_error`` and retried (with the next endpoint).
    etcd raises a TTL below its minimum (about 2 s): ``granted_ttl`` says
    what it granted. ``update(instance)`` changes the value (a drain is
    ``update({**instance, "status": "maintenance"})``); every later
    registration writes the updated one. ``https://`` endpoints are
    verified against ``ca_file`` (PEM), or the system's CAs without it.
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        instance: Mapping[str, Any],
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl_s: int = 10,
        timeout_s: float = 2.0,
        ca_file: Optional[str] = None,
        on_error: Optional[ErrorCallback] = None,
    ) -> None:
        if not isinstance(ttl_s, int) or ttl_s < 1:
            raise ValueError("ttl_s: a whole number of seconds >= 1")
        self.prefix = prefix
        self.key = _key(prefix, instance)
        self.instance = dict(instance)
        self.value = _value(instance)
        self.ttl_s = ttl_s
        self.on_error = on_error
        self._etcd = Endpoints(endpoints, timeout_s, ssl_context=tls_context(ca_file) if ca_file is not None else None)
        # Held while the registrar writes to etcd, so a registration and an
        # update never cross (the last value written is the last one given).
        self._writing = threading.Lock()
        self.lease_id: Optional[str] = None
        self.granted_ttl: Optional[int] = None
        self.registrations = 0
        self.error: Optional[Exception] = None
        self.status = "idle"
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def endpoint(self) -> str:
        """The client URL in use now."""
        return self._etcd.current

    def _register(self) -> None:
        grant = self._etcd.call("/v3/lease/grant", {"TTL": self.ttl_s})
        lease, ttl = grant.get("ID"), int(grant.get("TTL", 0))
        if not lease or ttl <= 0:
            raise EtcdError(f"etcd {self.endpoint}: lease grant answered {grant}", endpoint=self.endpoint)
        self._etcd.call("/v3/kv/put", {"key": b64(self.key), "value": b64(self.value), "lease": lease})
        self.lease_id, self.granted_ttl = str(lease), ttl
        self.registrations += 1

    def _renew(self) -> None:
        """One keep-alive round: renew the lease; register again when it is
        gone, put the key back when only the key is gone."""
        with self._writing:
            if not self._stop.is_set():
                self._renew_locked()

    def _renew_locked(self) -> None:
        if self.lease_id is None:
            self._register()
            return
        answer = self._etcd.first_message("/v3/lease/keepalive", {"ID": self.lease_id})
        if "error" in answer:
            raise EtcdError(f"etcd {self.endpoint}: keep-alive answered {answer['error']}", endpoint=self.endpoint)
        if int(answer.get("result", {}).get("TTL", 0)) <= 0:
            self._register()
            return
        found = self._etcd.call("/v3/kv/range", {"key": b64(self.key), "count_only": True})
        if int(found.get("count", 0)) == 0:
            self._etcd.call("/v3/kv/put", {"key": b64(self.key), "value": b64(self.value), "lease": self.lease_id})

    def update(self, instance: Mapping[str, Any]) -> None:
        """Replaces the registered value with ``instance`` (same ``id`` and
        ``service``, so the same key; a ``status`` member is what mirrors
        read: ``"maintenance"`` drains it), under the registrar's lease, and
        keeps it: a registration after a lost lease writes this value.
        Before ``start()`` or after ``close()`` it is only kept. When the
        lease is gone the instance is registered again at once; when no
        endpoint answers it raises ``EtcdError`` (the value is kept and the
        keep-alive thread writes it once etcd answers)."""
        key = _key(self.prefix, instance)
        if key != self.key:
            raise ValueError(f"instance: update keeps the key {self.key!r} (same id and service), got {key!r}")
        value = _value(instance)
        with self._writing:
            self.instance, self.value = dict(instance), value
            lease = self.lease_id
            if lease is None or self._stop.is_set():
                return
            status, data = self._etcd.request(
                "POST", "/v3/kv/put", json.dumps({"key": b64(self.key), "value": b64(value), "lease": lease}))
            if status != 200:
                # The lease is gone (etcd refuses a put under it): register anew.
                self._register()

    def _interval(self) -> float:
        return max(0.2, (self.granted_ttl or self.ttl_s) / 3)

    def _run(self) -> None:
        delay = self._interval()
        while not self._stop.wait(delay):
            try:
                self._renew()
            except Exception as e:  # noqa: BLE001 - recorded, reported and retried
                self._fail(e)
                delay = min(self._interval(), max(0.1, delay / 2))
            else:
                self.error, self.status = None, "registered"
                delay = self._interval()

    def _fail(self, e: Exception) -> None:
        self.error, self.status = e, "retrying"
        if self.on_error is not None:
            try:
                self.on_error(e)
            except Exception:  # noqa: BLE001 - a failing callback must not stop the registrar
                pass

    def start(self) -> "Registrar":
        """Registers now (raises ``EtcdError`` when no endpoint answers) and
        starts the keep-alive thread."""
        if self._thread is not None:
            return self
        with self._writing:
            self._stop.clear()
            self._register()
        self.status = "registered"
        self._thread = threading.Thread(target=self._run, name=f"waypost-etcd-registrar {self.key}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stops the keep-alive thread and revokes the lease, so the key is
        deleted at once; a ``start()`` still registering in another thread
        fails with ``EtcdError``. Safe to call twice; a failed revoke is in
        ``.error`` (the lease then simply expires)."""
        self._stop.set()
        self._etcd.abort()  # ends a registration or keep-alive in flight
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        with self._writing:
            lease, self.lease_id = self.lease_id, None
        self._etcd.reset()
        if lease is not None:
            try:
                self._etcd.call("/v3/lease/revoke", {"ID": lease})
            except EtcdError as e:
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


class Mirror(MirrorLoop):
    """Keeps ``registry`` equal to what etcd holds under ``prefix``, as the
    instances of source ``source`` (SPEC §10): a range read, then a watch
    from the next revision, each message fed to the core. After a failure
    the mirror moves to the next endpoint and the watch resumes from the
    last applied revision (or everything is read again when the core says
    resync, e.g. after a compaction; ``https://`` endpoints are verified
    against ``ca_file``, or the system's CAs). The range is read over
    etcd's gRPC API (HTTP/2, one connection per read), several times faster
    than the JSON gateway for a large prefix; ``grpc=False`` reads it
    through the gateway, as the watch always is. See ``MirrorLoop`` for ``lock``,
    ``error``, ``on_error``, ``on_change`` and the failover cache
    (``cache_path``; ``restore_cache(path)`` gives the registry back, mirror
    state included, so a restarted client serves the last known fleet while
    etcd is unreachable and resumes watching where it stopped).
    """

    max_backoff_s = 2.0

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        registry: Registry,
        *,
        prefix: str = DEFAULT_PREFIX,
        source: str = "etcd",
        now: Optional[Clock] = None,
        timeout_s: float = 2.0,
        ca_file: Optional[str] = None,
        cache_path: Optional[str] = None,
        cache_interval_s: float = 5.0,
        on_error: Optional[ErrorCallback] = None,
        on_change: Optional[ChangeCallback] = None,
        grpc: bool = True,
    ) -> None:
        etcd = Endpoints(endpoints, timeout_s, "etcd", ssl_context=tls_context(ca_file) if ca_file is not None else None)
        options: dict[str, Any] = {"kind": "etcd", "prefix": prefix}
        if grpc:
            options["grpc"] = True
        super().__init__(
            etcd, registry, source, options, now=now,
            on_error=on_error, on_change=on_change, cache_path=cache_path, cache_interval_s=cache_interval_s,
        )
        self._etcd = etcd
        self.prefix = prefix
        # Its own TLS context: an ALPN offer of h2 would turn the gateway's
        # HTTP/1.1 connections into HTTP/2 ones.
        self._h2 = h2_context(ca_file) if any(u.startswith("https://") for u in etcd.urls) else None

    def _failed(self, path: str, status: int, data: bytes) -> Exception:
        return EtcdError(f"{self._etcd.store} {self.endpoint}: {path} answered HTTP {status}: "
                         f"{data[:300].decode(errors='replace')}",
                         endpoint=self.endpoint, path=path, status=status)

    def _watch_stream(self, stream: Stream) -> None:
        sock = stream.conn.sock
        if sock is not None:
            sock.settimeout(None)  # a watch may be quiet for as long as nothing changes
        self._watch(stream, lambda detail: EtcdError(f"{self._etcd.store} {stream.endpoint}: {detail}",
                                                     endpoint=stream.endpoint, path="/v3/watch"),
                    end_is_error=True, ok_on_resync=True)

    def _step(self) -> None:
        req = self._request()
        if req.get("grpc"):
            # Every failure is the transport's error (back off, next endpoint);
            # the core reads the protobuf answer, framing included.
            data = self._etcd.grpc(req["path"], base64.b64decode(req["body"]), self._h2)
            if not self._answer(req["path"], data, 200)["resync"]:
                self._ok()
            return
        if req["stream"]:
            status, data, stream = self._etcd.stream(req["method"], req["path"], req["body"], None)
            if stream is not None:
                self._watch_stream(stream)
                return
        else:
            status, data = self._etcd.request(req["method"], req["path"], req["body"])
        # A failed answer the core does not resync on (410: read everything
        # again) is an error.
        if not self._answer(req["path"], data, status, resync_or_fail=True)["resync"]:
            self._ok()

    @property
    def revision(self) -> int:
        """The etcd revision the mirror has applied (0 before the first read)."""
        with self.lock:
            req = self.registry.source_request(self.source)
        if not req["stream"]:
            return 0
        start = json.loads(req["body"]).get("create_request", {}).get("start_revision", "1")
        return int(start) - 1


__all__ = ["DEFAULT_PREFIX", "EtcdError", "Mirror", "Registrar", "restore_cache"]

