// The live dashboard: this page mirrors etcd's /waypost/services prefix into
// a waypost Registry running in WebAssembly (etcd's JSON gateway allows
// cross-origin calls by default), shows each instance with its health, and
// overlays what the demo's gateway sees (its outcome-driven ejections,
// in-flight calls, requests served) from the gateway's /_state.
//
// Where etcd and the gateway are: /config.json (written by `make demo`), or
// ?etcd=http://127.0.0.1:2379&gateway=http://127.0.0.1:8080.
import { Registry, STRATEGIES } from "waypost";
import { EtcdWatch } from "./etcd-watch.js";

const $ = (id) => document.getElementById(id);
const now = () => Date.now();
const GONE_SHOWN_MS = 1_000;     // a removed instance stays on screen, red, this long
const TIMELINE_MAX = 300;

const registry = new Registry({ ttlMs: 86_400_000, panicThreshold: 0.3, seed: 7 });
const model = {
  leases: new Map(),     // id → lease id (hex string as etcd sends it)
  keys: new Map(),       // id → key
  gone: new Map(),       // id → {service, at}: removed, still drawn red for a moment
  gateway: new Map(),    // id → the gateway's view of it
  ttl: new Map(),        // id → seconds left on its lease
  dirty: new Set(),      // ids to redraw
  services: new Set(),
  revision: 0,
  status: "connecting",
  lastEvent: 0,
  gatewayChanges: 0,
};

// ---- applying what etcd says ------------------------------------------
function idOf(key) { return key.slice(key.lastIndexOf("/") + 1); }

function applyPut(key, value, lease, t) {
  let entry;
  try {
    entry = JSON.parse(value);
  } catch {
    timeline(`skipped ${key}: not JSON`);
    return;
  }
  const { status = "passing", source: _source, ...spec } = entry;
  try {
    registry.register(spec, t);
    registry.drain(spec.id, status === "maintenance", t);
  } catch (e) {
    timeline(`skipped ${key}: ${e.code ?? ""} ${e.message}`);
    return;
  }
  model.leases.set(spec.id, lease);
  model.keys.set(spec.id, key);
  model.gone.delete(spec.id);
  model.services.add(spec.service);
  model.dirty.add(spec.id);
}

function applyDelete(key, t) {
  const id = idOf(key);
  let service = null;
  try {
    service = registry.get(id, t).instance.service;
    registry.deregister(id, t);
  } catch {
    return; // not ours, or already gone
  }
  model.leases.delete(id);
  model.keys.delete(id);
  model.gone.set(id, { service, at: t });
  model.dirty.add(id);
}

/** A full read of the prefix: everything listed is put, anything else removed. */
export function applySync(kvs, revision, t = now()) {
  const listed = new Set(kvs.map((kv) => idOf(kv.key)));
  for (const id of [...model.keys.keys()]) if (!listed.has(id)) applyDelete(model.keys.get(id), t);
  for (const kv of kvs) applyPut(kv.key, kv.value, kv.lease, t);
  model.revision = revision;
  timeline(`read ${kvs.length} instances at revision ${revision}`);
  recordEvents();
  schedule();
}

