"""The loop a Consul or Kubernetes mirror runs in its thread: ask the core
what to send, send it, feed the answer back, obey the report, back off on
failures. Internal to ``waypost.consul`` and ``waypost.k8s``."""
from __future__ import annotations

import http.client
import threading
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar

from ._errors import Error, InvalidArgumentError
from ._store_http import Server, StoreError
from ._waypost import Registry
from .helpers import Clock, wall_clock_ms

ErrorCallback = Callable[[Exception], None]
ChangeCallback = Callable[[dict[str, Any]], None]
M = TypeVar("M", bound="MirrorLoop")


class MirrorLoop:
    """What the two mirrors share: the thread, the lock, ``error`` /
    ``status`` / callbacks, ``wait_synced`` and a clean ``close``."""

    kind = ""

    def __init__(
        self,
        server: Server,
        registry: Registry,
        source: str,
        options: dict[str, Any],
        *,
        now: Optional[Clock],
        on_error: Optional[ErrorCallback],
        on_change: Optional[ChangeCallback],
    ) -> None:
        self.registry = registry
        self.source = source
        self.options = options
        self.now: Clock = now or wall_clock_ms
        self.on_error = on_error
        self.on_change = on_change
        self.lock = threading.Lock()
        self.error: Optional[Exception] = None
        self.status = "idle"
        self.feeds = 0
        self._server = server
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def endpoint(self) -> str:
        """The server's URL."""
        return self._server.url

    def _request(self) -> dict[str, Any]:
        with self.lock:
            return self.registry.source_request(self.source)

    def _feed(self, body: bytes, status: int, index: Optional[str] = None) -> dict[str, Any]:
        with self.lock:
            report = self.registry.source_feed(self.source, body, now=self.now(), status=status, index=index)
        self.feeds += 1
        if (report["added"] or report["updated"] or report["removed"] or report["resync"]) and self.on_change is not None:
            try:
                self.on_change(report)
            except Exception:  # noqa: BLE001 - a failing callback must not stop the mirror
                pass
        return report

    def _ok(self) -> None:
        self.error, self.status = None, "synced"
        self._synced.set()

    def _step(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._step()
                backoff = 0.1
            except (StoreError, Error, OSError, http.client.HTTPException, ValueError) as e:
                if self._stop.is_set():
                    return
                self.error, self.status = e, "retrying"
                if self.on_error is not None:
                    try:
                        self.on_error(e)
                    except Exception:  # noqa: BLE001
                        pass
                self._stop.wait(backoff)
                backoff = min(5.0, backoff * 2)

    def start(self: M) -> M:
        """Declares the source (unless the registry has it already, e.g.
        restored from a snapshot) and starts mirroring in the background."""
        if self._thread is not None:
            return self
        with self.lock:
            try:
                self.registry.source_request(self.source)
            except InvalidArgumentError:
                self.registry.source_add(self.source, self.options)
        self._stop.clear()
        self.status = "starting"
        self._thread = threading.Thread(target=self._run, name=f"waypost-{self.kind}-mirror {self.source}", daemon=True)
        self._thread.start()
        return self

    def wait_synced(self, timeout: Optional[float] = None) -> bool:
        """Waits until the mirror has read the store (True), or times out (False)."""
        return self._synced.wait(timeout)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def close(self) -> None:
        """Stops mirroring: the call in flight is aborted and the thread
        joined. The registry keeps what it holds. Safe to call twice."""
        self._stop.set()
        self._server.abort()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
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
