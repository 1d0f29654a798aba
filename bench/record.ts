/**
 * The recording benchmark (`npm run bench -- --cases record`): `myelin record`'s recorder fed by a
 * publisher in another process, at 64 B (std_msgs/String, JSON) and 1 MiB frames (sensor_msgs/Image,
 * CDR), each flat out and paced at the target rate (64 B: 300,000 msg/s; 1 MiB: 500 frames/s, about
 * 524 MB/s), next to writing the same encoded messages with `@mcap/core`'s McapWriter alone (and with
 * Myelin's file writer alone) in the same run. zstd chunk compression as the recorder's default.
 *
 * Reported per case: what the publisher sent (msg/s), what the recorder wrote (msg/s, MB/s, from its
 * first message to its file closed), and what it could not keep (dropped + lost + missing). The median
 * run by recorded rate is reported, with the CPU time the recorder's receiving thread spent per message
 * received (from /proc: independent of the load, unlike the rates), the CPU time of its other threads
 * (the recording thread above all), and its lag: how long it was still writing after the publisher's
 * last message. A recorder that keeps up writes at the rate sent with a lag near 0; zero drops with a
 * lag of seconds only means the queue (512 MiB) held the backlog of a short run, not that the rate is
 * sustained.
 */
import { fork, type ChildProcess } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { medianIndex } from "./stats.js";
import { expectMessage } from "./worker-ipc.js";

const WORKER = fileURLToPath(new URL("./record-worker.js", import.meta.url));

/** One row of the recording benchmark. */
export interface RecordRow {
  readonly case: string;
  readonly impl: string;
  /** Messages per second the publisher sent (null for the writer-only rows). */
  readonly sent_per_s: number | null;
  /** Messages per second written. */
  readonly msg_per_s: number | null;
  /** Payload MB (10^6 bytes of encoded messages) per second written. */
  readonly mb_per_s: number | null;
  /** Messages not recorded: dropped (disk behind) + lost (publisher sequence gaps) + missing. */
  readonly drops: number | null;
  readonly messages: number | null;
  /** CPU time of the recorder's receiving thread per received message, in µs (Linux), else null. */
  readonly recv_cpu_us: number | null;
  /** CPU time of the recorder process's other threads (recording thread, I/O) per message, in µs. */
  readonly other_cpu_us: number | null;
  /** ms the recorder was still writing after the publisher's last message (its backlog). */
  readonly lag_ms: number | null;
  readonly runs: number;
  readonly error: string | null;
}

/** What the runner gives the recording benchmark. */
export interface RecordBenchOptions {
  readonly runs: number;
  readonly quick: boolean;
  readonly track: (child: ChildProcess) => void;
  readonly makeTempDir: () => string;
  readonly removeTempDir: (dir: string) => void;
  readonly log: (line: string) => void;
}

interface RecorderResult {
  messages: number;
  bytes: number;
  dropped: number;
  lost: number;
  missing: number;
  ms: number;
  recvCpuUsPerMsg: number | null;
  otherCpuUsPerMsg: number | null;
  lagMs: number;
}

interface McapResult {
  count: number;
  bytesPer: number;
  coreMs: number;
  /** Myelin's writer inline: until closed, and the caller's share. */
  ownMs: number;
  ownCallerMs: number;
  /** Myelin's writer with its writer thread: until closed, and the caller's share. */
  threadMs: number;
  threadCallerMs: number;
  encodeMs: number;
}

