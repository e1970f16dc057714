// A fleet of six `api` instances in virtual time: api-3 crashes at 15 s and
// comes back at 40 s, api-5 fails 70% of its calls (outlier ejection),
// api-4 is drained at 30 s. Every 500 ms each strategy picks ten times;
// the page shows health and a pick histogram per strategy.
import { Registry, STRATEGIES } from "waypost";

const COLORS = ["#4263eb", "#1098ad", "#37b24d", "#f59f00", "#f03e3e", "#ae3ec9"];
const FLEET = [
  { id: "api-1", zone: "eu-a", weight: 3 },
  { id: "api-2", zone: "eu-a", weight: 1 },
  { id: "api-3", zone: "eu-b", weight: 2 },
  { id: "api-4", zone: "eu-b", weight: 1 },
  { id: "api-5", zone: "eu-c", weight: 2 },
  { id: "api-6", zone: "eu-c", weight: 1 },
];
const STEP_MS = 500;
const END_MS = 60_000;

// Deterministic simulation randomness (the registry has its own seed).
function lcg(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
}

function setup() {
  const reg = new Registry({ ttlMs: 4_000, evictAfterMs: 0, consecutiveFailures: 3, baseEjectionMs: 8_000, maxEjectionPercent: 50, seed: 42 });
  for (const [i, f] of FLEET.entries()) {
    reg.register({ id: f.id, service: "api", address: `10.0.0.${i + 1}`, port: 8080, zone: f.zone, weight: f.weight }, 0);
  }
  const counts = Object.fromEntries(STRATEGIES.map((s) => [s, Object.fromEntries(FLEET.map((f) => [f.id, 0]))]));
  return { reg, counts, t: 0, rand: lcg(7), log: [] };
}

function step(sim) {
  const { reg, counts, rand } = sim;
  sim.t += STEP_MS;
  const t = sim.t;
  const up = (id) => id !== "api-3" || t < 15_000 || t >= 40_000;
  if (t % 2_000 === 0) {
    for (const f of FLEET) {
      if (!up(f.id)) continue;
      try {
        reg.heartbeat(f.id, t);
      } catch (e) {
        if (e.code !== "not_found") throw e;
      }
    }
  }
  if (t === 30_000) reg.drain("api-4", true, t);
  for (const strategy of STRATEGIES) {
    for (let n = 0; n < 10; n++) {
      const options = strategy === "consistent_hash" ? { key: `user-${Math.floor(rand() * 100)}` } : {};
      let pick;
      try {
        pick = reg.pick("api", strategy, options, t);
      } catch (e) {
        if (e.code === "no_eligible_instance") continue;
        throw e;
      }
      const id = pick.instance.id;
      counts[strategy][id] += 1;
      reg.reportOutcome(id, !(id === "api-5" && rand() < 0.7), t);
    }
  }
  for (const e of reg.tick(t)) sim.log.push(e);
}

function render(sim) {
  const { reg, counts } = sim;
  document.getElementById("clock").textContent = `t = ${(sim.t / 1000).toFixed(1)} s`;
  const all = reg.discover("api", { all: true }, sim.t);
  document.getElementById("instances").innerHTML = all.instances
    .map((inst, i) => {
      const state = reg.get(inst.id, sim.t);
      return `<tr><td>${inst.id}</td><td>${inst.zone}</td><td>${inst.weight}</td>` +
        `<td><span class="badge ${all.health[i]}">${all.health[i]}</span></td>` +
        `<td>${(state.leaseDeadline / 1000).toFixed(1)} s</td></tr>`;
    })
    .join("");
  const events = reg.eventsSince(Math.max(0, reg.lastIndex - 12));
  document.getElementById("events").textContent = events
    .map((e) => `#${e.index} ${(e.at / 1000).toFixed(1)}s ${e.type} ${e.id ?? e.service ?? ""}${e.to ? ` → ${e.to}` : ""}`)
    .reverse()
    .join("\n");
  document.getElementById("histogram").innerHTML = STRATEGIES.map((s) => {
    const total = Object.values(counts[s]).reduce((a, b) => a + b, 0) || 1;
    const bars = FLEET.map((f, i) => {
      const share = (100 * counts[s][f.id]) / total;
      return `<div title="${f.id}: ${counts[s][f.id]}" style="width:${share}%;background:${COLORS[i]}"></div>`;
    }).join("");
    return `<div>${s}</div><div class="bars">${bars}</div>`;
  }).join("");
}

function legend() {
  document.getElementById("legend").innerHTML = FLEET.map(
    (f, i) => `<span><i style="background:${COLORS[i]}"></i>${f.id} (w${f.weight}, ${f.zone})</span>`,
  ).join("");
}

function run() {
  const sim = setup();
  const button = document.getElementById("replay");
  button.disabled = true;
  document.body.dataset.state = "running";
  render(sim);
  const timer = setInterval(() => {
    for (let i = 0; i < 4 && sim.t < END_MS; i++) step(sim);
    render(sim);
    if (sim.t >= END_MS) {
      clearInterval(timer);
      sim.reg.free();
      button.disabled = false;
      document.body.dataset.state = "done";
    }
  }, 40);
}

legend();
document.getElementById("replay").addEventListener("click", run);
run();
