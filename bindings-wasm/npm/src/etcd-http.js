// The etcd v3 JSON gateway (node:http/node:https in Node, fetch in
// browsers), with failover across several client URLs. Internal to
// waypost/etcd.

/** A call to etcd failed: `endpoint` names the member(s) asked, `path` the call. */
export class EtcdError extends Error {
  constructor(message, { endpoint = "", path = "", status = 0, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "EtcdError";
    this.endpoint = endpoint;
    this.path = path;
    this.status = status;
  }
}

const encoder = new TextEncoder();

/** Base64 of a string's UTF-8 bytes. */
export function b64(text) {
  let bin = "";
  for (const byte of encoder.encode(text)) bin += String.fromCharCode(byte);
  return btoa(bin);
}

/** The bytes base64 `text` stands for. */
export function fromB64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** The `range_end` of a prefix read: the prefix with its last byte + 1. */
export function prefixEnd(prefix) {
  const raw = encoder.encode(prefix);
  if (raw.length === 0 || raw[raw.length - 1] === 0xff) throw new TypeError(`prefix ${JSON.stringify(prefix)} cannot end a range`);
  raw[raw.length - 1] += 1;
  let bin = "";
  for (const byte of raw) bin += String.fromCharCode(byte);
  return btoa(bin);
}

function describe(e) {
  const cause = e?.cause;
  return cause?.code ?? cause?.message ?? e?.message ?? String(e);
}

/** Sleeps `ms`, or less when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => { clearTimeout(timer); signal?.removeEventListener("abort", done); resolve(); };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * An open streamed answer: `next()` resolves to the next message (one line
 * of text), or null when the stream ended.
 */
export class Stream {
  constructor(res, controller, endpoint, cleanup = () => {}) {
    this.cleanup = cleanup;
    this.reader = res.body.getReader();
    this.decoder = new TextDecoder();
    this.controller = controller;
    this.endpoint = endpoint;
    this.buffer = "";
  }

