// waypost/consul: mirror one Consul service into a waypost Registry through
// blocking queries, and keep an instance registered with the local agent,
// over Consul's HTTP API with the built-in fetch.
//
// ConsulMirror: the core decides (the path, the index rules, the mapping);
// the mirror sends what `sourceRequest` names and hands each answer back
// with its X-Consul-Index. Consul asks clients to rate-limit this loop (an
// answer is not proof of change; an index going backwards makes the next
// query return at once): two requests start at least `minIntervalMs` apart.
// ConsulRegistrar: PUT /v1/agent/service/register with a TTL check and
// DeregisterCriticalServiceAfter, the check passed every TTL/3, registered
// again when the agent forgot it, deregistered on close.
import { MirrorLoop, Server, StoreError, Listeners, sleep } from "./store-http.js";

export const DEFAULT_ADDRESS = "http://127.0.0.1:8500";
// The core asks for wait=5m; Consul adds up to wait/16 of jitter.
const BLOCKING_READ_MS = 5 * 60 * 1000 * (1 + 1 / 16) + 30_000;

/** A failed call to Consul (`endpoint`, `path`, `status`). */
export class ConsulError extends StoreError {
  constructor(message, extra = {}) { super(message, { ...extra, name: "ConsulError" }); }
}

function server(address, token, timeoutMs) {
  const env = typeof process === "undefined" ? {} : process.env;
  const base = address ?? env.CONSUL_HTTP_ADDR ?? DEFAULT_ADDRESS;
  const tok = token ?? env.CONSUL_HTTP_TOKEN;
  const headers = tok ? { "x-consul-token": tok } : {};
  const s = new Server(base, { defaultPort: 8500, headers: () => headers, timeoutMs, what: "consul", errorName: "ConsulError" });
  s.error = (message, extra = {}) => new ConsulError(message, { endpoint: s.url, ...extra });
  return s;
}

/**
 * Keeps `registry` equal to what Consul's health endpoint says about
 * `service`, as the instances of source `source` (default "consul"; several
 * mirrors in one registry need different names). `await start()` resolves
 * once read; events "change", "error", "synced"; `close()` or `signal` stops it.
 */
export class ConsulMirror extends MirrorLoop {
  constructor({ address, registry, service, source = "consul", token, now, timeoutMs = 5000, minIntervalMs = 1000,
    signal, onError, onChange } = {}) {
    if (typeof service !== "string" || service === "") throw new TypeError("service: the Consul service name");
    super(server(address, token, timeoutMs), { registry, source, options: { kind: "consul", service }, now, signal, onError, onChange });
    this.service = service;
    this.minIntervalMs = minIntervalMs;
    this.lastStart = null;
  }

  /** The X-Consul-Index the next query waits on (0: none). */
  get index() {
    const m = /[?&]index=(\d+)/.exec(this.registry.sourceRequest(this.source).path);
    return m === null ? 0 : Number(m[1]);
  }

  async step(signal) {
    if (this.lastStart !== null) await sleep(Math.max(0, this.lastStart + this.minIntervalMs - Date.now()), signal);
    this.lastStart = Date.now();
    if (signal.aborted) return;
    const req = this.registry.sourceRequest(this.source);
    const blocking = req.path.includes("index=");
    const answer = await this.server.request(req.method, req.path, { body: req.body, signal, timeoutMs: blocking ? BLOCKING_READ_MS : undefined });
    if (signal.aborted) return;
    try {
      this.feed(answer.text, answer.status, answer.headers.get("x-consul-index") ?? undefined);
    } catch (e) {
      if (answer.status === 200) throw e;
      throw new ConsulError(`consul ${this.endpoint}: ${req.path} answered HTTP ${answer.status}: ${answer.text.slice(0, 300).trim()}`,
        { endpoint: this.endpoint, path: req.path, status: answer.status, cause: e });
    }
    this.ok();
  }
}

