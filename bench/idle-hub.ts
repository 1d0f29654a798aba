/**
 * Idle footprints without the bench harness (part of the `idle-rss` case): the resident set of
 * `myelin hub` with its default plugins (the store of durable topics, the supervisor, hub info)
 * once it listens, and of a standalone node (bench/idle-node.ts: the public API, one node, one
 * subscription, nothing else) once it subscribed, each idle for a moment, next to a bare `node`
 * process measured the same way in the same run. All are read from /proc/<pid>/status (VmRSS)
 * from outside, as `ps` would show them: no forced gc.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { medianIndex } from "./stats.js";

const MYELIN_BIN = fileURLToPath(new URL("../../bin/myelin", import.meta.url));
const IDLE_NODE = fileURLToPath(new URL("./idle-node.js", import.meta.url));

/** How long a process is left idle after it is up, before its RSS is read. */
const SETTLE_MS = 2000;
/** How long a process may take to come up. */
const START_TIMEOUT_MS = 20_000;

/** One measured process: the median of `runs`, or the error of the last failed run. */
export interface IdleHubResult {
  /** `node` (bare), `myelin-hub` or `myelin-node` (standalone). */
  readonly impl: string;
  readonly rssBytes: number | null;
  readonly runs: number;
  readonly error: string | null;
}

/** What the runner lends: child bookkeeping and temporary directories. */
export interface IdleHubBenchOptions {
  readonly runs: number;
  readonly track: (child: ChildProcess) => void;
  readonly makeTempDir: () => string;
  readonly removeTempDir: (dir: string) => void;
  readonly log: (line: string) => void;
}

/** VmRSS of a live process, in bytes. */
function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Starts `args`, waits for `readyLine` on its stdout, lets it idle, reads its RSS, stops it. */
async function measureProcess(
  args: readonly string[],
  readyLine: RegExp,
  env: NodeJS.ProcessEnv,
  track: (child: ChildProcess) => void,
): Promise<number> {
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  track(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let out = "";
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-1000)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`not up within ${START_TIMEOUT_MS} ms: ${err.trim() || out.trim()}`)),
        START_TIMEOUT_MS,
      );
      child.stdout.on("data", (d: Buffer) => {
        out = (out + d.toString()).slice(-4000);
        if (readyLine.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`exited (${code ?? signal}) before it was up: ${err.trim() || out.trim()}`));
      });
    });
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    return rssOf(child.pid!);
  } finally {
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  }
}

/** Measures a bare `node`, `myelin hub` and a standalone node `runs` times each, alternating; medians. */
export async function runIdleHubBench(o: IdleHubBenchOptions): Promise<IdleHubResult[]> {
  const subjects: { impl: string; run: (dir: string) => Promise<number> }[] = [
    {
      impl: "node",
      run: () =>
        measureProcess(
          ["-e", 'console.log("up"); setInterval(() => {}, 60_000);'],
          /up/,
          process.env,
          o.track,
        ),
    },
    {
      impl: "myelin-hub",
      run: (dir) =>
        measureProcess(
          [MYELIN_BIN, "hub", "--runtime-dir", dir, "--data-dir", path.join(dir, "data")],
          /listening on/,
          { ...process.env, MYELIN_RUNTIME_DIR: dir, MYELIN_DATA_DIR: path.join(dir, "data") },
          o.track,
        ),
    },
    {
      // The node's hub runs in this process (the runner), so that only the node is measured.
      impl: "myelin-node",
      run: async (dir) => {
        const { Hub } = await import("../src/hub/index.js");
        const hub = await Hub.start({ runtimeDir: dir });
        try {
          return await measureProcess(
            [IDLE_NODE],
            /up/,
            { ...process.env, MYELIN_RUNTIME_DIR: dir },
            o.track,
          );
        } finally {
          hub.close();
        }
      },
    },
  ];
  const values = new Map<string, number[]>(subjects.map((s) => [s.impl, []]));
  const errors = new Map<string, string>();
  for (let run = 0; run < o.runs; run++) {
    for (const s of subjects) {
      const dir = o.makeTempDir();
      try {
        const rss = await s.run(dir);
        values.get(s.impl)!.push(rss);
        o.log(`  idle ${s.impl} run ${run + 1}/${o.runs}: ${(rss / (1024 * 1024)).toFixed(1)} MiB`);
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        errors.set(s.impl, msg);
        o.log(`  idle ${s.impl} run ${run + 1}/${o.runs}: FAILED ${msg.split("\n")[0]}`);
      } finally {
        o.removeTempDir(dir);
      }
    }
  }
  return subjects.map((s) => {
    const v = values.get(s.impl)!;
    if (v.length === 0)
      return { impl: s.impl, rssBytes: null, runs: 0, error: errors.get(s.impl) ?? "no result" };
    return { impl: s.impl, rssBytes: v[medianIndex(v, (x) => x)]!, runs: v.length, error: null };
  });
}
