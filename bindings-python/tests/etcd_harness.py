"""A real etcd for the tests: started on 127.0.0.1 with free ports and a
temporary data directory, stopped by PID whatever happens.

``EtcdServer`` is one member (start, stop, SIGKILL, restart on the same data
directory and ports); ``EtcdCluster`` is three members on loopback. Both are
context managers, and every process started is also killed at interpreter
exit, so a failed or interrupted test leaves nothing behind. The small
``EtcdClient`` here talks to the JSON gateway with urllib only; the tests use
it to check what the helpers under test did, independently of them.
"""
from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import signal
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "fakes"))
# Ports below the ephemeral range, chosen the same way as the fleet demo's.
from ports import ephemeral_low as ephemeral_low, free_port as free_port  # noqa: E402

ETCD = os.environ.get("WAYPOST_ETCD", "/usr/bin/etcd")

_live: dict[int, subprocess.Popen[bytes]] = {}


def _kill_all() -> None:
    for proc in list(_live.values()):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _live.clear()


atexit.register(_kill_all)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def prefix_end(prefix: str) -> str:
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


class Certs:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed,
    made with the openssl CLI in ``folder``: ``ca`` (PEM), ``cert``, ``key``."""

    def __init__(self, folder: str) -> None:
        self.ca, self.cert, self.key = (os.path.join(folder, n) for n in ("ca.pem", "server.pem", "server.key"))
        ca_key, csr, ext = (os.path.join(folder, n) for n in ("ca.key", "server.csr", "ext.cnf"))
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for argv in (
            ["req", "-x509", *ec, "-keyout", ca_key, "-out", self.ca, "-days", "1", "-subj", "/CN=waypost-test-ca"],
            ["req", *ec, "-keyout", self.key, "-out", csr, "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key, "-CAcreateserial", "-out", self.cert,
             "-days", "1", "-extfile", ext],
        ):
            subprocess.run(["openssl", *argv], check=True, capture_output=True)

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)


class EtcdClient:
    """Just enough of the v3 JSON gateway to check and poke the store."""

    def __init__(self, endpoint: str, context: Optional[ssl.SSLContext] = None) -> None:
        self.endpoint = endpoint
        self.context = context

    def call(self, path: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        req = urllib.request.Request(
            self.endpoint + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout, context=self.context) as resp:
            out: dict[str, Any] = json.loads(resp.read())
            return out

    def put(self, key: str, value: str, lease: Optional[str] = None) -> int:
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease is not None:
            body["lease"] = lease
        return int(self.call("/v3/kv/put", body)["header"]["revision"])

    def delete(self, key: str) -> int:
        return int(self.call("/v3/kv/deleterange", {"key": b64(key)})["header"]["revision"])

    def get_prefix(self, prefix: str) -> dict[str, str]:
        out = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": prefix_end(prefix)})
        return {unb64(kv["key"]): unb64(kv.get("value", "")) for kv in out.get("kvs", [])}

    def revision(self) -> int:
        return int(self.call("/v3/kv/range", {"key": b64("\0")})["header"]["revision"])

    def compact(self, revision: int) -> None:
        self.call("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    def grant(self, ttl: int) -> str:
        return str(self.call("/v3/lease/grant", {"TTL": ttl})["ID"])

    def status(self) -> dict[str, Any]:
        return self.call("/v3/maintenance/status", {}, timeout=2.0)


# A range read over gRPC, built and read by hand (no protobuf library).

def pb_bytes(field: int, data: bytes) -> bytes:
    """One length-delimited protobuf field (lengths below 2^14)."""
    n = len(data)
    size = bytes([n]) if n < 0x80 else bytes([0x80 | (n & 0x7F), n >> 7])
    return bytes([field << 3 | 2]) + size + data


def range_request(prefix: str) -> bytes:
    """A framed etcdserverpb.RangeRequest of every key under ``prefix``."""
    msg = pb_bytes(1, (prefix + "/").encode()) + pb_bytes(2, (prefix + "0").encode())
    return b"\0" + struct.pack(">I", len(msg)) + msg


def varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7


def pb_fields(data: bytes) -> dict[int, list[bytes]]:
    """Every length-delimited field's bytes by number (others skipped)."""
    out: dict[int, list[bytes]] = {}
    i = 0
    while i < len(data):
        tag, i = varint(data, i)
        wire = tag & 7
        if wire == 0:
            _, i = varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = varint(data, i)
            assert i + n <= len(data), "truncated field"
            out.setdefault(tag >> 3, []).append(data[i:i + n])
            i += n
        else:
            raise AssertionError(f"wire type {wire}")
    assert i == len(data), "truncated message"
    return out


def range_keys(answer: bytes) -> list[str]:
    """Checks the gRPC framing of a RangeResponse; its keys."""
    assert answer[0] == 0 and struct.unpack(">I", answer[1:5])[0] == len(answer) - 5, answer[:16]
    return [pb_fields(kv)[1][0].decode() for kv in pb_fields(answer[5:]).get(2, [])]  # kvs, key


