/**
 * `myelin up`, `ps`, `logs`, `down` end to end with real processes: `up` starts the hub in the
 * background, the hub is killed with -9 and the next `up` starts a new one that adopts the running
 * processes (same pids, not started twice); a bad spec starts nothing; the systemd unit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "../src/tools/cli.js";
import { processRunning, type ProcessRow } from "../src/orchestrator/index.js";
import { procStartTime, sameProcess } from "../src/store/proc-stat.js";
import { fixture, tempRuntime } from "./helpers.js";

const BIN = fileURLToPath(new URL("../../bin/myelin", import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function myelin(args: string[], dir: string, timeoutMs = 60000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        env: { ...process.env, MYELIN_RUNTIME_DIR: dir, MYELIN_DATA_DIR: join(dir, "data") },
        timeout: timeoutMs,
        killSignal: "SIGKILL",
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A zombie (exited, parent gone, not reaped yet) counts as gone. */
const alive = (pid: number): boolean => processRunning(pid);

function hubPid(dir: string): number {
  const f = join(dir, "hub.pid");
  return existsSync(f) ? Number(readFileSync(f, "utf8").trim()) : 0;
}

/**
 * Kills (SIGKILL, by pid) every hub and supervised process this test started: the pids it saw, the
 * hub's pid file, the supervisor's state file and the fixtures' event log.
 */
