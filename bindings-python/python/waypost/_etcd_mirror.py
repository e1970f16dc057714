"""The host loop of the etcd mirror: it moves bytes
between a store and the core, which decides everything. Internal."""
from __future__ import annotations

import http.client
import json
import os
import tempfile
import threading
import time
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar

from ._errors import Error, InvalidArgumentError
from ._etcd_http import EtcdError, Endpoints, Stream
from ._waypost import Registry
from .helpers import Clock, wall_clock_ms

ErrorCallback = Callable[[Exception], None]
_M = TypeVar("_M", bound="StoreMirror")


class StoreMirror:
    """The host loop every store mirror shares (SPEC §10.4): a daemon
    thread asks the core what to send (``source_request``), sends it, and
    feeds the answer back (``source_feed``; every message of a streamed
    answer on its own, with the store's index header when it has one).
    After a failure it backs off and moves to the next endpoint; the core's
    state says where to resume.

    ``lock`` is held while the mirror touches the registry; take it too to
    read several things at once. ``error`` is the last failure (``None``
    once a request succeeds again), also passed to ``on_error``;
    ``on_change`` gets every report that changed something. With
    ``cache_path`` the registry's snapshot is written there (a temporary
    file, then a rename) after changes, at most every ``cache_interval_s``
    seconds, and on close; ``restore_cache(path)`` gives it back.
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        registry: Registry,
        *,
        source: str,
        options: Mapping[str, Any],
        now: Optional[Clock] = None,
        timeout_s: float = 2.0,
        request_timeout_s: Optional[float] = None,
        index_header: Optional[str] = None,
        min_interval_s: float = 0.0,
        cache_path: Optional[str] = None,
        cache_interval_s: float = 5.0,
        on_error: Optional[ErrorCallback] = None,
        on_change: Optional[Callable[[dict[str, Any]], None]] = None,
        client: Optional[Endpoints] = None,
    ) -> None:
        self.registry = registry
        self.options = dict(options)
        self.source = source
        self.request_timeout_s = request_timeout_s
        self.index_header = index_header
        self.min_interval_s = min_interval_s
        self.now: Clock = now or wall_clock_ms
        self.cache_path = cache_path
        self.cache_interval_s = cache_interval_s
        self.on_error = on_error
        self.on_change = on_change
        self.lock = threading.Lock()
        self.error: Optional[Exception] = None
        self.status = "idle"
        self.feeds = 0
        self._etcd = client or Endpoints(endpoints, timeout_s, str(options.get("kind", "store")))
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

    def _declare(self) -> None:
        with self.lock:
            try:
                self.registry.source_request(self.source)  # declared already (e.g. a restored cache)
            except InvalidArgumentError:
                self.registry.source_add(self.source, self.options)

    def _feed(self, body: bytes, status: int, index: Optional[str] = None) -> dict[str, Any]:
        with self.lock:
            report = self.registry.source_feed(self.source, body, now=self.now(), status=status, index=index)
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
                    raise EtcdError(f"{self._etcd.store} {stream.endpoint}: stream broke: {e or type(e).__name__}",
                                    endpoint=stream.endpoint, path="/v3/watch") from e
                if not line:
                    if self._stop.is_set():
                        return
                    raise EtcdError(f"{self._etcd.store} {stream.endpoint}: stream ended", endpoint=stream.endpoint, path="/v3/watch")
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

    def _answer(self, path: str, data: bytes, status: int, index: Optional[str]) -> dict[str, Any]:
        """Feeds a whole answer; one the core cannot use (a failed request
        it does not resync on) becomes an error naming the endpoint."""
        failed = EtcdError(f"{self._etcd.store} {self.endpoint}: {path} answered HTTP {status}: {data[:300].decode(errors='replace')}",
                           endpoint=self.endpoint, path=path, status=status)
        try:
            report = self._feed(data, status, index)
        except Error as e:
            if status == 200:
                raise
            raise failed from e
        if status != 200 and not report["resync"]:
            raise failed
        return report

    def _step(self) -> None:
        with self.lock:
            req = self.registry.source_request(self.source)
        if req["stream"]:
            status, data, stream = self._etcd.stream(req["method"], req["path"], req["body"], None)
            if stream is not None:
                self._watch(stream)
                return
        else:
            started = time.monotonic()
            status, data = self._etcd.request(req["method"], req["path"], req["body"], self.request_timeout_s)
            index = self._etcd.last_headers.get(self.index_header.lower()) if self.index_header else None
            if not self._answer(req["path"], data, status, index)["resync"]:  # 410: read everything again
                self._ok()
            # A blocking query may answer at once without a change: keep a
            # minimum pace between requests.
            self._stop.wait(max(0.0, self.min_interval_s - (time.monotonic() - started)))
            return
        if not self._answer(req["path"], data, status, None)["resync"]:
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

    def start(self: _M) -> _M:
        """Declares the source (unless the registry has it, e.g. restored
        from the cache) and starts mirroring in the background."""
        if self._threads:
            return self
        self._declare()
        self._stop.clear()
        self._etcd.reset()
        self.status = "starting"
        self._threads.append(threading.Thread(target=self._run, name=f"waypost-mirror {self.source}", daemon=True))
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
        """Stops mirroring, waits for the threads and writes the cache one
        last time. The registry keeps what it holds. Safe to call twice."""
        self._stop.set()
        with self._stream_lock:
            if self._stream is not None:
                self._stream.abort()
        self._etcd.abort()  # a blocking query in flight
        threads, self._threads = self._threads, []
        for t in threads:
            t.join()
        if threads and self.cache_path is not None:
            self._write_cache()
        self.status = "stopped"

    def __enter__(self: _M) -> _M:
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
