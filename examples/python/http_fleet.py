"""A client that spreads requests over local HTTP servers with waypost.

Three `http.server` instances on 127.0.0.1 register themselves (Registrar:
register, heartbeat every ttl/3, deregister on exit). The client picks an
instance per request, brackets each call with `waypost.track` (in-flight
count and call outcome), and a Ticker runs `/health` checks when the core
says they are due. Stopping one server shows it being ejected (failed calls)
and marked unhealthy (failed checks), and traffic moving to the others.

Run: python examples/python/http_fleet.py   (takes well under a second)
"""
from __future__ import annotations

import collections
import http.server
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from typing import Optional

import waypost


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        name = getattr(self.server, "name", "?")
        body = (b"ok" if self.path == "/health" else f"hello from {name}".encode())
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep the output readable
        pass


def start_server(name: str) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    setattr(server, "name", name)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def get(instance: waypost.Instance, path: str) -> str:
    url = f"http://{instance.address}:{instance.port}{path}"
    with urllib.request.urlopen(url, timeout=0.5) as response:
        return str(response.read().decode())


def health_check(view: waypost.InstanceView) -> bool:
    try:
        return get(view.instance, "/health") == "ok"
    except OSError:
        return False


def call(reg: waypost.Registry, attempts: int = 3) -> Optional[str]:
    """One request, retried on another instance when a call fails."""
    for _ in range(attempts):
        instance = reg.pick("web", waypost.Strategy.LEAST_REQUEST)
        try:
            with waypost.track(reg, instance.id):
                return get(instance, "/work")
        except OSError:
            continue  # the failure was reported; pick again
    return None


def main() -> None:
    reg = waypost.Registry(
        ttl_ms=900,
        consecutive_failures=2,
        base_ejection_ms=5_000,
        max_ejection_percent=50,
    )
    events: list[str] = []
    servers = {f"web-{i}": start_server(f"web-{i}") for i in range(3)}
    with ExitStack() as stack:
        for name, server in servers.items():
            port = server.server_address[1]
            stack.enter_context(
                waypost.Registrar(reg, name, "web", "127.0.0.1", port, check_interval_ms=100)
            )
        stack.enter_context(
            waypost.Ticker(
                reg,
                check=health_check,
                on_event=lambda e: events.append(f"{e.type} {e.id or ''} {e.to or ''}".strip()),
                max_wait_ms=50,
            )
        )

        before = collections.Counter(call(reg) for _ in range(60))
        print("before:", dict(sorted(before.items(), key=str)))

        victim = servers["web-1"]
        victim.shutdown()
        victim.server_close()
        print("stopped web-1")

        after = collections.Counter(call(reg) for _ in range(60))
        print("after: ", dict(sorted(after.items(), key=str)))

        deadline = time.monotonic() + 3
        while reg.get("web-1").health is waypost.Health.HEALTHY and time.monotonic() < deadline:
            time.sleep(0.02)
        state = reg.get("web-1")
        listed = reg.discover("web").ids
        print(f"web-1 is {state.health}; discover lists {list(listed)}")
        assert listed == ("web-0", "web-2")

    for line in events:
        print("event:", line)

    assert set(before) == {"hello from web-0", "hello from web-1", "hello from web-2"}
    assert "hello from web-1" not in after and None not in after, after
    assert state.health is not waypost.Health.HEALTHY
    assert len(reg) == 0  # every registrar deregistered its server on exit
    for server in servers.values():
        server.server_close()


if __name__ == "__main__":
    main()
