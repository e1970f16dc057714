"""Type stubs of the extension module ``waypost._waypost``."""
from typing import Any, Iterator, Literal, Mapping, Optional, Sequence, Union, final, overload

from ._enums import CheckStatus, EventType, Health, Strategy

__all__ = [
    "SNAPSHOT_FORMAT",
    "Discovery",
    "Event",
    "GrpcCall",
    "Instance",
    "InstanceView",
    "PickResult",
    "Picker",
    "Registry",
    "__version__",
    "consul_registration",
]

__version__: str
SNAPSHOT_FORMAT: str

_StrategyArg = Union[Strategy, str]
_CheckArg = Union[CheckStatus, str]

@final
class Instance:
    """A registered instance: the fields it was registered with (SPEC §2)."""

    # BEGIN GENERATED Instance properties (make gen: the core's instance fields)
    @property
    def id(self) -> str:
        """Unique id, 1–256 bytes, no control characters."""
    @property
    def service(self) -> str:
        """Service name, same rule as `id`."""
    @property
    def address(self) -> str:
        """Host name or IP, 1–256 bytes, no control characters."""
    @property
    def port(self) -> int:
        """Port, 1–65535."""
    @property
    def weight(self) -> int:
        """Weight, 1–10000 (default 1)."""
    @property
    def tags(self) -> tuple[str, ...]:
        """Up to 64 tags of 1–256 bytes; duplicates are dropped, order kept."""
    @property
    def meta(self) -> dict[str, str]:
        """Up to 64 entries; key 1–128 bytes, value up to 512 bytes. A new dict on each access."""
    @property
    def zone(self) -> Optional[str]:
        """Locality for zone preference, up to 128 bytes; empty or unset is no zone."""
    @property
    def priority(self) -> int:
        """Failover tier, 0–255, 0 preferred (default 0)."""
    @property
    def ttl_ms(self) -> Optional[int]:
        """Lease length overriding the registry's `ttl_ms`, 1 ms – 1 day."""
    @property
    def check_interval_ms(self) -> Optional[int]:
        """How often the host should run this instance's active check, 1 ms – 1 day; unset: no check."""
    # END GENERATED Instance properties
    @property
    def handle(self) -> int: ...
    def to_dict(self) -> dict[str, Any]: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class InstanceView:
    """An instance with its dynamic status at the registry clock."""

    @property
    def instance(self) -> Instance: ...
    @property
    def id(self) -> str: ...
    @property
    def service(self) -> str: ...
    # BEGIN GENERATED InstanceView properties (make gen: the core's instance fields)
    @property
    def source(self) -> Optional[str]:
        """The source that owns it (SPEC §10.1), same rule as `id`; unset for a local instance."""
    # END GENERATED InstanceView properties
    # BEGIN GENERATED InstanceView status (make gen: the core's status fields)
    @property
    def health(self) -> Health:
        """Public health."""
    @property
    def modify_index(self) -> int:
        """Index of the last event concerning this instance."""
    @property
    def revision(self) -> int:
        """Index of its registration or latest update (changes only when its fields change)."""
    @property
    def registered_at(self) -> int:
        """When it was first registered. In ms on the registry clock."""
    @property
    def last_renewal(self) -> int:
        """When its lease was last renewed. In ms on the registry clock."""
    @property
    def lease_deadline(self) -> int:
        """The lease is expired at any later instant; a source-owned instance has no lease. In ms on the registry clock; 2**64 - 1 when there is none."""
    @property
    def effective_weight(self) -> float:
        """Weight after slow start."""
    @property
    def inflight(self) -> int:
        """Calls begun and not yet ended."""
    @property
    def consecutive_failures(self) -> int:
        """Call failures in a row (outlier detection)."""
    @property
    def ejected_until(self) -> Optional[int]:
        """When the current ejection ends, while ejected. In ms on the registry clock. None when unset."""
    @property
    def last_check(self) -> Optional[CheckStatus]:
        """The last active-check result reported. None when unset."""
    @property
    def source_status(self) -> Optional[str]:
        """The owning source's verdict, for a source-owned instance (SPEC §10.1). One of passing, warning, critical or maintenance. None when unset."""
    @property
    def held(self) -> bool:
        """Whether a removal its source asked for is held back (SPEC §10.3)."""
    # END GENERATED InstanceView status
    def to_dict(self) -> dict[str, Any]: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class Discovery:
    """The answer of ``discover``: instances in id order with their health."""

    @property
    def instances(self) -> tuple[Instance, ...]: ...
    @property
    def health(self) -> tuple[Health, ...]: ...
    @property
    def panic(self) -> bool: ...
    @property
    def ids(self) -> tuple[str, ...]: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: int, /) -> Instance: ...
    @overload
    def __getitem__(self, index: slice, /) -> tuple[Instance, ...]: ...
    def __iter__(self) -> Iterator[Instance]: ...
    def to_dict(self) -> dict[str, Any]: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class PickResult:
    """A picked instance with the service's panic flag."""

    @property
    def instance(self) -> Instance: ...
    @property
    def panic(self) -> bool: ...
    def to_dict(self) -> dict[str, Any]: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class Picker:
    """A worker-local picker for one service (SPEC §5.2), made by
    ``Registry.picker``. Use one per thread."""

    def pick(
        self,
        strategy: Optional[_StrategyArg] = None,
        *,
        now: Optional[int] = None,
        key: Optional[str] = None,
    ) -> Instance: ...
    def pick_result(
        self,
        strategy: Optional[_StrategyArg] = None,
        *,
        now: Optional[int] = None,
        key: Optional[str] = None,
    ) -> PickResult: ...
    def report_outcome(
        self, instance: Union[Instance, int], success: bool, *, now: Optional[int] = None
    ) -> None: ...
    def begin(self, instance: Union[Instance, int]) -> None: ...
    def end(self, instance: Union[Instance, int]) -> None: ...
    def _noop(
        self,
        strategy: Optional[_StrategyArg] = None,
        *,
        now: Optional[int] = None,
        key: Optional[str] = None,
    ) -> None: ...
    @property
    def number(self) -> int: ...

