/**
 * The supervisor with real processes: dependency order, kill -9 of a replica and its restart,
 * crash loop → failed, a hung process (alive, not heartbeating) detected and restarted, rolling
 * restart one replica at a time, scaling. Hub and supervisor run in this process; the supervised
 * nodes are real child processes (test/fixtures/orch-node).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Hub } from "../src/hub/index.js";
import { createNode, replicaNodeName, type Node } from "../src/node/index.js";
import { std_srvs } from "../src/msgs/index.js";
import { loadSpec, Supervisor, type ProcessRow } from "../src/orchestrator/index.js";
import { fixture, tempRuntime, until } from "./helpers.js";

const FIXTURE = fixture("orch-node");

interface Ev {
  event: string;
  name: string;
  replica: number;
  pid: number;
  t: number;
}

function events(file: string): Ev[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Ev);
}

/** Kills every process a test's fixtures reported, whatever state the supervisor is in. */
function killAll(eventsFile: string): void {
  for (const pid of new Set(events(eventsFile).map((e) => e.pid))) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
}

/** Resolves when `pred(ps())` holds, checked on every supervisor change; rejects after timeoutMs. */
function untilPs(
  sup: Supervisor,
  pred: (rows: ProcessRow[]) => boolean,
  timeoutMs: number,
  what: string,
): Promise<ProcessRow[]> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const rows = sup.ps();
      if (!pred(rows)) return;
      clearTimeout(timer);
      sup.off("change", check);
      resolve(rows);
    };
    const timer = setTimeout(() => {
      sup.off("change", check);
      reject(
        new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ps: ${JSON.stringify(sup.ps())}`),
      );
    }, timeoutMs);
    sup.on("change", check);
    check();
  });
}

const row = (rows: ProcessRow[], proc: string, replica = 0): ProcessRow | undefined =>
  rows.find((r) => r.process === proc && r.replica === replica);

/** Hub + supervisor + a test node in a temp runtime dir; everything stopped and killed on dispose. */
async function world(nodeTimeoutMs = 3000): Promise<{
  dir: string;
  eventsFile: string;
  sup: Supervisor;
  node: Node;
  spec(text: string, env?: string): ReturnType<typeof loadSpec>;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const rt = tempRuntime();
  const dir = rt.dir;
  const eventsFile = join(dir, "events.jsonl");
  const hub = await Hub.start({ runtimeDir: dir, nodeTimeoutMs });
  const sup = await Supervisor.start({ runtimeDir: dir, pollMs: 100 });
  const node = await createNode({ name: "tester", runtimeDir: dir });
  return {
    dir,
    eventsFile,
    sup,
    node,
    spec(text: string, env?: string) {
      const file = join(dir, "myelin.yaml");
      writeFileSync(file, text.replaceAll("$FIXTURE", FIXTURE).replaceAll("$EVENTS", eventsFile));
      return loadSpec(file, { environment: env });
    },
    async [Symbol.asyncDispose]() {
      await sup.close().catch(() => undefined);
      killAll(eventsFile);
      await node.close();
      hub.close();
      rt[Symbol.dispose]();
    },
  };
}

test(
  "a spec of several nodes starts in dependency order; kill -9 of a replica restarts it",
  { timeout: 60000 },
  async () => {
    await using w = await world();
    const spec = w.spec(`
version: 1
nodes:
  db:
    module: $FIXTURE
    env: { ORCH_EVENTS: $EVENTS, ORCH_READY_DELAY_MS: "200" }
  api:
    module: $FIXTURE
    replicas: 2
    dependsOn: [db]
    env: { ORCH_EVENTS: $EVENTS }
    restart: always
  worker:
    command: [node, $FIXTURE]
    dependsOn: { api: ready }
    env: { ORCH_EVENTS: $EVENTS }
`);
    assert.deepEqual(
      spec.units.map((u) => u.name),
      ["db", "api", "worker"],
    );
    const r = await w.sup.apply(spec, 30000);
    assert.equal(r.ok, true, r.message);
    const rows = w.sup.ps();
    assert.deepEqual(
      rows.map((x) => `${x.process}#${x.replica}:${x.state}`),
      ["db#0:ready", "api#0:ready", "api#1:ready", "worker#0:ready"],
    );
    // Order: each process started only after what it depends on said it was ready.
    const ev = events(w.eventsFile);
    const at = (event: string, name: string, replica = 0): number =>
      ev.findIndex(
        (e) => e.event === event && e.name === replicaNodeName(name, replica) && e.replica === replica,
      );
    assert.ok(at("ready", "db") < at("start", "api", 0), JSON.stringify(ev));
    assert.ok(at("ready", "db") < at("start", "api", 1));
    assert.ok(
      at("ready", "api", 0) < at("start", "worker") && at("ready", "api", 1) < at("start", "worker"),
      JSON.stringify(ev),
    );
    // Readiness and the instance are on the graph.
    const g = await w.node.queryGraph();
    // Replica 1 has a name of its own.
    const apis = g.nodes.filter((n) => n.name === "api" || n.name === "api.1");
    assert.equal(apis.length, 2);
    assert.ok(apis.every((n) => n.ready === true && n.instance !== undefined));

    // kill -9 one replica: it comes back (new pid, ready), the other one is untouched.
    const victim = row(rows, "api", 1)!;
    const other = row(rows, "api", 0)!;
    process.kill(victim.pid, "SIGKILL");
    const after = await untilPs(
      w.sup,
      (rs) => {
        const x = row(rs, "api", 1);
        return x !== undefined && x.state === "ready" && x.pid !== victim.pid && x.pid > 0;
      },
      20000,
      "api#1 restarted and ready",
    );
    assert.equal(row(after, "api", 1)!.restarts, 1);
    assert.match(row(after, "api", 1)!.detail, /SIGKILL/);
    assert.equal(row(after, "api", 0)!.pid, other.pid);
    assert.equal(row(after, "api", 0)!.restarts, 0);

    // Logs are captured per process, tagged.
    const logs = w.sup.logs("api", 1, 50);
    assert.ok(
      logs.lines.some((l) => /hello from api\.1#1/.test(l)),
      JSON.stringify(logs),
    );
    assert.ok(logs.lines.some((l) => /restarting in/.test(l)));
    assert.ok(logs.sources.every((s) => s === "api#1"));

    // down stops everything in reverse order.
    await w.sup.down();
    const ev2 = events(w.eventsFile);
    const stops = ev2.filter((e) => e.event === "stop").map((e) => e.name);
    assert.equal(stops[stops.length - 1], "db", JSON.stringify(stops));
    assert.equal(w.sup.ps().length, 0);
  },
);

test("a crash loop ends in failed, reported, not retried forever", { timeout: 60000 }, async () => {
  await using w = await world();
  const spec = w.spec(`
nodes:
  flaky:
    module: $FIXTURE
    env: { ORCH_EVENTS: $EVENTS, ORCH_CRASH_AFTER_MS: "30" }
    restart: { policy: always, backoffMs: 20, maxBackoffMs: 100, crashLoop: { restarts: 3, windowMs: 60000 } }
`);
  await w.sup.apply(spec, 0);
  const rows = await untilPs(w.sup, (rs) => row(rs, "flaky")?.state === "failed", 30000, "flaky failed");
  const x = row(rows, "flaky")!;
  assert.match(x.detail, /crash loop: 3 restarts within/);
  assert.equal(x.state, "failed");
  assert.equal(x.restarts, 3);
  assert.equal(x.pid, 0);
  assert.equal(events(w.eventsFile).filter((e) => e.event === "start").length, 4);
  assert.ok(w.sup.logs("flaky", 0, 100).lines.some((l) => /crashing on purpose/.test(l)));
});

test("a hung process (alive, not heartbeating) is detected and restarted", { timeout: 60000 }, async () => {
  await using w = await world(1000);
  const spec = w.spec(`
nodes:
  stuck:
    command: [node, $FIXTURE]
    env: { ORCH_EVENTS: $EVENTS }
    restart: on-failure
`);
  assert.equal((await w.sup.apply(spec, 30000)).ok, true);
  const before = row(w.sup.ps(), "stuck")!;
  const hang = w.node.createClient("/stuck/hang", std_srvs.Trigger, { timeoutMs: 5000 });
  assert.ok(await hang.waitForService(10000));
  await hang.call({});
  const rows = await untilPs(
    w.sup,
    (rs) => {
      const x = row(rs, "stuck");
      return x !== undefined && x.state === "ready" && x.restarts === 1;
    },
    30000,
    "stuck restarted after hanging",
  );
  const x = row(rows, "stuck")!;
  assert.notEqual(x.pid, before.pid);
  assert.match(x.detail, /hung/);
  let gone = false;
  try {
    process.kill(before.pid, 0);
  } catch {
    gone = true;
  }
  assert.ok(gone, "the hung process was killed");
});

test(
  "rolling restart: one replica at a time, each after the previous is ready; the service keeps answering",
  { timeout: 60000 },
  async () => {
    await using w = await world();
    const spec = w.spec(`
nodes:
  svc:
    module: $FIXTURE
    replicas: 2
    env: { ORCH_EVENTS: $EVENTS, ORCH_READY_DELAY_MS: "300" }
`);
    assert.equal((await w.sup.apply(spec, 30000)).ok, true);
    const client = w.node.createClient("/svc/who", std_srvs.Trigger, { timeoutMs: 3000 });
    await client.waitForService(5000);
    let maxDown = 0;
    const watch = (): void => {
      const down = w.sup.ps().filter((r) => r.process === "svc" && r.state !== "ready").length;
      maxDown = Math.max(maxDown, down);
    };
    w.sup.on("change", watch);
    let calling = true;
    let answered = 0;
    let unanswered = 0;
    const calls = (async () => {
      while (calling) {
        // One retry: a call can reach a replica in the instant it closes.
        const ok = await client.call({}).then(
          () => true,
          () =>
            client.call({}).then(
              () => true,
              () => false,
            ),
        );
        if (ok) answered++;
        else unanswered++;
      }
    })();
    const t0 = events(w.eventsFile).length;
    const r = await w.sup.restart("svc", 30000);
    calling = false;
    await calls;
    w.sup.off("change", watch);
    assert.equal(r.ok, true, r.message);
    assert.equal(maxDown, 1, "never more than one replica down");
    // Replica 0 stopped, started and became ready before replica 1 stopped.
    const seq = events(w.eventsFile)
      .slice(t0)
      .map((e) => `${e.event}:${e.replica}`);
    assert.deepEqual(seq, ["stop:0", "start:0", "ready:0", "stop:1", "start:1", "ready:1"]);
    assert.ok(answered > 0);
    assert.equal(unanswered, 0, `calls unanswered during the restart: ${unanswered} (answered ${answered})`);
    const rows = w.sup.ps();
    assert.ok(rows.every((x) => x.state === "ready" && x.restarts === 1));
  },
);

test("scale at runtime: up starts new replicas, down stops the highest", { timeout: 60000 }, async () => {
  await using w = await world();
  const spec = w.spec(
    `
nodes:
  pool:
    module: $FIXTURE
    env: { ORCH_EVENTS: $EVENTS }
environments:
  big:
    nodes:
      pool: { replicas: 2 }
`,
    "big",
  );
  const applied = await w.sup.apply(spec, 30000);
  assert.equal(applied.ok, true, applied.message);
  assert.equal(w.sup.ps().length, 2);
  assert.equal((await w.sup.scale("pool", 3, 30000)).ok, true);
  assert.deepEqual(
    w.sup.ps().map((x) => `${x.replica}:${x.state}`),
    ["0:ready", "1:ready", "2:ready"],
  );
  // Each replica has a name of its own: pool, pool.1, pool.2.
  await w.node.waitForGraph(
    (g) => ["pool", "pool.1", "pool.2"].every((n) => g.nodes.some((x) => x.name === n)),
    10000,
  );
  const r = await w.sup.scale("pool", 1, 30000);
  assert.equal(r.ok, true, r.message);
  assert.deepEqual(
    w.sup.ps().map((x) => `${x.replica}:${x.state}`),
    ["0:ready"],
  );
  await assert.rejects(() => w.sup.scale("nope", 1), { code: "ERR_UNKNOWN_NODE" });
});

test(
  "a custom probe gates readiness; a live but unhealthy process is restarted",
  { timeout: 60000 },
  async () => {
    await using w = await world();
    const flag = join(w.dir, "healthy");
    const spec = w.spec(`
nodes:
  probed:
    command: [node, $FIXTURE]
    env: { ORCH_EVENTS: $EVENTS }
    readiness: probe
    health:
      probe: { command: [test, -e, ${flag}], intervalMs: 100, timeoutMs: 2000, failureThreshold: 2 }
`);
    await w.sup.apply(spec, 0);
    await untilPs(
      w.sup,
      (rs) => row(rs, "probed")?.state === "starting" && row(rs, "probed")!.pid > 0,
      20000,
      "started",
    );
    assert.equal(row(w.sup.ps(), "probed")!.state, "starting", "not ready while the probe fails");
    writeFileSync(flag, "");
    const ready = await untilPs(
      w.sup,
      (rs) => row(rs, "probed")?.state === "ready",
      20000,
      "ready once the probe passes",
    );
    const pid = row(ready, "probed")!.pid;
    assert.equal(row(ready, "probed")!.health, "healthy");
    rmSync(flag);
    const restarted = await untilPs(
      w.sup,
      (rs) =>
        row(rs, "probed")!.restarts === 1 && row(rs, "probed")!.pid !== pid && row(rs, "probed")!.pid > 0,
      20000,
      "restarted after the probe failed twice",
    );
    assert.match(row(restarted, "probed")!.detail, /unhealthy: probe command exited with 1/);
  },
);

test(
  "scaling one node of a composed process scales that node alone; the process scales as a whole",
  { timeout: 90000 },
  async () => {
    await using w = await world();
    const spec = w.spec(`
nodes:
  camera:
    module: $FIXTURE
    process: vision
    env: { ORCH_EVENTS: $EVENTS }
  detector:
    module: $FIXTURE
    process: vision
`);
    assert.equal((await w.sup.apply(spec, 30000)).ok, true);
    const r = await w.sup.scale("detector", 3, 30000);
    assert.equal(r.ok, true, r.message);
    assert.match(r.message, /detector scaled to 3: 1 in process vision, 2 in processes of its own/);
    assert.deepEqual(
      w.sup.ps().map((x) => `${x.process}#${x.replica}:${x.nodes.join(",")}:${x.state}`),
      ["vision#0:camera,detector:ready", "detector+#1:detector:ready", "detector+#2:detector:ready"],
    );
    // Three detectors, one camera: detector, detector.1, detector.2.
    const g = await w.node.waitForGraph(
      (x) => ["detector", "detector.1", "detector.2"].every((n) => x.nodes.some((y) => y.name === n)),
      10000,
    );
    assert.deepEqual(
      g.nodes.filter((n) => n.name.startsWith("camera")).map((n) => n.name),
      ["camera"],
      "no second camera",
    );
    await assert.rejects(
      () => w.sup.scale("detector", 0, 30000),
      (e: unknown) => /cannot have fewer than 1 replicas/.test((e as Error).message),
    );
    await assert.rejects(
      () => w.sup.scale("vision", 2, 30000),
      (e: unknown) => /scale it back first \(myelin scale detector\+=1\)/.test((e as Error).message),
    );
    const back = await w.sup.scale("detector", 1, 30000);
    assert.equal(back.ok, true, back.message);
    assert.deepEqual(
      w.sup.ps().map((x) => `${x.process}#${x.replica}`),
      ["vision#0"],
    );
    // With the scaled-out replicas gone, the process scales as a whole.
    assert.equal((await w.sup.scale("vision", 2, 30000)).ok, true);
    await w.node.waitForGraph(
      (x) => ["camera", "detector", "camera.1", "detector.1"].every((n) => x.nodes.some((y) => y.name === n)),
      10000,
    );
  },
);

test(
  "down then close at once leaves no state.json naming the stopped processes",
  { timeout: 60000 },
  async () => {
    await using w = await world();
    const spec = w.spec(`
nodes:
  worker:
    module: $FIXTURE
    env: { ORCH_EVENTS: $EVENTS }
    replicas: 2
`);
    const applied = await w.sup.apply(spec, 30000);
    assert.equal(applied.ok, true, applied.message);
    const stateFile = join(w.dir, "supervisor", "state.json");
    // The state is saved on the turn after a change: wait for it to name both replicas.
    await until(() => existsSync(stateFile) && readFileSync(stateFile, "utf8").includes('"worker"'), 10000);
    assert.equal(await w.sup.down(), 2);
    await w.sup.close();
    assert.equal(existsSync(stateFile), false, existsSync(stateFile) ? readFileSync(stateFile, "utf8") : "");
  },
);

test(
  "site-wide versions: an older spec is refused, the one held is a no-op, and the version outlives a restart of the supervisor",
  { timeout: 60000 },
  async () => {
    await using w = await world();
    const one = w.spec(`
version: 1
nodes:
  api:
    module: $FIXTURE
    env: { ORCH_EVENTS: $EVENTS }
`);
    assert.equal((await w.sup.apply(one, 30000, 1000)).ok, true);
    assert.equal(w.sup.version, 1000);
    const pid = row(w.sup.ps(), "api")!.pid;
    const two = w.spec(`
version: 1
nodes:
  other:
    module: $FIXTURE
    env: { ORCH_EVENTS: $EVENTS }
`);
    const stale = await w.sup.apply(two, 1000, 999);
    assert.equal(stale.ok, false);
    assert.match(stale.message, /apply of version 999 refused: host \S+ holds the newer version 1000/);
    const same = await w.sup.apply(two, 1000, 1000);
    assert.equal(same.ok, true);
    assert.deepEqual(
      w.sup.ps().map((r) => `${r.process}:${r.pid}`),
      [`api:${pid}`],
      "nothing changed",
    );
    // A down with a version keeps it (a host that missed the down gets it pushed): also on disk.
    assert.equal(await w.sup.down(0, 2000), 1);
    assert.equal(w.sup.version, 2000);
    await w.sup.close();
    const again = await Supervisor.start({ runtimeDir: w.dir, pollMs: 100 });
    try {
      assert.equal(again.version, 2000);
      assert.equal(again.spec, undefined);
      assert.equal((await again.apply(one, 1000, 1500)).ok, false);
    } finally {
      await again.close();
    }
  },
);
