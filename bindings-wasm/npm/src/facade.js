// The JavaScript API of waypost over the WebAssembly core.
//
// Every method converts its arguments and makes one call on the core. A
// core call that fails returns a marker (-1, undefined, or a registry that
// `failed`) and keeps its error; `takeError` gives it as `code message`
// text, thrown here as a WaypostError.
// The hot paths move no strings: `pick` gets a small integer slot back and
// maps it to an instance object cached here, rebuilt only when the core says
// its membership changed; `heartbeat` and `reportOutcome` go by handle once
// an id has been seen.
import {
  RegistryCore,
  configKeys,
  version as coreVersion,
} from "./waypost_wasm.js";

// The entry module instantiates the WebAssembly module after this one has
// been evaluated, so nothing here may call into it at load time: the
// configuration keys are read from the core when the first registry is
// made. The name tables below are generated from the core's (make gen).

/** Every strategy name, in the core's code order. */
export const STRATEGIES = Object.freeze([
  // BEGIN GENERATED strategies (make gen: the core's name table)
  "round_robin",
  "random",
  "weighted_random",
  "weighted_round_robin",
  "least_request",
  "consistent_hash",
  "first_available",
  // END GENERATED strategies
]);
/** Every health value, in the core's code order. */
export const HEALTH_VALUES = Object.freeze([
  // BEGIN GENERATED health (make gen: the core's name table)
  "healthy",
  "unhealthy",
  "draining",
  "ejected",
  "degraded",
  // END GENERATED health
]);
// The same, unfrozen, for `discover`'s loop: V8 reads elements of a
// frozen array several times slower (measured: ~4 µs of 1 000 lookups).
const HEALTH_BY_CODE = HEALTH_VALUES.slice();
/** Every error code (SPEC §8). */
export const ERROR_CODES = Object.freeze([
  // BEGIN GENERATED error codes (make gen: the core's name table)
  "invalid_argument",
  "not_found",
  "unknown_service",
  "no_eligible_instance",
  "conflict",
  "invalid_snapshot",
  "compacted",
  // END GENERATED error codes
  "freed",
]);

/** The version of the core this package was built from. */
export function version() {
  return coreVersion();
}

const STRATEGY_CODE = new Map(STRATEGIES.map((name, code) => [name, code]));
let CONFIG_KEYS = null;

function loadTables() {
  CONFIG_KEYS = new Set(configKeys().split(","));
}
const INSTANCE_KEYS = new Map([
  // BEGIN GENERATED instance keys (make gen: the core's instance fields)
  ["id", "id"],
  ["service", "service"],
  ["address", "address"],
  ["port", "port"],
  ["weight", "weight"],
  ["tags", "tags"],
  ["meta", "meta"],
  ["zone", "zone"],
  ["priority", "priority"],
  ["ttlMs", "ttl_ms"],
  ["checkIntervalMs", "check_interval_ms"],
  // END GENERATED instance keys
]);
// Slot and generation packed into one exact number (see RegistryCore.handleOf).
const SLOT_SPAN = 16777216;

/**
 * The error every failing registry call throws: `name` is "WaypostError",
 * `code` one of ERROR_CODES. `instanceof WaypostError` holds for errors made
 * by the core as well as for ones made here.
 */
export class WaypostError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "WaypostError";
    this.code = code;
  }

  static [Symbol.hasInstance](value) {
    return value instanceof Error && value.name === "WaypostError" && typeof value.code === "string";
  }
}

function invalid(field, reason) {
  return new WaypostError("invalid_argument", `invalid argument \`${field}\`: ${reason}`);
}

const utf8 = new TextEncoder();
const none = new Uint8Array(0);

function describe(value) {
  return value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
}

/** `now` in ms: Date.now() when omitted; a number otherwise. */
function time(now) {
  if (now === undefined) return Date.now();
  if (typeof now !== "number") {
    throw new TypeError(`now must be a number of milliseconds, got ${describe(now)}`);
  }
  if (!(now >= 0 && now <= Number.MAX_SAFE_INTEGER)) {
    throw invalid("now", `${now} is not a non-negative, finite number of milliseconds`);
  }
  return Math.floor(now);
}

