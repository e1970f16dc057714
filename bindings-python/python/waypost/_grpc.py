"""One gRPC unary call, standard library only: the standard library has no
HTTP/2 client, and an etcd range read over gRPC costs a fraction of the
JSON gateway's. The core's ``GrpcCall`` says what to send and reads the
answer (SPEC §10.4); this module owns the socket (TCP, TLS with ALPN
``h2``, the timeout, ``abort()``) and moves bytes. Each call opens its own
connection and closes it afterwards. What comes back is the answer's DATA:
the length-prefixed gRPC message, its 5-byte prefix included (the core
checks and strips it when it is fed to the registry). Internal to
``waypost.etcd``.
"""
from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Optional

from ._waypost import GrpcCall


def shut_down(sock: Optional[socket.socket]) -> None:
    """Shuts a socket down both ways so a thread blocked on it wakes; an
    error (the socket already closed) is ignored."""
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class GrpcError(OSError):
    """A gRPC call failed: the connection, the HTTP/2 exchange, or the
    server answered without a message. An ``OSError``, so every caller
    treats it as it treats a failed HTTP request."""


def h2_context(ca_file: Optional[str] = None) -> ssl.SSLContext:
    """A TLS context that verifies the server (against ``ca_file``, or the
    system's CAs) and offers only HTTP/2 by ALPN. A context of its own: the
    ALPN offer would turn an HTTP/1.1 client's connections into HTTP/2 ones."""
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["h2"])
    return context


class Call:
    """One unary call to ``path`` on ``host:port`` (https when ``secure``,
    with ``context``, default ``h2_context()``; it must offer ALPN ``h2``).
    ``run()`` (once) answers the DATA bytes or raises ``GrpcError`` (``OSError``);
    ``timeout`` bounds the whole call, ``abort()`` (from another thread)
    ends it at once; an answer over ``max_size`` bytes fails it (0: the
    core's bound, 256 MiB)."""

    def __init__(
        self,
        host: str,
        port: int,
        secure: bool,
        path: str,
        message: bytes,
        *,
        timeout: float,
        context: Optional[ssl.SSLContext] = None,
        authority: Optional[str] = None,
        max_size: int = 0,
    ) -> None:
        self.host, self.port, self.secure, self.path = host, port, secure, path
        self.authority = authority or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        self.target = f"{'https' if secure else 'http'}://{self.authority}{path}"
        self.timeout = timeout
        self.context = context
        # The core checks the request here: a bad one is InvalidArgumentError.
        self._call = GrpcCall("https" if secure else "http", self.authority, path, message, max_size)
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._aborted = False
        self._deadline = 0.0

    def abort(self) -> None:
        """Ends the call: a ``run()`` waiting in another thread raises."""
        with self._lock:
            self._aborted = True
            sock = self._sock
        shut_down(sock)

    def _fail(self, detail: str) -> GrpcError:
        return GrpcError(f"gRPC {self.target}: {detail}")

    def _left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self._fail(f"no answer within {self.timeout:g}s")
        return left

    def _hold(self, sock: socket.socket) -> None:
        """Makes ``sock`` the one ``abort()`` shuts down; an abort that came
        before it existed is seen here."""
        with self._lock:
            self._sock = sock
            if self._aborted:
                raise self._fail("aborted")

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self._left())
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._hold(sock)
            if not self.secure:
                return sock
            context = self.context or h2_context()
            tls = context.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        except BaseException:
            sock.close()
            raise
        try:
            self._hold(tls)
            tls.settimeout(self._left())
            tls.do_handshake()
            if tls.selected_alpn_protocol() != "h2":
                raise self._fail(f"the server did not agree to HTTP/2 by ALPN ({tls.selected_alpn_protocol()!r})")
            return tls
        except BaseException:
            tls.close()
            raise

    def _send(self, sock: socket.socket, data: bytes) -> None:
        sock.settimeout(self._left())
        sock.sendall(data)

    def run(self) -> bytes:
        """Makes the call: the answer's DATA, concatenated."""
        self._deadline = time.monotonic() + self.timeout
        call = self._call
        waiting = "connection"
        sock: Optional[socket.socket] = None
        try:
            sock = self._connect()
            waiting = "answer"
            state = "waiting"
            while True:
                out = call.take_output()
                if out and state == "waiting":
                    self._send(sock, out)
                elif out:
                    try:  # a polite goodbye; the answer is already whole
                        sock.settimeout(0.1)
                        sock.sendall(out)
                    except OSError:
                        pass
                if state == "answered":
                    return call.answer
                if state == "failed":
                    raise self._fail(call.failure)
                sock.settimeout(self._left())
                state = call.receive(sock.recv(65_536))
        except GrpcError:
            raise
        except socket.timeout as e:
            raise self._fail(f"no {waiting} within {self.timeout:g}s") from e
        except OSError as e:
            raise self._fail(str(e) or type(e).__name__) from e
        finally:
            if sock is not None:
                sock.close()
