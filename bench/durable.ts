/**
 * The durable-topic benchmark (`npm run bench -- --cases durable`): Myelin's store next to NATS
 * JetStream (nats.js against a nats-server this benchmark starts, file storage), in the same run.
 *
 * - confirmed publishes, 64 B and 4 KiB: Myelin with fsync `batch` (5 ms) and `always`, at 1, 16
 *   and 1,000 publishes in flight (group commit: concurrent publishes share one fsync); JetStream
 *   with acks (nats-server 2.9 syncs its files every two minutes, not per publish);
 * - a durable consumer reading and acknowledging every message;
 * - restart with a 1 GiB log: from opening the log to serving its newest record (Myelin), and from
 *   spawning nats-server to its answer to stream info (JetStream).
 *
 * Each measurement runs in fresh worker processes (`durable-worker.ts`): the store (hub + store
 * service) in one, the client in another. The median of `runs` is reported.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, waitForPort } from "./net.js";
import { medianIndex } from "./stats.js";
import { expectMessage } from "./worker-ipc.js";

const expect = <T>(child: ChildProcess, type: string, timeoutMs: number): Promise<T> =>
  expectMessage<T>(child, type, timeoutMs, "durable worker");

const WORKER = fileURLToPath(new URL("./durable-worker.js", import.meta.url));

/** One row of the durable benchmark. */
export interface DurableRow {
  readonly case: string;
  readonly impl: string;
  /** msg/s for publish and consume rows; ms for restart rows. */
  readonly value: number | null;
  readonly unit: "msg/s" | "ms";
  /** value relative to JetStream's row of the same measurement (msg/s: higher is better; ms: lower). */
  readonly vs_jetstream: number | null;
  readonly runs: number;
  readonly error: string | null;
}

/** What the runner gives the durable benchmark. */
export interface DurableBenchOptions {
  /** Only the measurements whose case name contains this (all when undefined). */
  readonly only?: string | undefined;
  readonly runs: number;
  readonly quick: boolean;
  readonly track: (child: ChildProcess) => void;
  readonly makeTempDir: () => string;
  readonly removeTempDir: (dir: string) => void;
  readonly log: (line: string) => void;
}

interface Result {
  rate?: number;
  ms?: number;
}

