/**
 * The benchmark runner: `node dist/bench/run.js [options]` (or `npm run bench -- [options]`).
 *
 * For every selected case and implementation it forks worker processes (`worker.js`, one sender and
 * one receiver per run), coordinates them over the fork IPC channel, repeats each measurement
 * `--runs` times and reports the median run, prints a table and optionally writes JSON. Every child
 * process (workers, brokers started by an impl's setup) is killed at the end, on error, on a hard
 * per-run timeout and on Ctrl-C.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Impl, SetupResult } from "./impl.js";
import { DEFAULT_CASES, IMPLS, loadImpl, REFERENCE_IMPL } from "./impls/index.js";
import { CASES, type CaseSpec, type FromWorker, type InitMsg, type Role, type ToWorker } from "./protocol.js";
import { medianIndex } from "./stats.js";
import { renderServiceTable, runServiceBench, type ServiceRow } from "./services.js";
import { renderDurableTable, runDurableBench, type DurableRow } from "./durable.js";
import { recordDir, renderRecordTable, runRecordBench, type RecordRow } from "./record.js";
import { runIdleHubBench } from "./idle-hub.js";

const WORKER = fileURLToPath(new URL("./worker.js", import.meta.url));

// ---------------------------------------------------------------------------------------------------
// Options

interface Options {
  readonly json: string | undefined;
  readonly cases: readonly CaseSpec[];
  /** Run the service benchmark (case name `services`; Myelin only). */
  readonly services: boolean;
  /** Run the durable-topic benchmark against JetStream (case name `durable`). */
  readonly durable: boolean;
  /** Durable case: only the measurements whose case name contains this. */
  readonly durableOnly: string | undefined;
  /** Run the recording benchmark (case name `record`; Myelin only). */
  readonly record: boolean;
  readonly impls: readonly string[];
  /** `--impls` was given: every named impl runs in every selected case (else see DEFAULT_CASES). */
  readonly implsExplicit: boolean;
  readonly runs: number;
  readonly durationMs: number;
  readonly joins: number;
  readonly timeoutMs: number;
  readonly quick: boolean;
  readonly verbose: boolean;
}

const USAGE = `usage: node dist/bench/run.js [options]
  --cases a,b        cases to run (default: all but the large-frame ones): ${CASES.map((c) => c.name).join(", ")}, services, durable, record
  --impls x,y        implementations (default: all, variants only in the cases where they differ;
                     named ones run in every case): ${Object.keys(IMPLS).join(", ")}
  --runs N           repetitions per measurement; the median run is reported (default 3, --quick 1)
  --duration-ms MS   duration of one throughput/round-trip run (default 1500, --quick 200)
  --joins N          receiver joins per late-joiner run (default 5, --quick 2)
  --timeout-ms MS    hard timeout of one run (default: 4 x duration + 15000)
  --durable-only T   durable case: run only the measurements whose case name contains T
                     (e.g. "64 B": the 64 B publishes and the consumer, skipping the 1 GiB restart)
  --json FILE        also write the rows as JSON
  --quick            small counts, for a CI smoke test
  --verbose          print per-run progress and worker stderr`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: "string" },
      "durable-only": { type: "string" },
      cases: { type: "string" },
      impls: { type: "string" },
      runs: { type: "string" },
      "duration-ms": { type: "string" },
      joins: { type: "string" },
      "timeout-ms": { type: "string" },
      quick: { type: "boolean", default: false },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, dflt: number, min: number): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
  const list = (v: string | undefined): string[] | undefined =>
    v
      ?.split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
  const quick = values.quick;
  const selected = list(values.cases);
  const caseNames = selected?.filter((n) => n !== "services" && n !== "durable" && n !== "record");
  const cases =
    caseNames === undefined
      ? CASES.filter((c) => c.optional !== true)
      : caseNames.map((n) => {
          const c = CASES.find((k) => k.name === n);
          if (c === undefined)
            throw new Error(`unknown case "${n}" (known: ${CASES.map((k) => k.name).join(", ")})`);
          return c;
        });
  const impls = list(values.impls) ?? Object.keys(IMPLS);
  for (const i of impls) {
    if (IMPLS[i] === undefined)
      throw new Error(`unknown impl "${i}" (known: ${Object.keys(IMPLS).join(", ")})`);
  }
  const durationMs = int("duration-ms", values["duration-ms"], quick ? 200 : 1500, 10);
  return {
    json: values.json,
    durableOnly: values["durable-only"],
    cases,
    services:
      (selected === undefined || selected.includes("services")) &&
      (values.impls === undefined || impls.includes("myelin")),
    durable:
      (selected === undefined || selected.includes("durable")) &&
      (values.impls === undefined || impls.includes("myelin")),
    record:
      (selected === undefined || selected.includes("record")) &&
      (values.impls === undefined || impls.includes("myelin")),
    impls,
    implsExplicit: values.impls !== undefined,
    runs: int("runs", values.runs, quick ? 1 : 3, 1),
    durationMs,
    joins: int("joins", values.joins, quick ? 2 : 5, 1),
    timeoutMs: int("timeout-ms", values["timeout-ms"], 4 * durationMs + 15_000, 100),
    quick,
    verbose: values.verbose,
  };
}

