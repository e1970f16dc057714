// One HTTP(S) server (a Consul agent, a Kubernetes API server), and the
// loop every mirror (etcd, Consul, Kubernetes) runs. Internal to
// waypost/etcd, waypost/consul and waypost/k8s. Calls go through `send`
// (node:http/node:https in Node, fetch elsewhere).
import { Listeners, Stream, send, sleep, unary } from "./etcd-http.js";

export { Listeners, sleep };

/** A failed call to the store: `endpoint` names the server, `path` the call. */
export class StoreError extends Error {
  constructor(message, { endpoint = "", path = "", status = 0, cause, name = "StoreError" } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = name;
    this.endpoint = endpoint;
    this.path = path;
    this.status = status;
  }
}

function describe(e) {
  const cause = e?.cause;
  return cause?.code ?? cause?.message ?? e?.message ?? String(e);
}

/**
 * `base` (http://host:port or https://…; a bare host:port is http), extra
 * `headers()` on every call (a function, so a rotated token is read again),
 * `ca` (PEM text) for https.
 */
export class Server {
  constructor(base, { defaultPort, headers = () => ({}), ca, timeoutMs = 5000, what = "server", errorName = "StoreError" }) {
    const url = new URL(base.includes("://") ? base : `http://${base}`);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`${what} address ${base}: expected http://host:port or https://host:port`);
    if (url.port === "") url.port = String(defaultPort);
    this.url = url.origin;
    this.headers = headers;
    this.ca = ca;
    this.timeoutMs = timeoutMs;
    this.what = what;
    this.errorName = errorName;
  }

  /** The server's URL. */
  get current() { return this.url; }

  error(message, extra = {}) {
    return new StoreError(message, { endpoint: this.url, name: this.errorName, ...extra });
  }

  /**
   * Sends one call. Resolves to `{status, headers, text}`, or for a 200
   * streamed answer `{status, stream}`. `signal` aborts it (a close);
   * `timeoutMs` covers a unary call whole, a streamed one until its headers.
   */
  async request(method, path, { body = "", stream = false, signal, timeoutMs = this.timeoutMs } = {}) {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort(); // closed before this call began: it ends at once
    const timer = setTimeout(() => controller.abort(new Error("timed out")), timeoutMs);
    let keep = false;
    try {
      const init = {
        method, body: body === "" ? undefined : body, signal: controller.signal,
        headers: { accept: "application/json", ...(body === "" ? {} : { "content-type": "application/json" }), ...this.headers() },
      };
      const res = await send(this.url + path, init, this.url.startsWith("https:") ? this.ca : undefined);
      if (stream && res.status === 200) {
        clearTimeout(timer);
        keep = true;
        return { status: 200, stream: new Stream(res, controller, this.url, () => signal?.removeEventListener("abort", onAbort)) };
      }
      return await unary(res);
    } catch (e) {
      if (signal?.aborted) throw this.error(`${this.what} ${this.url}: ${method} ${path}: closed`, { path, cause: e });
      throw this.error(`${this.what} ${this.url}: ${method} ${path}: ${controller.signal.aborted ? "timed out" : describe(e)}`, { path, cause: e });
    } finally {
      clearTimeout(timer);
      if (!keep) signal?.removeEventListener("abort", onAbort);
    }
  }
}

/**
 * The loop every mirror runs: ask the core (`sourceRequest`), send with
 * `server` (one server, or etcd's endpoints with failover), feed each answer
 * or streamed message back (`sourceFeed`), obey the report, back off on
 * failures (at most `maxBackoffMs`). `error`/`status`/events, `start()`
 * resolving once synced, `close()` and the `signal` option. With
 * `cacheFile` (Node only) the registry's snapshot is written there after
 * changes (a temporary file, then a rename), at most every
 * `cacheIntervalMs`, and on close; `restoreCache` gives it back.
 * A subclass gives `step(signal)`, and may give `makeError(message, extra)`.
 */
export class MirrorLoop {
  constructor(server, { registry, source, options, now = Date.now, signal, onError, onChange, cacheFile,
    cacheIntervalMs = 5000, maxBackoffMs = 5000 }) {
    if (registry === undefined || typeof registry.sourceFeed !== "function") throw new TypeError("registry: a waypost Registry");
    this.server = server;
    this.registry = registry;
    this.source = source;
    this.options = options;
    this.now = now;
    this.cacheFile = cacheFile;
    this.cacheIntervalMs = cacheIntervalMs;
    this.maxBackoffMs = maxBackoffMs;
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
  /** The server URL in use now. */
  get endpoint() { return this.server.current; }

  makeError(message, extra = {}) { return this.server.error(message, extra); }

  feed(body, status, index) {
    const report = this.registry.sourceFeed(this.source, body, this.now(), index === undefined || index === null ? { status } : { status, index });
    this.feeds += 1;
    if (report.changed) {
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

  /**
   * Feeds each message of `stream` until the core says resync, the stream
   * ends (an error with `endIsError`) or the mirror stops; `broke(detail,
   * cause)` makes the error. With `okOnResync` a message that asks for a
   * resync still marks the mirror in sync.
   */
  async watch(stream, broke, { endIsError = false, okOnResync = false } = {}) {
    const s = this.stopper.signal;
    try {
      for (;;) {
        let line;
        try {
          line = await stream.next();
        } catch (e) {
          if (s.aborted) return;
          throw broke(`watch stream broke: ${e?.cause?.code ?? e?.message ?? e}`, e);
        }
        if (s.aborted) return;
        if (line === null) {
          if (endIsError) throw broke("watch stream ended");
          return; // ended by the server: watch again from where it stood
        }
        const report = this.feed(line, 200);
        if (okOnResync || !report.resync) this.ok();
        if (report.resync) return;
      }
    } finally {
      stream.close();
    }
  }

  async run() {
    let backoff = 100;
    const s = this.stopper.signal;
    while (!s.aborted) {
      try {
        await this.step(s);
        backoff = 100;
      } catch (e) {
        if (s.aborted) return;
        this.error = e;
        this.status = "retrying";
        this.listeners.emit("error", e);
        await sleep(backoff, s);
        backoff = Math.min(this.maxBackoffMs, backoff * 2);
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
      if (this.signal?.aborted) return Promise.reject(this.makeError("aborted before start"));
      try {
        this.registry.sourceRequest(this.source); // declared already (e.g. a restored snapshot or cache)
      } catch (e) {
        if (e?.code !== "invalid_argument") throw e;
        this.registry.sourceAdd(this.source, this.options);
      }
      this.status = "starting";
      this.loop = this.run();
      if (this.cacheFile !== undefined) this.scheduleCache();
    }
    return this.syncedPromise;
  }

  /** Stops mirroring: the call in flight is aborted; the registry keeps what it holds; the cache is written a last time. Safe to call twice. */
  close() {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  async shutdown() {
    this.signal?.removeEventListener("abort", this.onAbort);
    this.stopper.abort();
    clearTimeout(this.cacheTimer);
    if (!this.synced) this.rejectSynced(this.makeError("closed before the store was read"));
    const loop = this.loop;
    if (loop !== null) {
      await loop;
      if (this.cacheFile !== undefined) await this.writeCache();
    }
    this.status = "stopped";
  }
}

/** The registry a mirror cached at `path` (mirror state included), or null when there is none. */
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
