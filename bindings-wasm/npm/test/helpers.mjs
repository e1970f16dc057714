// Paths and small utilities shared by the Node tests.
import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";

export const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const repoDir = resolve(pkgDir, "../..");

export function scenarioDir() {
  return process.env.WAYPOST_SCENARIOS ?? join(repoDir, "tests/scenarios");
}

import { createServer } from "node:http";
import { readFile, readdir } from "node:fs/promises";
import { extname, normalize, sep } from "node:path";
import { inflateSync } from "node:zlib";

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".png": "image/png",
};

/**
 * Serves `root` on 127.0.0.1 (a free port) plus the scenario files under
 * /__scenarios/ (index.json lists them). Resolves to { url, close }.
 */
export function serve(root) {
  const scenarios = scenarioDir();
  const server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
      let file;
      if (path === "/__scenarios/index.json") {
        const names = (await readdir(scenarios)).filter((f) => f.endsWith(".json")).sort();
        res.writeHead(200, { "content-type": MIME[".json"] });
        res.end(JSON.stringify(names));
        return;
      } else if (path.startsWith("/__scenarios/")) {
        file = join(scenarios, normalize(path.slice("/__scenarios/".length)));
        if (!file.startsWith(resolve(scenarios) + sep)) throw new Error("outside");
      } else {
        file = join(root, normalize(path.endsWith("/") ? path + "index.html" : path));
        if (!file.startsWith(resolve(root) + sep)) throw new Error("outside");
      }
      const body = await readFile(file);
      res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    }
  });
  return new Promise((ok) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      ok({ url: `http://127.0.0.1:${port}`, close: () => new Promise((done) => server.close(done)) });
    });
  });
}

/** Debian's Chromium through playwright-core, headless, fresh profile. */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: process.env.WAYPOST_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** The browsers the browser tests drive, each a stock Debian build: Chromium
 * through playwright-core (CDP), Firefox ESR through puppeteer-core
 * (WebDriver BiDi; playwright-core can only drive its own patched Firefox).
 * `WAYPOST_BROWSERS=chromium` narrows a local run. */
export const BROWSERS = (process.env.WAYPOST_BROWSERS ?? "chromium,firefox").split(",").filter(Boolean);

/** Launches one of BROWSERS: its pages answer the Playwright calls the tests make. */
export function launchBrowser(name) {
  if (name === "chromium") return launchChromium();
  if (name === "firefox") return launchFirefox();
  throw new Error(`no such browser: ${name}`);
}

/** Debian's Firefox ESR through puppeteer-core, headless, fresh profile
 * (puppeteer makes one and removes it on close). */
export async function launchFirefox() {
  const { default: puppeteer } = await import("puppeteer-core");
  const browser = await puppeteer.launch({
    browser: "firefox",
    protocol: "webDriverBiDi",
    executablePath: process.env.WAYPOST_FIREFOX ?? "/usr/bin/firefox-esr",
    headless: true,
  });
  return {
    version: () => browser.version(),
    newPage: async () => playwrightShaped(await browser.newPage()),
    close: () => browser.close(),
  };
}

/** A puppeteer page with the Playwright calls the tests use and nothing more. */
function playwrightShaped(page) {
  return {
    on: (event, fn) => page.on(event, fn),
    goto: (url) => page.goto(url),
    setViewportSize: (size) => page.setViewport(size),
    waitForSelector: (selector, options) => page.waitForSelector(selector, options),
    waitForFunction: (fn, arg, options) => page.waitForFunction(fn, options, arg),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    $$eval: (selector, fn, arg) => page.$$eval(selector, fn, arg),
    fill: (selector, value) => page.locator(selector).fill(value),
    selectOption: (selector, value) => page.select(selector, value),
    screenshot: async (options) => Buffer.from(await page.screenshot(options)),
    close: () => page.close(),
  };
}

/** A page that records console errors and uncaught exceptions in `problems`. */
export async function watchedPage(browser) {
  const page = await browser.newPage();
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
  return { page, problems };
}

/** Decodes an 8-bit RGB/RGBA, non-interlaced PNG into { width, height, channels, pixels }. */
export function decodePng(png) {
  let pos = 8;
  let width = 0, height = 0, channels = 0;
  const idat = [];
  while (pos < png.length) {
    const len = png.readUInt32BE(pos);
    const type = png.toString("latin1", pos + 4, pos + 8);
    const data = png.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      if (data[8] !== 8 || data[12] !== 0) throw new Error("unsupported PNG");
      channels = { 2: 3, 6: 4 }[data[9]];
      if (!channels) throw new Error(`unsupported PNG colour type ${data[9]}`);
    } else if (type === "IDAT") {
      idat.push(data);
    }
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[y * stride + x - channels] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] : 0;
      let v = line[x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      pixels[y * stride + x] = v & 0xff;
    }
  }
  return { width, height, channels, pixels };
}
