// Benchmarks of the npm package in Node, beside a plain-JS registry doing
// the same operations in the same run, and the wasm-bindgen call floor.
//
//   make wasm-bench      (or: node bindings-wasm/npm/scripts/bench.mjs)
//   WAYPOST_WASM=browser node bindings-wasm/npm/scripts/bench.mjs
//                        (the browser's size-built module, in Node)
import { Registry, RegistryCore, coreVersion, moduleFile } from "./module.mjs";
import os from "node:os";

let sink = 0;

/**
 * Best mean ns/op over several rounds of `loop(iters)`, where `loop` runs
 * the operation `iters` times in its own loop (one loop per benchmark, so
 * each is optimized for its one operation). Time is the process's CPU
 * time, not wall time: on a shared machine, wall time also counts the
 * slices other processes ran in.
 */
function measure(loop, iters, rounds = 7) {
  loop(Math.min(iters, 20_000));
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const c0 = process.cpuUsage();
    loop(iters);
    const c = process.cpuUsage(c0);
    best = Math.min(best, ((c.user + c.system) * 1000) / iters);
  }
  return best;
}

/**
 * The plain-JS comparison: a registry that honours leases, in the obvious
 * way (instances in a Map, services as id-ordered arrays, expiry applied by
 * scanning on tick, discover filtering live leases into result objects).
 */
class PlainRegistry {
  constructor(ttlMs) {
    this.ttl = ttlMs;
    this.clock = 0;
    this.instances = new Map();
    this.services = new Map();
  }
  advance(now) {
    if (now > this.clock) this.clock = now;
  }
  register(spec, now) {
    this.advance(now);
    // An explicit literal: objects made by spreading are several times slower here.
    const inst = { id: spec.id, service: spec.service, address: spec.address, port: spec.port, lastRenewal: this.clock, health: "healthy" };
    this.instances.set(spec.id, inst);
    let svc = this.services.get(spec.service);
    if (!svc) this.services.set(spec.service, (svc = { members: [], rr: 0 }));
    svc.members.push(inst);
    svc.members.sort((a, b) => (a.id < b.id ? -1 : 1));
  }
  heartbeat(id, now) {
    this.advance(now);
    const inst = this.instances.get(id);
    if (!inst) throw new Error(`not found: ${id}`);
    inst.lastRenewal = this.clock;
    inst.health = "healthy";
  }
  pick(service, now) {
    this.advance(now);
    const svc = this.services.get(service);
    const members = svc.members;
    for (let n = 0; n < members.length; n++) {
      const inst = members[svc.rr++ % members.length];
      if (this.clock <= inst.lastRenewal + this.ttl) return inst;
    }
    throw new Error("no eligible instance");
  }
  discover(service, now) {
    this.advance(now);
    const out = [];
    for (const inst of this.services.get(service).members) {
      if (this.clock <= inst.lastRenewal + this.ttl) {
        out.push({ id: inst.id, address: inst.address, port: inst.port, health: "healthy" });
      }
    }
    return out;
  }
  tick(now) {
    this.advance(now);
    const events = [];
    for (const inst of this.instances.values()) {
      if (inst.health === "healthy" && this.clock > inst.lastRenewal + this.ttl) {
        inst.health = "unhealthy";
        events.push({ type: "health_changed", id: inst.id });
      }
    }
    return events;
  }
}

function fill(reg, n) {
  for (let i = 0; i < n; i++) {
    const id = `api-${String(i).padStart(5, "0")}`;
    reg.register({ id, service: "api", address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8080 }, 0);
  }
}

const ids1k = Array.from({ length: 1000 }, (_, i) => `api-${String(i).padStart(5, "0")}`);
const T = 1_000; // every lease (ttl 1 h) stays live: nothing falls due

const wasm1k = new Registry({ ttlMs: 3_600_000, evictAfterMs: 0, seed: 1 });
fill(wasm1k, 1000);
const plain1k = new PlainRegistry(3_600_000);
fill(plain1k, 1000);
const wasm10k = new Registry({ ttlMs: 3_600_000, evictAfterMs: 0, seed: 1 });
fill(wasm10k, 10_000);
const plain10k = new PlainRegistry(3_600_000);
fill(plain10k, 10_000);

const core = new RegistryCore('{"seed": 1}');
const floorNumber = measure((n) => { for (let i = 0; i < n; i++) (sink += core.clock()); }, 500_000);
const floorStrIn = measure((n) => { for (let i = 0; i < n; i++) (sink += core.handleOf("api-00001")); }, 200_000);
const floorStrOut = measure((n) => { for (let i = 0; i < n; i++) (sink += coreVersion().length); }, 200_000);

