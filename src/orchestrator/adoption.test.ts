/**
 * Adoption after a hub restart (adoption.ts): the state file's contents, which processes a new
 * supervisor takes over (same pid and start time) and which start afresh, and that the reconcile
 * loop then starts only what is not running, in dependency order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ReconcileWorld } from "../../test/reconcile-world.js";
import { specFromYaml, unitOf } from "../../test/spec-from-yaml.js";
import { planAdoption, savedState, type SavedState } from "./adoption.js";

const SPEC = `nodes:
  db: { command: [db] }
  api: { module: api.js, replicas: 2, dependsOn: [db] }
  ui: { module: ui.js, dependsOn: [api] }
`;

/** What the previous supervisor wrote: db and api#0 running, api#1 was running, ui never started. */
function previousState(): SavedState {
  const spec = specFromYaml(SPEC);
  const row = (unit: string, replica: number, pid: number, restarts = 0) => ({
    unit: unitOf(spec, unit),
    replica,
    id: `${unit}.${replica}.abcd`,
    pid,
    startTime: `start-of-${pid}`,
    startedAt: 1_600_000_000_000 + pid,
    restarts,
  });
  const state = savedState(spec, [
    row("db", 0, 501),
    row("api", 0, 502, 4),
    row("api", 1, 503, 1),
    row("ui", 0, 0),
  ]);
  return JSON.parse(JSON.stringify(state)) as SavedState; // as read back from state.json
}

test("the state file keeps the spec and each process's pid, start time and restarts", () => {
  const s = previousState();
  assert.deepEqual(
    s.spec?.units.map((u) => u.name),
    ["db", "api", "ui"],
  );
  assert.deepEqual(s.instances[1], {
    unit: "api",
    replica: 0,
    id: "api.0.abcd",
    pid: 502,
    startTime: "start-of-502",
    startedAt: 1_600_000_000_502,
    restarts: 4,
  });
});

test("a process is adopted only if its pid runs with the same start time; none without a pid or unit", () => {
  const saved = previousState();
  saved.instances.push({ ...saved.instances[0]!, unit: "gone-from-spec", pid: 777 });
  const running = new Map([
    [501, "start-of-501"],
    [502, "start-of-502"],
    [503, "a later start: the pid was reused"],
  ]);
  const plan = planAdoption(saved, (pid, startTime) => running.get(pid) === startTime);
  assert.deepEqual(
    plan.map((e) => `${e.unit.name}#${e.saved.replica} ${e.alive ? "alive" : "gone"}`),
    ["db#0 alive", "api#0 alive", "api#1 gone"],
  );
  assert.deepEqual(
    planAdoption({ spec: undefined, instances: saved.instances }, () => true),
    [],
  );
});

test("after a hub restart adopted processes are followed, not started twice; the rest start in order", () => {
  const saved = previousState();
  const w = new ReconcileWorld(saved.spec!);
  const alive = new Set([501, 502]);
  // As Supervisor.start does: every saved process in the table first, then follow the adopted ones.
  const adopted = [];
  for (const { unit, saved: s, alive: isAlive } of planAdoption(saved, (pid) => alive.has(pid))) {
    const inst = w.lifecycle(unit, s.replica);
    if (isAlive) {
      inst.adopt(s);
      adopted.push(inst);
    } else inst.lostInHubRestart(s.restarts);
    w.instances.set(inst.name, inst);
  }
  for (const inst of adopted) inst.afterStart(undefined);
  assert.deepEqual(w.states(), ["api#0 starting", "api#1 waiting", "db#0 starting"]);
  assert.equal(w.get("api#0").restarts, 4);
  assert.equal(w.get("api#1").detail, "was gone when the hub restarted");

  w.reconcile();
  assert.deepEqual(w.started, [], "db is adopted, api#1 waits for db to be ready again");
  assert.deepEqual(w.states(), ["api#0 starting", "api#1 waiting", "db#0 starting", "ui#0 waiting"]);

  // Their nodes re-register with the new hub.
  w.ready("db#0");
  assert.deepEqual(w.started, ["api#1"]);
  assert.equal(w.get("api#1").restarts, 1);
  w.ready("api#0");
  w.ready("api#1");
  assert.deepEqual(w.started, ["api#1", "ui#0"]);
  assert.equal(w.get("db#0").pid, 501);
  assert.equal(w.get("db#0").adopted, true);
});
