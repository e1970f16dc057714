"""The one loop every store mirror (etcd, Consul, Kubernetes) runs in its
thread: ask the core what to send, send it, feed the answer back, obey the
report, back off on failures. Internal to ``waypost.etcd``,
``waypost.consul`` and ``waypost.k8s``."""
from __future__ import annotations

import http.client
import os
import tempfile
import threading
from types import TracebackType
from typing import Any, Callable, Optional, Protocol, TypeVar

from ._errors import Error, InvalidArgumentError
from ._etcd_http import EtcdError, Stream
from ._store_http import StoreError
from ._waypost import Registry
from .helpers import Clock, wall_clock_ms

ErrorCallback = Callable[[Exception], None]
ChangeCallback = Callable[[dict[str, Any]], None]
M = TypeVar("M", bound="MirrorLoop")


class Transport(Protocol):
    """What the loop needs of a store client: the URL in use, a way to end
    the call in flight, and a way to allow calls again."""

    @property
    def current(self) -> str: ...

    def abort(self) -> None: ...

    def reset(self) -> None: ...


class MirrorLoop:
    """The host loop every store mirror shares (SPEC §10.4): a daemon
    thread asks the core what to send (``source_request``), sends it, and
    feeds the answer back (``source_feed``; every message of a streamed
    answer on its own, with the store's index header when it has one).
    After a failure it backs off (the transport moves to its next endpoint
    when it has several); the core's state says where to resume.

    ``lock`` is held while the mirror touches the registry; take it too to
    read several things at once. ``error`` is the last failure (``None``
    once a request succeeds again), also passed to ``on_error``;
    ``on_change`` gets every report the core marks ``"changed"`` (an
    instance added, updated, removed or held back, or a resync). With
    ``cache_path`` the registry's snapshot is written there (a temporary
    file, then a rename) after changes, at most every ``cache_interval_s``
    seconds, and on close; ``restore_cache(path)`` gives it back.
    """

    kind = ""
    max_backoff_s = 5.0

    def __init__(
        self,
        transport: Transport,
        registry: Registry,
        source: str,
        options: dict[str, Any],
        *,
        now: Optional[Clock],
        on_error: Optional[ErrorCallback],
        on_change: Optional[ChangeCallback],
        cache_path: Optional[str] = None,
        cache_interval_s: float = 5.0,
    ) -> None:
        self.registry = registry
        self.source = source
        self.options = options
        self.now: Clock = now or wall_clock_ms
        self.on_error = on_error
        self.on_change = on_change
        self.cache_path = cache_path
        self.cache_interval_s = cache_interval_s
        self.lock = threading.Lock()
        self.error: Optional[Exception] = None
        self.status = "idle"
        self.feeds = 0
        self._transport = transport
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._dirty = threading.Event()
        self._stream: Optional[Stream] = None
        self._stream_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        """The server URL in use now."""
        return self._transport.current

    def _request(self) -> dict[str, Any]:
        with self.lock:
            return self.registry.source_request(self.source)

    def _feed(self, body: bytes, status: int, index: Optional[str] = None) -> dict[str, Any]:
        with self.lock:
            report = self.registry.source_feed(self.source, body, now=self.now(), status=status, index=index)
        self.feeds += 1
        if report["changed"]:
            self._dirty.set()
            if self.on_change is not None:
                try:
                    self.on_change(report)
                except Exception:  # noqa: BLE001 - a failing callback must not stop the mirror
                    pass
        return report

    def _ok(self) -> None:
        self.error, self.status = None, "synced"
        self._synced.set()

    def _failed(self, path: str, status: int, data: bytes) -> Exception:
        """A whole answer the core could not use, as the store's error."""
        raise NotImplementedError

    def _answer(self, path: str, data: bytes, status: int, index: Optional[str] = None, *,
                resync_or_fail: bool = False) -> dict[str, Any]:
        """Feeds a whole answer; one the core refuses after a failed request
        (and, with ``resync_or_fail``, a failed request it does not resync
        on) becomes the store's error naming the endpoint."""
        try:
            report = self._feed(data, status, index)
        except Error as e:
            if status == 200:
                raise
            raise self._failed(path, status, data) from e
        if resync_or_fail and status != 200 and not report["resync"]:
            raise self._failed(path, status, data)
        return report

    def _watch(self, stream: Stream, broke: Callable[[str], Exception], *, end_is_error: bool,
               ok_on_resync: bool) -> None:
        """Feeds each line of a streamed answer until the core says resync,
        the stream ends (an error with ``end_is_error``) or the mirror
        stops. ``broke(detail)`` makes the error of a broken stream."""
        with self._stream_lock:
            if self._stop.is_set():
                stream.close()
                return
            self._stream = stream
        try:
            while not self._stop.is_set():
                try:
                    line = stream.readline()
                except (OSError, http.client.HTTPException) as e:
                    if self._stop.is_set():
                        return
                    raise broke(f"stream broke: {e or type(e).__name__}") from e
                if not line:
                    if self._stop.is_set() or not end_is_error:
                        return
                    raise broke("stream ended")
                if not line.strip():
                    continue
                report = self._feed(line, 200)
                if ok_on_resync:
                    self._ok()
                if report["resync"]:
                    return
                if not ok_on_resync:
                    self._ok()
        finally:
            with self._stream_lock:
                self._stream = None
            stream.close()

    def _step(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._step()
                backoff = 0.1
            except (StoreError, EtcdError, Error, OSError, http.client.HTTPException, ValueError) as e:
                if self._stop.is_set():
                    return
                self.error, self.status = e, "retrying"
                if self.on_error is not None:
                    try:
                        self.on_error(e)
                    except Exception:  # noqa: BLE001
                        pass
                self._stop.wait(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)

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

    def _thread_name(self) -> str:
        return f"waypost-{self.kind}-mirror {self.source}" if self.kind else f"waypost-mirror {self.source}"

    def start(self: M) -> M:
        """Declares the source (unless the registry has it already, e.g.
        restored from a snapshot or the cache) and starts mirroring in the
        background."""
        if self._threads:
            return self
        with self.lock:
            try:
                self.registry.source_request(self.source)
            except InvalidArgumentError:
                self.registry.source_add(self.source, self.options)
        self._stop.clear()
        self._transport.reset()
        self.status = "starting"
        self._threads.append(threading.Thread(target=self._run, name=self._thread_name(), daemon=True))
        if self.cache_path is not None:
            self._threads.append(threading.Thread(target=self._cache_loop, name="waypost-mirror-cache", daemon=True))
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
        """Stops mirroring: the call in flight is aborted, the threads
        joined and the cache written one last time. The registry keeps what
        it holds. Safe to call twice."""
        self._stop.set()
        with self._stream_lock:
            if self._stream is not None:
                self._stream.abort()
        self._transport.abort()
        threads, self._threads = self._threads, []
        for t in threads:
            t.join()
        if threads and self.cache_path is not None:
            self._write_cache()
        self.status = "stopped"

    def __enter__(self: M) -> M:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


def restore_cache(path: str) -> Optional[Registry]:
    """The registry a mirror cached at ``path`` (with its mirror state),
    or ``None`` when there is no cache yet. A corrupt cache raises
    ``waypost.InvalidSnapshotError``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    return Registry.restore(text)
