"""One gRPC unary call over a minimal HTTP/2 client (RFC 9113), standard
library only: the standard library has no HTTP/2 client, and an etcd range
read over gRPC costs a fraction of the JSON gateway's. Internal to
``waypost.etcd``.

Each call opens its own connection and closes it afterwards, which keeps
the client small: the request's headers are sent as HPACK literals without
indexing (no tables to keep), the answer's headers are never decoded (a
fresh connection has no dynamic-table state that later frames would need),
and the windows are opened wide at once so an answer of up to 2 GiB needs
no flow control. What comes back is the answer's DATA, concatenated: the
length-prefixed gRPC message, its 5-byte prefix included (the core checks
and strips it). A call whose answer carries no DATA failed: gRPC reports an
error in trailers alone.
"""
from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from typing import Optional

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# Flags.
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8
# Settings (RFC 9113 §6.5.2).
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x2, 0x4

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535
# The largest frame payload either side may send before SETTINGS_MAX_FRAME_SIZE
# raises it; the client never raises it, so no frame it reads is larger.
MAX_FRAME = 16_384
# The stream's own send window before the server's SETTINGS: a request no
# larger than this needs no flow control (an etcd range request is ~40 bytes).
MAX_REQUEST = DEFAULT_WINDOW
MAX_ANSWER = 256 * 1024 * 1024

STREAM = 1  # the one stream a call opens

ERROR_CODES = {
    0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR", 0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED", 0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM",
    0x8: "CANCEL", 0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR", 0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY", 0xD: "HTTP_1_1_REQUIRED",
}


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


def error_name(code: int) -> str:
    return ERROR_CODES.get(code, f"0x{code:x}")


def h2_context(ca_file: Optional[str] = None) -> ssl.SSLContext:
    """A TLS context that verifies the server (against ``ca_file``, or the
    system's CAs) and offers only HTTP/2 by ALPN. A context of its own: the
    ALPN offer would turn an HTTP/1.1 client's connections into HTTP/2 ones."""
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["h2"])
    return context


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def _hpack_int(value: int) -> bytes:
    """An HPACK integer with a 7-bit prefix and the prefix's high bit clear
    (RFC 7541 §5.1): a string length without Huffman coding."""
    if value < 0x7F:
        return bytes([value])
    out = bytearray([0x7F])
    value -= 0x7F
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def header_block(fields: list[tuple[str, str]]) -> bytes:
    """Each field as "literal header field without indexing, new name"
    (RFC 7541 §6.2.2: a 0x00 byte, then name and value as plain strings),
    which needs neither the static nor the dynamic table."""
    out = bytearray()
    for name, value in fields:
        raw_name, raw_value = name.encode("ascii"), value.encode("ascii")
        out += b"\x00" + _hpack_int(len(raw_name)) + raw_name + _hpack_int(len(raw_value)) + raw_value
    return bytes(out)


def request_frames(scheme: str, authority: str, path: str, message: bytes) -> bytes:
    """Everything the client sends, in one write: the preface, SETTINGS
    (no push; the widest stream window), the connection window raised to
    the widest too, the request's HEADERS and its DATA, the last frame
    ending the stream."""
    settings = struct.pack(">HIHI", SETTINGS_ENABLE_PUSH, 0, SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW)
    headers = header_block([
        (":method", "POST"), (":scheme", scheme), (":path", path), (":authority", authority),
        ("content-type", "application/grpc"), ("te", "trailers"),
    ])
    if len(headers) > MAX_FRAME:
        raise ValueError(f"gRPC call {path[:100]!r}: the request's headers exceed one frame")
    out = bytearray(PREFACE)
    out += frame(SETTINGS, 0, 0, settings)
    out += frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - DEFAULT_WINDOW))
    out += frame(HEADERS, END_HEADERS, STREAM, headers)
    chunks = [message[i:i + MAX_FRAME] for i in range(0, len(message), MAX_FRAME)] or [b""]
    for i, chunk in enumerate(chunks):
        out += frame(DATA, END_STREAM if i == len(chunks) - 1 else 0, STREAM, chunk)
    return bytes(out)