def put_all(client: EtcdClient, items: list[tuple[str, str]]) -> None:
    """Writes (key, value) pairs in transactions of 128 puts (etcd's
    default --max-txn-ops)."""
    for i in range(0, len(items), 128):
        ops = [{"request_put": {"key": b64(k), "value": b64(v)}} for k, v in items[i:i + 128]]
        client.call("/v3/kv/txn", {"success": ops})


def put_many(client: EtcdClient, prefix: str, n: int, size: int) -> list[str]:
    """``n`` keys ``<prefix>/k<i>``, each value ``size`` bytes."""
    keys = [f"{prefix}/k{i:05d}" for i in range(n)]
    put_all(client, [(k, "v" * size) for k in keys])
    return keys


class EtcdServer:
    """One etcd member on loopback ports chosen when it is created.

    A single member keeps etcd's default timing (so its minimum lease TTL
    is the usual ~2 s); cluster members elect faster (heartbeat 50 ms,
    election 500 ms) so a killed leader is replaced within a second."""

    def __init__(
        self,
        name: str = "n0",
        *,
        workdir: Optional[str] = None,
        initial_cluster: Optional[str] = None,
        client_port: Optional[int] = None,
        peer_port: Optional[int] = None,
        fast_election: bool = False,
        tls: Optional[Certs] = None,
    ) -> None:
        self.name = name
        self.tls = tls
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="waypost-etcd-")
        self.data_dir = os.path.join(self.workdir, name + ".etcd")
        self.log_path = os.path.join(self.workdir, name + ".log")
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.initial_cluster = initial_cluster or f"{name}={self.peer_url}"
        self.fast_election = fast_election
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def client(self) -> EtcdClient:
        return EtcdClient(self.endpoint, self.tls.context() if self.tls else None)

    def launch(self) -> None:
        """Starts the process without waiting for it to be ready."""
        if not os.path.exists(ETCD):
            raise RuntimeError(f"{ETCD} not found: install Debian's etcd-server (make test does)")
        args = [
            ETCD, "--name", self.name, "--data-dir", self.data_dir,
            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new",
            "--initial-cluster-token", "waypost-test",
            *(["--heartbeat-interval", "50", "--election-timeout", "500"] if self.fast_election else []),
            *(["--cert-file", self.tls.cert, "--key-file", self.tls.key] if self.tls else []),
            "--logger", "zap", "--log-outputs", "stderr",
        ]
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            log.close()
        _live[self.proc.pid] = self.proc

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Waits until /health says true (a leader exists)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"etcd {self.name} exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                context = self.tls.context() if self.tls else None
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1, context=context) as resp:
                    if json.loads(resp.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"etcd {self.name} not ready after {timeout}s: {self.log_tail()}")

    def start(self) -> "EtcdServer":
        self.launch()
        self.wait_ready()
        return self

    def log_tail(self, n: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def _end(self, sig: int) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _live.pop(proc.pid, None)

    def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL after 10 s."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        self._end(signal.SIGKILL)

    def freeze(self, timeout: float = 5.0) -> None:
        """SIGSTOP, then waits until every thread of etcd has stopped. The
        kernel stops a process's threads one by one as each is scheduled, so
        on a busy machine a thread can still answer a request after the
        signal was sent: a test that needs a silent etcd waits for it."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGSTOP)
        tasks = f"/proc/{self.proc.pid}/task"
        deadline = time.monotonic() + timeout
        while True:
            states = []
            try:
                tids = os.listdir(tasks)
            except OSError:  # no /proc to ask: give the threads a second
                time.sleep(1)
                return
            for tid in tids:
                try:
                    with open(f"{tasks}/{tid}/stat") as f:
                        states.append(f.read().rsplit(")", 1)[1].split()[0])
                except OSError:  # a thread that ended meanwhile
                    pass
            if states and all(s in ("T", "t") for s in states):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"etcd's threads not all stopped after {timeout} s: {states}")
            time.sleep(0.01)

    def restart(self) -> None:
        """Starts again on the same data directory and ports."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "EtcdServer":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EtcdCluster:
    """Three members on loopback, one temporary directory."""

    def __init__(self, size: int = 3) -> None:
        self.workdir = tempfile.mkdtemp(prefix="waypost-etcd-cluster-")
        names = [f"m{i}" for i in range(size)]
        peers = {name: free_port() for name in names}
        initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in peers.items())
        self.members = [
            EtcdServer(n, workdir=self.workdir, initial_cluster=initial, peer_port=peers[n], fast_election=True)
            for n in names
        ]

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self) -> "EtcdCluster":
        for m in self.members:
            m.launch()
        for m in self.members:
            m.wait_ready(timeout=30)
        return self

    def leader(self) -> EtcdServer:
        """The member that is leader now (asked of any live member)."""
        for m in self.members:
            if not m.running:
                continue
            try:
                st = m.client.status()
            except OSError:
                continue
            for c in self.members:
                if c.running and c.client.status()["header"]["member_id"] == st.get("leader"):
                    return c
            break
        raise RuntimeError("no leader")

    def wait_leader(self, timeout: float = 15.0) -> EtcdServer:
        """Waits until the live members agree on a live leader."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.leader()
            except (RuntimeError, OSError, KeyError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        for m in self.members:
            m.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "EtcdCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
