"""close() of the etcd and Consul helpers against a loopback server that
accepts connections and never answers: over http the call waits for its
answer, over https the TLS handshake never ends (the socket is still being
opened). Whenever close() comes — at once after start(), a few ms later, or
once the server holds the connection — it returns well before the helpers'
own timeouts (two minutes here) and leaves no thread or connection behind."""
from __future__ import annotations

import socket
import threading
import time
from typing import Callable, Iterator

import pytest

import waypost
from waypost import consul
from waypost.etcd import Mirror, Registrar

LONG_S = 120.0        # every helper timeout: close() must not wait for it
CLOSE_BOUND_S = 15.0  # generous on a loaded machine, far below LONG_S
MOMENTS: list[float] = [0.0, 0.001, 0.003, 0.01, -1.0]  # -1: once the server holds the call


class Stall:
    """Accepts, reads and never writes; counts connections still open."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.open = 0
        self._lock = threading.Lock()
        self._stop = False
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self.open += 1
                self._conns.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        conn.close()
        with self._lock:
            self.open -= 1

    def url(self, scheme: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def stall() -> Iterator[Stall]:
    s = Stall()
    yield s
    s.close()


def eventually(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.01)


def close_while_stalled(stall: Stall, start: Callable[[str], Callable[[], None]]) -> None:
    threads = threading.active_count()
    for scheme in ("http", "https"):
        for moment in MOMENTS:
            seen = stall.accepted
            close = start(stall.url(scheme))
            if moment < 0:
                eventually(lambda: stall.accepted > seen, 10, f"{scheme}: the server to hold the call")
            else:
                time.sleep(moment)
            closer = threading.Thread(target=close, daemon=True)
            t0 = time.monotonic()
            closer.start()
            closer.join(CLOSE_BOUND_S)
            assert not closer.is_alive(), f"{scheme} at {moment}: close() still waiting after {CLOSE_BOUND_S} s"
            assert time.monotonic() - t0 < CLOSE_BOUND_S
    eventually(lambda: stall.open == 0, 5, "every connection the helper opened closed")
    eventually(lambda: threading.active_count() == threads, 5, "every thread the helper started ended")


def test_etcd_mirror(stall: Stall) -> None:
    def start(url: str) -> Callable[[], None]:
        m = Mirror([url], waypost.Registry(), timeout_s=LONG_S).start()
        return m.close
    close_while_stalled(stall, start)


def test_etcd_registrar_start_ends_when_closed(stall: Stall) -> None:
    def start(url: str) -> Callable[[], None]:
        # start() blocks on the first registration: close() from another thread ends it.
        r = Registrar([url], {"id": "a-1", "service": "a", "address": "10.0.0.1", "port": 1}, timeout_s=LONG_S)
        failed: list[BaseException] = []

        def run() -> None:
            try:
                r.start()
            except Exception as e:  # noqa: BLE001 - the failure is the point
                failed.append(e)
        t = threading.Thread(target=run, daemon=True)
        t.start()

        def close() -> None:
            r.close()
            t.join()
            assert failed, "start() succeeded against a server that never answers"
        return close
    close_while_stalled(stall, start)


def test_consul_mirror(stall: Stall) -> None:
    def start(url: str) -> Callable[[], None]:
        m = consul.Mirror(url, waypost.Registry(), "web", timeout_s=LONG_S).start()
        return m.close
    close_while_stalled(stall, start)
