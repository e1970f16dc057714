// waypost/consul: mirror one Consul service into a waypost Registry over
// blocking health queries, with the built-in fetch. The core names each
// query (`/v1/health/service/<name>?index=N&wait=5m`) and reads each answer
// with its X-Consul-Index; the loop keeps a minimum pace between queries,
// as Consul's documentation asks (an answer is not proof of a change).
import { StoreMirror, EtcdError, restoreCache } from "./etcd.js";

/** A failed call to Consul (the same class as the etcd helpers' error). */
export const ConsulError = EtcdError;
export { restoreCache };

export class ConsulMirror extends StoreMirror {
  /**
   * @param {{endpoints: string[] | string, registry: object, service: string, source?: string,
   *          waitTimeoutMs?: number, minIntervalMs?: number} & object} options
   */
  constructor({ service, source = "consul", waitTimeoutMs = 6 * 60_000, minIntervalMs = 100, ...rest } = {}) {
    if (typeof service !== "string" || service === "") throw new TypeError("service: the Consul service name");
    super({ ...rest, source, options: { kind: "consul", service }, requestTimeoutMs: waitTimeoutMs, indexHeader: "x-consul-index", minIntervalMs });
    this.service = service;
  }
}
