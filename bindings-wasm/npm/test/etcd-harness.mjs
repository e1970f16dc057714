// A real etcd for the tests: 127.0.0.1, free ports, a temporary data
// directory, stopped by PID whatever happens (every process started is also
// killed when this Node process exits). `EtcdServer` is one member (start,
// stop, SIGKILL, restart on the same data and ports); `EtcdCluster` is three.
// `EtcdClient` talks to the JSON gateway with fetch, independently of the
// helpers under test.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, existsSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ETCD = process.env.WAYPOST_ETCD ?? "/usr/bin/etcd";
const live = new Set();
process.on("exit", () => {
  for (const child of live) {
    try { process.kill(child.pid, "SIGKILL"); } catch { /* already gone */ }
  }
});

/** The lowest port the kernel hands out on its own (outgoing connections, binds to port 0). */
export function ephemeralLow() {
  try {
    const low = parseInt(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(/\s+/)[0], 10);
    if (Number.isInteger(low)) return low;
  } catch { /* no such file: Linux's default */ }
  return 32768;
}

const given = new Set();
const bindsOn = (port) => new Promise((resolve) => {
  const srv = createServer();
  srv.once("error", () => resolve(0));
  srv.listen(port, "127.0.0.1", () => {
    const bound = srv.address().port;
    srv.close(() => resolve(bound));
  });
});

/**
 * A port free now, chosen below the kernel's ephemeral range and never given
 * twice: etcd binds it later, and a port from that range could meanwhile
 * become the local port of an outgoing connection (a member dialling its
 * peers, say).
 */
