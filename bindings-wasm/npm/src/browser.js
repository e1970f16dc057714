// Browser and bundler entry (ESM): fetches and compiles the .wasm that sits
// beside this file before the module finishes loading.
import init from "./waypost_wasm.js";

await init({ module_or_path: new URL("./waypost_wasm_bg.wasm", import.meta.url) });

export * from "./facade.js";
