// EtcdMirror against a real etcd: follow, expire, restart, compaction, a
// cluster losing its leader, the failover cache.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "../dist/node.js";
import { EtcdMirror, EtcdRegistrar, restoreCache } from "../dist/etcd.js";
import { EtcdCluster, EtcdServer } from "./etcd-harness.mjs";
import { pkgDir } from "./helpers.mjs";

const inst = (i, extra = {}) => ({ id: `api-${i}`, service: "api", address: `10.0.0.${i}`, port: 8080, ...extra });
const json = (v) => JSON.stringify(v);
const delay = (ms) => new Promise((r) => setTimeout(r, ms));
let n = 0;
const fresh = () => `/node-mirror-${n++}`;
let etcd;

function ids(reg, service = "api") {
  try {
    return reg.discover(service, { all: true }).instances.map((i) => i.id);
  } catch (e) {
    if (e.code === "unknown_service") return [];
    throw e;
  }
}

async function eventually(cond, ms, what) {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await delay(20);
  }
  return Date.now() - start;
}

function registeredCounts(reg) {
  const counts = {};
  for (const e of reg.eventsSince(0)) if (e.type === "registered") counts[e.id] = (counts[e.id] ?? 0) + 1;
  return counts;
}

async function storeIds(server, prefix) {
  return Object.values(await server.client.getPrefix(`${prefix}/api/`)).map((v) => JSON.parse(v).id).sort();
}

before(async () => { etcd = await new EtcdServer().start(); });
after(async () => { await etcd.close(); });

test("follows puts, deletes and status; close leaves the registry as it was", async () => {
  const prefix = fresh();
  await etcd.client.put(`${prefix}/api/api-1`, json(inst(1)));
  const reg = new Registry({ seed: 7 });
  const m = new EtcdMirror({ endpoints: [etcd.endpoint], registry: reg, prefix });
  try {
    assert.equal(await m.start(), m);
    assert.deepEqual(ids(reg), ["api-1"]);
    assert.equal(reg.get("api-1").instance.source, "etcd");
    await etcd.client.put(`${prefix}/api/api-2`, json(inst(2, { status: "warning" })));
    await eventually(() => ids(reg).length === 2, 3000, "put seen");
    assert.equal(reg.get("api-2").health, "degraded");
    const rev = await etcd.client.delete(`${prefix}/api/api-1`);
    await eventually(() => ids(reg).join() === "api-2", 3000, "delete seen");
    assert.equal(m.revision, rev);
  } finally {
    await m.close();
  }
  assert.equal(m.status, "stopped");
  assert.deepEqual(ids(reg), ["api-2"]);
});

test("a SIGKILLed registrant leaves within TTL + 1 s; a clean stop removes at once", async () => {
  const prefix = fresh();
  const reg = new Registry({ seed: 7 });
  const code = `import { EtcdRegistrar } from ${json(join(pkgDir, "dist/etcd.js"))};
    const r = await new EtcdRegistrar({ endpoints: [${json(etcd.endpoint)}], instance: ${json(inst(9))}, prefix: ${json(prefix)}, ttl: 2 }).start();
    console.log(r.grantedTtl);`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  const m = new EtcdMirror({ endpoints: [etcd.endpoint], registry: reg, prefix });
  const mine = new EtcdRegistrar({ endpoints: [etcd.endpoint], instance: inst(1), prefix, ttl: 2 });
  try {
    const granted = Number(await new Promise((resolve) => child.stdout.once("data", (d) => resolve(String(d)))));
    await m.start();
    await mine.start();
    await eventually(() => ids(reg).join() === "api-1,api-9", 3000, "both registered");
    await delay(2500);
    assert.deepEqual(ids(reg), ["api-1", "api-9"]);
    child.kill("SIGKILL");
    const took = await eventually(() => ids(reg).join() === "api-1", (granted + 1) * 1000, "the killed registrant gone");
    assert.ok(took <= (granted + 1) * 1000);
    for (let i = 0; i < 10; i++) assert.equal(reg.pick("api").instance.id, "api-1");
    await mine.close();
    assert.ok((await eventually(() => ids(reg).length === 0, 1000, "a clean stop removes at once")) < 500);
  } finally {
    child.kill("SIGKILL");
    await mine.close();
    await m.close();
  }
});