export async function freePort() {
  const low = Math.min(ephemeralLow(), 65536);
  for (let i = 0; low > 12000 && i < 200; i++) {
    const port = 10000 + Math.floor(Math.random() * (low - 10000));
    if (!given.has(port) && await bindsOn(port)) {
      given.add(port);
      return port;
    }
  }
  const port = await bindsOn(0);
  if (!port) throw new Error("no free port on 127.0.0.1");
  return port;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const b64 = (s) => Buffer.from(s).toString("base64");
export const unb64 = (s) => Buffer.from(s ?? "", "base64").toString();
export function prefixEnd(prefix) {
  const raw = Buffer.from(prefix);
  raw[raw.length - 1] += 1;
  return raw.toString("base64");
}

/**
 * A throwaway CA and a server certificate for 127.0.0.1 it signed, made
 * with the openssl CLI in `folder`: {ca, cert, key} (paths), or null when
 * there is no openssl.
 */
export function makeCerts(folder) {
  const [ca, cert, key, caKey, csr, ext] = ["ca.pem", "server.pem", "server.key", "ca.key", "server.csr", "ext.cnf"].map((n) => join(folder, n));
  writeFileSync(ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  for (const argv of [
    ["req", "-x509", ...ec, "-keyout", caKey, "-out", ca, "-days", "1", "-subj", "/CN=waypost-test-ca"],
    ["req", ...ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
    ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", ext],
  ]) {
    const run = spawnSync("openssl", argv, { encoding: "utf8" });
    if (run.error?.code === "ENOENT") return null;
    if (run.status !== 0) throw new Error(`openssl ${argv[0]}: ${run.stderr}`);
  }
  return { ca, cert, key };
}

/** A POST through node:https trusting `ca` (PEM text): {status, text}. */
function postWithCa(url, body, ca, timeoutMs) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: body === undefined ? "GET" : "POST", ca, agent: false, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => { text += c; });
      res.on("end", () => resolve({ status: res.statusCode, text }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

export class EtcdClient {
  /** `ca`: PEM text of the CA for an https endpoint. */
  constructor(endpoint, ca) { this.endpoint = endpoint; this.ca = ca; }

  async call(path, body, timeoutMs = 5000) {
    let status;
    let text;
    if (this.ca !== undefined) {
      ({ status, text } = await postWithCa(this.endpoint + path, JSON.stringify(body), this.ca, timeoutMs));
    } else {
      const res = await fetch(this.endpoint + path, { method: "POST", body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
      [status, text] = [res.status, await res.text()];
    }
    const out = JSON.parse(text);
    if (status !== 200) throw new Error(`${path}: ${status} ${JSON.stringify(out)}`);
    return out;
  }

  async put(key, value, lease) {
    const body = { key: b64(key), value: b64(value) };
    if (lease !== undefined) body.lease = lease;
    return Number((await this.call("/v3/kv/put", body)).header.revision);
  }

  async delete(key) {
    return Number((await this.call("/v3/kv/deleterange", { key: b64(key) })).header.revision);
  }

  async getPrefix(prefix) {
    const out = await this.call("/v3/kv/range", { key: b64(prefix), range_end: prefixEnd(prefix) });
    return Object.fromEntries((out.kvs ?? []).map((kv) => [unb64(kv.key), unb64(kv.value)]));
  }

  async revision() {
    return Number((await this.call("/v3/kv/range", { key: b64("\0") })).header.revision);
  }

  async compact(revision) {
    await this.call("/v3/kv/compaction", { revision: String(revision), physical: true });
  }

  async status() { return this.call("/v3/maintenance/status", {}, 2000); }
}

// A single member keeps etcd's default timing (minimum lease TTL ~2 s);
// cluster members elect faster (heartbeat 50 ms, election 500 ms).
export class EtcdServer {
  /** `tls`: {ca, cert, key} (makeCerts) to serve clients over https. */
  constructor({ name = "n0", workdir, initialCluster, clientPort, peerPort, fastElection = false, tls } = {}) {
    this.fastElection = fastElection;
    this.tls = tls;
    this.name = name;
    this.ownDir = workdir === undefined;
    this.workdir = workdir ?? mkdtempSync(join(tmpdir(), "waypost-etcd-"));
    this.dataDir = join(this.workdir, `${name}.etcd`);
    this.logPath = join(this.workdir, `${name}.log`);
    this.clientPort = clientPort;
    this.peerPort = peerPort;
    this.initialCluster = initialCluster;
    this.child = null;
  }

  get endpoint() { return `${this.tls ? "https" : "http"}://127.0.0.1:${this.clientPort}`; }
  get peerUrl() { return `http://127.0.0.1:${this.peerPort}`; }
  get client() { return new EtcdClient(this.endpoint, this.tls ? readFileSync(this.tls.ca, "utf8") : undefined); }
  get running() { return this.child !== null && this.child.exitCode === null && this.child.signalCode === null; }

  async launch() {
    if (!existsSync(ETCD)) throw new Error(`${ETCD} not found: install Debian's etcd-server (make test does)`);
    this.clientPort ??= await freePort();
    this.peerPort ??= await freePort();
    this.initialCluster ??= `${this.name}=${this.peerUrl}`;
    const log = openSync(this.logPath, "a");
    try {
      this.child = spawn(ETCD, [
        "--name", this.name, "--data-dir", this.dataDir,
        "--listen-client-urls", this.endpoint, "--advertise-client-urls", this.endpoint,
        "--listen-peer-urls", this.peerUrl, "--initial-advertise-peer-urls", this.peerUrl,
        "--initial-cluster", this.initialCluster, "--initial-cluster-state", "new",
        "--initial-cluster-token", "waypost-test",
        ...(this.fastElection ? ["--heartbeat-interval", "50", "--election-timeout", "500"] : []),
        ...(this.tls ? ["--cert-file", this.tls.cert, "--key-file", this.tls.key] : []),
        "--logger", "zap", "--log-outputs", "stderr",
      ], { stdio: ["ignore", log, log], detached: true });
    } finally {
      closeSync(log);
    }
    live.add(this.child);
    const child = this.child;
    child.once("exit", () => live.delete(child));
  }

  logTail(n = 2000) {
    try { return readFileSync(this.logPath, "utf8").slice(-n); } catch { return ""; }
  }

  async waitReady(timeoutMs = 15000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`etcd ${this.name} exited: ${this.logTail()}`);
      try {
        const text = this.tls
          ? (await postWithCa(`${this.endpoint}/health`, undefined, readFileSync(this.tls.ca, "utf8"), 1000)).text
          : await (await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(1000) })).text();
        if (JSON.parse(text).health === "true") return;
      } catch { /* not yet */ }
      await sleep(50);
    }
    throw new Error(`etcd ${this.name} not ready after ${timeoutMs} ms: ${this.logTail()}`);
  }

  async start() {
    await this.launch();
    await this.waitReady();
    return this;
  }

  async end(signal) {
    const child = this.child;
    this.child = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
    await exited;
    clearTimeout(timer);
  }

  /** SIGTERM: a clean stop. */
  stop() { return this.end("SIGTERM"); }
  /** SIGKILL: the crash case. */
  kill() { return this.end("SIGKILL"); }
  /** Starts again on the same data directory and ports. */
  async restart() { await this.stop(); await this.start(); }

  async close() {
    await this.kill();
    if (this.ownDir) rmSync(this.workdir, { recursive: true, force: true });
  }
}

export class EtcdCluster {
  constructor(size = 3) {
    this.size = size;
    this.workdir = mkdtempSync(join(tmpdir(), "waypost-etcd-cluster-"));
    this.members = [];
  }

  get endpoints() { return this.members.map((m) => m.endpoint); }

  async start() {
    const names = Array.from({ length: this.size }, (_, i) => `m${i}`);
    const peers = [];
    for (const _ of names) peers.push(await freePort());
    const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${peers[i]}`).join(",");
    for (const [i, name] of names.entries()) {
      this.members.push(new EtcdServer({ name, workdir: this.workdir, initialCluster, peerPort: peers[i], fastElection: true }));
    }
    for (const m of this.members) await m.launch();
    for (const m of this.members) await m.waitReady(30000);
    return this;
  }

  /** The live leader, once the live members agree on one. */
  async waitLeader(timeoutMs = 15000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        const ids = new Map();
        let leader = null;
        for (const m of this.members.filter((m) => m.running)) {
          const st = await m.client.status();
          ids.set(st.header.member_id, m);
          leader ??= st.leader;
        }
        if (ids.has(leader)) return ids.get(leader);
      } catch { /* electing */ }
      await sleep(100);
    }
    throw new Error("no leader");
  }

  async close() {
    for (const m of this.members) await m.kill();
    rmSync(this.workdir, { recursive: true, force: true });
  }
}
