"""One HTTP(S) server (a Consul agent, a Kubernetes API server) over the
standard library's http.client, with a call in flight that another thread
can abort. Internal to ``waypost.consul`` and ``waypost.k8s``."""
from __future__ import annotations

import http.client
import ssl
import threading
import urllib.parse
from typing import Callable, Mapping, Optional, Union

from ._etcd_http import HTTPSConnection, Stream
from ._grpc import shut_down

Connection = Union[http.client.HTTPConnection, http.client.HTTPSConnection]


class StoreError(Exception):
    """A call to the store failed. ``endpoint`` names the server,
    ``path`` the call; ``status`` is the HTTP status when it answered."""

    def __init__(self, message: str, *, endpoint: str = "", path: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.path = path
        self.status = status


class Server:
    """``base_url`` (``http://host:port`` or ``https://…``; a bare
    ``host:port`` is ``http``), extra ``headers`` on every call (given as a
    function so a rotated token is read again), ``ca_file`` for https."""

    def __init__(
        self,
        base_url: str,
        *,
        default_port: int,
        headers: Optional[Callable[[], Mapping[str, str]]] = None,
        ca_file: Optional[str] = None,
        timeout_s: float = 5.0,
        what: str = "server",
        error: type[StoreError] = StoreError,
    ) -> None:
        url = urllib.parse.urlsplit(base_url if "://" in base_url else "http://" + base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{what} address {base_url!r}: expected http://host:port or https://host:port")
        self.scheme = url.scheme
        self.host = url.hostname
        self.port = url.port or default_port
        self.url = f"{url.scheme}://{url.netloc}"
        self.headers = headers
        self.timeout_s = timeout_s
        self.what = what
        self.error = error
        self._ssl: Optional[ssl.SSLContext] = None
        if self.scheme == "https":
            try:
                self._ssl = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as e:
                raise error(f"{what} {self.url}: cannot read CA file {ca_file!r}: {e}", endpoint=self.url) from e
        self._lock = threading.Lock()
        self._open: set[Connection] = set()
        self._closed = False

    def _connect(self, timeout: Optional[float]) -> Connection:
        if self._ssl is not None:
            return HTTPSConnection(self.host, self.port, timeout=timeout, context=self._ssl, aborted=self._is_closed)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _is_closed(self) -> bool:
        with self._lock:
            return self._closed

    def _track(self, conn: Connection) -> None:
        with self._lock:
            if self._closed:
                conn.close()
                raise self.error(f"{self.what} {self.url}: closed", endpoint=self.url)
            self._open.add(conn)

    def _untrack(self, conn: Connection) -> None:
        with self._lock:
            self._open.discard(conn)
        conn.close()

    def _send(self, method: str, path: str, body: bytes, timeout: Optional[float]) -> tuple[Connection, http.client.HTTPResponse]:
        conn = self._connect(timeout)
        self._track(conn)
        headers = {"Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json"
        if self.headers is not None:
            headers.update(self.headers())
        try:
            conn.request(method, path, body=body or None, headers=headers)
            # An abort that came while the socket was still being opened
            # could not shut it down: look again now that it exists (an
            # abort from here on finds the socket and shuts it).
            with self._lock:
                aborted = self._closed
            if aborted:
                raise OSError("aborted")
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            self._untrack(conn)
            raise self.error(f"{self.what} {self.url}: {method} {path}: {e or type(e).__name__}",
                             endpoint=self.url, path=path) from e
        except BaseException:
            self._untrack(conn)
            raise

    def request(self, method: str, path: str, body: bytes = b"", timeout: Optional[float] = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One call, read whole: (status, headers, body). ``timeout`` bounds
        each socket wait (a blocking query needs longer than the default)."""
        conn, resp = self._send(method, path, body, timeout or self.timeout_s)
        try:
            return resp.status, resp.headers, resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise self.error(f"{self.what} {self.url}: {method} {path}: {e or type(e).__name__}",
                             endpoint=self.url, path=path) from e
        finally:
            self._untrack(conn)

    def stream(self, method: str, path: str, idle_timeout: Optional[float]) -> tuple[int, bytes, Optional[Stream]]:
        """A streamed call: (200, b"", stream) or, for any other status,
        (status, body, None). Close the stream when done."""
        conn, resp = self._send(method, path, b"", self.timeout_s)
        if resp.status != 200:
            try:
                return resp.status, resp.read(), None
            except (OSError, http.client.HTTPException) as e:
                raise self.error(f"{self.what} {self.url}: {method} {path}: {e or type(e).__name__}",
                                 endpoint=self.url, path=path, status=resp.status) from e
            finally:
                self._untrack(conn)
        if conn.sock is not None:
            conn.sock.settimeout(idle_timeout)
        return 200, b"", _Tracked(conn, resp, self.url, self)

    @property
    def current(self) -> str:
        """The server's URL."""
        return self.url

    def reset(self) -> None:
        """Allows calls again after ``abort``."""
        with self._lock:
            self._closed = False

    def abort(self) -> None:
        """Unblocks every call in flight (their sockets are shut down) and
        refuses new ones until ``reset``."""
        with self._lock:
            self._closed = True
            conns = list(self._open)
        for conn in conns:
            shut_down(conn.sock)


class _Tracked(Stream):
    def __init__(self, conn: Connection, resp: http.client.HTTPResponse, endpoint: str, owner: Server) -> None:
        super().__init__(conn, resp, endpoint)
        self.owner = owner

    def close(self) -> None:
        self.abort()
        self.owner._untrack(self.conn)  # noqa: SLF001 - the stream belongs to its server
