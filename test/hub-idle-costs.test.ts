/**
 * The hub's idle settings of V8 (src/tools/hub-startup.ts): held, they stay held while the process
 * is idle, and are given back to V8's defaults once the process is busy. A child process holds them
 * (they are flags of the whole process), and its busy loop runs until they are released.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runModuleProgram } from "./helpers.js";

const MODULE = fileURLToPath(new URL("../src/tools/hub-startup.js", import.meta.url));

const PROGRAM = `
const s = await import(${JSON.stringify(MODULE)});
const heldBefore = s.idleCostsHeld();
s.holdIdleCosts();
const heldAfterHold = s.idleCostsHeld();
s.releaseWhenBusy();
// Busy: work in slices, letting the check's timer run between them, until released.
const t0 = performance.now();
let x = 0;
while (s.idleCostsHeld() && performance.now() - t0 < 20000) {
  const until = performance.now() + 50;
  while (performance.now() < until) x += Math.sqrt(x + 1);
  await new Promise((r) => setImmediate(r));
}
process.stdout.write(JSON.stringify({ heldBefore, heldAfterHold, released: !s.idleCostsHeld() }));
`;

test("the hub's idle settings are held until the process gets busy, then V8's defaults are back", async () => {
  const out = await runModuleProgram(PROGRAM, {}, 30_000);
  assert.deepEqual(JSON.parse(out), { heldBefore: false, heldAfterHold: true, released: true });
});
