"""The etcd v3 JSON gateway over the standard library's http.client, with
failover across several client URLs. Internal to ``waypost.etcd``."""
from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import urllib.parse
from typing import Any, Callable, Optional, Sequence

from ._grpc import Call, shut_down


class EtcdError(Exception):
    """A call to etcd failed. ``endpoint`` names the member (or members)
    asked, ``path`` the gateway call; ``status`` is the HTTP status when
    the member answered."""

    def __init__(self, message: str, *, endpoint: str = "", path: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.path = path
        self.status = status


def b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def prefix_end(prefix: str) -> str:
    """The ``range_end`` of a prefix read: the prefix with its last byte + 1."""
    raw = prefix.encode()
    if not raw or raw[-1] == 0xFF:
        raise ValueError(f"prefix {prefix!r} cannot end a range")
    return b64(raw[:-1] + bytes([raw[-1] + 1]))


def _split(endpoint: str) -> tuple[str, int, bool]:
    url = urllib.parse.urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"endpoint {endpoint!r}: expected http://host:port or https://host:port")
    secure = url.scheme == "https"
    return url.hostname, url.port or (443 if secure else 2379), secure


class HTTPSConnection(http.client.HTTPSConnection):
    """An https connection whose TLS socket exists before its handshake, so
    another thread can shut it down while the handshake waits (the standard
    connection wraps the socket inside the handshake: until it ends there is
    nothing to shut down, and a server that never answers holds the caller
    for the whole timeout). ``aborted()`` is asked once the TLS socket is in
    place: an abort that came earlier found no socket to shut down."""

    def __init__(self, host: str, port: int, *, timeout: Optional[float], context: ssl.SSLContext,
                 aborted: Callable[[], bool] = lambda: False) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.tls = context
        self.aborted = aborted

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        assert self.sock is not None
        self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.host, do_handshake_on_connect=False)
        if self.aborted():
            raise OSError("aborted")
        self.sock.do_handshake()


class Stream:
    """An open streamed answer: ``readline`` gives one message per line."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, endpoint: str) -> None:
        self.conn = conn
        self.resp = resp
        self.endpoint = endpoint

    def readline(self) -> bytes:
        return self.resp.readline()

    def abort(self) -> None:
        """Unblocks a reader in another thread and closes the socket."""
        shut_down(self.conn.sock)

    def close(self) -> None:
        self.abort()
        self.conn.close()


def tls_context(ca_file: Optional[str], store: str = "etcd") -> ssl.SSLContext:
    """Verifies the server's certificate against ``ca_file`` (PEM), or
    against the system's trusted CAs when it is ``None``."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as e:
        raise EtcdError(f"{store}: cannot read CA file {ca_file!r}: {e}") from e