function registration(instance, ttl, deregisterAfter) {
  const { id, service } = instance ?? {};
  if (typeof id !== "string" || id === "" || typeof service !== "string" || service === "") {
    throw new TypeError("instance: needs string `id` and `service` (the instance wire form)");
  }
  const body = {
    ID: id, Name: service, Address: instance.address ?? "", Port: instance.port ?? 0,
    Tags: [...(instance.tags ?? [])], Meta: { ...(instance.meta ?? {}) },
    Weights: { Passing: instance.weight ?? 1, Warning: 1 },
    Check: { CheckID: `service:${id}`, Name: `waypost TTL for ${id}`, TTL: `${ttl}s`, Status: "passing", DeregisterCriticalServiceAfter: `${deregisterAfter}s` },
  };
  if (instance.zone) body.Locality = { Zone: instance.zone };
  return JSON.stringify(body);
}

/**
 * Registers `instance` (the wire form) with the agent at `address` and
 * keeps its TTL check passing every `ttl`/3 seconds until `close()`, which
 * deregisters it. Consul removes an instance whose check stayed critical
 * for `deregisterAfter` seconds (a process that died without closing).
 */
export class ConsulRegistrar {
  constructor({ address, instance, ttl = 10, deregisterAfter = 60, token, timeoutMs = 2000, signal, onError } = {}) {
    if (!Number.isInteger(ttl) || ttl < 1) throw new TypeError("ttl: a whole number of seconds >= 1");
    if (!Number.isInteger(deregisterAfter) || deregisterAfter < 1) throw new TypeError("deregisterAfter: a whole number of seconds >= 1");
    this.body = registration(instance, ttl, deregisterAfter);
    this.id = instance.id;
    this.ttl = ttl;
    this.server = server(address, token, timeoutMs);
    this.registrations = 0;
    this.heartbeats = 0;
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
  get endpoint() { return this.server.url; }

  async put(path, body = "", signal = this.stopper.signal) {
    const answer = await this.server.request("PUT", path, { body, signal });
    if (answer.status !== 200 && answer.status !== 404) {
      throw new ConsulError(`consul ${this.endpoint}: PUT ${path} answered HTTP ${answer.status}: ${answer.text.slice(0, 300).trim()}`,
        { endpoint: this.endpoint, path, status: answer.status });
    }
    return answer.status;
  }

  async register() {
    const path = "/v1/agent/service/register";
    if (await this.put(path, this.body) !== 200) throw new ConsulError(`consul ${this.endpoint}: PUT ${path} answered HTTP 404`, { endpoint: this.endpoint, path, status: 404 });
    this.registrations += 1;
  }

  async beat() {
    if (await this.put(`/v1/agent/check/pass/service:${encodeURIComponent(this.id)}`) === 404) await this.register();
    this.heartbeats += 1;
  }

  async run() {
    const interval = Math.max(100, (this.ttl * 1000) / 3);
    let delay = interval;
    const s = this.stopper.signal;
    for (;;) {
      await sleep(delay, s);
      if (s.aborted) return;
      try {
        await this.beat();
        this.error = null;
        this.status = "registered";
        delay = interval;
      } catch (e) {
        if (s.aborted) return;
        this.error = e;
        this.status = "retrying";
        this.listeners.emit("error", e);
        delay = Math.max(100, Math.min(interval, delay / 2));
      }
    }
  }

  /** Registers now (rejects with ConsulError on failure), then heartbeats. */
  async start() {
    if (this.loop !== null) return this;
    if (this.signal?.aborted) throw new ConsulError("aborted before start");
    await this.register();
    this.status = "registered";
    this.loop = this.run();
    return this;
  }

  /** Stops the heartbeats and deregisters the instance. Safe to call twice. */
  close() {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  async shutdown() {
    this.signal?.removeEventListener("abort", this.onAbort);
    this.stopper.abort();
    const loop = this.loop;
    this.loop = null;
    if (loop === null) return;
    await loop;
    try {
      // null, not undefined: the stopper has aborted, and this call must still go out.
      await this.put(`/v1/agent/service/deregister/${encodeURIComponent(this.id)}`, "", null);
    } catch (e) {
      this.error = e;
    }
    this.status = "stopped";
  }
}
