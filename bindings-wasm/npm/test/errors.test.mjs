// Errors: real Error objects with name "WaypostError" and the SPEC §8 code;
// TypeError for a bad argument type; and no call whatsoever leaves the
// registry (or the WebAssembly instance behind it) unusable.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Registry, WaypostError, ERROR_CODES } from "../dist/node.js";
import { RegistryCore } from "../dist/waypost_wasm.js";

function fresh() {
  const reg = new Registry({ ttlMs: 10_000, seed: 5, eventRetention: 4 });
  reg.register({ id: "a", service: "api", address: "10.0.0.1", port: 80 }, 0);
  reg.register({ id: "b", service: "api", address: "10.0.0.2", port: 80 }, 0);
  return reg;
}

/** The registry still answers every kind of call correctly. */
function assertUsable(reg) {
  const t = reg.clock;
  reg.register({ id: "probe", service: "probe", address: "h", port: 1 }, t);
  assert.equal(reg.pick("probe", "round_robin", t).instance.id, "probe");
  assert.equal(reg.pick("probe", "random", { tags: [] }, t).instance.id, "probe");
  assert.deepEqual(reg.discover("probe", t).instances.map((i) => i.id), ["probe"]);
  reg.heartbeat("probe", t);
  reg.reportOutcome("probe", true, t);
  assert.equal(reg.get("probe", t).health, "healthy");
  reg.deregister("probe", t);
  assert.equal(Registry.restore(reg.snapshot()).size, reg.size);
}

const cyclic = { id: "c", service: "api", address: "h", port: 1 };
cyclic.self = cyclic;

