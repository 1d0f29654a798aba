/**
 * CURVE across a real link: two network namespaces on a bridge (veth pairs), one side binding, the
 * other connecting. For each implementation, with CURVE and in plain text, in the same run:
 * 64 B throughput (msg/s at the receiver) and 64 B round trip (p50/p99 µs on the caller).
 *
 * - `myelin`: a hub on tcp and a node on side a, a node on side b (reliable topic a → b, await per
 *   publish; an echo service a ← b for the round trip); CURVE with host keys and trust lists, or
 *   `--insecure`.
 * - `zeromq`: zeromq.js used directly, ROUTER on a and DEALER on b, one await per send; CURVE set
 *   on the sockets, or not.
 *
 * `node dist/bench/curve.js [--duration-ms 1500] [--runs 3] [--json FILE]`. Needs root
 * (namespaces); says so and exits 0 otherwise. The median run is reported.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { KeyStore } from "../src/transport/key-store.js";
import type { WorkerArgs } from "./curve-worker.js";

const WORKER = fileURLToPath(new URL("./curve-worker.js", import.meta.url));

const { values } = parseArgs({
  options: {
    "duration-ms": { type: "string", default: "1500" },
    runs: { type: "string", default: "3" },
    json: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log("usage: node dist/bench/curve.js [--duration-ms MS] [--runs N] [--json FILE]");
  process.exit(0);
}
const durationMs = Number(values["duration-ms"]);
const runs = Number(values.runs);
if (process.getuid?.() !== 0 || spawnSync("ip", ["-V"]).status !== 0) {
  console.log("bench curve: skipped, needs root and iproute2 (it runs two network namespaces)");
  process.exit(0);
}

function sh(args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr}`);
}

const id = randomBytes(2).toString("hex");
const nsA = `mcv-ba-${id}`;
const nsB = `mcv-bb-${id}`;
const br = `mcvbb${id}`;
const octet = 100 + (parseInt(id, 16) % 100);
const ipA = `10.${octet}.9.1`;
const ipB = `10.${octet}.9.2`;
const root = mkdtempSync(path.join(os.tmpdir(), "myelin-bench-curve-"));
const children = new Set<ChildProcess>();

function cleanup(): void {
  for (const c of children) c.kill("SIGKILL");
  for (const args of [
    ["netns", "del", nsA],
    ["netns", "del", nsB],
    ["link", "del", br],
  ]) {
    spawnSync("ip", args, { stdio: "ignore" });
  }
  rmSync(root, { recursive: true, force: true });
}
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});

/** Starts a worker in `ns`; resolves with its lines as they come. */
function worker(ns: string, args: WorkerArgs, env: Record<string, string>) {
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, WORKER, JSON.stringify(args)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const stderr: string[] = [];
  createInterface({ input: child.stdout }).on("line", (l) => {
    try {
      lines.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      stderr.push(l);
    }
    for (const w of waiters) w();
  });
  createInterface({ input: child.stderr }).on("line", (l) => stderr.push(l));
  let exited = false;
  child.on("exit", () => {
    exited = true;
    children.delete(child);
    for (const w of waiters) w();
  });
  const wait = (event: string, timeoutMs: number): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const l = lines.find((x) => x["event"] === event || x["event"] === "error");
        if (l !== undefined || exited) {
          clearTimeout(t);
          waiters.delete(check);
          if (l !== undefined && l["event"] !== "error") resolve(l);
          else
            reject(
              new Error(
                `${args.impl} side ${args.side}: ${JSON.stringify(l?.["message"] ?? "exited")} ${stderr.slice(-5).join(" | ")}`,
              ),
            );
        }
      };
      const t = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`${args.impl} side ${args.side}: no ${event} within ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return { child, wait, lines };
}

interface Row {
  impl: string;
  security: "curve" | "plain";
  kind: "throughput" | "roundtrip";
  rate?: number;
  p50?: number;
  p99?: number;
}

async function once(
  impl: "myelin" | "zeromq",
  curve: boolean,
  kind: "throughput" | "roundtrip",
): Promise<Row> {
  const run = mkdtempSync(path.join(root, "run-"));
  const dirs = (h: string) => {
    const d = {
      run: path.join(run, h, "run"),
      data: path.join(run, h, "data"),
      keys: path.join(run, h, "keys"),
    };
    mkdirSync(d.run, { recursive: true, mode: 0o700 });
    return d;
  };
  const A = dirs("a");
  const B = dirs("b");
  const ka = new KeyStore(A.keys, undefined);
  const kb = new KeyStore(B.keys, undefined);
  const keysA = ka.init();
  const keysB = kb.init();
  ka.trust("b", keysB.publicKey);
  kb.trust("a", keysA.publicKey);
  const env = (d: typeof A, ip: string): Record<string, string> => ({
    MYELIN_RUNTIME_DIR: d.run,
    MYELIN_DATA_DIR: d.data,
    MYELIN_KEYS_DIR: d.keys,
    MYELIN_INSECURE: curve ? "" : "1",
    MYELIN_DATA_ENDPOINT: `tcp://${ip}:0`,
    MYELIN_HUB: "",
    MYELIN_HUB_KEY: "",
  });
  const base = { impl, curve, kind, ipA, ipB, durationMs, keysA, keysB };
  const a = worker(nsA, { ...base, side: "a" }, env(A, ipA));
  try {
    const ready = await a.wait("ready", 30000);
    const b = worker(
      nsB,
      { ...base, side: "b", endpoint: String(ready["endpoint"]) },
      { ...env(B, ipB), MYELIN_HUB: String(ready["endpoint"]), MYELIN_HUB_KEY: curve ? "a" : "" },
    );
    try {
      const resultSide = impl === "zeromq" && kind === "throughput" ? a : b;
      const r = await resultSide.wait("result", durationMs * 4 + 30000);
      return kind === "throughput"
        ? { impl, security: curve ? "curve" : "plain", kind, rate: Number(r["rate"]) }
        : { impl, security: curve ? "curve" : "plain", kind, p50: Number(r["p50"]), p99: Number(r["p99"]) };
    } finally {
      b.child.kill("SIGKILL");
    }
  } finally {
    a.child.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 100)); // the port of a's hub is free for the next run
  }
}

