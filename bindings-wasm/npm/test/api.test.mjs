// The JavaScript API over the core: shapes, defaults, caching, events,
// snapshots, and agreement with the core on every strategy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Registry, STRATEGIES, HEALTH_VALUES, ERROR_CODES, version } from "../dist/node.js";

function fleet(config = {}) {
  const reg = new Registry({ ttlMs: 10_000, seed: 7, ...config });
  for (const [i, zone] of ["a", "b", "c"].entries()) {
    reg.register(
      { id: `api-${i + 1}`, service: "api", address: `10.0.0.${i + 1}`, port: 8080, weight: i + 1, zone, tags: ["v1"], meta: { rack: zone } },
      0,
    );
  }
  return reg;
}

test("register returns the instance as a frozen plain object in camelCase", () => {
  const reg = new Registry({ seed: 1 });
  const inst = reg.register({ id: "a", service: "s", address: "h", port: 1, ttlMs: 5000, tags: ["x", "x", "y"] }, 0);
  assert.deepEqual({ ...inst, tags: [...inst.tags], meta: { ...inst.meta } }, {
    id: "a", service: "s", address: "h", port: 1, weight: 1, tags: ["x", "y"], meta: {}, zone: null, priority: 0, ttlMs: 5000, checkIntervalMs: null,
  });
  assert.ok(Object.isFrozen(inst) && Object.isFrozen(inst.tags) && Object.isFrozen(inst.meta));
});

test("the README example: api-2 never heartbeats, so only api-1 is picked", () => {
  const reg = new Registry({ ttlMs: 10_000, seed: 7 });
  reg.register({ id: "api-1", service: "api", address: "10.0.0.1", port: 8080 }, 0);
  reg.register({ id: "api-2", service: "api", address: "10.0.0.2", port: 8080 }, 0);
  reg.heartbeat("api-1", 9_000);
  const pick = reg.pick("api", "round_robin", 10_001);
  assert.equal(pick.instance.id, "api-1");
  assert.equal(pick.panic, false);
  assert.deepEqual(reg.eventsSince(0).map((e) => [e.type, e.id, e.at]), [
    ["registered", "api-1", 0],
    ["registered", "api-2", 0],
    ["health_changed", "api-2", 10_001],
  ]);
});

test("round robin cycles in id order and returns the same cached objects", () => {
  const reg = fleet();
  const ids = [];
  const seen = new Map();
  for (let i = 0; i < 6; i++) {
    const p = reg.pick("api", "round_robin", 1);
    ids.push(p.instance.id);
    if (seen.has(p.instance.id)) assert.equal(seen.get(p.instance.id), p);
    seen.set(p.instance.id, p);
  }
  assert.deepEqual(ids, ["api-1", "api-2", "api-3", "api-1", "api-2", "api-3"]);
});

test("the pick cache follows membership changes", () => {
  const reg = fleet();
  const before = reg.pick("api", "first_available", 1).instance;
  assert.equal(before.port, 8080);
  reg.register({ id: "api-1", service: "api", address: "10.0.0.1", port: 9090 }, 2);
  assert.equal(reg.pick("api", "first_available", 3).instance.port, 9090);
  reg.deregister("api-1", 4);
  assert.equal(reg.pick("api", "first_available", 5).instance.id, "api-2");
  // A new instance may reuse the freed slot: the cache must not show the old one.
  reg.register({ id: "api-0", service: "api", address: "10.9.9.9", port: 1 }, 6);
  const p = reg.pick("api", "first_available", 7).instance;
  assert.deepEqual([p.id, p.address], ["api-0", "10.9.9.9"]);
});

test("now defaults to Date.now()", () => {
  const reg = new Registry({ seed: 3 });
  const t0 = Date.now();
  reg.register({ id: "a", service: "s", address: "h", port: 1 });
  assert.ok(reg.clock >= t0 && reg.clock <= Date.now());
  assert.equal(reg.pick("s").instance.id, "a");
  assert.equal(reg.pick("s", "random").instance.id, "a");
});

test("every strategy agrees with itself across a snapshot and restore", () => {
  for (const strategy of STRATEGIES) {
    const a = fleet();
    const opts = strategy === "consistent_hash" ? { key: "user-42" } : undefined;
    for (let i = 0; i < 5; i++) a.pick("api", strategy, opts, 10);
    const b = Registry.restore(a.snapshot());
    const ra = [];
    const rb = [];
    for (let i = 0; i < 20; i++) {
      ra.push(a.pick("api", strategy, opts, 20 + i).instance.id);
      rb.push(b.pick("api", strategy, opts, 20 + i).instance.id);
    }
    assert.deepEqual(rb, ra, strategy);
  }
});

test("the same seed gives the same random picks; different seeds differ", () => {
  const run = (seed) => {
    const reg = fleet({ seed });
    return Array.from({ length: 40 }, () => reg.pick("api", "random", 1).instance.id).join();
  };
  assert.equal(run(11), run(11));
  assert.notEqual(run(11), run(12));
});

