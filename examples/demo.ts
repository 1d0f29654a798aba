/**
 * The demo: a hub with the web dashboard, durable topics and the MQTT gateway, running the system
 * of demo/myelin.yaml under its supervisor — two simulated cameras, a detector service with two
 * replicas balanced across calls, a tracker, alerts on a durable topic read by an analytics node,
 * a monitor, and a temperature sensor that speaks MQTT. No external service needed.
 *
 *   npm run demo                          # runs until Ctrl-C; prints the dashboard's URL first
 *   npm run demo -- --chaos               # also kills a random detector every few seconds
 *   npm run demo -- --duration-ms 20000 --http-port 0
 *   npm run demo -- --foxglove-port 8765  # also serve Foxglove / Lichtblick (the hub prints the URL)
 *
 * The hub runs as a child process tied to this one by an IPC channel: Ctrl-C stops everything, and
 * if this process dies (even kill -9), the hub sees the channel close and stops the system too.
 * While it runs: `npx myelin ps`, `npx myelin topic hz /detections`, `npx myelin logs tracker`.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createInterface } from "node:readline";
import { createNode, rcl_interfaces, type Node } from "myelin";
import { supervisorClient } from "../src/orchestrator/index.js";

const { values } = parseArgs({
  options: {
    "duration-ms": { type: "string" },
    chaos: { type: "boolean" },
    "chaos-interval-ms": { type: "string" },
    "http-port": { type: "string" },
    "mqtt-port": { type: "string" },
    "foxglove-port": { type: "string" },
  },
});
const number = (name: string, v: string | undefined, dflt: number): number => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`[demo] --${name} must be a whole number >= 0, got '${v}'`);
    process.exit(2);
  }
  return n;
};
const durationMs = number("duration-ms", values["duration-ms"], 0);
const chaosEveryMs = number("chaos-interval-ms", values["chaos-interval-ms"], 5000);

/** The dashboard's port: --http-port, else 8080 when free, else any free port. */
async function httpPort(): Promise<number> {
  if (values["http-port"] !== undefined) return number("http-port", values["http-port"], 0);
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(0));
    s.listen(8080, "127.0.0.1", () => s.close(() => resolve(8080)));
  });
}

const here = fileURLToPath(new URL(".", import.meta.url));
const root = join(here, "..", "..");
const ownDataDir = process.env["MYELIN_DATA_DIR"] === undefined;
const dataDir = process.env["MYELIN_DATA_DIR"] ?? mkdtempSync(join(tmpdir(), "myelin-demo-"));
const args = [
  join(root, "bin", "myelin"),
  "hub",
  "--spec",
  join(root, "examples", "demo", "myelin.yaml"),
  "--gateway-config",
  join(root, "examples", "demo", "gateway.yaml"),
  "--data-dir",
  dataDir,
  "--http-port",
  String(await httpPort()),
  "--import",
  join(here, "demo", "demo-msgs.js"),
];
if (values["foxglove-port"] !== undefined) {
  args.push("--foxglove-port", String(number("foxglove-port", values["foxglove-port"], 0)));
}
if (values["mqtt-port"] !== undefined)
  args.push("--mqtt-port", String(number("mqtt-port", values["mqtt-port"], 0)));

// The hub runs in a process group of its own: a Ctrl-C from the terminal reaches this process, which
// stops the hub with one SIGTERM (the terminal's signal and a second one from here would make it
// exit at once, leaving the processes it supervises running). Its IPC channel to this process stops
// it if this process dies.
const hub = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe", "ipc"], detached: true });
let urlShown = false;
const early: string[] = [];
const print = (line: string): void => {
  if (urlShown) console.log(line);
  else early.push(line);
};
const onHubLine = (raw: string): void => {
  const line = raw.replace(/^\d\d:\d\d:\d\d\.\d\d\d /, "");
  const m = /^dashboard at (\S+)/.exec(line);
  if (m !== null && !urlShown) {
    urlShown = true;
    console.log(`[demo] dashboard: ${m[1]}`);
    for (const l of early.splice(0)) console.log(l);
    if (values.chaos === true)
      console.log(`[demo] chaos: a random detector is killed every ${chaosEveryMs} ms`);
    return;
  }
  print(`[hub] ${line}`);
};
createInterface({ input: hub.stdout! }).on("line", onHubLine);
createInterface({ input: hub.stderr! }).on("line", (l) => print(`[hub] ${l}`));
const hubExited = new Promise<number>((resolve) => hub.once("exit", (code) => resolve(code ?? 1)));

// The processes' output, as the supervisor publishes it, tagged with the node (replica) name.
let node: Node | undefined;
let chaosTimer: NodeJS.Timeout | undefined;
async function follow(): Promise<void> {
  node = await createNode({ name: "_demo" });
  await node.createSubscription(
    "/myelin/logs",
    rcl_interfaces.Log,
    (m) => {
      const [proc, replica] = m.name.split("#");
      const name = replica !== undefined && replica !== "0" ? `${proc}.${replica}` : proc;
      print(`[${name}] ${m.msg}`);
    },
    { qos: { reliability: "reliable", depth: 1000 } },
  );
  if (values.chaos !== true) return;
  const supervisor = supervisorClient(node, { timeoutMs: 3000 });
  chaosTimer = setInterval(() => {
    void supervisor
      .ps({})
      .then((r) => {
        const rows = (
          JSON.parse(r.processes_json) as { process: string; replica: number; pid: number; state: string }[]
        ).filter((x) => x.process === "detector" && x.pid > 0 && x.state === "ready");
        const victim = rows[Math.floor(Math.random() * rows.length)];
        if (victim === undefined || rows.length < 2) return; // keep one replica up: healing, not an outage
        process.kill(victim.pid, "SIGKILL");
        print(`[chaos] killed detector replica ${victim.replica} (pid ${victim.pid})`);
      })
      .catch(() => undefined);
  }, chaosEveryMs);
}
void follow().catch((err: unknown) =>
  print(`[demo] cannot follow the processes' output: ${(err as Error).message}`),
);

let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (chaosTimer !== undefined) clearInterval(chaosTimer);
  console.log("[demo] stopping");
  await node?.close().catch(() => undefined);
  if (hub.exitCode === null) hub.kill("SIGTERM");
  const hubCode = await hubExited;
  if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
  process.exit(code === 0 ? hubCode : code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
void hubExited.then((code) => {
  if (!stopping) {
    for (const l of early.splice(0)) console.log(l);
    console.log(`[demo] the hub stopped (exit code ${code})`);
    void stop(code === 0 ? 1 : code);
  }
});
if (durationMs > 0) setTimeout(() => void stop(0), durationMs);
