// waypost/etcd: keep an instance registered in etcd, and mirror etcd into a
// waypost Registry, over the v3 JSON gateway with the built-in fetch.

/** Where instances live: `<prefix>/<service>/<id>`. */
export declare const DEFAULT_PREFIX: "/waypost/services";

/** A failed call to etcd: `endpoint` names the member(s) asked, `path` the gateway call. */
export declare class EtcdError extends Error {
  readonly name: "EtcdError";
  readonly endpoint: string;
  readonly path: string;
  /** The HTTP status when a member answered, else 0. */
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
  priority?: number;
  [extra: string]: unknown;
}

/** A source's verdict on one of its instances (SPEC §10.1): what mirrors read. */
export type SourceStatus =
  // BEGIN GENERATED SourceStatus (make gen: the core's name table)
  | "passing"
  | "warning"
  | "critical"
  | "maintenance"
  // END GENERATED SourceStatus
  ;

export interface EtcdRegistrarOptions {
  /** etcd client URLs, tried in turn. */
  endpoints: string[] | string;
  instance: InstanceWire;
  prefix?: string;
  /** Lease TTL in whole seconds (default 10); etcd may raise it: see `grantedTtl`. */
  ttl?: number;
  /** Per request, until the headers (default 2000). */
  timeoutMs?: number;
  /** PEM file of the CA that signed the members' certificates, for https endpoints (Node only; default: the system's CAs). */
  caFile?: string;
  /** Aborting closes the registrar (and revokes its lease). */
  signal?: AbortSignal;
  onError?: (error: Error) => void;
}

export type HelperStatus = "idle" | "registered" | "retrying" | "stopped";

/**
 * Keeps one instance registered under `<prefix>/<service>/<id>` with a
 * lease, kept alive every TTL/3; registers again when the lease is lost or
 * the key is gone; revokes the lease on close.
 */
export declare class EtcdRegistrar {
  constructor(options: EtcdRegistrarOptions);
  readonly key: string;
  readonly leaseId: string | null;
  readonly grantedTtl: number | null;
  readonly registrations: number;
  /** The last background failure; null once healthy again. */
  readonly error: Error | null;
  readonly status: HelperStatus;
  /** The client URL in use now. */
  readonly endpoint: string;
  /** The value registered now (the instance wire form as JSON). */
  readonly value: string;
  /** Registers now (rejects with EtcdError when no endpoint answers), then keeps the lease alive. */
  start(): Promise<this>;
  /**
   * Replaces the registered value with `instance` (same id and service; a
   * `status` of "maintenance" drains it) under the registrar's lease, and
   * keeps it for every later registration. Before `start()` or after
   * `close()` it is only kept; a lost lease is registered again at once;
   * rejects with EtcdError when no endpoint answers (the value is kept).
   */
  update(instance: InstanceWire & { status?: SourceStatus }): Promise<void>;
  /** Stops the keep-alives and revokes the lease. Safe to call twice. */
  close(): Promise<void>;
  on(type: "error", fn: (error: Error) => void): this;
  off(type: "error", fn: (error: Error) => void): this;
}

/** What a mirror needs of a waypost `Registry`. */
export interface MirroredRegistry {
  sourceAdd(name: string, options: { kind: "etcd"; prefix?: string }): void;
  sourceRequest(name: string): { method: string; path: string; body: string; stream: boolean };
  sourceFeed(name: string, body: string | Uint8Array, now?: number, options?: { status?: number; index?: string }): SyncReport;
  snapshot(): string;
}

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

export interface EtcdMirrorOptions {
  endpoints: string[] | string;
  /** The registry to keep equal to the prefix (a waypost `Registry`). */
  registry: MirroredRegistry;
  prefix?: string;
  /** The source name the instances carry (default "etcd"). */
  source?: string;
  /** The clock handed to the core (default Date.now). */
  now?: () => number;
  timeoutMs?: number;
  /** PEM file of the CA that signed the members' certificates, for https endpoints (Node only; default: the system's CAs). */
  caFile?: string;
  /** Aborting closes the mirror. */
  signal?: AbortSignal;
  onError?: (error: Error) => void;
  onChange?: (report: SyncReport) => void;
  /** Node only: keep the registry's snapshot in this file (temp file + rename). */
  cacheFile?: string;
  /** At most one cache write per this many ms (default 5000). */
  cacheIntervalMs?: number;
  /**
   * Read the range over etcd's gRPC API (node:http2) rather than the JSON
   * gateway: default true in Node; browsers cannot (false).
   */
  grpc?: boolean;
}

export type MirrorStatus = "idle" | "starting" | "synced" | "retrying" | "stopped";

/**
 * Keeps a registry equal to what etcd holds under a prefix: the core names
 * each request (range read, then a streamed watch) and applies each answer;
 * after a failure the next endpoint is asked and the watch resumes from the
 * last applied revision (or everything is read again after a compaction).
 */
export declare class EtcdMirror {
  constructor(options: EtcdMirrorOptions);
  /** Starts mirroring; resolves once the store was read. */
  start(): Promise<this>;
  /** Stops mirroring (the registry keeps what it holds). Safe to call twice. */
  close(): Promise<void>;
  readonly revision: number;
  readonly error: Error | null;
  readonly status: MirrorStatus;
  readonly synced: boolean;
  readonly feeds: number;
  readonly endpoint: string;
  on(type: "change", fn: (report: SyncReport) => void): this;
  on(type: "error", fn: (error: Error) => void): this;
  on(type: "synced", fn: (mirror: EtcdMirror) => void): this;
  off(type: "change" | "error" | "synced", fn: (...args: never[]) => void): this;
}

/** The registry an EtcdMirror cached at `path` (mirror state included), or null when there is none (Node only). */
export declare function restoreCache<R>(Registry: { restore(text: string): R }, path: string): Promise<R | null>;
