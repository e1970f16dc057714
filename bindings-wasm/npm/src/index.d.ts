// Type declarations of the `waypost` package (written by hand, checked by
// test/types.test.mjs with `tsc --strict`).

/** Load-balancing strategies (SPEC §5). */
export type Strategy =
  // BEGIN GENERATED Strategy (make gen: the core's name table)
  | "round_robin"
  | "random"
  | "weighted_random"
  | "weighted_round_robin"
  | "least_request"
  | "consistent_hash"
  | "first_available"
  // END GENERATED Strategy
  ;

/** Public health of an instance (SPEC §3). */
export type Health =
  // BEGIN GENERATED Health (make gen: the core's name table)
  | "healthy"
  | "unhealthy"
  | "draining"
  | "ejected"
  | "degraded"
  // END GENERATED Health
  ;

/** An active check result the host reports. */
export type CheckStatus =
  // BEGIN GENERATED CheckStatus (make gen: the core's name table)
  | "pass"
  | "warn"
  | "fail"
  // END GENERATED CheckStatus
  ;

/** Stable error codes (SPEC §8). */
export type ErrorCode =
  // BEGIN GENERATED ErrorCode (make gen: the core's name table)
  | "invalid_argument"
  | "not_found"
  | "unknown_service"
  | "no_eligible_instance"
  | "conflict"
  | "invalid_snapshot"
  | "compacted"
  // END GENERATED ErrorCode
  /** JavaScript only: the registry was used after `free()`. */
  | "freed";

/** Event types (SPEC §6). */
export type EventType =
  // BEGIN GENERATED EventType (make gen: the core's name table)
  | "registered"
  | "updated"
  | "deregistered"
  | "health_changed"
  | "evicted"
  | "panic_entered"
  | "panic_exited"
  | "self_preservation_entered"
  | "self_preservation_exited"
  | "removal_held"
  | "removal_released"
  // END GENERATED EventType
  ;

/** Registry configuration (SPEC §4); every key is optional. */
export interface RegistryConfig {
  // BEGIN GENERATED config (make gen: the core's configuration keys)
  /** Lease length in ms (1 ms – 1 day). */
  ttlMs?: number;
  /** Time a lease may stay expired before the instance is removed; 0 = never. */
  evictAfterMs?: number;
  /** Seed of the registry RNG. The core never draws entropy: hosts supply it. */
  seed?: number;
  /** Consecutive passing checks that make a failing instance healthy (1–1000). */
  checkRise?: number;
  /** Consecutive failing checks that make an instance unhealthy (1–1000). */
  checkFall?: number;
  /** Consecutive call failures that eject an instance; 0 = outlier detection off. */
  consecutiveFailures?: number;
  /** First ejection length in ms; the n-th in a row lasts n times as long. */
  baseEjectionMs?: number;
  /** Cap on one ejection's length in ms. */
  maxEjectionMs?: number;
  /** Cap on the share of a service's instances ejected at once, in percent (0–100). */
  maxEjectionPercent?: number;
  /** Service panic threshold, 0.0–1.0; 0 = off. */
  panicThreshold?: number;
  /** Slow-start window in ms; 0 = off. */
  slowStartMs?: number;
  /** Registry-wide self-preservation threshold, 0.0–1.0; 0 = off. */
  selfPreservationThreshold?: number;
  /** Self-preservation applies only from this many registered instances on. */
  selfPreservationMinInstances?: number;
  /** How long, in ms, a live instance a source removed still counts in the population self-preservation measures against (SPEC §10.3), so removals arriving one by one are judged together; 0 = only removals at the same clock (0 – 7 days). */
  selfPreservationWindowMs?: number;
  /** Events kept for `events_since` (1 – 1 000 000). */
  eventRetention?: number;
  /** Whether a source's full sync with no entries may remove a service's instances (SPEC §10.3); by default it is held as a likely error. */
  trustEmptySync?: boolean;
  // END GENERATED config
}

/** The configuration in force, every key present. */
export type ResolvedConfig = Required<RegistryConfig>;

