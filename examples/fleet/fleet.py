"""The processes and the load the fleet demo runs (see demo.py).

- ``Processes``: every child in its own process group, so one can be
  SIGKILLed and all of them stopped on exit, Ctrl-C or failure.
- ``Load``: a steady load of requests through the gateway, each result kept.
"""
from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

# Ports below the ephemeral range (tests/fakes/ports.py, which the etcd
# test harness uses too): the demo picks every port before it starts the
# processes, and a gateway once failed to bind one an outgoing connection took.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "fakes"))
from ports import ephemeral_low as ephemeral_low, free_port as free_port  # noqa: E402

SERVICES = {"python": "hello-python", "node": "hello-node", "go": "hello-go"}
RATE = 50  # requests per second through the gateway, all services together

def ms() -> int:
    return time.time_ns() // 1_000_000


def get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return json.loads(reply.read())


class Processes:
    """Every child in its own process group; stopped group by group, then by PID."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.all_pids: list[int] = []

    def start(self, name: str, argv: list[str], cwd: Path, env: Optional[dict[str, str]] = None) -> None:
        log = open(self.logs / f"{name}.log", "ab")
        child = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env={**os.environ, **(env or {})})
        log.close()
        self.children[name] = child
        self.all_pids.append(child.pid)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        child = self.children.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        child.wait(5)

    def stop_all(self) -> None:
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for child in self.children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait(5)
        self.children.clear()


class Load:
    """A steady load through the gateway, round robin over the services."""

    def __init__(self, gateway: str, rate: int = RATE) -> None:
        self.gateway = gateway
        self.rate = rate
        self.results: list[tuple[int, str, int, str]] = []  # (ms, service, status, upstream)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(2)]

    def _run(self, worker: int) -> None:
        services = list(SERVICES.values())
        period = len(self._threads) / self.rate
        n = worker
        next_at = time.monotonic()
        while not self._stop.is_set():
            service = services[n % len(services)]
            n += len(self._threads)
            status, upstream = 0, ""
            try:
                with urllib.request.urlopen(f"{self.gateway}/{service}/hello", timeout=3) as reply:
                    status, upstream = reply.status, reply.headers.get("X-Upstream", "")
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError:
                status = 0
            self.results.append((ms(), service, status, upstream))
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def since(self, t: int, until: Optional[int] = None) -> list[tuple[int, str, int, str]]:
        return [r for r in self.results if r[0] >= t and (until is None or r[0] < until)]

    @staticmethod
    def counts(rows: list[tuple[int, str, int, str]]) -> collections.Counter[str]:
        return collections.Counter(r[3] for r in rows if r[2] == 200)

    @staticmethod
    def errors(rows: list[tuple[int, str, int, str]]) -> int:
        return sum(1 for r in rows if r[2] != 200)
