// The live dashboard in real headless browsers against a running fleet
// (`demo.py --no-story`): no console error, every instance shown, the
// gateway's ejection shown, a SIGKILLed instance turns red and leaves within
// its TTL + 2 s, picks for a seed equal to a Python mirror's, a non-blank
// screenshot. Chromium and Firefox each open the page on the same fleet,
// side by side: every step acts on the fleet once and each page must show
// it. (Its frame time is a benchmark: examples/dashboard/bench.mjs.)
//   cd bindings-wasm/npm && node --test ../../tests/fleet/dashboard.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { BROWSERS, decodePng, launchBrowser, watchedPage } from "../../bindings-wasm/npm/test/helpers.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const python = process.env.WAYPOST_PYTHON ?? join(root, "target/py-venv/bin/python");
const outDir = join(root, "target/fleet");
let demo;
let fleet;
const browsers = new Map(); // name → browser
let launching;

before(async () => {
  // The browsers start while the fleet does.
  launching = Promise.all(BROWSERS.map(async (name) => browsers.set(name, await launchBrowser(name))));
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
  await launching;
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
  await launching?.catch(() => {});
  await Promise.all([...browsers.values()].map((browser) => browser.close()));
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

/** One watched page per browser. */
async function openPages() {
  const pages = [];
  for (const name of BROWSERS) pages.push({ name, ...(await watchedPage(browsers.get(name))) });
  return pages;
}

/** Runs `step(page, name)` on every page at once; a failure names its browser. */
function onEach(pages, step) {
  return Promise.all(pages.map(async ({ name, page }) => {
    try {
      return await step(page, name);
    } catch (e) {
      e.message = `${name}: ${e.message}`;
      throw e;
    }
  }));
}

async function closePages(pages) {
  await onEach(pages, (page) => page.close());
  for (const { name, problems } of pages) assert.deepEqual(problems, [], name);
}

const rowsOf = (page) => page.$$eval("tr[data-id]", (trs) =>
  Object.fromEntries(trs.map((tr) => [tr.dataset.id, { health: tr.dataset.health, gateway: tr.dataset.gateway }])));

test("the dashboard mirrors the fleet, shows an ejection and a SIGKILLed instance leaving", async () => {
  const pages = await openPages();
  await onEach(pages, async (page) => {
    await page.setViewportSize({ width: 1400, height: 820 });
    await page.goto(fleet.dashboard);
    await page.waitForSelector("body[data-state=live]", { timeout: 20_000 });
    await page.waitForFunction(() => document.querySelectorAll("tr[data-id]").length === 6, null, { timeout: 10_000 });
    const rows = await rowsOf(page);
    assert.deepEqual(Object.keys(rows).sort(), ["go-1", "go-2", "node-1", "node-2", "py-1", "py-2"]);
    for (const [id, row] of Object.entries(rows)) assert.equal(row.health, "healthy", id);
    // Every row ever marked expiring, whenever it was: only py-2's lease stops being renewed.
    await page.evaluate(() => {
      window.__expiringSeen = new Set();
      new MutationObserver((changes) => {
        for (const { target } of changes) if (target.dataset.lease === "expiring") window.__expiringSeen.add(target.dataset.id);
      }).observe(document.getElementById("services"), { subtree: true, attributes: true, attributeFilter: ["data-lease"] });
    });
  });

  // node-2 fails every call: the gateway ejects it, the pages show it.
  await fetch(`http://127.0.0.1:${fleet.ports["node-2"]}/admin/fail?rate=1`);
  await onEach(pages, (page) => page.waitForSelector('tr[data-id="node-2"][data-gateway=ejected]', { timeout: 15_000 }));
  await fetch(`http://127.0.0.1:${fleet.ports["node-2"]}/admin/fail?rate=0`);

  // py-2 is SIGKILLed: its lease runs out, the pages turn it red, then drop it.
  const killed = Date.now();
  process.kill(fleet.pids["py-2"], "SIGKILL");
  await onEach(pages, async (page, name) => {
    // Red once its lease is seen not renewed, or once etcd has removed it.
    await page.waitForSelector('tr[data-id="py-2"][data-lease=expiring], tr[data-id="py-2"][data-health=gone]',
      { timeout: (fleet.ttl_s + 2) * 1000 });
    const red = Date.now() - killed;
    await page.waitForFunction(() => !document.querySelector('tr[data-id="py-2"]'), null,
      { timeout: (fleet.ttl_s + 2) * 1000 - (Date.now() - killed) });
    const gone = Date.now() - killed;
    const how = await page.evaluate(() => (window.__expiringSeen.has("py-2") ? "lease not renewed" : "removed"));
    console.log(`${name}: py-2 red (${how}) after ${red} ms, gone from the page after ${gone} ms (TTL ${fleet.ttl_s} s)`);
    assert.ok(gone <= (fleet.ttl_s + 2) * 1000);
    const rows = await rowsOf(page);
    assert.deepEqual(Object.keys(rows).sort(), ["go-1", "go-2", "node-1", "node-2", "py-1"]);
    const expiring = await page.evaluate(() => [...window.__expiringSeen].filter((id) => id !== "py-2"));
    assert.deepEqual(expiring, [], "a renewed lease shown as expiring");
    // The pick simulator has drawn a histogram.
    const bars = await page.$$eval("#histogram .bar", (b) => b.length);
    assert.ok(bars >= 1, "no histogram");
  });

  // With a seed, each page's picks are the Python mirror's picks, call for call.
  for (const [service, strategy] of [["hello-go", "weighted_random"], ["hello-node", "random"]]) {
    const inPages = await onEach(pages, (page) =>
      page.evaluate((o) => window.__dashboard.samplePicks(o), { seed: 11, service, strategy, n: 300 }));
    const py = spawnSync(python, [join(root, "tests/fleet/picks.py"), fleet.etcd, "11", service, strategy, "300"], { encoding: "utf8" });
    assert.equal(py.status, 0, py.stderr);
    const inPython = JSON.parse(py.stdout);
    for (const [i, inPage] of inPages.entries()) {
      const name = pages[i].name;
      assert.equal(inPage.revision, inPython.revision, `${name}: both read the same revision`);
      assert.deepEqual(inPage.picks, inPython.picks, `${name}: ${service} ${strategy}: page and Python picks differ`);
      assert.ok(new Set(inPage.picks).size === 2, `${name}: ${service}: both instances picked`);
    }
  }
  mkdirSync(outDir, { recursive: true });
  await onEach(pages, async (page, name) => {
    await page.fill("#sim-seed", "11");
    await page.selectOption("#sim-service", "hello-go");
    await page.selectOption("#sim-strategy", "weighted_random");
    await page.waitForFunction(() => document.getElementById("sim-note").textContent.includes("seed 11"), null, { timeout: 10_000 });
    const shot = await page.screenshot({ fullPage: false });
    writeFileSync(join(outDir, `dashboard-${name}.png`), shot);
    assertDrawn(shot);
  });
  await closePages(pages);
});

/** Text, badges and bars on the page's grey and the sections' white: a few
 * percent of the pixels, and the green of healthy badges among them. */
function assertDrawn(shot) {
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
  assert.ok(colours.size > 50, `only ${colours.size} colours`);
  assert.ok(inked / (width * height) > 0.02, `only ${inked} non-background pixels`);
  assert.ok(green > 500, `only ${green} pixels of the healthy badges' green`);
}

test("the panic and self-preservation banners appear and clear", async () => {
  const pages = await openPages();
  await onEach(pages, async (page) => {
    await page.goto(fleet.dashboard);
    await page.waitForSelector("body[data-state=live]", { timeout: 20_000 });
  });
  const banner = (page, kind) => page.$$eval(`#banners .banner-${kind}`, (els) => els.map((e) => e.textContent));
  const showing = (selector) => onEach(pages, (page) => page.waitForSelector(selector, { timeout: 20_000 }));
  const cleared = (selector) => onEach(pages, (page) =>
    page.waitForFunction((s) => !document.querySelector(s), selector, { timeout: 15_000 }));
  const setStatus = async (id, status) => {
    const reply = await fetch(`http://127.0.0.1:${fleet.ports[id]}/admin/status?status=${status}`);
    assert.equal(reply.status, 200, `${id} /admin/status: ${await reply.text()}`);
  };

  // Panic: both hello-node instances report critical (each through its
  // registrar's update), so none of the service's two is healthy.
  await onEach(pages, async (page) => assert.deepEqual(await banner(page, "panic"), []));
  await setStatus("node-1", "critical");
  await setStatus("node-2", "critical");
  await showing("#banners .banner-panic");
  await onEach(pages, async (page) => assert.match((await banner(page, "panic")).join(), /hello-node/));
  await setStatus("node-1", "passing");
  await setStatus("node-2", "passing");
  await cleared("#banners .banner-panic");

  // Self-preservation: eight instances of one process share a lease that is
  // not kept alive; when it expires etcd deletes their keys in one revision,
  // more than half of the fleet at once, and each page's mirror holds the removals.
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
  const heldInstances = () => onEach(pages, (page) =>
    page.evaluate(() => window.__dashboard.registry.discover("batch", { all: true }).instances.length));
  await onEach(pages, async (page) => assert.deepEqual(await banner(page, "sp"), []));
  const { ID: shortLease } = await etcd("/v3/lease/grant", { TTL: 3 });
  await putAll(shortLease);
  await onEach(pages, (page) =>
    page.waitForFunction(() => document.querySelectorAll('tr[data-id^="batch-"]').length === 8, null, { timeout: 15_000 }));
  await showing("#banners .banner-sp");
  for (const [i, held] of (await heldInstances()).entries()) {
    assert.ok(held > 0, `${pages[i].name}: held removals keep their instances`);
  }
  // The instances come back (a new lease): every hold ends, the banner clears.
  const { ID: longLease } = await etcd("/v3/lease/grant", { TTL: 120 });
  await putAll(longLease);
  await cleared("#banners .banner-sp");
  // Removed one at a time, one revision each, they are a mass loss all the
  // same: the removals of the last minute stay counted (SPEC §10.3), so the
  // mirror holds them (all of them, after the two removals above) and the
  // banner comes back.
  for (const inst of batch) await etcd("/v3/kv/deleterange", { key: b64(`/waypost/services/batch/${inst.id}`) });
  await showing("#banners .banner-sp");
  for (const [i, kept] of (await heldInstances()).entries()) {
    assert.ok(kept > 0, `${pages[i].name}: the later removals are held: ${kept} of ${batch.length} kept`);
  }
  await closePages(pages);
});
