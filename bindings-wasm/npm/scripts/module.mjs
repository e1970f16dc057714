// The package's API in Node over the module a benchmark names: Node's own
// (waypost_wasm_node.wasm, what dist/node.js loads; the default) or, with
// WAYPOST_WASM=browser, the browser's size-built waypost_wasm_bg.wasm,
// through the same glue and facade.
import { readFileSync } from "node:fs";
import { initSync } from "../dist/waypost_wasm.js";

export const moduleFile = process.env.WAYPOST_WASM === "browser" ? "waypost_wasm_bg.wasm" : "waypost_wasm_node.wasm";
initSync({ module: readFileSync(new URL(`../dist/${moduleFile}`, import.meta.url)) });

export * from "../dist/facade.js";
// The raw bindings, for call floors without the facade.
export { RegistryCore, version as coreVersion } from "../dist/waypost_wasm.js";
