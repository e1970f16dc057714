"""The one-call gRPC client under the etcd mirror: against a real etcd (a
range read of a few keys and of thousands, an unknown method, a closed
port, a frozen then killed member), against a server that never answers,
and against a scripted HTTP/2 server for the frame rules."""
from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Iterator, Optional

import pytest

from etcd_harness import EtcdServer, free_port, put_many, range_keys, range_request
from h2_frames import (
    ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PADDED, PING, PREFACE,
    PUSH_PROMISE, RST_STREAM, SETTINGS, WINDOW_UPDATE, frame,
)
from waypost._grpc import Call, GrpcError

RANGE = "/etcdserverpb.KV/Range"


def call(port: int, path: str, message: bytes, timeout: float = 5.0, max_size: int = 1 << 20) -> Call:
    return Call("127.0.0.1", port, False, path, message, timeout=timeout, max_size=max_size)


def test_a_range_of_three_keys(etcd: EtcdServer, prefix: str) -> None:
    want = put_many(etcd.client, prefix, 3, 10)
    assert range_keys(call(etcd.client_port, RANGE, range_request(prefix)).run()) == want


def test_a_range_of_3000_keys_spans_many_data_frames(etcd: EtcdServer, prefix: str) -> None:
    want = put_many(etcd.client, prefix, 3000, 100)
    answer = call(etcd.client_port, RANGE, range_request(prefix), timeout=10).run()
    assert len(answer) > 20 * 16_384
    assert range_keys(answer) == want


def test_a_method_etcd_does_not_serve_fails_with_its_grpc_status(etcd: EtcdServer, prefix: str) -> None:
    with pytest.raises(GrpcError, match=r"gRPC status 12 \(UNIMPLEMENTED\): unknown method Nope") as e:
        call(etcd.client_port, "/etcdserverpb.KV/Nope", range_request(prefix)).run()
    assert f"127.0.0.1:{etcd.client_port}" in str(e.value)


def test_a_closed_port_fails() -> None:
    with pytest.raises(GrpcError, match="refused"):
        call(free_port(), RANGE, range_request("/x")).run()


