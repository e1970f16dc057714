// A 10 000-instance mirror start in Node against a local etcd: a new
// registry and `EtcdMirror` until the range is read, fed and the watch is
// open (what bench/stores/bench.mjs times), in fresh processes, alternating
// Node's module (waypost_wasm_node.wasm) reading the range over gRPC (the
// default), the same module through the JSON gateway (`grpc: false`), and
// the browser's module (waypost_wasm_bg.wasm, which reads only the gateway).
// Each process reports its first start (the module's functions still being
// compiled, what a service pays once) and the median of its next 4; beside
// them the same range read alone over the same path (the answer's bytes
// only: no module involved), and `sourceFeed`'s own share of each start.
//
//   node bindings-wasm/npm/scripts/mirror_start.mjs     (after `make wasm`)
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const N = Number(process.env.BENCH_BIG ?? 10_000);
const ROUNDS = 3;
const REPS = 5;
const PREFIX = "/bench/big";
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

if (process.env.WAYPOST_WASM) {
  const { Registry, moduleFile } = await import("./module.mjs");
  const { EtcdMirror } = await import("../dist/etcd.js");
  const { fromB64, grpcUnary } = await import("../dist/etcd-http.js");
  const { b64, prefixEnd } = await import("../test/etcd-harness.mjs");
  const endpoint = process.argv[2];
  const grpc = process.env.WAYPOST_GRPC === "1";
  // The core's own gRPC range request, for the floor.
  let grpcRequest = null;
  if (grpc) {
    const probe = new Registry({ seed: 1 });
    probe.sourceAdd("etcd", { kind: "etcd", prefix: PREFIX, grpc: true });
    grpcRequest = probe.sourceRequest("etcd");
    probe.free();
  }
  const starts = [];
  const feeds = [];
  const reads = [];
  for (let r = 0; r < REPS; r++) {
    let t0 = process.hrtime.bigint();
    if (grpc) {
      const message = fromB64(grpcRequest.body);
      const answer = await grpcUnary(endpoint, grpcRequest.path, message);
      if (answer.length < N * 50) throw new Error("short range answer");
    } else {
      const res = await fetch(`${endpoint}/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: b64(`${PREFIX}/`), range_end: prefixEnd(`${PREFIX}/`) }) });
      if ((await res.arrayBuffer()).byteLength < N * 100) throw new Error("short range answer");
    }
    reads.push(ms(t0));
    const registry = new Registry({ seed: 1 });
    // sourceFeed's share: the registry's own method, timed around each call.
    const feed = registry.sourceFeed.bind(registry);
    let fed = 0;
    registry.sourceFeed = (...args) => { const f0 = process.hrtime.bigint(); try { return feed(...args); } finally { fed += ms(f0); } };
    t0 = process.hrtime.bigint();
    const mirror = new EtcdMirror({ endpoints: [endpoint], registry, prefix: PREFIX, grpc });
    await mirror.start();
    while (mirror.feeds < 2) await new Promise((done) => setImmediate(done)); // the watch is open
    starts.push(ms(t0));
    feeds.push(fed);
    if (registry.size !== N) throw new Error(`mirror holds ${registry.size}`);
    await mirror.close();
    registry.free();
  }
  const rest = (xs) => median(xs.slice(1));
  console.log(JSON.stringify({ moduleFile, grpc, first: starts[0], firstFeed: feeds[0], start: rest(starts), feed: rest(feeds), read: rest(reads) }));
  process.exit(0);
}

const { EtcdServer } = await import("../test/etcd-harness.mjs");
const etcd = await new EtcdServer().start();
try {
  const client = etcd.client;
  for (let i = 0; i < N; i += 250) {
    await Promise.all(Array.from({ length: Math.min(250, N - i) }, (_, k) => {
      const id = `api-${i + k}`;
      const at = i + k;
      return client.put(`${PREFIX}/api/${id}`, JSON.stringify({ id, service: "api", address: `10.0.${(at >> 8) & 255}.${at & 255}`, port: 8080 }));
    }));
  }
  const variants = { "node grpc": ["node", "1"], "node gateway": ["node", "0"], "browser gateway": ["browser", "0"] };
  const results = Object.fromEntries(Object.keys(variants).map((v) => [v, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [v, [m, g]] of Object.entries(variants)) {
      const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), etcd.endpoint], {
        env: { ...process.env, WAYPOST_WASM: m, WAYPOST_GRPC: g }, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"],
      });
      if (child.status !== 0) throw new Error(`${v}: exit ${child.status}`);
      results[v].push(JSON.parse(child.stdout));
    }
  }
  console.log(`${N}-instance mirror start, Node ${process.version}, wall ms, ${ROUNDS} processes per module (alternating): first start / median of the next ${REPS - 1}`);
  for (const runs of Object.values(results)) {
    const f = (key) => runs.map((r) => r[key].toFixed(1)).join(" / ");
    console.log(`${runs[0].moduleFile}, the range ${runs[0].grpc ? "over gRPC" : "through the JSON gateway"}:`);
    console.log(`  first start                        ${f("first")}   (sourceFeed in it: ${f("firstFeed")})`);
    console.log(`  start, median of the next ${REPS - 1}         ${f("start")}   (sourceFeed in it: ${f("feed")})`);
    console.log(`  floor: the range read alone        ${f("read")}`);
  }
} finally {
  await etcd.close();
}
