/**
 * The idle settings of V8 (src/orchestrator/idle-costs.ts) of the hub and of the module runner:
 * held, they stay held while the process is idle, and are given back to V8's defaults once the
 * process is busy. A child process holds them (they are flags of the whole process), and its busy
 * loop runs until they are released; the runner holds them for its nodes unless switched off.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hub } from "../src/hub/index.js";
import { Proc, runModuleProgram, tempRuntime } from "./helpers.js";

const MODULE = fileURLToPath(new URL("../src/orchestrator/idle-costs.js", import.meta.url));

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

const RUNNER = fileURLToPath(new URL("../src/orchestrator/runner.js", import.meta.url));

/** A node module that reports, from inside the runner, whether the idle settings are held. */
const REPORTING_MODULE = `
import { idleCostsHeld } from ${JSON.stringify(MODULE)};
export default async function (node) {
  console.log(JSON.stringify({ event: "started", held: idleCostsHeld() }));
}
`;

test("the module runner holds the idle settings for its nodes, unless MYELIN_NODE_IDLE_V8=off", async () => {
  using rt = tempRuntime();
  const hub = await Hub.start({ runtimeDir: rt.dir });
  try {
    const mod = join(rt.dir, "reporting-node.mjs");
    writeFileSync(mod, REPORTING_MODULE);
    const launch = JSON.stringify({
      modules: [{ node: "idle_reporter", path: mod, export: "default", args: [], parameters: {} }],
      replica: 0,
    });
    const held: boolean[] = [];
    for (const off of [false, true]) {
      const env: Record<string, string> = { MYELIN_RUNTIME_DIR: rt.dir, MYELIN_LAUNCH: launch };
      if (off) env["MYELIN_NODE_IDLE_V8"] = "off";
      await using runner = new Proc(RUNNER, [], env);
      const line = await runner.waitFor((l) => l.event === "started", 30_000, "the module's report");
      held.push(line["held"] === true);
    }
    assert.deepEqual(held, [true, false]);
  } finally {
    hub.close();
  }
});
