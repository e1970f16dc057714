"""A minimal etcd mirror over etcd's JSON gateway.

The gateway uses ``waypost.etcd.Mirror`` when the installed package has
it; this is the fallback with the same shape (``start``, ``close``,
``wait_synced``, ``lock``, ``revision``, ``error``), so the fleet runs on
builds that predate it. Standard library only.
"""
from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from typing import Any, Callable, Iterator, Optional

import waypost

PREFIX = "/waypost/services"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def prefix_end(prefix: str) -> str:
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


class Client:
    """POSTs JSON to the first endpoint that answers."""

    def __init__(self, endpoints: list[str]) -> None:
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.current = 0

    def _open(self, path: str, body: dict[str, Any], timeout: float) -> Any:
        last: Optional[Exception] = None
        for i in range(len(self.endpoints)):
            endpoint = self.endpoints[(self.current + i) % len(self.endpoints)]
            request = urllib.request.Request(
                endpoint + path, data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"}, method="POST")
            try:
                response = urllib.request.urlopen(request, timeout=timeout)
                self.current = (self.current + i) % len(self.endpoints)
                return response
            except OSError as e:  # refused, timeout: try the next endpoint
                last = e
        raise ConnectionError(f"no etcd endpoint answered {path}: {last}")

    def post(self, path: str, body: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
        with self._open(path, body, timeout) as response:
            return dict(json.loads(response.read()))

    def stream(self, path: str, body: dict[str, Any], timeout: float) -> Iterator[dict[str, Any]]:
        """One JSON object per line of a streamed gateway response."""
        with self._open(path, body, timeout) as response:
            for line in response:
                if line.strip():
                    yield dict(json.loads(line))


class Mirror:
    """Keeps ``registry`` equal to the instances under ``prefix``: range, then watch."""

    def __init__(self, endpoints: list[str], registry: waypost.Registry, *, prefix: str = PREFIX,
                 source: str = "etcd", now: Optional[Callable[[], int]] = None) -> None:
        self.client = Client(endpoints)
        self.registry = registry
        self.prefix = prefix
        self.source = source
        self.now = now or waypost.wall_clock_ms
        self.lock = threading.Lock()
        self.revision = 0
        self.error: Optional[Exception] = None
        self._owned: set[str] = set()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _apply_put(self, value: str) -> None:
        entry = json.loads(value)
        status = entry.pop("status", "passing")
        entry.pop("source", None)
        self.registry.register_spec(entry, now=self.now())
        self.registry.drain(entry["id"], status == "maintenance", now=self.now())
        self._owned.add(entry["id"])

    def _apply_delete(self, key: str) -> None:
        id = key.rsplit("/", 1)[-1]
        if id in self._owned:
            self._owned.discard(id)
            try:
                self.registry.deregister(id, now=self.now())
            except waypost.NotFoundError:
                pass

    def _resync(self) -> None:
        answer = self.client.post("/v3/kv/range", {"key": b64(self.prefix + "/"),
                                                   "range_end": prefix_end(self.prefix + "/")})
        with self.lock:
            seen = set()
            for kv in answer.get("kvs", []):
                self._apply_put(unb64(kv["value"]))
                seen.add(unb64(kv["key"]).rsplit("/", 1)[-1])
            for id in self._owned - seen:
                self._apply_delete(id)
            self.revision = int(answer["header"]["revision"])
        self._synced.set()

    def _watch(self) -> None:
        request = {"create_request": {"key": b64(self.prefix + "/"), "range_end": prefix_end(self.prefix + "/"),
                                      "start_revision": str(self.revision + 1)}}
        for message in self.client.stream("/v3/watch", request, timeout=3600):
            result = message.get("result", {})
            self.error = None  # connected again
            if result.get("canceled") or result.get("compact_revision"):
                self.revision = 0  # compacted: read everything again
                return
            events = result.get("events", [])
            if self._stop.is_set():
                return
            with self.lock:
                for event in events:
                    kv = event["kv"]
                    if event.get("type") == "DELETE":
                        self._apply_delete(unb64(kv["key"]))
                    else:
                        self._apply_put(unb64(kv["value"]))
                    self.revision = max(self.revision, int(kv["mod_revision"]))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.revision == 0 or not self._synced.is_set():
                    self._resync()
                self._watch()
                self.error = None
            except (OSError, ValueError, KeyError) as e:
                self.error = e  # keep serving what we have; retry soon
                self._stop.wait(0.3)

    def start(self) -> "Mirror":
        self._thread = threading.Thread(target=self._run, daemon=True, name="mirror")
        self._thread.start()
        return self

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def close(self) -> None:
        self._stop.set()  # the watch thread is a daemon; its stream ends with the process

    def __enter__(self) -> "Mirror":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
