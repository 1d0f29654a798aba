/**
 * The service benchmark (`npm run bench -- --cases services`): call throughput through the
 * balancer with 1 and 3 replicas against a direct call, each client keeping 16 calls in flight.
 *
 * - `direct`: requests straight over one data link to one server (the transport alone);
 * - `balanced-1`: a service client (discovery, round-robin, breaker, retry plan) with 1 replica;
 * - `balanced-3`: the same with 3 replicas, round-robin;
 * - `balanced-3-lo`: 3 replicas, least-outstanding.
 *
 * A hub runs in the runner process; servers and the client are forked worker processes
 * (`service-worker.ts`). Each case runs `runs` times; the median run by calls/s is reported.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Hub } from "../src/hub/index.js";
import { medianIndex } from "./stats.js";
import { expectMessage } from "./worker-ipc.js";

const expect = <T>(child: ChildProcess, type: string, timeoutMs: number): Promise<T> =>
  expectMessage<T>(child, type, timeoutMs, "service worker");

const WORKER = fileURLToPath(new URL("./service-worker.js", import.meta.url));

/** One row of the service benchmark. */
export interface ServiceRow {
  readonly case: string;
  readonly replicas: number;
  readonly calls_per_s: number | null;
  readonly p50_us: number | null;
  readonly p99_us: number | null;
  /** calls/s relative to `direct`. */
  readonly vs_direct: number | null;
  readonly runs: number;
  readonly error: string | null;
}

/** What the runner gives the service benchmark. */
export interface ServiceBenchOptions {
  readonly durationMs: number;
  readonly runs: number;
  /** Registers a child process the runner kills on any exit. */
  readonly track: (child: ChildProcess) => void;
  readonly makeTempDir: () => string;
  readonly removeTempDir: (dir: string) => void;
  readonly log: (line: string) => void;
}

interface Result {
  calls: number;
  failed: number;
  elapsedNs: number;
  p50Us: number;
  p99Us: number;
}

const CASES = [
  { name: "direct", replicas: 1, mode: "direct" },
  { name: "balanced-1", replicas: 1, mode: "balanced" },
  { name: "balanced-3", replicas: 3, mode: "balanced", balance: "round-robin" },
  { name: "balanced-3-lo", replicas: 3, mode: "balanced", balance: "least-outstanding" },
] as const;

function spawnWorker(
  args: Record<string, unknown>,
  env: Record<string, string>,
  o: ServiceBenchOptions,
): ChildProcess {
  const child = fork(WORKER, [JSON.stringify(args)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  o.track(child);
  return child;
}

async function runOnce(c: (typeof CASES)[number], o: ServiceBenchOptions): Promise<Result> {
  const dir = o.makeTempDir();
  const env = { MYELIN_RUNTIME_DIR: dir };
  const hub = await Hub.start({ runtimeDir: dir });
  const children: ChildProcess[] = [];
  try {
    const servers = Array.from({ length: c.replicas }, (_, i) =>
      spawnWorker({ role: "server", name: `echo-${i}` }, env, o),
    );
    children.push(...servers);
    const ready = await Promise.all(servers.map((s) => expect<{ endpoint: string }>(s, "ready", 20000)));
    const client = spawnWorker(
      {
        role: "client",
        mode: c.mode,
        replicas: c.replicas,
        concurrency: 16,
        durationMs: o.durationMs,
        endpoint: ready[0]!.endpoint,
        ...("balance" in c ? { balance: c.balance } : {}),
      },
      env,
      o,
    );
    children.push(client);
    return await expect<Result>(client, "result", o.durationMs + 30000);
  } finally {
    for (const ch of children) ch.kill("SIGKILL");
    hub.close();
    o.removeTempDir(dir);
  }
}

/** Runs every service case and returns its rows. */
export async function runServiceBench(o: ServiceBenchOptions): Promise<ServiceRow[]> {
  const rows: ServiceRow[] = [];
  for (const c of CASES) {
    const results: Result[] = [];
    let error: string | null = null;
    for (let run = 0; run < o.runs; run++) {
      try {
        const r = await runOnce(c, o);
        results.push(r);
        o.log(
          `  services ${c.name} run ${run + 1}/${o.runs}: ${((r.calls * 1e9) / r.elapsedNs).toFixed(0)} calls/s, p50 ${r.p50Us.toFixed(0)} µs, p99 ${r.p99Us.toFixed(0)} µs, failed ${r.failed}`,
        );
      } catch (err) {
        error = err instanceof Error ? err.message : String(err);
        o.log(`  services ${c.name} run ${run + 1}/${o.runs}: FAILED ${error}`);
      }
    }
    if (results.length === 0) {
      rows.push({
        case: c.name,
        replicas: c.replicas,
        calls_per_s: null,
        p50_us: null,
        p99_us: null,
        vs_direct: null,
        runs: 0,
        error,
      });
      continue;
    }
    const rate = (r: Result): number => (r.calls * 1e9) / r.elapsedNs;
    const best = results[medianIndex(results, rate)]!;
    const direct = rows.find((r) => r.case === "direct")?.calls_per_s ?? null;
    const cps = Math.round(rate(best));
    rows.push({
      case: c.name,
      replicas: c.replicas,
      calls_per_s: cps,
      p50_us: Math.round(best.p50Us),
      p99_us: Math.round(best.p99Us),
      vs_direct: direct === null || direct === 0 ? null : Math.round((cps / direct) * 100) / 100,
      runs: results.length,
      error: null,
    });
  }
  return rows;
}

/** Renders service rows as a table. */
export function renderServiceTable(rows: readonly ServiceRow[]): string {
  const lines = [["services", "replicas", "calls/s", "p50 µs", "p99 µs", "vs direct"]];
  for (const r of rows) {
    if (r.error !== null && r.calls_per_s === null) {
      lines.push([r.case, String(r.replicas), `ERROR: ${r.error.slice(0, 100)}`, "", "", ""]);
      continue;
    }
    lines.push([
      r.case,
      String(r.replicas),
      String(r.calls_per_s ?? "-"),
      String(r.p50_us ?? "-"),
      String(r.p99_us ?? "-"),
      r.vs_direct === null ? "-" : `${r.vs_direct.toFixed(2)}x`,
    ]);
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines
    .map((l) => l.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join("  "))
    .join("\n");
}
