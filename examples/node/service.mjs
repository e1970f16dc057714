// A gateway that picks an upstream per request and reports every outcome.
//
//   make wasm && node examples/node/service.mjs
//
// Three `orders` upstreams and the gateway listen on 127.0.0.1; a bounded
// load of 60 requests goes through the gateway, then everything shuts down.
// orders-3 starts failing every call after its fifth: outlier detection
// ejects it and the traffic moves to the others. In your own project the
// import is `from "waypost"`.
import { createServer } from "node:http";
import { Registry } from "../../bindings-wasm/npm/dist/node.js";

const REQUESTS = 60;
const CONCURRENCY = 6;

const registry = new Registry({ ttlMs: 3_000, consecutiveFailures: 3, baseEjectionMs: 30_000, maxEjectionPercent: 50 });

function listen(handler) {
  const server = createServer(handler);
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(server)));
}

// The upstreams: each registers itself and heartbeats every second.
const upstreams = [];
for (const id of ["orders-1", "orders-2", "orders-3"]) {
  let served = 0;
  const server = await listen((req, res) => {
    served += 1;
    const failing = id === "orders-3" && served > 5;
    res.writeHead(failing ? 503 : 200, { "content-type": "text/plain" });
    res.end(failing ? "unavailable" : `${id} served ${req.url}`);
  });
  const { port } = server.address();
  registry.register({ id, service: "orders", address: "127.0.0.1", port, meta: { version: "1.4.2" } });
  const beat = setInterval(() => registry.heartbeat(id), 1_000);
  upstreams.push({ id, server, beat });
}

// The gateway: one pick per request (and one retry on another instance).
const counts = new Map();
const gateway = await listen(async (req, res) => {
  for (let attempt = 0; attempt < 2; attempt++) {
    let pick;
    try {
      pick = registry.pick("orders", "least_request");
    } catch (e) {
      res.writeHead(503).end(`no upstream: ${e.code}`);
      return;
    }
    const { id, address, port } = pick.instance;
    registry.begin(id);
    let ok = false;
    let body = "";
    try {
      const reply = await fetch(`http://${address}:${port}${req.url}`);
      body = await reply.text();
      ok = reply.ok;
    } catch {
      ok = false;
    } finally {
      registry.end(id);
    }
    registry.reportOutcome(id, ok);
    counts.set(id, (counts.get(id) ?? 0) + (ok ? 1 : 0));
    if (ok) {
      res.writeHead(200, { "content-type": "text/plain" }).end(body);
      return;
    }
  }
  res.writeHead(502).end("upstream failed twice");
});

// A bounded load through the gateway.
const deadline = setTimeout(() => {
  console.error("gave up after 20 s");
  process.exit(1);
}, 20_000);
const { port } = gateway.address();
let next = 0;
let failed = 0;
async function client() {
  while (next < REQUESTS) {
    const n = next++;
    const reply = await fetch(`http://127.0.0.1:${port}/orders/${n}`);
    await reply.text();
    if (!reply.ok) failed += 1;
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, client));

console.log(`${REQUESTS} requests through the gateway, ${failed} failed`);
for (const { id } of upstreams) {
  const state = registry.get(id);
  console.log(`  ${id}: ${counts.get(id) ?? 0} served, health ${state.health}, ${state.consecutiveFailures} failures in a row`);
}
for (const e of registry.eventsSince(0).filter((e) => e.type !== "registered")) {
  console.log(`  event #${e.index} ${e.type} ${e.id ?? ""} ${e.from ?? ""} -> ${e.to ?? ""}`);
}

clearTimeout(deadline);
for (const { server, beat } of upstreams) {
  clearInterval(beat);
  server.close();
}
gateway.close();
registry.free();
