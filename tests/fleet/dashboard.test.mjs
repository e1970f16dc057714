// The live dashboard in real headless Chromium against a running fleet
// (`demo.py --no-story`): no console error, every instance shown, the
// gateway's ejection shown, a SIGKILLed instance turns red and leaves within
// its TTL + 2 s, picks for a seed equal to a Python mirror's, a non-blank
// screenshot. (Its frame time is a benchmark:
// examples/dashboard/bench.mjs.)
//   cd bindings-wasm/npm && node --test ../../tests/fleet/dashboard.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { decodePng, launchChromium, watchedPage } from "../../bindings-wasm/npm/test/helpers.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const python = process.env.WAYPOST_PYTHON ?? join(root, "target/py-venv/bin/python");
const outDir = join(root, "target/fleet");
let demo;
let fleet;
let browser;

before(async () => {
  demo = spawn(python, [join(root, "examples/fleet/demo.py"), "--no-story"], {
    cwd: join(root, "examples/fleet"),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: demo.stdout });
  fleet = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("the fleet did not start in 60 s")), 60_000);
    demo.on("exit", (code) => fail(new Error(`demo.py exited with ${code}`)));
    lines.on("line", (line) => {
      if (line.startsWith("FLEET ")) {
        clearTimeout(timer);
        ok(JSON.parse(line.slice(6)));
      }
    });
  });
  lines.on("line", () => {}); // keep draining its narration
  browser = await launchChromium();
});

function listeningPorts() {
  const ports = new Set();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === "0A") ports.add(parseInt(f[1].split(":").pop(), 16));
    }
  }
  return ports;
}

after(async () => {
  await browser?.close();
  if (demo && demo.exitCode === null) {
    const exited = new Promise((ok) => demo.on("exit", ok));
    demo.kill("SIGTERM"); // demo.py stops every process it started
    await exited;
  }
  if (fleet) {
    const listening = listeningPorts();
    const left = Object.entries(fleet.ports).filter(([, port]) => listening.has(port));
    assert.deepEqual(left, [], "ports still listening after the fleet stopped");
    for (const [name, pid] of Object.entries(fleet.pids)) {
      let alive = false;
      try { alive = !readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].startsWith("Z"); } catch {}
      assert.equal(alive, false, `${name} (${pid}) still alive`);
    }
  }
});

const rowsOf = (page) => page.$$eval("tr[data-id]", (trs) =>
  Object.fromEntries(trs.map((tr) => [tr.dataset.id, { health: tr.dataset.health, gateway: tr.dataset.gateway }])));

test("the dashboard mirrors the fleet, shows an ejection and a SIGKILLed instance leaving", async () => {
  const { page, problems } = await watchedPage(browser);
  await page.setViewportSize({ width: 1400, height: 820 });
  await page.goto(fleet.dashboard);
  await page.waitForSelector("body[data-state=live]", { timeout: 20_000 });
  await page.waitForFunction(() => document.querySelectorAll("tr[data-id]").length === 6, null, { timeout: 10_000 });
  let rows = await rowsOf(page);
  assert.deepEqual(Object.keys(rows).sort(), ["go-1", "go-2", "node-1", "node-2", "py-1", "py-2"]);
  for (const [id, row] of Object.entries(rows)) assert.equal(row.health, "healthy", id);

  // node-2 fails every call: the gateway ejects it, the page shows it.
  await fetch(`http://127.0.0.1:${fleet.ports["node-2"]}/admin/fail?rate=1`);
  await page.waitForSelector('tr[data-id="node-2"][data-gateway=ejected]', { timeout: 15_000 });
  await fetch(`http://127.0.0.1:${fleet.ports["node-2"]}/admin/fail?rate=0`);

  // py-2 is SIGKILLed: its lease runs out, the page turns it red, then drops it.
  const killed = Date.now();
  process.kill(fleet.pids["py-2"], "SIGKILL");
  // Red once its lease is seen not renewed, or once etcd has removed it.
  await page.waitForSelector('tr[data-id="py-2"][data-lease=expiring], tr[data-id="py-2"][data-health=gone]',
    { timeout: (fleet.ttl_s + 2) * 1000 });
  const red = Date.now() - killed;
  await page.waitForFunction(() => !document.querySelector('tr[data-id="py-2"]'), null,
    { timeout: (fleet.ttl_s + 2) * 1000 - (Date.now() - killed) });
  const gone = Date.now() - killed;
  console.log(`py-2 red after ${red} ms, gone from the page after ${gone} ms (TTL ${fleet.ttl_s} s)`);
  assert.ok(gone <= (fleet.ttl_s + 2) * 1000);
  rows = await rowsOf(page);
  assert.deepEqual(Object.keys(rows).sort(), ["go-1", "go-2", "node-1", "node-2", "py-1"]);
  const expiring = await page.$$eval("tr[data-lease=expiring]", (trs) => trs.map((tr) => tr.dataset.id));
  assert.deepEqual(expiring, [], "a renewed lease shown as expiring");

  // The pick simulator has drawn a histogram.
  const bars = await page.$$eval("#histogram .bar", (b) => b.length);
  assert.ok(bars >= 1, "no histogram");

  // With a seed, the page's picks are the Python mirror's picks, call for call.
  for (const [service, strategy] of [["hello-go", "weighted_random"], ["hello-node", "random"]]) {
    const inPage = await page.evaluate((o) => window.__dashboard.samplePicks(o), { seed: 11, service, strategy, n: 300 });
    const py = spawnSync(python, [join(root, "tests/fleet/picks.py"), fleet.etcd, "11", service, strategy, "300"], { encoding: "utf8" });
    assert.equal(py.status, 0, py.stderr);
    const inPython = JSON.parse(py.stdout);
    assert.equal(inPage.revision, inPython.revision, "both read the same revision");
    assert.deepEqual(inPage.picks, inPython.picks, `${service} ${strategy}: page and Python picks differ`);
    assert.ok(new Set(inPage.picks).size === 2, `${service}: both instances picked`);
  }
  await page.fill("#sim-seed", "11");
  await page.selectOption("#sim-service", "hello-go");
  await page.selectOption("#sim-strategy", "weighted_random");
  await page.waitForFunction(() => document.getElementById("sim-note").textContent.includes("seed 11"), null, { timeout: 10_000 });

  const shot = await page.screenshot({ fullPage: false });
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "dashboard.png"), shot);
  await page.close();
  assert.deepEqual(problems, []);

  const { width, height, channels, pixels } = decodePng(shot);
  const colours = new Set();
  let inked = 0;
  let green = 0;
  for (let i = 0; i < width * height * channels; i += channels) {
    const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
    colours.add((r << 16) | (g << 8) | b);
    if (Math.abs(r - 0xf6) + Math.abs(g - 0xf7) + Math.abs(b - 0xf9) > 30) inked++;
    if (Math.abs(r - 0x2f) + Math.abs(g - 0x9e) + Math.abs(b - 0x44) < 30) green++;
  }
  // Text, badges and bars on the page's grey and the sections' white: a few
  // percent of the pixels, and the green of healthy badges among them.
  assert.ok(colours.size > 50, `only ${colours.size} colours`);
  assert.ok(inked / (width * height) > 0.02, `only ${inked} non-background pixels`);
  assert.ok(green > 500, `only ${green} pixels of the healthy badges' green`);
});

