// The whole Node path of a 10 000-key etcd range: the payload in, the
// registry updated (one `sourceFeed` into the WebAssembly module), built as
// the core's criterion bench and bindings-python/bench/feed_range.py build
// it (the same instances, keys and base64 values), beside what the module
// boundary itself costs: encoding the payload's text into the module's
// memory, and decoding bytes into text (what a body read as bytes pays).
//
//   node bindings-wasm/npm/scripts/feed_range.mjs     (after `make wasm`)
//
// Both modules are measured, alternating, each in fresh processes: Node's
// (waypost_wasm_node.wasm, what the package loads in Node) and the
// browser's size-built one run in Node. The first feed of a process is
// reported on its own: it runs while V8 is still compiling the module's
// functions (baseline code first, optimized code in the background), which
// is what a mirror's start pays. Every other figure is the median of 9
// runs in CPU time (the process's, so other processes on a shared machine
// do not count), each registry freed after its run: registries left to the
// garbage collector pile up in the module's memory and made later runs 2-4×
// slower.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const MODULES = ["node", "browser"];
const ROUNDS = 2;

if (!process.env.WAYPOST_WASM) {
  const results = Object.fromEntries(MODULES.map((m) => [m, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const m of MODULES) {
      const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
        env: { ...process.env, WAYPOST_WASM: m },
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
      });
      if (child.status !== 0) process.exit(child.status ?? 1);
      results[m].push(JSON.parse(child.stdout));
    }
  }
  const { payloadBytes, node } = results.node[0];
  console.log(`payload ${payloadBytes} B, Node ${node}, CPU time in ms; ${ROUNDS} processes per module, alternating`);
  const rows = [
    ["first feed of a process, into an empty registry", "first"],
    ["sourceFeed (string), into an empty registry, median of 9", "empty"],
    ["sourceFeed (string), registry already in sync, median of 9", "unchanged"],
    ["sourceFeed (bytes), into an empty registry, median of 9", "emptyBytes"],
    ["floor: TextEncoder.encodeInto of the payload", "encode"],
    ["floor: TextDecoder.decode of the payload's bytes", "decode"],
  ];
  for (const m of MODULES) {
    console.log(`${results[m][0].moduleFile}:`);
    for (const [label, key] of rows) {
      console.log(`  ${label.padEnd(62)} ${results[m].map((r) => r[key].toFixed(1)).join(" / ")}`);
    }
  }
  process.exit(0);
}

const { Registry, moduleFile } = await import("./module.mjs");
const N = 10_000;
const b64 = (text) => Buffer.from(text).toString("base64");

function kv(i) {
  const id = `api-${String(i).padStart(7, "0")}`;
  const value = {
    id, service: "api", address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 8080,
    weight: 1 + (i % 7), tags: ["v1"], meta: {}, zone: "eu-1", priority: 0,
  };
  return JSON.stringify({
    key: b64(`/waypost/services/api/${id}`), create_revision: "2", mod_revision: "5", version: "1",
    value: b64(JSON.stringify(value)), lease: "7587869812316352005",
  });
}

const payload = `{"header":{"cluster_id":"1","member_id":"2","revision":"10","raft_term":"2"},"kvs":[${
  Array.from({ length: N }, (_, i) => kv(i)).join(",")}],"count":"${N}"}`;
const bytes = new TextEncoder().encode(payload);

function cpu(f) {
  const c0 = process.cpuUsage();
  const out = f();
  const c = process.cpuUsage(c0);
  return [(c.user + c.system) / 1000, out];
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

function mirror() {
  const reg = new Registry({ seed: 1 });
  reg.sourceAdd("etcd", { kind: "etcd" });
  return reg;
}

/** CPU ms of feeding `body` into `reg`, checked by the report's `key`. */
function feed(reg, body, now, key) {
  const [ms, rep] = cpu(() => reg.sourceFeed("etcd", body, now));
  if (rep[key] !== N) throw new Error(JSON.stringify(rep));
  return ms;
}

const first = mirror();
const out = { moduleFile, node: process.version, payloadBytes: bytes.length, first: feed(first, payload, 0, "added") };
first.free();
const runs = { empty: [], unchanged: [], emptyBytes: [], encode: [], decode: [] };
const scratch = new Uint8Array(bytes.length);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
for (let r = 0; r < 9; r++) {
  const reg = mirror();
  runs.empty.push(feed(reg, payload, 0, "added"));
  runs.unchanged.push(feed(reg, payload, 1, "unchanged"));
  reg.free();
  const again = mirror();
  runs.emptyBytes.push(feed(again, bytes, 0, "added"));
  again.free();
  runs.encode.push(cpu(() => encoder.encodeInto(payload, scratch))[0]);
  runs.decode.push(cpu(() => decoder.decode(bytes))[0]);
}
for (const [key, xs] of Object.entries(runs)) out[key] = median(xs);
console.log(JSON.stringify(out));
