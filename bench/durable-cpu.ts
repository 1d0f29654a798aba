/**
 * CPU time per message of durable topics, client and store, for one or more builds alternated run
 * by run: confirmed publishes (64 B, 1,000 in flight, fsync `always`), then a durable consumer
 * reading them with an ack each (`maxInFlight` 1000). Each run starts a fresh store process (hub +
 * store service) and the clients of `durable-worker.js`; the store's CPU over each phase comes from
 * `process.cpuUsage()` in the store process, the clients' from the workers.
 *
 *   node dist/bench/durable-cpu.js [--count N] [--rounds N] [LABEL=DIST_DIR ...]
 *
 * Each `LABEL=DIST_DIR` names a build's dist directory (its `bench/durable-worker.js` is used); by
 * default this build alone. Before/after: `base=/tmp/base/dist after=dist`.
 */
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { expectMessage } from "./worker-ipc.js";

const USAGE = `usage: node dist/bench/durable-cpu.js [--count N] [--rounds N] [LABEL=DIST_DIR ...]
  example: node dist/bench/durable-cpu.js --count 150000 --rounds 3 base=/tmp/base/dist after=dist`;

interface WorkerResult {
  rate: number;
  cpuUsPerMsg: number;
}

const expect = <T>(child: ChildProcess, type: string, timeoutMs = 180000): Promise<T> =>
  expectMessage<T>(child, type, timeoutMs, "durable worker");

function loadAverage(): string {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ");
  }
}

async function oneRun(worker: string, count: number): Promise<string> {
  const dir = mkdtempSync(join(os.tmpdir(), "mb-durable-cpu-"));
  const start = (role: object): ChildProcess =>
    fork(worker, [JSON.stringify(role)], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  const store = start({ role: "store", dir, fsync: "always", batchMs: 5 });
  const cpu = async (): Promise<number> => {
    const p = expect<{ us: number }>(store, "cpu");
    store.send("cpu");
    return (await p).us;
  };
  try {
    await expect(store, "ready", 30000);
    const c0 = await cpu();
    const pw = start({ role: "myelin-pub", dir, topic: "/bench", count, size: 64, inflight: 1000 });
    const pub = await expect<WorkerResult>(pw, "result").finally(() => pw.kill("SIGKILL"));
    const c1 = await cpu();
    const cw = start({ role: "myelin-consume", dir, topic: "/bench", count: count + 1, maxInFlight: 1000 });
    const con = await expect<WorkerResult>(cw, "result").finally(() => cw.kill("SIGKILL"));
    const c2 = await cpu();
    const k = (x: number): string => `${(x / 1000).toFixed(1)}k/s`;
    const us = (x: number): string => `${x.toFixed(2)} µs`;
    return (
      `publish ${k(pub.rate)}, CPU/msg client ${us(pub.cpuUsPerMsg)} store ${us((c1 - c0) / count)} | ` +
      `consume ${k(con.rate)}, CPU/msg client ${us(con.cpuUsPerMsg)} store ${us((c2 - c1) / count)}`
    );
  } finally {
    store.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { count: { type: "string", default: "150000" }, rounds: { type: "string", default: "1" } },
    allowPositionals: true,
  });
  const count = Number(values.count);
  const rounds = Number(values.rounds);
  const builds = (
    positionals.length > 0 ? positionals : [`this=${fileURLToPath(new URL("..", import.meta.url))}`]
  ).map((p) => {
    const at = p.indexOf("=");
    if (at <= 0) throw new Error(`${p}: give builds as LABEL=DIST_DIR\n${USAGE}`);
    return { label: p.slice(0, at), worker: join(p.slice(at + 1), "bench", "durable-worker.js") };
  });
  if (!(Number.isInteger(count) && count > 0 && Number.isInteger(rounds) && rounds > 0)) {
    throw new Error(`--count and --rounds are positive integers\n${USAGE}`);
  }
  for (let r = 1; r <= rounds; r++) {
    for (const b of builds) {
      const load = loadAverage();
      console.log(`${b.label} run ${r} (load ${load}): ${await oneRun(b.worker, count)}`);
    }
  }
  // Keep the git revision next to the figures when run from a checkout.
  try {
    console.log(`this checkout: ${execFileSync("git", ["rev-parse", "--short", "HEAD"]).toString().trim()}`);
  } catch {
    // not a checkout
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
