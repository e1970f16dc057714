// Paths and small utilities shared by the Node tests.
import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";

export const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const repoDir = resolve(pkgDir, "../..");

export function scenarioDir() {
  return process.env.WAYPOST_SCENARIOS ?? join(repoDir, "tests/scenarios");
}
