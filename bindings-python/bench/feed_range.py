"""The whole Python path of a 10 000-key etcd range: the payload in,
the registry updated (one `source_feed`), beside the core's own figure
(`cargo bench -p waypost-bench --bench sources -- etcd_range`), built the
same way: the same instances, keys and base64 values.

Run: python bindings-python/bench/feed_range.py
"""
import base64
import json
import statistics
import time

import waypost

N = 10_000


def kv(i: int) -> str:
    value = {
        "id": f"api-{i:07d}",
        "service": "api",
        "address": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
        "port": 8080,
        "weight": 1 + i % 7,
        "tags": ["v1"],
        "meta": {},
        "zone": "eu-1",
        "priority": 0,
    }
    key = f"/waypost/services/api/{value['id']}"
    return json.dumps(
        {
            "key": base64.b64encode(key.encode()).decode(),
            "create_revision": "2",
            "mod_revision": "5",
            "version": "1",
            "value": base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode(),
            "lease": "7587869812316352005",
        },
        separators=(",", ":"),
    )


def main() -> None:
    payload = (
        '{"header":{"cluster_id":"1","member_id":"2","revision":"10","raft_term":"2"},"kvs":['
        + ",".join(kv(i) for i in range(N))
        + f'],"count":"{N}"}}'
    )
    into_empty: list[float] = []
    unchanged: list[float] = []
    for _ in range(7):
        reg = waypost.Registry(seed=1)
        reg.source_add("etcd", {"kind": "etcd"})
        start = time.perf_counter()
        report = reg.source_feed("etcd", payload, now=0)
        into_empty.append(time.perf_counter() - start)
        assert report["added"] == N, report
        start = time.perf_counter()
        report = reg.source_feed("etcd", payload, now=1)
        unchanged.append(time.perf_counter() - start)
        assert report["unchanged"] == N, report
    print(f"payload {len(payload) / 1e6:.1f} MB, median of 7")
    print(f"python source_feed, 10 000 keys into an empty registry: {statistics.median(into_empty) * 1e3:.1f} ms")
    print(f"python source_feed, 10 000 keys, registry already in sync: {statistics.median(unchanged) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