test("registries without a seed draw one from host entropy", () => {
  const seeds = new Set(Array.from({ length: 5 }, () => new Registry().config.seed));
  assert.ok(seeds.size > 1);
  for (const s of seeds) assert.ok(Number.isSafeInteger(s) && s >= 0);
});

test("smooth weighted round robin: weights 5,1,1 give a a b a c a a", () => {
  const reg = new Registry({ seed: 0 });
  for (const [id, weight] of [["a", 5], ["b", 1], ["c", 1]]) reg.register({ id, service: "s", address: "h", port: 1, weight }, 0);
  const ids = Array.from({ length: 7 }, () => reg.pick("s", "weighted_round_robin", 1).instance.id);
  assert.deepEqual(ids, ["a", "a", "b", "a", "c", "a", "a"]);
});

test("pick options: zone preference, tag and meta filters, consistent hash keys", () => {
  const reg = fleet();
  assert.equal(reg.pick("api", "round_robin", { zone: "b" }, 1).instance.id, "api-2");
  assert.equal(reg.pick("api", "first_available", { meta: { rack: "c" } }, 1).instance.id, "api-3");
  assert.throws(() => reg.pick("api", "first_available", { tags: ["v2"] }, 1), { code: "no_eligible_instance" });
  const k1 = reg.pick("api", "consistent_hash", { key: "k" }, 1).instance;
  assert.equal(reg.pick("api", "consistent_hash", { key: "k" }, 1).instance, k1);
  assert.throws(() => reg.pick("api", "consistent_hash", 1), { code: "invalid_argument" });
});

test("filters travel as written: odd keys and characters, no toJSON", () => {
  const reg = new Registry({ seed: 1 });
  const meta = JSON.parse('{"__proto__": "p", "q\\"uote": "\\u00e9"}');
  reg.register({ id: "odd", service: "s", address: "h", port: 1, tags: ['t"1', "ü"], meta }, 0);
  reg.register({ id: "plain", service: "s", address: "h", port: 1 }, 0);
  const tags = ['t"1', "ü"];
  tags.toJSON = () => [];
  const found = reg.discover("s", { tags, meta }, 1).instances.map((i) => i.id);
  assert.deepEqual(found, ["odd"]);
  assert.equal(reg.pick("s", "random", { meta: JSON.parse('{"__proto__": "p"}') }, 1).instance.id, "odd");
  assert.throws(() => reg.pick("s", "random", { meta: JSON.parse('{"__proto__": "x"}') }, 1), { code: "no_eligible_instance" });
});

test("discover lists healthy instances, or all with health, with filters", () => {
  const reg = fleet();
  reg.heartbeat("api-1", 9_000);
  reg.drain("api-3", true, 9_000);
  const healthy = reg.discover("api", 10_001);
  assert.deepEqual(healthy.instances.map((i) => i.id), ["api-1"]);
  assert.deepEqual(healthy.health, ["healthy"]);
  const all = reg.discover("api", { all: true }, 10_001);
  assert.deepEqual(all.instances.map((i) => i.id), ["api-1", "api-2", "api-3"]);
  assert.deepEqual(all.health, ["healthy", "unhealthy", "draining"]);
  assert.equal(all.panic, false);
  assert.deepEqual(reg.discover("api", { all: true, meta: { rack: "b" } }, 10_001).instances.map((i) => i.id), ["api-2"]);
  assert.equal(all.instances[0], healthy.instances[0]);
});

test("tick returns the events the advance produced; nextDeadline tells when", () => {
  const reg = fleet({ evictAfterMs: 5_000 });
  assert.equal(reg.nextDeadline(), 10_001);
  assert.deepEqual(reg.tick(5_000), []);
  const events = reg.tick(10_001);
  assert.deepEqual(events.map((e) => [e.type, e.id, e.from, e.to]), [
    ["health_changed", "api-1", "healthy", "unhealthy"],
    ["health_changed", "api-2", "healthy", "unhealthy"],
    ["health_changed", "api-3", "healthy", "unhealthy"],
  ]);
  assert.deepEqual(reg.tick(15_001).map((e) => e.type), ["evicted", "evicted", "evicted"]);
  assert.equal(reg.size, 0);
  assert.equal(reg.nextDeadline(), null);
});

test("outcomes eject an instance; checks degrade and fail it; begin/end count in-flight calls", () => {
  const reg = fleet({ consecutiveFailures: 2, maxEjectionPercent: 100 });
  reg.reportOutcome("api-1", false, 1);
  reg.reportOutcome("api-1", false, 1);
  assert.equal(reg.get("api-1", 1).health, "ejected");
  reg.reportCheck("api-2", "warn", 1);
  assert.equal(reg.get("api-2", 1).health, "degraded");
  reg.reportCheck("api-2", "fail", 1);
  assert.equal(reg.get("api-2", 1).health, "unhealthy");
  reg.begin("api-3", 1);
  reg.begin("api-3", 1);
  reg.end("api-3", 1);
  const state = reg.get("api-3", 1);
  assert.equal(state.inflight, 1);
  assert.equal(state.instance.id, "api-3");
  assert.equal(state.leaseDeadline, 10_000);
  assert.equal(state.lastCheck, null);
});

