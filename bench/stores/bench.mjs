// put → mirror updated, and a 10 000-instance mirror start, for waypost's
// etcd mirrors in Node, Python and Go, each beside the peer measured in the
// same run against the same etcd: the `etcd3` npm client (gRPC), its watch
// for the latency and a plain prefix read into a Map for the start.
//
//   node bench/stores/bench.mjs        (make etcd-bench builds what it needs)
//
// Needs: bindings-wasm/npm/dist (make wasm), target/py-venv (make
// python-venv), target/release/libwaypost.a (make c-lib), /usr/bin/etcd, and
// `npm ci` in bench/stores for etcd3.
import { execFileSync } from "node:child_process";
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Etcd3 } from "etcd3";
import { Registry } from "../../bindings-wasm/npm/dist/node.js";
import { EtcdMirror } from "../../bindings-wasm/npm/dist/etcd.js";
import { EtcdServer } from "../../bindings-wasm/npm/test/etcd-harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const LAT_N = Number(process.env.BENCH_LAT_N ?? 300);
const BIG = Number(process.env.BENCH_BIG ?? 10_000);
const REPS = Number(process.env.BENCH_REPS ?? 5);

const ms = (ns) => Number(ns) / 1e6;
const sleep = (t) => new Promise((r) => setTimeout(r, t));
function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { median: at(0.5), p99: at(0.99), n: s.length };
}
const fmt = (x) => x.toFixed(2);
const value = (id, i) => JSON.stringify({ id, service: "api", address: `10.0.${(i >> 8) & 255}.${i & 255}`, port: 8080 });

const etcd = await new EtcdServer().start();
const client = new Etcd3({ hosts: etcd.endpoint.replace("http://", "") });
const results = [];
try {
  // --- put → seen: one etcd3 put, two observers (etcd3 watch, waypost mirror)
  const prefix = "/bench/lat";
  const watcher = await client.watch().prefix(`${prefix}/`).create();
  let peerSeen = null;
  watcher.on("put", () => peerSeen?.());
  const reg = new Registry({ seed: 1 });
  let mirrorSeen = null;
  const mirror = new EtcdMirror({ endpoints: [etcd.endpoint], registry: reg, prefix, onChange: () => mirrorSeen?.() });
  await mirror.start();
  const peer = [];
  const ours = [];
  for (let i = 0; i < LAT_N + 20; i++) {
    const id = `api-${i % 50}`;
    const t0 = process.hrtime.bigint();
    let tPeer;
    let tOurs;
    const both = Promise.all([
      new Promise((r) => { peerSeen = () => { tPeer = process.hrtime.bigint(); peerSeen = null; r(); }; }),
      new Promise((r) => { mirrorSeen = () => { tOurs = process.hrtime.bigint(); mirrorSeen = null; r(); }; }),
    ]);
    await client.put(`${prefix}/api/${id}`).value(value(id, i));
    await both;
    if (i >= 20) { peer.push(ms(tPeer - t0)); ours.push(ms(tOurs - t0)); }
  }
  await mirror.close();
  await watcher.cancel();
  results.push({ what: "put → seen (ms)", lang: "node", ours: stats(ours), peer: stats(peer) });

  // --- a 10 000-instance prefix
  const big = "/bench/big";
  for (let i = 0; i < BIG; i += 250) {
    await Promise.all(Array.from({ length: Math.min(250, BIG - i) }, (_, k) => {
      const id = `api-${i + k}`;
      return client.put(`${big}/api/${id}`).value(value(id, i + k));
    }));
  }
  const peerStart = [];
  const oursStart = [];
  for (let r = 0; r < REPS; r++) {
    let t0 = process.hrtime.bigint();
    const map = new Map(Object.entries(await client.getAll().prefix(`${big}/`).strings()));
    peerStart.push(ms(process.hrtime.bigint() - t0));
    if (map.size !== BIG) throw new Error(`etcd3 read ${map.size}`);
    t0 = process.hrtime.bigint();
    const reg2 = new Registry({ seed: 1 });
    const m = new EtcdMirror({ endpoints: [etcd.endpoint], registry: reg2, prefix: big });
    await m.start();
    while (m.feeds < 2) await new Promise((res) => setImmediate(res)); // the watch is open
    oursStart.push(ms(process.hrtime.bigint() - t0));
    if (reg2.size !== BIG) throw new Error(`mirror holds ${reg2.size}`);
    await m.close();
    reg2.free();
  }
  results.push({ what: `${BIG}-instance start (ms)`, lang: "node", ours: stats(oursStart), peer: stats(peerStart) });

  // --- Python and Go, same etcd, same run
  const env = { ...process.env, BENCH_LAT_N: String(LAT_N), BENCH_REPS: String(REPS) };
  const python = join(root, "target/py-venv/bin/python");
  const py = JSON.parse(execFileSync(python, [join(here, "bench_mirror.py"), etcd.endpoint, big, String(BIG)], { env, encoding: "utf8" }));
  const goEnv = { ...env, GOFLAGS: "-mod=mod", GOPROXY: "off", GOTOOLCHAIN: "local", GOPATH: join(root, "target/go"), GOCACHE: join(root, "target/go-cache") };
  const go = JSON.parse(execFileSync("go", ["run", "./etcd/internal/benchmirror", etcd.endpoint, big, String(BIG)], { cwd: join(root, "bindings-c/go"), env: goEnv, encoding: "utf8" }));
  for (const [lang, r] of [["python", py], ["go", go]]) {
    results.push({ what: "put → seen (ms)", lang, ours: r.latency, peer: results[0].peer });
    results.push({ what: `${BIG}-instance start (ms)`, lang, ours: r.start, peer: results[1].peer });
  }
} finally {
  client.close();
  await etcd.close();
}

console.log(`etcd ${execFileSync("/usr/bin/etcd", ["--version"], { encoding: "utf8" }).split("\n")[0]}, ${cpus().length} × ${cpus()[0].model}, ${new Date().toISOString()}`);
console.log("| measure | waypost | median | p99 | etcd3 (same run) median | p99 | ratio median | ratio p99 |");
console.log("|---|---|---|---|---|---|---|---|");
for (const r of results) {
  console.log(`| ${r.what} | ${r.lang} | ${fmt(r.ours.median)} | ${fmt(r.ours.p99)} | ${fmt(r.peer.median)} | ${fmt(r.peer.p99)} | ${fmt(r.ours.median / r.peer.median)} | ${fmt(r.ours.p99 / r.peer.p99)} |`);
}
