"""A small Kubernetes API server for the tests, on a free loopback port
(plain HTTP, a bearer token checked): EndpointSlice list and watch as the
API documents them — a JSON list with metadata.resourceVersion, then a
stream of JSON lines (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR), HTTP 410 for
a version too old."""
from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional


def slice_(name: str, rv: int, endpoints: list[tuple[str, bool]], port: int = 8080) -> dict[str, Any]:
    return {
        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": str(rv),
                     "labels": {"kubernetes.io/service-name": "api"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [addr], "conditions": {"ready": ready}, "zone": "z1",
                       "targetRef": {"kind": "Pod", "name": f"pod-{addr}"}} for addr, ready in endpoints],
        "ports": [{"name": "http", "protocol": "TCP", "port": port}],
    }


class FakeKubernetes:
    def __init__(self, token: str = "secret") -> None:
        self.token = token
        self.rv = 100
        self.oldest = 100  # versions below this are expired (410)
        self.slices: dict[str, dict[str, Any]] = {}
        self.events: list[Optional[dict[str, Any]]] = []  # None ends every open watch
        self.lists = 0
        self.watches = 0
        self.cond = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def send_json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self.send_json(401, {"kind": "Status", "code": 401})
                url = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(url.query)
                if q.get("labelSelector") != ["kubernetes.io/service-name=api"]:
                    return self.send_json(400, {"kind": "Status", "code": 400})
                with fake.cond:
                    if "watch" not in q:
                        fake.lists += 1
                        return self.send_json(200, {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                                                    "metadata": {"resourceVersion": str(fake.rv)},
                                                    "items": list(fake.slices.values())})
                    fake.watches += 1
                    since = int(q["resourceVersion"][0])
                    if since < fake.oldest:
                        return self.send_json(410, {"kind": "Status", "code": 410, "reason": "Expired"})
                    cursor = len(fake.events)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                while True:
                    with fake.cond:
                        while cursor >= len(fake.events):
                            fake.cond.wait(0.1)
                        event = fake.events[cursor]
                        cursor += 1
                    if event is None:
                        return
                    try:
                        self.wfile.write(json.dumps(event).encode() + b"\n")
                        self.wfile.flush()
                    except OSError:
                        return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, kind: str, s: dict[str, Any]) -> None:
        with self.cond:
            self.rv += 1
            s["metadata"]["resourceVersion"] = str(self.rv)
            if kind == "DELETED":
                self.slices.pop(s["metadata"]["name"], None)
            else:
                self.slices[s["metadata"]["name"]] = s
            self.events.append({"type": kind, "object": s})
            self.cond.notify_all()

    def emit(self, event: Optional[dict[str, Any]]) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def __enter__(self) -> "FakeKubernetes":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.emit(None)
        self.server.shutdown()
        self.server.server_close()
