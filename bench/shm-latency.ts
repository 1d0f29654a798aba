/**
 * Round trip of large frames written in place: `node dist/bench/shm-latency.js [--sizes 4096,...]
 * [--duration-ms MS] [--runs N] [--json FILE]`.
 *
 * Two Myelin node processes play ping-pong on two reliable topics over ipc://. Each side fills a
 * buffer from `pub.loan(size)` (only the tag byte is written: the producer of a camera frame
 * writes it in place, and this measures what carrying it costs, not producing it) and the other
 * side reads it in the callback. Frames of 64 KiB and more go through shared memory, so only a
 * descriptor crosses the socket; with `MYELIN_SHM=off` in the environment the same run copies
 * every frame over the socket instead. Reports p50/p99 per size and the ratio to the smallest.
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Hub } from "../src/hub/index.js";
import { createNode } from "../src/node/index.js";
import { defineMessage, t } from "../src/msgs/index.js";
import { shmStats } from "../src/transport/shm/shm-stats.js";
import { percentileSorted, sortedCopy } from "./stats.js";

const Frame = defineMessage("myelin_bench/Frame", { data: t.bytes() });
const hr = (): bigint => process.hrtime.bigint();

interface Row {
  size: number;
  p50Us: number;
  p99Us: number;
  roundTrips: number;
  descriptors: number;
}

/** The echo side: answers each ping with a pong of the same size, written into a loan. */
async function echo(): Promise<void> {
  const node = await createNode({ name: `shm_echo_${process.pid}` });
  const sizes = (process.env["SHM_BENCH_SIZES"] ?? "").split(",").map(Number);
  for (const size of sizes) {
    const pong = await node.createPublisher(`/bench/pong/${size}`, Frame);
    await node.createSubscription(`/bench/ping/${size}`, Frame, (m) => {
      const b = pong.loan(size);
      b[0] = m.data[0]!;
      void pong.publish({ data: b });
    });
  }
  process.send!({ ready: true });
  process.on("message", (m: { stop?: boolean }) => {
    if (m.stop === true) void node.close().then(() => process.exit(0));
  });
}

async function client(sizes: number[], durationMs: number): Promise<Row[]> {
  const node = await createNode({ name: `shm_client_${process.pid}` });
  const rows: Row[] = [];
  try {
    for (const size of sizes) {
      const ping = await node.createPublisher(`/bench/ping/${size}`, Frame);
      let waiter: (() => void) | null = null;
      await node.createSubscription(`/bench/pong/${size}`, Frame, () => {
        const w = waiter;
        waiter = null;
        w?.();
      });
      await ping.waitForSubscribers(1, 20000);
      const once = async (tag: number): Promise<void> => {
        const back = new Promise<void>((r) => (waiter = r));
        const b = ping.loan(size);
        b[0] = tag;
        await ping.publish({ data: b });
        await back;
      };
      // The pong subscription reaches the echo's publisher on its own schedule: ping until one returns.
      for (;;) {
        const back = new Promise<boolean>((r) => {
          waiter = () => r(true);
          setTimeout(() => r(false), 200);
        });
        const b = ping.loan(size);
        b[0] = 1;
        await ping.publish({ data: b });
        if (await back) break;
      }
      const warmUntil = hr() + BigInt(Math.min(300, durationMs / 5)) * 1_000_000n;
      while (hr() < warmUntil) await once(1);
      const before = shmStats().reader.descriptorsReceived;
      const samples: number[] = [];
      const deadline = hr() + BigInt(durationMs) * 1_000_000n;
      for (;;) {
        const a = hr();
        await once(0);
        const b = hr();
        samples.push(Number(b - a) / 1000);
        if (b >= deadline) break;
      }
      const sorted = sortedCopy(samples);
      rows.push({
        size,
        p50Us: percentileSorted(sorted, 0.5),
        p99Us: percentileSorted(sorted, 0.99),
        roundTrips: samples.length,
        descriptors: shmStats().reader.descriptorsReceived - before,
      });
    }
  } finally {
    await node.close();
  }
  return rows;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: "string", default: "4096,65536,1048576,8388608" },
      "duration-ms": { type: "string", default: "1500" },
      runs: { type: "string", default: "3" },
      json: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(
      "usage: node dist/bench/shm-latency.js [--sizes 4096,65536,1048576,8388608] [--duration-ms 1500] [--runs 3] [--json FILE]\n" +
        "  MYELIN_SHM=off node dist/bench/shm-latency.js   # the same, frames copied over the socket",
    );
    return;
  }
  const sizes = values.sizes.split(",").map(Number);
  if (sizes.some((s) => !Number.isInteger(s) || s < 1))
    throw new Error(`--sizes must be byte counts, got ${values.sizes}`);
  const durationMs = Number(values["duration-ms"]);
  const runs = Number(values.runs);
  const dir = mkdtempSync(path.join(os.tmpdir(), "myelin-shm-bench-"));
  process.env["MYELIN_RUNTIME_DIR"] = dir;
  const hub = await Hub.start({ runtimeDir: dir });
  const all: Row[][] = [];
  try {
    for (let r = 0; r < runs; r++) {
      const child = fork(fileURLToPath(import.meta.url), ["--echo"], {
        env: { ...process.env, SHM_BENCH_SIZES: sizes.join(",") },
      });
      try {
        await new Promise<void>((resolve, reject) => {
          child.once("message", () => resolve());
          child.once("exit", (code) => reject(new Error(`echo process exited (${code})`)));
        });
        all.push(await client(sizes, durationMs));
      } finally {
        child.send({ stop: true });
        const t = setTimeout(() => child.kill("SIGKILL"), 3000);
        await new Promise((r) => child.once("exit", r));
        clearTimeout(t);
      }
    }
  } finally {
    hub.close();
    rmSync(dir, { recursive: true, force: true });
  }
  // Per size, the run with the median p50.
  const rows = sizes.map((_, i) => {
    const per = all.map((run) => run[i]!).sort((a, b) => a.p50Us - b.p50Us);
    return per[Math.floor(per.length / 2)]!;
  });
  const base = rows[0]!.p50Us;
  const shm = shmStats();
  console.log(
    `shared memory: ${shm.available ? "on" : `off (${shm.detail})`}; median of ${runs} run(s) of ${durationMs} ms; load ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  console.log("size       p50 µs    p99 µs   round trips  by descriptor  p50 / smallest");
  for (const r of rows) {
    console.log(
      `${String(r.size).padEnd(9)} ${r.p50Us.toFixed(1).padStart(8)} ${r.p99Us.toFixed(1).padStart(9)} ${String(r.roundTrips).padStart(13)} ${String(r.descriptors).padStart(14)} ${(r.p50Us / base).toFixed(2).padStart(15)}x`,
    );
  }
  if (values.json !== undefined)
    writeFileSync(values.json, JSON.stringify({ shm: shm.available, rows }, null, 2));
}

if (process.argv.includes("--echo")) await echo();
else await main();