function text(name, value) {
  if (typeof value !== "string") {
    throw new TypeError(`${name} must be a string, got ${describe(value)}`);
  }
  return value;
}

function flag(name, value) {
  if (typeof value !== "boolean") {
    throw new TypeError(`${name} must be a boolean, got ${describe(value)}`);
  }
  return value;
}

function isRecord(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function record(name, value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError(`${name} must be an object, got ${describe(value)}`);
  }
  return value;
}

function snakeKey(key) {
  return key.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}

function camelKey(key) {
  return key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
}

/** JSON text of a plain value, with JSON's own failures (cycles, BigInt) as TypeError. */
function json(name, value) {
  try {
    return JSON.stringify(value);
  } catch (e) {
    throw new TypeError(`${name} cannot be sent to the registry: ${e.message}`);
  }
}

function strategyCode(strategy) {
  const code = STRATEGY_CODE.get(strategy);
  if (code !== undefined) return code;
  text("strategy", strategy);
  throw invalid("strategy", `unknown strategy \`${strategy}\` (one of ${STRATEGIES.join(", ")})`);
}

/**
 * The filter the core reads, `[tags, metaPairs]` (metadata flattened as
 * key, value, key, value...), or undefined when there is none.
 */
function filterOf(options) {
  const { tags, meta } = options;
  if (tags === undefined && meta === undefined) return undefined;
  // The filter's JSON form for the core, written out here rather than by
  // JSON.stringify, which would honour a caller's toJSON.
  const parts = [];
  if (tags !== undefined) {
    if (!Array.isArray(tags)) {
      throw new TypeError(`tags must be an array of strings, got ${describe(tags)}`);
    }
    if (!tags.every((tag) => typeof tag === "string")) throw invalid("tags", "must be strings");
    parts.push(`"tags":[${tags.map((tag) => JSON.stringify(tag)).join(",")}]`);
  }
  if (meta !== undefined) {
    record("meta", meta);
    const pairs = [];
    for (const key of Object.keys(meta)) {
      const value = meta[key];
      if (typeof value !== "string") throw invalid(`meta.${key}`, "must be a string");
      pairs.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
    }
    parts.push(`"meta":{${pairs.join(",")}}`);
  }
  return `{${parts.join(",")}}`;
}

/** 53 bits of host entropy, for a registry created without a seed. */
function randomSeed() {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  return (words[0] & 0x1fffff) * 4294967296 + words[1];
}

/** A frozen instance object from the core's JSON wire form (`instanceAt`). */
function instanceOf(text) {
  const f = JSON.parse(text);
  // Lists and maps frozen, an unset field null; a field the registry sets
  // (a source-owned instance's `source`, SPEC §10.1) only when it is set.
  return Object.freeze({
    // BEGIN GENERATED instance object (make gen: the core's instance fields)
    id: f.id,
    service: f.service,
    address: f.address,
    port: f.port,
    weight: f.weight,
    tags: Object.freeze(f.tags),
    meta: Object.freeze(f.meta),
    zone: f.zone ?? null,
    priority: f.priority,
    ttlMs: f.ttl_ms ?? null,
    checkIntervalMs: f.check_interval_ms ?? null,
    ...(f.source === undefined ? {} : { source: f.source }),
    // END GENERATED instance object
  });
}

/** The WaypostError of the core's `code message` text (`takeError`). */
function coreError(text) {
  const space = text.indexOf(" ");
  return new WaypostError(text.slice(0, space), text.slice(space + 1));
}

/** A number from the core, or its error thrown when it is -1 (or below). */
function must(core, r) {
  if (r < 0) throw coreError(core.takeError());
  return r;
}

/** A value from the core, or its error thrown when it is undefined. */
function some(core, v) {
  if (v === undefined) throw coreError(core.takeError());
  return v;
}

