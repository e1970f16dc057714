"""waypost: client-side service discovery and load balancing.

One deterministic Rust core (the same one every waypost language runs),
with a typed Python API::

    import waypost

    reg = waypost.Registry(ttl_ms=10_000, seed=7)
    reg.register("api-1", "api", "10.0.0.1", 8080, now=0)
    inst = reg.pick("api", now=1)          # an Instance
    print(inst.address, inst.port)

Every time-dependent call takes an optional keyword ``now`` (ms); without
it the host's wall clock is used.
"""
from __future__ import annotations

from ._enums import CheckStatus, EventType, Health, Strategy
from ._errors import (
    # BEGIN GENERATED error imports (make gen: the core's error codes)
    Error,
    InvalidArgumentError,
    NotFoundError,
    UnknownServiceError,
    NoEligibleInstanceError,
    ConflictError,
    InvalidSnapshotError,
    CompactedError,
    # END GENERATED error imports
)
from ._waypost import (
    SNAPSHOT_FORMAT,
    Discovery,
    Event,
    Instance,
    InstanceView,
    Picker,
    PickResult,
    Registry,
    __version__,
)
from .helpers import Registrar, Ticker, track, wall_clock_ms

__all__ = [
    # BEGIN GENERATED error names (make gen: the core's error codes)
    "Error",
    "InvalidArgumentError",
    "NotFoundError",
    "UnknownServiceError",
    "NoEligibleInstanceError",
    "ConflictError",
    "InvalidSnapshotError",
    "CompactedError",
    # END GENERATED error names
    "SNAPSHOT_FORMAT",
    "CheckStatus",
    "Discovery",
    "Event",
    "EventType",
    "Health",
    "Instance",
    "InstanceView",
    "PickResult",
    "Picker",
    "Registrar",
    "Registry",
    "Strategy",
    "Ticker",
    "__version__",
    "track",
    "wall_clock_ms",
]