// [description, call, expected: a code string or TypeError]
const BAD_CALLS = [
  ["id of the wrong type", (r) => r.heartbeat(42, 1), TypeError],
  ["missing id", (r) => r.deregister(undefined, 1), TypeError],
  ["now as a string", (r) => r.heartbeat("a", "1000"), TypeError],
  ["now as a BigInt", (r) => r.tick(10n), TypeError],
  ["now negative", (r) => r.tick(-1), "invalid_argument"],
  ["now NaN", (r) => r.pick("api", "random", NaN), "invalid_argument"],
  ["now infinite", (r) => r.discover("api", Infinity), "invalid_argument"],
  ["instance not an object", (r) => r.register("a", 1), TypeError],
  ["instance null", (r) => r.register(null, 1), TypeError],
  ["instance with a cycle", (r) => r.register(cyclic, 1), TypeError],
  ["instance with a BigInt port", (r) => r.register({ id: "x", service: "s", address: "h", port: 1n }, 1), TypeError],
  ["port of the wrong type", (r) => r.register({ id: "x", service: "s", address: "h", port: "80" }, 1), "invalid_argument"],
  ["port 0", (r) => r.register({ id: "x", service: "s", address: "h", port: 0 }, 1), "invalid_argument"],
  ["port too large", (r) => r.register({ id: "x", service: "s", address: "h", port: 70000 }, 1), "invalid_argument"],
  ["weight 0", (r) => r.register({ id: "x", service: "s", address: "h", port: 1, weight: 0 }, 1), "invalid_argument"],
  ["fractional weight", (r) => r.register({ id: "x", service: "s", address: "h", port: 1, weight: 1.5 }, 1), "invalid_argument"],
  ["empty id", (r) => r.register({ id: "", service: "s", address: "h", port: 1 }, 1), "invalid_argument"],
  ["id too long", (r) => r.register({ id: "x".repeat(300), service: "s", address: "h", port: 1 }, 1), "invalid_argument"],
  ["control character", (r) => r.register({ id: "x\n", service: "s", address: "h", port: 1 }, 1), "invalid_argument"],
  ["unknown instance field", (r) => r.register({ id: "x", service: "s", address: "h", port: 1, colour: "red" }, 1), "invalid_argument"],
  ["too many tags", (r) => r.register({ id: "x", service: "s", address: "h", port: 1, tags: Array.from({ length: 65 }, (_, i) => `t${i}`) }, 1), "invalid_argument"],
  ["tag of the wrong type", (r) => r.register({ id: "x", service: "s", address: "h", port: 1, tags: [1] }, 1), "invalid_argument"],
  ["ttl over a day", (r) => r.register({ id: "x", service: "s", address: "h", port: 1, ttlMs: 86_400_001 }, 1), "invalid_argument"],
  ["id in another service", (r) => r.register({ id: "a", service: "other", address: "h", port: 1 }, 1), "conflict"],
  ["unknown id", (r) => r.heartbeat("nope", 1), "not_found"],
  ["unknown id, outcome", (r) => r.reportOutcome("nope", false, 1), "not_found"],
  ["unknown id, get", (r) => r.get("nope", 1), "not_found"],
  ["unknown id, drain", (r) => r.drain("nope", true, 1), "not_found"],
  ["unknown id, begin", (r) => r.begin("nope", 1), "not_found"],
  ["end without begin on unknown id", (r) => r.end("nope", 1), "not_found"],
  ["drain flag of the wrong type", (r) => r.drain("a", "yes", 1), TypeError],
  ["success of the wrong type", (r) => r.reportOutcome("a", 1, 1), TypeError],
  ["bad check status", (r) => r.reportCheck("a", "maybe", 1), "invalid_argument"],
  ["check status of the wrong type", (r) => r.reportCheck("a", 1, 1), TypeError],
  ["unknown service", (r) => r.pick("nope", "random", 1), "unknown_service"],
  ["unknown service, discover", (r) => r.discover("nope", 1), "unknown_service"],
  ["malformed service name", (r) => r.pick("", "random", 1), "invalid_argument"],
  ["service of the wrong type", (r) => r.pick(7, "random", 1), TypeError],
  ["unknown strategy", (r) => r.pick("api", "fastest", 1), "invalid_argument"],
  ["strategy of the wrong type", (r) => r.pick("api", 3, {}, 1), TypeError],
  ["consistent_hash without key", (r) => r.pick("api", "consistent_hash", 1), "invalid_argument"],
  ["key of the wrong type", (r) => r.pick("api", "consistent_hash", { key: 5 }, 1), TypeError],
  ["zone too long", (r) => r.pick("api", "random", { zone: "z".repeat(200) }, 1), "invalid_argument"],
  ["tags not an array", (r) => r.pick("api", "random", { tags: "v1" }, 1), TypeError],
  ["tag not a string", (r) => r.discover("api", { tags: [1] }, 1), "invalid_argument"],
  ["meta value not a string", (r) => r.pick("api", "random", { meta: { k: 1 } }, 1), "invalid_argument"],
  ["options not an object", (r) => r.discover("api", "all", 1), TypeError],
  ["all of the wrong type", (r) => r.discover("api", { all: 1 }, 1), TypeError],
  ["no eligible instance", (r) => r.pick("api", "random", { tags: ["gpu"] }, 1), "no_eligible_instance"],
  ["events compacted", (r) => { for (let i = 0; i < 6; i++) r.drain("a", i % 2 === 0, 1); r.eventsSince(0); }, "compacted"],
  ["event index of the wrong type", (r) => r.eventsSince("0"), TypeError],
  ["snapshot not JSON", (r) => Registry.restore("{not json"), "invalid_snapshot"],
  ["snapshot of another format", (r) => Registry.restore('{"format":"other/1"}'), "invalid_snapshot"],
  ["snapshot of the wrong type", (r) => Registry.restore(42), TypeError],
  ["service index of an unknown service", (r) => r.serviceModifyIndex("nope"), "unknown_service"],
  ["config not an object", () => new Registry(5), TypeError],
  ["unknown config key", () => new Registry({ ttl: 5 }), "invalid_argument"],
  ["config out of range", () => new Registry({ ttlMs: 0 }), "invalid_argument"],
  ["config of the wrong type", () => new Registry({ panicThreshold: "high" }), "invalid_argument"],
  ["negative seed", () => new Registry({ seed: -1 }), "invalid_argument"],
];

