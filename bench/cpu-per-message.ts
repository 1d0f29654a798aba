/**
 * CPU time per message of a publisher and a subscriber process: the figure that stays steady on a
 * loaded machine, where wall-clock rates swing several-fold. A hub in this process, a subscriber
 * and a publisher node in two child processes, a reliable topic over `ipc://`, validation on
 * receive; each child reports `process.cpuUsage()` over the measured messages.
 *
 *   node dist/bench/cpu-per-message.js [--count N] [--type bytes|twist] [--bytes N] [--try] [--runs N]
 *
 * `--type bytes` publishes `{ data: 64 B }` (`--bytes` other sizes), `twist` a geometry_msgs/Twist; `--try` publishes with
 * `tryPublish()` (awaiting `ready()` on backpressure) instead of `await publish()`. The publisher
 * counts after 2,000 warm-up messages, the subscriber from its first message.
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { defineMessage, geometry_msgs, t, type MessageType } from "../src/msgs/index.js";

const USAGE = `usage: node dist/bench/cpu-per-message.js [--count N] [--type bytes|twist] [--bytes N] [--try] [--runs N]
  example: node dist/bench/cpu-per-message.js --count 600000 --type twist --runs 3
           node dist/bench/cpu-per-message.js --count 200000 --bytes 4096`;

const Bytes = defineMessage("myelin_bench/Bytes", { data: t.bytes() });
const WARMUP = 2000;

interface Result {
  cpuUs: number;
  rate: number;
}

function typeOf(name: string): MessageType<unknown> {
  return name === "twist" ? geometry_msgs.Twist : Bytes;
}

function sample(name: string, bytes: number): unknown {
  return name === "twist"
    ? { linear: { x: 1, y: 2, z: 3 }, angular: { x: 4, y: 5, z: 6 } }
    : { data: new Uint8Array(bytes) };
}

async function child(
  role: string,
  count: number,
  type: string,
  bytes: number,
  tryPublish: boolean,
): Promise<void> {
  process.on("message", (m) => {
    if (m === "exit") process.exit(0);
  });
  const node = await createNode({ name: `cpu_${role}` });
  const T = typeOf(type);
  if (role === "rx") {
    let n = 0;
    let c0 = process.cpuUsage();
    let t0 = 0;
    await node.createSubscription("/bench/cpu", T, () => {
      if (n === 0) {
        c0 = process.cpuUsage();
        t0 = performance.now();
      }
      if (++n === count) {
        const c = process.cpuUsage(c0);
        const r: Result = {
          cpuUs: (c.user + c.system) / (n - 1),
          rate: n / ((performance.now() - t0) / 1000),
        };
        process.send?.(r);
      }
    });
    process.send?.("ready");
    return;
  }
  const pub = await node.createPublisher("/bench/cpu", T);
  await pub.waitForSubscribers(1, 10000);
  const m = sample(type, bytes);
  for (let i = 0; i < WARMUP; i++) await pub.publish(m);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  if (tryPublish) {
    for (let i = WARMUP; i < count;) {
      if (pub.tryPublish(m)) i++;
      else await pub.ready();
    }
  } else {
    for (let i = WARMUP; i < count; i++) await pub.publish(m);
  }
  const c = process.cpuUsage(c0);
  const r: Result = {
    cpuUs: (c.user + c.system) / (count - WARMUP),
    rate: (count - WARMUP) / ((performance.now() - t0) / 1000),
  };
  process.send?.(r);
}

function message<T>(
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

async function once(
  count: number,
  type: string,
  bytes: number,
  tryPublish: boolean,
): Promise<{ tx: Result; rx: Result }> {
  const dir = mkdtempSync(`${os.tmpdir()}/myelin-cpu-`);
  const hub = await Hub.start({ runtimeDir: dir });
  const me = fileURLToPath(import.meta.url);
  const args = [
    "--count",
    String(count),
    "--type",
    type,
    "--bytes",
    String(bytes),
    ...(tryPublish ? ["--try"] : []),
  ];
  const env = { ...process.env, MYELIN_RUNTIME_DIR: dir };
  const kids: ReturnType<typeof fork>[] = [];
  try {
    const isResult = (m: unknown): m is Result => typeof m === "object" && m !== null && "cpuUs" in m;
    const rx = fork(me, [...args, "--role", "rx"], { env });
    kids.push(rx);
    const rxResult = message(rx, isResult, 300000);
    await message(rx, (m): m is "ready" => m === "ready", 30000);
    const tx = fork(me, [...args, "--role", "tx"], { env });
    kids.push(tx);
    const [txr, rxr] = await Promise.all([message(tx, isResult, 300000), rxResult]);
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: "string" },
      type: { type: "string" },
      bytes: { type: "string" },
      try: { type: "boolean", default: false },
      runs: { type: "string" },
      role: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const count = Number(values.count ?? 600000);
  const type = values.type ?? "bytes";
  const runs = Number(values.runs ?? 1);
  const bytes = Number(values.bytes ?? 64);
  if (!Number.isInteger(count) || count <= WARMUP * 2)
    throw new Error(`--count must be an integer > ${WARMUP * 2}`);
  if (type !== "bytes" && type !== "twist") throw new Error(`--type must be bytes or twist, got "${type}"`);
  if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs must be an integer >= 1");
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > 16383)
    throw new Error(
      `--bytes must be an integer from 0 to 16383 (larger travels as a blob), got ${values.bytes}`,
    );
  if (values.role !== undefined) return child(values.role, count, type, bytes, values.try);
  for (let i = 0; i < runs; i++) {
    const r = await once(count, type, bytes, values.try);
    console.log(
      `${type === "bytes" ? `${bytes} B` : type} ${values.try ? "tryPublish" : "await publish"}: publisher ${r.tx.cpuUs.toFixed(3)} µs/msg CPU ` +
        `(${Math.round(r.tx.rate)} msg/s), subscriber ${r.rx.cpuUs.toFixed(3)} µs/msg CPU ` +
        `(${Math.round(r.rx.rate)} msg/s), load average ${os.loadavg()[0]!.toFixed(1)}`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
