// The whole Node path of a 10 000-key etcd range: the payload in, the
// registry updated (one `sourceFeed` into the WebAssembly module), built as
// the core's criterion bench and bindings-python/bench/feed_range.py build
// it (the same instances, keys and base64 values), beside what the module
// boundary itself costs: encoding the payload's text into the module's
// memory, and decoding bytes into text (what a body read as bytes pays).
//
//   node bindings-wasm/npm/scripts/feed_range.mjs     (after `make wasm`)
//
// Each figure is the median of 9 runs in CPU time (the process's, so other
// processes on a shared machine do not count).
import { Registry } from "../dist/node.js";

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

const runs = { empty: [], unchanged: [], emptyBytes: [], encode: [], decode: [] };
const scratch = new Uint8Array(bytes.length);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
for (let r = 0; r < 9; r++) {
  const reg = mirror();
  let [ms, rep] = cpu(() => reg.sourceFeed("etcd", payload, 0));
  if (rep.added !== N) throw new Error(JSON.stringify(rep));
  runs.empty.push(ms);
  [ms, rep] = cpu(() => reg.sourceFeed("etcd", payload, 1));
  if (rep.unchanged !== N) throw new Error(JSON.stringify(rep));
  runs.unchanged.push(ms);
  [ms, rep] = cpu(() => mirror().sourceFeed("etcd", bytes, 0));
  if (rep.added !== N) throw new Error(JSON.stringify(rep));
  runs.emptyBytes.push(ms);
  runs.encode.push(cpu(() => encoder.encodeInto(payload, scratch))[0]);
  runs.decode.push(cpu(() => decoder.decode(bytes))[0]);
}
const f = (xs) => `${median(xs).toFixed(1)} ms`;
console.log(`payload ${(payload.length / 1e6).toFixed(1)} MB, Node ${process.version}, median of 9 (CPU time)`);
console.log(`node sourceFeed, 10 000 keys into an empty registry: ${f(runs.empty)}`);
console.log(`node sourceFeed, 10 000 keys, registry already in sync: ${f(runs.unchanged)}`);
console.log(`node sourceFeed of the same payload as bytes, into an empty registry: ${f(runs.emptyBytes)}`);
console.log(`floor: TextEncoder.encodeInto of the payload: ${f(runs.encode)}`);
console.log(`floor: TextDecoder.decode of the payload's bytes: ${f(runs.decode)}`);
