// waypost/consul and waypost/k8s against the loopback stand-in of Consul's
// and the Kubernetes API server's HTTP APIs (tests/fakes/store_server.py,
// run as a child process that stops when its stdin closes).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { readFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Registry, consulRegistration } from "../dist/node.js";
import { ConsulMirror, ConsulRegistrar, ConsulError } from "../dist/consul.js";
import { K8sMirror, KubernetesError } from "../dist/k8s.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const FIXTURES = join(ROOT, "tests", "fixtures");

async function startServer(token) {
  const args = [join(ROOT, "tests", "fakes", "store_server.py"), "--max-seconds", "120"];
  if (token) args.push("--token", token);
  const child = spawn("python3", args, { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout });
  const [first] = await Promise.race([
    new Promise((resolve) => lines.once("line", (l) => resolve([l]))),
    new Promise((_, reject) => setTimeout(() => reject(new Error("store server did not start")), 10_000)),
  ]);
  const url = `http://127.0.0.1:${JSON.parse(first).port}`;
  const call = async (method, path, body) => {
    const res = await fetch(url + path, { method, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text.trim() === "" ? null : JSON.parse(text);
  };
  return {
    url, call,
    stats: () => call("GET", "/_test/stats"),
    async close() {
      lines.close();
      child.stdin.end();
      if (child.exitCode === null) await new Promise((resolve) => child.once("exit", resolve));
    },
  };
}

async function eventually(cond, what, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Removals apply at once: these tests are about the helpers, not self-preservation.
const registry = () => new Registry({ seed: 7, trustEmptySync: true, selfPreservationThreshold: 0 });

function view(reg, service) {
  try {
    const d = reg.discover(service, { all: true });
    return Object.fromEntries(d.instances.map((i, k) => [i.id, [d.health[k], i.address, i.port, i.zone ?? null]]));
  } catch (e) {
    if (e.code === "unknown_service") return {};
    throw e;
  }
}
const health = (reg, service, id) => view(reg, service)[id]?.[0] ?? null;

const register = (s, id, port = 8080) => s.call("PUT", "/v1/agent/service/register", {
  ID: id, Name: "web", Address: "10.0.0.1", Port: port,
  Check: { TTL: "30s", Status: "passing", DeregisterCriticalServiceAfter: "1m" },
});

const noOpenConnections = (s) => eventually(async () => (await s.stats()).open === 0, "the helper's connections closed");

test("ConsulMirror follows registrations, health and deregistrations", async () => {
  const s = await startServer();
  try {
    const reg = registry();
    const m = new ConsulMirror({ address: s.url, registry: reg, service: "web", minIntervalMs: 20 });
    await m.start();
    assert.equal(m.error, null);
    await register(s, "web-1");
    await register(s, "web-2", 8081);
    await eventually(() => Object.keys(view(reg, "web")).sort().join() === "web-1,web-2", "both registered");
    await s.call("PUT", "/v1/agent/check/warn/service:web-1");
    await eventually(() => health(reg, "web", "web-1") === "degraded", "warning → degraded");
    await s.call("PUT", "/v1/agent/check/fail/service:web-1");
    await eventually(() => health(reg, "web", "web-1") === "unhealthy", "critical → unhealthy");
    await s.call("PUT", "/v1/agent/service/maintenance/web-2?enable=true&reason=deploy");
    await eventually(() => health(reg, "web", "web-2") === "draining", "maintenance → draining");
    await s.call("PUT", "/v1/agent/service/deregister/web-1");
    await eventually(() => Object.keys(view(reg, "web")).join() === "web-2", "web-1 gone");
    assert.ok((await s.stats()).requests.consul_health < 30, "blocking queries, not a poll loop");
    await m.close();
    assert.equal(m.status, "stopped");
    await noOpenConnections(s);
  } finally {
    await s.close();
  }
});

test("ConsulMirror maps a fixture as the core does, and survives an index going backwards", async () => {
  const s = await startServer();
  try {
    const payload = readFileSync(join(FIXTURES, "consul", "health-service-fleet.json"), "utf8");
    await s.call("POST", "/_test/consul/load", { service: "web", entries: JSON.parse(payload) });
    const reg = registry();
    const direct = registry();
    direct.sourceAdd("consul", { kind: "consul", service: "web" });
    direct.sourceFeed("consul", payload, 1, { status: 200, index: "7" });
    const m = new ConsulMirror({ address: s.url, registry: reg, service: "web", minIntervalMs: 20 });
    await m.start();
    assert.deepEqual(view(reg, "web"), view(direct, "web"));
    for (const id of ["web-a", "web-b", "web-c"]) await register(s, id);
    await eventually(() => "web-c" in view(reg, "web"), "registered ones followed");
    const high = (await s.stats()).consul_index;
    await eventually(() => m.index === high, "holding the server's index");
    const before = (await s.stats()).requests.consul_health;
    await s.call("POST", "/_test/consul/index", { index: 2 });
    await eventually(() => m.index === 2, "reset, then read again");
    await eventually(async () => (await s.stats()).requests.consul_health >= before + 2, "queried again without an index");
    await register(s, "web-new");
    await eventually(() => "web-new" in view(reg, "web"), "changes followed after the reset");
    assert.equal(m.error, null);
    await m.close();
  } finally {
    await s.close();
  }
});

test("ConsulMirror is rate-limited when queries do not block", async () => {
  const s = await startServer();
  try {
    await s.call("POST", "/_test/consul/blocking", { on: false });
    const m = new ConsulMirror({ address: s.url, registry: registry(), service: "web", minIntervalMs: 200 });
    await m.start();
    const start = (await s.stats()).requests.consul_health;
    await new Promise((r) => setTimeout(r, 1000));
    const made = (await s.stats()).requests.consul_health - start;
    await m.close();
    assert.ok(made >= 2 && made <= 7, `${made} queries in 1 s`);
  } finally {
    await s.close();
  }
});

test("ConsulMirror emits \"change\" only for reports the core marks changed", async () => {
  const s = await startServer();
  try {
    await s.call("POST", "/_test/consul/blocking", { on: false });
    await register(s, "web-1");
    const changes = [];
    const m = new ConsulMirror({ address: s.url, registry: registry(), service: "web", minIntervalMs: 20, onChange: (r) => changes.push(r) });
    await m.start();
    // The same answer again and again: the core reports it unchanged.
    await eventually(() => m.feeds >= 5, "the same answer read several times");
    assert.deepEqual(changes.map((c) => [c.added, c.changed]), [[1, true]]);
    await s.call("PUT", "/v1/agent/service/deregister/web-1");
    await eventually(() => changes.length === 2, "the removal reported");
    assert.deepEqual([changes[1].removed, changes[1].changed], [1, true]);
    await m.close();
  } finally {
    await s.close();
  }
});

test("ConsulRegistrar registers, heartbeats, re-registers and deregisters on close", async () => {
  const s = await startServer();
  try {
    const reg = registry();
    const m = new ConsulMirror({ address: s.url, registry: reg, service: "pay", minIntervalMs: 20 });
    await m.start();
    const instance = { id: "pay-1", service: "pay", address: "10.0.0.9", port: 9000, weight: 5, zone: "eu-1a", tags: ["v2"] };
    const r = new ConsulRegistrar({ address: s.url, instance, ttl: 1, deregisterAfter: 1 });
    await r.start();
    await eventually(() => health(reg, "pay", "pay-1") === "healthy", "registered");
    const got = reg.get("pay-1").instance;
    assert.deepEqual([got.address, got.port, got.weight, got.zone, got.tags], ["10.0.0.9", 9000, 5, "eu-1a", ["v2"]]);
    await new Promise((res) => setTimeout(res, 2200)); // two TTLs: only heartbeats keep it passing
    assert.equal(health(reg, "pay", "pay-1"), "healthy");
    assert.ok(r.heartbeats >= 4 && r.error === null);
    await s.call("PUT", "/v1/agent/service/deregister/pay-1"); // the agent forgot it
    await eventually(() => r.registrations === 2, "registered again");
    await eventually(() => health(reg, "pay", "pay-1") === "healthy", "back");
    const t0 = Date.now();
    await r.close();
    await eventually(() => !("pay-1" in view(reg, "pay")), "gone at once", 1000);
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(r.status, "stopped");
    await m.close();
    await noOpenConnections(s);
  } finally {
    await s.close();
  }
});

const agentCalls = (s) => s.call("GET", "/_test/consul/agent");
const sent = (calls) => calls.map((c) => `${c.method} ${c.path}`);
// The agent calls from the update's registration on (a heartbeat may have
// gone out between `mark` and the update).
async function fromUpdate(s, mark) {
  const calls = (await agentCalls(s)).slice(mark);
  return calls.slice(calls.findIndex((c) => c.path === "/v1/agent/service/register"));
}
const sleepMs = (ms) => new Promise((res) => setTimeout(res, ms));

test("ConsulRegistrar.update maps the status, and heartbeats keep it", async () => {
  const s = await startServer();
  try {
    const reg = registry();
    const m = new ConsulMirror({ address: s.url, registry: reg, service: "pay", minIntervalMs: 20 });
    await m.start();
    const inst = { id: "pay-3", service: "pay", address: "10.0.0.9", port: 9000 };
    const beatWarn = "PUT /v1/agent/check/warn/service:pay-3";
    const beatPass = "PUT /v1/agent/check/pass/service:pay-3";
    const at = () => view(reg, "pay")["pay-3"] ?? null;
    const r = new ConsulRegistrar({ address: s.url, instance: inst, ttl: 1, deregisterAfter: 5 });
    await r.update({ ...inst, port: 9001 }); // before start: only kept
    assert.deepEqual(await agentCalls(s), []);
    await r.start();
    await eventually(() => JSON.stringify(at()) === JSON.stringify(["healthy", "10.0.0.9", 9001, null]), "registered");

    // warning: the new fields re-registered with the same ID and TTL check, the check warned.
    let mark = (await agentCalls(s)).length;
    await r.update({ ...inst, port: 9002, status: "warning" });
    const calls = await fromUpdate(s, mark);
    // The update's own calls: a heartbeat may follow them at once.
    assert.deepEqual(sent(calls).slice(0, 2), ["PUT /v1/agent/service/register", beatWarn]);
    const body = calls[0].body;
    assert.deepEqual([body.ID, body.Name, body.Port], ["pay-3", "pay", 9002]);
    assert.deepEqual(body.Check, { CheckID: "service:pay-3", Name: "waypost TTL for pay-3", TTL: "1s", Status: "warning", DeregisterCriticalServiceAfter: "5s" });
    await eventually(() => JSON.stringify(at()) === JSON.stringify(["degraded", "10.0.0.9", 9002, null]), "warning → degraded");
    assert.equal(reg.get("pay-3").status, "warning");
    await sleepMs(1500); // past the TTL: only heartbeats keep the check alive, and they keep it warning
    const beats = sent((await fromUpdate(s, mark)).slice(2)).filter((c) => c.includes("/check/"));
    assert.ok(beats.length >= 3 && beats.every((c) => c === beatWarn), beats.join(", "));
    assert.equal(health(reg, "pay", "pay-3"), "degraded");

    // maintenance: the agent's maintenance mode on a passing check.
    mark = (await agentCalls(s)).length;
    await r.update({ ...inst, status: "maintenance" });
    assert.deepEqual(sent(await fromUpdate(s, mark)).slice(0, 3), [
      "PUT /v1/agent/service/register", beatPass,
      "PUT /v1/agent/service/maintenance/pay-3?enable=true&reason=waypost%3A%20maintenance"]);
    await eventually(() => health(reg, "pay", "pay-3") === "draining", "maintenance → draining");
    assert.equal(reg.get("pay-3").status, "maintenance");
    await sleepMs(1200);
    assert.equal(health(reg, "pay", "pay-3"), "draining");
    assert.ok(sent((await fromUpdate(s, mark)).slice(3)).filter((c) => c.includes("/check/")).every((c) => c === beatPass));
    // The agent forgets it: registered again, and maintenance turned on again.
    const registrations = r.registrations;
    await s.call("PUT", "/v1/agent/service/deregister/pay-3");
    await eventually(() => r.registrations === registrations + 1, "registered again");
    await eventually(() => health(reg, "pay", "pay-3") === "draining", "still draining after the re-registration");
    const everything = sent(await agentCalls(s));
    const again = everything.lastIndexOf("PUT /v1/agent/service/register");
    assert.ok(everything.slice(again).some((c) => /^PUT \/v1\/agent\/service\/maintenance\/pay-3\?enable=true/.test(c)), everything.slice(again).join(", "));

    // Back to passing: maintenance off.
    mark = (await agentCalls(s)).length;
    await r.update(inst);
    assert.deepEqual(sent(await fromUpdate(s, mark)).slice(0, 3), [
      "PUT /v1/agent/service/register", beatPass, "PUT /v1/agent/service/maintenance/pay-3?enable=false"]);
    await eventually(() => JSON.stringify(at()) === JSON.stringify(["healthy", "10.0.0.9", 9000, null]), "passing again");
    assert.equal(reg.get("pay-3").status, "passing");

    mark = (await agentCalls(s)).length;
    await assert.rejects(r.update({ ...inst, id: "pay-4" }), TypeError); // another instance
    await assert.rejects(r.update({ ...inst, service: "web" }), TypeError);
    // A bad status is the core's verdict, the typed error of every binding.
    await assert.rejects(r.update({ ...inst, status: "draining" }), { name: "WaypostError", code: "invalid_argument" });
    assert.ok(!(await agentCalls(s)).slice(mark).some((c) => c.path === "/v1/agent/service/register"));
    assert.equal(r.instance, inst);
    assert.equal(r.error, null);
    await r.close();
    await eventually(() => !("pay-3" in view(reg, "pay")), "deregistered on close");
    mark = (await agentCalls(s)).length;
    await r.update({ ...inst, status: "critical" }); // after close: only kept
    assert.deepEqual((await agentCalls(s)).slice(mark), []);
    assert.equal(r.instance.status, "critical");
    await m.close();
    await noOpenConnections(s);
  } finally {
    await s.close();
  }
});

// The shared cases (tests/fixtures/consul/registration.json): the same
// instance gives the same registration, body bytes included, in every
// language; and the registrar sends exactly that body and those paths.
test("consulRegistration is the core's, byte for byte, and the registrar sends its body and paths", async () => {
  const { cases } = JSON.parse(readFileSync(join(FIXTURES, "consul", "registration.json"), "utf8"));
  for (const c of cases) {
    const build = () => consulRegistration(c.instance, c.ttl_s, c.deregister_after_s);
    if (c.error !== undefined) {
      assert.throws(build, { name: "WaypostError", code: c.error }, c.name);
      continue;
    }
    const e = c.expect;
    assert.deepEqual(build(), { id: e.id, service: e.service, checkId: e.check_id, body: e.body, heartbeatPath: e.heartbeat_path,
      maintenance: e.maintenance, deregisterPath: e.deregister_path, maintenanceOnPath: e.maintenance_on_path,
      maintenanceOffPath: e.maintenance_off_path }, c.name);
  }
  const s = await startServer();
  try {
    const [first] = cases;
    const r = new ConsulRegistrar({ address: s.url, instance: first.instance, ttl: first.ttl_s, deregisterAfter: first.deregister_after_s });
    await r.start();
    const calls = await agentCalls(s);
    await r.close();
    assert.equal(calls[0].path, "/v1/agent/service/register");
    assert.equal(calls[0].raw, first.expect.body);
    // The paths, escaping included: registered, drained, back to passing, closed.
    for (const c of cases.filter((c) => c.expect !== undefined)) {
      const e = c.expect;
      const mark = (await agentCalls(s)).length;
      const passing = { ...c.instance, status: "passing" };
      const r = new ConsulRegistrar({ address: s.url, instance: passing, ttl: 10, deregisterAfter: c.deregister_after_s });
      await r.start();
      await r.update({ ...passing, status: "maintenance" });
      await r.update(passing);
      await r.close();
      const beat = "/v1/agent/check/pass/" + e.heartbeat_path.slice(e.heartbeat_path.lastIndexOf("/") + 1);
      assert.deepEqual((await agentCalls(s)).slice(mark).map((call) => call.path), [
        "/v1/agent/service/register", beat,
        "/v1/agent/service/register", beat, e.maintenance_on_path,
        "/v1/agent/service/register", beat, e.maintenance_off_path,
        e.deregister_path], c.name);
    }
  } finally {
    await s.close();
  }
});

test("Consul helpers: errors are visible, AbortSignal closes", async () => {
  const s = await startServer();
  const dead = s.url;
  await s.close();
  const seen = [];
  const ac = new AbortController();
  const m = new ConsulMirror({ address: dead, registry: registry(), service: "web", onError: (e) => seen.push(e), signal: ac.signal });
  const started = m.start();
  await eventually(() => seen.length >= 2, "failures reported");
  assert.ok(m.error instanceof ConsulError && m.error.message.includes(dead));
  assert.equal(m.status, "retrying");
  ac.abort();
  await assert.rejects(started, ConsulError);
  await m.close();
  assert.equal(m.status, "stopped");
  await assert.rejects(new ConsulRegistrar({ address: dead, instance: { id: "a", service: "b", address: "x", port: 1 } }).start(), ConsulError);
  assert.throws(() => new ConsulRegistrar({ address: dead, instance: { id: "a" } }), { name: "WaypostError", code: "invalid_argument" });
});

const SLICE_LIST = JSON.parse(readFileSync(join(FIXTURES, "k8s", "endpointslice-list.json"), "utf8"));
const sliceOf = (name, ip, pod, ready = true) => ({
  kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1", addressType: "IPv4",
  metadata: { name, namespace: "shop", labels: { "kubernetes.io/service-name": "api" } },
  endpoints: [{ addresses: [ip], conditions: { ready }, zone: "z1", targetRef: { kind: "Pod", namespace: "shop", name: pod } }],
  ports: [{ name: "http", port: 8080, protocol: "TCP" }],
});
const k8sMirror = (s, reg, extra = {}) => new K8sMirror({ apiServer: s.url, registry: reg, namespace: "shop", service: "api", port: "http", token: "s3cret", ...extra });
const watching = (s) => eventually(async () => (await s.stats()).watches === 1, "watching");

test("K8sMirror lists, follows the watch, takes bookmarks, relists on in-stream and HTTP 410", async () => {
  const s = await startServer("s3cret");
  try {
    await s.call("POST", "/_test/k8s/load", { namespace: "shop", list: SLICE_LIST });
    const reg = registry();
    const direct = registry();
    direct.sourceAdd("k8s", { kind: "k8s", namespace: "shop", service: "api", port: "http" });
    direct.sourceFeed("k8s", JSON.stringify(SLICE_LIST), 1, { status: 200 });
    const changes = [];
    const m = k8sMirror(s, reg, { onChange: (r) => changes.push(r) });
    await m.start();
    assert.deepEqual(view(reg, "api"), view(direct, "api"));
    await watching(s);
    await s.call("POST", "/_test/k8s/put", { slice: sliceOf("api-new", "10.9.0.1", "api-new-pod") });
    await eventually(() => "api-new-pod" in view(reg, "api"), "ADDED applied");
    assert.deepEqual(view(reg, "api")["api-new-pod"], ["healthy", "10.9.0.1", 8080, "z1"]);
    await s.call("POST", "/_test/k8s/put", { slice: sliceOf("api-new", "10.9.0.1", "api-new-pod", false) });
    await eventually(() => health(reg, "api", "api-new-pod") === "unhealthy", "MODIFIED applied");
    await s.call("POST", "/_test/k8s/delete", { namespace: "shop", name: "api-new" });
    await eventually(() => !("api-new-pod" in view(reg, "api")), "DELETED applied");
    assert.equal(m.lists, 1);

    // Bookmark: the resume point moves; compacted history behind it costs no relist.
    const { k8s_resource_version: rv } = await s.call("POST", "/_test/k8s/bookmark");
    await eventually(() => m.resourceVersion === String(rv), "bookmark taken");
    await s.call("POST", "/_test/k8s/compact");
    await s.call("POST", "/_test/k8s/drop");
    await eventually(async () => (await s.stats()).requests.k8s_watch >= 2, "watching again");
    assert.equal(m.lists, 1);
    assert.equal((await s.stats()).requests.k8s_watch_410, undefined);

    // In-stream ERROR 410 → list again.
    await watching(s);
    await s.call("POST", "/_test/k8s/expire");
    await eventually(() => m.lists === 2, "listed again after ERROR");
    assert.ok(changes.some((c) => c.resync));

    // HTTP 410 on the re-watch → list again.
    await watching(s);
    await s.call("POST", "/_test/k8s/compact", { bump: 3 });
    await s.call("POST", "/_test/k8s/drop");
    await eventually(() => m.lists === 3, "listed again after HTTP 410");
    assert.equal((await s.stats()).requests.k8s_watch_410, 1);
    await s.call("POST", "/_test/k8s/put", { slice: sliceOf("api-z", "10.9.0.9", "pod-z") });
    await eventually(() => "pod-z" in view(reg, "api"), "followed after the relists");
    assert.equal(m.error, null);
    await m.close();
    await noOpenConnections(s);
  } finally {
    await s.close();
  }
});

test("K8sMirror: service-account defaults, a refused token, no cluster", async () => {
  const s = await startServer("s3cret");
  try {
    const dir = mkdtempSync(join(tmpdir(), "waypost-sa-"));
    writeFileSync(join(dir, "token"), "s3cret\n");
    writeFileSync(join(dir, "namespace"), "shop");
    await s.call("POST", "/_test/k8s/put", { slice: sliceOf("api-a", "10.0.0.1", "pod-a") });
    const reg = registry();
    const m = new K8sMirror({ apiServer: s.url, registry: reg, service: "api", port: "http", serviceAccountDir: dir });
    await m.start();
    assert.equal(m.namespace, "shop");
    assert.deepEqual(Object.keys(view(reg, "api")), ["pod-a"]);
    await m.close();
    const seen = [];
    const bad = k8sMirror(s, registry(), { token: "nope", onError: (e) => seen.push(e) });
    bad.start().catch(() => {});
    await eventually(() => seen.length >= 1, "401 reported");
    assert.ok(bad.error instanceof KubernetesError && bad.error.status === 401);
    await bad.close();
    const saved = process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_HOST;
    assert.throws(() => new K8sMirror({ registry: registry(), namespace: "shop", service: "api" }), /KUBERNETES_SERVICE_HOST/);
    if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
    assert.throws(() => new K8sMirror({ apiServer: s.url, registry: registry(), service: "api", serviceAccountDir: join(dir, "missing") }), /namespace/);
    assert.throws(() => new K8sMirror({ apiServer: "https://127.0.0.1:1", registry: registry(), namespace: "shop", service: "api", caFile: join(dir, "nope.crt") }), /CA file/);
    await noOpenConnections(s);
  } finally {
    await s.close();
  }
});
