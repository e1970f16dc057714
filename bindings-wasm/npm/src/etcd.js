// waypost/etcd: keep an instance registered in etcd, and mirror etcd into a
// waypost Registry, over the v3 JSON gateway with the built-in fetch.
//
// EtcdRegistrar: the instance's wire form under <prefix>/<service>/<id> with
// a lease, kept alive every TTL/3, registered again when the lease is lost
// (or the key is gone), revoked on close so the instance disappears at once.
// EtcdMirror: the core decides (what to read, where to watch from, when to
// resync); the mirror sends what `sourceRequest` names and hands each answer
// (each message of a watch stream) back with `sourceFeed`.
//
// Several client URLs: a failing one is left for the next. Background
// failures are visible: `error`, `status`, `on("error", fn)` / `onError`.
import { EtcdError, Endpoints, IN_NODE, Listeners, b64, fromB64, sleep } from "./etcd-http.js";
import { MirrorLoop, restoreCache } from "./store-http.js";

export { EtcdError };
export const DEFAULT_PREFIX = "/waypost/services";

function instanceKey(prefix, instance) {
  const { id, service } = instance ?? {};
  if (typeof id !== "string" || id === "" || typeof service !== "string" || service === "") {
    throw new TypeError("instance: needs string `id` and `service` (the instance wire form)");
  }
  if (service.includes("/")) throw new TypeError(`instance: service ${JSON.stringify(service)} must not contain '/'`);
  return `${prefix.replace(/\/+$/, "")}/${service}/${id}`;
}

