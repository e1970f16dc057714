// Node entry (ESM): Node cannot fetch a file: URL, so the module is read
// from disk and instantiated synchronously at import time.
import { readFileSync } from "node:fs";
import { initSync } from "./waypost_wasm.js";

initSync({ module: readFileSync(new URL("./waypost_wasm_bg.wasm", import.meta.url)) });

export * from "./facade.js";