test("etcd SIGKILLed and restarted: nothing lost or repeated, the registrar re-attaches", async () => {
  const own = await new EtcdServer().start();
  const prefix = fresh();
  const reg = new Registry({ seed: 7 });
  const m = new EtcdMirror({ endpoints: [own.endpoint], registry: reg, prefix });
  const r = new EtcdRegistrar({ endpoints: [own.endpoint], instance: inst(2), prefix, ttl: 3 });
  try {
    await own.client.put(`${prefix}/api/api-1`, json(inst(1)));
    await m.start();
    await r.start();
    await eventually(() => ids(reg).length === 2, 3000, "synced");
    const lease = r.leaseId;
    await own.kill();
    await eventually(() => m.error !== null, 5000, "the mirror notices");
    await own.start();
    await own.client.put(`${prefix}/api/api-3`, json(inst(3)));
    await own.client.delete(`${prefix}/api/api-1`);
    await eventually(() => ids(reg).join() === "api-2,api-3", 10000, "resumed");
    await eventually(() => m.error === null && r.error === null, 10000, "both healthy");
    assert.equal(r.leaseId, lease);
    assert.deepEqual(ids(reg), await storeIds(own, prefix));
    assert.deepEqual(registeredCounts(reg), { "api-1": 1, "api-2": 1, "api-3": 1 });
  } finally {
    await r.close();
    await m.close();
    await own.close();
  }
});

test("a compaction while disconnected resyncs to the store", async () => {
  const prefix = fresh();
  const reg = new Registry({ seed: 7 });
  for (const i of [1, 2, 3]) await etcd.client.put(`${prefix}/api/api-${i}`, json(inst(i)));
  const first = new EtcdMirror({ endpoints: [etcd.endpoint], registry: reg, prefix });
  await first.start();
  const seen = first.revision;
  await first.close();
  await etcd.client.delete(`${prefix}/api/api-2`);
  await etcd.client.put(`${prefix}/api/api-4`, json(inst(4)));
  await etcd.client.put(`${prefix}/api/api-3`, json(inst(3, { weight: 5 })));
  await etcd.client.compact(await etcd.client.revision());
  const reports = [];
  const again = new EtcdMirror({ endpoints: [etcd.endpoint], registry: reg, prefix, onChange: (r) => reports.push(r) });
  try {
    again.start().catch(() => {});
    await eventually(() => ids(reg).join() === "api-1,api-3,api-4", 5000, "resynced");
    assert.ok(again.revision > seen);
  } finally {
    await again.close();
  }
  assert.ok(reports.some((r) => r.resync));
  assert.deepEqual(ids(reg), await storeIds(etcd, prefix));
  assert.equal(reg.get("api-3").instance.weight, 5);
});

test("a 3-member cluster loses its leader: registrar and mirror carry on", async () => {
  const cluster = new EtcdCluster();
  const prefix = fresh();
  const reg = new Registry({ seed: 7 });
  let m;
  let r;
  try {
    await cluster.start();
    const eps = cluster.endpoints;
    m = new EtcdMirror({ endpoints: eps, registry: reg, prefix });
    r = new EtcdRegistrar({ endpoints: [...eps].reverse(), instance: inst(1), prefix, ttl: 3 });
    await m.start();
    await r.start();
    await eventually(() => ids(reg).join() === "api-1", 3000, "registered");
    await (await cluster.waitLeader()).kill();
    const alive = await cluster.waitLeader();
    await alive.client.put(`${prefix}/api/api-2`, json(inst(2)));
    await eventually(() => ids(reg).join() === "api-1,api-2", 10000, "the mirror carries on");
    await delay(3500);
    assert.deepEqual(await storeIds(alive, prefix), ["api-1", "api-2"]);
    assert.deepEqual(ids(reg), ["api-1", "api-2"]);
    assert.equal(r.error, null);
  } finally {
    await r?.close();
    await m?.close();
    await cluster.close();
  }
});

