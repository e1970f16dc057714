// Assembles dist/ from the wasm-bindgen output in build/ and src/, bundles
// the CommonJS entry, and checks the modules: the browser's (built for size)
// against its size budget, Node's (built for speed, in build/node/) for the
// same glue and names, and both for their imports.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { buildSync } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const build = join(root, "build");
const dist = join(root, "dist");
const src = join(root, "src");

// Ceilings for the optimized module, in bytes (raw and gzip -9 as Node's
// zlib does it), a little above what it measures, so the build fails on
// growth. The in-process registry alone fits 150 000 / 60 000 B; mirroring
// stores (reconcile plus the etcd, Consul and Kubernetes readers), candidate
// tables updated in place, smooth-WRR period tables and the window of
// source removals self-preservation counts take it to ~226 KB raw /
// ~101 KB gzipped. BENCHMARKS.md has the breakdown.
const MAX_RAW = Number(process.env.WAYPOST_WASM_MAX_RAW ?? 226_500);
const MAX_GZIP = Number(process.env.WAYPOST_WASM_MAX_GZIP ?? 101_400);

// wasm-opt gave every import and export a short name and printed the map:
// `{ imports: [[module, name, short]], exports: [[name, short]] }`. The
// glue still uses the long ones, so rename them there: the exports it
// reads as `wasm.name`, the imports it provides as `name: function`, and
// the one import module.
const names = JSON.parse(readFileSync(join(build, "names.json"), "utf8"));
const GLUE_MODULE = "./waypost_wasm_bg.js";
const shortExport = new Map(names.exports);
const shortImport = new Map(names.imports.map(([, name, short]) => [name, short]));
const gluePath = join(build, "waypost_wasm.js");
let glue = readFileSync(gluePath, "utf8");

// Node's module comes from the same crate with other features and
// optimizations, so one glue serves both only while wasm-bindgen wrote the
// same glue for each and wasm-opt gave both the same short names.
const nodeBuild = join(build, "node");
if (readFileSync(join(nodeBuild, "waypost_wasm.js"), "utf8") !== glue ||
    readFileSync(join(nodeBuild, "names.json"), "utf8") !== readFileSync(join(build, "names.json"), "utf8")) {
  console.error("error: Node's module (build/node) does not share the browser module's glue and names");
  process.exit(1);
}
const unmapped = new Set();
glue = glue.replace(/\bwasm\.([A-Za-z_$][\w$]*)/g, (_, name) => {
  if (!shortExport.has(name)) unmapped.add(name);
  return `wasm.${shortExport.get(name) ?? name}`;
});
let renamedImports = 0;
glue = glue.replace(/^(\s+)(__w[\w$]+)(: function\()/gm, (whole, indent, name, rest) => {
  if (!shortImport.has(name)) return whole;
  renamedImports += 1;
  return `${indent}${shortImport.get(name)}${rest}`;
});
const moduleKey = `${JSON.stringify(GLUE_MODULE)}: import0`;
const modules = new Set(names.imports.map(([module]) => module));
if (unmapped.size > 0 || renamedImports !== shortImport.size || modules.size !== 1 || !glue.includes(moduleKey)) {
  console.error(`error: the glue does not match the minified module (unknown exports: ${[...unmapped].join(", ") || "none"}; ` +
    `${renamedImports} of ${shortImport.size} imports renamed; modules: ${[...modules].join(", ")})`);
  process.exit(1);
}

// The optimized module (dist/ gets this very file), read and compiled once.
const bytes = readFileSync(join(build, "waypost_wasm_bg.wasm"));
const browserModule = new WebAssembly.Module(bytes);
const moduleImports = WebAssembly.Module.imports(browserModule);
const nodeBytes = readFileSync(join(nodeBuild, "waypost_wasm_bg.wasm"));
const nodeModule = new WebAssembly.Module(nodeBytes);

// The module name the imports now come from: the one wasm-opt chose.
glue = glue.replace(moduleKey, `${JSON.stringify(moduleImports[0].module)}: import0`);
writeFileSync(gluePath, glue);

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
for (const file of ["waypost_wasm.js", "waypost_wasm_bg.wasm"]) {
  copyFileSync(join(build, file), join(dist, file));
}
copyFileSync(join(nodeBuild, "waypost_wasm_bg.wasm"), join(dist, "waypost_wasm_node.wasm"));
for (const file of ["facade.js", "node.js", "browser.js", "index.d.ts"]) {
  copyFileSync(join(src, file), join(dist, file));
}
copyFileSync(join(src, "index.d.ts"), join(dist, "index.d.cts"));

// waypost/etcd, waypost/consul, waypost/k8s: plain JavaScript over fetch
// (no module of their own), as ESM and each bundled for require.
for (const file of ["etcd-http.js", "store-http.js"]) copyFileSync(join(src, file), join(dist, file));
for (const store of ["etcd", "consul", "k8s"]) {
  copyFileSync(join(src, `${store}.js`), join(dist, `${store}.js`));
  copyFileSync(join(src, `${store}.d.ts`), join(dist, `${store}.d.ts`));
  copyFileSync(join(src, `${store}.d.ts`), join(dist, `${store}.d.cts`));
  buildSync({
    entryPoints: [join(src, `${store}.js`)],
    outfile: join(dist, `${store}.cjs`),
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node18",
    logLevel: "error",
    // The package's own entry (the registrar's consulRegistration): one
    // module instance shared with the caller's `require("waypost")`.
    external: ["waypost"],
  });
}

// The CommonJS entry: glue and facade in one file, the .wasm shared.
for (const file of ["facade.js", "node-cjs.js"]) copyFileSync(join(src, file), join(build, file));
buildSync({
  entryPoints: [join(build, "node-cjs.js")],
  outfile: join(dist, "node.cjs"),
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node18",
  logLevel: "error",
  // The glue's default URL (import.meta.url) is never used on this path.
  logOverride: { "empty-import-meta": "silent" },
});

const raw = bytes.length;
const gz = gzipSync(bytes, { level: 9 }).length;
const problems = [];
if (raw > MAX_RAW) problems.push(`raw size ${raw} B exceeds the budget of ${MAX_RAW} B`);
if (gz > MAX_GZIP) problems.push(`gzipped size ${gz} B exceeds the budget of ${MAX_GZIP} B`);

// Only wasm-bindgen's glue may be imported: no clock, no entropy, no `env`
// (judged by the names the imports had before minifying).
for (const [module, name] of names.imports) {
  const isGlue = module === GLUE_MODULE && /^__(wbg|wbindgen)_/.test(name);
  if (!isGlue) problems.push(`unexpected import ${module}.${name}`);
}
const imports = moduleImports.length;
if (imports !== names.imports.length) problems.push(`${imports} imports, but ${names.imports.length} in names.json`);
const shape = (m) => JSON.stringify([WebAssembly.Module.imports(m), WebAssembly.Module.exports(m)]);
if (shape(nodeModule) !== shape(browserModule)) {
  problems.push("waypost_wasm_node.wasm does not import and export what waypost_wasm_bg.wasm does");
}
console.log(`waypost_wasm_bg.wasm (browsers): ${raw} B raw, ${gz} B gzipped (budget ${MAX_RAW} / ${MAX_GZIP}); ${imports} imports, all wasm-bindgen glue`);
console.log(`waypost_wasm_node.wasm (Node): ${nodeBytes.length} B raw, ${gzipSync(nodeBytes, { level: 9 }).length} B gzipped (no budget); the same imports and exports`);
if (problems.length > 0) {
  for (const p of problems) console.error(`error: ${p}`);
  process.exit(1);
}
