// Node entry (ESM): Node cannot fetch a file: URL, so the module is read
// from disk and instantiated synchronously at import time. Node loads the
// module built for speed (waypost_wasm_node.wasm); browsers get the one
// built for size. Both take the same glue.
import { readFileSync } from "node:fs";
import { initSync } from "./waypost_wasm.js";

initSync({ module: readFileSync(new URL("./waypost_wasm_node.wasm", import.meta.url)) });

export * from "./facade.js";
