// The etcd the other tests run against: free ports, restart, SIGKILL, a cluster.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { EtcdCluster, EtcdServer, ephemeralLow, freePort } from "./etcd-harness.mjs";

test("a member survives SIGKILL and restarts on its data", async () => {
  const etcd = new EtcdServer();
  try {
    await etcd.start();
    const rev = await etcd.client.put("/h/a", "1");
    const pid = etcd.child.pid;
    await etcd.kill();
    assert.equal(etcd.running, false);
    await assert.rejects(etcd.client.revision());
    await etcd.start();
    assert.notEqual(etcd.child.pid, pid);
    assert.deepEqual(await etcd.client.getPrefix("/h/"), { "/h/a": "1" });
    assert.equal(await etcd.client.revision(), rev);
  } finally {
    await etcd.close();
  }
  assert.equal(existsSync(etcd.workdir), false);
});

test("a cluster carries on without its leader", async () => {
  const cluster = new EtcdCluster();
  try {
    await cluster.start();
    assert.equal(new Set(cluster.endpoints).size, 3);
    const leader = await cluster.waitLeader();
    await leader.client.put("/h/k", "v");
    await leader.kill();
    const rest = cluster.members.filter((m) => m.running);
    assert.equal(rest.length, 2);
    assert.ok(rest.includes(await cluster.waitLeader()));
    await rest[0].client.put("/h/k2", "v2");
    assert.deepEqual(await rest[1].client.getPrefix("/h/"), { "/h/k": "v", "/h/k2": "v2" });
  } finally {
    await cluster.close();
  }
});

test("ports are chosen below the ephemeral range", async () => {
  // etcd binds its ports after they are chosen; one from the range the
  // kernel hands to outgoing connections could be taken meanwhile.
  const low = ephemeralLow();
  const ports = [];
  for (let i = 0; i < 1000; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length);
  if (low > 12000) assert.ok(ports.every((p) => p >= 10000 && p < low), `${low}: ${ports}`);
});