function killAll(dir: string, seen: Iterable<number>): void {
  const pids = new Set(seen);
  pids.add(hubPid(dir));
  try {
    const state = JSON.parse(readFileSync(join(dir, "supervisor", "state.json"), "utf8")) as {
      instances: { pid: number }[];
    };
    for (const i of state.instances) pids.add(i.pid);
  } catch {
    // no state
  }
  try {
    for (const l of readFileSync(join(dir, "events.jsonl"), "utf8").split("\n"))
      if (l !== "") pids.add((JSON.parse(l) as { pid: number }).pid);
  } catch {
    // no events
  }
  for (const pid of pids) {
    if (pid <= 0) continue;
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

/** Start times of the pids a test saw, so a pid the kernel hands to a new process is not taken for the old one. */
const startTimes = new Map<number, string | undefined>();
function remember(pid: number): number {
  if (!startTimes.has(pid)) startTimes.set(pid, procStartTime(pid));
  return pid;
}

/** Resolves once `pid` is gone (it is not our child: there is no exit event to wait on). */
async function gone(pid: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (alive(pid) && sameProcess(pid, startTimes.get(pid))) {
    if (Date.now() > end) throw new Error(`pid ${pid} still alive after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test(
  "myelin up starts the hub and the system; after kill -9 of the hub, up adopts the processes; down stops all",
  { timeout: 90000 },
  async () => {
    using rt = tempRuntime();
    const dir = rt.dir;
    const events = join(dir, "events.jsonl");
    const spec = join(dir, "myelin.yaml");
    writeFileSync(
      spec,
      `nodes:
  app:
    module: ${fixture("orch-node")}
    env: { ORCH_EVENTS: ${events} }
  side:
    command: [node, ${fixture("orch-node")}]
    dependsOn: [app]
    env: { ORCH_EVENTS: ${events} }
`,
    );
    const pids = new Set<number>();
    try {
      const up = await myelin(["up", spec, "--json", "--wait-ms", "30000"], dir);
      pids.add(hubPid(dir));
      assert.equal(up.code, 0, up.stderr);
      assert.match(up.stderr, /started the hub in the background/);
      const rows = JSON.parse(up.stdout) as ProcessRow[];
      for (const r of rows) pids.add(remember(r.pid));
      assert.deepEqual(
        rows.map((r) => `${r.process}:${r.state}`),
        ["app:ready", "side:ready"],
      );

      const ps = await myelin(["ps"], dir);
      assert.equal(ps.code, 0, ps.stderr);
      assert.match(ps.stdout, /^NODE\s+REPLICA\s+STATE\s+PID\s+RESTARTS\s+UPTIME\s+CPU\s+MEM\s+HEALTH/);
      assert.match(ps.stdout, /\napp\s+0\s+ready\s+\d+\s+0\s/);

      const logs = await myelin(["logs", "app"], dir);
      assert.equal(logs.code, 0, logs.stderr);
      assert.match(logs.stdout, /\[app#0\] hello from app#0/);

      // The hub dies; the processes it launched keep running.
      const hub1 = remember(hubPid(dir));
      process.kill(hub1, "SIGKILL");
      await gone(hub1, 10000);
      for (const r of rows) assert.ok(alive(r.pid), `${r.process} survived the hub`);

      // The next `up` starts a hub that adopts them instead of starting them twice.
      const up2 = await myelin(["up", spec, "--json", "--wait-ms", "30000"], dir);
      pids.add(hubPid(dir));
      assert.equal(up2.code, 0, up2.stderr);
      const rows2 = JSON.parse(up2.stdout) as ProcessRow[];
      assert.deepEqual(
        rows2.map((r) => [r.process, r.state, r.pid, r.adopted]),
        rows.map((r) => [r.process, "ready", r.pid, true]),
      );
      const starts = readFileSync(events, "utf8")
        .split("\n")
        .filter((l) => l.includes('"start"'));
      assert.equal(starts.length, 2, starts.join("\n"));

      const hub2 = remember(hubPid(dir));
      const down = await myelin(["down"], dir);
      assert.equal(down.code, 0, down.stderr);
      assert.match(down.stderr, /stopped 2 processes/);
      assert.match(down.stderr, /hub stopped/);
      // Generous bounds: on a loaded machine a hub can take seconds to close its sockets and store.
      for (const r of rows) await gone(r.pid, 30000);
      await gone(hub2, 30000);
      // Reverse order: side stopped before app.
      const stops = readFileSync(events, "utf8")
        .split("\n")
        .filter((l) => l.includes('"stop"'))
        .map((l) => (JSON.parse(l) as { name: string }).name);
      const hubLog = join(dir, "hub.log");
      assert.deepEqual(
        stops,
        ["side", "app"],
        readFileSync(events, "utf8") + (existsSync(hubLog) ? readFileSync(hubLog, "utf8") : ""),
      );
    } finally {
      killAll(dir, pids);
    }
  },
);

test(
  "myelin up with a bad spec names file, line, column and field, and starts nothing",
  { timeout: 30000 },
  async () => {
    using rt = tempRuntime();
    const spec = join(rt.dir, "bad.yaml");
    writeFileSync(
      spec,
      `nodes:\n  a:\n    command: [node, a.js]\n    dependsOn: [b]\n  b:\n    command: [node, b.js]\n    dependsOn: [a]\n`,
    );
    const r = await myelin(["up", spec], rt.dir);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `${spec.replaceAll("/", "\\/")}:4:17: nodes\\.a\\.dependsOn\\[0\\]: dependency cycle: a → b → a`,
      ),
    );
    assert.match(r.stderr, /\[ERR_SPEC\]/);
    assert.equal(existsSync(join(rt.dir, "hub.pid")), false, "no hub was started");
    const check = await myelin(
      [
        "up",
        join(fileURLToPath(new URL("../../conformance/launch/good/full.yaml", import.meta.url))),
        "--check",
      ],
      rt.dir,
    );
    assert.equal(check.code, 0, check.stderr);
    assert.match(
      check.stdout,
      /valid; 4 process definitions, 6 processes in this order: db, vision, api, probe-http/,
    );
  },
);

test("myelin hub --systemd-unit prints a unit with Restart, a watchdog and KillMode=process", async () => {
  const out: string[] = [];
  const code = await main(["hub", "--systemd-unit", "--label", "edge"], {
    out: (l) => out.push(l),
    err: () => {},
  });
  assert.equal(code, 0);
  const unit = out.join("\n");
  for (const line of ["Type=notify", "Restart=always", "WatchdogSec=10", "KillMode=process", "[Install]"])
    assert.ok(unit.includes(line), `${line} in\n${unit}`);
  assert.match(unit, /^ExecStart=\S+node\S* \S+bin\/myelin hub --label edge$/m);
});

test("myelin hub --systemd-unit refuses to copy a token into the unit file, naming the fix", async () => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    ["hub", "--systemd-unit", "--foxglove-port", "8765", "--foxglove-token", "s3cret-token-value"],
    { out: (l) => out.push(l), err: (l) => err.push(l) },
  );
  assert.equal(code, 2);
  assert.equal(out.join("\n").includes("s3cret-token-value"), false, "the token was printed");
  assert.match(err.join("\n"), /--foxglove-token into the unit file.*tokenFile/s);
});
