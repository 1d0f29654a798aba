/**
 * The reconcile loop (reconcile.ts) over real lifecycles on a manual clock: dependency order
 * (`ready` and `started`), placement on other hosts through the graph, scaling up and down (which
 * replicas go), the stop order of `myelin down`, and where a spec's processes stand.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ReconcileWorld } from "../../test/reconcile-world.js";
import { specFromYaml, unitOf } from "../../test/spec-from-yaml.js";
import { isExtra, placedOn, replicaRange, settlement, stopOrder } from "./reconcile.js";
import type { UnitSpec } from "./spec.js";

test("processes start in dependency order: after what they depend on is ready, or only started", () => {
  const w = new ReconcileWorld(
    specFromYaml(`nodes:
  tool: { command: [tool] }
  ui: { module: ui.js, dependsOn: { api: started } }
  api: { module: api.js, replicas: 2, dependsOn: [db] }
  db: { command: [db] }
`),
  );
  w.reconcile();
  assert.deepEqual(w.started, ["tool#0", "db#0"]);
  assert.deepEqual(w.states(), [
    "api#0 waiting",
    "api#1 waiting",
    "db#0 starting",
    "tool#0 starting",
    "ui#0 waiting",
  ]);
  w.reconcile();
  assert.deepEqual(w.started, ["tool#0", "db#0"], "nothing new while db is not ready");

  // db turns ready: both api replicas start, and ui, which needs api only started, in the same pass.
  w.ready("db#0");
  assert.deepEqual(w.started, ["tool#0", "db#0", "api#0", "api#1", "ui#0"]);
});

test("a dependency on a replicated unit waits for every replica", () => {
  const w = new ReconcileWorld(
    specFromYaml(`nodes:
  api: { module: api.js, replicas: 3 }
  ui: { module: ui.js, dependsOn: [api] }
`),
  );
  w.reconcile();
  w.ready("api#0");
  w.ready("api#2");
  assert.equal(w.get("ui#0").state, "waiting");
  w.ready("api#1");
  assert.equal(w.get("ui#0").state, "starting");
});

test("a dependency that exits and restarts holds back what has not started yet", () => {
  const w = new ReconcileWorld(
    specFromYaml(`nodes:
  db: { command: [db], restart: { backoffMs: 500, jitter: 0 } }
  api: { module: api.js, dependsOn: [db] }
`),
  );
  w.reconcile();
  w.exit("db#0", 1);
  assert.equal(w.get("db#0").state, "backoff");
  w.reconcile();
  assert.equal(w.get("api#0").state, "waiting");
  w.clock.advance(500); // the backoff ends: db starts again
  assert.deepEqual(w.started, ["db#0", "db#0"]);
  w.ready("db#0");
  assert.deepEqual(w.started, ["db#0", "db#0", "api#0"]);
});

test("units placed on other hosts are not run here; depending on them means their nodes on the graph", () => {
  const spec = specFromYaml(`nodes:
  gpu: { module: gpu.js, placement: [cloud], replicas: 2 }
  cam: { module: cam.js, dependsOn: { gpu: ready } }
  log: { module: log.js, dependsOn: { gpu: started } }
`);
  assert.equal(placedOn(unitOf(spec, "gpu"), ["edge", "lab"]), false);
  assert.equal(placedOn(unitOf(spec, "gpu"), ["cloud"]), true);
  assert.equal(placedOn(unitOf(spec, "cam"), []), true, "no placement: every host");
  const w = new ReconcileWorld(spec, ["edge"]);
  w.reconcile();
  assert.deepEqual(w.states(), ["cam#0 waiting", "log#0 waiting"]);
  w.graph = { nodes: [{ name: "gpu", ready: false }] };
  w.reconcile();
  assert.deepEqual(w.started, ["log#0"], "gpu is there (started), not ready");
  w.graph = { nodes: [{ name: "gpu" }, { name: "gpu.1", ready: true }] };
  w.reconcile();
  assert.deepEqual(w.started, ["log#0", "cam#0"]);
  const s = settlement(spec, ["edge"], w.table);
  assert.deepEqual(
    s.desired.map((i) => i.name),
    ["cam#0", "log#0"],
  );
});

test("scaling up adds the next replica numbers; scaling down stops the highest ones, once each", async () => {
  const spec = specFromYaml(`nodes:
  worker: { command: [worker], readiness: process, replicas: 2 }
`);
  const unit = unitOf(spec, "worker");
  const w = new ReconcileWorld(spec);
  w.reconcile();
  assert.deepEqual(w.states(), ["worker#0 ready", "worker#1 ready"]);

  unit.replicas = 4; // as Supervisor.scale does
  w.reconcile();
  assert.deepEqual(w.started, ["worker#0", "worker#1", "worker#2", "worker#3"]);
  assert.equal(settlement(spec, w.labels, w.table).allReady, true);

  unit.replicas = 1;
  w.reconcile();
  assert.deepEqual(w.stoppedExtra, [
    "worker#1: scaled to 1",
    "worker#2: scaled to 1",
    "worker#3: scaled to 1",
  ]);
  assert.deepEqual(w.states(), [
    "worker#0 ready",
    "worker#1 stopping",
    "worker#2 stopping",
    "worker#3 stopping",
  ]);
  assert.deepEqual(w.signals, ["101 SIGTERM", "102 SIGTERM", "103 SIGTERM"]);
  assert.equal(settlement(spec, w.labels, w.table).allReady, false, "extra replicas are still there");
  w.reconcile();
  assert.equal(w.stoppedExtra.length, 3, "a replica already stopping is not stopped again");

  for (const k of ["worker#1", "worker#2", "worker#3"]) w.exit(k, null, "SIGTERM");
  await new Promise((resolve) => setImmediate(resolve)); // the stops resolve, the extras leave the table
  assert.deepEqual(w.states(), ["worker#0 ready"]);
  assert.equal(settlement(spec, w.labels, w.table).allReady, true);

  unit.replicas = 0;
  w.reconcile();
  assert.deepEqual(w.stoppedExtra.at(-1), "worker#0: scaled to 0");
});

test("a node scaled out of a composed process continues its replica numbers", () => {
  const spec = specFromYaml(`nodes:
  camera: { module: camera.js, process: vision }
  detector: { module: detector.js, process: vision }
`);
  const vision = unitOf(spec, "vision");
  // What Supervisor.scale makes of `myelin scale camera=3`: camera runs in vision#0 and alone in camera+#1, camera+#2.
  const own: UnitSpec = {
    ...vision,
    name: "camera+",
    nodes: ["camera"],
    modules: vision.modules.filter((m) => m.node === "camera"),
    firstReplica: 1,
    scaledOutOf: "vision",
    replicas: 2,
  };
  spec.units.push(own);
  assert.deepEqual(replicaRange(own), [1, 2]);
  assert.equal(isExtra(own, 2), false);
  assert.equal(isExtra(own, 3), true);
  const w = new ReconcileWorld(spec);
  w.reconcile();
  assert.deepEqual(w.started, ["vision#0", "camera+#1", "camera+#2"]);
  own.replicas = 1;
  w.reconcile();
  assert.deepEqual(w.stoppedExtra, ["camera+#2: scaled to 1"]);
});

test("myelin down stops in reverse dependency order, then processes no longer in the spec", () => {
  const spec = specFromYaml(`nodes:
  ui: { module: ui.js, dependsOn: [api] }
  metrics: { command: [metrics] }
  api: { module: api.js, dependsOn: [db, cache] }
  cache: { command: [cache] }
  db: { command: [db] }
`);
  const w = new ReconcileWorld(spec);
  w.reconcile();
  const old = w.lifecycle(unitOf(specFromYaml("nodes:\n  legacy: { command: [legacy] }\n"), "legacy"), 0);
  w.instances.set(old.name, old);
  const order = stopOrder(spec, w.instances.values());
  assert.equal(order.at(-1), "legacy");
  assert.equal(new Set(order).size, order.length, "each unit once");
  const at = (n: string): number => order.indexOf(n);
  for (const u of spec.units)
    for (const d of u.dependsOn)
      assert.ok(at(u.name) < at(d.unit), `${u.name} stops before ${d.unit}: ${order.join(", ")}`);
  assert.deepEqual(order, [...spec.units.map((u) => u.name)].reverse().concat("legacy"));
  assert.deepEqual(
    stopOrder(undefined, w.instances.values()).sort(),
    [...order].sort(),
    "no spec: whatever runs",
  );
});

test("settlement: ready when every desired process is; failed and exited ones are reported", () => {
  const spec = specFromYaml(`nodes:
  a: { command: [a], readiness: process, restart: never }
  b: { command: [b], restart: never }
`);
  const w = new ReconcileWorld(spec);
  w.reconcile();
  let s = settlement(spec, w.labels, w.table);
  assert.equal(s.allReady, false);
  assert.deepEqual(s.bad, []);
  w.ready("b#0");
  s = settlement(spec, w.labels, w.table);
  assert.equal(s.allReady, true);
  w.exit("a#0", 3);
  s = settlement(spec, w.labels, w.table);
  assert.deepEqual(
    s.bad.map((i) => `${i.name} ${i.state}: ${i.detail}`),
    ["a#0 exited: exited with code 3"],
  );
  assert.equal(s.allReady, false);
  assert.deepEqual(settlement(undefined, w.labels, w.table).desired, []);
});
