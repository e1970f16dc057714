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
// again when the agent forgot it, deregistered on close. The core builds
// the registration (`consulRegistration`: the body, the heartbeat,
// maintenance on or off and the paths that turn it, the deregister), so
// every language sends the same bytes; it
// needs Node's module. `update(instance)` changes it in place; its `status`
// maps the way the core reads it back (SPEC §10.4): warning / critical
// become the TTL check's status (every heartbeat keeps it), maintenance the
// agent's service maintenance mode.
import { consulRegistration } from "waypost";
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
      this.feed(answer.bytes, answer.status, answer.headers.get("x-consul-index") ?? undefined);
    } catch (e) {
      if (answer.status === 200) throw e;
      throw new ConsulError(`consul ${this.endpoint}: ${req.path} answered HTTP ${answer.status}: ${answer.text.slice(0, 300).trim()}`,
        { endpoint: this.endpoint, path: req.path, status: answer.status, cause: e });
    }
    this.ok();
  }
}

/**
 * Registers `instance` (the wire form) with the agent at `address` and
 * keeps its TTL check passing every `ttl`/3 seconds until `close()`, which
 * deregisters it. Consul removes an instance whose check stayed critical
 * for `deregisterAfter` seconds (a process that died without closing).
 *
 * `update(instance)` changes the registration in place (a drain is
 * `update({ ...instance, status: "maintenance" })`); the instance's `status`
 * (default "passing") maps as the core's Consul reader reads it back:
 * "warning" and "critical" are the TTL check's status, which every later
 * heartbeat keeps (warn / fail instead of pass); "maintenance" turns on the
 * agent's maintenance mode for the service (reason "waypost: maintenance"), a
 * later other status turns it off. Every later registration sends the
 * updated instance.
 */
export class ConsulRegistrar {
  constructor({ address, instance, ttl = 10, deregisterAfter = 60, token, timeoutMs = 2000, signal, onError } = {}) {
    // The core judges the instance, its status and the durations.
    this.registration = consulRegistration(instance, ttl, deregisterAfter);
    this.id = this.registration.id;
    this.service = this.registration.service;
    this.instance = instance;
    this.ttl = ttl;
    this.deregisterAfter = deregisterAfter;
    // The registrar's writes to the agent, one after another, so a
    // registration, a heartbeat and an update never cross (the last
    // instance written is the last one given).
    this.writing = Promise.resolve();
    this.registered = false; // started and not closed
    this.maintenance = false; // maintenance mode turned on
    this.stale = false; // an update not yet all sent
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

  async must(path, body = "") {
    if (await this.put(path, body) !== 200) throw new ConsulError(`consul ${this.endpoint}: PUT ${path} answered HTTP 404`, { endpoint: this.endpoint, path, status: 404 });
  }

  /**
   * Registers the instance as it is now: the registration, the check's
   * status (an agent that knew the check keeps its old one), maintenance
   * mode on, or off when it was on (a registration anew may have dropped
   * it: turned on again). Until all of it went through, the next heartbeat
   * does it again. Runs inside `serial`.
   */
  async register() {
    this.stale = true;
    await this.must("/v1/agent/service/register", this.registration.body);
    this.registrations += 1;
    await this.must(this.registration.heartbeatPath);
    const want = this.registration.maintenance;
    if (want || this.maintenance) {
      await this.must(want ? this.registration.maintenanceOnPath : this.registration.maintenanceOffPath);
      this.maintenance = want;
    }
    this.stale = false;
  }

  async beat() {
    if (this.stale || await this.put(this.registration.heartbeatPath) === 404) await this.register();
    this.heartbeats += 1;
  }

  /** Runs `fn` after every write before it. */
  serial(fn) {
    const run = this.writing.then(fn);
    this.writing = run.catch(() => {});
    return run;
  }

  /**
   * Replaces the registration with `instance` (same id and service; its
   * `status` maps as the class says: "maintenance" drains it) and keeps it:
   * heartbeats keep its check status and a registration after the agent
   * forgot it sends this instance. Before `start()` or after `close()` it
   * is only kept. Rejects with ConsulError when the agent cannot be reached
   * or refuses (the instance is kept and the heartbeat loop sends it once
   * the agent answers).
   */
  update(instance) {
    let registration;
    try {
      registration = consulRegistration(instance, this.ttl, this.deregisterAfter);
    } catch (e) {
      return Promise.reject(e);
    }
    if (registration.id !== this.id || registration.service !== this.service) {
      return Promise.reject(new TypeError(`instance: update keeps the id ${JSON.stringify(this.id)} and service ${JSON.stringify(this.service)}, ` +
        `got ${JSON.stringify(registration.id)} in ${JSON.stringify(registration.service)}`));
    }
    return this.serial(async () => {
      this.instance = instance;
      this.registration = registration;
      if (!this.registered || this.stopper.signal.aborted) return;
      await this.register();
    });
  }

  async run() {
    const interval = Math.max(100, (this.ttl * 1000) / 3);
    let delay = interval;
    const s = this.stopper.signal;
    for (;;) {
      await sleep(delay, s);
      if (s.aborted) return;
      try {
        await this.serial(() => (s.aborted ? undefined : this.beat()));
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
    await this.serial(async () => {
      await this.register();
      this.registered = true;
    });
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
    await this.writing;
    this.registered = false;
    try {
      // null, not undefined: the stopper has aborted, and this call must still go out.
      await this.put(this.registration.deregisterPath, "", null);
    } catch (e) {
      this.error = e;
    }
    this.status = "stopped";
  }
}
