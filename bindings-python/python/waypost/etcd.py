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

import http.client
import json
import os
import tempfile
import threading
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Sequence

from ._errors import Error, InvalidArgumentError
from ._etcd_http import EtcdError, Endpoints, Stream, b64
from ._waypost import Registry
from .helpers import Clock, wall_clock_ms

DEFAULT_PREFIX = "/waypost/services"

ErrorCallback = Callable[[Exception], None]


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
    what it granted.
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        instance: Mapping[str, Any],
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl_s: int = 10,
        timeout_s: float = 2.0,
        on_error: Optional[ErrorCallback] = None,
    ) -> None:
        if not isinstance(ttl_s, int) or ttl_s < 1:
            raise ValueError("ttl_s: a whole number of seconds >= 1")
        self.key = _key(prefix, instance)
        self.value = json.dumps(dict(instance), separators=(",", ":"), sort_keys=True)
        self.ttl_s = ttl_s
        self.on_error = on_error
        self._etcd = Endpoints(endpoints, timeout_s)
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
        self._register()
        self.status = "registered"
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"waypost-etcd-registrar {self.key}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stops the keep-alive thread and revokes the lease, so the key is
        deleted at once. Safe to call twice; a failed revoke is in ``.error``
        (the lease then simply expires)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        lease, self.lease_id = self.lease_id, None
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


