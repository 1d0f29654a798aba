/**
 * The lifecycle of one supervised process (process-lifecycle.ts) on a manual clock: restart
 * backoff and its reset, crash loops, the restart policies, readiness, health probes and missing
 * heartbeats, stops with a grace period, and adoption. No process runs: the test plays the
 * supervisor (spawned, exited, what the graph shows) and records what the lifecycle asks for. A
 * seeded random walk (MYELIN_FUZZ_SEED, MYELIN_FUZZ_RUNS) checks that it stays consistent.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { FUZZ_SEED, fuzzRuns, Rng } from "../../test/fuzz-helpers.js";
import { ManualClock } from "../../test/manual-clock.js";
import { specFromYaml, unitOf } from "../../test/spec-from-yaml.js";
import { ProbeLoop, type ProbeEnv, type ProbeResult } from "./health.js";
import {
  backoffDelay,
  HUNG_AFTER_MS,
  ProcessLifecycle,
  type LifecycleEffects,
  type RegistrationView,
} from "./process-lifecycle.js";
import type { UnitSpec } from "./spec.js";

/** One lifecycle on a manual clock, with everything it asks of the world recorded. */
class Harness {
  readonly clock = new ManualClock();
  readonly signals: [number, NodeJS.Signals][] = [];
  readonly notes: string[] = [];
  readonly said: string[] = [];
  /** Pids that still run (isRunning). */
  readonly running = new Set<number>();
  reconciles = 0;
  saves = 0;
  probeStops = 0;
  #nextPid = 1000;
  readonly life: ProcessLifecycle;

  constructor(unit: UnitSpec, opts: { replica?: number; random?: () => number } = {}) {
    const fx: LifecycleEffects = {
      signal: (pid, sig) => void this.signals.push([pid, sig]),
      isRunning: (pid) => this.running.has(pid),
      note: (line) => void this.notes.push(line),
      say: (line) => void this.said.push(line),
      changed: () => undefined,
      save: () => void this.saves++,
      reconcile: () => void this.reconciles++,
      stopProbe: () => void this.probeStops++,
    };
    this.life = new ProcessLifecycle(unit, opts.replica ?? 0, {
      clock: this.clock,
      effects: fx,
      random: opts.random ?? (() => 0.5), // 0.5: no jitter either way
    });
  }

  /** What the supervisor does when it starts the process: spawned, then followed; returns the pid. */
  start(view?: RegistrationView): number {
    const pid = this.#nextPid++;
    this.running.add(pid);
    this.life.spawned(pid);
    this.life.afterStart(view);
    return pid;
  }

  /** The process ends (exit code or signal). */
  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    this.running.delete(this.life.pid);
    this.life.exited(code, signal);
  }

  /** The delay of the single pending backoff timer, in ms. */
  backoff(): number {
    assert.equal(this.life.state, "backoff");
    const p = this.clock.pending();
    assert.equal(p.length, 1, `one timer pending, not ${JSON.stringify(p)}`);
    return p[0]!.inMs;
  }
}

const unitFor = (yaml: string, name = "app"): UnitSpec => unitOf(specFromYaml(yaml), name);

/** A command process with `restart` settings and nothing else that sets timers. */
const restarting = (restart: string): UnitSpec =>
  unitFor(`nodes:\n  app: { command: [app], readiness: process, restart: ${restart} }\n`);

const seen = (...names: string[]): RegistrationView => ({
  settled: true,
  records: names.map((name) => ({ name })),
});

test("restart backoff doubles from backoffMs with each quick failure, up to maxBackoffMs", () => {
  const h = new Harness(
    restarting(
      "{ policy: always, backoffMs: 100, maxBackoffMs: 1000, jitter: 0, crashLoop: { restarts: 100 } }",
    ),
  );
  const delays: number[] = [];
  for (let i = 0; i < 7; i++) {
    h.start();
    h.clock.advance(10); // a quick failure
    h.exit(1);
    delays.push(h.backoff());
    h.clock.next();
    assert.equal(h.life.state, "waiting");
    assert.equal(h.life.restarts, i + 1);
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000, 1000]);
  assert.equal(h.reconciles, 7 * 2, "each start (ready) and each end of backoff asks for a reconcile");
  assert.match(h.said.at(-1)!, /^app#0 exited with code 1; restarting in 1\.0 s$/);
});

