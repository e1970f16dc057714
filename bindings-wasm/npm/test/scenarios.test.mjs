// Every scenario file through the JavaScript API in Node; transcripts go to
// $WAYPOST_TRANSCRIPTS/node/<stem>.jsonl for the cross-language comparison.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as waypost from "../dist/node.js";
import { missingFeatures, runScenario } from "./scenario-runner.js";
import { scenarioDir } from "./helpers.mjs";

const dir = scenarioDir();
const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
const outDir = process.env.WAYPOST_TRANSCRIPTS ? join(process.env.WAYPOST_TRANSCRIPTS, "node") : null;

test("scenario directory has files", () => {
  assert.ok(files.length > 0, `no scenario files in ${dir}`);
});

for (const file of files) {
  test(`scenario ${file}`, () => {
    const doc = JSON.parse(readFileSync(join(dir, file), "utf8"));
    // Node's module has every feature a file may require.
    assert.deepEqual(missingFeatures(waypost, doc), []);
    const transcript = runScenario(waypost, file, doc);
    assert.equal(transcript.length, doc.steps.length);
    if (outDir) {
      mkdirSync(outDir, { recursive: true });
      const text = transcript.map((l) => JSON.stringify(l) + "\n").join("");
      writeFileSync(join(outDir, file.replace(/\.json$/, ".jsonl")), text);
    }
  });
}
