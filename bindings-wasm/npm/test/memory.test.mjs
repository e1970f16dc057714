// The module's memory under churn: the allocator hands freed blocks out
// again, so a workload that repeats stops growing the memory once it has
// run (WebAssembly memory never shrinks, so growth would be for good). Time
// moves past the lease length between rounds: a deregistered instance's
// lease stays filed in the timer heap until its deadline, by design.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { initSync } from "../dist/waypost_wasm.js";

// This file instantiates the module itself (Node's, as dist/node.js does)
// to see its memory; the facade shares the instance. The export names are
// minified: the build's map names the memory.
const exports = initSync({ module: readFileSync(new URL("../dist/waypost_wasm_node.wasm", import.meta.url)) });
const names = JSON.parse(readFileSync(new URL("../build/names.json", import.meta.url), "utf8"));
const wasm = { memory: exports[new Map(names.exports).get("memory")] };
const { Registry } = await import("../dist/facade.js");

function cycle(reg, round, t) {
  const n = 1500 + (round % 3) * 1000;
  for (let i = 0; i < n; i++) {
    reg.register({ id: `i-${i}`, service: `s${i % 40}`, address: "10.0.0.1", port: 1 + i, tags: ["a", `t${i % 7}`], meta: { k: String(i) } }, t);
  }
  for (let s = 0; s < 40; s++) {
    reg.discover(`s${s}`, t);
    reg.pick(`s${s}`, "weighted_round_robin", t);
    reg.pick(`s${s}`, "round_robin", { tags: ["a"] }, t);
  }
  const again = Registry.restore(reg.snapshot());
  again.free();
  for (let i = 0; i < n; i++) reg.deregister(`i-${i}`, t);
}

test("a repeating workload stops growing the module's memory", () => {
  const reg = new Registry({ ttlMs: 1000, seed: 1, eventRetention: 64 });
  const round = (k) => {
    reg.tick(k * 5000);
    cycle(reg, k, k * 5000);
  };
  for (let k = 0; k < 6; k++) round(k);
  const settled = wasm.memory.buffer.byteLength;
  for (let k = 6; k < 30; k++) round(k);
  const after = wasm.memory.buffer.byteLength;
  assert.ok(after === settled, `memory grew from ${settled} to ${after} B under a repeating workload`);
  assert.equal(reg.size, 0);
  reg.free();
});
