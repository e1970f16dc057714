// waypost/consul: mirror one Consul service into a waypost Registry through
// blocking queries, and keep an instance registered with the local agent,
// over Consul's HTTP API with the built-in fetch.

/** The agent address used when neither `address` nor CONSUL_HTTP_ADDR is given. */
export declare const DEFAULT_ADDRESS: "http://127.0.0.1:8500";

/** A failed call to Consul: `endpoint` names the agent, `path` the call. */
export declare class ConsulError extends Error {
  readonly name: "ConsulError";
  readonly endpoint: string;
  readonly path: string;
  /** The HTTP status when the agent answered, else 0. */
  readonly status: number;
}

/** The instance wire form (SPEC §2), as the registry's `register` takes it. */
export interface InstanceWire {
  id: string;
  service: string;
  address: string;
  port: number;
  weight?: number;
  tags?: string[];
  meta?: Record<string, string>;
  zone?: string;
  [extra: string]: unknown;
}

/** A source status: what a mirror reads back as passing / degraded / unhealthy / draining. */
export type SourceStatus = "passing" | "warning" | "critical" | "maintenance";

/** A reconcile report (as `Registry.sync` returns it). */
export interface SyncReport {
  added: number;
  updated: number;
  removed: number;
  unchanged: number;
  held: number;
  rejected: { at: string; code: string; message: string }[];
  resync: boolean;
  /** Anything added, updated, removed or held back, or a resync: what "change" fires on. */
  changed: boolean;
}

/** What a mirror needs of a waypost `Registry`. */
export interface MirroredRegistry {
  sourceAdd(name: string, options: { kind: "consul"; service: string }): void;
  sourceRequest(name: string): { method: string; path: string; body: string; stream: boolean };
  sourceFeed(name: string, body: string | Uint8Array, now?: number, options?: { status?: number; index?: string }): SyncReport;
}

export type MirrorStatus = "idle" | "starting" | "synced" | "retrying" | "stopped";

export interface ConsulMirrorOptions {
  /** The agent's HTTP address (default CONSUL_HTTP_ADDR, else http://127.0.0.1:8500). */
  address?: string;
  registry: MirroredRegistry;
  /** The Consul service to mirror. */
  service: string;
  /** The source name the instances carry (default "consul"). */
  source?: string;
  /** ACL token, sent as X-Consul-Token (default CONSUL_HTTP_TOKEN). */
  token?: string;
  now?: () => number;
  /** Per non-blocking request (default 5000); a blocking query may take its 5 min. */
  timeoutMs?: number;
  /** Two queries start at least this far apart (default 1000): Consul asks clients to rate-limit. */
  minIntervalMs?: number;
  /** Aborting closes the mirror. */
  signal?: AbortSignal;
  onError?: (error: Error) => void;
  onChange?: (report: SyncReport) => void;
}

/** Keeps a registry equal to what Consul's health endpoint says about one service. */
export declare class ConsulMirror {
  constructor(options: ConsulMirrorOptions);
  /** Starts mirroring; resolves once the service was read. */
  start(): Promise<this>;
  /** Stops mirroring, aborting the query in flight. Safe to call twice. */
  close(): Promise<void>;
  /** The X-Consul-Index the next query waits on (0: none). */
  readonly index: number;
  readonly error: Error | null;
  readonly status: MirrorStatus;
  readonly synced: boolean;
  readonly feeds: number;
  readonly endpoint: string;
  on(type: "change", fn: (report: SyncReport) => void): this;
  on(type: "error", fn: (error: Error) => void): this;
  on(type: "synced", fn: (mirror: ConsulMirror) => void): this;
  off(type: "change" | "error" | "synced", fn: (...args: never[]) => void): this;
}

export interface ConsulRegistrarOptions {
  address?: string;
  instance: InstanceWire;
  /** The TTL check's TTL in whole seconds (default 10); passed every ttl/3. */
  ttl?: number;
  /** Consul removes the instance after its check was critical this long (s, default 60). */
  deregisterAfter?: number;
  token?: string;
  timeoutMs?: number;
  /** Aborting closes the registrar (and deregisters). */
  signal?: AbortSignal;
  onError?: (error: Error) => void;
}

/** Registers one instance with a TTL check, keeps it passing, deregisters on close. */
export declare class ConsulRegistrar {
  constructor(options: ConsulRegistrarOptions);
  readonly id: string;
  readonly service: string;
  /** The instance registered (the last one `update` gave). */
  readonly instance: InstanceWire & { status?: SourceStatus };
  readonly registrations: number;
  readonly heartbeats: number;
  readonly error: Error | null;
  readonly status: "idle" | "registered" | "retrying" | "stopped";
  readonly endpoint: string;
  /** Registers now (rejects with ConsulError on failure), then heartbeats. */
  start(): Promise<this>;
  /**
   * Replaces the registration with `instance` (same id and service) and
   * keeps it. Its `status` maps as the core's Consul reader reads it back:
   * "warning" / "critical" are the TTL check's status, which heartbeats
   * keep; "maintenance" turns on the agent's maintenance mode (drains it),
   * another status turns it off. Before `start()` or after `close()` it is
   * only kept; rejects with ConsulError when the agent fails (the instance
   * is kept and the heartbeats send it), with TypeError for another id or
   * service or an unknown status.
   */
  update(instance: InstanceWire & { status?: SourceStatus }): Promise<void>;
  /** Stops the heartbeats and deregisters. Safe to call twice. */
  close(): Promise<void>;
  on(type: "error", fn: (error: Error) => void): this;
  off(type: "error", fn: (error: Error) => void): this;
}
