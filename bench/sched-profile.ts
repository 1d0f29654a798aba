/**
 * Where a loaded machine's throughput goes: a publisher and a subscriber node in two child
 * processes, sending as the bench's throughput sender does (`await publish()`, a `setImmediate`
 * every 5 ms), over the `ipc://` carrier of this process's `MYELIN_IPC_TRANSPORT`. Each child
 * reports, over the measured stretch, its CPU per message (`process.cpuUsage()`, every thread)
 * and its main thread's scheduler figures from `/proc/self/schedstat` (Linux): time on a CPU, time
 * runnable but waiting for one, and the number of times it was scheduled.
 *
 *   node dist/bench/sched-profile.js [--size BYTES] [--duration-ms MS] [--runs N]
 *
 * Run it alternately with `MYELIN_IPC_TRANSPORT=unix` and `=zeromq`: with the same CPU per
 * message, the carrier whose main threads wait less for a CPU moves more messages.
 */
import { fork } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { defineMessage, t } from "../src/msgs/index.js";

const USAGE = `usage: node dist/bench/sched-profile.js [--size BYTES] [--duration-ms MS] [--runs N]
  example: MYELIN_IPC_TRANSPORT=unix node dist/bench/sched-profile.js --size 64 --runs 3`;

const Bytes = defineMessage("myelin_bench/Bytes", { data: t.bytes() });
const WARMUP = 2000;
/** First payload byte of the last message. */
const END = 9;

/** What a child reports over its measured stretch. */
interface Report {
  messages: number;
  elapsedMs: number;
  cpuUs: number;
  /** Main thread: on a CPU, waiting for one (ms), times scheduled. */
  runMs: number;
  waitMs: number;
  slices: number;
}

const hr = (): bigint => process.hrtime.bigint();

/** The main thread's [on CPU ns, runnable-waiting ns, times scheduled]; zeros where unsupported. */
function schedstat(): number[] {
  try {
    return readFileSync("/proc/self/schedstat", "utf8").trim().split(" ").map(Number);
  } catch {
    return [0, 0, 0];
  }
}

function report(messages: number, ns: bigint, c0: NodeJS.CpuUsage, s0: number[]): Report {
  const c = process.cpuUsage(c0);
  const s = schedstat();
  return {
    messages,
    elapsedMs: Number(ns) / 1e6,
    cpuUs: (c.user + c.system) / messages,
    runMs: (s[0]! - s0[0]!) / 1e6,
    waitMs: (s[1]! - s0[1]!) / 1e6,
    slices: s[2]! - s0[2]!,
  };
}

async function child(role: string, size: number, durationMs: number): Promise<void> {
  process.on("message", (m) => {
    if (m === "exit") process.exit(0);
  });
  const node = await createNode({ name: `sched_${role}` });
  if (role === "rx") {
    let n = 0;
    let t0 = 0n;
    let c0 = process.cpuUsage();
    let s0 = schedstat();
    await node.createSubscription("/bench/sched", Bytes, (m) => {
      if (n++ === 0) {
        t0 = hr();
        c0 = process.cpuUsage();
        s0 = schedstat();
      }
      if (m.data[0] === END) process.send?.(report(n, hr() - t0, c0, s0));
    });
    process.send?.("ready");
    return;
  }
  const pub = await node.createPublisher("/bench/sched", Bytes);
  await pub.waitForSubscribers(1, 10000);
  const msg = { data: Buffer.alloc(size, 1) };
  for (let i = 0; i < WARMUP; i++) await pub.publish(msg);
  const mask = size >= 4096 ? 15 : 1023;
  const c0 = process.cpuUsage();
  const s0 = schedstat();
  const t0 = hr();
  const deadline = t0 + BigInt(durationMs) * 1_000_000n;
  let lastYield = t0;
  let sent = 0;
  for (;;) {
    await pub.publish(msg);
    sent++;
    if ((sent & mask) === 0) {
      const b = hr();
      if (b >= deadline) break;
      if (b - lastYield > 5_000_000n) {
        await new Promise((r) => setImmediate(r));
        lastYield = hr();
      }
    }
  }
  const r = report(sent, hr() - t0, c0, s0);
  await pub.publish({ data: Buffer.alloc(size, END) });
  process.send?.(r);
}

function answer<T>(
  p: ReturnType<typeof fork>,
  accept: (m: unknown) => m is T,
  timeoutMs: number,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no answer from a worker within ${timeoutMs} ms`)),
      timeoutMs,
    );
    p.on("message", (m) => {
      if (!accept(m)) return;
      clearTimeout(timer);
      resolve(m);
    });
    p.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`a worker exited (${code}) before answering`));
    });
  });
}

async function once(size: number, durationMs: number): Promise<{ tx: Report; rx: Report }> {
  const dir = mkdtempSync(`${os.tmpdir()}/myelin-sched-`);
  const hub = await Hub.start({ runtimeDir: dir });
  const me = fileURLToPath(import.meta.url);
  const args = ["--size", String(size), "--duration-ms", String(durationMs)];
  const env = { ...process.env, MYELIN_RUNTIME_DIR: dir };
  const kids: ReturnType<typeof fork>[] = [];
  const isReport = (m: unknown): m is Report => typeof m === "object" && m !== null && "cpuUs" in m;
  try {
    const rx = fork(me, [...args, "--role", "rx"], { env });
    kids.push(rx);
    const rxReport = answer(rx, isReport, durationMs + 60000);
    await answer(rx, (m): m is "ready" => m === "ready", 30000);
    const tx = fork(me, [...args, "--role", "tx"], { env });
    kids.push(tx);
    const [txr, rxr] = await Promise.all([answer(tx, isReport, durationMs + 60000), rxReport]);
    return { tx: txr, rx: rxr };
  } finally {
    for (const k of kids) {
      k.send("exit");
      setTimeout(() => k.kill("SIGKILL"), 2000).unref();
    }
    hub.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function line(who: string, r: Report): string {
  const rate = r.messages / (r.elapsedMs / 1000);
  return (
    `${who} ${(rate / 1000).toFixed(0)}k msg/s, ${r.cpuUs.toFixed(2)} µs/msg CPU, main thread on CPU ` +
    `${r.runMs.toFixed(0)} ms, waiting for a CPU ${r.waitMs.toFixed(0)} ms, scheduled ${r.slices}×`
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: "string" },
      "duration-ms": { type: "string" },
      runs: { type: "string" },
      role: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const size = Number(values.size ?? 64);
  const durationMs = Number(values["duration-ms"] ?? 1500);
  const runs = Number(values.runs ?? 1);
  if (!Number.isInteger(size) || size < 1 || size > 60000) throw new Error("--size must be 1 to 60000 bytes");
  if (!Number.isInteger(durationMs) || durationMs < 100) throw new Error("--duration-ms must be >= 100");
  if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs must be an integer >= 1");
  if (values.role !== undefined) return child(values.role, size, durationMs);
  const carrier = process.env["MYELIN_IPC_TRANSPORT"] || "default";
  for (let i = 0; i < runs; i++) {
    const r = await once(size, durationMs);
    console.log(`${carrier} ${size} B, load average ${os.loadavg()[0]!.toFixed(1)}`);
    console.log(`  ${line("publisher ", r.tx)}`);
    console.log(`  ${line("subscriber", r.rx)}`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