try {
  sh(["netns", "add", nsA]);
  sh(["netns", "add", nsB]);
  sh(["link", "add", br, "type", "bridge"]);
  sh(["link", "set", br, "up"]);
  for (const [ns, ip, v] of [
    [nsA, ipA, "a"],
    [nsB, ipB, "b"],
  ] as const) {
    const rootEnd = `mcv${v}${id}x`;
    const nsEnd = `mcv${v}${id}y`;
    sh(["link", "add", rootEnd, "type", "veth", "peer", "name", nsEnd]);
    sh(["link", "set", nsEnd, "netns", ns]);
    sh(["link", "set", rootEnd, "master", br]);
    sh(["link", "set", rootEnd, "up"]);
    sh(["-n", ns, "addr", "add", `${ip}/24`, "dev", nsEnd]);
    sh(["-n", ns, "link", "set", nsEnd, "up"]);
    sh(["-n", ns, "link", "set", "lo", "up"]);
  }
  const rows: Row[] = [];
  for (const kind of ["throughput", "roundtrip"] as const) {
    for (const impl of ["zeromq", "myelin"] as const) {
      for (const curve of [false, true]) {
        const got: Row[] = [];
        for (let i = 0; i < runs; i++) got.push(await once(impl, curve, kind));
        const key = (r: Row): number => (kind === "throughput" ? r.rate! : r.p50!);
        got.sort((x, y) => key(x) - key(y));
        rows.push(got[Math.floor(got.length / 2)]!);
      }
    }
  }
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
  console.log(
    `CURVE over a veth pair between two namespaces; ${runs} runs of ${durationMs} ms, median; load ${load}`,
  );
  console.log("case           impl     security   msg/s      p50 µs   p99 µs   vs plain");
  for (const r of rows) {
    const plain = rows.find((x) => x.impl === r.impl && x.kind === r.kind && x.security === "plain")!;
    const ratio = r.kind === "throughput" ? r.rate! / plain.rate! : r.p50! / plain.p50!;
    console.log(
      `${(r.kind === "throughput" ? "throughput-64" : "roundtrip-64").padEnd(15)}${r.impl.padEnd(9)}${r.security.padEnd(11)}${(r.rate !== undefined ? Math.round(r.rate).toString() : "").padEnd(11)}${(r.p50 !== undefined ? r.p50.toFixed(0) : "").padEnd(9)}${(r.p99 !== undefined ? r.p99.toFixed(0) : "").padEnd(9)}${ratio.toFixed(2)}`,
    );
  }
  if (values.json !== undefined)
    writeFileSync(values.json, JSON.stringify({ load, runs, durationMs, rows }, null, 2));
} finally {
  cleanup();
}