for (const [what, call, expected] of BAD_CALLS) {
  test(`bad call: ${what}`, () => {
    const reg = fresh();
    let thrown;
    try {
      call(reg);
    } catch (e) {
      thrown = e;
    }
    assert.ok(thrown !== undefined, "the call must throw");
    assert.ok(thrown instanceof Error, "a real Error");
    if (expected === TypeError) {
      assert.ok(thrown instanceof TypeError, `TypeError, got ${thrown}`);
    } else {
      assert.ok(thrown instanceof WaypostError, `WaypostError, got ${thrown}`);
      assert.equal(thrown.name, "WaypostError");
      assert.equal(thrown.code, expected);
      assert.ok(ERROR_CODES.includes(thrown.code));
      assert.ok(thrown.message.length > 0);
      assert.equal(typeof thrown.stack, "string");
    }
    assertUsable(reg);
  });
}

test("every bad call in a row on one registry leaves it usable", () => {
  const reg = fresh();
  for (const [, call] of BAD_CALLS) {
    assert.throws(() => call(reg));
  }
  assertUsable(reg);
});

test("messages name the field or id at fault", () => {
  const reg = fresh();
  assert.throws(() => reg.register({ id: "x", service: "s", address: "h", port: 1, weight: 0 }, 1), /weight/);
  assert.throws(() => reg.heartbeat("ghost", 1), /ghost/);
  assert.throws(() => reg.pick("ghosts", "random", 1), /ghosts/);
  assert.throws(() => new Registry({ evictAfterMs: -5 }), /evict_after_ms/);
});

test("WaypostError can be made and recognised from JavaScript too", () => {
  const e = new WaypostError("not_found", "instance `x` not found");
  assert.ok(e instanceof WaypostError && e instanceof Error);
  assert.equal(e.name, "WaypostError");
  assert.equal(e.code, "not_found");
  assert.ok(!(new Error("plain") instanceof WaypostError));
});

test("a freed registry throws instead of trapping, and others live on", () => {
  const a = fresh();
  const b = fresh();
  a.free();
  assert.throws(() => a.pick("api", "random", 1), Error);
  assertUsable(b);
});

test("every call on a freed registry is a WaypostError with code freed, and free() twice is harmless", () => {
  const a = fresh();
  a.free();
  a.free();
  const calls = [
    () => a.pick("api", "random", undefined, 1),
    () => a.register({ id: "x", service: "api", address: "h", port: 1 }, 1),
    () => a.heartbeat("a", 1),
    () => a.deregister("a", 1),
    () => a.discover("api", {}, 1),
    () => a.get("a", 1),
    () => a.eventsSince(0),
    () => a.snapshot(),
    () => a.tick(1),
    () => a.size,
    () => a.clock,
  ];
  for (const call of calls) {
    assert.throws(call, (e) => e instanceof WaypostError && e.code === "freed" && /freed/.test(e.message), String(call));
  }
});

test("a core that cannot be made says so instead of throwing or trapping", () => {
  for (const make of [() => new RegistryCore('{"ttl_ms": 0}'), () => new RegistryCore("{"), () => RegistryCore.restore("[]")]) {
    const core = make();
    assert.equal(core.failed(), true);
    assert.match(core.takeError(), /^(invalid_argument|invalid_snapshot) /);
    assert.equal(core.failed(), false);
    core.free();
  }
  const ok = new RegistryCore('{"seed": 1}');
  assert.equal(ok.failed(), false);
  ok.free();
});

test("the core under the facade rejects a malformed filter without trapping", () => {
  const core = new RegistryCore('{"seed": 1}');
  core.register('{"id": "a", "service": "api", "address": "h", "port": 1, "meta": {"k": "v"}}', 0);
  for (const filter of ['{"meta": ["k"]}', '{"tags": [1]}', "{", '{"zone": "eu"}']) {
    // A failed core call returns undefined and keeps its error as text.
    assert.equal(core.discover("api", false, filter, 1), undefined, filter);
    assert.match(core.takeError(), /^invalid_argument .*filter/, filter);
  }
  assert.equal(core.discover("api", false, '{"meta": {"k": "v"}}', 1).length, 2);
  assert.equal(core.discover("api", false, '{"meta": {"k": "w"}}', 1).length, 1);
  assert.equal(core.discover("api", false, undefined, 1).length, 2);
});
