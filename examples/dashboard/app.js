// The live dashboard: this page mirrors etcd's /waypost/services prefix into
// a waypost Registry running in WebAssembly with the package's EtcdMirror
// (etcd's JSON gateway allows cross-origin calls by default; the watch is a
// streamed fetch), shows each instance with its health, and overlays what
// the demo's gateway sees (its outcome-driven ejections, in-flight calls,
// requests served) from the gateway's /_state.
//
// Where etcd and the gateway are: /config.json (written by `make demo`), or
// ?etcd=http://127.0.0.1:2379&gateway=http://127.0.0.1:8080.
import { Registry, STRATEGIES } from "waypost";
import { EtcdMirror } from "waypost/etcd";

const $ = (id) => document.getElementById(id);
const now = () => Date.now();
const GONE_SHOWN_MS = 500;       // a removed instance stays on screen, red, this long
const TIMELINE_MAX = 300;

const PREFIX = "/waypost/services/";
// Panic below 30 % healthy in a service. Self-preservation: removals that
// would leave less than 80 % of the fleet live are held, and stay held while
// the fleet that remains is less than 80 % live (one SIGKILLed instance of
// the demo's six still goes).
const registry = new Registry({ panicThreshold: 0.3, selfPreservationThreshold: 0.8, seed: 7 });
const model = {
  leases: new Map(),     // id → lease id, as etcd sends it
  gone: new Map(),       // id → {service, at}: removed, still drawn red for a moment
  gateway: new Map(),    // id → the gateway's view of it
  ttl: new Map(),        // id → seconds left on its lease
  dirty: new Set(),      // ids to redraw
  services: new Set(),
  count: 0,              // instances mirrored, kept from the events
  revision: 0,
  status: "connecting",
  lastEvent: 0,
  gatewayChanges: 0,
};

// ---- what the mirror changed: the registry's own events ----------------
function idOf(key) { return key.slice(key.lastIndexOf("/") + 1); }

function recordEvents() {
  let events;
  try {
    events = registry.eventsSince(model.lastEvent);
  } catch (e) {
    if (e.code !== "compacted") throw e;
    timeline("(older events were compacted: the timeline skips them)");
    model.lastEvent = registry.lastIndex;
    return;
  }
  if (events.length > 50) { // a large batch (a first read): one line, not thousands
    const kinds = {};
    for (const e of events) {
      note(e);
      kinds[e.type] = (kinds[e.type] ?? 0) + 1;
    }
    timeline(Object.entries(kinds).map(([k, n]) => `${n} × ${k}`).join(", "));
    model.lastEvent = events[events.length - 1].index;
    banners();
    return;
  }
  for (const e of events) {
    model.lastEvent = e.index;
    note(e);
    if (e.type === "self_preservation_entered") model.selfPreservation = true;
    if (e.type === "self_preservation_exited") model.selfPreservation = false;
    if (e.type.startsWith("panic_") || e.type.startsWith("self_preservation_")) banners();
    const change = e.from || e.to ? ` ${e.from ?? ""} → ${e.to ?? ""}` : "";
    timeline(`${e.type} ${e.id ?? e.service ?? ""}${change}`, e.at);
  }
}

/** Marks what an event touched for redrawing; a deregistered instance stays, red, for a moment. */
function note(e) {
  if (e.service) model.services.add(e.service);
  if (!e.id) return;
  model.dirty.add(e.id);
  if (e.type === "deregistered" || e.type === "evicted") {
    model.gone.set(e.id, { service: e.service, at: now() });
    model.count -= 1;
  } else if (e.type === "registered") {
    model.gone.delete(e.id);
    model.count += 1;
  }
}

/** After the mirror applied something: what changed, drawn on the next frame. */
function changed() {
  recordEvents();
  schedule();
}

// ---- drawing: only what changed, once per frame -----------------------
const rows = new Map();          // id → {tr, cells, key}
const tables = new Map();        // service → tbody
let frame = 0;

function schedule() {
  if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); });
}

