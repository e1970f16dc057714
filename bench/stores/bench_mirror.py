"""put → mirror updated and a large mirror start for waypost.etcd.Mirror;
run by bench/stores/bench.mjs against its etcd. Prints one JSON object."""
from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
import urllib.request
from typing import Any

import waypost
from waypost.etcd import Mirror


def stats(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    return {"median": s[len(s) // 2], "p99": s[min(len(s) - 1, int(0.99 * len(s)))], "n": len(s)}


def put(endpoint: str, key: str, value: str) -> None:
    body = json.dumps({"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(value.encode()).decode()})
    req = urllib.request.Request(endpoint + "/v3/kv/put", data=body.encode(), method="POST")
    with urllib.request.urlopen(req) as resp:
        resp.read()


def main() -> None:
    endpoint, big, n_big = sys.argv[1], sys.argv[2], int(sys.argv[3])
    n, reps = int(os.environ.get("BENCH_LAT_N", "300")), int(os.environ.get("BENCH_REPS", "5"))
    prefix = "/bench/lat-py"
    seen = threading.Event()
    reg = waypost.Registry(seed=1)
    lat: list[float] = []
    with Mirror([endpoint], reg, prefix=prefix, on_change=lambda _r: seen.set()) as m:
        m.wait_synced(10)
        for i in range(n + 20):
            ident = f"api-{i % 50}"
            seen.clear()
            t0 = time.perf_counter()
            put(endpoint, f"{prefix}/api/{ident}", json.dumps({"id": ident, "service": "api", "address": "10.0.0.1", "port": 8080 + i}))
            seen.wait(10)
            if i >= 20:
                lat.append((time.perf_counter() - t0) * 1000)
    start: list[float] = []
    for _ in range(reps):
        t0 = time.perf_counter()
        reg2 = waypost.Registry(seed=1)
        m2 = Mirror([endpoint], reg2, prefix=big).start()
        while m2.feeds < 2:  # the range applied and the watch open
            time.sleep(0.0002)
        start.append((time.perf_counter() - t0) * 1000)
        assert len(reg2) == n_big, len(reg2)
        m2.close()
    out: dict[str, Any] = {"latency": stats(lat), "start": stats(start)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
