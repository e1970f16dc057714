"""A gateway that mirrors etcd into a waypost Registry and forwards requests.

    python examples/fleet/gateway.py --port 8080 --etcd http://127.0.0.1:2379
    curl http://127.0.0.1:8080/hello-python/hello

`GET /<service>/<path>` goes to an instance of <service> picked by smooth
weighted round robin; the gateway brackets the call with begin/end (in-flight
counts) and reports its outcome, so an instance that keeps failing is ejected
by outlier detection and comes back on probation. A failed call is retried on
another instance, so clients see no error while one remains.
`GET /_state` shows the mirror: instances, health, requests served, and
the instant each change reached this mirror.
"""
from __future__ import annotations

import argparse
import collections
import http.server
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import waypost

from waypost.etcd import Mirror

MIRROR = "waypost.etcd.Mirror"

STRATEGY = waypost.Strategy.WEIGHTED_ROUND_ROBIN
ATTEMPTS = 3


class Gateway:
    def __init__(self, endpoints: list[str]) -> None:
        self.registry = waypost.Registry(
            seed=7,                     # mirrored instances have no lease here: etcd's decides
            consecutive_failures=3,     # three failed calls in a row eject an instance...
            base_ejection_ms=3_000,     # ...for 3 s, then it is back on probation
            max_ejection_ms=10_000,
            max_ejection_percent=50,
        )
        self.mirror = Mirror(endpoints, self.registry)
        self.served: collections.Counter[str] = collections.Counter()
        self.failed: collections.Counter[str] = collections.Counter()
        self.client_errors = 0
        self.changes: list[dict[str, Any]] = []   # what this mirror saw, with wall-clock ms
        self._seen: dict[str, str] = {}

    def forward(self, service: str, path: str) -> tuple[int, bytes, str]:
        tried: set[str] = set()
        for _ in range(ATTEMPTS):
            with self.mirror.lock:
                try:
                    instance = self.registry.pick(service, STRATEGY)
                except waypost.Error as e:
                    return 503, json.dumps({"error": e.code, "message": str(e)}).encode(), ""
                if instance.id in tried:
                    # Smooth WRR can pick the weight-3 instance three times
                    # running: a retry goes to one not tried yet, in the
                    # order discover() lists the healthy ones.
                    instance = next((i for i in self.registry.discover(service) if i.id not in tried), instance)
                self.registry.begin(instance.id)
            tried.add(instance.id)
            ok, body = False, b""
            try:
                url = f"http://{instance.address}:{instance.port}{path}"
                with urllib.request.urlopen(url, timeout=1.0) as reply:
                    body, ok = reply.read(), True
            except (OSError, urllib.error.HTTPError):
                ok = False
            with self.mirror.lock:
                try:
                    self.registry.end(instance.id)
                    self.registry.report_outcome(instance.id, ok)
                except waypost.NotFoundError:
                    pass  # it left the mirror while the call ran
            (self.served if ok else self.failed)[instance.id] += 1
            if ok:
                return 200, body, instance.id
        self.client_errors += 1
        return 502, json.dumps({"error": "upstream_failed", "tried": sorted(tried)}).encode(), ""

    def watch(self, stop: threading.Event) -> None:
        """Advances time (ejections end) and notes every change this mirror sees."""
        while not stop.wait(0.02):
            with self.mirror.lock:
                self.registry.tick()
                now = {}
                for service in self.registry.services():
                    for inst in self.registry.discover(service, all=True):
                        now[inst.id] = str(self.registry.get(inst.id).health)
            t = time.time_ns() // 1_000_000
            for id in sorted(set(now) | set(self._seen)):
                before, after = self._seen.get(id), now.get(id)
                if before != after:
                    self.changes.append({"t": t, "id": id, "from": before, "to": after})
            self._seen = now

    def health(self) -> dict[str, str]:
        """id → health of every instance in this mirror, as last noted."""
        return dict(self._seen)

    def state(self) -> dict[str, Any]:
        revision = self.mirror.revision  # it takes the mirror's lock itself
        with self.mirror.lock:
            instances = []
            for service in self.registry.services():
                for inst in self.registry.discover(service, all=True):
                    view = self.registry.get(inst.id).to_dict()
                    view.update(served=self.served[inst.id], failed=self.failed[inst.id])
                    instances.append(view)
            return {"mirror": MIRROR, "revision": revision,
                    "mirror_error": str(self.mirror.error) if self.mirror.error else None,
                    "mirror_status": self.mirror.status,
                    "instances": instances, "served": dict(self.served), "failed": dict(self.failed),
                    "client_errors": self.client_errors, "changes": self.changes}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    p.add_argument("--etcd", default=os.environ.get("ETCD", "http://127.0.0.1:2379"))
    args = p.parse_args()
    gateway = Gateway(args.etcd.split(","))
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/_state":
                code, body, upstream = 200, json.dumps(gateway.state()).encode(), ""
            else:
                service, _, rest = self.path.lstrip("/").partition("/")
                code, body, upstream = gateway.forward(service, "/" + rest)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if upstream:
                self.send_header("X-Upstream", upstream)
            self.send_header("Access-Control-Allow-Origin", "*")  # the dashboard reads /_state
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    with gateway.mirror:
        gateway.mirror.wait_synced(10)
        threading.Thread(target=gateway.watch, args=(stop,), daemon=True).start()
        print(f"gateway on 127.0.0.1:{args.port}, {MIRROR}, revision {gateway.mirror.revision}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        stop.set()
    server.server_close()


if __name__ == "__main__":
    main()
