// The dashboard's frame time in headless Chromium: one etcd watch message fed
// to the page's registry (the core's etcd adapter, as EtcdMirror does) and
// drawn, with 1 000 and 10 000 instances mirrored.
//   make demo-bench     (needs `make wasm` and bindings-wasm/npm's dev dependencies)
import { launchChromium, repoDir, serve } from "../../bindings-wasm/npm/test/helpers.mjs";

const server = await serve(repoDir);
const browser = await launchChromium();
try {
  const problems = [];
  for (const n of [1_000, 10_000]) {
    const page = await browser.newPage(); // a fresh page, so each size starts from an empty registry
    page.on("pageerror", (e) => problems.push(e.message));
    page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
    await page.setViewportSize({ width: 1400, height: 820 });
    await page.goto(`${server.url}/examples/dashboard/index.html?bench=1`);
    await page.waitForSelector("body[data-state=bench]");
    const f = await page.evaluate((count) => window.__dashboard.bench(count, 200), n);
    console.log(`dashboard ${String(n).padStart(6)} instances: first draw ${f.initial_ms.toFixed(0)} ms; ` +
      `per update (apply + draw + 50 simulated picks) median ${f.median_ms.toFixed(2)} ms, p99 ${f.p99_ms.toFixed(2)} ms, ` +
      `max ${f.max_ms.toFixed(2)} ms (target ≤ 16 ms at 1 000)`);
    await page.close();
  }
  if (problems.length) throw new Error(problems.join("\n"));
} finally {
  await browser.close();
  await server.close();
}
