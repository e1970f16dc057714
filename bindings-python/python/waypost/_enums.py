"""The closed sets of names the core uses, as ``str`` enums.

Every member is also the plain string of SPEC.md, so ``Strategy.ROUND_ROBIN ==
"round_robin"`` and every call that takes a member accepts the string too.
"""
from __future__ import annotations

import enum


class _Named(str, enum.Enum):
    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


class Strategy(_Named):
    """How ``Registry.pick`` chooses among the candidates (SPEC.md §5)."""

    # BEGIN GENERATED Strategy (make gen: the core's name table)
    ROUND_ROBIN = "round_robin"
    RANDOM = "random"
    WEIGHTED_RANDOM = "weighted_random"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin"
    LEAST_REQUEST = "least_request"
    CONSISTENT_HASH = "consistent_hash"
    FIRST_AVAILABLE = "first_available"
    # END GENERATED Strategy


class Health(_Named):
    """The public health of an instance (SPEC.md §3)."""

    # BEGIN GENERATED Health (make gen: the core's name table)
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"
    EJECTED = "ejected"
    DEGRADED = "degraded"
    # END GENERATED Health


class CheckStatus(_Named):
    """The result of one active check the host ran."""

    # BEGIN GENERATED CheckStatus (make gen: the core's name table)
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    # END GENERATED CheckStatus


class EventType(_Named):
    """What an ``Event`` reports (SPEC.md §6)."""

    # BEGIN GENERATED EventType (make gen: the core's name table)
    REGISTERED = "registered"
    UPDATED = "updated"
    DEREGISTERED = "deregistered"
    HEALTH_CHANGED = "health_changed"
    EVICTED = "evicted"
    PANIC_ENTERED = "panic_entered"
    PANIC_EXITED = "panic_exited"
    SELF_PRESERVATION_ENTERED = "self_preservation_entered"
    SELF_PRESERVATION_EXITED = "self_preservation_exited"
    REMOVAL_HELD = "removal_held"
    REMOVAL_RELEASED = "removal_released"
    # END GENERATED EventType
