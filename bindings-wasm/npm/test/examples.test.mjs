// The Node example runs as written, stays bounded and shows the ejection.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { repoDir } from "./helpers.mjs";

test("examples/node/service.mjs serves its load and ejects the failing upstream", () => {
  const out = execFileSync(process.execPath, [join(repoDir, "examples/node/service.mjs")], { encoding: "utf8", timeout: 30_000 });
  assert.match(out, /^60 requests through the gateway/m);
  assert.match(out, /orders-3: \d+ served, health ejected/);
  assert.match(out, /orders-1: \d+ served, health healthy/);
  assert.match(out, /health_changed orders-3 healthy -> ejected/);
});