/** What a host registers (SPEC §2). */
export interface InstanceSpec {
  // BEGIN GENERATED InstanceSpec fields (make gen: the core's instance fields)
  /** Unique id, 1–256 bytes, no control characters. */
  id: string;
  /** Service name, same rule as `id`. */
  service: string;
  /** Host name or IP, 1–256 bytes, no control characters. */
  address: string;
  /** Port, 1–65535. */
  port: number;
  /** Weight, 1–10000 (default 1). */
  weight?: number;
  /** Up to 64 tags of 1–256 bytes; duplicates are dropped, order kept. */
  tags?: readonly string[];
  /** Up to 64 entries; key 1–128 bytes, value up to 512 bytes. */
  meta?: Readonly<Record<string, string>>;
  /** Locality for zone preference, up to 128 bytes; empty or unset is no zone. */
  zone?: string | null;
  /** Failover tier, 0–255, 0 preferred (default 0). */
  priority?: number;
  /** Lease length overriding the registry's `ttl_ms`, 1 ms – 1 day. */
  ttlMs?: number | null;
  /** How often the host should run this instance's active check, 1 ms – 1 day; unset: no check. */
  checkIntervalMs?: number | null;
  // END GENERATED InstanceSpec fields
}

/** A registered instance (frozen; the same object while it is unchanged). */
export interface Instance {
  // BEGIN GENERATED Instance fields (make gen: the core's instance fields)
  readonly id: string;
  readonly service: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly zone: string | null;
  readonly priority: number;
  readonly ttlMs: number | null;
  readonly checkIntervalMs: number | null;
  // END GENERATED Instance fields
}

/** An instance with its status at the registry clock (`get`). */
export interface InstanceState {
  instance: Instance;
  // BEGIN GENERATED InstanceState status (make gen: the core's status fields)
  /** Public health. */
  health: Health;
  /** Index of the last event concerning this instance. */
  modifyIndex: number;
  /** Index of its registration or latest update (changes only when its fields change). */
  revision: number;
  /** When it was first registered. In ms. */
  registeredAt: number;
  /** When its lease was last renewed. In ms. */
  lastRenewal: number;
  /** The lease is expired at any later instant; a source-owned instance has no lease. In ms. */
  leaseDeadline?: number;
  /** Weight after slow start. */
  effectiveWeight: number;
  /** Calls begun and not yet ended. */
  inflight: number;
  /** Call failures in a row (outlier detection). */
  consecutiveFailures: number;
  /** When the current ejection ends, while ejected. In ms. */
  ejectedUntil: number | null;
  /** The last active-check result reported. */
  lastCheck: CheckStatus | null;
  /** The owning source's verdict, for a source-owned instance (SPEC §10.1). */
  status?: SourceStatus;
  /** Whether a removal its source asked for is held back (SPEC §10.3). */
  held?: boolean;
  // END GENERATED InstanceState status
}

/** The result of a pick (frozen and cached: compare by identity freely). */
export interface PickResult {
  readonly instance: Instance;
  /** The service was in panic: the pick ignored health. */
  readonly panic: boolean;
}

/** Tag and metadata filter: every listed tag and pair must be present. */
export interface Filter {
  tags?: readonly string[];
  meta?: Readonly<Record<string, string>>;
}

export interface PickOptions extends Filter {
  /** Required by consistent_hash. */
  key?: string;
  /** The caller's zone: candidates in it are preferred. */
  zone?: string;
}

export interface DiscoverOptions extends Filter {
  /** List every instance with its health, not only the healthy ones. */
  all?: boolean;
}

/** The answer of `discover`: parallel lists in id order. */
export interface Discovery {
  instances: Instance[];
  health: Health[];
  panic: boolean;
}

/** One state change (SPEC §6). */
export interface RegistryEvent {
  index: number;
  type: EventType;
  at: number;
  id?: string;
  service?: string;
  from?: Health;
  to?: Health;
}

/** One service's counters and gauges. */
export interface ServiceMetrics {
  service: string;
  instances: Record<Health, number>;
  panic: boolean;
  picks: Record<Strategy, number>;
  pickFailures: number;
  registrations: number;
  deregistrations: number;
  heartbeats: number;
  expiries: number;
  evictions: number;
  ejections: number;
}

/** Every failing registry call throws one (a bad argument type throws TypeError). */
export class WaypostError extends Error {
  constructor(code: ErrorCode, message: string);
  readonly name: "WaypostError";
  readonly code: ErrorCode;
}

export const STRATEGIES: readonly Strategy[];
export const HEALTH_VALUES: readonly Health[];
export const ERROR_CODES: readonly ErrorCode[];
/** The version of the core this package was built from. */
export function version(): string;