def test_a_request_beyond_the_first_window_is_refused() -> None:
    with pytest.raises(ValueError):
        call(free_port(), RANGE, b"\0" * 65_536)


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """Accepts (its backlog does) and never reads nor answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


def test_a_silent_server_fails_within_the_timeout(silent: socket.socket) -> None:
    t0 = time.monotonic()
    with pytest.raises(GrpcError, match="within 0.3s"):
        call(silent.getsockname()[1], RANGE, range_request("/x"), timeout=0.3).run()
    assert 0.25 < time.monotonic() - t0 < 5


def test_abort_ends_a_waiting_call(silent: socket.socket) -> None:
    c = call(silent.getsockname()[1], RANGE, range_request("/x"), timeout=60)
    threading.Timer(0.2, c.abort).start()
    t0 = time.monotonic()
    with pytest.raises(GrpcError):
        c.run()
    assert time.monotonic() - t0 < 10


def test_an_etcd_killed_mid_call_fails_at_once() -> None:
    """Frozen, etcd accepts (its kernel does) and says nothing; killed, its
    connections break: the call fails then, long before its timeout."""
    with EtcdServer() as server:
        server.freeze()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                call(server.client_port, RANGE, range_request("/x"), timeout=60).run()
            except BaseException as e:  # noqa: BLE001 - the test looks at it
                errors.append(e)

        t = threading.Thread(target=run)
        t0 = time.monotonic()
        t.start()
        time.sleep(0.3)
        server.kill()
        t.join(15)
        assert not t.is_alive(), "the call outlived the etcd it called"
        assert len(errors) == 1 and isinstance(errors[0], GrpcError), errors
        assert "within" not in str(errors[0]) and time.monotonic() - t0 < 15


class Scripted:
    """One connection of HTTP/2: reads the client's whole request, writes
    ``script``, half-closes, then gathers what else the client sends."""

    def __init__(self, script: bytes, preface: bool = True) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        # The server's preface: an empty SETTINGS frame.
        self.script = frame(SETTINGS, 0, 0) + script if preface else script
        self.rest: Optional[bytes] = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(10)
            f = conn.makefile("rb")
            assert f.read(len(PREFACE)) == PREFACE
            while True:  # until the request's DATA ends its stream
                head = f.read(9)
                f.read(int.from_bytes(head[:3], "big"))
                if head[3] == DATA and head[4] & END_STREAM:
                    break
            conn.sendall(self.script)
            conn.shutdown(socket.SHUT_WR)
            self.rest = f.read()

    def sent(self) -> bytes:
        self.thread.join(10)
        self.sock.close()
        assert self.rest is not None
        return self.rest


MSG = b"\0\0\0\0\x03abc"
HEAD = frame(HEADERS, END_HEADERS, 1, b"\x88")
PING_DATA = b"12345678"

SCRIPTS = [
    ("settings, ping, window update, padding, trailers in two frames", MSG,
     frame(SETTINGS, 0, 0, b"\0\x03\0\0\0\x64") + frame(PING, 0, 0, PING_DATA)
     + frame(WINDOW_UPDATE, 0, 0, b"\0\0\1\0") + frame(2, 0, 1, bytes(5)) + frame(0xFA, 0, 0, b"unknown")
     + HEAD + frame(DATA, 0, 1, MSG[:3]) + frame(DATA, PADDED, 1, b"\x04" + MSG[3:] + bytes(4))
     + frame(HEADERS, END_STREAM, 1, b"\x40") + frame(CONTINUATION, END_HEADERS, 1, b"\x40")),
    ("data ending the stream", MSG, HEAD + frame(DATA, END_STREAM, 1, MSG)),
    ("a graceful go away that covers the stream", MSG,
     frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)) + HEAD + frame(DATA, END_STREAM, 1, MSG)),
    ("trailers only", "no message", frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x88")),
    ("reset", r"reset the call \(CANCEL\)", HEAD + frame(RST_STREAM, 0, 1, struct.pack(">I", 8))),
    ("go away", r"went away \(ENHANCE_YOUR_CALM\): slow down", frame(GOAWAY, 0, 0, struct.pack(">II", 0, 11) + b"slow down")),
    ("push", "PUSH_PROMISE", frame(PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\x02\x88")),
    ("another stream", "stream 3", frame(DATA, 0, 3, MSG)),
    ("bad padding", "padding", HEAD + frame(DATA, PADDED, 1, b"\x09\x01\x02")),
    ("too big a frame", "FRAME_SIZE_ERROR", b"\0\x40\x01\0\0\0\0\0\x01"),
    ("interrupted header block", "interrupted", frame(HEADERS, 0, 1, b"\x88") + frame(DATA, 0, 1, MSG)),
    ("closed early", "closed the connection", HEAD + frame(DATA, 0, 1, MSG)),
    ("HTTP/1.1", "does not speak HTTP/2", b"HTTP/1.1 400 Bad Request\r\n\r\n"),
    ("no SETTINGS first", "does not speak HTTP/2", HEAD),
    ("too big an answer", "exceeds 8 bytes", HEAD + frame(DATA, 0, 1, MSG) + frame(DATA, END_STREAM, 1, b"d")),
]


@pytest.mark.parametrize("name,want,script", SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_frame_rules(name: str, want: bytes | str, script: bytes) -> None:
    server = Scripted(script, preface=name not in ("HTTP/1.1", "no SETTINGS first"))
    c = call(server.port, RANGE, MSG, max_size=8)
    if isinstance(want, bytes):
        assert c.run() == want
        rest = server.sent()
        if PING_DATA in script:
            assert frame(PING, ACK, 0, PING_DATA) in rest
        if frame(SETTINGS, 0, 0, b"\0\x03\0\0\0\x64") in script:
            assert rest.startswith(frame(SETTINGS, ACK, 0))
    else:
        with pytest.raises(GrpcError, match=want):
            c.run()
        server.sent()


def test_the_core_call_without_a_socket() -> None:
    """``waypost._waypost.GrpcCall``: what to send, an answer in pieces,
    the acknowledgement queued, a closed connection, typed bad arguments."""
    from waypost import InvalidArgumentError
    from waypost._waypost import GrpcCall

    c = GrpcCall("http", "127.0.0.1:2379", RANGE, MSG)
    out = c.take_output()
    assert out.startswith(PREFACE) and out.endswith(MSG) and c.take_output() == b""
    answer = frame(SETTINGS, 0, 0) + HEAD + frame(DATA, END_STREAM, 1, MSG)
    assert c.receive(answer[:5]) == "waiting" and c.answer == b""
    assert c.receive(answer[5:12]) == "waiting" and c.take_output() == frame(SETTINGS, ACK, 0)
    assert c.receive(answer[12:]) == "answered" == c.state
    assert c.answer == MSG and c.failure == "" and c.take_output() == frame(GOAWAY, 0, 0, bytes(8))

    c = GrpcCall("https", "h:1", "/p", b"", max_answer=8)
    assert c.receive(b"") == "failed" and "closed the connection" in c.failure
    for args in [("ftp", "h:1", "/p", b""), ("http", "", "/p", b""), ("http", "h:1", "/p", bytes(65_536))]:
        with pytest.raises(InvalidArgumentError):
            GrpcCall(*args)
    with pytest.raises(TypeError):
        GrpcCall("http", "h:1", "/p", "text")  # type: ignore[arg-type]