function worker(role: object, o: DurableBenchOptions): ChildProcess {
  const child = fork(WORKER, [JSON.stringify(role)], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  o.track(child);
  return child;
}

async function run(role: object, o: DurableBenchOptions, timeoutMs = 120000): Promise<Result> {
  const w = worker(role, o);
  try {
    return await expect<Result>(w, "result", timeoutMs);
  } finally {
    w.kill("SIGKILL");
  }
}

/** Starts nats-server with JetStream in `dir` on `port`; resolves once it accepts connections. */
async function startNats(dir: string, port: number, o: DurableBenchOptions): Promise<ChildProcess> {
  const child = spawnNatsNoWait(dir, port, o);
  await waitForPort(port, 10000, "nats-server", () =>
    child.exitCode !== null ? `nats-server exited (${child.exitCode}); is it installed?` : undefined,
  );
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  child.kill("SIGKILL");
}

/** A Myelin store in a fresh temp dir for one measurement; `fn` gets the runtime dir. */
async function withMyelinStore<T>(
  o: DurableBenchOptions,
  fsync: string,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = o.makeTempDir();
  const store = worker({ role: "store", dir, fsync, batchMs: 5 }, o);
  try {
    await expect(store, "ready", 20000);
    return await fn(dir);
  } finally {
    store.send("stop");
    await Promise.race([new Promise((r) => store.once("exit", r)), new Promise((r) => setTimeout(r, 5000))]);
    store.kill("SIGKILL");
    o.removeTempDir(dir);
  }
}

async function withNats<T>(o: DurableBenchOptions, fn: (url: string) => Promise<T>): Promise<T> {
  const dir = o.makeTempDir();
  const port = await freePort();
  const server = await startNats(dir, port, o);
  try {
    return await fn(`nats://127.0.0.1:${port}`);
  } finally {
    await stopProcess(server);
    o.removeTempDir(dir);
  }
}

async function median(o: DurableBenchOptions, once: () => Promise<number>): Promise<number> {
  const vals: number[] = [];
  for (let i = 0; i < o.runs; i++) vals.push(await once());
  return vals[medianIndex(vals, (v) => v)]!;
}

interface Measurement {
  case: string;
  impl: string;
  unit: "msg/s" | "ms";
  ref: string;
  measure: () => Promise<number>;
  /** Removes what `measure` kept between runs (a filled log). */
  cleanup?: () => void;
}

/** Runs every durable measurement; a failing one gives a row with its error. */
export async function runDurableBench(o: DurableBenchOptions): Promise<DurableRow[]> {
  const count = o.quick ? 2000 : 50000;
  const ms: Measurement[] = [];
  for (const size of [64, 4096]) {
    const n = size === 64 ? count : Math.round(count / 2);
    const label = size === 64 ? "64 B" : "4 KiB";
    ms.push({
      case: `publish ${label}, 1000 in flight`,
      impl: "jetstream",
      unit: "msg/s",
      ref: "",
      measure: () =>
        withNats(
          o,
          async (url) =>
            (await run({ role: "nats-pub", url, stream: "bench", count: n, size, inflight: 1000 }, o)).rate!,
        ),
    });
    for (const fsync of ["batch", "always"]) {
      for (const inflight of fsync === "always" ? [1, 16, 1000] : [1000]) {
        ms.push({
          case: `publish ${label}, ${inflight} in flight`,
          impl: `myelin fsync ${fsync}`,
          unit: "msg/s",
          ref: `publish ${label}, 1000 in flight`,
          measure: () =>
            withMyelinStore(
              o,
              fsync,
              async (dir) =>
                (
                  await run(
                    {
                      role: "myelin-pub",
                      dir,
                      topic: "/bench",
                      // fsync-bound: a rate from 500 (1 in flight) or n/5 (16) confirmations.
                      count: inflight === 1 ? Math.min(n, 500) : inflight === 16 ? Math.round(n / 5) : n,
                      size,
                      inflight,
                    },
                    o,
                  )
                ).rate!,
            ),
        });
      }
    }
  }
  ms.push({
    case: "consume 64 B with acks",
    impl: "jetstream",
    unit: "msg/s",
    ref: "",
    measure: () =>
      withNats(o, async (url) => {
        await run({ role: "nats-pub", url, stream: "bench", count, size: 64, inflight: 1000 }, o);
        return (await run({ role: "nats-consume", url, stream: "bench", count, maxInFlight: 1000 }, o)).rate!;
      }),
  });
  ms.push({
    case: "consume 64 B with acks",
    impl: "myelin fsync always",
    unit: "msg/s",
    ref: "consume 64 B with acks",
    measure: () =>
      withMyelinStore(o, "always", async (dir) => {
        await run({ role: "myelin-pub", dir, topic: "/bench", count, size: 64, inflight: 1000 }, o);
        return (
          await run({ role: "myelin-consume", dir, topic: "/bench", count: count + 1, maxInFlight: 1000 }, o)
        ).rate!;
      }),
  });
  const fillBytes = o.quick ? 64 * 1024 * 1024 : 1024 * 1024 * 1024;
  const restartCase = `restart with a ${o.quick ? "64 MiB" : "1 GiB"} log`;
  // The log is filled once per implementation and reopened for every run: filling 1 GiB is most of
  // the time of these cases, and every open finds it in the page cache either way.
  let natsFilled: { dir: string; port: number } | undefined;
  ms.push({
    case: restartCase,
    impl: "jetstream",
    unit: "ms",
    ref: "",
    measure: async () => {
      if (natsFilled === undefined) {
        const dir = o.makeTempDir();
        const port = await freePort();
        const first = await startNats(dir, port, o);
        try {
          await run(
            {
              role: "nats-fill",
              url: `nats://127.0.0.1:${port}`,
              stream: "bench",
              bytes: fillBytes,
              recordBytes: 64 * 1024,
            },
            o,
            600000,
          );
        } finally {
          await stopProcess(first);
        }
        natsFilled = { dir, port };
      }
      const { dir, port } = natsFilled;
      const probe = worker(
        { role: "nats-open", url: `nats://127.0.0.1:${port}`, stream: "bench", timeoutMs: 60000 },
        o,
      );
      const second = spawnNatsNoWait(dir, port, o);
      probe.send("go");
      try {
        return (await expect<Result>(probe, "result", 70000)).ms!;
      } finally {
        probe.kill("SIGKILL");
        await stopProcess(second);
      }
    },
    cleanup: () => {
      if (natsFilled !== undefined) o.removeTempDir(natsFilled.dir);
    },
  });
  let myelinFilled: string | undefined;
  ms.push({
    case: restartCase,
    impl: "myelin",
    unit: "ms",
    ref: restartCase,
    measure: async () => {
      if (myelinFilled === undefined) {
        const dir = join(o.makeTempDir(), "log");
        myelinFilled = dir;
        await run({ role: "myelin-fill", dir, bytes: fillBytes, recordBytes: 64 * 1024 }, o, 600000);
      }
      return (await run({ role: "myelin-open", dir: myelinFilled }, o)).ms!;
    },
    cleanup: () => {
      if (myelinFilled !== undefined) o.removeTempDir(join(myelinFilled, ".."));
    },
  });

  const only = o.only;
  if (only !== undefined) {
    const keep = ms.filter((m) => m.case.includes(only));
    ms.splice(0, ms.length, ...keep);
  }
  const rows: DurableRow[] = [];
  const values = new Map<string, number>();
  for (const m of ms) {
    o.log(`durable: ${m.case} / ${m.impl}`);
    let value: number | null = null;
    let error: string | null = null;
    try {
      value = await median(o, m.measure);
      if (m.impl === "jetstream") values.set(m.case, value);
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    } finally {
      m.cleanup?.();
    }
    const ref = m.ref === "" ? undefined : values.get(m.ref);
    const vs =
      value === null || ref === undefined || m.impl === "jetstream"
        ? null
        : m.unit === "ms"
          ? ref / value
          : value / ref;
    rows.push({ case: m.case, impl: m.impl, value, unit: m.unit, vs_jetstream: vs, runs: o.runs, error });
  }
  return rows;
}

function spawnNatsNoWait(dir: string, port: number, o: DurableBenchOptions): ChildProcess {
  const bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"].find(
    existsSync,
  );
  const child = spawn(bin ?? "nats-server", ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir], {
    stdio: "ignore",
  });
  o.track(child);
  return child;
}

/** The table of the durable benchmark. */
export function renderDurableTable(rows: readonly DurableRow[]): string[] {
  const out = ["| case | impl | value | vs JetStream |", "|---|---|---|---|"];
  for (const r of rows) {
    const v =
      r.value === null
        ? `error: ${r.error}`
        : r.unit === "ms"
          ? `${r.value.toFixed(0)} ms`
          : `${Math.round(r.value).toLocaleString("en-US")} msg/s`;
    const vs = r.vs_jetstream === null ? "" : `${r.vs_jetstream.toFixed(2)}x`;
    out.push(`| ${r.case} | ${r.impl} | ${v} | ${vs} |`);
  }
  return out;
}