// ---------------------------------------------------------------------------------------------------
// Child process bookkeeping: nothing outlives the runner.

const liveChildren = new Set<ChildProcess>();

function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
}

function killAll(): void {
  for (const c of liveChildren) {
    try {
      c.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
}

/**
 * For children of an impl's setup (brokers, hubs), which do not watch their parent the way workers do:
 * also start a tiny watchdog shell that kills the child when the runner's end of its stdin pipe closes,
 * i.e. even when the runner itself is SIGKILLed.
 */
function trackWithWatchdog(child: ChildProcess): void {
  track(child);
  if (child.pid === undefined) return;
  const dog = spawn("sh", ["-c", `read _ ; kill -9 ${child.pid} 2>/dev/null`], {
    stdio: ["pipe", "ignore", "ignore"],
  });
  track(dog);
  const stop = (): void => {
    dog.kill("SIGKILL");
  };
  if (child.exitCode !== null || child.signalCode !== null) stop();
  else child.once("exit", stop);
}

/** Teardowns of setups currently in effect, run on Ctrl-C too. */
const activeTeardowns = new Set<() => Promise<void>>();

/** Temporary directories of cases in progress, removed on any exit. */
const liveDirs = new Set<string>();

function makeTempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mb-"));
  liveDirs.add(dir);
  return dir;
}

function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

process.on("exit", () => {
  killAll();
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping`);
    const t = setTimeout(() => {
      killAll();
      process.exit(130);
    }, 3000);
    void Promise.allSettled([...activeTeardowns].map((f) => f())).then(() => {
      clearTimeout(t);
      killAll();
      process.exit(130);
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// Workers

type Reply<T extends FromWorker["type"]> = Extract<FromWorker, { type: T }>;

class WorkerProc {
  private readonly child: ChildProcess;
  private readonly inbox: FromWorker[] = [];
  private readonly waiters: { type: string; resolve: (m: FromWorker) => void; reject: (e: Error) => void }[] =
    [];
  private failure: Error | undefined;
  private stderrTail = "";

  /** Forks the worker; it does nothing until {@link init} (or loads `preload`'s modules meanwhile). */
  constructor(
    readonly label: string,
    env: Readonly<Record<string, string>>,
    verbose: boolean,
    preload?: string,
  ) {
    this.child = fork(WORKER, [], {
      env: { ...process.env, ...env },
      execArgv: ["--expose-gc"],
      stdio: ["ignore", verbose ? "inherit" : "ignore", "pipe", "ipc"],
    });
    track(this.child);
    this.child.stderr?.on("data", (d: Buffer) => {
      if (verbose) process.stderr.write(`[${label}] ${d.toString()}`);
      this.stderrTail = (this.stderrTail + d.toString()).slice(-1500);
    });
    this.child.on("message", (m: FromWorker) => {
      if (m.type === "error") this.fail(new Error(`${label}: ${m.message}`));
      else this.deliver(m);
    });
    this.child.once("exit", (code, signal) => {
      const tail = this.stderrTail.trim();
      this.fail(new Error(`${label} exited (${code ?? signal})${tail === "" ? "" : `: ${tail}`}`));
    });
    this.child.once("error", (err) => this.fail(err));
    if (preload !== undefined && preload !== "") this.send({ type: "preload", impl: preload });
  }

  /** Gives the worker its role. */
  init(init: InitMsg): this {
    this.send(init);
    return this;
  }

  private deliver(m: FromWorker): void {
    const i = this.waiters.findIndex((w) => w.type === m.type);
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
    else this.inbox.push(m);
  }

  private fail(err: Error): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  send(m: ToWorker): void {
    if (this.child.connected) this.child.send(m);
  }

  expect<T extends FromWorker["type"]>(type: T): Promise<Reply<T>> {
    const i = this.inbox.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0] as Reply<T>);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) =>
      this.waiters.push({ type, resolve: (m) => resolve(m as Reply<T>), reject }),
    );
  }

  /** Ask the worker to close its impl objects and exit; SIGKILL after a grace period. */
  async close(graceMs = 2000): Promise<void> {
    const c = this.child;
    if (c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    this.failure ??= new Error(`${this.label} closed`);
    this.send({ type: "close" });
    const t = setTimeout(() => c.kill("SIGKILL"), graceMs);
    await gone;
    clearTimeout(t);
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }
}

/** The workers of one run; all are closed (or killed) when the run ends, however it ends. */
class RunScope {
  private readonly workers: WorkerProc[] = [];
  constructor(
    private readonly base: Omit<InitMsg, "type" | "role" | "endpoint">,
    private readonly verbose: boolean,
  ) {}

  spawn(role: Role, endpoint?: string): WorkerProc {
    return this.prepare(role).start(endpoint);
  }

  /**
   * Forks the worker of `role` now and has it load the impl's modules, so that its start-up overlaps
   * its peer's; `start` gives it its role (and the peer's endpoint) once known.
   */
  prepare(role: Role): { start(endpoint?: string): WorkerProc } {
    const w = new WorkerProc(`${this.base.impl}/${role}`, this.base.env, this.verbose, this.base.impl);
    this.workers.push(w);
    return {
      start: (endpoint) =>
        w.init({ type: "init", role, ...this.base, ...(endpoint === undefined ? {} : { endpoint }) }),
    };
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }

  killAll(): void {
    for (const w of this.workers) w.kill();
  }
}

// ---------------------------------------------------------------------------------------------------
// Measurements

/** One run's numbers (null where the case does not measure it). */
interface Measurement {
  readonly payloadBytes: number;
  readonly msgsPerS: number | null;
  readonly mbPerS: number | null;
  readonly loss: number | null;
  readonly p50Us: number | null;
  readonly p99Us: number | null;
  readonly p999Us: number | null;
  readonly rssBytes: number | null;
  /** Throughput: the sender's own rate over its sending loop (progress lines only). */
  readonly senderMsgsPerS?: number;
}

const EMPTY: Omit<Measurement, "payloadBytes"> = {
  msgsPerS: null,
  mbPerS: null,
  loss: null,
  p50Us: null,
  p99Us: null,
  p999Us: null,
  rssBytes: null,
};

async function measureThroughput(scope: RunScope, c: CaseSpec): Promise<Measurement> {
  const pending = scope.prepare("tp-receiver");
  const sender = scope.spawn("tp-sender");
  const { endpoint } = await sender.expect("ready");
  const receiver = pending.start(endpoint);
  await receiver.expect("ready");
  sender.send({ type: "warmup" });
  await receiver.expect("warm");
  sender.send({ type: "start" });
  const sent = await sender.expect("sent");
  receiver.send({ type: "drain" });
  const got = await receiver.expect("received");
  if (got.received === 0) throw new Error(`no data message received (sent ${sent.sent})`);
  const msgsPerS = got.spanCount >= 2 && got.spanNs > 0 ? ((got.spanCount - 1) * 1e9) / got.spanNs : null;
  return {
    ...EMPTY,
    payloadBytes: c.payloadBytes,
    msgsPerS,
    mbPerS: msgsPerS === null ? null : (msgsPerS * (got.bytes / got.received)) / 1e6,
    loss: sent.sent > 0 ? Math.max(0, 1 - got.received / sent.sent) : null,
    senderMsgsPerS: (sent.sent * 1e9) / sent.elapsedNs,
  };
}

async function measureRoundtrip(scope: RunScope, c: CaseSpec): Promise<Measurement> {
  const pending = scope.prepare("rt-server");
  const client = scope.spawn("rt-client");
  const { endpoint: ping } = await client.expect("ready");
  const server = pending.start(ping);
  const { endpoint: pong } = await server.expect("ready");
  if (pong === undefined) throw new Error("rt-server reported no pong endpoint");
  client.send({ type: "connect", endpoint: pong });
  await client.expect("ready");
  client.send({ type: "start" });
  const r = await client.expect("roundtrip");
  return {
    ...EMPTY,
    payloadBytes: c.payloadBytes,
    msgsPerS: (r.count * 1e9) / r.elapsedNs, // round trips per second
    p50Us: r.p50Us,
    p99Us: r.p99Us,
    p999Us: r.p999Us,
  };
}

async function measureLateJoiner(scope: RunScope, c: CaseSpec, joins: number): Promise<Measurement> {
  const sender = scope.spawn("lj-sender");
  const { endpoint } = await sender.expect("ready");
  sender.send({ type: "start" });
  const times: number[] = [];
  for (let j = 0; j < joins; j++) {
    const receiver = scope.spawn("lj-receiver", endpoint);
    times.push((await receiver.expect("joined")).joinUs);
    await receiver.close();
    await new Promise((r) => setTimeout(r, 50));
  }
  sender.send({ type: "stop" });
  times.sort((a, b) => a - b);
  return {
    ...EMPTY,
    payloadBytes: c.payloadBytes,
    p50Us: times[Math.floor((times.length - 1) / 2)]!,
    p99Us: times[times.length - 1]!, // the worst join: with a handful of joins, p99 is the maximum
  };
}

async function measureIdleRss(scope: RunScope, c: CaseSpec): Promise<Measurement> {
  const pending = scope.prepare("rss-receiver");
  const sender = scope.spawn("rss-sender");
  const { endpoint } = await sender.expect("ready");
  const receiver = pending.start(endpoint);
  await receiver.expect("ready");
  sender.send({ type: "warmup" });
  await receiver.expect("warm");
  sender.send({ type: "stop" });
  receiver.send({ type: "measure" });
  const { rssBytes } = await receiver.expect("rss");
  return { ...EMPTY, payloadBytes: c.payloadBytes, rssBytes };
}

async function measureBaselineRss(verbose: boolean): Promise<number> {
  const dir = makeTempDir();
  const scope = new RunScope(
    {
      impl: "",
      caseSpec: CASES.find((c) => c.kind === "idle-rss")!,
      dir,
      channel: "b",
      durationMs: 0,
      env: {},
    },
    verbose,
  );
  try {
    const w = scope.spawn("rss-baseline");
    await w.expect("ready");
    w.send({ type: "measure" });
    return (await w.expect("rss")).rssBytes;
  } finally {
    await scope.closeAll();
    removeTempDir(dir);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function measureOnce(
  opts: Options,
  c: CaseSpec,
  implName: string,
  dir: string,
  env: Readonly<Record<string, string>>,
  run: number,
): Promise<Measurement> {
  const scope = new RunScope(
    { impl: implName, caseSpec: c, dir, channel: `r${run}`, durationMs: opts.durationMs, env },
    opts.verbose,
  );
  const body = (): Promise<Measurement> => {
    switch (c.kind) {
      case "throughput":
        return measureThroughput(scope, c);
      case "roundtrip":
        return measureRoundtrip(scope, c);
      case "late-joiner":
        return measureLateJoiner(scope, c, opts.joins);
      case "idle-rss":
        return measureIdleRss(scope, c);
    }
  };
  const timeoutMs = c.kind === "late-joiner" ? opts.timeoutMs + opts.joins * 5000 : opts.timeoutMs;
  try {
    return await withTimeout(body(), timeoutMs, `${c.name} ${implName} run ${run + 1}`);
  } catch (err) {
    scope.killAll();
    throw err;
  } finally {
    await scope.closeAll();
  }
}

// ---------------------------------------------------------------------------------------------------
// Rows, table, JSON

interface Row {
  readonly case: string;
  readonly impl: string;
  readonly payload_bytes: number;
  readonly msgs_per_s: number | null;
  readonly mb_per_s: number | null;
  readonly loss: number | null;
  readonly p50_us: number | null;
  readonly p99_us: number | null;
  readonly p999_us: number | null;
  /** idle-rss only: resident set size of the idle receiver process, in bytes. */
  readonly rss_bytes: number | null;
  /** Successful runs (the reported one is their median). */
  readonly runs: number;
  readonly error: string | null;
}

function primaryMetric(c: CaseSpec, m: Measurement): number {
  switch (c.kind) {
    case "throughput":
      return m.msgsPerS ?? 0;
    case "roundtrip":
    case "late-joiner":
      return m.p50Us ?? Infinity;
    case "idle-rss":
      return m.rssBytes ?? Infinity;
  }
}

function round(v: number | null, digits: number): number | null {
  if (v === null || !Number.isFinite(v)) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function toRow(c: CaseSpec, impl: string, m: Measurement | null, runs: number, error: string | null): Row {
  return {
    case: c.name,
    impl,
    payload_bytes: m?.payloadBytes ?? c.payloadBytes,
    msgs_per_s: round(m?.msgsPerS ?? null, 0),
    mb_per_s: round(m?.mbPerS ?? null, 2),
    loss: round(m?.loss ?? null, 4),
    p50_us: round(m?.p50Us ?? null, 1),
    p99_us: round(m?.p99Us ?? null, 1),
    p999_us: round(m?.p999Us ?? null, 1),
    rss_bytes: m?.rssBytes ?? null,
    runs,
    error,
  };
}

/** The ratio against the reference impl of the same case: msg/s for throughput, p50 or RSS otherwise. */
function ratio(row: Row, ref: Row | undefined): number | null {
  if (ref === undefined || row.error !== null || ref.error !== null) return null;
  const kind =
    row.case === "idle-hub" || row.case === "idle-node"
      ? "idle-rss"
      : CASES.find((c) => c.name === row.case)?.kind;
  const pick = (r: Row): number | null =>
    kind === "throughput" ? r.msgs_per_s : kind === "idle-rss" ? r.rss_bytes : r.p50_us;
  const a = pick(row);
  const b = pick(ref);
  return a === null || b === null || b === 0 ? null : a / b;
}

function fmtCount(v: number | null): string {
  if (v === null) return "-";
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(0);
}

function fmtNum(v: number | null, digits = 1): string {
  if (v === null) return "-";
  return v >= 1000 ? v.toFixed(0) : v.toFixed(digits);
}

function fmtBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

function renderTable(rows: readonly Row[], reference = REFERENCE_IMPL): string {
  const header = [
    "case",
    "impl",
    "payload",
    "msg/s",
    "MB/s",
    "loss",
    "p50 µs",
    "p99 µs",
    "p99.9 µs",
    "RSS MiB",
  ];
  header.push(`vs ${reference}`);
  const lines: string[][] = [header];
  for (const r of rows) {
    const ref = rows.find((x) => x.case === r.case && x.impl === reference);
    const q = ratio(r, ref);
    if (r.error !== null) {
      lines.push([
        r.case,
        r.impl,
        fmtBytes(r.payload_bytes),
        `ERROR: ${r.error.split("\n")[0]!.slice(0, 100)}`,
      ]);
      continue;
    }
    lines.push([
      r.case,
      r.impl,
      fmtBytes(r.payload_bytes),
      fmtCount(r.msgs_per_s),
      fmtNum(r.mb_per_s),
      r.loss === null ? "-" : `${(r.loss * 100).toFixed(1)}%`,
      fmtNum(r.p50_us),
      fmtNum(r.p99_us),
      fmtNum(r.p999_us),
      r.rss_bytes === null ? "-" : (r.rss_bytes / (1024 * 1024)).toFixed(1),
      q === null ? "-" : `${q >= 10 ? q.toFixed(0) : q.toFixed(2)}x`,
    ]);
  }
  const full = lines.filter((l) => l.length === header.length);
  const widths = header.map((_, i) => Math.max(...full.map((l) => l[i]!.length)));
  return lines
    .map((l) => {
      const cells =
        l.length === header.length
          ? l.map((s, i) => (i >= 3 ? s.padStart(widths[i]!) : s.padEnd(widths[i]!)))
          : [...l.slice(0, 3).map((s, i) => s.padEnd(widths[i]!)), ...l.slice(3)];
      return cells.join("  ").trimEnd();
    })
    .join("\n");
}

// ---------------------------------------------------------------------------------------------------
// Main

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

async function benchCase(opts: Options, c: CaseSpec, impl: Impl): Promise<Row> {
  const dir = makeTempDir();
  let setup: SetupResult = {};
  try {
    if (impl.setup !== undefined) {
      setup = await withTimeout(
        impl.setup({
          caseName: c.name,
          dir,
          track: trackWithWatchdog,
          log: (m) => log(`[${impl.name}] ${m}`),
        }),
        30_000,
        `${impl.name} setup`,
      );
      if (setup.teardown !== undefined) activeTeardowns.add(setup.teardown);
    }
    const env = setup.env ?? {};
    const results: Measurement[] = [];
    const errors: string[] = [];
    for (let run = 0; run < opts.runs; run++) {
      try {
        const m = await measureOnce(opts, c, impl.name, dir, env, run);
        results.push(m);
        log(`  ${c.name} ${impl.name} run ${run + 1}/${opts.runs}: ${summary(c, m)}`);
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        errors.push(msg);
        log(
          `  ${c.name} ${impl.name} run ${run + 1}/${opts.runs}: FAILED ${opts.verbose ? msg : msg.split("\n")[0]}`,
        );
      }
    }
    if (results.length === 0) return toRow(c, impl.name, null, 0, errors[0] ?? "no result");
    const best = results[medianIndex(results, (m) => primaryMetric(c, m))]!;
    return toRow(c, impl.name, best, results.length, null);
  } catch (err) {
    return toRow(c, impl.name, null, 0, err instanceof Error ? err.message : String(err));
  } finally {
    if (setup.teardown !== undefined) {
      await setup.teardown().catch((e: unknown) => log(`[${impl.name}] teardown failed: ${String(e)}`));
      activeTeardowns.delete(setup.teardown);
    }
    removeTempDir(dir);
  }
}

/** `7m 42s`, `12.3 s`. */
function fmtElapsed(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m ${s % 60}s`;
}

function summary(c: CaseSpec, m: Measurement): string {
  switch (c.kind) {
    case "throughput":
      return (
        `${fmtCount(m.msgsPerS)} msg/s, ${fmtNum(m.mbPerS)} MB/s, loss ${((m.loss ?? 0) * 100).toFixed(1)}% ` +
        `(sender loop ${fmtCount(m.senderMsgsPerS ?? null)} msg/s)`
      );
    case "roundtrip":
      return `p50 ${fmtNum(m.p50Us)} µs, p99 ${fmtNum(m.p99Us)} µs, p99.9 ${fmtNum(m.p999Us)} µs`;
    case "late-joiner":
      return `median join ${fmtNum(m.p50Us)} µs, worst ${fmtNum(m.p99Us)} µs`;
    case "idle-rss":
      return `${((m.rssBytes ?? 0) / (1024 * 1024)).toFixed(1)} MiB`;
  }
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const impls: Impl[] = [];
  const skipped: string[] = [];
  for (const name of opts.impls) {
    const impl = await loadImpl(name);
    const why = await impl.unavailable?.();
    if (why !== undefined) skipped.push(`${name}: ${why}`);
    else impls.push(impl);
  }
  log(
    `myelin bench: ${opts.cases.length} case(s) x ${impls.length} impl(s), ${opts.runs} run(s) of ` +
      `${opts.durationMs} ms, median run reported (${os.cpus().length} CPUs, node ${process.version})`,
  );
  const rows: Row[] = [];
  const started = performance.now();
  const timings: { what: string; ms: number }[] = [];
  const timed = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      const ms = performance.now() - t0;
      timings.push({ what, ms });
      log(`  ${what}: ${(ms / 1000).toFixed(1)} s (${fmtElapsed(performance.now() - started)} in all)`);
    }
  };
  let baselineRss: number | undefined;
  for (const c of opts.cases) {
    if (c.kind === "idle-rss") {
      baselineRss = await withTimeout(measureBaselineRss(opts.verbose), 15_000, "baseline rss").catch(
        () => undefined,
      );
    }
    const selected = impls.filter(
      (impl) =>
        opts.implsExplicit || c.optional === true || (DEFAULT_CASES[impl.name]?.includes(c.name) ?? true),
    );
    await timed(c.name, async () => {
      for (const impl of selected) rows.push(await benchCase(opts, c, impl));
    });
  }
  let hubRows: Row[] = [];
  if (
    opts.cases.some((c) => c.kind === "idle-rss") &&
    (!opts.implsExplicit || opts.impls.includes("myelin"))
  ) {
    const idle = CASES.find((c) => c.kind === "idle-rss")!;
    hubRows = (
      await timed("idle-hub", () =>
        runIdleHubBench({ runs: opts.runs, track, makeTempDir, removeTempDir, log }),
      )
    ).flatMap((r) =>
      // The bare `node` is the reference of both kinds of rows: the hub and the standalone node.
      (r.impl === "node"
        ? ["idle-node", "idle-hub"]
        : [r.impl === "myelin-node" ? "idle-node" : "idle-hub"]
      ).map((name) =>
        toRow(
          { ...idle, name, payloadBytes: 0 },
          r.impl,
          r.rssBytes === null ? null : { ...EMPTY, payloadBytes: 0, rssBytes: r.rssBytes },
          r.runs,
          r.error,
        ),
      ),
    );
    hubRows.sort((a, b) => (a.case === b.case ? 0 : a.case === "idle-node" ? -1 : 1));
  }
  let serviceRows: ServiceRow[] = [];
  if (opts.services) {
    serviceRows = await timed("services", () =>
      runServiceBench({
        durationMs: opts.durationMs,
        runs: opts.runs,
        track,
        makeTempDir,
        removeTempDir,
        log,
      }),
    );
  }

  let durableRows: DurableRow[] = [];
  if (opts.durable) {
    durableRows = await timed("durable", () =>
      runDurableBench({
        only: opts.durableOnly,
        runs: opts.runs,
        quick: opts.quick,
        track,
        makeTempDir,
        removeTempDir,
        log,
      }),
    );
  }

  let recordRows: RecordRow[] = [];
  if (opts.record) {
    recordRows = await timed("record", () =>
      runRecordBench({
        runs: opts.runs,
        quick: opts.quick,
        track,
        makeTempDir,
        removeTempDir,
        log,
      }),
    );
  }

  console.log();
  if (rows.length > 0) console.log(renderTable(rows));
  if (hubRows.length > 0) {
    console.log();
    console.log(renderTable(hubRows, "node"));
    console.log(
      "idle-node: RSS MiB of a standalone node (bench/idle-node.ts: the public API, one node, one subscription; " +
        "no bench harness); idle-hub: of `myelin hub` (default plugins: store, supervisor; no node attached); " +
        "both next to a bare `node` process, each idle for 2 s and read from /proc (no forced gc), in the same run.",
    );
  }
  if (recordRows.length > 0) {
    console.log();
    for (const l of renderRecordTable(recordRows)) console.log(l);
    console.log(
      "record: myelin record's recorder (hub in its process) fed by a publisher process; written msg/s and MB/s " +
        "from its first message to its file closed (zstd chunks); drops = dropped + lost + missing. " +
        "Writers alone: the same encoded messages written to a file by @mcap/core's McapWriter and by Myelin's " +
        'file writer (inline, and with its writer thread; "caller\'s thread": the time the calling thread spent ' +
        "adding messages, what a recorder's receiving thread pays); channel encoding alone: encoding the " +
        'messages, no file. "inline": the recorder with no recording thread (decoding, validating, encoding, ' +
        "chunking, compression and writes on its receiving thread). recv CPU: CPU time of the recorder's " +
        "receiving thread per message received (from /proc, independent of the load). Files written to " +
        `${recordDir() ?? "the temp directory"} (MYELIN_BENCH_RECORD_DIR to change).`,
    );
  }
  if (durableRows.length > 0) {
    console.log();
    for (const l of renderDurableTable(durableRows)) console.log(l);
    console.log(
      "durable: confirmed publishes (the publish resolves once stored under the fsync policy) from one client " +
        "process to the store in another; JetStream (nats-server, file storage) acks after its write and syncs " +
        "its files every 2 min. consume: a durable consumer acking each message. restart: Myelin from opening " +
        "the log to serving its newest record; JetStream from spawning nats-server to its stream info answer.",
    );
  }
  if (serviceRows.length > 0) {
    if (rows.length > 0) console.log();
    console.log(renderServiceTable(serviceRows));
    console.log(
      "services: 64 B echo calls, 16 in flight from one client process; direct = one data link to one server, " +
        "no discovery/balancing; balanced = a service client (round-robin unless -lo: least-outstanding).",
    );
  }
  console.log();
  if (rows.length === 0) {
    console.log(`Median of ${opts.runs} run(s) of ${opts.durationMs} ms.`);
  } else {
    console.log(`Median of ${opts.runs} run(s) of ${opts.durationMs} ms; MB = 10^6 bytes of payload.`);
    console.log(
      "msg/s: receiver side, first to last data message (roundtrip-64: round trips/s); " +
        "loss = 1 - received/sent.",
    );
    console.log(
      `late-joiner: p50 = median of ${opts.joins} joins, p99 = the worst join. ` +
        "idle-rss: RSS MiB of the idle subscribed receiver process" +
        (baselineRss === undefined
          ? "."
          : `; a bare worker process (harness only, no impl) is ${(baselineRss / (1024 * 1024)).toFixed(1)} MiB.`),
    );
    console.log(`ratio vs ${REFERENCE_IMPL}: msg/s for throughput, p50 for latency cases, RSS for idle-rss.`);
    for (const impl of impls) console.log(`  ${impl.name}: ${impl.description}`);
    for (const s of skipped) console.log(`  skipped ${s}`);
  }

  const total = performance.now() - started;
  console.log(
    `Elapsed: ${fmtElapsed(total)} in all (${timings.map((t) => `${t.what} ${(t.ms / 1000).toFixed(0)} s`).join(", ")}).`,
  );

  if (opts.json !== undefined) {
    const all = [...rows, ...hubRows, ...serviceRows, ...durableRows, ...recordRows];
    writeFileSync(opts.json, `${JSON.stringify(all, null, 2)}\n`);
    console.log(`wrote ${all.length} rows to ${opts.json}`);
  }
  if (
    rows.some((r) => r.error !== null) ||
    hubRows.some((r) => r.error !== null) ||
    serviceRows.some((r) => r.error !== null) ||
    durableRows.some((r) => r.error !== null) ||
    recordRows.some((r) => r.error !== null)
  )
    process.exitCode = 1;
}

main()
  .catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 2;
  })
  .finally(() => {
    killAll();
    // Straggling handles (timers of killed children) must not keep the runner alive.
    setTimeout(() => process.exit(), 100).unref();
  });