class Endpoints:
    """Client URLs tried in turn: a call goes to the current one and moves
    to the next when it cannot connect, times out or answers 5xx. An
    ``https://`` URL is verified with ``ssl_context`` (default: the
    system's trusted CAs)."""

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        timeout_s: float = 5.0,
        store: str = "etcd",
        *,
        headers: Optional[dict[str, str]] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.store = store
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.ssl_context = ssl_context
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not endpoints:
            raise ValueError("endpoints: give at least one etcd client URL")
        self.urls = [e.rstrip("/") for e in endpoints]
        self._hosts = [_split(e) for e in self.urls]
        if ssl_context is None and any(secure for _, _, secure in self._hosts):
            self.ssl_context = tls_context(None, store)
        self.timeout_s = timeout_s
        self._current = 0
        self._lock = threading.Lock()
        # The headers of the last whole answer (a Consul index travels in one).
        self.last_headers: dict[str, str] = {}
        # The connection of the call in flight, so abort() can end a long wait.
        self._active: Optional[http.client.HTTPConnection] = None
        self._active_grpc: Optional[Call] = None
        self._aborted = False

    @property
    def current(self) -> str:
        return self.urls[self._current]

    def _order(self) -> list[int]:
        with self._lock:
            start = self._current
        return [(start + i) % len(self.urls) for i in range(len(self.urls))]

    def _settle(self, i: int) -> None:
        with self._lock:
            self._current = i

    def _open(self, i: int, method: str, path: str, body: str, timeout: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        host, port, secure = self._hosts[i]
        conn = (HTTPSConnection(host, port, timeout=timeout, context=self.ssl_context, aborted=self._is_aborted)
                if secure and self.ssl_context is not None else http.client.HTTPConnection(host, port, timeout=timeout))
        try:
            # Known to abort() before it connects: a TLS handshake that does
            # not end is on a socket abort() can shut down; an abort that
            # comes before the socket exists is seen right after.
            with self._lock:
                if self._aborted:
                    raise OSError("closed")
                self._active = conn
            conn.connect()
            with self._lock:
                if self._aborted:
                    raise OSError("closed")
            conn.request(method, path, body=body.encode() if body else None, headers=self.headers)
            return conn, conn.getresponse()
        except BaseException:
            conn.close()
            raise

    def reset(self) -> None:
        """Allows calls again after ``abort``."""
        with self._lock:
            self._aborted = False

    def _is_aborted(self) -> bool:
        with self._lock:
            return self._aborted

    def abort(self) -> None:
        """Ends the call in flight (another thread waiting on it gets an error)."""
        with self._lock:
            self._aborted = True
            conn = self._active
            grpc = self._active_grpc
        if grpc is not None:
            grpc.abort()
        shut_down(conn.sock if conn is not None else None)

    def _each(self, method: str, path: str, body: str, timeout: float, stream: bool) -> tuple[int, bytes, Optional[Stream]]:
        failures: list[str] = []
        for i in self._order():
            url = self.urls[i]
            try:
                conn, resp = self._open(i, method, path, body, timeout)
            except (OSError, http.client.HTTPException) as e:
                failures.append(f"{url}: {e or type(e).__name__}")
                continue
            if resp.status >= 500:
                try:
                    detail = resp.read(2000).decode(errors="replace")
                except (OSError, http.client.HTTPException) as e:
                    detail = str(e)
                conn.close()
                failures.append(f"{url}: HTTP {resp.status} {detail.strip()}")
                continue
            self._settle(i)
            if stream and resp.status == 200:
                return resp.status, b"", Stream(conn, resp, url)
            try:
                data = resp.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                failures.append(f"{url}: {e or type(e).__name__}")
                continue
            conn.close()
            self.last_headers = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, data, None
        raise EtcdError(
            f"{self.store} unreachable ({method} {path}): " + "; ".join(failures),
            endpoint=", ".join(self.urls), path=path,
        )

    def grpc(self, path: str, message: bytes, context: Optional[ssl.SSLContext] = None) -> bytes:
        """One gRPC unary call (``waypost._grpc``), each on a new connection,
        to the first member that answers it: the answer's message, framed.
        ``timeout_s`` bounds each member's whole call; ``context`` must offer
        ALPN ``h2`` (default: the system's CAs)."""
        failures: list[str] = []
        for i in self._order():
            host, port, secure = self._hosts[i]
            call = Call(host, port, secure, path, message, timeout=self.timeout_s, context=context)
            with self._lock:
                if self._aborted:
                    failures.append(f"{self.urls[i]}: closed")
                    break
                self._active_grpc = call
            try:
                data = call.run()
            except OSError as e:
                failures.append(str(e))
                continue
            finally:
                with self._lock:
                    self._active_grpc = None
            self._settle(i)
            return data
        raise EtcdError(f"{self.store} unreachable (gRPC {path}): " + "; ".join(failures),
                        endpoint=", ".join(self.urls), path=path)

    def request(self, method: str, path: str, body: str, timeout: Optional[float] = None) -> tuple[int, bytes]:
        """Sends one request; answers (status, body) from the first member
        that answers below 500."""
        status, data, _ = self._each(method, path, body, timeout or self.timeout_s, False)
        return status, data

    def stream(self, method: str, path: str, body: str, read_timeout: Optional[float]) -> tuple[int, bytes, Optional[Stream]]:
        """Opens a streamed call; a non-200 answer comes back whole."""
        return self._each(method, path, body, read_timeout or self.timeout_s, True)

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A unary gateway call that must succeed: the decoded answer."""
        status, data = self.request("POST", path, json.dumps(body))
        if status != 200:
            raise EtcdError(f"{self.store} {self.current}: {path} answered HTTP {status}: {data[:500].decode(errors='replace')}",
                            endpoint=self.current, path=path, status=status)
        try:
            out: dict[str, Any] = json.loads(data)
        except ValueError as e:
            raise EtcdError(f"{self.store} {self.current}: {path} answered invalid JSON: {e}",
                            endpoint=self.current, path=path, status=status) from e
        return out

    def first_message(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The first message of a streamed call (a lease keep-alive), then
        the stream is closed."""
        status, data, stream = self.stream("POST", path, json.dumps(body), None)
        if stream is None:
            raise EtcdError(f"{self.store} {self.current}: {path} answered HTTP {status}: {data[:500].decode(errors='replace')}",
                            endpoint=self.current, path=path, status=status)
        try:
            line = stream.readline()
        except (OSError, http.client.HTTPException) as e:
            raise EtcdError(f"{self.store} {stream.endpoint}: {path}: {e or type(e).__name__}",
                            endpoint=stream.endpoint, path=path) from e
        finally:
            stream.close()
        try:
            out: dict[str, Any] = json.loads(line)
        except ValueError as e:
            raise EtcdError(f"{self.store} {stream.endpoint}: {path} answered {line[:200]!r}",
                            endpoint=stream.endpoint, path=path) from e
        return out