test("heartbeat by id keeps working across removal and re-registration", () => {
  const reg = fleet();
  reg.heartbeat("api-1", 5_000);
  reg.deregister("api-1", 5_000);
  assert.throws(() => reg.heartbeat("api-1", 5_001), { code: "not_found" });
  reg.register({ id: "x", service: "api", address: "h", port: 1 }, 5_002);
  reg.register({ id: "api-1", service: "api", address: "h", port: 2 }, 5_003);
  reg.heartbeat("api-1", 14_000);
  reg.reportOutcome("api-1", true, 14_000);
  assert.equal(reg.get("api-1", 14_000).lastRenewal, 14_000);
  assert.deepEqual(reg.discover("api", 15_500).instances.map((i) => i.id), ["api-1"]);
});

test("services, dueChecks, metrics, indexes and config", () => {
  const reg = fleet();
  reg.register({ id: "db-1", service: "db", address: "h", port: 5432, checkIntervalMs: 1000 }, 0);
  assert.deepEqual(reg.services(1), ["api", "db"]);
  assert.deepEqual(reg.dueChecks(1), ["db-1"]);
  assert.deepEqual(reg.dueChecks(2), []);
  assert.deepEqual(reg.dueChecks(1001), ["db-1"]);
  reg.pick("api", "random", 1001);
  const metrics = reg.serviceMetrics();
  assert.equal(metrics[0].service, "api");
  assert.equal(metrics[0].picks.random, 1);
  assert.equal(metrics[0].instances.healthy, 3);
  assert.match(reg.renderMetrics(), /waypost_instances\{service="db",health="healthy"\} 1/);
  assert.equal(reg.lastIndex, 4);
  assert.equal(reg.serviceModifyIndex("db"), 4);
  assert.equal(reg.config.ttlMs, 10_000);
  assert.equal(reg.inSelfPreservation, false);
  assert.ok(reg.membershipEpoch >= 4);
});

test("exported tables and version", () => {
  assert.equal(STRATEGIES.length, 7);
  assert.deepEqual([...HEALTH_VALUES], ["healthy", "unhealthy", "draining", "ejected", "degraded"]);
  assert.equal(ERROR_CODES.length, 8);
  assert.match(version(), /^\d+\.\d+\.\d+/);
});

test("repeated discovers follow every change the service goes through", () => {
  const reg = fleet({ panicThreshold: 0.5, evictAfterMs: 5_000 });
  const ids = (d) => d.instances.map((i) => `${i.id}:${i.port}`).join(",") + `|${d.health.join(",")}|${d.panic}`;
  const seen = [];
  const look = (t) => {
    const healthy = reg.discover("api", t);
    const all = reg.discover("api", { all: true }, t);
    healthy.instances.length = 0; // callers own the arrays they get
    all.health.reverse();
    seen.push(ids(reg.discover("api", t)) + " / " + ids(reg.discover("api", { all: true }, t)));
  };
  look(1);
  reg.heartbeat("api-1", 9_000);
  reg.heartbeat("api-2", 9_000);
  look(9_500); // nothing changed
  look(10_001); // api-3 expired
  reg.heartbeat("api-3", 10_002); // recovered
  look(10_002);
  reg.drain("api-2", true, 10_003);
  look(10_003);
  reg.register({ id: "api-2", service: "api", address: "10.0.0.2", port: 9999 }, 10_004); // new fields
  look(10_004);
  reg.register({ id: "api-0", service: "api", address: "10.0.0.9", port: 1 }, 10_005);
  look(10_005);
  reg.deregister("api-0", 10_006);
  look(10_006);
  look(19_100); // api-1 expired at 19 001
  look(24_500); // api-1 evicted, api-3 expired: panic
  const expected = [];
  // The same sequence on a fresh registry, discovering only at the end of each stage.
  const fresh = fleet({ panicThreshold: 0.5, evictAfterMs: 5_000 });
  const stages = [
    [1, () => {}],
    [9_500, () => { fresh.heartbeat("api-1", 9_000); fresh.heartbeat("api-2", 9_000); }],
    [10_001, () => {}],
    [10_002, () => fresh.heartbeat("api-3", 10_002)],
    [10_003, () => fresh.drain("api-2", true, 10_003)],
    [10_004, () => fresh.register({ id: "api-2", service: "api", address: "10.0.0.2", port: 9999 }, 10_004)],
    [10_005, () => fresh.register({ id: "api-0", service: "api", address: "10.0.0.9", port: 1 }, 10_005)],
    [10_006, () => fresh.deregister("api-0", 10_006)],
    [19_100, () => {}],
    [24_500, () => {}],
  ];
  for (const [t, change] of stages) {
    change();
    fresh.tick(t); // advances the clock without discovering
    // A filter (even an empty one) bypasses the facade's discover memo.
    const healthy = fresh.discover("api", { tags: [] }, t);
    const all = fresh.discover("api", { all: true, tags: [] }, t);
    expected.push(ids(healthy) + " / " + ids(all));
  }
  assert.deepEqual(seen, expected);
  assert.ok(seen[9].includes("|true"), "panic shows");
  assert.notEqual(seen[0], seen[2]);
});
