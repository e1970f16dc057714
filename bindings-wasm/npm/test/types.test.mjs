// The hand-written declarations type-check real usage under `tsc --strict`,
// reject misuse (each @ts-expect-error must be needed) and use no `any`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pkgDir } from "./helpers.mjs";

test("tsc --strict accepts the usage file against dist/index.d.ts", () => {
  const tsc = join(pkgDir, "node_modules/typescript/bin/tsc");
  try {
    execFileSync(process.execPath, [tsc, "-p", join(pkgDir, "test/types/tsconfig.json")], { encoding: "utf8" });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
});

test("the public declarations contain no `any`", () => {
  const text = readFileSync(join(pkgDir, "dist/index.d.ts"), "utf8").replace(/\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "");
  assert.doesNotMatch(text, /\bany\b/);
});
