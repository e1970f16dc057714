"""A small Consul agent for the tests, on a free loopback port: the agent
registration, TTL check and deregistration endpoints, and the health
endpoint with blocking queries (``?index=&wait=``, ``X-Consul-Index``). A
TTL check not passed in time turns critical. Documented behaviour only
(api-docs/agent/service, agent/check, health, features/blocking)."""
from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeConsul:
    def __init__(self, max_wait_s: float = 0.5) -> None:
        self.max_wait_s = max_wait_s  # caps the client's wait, to keep tests short
        self.index = 10
        self.services: dict[str, dict[str, Any]] = {}
        self.queries = 0
        self.cond = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, body: Any = None, index: int | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if index is not None:
                    self.send_header("X-Consul-Index", str(index))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                path = urllib.parse.unquote(self.path)
                with fake.cond:
                    if path == "/v1/agent/service/register":
                        ttl = float(body["Check"]["TTL"].rstrip("s"))
                        fake.services[body["ID"]] = {**body, "_ttl": ttl, "_passed": time.monotonic(), "_status": "critical"}
                        fake.bump()
                        return self.reply(200)
                    if path.startswith("/v1/agent/check/pass/service:"):
                        svc = fake.services.get(path.split(":", 1)[1])
                        if svc is None:
                            return self.reply(404)
                        svc["_passed"] = time.monotonic()
                        if svc["_status"] != "passing":
                            svc["_status"] = "passing"
                            fake.bump()
                        return self.reply(200)
                    if path.startswith("/v1/agent/service/deregister/"):
                        if fake.services.pop(path.rsplit("/", 1)[1], None) is not None:
                            fake.bump()
                        return self.reply(200)
                self.reply(404)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if not url.path.startswith("/v1/health/service/"):
                    return self.reply(404)
                name = url.path.rsplit("/", 1)[1]
                query = urllib.parse.parse_qs(url.query)
                want = int(query.get("index", ["0"])[0])
                deadline = time.monotonic() + fake.max_wait_s
                with fake.cond:
                    fake.queries += 1
                    while want and fake.index <= want and time.monotonic() < deadline:
                        fake.expire()
                        fake.cond.wait(0.05)
                    fake.expire()
                    self.reply(200, fake.health(name), fake.index)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def bump(self) -> None:
        self.index += 1
        self.cond.notify_all()

    def expire(self) -> None:
        now = time.monotonic()
        for svc in self.services.values():
            if svc["_status"] == "passing" and now - svc["_passed"] > svc["_ttl"]:
                svc["_status"] = "critical"
                self.bump()

    def reset_index(self, value: int) -> None:
        """What a Consul server restart can do: the index goes backwards."""
        with self.cond:
            self.index = value
            self.cond.notify_all()

    def health(self, name: str) -> list[dict[str, Any]]:
        out = []
        for sid, s in sorted(self.services.items()):
            if s["Name"] != name:
                continue
            out.append({
                "Node": {"ID": "n1", "Node": "node-1", "Address": "10.9.0.1", "Datacenter": "dc1", "Meta": {}},
                "Service": {"ID": sid, "Service": name, "Tags": s.get("Tags") or [], "Address": s.get("Address", ""),
                            "Meta": s.get("Meta") or {}, "Port": s.get("Port", 0), "Weights": s.get("Weights")},
                "Checks": [
                    {"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing", "ServiceID": ""},
                    {"CheckID": f"service:{sid}", "Name": f"Service '{name}' check", "Status": s["_status"], "ServiceID": sid},
                ],
            })
        return out

    def __enter__(self) -> "FakeConsul":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
