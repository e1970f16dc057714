// Node entry (CommonJS), bundled into dist/node.cjs: the same glue and
// facade, loading the module built for Node shipped beside it (as node.js).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { initSync } from "./waypost_wasm.js";

initSync({ module: readFileSync(join(__dirname, "waypost_wasm_node.wasm")) });

export * from "./facade.js";
