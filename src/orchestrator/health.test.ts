/**
 * The probe loop (health.ts) on a manual clock with scripted probe results: the initial delay and
 * the interval, `failureThreshold` failures in a row before unhealthy, one success to be healthy
 * again, transitions reported once, and nothing after `stop()`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ManualClock } from "../../test/manual-clock.js";
import { ProbeLoop, type ProbeEnv, type ProbeResult } from "./health.js";
import type { ProbeSpec } from "./spec.js";

const spec: ProbeSpec = {
  kind: "service",
  target: ["/{node}/health"],
  intervalMs: 1000,
  timeoutMs: 500,
  failureThreshold: 3,
  initialDelayMs: 250,
};
const env: ProbeEnv = {
  node: "arm",
  replica: 0,
  cwd: "/",
  env: {},
  trigger: () => Promise.reject(new Error("the test scripts the results")),
};
/** Lets the probe's promise and what follows it run (no time passes on the manual clock). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A loop whose probes return `script` in turn (then ok), and the transitions it reported. */
function scripted(script: boolean[]): {
  clock: ManualClock;
  loop: ProbeLoop;
  changes: string[];
  runs: () => number;
} {
  const clock = new ManualClock();
  const changes: string[] = [];
  let n = 0;
  const run = (): Promise<ProbeResult> => {
    const ok = script[n++] ?? true;
    return Promise.resolve(ok ? { ok, detail: "ok" } : { ok, detail: `failure ${n}` });
  };
  const loop = new ProbeLoop(spec, env, (healthy, detail) => changes.push(`${healthy} ${detail}`), {
    clock,
    run,
  });
  return { clock, loop, changes, runs: () => n };
}

test("the first probe runs after initialDelayMs, then one every intervalMs", async () => {
  const { clock, loop, changes, runs } = scripted([]);
  assert.deepEqual(clock.pending(), [{ ms: 250, inMs: 250, unref: false }]);
  clock.advance(249);
  assert.equal(runs(), 0);
  clock.advance(1);
  await flush();
  assert.equal(runs(), 1);
  assert.deepEqual(changes, ["true ok"]);
  assert.equal(loop.healthy, true);
  assert.deepEqual(
    clock.pending().map((p) => p.inMs),
    [1000],
  );
  for (let i = 0; i < 3; i++) {
    clock.advance(1000);
    await flush();
  }
  assert.equal(runs(), 4);
  assert.deepEqual(changes, ["true ok"], "only transitions are reported");
  loop.stop();
});

test("failureThreshold failures in a row make it unhealthy; a success in between starts the count over", async () => {
  const { clock, loop, changes } = scripted([true, false, false, true, false, false, false, false, true]);
  const tick = async (ms: number): Promise<void> => {
    clock.advance(ms);
    await flush();
  };
  await tick(250);
  await tick(1000);
  await tick(1000);
  await tick(1000); // ok again: two failures were not enough
  await tick(1000);
  await tick(1000);
  assert.deepEqual(changes, ["true ok"]);
  await tick(1000); // the third failure in a row
  assert.deepEqual(changes, ["true ok", "false failure 7"]);
  assert.equal(loop.healthy, false);
  assert.equal(loop.detail, "failure 7");
  await tick(1000); // still failing: no new report
  await tick(1000);
  assert.deepEqual(changes, ["true ok", "false failure 7", "true ok"]);
  loop.stop();
});

test("stop() ends the loop: no probe runs and nothing is reported after it, even for a probe in flight", async () => {
  const clock = new ManualClock();
  const changes: boolean[] = [];
  let release: ((r: ProbeResult) => void) | undefined;
  const loop = new ProbeLoop(spec, env, (healthy) => changes.push(healthy), {
    clock,
    run: () => new Promise<ProbeResult>((resolve) => (release = resolve)),
  });
  clock.advance(250);
  assert.ok(release, "the first probe is running");
  loop.stop();
  release({ ok: false, detail: "late" });
  await flush();
  assert.deepEqual(changes, []);
  assert.deepEqual(clock.pending(), []);
});