export class EtcdRegistrar {
  /**
   * @param {{endpoints: string[] | string, instance: object, prefix?: string, ttl?: number,
   *          timeoutMs?: number, signal?: AbortSignal, onError?: (e: Error) => void}} options
   */
  constructor({ endpoints, instance, prefix = DEFAULT_PREFIX, ttl = 10, timeoutMs = 2000, caFile, signal, onError } = {}) {
    if (!Number.isInteger(ttl) || ttl < 1) throw new TypeError("ttl: a whole number of seconds >= 1");
    this.prefix = prefix;
    this.key = instanceKey(prefix, instance);
    this.instance = instance;
    this.value = JSON.stringify(instance);
    this.ttl = ttl;
    this.etcd = new Endpoints(endpoints, timeoutMs, "etcd", { caFile });
    // The registrar's writes to etcd, one after another, so a registration
    // and an update never cross (the last value written is the last given).
    this.writing = Promise.resolve();
    this.leaseId = null;
    this.grantedTtl = null;
    this.registrations = 0;
    this.error = null;
    this.status = "idle";
    this.listeners = new Listeners();
    if (onError) this.on("error", onError);
    this.stopper = new AbortController();
    this.loop = null;
    this.closing = null;
    this.signal = signal;
    this.onAbort = () => { this.close().catch(() => {}); };
    signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  on(type, fn) { this.listeners.on(type, fn); return this; }
  off(type, fn) { this.listeners.off(type, fn); return this; }
  /** The client URL in use now. */
  get endpoint() { return this.etcd.current; }

  async register() {
    const s = this.stopper.signal;
    const grant = await this.etcd.call("/v3/lease/grant", { TTL: this.ttl }, s);
    const ttl = Number(grant.TTL ?? 0);
    if (!grant.ID || ttl <= 0) throw new EtcdError(`etcd ${this.endpoint}: lease grant answered ${JSON.stringify(grant)}`, { endpoint: this.endpoint });
    await this.etcd.call("/v3/kv/put", { key: b64(this.key), value: b64(this.value), lease: grant.ID }, s);
    this.leaseId = String(grant.ID);
    this.grantedTtl = ttl;
    this.registrations += 1;
  }

  /** One keep-alive round: renew; register again when the lease is gone, put the key back when only the key is. */
  async renew() {
    const s = this.stopper.signal;
    if (this.leaseId === null) return this.register();
    const answer = await this.etcd.firstMessage("/v3/lease/keepalive", { ID: this.leaseId }, s);
    if (answer.error) throw new EtcdError(`etcd ${this.endpoint}: keep-alive answered ${JSON.stringify(answer.error)}`, { endpoint: this.endpoint });
    if (Number(answer.result?.TTL ?? 0) <= 0) return this.register();
    const found = await this.etcd.call("/v3/kv/range", { key: b64(this.key), count_only: true }, s);
    if (Number(found.count ?? 0) === 0) {
      await this.etcd.call("/v3/kv/put", { key: b64(this.key), value: b64(this.value), lease: this.leaseId }, s);
    }
  }

  /** Runs `fn` after every write before it. */
  serial(fn) {
    const run = this.writing.then(fn);
    this.writing = run.catch(() => {});
    return run;
  }

  /**
   * Replaces the registered value with `instance` (same id and service, so
   * the same key; its `status` is what mirrors read: "maintenance" drains
   * it) under the registrar's lease, and keeps it: a registration after a
   * lost lease writes this value. Before `start()` or after `close()` it is
   * only kept. When the lease is gone the instance is registered again at
   * once; when no endpoint answers it rejects with EtcdError (the value is
   * kept and the keep-alive loop writes it once etcd answers).
   */
  update(instance) {
    const key = instanceKey(this.prefix, instance);
    if (key !== this.key) return Promise.reject(new TypeError(`instance: update keeps the key ${this.key} (same id and service), got ${key}`));
    const value = JSON.stringify(instance);
    return this.serial(async () => {
      this.instance = instance;
      this.value = value;
      const s = this.stopper.signal;
      if (this.leaseId === null || s.aborted) return;
      const { status } = await this.etcd.request("POST", "/v3/kv/put", JSON.stringify({ key: b64(key), value: b64(value), lease: this.leaseId }), { signal: s });
      if (status !== 200) await this.register(); // etcd refuses a put under a lost lease
    });
  }

  interval() { return Math.max(200, ((this.grantedTtl ?? this.ttl) * 1000) / 3); }

  async run() {
    let delay = this.interval();
    const s = this.stopper.signal;
    for (;;) {
      await sleep(delay, s);
      if (s.aborted) return;
      try {
        await this.serial(() => (s.aborted ? undefined : this.renew()));
        this.error = null;
        this.status = "registered";
        delay = this.interval();
      } catch (e) {
        if (s.aborted) return;
        this.error = e;
        this.status = "retrying";
        this.listeners.emit("error", e);
        delay = Math.min(this.interval(), Math.max(100, delay / 2));
      }
    }
  }

  /** Registers now (rejects with EtcdError when no endpoint answers), then keeps the lease alive. */
  async start() {
    if (this.loop !== null) return this;
    if (this.signal?.aborted) throw new EtcdError("aborted before start");
    await this.serial(() => this.register());
    this.status = "registered";
    this.loop = this.run();
    return this;
  }

  /** Stops the keep-alives and revokes the lease (the key is deleted at once). Safe to call twice. */
  close() {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  async shutdown() {
    this.signal?.removeEventListener("abort", this.onAbort);
    this.stopper.abort();
    const loop = this.loop;
    this.loop = null;
    if (loop !== null) await loop;
    await this.writing;
    const lease = this.leaseId;
    this.leaseId = null;
    if (lease !== null) {
      try {
        await this.etcd.call("/v3/lease/revoke", { ID: lease });
      } catch (e) {
        this.error = e;
      }
    }
    this.status = "stopped";
  }

}

/**
 * Keeps `registry` (a waypost Registry) equal to what etcd holds under
 * `prefix`, as the instances of source `source` (SPEC §10). The core keeps
 * the revision: after a failure the mirror moves to the next endpoint and
 * asks the core again, so the watch resumes from the last applied revision
 * (or everything is read again when the core says resync).
 *
 * `await start()` resolves once the store was read (or rejects when
 * `signal` aborts or `close()` is called first); the mirror carries on
 * until `close()` or the signal. Events: "change" (a report the core marks
 * `changed`: an instance added, updated, removed or held back, or a
 * resync), "error", "synced". With `cacheFile` (Node only) the
 * registry's snapshot is written there after changes (a temporary file,
 * then a rename), at most every `cacheIntervalMs`, and on close;
 * `restoreCache(Registry, path)` gives the registry back, mirror state included.
 *
 * In Node the range is read over etcd's gRPC API (`node:http2`; several
 * times faster than the gateway for a large prefix) unless `grpc: false`;
 * the watch is the gateway's stream either way. Browsers read through the
 * gateway.
 */
export class EtcdMirror extends MirrorLoop {
  constructor({ endpoints, registry, prefix = DEFAULT_PREFIX, source = "etcd", now, timeoutMs = 2000, caFile, signal, onError, onChange,
    cacheFile, cacheIntervalMs, grpc = IN_NODE } = {}) {
    if (registry === undefined || typeof registry.sourceFeed !== "function") throw new TypeError("registry: a waypost Registry");
    const options = grpc ? { kind: "etcd", prefix, grpc: true } : { kind: "etcd", prefix };
    super(new Endpoints(endpoints, timeoutMs, "etcd", { caFile }), { registry, source, options, now, signal, onError, onChange,
      cacheFile, cacheIntervalMs, maxBackoffMs: 2000 });
    this.etcd = this.server;
    this.prefix = prefix;
  }

  makeError(message, extra = {}) {
    return new EtcdError(message, { endpoint: this.endpoint, ...extra });
  }

  /** The etcd revision applied (0 before the first read). */
  get revision() {
    const req = this.registry.sourceRequest(this.source);
    if (!req.stream) return 0;
    return Number(JSON.parse(req.body).create_request?.start_revision ?? 1) - 1;
  }

  async step(signal) {
    const req = this.registry.sourceRequest(this.source);
    // A gRPC call's body is the message's base64.
    const body = req.grpc ? fromB64(req.body) : req.body;
    const answer = await this.etcd.request(req.method, req.path, body, { stream: req.stream, signal, grpc: req.grpc === true });
    if (answer.stream !== undefined) {
      const { stream } = answer;
      return this.watch(stream, (detail, cause) => new EtcdError(`etcd ${stream.endpoint}: ${detail}`,
        { endpoint: stream.endpoint, path: "/v3/watch", cause }), { endIsError: true, okOnResync: true });
    }
    const failed = () => new EtcdError(`etcd ${this.endpoint}: ${req.path} answered HTTP ${answer.status}: ${answer.text.slice(0, 300)}`,
      { endpoint: this.endpoint, path: req.path, status: answer.status });
    let report;
    try {
      report = this.feed(answer.bytes, answer.status);
    } catch (e) {
      if (answer.status === 200) throw e;
      throw failed(); // a failed request the core does not use: name the endpoint
    }
    if (report.resync) return; // e.g. HTTP 410: the core reads everything again
    if (answer.status !== 200) throw failed();
    this.ok();
  }
}

export { restoreCache };