test("after a run of resetAfterMs or longer the backoff starts over", () => {
  const h = new Harness(
    restarting(
      "{ policy: always, backoffMs: 100, maxBackoffMs: 10000, jitter: 0, resetAfterMs: 5000, crashLoop: { restarts: 100 } }",
    ),
  );
  for (const want of [100, 200, 400]) {
    h.start();
    h.exit(1);
    assert.equal(h.backoff(), want);
    h.clock.next();
  }
  h.start();
  h.clock.advance(4999); // not quite stable
  h.exit(1);
  assert.equal(h.backoff(), 800);
  h.clock.next();
  h.start();
  h.clock.advance(5000); // stable: the run of failures is over
  h.exit(1);
  assert.equal(h.backoff(), 100);
  h.clock.next();
  h.start();
  h.exit(1);
  assert.equal(h.backoff(), 200);
});

test("jitter spreads each delay by ± jitter, from the injected random numbers", () => {
  const policy = unitFor(
    "nodes:\n  app: { command: [app], restart: { backoffMs: 1000, jitter: 0.2 } }\n",
  ).restart;
  assert.equal(backoffDelay(policy, 0, 0), 800);
  assert.equal(backoffDelay(policy, 0, 0.5), 1000);
  assert.equal(backoffDelay(policy, 0, 0.999999), 1200);
  assert.equal(backoffDelay(policy, 2, 0.25), 3600);
  assert.equal(backoffDelay(policy, 30, 0.5), policy.maxBackoffMs, "capped");
  const h = new Harness(restarting("{ backoffMs: 1000, jitter: 0.2 }"), { random: () => 0 });
  h.start();
  h.exit(1);
  assert.equal(h.backoff(), 800);
});

test("a crash loop (crashLoop.restarts restarts within windowMs) marks the process failed and stops restarting it", () => {
  const h = new Harness(
    restarting(
      "{ policy: always, backoffMs: 100, maxBackoffMs: 100, jitter: 0, crashLoop: { restarts: 3, windowMs: 10000 } }",
    ),
  );
  for (let i = 0; i < 3; i++) {
    h.start();
    h.exit(1);
    h.clock.next();
  }
  h.start();
  h.exit(1);
  assert.equal(h.life.state, "failed");
  assert.deepEqual(h.clock.pending(), [], "no restart is scheduled");
  assert.equal(
    h.life.detail,
    "crash loop: 3 restarts within 10.0 s, last exited with code 1; fix it and run `myelin restart app`",
  );
  assert.equal(h.said.at(-1), `app#0 failed: ${h.life.detail}`);
  assert.equal(h.life.restarts, 3);

  // `myelin restart` starts it afresh, with a clean history: three more restarts before giving up.
  h.life.restartAfresh();
  assert.equal(h.life.state, "waiting");
  assert.equal(h.life.restarts, 4);
  for (let i = 0; i < 3; i++) {
    h.start();
    h.exit(1);
    assert.equal(h.backoff(), 100, "the backoff starts over too");
    h.clock.next();
  }
  h.start();
  h.exit(1);
  assert.equal(h.life.state, "failed");
});

test("restarts spread wider than the crash-loop window never give up", () => {
  const h = new Harness(
    restarting(
      "{ policy: always, backoffMs: 600, maxBackoffMs: 600, jitter: 0, crashLoop: { restarts: 3, windowMs: 1000 } }",
    ),
  );
  for (let i = 0; i < 20; i++) {
    h.start();
    h.exit(1);
    assert.equal(h.life.state, "backoff", `restart ${i}`);
    h.clock.next();
  }
  assert.equal(h.life.restarts, 20);
});

