// Hostile input through every entry point of the facade, shared by the Node
// suite (adversarial.test.mjs) and the browser page (browser/adversarial.html,
// in Chromium and Firefox): always a WaypostError or TypeError (or a correct answer), never a trap, and
// the registry (and the WebAssembly instance behind it) works afterwards.
// Snapshots mutated leaf by leaf either restore into a registry that
// snapshots and restores identically and keeps working, or are
// invalid_snapshot. Each check takes the package's exports (the Node or the
// browser entry), throws on the first violation and returns its counts.
// Plain JavaScript with no imports, so a browser loads it as it is.

function check(ok, message) {
  if (!ok) throw new Error(message);
}

function equal(got, want, message) {
  check(got === want, `${message}: got ${String(got).slice(0, 200)}, want ${String(want).slice(0, 200)}`);
}

function refused({ WaypostError }, call, what) {
  try {
    call();
  } catch (e) {
    check(e instanceof WaypostError || e instanceof TypeError, `${what}: ${String(e)}`);
    return;
  }
  throw new Error(`${what} was accepted`);
}

const NUMBERS = [0, -1, 1, 2 ** 31, 2 ** 32, 2 ** 53 + 1, 2 ** 64 - 1, 2 ** 64, NaN, Infinity, -Infinity, 1.5, -0, 1e308, Number.MIN_VALUE, 10n ** 30n];
const WRONG = [null, undefined, "", "1", [], {}, true, Symbol("s"), () => 1, new Uint8Array(4), "\ud800", "x".repeat(1_000_000)];

function fresh({ Registry }) {
  const reg = new Registry({ seed: 9, ttlMs: 1000, evictAfterMs: 2000, panicThreshold: 0.5, consecutiveFailures: 2, slowStartMs: 500 });
  for (let i = 0; i < 6; i++) {
    reg.register({ id: `i${i}`, service: i % 2 ? "api" : "web", address: "10.0.0.1", port: 80 + i, weight: i + 1, tags: ["t"], meta: { k: String(i) }, zone: i < 3 ? "z1" : undefined, checkIntervalMs: i % 3 === 0 ? 200 : undefined }, 0);
  }
  return reg;
}

function works({ Registry }, reg, now) {
  reg.register({ id: "ok", service: "api", address: "h", port: 1 }, now);
  equal(reg.pick("api", "first_available", now).instance.service, "api", "a pick after hostile calls");
  reg.heartbeat("ok", now);
  reg.deregister("ok", now);
  equal(Registry.restore(reg.snapshot()).snapshot(), reg.snapshot(), "a snapshot after hostile calls");
}

function* calls({ Registry }, reg, v) {
  const base = { id: "x", service: "api", address: "h", port: 1 };
  yield () => new Registry(v);
  for (const key of ["ttlMs", "evictAfterMs", "seed", "checkRise", "panicThreshold", "eventRetention", "maxEjectionPercent"]) yield () => new Registry({ [key]: v });
  yield () => reg.register(v, 1);
  for (const key of ["id", "service", "address", "port", "weight", "tags", "meta", "zone", "priority", "ttlMs", "checkIntervalMs"]) yield () => reg.register({ ...base, [key]: v }, 1);
  yield () => reg.register(base, v);
  yield () => reg.deregister(v, 1);
  yield () => reg.heartbeat(v, 1);
  yield () => reg.heartbeat("i0", v);
  yield () => reg.drain(v, true, 1);
  yield () => reg.drain("i0", v, 1);
  yield () => reg.reportCheck("i0", v, 1);
  yield () => reg.reportOutcome("i0", v, 1);
  yield () => reg.begin(v, 1);
  yield () => reg.end("i0", v);
  yield () => reg.get(v, 1);
  yield () => reg.discover(v, 1);
  yield () => reg.discover("api", v, 1);
  yield () => reg.discover("api", { all: v }, 1);
  yield () => reg.discover("api", { tags: v }, 1);
  yield () => reg.discover("api", { meta: v }, 1);
  yield () => reg.pick(v, "random", 1);
  yield () => reg.pick("api", v, 1);
  yield () => reg.pick("api", "random", v, 1);
  for (const key of ["key", "zone", "tags", "meta"]) yield () => reg.pick("api", "consistent_hash", { key: "k", [key]: v }, 1);
  yield () => reg.pick("api", "random", {}, v);
  yield () => reg.tick(v);
  yield () => reg.dueChecks(v);
  yield () => reg.eventsSince(v);
  yield () => reg.services(v);
  yield () => reg.serviceModifyIndex(v);
  yield () => Registry.restore(v);
}