class Mirror:
    """Keeps ``registry`` equal to what etcd holds under ``prefix``, as the
    instances of source ``source`` (SPEC §10).

    A daemon thread asks the core what to send (``source_request``), sends
    it, and feeds the answer back (``source_feed``; every message of a
    watch stream on its own). The core keeps the revision: after a failure
    the mirror moves to the next endpoint and asks again, so the watch
    resumes from the last applied revision (or reads everything again when
    the core says resync, e.g. after a compaction).

    ``lock`` is held while the mirror touches the registry; take it too to
    read several things at one revision. ``error`` is the last failure
    (``None`` once a request succeeds again), also passed to ``on_error``;
    ``on_change`` gets every report that changed something.

    With ``cache_path``, the registry's snapshot is written there
    (atomically: a temporary file, then a rename) after changes, at most
    every ``cache_interval_s`` seconds, and on close. ``restore_cache(path)``
    gives the registry back, mirror state included, so a restarted client
    serves the last known fleet while etcd is unreachable and resumes
    watching where it stopped.
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        registry: Registry,
        *,
        prefix: str = DEFAULT_PREFIX,
        source: str = "etcd",
        now: Optional[Clock] = None,
        timeout_s: float = 2.0,
        cache_path: Optional[str] = None,
        cache_interval_s: float = 5.0,
        on_error: Optional[ErrorCallback] = None,
        on_change: Optional[Callable[[dict[str, Any]], None]] = None,
    ) -> None:
        self.registry = registry
        self.prefix = prefix
        self.source = source
        self.now: Clock = now or wall_clock_ms
        self.cache_path = cache_path
        self.cache_interval_s = cache_interval_s
        self.on_error = on_error
        self.on_change = on_change
        self.lock = threading.Lock()
        self.error: Optional[Exception] = None
        self.status = "idle"
        self.feeds = 0
        self._etcd = Endpoints(endpoints, timeout_s)
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._dirty = threading.Event()
        self._stream: Optional[Stream] = None
        self._stream_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        """The client URL in use now."""
        return self._etcd.current

    @property
    def revision(self) -> int:
        """The etcd revision the mirror has applied (0 before the first read)."""
        with self.lock:
            req = self.registry.source_request(self.source)
        if not req["stream"]:
            return 0
        start = json.loads(req["body"]).get("create_request", {}).get("start_revision", "1")
        return int(start) - 1

    def _declare(self) -> None:
        with self.lock:
            try:
                self.registry.source_request(self.source)  # declared already (e.g. a restored cache)
            except InvalidArgumentError:
                self.registry.source_add(self.source, {"kind": "etcd", "prefix": self.prefix})

    def _feed(self, body: bytes, status: int) -> dict[str, Any]:
        with self.lock:
            report = self.registry.source_feed(self.source, body, now=self.now(), status=status)
        self.feeds += 1
        if report["added"] or report["updated"] or report["removed"] or report["resync"]:
            self._dirty.set()
            if self.on_change is not None:
                try:
                    self.on_change(report)
                except Exception:  # noqa: BLE001 - a failing callback must not stop the mirror
                    pass
        return report

    def _watch(self, stream: Stream) -> None:
        with self._stream_lock:
            if self._stop.is_set():
                stream.close()
                return
            self._stream = stream
        try:
            sock = stream.conn.sock
            if sock is not None:
                sock.settimeout(None)  # a watch may be quiet for as long as nothing changes
            while not self._stop.is_set():
                try:
                    line = stream.readline()
                except (OSError, http.client.HTTPException) as e:
                    if self._stop.is_set():
                        return
                    raise EtcdError(f"etcd {stream.endpoint}: watch stream broke: {e or type(e).__name__}",
                                    endpoint=stream.endpoint, path="/v3/watch") from e
                if not line:
                    if self._stop.is_set():
                        return
                    raise EtcdError(f"etcd {stream.endpoint}: watch stream ended", endpoint=stream.endpoint, path="/v3/watch")
                if not line.strip():
                    continue
                report = self._feed(line, 200)
                self._ok()
                if report["resync"]:
                    return
        finally:
            with self._stream_lock:
                self._stream = None
            stream.close()

    def _ok(self) -> None:
        self.error, self.status = None, "synced"
        self._synced.set()

    def _step(self) -> None:
        with self.lock:
            req = self.registry.source_request(self.source)
        if req["stream"]:
            status, data, stream = self._etcd.stream(req["method"], req["path"], req["body"], None)
            if stream is not None:
                self._watch(stream)
                return
        else:
            status, data = self._etcd.request(req["method"], req["path"], req["body"])
        report = self._feed(data, status)
        if status != 200:
            raise EtcdError(f"etcd {self.endpoint}: {req['path']} answered HTTP {status}: {data[:300].decode(errors='replace')}",
                            endpoint=self.endpoint, path=req["path"], status=status)
        if not report["resync"]:
            self._ok()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._step()
                backoff = 0.1
            except (EtcdError, Error, OSError, http.client.HTTPException, ValueError) as e:
                if self._stop.is_set():
                    return
                self.error, self.status = e, "retrying"
                if self.on_error is not None:
                    try:
                        self.on_error(e)
                    except Exception:  # noqa: BLE001
                        pass
                self._stop.wait(backoff)
                backoff = min(2.0, backoff * 2)

    def _write_cache(self) -> None:
        path = self.cache_path
        if path is None:
            return
        with self.lock:
            text = self.registry.snapshot()
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".waypost-cache-", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _cache_loop(self) -> None:
        while not self._stop.wait(self.cache_interval_s):
            if self._dirty.is_set():
                self._dirty.clear()
                try:
                    self._write_cache()
                except OSError as e:
                    self.error = e
                    if self.on_error is not None:
                        self.on_error(e)

    def start(self) -> "Mirror":
        """Declares the source (unless the registry has it, e.g. restored
        from the cache) and starts mirroring in the background."""
        if self._threads:
            return self
        self._declare()
        self._stop.clear()
        self.status = "starting"
        self._threads.append(threading.Thread(target=self._run, name=f"waypost-etcd-mirror {self.prefix}", daemon=True))
        if self.cache_path is not None:
            self._threads.append(threading.Thread(target=self._cache_loop, name="waypost-etcd-mirror-cache", daemon=True))
        for t in self._threads:
            t.start()
        return self

    def wait_synced(self, timeout: Optional[float] = None) -> bool:
        """Waits until the mirror has read the store (True), or times out (False)."""
        return self._synced.wait(timeout)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def close(self) -> None:
        """Stops mirroring, waits for the threads and writes the cache one
        last time. The registry keeps what it holds. Safe to call twice."""
        self._stop.set()
        with self._stream_lock:
            if self._stream is not None:
                self._stream.abort()
        threads, self._threads = self._threads, []
        for t in threads:
            t.join()
        if threads and self.cache_path is not None:
            self._write_cache()
        self.status = "stopped"

    def __enter__(self) -> "Mirror":
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


def restore_cache(path: str) -> Optional[Registry]:
    """The registry a ``Mirror`` cached at ``path`` (with its mirror state),
    or ``None`` when there is no cache yet. A corrupt cache raises
    ``waypost.InvalidSnapshotError``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    return Registry.restore(text)


__all__ = ["DEFAULT_PREFIX", "EtcdError", "Mirror", "Registrar", "restore_cache"]

