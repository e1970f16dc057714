// Browser and bundler entry (ESM): fetches and compiles the .wasm that sits
// beside this file before the module finishes loading.
import init from "./waypost_wasm.js";

await init({ module_or_path: new URL("./waypost_wasm_bg.wasm", import.meta.url) });

export * from "./facade.js";

/**
 * The Consul registration (waypost/consul's registrar) is built by Node's
 * module only: the browser's leaves it out to stay within its size budget.
 */
export function consulRegistration() {
  throw new Error("waypost: consulRegistration needs Node's module (the browser's leaves the Consul registration out)");
}