/** Every hostile value in every argument position. */
export function hostileValues(waypost) {
  let tried = 0;
  for (const v of [...NUMBERS, ...WRONG]) {
    const reg = fresh(waypost);
    for (const call of calls(waypost, reg, v)) {
      tried++;
      try {
        call();
      } catch (e) {
        check(e instanceof waypost.WaypostError || e instanceof TypeError, `${String(e)} for ${typeof v}`);
      }
    }
    works(waypost, reg, 2 ** 40);
    reg.free();
  }
  check(tried > 1000, `only ${tried} calls`);
  return { tried };
}

/** Cyclic and 100 000-deep values. */
export function deepAndCyclic(waypost) {
  const reg = fresh(waypost);
  const cyclic = { id: "c", service: "api", address: "h", port: 1 };
  cyclic.meta = cyclic;
  refused(waypost, () => reg.register(cyclic, 1), "a cyclic instance");
  let deep = [];
  for (let i = 0; i < 100_000; i++) deep = [deep];
  refused(waypost, () => reg.register({ id: "d", service: "api", address: "h", port: 1, tags: deep }, 1), "100 000-deep tags");
  works(waypost, reg, 10);
  reg.free();
  return {};
}

function* leaves(doc, path = []) {
  if (doc !== null && typeof doc === "object") {
    for (const [k, v] of Object.entries(doc)) yield* leaves(v, [...path, Array.isArray(doc) ? Number(k) : k]);
  } else {
    yield path;
  }
}

function variants(value) {
  if (typeof value === "boolean") return [!value, 0, null];
  // 2^53 - 1 itself restores, but a registry restored there and then
  // changed writes 2^53, which restore refuses (SPEC §7): stay below it.
  if (typeof value === "number") return [0, value + 1, value - 1, 2 ** 53 - 2 ** 20, 2 ** 53, -1, 1.5, "1", null];
  if (typeof value === "string") return ["", value + "x", "i1", "api", "healthy", "unhealthy", "\u0001", 0, null];
  return [0, "", null];
}

/** Every leaf of a real snapshot replaced by each of its variants. */
export function mutatedSnapshots(waypost) {
  const { Registry, WaypostError } = waypost;
  const reg = fresh(waypost);
  reg.reportOutcome("i1", false, 100);
  reg.reportOutcome("i1", false, 100);
  reg.reportCheck("i0", "warn", 150);
  reg.drain("i2", true, 160);
  reg.begin("i4", 170);
  for (const s of ["round_robin", "weighted_round_robin", "random"]) reg.pick("api", s, 180);
  reg.heartbeat("i3", 900);
  reg.tick(1100);
  const text = reg.snapshot();
  let tried = 0;
  let restored = 0;
  for (const path of leaves(JSON.parse(text))) {
    const probe = JSON.parse(text);
    let at = probe;
    for (const p of path.slice(0, -1)) at = at[p];
    for (const value of variants(at[path.at(-1)])) {
      const doc = JSON.parse(text);
      let target = doc;
      for (const p of path.slice(0, -1)) target = target[p];
      target[path.at(-1)] = value;
      tried++;
      let copy;
      try {
        copy = Registry.restore(JSON.stringify(doc));
      } catch (e) {
        check(e instanceof WaypostError && e.code === "invalid_snapshot", `${path.join(".")}: ${e}`);
        continue;
      }
      restored++;
      equal(Registry.restore(copy.snapshot()).snapshot(), copy.snapshot(), path.join("."));
      works(waypost, copy, 2000);
      copy.free();
    }
  }
  reg.free();
  check(tried > 1500 && restored > 0 && restored < tried, `${restored} of ${tried} restored`);
  return { tried, restored };
}

/** The checks by name, as the Node suite and the browser page run them. */
export const CHECKS = {
  "hostile values in every argument position are typed errors or answers": hostileValues,
  "deep and cyclic structures are refused, not a stack overflow": deepAndCyclic,
  "every leaf of a real snapshot mutated: a sound registry or invalid_snapshot": mutatedSnapshots,
};