class Call:
    """One unary call to ``path`` on ``host:port`` (https when ``secure``,
    with ``context``, default ``h2_context()``; it must offer ALPN ``h2``).
    ``run()`` (once) answers the DATA bytes or raises ``GrpcError`` (``OSError``);
    ``timeout`` bounds the whole call, ``abort()`` (from another thread)
    ends it at once."""

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
        max_size: int = MAX_ANSWER,
    ) -> None:
        if len(message) > MAX_REQUEST:
            raise ValueError(f"gRPC call {path}: a request of {len(message)} bytes exceeds {MAX_REQUEST}")
        self.host, self.port, self.secure, self.path = host, port, secure, path
        self.authority = authority or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        self.target = f"{'https' if secure else 'http'}://{self.authority}{path}"
        self.message = message
        self.timeout = timeout
        self.context = context
        self.max_size = max_size
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._aborted = False
        self._deadline = 0.0
        self._buf = bytearray()

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

    def _read(self, sock: socket.socket, n: int) -> bytes:
        while len(self._buf) < n:
            sock.settimeout(self._left())
            chunk = sock.recv(max(65_536, n - len(self._buf)))
            if not chunk:
                raise self._fail("the server closed the connection before the answer ended")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _send(self, sock: socket.socket, data: bytes) -> None:
        sock.settimeout(self._left())
        sock.sendall(data)

    def run(self) -> bytes:
        """Makes the call: the answer's DATA, concatenated."""
        self._deadline = time.monotonic() + self.timeout
        waiting = "connection"
        sock: Optional[socket.socket] = None
        try:
            sock = self._connect()
            waiting = "answer"
            scheme = "https" if self.secure else "http"
            self._send(sock, request_frames(scheme, self.authority, self.path, self.message))
            data = self._exchange(sock)
            try:  # a polite goodbye; the answer is already whole
                sock.settimeout(0.1)
                sock.sendall(frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)))
            except OSError:
                pass
            return data
        except GrpcError:
            raise
        except socket.timeout as e:
            raise self._fail(f"no {waiting} within {self.timeout:g}s") from e
        except OSError as e:
            raise self._fail(str(e) or type(e).__name__) from e
        finally:
            if sock is not None:
                sock.close()

    def _exchange(self, sock: socket.socket) -> bytes:
        """Reads frames until stream 1 ends, answering what HTTP/2 asks of
        a client on the way (RFC 9113 §6)."""
        data = bytearray()
        first = True
        open_block = False   # a header block waits for its CONTINUATION
        ending = False       # that block's HEADERS carried END_STREAM
        while True:
            head = self._read(sock, 9)
            if first and (head[3] != SETTINGS or head[4] & ACK):
                # The server's preface is a SETTINGS frame (RFC 9113 §3.4):
                # anything else is a server or proxy without HTTP/2.
                raise self._fail(f"the server does not speak HTTP/2 (its answer began {head!r})")
            first = False
            length = int.from_bytes(head[:3], "big")
            kind, flags = head[3], head[4]
            stream = int.from_bytes(head[5:9], "big") & 0x7FFF_FFFF
            if length > MAX_FRAME:
                raise self._fail(f"a frame of {length} bytes exceeds {MAX_FRAME} (FRAME_SIZE_ERROR)")
            payload = self._read(sock, length)
            if open_block and (kind != CONTINUATION or stream != STREAM):
                raise self._fail("a header block was interrupted (PROTOCOL_ERROR)")
            if kind == SETTINGS:
                if stream != 0 or (flags & ACK and length) or length % 6:
                    raise self._fail("a malformed SETTINGS frame (PROTOCOL_ERROR)")
                if not flags & ACK:
                    self._send(sock, frame(SETTINGS, ACK, 0))
            elif kind == PING:
                if stream != 0 or length != 8:
                    raise self._fail("a malformed PING frame (PROTOCOL_ERROR)")
                if not flags & ACK:
                    self._send(sock, frame(PING, ACK, 0, payload))
            elif kind == GOAWAY:
                if stream != 0 or length < 8:
                    raise self._fail("a malformed GOAWAY frame (PROTOCOL_ERROR)")
                last, code = struct.unpack(">II", payload[:8])
                # A graceful GOAWAY that still covers stream 1 lets it finish.
                if code != 0 or (last & 0x7FFF_FFFF) < STREAM:
                    detail = payload[8:200].decode(errors="replace")
                    raise self._fail(f"the server went away ({error_name(code)}){': ' + detail if detail else ''}")
            elif kind == RST_STREAM:
                if stream == 0 or length != 4:
                    raise self._fail("a malformed RST_STREAM frame (PROTOCOL_ERROR)")
                if stream == STREAM:
                    raise self._fail(f"the server reset the call ({error_name(int.from_bytes(payload, 'big'))})")
            elif kind == WINDOW_UPDATE:
                if length != 4:
                    raise self._fail("a malformed WINDOW_UPDATE frame (FRAME_SIZE_ERROR)")
            elif kind in (HEADERS, CONTINUATION):
                if stream != STREAM or (kind == CONTINUATION and not open_block):
                    raise self._fail(f"an unexpected header frame on stream {stream} (PROTOCOL_ERROR)")
                if kind == HEADERS:
                    ending = bool(flags & END_STREAM)
                open_block = not flags & END_HEADERS
                if ending and not open_block:
                    break
            elif kind == DATA:
                if stream != STREAM:
                    raise self._fail(f"DATA on stream {stream} (PROTOCOL_ERROR)")
                if flags & PADDED:
                    if not payload or payload[0] >= len(payload):
                        raise self._fail("a DATA frame's padding exceeds it (PROTOCOL_ERROR)")
                    payload = payload[1:len(payload) - payload[0]]
                data += payload
                if len(data) > self.max_size:
                    raise self._fail(f"the answer exceeds {self.max_size} bytes")
                if flags & END_STREAM:
                    break
            elif kind == PUSH_PROMISE:
                raise self._fail("PUSH_PROMISE although push is off (PROTOCOL_ERROR)")
            # PRIORITY and unknown frame types are ignored (RFC 9113 §4.1, §5.5).
        if not data:
            raise self._fail("the answer has no message (gRPC sent only a status: the call failed)")
        return bytes(data)

