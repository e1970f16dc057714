// close() of every etcd and Consul helper against a loopback server that
// accepts connections and never answers: over http the request waits for
// its answer, over https the TLS handshake never ends (the socket is still
// being opened). Whenever close() comes — in the same tick as start(),
// a few ms later, or once the server holds the connection — it must return
// well before any of the helper's own timeouts (set to 2 minutes here), and
// leave no socket or timer behind.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { existsSync } from "node:fs";
import { Registry } from "../dist/node.js";
import { EtcdMirror, EtcdRegistrar } from "../dist/etcd.js";
import { ConsulMirror } from "../dist/consul.js";

const LONG_MS = 120_000;     // every helper timeout: close() must not wait for it
const CLOSE_BOUND_MS = 15_000; // generous on a loaded machine, far below LONG_MS
const CA = "/etc/ssl/certs/ca-certificates.crt"; // any PEM: the handshake never gets that far

let stall;

/** Accepts, reads and never writes; counts the connections still open. */
function stallServer() {
  const sockets = new Set();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on("data", () => {});
    socket.on("error", () => {});
    socket.on("end", () => socket.destroy());
    socket.on("close", () => sockets.delete(socket));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({
    port: server.address().port,
    get accepted() { return accepted; },
    get open() { return sockets.size; },
    close: () => new Promise((ok) => { for (const s of sockets) s.destroy(); server.close(ok); }),
  })));
}

before(async () => { stall = await stallServer(); });
after(async () => { await stall.close(); });

const delay = (ms) => new Promise((r) => setTimeout(r, ms));
async function eventually(cond, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await delay(20);
  }
}

// Sockets and timers this process holds (the server's listening socket among them).
function resources() {
  const out = {};
  for (const r of process.getActiveResourcesInfo()) if (r === "TCPSocketWrap" || r === "Timeout") out[r] = (out[r] ?? 0) + 1;
  return out;
}

const SCHEMES = [
  ["http", {}],
  ["https (fetch)", {}],
  ["https with a CA file (node:https)", { caFile: CA }],
].filter(([, o]) => o.caFile === undefined || existsSync(o.caFile));
const url = (scheme) => `${scheme.startsWith("https") ? "https" : "http"}://127.0.0.1:${stall.port}`;

// When close() comes after start(): the same tick, after a few ms (the
// connection being opened), or once the server holds the connection.
const MOMENTS = [0, 1, 3, 10, "held"];

const HELPERS = {
  EtcdMirror: (endpoint, extra) => {
    const m = new EtcdMirror({ endpoints: [endpoint], registry: new Registry(), timeoutMs: LONG_MS, ...extra });
    return { started: m.start(), close: () => m.close() };
  },
  ConsulMirror: (endpoint, extra) => {
    // ConsulMirror takes a CA only through node:https's defaults: no CA file option.
    if (extra.caFile !== undefined) return null;
    const m = new ConsulMirror({ address: endpoint, registry: new Registry(), service: "web", timeoutMs: LONG_MS });
    return { started: m.start(), close: () => m.close() };
  },
  EtcdRegistrar: (endpoint, extra) => {
    const r = new EtcdRegistrar({ endpoints: [endpoint], instance: { id: "a-1", service: "a", address: "10.0.0.1", port: 1 }, timeoutMs: LONG_MS, ...extra });
    return { started: r.start(), close: () => r.close() };
  },
};

for (const [name, make] of Object.entries(HELPERS)) {
  test(`${name}: close() while its first call is being connected or waits for an answer returns at once`, async () => {
    const baseline = resources();
    let ran = 0;
    for (const [scheme, extra] of SCHEMES) {
      for (const moment of MOMENTS) {
        const seen = stall.accepted;
        const helper = make(url(scheme), extra);
        if (helper === null) continue;
        ran += 1;
        helper.started.catch(() => {}); // rejects: closed before the store answered
        if (moment === "held") await eventually(() => stall.accepted > seen, `${scheme}: the server to hold the call`);
        else if (moment > 0) await delay(moment);
        const t0 = Date.now();
        let timer;
        const bounded = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${name} ${scheme} @${moment}: close() still waiting after ${CLOSE_BOUND_MS} ms`)), CLOSE_BOUND_MS); });
        await Promise.race([helper.close(), bounded]).finally(() => clearTimeout(timer));
        const took = Date.now() - t0;
        assert.ok(took < CLOSE_BOUND_MS, `${scheme} @${moment}: ${took} ms`);
        await assert.rejects(helper.started, `${scheme} @${moment}: start() should not resolve without an answer`);
      }
    }
    assert.ok(ran > 0);
    // Nothing left behind: the server sees every connection closed, and the
    // process holds no more sockets or timers than before.
    await eventually(() => stall.open === 0, "every connection the helper opened closed");
    await eventually(() => JSON.stringify(resources()) === JSON.stringify(baseline),
      `sockets and timers back to ${JSON.stringify(baseline)} (now ${JSON.stringify(resources())})`);
  });
}
