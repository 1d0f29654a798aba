/**
 * The dashboard at size: `node dist/bench/dashboard.js [--nodes 200] [--topics 1000] [--seconds 15]
 * [--json FILE]`. Starts a hub with the dashboard, then NODES nodes (in 10 processes) publishing
 * TOPICS topics at 1 Hz, and measures the hub's CPU with no page open, then with a page (Debian's
 * chromium through playwright-core) on the graph view and on the topics view: the hub's CPU (% of
 * one core), the page's stream messages per second and DOM updates per second, and the page's JS
 * heap. Every process it starts is stopped at the end.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "200" },
    topics: { type: "string", default: "1000" },
    seconds: { type: "string", default: "15" },
    json: { type: "string" },
  },
});
const NODES = Number(values.nodes);
const TOPICS = Number(values.topics);
const SECONDS = Number(values.seconds);
const PROCS = 10;
const CLI = fileURLToPath(new URL("../../bin/myelin", import.meta.url));
const LOAD = fileURLToPath(new URL("./dashboard-load.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "myelin-bench-dash-"));
const env = { ...process.env, MYELIN_RUNTIME_DIR: dir };
const children: ChildProcess[] = [];

function lineMatching(child: ChildProcess, re: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}`)), timeoutMs);
    createInterface({ input: child.stdout! }).on("line", (l) => {
      if (re.test(l)) {
        clearTimeout(t);
        resolve(l);
      }
    });
    child.once("exit", (c) => reject(new Error(`exited (${c}) before ${re}`)));
  });
}

/** CPU time of `pid` (user + system), in ms. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

async function cpuOver(pid: number, seconds: number): Promise<number> {
  const c0 = cpuMs(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return ((cpuMs(pid) - c0) / (performance.now() - t0)) * 100;
}

const rows: Record<string, unknown>[] = [];
let finishing = false;
try {
  const hub = spawn(process.execPath, [CLI, "hub", "--http-port", "0", "--no-store", "--no-supervisor"], {
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(hub);
  const hubLines: string[] = [];
  createInterface({ input: hub.stdout }).on("line", (l) => hubLines.push(l));
  hub.once("exit", (code, signal) => {
    if (finishing) return;
    console.error(`the hub exited (code ${code}, signal ${signal}) during the benchmark; its last lines:`);
    for (const l of hubLines.slice(-15)) console.error(`  ${l}`);
  });
  const url = /dashboard at (\S+)/.exec(await lineMatching(hub, /dashboard at /, 20000))![1]!;
  const perProc = Math.ceil(NODES / PROCS);
  const perNode = Math.max(1, Math.round(TOPICS / NODES));
  for (let p = 0; p < PROCS; p++) {
    const c = spawn(process.execPath, [LOAD, String(perProc), String(perNode), `p${p}`], {
      env,
      stdio: ["ignore", "pipe", "inherit", "ipc"],
    });
    children.push(c);
    await lineMatching(c, /^ready$/, 600000);
  }
  console.log(
    `${PROCS * perProc} nodes, ${PROCS * perProc * perNode} topics at 1 Hz; measuring ${SECONDS} s each`,
  );
  await new Promise((r) => setTimeout(r, 3000));
  rows.push({ phase: "no page", hubCpuPercent: await cpuOver(hub.pid!, SECONDS) });

  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  // Counts the page's stream messages and DOM updates (runs in the page, hence a string).
  await page.addInitScript({
    content: `
      window.__msgs = 0; window.__updates = 0;
      const Original = window.WebSocket;
      window.WebSocket = class extends Original {
        constructor(...args) { super(...args); this.addEventListener("message", () => window.__msgs++); }
      };
      new MutationObserver(() => window.__updates++).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
    `,
  });
  await page.goto(url);
  for (const view of ["graph", "topics"]) {
    await page.goto(`${url.split("?")[0]}#/${view}`);
    await page.waitForTimeout(3000);
    const read = (): Promise<{ msgs: number; updates: number; heap: number }> =>
      page.evaluate(() => {
        const w = globalThis as unknown as Record<string, number> & {
          performance: { memory?: { usedJSHeapSize: number } };
        };
        return {
          msgs: w["__msgs"]!,
          updates: w["__updates"]!,
          heap: w.performance.memory?.usedJSHeapSize ?? -1,
        };
      });
    const a = await read();
    const t0 = performance.now();
    const cpu = await cpuOver(hub.pid!, SECONDS);
    const b = await read();
    const s = (performance.now() - t0) / 1000;
    rows.push({
      phase: `page on ${view}`,
      hubCpuPercent: cpu,
      streamMsgsPerSec: (b.msgs - a.msgs) / s,
      domUpdatesPerSec: (b.updates - a.updates) / s,
      heapMiB: b.heap / 1048576,
    });
  }
  await browser.close();
  const base = rows[0]!["hubCpuPercent"] as number;
  console.log("phase           hub CPU   added   stream msg/s   DOM updates/s   page heap");
  for (const r of rows) {
    const cpu = r["hubCpuPercent"] as number;
    console.log(
      `${String(r["phase"]).padEnd(15)} ${cpu.toFixed(1).padStart(6)}%  ${(cpu - base).toFixed(1).padStart(5)}%  ${r["streamMsgsPerSec"] === undefined ? "-".padStart(12) : (r["streamMsgsPerSec"] as number).toFixed(1).padStart(12)}   ${r["domUpdatesPerSec"] === undefined ? "-".padStart(13) : (r["domUpdatesPerSec"] as number).toFixed(1).padStart(13)}   ${r["heapMiB"] === undefined ? "-" : `${(r["heapMiB"] as number).toFixed(1)} MiB`}`,
    );
  }
  if (values.json !== undefined)
    writeFileSync(
      values.json,
      JSON.stringify({ nodes: NODES, topics: TOPICS, seconds: SECONDS, rows }, null, 2),
    );
} finally {
  finishing = true;
  for (const c of children.reverse()) c.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 1500));
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