/** One watch message: one etcd revision's events, applied together. */
export function applyEvents(events, revision, t = now()) {
  for (const e of events) {
    if (e.type === "DELETE") applyDelete(e.key, t);
    else applyPut(e.key, e.value, e.lease, t);
  }
  model.revision = revision;
  recordEvents();
  schedule();
}

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
    for (const e of events) kinds[e.type] = (kinds[e.type] ?? 0) + 1;
    timeline(Object.entries(kinds).map(([k, n]) => `${n} × ${k}`).join(", "));
    model.lastEvent = events[events.length - 1].index;
    banners();
    return;
  }
  for (const e of events) {
    model.lastEvent = e.index;
    if (e.type === "self_preservation_entered") model.selfPreservation = true;
    if (e.type === "self_preservation_exited") model.selfPreservation = false;
    if (e.type.startsWith("panic_") || e.type.startsWith("self_preservation_")) banners();
    const change = e.from || e.to ? ` ${e.from ?? ""} → ${e.to ?? ""}` : "";
    timeline(`${e.type} ${e.id ?? e.service ?? ""}${change}`, e.at);
  }
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
  const cells = [id, inst.zone ?? "", String(inst.weight), badge(state.health), ttl == null ? "" : `${ttl} s`,
    gw ? badge(gw.health) : "", gw ? String(gw.served) : "", gw ? String(gw.inflight) : "", ejection];
  const key = cells.join("|");
  const row = rowFor(id, inst.service);
  if (row.key === key) return;
  row.key = key;
  row.tr.className = "";
  row.tr.dataset.health = state.health;
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
  $("count").textContent = String(model.keys.size);
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
const sim = { counts: new Map(), total: 0, signature: "" };
function simulate() {
  const service = $("sim-service").value;
  const strategy = $("sim-strategy").value;
  const zone = $("sim-zone").value;
  const key = $("sim-key").value || "user-42";
  const signature = [service, strategy, zone, key, registry.membershipEpoch].join("|");
  if (signature !== sim.signature) {
    sim.signature = signature;
    sim.counts = new Map();
    sim.total = 0;
  }
  if (!service) return;
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
  const max = Math.max(1, ...sim.counts.values());
  $("histogram").innerHTML = `<div class="hist">${[...sim.counts.entries()].sort().map(([id, n]) =>
    `<span>${id}</span><div class="bar" style="width:${(100 * n) / max}%"></div><span>${((100 * n) / sim.total).toFixed(1)}%</span>`).join("")}</div>`;
  $("sim-note").textContent = note || `${sim.total} picks`;
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

async function pollLeases(watch) {
  if (model.leases.size > 50) return; // a countdown per row is for small fleets
  await Promise.all([...model.leases.entries()].map(async ([id, lease]) => {
    try {
      const ttl = await watch.timeToLive(lease);
      if (model.ttl.get(id) !== ttl) { model.ttl.set(id, ttl); model.dirty.add(id); }
    } catch {}
  }));
  schedule();
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

/** Frame time: apply one watch message and draw, with `n` instances mirrored. */
async function bench(n, updates = 200) {
  const kvs = [];
  for (let i = 0; i < n; i++) {
    const id = `bench-${String(i).padStart(5, "0")}`;
    const spec = { id, service: `bench-${i % 10}`, address: "10.0.0.1", port: 8000 + (i % 1000), weight: 1 + (i % 3), zone: `zone-${i % 3}` };
    kvs.push({ key: `/waypost/services/${spec.service}/${id}`, value: JSON.stringify(spec), lease: "0" });
  }
  let t0 = performance.now();
  applySync(kvs, 1);
  draw();
  const initial = performance.now() - t0;
  const times = [];
  for (let u = 0; u < updates; u++) {
    const kv = kvs[(u * 7919) % n];
    const spec = JSON.parse(kv.value);
    spec.weight = 1 + ((spec.weight + u) % 5);
    t0 = performance.now();
    applyEvents([{ type: u % 10 === 9 ? "DELETE" : "PUT", key: kv.key, value: JSON.stringify(spec), lease: "0" }], 2 + u);
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
  window.__dashboard = { registry, model, bench, applySync, applyEvents, draw };
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
  const watch = new EtcdWatch({
    endpoints: cfg.etcd,
    onSync: (kvs, revision) => applySync(kvs, revision),
    onEvents: (events, revision) => {
      for (const e of events) timeline(`etcd ${e.type} ${idOf(e.key)} (revision ${e.revision})`);
      applyEvents(events, revision);
    },
    onStatus: setStatus,
  });
  watch.run();
  setInterval(() => { refreshChoices(); simulate(); banners(); }, 250);
  setInterval(() => { for (const id of model.gateway.keys()) model.dirty.add(id); schedule(); }, 100);
  if (cfg.gateway) setInterval(() => pollGateway(cfg.gateway), 500);
  setInterval(() => pollLeases(watch), 1000);
  for (const id of ["sim-service", "sim-strategy", "sim-zone", "sim-key"]) $(id).addEventListener("change", simulate);
}

main().catch((e) => {
  console.error(e);
  document.body.dataset.state = "error";
});