function tableFor(service) {
  let body = tables.get(service);
  if (body) return body;
  const wrap = document.createElement("div");
  wrap.innerHTML = `<h3>${service} <span class="muted" data-panic></span></h3><table><thead><tr>
    <th>id</th><th>zone</th><th>weight</th><th>etcd</th><th>lease</th><th>gateway</th><th>served</th>
    <th>in-flight</th><th>ejection</th></tr></thead><tbody></tbody></table>`;
  wrap.dataset.service = service;
  const all = [...tables.keys(), service].sort();
  const next = all[all.indexOf(service) + 1];
  $("services").insertBefore(wrap, next ? tables.get(next).closest("div") : null);
  body = wrap.querySelector("tbody");
  tables.set(service, body);
  return body;
}

function badge(health) { return `<span class="badge ${health}">${health}</span>`; }

function rowFor(id, service) {
  let row = rows.get(id);
  if (row) return row;
  const tr = document.createElement("tr");
  tr.dataset.id = id;
  tr.innerHTML = "<td></td>".repeat(9);
  const body = tableFor(service);
  // Rows stay in id order; a first read arrives sorted, so appending is the common case.
  const last = body.lastElementChild;
  const after = !last || last.dataset.id < id ? null : [...body.children].find((r) => r.dataset.id > id);
  body.insertBefore(tr, after ?? null);
  row = { tr, cells: [...tr.children], key: "" };
  rows.set(id, row);
  return row;
}

function drawRow(id, t) {
  const gone = model.gone.get(id);
  if (gone) {
    if (t - gone.at > GONE_SHOWN_MS) {
      rows.get(id)?.tr.remove();
      rows.delete(id);
      model.gone.delete(id);
      return;
    }
    const row = rowFor(id, gone.service);
    row.tr.className = "gone";
    row.tr.dataset.health = "gone";
    row.cells[3].innerHTML = badge("gone");
    row.cells[4].textContent = "expired";
    return;
  }
  let state;
  try {
    state = registry.get(id, t);
  } catch {
    return;
  }
  const inst = state.instance;
  const gw = model.gateway.get(id);
  const ttl = model.ttl.get(id);
  const ejection = gw?.ejected_until ? `${((gw.ejected_until - t) / 1000).toFixed(1)} s` : "";
  // A lease kept alive every TTL/3 never falls below a third of its TTL:
  // one that does has missed two renewals, and its instance is about to go.
  // etcd counts what is left in whole seconds, rounded down, so a lease of
  // 3 s renewed a moment late already reads 1: only 0 is below a third.
  const expiring = ttl != null && ttl.granted > 0 && ttl.left < ttl.granted / 3;
  const cells = [id, inst.zone ?? "", String(inst.weight), badge(state.health),
    ttl == null ? "" : `${ttl.left} s${expiring ? " — not renewed" : ""}`,
    gw ? badge(gw.health) : "", gw ? String(gw.served) : "", gw ? String(gw.inflight) : "", ejection];
  const key = cells.join("|");
  const row = rowFor(id, inst.service);
  if (row.key === key) return;
  row.key = key;
  row.tr.className = expiring ? "expiring" : "";
  row.tr.dataset.health = state.health;
  row.tr.dataset.lease = expiring ? "expiring" : "";
  row.tr.dataset.gateway = gw?.health ?? "";
  for (let i = 0; i < cells.length; i++) {
    if (i === 3 || i === 5) row.cells[i].innerHTML = cells[i];
    else row.cells[i].textContent = cells[i];
  }
}

function draw(t = now()) {
  for (const id of model.dirty) drawRow(id, t);
  model.dirty.clear();
  for (const id of model.gone.keys()) model.dirty.add(id); // until they fade
  $("revision").textContent = String(model.revision);
  $("count").textContent = String(model.count);
  document.body.dataset.state = model.status;
  if (model.gone.size) schedule();
}

// ---- banners ----------------------------------------------------------
function banners() {
  const out = [];
  if (model.status === "reconnecting") {
    out.push(`<div class="banner-down">etcd unreachable: showing the last state mirrored (revision ${model.revision}); reconnecting…</div>`);
  }
  for (const service of [...model.services].sort()) {
    let panic = false;
    try { panic = registry.discover(service, { all: true }).panic; } catch {}
    if (panic) out.push(`<div class="banner-panic">panic in ${service}: too few healthy instances, picks spread over all of them</div>`);
  }
  if (model.selfPreservation) out.push(`<div class="banner-sp">self-preservation: removals are held back</div>`);
  const html = out.join("");
  if ($("banners").innerHTML !== html) $("banners").innerHTML = html;
}