@final
class Event:
    """One registry event (SPEC §6)."""

    @property
    def index(self) -> int: ...
    @property
    def type(self) -> EventType: ...
    @property
    def at(self) -> int: ...
    @property
    def id(self) -> Optional[str]: ...
    @property
    def service(self) -> Optional[str]: ...
    @property
    def from_(self) -> Optional[Health]: ...
    @property
    def to(self) -> Optional[Health]: ...
    def to_dict(self) -> dict[str, Any]: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class Registry:
    """A service registry. Time-dependent methods take ``now`` (ms, keyword);
    it defaults to the host's wall clock."""

    def __new__(
        cls,
        *,
        # BEGIN GENERATED config (make gen: the core's configuration keys)
        ttl_ms: Optional[int] = None,
        evict_after_ms: Optional[int] = None,
        seed: Optional[int] = None,
        check_rise: Optional[int] = None,
        check_fall: Optional[int] = None,
        consecutive_failures: Optional[int] = None,
        base_ejection_ms: Optional[int] = None,
        max_ejection_ms: Optional[int] = None,
        max_ejection_percent: Optional[int] = None,
        panic_threshold: Optional[float] = None,
        slow_start_ms: Optional[int] = None,
        self_preservation_threshold: Optional[float] = None,
        self_preservation_min_instances: Optional[int] = None,
        self_preservation_window_ms: Optional[int] = None,
        event_retention: Optional[int] = None,
        trust_empty_sync: Optional[bool] = None,
        # END GENERATED config
    ) -> Registry: ...
    @staticmethod
    def restore(text: str) -> Registry: ...
    def snapshot(self) -> str: ...
    def register(
        self,
        # BEGIN GENERATED register (make gen: the core's instance fields)
        id: str,
        service: str,
        address: str,
        port: int,
        *,
        weight: Optional[int] = None,
        tags: Optional[Sequence[str]] = None,
        meta: Optional[Mapping[str, str]] = None,
        zone: Optional[str] = None,
        priority: Optional[int] = None,
        ttl_ms: Optional[int] = None,
        check_interval_ms: Optional[int] = None,
        # END GENERATED register
        now: Optional[int] = None,
    ) -> Instance: ...
    def register_spec(self, spec: Mapping[str, Any], *, now: Optional[int] = None) -> Instance: ...
    # Sources (SPEC §10). A report is {"added", "updated", "removed",
    # "unchanged", "held", "rejected": [{"at", "code", "message"}], "resync",
    # "changed"} ("changed": anything added, updated, removed, held or a resync);
    # a request is {"method", "path", "body", "stream"}.
    def sync(
        self,
        source: str,
        service: str,
        entries: Sequence[Mapping[str, Any]],
        *,
        now: Optional[int] = None,
    ) -> dict[str, Any]: ...
    def source_put(self, source: str, entry: Mapping[str, Any], *, now: Optional[int] = None) -> dict[str, Any]: ...
    def source_delete(self, source: str, id: str, *, now: Optional[int] = None) -> dict[str, Any]: ...
    def source_add(self, name: str, options: Mapping[str, Any]) -> None: ...
    def source_request(self, name: str) -> dict[str, Any]: ...
    def source_feed(
        self,
        name: str,
        body: Union[str, bytes],
        *,
        now: Optional[int] = None,
        status: Optional[int] = None,
        index: Optional[str] = None,
    ) -> dict[str, Any]: ...
    def deregister(self, id: str, *, now: Optional[int] = None) -> None: ...
    def heartbeat(self, id: str, *, now: Optional[int] = None) -> None: ...
    def drain(self, id: str, on: bool = True, *, now: Optional[int] = None) -> None: ...
    def report_check(self, id: str, status: _CheckArg, *, now: Optional[int] = None) -> None: ...
    def report_outcome(self, id: str, success: bool, *, now: Optional[int] = None) -> None: ...
    def begin(self, id: str, *, now: Optional[int] = None) -> None: ...
    def end(self, id: str, *, now: Optional[int] = None) -> None: ...
    def get(self, id: str, *, now: Optional[int] = None) -> InstanceView: ...
    def services(self, *, now: Optional[int] = None) -> list[str]: ...
    def discover(
        self,
        service: str,
        *,
        all: bool = False,
        tags: Optional[Sequence[str]] = None,
        meta: Optional[Mapping[str, str]] = None,
        now: Optional[int] = None,
    ) -> Discovery: ...
    def picker(
        self,
        service: str,
        *,
        zone: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        meta: Optional[Mapping[str, str]] = None,
    ) -> Picker: ...
    def pick(
        self,
        service: str,
        strategy: Optional[_StrategyArg] = None,
        *,
        now: Optional[int] = None,
        key: Optional[str] = None,
        zone: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        meta: Optional[Mapping[str, str]] = None,
    ) -> Instance: ...
    def pick_result(
        self,
        service: str,
        strategy: Optional[_StrategyArg] = None,
        *,
        now: Optional[int] = None,
        key: Optional[str] = None,
        zone: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        meta: Optional[Mapping[str, str]] = None,
    ) -> PickResult: ...
    def tick(self, *, now: Optional[int] = None) -> list[Event]: ...
    def next_deadline(self) -> Optional[int]: ...
    def due_checks(self, *, now: Optional[int] = None) -> list[str]: ...
    def events_since(self, after: Optional[int] = None) -> list[Event]: ...
    def service_modify_index(self, service: str) -> int: ...
    def render_metrics(self) -> str: ...
    def service_metrics(self) -> list[dict[str, Any]]: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def clock(self) -> int: ...
    @property
    def last_index(self) -> int: ...
    @property
    def membership_epoch(self) -> int: ...
    @property
    def in_self_preservation(self) -> bool: ...
    def __len__(self) -> int: ...
    def __contains__(self, id: object, /) -> bool: ...
    def __reduce__(self) -> tuple[Any, tuple[str]]: ...
    def _noop(self) -> None: ...
    def _check_invariants(self) -> Optional[str]: ...

