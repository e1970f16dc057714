// The sources API (SPEC §10) through the npm package: conversions, reports, errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Registry, WaypostError } from "../dist/node.js";

const entry = (i, extra = {}) => ({ id: `api-${i}`, service: "api", address: `10.0.0.${i}`, port: 8080, ...extra });
const REPORT_KEYS = ["added", "changed", "held", "rejected", "removed", "resync", "unchanged", "updated"];

test("sync reconciles and reports", () => {
  const reg = new Registry({ seed: 1 });
  let r = reg.sync("etcd", "api", [entry(1), entry(2, { status: "warning" })], 1);
  assert.deepEqual(Object.keys(r).sort(), REPORT_KEYS);
  assert.equal(r.added, 2);
  assert.equal(r.changed, true);
  assert.equal(reg.get("api-2", 1).health, "degraded");
  r = reg.sync("etcd", "api", [entry(1), entry(2, { status: "warning" })], 2);
  assert.equal(r.unchanged, 2);
  assert.equal(r.changed, false);
  r = reg.sync("etcd", "api", [entry(1, { weight: 3 })], 3);
  assert.equal(r.updated, 1);
  assert.equal(r.removed, 1);
  assert.deepEqual(reg.discover("api", 3).instances.map((i) => i.id), ["api-1"]);
  r = reg.sync("etcd", "api", [entry(1, { weight: 3 }), { id: "x", service: "api", port: 1 }], 4);
  assert.equal(r.rejected.length, 1);
  assert.equal(r.rejected[0].code, "invalid_argument");
});

test("incremental put and delete; camelCase fields", () => {
  const reg = new Registry({ seed: 1 });
  assert.equal(reg.sourcePut("etcd", entry(1, { ttlMs: 5000 }), 1).added, 1);
  assert.equal(reg.sourcePut("etcd", entry(1, { status: "maintenance" }), 2).updated, 1);
  assert.equal(reg.get("api-1", 2).health, "draining");
  assert.equal(reg.sourceDelete("etcd", "api-1", 3).removed, 1);
  assert.equal(reg.sourceDelete("etcd", "api-1", 4).removed, 0);
});

test("ownership conflicts and mirror declarations", () => {
  const reg = new Registry({ seed: 1 });
  reg.sourcePut("etcd", entry(1), 1);
  assert.throws(() => reg.deregister("api-1", 2), (e) => e instanceof WaypostError && e.code === "conflict");
  assert.throws(() => reg.sourcePut("consul", entry(1), 2), (e) => e.code === "conflict");
  assert.throws(() => reg.sourceRequest("etcd"), (e) => e.code === "invalid_argument");
  assert.throws(() => reg.sourceAdd("x", { kind: "nope" }), (e) => e.code === "invalid_argument");
  assert.throws(() => reg.sourceFeed("etcd", "{}", 1), (e) => e.code === "invalid_argument");
  assert.throws(() => reg.sourceFeed("etcd", "{}", 1, { status: 70000 }), (e) => e.code === "invalid_argument");
  assert.throws(() => reg.sourceFeed("etcd", new Uint8Array([0xff]), 1), (e) => e.code === "invalid_argument");
});

test("wrong types are TypeErrors and leave the registry usable", () => {
  const reg = new Registry({ seed: 1 });
  assert.throws(() => reg.sync("etcd", "api", "nope", 1), (e) => e.code === "invalid_argument"); // not an array: the core says so
  assert.equal(reg.sync("etcd", "api", [7], 1).rejected[0].at, "0"); // one bad element is a rejected record
  assert.throws(() => reg.sync("etcd", "api", [1n], 1), TypeError); // not JSON at all
  assert.throws(() => reg.sourcePut("etcd", null, 1), TypeError);
  assert.throws(() => reg.sourceFeed("etcd", 42, 1), TypeError);
  assert.throws(() => reg.sourceAdd(7, { kind: "etcd" }), TypeError);
  assert.throws(() => reg.sourceAdd("etcd", "x"), TypeError);
  assert.equal(reg.sync("etcd", "api", [entry(1)], 5).added, 1);
});

test("an etcd range answer over gRPC is fed as bytes and reads as the gateway's", async () => {
  const { readFileSync } = await import("node:fs");
  const dir = new URL("../../../tests/fixtures/etcd-grpc/", import.meta.url);
  const byGrpc = new Registry({ seed: 1 });
  byGrpc.sourceAdd("etcd", { kind: "etcd", grpc: true });
  const req = byGrpc.sourceRequest("etcd");
  assert.equal(req.path, "/etcdserverpb.KV/Range");
  assert.equal(req.grpc, true);
  assert.equal(req.stream, false);
  const a = byGrpc.sourceFeed("etcd", new Uint8Array(readFileSync(new URL("range.grpc", dir))), 1);
  assert.equal(a.added, 4);
  const byJson = new Registry({ seed: 1 });
  byJson.sourceAdd("etcd", { kind: "etcd" });
  assert.equal("grpc" in byJson.sourceRequest("etcd"), false);
  assert.deepEqual(byJson.sourceFeed("etcd", readFileSync(new URL("range-gateway.json", dir), "utf8"), 1), a);
  assert.deepEqual(byGrpc.sourceRequest("etcd"), byJson.sourceRequest("etcd")); // the watch: the gateway's
  assert.throws(() => byGrpc.sourceFeed("etcd", new Uint8Array([0, 0, 0, 0, 9, 10]), 2), (e) => e.code === "invalid_argument");
});
