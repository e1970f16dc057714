"""Small host helpers built only on the core's public calls.

- ``Registrar``: registers an instance, heartbeats it every ttl/3 on a
  background thread and deregisters it on exit.
- ``Ticker``: calls ``tick`` when ``next_deadline`` says, runs the active
  checks ``due_checks`` names, and hands every event to a callback.
- ``track``: brackets one call to an instance with ``begin``/``end`` and
  reports its outcome (for ``least_request`` and outlier detection).
"""
from __future__ import annotations

import contextlib
import threading
import time
from types import TracebackType
from typing import Callable, Iterator, Mapping, Optional, Sequence, Union

from ._enums import CheckStatus
from ._errors import CompactedError, NotFoundError
from ._waypost import Event, Instance, InstanceView, Registry

Clock = Callable[[], int]
CheckResult = Union[CheckStatus, str, bool]


def wall_clock_ms() -> int:
    """The host's wall clock in ms: what ``now`` means when omitted."""
    return time.time_ns() // 1_000_000


class Registrar:
    """Keeps one instance registered while the ``with`` block runs.

    On entry it registers the instance; a daemon thread heartbeats it every
    ``ttl / 3`` (the instance's ``ttl_ms`` or the registry's) and registers it
    again if the registry no longer knows it (``NotFoundError``, e.g. after an
    eviction). On exit it stops the thread and deregisters the instance.
    """

    def __init__(
        self,
        registry: Registry,
        id: str,
        service: str,
        address: str,
        port: int,
        *,
        weight: Optional[int] = None,
        tags: Optional[Sequence[str]] = None,
        meta: Optional[Mapping[str, str]] = None,
        zone: Optional[str] = None,
        priority: Optional[int] = None,
        ttl_ms: Optional[int] = None,
        check_interval_ms: Optional[int] = None,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.registry = registry
        self.id = id
        self._fields = dict(
            weight=weight,
            tags=tags,
            meta=meta,
            zone=zone,
            priority=priority,
            ttl_ms=ttl_ms,
            check_interval_ms=check_interval_ms,
        )
        self._service = service
        self._address = address
        self._port = port
        self._clock = clock
        ttl = ttl_ms if ttl_ms is not None else int(registry.config["ttl_ms"])
        self.interval_ms = max(1, ttl // 3)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.instance: Optional[Instance] = None

    def register(self) -> Instance:
        """Registers (or re-registers) the instance now."""
        self.instance = self.registry.register(
            self.id,
            self._service,
            self._address,
            self._port,
            now=self._clock(),
            **self._fields,  # type: ignore[arg-type]
        )
        return self.instance

    def beat(self) -> None:
        """One heartbeat; registers again when the registry lost the instance."""
        try:
            self.registry.heartbeat(self.id, now=self._clock())
        except NotFoundError:
            self.register()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_ms / 1000):
            self.beat()

    def start(self) -> Instance:
        """Registers and starts heartbeating."""
        instance = self.register()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"waypost-registrar-{self.id}", daemon=True)
        self._thread.start()
        return instance

    def stop(self) -> None:
        """Stops heartbeating and deregisters (an instance already gone is fine)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with contextlib.suppress(NotFoundError):
            self.registry.deregister(self.id, now=self._clock())

    def __enter__(self) -> Instance:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()


class Ticker:
    """Drives a registry's clock for a host that has no loop of its own.

    ``step()`` ticks when ``next_deadline()`` has come, runs the checks
    ``due_checks()`` names through ``check`` (if given) and passes every new
    event to ``on_event``; it returns the next deadline. ``start()`` runs
    ``step()`` on a daemon thread that sleeps until that deadline (at most
    ``max_wait_ms``, so registrations made meanwhile are seen).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        on_event: Optional[Callable[[Event], None]] = None,
        check: Optional[Callable[[InstanceView], CheckResult]] = None,
        clock: Clock = wall_clock_ms,
        max_wait_ms: int = 1000,
    ) -> None:
        self.registry = registry
        self.on_event = on_event
        self.check = check
        self.max_wait_ms = max_wait_ms
        self._clock = clock
        self._last_index = registry.last_index
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def step(self, now: Optional[int] = None) -> Optional[int]:
        """One round at ``now`` (default: the clock); returns ``next_deadline()``."""
        now = self._clock() if now is None else now
        deadline = self.registry.next_deadline()
        if deadline is not None and deadline <= now:
            self.registry.tick(now=now)
        if self.check is not None:
            for id in self.registry.due_checks(now=now):
                try:
                    view = self.registry.get(id, now=now)
                except NotFoundError:
                    continue
                result = self.check(view)
                status = ("pass" if result else "fail") if isinstance(result, bool) else result
                with contextlib.suppress(NotFoundError):
                    self.registry.report_check(id, status, now=now)
        self._deliver()
        return self.registry.next_deadline()

    def _deliver(self) -> None:
        try:
            events = self.registry.events_since(self._last_index)
        except CompactedError:
            # Dropped before we saw them: continue from the newest.
            self._last_index = self.registry.last_index
            return
        if events:
            self._last_index = events[-1].index
        if self.on_event is not None:
            for event in events:
                self.on_event(event)

    def wake(self) -> None:
        """Makes the background thread run a step now."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            deadline = self.step()
            wait = self.max_wait_ms
            if deadline is not None:
                wait = min(wait, max(0, deadline - self._clock()))
            self._wake.wait(wait / 1000)
            self._wake.clear()

    def start(self) -> Ticker:
        """Starts the background thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="waypost-ticker", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops the background thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Ticker:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()


@contextlib.contextmanager
def track(registry: Registry, id: str, *, clock: Clock = wall_clock_ms) -> Iterator[None]:
    """Brackets one call to instance ``id``: ``begin`` before, ``end`` after,
    and the outcome reported (success unless the block raised). An instance
    deregistered meanwhile is ignored."""
    registry.begin(id, now=clock())
    ok = False
    try:
        yield
        ok = True
    finally:
        with contextlib.suppress(NotFoundError):
            now = clock()
            registry.end(id, now=now)
            registry.report_outcome(id, ok, now=now)
