// A Node HTTP service that registers itself in etcd.
//
//   node examples/fleet/service.mjs --id node-1 --port 8011 --etcd http://127.0.0.1:2379
//
// /hello answers with its id, /health with 200 (503 while draining);
// /admin/fail?rate=0.5 fails that share of /hello calls, /admin/drain?on=1
// marks it `maintenance` in etcd, /admin/status?status=critical writes any
// source status. Registration: waypost's EtcdRegistrar; a status change is
// registrar.update, so a registration after a lost lease keeps it.
// It also mirrors the whole fleet (EtcdMirror into a waypost Registry), as a
// Node client of the other services would, and shows that view at /mirror
// with the instant each change reached it.
import { createServer } from "node:http";
import { parseArgs } from "node:util";
// In your own project: from "waypost" and "waypost/etcd".
import { Registry } from "../../bindings-wasm/npm/dist/node.js";
import { EtcdMirror, EtcdRegistrar } from "../../bindings-wasm/npm/dist/etcd.js";

const env = process.env;
const { values: args } = parseArgs({
  options: {
    id: { type: "string", default: env.ID ?? "node-1" },
    service: { type: "string", default: env.SERVICE ?? "hello-node" },
    port: { type: "string", default: env.PORT ?? "8011" },
    etcd: { type: "string", default: env.ETCD ?? "http://127.0.0.1:2379" },
    weight: { type: "string", default: env.WEIGHT ?? "1" },
    zone: { type: "string", default: env.ZONE ?? "zone-a" },
    ttl: { type: "string", default: env.TTL ?? "3" },
    "fail-rate": { type: "string", default: env.FAIL_RATE ?? "0" },
  },
});

const state = { failRate: Number(args["fail-rate"]), draining: false };
const port = Number(args.port);
const instance = {
  id: args.id, service: args.service, address: "127.0.0.1", port,
  weight: Number(args.weight), zone: args.zone, meta: { lang: "node" },
};
const endpoints = args.etcd.split(",");
const registrar = new EtcdRegistrar({ endpoints, instance, ttl: Number(args.ttl) });

const STATUSES = ["passing", "warning", "critical", "maintenance"];

// The fleet as this service sees it, and every change with its wall-clock ms.
const peers = new Registry();
const mirror = new EtcdMirror({ endpoints, registry: peers });
const seen = new Map();
const changes = [];
function look() {
  const current = new Map();
  for (const service of peers.services()) {
    const d = peers.discover(service, { all: true });
    d.instances.forEach((inst, i) => current.set(inst.id, d.health[i]));
  }
  const t = Date.now();
  for (const id of new Set([...seen.keys(), ...current.keys()])) {
    if (seen.get(id) !== current.get(id)) changes.push({ t, id, from: seen.get(id) ?? null, to: current.get(id) ?? null });
  }
  seen.clear();
  for (const [id, h] of current) seen.set(id, h);
}
const looking = setInterval(look, 20);

const server = createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  const reply = (code, body) => res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
  switch (url.pathname) {
    case "/hello":
      if (Math.random() < state.failRate) return reply(503, { id: args.id, error: "injected failure" });
      return reply(200, { id: args.id, lang: "node", hello: url.searchParams.get("name") ?? "world" });
    case "/health":
      return reply(state.draining ? 503 : 200, { id: args.id, draining: state.draining });
    case "/mirror":
      return reply(200, { mirror: "EtcdMirror (Node)", revision: mirror.synced ? mirror.revision : 0, status: mirror.status,
        error: mirror.error ? String(mirror.error.message ?? mirror.error) : "", instances: Object.fromEntries(seen), changes });
    case "/admin/fail":
      state.failRate = Number(url.searchParams.get("rate") ?? "0.5");
      return reply(200, { id: args.id, fail_rate: state.failRate });
    case "/admin/drain":
    case "/admin/status": {
      if (url.pathname === "/admin/drain") state.draining = (url.searchParams.get("on") ?? "1") === "1";
      const status = url.pathname === "/admin/drain" ? (state.draining ? "maintenance" : "passing") : url.searchParams.get("status");
      if (!STATUSES.includes(status)) return reply(400, { error: `status: one of ${STATUSES.join(", ")}` });
      try {
        await registrar.update({ ...instance, status }); // under its lease, kept for any later registration
      } catch (e) {
        return reply(502, { id: args.id, error: e.message });
      }
      return reply(200, { id: args.id, status, draining: state.draining });
    }
    default:
      return reply(404, { error: "not found" });
  }
});

await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
await registrar.start();
await mirror.start();
console.log(`${args.id}: ${args.service} on 127.0.0.1:${port}, waypost EtcdRegistrar, lease TTL ${registrar.grantedTtl} s`);

const stop = async () => {
  clearInterval(looking);
  server.close();
  await mirror.close();
  await registrar.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