test("restart policies: always, on-failure and never, by how the process ended", () => {
  type End = [code: number | null, signal: NodeJS.Signals | null, error?: string];
  const cases: [policy: string, end: End, state: string][] = [
    ["always", [0, null], "backoff"],
    ["always", [2, null], "backoff"],
    ["on-failure", [0, null], "exited"],
    ["on-failure", [1, null], "backoff"],
    ["on-failure", [null, "SIGSEGV"], "backoff"],
    ["on-failure", [null, null, "cannot start app: spawn app ENOENT"], "backoff"],
    ["never", [1, null], "exited"],
    ["never", [null, "SIGKILL"], "exited"],
    ["never", [null, null, "cannot start app: spawn app ENOENT"], "failed"],
  ];
  for (const [policy, [code, signal, error], state] of cases) {
    const h = new Harness(restarting(policy));
    h.start();
    h.life.exited(code, signal, error);
    const what = `${policy} after ${error ?? code ?? signal}`;
    assert.equal(h.life.state, state, what);
    assert.equal(h.life.pid, 0, what);
    assert.equal(h.clock.pending().length, state === "backoff" ? 1 : 0, what);
    if (state !== "backoff")
      assert.match(h.said.at(-1)!, new RegExp(`not restarted \\(restart: ${policy}\\)$`), what);
  }
});

test("a process that does not turn ready within readyTimeoutMs is killed, and that counts as a failure", () => {
  const h = new Harness(
    unitFor("nodes:\n  app: { command: [app], stopGraceMs: 300, health: { readyTimeoutMs: 2000 } }\n"),
  );
  const pid = h.start();
  assert.equal(h.life.state, "starting");
  h.clock.advance(1999);
  assert.deepEqual(h.signals, []);
  h.clock.advance(1);
  assert.deepEqual(h.signals, [[pid, "SIGTERM"]]);
  assert.equal(h.life.detail, "not ready within 2.0 s");
  h.clock.advance(300); // still running after the grace period
  assert.deepEqual(h.signals, [
    [pid, "SIGTERM"],
    [pid, "SIGKILL"],
  ]);
  h.exit(0); // even a clean exit: the supervisor killed it
  assert.equal(h.life.state, "backoff", "on-failure restarts it");
  assert.equal(h.life.detail, "not ready within 2.0 s (exited with code 0)");
});

test("readiness node: ready once every node of the process is on the graph and says it is ready", () => {
  const spec = specFromYaml(`nodes:
  camera: { module: camera.js, process: vision, replicas: 2 }
  detector: { module: detector.js, process: vision, replicas: 2 }
`);
  const h = new Harness(unitOf(spec, "vision"), { replica: 1 });
  h.start(undefined); // no graph yet
  assert.equal(h.life.state, "starting");
  h.life.registration(seen("camera.1"));
  assert.equal(h.life.state, "starting", "detector.1 is missing");
  assert.equal(h.life.registered, true);
  h.life.registration({
    settled: true,
    records: [{ name: "camera.1" }, { name: "detector.1", ready: false }],
  });
  assert.equal(h.life.state, "starting", "detector.1 is not ready");
  h.life.registration(seen("camera.1", "detector.1"));
  assert.equal(h.life.state, "ready");
  assert.equal(h.life.health, "healthy");
  assert.equal(h.reconciles, 1, "turning ready lets dependents start");
  assert.deepEqual(h.clock.pending(), [], "the readiness timeout is cancelled");
  h.life.registration({
    settled: true,
    records: [{ name: "camera.1" }, { name: "detector.1", ready: false }],
  });
  assert.equal(h.life.state, "starting", "a node that says it is not ready any more");
});