// ---- the timeline -----------------------------------------------------
const lines = [];
function timeline(text, at = now()) {
  const stamp = new Date(at).toISOString().slice(11, 23);
  lines.unshift(`${stamp}  ${text}`);
  if (lines.length > TIMELINE_MAX) lines.length = TIMELINE_MAX;
  if (!timeline.pending) {
    timeline.pending = true;
    requestAnimationFrame(() => { timeline.pending = false; $("timeline").textContent = lines.join("\n"); });
  }
}

// ---- the pick simulator -----------------------------------------------
// Live: 50 picks every 250 ms on this page's registry. With a seed: 1 000
// picks on a fresh registry with that seed, mirrored from the same etcd —
// the same sequence a Python, Node or Go mirror draws with that seed.
const sim = { counts: new Map(), total: 0, signature: "", sampling: false };

/** `n` picks on a fresh registry seeded `seed`, mirroring etcd with its own EtcdMirror. */
async function samplePicks({ seed, service, strategy, zone, key, n = 1000 }) {
  const fresh = new Registry({ seed });
  const mirror = new EtcdMirror({ endpoints: window.__dashboard.etcd, registry: fresh });
  await mirror.start();
  const revision = mirror.revision;
  await mirror.close();
  const options = { key: strategy === "consistent_hash" ? key : undefined, zone: zone || undefined };
  const picks = [];
  for (let i = 0; i < n; i++) picks.push(fresh.pick(service, strategy, options).instance.id);
  fresh.free();
  return { revision, picks };
}

function showHistogram(note) {
  const max = Math.max(1, ...sim.counts.values());
  $("histogram").innerHTML = `<div class="hist">${[...sim.counts.entries()].sort().map(([id, n]) =>
    `<span>${id}</span><div class="bar" style="width:${(100 * n) / max}%"></div><span>${((100 * n) / sim.total).toFixed(1)}%</span>`).join("")}</div>`;
  $("sim-note").textContent = note || `${sim.total} picks`;
}

function simulate() {
  const service = $("sim-service").value;
  const strategy = $("sim-strategy").value;
  const zone = $("sim-zone").value;
  const key = $("sim-key").value || "user-42";
  const seed = $("sim-seed").value.trim();
  const signature = [service, strategy, zone, key, seed, registry.membershipEpoch].join("|");
  const fresh = signature !== sim.signature;
  if (fresh) {
    sim.signature = signature;
    sim.counts = new Map();
    sim.total = 0;
  }
  if (!service) return;
  if (seed !== "") {
    if (!fresh || sim.sampling || !window.__dashboard.etcd) return;
    sim.sampling = true;
    samplePicks({ seed: Number(seed), service, strategy, zone, key })
      .then(({ revision, picks }) => {
        if (sim.signature !== signature) return;
        for (const id of picks) sim.counts.set(id, (sim.counts.get(id) ?? 0) + 1);
        sim.total = picks.length;
        showHistogram(`${picks.length} picks with seed ${seed} at revision ${revision}`);
      })
      .catch((e) => showHistogram(`${e.code ?? ""} ${e.message}`))
      .finally(() => { sim.sampling = false; });
    return;
  }
  const options = { key: strategy === "consistent_hash" ? key : undefined, zone: zone || undefined };
  let note = "";
  for (let i = 0; i < 50; i++) {
    try {
      const picked = registry.pick(service, strategy, options).instance.id;
      sim.counts.set(picked, (sim.counts.get(picked) ?? 0) + 1);
      sim.total += 1;
    } catch (e) {
      note = `${e.code}: ${e.message}`;
      break;
    }
  }
  showHistogram(note);
}