function worker(role: object, o: RecordBenchOptions): ChildProcess {
  const child = fork(WORKER, [JSON.stringify(role)], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  o.track(child);
  return child;
}

const expect = <T>(child: ChildProcess, type: string, timeoutMs: number): Promise<T> =>
  expectMessage<T>(child, type, timeoutMs, "record worker");

interface Case {
  name: string;
  size: number;
  rateHz: number;
  /** Also run the recorder inline (no recording thread: everything on the receiving thread), for comparison. */
  inline?: boolean;
}

const CASES: Case[] = [
  { name: "64 B, flat out", size: 64, rateHz: 0, inline: true },
  { name: "64 B at 300k msg/s", size: 64, rateHz: 300_000 },
  { name: "1 MiB, flat out", size: 1024 * 1024, rateHz: 0, inline: true },
  { name: "1 MiB at 500 frames/s", size: 1024 * 1024, rateHz: 500 },
];

/**
 * Where the recordings are written: `MYELIN_BENCH_RECORD_DIR`, else /dev/shm (memory) when there is
 * one, so that the recorder is measured rather than the disk; the table says which.
 */
export function recordDir(): string | undefined {
  const env = process.env["MYELIN_BENCH_RECORD_DIR"];
  if (env !== undefined && env !== "") return env;
  return existsSync("/dev/shm") ? "/dev/shm" : undefined;
}

function fileIn(dir: string, base: string): string {
  const root = recordDir();
  return root === undefined ? join(dir, base) : join(root, `myelin-bench-${process.pid}-${base}`);
}

async function once(
  c: Case,
  o: RecordBenchOptions,
  durationMs: number,
  writerThread: boolean,
): Promise<{ sent: number; sentMs: number; r: RecorderResult }> {
  const dir = o.makeTempDir();
  const file = fileIn(dir, "bench.mcap");
  const rec = worker({ role: "recorder", dir, file, topic: "/bench", compression: "zstd", writerThread }, o);
  let pub: ChildProcess | undefined;
  try {
    await expect(rec, "ready", 20000);
    const recording = expect(rec, "recording", 20000);
    pub = worker({ role: "publisher", dir, topic: "/bench", size: c.size, rateHz: c.rateHz, durationMs }, o);
    await recording;
    await expect(pub, "ready", 20000);
    const pubResult = expect<{ sent: number; ms: number }>(pub, "result", durationMs + 60000);
    pub.send({ type: "go" });
    const { sent, ms } = await pubResult;
    const result = expect<RecorderResult>(rec, "result", 120000);
    rec.send({ type: "stop", sent });
    return { sent, sentMs: ms, r: await result };
  } finally {
    pub?.kill("SIGKILL");
    rec.kill("SIGKILL");
    rmSync(file, { force: true });
    o.removeTempDir(dir);
  }
}

/** Runs the recording benchmark; a failing case gives a row with its error. */
export async function runRecordBench(o: RecordBenchOptions): Promise<RecordRow[]> {
  const durationMs = o.quick ? 500 : 1500;
  const rows: RecordRow[] = [];
  for (const c of CASES) {
    for (const writerThread of c.inline === true ? [true, false] : [true]) {
      const impl = writerThread ? "myelin record" : "myelin record, inline";
      o.log(`record: ${c.name} (${impl})`);
      try {
        const runs = [];
        for (let i = 0; i < o.runs; i++) runs.push(await once(c, o, durationMs, writerThread));
        const m = runs[medianIndex(runs, (x) => x.r.messages / x.r.ms)]!;
        const secs = m.r.ms / 1000;
        rows.push({
          case: c.name,
          impl,
          sent_per_s: m.sent / (m.sentMs / 1000),
          msg_per_s: m.r.messages / secs,
          mb_per_s: m.r.bytes / 1e6 / secs,
          drops: m.r.dropped + m.r.lost + m.r.missing,
          messages: m.r.messages,
          recv_cpu_us: Number.isFinite(m.r.recvCpuUsPerMsg) ? m.r.recvCpuUsPerMsg : null,
          other_cpu_us: Number.isFinite(m.r.otherCpuUsPerMsg) ? m.r.otherCpuUsPerMsg : null,
          lag_ms: m.r.lagMs,
          runs: o.runs,
          error: null,
        });
      } catch (err) {
        rows.push(errorRow(c.name, impl, o.runs, err));
      }
    }
  }
  for (const size of [64, 1024 * 1024]) {
    const label = size === 64 ? "64 B" : "1 MiB";
    const count = size === 64 ? (o.quick ? 50_000 : 500_000) : o.quick ? 100 : 750;
    o.log(`record: ${label}, writers alone (${count} messages)`);
    try {
      const runs: McapResult[] = [];
      for (let i = 0; i < o.runs; i++) {
        const dir = o.makeTempDir();
        const file = fileIn(dir, "alone.mcap");
        const w = worker({ role: "mcap", file, size, count, compression: "zstd" }, o);
        try {
          runs.push(await expect<McapResult>(w, "result", 300000));
        } finally {
          w.kill("SIGKILL");
          rmSync(file, { force: true });
          o.removeTempDir(dir);
        }
      }
      const m = runs[medianIndex(runs, (x) => x.count / x.coreMs)]!;
      const row = (impl: string, ms: number, bytesPer: number): RecordRow => ({
        case: `${label}, same messages`,
        impl,
        sent_per_s: null,
        msg_per_s: m.count / (ms / 1000),
        mb_per_s: (m.count * bytesPer) / 1e6 / (ms / 1000),
        drops: null,
        messages: m.count,
        recv_cpu_us: null,
        other_cpu_us: null,
        lag_ms: null,
        runs: o.runs,
        error: null,
      });
      rows.push(row("@mcap/core McapWriter alone", m.coreMs, m.bytesPer));
      rows.push(row("Myelin McapFileWriter alone, inline", m.ownMs, m.bytesPer));
      rows.push(row("  caller's thread, inline", m.ownCallerMs, m.bytesPer));
      rows.push(row("Myelin McapFileWriter alone, writer thread", m.threadMs, m.bytesPer));
      rows.push(row("  caller's thread, writer thread", m.threadCallerMs, m.bytesPer));
      rows.push(row("channel encoding alone", m.encodeMs, m.bytesPer));
    } catch (err) {
      rows.push(errorRow(`${label}, same messages`, "writers alone", o.runs, err));
    }
  }
  return rows;
}

function errorRow(name: string, impl: string, runs: number, err: unknown): RecordRow {
  return {
    case: name,
    impl,
    sent_per_s: null,
    msg_per_s: null,
    mb_per_s: null,
    drops: null,
    messages: null,
    recv_cpu_us: null,
    other_cpu_us: null,
    lag_ms: null,
    runs,
    error: err instanceof Error ? err.message : String(err),
  };
}

/** The rows as a table. */
export function renderRecordTable(rows: readonly RecordRow[]): string[] {
  const fmt = (v: number | null, digits = 0): string =>
    v === null
      ? "-"
      : v >= 1e6
        ? `${(v / 1e6).toFixed(2)}M`
        : v >= 1e4
          ? `${(v / 1e3).toFixed(0)}k`
          : v.toFixed(digits);
  const head = [
    "case",
    "impl",
    "sent msg/s",
    "written msg/s",
    "MB/s",
    "drops",
    "messages",
    "recv CPU µs/msg",
    "other threads µs/msg",
    "lag ms",
  ];
  const body = rows.map((r) =>
    r.error !== null
      ? [r.case, r.impl, `error: ${r.error}`, "", "", "", "", "", "", ""]
      : [
          r.case,
          r.impl,
          fmt(r.sent_per_s),
          fmt(r.msg_per_s),
          fmt(r.mb_per_s, 1),
          r.drops === null ? "-" : String(r.drops),
          fmt(r.messages),
          r.recv_cpu_us === null ? "-" : r.recv_cpu_us.toFixed(2),
          r.other_cpu_us === null ? "-" : r.other_cpu_us.toFixed(2),
          r.lag_ms === null ? "-" : r.lag_ms.toFixed(0),
        ],
  );
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)];
}
