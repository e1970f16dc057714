"""Picks from a fresh Python mirror of etcd with a given seed, as JSON.

    python tests/fleet/picks.py ETCD_URL SEED SERVICE STRATEGY N

The dashboard test compares these with the page's picks for the same seed.
"""
from __future__ import annotations

import json
import sys

import waypost
from waypost.etcd import Mirror


def main() -> None:
    etcd, seed, service, strategy, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    registry = waypost.Registry(seed=seed)
    with Mirror([etcd], registry) as mirror:
        if not mirror.wait_synced(10):
            raise SystemExit(f"no answer from etcd {etcd}: {mirror.error}")
        revision = mirror.revision
    picks = [registry.pick(service, strategy).id for _ in range(n)]
    print(json.dumps({"revision": revision, "picks": picks}))


if __name__ == "__main__":
    main()