/** A new core, or its error thrown (the failed core freed). */
function made(core) {
  if (!core.failed()) return core;
  const error = coreError(core.takeError());
  core.free();
  throw error;
}

/** camelCase copy of a JSON object's keys (field names only, never user data). */
/** An instance object (camelCase or snake_case keys) in the wire form's snake_case. */
function wire(name, instance) {
  record(name, instance);
  const snake = {};
  for (const key of Object.keys(instance)) {
    const value = instance[key];
    if (value === undefined) continue;
    snake[INSTANCE_KEYS.get(key) ?? snakeKey(key)] = value;
  }
  return snake;
}

function camelCopy(snake, out = {}) {
  for (const key of Object.keys(snake)) out[camelKey(key)] = snake[key];
  return out;
}

let restoring = null;

/**
 * What a registry holds after `free()`: every use of the core throws the
 * same `WaypostError` (code `freed`) instead of wasm-bindgen's plain
 * "null pointer passed to rust".
 */
const FREED = new Proxy(Object.freeze({}), {
  get() {
    throw new WaypostError("freed", "the registry was freed (free() was called)");
  },
});

/**
 * A service registry: instances, leases, health, balancers, events and
 * snapshots. Every time-dependent method takes `now` in milliseconds as its
 * last argument; when omitted it is Date.now().
 */
export class Registry {
  #core;
  // Caches keyed by slot, valid while the core's membership epoch is the one
  // last acknowledged (the core flags a change on every pick and discover).
  #instances = [];
  #picks = [];
  #panicPicks = [];
  #handles = new Map();
  #refs = new Map();
  #lastService = undefined;
  #lastRef = undefined;
  // The last unfiltered discover answer per service, with the core's
  // discover stamp it was taken at (SPEC §5.4: any change a discover shows
  // moves it).
  #listed = new Map();
  #listedAll = new Map();

  constructor(config = {}) {
    if (restoring !== null) {
      this.#core = restoring;
      restoring = null;
      return;
    }
    record("config", config);
    if (CONFIG_KEYS === null) loadTables();
    const snake = {};
    for (const key of Object.keys(config)) {
      const value = config[key];
      if (value === undefined) continue;
      const name = snakeKey(key);
      if (!CONFIG_KEYS.has(name)) throw invalid(key, "unknown configuration key");
      snake[name] = value;
    }
    if (snake.seed === undefined) snake.seed = randomSeed();
    this.#core = made(new RegistryCore(json("config", snake)));
  }

  /** A registry restored from `snapshot()` text; it behaves exactly as the original. */
  static restore(snapshot) {
    text("snapshot", snapshot);
    restoring = made(RegistryCore.restore(snapshot));
    return new Registry();
  }

  /** The whole registry as a JSON document (`"format": "waypost.snapshot/1"`). */
  snapshot() {
    return this.#core.snapshot();
  }

