// Runs one scenario document (SPEC §9, tests/scenarios/README.md) through the
// public JavaScript API and returns its transcript: one plain object per
// step, the same fields as the Rust reference runner. Used by Node and by
// the browser page (Chromium and Firefox), so it touches no Node API.

const camel = (key) => key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

function camelObject(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) out[camel(k)] = v;
  return out;
}

function str(step, key) {
  const v = step[key];
  if (typeof v !== "string") throw new Error(`step needs string \`${key}\`: ${JSON.stringify(step)}`);
  return v;
}

function filterOf(step) {
  const f = {};
  if (step.tags !== undefined) f.tags = step.tags;
  if (step.meta !== undefined) f.meta = step.meta;
  return f;
}

class Runner {
  constructor(api, config) {
    this.api = api;
    this.reg = new api.Registry(config);
    this.lastEvent = 0;
  }

  run(step, at) {
    const reg = this.reg;
    const op = str(step, "op");
    const out = {};
    switch (op) {
      case "register":
        if (step.instance === undefined) throw new Error("register needs instance");
        reg.register(camelObject(step.instance), at);
        break;
      case "deregister":
        reg.deregister(str(step, "id"), at);
        break;
      case "heartbeat":
        reg.heartbeat(str(step, "id"), at);
        break;
      case "begin":
        reg.begin(str(step, "id"), at);
        break;
      case "end":
        reg.end(str(step, "id"), at);
        break;
      case "check":
        reg.reportCheck(str(step, "id"), str(step, "status"), at);
        break;
      case "outcome":
        if (typeof step.success !== "boolean") throw new Error("outcome needs success");
        reg.reportOutcome(str(step, "id"), step.success, at);
        break;
      case "drain":
        reg.drain(str(step, "id"), typeof step.on === "boolean" ? step.on : true, at);
        break;
      case "tick":
        out.events = reg.tick(at);
        break;
      case "discover": {
        const found = reg.discover(str(step, "service"), { all: step.all === true, ...filterOf(step) }, at);
        out.ids = found.instances.map((i) => i.id);
        out.health = found.health;
        out.panic = found.panic;
        break;
      }
      case "pick":
      case "picks": {
        const options = filterOf(step);
        if (typeof step.key === "string") options.key = step.key;
        if (typeof step.zone === "string") options.zone = step.zone;
        const service = str(step, "service");
        const strategy = str(step, "strategy");
        if (op === "pick") {
          const pick = reg.pick(service, strategy, options, at);
          out.id = pick.instance.id;
          out.panic = pick.panic;
        } else {
          const count = typeof step.count === "number" ? step.count : 1;
          const prefix = typeof step.key_prefix === "string" ? step.key_prefix : undefined;
          const ids = [];
          for (let i = 0; i < count; i++) {
            if (prefix !== undefined) options.key = `${prefix}${i}`;
            ids.push(reg.pick(service, strategy, options, at).instance.id);
          }
          out.ids = ids;
        }
        break;
      }
      case "events": {
        const events = reg.eventsSince(this.lastEvent);
        if (events.length > 0) this.lastEvent = events[events.length - 1].index;
        out.events = events;
        break;
      }
      case "get": {
        const state = reg.get(str(step, "id"), at);
        out.id = state.instance.id;
        out.service = state.instance.service;
        out.health = state.health;
        out.modify_index = state.modifyIndex;
        out.inflight = state.inflight;
        if (state.instance.source !== undefined) {
          out.source = state.instance.source;
          out.held = state.held ?? false;
        }
        break;
      }
      case "services":
        out.services = reg.services(at);
        break;
      case "due_checks":
        out.ids = reg.dueChecks(at);
        break;
      case "snapshot_restore": {
        const text = reg.snapshot();
        this.reg = this.api.Registry.restore(text);
        reg.free();
        break;
      }
      case "sync":
        out.report = reg.sync(str(step, "source"), str(step, "service"), step.entries, at);
        break;
      case "source_put":
        out.report = reg.sourcePut(str(step, "source"), step.entry, at);
        break;
      case "source_delete":
        out.report = reg.sourceDelete(str(step, "source"), str(step, "id"), at);
        break;
      case "source_add":
        reg.sourceAdd(str(step, "name"), step.options);
        break;
      case "source_request":
        out.request = reg.sourceRequest(str(step, "name"));
        break;
      case "source_feed":
      case "etcd_range":
      case "etcd_watch":
      case "consul_health":
      case "k8s_slices": {
        const payload = op === "source_feed" ? step.body : step.payload;
        // A binary payload (a gRPC answer) comes as `body_base64`.
        const body = typeof step.body_base64 === "string"
          ? Uint8Array.from(atob(step.body_base64), (c) => c.charCodeAt(0))
          : payloadText(payload);
        out.report = reg.sourceFeed(step.name ?? FEED_NAMES[op], body, at, { status: step.status ?? 200, index: step.index });
        break;
      }
      case "k8s_watch": {
        const body = Array.isArray(step.payload) ? step.payload.map(payloadText).join("\n") : payloadText(step.payload);
        out.report = reg.sourceFeed(step.name ?? "k8s", body, at, { status: step.status ?? 200 });
        break;
      }
      default:
        throw new Error(`unknown op \`${op}\``);
    }
    return out;
  }
}