test("the panic and self-preservation banners appear and clear", async () => {
  const { page, problems } = await watchedPage(browser);
  await page.goto(fleet.dashboard);
  await page.waitForSelector("body[data-state=live]", { timeout: 20_000 });
  const banner = (kind) => page.$$eval(`#banners .banner-${kind}`, (els) => els.map((e) => e.textContent));
  const setStatus = async (id, status) => {
    const reply = await fetch(`http://127.0.0.1:${fleet.ports[id]}/admin/status?status=${status}`);
    assert.equal(reply.status, 200, `${id} /admin/status: ${await reply.text()}`);
  };

  // Panic: both hello-node instances report critical (each through its
  // registrar's update), so none of the service's two is healthy.
  assert.deepEqual(await banner("panic"), []);
  await setStatus("node-1", "critical");
  await setStatus("node-2", "critical");
  await page.waitForSelector("#banners .banner-panic", { timeout: 15_000 });
  assert.match((await banner("panic")).join(), /hello-node/);
  await setStatus("node-1", "passing");
  await setStatus("node-2", "passing");
  await page.waitForFunction(() => !document.querySelector("#banners .banner-panic"), null, { timeout: 15_000 });

  // Self-preservation: eight instances of one process share a lease that is
  // not kept alive; when it expires etcd deletes their keys in one revision,
  // more than half of the fleet at once, and the page's mirror holds the removals.
  const etcd = async (path, body) => {
    const reply = await fetch(fleet.etcd + path, { method: "POST", body: JSON.stringify(body) });
    assert.equal(reply.status, 200, `${path}: ${reply.status}`);
    return reply.json();
  };
  const b64 = (s) => Buffer.from(s).toString("base64");
  const batch = Array.from({ length: 8 }, (_, i) => ({ id: `batch-${i}`, service: "batch", address: "127.0.0.1", port: 9000 + i }));
  const putAll = async (lease) => {
    for (const inst of batch) await etcd("/v3/kv/put", { key: b64(`/waypost/services/batch/${inst.id}`), value: b64(JSON.stringify(inst)), lease });
  };
  assert.deepEqual(await banner("sp"), []);
  const { ID: shortLease } = await etcd("/v3/lease/grant", { TTL: 3 });
  await putAll(shortLease);
  await page.waitForFunction(() => document.querySelectorAll('tr[data-id^="batch-"]').length === 8, null, { timeout: 15_000 });
  await page.waitForSelector("#banners .banner-sp", { timeout: 20_000 });
  const held = await page.evaluate(() => window.__dashboard.registry.discover("batch", { all: true }).instances.length);
  assert.ok(held > 0, "held removals keep their instances");
  // The instances come back (a new lease): every hold ends, the banner clears.
  const { ID: longLease } = await etcd("/v3/lease/grant", { TTL: 120 });
  await putAll(longLease);
  await page.waitForFunction(() => !document.querySelector("#banners .banner-sp"), null, { timeout: 15_000 });
  // Removed one at a time, one revision each, they are a mass loss all the
  // same: the removals of the last minute stay counted (SPEC §10.3), so the
  // mirror holds them (all of them, after the two removals above) and the
  // banner comes back.
  for (const inst of batch) await etcd("/v3/kv/deleterange", { key: b64(`/waypost/services/batch/${inst.id}`) });
  await page.waitForSelector("#banners .banner-sp", { timeout: 20_000 });
  const kept = await page.evaluate(() => window.__dashboard.registry.discover("batch", { all: true }).instances.length);
  assert.ok(kept > 0, `the later removals are held: ${kept} of ${batch.length} kept`);
  await page.close();
  assert.deepEqual(problems, []);
});