  /** The configuration in force (camelCase keys). */
  get config() {
    return camelCopy(JSON.parse(this.#core.config()));
  }

  /** Registers an instance, or replaces the fields of the one with its id; returns it. */
  register(instance, now) {
    const snake = wire("instance", instance);
    const t = time(now);
    const slot = must(this.#core, this.#core.register(json("instance", snake), t));
    this.#reset();
    return this.#instance(slot);
  }

  deregister(id, now) {
    must(this.#core, this.#core.deregister(text("id", id), time(now)));
  }

  /** Renews an instance's lease; an expired lease recovers. */
  heartbeat(id, now) {
    text("id", id);
    const t = time(now);
    const h = this.#handle(id);
    if (h >= 0) {
      const slot = h % SLOT_SPAN;
      if (this.#core.heartbeatAt(slot, (h - slot) / SLOT_SPAN, t) === 0) return;
      this.#handles.delete(id);
    }
    must(this.#core, this.#core.heartbeat(id, t));
  }

  /** Puts an instance into maintenance (`on`, the default) or takes it out. */
  drain(id, on = true, now) {
    must(this.#core, this.#core.drain(text("id", id), flag("on", on), time(now)));
  }

  /** Reports an active check result: "pass", "warn" or "fail". */
  reportCheck(id, status, now) {
    must(this.#core, this.#core.reportCheck(text("id", id), text("status", status), time(now)));
  }

  /** Reports the outcome of a call to an instance (outlier detection). */
  reportOutcome(id, success, now) {
    text("id", id);
    flag("success", success);
    const t = time(now);
    const h = this.#handle(id);
    if (h >= 0) {
      const slot = h % SLOT_SPAN;
      if (this.#core.reportOutcomeAt(slot, (h - slot) / SLOT_SPAN, success, t) === 0) return;
      this.#handles.delete(id);
    }
    must(this.#core, this.#core.reportOutcome(id, success, t));
  }

  /** Marks a call to an instance as started (least_request). */
  begin(id, now) {
    must(this.#core, this.#core.begin(text("id", id), time(now)));
  }

  /** Marks a call to an instance as finished. */
  end(id, now) {
    must(this.#core, this.#core.end(text("id", id), time(now)));
  }

  /** The instance with its status. */
  get(id, now) {
    const [slot, stale, status] = JSON.parse(some(this.#core, this.#core.get(text("id", id), time(now))));
    if (stale) this.#reset();
    return camelCopy(status, { instance: this.#instances[slot] ?? this.#instance(slot) });
  }

  /**
   * Picks one instance of `service`. `options` (key, zone, tags, meta) may be
   * left out, and a number in its place is taken as `now`.
   */
  pick(service, strategy = "round_robin", options, now) {
    if (typeof options === "number") {
      now = options;
      options = undefined;
    }
    const code = strategyCode(strategy);
    const t = time(now);
    const core = this.#core;
    // Most callers pick from one service again and again: skip the map then.
    let ref = service === this.#lastService ? this.#lastRef : this.#refs.get(service);
    let r;
    if (ref !== undefined && options === undefined) {
      this.#lastService = service;
      this.#lastRef = ref;
      r = core.pickIndex(ref, code, t);
    } else {
      text("service", service);
      let key, zone, filter;
      if (options !== undefined) {
        record("options", options);
        key = options.key;
        zone = options.zone;
        if (key !== undefined) text("key", key);
        if (zone !== undefined) text("zone", zone);
        filter = filterOf(options);
      }
      if (ref === undefined) {
        r = core.pickNamed(service, code, key, zone, filter, t);
        if (r >= 0) this.#refs.set(service, must(core, core.serviceRef(service)));
      } else {
        r = core.pickWith(ref, code, key, zone, filter, t);
      }
    }
    if (r < 0) throw coreError(core.takeError());
    if (r & 1) this.#reset();
    const slot = r >> 2;
    if (r & 2) return this.#panicPicks[slot] ?? this.#pickResult(slot, true);
    return this.#picks[slot] ?? this.#pickResult(slot, false);
  }

  /**
   * Lists a service's instances in id order: the healthy ones, or with
   * `all: true` every one; `health` is the parallel list of their health.
   */
  discover(service, options, now) {
    if (typeof options === "number") {
      now = options;
      options = undefined;
    }
    text("service", service);
    let all = false;
    let filter;
    if (options !== undefined) {
      record("options", options);
      if (options.all !== undefined) all = flag("all", options.all);
      filter = filterOf(options);
    }
    const t = time(now);
    const memo = filter === undefined ? (all ? this.#listedAll : this.#listed) : undefined;
    let token = -1;
    if (memo !== undefined) {
      token = this.#core.discoverToken(service, t);
      const last = memo.get(service);
      if (last !== undefined && last.token === token) {
        return { instances: last.instances.slice(), health: last.health.slice(), panic: last.panic };
      }
    }
    const out = some(this.#core, this.#core.discover(service, all, filter, t));
    if (out[0] & 2) this.#reset();
    const n = out.length - 1;
    const instances = new Array(n);
    const health = new Array(n);
    const cache = this.#instances;
    for (let i = 0; i < n; i++) {
      const v = out[i + 1];
      const slot = v >>> 3;
      instances[i] = cache[slot] ?? this.#instance(slot);
      health[i] = HEALTH_BY_CODE[v & 7];
    }
    const panic = (out[0] & 1) === 1;
    if (memo !== undefined && token >= 0) {
      memo.set(service, { token, instances, health, panic });
      return { instances: instances.slice(), health: health.slice(), panic };
    }
    return { instances, health, panic };
  }

  /** Advances the clock; returns the events that produced (expiries, evictions…). */
  tick(now) {
    return this.#core.tick(time(now)) === 0 ? [] : JSON.parse(this.#core.takeTickEvents());
  }

  /** The earliest time at which `tick` would change anything, or null. */
  nextDeadline() {
    return this.#core.nextDeadline() ?? null;
  }

  /** Ids of the instances whose active check is due now (each then rescheduled). */
  dueChecks(now) {
    return JSON.parse(this.#core.dueChecks(time(now)));
  }

  /** Retained events with an index above `after`; `compacted` when some were dropped. */
  eventsSince(after = 0) {
    if (typeof after !== "number") throw new TypeError(`after must be a number, got ${describe(after)}`);
    if (!(after >= 0 && after <= Number.MAX_SAFE_INTEGER)) throw invalid("after", `${after} is not a valid event index`);
    return JSON.parse(some(this.#core, this.#core.eventsSince(after)));
  }

  /**
   * Makes `service`'s instances owned by `source` exactly `entries`
   * (instances as `register` takes them, each with an optional `status`:
   * "passing" | "warning" | "critical" | "maintenance"); returns the report
   * `{added, updated, removed, unchanged, held, rejected, resync, changed}`.
   */
  sync(source, service, entries, now) {
    text("source", source);
    text("service", service);
    // The core requires an array and judges each element (a bad one is a
    // rejected record), so only instance objects are converted here.
    const list = Array.isArray(entries) ? entries.map((e) => (isRecord(e) ? wire("entry", e) : e)) : entries;
    const body = json("entries", list);
    return JSON.parse(some(this.#core, this.#core.source(0, source, service, utf8.encode(body), time(now), 0)));
  }

  /** Adds or replaces one entry of `source` (a watch event's put); returns the report. */
  sourcePut(source, entry, now) {
    text("source", source);
    const body = json("entry", wire("entry", entry));
    return JSON.parse(some(this.#core, this.#core.source(1, source, "", utf8.encode(body), time(now), 0)));
  }

  /** Removes one id of `source` (an id it does not hold is a no-op); returns the report. */
  sourceDelete(source, id, now) {
    return JSON.parse(some(this.#core, this.#core.source(2, text("source", source), text("id", id), none, time(now), 0)));
  }

  /** Declares a mirrored source, e.g. `{kind: "etcd", prefix: "/waypost/services"}`. */
  sourceAdd(name, options) {
    some(this.#core, this.#core.source(3, text("name", name), "", utf8.encode(json("options", record("options", options))), 0, 0));
  }

  /** The request to send next for source `name`: `{method, path, body, stream}`. */
  sourceRequest(name) {
    return JSON.parse(some(this.#core, this.#core.source(4, text("name", name), "", none, 0, 0)));
  }

  /**
   * Hands source `name` what its last request brought back (a whole
   * response, or one message of a stream; a string, or bytes: UTF-8 text or
   * a binary answer such as etcd's gRPC range, read by Node's module), with
   * `{status = 200, index}`; returns the report (`resync: true`: the next
   * request reads everything again).
   */
  sourceFeed(name, body, now, { status = 200, index } = {}) {
    text("name", name);
    // Bytes go in as they are: a gRPC answer is binary, and the core
    // checks that a text payload is UTF-8.
    if (typeof body === "string") body = utf8.encode(body);
    else if (!(body instanceof Uint8Array)) throw new TypeError(`body must be a string or bytes, got ${describe(body)}`);
    if (!Number.isInteger(status) || status < 0 || status > 65535) throw invalid("status", `${status} is not an HTTP status`);
    const t = time(now);
    const idx = index === undefined || index === null ? "" : text("index", index);
    return JSON.parse(some(this.#core, this.#core.source(5, name, idx, body, t, status)));
  }

  /** Names of the services that have instances, in byte order. */
  services(now) {
    return JSON.parse(this.#core.services(time(now)));
  }

  /** Index of the last change to a service or any of its instances. */
  serviceModifyIndex(service) {
    return must(this.#core, this.#core.serviceModifyIndex(text("service", service)));
  }

  /** Prometheus text exposition of every metric. */
  renderMetrics() {
    return this.#core.renderMetrics();
  }

  /** Per-service counters and gauges. */
  serviceMetrics() {
    return JSON.parse(this.#core.serviceMetrics()).map(([service, counts, panic, counters]) => {
      const { picks, ...rest } = counters;
      return camelCopy(rest, {
        service,
        instances: Object.fromEntries(HEALTH_VALUES.map((h, i) => [h, counts[i]])),
        panic,
        picks: Object.fromEntries(STRATEGIES.map((s, i) => [s, picks[i]])),
      });
    });
  }

  /** The registry clock: the latest `now` seen. */
  get clock() {
    return this.#core.clock();
  }

  /** Index of the latest event (0 before any). */
  get lastIndex() {
    return this.#core.lastIndex();
  }

  /** Number of registered instances. */
  get size() {
    return this.#core.size();
  }

  /** Whether lease expiries are being held back. */
  get inSelfPreservation() {
    return this.#core.inSelfPreservation();
  }

  /** Changes whenever an instance is added, removed or replaced. */
  get membershipEpoch() {
    return this.#core.membershipEpoch();
  }

  /** Releases the WebAssembly memory now (otherwise the garbage collector does). */
  free() {
    // A second free() is harmless.
    if (this.#core === FREED) return;
    const core = this.#core;
    this.#core = FREED;
    this.#listed.clear();
    this.#listedAll.clear();
    core.free();
  }

  #reset() {
    this.#instances = [];
    this.#picks = [];
    this.#panicPicks = [];
    this.#handles.clear();
    this.#core.ackEpoch();
  }

  #instance(slot) {
    const instance = instanceOf(this.#core.instanceAt(slot));
    this.#instances[slot] = instance;
    return instance;
  }

  #pickResult(slot, panic) {
    const result = Object.freeze({ instance: this.#instances[slot] ?? this.#instance(slot), panic });
    (panic ? this.#panicPicks : this.#picks)[slot] = result;
    return result;
  }

  #handle(id) {
    let h = this.#handles.get(id);
    if (h === undefined) {
      h = this.#core.handleOf(id);
      if (h >= 0) this.#handles.set(id, h);
    }
    return h;
  }
}

// A core for the calls that use no registry state (the Consul registration).
let stateless = null;

function seconds(name, value) {
  if (typeof value !== "number") throw new TypeError(`${name} must be a number of seconds, got ${describe(value)}`);
  return String(value);
}

/**
 * What a Consul registrar sends the agent for `instance` (the instance wire
 * form, camelCase or snake_case, plus an optional `status`) with a TTL check
 * of `ttl` seconds that Consul removes after `deregisterAfter` seconds
 * critical (SPEC §10.4): `{id, service, checkId, body, heartbeatPath,
 * maintenance, deregisterPath, maintenanceOnPath, maintenanceOffPath}`,
 * `body` the text of PUT /v1/agent/service/register. Built by
 * Node's module only (browser.js answers with an error).
 */
export function consulRegistration(instance, ttl, deregisterAfter) {
  const entry = utf8.encode(json("instance", wire("instance", instance)));
  const [a, b] = [seconds("ttl", ttl), seconds("deregisterAfter", deregisterAfter)];
  stateless ??= made(new RegistryCore("{}"));
  return camelCopy(JSON.parse(some(stateless, stateless.source(6, a, b, entry, 0, 0))));
}