/** What a Consul registrar sends the agent for one instance (SPEC §10.4). */
export interface ConsulRegistration {
  id: string;
  service: string;
  /** The TTL check's id, `service:<id>`. */
  checkId: string;
  /** The text to PUT to /v1/agent/service/register. */
  body: string;
  /** The heartbeat that keeps the check's status: /v1/agent/check/<pass|warn|fail>/service:<id>. */
  heartbeatPath: string;
  /** The agent's maintenance mode for the service is on (status "maintenance"). */
  maintenance: boolean;
  /** What removes the service at once: /v1/agent/service/deregister/<id>. */
  deregisterPath: string;
  /** What turns maintenance mode on: /v1/agent/service/maintenance/<id>?enable=true&reason=waypost%3A%20maintenance. */
  maintenanceOnPath: string;
  /** What turns it off: /v1/agent/service/maintenance/<id>?enable=false. */
  maintenanceOffPath: string;
}

/**
 * The registration the core builds for `instance` (the wire form plus an
 * optional `status`: passing, warning, critical or maintenance) with a TTL
 * check of `ttl` seconds, removed after `deregisterAfter` seconds critical
 * (each 1-86400). Node only: in a browser it throws.
 */
export function consulRegistration(instance: object, ttl: number, deregisterAfter: number): ConsulRegistration;

/** A source's verdict on one of its instances (SPEC §10.1). */
export type SourceStatus =
  // BEGIN GENERATED SourceStatus (make gen: the core's name table)
  | "passing"
  | "warning"
  | "critical"
  | "maintenance"
  // END GENERATED SourceStatus
  ;

/** One instance as a source reports it. */
export interface SourceEntry extends InstanceSpec {
  status?: SourceStatus;
}

/** What one reconcile call did (SPEC §10.2). */
export interface SyncReport {
  added: number;
  updated: number;
  removed: number;
  unchanged: number;
  held: number;
  rejected: { at: string; code: ErrorCode; message: string }[];
  /** The mirror was reset: the next request reads everything again. */
  resync: boolean;
  /** Anything added, updated, removed or held back, or a resync: what a mirror's "change" event fires on. */
  changed: boolean;
}

/** The request a mirror's host sends next (SPEC §10.4). */
export interface SourceRequest {
  method: "GET" | "POST";
  path: string;
  body: string;
  /** Feed each message of the answer on its own. */
  stream: boolean;
  /**
   * A gRPC unary call over HTTP/2: `path` is the method, `body` the base64
   * of the length-prefixed request message; feed the answer's bytes back
   * as they came.
   */
  grpc?: true;
}

/** Options of `sourceAdd`. */
export type SourceOptions =
  | { kind: "etcd"; prefix?: string; /** Read the range over gRPC (Node's module only). */ grpc?: boolean }
  | { kind: "consul"; service: string }
  | { kind: "k8s"; namespace: string; service: string; port?: string };

/**
 * A service registry. Every time-dependent method takes `now` (ms) last;
 * it defaults to Date.now().
 */
export class Registry {
  constructor(config?: RegistryConfig);
  /** A registry restored from `snapshot()` text. */
  static restore(snapshot: string): Registry;
  snapshot(): string;
  readonly config: ResolvedConfig;
  register(instance: InstanceSpec, now?: number): Instance;
  deregister(id: string, now?: number): void;
  heartbeat(id: string, now?: number): void;
  drain(id: string, on?: boolean, now?: number): void;
  reportCheck(id: string, status: CheckStatus, now?: number): void;
  reportOutcome(id: string, success: boolean, now?: number): void;
  begin(id: string, now?: number): void;
  end(id: string, now?: number): void;
  get(id: string, now?: number): InstanceState;
  pick(service: string, strategy?: Strategy, now?: number): PickResult;
  pick(service: string, strategy: Strategy, options?: PickOptions, now?: number): PickResult;
  discover(service: string, now?: number): Discovery;
  discover(service: string, options?: DiscoverOptions, now?: number): Discovery;
  tick(now?: number): RegistryEvent[];
  nextDeadline(): number | null;
  dueChecks(now?: number): string[];
  eventsSince(after?: number): RegistryEvent[];
  services(now?: number): string[];
  serviceModifyIndex(service: string): number;
  renderMetrics(): string;
  serviceMetrics(): ServiceMetrics[];
  sync(source: string, service: string, entries: SourceEntry[], now?: number): SyncReport;
  sourcePut(source: string, entry: SourceEntry, now?: number): SyncReport;
  sourceDelete(source: string, id: string, now?: number): SyncReport;
  sourceAdd(name: string, options: SourceOptions): void;
  sourceRequest(name: string): SourceRequest;
  sourceFeed(name: string, body: string | Uint8Array, now?: number, options?: { status?: number; index?: string }): SyncReport;
  readonly clock: number;
  readonly lastIndex: number;
  readonly size: number;
  readonly inSelfPreservation: boolean;
  readonly membershipEpoch: number;
  /** Releases the WebAssembly memory now. */
  free(): void;
}
