#!/usr/bin/env python3
"""Writes tests/scenarios/145-smooth-wrr-over-4100-candidates.json.

A service of 4 100 candidates is past the smooth-WRR period table (SPEC
§5.1): native builds keep its state by weight (the smooth-WRR index), the
browser's module walks. Every expected pick here comes from the plain
nginx walk below, written independently of the core, through a drain, a
join in the middle, a weight change, zone-filtered picks, a restore and a
leave.

    python3 scripts/gen-large-wrr-vector.py
"""

import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("gen", os.path.join(HERE, "gen-source-vectors.py"))
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)

N = 4100

# A few heavy candidates among many of weight 1: picks move between the
# weights, and the many of one weight break their ties by id.
HEAVY = {7: 6, 500: 5, 1500: 4, 2050: 3, 3000: 2, 4000: 2}


def entry(i, weight=None, id=None):
    return {
        "id": id or f"w-{i:04}",
        "service": "api",
        "address": "10.0.0.1",
        "port": 8080,
        "weight": weight if weight is not None else HEAVY.get(i, 1),
        "zone": "a" if i % 3 == 0 else "b",
    }


class Walk:
    """The candidates in id order with their weight and `current`."""

    def __init__(self, entries):
        self.c = [[e["id"], e["weight"], 0, e["zone"]] for e in sorted(entries, key=lambda e: e["id"])]

    def pick(self, zone=None):
        subset = [x for x in self.c if zone is None or x[3] == zone] or self.c
        total = sum(x[1] for x in subset)
        for x in subset:
            x[2] += x[1]
        best = max(subset, key=lambda x: x[2])  # the first of the largest
        best[2] -= total
        return best[0]

    def picks(self, count, zone=None):
        return [self.pick(zone) for _ in range(count)]

    def remove(self, id):
        self.c = [x for x in self.c if x[0] != id]

    def join(self, e):
        self.c.append([e["id"], e["weight"], 0, e["zone"]])
        self.c.sort(key=lambda x: x[0])

    def reweight(self, id, weight):
        for x in self.c:
            if x[0] == id:
                x[1] = weight


def picks(walk, count, zone=None):
    fields = {"service": "api", "strategy": "weighted_round_robin", "count": count}
    if zone:
        fields["zone"] = zone
    return gen.step("picks", expect={"ids": walk.picks(count, zone)}, **fields)


def main():
    entries = [entry(i) for i in range(N)]
    walk = Walk(entries)
    steps = [gen.step("sync", source="m", service="api", entries=entries, at=0)]
    steps.append(picks(walk, 100))
    steps.append(gen.step("drain", id="w-2050"))
    walk.remove("w-2050")
    steps.append(picks(walk, 30))
    joiner = entry(2050, weight=4, id="w-2050x")
    steps.append(gen.step("source_put", source="m", entry=joiner))
    walk.join(joiner)
    steps.append(picks(walk, 30))
    changed = entry(1, weight=5)
    steps.append(gen.step("source_put", source="m", entry=changed))
    walk.reweight("w-0001", 5)
    steps.append(picks(walk, 30))
    steps.append(picks(walk, 20, zone="a"))
    steps.append(picks(walk, 20))
    steps.append(gen.step("snapshot_restore"))
    steps.append(picks(walk, 30))
    steps.append(gen.step("source_delete", source="m", id="w-0003"))
    walk.remove("w-0003")
    steps.append(picks(walk, 30))
    gen.scenario(
        145,
        "smooth-wrr-over-4100-candidates",
        "smooth weighted round robin over 4 100 candidates, past the period table: the walk's picks through a drain, a join, a weight change, zone-filtered picks, a restore and a leave (SPEC §5.1)",
        steps,
        config={"seed": 5},
    )


if __name__ == "__main__":
    main()