const rows = [];
function row(name, wasmNs, plainNs, target, ok) {
  rows.push({ name, wasmNs, plainNs, target, ok });
}

const pickW = measure((n) => { for (let i = 0; i < n; i++) (sink += wasm1k.pick("api", "round_robin", T).instance.port); }, 500_000);
const pickP = measure((n) => { for (let i = 0; i < n; i++) (sink += plain1k.pick("api", T).port); }, 500_000);
row("pick round_robin, 1 000 instances", pickW, pickP, "≤ 50 ns", pickW <= 50);

const pickR = measure((n) => { for (let i = 0; i < n; i++) (sink += wasm1k.pick("api", "random", T).instance.port); }, 300_000);
row("pick random, 1 000 instances", pickR, null, "—", null);
const pickWrr = measure((n) => { for (let i = 0; i < n; i++) (sink += wasm1k.pick("api", "weighted_round_robin", T).instance.port); }, 20_000);
row("pick weighted_round_robin, 1 000", pickWrr, null, "—", null);

const hbW = measure((n) => { for (let i = 0; i < n; i++) wasm1k.heartbeat(ids1k[i % 1000], T); }, 300_000);
const hbP = measure((n) => { for (let i = 0; i < n; i++) plain1k.heartbeat(ids1k[i % 1000], T); }, 300_000);
row("heartbeat by id, 1 000 instances", hbW, hbP, "≤ 120 ns", hbW <= 120);

const discW = measure((n) => { for (let i = 0; i < n; i++) (sink += wasm1k.discover("api", T).instances.length); }, 3_000);
const discP = measure((n) => { for (let i = 0; i < n; i++) (sink += plain1k.discover("api", T).length); }, 3_000);
row("discover 1 000 healthy instances", discW, discP, "≥ 5× plain", discP / discW >= 5);
// The same after a change each time (a drain toggled), so the facade's
// memo of the last answer never applies: the full path through the core.
const discC = measure((n) => { for (let i = 0; i < n; i++) { wasm1k.drain(ids1k[0], (i & 1) === 0, T); sink += wasm1k.discover("api", T).instances.length; } }, 3_000);
row("discover 1 000 after a change", discC, discP, "—", null);
// One change, then a pick: the facade's pick cache keeps its entries (a
// drain does not move the membership epoch); the core brings its candidate
// table up to date in place.
const pickC = measure((n) => { for (let i = 0; i < n; i++) { wasm1k.drain(ids1k[0], (i & 1) === 0, T); sink += wasm1k.pick("api", "round_robin", T).instance.port; } }, 20_000);
const drainOnly = measure((n) => { for (let i = 0; i < n; i++) wasm1k.drain(ids1k[0], (i & 1) === 0, T); }, 20_000);
row("drain alone (the change above)", drainOnly, null, "—", null);
row("pick round_robin after a change", pickC, null, "—", null);

const tickW = measure((n) => { for (let i = 0; i < n; i++) (sink += wasm10k.tick(T).length); }, 300_000);
const tickP = measure((n) => { for (let i = 0; i < n; i++) (sink += plain10k.tick(T).length); }, 300);
row("tick, nothing due, 10 000 instances", tickW, tickP, "≥ 100× plain", tickP / tickW >= 100);

const fmt = (ns) => (ns === null ? "—" : ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(1)} ns`);
const cpu = os.cpus()[0]?.model ?? "unknown CPU";
console.log(`waypost ${coreVersion()} (WebAssembly, ${moduleFile}) in Node ${process.version}, ${cpu}, ${os.cpus().length} cores, ${new Date().toISOString().slice(0, 10)}`);
console.log("");
console.log("wasm-bindgen call floor (RegistryCore, no facade):");
console.log(`  call returning a number      ${fmt(floorNumber)}`);
console.log(`  call passing a short string  ${fmt(floorStrIn)}`);
console.log(`  call returning a new string  ${fmt(floorStrOut)}`);
console.log("");
const pad = (s, n) => String(s).padEnd(n);
console.log(`${pad("operation", 38)}${pad("waypost", 12)}${pad("plain JS", 12)}${pad("ratio", 9)}${pad("target", 14)}result`);
for (const r of rows) {
  const ratio = r.plainNs === null ? "—" : `${(r.plainNs / r.wasmNs).toFixed(1)}×`;
  const verdict = r.ok === null ? "" : r.ok ? "met" : "MISSED";
  console.log(`${pad(r.name, 38)}${pad(fmt(r.wasmNs), 12)}${pad(fmt(r.plainNs), 12)}${pad(ratio, 9)}${pad(r.target, 14)}${verdict}`);
}
if (sink === 0.5) console.log(sink);