/** The feed ops and the source each defaults to. */
const FEED_NAMES = { source_feed: "etcd", etcd_range: "etcd", etcd_watch: "etcd", consul_health: "consul", k8s_slices: "k8s" };

/** A feed payload as the core reads it: a string as it is, any other JSON value written out. */
function payloadText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function equal(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function checkExpect(name, i, expect, line) {
  const ctx = `${name} step ${i}: got ${JSON.stringify(line)}`;
  const fail = (what) => {
    throw new Error(`${ctx}: ${what}`);
  };
  if (expect.error !== undefined) {
    if (line.ok) fail(`expected error ${expect.error}`);
    if (line.error !== expect.error) fail(`expected error ${expect.error}`);
  } else if (!line.ok) {
    fail("expected success");
  }
  for (const [key, want] of Object.entries(expect)) {
    switch (key) {
      case "error":
      case "tolerance":
        break;
      case "ids":
      case "id":
      case "health":
      case "panic":
      case "services":
      case "source":
      case "held":
        if (!equal(line[key], want)) fail(`\`${key}\` is not ${JSON.stringify(want)}`);
        break;
      case "report":
      case "request":
        for (const [field, value] of Object.entries(want)) {
          if (!equal(line[key]?.[field], value)) fail(`\`${key}.${field}\` is not ${JSON.stringify(value)}`);
        }
        break;
      case "events": {
        const got = line.events;
        if (got.length !== want.length) fail(`number of events is not ${want.length}`);
        want.forEach((w, j) => {
          for (const [field, value] of Object.entries(w)) {
            if (!equal(got[j][field], value)) fail(`event field \`${field}\` of ${JSON.stringify(w)}`);
          }
        });
        break;
      }
      case "counts": {
        const counts = {};
        for (const id of line.ids) counts[id] = (counts[id] ?? 0) + 1;
        const wantCounts = Object.fromEntries(Object.entries(want).filter(([, v]) => v > 0));
        const sorted = (o) => JSON.stringify(Object.keys(o).sort().map((k) => [k, o[k]]));
        if (sorted(counts) !== sorted(wantCounts)) fail(`counts are not ${JSON.stringify(want)}`);
        break;
      }
      case "shares": {
        const tolerance = typeof expect.tolerance === "number" ? expect.tolerance : 0.05;
        for (const [id, share] of Object.entries(want)) {
          const got = line.ids.filter((x) => x === id).length / line.ids.length;
          if (Math.abs(got - share) > tolerance) fail(`share of ${id} is ${got}, want ${share}±${tolerance}`);
        }
        break;
      }
      default:
        fail(`unknown expectation \`${key}\``);
    }
  }
}

/**
 * The features `doc` requires (its `requires` list) that the module behind
 * `api` lacks: the browser's module is built without the etcd gRPC reader
 * and refuses the option, so a runner there skips such a file.
 */
export function missingFeatures(api, doc) {
  const probes = {
    "etcd-grpc": (reg) => reg.sourceAdd("probe", { kind: "etcd", grpc: true }),
  };
  return (doc.requires ?? []).filter((feature) => {
    const probe = probes[feature];
    if (probe === undefined) return true;
    const reg = new api.Registry({ seed: 0 });
    try {
      probe(reg);
      return false;
    } catch (e) {
      if (!(e instanceof api.WaypostError)) throw e;
      return true;
    } finally {
      reg.free();
    }
  });
}

/**
 * Runs `doc` (a parsed scenario file) with `api` (the waypost module) and
 * returns the transcript lines; throws when a step's expectation fails.
 */
export function runScenario(api, name, doc) {
  const config = camelObject(doc.config ?? {});
  if (config.seed === undefined) config.seed = 0;
  const runner = new Runner(api, config);
  let at = 0;
  const transcript = [];
  doc.steps.forEach((step, i) => {
    if (typeof step.at === "number") at = step.at;
    const line = { step: i, op: str(step, "op") };
    try {
      Object.assign(line, { ok: true }, runner.run(step, at));
    } catch (e) {
      if (!(e instanceof api.WaypostError)) throw e;
      for (const k of Object.keys(line)) if (k !== "step" && k !== "op") delete line[k];
      line.ok = false;
      line.error = e.code;
    }
    if (step.expect !== undefined) checkExpect(name, i, step.expect, line);
    else if (!line.ok) throw new Error(`${name} step ${i}: ${JSON.stringify(line)}`);
    transcript.push(line);
  });
  runner.reg.free();
  return transcript;
}
