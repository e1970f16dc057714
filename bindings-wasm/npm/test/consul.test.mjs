// ConsulMirror against a loopback server that answers the documented health
// endpoint with blocking queries (`?index=&wait=`, X-Consul-Index).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { Registry } from "../dist/node.js";
import { ConsulMirror, ConsulError } from "../dist/consul.js";

function fakeConsul() {
  const state = { index: 10, services: new Map(), queries: 0, waiters: new Set() };
  const entry = (id, s) => ({
    Node: { ID: "n1", Node: "node-1", Address: "10.9.0.1", Datacenter: "dc1", Meta: {} },
    Service: { ID: id, Service: "redis", Tags: [], Address: s.address, Meta: {}, Port: 6379, Weights: { Passing: 1, Warning: 1 } },
    Checks: [{ CheckID: `service:${id}`, Status: s.status, ServiceID: id }],
  });
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    state.queries += 1;
    const want = Number(url.searchParams.get("index") ?? 0);
    const answer = () => {
      res.writeHead(200, { "content-type": "application/json", "x-consul-index": String(state.index) });
      res.end(JSON.stringify([...state.services].sort().map(([id, s]) => entry(id, s))));
    };
    if (want === 0 || state.index > want) return answer();
    const waiter = () => { clearTimeout(timer); state.waiters.delete(waiter); answer(); };
    const timer = setTimeout(waiter, state.maxWaitMs ?? 300);
    state.waiters.add(waiter);
  });
  state.change = (fn) => { fn(state.services); state.index += 1; for (const w of [...state.waiters]) w(); };
  state.resetIndex = (v) => { state.index = v; for (const w of [...state.waiters]) w(); };
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => {
    state.endpoint = `http://127.0.0.1:${server.address().port}`;
    state.close = () => { for (const w of [...state.waiters]) w(); server.closeAllConnections?.(); return new Promise((r) => server.close(r)); };
    resolve(state);
  }));
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));
async function eventually(cond, ms, what) {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await delay(20);
  }
}
function view(reg) {
  try {
    const d = reg.discover("redis", { all: true });
    return Object.fromEntries(d.instances.map((i, k) => [i.id, d.health[k]]));
  } catch (e) {
    if (e.code === "unknown_service") return {};
    throw e;
  }
}

test("follows the health answer, keeps its pace, survives an index going backwards", async () => {
  const consul = await fakeConsul();
  const reg = new Registry({ seed: 1, selfPreservationThreshold: 0 });
  consul.change((s) => s.set("redis-1", { address: "10.0.0.1", status: "passing" }));
  const m = new ConsulMirror({ endpoints: [consul.endpoint], registry: reg, service: "redis" });
  try {
    await m.start();
    assert.deepEqual(view(reg), { "redis-1": "healthy" });
    assert.equal(reg.get("redis-1").instance.source, "consul");
    consul.change((s) => s.set("redis-2", { address: "10.0.0.2", status: "critical" }));
    await eventually(() => view(reg)["redis-2"] === "unhealthy", 3000, "a new critical instance");
    const before = consul.queries;
    await delay(1000);
    assert.ok(consul.queries - before <= 6, `${consul.queries - before} queries in 1 s without a change`);
    consul.resetIndex(2);
    consul.change((s) => s.delete("redis-2"));
    await eventually(() => Object.keys(view(reg)).join() === "redis-1", 3000, "after the index went backwards");
    assert.equal(m.error, null);
  } finally {
    await m.close();
    await consul.close();
  }
});

test("close ends a blocking query at once; an unreachable agent is a named error", async () => {
  const consul = await fakeConsul();
  consul.maxWaitMs = 30_000;
  const m = new ConsulMirror({ endpoints: consul.endpoint, registry: new Registry({ seed: 1 }), service: "redis" });
  await m.start();
  await delay(200);
  const started = Date.now();
  await m.close();
  assert.ok(Date.now() - started < 1000);
  await consul.close();
  const dead = new ConsulMirror({ endpoints: ["http://127.0.0.1:1"], registry: new Registry({ seed: 1 }), service: "redis" });
  dead.start().catch(() => {});
  await eventually(() => dead.error !== null, 3000, "error visible");
  assert.ok(dead.error instanceof ConsulError && dead.error.message.includes("consul unreachable") && dead.error.message.includes("127.0.0.1:1"));
  await dead.close();
  assert.throws(() => new ConsulMirror({ endpoints: ["http://127.0.0.1:1"], registry: new Registry() }), TypeError);
});
