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
import { EtcdError, Endpoints, Listeners, b64, sleep } from "./etcd-http.js";

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
  constructor({ endpoints, instance, prefix = DEFAULT_PREFIX, ttl = 10, timeoutMs = 2000, signal, onError } = {}) {
    if (!Number.isInteger(ttl) || ttl < 1) throw new TypeError("ttl: a whole number of seconds >= 1");
    this.key = instanceKey(prefix, instance);
    this.value = JSON.stringify(instance);
    this.ttl = ttl;
    this.etcd = new Endpoints(endpoints, timeoutMs);
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

  interval() { return Math.max(200, ((this.grantedTtl ?? this.ttl) * 1000) / 3); }

  async run() {
    let delay = this.interval();
    const s = this.stopper.signal;
    for (;;) {
      await sleep(delay, s);
      if (s.aborted) return;
      try {
        await this.renew();
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
    await this.register();
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
 * until `close()` or the signal. Events: "change" (a report that changed
 * something), "error", "synced". With `cacheFile` (Node only) the
 * registry's snapshot is written there after changes (a temporary file,
 * then a rename), at most every `cacheIntervalMs`, and on close;
 * `restoreCache(Registry, path)` gives the registry back, mirror state included.
 */
export class StoreMirror {
  constructor({ endpoints, registry, source, options, now = Date.now, timeoutMs = 2000, requestTimeoutMs, indexHeader,
    minIntervalMs = 0, signal, onError, onChange, cacheFile, cacheIntervalMs = 5000 } = {}) {
    if (registry === undefined || typeof registry.sourceFeed !== "function") throw new TypeError("registry: a waypost Registry");
    this.options = options;
    this.requestTimeoutMs = requestTimeoutMs;
    this.indexHeader = indexHeader;
    this.minIntervalMs = minIntervalMs;
    this.etcd = new Endpoints(endpoints, timeoutMs, options.kind);
    this.registry = registry;
    this.source = source;
    this.now = now;
    this.cacheFile = cacheFile;
    this.cacheIntervalMs = cacheIntervalMs;
    this.error = null;
    this.status = "idle";
    this.synced = false;
    this.feeds = 0;
    this.listeners = new Listeners();
    if (onError) this.on("error", onError);
    if (onChange) this.on("change", onChange);
    this.stopper = new AbortController();
    this.loop = null;
    this.closing = null;
    this.dirty = false;
    this.cacheTimer = null;
    this.signal = signal;
    this.onAbort = () => { this.close().catch(() => {}); };
    signal?.addEventListener("abort", this.onAbort, { once: true });
    let resolve;
    let reject;
    this.syncedPromise = new Promise((res, rej) => { resolve = res; reject = rej; });
    this.syncedPromise.catch(() => {});
    this.resolveSynced = resolve;
    this.rejectSynced = reject;
  }

  on(type, fn) { this.listeners.on(type, fn); return this; }
  off(type, fn) { this.listeners.off(type, fn); return this; }
  /** The client URL in use now. */
  get endpoint() { return this.etcd.current; }

  declare() {
    try {
      this.registry.sourceRequest(this.source); // declared already (e.g. a restored cache)
    } catch (e) {
      if (e?.code !== "invalid_argument") throw e;
      this.registry.sourceAdd(this.source, this.options);
    }
  }

  feed(body, status, index) {
    const report = this.registry.sourceFeed(this.source, body, this.now(), { status, index });
    this.feeds += 1;
    if (report.added || report.updated || report.removed || report.resync) {
      this.dirty = true;
      this.listeners.emit("change", report);
    }
    return report;
  }

  ok() {
    this.error = null;
    this.status = "synced";
    if (!this.synced) {
      this.synced = true;
      this.resolveSynced(this);
      this.listeners.emit("synced", this);
    }
  }

  async watch(stream) {
    try {
      for (;;) {
        let line;
        try {
          line = await stream.next();
        } catch (e) {
          if (this.stopper.signal.aborted) return;
          throw new EtcdError(`etcd ${stream.endpoint}: watch stream broke: ${e?.cause?.code ?? e?.message ?? e}`, { endpoint: stream.endpoint, path: "/v3/watch", cause: e });
        }
        if (this.stopper.signal.aborted) return;
        if (line === null) throw new EtcdError(`etcd ${stream.endpoint}: watch stream ended`, { endpoint: stream.endpoint, path: "/v3/watch" });
        const report = this.feed(line, 200);
        this.ok();
        if (report.resync) return;
      }
    } finally {
      stream.close();
    }
  }

  async step() {
    const req = this.registry.sourceRequest(this.source);
    const started = Date.now();
    const answer = await this.etcd.request(req.method, req.path, req.body,
      { stream: req.stream, signal: this.stopper.signal, timeoutMs: req.stream ? undefined : this.requestTimeoutMs });
    if (answer.stream !== undefined) return this.watch(answer.stream);
    const index = this.indexHeader === undefined ? undefined : answer.headers?.get(this.indexHeader) ?? undefined;
    const failed = () => new EtcdError(`${this.etcd.store} ${this.endpoint}: ${req.path} answered HTTP ${answer.status}: ${answer.text.slice(0, 300)}`,
      { endpoint: this.endpoint, path: req.path, status: answer.status });
    let report;
    try {
      report = this.feed(answer.text, answer.status, index);
    } catch (e) {
      if (answer.status === 200) throw e;
      throw failed(); // a failed request the core does not use: name the endpoint
    }
    // A blocking query may answer at once without a change: keep a minimum pace.
    if (this.minIntervalMs > 0) await sleep(this.minIntervalMs - (Date.now() - started), this.stopper.signal);
    if (report.resync) return; // e.g. HTTP 410: the core reads everything again
    if (answer.status !== 200) throw failed();
    this.ok();
  }

  async run() {
    let backoff = 100;
    const s = this.stopper.signal;
    while (!s.aborted) {
      try {
        await this.step();
        backoff = 100;
      } catch (e) {
        if (s.aborted) return;
        this.error = e;
        this.status = "retrying";
        this.listeners.emit("error", e);
        await sleep(backoff, s);
        backoff = Math.min(2000, backoff * 2);
      }
    }
  }

  async writeCache() {
    const { writeFile, rename, unlink } = await import("node:fs/promises");
    const text = this.registry.snapshot();
    const tmp = `${this.cacheFile}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, text);
      await rename(tmp, this.cacheFile);
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw e;
    }
  }

  scheduleCache() {
    this.cacheTimer = setTimeout(async () => {
      if (this.dirty) {
        this.dirty = false;
        try { await this.writeCache(); } catch (e) { this.error = e; this.listeners.emit("error", e); }
      }
      if (!this.stopper.signal.aborted) this.scheduleCache();
    }, this.cacheIntervalMs);
  }

  /** Starts mirroring; resolves once the store was read. */
  start() {
    if (this.loop === null) {
      if (this.signal?.aborted) return Promise.reject(new EtcdError("aborted before start"));
      this.declare();
      this.status = "starting";
      this.loop = this.run();
      if (this.cacheFile !== undefined) this.scheduleCache();
    }
    return this.syncedPromise;
  }

  /** Stops mirroring (the registry keeps what it holds) and writes the cache a last time. Safe to call twice. */
  close() {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  async shutdown() {
    this.signal?.removeEventListener("abort", this.onAbort);
    this.stopper.abort();
    clearTimeout(this.cacheTimer);
    if (!this.synced) this.rejectSynced(new EtcdError("closed before the store was read", { endpoint: this.endpoint }));
    const loop = this.loop;
    if (loop !== null) {
      await loop;
      if (this.cacheFile !== undefined) await this.writeCache();
    }
    this.status = "stopped";
  }
}

export class EtcdMirror extends StoreMirror {
  constructor({ prefix = DEFAULT_PREFIX, source = "etcd", ...rest } = {}) {
    super({ ...rest, source, options: { kind: "etcd", prefix } });
    this.prefix = prefix;
  }

  /** The etcd revision applied (0 before the first read). */
  get revision() {
    const req = this.registry.sourceRequest(this.source);
    if (!req.stream) return 0;
    return Number(JSON.parse(req.body).create_request?.start_revision ?? 1) - 1;
  }
}

/** The registry an EtcdMirror cached at `path` (mirror state included), or null when there is none. */
export async function restoreCache(Registry, path) {
  const { readFile } = await import("node:fs/promises");
  let text;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if (e?.code === "ENOENT") return null;
    throw e;
  }
  return Registry.restore(text);
}
