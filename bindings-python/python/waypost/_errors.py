"""The exceptions of SPEC.md §8: one class per stable code under ``Error``."""
from __future__ import annotations


class Error(Exception):
    """Base of every waypost error; ``code`` is the stable code string."""

    code: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        # KeyError would quote the message; every waypost error reads the same.
        return self.message


class InvalidArgumentError(Error, ValueError):
    """An argument or configuration value is out of range or malformed."""

    code = "invalid_argument"


class NotFoundError(Error, KeyError):
    """No instance with this id is registered."""

    code = "not_found"


class UnknownServiceError(Error):
    """No service with this name has any registered instance."""

    code = "unknown_service"


class NoEligibleInstanceError(Error):
    """The service exists but no instance is eligible for the pick."""

    code = "no_eligible_instance"


class ConflictError(Error):
    """The request contradicts the registry's state."""

    code = "conflict"


class InvalidSnapshotError(Error):
    """A snapshot document could not be restored."""

    code = "invalid_snapshot"


class CompactedError(Error):
    """Some requested events were already dropped: resync from a snapshot."""

    code = "compacted"


# In the order of the core's numeric error codes (1..=7).
BY_CODE: tuple[type[Error], ...] = (
    InvalidArgumentError,
    NotFoundError,
    UnknownServiceError,
    NoEligibleInstanceError,
    ConflictError,
    InvalidSnapshotError,
    CompactedError,
)
