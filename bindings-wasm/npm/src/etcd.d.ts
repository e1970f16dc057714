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

export interface EtcdRegistrarOptions {
  /** etcd client URLs, tried in turn. */
  endpoints: string[] | string;
  instance: InstanceWire;
  prefix?: string;
  /** Lease TTL in whole seconds (default 10); etcd may raise it: see `grantedTtl`. */
  ttl?: number;
  /** Per request, until the headers (default 2000). */
  timeoutMs?: number;
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
  /** Registers now (rejects with EtcdError when no endpoint answers), then keeps the lease alive. */
  start(): Promise<this>;
  /** Stops the keep-alives and revokes the lease. Safe to call twice. */
  close(): Promise<void>;
  on(type: "error", fn: (error: Error) => void): this;
  off(type: "error", fn: (error: Error) => void): this;
}