function refreshChoices() {
  const select = $("sim-service");
  const services = [...model.services].filter((s) => { try { return registry.discover(s, { all: true }).instances.length > 0; } catch { return false; } }).sort();
  if ([...select.options].map((o) => o.value).join() !== services.join()) {
    const keep = select.value;
    select.innerHTML = services.map((s) => `<option>${s}</option>`).join("");
    if (services.includes(keep)) select.value = keep;
  }
  const zones = new Set();
  for (const s of services) for (const i of registry.discover(s, { all: true }).instances) if (i.zone) zones.add(i.zone);
  const zoneSelect = $("sim-zone");
  const wanted = ["", ...[...zones].sort()];
  if ([...zoneSelect.options].map((o) => o.value).join() !== wanted.join()) {
    const keep = zoneSelect.value;
    zoneSelect.innerHTML = wanted.map((z) => `<option value="${z}">${z || "any"}</option>`).join("");
    zoneSelect.value = wanted.includes(keep) ? keep : "";
  }
}

// ---- the gateway's view and lease countdowns ------------------------------
async function pollGateway(url) {
  try {
    const state = await (await fetch(`${url}/_state`)).json();
    const seen = new Set();
    for (const inst of state.instances) {
      seen.add(inst.id);
      const before = model.gateway.get(inst.id);
      model.gateway.set(inst.id, inst);
      if (!before || before.served !== inst.served || before.health !== inst.health || before.inflight !== inst.inflight ||
          before.ejected_until !== inst.ejected_until || inst.ejected_until) model.dirty.add(inst.id);
    }
    for (const id of model.gateway.keys()) if (!seen.has(id)) { model.gateway.delete(id); model.dirty.add(id); }
    for (const c of state.changes.slice(model.gatewayChanges)) {
      if (c.from !== null && c.to !== null) timeline(`gateway: ${c.id} ${c.from} → ${c.to}`, c.t);
    }
    model.gatewayChanges = state.changes.length;
    schedule();
  } catch {
    // the gateway is optional: the page's own mirror stands alone
  }
}

const enc = new TextEncoder();
const b64 = (bytes) => btoa(String.fromCharCode(...bytes));

/** Lease countdowns, for small fleets: which lease each key has, then each lease's time to live. */
async function pollLeases(endpoint) {
  if (model.count > 50) return;
  const post = async (path, body) => (await fetch(endpoint + path, { method: "POST", body: JSON.stringify(body) })).json();
  try {
    const key = enc.encode(PREFIX);
    const end = key.slice();
    end[end.length - 1] += 1;
    const answer = await post("/v3/kv/range", { key: b64(key), range_end: b64(end), keys_only: true });
    model.leases = new Map((answer.kvs ?? []).map((kv) => [idOf(atob(kv.key)), kv.lease ?? "0"]));
    await Promise.all([...model.leases.entries()].map(async ([id, lease]) => {
      const answer = lease === "0" ? {} : await post("/v3/lease/timetolive", { ID: lease });
      // etcd leaves out zero values: a live lease under a second from its
      // end has a grantedTTL and no TTL; a lease that is gone, TTL -1.
      const granted = Number(answer.grantedTTL ?? 0);
      const left = Number(answer.TTL ?? (granted > 0 ? 0 : -1));
      const shown = left < 0 ? null : { left, granted };
      if (JSON.stringify(model.ttl.get(id)) !== JSON.stringify(shown)) { model.ttl.set(id, shown); model.dirty.add(id); }
    }));
    schedule();
  } catch {
    // etcd away: the banner says so; countdowns resume with it
  }
}

// ---- start --------------------------------------------------------------
async function config() {
  const params = new URLSearchParams(location.search);
  if (params.get("etcd")) return { etcd: params.get("etcd").split(","), gateway: params.get("gateway") };
  try {
    const reply = await fetch("/config.json");
    if (reply.ok) return await reply.json();
  } catch {}
  return null;
}

function setStatus(status, error) {
  if (status !== model.status) {
    model.status = status;
    timeline(status === "live" ? "watching etcd" : `etcd: ${error?.message ?? status}`);
    banners();
    schedule();
  }
  $("status").className = `dot ${status}`;
}