  async next() {
    for (;;) {
      const nl = this.buffer.indexOf("\n");
      if (nl >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (line.trim() !== "") return line;
        continue;
      }
      const { value, done } = await this.reader.read();
      if (done) {
        const rest = this.buffer.trim();
        this.buffer = "";
        return rest === "" ? null : rest;
      }
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }

  close() {
    this.cleanup();
    this.controller.abort();
    this.reader.cancel().catch(() => {});
  }
}

export const IN_NODE = typeof process !== "undefined" && typeof process.versions?.node === "string";

/**
 * One call, answered in fetch's shape: in Node through node:http or
 * node:https (with `ca`, PEM text, as the trusted CA when given), on a
 * connection of its own that an abort destroys at once, whatever it was
 * doing (fetch can neither take a CA nor close a connection it is still
 * opening: it stays open after the abort); elsewhere with fetch.
 */
export async function send(url, init, ca) {
  if (!IN_NODE) return fetch(url, init);
  const { method, headers, body, signal } = init;
  const lib = url.startsWith("https:") ? await import("node:https") : await import("node:http");
  const { Readable } = await import("node:stream");
  return new Promise((resolve, reject) => {
    const req = lib.request(url, { method, headers, ca, signal, agent: false }, (res) => {
      const web = Readable.toWeb(res);
      resolve({
        status: res.statusCode,
        headers: { get: (k) => { const v = res.headers[k.toLowerCase()]; return Array.isArray(v) ? v[0] : v ?? null; } },
        body: web,
        text: async () => { let s = ""; const d = new TextDecoder(); for await (const c of web) s += d.decode(c, { stream: true }); return s + d.decode(); },
        bytes: async () => { const parts = []; for await (const c of web) parts.push(c); return Buffer.concat(parts); },
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * One gRPC unary call (Node only: browsers cannot make one) on an HTTP/2
 * connection of its own, closed afterwards: `message` is the request's
 * bytes, length prefix included; resolves to the answer's DATA bytes as
 * they came (prefix included: the core checks and strips it). A failed
 * call (an HTTP status other than 200, a `grpc-status` other than 0, a
 * reset stream, no connection) rejects. `signal` aborts it.
 */
export async function grpcUnary(url, path, message, { signal, ca } = {}) {
  const http2 = await import("node:http2");
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, ca === undefined ? {} : { ca });
    let settled = false;
    const finish = (error, value) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      session.destroy();
      if (error) reject(error);
      else resolve(value);
    };
    const onAbort = () => finish(signal.reason ?? new Error("aborted"));
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) return onAbort();
    // The code and the words: "UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to
    // verify the first certificate", "ECONNREFUSED: connect …".
    const failed = (e) => finish(new Error(e.code && !e.message.startsWith(e.code) ? `${e.code}: ${e.message}` : e.message));
    session.on("error", failed);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    const chunks = [];
    let head = {};
    let tail = {};
    req.on("response", (h) => { head = h; });
    req.on("trailers", (t) => { tail = t; });
    req.on("data", (c) => chunks.push(c));
    req.on("error", failed);
    req.on("end", () => {
      const grpcStatus = tail["grpc-status"] ?? head["grpc-status"];
      if (head[":status"] !== 200) return finish(new Error(`HTTP ${head[":status"]}`));
      if (grpcStatus !== undefined && grpcStatus !== "0") {
        const detail = decodeURIComponent(tail["grpc-message"] ?? head["grpc-message"] ?? "");
        return finish(new Error(`gRPC status ${grpcStatus}${detail ? `: ${detail}` : ""}`));
      }
      finish(null, Buffer.concat(chunks));
    });
    req.end(message);
  });
}

/**
 * A unary answer as the helpers keep it: the body's bytes as they came (the
 * core reads UTF-8 bytes, so a mirror feeds them on without decoding and
 * encoding them again: ~2 ms of a 10 000-key range) and its text when
 * something asks (an error message, a JSON answer of the helper's own).
 */
export async function unary(res) {
  const bytes = res.bytes ? await res.bytes() : new Uint8Array(await res.arrayBuffer());
  let text;
  return { status: res.status, headers: res.headers, bytes, get text() { return (text ??= new TextDecoder().decode(bytes)); } };
}

/**
 * Client URLs tried in turn: a call goes to the current one and moves to
 * the next when it cannot connect, times out or answers 5xx. An https URL
 * is verified against `caFile` (PEM; Node only), or the system's CAs.
 */
export class Endpoints {
  constructor(endpoints, timeoutMs = 2000, store = "etcd", { caFile } = {}) {
    this.caFile = caFile;
    this.caText = null;
    this.store = store;
    const list = typeof endpoints === "string" ? [endpoints] : [...(endpoints ?? [])];
    if (list.length === 0) throw new TypeError("endpoints: give at least one etcd client URL");
    this.urls = list.map((e) => {
      const url = new URL(e.includes("://") ? e : `http://${e}`);
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`etcd endpoint ${e}: expected http://host:port or https://host:port`);
      return url.origin;
    });
    this.timeoutMs = timeoutMs;
    this.index = 0;
  }

  get current() { return this.urls[this.index]; }

  /** The CA file's text, read once. */
  ca() {
    this.caText ??= import("node:fs/promises").then(({ readFile }) => readFile(this.caFile, "utf8"));
    return this.caText;
  }

  /**
   * Sends one request to the first member that answers below 500. Resolves
   * to `{status, bytes, text}`, or for a 200 streamed answer `{status,
   * stream}`. With `grpc`, `body` is the message's bytes and the call is a
   * gRPC unary call (a member whose call fails counts as one that did not
   * answer). `signal` aborts everything (a close); the timeout applies until
   * the headers arrive (and to the whole body of a unary call).
   */
  async request(method, path, body, { stream = false, signal, timeoutMs = this.timeoutMs, grpc = false } = {}) {
    const failures = [];
    for (let k = 0; k < this.urls.length; k += 1) {
      const i = (this.index + k) % this.urls.length;
      const url = this.urls[i];
      const controller = new AbortController();
      const onAbort = () => controller.abort();
      signal?.addEventListener("abort", onAbort, { once: true });
      if (signal?.aborted) onAbort(); // closed before this call began: it ends at once
      const timer = setTimeout(() => controller.abort(new Error("timed out")), timeoutMs);
      let keep = false;
      try {
        const ca = this.caFile !== undefined && url.startsWith("https:") ? await this.ca() : undefined;
        if (grpc) {
          const bytes = await grpcUnary(url, path, body, { signal: controller.signal, ca });
          this.index = i;
          return { status: 200, bytes, get text() { return ""; } };
        }
        const init = { method, body: body === "" ? undefined : body, signal: controller.signal, headers: { "content-type": "application/json" } };
        const res = await send(url + path, init, ca);
        if (res.status >= 500) {
          const detail = (await res.text()).slice(0, 500).trim();
          failures.push(`${url}: HTTP ${res.status} ${detail}`);
          continue;
        }
        this.index = i;
        if (stream && res.status === 200) {
          keep = true;
          return { status: res.status, stream: new Stream(res, controller, url, () => signal?.removeEventListener("abort", onAbort)) };
        }
        return await unary(res);
      } catch (e) {
        if (signal?.aborted) throw new EtcdError(`etcd ${url}: ${path}: closed`, { endpoint: url, path, cause: e });
        failures.push(`${url}: ${controller.signal.aborted ? "timed out" : describe(e)}`);
      } finally {
        clearTimeout(timer);
        if (!keep) signal?.removeEventListener("abort", onAbort);
      }
    }
    throw new EtcdError(`${this.store} unreachable (${method} ${path}): ${failures.join("; ")}`, { endpoint: this.urls.join(", "), path });
  }

  /** A unary gateway call that must succeed: the decoded answer. */
  async call(path, body, signal) {
    const { status, text } = await this.request("POST", path, JSON.stringify(body), { signal });
    if (status !== 200) throw new EtcdError(`etcd ${this.current}: ${path} answered HTTP ${status}: ${text.slice(0, 500)}`, { endpoint: this.current, path, status });
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new EtcdError(`etcd ${this.current}: ${path} answered invalid JSON`, { endpoint: this.current, path, status, cause: e });
    }
  }

  /** The first message of a streamed call (a lease keep-alive); the stream is then closed. */
  async firstMessage(path, body, signal) {
    const answer = await this.request("POST", path, JSON.stringify(body), { stream: true, signal });
    if (answer.stream === undefined) throw new EtcdError(`etcd ${this.current}: ${path} answered HTTP ${answer.status}: ${answer.text.slice(0, 500)}`, { endpoint: this.current, path, status: answer.status });
    const { stream } = answer;
    const timer = setTimeout(() => stream.close(), this.timeoutMs);
    try {
      const line = await stream.next();
      if (line === null) throw new Error("stream ended");
      return JSON.parse(line);
    } catch (e) {
      throw new EtcdError(`etcd ${stream.endpoint}: ${path}: ${describe(e)}`, { endpoint: stream.endpoint, path, cause: e });
    } finally {
      clearTimeout(timer);
      stream.close();
    }
  }
}

/** A tiny listener list: `on(type, fn)`, `off(type, fn)`, `emit(type, value)`. */
export class Listeners {
  constructor() { this.map = new Map(); }
  on(type, fn) {
    if (!this.map.has(type)) this.map.set(type, new Set());
    this.map.get(type).add(fn);
  }
  off(type, fn) { this.map.get(type)?.delete(fn); }
  emit(type, value) {
    for (const fn of this.map.get(type) ?? []) {
      try { fn(value); } catch { /* a failing listener must not stop the helper */ }
    }
  }
}
