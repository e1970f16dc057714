"""One member of the cross-language fleet test (driven by bindings-c/go/etcd/fleet_test.go):
registers its instance with waypost.etcd.Registrar, mirrors etcd into a
registry and answers JSON-line commands on stdin."""
from __future__ import annotations

import json
import sys
from typing import Any

import waypost
from waypost.etcd import Mirror, Registrar


def main() -> None:
    endpoints, prefix, instance = sys.argv[1].split(","), sys.argv[2], json.loads(sys.argv[3])
    reg = waypost.Registry(seed=7)
    registrar: Registrar | None = Registrar(endpoints, instance, prefix=prefix, ttl_s=2).start()
    with Mirror(endpoints, reg, prefix=prefix) as mirror:
        mirror.wait_synced(10)
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)
            out: dict[str, Any] = {}
            with mirror.lock:
                if cmd["op"] == "ids":
                    try:
                        found = reg.discover("api", all=True)
                        out = {"ids": [i.id for i in found], "health": [h.value for h in found.health]}
                    except waypost.UnknownServiceError:
                        out = {"ids": [], "health": []}
                elif cmd["op"] == "picks":
                    out = {
                        "hash": [reg.pick("api", "consistent_hash", key=f"k{i}").id for i in range(20)],
                        "random": [reg.pick("api", "random").id for _ in range(10)],
                        "weighted": [reg.pick("api", "weighted_random").id for _ in range(10)],
                        "rr": [reg.pick("api", "round_robin").id for _ in range(6)],
                    }
                elif cmd["op"] == "stop_registrar" and registrar is not None:
                    registrar.close()
                    registrar = None
            print(json.dumps(out), flush=True)
            if cmd["op"] == "exit":
                break
    if registrar is not None:
        registrar.close()


if __name__ == "__main__":
    main()
