/**
 * Restart benchmark: time from `kill -9` of a supervised node to the restarted node being ready
 * (registered with the hub and saying so), for a module node (run by the supervisor's runner) and a
 * command node (`node restart-node.js`). Hub and supervisor run in this process, as in `myelin hub`;
 * the nodes are real processes. Prints a table and, with --json FILE, writes the rows.
 *
 *   node dist/bench/restart.js [--runs N] [--json FILE]
 *
 * Phases: detect = kill → the supervisor saw the exit; restart = including the backoff delay
 * (backoffMs 100 ± 20 %, the default; resetAfterMs 0 so every kill counts as a first failure, not
 * a crash loop backing off); ready = the new process registered and ready.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Hub } from "../src/hub/index.js";
import { loadSpec, Supervisor, type ProcessRow } from "../src/orchestrator/index.js";

const { values } = parseArgs({ options: { runs: { type: "string" }, json: { type: "string" } } });
const runs = Number(values.runs ?? 10);
const NODE = fileURLToPath(new URL("./restart-node.js", import.meta.url));

function until(sup: Supervisor, pred: (rows: ProcessRow[]) => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!pred(sup.ps())) return;
      clearTimeout(timer);
      sup.off("change", check);
      resolve();
    };
    const timer = setTimeout(() => {
      sup.off("change", check);
      reject(new Error(`timed out after ${timeoutMs} ms; ps: ${JSON.stringify(sup.ps())}`));
    }, timeoutMs);
    sup.on("change", check);
    check();
  });
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

interface Row {
  case: string;
  runs: number;
  detect_p50_ms: number;
  ready_p50_ms: number;
  ready_p90_ms: number;
  ready_max_ms: number;
}

const dir = mkdtempSync(join(tmpdir(), "myelin-bench-restart-"));
const rows: Row[] = [];
const hub = await Hub.start({ runtimeDir: dir });
const sup = await Supervisor.start({ runtimeDir: dir, pollMs: 100 });
try {
  for (const kind of ["module", "command"] as const) {
    const file = join(dir, `${kind}.yaml`);
    writeFileSync(
      file,
      `nodes:\n  target:\n    ${kind === "module" ? `module: ${NODE}` : `command: [node, ${NODE}]`}\n    restart: { policy: always, resetAfterMs: 0, crashLoop: { restarts: 1000 } }\n`,
    );
    const r = await sup.apply(loadSpec(file), 30000);
    if (!r.ok) throw new Error(r.message);
    const detect: number[] = [];
    const ready: number[] = [];
    for (let i = 0; i < runs; i++) {
      const before = sup.ps()[0]!;
      let detectedAt = 0;
      const onChange = (): void => {
        if (detectedAt === 0 && sup.ps()[0]!.state === "backoff") detectedAt = performance.now();
      };
      sup.on("change", onChange);
      const t0 = performance.now();
      process.kill(before.pid, "SIGKILL");
      await until(sup, (rs) => rs[0]!.state === "ready" && rs[0]!.pid !== before.pid, 30000);
      const t1 = performance.now();
      sup.off("change", onChange);
      detect.push(detectedAt - t0);
      ready.push(t1 - t0);
    }
    rows.push({
      case: `kill -9 → ready (${kind} node)`,
      runs,
      detect_p50_ms: pct(detect, 50),
      ready_p50_ms: pct(ready, 50),
      ready_p90_ms: pct(ready, 90),
      ready_max_ms: Math.max(...ready),
    });
    await sup.down();
  }
} finally {
  await sup.close();
  hub.close();
  rmSync(dir, { recursive: true, force: true });
}

const f = (n: number): string => n.toFixed(0).padStart(8);
console.log(`${"case".padEnd(32)} runs  detect p50  ready p50  ready p90  ready max   (ms)`);
for (const r of rows)
  console.log(
    `${r.case.padEnd(32)} ${String(r.runs).padStart(4)}  ${f(r.detect_p50_ms)}  ${f(r.ready_p50_ms)}  ${f(r.ready_p90_ms)}  ${f(r.ready_max_ms)}`,
  );
if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(rows, null, 2)}\n`);