def consul_registration(instance: Mapping[str, Any], ttl_s: int, deregister_after_s: int) -> dict[str, Any]:
    """What a Consul registrar sends for ``instance`` (the wire form plus an
    optional ``status``) with a TTL check of ``ttl_s`` seconds, removed after
    ``deregister_after_s`` seconds critical (SPEC §10.4): ``{"id", "service",
    "check_id", "body", "heartbeat_path", "maintenance", "deregister_path",
    "maintenance_on_path", "maintenance_off_path"}``, ``body`` the JSON text
    of ``PUT /v1/agent/service/register``, each path ready to ``PUT``."""

@final
class GrpcCall:
    """One gRPC unary call's HTTP/2 without I/O (SPEC §10.4): send
    ``take_output()``, hand every read to ``receive`` (``b""``: the server
    closed the connection) and send ``take_output()`` after each, until
    the state is not ``"waiting"``."""

    def __new__(cls, scheme: str, authority: str, path: str, message: bytes, max_answer: Optional[int] = None) -> "GrpcCall": ...
    def take_output(self) -> bytes: ...
    def receive(self, data: bytes) -> Literal["waiting", "answered", "failed"]: ...
    @property
    def state(self) -> Literal["waiting", "answered", "failed"]: ...
    @property
    def answer(self) -> bytes: ...
    @property
    def failure(self) -> str: ...
