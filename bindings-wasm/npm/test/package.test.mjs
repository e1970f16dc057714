// Packaging: `npm pack` gives a tarball that installs into an empty project
// and works from Node ESM, Node CommonJS and a browser bundle (esbuild):
// Node loads the module built for speed, browsers the one built for size.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { launchChromium, pkgDir, serve, watchedPage } from "./helpers.mjs";

const USE = `
const reg = new Registry({ ttlMs: 10000, seed: 7 });
reg.register({ id: "api-1", service: "api", address: "10.0.0.1", port: 8080 }, 0);
reg.register({ id: "api-2", service: "api", address: "10.0.0.2", port: 8080 }, 0);
reg.heartbeat("api-1", 9000);
let code = "";
try { reg.pick("nope", "random", 1); } catch (e) { code = e.name + ":" + e.code; }
const result = [reg.pick("api", "round_robin", 10001).instance.id, code, typeof version()].join(" ");
`;
const EXPECTED = "api-1 WaypostError:unknown_service string";
// Notes every .wasm file the entry reads (ESM through the builtin's synced
// named exports, CommonJS through the property).
const SPY_READS = (fs) => `const __reads = [];
const __read = ${fs}.readFileSync;
${fs}.readFileSync = (p, ...rest) => { if (String(p).endsWith(".wasm")) __reads.push(String(p).split(/[\\\\/]/).pop()); return __read(p, ...rest); };
`;
const NODE_EXPECTED = `${EXPECTED} waypost_wasm_node.wasm`;

let scratch;
let files;

function npm(args, cwd) {
  return execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, encoding: "utf8" });
}

before(() => {
  scratch = mkdtempSync(join(tmpdir(), "waypost-pack-"));
  const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", scratch], pkgDir));
  files = packed[0].files.map((f) => f.path);
  const app = join(scratch, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
  npm(["install", "--offline", join(scratch, packed[0].filename)], app);
});

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test("the tarball ships dist/ with the two modules and the type declarations", () => {
  assert.deepEqual(files.filter((f) => f.endsWith(".wasm")).sort(), ["dist/waypost_wasm_bg.wasm", "dist/waypost_wasm_node.wasm"]);
  for (const f of ["package.json", "dist/index.d.ts", "dist/node.js", "dist/node.cjs", "dist/browser.js", "dist/facade.js"]) {
    assert.ok(files.includes(f), `missing ${f}`);
  }
  assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("src/") || f.includes("node_modules")));
});

test("Node ESM: import from the installed package, which loads Node's module", () => {
  const app = join(scratch, "app");
  writeFileSync(join(app, "esm.mjs"), `import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";
${SPY_READS("fs")}syncBuiltinESMExports();
const { Registry, version } = await import("waypost");${USE}console.log(result, __reads.join(","));`);
  assert.equal(execFileSync(process.execPath, ["esm.mjs"], { cwd: app, encoding: "utf8" }).trim(), NODE_EXPECTED);
});

test("Node CommonJS: require the installed package, which loads Node's module", () => {
  const app = join(scratch, "app");
  writeFileSync(join(app, "cjs.cjs"), `${SPY_READS('require("node:fs")')}const { Registry, version } = require("waypost");${USE}console.log(result, __reads.join(","));`);
  const out = execFileSync(process.execPath, ["cjs.cjs"], { cwd: app, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  assert.equal(out.trim(), NODE_EXPECTED);
});

test("browser bundle: esbuild resolves the browser entry and it runs in Chromium", async () => {
  const app = join(scratch, "app");
  const web = join(app, "web");
  mkdirSync(web);
  writeFileSync(join(app, "entry.js"), `import { Registry, version } from "waypost";${USE}window.__result = result;`);
  await build({
    absWorkingDir: app,
    entryPoints: ["entry.js"],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outfile: join(web, "bundle.js"),
    logLevel: "error",
  });
  const bundle = readFileSync(join(web, "bundle.js"), "utf8");
  assert.doesNotMatch(bundle, /node:fs|readFileSync|waypost_wasm_node/, "the browser bundle must not pull in the Node entry");
  // The bundle loads the module from beside itself, as a bundler's asset step would place it.
  copyFileSync(join(app, "node_modules/waypost/dist/waypost_wasm_bg.wasm"), join(web, "waypost_wasm_bg.wasm"));
  writeFileSync(
    join(web, "index.html"),
    `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body><script type="module" src="bundle.js"></script></body></html>`,
  );
  const server = await serve(web);
  const browser = await launchChromium();
  try {
    const { page, problems } = await watchedPage(browser);
    await page.goto(`${server.url}/index.html`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 30_000 });
    assert.equal(await page.evaluate(() => window.__result), EXPECTED);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await server.close();
  }
});

test("each module imports nothing from the host but wasm-bindgen glue", () => {
  // The names are minified; the build's map gives each its original name.
  const names = JSON.parse(readFileSync(join(pkgDir, "build/names.json"), "utf8"));
  const original = new Map(names.imports.map(([module, name, short]) => [short, { module, name }]));
  const imports = ["waypost_wasm_bg.wasm", "waypost_wasm_node.wasm"].flatMap((file) =>
    WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(join(pkgDir, "dist", file)))));
  assert.ok(imports.length > 0);
  for (const imp of imports) {
    const { module, name } = original.get(imp.name) ?? { module: imp.module, name: imp.name };
    assert.equal(module, "./waypost_wasm_bg.js", `${module}.${name}`);
    assert.match(name, /^__(wbg|wbindgen)_/);
    assert.doesNotMatch(name, /now|random|crypto|date|performance/i, "no clock or entropy");
  }
});
