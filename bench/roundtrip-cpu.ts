/**
 * CPU time per round trip, the figure that stays steady on a loaded machine: a pinger node
 * publishes 64 B on `/ping` and waits for the echo node's `/pong`, one message in flight, over the
 * `ipc://` carrier of this process's `MYELIN_IPC_TRANSPORT`; each child reports
 * `process.cpuUsage()` over the measured round trips, the pinger also the p50 and p99. `--raw`
 * measures the same ping-pong over a bare Unix socket (68-byte writes echoed back) for reference.
 *
 *   node dist/bench/roundtrip-cpu.js [--count N] [--raw]
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { defineMessage, t } from "../src/msgs/index.js";

const USAGE = `usage: node dist/bench/roundtrip-cpu.js [--count N] [--raw]
  example: MYELIN_IPC_TRANSPORT=unix node dist/bench/roundtrip-cpu.js --count 20000`;

const Bytes = defineMessage("myelin_bench/Bytes", { data: t.bytes() });
const WARMUP = 3000;

interface PingResult {
  p50: number;
  p99: number;
  cpuUs: number;
}

function cpuSince(c0: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(c0);
  return c.user + c.system;
}

function onceMessage<T>(p: NodeJS.Process | ReturnType<typeof fork>): Promise<T> {
  return new Promise((resolve) => p.once("message", (m) => resolve(m as T)));
}

async function echo(raw: boolean, sockPath: string): Promise<void> {
  let c0: NodeJS.CpuUsage | undefined;
  if (raw) {
    const server = net.createServer((s) => {
      s.on("data", (d) => {
        c0 ??= process.cpuUsage();
        s.write(d);
      });
    });
    await new Promise<void>((resolve) => server.listen(sockPath, resolve));
  } else {
    const n = await createNode({ name: "rt_echo" });
    const pub = await n.createPublisher("/bench/pong", Bytes);
    await n.createSubscription("/bench/ping", Bytes, (m) => {
      if (m.data[0] === 1) c0 ??= process.cpuUsage();
      void pub.publish({ data: m.data.slice() });
    });
  }
  process.send!("ready");
  await onceMessage(process);
  process.send!(c0 === undefined ? 0 : cpuSince(c0));
  await onceMessage(process);
  process.exit(0);
}

async function ping(raw: boolean, sockPath: string, count: number): Promise<void> {
  let wake: (() => void) | null = null;
  const back = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  let send: (data: Uint8Array) => unknown;
  if (raw) {
    const s = net.connect(sockPath);
    await new Promise((resolve) => s.once("connect", resolve));
    s.on("data", back);
    send = (d) => s.write(d);
  } else {
    const n = await createNode({ name: "rt_ping" });
    const pub = await n.createPublisher("/bench/ping", Bytes);
    await n.createSubscription("/bench/pong", Bytes, back);
    send = (d) => pub.publish({ data: d });
  }
  const warm = new Uint8Array(raw ? 68 : 64);
  const data = new Uint8Array(raw ? 68 : 64);
  data[0] = 1;
  // Until the first echo: the subscriptions need discovery.
  for (;;) {
    const got = new Promise<boolean>((resolve) => {
      wake = () => resolve(true);
      setTimeout(() => resolve(false), 50);
    });
    await send(warm);
    if (await got) break;
  }
  const once = async (d: Uint8Array): Promise<void> => {
    const got = new Promise<void>((resolve) => (wake = resolve));
    await send(d);
    await got;
  };
  for (let i = 0; i < WARMUP; i++) await once(warm);
  const samples = new Float64Array(count);
  const c0 = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await once(data);
    samples[i] = (performance.now() - t0) * 1000;
  }
  const cpuUs = cpuSince(c0) / count;
  samples.sort();
  const r: PingResult = { p50: samples[count >> 1]!, p99: samples[Math.floor(count * 0.99)]!, cpuUs };
  process.send!(r);
  await onceMessage(process);
  process.exit(0);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: "string", default: "20000" },
      raw: { type: "boolean", default: false },
      role: { type: "string" },
      sock: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 100) throw new Error(`--count must be an integer ≥ 100\n${USAGE}`);
  const raw = values.raw;
  if (values.role === "echo") return echo(raw, values.sock!);
  if (values.role === "ping") return ping(raw, values.sock!, count);

  const dir = mkdtempSync(path.join(os.tmpdir(), "myelin-rt-cpu-"));
  const sockPath = path.join(dir, "raw.sock");
  const hub = raw ? undefined : await Hub.start({ runtimeDir: dir });
  const self = fileURLToPath(import.meta.url);
  const env = { ...process.env, MYELIN_RUNTIME_DIR: dir };
  const args = (role: string): string[] => [
    "--role",
    role,
    "--sock",
    sockPath,
    "--count",
    String(count),
    ...(raw ? ["--raw"] : []),
  ];
  try {
    const e = fork(self, args("echo"), { env });
    await onceMessage(e);
    const p = fork(self, args("ping"), { env });
    const r = await onceMessage<PingResult>(p);
    e.send("cpu");
    const echoCpu = (await onceMessage<number>(e)) / count;
    p.send("exit");
    e.send("exit");
    const carrier = raw
      ? "raw Unix socket"
      : `Myelin over ${process.env["MYELIN_IPC_TRANSPORT"] || "zeromq"}`;
    console.log(
      `${carrier}: p50 ${r.p50.toFixed(1)} µs, p99 ${r.p99.toFixed(1)} µs; CPU per round trip: pinger ${r.cpuUs.toFixed(2)} µs, echo ${echoCpu.toFixed(2)} µs; load average ${os.loadavg()[0]!.toFixed(1)}`,
    );
  } finally {
    hub?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
