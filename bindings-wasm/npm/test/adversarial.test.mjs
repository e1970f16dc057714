// The hostile-input checks of adversarial.js in Node; browser.test.mjs runs
// the same module in Chromium and Firefox.
import { test } from "node:test";
import * as waypost from "../dist/node.js";
import { CHECKS } from "./adversarial.js";

for (const [name, run] of Object.entries(CHECKS)) {
  test(name, () => {
    const counts = run(waypost);
    if (counts.restored !== undefined) {
      console.log(`leaf mutations: ${counts.tried} tried, ${counts.restored} restored cleanly, ${counts.tried - counts.restored} invalid_snapshot`);
    }
  });
}
