// waypost/consul: mirror one Consul service into a waypost Registry over
// blocking health queries, with the built-in fetch.
import type { EtcdError, EtcdMirrorOptions, MirrorStatus, SyncReport } from "./etcd.js";

export { restoreCache } from "./etcd.js";

/** A failed call to Consul (the same class as the etcd helpers' error). */
export declare const ConsulError: typeof EtcdError;

export interface ConsulMirrorOptions extends Omit<EtcdMirrorOptions, "prefix"> {
  /** The Consul service to mirror. */
  service: string;
  /** The longest a blocking query may take (default 6 min; the core asks for wait=5m). */
  waitTimeoutMs?: number;
  /** The least time between two queries (default 100 ms). */
  minIntervalMs?: number;
}

/**
 * Keeps a registry equal to Consul's health answer for one service: the core
 * names each blocking query and reads each answer with its X-Consul-Index.
 */
export declare class ConsulMirror {
  constructor(options: ConsulMirrorOptions);
  readonly service: string;
  start(): Promise<this>;
  close(): Promise<void>;
  readonly error: Error | null;
  readonly status: MirrorStatus;
  readonly synced: boolean;
  readonly endpoint: string;
  on(type: "change", fn: (report: SyncReport) => void): this;
  on(type: "error", fn: (error: Error) => void): this;
  on(type: "synced", fn: (mirror: ConsulMirror) => void): this;
}