test("readiness process: ready as soon as it is spawned", () => {
  const h = new Harness(restarting("on-failure"));
  h.start();
  assert.equal(h.life.state, "ready");
  assert.match(h.said.at(-1)!, /^app#0 ready \(0 ms after start\)$/);
  assert.deepEqual(h.clock.pending(), []);
});

test("a failing health probe (failureThreshold in a row) kills the process and it restarts", async () => {
  const h = new Harness(
    unitFor(`nodes:
  app:
    command: [app]
    stopGraceMs: 500
    health: { probe: { http: "http://127.0.0.1:1/healthz", intervalMs: 1000, failureThreshold: 3, initialDelayMs: 200 } }
`),
  );
  const results: ProbeResult[] = [
    { ok: true, detail: "ok" },
    { ok: false, detail: "GET http://127.0.0.1:1/healthz: HTTP 500" },
    { ok: false, detail: "GET http://127.0.0.1:1/healthz: HTTP 500" },
    { ok: false, detail: "GET http://127.0.0.1:1/healthz: HTTP 503" },
  ];
  let runs = 0;
  const run = (): Promise<ProbeResult> => Promise.resolve(results[runs++] ?? { ok: true, detail: "ok" });
  const env: ProbeEnv = {
    node: "app",
    replica: 0,
    cwd: "/",
    env: {},
    trigger: () => Promise.reject(new Error("not a service probe")),
  };
  const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  const pid = h.start(seen("app"));
  assert.equal(h.life.state, "ready");
  assert.equal(h.life.health, "unknown", "a probe decides health");
  const probe = new ProbeLoop(h.life.unit.health.probe!, env, (ok, d) => h.life.probeResult(ok, d), {
    clock: h.clock,
    run,
  });
  h.clock.advance(200);
  await flush();
  assert.equal(h.life.health, "healthy");
  for (let i = 0; i < 2; i++) {
    h.clock.advance(1000);
    await flush();
  }
  assert.equal(runs, 3);
  assert.deepEqual(h.signals, [], "two failures are below the threshold");
  h.clock.advance(1000);
  await flush();
  assert.deepEqual(h.signals, [[pid, "SIGTERM"]]);
  assert.equal(h.life.health, "unhealthy");
  assert.equal(h.life.detail, "unhealthy: GET http://127.0.0.1:1/healthz: HTTP 503");
  probe.stop();
  h.exit(null, "SIGTERM");
  assert.equal(h.life.state, "backoff");
  assert.equal(h.life.detail, "unhealthy: GET http://127.0.0.1:1/healthz: HTTP 503 (killed by SIGTERM)");
  h.clock.next();
  assert.equal(h.life.state, "waiting");
  assert.equal(h.life.restarts, 1);
});

test("with restart: never an unhealthy process is left running as unhealthy, and ready again once healthy", () => {
  const h = new Harness(
    unitFor(`nodes:
  app: { command: [app], restart: never, health: { probe: { service: "/app/health" } } }
`),
  );
  h.start(seen("app"));
  assert.equal(h.life.state, "ready");
  h.life.probeResult(false, "/app/health: busy");
  assert.equal(h.life.state, "unhealthy");
  assert.deepEqual(h.signals, []);
  assert.equal(h.life.detail, "probe: /app/health: busy");
  h.life.probeResult(true, "ok");
  assert.equal(h.life.state, "ready");
  assert.equal(h.life.health, "healthy");
});

test("readiness probe: ready on the first passing probe", () => {
  const h = new Harness(
    unitFor(`nodes:
  app: { command: [app], readiness: probe, health: { probe: { http: "http://127.0.0.1:1/" } } }
`),
  );
  h.start(seen("app"));
  assert.equal(h.life.state, "starting", "its nodes alone do not make it ready");
  h.life.probeResult(true, "ok");
  assert.equal(h.life.state, "ready");
});

test("nodes gone from a settled graph while the process runs: hung, killed with SIGKILL after HUNG_AFTER_MS, restarted", () => {
  const h = new Harness(unitFor("nodes:\n  app: { command: [app], restart: always }\n"));
  const pid = h.start(seen("app"));
  assert.equal(h.life.state, "ready");

  // Not settled (the hub just restarted): absence means nothing yet.
  h.life.registration({ settled: false, records: [] });
  assert.deepEqual(h.clock.pending(), []);
  // Settled and gone, but back in time: nothing happens.
  h.life.registration(seen());
  assert.deepEqual(
    h.clock.pending().map((p) => p.ms),
    [HUNG_AFTER_MS],
  );
  h.clock.advance(HUNG_AFTER_MS - 1);
  h.life.registration(seen("app"));
  h.clock.advance(10);
  assert.deepEqual(h.signals, []);

  // Gone for good while the process is alive: hung.
  h.life.registration(seen());
  h.clock.advance(HUNG_AFTER_MS);
  assert.deepEqual(h.signals, [[pid, "SIGKILL"]]);
  assert.equal(h.life.health, "hung");
  h.exit(null, "SIGKILL");
  assert.equal(h.life.state, "backoff");
  assert.equal(
    h.life.detail,
    "hung: its nodes stopped heartbeating while the process is alive (killed by SIGKILL)",
  );
});

test("no hung kill when the process is gone already, or heartbeat checks are off", () => {
  const h = new Harness(unitFor("nodes:\n  app: { command: [app] }\n"));
  const pid = h.start(seen("app"));
  h.life.registration(seen());
  h.running.delete(pid); // it exited; its exit event is on the way
  h.clock.advance(HUNG_AFTER_MS);
  assert.deepEqual(h.signals, []);
  assert.equal(h.life.health, "healthy");

  const off = new Harness(unitFor("nodes:\n  app: { command: [app], health: { heartbeat: false } }\n"));
  off.start(seen("app"));
  off.life.registration(seen());
  assert.deepEqual(off.clock.pending(), []);
});

test("stop: SIGTERM, SIGKILL after stopGraceMs, resolves when the process exited; no restart follows", async () => {
  const h = new Harness(
    unitFor("nodes:\n  app: { command: [app], readiness: process, restart: always, stopGraceMs: 3000 }\n"),
  );
  const pid = h.start();
  let stopped = false;
  const done = h.life.stop("down").then(() => (stopped = true));
  assert.equal(h.life.state, "stopping");
  assert.equal(h.life.detail, "down");
  assert.deepEqual(h.signals, [[pid, "SIGTERM"]]);
  const again = h.life.stop("down"); // a second stop waits for the same exit, sends nothing
  h.clock.advance(2999);
  assert.equal(h.signals.length, 1);
  h.clock.advance(1);
  assert.deepEqual(h.signals[1], [pid, "SIGKILL"]);
  assert.equal(stopped, false);
  h.exit(null, "SIGKILL");
  await Promise.all([done, again]);
  assert.equal(stopped, true);
  assert.equal(h.life.state, "stopped");
  assert.equal(h.life.pid, 0);
  assert.deepEqual(h.clock.pending(), []);
  assert.match(h.notes.at(-1)!, /^\[myelin\] app#0 stopped \(killed by SIGKILL\)$/);
});

test("stop of a process that exits within the grace period sends no SIGKILL", async () => {
  const h = new Harness(unitFor("nodes:\n  app: { command: [app], readiness: process }\n"));
  const pid = h.start();
  const done = h.life.stop("scaled to 0");
  h.exit(0);
  await done;
  h.clock.advance(60_000);
  assert.deepEqual(h.signals, [[pid, "SIGTERM"]]);
});

test("stop of a process in backoff cancels its restart at once", async () => {
  const h = new Harness(restarting("always"));
  h.start();
  h.exit(1);
  assert.equal(h.life.state, "backoff");
  await h.life.stop("down");
  assert.equal(h.life.state, "stopped");
  assert.deepEqual(h.clock.pending(), []);
  assert.equal(h.probeStops, 2, "every exit and stop stops the probe");
});

test("adoption after a hub restart: followed as starting until its nodes are seen, then ready; its end is noticed", () => {
  const h = new Harness(unitFor("nodes:\n  app: { command: [app], health: { readyTimeoutMs: 5000 } }\n"));
  const startedAt = h.clock.now() - 60_000;
  h.life.adopt({ pid: 4242, startedAt, restarts: 2 });
  assert.equal(h.life.state, "starting");
  assert.equal(h.life.adopted, true);
  assert.equal(h.life.pid, 4242);
  assert.equal(h.life.restarts, 2);
  h.life.afterStart(undefined); // the new hub has no graph yet
  h.life.registration(seen("app"));
  assert.equal(h.life.state, "ready");
  assert.match(h.said.at(-1)!, /^app#0 ready \(60\.0 s after start\)$/);

  // It registered before the restart: missing from a settled graph it counts as hung.
  h.running.add(4242);
  h.life.registration(seen());
  h.clock.advance(HUNG_AFTER_MS);
  assert.deepEqual(h.signals, [[4242, "SIGKILL"]]);

  // An adopted process is not the supervisor's child: its end is seen by polling.
  h.life.adoptedProcessGone();
  assert.equal(h.life.adopted, false);
  assert.equal(h.life.state, "backoff");
  assert.match(h.life.detail, /exited \(adopted: exit status unknown\)\)$/);
  h.life.adoptedProcessGone(); // once only
  assert.equal(h.clock.pending().length, 1);
});

test("a process gone when the hub restarted starts afresh, keeping its restart count", () => {
  const h = new Harness(restarting("on-failure"));
  h.life.lostInHubRestart(3);
  assert.equal(h.life.state, "waiting");
  assert.equal(h.life.restarts, 3);
  assert.equal(h.life.detail, "was gone when the hub restarted");
  h.start();
  assert.equal(h.life.state, "ready");
  assert.equal(h.life.adopted, false);
});

// ---- seeded random walk -----------------------------------------------------------------------

const LIVE = new Set(["starting", "ready", "unhealthy", "stopping"]);

/**
 * One walk: a unit with random settings, and random events (starts, exits, clock advances, graph
 * views, probe results, stops, `myelin restart`) in a world that tracks which pids run. After
 * every step the lifecycle must be consistent.
 */
async function walk(seed: number, steps: number): Promise<void> {
  const r = new Rng(seed);
  const base = unitFor(
    `nodes:\n  app: { module: app.js, process: app }\n  helper: { module: helper.js, process: app }\n`,
  );
  const policy = r.pick(["always", "on-failure", "never"] as const);
  const readiness = r.pick(["node", "process", "probe"] as const);
  const withProbe = readiness === "probe" || r.next() < 0.5;
  const unit: UnitSpec = {
    ...base,
    readiness,
    stopGraceMs: r.pick([100, 1000, 5000]),
    restart: {
      policy,
      backoffMs: r.pick([10, 100, 500]),
      maxBackoffMs: r.pick([500, 2000, 10000]),
      jitter: r.pick([0, 0.2, 0.5]),
      resetAfterMs: r.pick([500, 5000]),
      crashLoopRestarts: 2 + r.int(4),
      crashLoopWindowMs: r.pick([1000, 10000, 60000]),
    },
    health: {
      heartbeat: r.next() < 0.7,
      readyTimeoutMs: r.pick([0, 2000]),
      ...(withProbe
        ? {
            probe: {
              kind: "http" as const,
              target: ["http://127.0.0.1:1/"],
              intervalMs: 1000,
              timeoutMs: 500,
              failureThreshold: 1,
              initialDelayMs: 0,
            },
          }
        : {}),
    },
  };
  const h = new Harness(unit, { random: () => r.next() });
  const ctx = (step: number, what: string): string =>
    `seed ${seed} step ${step} (${what}): state ${h.life.state}, pid ${h.life.pid}, detail '${h.life.detail}', unit ${JSON.stringify({ policy, readiness, restart: unit.restart, health: unit.health })}`;
  const stops: { done: boolean }[] = [];
  const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  const view = (): RegistrationView => ({
    settled: r.next() < 0.8,
    records:
      r.next() < 0.3
        ? []
        : ["app", "helper"]
            .filter(() => r.next() < 0.9)
            .map((name) => ({ name, ...(r.next() < 0.2 ? { ready: false } : {}) })),
  });
  let signalsSeen = 0;
  for (let step = 0; step < steps; step++) {
    const before = { state: h.life.state, restarts: h.life.restarts };
    const events = ["advance", "advance", "view"];
    if (h.life.state === "waiting") events.push("start", "start");
    if (h.running.has(h.life.pid)) events.push("exit", "exit", "probe", "stop");
    if (h.life.state === "backoff") events.push("stop");
    if (["stopped", "exited", "failed"].includes(h.life.state)) events.push("restart");
    const what = r.pick(events);
    let afresh = false;
    switch (what) {
      case "advance":
        h.clock.advance(r.next() < 0.5 ? r.int(100) : r.int(3000));
        break;
      case "view":
        h.life.registration(view());
        break;
      case "start":
        h.start(r.next() < 0.5 ? view() : undefined);
        break;
      case "exit":
        h.exit(r.pick([0, 1, 137, null]), r.pick([null, "SIGTERM", "SIGKILL"]));
        break;
      case "probe":
        h.life.probeResult(r.next() < 0.5, "probe says so");
        break;
      case "stop": {
        const s = { done: false };
        stops.push(s);
        void h.life.stop("down").then(() => (s.done = true));
        break;
      }
      case "restart":
        h.life.restartAfresh();
        afresh = true;
        break;
    }
    await flush();
    const c = ctx(step, what);
    const s = h.life.state;
    // A pid exactly while a process is live; and the world agrees it runs.
    assert.equal(h.life.pid > 0, LIVE.has(s), c);
    if (h.life.pid > 0) assert.ok(h.running.has(h.life.pid), c);
    // Signals go to running processes only.
    for (const [pid] of h.signals.slice(signalsSeen)) assert.ok(pid > 0, c);
    signalsSeen = h.signals.length;
    // Timers: a restart is scheduled exactly in backoff; nothing waits in a final state.
    const timers = h.clock.pending().filter((p) => !p.unref);
    if (s === "backoff") {
      assert.equal(timers.length, 1, c);
      const p = unit.restart;
      const lo = Math.round(Math.min(p.backoffMs, p.maxBackoffMs) * (1 - p.jitter));
      const hi = Math.round(p.maxBackoffMs * (1 + p.jitter));
      if (before.state !== "backoff") assert.ok(timers[0]!.inMs >= lo && timers[0]!.inMs <= hi, c);
    } else if (s === "waiting" || s === "stopped" || s === "exited" || s === "failed") {
      assert.deepEqual(timers, [], c);
    } else assert.ok(timers.length <= 2, c);
    // Restarts count only when a backoff ends or on `myelin restart`.
    const backoffEnded = before.state === "backoff" && s === "waiting";
    assert.equal(h.life.restarts - before.restarts, (backoffEnded ? 1 : 0) + (afresh ? 1 : 0), c);
    if (backoffEnded) assert.notEqual(policy === "never", true, c);
    // Failed means a crash loop here (no spawn errors in this walk).
    if (s === "failed") assert.match(h.life.detail, /^crash loop: /, c);
    if (s === "exited") assert.notEqual(policy, "always", c);
    // Every stop has returned once nothing runs any more.
    if (!LIVE.has(s))
      assert.ok(
        stops.every((x) => x.done),
        c,
      );
  }
}

test("seeded random walk: pids, timers, restarts and stops stay consistent whatever happens", async () => {
  const runs = fuzzRuns(200);
  for (let i = 0; i < runs; i++) await walk(FUZZ_SEED + i, 150);
});
