"""waypost quick start: register, heartbeat, pick and watch, in virtual time.

Run: python examples/python/quickstart.py
"""
import waypost

reg = waypost.Registry(ttl_ms=10_000, seed=7)
reg.register("api-1", "api", "10.0.0.1", 8080, now=0)
reg.register("api-2", "api", "10.0.0.2", 8080, weight=3, now=0)
reg.heartbeat("api-1", now=9_000)  # api-2 never heartbeats

picked = reg.pick("api", now=10_001)  # api-2's lease ran out at 10 000
print(f"picked {picked.id} at {picked.address}:{picked.port}")
assert picked.id == "api-1"

reg.heartbeat("api-2", now=12_000)  # a heartbeat brings it back
shares = [reg.pick("api", waypost.Strategy.WEIGHTED_ROUND_ROBIN, now=12_000).id for _ in range(4)]
print("weighted round robin:", shares)
assert shares.count("api-2") == 3

try:
    reg.heartbeat("api-3", now=12_000)
except waypost.NotFoundError as e:  # also a KeyError
    print(f"{e.code}: {e}")

for event in reg.events_since(0):
    change = f" ({event.from_} -> {event.to})" if event.to else ""
    print(f"#{event.index} at {event.at} ms: {event.type} {event.id}{change}")

# A snapshot restores into an identical registry (in any language).
copy = waypost.Registry.restore(reg.snapshot())
assert copy.pick("api", now=12_001) == reg.pick("api", now=12_001)
