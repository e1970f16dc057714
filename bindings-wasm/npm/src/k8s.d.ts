// waypost/k8s: mirror one Kubernetes service's EndpointSlices into a
// waypost Registry, by list + watch with the built-in fetch.

/** Where a pod finds its token, CA and namespace. */
export declare const SERVICE_ACCOUNT_DIR: "/var/run/secrets/kubernetes.io/serviceaccount";

/** A failed call to the API server: `endpoint` names it, `path` the call. */
export declare class KubernetesError extends Error {
  readonly name: "KubernetesError";
  readonly endpoint: string;
  readonly path: string;
  /** The HTTP status when the server answered, else 0. */
  readonly status: number;
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

/** What a mirror needs of a waypost `Registry`. */
export interface MirroredRegistry {
  sourceAdd(name: string, options: { kind: "k8s"; namespace: string; service: string; port: string }): void;
  sourceRequest(name: string): { method: string; path: string; body: string; stream: boolean };
  sourceFeed(name: string, body: string | Uint8Array, now?: number, options?: { status?: number; index?: string }): SyncReport;
}

export type MirrorStatus = "idle" | "starting" | "synced" | "retrying" | "stopped";

export interface K8sMirrorOptions {
  /** The API server (default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT). */
  apiServer?: string;
  registry: MirroredRegistry;
  /** Default: the pod's namespace (the service account's `namespace` file). */
  namespace?: string;
  service: string;
  /** The port's name; "" (default) takes each slice's first port. */
  port?: string;
  /** Bearer token (default: the service account's token file, read on every request). */
  token?: string;
  /** PEM CA file for https (default: the service account's ca.crt when present). */
  caFile?: string;
  /** The source name the instances carry (default "k8s"). */
  source?: string;
  serviceAccountDir?: string;
  now?: () => number;
  timeoutMs?: number;
  /** Aborting closes the mirror. */
  signal?: AbortSignal;
  onError?: (error: Error) => void;
  onChange?: (report: SyncReport) => void;
}

/** Keeps a registry equal to one service's EndpointSlices: list, then watch; list again on 410. */
export declare class K8sMirror {
  constructor(options: K8sMirrorOptions);
  start(): Promise<this>;
  close(): Promise<void>;
  /** Where the next watch starts (null: the next request lists). */
  readonly resourceVersion: string | null;
  readonly namespace: string;
  /** How many lists were sent. */
  readonly lists: number;
  readonly error: Error | null;
  readonly status: MirrorStatus;
  readonly synced: boolean;
  readonly feeds: number;
  readonly endpoint: string;
  on(type: "change", fn: (report: SyncReport) => void): this;
  on(type: "error", fn: (error: Error) => void): this;
  on(type: "synced", fn: (mirror: K8sMirror) => void): this;
  off(type: "change" | "error" | "synced", fn: (...args: never[]) => void): this;
}

/** `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`. */
export declare function inClusterApiServer(): string;
