// A real browser: Debian's Chromium runs every scenario file through the
// package's browser entry (transcripts to $WAYPOST_TRANSCRIPTS/browser and
// compared with Node's), the hostile-input checks of adversarial.js (the
// module the Node suite runs), and the browser example page renders its fleet.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as waypost from "../dist/node.js";
import { runScenario } from "./scenario-runner.js";
import { CHECKS } from "./adversarial.js";
import { decodePng, launchChromium, repoDir, scenarioDir, serve, watchedPage } from "./helpers.mjs";

let server;
let browser;

before(async () => {
  server = await serve(repoDir);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** Opens a test page and returns what it leaves in `window[name]`; the page
 * must log no error. */
async function pageResults(path, name, timeout) {
  const { page, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/bindings-wasm/npm/test/browser/${path}`);
  await page.waitForFunction((n) => window[n] !== undefined, name, { timeout });
  const results = await page.evaluate((n) => window[n], name);
  await page.close();
  assert.deepEqual(problems, []);
  return results;
}

test("every scenario runs inside Chromium with the same transcript as in Node", async () => {
  const results = await pageResults("scenarios.html", "__waypostResults", 60_000);
  const names = Object.keys(results);
  assert.ok(names.length > 0, "no scenario ran");
  const outDir = process.env.WAYPOST_TRANSCRIPTS ? join(process.env.WAYPOST_TRANSCRIPTS, "browser") : null;
  if (outDir) mkdirSync(outDir, { recursive: true });
  for (const name of names) {
    const result = results[name];
    assert.equal(result.error, undefined, `${name}: ${result.error}`);
    const doc = JSON.parse(readFileSync(join(scenarioDir(), name), "utf8"));
    assert.deepEqual(result.transcript, runScenario(waypost, name, doc), name);
    if (outDir) {
      const text = result.transcript.map((l) => JSON.stringify(l) + "\n").join("");
      writeFileSync(join(outDir, name.replace(/\.json$/, ".jsonl")), text);
    }
  }
});

test("hostile values and mutated snapshots inside Chromium: typed errors, no trap, the same counts as in Node", async () => {
  const results = await pageResults("adversarial.html", "__waypostAdversarial", 120_000);
  assert.deepEqual(Object.keys(results), Object.keys(CHECKS));
  for (const [name, run] of Object.entries(CHECKS)) {
    assert.equal(results[name].error, undefined, `${name}: ${results[name].error}`);
    assert.deepEqual(results[name].counts, run(waypost), name);
    console.log(`chromium: ${name}: ${JSON.stringify(results[name].counts)}`);
  }
});

test("the browser example renders its fleet, health and histograms", async () => {
  const { page, problems } = await watchedPage(browser);
  await page.setViewportSize({ width: 1200, height: 760 });
  await page.goto(`${server.url}/examples/browser/index.html`);
  await page.waitForSelector("body[data-state=done]", { timeout: 60_000 });
  const rows = await page.$$eval("#instances tr", (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  assert.equal(rows.length, 6);
  const health = Object.fromEntries(rows.map((r) => [r[0], r[3]]));
  assert.equal(health["api-4"], "draining");
  assert.equal(health["api-1"], "healthy");
  const strategies = await page.$$eval("#histogram > div:not(.bars)", (ds) => ds.map((d) => d.textContent));
  assert.deepEqual(strategies, [...waypost.STRATEGIES]);
  const shot = await page.screenshot({ fullPage: false });
  await page.close();
  const dir = join(repoDir, "target", "screenshots");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "browser-example.png"), shot);
  assert.deepEqual(problems, []);

  // Not blank: many distinct colours, and a good share of non-background pixels.
  const { width, height, channels, pixels } = decodePng(shot);
  const colours = new Set();
  let inked = 0;
  for (let i = 0; i < width * height * channels; i += channels) {
    const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
    colours.add((r << 16) | (g << 8) | b);
    if (Math.abs(r - 0xf6) + Math.abs(g - 0xf7) + Math.abs(b - 0xf9) > 30) inked++;
  }
  assert.ok(colours.size > 50, `only ${colours.size} colours`);
  assert.ok(inked / (width * height) > 0.05, `only ${inked} non-background pixels`);
});
