// The etcd helpers against a real etcd serving its clients over TLS, with a
// certificate from a throwaway CA made for the test (openssl CLI).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "../dist/node.js";
import { EtcdMirror, EtcdRegistrar, EtcdError } from "../dist/etcd.js";
import { EtcdServer, makeCerts } from "./etcd-harness.mjs";

const API1 = { id: "api-1", service: "api", address: "10.0.0.1", port: 8080 };
const folder = mkdtempSync(join(tmpdir(), "waypost-tls-"));
const certs = makeCerts(folder);
let etcd;

before(async () => { if (certs) etcd = await new EtcdServer({ workdir: folder, tls: certs }).start(); });
after(async () => { await etcd?.close(); rmSync(folder, { recursive: true, force: true }); });

async function eventually(cond, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const health = (reg, id) => { try { return reg.get(id).health; } catch { return null; } };

test("registrar and mirror work over https with the CA file", { skip: certs ? false : "no openssl CLI" }, async () => {
  assert.ok(etcd.endpoint.startsWith("https://"));
  const reg = new Registry({ seed: 1 });
  const r = await new EtcdRegistrar({ endpoints: [etcd.endpoint], instance: API1, prefix: "/tls", ttl: 2, caFile: certs.ca }).start();
  const m = new EtcdMirror({ endpoints: [etcd.endpoint], registry: reg, prefix: "/tls", caFile: certs.ca });
  try {
    await m.start();
    await eventually(() => health(reg, "api-1") === "healthy", "the mirror to see the instance");
    await r.update({ ...API1, status: "maintenance" });
    await eventually(() => health(reg, "api-1") === "draining", "the mirror to see the update");
    assert.equal(r.error, null);
    assert.equal(m.error, null);
  } finally {
    await m.close();
    await r.close();
  }
  assert.deepEqual(await etcd.client.getPrefix("/tls"), {});
});

test("without the CA file the certificate is refused, visibly", { skip: certs ? false : "no openssl CLI" }, async () => {
  const r = new EtcdRegistrar({ endpoints: [etcd.endpoint], instance: API1, prefix: "/tls-no-ca" });
  await assert.rejects(r.start(), (e) => e instanceof EtcdError && /certificate/i.test(e.message) && e.message.includes(etcd.endpoint));
  await r.close();
  const errors = [];
  const m = new EtcdMirror({ endpoints: [etcd.endpoint], registry: new Registry(), prefix: "/tls-no-ca", onError: (e) => errors.push(e) });
  m.start().catch(() => {});
  await eventually(() => errors.length > 0, "an error reported");
  await m.close();
  assert.ok(errors[0] instanceof EtcdError && /certificate/i.test(errors[0].message), errors[0].message);
  assert.equal(m.synced, false);
});
