// Type-checked with `tsc --strict` against dist/index.d.ts: the public API
// must be usable without casts, and misuse must not type-check.
import {
  Registry,
  WaypostError,
  STRATEGIES,
  type Discovery,
  type ErrorCode,
  type Health,
  type Instance,
  type InstanceState,
  type PickResult,
  type RegistryEvent,
  type ResolvedConfig,
  type ServiceMetrics,
  type SourceStatus,
  type Strategy,
} from "waypost";

const reg: Registry = new Registry({ ttlMs: 10_000, seed: 7, panicThreshold: 0.5 });
const inst: Instance = reg.register({ id: "api-1", service: "api", address: "10.0.0.1", port: 8080, tags: ["v1"], meta: { rack: "a" } }, 0);
const port: number = inst.port;
const zone: string | null = inst.zone;
reg.heartbeat("api-1", 9_000);
reg.heartbeat("api-1");
const pick: PickResult = reg.pick("api", "round_robin", 10_001);
const picked: Instance = reg.pick("api", "consistent_hash", { key: "user-42", zone: "a" }, 10_001).instance;
const panic: boolean = pick.panic;
const found: Discovery = reg.discover("api", { all: true, tags: ["v1"] }, 10_001);
const health: Health[] = found.health;
const events: RegistryEvent[] = reg.tick(20_000);
const first: RegistryEvent | undefined = reg.eventsSince(0)[0];
if (first !== undefined && first.type === "health_changed") {
  const to: Health | undefined = first.to;
  void to;
}
const state: InstanceState = reg.get("api-1", 20_000);
const ejected: number | null = state.ejectedUntil;
const config: ResolvedConfig = reg.config;
const ttl: number = config.ttlMs;
const metrics: ServiceMetrics[] = reg.serviceMetrics();
const rr: number | undefined = metrics[0]?.picks.round_robin;
const strategies: readonly Strategy[] = STRATEGIES;
const next: number | null = reg.nextDeadline();
const copy: Registry = Registry.restore(reg.snapshot());

try {
  reg.pick("nope", "random", 1);
} catch (e) {
  if (e instanceof WaypostError) {
    const code: ErrorCode = e.code;
    void code;
  }
}

// @ts-expect-error: an unknown strategy is not a Strategy
reg.pick("api", "fastest", 1);
// @ts-expect-error: port is required
reg.register({ id: "x", service: "s", address: "h" }, 1);
// @ts-expect-error: now is a number
reg.heartbeat("api-1", "1000");
// @ts-expect-error: instances are read-only
inst.port = 1;
// @ts-expect-error: unknown configuration key
new Registry({ ttl: 5 });
// @ts-expect-error: health is a closed set
const bad: Health = "sick";

void [port, zone, picked, panic, health, events, ejected, ttl, rr, strategies, next, copy, bad];

// Sources (SPEC §10) and the etcd helpers.
import { EtcdError, EtcdMirror, EtcdRegistrar } from "waypost/etcd";
{
  const reg = new Registry({ seed: 1 });
  const report = reg.sync("etcd", "api", [{ id: "a", service: "api", address: "h", port: 1, status: "warning" }], 1);
  const added: number = report.added + reg.sourcePut("etcd", { id: "b", service: "api", address: "h", port: 2 }).updated;
  const rejectedCode: ErrorCode | undefined = report.rejected[0]?.code;
  reg.sourceAdd("etcd", { kind: "etcd", prefix: "/waypost/services" });
  const request = reg.sourceRequest("etcd");
  const stream: boolean = request.stream;
  const fed = reg.sourceFeed("etcd", new Uint8Array(2), 3, { status: 200 });
  const resync: boolean = fed.resync || reg.sourceDelete("etcd", "a").resync || fed.changed;
  // A source-owned instance has a verdict and no lease; `held` only when true.
  const owned: InstanceState = reg.get("b", 3);
  const verdict: SourceStatus | undefined = owned.status;
  const held: boolean = owned.held ?? false;
  // @ts-expect-error: the wire form leaves the deadline out when there is no lease
  const deadline: number = owned.leaseDeadline;
  // @ts-expect-error: a status the core does not know
  reg.sync("etcd", "api", [{ id: "a", service: "api", address: "h", port: 1, status: "down" }]);
  const r = new EtcdRegistrar({ endpoints: ["http://127.0.0.1:2379"], instance: { id: "a", service: "api", address: "h", port: 1 }, ttl: 5 });
  const m = new EtcdMirror({ endpoints: "http://127.0.0.1:2379", registry: reg, signal: AbortSignal.timeout(10), cacheFile: "/tmp/x" });
  m.on("change", (rep) => rep.changed && rep.added).on("error", (e) => e instanceof EtcdError);
  void Promise.all([r.start(), m.start()]).then(([reg2, mirror]) => [reg2.grantedTtl, mirror.revision, added, rejectedCode, stream, resync, verdict, held, deadline]);
}

// The Consul and Kubernetes helpers.
import { ConsulError, ConsulMirror, ConsulRegistrar } from "waypost/consul";
import { K8sMirror, KubernetesError } from "waypost/k8s";
{
  const reg = new Registry({ seed: 1 });
  const c = new ConsulMirror({ address: "http://127.0.0.1:8500", registry: reg, service: "web", minIntervalMs: 500, signal: AbortSignal.timeout(10) });
  c.on("change", (rep) => rep.changed && rep.updated).on("error", (e) => e instanceof ConsulError);
  const r = new ConsulRegistrar({ instance: { id: "web-1", service: "web", address: "10.0.0.1", port: 80 }, ttl: 10, deregisterAfter: 60 });
  const k = new K8sMirror({ apiServer: "https://10.96.0.1", registry: reg, namespace: "shop", service: "api", port: "http", caFile: "/ca.crt" });
  k.on("change", (rep) => rep.changed).on("error", (e) => e instanceof KubernetesError);
  // @ts-expect-error: the service is required
  void new ConsulMirror({ registry: reg });
  void Promise.all([c.start(), r.start(), k.start()]).then(([cm, cr, km]) => [cm.index, cr.heartbeats, km.resourceVersion, km.lists]);
  void r.update({ ...r.instance, port: 81, status: "maintenance" });
  // @ts-expect-error: not a source status
  void r.update({ ...r.instance, status: "draining" });
}
