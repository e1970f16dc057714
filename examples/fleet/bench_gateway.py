"""What waypost adds to each request a gateway forwards.

    target/py-venv/bin/python examples/fleet/bench_gateway.py     (make demo-bench)

An upstream http.server on 127.0.0.1; the same urllib call made 1) to that
fixed upstream and 2) through the gateway's `forward` (pick by smooth
weighted round robin, begin/end, report the outcome, under the mirror's
lock), alternating in rounds so both see the same machine. Then the waypost
calls alone, without the network. No etcd: the instances are registered
directly in the gateway's registry.
"""
from __future__ import annotations

import http.server
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway import STRATEGY, Gateway  # noqa: E402


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *a: object) -> None:
        pass


def main() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    gateway = Gateway(["http://127.0.0.1:9"])  # the mirror is never started
    for i, weight in enumerate([1, 3, 2]):
        gateway.registry.register(f"up-{i}", "up", "127.0.0.1", port, weight=weight)

    fixed_url = f"http://127.0.0.1:{port}/hello"
    fixed, routed = [], []
    for _ in range(10):          # rounds, alternating
        for _ in range(100):
            t = time.perf_counter_ns()
            with urllib.request.urlopen(fixed_url, timeout=2) as r:
                r.read()
            fixed.append(time.perf_counter_ns() - t)
        for _ in range(100):
            t = time.perf_counter_ns()
            code, _, _ = gateway.forward("up", "/hello")
            routed.append(time.perf_counter_ns() - t)
            assert code == 200
    f, r = statistics.median(fixed) / 1000, statistics.median(routed) / 1000
    print(f"fixed upstream      median {f:8.1f} µs per request ({len(fixed)} requests)")
    print(f"through waypost     median {r:8.1f} µs per request ({len(routed)} requests)")
    print(f"overhead            median {r - f:8.1f} µs per request")

    n = 100_000
    reg, lock = gateway.registry, gateway.mirror.lock
    t = time.perf_counter_ns()
    for _ in range(n):
        with lock:
            inst = reg.pick("up", STRATEGY)
            reg.begin(inst.id)
        with lock:
            reg.end(inst.id)
            reg.report_outcome(inst.id, True)
    per = (time.perf_counter_ns() - t) / n / 1000
    print(f"waypost calls alone (pick + begin + end + outcome, two lock rounds): {per:.2f} µs per request")
    server.shutdown()


if __name__ == "__main__":
    main()
