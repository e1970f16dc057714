// One member of the cross-language fleet test (driven by
// bindings-c/go/etcd/fleet_test.go): registers its instance with
// EtcdRegistrar, mirrors etcd into a Registry and answers JSON-line
// commands on stdin.
import { createInterface } from "node:readline";
import { Registry } from "../dist/node.js";
import { EtcdMirror, EtcdRegistrar } from "../dist/etcd.js";

const [endpointList, prefix, instanceJson] = process.argv.slice(2);
const endpoints = endpointList.split(",");
const reg = new Registry({ seed: 7 });
let registrar = await new EtcdRegistrar({ endpoints, instance: JSON.parse(instanceJson), prefix, ttl: 2 }).start();
const mirror = new EtcdMirror({ endpoints, registry: reg, prefix });
await mirror.start();
console.log(JSON.stringify({ ready: true }));

const pick = (strategy, options) => reg.pick("api", strategy, options).instance.id;
for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line);
  let out = {};
  if (cmd.op === "ids") {
    try {
      const d = reg.discover("api", { all: true });
      out = { ids: d.instances.map((i) => i.id), health: d.health };
    } catch (e) {
      if (e.code !== "unknown_service") throw e;
      out = { ids: [], health: [] };
    }
  } else if (cmd.op === "picks") {
    out = {
      hash: Array.from({ length: 20 }, (_, i) => pick("consistent_hash", { key: `k${i}` })),
      random: Array.from({ length: 10 }, () => pick("random")),
      weighted: Array.from({ length: 10 }, () => pick("weighted_random")),
      rr: Array.from({ length: 6 }, () => pick("round_robin")),
    };
  } else if (cmd.op === "stop_registrar" && registrar !== null) {
    await registrar.close();
    registrar = null;
  }
  console.log(JSON.stringify(out));
  if (cmd.op === "exit") break;
}
await mirror.close();
if (registrar !== null) await registrar.close();
process.stdin.destroy();