test("the failover cache serves the last fleet while etcd is down", async () => {
  const dir = mkdtempSync(join(tmpdir(), "waypost-cache-"));
  const cacheFile = join(dir, "fleet.json");
  const own = await new EtcdServer().start();
  const prefix = fresh();
  try {
    for (const i of [1, 2]) await own.client.put(`${prefix}/api/api-${i}`, json(inst(i)));
    const reg = new Registry({ seed: 7 });
    const m = new EtcdMirror({ endpoints: [own.endpoint], registry: reg, prefix, cacheFile, cacheIntervalMs: 200 });
    await m.start();
    await own.client.put(`${prefix}/api/api-3`, json(inst(3)));
    await eventually(() => ids(reg).length === 3, 3000, "followed");
    await eventually(() => { try { return readFileSync(cacheFile, "utf8").includes("api-3"); } catch { return false; } }, 3000, "cached");
    await m.close();
    assert.deepEqual(readdirSync(dir), ["fleet.json"]);
    await own.stop();
    const restored = await restoreCache(Registry, cacheFile);
    assert.deepEqual(ids(restored), ["api-1", "api-2", "api-3"]);
    const again = new EtcdMirror({ endpoints: [own.endpoint], registry: restored, prefix, cacheFile });
    const started = again.start();
    await delay(500);
    assert.ok(again.error !== null && !again.synced);
    assert.ok(["api-1", "api-2", "api-3"].includes(restored.pick("api").instance.id));
    await own.start();
    await own.client.delete(`${prefix}/api/api-1`);
    await started;
    await eventually(() => ids(restored).join() === "api-2,api-3", 10000, "reconciled");
    assert.deepEqual(registeredCounts(restored), { "api-1": 1, "api-2": 1, "api-3": 1 });
    await again.close();
    assert.equal(await restoreCache(Registry, join(dir, "none.json")), null);
  } finally {
    await own.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("start() rejects when closed first; an AbortSignal closes", async () => {
  const reg = new Registry({ seed: 7 });
  const ac = new AbortController();
  const m = new EtcdMirror({ endpoints: ["http://127.0.0.1:1"], registry: reg, signal: ac.signal });
  const started = m.start();
  ac.abort();
  await assert.rejects(started, /closed before the store was read/);
  await eventually(() => m.status === "stopped", 2000, "stopped");
  assert.throws(() => new EtcdMirror({ endpoints: ["http://127.0.0.1:1"], registry: {} }), TypeError);
});

test("reads the range over gRPC by default, through the gateway with grpc: false, to the same registry", async () => {
  const prefix = fresh();
  for (let i = 1; i <= 40; i++) await etcd.client.put(`${prefix}/api/api-${i}`, json(inst(i, { weight: 1 + (i % 3) })));
  await etcd.client.put(`${prefix}/api/bad`, "not json");
  const viaGrpc = new Registry({ seed: 7 });
  const viaGateway = new Registry({ seed: 7 });
  const a = new EtcdMirror({ endpoints: [etcd.endpoint], registry: viaGrpc, prefix });
  const b = new EtcdMirror({ endpoints: [etcd.endpoint], registry: viaGateway, prefix, grpc: false });
  try {
    await Promise.all([a.start(), b.start()]);
    assert.equal(ids(viaGrpc).length, 40);
    assert.deepEqual(viaGrpc.discover("api", { all: true }).instances, viaGateway.discover("api", { all: true }).instances);
    assert.match(viaGrpc.snapshot(), /"grpc":true/);
    assert.doesNotMatch(viaGateway.snapshot(), /"grpc"/);
    // Both follow the watch that comes after.
    await etcd.client.delete(`${prefix}/api/api-3`);
    await eventually(() => ids(viaGrpc).length === 39 && ids(viaGateway).length === 39, 5000, "the delete seen by both");
  } finally {
    a.close();
    b.close();
  }
});

test("a member that does not speak gRPC is passed over; alone, it is an error the mirror retries", async () => {
  const http = await import("node:http");
  // An HTTP/1.1 server: an HTTP/2 client's preface gets no answer it can use.
  const plain = http.createServer((req, res) => { res.writeHead(404); res.end("no"); });
  await new Promise((r) => plain.listen(0, "127.0.0.1", r));
  const dud = `http://127.0.0.1:${plain.address().port}`;
  const prefix = fresh();
  await etcd.client.put(`${prefix}/api/api-1`, json(inst(1)));
  const reg = new Registry({ seed: 7 });
  const errors = [];
  const failover = new EtcdMirror({ endpoints: [dud, etcd.endpoint], registry: reg, prefix, timeoutMs: 1000, onError: (e) => errors.push(e) });
  const alone = new EtcdMirror({ endpoints: [dud], registry: new Registry({ seed: 7 }), prefix, timeoutMs: 500 });
  const failed = new Promise((resolve) => alone.on("error", resolve));
  try {
    await failover.start();
    assert.deepEqual(ids(reg), ["api-1"]);
    assert.equal(failover.endpoint, etcd.endpoint);
    alone.start().catch(() => {});
    const e = await failed;
    assert.equal(e.name, "EtcdError");
    assert.match(e.message, /KV\/Range/);
    assert.equal(alone.synced, false);
  } finally {
    failover.close();
    alone.close();
    plain.close();
  }
});
