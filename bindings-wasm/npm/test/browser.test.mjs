// Real browsers: Debian's Chromium and Firefox ESR each run every scenario
// file through the package's browser entry (transcripts to
// $WAYPOST_TRANSCRIPTS/<browser> and compared with Node's), the hostile-input
// checks of adversarial.js (the module the Node suite runs), and render the
// browser example page's fleet.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as waypost from "../dist/node.js";
import { runScenario } from "./scenario-runner.js";
import { CHECKS } from "./adversarial.js";
import { BROWSERS, decodePng, launchBrowser, repoDir, scenarioDir, serve, watchedPage } from "./helpers.mjs";

let server;
const browsers = new Map(); // name → browser
let launching;

before(async () => {
  launching = Promise.all(BROWSERS.map(async (name) => browsers.set(name, await launchBrowser(name))));
  server = await serve(repoDir);
  await launching;
});

after(async () => {
  await launching?.catch(() => {});
  await Promise.all([...browsers.values()].map((browser) => browser.close()));
  await server?.close();
});

/** Opens a test page and returns what it leaves in `window[name]`; the page
 * must log no error. */
async function pageResults(browser, path, name, timeout) {
  const { page, problems } = await watchedPage(browser);
  await page.goto(`${server.url}/bindings-wasm/npm/test/browser/${path}`);
  await page.waitForFunction((n) => window[n] !== undefined, name, { timeout });
  const results = await page.evaluate((n) => window[n], name);
  await page.close();
  assert.deepEqual(problems, []);
  return results;
}

for (const name of BROWSERS) {
  test(`every scenario runs inside ${name} with the same transcript as in Node`, async () => {
    const results = await pageResults(browsers.get(name), "scenarios.html", "__waypostResults", 60_000);
    const scenarios = Object.keys(results);
    assert.ok(scenarios.length > 0, "no scenario ran");
    const outDir = process.env.WAYPOST_TRANSCRIPTS ? join(process.env.WAYPOST_TRANSCRIPTS, name) : null;
    if (outDir) mkdirSync(outDir, { recursive: true });
    for (const scenario of scenarios) {
      const result = results[scenario];
      assert.equal(result.error, undefined, `${scenario}: ${result.error}`);
      const doc = JSON.parse(readFileSync(join(scenarioDir(), scenario), "utf8"));
      if (result.skipped !== undefined) {
        // Only what the browser's module is built without (SPEC §10.4).
        assert.deepEqual(result.skipped, ["etcd-grpc"], scenario);
        assert.deepEqual(doc.requires, ["etcd-grpc"], scenario);
        continue;
      }
      assert.deepEqual(result.transcript, runScenario(waypost, scenario, doc), scenario);
      if (outDir) {
        const text = result.transcript.map((l) => JSON.stringify(l) + "\n").join("");
        writeFileSync(join(outDir, scenario.replace(/\.json$/, ".jsonl")), text);
      }
    }
  });

  test(`hostile values and mutated snapshots inside ${name}: typed errors, no trap, the same counts as in Node`, async () => {
    const results = await pageResults(browsers.get(name), "adversarial.html", "__waypostAdversarial", 120_000);
    assert.deepEqual(Object.keys(results), Object.keys(CHECKS));
    for (const [check, run] of Object.entries(CHECKS)) {
      assert.equal(results[check].error, undefined, `${check}: ${results[check].error}`);
      assert.deepEqual(results[check].counts, run(waypost), check);
      console.log(`${name}: ${check}: ${JSON.stringify(results[check].counts)}`);
    }
  });

  test(`the browser example renders its fleet, health and histograms in ${name}`, async () => {
    const { page, problems } = await watchedPage(browsers.get(name));
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
    writeFileSync(join(dir, `browser-example-${name}.png`), shot);
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
}