/** Frame time: one watch message fed to the core and drawn, with `n` instances mirrored. */
async function bench(n, updates = 200) {
  const utf8 = (text) => b64(enc.encode(text));
  registry.sourceAdd("bench", { kind: "etcd", prefix: "/waypost/services" });
  const kvs = [];
  for (let i = 0; i < n; i++) {
    const id = `bench-${String(i).padStart(5, "0")}`;
    const spec = { id, service: `bench-${i % 10}`, address: "10.0.0.1", port: 8000 + (i % 1000), weight: 1 + (i % 3), zone: `zone-${i % 3}` };
    kvs.push({ key: `/waypost/services/${spec.service}/${id}`, spec });
  }
  const range = { header: { revision: "1" }, count: String(n), kvs: kvs.map(({ key, spec }) =>
    ({ key: utf8(key), value: utf8(JSON.stringify(spec)), create_revision: "1", mod_revision: "1", version: "1" })) };
  let t0 = performance.now();
  registry.sourceFeed("bench", JSON.stringify(range), now());
  changed();
  draw();
  const initial = performance.now() - t0;
  registry.sourceFeed("bench", JSON.stringify({ result: { header: { revision: "1" }, created: true } }), now());
  const times = [];
  for (let u = 0; u < updates; u++) {
    const { key, spec } = kvs[(u * 7919) % n];
    const revision = String(2 + u);
    const event = u % 10 === 9
      ? { type: "DELETE", kv: { key: utf8(key), mod_revision: revision } }
      : { kv: { key: utf8(key), value: utf8(JSON.stringify({ ...spec, weight: 1 + ((spec.weight + u) % 5) })), mod_revision: revision } };
    t0 = performance.now();
    registry.sourceFeed("bench", JSON.stringify({ result: { header: { revision }, events: [event] } }), now());
    changed();
    draw();
    simulate();
    times.push(performance.now() - t0);
    await new Promise((ok) => setTimeout(ok, 0));
  }
  times.sort((a, b) => a - b);
  return { n, initial_ms: initial, median_ms: times[times.length >> 1], p99_ms: times[Math.floor(times.length * 0.99)], max_ms: times[times.length - 1] };
}

async function main() {
  for (const s of STRATEGIES) $("sim-strategy").insertAdjacentHTML("beforeend", `<option>${s}</option>`);
  $("sim-strategy").value = "weighted_round_robin";
  window.__dashboard = { registry, model, bench, draw, samplePicks };
  const params = new URLSearchParams(location.search);
  if (params.has("bench")) {
    document.body.dataset.state = "bench";
    $("source").textContent = "benchmark (synthetic instances)";
    return;
  }
  const cfg = await config();
  if (!cfg) {
    $("source").innerHTML = "no fleet configured (open it from <code>make demo</code>, or add <code>?etcd=URL</code>): try the offline mode";
    document.body.dataset.state = "offline";
    return;
  }
  $("source").textContent = `etcd ${cfg.etcd.join(", ")}${cfg.gateway ? ` · gateway ${cfg.gateway}` : ""}`;
  window.__dashboard.etcd = cfg.etcd;
  const mirror = new EtcdMirror({ endpoints: cfg.etcd, registry, onChange: changed });
  mirror.on("error", (e) => setStatus("reconnecting", e));
  mirror.on("synced", () => setStatus("live"));
  mirror.start().catch((e) => setStatus("reconnecting", e));
  window.__dashboard.mirror = mirror;
  setInterval(() => {
    if (mirror.status === "synced") setStatus("live");
    model.revision = mirror.revision;
    refreshChoices();
    simulate();
    banners();
    schedule();
  }, 250);
  setInterval(() => { for (const id of model.gateway.keys()) model.dirty.add(id); schedule(); }, 100);
  if (cfg.gateway) setInterval(() => pollGateway(cfg.gateway), 500);
  // Twice a second: a lease that was not renewed is expiring only in its
  // last second or so (see drawRow), which a poll every second can miss.
  setInterval(() => pollLeases(mirror.endpoint), 500);
  for (const id of ["sim-service", "sim-strategy", "sim-zone", "sim-key", "sim-seed"]) $(id).addEventListener("change", simulate);
}

main().catch((e) => {
  console.error(e);
  document.body.dataset.state = "error";
});
