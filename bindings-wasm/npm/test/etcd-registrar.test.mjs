// EtcdRegistrar against a real etcd: lease, keep-alive, loss, revoke, failover.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { EtcdRegistrar, EtcdError } from "../dist/etcd.js";
import { EtcdServer, freePort } from "./etcd-harness.mjs";

const API1 = { id: "api-1", service: "api", address: "10.0.0.1", port: 8080 };
let etcd;
let n = 0;
const fresh = () => `/node-reg-${n++}`;
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

async function eventually(cond, ms, what) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await delay(50);
  }
}

before(async () => { etcd = await new EtcdServer().start(); });
after(async () => { await etcd.close(); });

test("registers with a lease, keeps it alive and revokes on close", async () => {
  const prefix = fresh();
  const r = new EtcdRegistrar({ endpoints: [etcd.endpoint], instance: API1, prefix, ttl: 1 });
  await r.start();
  try {
    assert.equal(r.grantedTtl, 2); // etcd raises a TTL below its minimum
    assert.equal(r.key, `${prefix}/api/api-1`);
    assert.deepEqual(JSON.parse((await etcd.client.getPrefix(prefix))[r.key]), API1);
    await delay(3000); // past the TTL: only the keep-alives hold the key
    assert.ok(r.key in (await etcd.client.getPrefix(prefix)));
    assert.equal(r.error, null);
    assert.equal(r.status, "registered");
    assert.equal(r.registrations, 1);
  } finally {
    await r.close();
  }
  assert.deepEqual(await etcd.client.getPrefix(prefix), {});
  assert.equal(r.status, "stopped");
  await r.close();
});

test("a lost lease is noticed and registered again", async () => {
  const prefix = fresh();
  const r = await new EtcdRegistrar({ endpoints: etcd.endpoint, instance: API1, prefix, ttl: 3 }).start();
  try {
    const first = r.leaseId;
    await etcd.client.call("/v3/lease/revoke", { ID: first });
    await eventually(() => r.registrations === 2, 3000, "registered again");
    assert.notEqual(r.leaseId, first);
    assert.ok(r.key in (await etcd.client.getPrefix(prefix)));
  } finally {
    await r.close();
  }
});

test("an update is written under the lease and outlives a lost lease", async () => {
  const prefix = fresh();
  const drained = { ...API1, status: "maintenance" };
  const r = await new EtcdRegistrar({ endpoints: [etcd.endpoint], instance: API1, prefix, ttl: 3 }).start();
  const value = async () => JSON.parse((await etcd.client.getPrefix(prefix))[r.key] ?? "null");
  try {
    const lease = r.leaseId;
    await r.update(drained);
    assert.deepEqual(await value(), drained);
    assert.equal(r.leaseId, lease);
    const [kv] = (await etcd.client.call("/v3/kv/range", { key: Buffer.from(r.key).toString("base64") })).kvs;
    assert.equal(kv.lease, lease);
    // The lease is revoked from outside: the registration that follows
    // writes the updated value, not the one given at construction.
    await etcd.client.call("/v3/lease/revoke", { ID: lease });
    await eventually(async () => (await value()) !== null, 5000, "registered again");
    assert.notEqual(r.leaseId, lease);
    assert.equal(r.registrations, 2);
    assert.deepEqual(await value(), drained);
    // An update while the lease is gone registers again at once.
    await etcd.client.call("/v3/lease/revoke", { ID: r.leaseId });
    await r.update(API1);
    assert.deepEqual(await value(), API1);
    assert.equal(r.registrations, 3);
    await assert.rejects(r.update({ ...API1, id: "api-2" }), TypeError);
    await assert.rejects(r.update({ ...API1, service: "web" }), TypeError);
  } finally {
    await r.close();
  }
  assert.deepEqual(await etcd.client.getPrefix(prefix), {});
  await r.update(drained); // after close: kept, nothing written
  assert.deepEqual(await etcd.client.getPrefix(prefix), {});
  assert.equal(r.value, JSON.stringify(drained));
});

test("a deleted key is put back on the same lease", async () => {
  const prefix = fresh();
  const r = await new EtcdRegistrar({ endpoints: [etcd.endpoint], instance: API1, prefix, ttl: 3 }).start();
  try {
    const lease = r.leaseId;
    await etcd.client.delete(r.key);
    await eventually(async () => r.key in (await etcd.client.getPrefix(prefix)), 3000, "key put back");
    assert.equal(r.leaseId, lease);
    assert.equal(r.registrations, 1);
  } finally {
    await r.close();
  }
});

test("a dead endpoint is skipped; none answering is an error naming them", async () => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  const r = await new EtcdRegistrar({ endpoints: [dead, etcd.endpoint], instance: API1, prefix: fresh(), ttl: 2 }).start();
  assert.equal(r.endpoint, etcd.endpoint);
  await r.close();
  const lonely = new EtcdRegistrar({ endpoints: [dead], instance: API1 });
  await assert.rejects(lonely.start(), (e) => e instanceof EtcdError && e.message.includes(dead) && e.message.includes("/v3/lease/grant"));
  await lonely.close();
});

test("bad arguments are TypeErrors", () => {
  assert.throws(() => new EtcdRegistrar({ endpoints: ["http://127.0.0.1:1"], instance: { service: "api" } }), TypeError);
  assert.throws(() => new EtcdRegistrar({ endpoints: [], instance: API1 }), TypeError);
  assert.throws(() => new EtcdRegistrar({ endpoints: ["ftp://127.0.0.1:1"], instance: API1 }), TypeError);
  assert.throws(() => new EtcdRegistrar({ endpoints: ["http://127.0.0.1:1"], instance: API1, ttl: 0 }), TypeError);
});

test("an etcd crash is visible; the registrar re-attaches; an AbortSignal closes it", async () => {
  const own = await new EtcdServer().start();
  const errors = [];
  const ac = new AbortController();
  const prefix = fresh();
  const r = await new EtcdRegistrar({ endpoints: [own.endpoint], instance: API1, prefix, ttl: 2, signal: ac.signal, onError: (e) => errors.push(e) }).start();
  try {
    const lease = r.leaseId;
    await own.kill();
    await eventually(() => r.error !== null, 3000, "error visible");
    assert.equal(r.status, "retrying");
    assert.ok(errors[0] instanceof EtcdError && errors[0].message.includes(own.endpoint));
    await own.start();
    await eventually(() => r.error === null, 5000, "healthy again");
    assert.ok(r.key in (await own.client.getPrefix(prefix)));
    assert.equal(r.leaseId, lease); // etcd extends live leases across a restart
    ac.abort();
    await eventually(() => r.status === "stopped", 3000, "closed by the signal");
    assert.deepEqual(await own.client.getPrefix(prefix), {});
  } finally {
    await r.close();
    await own.close();
  }
});
